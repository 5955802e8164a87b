/* test_stor_enroll.c - enrollment storage: the enrollments and enroll_tickets tables (round trip, replace, delete,
 * validation, purge by expiry), the user's new fields (contact, applicant, mandate, state ENROLLING) and the PIN
 * marks of a credential's owner and delegates (stor_cred_pin_unset, stor_cred_pin_mark). */
#include <stdio.h>
#include <string.h>

#include "test_stor.h"

typedef struct {
    stor_enroll_t e;
    stor_enroll_ticket_t k;
    stor_user_t u;
    char name[STOR_NAME_MAX + 1];
} job_t;

static void mk(job_t *j, const char *user, int64_t expires)
{
    memset(j, 0, sizeof(*j));
    TST_SET(j->e.user, user);
    memset(j->e.code_hash, 0xc0, 32);
    j->e.expires_at = expires;
    j->e.tries_left = 5;
    j->e.kind = STOR_ENROLL_NEW;
    TST_SET(j->e.issued_by, "op1");
    j->e.created_at = 10;
    memset(j->e.ticket_hash, 0x7a, 32);
    memset(j->k.hash, 0x11, 32);
    TST_SET(j->k.user, user);
    memset(j->k.totp_secret, 0x55, 20);
    j->k.totp_secret_len = 20;
    j->k.expires_at = expires;
    TST_SET(j->name, user);
}

static int put_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    int rc = stor_txn_enroll_put(t, &j->e);
    return rc != 0 ? rc : stor_txn_enroll_ticket_put(t, &j->k);
}

static int get_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    uint8_t h[32];
    memcpy(h, j->k.hash, 32);
    int rc = stor_txn_enroll_get(t, j->name, &j->e);
    return rc != 0 ? rc : stor_txn_enroll_ticket_get(t, h, &j->k);
}

static int del_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    int rc = stor_txn_enroll_del(t, j->name);
    return rc != 0 ? rc : stor_txn_enroll_ticket_del(t, j->k.hash);
}

static int user_put_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_user_put(t, &((job_t *)arg)->u, 0);
}

static int user_get_fn(stor_txn_t *t, void *arg)
{
    job_t *j = arg;
    return stor_txn_user_get(t, j->name, &j->u);
}

START_TEST(t_enroll_round_trip)
{
    job_t j;
    mk(&j, "alice", 500);
    ck_assert_int_eq(stor_write(tst_env, put_fn, &j), 0);
    j.e.tries_left = 3; /* put replaces */
    ck_assert_int_eq(stor_write(tst_env, put_fn, &j), 0);
    memset(&j.e, 0, sizeof(j.e));
    memset(&j.k.user, 0, sizeof(j.k.user));
    ck_assert_int_eq(stor_read(tst_env, get_fn, &j), 0);
    ck_assert_str_eq(j.e.user, "alice");
    ck_assert_uint_eq(j.e.tries_left, 3);
    ck_assert_uint_eq(j.e.kind, STOR_ENROLL_NEW);
    ck_assert_str_eq(j.e.issued_by, "op1");
    ck_assert_int_eq(j.e.expires_at, 500);
    ck_assert_uint_eq(j.e.code_hash[31], 0xc0);
    ck_assert_uint_eq(j.e.ticket_hash[0], 0x7a);
    ck_assert_str_eq(j.k.user, "alice");
    ck_assert_uint_eq(j.k.totp_secret_len, 20);
    ck_assert_uint_eq(j.k.totp_secret[19], 0x55);
    ck_assert_int_eq(stor_write(tst_env, del_fn, &j), 0);
    ck_assert_int_eq(stor_write(tst_env, del_fn, &j), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_read(tst_env, get_fn, &j), STOR_ERR_NOTFOUND);
}
END_TEST

START_TEST(t_enroll_invalid)
{
    job_t j;
    mk(&j, "alice", 500);
    j.e.kind = 3;
    ck_assert_int_eq(stor_write(tst_env, put_fn, &j), STOR_ERR_INVAL);
    mk(&j, "bad name", 500);
    ck_assert_int_eq(stor_write(tst_env, put_fn, &j), STOR_ERR_INVAL);
    mk(&j, "alice", 500);
    j.k.totp_secret_len = 0;
    ck_assert_int_eq(stor_write(tst_env, put_fn, &j), STOR_ERR_INVAL);
    mk(&j, "alice", 500);
    j.k.totp_secret_len = STOR_TOTP_MAX + 1;
    ck_assert_int_eq(stor_write(tst_env, put_fn, &j), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_read(tst_env, get_fn, &j), STOR_ERR_NOTFOUND); /* nothing of it was kept */
}
END_TEST

