/* test_consent.c - the user's decision: authorization codes, pending SADs, PIN checks and their audit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_oauth.h"

static void world(void)
{
    stor_cred_t *c = calloc(1, sizeof(*c));

    ck_assert_ptr_nonnull(c);
    mk_user("alice", STOR_USER_ACTIVE, 1);
    mk_user("bob", STOR_USER_ACTIVE, 1);
    mk_cred("c-pin", "alice", 1, "PIN");
    mk_cred("c-nopin", "alice", 0, "");
    mk_cred("c-bob", "bob", 1, "PIN");
    mk_cred("c-off", "alice", 1, "PIN");
    get_cred("c-off", c);
    c->status = STOR_CRED_DISABLED;
    put_cred(c);
    free(c);
}

static int decide(const char *sid, int approve, const char *pin, char code[OAUTH_TOKEN_BUFLEN])
{
    return oauth_session_decide(fx.o, sid, approve, pin, pin ? strlen(pin) : 0, T_ADDR, code);
}

static int session_state(const char *sid)
{
    oauth_session_view_t *v = malloc(sizeof(*v));
    int rc;

    ck_assert_ptr_nonnull(v);
    rc = oauth_session_get(fx.o, sid, v);
    free(v);
    return rc;
}

static void cred_session(const char *cred, uint32_t n, char sid[OAUTH_TOKEN_BUFLEN])
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, cred, n);

    session_for(r, "alice", sid);
    free(r);
}

START_TEST(t_deny)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c-pin", 2);
    char sid[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN] = "x";
    auds_t *a;
    const aud_t *ar;
    uint8_t d1[32];

    world();
    session_for(r, "alice", sid);
    ck_assert_int_eq(decide(sid, 0, NULL, code), OAUTH_OK);
    ck_assert_str_eq(code, "");
    ck_assert_int_eq(session_state(sid), OAUTH_ERR_INVALID);
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_ERR_INVALID);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_AUTHORIZE, STOR_RES_DENIED), 1);
    ar = audit_last(a, STOR_EV_AUTHORIZE);
    ck_assert_str_eq(ar->rec.user, "alice");
    ck_assert_str_eq(ar->rec.cred, "c-pin");
    ck_assert_str_eq(ar->rec.client, "oauth:app@" T_ADDR);
    ck_assert_str_eq(ar->rec.detail, "oauth2 consent denied scope=credential numSignatures 2 hashAlgorithmOID "
                                     SHA256_OID);
    ck_assert_uint_eq(ar->rec.n_digests, 2);
    ck_assert_uint_eq(ar->rec.digest_len, 32);
    req_digest(1, d1);
    ck_assert_mem_eq(ar->dig + 32, d1, 32);
    free(a);
    free(r);
}
END_TEST

START_TEST(t_approve_service)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    char sid[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN];
    stor_code_t *k = malloc(sizeof(*k));
    int64_t now = oauth_now();
    uint8_t ref[16];
    auds_t *a;
    const aud_t *ar;

    ck_assert_ptr_nonnull(k);
    world();
    r->redirect_given = 0;
    session_for(r, "alice", sid);
    ck_assert_int_eq(decide(sid, 1, NULL, code), OAUTH_OK);
    ck_assert_uint_eq(strlen(code), OAUTH_TOKEN_LEN);
    ck_assert_int_eq(session_state(sid), OAUTH_ERR_INVALID);
    ck_assert_int_eq(get_code_rec(code, k), STOR_OK);
    ck_assert_str_eq(k->client, "app");
    ck_assert_str_eq(k->user, "alice");
    ck_assert_str_eq(k->redirect_uri, T_REDIRECT);
    ck_assert_uint_eq(k->redirect_given, 0);
    ck_assert_mem_eq(k->challenge, r->challenge, 32);
    ck_assert_uint_eq(k->scope, STOR_SCOPE_SERVICE);
    ck_assert_int_ge(k->expires_at, now + 60);
    ck_assert_int_le(k->expires_at, oauth_now() + 60);
    ck_assert_uint_eq(k->used, 0);
    ck_assert_str_eq(k->cred, "");
    ck_assert_str_eq(k->authz_details, "");
    a = audit_read();
    ar = audit_last(a, STOR_EV_AUTHORIZE);
    ck_assert_uint_eq(ar->rec.result, STOR_RES_OK);
    ck_assert_str_eq(ar->rec.detail, "oauth2 consent approved scope=service");
    ck_assert_str_eq(ar->rec.cred, "");
    ref_of(code, ref);
    ck_assert_mem_eq(ar->rec.authz_ref, ref, 16);
    free(a);
    assert_no_secret(code);
    free(k);
    free(r);
}
END_TEST

START_TEST(t_approve_credential_pin)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c-pin", 3);
    char sid[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN];
    stor_code_t *k = malloc(sizeof(*k));
    stor_sad_t *s = malloc(sizeof(*s));
    stor_cred_t *c = malloc(sizeof(*c));
    uint8_t h[32], d[32];
    auds_t *a;
    const aud_t *ar;

    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(c);
    world();
    session_for(r, "alice", sid);
    /* a wrong PIN: refused, counted, and the user may try again in the same session */
    ck_assert_int_eq(decide(sid, 1, "0000", code), OAUTH_ERR_DENIED);
    ck_assert_str_eq(code, "");
    ck_assert_int_eq(session_state(sid), OAUTH_OK);
    get_cred("c-pin", c);
    ck_assert_uint_eq(c->failed_auths, 1);
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_OK);
    ck_assert_int_eq(session_state(sid), OAUTH_ERR_INVALID);
    get_cred("c-pin", c);
    ck_assert_uint_eq(c->failed_auths, 0);

    ck_assert_int_eq(get_code_rec(code, k), STOR_OK);
    ck_assert_uint_eq(k->scope, STOR_SCOPE_CREDENTIAL);
    ck_assert_str_eq(k->cred, "c-pin");
    ck_assert_str_eq(k->authz_details, r->authz_details);
    /* the pending SAD, under the code's hash in the pending table (never among the SADs), expiring with the code */
    sha256_of(code, strlen(code), h);
    ck_assert_int_eq(get_sad(h, s), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(get_pending_sad(h, s), STOR_OK);
    ck_assert_str_eq(s->user, "alice");
    ck_assert_str_eq(s->cred, "c-pin");
    ck_assert_uint_eq(s->remaining, 3);
    ck_assert_int_eq(s->expires_at, k->expires_at);
    ck_assert_str_eq(s->hash_alg, SHA256_OID);
    ck_assert_uint_eq(s->digest_len, 32);
    ck_assert_uint_eq(s->n_digests, 3);
    for (uint32_t i = 0; i < 3; i++) {
        req_digest(i, d);
        ck_assert_mem_eq(s->digests + i * 32, d, 32);
    }

    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_AUTHORIZE, STOR_RES_DENIED), 1);
    ck_assert_str_eq(audit_last(a, STOR_EV_AUTHORIZE)->rec.detail,
                     "oauth2 consent approved scope=credential numSignatures 3 hashAlgorithmOID " SHA256_OID);
    ar = &a->r[a->n - 2];
    ck_assert_uint_eq(ar->rec.event, STOR_EV_AUTHORIZE);
    ck_assert_str_eq(ar->rec.detail, "oauth2 consent approved scope=credential numSignatures 3 hashAlgorithmOID "
                                     SHA256_OID " refused: wrong PIN");
    ar = audit_last(a, STOR_EV_AUTHORIZE);
    ck_assert_uint_eq(ar->rec.result, STOR_RES_OK);
    ck_assert_uint_eq(ar->rec.n_digests, 3);
    req_digest(2, d);
    ck_assert_mem_eq(ar->dig + 64, d, 32);
    free(a);
    assert_no_secret(T_PIN);
    assert_no_secret(code);
    free(k);
    free(s);
    free(c);
    free(r);
}
END_TEST

