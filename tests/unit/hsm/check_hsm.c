/*
 * check_hsm.c - runner and fixture of the hsm unit tests (SoftHSMv2 token in a temporary directory).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "check_hsm.h"

t_env_t t_env;

void t_setup(void)
{
    ck_assert_int_eq(setenv("SOFTHSM2_CONF", t_env.conf, 1), 0);
}

int t_open_rc(const char *module, const char *label, const char *pin, unsigned sessions, hsm_t **out)
{
    hsm_config_t cfg = {.module = module, .token_label = label, .pin = pin, .sessions = sessions};

    return hsm_open(&cfg, out);
}

hsm_t *t_open(unsigned sessions)
{
    hsm_t *h = NULL;
    int rc = t_open_rc(T_MODULE, T_LABEL, T_PIN, sessions, &h);

    ck_assert_msg(rc == HSM_OK, "hsm_open: %s", hsm_strerror(rc));
    ck_assert_ptr_nonnull(h);
    return h;
}

hsm_sign_params_t t_params(hsm_sig_scheme_t scheme, int md_nid, int mgf_nid, unsigned salt)
{
    hsm_sign_params_t p = {.scheme = scheme, .md_nid = md_nid, .mgf1_md_nid = mgf_nid, .salt_len = salt};

    return p;
}

int t_verify(EVP_PKEY *pk, const hsm_sign_params_t *p, const uint8_t *dig, size_t dlen, const uint8_t *sig,
             size_t slen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);
    int ok = 0;

    if (!c || EVP_PKEY_verify_init(c) != 1)
        goto out;
    if (p->scheme == HSM_SIG_RSA_PKCS1) {
        if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) != 1 ||
            EVP_PKEY_CTX_set_signature_md(c, EVP_get_digestbynid(p->md_nid)) != 1)
            goto out;
    } else if (p->scheme == HSM_SIG_RSA_PSS) {
        if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_signature_md(c, EVP_get_digestbynid(p->md_nid)) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_get_digestbynid(p->mgf1_md_nid)) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(c, (int)p->salt_len) != 1)
            goto out;
    }
    ok = EVP_PKEY_verify(c, sig, slen, dig, dlen) == 1;
out:
    EVP_PKEY_CTX_free(c);
    return ok;
}

int t_sign1(hsm_t *h, const uint8_t *id, const hsm_sign_params_t *p, const uint8_t *dig, size_t dlen, uint8_t *sig,
            size_t *slen)
{
    const uint8_t *digs[1] = {dig};
    uint8_t *sigs[1] = {sig};

    return hsm_sign(h, id, HSM_KEYID_LEN, p, digs, dlen, 1, sigs, slen);
}

int t_sign_verify(hsm_t *h, const uint8_t *id, EVP_PKEY *pk, const hsm_sign_params_t *p)
{
    uint8_t dig[64], sig[HSM_SIG_MAX];
    size_t dlen = hsm_md_len(p->md_nid), slen = 0;
    int rc;

    ck_assert_uint_gt(dlen, 0);
    ck_assert_int_eq(RAND_bytes(dig, (int)dlen), 1);
    if ((rc = t_sign1(h, id, p, dig, dlen, sig, &slen)) != HSM_OK)
        return rc;
    ck_assert_uint_gt(slen, 0);
    ck_assert_msg(t_verify(pk, p, dig, dlen, sig, slen), "signature (scheme %d md %d) does not verify", p->scheme,
                  p->md_nid);
    /* The verification can fail: a changed digest must not verify. */
    dig[0] ^= 0x01;
    ck_assert_msg(!t_verify(pk, p, dig, dlen, sig, slen), "signature verifies over another digest");
    return rc;
}

int t_sign_rc(hsm_t *h, const uint8_t *id)
{
    hsm_sign_params_t p = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    uint8_t dig[32] = {1}, sig[HSM_SIG_MAX];
    size_t slen = 0;

    return t_sign1(h, id, &p, dig, sizeof(dig), sig, &slen);
}

