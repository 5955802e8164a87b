/*
 * test_sam_account.c - a compromised front end against csc-sam's changes of a user's factors on /account
 * (ACCOUNT_PIN with the old PIN, ACCOUNT_PASSWORD, ACCOUNT_TOTP_BEGIN/FINISH): it speaks the protocol directly to the fixture's in-process SAM
 * with no session, a forged one, a wrong CSRF token, another user's credential, new factors that break the rules, and
 * wrong old factors up to the lock-out, spent TOTP steps, and pending TOTP changes that are forged, another user's or
 * expired. Each is refused by csc-sam itself, audited, and changes nothing; a right one
 * replaces the verifier and, in the same write, ends the user's other sessions and revokes tokens and SADs.
 * ctest: unit_sam_account.
 */
#include <liboath/oath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "csc_fixture.h"
#include "stor_fault.h"
#include "oauth_int.h" /* oauth_int_derivations */
#include "sam_client.h"

#define NEW_PIN "97531864"
#define NEW_PW "Changed-Pass-2468"
#define REFUSED(code) (0x100u | (code))
#define DONE(op) ((op) | SAM_OP_REPLY)
/* SCAL 2: one SHA-256 digest bound (32 bytes of 'A') */
#define HASH "\"hashes\":[\"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=\"],\"hashAlgorithmOID\":\"2.16.840.1.101.3.4.2.1\","

static cfx_t f;

static void setup(void)
{
    cfx_open(&f, NULL);
}

static void teardown(void)
{
    cfx_close(&f);
}

/* One request: fields are added by the caller between begin and run. */
typedef struct {
    sam_builder_t b;
    sam_rbuf_t rb;
    sam_msg_t reply;
    uint32_t refusal, about;
} raw_t;

static void raw_begin(raw_t *r, unsigned op)
{
    memset(r, 0, sizeof(*r));
    ck_assert_int_eq(sam_build_init(&r->b, op, sam_client_next_id(f.sam)), SAM_OK);
}

/* The reply's op, or REFUSED(code) with *about set; the reply stays in r until raw_free. */
static unsigned raw_call(raw_t *r, uint32_t *about)
{
    const uint8_t *msg;
    size_t len;
    ck_assert_int_eq(sam_build_finish(&r->b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(f.sam, msg, len, &r->rb, &r->reply), SAM_OK);
    unsigned op = r->reply.op;
    *about = 0;
    if (op == SAM_OP_REFUSED) {
        ck_assert_int_eq(sam_get_u32(&r->reply, SAM_T_REFUSAL, &r->refusal), SAM_OK);
        (void)sam_get_u32(&r->reply, SAM_T_ABOUT, about);
        op = REFUSED(r->refusal);
    }
    return op;
}

static void raw_free(raw_t *r)
{
    sam_build_free(&r->b);
    sam_rbuf_free(&r->rb);
}

static unsigned raw_run(raw_t *r, uint32_t *about)
{
    unsigned op = raw_call(r, about);
    raw_free(r);
    return op;
}

/* ACCOUNT_PIN with an old PIN (old NULL: none, the waiting case). */
static unsigned pin_change(const char *sid, const char *csrf, const char *cred, const char *old, const char *pin,
                           uint32_t *about)
{
    raw_t r;
    raw_begin(&r, SAM_OP_ACCOUNT_PIN);
    sam_put_str(&r.b, SAM_T_CRED, cred);
    sam_put_str(&r.b, SAM_T_PIN, pin);
    sam_put_str(&r.b, SAM_T_SESSION, sid);
    sam_put_str(&r.b, SAM_T_ADDR, "192.0.2.7");
    sam_put_str(&r.b, SAM_T_CSRF, csrf);
    if (old != NULL)
        sam_put_str(&r.b, SAM_T_OLD_SECRET, old);
    return raw_run(&r, about);
}

static unsigned pw_change(const char *sid, const char *csrf, const char *old, const char *pw, uint32_t *about)
{
    raw_t r;
    raw_begin(&r, SAM_OP_ACCOUNT_PASSWORD);
    sam_put_str(&r.b, SAM_T_SESSION, sid);
    sam_put_str(&r.b, SAM_T_ADDR, "192.0.2.7");
    sam_put_str(&r.b, SAM_T_CSRF, csrf);
    sam_put_str(&r.b, SAM_T_PASSWORD, pw);
    sam_put_str(&r.b, SAM_T_OLD_SECRET, old);
    return raw_run(&r, about);
}

/* ---- what storage holds ---- */

static int cred_pin_is(const char *id, const char *pin)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(stor_cred_get(f.stor, id, c), STOR_OK);
    int ok = oauth_secret_verify(c->pin_verifier, c->pin_verifier_len, pin, strlen(pin)) == OAUTH_OK;
    stor_wipe(c, sizeof(*c));
    free(c);
    return ok;
}

