/* Unit tests of the DER writer and the CMS SignedData builder (pki/pki_der.c, pki/pki_cms.c): encodings against known bytes,
 * limits, and SignedData checked by OpenSSL's own CMS verifier with an in-process key standing in for the HSM. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/cms.h>
#include <openssl/ec.h>
#include <openssl/ess.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>
#include "pki.h"
#include "test_pki.h"

static int der_is(const pki_der_t *d, const char *hex)
{
    size_t n = strlen(hex) / 2;
    if (d->failed || d->len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        if (d->p[i] != v)
            return 0;
    }
    return 1;
}

/* pki_hex and the one hex decoder, pki_unhex: either case, odd lengths, refusals that leave out alone. */
START_TEST(t_hex)
{
    uint8_t out[4], big[3];
    char hex[9];

    ck_assert_int_eq(pki_unhex("000fA5ff", 8, out, sizeof(out)), 4);
    ck_assert_mem_eq(out, "\x00\x0f\xa5\xff", 4);
    pki_hex(out, 4, hex);
    ck_assert_str_eq(hex, "000fa5ff");
    ck_assert_int_eq(pki_unhex("abc", 3, out, sizeof(out)), 2); /* "0abc" */
    ck_assert_mem_eq(out, "\x0a\xbc", 2);
    ck_assert_int_eq(pki_unhex("7", 1, out, 1), 1);
    ck_assert_uint_eq(out[0], 7);
    ck_assert_int_eq(pki_unhex("", 0, out, 0), 0);
    ck_assert_int_eq(pki_unhex("4142", 2, out, 1), 1); /* n counts digits, not the string */
    ck_assert_uint_eq(out[0], 0x41);
    memset(big, 0x55, sizeof(big));
    ck_assert_int_eq(pki_unhex("0g", 2, big, sizeof(big)), -1);
    ck_assert_int_eq(pki_unhex("0x12", 4, big, sizeof(big)), -1);
    ck_assert_int_eq(pki_unhex("12 4", 4, big, sizeof(big)), -1);
    ck_assert_int_eq(pki_unhex("1234567", 7, big, sizeof(big)), -1); /* 4 bytes into 3 */
    ck_assert_int_eq(pki_unhex(NULL, 2, big, sizeof(big)), -1);
    ck_assert_uint_eq(big[0], 0x55);
    ck_assert_uint_eq(big[2], 0x55);
}
END_TEST

