/* test_stor_scan.c - stor_audit_scan(): every stored audit record handed over as found, judged on its bytes. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "test_stor.h"

static int append3(stor_txn_t *t, void *arg)
{
    static const uint8_t dig[2 * 32] = { 1, 2, 3 };
    int rc;

    (void)arg;
    for (uint32_t i = 0; i < 3; i++) {
        stor_audit_t a;

        memset(&a, 0, sizeof(a));
        a.event = STOR_EV_SIGN;
        TST_SET(a.user, "alice");
        TST_SET(a.detail, "first detail");
        a.digest_len = 32;
        a.n_digests = i == 1 ? 2 : 0;
        a.digests = i == 1 ? dig : NULL;
        if ((rc = stor_txn_audit_append(t, &a)) != 0)
            return rc;
    }
    return 0;
}

#define SEEN_MAX 8
typedef struct seen {
    size_t n;
    stor_audit_raw_t r[SEEN_MAX];
    int stop_at; /* return 7 from the callback at this count (0 = never) */
} seen_t;

static int collect(const stor_audit_raw_t *r, void *arg)
{
    seen_t *s = arg;

    ck_assert_uint_lt(s->n, SEEN_MAX);
    s->r[s->n] = *r;
    s->r[s->n].rec.digests = NULL; /* points into the map, valid only during the call */
    s->n++;
    return s->stop_at != 0 && (size_t)s->stop_at == s->n ? 7 : 0;
}

static seen_t *scan(stor_audit_tip_t *tip, int want_rc)
{
    seen_t *s = calloc(1, sizeof(*s));

    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(stor_audit_scan(tst_env, collect, s, tip), want_rc);
    return s;
}

/* Raw edits of the tables, as an attacker with file access would make them. */
typedef struct edit {
    int db;
    uint8_t key[16];
    size_t klen;
    uint8_t *val; /* NULL = delete */
    size_t vlen;
} edit_t;

static int edit_fn(stor_txn_t *t, void *arg)
{
    edit_t *e = arg;
    stor_val_t k = STOR_VAL(e->key, e->klen), v = STOR_VAL(e->val, e->vlen);

    if (e->val == NULL)
        return stor_kv_del(t, e->db, &k, NULL);
    return stor_kv_put(t, e->db, &k, &v, 0);
}

typedef struct fetch {
    uint8_t key[8];
    uint8_t *val;
    size_t vlen;
} fetch_t;

static int fetch_fn(stor_txn_t *t, void *arg)
{
    fetch_t *f = arg;
    stor_val_t k = STOR_VAL(f->key, 8), v;
    int rc = stor_kv_get(t, STOR_DB_AUDIT, &k, &v);

    if (rc != 0)
        return rc;
    f->val = malloc(v.len + 16);
    ck_assert_ptr_nonnull(f->val);
    memcpy(f->val, v.data, v.len);
    f->vlen = v.len;
    return 0;
}

static void seq_key(uint8_t key[8], uint64_t seq)
{
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(seq >> (8 * (7 - i)));
}

/* Record seq's stored value, to be edited and put back (the caller frees ->val). */
static fetch_t get_raw(uint64_t seq)
{
    fetch_t f = { .val = NULL };

    seq_key(f.key, seq);
    ck_assert_int_eq(stor_read(tst_env, fetch_fn, &f), 0);
    return f;
}

static void put_raw(uint64_t seq, uint8_t *val, size_t vlen)
{
    edit_t e = { .db = STOR_DB_AUDIT, .klen = 8, .val = val, .vlen = vlen };

    seq_key(e.key, seq);
    ck_assert_int_eq(stor_write(tst_env, edit_fn, &e), 0);
}

START_TEST(t_scan_empty)
{
    stor_audit_tip_t tip;
    seen_t *s = scan(&tip, 0);

    ck_assert_uint_eq(s->n, 0);
    ck_assert_int_eq(tip.status, STOR_ERR_NOTFOUND);
    ck_assert_uint_eq(tip.seq, 0);
    free(s);
    ck_assert_int_eq(stor_audit_scan(tst_env, NULL, NULL, &tip), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_audit_scan(tst_env, collect, NULL, NULL), STOR_ERR_INVAL);
}
END_TEST

START_TEST(t_scan_intact)
{
    stor_audit_tip_t tip;
    seen_t *s;
    uint8_t zero[32] = { 0 };

    ck_assert_int_eq(stor_write(tst_env, append3, NULL), 0);
    s = scan(&tip, 0);
    ck_assert_uint_eq(s->n, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_uint_eq(s->r[i].key_seq, i + 1);
        ck_assert_int_eq(s->r[i].key_ok, 1);
        ck_assert_int_eq(s->r[i].status, 0);
        ck_assert_int_eq(s->r[i].canonical, 1);
        ck_assert_uint_eq(s->r[i].rec.seq, i + 1);
        ck_assert_mem_eq(s->r[i].computed, s->r[i].rec.hash, 32);
        ck_assert_mem_eq(s->r[i].rec.prev_hash, i == 0 ? zero : s->r[i - 1].rec.hash, 32);
    }
    ck_assert_uint_eq(s->r[1].rec.n_digests, 2);
    ck_assert_int_eq(tip.status, 0);
    ck_assert_uint_eq(tip.seq, 3);
    ck_assert_mem_eq(tip.hash, s->r[2].rec.hash, 32);
    free(s);

    /* the callback's value stops the walk */
    s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    s->stop_at = 2;
    ck_assert_int_eq(stor_audit_scan(tst_env, collect, s, &tip), 7);
    ck_assert_uint_eq(s->n, 2);
    free(s);
}
END_TEST

