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

#endif
