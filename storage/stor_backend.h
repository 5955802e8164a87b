/*
 * stor_backend.h - the storage backend interface (private to storage/).
 *
 * The record layer of storage/ (stor_codec.c encodes records to bytes; stor_txn.c and the other stor_*.c files
 * get, put, delete and walk them) sees a backend only through this table of functions, the way a program picks
 * one of several TLS libraries at run time. A backend stores bytes under keys in named tables, inside
 * transactions, and nothing else: it knows no record type.
 *
 * Tables are given to open() as a list (stor_table_t); the record layer names a table by its index in that
 * list. Keys sort by memcmp with a shorter key first when one is a prefix of the other; a dupsort table holds a
 * set of values per key, sorted the same way. Walks therefore return the same rows in the same order on every
 * backend.
 *
 * Errors: every function returns STOR_OK or a STOR_ERR_* code (never a backend's own code). STOR_ERR_RETRY (a
 * conflict with another writer: the top-level txn may only be aborted) makes stor_env.c run the batch again.
 * STOR_ERR_NOTFOUND and STOR_ERR_EXISTS leave a transaction usable; after any other error in a write
 * transaction the transaction may only be aborted (the record layer remembers the error: stor_txn_fail).
 * A backend may defer a write whose answer the caller does not need (a put without NOOVERWRITE, NODUPDATA or
 * APPEND, or with STOR_PUT_NEW; a nested txn's commit) and report its error from a later call of the same
 * top-level txn, at the latest from the top-level commit. If that later call belongs to another nested txn, the
 * error fails the whole top-level txn: nothing of it is kept, so no caller is ever told that a write succeeded
 * which is then lost.
 *
 * Threads: one transaction (and its cursors) is used by one thread at a time. A read transaction is not tied to
 * the thread that began it. At most one top-level write transaction exists at a time per environment in a
 * process (stor_env.c's group commit ensures it); beginning a second one in the same thread is not allowed.
 *
 * Writers in several processes (several nodes on PostgreSQL): LMDB lets one write txn run at a time across
 * processes, so every decision in a write txn is atomic. PostgreSQL runs them at once, and gives the same guarantee
 * for keys: in a write txn a get locks the row it finds, or the key it does not find, until the top-level txn
 * ends, so a read-modify-write of one key (a SAD's budget, the audit head, a code used up, a first counter) is
 * atomic across nodes. A cursor read in a write txn locks the rows it returns, not the keys between them, and a
 * count locks nothing: a decision taken on "no row in this range" or on a number of rows (the caps on pending
 * codes, approvals, sessions, pushed requests) may be overshot by concurrent writers, by at most one row each. Code
 * that needs a range to stay empty must name a key and get it.
 *
 * Backends: stor_backend_lmdb (storage/stor_lmdb.c, the only file of the project that uses LMDB) and
 * stor_backend_pg ("postgresql", storage/stor_pg.c, the only one that uses libpq); the ctest unit_storage_confined
 * checks both. Every case of tests/unit/storage/test_stor_backend.c runs against each (ctest unit_storage_pg starts
 * a PostgreSQL cluster for the second).
 */
#ifndef STOR_BACKEND_H
#define STOR_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "stor.h"

/** Bytes: a key or a value. */
typedef struct stor_val {
    size_t len;
    void *data;
} stor_val_t;

/** The KEY(p, n) of storage/: a stor_val_t naming n bytes at p (not copied). */
#define STOR_VAL(p, n) ((stor_val_t){ (n), (void *)(p) })

/* full_cause(): why writes are refused with STOR_ERR_FULL. */
#define STOR_FULL_MAP 0  /**< the environment's own bound (LMDB: lmdb_map_size) */
#define STOR_FULL_DISK 1 /**< the disk under it (LMDB: ENOSPC or EDQUOT writing pages; PostgreSQL: disk_full) */

/* Flags of put(). */
#define STOR_PUT_NOOVERWRITE 0x1u /**< plain table: refuse (STOR_ERR_EXISTS) if the key exists; v is not changed */
#define STOR_PUT_NODUPDATA 0x2u   /**< dupsort table: refuse (STOR_ERR_EXISTS) if this key/value pair exists */
#define STOR_PUT_RESERVE 0x4u     /**< plain table: store v->len bytes and set v->data to them, to be filled by the
                                   *   caller before any other call on the txn (v->data on entry is ignored) */
