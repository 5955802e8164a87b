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

const char *csc_cert_status(X509 *ee, time_t now)
{
    if (X509_cmp_time(X509_get0_notBefore(ee), &now) > 0 || X509_cmp_time(X509_get0_notAfter(ee), &now) < 0)
        return "expired";
    return "valid";
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
