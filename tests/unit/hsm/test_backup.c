/*
 * test_backup.c - backup keys (SO-created, trusted), wrap/unwrap round trips, the integrity tag, and the
 * refusals SoftHSM enforces (non-extractable key, key wrappable only with a trusted key).
 */
#include <string.h>

#include "check_hsm.h"

static const uint8_t wrap_id[HSM_KEYID_LEN] = "csc-backup-wrap1";
static const uint8_t tmp_id[HSM_KEYID_LEN] = "csc-backup-tmp-1";
static const uint8_t mac_id[HSM_KEYID_LEN] = "csc-backup-mac-1";

static hsm_t *open_with_backup(void)
{
    hsm_t *h = t_open(2);
    int created = -1;

    ck_assert_int_eq(hsm_backup_init(h, T_SO_PIN, &created), HSM_OK);
    return h;
}

START_TEST(init_creates_trusted_keys)
{
    hsm_t *h = t_open(2);
    int created = -1, trusted = -1;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE w, m;
    EVP_PKEY *pk = NULL;
    hsm_sign_params_t p = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);

    /* The shared token has no backup keys yet (this is the first test of the suite, and no other suite makes
     * them); without the right SO PIN none can be made. */
    ck_assert_int_eq(hsm_backup_status(h, &trusted), HSM_ERR_NOKEY);
    ck_assert_int_eq(hsm_backup_init(h, NULL, &created), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_backup_init(h, "87654321", &created), HSM_ERR_PIN);
    ck_assert_int_eq(created, 0);
    ck_assert_int_eq(hsm_backup_status(h, &trusted), HSM_ERR_NOKEY);
    /* The user login came back after the refused SO login: signing still works. */
    ck_assert_int_eq(hsm_pubkey(h, t_env.ec256, HSM_KEYID_LEN, &pk), HSM_OK);
    ck_assert_int_eq(t_sign_verify(h, t_env.ec256, pk, &p), HSM_OK);
    /* The factor key's handle cached too (seal), then the SO login that succeeds: it logs every session of this
     * process out and back in, and the token forgets the handles of private objects on the way. Signing and opening
     * a sealed factor must still work with the handles cached before. */
    static const uint8_t aad[] = "user:alice", secret[20] = "12345678901234567890";
    uint8_t blob[128], back[64];
    size_t bn = 0, backn = 0;
    int fcreated = -1;
    ck_assert_int_eq(hsm_factor_init(h, &fcreated), HSM_OK);
    ck_assert_int_eq(hsm_factor_seal(h, aad, sizeof(aad), secret, sizeof(secret), blob, sizeof(blob), &bn), HSM_OK);
    ck_assert_int_eq(hsm_backup_init(h, T_SO_PIN, &created), HSM_OK);
    ck_assert_int_eq(created, 3);
    ck_assert_int_eq(t_sign_verify(h, t_env.ec256, pk, &p), HSM_OK);
    ck_assert_int_eq(hsm_factor_open(h, aad, sizeof(aad), blob, bn, back, sizeof(back), &backn), HSM_OK);
    ck_assert_mem_eq(back, secret, sizeof(secret));
    ck_assert_int_eq(hsm_backup_status(h, &trusted), HSM_OK);
    ck_assert_int_eq(trusted, 1);
    /* Idempotent: nothing new, no SO PIN needed. */
    ck_assert_int_eq(hsm_backup_init(h, NULL, &created), HSM_OK);
    ck_assert_int_eq(created, 0);

    s = t_raw_session(h);
    w = t_raw_find(h, s, CKO_SECRET_KEY, wrap_id);
    m = t_raw_find(h, s, CKO_SECRET_KEY, mac_id);
    ck_assert_uint_ne(w, CK_INVALID_HANDLE);
    ck_assert_uint_ne(m, CK_INVALID_HANDLE);
    ck_assert_uint_eq(t_raw_find(h, s, CKO_SECRET_KEY, tmp_id), CK_INVALID_HANDLE); /* the public original is gone */
    ck_assert(t_raw_bool(h, s, w, CKA_TRUSTED));
    ck_assert(t_raw_bool(h, s, w, CKA_PRIVATE));
    ck_assert(t_raw_bool(h, s, w, CKA_SENSITIVE));
    ck_assert(!t_raw_bool(h, s, w, CKA_EXTRACTABLE));
    ck_assert(t_raw_bool(h, s, w, CKA_WRAP));
    ck_assert(t_raw_bool(h, s, w, CKA_UNWRAP));
    ck_assert(!t_raw_bool(h, s, w, CKA_ENCRYPT));
    ck_assert(!t_raw_bool(h, s, w, CKA_DECRYPT));
    ck_assert(t_raw_bool(h, s, m, CKA_PRIVATE));
    ck_assert(t_raw_bool(h, s, m, CKA_SENSITIVE));
    ck_assert(!t_raw_bool(h, s, m, CKA_EXTRACTABLE));
    ck_assert(t_raw_bool(h, s, m, CKA_SIGN));
    ck_assert(!t_raw_bool(h, s, m, CKA_WRAP));
    t_raw_close(h, s);
    ck_assert_int_eq(t_sign_verify(h, t_env.ec256, pk, &p), HSM_OK);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

