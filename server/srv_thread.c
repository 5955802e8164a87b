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
 *
 * Also the worker pools (srv_pool_*, srv.h): the most recently idle thread takes the next item.
 */
#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
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

/* ---- worker pools ---------------------------------------------------------- */

typedef struct pool_worker {
    srv_pool_t *pool;
    pthread_t thread;
    pthread_cond_t cv;           /* this thread's wake-up */
    srv_pool_item_t *item;       /* handed to it by srv_pool_submit (under the pool's mu) */
    struct pool_worker *next_idle;
    int idle;                    /* on the idle stack */
} pool_worker_t;

struct srv_pool {
    pthread_mutex_t mu;
    srv_pool_fn run;
    int nice;
    pool_worker_t *idle;         /* the stack of idle threads: the last one to go idle on top */
    srv_pool_item_t *head, *tail; /* the queue, when every thread is busy */
    size_t queued, queue_max;
    int stopping;
    unsigned n, started;
    pool_worker_t w[];
};

static void *pool_main(void *arg)
{
    pool_worker_t *w = arg;
    srv_pool_t *p = w->pool;
    /* Linux: the nice value is per thread. Best effort: a refusal only leaves the thread at the default. */
    if (p->nice != 0)
        (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), getpriority(PRIO_PROCESS, 0) + p->nice);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        srv_pool_item_t *it = w->item;
        if (it != NULL) {
            w->item = NULL;
        } else if ((it = p->head) != NULL) {
            if ((p->head = it->next) == NULL)
                p->tail = NULL;
            p->queued--;
        } else if (p->stopping) {
            break;
        } else {
            if (!w->idle) {
                w->idle = 1;
                w->next_idle = p->idle;
                p->idle = w;
            }
            pthread_cond_wait(&w->cv, &p->mu);
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        p->run(it);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int srv_pool_submit(srv_pool_t *p, srv_pool_item_t *item)
{
    pool_worker_t *w = NULL;

    item->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    if ((w = p->idle) != NULL) {
        p->idle = w->next_idle;
        w->idle = 0;
        w->item = item;
        pthread_cond_signal(&w->cv);
    } else if (p->queued >= p->queue_max) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    } else {
        if (p->tail != NULL)
            p->tail->next = item;
        else
            p->head = item;
        p->tail = item;
        p->queued++;
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
}

unsigned srv_pool_idle(srv_pool_t *p)
{
    unsigned n = 0;
    pthread_mutex_lock(&p->mu);
    for (pool_worker_t *w = p->idle; w != NULL; w = w->next_idle)
        n++;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void srv_pool_stop(srv_pool_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    for (unsigned i = 0; i < p->started; i++)
        pthread_cond_signal(&p->w[i].cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->started; i++)
        pthread_join(p->w[i].thread, NULL);
    for (unsigned i = 0; i < p->n; i++)
        pthread_cond_destroy(&p->w[i].cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int srv_pool_start(unsigned n, size_t queue_max, int nice, srv_pool_fn run, srv_pool_t **out)
{
    *out = NULL;
    if (n == 0 || run == NULL)
        return -1;
    srv_pool_t *p = calloc(1, sizeof(*p) + n * sizeof(pool_worker_t));
    if (p == NULL)
        return -1;
    pthread_mutex_init(&p->mu, NULL);
    p->run = run;
    p->nice = nice;
    p->queue_max = queue_max;
    p->n = n;
    for (unsigned i = 0; i < n; i++) {
        p->w[i].pool = p;
        pthread_cond_init(&p->w[i].cv, NULL);
    }
    for (; p->started < n; p->started++)
        if (pthread_create(&p->w[p->started].thread, NULL, pool_main, &p->w[p->started]) != 0) {
            srv_pool_stop(p);
            return -1;
        }
    *out = p;
    return 0;
}
