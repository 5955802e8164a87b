/*
 * test_sam_sign.c - a compromised front end against csc-sam's AUTHORIZE, EXTEND, SIGN and SIGN_RESERVED (issue 11;
 * ctest unit_sam_sign). Each test opens the fixture's provisioned world (tests/unit/fixture: user alice, credentials
 * cfx-rsa and cfx-ec with "PIN AND OTP", an in-process SAM server on the test's copy) and speaks the protocol
 * directly (sam_build_* + sam_client_call), never through csc-api: forged, expired, spent and other users' SADs and
 * tokens, digests not bound to the SAD, another user's credential, a disabled credential, a revoked certificate,
 * wrong PINs up to the lock, malformed and oversized messages, a flood. Every one is refused with its code and
 * audited, the SAM keeps serving, and a valid request signs afterwards.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "adm.h"
#include "csc_fixture.h"
#include "sam_call.h"
#include "oauth_int.h" /* oauth_int_set_skew (the SAD's expiry) */

#define SHA256 "2.16.840.1.101.3.4.2.1"
#define ECDSA_SHA256 "1.2.840.10045.4.3.2"
#define BOB "bob"
#define BOB_PASSWORD "bob-password-1"
#define BOB_PIN "13572468"
#define BOB_CRED "bob-ec"

static cfx_t f;
static char *tok; /* alice's access token */

static void setup(void)
{
    cfx_open(&f, NULL);
    tok = cfx_login(&f);
}

static void teardown(void)
{
    free(tok);
    cfx_close(&f);
}

/* ---- the protocol, by hand ---- */

static void digest_of(const char *text, uint8_t md[32])
{
    ck_assert(EVP_Digest(text, strlen(text), md, NULL, EVP_sha256(), NULL));
}

/* AUTHORIZE cred for n signatures bound to the digests; pin, otp NULL = absent. The SAD (malloc'd), or NULL with
 * *code the refusal. */
static char *authorize(const char *token, const char *cred, uint32_t n, const uint8_t (*d)[32], size_t nd,
                       const char *pin, const char *otp, uint32_t *code)
{
    call_t c;
    char sad[SAM_TOKEN_MAX + 1];
    call_begin(f.sam, &c, SAM_OP_AUTHORIZE);
    sam_put_str(&c.b, SAM_T_TOKEN, token);
    sam_put_str(&c.b, SAM_T_CRED, cred);
    sam_put_u32(&c.b, SAM_T_NUM_SIGNATURES, n);
    if (nd > 0)
        sam_put_str(&c.b, SAM_T_HASH_ALG, SHA256);
    for (size_t i = 0; i < nd; i++)
        sam_put_bytes(&c.b, SAM_T_DIGEST, d[i], 32);
    if (pin != NULL)
        sam_put_str(&c.b, SAM_T_PIN, pin);
    if (otp != NULL)
        sam_put_str(&c.b, SAM_T_OTP, otp);
    sam_put_str(&c.b, SAM_T_CLIENT, "test");
    char *out = NULL;
    if (call_run(f.sam, &c, code) == (SAM_OP_AUTHORIZE | SAM_OP_REPLY)) {
        ck_assert_int_eq(sam_get_text(&c.m, SAM_T_SAD, sad, sizeof(sad)), SAM_OK);
        out = strdup(sad);
    }
    call_end(&c);
    return out;
}

/* alice's SAD for cfx-ec over the digests (PIN and a fresh TOTP code) */
static char *alice_sad(uint32_t n, const uint8_t (*d)[32], size_t nd)
{
    char otp[7];
    uint32_t code;
    cfx_otp(&f, otp);
    char *sad = authorize(tok, CFX_CRED_EC, n, d, nd, CFX_PIN, otp, &code);
    ck_assert_msg(sad != NULL, "authorize: %s", sam_refusal_name(code));
    return sad;
}

/* The USER hint sign_build sends (csc-server's: the user it found for the token); NULL: none. */
static const char *user_hint;

/* A SIGN request in c: ttl > 0 makes it ASYNC (a reservation kept ttl seconds). */
static void sign_build(call_t *c, const char *token, const char *cred, const char *sad, const uint8_t (*d)[32],
                       size_t nd, const char *sign_alg, uint32_t ttl)
{
    call_begin(f.sam, c, SAM_OP_SIGN);
    sam_put_str(&c->b, SAM_T_TOKEN, token);
    sam_put_str(&c->b, SAM_T_CRED, cred);
    if (user_hint != NULL)
        sam_put_str(&c->b, SAM_T_USER, user_hint);
    sam_put_str(&c->b, SAM_T_HASH_ALG, SHA256);
    for (size_t i = 0; i < nd; i++)
        sam_put_bytes(&c->b, SAM_T_DIGEST, d[i], 32);
    sam_put_str(&c->b, SAM_T_CLIENT, "test");
    if (sad != NULL)
        sam_put_str(&c->b, SAM_T_SAD, sad);
    if (ttl > 0)
        sam_put_u32(&c->b, SAM_T_EXPIRES_IN, ttl);
    sam_put_str(&c->b, SAM_T_SIGN_ALG, sign_alg);
    if (ttl > 0)
        sam_put_u32(&c->b, SAM_T_ASYNC, 1);
}

