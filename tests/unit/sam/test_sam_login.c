/*
 * test_sam_login.c - a compromised front end against csc-sam's LOGIN (the pages' sign-in) and the TOTP secrets at
 * rest: it speaks the protocol directly to the fixture's in-process SAM (no rate limit of the front end in front).
 * A wrong password, a wrong code, a replayed time step, a locked, an enrolling user, a request that is not one, a
 * field over its bound: refused by csc-sam, audited, and no session stored; the right factors get a session csc-sam
 * stored (the front end only reads it). The provisioned users' clear secrets were sealed when the SAM started
 * (audited), and a sealed secret copied into another user's record does not open. API_LOGIN (auth/login with a
 * password) likewise: csc-sam checks the password, counts, locks out and records, and issues the tokens.
 * ctest: unit_sam_login.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csc_fixture.h"
#include "sam_client.h"
#include "sam_server.h"

static cfx_t f;

static void setup(void)
{
    cfx_open(&f, NULL);
}

static void teardown(void)
{
    cfx_close(&f);
}

typedef struct {
    const char *name;
    stor_user_t *u;
} uget_t;

static int user_get_fn(stor_txn_t *t, void *arg)
{
    uget_t *g = arg;
    return stor_txn_user_get(t, g->name, g->u);
}

static stor_user_t *user_get(const char *name)
{
    uget_t g = {name, calloc(1, sizeof(stor_user_t))};
    ck_assert_ptr_nonnull(g.u);
    ck_assert_int_eq(stor_read(f.stor, user_get_fn, &g), STOR_OK);
    return g.u;
}

static int user_put_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_user_put(t, arg, 0);
}

static void user_put(stor_user_t *u)
{
    ck_assert_int_eq(stor_write(f.stor, user_put_fn, u), STOR_OK);
}

/* LOGIN as the front end would send it (req: the approval page's unless given); sid/csrf of a reply. */
/* rq NULL: the account page's request; raw: bytes sent as they are instead of rq encoded. */
static unsigned login_raw(const char *user, const char *pw, const char *otp, const char *addr,
                          const oauth_authz_request_t *rq, const uint8_t *raw, size_t raw_len,
                          char sid[OAUTH_TOKEN_BUFLEN], uint32_t *refusal)
{
    sam_builder_t b;
    sam_rbuf_t rb;
    sam_msg_t reply;
    const uint8_t *msg;
    size_t len;
    oauth_authz_request_t *req = calloc(1, sizeof(*req));
    ck_assert_ptr_nonnull(req);
    if (rq != NULL)
        memcpy(req, rq, sizeof(*req));
    else {
        snprintf(req->client_id, sizeof(req->client_id), "%s", OAUTH_APPROVAL_PAGE_CLIENT);
        req->scope = STOR_SCOPE_SERVICE;
    }
    memset(&rb, 0, sizeof(rb));
    *refusal = 0;
    sid[0] = '\0';
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_LOGIN, sam_client_next_id(f.sam)), SAM_OK);
    sam_put_str(&b, SAM_T_USER, user);
    sam_put_str(&b, SAM_T_OTP, otp);
    sam_put_str(&b, SAM_T_ADDR, addr);
    sam_put_str(&b, SAM_T_PASSWORD, pw);
    if (raw != NULL)
        sam_put_bytes(&b, SAM_T_AUTHZ_REQ, raw, raw_len);
    else {
        size_t n = 0;
        uint8_t *enc = malloc(OAUTH_REQ_ENC_MAX);
        ck_assert_ptr_nonnull(enc);
        ck_assert_int_eq(oauth_req_encode(req, enc, OAUTH_REQ_ENC_MAX, &n), OAUTH_OK);
        sam_put_bytes(&b, SAM_T_AUTHZ_REQ, enc, n);
        free(enc);
    }
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(f.sam, msg, len, &rb, &reply), SAM_OK);
    unsigned op = reply.op;
    if (op == SAM_OP_REFUSED)
        ck_assert_int_eq(sam_get_u32(&reply, SAM_T_REFUSAL, refusal), SAM_OK);
    else if (op == (SAM_OP_LOGIN | SAM_OP_REPLY))
        ck_assert_int_eq(sam_get_text(&reply, SAM_T_SESSION, sid, OAUTH_TOKEN_BUFLEN), SAM_OK);
    sam_build_free(&b);
    sam_rbuf_free(&rb);
    free(req);
    return op;
}

static unsigned login(const char *user, const char *pw, const char *otp, const char *addr,
                      char sid[OAUTH_TOKEN_BUFLEN], uint32_t *refusal)
{
    return login_raw(user, pw, otp, addr, NULL, NULL, 0, sid, refusal);
}

#define OK_REPLY (SAM_OP_LOGIN | SAM_OP_REPLY)

