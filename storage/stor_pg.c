/*
 * stor_pg.c - the PostgreSQL backend (stor_backend.h) over libpq: the only file of the project that includes
 * <libpq-fe.h>. Location = a libpq conninfo string. libpq is not linked: the first open() loads libpq.so.5 with
 * dlopen and calls it through a table of functions (pq below), so a process configured with lmdb maps nothing of it.
 *
 * Each table of the list given to open() is csc."name" (k bytea PRIMARY KEY, v bytea NOT NULL), a dupsort one
 * csc."name" (k bytea, v bytea, PRIMARY KEY (k, v)) (storage/migrations/0001_init.sql); bytea order is memcmp
 * order with a prefix first, the order of the interface. open() creates a missing table (only the schema's owner
 * may) and refuses one whose primary key does not match its flags.
 *
 * A transaction holds one connection from a small per-environment pool for its life; a connection that failed is
 * closed, and a pooled one found dead at its first round trip is replaced at once, so the service comes back by
 * itself when the database does. Statements are prepared once per connection and table (lazily), parameters and
 * results in binary, and pipelined: what needs no answer waits for the next statement that does ("pipelines"). A
 * read txn is PostgreSQL's implicit transaction of a pipeline: its statements, answered by flush requests, run in
 * one transaction until the sync point its end sends, under the connection's session default of REPEATABLE READ,
 * READ ONLY (SESSION_SQL: one snapshot; no BEGIN, COMMIT or ROLLBACK statement); a write txn is
 * BEGIN_WRITE (READ COMMITTED), sent with its first statement (a pooled connection found dead there:
 * STOR_ERR_RETRY, the batch runs again; a txn that only writes syncs before its COMMIT, so that a dead connection is
 * never a COMMIT of unknown fate), and every get and cursor read in it is FOR UPDATE, so a read-modify-write is atomic
 * across processes and nodes, and a get of a row it already holds is answered without the database ("the rows a
 * write txn holds"); a nested txn is a SAVEPOINT. Values returned stay valid until the top-level txn ends (the
 * PGresults and copies are kept in the txn). STOR_PUT_RESERVE hands out a buffer of the txn that is sent at the next
 * call on the txn (or its commit); with NOOVERWRITE the key is claimed at once (an empty value, then the value),
 * with NOOVERWRITE and NEW it is inserted when sent (a key that exists: STOR_ERR_CORRUPT then).
 * Serialization failures and deadlocks (40001, 40P01) return STOR_ERR_RETRY: stor_env.c runs the batch again.
 * A get in a write txn that finds no row takes a transaction-level advisory lock on (table, key) and looks again, so
 * a read-modify-write that starts from "no row" (the first audit append, a first counter) is atomic too. A lost
 * connection, a server down, a statement or lock timeout (STATEMENT_OPTIONS: 10 s) or no connection free within
 * POOL_WAIT_S (at most db_connections per environment) return STOR_ERR_UNAVAILABLE.
 * No libpq message leaves this file, with one exception: stor_pg_migrate (csc-admin db init / db migrate) hands the
 * SQLSTATE and primary message of a statement that failed to its caller, through its explicit why parameter only, for
 * the operator: the statements are the migrations' DDL and the runner's own queries, which hold no secret.
 */
/* program_invocation_short_name: <errno.h> with _GNU_SOURCE (set for the whole build) */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "stor_backend.h"

#define MAX_DBS 32
#define POOL_IDLE_S 60 /* an idle connection unused this long is closed (the rest stay: a new one costs a TLS
                        * handshake, a server process and its statements prepared again) */
#define PAGE_ROWS 64    /* rows per cursor query (keyset paging) */
#define PAGE_ROWS_S "64"
#define VAL_MAX ((size_t)1 << 30) /* bytea's limit */
#define SCHEMA "csc"
#define CONNECT_TIMEOUT_S "5" /* seconds, unless the conninfo says otherwise */
/* Every statement (lock waits included) gives up after 10 s: a stuck database answers STOR_ERR_UNAVAILABLE instead
 * of holding a worker for ever. A conninfo with its own options= replaces this. */
#define STATEMENT_OPTIONS "-c statement_timeout=10000"
#define POOL_MAX_DEFAULT 32 /* connections per environment (stor_config_t.db_connections) */
#define POOL_WAIT_S 5       /* a txn waits this long for a connection when all are in use, then UNAVAILABLE */
/* Every connection's transactions are read txns unless they say otherwise: a read txn is then the implicit
 * transaction of its pipeline, with no statement of its own (sent once, when the connection is made). A write txn,
 * and check_tables', begins with BEGIN_WRITE. */
#define SESSION_SQL "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
#define BEGIN_WRITE "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE"

/* The statements, prepared per connection and table as "s<table>_<stmt>". */
enum {
    Q_GET, Q_GET_FU, Q_UPSERT, Q_INSERT_NX, Q_INSERT, Q_APPEND, Q_UPDATE, Q_DEL_K, Q_DEL_KV, Q_COUNT,
    Q_PAGE_GE, Q_PAGE_GE_FU, Q_PAGE_GT, Q_PAGE_GT_FU, Q_PAGE_EQ, Q_PAGE_EQ_FU, Q_PAGE_EQ_GT, Q_PAGE_EQ_GT_FU, Q_N
};

#define QUEUE_MAX 64 /* statements queued on a connection before a sync point is forced */

struct pre;

typedef struct pg_conn {
    PGconn *c;
    stor_bk_env_t *e;  /* its environment (round_trips); NULL for stor_pg_migrate's own */
    struct pg_conn *next;
    int broken;
    time_t idle_since; /* CLOCK_MONOTONIC seconds, while in the idle list */
    int piped;         /* in libpq's pipeline mode (a txn's statements; see "pipelines") */
    int first_retry;   /* a write txn's BEGIN queued on a pooled connection, no answer read yet (begin_top) */
    int implicit;      /* a read txn's: statements answered by flush requests, the sync left for its end (pipe_sync) */
    unsigned nq;       /* statements sent since the last sync, their results not read yet */
    int sync_owed;     /* a sync point sent and its answers left unread (an ended txn's): read at the next conn_take */
    unsigned owed;     /* statements before that sync point, their answers unread too */
    unsigned short queued[QUEUE_MAX]; /* what each of them is: 0, or 1 + db * Q_N + q for the prepare of (db, q) */
    struct pre *into[QUEUE_MAX];      /* a prefetch's read: where its answer goes (NULL: not kept) */
    unsigned char prepared[MAX_DBS][Q_N];
} pg_conn_t;

struct stor_bk_env {
    char *conninfo;
    size_t n;
    char qname[MAX_DBS][80]; /* "csc"."name" */
    int dups[MAX_DBS];
    pthread_mutex_t mu;
    pthread_cond_t freed; /* a connection went back to the pool or was closed */
    pg_conn_t *idle;
    unsigned n_open, max_open; /* connections of this environment (idle or in a txn), at most max_open */
    uint64_t round_trips;      /* pipe_sync calls that waited for the database (atomic: every txn adds) */
    uint64_t statements;       /* statements sent in txns, prepares apart (atomic) */
};

/* A put(RESERVE) whose value is sent at the next call on the txn. */
typedef struct pending {
    int db;
    unsigned flags; /* Q_UPSERT, Q_INSERT (STOR_PUT_NEW), or Q_UPDATE after a claimed key */
    size_t klen, vlen;
    unsigned char *k, *v;
} pending_t;

/* A row a write txn holds locked, with the value it has now (see "the rows a write txn holds"). */
typedef struct held {
    int db;
    size_t klen;
    unsigned char *k;
    stor_val_t v; /* into a kept result, or into a buffer of the txn's */
} held_t;

#define HELD_MAX 64 /* rows remembered per write txn; more are read again */

/* A row read ahead (prefetch): its statement queued, its answer kept for the get that asks for it. */
typedef struct pre {
    int db;       /* -1: free (or forgotten: its answer, if it comes, is not used) */
    int wait;     /* queued or sent, its answer not read yet (pg_conn_t.into points here) */
    size_t klen;
    unsigned char *k; /* a buffer of the txn's */
    PGresult *r;  /* the answer (a SELECT's rows), until a get takes it */
} pre_t;

#define PRE_MAX 8 /* rows read ahead per top-level txn and not asked for yet; beyond, a prefetch does nothing */

/* A held row's new value, written at the commit (see "writes sent once"). */
typedef struct late {
    int db;
    size_t klen;
    const unsigned char *k; /* the held row's key buffer */
    stor_val_t v;           /* a buffer of the txn's */
} late_t;

#define LATE_MAX 16 /* rows whose last value waits for the commit; beyond, a write is sent at once */

struct stor_bk_txn {
    stor_bk_env_t *e;
    struct stor_bk_txn *root; /* the top-level txn (itself at top level) */
    pg_conn_t *pc;
    int write;
    int fresh;         /* root: its connection was made for it (not a pooled one) */
    int lazy;          /* root, read txn: nothing sent yet (its implicit transaction begins with its first statement) */
    unsigned depth;    /* 0 at top level */
    unsigned sp;       /* nested: its savepoint s<sp>, a name no other nested txn of the top-level txn has */
    unsigned sp_last;  /* root: the last savepoint number given */
    int failed;        /* root: a nested txn could not be rolled back alone (STOR_ERR_IO): the commit fails */
    unsigned long gen; /* root: bumped by every change (cursors re-read after one) */
    /* root only: the results and buffers handed out, freed when the txn ends */
    PGresult **res;
    size_t n_res, cap_res;
    void **bufs;
    size_t n_bufs, cap_bufs;
    pending_t *pend;
    held_t held[HELD_MAX]; /* root, write txn */
    size_t n_held;
    pre_t pre[PRE_MAX];    /* root: the rows read ahead */
    size_t n_pre;          /* slots of pre[] ever used */
    late_t late[LATE_MAX]; /* root, write txn: the held rows written and not sent yet, in the order first written */
    size_t n_late;
    int early;             /* root, read txn: its BEGIN went out with a prefetch, no answer read yet */
};

struct stor_bk_cur {
    stor_bk_txn_t *t;
    int db;
    PGresult *page;
    int row, nrows;
    int has_cur;
    int one_key; /* the page holds the values of one key only (SET_KEY, NEXT_DUP) */
    unsigned long gen;
    stor_val_t k, v; /* the current row (points into page or into a kept result) */
};

/* ---- libpq, loaded when the first postgresql environment is opened ---------------------------------------------
 * Not linked: a process on lmdb never maps libpq, nor what libpq pulls in (libldap -> GnuTLS -> libp11-kit, which
 * csc-server must not map; docs/stack-notes.md). <libpq-fe.h> gives the types only; every call goes through this
 * table, resolved with dlsym and checked complete before any is used. */