static const hsm_keyspec_t specs[] = {
    {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1},
    {.type = HSM_KEY_EC, .curve_nid = NID_secp384r1},
    {.type = HSM_KEY_RSA, .bits = 2048},
};

START_TEST(wrap_unwrap_round_trip)
{
    hsm_t *h = open_with_backup();
    hsm_sign_params_t p = specs[_i].type == HSM_KEY_RSA ? t_params(HSM_SIG_RSA_PKCS1, NID_sha256, 0, 0)
                                                        : t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    uint8_t id[HSM_KEYID_LEN], id2[HSM_KEYID_LEN], wrapped[HSM_WRAPPED_MAX], val[4096];
    size_t wlen = 0;
    EVP_PKEY *pk = NULL, *pk2 = NULL;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE o;
    CK_SLOT_ID slot;
    CK_ATTRIBUTE a = {CKA_VALUE, val, sizeof(val)};
    CK_RV rv;

    ck_assert_int_eq(hsm_keygen_ex(h, &specs[_i], "backupable", HSM_KEYGEN_BACKUP, id), HSM_OK);
    s = t_raw_session(h);
    o = t_raw_find(h, s, CKO_PRIVATE_KEY, id);
    ck_assert(t_raw_bool(h, s, o, CKA_EXTRACTABLE));
    ck_assert(t_raw_bool(h, s, o, CKA_WRAP_WITH_TRUSTED));
    ck_assert(t_raw_bool(h, s, o, CKA_SENSITIVE));
    /* Never readable in clear. */
    rv = hsm_test_p11(h, &slot)->C_GetAttributeValue(s, o, &a, 1);
    ck_assert(rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID);
    t_raw_close(h, s);

    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_OK);
    ck_assert_int_eq(hsm_backup_wrap(h, id, HSM_KEYID_LEN, wrapped, sizeof(wrapped), &wlen), HSM_OK);
    ck_assert_uint_gt(wlen, 64);
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_OK);
    ck_assert_int_eq(t_sign_verify(h, id, pk, &p), HSM_ERR_NOKEY);

    ck_assert_int_eq(hsm_backup_unwrap(h, wrapped, wlen, pk, "restored", HSM_KEYGEN_BACKUP, id2), HSM_OK);
    ck_assert_mem_ne(id, id2, HSM_KEYID_LEN);
    ck_assert_int_eq(t_sign_verify(h, id2, pk, &p), HSM_OK);
    ck_assert_int_eq(hsm_pubkey(h, id2, HSM_KEYID_LEN, &pk2), HSM_OK);
    ck_assert_int_eq(EVP_PKEY_eq(pk, pk2), 1);
    s = t_raw_session(h);
    o = t_raw_find(h, s, CKO_PRIVATE_KEY, id2);
    ck_assert(t_raw_bool(h, s, o, CKA_WRAP_WITH_TRUSTED));
    ck_assert(t_raw_bool(h, s, o, CKA_SENSITIVE));
    ck_assert(t_raw_bool(h, s, o, CKA_SIGN));
    ck_assert(!t_raw_bool(h, s, o, CKA_DECRYPT));
    ck_assert(!t_raw_bool(h, s, o, CKA_UNWRAP));
    t_raw_close(h, s);
    /* The restored key can be backed up again. */
    ck_assert_int_eq(hsm_backup_wrap(h, id2, HSM_KEYID_LEN, wrapped, sizeof(wrapped), &wlen), HSM_OK);
    EVP_PKEY_free(pk);
    EVP_PKEY_free(pk2);
    hsm_close(h);
}
END_TEST

