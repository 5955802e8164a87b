/*
 * stor_lmdb.c - the LMDB backend (stor_backend.h): the only file of the project that includes <lmdb.h>.
 *
 * An environment is a directory holding data.mdb; each table is a named sub-database (a dupsort table with
 * MDB_DUPSORT, plus MDB_DUPFIXED if asked). A stor_bk_txn_t is an MDB_txn and a stor_bk_cur_t an MDB_cursor:
 * no allocation per transaction.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "stor_backend.h"

#define DEFAULT_MAP_SIZE ((size_t)1 << 30)
#define DEFAULT_READERS 256u
#define MAX_DBS 32

struct stor_bk_env {
    MDB_env *mdb;
    size_t n;
    MDB_dbi dbi[MAX_DBS];
};

#define TXN(t) ((MDB_txn *)(void *)(t))
#define CUR(c) ((MDB_cursor *)(void *)(c))
#define MV(sv) ((MDB_val){ (sv)->len, (sv)->data })

static int lmdb_err(int rc)
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

static int make_dir(const char *path)
{
    struct stat st;

    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return STOR_ERR_IO;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return STOR_ERR_IO;
    return 0;
}

static int open_tables(stor_bk_env_t *e, const stor_table_t *tables, size_t n)
{
    MDB_txn *txn = NULL;
    int rc;

    if ((rc = mdb_txn_begin(e->mdb, NULL, 0, &txn)) != 0)
        return lmdb_err(rc);
    for (size_t i = 0; i < n; i++) {
        unsigned flags = MDB_CREATE;
        if (tables[i].flags & STOR_TABLE_DUPSORT)
            flags |= MDB_DUPSORT | (tables[i].flags & STOR_TABLE_DUPFIXED ? MDB_DUPFIXED : 0);
        if ((rc = mdb_dbi_open(txn, tables[i].name, flags, &e->dbi[i])) != 0) {
            mdb_txn_abort(txn);
            return lmdb_err(rc);
        }
    }
    return lmdb_err(mdb_txn_commit(txn));
}

static int lmdb_open_env(stor_bk_env_t *e, const stor_config_t *cfg, const stor_table_t *tables, size_t n)
{
    int rc, dead = 0;

    if ((rc = mdb_env_create(&e->mdb)) != 0)
        return lmdb_err(rc);
    if ((rc = mdb_env_set_mapsize(e->mdb, cfg->map_size ? cfg->map_size : DEFAULT_MAP_SIZE)) != 0 ||
        (rc = mdb_env_set_maxreaders(e->mdb, cfg->max_readers ? cfg->max_readers : DEFAULT_READERS)) != 0 ||
        (rc = mdb_env_set_maxdbs(e->mdb, MAX_DBS)) != 0)
        return lmdb_err(rc);
    /* MDB_NOTLS: read txns are not tied to a thread, so pools and nested stor_read() work. */
    if ((rc = mdb_env_open(e->mdb, cfg->location, MDB_NOTLS, 0600)) != 0)
        return lmdb_err(rc);
    /* Reader slots of crashed processes would pin old pages forever. */
    if ((rc = mdb_reader_check(e->mdb, &dead)) != 0)
        return lmdb_err(rc);
    return open_tables(e, tables, n);
}

