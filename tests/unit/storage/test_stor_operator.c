/* test_stor_operator.c - operators, operator sessions and pending approvals (J14): round trips, limits, walks. */
#include <limits.h>
#include <pthread.h>
#include <time.h>
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
    j->op.totp_sealed_len = STOR_TOTP_SEALED_MAX; /* the sealed form round-trips too (a full one) */
    memset(j->op.totp_sealed, 0xa5, STOR_TOTP_SEALED_MAX);
    memset(j->op.enroll_code_hash, 0x11, 32);
    j->op.enroll_expires_at = 1700000000;
    j->op.enroll_tries = 4;
    memset(j->op.enroll_ticket_hash, 0x22, 32);
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
    j.op.status = STOR_OPERATOR_ENROLLING;
    ck_assert_int_eq(stor_write(g_env, put_op_fn, &j), 0);
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

START_TEST(t_opsession_purge)
{
    op_job_t j, g;
    memset(&j, 0, sizeof(j));
    TST_SET(j.sess.operator_name, "alice");
    memset(j.sess.hash, 1, 32);
    j.sess.expires_at = 100;
    ck_assert_int_eq(stor_write(g_env, put_sess_fn, &j), 0);
    memset(j.sess.hash, 2, 32);
    j.sess.expires_at = 300;
    ck_assert_int_eq(stor_write(g_env, put_sess_fn, &j), 0);
    ck_assert_int_eq(stor_purge_expired(g_env, 200), 1);
    memset(&g, 0, sizeof(g));
    memset(g.sess.hash, 1, 32);
    ck_assert_int_eq(stor_read(g_env, get_sess_fn, &g), STOR_ERR_NOTFOUND);
    memset(g.sess.hash, 2, 32);
    ck_assert_int_eq(stor_read(g_env, get_sess_fn, &g), 0);
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
    j->ap.flags = STOR_APPROVAL_JOB; /* cred tag 8: round trips */
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

typedef struct file_job {
    uint32_t flags;
    int64_t ttl;
    char id[STOR_NAME_MAX + 1];
} file_job_t;

static int file_job_fn(stor_txn_t *t, void *arg)
{
    file_job_t *f = arg;
    char *argv[3] = {"credential", "revoke", "cred-1"};
    return stor_txn_approval_request(t, "csc-server", STOR_ROLE_KEY_ADMIN, f->ttl, f->flags, 3, argv, f->id);
}

static int last_detail(const stor_audit_t *rec, void *arg)
{
    snprintf(arg, 256, "%s", rec->detail); /* stor_audit_t.detail */
    return 0;
}

/* What csc-server's CRL sweep files: a job that never expires, audited as job.file, in the caller's transaction. */
START_TEST(t_approval_request_job)
{
    op_job_t *g = calloc(1, sizeof(*g));
    file_job_t f = {.flags = STOR_APPROVAL_JOB, .ttl = 0};
    char detail[256], want[256];
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(stor_write(g_env, file_job_fn, &f), 0);
    ck_assert_uint_eq(strlen(f.id), 16);
    snprintf(g->ap.id, sizeof(g->ap.id), "%s", f.id);
    ck_assert_int_eq(stor_read(g_env, get_ap_fn, g), 0);
    ck_assert_uint_eq(g->ap.flags, STOR_APPROVAL_JOB);
    ck_assert_int_eq(g->ap.expires_at, 0);
    ck_assert_str_eq(g->ap.requester, "csc-server");
    ck_assert_str_eq(g->ap.args[2], "cred-1");
    ck_assert_int_eq(stor_audit_each(g_env, 1, last_detail, detail), 0);
    snprintf(want, sizeof(want), "operator=csc-server action=job.file id=%s command=credential revoke cred-1", f.id);
    ck_assert_str_eq(detail, want);
    /* a request for a second operator: no flag, expiring, audited as approval.request */
    f.flags = 0;
    f.ttl = 60;
    ck_assert_int_eq(stor_write(g_env, file_job_fn, &f), 0);
    snprintf(g->ap.id, sizeof(g->ap.id), "%s", f.id);
    ck_assert_int_eq(stor_read(g_env, get_ap_fn, g), 0);
    ck_assert_uint_eq(g->ap.flags, 0);
    ck_assert_int_eq(g->ap.expires_at, g->ap.created_at + 60);
    ck_assert_int_eq(stor_audit_each(g_env, 1, last_detail, detail), 0);
    ck_assert_ptr_nonnull(strstr(detail, "action=approval.request"));
    /* an unknown flag or a negative ttl: refused, nothing written */
    f.flags = 2;
    ck_assert_int_eq(stor_write(g_env, file_job_fn, &f), STOR_ERR_INVAL);
    ck_assert_str_eq(f.id, "");
    f.flags = 0;
    f.ttl = -1;
    ck_assert_int_eq(stor_write(g_env, file_job_fn, &f), STOR_ERR_INVAL);
    memset(g, 0, sizeof(*g));
    ck_assert_int_eq(stor_read(g_env, each_ap_fn, g), 0);
    ck_assert_int_eq(g->n, 2);
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

/* Two audit records as encoded (with their hashes) by the code before the owner ("on behalf of") field existed:
 * a sign record with digests, then an admin denial; the second one chains to the first. Made by that code's
 * stor_txn_audit_append(). */
static const uint8_t old_rec1[] = {
    0x05, 0x01, 0x01, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x08, 0x00, 0x00, 0x00, 0x7b, 0xa4, 0x19, 0x12, 0xa2, 0x01, 0x00, 0x00, 0x03, 0x04, 0x00, 0x00,
    0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x05,
    0x00, 0x00, 0x00, 0x61, 0x6c, 0x69, 0x63, 0x65, 0x06, 0x07, 0x00, 0x00, 0x00, 0x61, 0x6c, 0x69,
    0x63, 0x65, 0x2d, 0x31, 0x07, 0x09, 0x00, 0x00, 0x00, 0x31, 0x32, 0x37, 0x2e, 0x30, 0x2e, 0x30,
    0x2e, 0x31, 0x08, 0x10, 0x00, 0x00, 0x00, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5,
    0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0x09, 0x13, 0x00, 0x00, 0x00, 0x31, 0x2e, 0x32, 0x2e,
    0x38, 0x34, 0x30, 0x2e, 0x31, 0x30, 0x30, 0x34, 0x35, 0x2e, 0x34, 0x2e, 0x33, 0x2e, 0x32, 0x0a,
    0x04, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x0b, 0x04, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
    0x00, 0x0c, 0x40, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
    0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
    0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
    0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x0d, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x20, 0x00, 0x00, 0x00,
    0x38, 0xcf, 0x06, 0x65, 0x52, 0x2c, 0x2d, 0x07, 0x95, 0xe6, 0xab, 0x37, 0x45, 0x87, 0x79, 0xcd,
    0x9d, 0x92, 0x04, 0xb8, 0xcf, 0xf8, 0xe9, 0xcc, 0x6a, 0x13, 0xd1, 0x45, 0xda, 0xa5, 0x1a, 0xf5
};
static const uint8_t old_rec2[] = {
    0x05, 0x01, 0x01, 0x08, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x08, 0x00, 0x00, 0x00, 0xc8, 0xa5, 0x19, 0x12, 0xa2, 0x01, 0x00, 0x00, 0x03, 0x04, 0x00, 0x00,
    0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x03,
    0x00, 0x00, 0x00, 0x62, 0x6f, 0x62, 0x06, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00,
    0x08, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x13, 0x00, 0x00, 0x00, 0x6f, 0x70, 0x65, 0x72, 0x61, 0x74,
    0x6f, 0x72, 0x3d, 0x78, 0x20, 0x61, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x3d, 0x79, 0x0a, 0x04, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c,
    0x00, 0x00, 0x00, 0x00, 0x0d, 0x20, 0x00, 0x00, 0x00, 0x38, 0xcf, 0x06, 0x65, 0x52, 0x2c, 0x2d,
    0x07, 0x95, 0xe6, 0xab, 0x37, 0x45, 0x87, 0x79, 0xcd, 0x9d, 0x92, 0x04, 0xb8, 0xcf, 0xf8, 0xe9,
    0xcc, 0x6a, 0x13, 0xd1, 0x45, 0xda, 0xa5, 0x1a, 0xf5, 0x0e, 0x20, 0x00, 0x00, 0x00, 0xf8, 0xb3,
    0xe4, 0x47, 0x09, 0x9b, 0xb2, 0xa0, 0x35, 0xf9, 0x19, 0xd5, 0xb0, 0x5e, 0x04, 0xa1, 0x18, 0xa5,
    0x35, 0x71, 0xe2, 0x9d, 0xc0, 0x32, 0x8e, 0xa5, 0x0c, 0x2c, 0x0a, 0xdd, 0x6e, 0xfb
};

START_TEST(t_audit_old_records_verify)
{
    const uint8_t *bufs[2] = {old_rec1, old_rec2};
    size_t lens[2] = {sizeof(old_rec1), sizeof(old_rec2)};
    uint8_t first_hash[32], h[32], re[4096];
    stor_audit_t r;
    size_t len;

    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(stor_codec_decode(STOR_REC_AUDIT, bufs[k], lens[k], &r), 0);
        ck_assert_str_eq(r.owner, "");
        /* still canonical: encoding the decoded record gives the stored bytes */
        ck_assert_int_eq(stor_codec_size(STOR_REC_AUDIT, &r, &len), 0);
        ck_assert_uint_eq(len, lens[k]);
        ck_assert_int_eq(stor_codec_encode(STOR_REC_AUDIT, &r, re, len), 0);
        ck_assert_int_eq(memcmp(re, bufs[k], len), 0);
        /* and its hash recomputes to the stored one */
        ck_assert_int_eq(stor_audit_hash(&r, r.prev_hash, h), 0);
        ck_assert_int_eq(memcmp(h, r.hash, 32), 0);
        if (k == 0)
            memcpy(first_hash, r.hash, 32);
        else
            ck_assert_int_eq(memcmp(r.prev_hash, first_hash, 32), 0);
    }
}
END_TEST

START_TEST(t_audit_owner_field)
{
    stor_audit_t r, d;
    uint8_t h0[32], h1[32], buf[4096];
    size_t len0, len1;

    ck_assert_int_eq(stor_codec_decode(STOR_REC_AUDIT, old_rec2, sizeof(old_rec2), &r), 0);
    ck_assert_int_eq(stor_audit_hash(&r, r.prev_hash, h0), 0);
    ck_assert_int_eq(stor_codec_size(STOR_REC_AUDIT, &r, &len0), 0);
    TST_SET(r.owner, "carol");
    /* set: encoded (tag 15) and hashed, so it cannot be changed or dropped unnoticed */
    ck_assert_int_eq(stor_codec_size(STOR_REC_AUDIT, &r, &len1), 0);
    ck_assert_uint_eq(len1, len0 + 5 + 5);
    ck_assert_int_eq(stor_codec_encode(STOR_REC_AUDIT, &r, buf, len1), 0);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_AUDIT, buf, len1, &d), 0);
    ck_assert_str_eq(d.owner, "carol");
    ck_assert_int_eq(stor_audit_hash(&r, r.prev_hash, h1), 0);
    ck_assert_int_ne(memcmp(h0, h1, 32), 0);
    TST_SET(r.owner, "carl");
    ck_assert_int_eq(stor_audit_hash(&r, r.prev_hash, h0), 0);
    ck_assert_int_ne(memcmp(h0, h1, 32), 0);
    /* an explicitly stored empty owner is not a canonical encoding: refused */
    memcpy(buf, old_rec2, sizeof(old_rec2));
    memcpy(buf + sizeof(old_rec2), "\x0f\0\0\0\0", 5);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_AUDIT, buf, sizeof(old_rec2) + 5, &d), STOR_ERR_CORRUPT);
}
END_TEST

