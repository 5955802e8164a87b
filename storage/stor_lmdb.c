/*
 * stor_lmdb.c - the LMDB backend (stor_backend.h): the only file of the project that includes <lmdb.h>.
 *
 * An environment is a directory holding data.mdb; each table is a named sub-database (a dupsort table with
 * MDB_DUPSORT, plus MDB_DUPFIXED if asked). A stor_bk_txn_t is an MDB_txn and a stor_bk_cur_t an MDB_cursor:
 * no allocation per transaction.
 *
 * A full disk. The map is mapped read-only and pages are written with pwrite (no MDB_WRITEMAP): a filesystem with no
 * room left fails the write that needs a new block with an error, which LMDB returns from mdb_txn_commit (or from
 * mdb_put or mdb_del when a large transaction spills pages), and the transaction is not kept; through a writable
 * map the same write would be a SIGBUS. That error is STOR_ERR_FULL, as a full map is (the callers answer 503, and
 * stor_env.c alarms once per episode); full_cause() tells the two apart. The lock file is the one thing LMDB
 * writes through a shared map, each reader's slot in it: LMDB makes it with ftruncate, so its pages past the first
 * (which holds 62 of the 256 slots) have no blocks, and a reader taking a slot on such a page while the filesystem
 * is full is killed by SIGBUS (seen on a full tmpfs with 200 readers at once). open() gives the whole file its
 * blocks (fallocate) once LMDB has sized it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <lmdb.h>

#include "stor_backend.h"

#define DEFAULT_MAP_SIZE ((size_t)1 << 30)
#define DEFAULT_READERS 256u
#define NEARLY_FULL ((uint64_t)1 << 20) /* an EIO with less room than this on the filesystem is a full disk */
#define MAX_DBS 32