static void cred_lock(const char *id, uint32_t *failed, int64_t *locked_until)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(stor_cred_get(f.stor, id, c), STOR_OK);
    *failed = c->failed_auths;
    *locked_until = c->locked_until;
    stor_wipe(c, sizeof(*c));
    free(c);
}

static int user_pw_is(const char *name, const char *pw, uint32_t *failed, int64_t *locked_until)
{
    stor_user_t *u = calloc(1, sizeof(*u));
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(stor_user_get(f.stor, name, u), STOR_OK);
    int ok = oauth_secret_verify(u->pw_verifier, u->pw_verifier_len, pw, strlen(pw)) == OAUTH_OK;
    if (failed != NULL)
        *failed = u->failed_logins;
    if (locked_until != NULL)
        *locked_until = u->locked_until;
    stor_wipe(u, sizeof(*u));
    free(u);
    return ok;
}

static int session_live(const char *sid)
{
    oauth_session_view_t *v = calloc(1, sizeof(*v));
    ck_assert_ptr_nonnull(v);
    int ok = oauth_session_get(f.oauth, sid, v) == OAUTH_OK;
    free(v);
    return ok;
}

typedef struct {
    uint8_t hash[32];
    int found;
} sad_q_t;

static int sad_fn(stor_txn_t *t, void *arg)
{
    sad_q_t *q = arg;
    stor_sad_t *s = calloc(1, sizeof(*s));
    int rc = s != NULL ? stor_txn_sad_get(t, q->hash, s) : STOR_ERR_NOMEM;
    q->found = rc == STOR_OK;
    free(s);
    return rc == STOR_ERR_NOTFOUND ? 0 : rc;
}

static int sad_stored(const char *sad)
{
    sad_q_t q = {.found = 0};
    SHA256((const uint8_t *)sad, strlen(sad), q.hash);
    ck_assert_int_eq(stor_read(f.stor, sad_fn, &q), STOR_OK);
    return q.found;
}

/* A SAD for cred through credentials/authorize (PIN, a fresh OTP), as a client gets one. */
static char *sad_for(const char *token, const char *cred)
{
    char otp[7];
    cfx_reply_t x;
    cfx_otp(&f, otp);
    cfx_post(&f, &x, token,
             "/csc/v2/credentials/authorize {\"credentialID\":\"%s\",\"numSignatures\":1," HASH
             "\"authData\":[{\"id\":\"PIN\",\"value\":\"" CFX_PIN "\"},{\"id\":\"OTP\",\"value\":\"%s\"}]}",
             cred, otp);
    ck_assert_msg(x.r.status == 200, "authorize: %d %s", x.r.status, x.text);
    char *sad = strdup(cfx_str(&x, "SAD", NULL));
    ck_assert_ptr_nonnull(sad);
    cfx_reply_free(&x);
    return sad;
}

static int token_live(const char *token)
{
    oauth_principal_t p;
    return oauth_token_check(f.oauth, token, strlen(token), &p) == OAUTH_OK;
}

/* The detail of the last STOR_EV_ENROLL record. */
typedef struct {
    char detail[256];
    int result;
} last_t;

static int last_fn(const stor_audit_t *rec, void *arg)
{
    last_t *l = arg;
    if (rec->event == STOR_EV_ENROLL) {
        snprintf(l->detail, sizeof(l->detail), "%s", rec->detail);
        l->result = (int)rec->result;
    }
    return 0;
}

static last_t last_enroll(void)
{
    last_t l = {.detail = "", .result = -1};
    ck_assert_int_eq(stor_audit_each(f.stor, 0, last_fn, &l), STOR_OK);
    return l;
}

/* A credential-scope access token of alice's for cred, stored under hash {tag, 0, ...} (as the OAuth flow issues). */
typedef struct {
    uint8_t hash[32];
    const char *cred;
    uint32_t revoked;
} cred_tok_t;

static int cred_tok_put_fn(stor_txn_t *t, void *arg)
{
    cred_tok_t *q = arg;
    stor_token_t tok;
    memset(&tok, 0, sizeof(tok));
    memcpy(tok.hash, q->hash, 32);
    tok.kind = STOR_TOKEN_ACCESS;
    tok.scope = STOR_SCOPE_CREDENTIAL;
    snprintf(tok.user, sizeof(tok.user), "%s", CFX_USER);
    snprintf(tok.client, sizeof(tok.client), "%s", CFX_CLIENT);
    snprintf(tok.cred, sizeof(tok.cred), "%s", q->cred);
    tok.issued_at = (int64_t)time(NULL);
    tok.expires_at = tok.issued_at + 3600 + f.skew;
    tok.grant[0] = q->hash[0];
    return stor_txn_token_put(t, &tok);
}

static int cred_tok_get_fn(stor_txn_t *t, void *arg)
{
    cred_tok_t *q = arg;
    stor_token_t tok;
    int rc = stor_txn_token_get(t, q->hash, &tok);
    q->revoked = tok.revoked;
    return rc;
}

