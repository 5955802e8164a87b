/*
 * test_stor_backend.c - the backend interface itself (stor_backend.h): a table of cases, each run against every
 * backend of targets[] through the vtable only (stor_backend_find by name), so another backend is tested by adding
 * a row there. Each case gets a fresh, empty location.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_stor.h"

/* Tables of every case: a plain one, a dupsort one, a dupsort one with values of one length. */
enum { T_PLAIN, T_DUPS, T_FIXED, T_N };
static const stor_table_t tables[T_N] = {
    { "plain", 0 }, { "dups", STOR_TABLE_DUPSORT }, { "fixed", STOR_TABLE_DUPSORT | STOR_TABLE_DUPFIXED },
};

/* ---- the backends under test ------------------------------------------------- */

typedef struct target {
    const char *name;                   /* stor_backend_find() */
    void (*fresh)(char *loc, size_t n); /* an empty location for stor_config_t.location */
} target_t;

static void lmdb_fresh(char *loc, size_t n)
{
    tst_set(loc, n, tst_path());
}

/* The cluster of the run (test_stor_main.c, TST_PG_ARG), as the schema's owner: the test tables are dropped, so
 * that open() creates them again. */
static void pg_fresh(char *loc, size_t n)
{
    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.plain, csc.dups, csc.fixed"), 0);
    tst_set(loc, n, tst_pg_admin);
}

static const target_t targets[] = {
    { "lmdb", lmdb_fresh },
    { "postgresql", pg_fresh }, /* only with a cluster (tst_pg_admin) */
};
/* The backends under test in this run. */
#define N_TARGETS (tst_pg_admin != NULL ? 2u : 1u)

typedef struct bk {
    const stor_backend_t *be;
    stor_bk_env_t *e;
    stor_config_t cfg;
    char loc[PATH_MAX];
} bk_t;

static void bk_open(bk_t *b)
{
    int rc = b->be->open(&b->cfg, tables, T_N, &b->e);

    ck_assert_msg(rc == 0, "%s open(%s): %s", b->be->name, b->loc, stor_strerror(rc));
}

static stor_bk_txn_t *begin(bk_t *b, stor_bk_txn_t *parent, stor_bk_mode_t mode)
{
    stor_bk_txn_t *t = NULL;

    ck_assert_int_eq(b->be->txn_begin(b->e, parent, mode, &t), 0);
    ck_assert_ptr_nonnull(t);
    return t;
}

static int put(bk_t *b, stor_bk_txn_t *t, int db, const char *k, const char *v, unsigned flags)
{
    stor_val_t key = STOR_VAL(k, strlen(k)), val = STOR_VAL(v, strlen(v));

    return b->be->put(b->e, t, db, &key, &val, flags);
}

static int del(bk_t *b, stor_bk_txn_t *t, int db, const char *k, const char *v)
{
    stor_val_t key = STOR_VAL(k, strlen(k)), val = STOR_VAL(v, v != NULL ? strlen(v) : 0);

    return b->be->del(b->e, t, db, &key, v != NULL ? &val : NULL);
}

/* The value of k as a string ("" if not found, then *rc says so). */
static const char *get(bk_t *b, stor_bk_txn_t *t, int db, const char *k, int *rc)
{
    static char buf[256];
    stor_val_t key = STOR_VAL(k, strlen(k)), val;

    buf[0] = '\0';
    *rc = b->be->get(b->e, t, db, &key, &val);
    if (*rc == 0) {
        ck_assert_uint_lt(val.len, sizeof(buf));
        memcpy(buf, val.data, val.len);
        buf[val.len] = '\0';
    }
    return buf;
}

static void expect(bk_t *b, stor_bk_txn_t *t, int db, const char *k, const char *want)
{
    int rc;
    const char *got = get(b, t, db, k, &rc);

    if (want == NULL) {
        ck_assert_msg(rc == STOR_ERR_NOTFOUND, "%s: \"%s\" found (\"%s\", rc %d)", b->be->name, k, got, rc);
        return;
    }
    ck_assert_msg(rc == 0, "%s: \"%s\" not found: %s", b->be->name, k, stor_strerror(rc));
    ck_assert_str_eq(got, want);
}

static size_t count(bk_t *b, stor_bk_txn_t *t, int db)
{
    size_t n = 99;

    ck_assert_int_eq(b->be->count(b->e, t, db, &n), 0);
    return n;
}

