/* pki_int.h - what the files of pki/ share and nobody else sees. */
#ifndef PKI_INT_H
#define PKI_INT_H

#include "pki.h"

#define PKI_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Write a message into err (err_sz bytes; nothing when err is NULL). */
void pki_err(char *err, size_t err_sz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* pki_der.c: the length octets of n into out, @return how many. */
size_t pki_int_der_len_bytes(size_t n, uint8_t out[9]);
/* pki_der.c: AlgorithmIdentifier of a digest; with_null: NULL parameters (inside RSASSA-PSS-params, as OpenSSL
 * writes them), else absent (RFC 5754 3). */
void pki_int_der_md_algor(pki_der_t *d, int nid, bool with_null);
/* pki_tsa.c: the token over t's TSTInfo, signed through sign (out, cb_rc) or, with sign NULL, measured (size). */
int pki_int_tst_cms(const pki_tst_t *t, const uint8_t *certs, size_t certs_len, const pki_sig_t *sig, pki_sign_fn sign,
                    void *arg, pki_der_t *out, int *cb_rc, size_t max, size_t *size);

#endif
