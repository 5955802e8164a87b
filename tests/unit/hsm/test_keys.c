/*
 * test_keys.c - hsm_keygen / hsm_pubkey / hsm_destroy and the attributes of generated keys.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>

#include "check_hsm.h"

static const uint8_t zero_id[HSM_KEYID_LEN];

static void check_rsa_pub(EVP_PKEY *pk, int bits)
{
    BIGNUM *e = NULL;

    ck_assert_int_eq(EVP_PKEY_is_a(pk, "RSA"), 1);
    ck_assert_int_eq(EVP_PKEY_get_bits(pk), bits);
    ck_assert_int_eq(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    ck_assert(BN_is_word(e, 65537));
    BN_free(e);
}

static void check_ec_pub(EVP_PKEY *pk, int nid)
{
    char group[64];
    size_t len = 0;

    ck_assert_int_eq(EVP_PKEY_is_a(pk, "EC"), 1);
    ck_assert_int_eq(EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &len), 1);
    ck_assert_int_eq(OBJ_sn2nid(group), nid);
}

START_TEST(pubkey_shared_keys)
{
    hsm_t *h = t_open(1);
    EVP_PKEY *pk = NULL;

    ck_assert_mem_ne(t_env.rsa2048, zero_id, HSM_KEYID_LEN);
    ck_assert_mem_ne(t_env.rsa2048, t_env.ec256, HSM_KEYID_LEN);
    ck_assert_int_eq(hsm_pubkey(h, t_env.rsa2048, HSM_KEYID_LEN, &pk), HSM_OK);
    check_rsa_pub(pk, 2048);
    EVP_PKEY_free(pk);
    ck_assert_int_eq(hsm_pubkey(h, t_env.ec256, HSM_KEYID_LEN, &pk), HSM_OK);
    check_ec_pub(pk, NID_X9_62_prime256v1);
    EVP_PKEY_free(pk);
    ck_assert_int_eq(hsm_pubkey(h, t_env.ec384, HSM_KEYID_LEN, &pk), HSM_OK);
    check_ec_pub(pk, NID_secp384r1);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

static const int curves[] = {NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};
static const int curve_md[] = {NID_sha256, NID_sha384, NID_sha512};

START_TEST(keygen_ec)
{
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .curve_nid = curves[_i]};
    hsm_sign_params_t p = t_params(HSM_SIG_ECDSA, curve_md[_i], 0, 0);
    uint8_t id[HSM_KEYID_LEN], id2[HSM_KEYID_LEN];
    hsm_t *h = t_open(1);
    EVP_PKEY *pk = NULL;

    ck_assert_int_eq(hsm_keygen(h, &spec, "ec-key", id), HSM_OK);
    ck_assert_mem_ne(id, zero_id, HSM_KEYID_LEN);
    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_OK);
    check_ec_pub(pk, curves[_i]);
    ck_assert_int_eq(t_sign_verify(h, id, pk, &p), HSM_OK);
    /* A second key with the same label gets another id. */
    ck_assert_int_eq(hsm_keygen(h, &spec, "ec-key", id2), HSM_OK);
    ck_assert_mem_ne(id, id2, HSM_KEYID_LEN);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

START_TEST(keygen_rsa)
{
    static const unsigned bits[] = {3072, 4096};
    hsm_keyspec_t spec = {.type = HSM_KEY_RSA, .bits = bits[_i]};
    hsm_sign_params_t p = t_params(HSM_SIG_RSA_PKCS1, NID_sha256, 0, 0);
    uint8_t id[HSM_KEYID_LEN];
    hsm_t *h = t_open(1);
    EVP_PKEY *pk = NULL;

    ck_assert_int_eq(hsm_keygen(h, &spec, "rsa-key", id), HSM_OK);
    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_OK);
    check_rsa_pub(pk, (int)bits[_i]);
    ck_assert_int_eq(t_sign_verify(h, id, pk, &p), HSM_OK);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

