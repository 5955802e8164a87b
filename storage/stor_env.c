/*
 * stor_env.c - environment lifetime, group commit, read txns: the generic part, on any backend (stor_backend.h).
 *
 * A backend allows one write txn per environment at a time (LMDB: across processes; a second one in the same
 * thread deadlocks), so one batch runs at a time: the caller of
 * stor_write() that finds none running takes all waiting jobs, runs them in
 * one txn and commits it once (one fsync acknowledges the whole batch: see
 * run_batch for a job that fails); the callers queued meanwhile wait, and the
 * first of them runs the next batch. No writer thread: a lone write is never
 * handed to another thread and back.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "stor_int.h"

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

static const stor_table_t db_specs[STOR_DB_COUNT] = {
    [STOR_DB_USERS] = { "users", 0 },
    [STOR_DB_CREDS] = { "creds", 0 },
    [STOR_DB_CREDS_BY_OWNER] = { "creds_by_owner", STOR_TABLE_DUPSORT },
    [STOR_DB_TOKENS] = { "tokens", 0 },
    [STOR_DB_TOKENS_BY_GRANT] = { "tokens_by_grant", STOR_TABLE_DUPSORT | STOR_TABLE_DUPFIXED },
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
    [STOR_DB_DELEGATIONS] = { "delegations", STOR_TABLE_DUPSORT },
    [STOR_DB_PENDING_SADS] = { "pending_sads", 0 },
    [STOR_DB_WEBSESSIONS] = { "web_sessions", 0 },
    [STOR_DB_USER_APPROVALS] = { "user_approvals", 0 },
    [STOR_DB_ENROLL] = { "enrollments", 0 },
    [STOR_DB_ENROLL_TICKETS] = { "enroll_tickets", 0 },
    [STOR_DB_RESTORE_REQS] = { "restore_reqs", 0 },
    [STOR_DB_SIGNINS] = { "signins", 0 },
    [STOR_DB_SIGN_EVENTS] = { "sign_events", 0 },
    [STOR_DB_CHALLENGES] = { "challenges", 0 },
    [STOR_DB_PARS] = { "pars", 0 },
};

const char *stor_table_name(int db)
{
    return db >= 0 && db < STOR_DB_COUNT ? db_specs[db].name : "?";
}

/* ---- errors ------------------------------------------------------------ */

const char *stor_strerror(int rc)
{
    switch (rc) {
    case STOR_OK: return "success";
    case STOR_ERR_NOTFOUND: return "no such record";
    case STOR_ERR_EXISTS: return "record already exists";
    case STOR_ERR_IO: return "storage I/O failure";
    case STOR_ERR_FULL: return "storage is full (the map or the disk)";
    case STOR_ERR_CORRUPT: return "stored record is corrupt";
    case STOR_ERR_INVAL: return "invalid argument";
    case STOR_ERR_NOMEM: return "out of memory";
    case STOR_ERR_CLOSED: return "storage is closing";
    case STOR_ERR_RETRY: return "conflict with another writer";
    case STOR_ERR_UNAVAILABLE: return "the database cannot be reached now";
    case STOR_ERR_DENIED: return "this process may not write that table";
    default: return "unknown storage error";
    }
}

int stor_txn_fail(stor_txn_t *t, int rc)
{
    /* NOTFOUND and EXISTS leave the txn usable; anything else makes the backend refuse the commit. */
    if (rc != STOR_OK && rc != STOR_ERR_NOTFOUND && rc != STOR_ERR_EXISTS && t->err == 0)
        t->err = rc;
    return rc;
}

/* ---- backends ------------------------------------------------------------ */

static const stor_backend_t *const backends[] = { &stor_backend_lmdb, &stor_backend_pg };

const stor_backend_t *stor_backend_find(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return &stor_backend_lmdb;
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

int stor_backend_known(const char *name)
{
    return name != NULL && name[0] != '\0' && stor_backend_find(name) != NULL;
}

int stor_spec_split(const char *spec, char *backend, size_t n, const char **location)
{
    const char *colon = spec != NULL ? strchr(spec, ':') : NULL;
    size_t blen = colon != NULL ? (size_t)(colon - spec) : 0;

    if (colon == NULL || blen == 0 || backend == NULL || blen >= n || location == NULL)
        return STOR_ERR_INVAL;
    memcpy(backend, spec, blen);
    backend[blen] = '\0';
    *location = colon + 1;
    return stor_backend_known(backend) ? STOR_OK : STOR_ERR_NOTFOUND;
}

static char backend_names[64];

static void backend_names_make(void)
{
    size_t off = 0;
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        int n = snprintf(backend_names + off, sizeof(backend_names) - off, "%s%s", i > 0 ? ", " : "",
                         backends[i]->name);
        if (n < 0 || (size_t)n >= sizeof(backend_names) - off)
            break; /* cut short: still a message */
        off += (size_t)n;
    }
}

