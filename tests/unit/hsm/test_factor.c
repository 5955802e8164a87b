/*
 * test_factor.c - the factor key (hsm_factor.c): created once with the attributes it must have, AES-GCM seal/open
 * round trips, and every refusal of open (another AAD, another user's name in it, a flipped bit anywhere, a cut
 * blob, no key).
 */
#include <string.h>

#include <openssl/rand.h>

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

/* _i = 0: CKM_AES_GCM in the token; 1: the same GCM over CKM_AES_ECB blocks (a module that refuses CKM_AES_GCM). */
START_TEST(factor_round_trip_and_refusals)
{
    hsm_t *h = t_open(2);
    int created = -1;
    hsm_test_gcm_by_ecb(h, _i);
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

/* GCM over ECB blocks is CKM_AES_GCM to the byte: what one seals the other opens, for every length of secret and
 * additional data (whole blocks, partial ones, empty AAD, the longest secret). */
START_TEST(factor_gcm_by_ecb_matches_token_gcm)
{
    static const size_t lens[] = {1, 15, 16, 17, 20, 33, 64, HSM_SEAL_IN_MAX};
    static const size_t aad_lens[] = {0, 9, 16, 40};
    uint8_t secret[HSM_SEAL_IN_MAX], aad[40], blob[HSM_SEAL_IN_MAX + HSM_SEAL_OVERHEAD], out[HSM_SEAL_IN_MAX];
    hsm_t *h = t_open(1);
    int created = -1, by_ecb;
    size_t n, o;

    ck_assert_int_eq(hsm_factor_init(h, &created), HSM_OK);
    ck_assert_int_eq(RAND_bytes(secret, sizeof(secret)), 1);
    ck_assert_int_eq(RAND_bytes(aad, sizeof(aad)), 1);
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (size_t j = 0; j < sizeof(aad_lens) / sizeof(aad_lens[0]); j++)
            for (by_ecb = 0; by_ecb < 2; by_ecb++) {
                hsm_test_gcm_by_ecb(h, by_ecb);
                ck_assert_int_eq(hsm_factor_seal(h, aad, aad_lens[j], secret, lens[i], blob, sizeof(blob), &n), HSM_OK);
                ck_assert_uint_eq(n, lens[i] + HSM_SEAL_OVERHEAD);
                hsm_test_gcm_by_ecb(h, !by_ecb);
                ck_assert_msg(hsm_factor_open(h, aad, aad_lens[j], blob, n, out, sizeof(out), &o) == HSM_OK,
                              "sealed %s, opened %s: len %zu aad %zu", by_ecb ? "by ECB" : "by GCM",
                              by_ecb ? "by GCM" : "by ECB", lens[i], aad_lens[j]);
                ck_assert_uint_eq(o, lens[i]);
                ck_assert_mem_eq(out, secret, lens[i]);
                blob[n - 1] ^= 0x80; /* and a changed tag is refused by the other one too */
                ck_assert_int_eq(hsm_factor_open(h, aad, aad_lens[j], blob, n, out, sizeof(out), &o), HSM_ERR_BADSIG);
            }
    hsm_close(h);
}
END_TEST

/* A key derived for a label: the same from every handle on the token (every node), another per label, never the
 * zero bytes it starts from; a bad label is refused. */
START_TEST(factor_derive_same_everywhere)
{
    uint8_t a[HSM_DERIVE_LEN], b[HSM_DERIVE_LEN], c[HSM_DERIVE_LEN], zero[HSM_DERIVE_LEN] = {0};
    hsm_t *h = t_open(1), *h2;
    int created = -1;

    ck_assert_int_eq(hsm_factor_init(h, &created), HSM_OK);
    ck_assert_int_eq(hsm_factor_derive(h, "challenge-1", a), HSM_OK);
    ck_assert_int_ne(memcmp(a, zero, sizeof(zero)), 0);
    ck_assert_int_ne(memcmp(a, a + 16, 16), 0);
    h2 = t_open(2);
    ck_assert_int_eq(hsm_factor_derive(h2, "challenge-1", b), HSM_OK);
    ck_assert_mem_eq(a, b, sizeof(a));
    ck_assert_int_eq(hsm_factor_derive(h2, "challenge-2", c), HSM_OK);
    ck_assert_int_ne(memcmp(a, c, sizeof(a)), 0);
    ck_assert_int_eq(hsm_factor_derive(h2, "", c), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_factor_derive(h2, NULL, c), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_factor_derive(h2, "thirteen-char", c), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_factor_derive(h2, "twelve-chars", c), HSM_OK);
    hsm_close(h2);
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
    tcase_add_loop_test(tc, factor_round_trip_and_refusals, 0, 2);
    tcase_add_test(tc, factor_gcm_by_ecb_matches_token_gcm);
    tcase_add_test(tc, factor_derive_same_everywhere);
    suite_add_tcase(s, tc);
    return s;
}