/* SIGN: the reply op; *code the refusal; *about its ABOUT tag. */
static unsigned sign(const char *token, const char *cred, const char *sad, const uint8_t (*d)[32], size_t nd,
                     uint32_t *code, uint32_t *about)
{
    call_t c;
    sign_build(&c, token, cred, sad, d, nd, ECDSA_SHA256, 0);
    unsigned op = call_run(f.sam, &c, code);
    *about = 0;
    if (op == SAM_OP_REFUSED)
        (void)sam_get_u32(&c.m, SAM_T_ABOUT, about);
    else
        ck_assert_uint_eq(sam_msg_count(&c.m, SAM_T_SIGNATURE), nd);
    call_end(&c);
    return op;
}

/* code and about are read after op was computed (the call fills them). */
static void expect_refused(unsigned op, const uint32_t *code, uint32_t want, const uint32_t *about, uint32_t want_about)
{
    ck_assert_uint_eq(op, SAM_OP_REFUSED);
    ck_assert_msg(*code == want, "refused %s, expected %s", sam_refusal_name(*code), sam_refusal_name(want));
    ck_assert_uint_eq(*about, want_about);
}

static unsigned denied_signs(void)
{
    return cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_DENIED, NULL);
}

/* The SAM still answers, and a valid request still signs. */
static void still_signs(void)
{
    uint8_t d[1][32];
    uint32_t code, about;
    digest_of("still signs", d[0]);
    char *sad = alice_sad(1, d, 1);
    ck_assert_uint_eq(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    free(sad);
}

/* ---- a second user with a credential of his own (PIN only: the test environment allows it) ---- */

static char *make_bob(void)
{
    char uri[512], totp[128], id[STOR_NAME_MAX + 1], err[512];
    adm_ca_t ca = {.cert_file = cfx_ca_file(0), .key_file = cfx_ca_file(1), .days = 30};
    adm_t a = {.stor = f.stor, .hsm = f.hsm, .ca = &ca, .operator_name = "test", .scrypt_log2n = 10, .issuer = "CFX",
               .trust_anchors = cfx_ca_file(0)};
    ck_assert_msg(adm_user_add_ev(&a, BOB, BOB_PASSWORD, "test-evidence", uri, sizeof(uri), totp, sizeof(totp), err,
                                  sizeof(err)) == ADM_OK, "%s", err);
    adm_cred_spec_t s = {.id = BOB_CRED, .owner = BOB, .key = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1},
                         .auth_expr = "PIN", .pin = BOB_PIN, .scal = 2, .multisign = 4, .description = "bob"};
    ck_assert_msg(adm_cred_create(&a, &s, id, sizeof(id), err, sizeof(err)) == ADM_OK, "%s", err);
    oauth_tokens_t t;
    ck_assert_int_eq(oauth_login(f.oauth, BOB, BOB_PASSWORD, strlen(BOB_PASSWORD), 0, "test", &t), OAUTH_OK);
    char *out = strdup(t.access);
    OPENSSL_cleanse(&t, sizeof(t));
    return out;
}

/* ---- SIGN ---- */

START_TEST(t_sign_forged_expired_spent)
{
    uint8_t d[2][32];
    uint32_t code, about;
    digest_of("one", d[0]);
    digest_of("two", d[1]);
    unsigned denied = denied_signs();

    /* forged: a SAD of the right shape that was never issued */
    expect_refused(sign(tok, CFX_CRED_EC, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", d, 1, &code, &about), &code,
                   SAM_REFUSE_NOT_FOUND, &about, SAM_T_SAD);
    /* spent: one signature, then none */
    char *sad = alice_sad(1, d, 1);
    ck_assert_uint_eq(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    expect_refused(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), &code, SAM_REFUSE_EXHAUSTED, &about, SAM_T_SAD);
    free(sad);
    /* expired: the SAM's clock past the SAD's lifetime (and the access token's: a fresh one) */
    sad = alice_sad(1, d, 1);
    oauth_int_set_skew(f.oauth, f.skew + 3600);
    expect_refused(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), &code, SAM_REFUSE_EXPIRED, &about, SAM_T_TOKEN);
    char *tok2 = cfx_login(&f);
    expect_refused(sign(tok2, CFX_CRED_EC, sad, d, 1, &code, &about), &code, SAM_REFUSE_EXPIRED, &about, SAM_T_SAD);
    free(tok2);
    free(sad);
    oauth_int_set_skew(f.oauth, f.skew);
    /* a forged access token: nobody */
    expect_refused(sign("forged-token", CFX_CRED_EC, "x", d, 1, &code, &about), &code, SAM_REFUSE_NOT_FOUND, &about,
                   SAM_T_TOKEN);
    ck_assert_uint_ge(denied_signs(), denied + 5); /* every refusal is in the audit log */
    still_signs();
}
END_TEST

