/* The CSC API in-process (issue 10): every call goes through csc_handle() of a service started with csc_new() on a
 * SoftHSM token and an LMDB environment provisioned through admin/ (tests/unit/fixture/csc_fixture.h). Signatures
 * are verified with OpenSSL against the credential's certificate; the audit log is read back from storage. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/rsa.h> /* RSA_PKCS1_PADDING, ... */
#include <openssl/x509.h>

#include "csc_fixture.h"
#include "csc_int.h" /* c->certs: the parsed certificates kept for the CRL checks */

#define SHA256 "2.16.840.1.101.3.4.2.1"
#define RSA_SHA256 "1.2.840.113549.1.1.11"
#define RSA_PSS "1.2.840.113549.1.1.10"
#define ECDSA_SHA256 "1.2.840.10045.4.3.2"

static cfx_t f;

static void setup(void)
{
    cfx_open(&f, NULL);
}

static void teardown(void)
{
    cfx_close(&f);
}

/* ---- helpers ------------------------------------------------------------------------------------------- */

/* SHA-256 of text, and its base64. */
static char *digest_b64(const char *text, uint8_t md[32])
{
    ck_assert_int_eq(EVP_Digest(text, strlen(text), md, NULL, EVP_sha256(), NULL), 1);
    return cfx_b64(md, 32);
}

/* credentials/authorize with the PIN (pin, NULL = the right one) and a fresh OTP for the hashes (base64, a JSON
 * array's inside): the reply. */
static void authorize(const char *token, const char *cred, unsigned num, const char *hashes_json, const char *pin,
                      cfx_reply_t *x)
{
    char otp[7];
    cfx_otp(&f, otp);
    cfx_post(&f, x, token,
             "/csc/v2/credentials/authorize {\"credentialID\":\"%s\",\"numSignatures\":%u,\"hashes\":[%s],"
             "\"hashAlgorithmOID\":\"" SHA256 "\",\"authData\":[{\"id\":\"PIN\",\"value\":\"%s\"},"
             "{\"id\":\"OTP\",\"value\":\"%s\"}]}",
             cred, num, hashes_json, pin != NULL ? pin : CFX_PIN, otp);
}

/* The SAD of a successful authorize (malloc'd). */
static char *sad_for(const char *token, const char *cred, unsigned num, const char *hashes_json)
{
    cfx_reply_t x;
    authorize(token, cred, num, hashes_json, NULL, &x);
    ck_assert_msg(x.r.status == 200, "authorize: %d %s", x.r.status, x.text);
    ck_assert_int_gt(cfx_num(&x, "expiresIn"), 0);
    char *sad = strdup(cfx_str(&x, "SAD", NULL));
    ck_assert_ptr_nonnull(sad);
    cfx_reply_free(&x);
    return sad;
}

/* signatures/signHash of one hash (base64 h) with signAlgo and extra members (",..." or ""): the reply. */
static void sign_hash(const char *token, const char *cred, const char *sad, const char *h, const char *algo,
                      const char *extra, cfx_reply_t *x)
{
    cfx_post(&f, x, token,
             "/csc/v2/signatures/signHash {\"credentialID\":\"%s\",\"SAD\":\"%s\",\"hashes\":[\"%s\"],"
             "\"hashAlgorithmOID\":\"" SHA256 "\",\"signAlgo\":\"%s\"%s}",
             cred, sad, h, algo, extra);
}