/* The origin of an operator's command (stor_audit_origin_set): the records and requests this thread's writes append
 * carry it (encoded as tag 16, hashed), another thread's do not, a record's own origin wins, and clearing it stops it. */
typedef struct origin_job {
    stor_audit_t rec;
    stor_approval_t ap;
    char id[STOR_NAME_MAX + 1];
} origin_job_t;

static int origin_append_fn(stor_txn_t *t, void *arg)
{
    origin_job_t *j = arg;
    return stor_txn_audit_append(t, &j->rec);
}

static int origin_get_ap_fn(stor_txn_t *t, void *arg)
{
    origin_job_t *j = arg;
    return stor_txn_approval_get(t, j->id, &j->ap);
}

static void origin_rec(origin_job_t *j, const char *own)
{
    memset(j, 0, sizeof(*j));
    j->rec.event = STOR_EV_OPERATOR;
    TST_SET(j->rec.user, "alice");
    TST_SET(j->rec.detail, "action=list");
    if (own != NULL)
        TST_SET(j->rec.origin, own);
}

static stor_audit_t origin_first; /* record 1 as read back */

static int each_origin(const stor_audit_t *r, void *arg)
{
    char(*seen)[STOR_ORIGIN_MAX + 1] = arg;
    if (r->seq == 1)
        origin_first = *r; /* no digests: nothing points into the map */
    uint8_t h[32];
    ck_assert_int_eq(stor_audit_hash(r, r->prev_hash, h), 0);
    ck_assert_int_eq(memcmp(h, r->hash, 32), 0);
    snprintf(seen[r->seq - 1], STOR_ORIGIN_MAX + 1, "%s", r->origin);
    return 0;
}