START_TEST(t_sign_not_bound)
{
    uint8_t bound[1][32], other[1][32];
    uint32_t code, about;
    digest_of("the approved document", bound[0]);
    digest_of("another document", other[0]);
    char *sad = alice_sad(2, bound, 1);
    unsigned denied = denied_signs();
    expect_refused(sign(tok, CFX_CRED_EC, sad, other, 1, &code, &about), &code, SAM_REFUSE_NOT_BOUND, &about, SAM_T_SAD);
    /* the same SAD on the other credential of the same user */
    expect_refused(sign(tok, CFX_CRED_RSA, sad, bound, 1, &code, &about), &code, SAM_REFUSE_BAD_MESSAGE, &about,
                   SAM_T_SIGN_ALG); /* ECDSA for an RSA key: refused before anything is spent */
    ck_assert_uint_eq(denied_signs(), denied + 2);
    ck_assert_uint_eq(sign(tok, CFX_CRED_EC, sad, bound, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    free(sad);
}
END_TEST

START_TEST(t_sign_other_user)
{
    uint8_t d[1][32];
    uint32_t code, about;
    digest_of("bob's", d[0]);
    char *bob = make_bob();
    char *bob_sad = authorize(bob, BOB_CRED, 2, d, 1, BOB_PIN, NULL, &code);
    ck_assert_msg(bob_sad != NULL, "%s", sam_refusal_name(code));
    char *sad = alice_sad(2, d, 1);
    unsigned denied = denied_signs();
    /* alice's token on bob's credential, with bob's SAD or her own */
    expect_refused(sign(tok, BOB_CRED, bob_sad, d, 1, &code, &about), &code, SAM_REFUSE_NOT_FOUND, &about, SAM_T_CRED);
    expect_refused(sign(tok, BOB_CRED, sad, d, 1, &code, &about), &code, SAM_REFUSE_NOT_FOUND, &about, SAM_T_CRED);
    /* bob's SAD on alice's credential with alice's token; alice's SAD with bob's token on bob's credential */
    expect_refused(sign(tok, CFX_CRED_EC, bob_sad, d, 1, &code, &about), &code, SAM_REFUSE_UNAUTHORIZED, &about,
                   SAM_T_SAD);
    expect_refused(sign(bob, BOB_CRED, sad, d, 1, &code, &about), &code, SAM_REFUSE_UNAUTHORIZED, &about, SAM_T_SAD);
    /* AUTHORIZE of another user's credential */
    char otp[7];
    cfx_otp(&f, otp);
    ck_assert_ptr_null(authorize(bob, CFX_CRED_EC, 1, d, 1, CFX_PIN, otp, &code));
    ck_assert_uint_eq(code, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(denied_signs(), denied + 4);
    /* each SAD still signs for its own user */
    ck_assert_uint_eq(sign(bob, BOB_CRED, bob_sad, d, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    ck_assert_uint_eq(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    free(sad);
    free(bob_sad);
    free(bob);
}
END_TEST

/* USER only says which user row csc-sam reads ahead: the token's own user decides, whatever the hint names (the
 * credential's owner, another user, nobody), and the refusals are those without a hint. */
START_TEST(t_sign_user_hint)
{
    uint8_t d[1][32];
    uint32_t code, about;
    digest_of("hinted", d[0]);
    char *bob = make_bob();
    char *bob_sad = authorize(bob, BOB_CRED, 1, d, 1, BOB_PIN, NULL, &code);
    ck_assert_msg(bob_sad != NULL, "%s", sam_refusal_name(code));
    char *sad = alice_sad(3, d, 1);
    unsigned denied = denied_signs();
    user_hint = BOB; /* alice's token on bob's credential, the hint naming its owner */
    expect_refused(sign(tok, BOB_CRED, bob_sad, d, 1, &code, &about), &code, SAM_REFUSE_NOT_FOUND, &about, SAM_T_CRED);
    ck_assert_uint_eq(denied_signs(), denied + 1);
    user_hint = CFX_USER; /* bob's token on alice's credential, the hint naming alice */
    expect_refused(sign(bob, CFX_CRED_EC, sad, d, 1, &code, &about), &code, SAM_REFUSE_NOT_FOUND, &about, SAM_T_CRED);
    ck_assert_uint_eq(denied_signs(), denied + 2);
    user_hint = "forged-token"; /* a bearer that is no token: refused about the token, as without a hint */
    expect_refused(sign("forged-token", CFX_CRED_EC, sad, d, 1, &code, &about), &code, SAM_REFUSE_NOT_FOUND, &about,
                   SAM_T_TOKEN);
    user_hint = BOB; /* a wrong hint: alice's own request still signs */
    ck_assert_uint_eq(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    user_hint = "nobody-of-that-name";
    ck_assert_uint_eq(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    user_hint = CFX_USER; /* the right one */
    ck_assert_uint_eq(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    ck_assert_uint_eq(sign(bob, BOB_CRED, bob_sad, d, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    user_hint = NULL;
    ck_assert_uint_eq(denied_signs(), denied + 3);
    free(sad);
    free(bob_sad);
    free(bob);
}
END_TEST

static int disable(stor_cred_t *c, void *arg)
{
    (void)arg;
    c->status = STOR_CRED_DISABLED;
    return 0;
}

static int disable_fn(stor_txn_t *t, void *arg)
{
    stor_audit_t a = {.event = STOR_EV_ADMIN, .result = STOR_RES_OK};
    snprintf(a.detail, sizeof(a.detail), "test: disable");
    return stor_txn_cred_change(t, arg, disable, NULL, &a);
}

START_TEST(t_sign_disabled)
{
    uint8_t d[1][32];
    uint32_t code, about;
    digest_of("disabled", d[0]);
    char *sad = alice_sad(1, d, 1);
    ck_assert_int_eq(stor_write(f.stor, disable_fn, (void *)CFX_CRED_EC), STOR_OK);
    unsigned denied = denied_signs();
    expect_refused(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), &code, SAM_REFUSE_DISABLED, &about, SAM_T_CRED);
    ck_assert_uint_eq(denied_signs(), denied + 1);
    char otp[7];
    cfx_otp(&f, otp);
    ck_assert_ptr_null(authorize(tok, CFX_CRED_EC, 1, d, 1, CFX_PIN, otp, &code));
    ck_assert_uint_eq(code, SAM_REFUSE_DISABLED);
    free(sad);
}
END_TEST

/* A CRL of the test CA that revokes the certificate of cred, in dir/revoked.crl. */
static void write_crl(const char *dir, const char *cred)
{
    char path[CFX_PATH_MAX + 32];
    X509 *ee = cfx_cred_cert(&f, cred);
    FILE *kf = fopen(cfx_ca_file(1), "r");
    ck_assert_ptr_nonnull(kf);
    EVP_PKEY *key = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
    fclose(kf);
    ck_assert_ptr_nonnull(key);
    X509_CRL *crl = X509_CRL_new();
    X509_REVOKED *rv = X509_REVOKED_new();
    ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL) - 60), *next = ASN1_TIME_set(NULL, time(NULL) + 86400);
    ck_assert(X509_CRL_set_version(crl, 1) && X509_CRL_set_issuer_name(crl, X509_get_subject_name(cfx_ca_cert())) &&
              X509_CRL_set1_lastUpdate(crl, now) && X509_CRL_set1_nextUpdate(crl, next) &&
              X509_REVOKED_set_serialNumber(rv, X509_get_serialNumber(ee)) && X509_REVOKED_set_revocationDate(rv, now) &&
              X509_CRL_add0_revoked(crl, rv) && X509_CRL_sort(crl) && X509_CRL_sign(crl, key, EVP_sha256()));
    snprintf(path, sizeof(path), "%s/revoked.crl", dir);
    FILE *out = fopen(path, "w");
    ck_assert_ptr_nonnull(out);
    ck_assert(PEM_write_X509_CRL(out, crl));
    fclose(out);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    X509_CRL_free(crl);
    EVP_PKEY_free(key);
    X509_free(ee);
}

/* The detail of the last denied SIGN record of cred (into buf). */
typedef struct last_denied {
    const char *cred;
    char *buf;
    size_t sz;
} last_denied_t;

static int last_denied_fn(const stor_audit_t *rec, void *arg)
{
    last_denied_t *q = arg;
    if (rec->event == STOR_EV_SIGN && rec->result == STOR_RES_DENIED && strcmp(rec->cred, q->cred) == 0)
        snprintf(q->buf, q->sz, "%s", rec->detail);
    return 0;
}

static void last_denied_detail(const char *cred, char *buf, size_t sz)
{
    last_denied_t q = {.cred = cred, .buf = buf, .sz = sz};
    buf[0] = '\0';
    ck_assert_int_eq(stor_audit_each(f.stor, 1, last_denied_fn, &q), STOR_OK);
}

/* The detail of the last record of event and result for cred (into buf). */
typedef struct last_rec {
    unsigned event, result;
    const char *cred;
    char *buf;
    size_t sz;
} last_rec_t;

static int last_rec_fn(const stor_audit_t *rec, void *arg)
{
    last_rec_t *q = arg;
    if (rec->event == q->event && rec->result == q->result && strcmp(rec->cred, q->cred) == 0)
        snprintf(q->buf, q->sz, "%s", rec->detail);
    return 0;
}

static void last_detail(unsigned event, unsigned result, const char *cred, char *buf, size_t sz)
{
    last_rec_t q = {.event = event, .result = result, .cred = cred, .buf = buf, .sz = sz};
    buf[0] = '\0';
    ck_assert_int_eq(stor_audit_each(f.stor, 1, last_rec_fn, &q), STOR_OK);
}

/* REQUEST_ID (tag 90): AUTHORIZE and SIGN write it into their audit records (a long description is cut, the id is
 * whole); an id with other characters than [A-Za-z0-9._-] is refused, nothing signed. */
START_TEST(t_request_id)
{
    uint8_t d[1][32];
    uint32_t code, about;
    char otp[7], detail[256], id[SAM_REQUEST_ID_MAX + 1], words[SAM_DETAIL_MAX + 1];
    call_t c;
    digest_of("request id", d[0]);
    cfx_otp(&f, otp);
    call_begin(f.sam, &c, SAM_OP_AUTHORIZE);
    sam_put_str(&c.b, SAM_T_TOKEN, tok);
    sam_put_str(&c.b, SAM_T_CRED, CFX_CRED_EC);
    sam_put_u32(&c.b, SAM_T_NUM_SIGNATURES, 1);
    sam_put_str(&c.b, SAM_T_HASH_ALG, SHA256);
    sam_put_bytes(&c.b, SAM_T_DIGEST, d[0], 32);
    sam_put_str(&c.b, SAM_T_PIN, CFX_PIN);
    sam_put_str(&c.b, SAM_T_OTP, otp);
    sam_put_str(&c.b, SAM_T_CLIENT, "test");
    sam_put_str(&c.b, SAM_T_REQUEST_ID, "rq-1.A_b");
    ck_assert_uint_eq(call_run(f.sam, &c, &code), SAM_OP_AUTHORIZE | SAM_OP_REPLY);
    char sad[SAM_TOKEN_MAX + 1];
    ck_assert_int_eq(sam_get_text(&c.m, SAM_T_SAD, sad, sizeof(sad)), SAM_OK);
    call_end(&c);
    last_detail(STOR_EV_AUTHORIZE, STOR_RES_OK, CFX_CRED_EC, detail, sizeof(detail));
    ck_assert_msg(strstr(detail, " request_id=rq-1.A_b") != NULL, "%s", detail);

    memset(id, 'z', SAM_REQUEST_ID_MAX);
    id[SAM_REQUEST_ID_MAX] = '\0';
    memset(words, 'w', SAM_DETAIL_MAX);
    words[SAM_DETAIL_MAX] = '\0';
    for (int bad = 1; bad >= 0; bad--) {
        call_begin(f.sam, &c, SAM_OP_SIGN);
        sam_put_str(&c.b, SAM_T_TOKEN, tok);
        sam_put_str(&c.b, SAM_T_CRED, CFX_CRED_EC);
        sam_put_str(&c.b, SAM_T_HASH_ALG, SHA256);
        sam_put_bytes(&c.b, SAM_T_DIGEST, d[0], 32);
        sam_put_str(&c.b, SAM_T_CLIENT, "test");
        sam_put_str(&c.b, SAM_T_DESCRIPTION, words);
        sam_put_str(&c.b, SAM_T_SAD, sad);
        sam_put_str(&c.b, SAM_T_SIGN_ALG, ECDSA_SHA256);
        sam_put_str(&c.b, SAM_T_REQUEST_ID, bad ? "a b=c" : id);
        unsigned op = call_run(f.sam, &c, &code);
        about = 0;
        (void)sam_get_u32(&c.m, SAM_T_ABOUT, &about);
        if (bad)
            expect_refused(op, &code, SAM_REFUSE_BAD_MESSAGE, &about, SAM_T_REQUEST_ID); /* the SAD is not spent */
        else
            ck_assert_uint_eq(op, SAM_OP_SIGN | SAM_OP_REPLY);
        call_end(&c);
    }
    last_detail(STOR_EV_SIGN, STOR_RES_OK, CFX_CRED_EC, detail, sizeof(detail));
    ck_assert_uint_eq(strlen(detail), SAM_DETAIL_MAX);
    ck_assert_int_eq(strncmp(detail, "wwww", 4), 0);
    char tail[SAM_DETAIL_MAX + 1];
    snprintf(tail, sizeof(tail), " request_id=%s", id);
    ck_assert_str_eq(detail + SAM_DETAIL_MAX - strlen(tail), tail);
    call_begin(f.sam, &c, SAM_OP_AUTHORIZE);
    sam_put_str(&c.b, SAM_T_TOKEN, tok);
    sam_put_str(&c.b, SAM_T_CRED, CFX_CRED_EC);
    sam_put_u32(&c.b, SAM_T_NUM_SIGNATURES, 1);
    sam_put_str(&c.b, SAM_T_CLIENT, "test");
    sam_put_str(&c.b, SAM_T_REQUEST_ID, "x=y");
    unsigned op = call_run(f.sam, &c, &code);
    about = 0;
    (void)sam_get_u32(&c.m, SAM_T_ABOUT, &about);
    expect_refused(op, &code, SAM_REFUSE_BAD_MESSAGE, &about, SAM_T_REQUEST_ID);
    call_end(&c);
    OPENSSL_cleanse(sad, sizeof(sad));
}
END_TEST

START_TEST(t_sign_revoked)
{
    /* A second SAM on the same world whose own CRL store (crl_dir, empty when it opened) is told by the front end
     * (CRL_RELOAD) that cfx-ec's certificate is not good: it looks at the folder, where a CRL revokes cfx-ec now,
     * and refuses with REVOKED (the front end words it), audited with the CRL's reason, before anything is spent:
     * once the CRL is gone the same SAD signs. cfx-rsa, not listed, still signs. */
    char dir[CFX_PATH_MAX + 8], sock[CFX_PATH_MAX + 16], err[512], path[CFX_PATH_MAX + 32], detail[256];
    uint8_t d[1][32];
    uint32_t code, about;
    snprintf(dir, sizeof(dir), "%s/crl", f.dir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    pki_crl_t *crl = NULL;
    ck_assert_msg(pki_crl_new(dir, cfx_ca_file(0), 0, 0, &crl, err, sizeof(err)) == PKI_OK, "%s", err);
    uint64_t gen = pki_crl_generation(crl);
    write_crl(dir, CFX_CRED_EC);
    snprintf(sock, sizeof(sock), "%s/sam-crl.sock", f.dir);
    sam_server_config_t sc = {.path = sock, .mode = 0600, .gid = (gid_t)-1, .allowed_uid = getuid(),
                              .max_connections = 4, .io_timeout_ms = 10000, .lock_wait_ms = 1000, .identity = "crl",
                              .stor = f.stor, .hsm = f.hsm, .oauth = f.oauth, .crl = crl};
    sam_server_t *srv = NULL;
    sam_client_t *cl = NULL, *saved = f.sam;
    ck_assert_msg(sam_server_open(&sc, &srv, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(sam_server_start(srv), 0);
    ck_assert_int_eq(sam_client_new(sock, 2, 10000, &cl), SAM_OK);
    f.sam = cl;

    digest_of("revoked", d[0]);
    char *sad = alice_sad(1, d, 1);
    unsigned denied = denied_signs();
    call_t c;
    sign_build(&c, tok, CFX_CRED_EC, sad, d, 1, ECDSA_SHA256, 0);
    sam_put_u32(&c.b, SAM_T_CRL_RELOAD, 1);
    ck_assert_uint_eq(call_run(f.sam, &c, &code), SAM_OP_REFUSED);
    ck_assert_msg(code == SAM_REFUSE_REVOKED, "refused %s", sam_refusal_name(code));
    ck_assert_int_eq(sam_get_u32(&c.m, SAM_T_ABOUT, &about), SAM_OK);
    ck_assert_uint_eq(about, SAM_T_CRED);
    call_end(&c);
    ck_assert_uint_eq(denied_signs(), denied + 1);
    last_denied_detail(CFX_CRED_EC, detail, sizeof(detail));
    ck_assert_msg(strstr(detail, "csc-sam: certificate revoked (") != NULL, "%s", detail);
    ck_assert_uint_eq(pki_crl_generation(crl), gen + 1); /* the crl-watch task sweeps for it */
    /* The CRL withdrawn: the SAD refused above was not spent. */
    snprintf(path, sizeof(path), "%s/revoked.crl", dir);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(pki_crl_reload(crl), 1);
    ck_assert_uint_eq(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    free(sad);
    char otp[7];
    cfx_otp(&f, otp);
    sad = authorize(tok, CFX_CRED_RSA, 1, d, 1, CFX_PIN, otp, &code);
    ck_assert_ptr_nonnull(sad);
    sign_build(&c, tok, CFX_CRED_RSA, sad, d, 1, "1.2.840.113549.1.1.11", 0);
    ck_assert_uint_eq(call_run(f.sam, &c, &code), SAM_OP_SIGN | SAM_OP_REPLY);
    call_end(&c);
    free(sad);
    f.sam = saved;
    sam_client_free(cl);
    sam_server_free(srv);
    pki_crl_free(crl);
}
END_TEST

START_TEST(t_sign_cert_parsed_once)
{
    /* The SAM checks the credential's certificate before every signature from the parsed certificate it keeps
     * (pki_x509_cache): parsing decodes the public key, which costs more than a P-256 signature. */
    uint8_t d[3][32];
    uint32_t code, about;
    uint64_t hits, misses;
    digest_of("once 1", d[0]);
    digest_of("once 2", d[1]);
    digest_of("once 3", d[2]);
    char *sad = alice_sad(3, d, 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_uint_eq(sign(tok, CFX_CRED_EC, sad, &d[i], 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    pki_x509_cache_stats(f.sam_certs, &hits, &misses);
    ck_assert_uint_eq(misses, 1);
    ck_assert_uint_eq(hits, 2);
    free(sad);
}
END_TEST

/* ---- AUTHORIZE, EXTEND ---- */

START_TEST(t_authorize_wrong_pin_lockout)
{
    uint8_t d[1][32];
    uint32_t code = 0;
    digest_of("locked", d[0]);
    unsigned denied = cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_DENIED, CFX_CRED_EC);
    int locked = 0;
    for (int i = 0; i < 12 && !locked; i++) {
        char otp[7];
        cfx_otp(&f, otp);
        ck_assert_ptr_null(authorize(tok, CFX_CRED_EC, 1, d, 1, "00000000", otp, &code));
        ck_assert_msg(code == SAM_REFUSE_UNAUTHORIZED || code == SAM_REFUSE_LOCKED, "%s", sam_refusal_name(code));
        locked = code == SAM_REFUSE_LOCKED;
    }
    ck_assert_msg(locked, "never locked");
    /* locked: the right PIN is refused too */
    char otp[7];
    cfx_otp(&f, otp);
    ck_assert_ptr_null(authorize(tok, CFX_CRED_EC, 1, d, 1, CFX_PIN, otp, &code));
    ck_assert_uint_eq(code, SAM_REFUSE_LOCKED);
    /* an empty PIN is a wrong one, and no PIN at all does not pass "PIN AND OTP" */
    ck_assert_uint_gt(cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_DENIED, CFX_CRED_EC), denied + 3);
    /* the other credential is not locked */
    cfx_otp(&f, otp);
    char *sad = authorize(tok, CFX_CRED_RSA, 1, d, 1, CFX_PIN, otp, &code);
    ck_assert_ptr_nonnull(sad);
    free(sad);
    cfx_otp(&f, otp);
    ck_assert_ptr_null(authorize(tok, CFX_CRED_RSA, 1, d, 1, "", otp, &code));
    ck_assert_uint_eq(code, SAM_REFUSE_UNAUTHORIZED);
    cfx_otp(&f, otp);
    ck_assert_ptr_null(authorize(tok, CFX_CRED_RSA, 1, d, 1, NULL, otp, &code));
    ck_assert_uint_eq(code, SAM_REFUSE_UNAUTHORIZED);
    /* SCAL 2 without digests, and more signatures than multisign: refused before any factor is looked at */
    cfx_otp(&f, otp);
    ck_assert_ptr_null(authorize(tok, CFX_CRED_RSA, 1, d, 0, CFX_PIN, otp, &code));
    ck_assert_uint_eq(code, SAM_REFUSE_BAD_MESSAGE);
    ck_assert_ptr_null(authorize(tok, CFX_CRED_RSA, 99, d, 1, CFX_PIN, otp, &code));
    ck_assert_uint_eq(code, SAM_REFUSE_BAD_MESSAGE);
}
END_TEST

static unsigned extend(const char *token, const char *cred, const char *sad, const uint8_t (*d)[32], size_t nd,
                       uint32_t *code, char **fresh)
{
    call_t c;
    char out[SAM_TOKEN_MAX + 1];
    call_begin(f.sam, &c, SAM_OP_EXTEND);
    sam_put_str(&c.b, SAM_T_TOKEN, token);
    sam_put_str(&c.b, SAM_T_CRED, cred);
    if (nd > 0)
        sam_put_str(&c.b, SAM_T_HASH_ALG, SHA256);
    for (size_t i = 0; i < nd; i++)
        sam_put_bytes(&c.b, SAM_T_DIGEST, d[i], 32);
    sam_put_str(&c.b, SAM_T_CLIENT, "test");
    sam_put_str(&c.b, SAM_T_SAD, sad);
    unsigned op = call_run(f.sam, &c, code);
    if (fresh != NULL)
        *fresh = op == (SAM_OP_EXTEND | SAM_OP_REPLY) && sam_get_text(&c.m, SAM_T_SAD, out, sizeof(out)) == SAM_OK
                     ? strdup(out)
                     : NULL;
    call_end(&c);
    return op;
}

START_TEST(t_extend)
{
    uint8_t bound[1][32], other[1][32];
    uint32_t code, about;
    digest_of("bound", bound[0]);
    digest_of("never approved", other[0]);
    char *sad = alice_sad(1, bound, 1);
    ck_assert_uint_eq(extend(tok, CFX_CRED_EC, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", bound, 1, &code, NULL),
                      SAM_OP_REFUSED);
    ck_assert_uint_eq(code, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(extend(tok, CFX_CRED_EC, sad, other, 1, &code, NULL), SAM_OP_REFUSED);
    ck_assert_uint_eq(code, SAM_REFUSE_NOT_BOUND);
    ck_assert_uint_eq(extend(tok, CFX_CRED_RSA, sad, bound, 1, &code, NULL), SAM_OP_REFUSED);
    ck_assert_uint_eq(code, SAM_REFUSE_UNAUTHORIZED); /* another credential's SAD */
    char *bob = make_bob();
    ck_assert_uint_eq(extend(bob, BOB_CRED, sad, bound, 1, &code, NULL), SAM_OP_REFUSED);
    ck_assert_uint_eq(code, SAM_REFUSE_UNAUTHORIZED); /* another user's SAD */
    ck_assert_uint_eq(extend(bob, CFX_CRED_EC, sad, bound, 1, &code, NULL), SAM_OP_REFUSED);
    ck_assert_uint_eq(code, SAM_REFUSE_NOT_FOUND); /* another user's credential */
    char *fresh = NULL;
    ck_assert_uint_eq(extend(tok, CFX_CRED_EC, sad, bound, 1, &code, &fresh), SAM_OP_EXTEND | SAM_OP_REPLY);
    ck_assert_ptr_nonnull(fresh);
    /* the old SAD stopped; the new one signs the bound digest */
    ck_assert_uint_eq(sign(tok, CFX_CRED_EC, sad, bound, 1, &code, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(sign(tok, CFX_CRED_EC, fresh, bound, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    free(fresh);
    free(bob);
    free(sad);
}
END_TEST

/* ---- ASYNC reservations ---- */

static int recent_ec_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_recent_get(t, STOR_RECENT_SIGNS, CFX_CRED_EC, arg);
}

START_TEST(t_reserved)
{
    uint8_t d[1][32], ticket[SAM_TICKET_LEN];
    uint32_t code;
    digest_of("later", d[0]);
    char *sad = alice_sad(1, d, 1);
    call_t c;
    sign_build(&c, tok, CFX_CRED_EC, sad, d, 1, ECDSA_SHA256, 60);
    ck_assert_uint_eq(call_run(f.sam, &c, &code), SAM_OP_SIGN | SAM_OP_REPLY);
    const uint8_t *t;
    size_t tl;
    ck_assert_int_eq(sam_get_bytes(&c.m, SAM_T_TICKET, &t, &tl), SAM_OK);
    memcpy(ticket, t, sizeof(ticket));
    ck_assert_uint_eq(sam_msg_count(&c.m, SAM_T_SIGNATURE), 0);
    call_end(&c);
    /* the reservation's spend is the credential's signing event (/account), as a SIGN's is */
    stor_recent_t *rec = calloc(1, sizeof(*rec));
    ck_assert_ptr_nonnull(rec);
    ck_assert_int_eq(stor_read(f.stor, recent_ec_fn, rec), STOR_OK);
    ck_assert_uint_eq(rec->n, 1);
    ck_assert_uint_eq(rec->what[0], 1);
    free(rec);
    /* spent at once: the budget of 1 is gone */
    uint32_t about;
    expect_refused(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), &code, SAM_REFUSE_EXHAUSTED, &about, SAM_T_SAD);
    /* a forged ticket signs nothing */
    uint8_t forged[SAM_TICKET_LEN];
    RAND_bytes(forged, sizeof(forged));
    call_begin(f.sam, &c, SAM_OP_SIGN_RESERVED);
    sam_put_u32(&c.b, SAM_T_DECISION, 1);
    sam_put_bytes(&c.b, SAM_T_TICKET, forged, sizeof(forged));
    ck_assert_uint_eq(call_run(f.sam, &c, &code), SAM_OP_REFUSED);
    ck_assert_uint_eq(code, SAM_REFUSE_NOT_FOUND);
    call_end(&c);
    /* given back: the SAD signs again; the ticket is used up */
    call_begin(f.sam, &c, SAM_OP_SIGN_RESERVED);
    sam_put_u32(&c.b, SAM_T_DECISION, 0);
    sam_put_str(&c.b, SAM_T_REASON, "test gives it back");
    sam_put_bytes(&c.b, SAM_T_TICKET, ticket, sizeof(ticket));
    ck_assert_uint_eq(call_run(f.sam, &c, &code), SAM_OP_SIGN_RESERVED | SAM_OP_REPLY);
    call_end(&c);
    call_begin(f.sam, &c, SAM_OP_SIGN_RESERVED);
    sam_put_u32(&c.b, SAM_T_DECISION, 1);
    sam_put_bytes(&c.b, SAM_T_TICKET, ticket, sizeof(ticket));
    ck_assert_uint_eq(call_run(f.sam, &c, &code), SAM_OP_REFUSED);
    call_end(&c);
    ck_assert_uint_eq(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), SAM_OP_SIGN | SAM_OP_REPLY);
    free(sad);
}
END_TEST

/* ---- malformed, oversized, flood ---- */

START_TEST(t_malformed_and_flood)
{
    unsigned sam_denied = cfx_audit_count(&f, STOR_EV_SAM, STOR_RES_DENIED, NULL);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(f.sam_path), sizeof(a.sun_path));
    memcpy(a.sun_path, f.sam_path, strlen(f.sam_path) + 1);
    /* garbage, a header with a bad op, and a datagram over the record limit: each closes its connection */
    static uint8_t big[SAM_RECORD_MAX + 64];
    const struct {
        const void *p;
        size_t n;
    } bad[] = {{"garbage garbage!", 16}, {"SA\x01\x63\0\0\0\0\0\0\0\x01\0\0\0\0", 16}, {big, sizeof(big)}};
    memcpy(big, "SA\x01\x05\0\0\0\0\0\0\0\x01\x00\x01\x00\x30", 16);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        int sndbuf = sizeof(big) * 2;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        (void)!send(fd, bad[i].p, bad[i].n, MSG_NOSIGNAL);
        char buf[512];
        while (recv(fd, buf, sizeof(buf), 0) > 0) /* a refusal, then the end */
            ;
        close(fd);
    }
    /* a message that decodes but breaks a value rule (a digest of 65 bytes) is refused by the decoder too */
    ck_assert_uint_ge(cfx_audit_count(&f, STOR_EV_SAM, STOR_RES_DENIED, NULL), sam_denied + 3);

    /* a flood of wrong SADs: each refused and audited, the SAM stays up */
    uint8_t d[1][32];
    uint32_t code, about;
    digest_of("flood", d[0]);
    unsigned denied = denied_signs();
    for (int i = 0; i < 200; i++) {
        uint8_t raw[32];
        char sad[64];
        RAND_bytes(raw, sizeof(raw));
        for (size_t k = 0; k < 43; k++)
            sad[k] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[raw[k % 32] % 64 ^ (k & 1)];
        sad[43] = '\0';
        expect_refused(sign(tok, CFX_CRED_EC, sad, d, 1, &code, &about), &code, SAM_REFUSE_NOT_FOUND, &about, SAM_T_SAD);
    }
    ck_assert_uint_ge(denied_signs(), denied + 200);
    sam_hello_t h;
    ck_assert_int_eq(sam_client_hello(f.sam, &h), SAM_OK);
    still_signs();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sam-sign");
    TCase *tc = tcase_create("compromised-front-end");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_sign_forged_expired_spent);
    tcase_add_test(tc, t_sign_not_bound);
    tcase_add_test(tc, t_sign_other_user);
    tcase_add_test(tc, t_sign_user_hint);
    tcase_add_test(tc, t_sign_disabled);
    tcase_add_test(tc, t_sign_revoked);
    tcase_add_test(tc, t_request_id);
    tcase_add_test(tc, t_sign_cert_parsed_once);
    tcase_add_test(tc, t_authorize_wrong_pin_lockout);
    tcase_add_test(tc, t_extend);
    tcase_add_test(tc, t_reserved);
    tcase_add_test(tc, t_malformed_and_flood);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
