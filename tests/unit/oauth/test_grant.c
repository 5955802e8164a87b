/* test_grant.c - the token endpoint: code exchange with PKCE, credential tokens, refresh rotation,
 * client credentials, and revocation by a client. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stor_int.h" /* stor_int_fail_commits() */
#include "test_oauth.h"

#define GR_CODE STOR_GRANT_AUTHORIZATION_CODE
#define GR_REFRESH STOR_GRANT_REFRESH_TOKEN
#define GR_CC STOR_GRANT_CLIENT_CREDENTIALS

static stor_client_t app, other;
static char app_secret[OAUTH_TOKEN_BUFLEN], other_secret[OAUTH_TOKEN_BUFLEN];

static void world(void)
{
    mk_user("alice", STOR_USER_ACTIVE, 1);
    mk_cred("c-pin", "alice", 1, "PIN");
    mk_client("app", GR_CODE | GR_REFRESH, app_secret, &app);
    mk_client("other", GR_CODE | GR_REFRESH | GR_CC, other_secret, &other);
}

static void service_code(const char *client_id, char code[OAUTH_TOKEN_BUFLEN])
{
    oauth_authz_request_t *r = mk_req(client_id, STOR_SCOPE_SERVICE, NULL, 0);

    code_for(r, "alice", NULL, code);
    free(r);
}

static int exchange(const stor_client_t *c, const char *code, const char *redirect, const char *verifier,
                    oauth_token_response_t *out)
{
    return oauth_token_from_code(fx.o, c, code, redirect, verifier, out);
}

static int check(const char *token, oauth_principal_t *p)
{
    oauth_principal_t tmp;

    return oauth_token_check(fx.o, token, strlen(token), p ? p : &tmp);
}

static int refresh(const stor_client_t *c, const char *token, oauth_token_response_t *out)
{
    return oauth_token_refresh(fx.o, c, token, strlen(token), out);
}

static int revoke(const stor_client_t *c, const char *token, oauth_hint_t hint)
{
    return oauth_token_revoke_by_client(fx.o, c, token, strlen(token), hint);
}

static oauth_token_response_t *resp(void)
{
    oauth_token_response_t *t = calloc(1, sizeof(*t));

    ck_assert_ptr_nonnull(t);
    return t;
}

/* ---- authorization_code ----------------------------------------------------------------- */