static void *other_thread_append(void *arg)
{
    origin_job_t *j = arg;
    ck_assert_int_eq(stor_write(g_env, origin_append_fn, j), 0);
    return NULL;
}

START_TEST(t_audit_origin)
{
    static origin_job_t j;
    static char seen[8][STOR_ORIGIN_MAX + 1];
    char *argv[] = {"credential", "destroy", "c1"};
    pthread_t th;
    uint8_t h0[32];

    stor_audit_origin_set("os_user=root uid=0 host=h1 tty=/dev/pts/1");
    origin_rec(&j, NULL);
    ck_assert_int_eq(stor_write(g_env, origin_append_fn, &j), 0);           /* seq 1: the thread's */
    ck_assert_str_eq(j.rec.origin, "os_user=root uid=0 host=h1 tty=/dev/pts/1");
    memcpy(h0, j.rec.hash, 32);
    origin_rec(&j, "os_user=bob uid=7 host=h2 tty=-");
    ck_assert_int_eq(stor_write(g_env, origin_append_fn, &j), 0);           /* seq 2: its own */
    origin_rec(&j, NULL);
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread_append, &j), 0); /* seq 3: another thread's: none */
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(stor_approval_request(g_env, "alice", STOR_ROLE_KEY_ADMIN, 60, 3, argv, j.id), 0); /* seq 4 */
    ck_assert_int_eq(stor_read(g_env, origin_get_ap_fn, &j), 0);
    ck_assert_str_eq(j.ap.origin, "os_user=root uid=0 host=h1 tty=/dev/pts/1");
    stor_audit_origin_set(NULL);
    origin_rec(&j, NULL);
    ck_assert_int_eq(stor_write(g_env, origin_append_fn, &j), 0);           /* seq 5: cleared */
    ck_assert_int_eq(stor_audit_each(g_env, 1, each_origin, seen), 0);
    ck_assert_str_eq(seen[0], "os_user=root uid=0 host=h1 tty=/dev/pts/1");
    ck_assert_str_eq(seen[1], "os_user=bob uid=7 host=h2 tty=-");
    ck_assert_str_eq(seen[2], "");
    ck_assert_str_eq(seen[3], "os_user=root uid=0 host=h1 tty=/dev/pts/1");
    ck_assert_str_eq(seen[4], "");
    /* hashed: the same record with another origin has another hash */
    ck_assert_int_eq(memcmp(origin_first.hash, h0, 32), 0);
    TST_SET(origin_first.origin, "os_user=root uid=0 host=h9 tty=/dev/pts/1");
    uint8_t h1[32];
    ck_assert_int_eq(stor_audit_hash(&origin_first, origin_first.prev_hash, h1), 0);
    ck_assert_int_ne(memcmp(h0, h1, 32), 0);
}
END_TEST

