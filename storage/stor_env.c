/*
 * stor_env.c - environment lifetime, group commit, read txns.
 *
 * LMDB allows one write txn per environment (across processes) and a second one
 * in the same thread deadlocks, so one batch runs at a time: the caller of
 * stor_write() that finds none running takes all waiting jobs, runs each in a
 * nested txn of one parent txn and commits the parent once (one fsync
 * acknowledges the whole batch); the callers queued meanwhile wait, and the
 * first of them runs the next batch. No writer thread: a lone write is never
 * handed to another thread and back.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>

#include "stor_int.h"

#define DEFAULT_MAP_SIZE ((size_t)1 << 30)
#define DEFAULT_READERS 256u
#define MAX_DBS 32

struct stor_job {
    stor_txn_fn fn;
    void *arg;
    int rc;
    int done;
    pthread_cond_t cv; /* the caller sleeps on its own cv: no thundering herd */
    struct stor_job *next;
    const char *origin; /* the caller's thread's origin (it waits until the job is done: the pointer stays valid) */
};

/* The origin of this thread's operator command (stor_audit_origin_set). */
static _Thread_local char thread_origin[STOR_ORIGIN_MAX + 1];

void stor_audit_origin_set(const char *origin)
{
    snprintf(thread_origin, sizeof(thread_origin), "%s", origin != NULL ? origin : "");
}

static const struct {
    const char *name;
    unsigned flags;
} db_specs[STOR_DB_COUNT] = {
    [STOR_DB_USERS] = { "users", 0 },
    [STOR_DB_CREDS] = { "creds", 0 },
    [STOR_DB_CREDS_BY_OWNER] = { "creds_by_owner", MDB_DUPSORT },
    [STOR_DB_TOKENS] = { "tokens", 0 },
    [STOR_DB_TOKENS_BY_GRANT] = { "tokens_by_grant", MDB_DUPSORT | MDB_DUPFIXED },
    [STOR_DB_SADS] = { "sads", 0 },
    [STOR_DB_AUDIT] = { "audit", 0 },
    [STOR_DB_META] = { "meta", 0 },
    [STOR_DB_CLIENTS] = { "clients", 0 },
    [STOR_DB_CODES] = { "codes", 0 },
    [STOR_DB_AUDIT_HEADS] = { "audit_heads", 0 },
    [STOR_DB_ASYNC] = { "async_results", 0 },
    [STOR_DB_OPERATORS] = { "operators", 0 },
    [STOR_DB_OPSESSIONS] = { "op_sessions", 0 },
    [STOR_DB_APPROVALS] = { "approvals", 0 },
    [STOR_DB_DELEGATIONS] = { "delegations", MDB_DUPSORT },
    [STOR_DB_PENDING_SADS] = { "pending_sads", 0 },
    [STOR_DB_WEBSESSIONS] = { "web_sessions", 0 },
    [STOR_DB_USER_APPROVALS] = { "user_approvals", 0 },
    [STOR_DB_ENROLL] = { "enrollments", 0 },
    [STOR_DB_ENROLL_TICKETS] = { "enroll_tickets", 0 },
    [STOR_DB_RESTORE_REQS] = { "restore_reqs", 0 },
    [STOR_DB_SIGNINS] = { "signins", 0 },
    [STOR_DB_SIGN_EVENTS] = { "sign_events", 0 },
};

/* ---- errors ------------------------------------------------------------ */

const char *stor_strerror(int rc)
{
    switch (rc) {
    case STOR_OK: return "success";
    case STOR_ERR_NOTFOUND: return "no such record";
    case STOR_ERR_EXISTS: return "record already exists";
    case STOR_ERR_IO: return "storage I/O failure";
    case STOR_ERR_FULL: return "storage map is full";
    case STOR_ERR_CORRUPT: return "stored record is corrupt";
    case STOR_ERR_INVAL: return "invalid argument";
    case STOR_ERR_NOMEM: return "out of memory";
    case STOR_ERR_CLOSED: return "storage is closing";
    default: return "unknown storage error";
    }
}

