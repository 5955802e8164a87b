/* test_stor_user_approval.c - the user_approvals table: round trip with digests, create-only, validation, count,
 * delete, the walk by user (other users' rows skipped), purge by expiry (expired once now >= expires_at). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_stor.h"

static char g_path[PATH_MAX];
static stor_env_t *g_env;

static void setup(void)
{
    ck_assert_int_lt(snprintf(g_path, sizeof(g_path), "%s", tst_path()), (int)sizeof(g_path));
    g_env = tst_open(g_path, 0);
}

static void teardown(void)
{
    stor_close(g_env);
    g_env = NULL;
}

typedef struct {
    stor_user_approval_t a;  /* large: the jobs live on the heap */
    int create_only;
    size_t n;
    int purged;
    int64_t now;
    const char *user;
    unsigned seen, seen_digests;
    uint8_t last_ref[16];
} job_t;

static job_t *mk(uint8_t key, const char *user, int64_t expires)
{
    job_t *j = calloc(1, sizeof(*j));
    ck_assert_ptr_nonnull(j);
    memset(j->a.hash, key, 32);
    memset(j->a.ref, key ^ 0xff, 16);
    j->a.state = STOR_UAPPR_PENDING;
    TST_SET(j->a.user, user);
    TST_SET(j->a.cred, "cred-1");
    TST_SET(j->a.client, "app@192.0.2.1");
    j->a.num_signatures = 2;
    j->a.needs_pin = 1;
    j->a.epoch = 7;
    j->a.created_at = 100;
    j->a.expires_at = expires;
    TST_SET(j->a.hash_alg, "2.16.840.1.101.3.4.2.1");
    j->a.digest_len = 32;
    j->a.n_digests = 2;
    memset(j->a.digests, 0xd1, 32);
    memset(j->a.digests + 32, 0xd2, 32);
    return j;
}

static int put_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    return stor_txn_user_approval_put(t, &j->a, j->create_only);
}

static int get_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    uint8_t h[32];
    memcpy(h, j->a.hash, 32);
    return stor_txn_user_approval_get(t, h, &j->a);
}

static int count_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_user_approval_count(t, &((job_t *)arg)->n);
}

static int del_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_user_approval_del(t, ((job_t *)arg)->a.hash);
}

static int purge_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    return stor_txn_user_approval_purge(t, j->now, &j->purged);
}

static int seen_fn(const stor_user_approval_t *a, void *arg)
{
    job_t *j = arg;
    ck_assert(j->user == NULL || strcmp(a->user, j->user) == 0);
    j->seen++;
    j->seen_digests += a->n_digests;
    memcpy(j->last_ref, a->ref, 16);
    return 0;
}

static int each_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    return stor_txn_user_approval_each(t, j->user, seen_fn, j);
}

START_TEST(t_uappr_round_trip)
{
    job_t *j = mk(1, "alice", 500);
    j->create_only = 1;
    ck_assert_int_eq(stor_write(g_env, put_fn, j), 0);
    ck_assert_int_eq(stor_write(g_env, put_fn, j), STOR_ERR_EXISTS); /* create-only */
    job_t *g = calloc(1, sizeof(*g));
    ck_assert_ptr_nonnull(g);
    memset(g->a.hash, 1, 32);
    ck_assert_int_eq(stor_read(g_env, get_fn, g), 0);
    ck_assert_mem_eq(&g->a, &j->a, offsetof(stor_user_approval_t, digests) + 64);
    ck_assert_str_eq(g->a.client, "app@192.0.2.1");
    /* a decision replaces it */
    g->a.state = STOR_UAPPR_APPROVED;
    g->a.verified = 1;
    ck_assert_int_eq(stor_write(g_env, put_fn, g), 0);
    memset(&g->a, 0, sizeof(g->a));
    memset(g->a.hash, 1, 32);
    ck_assert_int_eq(stor_read(g_env, get_fn, g), 0);
    ck_assert_uint_eq(g->a.state, STOR_UAPPR_APPROVED);
    ck_assert_uint_eq(g->a.verified, 1);
    ck_assert_int_eq(stor_read(g_env, count_fn, g), 0);
    ck_assert_uint_eq(g->n, 1);
    ck_assert_int_eq(stor_write(g_env, del_fn, g), 0);
    ck_assert_int_eq(stor_write(g_env, del_fn, g), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_read(g_env, get_fn, g), STOR_ERR_NOTFOUND);
    free(g);
    free(j);
}
END_TEST