const char *stor_backend_names(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, backend_names_make); /* the names of backends[], for messages */
    return backend_names;
}

/* explicit_bzero: glibc's vectorised memset behind a barrier no compiler removes. OPENSSL_cleanse writes through a
 * plain loop: 3.8 us for a 64 KiB SAD record against 0.8 (this machine), and every request wipes a few such records. */
void stor_wipe(void *rec, size_t len)
{
    if (rec != NULL && len > 0)
        explicit_bzero(rec, len);
}

/* ---- open / close ------------------------------------------------------ */

static int check_schema(stor_txn_t *t, void *arg)
{
    stor_val_t k = STOR_VAL("schema", 6), v;
    uint8_t buf[4];
    uint32_t ver;
    int rc = stor_kv_get(t, STOR_DB_META, &k, &v);

    (void)arg;
    if (rc == STOR_ERR_NOTFOUND) {
        for (size_t i = 0; i < 4; i++)
            buf[i] = (uint8_t)(STOR_SCHEMA_VERSION >> (8 * i));
        v = STOR_VAL(buf, sizeof(buf));
        return stor_kv_put(t, STOR_DB_META, &k, &v, 0);
    }
    if (rc != 0)
        return rc;
    if (v.len != 4)
        return STOR_ERR_CORRUPT;
    memcpy(buf, v.data, 4);
    ver = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
    /* A newer schema may mean records this version would misread or indexes it would not maintain. */
    return ver == STOR_SCHEMA_VERSION ? 0 : STOR_ERR_CORRUPT;
}

/* A database whose migrations recorded the schema version (PostgreSQL): this code's, or a newer one that says this
 * code may still run on it (compatible_from: a rolling upgrade, docs/operations.md). Read without locking
 * (csc-server's role may lock nothing but its own tables). */
static int check_db_schema(stor_env_t *env)
{
    unsigned ver = 0, compat = 0;
    int rc = env->be->schema_version(env->benv, &ver, &compat);

    if (rc == STOR_ERR_NOTFOUND) {
        fprintf(stderr, "storage: %s: the database has no schema version (csc.schema_version): run the migrations "
                "(this code needs version %u)\n", env->be->name, STOR_PG_SCHEMA_VERSION);
        return STOR_ERR_CORRUPT;
    }
    if (rc != 0)
        return rc;
    if (ver < STOR_PG_SCHEMA_VERSION) {
        fprintf(stderr, "storage: %s: the database's schema version %u is older than this code's %u: run the "
                "migrations (csc-admin db migrate)\n", env->be->name, ver, STOR_PG_SCHEMA_VERSION);
        return STOR_ERR_CORRUPT;
    }
    if (ver > STOR_PG_SCHEMA_VERSION && compat > STOR_PG_SCHEMA_VERSION) {
        fprintf(stderr, "storage: %s: the database's schema version %u is newer than this code's %u and needs code "
                "of version %u or later: upgrade this node\n", env->be->name, ver, STOR_PG_SCHEMA_VERSION, compat);
        return STOR_ERR_CORRUPT;
    }
    if (ver > STOR_PG_SCHEMA_VERSION)
        fprintf(stderr, "storage: %s: the database's schema version %u is newer than this code's %u, which it still "
                "accepts (from version %u on): upgrade this node soon\n", env->be->name, ver, STOR_PG_SCHEMA_VERSION,
                compat);
    return 0;
}

static int run_job(stor_env_t *env, stor_bk_txn_t *parent, struct stor_job *job);

/* Run fn in one top-level write txn of env, outside the group commit (stor_open only: no other thread yet). */
static int write_once(stor_env_t *env, stor_txn_fn fn, void *arg)
{
    struct stor_job job = { .fn = fn, .arg = arg };

    return run_job(env, NULL, &job);
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
    if (out == NULL || cfg == NULL)
        return STOR_ERR_INVAL;
    if ((env = calloc(1, sizeof(*env))) == NULL)
        return STOR_ERR_NOMEM;
    env->writable = UINT64_MAX;
    if ((env->be = stor_backend_find(cfg->backend)) == NULL) {
        rc = STOR_ERR_INVAL;
        goto out;
    }
    if ((rc = env->be->open(cfg, db_specs, STOR_DB_COUNT, &env->benv)) != 0 ||
        (rc = env->be->schema_version != NULL ? check_db_schema(env) : write_once(env, check_schema, NULL)) != 0)
        goto out;
    if ((rc = init_sync(env)) != 0)
        goto out;
    synced = 1;
    env->writer_running = !cfg->writer_later;
    env->full_log_only = cfg->full_log_only != 0;
    *out = env;
    env = NULL;
    rc = 0;
out:
    if (env != NULL) {
        if (synced)
            destroy_sync(env);
        if (env->benv != NULL)
            env->be->close(env->benv);
        free(env);
    }
    return rc;
}