START_TEST(t_credential_without_pin)
{
    char sid[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN];
    stor_sad_t *s = malloc(sizeof(*s));
    uint8_t h[32];

    ck_assert_ptr_nonnull(s);
    world();
    /* no PIN object: none needed, and one given is ignored */
    cred_session("c-nopin", 0, sid);
    ck_assert_int_eq(decide(sid, 1, NULL, code), OAUTH_OK);
    sha256_of(code, strlen(code), h);
    ck_assert_int_eq(get_pending_sad(h, s), STOR_OK);
    ck_assert_uint_eq(s->remaining, 1);
    ck_assert_uint_eq(s->n_digests, 0);
    cred_session("c-nopin", 1, sid);
    ck_assert_int_eq(decide(sid, 1, "whatever", code), OAUTH_OK);
    /* a PIN object: a missing PIN is a failure */
    cred_session("c-pin", 1, sid);
    ck_assert_int_eq(decide(sid, 1, NULL, code), OAUTH_ERR_DENIED);
    ck_assert_int_eq(decide(sid, 1, "", code), OAUTH_ERR_DENIED);
    free(s);
}
END_TEST

START_TEST(t_credential_refusals)
{
    char sid[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN];
    oauth_authz_request_t *r;
    stor_user_t u;
    auds_t *a;

    world();
    cred_session("c-bob", 1, sid);                  /* another user's */
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_ERR_INVALID);
    ck_assert_int_eq(session_state(sid), OAUTH_ERR_INVALID);
    cred_session("c-none", 1, sid);                 /* unknown */
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_ERR_INVALID);
    cred_session("", 1, sid);                       /* none named */
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_ERR_INVALID);
    cred_session("c-off", 1, sid);                  /* disabled */
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_ERR_DISABLED);
    ck_assert_int_eq(session_state(sid), OAUTH_ERR_INVALID);
    cred_session("c-pin", 11, sid);                 /* above multisign (10) */
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_ERR_INVAL);
    cred_session("c-pin", 10, sid);
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_OK);
    r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c-pin", 0);
    r->num_signatures = 0;
    session_for(r, "alice", sid);
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_ERR_INVAL);
    free(r);
    r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c-pin", 2);
    r->hash_alg[0] = '\0';                          /* digests without their algorithm */
    session_for(r, "alice", sid);
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_ERR_INVAL);
    free(r);
    ck_assert_str_eq(code, "");
    /* the user was suspended after logging in */
    cred_session("c-pin", 1, sid);
    u = get_user("alice");
    u.status = STOR_USER_SUSPENDED;
    put_user(&u);
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_ERR_DISABLED);
    a = audit_read();
    ck_assert_str_eq(audit_last(a, STOR_EV_AUTHORIZE)->rec.detail,
                     "oauth2 consent approved scope=credential numSignatures 1 hashAlgorithmOID " SHA256_OID
                     " refused: user disabled");
    ck_assert_uint_eq(audit_count(a, STOR_EV_AUTHORIZE, STOR_RES_OK), 1);
    free(a);
    /* none of these counted as a PIN failure */
    {
        stor_cred_t *c = malloc(sizeof(*c));
        ck_assert_ptr_nonnull(c);
        get_cred("c-pin", c);
        ck_assert_uint_eq(c->failed_auths, 0);
        free(c);
    }
}
END_TEST

