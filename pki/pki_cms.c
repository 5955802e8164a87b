/*
 * pki_cms.c - the CMS SignedData (RFC 5652) built around a signature made elsewhere. OpenSSL's CMS_sign wants
 * the private key in-process, which never exists here: the builder encodes the signed attributes, hands their
 * digest to the caller's signing callback and assembles the rest. Used for CAdES/PAdES baseline B-B/B-T
 * (EN 319 122-1, EN 319 142-1) and for RFC 3161 / RFC 5816 time-stamp tokens.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include "pki_int.h"

/* A SET OF: elements sorted by their encodings (X.690 11.6). items: n encodings one after the other. */
static void der_set_of(pki_der_t *d, uint8_t tag, const uint8_t *const *items, const size_t *lens, size_t n)
{
    const uint8_t *sorted_p[8];
    size_t sorted_l[8];
    if (n > PKI_ARRAY_SIZE(sorted_p)) {
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
    size_t m = pki_der_mark(d);
    for (size_t i = 0; i < n; i++)
        pki_der_raw(d, sorted_p[i], sorted_l[i]);
    pki_der_close(d, m, tag);
}

/* ---- CMS ------------------------------------------------------------------------------------------- */

#define OID_DATA "1.2.840.113549.1.7.1"
#define OID_SIGNED_DATA "1.2.840.113549.1.7.2"
#define OID_CONTENT_TYPE "1.2.840.113549.1.9.3"
#define OID_MESSAGE_DIGEST "1.2.840.113549.1.9.4"
#define OID_SIGNING_TIME "1.2.840.113549.1.9.5"
#define OID_SIGNING_CERT_V2 "1.2.840.113549.1.9.16.2.47"
#define OID_SIG_TIME_STAMP "1.2.840.113549.1.9.16.2.14"

/* Attribute ::= SEQUENCE { attrType OID, attrValues SET OF value } with one value, as one encoding. */
static void der_attr(pki_der_t *d, const char *oid, const uint8_t *value, size_t n)
{
    size_t m = pki_der_mark(d);
    pki_der_oid(d, oid);
    pki_der_tlv(d, 0x31, value, n);
    pki_der_close(d, m, 0x30);
}

/* SigningCertificateV2 (RFC 5035) with one ESSCertIDv2: SHA-256 of the certificate (the DEFAULT hash, so
 * no AlgorithmIdentifier) and issuerSerial {GeneralNames{directoryName issuer}, serial}. */
static void der_signing_cert_v2(pki_der_t *d, X509 *ee)
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
    size_t m = pki_der_mark(d);
    size_t certs = pki_der_mark(d);
    size_t id = pki_der_mark(d);
    pki_der_tlv(d, 0x04, h, hl);
    size_t is = pki_der_mark(d);
    size_t gns = pki_der_mark(d);
    size_t dn = pki_der_mark(d);
    unsigned char *name = NULL, *serial = NULL;
    int nl = i2d_X509_NAME(X509_get_issuer_name(ee), &name);
    int sl = i2d_ASN1_INTEGER(X509_get_serialNumber(ee), &serial);
    if (nl <= 0 || sl <= 0)
        d->failed = 1;
    else
        pki_der_raw(d, name, (size_t)nl);
    pki_der_close(d, dn, 0xa4);
    pki_der_close(d, gns, 0x30);
    if (sl > 0)
        pki_der_raw(d, serial, (size_t)sl);
    OPENSSL_free(name);
    OPENSSL_free(serial);
    pki_der_close(d, is, 0x30);
    pki_der_close(d, id, 0x30);
    pki_der_close(d, certs, 0x30);
    pki_der_close(d, m, 0x30);
}

