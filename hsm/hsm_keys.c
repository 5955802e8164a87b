/*
 * hsm_keys.c - key pairs: lookup by CKA_ID, public key export, and the
 * CKA_ID -> object handle cache (destruction is hsm_destroy.c's).
 *
 * C_FindObjects is O(number of objects) in SoftHSM (68 ms at 1k keys), so the
 * handle, key type and signature size of a key are cached by CKA_ID. Object
 * handles are valid in every session of the process; the cache is flushed when
 * the pool breaks (the token may come back with other handles) and entries are
 * dropped when a key is destroyed or a cached handle turns out invalid.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include "hsm_int.h"

#define HSM_EC_POINT_MAX 512    /* OCTET STRING around an uncompressed P-521 point is 136 */
#define HSM_RSA_EXP_MAX 64

/* ---- cache ----------------------------------------------------------------- */

static size_t bucket_of(CK_OBJECT_CLASS cls, const uint8_t *id, size_t len)
{
    uint64_t x = 14695981039346656037ULL ^ (uint64_t)cls; /* FNV-1a */
    size_t i;

    for (i = 0; i < len; i++) {
        x ^= id[i];
        x *= 1099511628211ULL;
    }
    return (size_t)(x % HSM_CACHE_BUCKETS);
}

int hsm_cache_init(hsm_t *h)
{
    h->buckets = calloc(HSM_CACHE_BUCKETS, sizeof(*h->buckets));
    return h->buckets ? HSM_OK : HSM_ERR_NOMEM;
}

static void cache_clear_locked(hsm_t *h)
{
    hsm_cache_ent_t *e, *next;
    size_t b;

    for (b = 0; b < HSM_CACHE_BUCKETS; b++) {
        for (e = h->buckets[b]; e; e = next) {
            next = e->next;
            free(e);
        }
        h->buckets[b] = NULL;
    }
    h->cache_n = 0;
}

void hsm_cache_free(hsm_t *h)
{
    if (!h->buckets)
        return;
    cache_clear_locked(h);
    free(h->buckets);
    h->buckets = NULL;
}

void hsm_cache_flush(hsm_t *h)
{
    pthread_mutex_lock(&h->cache_mtx);
    cache_clear_locked(h);
    h->cache_gen++;
    pthread_mutex_unlock(&h->cache_mtx);
}

static void cache_drop_locked(hsm_t *h, CK_OBJECT_CLASS cls, const uint8_t *id, size_t id_len)
{
    hsm_cache_ent_t **pp = &h->buckets[bucket_of(cls, id, id_len)], *e;

    while ((e = *pp)) {
        if (e->cls == cls && e->id_len == id_len && memcmp(e->id, id, id_len) == 0) {
            *pp = e->next;
            free(e);
            h->cache_n--;
        } else {
            pp = &e->next;
        }
    }
}

void hsm_cache_drop(hsm_t *h, const uint8_t *id, size_t id_len)
{
    pthread_mutex_lock(&h->cache_mtx);
    cache_drop_locked(h, CKO_PRIVATE_KEY, id, id_len);
    cache_drop_locked(h, CKO_PUBLIC_KEY, id, id_len);
    h->cache_gen++;
    pthread_mutex_unlock(&h->cache_mtx);
}

static int cache_get(hsm_t *h, CK_OBJECT_CLASS cls, const uint8_t *id, size_t id_len, hsm_key_t *out,
                     uint64_t *gen)
{
    hsm_cache_ent_t *e;
    int hit = 0;

    pthread_mutex_lock(&h->cache_mtx);
    *gen = h->cache_gen;
    for (e = h->buckets[bucket_of(cls, id, id_len)]; e; e = e->next) {
        if (e->cls == cls && e->id_len == id_len && memcmp(e->id, id, id_len) == 0) {
            out->obj = e->obj;
            out->ktype = e->ktype;
            out->sig_raw_len = e->sig_raw_len;
            hit = 1;
            break;
        }
    }
    pthread_mutex_unlock(&h->cache_mtx);
    return hit;
}

/* gen is the generation seen before the lookup: a flush or destroy since then means the handle may be stale. */
static void cache_put(hsm_t *h, CK_OBJECT_CLASS cls, const uint8_t *id, size_t id_len, const hsm_key_t *k,
                      uint64_t gen)
{
    hsm_cache_ent_t *e;
    size_t b = bucket_of(cls, id, id_len);

    if (!(e = calloc(1, sizeof(*e))))
        return; /* the cache is an optimisation only */
    e->cls = cls;
    e->obj = k->obj;
    e->ktype = k->ktype;
    e->sig_raw_len = k->sig_raw_len;
    e->id_len = id_len;
    memcpy(e->id, id, id_len);
    pthread_mutex_lock(&h->cache_mtx);
    if (gen != h->cache_gen) {
        free(e);
        e = NULL;
    } else {
        if (h->cache_n >= HSM_CACHE_MAX)
            cache_clear_locked(h);
        cache_drop_locked(h, cls, id, id_len);
        e->next = h->buckets[b];
        h->buckets[b] = e;
        h->cache_n++;
    }
    pthread_mutex_unlock(&h->cache_mtx);
}

