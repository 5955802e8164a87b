/* test_stor_operator.c - operators, operator sessions and pending approvals (J14): round trips, limits, walks. */
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

typedef struct op_job {
    stor_operator_t op;
    stor_opsession_t sess;
    stor_approval_t ap;
    int create_only;
    char names[8][STOR_NAME_MAX + 1];
    int n;
} op_job_t;

static int put_op_fn(stor_txn_t *t, void *arg)
{
    op_job_t *j = arg;
    return stor_txn_operator_put(t, &j->op, j->create_only);
}

static int get_op_fn(stor_txn_t *t, void *arg)
{
    op_job_t *j = arg;
    char name[STOR_NAME_MAX + 1];
    snprintf(name, sizeof(name), "%s", j->op.name);
    return stor_txn_operator_get(t, name, &j->op);
}

static int del_op_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_operator_del(t, ((op_job_t *)arg)->op.name);
}

static int collect_op(const stor_operator_t *op, void *arg)
{
    op_job_t *j = arg;
    ck_assert_int_lt(j->n, 8);
    snprintf(j->names[j->n++], STOR_NAME_MAX + 1, "%s", op->name);
    return 0;
}

static int each_op_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_operator_each(t, collect_op, arg);
}

static void mk_op(op_job_t *j, const char *name, uint32_t roles)
{
    memset(j, 0, sizeof(*j));
    TST_SET(j->op.name, name);
    j->op.roles = roles;
    j->op.status = STOR_OPERATOR_ACTIVE;
    j->op.pw_verifier_len = 3;
    memcpy(j->op.pw_verifier, "v\0v", 3);
    j->op.totp_secret_len = 20;
    memset(j->op.totp_secret, 0x5a, 20);
    j->op.totp_last_step = 1234567;
    j->op.failed_logins = 2;
    j->op.locked_until = 99;
    j->op.created_at = 42;
}

START_TEST(t_operator_roundtrip)
{
    op_job_t j, g;
    mk_op(&j, "alice", STOR_ROLE_USER_ADMIN | STOR_ROLE_AUDITOR);
    j.create_only = 1;
    ck_assert_int_eq(stor_write(g_env, put_op_fn, &j), 0);
    ck_assert_int_eq(stor_write(g_env, put_op_fn, &j), STOR_ERR_EXISTS);
    memset(&g, 0, sizeof(g));
    TST_SET(g.op.name, "alice");
    ck_assert_int_eq(stor_read(g_env, get_op_fn, &g), 0);
    ck_assert_int_eq(memcmp(&g.op, &j.op, sizeof(g.op)), 0);
    /* roles outside the set, an unknown status and a bad name are refused */
    j.create_only = 0;
    j.op.roles = 8;
    ck_assert_int_eq(stor_write(g_env, put_op_fn, &j), STOR_ERR_INVAL);
    j.op.roles = STOR_ROLE_KEY_ADMIN;
    j.op.status = 7;
    ck_assert_int_eq(stor_write(g_env, put_op_fn, &j), STOR_ERR_INVAL);
    j.op.status = STOR_OPERATOR_DISABLED;
    ck_assert_int_eq(stor_write(g_env, put_op_fn, &j), 0);
    ck_assert_int_eq(stor_read(g_env, get_op_fn, &g), 0);
    ck_assert_uint_eq(g.op.roles, STOR_ROLE_KEY_ADMIN);
    ck_assert_uint_eq(g.op.status, STOR_OPERATOR_DISABLED);
    TST_SET(j.op.name, "has space");
    ck_assert_int_eq(stor_write(g_env, put_op_fn, &j), STOR_ERR_INVAL);
    /* delete, then it is gone; a second delete is NOTFOUND */
    TST_SET(j.op.name, "alice");
    ck_assert_int_eq(stor_write(g_env, del_op_fn, &j), 0);
    ck_assert_int_eq(stor_read(g_env, get_op_fn, &g), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_write(g_env, del_op_fn, &j), STOR_ERR_NOTFOUND);
}
END_TEST

START_TEST(t_operator_each)
{
    op_job_t j;
    const char *names[] = {"carol", "alice", "bob"};
    for (int i = 0; i < 3; i++) {
        mk_op(&j, names[i], STOR_ROLE_AUDITOR);
        ck_assert_int_eq(stor_write(g_env, put_op_fn, &j), 0);
    }
    memset(&j, 0, sizeof(j));
    ck_assert_int_eq(stor_read(g_env, each_op_fn, &j), 0);
    ck_assert_int_eq(j.n, 3);
    ck_assert_str_eq(j.names[0], "alice");
    ck_assert_str_eq(j.names[1], "bob");
    ck_assert_str_eq(j.names[2], "carol");
}
END_TEST

static int put_sess_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_opsession_put(t, &((op_job_t *)arg)->sess);
}

static int get_sess_fn(stor_txn_t *t, void *arg)
{
    op_job_t *j = arg;
    uint8_t h[32];
    memcpy(h, j->sess.hash, 32);
    return stor_txn_opsession_get(t, h, &j->sess);
}

static int del_sess_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_opsession_del(t, ((op_job_t *)arg)->sess.hash);
}