#define PQ_LIB "libpq.so.5"
#define PQ_FUNCS(X) \
    X(PQclear) X(PQcmdStatus) X(PQcmdTuples) X(PQconnectdbParams) X(PQconninfoFree) X(PQconninfoParse) \
    X(PQexec) X(PQexecPrepared) X(PQfinish) X(PQfreemem) X(PQgetlength) X(PQgetvalue) X(PQntuples) \
    X(PQprepare) X(PQresultErrorField) X(PQresultStatus) X(PQsetNoticeProcessor) X(PQstatus) \
    X(PQtransactionStatus) X(PQenterPipelineMode) X(PQexitPipelineMode) X(PQpipelineSync) X(PQsendPrepare) \
    X(PQsendQueryPrepared) X(PQsendQueryParams) X(PQgetResult) X(PQsendFlushRequest) X(PQflush)

typedef struct pq_api {
#define PQ_SLOT(f) __typeof__(&f) f;
    PQ_FUNCS(PQ_SLOT)
#undef PQ_SLOT
} pq_api_t;

static pq_api_t pq;
static pthread_once_t pq_once = PTHREAD_ONCE_INIT;
static int pq_rc = STOR_ERR_IO;

int stor_pg_resolve(const char *lib, void *table, char *why, size_t n)
{
    pq_api_t *api = table;
    void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    const char *err;

    if (dl == NULL) {
        err = dlerror();
        snprintf(why, n, "cannot load %s (%s)", lib, err != NULL ? err : "unknown error");
        return STOR_ERR_IO;
    }
#define PQ_RESOLVE(f)                                                      \
    if ((api->f = (__typeof__(api->f))dlsym(dl, #f)) == NULL) {            \
        snprintf(why, n, "%s has no symbol %s", lib, #f);                   \
        dlclose(dl);                                                       \
        memset(api, 0, sizeof(*api));                                      \
        return STOR_ERR_IO;                                                \
    }
    PQ_FUNCS(PQ_RESOLVE)
#undef PQ_RESOLVE
    /* kept loaded for the life of the process (the table points into it) */
    return 0;
}

size_t stor_pg_api_size(void)
{
    return sizeof(pq_api_t);
}

static void pq_load(void)
{
    char why[512];

    if ((pq_rc = stor_pg_resolve(PQ_LIB, &pq, why, sizeof(why))) != 0)
        fprintf(stderr, "storage: postgresql backend: %s\n", why);
}

/* ---- errors --------------------------------------------------------------- */

static int pg_err(pg_conn_t *pc, const PGresult *r)
{
    const char *st = r != NULL ? pq.PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    if (pq.PQstatus(pc->c) != CONNECTION_OK)
        pc->broken = 1;
    if (pc->broken)
        return STOR_ERR_UNAVAILABLE;
    if (st == NULL)
        return STOR_ERR_IO;
    if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0)
        return STOR_ERR_RETRY;
    /* statement_timeout, lock_timeout: the database is stuck or overloaded; try again in a moment */
    if (strcmp(st, "57014") == 0 || strcmp(st, "55P03") == 0)
        return STOR_ERR_UNAVAILABLE;
    if (strcmp(st, "53100") == 0)
        return STOR_ERR_FULL;
    if (strcmp(st, "53200") == 0)
        return STOR_ERR_NOMEM;
    if (strcmp(st, "23505") == 0) /* only Q_INSERT, STOR_PUT_NEW's, meets a key that exists */
        return STOR_ERR_CORRUPT;
    if (strncmp(st, "22", 2) == 0 || strcmp(st, "54000") == 0)
        return STOR_ERR_INVAL;
    if (strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0) { /* connection lost, server shutting down */
        pc->broken = 1;
        return STOR_ERR_UNAVAILABLE;
    }
    return STOR_ERR_IO;
}

/* Run a command without parameters; STOR_OK if it succeeded. */
static int pg_cmd(pg_conn_t *pc, const char *sql)
{
    PGresult *r = pq.PQexec(pc->c, sql);
    int rc = pq.PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : pg_err(pc, r);

    pq.PQclear(r);
    return rc;
}

/* ---- the pool --------------------------------------------------------------- */

static void conn_free(pg_conn_t *pc)
{
    if (pc == NULL)
        return;
    pq.PQfinish(pc->c);
    free(pc);
}

/* The server's notices are not printed (libpq's default writes them to stderr). */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int conn_new(stor_bk_env_t *e, pg_conn_t **out)
{
    /* A connect_timeout or options of the conninfo wins (it comes later); without a connect_timeout an unreachable
     * server would block. The program's name (csc-server, csc-sam, csc-admin) is the connection's application_name
     * unless the conninfo gives one: pg_stat_activity and the server's log then say which process a connection is. */
    static const char *const keys[] = { "connect_timeout", "options", "fallback_application_name", "dbname", NULL };
    const char *values[] = { CONNECT_TIMEOUT_S, STATEMENT_OPTIONS, program_invocation_short_name, e->conninfo, NULL };
    pg_conn_t *pc = calloc(1, sizeof(*pc));

    if (pc == NULL)
        return STOR_ERR_NOMEM;
    pc->c = pq.PQconnectdbParams(keys, values, 1);
    if (pc->c == NULL || pq.PQstatus(pc->c) != CONNECTION_OK) {
        conn_free(pc);
        return STOR_ERR_UNAVAILABLE;
    }
    pq.PQsetNoticeProcessor(pc->c, quiet, NULL);
    pc->e = e;
    if (pg_cmd(pc, SESSION_SQL) != 0) {
        conn_free(pc);
        return STOR_ERR_UNAVAILABLE;
    }
    *out = pc;
    return 0;
}

/* Close a connection of e's and let a txn waiting for one make its own. */
static void conn_drop(stor_bk_env_t *e, pg_conn_t *pc)
{
    if (pc == NULL)
        return;
    conn_free(pc);
    pthread_mutex_lock(&e->mu);
    e->n_open--;
    pthread_cond_signal(&e->freed);
    pthread_mutex_unlock(&e->mu);
}

/* ---- pipelines ----------------------------------------------------------------
 * A connection in a transaction is in libpq's pipeline mode. A statement whose answer the caller does not need at
 * once (an upsert, an insert of STOR_PUT_NEW, the value of a put(RESERVE), a prepare, a SAVEPOINT and its RELEASE,
 * a txn's BEGIN) is only queued; it goes out with the next statement that must be answered (a get of a row not
 * held, a count, a cursor page, a put that must know whether the key existed, the COMMIT): one round trip for all of
 * them. The first error among them is that sync point's answer: PostgreSQL skips the rest of the pipeline, and the
 * txn may only be aborted, as after any error. When that answer reaches a nested txn other than the one whose
 * statement failed (a later job of stor_env.c's batch), the savepoint it rolls back to was skipped too: every
 * savepoint of a top-level txn has a name of its own, so that rollback fails instead of undoing another nested
 * txn's writes, and the whole top-level txn fails with it (stor_backend.h). */

/* The prefetches among the n statements queued first on pc will have no answer (not kept, or never coming). */
static void pipe_unwait(pg_conn_t *pc, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (pc->into[i] != NULL) {
            pc->into[i]->wait = 0;
            pc->into[i] = NULL;
        }
}

static int pipe_lost(pg_conn_t *pc)
{
    pipe_unwait(pc, pc->nq);
    pc->broken = 1;
    pc->nq = 0;
    return STOR_ERR_UNAVAILABLE;
}

static int pipe_on(pg_conn_t *pc)
{
    if (!pc->piped) {
        if (pq.PQenterPipelineMode(pc->c) != 1)
            return pipe_lost(pc);
        pc->piped = 1;
    }
    return 0;
}

static int pipe_sync(pg_conn_t *pc, PGresult **want);

static void pipe_count(pg_conn_t *pc)
{
    if (pc->e != NULL)
        __atomic_add_fetch(&pc->e->statements, 1, __ATOMIC_RELAXED);
}

/* Room for two more statements in the queue (a prepare and its statement): a full one is synced first. */
static int queue_room(pg_conn_t *pc)
{
    if (pc->broken)
        return pipe_lost(pc);
    return pc->nq + 2 <= QUEUE_MAX ? 0 : pipe_sync(pc, NULL);
}

/* Queue sql (no parameters; results in text). */
static int queue_sql(pg_conn_t *pc, const char *sql)
{
    int rc = queue_room(pc);

    if (rc != 0)
        return rc;
    if (pq.PQsendQueryParams(pc->c, sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
        return pipe_lost(pc);
    pc->into[pc->nq] = NULL;
    pc->queued[pc->nq++] = 0;
    pipe_count(pc);
    return 0;
}

/* Read one statement's results up to the NULL that ends them. The first is handed to *keep when keep is not NULL
 * and no error came before; an error is kept in *err if it is the first. prep: the statement's queued[] entry (a
 * prepare that failed or was skipped is forgotten, so that the statement is prepared again next time). */
static void read_stmt(pg_conn_t *pc, unsigned prep, PGresult **keep, int *err)
{
    PGresult *r, *first = NULL;
    ExecStatusType st;

    if (prep != 0)
        pc->prepared[(prep - 1) / Q_N][(prep - 1) % Q_N] = 0; /* set again below if it succeeded */
    while ((r = pq.PQgetResult(pc->c)) != NULL) {
        if (first == NULL)
            first = r;
        else
            pq.PQclear(r);
    }
    if (first == NULL) { /* no answer at all: the connection is gone */
        pc->broken = 1;
        if (*err == 0)
            *err = STOR_ERR_UNAVAILABLE;
        return;
    }
    st = pq.PQresultStatus(first);
    if (prep != 0 && st == PGRES_COMMAND_OK)
        pc->prepared[(prep - 1) / Q_N][(prep - 1) % Q_N] = 1;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        if (keep != NULL && *err == 0) {
            *keep = first;
            return;
        }
    } else if (*err == 0) { /* PGRES_PIPELINE_ABORTED comes only after the error that aborted the pipeline */
        *err = st == PGRES_PIPELINE_ABORTED ? STOR_ERR_IO : pg_err(pc, first);
    }
    pq.PQclear(first);
}

/* Read up to the sync point's PGRES_PIPELINE_SYNC; err: the pipeline's answer so far. */
static int read_sync(pg_conn_t *pc, int err)
{
    for (int nulls = 0; nulls < 2 && !pc->broken;) {
        PGresult *r = pq.PQgetResult(pc->c);
        ExecStatusType st;

        if (r == NULL) {
            if (pq.PQstatus(pc->c) != CONNECTION_OK)
                break;
            nulls++;
            continue;
        }
        st = pq.PQresultStatus(r);
        pq.PQclear(r);
        if (st == PGRES_PIPELINE_SYNC)
            return err;
    }
    pc->broken = 1;
    return err != 0 ? err : STOR_ERR_UNAVAILABLE;
}

/* Send what is queued and read every answer: one round trip. A write txn's pipeline ends at a sync point. A read
 * txn's (pc->implicit) is sent with a flush request instead, so that its statements stay in one implicit transaction
 * (one snapshot) until the txn ends (pipe_leave); after an error PostgreSQL skips every statement up to a sync point,
 * so one is sent then and the answers are read up to it (the transaction is over; the txn can only end). want: where
 * the last statement's result goes (NULL: none is wanted); a prefetch's goes to its slot (pre_t), unless an error
 * came before it. Returns the pipeline's first error, else 0. */
static int pipe_sync(pg_conn_t *pc, PGresult **want)
{
    unsigned n = pc->nq;
    int err = 0, first = pc->first_retry, synced = !pc->implicit;

    pc->first_retry = 0;
    if (want != NULL)
        *want = NULL;
    if (pc->broken || (pc->implicit ? pq.PQsendFlushRequest(pc->c) != 1 || pq.PQflush(pc->c) != 0
                                     : pq.PQpipelineSync(pc->c) != 1))
        return first ? (pipe_lost(pc), STOR_ERR_RETRY) : pipe_lost(pc);
    if (pc->e != NULL)
        __atomic_add_fetch(&pc->e->round_trips, 1, __ATOMIC_RELAXED);
    pc->nq = 0;
    for (unsigned i = 0; i < n; i++) {
        pre_t *p = pc->into[i];
        if (err != 0 && !synced) {
            synced = 1;
            if (!pc->broken && pq.PQpipelineSync(pc->c) != 1)
                pc->broken = 1;
        }
        if (!pc->broken) /* else its error is in err already */
            read_stmt(pc, pc->queued[i], want != NULL && i + 1 == n ? want : p != NULL ? &p->r : NULL, &err);
        if (p != NULL) {
            p->wait = 0;
            pc->into[i] = NULL;
        }
    }
    if (err != 0 && !synced && !pc->broken && pq.PQpipelineSync(pc->c) != 1)
        pc->broken = 1;
    if (!pc->implicit || err != 0)
        err = read_sync(pc, err);
    if (err != 0 && want != NULL && *want != NULL) {
        pq.PQclear(*want);
        *want = NULL;
    }
    /* A write txn's first answer found its pooled connection gone: it was dead before the txn did anything (the
     * database restarted since it was used), and what was queued never ran. The batch runs again (STOR_ERR_RETRY)
     * on another connection, as begin_top did when it waited for the BEGIN's answer. */
    return first && err == STOR_ERR_UNAVAILABLE && pc->broken ? STOR_ERR_RETRY : err;
}

/* Send what is queued and a sync point, and leave the answers to be read by the connection's next user (an ended
 * write txn's ROLLBACK, a read txn's end: nobody waits for them). */
static void pipe_leave(pg_conn_t *pc)
{
    if (pc->broken || pq.PQpipelineSync(pc->c) != 1) {
        (void)pipe_lost(pc);
        return;
    }
    pipe_unwait(pc, pc->nq); /* the txn that queued them ends: nobody takes their answers */
    pc->owed = pc->nq;
    pc->sync_owed = 1;
    pc->nq = 0;
}

/* A pooled connection made ready for its next user: the answers it owes read (any error there, or a txn still open,
 * and it is not used again), out of pipeline mode. */
static int conn_settle(pg_conn_t *pc)
{
    pc->implicit = 0;
    if (pc->sync_owed || pc->nq > 0) {
        unsigned n = pc->owed + pc->nq;
        int err = 0;
        if (pc->nq > 0 && pq.PQpipelineSync(pc->c) != 1)
            return pipe_lost(pc);
        pc->owed = pc->nq = 0;
        pc->sync_owed = 0;
        for (unsigned i = 0; i < n; i++)
            read_stmt(pc, pc->queued[i], NULL, &err);
        if (read_sync(pc, err) != 0)
            pc->broken = 1;
    }
    if (!pc->broken && pc->piped) {
        if (pq.PQexitPipelineMode(pc->c) != 1)
            pc->broken = 1;
        pc->piped = 0;
    }
    if (pc->broken || pq.PQstatus(pc->c) != CONNECTION_OK || pq.PQtransactionStatus(pc->c) != PQTRANS_IDLE)
        pc->broken = 1;
    return pc->broken ? STOR_ERR_UNAVAILABLE : 0;
}

/* An idle connection (fresh: 0), or a new one (fresh: 1) while e has fewer than max_open; else wait up to
 * POOL_WAIT_S for one, then STOR_ERR_UNAVAILABLE. An idle one that cannot be settled is closed and the next tried. */
static int conn_take(stor_bk_env_t *e, pg_conn_t **out, int *fresh)
{
    struct timespec until;
    pg_conn_t *pc = NULL;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += POOL_WAIT_S;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (e->idle == NULL && e->n_open >= e->max_open && rc == 0)
            rc = pthread_cond_timedwait(&e->freed, &e->mu, &until);
        if (e->idle != NULL) {
            pc = e->idle;
            e->idle = pc->next;
        } else if (e->n_open < e->max_open) {
            e->n_open++; /* counted now: made below, outside the lock */
            rc = 0;
        } else {
            rc = STOR_ERR_UNAVAILABLE;
        }
        pthread_mutex_unlock(&e->mu);
        if (pc == NULL)
            break;
        pc->next = NULL;
        if (conn_settle(pc) == 0) {
            *fresh = 0;
            *out = pc;
            return 0;
        }
        conn_drop(e, pc);
        pc = NULL;
        rc = 0;
    }
    *fresh = 1;
    if (rc != 0)
        return STOR_ERR_UNAVAILABLE;
    if ((rc = conn_new(e, out)) != 0) {
        pthread_mutex_lock(&e->mu);
        e->n_open--;
        pthread_cond_signal(&e->freed);
        pthread_mutex_unlock(&e->mu);
    }
    return rc;
}

/* Back to the pool: a connection whose ROLLBACK is still on its way (owed) is settled by its next user. Every
 * connection stays (at most db_connections: as many as were ever in use at once), the most recently used first, so
 * that the next txn takes a warm one; those left unused for POOL_IDLE_S at the end of the list are closed. */
static void conn_give(stor_bk_env_t *e, pg_conn_t *pc)
{
    struct timespec now;
    pg_conn_t *old = NULL, **pp;

    if (pc->broken || pq.PQstatus(pc->c) != CONNECTION_OK || pc->nq > 0 ||
        (!pc->sync_owed && pq.PQtransactionStatus(pc->c) != PQTRANS_IDLE)) {
        conn_drop(e, pc);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    pc->idle_since = now.tv_sec;
    pthread_mutex_lock(&e->mu);
    pc->next = e->idle;
    e->idle = pc;
    pthread_cond_signal(&e->freed);
    for (pp = &e->idle; *pp != NULL && now.tv_sec - (*pp)->idle_since <= POOL_IDLE_S; pp = &(*pp)->next)
        ;
    old = *pp; /* the list is in order of use: from here on every one is older */
    *pp = NULL;
    pthread_mutex_unlock(&e->mu);
    while (old != NULL) {
        pg_conn_t *next = old->next;
        conn_drop(e, old);
        old = next;
    }
}

/* ---- statements ------------------------------------------------------------- */

static int stmt_sql(const stor_bk_env_t *e, int db, int q, char *sql, size_t n)
{
    const char *t = e->qname[db], *order = e->dups[db] ? "k, v" : "k";
    const char *after = e->dups[db] ? "(k, v) > ($1::bytea, $2::bytea)" : "k > $1::bytea";
    int w;

    switch (q) {
    case Q_GET: case Q_GET_FU: /* a dupsort table's first value; a plain table's key has one row: no sort to plan */
        w = snprintf(sql, n, "SELECT v FROM %s WHERE k = $1::bytea%s%s", t, e->dups[db] ? " ORDER BY v LIMIT 1" : "",
                     q == Q_GET_FU ? " FOR UPDATE" : "");
        break;
    case Q_UPSERT:
        w = snprintf(sql, n, "INSERT INTO %s (k, v) VALUES ($1::bytea, $2::bytea) ON CONFLICT (k) DO UPDATE SET v = "
                     "EXCLUDED.v", t);
        break;
    case Q_INSERT_NX:
        w = snprintf(sql, n, "INSERT INTO %s (k, v) VALUES ($1::bytea, $2::bytea) ON CONFLICT DO NOTHING", t);
        break;
    case Q_INSERT: /* STOR_PUT_NEW: the key exists only in a corrupt database (unique_violation) */
        w = snprintf(sql, n, "INSERT INTO %s (k, v) VALUES ($1::bytea, $2::bytea)", t);
        break;
    case Q_APPEND: /* only after every key; the unique index still has the last word */
        w = snprintf(sql, n, "INSERT INTO %s (k, v) SELECT $1::bytea, $2::bytea WHERE NOT EXISTS (SELECT 1 FROM %s "
                     "WHERE k >= $1::bytea) ON CONFLICT DO NOTHING", t, t);
        break;
    case Q_UPDATE: w = snprintf(sql, n, "UPDATE %s SET v = $2::bytea WHERE k = $1::bytea", t); break;
    case Q_DEL_K: w = snprintf(sql, n, "DELETE FROM %s WHERE k = $1::bytea", t); break;
    case Q_DEL_KV: w = snprintf(sql, n, "DELETE FROM %s WHERE k = $1::bytea AND v = $2::bytea", t); break;
    case Q_COUNT: w = snprintf(sql, n, "SELECT count(*) FROM %s", t); break;
    case Q_PAGE_GE: case Q_PAGE_GE_FU:
        w = snprintf(sql, n, "SELECT k, v FROM %s WHERE k >= $1::bytea ORDER BY %s LIMIT " PAGE_ROWS_S "%s", t, order,
                     q == Q_PAGE_GE_FU ? " FOR UPDATE" : "");
        break;
    case Q_PAGE_GT: case Q_PAGE_GT_FU:
        w = snprintf(sql, n, "SELECT k, v FROM %s WHERE %s ORDER BY %s LIMIT " PAGE_ROWS_S "%s", t, after, order,
                     q == Q_PAGE_GT_FU ? " FOR UPDATE" : "");
        break;
    case Q_PAGE_EQ: case Q_PAGE_EQ_FU: /* the values of one key only: a write txn locks no other key's rows */
        w = snprintf(sql, n, "SELECT k, v FROM %s WHERE k = $1::bytea ORDER BY v LIMIT " PAGE_ROWS_S "%s", t,
                     q == Q_PAGE_EQ_FU ? " FOR UPDATE" : "");
        break;
    case Q_PAGE_EQ_GT: case Q_PAGE_EQ_GT_FU:
        w = snprintf(sql, n, "SELECT k, v FROM %s WHERE k = $1::bytea AND v > $2::bytea ORDER BY v LIMIT " PAGE_ROWS_S
                     "%s", t, q == Q_PAGE_EQ_GT_FU ? " FOR UPDATE" : "");
        break;
    default: return STOR_ERR_INVAL;
    }
    return w > 0 && (size_t)w < n ? 0 : STOR_ERR_INVAL;
}

/* Queue statement q of table db with n_params binary parameters (prepared first on a connection that lacks it). */
static int queue_stmt(stor_bk_txn_t *t, int db, int q, int n_params, const stor_val_t *p0, const stor_val_t *p1)
{
    static const int formats[2] = { 1, 1 };
    pg_conn_t *pc = t->pc;
    char name[24], sql[512];
    const char *values[2];
    int lens[2];

    int rc = queue_room(pc);

    if (rc != 0)
        return rc;
    snprintf(name, sizeof(name), "s%d_%d", db, q);
    if (!pc->prepared[db][q]) {
        if ((rc = stmt_sql(t->e, db, q, sql, sizeof(sql))) != 0)
            return rc;
        if (pq.PQsendPrepare(pc->c, name, sql, n_params, NULL) != 1)
            return pipe_lost(pc);
        pc->into[pc->nq] = NULL;
        pc->queued[pc->nq++] = (unsigned short)(1 + db * Q_N + q);
        pc->prepared[db][q] = 1; /* sent: the statements queued after it may use it */
    }
    values[0] = p0 != NULL ? (p0->data != NULL ? p0->data : "") : NULL;
    lens[0] = p0 != NULL ? (int)p0->len : 0;
    values[1] = p1 != NULL ? (p1->data != NULL ? p1->data : "") : NULL;
    lens[1] = p1 != NULL ? (int)p1->len : 0;
    if (pq.PQsendQueryPrepared(pc->c, name, n_params, values, lens, formats, 1) != 1)
        return pipe_lost(pc);
    pc->into[pc->nq] = NULL;
    pc->queued[pc->nq++] = 0;
    pipe_count(pc);
    return 0;
}

/* A read txn's first statement (a get's, a cursor's, a count's or a prefetch's) begins its implicit transaction:
 * nothing to send before it. */
static int begin_read(stor_bk_txn_t *t)
{
    t->root->lazy = 0;
    return 0;
}

/* Forget every row read ahead (their answers, if still to come, are not used). */
static void pre_forget(stor_bk_txn_t *root)
{
    for (size_t i = 0; i < root->n_pre; i++)
        root->pre[i].db = -1;
}

/* A read txn's first round trip found its pooled connection dead (the database restarted since it was used): the
 * txn moves to a fresh one, its BEGIN to be sent again; what it read ahead is forgotten (each get reads its row). */
static int move_txn(stor_bk_txn_t *t)
{
    stor_bk_txn_t *root = t->root;
    int rc;

    conn_drop(t->e, t->pc);
    t->pc = NULL;
    pre_forget(root);
    root->lazy = 1;
    root->early = 0;
    if ((rc = conn_take(t->e, &t->pc, &root->fresh)) != 0 || (rc = pipe_on(t->pc)) != 0)
        return rc;
    t->pc->implicit = 1;
    return 0;
}

/* Run statement q of table db with n_params binary parameters, with whatever was queued before it; *out = its
 * result (STOR_OK) or an error. A read txn's first statement takes its BEGIN along; if that first round trip finds
 * a pooled connection dead, the txn moves to a fresh one and tries again. */
static int stmt_run(stor_bk_txn_t *t, int db, int q, int n_params, const stor_val_t *p0, const stor_val_t *p1,
                    PGresult **out)
{
    stor_bk_txn_t *root = t->root;
    int first = root->lazy || root->early, rc;

    for (;;) {
        if ((rc = begin_read(t)) != 0)
            return rc;
        if ((rc = queue_stmt(t, db, q, n_params, p0, p1)) == 0)
            rc = pipe_sync(t->pc, out);
        root->early = 0;
        if (rc != STOR_ERR_UNAVAILABLE || !first || root->fresh || !t->pc->broken)
            return rc;
        if ((rc = move_txn(t)) != 0)
            return rc;
        first = 0;
    }
}

/* Run a statement whose result is not kept: *changed = its row count. */
static int stmt_do(stor_bk_txn_t *t, int db, int q, int n_params, const stor_val_t *p0, const stor_val_t *p1,
                   long *changed)
{
    PGresult *r = NULL;
    int rc = stmt_run(t, db, q, n_params, p0, p1, &r);

    if (rc != 0)
        return rc;
    if (changed != NULL)
        *changed = strtol(pq.PQcmdTuples(r), NULL, 10);
    pq.PQclear(r);
    t->root->gen++;
    return 0;
}

/* Keep r until the top-level txn ends. */
static int keep(stor_bk_txn_t *t, PGresult *r)
{
    stor_bk_txn_t *root = t->root;

    if (root->n_res == root->cap_res) {
        size_t cap = root->cap_res ? root->cap_res * 2 : 16;
        PGresult **res = realloc(root->res, cap * sizeof(*res));
        if (res == NULL) {
            pq.PQclear(r);
            return STOR_ERR_NOMEM;
        }
        root->res = res;
        root->cap_res = cap;
    }
    root->res[root->n_res++] = r;
    return 0;
}

/* Keep buffer b (malloc'd) until the top-level txn ends; freed now if it cannot be. */
static int keep_buf(stor_bk_txn_t *t, void *b)
{
    stor_bk_txn_t *root = t->root;

    if (root->n_bufs == root->cap_bufs) {
        size_t cap = root->cap_bufs ? root->cap_bufs * 2 : 16;
        void **bufs = realloc(root->bufs, cap * sizeof(*bufs));
        if (bufs == NULL) {
            free(b);
            return STOR_ERR_NOMEM;
        }
        root->bufs = bufs;
        root->cap_bufs = cap;
    }
    root->bufs[root->n_bufs++] = b;
    return 0;
}

/* ---- the rows a write txn holds ---------------------------------------------------
 * A write txn locks every row it reads or writes until it ends (stor_backend.h), so no other txn can change one
 * meanwhile: the value it last read or wrote is the row's value, and a get of it again (the audit head, a SAD, a
 * counter: every job of a batch reads them) is answered here without a round trip. Plain tables only (a dupsort
 * get returns the first of a set). A nested txn rolled back forgets them all (its writes are undone); so does a
 * delete of the key. Values stay valid until the top-level txn ends, as those of a get. */

/* Whether a remembered row (db, its key of klen bytes) is row (want, k). */
static int row_is(int db, size_t klen, const unsigned char *key, int want, const stor_val_t *k)
{
    return db == want && klen == k->len && memcmp(key, k->data, klen) == 0;
}

static held_t *held_find(stor_bk_txn_t *root, int db, const stor_val_t *k)
{
    for (size_t i = 0; i < root->n_held; i++)
        if (row_is(root->held[i].db, root->held[i].klen, root->held[i].k, db, k))
            return &root->held[i];
    return NULL;
}

static void held_drop(stor_bk_txn_t *root, int db, const stor_val_t *k)
{
    held_t *h = held_find(root, db, k);

    if (h != NULL)
        h->db = -1; /* its key buffer stays with the txn's buffers */
}

static void held_forget(stor_bk_txn_t *root)
{
    root->n_held = 0;
}

/* Remember that row (db, k) has value v (which stays valid until the txn ends). Not remembered when there is no
 * room: the next get reads it again. */
static void held_set(stor_bk_txn_t *t, int db, const stor_val_t *k, const stor_val_t *v)
{
    stor_bk_txn_t *root = t->root;
    held_t *h;

    if (!root->write || t->e->dups[db])
        return;
    if ((h = held_find(root, db, k)) == NULL) {
        unsigned char *kc;
        if (root->n_held == HELD_MAX || (kc = malloc(k->len)) == NULL)
            return;
        memcpy(kc, k->data, k->len);
        if (keep_buf(t, kc) != 0)
            return;
        h = &root->held[root->n_held++];
        h->db = db;
        h->klen = k->len;
        h->k = kc;
    }
    h->v = *v;
}

#ifdef CSC_TEST_HOOKS
static _Atomic unsigned hook_fail_copies;

void stor_int_pg_fail_copies(unsigned n)
{
    hook_fail_copies = n;
}

static int copy_fails(void)
{
    unsigned n = hook_fail_copies;
    while (n > 0 && !atomic_compare_exchange_weak(&hook_fail_copies, &n, n - 1))
        ;
    return n > 0;
}
#else
#define copy_fails() 0
#endif

/* A copy of v kept with the txn, in *out. @return 0, or STOR_ERR_NOMEM */
static int keep_copy(stor_bk_txn_t *t, const stor_val_t *v, stor_val_t *out)
{
    unsigned char *vc;

    if (copy_fails() || (vc = malloc(v->len ? v->len : 1)) == NULL || keep_buf(t, vc) != 0)
        return STOR_ERR_NOMEM;
    if (v->len > 0)
        memcpy(vc, v->data, v->len);
    *out = STOR_VAL(vc, v->len);
    return 0;
}

/* held_set with a copy of v, kept with the txn. */
static void held_copy(stor_bk_txn_t *t, int db, const stor_val_t *k, const stor_val_t *v)
{
    stor_val_t vc;

    if (!t->root->write || t->e->dups[db])
        return;
    if (keep_copy(t, v, &vc) != 0) {
        held_drop(t->root, db, k); /* the old value is no longer the row's */
        return;
    }
    held_set(t, db, k, &vc);
}

/* ---- writes sent once -------------------------------------------------------------
 * Every job of a batch writes the audit head, and the jobs of one signer the same SAD and signing events: rows the
 * txn holds locked, as it read them first. Only the last value of such a row matters at the commit, so an upsert of a
 * held row at top level is kept here (its value held, as any write's) and sent once, with the COMMIT: one statement
 * per row and batch, not one per job. The row is locked already, so waiting changes nothing for other txns. Anything
 * that could see the row in the database first sends what waits: a nested txn's begin (a savepoint's rollback must
 * not undo what came before it), a cursor or a count (all of them), a delete or another kind of write of the row (its
 * own). A waiting row is always held (every path that drops a held row sends its waiting write first), so a get of
 * it is answered from the held value. */

static late_t *late_find(stor_bk_txn_t *root, int db, const stor_val_t *k)
{
    for (size_t i = 0; i < root->n_late; i++)
        if (row_is(root->late[i].db, root->late[i].klen, root->late[i].k, db, k))
            return &root->late[i];
    return NULL;
}

/* Queue the writes that wait, all of them (db < 0) or that of row (db, k) if it waits. */
static int late_send(stor_bk_txn_t *t, int db, const stor_val_t *k)
{
    stor_bk_txn_t *root = t->root;
    size_t kept = 0;
    int rc = 0;

    for (size_t i = 0; i < root->n_late; i++) {
        late_t *l = &root->late[i];
        stor_val_t lk = STOR_VAL(l->k, l->klen);
        if (db >= 0 && !row_is(l->db, l->klen, l->k, db, k)) {
            root->late[kept++] = *l;
            continue;
        }
        if (rc == 0)
            rc = queue_stmt(t, l->db, Q_UPSERT, 2, &lk, &l->v);
    }
    root->n_late = rc == 0 ? kept : 0;
    return rc;
}

/* Keep the write of held row (db, k) for the commit. 1 kept, 0 not: the caller sends it now, after the row's value
 * that waits, if one does (late_send). */
static int late_put(stor_bk_txn_t *t, int db, const stor_val_t *k, const stor_val_t *v)
{
    stor_bk_txn_t *root = t->root;
    held_t *h;
    late_t *l;
    stor_val_t vc;

    if (t->depth != 0 || !root->write || t->e->dups[db] || (h = held_find(root, db, k)) == NULL)
        return 0;
    if ((l = late_find(root, db, k)) == NULL && root->n_late == LATE_MAX)
        return 0;
    if (keep_copy(t, v, &vc) != 0)
        return 0;
    if (l == NULL) {
        l = &root->late[root->n_late++];
        l->db = db;
        l->klen = h->klen;
        l->k = h->k; /* with the txn's buffers until it ends */
    }
    l->v = vc;
    h->v = vc;
    root->gen++;
    return 1;
}

/* ---- rows read ahead (prefetch, stor_backend.h) ------------------------------------
 * A prefetch queues the SELECT a get of the row would send (FOR UPDATE in a write txn) with a slot (pre_t) for its
 * answer, and waits for nothing: the answer comes with the next sync point (a statement that must be answered, or
 * the get of that row itself), so the rows a caller knows it will read cost one round trip together. The get of a
 * row read ahead takes its answer from the slot and goes on as with its own (a write txn's missing row: its key
 * locked and read again). A write of the key, or a nested txn's abort, forgets it: its answer may no longer be the
 * row's value. */

static pre_t *pre_find(stor_bk_txn_t *root, int db, const stor_val_t *k)
{
    for (size_t i = 0; i < root->n_pre; i++)
        if (row_is(root->pre[i].db, root->pre[i].klen, root->pre[i].k, db, k))
            return &root->pre[i];
    return NULL;
}

static void pre_drop(stor_bk_txn_t *root, int db, const stor_val_t *k)
{
    pre_t *p = pre_find(root, db, k);

    if (p != NULL)
        p->db = -1;
}

/* Read the answers of what is queued, the prefetches' among them: one round trip. */
static int pre_sync(stor_bk_txn_t *t)
{
    stor_bk_txn_t *root = t->root;
    int early = root->early, rc = pipe_sync(t->pc, NULL);

    root->early = 0;
    if (rc == STOR_ERR_UNAVAILABLE && early && !root->fresh && t->pc->broken)
        return move_txn(t); /* as stmt_run: the get then reads the row itself */
    return rc;
}

/* ---- RESERVE --------------------------------------------------------------- */

static void pending_free(stor_bk_txn_t *t)
{
    pending_t *p = t->root->pend;

    if (p == NULL)
        return;
    free(p->k);
    free(p->v);
    free(p);
    t->root->pend = NULL;
}

/* Queue the value of a put(RESERVE): called first by every operation on the txn. The value's buffer stays with the
 * txn, as the row's value held. */
static int flush(stor_bk_txn_t *t)
{
    pending_t *p = t->root->pend;
    stor_val_t k, v;
    int rc;

    if (p == NULL)
        return 0;
    k = STOR_VAL(p->k, p->klen);
    v = STOR_VAL(p->v, p->vlen);
    rc = queue_stmt(t, p->db, (int)p->flags, 2, &k, &v);
    t->root->gen++;
    if (rc == 0 && keep_buf(t, p->v) == 0)
        held_set(t, p->db, &k, &v);
    else if (rc == 0)
        held_drop(t->root, p->db, &k);
    p->v = NULL; /* kept (or freed by keep_buf) */
    pending_free(t);
    return rc;
}

/* ---- environment ------------------------------------------------------------- */

static int valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63)
        return 0;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
            return 0;
    return 1;
}

/* Create the tables that are missing; refuse one whose primary key does not match its flags. */
static int check_tables(stor_bk_env_t *e, pg_conn_t *pc, const stor_table_t *tables)
{
    static const char *const q = "SELECT c.relname, coalesce(i.indnatts, 0) FROM pg_class c JOIN pg_namespace n ON "
                                 "n.oid = c.relnamespace LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary "
                                 "WHERE n.nspname = '" SCHEMA "' AND c.relkind = 'r'";
    char sql[256];
    PGresult *r;
    int rc = 0;

    if ((rc = pg_cmd(pc, BEGIN_WRITE)) != 0)
        return rc;
    r = pq.PQexec(pc->c, q);
    if (pq.PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_err(pc, r);
        goto out;
    }
    for (size_t i = 0; i < e->n && rc == 0; i++) {
        int found = -1;
        for (int row = 0; row < pq.PQntuples(r); row++)
            if (strcmp(pq.PQgetvalue(r, row, 0), tables[i].name) == 0)
                found = atoi(pq.PQgetvalue(r, row, 1));
        if (found == -1) {
            snprintf(sql, sizeof(sql), e->dups[i] ? "CREATE TABLE %s (k bytea NOT NULL, v bytea NOT NULL, PRIMARY KEY "
                                                    "(k, v))" : "CREATE TABLE %s (k bytea PRIMARY KEY, v bytea NOT NULL)",
                     e->qname[i]);
            rc = pg_cmd(pc, sql);
        } else if (found != (e->dups[i] ? 2 : 1)) {
            rc = STOR_ERR_CORRUPT;
        }
    }
out:
    pq.PQclear(r);
    if (rc == 0)
        rc = pg_cmd(pc, "COMMIT");
    else
        (void)pg_cmd(pc, "ROLLBACK");
    return rc;
}

static void pg_close(stor_bk_env_t *e)
{
    if (e == NULL)
        return;
    while (e->idle != NULL) {
        pg_conn_t *pc = e->idle;
        e->idle = pc->next;
        conn_free(pc);
    }
    pthread_cond_destroy(&e->freed);
    pthread_mutex_destroy(&e->mu);
    free(e->conninfo);
    free(e);
}

static int pg_open(const stor_config_t *cfg, const stor_table_t *tables, size_t n, stor_bk_env_t **out)
{
    PQconninfoOption *opts;
    stor_bk_env_t *e;
    pg_conn_t *pc = NULL;
    pthread_condattr_t ca;
    char *msg = NULL;
    int rc, fresh = 0;

    if (cfg == NULL || cfg->location == NULL || tables == NULL || n == 0 || n > MAX_DBS)
        return STOR_ERR_INVAL;
    pthread_once(&pq_once, pq_load);
    if (pq_rc != 0)
        return pq_rc;
    if ((opts = pq.PQconninfoParse(cfg->location, &msg)) == NULL) {
        pq.PQfreemem(msg); /* names the bad part of the conninfo, which may hold a secret: not shown */
        return STOR_ERR_INVAL;
    }
    pq.PQconninfoFree(opts);
    for (size_t i = 0; i < n; i++)
        if (tables[i].name == NULL || !valid_name(tables[i].name))
            return STOR_ERR_INVAL;
    if ((e = calloc(1, sizeof(*e))) == NULL || (e->conninfo = strdup(cfg->location)) == NULL) {
        free(e);
        return STOR_ERR_NOMEM;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->freed, &ca);
    pthread_condattr_destroy(&ca);
    e->max_open = cfg->db_connections != 0 ? cfg->db_connections : POOL_MAX_DEFAULT;
    e->n = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(e->qname[i], sizeof(e->qname[i]), "\"" SCHEMA "\".\"%s\"", tables[i].name);
        e->dups[i] = (tables[i].flags & STOR_TABLE_DUPSORT) != 0;
    }
    if ((rc = conn_take(e, &pc, &fresh)) == 0 && (rc = check_tables(e, pc, tables)) == 0)
        conn_give(e, pc);
    else if (pc != NULL)
        conn_drop(e, pc);
    if (rc != 0) {
        pg_close(e);
        return rc;
    }
    *out = e;
    return 0;
}