/* The rows a cursor visits from op0 (with key k) on with op, as "key=value," (keys and values printable). */
static void rows(bk_t *b, stor_bk_txn_t *t, int db, stor_cur_op_t op0, const char *k, stor_cur_op_t op, char *out,
                 size_t n)
{
    stor_bk_cur_t *c = NULL;
    stor_val_t key = STOR_VAL(k, k != NULL ? strlen(k) : 0), val;
    size_t len = 0;
    int rc;

    out[0] = '\0';
    ck_assert_int_eq(b->be->cursor_open(b->e, t, db, &c), 0);
    for (rc = b->be->cursor_get(c, op0, &key, &val); rc == 0; rc = b->be->cursor_get(c, op, &key, &val)) {
        int w = snprintf(out + len, n - len, "%.*s=%.*s,", (int)key.len, (const char *)key.data, (int)val.len,
                         (const char *)val.data);
        ck_assert(w > 0 && (size_t)w < n - len);
        len += (size_t)w;
    }
    ck_assert_int_eq(rc, STOR_ERR_NOTFOUND);
    b->be->cursor_close(c);
}

#define ROWS(b, t, db, op0, k, op, want)                                                                              \
    do {                                                                                                              \
        char got_[512];                                                                                               \
        rows(b, t, db, op0, k, op, got_, sizeof(got_));                                                               \
        ck_assert_str_eq(got_, want);                                                                                 \
    } while (0)

/* ---- the cases --------------------------------------------------------------- */

/* put, get, replace; a miss leaves the txn usable; committed data is seen by a read txn and after a reopen. */
static void c_put_get(bk_t *b)
{
    stor_bk_txn_t *t = begin(b, NULL, STOR_BK_WRITE);
    int rc;

    ck_assert_int_eq(put(b, t, T_PLAIN, "k1", "one", 0), 0);
    ck_assert_int_eq(put(b, t, T_PLAIN, "k2", "two", 0), 0);
    expect(b, t, T_PLAIN, "nope", NULL);
    ck_assert_int_eq(put(b, t, T_PLAIN, "k1", "uno", 0), 0); /* replaced */
    expect(b, t, T_PLAIN, "k1", "uno");
    expect(b, t, T_DUPS, "k1", NULL); /* tables are apart */
    ck_assert_int_eq(b->be->txn_commit(t), 0);
    t = begin(b, NULL, STOR_BK_READ);
    expect(b, t, T_PLAIN, "k1", "uno");
    expect(b, t, T_PLAIN, "k2", "two");
    ck_assert_uint_eq(count(b, t, T_PLAIN), 2);
    b->be->txn_abort(t);
    b->be->close(b->e);
    bk_open(b);
    t = begin(b, NULL, STOR_BK_READ);
    ck_assert_str_eq(get(b, t, T_PLAIN, "k1", &rc), "uno");
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(b->be->txn_commit(t), 0); /* committing a read txn ends it */
}

/* NOOVERWRITE refuses an existing key with EXISTS, keeps its value and leaves the txn usable. */
static void c_nooverwrite(bk_t *b)
{
    stor_bk_txn_t *t = begin(b, NULL, STOR_BK_WRITE);

    ck_assert_int_eq(put(b, t, T_PLAIN, "a", "first", STOR_PUT_NOOVERWRITE), 0);
    ck_assert_int_eq(put(b, t, T_PLAIN, "a", "second", STOR_PUT_NOOVERWRITE), STOR_ERR_EXISTS);
    expect(b, t, T_PLAIN, "a", "first");
    ck_assert_int_eq(put(b, t, T_PLAIN, "b", "more", 0), 0);
    ck_assert_int_eq(b->be->txn_commit(t), 0);
    t = begin(b, NULL, STOR_BK_READ);
    expect(b, t, T_PLAIN, "a", "first");
    expect(b, t, T_PLAIN, "b", "more");
    b->be->txn_abort(t);
}