#define STOR_PUT_APPEND 0x8u      /**< plain table: k must sort after every key of the table (else STOR_ERR_EXISTS, txn
                                   *   usable), for keys that only grow (a backend may skip the search) */
#define STOR_PUT_NEW 0x10u        /**< with NOOVERWRITE, plain table: the caller holds the lock that makes k new (the
                                   *   audit head's, for the next record); a k that exists anyway means a corrupt
                                   *   database, which a backend may report as STOR_ERR_CORRUPT from a later call of
                                   *   the txn (which then fails) instead of EXISTS from this one */

/* Flags of a table. */
#define STOR_TABLE_DUPSORT 0x1u  /**< a set of values per key, in value order */
#define STOR_TABLE_DUPFIXED 0x2u /**< with DUPSORT: all values of the table have one length (a hint) */

typedef struct stor_table {
    const char *name; /**< [a-z_]+, unique */
    unsigned flags;   /**< STOR_TABLE_* */
} stor_table_t;

/* A backend's own handles: opaque to the record layer. */
typedef struct stor_bk_env stor_bk_env_t;
typedef struct stor_bk_txn stor_bk_txn_t;
typedef struct stor_bk_cur stor_bk_cur_t;

/** Kinds of transaction for begin(). */
typedef enum {
    STOR_BK_READ,  /**< a snapshot; only get, count and cursors that do not delete */
    STOR_BK_WRITE, /**< top-level (parent NULL) or nested in parent (a write txn) */
} stor_bk_mode_t;

/** Positioning of cursor_get(). */
typedef enum {
    STOR_CUR_FIRST,     /**< the first row of the table */
    STOR_CUR_SET_RANGE, /**< the first row whose key is >= k (in a dupsort table: its first value) */
    STOR_CUR_SET_KEY,   /**< the first value of key k (exact match) */
    STOR_CUR_NEXT,      /**< the next row (next value, or first value of the next key) */
    STOR_CUR_NEXT_DUP,  /**< the next value of the current key only (a plain table: always STOR_ERR_NOTFOUND) */
} stor_cur_op_t;