int stor_mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return STOR_OK;
    case MDB_NOTFOUND: return STOR_ERR_NOTFOUND;
    case MDB_KEYEXIST: return STOR_ERR_EXISTS;
    case MDB_MAP_FULL: return STOR_ERR_FULL;
    case ENOMEM: return STOR_ERR_NOMEM;
    case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_INVALID: case MDB_INCOMPATIBLE: return STOR_ERR_CORRUPT;
    case EINVAL: case MDB_BAD_VALSIZE: return STOR_ERR_INVAL;
    default: return STOR_ERR_IO;
    }
}

int stor_txn_fail(stor_txn_t *t, int mdb_rc)
{
    /* NOTFOUND and KEYEXIST leave the txn usable; anything else makes LMDB refuse the commit. */
    if (mdb_rc != MDB_NOTFOUND && mdb_rc != MDB_KEYEXIST && t->err == 0)
        t->err = stor_mdb_err(mdb_rc);
    return stor_mdb_err(mdb_rc);
}

void stor_wipe(void *rec, size_t len)
{
    if (rec != NULL && len > 0)
        OPENSSL_cleanse(rec, len);
}

/* ---- open / close ------------------------------------------------------ */

static int make_dir(const char *path)
{
    struct stat st;

    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return STOR_ERR_IO;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return STOR_ERR_IO;
    return 0;
}

static int check_schema(stor_env_t *env, MDB_txn *txn)
{
    MDB_val k = { 6, (void *)"schema" }, v;
    uint8_t buf[4];
    uint32_t ver;
    int rc = mdb_get(txn, env->dbi[STOR_DB_META], &k, &v);

    if (rc == MDB_NOTFOUND) {
        for (size_t i = 0; i < 4; i++)
            buf[i] = (uint8_t)(STOR_SCHEMA_VERSION >> (8 * i));
        v.mv_size = sizeof(buf);
        v.mv_data = buf;
        return stor_mdb_err(mdb_put(txn, env->dbi[STOR_DB_META], &k, &v, 0));
    }
    if (rc != 0)
        return stor_mdb_err(rc);
    if (v.mv_size != 4)
        return STOR_ERR_CORRUPT;
    memcpy(buf, v.mv_data, 4);
    ver = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
    /* A newer schema may mean records this version would misread or indexes it would not maintain. */
    return ver == STOR_SCHEMA_VERSION ? 0 : STOR_ERR_CORRUPT;
}

static int open_dbs(stor_env_t *env)
{
    MDB_txn *txn = NULL;
    int rc;

    if ((rc = mdb_txn_begin(env->mdb, NULL, 0, &txn)) != 0)
        return stor_mdb_err(rc);
    for (size_t i = 0; i < STOR_DB_COUNT; i++) {
        if ((rc = mdb_dbi_open(txn, db_specs[i].name, db_specs[i].flags | MDB_CREATE, &env->dbi[i])) != 0) {
            rc = stor_mdb_err(rc);
            goto out;
        }
    }
    if ((rc = check_schema(env, txn)) != 0)
        goto out;
    rc = stor_mdb_err(mdb_txn_commit(txn));
    txn = NULL;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    return rc;
}

static int open_mdb(stor_env_t *env, const stor_config_t *cfg)
{
    int rc, dead = 0;

    if ((rc = mdb_env_create(&env->mdb)) != 0)
        return stor_mdb_err(rc);
    if ((rc = mdb_env_set_mapsize(env->mdb, cfg->map_size ? cfg->map_size : DEFAULT_MAP_SIZE)) != 0 ||
        (rc = mdb_env_set_maxreaders(env->mdb, cfg->max_readers ? cfg->max_readers : DEFAULT_READERS)) != 0 ||
        (rc = mdb_env_set_maxdbs(env->mdb, MAX_DBS)) != 0)
        return stor_mdb_err(rc);
    /* MDB_NOTLS: read txns are not tied to a thread, so pools and nested stor_read() work. */
    if ((rc = mdb_env_open(env->mdb, cfg->path, MDB_NOTLS, 0600)) != 0)
        return stor_mdb_err(rc);
    /* Reader slots of crashed processes would pin old pages forever. */
    if ((rc = mdb_reader_check(env->mdb, &dead)) != 0)
        return stor_mdb_err(rc);
    return open_dbs(env);
}

static int init_sync(stor_env_t *env)
{
    if (pthread_mutex_init(&env->mu, NULL) != 0)
        return STOR_ERR_NOMEM;
    if (pthread_cond_init(&env->idle, NULL) != 0) {
        pthread_mutex_destroy(&env->mu);
        return STOR_ERR_NOMEM;
    }
    return 0;
}