/* A session's host identity is kept (tag 6); a session stored without one reads as zeros. */
START_TEST(t_opsession_host_id)
{
    op_job_t *j = calloc(1, sizeof(*j));
    ck_assert_ptr_nonnull(j);
    memset(j->sess.hash, 0x42, 32);
    TST_SET(j->sess.operator_name, "alice");
    j->sess.expires_at = time(NULL) + 60;
    memset(j->sess.host_id, 0x5a, 32);
    ck_assert_int_eq(stor_write(g_env, put_sess_fn, j), 0);
    memset(&j->sess.host_id, 0, 32);
    ck_assert_int_eq(stor_read(g_env, get_sess_fn, j), 0);
    for (int i = 0; i < 32; i++)
        ck_assert_uint_eq(j->sess.host_id[i], 0x5a);
    free(j);
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
    tcase_add_test(tc, t_opsession_purge);
    tcase_add_test(tc, t_approval_roundtrip);
    tcase_add_test(tc, t_approval_request_job);
    tcase_add_test(tc, t_operator_event);
    tcase_add_test(tc, t_audit_old_records_verify);
    tcase_add_test(tc, t_audit_owner_field);
    tcase_add_test(tc, t_audit_origin);
    tcase_add_test(tc, t_opsession_host_id);
    suite_add_tcase(s, tc);
    return s;
}
