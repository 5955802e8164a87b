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
 * Also the worker pools (srv_pool_*, srv.h): the most recently idle thread takes the next item; threads idle for long
 * beyond a few end, and come back when the load does.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
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

/* ---- worker pools ----------------------------------------------------------
 * A slot holds a thread or not. The threads that run are at least keep; a thread idle for idle_ms beyond those ends,
 * and its slot takes a new thread when a job finds no idle one (joined first: an ended thread has set its slot's
 * state under mu and does nothing after but return). A thread that ends hands its malloc per-thread cache back to the
 * heaps, where malloc_trim can return the pages, and its stack: the few threads a light load keeps busy stay warm,
 * the others' memory goes back. */
enum { W_NONE, W_LIVE, W_ENDED };

typedef struct pool_worker {
    srv_pool_t *pool;
    pthread_t thread;
    pthread_cond_t cv;           /* this thread's wake-up (CLOCK_MONOTONIC) */
    srv_pool_item_t *item;       /* handed to it by srv_pool_submit (under the pool's mu) */
    struct pool_worker *next_idle;
    int idle;                    /* on the idle stack */
    int state;                   /* W_*, under mu */
} pool_worker_t;

struct srv_pool {
    pthread_mutex_t mu;
    srv_pool_fn run;
    int nice;
    unsigned idle_ms;            /* 0: threads never end */
    pool_worker_t *idle;         /* the stack of idle threads: the last one to go idle on top */
    srv_pool_item_t *head, *tail; /* the queue, when every thread is busy */
    size_t queued, queue_max;
    int stopping;
    unsigned n, keep, live;      /* slots; threads kept however long idle; threads running (W_LIVE) */
    pool_worker_t w[];
};

/* Take w off the idle stack (under mu). */
static void idle_unlink(srv_pool_t *p, pool_worker_t *w)
{
    for (pool_worker_t **pp = &p->idle; *pp != NULL; pp = &(*pp)->next_idle)
        if (*pp == w) {
            *pp = w->next_idle;
            break;
        }
    w->idle = 0;
}

static void *pool_main(void *arg)
{
    pool_worker_t *w = arg;
    srv_pool_t *p = w->pool;
    struct timespec until = {0, 0};
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
                deadline_in(&until, p->idle_ms);
            }
            if (p->idle_ms == 0) {
                pthread_cond_wait(&w->cv, &p->mu);
            } else if (pthread_cond_timedwait(&w->cv, &p->mu, &until) == ETIMEDOUT && w->idle) {
                if (p->live > p->keep && !p->stopping) {
                    idle_unlink(p, w);
                    w->state = W_ENDED;
                    p->live--;
                    break;
                }
                deadline_in(&until, p->idle_ms); /* one of those kept: another period */
            }
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        p->run(it);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Start a thread in slot w, which runs item first (item NULL: it goes idle). Under mu, or before the pool is shared.
 * Its signals blocked: they belong to srv_http_run()'s sigwait. @return 0, or -1 (the slot stays empty) */
static int worker_start(srv_pool_t *p, pool_worker_t *w, srv_pool_item_t *item)
{
    sigset_t all, old;
    if (w->state == W_ENDED)
        pthread_join(w->thread, NULL);
    w->state = W_NONE;
    w->item = item;
    w->idle = 0;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, pool_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        w->item = NULL;
        return -1;
    }
    w->state = W_LIVE;
    p->live++;
    return 0;
}

/* A slot without a running thread (under mu), or NULL. */
static pool_worker_t *free_slot(srv_pool_t *p)
{
    for (unsigned i = 0; i < p->n; i++)
        if (p->w[i].state != W_LIVE)
            return &p->w[i];
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
    } else if (p->live < p->n && (w = free_slot(p)) != NULL && worker_start(p, w, item) == 0) {
        /* a new thread for it: the busy ones keep theirs */
    } else if (p->queued >= p->queue_max) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    } else { /* every thread busy (or none could be started: the keep threads run the queue) */
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

unsigned srv_pool_live(srv_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    unsigned n = p->live;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void srv_pool_stop(srv_pool_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    for (unsigned i = 0; i < p->n; i++)
        if (p->w[i].state == W_LIVE)
            pthread_cond_signal(&p->w[i].cv);
    pthread_mutex_unlock(&p->mu);
    /* Once stopping, no thread starts (submit refuses) and none ends for idleness: the slots' states stay as read
     * here; the threads run the queue, then return. */
    for (unsigned i = 0; i < p->n; i++)
        if (p->w[i].state != W_NONE)
            pthread_join(p->w[i].thread, NULL);
    for (unsigned i = 0; i < p->n; i++)
        pthread_cond_destroy(&p->w[i].cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int srv_pool_start(const srv_pool_opts_t *o, srv_pool_fn run, srv_pool_t **out)
{
    *out = NULL;
    if (o->threads == 0 || run == NULL)
        return -1;
    srv_pool_t *p = calloc(1, sizeof(*p) + o->threads * sizeof(pool_worker_t));
    if (p == NULL)
        return -1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    p->run = run;
    p->nice = o->nice;
    p->queue_max = o->queue_max;
    p->idle_ms = o->idle_ms;
    p->n = o->threads;
    p->keep = o->keep == 0 ? 1 : o->keep > o->threads ? o->threads : o->keep;
    for (unsigned i = 0; i < p->n; i++) {
        p->w[i].pool = p;
        pthread_cond_init(&p->w[i].cv, &ca);
    }
    pthread_condattr_destroy(&ca);
    /* All of them now, so that a start that cannot make its threads fails here; the idle ones beyond keep end later. */
    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < p->n; i++)
        if (worker_start(p, &p->w[i], NULL) != 0) {
            pthread_mutex_unlock(&p->mu);
            srv_pool_stop(p);
            return -1;
        }
    pthread_mutex_unlock(&p->mu);
    *out = p;
    return 0;
}