START_TEST(t_der_primitives)
{
    pki_der_t d;
    pki_der_init(&d, 4096);
    ck_assert_int_eq(pki_der_oid(&d, "1.2.840.113549.1.7.2"), 0);
    ck_assert(der_is(&d, "06092a864886f70d010702"));
    d.len = 0;
    pki_der_oid(&d, "2.16.840.1.101.3.4.2.1");
    ck_assert(der_is(&d, "0609608648016503040201"));
    d.len = 0;
    pki_der_uint(&d, 0);
    ck_assert(der_is(&d, "020100"));
    d.len = 0;
    pki_der_uint(&d, 128);
    ck_assert(der_is(&d, "02020080"));
    d.len = 0;
    pki_der_uint(&d, 0x1234);
    ck_assert(der_is(&d, "02021234"));
    d.len = 0;
    pki_der_uint_bytes(&d, (const uint8_t *)"\x00\x00\xff", 3);
    ck_assert(der_is(&d, "020200ff"));
    /* nested elements and the three length forms */
    d.len = 0;
    size_t m = pki_der_mark(&d);
    size_t inner = pki_der_mark(&d);
    pki_der_raw(&d, "\x05\x00", 2);
    pki_der_close(&d, inner, 0x30);
    pki_der_close(&d, m, 0x30);
    ck_assert(der_is(&d, "300430020500"));
    uint8_t big[300];
    memset(big, 0xab, sizeof(big));
    d.len = 0;
    pki_der_tlv(&d, 0x04, big, 200);
    ck_assert_int_eq(d.len, 203);
    ck_assert(d.p[1] == 0x81 && d.p[2] == 200);
    d.len = 0;
    pki_der_tlv(&d, 0x04, big, 300);
    ck_assert_int_eq(d.len, 304);
    ck_assert(d.p[1] == 0x82 && d.p[2] == 0x01 && d.p[3] == 0x2c);
    /* times: UTCTime, GeneralizedTime without trailing zeros in the fraction, none when zero */
    d.len = 0;
    pki_der_time(&d, 1764124800000LL, false); /* 2025-11-26T02:40:00Z */
    ck_assert(der_is(&d, "170d3235313132363032343030305a"));
    d.len = 0;
    pki_der_time(&d, 1764124800120LL, true);
    ck_assert(d.p[0] == 0x18 && memcmp(d.p + 2, "20251126024000.12Z", 18) == 0 && d.p[1] == 18);
    d.len = 0;
    pki_der_time(&d, 1764124800000LL, true);
    ck_assert(d.p[1] == 15 && memcmp(d.p + 2, "20251126024000Z", 15) == 0);
    /* a bad OID fails and the failure sticks */
    d.len = 0;
    ck_assert_int_eq(pki_der_oid(&d, "1.2.x"), -1);
    ck_assert(d.failed);
    pki_der_uint(&d, 1);
    ck_assert_int_eq(d.len, 0);
    pki_der_free(&d);
    pki_der_init(&d, 4096);
    ck_assert_int_eq(pki_der_oid(&d, "3.1"), -1);
    pki_der_free(&d);
    pki_der_init(&d, 4096);
    ck_assert_int_eq(pki_der_oid(&d, "1"), -1);
    pki_der_free(&d);
    /* the maximum is hard */
    pki_der_init(&d, 100);
    pki_der_tlv(&d, 0x04, big, 98);
    ck_assert(!d.failed && d.len == 100);
    pki_der_free(&d);
    pki_der_init(&d, 100);
    pki_der_tlv(&d, 0x04, big, 99);
    ck_assert(d.failed);
    pki_der_free(&d);
}
END_TEST

/* ---- CMS with an in-process key ------------------------------------------------------------------------ */

typedef struct signer {
    EVP_PKEY *key;
    X509 *cert;
    uint8_t certs[4096];
    size_t certs_len;
    int calls;
    int fail;
} signer_t;

static void make_signer(signer_t *s, int rsa)
{
    memset(s, 0, sizeof(*s));
    s->key = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048) : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ck_assert_ptr_nonnull(s->key);
    s->cert = X509_new();
    X509_set_version(s->cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(s->cert), 4242);
    X509_NAME *n = X509_NAME_new();
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"cms test", -1, -1, 0);
    X509_set_subject_name(s->cert, n);
    X509_set_issuer_name(s->cert, n);
    X509_NAME_free(n);
    X509_gmtime_adj(X509_getm_notBefore(s->cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(s->cert), 3600);
    X509_set_pubkey(s->cert, s->key);
    ck_assert(X509_sign(s->cert, s->key, EVP_sha256()) > 0);
    unsigned char *p = s->certs;
    s->certs_len = (size_t)i2d_X509(s->cert, &p);
}

static void free_signer(signer_t *s)
{
    EVP_PKEY_free(s->key);
    X509_free(s->cert);
}

/* What the HSM does, with the key in-process: sign a digest. A failing device answers with the caller's own
 * code (DEVICE_DOWN), which pki_cms_sign hands back through cb_rc. */
#define DEVICE_DOWN 42
static int test_sign(void *arg, const pki_sig_t *p, const uint8_t *digest, size_t len, uint8_t *sig,
                     size_t *sig_len)
{
    signer_t *s = arg;
    s->calls++;
    if (s->fail)
        return DEVICE_DOWN;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(s->key, NULL);
    ck_assert(EVP_PKEY_sign_init(c) > 0);
    ck_assert(EVP_PKEY_CTX_set_signature_md(c, EVP_get_digestbynid(p->md_nid)) > 0);
    if (p->scheme == PKI_SIG_RSA_PSS) {
        ck_assert(EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) > 0);
        ck_assert(EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_get_digestbynid(p->mgf1_md_nid)) > 0);
        ck_assert(EVP_PKEY_CTX_set_rsa_pss_saltlen(c, (int)p->salt_len) > 0);
    } else if (p->scheme == PKI_SIG_RSA_PKCS1) {
        ck_assert(EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) > 0);
    }
    *sig_len = PKI_SIG_MAX;
    ck_assert(EVP_PKEY_sign(c, sig, sig_len, digest, len) > 0);
    EVP_PKEY_CTX_free(c);
    return 0;
}