START_TEST(t_uappr_invalid)
{
    job_t *j = mk(2, "alice", 500);
    j->a.state = STOR_UAPPR_LOCKED + 1;
    ck_assert_int_eq(stor_write(g_env, put_fn, j), STOR_ERR_INVAL);
    free(j);
    j = mk(2, "alice", 500);
    j->a.num_signatures = 0;
    ck_assert_int_eq(stor_write(g_env, put_fn, j), STOR_ERR_INVAL);
    free(j);
    j = mk(2, "alice", 500);
    j->a.n_digests = STOR_DIGESTS_MAX + 1;
    ck_assert_int_eq(stor_write(g_env, put_fn, j), STOR_ERR_INVAL);
    free(j);
    j = mk(2, "alice", 500);
    j->a.digest_len = STOR_DIGEST_LEN_MAX + 1;
    ck_assert_int_eq(stor_write(g_env, put_fn, j), STOR_ERR_INVAL);
    free(j);
    j = mk(2, "bad name", 500);
    ck_assert_int_eq(stor_write(g_env, put_fn, j), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_read(g_env, count_fn, j), 0);
    ck_assert_uint_eq(j->n, 0);
    free(j);
}
END_TEST

START_TEST(t_uappr_each_by_user)
{
    job_t *j = mk(3, "alice", 500);
    ck_assert_int_eq(stor_write(g_env, put_fn, j), 0);
    free(j);
    j = mk(4, "bob", 500);
    ck_assert_int_eq(stor_write(g_env, put_fn, j), 0);
    free(j);
    j = mk(5, "alice", 500);
    j->a.n_digests = 0;
    j->a.digest_len = 0;
    ck_assert_int_eq(stor_write(g_env, put_fn, j), 0);
    memset(j->last_ref, 0, 16);
    j->user = "bob";
    ck_assert_int_eq(stor_read(g_env, each_fn, j), 0);
    ck_assert_uint_eq(j->seen, 1);
    ck_assert_uint_eq(j->seen_digests, 2);
    uint8_t bob_ref[16];
    memset(bob_ref, 4 ^ 0xff, 16);
    ck_assert_mem_eq(j->last_ref, bob_ref, 16);
    j->seen = j->seen_digests = 0;
    j->user = "alice";
    ck_assert_int_eq(stor_read(g_env, each_fn, j), 0);
    ck_assert_uint_eq(j->seen, 2);
    ck_assert_uint_eq(j->seen_digests, 2);
    j->seen = j->seen_digests = 0;
    j->user = NULL;
    ck_assert_int_eq(stor_read(g_env, each_fn, j), 0);
    ck_assert_uint_eq(j->seen, 3);
    free(j);
}
END_TEST

START_TEST(t_uappr_purge)
{
    job_t *j = mk(6, "alice", 100); /* expired at 100 */
    ck_assert_int_eq(stor_write(g_env, put_fn, j), 0);
    free(j);
    j = mk(7, "alice", 101);
    ck_assert_int_eq(stor_write(g_env, put_fn, j), 0);
    j->now = 100;
    ck_assert_int_eq(stor_write(g_env, purge_fn, j), 0);
    ck_assert_int_eq(j->purged, 1);
    ck_assert_int_eq(stor_read(g_env, count_fn, j), 0);
    ck_assert_uint_eq(j->n, 1);
    /* and through the purge of every table */
    ck_assert_int_eq(stor_purge_expired(g_env, 101), 1);
    ck_assert_int_eq(stor_read(g_env, count_fn, j), 0);
    ck_assert_uint_eq(j->n, 0);
    free(j);
}
END_TEST

Suite *tst_user_approval_suite(void)
{
    Suite *s = suite_create("stor_user_approval");
    TCase *tc = tcase_create("user_approval");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_uappr_round_trip);
    tcase_add_test(tc, t_uappr_invalid);
    tcase_add_test(tc, t_uappr_each_by_user);
    tcase_add_test(tc, t_uappr_purge);
    suite_add_tcase(s, tc);
    return s;
}
