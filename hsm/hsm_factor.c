/*
 * hsm_factor.c - the factor key: users' TOTP secrets at rest are sealed under an AES-256 key that never leaves the
 * token (CKA_SENSITIVE, not extractable, CKA_ENCRYPT/CKA_DECRYPT only), with CKM_AES_GCM: a 96-bit random nonce,
 * a 128-bit tag, and additional data that binds the sealed bytes to their owner and purpose (the caller's AAD), so
 * sealed bytes copied to another record do not open. Only csc-sam links this file (tests/unit/server/check_symbols).
 *
 * A sealed blob is nonce (12) || ciphertext || tag (16). SoftHSM 2.6.1 takes the IV from CK_GCM_PARAMS (ulIvLen;
 * ulIvBits is ignored) and appends the tag to the ciphertext; a wrong tag fails C_Decrypt (any failure that is not
 * a lost token or session is reported HSM_ERR_BADSIG here).
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "hsm_int.h"

static const uint8_t factor_id[HSM_KEYID_LEN] = "csc-factor-key-1";
#define FACTOR_LABEL "csc-factor-key"

int hsm_factor_init(hsm_t *h, int *created)
{
    hsm_sess_t *s = NULL;
    CK_OBJECT_HANDLE k;
    int rc;

    if (created)
        *created = 0;
    if (!h || !created)
        return HSM_ERR_INVAL;
    if ((rc = hsm_pool_borrow(h, &s)) != HSM_OK)
        return rc;
    rc = hsm_secret_find(h, s, factor_id, &k);
    if (rc == HSM_ERR_NOKEY && (rc = hsm_secret_generate(h, s, CKM_AES_KEY_GEN, CKK_AES, 32, HSM_USE_CRYPT, FACTOR_LABEL,
                                                                    factor_id)) == HSM_OK)
        *created = 1;
    return hsm_pool_return(h, s, rc);
}

/* One C_EncryptInit/C_Encrypt (enc) or C_DecryptInit/C_Decrypt with the factor key under these GCM parameters. */
static int gcm_op(hsm_t *h, int enc, uint8_t nonce[HSM_SEAL_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                  const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    CK_GCM_PARAMS gp = {nonce, HSM_SEAL_NONCE_LEN, HSM_SEAL_NONCE_LEN * 8, (CK_BYTE_PTR)aad, aad_len,
                        HSM_SEAL_TAG_LEN * 8};
    CK_MECHANISM mech = {CKM_AES_GCM, &gp, sizeof(gp)};
    CK_ULONG olen = cap;
    CK_OBJECT_HANDLE k;
    hsm_sess_t *s = NULL;
    CK_RV rv;
    int rc;

    if ((rc = hsm_pool_borrow(h, &s)) != HSM_OK)
        return rc;
    if ((rc = hsm_secret_find(h, s, factor_id, &k)) != HSM_OK)
        goto out;
    if (enc) {
        if ((rv = h->p11->C_EncryptInit(s->handle, &mech, k)) == CKR_OK)
            rv = h->p11->C_Encrypt(s->handle, (CK_BYTE_PTR)in, len, out, &olen);
    } else {
        /* SoftHSM wants room for ciphertext and tag (CKR_BUFFER_TOO_SMALL otherwise, even though the plaintext is
         * shorter): decrypt into a buffer of that size, then copy what fits the caller's. */
        uint8_t tmp[HSM_SEAL_IN_MAX + HSM_SEAL_TAG_LEN];
        olen = sizeof(tmp);
        if (len > sizeof(tmp))
            rv = CKR_ENCRYPTED_DATA_LEN_RANGE;
        else if ((rv = h->p11->C_DecryptInit(s->handle, &mech, k)) == CKR_OK)
            rv = h->p11->C_Decrypt(s->handle, (CK_BYTE_PTR)in, len, tmp, &olen);
        if (rv == CKR_OK && olen <= cap)
            memcpy(out, tmp, olen);
        OPENSSL_cleanse(tmp, sizeof(tmp));
    }
    if (rv != CKR_OK)
        s->dirty = 1; /* an operation may be left active */
    rc = hsm_sess_rv(s, rv);
    if (rc == HSM_OK && olen > cap)
        rc = HSM_ERR_INTERNAL;
    /* A tag that does not verify (SoftHSM: CKR_ENCRYPTED_DATA_INVALID or CKR_GENERAL_ERROR) is a refusal. */
    if (!enc && rc != HSM_OK && rc != HSM_ERR_UNAVAILABLE && rc != HSM_ERR_NOKEY && rc != HSM_ERR_MECH)
        rc = HSM_ERR_BADSIG;
    *out_len = rc == HSM_OK ? olen : 0;
out:
    return hsm_pool_return(h, s, rc);
}

/*
 * The same AES-GCM (NIST SP 800-38D, 96-bit IV, 128-bit tag) with only the block cipher in the token, for a module
 * that refuses CKM_AES_GCM: p11-kit 0.24's RPC cannot carry CK_GCM_PARAMS but carries CKM_AES_ECB
 * (docs/stack-notes.md sec. 10.4). One C_Encrypt (ECB) gives H = E(0), E(J0) and the counter blocks E(J0 + 1 + i);
 * the XOR and GHASH are done here. The output is byte for byte CKM_AES_GCM's (ciphertext || tag), so blobs sealed
 * either way open either way. The key still never leaves the token: the factor key allows encryption (CKA_ENCRYPT),
 * and GCM encryption already lets its holder encrypt chosen counter blocks.
 */
#define GCM_BLOCKS_MAX (2 + (HSM_SEAL_IN_MAX + 15) / 16)

/* x = x * y in GF(2^128) (SP 800-38D algorithm 1), without branches or indexes that depend on the values. */
static void gf_mul(uint8_t x[16], const uint8_t y[16])
{
    uint8_t z[16] = {0}, v[16];
    int i, j;

    memcpy(v, y, 16);
    for (i = 0; i < 128; i++) {
        uint8_t m = (uint8_t)(0u - ((x[i / 8] >> (7 - i % 8)) & 1u)), lsb = (uint8_t)(0u - (v[15] & 1u));
        for (j = 0; j < 16; j++)
            z[j] ^= v[j] & m;
        for (j = 15; j > 0; j--)
            v[j] = (uint8_t)((v[j] >> 1) | (v[j - 1] << 7));
        v[0] = (uint8_t)((v[0] >> 1) ^ (0xe1 & lsb));
    }
    memcpy(x, z, 16);
    OPENSSL_cleanse(z, sizeof(z));
    OPENSSL_cleanse(v, sizeof(v));
}

/* x = GHASH step over data (zero padded to whole blocks). */
static void ghash_update(uint8_t x[16], const uint8_t h[16], const uint8_t *data, size_t len)
{
    size_t i, n;

    for (; len > 0; data += n, len -= n) {
        n = len < 16 ? len : 16;
        for (i = 0; i < n; i++)
            x[i] ^= data[i];
        gf_mul(x, h);
    }
}

/* S = GHASH_H(A, C) then tag = E(J0) ^ S. */
static void gcm_tag(const uint8_t h[16], const uint8_t ej0[16], const uint8_t *aad, size_t aad_len, const uint8_t *c,
                    size_t len, uint8_t tag[16])
{
    uint8_t x[16] = {0}, lens[16];
    uint64_t abits = (uint64_t)aad_len * 8, cbits = (uint64_t)len * 8;
    int i;

    ghash_update(x, h, aad, aad_len);
    ghash_update(x, h, c, len);
    for (i = 0; i < 8; i++) {
        lens[i] = (uint8_t)(abits >> (56 - 8 * i));
        lens[8 + i] = (uint8_t)(cbits >> (56 - 8 * i));
    }
    ghash_update(x, h, lens, 16);
    for (i = 0; i < 16; i++)
        tag[i] = x[i] ^ ej0[i];
    OPENSSL_cleanse(x, sizeof(x));
}

/* blocks (len bytes, a multiple of 16) = E(blocks): one CKM_AES_ECB call with the factor key. */
static int factor_ecb(hsm_t *h, uint8_t *blocks, size_t len)
{
    CK_MECHANISM mech = {CKM_AES_ECB, NULL, 0};
    CK_OBJECT_HANDLE k;
    hsm_sess_t *s = NULL;
    CK_ULONG olen = (CK_ULONG)len;
    CK_RV rv;
    int rc;

    if ((rc = hsm_pool_borrow(h, &s)) != HSM_OK)
        return rc;
    if ((rc = hsm_secret_find(h, s, factor_id, &k)) != HSM_OK)
        goto out;
    if ((rv = h->p11->C_EncryptInit(s->handle, &mech, k)) == CKR_OK)
        rv = h->p11->C_Encrypt(s->handle, blocks, olen, blocks, &olen);
    if (rv != CKR_OK)
        s->dirty = 1;
    rc = hsm_sess_rv(s, rv);
    if (rc == HSM_OK && olen != len)
        rc = HSM_ERR_INTERNAL;
out:
    return hsm_pool_return(h, s, rc);
}

/* blocks = E(0) || E(J0) || E(J0 + 1) ... for n data bytes: one ECB call with the factor key. */
static int ecb_blocks(hsm_t *h, const uint8_t nonce[HSM_SEAL_NONCE_LEN], size_t n, uint8_t *blocks, size_t *nb)
{
    uint32_t ctr;
    size_t i;

    *nb = 2 + (n + 15) / 16;
    memset(blocks, 0, *nb * 16);
    for (i = 1, ctr = 1; i < *nb; i++, ctr++) {
        memcpy(blocks + 16 * i, nonce, HSM_SEAL_NONCE_LEN);
        blocks[16 * i + 12] = (uint8_t)(ctr >> 24);
        blocks[16 * i + 13] = (uint8_t)(ctr >> 16);
        blocks[16 * i + 14] = (uint8_t)(ctr >> 8);
        blocks[16 * i + 15] = (uint8_t)ctr;
    }
    return factor_ecb(h, blocks, *nb * 16);
}

/*
 * A key for label: E(label || ff ff ff f0) || E(label || ff ff ff f1) under the factor key (label zero-padded to
 * 12 bytes). CKM_AES_ECB crosses the p11-kit RPC (docs/stack-notes.md sec. 10.4), so every node derives the same
 * through a shared HSM. No seal computes these blocks: a GCM counter block ends in a counter of at most
 * 2 + HSM_SEAL_IN_MAX / 16, and E(0) (GHASH's H) is not of this form.
 */
int hsm_factor_derive(hsm_t *h, const char *label, uint8_t out[HSM_DERIVE_LEN])
{
    uint8_t blocks[HSM_DERIVE_LEN];
    size_t n = label ? strlen(label) : 0;
    int rc;

    if (out)
        memset(out, 0, HSM_DERIVE_LEN);
    if (!h || !out || n == 0 || n > HSM_DERIVE_LABEL_MAX)
        return HSM_ERR_INVAL;
    memset(blocks, 0, sizeof(blocks));
    for (size_t i = 0; i < 2; i++) {
        memcpy(blocks + 16 * i, label, n);
        memset(blocks + 16 * i + 12, 0xff, 3);
        blocks[16 * i + 15] = (uint8_t)(0xf0 + i);
    }
    if ((rc = factor_ecb(h, blocks, sizeof(blocks))) == HSM_OK)
        memcpy(out, blocks, HSM_DERIVE_LEN);
    OPENSSL_cleanse(blocks, sizeof(blocks));
    return rc;
}

/* gcm_op's contract (in: plaintext, or ciphertext || tag; out: ciphertext || tag, or plaintext) over ecb_blocks. */
static int gcm_op_ecb(hsm_t *h, int enc, const uint8_t nonce[HSM_SEAL_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                      const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t blocks[GCM_BLOCKS_MAX * 16], tag[16];
    size_t n = enc ? len : len - HSM_SEAL_TAG_LEN, nb = 0, i;
    int rc;

    *out_len = 0;
    if ((!enc && len < HSM_SEAL_TAG_LEN) || n > HSM_SEAL_IN_MAX)
        return enc ? HSM_ERR_INVAL : HSM_ERR_BADSIG;
    if (cap < (enc ? n + HSM_SEAL_TAG_LEN : n))
        return HSM_ERR_INVAL;
    if ((rc = ecb_blocks(h, nonce, n, blocks, &nb)) != HSM_OK)
        goto out;
    if (enc) {
        for (i = 0; i < n; i++)
            out[i] = in[i] ^ blocks[32 + i];
        gcm_tag(blocks, blocks + 16, aad, aad_len, out, n, out + n);
        *out_len = n + HSM_SEAL_TAG_LEN;
    } else {
        gcm_tag(blocks, blocks + 16, aad, aad_len, in, n, tag);
        if (CRYPTO_memcmp(tag, in + n, HSM_SEAL_TAG_LEN) != 0) {
            rc = HSM_ERR_BADSIG;
            goto out;
        }
        for (i = 0; i < n; i++)
            out[i] = in[i] ^ blocks[32 + i];
        *out_len = n;
    }
out:
    OPENSSL_cleanse(blocks, sizeof(blocks));
    OPENSSL_cleanse(tag, sizeof(tag));
    return rc;
}

/* CKM_AES_GCM in the token; where the module refuses the mechanism, the same over CKM_AES_ECB from then on. */
static int factor_gcm(hsm_t *h, int enc, uint8_t nonce[HSM_SEAL_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                      const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    int rc = HSM_ERR_MECH;

    if (!__atomic_load_n(&h->gcm_by_ecb, __ATOMIC_RELAXED))
        rc = gcm_op(h, enc, nonce, aad, aad_len, in, len, out, cap, out_len);
    if (rc != HSM_ERR_MECH)
        return rc;
    __atomic_store_n(&h->gcm_by_ecb, 1, __ATOMIC_RELAXED);
    return gcm_op_ecb(h, enc, nonce, aad, aad_len, in, len, out, cap, out_len);
}

int hsm_factor_seal(hsm_t *h, const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                    size_t cap, size_t *out_len)
{
    size_t n = 0;
    int rc;

    if (out_len)
        *out_len = 0;
    if (!h || (!aad && aad_len) || !in || len == 0 || len > HSM_SEAL_IN_MAX || !out || !out_len ||
        cap < len + HSM_SEAL_OVERHEAD)
        return HSM_ERR_INVAL;
    if (RAND_bytes(out, HSM_SEAL_NONCE_LEN) != 1)
        return HSM_ERR_INTERNAL;
    rc = factor_gcm(h, 1, out, aad, aad_len, in, len, out + HSM_SEAL_NONCE_LEN, cap - HSM_SEAL_NONCE_LEN, &n);
    if (rc == HSM_OK && n != len + HSM_SEAL_TAG_LEN)
        rc = HSM_ERR_INTERNAL;
    if (rc != HSM_OK) {
        OPENSSL_cleanse(out, cap);
        return rc;
    }
    *out_len = HSM_SEAL_NONCE_LEN + n;
    return HSM_OK;
}

int hsm_factor_open(hsm_t *h, const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                    size_t cap, size_t *out_len)
{
    uint8_t nonce[HSM_SEAL_NONCE_LEN];
    size_t n = 0;
    int rc;

    if (out_len)
        *out_len = 0;
    if (!h || (!aad && aad_len) || !in || !out || !out_len)
        return HSM_ERR_INVAL;
    if (len <= HSM_SEAL_OVERHEAD || len > HSM_SEAL_IN_MAX + HSM_SEAL_OVERHEAD)
        return HSM_ERR_BADSIG; /* not something hsm_factor_seal made */
    if (cap < len - HSM_SEAL_OVERHEAD)
        return HSM_ERR_INVAL;
    memcpy(nonce, in, sizeof(nonce));
    rc = factor_gcm(h, 0, nonce, aad, aad_len, in + HSM_SEAL_NONCE_LEN, len - HSM_SEAL_NONCE_LEN, out, cap, &n);
    if (rc == HSM_OK && n != len - HSM_SEAL_OVERHEAD)
        rc = HSM_ERR_INTERNAL;
    if (rc != HSM_OK) {
        OPENSSL_cleanse(out, cap);
        return rc;
    }
    *out_len = n;
    return HSM_OK;
}