static const uint8_t token_bytes[] = {0x30, 0x03, 0x02, 0x01, 0x07}; /* any DER: the builder embeds it as is */

static int test_tst(void *arg, const uint8_t *sig, size_t sig_len, uint8_t **tok, size_t *tok_len)
{
    (void)arg;
    ck_assert(sig_len > 0 && sig != NULL);
    *tok = malloc(sizeof(token_bytes));
    memcpy(*tok, token_bytes, sizeof(token_bytes));
    *tok_len = sizeof(token_bytes);
    return 0;
}

static CMS_ContentInfo *build(signer_t *s, const pki_sig_t *sp, const char *content, int attached,
                              int64_t signing_time, pki_tst_fn tst, pki_der_t *out)
{
    uint8_t md[64];
    unsigned mdl;
    EVP_Digest(content, strlen(content), md, &mdl, EVP_get_digestbynid(sp->md_nid), NULL);
    pki_cms_in_t in = {.certs = s->certs, .certs_len = s->certs_len, .digest = md, .digest_len = mdl,
                       .content = attached ? (const uint8_t *)content : NULL,
                       .content_len = attached ? strlen(content) : 0, .signing_time_ms = signing_time,
                       .sig = *sp};
    pki_der_init(out, 1 << 20);
    ck_assert_int_eq(pki_cms_sign(&in, test_sign, tst, s, out, NULL), PKI_OK);
    const unsigned char *p = out->p;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)out->len);
    ck_assert_ptr_nonnull(cms);
    ck_assert(p == out->p + out->len);
    return cms;
}

static void verify(signer_t *s, CMS_ContentInfo *cms, const char *content, int attached)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_add_cert(st, s->cert);
    BIO *in = attached ? NULL : BIO_new_mem_buf(content, (int)strlen(content));
    BIO *out = BIO_new(BIO_s_mem());
    ck_assert_int_eq(CMS_verify(cms, NULL, st, in, out, CMS_BINARY), 1);
    char *data;
    long n = BIO_get_mem_data(out, &data);
    ck_assert_int_eq(n, (long)strlen(content));
    ck_assert(memcmp(data, content, (size_t)n) == 0);
    BIO_free(in);
    BIO_free(out);
    X509_STORE_free(st);
}

START_TEST(t_cms_variants)
{
    static const struct {
        int rsa;
        pki_sig_t p;
        int attached;
    } cases[] = {
        {1, {PKI_SIG_RSA_PKCS1, NID_sha256, 0, 0}, 0},
        {1, {PKI_SIG_RSA_PKCS1, NID_sha512, 0, 0}, 1},
        {1, {PKI_SIG_RSA_PSS, NID_sha256, NID_sha256, 32}, 0},
        {1, {PKI_SIG_RSA_PSS, NID_sha384, NID_sha384, 20}, 1},
        {0, {PKI_SIG_ECDSA, NID_sha256, 0, 0}, 1},
        {0, {PKI_SIG_ECDSA, NID_sha384, 0, 0}, 0},
    };
    const char *content = "the document to be signed\n";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        signer_t s;
        pki_der_t der;
        make_signer(&s, cases[i].rsa);
        CMS_ContentInfo *cms = build(&s, &cases[i].p, content, cases[i].attached, 1764124800000LL, NULL, &der);
        verify(&s, cms, content, cases[i].attached);
        ck_assert_int_eq(s.calls, 1);
        /* signed attributes: content-type, message-digest, signing-certificate-v2, signing-time */
        CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
        ck_assert_int_eq(CMS_signed_get_attr_count(si), 4);
        ck_assert_int_ge(CMS_signed_get_attr_by_NID(si, NID_id_smime_aa_signingCertificateV2, -1), 0);
        ck_assert_int_ge(CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1), 0);
        ck_assert_int_ge(CMS_signed_get_attr_by_NID(si, NID_pkcs9_messageDigest, -1), 0);
        if (cases[i].p.scheme == PKI_SIG_RSA_PSS) { /* RSASSA-PSS-params in signatureAlgorithm */
            X509_ALGOR *alg;
            CMS_SignerInfo_get0_algs(si, NULL, NULL, NULL, &alg);
            ck_assert_int_eq(OBJ_obj2nid(alg->algorithm), NID_rsassaPss);
            ck_assert_int_eq(alg->parameter != NULL ? alg->parameter->type : -1, V_ASN1_SEQUENCE);
        }
        /* a changed content no longer verifies */
        if (!cases[i].attached) {
            X509_STORE *st = X509_STORE_new();
            X509_STORE_add_cert(st, s.cert);
            BIO *in = BIO_new_mem_buf("the document to be signed?", -1);
            ck_assert_int_eq(CMS_verify(cms, NULL, st, in, NULL, CMS_BINARY), 0);
            BIO_free(in);
            X509_STORE_free(st);
        }
        CMS_ContentInfo_free(cms);
        pki_der_free(&der);
        free_signer(&s);
    }
}
END_TEST

