/* test_stor_account.c - what /account shows: the recent-activity records (codec round trip and bounds, newest first,
 * the bound of each table), restore requests (round trip, validation, walk by user, purge by expiry) and the
 * credential's backup fields. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stor_int.h"
#include "test_stor.h"

START_TEST(t_recent_codec)
{
    stor_recent_t r, back;
    uint8_t buf[4096];
    size_t len = 0;

    memset(&r, 0, sizeof(r));
    TST_SET(r.key, "alice");
    r.n = 3;
    for (unsigned i = 0; i < 3; i++) {
        r.time_ms[i] = -5 + (int64_t)i * 1700000000000LL;
        r.what[i] = i + 1;
        r.result[i] = i == 1 ? STOR_RES_DENIED : STOR_RES_OK;
        snprintf(r.client[i], sizeof(r.client[i]), "client-%u", i);
    }
    r.time_ms[5] = 99; /* past n: not stored */
    ck_assert_int_eq(stor_codec_size(STOR_REC_RECENT, &r, &len), 0);
    ck_assert_uint_le(len, sizeof(buf));
    ck_assert_int_eq(stor_codec_encode(STOR_REC_RECENT, &r, buf, len), 0);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_RECENT, buf, len, &back), 0);
    ck_assert_str_eq(back.key, "alice");
    ck_assert_uint_eq(back.n, 3);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert(back.time_ms[i] == r.time_ms[i]);
        ck_assert_uint_eq(back.what[i], i + 1);
        ck_assert_uint_eq(back.result[i], r.result[i]);
        ck_assert_str_eq(back.client[i], r.client[i]);
    }
    ck_assert(back.time_ms[5] == 0);

    /* Bounds: more entries than the arrays hold, or an unterminated client, are refused. */
    r.n = STOR_RECENT_MAX + 1;
    ck_assert_int_eq(stor_codec_size(STOR_REC_RECENT, &r, &len), STOR_ERR_INVAL);
    r.n = 3;
    memset(r.client[2], 'x', sizeof(r.client[2]));
    ck_assert_int_eq(stor_codec_size(STOR_REC_RECENT, &r, &len), STOR_ERR_INVAL);

    /* A stored count that does not match its arrays is corrupt: n says 4, the arrays hold 3. */
    memset(&back, 0, sizeof(back));
    r.client[2][0] = '\0';
    ck_assert_int_eq(stor_codec_size(STOR_REC_RECENT, &r, &len), 0);
    ck_assert_int_eq(stor_codec_encode(STOR_REC_RECENT, &r, buf, len), 0);
    /* the count field follows the key field: tag 1 (5 + 5 bytes "alice"), then tag 2 with its u32 */
    ck_assert_uint_eq(buf[2 + 10], 2);
    buf[2 + 10 + 5] = 4;
    ck_assert_int_eq(stor_codec_decode(STOR_REC_RECENT, buf, len, &back), STOR_ERR_CORRUPT);
    /* a numbers field whose length is not a whole number of values is corrupt */
    buf[2 + 10 + 5] = 3;
    ck_assert_uint_eq(buf[2 + 10 + 9], 3);
    buf[2 + 10 + 9 + 1] = 23; /* 24 bytes of times -> 23 */
    ck_assert_int_eq(stor_codec_decode(STOR_REC_RECENT, buf, len, &back), STOR_ERR_CORRUPT);
}
END_TEST

typedef struct {
    uint32_t kind;
    char key[STOR_NAME_MAX + 1];
    int64_t t;
    char client[200];
    stor_recent_t r;
} rj_t;

static int add_fn(stor_txn_t *t, void *arg)
{
    rj_t *j = arg;
    return stor_txn_recent_add(t, j->kind, j->key, j->t, (uint32_t)j->t, STOR_RES_OK, j->client);
}

static int get_recent_fn(stor_txn_t *t, void *arg)
{
    rj_t *j = arg;
    return stor_txn_recent_get(t, j->kind, j->key, &j->r);
}