/* The right factors: csc-sam stores the session (the front end reads it by the id it got), audited OK; the same
 * time step again is a replay. */
START_TEST(t_login_and_replay)
{
    char otp[7], sid[OAUTH_TOKEN_BUFLEN];
    uint32_t refusal;
    oauth_session_view_t *v = calloc(1, sizeof(*v));
    ck_assert_ptr_nonnull(v);
    unsigned ok = cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_OK, NULL);
    cfx_otp(&f, otp);
    ck_assert_uint_eq(login(CFX_USER, CFX_PASSWORD, otp, "192.0.2.1", sid, &refusal), OK_REPLY);
    ck_assert_uint_gt(strlen(sid), 20);
    ck_assert_int_eq(oauth_session_get(f.oauth, sid, v), OAUTH_OK);
    ck_assert_str_eq(v->user, CFX_USER);
    ck_assert_str_eq(v->req.client_id, OAUTH_APPROVAL_PAGE_CLIENT);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_OK, NULL), ok + 1);
    unsigned denied = cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_DENIED, NULL);
    ck_assert_uint_eq(login(CFX_USER, CFX_PASSWORD, otp, "192.0.2.2", sid, &refusal), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_str_eq(sid, "");
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_DENIED, NULL), denied + 1);
    free(v);
}
END_TEST

/* Wrong password, wrong code, an unknown name: one refusal, audited, counted on the user; at max_failures the user
 * is locked and then the right factors are refused too. */
START_TEST(t_wrong_factors_lock)
{
    char otp[7], sid[OAUTH_TOKEN_BUFLEN], addr[32];
    uint32_t refusal;
    unsigned denied = cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_DENIED, NULL);
    cfx_otp(&f, otp);
    ck_assert_uint_eq(login(CFX_USER, "not-the-password", otp, "192.0.2.3", sid, &refusal), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(login(CFX_USER, CFX_PASSWORD, "000000", "192.0.2.4", sid, &refusal), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(login("nobody", CFX_PASSWORD, otp, "192.0.2.5", sid, &refusal), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_DENIED, NULL), denied + 3);
    stor_user_t *u = user_get(CFX_USER);
    ck_assert_uint_eq(u->failed_logins, 2);
    free(u);
    for (int i = 0; i < 3; i++) {
        snprintf(addr, sizeof(addr), "192.0.2.%d", 10 + i);
        ck_assert_uint_eq(login(CFX_USER, "not-the-password", otp, addr, sid, &refusal), SAM_OP_REFUSED);
    }
    u = user_get(CFX_USER);
    ck_assert_int_gt(u->locked_until, (int64_t)time(NULL));
    free(u);
    cfx_otp(&f, otp);
    ck_assert_uint_eq(login(CFX_USER, CFX_PASSWORD, otp, "192.0.2.20", sid, &refusal), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED); /* locked: the same answer */
    ck_assert_str_eq(sid, "");
}
END_TEST

/* A user still enrolling (or suspended) cannot sign in, with the right password and code. */
START_TEST(t_enrolling_refused)
{
    char otp[7], sid[OAUTH_TOKEN_BUFLEN];
    uint32_t refusal;
    stor_user_t *u = user_get(CFX_USER);
    u->status = STOR_USER_ENROLLING;
    user_put(u);
    free(u);
    cfx_otp(&f, otp);
    ck_assert_uint_eq(login(CFX_USER, CFX_PASSWORD, otp, "192.0.2.30", sid, &refusal), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_str_eq(sid, "");
}
END_TEST

/* Not an authorization request (bytes that do not decode: junk, an encoding with a byte more): refused before any
 * work, audited. A field over its bound does not even decode. */
START_TEST(t_bad_request_and_oversize)
{
    char otp[7], sid[OAUTH_TOKEN_BUFLEN], name[SAM_NAME_MAX + 2];
    uint32_t refusal;
    uint8_t *junk = malloc(4096);
    ck_assert_ptr_nonnull(junk);
    memset(junk, 'A', 4096);
    unsigned denied = cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_DENIED, NULL);
    cfx_otp(&f, otp);
    ck_assert_uint_eq(login_raw(CFX_USER, CFX_PASSWORD, otp, "192.0.2.40", NULL, junk, 4096, sid, &refusal),
                      SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_DENIED, NULL), denied + 1);
    oauth_authz_request_t *req = calloc(1, sizeof(*req));
    ck_assert_ptr_nonnull(req);
    snprintf(req->client_id, sizeof(req->client_id), "%s", OAUTH_APPROVAL_PAGE_CLIENT);
    req->scope = STOR_SCOPE_SERVICE;
    size_t n = 0;
    ck_assert_int_eq(oauth_req_encode(req, junk, 4095, &n), OAUTH_OK);
    junk[n] = 0;
    ck_assert_uint_eq(login_raw(CFX_USER, CFX_PASSWORD, otp, "192.0.2.40", NULL, junk, n + 1, sid, &refusal),
                      SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_DENIED, NULL), denied + 2);
    free(req);
    free(junk);
    /* the right factors still work: nothing was spent */
    ck_assert_uint_eq(login(CFX_USER, CFX_PASSWORD, otp, "192.0.2.41", sid, &refusal), OK_REPLY);
    /* a name over SAM_NAME_MAX: the builder refuses it, and so does csc-sam's decoder (its schema: test_sam_codec) */
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    sam_builder_t b;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_LOGIN, 1), SAM_OK);
    ck_assert_int_ne(sam_put_str(&b, SAM_T_USER, name), SAM_OK);
    sam_build_free(&b);
}
END_TEST