START_TEST(unwrap_without_backup_flag_is_not_extractable)
{
    hsm_t *h = open_with_backup();
    uint8_t id[HSM_KEYID_LEN], id2[HSM_KEYID_LEN], wrapped[HSM_WRAPPED_MAX];
    size_t wlen = 0;
    EVP_PKEY *pk = NULL;

    ck_assert_int_eq(hsm_keygen_ex(h, &specs[0], "b2", HSM_KEYGEN_BACKUP, id), HSM_OK);
    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_OK);
    ck_assert_int_eq(hsm_backup_wrap(h, id, HSM_KEYID_LEN, wrapped, sizeof(wrapped), &wlen), HSM_OK);
    ck_assert_int_eq(hsm_backup_unwrap(h, wrapped, wlen, pk, "b2", 0, id2), HSM_OK);
    ck_assert_int_eq(hsm_backup_wrap(h, id2, HSM_KEYID_LEN, wrapped, sizeof(wrapped), &wlen), HSM_ERR_DENIED);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

START_TEST(non_extractable_key_refused)
{
    hsm_t *h = open_with_backup();
    uint8_t wrapped[HSM_WRAPPED_MAX], id[HSM_KEYID_LEN];
    size_t wlen = 7;

    ck_assert_int_eq(hsm_backup_wrap(h, t_env.ec256, HSM_KEYID_LEN, wrapped, sizeof(wrapped), &wlen), HSM_ERR_DENIED);
    ck_assert_uint_eq(wlen, 0);
    ck_assert_int_eq(hsm_keygen(h, &specs[2], "plain", id), HSM_OK);
    ck_assert_int_eq(hsm_backup_wrap(h, id, HSM_KEYID_LEN, wrapped, sizeof(wrapped), &wlen), HSM_ERR_DENIED);
    hsm_close(h);
}
END_TEST

/* What the design relies on: SoftHSM refuses to wrap a CKA_WRAP_WITH_TRUSTED key under an untrusted key. */
START_TEST(untrusted_wrapping_key_refused_by_token)
{
    hsm_t *h = open_with_backup();
    CK_SLOT_ID slot;
    CK_FUNCTION_LIST *p11 = hsm_test_p11(h, &slot);
    CK_SESSION_HANDLE s = t_raw_session(h);
    CK_ULONG len = 32, wl;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
                        {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &no, sizeof(no)},
                        {CKA_WRAP, &yes, sizeof(yes)}, {CKA_TRUSTED, &yes, sizeof(yes)}};
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0}, wrap = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    CK_OBJECT_HANDLE k, o;
    uint8_t id[HSM_KEYID_LEN], out[HSM_WRAPPED_MAX];

    /* The user cannot make a trusted key. */
    ck_assert_int_eq(p11->C_GenerateKey(s, &gen, t, 6, &k), CKR_ATTRIBUTE_READ_ONLY);
    ck_assert_int_eq(p11->C_GenerateKey(s, &gen, t, 5, &k), CKR_OK);
    ck_assert_int_eq(hsm_keygen_ex(h, &specs[0], "b3", HSM_KEYGEN_BACKUP, id), HSM_OK);
    o = t_raw_find(h, s, CKO_PRIVATE_KEY, id);
    wl = sizeof(out);
    ck_assert_int_eq(p11->C_WrapKey(s, &wrap, k, o, out, &wl), CKR_KEY_NOT_WRAPPABLE);
    t_raw_close(h, s);
    hsm_close(h);
}
END_TEST