static void cred_token(cred_tok_t *q, uint8_t tag, const char *cred)
{
    memset(q, 0, sizeof(*q));
    q->hash[0] = tag;
    q->cred = cred;
    ck_assert_int_eq(stor_write(f.stor, cred_tok_put_fn, q), STOR_OK);
}

static int cred_token_revoked(cred_tok_t *q)
{
    ck_assert_int_eq(stor_read(f.stor, cred_tok_get_fn, q), STOR_OK);
    return (int)q->revoked;
}

/* ---- ACCOUNT_PIN with the old PIN ---- */

START_TEST(t_pin_change_refusals)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    uint32_t about;
    cfx_page_session(&f, CFX_USER, sid, csrf);
    unsigned denied = cfx_audit_count(&f, STOR_EV_ENROLL, STOR_RES_DENIED, NULL);
    /* no session csc-sam knows; the right session with a forged form */
    ck_assert_uint_eq(pin_change("forged-session-forged-session-forged-sessio", csrf, CFX_CRED_EC, CFX_PIN, NEW_PIN,
                                 &about),
                      REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(about, SAM_T_SESSION);
    ck_assert_uint_eq(pin_change(sid, "forged-csrf", CFX_CRED_EC, CFX_PIN, NEW_PIN, &about),
                      REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_uint_eq(about, SAM_T_SESSION);
    /* the new PIN's rule; a credential that does not exist */
    ck_assert_uint_eq(pin_change(sid, csrf, CFX_CRED_EC, CFX_PIN, "12", &about), REFUSED(SAM_REFUSE_BAD_MESSAGE));
    ck_assert_uint_eq(about, SAM_T_PIN);
    ck_assert_uint_eq(pin_change(sid, csrf, "no-such-cred", CFX_PIN, NEW_PIN, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(about, SAM_T_CRED);
    /* without the old PIN, a PIN that is set is not "waiting": refused as before */
    ck_assert_uint_eq(pin_change(sid, csrf, CFX_CRED_EC, NULL, NEW_PIN, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_ENROLL, STOR_RES_DENIED, NULL), denied + 5);
    ck_assert_int_eq(cred_pin_is(CFX_CRED_EC, CFX_PIN), 1);
}
END_TEST

/* A copy of CFX_CRED_EC (its PIN CFX_PIN) under id, owned by owner. */
typedef struct {
    const char *id, *owner;
} copy_t;

static int copy_fn(stor_txn_t *t, void *arg)
{
    const copy_t *m = arg;
    stor_cred_t *c = calloc(1, sizeof(*c));
    int rc = c != NULL ? stor_txn_cred_get(t, CFX_CRED_EC, c) : STOR_ERR_NOMEM;
    if (rc == STOR_OK) {
        snprintf(c->id, sizeof(c->id), "%s", m->id);
        snprintf(c->owner, sizeof(c->owner), "%s", m->owner);
        rc = stor_txn_cred_put(t, c, 1);
    }
    if (c != NULL)
        stor_wipe(c, sizeof(*c));
    free(c);
    return rc;
}

START_TEST(t_pin_change_other_users_credential)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    uint32_t about, failed;
    int64_t until;
    copy_t m = {"bob-key", "bob"};
    ck_assert_int_eq(stor_write(f.stor, copy_fn, &m), STOR_OK);
    cfx_page_session(&f, CFX_USER, sid, csrf);
    /* alice's session, the right old PIN of bob's credential: not hers, the same answer as an unknown one */
    ck_assert_uint_eq(pin_change(sid, csrf, "bob-key", CFX_PIN, NEW_PIN, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(about, SAM_T_CRED);
    ck_assert_uint_eq(pin_change(sid, csrf, "bob-key", "11111111", NEW_PIN, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_int_eq(cred_pin_is("bob-key", CFX_PIN), 1);
    cred_lock("bob-key", &failed, &until);
    ck_assert_uint_eq(failed, 0); /* nothing counted on his credential either */
}
END_TEST

START_TEST(t_pin_change_wrong_old_pin_locks)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    uint32_t about, failed;
    int64_t until;
    cfx_page_session(&f, CFX_USER, sid, csrf);
    unsigned lockouts = cfx_audit_count(&f, STOR_EV_LOCKOUT, -1, CFX_CRED_EC);
    /* the same counters as credentials/authorize: max_failures (5) wrong PINs begin a lock */
    for (unsigned i = 1; i < 5; i++) {
        unsigned long scrypts = oauth_int_derivations();
        ck_assert_uint_eq(pin_change(sid, csrf, CFX_CRED_EC, "11111111", NEW_PIN, &about),
                          REFUSED(SAM_REFUSE_UNAUTHORIZED));
        /* a wrong old PIN costs the check only: the new PIN's verifier is not derived */
        ck_assert_uint_eq(oauth_int_derivations() - scrypts, 1);
        ck_assert_uint_eq(about, SAM_T_OLD_SECRET);
        cred_lock(CFX_CRED_EC, &failed, &until);
        ck_assert_uint_eq(failed, i);
        ck_assert_int_eq(until, 0);
        ck_assert_int_eq(last_enroll().result, STOR_RES_DENIED);
    }
    ck_assert_uint_eq(pin_change(sid, csrf, CFX_CRED_EC, "11111111", NEW_PIN, &about),
                      REFUSED(SAM_REFUSE_UNAUTHORIZED));
    cred_lock(CFX_CRED_EC, &failed, &until);
    ck_assert_int_gt(until, 0);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOCKOUT, -1, CFX_CRED_EC), lockouts + 1);
    /* locked: even the right old PIN is refused, and nothing changes */
    ck_assert_uint_eq(pin_change(sid, csrf, CFX_CRED_EC, CFX_PIN, NEW_PIN, &about), REFUSED(SAM_REFUSE_LOCKED));
    ck_assert_int_eq(cred_pin_is(CFX_CRED_EC, CFX_PIN), 1);
    ck_assert_ptr_null(strstr(last_enroll().detail, CFX_PIN));
    ck_assert_ptr_null(strstr(last_enroll().detail, "11111111"));
    /* and credentials/authorize sees the same lock */
    char *tok = cfx_login(&f);
    char otp[7];
    cfx_reply_t x;
    cfx_otp(&f, otp);
    cfx_post(&f, &x, tok,
             "/csc/v2/credentials/authorize {\"credentialID\":\"" CFX_CRED_EC "\",\"numSignatures\":1," HASH
             "\"authData\":[{\"id\":\"PIN\",\"value\":\"" CFX_PIN "\"},{\"id\":\"OTP\",\"value\":\"%s\"}]}",
             otp);
    ck_assert_msg(x.r.status == 400 && strstr(x.text, "locked") != NULL, "%d %s", x.r.status, x.text);
    cfx_reply_free(&x);
    free(tok);
}
END_TEST

START_TEST(t_pin_change_revokes)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], sid2[OAUTH_TOKEN_BUFLEN], csrf2[OAUTH_TOKEN_BUFLEN];
    uint32_t about, failed;
    int64_t until;
    cfx_page_session(&f, CFX_USER, sid2, csrf2); /* another browser of alice's */
    cfx_page_session(&f, CFX_USER, sid, csrf);
    char *tok = cfx_login(&f);
    char *sad_ec = sad_for(tok, CFX_CRED_EC), *sad_rsa = sad_for(tok, CFX_CRED_RSA);
    cred_tok_t ct_ec, ct_rsa;
    cred_token(&ct_ec, 0xe1, CFX_CRED_EC);
    cred_token(&ct_rsa, 0xe2, CFX_CRED_RSA);
    /* one wrong try first: the right one starts the counters over */
    ck_assert_uint_eq(pin_change(sid, csrf, CFX_CRED_EC, "11111111", NEW_PIN, &about),
                      REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_uint_eq(pin_change(sid, csrf, CFX_CRED_EC, CFX_PIN, NEW_PIN, &about), DONE(SAM_OP_ACCOUNT_PIN));
    ck_assert_int_eq(cred_pin_is(CFX_CRED_EC, NEW_PIN), 1);
    ck_assert_int_eq(cred_pin_is(CFX_CRED_EC, CFX_PIN), 0);
    cred_lock(CFX_CRED_EC, &failed, &until);
    ck_assert_uint_eq(failed, 0);
    /* the SAD of that credential is gone, the other credential's stays; the service token stays */
    ck_assert_int_eq(sad_stored(sad_ec), 0);
    ck_assert_int_eq(sad_stored(sad_rsa), 1);
    ck_assert_int_eq(token_live(tok), 1);
    /* the credential-scope token of that credential is revoked, the other credential's is not */
    ck_assert_int_eq(cred_token_revoked(&ct_ec), 1);
    ck_assert_int_eq(cred_token_revoked(&ct_rsa), 0);
    /* the other session ended, the one that made the change goes on */
    ck_assert_int_eq(session_live(sid2), 0);
    ck_assert_int_eq(session_live(sid), 1);
    last_t l = last_enroll();
    ck_assert_int_eq(l.result, STOR_RES_OK);
    ck_assert_msg(strstr(l.detail, "action=pin.change by=account revoked: sessions=1 tokens=1 sads=1") != NULL, "%s",
                  l.detail);
    ck_assert_ptr_null(strstr(l.detail, NEW_PIN));
    /* the old PIN no longer changes it */
    ck_assert_uint_eq(pin_change(sid, csrf, CFX_CRED_EC, CFX_PIN, "86420864", &about),
                      REFUSED(SAM_REFUSE_UNAUTHORIZED));
    free(sad_ec);
    free(sad_rsa);
    free(tok);
}
END_TEST

/* ---- ACCOUNT_PASSWORD ---- */

START_TEST(t_password_refusals)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    uint32_t about, failed;
    cfx_page_session(&f, CFX_USER, sid, csrf);
    ck_assert_uint_eq(pw_change("forged-session-forged-session-forged-sessio", csrf, CFX_PASSWORD, NEW_PW, &about),
                      REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(pw_change(sid, "forged-csrf", CFX_PASSWORD, NEW_PW, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_uint_eq(about, SAM_T_SESSION);
    /* the rules of /enroll: too short, one class only, the name in it, the same password */
    const char *bad[] = {"Short-1", "alllowercaseletters", "xx-alice-password-99", CFX_PASSWORD};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_uint_eq(pw_change(sid, csrf, CFX_PASSWORD, bad[i], &about), REFUSED(SAM_REFUSE_BAD_MESSAGE));
        ck_assert_uint_eq(about, SAM_T_PASSWORD);
    }
    ck_assert_int_eq(user_pw_is(CFX_USER, CFX_PASSWORD, &failed, NULL), 1);
    ck_assert_uint_eq(failed, 0);
}
END_TEST

START_TEST(t_password_wrong_old_locks)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    uint32_t about, failed;
    int64_t until;
    cfx_page_session(&f, CFX_USER, sid, csrf);
    unsigned lockouts = cfx_audit_count(&f, STOR_EV_LOCKOUT, -1, NULL);
    for (unsigned i = 1; i <= 5; i++) {
        unsigned long scrypts = oauth_int_derivations();
        ck_assert_uint_eq(pw_change(sid, csrf, "Wrong-Password-1", NEW_PW, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
        ck_assert_uint_eq(oauth_int_derivations() - scrypts, 1); /* the check only, not the new verifier */
        ck_assert_uint_eq(about, SAM_T_OLD_SECRET);
        ck_assert_int_eq(user_pw_is(CFX_USER, CFX_PASSWORD, &failed, &until), 1);
        ck_assert_uint_eq(failed, i < 5 ? i : 0); /* the LOGIN counters: the fifth begins a lock */
    }
    ck_assert_int_gt(until, 0);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOCKOUT, -1, NULL), lockouts + 1);
    ck_assert_uint_eq(pw_change(sid, csrf, CFX_PASSWORD, NEW_PW, &about), REFUSED(SAM_REFUSE_LOCKED));
    ck_assert_int_eq(user_pw_is(CFX_USER, CFX_PASSWORD, NULL, NULL), 1);
    /* and the sign-in sees the same lock */
    cfx_reply_t x;
    char *basic = cfx_b64(CFX_USER ":" CFX_PASSWORD, strlen(CFX_USER ":" CFX_PASSWORD)), auth[128];
    snprintf(auth, sizeof(auth), "Basic %s", basic);
    free(basic);
    cfx_req_t q = {.path = "/csc/v2/auth/login", .authorization = auth, .content_type = "application/json",
                   .body = "{}"};
    cfx_call(&f, &q, &x);
    ck_assert_int_ne(x.r.status, 200);
    cfx_reply_free(&x);
}
END_TEST

START_TEST(t_password_change_revokes)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], sid2[OAUTH_TOKEN_BUFLEN], csrf2[OAUTH_TOKEN_BUFLEN];
    uint32_t about;
    cfx_page_session(&f, CFX_USER, sid2, csrf2);
    cfx_page_session(&f, CFX_USER, sid, csrf);
    char *tok = cfx_login(&f);
    char *sad = sad_for(tok, CFX_CRED_EC);
    ck_assert_uint_eq(pw_change(sid, csrf, CFX_PASSWORD, NEW_PW, &about), DONE(SAM_OP_ACCOUNT_PASSWORD));
    ck_assert_int_eq(user_pw_is(CFX_USER, NEW_PW, NULL, NULL), 1);
    ck_assert_int_eq(user_pw_is(CFX_USER, CFX_PASSWORD, NULL, NULL), 0);
    ck_assert_int_eq(token_live(tok), 0);
    ck_assert_int_eq(sad_stored(sad), 0);
    ck_assert_int_eq(session_live(sid2), 0);
    ck_assert_int_eq(session_live(sid), 1);
    last_t l = last_enroll();
    ck_assert_int_eq(l.result, STOR_RES_OK);
    ck_assert_msg(strstr(l.detail, "action=password.change by=account revoked: sessions=1 tokens=1 sads=1") != NULL,
                  "%s", l.detail);
    ck_assert_ptr_null(strstr(l.detail, NEW_PW));
    /* the old password no longer changes it */
    ck_assert_uint_eq(pw_change(sid, csrf, CFX_PASSWORD, "Another-Pass-1357", &about),
                      REFUSED(SAM_REFUSE_UNAUTHORIZED));
    free(sad);
    free(tok);
}
END_TEST