/* ---- the write guard ------------------------------------------------------ */

_Static_assert(STOR_DB_COUNT <= 64, "one bit per table in stor_env.writable");

int stor_env_restrict_writes(stor_env_t *env, const char *const *tables, size_t n)
{
    uint64_t allow = 0;

    if (env == NULL || (tables == NULL && n > 0))
        return STOR_ERR_INVAL;
    for (size_t i = 0; i < n; i++) {
        size_t db = 0;
        while (db < STOR_DB_COUNT && (tables[i] == NULL || strcmp(db_specs[db].name, tables[i]) != 0))
            db++;
        if (db == STOR_DB_COUNT)
            return STOR_ERR_INVAL;
        allow |= UINT64_C(1) << db;
    }
    __atomic_and_fetch(&env->writable, allow, __ATOMIC_SEQ_CST);
    return STOR_OK;
}

int stor_write_allowed(stor_txn_t *t, int db)
{
    stor_env_t *env = t->env;
    uint64_t bit;

    if (db < 0 || db >= STOR_DB_COUNT)
        return STOR_ERR_INVAL;
    bit = UINT64_C(1) << db;
    if (__atomic_load_n(&env->writable, __ATOMIC_RELAXED) & bit)
        return STOR_OK;
    if (!(__atomic_fetch_or(&env->denied_logged, bit, __ATOMIC_RELAXED) & bit))
        fprintf(stderr, "storage: a write to table %s refused: this process may not write it (its transaction is "
                        "undone)\n", db_specs[db].name);
    return STOR_ERR_DENIED;
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
    env->be->close(env->benv);
    destroy_sync(env);
    free(env);
}

/* ---- the batches ------------------------------------------------------- */

/* Run job's callback in txn (begun by the caller, who commits or aborts it). */
static int run_fn(stor_env_t *env, stor_bk_txn_t *txn, struct stor_job *job)
{
    stor_txn_t t = { .env = env, .writable = 1, .origin = job->origin, .walk_db = -1, .txn = txn };
    int rc = job->fn(&t, job->arg);

    /* A txn that met a conflict, or a pooled connection found dead (STOR_ERR_RETRY), runs again, whatever the
     * callback made of the failure. A callback that ignored a failed put would otherwise make the commit fail (a
     * dead txn). */
    if (t.err == STOR_ERR_RETRY)
        return STOR_ERR_RETRY;
    return rc == 0 && t.err != 0 ? t.err : rc;
}

static int run_job(stor_env_t *env, stor_bk_txn_t *parent, struct stor_job *job)
{
    stor_bk_txn_t *txn;
    int rc;

    if ((rc = env->be->txn_begin(env->benv, parent, STOR_BK_WRITE, &txn)) != 0)
        return rc;
    if (parent != NULL)
        __atomic_add_fetch(&env->st_nested, 1, __ATOMIC_RELAXED);
    if ((rc = run_fn(env, txn, job)) != 0) {
        env->be->txn_abort(txn);
        return rc;
    }
    return env->be->txn_commit(txn);
}

static int commit_parent(stor_env_t *env, stor_bk_txn_t *parent)
{
#ifdef CSC_TEST_HOOKS
    int inject;

    pthread_mutex_lock(&env->mu);
    inject = env->fail_commits > 0;
    if (inject)
        env->fail_commits--;
    pthread_mutex_unlock(&env->mu);
    if (inject) { /* stor_int_fail_commits() */
        env->be->txn_abort(parent);
        return STOR_ERR_IO;
    }
#endif
    return env->be->txn_commit(parent);
}

