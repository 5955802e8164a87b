/* Unit tests of the periodic tasks (server/srv_thread.c): a task runs again and again, a failing run does not end
 * it, and stopping does not wait for the period. Counts runs; never measures time. */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "srv.h"
#include "test_srv.h"

typedef struct probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int runs;
    int fail;                  /* every run returns -1 */
} probe_t;

static int probe_run(void *arg)
{
    probe_t *p = arg;
    pthread_mutex_lock(&p->mu);
    p->runs++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return p->fail ? -1 : 0;
}

/* Wait until the task has run n times (a task that stopped running leaves the test to its timeout). */
static void wait_runs(probe_t *p, int n)
{
    pthread_mutex_lock(&p->mu);
    while (p->runs < n)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static int runs(probe_t *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->runs;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* The state letter of the thread named name ('S': asleep; '?' none such), from /proc/self/task. */
static char thread_state(const char *name)
{
    char state = '?', path[300], buf[512];
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;

    while (d != NULL && state == '?' && (e = readdir(d)) != NULL) {
        FILE *f;
        size_t n;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        if (strcmp(buf, name) != 0)
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')'); /* "tid (comm) S ..." */
        if (p != NULL && p[1] == ' ')
            state = p[2];
    }
    if (d != NULL)
        closedir(d);
    return state;
}

/* Until the task's thread sleeps (in its wait for the period: it has no other place to sleep). */
static void wait_asleep(const char *name)
{
    const struct timespec ms = {0, 1000000L};
    while (thread_state(name) != 'S')
        nanosleep(&ms, NULL);
}

#define PROBE_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0}

START_TEST(t_task_repeats)
{
    probe_t p = PROBE_INIT;
    srv_task_t *t = NULL;
    ck_assert_int_eq(srv_task_start("test-repeat", 1, probe_run, &p, &t), 0);
    ck_assert_ptr_nonnull(t);
    wait_runs(&p, 5);
    srv_task_stop(t);
    int n = runs(&p);
    ck_assert_int_ge(n, 5);
    ck_assert_int_eq(runs(&p), n); /* joined: nothing runs after stop returned */
}
END_TEST

START_TEST(t_failing_run_keeps_period)
{
    probe_t p = PROBE_INIT;
    srv_task_t *t = NULL;
    p.fail = 1;
    ck_assert_int_eq(srv_task_start("test-fail", 1, probe_run, &p, &t), 0);
    wait_runs(&p, 3); /* the first failure did not end the task */
    srv_task_stop(t);
    ck_assert_int_ge(runs(&p), 3);
}
END_TEST

/* An hour's period: stop wakes the sleeping thread instead of waiting for the hour, and the task never ran. */
START_TEST(t_stop_long_period)
{
    probe_t p = PROBE_INIT;
    srv_task_t *t = NULL;
    ck_assert_int_eq(srv_task_start("test-hour", 3600u * 1000u, probe_run, &p, &t), 0);
    wait_asleep("test-hour");
    srv_task_stop(t);
    ck_assert_int_eq(runs(&p), 0);
}
END_TEST

START_TEST(t_start_refusals)
{
    probe_t p = PROBE_INIT;
    srv_task_t *t = (srv_task_t *)&p;
    ck_assert_int_eq(srv_task_start("test-zero", 0, probe_run, &p, &t), -1);
    ck_assert_ptr_null(t);
    srv_task_stop(NULL);
}
END_TEST

/* ---- worker pools ---- */

typedef struct pool_job {
    srv_pool_item_t item; /* first */
    struct pool_probe *probe;
    pthread_t ran_on;
} pool_job_t;

typedef struct pool_probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, started;
    int gate_open;        /* 0: a job waits for it */
} pool_probe_t;

static pool_probe_t pprobe = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 1};