/* ---- ACCOUNT_TOTP_BEGIN / FINISH ---- */

typedef struct {
    char ticket[SAM_TOKEN_MAX + 1];
    uint8_t secret[64];
    size_t len;
} pending_t;

static unsigned totp_begin(const char *sid, const char *csrf, const char *otp, pending_t *out, uint32_t *about)
{
    raw_t r;
    raw_begin(&r, SAM_OP_ACCOUNT_TOTP_BEGIN);
    sam_put_str(&r.b, SAM_T_OTP, otp);
    sam_put_str(&r.b, SAM_T_SESSION, sid);
    sam_put_str(&r.b, SAM_T_ADDR, "192.0.2.7");
    sam_put_str(&r.b, SAM_T_CSRF, csrf);
    unsigned op = raw_call(&r, about);
    if (op == DONE(SAM_OP_ACCOUNT_TOTP_BEGIN) && out != NULL) {
        const uint8_t *sec;
        ck_assert_int_eq(sam_get_text(&r.reply, SAM_T_ENROLL_TICKET, out->ticket, sizeof(out->ticket)), SAM_OK);
        ck_assert_int_eq(sam_get_bytes(&r.reply, SAM_T_TOTP_SECRET, &sec, &out->len), SAM_OK);
        ck_assert_uint_le(out->len, sizeof(out->secret));
        memcpy(out->secret, sec, out->len);
    }
    raw_free(&r);
    return op;
}