static void destroy_sync(stor_env_t *env)
{
    pthread_cond_destroy(&env->idle);
    pthread_mutex_destroy(&env->mu);
}

int stor_start_writer(stor_env_t *env)
{
    if (env == NULL || env->writer_running)
        return STOR_ERR_INVAL;
    env->writer_running = 1;
    return 0;
}

int stor_open(const stor_config_t *cfg, stor_env_t **out)
{
    stor_env_t *env = NULL;
    int rc, synced = 0;

    if (out != NULL)
        *out = NULL;
    if (out == NULL || cfg == NULL || cfg->path == NULL || cfg->path[0] == '\0' ||
        strnlen(cfg->path, PATH_MAX) >= PATH_MAX)
        return STOR_ERR_INVAL;
    if ((rc = make_dir(cfg->path)) != 0)
        return rc;
    if ((env = calloc(1, sizeof(*env))) == NULL)
        return STOR_ERR_NOMEM;
    if ((rc = open_mdb(env, cfg)) != 0)
        goto out;
    if ((rc = init_sync(env)) != 0)
        goto out;
    synced = 1;
    env->writer_running = !cfg->writer_later;
    *out = env;
    env = NULL;
    rc = 0;
out:
    if (env != NULL) {
        if (synced)
            destroy_sync(env);
        if (env->mdb != NULL)
            mdb_env_close(env->mdb);
        free(env);
    }
    return rc;
}

void stor_close(stor_env_t *env)
{
    if (env == NULL)
        return;
    /* Every accepted write is finished (by its own caller or a leader) before its caller leaves. */
    pthread_mutex_lock(&env->mu);
    env->closing = 1;
    while (env->active > 0)
        pthread_cond_wait(&env->idle, &env->mu);
    pthread_mutex_unlock(&env->mu);
    mdb_env_close(env->mdb);
    destroy_sync(env);
    free(env);
}

/* ---- the batches ------------------------------------------------------- */

static int run_job(stor_env_t *env, MDB_txn *parent, struct stor_job *job)
{
    stor_txn_t t = { .env = env, .writable = 1, .origin = job->origin };
    int rc;

    if ((rc = mdb_txn_begin(env->mdb, parent, 0, &t.txn)) != 0)
        return stor_mdb_err(rc);
    rc = job->fn(&t, job->arg);
    /* A callback that ignored a failed put would otherwise make the commit fail with MDB_BAD_TXN. */
    if (rc == 0 && t.err != 0)
        rc = t.err;
    if (rc != 0) {
        mdb_txn_abort(t.txn);
        return rc;
    }
    return stor_mdb_err(mdb_txn_commit(t.txn));
}

static int commit_parent(stor_env_t *env, MDB_txn *parent)
{
#ifdef CSC_TEST_HOOKS
    int inject;

    pthread_mutex_lock(&env->mu);
    inject = env->fail_commits > 0;
    if (inject)
        env->fail_commits--;
    pthread_mutex_unlock(&env->mu);
    if (inject) { /* stor_int_fail_commits() */
        mdb_txn_abort(parent);
        return STOR_ERR_IO;
    }
#else
    (void)env;
#endif
    return stor_mdb_err(mdb_txn_commit(parent));
}

/* ---- a full map ---------------------------------------------------------
 *
 * MDB_MAP_FULL refuses the write (the caller answers 503) but must never pass
 * unnoticed: the first refusal of an episode prints one line on stderr; while
 * the episode lasts, each batch that refused nothing ends with a STOR_EV_STORAGE
 * record (since when it was full, how many writes were refused). The batch that
 * commits that record ends the episode: the audit log then shows it, and stderr
 * says so.
 */

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int full_record_fn(stor_txn_t *t, void *arg)
{
    stor_env_t *env = arg;
    stor_audit_t rec;

    memset(&rec, 0, sizeof(rec));
    rec.event = STOR_EV_STORAGE;
    rec.result = STOR_RES_ERROR;
    snprintf(rec.detail, sizeof(rec.detail),
             "map full from %" PRId64 " ms to now: %" PRIu64 " writes refused (lmdb_map_size)", env->full_since_ms,
             env->full_refused);
    return stor_txn_audit_append(t, &rec);
}