/* authorize one digest, sign it, verify the signature: the audit records follow. */
static void sign_and_verify(const char *cred, const char *algo, const char *extra, int padding)
{
    uint8_t md[32], other[32];
    char *tok = cfx_login(&f), *h = digest_b64("in-process signHash", md), hs[64];
    snprintf(hs, sizeof(hs), "\"%s\"", h);
    char *sad = sad_for(tok, cred, 1, hs);
    cfx_reply_t x;

    sign_hash(tok, cred, sad, h, algo, extra, &x);
    ck_assert_msg(x.r.status == 200, "signHash: %d %s", x.r.status, x.text);
    yajl_val sigs = cfx_arr(&x, "signatures");
    ck_assert_ptr_nonnull(sigs);
    ck_assert_uint_eq(YAJL_GET_ARRAY(sigs)->len, 1);
    const char *sig = YAJL_GET_STRING(YAJL_GET_ARRAY(sigs)->values[0]);
    ck_assert_ptr_nonnull(sig);
    ck_assert_msg(cfx_verify(&f, cred, padding, md, sig), "the signature does not verify with the certificate's key");
    /* and the check can fail: not over another digest, not with another credential's key */
    free(digest_b64("another document", other));
    ck_assert(!cfx_verify(&f, cred, padding, other, sig));
    if (padding == 0)
        ck_assert(!cfx_verify(&f, strcmp(cred, CFX_CRED_EC) == 0 ? CFX_CRED_OAUTH : CFX_CRED_EC, 0, md, sig));
    cfx_reply_free(&x);
    /* audited: the SAD issued, the signature decided, each once and for this credential */
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_OK, cred), 1);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_OK, cred), 1);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, -1, NULL), 1);
    free(sad);
    free(h);
    free(tok);
}

/* ---- info and login ------------------------------------------------------------------------------------ */

START_TEST(t_info)
{
    cfx_reply_t x;
    cfx_post(&f, &x, NULL, "/csc/v2/info {}");
    ck_assert_int_eq(x.r.status, 200);
    ck_assert_str_eq(cfx_str(&x, "specs", NULL), "2.0.0.2");
    ck_assert_str_eq(cfx_str(&x, "region", NULL), "JP");
    ck_assert_str_eq(cfx_str(&x, "oauth2", NULL), CFX_PUBLIC_URL);
    ck_assert_ptr_nonnull(strstr(x.text, "\"signatures/signHash\""));
    ck_assert_ptr_nonnull(strstr(x.text, "\"credentials/extendTransaction\""));
    ck_assert_ptr_null(strstr(x.text, "\"signatures/timestamp\"")); /* no TSA configured */
    cfx_reply_free(&x);
}
END_TEST

START_TEST(t_login)
{
    char *tok = cfx_login(&f);
    cfx_reply_t x;
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_OK, NULL), 1);
    /* the token works: the user's credentials */
    cfx_post(&f, &x, tok, "/csc/v2/credentials/list {}");
    ck_assert_int_eq(x.r.status, 200);
    cfx_reply_free(&x);
    /* a wrong password: one error for every cause, audited */
    char *basic = cfx_b64(CFX_USER ":wrong", strlen(CFX_USER ":wrong")), auth[128];
    snprintf(auth, sizeof(auth), "Basic %s", basic);
    cfx_req_t q = {.path = "/csc/v2/auth/login", .authorization = auth, .body = "{}"};
    cfx_call(&f, &q, &x);
    cfx_expect_error(&x, 400, "authentication_error", NULL);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_DENIED, NULL), 1);
    /* no token, or a made-up one: 401 with a challenge */
    cfx_post(&f, &x, NULL, "/csc/v2/credentials/list {}");
    ck_assert_ptr_nonnull(x.r.www_authenticate);
    cfx_expect_error(&x, 401, "invalid_request", NULL);
    cfx_post(&f, &x, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "/csc/v2/credentials/list {}");
    ck_assert_int_eq(x.r.status, 401);
    cfx_reply_free(&x);
    /* revoked: the token stops */
    cfx_post(&f, &x, tok, "/csc/v2/auth/revoke {\"token\":\"%s\"}", tok);
    ck_assert_int_eq(x.r.status, 204);
    cfx_reply_free(&x);
    cfx_post(&f, &x, tok, "/csc/v2/credentials/list {}");
    ck_assert_int_eq(x.r.status, 401);
    cfx_reply_free(&x);
    free(basic);
    free(tok);
}
END_TEST

/* ---- credentials --------------------------------------------------------------------------------------- */

