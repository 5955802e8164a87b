/*
 * csc_alg.c - the algorithm OIDs we serve (CSC gives none; docs/csc-api.md sec. 12.1).
 * Digests below SHA-256 are refused (CSC API v2.0.0.2 sec. 11.10).
 */
#include <string.h>
#include <openssl/objects.h>
#include "csc_int.h"

static const csc_hash_alg_t hash_algs[] = {
    {"2.16.840.1.101.3.4.2.1", NID_sha256, 32},
    {"2.16.840.1.101.3.4.2.2", NID_sha384, 48},
    {"2.16.840.1.101.3.4.2.3", NID_sha512, 64},
};

/* Order matters: it is the order of key.algo and info.signAlgorithms. */
static const csc_sign_alg_t sign_algs[] = {
    {"1.2.840.113549.1.1.11", STOR_KEY_RSA, HSM_SIG_RSA_PKCS1, NID_sha256},
    {"1.2.840.113549.1.1.12", STOR_KEY_RSA, HSM_SIG_RSA_PKCS1, NID_sha384},
    {"1.2.840.113549.1.1.13", STOR_KEY_RSA, HSM_SIG_RSA_PKCS1, NID_sha512},
    {"1.2.840.113549.1.1.1", STOR_KEY_RSA, HSM_SIG_RSA_PKCS1, 0},
    {"1.2.840.113549.1.1.10", STOR_KEY_RSA, HSM_SIG_RSA_PSS, 0},
    {"1.2.840.10045.4.3.2", STOR_KEY_EC, HSM_SIG_ECDSA, NID_sha256},
    {"1.2.840.10045.4.3.3", STOR_KEY_EC, HSM_SIG_ECDSA, NID_sha384},
    {"1.2.840.10045.4.3.4", STOR_KEY_EC, HSM_SIG_ECDSA, NID_sha512},
};

const csc_hash_alg_t *csc_hash_by_oid(const char *oid)
{
    for (size_t i = 0; i < CSC_ARRAY_SIZE(hash_algs); i++)
        if (strcmp(hash_algs[i].oid, oid) == 0)
            return &hash_algs[i];
    return NULL;
}

const csc_hash_alg_t *csc_hash_by_nid(int nid)
{
    for (size_t i = 0; i < CSC_ARRAY_SIZE(hash_algs); i++)
        if (hash_algs[i].nid == nid)
            return &hash_algs[i];
    return NULL;
}

const csc_sign_alg_t *csc_sign_alg_by_oid(const char *oid)
{
    for (size_t i = 0; i < CSC_ARRAY_SIZE(sign_algs); i++)
        if (strcmp(sign_algs[i].oid, oid) == 0)
            return &sign_algs[i];
    return NULL;
}

size_t csc_sign_algs_for_key(uint32_t key_type, const csc_sign_alg_t **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < CSC_ARRAY_SIZE(sign_algs) && n < max; i++)
        if (sign_algs[i].key_type == key_type)
            out[n++] = &sign_algs[i];
    return n;
}

size_t csc_sign_algs_all(const csc_sign_alg_t **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < CSC_ARRAY_SIZE(sign_algs) && n < max; i++)
        out[n++] = &sign_algs[i];
    return n;
}

int csc_pss_params_parse(const uint8_t *der, size_t len, hsm_sign_params_t *out)
{
    pki_sig_t p;
    if (pki_pss_params_parse(der, len, &p) != PKI_OK)
        return -1;
    *out = csc_hsm_sig(&p);
    return 0;
}
