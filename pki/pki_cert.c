/* pki_cert.c - certificate checks: chains in concatenated DER, validity periods, RFC 4514 names. */
#include <string.h>
#include <time.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/x509.h>
#include "pki_int.h"

int pki_certs_load(const uint8_t *der, size_t len, X509 **out, size_t max, size_t *n)
{
    const unsigned char *p = der;
    const unsigned char *end = der + len;
    *n = 0;
    while (p < end && *n < max) {
        X509 *x = d2i_X509(NULL, &p, end - p);
        if (x == NULL) {
            pki_certs_free(out, *n);
            *n = 0;
            return PKI_ERR_INVAL;
        }
        out[(*n)++] = x;
    }
    if (p != end) { /* more than max: refused whole, as a bad one is (the callers free nothing on an error) */
        pki_certs_free(out, *n);
        *n = 0;
        return PKI_ERR_INVAL;
    }
    return PKI_OK;
}

void pki_certs_free(X509 **certs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        X509_free(certs[i]);
}

static int asn1_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

int pki_cert_validity(X509 *ee, int64_t *not_before, int64_t *not_after)
{
    return asn1_unix(X509_get0_notBefore(ee), not_before) == 0 && asn1_unix(X509_get0_notAfter(ee), not_after) == 0
               ? PKI_OK
               : PKI_ERR_INVAL;
}

int pki_dn(const X509_NAME *name, char *buf, size_t sz)
{
    BIO *b = BIO_new(BIO_s_mem());
    int rc = PKI_ERR_INTERNAL;
    if (b == NULL)
        return PKI_ERR_NOMEM;
    /* RFC 4514 order and escaping, UTF-8 kept as UTF-8 */
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0)
        goto out;
    int len = BIO_read(b, buf, (int)sz - 1);
    if (len < 0)
        len = 0;
    buf[len] = '\0';
    rc = PKI_OK;
out:
    BIO_free(b);
    return rc;
}
