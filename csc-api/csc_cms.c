/*
 * csc_cms.c - a small DER writer and the CMS SignedData (RFC 5652) this service builds around a signature
 * made in the HSM. OpenSSL's CMS_sign wants the private key in-process, which never exists here: the
 * builder encodes the signed attributes, hands their digest to a signing callback (hsm_sign) and
 * assembles the rest. Used for CAdES/PAdES baseline B-B/B-T (EN 319 122-1, EN 319 142-1) and for the
 * time-stamp tokens of the built-in TSA (RFC 3161, RFC 5816).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include "csc_int.h"

/* ---- DER writer ------------------------------------------------------------------------------------ */

void csc_der_init(csc_der_t *d, size_t max)
{
    memset(d, 0, sizeof(*d));
    d->max = max;
}

void csc_der_free(csc_der_t *d)
{
    free(d->p);
    memset(d, 0, sizeof(*d));
}

static int der_reserve(csc_der_t *d, size_t more)
{
    if (d->failed)
        return -1;
    if (more > d->max || d->len > d->max - more) {
        d->failed = 1;
        return -1;
    }
    if (d->len + more <= d->cap)
        return 0;
    size_t cap = d->cap ? d->cap : 256;
    while (cap < d->len + more)
        cap *= 2;
    uint8_t *p = realloc(d->p, cap);
    if (p == NULL) {
        d->failed = 1;
        return -1;
    }
    d->p = p;
    d->cap = cap;
    return 0;
}

void csc_der_raw(csc_der_t *d, const void *p, size_t n)
{
    if (n == 0 || der_reserve(d, n) != 0)
        return;
    memcpy(d->p + d->len, p, n);
    d->len += n;
}

static size_t der_len_bytes(size_t n, uint8_t out[9])
{
    if (n < 0x80) {
        out[0] = (uint8_t)n;
        return 1;
    }
    size_t k = 0;
    for (size_t v = n; v != 0; v >>= 8)
        k++;
    out[0] = (uint8_t)(0x80 | k);
    for (size_t i = 0; i < k; i++)
        out[1 + i] = (uint8_t)(n >> (8 * (k - 1 - i)));
    return 1 + k;
}

void csc_der_close(csc_der_t *d, size_t mark, uint8_t tag)
{
    uint8_t hdr[10];
    if (d->failed || mark > d->len)
        return;
    hdr[0] = tag;
    size_t h = 1 + der_len_bytes(d->len - mark, hdr + 1);
    if (der_reserve(d, h) != 0)
        return;
    memmove(d->p + mark + h, d->p + mark, d->len - mark);
    memcpy(d->p + mark, hdr, h);
    d->len += h;
}

void csc_der_tlv(csc_der_t *d, uint8_t tag, const void *p, size_t n)
{
    size_t m = csc_der_mark(d);
    csc_der_raw(d, p, n);
    csc_der_close(d, m, tag);
}

int csc_der_oid(csc_der_t *d, const char *dotted)
{
    uint8_t out[64];
    size_t n = 0;
    unsigned long arcs[32];
    size_t na = 0;
    const char *s = dotted;
    while (*s != '\0' && na < CSC_ARRAY_SIZE(arcs)) {
        char *end;
        if (*s < '0' || *s > '9')
            break;
        arcs[na++] = strtoul(s, &end, 10);
        s = end;
        if (*s == '.')
            s++;
        else
            break;
    }
    if (*s != '\0' || na < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39)) {
        d->failed = 1;
        return -1;
    }
    arcs[1] += arcs[0] * 40;
    for (size_t i = 1; i < na; i++) {
        uint8_t tmp[10];
        size_t k = 0;
        unsigned long v = arcs[i];
        do {
            tmp[k++] = (uint8_t)(v & 0x7f);
            v >>= 7;
        } while (v != 0);
        if (n + k > sizeof(out)) {
            d->failed = 1;
            return -1;
        }
        while (k > 0) {
            k--;
            out[n++] = (uint8_t)(tmp[k] | (k > 0 ? 0x80 : 0));
        }
    }
    csc_der_tlv(d, 0x06, out, n);
    return 0;
}

void csc_der_uint_bytes(csc_der_t *d, const uint8_t *p, size_t n)
{
    while (n > 1 && p[0] == 0) {
        p++;
        n--;
    }
    size_t m = csc_der_mark(d);
    if (n == 0 || (p[0] & 0x80))
        csc_der_raw(d, "\0", 1);
    csc_der_raw(d, p, n);
    csc_der_close(d, m, 0x02);
}

