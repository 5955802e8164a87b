/*
 * test_adm_users.c - csc-admin's changes of a user's evidence reference and of a credential's delegates refused (an
 * unknown user or credential, a terminated user, a bad reference, storage failing the write: tests/unit/storage/
 * stor_fault.h), each with a message that names it and no audit record, on the fixture's provisioned world.
 * ctest: unit_admin_users.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adm.h"
#include "csc_fixture.h"
#include "stor_fault.h"

#include <openssl/evp.h>

static cfx_t f;
static adm_t a;

static void setup(void)
{
    cfx_open(&f, NULL);
    sf_install(f.stor);
    a = (adm_t){.stor = f.stor, .hsm = f.hsm, .operator_name = "test", .scrypt_log2n = 10};
}

static void teardown(void)
{
    sf_disarm();
    cfx_close(&f);
}

static unsigned admin_records(void)
{
    return cfx_audit_count(&f, STOR_EV_ADMIN, STOR_RES_OK, NULL);
}

/* The detail of the last admin record about user. */
typedef struct {
    const char *user;
    char detail[sizeof(((stor_audit_t *)0)->detail)];
} last_admin_t;

static int last_admin_fn(const stor_audit_t *r, void *arg)
{
    last_admin_t *l = arg;
    if (r->event == STOR_EV_ADMIN && strcmp(r->user, l->user) == 0)
        snprintf(l->detail, sizeof(l->detail), "%s", r->detail);
    return 0;
}

static void expect_err(int rc, const char *err, const char *want)
{
    ck_assert_int_eq(rc, ADM_ERR);
    ck_assert_msg(strstr(err, want) != NULL, "'%s' does not say '%s'", err, want);
}

static int terminate_fn(stor_txn_t *t, void *arg)
{
    stor_user_t *u = calloc(1, sizeof(*u));
    int rc = u != NULL ? stor_txn_user_get(t, arg, u) : STOR_ERR_NOMEM;
    if (rc == 0) {
        u->status = STOR_USER_TERMINATED;
        rc = stor_txn_user_put(t, u, 0);
    }
    free(u);
    return rc;
}

/* A renewal whose write fails at its commit: the credential keeps its old key, which is still in the HSM; only the
 * new key goes. (The callback used to write the old record into the buffer of the new key, which the failure path
 * then destroyed: the credential's live key.) A renewal after it succeeds. */
START_TEST(t_renew_commit_fails)
{
    char err[512], crt[CFX_PATH_MAX + 16], key[CFX_PATH_MAX + 16];
    stor_cred_t *before = calloc(1, sizeof(*before)), *after = calloc(1, sizeof(*after));
    EVP_PKEY *pub = NULL;

    ck_assert_ptr_nonnull(before);
    ck_assert_ptr_nonnull(after);
    const char *slash = strrchr(f.dir, '/'); /* the fixture's CA is in the world's root, above each test's copy */
    ck_assert_ptr_nonnull(slash);
    snprintf(crt, sizeof(crt), "%.*s/ca.crt", (int)(slash - f.dir), f.dir);
    snprintf(key, sizeof(key), "%.*s/ca.key", (int)(slash - f.dir), f.dir);
    adm_ca_t ca = {.cert_file = crt, .key_file = key, .days = 365};
    a.ca = &ca;
    ck_assert_int_eq(stor_cred_get(f.stor, CFX_CRED_EC, before), STOR_OK);
    /* every write commit fails while armed: the fixture's in-process csc-sam may commit one of its own meanwhile
     * (the full test's run saw the renewal's commit go through once when only the first was armed) */
    sf_arm(SF_COMMIT, SF_ANY_TABLE, SF_WRITE_TXN, 1, STOR_ERR_IO, 1);
    expect_err(adm_cred_renew(&a, CFX_CRED_EC, err, sizeof(err)), err, "storage: ");
    ck_assert_uint_ge(sf_fired(), 1);
    sf_disarm();
    ck_assert_int_eq(stor_cred_get(f.stor, CFX_CRED_EC, after), STOR_OK);
    ck_assert_uint_eq(after->key_id_len, before->key_id_len);
    ck_assert_mem_eq(after->key_id, before->key_id, before->key_id_len);
    ck_assert_int_eq(hsm_pubkey(f.hsm, before->key_id, before->key_id_len, &pub), HSM_OK); /* the old key lives */
    EVP_PKEY_free(pub);
    ck_assert_msg(adm_cred_renew(&a, CFX_CRED_EC, err, sizeof(err)) == ADM_OK, "%s", err);
    ck_assert_int_eq(stor_cred_get(f.stor, CFX_CRED_EC, after), STOR_OK);
    ck_assert(after->key_id_len != before->key_id_len || memcmp(after->key_id, before->key_id, before->key_id_len));
    free(before);
    free(after);
}
END_TEST