static unsigned totp_finish(const char *sid, const char *csrf, const char *ticket, const char *otp, uint32_t *about)
{
    raw_t r;
    raw_begin(&r, SAM_OP_ACCOUNT_TOTP_FINISH);
    sam_put_str(&r.b, SAM_T_OTP, otp);
    sam_put_str(&r.b, SAM_T_SESSION, sid);
    sam_put_str(&r.b, SAM_T_ADDR, "192.0.2.7");
    sam_put_str(&r.b, SAM_T_CSRF, csrf);
    sam_put_str(&r.b, SAM_T_ENROLL_TICKET, ticket);
    return raw_run(&r, about);
}

/* The code of secret at the service's clock now (f.skew: cfx_otp moves it a step at a time). */
static void code_of(const uint8_t *secret, size_t len, char code[7])
{
    ck_assert_int_eq(oath_totp_generate((const char *)secret, len, time(NULL) + f.skew, 30, 0, 6, code), OATH_OK);
}

/* The fixture user's (old) secret's code now, without moving the clock. */
static void old_code(char code[7])
{
    char *raw = NULL;
    size_t len = 0;
    ck_assert_int_eq(oath_base32_decode(cfx_totp_secret(), strlen(cfx_totp_secret()), &raw, &len), OATH_OK);
    code_of((const uint8_t *)raw, len, code);
    OPENSSL_clear_free(raw, len);
}

