/*
 * stor_int.h - private to storage/ (and its unit tests).
 *
 * Layout of the environment:
 *   users           user name          -> encoded stor_user_t
 *   creds           credential id      -> encoded stor_cred_t
 *   creds_by_owner  owner (dupsort)    -> credential id
 *   tokens          token hash (32)    -> encoded stor_token_t
 *   tokens_by_grant grant (dupsort)    -> token hash (32, dupfixed)
 *   sads            SAD hash (32)      -> encoded stor_sad_t
 *   audit           seq (u64 BE)       -> encoded stor_audit_t (digests inline)
 *   meta            "schema"           -> u32 LE schema version
 *                   "audit_head"       -> encoded stor_head_t (last seq + its hash)
 *   clients         OAuth client_id    -> encoded stor_client_t
 *   codes           code hash (32)     -> encoded stor_code_t
 *   pending_sads    code hash (32)     -> encoded stor_sad_t: the authorization a credential-scope code will
 *                                         turn into a SAD at the token endpoint. A table of its own, so that no
 *                                         SAD lookup (signHash, extendTransaction) can ever find it by the code.
 *   audit_heads     seq (u64 BE)       -> encoded stor_signed_head_t (append-only, J11)
 *   async_results   responseID hash    -> encoded stor_async_t (operationMode "A"; purged after expires_ms)
 *   operators       operator name      -> encoded stor_operator_t
 *   op_sessions     token hash (32)    -> encoded stor_opsession_t
 *   approvals       approval id        -> encoded stor_approval_t
 *   delegations     delegate (dupsort) -> credential id
 *   web_sessions    session id hash    -> encoded stor_websession_t (the OAuth and approval pages' browser sessions,
 *                                         shared by csc-server and csc-sam; purged after expires_at)
 *   user_approvals  handle hash (32)   -> encoded stor_user_approval_t (credentials/authorize waiting for the
 *                                         user's approval on /approve; purged after expires_at)
 *   enrollments     user name          -> encoded stor_enroll_t (a user's enrollment code: its hash, tries, expiry)
 *   enroll_tickets  ticket hash (32)   -> encoded stor_enroll_ticket_t (/enroll step 2; purged after expires_at)
 *   restore_reqs    reference          -> encoded stor_restore_req_t (a user's restore request; purged after expires_at)
 *   signins         user name          -> encoded stor_recent_t (the user's last sign-ins)
 *   sign_events     credential id      -> encoded stor_recent_t (the credential's last signing events)
 *   challenges      SHA-256(user NUL cred) -> encoded stor_challenge_t (a pending one-time code's HMAC; purged after
 *                                         expires_at)
 *   pars            request_uri hash (32) -> encoded stor_par_t (a pushed authorization request, RFC 9126:
 *                                         csc-server's; purged after expires_at)
 *
 * Each table lives in the backend chosen by stor_config_t.backend (stor_backend.h): stor_env.c keeps the
 * generic part (group commit, batches, full episodes) and the files of storage/ reach the backend only through
 * t->env->be (the helpers below), never its library.
 *
 * clients and codes were added without a schema change: an environment of the
 * first layout gains them (empty) when it is opened, and older code ignores them.
 */
#ifndef STOR_INT_H
#define STOR_INT_H

#include <pthread.h>
#include <stdint.h>

#include "stor.h"
#include "stor_backend.h"

#define STOR_SCHEMA_VERSION 1u
#define STOR_PG_SCHEMA_VERSION 4u /* PostgreSQL: the newest storage/migrations/NNNN_*.sql this code knows (the build
                                   * fails if it is not: cmake/embed_migrations.cmake) */
#define STOR_BATCH_MAX 256 /* jobs per write txn; bounds the latency of a batch */
#define STOR_RETRY_MAX 5   /* runs of a batch that meets conflicts with other writers (STOR_ERR_RETRY) */