static uint64_t cache_gen_now(hsm_t *h)
{
    uint64_t gen;

    pthread_mutex_lock(&h->cache_mtx);
    gen = h->cache_gen;
    pthread_mutex_unlock(&h->cache_mtx);
    return gen;
}

#ifdef CSC_TEST_HOOKS
size_t hsm_test_cache_count(hsm_t *h)
{
    size_t n;

    pthread_mutex_lock(&h->cache_mtx);
    n = h->cache_n;
    pthread_mutex_unlock(&h->cache_mtx);
    return n;
}
#endif

/* ---- object lookup ----------------------------------------------------------- */

int hsm_find_objs(hsm_t *h, hsm_sess_t *s, CK_OBJECT_CLASS cls, const uint8_t *id, size_t id_len,
                  CK_OBJECT_HANDLE *objs, CK_ULONG max, CK_ULONG *n)
{
    uint8_t idbuf[HSM_ID_MAX];
    CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, idbuf, id_len}};
    CK_RV rv, rv2;

    *n = 0;
    memcpy(idbuf, id, id_len);
    if ((rv = h->p11->C_FindObjectsInit(s->handle, t, 2)) != CKR_OK)
        goto out;
    rv = h->p11->C_FindObjects(s->handle, objs, max, n);
    rv2 = h->p11->C_FindObjectsFinal(s->handle);
    if (rv == CKR_OK)
        rv = rv2;
out:
    if (rv != CKR_OK) {
        *n = 0;
        s->dirty = 1; /* a find operation may be left open */
    }
    return hsm_sess_rv(s, rv);
}

int hsm_not_found(hsm_t *h, hsm_sess_t *s)
{
    int li = hsm_sess_logged_in(h, s);

    if (li < 0)
        return li;
    if (li == 0) {
        s->lost = 1;
        return HSM_ERR_UNAVAILABLE;
    }
    return HSM_ERR_NOKEY;
}

static int attr_read(hsm_t *h, hsm_sess_t *s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type, void *buf, size_t cap,
                     size_t *len)
{
    CK_ATTRIBUTE a = {type, buf, cap};
    CK_RV rv;

    *len = 0;
    rv = h->p11->C_GetAttributeValue(s->handle, obj, &a, 1);
    if (rv == CKR_BUFFER_TOO_SMALL)
        return HSM_ERR_MECH; /* larger than any key we can handle */
    if (rv != CKR_OK)
        return hsm_sess_rv(s, rv);
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > cap)
        return HSM_ERR_INTERNAL;
    *len = a.ulValueLen;
    return HSM_OK;
}

static int ec_params_nid(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    ASN1_OBJECT *o = d2i_ASN1_OBJECT(NULL, &p, (long)len);
    int nid = NID_undef;

    if (o && p == der + len)
        nid = OBJ_obj2nid(o);
    ASN1_OBJECT_free(o);
    return nid;
}

static size_t ec_field_bytes(int nid)
{
    EC_GROUP *g = nid == NID_undef ? NULL : EC_GROUP_new_by_curve_name(nid);
    int deg = g ? EC_GROUP_get_degree(g) : 0;

    EC_GROUP_free(g);
    return deg > 0 ? ((size_t)deg + 7) / 8 : 0;
}