/* ---- a full map, a full disk --------------------------------------------
 *
 * STOR_ERR_FULL (LMDB's map full, or the disk under the database: the backend's full_cause() says which) refuses
 * the write (the caller answers 503) but must never pass
 * unnoticed: the first refusal of an episode prints one line on stderr, naming the cause; while
 * the episode lasts, each batch that refused nothing ends with a STOR_EV_STORAGE
 * record (since when it was full, how many writes were refused). The batch that
 * commits that record ends the episode: the audit log then shows it, and stderr
 * says so. An environment opened with full_log_only (csc-server's: it appends no
 * audit record) appends none: its episode is said on stderr only, and ends with
 * the first batch that refused nothing.
 *
 * A full disk ends only after STOR_FULL_DISK_QUIET_MS without a refusal: while the filesystem stays full, LMDB
 * still fits every other commit into the pages the one before freed, so "a batch that refused nothing" comes every
 * few writes, and ending the episode there printed an alarm every second or so (measured: tests/integration/
 * test_disk_full.py). The space a commit frees inside the map is not room on the disk. A full map keeps ending at
 * the first batch that fits (the purge frees space inside it, which is what it lacks).
 */

#define STOR_FULL_DISK_QUIET_MS 10000

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* May a batch that refused nothing end the episode (append its record)? */
static int full_may_end(stor_env_t *env)
{
    return env->full_since_ms != 0 && (!env->full_disk || mono_ms() - env->full_last_ms >= STOR_FULL_DISK_QUIET_MS);
}

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
    snprintf(rec.detail, sizeof(rec.detail), "%s full from %" PRId64 " ms to now: %" PRIu64 " writes refused (%s)",
             env->full_disk ? "disk" : "map", env->full_since_ms, env->full_refused,
             env->full_disk ? "no space on the database's filesystem" : "lmdb_map_size");
    return stor_txn_audit_append(t, &rec);
}

int stor_backup(stor_env_t *env, const char *dir)
{
    if (env == NULL || dir == NULL || env->be->backup == NULL)
        return STOR_ERR_INVAL;
    return env->be->backup(env->benv, dir);
}