/* The next step: the clock one step on (the old secret's code of it into code, when not NULL). */
static void next_step(char code[7])
{
    char unused[7];
    cfx_otp(&f, code != NULL ? code : unused);
}

typedef struct {
    uint8_t sealed[STOR_TOTP_SEALED_MAX];
    uint32_t len;
} sealed_t;

static sealed_t sealed_of(const char *name)
{
    sealed_t s = {.len = 0};
    stor_user_t *u = calloc(1, sizeof(*u));
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(stor_user_get(f.stor, name, u), STOR_OK);
    memcpy(s.sealed, u->totp_sealed, u->totp_sealed_len);
    s.len = u->totp_sealed_len;
    stor_wipe(u, sizeof(*u));
    free(u);
    return s;
}

static int same_sealed(sealed_t a, sealed_t b)
{
    return a.len == b.len && memcmp(a.sealed, b.sealed, a.len) == 0;
}

/* bob: alice's record under another name, his TOTP secret the fixture's in clear (an older record: it opens). */
static int bob_fn(stor_txn_t *t, void *arg)
{
    (void)arg;
    stor_user_t *u = calloc(1, sizeof(*u));
    char *raw = NULL;
    size_t len = 0;
    int rc = u != NULL ? stor_txn_user_get(t, CFX_USER, u) : STOR_ERR_NOMEM;
    if (rc == STOR_OK && oath_base32_decode(cfx_totp_secret(), strlen(cfx_totp_secret()), &raw, &len) == OATH_OK &&
        len <= sizeof(u->totp_secret)) {
        snprintf(u->name, sizeof(u->name), "bob");
        memset(u->totp_sealed, 0, sizeof(u->totp_sealed));
        u->totp_sealed_len = 0;
        memcpy(u->totp_secret, raw, len);
        u->totp_secret_len = (uint32_t)len;
        rc = stor_txn_user_put(t, u, 1);
    } else if (rc == STOR_OK) {
        rc = STOR_ERR_INVAL;
    }
    OPENSSL_clear_free(raw, len);
    if (u != NULL)
        stor_wipe(u, sizeof(*u));
    free(u);
    return rc;
}

