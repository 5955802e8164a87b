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
        if ((rv = h->p11->C_DecryptInit(s->handle, &mech, k)) == CKR_OK)
            rv = h->p11->C_Decrypt(s->handle, (CK_BYTE_PTR)in, len, out, &olen);
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
    rc = gcm_op(h, 1, out, aad, aad_len, in, len, out + HSM_SEAL_NONCE_LEN, cap - HSM_SEAL_NONCE_LEN, &n);
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
    rc = gcm_op(h, 0, nonce, aad, aad_len, in + HSM_SEAL_NONCE_LEN, len - HSM_SEAL_NONCE_LEN, out, cap, &n);
    if (rc == HSM_OK && n != len - HSM_SEAL_OVERHEAD)
        rc = HSM_ERR_INTERNAL;
    if (rc != HSM_OK) {
        OPENSSL_cleanse(out, cap);
        return rc;
    }
    *out_len = n;
    return HSM_OK;
}