enum { STOR_DB_USERS, STOR_DB_CREDS, STOR_DB_CREDS_BY_OWNER, STOR_DB_TOKENS, STOR_DB_TOKENS_BY_GRANT,
       STOR_DB_SADS, STOR_DB_AUDIT, STOR_DB_META, STOR_DB_CLIENTS, STOR_DB_CODES,
       STOR_DB_AUDIT_HEADS, STOR_DB_ASYNC,
       STOR_DB_OPERATORS, STOR_DB_OPSESSIONS, STOR_DB_APPROVALS, STOR_DB_DELEGATIONS, STOR_DB_PENDING_SADS,
       STOR_DB_WEBSESSIONS, STOR_DB_USER_APPROVALS, STOR_DB_ENROLL, STOR_DB_ENROLL_TICKETS,
       STOR_DB_RESTORE_REQS, STOR_DB_SIGNINS, STOR_DB_SIGN_EVENTS, STOR_DB_CHALLENGES,
       STOR_DB_PARS, STOR_DB_COUNT };

struct stor_job;

struct stor_env {
    const stor_backend_t *be;
    stor_bk_env_t *benv;
    pthread_mutex_t mu;
    pthread_cond_t idle;  /* stor_close waits here for callers to leave */
    struct stor_job *head, *tail;
    size_t queued;
    unsigned active;      /* callers inside stor_write/stor_read */
    int closing;
    int committing;       /* a caller of stor_write is running a batch (lead() in stor_env.c) */
    int writer_running;   /* writes open: set once by stor_open or stor_start_writer, before other threads write */
    /* read by the test hooks (see below; CSC_TEST_HOOKS builds only), protected by mu */
    uint64_t st_batches, st_jobs;
    uint64_t st_commit_buckets[STOR_COMMIT_BUCKETS + 1]; /* batches by time (not cumulative; last: slower) */
    double st_commit_seconds;                            /* their time added up */
    unsigned st_max_batch, st_last_batch;
    uint64_t st_nested;   /* nested write txns begun (atomic: run_job's and stor_txn_nested's) */
    int fail_commits;
    /* a full map (the thread running a batch only; copied under mu for stor_full_status) */
    int full_log_only;       /* stor_config_t.full_log_only: no STOR_EV_STORAGE record */
    int64_t full_since_ms;   /* 0: not full */
    int full_disk;           /* the episode's cause: the disk (STOR_FULL_DISK), else the map */
    int64_t full_last_ms;    /* the episode's last refusal, CLOCK_MONOTONIC ms (a disk episode's quiet period) */
    uint64_t full_refused;   /* writes refused with STOR_ERR_FULL in this episode */
    int64_t pub_full_since_ms;
    uint64_t pub_full_refused;
    /* stor_env_restrict_writes: bit i set = table i may be written (all at open); tables said denied on stderr */
    uint64_t writable;
    uint64_t denied_logged;
};

struct stor_txn {
    stor_env_t *env;
    stor_bk_txn_t *txn;
    int writable;
    int err; /* first backend failure that poisoned the txn; later calls return it */
    const char *origin; /* the asking thread's stor_audit_origin_set (NULL: none): audit records, approval requests */
    int walk_db;        /* the table stor_walk walks now (stor_walk_del's table), -1: none */
    int purge_chunked;  /* stor_purge_run runs a purge in it: stor_purge_table stops at STOR_PURGE_TXN_MAX */
};

/* ---- record codec (stor_codec.c) -------------------------------------- */

/* Encoding: byte 0 = record type, byte 1 = format version, then fields
 * (tag u8, length u32 LE, bytes). Integers are little-endian of their exact
 * size; strings carry no NUL. Unknown tags are skipped on decode. */
#define STOR_CODEC_VERSION 1

typedef enum {
    STOR_REC_USER = 1,
    STOR_REC_CRED = 2,
    STOR_REC_TOKEN = 3,
    STOR_REC_SAD = 4,
    STOR_REC_AUDIT = 5,
    STOR_REC_HEAD = 6,
    STOR_REC_CLIENT = 7,
    STOR_REC_CODE = 8,
    STOR_REC_SIGNED_HEAD = 15,
    STOR_REC_ASYNC = 20,       /* asynchronous signing results (stor_async.c) */
    STOR_REC_OPERATOR = 9,
    STOR_REC_OPSESSION = 10,
    STOR_REC_APPROVAL = 11,
    STOR_REC_WEBSESSION = 21,
    STOR_REC_USER_APPROVAL = 22,
    STOR_REC_ENROLL = 23,
    STOR_REC_ENROLL_TICKET = 24,
    STOR_REC_RESTORE_REQ = 26,
    STOR_REC_RECENT = 27,
    STOR_REC_CHALLENGE = 28,   /* pending one-time codes (stor_challenge.c) */
    STOR_REC_PAR = 29,         /* pushed authorization requests (stor_par.c) */
} stor_rec_type_t;

