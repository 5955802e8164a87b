/*
 * test_adm_audit_key.c - the audit key of the signed heads (adm_audit_key_init, adm_audit_key_export; J11) on the
 * fixture's provisioned world (tests/unit/fixture), its storage behind the fault-injecting backend
 * (tests/unit/storage/stor_fault.h). ctest: unit_admin_audit_key.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "adm.h"
#include "csc_fixture.h"
#include "stor_fault.h"

static cfx_t f;

static void setup(void)
{
    cfx_open(&f, NULL);
    sf_install(f.stor);
}

static void teardown(void)
{
    sf_disarm();
    cfx_close(&f);
}

static unsigned key_records(void)
{
    return cfx_audit_count(&f, STOR_EV_ADMIN, STOR_RES_OK, NULL);
}

/* Made once, audited once; exported as the HSM's public key, never over an existing file. */
START_TEST(t_init_and_export)
{
    char err[512], pem[CFX_PATH_MAX + 16];
    int created = -1;
    snprintf(pem, sizeof(pem), "%s/audit.pem", f.dir);
    /* no key yet: nothing to export, and no file left behind */
    ck_assert_int_eq(adm_audit_key_export(f.hsm, pem, err, sizeof(err)), ADM_ERR);
    ck_assert_msg(strstr(err, "no audit key in the HSM") != NULL, "%s", err);
    FILE *fp = fopen(pem, "r");
    ck_assert_ptr_null(fp);

    unsigned before = key_records();
    ck_assert_msg(adm_audit_key_init(f.stor, f.hsm, "test", &created, err, sizeof(err)) == ADM_OK, "%s", err);
    ck_assert_int_eq(created, 1);
    ck_assert_uint_eq(key_records(), before + 1);
    ck_assert_msg(adm_audit_key_init(f.stor, f.hsm, "test", &created, err, sizeof(err)) == ADM_OK, "%s", err);
    ck_assert_int_eq(created, 0); /* kept, not made again */
    ck_assert_uint_eq(key_records(), before + 1);

    ck_assert_msg(adm_audit_key_export(f.hsm, pem, err, sizeof(err)) == ADM_OK, "%s", err);
    fp = fopen(pem, "r");
    ck_assert_ptr_nonnull(fp);
    EVP_PKEY *pk = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
    fclose(fp);
    ck_assert_ptr_nonnull(pk);
    ck_assert_int_eq(EVP_PKEY_get_base_id(pk), EVP_PKEY_EC);
    ck_assert_int_eq(EVP_PKEY_get_bits(pk), 256);
    EVP_PKEY_free(pk);
    ck_assert_int_eq(adm_audit_key_export(f.hsm, pem, err, sizeof(err)), ADM_ERR);
    ck_assert_msg(strstr(err, "cannot create") != NULL, "%s", err);
}
END_TEST

/* The key is made, but storage refuses its audit record: an error that says so (the key stays; the next init finds
 * it and writes nothing). */
START_TEST(t_init_audit_fails)
{
    char err[512];
    int created = -1;
    unsigned before = key_records();
    sf_arm(SF_PUT, STOR_DB_AUDIT, SF_WRITE_TXN, 1, STOR_ERR_IO, 0);
    ck_assert_int_eq(adm_audit_key_init(f.stor, f.hsm, "test", &created, err, sizeof(err)), ADM_ERR);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_msg(strstr(err, "audit key created, but its audit record failed") != NULL, "%s", err);
    ck_assert_int_eq(created, 1);
    ck_assert_uint_eq(key_records(), before);
    ck_assert_msg(adm_audit_key_init(f.stor, f.hsm, "test", &created, err, sizeof(err)) == ADM_OK, "%s", err);
    ck_assert_int_eq(created, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin-audit-key");
    TCase *tc = tcase_create("audit-key");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_init_and_export);
    tcase_add_test(tc, t_init_audit_fails);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