START_TEST(t_credentials)
{
    char *tok = cfx_login(&f);
    cfx_reply_t x;
    cfx_post(&f, &x, tok, "/csc/v2/credentials/list {\"credentialInfo\":true}");
    ck_assert_int_eq(x.r.status, 200);
    yajl_val ids = cfx_arr(&x, "credentialIDs");
    ck_assert_ptr_nonnull(ids);
    ck_assert_uint_eq(YAJL_GET_ARRAY(ids)->len, 3);
    ck_assert_ptr_nonnull(strstr(x.text, "\"" CFX_CRED_RSA "\""));
    ck_assert_ptr_nonnull(strstr(x.text, "\"" CFX_CRED_EC "\""));
    ck_assert_ptr_nonnull(strstr(x.text, "\"" CFX_CRED_OAUTH "\""));
    cfx_reply_free(&x);

    cfx_post(&f, &x, tok, "/csc/v2/credentials/info {\"credentialID\":\"" CFX_CRED_RSA "\",\"certificates\":\"chain\"}");
    ck_assert_int_eq(x.r.status, 200);
    ck_assert_str_eq(cfx_str(&x, "key", "status"), "enabled");
    ck_assert_str_eq(cfx_str(&x, "cert", "status"), "valid");
    ck_assert_str_eq(cfx_str(&x, "auth", "mode"), "explicit");
    ck_assert_str_eq(cfx_str(&x, "SCAL", NULL), "2");
    ck_assert_int_eq(cfx_num(&x, "multisign"), 4);
    /* the certificate shown is the one issued at provisioning, then the CA */
    const char *path[] = {"cert", "certificates", NULL};
    yajl_val certs = yajl_tree_get(x.json, path, yajl_t_array);
    ck_assert_ptr_nonnull(certs);
    ck_assert_uint_eq(YAJL_GET_ARRAY(certs)->len, 2);
    size_t len = 0;
    uint8_t *der = cfx_unb64(YAJL_GET_STRING(YAJL_GET_ARRAY(certs)->values[0]), &len);
    const unsigned char *p = der;
    X509 *shown = d2i_X509(NULL, &p, (long)len), *stored = cfx_cred_cert(&f, CFX_CRED_RSA);
    ck_assert_ptr_nonnull(shown);
    ck_assert_int_eq(X509_cmp(shown, stored), 0);
    ck_assert_int_eq(X509_verify(shown, X509_get0_pubkey(cfx_ca_cert())), 1);
    EVP_PKEY *pub = X509_get0_pubkey(shown);
    ck_assert_int_eq(EVP_PKEY_get_base_id(pub), EVP_PKEY_RSA);
    ck_assert_int_eq(EVP_PKEY_get_bits(pub), 2048);
    X509_free(shown);
    X509_free(stored);
    free(der);
    cfx_reply_free(&x);

    cfx_post(&f, &x, tok, "/csc/v2/credentials/info {\"credentialID\":\"" CFX_CRED_OAUTH "\"}");
    ck_assert_int_eq(x.r.status, 200);
    ck_assert_str_eq(cfx_str(&x, "auth", "mode"), "oauth2code");
    cfx_reply_free(&x);
    cfx_post(&f, &x, tok, "/csc/v2/credentials/info {\"credentialID\":\"nobody's\"}");
    cfx_expect_error(&x, 400, "invalid_request", "Invalid parameter credentialID");
    free(tok);
}
END_TEST

/* ---- authorize and sign -------------------------------------------------------------------------------- */

START_TEST(t_sign_rsa_pkcs1)
{
    sign_and_verify(CFX_CRED_RSA, RSA_SHA256, "", RSA_PKCS1_PADDING);
}
END_TEST