static size_t map_size(stor_env_t *env)
{
    return env->be->capacity != NULL ? env->be->capacity(env->benv) : 0;
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
        const char *only = env->full_log_only ? " (logged here only: csc-sam audits its own episodes)" : "";
        env->full_since_ms = wall_ms();
        env->full_disk = env->be->full_cause != NULL && env->be->full_cause(env->benv) == STOR_FULL_DISK;
        if (env->full_disk)
            fprintf(stderr,
                    "storage: ALARM: the disk holding the database is full (no space left on its filesystem, or the "
                    "quota reached): writes are refused (503) until space is freed there%s\n", only);
        else
            fprintf(stderr,
                    "storage: ALARM: the LMDB map is full (lmdb_map_size = %zu bytes): writes are refused (503) until "
                    "space is freed; raise lmdb_map_size and restart, or let expired records be purged%s\n",
                    map_size(env), only);
    }
    env->full_refused += refused;
    if (refused > 0)
        env->full_last_ms = mono_ms();
    if (env->full_since_ms != 0 && refused == 0 && note_rc == 0 && commit_rc == 0) {
        fprintf(stderr, "storage: the %s has space again: %" PRIu64 " writes were refused while it was full\n",
                env->full_disk ? "disk holding the database" : "LMDB map", env->full_refused);
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

/* Did a job meet a conflict with another writer (STOR_ERR_RETRY)? Then the batch is run again (the job whose
 * failure ended the flat pass keeps its answer: it is not run again). */
static int batch_conflict(const struct stor_job *batch, const struct stor_job *failed)
{
    for (const struct stor_job *j = batch; j != NULL; j = j->next)
        if (j != failed && j->rc == STOR_ERR_RETRY)
            return 1;
    return 0;
}

/*
 * The jobs of a batch run one after the other in the batch's own txn ("flat"): a batch that succeeds whole, the
 * common case, costs no nested txn. LMDB allocates 3 MiB for each nested txn (its dirty list and free list), which
 * in csc-sam's locked heap moved from place to place and left touched pages behind (the soak's creeping memory,
 * docs/reliability.md); PostgreSQL a SAVEPOINT and its RELEASE.
 *
 * A job that fails (any non-zero answer: an error, or a callback's own refusal) ends the flat pass: its writes and
 * those of the jobs before it are in the txn, which is aborted. That job's answer is its answer (it saw exactly
 * what it would have seen in a nested txn: the writes of the jobs before it); it is not run again. The batch then
 * runs again without it, each job in a nested txn of the batch's, so that a further failure undoes its own writes
 * only. Every callback must thus be safe to run more than once (stor.h), as it already had to be for
 * STOR_ERR_RETRY, which runs the whole batch again.
 *
 * While a full episode lasts the batch runs nested from the start: the batch that ends the episode appends its
 * record after the jobs, and a refused job must not take the others' writes with it.
 */
static void run_batch(stor_env_t *env, struct stor_job *batch)
{
    struct stor_job note = { .fn = full_record_fn, .arg = env };
    struct stor_job *failed = NULL; /* the job whose failure ended the flat pass: its answer stays */
    stor_bk_txn_t *parent = NULL;
    struct stor_job *j;
    int rc, note_rc, tries = 0, flat = env->full_since_ms == 0;

again:
    note_rc = -1;
    if ((rc = env->be->txn_begin(env->benv, NULL, STOR_BK_WRITE, &parent)) != 0) {
        for (j = batch; j != NULL; j = j->next)
            if (j != failed)
                j->rc = rc;
        full_track(env, batch, note_rc, rc);
        return;
    }
    if (flat) {
        for (j = batch; j != NULL && (j->rc = run_fn(env, parent, j)) == 0; j = j->next)
            ;
        if (j != NULL) { /* j failed: the txn holds its writes, and maybe no more writes at all (a full map) */
            env->be->txn_abort(parent);
            if (j->rc == STOR_ERR_RETRY && ++tries < STOR_RETRY_MAX)
                goto again; /* a conflict: the whole batch runs again, flat */
            failed = j;
            flat = 0;
            if (batch->next == NULL) { /* nobody else to run */
                full_track(env, batch, note_rc, 0);
                return;
            }
            goto again;
        }
    } else {
        for (j = batch; j != NULL; j = j->next)
            if (j != failed && (j->rc = run_job(env, parent, j)) == STOR_ERR_FULL)
                note_rc = STOR_ERR_FULL;
        if (batch_conflict(batch, failed) && ++tries < STOR_RETRY_MAX) {
            env->be->txn_abort(parent);
            goto again;
        }
    }
    /* Only a batch that refused nothing may say that space is back (a disk: after its quiet period). */
    if (note_rc != STOR_ERR_FULL && full_may_end(env))
        note_rc = env->full_log_only ? 0 : run_job(env, parent, &note);
    if ((rc = commit_parent(env, parent)) != 0) {
        if (rc == STOR_ERR_RETRY && ++tries < STOR_RETRY_MAX)
            goto again;
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

const double stor_commit_bounds[STOR_COMMIT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                          0.05,   0.1,   0.25,   0.5,   1};

static void finish_batch(stor_env_t *env, struct stor_job *batch, unsigned n, double seconds)
{
    size_t b = 0;
    while (b < STOR_COMMIT_BUCKETS && seconds > stor_commit_bounds[b])
        b++;
    env->st_commit_buckets[b]++;
    env->st_commit_seconds += seconds;
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
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        run_batch(env, batch);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        leading = NULL;
        pthread_mutex_lock(&env->mu);
        finish_batch(env, batch, n, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
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
    stor_txn_t t = { .env = env, .writable = 0, .walk_db = -1 };
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
    if ((rc = env->be->txn_begin(env->benv, NULL, STOR_BK_READ, &t.txn)) == 0) {
        rc = fn(&t, arg);
        env->be->txn_abort(t.txn);
    }
    pthread_mutex_lock(&env->mu);
    leave(env);
    pthread_mutex_unlock(&env->mu);
    return rc;
}

int stor_room_ample(stor_env_t *env)
{
    uint64_t used;
    size_t cap;

    if (env->full_since_ms != 0 || env->be->used == NULL || env->be->capacity == NULL ||
        (cap = env->be->capacity(env->benv)) == 0 || env->be->used(env->benv, &used) != 0)
        return 0;
    return used < cap && cap - used >= cap / 4;
}

int stor_size(stor_env_t *env, uint64_t *used, uint64_t *capacity)
{
    if (env == NULL || used == NULL || capacity == NULL)
        return STOR_ERR_INVAL;
    if (env->be->used == NULL || env->be->capacity == NULL)
        return STOR_ERR_NOTFOUND;
    *capacity = env->be->capacity(env->benv);
    return env->be->used(env->benv, used);
}

void stor_commit_stats(stor_env_t *env, stor_commit_stats_t *out)
{
    pthread_mutex_lock(&env->mu);
    out->batches = env->st_batches;
    out->jobs = env->st_jobs;
    memcpy(out->buckets, env->st_commit_buckets, sizeof(out->buckets));
    out->seconds = env->st_commit_seconds;
    pthread_mutex_unlock(&env->mu);
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
    out->round_trips = env->be->round_trips != NULL ? env->be->round_trips(env->benv) : 0;
    out->statements = env->be->statements != NULL ? env->be->statements(env->benv) : 0;
    out->nested = __atomic_load_n(&env->st_nested, __ATOMIC_RELAXED);
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