/* The provisioned user's clear secret was sealed when the SAM started, in one audited write; the record holds no
 * clear secret. Sealed bytes copied into another user's record do not open there: the right code for them is
 * refused, and so is an authorization with it. */
START_TEST(t_sealed_at_start_and_bound_to_the_user)
{
    char otp[7], sid[OAUTH_TOKEN_BUFLEN];
    uint32_t refusal;
    stor_user_t *a = user_get(CFX_USER);
    ck_assert_uint_eq(a->totp_secret_len, 0);
    ck_assert_uint_gt(a->totp_sealed_len, 0);
    ck_assert_uint_ge(cfx_audit_count(&f, STOR_EV_SAM, STOR_RES_OK, NULL), 1);
    /* bob: alice's password and her sealed secret, under his name */
    snprintf(a->name, sizeof(a->name), "bob");
    a->failed_logins = 0;
    ck_assert_int_eq(stor_write(f.stor, user_put_fn, a), STOR_OK);
    free(a);
    cfx_otp(&f, otp);
    ck_assert_uint_eq(login("bob", CFX_PASSWORD, otp, "192.0.2.50", sid, &refusal), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    /* alice herself, with the same code: her secret opens */
    ck_assert_uint_eq(login(CFX_USER, CFX_PASSWORD, otp, "192.0.2.51", sid, &refusal), OK_REPLY);
}
END_TEST

/* A sealed secret the token cannot open now (here: an opener that reports the token unavailable): the sign-in is
 * refused as unavailable before the write, so no failure is counted and nobody is locked out by a token outage. */
static int opener_unavailable(void *arg, const stor_user_t *u, uint8_t out[STOR_TOTP_MAX], size_t *len)
{
    (void)arg, (void)u, (void)out;
    *len = 0;
    return -2;
}

START_TEST(t_token_trouble_counts_nothing)
{
    char otp[7], sid[OAUTH_TOKEN_BUFLEN];
    uint32_t refusal;
    oauth_set_totp_open(f.oauth, opener_unavailable, NULL);
    for (int i = 0; i < 6; i++) {
        cfx_otp(&f, otp);
        ck_assert_uint_eq(login(CFX_USER, CFX_PASSWORD, otp, "192.0.2.60", sid, &refusal), SAM_OP_REFUSED);
        ck_assert_uint_eq(refusal, SAM_REFUSE_UNAVAILABLE);
    }
    stor_user_t *u = user_get(CFX_USER);
    ck_assert_uint_eq(u->failed_logins, 0);
    ck_assert_int_eq(u->locked_until, 0);
    free(u);
    oauth_set_totp_open(f.oauth, sam_user_totp_open, f.hsm); /* the token back: the same factors sign in */
    cfx_otp(&f, otp);
    ck_assert_uint_eq(login(CFX_USER, CFX_PASSWORD, otp, "192.0.2.61", sid, &refusal), OK_REPLY);
}
END_TEST

/* ---- API_LOGIN ------------------------------------------------------------------------------------------------ */

/* API_LOGIN as csc-api sends it; the tokens of a reply (refresh "" when none). */
static unsigned api_login(const char *user, const char *pw, uint32_t remember, const char *addr,
                          char access[OAUTH_TOKEN_BUFLEN], char refresh[OAUTH_TOKEN_BUFLEN], uint32_t *refusal)
{
    sam_builder_t b;
    sam_rbuf_t rb;
    sam_msg_t reply;
    const uint8_t *msg;
    size_t len;
    uint32_t expires = 0;

    memset(&rb, 0, sizeof(rb));
    *refusal = 0;
    access[0] = refresh[0] = '\0';
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_API_LOGIN, sam_client_next_id(f.sam)), SAM_OK);
    sam_put_str(&b, SAM_T_USER, user);
    sam_put_str(&b, SAM_T_CLIENT, addr);
    sam_put_str(&b, SAM_T_ADDR, addr);
    sam_put_str(&b, SAM_T_PASSWORD, pw);
    sam_put_u32(&b, SAM_T_REMEMBER, remember);
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(f.sam, msg, len, &rb, &reply), SAM_OK);
    unsigned op = reply.op;
    if (op == SAM_OP_REFUSED) {
        ck_assert_int_eq(sam_get_u32(&reply, SAM_T_REFUSAL, refusal), SAM_OK);
    } else if (op == (SAM_OP_API_LOGIN | SAM_OP_REPLY)) {
        ck_assert_int_eq(sam_get_text(&reply, SAM_T_TOKEN, access, OAUTH_TOKEN_BUFLEN), SAM_OK);
        ck_assert_int_eq(sam_get_u32(&reply, SAM_T_EXPIRES_IN, &expires), SAM_OK);
        ck_assert_uint_eq(expires, oauth_config(f.oauth)->access_ttl);
        if (sam_msg_count(&reply, SAM_T_REFRESH_TOKEN) > 0)
            ck_assert_int_eq(sam_get_text(&reply, SAM_T_REFRESH_TOKEN, refresh, OAUTH_TOKEN_BUFLEN), SAM_OK);
    }
    sam_build_free(&b);
    sam_rbuf_free(&rb);
    return op;
}