START_TEST(t_scan_altered_field)
{
    stor_audit_tip_t tip;
    fetch_t f;
    seen_t *s;
    uint8_t *p;

    ck_assert_int_eq(stor_write(tst_env, append3, NULL), 0);
    f = get_raw(2);
    p = memmem(f.val, f.vlen, "first", 5);
    ck_assert_ptr_nonnull(p);
    p[0] = 'F';
    put_raw(2, f.val, f.vlen);
    s = scan(&tip, 0);
    ck_assert_uint_eq(s->n, 3);
    ck_assert_int_eq(s->r[1].status, 0);
    ck_assert_int_eq(s->r[1].canonical, 1);
    ck_assert_str_eq(s->r[1].rec.detail, "First detail");
    ck_assert_mem_ne(s->r[1].computed, s->r[1].rec.hash, 32);
    ck_assert_mem_eq(s->r[2].computed, s->r[2].rec.hash, 32);
    free(s);
    free(f.val);
}
END_TEST

START_TEST(t_scan_not_canonical)
{
    stor_audit_tip_t tip;
    fetch_t f;
    seen_t *s;
    static const uint8_t unknown_tag[5] = { 99, 0, 0, 0, 0 }; /* tag 99, empty: skipped by the decoder */

    ck_assert_int_eq(stor_write(tst_env, append3, NULL), 0);
    f = get_raw(3);
    memcpy(f.val + f.vlen, unknown_tag, sizeof(unknown_tag));
    put_raw(3, f.val, f.vlen + sizeof(unknown_tag));
    s = scan(&tip, 0);
    ck_assert_uint_eq(s->n, 3);
    ck_assert_int_eq(s->r[2].status, 0);
    ck_assert_mem_eq(s->r[2].computed, s->r[2].rec.hash, 32); /* the hashed fields did not change */
    ck_assert_int_eq(s->r[2].canonical, 0);
    ck_assert_int_eq(s->r[1].canonical, 1);
    free(s);
    free(f.val);

    /* same length, same values, fields in another order */
    f = get_raw(2);
    ck_assert_uint_eq(f.val[2 + 2 * 13], 3); /* seq (8 bytes) and time (8 bytes) come first, then event, result */
    ck_assert_uint_eq(f.val[2 + 2 * 13 + 9], 4);
    {
        uint8_t tmp[9], *a = f.val + 2 + 2 * 13;

        memcpy(tmp, a, 9);
        memmove(a, a + 9, 9);
        memcpy(a + 9, tmp, 9);
    }
    put_raw(2, f.val, f.vlen);
    s = scan(&tip, 0);
    ck_assert_int_eq(s->r[1].status, 0);
    ck_assert_mem_eq(s->r[1].computed, s->r[1].rec.hash, 32);
    ck_assert_int_eq(s->r[1].canonical, 0);
    free(s);
    free(f.val);
}
END_TEST

START_TEST(t_scan_unreadable_and_bad_key)
{
    stor_audit_tip_t tip;
    fetch_t f;
    seen_t *s;
    edit_t e = { .db = STOR_DB_AUDIT, .key = { 0, 0, 0, 9 }, .klen = 4 };
    edit_t h = { .db = STOR_DB_META, .key = "audit_head", .klen = 10 };
    uint8_t junk[3] = { 6, 1, 1 }; /* a head record cut inside its first field header */

    ck_assert_int_eq(stor_write(tst_env, append3, NULL), 0);
    f = get_raw(1);
    f.val[1] ^= 0x40; /* codec version */
    put_raw(1, f.val, f.vlen);
    e.val = f.val;
    e.vlen = f.vlen;
    ck_assert_int_eq(stor_write(tst_env, edit_fn, &e), 0); /* a key that is no seq */
    h.val = junk;
    h.vlen = sizeof(junk);
    ck_assert_int_eq(stor_write(tst_env, edit_fn, &h), 0);
    s = scan(&tip, 0);
    ck_assert_uint_eq(s->n, 4);
    ck_assert_int_eq(s->r[0].key_ok, 1);
    ck_assert_uint_eq(s->r[0].key_seq, 1);
    ck_assert_int_eq(s->r[0].status, STOR_ERR_CORRUPT);
    ck_assert_uint_eq(s->r[0].rec.seq, 0);
    ck_assert_int_eq(s->r[1].status, 0); /* the walk goes on past an unreadable record */
    ck_assert_uint_eq(s->r[2].key_seq, 3);
    ck_assert_int_eq(s->r[3].key_ok, 0); /* 00 00 00 09 sorts after 00 00 00 00 ...: last */
    ck_assert_uint_eq(s->r[3].key_seq, 0);
    ck_assert_int_eq(tip.status, STOR_ERR_CORRUPT);
    free(s);

    /* no head at all */
    h.val = NULL;
    ck_assert_int_eq(stor_write(tst_env, edit_fn, &h), 0);
    s = scan(&tip, 0);
    ck_assert_int_eq(tip.status, STOR_ERR_NOTFOUND);
    free(s);
    free(f.val);
}
END_TEST

Suite *tst_scan_suite(void)
{
    Suite *s = suite_create("audit_scan");
    TCase *tc = tcase_create("scan");

    tcase_add_checked_fixture(tc, tst_env_setup, tst_env_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, t_scan_empty);
    tcase_add_test(tc, t_scan_intact);
    tcase_add_test(tc, t_scan_altered_field);
    tcase_add_test(tc, t_scan_not_canonical);
    tcase_add_test(tc, t_scan_unreadable_and_bad_key);
    suite_add_tcase(s, tc);
    return s;
}