START_TEST(keygen_invalid)
{
    hsm_keyspec_t rsa1024 = {.type = HSM_KEY_RSA, .bits = 1024};
    hsm_keyspec_t rsa2049 = {.type = HSM_KEY_RSA, .bits = 2049};
    hsm_keyspec_t k256 = {.type = HSM_KEY_EC, .curve_nid = NID_secp256k1};
    hsm_keyspec_t nocurve = {.type = HSM_KEY_EC, .curve_nid = NID_undef};
    hsm_keyspec_t notype = {.type = (hsm_key_type_t)7, .bits = 2048};
    hsm_keyspec_t ok = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    char label[HSM_LABEL_MAX + 2];
    uint8_t id[HSM_KEYID_LEN];
    hsm_t *h = t_open(1);

    memset(id, 0xaa, sizeof(id));
    ck_assert_int_eq(hsm_keygen(h, &rsa1024, "x", id), HSM_ERR_INVAL);
    ck_assert_mem_eq(id, zero_id, HSM_KEYID_LEN);
    ck_assert_int_eq(hsm_keygen(h, &rsa2049, "x", id), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_keygen(h, &k256, "x", id), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_keygen(h, &nocurve, "x", id), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_keygen(h, &notype, "x", id), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_keygen(NULL, &ok, "x", id), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_keygen(h, NULL, "x", id), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_keygen(h, &ok, NULL, id), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_keygen(h, &ok, "x", NULL), HSM_ERR_INVAL);
    memset(label, 'l', sizeof(label) - 1);
    label[sizeof(label) - 1] = '\0';
    ck_assert_int_eq(hsm_keygen(h, &ok, label, id), HSM_ERR_INVAL);
    label[HSM_LABEL_MAX] = '\0'; /* exactly the maximum is fine */
    ck_assert_int_eq(hsm_keygen(h, &ok, label, id), HSM_OK);
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_OK);
    hsm_close(h);
}
END_TEST

static void check_label(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, const char *label)
{
    CK_SLOT_ID slot;
    char buf[64];
    CK_ATTRIBUTE a = {CKA_LABEL, buf, sizeof(buf)};

    ck_assert_int_eq(hsm_test_p11(h, &slot)->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
    ck_assert_uint_eq(a.ulValueLen, strlen(label));
    ck_assert_mem_eq(buf, label, strlen(label));
}

/* Read back what the token stored, not what we asked for. */
START_TEST(key_attributes)
{
    const uint8_t *id = _i == 0 ? t_env.rsa2048 : t_env.ec256;
    hsm_t *h = t_open(1);
    CK_SLOT_ID slot;
    CK_FUNCTION_LIST *p11 = hsm_test_p11(h, &slot);
    CK_SESSION_HANDLE s = t_raw_session(h);
    CK_OBJECT_HANDLE priv = t_raw_find(h, s, CKO_PRIVATE_KEY, id), pub = t_raw_find(h, s, CKO_PUBLIC_KEY, id);
    uint8_t secret[1024];
    CK_ATTRIBUTE a = {_i == 0 ? CKA_PRIVATE_EXPONENT : CKA_VALUE, secret, sizeof(secret)};

    ck_assert_uint_ne(priv, CK_INVALID_HANDLE);
    ck_assert_uint_ne(pub, CK_INVALID_HANDLE);
    ck_assert(t_raw_bool(h, s, priv, CKA_TOKEN));
    ck_assert(t_raw_bool(h, s, priv, CKA_PRIVATE));
    ck_assert(t_raw_bool(h, s, priv, CKA_SENSITIVE));
    ck_assert(t_raw_bool(h, s, priv, CKA_ALWAYS_SENSITIVE));
    ck_assert(!t_raw_bool(h, s, priv, CKA_EXTRACTABLE));
    ck_assert(t_raw_bool(h, s, priv, CKA_NEVER_EXTRACTABLE));
    ck_assert(t_raw_bool(h, s, priv, CKA_SIGN));
    ck_assert(!t_raw_bool(h, s, priv, CKA_SIGN_RECOVER));
    ck_assert(!t_raw_bool(h, s, priv, CKA_DECRYPT));
    ck_assert(!t_raw_bool(h, s, priv, CKA_UNWRAP));
    ck_assert(!t_raw_bool(h, s, priv, CKA_DERIVE));
    ck_assert(t_raw_bool(h, s, pub, CKA_TOKEN));
    ck_assert(t_raw_bool(h, s, pub, CKA_VERIFY));
    ck_assert(!t_raw_bool(h, s, pub, CKA_ENCRYPT));
    ck_assert(!t_raw_bool(h, s, pub, CKA_WRAP));
    check_label(h, s, priv, _i == 0 ? "shared-rsa2048" : "shared-p256");
    check_label(h, s, pub, _i == 0 ? "shared-rsa2048" : "shared-p256");
    /* The private value cannot be read. */
    ck_assert_int_eq(p11->C_GetAttributeValue(s, priv, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
    t_raw_close(h, s);
    hsm_close(h);
}
END_TEST

START_TEST(pubkey_errors)
{
    static const uint8_t unknown[HSM_KEYID_LEN] = {1, 2, 3};
    uint8_t long_id[HSM_ID_MAX + 1] = {0};
    hsm_t *h = t_open(1);
    EVP_PKEY *pk = (EVP_PKEY *)&pk;

    ck_assert_int_eq(hsm_pubkey(h, unknown, sizeof(unknown), &pk), HSM_ERR_NOKEY);
    ck_assert_ptr_null(pk);
    pk = (EVP_PKEY *)&pk;
    ck_assert_int_eq(hsm_pubkey(NULL, unknown, sizeof(unknown), &pk), HSM_ERR_INVAL);
    ck_assert_ptr_null(pk);
    ck_assert_int_eq(hsm_pubkey(h, NULL, sizeof(unknown), &pk), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_pubkey(h, unknown, 0, &pk), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_pubkey(h, long_id, sizeof(long_id), &pk), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_pubkey(h, unknown, sizeof(unknown), NULL), HSM_ERR_INVAL);
    /* A prefix of a real id is another id. */
    ck_assert_int_eq(hsm_pubkey(h, t_env.ec256, HSM_KEYID_LEN - 1, &pk), HSM_ERR_NOKEY);
    hsm_close(h);
}
END_TEST

START_TEST(destroy_then_sign)
{
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    hsm_sign_params_t p = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    uint8_t id[HSM_KEYID_LEN], dig[32] = {0}, sig[HSM_SIG_MAX];
    size_t slen = 0;
    hsm_t *h = t_open(2);
    EVP_PKEY *pk = NULL;
    CK_SESSION_HANDLE s;

    ck_assert_int_eq(hsm_keygen(h, &spec, "doomed", id), HSM_OK);
    ck_assert_int_eq(t_sign1(h, id, &p, dig, sizeof(dig), sig, &slen), HSM_OK); /* now cached */
    ck_assert_uint_ge(hsm_test_cache_count(h), 1);
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_OK);
    ck_assert_int_eq(t_sign1(h, id, &p, dig, sizeof(dig), sig, &slen), HSM_ERR_NOKEY);
    ck_assert_uint_eq(slen, 0);
    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_ERR_NOKEY);
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_ERR_NOKEY);
    s = t_raw_session(h);
    ck_assert_uint_eq(t_raw_find(h, s, CKO_PRIVATE_KEY, id), CK_INVALID_HANDLE);
    ck_assert_uint_eq(t_raw_find(h, s, CKO_PUBLIC_KEY, id), CK_INVALID_HANDLE);
    t_raw_close(h, s);
    ck_assert_int_eq(hsm_destroy(h, NULL, HSM_KEYID_LEN), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_destroy(NULL, id, HSM_KEYID_LEN), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_destroy(h, id, 0), HSM_ERR_INVAL);
    hsm_close(h);
}
END_TEST