typedef struct stor_backend {
    /** The scheme of `storage = <name>:<location>`. */
    const char *name;

    /**
     * Open (creating if needed) the environment at cfg's location with the given tables (created if missing;
     * their flags must match those they were created with).
     * @return STOR_OK (then *out is set) or an error (*out untouched): STOR_ERR_INVAL for a bad location,
     *         STOR_ERR_IO, STOR_ERR_CORRUPT (not this backend's data, or an incompatible format), STOR_ERR_NOMEM.
     */
    int (*open)(const stor_config_t *cfg, const stor_table_t *tables, size_t n_tables, stor_bk_env_t **out);
    /** Close the environment; every transaction must have ended. NULL is accepted. */
    void (*close)(stor_bk_env_t *e);

    /**
     * Begin a transaction. parent (a write txn of the same environment, in which no other nested txn is open)
     * makes a nested write transaction: its changes become part of the parent's at its commit, and vanish at
     * its abort; the parent must not be used while the child lives. A read txn never has a parent.
     * @return STOR_OK (*out set) or an error (STOR_ERR_FULL, STOR_ERR_IO, STOR_ERR_NOMEM, STOR_ERR_INVAL).
     */
    int (*txn_begin)(stor_bk_env_t *e, stor_bk_txn_t *parent, stor_bk_mode_t mode, stor_bk_txn_t **out);
    /**
     * Commit and end t (its handle is freed, even on failure). Committing a read txn just ends it. A top-level
     * write txn is durable when this returns STOR_OK; on any error nothing of it is kept.
     * @return STOR_OK, STOR_ERR_FULL, STOR_ERR_IO, ...
     */
    int (*txn_commit)(stor_bk_txn_t *t);
    /** Abort and end t (and any nested txn of t); nothing of it is kept. */
    void (*txn_abort)(stor_bk_txn_t *t);

    /**
     * The value of key k of table db (in a dupsort table: its first value).
     * @param[out] v points into memory the backend owns, valid until the next put, del or cursor delete in t
     *               (or its children) and at most until t ends; never written through.
     * @return STOR_OK, STOR_ERR_NOTFOUND (txn usable), STOR_ERR_INVAL, ...
     */
    int (*get)(stor_bk_env_t *e, stor_bk_txn_t *t, int db, const stor_val_t *k, stor_val_t *v);
    /**
     * Read the value of key k of table db ahead, for a get of the same (db, k) in t (or its children) later: that
     * get then returns what it would have returned anyway (a write txn's locks taken, a read txn's snapshot), but
     * may be answered without a round trip of its own, the read having gone out with the next statement that
     * needed an answer. A hint: a backend may decline (too many pending), and a row never asked for costs nothing
     * but its read. A put, del or cursor delete of the key, or the abort of a nested txn, forgets it.
     * NULL: a get costs no round trip (LMDB).
     * @return STOR_OK (also when declined), STOR_ERR_INVAL, or a failure of t (STOR_ERR_UNAVAILABLE, ...)
     */
    int (*prefetch)(stor_bk_env_t *e, stor_bk_txn_t *t, int db, const stor_val_t *k);
    /**
     * Store v under k in table db (a write txn). A plain table replaces the value; a dupsort table adds v to
     * the key's set (a no-op if the pair exists, unless STOR_PUT_NODUPDATA).
     * @return STOR_OK, STOR_ERR_EXISTS (NOOVERWRITE/NODUPDATA: txn usable), STOR_ERR_FULL, STOR_ERR_INVAL
     *         (a key or value too long or empty key), ...
     */
    int (*put)(stor_bk_env_t *e, stor_bk_txn_t *t, int db, const stor_val_t *k, stor_val_t *v, unsigned flags);
    /**
     * Delete key k of table db (a write txn): all its values, or with v != NULL only the value v of a dupsort
     * table.
     * @return STOR_OK, STOR_ERR_NOTFOUND (txn usable), ...
     */
    int (*del)(stor_bk_env_t *e, stor_bk_txn_t *t, int db, const stor_val_t *k, const stor_val_t *v);
    /** The number of rows of table db in t (key/value pairs: each value of a dupsort table counts). */
    int (*count)(stor_bk_env_t *e, stor_bk_txn_t *t, int db, size_t *n);

    /** Open a cursor on table db in t; closed with cursor_close before t ends. */
    int (*cursor_open)(stor_bk_env_t *e, stor_bk_txn_t *t, int db, stor_bk_cur_t **out);
    /**
     * Move the cursor (op) and return its row in k and v (same lifetime as get()'s value; k is read for
     * SET_RANGE and SET_KEY). After STOR_ERR_NOTFOUND the cursor has no current row.
     * @return STOR_OK, STOR_ERR_NOTFOUND (no such row), ...
     */
    int (*cursor_get)(stor_bk_cur_t *c, stor_cur_op_t op, stor_val_t *k, stor_val_t *v);
    /** Delete the cursor's current row (a write txn); STOR_CUR_NEXT then returns the row that followed it. */
    int (*cursor_del)(stor_bk_cur_t *c);
    void (*cursor_close)(stor_bk_cur_t *c);

    /** The size limit of the environment in bytes (what a full episode reports), 0 if it has none. May be NULL. */
    size_t (*capacity)(stor_bk_env_t *e);
    /** What the last write refused with STOR_ERR_FULL met: STOR_FULL_MAP (the environment's own bound, capacity())
     *  or STOR_FULL_DISK (the filesystem under it has no room: ENOSPC, EDQUOT). NULL: always STOR_FULL_MAP. */
    int (*full_cause)(stor_bk_env_t *e);
    /** The bytes the database uses now (LMDB: its pages up to the last one in use; the file may be larger), read
     *  without a transaction and without blocking. NULL: not known that cheaply (PostgreSQL: its own statistics,
     *  pg_database_size). */
    int (*used)(stor_bk_env_t *e, uint64_t *bytes);

    /**
     * The schema version the database's migrations recorded (PostgreSQL: max(version) of csc.schema_version) and the
     * oldest code version that may run on it (that row's compatible_from; *version itself for a row without one),
     * read without locking anything. NULL: the backend keeps the record layer's version in table meta (LMDB).
     * @return STOR_OK, STOR_ERR_NOTFOUND (no version recorded: the migrations were not run), ...
     */
    int (*schema_version)(stor_bk_env_t *e, unsigned *version, unsigned *compatible_from);
    /** stor_txn_try_lock: 1 taken for the rest of t's top-level txn, 0 held by another, or an error. */
    int (*try_lock)(stor_bk_txn_t *t, const char *name);

    /** The round trips to the database made so far in e (PostgreSQL: the sync points of its pipelines), for the
     *  tests that count what an operation costs (stor_int_stats). NULL: the backend makes none (LMDB). */
    uint64_t (*round_trips)(stor_bk_env_t *e);
    /** The statements sent to the database in txns so far in e (PostgreSQL: each query of a pipeline; the prepares
     *  are not counted), for the same tests. NULL: none (LMDB). */
    uint64_t (*statements)(stor_bk_env_t *e);

    /**
     * stor_backup: write a consistent, compacted copy of the whole environment, as of one read snapshot, into dir
     * (an existing empty directory) as the backend's own files, while other threads and processes go on writing.
     * NULL: the backend has no file copy of its own (PostgreSQL: pg_basebackup and WAL archiving, outside this
     * program).
     * @return STOR_OK, STOR_ERR_IO (dir, the disk), STOR_ERR_FULL, ...
     */
    int (*backup)(stor_bk_env_t *e, const char *dir);
} stor_backend_t;