START_TEST(t_pin_lock)
{
    char sid[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN];
    stor_cred_t *c = malloc(sizeof(*c));
    auds_t *a;

    ck_assert_ptr_nonnull(c);
    world();
    cred_session("c-pin", 1, sid);
    ck_assert_int_eq(decide(sid, 1, "1", code), OAUTH_ERR_DENIED);
    ck_assert_int_eq(decide(sid, 1, "2", code), OAUTH_ERR_DENIED);
    ck_assert_int_eq(decide(sid, 1, "3", code), OAUTH_ERR_DENIED);
    get_cred("c-pin", c);
    ck_assert_int_gt(c->locked_until, oauth_now());
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_ERR_LOCKED);
    ck_assert_int_eq(session_state(sid), OAUTH_ERR_INVALID);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOCKOUT, STOR_RES_DENIED), 1);
    ck_assert_str_eq(audit_last(a, STOR_EV_LOCKOUT)->rec.cred, "c-pin");
    free(a);
    /* when the lock ends, the right PIN works again */
    c->locked_until = oauth_now() - 1;
    put_cred(c);
    cred_session("c-pin", 1, sid);
    ck_assert_int_eq(decide(sid, 1, T_PIN, code), OAUTH_OK);
    free(c);
}
END_TEST

START_TEST(t_decide_session_errors)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN], bad[OAUTH_TOKEN_BUFLEN];
    oauth_config_t cfg = {.max_failures = 3, .session_idle = 10};
    uint8_t h[32];

    world();
    fx_oauth(cfg);
    /* unknown sessions and bad arguments: refused, the signed-in session stays for its decision */
    ck_assert_int_eq(signin(r, "alice", sid, csrf), OAUTH_OK);
    fresh_value(bad, h);
    ck_assert_int_eq(decide(bad, 1, NULL, code), OAUTH_ERR_INVALID);
    ck_assert_int_eq(decide("x", 1, NULL, code), OAUTH_ERR_INVALID);
    ck_assert_int_eq(decide(NULL, 1, NULL, code), OAUTH_ERR_INVALID);
    ck_assert_int_eq(decide(sid, 1, NULL, NULL), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_session_decide(fx.o, sid, 1, NULL, 4, T_ADDR, code), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_session_decide(NULL, sid, 1, NULL, 0, T_ADDR, code), OAUTH_ERR_INVAL);
    ck_assert_int_eq(session_state(sid), OAUTH_OK);
    ck_assert_int_eq(decide(sid, 1, NULL, code), OAUTH_OK);
    ck_assert_uint_eq(strlen(code), OAUTH_TOKEN_LEN);
    ck_assert_int_eq(session_state(sid), OAUTH_ERR_INVALID); /* one decision ends it */
    /* timed out after the login */
    session_for(r, "alice", sid);
    oauth_int_set_skew(fx.o, 10);
    ck_assert_int_eq(decide(sid, 1, NULL, code), OAUTH_ERR_EXPIRED);
    free(r);
}
END_TEST

Suite *suite_consent(void)
{
    Suite *s = suite_create("consent");
    TCase *tc = tcase_create("consent");

    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, t_deny);
    tcase_add_test(tc, t_approve_service);
    tcase_add_test(tc, t_approve_credential_pin);
    tcase_add_test(tc, t_credential_without_pin);
    tcase_add_test(tc, t_credential_refusals);
    tcase_add_test(tc, t_pin_lock);
    tcase_add_test(tc, t_decide_session_errors);
    suite_add_tcase(s, tc);
    return s;
}