/* Key type, and for private keys the size of a raw C_Sign output, so that one C_Sign call always suffices. */
static int key_info(hsm_t *h, hsm_sess_t *s, CK_OBJECT_CLASS cls, hsm_key_t *k)
{
    uint8_t par[HSM_EC_PARAMS_MAX];
    CK_ATTRIBUTE a = {CKA_KEY_TYPE, &k->ktype, sizeof(k->ktype)};
    size_t len;
    CK_RV rv;
    int rc;

    k->sig_raw_len = 0;
    if ((rv = h->p11->C_GetAttributeValue(s->handle, k->obj, &a, 1)) != CKR_OK)
        return hsm_sess_rv(s, rv);
    if (cls != CKO_PRIVATE_KEY)
        return HSM_OK;
    if (k->ktype == CKK_RSA) {
        CK_ATTRIBUTE m = {CKA_MODULUS, NULL, 0};
        if ((rv = h->p11->C_GetAttributeValue(s->handle, k->obj, &m, 1)) != CKR_OK)
            return hsm_sess_rv(s, rv);
        if (m.ulValueLen == CK_UNAVAILABLE_INFORMATION || m.ulValueLen == 0 || m.ulValueLen > HSM_SIG_MAX)
            return HSM_ERR_MECH;
        k->sig_raw_len = m.ulValueLen;
    } else if (k->ktype == CKK_EC) {
        if ((rc = attr_read(h, s, k->obj, CKA_EC_PARAMS, par, sizeof(par), &len)) != HSM_OK)
            return rc;
        len = 2 * ec_field_bytes(ec_params_nid(par, len));
        if (len == 0 || len > HSM_EC_RAW_MAX)
            return HSM_ERR_MECH;
        k->sig_raw_len = len;
    }
    return HSM_OK;
}

int hsm_key_find(hsm_t *h, hsm_sess_t *s, CK_OBJECT_CLASS cls, const uint8_t *id, size_t id_len, hsm_key_t *out)
{
    CK_OBJECT_HANDLE objs[2];
    CK_ULONG n = 0;
    uint64_t gen;
    int rc;

    if (cache_get(h, cls, id, id_len, out, &gen))
        return HSM_OK;
    if ((rc = hsm_find_objs(h, s, cls, id, id_len, objs, 2, &n)) != HSM_OK)
        return rc;
    if (n == 0)
        return hsm_not_found(h, s);
    /* Our ids are 16 random bytes; with duplicates (imported keys) the first one wins, as in libp11. */
    out->obj = objs[0];
    if ((rc = key_info(h, s, cls, out)) != HSM_OK)
        return rc;
    cache_put(h, cls, id, id_len, out, gen);
    return HSM_OK;
}

int hsm_id_ok(const uint8_t *id, size_t id_len)
{
    return id && id_len > 0 && id_len <= HSM_ID_MAX;
}

/* Key generation is hsm_keygen.c's (a file of its own, so that a binary that never generates keys, csc-server,
 * does not link it); it primes the cache through these two. */
uint64_t hsm_cache_gen(hsm_t *h)
{
    return cache_gen_now(h);
}

void hsm_cache_prime(hsm_t *h, hsm_sess_t *s, const uint8_t *id, size_t id_len, hsm_key_t *k, uint64_t gen)
{
    if (key_info(h, s, CKO_PRIVATE_KEY, k) == HSM_OK)
        cache_put(h, CKO_PRIVATE_KEY, id, id_len, k, gen);
}

/* ---- public key -------------------------------------------------------------- */

static int pkey_from_params(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    int rc = HSM_ERR_NOMEM;

    if (!params || !ctx)
        goto out;
    rc = HSM_ERR_INTERNAL;
    if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto out;
    rc = HSM_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return rc;
}

static int rsa_pub(hsm_t *h, hsm_sess_t *s, CK_OBJECT_HANDLE obj, EVP_PKEY **out)
{
    uint8_t n[HSM_SIG_MAX], e[HSM_RSA_EXP_MAX];
    size_t nlen, elen;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    int rc;

    if ((rc = attr_read(h, s, obj, CKA_MODULUS, n, sizeof(n), &nlen)) != HSM_OK ||
        (rc = attr_read(h, s, obj, CKA_PUBLIC_EXPONENT, e, sizeof(e), &elen)) != HSM_OK)
        goto out;
    rc = HSM_ERR_NOMEM;
    bn_n = BN_bin2bn(n, (int)nlen, NULL);
    bn_e = BN_bin2bn(e, (int)elen, NULL);
    if (!bn_n || !bn_e || !(bld = OSSL_PARAM_BLD_new()))
        goto out;
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
        goto out;
    rc = pkey_from_params("RSA", bld, out);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return rc;
}

/* CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 2.40); some tokens give the bare point. */
static int ec_point_unwrap(const uint8_t *der, size_t len, uint8_t *pt, size_t cap, size_t *pt_len)
{
    const unsigned char *p = der;
    ASN1_OCTET_STRING *os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)len);
    int rc = HSM_ERR_INTERNAL;

    if (os && p == der + len) {
        if ((size_t)ASN1_STRING_length(os) <= cap) {
            *pt_len = (size_t)ASN1_STRING_length(os);
            memcpy(pt, ASN1_STRING_get0_data(os), *pt_len);
            rc = HSM_OK;
        }
    } else if (len <= cap) {
        memcpy(pt, der, len);
        *pt_len = len;
        rc = HSM_OK;
    }
    ASN1_OCTET_STRING_free(os);
    return rc;
}