START_TEST(t_recent_bounds)
{
    rj_t j;
    memset(&j, 0, sizeof(j));
    TST_SET(j.key, "cred-1");
    j.kind = STOR_RECENT_SIGNS;
    ck_assert_int_eq(stor_read(tst_env, get_recent_fn, &j), 0);
    ck_assert_uint_eq(j.r.n, 0); /* none yet */
    for (int i = 1; i <= 8; i++) {
        j.t = i;
        snprintf(j.client, sizeof(j.client), "c%d", i);
        ck_assert_int_eq(stor_write(tst_env, add_fn, &j), 0);
    }
    ck_assert_int_eq(stor_read(tst_env, get_recent_fn, &j), 0);
    ck_assert_uint_eq(j.r.n, STOR_SIGN_EVENTS_MAX);
    for (unsigned i = 0; i < STOR_SIGN_EVENTS_MAX; i++) { /* newest first: 8, 7, 6, 5, 4 */
        ck_assert(j.r.time_ms[i] == 8 - (int64_t)i);
        ck_assert_uint_eq(j.r.what[i], 8 - i);
    }
    ck_assert_str_eq(j.r.client[0], "c8");
    ck_assert_str_eq(j.r.client[4], "c4");

    /* Sign-ins keep 10, in a table of their own (the same key is another record). */
    j.kind = STOR_RECENT_SIGNINS;
    for (int i = 1; i <= 12; i++) {
        j.t = 100 + i;
        memset(j.client, 0, sizeof(j.client));
        memset(j.client, 'a', 150); /* cut to STOR_RECENT_CLIENT_MAX */
        ck_assert_int_eq(stor_write(tst_env, add_fn, &j), 0);
    }
    ck_assert_int_eq(stor_read(tst_env, get_recent_fn, &j), 0);
    ck_assert_uint_eq(j.r.n, STOR_SIGNINS_MAX);
    ck_assert(j.r.time_ms[0] == 112 && j.r.time_ms[9] == 103);
    ck_assert_uint_eq(strlen(j.r.client[0]), STOR_RECENT_CLIENT_MAX);

    j.kind = 9; /* no such table */
    ck_assert_int_eq(stor_write(tst_env, add_fn, &j), STOR_ERR_INVAL);
    j.kind = STOR_RECENT_SIGNS;
    TST_SET(j.key, "bad name");
    ck_assert_int_eq(stor_write(tst_env, add_fn, &j), STOR_ERR_INVAL);
}
END_TEST

typedef struct {
    stor_restore_req_t r;
    int create_only;
    char user[STOR_NAME_MAX + 1];
    char seen[8][STOR_NAME_MAX + 1];
    unsigned n;
} qj_t;

static int req_put_fn(stor_txn_t *t, void *arg)
{
    qj_t *j = arg;
    return stor_txn_restore_req_put(t, &j->r, j->create_only);
}

static int req_get_fn(stor_txn_t *t, void *arg)
{
    qj_t *j = arg;
    char ref[STOR_NAME_MAX + 1];
    memcpy(ref, j->r.ref, sizeof(ref));
    return stor_txn_restore_req_get(t, ref, &j->r);
}

static int req_one(const stor_restore_req_t *r, void *arg)
{
    qj_t *j = arg;
    if (j->n < 8)
        snprintf(j->seen[j->n], sizeof(j->seen[0]), "%s", r->ref);
    j->n++;
    return 0;
}

static int req_each_fn(stor_txn_t *t, void *arg)
{
    qj_t *j = arg;
    j->n = 0;
    return stor_txn_restore_req_each(t, j->user[0] ? j->user : NULL, req_one, j);
}

static void mkreq(qj_t *j, const char *ref, const char *user, const char *cred, int64_t expires)
{
    memset(&j->r, 0, sizeof(j->r));
    TST_SET(j->r.ref, ref);
    TST_SET(j->r.user, user);
    TST_SET(j->r.cred, cred);
    j->r.created_at = 10;
    j->r.expires_at = expires;
    j->r.state = STOR_RESTORE_OPEN;
}

