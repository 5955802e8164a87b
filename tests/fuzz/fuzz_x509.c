/*
 * fuzz_x509.c - libFuzzer target of the certificate loaders (pki/): pki_certs_load() on a credential's stored chain
 * (concatenated DER, end entity first; what csc-api, the pages and csc-admin read), and pki_crl_parse_anchors() on a
 * PEM file's content of CA certificates (trust_anchors: pki_crl_load_anchors() reads the file with the same code
 * through a file BIO). The input is both: the DER chain and the PEM file's content; nothing is read or written.
 *
 * A chain that loads has at most CHAIN_MAX certificates, each of which encodes to DER that decodes and encodes to
 * itself. (Not always to the input's bytes: OpenSSL takes a signature BIT STRING whose unused bits are set and clears
 * them when it encodes; corpus/x509/regress-signature-unused-bits, found so. The stored bytes are what the service
 * keeps and hands out, never a re-encoding.) One that does not load keeps nothing (pki.h): *n is 0, and an X509 kept
 * anyway is a leak LeakSanitizer reports. Each certificate loaded then goes through what the callers ask of it:
 * validity, subject and issuer names (pki_dn into a small and a large buffer), the public key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/x509.h>

#include "fuzz.h"
#include "pki.h"

#define CHAIN_MAX 4 /* the pages' (web_account.c); a longer chain is refused whole */

static void use(X509 *x)
{
    int64_t nb, na;
    char small[8], big[512];
    int rc = pki_cert_validity(x, &nb, &na);
    if (rc != PKI_OK && rc != PKI_ERR_INVAL)
        abort();
    if (pki_dn(X509_get_subject_name(x), small, sizeof(small)) == PKI_OK && strlen(small) >= sizeof(small))
        abort();
    if (pki_dn(X509_get_issuer_name(x), big, sizeof(big)) == PKI_OK && strlen(big) >= sizeof(big))
        abort();
    (void)X509_get0_pubkey(x);
}

static void der_chain(const uint8_t *data, size_t size)
{
    X509 *certs[CHAIN_MAX];
    size_t n = 99;
    if (pki_certs_load(data, size, certs, CHAIN_MAX, &n) != PKI_OK) {
        if (n != 0)
            abort();
        return;
    }
    if (n > CHAIN_MAX || (n == 0) != (size == 0))
        abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char *enc = NULL, *again = NULL;
        int len = i2d_X509(certs[i], &enc);
        const unsigned char *p = enc;
        X509 *x = len > 0 ? d2i_X509(NULL, &p, len) : NULL;
        int len2 = x != NULL && p == enc + len ? i2d_X509(x, &again) : -1;
        if (len2 != len || memcmp(enc, again, (size_t)len) != 0)
            abort();
        X509_free(x);
        OPENSSL_free(enc);
        OPENSSL_free(again);
        use(certs[i]);
    }
    pki_certs_free(certs, n);
}

static void pem_file(const uint8_t *data, size_t size)
{
    STACK_OF(X509) *sk;
    int rc = pki_crl_parse_anchors(data, size, &sk);
    if (rc != PKI_OK) {
        if (rc != PKI_ERR_INVAL || sk != NULL)
            abort();
        return;
    }
    for (int i = 0; i < sk_X509_num(sk); i++)
        use(sk_X509_value(sk, i));
    sk_X509_pop_free(sk, X509_free);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    der_chain(data, size);
    pem_file(data, size);
    return 0;
}
