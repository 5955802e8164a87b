/*
 * test_factor.c - the factor key (hsm_factor.c): created once with the attributes it must have, AES-GCM seal/open
 * round trips, and every refusal of open (another AAD, another user's name in it, a flipped bit anywhere, a cut
 * blob, no key).
 */
#include <string.h>

#include "check_hsm.h"

static const uint8_t factor_id[HSM_KEYID_LEN] = "csc-factor-key-1";

static const uint8_t aad_a[] = "csc-totp/v1\0alice";
static const uint8_t aad_b[] = "csc-totp/v1\0bob";

START_TEST(factor_init_attributes)
{
    hsm_t *h = t_open(2);
    int created = -1;
    uint8_t blob[64];
    size_t n = 1;

    /* No key yet: sealing is refused, not done some other way. */
    ck_assert_int_eq(hsm_factor_seal(h, aad_a, sizeof(aad_a), (const uint8_t *)"x", 1, blob, sizeof(blob), &n),
                     HSM_ERR_NOKEY);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(hsm_factor_init(h, &created), HSM_OK);
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(hsm_factor_init(h, &created), HSM_OK);
    ck_assert_int_eq(created, 0); /* idempotent */
    CK_SESSION_HANDLE s = t_raw_session(h);
    CK_OBJECT_HANDLE k = t_raw_find(h, s, CKO_SECRET_KEY, factor_id);
    ck_assert_uint_ne(k, CK_INVALID_HANDLE);
    ck_assert(t_raw_bool(h, s, k, CKA_TOKEN));
    ck_assert(t_raw_bool(h, s, k, CKA_PRIVATE));
    ck_assert(t_raw_bool(h, s, k, CKA_SENSITIVE));
    ck_assert(!t_raw_bool(h, s, k, CKA_EXTRACTABLE));
    ck_assert(t_raw_bool(h, s, k, CKA_ENCRYPT));
    ck_assert(t_raw_bool(h, s, k, CKA_DECRYPT));
    ck_assert(!t_raw_bool(h, s, k, CKA_WRAP));
    ck_assert(!t_raw_bool(h, s, k, CKA_UNWRAP));
    ck_assert(!t_raw_bool(h, s, k, CKA_SIGN));
    ck_assert(!t_raw_bool(h, s, k, CKA_DERIVE));
    t_raw_close(h, s);
    hsm_close(h);
}
END_TEST

START_TEST(factor_round_trip_and_refusals)
{
    hsm_t *h = t_open(2);
    int created = -1;
    uint8_t secret[20], blob[20 + HSM_SEAL_OVERHEAD], blob2[sizeof(blob)], out[64];
    size_t n = 0, m = 0, o = 0;

    for (size_t i = 0; i < sizeof(secret); i++)
        secret[i] = (uint8_t)(0xa0 + i);
    ck_assert_int_eq(hsm_factor_init(h, &created), HSM_OK);
    ck_assert_int_eq(hsm_factor_seal(h, aad_a, sizeof(aad_a), secret, sizeof(secret), blob, sizeof(blob), &n),
                     HSM_OK);
    ck_assert_uint_eq(n, sizeof(secret) + HSM_SEAL_OVERHEAD);
    ck_assert_ptr_null(memmem(blob, n, secret, sizeof(secret))); /* not in clear */
    /* A fresh nonce every time: the same secret seals differently. */
    ck_assert_int_eq(hsm_factor_seal(h, aad_a, sizeof(aad_a), secret, sizeof(secret), blob2, sizeof(blob2), &m),
                     HSM_OK);
    ck_assert_uint_eq(m, n);
    ck_assert(memcmp(blob, blob2, HSM_SEAL_NONCE_LEN) != 0);
    ck_assert_int_eq(hsm_factor_open(h, aad_a, sizeof(aad_a), blob, n, out, sizeof(out), &o), HSM_OK);
    ck_assert_uint_eq(o, sizeof(secret));
    ck_assert_mem_eq(out, secret, sizeof(secret));

    /* Another user's name in the AAD (the blob copied to bob's record), another purpose, no AAD: refused. */
    ck_assert_int_eq(hsm_factor_open(h, aad_b, sizeof(aad_b), blob, n, out, sizeof(out), &o), HSM_ERR_BADSIG);
    ck_assert_uint_eq(o, 0);
    ck_assert_int_eq(hsm_factor_open(h, (const uint8_t *)"csc-other/v1\0alice", 19, blob, n, out, sizeof(out), &o),
                     HSM_ERR_BADSIG);
    ck_assert_int_eq(hsm_factor_open(h, NULL, 0, blob, n, out, sizeof(out), &o), HSM_ERR_BADSIG);
    /* A flipped bit in the nonce, the ciphertext or the tag: refused, and the session stays usable. */
    size_t at[] = {0, HSM_SEAL_NONCE_LEN + 3, n - 1};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        blob[at[i]] ^= 0x01;
        ck_assert_int_eq(hsm_factor_open(h, aad_a, sizeof(aad_a), blob, n, out, sizeof(out), &o), HSM_ERR_BADSIG);
        blob[at[i]] ^= 0x01;
    }
    /* Cut short, or shorter than nonce and tag: refused. */
    ck_assert_int_eq(hsm_factor_open(h, aad_a, sizeof(aad_a), blob, n - 1, out, sizeof(out), &o), HSM_ERR_BADSIG);
    ck_assert_int_eq(hsm_factor_open(h, aad_a, sizeof(aad_a), blob, HSM_SEAL_OVERHEAD, out, sizeof(out), &o),
                     HSM_ERR_BADSIG);
    ck_assert_int_eq(hsm_factor_open(h, aad_a, sizeof(aad_a), blob, n, out, sizeof(out), &o), HSM_OK);
    ck_assert_mem_eq(out, secret, sizeof(secret));
    /* Sizes: nothing to seal, a buffer too small. */
    ck_assert_int_eq(hsm_factor_seal(h, aad_a, sizeof(aad_a), secret, 0, blob, sizeof(blob), &n), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_factor_seal(h, aad_a, sizeof(aad_a), secret, sizeof(secret), blob, sizeof(blob) - 1, &n),
                     HSM_ERR_INVAL);
    hsm_close(h);
}
END_TEST

Suite *t_suite_factor(void)
{
    Suite *s = suite_create("factor");
    TCase *tc = tcase_create("factor");

    tcase_add_checked_fixture(tc, t_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, factor_init_attributes);
    tcase_add_test(tc, factor_round_trip_and_refusals);
    suite_add_tcase(s, tc);
    return s;
}