/* ---- transactions ------------------------------------------------------------- */

static void txn_free(stor_bk_txn_t *t)
{
    if (t->depth == 0) {
        pending_free(t);
        for (size_t i = 0; i < t->n_pre; i++)
            pq.PQclear(t->pre[i].r);
        for (size_t i = 0; i < t->n_res; i++)
            pq.PQclear(t->res[i]);
        free(t->res);
        for (size_t i = 0; i < t->n_bufs; i++)
            free(t->bufs[i]);
        free(t->bufs);
        if (t->pc != NULL)
            conn_give(t->e, t->pc);
    }
    free(t);
}

/* A top-level txn's connection, in pipeline mode. A write txn queues its BEGIN, which goes with its first statement
 * that needs an answer; if a pooled connection turns out dead there, that answer is STOR_ERR_RETRY (nothing of the
 * txn ran: stor_env.c runs the batch again, on another connection; pipe_sync). A read txn sends nothing before its
 * first statement, whose round trip moves it to a fresh connection by itself (stmt_run), and a read txn that reads
 * nothing sends nothing.
 * A connection that cannot be put in pipeline mode is dropped and another taken (two tries). */
static int begin_top(stor_bk_env_t *e, stor_bk_txn_t *t)
{
    int rc;

    for (int tries = 0; tries < 2; tries++) {
        if ((rc = conn_take(e, &t->pc, &t->fresh)) != 0)
            return rc;
        if ((rc = pipe_on(t->pc)) == 0) {
            if (!t->write) {
                t->lazy = 1;
                t->pc->implicit = 1;
                return 0;
            }
            /* Not waited for: it goes with the first statement that must be answered (pipe_sync turns a pooled
             * connection found dead there into a batch run again). */
            if ((rc = queue_sql(t->pc, BEGIN_WRITE)) == 0) {
                t->pc->first_retry = !t->fresh;
                return 0;
            }
        }
        t->pc->broken = 1;
        conn_drop(e, t->pc);
        t->pc = NULL;
        if (t->fresh)
            break;
    }
    return rc;
}