void csc_der_uint(csc_der_t *d, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    csc_der_uint_bytes(d, b, sizeof(b));
}

void csc_der_time(csc_der_t *d, int64_t unix_ms, bool generalized)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    if (!generalized) { /* UTCTime: years 1950..2049 (RFC 5280 4.1.2.5) */
        snprintf(buf, sizeof(buf), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        csc_der_tlv(d, 0x17, buf, strlen(buf));
        return;
    }
    size_t n = strftime(buf, sizeof(buf), "%Y%m%d%H%M%S", &tm);
    unsigned ms = (unsigned)(unix_ms % 1000);
    if (ms != 0) { /* DER: a fraction without trailing zeros, none at all when zero (X.690 11.7) */
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%03u", ms);
        while (buf[n - 1] == '0')
            n--;
    }
    buf[n++] = 'Z';
    csc_der_tlv(d, 0x18, buf, n);
}

/* A SET OF: elements sorted by their encodings (X.690 11.6). items: n encodings one after the other. */
static void der_set_of(csc_der_t *d, uint8_t tag, const uint8_t *const *items, const size_t *lens, size_t n)
{
    const uint8_t *sorted_p[8];
    size_t sorted_l[8];
    if (n > CSC_ARRAY_SIZE(sorted_p)) {
        d->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0) {
            size_t l = sorted_l[j - 1] < lens[i] ? sorted_l[j - 1] : lens[i];
            int c = memcmp(sorted_p[j - 1], items[i], l);
            if (c < 0 || (c == 0 && sorted_l[j - 1] <= lens[i]))
                break;
            sorted_p[j] = sorted_p[j - 1];
            sorted_l[j] = sorted_l[j - 1];
            j--;
        }
        sorted_p[j] = items[i];
        sorted_l[j] = lens[i];
    }
    size_t m = csc_der_mark(d);
    for (size_t i = 0; i < n; i++)
        csc_der_raw(d, sorted_p[i], sorted_l[i]);
    csc_der_close(d, m, tag);
}

/* ---- CMS ------------------------------------------------------------------------------------------- */

#define OID_DATA "1.2.840.113549.1.7.1"
#define OID_SIGNED_DATA "1.2.840.113549.1.7.2"
#define OID_CONTENT_TYPE "1.2.840.113549.1.9.3"
#define OID_MESSAGE_DIGEST "1.2.840.113549.1.9.4"
#define OID_SIGNING_TIME "1.2.840.113549.1.9.5"
#define OID_SIGNING_CERT_V2 "1.2.840.113549.1.9.16.2.47"
#define OID_SIG_TIME_STAMP "1.2.840.113549.1.9.16.2.14"
#define OID_RSA_PSS "1.2.840.113549.1.1.10"
#define OID_MGF1 "1.2.840.113549.1.1.8"

static const char *md_oid(int nid)
{
    const csc_hash_alg_t *h = csc_hash_by_nid(nid);
    return h != NULL ? h->oid : NULL;
}

/* AlgorithmIdentifier of a digest; with_null: NULL parameters (inside RSASSA-PSS-params, as OpenSSL writes
 * them), else absent (RFC 5754 3). */
static void der_md_algor(csc_der_t *d, int nid, bool with_null)
{
    size_t m = csc_der_mark(d);
    const char *oid = md_oid(nid);
    if (oid == NULL) {
        d->failed = 1;
        return;
    }
    csc_der_oid(d, oid);
    if (with_null)
        csc_der_raw(d, "\x05\x00", 2);
    csc_der_close(d, m, 0x30);
}

static const char *sig_oid(const hsm_sign_params_t *p)
{
    static const struct {
        hsm_sig_scheme_t scheme;
        int nid;
        const char *oid;
    } t[] = {
        {HSM_SIG_RSA_PKCS1, NID_sha256, "1.2.840.113549.1.1.11"},
        {HSM_SIG_RSA_PKCS1, NID_sha384, "1.2.840.113549.1.1.12"},
        {HSM_SIG_RSA_PKCS1, NID_sha512, "1.2.840.113549.1.1.13"},
        {HSM_SIG_ECDSA, NID_sha256, "1.2.840.10045.4.3.2"},
        {HSM_SIG_ECDSA, NID_sha384, "1.2.840.10045.4.3.3"},
        {HSM_SIG_ECDSA, NID_sha512, "1.2.840.10045.4.3.4"},
    };
    for (size_t i = 0; i < CSC_ARRAY_SIZE(t); i++)
        if (t[i].scheme == p->scheme && t[i].nid == p->md_nid)
            return t[i].oid;
    return p->scheme == HSM_SIG_RSA_PSS ? OID_RSA_PSS : NULL;
}