/* A suspension whose batch runs again (its first commit answered STOR_ERR_RETRY, as a lost PostgreSQL connection
 * does) writes one record that says once what it revoked. (The revocation's counts were appended to the caller's
 * record on each run: twice.) */
START_TEST(t_suspend_rerun)
{
    char err[512];
    last_admin_t l = {.user = CFX_USER};
    sf_arm(SF_COMMIT, STOR_DB_USERS, SF_WRITE_TXN, 1, STOR_ERR_RETRY, 0);
    ck_assert_msg(adm_user_suspend_resume(&a, CFX_USER, STOR_USER_SUSPENDED, err, sizeof(err)) == ADM_OK, "%s", err);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_int_eq(stor_audit_each(f.stor, 1, last_admin_fn, &l), STOR_OK);
    const char *first = strstr(l.detail, " revoked: ");
    ck_assert_msg(first != NULL, "%s", l.detail);
    ck_assert_msg(strstr(first + 1, " revoked: ") == NULL, "%s", l.detail);
}
END_TEST

START_TEST(t_user_change_refused)
{
    char err[512];
    unsigned before = admin_records();
    expect_err(adm_user_change(&a, "nobody", "ref-1", err, sizeof(err)), err, "no user nobody");
    sf_arm(SF_PUT, STOR_DB_USERS, SF_WRITE_TXN, 1, STOR_ERR_IO, 0);
    expect_err(adm_user_change(&a, CFX_USER, "ref-1", err, sizeof(err)), err, "storage: ");
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_uint_eq(admin_records(), before);
    ck_assert_msg(adm_user_change(&a, CFX_USER, "ref-1", err, sizeof(err)) == ADM_OK, "%s", err);
    ck_assert_uint_eq(admin_records(), before + 1);
    ck_assert_int_eq(stor_write(f.stor, terminate_fn, (void *)CFX_USER), STOR_OK);
    expect_err(adm_user_change(&a, CFX_USER, "ref-2", err, sizeof(err)), err, "is terminated");
    ck_assert_uint_eq(admin_records(), before + 1);
}
END_TEST

START_TEST(t_delegate_refused)
{
    char err[512];
    unsigned before = admin_records();
    expect_err(adm_cred_delegate(&a, CFX_CRED_EC, "bob", "bad\nref", 1, err, sizeof(err)), err,
               "evidence reference must be");
    expect_err(adm_cred_delegate(&a, "no-such-cred", CFX_USER, "ref-1", 0, err, sizeof(err)), err,
               "no credential no-such-cred");
    sf_arm(SF_GET, STOR_DB_CREDS, SF_WRITE_TXN, 1, STOR_ERR_IO, 0);
    expect_err(adm_cred_delegate(&a, CFX_CRED_EC, "bob", "ref-1", 0, err, sizeof(err)), err, "storage: ");
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_uint_eq(admin_records(), before);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin-users");
    TCase *tc = tcase_create("refused");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_user_change_refused);
    tcase_add_test(tc, t_renew_commit_fails);
    tcase_add_test(tc, t_suspend_rerun);
    tcase_add_test(tc, t_delegate_refused);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