static int pg_txn_begin(stor_bk_env_t *e, stor_bk_txn_t *parent, stor_bk_mode_t mode, stor_bk_txn_t **out)
{
    stor_bk_txn_t *t;
    char sql[96];
    int rc;

    if (parent != NULL && (mode != STOR_BK_WRITE || !parent->write))
        return STOR_ERR_INVAL;
    if (parent != NULL && ((rc = flush(parent)) != 0 || (rc = late_send(parent, -1, NULL)) != 0))
        return rc;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return STOR_ERR_NOMEM;
    t->e = e;
    t->write = mode == STOR_BK_WRITE;
    if (parent == NULL) {
        t->root = t;
        rc = begin_top(e, t);
    } else {
        t->root = parent->root;
        t->pc = parent->pc;
        t->depth = parent->depth + 1;
        t->sp = ++t->root->sp_last;
        snprintf(sql, sizeof(sql), "SAVEPOINT s%u", t->sp);
        rc = queue_sql(t->pc, sql); /* goes with the next statement that needs an answer */
    }
    if (rc != 0) {
        txn_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static void pg_txn_abort(stor_bk_txn_t *t)
{
    char sql[96];

    if (t == NULL)
        return;
    pending_free(t);
    if (t->depth > 0) {
        /* What is queued first (an error there is why this txn ends); then back to the savepoint. A connection
         * found dead at the txn's first answer: the batch runs again (pipe_sync). */
        if (t->pc->nq > 0 && pipe_sync(t->pc, NULL) == STOR_ERR_RETRY)
            t->root->failed = STOR_ERR_RETRY;
        snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT s%u", t->sp);
        if ((queue_sql(t->pc, sql) != 0 || (snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT s%u", t->sp),
                                            queue_sql(t->pc, sql)) != 0 || pipe_sync(t->pc, NULL) != 0) &&
            t->root->failed == 0)
            t->root->failed = STOR_ERR_IO; /* its savepoint was skipped after an earlier error: the txn fails */
        held_forget(t->root);
        pre_forget(t->root);
        t->root->gen++;
    } else if (t->pc != NULL && !t->write) {
        /* A read txn's implicit transaction ends at the sync point; nobody waits for it (conn_settle). */
        if (!t->lazy)
            pipe_leave(t->pc);
    } else if (t->pc != NULL) {
        /* Nobody waits for the ROLLBACK: the connection's next user reads its answer (conn_settle). Whatever is
         * queued is answered first, so that an error there does not make the server skip the ROLLBACK. */
        if (t->pc->nq > 0)
            (void)pipe_sync(t->pc, NULL);
        if (queue_sql(t->pc, "ROLLBACK") == 0)
            pipe_leave(t->pc);
    }
    txn_free(t);
}

static int pg_txn_commit(stor_bk_txn_t *t)
{
    char sql[96];
    PGresult *r = NULL;
    int rc = flush(t);

    if (rc == 0 && t->depth == 0 && t->write)
        rc = late_send(t, -1, NULL); /* the held rows' last values */
    /* A write txn that has had no answer yet (it only wrote) sends its BEGIN and writes first: a pooled connection
     * found dead is then a batch to run again, never a COMMIT whose fate is unknown. */
    if (rc == 0 && t->depth == 0 && t->pc != NULL && t->pc->first_retry)
        rc = pipe_sync(t->pc, NULL);

    if (t->depth > 0) {
        if (rc == 0) {
            snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT s%u", t->sp);
            rc = queue_sql(t->pc, sql); /* an error queued in it is the answer of a later call (stor_backend.h) */
        }
        if (rc != 0) {
            pg_txn_abort(t); /* the parent goes on without it */
            return rc;
        }
        txn_free(t);
        return 0;
    }
    if (t->lazy) { /* a read txn that read nothing */
        txn_free(t);
        return rc;
    }
    if (!t->write) { /* its statements were answered in its snapshot: it ends with the sync point (pg_txn_abort) */
        if (rc == 0 && (t->pc->broken || pq.PQstatus(t->pc->c) != CONNECTION_OK))
            rc = STOR_ERR_UNAVAILABLE;
        pg_txn_abort(t);
        return rc;
    }
    /* The connection lost in the txn: the database is out of reach (UNAVAILABLE, as every statement said). */
    if (rc == 0 && (t->pc->broken || pq.PQstatus(t->pc->c) != CONNECTION_OK))
        rc = STOR_ERR_UNAVAILABLE;
    else if (rc == 0)
        rc = t->failed;
    if (rc != 0) {
        pg_txn_abort(t);
        return rc;
    }
    if ((rc = queue_sql(t->pc, "COMMIT")) == 0)
        rc = pipe_sync(t->pc, &r);
    /* A txn in which a statement failed is rolled back by PostgreSQL, which then says so. */
    if (rc == 0 && strcmp(pq.PQcmdStatus(r), "COMMIT") != 0)
        rc = STOR_ERR_IO;
    pq.PQclear(r);
    if (rc != 0 && pq.PQtransactionStatus(t->pc->c) != PQTRANS_IDLE)
        t->pc->broken = 1;
    txn_free(t);
    return rc;
}

/* ---- data ------------------------------------------------------------------- */

#define DBI_OK(e, db) ((db) >= 0 && (size_t)(db) < (e)->n)
#define KEY_OK(k) ((k) != NULL && (k)->len > 0 && (k)->len <= VAL_MAX && (k)->data != NULL)

/* FNV-1a, 64 bits, over n bytes, continuing from h. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#define FNV_BASIS 0xcbf29ce484222325ull

/* The SQL of SELECT fn(hash): pg_advisory_xact_lock or pg_try_advisory_xact_lock. The lock lasts until the
 * top-level txn ends; a hash shared by two names only serializes more. */
static void advisory_sql(char *sql, size_t n, const char *fn, uint64_t h)
{
    long long id;

    memcpy(&id, &h, sizeof(id));
    snprintf(sql, n, "SELECT %s(%lld)", fn, id);
}

/* Queue the lock of key k of table db, which has no row (a write txn): every other write txn that finds it missing
 * waits for it; it is taken before the next statement, which the caller sends at once. */
static int key_lock(stor_bk_txn_t *t, int db, const stor_val_t *k)
{
    uint64_t h = fnv1a(FNV_BASIS, t->e->qname[db], strlen(t->e->qname[db]) + 1);
    char sql[96];

    advisory_sql(sql, sizeof(sql), "pg_advisory_xact_lock", fnv1a(h, k->data, k->len));
    return queue_sql(t->pc, sql);
}

static int pg_try_lock(stor_bk_txn_t *t, const char *name)
{
    char sql[96];
    PGresult *r = NULL;
    int got, rc;

    if (t == NULL || !t->write || name == NULL || name[0] == '\0')
        return STOR_ERR_INVAL;
    if ((rc = flush(t)) != 0)
        return rc;
    advisory_sql(sql, sizeof(sql), "pg_try_advisory_xact_lock", fnv1a(FNV_BASIS ^ 1, name, strlen(name)));
    if ((rc = queue_sql(t->pc, sql)) != 0 || (rc = pipe_sync(t->pc, &r)) != 0)
        return rc;
    got = pq.PQntuples(r) == 1 && strcmp(pq.PQgetvalue(r, 0, 0), "t") == 0;
    pq.PQclear(r);
    return got;
}

static int pg_schema_version(stor_bk_env_t *e, unsigned *version, unsigned *compatible_from)
{
    /* compatible_from through to_jsonb: NULL, not an error, where the column is not there yet (before 0004). */
    static const char q[] = "SELECT version, coalesce(to_jsonb(s) ->> 'compatible_from', version::text) FROM "
                            SCHEMA ".schema_version s ORDER BY version DESC LIMIT 1";
    pg_conn_t *pc = NULL;
    PGresult *r;
    int fresh = 0, rc;
    long v, c;

    if ((rc = conn_take(e, &pc, &fresh)) != 0)
        return rc;
    r = pq.PQexec(pc->c, q);
    if (pq.PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *st = pq.PQresultErrorField(r, PG_DIAG_SQLSTATE);
        rc = st != NULL && strcmp(st, "42P01") == 0 ? STOR_ERR_NOTFOUND : pg_err(pc, r); /* no such table */
    } else if (pq.PQntuples(r) != 1) {
        rc = STOR_ERR_NOTFOUND;
    } else {
        v = strtol(pq.PQgetvalue(r, 0, 0), NULL, 10);
        c = strtol(pq.PQgetvalue(r, 0, 1), NULL, 10);
        rc = v > 0 && v <= (long)UINT_MAX && c > 0 && c <= v ? 0 : STOR_ERR_CORRUPT;
        if (rc == 0) {
            *version = (unsigned)v;
            *compatible_from = (unsigned)c;
        }
    }
    pq.PQclear(r);
    conn_give(e, pc);
    return rc;
}

static int pg_get(stor_bk_env_t *e, stor_bk_txn_t *t, int db, const stor_val_t *k, stor_val_t *v)
{
    PGresult *r = NULL;
    int rc;

    held_t *h;
    pre_t *p;

    if (!DBI_OK(e, db) || !KEY_OK(k))
        return STOR_ERR_INVAL;
    if ((rc = flush(t)) != 0)
        return rc;
    if (t->write && (h = held_find(t->root, db, k)) != NULL) {
        *v = h->v;
        return 0;
    }
    if ((p = pre_find(t->root, db, k)) != NULL && p->wait && (rc = pre_sync(t)) != 0)
        return rc;
    if ((p = pre_find(t->root, db, k)) != NULL) { /* read ahead: its answer (none after an error: read again) */
        r = p->r;
        p->r = NULL;
        p->db = -1;
    }
    if (r == NULL && (rc = stmt_run(t, db, t->write ? Q_GET_FU : Q_GET, 1, k, NULL, &r)) != 0)
        return rc;
    if (pq.PQntuples(r) == 0 && t->write) {
        /* A missing row cannot be locked: lock its key instead, then look again (READ COMMITTED: the second
         * statement sees a row another txn inserted and committed while this one waited, and locks it). Both in
         * one round trip. */
        pq.PQclear(r);
        r = NULL;
        if ((rc = key_lock(t, db, k)) != 0 || (rc = stmt_run(t, db, Q_GET_FU, 1, k, NULL, &r)) != 0)
            return rc;
    }
    if (pq.PQntuples(r) == 0) {
        pq.PQclear(r);
        return STOR_ERR_NOTFOUND;
    }
    if ((rc = keep(t, r)) != 0)
        return rc;
    v->len = (size_t)pq.PQgetlength(r, 0, 0);
    v->data = pq.PQgetvalue(r, 0, 0);
    held_set(t, db, k, v);
    return 0;
}

static int pg_prefetch(stor_bk_env_t *e, stor_bk_txn_t *t, int db, const stor_val_t *k)
{
    stor_bk_txn_t *root;
    pre_t *p = NULL;
    unsigned char *kc;
    int rc, lazy;

    if (!DBI_OK(e, db) || !KEY_OK(k))
        return STOR_ERR_INVAL;
    root = t->root;
    if ((rc = flush(t)) != 0)
        return rc;
    if ((t->write && held_find(root, db, k) != NULL) || pre_find(root, db, k) != NULL)
        return 0; /* answered without the database already, or on its way */
    for (size_t i = 0; i < root->n_pre && p == NULL; i++)
        if (root->pre[i].db == -1 && !root->pre[i].wait)
            p = &root->pre[i];
    if (p == NULL && root->n_pre == PRE_MAX)
        return 0; /* enough pending: the get reads the row itself */
    if ((kc = malloc(k->len)) == NULL || keep_buf(t, kc) != 0)
        return 0; /* the same */
    memcpy(kc, k->data, k->len);
    lazy = root->lazy;
    if ((rc = begin_read(t)) != 0 || (rc = queue_stmt(t, db, t->write ? Q_GET_FU : Q_GET, 1, k, NULL)) != 0)
        return rc;
    if (lazy)
        root->early = 1;
    if (p == NULL)
        p = &root->pre[root->n_pre++];
    pq.PQclear(p->r); /* a forgotten row's answer */
    p->r = NULL;
    p->db = db;
    p->klen = k->len;
    p->k = kc;
    p->wait = 1;
    t->pc->into[t->pc->nq - 1] = p;
    return 0;
}

static uint64_t pg_round_trips(stor_bk_env_t *e)
{
    return __atomic_load_n(&e->round_trips, __ATOMIC_RELAXED);
}

static uint64_t pg_statements(stor_bk_env_t *e)
{
    return __atomic_load_n(&e->statements, __ATOMIC_RELAXED);
}

static int pg_put(stor_bk_env_t *e, stor_bk_txn_t *t, int db, const stor_val_t *k, stor_val_t *v, unsigned flags)
{
    int q;
    stor_val_t empty = { 0, NULL };
    pending_t *p;
    long changed = 0;
    int rc;

    if (!DBI_OK(e, db) || !KEY_OK(k) || v == NULL || v->len > VAL_MAX || !t->write ||
        (v->len > 0 && v->data == NULL && !(flags & STOR_PUT_RESERVE)))
        return STOR_ERR_INVAL;
    if (e->dups[db] && (flags & (STOR_PUT_RESERVE | STOR_PUT_APPEND)))
        return STOR_ERR_INVAL; /* as LMDB: no RESERVE or APPEND in a dupsort table here */
    if ((rc = flush(t)) != 0)
        return rc;
    pre_drop(t->root, db, k);
    q = e->dups[db] || (flags & STOR_PUT_NOOVERWRITE) ? Q_INSERT_NX : Q_UPSERT;
    if (q == Q_UPSERT && !(flags & (STOR_PUT_RESERVE | STOR_PUT_APPEND)) && late_put(t, db, k, v))
        return 0; /* kept for the commit */
    /* Sent now: a value of the row still waiting goes first, or the COMMIT would send it over this one (a write
     * late_put could not keep, e.g. no memory for its copy, as much as another kind of write). */
    if ((rc = late_send(t, db, k)) != 0)
        return rc;
    if (flags & STOR_PUT_APPEND)
        q = Q_APPEND;
    else if (!e->dups[db] && (flags & (STOR_PUT_NOOVERWRITE | STOR_PUT_NEW)) == (STOR_PUT_NOOVERWRITE | STOR_PUT_NEW))
        q = Q_INSERT;
    if (!(flags & STOR_PUT_RESERVE)) {
        if (q == Q_UPSERT || q == Q_INSERT) { /* nothing to learn from its answer: queued */
            if ((rc = queue_stmt(t, db, q, 2, k, v)) != 0)
                return rc;
            t->root->gen++;
            held_copy(t, db, k, v);
            return 0;
        }
        if ((rc = stmt_do(t, db, q, 2, k, v, &changed)) != 0)
            return rc;
        /* no row inserted: the key (or the pair) exists, or APPEND's key is not after the last */
        if (changed == 0 && (q == Q_APPEND || (flags & (STOR_PUT_NOOVERWRITE | STOR_PUT_NODUPDATA))))
            return STOR_ERR_EXISTS;
        held_copy(t, db, k, v);
        return 0;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL || (p->k = malloc(k->len)) == NULL ||
        (p->v = calloc(1, v->len ? v->len : 1)) == NULL) {
        if (p != NULL)
            free(p->k);
        free(p);
        return STOR_ERR_NOMEM;
    }
    p->db = db;
    p->klen = k->len;
    p->vlen = v->len;
    memcpy(p->k, k->data, k->len);
    p->flags = q == Q_INSERT ? Q_INSERT : Q_UPSERT;
    if (q != Q_UPSERT && q != Q_INSERT) { /* claim the key now, so that EXISTS comes from this call */
        rc = stmt_do(t, db, q, 2, k, &empty, &changed);
        if (rc == 0 && changed == 0)
            rc = STOR_ERR_EXISTS;
        if (rc != 0) {
            free(p->k);
            free(p->v);
            free(p);
            return rc;
        }
        p->flags = Q_UPDATE;
    }
    t->root->pend = p;
    v->data = p->v;
    return 0;
}

static int pg_del(stor_bk_env_t *e, stor_bk_txn_t *t, int db, const stor_val_t *k, const stor_val_t *v)
{
    long changed = 0;
    int rc;

    if (!DBI_OK(e, db) || !KEY_OK(k) || !t->write)
        return STOR_ERR_INVAL;
    if ((rc = flush(t)) != 0 || (rc = late_send(t, db, k)) != 0)
        return rc;
    held_drop(t->root, db, k);
    pre_drop(t->root, db, k);
    rc = v != NULL ? stmt_do(t, db, Q_DEL_KV, 2, k, v, &changed) : stmt_do(t, db, Q_DEL_K, 1, k, NULL, &changed);
    if (rc != 0)
        return rc;
    return changed > 0 ? 0 : STOR_ERR_NOTFOUND;
}

static int pg_count(stor_bk_env_t *e, stor_bk_txn_t *t, int db, size_t *n)
{
    PGresult *r = NULL;
    const unsigned char *b;
    uint64_t x = 0;
    int rc;

    if (!DBI_OK(e, db))
        return STOR_ERR_INVAL;
    if ((rc = flush(t)) != 0 || (rc = late_send(t, -1, NULL)) != 0 ||
        (rc = stmt_run(t, db, Q_COUNT, 0, NULL, NULL, &r)) != 0)
        return rc;
    if (pq.PQntuples(r) != 1 || pq.PQgetlength(r, 0, 0) != 8) {
        pq.PQclear(r);
        return STOR_ERR_IO;
    }
    b = (const unsigned char *)pq.PQgetvalue(r, 0, 0); /* int8, binary: big-endian */
    for (int i = 0; i < 8; i++)
        x = x << 8 | b[i];
    pq.PQclear(r);
    *n = (size_t)x;
    return 0;
}

/* ---- cursors ------------------------------------------------------------------ */

static int pg_cursor_open(stor_bk_env_t *e, stor_bk_txn_t *t, int db, stor_bk_cur_t **out)
{
    stor_bk_cur_t *c;

    if (!DBI_OK(e, db))
        return STOR_ERR_INVAL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return STOR_ERR_NOMEM;
    c->t = t;
    c->db = db;
    *out = c;
    return 0;
}

/* Pages a cursor reads: from key k on, after the row (k, v), the values of key k, its values after v. */
typedef enum { PAGE_FROM, PAGE_AFTER, PAGE_KEY, PAGE_KEY_AFTER } page_t;

/* Read a page and make its first row current. */
static int cur_fetch(stor_bk_cur_t *c, page_t what, const stor_val_t *k, const stor_val_t *v)
{
    static const int q_read[] = { Q_PAGE_GE, Q_PAGE_GT, Q_PAGE_EQ, Q_PAGE_EQ_GT };
    static const int q_lock[] = { Q_PAGE_GE_FU, Q_PAGE_GT_FU, Q_PAGE_EQ_FU, Q_PAGE_EQ_GT_FU };
    stor_bk_txn_t *t = c->t;
    int two = what == PAGE_KEY_AFTER || (what == PAGE_AFTER && t->e->dups[c->db]), rc;
    PGresult *r = NULL;

    c->has_cur = 0;
    c->page = NULL;
    if ((rc = stmt_run(t, c->db, t->write ? q_lock[what] : q_read[what], two ? 2 : 1, k, two ? v : NULL, &r)) != 0)
        return rc;
    if ((rc = keep(t, r)) != 0)
        return rc;
    c->page = r;
    c->nrows = pq.PQntuples(r);
    c->row = 0;
    c->gen = t->root->gen;
    c->one_key = what == PAGE_KEY || what == PAGE_KEY_AFTER;
    return c->nrows > 0 ? 0 : STOR_ERR_NOTFOUND;
}

static void cur_row(stor_bk_cur_t *c)
{
    c->k.len = (size_t)pq.PQgetlength(c->page, c->row, 0);
    c->k.data = pq.PQgetvalue(c->page, c->row, 0);
    c->v.len = (size_t)pq.PQgetlength(c->page, c->row, 1);
    c->v.data = pq.PQgetvalue(c->page, c->row, 1);
    c->has_cur = 1;
}

/* The row after the current one (dup_only: the next value of its key, read without touching other keys). */
static int cur_next(stor_bk_cur_t *c, int dup_only)
{
    int same = c->gen == c->t->root->gen;
    stor_val_t k, v;

    if (!c->has_cur)
        return STOR_ERR_NOTFOUND;
    if (same && c->row + 1 < c->nrows) {
        c->row++;
        return 0;
    }
    /* the last page, and nothing changed since it was read */
    if (same && c->nrows < PAGE_ROWS && (!c->one_key || dup_only))
        return STOR_ERR_NOTFOUND;
    k = c->k; /* the current row stays valid: its result is kept */
    v = c->v;
    return cur_fetch(c, dup_only ? PAGE_KEY_AFTER : PAGE_AFTER, &k, &v);
}

static int pg_cursor_get(stor_bk_cur_t *c, stor_cur_op_t op, stor_val_t *k, stor_val_t *v)
{
    stor_val_t first = { 0, NULL }, key = { 0, NULL };
    int rc;

    if ((rc = flush(c->t)) != 0 || (rc = late_send(c->t, -1, NULL)) != 0)
        return rc;
    switch (op) {
    case STOR_CUR_FIRST: rc = cur_fetch(c, PAGE_FROM, &first, NULL); break;
    case STOR_CUR_SET_RANGE:
    case STOR_CUR_SET_KEY:
        if (!KEY_OK(k))
            return STOR_ERR_INVAL;
        key = *k;
        rc = cur_fetch(c, op == STOR_CUR_SET_KEY ? PAGE_KEY : PAGE_FROM, &key, NULL);
        break;
    case STOR_CUR_NEXT: rc = cur_next(c, 0); break;
    case STOR_CUR_NEXT_DUP:
        if (!c->t->e->dups[c->db] || !c->has_cur) {
            rc = STOR_ERR_NOTFOUND;
            break;
        }
        key = c->k;
        rc = cur_next(c, 1);
        if (rc == 0 && ((size_t)pq.PQgetlength(c->page, c->row, 0) != key.len ||
                        memcmp(pq.PQgetvalue(c->page, c->row, 0), key.data, key.len) != 0))
            rc = STOR_ERR_NOTFOUND;
        break;
    default: return STOR_ERR_INVAL;
    }
    if (rc != 0) {
        c->has_cur = 0;
        return rc;
    }
    cur_row(c);
    *k = c->k;
    *v = c->v;
    return 0;
}

static int pg_cursor_del(stor_bk_cur_t *c)
{
    long changed = 0;
    int rc;

    if (!c->has_cur || !c->t->write)
        return STOR_ERR_INVAL;
    if ((rc = flush(c->t)) != 0 || (rc = late_send(c->t, c->db, &c->k)) != 0)
        return rc;
    held_drop(c->t->root, c->db, &c->k);
    pre_drop(c->t->root, c->db, &c->k);
    rc = c->t->e->dups[c->db] ? stmt_do(c->t, c->db, Q_DEL_KV, 2, &c->k, &c->v, &changed)
                              : stmt_do(c->t, c->db, Q_DEL_K, 1, &c->k, NULL, &changed);
    if (rc == 0 && changed == 0)
        rc = STOR_ERR_NOTFOUND;
    return rc;
}

static void pg_cursor_close(stor_bk_cur_t *c)
{
    free(c);
}

/* ---- migrations (stor_migrate, stor_backend.h) --------------------------------------------------------------
 * One connection of its own (no pool), without the services' statement_timeout (a migration may rewrite a large
 * table). Each migration runs in its own transaction that first takes MIGRATE_LOCK, a transaction-level advisory
 * lock, then reads csc.schema_version again (READ COMMITTED: a statement after the wait sees what the runner that
 * held the lock committed): two runners at once apply each file once, the second finding it recorded. */

#define MIGRATE_LOCK "7166180478836893554" /* "csc-migr" as a big-endian int8: one key for every runner */

/* why = what: the database's SQLSTATE and primary message of r (a failed statement). */
static void why_sql(const PGresult *r, const char *what, char *why, size_t n)
{
    const char *st = r != NULL ? pq.PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r != NULL ? pq.PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    if (n == 0)
        return;
    if (st != NULL && msg != NULL)
        snprintf(why, n, "%s: SQLSTATE %s: %s", what, st, msg);
    else
        snprintf(why, n, "%s: no answer from the database (the connection was lost)", what);
}

/* Run sql (want: PGRES_COMMAND_OK or PGRES_TUPLES_OK); *out = its result (the caller clears it) when out is not NULL.
 * On failure why says what failed and the database's message. */
static int mig_exec(pg_conn_t *pc, const char *sql, ExecStatusType want, const char *what, PGresult **out, char *why,
                    size_t n)
{
    PGresult *r = pq.PQexec(pc->c, sql);
    int rc;

    if (pq.PQresultStatus(r) != want) {
        why_sql(r, what, why, n);
        rc = pg_err(pc, r);
        pq.PQclear(r);
        return rc != 0 ? rc : STOR_ERR_IO;
    }
    if (out != NULL)
        *out = r;
    else
        pq.PQclear(r);
    return 0;
}

/* The role connected may migrate: a member of the database's owner (0001 revokes the database from PUBLIC) and of
 * schema csc's owner if the schema exists (its tables are the owner's to change). */
static int mig_check_role(pg_conn_t *pc, char *why, size_t n)
{
    PGresult *r = NULL;
    int rc = mig_exec(pc, "SELECT current_user, d.datdba::regrole::text, pg_has_role(current_user, d.datdba, 'MEMBER'), "
                          "coalesce(s.nspowner::regrole::text, ''), coalesce(pg_has_role(current_user, s.nspowner, "
                          "'MEMBER'), true) FROM pg_database d LEFT JOIN pg_namespace s ON s.nspname = '" SCHEMA "' "
                          "WHERE d.datname = current_database()",
                      PGRES_TUPLES_OK, "reading the database's owner", &r, why, n);

    if (rc != 0)
        return rc;
    if (pq.PQntuples(r) != 1) {
        rc = STOR_ERR_IO;
    } else if (strcmp(pq.PQgetvalue(r, 0, 2), "t") != 0) {
        snprintf(why, n, "role %s may not migrate this database: it is not the database's owner %s (nor a member of "
                 "it); connect as the migrations' owner", pq.PQgetvalue(r, 0, 0), pq.PQgetvalue(r, 0, 1));
        rc = STOR_ERR_DENIED;
    } else if (strcmp(pq.PQgetvalue(r, 0, 4), "t") != 0) {
        snprintf(why, n, "role %s may not migrate this database: it is not the owner %s of schema " SCHEMA " (nor a "
                 "member of it); connect as the migrations' owner", pq.PQgetvalue(r, 0, 0), pq.PQgetvalue(r, 0, 3));
        rc = STOR_ERR_DENIED;
    }
    pq.PQclear(r);
    return rc;
}

/* In the runner's transaction (MIGRATE_LOCK held): have[i] = 1 for each migration m[i] recorded, *table = whether
 * csc.schema_version exists, *top = the newest version recorded (0: none). A recorded version with no migration here
 * (or another name) is refused: STOR_ERR_CORRUPT, *top = that version. */
static int mig_read(pg_conn_t *pc, const stor_migration_t *m, size_t n, unsigned char *have, int *table, unsigned *top,
                    char *why, size_t n_why)
{
    PGresult *r = NULL;
    int rc;

    memset(have, 0, n);
    *top = 0;
    if ((rc = mig_exec(pc, "SELECT to_regclass('" SCHEMA ".schema_version') IS NOT NULL", PGRES_TUPLES_OK,
                       "looking for " SCHEMA ".schema_version", &r, why, n_why)) != 0)
        return rc;
    *table = pq.PQntuples(r) == 1 && strcmp(pq.PQgetvalue(r, 0, 0), "t") == 0;
    pq.PQclear(r);
    if (!*table)
        return 0;
    if ((rc = mig_exec(pc, "SELECT version, name FROM " SCHEMA ".schema_version ORDER BY version", PGRES_TUPLES_OK,
                       "reading " SCHEMA ".schema_version", &r, why, n_why)) != 0)
        return rc;
    for (int row = 0; row < pq.PQntuples(r) && rc == 0; row++) {
        unsigned long v = strtoul(pq.PQgetvalue(r, row, 0), NULL, 10);
        const char *name = pq.PQgetvalue(r, row, 1);
        *top = v <= UINT_MAX ? (unsigned)v : UINT_MAX;
        if (v == 0 || v > n) {
            snprintf(why, n_why, "the database has schema version %lu (%s), which this code has no migration for: it is "
                     "newer than this code (%u)", v, name, m[n - 1].version);
            rc = STOR_ERR_CORRUPT;
        } else if (strcmp(name, m[v - 1].name) != 0) {
            snprintf(why, n_why, "the database's schema version %lu is %s, this code's is %s: not this code's schema",
                     v, name, m[v - 1].name);
            rc = STOR_ERR_CORRUPT;
        } else {
            have[v - 1] = 1;
        }
    }
    pq.PQclear(r);
    return rc;
}

int stor_pg_migrate(const char *conninfo, const stor_migration_t *m, size_t n, int init, stor_migrate_report_fn report,
                    void *arg, unsigned *db_version, char *why, size_t n_why)
{
    static const char *const keys[] = { "connect_timeout", "dbname", NULL };
    const char *values[] = { CONNECT_TIMEOUT_S, conninfo, NULL };
    PQconninfoOption *opts;
    unsigned char *have = NULL;
    pg_conn_t *pc = NULL;
    PGresult *r = NULL;
    char *msg = NULL, sql[160], what[128];
    unsigned top = 0;
    int rc, table = 0, applied = 0, first = 1;
    size_t i;

    *db_version = 0;
    if (conninfo == NULL || m == NULL || n == 0 || n_why == 0)
        return STOR_ERR_INVAL;
    for (i = 0; i < n; i++)
        if (m[i].version != i + 1)
            return STOR_ERR_INVAL;
    pthread_once(&pq_once, pq_load);
    if (pq_rc != 0)
        return pq_rc;
    if ((opts = pq.PQconninfoParse(conninfo, &msg)) == NULL) {
        pq.PQfreemem(msg); /* names the bad part of the conninfo, which may hold a secret: not shown */
        return STOR_ERR_INVAL;
    }
    pq.PQconninfoFree(opts);
    if ((have = calloc(n, 1)) == NULL || (pc = calloc(1, sizeof(*pc))) == NULL) {
        rc = STOR_ERR_NOMEM;
        goto out;
    }
    pc->c = pq.PQconnectdbParams(keys, values, 1);
    if (pc->c == NULL || pq.PQstatus(pc->c) != CONNECTION_OK) {
        rc = STOR_ERR_UNAVAILABLE;
        goto out;
    }
    pq.PQsetNoticeProcessor(pc->c, quiet, NULL);
    if ((rc = mig_check_role(pc, why, n_why)) != 0)
        goto out;
    for (;;) {
        if ((rc = mig_exec(pc, "BEGIN", PGRES_COMMAND_OK, "BEGIN", NULL, why, n_why)) != 0 ||
            (rc = mig_exec(pc, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", PGRES_TUPLES_OK,
                           "waiting for the migrations' lock", NULL, why, n_why)) != 0 ||
            (rc = mig_read(pc, m, n, have, &table, &top, why, n_why)) != 0)
            break;
        if (first && !table && !init) {
            rc = STOR_ERR_NOTFOUND; /* db migrate on a database never initialised */
            break;
        }
        for (i = 0; i < n && have[i]; i++)
            ;
        if (i == n) { /* everything is recorded */
            rc = mig_exec(pc, "COMMIT", PGRES_COMMAND_OK, "COMMIT", NULL, why, n_why);
            if (rc == 0 && applied == 0 && report != NULL)
                report(STOR_MIGRATE_CURRENT, top, m[top - 1].name, arg);
            break;
        }
        if (first && top > 0 && report != NULL)
            report(STOR_MIGRATE_FOUND, top, m[top - 1].name, arg);
        first = 0;
        snprintf(what, sizeof(what), "migration %s failed", m[i].name);
        if ((rc = mig_exec(pc, m[i].sql, PGRES_COMMAND_OK, what, NULL, why, n_why)) != 0)
            break;
        /* The file records its own version (storage/migrations/README.md): a file that does not is refused. */
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM " SCHEMA ".schema_version WHERE version = %u AND name = '%s'",
                 m[i].version, m[i].name);
        snprintf(what, sizeof(what), "checking the version row of migration %s", m[i].name);
        if ((rc = mig_exec(pc, sql, PGRES_TUPLES_OK, what, &r, why, n_why)) != 0)
            break;
        if (pq.PQntuples(r) != 1 || strcmp(pq.PQgetvalue(r, 0, 0), "1") != 0) {
            snprintf(why, n_why, "migration %s did not record version %u in " SCHEMA ".schema_version: not applied",
                     m[i].name, m[i].version);
            rc = STOR_ERR_CORRUPT;
            break;
        }
        pq.PQclear(r);
        r = NULL;
        snprintf(what, sizeof(what), "committing migration %s", m[i].name);
        if ((rc = mig_exec(pc, "COMMIT", PGRES_COMMAND_OK, what, NULL, why, n_why)) != 0)
            break;
        applied++;
        if (m[i].version > top)
            top = m[i].version;
        if (report != NULL)
            report(STOR_MIGRATE_APPLIED, m[i].version, m[i].name, arg);
    }
    pq.PQclear(r);
    *db_version = top;
out:
    if (pc != NULL && pc->c != NULL && pq.PQtransactionStatus(pc->c) != PQTRANS_IDLE)
        (void)pg_cmd(pc, "ROLLBACK");
    conn_free(pc);
    free(have);
    return rc;
}

/* PostgreSQL's only full is 53100 disk_full (pg_err): the disk under its data directory. */
static int pg_full_cause(stor_bk_env_t *e)
{
    (void)e;
    return STOR_FULL_DISK;
}

const stor_backend_t stor_backend_pg = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .txn_begin = pg_txn_begin,
    .txn_commit = pg_txn_commit,
    .txn_abort = pg_txn_abort,
    .get = pg_get,
    .prefetch = pg_prefetch,
    .put = pg_put,
    .del = pg_del,
    .count = pg_count,
    .cursor_open = pg_cursor_open,
    .cursor_get = pg_cursor_get,
    .cursor_del = pg_cursor_del,
    .cursor_close = pg_cursor_close,
    .capacity = NULL,
    .full_cause = pg_full_cause,
    .used = NULL, /* pg_database_size and PostgreSQL's own exporters (docs/operations.md) */
    .schema_version = pg_schema_version,
    .try_lock = pg_try_lock,
    .round_trips = pg_round_trips,
    .statements = pg_statements,
    .backup = NULL, /* pg_basebackup and WAL archiving (docs/operations.md) */
};