/** Head of the audit chain, kept in meta. */
typedef struct stor_head {
    uint64_t seq;
    uint8_t hash[32];
} stor_head_t;

/**
 * Size of the encoding of rec, validating it.
 * @return 0, or STOR_ERR_INVAL if a string is not terminated inside its array or a
 *         length field exceeds its array (or a digest pointer is missing).
 */
int stor_codec_size(stor_rec_type_t type, const void *rec, size_t *len);
/** Encode rec into buf of exactly the size stor_codec_size() returned. */
int stor_codec_encode(stor_rec_type_t type, const void *rec, uint8_t *buf, size_t len);
/**
 * Decode buf into rec (zero-filled first; every field absent from buf stays zero).
 * @return 0 or STOR_ERR_CORRUPT (then rec is wiped).
 * @note For STOR_REC_AUDIT, rec->digests points into buf.
 */
int stor_codec_decode(stor_rec_type_t type, const uint8_t *buf, size_t len, void *rec);
/**
 * Read one scalar, string or fixed-size field without decoding the whole record.
 * @param[in] off offsetof() the field in the record struct.
 * @param[out] out buffer of exactly the field's size in the struct (zeroed if the field is absent).
 * @return 0, STOR_ERR_CORRUPT, or STOR_ERR_INVAL if off/out_size do not name such a field.
 */
int stor_codec_peek(stor_rec_type_t type, const uint8_t *buf, size_t len, size_t off, void *out, size_t out_size);

/* ---- errors and txn helpers ------------------------------------------ */

/** Record a backend failure (a STOR_ERR_* code) on t if it kills the txn (all but NOTFOUND and EXISTS); return it. */
int stor_txn_fail(stor_txn_t *t, int rc);
/** 0 if t may be used (for a write if write != 0), else STOR_ERR_INVAL or the error that poisoned t. */
int stor_txn_check(stor_txn_t *t, int write);
/* The backend's get / put / del / count on t (stor_backend.h), a failure recorded by stor_txn_fail. No check of t:
 * the callers have made it (stor_txn_check). */
int stor_kv_get(stor_txn_t *t, int db, const stor_val_t *k, stor_val_t *v);
/* STOR_OK if t may write table db, else STOR_ERR_DENIED (said once per table on stderr; stor_env.c). */
int stor_write_allowed(stor_txn_t *t, int db);
int stor_kv_put(stor_txn_t *t, int db, const stor_val_t *k, stor_val_t *v, unsigned flags);
int stor_kv_del(stor_txn_t *t, int db, const stor_val_t *k, const stor_val_t *v);
/** The backend's prefetch of key k of table db (stor_backend.h): a later get of it in t may cost no round trip of
 *  its own. Nothing on a backend without one. @return 0, STOR_ERR_INVAL, or the failure of t. Typed callers:
 *  stor_txn_token_prefetch, stor_txn_user_prefetch, stor_txn_cred_prefetch (stor.h). */
int stor_txn_prefetch(stor_txn_t *t, int db, const void *key, size_t klen);
/** stor_txn_prefetch of the record a stor_get_by_name / stor_get_by_hash of the same arguments reads. */
int stor_prefetch_by_name(stor_txn_t *t, int db, const char *name);
int stor_prefetch_by_hash(stor_txn_t *t, int db, const uint8_t hash[32]);
/** Run fn in a transaction nested in t (a write txn): committed into t if fn returns 0, else aborted. @return fn's
 *  return, or the backend's failure to begin or commit (recorded on t). */
int stor_txn_nested(stor_txn_t *t, stor_txn_fn fn, void *arg);
/** May a write of a few pages be made without a nested txn to catch STOR_ERR_FULL? 1 when the backend tells its
 *  capacity and use (LMDB) and at least a quarter of the capacity was never used (more than any write txn takes),
 *  and no full episode lasts; else 0 (PostgreSQL: a full disk is not known ahead). Called by the batch's leader. */