void csc_der_sig_algor(csc_der_t *d, const hsm_sign_params_t *p)
{
    const char *oid = sig_oid(p);
    size_t m = csc_der_mark(d);
    if (oid == NULL) {
        d->failed = 1;
        return;
    }
    csc_der_oid(d, oid);
    if (p->scheme == HSM_SIG_RSA_PKCS1) {
        csc_der_raw(d, "\x05\x00", 2);
    } else if (p->scheme == HSM_SIG_RSA_PSS) { /* RSASSA-PSS-params (RFC 8017 A.2.3), defaults omitted */
        size_t pm = csc_der_mark(d);
        size_t e = csc_der_mark(d);
        der_md_algor(d, p->md_nid, true);
        csc_der_close(d, e, 0xa0);
        e = csc_der_mark(d);
        size_t mg = csc_der_mark(d);
        csc_der_oid(d, OID_MGF1);
        der_md_algor(d, p->mgf1_md_nid, true);
        csc_der_close(d, mg, 0x30);
        csc_der_close(d, e, 0xa1);
        if (p->salt_len != 20) {
            e = csc_der_mark(d);
            csc_der_uint(d, p->salt_len);
            csc_der_close(d, e, 0xa2);
        }
        csc_der_close(d, pm, 0x30);
    }
    csc_der_close(d, m, 0x30);
}

/* Attribute ::= SEQUENCE { attrType OID, attrValues SET OF value } with one value, as one encoding. */
static void der_attr(csc_der_t *d, const char *oid, const uint8_t *value, size_t n)
{
    size_t m = csc_der_mark(d);
    csc_der_oid(d, oid);
    csc_der_tlv(d, 0x31, value, n);
    csc_der_close(d, m, 0x30);
}

/* SigningCertificateV2 (RFC 5035) with one ESSCertIDv2: SHA-256 of the certificate (the DEFAULT hash, so
 * no AlgorithmIdentifier) and issuerSerial {GeneralNames{directoryName issuer}, serial}. */
static void der_signing_cert_v2(csc_der_t *d, X509 *ee)
{
    uint8_t h[32];
    unsigned hl = 0;
    unsigned char *der = NULL;
    int dl = i2d_X509(ee, &der);
    if (dl <= 0 || !EVP_Digest(der, (size_t)dl, h, &hl, EVP_sha256(), NULL)) {
        OPENSSL_free(der);
        d->failed = 1;
        return;
    }
    OPENSSL_free(der);
    size_t m = csc_der_mark(d);
    size_t certs = csc_der_mark(d);
    size_t id = csc_der_mark(d);
    csc_der_tlv(d, 0x04, h, hl);
    size_t is = csc_der_mark(d);
    size_t gns = csc_der_mark(d);
    size_t dn = csc_der_mark(d);
    unsigned char *name = NULL, *serial = NULL;
    int nl = i2d_X509_NAME(X509_get_issuer_name(ee), &name);
    int sl = i2d_ASN1_INTEGER(X509_get_serialNumber(ee), &serial);
    if (nl <= 0 || sl <= 0)
        d->failed = 1;
    else
        csc_der_raw(d, name, (size_t)nl);
    csc_der_close(d, dn, 0xa4);
    csc_der_close(d, gns, 0x30);
    if (sl > 0)
        csc_der_raw(d, serial, (size_t)sl);
    OPENSSL_free(name);
    OPENSSL_free(serial);
    csc_der_close(d, is, 0x30);
    csc_der_close(d, id, 0x30);
    csc_der_close(d, certs, 0x30);
    csc_der_close(d, m, 0x30);
}