START_TEST(t_restore_req)
{
    qj_t j;
    memset(&j, 0, sizeof(j));
    mkreq(&j, "RR-AAAABBBBCCCC", "alice", "a1", 500);
    j.create_only = 1;
    ck_assert_int_eq(stor_write(tst_env, req_put_fn, &j), 0);
    ck_assert_int_eq(stor_write(tst_env, req_put_fn, &j), STOR_ERR_EXISTS);
    j.r.state = STOR_RESTORE_USED;
    j.r.used_at = 77;
    j.create_only = 0;
    ck_assert_int_eq(stor_write(tst_env, req_put_fn, &j), 0);
    memset(&j.r.user, 0, sizeof(j.r.user));
    ck_assert_int_eq(stor_read(tst_env, req_get_fn, &j), 0);
    ck_assert_str_eq(j.r.user, "alice");
    ck_assert_str_eq(j.r.cred, "a1");
    ck_assert_uint_eq(j.r.state, STOR_RESTORE_USED);
    ck_assert(j.r.used_at == 77 && j.r.expires_at == 500 && j.r.created_at == 10);

    mkreq(&j, "RR-DDDDEEEEFFFF", "bob", "b1", 2000);
    ck_assert_int_eq(stor_write(tst_env, req_put_fn, &j), 0);
    mkreq(&j, "RR-GGGGHHHHJJJJ", "alice", "a2", 2000);
    ck_assert_int_eq(stor_write(tst_env, req_put_fn, &j), 0);
    /* validation: state, names */
    mkreq(&j, "RR-KKKKMMMMNNNN", "alice", "a2", 2000);
    j.r.state = 0;
    ck_assert_int_eq(stor_write(tst_env, req_put_fn, &j), STOR_ERR_INVAL);
    mkreq(&j, "RR-KKKKMMMMNNNN", "al ice", "a2", 2000);
    ck_assert_int_eq(stor_write(tst_env, req_put_fn, &j), STOR_ERR_INVAL);
    mkreq(&j, "RR KKKK", "alice", "a2", 2000);
    ck_assert_int_eq(stor_write(tst_env, req_put_fn, &j), STOR_ERR_INVAL);
    mkreq(&j, "RR-NOTTHERE0000", "alice", "a2", 2000);
    ck_assert_int_eq(stor_read(tst_env, req_get_fn, &j), STOR_ERR_NOTFOUND);

    TST_SET(j.user, "alice");
    ck_assert_int_eq(stor_read(tst_env, req_each_fn, &j), 0);
    ck_assert_uint_eq(j.n, 2);
    ck_assert_str_eq(j.seen[0], "RR-AAAABBBBCCCC");
    ck_assert_str_eq(j.seen[1], "RR-GGGGHHHHJJJJ");
    j.user[0] = '\0';
    ck_assert_int_eq(stor_read(tst_env, req_each_fn, &j), 0);
    ck_assert_uint_eq(j.n, 3);

    /* Purged after expires_at, with the other expiring records. */
    ck_assert_int_ge(stor_purge_expired(tst_env, 1000), 1);
    ck_assert_int_eq(stor_read(tst_env, req_each_fn, &j), 0);
    ck_assert_uint_eq(j.n, 2);
    ck_assert_str_eq(j.seen[0], "RR-DDDDEEEEFFFF");
}
END_TEST

START_TEST(t_cred_backup_fields)
{
    stor_cred_t *c = calloc(1, sizeof(*c)), *back = calloc(1, sizeof(*back));
    uint8_t *buf = malloc(STOR_CERTS_MAX + 8192);
    size_t len = 0;
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(back);
    ck_assert_ptr_nonnull(buf);
    TST_SET(c->id, "c1");
    TST_SET(c->owner, "alice");
    c->status = STOR_CRED_ENABLED;
    c->backups = 3;
    c->backup_last_at = 1700000123;
    ck_assert_int_eq(stor_codec_size(STOR_REC_CRED, c, &len), 0);
    ck_assert_int_eq(stor_codec_encode(STOR_REC_CRED, c, buf, len), 0);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_CRED, buf, len, back), 0);
    ck_assert_uint_eq(back->backups, 3);
    ck_assert(back->backup_last_at == 1700000123);
    free(c);
    free(back);
    free(buf);
}
END_TEST

Suite *tst_account_suite(void)
{
    Suite *s = suite_create("stor_account");
    TCase *tc = tcase_create("account");

    tcase_add_checked_fixture(tc, tst_env_setup, tst_env_teardown);
    tcase_add_test(tc, t_recent_codec);
    tcase_add_test(tc, t_recent_bounds);
    tcase_add_test(tc, t_restore_req);
    tcase_add_test(tc, t_cred_backup_fields);
    suite_add_tcase(s, tc);
    return s;
}