/* The signing-certificate-v2 value: one ESSCertIDv2 with the SHA-256 of the certificate and issuerSerial. */
START_TEST(t_cms_signing_cert_v2)
{
    signer_t s;
    pki_der_t der;
    pki_sig_t p = {PKI_SIG_ECDSA, NID_sha256, 0, 0};
    make_signer(&s, 0);
    CMS_ContentInfo *cms = build(&s, &p, "x", 0, 0, NULL, &der);
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
    /* PAdES-style: no signing-time */
    ck_assert_int_eq(CMS_signed_get_attr_count(si), 3);
    ck_assert_int_lt(CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1), 0);
    int idx = CMS_signed_get_attr_by_NID(si, NID_id_smime_aa_signingCertificateV2, -1);
    X509_ATTRIBUTE *a = CMS_signed_get_attr(si, idx);
    ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(a, 0);
    ck_assert_int_eq(t->type, V_ASN1_SEQUENCE);
    /* OpenSSL's own encoding of the same value (SHA-256 DEFAULT omitted, issuerSerial set) */
    ESS_SIGNING_CERT_V2 *sc = OSSL_ESS_signing_cert_v2_new_init(EVP_sha256(), s.cert, NULL, 1);
    ck_assert_ptr_nonnull(sc);
    unsigned char *want = NULL;
    int wl = i2d_ESS_SIGNING_CERT_V2(sc, &want);
    ck_assert_int_eq(wl, t->value.sequence->length);
    ck_assert(memcmp(want, t->value.sequence->data, (size_t)wl) == 0);
    OPENSSL_free(want);
    ESS_SIGNING_CERT_V2_free(sc);
    CMS_ContentInfo_free(cms);
    pki_der_free(&der);
    free_signer(&s);
}
END_TEST

/* B-T: the token from the callback becomes the signature-time-stamp unsigned attribute. */
START_TEST(t_cms_unsigned_tst)
{
    signer_t s;
    pki_der_t der;
    pki_sig_t p = {PKI_SIG_ECDSA, NID_sha256, 0, 0};
    make_signer(&s, 0);
    CMS_ContentInfo *cms = build(&s, &p, "x", 1, 0, test_tst, &der);
    verify(&s, cms, "x", 1);
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
    ck_assert_int_eq(CMS_unsigned_get_attr_count(si), 1);
    ck_assert_int_ge(CMS_unsigned_get_attr_by_NID(si, NID_id_smime_aa_timeStampToken, -1), 0);
    CMS_ContentInfo_free(cms);
    pki_der_free(&der);
    free_signer(&s);
}
END_TEST