#define API_OK (SAM_OP_API_LOGIN | SAM_OP_REPLY)

/* The right password: an access token csc-sam stored (it speaks for the user), a refresh token only with REMEMBER,
 * the sign-in audited and listed in the user's last sign-ins. */
START_TEST(t_api_login_tokens)
{
    char access[OAUTH_TOKEN_BUFLEN], refresh[OAUTH_TOKEN_BUFLEN];
    uint32_t refusal;
    oauth_principal_t p;
    unsigned ok = cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_OK, NULL);

    ck_assert_uint_eq(api_login(CFX_USER, CFX_PASSWORD, 0, "192.0.2.30", access, refresh, &refusal), API_OK);
    ck_assert_uint_eq(strlen(access), 43);
    ck_assert_str_eq(refresh, "");
    ck_assert_int_eq(oauth_token_check(f.oauth, access, strlen(access), &p), OAUTH_OK);
    ck_assert_str_eq(p.user, CFX_USER);
    ck_assert_uint_eq(p.scope, STOR_SCOPE_SERVICE);
    ck_assert_uint_eq(api_login(CFX_USER, CFX_PASSWORD, 1, "192.0.2.30", access, refresh, &refusal), API_OK);
    ck_assert_uint_eq(strlen(refresh), 43);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_OK, NULL), ok + 2);
}
END_TEST

/* Wrong passwords and an unknown name: UNAUTHORIZED about the password, audited, counted on the user; at
 * max_failures the user is locked (its STOR_EV_LOCKOUT record) and the right password is refused alike. */
START_TEST(t_api_login_failures_lock)
{
    char access[OAUTH_TOKEN_BUFLEN], refresh[OAUTH_TOKEN_BUFLEN];
    uint32_t refusal;
    unsigned max = oauth_config(f.oauth)->max_failures;
    unsigned locks = cfx_audit_count(&f, STOR_EV_LOCKOUT, STOR_RES_DENIED, NULL);

    ck_assert_uint_gt(max, 1);
    ck_assert_uint_eq(api_login("nobody", CFX_PASSWORD, 0, "192.0.2.40", access, refresh, &refusal), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(api_login(CFX_USER, "", 0, "192.0.2.40", access, refresh, &refusal), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    stor_user_t *u = user_get(CFX_USER);
    ck_assert_uint_eq(u->failed_logins, 1);
    free(u);
    for (unsigned i = 1; i < max; i++) {
        ck_assert_uint_eq(api_login(CFX_USER, "not-the-password", 1, "192.0.2.41", access, refresh, &refusal),
                          SAM_OP_REFUSED);
        ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
        ck_assert_str_eq(access, "");
    }
    u = user_get(CFX_USER);
    ck_assert_int_gt(u->locked_until, (int64_t)time(NULL));
    free(u);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOCKOUT, STOR_RES_DENIED, NULL), locks + 1);
    ck_assert_uint_eq(api_login(CFX_USER, CFX_PASSWORD, 0, "192.0.2.42", access, refresh, &refusal), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED); /* locked: the same answer */
    ck_assert_str_eq(access, "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sam-login");
    TCase *tc = tcase_create("login");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_login_and_replay);
    tcase_add_test(tc, t_wrong_factors_lock);
    tcase_add_test(tc, t_enrolling_refused);
    tcase_add_test(tc, t_bad_request_and_oversize);
    tcase_add_test(tc, t_sealed_at_start_and_bound_to_the_user);
    tcase_add_test(tc, t_token_trouble_counts_nothing);
    tcase_add_test(tc, t_api_login_tokens);
    tcase_add_test(tc, t_api_login_failures_lock);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
