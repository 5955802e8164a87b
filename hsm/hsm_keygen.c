/*
 * hsm_keygen.c - key pair generation (C_GenerateKeyPair): RSA and EC templates, random or fixed CKA_ID, backup
 * (wrappable) or never-extractable keys. Its own file so that only binaries that generate keys (csc-admin) link
 * it: csc-server does not (tests/unit/server/check_symbols).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/rand.h>

#include "hsm_int.h"

/* ---- keygen ----------------------------------------------------------------- */

typedef struct keygen_tmpl {
    CK_BBOOL yes, no;
    CK_ULONG bits;
    CK_BYTE exponent[3];
    uint8_t ec_params[HSM_EC_PARAMS_MAX];
    CK_MECHANISM mech;
    CK_ATTRIBUTE pub[10];
    CK_ATTRIBUTE priv[13];
    CK_ULONG npub, npriv;
} keygen_tmpl_t;

static int ec_params_der(int nid, uint8_t *buf, size_t cap, size_t *len)
{
    ASN1_OBJECT *o;
    unsigned char *p = buf;
    int l;

    if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1 && nid != NID_secp521r1)
        return HSM_ERR_INVAL;
    if (!(o = OBJ_nid2obj(nid)))
        return HSM_ERR_INTERNAL;
    l = i2d_ASN1_OBJECT(o, NULL);
    if (l <= 0 || (size_t)l > cap || i2d_ASN1_OBJECT(o, &p) != l)
        return HSM_ERR_INTERNAL;
    *len = (size_t)l;
    return HSM_OK;
}

#define ADD(arr, n, t, v, l)                                                                                      \
    do {                                                                                                           \
        (arr)[(n)].type = (t);                                                                                     \
        (arr)[(n)].pValue = (v);                                                                                   \
        (arr)[(n)].ulValueLen = (l);                                                                               \
        (n)++;                                                                                                     \
    } while (0)

/* Explicit templates: SoftHSM's defaults would also allow decrypt and unwrap with the private key. */
static int keygen_tmpl(keygen_tmpl_t *t, const hsm_keyspec_t *spec, const char *label, size_t label_len,
                       const uint8_t *id, unsigned flags)
{
    CK_BBOOL *backup;

    size_t eclen = 0;
    int rc;

    memset(t, 0, sizeof(*t));
    t->yes = CK_TRUE;
    t->no = CK_FALSE;
    /* Backup-able (J8): extractable, but only wrapped under a key the SO marked CKA_TRUSTED, never in clear. */
    backup = (flags & HSM_KEYGEN_BACKUP) ? &t->yes : &t->no;
    if (spec->type == HSM_KEY_RSA) {
        if (spec->bits != 2048 && spec->bits != 3072 && spec->bits != 4096)
            return HSM_ERR_INVAL;
        t->bits = spec->bits;
        t->exponent[0] = 0x01, t->exponent[1] = 0x00, t->exponent[2] = 0x01; /* 65537 */
        t->mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
        ADD(t->pub, t->npub, CKA_MODULUS_BITS, &t->bits, sizeof(t->bits));
        ADD(t->pub, t->npub, CKA_PUBLIC_EXPONENT, t->exponent, sizeof(t->exponent));
    } else if (spec->type == HSM_KEY_EC) {
        if ((rc = ec_params_der(spec->curve_nid, t->ec_params, sizeof(t->ec_params), &eclen)) != HSM_OK)
            return rc;
        t->mech.mechanism = CKM_EC_KEY_PAIR_GEN;
        ADD(t->pub, t->npub, CKA_EC_PARAMS, t->ec_params, eclen);
    } else {
        return HSM_ERR_INVAL;
    }
    ADD(t->pub, t->npub, CKA_TOKEN, &t->yes, sizeof(CK_BBOOL));
    ADD(t->pub, t->npub, CKA_PRIVATE, &t->no, sizeof(CK_BBOOL));
    ADD(t->pub, t->npub, CKA_VERIFY, &t->yes, sizeof(CK_BBOOL));
    ADD(t->pub, t->npub, CKA_ENCRYPT, &t->no, sizeof(CK_BBOOL));
    ADD(t->pub, t->npub, CKA_WRAP, &t->no, sizeof(CK_BBOOL));
    ADD(t->pub, t->npub, CKA_LABEL, (void *)label, label_len);
    ADD(t->pub, t->npub, CKA_ID, (void *)id, HSM_KEYID_LEN);

    ADD(t->priv, t->npriv, CKA_TOKEN, &t->yes, sizeof(CK_BBOOL));
    ADD(t->priv, t->npriv, CKA_PRIVATE, &t->yes, sizeof(CK_BBOOL));
    ADD(t->priv, t->npriv, CKA_SENSITIVE, &t->yes, sizeof(CK_BBOOL));
    ADD(t->priv, t->npriv, CKA_EXTRACTABLE, backup, sizeof(CK_BBOOL));
    ADD(t->priv, t->npriv, CKA_WRAP_WITH_TRUSTED, backup, sizeof(CK_BBOOL));
    ADD(t->priv, t->npriv, CKA_SIGN, &t->yes, sizeof(CK_BBOOL));
    ADD(t->priv, t->npriv, CKA_SIGN_RECOVER, &t->no, sizeof(CK_BBOOL));
    ADD(t->priv, t->npriv, CKA_DECRYPT, &t->no, sizeof(CK_BBOOL));
    ADD(t->priv, t->npriv, CKA_UNWRAP, &t->no, sizeof(CK_BBOOL));
    ADD(t->priv, t->npriv, CKA_DERIVE, &t->no, sizeof(CK_BBOOL));
    ADD(t->priv, t->npriv, CKA_LABEL, (void *)label, label_len);
    ADD(t->priv, t->npriv, CKA_ID, (void *)id, HSM_KEYID_LEN);
    return HSM_OK;
}