START_TEST(t_cms_refusals)
{
    signer_t s;
    pki_der_t der;
    make_signer(&s, 0);
    uint8_t md[32] = {0};
    pki_cms_in_t in = {.certs = s.certs, .certs_len = s.certs_len, .digest = md, .digest_len = 32,
                       .sig = {PKI_SIG_ECDSA, NID_sha256, 0, 0}};
    /* the signer's error comes back, nothing is produced */
    s.fail = 1;
    pki_der_init(&der, 1 << 20);
    int cb_rc = 0;
    ck_assert_int_eq(pki_cms_sign(&in, test_sign, NULL, &s, &der, &cb_rc), PKI_ERR_CALLBACK);
    ck_assert_int_eq(cb_rc, DEVICE_DOWN);
    ck_assert_int_eq(der.len, 0);
    s.fail = 0;
    /* digest length not of the algorithm, garbage certificates, no certificate, SHA-1 */
    in.digest_len = 31;
    ck_assert_int_eq(pki_cms_sign(&in, test_sign, NULL, &s, &der, NULL), PKI_ERR_INVAL);
    in.digest_len = 32;
    in.certs_len = s.certs_len - 1;
    ck_assert_int_eq(pki_cms_sign(&in, test_sign, NULL, &s, &der, NULL), PKI_ERR_INVAL);
    in.certs_len = 0;
    ck_assert_int_eq(pki_cms_sign(&in, test_sign, NULL, &s, &der, NULL), PKI_ERR_INVAL);
    in.certs_len = s.certs_len;
    in.sig.md_nid = NID_sha1;
    ck_assert_int_eq(pki_cms_sign(&in, test_sign, NULL, &s, &der, NULL), PKI_ERR_INVAL);
    ck_assert_int_eq(s.calls, 1); /* only the first attempt reached the signer */
    /* an output limit too small for the result */
    in.sig.md_nid = NID_sha256;
    pki_der_free(&der);
    pki_der_init(&der, 200);
    ck_assert_int_eq(pki_cms_sign(&in, test_sign, NULL, &s, &der, NULL), PKI_ERR_NOMEM);
    pki_der_free(&der);
    free_signer(&s);
}
END_TEST

/* ---- RFC 3161 tokens -------------------------------------------------------------------------------------- */

START_TEST(t_tst)
{
    signer_t s;
    make_signer(&s, 0);
    uint8_t digest[32], serial[16], nonce[3] = {0x01, 0x02, 0x03};
    memset(digest, 0xab, sizeof(digest));
    memset(serial, 0x5a, sizeof(serial));
    pki_tst_t t = {.policy = "1.2.3.4.1", .accuracy_ms = 1500, .md_nid = NID_sha256, .digest = digest,
                   .digest_len = sizeof(digest), .serial = serial, .serial_len = sizeof(serial),
                   .gen_time_ms = 1764124800120LL, .nonce = nonce, .nonce_len = sizeof(nonce)};
    /* the TSTInfo as OpenSSL reads it */
    pki_der_t d;
    pki_der_init(&d, 4096);
    pki_tst_info(&d, &t);
    ck_assert_int_eq(d.failed, 0);
    const unsigned char *p = d.p;
    TS_TST_INFO *ti = d2i_TS_TST_INFO(NULL, &p, (long)d.len);
    ck_assert_ptr_nonnull(ti);
    ck_assert(p == d.p + d.len);
    ck_assert_int_eq(TS_TST_INFO_get_version(ti), 1);
    char buf[64];
    OBJ_obj2txt(buf, sizeof(buf), TS_TST_INFO_get_policy_id(ti), 1);
    ck_assert_str_eq(buf, "1.2.3.4.1");
    TS_ACCURACY *acc = TS_TST_INFO_get_accuracy(ti);
    ck_assert_ptr_nonnull(acc);
    ck_assert_int_eq(ASN1_INTEGER_get(TS_ACCURACY_get_seconds(acc)), 1);
    ck_assert_int_eq(ASN1_INTEGER_get(TS_ACCURACY_get_millis(acc)), 500);
    ck_assert_int_eq(ASN1_INTEGER_get(TS_TST_INFO_get_nonce(ti)), 0x010203);
    const ASN1_GENERALIZEDTIME *gt = TS_TST_INFO_get_time(ti);
    ck_assert_int_eq(ASN1_STRING_length(gt), 18);
    ck_assert(memcmp(ASN1_STRING_get0_data(gt), "20251126024000.12Z", 18) == 0);
    ASN1_OCTET_STRING *imprint = TS_MSG_IMPRINT_get_msg(TS_TST_INFO_get_msg_imprint(ti));
    ck_assert_int_eq(ASN1_STRING_length(imprint), 32);
    TS_TST_INFO_free(ti);
    pki_der_free(&d);

    /* the token: SignedData over that TSTInfo, verified by OpenSSL; the size bound holds */
    pki_sig_t sig = {PKI_SIG_ECDSA, NID_sha256, 0, 0};
    size_t max = 0;
    ck_assert_int_eq(pki_tst_size_max(&t, s.certs, s.certs_len, &sig, 256 * 1024, &max), PKI_OK);
    pki_der_init(&d, 64 * 1024);
    ck_assert_int_eq(pki_tst_sign(&t, s.certs, s.certs_len, &sig, test_sign, &s, &d, NULL), PKI_OK);
    ck_assert_uint_le(d.len, max);
    p = d.p;
    PKCS7 *tok = d2i_PKCS7(NULL, &p, (long)d.len);
    ck_assert_ptr_nonnull(tok);
    ti = PKCS7_to_TS_TST_INFO(tok);
    ck_assert_ptr_nonnull(ti);
    TS_TST_INFO_free(ti);
    PKCS7_free(tok);
    p = d.p;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)d.len);
    ck_assert_ptr_nonnull(cms);
    X509_STORE *st = X509_STORE_new();
    X509_STORE_add_cert(st, s.cert);
    ck_assert_int_eq(CMS_verify(cms, NULL, st, NULL, NULL, CMS_BINARY), 1);
    X509_STORE_free(st);
    CMS_ContentInfo_free(cms);
    pki_der_free(&d);

    /* an unknown digest or policy: nothing signed */
    t.md_nid = NID_sha1;
    pki_der_init(&d, 64 * 1024);
    ck_assert_int_eq(pki_tst_sign(&t, s.certs, s.certs_len, &sig, test_sign, &s, &d, NULL), PKI_ERR_INTERNAL);
    t.md_nid = NID_sha256;
    t.policy = "x";
    ck_assert_int_eq(pki_tst_sign(&t, s.certs, s.certs_len, &sig, test_sign, &s, &d, NULL), PKI_ERR_INTERNAL);
    ck_assert_int_eq(s.calls, 1);
    pki_der_free(&d);
    free_signer(&s);
}
END_TEST

