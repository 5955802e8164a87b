/*
 * srv_thread.c - the periodic tasks of csc-server and csc-sam: one thread per task calls a run-once function every
 * period.
 *
 * The work itself belongs to the modules (csc-server: csc_purge_once, csc_crl_refresh, which write nothing but
 * web_sessions; csc-sam: stor_purge_expired, pki_crl_reload with sam_crl_sweep, sam_audit_heads_once and
 * sam_key_jobs_once); this file only owns the threads, so the modules below server/ start none of their own for periodic work. A run
 * starts one period after the previous one ended (the first one period after the start). A run that fails has
 * written its reason to stderr; the task keeps its period. srv_task_stop() wakes the thread through its condition
 * variable, so a shutdown never waits for the period (only for a run in progress), and joins it.
 *
 * The threads block every signal: SIGINT and SIGTERM belong to srv_http_run()'s sigwait.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "srv.h"

struct srv_task {
    char name[16];             /* the thread's name (at most 15 characters are shown) */
    unsigned period_ms;
    srv_task_fn run;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* CLOCK_MONOTONIC: a clock step neither delays nor hurries a run */
    int stop;                  /* under mu */
};

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *task_main(void *arg)
{
    srv_task_t *t = arg;

    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        struct timespec until;
        int rc = 0;

        deadline_in(&until, t->period_ms);
        while (!t->stop && rc == 0)
            rc = pthread_cond_timedwait(&t->cv, &t->mu, &until);
        if (t->stop)
            break;
        pthread_mutex_unlock(&t->mu);
        (void)t->run(t->arg); /* -1: the run said why on stderr; the next one comes a period later all the same */
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int srv_task_start(const char *name, unsigned period_ms, srv_task_fn run, void *arg, srv_task_t **out)
{
    srv_task_t *t;
    pthread_condattr_t ca;
    sigset_t all, old;
    int rc;

    *out = NULL;
    if (period_ms == 0 || run == NULL || (t = calloc(1, sizeof(*t))) == NULL) {
        fprintf(stderr, "csc-server: cannot start the %s thread\n", name);
        return -1;
    }
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->period_ms = period_ms;
    t->run = run;
    t->arg = arg;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits the mask */
    rc = pthread_create(&t->thread, NULL, task_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        fprintf(stderr, "csc-server: cannot start the %s thread\n", name);
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return -1;
    }
    pthread_setname_np(t->thread, t->name);
    *out = t;
    return 0;
}

void srv_task_stop(srv_task_t *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