static int ec_pub(hsm_t *h, hsm_sess_t *s, CK_OBJECT_HANDLE obj, EVP_PKEY **out)
{
    uint8_t par[HSM_EC_PARAMS_MAX], der[HSM_EC_POINT_MAX], pt[HSM_EC_POINT_MAX];
    size_t plen, dlen, ptlen = 0;
    const char *curve;
    OSSL_PARAM_BLD *bld = NULL;
    int rc, nid;

    if ((rc = attr_read(h, s, obj, CKA_EC_PARAMS, par, sizeof(par), &plen)) != HSM_OK ||
        (rc = attr_read(h, s, obj, CKA_EC_POINT, der, sizeof(der), &dlen)) != HSM_OK ||
        (rc = ec_point_unwrap(der, dlen, pt, sizeof(pt), &ptlen)) != HSM_OK)
        goto out;
    rc = HSM_ERR_MECH; /* explicit curve parameters or a curve OpenSSL does not name */
    nid = ec_params_nid(par, plen);
    if (nid == NID_undef || !(curve = OBJ_nid2sn(nid)) || ec_field_bytes(nid) == 0)
        goto out;
    rc = HSM_ERR_NOMEM;
    if (!(bld = OSSL_PARAM_BLD_new()))
        goto out;
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, ptlen))
        goto out;
    rc = pkey_from_params("EC", bld, out);
out:
    OSSL_PARAM_BLD_free(bld);
    return rc;
}

int hsm_pubkey(hsm_t *h, const uint8_t *id, size_t id_len, EVP_PKEY **out)
{
    hsm_sess_t *s = NULL;
    hsm_key_t k;
    int rc, attempt;

    if (!out)
        return HSM_ERR_INVAL;
    *out = NULL;
    if (!h || !hsm_id_ok(id, id_len))
        return HSM_ERR_INVAL;
    if ((rc = hsm_pool_borrow(h, &s)) != HSM_OK)
        return rc;
    /* A second round only if a cached handle turned out stale (object gone or replaced). */
    for (attempt = 0; attempt < 2; attempt++) {
        if ((rc = hsm_key_find(h, s, CKO_PUBLIC_KEY, id, id_len, &k)) != HSM_OK)
            goto out;
        if (k.ktype == CKK_RSA)
            rc = rsa_pub(h, s, k.obj, out);
        else if (k.ktype == CKK_EC)
            rc = ec_pub(h, s, k.obj, out);
        else
            rc = HSM_ERR_MECH;
        if (rc != HSM_ERR_NOKEY)
            break;
        hsm_cache_drop(h, id, id_len);
    }
out:
    return hsm_pool_return(h, s, rc);
}

/* ---- fixed secret keys (hsm_backup.c, hsm_factor.c) ---------------------------------------------------------- */

int hsm_secret_find(hsm_t *h, hsm_sess_t *s, const uint8_t id[HSM_KEYID_LEN], CK_OBJECT_HANDLE *obj)
{
    hsm_key_t k;
    int rc = hsm_key_find(h, s, CKO_SECRET_KEY, id, HSM_KEYID_LEN, &k);

    *obj = rc == HSM_OK ? k.obj : CK_INVALID_HANDLE;
    return rc;
}

int hsm_secret_generate(hsm_t *h, hsm_sess_t *s, CK_MECHANISM_TYPE mech_type, CK_KEY_TYPE kt, CK_ULONG len,
                        unsigned uses, const char *label, const uint8_t id[HSM_KEYID_LEN])
{
    static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_MECHANISM mech = {mech_type, NULL, 0};
    CK_BBOOL *sign = uses & HSM_USE_SIGN ? &yes : &no, *crypt = uses & HSM_USE_CRYPT ? &yes : &no;
    CK_OBJECT_HANDLE o;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},       {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE_LEN, &len, sizeof(len)},   {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},     {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},   {CKA_SIGN, sign, sizeof(*sign)},
        {CKA_VERIFY, sign, sizeof(*sign)},    {CKA_ENCRYPT, crypt, sizeof(*crypt)},
        {CKA_DECRYPT, crypt, sizeof(*crypt)}, {CKA_WRAP, &no, sizeof(no)},
        {CKA_UNWRAP, &no, sizeof(no)},        {CKA_DERIVE, &no, sizeof(no)},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, (void *)id, HSM_KEYID_LEN},
    };
    return hsm_sess_rv(s, h->p11->C_GenerateKey(s->handle, &mech, t, sizeof(t) / sizeof(t[0]), &o));
}