START_TEST(t_code_service)
{
    char code[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp();
    oauth_principal_t p;
    stor_code_t *k = malloc(sizeof(*k));
    stor_token_t st;
    uint8_t h[32], ref[16];
    auds_t *a;
    const aud_t *r;

    ck_assert_ptr_nonnull(k);
    world();
    service_code("app", code);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    ck_assert_uint_eq(strlen(t->access), OAUTH_TOKEN_LEN);
    ck_assert_uint_eq(strlen(t->refresh), OAUTH_TOKEN_LEN);
    ck_assert_uint_eq(t->expires_in, 3600);
    ck_assert_uint_eq(t->scope, STOR_SCOPE_SERVICE);
    ck_assert_str_eq(t->cred, "");
    ck_assert_str_eq(t->authz_details, "");
    ck_assert_int_eq(check(t->access, &p), OAUTH_OK);
    ck_assert_str_eq(p.user, "alice");
    ck_assert_str_eq(p.client, "app");
    ck_assert_str_eq(p.cred, "");
    ck_assert_uint_eq(p.scope, STOR_SCOPE_SERVICE);
    ck_assert_int_eq(check(t->refresh, NULL), OAUTH_ERR_INVALID); /* a refresh token is no access token */
    ck_assert_int_eq(get_code_rec(code, k), STOR_OK);
    ck_assert_uint_eq(k->used, 1);
    ck_assert_mem_eq(p.grant, k->grant, 16);
    sha256_of(t->refresh, strlen(t->refresh), h);
    ck_assert_int_eq(get_token(h, &st), STOR_OK);
    ck_assert_uint_eq(st.kind, STOR_TOKEN_REFRESH);
    ck_assert_str_eq(st.client, "app");
    ck_assert_mem_eq(st.grant, k->grant, 16);
    ck_assert_int_eq(st.expires_at - st.issued_at, 30 * 24 * 3600);

    a = audit_read();
    r = audit_last(a, STOR_EV_LOGIN);
    ck_assert_str_eq(r->rec.detail, "token.issue grant=authorization_code");
    ck_assert_str_eq(r->rec.user, "alice");
    ck_assert_str_eq(r->rec.client, "oauth:app");
    ref_of(t->access, ref);
    ck_assert_mem_eq(r->rec.authz_ref, ref, 16);
    free(a);
    assert_no_secret(t->access);
    assert_no_secret(t->refresh);
    assert_no_secret(code);
    assert_no_secret(app_secret);
    free(k);
    free(t);
}
END_TEST

START_TEST(t_code_no_refresh_grant)
{
    char code[OAUTH_TOKEN_BUFLEN], secret[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp();
    stor_client_t plain;

    world();
    mk_client("plain", GR_CODE, secret, &plain);
    service_code("plain", code);
    ck_assert_int_eq(exchange(&plain, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    ck_assert_str_eq(t->refresh, "");
    ck_assert_int_eq(check(t->access, NULL), OAUTH_OK);
    /* a client that may not use the code flow */
    service_code("other", code);
    other.grants = GR_CC;
    ck_assert_int_eq(exchange(&other, code, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_INVALID);
    free(t);
}
END_TEST

START_TEST(t_code_refusals)
{
    char code[OAUTH_TOKEN_BUFLEN], bad[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp();
    stor_code_t *k = malloc(sizeof(*k));
    uint8_t h[32];

    ck_assert_ptr_nonnull(k);
    world();
    service_code("app", code);
    /* another client, a wrong or missing redirect URI, a wrong verifier: refused, the code stays usable */
    ck_assert_int_eq(exchange(&other, code, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_INVALID);
    ck_assert_str_eq(t->access, "");
    last_login_detail("token.issue grant=authorization_code denied: code of another client", STOR_RES_DENIED);
    ck_assert_int_eq(exchange(&app, code, NULL, T_VERIFIER, t), OAUTH_ERR_INVALID);
    ck_assert_int_eq(exchange(&app, code, "http://localhost:8080/cb", T_VERIFIER, t), OAUTH_ERR_INVALID);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT "x", T_VERIFIER, t), OAUTH_ERR_INVALID);
    last_login_detail("token.issue grant=authorization_code denied: redirect_uri mismatch", STOR_RES_DENIED);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER "x", t), OAUTH_ERR_PKCE);
    last_login_detail("token.issue grant=authorization_code denied: PKCE verifier mismatch", STOR_RES_DENIED);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, "short", t), OAUTH_ERR_PKCE);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, NULL, t), OAUTH_ERR_PKCE);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, "verifier with spaces 0123456789012345678901234", t),
                     OAUTH_ERR_PKCE);
    ck_assert_int_eq(get_code_rec(code, k), STOR_OK);
    ck_assert_uint_eq(k->used, 0);
    /* unknown and malformed codes */
    fresh_value(bad, h);
    ck_assert_int_eq(exchange(&app, bad, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_INVALID);
    last_login_detail("token.issue grant=authorization_code denied: unknown code", STOR_RES_DENIED);
    ck_assert_int_eq(exchange(&app, "abc", T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_INVALID);
    ck_assert_int_eq(exchange(&app, NULL, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_INVALID);
    ck_assert_int_eq(exchange(NULL, code, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_INVAL);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, NULL), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_token_from_code(NULL, &app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_INVAL);
    /* after all that, the right request still works */
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    free(k);
    free(t);
}
END_TEST

START_TEST(t_code_redirect_not_given)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    char code[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp();

    world();
    r->redirect_given = 0;
    code_for(r, "alice", NULL, code);
    /* when sent anyway it must be the one used */
    ck_assert_int_eq(exchange(&app, code, "http://localhost:8080/cb", T_VERIFIER, t), OAUTH_ERR_INVALID);
    ck_assert_int_eq(exchange(&app, code, NULL, T_VERIFIER, t), OAUTH_OK);
    code_for(r, "alice", NULL, code);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    free(r);
    free(t);
}
END_TEST

START_TEST(t_code_expired_and_user)
{
    char code[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp();
    oauth_config_t cfg = {.max_failures = 3, .code_ttl = 5};
    stor_user_t u;

    world();
    fx_oauth(cfg);
    service_code("app", code);
    oauth_int_set_skew(fx.o, 5);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_INVALID);
    last_login_detail("token.issue grant=authorization_code denied: code expired", STOR_RES_DENIED);
    oauth_int_set_skew(fx.o, 0);
    service_code("app", code);
    u = get_user("alice");
    u.status = STOR_USER_SUSPENDED;
    put_user(&u);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_INVALID);
    last_login_detail("token.issue grant=authorization_code denied: user not active", STOR_RES_DENIED);
    free(t);
}
END_TEST

START_TEST(t_code_reuse)
{
    char code[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp(), *t2 = resp();

    world();
    service_code("app", code);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    ck_assert_int_eq(refresh(&app, t->refresh, t2), OAUTH_OK); /* more tokens of the grant */
    ck_assert_int_eq(check(t2->access, NULL), OAUTH_OK);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_REUSED);
    ck_assert_str_eq(t->access, "");
    last_login_detail("token.issue grant=authorization_code denied: code reused: grant revoked", STOR_RES_DENIED);
    ck_assert_int_eq(check(t2->access, NULL), OAUTH_ERR_INVALID);
    ck_assert_int_eq(refresh(&app, t2->refresh, t), OAUTH_ERR_INVALID);
    /* a third time: still reuse */
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_REUSED);
    free(t);
    free(t2);
}
END_TEST

/* ---- credential tokens -------------------------------------------------------------------- */

static int recent_signins_alice(stor_txn_t *t, void *arg)
{
    return stor_txn_recent_get(t, STOR_RECENT_SIGNINS, "alice", arg);
}

static int recent_signs_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_recent_get(t, STOR_RECENT_SIGNS, "c-pin", arg);
}

static void use_of(oauth_sign_use_t *u, const uint8_t *const *d, size_t n)
{
    memset(u, 0, sizeof(*u));
    u->user = "alice";
    u->cred = "c-pin";
    u->hash_alg = SHA256_OID;
    u->digests = d;
    u->digest_len = 32;
    u->n_digests = n;
    u->client = "10.0.0.9";
    u->detail = "1.2.840.10045.4.3.2";
}