/* ---- certificate requests --------------------------------------------------------------------------------- */

START_TEST(t_csr)
{
    for (int rsa = 0; rsa <= 1; rsa++) {
        signer_t s;
        make_signer(&s, rsa);
        X509_NAME *n = X509_NAME_new();
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"req", -1, -1, 0);
        X509_REQ *req = NULL;
        char err[128];
        int cb_rc = 0;
        ck_assert_int_eq(pki_csr_build(s.key, n, test_sign, &s, &req, &cb_rc, err, sizeof(err)), PKI_OK);
        ck_assert_int_eq(X509_REQ_verify(req, s.key), 1);
        ck_assert_int_eq(X509_REQ_get_signature_nid(req), rsa ? NID_sha256WithRSAEncryption : NID_ecdsa_with_SHA256);
        X509_REQ_free(req);
        s.fail = 1; /* the device's own error comes back */
        ck_assert_int_eq(pki_csr_build(s.key, n, test_sign, &s, &req, &cb_rc, err, sizeof(err)), PKI_ERR_CALLBACK);
        ck_assert_int_eq(cb_rc, DEVICE_DOWN);
        ck_assert_ptr_null(req);
        ck_assert_str_eq(err, "the certificate request could not be signed");
        X509_NAME_free(n);
        free_signer(&s);
    }
}
END_TEST

Suite *pki_cms_suite(void)
{
    Suite *s = suite_create("pki_cms");
    TCase *tc = tcase_create("der");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_hex);
    tcase_add_test(tc, t_der_primitives);
    tcase_add_test(tc, t_cms_variants);
    tcase_add_test(tc, t_cms_signing_cert_v2);
    tcase_add_test(tc, t_cms_unsigned_tst);
    tcase_add_test(tc, t_cms_refusals);
    tcase_add_test(tc, t_tst);
    tcase_add_test(tc, t_csr);
    suite_add_tcase(s, tc);
    return s;
}