START_TEST(t_opsession_roundtrip)
{
    op_job_t j, g;
    memset(&j, 0, sizeof(j));
    memset(j.sess.hash, 0xab, 32);
    TST_SET(j.sess.operator_name, "alice");
    j.sess.created_at = 10;
    j.sess.last_used = 20;
    j.sess.expires_at = 30;
    ck_assert_int_eq(stor_write(g_env, put_sess_fn, &j), 0);
    memset(&g, 0, sizeof(g));
    memset(g.sess.hash, 0xab, 32);
    ck_assert_int_eq(stor_read(g_env, get_sess_fn, &g), 0);
    ck_assert_int_eq(memcmp(&g.sess, &j.sess, sizeof(g.sess)), 0);
    memset(g.sess.hash, 0xac, 32);
    ck_assert_int_eq(stor_read(g_env, get_sess_fn, &g), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_write(g_env, del_sess_fn, &j), 0);
    memset(g.sess.hash, 0xab, 32);
    ck_assert_int_eq(stor_read(g_env, get_sess_fn, &g), STOR_ERR_NOTFOUND);
    TST_SET(j.sess.operator_name, "");
    ck_assert_int_eq(stor_write(g_env, put_sess_fn, &j), STOR_ERR_INVAL);
}
END_TEST

static int put_ap_fn(stor_txn_t *t, void *arg)
{
    op_job_t *j = arg;
    return stor_txn_approval_put(t, &j->ap, j->create_only);
}

static int get_ap_fn(stor_txn_t *t, void *arg)
{
    op_job_t *j = arg;
    char id[STOR_NAME_MAX + 1];
    snprintf(id, sizeof(id), "%s", j->ap.id);
    return stor_txn_approval_get(t, id, &j->ap);
}

static int del_ap_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_approval_del(t, ((op_job_t *)arg)->ap.id);
}

static int collect_ap(const stor_approval_t *a, void *arg)
{
    op_job_t *j = arg;
    ck_assert_int_lt(j->n, 8);
    snprintf(j->names[j->n++], STOR_NAME_MAX + 1, "%s", a->id);
    return 0;
}

static int each_ap_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_approval_each(t, collect_ap, arg);
}

START_TEST(t_approval_roundtrip)
{
    op_job_t *j = calloc(1, sizeof(*j)), *g = calloc(1, sizeof(*g));
    ck_assert_ptr_nonnull(j);
    ck_assert_ptr_nonnull(g);
    TST_SET(j->ap.id, "00ff");
    TST_SET(j->ap.requester, "alice");
    j->ap.role = STOR_ROLE_KEY_ADMIN;
    j->ap.n_args = 3;
    TST_SET(j->ap.args[0], "credential");
    TST_SET(j->ap.args[1], "destroy");
    TST_SET(j->ap.args[2], "");  /* empty words survive too */
    j->ap.created_at = 5;
    j->ap.expires_at = 6;
    j->create_only = 1;
    ck_assert_int_eq(stor_write(g_env, put_ap_fn, j), 0);
    ck_assert_int_eq(stor_write(g_env, put_ap_fn, j), STOR_ERR_EXISTS);
    TST_SET(g->ap.id, "00ff");
    ck_assert_int_eq(stor_read(g_env, get_ap_fn, g), 0);
    ck_assert_int_eq(memcmp(&g->ap, &j->ap, sizeof(g->ap)), 0);
    /* a second one, then the walk sees both in id order */
    TST_SET(j->ap.id, "00aa");
    ck_assert_int_eq(stor_write(g_env, put_ap_fn, j), 0);
    memset(g, 0, sizeof(*g));
    ck_assert_int_eq(stor_read(g_env, each_ap_fn, g), 0);
    ck_assert_int_eq(g->n, 2);
    ck_assert_str_eq(g->names[0], "00aa");
    ck_assert_str_eq(g->names[1], "00ff");
    /* limits: no words, too many words, no requester */
    j->ap.n_args = 0;
    ck_assert_int_eq(stor_write(g_env, put_ap_fn, j), STOR_ERR_INVAL);
    j->ap.n_args = STOR_APPROVAL_ARGS_MAX + 1;
    ck_assert_int_eq(stor_write(g_env, put_ap_fn, j), STOR_ERR_INVAL);
    j->ap.n_args = 1;
    TST_SET(j->ap.requester, "");
    ck_assert_int_eq(stor_write(g_env, put_ap_fn, j), STOR_ERR_INVAL);
    /* delete */
    ck_assert_int_eq(stor_write(g_env, del_ap_fn, j), 0);
    TST_SET(g->ap.id, "00aa");
    ck_assert_int_eq(stor_read(g_env, get_ap_fn, g), STOR_ERR_NOTFOUND);
    free(j);
    free(g);
}
END_TEST

static int audit_op_fn(stor_txn_t *t, void *arg)
{
    stor_audit_t *r = arg;
    return stor_txn_audit_append(t, r);
}

START_TEST(t_operator_event)
{
    stor_audit_t r;
    memset(&r, 0, sizeof(r));
    r.event = STOR_EV_OPERATOR;
    TST_SET(r.user, "alice");
    TST_SET(r.detail, "action=login");
    ck_assert_int_eq(stor_write(g_env, audit_op_fn, &r), 0);
    ck_assert_uint_eq(r.seq, 1);
    r.time_ms = 0;
    r.event = 99;
    ck_assert_int_eq(stor_write(g_env, audit_op_fn, &r), STOR_ERR_INVAL);
}
END_TEST

Suite *tst_operator_suite(void)
{
    Suite *s = suite_create("operator");
    TCase *tc = tcase_create("records");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_operator_roundtrip);
    tcase_add_test(tc, t_operator_each);
    tcase_add_test(tc, t_opsession_roundtrip);
    tcase_add_test(tc, t_approval_roundtrip);
    tcase_add_test(tc, t_operator_event);
    suite_add_tcase(s, tc);
    return s;
}
