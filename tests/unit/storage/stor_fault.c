/*
 * stor_fault.c - the fault-injecting backend of the unit tests (stor_fault.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stor_fault.h"

/* A transaction of the backend below, and what a rule needs to know of it. A nested txn is the child of its parent
 * (at most one at a time, stor_backend.h): the backend ends a parent's children with it, so this one frees their
 * wrappers then too. */
#define SF_AHEAD_MAX 16 /* keys read ahead remembered per top-level txn (sf_trace_gets) */
#define SF_KEY_MAX 256  /* longer keys read ahead are not remembered */

typedef struct sf_txn_h {
    stor_bk_txn_t *inner;
    int write;
    uint32_t wrote; /* the tables this txn (and its committed children) put to or deleted from, a bit per STOR_DB_* */
    struct sf_txn_h *parent, *child;
    /* the top-level txn's keys read ahead, while tracing */
    unsigned n_ahead;
    struct {
        int db;
        size_t klen;
        unsigned char k[SF_KEY_MAX];
    } ahead[SF_AHEAD_MAX];
} sf_txn_h_t;

typedef struct sf_cur_h {
    stor_bk_cur_t *inner;
    sf_txn_h_t *txn;
    int db, write;
} sf_cur_h_t;

_Static_assert(STOR_DB_COUNT <= 32, "sf_txn_h_t.wrote has a bit per table");