START_TEST(t_sign_rsa_pss)
{
    /* RSASSA-PSS-params: SHA-256, MGF1 with SHA-256, salt 32 (RFC 4055 sec. 3.1), as DER */
    static const uint8_t pss[] = {0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                                  0x04, 0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48,
                                  0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                  0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20};
    char *b = cfx_b64(pss, sizeof(pss)), extra[128];
    snprintf(extra, sizeof(extra), ",\"signAlgoParams\":\"%s\"", b);
    sign_and_verify(CFX_CRED_RSA, RSA_PSS, extra, RSA_PKCS1_PSS_PADDING);
    free(b);
}
END_TEST

START_TEST(t_sign_ecdsa)
{
    sign_and_verify(CFX_CRED_EC, ECDSA_SHA256, "", 0);
}
END_TEST

START_TEST(t_crl_cert_parsed_once)
{
    /* With crl_dir the front end checks each signature's certificate against the CRLs (J9) from the certificate it
     * parsed once: parsing decodes the public key, which costs more than a P-256 signature. */
    char dir[CFX_PATH_MAX];
    csc_config_t cfg;
    uint8_t md[2][32];
    cfx_reply_t x;
    uint64_t hits, misses;
    cfx_close(&f);
    ck_assert_int_eq(cfx_tmpdir(NULL, "csc-crl-", dir, sizeof(dir)), 0); /* no CRL of the issuer: good */
    cfx_config(&cfg);
    cfg.crl_dir = dir;
    cfg.trust_anchors = cfx_ca_file(0);
    cfx_open(&f, &cfg);
    char *tok = cfx_login(&f), *h0 = digest_b64("parsed once 0", md[0]), *h1 = digest_b64("parsed once 1", md[1]);
    char hs[128];
    snprintf(hs, sizeof(hs), "\"%s\",\"%s\"", h0, h1);
    char *sad = sad_for(tok, CFX_CRED_EC, 2, hs);
    pki_x509_cache_stats(f.csc->certs, &hits, &misses);
    uint64_t misses0 = misses, hits0 = hits;
    for (int i = 0; i < 2; i++) {
        sign_hash(tok, CFX_CRED_EC, sad, i == 0 ? h0 : h1, ECDSA_SHA256, "", &x);
        ck_assert_msg(x.r.status == 200, "signHash: %d %s", x.r.status, x.text);
        cfx_reply_free(&x);
    }
    pki_x509_cache_stats(f.csc->certs, &hits, &misses);
    ck_assert_uint_le(misses - misses0, 1); /* parsed at most once (authorize may have parsed it already) */
    ck_assert_uint_ge(hits - hits0, 1);
    ck_assert_uint_eq(misses + hits - misses0 - hits0, 2); /* one check per signHash */
    free(sad);
    free(h0);
    free(h1);
    free(tok);
    ck_assert_int_eq(cfx_rmtree(dir), 0);
}
END_TEST

/* Set the credential's status in storage, as csc-admin credential disable/enable does. */
static int set_status_fn(stor_txn_t *t, void *arg)
{
    stor_cred_t c;
    int rc = stor_txn_cred_get(t, CFX_CRED_EC, &c);
    if (rc == STOR_OK) {
        c.status = *(uint32_t *)arg;
        rc = stor_txn_cred_put(t, &c, 0);
    }
    stor_wipe(&c, sizeof(c));
    return rc;
}

static void set_cred_status(uint32_t status)
{
    ck_assert_int_eq(stor_write(f.stor, set_status_fn, &status), STOR_OK);
}

static uint64_t rcache(unsigned result)
{
    csc_stats_t st;
    csc_stats_get(f.csc, &st);
    return st.read_cache[result];
}

/* Two replies alike: status and body. */
static void same_reply(cfx_reply_t *a, cfx_reply_t *b)
{
    ck_assert_int_eq(a->r.status, b->r.status);
    ck_assert_str_eq(a->text, b->text);
}

