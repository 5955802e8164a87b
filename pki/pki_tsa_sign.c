/*
 * pki_tsa_sign.c - pki_tst_sign: an RFC 3161 time-stamp token signed through the caller's callback (pki_tsa.c
 * encodes it). A file of its own so that only csc-sam, which holds the TSA key, links it
 * (tests/unit/server/check_symbols).
 */
#include "pki_int.h"

int pki_tst_sign(const pki_tst_t *t, const uint8_t *certs, size_t certs_len, const pki_sig_t *sig, pki_sign_fn sign,
                 void *arg, pki_der_t *out, int *cb_rc)
{
    if (sign == NULL)
        return PKI_ERR_INVAL;
    return pki_int_tst_cms(t, certs, certs_len, sig, sign, arg, out, cb_rc, 0, NULL);
}