#undef ADD

int hsm_keygen(hsm_t *h, const hsm_keyspec_t *spec, const char *label, uint8_t id[HSM_KEYID_LEN])
{
    return hsm_keygen_ex(h, spec, label, 0, id);
}

int hsm_keygen_ex(hsm_t *h, const hsm_keyspec_t *spec, const char *label, unsigned flags, uint8_t id[HSM_KEYID_LEN])
{
    keygen_tmpl_t t;
    uint8_t newid[HSM_KEYID_LEN];
    hsm_sess_t *s = NULL;
    hsm_key_t k;
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
    size_t label_len;
    uint64_t gen;
    CK_RV rv;
    int rc;

    if (!h || !spec || !label || !id || (flags & ~(unsigned)(HSM_KEYGEN_BACKUP | HSM_KEYGEN_FIXED_ID)))
        return HSM_ERR_INVAL;
    if (flags & HSM_KEYGEN_FIXED_ID) {
        memcpy(newid, id, sizeof(newid));
    } else {
        memset(id, 0, HSM_KEYID_LEN);
        if (RAND_bytes(newid, sizeof(newid)) != 1)
            return HSM_ERR_INTERNAL;
    }
    if ((label_len = strnlen(label, HSM_LABEL_MAX + 1)) > HSM_LABEL_MAX)
        return HSM_ERR_INVAL;
    if ((rc = keygen_tmpl(&t, spec, label, label_len, newid, flags)) != HSM_OK)
        return rc;
    if ((rc = hsm_pool_borrow(h, &s)) != HSM_OK)
        return rc;
    /* Read before generating, so a cache flush in between keeps the handle out of the cache. */
    gen = hsm_cache_gen(h);
    k.obj = CK_INVALID_HANDLE;
    rv = h->p11->C_GenerateKeyPair(s->handle, &t.mech, t.pub, t.npub, t.priv, t.npriv, &pub, &k.obj);
    if ((rc = hsm_sess_rv(s, rv)) != HSM_OK)
        goto out;
    memcpy(id, newid, HSM_KEYID_LEN);
    /* Prime the cache for the first signature; failing here does not undo a generated key. */
    hsm_cache_prime(h, s, newid, sizeof(newid), &k, gen);
out:
    return hsm_pool_return(h, s, rc);
}