/* APPEND takes a key after the last one and refuses any other (EXISTS, txn usable). */
static void c_append(bk_t *b)
{
    stor_bk_txn_t *t = begin(b, NULL, STOR_BK_WRITE);

    ck_assert_int_eq(put(b, t, T_PLAIN, "m", "1", STOR_PUT_APPEND), 0);
    ck_assert_int_eq(put(b, t, T_PLAIN, "n", "2", STOR_PUT_APPEND | STOR_PUT_NOOVERWRITE), 0);
    ck_assert_int_eq(put(b, t, T_PLAIN, "a", "3", STOR_PUT_APPEND), STOR_ERR_EXISTS);
    ck_assert_int_eq(put(b, t, T_PLAIN, "n", "4", STOR_PUT_APPEND | STOR_PUT_NOOVERWRITE), STOR_ERR_EXISTS);
    ck_assert_int_eq(put(b, t, T_PLAIN, "o", "5", STOR_PUT_APPEND), 0);
    ck_assert_int_eq(b->be->txn_commit(t), 0);
    t = begin(b, NULL, STOR_BK_READ);
    ROWS(b, t, T_PLAIN, STOR_CUR_FIRST, NULL, STOR_CUR_NEXT, "m=1,n=2,o=5,");
    b->be->txn_abort(t);
}

/* RESERVE hands out room for len bytes that the caller fills. */
static void c_reserve(bk_t *b)
{
    stor_bk_txn_t *t = begin(b, NULL, STOR_BK_WRITE);
    stor_val_t k = STOR_VAL("r", 1), v = { 5, NULL };

    ck_assert_int_eq(b->be->put(b->e, t, T_PLAIN, &k, &v, STOR_PUT_RESERVE), 0);
    ck_assert_ptr_nonnull(v.data);
    memcpy(v.data, "hello", 5);
    ck_assert_int_eq(b->be->txn_commit(t), 0);
    t = begin(b, NULL, STOR_BK_READ);
    expect(b, t, T_PLAIN, "r", "hello");
    b->be->txn_abort(t);
}

