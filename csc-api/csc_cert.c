/* csc_cert.c - reading a credential's certificates. */
#include <string.h>
#include <time.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/x509.h>
#include "csc_int.h"

int csc_certs_load(const stor_cred_t *cred, X509 **out, size_t max, size_t *n)
{
    const unsigned char *p = cred->certs;
    const unsigned char *end = cred->certs + cred->certs_len;
    *n = 0;
    while (p < end && *n < max) {
        X509 *x = d2i_X509(NULL, &p, end - p);
        if (x == NULL) {
            csc_certs_free(out, *n);
            *n = 0;
            return -1;
        }
        out[(*n)++] = x;
    }
    return p == end ? 0 : -1;
}

void csc_certs_free(X509 **certs, size_t n)
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

int csc_cert_validity(X509 *ee, int64_t *not_before, int64_t *not_after)
{
    return asn1_unix(X509_get0_notBefore(ee), not_before) == 0 && asn1_unix(X509_get0_notAfter(ee), not_after) == 0
               ? 0
               : -1;
}

const char *csc_cred_cert_status(const stor_cred_t *cred, time_t now)
{
    int64_t nb = cred->cert_not_before, na = cred->cert_not_after;
    if (na == 0) {
        /* A record written before the validity was kept with it: read the certificate. */
        const unsigned char *p = cred->certs;
        X509 *ee = cred->certs_len > 0 ? d2i_X509(NULL, &p, cred->certs_len) : NULL;
        int ok = ee != NULL && csc_cert_validity(ee, &nb, &na) == 0;
        X509_free(ee);
        if (!ok)
            return "expired";
    }
    return (int64_t)now < nb || (int64_t)now > na ? "expired" : "valid";
}

int csc_dn(const X509_NAME *name, char *buf, size_t sz)
{
    BIO *b = BIO_new(BIO_s_mem());
    int rc = -1;
    if (b == NULL)
        return -1;
    /* RFC 4514 order and escaping, UTF-8 kept as UTF-8 */
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0)
        goto out;
    int len = BIO_read(b, buf, (int)sz - 1);
    if (len < 0)
        len = 0;
    buf[len] = '\0';
    rc = 0;
out:
    BIO_free(b);
    return rc;
}
