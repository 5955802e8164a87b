/*
 * hsm_sign.c - signing precomputed digests with CKM_RSA_PKCS, CKM_RSA_PKCS_PSS
 * and CKM_ECDSA.
 *
 * The token is not trusted to validate inputs: SoftHSM truncates oversized
 * ECDSA input and answers a wrong PSS length with CKR_GENERAL_ERROR, so the
 * digest length is checked against md_nid here. C_Sign always gets a buffer
 * large enough for the key (known from the cache), because CKR_BUFFER_TOO_SMALL
 * would leave the operation active; if it happens anyway the session is
 * marked dirty and replaced before anyone else borrows it.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/objects.h>

#include "hsm_int.h"

/* DER of DigestInfo ::= SEQUENCE { AlgorithmIdentifier { hash OID, NULL }, OCTET STRING digest } up to the digest. */
static const uint8_t di_sha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t di_sha384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
static const uint8_t di_sha512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

#define HSM_DI_PREFIX_LEN 19
#define HSM_MD_MAX 64

typedef struct md_info {
    int nid;
    size_t len;
    const uint8_t *prefix;
    CK_MECHANISM_TYPE hash;
    CK_RSA_PKCS_MGF_TYPE mgf;
} md_info_t;

static const md_info_t md_table[] = {
    {NID_sha256, 32, di_sha256, CKM_SHA256, CKG_MGF1_SHA256},
    {NID_sha384, 48, di_sha384, CKM_SHA384, CKG_MGF1_SHA384},
    {NID_sha512, 64, di_sha512, CKM_SHA512, CKG_MGF1_SHA512},
};

static const md_info_t *md_get(int nid)
{
    size_t i;

    for (i = 0; i < sizeof(md_table) / sizeof(md_table[0]); i++)
        if (md_table[i].nid == nid)
            return &md_table[i];
    return NULL;
}

size_t hsm_md_len(int md_nid)
{
    const md_info_t *md = md_get(md_nid);

    return md ? md->len : 0;
}

const uint8_t *hsm_digestinfo_prefix(int md_nid, size_t *len)
{
    const md_info_t *md = md_get(md_nid);

    *len = md ? HSM_DI_PREFIX_LEN : 0;
    return md ? md->prefix : NULL;
}

typedef struct sign_ctx {
    CK_MECHANISM mech;
    CK_RSA_PKCS_PSS_PARAMS pss;
    CK_KEY_TYPE want;           /* key type the scheme needs */
    const uint8_t *prefix;      /* PKCS#1 v1.5 only */
    size_t prefix_len;
    size_t salt_len;
} sign_ctx_t;

static int sign_setup(const hsm_sign_params_t *p, size_t dlen, sign_ctx_t *c)
{
    const md_info_t *md = md_get(p->md_nid), *mgf;

    memset(c, 0, sizeof(*c));
    if (!md || dlen != md->len)
        return HSM_ERR_INVAL;
    switch (p->scheme) {
    case HSM_SIG_RSA_PKCS1:
        c->mech.mechanism = CKM_RSA_PKCS;
        c->want = CKK_RSA;
        c->prefix = md->prefix;
        c->prefix_len = HSM_DI_PREFIX_LEN;
        return HSM_OK;
    case HSM_SIG_RSA_PSS:
        if (!(mgf = md_get(p->mgf1_md_nid)) || p->salt_len > HSM_SIG_MAX)
            return HSM_ERR_INVAL;
        c->pss.hashAlg = md->hash;
        c->pss.mgf = mgf->mgf;
        c->pss.sLen = p->salt_len;
        c->salt_len = p->salt_len;
        c->mech.mechanism = CKM_RSA_PKCS_PSS;
        c->mech.pParameter = &c->pss;
        c->mech.ulParameterLen = sizeof(c->pss);
        c->want = CKK_RSA;
        return HSM_OK;
    case HSM_SIG_ECDSA:
        c->mech.mechanism = CKM_ECDSA;
        c->want = CKK_EC;
        return HSM_OK;
    default:
        return HSM_ERR_INVAL;
    }
}

/* Scheme against key, before touching the token: an RSA scheme on an EC key is the caller's mistake. */
static int key_fits(const sign_ctx_t *c, const hsm_key_t *k, size_t dlen)
{
    if (k->ktype != c->want || k->sig_raw_len == 0)
        return HSM_ERR_MECH;
    /* EMSA-PSS needs emLen >= hLen + sLen + 2; SoftHSM would only say CKR_GENERAL_ERROR. */
    if (c->mech.mechanism == CKM_RSA_PKCS_PSS && c->salt_len + dlen + 2 > k->sig_raw_len)
        return HSM_ERR_INVAL;
    return HSM_OK;
}