static void pool_job_run(srv_pool_item_t *item)
{
    pool_job_t *j = (pool_job_t *)item;
    pool_probe_t *p = j->probe;
    pthread_mutex_lock(&p->mu);
    p->started++;
    pthread_cond_broadcast(&p->cv);
    while (!p->gate_open)
        pthread_cond_wait(&p->cv, &p->mu);
    j->ran_on = pthread_self();
    p->done++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void pool_wait(pool_probe_t *p, const int *what, int n)
{
    pthread_mutex_lock(&p->mu);
    while (*what < n)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void pool_wait_idle(srv_pool_t *pool, unsigned n)
{
    while (srv_pool_idle(pool) != n) /* bounded by the test's timeout */
        nanosleep(&(struct timespec){0, 1000000}, NULL);
}

static void pool_gate(int open)
{
    pthread_mutex_lock(&pprobe.mu);
    pprobe.gate_open = open;
    pthread_cond_broadcast(&pprobe.cv);
    pthread_mutex_unlock(&pprobe.mu);
}

/* A pool (o) for n fresh jobs of pprobe, its gate open or not. */
static srv_pool_t *pool_begin_opts(pool_job_t *jobs, int n, int gate_open, const srv_pool_opts_t *o)
{
    srv_pool_t *pool = NULL;
    memset(jobs, 0, (size_t)n * sizeof(*jobs));
    for (int i = 0; i < n; i++)
        jobs[i].probe = &pprobe;
    pprobe.done = pprobe.started = 0;
    pprobe.gate_open = gate_open;
    ck_assert_int_eq(srv_pool_start(o, pool_job_run, &pool), 0);
    return pool;
}

/* Threads that never end for idleness, and queue_max. */
static srv_pool_t *pool_begin(pool_job_t *jobs, int n, int gate_open, unsigned threads, size_t queue_max)
{
    srv_pool_opts_t o = {.threads = threads, .queue_max = queue_max};
    return pool_begin_opts(jobs, n, gate_open, &o);
}

/* One job at a time, each submitted once every thread is idle again: the thread that went idle last takes it, so the
 * same thread runs them all (with one condition variable for all, the threads took turns). */
START_TEST(t_pool_last_idle_first)
{
    pool_job_t jobs[20];
    srv_pool_t *pool = pool_begin(jobs, 20, 1, 4, 8);
    for (int i = 0; i < 20; i++) {
        pool_wait_idle(pool, 4);
        ck_assert_int_eq(srv_pool_submit(pool, &jobs[i].item), 0);
        pool_wait(&pprobe, &pprobe.done, i + 1);
    }
    for (int i = 1; i < 20; i++)
        ck_assert_msg(pthread_equal(jobs[i].ran_on, jobs[0].ran_on), "job %d ran on another thread", i);
    srv_pool_stop(pool);
}
END_TEST

/* Every thread busy: items queue up to queue_max, the next is refused; stop runs what was queued. */
START_TEST(t_pool_queue_limit)
{
    pool_job_t jobs[6];
    srv_pool_t *pool = pool_begin(jobs, 6, 0, 2, 3);
    ck_assert_int_eq(srv_pool_submit(pool, &jobs[0].item), 0);
    ck_assert_int_eq(srv_pool_submit(pool, &jobs[1].item), 0);
    pool_wait(&pprobe, &pprobe.started, 2); /* both threads hold a job */
    ck_assert_uint_eq(srv_pool_idle(pool), 0);
    for (int i = 2; i < 5; i++)
        ck_assert_int_eq(srv_pool_submit(pool, &jobs[i].item), 0);
    ck_assert_int_eq(srv_pool_submit(pool, &jobs[5].item), -1); /* queue_max 3 */
    pool_gate(1);
    srv_pool_stop(pool);
    ck_assert_int_eq(pprobe.done, 5);
    srv_pool_opts_t none = {.threads = 0, .queue_max = 1};
    ck_assert_int_eq(srv_pool_start(&none, pool_job_run, &pool), -1);
    ck_assert_ptr_null(pool);
    srv_pool_stop(NULL);
}
END_TEST

/* Threads idle for idle_ms end down to keep; jobs that find no idle thread start new ones, up to the pool's size, and
 * then queue. A thread that ended and one that runs are all joined by stop. */
START_TEST(t_pool_idle_threads_end)
{
    pool_job_t jobs[10];
    srv_pool_opts_t o = {.threads = 4, .keep = 1, .idle_ms = 50, .queue_max = 2};
    srv_pool_t *pool = pool_begin_opts(jobs, 10, 0, &o);
    ck_assert_uint_eq(srv_pool_live(pool), 4); /* all started at once */
    while (srv_pool_live(pool) != 1) /* bounded by the test's timeout */
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    nanosleep(&(struct timespec){0, 150000000}, NULL);
    ck_assert_uint_eq(srv_pool_live(pool), 1); /* keep: the last one stays */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(srv_pool_submit(pool, &jobs[i].item), 0);
    pool_wait(&pprobe, &pprobe.started, 4); /* each on a thread of its own: three started for them */
    ck_assert_uint_eq(srv_pool_live(pool), 4);
    ck_assert_int_eq(srv_pool_submit(pool, &jobs[4].item), 0);
    ck_assert_int_eq(srv_pool_submit(pool, &jobs[5].item), 0);
    ck_assert_int_eq(srv_pool_submit(pool, &jobs[6].item), -1); /* 4 threads busy, queue_max 2 */
    pool_gate(1);
    pool_wait(&pprobe, &pprobe.done, 6);
    while (srv_pool_live(pool) != 1)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    /* Two that ended, then a slot reused while another thread is busy. */
    pool_gate(0);
    ck_assert_int_eq(srv_pool_submit(pool, &jobs[7].item), 0);
    ck_assert_int_eq(srv_pool_submit(pool, &jobs[8].item), 0);
    pool_wait(&pprobe, &pprobe.started, 8);
    ck_assert_uint_eq(srv_pool_live(pool), 2);
    pool_gate(1);
    srv_pool_stop(pool);
    ck_assert_int_eq(pprobe.done, 8);
}
END_TEST

TCase *srv_thread_tcase(void)
{
    TCase *tc = tcase_create("thread");
    tcase_add_test(tc, t_task_repeats);
    tcase_add_test(tc, t_failing_run_keeps_period);
    tcase_add_test(tc, t_stop_long_period);
    tcase_add_test(tc, t_start_refusals);
    tcase_add_test(tc, t_pool_last_idle_first);
    tcase_add_test(tc, t_pool_queue_limit);
    tcase_add_test(tc, t_pool_idle_threads_end);
    return tc;
}