int csc_cms_signed_attrs(const csc_cms_in_t *in, X509 *ee, csc_der_t *out)
{
    csc_der_t a[4];
    const uint8_t *items[4];
    size_t lens[4], n = 0;
    for (size_t i = 0; i < CSC_ARRAY_SIZE(a); i++)
        csc_der_init(&a[i], 64 * 1024);

    csc_der_t v;
    csc_der_init(&v, 64 * 1024);
    csc_der_oid(&v, in->content_type != NULL ? in->content_type : OID_DATA);
    der_attr(&a[n++], OID_CONTENT_TYPE, v.p, v.len);
    v.len = 0;
    csc_der_tlv(&v, 0x04, in->digest, in->digest_len);
    der_attr(&a[n++], OID_MESSAGE_DIGEST, v.p, v.len);
    v.len = 0;
    der_signing_cert_v2(&v, ee);
    der_attr(&a[n++], OID_SIGNING_CERT_V2, v.p, v.len);
    if (in->signing_time_ms != 0) {
        v.len = 0;
        csc_der_time(&v, in->signing_time_ms, false);
        der_attr(&a[n++], OID_SIGNING_TIME, v.p, v.len);
    }
    int failed = v.failed;
    csc_der_free(&v);
    for (size_t i = 0; i < n; i++) {
        failed |= a[i].failed;
        items[i] = a[i].p;
        lens[i] = a[i].len;
    }
    if (!failed)
        der_set_of(out, 0x31, items, lens, n);
    for (size_t i = 0; i < CSC_ARRAY_SIZE(a); i++)
        csc_der_free(&a[i]);
    return failed || out->failed ? -1 : 0;
}

int csc_cms_sign(const csc_cms_in_t *in, csc_cms_sign_fn sign, csc_cms_tst_fn tst, void *arg, csc_der_t *out)
{
    X509 *certs[8];
    size_t ncerts = 0;
    csc_der_t attrs;
    uint8_t *sig = malloc(HSM_SIG_MAX);
    size_t sig_len = 0;
    uint8_t *token = NULL;
    size_t token_len = 0;
    int rc = HSM_ERR_INVAL;

    csc_der_init(&attrs, 64 * 1024);
    if (sig == NULL) {
        rc = HSM_ERR_NOMEM;
        goto out;
    }
    const unsigned char *p = in->certs, *end = in->certs + in->certs_len;
    while (p < end && ncerts < CSC_ARRAY_SIZE(certs)) {
        X509 *x = d2i_X509(NULL, &p, end - p);
        if (x == NULL)
            goto out;
        certs[ncerts++] = x;
    }
    if (ncerts == 0 || p != end || md_oid(in->sig.md_nid) == NULL || in->digest_len != csc_hash_by_nid(in->sig.md_nid)->len)
        goto out;
    if (csc_cms_signed_attrs(in, certs[0], &attrs) != 0) {
        rc = HSM_ERR_NOMEM;
        goto out;
    }
    /* The signature covers the DER of the SET OF signed attributes (RFC 5652 5.4), digested with the
     * SignerInfo's digestAlgorithm, the one of the content. */
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdl = 0;
    if (!EVP_Digest(attrs.p, attrs.len, md, &mdl, EVP_get_digestbynid(in->sig.md_nid), NULL)) {
        rc = HSM_ERR_INTERNAL;
        goto out;
    }
    if ((rc = sign(arg, &in->sig, md, mdl, sig, &sig_len)) != HSM_OK)
        goto out;
    if (tst != NULL && (rc = tst(arg, sig, sig_len, &token, &token_len)) != HSM_OK)
        goto out;

    /* ContentInfo { signedData, [0] SignedData } */
    size_t ci = csc_der_mark(out);
    csc_der_oid(out, OID_SIGNED_DATA);
    size_t e0 = csc_der_mark(out);
    size_t sd = csc_der_mark(out);
    /* version 1: issuerAndSerialNumber, id-data content; 3 for other content types (RFC 5652 5.1) */
    bool data = in->content_type == NULL || strcmp(in->content_type, OID_DATA) == 0;
    csc_der_uint(out, data ? 1 : 3);
    size_t mds = csc_der_mark(out);
    der_md_algor(out, in->sig.md_nid, false);
    csc_der_close(out, mds, 0x31);
    size_t eci = csc_der_mark(out);
    csc_der_oid(out, in->content_type != NULL ? in->content_type : OID_DATA);
    if (in->content != NULL) {
        size_t ec = csc_der_mark(out);
        csc_der_tlv(out, 0x04, in->content, in->content_len);
        csc_der_close(out, ec, 0xa0);
    }
    csc_der_close(out, eci, 0x30);
    /* certificates [0] IMPLICIT CertificateSet: end entity first, as stored (no signature covers this SET; verifiers
     * take it in any order) */
    size_t cs = csc_der_mark(out);
    for (size_t i = 0; i < ncerts; i++) {
        unsigned char *c = NULL;
        int cl = i2d_X509(certs[i], &c);
        if (cl > 0)
            csc_der_raw(out, c, (size_t)cl);
        else
            out->failed = 1;
        OPENSSL_free(c);
    }
    csc_der_close(out, cs, 0xa0);
    /* SignerInfos */
    size_t sis = csc_der_mark(out);
    size_t si = csc_der_mark(out);
    csc_der_uint(out, 1);
    size_t ias = csc_der_mark(out);
    unsigned char *name = NULL, *serial = NULL;
    int nl = i2d_X509_NAME(X509_get_issuer_name(certs[0]), &name);
    int sl = i2d_ASN1_INTEGER(X509_get_serialNumber(certs[0]), &serial);
    if (nl > 0 && sl > 0) {
        csc_der_raw(out, name, (size_t)nl);
        csc_der_raw(out, serial, (size_t)sl);
    } else {
        out->failed = 1;
    }
    OPENSSL_free(name);
    OPENSSL_free(serial);
    csc_der_close(out, ias, 0x30);
    der_md_algor(out, in->sig.md_nid, false);
    /* signedAttrs [0] IMPLICIT: the SET's content under another tag */
    size_t sa = csc_der_mark(out);
    size_t hl = 1 + der_len_bytes(attrs.len, (uint8_t[10]){0}); /* skip the SET header */
    csc_der_raw(out, attrs.p + hl, attrs.len - hl);
    csc_der_close(out, sa, 0xa0);
    csc_der_sig_algor(out, &in->sig);
    csc_der_tlv(out, 0x04, sig, sig_len);
    if (token != NULL) {
        size_t ua = csc_der_mark(out);
        der_attr(out, OID_SIG_TIME_STAMP, token, token_len);
        csc_der_close(out, ua, 0xa1);
    }
    csc_der_close(out, si, 0x30);
    csc_der_close(out, sis, 0x31);
    csc_der_close(out, sd, 0x30);
    csc_der_close(out, e0, 0xa0);
    csc_der_close(out, ci, 0x30);
    rc = out->failed ? HSM_ERR_NOMEM : HSM_OK;
out:
    csc_certs_free(certs, ncerts);
    csc_der_free(&attrs);
    free(sig);
    free(token);
    return rc;
}