int stor_room_ample(stor_env_t *env);
/** Validate and encode rec into the value of key in table db (STOR_PUT_* flags). */
int stor_put_rec(stor_txn_t *t, int db, const stor_val_t *key, stor_rec_type_t type, const void *rec, unsigned flags);
/** Decode the value of key in table db into out (out_size bytes; zeroed on any error). */
int stor_get_rec(stor_txn_t *t, int db, const stor_val_t *key, stor_rec_type_t type, void *out, size_t out_size);
/** The same for a record keyed by a 32-byte hash (tokens, SADs, codes, async results, operator sessions). */
int stor_get_by_hash(stor_txn_t *t, int db, stor_rec_type_t type, const uint8_t hash[32], void *out, size_t size);
/** Records keyed by a name (stor_name_check): get (out zeroed first), put (create_only: STOR_PUT_NOOVERWRITE), delete. */
int stor_get_by_name(stor_txn_t *t, int db, stor_rec_type_t type, const char *name, void *out, size_t size);
int stor_put_by_name(stor_txn_t *t, int db, stor_rec_type_t type, const char *name, const void *rec, int create_only);
int stor_del_by_name(stor_txn_t *t, int db, const char *name);
/** Delete the record under a 32-byte hash key in table db (write txn). @return 0, STOR_ERR_NOTFOUND, ... */
int stor_del_by_hash(stor_txn_t *t, int db, const uint8_t hash[32]);
/** 0 if name is 1..STOR_NAME_MAX printable ASCII characters without spaces, else STOR_ERR_INVAL. */
int stor_name_check(const char *name);
/** The number of rows of table db (read or write txn). @return 0 or an error */
int stor_count_rows(stor_txn_t *t, int db, size_t *n);

/* ---- walking a table (stor_txn.c): the one cursor loop of storage/ ---------- */

typedef enum {
    STOR_WALK_ALL,   /**< every row, in key order (key unused) */
    STOR_WALK_FROM,  /**< the rows whose key is >= *key, in key order */
    STOR_WALK_DUPS,  /**< the values of *key in a dupsort table, in value order */
} stor_walk_t;

/** The cursor of a walk (opaque: the backend's). */
typedef stor_bk_cur_t stor_cursor_t;
/** One row of a walk. k and v point into the backend's memory (valid until the next write); cur is the walk's
 *  cursor (fn may delete the row with stor_walk_del, but must not write to the walked table otherwise). A non-zero
 *  return stops the walk and is its result. */
typedef int (*stor_row_fn)(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg);
/**
 * Open a cursor on table db, call fn for each row that how (and key) selects, close it.
 * @return 0 after the last row, fn's first non-zero return, or the STOR code of a backend failure (or of t).
 */
int stor_walk(stor_txn_t *t, int db, stor_walk_t how, const stor_val_t *key, stor_row_fn fn, void *arg);
/** Delete the walk's current row (write txn; the walk goes on with the row after it). @return 0 or the failure. */
int stor_walk_del(stor_txn_t *t, stor_cursor_t *cur);

/** The typed callback of stor.h that stor_walk_recs calls: the member that matches type. */
typedef struct stor_rec_cb {
    stor_rec_type_t type;   /**< STOR_REC_USER, _CRED, _TOKEN, _CLIENT, _OPERATOR or _APPROVAL */
    int via;                /**< -1: the rows' values are the records; else the table the values are keys of (the
                             *   walked table is its index; a row whose record is missing is STOR_ERR_CORRUPT) */
    union {
        stor_user_each_fn user;
        stor_cred_each_fn cred;
        stor_token_each_fn token;
        stor_client_each_fn client;
        stor_operator_each_fn op;
        stor_approval_each_fn approval;
    } fn;
    void *arg;
} stor_rec_cb_t;
/** A growing list of 32-byte keys: what a walk collects to change once the cursor is closed. */
typedef struct stor_hash_list {
    uint8_t (*h)[32];
    size_t n, cap;
} stor_hash_list_t;
/** Append the 32 bytes at h (the list grows by doubling). @return 0 or STOR_ERR_NOMEM */
int stor_hash_list_add(stor_hash_list_t *l, const void *h);
/** Rows a purge deletes in one write txn. A purge of everything expired at once wrote a transaction as big as the
 *  backlog: the writer held for its length (every signature's commit waiting behind it), and LMDB keeps the pages
 *  of its largest write transaction for the next (its own free list of dirty pages), so csc-sam's locked memory grew
 *  with the biggest purge it ever ran (bench/soak: 3.5 MiB at the first purge of a minute's tokens). */
