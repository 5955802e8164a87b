/*
 * pki_tsa.c - RFC 3161 time-stamp tokens (with RFC 5816's ESSCertIDv2): the TSTInfo and the SignedData around it,
 * signed through the caller's callback like every CMS of this library. Serial numbers, clock and policy are the
 * caller's; this file only encodes. The signing itself, pki_tst_sign, is a file of its own (pki_tsa_sign.c), so that
 * only the process that holds the TSA key (csc-sam) links it; the front end measures tokens (pki_tst_size_max).
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include "pki_int.h"

#define OID_TST_INFO "1.2.840.113549.1.9.16.1.4"
#define TST_INFO_MAX 4096

/* TSTInfo (RFC 3161 2.4.2): version 1, policy, messageImprint, serialNumber, genTime, accuracy, nonce. */
void pki_tst_info(pki_der_t *d, const pki_tst_t *t)
{
    const char *md = pki_md_oid(t->md_nid, NULL);
    if (md == NULL || t->policy == NULL) {
        d->failed = 1;
        return;
    }
    size_t m = pki_der_mark(d);
    pki_der_uint(d, 1);
    pki_der_oid(d, t->policy);
    size_t mi = pki_der_mark(d);
    size_t alg = pki_der_mark(d);
    pki_der_oid(d, md);
    pki_der_close(d, alg, 0x30);
    pki_der_tlv(d, 0x04, t->digest, t->digest_len);
    pki_der_close(d, mi, 0x30);
    pki_der_uint_bytes(d, t->serial, t->serial_len);
    pki_der_time(d, t->gen_time_ms, true);
    if (t->accuracy_ms > 0) {
        size_t acc = pki_der_mark(d);
        if (t->accuracy_ms / 1000 > 0)
            pki_der_uint(d, t->accuracy_ms / 1000);
        if (t->accuracy_ms % 1000 > 0) { /* millis [0] IMPLICIT INTEGER (1..999) */
            size_t ms = pki_der_mark(d);
            pki_der_uint(d, t->accuracy_ms % 1000);
            if (!d->failed)
                d->p[ms] = 0x80;
        }
        pki_der_close(d, acc, 0x30);
    }
    if (t->nonce != NULL)
        pki_der_uint_bytes(d, t->nonce, t->nonce_len);
    pki_der_close(d, m, 0x30);
}

/* The token's CMS input over an encoded TSTInfo: the digest of info with the signature's digest into md. */
static int tst_in(const pki_der_t *info, const uint8_t *certs, size_t certs_len, const pki_sig_t *sig, uint8_t *md,
                  pki_cms_in_t *in)
{
    unsigned md_len = 0;
    const EVP_MD *h = EVP_get_digestbynid(sig->md_nid);
    if (info->failed || h == NULL || !EVP_Digest(info->p, info->len, md, &md_len, h, NULL))
        return PKI_ERR_INTERNAL;
    *in = (pki_cms_in_t){.certs = certs, .certs_len = certs_len, .content_type = OID_TST_INFO, .content = info->p,
                         .content_len = info->len, .digest = md, .digest_len = md_len, .sig = *sig};
    return PKI_OK;
}

/* The TSTInfo of t wrapped as CMS content, then signed through sign (out, cb_rc) or, with sign NULL, only
 * measured against max (size). */
int pki_int_tst_cms(const pki_tst_t *t, const uint8_t *certs, size_t certs_len, const pki_sig_t *sig, pki_sign_fn sign,
                   void *arg, pki_der_t *out, int *cb_rc, size_t max, size_t *size)
{
    pki_der_t info;
    uint8_t md[EVP_MAX_MD_SIZE];
    pki_cms_in_t in;
    pki_der_init(&info, TST_INFO_MAX);
    pki_tst_info(&info, t);
    int rc = tst_in(&info, certs, certs_len, sig, md, &in);
    if (rc == PKI_OK)
        rc = sign != NULL ? pki_cms_sign(&in, sign, NULL, arg, out, cb_rc) : pki_cms_size_max(&in, 0, max, size);
    pki_der_free(&info);
    return rc;
}

void pki_tst_sig(int rsa, const char *curve_oid, pki_sig_t *p)
{
    memset(p, 0, sizeof(*p));
    p->md_nid = NID_sha256;
    if (rsa) {
        p->scheme = PKI_SIG_RSA_PKCS1;
        return;
    }
    p->scheme = PKI_SIG_ECDSA;
    if (curve_oid != NULL && strcmp(curve_oid, "1.3.132.0.34") == 0)
        p->md_nid = NID_sha384;
    else if (curve_oid != NULL && strcmp(curve_oid, "1.3.132.0.35") == 0)
        p->md_nid = NID_sha512;
}

int pki_tst_size_max(const pki_tst_t *t, const uint8_t *certs, size_t certs_len, const pki_sig_t *sig, size_t max,
                     size_t *out)
{
    return pki_int_tst_cms(t, certs, certs_len, sig, NULL, NULL, NULL, NULL, max, out);
}