static int ecdsa_der(const uint8_t *raw, size_t len, uint8_t *out, size_t *out_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)(len / 2), NULL);
    BIGNUM *s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
    unsigned char *p = out;
    int rc = HSM_ERR_NOMEM, l;

    if (!sig || !r || !s)
        goto out;
    rc = HSM_ERR_INTERNAL;
    if (!ECDSA_SIG_set0(sig, r, s))
        goto out;
    r = s = NULL; /* owned by sig now */
    l = i2d_ECDSA_SIG(sig, NULL);
    if (l <= 0 || l > HSM_SIG_MAX || i2d_ECDSA_SIG(sig, &p) != l)
        goto out;
    *out_len = (size_t)l;
    rc = HSM_OK;
out:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return rc;
}

static int sign_one(hsm_t *h, hsm_sess_t *s, sign_ctx_t *c, const hsm_key_t *k, const uint8_t *dig, size_t dlen,
                    uint8_t *sig, size_t *sig_len)
{
    uint8_t in[HSM_DI_PREFIX_LEN + HSM_MD_MAX], raw[HSM_EC_RAW_MAX];
    size_t inlen = 0;
    CK_ULONG len;
    CK_RV rv;

    if (c->prefix) {
        memcpy(in, c->prefix, c->prefix_len);
        inlen = c->prefix_len;
    }
    memcpy(in + inlen, dig, dlen);
    inlen += dlen;
    if ((rv = h->p11->C_SignInit(s->handle, &c->mech, k->obj)) != CKR_OK) {
        if (rv == CKR_OPERATION_ACTIVE)
            s->dirty = 1;
        /* Our arguments are well formed: SoftHSM says ARGUMENTS_BAD for PSS params it does not support
         * (MGF1 hash != message hash). */
        return rv == CKR_ARGUMENTS_BAD ? HSM_ERR_MECH : hsm_sess_rv(s, rv);
    }
    /* RSA goes straight into the caller's HSM_SIG_MAX buffer (>= modulus, checked when the key was found). */
    len = c->want == CKK_EC ? k->sig_raw_len : HSM_SIG_MAX;
    rv = h->p11->C_Sign(s->handle, in, inlen, c->want == CKK_EC ? raw : sig, &len);
    if (rv != CKR_OK) {
        s->dirty = 1; /* e.g. CKR_BUFFER_TOO_SMALL keeps the operation active */
        return hsm_sess_rv(s, rv);
    }
    if (c->want != CKK_EC) {
        *sig_len = len;
        return HSM_OK;
    }
    if (len != k->sig_raw_len)
        return HSM_ERR_INTERNAL;
    return ecdsa_der(raw, len, sig, sig_len);
}

static int args_ok(hsm_t *h, const uint8_t *key_id, size_t key_id_len, const hsm_sign_params_t *params,
                   const uint8_t *const *digests, size_t n, uint8_t *const *sigs, size_t *sig_lens)
{
    size_t i;

    if (!h || !key_id || key_id_len == 0 || key_id_len > HSM_ID_MAX || !params || !digests || !sigs ||
        !sig_lens || n == 0)
        return 0;
    for (i = 0; i < n; i++)
        if (!digests[i] || !sigs[i])
            return 0;
    return 1;
}

int hsm_sign(hsm_t *h, const uint8_t *key_id, size_t key_id_len, const hsm_sign_params_t *params,
             const uint8_t *const *digests, size_t dlen, size_t n, uint8_t *const *sigs, size_t *sig_lens)
{
    hsm_sess_t *s = NULL;
    sign_ctx_t c;
    hsm_key_t k;
    size_t i;
    int rc;

    if (sig_lens)
        memset(sig_lens, 0, n * sizeof(*sig_lens));
    if (!args_ok(h, key_id, key_id_len, params, digests, n, sigs, sig_lens))
        return HSM_ERR_INVAL;
    if ((rc = sign_setup(params, dlen, &c)) != HSM_OK)
        return rc;
    if ((rc = hsm_pool_borrow(h, &s)) != HSM_OK)
        return rc;
    if ((rc = hsm_key_find(h, s, CKO_PRIVATE_KEY, key_id, key_id_len, &k)) != HSM_OK ||
        (rc = key_fits(&c, &k, dlen)) != HSM_OK)
        goto out;
    rc = sign_one(h, s, &c, &k, digests[0], dlen, sigs[0], &sig_lens[0]);
    if (rc == HSM_ERR_NOKEY) {
        /* The cached handle went stale (key destroyed or replaced elsewhere): look it up once more. */
        hsm_cache_drop(h, key_id, key_id_len);
        if ((rc = hsm_key_find(h, s, CKO_PRIVATE_KEY, key_id, key_id_len, &k)) != HSM_OK ||
            (rc = key_fits(&c, &k, dlen)) != HSM_OK)
            goto out;
        rc = sign_one(h, s, &c, &k, digests[0], dlen, sigs[0], &sig_lens[0]);
    }
    for (i = 1; i < n && rc == HSM_OK; i++)
        rc = sign_one(h, s, &c, &k, digests[i], dlen, sigs[i], &sig_lens[i]);
out:
    rc = hsm_pool_return(h, s, rc);
    if (rc != HSM_OK)
        memset(sig_lens, 0, n * sizeof(*sig_lens));
    return rc;
}
