/* Unit tests of certificate requests and their subject names (admin/adm_certmgmt.c): requests are signed in a SoftHSM
 * token made per test. (The CRL store's tests are pki's: tests/unit/pki/test_crl.c.) */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "adm_int.h"
#include "cfx_files.h"

START_TEST(t_subject)
{
    X509_NAME *n;
    char err[256], dn[256];
    ck_assert_int_eq(adm_subject_build("Taro Yamada", "Example KK", "JP", &n, err, sizeof(err)), 0);
    ck_assert_int_eq(pki_dn(n, dn, sizeof(dn)), 0);
    ck_assert_str_eq(dn, "CN=Taro Yamada,O=Example KK,C=JP");
    X509_NAME_free(n);
    ck_assert_int_eq(adm_subject_build("\xe5\xb1\xb1\xe7\x94\xb0", "O", "JP", &n, err, sizeof(err)), 0); /* UTF-8 */
    X509_NAME_free(n);
    static const char *const bad[][3] = {
        {"", "O", "JP"}, {"CN", "", "JP"}, {"CN", "O", "jp"}, {"CN", "O", "JPN"}, {"CN", "O", NULL},
        {NULL, "O", "JP"}, {"a\nb", "O", "JP"}, {"CN", "O\x01", "JP"},
        {"12345678901234567890123456789012345678901234567890123456789012345", "O", "JP"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = (X509_NAME *)1;
        ck_assert_int_eq(adm_subject_build(bad[i][0], bad[i][1], bad[i][2], &n, err, sizeof(err)), -1);
        ck_assert_ptr_null(n);
        ck_assert_int_gt(strlen(err), 0);
    }
}
END_TEST

/* ---- certificate requests signed in a SoftHSM token ------------------------------------------------------ */

static char hsm_dir[CFX_PATH_MAX];

static void hsm_setup(void)
{
    char conf[CFX_PATH_MAX + 32];
    ck_assert_int_eq(cfx_tmpdir(NULL, "csc-csr-", hsm_dir, sizeof(hsm_dir)), 0);
    ck_assert_int_eq(cfx_softhsm_token(hsm_dir, "csr-unit", conf, sizeof(conf)), 0);
}

static void hsm_teardown(void)
{
    ck_assert_int_eq(cfx_rmtree(hsm_dir), 0);
}

START_TEST(t_csr)
{
    static const struct {
        hsm_keyspec_t spec;
        int sig_nid;
    } keys[] = {
        {{HSM_KEY_RSA, 2048, 0}, NID_sha256WithRSAEncryption},
        {{HSM_KEY_EC, 256, NID_X9_62_prime256v1}, NID_ecdsa_with_SHA256},
        {{HSM_KEY_EC, 384, NID_secp384r1}, NID_ecdsa_with_SHA384},
        {{HSM_KEY_EC, 521, NID_secp521r1}, NID_ecdsa_with_SHA512},
    };
    hsm_config_t cfg = {.module = CFX_SOFTHSM_MODULE, .token_label = "csr-unit", .pin = CFX_TOKEN_PIN};
    hsm_t *h;
    char err[256], dn[256];
    ck_assert_int_eq(hsm_open(&cfg, &h), HSM_OK);
    X509_NAME *subj;
    ck_assert_int_eq(adm_subject_build("Hanako", "Example KK", "JP", &subj, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        uint8_t id[HSM_KEYID_LEN];
        EVP_PKEY *pub;
        X509_REQ *req;
        ck_assert_int_eq(hsm_keygen(h, &keys[i].spec, "csr", id), HSM_OK);
        ck_assert_int_eq(hsm_pubkey(h, id, sizeof(id), &pub), HSM_OK);
        ck_assert_int_eq(adm_csr_build(h, id, sizeof(id), subj, &req, err, sizeof(err)), 0);
        ck_assert_int_eq(X509_REQ_verify(req, pub), 1);                   /* signed by the HSM key */
        ck_assert_int_eq(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), pub), 1); /* and naming it */
        ck_assert_int_eq(X509_REQ_get_signature_nid(req), keys[i].sig_nid);
        ck_assert_int_eq(pki_dn(X509_REQ_get_subject_name(req), dn, sizeof(dn)), 0);
        ck_assert_str_eq(dn, "CN=Hanako,O=Example KK,C=JP");
        /* Another key's public key does not verify it. */
        EVP_PKEY *other = EVP_EC_gen("P-256");
        ck_assert_int_ne(X509_REQ_verify(req, other), 1);
        EVP_PKEY_free(other);
        X509_REQ_free(req);
        EVP_PKEY_free(pub);
        ck_assert_int_eq(hsm_destroy(h, id, sizeof(id)), HSM_OK);
        /* No key, no request. */
        ck_assert_int_eq(adm_csr_build(h, id, sizeof(id), subj, &req, err, sizeof(err)), -1);
        ck_assert_ptr_null(req);
    }
    X509_NAME_free(subj);
    hsm_close(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin-csr");
    TCase *tc = tcase_create("subject");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_subject);
    suite_add_tcase(s, tc);
    TCase *tc_csr = tcase_create("csr");
    tcase_add_checked_fixture(tc_csr, hsm_setup, hsm_teardown);
    tcase_set_timeout(tc_csr, 120);
    tcase_add_test(tc_csr, t_csr);
    suite_add_tcase(s, tc_csr);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