/* ---- size bound -------------------------------------------------------------------------------------- */

typedef struct size_probe {
    size_t sig_max, tst_max;
} size_probe_t;

static int probe_sign(void *arg, const hsm_sign_params_t *p, const uint8_t *digest, size_t len, uint8_t *sig,
                      size_t *sig_len)
{
    const size_probe_t *sp = arg;
    (void)p;
    (void)digest;
    (void)len;
    memset(sig, 0xff, sp->sig_max);
    *sig_len = sp->sig_max;
    return HSM_OK;
}

static int probe_tst(void *arg, const uint8_t *sig, size_t sig_len, uint8_t **tok, size_t *tok_len)
{
    const size_probe_t *sp = arg;
    (void)sig;
    (void)sig_len;
    if ((*tok = calloc(1, sp->tst_max ? sp->tst_max : 1)) == NULL)
        return HSM_ERR_NOMEM;
    *tok_len = sp->tst_max;
    return HSM_OK;
}

int csc_cms_size_max(const csc_cms_in_t *in, size_t tst_max, size_t max, size_t *out)
{
    const unsigned char *p = in->certs;
    X509 *ee = in->certs_len > 0 ? d2i_X509(NULL, &p, (long)in->certs_len) : NULL;
    EVP_PKEY *pk = ee != NULL ? X509_get0_pubkey(ee) : NULL;
    int ks = pk != NULL ? EVP_PKEY_get_size(pk) : 0; /* RSA: the modulus; EC: the longest DER ECDSA-Sig-Value */
    X509_free(ee);
    if (ks <= 0 || ks > HSM_SIG_MAX)
        return HSM_ERR_INVAL;
    size_probe_t sp = {.sig_max = (size_t)ks, .tst_max = tst_max};
    csc_der_t d;
    csc_der_init(&d, max);
    int rc = csc_cms_sign(in, probe_sign, tst_max > 0 ? probe_tst : NULL, &sp, &d);
    *out = d.len;
    csc_der_free(&d);
    return rc;
}
