/*
 * pki_issue.c - certificates made here: PKCS#10 requests whose signature comes from the caller's callback (the key
 * stays in the signing device; the request is checked to verify with the public key it names), and the demo CA's
 * issuing of end-entity certificates from a CA certificate and key in PEM files.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "pki_int.h"

#define ERR(...) pki_err(err, err_sz, __VA_ARGS__)

/* ---- certificate requests (PKCS#10, RFC 2986) ------------------------------------------------------------ */

int pki_csr_build(EVP_PKEY *pub, const X509_NAME *subject, pki_sign_fn sign, void *arg, X509_REQ **out, int *cb_rc,
                  char *err, size_t err_sz)
{
    X509_REQ *req = X509_REQ_new();
    X509_ALGOR *alg = X509_ALGOR_new();
    ASN1_BIT_STRING *sig = NULL;
    unsigned char *tbs = NULL;
    int rc = PKI_ERR_NOMEM;

    *out = NULL;
    if (req == NULL || alg == NULL || !X509_REQ_set_version(req, 0) || !X509_REQ_set_subject_name(req, subject) ||
        !X509_REQ_set_pubkey(req, pub)) {
        ERR("cannot build the certificate request");
        goto out;
    }
    /* The digest follows the key's strength: SHA-256 for RSA and P-256, SHA-384 for P-384, SHA-512 for P-521. */
    pki_sig_t p = {.md_nid = NID_sha256};
    int sig_nid;
    if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
        p.scheme = PKI_SIG_RSA_PKCS1;
        sig_nid = NID_sha256WithRSAEncryption;
        X509_ALGOR_set0(alg, OBJ_nid2obj(sig_nid), V_ASN1_NULL, NULL);
    } else {
        int bits = EVP_PKEY_get_bits(pub);
        p.scheme = PKI_SIG_ECDSA;
        p.md_nid = bits > 384 ? NID_sha512 : bits > 256 ? NID_sha384 : NID_sha256;
        sig_nid = p.md_nid == NID_sha512 ? NID_ecdsa_with_SHA512 : p.md_nid == NID_sha384 ? NID_ecdsa_with_SHA384
                                                                                          : NID_ecdsa_with_SHA256;
        X509_ALGOR_set0(alg, OBJ_nid2obj(sig_nid), V_ASN1_UNDEF, NULL);
    }
    int tbs_len = i2d_re_X509_REQ_tbs(req, &tbs);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (tbs_len <= 0 || !EVP_Digest(tbs, (size_t)tbs_len, md, &md_len, EVP_get_digestbynid(p.md_nid), NULL)) {
        ERR("cannot encode the certificate request");
        rc = PKI_ERR_INTERNAL;
        goto out;
    }
    uint8_t sigbuf[PKI_SIG_MAX];
    size_t sig_len = 0;
    int crc = sign(arg, &p, md, md_len, sigbuf, &sig_len);
    if (crc != 0) {
        if (cb_rc != NULL)
            *cb_rc = crc;
        ERR("the certificate request could not be signed");
        rc = PKI_ERR_CALLBACK;
        goto out;
    }
    if (sig_len > PKI_SIG_MAX) {
        ERR("the signature is too long");
        rc = PKI_ERR_INTERNAL;
        goto out;
    }
    if ((sig = ASN1_BIT_STRING_new()) == NULL || !ASN1_BIT_STRING_set(sig, sigbuf, (int)sig_len) ||
        !X509_REQ_set1_signature_algo(req, alg)) {
        ERR("out of memory");
        goto out;
    }
    sig->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07); /* a whole number of bytes */
    sig->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    X509_REQ_set0_signature(req, sig);
    sig = NULL;
    /* The request must verify with the key it names, or the signer signed something else. */
    if (X509_REQ_verify(req, pub) != 1) {
        ERR("the signed certificate request does not verify");
        rc = PKI_ERR_INTERNAL;
        goto out;
    }
    *out = req;
    req = NULL;
    rc = PKI_OK;
