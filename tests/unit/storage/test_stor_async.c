/* test_stor_async.c - the async_results table: round trip with a body, validation, purge by expiry. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void mk(stor_async_t *a, uint8_t key, int64_t expires, const char *body)
{
    memset(a, 0, sizeof(*a));
    memset(a->hash, key, 32);
    TST_SET(a->user, "alice");
    TST_SET(a->cred, "c1");
    a->state = body ? STOR_ASYNC_DONE : STOR_ASYNC_PENDING;
    a->status = body ? 200 : 0;
    a->created_ms = 1000;
    a->expires_ms = expires;
    if (body) {
        a->body = (const uint8_t *)body;
        a->body_len = (uint32_t)strlen(body);
        a->body_one = 1;
    }
}

static int put_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_async_put(t, arg);
}

typedef struct {
    uint8_t key;
    stor_async_t rec;
    char body[64];
} get_t;

static int get_fn(stor_txn_t *t, void *arg)
{
    get_t *g = arg;
    uint8_t h[32];
    int rc;

    memset(h, g->key, 32);
    if ((rc = stor_txn_async_get(t, h, &g->rec)) != 0)
        return rc;
    ck_assert_uint_lt(g->rec.body_len, sizeof(g->body));
    if (g->rec.body_len)
        memcpy(g->body, g->rec.body, g->rec.body_len);
    g->body[g->rec.body_len] = '\0';
    return 0;
}

START_TEST(t_async_round_trip)
{
    stor_async_t a;
    get_t g = {.key = 7};

    mk(&a, 7, 5000, "{\"signatures\":[\"AAAA\"]}");
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), 0);
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), 0);
    ck_assert_str_eq(g.rec.user, "alice");
    ck_assert_str_eq(g.rec.cred, "c1");
    ck_assert_uint_eq(g.rec.state, STOR_ASYNC_DONE);
    ck_assert_uint_eq(g.rec.status, 200);
    ck_assert_int_eq(g.rec.expires_ms, 5000);
    ck_assert_str_eq(g.body, "{\"signatures\":[\"AAAA\"]}");
    /* replaced by the outcome of the same request */
    mk(&a, 7, 5000, NULL);
    a.state = STOR_ASYNC_FAILED;
    a.status = 500;
    TST_SET(a.error, "server_error");
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), 0);
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), 0);
    ck_assert_uint_eq(g.rec.state, STOR_ASYNC_FAILED);
    ck_assert_str_eq(g.rec.error, "server_error");
    ck_assert_uint_eq(g.rec.body_len, 0);
    g.key = 8;
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), STOR_ERR_NOTFOUND);
}
END_TEST

START_TEST(t_async_invalid)
{
    stor_async_t a;

    mk(&a, 1, 5000, NULL);
    a.state = 0;
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), STOR_ERR_INVAL);
    mk(&a, 1, 5000, NULL);
    a.user[0] = '\0';
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), STOR_ERR_INVAL);
    mk(&a, 1, 5000, "x");
    a.body = NULL;
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), STOR_ERR_INVAL);
    mk(&a, 1, 5000, "x");
    a.body_len = STOR_ASYNC_BODY_MAX + 1;
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), STOR_ERR_INVAL);
}
END_TEST

START_TEST(t_async_purge)
{
    stor_async_t a;
    get_t g = {.key = 2};

    mk(&a, 1, 1000, "{}");
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), 0);
    mk(&a, 2, 3000, NULL);
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), 0);
    ck_assert_int_eq(stor_async_purge(g_env, 1000), 0);   /* expires_ms == now: still there */
    ck_assert_int_eq(stor_async_purge(g_env, 2000), 1);
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), 0);
    g.key = 1;
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_async_purge(g_env, 4000), 1);
    g.key = 2;
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), STOR_ERR_NOTFOUND);
}
END_TEST

START_TEST(t_async_fail_pending)
{
    stor_async_t a;
    get_t g = {.key = 1};

    mk(&a, 1, 5000, NULL);  /* pending, of this pid (as after a restart that got the same pid) */
    a.owner_pid = (uint32_t)getpid();
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), 0);
    mk(&a, 3, 5000, NULL);  /* pending, of a live other process (our parent): stays */
    a.owner_pid = (uint32_t)getppid();
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), 0);
    mk(&a, 2, 5000, "{}");  /* done */
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), 0);
    ck_assert_int_eq(stor_async_fail_pending(g_env, "n1", "restarted"), 1);
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), 0);
    ck_assert_uint_eq(g.rec.state, STOR_ASYNC_FAILED);
    ck_assert_uint_eq(g.rec.status, 500);
    ck_assert_str_eq(g.rec.error, "server_error");
    ck_assert_str_eq(g.rec.error_description, "restarted");
    ck_assert_int_eq(g.rec.expires_ms, 5000);
    g.key = 2;
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), 0);
    ck_assert_uint_eq(g.rec.state, STOR_ASYNC_DONE);
    ck_assert_str_eq(g.body, "{}");
    g.key = 3;
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), 0);
    ck_assert_uint_eq(g.rec.state, STOR_ASYNC_PENDING);
    ck_assert_int_eq(stor_async_fail_pending(g_env, "n1", "again"), 0);
}
END_TEST

/* Several nodes on one database: a node starting fails its own pending jobs only (another node's pid means
 * nothing here); a record from before node ids counts as this node's. */
START_TEST(t_async_fail_pending_nodes)
{
    stor_async_t a;
    get_t g = {.key = 1};

    mk(&a, 1, 5000, NULL);  /* node-a's job, its process gone */
    a.owner_pid = 0;
    snprintf(a.owner_node, sizeof(a.owner_node), "node-a");
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), 0);
    mk(&a, 2, 5000, NULL);  /* node-b's job: a pid that is no live process here */
    a.owner_pid = 0;
    snprintf(a.owner_node, sizeof(a.owner_node), "node-b");
    ck_assert_int_eq(stor_write(g_env, put_fn, &a), 0);
    ck_assert_int_eq(stor_async_fail_pending(g_env, "node-b", "restarted"), 1);
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), 0);
    ck_assert_uint_eq(g.rec.state, STOR_ASYNC_PENDING); /* node-a's job still runs there */
    ck_assert_str_eq(g.rec.owner_node, "node-a");
    g.key = 2;
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), 0);
    ck_assert_uint_eq(g.rec.state, STOR_ASYNC_FAILED);
    ck_assert_int_eq(stor_async_fail_pending(g_env, "node-a", "restarted"), 1);
    g.key = 1;
    ck_assert_int_eq(stor_read(g_env, get_fn, &g), 0);
    ck_assert_uint_eq(g.rec.state, STOR_ASYNC_FAILED);
    ck_assert_str_eq(g.rec.error_description, "restarted");
    /* no node: refused */
    ck_assert_int_eq(stor_async_fail_pending(g_env, "", "x"), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_async_fail_pending(g_env, NULL, "x"), STOR_ERR_INVAL);
}
END_TEST

Suite *tst_async_suite(void)
{
    Suite *s = suite_create("stor_async");
    TCase *tc = tcase_create("async");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_async_round_trip);
    tcase_add_test(tc, t_async_invalid);
    tcase_add_test(tc, t_async_purge);
    tcase_add_test(tc, t_async_fail_pending);
    tcase_add_test(tc, t_async_fail_pending_nodes);
    suite_add_tcase(s, tc);
    return s;
}
