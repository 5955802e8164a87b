/*
 * csc_purge.c - housekeeping of csc-server: expired access/refresh tokens, SADs, authorization codes and
 * operator sessions are deleted from LMDB every purge_interval seconds (stor_purge_expired). They are refused
 * once expired anyway (every check compares expires_at); this keeps the database from growing with dead
 * records. One thread, woken early by csc_purger_stop() so that a shutdown never waits for the interval.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "csc.h"

struct csc_purger {
    stor_env_t *stor;
    unsigned interval;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

static void *purge_main(void *arg)
{
    csc_purger_t *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += p->interval;
        int rc = 0;
        while (!p->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&p->cv, &p->mu, &until);
        if (p->stop)
            break;
        pthread_mutex_unlock(&p->mu);
        int n = stor_purge_expired(p->stor, (int64_t)time(NULL));
        if (n < 0 && n != STOR_ERR_CLOSED)
            fprintf(stderr, "csc-server: purging expired records failed: %s\n", stor_strerror(n));
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int csc_purger_start(stor_env_t *stor, unsigned interval, csc_purger_t **out)
{
    *out = NULL;
    if (interval == 0)
        return 0;
    csc_purger_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -1;
    p->stor = stor;
    p->interval = interval;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&p->thread, NULL, purge_main, p) != 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void csc_purger_stop(csc_purger_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