START_TEST(t_read_cache)
{
    /* read_cache_ms: signHash's token and credential rows read once answer the front end's checks; csc-sam still
     * reads and decides each request; when it refuses one judged on kept rows, the client gets what it gets without
     * the cache (the request after it, on rows read anew, says the same), and never a signature. */
    csc_config_t cfg;
    uint8_t md[32];
    cfx_reply_t x, y;
    cfx_close(&f);
    cfx_config(&cfg);
    cfg.read_cache_ms = 60000;
    cfx_open(&f, &cfg);
    char *tok = cfx_login(&f), *h = digest_b64("read cache", md), hs[64];
    snprintf(hs, sizeof(hs), "\"%s\"", h);
    char *sad = sad_for(tok, CFX_CRED_EC, 4, hs);

    sign_hash(tok, CFX_CRED_EC, sad, h, ECDSA_SHA256, "", &x);
    ck_assert_msg(x.r.status == 200, "signHash: %d %s", x.r.status, x.text);
    cfx_reply_free(&x);
    ck_assert_uint_eq(rcache(CSC_RCACHE_MISS), 1);
    ck_assert_uint_eq(rcache(CSC_RCACHE_HIT), 0);
    sign_hash(tok, CFX_CRED_EC, sad, h, ECDSA_SHA256, "", &x);
    ck_assert_msg(x.r.status == 200, "signHash: %d %s", x.r.status, x.text);
    cfx_reply_free(&x);
    ck_assert_uint_eq(rcache(CSC_RCACHE_HIT), 1);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_OK, CFX_CRED_EC), 2);

    /* the credential disabled after it was kept: csc-sam refuses, the front end's check on the row read now answers */
    set_cred_status(STOR_CRED_DISABLED);
    sign_hash(tok, CFX_CRED_EC, sad, h, ECDSA_SHA256, "", &x);
    ck_assert_uint_eq(rcache(CSC_RCACHE_HIT), 2);
    ck_assert_uint_eq(rcache(CSC_RCACHE_RECHECK), 1);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_DENIED, CFX_CRED_EC), 1);
    sign_hash(tok, CFX_CRED_EC, sad, h, ECDSA_SHA256, "", &y); /* the entry is gone: read, refused here */
    ck_assert_int_eq(y.r.status, 400);
    same_reply(&x, &y);
    ck_assert_uint_eq(rcache(CSC_RCACHE_HIT), 2);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_DENIED, CFX_CRED_EC), 1); /* not asked */
    cfx_reply_free(&x);
    cfx_reply_free(&y);

    /* enabled again: read and kept anew */
    set_cred_status(STOR_CRED_ENABLED);
    sign_hash(tok, CFX_CRED_EC, sad, h, ECDSA_SHA256, "", &x);
    ck_assert_msg(x.r.status == 200, "signHash: %d %s", x.r.status, x.text);
    cfx_reply_free(&x);
    ck_assert_uint_eq(rcache(CSC_RCACHE_MISS), 2);

    /* the token revoked after it was kept: 401 invalid_token, as without the cache */
    cfx_post(&f, &x, tok, "/csc/v2/auth/revoke {\"token\":\"%s\"}", tok);
    ck_assert_int_eq(x.r.status, 204);
    cfx_reply_free(&x);
    sign_hash(tok, CFX_CRED_EC, sad, h, ECDSA_SHA256, "", &x);
    ck_assert_uint_eq(rcache(CSC_RCACHE_HIT), 3);
    ck_assert_uint_eq(rcache(CSC_RCACHE_RECHECK), 2);
    sign_hash(tok, CFX_CRED_EC, sad, h, ECDSA_SHA256, "", &y);
    ck_assert_int_eq(y.r.status, 401);
    same_reply(&x, &y);
    cfx_reply_free(&x);
    cfx_reply_free(&y);
    /* three signatures of the SAD's four, each decided by csc-sam */
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_OK, CFX_CRED_EC), 3);
    free(sad);
    free(h);
    free(tok);
}
END_TEST