static void wrote_to(sf_txn_h_t *t, int db)
{
    if (db >= 0 && db < STOR_DB_COUNT)
        t->wrote |= (uint32_t)1 << db;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const stor_backend_t *below; /* the environment's own backend */
static struct {
    int armed;
    sf_op_t op;
    int db;
    sf_txn_t txn;
    unsigned nth, seen, fired;
    int err, sticky;
} rule;

/* sf_trace_gets: the gets in write txns per table, and those of them read ahead */
static struct {
    int on;
    sf_txn_t txn;
    unsigned gets[STOR_DB_COUNT], ahead[STOR_DB_COUNT];
} trace;

static sf_txn_h_t *root_of(sf_txn_h_t *t)
{
    while (t->parent != NULL)
        t = t->parent;
    return t;
}

static void trace_get(sf_txn_h_t *t, int db, const stor_val_t *k)
{
    sf_txn_h_t *r = root_of(t);
    int seen = 0;

    for (unsigned i = 0; i < r->n_ahead && !seen; i++)
        seen = r->ahead[i].db == db && r->ahead[i].klen == k->len && memcmp(r->ahead[i].k, k->data, k->len) == 0;
    pthread_mutex_lock(&mu);
    if (trace.on && (trace.txn == SF_ANY_TXN || (trace.txn == SF_WRITE_TXN) == (t->write != 0)) && db >= 0 &&
        db < STOR_DB_COUNT) {
        trace.gets[db]++;
        trace.ahead[db] += (unsigned)seen;
    }
    pthread_mutex_unlock(&mu);
}

static void trace_prefetch(sf_txn_h_t *t, int db, const stor_val_t *k)
{
    sf_txn_h_t *r = root_of(t);

    if (r->n_ahead < SF_AHEAD_MAX && k->len <= SF_KEY_MAX) {
        r->ahead[r->n_ahead].db = db;
        r->ahead[r->n_ahead].klen = k->len;
        memcpy(r->ahead[r->n_ahead].k, k->data, k->len);
        r->n_ahead++;
    }
}

void sf_trace_gets(int on, sf_txn_t txn)
{
    pthread_mutex_lock(&mu);
    if (on)
        memset(&trace, 0, sizeof(trace));
    trace.on = on;
    trace.txn = txn;
    pthread_mutex_unlock(&mu);
}

void sf_traced(int db, unsigned *gets, unsigned *ahead)
{
    pthread_mutex_lock(&mu);
    *gets = trace.gets[db];
    *ahead = trace.ahead[db];
    pthread_mutex_unlock(&mu);
}

/* The error to return instead of making this call, or 0 to make it. A commit's db is -1 and its wrote the tables its
 * txn wrote: a rule on one table matches the commits that would make a write to it durable. */
static int fault_in(sf_op_t op, int db, uint32_t wrote, int write)
{
    int rc = 0;
    pthread_mutex_lock(&mu);
    if (rule.armed && rule.op == op &&
        (rule.db == SF_ANY_TABLE || (db < 0 ? op != SF_COMMIT || (wrote >> rule.db & 1u) != 0 : rule.db == db)) &&
        (rule.txn == SF_ANY_TXN || (rule.txn == SF_WRITE_TXN) == (write != 0))) {
        rule.seen++;
        if (rule.seen == rule.nth || (rule.sticky && rule.seen > rule.nth)) {
            rule.fired++;
            rc = rule.err;
        }
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int fault(sf_op_t op, int db, int write)
{
    return fault_in(op, db, 0, write);
}

static void free_children(sf_txn_h_t *t)
{
    sf_txn_h_t *c = t->child;
    while (c != NULL) {
        sf_txn_h_t *next = c->child;
        free(c);
        c = next;
    }
    t->child = NULL;
}

/* t ends (its inner handle is gone): unlink it from its parent, free it and its children's wrappers. */
static void txn_gone(sf_txn_h_t *t)
{
    if (t->parent != NULL)
        t->parent->child = NULL;
    free_children(t);
    free(t);
}

static int sf_open(const stor_config_t *cfg, const stor_table_t *tables, size_t n_tables, stor_bk_env_t **out)
{
    return below->open(cfg, tables, n_tables, out);
}

static void sf_close(stor_bk_env_t *e)
{
    below->close(e);
}

static int sf_txn_begin(stor_bk_env_t *e, stor_bk_txn_t *parent, stor_bk_mode_t mode, stor_bk_txn_t **out)
{
    sf_txn_h_t *p = (sf_txn_h_t *)parent, *t;
    int rc = fault(SF_BEGIN, -1, mode == STOR_BK_WRITE);
    if (rc != 0)
        return rc;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return STOR_ERR_NOMEM;
    if ((rc = below->txn_begin(e, p != NULL ? p->inner : NULL, mode, &t->inner)) != 0) {
        free(t);
        return rc;
    }
    t->write = mode == STOR_BK_WRITE;
    t->parent = p;
    if (p != NULL)
        p->child = t;
    *out = (stor_bk_txn_t *)t;
    return STOR_OK;
}

static int sf_txn_commit(stor_bk_txn_t *txn)
{
    sf_txn_h_t *t = (sf_txn_h_t *)txn;
    int rc = fault_in(SF_COMMIT, -1, t->wrote, t->write);
    if (rc != 0) /* the handle ends on failure too: what a failed commit leaves is an aborted txn */
        below->txn_abort(t->inner);
    else if ((rc = below->txn_commit(t->inner)) == 0 && t->parent != NULL)
        t->parent->wrote |= t->wrote;
    txn_gone(t);
    return rc;
}

static void sf_txn_abort(stor_bk_txn_t *txn)
{
    sf_txn_h_t *t = (sf_txn_h_t *)txn;
    below->txn_abort(t->inner);
    txn_gone(t);
}

static int sf_get(stor_bk_env_t *e, stor_bk_txn_t *txn, int db, const stor_val_t *k, stor_val_t *v)
{
    sf_txn_h_t *t = (sf_txn_h_t *)txn;
    int rc = fault(SF_GET, db, t->write);
    if (rc == 0)
        trace_get(t, db, k);
    return rc != 0 ? rc : below->get(e, t->inner, db, k, v);
}

static int sf_put(stor_bk_env_t *e, stor_bk_txn_t *txn, int db, const stor_val_t *k, stor_val_t *v, unsigned flags)
{
    sf_txn_h_t *t = (sf_txn_h_t *)txn;
    int rc = fault(SF_PUT, db, t->write);
    if (rc == 0)
        wrote_to(t, db);
    return rc != 0 ? rc : below->put(e, t->inner, db, k, v, flags);
}

static int sf_del(stor_bk_env_t *e, stor_bk_txn_t *txn, int db, const stor_val_t *k, const stor_val_t *v)
{
    sf_txn_h_t *t = (sf_txn_h_t *)txn;
    int rc = fault(SF_DEL, db, t->write);
    if (rc == 0)
        wrote_to(t, db);
    return rc != 0 ? rc : below->del(e, t->inner, db, k, v);
}

static int sf_count(stor_bk_env_t *e, stor_bk_txn_t *txn, int db, size_t *n)
{
    sf_txn_h_t *t = (sf_txn_h_t *)txn;
    int rc = fault(SF_COUNT, db, t->write);
    return rc != 0 ? rc : below->count(e, t->inner, db, n);
}

static int sf_cursor_open(stor_bk_env_t *e, stor_bk_txn_t *txn, int db, stor_bk_cur_t **out)
{
    sf_txn_h_t *t = (sf_txn_h_t *)txn;
    sf_cur_h_t *c = calloc(1, sizeof(*c));
    int rc;
    if (c == NULL)
        return STOR_ERR_NOMEM;
    if ((rc = below->cursor_open(e, t->inner, db, &c->inner)) != 0) {
        free(c);
        return rc;
    }
    c->db = db;
    c->txn = t;
    c->write = t->write;
    *out = (stor_bk_cur_t *)c;
    return STOR_OK;
}

static int sf_cursor_get(stor_bk_cur_t *cur, stor_cur_op_t op, stor_val_t *k, stor_val_t *v)
{
    sf_cur_h_t *c = (sf_cur_h_t *)cur;
    int rc = fault(SF_CURSOR_GET, c->db, c->write);
    return rc != 0 ? rc : below->cursor_get(c->inner, op, k, v);
}

static int sf_cursor_del(stor_bk_cur_t *cur)
{
    sf_cur_h_t *c = (sf_cur_h_t *)cur;
    int rc = fault(SF_CURSOR_DEL, c->db, c->write);
    if (rc == 0)
        wrote_to(c->txn, c->db);
    return rc != 0 ? rc : below->cursor_del(c->inner);
}

static void sf_cursor_close(stor_bk_cur_t *cur)
{
    sf_cur_h_t *c = (sf_cur_h_t *)cur;
    below->cursor_close(c->inner);
    free(c);
}

static size_t sf_capacity(stor_bk_env_t *e)
{
    return below->capacity != NULL ? below->capacity(e) : 0;
}

static atomic_int room_short; /* sf_room_short() */

static int sf_used(stor_bk_env_t *e, uint64_t *bytes)
{
    if (atomic_load(&room_short) && below->capacity != NULL) {
        *bytes = below->capacity(e);
        return 0;
    }
    return below->used(e, bytes);
}

void sf_room_short(int on)
{
    atomic_store(&room_short, on);
}

static int sf_full_cause(stor_bk_env_t *e)
{
    return below->full_cause(e);
}

static int sf_schema_version(stor_bk_env_t *e, unsigned *version, unsigned *compatible_from)
{
    return below->schema_version(e, version, compatible_from);
}

static int sf_try_lock(stor_bk_txn_t *txn, const char *name)
{
    return below->try_lock(((sf_txn_h_t *)txn)->inner, name);
}

/* A read ahead is not a call a rule fails: the get that takes its answer is. */
/* Present on every backend (a hint: on one without, like LMDB, it does nothing), so that a test can see what the
 * record layer reads ahead. */
static int sf_prefetch(stor_bk_env_t *e, stor_bk_txn_t *txn, int db, const stor_val_t *k)
{
    trace_prefetch((sf_txn_h_t *)txn, db, k);
    return below->prefetch != NULL ? below->prefetch(e, ((sf_txn_h_t *)txn)->inner, db, k) : 0;
}

static uint64_t sf_round_trips(stor_bk_env_t *e)
{
    return below->round_trips(e);
}

static uint64_t sf_statements(stor_bk_env_t *e)
{
    return below->statements(e);
}

static int sf_backup(stor_bk_env_t *e, const char *dir)
{
    return below->backup(e, dir);
}

static stor_backend_t faulty = {
    .name = "faulty",
    .open = sf_open,
    .close = sf_close,
    .txn_begin = sf_txn_begin,
    .txn_commit = sf_txn_commit,
    .txn_abort = sf_txn_abort,
    .get = sf_get,
    .put = sf_put,
    .del = sf_del,
    .count = sf_count,
    .cursor_open = sf_cursor_open,
    .cursor_get = sf_cursor_get,
    .cursor_del = sf_cursor_del,
    .cursor_close = sf_cursor_close,
    .capacity = sf_capacity,
};

void sf_install(stor_env_t *env)
{
    /* Swapped while no caller is inside stor_read or stor_write (env->active, under env->mu): a transaction begun on
     * one table of functions must end on the same. The in-process csc-sam's threads may be reading now. */
    for (;;) {
        pthread_mutex_lock(&env->mu);
        if (env->active == 0)
            break;
        pthread_mutex_unlock(&env->mu);
        usleep(1000);
    }
    pthread_mutex_lock(&mu);
    below = env->be;
    /* The optional functions exactly where the backend below has them (the record layer looks for NULL). */
    faulty.used = below->used != NULL ? sf_used : NULL;
    faulty.full_cause = below->full_cause != NULL ? sf_full_cause : NULL;
    faulty.schema_version = below->schema_version != NULL ? sf_schema_version : NULL;
    faulty.try_lock = below->try_lock != NULL ? sf_try_lock : NULL;
    faulty.backup = below->backup != NULL ? sf_backup : NULL;
    faulty.prefetch = sf_prefetch;
    faulty.round_trips = below->round_trips != NULL ? sf_round_trips : NULL;
    faulty.statements = below->statements != NULL ? sf_statements : NULL;
    env->be = &faulty;
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&env->mu);
}

void sf_arm(sf_op_t op, int db, sf_txn_t txn, unsigned nth, int err, int sticky)
{
    pthread_mutex_lock(&mu);
    rule.armed = 1;
    rule.op = op;
    rule.db = db;
    rule.txn = txn;
    rule.nth = nth;
    rule.seen = 0;
    rule.fired = 0;
    rule.err = err;
    rule.sticky = sticky;
    pthread_mutex_unlock(&mu);
}

void sf_disarm(void)
{
    pthread_mutex_lock(&mu);
    rule.armed = 0;
    pthread_mutex_unlock(&mu);
}

unsigned sf_fired(void)
{
    pthread_mutex_lock(&mu);
    unsigned n = rule.fired;
    pthread_mutex_unlock(&mu);
    return n;
}