extern const stor_backend_t stor_backend_lmdb;
extern const stor_backend_t stor_backend_pg; /* "postgresql": storage/stor_pg.c, the only file that uses libpq */

/**
 * stor_pg.c's loader of libpq (dlopen, not linked: a process on lmdb never maps it): load lib and resolve every
 * libpq function stor_pg.c calls into table (stor_pg_api_size() bytes). The postgresql backend's open() does this
 * once with libpq's soname (PQ_LIB); the unit tests call it directly.
 * @return STOR_OK, or STOR_ERR_IO with why = the library that could not be loaded or the first missing symbol.
 */
int stor_pg_resolve(const char *lib, void *table, char *why, size_t n);
size_t stor_pg_api_size(void);

/** One file of storage/migrations/, compiled in (cmake/embed_migrations.cmake). */
typedef struct stor_migration {
    unsigned version;  /**< NNNN of the file name: 1, 2, ... */
    const char *name;  /**< the file name without .sql: "0002_challenges" */
    const char *sql;   /**< its text */
} stor_migration_t;

/** Every migration, in version order (version i + 1 at index i; the last is STOR_PG_SCHEMA_VERSION). */
extern const stor_migration_t stor_migrations[];
extern const size_t stor_migrations_count;

/**
 * stor_migrate() on PostgreSQL (stor_pg.c): apply to the database of conninfo the migrations of m[0..n) it lacks, as
 * stor.h says. init: 1 for STOR_MIGRATE_INIT. why (n_why bytes): the database's message of a failed statement, or
 * what else went wrong; the only libpq-derived text that leaves stor_pg.c, through this parameter only.
 */
int stor_pg_migrate(const char *conninfo, const stor_migration_t *m, size_t n, int init, stor_migrate_report_fn report,
                    void *arg, unsigned *db_version, char *why, size_t n_why);

/**
 * The backend called name (cfg->backend; NULL or "" = "lmdb").
 * @return the backend or NULL if none is built in by that name.
 */
const stor_backend_t *stor_backend_find(const char *name);

#ifdef CSC_TEST_HOOKS
/** Test hook (csc_storage_t only): the postgresql backend's copies of a written value kept with its txn (keep_copy)
 *  fail from now on as if malloc failed, the next n of them (0: none). */
void stor_int_pg_fail_copies(unsigned n);
#endif

#endif