/* del of a key, of a missing key (NOTFOUND, txn usable); an aborted write leaves nothing. */
static void c_del_abort(bk_t *b)
{
    stor_bk_txn_t *t = begin(b, NULL, STOR_BK_WRITE);

    ck_assert_int_eq(put(b, t, T_PLAIN, "x", "1", 0), 0);
    ck_assert_int_eq(put(b, t, T_PLAIN, "y", "2", 0), 0);
    ck_assert_int_eq(b->be->txn_commit(t), 0);
    t = begin(b, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(del(b, t, T_PLAIN, "x", NULL), 0);
    ck_assert_int_eq(del(b, t, T_PLAIN, "x", NULL), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(put(b, t, T_PLAIN, "z", "3", 0), 0);
    expect(b, t, T_PLAIN, "x", NULL);
    b->be->txn_abort(t);
    t = begin(b, NULL, STOR_BK_WRITE);
    expect(b, t, T_PLAIN, "x", "1");
    expect(b, t, T_PLAIN, "z", NULL);
    ck_assert_int_eq(del(b, t, T_PLAIN, "x", NULL), 0);
    ck_assert_int_eq(b->be->txn_commit(t), 0);
    t = begin(b, NULL, STOR_BK_READ);
    expect(b, t, T_PLAIN, "x", NULL);
    expect(b, t, T_PLAIN, "y", "2");
    ck_assert_uint_eq(count(b, t, T_PLAIN), 1);
    b->be->txn_abort(t);
}

/* A dupsort table: a set of values per key in value order; NODUPDATA; del of one value and of the key. */
static void c_dups(bk_t *b)
{
    stor_bk_txn_t *t = begin(b, NULL, STOR_BK_WRITE);

    for (int db = T_DUPS; db <= T_FIXED; db++) {
        ck_assert_int_eq(put(b, t, db, "k", "bb", 0), 0);
        ck_assert_int_eq(put(b, t, db, "k", "cc", 0), 0);
        ck_assert_int_eq(put(b, t, db, "k", "aa", 0), 0);
        ck_assert_int_eq(put(b, t, db, "j", "zz", 0), 0);
        ck_assert_int_eq(put(b, t, db, "l", "00", 0), 0);
        ck_assert_int_eq(put(b, t, db, "k", "aa", STOR_PUT_NODUPDATA), STOR_ERR_EXISTS);
        ck_assert_int_eq(put(b, t, db, "k", "aa", 0), 0); /* the pair exists: no second copy */
        ck_assert_uint_eq(count(b, t, db), 5);
        expect(b, t, db, "k", "aa"); /* the first value */
        ROWS(b, t, db, STOR_CUR_SET_KEY, "k", STOR_CUR_NEXT_DUP, "k=aa,k=bb,k=cc,");
        ROWS(b, t, db, STOR_CUR_FIRST, NULL, STOR_CUR_NEXT, "j=zz,k=aa,k=bb,k=cc,l=00,");
        ck_assert_int_eq(del(b, t, db, "k", "bb"), 0);
        ck_assert_int_eq(del(b, t, db, "k", "bb"), STOR_ERR_NOTFOUND);
    }
    ck_assert_int_eq(b->be->txn_commit(t), 0);
    t = begin(b, NULL, STOR_BK_WRITE);
    for (int db = T_DUPS; db <= T_FIXED; db++) {
        ROWS(b, t, db, STOR_CUR_SET_KEY, "k", STOR_CUR_NEXT_DUP, "k=aa,k=cc,");
        ROWS(b, t, db, STOR_CUR_SET_KEY, "nope", STOR_CUR_NEXT_DUP, "");
        ck_assert_int_eq(del(b, t, db, "k", NULL), 0); /* every value of the key */
        expect(b, t, db, "k", NULL);
        ck_assert_uint_eq(count(b, t, db), 2);
    }
    ck_assert_int_eq(b->be->txn_commit(t), 0);
}

/* Keys sort by memcmp, a prefix first; SET_RANGE finds the first key >= k. */
static void c_order(bk_t *b)
{
    static const char *keys[] = { "b", "ab", "a", "a0", "B", "~", "aa" };
    stor_bk_txn_t *t = begin(b, NULL, STOR_BK_WRITE);

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        ck_assert_int_eq(put(b, t, T_PLAIN, keys[i], keys[i], 0), 0);
    ck_assert_int_eq(b->be->txn_commit(t), 0);
    t = begin(b, NULL, STOR_BK_READ);
    ROWS(b, t, T_PLAIN, STOR_CUR_FIRST, NULL, STOR_CUR_NEXT, "B=B,a=a,a0=a0,aa=aa,ab=ab,b=b,~=~,");
    ROWS(b, t, T_PLAIN, STOR_CUR_SET_RANGE, "a", STOR_CUR_NEXT, "a=a,a0=a0,aa=aa,ab=ab,b=b,~=~,");
    ROWS(b, t, T_PLAIN, STOR_CUR_SET_RANGE, "a1", STOR_CUR_NEXT, "aa=aa,ab=ab,b=b,~=~,");
    ROWS(b, t, T_PLAIN, STOR_CUR_SET_RANGE, "ac", STOR_CUR_NEXT, "b=b,~=~,");
    ROWS(b, t, T_PLAIN, STOR_CUR_SET_RANGE, "~~", STOR_CUR_NEXT, "");
    ROWS(b, t, T_PLAIN, STOR_CUR_SET_KEY, "ab", STOR_CUR_NEXT_DUP, "ab=ab,");
    ROWS(b, t, T_DUPS, STOR_CUR_FIRST, NULL, STOR_CUR_NEXT, ""); /* an empty table */
    b->be->txn_abort(t);
}

/* Deleting the cursor's row while walking: the walk goes on with the row after it. */
static void c_cursor_del(bk_t *b)
{
    static const char *keys[] = { "1", "2", "3", "4", "5" };
    stor_bk_txn_t *t = begin(b, NULL, STOR_BK_WRITE);
    stor_bk_cur_t *c = NULL;
    stor_val_t k, v;
    char seen[16] = "";
    int rc;

    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(put(b, t, T_PLAIN, keys[i], "v", 0), 0);
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(put(b, t, T_DUPS, "d", keys[i], 0), 0);
    ck_assert_int_eq(b->be->cursor_open(b->e, t, T_PLAIN, &c), 0);
    for (rc = b->be->cursor_get(c, STOR_CUR_FIRST, &k, &v); rc == 0; rc = b->be->cursor_get(c, STOR_CUR_NEXT, &k, &v)) {
        ck_assert_uint_eq(k.len, 1);
        strncat(seen, k.data, 1);
        if ((((const char *)k.data)[0] - '0') % 2 == 0)
            ck_assert_int_eq(b->be->cursor_del(c), 0);
    }
    ck_assert_int_eq(rc, STOR_ERR_NOTFOUND);
    b->be->cursor_close(c);
    ck_assert_str_eq(seen, "12345");
    /* the same over the values of one key of a dupsort table */
    seen[0] = '\0';
    k = STOR_VAL("d", 1);
    ck_assert_int_eq(b->be->cursor_open(b->e, t, T_DUPS, &c), 0);
    for (rc = b->be->cursor_get(c, STOR_CUR_SET_KEY, &k, &v); rc == 0;
         rc = b->be->cursor_get(c, STOR_CUR_NEXT_DUP, &k, &v)) {
        strncat(seen, v.data, 1);
        if ((((const char *)v.data)[0] - '0') % 2 == 1)
            ck_assert_int_eq(b->be->cursor_del(c), 0);
    }
    ck_assert_int_eq(rc, STOR_ERR_NOTFOUND);
    b->be->cursor_close(c);
    ck_assert_str_eq(seen, "12345");
    ck_assert_int_eq(b->be->txn_commit(t), 0);
    t = begin(b, NULL, STOR_BK_READ);
    ROWS(b, t, T_PLAIN, STOR_CUR_FIRST, NULL, STOR_CUR_NEXT, "1=v,3=v,5=v,");
    ROWS(b, t, T_DUPS, STOR_CUR_SET_KEY, "d", STOR_CUR_NEXT_DUP, "d=2,d=4,");
    ck_assert_uint_eq(count(b, t, T_PLAIN), 3);
    b->be->txn_abort(t);
}

/* A nested txn: its abort drops only its own changes, its commit hands them to the parent. */
static void c_nested(bk_t *b)
{
    stor_bk_txn_t *p = begin(b, NULL, STOR_BK_WRITE), *c;

    ck_assert_int_eq(put(b, p, T_PLAIN, "x", "parent", 0), 0);
    c = begin(b, p, STOR_BK_WRITE);
    expect(b, c, T_PLAIN, "x", "parent"); /* the child sees the parent's writes */
    ck_assert_int_eq(put(b, c, T_PLAIN, "y", "child", 0), 0);
    ck_assert_int_eq(del(b, c, T_PLAIN, "x", NULL), 0);
    ck_assert_int_eq(put(b, c, T_DUPS, "d", "1", 0), 0);
    b->be->txn_abort(c);
    expect(b, p, T_PLAIN, "x", "parent");
    expect(b, p, T_PLAIN, "y", NULL);
    expect(b, p, T_DUPS, "d", NULL);
    c = begin(b, p, STOR_BK_WRITE);
    ck_assert_int_eq(put(b, c, T_PLAIN, "z", "kept", 0), 0);
    ck_assert_int_eq(put(b, c, T_PLAIN, "x", "changed", 0), 0);
    ck_assert_int_eq(b->be->txn_commit(c), 0);
    expect(b, p, T_PLAIN, "z", "kept");
    c = begin(b, p, STOR_BK_WRITE); /* a failed job: refused, aborted; the batch goes on */
    ck_assert_int_eq(put(b, c, T_PLAIN, "z", "again", STOR_PUT_NOOVERWRITE), STOR_ERR_EXISTS);
    b->be->txn_abort(c);
    ck_assert_int_eq(b->be->txn_commit(p), 0);
    p = begin(b, NULL, STOR_BK_READ);
    ROWS(b, p, T_PLAIN, STOR_CUR_FIRST, NULL, STOR_CUR_NEXT, "x=changed,z=kept,");
    b->be->txn_abort(p);
    /* an aborted parent takes its committed children with it */
    p = begin(b, NULL, STOR_BK_WRITE);
    c = begin(b, p, STOR_BK_WRITE);
    ck_assert_int_eq(put(b, c, T_PLAIN, "w", "gone", 0), 0);
    ck_assert_int_eq(b->be->txn_commit(c), 0);
    b->be->txn_abort(p);
    p = begin(b, NULL, STOR_BK_READ);
    expect(b, p, T_PLAIN, "w", NULL);
    b->be->txn_abort(p);
}

/* Binary keys and values: NUL bytes, high bytes, a value of 0 bytes. */
static void c_binary(bk_t *b)
{
    const uint8_t k1[] = { 0x00, 0xff, 0x00 }, k2[] = { 0x00, 0xff }, k3[] = { 0x80 }, v1[] = { 0, 1, 2, 0 };
    stor_val_t k = STOR_VAL(k1, 3), v = STOR_VAL(v1, 4), e = { 0, NULL };
    stor_bk_txn_t *t = begin(b, NULL, STOR_BK_WRITE);
    stor_bk_cur_t *c = NULL;

    ck_assert_int_eq(b->be->put(b->e, t, T_PLAIN, &k, &v, 0), 0);
    k = STOR_VAL(k2, 2);
    ck_assert_int_eq(b->be->put(b->e, t, T_PLAIN, &k, &e, 0), 0);
    k = STOR_VAL(k3, 1);
    v = STOR_VAL(v1, 4);
    ck_assert_int_eq(b->be->put(b->e, t, T_PLAIN, &k, &v, 0), 0);
    ck_assert_int_eq(b->be->txn_commit(t), 0);
    t = begin(b, NULL, STOR_BK_READ);
    ck_assert_int_eq(b->be->cursor_open(b->e, t, T_PLAIN, &c), 0);
    ck_assert_int_eq(b->be->cursor_get(c, STOR_CUR_FIRST, &k, &v), 0);
    ck_assert(k.len == 2 && memcmp(k.data, k2, 2) == 0 && v.len == 0); /* the prefix first */
    ck_assert_int_eq(b->be->cursor_get(c, STOR_CUR_NEXT, &k, &v), 0);
    ck_assert(k.len == 3 && memcmp(k.data, k1, 3) == 0 && v.len == 4 && memcmp(v.data, v1, 4) == 0);
    ck_assert_int_eq(b->be->cursor_get(c, STOR_CUR_NEXT, &k, &v), 0);
    ck_assert(k.len == 1 && memcmp(k.data, k3, 1) == 0);
    ck_assert_int_eq(b->be->cursor_get(c, STOR_CUR_NEXT, &k, &v), STOR_ERR_NOTFOUND);
    b->be->cursor_close(c);
    b->be->txn_abort(t);
}

/* Read key k ahead in t (a backend without prefetch: nothing to do). */
static void ahead(bk_t *b, stor_bk_txn_t *t, int db, const char *k)
{
    stor_val_t key = STOR_VAL(k, strlen(k));

    if (b->be->prefetch != NULL)
        ck_assert_int_eq(b->be->prefetch(b->e, t, db, &key), 0);
}

/* A get of a row read ahead returns what a plain get does: a row, a missing one (NOTFOUND, txn usable), a dupsort
 * key's first value, more rows than a backend keeps pending, and in a write txn the txn's own later writes (a put,
 * a del, a nested txn's write rolled back). */
static void c_prefetch(bk_t *b)
{
    stor_bk_txn_t *t = begin(b, NULL, STOR_BK_WRITE), *c;
    char k[8], v[8];

    for (int i = 0; i < 12; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        snprintf(v, sizeof(v), "v%d", i);
        ck_assert_int_eq(put(b, t, T_PLAIN, k, v, 0), 0);
    }
    ck_assert_int_eq(put(b, t, T_DUPS, "d", "2", 0), 0);
    ck_assert_int_eq(put(b, t, T_DUPS, "d", "1", 0), 0);
    ck_assert_int_eq(b->be->txn_commit(t), 0);

    t = begin(b, NULL, STOR_BK_READ);
    ahead(b, t, T_PLAIN, "k03");
    ahead(b, t, T_PLAIN, "missing");
    ahead(b, t, T_DUPS, "d");
    ahead(b, t, T_PLAIN, "k03"); /* twice: one read */
    expect(b, t, T_PLAIN, "missing", NULL);
    expect(b, t, T_PLAIN, "k03", "v3");
    expect(b, t, T_DUPS, "d", "1");
    expect(b, t, T_PLAIN, "k03", "v3"); /* again, its answer taken: read as usual */
    b->be->txn_abort(t);

    t = begin(b, NULL, STOR_BK_READ); /* all twelve ahead, asked for in the other order */
    for (int i = 0; i < 12; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        ahead(b, t, T_PLAIN, k);
    }
    for (int i = 11; i >= 0; i--) {
        snprintf(k, sizeof(k), "k%02d", i);
        snprintf(v, sizeof(v), "v%d", i);
        expect(b, t, T_PLAIN, k, v);
    }
    ck_assert_int_eq(b->be->txn_commit(t), 0);

    t = begin(b, NULL, STOR_BK_WRITE);
    ahead(b, t, T_PLAIN, "k01");
    ahead(b, t, T_PLAIN, "k02");
    ahead(b, t, T_PLAIN, "new");
    ck_assert_int_eq(put(b, t, T_PLAIN, "k01", "w1", 0), 0);
    ck_assert_int_eq(del(b, t, T_PLAIN, "k02", NULL), 0);
    ck_assert_int_eq(put(b, t, T_PLAIN, "new", "n", 0), 0);
    expect(b, t, T_PLAIN, "k01", "w1");
    expect(b, t, T_PLAIN, "k02", NULL);
    expect(b, t, T_PLAIN, "new", "n");
    c = begin(b, t, STOR_BK_WRITE);
    ck_assert_int_eq(put(b, c, T_PLAIN, "k04", "c4", 0), 0);
    ahead(b, c, T_PLAIN, "k04");
    expect(b, c, T_PLAIN, "k04", "c4");
    ahead(b, c, T_PLAIN, "k05");
    ck_assert_int_eq(put(b, c, T_PLAIN, "k05", "c5", 0), 0);
    ahead(b, c, T_PLAIN, "k05");
    b->be->txn_abort(c);
    expect(b, t, T_PLAIN, "k05", "v5");
    expect(b, t, T_PLAIN, "k04", "v4");
    ahead(b, t, T_PLAIN, "gone");
    expect(b, t, T_PLAIN, "gone", NULL);
    ck_assert_int_eq(b->be->txn_commit(t), 0);

    t = begin(b, NULL, STOR_BK_READ);
    expect(b, t, T_PLAIN, "k01", "w1");
    expect(b, t, T_PLAIN, "k02", NULL);
    expect(b, t, T_PLAIN, "k05", "v5");
    ahead(b, t, T_PLAIN, "k06"); /* never asked for: dropped with the txn */
    b->be->txn_abort(t);
}

typedef void (*case_fn)(bk_t *b);
static const struct {
    const char *name;
    case_fn fn;
} cases[] = {
    { "put_get", c_put_get }, { "nooverwrite", c_nooverwrite }, { "append", c_append }, { "reserve", c_reserve },
    { "del_abort", c_del_abort }, { "dups", c_dups }, { "order", c_order },
    { "cursor_del", c_cursor_del }, { "nested", c_nested }, { "binary", c_binary }, { "prefetch", c_prefetch },
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* Loop index i: case i % N_CASES against backend i / N_CASES. */
START_TEST(t_backend_case)
{
    const target_t *tg = &targets[(size_t)_i / N_CASES];
    bk_t b;

    memset(&b, 0, sizeof(b));
    b.be = stor_backend_find(tg->name);
    ck_assert_msg(b.be != NULL, "no backend %s", tg->name);
    ck_assert_str_eq(b.be->name, tg->name);
    tg->fresh(b.loc, sizeof(b.loc));
    b.cfg.backend = tg->name;
    b.cfg.location = b.loc;
    bk_open(&b);
    cases[(size_t)_i % N_CASES].fn(&b);
    b.be->close(b.e);
}
END_TEST

/* Backends by name; stor_open refuses an unknown one. */
START_TEST(t_backend_names)
{
    stor_config_t cfg = { .backend = "nosuch", .location = tst_path() };
    stor_env_t *env = (stor_env_t *)&cfg;

    ck_assert_ptr_eq(stor_backend_find("lmdb"), &stor_backend_lmdb);
    ck_assert_ptr_eq(stor_backend_find(NULL), &stor_backend_lmdb);
    ck_assert_ptr_eq(stor_backend_find("postgresql"), &stor_backend_pg);
    ck_assert_ptr_null(stor_backend_find("nosuch"));
    ck_assert_int_eq(stor_backend_known("lmdb"), 1);
    ck_assert_int_eq(stor_backend_known(""), 0);
    ck_assert_int_eq(stor_backend_known("LMDB"), 0);
    ck_assert_int_eq(stor_backend_known("postgresql"), 1);
    ck_assert_str_eq(stor_backend_names(), "lmdb, postgresql");
    ck_assert_int_eq(stor_open(&cfg, &env), STOR_ERR_INVAL);
    ck_assert_ptr_null(env);
    cfg.backend = "lmdb";
    ck_assert_int_eq(stor_open(&cfg, &env), 0);
    stor_close(env);
}
END_TEST

Suite *tst_backend_suite(void)
{
    Suite *s = suite_create("backend");
    TCase *tc = tcase_create("vtable");

    tcase_add_loop_test(tc, t_backend_case, 0, (int)(N_CASES * N_TARGETS));
    tcase_add_test(tc, t_backend_names);
    suite_add_tcase(s, tc);
    return s;
}