static void credential_token(uint32_t n, char code[OAUTH_TOKEN_BUFLEN], oauth_token_response_t *t)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c-pin", n);

    code_for(r, "alice", T_PIN, code);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    ck_assert_str_eq(t->authz_details, r->authz_details);
    free(r);
}

START_TEST(t_credential_token)
{
    char code[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp();
    oauth_principal_t p;
    stor_sad_t *s = malloc(sizeof(*s));
    uint8_t d0[32], d1[32], dx[32], h[32], ref[16];
    const uint8_t *one[1], *both[2];
    oauth_sign_use_t use;
    stor_token_t st;
    int64_t now = oauth_now();

    ck_assert_ptr_nonnull(s);
    world();
    credential_token(2, code, t);
    ck_assert_uint_eq(t->expires_in, 300);
    ck_assert_uint_eq(t->scope, STOR_SCOPE_CREDENTIAL);
    ck_assert_str_eq(t->cred, "c-pin");
    ck_assert_str_eq(t->refresh, "");
    ck_assert_int_eq(check(t->access, &p), OAUTH_OK);
    ck_assert_uint_eq(p.scope, STOR_SCOPE_CREDENTIAL);
    ck_assert_str_eq(p.cred, "c-pin");
    ck_assert_str_eq(p.user, "alice");
    ck_assert_str_eq(p.client, "app");
    ck_assert_int_ge(p.expires_at, now + 300);
    sha256_of(t->access, strlen(t->access), h);
    ck_assert_int_eq(get_token(h, &st), STOR_OK);
    ck_assert_str_eq(st.cred, "c-pin");
    /* the pending SAD became a SAD under the token's hash, with the token's expiry */
    ck_assert_int_eq(get_sad(h, s), STOR_OK);
    ck_assert_int_eq(s->expires_at, st.expires_at);
    ck_assert_uint_eq(s->remaining, 2);
    sha256_of(code, strlen(code), h);
    ck_assert_int_eq(get_sad(h, s), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(get_pending_sad(h, s), STOR_ERR_NOTFOUND);

    /* the token value is the SAD of signHash */
    req_digest(0, d0);
    req_digest(1, d1);
    req_digest(7, dx);
    one[0] = dx;
    use_of(&use, one, 1);
    ck_assert_int_eq(oauth_sad_consume(fx.o, t->access, strlen(t->access), &use, ref), OAUTH_ERR_NOT_AUTHORIZED);
    one[0] = d1;
    ck_assert_int_eq(oauth_sad_consume(fx.o, t->access, strlen(t->access), &use, ref), OAUTH_OK);
    both[0] = d0;
    both[1] = d1;
    use_of(&use, both, 2);
    ck_assert_int_eq(oauth_sad_consume(fx.o, t->access, strlen(t->access), &use, ref), OAUTH_ERR_EXHAUSTED);
    use_of(&use, both, 1);
    ck_assert_int_eq(oauth_sad_consume(fx.o, t->access, strlen(t->access), &use, ref), OAUTH_OK);
    ck_assert_int_eq(oauth_sad_consume(fx.o, t->access, strlen(t->access), &use, ref), OAUTH_ERR_EXHAUSTED);
    /* each spend (not the refusals) is one signing event of the credential, newest first (/account) */
    stor_recent_t *rec = calloc(1, sizeof(*rec));
    ck_assert_ptr_nonnull(rec);
    ck_assert_int_eq(stor_read(fx.stor, recent_signs_fn, rec), STOR_OK);
    ck_assert_uint_eq(rec->n, 2);
    ck_assert_uint_eq(rec->what[0], 1);
    ck_assert_uint_eq(rec->what[1], 1);
    ck_assert_str_eq(rec->client[0], "10.0.0.9");
    ck_assert_uint_eq(rec->result[0], STOR_RES_OK);
    ck_assert(rec->time_ms[0] >= (int64_t)now * 1000);
    free(rec);
    /* no refresh for a credential token, and the code cannot be exchanged again */
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_REUSED);
    free(s);
    free(t);
}
END_TEST

/* A code is no SAD: before the exchange neither signHash nor extendTransaction finds anything under it. */
START_TEST(t_code_is_not_a_sad)
{
    char code[OAUTH_TOKEN_BUFLEN], fresh[OAUTH_TOKEN_BUFLEN];
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c-pin", 2);
    oauth_token_response_t *t = resp();
    uint8_t d0[32], ref[16];
    const uint8_t *one[1] = {d0};
    oauth_sign_use_t use;
    oauth_sad_request_t ext;
    unsigned exp = 0;

    world();
    req_digest(0, d0);
    use_of(&use, one, 1);
    code_for(r, "alice", T_PIN, code);
    ck_assert_int_eq(oauth_sad_consume(fx.o, code, strlen(code), &use, ref), OAUTH_ERR_INVALID);
    memset(&ext, 0, sizeof(ext));
    ext.user = "alice";
    ext.cred = "c-pin";
    ext.client = "10.0.0.9";
    ck_assert_int_eq(oauth_sad_extend(fx.o, code, strlen(code), &ext, fresh, &exp), OAUTH_ERR_INVALID);
    /* neither attempt spent or changed the authorization: the client still redeems the code, with its verifier */
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    ck_assert_int_eq(oauth_sad_consume(fx.o, code, strlen(code), &use, ref), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_sad_consume(fx.o, t->access, strlen(t->access), &use, ref), OAUTH_OK);
    free(t);
    free(r);
}
END_TEST

START_TEST(t_credential_token_reuse_and_revoke)
{
    char code[OAUTH_TOKEN_BUFLEN], code2[OAUTH_TOKEN_BUFLEN], access[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp();
    oauth_principal_t who;
    stor_sad_t *s = malloc(sizeof(*s));
    uint8_t h[32], d0[32], ref[16];
    const uint8_t *one[1] = {d0};
    oauth_sign_use_t use;

    ck_assert_ptr_nonnull(s);
    world();
    req_digest(0, d0);
    use_of(&use, one, 1);
    /* reuse of the code deletes the credential token's SAD */
    credential_token(1, code, t);
    memcpy(access, t->access, sizeof(access));
    sha256_of(access, strlen(access), h);
    ck_assert_int_eq(get_sad(h, s), STOR_OK);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_REUSED);
    ck_assert_int_eq(get_sad(h, s), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(check(access, NULL), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_sad_consume(fx.o, access, strlen(access), &use, ref), OAUTH_ERR_INVALID);

    /* revocation by the client deletes it too */
    credential_token(1, code2, t);
    sha256_of(t->access, strlen(t->access), h);
    ck_assert_int_eq(revoke(&app, t->access, OAUTH_HINT_ACCESS), OAUTH_OK);
    ck_assert_int_eq(get_sad(h, s), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(oauth_sad_consume(fx.o, t->access, strlen(t->access), &use, ref), OAUTH_ERR_INVALID);

    /* and so does auth/revoke by the user */
    credential_token(1, code2, t);
    sha256_of(t->access, strlen(t->access), h);
    memset(&who, 0, sizeof(who));
    snprintf(who.user, sizeof(who.user), "alice");
    ck_assert_int_eq(oauth_token_revoke(fx.o, &who, t->access, strlen(t->access), OAUTH_HINT_NONE, "c"), OAUTH_OK);
    ck_assert_int_eq(get_sad(h, s), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(check(t->access, NULL), OAUTH_ERR_INVALID);
    free(s);
    free(t);
}
END_TEST

/* ---- refresh_token -------------------------------------------------------------------------- */

START_TEST(t_refresh_rotation)
{
    char code[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp(), *t2 = resp(), *t3 = resp();
    stor_token_t old, fresh;
    uint8_t h[32];

    world();
    service_code("app", code);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    ck_assert_int_eq(refresh(&app, t->refresh, t2), OAUTH_OK);
    ck_assert_uint_eq(t2->expires_in, 3600);
    ck_assert_uint_eq(t2->scope, STOR_SCOPE_SERVICE);
    ck_assert_str_ne(t2->refresh, t->refresh);
    ck_assert_str_ne(t2->access, t->access);
    last_login_detail("token.issue grant=refresh_token", STOR_RES_OK);
    sha256_of(t->refresh, strlen(t->refresh), h);
    ck_assert_int_eq(get_token(h, &old), STOR_OK);
    ck_assert_uint_eq(old.rotated, 1);
    ck_assert_uint_eq(old.revoked, 0);
    sha256_of(t2->refresh, strlen(t2->refresh), h);
    ck_assert_int_eq(get_token(h, &fresh), STOR_OK);
    ck_assert_int_eq(fresh.expires_at, old.expires_at); /* rotation does not extend the login */
    ck_assert_mem_eq(fresh.grant, old.grant, 16);
    ck_assert_int_eq(check(t->access, NULL), OAUTH_OK);  /* earlier access tokens live on */
    ck_assert_int_eq(check(t2->access, NULL), OAUTH_OK);
    ck_assert_int_eq(refresh(&app, t2->refresh, t3), OAUTH_OK);

    /* the rotated token again: the whole grant goes */
    ck_assert_int_eq(refresh(&app, t->refresh, t2), OAUTH_ERR_REUSED);
    ck_assert_str_eq(t2->access, "");
    last_login_detail("token.issue grant=refresh_token denied: rotated refresh token reused: grant revoked",
                      STOR_RES_DENIED);
    ck_assert_int_eq(check(t->access, NULL), OAUTH_ERR_INVALID);
    ck_assert_int_eq(check(t3->access, NULL), OAUTH_ERR_INVALID);
    ck_assert_int_eq(refresh(&app, t3->refresh, t2), OAUTH_ERR_INVALID);
    free(t);
    free(t2);
    free(t3);
}
END_TEST

START_TEST(t_refresh_refusals)
{
    char code[OAUTH_TOKEN_BUFLEN], bad[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp(), *t2 = resp();
    oauth_tokens_t lt;
    uint8_t h[32];
    stor_user_t u;

    world();
    service_code("app", code);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    ck_assert_int_eq(refresh(&other, t->refresh, t2), OAUTH_ERR_INVALID);
    last_login_detail("token.issue grant=refresh_token denied: refresh token of another client", STOR_RES_DENIED);
    ck_assert_int_eq(refresh(&app, t->access, t2), OAUTH_ERR_INVALID);
    fresh_value(bad, h);
    ck_assert_int_eq(refresh(&app, bad, t2), OAUTH_ERR_INVALID);
    ck_assert_int_eq(refresh(&app, "abc", t2), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_refresh(fx.o, &app, NULL, 0, t2), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_refresh(fx.o, NULL, t->refresh, strlen(t->refresh), t2), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_token_refresh(fx.o, &app, t->refresh, strlen(t->refresh), NULL), OAUTH_ERR_INVAL);
    /* auth/login does not take an OAuth client's refresh token (it would skip the rotation) */
    ck_assert_int_eq(oauth_login_refresh(fx.o, t->refresh, strlen(t->refresh), "c", &lt), OAUTH_ERR_INVALID);
    last_login_detail("refresh: issued to an OAuth client", STOR_RES_DENIED);
    /* a client that lost the refresh_token grant */
    app.grants = GR_CODE;
    ck_assert_int_eq(refresh(&app, t->refresh, t2), OAUTH_ERR_INVALID);
    app.grants = GR_CODE | GR_REFRESH;
    /* a suspended user */
    u = get_user("alice");
    u.status = STOR_USER_SUSPENDED;
    put_user(&u);
    ck_assert_int_eq(refresh(&app, t->refresh, t2), OAUTH_ERR_INVALID);
    u.status = STOR_USER_ACTIVE;
    put_user(&u);
    /* expired */
    oauth_int_set_skew(fx.o, 30 * 24 * 3600);
    ck_assert_int_eq(refresh(&app, t->refresh, t2), OAUTH_ERR_EXPIRED);
    oauth_int_set_skew(fx.o, 0);
    /* none of the refusals used the token up */
    ck_assert_int_eq(refresh(&app, t->refresh, t2), OAUTH_OK);
    /* revoked */
    ck_assert_int_eq(revoke(&app, t2->refresh, OAUTH_HINT_REFRESH), OAUTH_OK);
    ck_assert_int_eq(refresh(&app, t2->refresh, t), OAUTH_ERR_INVALID);
    last_login_detail("token.issue grant=refresh_token denied: revoked", STOR_RES_DENIED);
    free(t);
    free(t2);
}
END_TEST

/* ---- client_credentials ------------------------------------------------------------------------ */

START_TEST(t_client_credentials)
{
    oauth_token_response_t *t = resp();
    oauth_principal_t p, who;
    auds_t *a;
    const aud_t *r;

    world();
    ck_assert_int_eq(oauth_token_client_credentials(fx.o, &other, t), OAUTH_OK);
    ck_assert_str_eq(t->refresh, "");
    ck_assert_uint_eq(t->expires_in, 3600);
    ck_assert_uint_eq(t->scope, STOR_SCOPE_SERVICE);
    ck_assert_int_eq(check(t->access, &p), OAUTH_OK);
    ck_assert_str_eq(p.user, "");
    ck_assert_str_eq(p.client, "other");
    ck_assert_uint_eq(p.scope, STOR_SCOPE_SERVICE);
    a = audit_read();
    r = audit_last(a, STOR_EV_LOGIN);
    ck_assert_str_eq(r->rec.detail, "token.issue grant=client_credentials");
    ck_assert_str_eq(r->rec.user, "");
    ck_assert_str_eq(r->rec.client, "oauth:other");
    free(a);
    /* a client without the grant */
    ck_assert_int_eq(oauth_token_client_credentials(fx.o, &app, t), OAUTH_ERR_INVALID);
    ck_assert_str_eq(t->access, "");
    ck_assert_int_eq(oauth_token_client_credentials(fx.o, NULL, t), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_token_client_credentials(fx.o, &other, NULL), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_token_client_credentials(NULL, &other, t), OAUTH_ERR_INVAL);

    /* the client revokes its own token through auth/revoke */
    ck_assert_int_eq(oauth_token_client_credentials(fx.o, &other, t), OAUTH_OK);
    ck_assert_int_eq(check(t->access, &who), OAUTH_OK);
    ck_assert_int_eq(oauth_token_revoke(fx.o, &who, t->access, strlen(t->access), OAUTH_HINT_NONE, "c"), OAUTH_OK);
    ck_assert_int_eq(check(t->access, NULL), OAUTH_ERR_INVALID);

    /* a removed client's tokens die with it, also when the id is registered again */
    ck_assert_int_eq(oauth_token_client_credentials(fx.o, &other, t), OAUTH_OK);
    ck_assert_int_eq(oauth_client_remove(fx.o, "other", "op"), OAUTH_OK);
    ck_assert_int_eq(check(t->access, NULL), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_client_credentials(fx.o, &other, t), OAUTH_ERR_INVALID);
    last_login_detail("token.issue grant=client_credentials denied: unknown client", STOR_RES_DENIED);
    ck_assert_int_eq(oauth_token_client_credentials(fx.o, &app, t), OAUTH_ERR_INVALID);
    free(t);
}
END_TEST

START_TEST(t_client_readded)
{
    oauth_token_response_t *t = resp(), *t2 = resp();
    char secret[OAUTH_TOKEN_BUFLEN];
    stor_client_t again;

    world();
    ck_assert_int_eq(oauth_token_client_credentials(fx.o, &other, t), OAUTH_OK);
    ck_assert_int_eq(oauth_client_remove(fx.o, "other", "op"), OAUTH_OK);
    oauth_int_set_skew(fx.o, 1);
    mk_client("other", GR_CC, secret, &again);
    ck_assert_int_eq(check(t->access, NULL), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_client_credentials(fx.o, &again, t2), OAUTH_OK);
    ck_assert_int_eq(check(t2->access, NULL), OAUTH_OK);
    free(t);
    free(t2);
}
END_TEST

/* ---- revocation by a client ------------------------------------------------------------------------ */

START_TEST(t_revoke_by_client)
{
    char code[OAUTH_TOKEN_BUFLEN], bad[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp(), *t2 = resp(), *mine = resp();
    uint8_t h[32];
    auds_t *a;
    const aud_t *r;

    world();
    service_code("app", code);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    service_code("other", code);
    ck_assert_int_eq(exchange(&other, code, T_REDIRECT, T_VERIFIER, mine), OAUTH_OK);

    /* an access token: only itself (its refresh token lives on) */
    ck_assert_int_eq(revoke(&app, t->access, OAUTH_HINT_ACCESS), OAUTH_OK);
    ck_assert_int_eq(check(t->access, NULL), OAUTH_ERR_INVALID);
    ck_assert_int_eq(refresh(&app, t->refresh, t2), OAUTH_OK);
    ck_assert_int_eq(check(t2->access, NULL), OAUTH_OK);
    a = audit_read();
    r = audit_last(a, STOR_EV_TOKEN_REVOKE);
    ck_assert_str_eq(r->rec.detail, "access");
    ck_assert_str_eq(r->rec.client, "oauth:app");
    ck_assert_str_eq(r->rec.user, "alice");
    ck_assert_uint_eq(r->rec.result, STOR_RES_OK);
    free(a);

    /* a refresh token: the whole grant, whatever the hint says */
    ck_assert_int_eq(revoke(&app, t2->refresh, OAUTH_HINT_ACCESS), OAUTH_OK);
    ck_assert_int_eq(check(t2->access, NULL), OAUTH_ERR_INVALID);
    ck_assert_int_eq(refresh(&app, t2->refresh, t), OAUTH_ERR_INVALID);

    /* another client's token: OK, and nothing changes */
    ck_assert_int_eq(revoke(&app, mine->access, OAUTH_HINT_NONE), OAUTH_OK);
    ck_assert_int_eq(revoke(&app, mine->refresh, OAUTH_HINT_REFRESH), OAUTH_OK);
    ck_assert_int_eq(check(mine->access, NULL), OAUTH_OK);
    a = audit_read();
    r = audit_last(a, STOR_EV_TOKEN_REVOKE);
    ck_assert_str_eq(r->rec.detail, "token of another client");
    ck_assert_uint_eq(r->rec.result, STOR_RES_DENIED);
    ck_assert_str_eq(r->rec.user, "");
    free(a);
    ck_assert_int_eq(refresh(&other, mine->refresh, t), OAUTH_OK);

    /* unknown and malformed tokens: OK */
    fresh_value(bad, h);
    ck_assert_int_eq(revoke(&app, bad, OAUTH_HINT_NONE), OAUTH_OK);
    ck_assert_int_eq(revoke(&app, "not-a-token", OAUTH_HINT_NONE), OAUTH_OK);
    ck_assert_int_eq(oauth_token_revoke_by_client(fx.o, &app, NULL, 0, OAUTH_HINT_NONE), OAUTH_OK);
    /* revoking twice is fine */
    ck_assert_int_eq(revoke(&app, t2->refresh, OAUTH_HINT_NONE), OAUTH_OK);
    /* bad arguments */
    ck_assert_int_eq(revoke(&app, bad, (oauth_hint_t)3), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_token_revoke_by_client(fx.o, NULL, bad, strlen(bad), OAUTH_HINT_NONE), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_token_revoke_by_client(NULL, &app, bad, strlen(bad), OAUTH_HINT_NONE), OAUTH_ERR_INVAL);
    assert_no_secret(mine->refresh);
    assert_no_secret(other_secret);
    free(t);
    free(t2);
    free(mine);
}
END_TEST

/* A whole flow, then every secret it handled is looked for in the audit log and the database. */
START_TEST(t_no_secrets_stored)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c-pin", 1);
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN], uri[128], otp[7];
    oauth_token_response_t *t = resp();
    unsigned exp;

    world();
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri, &exp), OAUTH_OK);
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri, r), OAUTH_OK);
    reset_totp("alice");
    otp_current(otp);
    ck_assert_int_eq(oauth_session_login_new(fx.o, r, "alice", "wrong-pw-123", 12, otp, 6, T_ADDR, sid, csrf),
                     OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_session_login_new(fx.o, r, "alice", T_PW, strlen(T_PW), otp, 6, T_ADDR, sid, csrf),
                     OAUTH_OK);
    /* both sign-ins recorded for /account, newest first: an OAuth client's sign-in page */
    stor_recent_t *rec = calloc(1, sizeof(*rec));
    ck_assert_ptr_nonnull(rec);
    ck_assert_int_eq(stor_read(fx.stor, recent_signins_alice, rec), STOR_OK);
    ck_assert_uint_eq(rec->n, 2);
    ck_assert_uint_eq(rec->result[0], STOR_RES_OK);
    ck_assert_uint_eq(rec->result[1], STOR_RES_DENIED);
    ck_assert_uint_eq(rec->what[0], STOR_SIGNIN_OAUTH);
    ck_assert_str_eq(rec->client[0], "oauth:app@" T_ADDR);
    free(rec);
    ck_assert_int_eq(oauth_session_decide(fx.o, sid, 1, "9999-wrong-pin", 14, T_ADDR, code), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_session_decide(fx.o, sid, 1, T_PIN, strlen(T_PIN), T_ADDR, code), OAUTH_OK);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    assert_no_secret(sid);
    assert_no_secret(csrf);
    assert_no_secret(uri + strlen(OAUTH_PAR_URN));
    assert_no_secret(code);
    assert_no_secret(t->access);
    assert_no_secret(T_PW);
    assert_no_secret("wrong-pw-123");
    assert_no_secret(T_PIN);
    assert_no_secret("9999-wrong-pin");
    assert_no_secret(T_VERIFIER);
    assert_no_secret(app_secret);
    free(r);
    free(t);
}
END_TEST

/* ---- odds and ends ------------------------------------------------------------------------------ */

START_TEST(t_new_codes_strerror)
{
    ck_assert_str_eq(oauth_strerror(OAUTH_ERR_RATE), "too many attempts from this address");
    ck_assert_str_eq(oauth_strerror(OAUTH_ERR_FULL), "too many pending requests or sessions");
    ck_assert_str_eq(oauth_strerror(OAUTH_ERR_PKCE), "code_verifier does not match the code_challenge");
    ck_assert_str_eq(oauth_strerror(OAUTH_ERR_REUSED), "authorization code or refresh token used twice");
    ck_assert_str_eq(oauth_strerror(-116), "unknown oauth error");
    /* our codes pass through a storage callback's result; storage codes do not */
    ck_assert_int_eq(oauth_rc(OAUTH_ERR_REUSED), OAUTH_ERR_REUSED);
    ck_assert_int_eq(oauth_rc(OAUTH_ERR_RATE), OAUTH_ERR_RATE);
    ck_assert_int_eq(oauth_rc(-116), OAUTH_ERR_STORAGE);
    ck_assert_int_eq(oauth_rc(STOR_ERR_FULL), OAUTH_ERR_STORAGE);
    /* but the database out of reach is told apart (503 with Retry-After: 1 at the API) */
    ck_assert_int_eq(oauth_rc(STOR_ERR_UNAVAILABLE), OAUTH_ERR_UNAVAILABLE);
    ck_assert_int_eq(oauth_rc(STOR_ERR_IO), OAUTH_ERR_STORAGE);
    ck_assert_str_eq(oauth_strerror(OAUTH_ERR_UNAVAILABLE), "the database cannot be reached now");
}
END_TEST

START_TEST(t_token_without_user_or_client)
{
    stor_token_t tok;
    char value[OAUTH_TOKEN_BUFLEN];

    memset(&tok, 0, sizeof(tok));
    fresh_value(value, tok.hash);
    tok.kind = STOR_TOKEN_ACCESS;
    tok.scope = STOR_SCOPE_SERVICE;
    tok.issued_at = oauth_now();
    tok.expires_at = oauth_now() + 100;
    put_token(&tok);
    ck_assert_int_eq(check(value, NULL), OAUTH_ERR_INVALID);
    /* a client that does not exist */
    snprintf(tok.client, sizeof(tok.client), "ghost");
    put_token(&tok);
    ck_assert_int_eq(check(value, NULL), OAUTH_ERR_INVALID);
}
END_TEST

typedef struct {
    pthread_t th;
    const char *code;
    int rc;
} racer_t;

static void *race_exchange(void *arg)
{
    racer_t *r = arg;
    oauth_token_response_t *t = resp();

    r->rc = exchange(&app, r->code, T_REDIRECT, T_VERIFIER, t);
    free(t);
    return NULL;
}

/* Concurrent exchanges of one code: one wins, the others are reuse (which revokes the winner's tokens). */
START_TEST(t_code_race)
{
    char code[OAUTH_TOKEN_BUFLEN];
    racer_t r[4];
    int ok = 0, reused = 0;

    world();
    service_code("app", code);
    for (int i = 0; i < 4; i++) {
        r[i].code = code;
        ck_assert_int_eq(pthread_create(&r[i].th, NULL, race_exchange, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(r[i].th, NULL), 0);
        ok += r[i].rc == OAUTH_OK;
        reused += r[i].rc == OAUTH_ERR_REUSED;
    }
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(reused, 3);
}
END_TEST

typedef struct {
    pthread_t th;
    const char *sid;
    char code[OAUTH_TOKEN_BUFLEN];
    int rc;
} decider_t;

static void *race_decide(void *arg)
{
    decider_t *d = arg;

    d->rc = oauth_session_decide(fx.o, d->sid, 1, T_PIN, strlen(T_PIN), T_ADDR, d->code);
    return NULL;
}

/* A consent posted twice at once gives one code. */
START_TEST(t_decide_race)
{
    oauth_authz_request_t *req = mk_req("app", STOR_SCOPE_CREDENTIAL, "c-pin", 1);
    char sid[OAUTH_TOKEN_BUFLEN];
    decider_t d[3];
    int ok = 0, invalid = 0;

    world();
    session_for(req, "alice", sid);
    for (int i = 0; i < 3; i++) {
        d[i].sid = sid;
        ck_assert_int_eq(pthread_create(&d[i].th, NULL, race_decide, &d[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(pthread_join(d[i].th, NULL), 0);
        ok += d[i].rc == OAUTH_OK;
        invalid += d[i].rc == OAUTH_ERR_INVALID;
    }
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(invalid, 2);
    free(req);
}
END_TEST

/* A storage failure: the answer is OAUTH_ERR_STORAGE and nothing is half-done; a retry works. */
START_TEST(t_storage_failures)
{
    oauth_authz_request_t *req = mk_req("app", STOR_SCOPE_CREDENTIAL, "c-pin", 1);
    stor_client_t *c = calloc(1, sizeof(*c)), got;
    char secret[OAUTH_TOKEN_BUFLEN] = "x", sid[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN];
    oauth_token_response_t *t = resp(), *t2 = resp();
    stor_code_t *k = malloc(sizeof(*k));
    stor_cred_t *cr = malloc(sizeof(*cr));
    char otp[7];

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_nonnull(cr);
    world();
    snprintf(c->id, sizeof(c->id), "svc");
    c->scopes = 1u << STOR_SCOPE_SERVICE;
    c->grants = GR_CC;
    stor_int_fail_commits(fx.stor, 1);
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_STORAGE);
    ck_assert_str_eq(secret, "");
    ck_assert_int_eq(oauth_client_get(fx.o, "svc", &got), OAUTH_ERR_INVALID);
    stor_int_fail_commits(fx.stor, 1);
    ck_assert_int_eq(oauth_client_remove(fx.o, "other", "op"), OAUTH_ERR_STORAGE);
    ck_assert_int_eq(oauth_client_get(fx.o, "other", &got), OAUTH_OK);

    /* login: the OTP step is not spent, no session is started */
    reset_totp("alice");
    otp_current(otp);
    stor_int_fail_commits(fx.stor, 1);
    ck_assert_int_eq(oauth_session_login_new(fx.o, req, "alice", T_PW, strlen(T_PW), otp, 6, T_ADDR, sid, secret),
                     OAUTH_ERR_STORAGE);
    ck_assert_str_eq(sid, "");
    ck_assert_uint_eq(n_sessions(), 0);
    ck_assert_int_eq(get_user("alice").totp_last_step, 0);
    ck_assert_int_eq(oauth_session_login_new(fx.o, req, "alice", T_PW, strlen(T_PW), otp, 6, T_ADDR, sid, secret),
                     OAUTH_OK);

    /* consent: no code, no failure counted, the session stays for a retry */
    stor_int_fail_commits(fx.stor, 1);
    ck_assert_int_eq(oauth_session_decide(fx.o, sid, 1, T_PIN, strlen(T_PIN), T_ADDR, code), OAUTH_ERR_STORAGE);
    ck_assert_str_eq(code, "");
    ck_assert_int_eq(oauth_session_decide(fx.o, sid, 1, T_PIN, strlen(T_PIN), T_ADDR, code), OAUTH_OK);

    /* exchange: the code stays unused, the pending SAD where it was */
    stor_int_fail_commits(fx.stor, 1);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_ERR_STORAGE);
    ck_assert_str_eq(t->access, "");
    ck_assert_int_eq(get_code_rec(code, k), STOR_OK);
    ck_assert_uint_eq(k->used, 0);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);

    /* refresh, client credentials, revocation */
    service_code("app", code);
    ck_assert_int_eq(exchange(&app, code, T_REDIRECT, T_VERIFIER, t), OAUTH_OK);
    stor_int_fail_commits(fx.stor, 1);
    ck_assert_int_eq(refresh(&app, t->refresh, t2), OAUTH_ERR_STORAGE);
    ck_assert_int_eq(refresh(&app, t->refresh, t2), OAUTH_OK); /* not rotated by the failed attempt */
    stor_int_fail_commits(fx.stor, 1);
    ck_assert_int_eq(oauth_token_client_credentials(fx.o, &other, t), OAUTH_ERR_STORAGE);
    stor_int_fail_commits(fx.stor, 1);
    ck_assert_int_eq(revoke(&app, t2->access, OAUTH_HINT_NONE), OAUTH_ERR_STORAGE);
    ck_assert_int_eq(check(t2->access, NULL), OAUTH_OK);
    free(req);
    free(c);
    free(t);
    free(t2);
    free(k);
    free(cr);
}
END_TEST

Suite *suite_grant(void)
{
    Suite *s = suite_create("grant");
    TCase *tc = tcase_create("grant");

    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, t_code_service);
    tcase_add_test(tc, t_code_no_refresh_grant);
    tcase_add_test(tc, t_code_refusals);
    tcase_add_test(tc, t_code_redirect_not_given);
    tcase_add_test(tc, t_code_expired_and_user);
    tcase_add_test(tc, t_code_reuse);
    tcase_add_test(tc, t_credential_token);
    tcase_add_test(tc, t_credential_token_reuse_and_revoke);
    tcase_add_test(tc, t_code_is_not_a_sad);
    tcase_add_test(tc, t_refresh_rotation);
    tcase_add_test(tc, t_refresh_refusals);
    tcase_add_test(tc, t_client_credentials);
    tcase_add_test(tc, t_client_readded);
    tcase_add_test(tc, t_revoke_by_client);
    tcase_add_test(tc, t_no_secrets_stored);
    tcase_add_test(tc, t_new_codes_strerror);
    tcase_add_test(tc, t_token_without_user_or_client);
    tcase_add_test(tc, t_code_race);
    tcase_add_test(tc, t_decide_race);
    tcase_add_test(tc, t_storage_failures);
    suite_add_tcase(s, tc);
    return s;
}