#define STOR_PURGE_TXN_MAX 256
/** stor_purge_table's return when the txn's STOR_PURGE_TXN_MAX rows are deleted and more may be left (> 0: not an
 *  error; stor_purge_run commits and runs the purge again). */
#define STOR_PURGE_MORE 1
/** Delete the rows of table db whose record (of type; its int64 expiry at exp_off) expired before now; tokens also
 *  lose their grant-index row. Adds the number deleted to *n (at most INT32_MAX). Run by stor_purge_run, it stops with
 *  STOR_PURGE_MORE once *n reaches STOR_PURGE_TXN_MAX; called within another write (a bound making room), it deletes
 *  all. Writable t. */
int stor_purge_table(stor_txn_t *t, int db, stor_rec_type_t type, size_t exp_off, int64_t now, int *n);
/* Writes that run purge(t, now, &n) (n counts the rows it deleted in this txn, from 0 again if the batch is retried),
 * one after another while purge answers STOR_PURGE_MORE: stor_purge_expired (csc-sam's), stor_async_purge,
 * stor_purge_websessions and stor_purge_pars (csc-server's). @return the rows deleted, or an error. */
typedef int (*stor_purge_fn)(stor_txn_t *t, int64_t now, int *n);
int stor_purge_run(stor_env_t *env, int64_t now, stor_purge_fn purge);
/** stor_walk that decodes each record into one heap copy, wiped and freed at the end, and calls cb with it. */
int stor_walk_recs(stor_txn_t *t, int db, stor_walk_t how, const stor_val_t *key, const stor_rec_cb_t *cb);

/* ---- audit (stor_audit.c) --------------------------------------------- */

/**
 * hash = SHA-256(prev_hash || canonical(rec)), where canonical(rec) is, big-endian:
 * seq u64, time_ms i64, event u32, result u32, user, cred, client (each u32 length + bytes),
 * authz_ref[16], detail (u32 length + bytes), digest_len u32, n_digests u32,
 * then n_digests * digest_len digest bytes; then, only if owner is not "", the byte 15 and owner (u32 length +
 * bytes), so records without an owner hash as before the field existed.
 */
int stor_audit_hash(const stor_audit_t *rec, const uint8_t prev_hash[32], uint8_t out[32]);

/** The name of table db (STOR_DB_*), e.g. "users"; "?" for a number out of range. */
const char *stor_table_name(int db);

/* ---- test hooks: only in the csc_storage_t library of the unit tests (-DCSC_TEST_HOOKS) ---- */

#ifdef CSC_TEST_HOOKS

typedef struct stor_stats {
    uint64_t batches;       /**< write txns committed or attempted */
    uint64_t jobs;          /**< jobs run */
    unsigned max_batch;     /**< largest batch seen */
    unsigned last_batch;    /**< size of the latest batch */
    uint64_t round_trips;   /**< the backend's round trips to its database so far (0: it makes none, LMDB) */
    uint64_t statements;    /**< the statements it sent in txns so far (0: none, LMDB) */
    uint64_t nested;        /**< nested write txns begun (a batch's jobs, stor_txn_nested) */
} stor_stats_t;

void stor_int_stats(stor_env_t *env, stor_stats_t *out);
/** Number of jobs queued for the next batch (waiting for the running one to commit). */
size_t stor_int_queued(stor_env_t *env);
/** 1 once stor_close() has started. */
int stor_int_closing(stor_env_t *env);
/** Make the next n batch commits fail as if the disk failed (EIO). */
void stor_int_fail_commits(stor_env_t *env, int n);
/** stor_copy does not write the n-th row it copies (1-based, over all tables; 0: every row), so its check fails. */
void stor_test_copy_skip_row(size_t n);
#endif

#endif