typedef struct {
    uint8_t hash[32];
    int64_t expires;
} expire_t;

static int expire_fn(stor_txn_t *t, void *arg)
{
    expire_t *e = arg;
    stor_enroll_ticket_t *k = calloc(1, sizeof(*k));
    int rc = k != NULL ? stor_txn_enroll_ticket_get(t, e->hash, k) : STOR_ERR_NOMEM;
    if (rc == STOR_OK) {
        k->expires_at = e->expires;
        rc = stor_txn_enroll_ticket_put(t, k);
    }
    free(k);
    return rc;
}

/* Move the pending change's expiry (its key: SHA-256("csc-account-totp" NUL ticket)). */
static void expire_pending(const char *ticket, int64_t when)
{
    static const char kind[] = "csc-account-totp";
    expire_t e = {.expires = when};
    char in[sizeof(kind) + SAM_TOKEN_MAX];
    size_t n = strlen(ticket);
    ck_assert_uint_le(n, SAM_TOKEN_MAX);
    memcpy(in, kind, sizeof(kind));
    memcpy(in + sizeof(kind), ticket, n);
    SHA256((const uint8_t *)in, sizeof(kind) + n, e.hash);
    ck_assert_int_eq(stor_write(f.stor, expire_fn, &e), STOR_OK);
}