START_TEST(t_enroll_purge)
{
    job_t j;
    mk(&j, "alice", 100);
    ck_assert_int_eq(stor_write(tst_env, put_fn, &j), 0);
    mk(&j, "bob", 200);
    memset(j.k.hash, 0x22, 32);
    ck_assert_int_eq(stor_write(tst_env, put_fn, &j), 0);
    ck_assert_int_eq(stor_purge_expired(tst_env, 150), 2); /* alice's code and ticket */
    mk(&j, "alice", 100);
    ck_assert_int_eq(stor_read(tst_env, get_fn, &j), STOR_ERR_NOTFOUND);
    mk(&j, "bob", 200);
    memset(j.k.hash, 0x22, 32);
    ck_assert_int_eq(stor_read(tst_env, get_fn, &j), 0);
}
END_TEST

START_TEST(t_enroll_user_fields)
{
    job_t j;
    mk(&j, "carol", 0);
    tst_user(&j.u, "carol", 0);
    j.u.status = STOR_USER_ENROLLING;
    TST_SET(j.u.contact, "carol@example.org");
    TST_SET(j.u.applicant, "app-1");
    TST_SET(j.u.mandate, "mandate-2");
    ck_assert_int_eq(stor_write(tst_env, user_put_fn, &j), 0);
    memset(&j.u, 0, sizeof(j.u));
    ck_assert_int_eq(stor_read(tst_env, user_get_fn, &j), 0);
    ck_assert_uint_eq(j.u.status, STOR_USER_ENROLLING);
    ck_assert_str_eq(j.u.contact, "carol@example.org");
    ck_assert_str_eq(j.u.applicant, "app-1");
    ck_assert_str_eq(j.u.mandate, "mandate-2");
}
END_TEST

START_TEST(t_enroll_pin_marks)
{
    static stor_cred_t c;
    memset(&c, 0, sizeof(c));
    TST_SET(c.owner, "alice");
    TST_SET(c.auth_expr, "PIN AND OTP");
    c.n_delegates = 2;
    TST_SET(c.delegates[0], "bob");
    TST_SET(c.delegates[1], "dave");
    ck_assert_int_eq(stor_cred_pin_unset(&c, "alice"), 0);
    ck_assert_int_eq(stor_cred_pin_mark(&c, "alice", 1), 0);
    ck_assert_int_eq(stor_cred_pin_mark(&c, "dave", 1), 0);
    ck_assert_int_eq(stor_cred_pin_unset(&c, "alice"), 1);
    ck_assert_int_eq(stor_cred_pin_unset(&c, "bob"), 0);
    ck_assert_int_eq(stor_cred_pin_unset(&c, "dave"), 1);
    ck_assert_uint_eq(c.delegate_pin_unset, 2);
    ck_assert_int_eq(stor_cred_pin_mark(&c, "eve", 1), -1);
    ck_assert_int_eq(stor_cred_pin_unset(&c, "eve"), 0);
    TST_SET(c.auth_expr, "OTP"); /* no PIN in the expression: nothing waits for one */
    ck_assert_int_eq(stor_cred_pin_unset(&c, "alice"), 0);
    TST_SET(c.auth_expr, "PIN");
    ck_assert_int_eq(stor_cred_pin_mark(&c, "dave", 0), 0);
    ck_assert_int_eq(stor_cred_pin_mark(&c, "alice", 0), 0);
    ck_assert_int_eq(stor_cred_pin_unset(&c, "dave"), 0);
    ck_assert_int_eq(stor_cred_pin_unset(&c, "alice"), 0);
    ck_assert_uint_eq(c.delegate_pin_unset, 0);
}
END_TEST

Suite *tst_enroll_suite(void)
{
    Suite *s = suite_create("stor_enroll");
    TCase *tc = tcase_create("enroll");

    tcase_add_checked_fixture(tc, tst_env_setup, tst_env_teardown);
    tcase_add_test(tc, t_enroll_round_trip);
    tcase_add_test(tc, t_enroll_invalid);
    tcase_add_test(tc, t_enroll_purge);
    tcase_add_test(tc, t_enroll_user_fields);
    tcase_add_test(tc, t_enroll_pin_marks);
    suite_add_tcase(s, tc);
    return s;
}