START_TEST(t_wrong_pin)
{
    uint8_t md[32];
    char *tok = cfx_login(&f), *h = digest_b64("wrong pin", md), hs[64];
    cfx_reply_t x;
    snprintf(hs, sizeof(hs), "\"%s\"", h);
    authorize(tok, CFX_CRED_EC, 1, hs, "13572468", &x);
    cfx_expect_error(&x, 400, "invalid_authentication_data", NULL);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_DENIED, CFX_CRED_EC), 1);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_OK, NULL), 0);
    /* the right PIN with the next code works */
    free(sad_for(tok, CFX_CRED_EC, 1, hs));
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_OK, CFX_CRED_EC), 1);
    /* the OAuth-only credential is not authorized this way, even with its PIN */
    authorize(tok, CFX_CRED_OAUTH, 1, hs, NULL, &x);
    ck_assert_int_eq(x.r.status, 400);
    cfx_reply_free(&x);
    free(h);
    free(tok);
}
END_TEST

START_TEST(t_sad_spent)
{
    uint8_t md[32];
    char *tok = cfx_login(&f), *h = digest_b64("spent", md), hs[64];
    cfx_reply_t x;
    snprintf(hs, sizeof(hs), "\"%s\"", h);
    char *sad = sad_for(tok, CFX_CRED_EC, 1, hs);
    sign_hash(tok, CFX_CRED_EC, sad, h, ECDSA_SHA256, "", &x);
    ck_assert_int_eq(x.r.status, 200);
    cfx_reply_free(&x);
    /* the same SAD again: its one signature is spent */
    sign_hash(tok, CFX_CRED_EC, sad, h, ECDSA_SHA256, "", &x);
    cfx_expect_error(&x, 400, "invalid_request", "The SAD does not authorize that many more signatures");
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_OK, CFX_CRED_EC), 1);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_DENIED, CFX_CRED_EC), 1);
    /* a SAD of one credential is nothing to another */
    free(sad);
    sad = sad_for(tok, CFX_CRED_EC, 1, hs);
    sign_hash(tok, CFX_CRED_RSA, sad, h, RSA_SHA256, "", &x);
    cfx_expect_error(&x, 400, "invalid_request", "Invalid parameter SAD");
    free(sad);
    free(h);
    free(tok);
}
END_TEST

START_TEST(t_extend_transaction)
{
    uint8_t md1[32], md2[32];
    char *tok = cfx_login(&f), *h1 = digest_b64("first of two", md1), *h2 = digest_b64("second of two", md2);
    char hs[128];
    cfx_reply_t x;
    snprintf(hs, sizeof(hs), "\"%s\",\"%s\"", h1, h2);
    char *sad = sad_for(tok, CFX_CRED_EC, 2, hs);
    sign_hash(tok, CFX_CRED_EC, sad, h1, ECDSA_SHA256, "", &x);
    ck_assert_int_eq(x.r.status, 200);
    cfx_reply_free(&x);

    /* SCAL 2: the request names the digests to renew */
    cfx_post(&f, &x, tok, "/csc/v2/credentials/extendTransaction {\"credentialID\":\"" CFX_CRED_EC "\",\"SAD\":\"%s\"}",
             sad);
    cfx_expect_error(&x, 400, "invalid_request", "Missing (or invalid type) array parameter hashes");
    /* the one already signed is not renewed */
    cfx_post(&f, &x, tok,
             "/csc/v2/credentials/extendTransaction {\"credentialID\":\"" CFX_CRED_EC "\",\"SAD\":\"%s\","
             "\"hashes\":[\"%s\"],\"hashAlgorithmOID\":\"" SHA256 "\"}",
             sad, h1);
    cfx_expect_error(&x, 400, "invalid_request", "Hash is not authorized by the SAD.");
    cfx_post(&f, &x, tok,
             "/csc/v2/credentials/extendTransaction {\"credentialID\":\"" CFX_CRED_EC "\",\"SAD\":\"%s\","
             "\"hashes\":[\"%s\"],\"hashAlgorithmOID\":\"" SHA256 "\"}",
             sad, h2);
    ck_assert_msg(x.r.status == 200, "extendTransaction: %d %s", x.r.status, x.text);
    ck_assert_int_gt(cfx_num(&x, "expiresIn"), 0);
    char *fresh = strdup(cfx_str(&x, "SAD", NULL));
    ck_assert_str_ne(fresh, sad);
    cfx_reply_free(&x);
    /* the old SAD stopped at once; the new one binds the digest not yet signed, and only that */
    sign_hash(tok, CFX_CRED_EC, sad, h2, ECDSA_SHA256, "", &x);
    cfx_expect_error(&x, 400, "invalid_request", "Invalid parameter SAD");
    sign_hash(tok, CFX_CRED_EC, fresh, h1, ECDSA_SHA256, "", &x);
    cfx_expect_error(&x, 400, "invalid_request", "Hash is not authorized by the SAD.");
    sign_hash(tok, CFX_CRED_EC, fresh, h2, ECDSA_SHA256, "", &x);
    ck_assert_int_eq(x.r.status, 200);
    ck_assert(cfx_verify(&f, CFX_CRED_EC, 0, md2, YAJL_GET_STRING(YAJL_GET_ARRAY(cfx_arr(&x, "signatures"))->values[0])));
    cfx_reply_free(&x);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_OK, CFX_CRED_EC), 2);
    free(fresh);
    free(sad);
    free(h1);
    free(h2);
    free(tok);
}
END_TEST