out:
    ERR_clear_error();
    OPENSSL_free(tbs);
    ASN1_BIT_STRING_free(sig);
    X509_ALGOR_free(alg);
    X509_REQ_free(req);
    return rc;
}

/* ---- the demo CA ------------------------------------------------------------------------------------------ */

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static X509 *load_pem_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

int pki_issue_cert(const pki_ca_t *ca, EVP_PKEY *pub, const char *cn, bool tsa, uint8_t *chain, size_t chain_max,
                   size_t *chain_len, int64_t *not_before, int64_t *not_after, char *err, size_t err_sz)
{
    *chain_len = 0;
    X509 *cacert = load_pem_cert(ca->cert_file), *x = X509_new();
    EVP_PKEY *cakey = NULL;
    FILE *f = fopen(ca->key_file, "r");
    BIGNUM *serial = BN_new();
    int rc = PKI_ERR_NOMEM;

    if (f != NULL) {
        cakey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (cacert == NULL || cakey == NULL) {
        ERR("cannot read the CA certificate %s or key %s", ca->cert_file, ca->key_file);
        rc = PKI_ERR_IO;
        goto out;
    }
    if (x == NULL || serial == NULL || !BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY)) {
        ERR("out of memory");
        goto out;
    }
    X509_NAME *subj = X509_NAME_new();
    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    int ok = X509_set_version(x, 2) && BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) &&
             X509_set_issuer_name(x, X509_get_subject_name(cacert)) && X509_set_subject_name(x, subj) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -60) &&
             X509_time_adj_ex(X509_getm_notAfter(x), (int)(ca->days ? ca->days : 365), 0, NULL) &&
             X509_set_pubkey(x, pub);
    X509_NAME_free(subj);
    /* Never outlive the CA. */
    if (ok && ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(cacert)) > 0)
        ok = X509_set1_notAfter(x, X509_get0_notAfter(cacert));
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cacert, x, NULL, NULL, 0);
    if (!ok || add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(x, &ctx, NID_key_usage, tsa ? "critical,digitalSignature" : "critical,digitalSignature,nonRepudiation") != 0 ||
        (tsa && add_ext(x, &ctx, NID_ext_key_usage, "critical,timeStamping") != 0) ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") != 0 || !X509_sign(x, cakey, EVP_sha256())) {
        ERR("cannot issue the certificate");
        rc = PKI_ERR_INTERNAL;
        goto out;
    }
    /* End entity, then the CA, then anything above it. */
    unsigned char *p = chain;
    int len = i2d_X509(x, NULL), len2 = i2d_X509(cacert, NULL);
    if (len <= 0 || len2 <= 0 || (size_t)len + (size_t)len2 > chain_max) {
        ERR("certificate chain too large");
        goto out;
    }
    i2d_X509(x, &p);
    i2d_X509(cacert, &p);
    if (ca->chain_file != NULL && ca->chain_file[0] != '\0') {
        FILE *cf = fopen(ca->chain_file, "r");
        X509 *c;
        if (cf == NULL) {
            ERR("cannot read the CA chain %s", ca->chain_file);
            rc = PKI_ERR_IO;
            goto out;
        }
        while ((c = PEM_read_X509(cf, NULL, NULL, NULL)) != NULL) {
            int l = i2d_X509(c, NULL);
            if (l <= 0 || (size_t)(p - chain) + (size_t)l > chain_max) {
                X509_free(c);
                fclose(cf);
                ERR("certificate chain too large");
                goto out;
            }
            i2d_X509(c, &p);
            X509_free(c);
        }
        ERR_clear_error();
        fclose(cf);
    }
    if (pki_cert_validity(x, not_before, not_after) != PKI_OK) {
        ERR("cannot read the validity of the issued certificate");
        rc = PKI_ERR_INTERNAL;
        goto out;
    }
    *chain_len = (size_t)(p - chain);
    rc = PKI_OK;
out:
    BN_free(serial);
    X509_free(x);
    X509_free(cacert);
    EVP_PKEY_free(cakey);
    return rc;
}