static size_t map_size(stor_env_t *env)
{
    MDB_envinfo info;

    return mdb_env_info(env->mdb, &info) == 0 ? info.me_mapsize : 0;
}

/* After a batch: start, continue or end a full episode. */
static void full_track(stor_env_t *env, struct stor_job *batch, int note_rc, int commit_rc)
{
    uint64_t refused = 0;
    struct stor_job *j;

    for (j = batch; j != NULL; j = j->next)
        if (j->rc == STOR_ERR_FULL)
            refused++;
    if (refused > 0 && env->full_since_ms == 0) {
        env->full_since_ms = wall_ms();
        fprintf(stderr,
                "storage: ALARM: the LMDB map is full (lmdb_map_size = %zu bytes): writes are refused (503) until "
                "space is freed; raise lmdb_map_size and restart, or let expired records be purged\n",
                map_size(env));
    }
    env->full_refused += refused;
    if (env->full_since_ms != 0 && refused == 0 && note_rc == 0 && commit_rc == 0) {
        fprintf(stderr, "storage: the LMDB map has space again: %" PRIu64 " writes were refused while it was full\n",
                env->full_refused);
        env->full_since_ms = 0;
        env->full_refused = 0;
    }
    pthread_mutex_lock(&env->mu);
    env->pub_full_since_ms = env->full_since_ms;
    env->pub_full_refused = env->full_refused;
    pthread_mutex_unlock(&env->mu);
}

int stor_full_status(stor_env_t *env, int64_t *since_ms, uint64_t *refused)
{
    int full;

    pthread_mutex_lock(&env->mu);
    full = env->pub_full_since_ms != 0;
    if (since_ms)
        *since_ms = env->pub_full_since_ms;
    if (refused)
        *refused = env->pub_full_refused;
    pthread_mutex_unlock(&env->mu);
    return full;
}

static void run_batch(stor_env_t *env, struct stor_job *batch)
{
    struct stor_job note = { .fn = full_record_fn, .arg = env };
    MDB_txn *parent = NULL;
    struct stor_job *j;
    int rc, note_rc = -1;

    if ((rc = mdb_txn_begin(env->mdb, NULL, 0, &parent)) != 0) {
        for (j = batch; j != NULL; j = j->next)
            j->rc = stor_mdb_err(rc);
        full_track(env, batch, note_rc, rc);
        return;
    }
    for (j = batch; j != NULL; j = j->next)
        if ((j->rc = run_job(env, parent, j)) == STOR_ERR_FULL)
            note_rc = STOR_ERR_FULL;
    /* Only a batch that refused nothing may say that space is back. */
    if (env->full_since_ms != 0 && note_rc != STOR_ERR_FULL)
        note_rc = run_job(env, parent, &note);
    if ((rc = commit_parent(env, parent)) != 0) {
        /* Nothing of this batch is kept; jobs that failed on their own keep their own code. */
        for (j = batch; j != NULL; j = j->next)
            if (j->rc == 0)
                j->rc = rc;
    }
    full_track(env, batch, note_rc, rc);
}

/* Detach up to STOR_BATCH_MAX jobs from the queue; called with mu held. */
static struct stor_job *take_batch(stor_env_t *env, unsigned *n)
{
    struct stor_job *first = env->head, *last = env->head;

    *n = 1;
    while (last->next != NULL && *n < STOR_BATCH_MAX) {
        last = last->next;
        (*n)++;
    }
    env->head = last->next;
    if (env->head == NULL)
        env->tail = NULL;
    last->next = NULL;
    env->queued -= *n;
    return first;
}

static void finish_batch(stor_env_t *env, struct stor_job *batch, unsigned n)
{
    env->st_batches++;
    env->st_jobs += n;
    env->st_last_batch = n;
    if (n > env->st_max_batch)
        env->st_max_batch = n;
    while (batch != NULL) {
        struct stor_job *next = batch->next; /* the caller may return as soon as done is set */
        batch->done = 1;
        pthread_cond_signal(&batch->cv);
        batch = next;
    }
}

/* ---- write / read ------------------------------------------------------ */

static void leave(stor_env_t *env)
{
    if (--env->active == 0 && env->closing)
        pthread_cond_broadcast(&env->idle);
}