START_TEST(t_sign_doc_detached_cades)
{
    static const char doc[] = "a small document\n";
    uint8_t md[32];
    char *tok = cfx_login(&f), *h = digest_b64(doc, md), hs[64], *doc_b64 = cfx_b64(doc, strlen(doc));
    cfx_reply_t x;
    /* SCAL 2: the SAD binds the digest the server computes over the whole document */
    snprintf(hs, sizeof(hs), "\"%s\"", h);
    char *sad = sad_for(tok, CFX_CRED_EC, 1, hs);
    cfx_post(&f, &x, tok,
             "/csc/v2/signatures/signDoc {\"credentialID\":\"" CFX_CRED_EC "\",\"SAD\":\"%s\",\"documents\":[{"
             "\"document\":\"%s\",\"signature_format\":\"C\",\"conformance_level\":\"Ades-B-B\","
             "\"signed_envelope_property\":\"Detached\",\"signAlgo\":\"" ECDSA_SHA256 "\"}]}",
             sad, doc_b64);
    ck_assert_msg(x.r.status == 200, "signDoc: %d %s", x.r.status, x.text);
    yajl_val objs = cfx_arr(&x, "SignatureObject");
    ck_assert_ptr_nonnull(objs);
    ck_assert_uint_eq(YAJL_GET_ARRAY(objs)->len, 1);
    size_t len = 0;
    uint8_t *der = cfx_unb64(YAJL_GET_STRING(YAJL_GET_ARRAY(objs)->values[0]), &len);
    ck_assert_ptr_nonnull(der);
    BIO *in = BIO_new_mem_buf(der, (int)len);
    CMS_ContentInfo *cms = d2i_CMS_bio(in, NULL);
    ck_assert_ptr_nonnull(cms);
    X509_STORE *store = X509_STORE_new();
    ck_assert_int_eq(X509_STORE_add_cert(store, cfx_ca_cert()), 1);
    ck_assert_int_eq(X509_STORE_set_purpose(store, X509_PURPOSE_ANY), 1);
    /* verifies over the document (and the signer's chain to the CA), and over nothing else */
    BIO *content = BIO_new_mem_buf(doc, (int)strlen(doc));
    ck_assert_int_eq(CMS_verify(cms, NULL, store, content, NULL, CMS_BINARY), 1);
    BIO_free(content);
    content = BIO_new_mem_buf("another document\n", -1);
    ck_assert_int_ne(CMS_verify(cms, NULL, store, content, NULL, CMS_BINARY), 1);
    BIO_free(content);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_OK, CFX_CRED_EC), 1);
    X509_STORE_free(store);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    free(der);
    cfx_reply_free(&x);
    free(sad);
    free(doc_b64);
    free(h);
    free(tok);
}
END_TEST