CK_SESSION_HANDLE t_raw_session(hsm_t *h)
{
    CK_SLOT_ID slot;
    CK_FUNCTION_LIST *p11 = hsm_test_p11(h, &slot);
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;

    ck_assert_int_eq(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK);
    return s;
}

void t_raw_close(hsm_t *h, CK_SESSION_HANDLE s)
{
    CK_SLOT_ID slot;

    ck_assert_int_eq(hsm_test_p11(h, &slot)->C_CloseSession(s), CKR_OK);
}

CK_OBJECT_HANDLE t_raw_find(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const uint8_t *id)
{
    CK_SLOT_ID slot;
    CK_FUNCTION_LIST *p11 = hsm_test_p11(h, &slot);
    uint8_t idbuf[HSM_KEYID_LEN];
    CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, idbuf, sizeof(idbuf)}};
    CK_OBJECT_HANDLE o[2];
    CK_ULONG n = 0;

    memcpy(idbuf, id, sizeof(idbuf));
    ck_assert_int_eq(p11->C_FindObjectsInit(s, t, 2), CKR_OK);
    ck_assert_int_eq(p11->C_FindObjects(s, o, 2, &n), CKR_OK);
    ck_assert_int_eq(p11->C_FindObjectsFinal(s), CKR_OK);
    ck_assert_uint_le(n, 1);
    return n ? o[0] : CK_INVALID_HANDLE;
}

int t_raw_bool(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
    CK_SLOT_ID slot;
    CK_BBOOL b = 2;
    CK_ATTRIBUTE a = {type, &b, sizeof(b)};

    ck_assert_int_eq(hsm_test_p11(h, &slot)->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
    ck_assert_uint_eq(a.ulValueLen, sizeof(b));
    return b == CK_TRUE;
}

static int shared_keys(void)
{
    hsm_keyspec_t rsa = {.type = HSM_KEY_RSA, .bits = 2048};
    hsm_keyspec_t p256 = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    hsm_keyspec_t p384 = {.type = HSM_KEY_EC, .curve_nid = NID_secp384r1};
    hsm_t *h = NULL;
    int rc;

    if ((rc = t_open_rc(T_MODULE, T_LABEL, T_PIN, 1, &h)) == HSM_OK &&
        (rc = hsm_keygen(h, &rsa, "shared-rsa2048", t_env.rsa2048)) == HSM_OK &&
        (rc = hsm_keygen(h, &p256, "shared-p256", t_env.ec256)) == HSM_OK)
        rc = hsm_keygen(h, &p384, "shared-p384", t_env.ec384);
    /* Finalize before Check forks: each test starts the module afresh in its child. */
    hsm_close(h);
    return rc;
}

int main(void)
{
    SRunner *sr;
    int failed;

    /* Half the buffer at most: tests build private token paths below it. */
    if (cfx_tmpdir(NULL, "hsm-unit-", t_env.dir, sizeof(t_env.dir) / 2) != 0) {
        fprintf(stderr, "cannot make a temporary directory (TMPDIR too long?)\n");
        return EXIT_FAILURE;
    }
    if (cfx_softhsm_token(t_env.dir, T_LABEL, t_env.conf, sizeof(t_env.conf)) != 0 || shared_keys() != HSM_OK) {
        fprintf(stderr, "cannot set up the SoftHSM token in %s\n", t_env.dir);
        cfx_rmtree(t_env.dir);
        return EXIT_FAILURE;
    }
    sr = srunner_create(t_suite_open());
    srunner_add_suite(sr, t_suite_keys());
    srunner_add_suite(sr, t_suite_sign());
    srunner_add_suite(sr, t_suite_recovery());
    srunner_add_suite(sr, t_suite_factor()); /* before backup: its first test wants a token without the factor key */
    srunner_add_suite(sr, t_suite_backup());
    srunner_add_suite(sr, t_suite_p11kit());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cfx_rmtree(t_env.dir);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