static int lmdb_open(const stor_config_t *cfg, const stor_table_t *tables, size_t n, stor_bk_env_t **out)
{
    stor_bk_env_t *e;
    int rc;

    if (cfg == NULL || cfg->location == NULL || cfg->location[0] == '\0' ||
        strnlen(cfg->location, PATH_MAX) >= PATH_MAX || tables == NULL || n == 0 || n > MAX_DBS)
        return STOR_ERR_INVAL;
    if ((rc = make_dir(cfg->location)) != 0)
        return rc;
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return STOR_ERR_NOMEM;
    e->n = n;
    if ((rc = lmdb_open_env(e, cfg, tables, n)) != 0) {
        if (e->mdb != NULL)
            mdb_env_close(e->mdb);
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

static void lmdb_close(stor_bk_env_t *e)
{
    if (e == NULL)
        return;
    mdb_env_close(e->mdb);
    free(e);
}

static int lmdb_txn_begin(stor_bk_env_t *e, stor_bk_txn_t *parent, stor_bk_mode_t mode, stor_bk_txn_t **out)
{
    MDB_txn *txn = NULL;
    int rc;

    if (mode == STOR_BK_READ && parent != NULL)
        return STOR_ERR_INVAL;
    rc = mdb_txn_begin(e->mdb, TXN(parent), mode == STOR_BK_READ ? MDB_RDONLY : 0, &txn);
    if (rc != 0)
        return lmdb_err(rc);
    *out = (stor_bk_txn_t *)(void *)txn;
    return 0;
}

static int lmdb_txn_commit(stor_bk_txn_t *t)
{
    return lmdb_err(mdb_txn_commit(TXN(t)));
}

static void lmdb_txn_abort(stor_bk_txn_t *t)
{
    mdb_txn_abort(TXN(t));
}

/* An index outside the tables opened would be a bug of the record layer: refused, not a crash. */
#define DBI_OK(e, db) ((db) >= 0 && (size_t)(db) < (e)->n)

static int lmdb_get(stor_bk_env_t *e, stor_bk_txn_t *t, int db, const stor_val_t *k, stor_val_t *v)
{
    MDB_val mk, mv;
    int rc;

    if (!DBI_OK(e, db))
        return STOR_ERR_INVAL;
    mk = MV(k);
    if ((rc = mdb_get(TXN(t), e->dbi[db], &mk, &mv)) != 0)
        return lmdb_err(rc);
    v->len = mv.mv_size;
    v->data = mv.mv_data;
    return 0;
}

static int lmdb_put(stor_bk_env_t *e, stor_bk_txn_t *t, int db, const stor_val_t *k, stor_val_t *v, unsigned flags)
{
    unsigned mf = (flags & STOR_PUT_NOOVERWRITE ? MDB_NOOVERWRITE : 0) |
                  (flags & STOR_PUT_NODUPDATA ? MDB_NODUPDATA : 0) | (flags & STOR_PUT_RESERVE ? MDB_RESERVE : 0) |
                  (flags & STOR_PUT_APPEND ? MDB_APPEND : 0);
    MDB_val mk, mv;
    int rc;

    if (!DBI_OK(e, db))
        return STOR_ERR_INVAL;
    mk = MV(k);
    mv = MV(v);
    if ((rc = mdb_put(TXN(t), e->dbi[db], &mk, &mv, mf)) != 0)
        return lmdb_err(rc);
    if (flags & STOR_PUT_RESERVE)
        v->data = mv.mv_data;
    return 0;
}

static int lmdb_del(stor_bk_env_t *e, stor_bk_txn_t *t, int db, const stor_val_t *k, const stor_val_t *v)
{
    MDB_val mk, mv;

    if (!DBI_OK(e, db))
        return STOR_ERR_INVAL;
    mk = MV(k);
    if (v != NULL)
        mv = MV(v);
    return lmdb_err(mdb_del(TXN(t), e->dbi[db], &mk, v != NULL ? &mv : NULL));
}

static int lmdb_count(stor_bk_env_t *e, stor_bk_txn_t *t, int db, size_t *n)
{
    MDB_stat st;
    int rc;

    if (!DBI_OK(e, db))
        return STOR_ERR_INVAL;
    if ((rc = mdb_stat(TXN(t), e->dbi[db], &st)) != 0)
        return lmdb_err(rc);
    *n = st.ms_entries;
    return 0;
}

static int lmdb_cursor_open(stor_bk_env_t *e, stor_bk_txn_t *t, int db, stor_bk_cur_t **out)
{
    MDB_cursor *c = NULL;
    int rc;

    if (!DBI_OK(e, db))
        return STOR_ERR_INVAL;
    if ((rc = mdb_cursor_open(TXN(t), e->dbi[db], &c)) != 0)
        return lmdb_err(rc);
    *out = (stor_bk_cur_t *)(void *)c;
    return 0;
}

static int lmdb_cursor_get(stor_bk_cur_t *c, stor_cur_op_t op, stor_val_t *k, stor_val_t *v)
{
    static const MDB_cursor_op ops[] = {
        [STOR_CUR_FIRST] = MDB_FIRST, [STOR_CUR_SET_RANGE] = MDB_SET_RANGE, [STOR_CUR_SET_KEY] = MDB_SET_KEY,
        [STOR_CUR_NEXT] = MDB_NEXT, [STOR_CUR_NEXT_DUP] = MDB_NEXT_DUP,
    };
    MDB_val mk = { 0, NULL }, mv = { 0, NULL };
    int rc;

    if ((unsigned)op > STOR_CUR_NEXT_DUP)
        return STOR_ERR_INVAL;
    if (op == STOR_CUR_SET_RANGE || op == STOR_CUR_SET_KEY)
        mk = MV(k);
    if (op == STOR_CUR_NEXT_DUP) { /* LMDB would move to the next key of a plain table: a key has one value there */
        unsigned flags = 0;
        if ((rc = mdb_dbi_flags(mdb_cursor_txn(CUR(c)), mdb_cursor_dbi(CUR(c)), &flags)) != 0)
            return lmdb_err(rc);
        if (!(flags & MDB_DUPSORT))
            return STOR_ERR_NOTFOUND;
    }
    if ((rc = mdb_cursor_get(CUR(c), &mk, &mv, ops[op])) != 0)
        return lmdb_err(rc);
    k->len = mk.mv_size;
    k->data = mk.mv_data;
    v->len = mv.mv_size;
    v->data = mv.mv_data;
    return 0;
}

static int lmdb_cursor_del(stor_bk_cur_t *c)
{
    return lmdb_err(mdb_cursor_del(CUR(c), 0));
}

static void lmdb_cursor_close(stor_bk_cur_t *c)
{
    mdb_cursor_close(CUR(c));
}

static size_t lmdb_capacity(stor_bk_env_t *e)
{
    MDB_envinfo info;

    return mdb_env_info(e->mdb, &info) == 0 ? info.me_mapsize : 0;
}

static int lmdb_used(stor_bk_env_t *e, uint64_t *bytes)
{
    MDB_envinfo info;
    MDB_stat st;
    int rc;

    if ((rc = mdb_env_info(e->mdb, &info)) != 0 || (rc = mdb_env_stat(e->mdb, &st)) != 0)
        return lmdb_err(rc);
    *bytes = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    return 0;
}

/* One write txn at a time per database (LMDB's writer lock): the lock is always this txn's. */
static int lmdb_try_lock(stor_bk_txn_t *t, const char *name)
{
    (void)t;
    return name != NULL && name[0] != '\0' ? 1 : STOR_ERR_INVAL;
}

/* mdb_env_copy2 with MDB_CP_COMPACT: one read txn, so a snapshot that writers (of any process) do not wait for;
 * free pages are left out and the pages renumbered, so the copy is as small as the data. It writes dir/data.mdb
 * (no lock file: the copy is not open anywhere). */
static int lmdb_backup(stor_bk_env_t *e, const char *dir)
{
    if (dir == NULL || dir[0] == '\0')
        return STOR_ERR_INVAL;
    return lmdb_err(mdb_env_copy2(e->mdb, dir, MDB_CP_COMPACT));
}

const stor_backend_t stor_backend_lmdb = {
    .name = "lmdb",
    .open = lmdb_open,
    .close = lmdb_close,
    .txn_begin = lmdb_txn_begin,
    .txn_commit = lmdb_txn_commit,
    .txn_abort = lmdb_txn_abort,
    .get = lmdb_get,
    .put = lmdb_put,
    .del = lmdb_del,
    .count = lmdb_count,
    .cursor_open = lmdb_cursor_open,
    .cursor_get = lmdb_cursor_get,
    .cursor_del = lmdb_cursor_del,
    .cursor_close = lmdb_cursor_close,
    .capacity = lmdb_capacity,
    .used = lmdb_used,
    .schema_version = NULL,
    .try_lock = lmdb_try_lock,
    .backup = lmdb_backup,
};