/* ---- bad input ----------------------------------------------------------------------------------------- */

START_TEST(t_bad_input)
{
    char *tok = cfx_login(&f);
    cfx_reply_t x;
    cfx_post(&f, &x, tok, "/csc/v2/credentials/list {\"credentialInfo\":tru");
    cfx_expect_error(&x, 400, "invalid_request", NULL);
    cfx_post(&f, &x, tok, "/csc/v2/credentials/list [1,2]");
    cfx_expect_error(&x, 400, "invalid_request", NULL);
    cfx_post(&f, &x, tok, "/csc/v2/credentials/info {\"credentialID\":7}");
    cfx_expect_error(&x, 400, "invalid_request", NULL);
    /* deeper than max_depth */
    cfx_post(&f, &x, tok, "/csc/v2/credentials/list {\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}");
    cfx_expect_error(&x, 400, "invalid_request", NULL);
    /* larger than max_body: refused before it is parsed */
    size_t big = CFX_MAX_BODY + 1;
    char *body = malloc(big + 1);
    ck_assert_ptr_nonnull(body);
    memset(body, ' ', big);
    body[0] = '{', body[big - 1] = '}', body[big] = '\0';
    cfx_req_t q = {.path = "/csc/v2/info", .body = body, .content_type = "application/json"};
    cfx_call(&f, &q, &x);
    cfx_expect_error(&x, 413, "invalid_request", "Request body too large");
    body[big - 2] = '}', body[big - 1] = '\0'; /* one byte less: max_body exactly is accepted */
    cfx_call(&f, &q, &x);
    ck_assert_int_eq(x.r.status, 200);
    cfx_reply_free(&x);
    free(body);
    /* unknown method, a method not offered, a wrong HTTP method */
    cfx_post(&f, &x, tok, "/csc/v2/credentials/steal {}");
    cfx_expect_error(&x, 404, "invalid_request", NULL);
    cfx_post(&f, &x, tok, "/csc/v2/credentials/getChallenge {}");
    cfx_expect_error(&x, 501, "not_implemented", NULL);
    cfx_req_t get = {.method = "GET", .path = "/csc/v2/info"};
    cfx_call(&f, &get, &x);
    cfx_expect_error(&x, 405, "invalid_request", NULL);
    /* signHash with parameters missing or wrong: errors, nothing signed, nothing audited as signed */
    cfx_post(&f, &x, tok, "/csc/v2/signatures/signHash {\"credentialID\":\"" CFX_CRED_EC "\",\"SAD\":\"x\","
                          "\"hashes\":[\"!!\"],\"signAlgo\":\"" ECDSA_SHA256 "\"}");
    cfx_expect_error(&x, 400, "invalid_request", NULL);
    cfx_post(&f, &x, tok, "/csc/v2/signatures/signHash {\"credentialID\":\"" CFX_CRED_EC "\",\"hashes\":[]}");
    cfx_expect_error(&x, 400, "invalid_request", NULL);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_OK, NULL), 0);
    free(tok);
}
END_TEST

TCase *sam_errors_tcase(void); /* test_sam_errors.c */

int main(void)
{
    Suite *s = suite_create("csc-api-service");
    TCase *tc = tcase_create("service");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_info);
    tcase_add_test(tc, t_login);
    tcase_add_test(tc, t_credentials);
    tcase_add_test(tc, t_sign_rsa_pkcs1);
    tcase_add_test(tc, t_sign_rsa_pss);
    tcase_add_test(tc, t_sign_ecdsa);
    tcase_add_test(tc, t_crl_cert_parsed_once);
    tcase_add_test(tc, t_read_cache);
    tcase_add_test(tc, t_wrong_pin);
    tcase_add_test(tc, t_sad_spent);
    tcase_add_test(tc, t_extend_transaction);
    tcase_add_test(tc, t_sign_doc_detached_cades);
    tcase_add_test(tc, t_bad_input);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, sam_errors_tcase());
    return cfx_main(s);
}