struct stor_bk_env {
    MDB_env *mdb;
    size_t n;
    MDB_dbi dbi[MAX_DBS];
    int full_cause; /* STOR_FULL_*: what the last write refused with STOR_ERR_FULL met (atomic) */
    int lock_fd;    /* reserve_lock_file's descriptor of lock.mdb, closed only after mdb_env_close (-1: none) */
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

/* The filesystem holding the map has less than NEARLY_FULL bytes left for this process (f_bavail: not the blocks
 * reserved for root, which a service running as its own user cannot use). */
static int disk_nearly_full(MDB_env *mdb)
{
    struct statvfs sv;
    int fd;

    if (mdb_env_get_fd(mdb, &fd) != 0 || fstatvfs(fd, &sv) != 0)
        return 0;
    return (uint64_t)sv.f_bavail * sv.f_frsize < NEARLY_FULL;
}

/* The error of a call that may write pages (put, del, commit). A full disk is ENOSPC or EDQUOT, or EIO: LMDB's page
 * flush returns EIO for a short write, which is what a filesystem's last free blocks give a write larger than them;
 * an EIO with the filesystem (nearly) full is taken for a full disk, any other for an I/O failure. */
static int lmdb_werr(MDB_env *mdb, int rc)
{
    stor_bk_env_t *e = mdb_env_get_userctx(mdb);
    int disk = rc == ENOSPC || rc == EDQUOT || (rc == EIO && disk_nearly_full(mdb));

    if (rc != MDB_MAP_FULL && !disk)
        return lmdb_err(rc);
    if (e != NULL)
        __atomic_store_n(&e->full_cause, disk ? STOR_FULL_DISK : STOR_FULL_MAP, __ATOMIC_RELAXED);
    return STOR_ERR_FULL;
}

/* Give the lock file's every page its blocks (see the top of the file), with fallocate: it never writes, so the
 * slots other processes use are left as they are (glibc's posix_fallocate writes zeros where the filesystem cannot
 * allocate). A filesystem that cannot (EOPNOTSUPP: some network filesystems) keeps LMDB's sparse file; a disk
 * without room for it is refused now (STOR_ERR_FULL), not at the first reader that needs a slot there.
 * The descriptor is kept in *fd until the environment is closed: closing any descriptor of a file drops every fcntl
 * lock the process holds on it, LMDB's shared lock on lock.mdb among them, and the next process to open the
 * environment then takes it for unused and initialises the lock table again under the live ones' feet (its
 * mutexes and reader slots: seen as csc-admin crashing in mdb_txn_commit's mutex unlock while csc-sam wrote). */
static int reserve_lock_file(const char *dir, int *fd)
{
    char path[PATH_MAX];
    struct stat st;
    int rc = 0;

    *fd = -1;
    if (snprintf(path, sizeof(path), "%s/lock.mdb", dir) >= (int)sizeof(path))
        return STOR_ERR_INVAL;
    if ((*fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
        return STOR_ERR_IO;
    if (fstat(*fd, &st) != 0)
        rc = STOR_ERR_IO;
    else if (st.st_size > 0 && fallocate(*fd, 0, 0, st.st_size) != 0)
        rc = errno == EOPNOTSUPP ? 0 : errno == ENOSPC || errno == EDQUOT ? STOR_ERR_FULL : STOR_ERR_IO;
    return rc;
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
            return lmdb_werr(e->mdb, rc);
        }
    }
    return lmdb_werr(e->mdb, mdb_txn_commit(txn));
}

static int lmdb_open_env(stor_bk_env_t *e, const stor_config_t *cfg, const stor_table_t *tables, size_t n)
{
    int rc, dead = 0;

    if ((rc = mdb_env_create(&e->mdb)) != 0)
        return lmdb_err(rc);
    if ((rc = mdb_env_set_userctx(e->mdb, e)) != 0)
        return lmdb_err(rc);
    if ((rc = mdb_env_set_mapsize(e->mdb, cfg->map_size ? cfg->map_size : DEFAULT_MAP_SIZE)) != 0 ||
        (rc = mdb_env_set_maxreaders(e->mdb, cfg->max_readers ? cfg->max_readers : DEFAULT_READERS)) != 0 ||
        (rc = mdb_env_set_maxdbs(e->mdb, MAX_DBS)) != 0)
        return lmdb_err(rc);
    /* MDB_NOTLS: read txns are not tied to a thread, so pools and nested stor_read() work. */
    if ((rc = mdb_env_open(e->mdb, cfg->location, MDB_NOTLS, 0600)) != 0)
        return lmdb_err(rc);
    if ((rc = reserve_lock_file(cfg->location, &e->lock_fd)) != 0)
        return rc;
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
    e->lock_fd = -1;
    if ((rc = lmdb_open_env(e, cfg, tables, n)) != 0) {
        if (e->mdb != NULL)
            mdb_env_close(e->mdb);
        if (e->lock_fd >= 0)
            close(e->lock_fd);
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
    if (e->lock_fd >= 0) /* after LMDB let go of its locks (reserve_lock_file) */
        close(e->lock_fd);
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
    MDB_txn *txn = TXN(t);
    MDB_env *mdb = mdb_txn_env(txn); /* before the commit frees txn */

    return lmdb_werr(mdb, mdb_txn_commit(txn));
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
        return lmdb_werr(e->mdb, rc);
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
    return lmdb_werr(e->mdb, mdb_del(TXN(t), e->dbi[db], &mk, v != NULL ? &mv : NULL));
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
    return lmdb_werr(mdb_txn_env(mdb_cursor_txn(CUR(c))), mdb_cursor_del(CUR(c), 0));
}

static void lmdb_cursor_close(stor_bk_cur_t *c)
{
    mdb_cursor_close(CUR(c));
}

static int lmdb_full_cause(stor_bk_env_t *e)
{
    return __atomic_load_n(&e->full_cause, __ATOMIC_RELAXED);
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
    .prefetch = NULL, /* a get is a lookup in the mapped file: nothing to save */
    .put = lmdb_put,
    .del = lmdb_del,
    .count = lmdb_count,
    .cursor_open = lmdb_cursor_open,
    .cursor_get = lmdb_cursor_get,
    .cursor_del = lmdb_cursor_del,
    .cursor_close = lmdb_cursor_close,
    .capacity = lmdb_capacity,
    .full_cause = lmdb_full_cause,
    .used = lmdb_used,
    .schema_version = NULL,
    .try_lock = lmdb_try_lock,
    .round_trips = NULL,
    .statements = NULL,
    .backup = lmdb_backup,
};