/* The environment whose batch this thread is running (a second write transaction on it would deadlock). */
static __thread stor_env_t *leading;

/* Run batches (mu held on entry and exit) until job is done: this thread leads while no other does. */
static void lead(stor_env_t *env, struct stor_job *job)
{
    while (!job->done) {
        unsigned n;
        struct stor_job *batch = take_batch(env, &n);
        env->committing = 1;
        pthread_mutex_unlock(&env->mu);
        leading = env;
        run_batch(env, batch);
        leading = NULL;
        pthread_mutex_lock(&env->mu);
        finish_batch(env, batch, n);
        env->committing = 0;
    }
    /* Jobs queued during this batch: the first one's caller leads the next (one wake-up, not one per job). */
    if (env->head != NULL)
        pthread_cond_signal(&env->head->cv);
}

int stor_write(stor_env_t *env, stor_txn_fn fn, void *arg)
{
    struct stor_job job = { .fn = fn, .arg = arg, .origin = thread_origin[0] != '\0' ? thread_origin : NULL };
    int rc;

    if (env == NULL || fn == NULL)
        return STOR_ERR_INVAL;
    /* Writes not open yet (writer_later), or from inside a write callback: this would wait forever. */
    if (!env->writer_running || leading == env)
        return STOR_ERR_INVAL;
    if (pthread_cond_init(&job.cv, NULL) != 0)
        return STOR_ERR_NOMEM;
    pthread_mutex_lock(&env->mu);
    if (env->closing) {
        rc = STOR_ERR_CLOSED;
        goto out;
    }
    env->active++;
    if (env->tail != NULL)
        env->tail->next = &job;
    else
        env->head = &job;
    env->tail = &job;
    env->queued++;
    /* Group commit without a thread of its own: the caller that finds no batch running runs one with every job
     * waiting (its own among them); the others wait for theirs to be done, or to be first in line when that batch
     * ends, and then lead the next. No hand-off to another thread and back for a write that waits for nobody. */
    for (;;) {
        if (!job.done && !env->committing)
            lead(env, &job);
        if (job.done)
            break;
        pthread_cond_wait(&job.cv, &env->mu);
    }
    rc = job.rc;
    leave(env);
out:
    pthread_mutex_unlock(&env->mu);
    pthread_cond_destroy(&job.cv);
    return rc;
}

int stor_read(stor_env_t *env, stor_txn_fn fn, void *arg)
{
    stor_txn_t t = { .env = env, .writable = 0 };
    int rc;

    if (env == NULL || fn == NULL)
        return STOR_ERR_INVAL;
    pthread_mutex_lock(&env->mu);
    rc = env->closing ? STOR_ERR_CLOSED : 0;
    if (rc == 0)
        env->active++;
    pthread_mutex_unlock(&env->mu);
    if (rc != 0)
        return rc;
    if ((rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &t.txn)) == 0) {
        rc = fn(&t, arg);
        mdb_txn_abort(t.txn);
    } else {
        rc = stor_mdb_err(rc);
    }
    pthread_mutex_lock(&env->mu);
    leave(env);
    pthread_mutex_unlock(&env->mu);
    return rc;
}

/* ---- test hooks (CSC_TEST_HOOKS builds only: the unit tests' csc_storage_t) ---- */

#ifdef CSC_TEST_HOOKS

void stor_int_stats(stor_env_t *env, stor_stats_t *out)
{
    pthread_mutex_lock(&env->mu);
    out->batches = env->st_batches;
    out->jobs = env->st_jobs;
    out->max_batch = env->st_max_batch;
    out->last_batch = env->st_last_batch;
    pthread_mutex_unlock(&env->mu);
}

size_t stor_int_queued(stor_env_t *env)
{
    size_t n;

    pthread_mutex_lock(&env->mu);
    n = env->queued;
    pthread_mutex_unlock(&env->mu);
    return n;
}

int stor_int_closing(stor_env_t *env)
{
    int c;

    pthread_mutex_lock(&env->mu);
    c = env->closing;
    pthread_mutex_unlock(&env->mu);
    return c;
}

void stor_int_fail_commits(stor_env_t *env, int n)
{
    pthread_mutex_lock(&env->mu);
    env->fail_commits = n;
    pthread_mutex_unlock(&env->mu);
}
#endif