START_TEST(unwrap_refuses_mismatch_and_garbage)
{
    hsm_t *h = open_with_backup();
    uint8_t id[HSM_KEYID_LEN], id2[HSM_KEYID_LEN], wrapped[HSM_WRAPPED_MAX];
    size_t wlen = 0;
    EVP_PKEY *other = NULL;
    CK_SESSION_HANDLE s;

    ck_assert_int_eq(hsm_keygen_ex(h, &specs[0], "b4", HSM_KEYGEN_BACKUP, id), HSM_OK);
    ck_assert_int_eq(hsm_backup_wrap(h, id, HSM_KEYID_LEN, wrapped, sizeof(wrapped), &wlen), HSM_OK);
    /* Another P-256 public key: the unwrapped key does not match it and is not kept. */
    ck_assert_int_eq(hsm_pubkey(h, t_env.ec256, HSM_KEYID_LEN, &other), HSM_OK);
    ck_assert_int_eq(hsm_backup_unwrap(h, wrapped, wlen, other, "mismatch", 0, id2), HSM_ERR_BADSIG);
    ck_assert_mem_eq(id2, (uint8_t[HSM_KEYID_LEN]){0}, HSM_KEYID_LEN);
    wrapped[wlen / 2] ^= 1;
    ck_assert_int_eq(hsm_backup_unwrap(h, wrapped, wlen, other, "garbage", 0, id2), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_backup_unwrap(h, wrapped, 0, other, "garbage", 0, id2), HSM_ERR_INVAL);
    s = t_raw_session(h);
    {
        CK_SLOT_ID slot;
        CK_FUNCTION_LIST *p11 = hsm_test_p11(h, &slot);
        CK_ATTRIBUTE lt[1] = {{CKA_LABEL, "mismatch", 8}};
        CK_OBJECT_HANDLE objs[4];
        CK_ULONG n = 9;
        ck_assert_int_eq(p11->C_FindObjectsInit(s, lt, 1), CKR_OK);
        ck_assert_int_eq(p11->C_FindObjects(s, objs, 4, &n), CKR_OK);
        ck_assert_int_eq(p11->C_FindObjectsFinal(s), CKR_OK);
        ck_assert_uint_eq(n, 0);
    }
    t_raw_close(h, s);
    EVP_PKEY_free(other);
    hsm_close(h);
}
END_TEST

START_TEST(tag_verify_and_tamper)
{
    hsm_t *h = open_with_backup();
    uint8_t data[1000], tag[HSM_BACKUP_TAG_LEN], tag2[HSM_BACKUP_TAG_LEN];

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    ck_assert_int_eq(hsm_backup_tag(h, data, sizeof(data), tag), HSM_OK);
    ck_assert_int_eq(hsm_backup_tag(h, data, sizeof(data), tag2), HSM_OK);
    ck_assert_mem_eq(tag, tag2, sizeof(tag)); /* deterministic MAC */
    ck_assert_int_eq(hsm_backup_tag_verify(h, data, sizeof(data), tag), HSM_OK);
    data[0] ^= 0x80;
    ck_assert_int_eq(hsm_backup_tag_verify(h, data, sizeof(data), tag), HSM_ERR_BADSIG);
    data[0] ^= 0x80;
    ck_assert_int_eq(hsm_backup_tag_verify(h, data, sizeof(data) - 1, tag), HSM_ERR_BADSIG);
    tag[31] ^= 1;
    ck_assert_int_eq(hsm_backup_tag_verify(h, data, sizeof(data), tag), HSM_ERR_BADSIG);
    tag[31] ^= 1;
    /* The session is usable after a failed verification. */
    ck_assert_int_eq(hsm_backup_tag_verify(h, data, sizeof(data), tag), HSM_OK);
    hsm_close(h);
}
END_TEST

Suite *t_suite_backup(void)
{
    Suite *s = suite_create("backup");
    TCase *tc = tcase_create("backup");

    tcase_add_checked_fixture(tc, t_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, init_creates_trusted_keys);
    tcase_add_loop_test(tc, wrap_unwrap_round_trip, 0, 3);
    tcase_add_test(tc, unwrap_without_backup_flag_is_not_extractable);
    tcase_add_test(tc, non_extractable_key_refused);
    tcase_add_test(tc, untrusted_wrapping_key_refused_by_token);
    tcase_add_test(tc, unwrap_refuses_mismatch_and_garbage);
    tcase_add_test(tc, tag_verify_and_tamper);
    suite_add_tcase(s, tc);
    return s;
}