int pki_cms_signed_attrs(const pki_cms_in_t *in, X509 *ee, pki_der_t *out)
{
    pki_der_t a[4];
    const uint8_t *items[4];
    size_t lens[4], n = 0;
    for (size_t i = 0; i < PKI_ARRAY_SIZE(a); i++)
        pki_der_init(&a[i], 64 * 1024);

    pki_der_t v;
    pki_der_init(&v, 64 * 1024);
    pki_der_oid(&v, in->content_type != NULL ? in->content_type : OID_DATA);
    der_attr(&a[n++], OID_CONTENT_TYPE, v.p, v.len);
    v.len = 0;
    pki_der_tlv(&v, 0x04, in->digest, in->digest_len);
    der_attr(&a[n++], OID_MESSAGE_DIGEST, v.p, v.len);
    v.len = 0;
    der_signing_cert_v2(&v, ee);
    der_attr(&a[n++], OID_SIGNING_CERT_V2, v.p, v.len);
    if (in->signing_time_ms != 0) {
        v.len = 0;
        pki_der_time(&v, in->signing_time_ms, false);
        der_attr(&a[n++], OID_SIGNING_TIME, v.p, v.len);
    }
    int failed = v.failed;
    pki_der_free(&v);
    for (size_t i = 0; i < n; i++) {
        failed |= a[i].failed;
        items[i] = a[i].p;
        lens[i] = a[i].len;
    }
    if (!failed)
        der_set_of(out, 0x31, items, lens, n);
    for (size_t i = 0; i < PKI_ARRAY_SIZE(a); i++)
        pki_der_free(&a[i]);
    return failed || out->failed ? PKI_ERR_NOMEM : PKI_OK;
}

int pki_cms_sign(const pki_cms_in_t *in, pki_sign_fn sign, pki_tst_fn tst, void *arg, pki_der_t *out, int *cb_rc)
{
    X509 *certs[8];
    size_t ncerts = 0;
    pki_der_t attrs;
    uint8_t *sig = malloc(PKI_SIG_MAX);
    size_t sig_len = 0;
    uint8_t *token = NULL;
    size_t token_len = 0;
    int rc = PKI_ERR_INVAL;

    pki_der_init(&attrs, 64 * 1024);
    if (sig == NULL) {
        rc = PKI_ERR_NOMEM;
        goto out;
    }
    const unsigned char *p = in->certs, *end = in->certs + in->certs_len;
    while (p < end && ncerts < PKI_ARRAY_SIZE(certs)) {
        X509 *x = d2i_X509(NULL, &p, end - p);
        if (x == NULL)
            goto out;
        certs[ncerts++] = x;
    }
    size_t md_len = 0;
    if (ncerts == 0 || p != end || pki_md_oid(in->sig.md_nid, &md_len) == NULL || in->digest_len != md_len)
        goto out;
    if (pki_cms_signed_attrs(in, certs[0], &attrs) != 0) {
        rc = PKI_ERR_NOMEM;
        goto out;
    }
    /* The signature covers the DER of the SET OF signed attributes (RFC 5652 5.4), digested with the
     * SignerInfo's digestAlgorithm, the one of the content. */
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdl = 0;
    if (!EVP_Digest(attrs.p, attrs.len, md, &mdl, EVP_get_digestbynid(in->sig.md_nid), NULL)) {
        rc = PKI_ERR_INTERNAL;
        goto out;
    }
    int crc = sign(arg, &in->sig, md, mdl, sig, &sig_len);
    if (crc == 0 && sig_len > PKI_SIG_MAX) { /* a callback that broke its contract */
        rc = PKI_ERR_INTERNAL;
        goto out;
    }
    if (crc == 0 && tst != NULL)
        crc = tst(arg, sig, sig_len, &token, &token_len);
    if (crc != 0) {
        if (cb_rc != NULL)
            *cb_rc = crc;
        rc = PKI_ERR_CALLBACK;
        goto out;
    }

    /* ContentInfo { signedData, [0] SignedData } */
    size_t ci = pki_der_mark(out);
    pki_der_oid(out, OID_SIGNED_DATA);
    size_t e0 = pki_der_mark(out);
    size_t sd = pki_der_mark(out);
    /* version 1: issuerAndSerialNumber, id-data content; 3 for other content types (RFC 5652 5.1) */
    bool data = in->content_type == NULL || strcmp(in->content_type, OID_DATA) == 0;
    pki_der_uint(out, data ? 1 : 3);
    size_t mds = pki_der_mark(out);
    pki_int_der_md_algor(out, in->sig.md_nid, false);
    pki_der_close(out, mds, 0x31);
    size_t eci = pki_der_mark(out);
    pki_der_oid(out, in->content_type != NULL ? in->content_type : OID_DATA);
    if (in->content != NULL) {
        size_t ec = pki_der_mark(out);
        pki_der_tlv(out, 0x04, in->content, in->content_len);
        pki_der_close(out, ec, 0xa0);
    }
    pki_der_close(out, eci, 0x30);
    /* certificates [0] IMPLICIT CertificateSet: end entity first, as stored (no signature covers this SET; verifiers
     * take it in any order) */
    size_t cs = pki_der_mark(out);
    for (size_t i = 0; i < ncerts; i++) {
        unsigned char *c = NULL;
        int cl = i2d_X509(certs[i], &c);
        if (cl > 0)
            pki_der_raw(out, c, (size_t)cl);
        else
            out->failed = 1;
        OPENSSL_free(c);
    }
    pki_der_close(out, cs, 0xa0);
    /* SignerInfos */
    size_t sis = pki_der_mark(out);
    size_t si = pki_der_mark(out);
    pki_der_uint(out, 1);
    size_t ias = pki_der_mark(out);
    unsigned char *name = NULL, *serial = NULL;
    int nl = i2d_X509_NAME(X509_get_issuer_name(certs[0]), &name);
    int sl = i2d_ASN1_INTEGER(X509_get_serialNumber(certs[0]), &serial);
    if (nl > 0 && sl > 0) {
        pki_der_raw(out, name, (size_t)nl);
        pki_der_raw(out, serial, (size_t)sl);
    } else {
        out->failed = 1;
    }
    OPENSSL_free(name);
    OPENSSL_free(serial);
    pki_der_close(out, ias, 0x30);
    pki_int_der_md_algor(out, in->sig.md_nid, false);
    /* signedAttrs [0] IMPLICIT: the SET's content under another tag */
    size_t sa = pki_der_mark(out);
    size_t hl = 1 + pki_int_der_len_bytes(attrs.len, (uint8_t[10]){0}); /* skip the SET header */
    pki_der_raw(out, attrs.p + hl, attrs.len - hl);
    pki_der_close(out, sa, 0xa0);
    pki_der_sig_algor(out, &in->sig);
    pki_der_tlv(out, 0x04, sig, sig_len);
    if (token != NULL) {
        size_t ua = pki_der_mark(out);
        der_attr(out, OID_SIG_TIME_STAMP, token, token_len);
        pki_der_close(out, ua, 0xa1);
    }
    pki_der_close(out, si, 0x30);
    pki_der_close(out, sis, 0x31);
    pki_der_close(out, sd, 0x30);
    pki_der_close(out, e0, 0xa0);
    pki_der_close(out, ci, 0x30);
    rc = out->failed ? PKI_ERR_NOMEM : PKI_OK;
out:
    for (size_t i = 0; i < ncerts; i++)
        X509_free(certs[i]);
    pki_der_free(&attrs);
    free(sig);
    free(token);
    return rc;
}

