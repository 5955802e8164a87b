/* test_stor_par.c - the pars table (pushed authorization requests): round trip with a request, create-only,
 * validation, count, a take (get and delete in one write) that succeeds once, purge by expiry (a request is void
 * once now >= expires_at) by csc-server's purge only. The same cases run on LMDB (unit_storage) and on PostgreSQL
 * as csc_front, csc-server's role (unit_storage_pg: the migration's table and GRANTs). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "test_stor.h"

static char g_path[PATH_MAX];
static stor_env_t *g_env;

static void setup(void)
{
    stor_config_t cfg = { .backend = "postgresql" };
    int rc;

    if (tst_pg_front == NULL) {
        ck_assert_int_lt(snprintf(g_path, sizeof(g_path), "%s", tst_path()), (int)sizeof(g_path));
        g_env = tst_open(g_path, 0);
        return;
    }
    ck_assert_int_eq(tst_pg_psql("DELETE FROM csc.pars"), 0);
    cfg.location = tst_pg_front;
    rc = stor_open(&cfg, &g_env);
    ck_assert_msg(rc == 0, "stor_open(postgresql, csc_front): %s", stor_strerror(rc));
}

static void teardown(void)
{
    stor_close(g_env);
    g_env = NULL;
}

static const uint8_t REQ[] = "packed request bytes";

static void mk(stor_par_t *p, uint8_t key, int64_t expires)
{
    memset(p, 0, sizeof(*p));
    memset(p->hash, key, 32);
    TST_SET(p->client_id, "app");
    p->created_at = 100;
    p->expires_at = expires;
    p->req = REQ;
    p->req_len = sizeof(REQ);
    p->req_one = 1;
}

typedef struct {
    stor_par_t p;
    uint8_t req[64];
    size_t n;
    int purged;
    int64_t now;
} job_t;

static int put_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_par_put(t, &((job_t *)arg)->p);
}

static int get_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    uint8_t h[32];
    int rc;

    memcpy(h, j->p.hash, 32);
    rc = stor_txn_par_get(t, h, &j->p);
    memcpy(j->p.hash, h, 32); /* kept for the next job, whatever the result */
    if (rc == 0 && j->p.req_len <= sizeof(j->req))
        memcpy(j->req, j->p.req, j->p.req_len);
    j->p.req = NULL;
    return rc;
}

/* What oauth/ does with a request_uri: read the row and delete it in the same write. */
static int take_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    int rc = get_fn(t, j);

    return rc != 0 ? rc : stor_txn_par_del(t, j->p.hash);
}

static int count_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_par_count(t, &((job_t *)arg)->n);
}

static int del_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_par_del(t, ((job_t *)arg)->p.hash);
}

static int purge_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    return stor_txn_par_purge(t, j->now, &j->purged);
}

START_TEST(t_par_round_trip)
{
    job_t j = {0};

    mk(&j.p, 1, 190);
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), 0);
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), STOR_ERR_EXISTS); /* create-only */
    memset(&j, 0, sizeof(j));
    memset(j.p.hash, 1, 32);
    ck_assert_int_eq(stor_read(g_env, get_fn, &j), 0);
    ck_assert_str_eq(j.p.client_id, "app");
    ck_assert_int_eq(j.p.created_at, 100);
    ck_assert_int_eq(j.p.expires_at, 190);
    ck_assert_uint_eq(j.p.req_len, sizeof(REQ));
    ck_assert_mem_eq(j.req, REQ, sizeof(REQ));
    ck_assert_int_eq(stor_read(g_env, count_fn, &j), 0);
    ck_assert_uint_eq(j.n, 1);
    ck_assert_int_eq(stor_write(g_env, del_fn, &j), 0);
    ck_assert_int_eq(stor_write(g_env, del_fn, &j), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_read(g_env, get_fn, &j), STOR_ERR_NOTFOUND);
}
END_TEST

START_TEST(t_par_take_once)
{
    job_t j = {0};

    mk(&j.p, 2, 190);
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), 0);
    memset(&j, 0, sizeof(j));
    memset(j.p.hash, 2, 32);
    ck_assert_int_eq(stor_write(g_env, take_fn, &j), 0);
    ck_assert_mem_eq(j.req, REQ, sizeof(REQ));
    memset(j.req, 0, sizeof(j.req));
    ck_assert_int_eq(stor_write(g_env, take_fn, &j), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_read(g_env, count_fn, &j), 0);
    ck_assert_uint_eq(j.n, 0);
}
END_TEST

START_TEST(t_par_invalid)
{
    job_t j = {0};

    mk(&j.p, 3, 190);
    j.p.req_len = 0;
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), STOR_ERR_INVAL);
    mk(&j.p, 3, 190);
    j.p.req_len = STOR_PAR_REQ_MAX + 1;
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), STOR_ERR_INVAL);
    mk(&j.p, 3, 190);
    j.p.req = NULL;
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), STOR_ERR_INVAL);
    mk(&j.p, 3, 190);
    TST_SET(j.p.client_id, "bad name");
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), STOR_ERR_INVAL);
    mk(&j.p, 3, 100); /* expires when it is made */
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_read(g_env, count_fn, &j), 0);
    ck_assert_uint_eq(j.n, 0);
}
END_TEST

START_TEST(t_par_purge)
{
    job_t j = {0};

    mk(&j.p, 4, 150); /* expired at 150 */
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), 0);
    mk(&j.p, 5, 151);
    ck_assert_int_eq(stor_write(g_env, put_fn, &j), 0);
    j.now = 149;
    ck_assert_int_eq(stor_write(g_env, purge_fn, &j), 0);
    ck_assert_int_eq(j.purged, 0);
    j.now = 150;
    ck_assert_int_eq(stor_write(g_env, purge_fn, &j), 0);
    ck_assert_int_eq(j.purged, 1);
    ck_assert_int_eq(stor_read(g_env, count_fn, &j), 0);
    ck_assert_uint_eq(j.n, 1);
    /* csc-sam's purge of the other tables leaves the requests alone (csc-server's own table; on PostgreSQL this
     * store is csc_front, which could not run it anyway) ... */
    if (tst_pg_front == NULL) {
        ck_assert_int_eq(stor_purge_expired(g_env, 151), 0);
        ck_assert_int_eq(stor_read(g_env, count_fn, &j), 0);
        ck_assert_uint_eq(j.n, 1);
    }
    /* ... which csc-server's purge deletes, and only once expired */
    ck_assert_int_eq(stor_purge_pars(g_env, 150), 0);
    ck_assert_int_eq(stor_purge_pars(g_env, 151), 1);
    ck_assert_int_eq(stor_read(g_env, count_fn, &j), 0);
    ck_assert_uint_eq(j.n, 0);
    ck_assert_int_eq(stor_purge_pars(NULL, 151), STOR_ERR_INVAL);
}
END_TEST

Suite *tst_par_suite(void)
{
    Suite *s = suite_create("stor_par");
    TCase *tc = tcase_create("par");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_par_round_trip);
    tcase_add_test(tc, t_par_take_once);
    tcase_add_test(tc, t_par_invalid);
    tcase_add_test(tc, t_par_purge);
    suite_add_tcase(s, tc);
    return s;
}