START_TEST(t_totp_begin_refusals)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], code[7];
    uint32_t about, failed;
    pending_t pend;
    cfx_page_session(&f, CFX_USER, sid, csrf); /* spends the step now */
    sealed_t before = sealed_of(CFX_USER);
    next_step(code);
    ck_assert_uint_eq(totp_begin("forged-session-forged-session-forged-sessio", csrf, code, NULL, &about),
                      REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(totp_begin(sid, "forged-csrf", code, NULL, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_uint_eq(about, SAM_T_SESSION);
    /* a wrong code counts on the user's counters, as LOGIN's */
    ck_assert_uint_eq(totp_begin(sid, csrf, "000000", NULL, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_uint_eq(about, SAM_T_OTP);
    ck_assert_int_eq(user_pw_is(CFX_USER, CFX_PASSWORD, &failed, NULL), 1);
    ck_assert_uint_eq(failed, 1);
    /* the right code once; the same step again is spent */
    ck_assert_uint_eq(totp_begin(sid, csrf, code, &pend, &about), DONE(SAM_OP_ACCOUNT_TOTP_BEGIN));
    ck_assert_uint_eq(pend.len, 20);
    ck_assert_uint_eq(totp_begin(sid, csrf, code, NULL, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_msg(strstr(last_enroll().detail, "replayed code") != NULL, "%s", last_enroll().detail);
    /* nothing replaced yet */
    ck_assert_int_eq(same_sealed(before, sealed_of(CFX_USER)), 1);
}
END_TEST

/* A wrong code whose write runs again (its commit met a conflict, STOR_ERR_RETRY: the batch runs anew) is counted,
 * once. begin_fn kept the refusal of its first run, so the second returned 1 and undid the count and its record. */
START_TEST(t_totp_wrong_code_rerun)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    uint32_t about, failed;
    cfx_page_session(&f, CFX_USER, sid, csrf);
    sf_install(f.stor);
    /* the wrong code's count is the first commit of a write to the users table (the session's own writes, and any
     * of the in-process csc-sam's, go by) */
    sf_arm(SF_COMMIT, STOR_DB_USERS, SF_WRITE_TXN, 1, STOR_ERR_RETRY, 0);
    ck_assert_uint_eq(totp_begin(sid, csrf, "000000", NULL, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_uint_eq(about, SAM_T_OTP);
    ck_assert_int_eq(user_pw_is(CFX_USER, CFX_PASSWORD, &failed, NULL), 1);
    ck_assert_uint_eq(failed, 1);
    ck_assert_msg(strstr(last_enroll().detail, "wrong code") != NULL, "%s", last_enroll().detail);
}
END_TEST

START_TEST(t_totp_finish_refusals)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], bsid[OAUTH_TOKEN_BUFLEN], bcsrf[OAUTH_TOKEN_BUFLEN];
    char code[7], ncode[7];
    uint32_t about;
    pending_t pend;
    ck_assert_int_eq(stor_write(f.stor, bob_fn, NULL), STOR_OK);
    cfx_page_session(&f, "bob", bsid, bcsrf);
    cfx_page_session(&f, CFX_USER, sid, csrf);
    sealed_t before = sealed_of(CFX_USER);
    next_step(code);
    ck_assert_uint_eq(totp_begin(sid, csrf, code, &pend, &about), DONE(SAM_OP_ACCOUNT_TOTP_BEGIN));
    next_step(NULL);
    code_of(pend.secret, pend.len, ncode);
    /* FINISH without BEGIN (a ticket never issued); an /enroll-style use of the ticket's raw hash is another key */
    ck_assert_uint_eq(totp_finish(sid, csrf, "no-such-ticket-no-such-ticket-no-such-tick", ncode, &about),
                      REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(about, SAM_T_ENROLL_TICKET);
    /* bob's session with alice's ticket: not his, the same answer */
    ck_assert_uint_eq(totp_finish(bsid, bcsrf, pend.ticket, ncode, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    /* alice's session with a forged form */
    ck_assert_uint_eq(totp_finish(sid, "forged-csrf", pend.ticket, ncode, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    /* a wrong code of the new secret keeps the old one */
    ck_assert_uint_eq(totp_finish(sid, csrf, pend.ticket, "000000", &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_uint_eq(about, SAM_T_OTP);
    ck_assert_int_eq(same_sealed(before, sealed_of(CFX_USER)), 1);
    /* expired */
    expire_pending(pend.ticket, (int64_t)time(NULL) - 1);
    ck_assert_uint_eq(totp_finish(sid, csrf, pend.ticket, ncode, &about), REFUSED(SAM_REFUSE_EXPIRED));
    ck_assert_int_eq(same_sealed(before, sealed_of(CFX_USER)), 1);
    /* and the old secret still signs her in */
    char sid3[OAUTH_TOKEN_BUFLEN], csrf3[OAUTH_TOKEN_BUFLEN];
    cfx_page_session(&f, CFX_USER, sid3, csrf3);
}
END_TEST

START_TEST(t_totp_change_revokes)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], sid2[OAUTH_TOKEN_BUFLEN], csrf2[OAUTH_TOKEN_BUFLEN];
    char code[7], ncode[7];
    uint32_t about;
    pending_t pend;
    cfx_page_session(&f, CFX_USER, sid2, csrf2);
    cfx_page_session(&f, CFX_USER, sid, csrf);
    char *tok = cfx_login(&f);
    sealed_t before = sealed_of(CFX_USER);
    next_step(code);
    ck_assert_uint_eq(totp_begin(sid, csrf, code, &pend, &about), DONE(SAM_OP_ACCOUNT_TOTP_BEGIN));
    /* a code of the new secret in the step BEGIN spent is spent too */
    code_of(pend.secret, pend.len, ncode);
    ck_assert_uint_eq(totp_finish(sid, csrf, pend.ticket, ncode, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    next_step(NULL);
    code_of(pend.secret, pend.len, ncode);
    ck_assert_uint_eq(totp_finish(sid, csrf, pend.ticket, ncode, &about), DONE(SAM_OP_ACCOUNT_TOTP_FINISH));
    ck_assert_int_eq(same_sealed(before, sealed_of(CFX_USER)), 0);
    last_t l = last_enroll();
    ck_assert_msg(strstr(l.detail, "action=totp.change by=account revoked: sessions=1 tokens=1") != NULL, "%s",
                  l.detail);
    /* the ticket is spent; the old secret's codes are refused, the new one's work */
    ck_assert_uint_eq(totp_finish(sid, csrf, pend.ticket, ncode, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    next_step(NULL);
    old_code(code);
    ck_assert_uint_eq(totp_begin(sid, csrf, code, NULL, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    next_step(NULL);
    code_of(pend.secret, pend.len, ncode);
    oauth_authz_request_t *req = calloc(1, sizeof(*req));
    ck_assert_ptr_nonnull(req);
    snprintf(req->client_id, sizeof(req->client_id), "%s", OAUTH_APPROVAL_PAGE_CLIENT);
    req->scope = STOR_SCOPE_SERVICE;
    char sid3[OAUTH_TOKEN_BUFLEN], csrf3[OAUTH_TOKEN_BUFLEN];
    ck_assert_int_eq(oauth_session_login_new(f.oauth, req, CFX_USER, CFX_PASSWORD, strlen(CFX_PASSWORD), ncode, 6,
                                             "192.0.2.9", sid3, csrf3),
                     OAUTH_OK);
    free(req);
    /* what the change revoked: the other session, the user's token */
    ck_assert_int_eq(session_live(sid2), 0);
    ck_assert_int_eq(session_live(sid), 1);
    ck_assert_int_eq(token_live(tok), 0);
    free(tok);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sam-account");
    TCase *tc = tcase_create("account");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_pin_change_refusals);
    tcase_add_test(tc, t_pin_change_other_users_credential);
    tcase_add_test(tc, t_pin_change_wrong_old_pin_locks);
    tcase_add_test(tc, t_pin_change_revokes);
    tcase_add_test(tc, t_password_refusals);
    tcase_add_test(tc, t_password_wrong_old_locks);
    tcase_add_test(tc, t_password_change_revokes);
    tcase_add_test(tc, t_totp_begin_refusals);
    tcase_add_test(tc, t_totp_wrong_code_rerun);
    tcase_add_test(tc, t_totp_finish_refusals);
    tcase_add_test(tc, t_totp_change_revokes);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