/* ---- size bound -------------------------------------------------------------------------------------- */

typedef struct size_probe {
    size_t sig_max, tst_max;
} size_probe_t;

static int probe_sign(void *arg, const pki_sig_t *p, const uint8_t *digest, size_t len, uint8_t *sig,
                      size_t *sig_len)
{
    const size_probe_t *sp = arg;
    (void)p;
    (void)digest;
    (void)len;
    memset(sig, 0xff, sp->sig_max);
    *sig_len = sp->sig_max;
    return PKI_OK;
}

static int probe_tst(void *arg, const uint8_t *sig, size_t sig_len, uint8_t **tok, size_t *tok_len)
{
    const size_probe_t *sp = arg;
    (void)sig;
    (void)sig_len;
    if ((*tok = calloc(1, sp->tst_max ? sp->tst_max : 1)) == NULL)
        return PKI_ERR_NOMEM;
    *tok_len = sp->tst_max;
    return PKI_OK;
}

int pki_cms_size_max(const pki_cms_in_t *in, size_t tst_max, size_t max, size_t *out)
{
    const unsigned char *p = in->certs;
    X509 *ee = in->certs_len > 0 ? d2i_X509(NULL, &p, (long)in->certs_len) : NULL;
    EVP_PKEY *pk = ee != NULL ? X509_get0_pubkey(ee) : NULL;
    int ks = pk != NULL ? EVP_PKEY_get_size(pk) : 0; /* RSA: the modulus; EC: the longest DER ECDSA-Sig-Value */
    X509_free(ee);
    if (ks <= 0 || ks > PKI_SIG_MAX)
        return PKI_ERR_INVAL;
    size_probe_t sp = {.sig_max = (size_t)ks, .tst_max = tst_max};
    pki_der_t d;
    pki_der_init(&d, max);
    int cb = PKI_OK;
    int rc = pki_cms_sign(in, probe_sign, tst_max > 0 ? probe_tst : NULL, &sp, &d, &cb);
    if (rc == PKI_ERR_CALLBACK)
        rc = cb; /* the probes fail only for memory: a PKI_* code */
    *out = d.len;
    pki_der_free(&d);
    return rc;
}