/* Another process (here: a raw call) destroys the key; our cached handle must not be trusted. */
START_TEST(destroy_behind_our_back)
{
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    hsm_sign_params_t p = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    uint8_t id[HSM_KEYID_LEN], dig[32] = {0}, sig[HSM_SIG_MAX];
    size_t slen = 0;
    hsm_t *h = t_open(1);
    CK_SLOT_ID slot;
    CK_FUNCTION_LIST *p11 = hsm_test_p11(h, &slot);
    CK_SESSION_HANDLE s;
    EVP_PKEY *pk = NULL;

    ck_assert_int_eq(hsm_keygen(h, &spec, "vanishing", id), HSM_OK);
    ck_assert_int_eq(t_sign1(h, id, &p, dig, sizeof(dig), sig, &slen), HSM_OK);
    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_OK); /* caches the public handle too */
    EVP_PKEY_free(pk);
    pk = NULL;
    s = t_raw_session(h);
    ck_assert_int_eq(p11->C_DestroyObject(s, t_raw_find(h, s, CKO_PRIVATE_KEY, id)), CKR_OK);
    ck_assert_int_eq(p11->C_DestroyObject(s, t_raw_find(h, s, CKO_PUBLIC_KEY, id)), CKR_OK);
    t_raw_close(h, s);
    ck_assert_int_eq(t_sign1(h, id, &p, dig, sizeof(dig), sig, &slen), HSM_ERR_NOKEY);
    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_ERR_NOKEY);
    ck_assert_ptr_null(pk);
    /* Other keys are unaffected. */
    ck_assert_int_eq(t_sign1(h, t_env.ec256, &p, dig, sizeof(dig), sig, &slen), HSM_OK);
    hsm_close(h);
}
END_TEST

Suite *t_suite_keys(void)
{
    Suite *s = suite_create("hsm_keys");
    TCase *tc = tcase_create("keys");
    TCase *slow = tcase_create("rsa-keygen");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, t_setup, NULL);
    tcase_add_test(tc, pubkey_shared_keys);
    tcase_add_loop_test(tc, keygen_ec, 0, 3);
    tcase_add_test(tc, keygen_invalid);
    tcase_add_loop_test(tc, key_attributes, 0, 2);
    tcase_add_test(tc, pubkey_errors);
    tcase_add_test(tc, destroy_then_sign);
    tcase_add_test(tc, destroy_behind_our_back);
    suite_add_tcase(s, tc);
    /* RSA-4096 generation takes seconds, more under sanitizers. */
    tcase_set_timeout(slow, 300);
    tcase_add_checked_fixture(slow, t_setup, NULL);
    tcase_add_loop_test(slow, keygen_rsa, 0, 2);
    suite_add_tcase(s, slow);
    return s;
}
