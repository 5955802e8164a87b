/* test_stor_websession.c - the web_sessions table: round trip with a request, create-only, validation, count, take
 * (delete), purge by expiry (a session has expired once now >= expires_at). */
#include <limits.h>
#include <stdio.h>
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

static const uint8_t REQ[] = "packed request bytes";

static void mk(stor_websession_t *s, uint8_t key, int64_t expires)
{
    memset(s, 0, sizeof(*s));
    memset(s->hash, key, 32);
    TST_SET(s->user, "alice");
    TST_SET(s->client_id, "app");
    s->epoch = 7;
    s->created_at = s->touched_at = 100;
    s->expires_at = expires;
    s->req = REQ;
    s->req_len = sizeof(REQ);
    s->req_one = 1;
}

typedef struct {
    stor_websession_t s;
    int create_only;
    uint8_t req[64];
    size_t n;
    int purged;
    int64_t now;
} job_t;

static int put_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    return stor_txn_websession_put(t, &j->s, j->create_only);
}

static int get_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    uint8_t h[32];
    memcpy(h, j->s.hash, 32);
    int rc = stor_txn_websession_get(t, h, &j->s);
    if (rc == 0 && j->s.req_len <= sizeof(j->req))
        memcpy(j->req, j->s.req, j->s.req_len);
    return rc;
}

static int count_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_websession_count(t, &((job_t *)arg)->n);
}

static int del_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_websession_del(t, ((job_t *)arg)->s.hash);
}

static int purge_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    return stor_txn_websession_purge(t, j->now, &j->purged);
}

START_TEST(t_websession_round_trip)
{
    job_t j = {.create_only = 1};
    mk(&j.s, 1, 500);
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), 0);
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), STOR_ERR_EXISTS); /* create-only */
    memset(&j, 0, sizeof(j));
    memset(j.s.hash, 1, 32);
    ck_assert_int_eq(stor_read(g_env, get_fn, &j), 0);
    ck_assert_str_eq(j.s.user, "alice");
    ck_assert_str_eq(j.s.client_id, "app");
    ck_assert_uint_eq(j.s.epoch, 7);
    ck_assert_int_eq(j.s.expires_at, 500);
    ck_assert_uint_eq(j.s.req_len, sizeof(REQ));
    ck_assert_mem_eq(j.req, REQ, sizeof(REQ));
    ck_assert_int_eq(stor_read(g_env, count_fn, &j), 0);
    ck_assert_uint_eq(j.n, 1);
    ck_assert_int_eq(stor_write(g_env, del_fn, &j), 0);
    ck_assert_int_eq(stor_write(g_env, del_fn, &j), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_read(g_env, get_fn, &j), STOR_ERR_NOTFOUND);
}
END_TEST

START_TEST(t_websession_invalid)
{
    job_t j;
    mk(&j.s, 2, 500);
    j.s.req_len = 0;
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), STOR_ERR_INVAL);
    mk(&j.s, 2, 500);
    j.s.req_len = STOR_WEBSESSION_REQ_MAX + 1;
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), STOR_ERR_INVAL);
    mk(&j.s, 2, 500);
    TST_SET(j.s.user, "bad name");
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), STOR_ERR_INVAL);
}
END_TEST

START_TEST(t_websession_purge)
{
    job_t j = {0};
    mk(&j.s, 3, 100); /* expired at 100 */
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), 0);
    mk(&j.s, 4, 101);
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), 0);
    j.now = 100;
    ck_assert_int_eq(stor_write(g_env, purge_fn, &j), 0);
    ck_assert_int_eq(j.purged, 1);
    ck_assert_int_eq(stor_read(g_env, count_fn, &j), 0);
    ck_assert_uint_eq(j.n, 1);
    /* csc-sam's purge of the other tables leaves the browser sessions alone (csc-server's own table) ... */
    ck_assert_int_eq(stor_purge_expired(g_env, 101), 0);
    ck_assert_int_eq(stor_read(g_env, count_fn, &j), 0);
    ck_assert_uint_eq(j.n, 1);
    /* ... which csc-server's purge deletes, and only once expired */
    ck_assert_int_eq(stor_purge_websessions(g_env, 100), 0);
    ck_assert_int_eq(stor_purge_websessions(g_env, 101), 1);
    ck_assert_int_eq(stor_read(g_env, count_fn, &j), 0);
    ck_assert_uint_eq(j.n, 0);
    ck_assert_int_eq(stor_purge_websessions(NULL, 101), STOR_ERR_INVAL);
}
END_TEST

Suite *tst_websession_suite(void)
{
    Suite *s = suite_create("stor_websession");
    TCase *tc = tcase_create("websession");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_websession_round_trip);
    tcase_add_test(tc, t_websession_invalid);
    tcase_add_test(tc, t_websession_purge);
    suite_add_tcase(s, tc);
    return s;
}
