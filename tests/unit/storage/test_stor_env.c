/* test_stor_env.c - environment lifetime, group commit, failures, shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_stor.h"

/* ---- open / close ------------------------------------------------------ */

START_TEST(t_open_creates_dir)
{
    char path[PATH_MAX];
    stor_env_t *env;
    struct stat st;
    stor_user_t u;

    ck_assert_int_lt(snprintf(path, sizeof(path), "%s/sub", tst_path()), (int)sizeof(path));
    ck_assert_int_ne(stat(path, &st), 0);
    env = tst_open(path, 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0700);
    tst_user(&u, "alice", 1);
    ck_assert_int_eq(tst_put_user(env, &u), 0);
    stor_close(env);
    ck_assert_int_eq(snprintf(path + strlen(path), sizeof(path) - strlen(path), "/data.mdb") > 0, 1);
    ck_assert_int_eq(stat(path, &st), 0);
}
END_TEST

START_TEST(t_open_errors)
{
    stor_config_t cfg = { 0 };
    stor_env_t *env = (stor_env_t *)&cfg;
    char path[PATH_MAX];
    FILE *f;

    ck_assert_int_eq(stor_open(NULL, &env), STOR_ERR_INVAL);
    ck_assert_ptr_null(env);
    ck_assert_int_eq(stor_open(&cfg, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_open(&cfg, &env), STOR_ERR_INVAL); /* NULL path */
    cfg.location = "";
    ck_assert_int_eq(stor_open(&cfg, &env), STOR_ERR_INVAL);
    /* a regular file where the directory should be */
    ck_assert_int_lt(snprintf(path, sizeof(path), "%s/file", tst_path()), (int)sizeof(path));
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    cfg.location = path;
    ck_assert_int_eq(stor_open(&cfg, &env), STOR_ERR_IO);
    ck_assert_ptr_null(env);
    /* a missing parent */
    ck_assert_int_lt(snprintf(path, sizeof(path), "%s/no/such", tst_path()), (int)sizeof(path));
    ck_assert_int_eq(stor_open(&cfg, &env), STOR_ERR_IO);
    stor_close(NULL);
    ck_assert_int_eq(stor_write(NULL, NULL, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_read(NULL, NULL, NULL), STOR_ERR_INVAL);
}
END_TEST

START_TEST(t_null_callbacks)
{
    stor_env_t *env = tst_open(tst_path(), 0);

    ck_assert_int_eq(stor_write(env, NULL, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_read(env, NULL, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_audit_each(env, 1, NULL, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_user_get(env, "a", NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_cred_get(env, "a", NULL), STOR_ERR_INVAL);
    stor_close(env);
}
END_TEST

START_TEST(t_strerror)
{
    const int codes[] = { STOR_OK, STOR_ERR_NOTFOUND, STOR_ERR_EXISTS, STOR_ERR_IO, STOR_ERR_FULL,
                          STOR_ERR_CORRUPT, STOR_ERR_INVAL, STOR_ERR_NOMEM, STOR_ERR_CLOSED };
    const size_t n = sizeof(codes) / sizeof(codes[0]);
    const char *unknown = stor_strerror(-1000);

    ck_assert_ptr_nonnull(unknown);
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(stor_strerror(codes[i]));
        ck_assert_str_ne(stor_strerror(codes[i]), unknown);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(stor_strerror(codes[i]), stor_strerror(codes[j]));
    }
    ck_assert_str_eq(stor_strerror(STOR_ERR_FULL), "storage is full (the map or the disk)");
    ck_assert_str_eq(stor_strerror(7), unknown);
}
END_TEST

START_TEST(t_wipe)
{
    uint8_t buf[40];

    memset(buf, 0xAB, sizeof(buf));
    stor_wipe(buf, sizeof(buf) - 1);
    for (size_t i = 0; i + 1 < sizeof(buf); i++)
        ck_assert_uint_eq(buf[i], 0);
    ck_assert_uint_eq(buf[sizeof(buf) - 1], 0xAB);
    stor_wipe(NULL, 10);
    stor_wipe(buf, 0);
}
END_TEST

/* ---- group commit ------------------------------------------------------ */

static int incr_fn(stor_txn_t *t, void *arg)
{
    stor_user_t u;
    int rc;

    (void)arg;
    if ((rc = stor_txn_user_get(t, "counter", &u)) != 0)
        return rc;
    u.failed_logins++;
    return stor_txn_user_put(t, &u, 0);
}

typedef struct incr_thread {
    pthread_t th;
    stor_env_t *env;
    int n, failures;
} incr_thread_t;

static void *incr_main(void *arg)
{
    incr_thread_t *it = arg;

    for (int i = 0; i < it->n; i++)
        it->failures += stor_write(it->env, incr_fn, NULL) != 0;
    return NULL;
}

static uint32_t counter_value(stor_env_t *env)
{
    stor_user_t u;

    ck_assert_int_eq(stor_user_get(env, "counter", &u), 0);
    return u.failed_logins;
}

static int task_count(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* writer_later: writes refused until stor_start_writer, which opens them once; closing works either way. No thread
 * is started at any point (the callers of stor_write run the batches). */
START_TEST(t_writer_later)
{
    char path[PATH_MAX];
    stor_env_t *env = NULL;
    stor_user_t u;

    ck_assert_int_lt(snprintf(path, sizeof(path), "%s", tst_path()), (int)sizeof(path));
    stor_config_t cfg = {.location = path, .writer_later = 1};
    int before = task_count();
    ck_assert_int_eq(stor_open(&cfg, &env), 0);
    ck_assert_int_eq(task_count(), before);
    ck_assert_int_eq(stor_write(env, incr_fn, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_user_get(env, "counter", &u), STOR_ERR_NOTFOUND); /* reads work */
    ck_assert_int_eq(stor_start_writer(env), 0);
    ck_assert_int_eq(task_count(), before);
    ck_assert_int_eq(stor_start_writer(env), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_start_writer(NULL), STOR_ERR_INVAL);
    tst_user(&u, "counter", 0);
    ck_assert_int_eq(tst_put_user(env, &u), 0);
    ck_assert_int_eq(stor_write(env, incr_fn, NULL), 0);
    ck_assert_uint_eq(counter_value(env), 1);
    stor_close(env);
    ck_assert_int_eq(task_count(), before);
    /* never started: closes without a writer to join */
    ck_assert_int_eq(stor_open(&cfg, &env), 0);
    stor_close(env);
}
END_TEST

START_TEST(t_concurrent_increment)
{
    char path[PATH_MAX];
    stor_env_t *env;
    incr_thread_t th[8];
    stor_stats_t st0, st1;
    stor_user_t u;

    ck_assert_int_lt(snprintf(path, sizeof(path), "%s", tst_path()), (int)sizeof(path));
    env = tst_open(path, 0);
    tst_user(&u, "counter", 0);
    ck_assert_int_eq(tst_put_user(env, &u), 0);
    stor_int_stats(env, &st0);
    for (int i = 0; i < 8; i++) {
        th[i] = (incr_thread_t){ .env = env, .n = 200 };
        ck_assert_int_eq(pthread_create(&th[i].th, NULL, incr_main, &th[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(pthread_join(th[i].th, NULL), 0);
        ck_assert_int_eq(th[i].failures, 0);
    }
    ck_assert_uint_eq(counter_value(env), 1600);
    stor_int_stats(env, &st1);
    ck_assert_uint_eq(st1.jobs - st0.jobs, 1600);
    ck_assert_uint_le(st1.batches - st0.batches, 1600);
    ck_assert_uint_le(st1.max_batch, 8);
    /* /metrics's view of the same commits: every batch in exactly one bucket of the time histogram */
    stor_commit_stats_t cs;
    uint64_t in_buckets = 0;
    stor_commit_stats(env, &cs);
    ck_assert_uint_eq(cs.batches, st1.batches);
    ck_assert_uint_eq(cs.jobs, st1.jobs);
    for (size_t i = 0; i <= STOR_COMMIT_BUCKETS; i++)
        in_buckets += cs.buckets[i];
    ck_assert_uint_eq(in_buckets, cs.batches);
    ck_assert(cs.seconds > 0);
    stor_close(env);
    /* durable: a fresh open sees the final value */
    env = tst_open(path, 0);
    ck_assert_uint_eq(counter_value(env), 1600);
    stor_close(env);
}
END_TEST

/* stor_size (/metrics): the pages in use, within the map, growing with what is written. */
static int big_put_fn(stor_txn_t *t, void *arg)
{
    static char big[256 * 1024];
    stor_val_t k = STOR_VAL("size-test", 9), v = STOR_VAL(big, sizeof(big));

    (void)arg;
    memset(big, 'x', sizeof(big));
    return stor_kv_put(t, STOR_DB_META, &k, &v, 0);
}

/* LMDB sizes its lock file with ftruncate and each reader writes its slot through a shared map: a slot on a page
 * without blocks, taken while the disk is full, is a SIGBUS. The backend gives the whole file its blocks at open
 * (stor_lmdb.c), so it counts as many 512-byte blocks as its size needs. Skipped where fallocate is not offered. */
START_TEST(t_lock_file_reserved)
{
    char path[PATH_MAX], probe[PATH_MAX + 8];
    const char *dir = tst_path();
    struct stat st;

    ck_assert_int_lt(snprintf(path, sizeof(path), "%s/lock.mdb", dir), (int)sizeof(path));
    ck_assert_int_lt(snprintf(probe, sizeof(probe), "%s/probe", dir), (int)sizeof(probe));
    int fd = open(probe, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    int offered = fallocate(fd, 0, 0, 4096) == 0 || errno != EOPNOTSUPP;
    close(fd);
    unlink(probe);
    if (!offered)
        return;
    stor_env_t *env = tst_open(dir, 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_gt(st.st_size, 4096); /* more than the page LMDB writes its header into */
    ck_assert_int_ge((long long)st.st_blocks * 512, (long long)st.st_size);
    stor_close(env);
}
END_TEST

/* The environment open keeps LMDB's fcntl lock on lock.mdb: another process that asks (F_GETLK, for a write lock
 * on its first byte, as LMDB's first opener does) finds it held. Before, the descriptor the lock file's reservation
 * opened was closed, which dropped every lock of this process on the file; the next process to open the
 * environment then took it for unused and initialised the lock table again under the live ones. */
START_TEST(t_lock_kept)
{
    char path[PATH_MAX];
    const char *dir = tst_path();
    stor_env_t *env = tst_open(dir, 0);

    ck_assert_int_lt(snprintf(path, sizeof(path), "%s/lock.mdb", dir), (int)sizeof(path));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* F_GETLK answers for other processes' locks only */
        int fd = open(path, O_RDWR | O_CLOEXEC);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        _exit(fd >= 0 && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK ? 0 : 1);
    }
    int status = -1;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "lock.mdb is not locked by the open environment");
    stor_close(env);
}
END_TEST

START_TEST(t_size)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    uint64_t used0 = 0, used1 = 0, cap = 0;

    ck_assert_int_eq(stor_size(env, &used0, &cap), STOR_OK);
    ck_assert_uint_gt(used0, 0);
    ck_assert_uint_le(used0, cap);
    ck_assert_int_eq(stor_write(env, big_put_fn, NULL), 0);
    ck_assert_int_eq(stor_size(env, &used1, &cap), STOR_OK);
    ck_assert_uint_ge(used1, used0 + 256 * 1024);
    ck_assert_uint_le(used1, cap);
    ck_assert_int_eq(stor_size(NULL, &used1, &cap), STOR_ERR_INVAL);
    stor_close(env);
}
END_TEST

START_TEST(t_batching)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    tst_async_t jobs[16];
    stor_stats_t st0, st1;
    tst_blocker_t b;
    stor_user_t u;

    tst_user(&u, "counter", 0);
    ck_assert_int_eq(tst_put_user(env, &u), 0);
    stor_int_stats(env, &st0);
    tst_blocker_start(&b, env);
    for (int i = 0; i < 16; i++)
        tst_async_start(&jobs[i], env, incr_fn, NULL);
    tst_wait_queued(env, 16);
    tst_blocker_release(&b);
    ck_assert_int_eq(tst_blocker_join(&b), 0);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(tst_async_join(&jobs[i]), 0);
    stor_int_stats(env, &st1);
    /* the blocker's batch, then all 16 queued jobs in one txn */
    ck_assert_uint_eq(st1.batches - st0.batches, 2);
    ck_assert_uint_eq(st1.last_batch, 16);
    ck_assert_uint_eq(counter_value(env), 16);
    stor_close(env);
}
END_TEST

START_TEST(t_batch_cap)
{
    enum { N = STOR_BATCH_MAX + 10 };
    stor_env_t *env = tst_open(tst_path(), 0);
    tst_async_t *jobs = calloc(N, sizeof(*jobs));
    stor_stats_t st0, st1;
    tst_blocker_t b;
    stor_user_t u;

    ck_assert_ptr_nonnull(jobs);
    tst_user(&u, "counter", 0);
    ck_assert_int_eq(tst_put_user(env, &u), 0);
    stor_int_stats(env, &st0);
    tst_blocker_start(&b, env);
    for (int i = 0; i < N; i++)
        tst_async_start(&jobs[i], env, incr_fn, NULL);
    tst_wait_queued(env, N);
    tst_blocker_release(&b);
    ck_assert_int_eq(tst_blocker_join(&b), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(tst_async_join(&jobs[i]), 0);
    stor_int_stats(env, &st1);
    ck_assert_uint_eq(st1.batches - st0.batches, 3);
    ck_assert_uint_eq(st1.max_batch, STOR_BATCH_MAX);
    ck_assert_uint_eq(st1.last_batch, 10);
    ck_assert_uint_eq(counter_value(env), N);
    free(jobs);
    stor_close(env);
}
END_TEST

#define MY_ERR (-1000)

/* The jobs of a batch count their runs in the unsigned their arg points to (NULL: none). */
static void ran(void *arg)
{
    if (arg != NULL)
        __atomic_add_fetch((unsigned *)arg, 1, __ATOMIC_RELAXED);
}

static int put_d_only(stor_txn_t *t, void *arg)
{
    stor_user_t u;

    ran(arg);
    tst_user(&u, "d", 0);
    return stor_txn_user_put(t, &u, 1);
}

static int put_a(stor_txn_t *t, void *arg)
{
    stor_user_t u;

    ran(arg);
    tst_user(&u, "a", 0);
    return stor_txn_user_put(t, &u, 1);
}

static int put_b_then_fail(stor_txn_t *t, void *arg)
{
    stor_user_t u;

    ran(arg);
    tst_user(&u, "b", 0);
    ck_assert_int_eq(stor_txn_user_put(t, &u, 1), 0);
    ck_assert_int_eq(stor_txn_user_get(t, "b", &u), 0); /* visible inside its own txn */
    return MY_ERR;
}

static int put_c(stor_txn_t *t, void *arg)
{
    stor_user_t u;

    ran(arg);
    /* an earlier job of this batch failed: its write must not be visible here */
    ck_assert_int_eq(stor_txn_user_get(t, "b", &u), STOR_ERR_NOTFOUND);
    tst_user(&u, "c", 0);
    return stor_txn_user_put(t, &u, 1);
}

/* Puts "c" after checking that "a", put by the job before it in the batch, is visible. */
static int put_c_after_a(stor_txn_t *t, void *arg)
{
    stor_user_t u;

    ran(arg);
    ck_assert_int_eq(stor_txn_user_get(t, "a", &u), 0);
    tst_user(&u, "c", 0);
    return stor_txn_user_put(t, &u, 1);
}

/* Queue three jobs behind a blocker so that they run as one batch. */
static void batch_of_three(stor_env_t *env, stor_txn_fn a, stor_txn_fn b, stor_txn_fn c, unsigned runs[3],
                           int want[3])
{
    tst_async_t ja, jb, jc;
    tst_blocker_t bl;

    tst_blocker_start(&bl, env);
    tst_async_start(&ja, env, a, &runs[0]);
    tst_wait_queued(env, 1);
    tst_async_start(&jb, env, b, &runs[1]);
    tst_wait_queued(env, 2);
    tst_async_start(&jc, env, c, &runs[2]);
    tst_wait_queued(env, 3);
    tst_blocker_release(&bl);
    ck_assert_int_eq(tst_blocker_join(&bl), 0);
    ck_assert_int_eq(tst_async_join(&ja), want[0]);
    ck_assert_int_eq(tst_async_join(&jb), want[1]);
    ck_assert_int_eq(tst_async_join(&jc), want[2]);
}

/* A job that fails in a batch takes nothing of the others with it. The batch ran flat (one txn) until b failed; b
 * keeps its answer and is not run again; the others run again, each in a nested txn, so a is run twice and c, which
 * came after the failure, once. */
START_TEST(t_nested_rollback)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    unsigned runs[3] = {0, 0, 0};
    int want[3] = {0, MY_ERR, 0};
    stor_stats_t st;
    stor_user_t u;

    batch_of_three(env, put_a, put_b_then_fail, put_c, runs, want);
    stor_int_stats(env, &st);
    ck_assert_uint_eq(st.last_batch, 3);
    ck_assert_uint_eq(st.nested, 2); /* a and c in the second pass; none for the blocker's batch of one */
    ck_assert_uint_eq(runs[0], 2);
    ck_assert_uint_eq(runs[1], 1);
    ck_assert_uint_eq(runs[2], 1);
    ck_assert_int_eq(stor_user_get(env, "a", &u), 0);
    ck_assert_int_eq(stor_user_get(env, "b", &u), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_user_get(env, "c", &u), 0);
    stor_close(env);
}
END_TEST

/* A batch whose jobs all succeed runs them in its own txn: no nested txn (LMDB allocates 3 MiB for each: the soak's
 * creeping csc-sam), each job once, and each sees the writes of the jobs before it. (Each job had a nested txn.) */
START_TEST(t_batch_flat)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    unsigned runs[3] = {0, 0, 0};
    int want[3] = {0, 0, 0};
    stor_stats_t st;
    stor_user_t u;

    batch_of_three(env, put_a, put_d_only, put_c_after_a, runs, want);
    stor_int_stats(env, &st);
    ck_assert_uint_eq(st.last_batch, 3);
    ck_assert_uint_eq(st.nested, 0);
    ck_assert_uint_eq(runs[0], 1);
    ck_assert_uint_eq(runs[1], 1);
    ck_assert_uint_eq(runs[2], 1);
    ck_assert_int_eq(stor_user_get(env, "a", &u), 0);
    ck_assert_int_eq(stor_user_get(env, "d", &u), 0);
    ck_assert_int_eq(stor_user_get(env, "c", &u), 0);
    stor_close(env);
}
END_TEST

/* A user "d" and a signature event of credential "cred-d"; fails with MY_ERR after both if arg is set. */
static int put_d_and_recent(stor_txn_t *t, void *arg)
{
    stor_user_t u;

    tst_user(&u, "d", 0);
    ck_assert_int_eq(stor_txn_user_put(t, &u, 1), 0);
    ck_assert_int_eq(stor_txn_recent_add(t, STOR_RECENT_SIGNS, "cred-d", 1000, 1, STOR_RES_OK, "client"), 0);
    return arg != NULL ? MY_ERR : 0;
}

static int get_recent_d(stor_txn_t *t, void *arg)
{
    return stor_txn_recent_get(t, STOR_RECENT_SIGNS, "cred-d", arg);
}

/* A batch of one job runs it in the batch's own txn, and with ample room in the map its recent-activity record is
 * put in that txn too: no nested txn at all (LMDB allocates 3 MiB for each, whose churn in csc-sam's locked heap
 * made the soak's memory creep). A failing lone job still leaves nothing behind. */
START_TEST(t_lone_job_not_nested)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    stor_stats_t st0, st1;
    stor_recent_t r;
    stor_user_t u;

    ck_assert_int_eq(stor_room_ample(env), 1);
    stor_int_stats(env, &st0);
    ck_assert_int_eq(stor_write(env, put_d_and_recent, "fail"), MY_ERR);
    ck_assert_int_eq(stor_user_get(env, "d", &u), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_read(env, get_recent_d, &r), 0);
    ck_assert_uint_eq(r.n, 0);
    ck_assert_int_eq(stor_write(env, put_d_and_recent, NULL), 0);
    ck_assert_int_eq(stor_user_get(env, "d", &u), 0);
    ck_assert_int_eq(stor_read(env, get_recent_d, &r), 0);
    ck_assert_uint_eq(r.n, 1);
    stor_int_stats(env, &st1);
    ck_assert_uint_eq(st1.batches - st0.batches, 2);
    ck_assert_uint_eq(st1.nested - st0.nested, 0);
    stor_close(env);
}
END_TEST

static int positive_fn(stor_txn_t *t, void *arg)
{
    stor_user_t u;

    (void)arg;
    tst_user(&u, "p", 0);
    ck_assert_int_eq(stor_txn_user_put(t, &u, 0), 0);
    return 5;
}

START_TEST(t_nonzero_rc_discards)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    stor_user_t u;

    ck_assert_int_eq(stor_write(env, positive_fn, NULL), 5);
    ck_assert_int_eq(stor_user_get(env, "p", &u), STOR_ERR_NOTFOUND);
    stor_close(env);
}
END_TEST

START_TEST(t_commit_failure)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    tst_async_t ja, jb;
    tst_blocker_t b;
    stor_user_t u;

    stor_int_fail_commits(env, 1);
    ck_assert_int_eq(stor_write(env, put_a, NULL), STOR_ERR_IO);
    ck_assert_int_eq(stor_user_get(env, "a", &u), STOR_ERR_NOTFOUND);

    /* a failing batch: the job whose fn succeeded gets IO, the one that failed keeps its code */
    stor_int_fail_commits(env, 2);
    tst_blocker_start(&b, env);
    tst_async_start(&ja, env, put_a, NULL);
    tst_async_start(&jb, env, put_b_then_fail, NULL);
    tst_wait_queued(env, 2);
    tst_blocker_release(&b);
    ck_assert_int_eq(tst_blocker_join(&b), STOR_ERR_IO);
    ck_assert_int_eq(tst_async_join(&ja), STOR_ERR_IO);
    ck_assert_int_eq(tst_async_join(&jb), MY_ERR);
    ck_assert_int_eq(stor_user_get(env, "a", &u), STOR_ERR_NOTFOUND);

    /* the environment is still usable */
    ck_assert_int_eq(stor_write(env, put_a, NULL), 0);
    ck_assert_int_eq(stor_user_get(env, "a", &u), 0);
    stor_close(env);
}
END_TEST

static int recursive_write(stor_txn_t *t, void *arg)
{
    (void)t;
    return stor_write(arg, put_a, NULL);
}

static int read_in_write(stor_txn_t *t, void *arg)
{
    stor_user_t u;

    (void)t;
    return stor_user_get(arg, "a", &u);
}

static int nested_read_inner(stor_txn_t *t, void *arg)
{
    stor_user_t u;

    (void)arg;
    return stor_txn_user_get(t, "a", &u);
}

static int nested_read_outer(stor_txn_t *t, void *arg)
{
    stor_user_t u;
    int rc;

    if ((rc = stor_read(arg, nested_read_inner, NULL)) != 0)
        return rc;
    return stor_txn_user_get(t, "a", &u);
}

static int whose_thread(stor_txn_t *t, void *arg)
{
    *(pthread_t *)arg = pthread_self();
    return incr_fn(t, NULL);
}

/* A write that finds no batch running runs on its caller's thread: it is not handed to another thread and back
 * (two wake-ups per write, the largest cost of a lone write after its fsync). */
START_TEST(t_lone_write_inline)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    stor_user_t u;
    stor_stats_t st0, st1;
    pthread_t ran = 0;

    tst_user(&u, "counter", 0);
    ck_assert_int_eq(tst_put_user(env, &u), 0);
    stor_int_stats(env, &st0);
    ck_assert_int_eq(stor_write(env, whose_thread, &ran), 0);
    ck_assert(pthread_equal(ran, pthread_self()));
    stor_int_stats(env, &st1);
    ck_assert_uint_eq(st1.batches - st0.batches, 1);
    ck_assert_uint_eq(counter_value(env), 1);
    stor_close(env);
}
END_TEST

START_TEST(t_reentrancy)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    stor_user_t u;

    /* stor_write() from a write callback would deadlock: it is refused */
    ck_assert_int_eq(stor_write(env, recursive_write, env), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_user_get(env, "a", &u), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_write(env, put_a, NULL), 0);
    /* reads from inside a write callback and nested reads work (read txns are not tied to a thread) */
    ck_assert_int_eq(stor_write(env, read_in_write, env), 0);
    ck_assert_int_eq(stor_read(env, nested_read_outer, env), 0);
    stor_close(env);
}
END_TEST

/* ---- shutdown ---------------------------------------------------------- */

static void *close_main(void *arg)
{
    stor_close(arg);
    return NULL;
}

static int noop_read(stor_txn_t *t, void *arg)
{
    (void)t;
    (void)arg;
    return 0;
}

START_TEST(t_close_in_progress)
{
    const char *dir = tst_path();
    char path[PATH_MAX];
    stor_env_t *env;
    tst_blocker_t b;
    tst_async_t queued;
    pthread_t closer;
    stor_user_t u;

    ck_assert_int_lt(snprintf(path, sizeof(path), "%s", dir), (int)sizeof(path));
    env = tst_open(path, 0);
    tst_blocker_start(&b, env);
    tst_async_start(&queued, env, put_a, NULL);
    tst_wait_queued(env, 1);
    ck_assert_int_eq(pthread_create(&closer, NULL, close_main, env), 0);
    while (!stor_int_closing(env))
        usleep(1000);
    /* closing has started: new work is refused, queued work is still done */
    ck_assert_int_eq(stor_write(env, put_b_then_fail, NULL), STOR_ERR_CLOSED);
    ck_assert_int_eq(stor_read(env, noop_read, NULL), STOR_ERR_CLOSED);
    tst_blocker_release(&b);
    ck_assert_int_eq(tst_blocker_join(&b), 0);
    ck_assert_int_eq(tst_async_join(&queued), 0);
    ck_assert_int_eq(pthread_join(closer, NULL), 0);

    env = tst_open(path, 0);
    ck_assert_int_eq(stor_user_get(env, "a", &u), 0);
    stor_close(env);
}
END_TEST

/* ---- a full map -------------------------------------------------------- */

typedef struct big_arg {
    int i;
    int ignore_error;
} big_arg_t;

/* A SAD with every digest slot used: 64 KiB, more than a 64 KiB map can ever hold. */
static int put_huge_sad(stor_txn_t *t, void *arg)
{
    big_arg_t *a = arg;
    stor_sad_t *s = calloc(1, sizeof(*s));
    int rc;

    ck_assert_ptr_nonnull(s);
    memset(s->hash, a->i, 32);
    s->digest_len = STOR_DIGEST_LEN_MAX;
    s->n_digests = STOR_DIGESTS_MAX;
    memset(s->digests, 0x3C, sizeof(s->digests));
    rc = stor_txn_sad_put(t, s);
    free(s);
    if (rc == STOR_ERR_FULL && a->ignore_error) {
        stor_user_t u;
        /* the txn is dead: later calls report the same failure */
        tst_user(&u, "later", 0);
        ck_assert_int_eq(stor_txn_user_put(t, &u, 0), STOR_ERR_FULL);
        ck_assert_int_eq(stor_txn_user_get(t, "later", &u), STOR_ERR_FULL);
        return 0;
    }
    return rc;
}

static int put_big_cred(stor_txn_t *t, void *arg)
{
    big_arg_t *a = arg;
    stor_cred_t *c = calloc(1, sizeof(*c));
    int rc;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_lt(snprintf(c->id, sizeof(c->id), "big%d", a->i), (int)sizeof(c->id));
    TST_SET(c->owner, "alice");
    c->certs_len = STOR_CERTS_MAX;
    memset(c->certs, a->i, STOR_CERTS_MAX);
    rc = stor_txn_cred_put(t, c, 1);
    free(c);
    return rc;
}

/* With less than a quarter of the map left, a recent-activity record goes into a nested txn of its own (where a
 * full map drops it and keeps the write it belongs to); with more, into the job's txn. */
START_TEST(t_recent_nested_when_nearly_full)
{
    stor_env_t *env = tst_open(tst_path(), 1 << 20);
    big_arg_t a = { 0, 0 };
    stor_stats_t st0, st1;
    uint64_t used = 0, cap = 0;
    stor_recent_t r;

    ck_assert_int_eq(stor_room_ample(env), 1);
    for (a.i = 0; a.i < 256 && stor_room_ample(env); a.i++)
        ck_assert_int_eq(stor_write(env, put_big_cred, &a), 0);
    ck_assert_int_eq(stor_size(env, &used, &cap), STOR_OK);
    ck_assert_uint_gt(used, cap - cap / 4);
    ck_assert_uint_lt(used, cap - cap / 8); /* still room for a few more */
    stor_int_stats(env, &st0);
    ck_assert_int_eq(stor_write(env, put_d_and_recent, NULL), 0);
    stor_int_stats(env, &st1);
    ck_assert_uint_eq(st1.nested - st0.nested, 1);
    ck_assert_int_eq(stor_read(env, get_recent_d, &r), 0);
    ck_assert_uint_eq(r.n, 1);
    stor_close(env);
}
END_TEST

START_TEST(t_map_full)
{
    const char *dir = tst_path();
    char path[PATH_MAX];
    stor_env_t *env;
    big_arg_t a = { 0, 0 };
    tst_blocker_t b;
    tst_async_t jbig, jsmall;
    stor_cred_t *c = malloc(sizeof(*c));
    stor_user_t u;
    int rc = 0;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_lt(snprintf(path, sizeof(path), "%s", dir), (int)sizeof(path));
    env = tst_open(path, 64 * 1024);
    ck_assert_int_eq(stor_write(env, put_huge_sad, &a), STOR_ERR_FULL);
    /* a callback that ignores the failure still gets it back */
    a.ignore_error = 1;
    ck_assert_int_eq(stor_write(env, put_huge_sad, &a), STOR_ERR_FULL);
    a.ignore_error = 0;

    /* a too-big and a small job in one batch: only the big one fails */
    tst_blocker_start(&b, env);
    tst_async_start(&jbig, env, put_huge_sad, &a);
    tst_wait_queued(env, 1);
    tst_async_start(&jsmall, env, put_a, NULL);
    tst_wait_queued(env, 2);
    tst_blocker_release(&b);
    ck_assert_int_eq(tst_blocker_join(&b), 0);
    ck_assert_int_eq(tst_async_join(&jbig), STOR_ERR_FULL);
    ck_assert_int_eq(tst_async_join(&jsmall), 0);
    ck_assert_int_eq(stor_user_get(env, "a", &u), 0);

    /* still usable for small writes */
    tst_user(&u, "small", 7);
    ck_assert_int_eq(tst_put_user(env, &u), 0);
    ck_assert_int_eq(stor_user_get(env, "small", &u), 0);
    ck_assert_uint_eq(u.failed_logins, 7);

    /* fill the map: it ends in FULL, never in a crash or a damaged file */
    for (a.i = 0; a.i < 64; a.i++)
        if ((rc = stor_write(env, put_big_cred, &a)) != 0)
            break;
    ck_assert_int_eq(rc, STOR_ERR_FULL);
    ck_assert_int_lt(a.i, 64);
    ck_assert_int_eq(stor_user_get(env, "small", &u), 0);
    stor_close(env);

    /* reopening with a larger map is the way out; everything written is there */
    env = tst_open(path, 1 << 20);
    ck_assert_int_eq(stor_write(env, put_big_cred, &a), 0);
    for (int i = 0; i <= a.i; i++) {
        char id[16];
        ck_assert_int_lt(snprintf(id, sizeof(id), "big%d", i), (int)sizeof(id));
        ck_assert_int_eq(stor_cred_get(env, id, c), 0);
        ck_assert_uint_eq(c->certs_len, STOR_CERTS_MAX);
        ck_assert_uint_eq(c->certs[100], (uint8_t)i);
    }
    free(c);
    stor_close(env);
}
END_TEST

static int count_storage_rec(const stor_audit_t *rec, void *arg)
{
    if (rec->event == STOR_EV_STORAGE)
        (*(int *)arg)++;
    return 0;
}

/* A full-map episode: refused writes, then a write that fits ends it. Returns how many STOR_EV_STORAGE records
 * the environment's audit trail holds afterwards. */
static int full_episode_records(int log_only)
{
    const char *dir = tst_path();
    stor_config_t cfg = { .location = dir, .map_size = 64 * 1024, .full_log_only = log_only };
    stor_env_t *env = NULL;
    big_arg_t a = { 0, 0 };
    stor_user_t u;
    int n = 0;

    ck_assert_int_eq(stor_open(&cfg, &env), 0);
    ck_assert_int_eq(stor_write(env, put_huge_sad, &a), STOR_ERR_FULL);
    ck_assert_int_eq(stor_full_status(env, NULL, NULL), 1);
    tst_user(&u, "small", 1);
    ck_assert_int_eq(tst_put_user(env, &u), 0); /* fits: the episode ends with this batch */
    ck_assert_int_eq(stor_full_status(env, NULL, NULL), 0);
    ck_assert_int_eq(stor_audit_each(env, 0, count_storage_rec, &n), 0);
    stor_close(env);
    return n;
}

/* csc-sam's environment records a full-map episode in the audit trail; csc-server's (full_log_only) says it on
 * stderr only and appends nothing, since the audit trail's writes are csc-sam's. */
START_TEST(t_map_full_audit_only_when_asked)
{
    ck_assert_int_eq(full_episode_records(0), 1);
    ck_assert_int_eq(full_episode_records(1), 0);
}
END_TEST

/* The disk under the database full: a 512 KiB tmpfs mounted in the test's own mount namespace (root only; skipped
 * where it cannot be), the map (1G) far larger. LMDB's commit meets ENOSPC, or EIO for a short write: that is
 * STOR_ERR_FULL as a full map is, never STOR_ERR_IO; the episode outlasts the first write that fits again (a disk's
 * quiet period, stor_env.c); what was written before is all there. */
START_TEST(t_disk_full)
{
    char dir[PATH_MAX], db[PATH_MAX + 4], fill[PATH_MAX + 8];
    static char block[4096];
    big_arg_t a = { 0, 0 };
    stor_cred_t *c = malloc(sizeof(*c));
    stor_user_t u;
    int rc = 0;

    ck_assert_ptr_nonnull(c);
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        free(c);
        return;
    }
    ck_assert_int_lt(snprintf(dir, sizeof(dir), "%s", tst_path()), (int)sizeof(dir));
    if (mount("tmpfs", dir, "tmpfs", 0, "size=512k") != 0) {
        free(c);
        return;
    }
    ck_assert_int_lt(snprintf(db, sizeof(db), "%s/db", dir), (int)sizeof(db));
    ck_assert_int_lt(snprintf(fill, sizeof(fill), "%s/fill", dir), (int)sizeof(fill));
    stor_env_t *env = tst_open(db, 0);
    for (a.i = 0; a.i < 4; a.i++) /* some records before the disk fills */
        ck_assert_int_eq(stor_write(env, put_big_cred, &a), 0);
    int fd = open(fill, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    while (write(fd, block, sizeof(block)) == (ssize_t)sizeof(block))
        ;
    close(fd);
    for (; a.i < 256; a.i++)
        if ((rc = stor_write(env, put_big_cred, &a)) != 0)
            break;
    ck_assert_int_eq(rc, STOR_ERR_FULL);
    ck_assert_int_eq(stor_full_status(env, NULL, NULL), 1);
    ck_assert_int_eq(unlink(fill), 0);
    tst_user(&u, "after", 1);
    ck_assert_int_eq(tst_put_user(env, &u), 0);
    ck_assert_int_eq(stor_full_status(env, NULL, NULL), 1); /* not over yet: 10 s without a refusal first */
    for (int i = 0; i < a.i; i++) {
        char id[16];
        ck_assert_int_lt(snprintf(id, sizeof(id), "big%d", i), (int)sizeof(id));
        ck_assert_int_eq(stor_cred_get(env, id, c), 0);
        ck_assert_uint_eq(c->certs[100], (uint8_t)i);
    }
    ck_assert_int_eq(stor_user_get(env, "after", &u), 0);
    stor_close(env);
    free(c);
    umount2(dir, MNT_DETACH);
}
END_TEST

/* ---- persistence and damaged files ------------------------------------- */

static void raw_put(const char *path, const char *db, const void *key, size_t klen, const void *val, size_t vlen,
                    int del)
{
    /* Straight through the backend, below the record layer: one (plain) table of the environment. */
    const stor_backend_t *be = &stor_backend_lmdb;
    stor_config_t cfg = { .location = path };
    stor_table_t table = { db, 0 };
    stor_bk_env_t *e;
    stor_bk_txn_t *txn;
    stor_val_t k = STOR_VAL(key, klen), v = STOR_VAL(val, vlen);

    ck_assert_int_eq(be->open(&cfg, &table, 1, &e), 0);
    ck_assert_int_eq(be->txn_begin(e, NULL, STOR_BK_WRITE, &txn), 0);
    if (del)
        ck_assert_int_eq(be->del(e, txn, 0, &k, NULL), 0);
    else
        ck_assert_int_eq(be->put(e, txn, 0, &k, &v, 0), 0);
    ck_assert_int_eq(be->txn_commit(txn), 0);
    be->close(e);
}

START_TEST(t_corrupt_on_disk)
{
    const char *dir = tst_path();
    char path[PATH_MAX];
    const uint8_t junk[] = { STOR_REC_USER, STOR_CODEC_VERSION, 1, 200, 0, 0, 0, 'x' };
    stor_env_t *env;
    stor_user_t u;

    ck_assert_int_lt(snprintf(path, sizeof(path), "%s", dir), (int)sizeof(path));
    env = tst_open(path, 0);
    tst_user(&u, "bob", 0);
    ck_assert_int_eq(tst_put_user(env, &u), 0);
    stor_close(env);
    raw_put(path, "users", "bob", 3, junk, sizeof(junk), 0);
    env = tst_open(path, 0);
    memset(&u, 0x55, sizeof(u));
    ck_assert_int_eq(stor_user_get(env, "bob", &u), STOR_ERR_CORRUPT);
    ck_assert_str_eq(u.name, "");
    ck_assert_uint_eq(u.pw_verifier[0], 0);
    stor_close(env);
}
END_TEST

START_TEST(t_newer_schema_refused)
{
    const char *dir = tst_path();
    char path[PATH_MAX];
    const uint8_t v99[4] = { 99, 0, 0, 0 }, bad[3] = { 1, 0, 0 };
    stor_config_t cfg = { .location = path };
    stor_env_t *env;

    ck_assert_int_lt(snprintf(path, sizeof(path), "%s", dir), (int)sizeof(path));
    stor_close(tst_open(path, 0));
    raw_put(path, "meta", "schema", 6, v99, sizeof(v99), 0);
    ck_assert_int_eq(stor_open(&cfg, &env), STOR_ERR_CORRUPT);
    ck_assert_ptr_null(env);
    raw_put(path, "meta", "schema", 6, bad, sizeof(bad), 0);
    ck_assert_int_eq(stor_open(&cfg, &env), STOR_ERR_CORRUPT);
    /* an env this version wrote reopens fine */
    raw_put(path, "meta", "schema", 6, (uint8_t[]){ STOR_SCHEMA_VERSION, 0, 0, 0 }, 4, 0);
    stor_close(tst_open(path, 0));
}
END_TEST

static int count_cred(const stor_cred_t *c, void *arg)
{
    (void)c;
    (*(int *)arg)++;
    return 0;
}

typedef struct each_owner {
    const char *owner;
    int n;
} each_owner_t;

static int each_owner_fn(stor_txn_t *t, void *arg)
{
    each_owner_t *e = arg;

    return stor_txn_cred_each(t, e->owner, count_cred, &e->n);
}

static int put_cred_c1(stor_txn_t *t, void *arg)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    int rc;

    (void)arg;
    ck_assert_ptr_nonnull(c);
    TST_SET(c->id, "c1");
    TST_SET(c->owner, "alice");
    rc = stor_txn_cred_put(t, c, 1);
    free(c);
    return rc;
}

START_TEST(t_dangling_owner_index)
{
    const char *dir = tst_path();
    char path[PATH_MAX];
    each_owner_t e = { "alice", 0 };
    stor_env_t *env;

    ck_assert_int_lt(snprintf(path, sizeof(path), "%s", dir), (int)sizeof(path));
    env = tst_open(path, 0);
    ck_assert_int_eq(stor_write(env, put_cred_c1, NULL), 0);
    stor_close(env);
    raw_put(path, "creds", "c1", 2, NULL, 0, 1);
    env = tst_open(path, 0);
    ck_assert_int_eq(stor_read(env, each_owner_fn, &e), STOR_ERR_CORRUPT);
    /* rewriting the credential repairs it */
    ck_assert_int_eq(stor_write(env, put_cred_c1, NULL), 0);
    e.n = 0;
    ck_assert_int_eq(stor_read(env, each_owner_fn, &e), 0);
    ck_assert_int_eq(e.n, 1);
    stor_close(env);
}
END_TEST

Suite *tst_env_suite(void)
{
    Suite *s = suite_create("stor_env");
    TCase *tc = tcase_create("env");
    TCase *tw = tcase_create("writer");

    tcase_add_test(tc, t_open_creates_dir);
    tcase_add_test(tc, t_size);
    tcase_add_test(tc, t_lock_file_reserved);
    tcase_add_test(tc, t_lock_kept);
    tcase_add_test(tc, t_open_errors);
    tcase_add_test(tc, t_null_callbacks);
    tcase_add_test(tc, t_strerror);
    tcase_add_test(tc, t_wipe);
    tcase_add_test(tc, t_corrupt_on_disk);
    tcase_add_test(tc, t_newer_schema_refused);
    tcase_add_test(tc, t_dangling_owner_index);
    suite_add_tcase(s, tc);

    tcase_set_timeout(tw, 120); /* thousands of fsyncs, slower under sanitizers */
    tcase_add_test(tw, t_writer_later);
    tcase_add_test(tw, t_lone_write_inline);
    tcase_add_test(tw, t_concurrent_increment);
    tcase_add_test(tw, t_batching);
    tcase_add_test(tw, t_batch_cap);
    tcase_add_test(tw, t_nested_rollback);
    tcase_add_test(tw, t_batch_flat);
    tcase_add_test(tw, t_lone_job_not_nested);
    tcase_add_test(tw, t_nonzero_rc_discards);
    tcase_add_test(tw, t_commit_failure);
    tcase_add_test(tw, t_reentrancy);
    tcase_add_test(tw, t_close_in_progress);
    tcase_add_test(tw, t_map_full);
    tcase_add_test(tw, t_recent_nested_when_nearly_full);
    tcase_add_test(tw, t_map_full_audit_only_when_asked);
    tcase_add_test(tw, t_disk_full);
    suite_add_tcase(s, tw);
    return s;
}
