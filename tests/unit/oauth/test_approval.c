/* test_approval.c - authorization approved outside the client: pending handle, decision, authorizeCheck once; kept in
 * storage (shared by two handles, kept over a restart, neither handle nor SAD stored), bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "test_oauth.h"

static uint8_t D0[32];
static const uint8_t *DP[1] = {D0};

static void appr_setup(void)
{
    fx_setup();
    memset(D0, 0x5a, sizeof(D0));
    mk_user("alice", STOR_USER_ACTIVE, 1);
    mk_user("bob", STOR_USER_ACTIVE, 1);
    mk_cred("a1", "alice", 1, "PIN AND APPROVAL");
    mk_cred("a2", "alice", 0, "APPROVAL");
    mk_cred("p1", "alice", 1, "PIN");
}

static int request(const char *user, const char *cred, char handle[OAUTH_TOKEN_BUFLEN])
{
    oauth_sad_request_t r;
    unsigned ttl = 0;

    memset(&r, 0, sizeof(r));
    r.user = user;
    r.cred = cred;
    r.num_signatures = 1;
    r.hash_alg = SHA256_OID;
    r.digests = DP;
    r.digest_len = 32;
    r.n_digests = 1;
    r.client = "cl";
    return oauth_approval_new(fx.o, &r, handle, &ttl);
}

typedef struct {
    size_t n;
    uint8_t ref[16];
    int needs_pin;
} seen_t;

static void see(const oauth_approval_view_t *v, void *arg)
{
    seen_t *s = arg;
    memcpy(s->ref, v->ref, 16);
    s->needs_pin = v->needs_pin;
    ck_assert_uint_eq(v->n_digests, 1);
    ck_assert_int_eq(memcmp(v->digests, D0, 32), 0);
    s->n++;
}

static seen_t pending(const char *user)
{
    seen_t s;
    memset(&s, 0, sizeof(s));
    ck_assert_uint_eq(oauth_approval_each(fx.o, user, see, &s), s.n);
    return s;
}

static int check(const char *user, const char *handle, char sad[OAUTH_TOKEN_BUFLEN])
{
    unsigned exp = 0;
    return oauth_approval_check(fx.o, user, handle, strlen(handle), sad, &exp);
}

START_TEST(t_appr_approve_once)
{
    char h[OAUTH_TOKEN_BUFLEN], sad[OAUTH_TOKEN_BUFLEN];
    seen_t s;

    ck_assert_int_eq(request("alice", "a1", h), OAUTH_OK);
    ck_assert_int_eq(check("alice", h, sad), OAUTH_PENDING);
    s = pending("alice");
    ck_assert_uint_eq(s.n, 1);
    ck_assert_int_eq(s.needs_pin, 1);
    ck_assert_uint_eq(pending("bob").n, 0);
    /* wrong PIN: counted, still pending; another user cannot decide it */
    ck_assert_int_eq(oauth_approval_decide(fx.o, "alice", s.ref, 1, "bad", 3, "page"), OAUTH_ERR_DENIED);
    ck_assert_int_eq(check("alice", h, sad), OAUTH_PENDING);
    ck_assert_int_eq(oauth_approval_decide(fx.o, "bob", s.ref, 1, T_PIN, strlen(T_PIN), "page"), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_approval_decide(fx.o, "alice", s.ref, 1, T_PIN, strlen(T_PIN), "page"), OAUTH_OK);
    ck_assert_int_eq(oauth_approval_decide(fx.o, "alice", s.ref, 0, NULL, 0, "page"), OAUTH_ERR_INVALID);
    ck_assert_int_eq(check("bob", h, sad), OAUTH_ERR_INVALID);
    ck_assert_int_eq(check("alice", h, sad), OAUTH_OK);
    ck_assert_uint_eq(strlen(sad), OAUTH_TOKEN_LEN);
    ck_assert_int_eq(check("alice", h, sad), OAUTH_ERR_INVALID);
    auds_t *a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_APPROVAL, STOR_RES_OK), 1);
    ck_assert_uint_eq(audit_count(a, STOR_EV_AUTHORIZE, STOR_RES_OK), 1);
    ck_assert_uint_eq(audit_count(a, STOR_EV_AUTHORIZE, STOR_RES_DENIED), 1);
    free(a);
}
END_TEST

START_TEST(t_appr_refuse_and_expiry)
{
    char h[OAUTH_TOKEN_BUFLEN], h2[OAUTH_TOKEN_BUFLEN], sad[OAUTH_TOKEN_BUFLEN];
    seen_t s;

    ck_assert_int_eq(request("alice", "a2", h), OAUTH_OK);
    s = pending("alice");
    ck_assert_int_eq(s.needs_pin, 0);
    ck_assert_int_eq(oauth_approval_decide(fx.o, "alice", s.ref, 0, NULL, 0, "page"), OAUTH_OK);
    ck_assert_int_eq(check("alice", h, sad), OAUTH_ERR_DENIED);
    ck_assert_str_eq(sad, "");
    ck_assert_int_eq(check("alice", h, sad), OAUTH_ERR_INVALID);
    auds_t *a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_APPROVAL, STOR_RES_DENIED), 1);
    free(a);
    ck_assert_int_eq(request("alice", "a2", h2), OAUTH_OK);
    s = pending("alice");
    oauth_int_set_skew(fx.o, (int64_t)oauth_config(fx.o)->approval_ttl);
    ck_assert_uint_eq(pending("alice").n, 0);
    ck_assert_int_eq(oauth_approval_decide(fx.o, "alice", s.ref, 1, NULL, 0, "page"), OAUTH_ERR_INVALID);
    ck_assert_int_eq(check("alice", h2, sad), OAUTH_ERR_EXPIRED);
}
END_TEST

START_TEST(t_appr_refusals)
{
    char h[OAUTH_TOKEN_BUFLEN], sad[OAUTH_TOKEN_BUFLEN];

    ck_assert_int_eq(request("bob", "a1", h), OAUTH_ERR_INVALID);     /* another user's credential */
    ck_assert_int_eq(request("alice", "p1", h), OAUTH_ERR_INVALID);   /* no APPROVAL object */
    ck_assert_int_eq(request("alice", "nope", h), OAUTH_ERR_INVALID);
    ck_assert_int_eq(check("alice", "short", sad), OAUTH_ERR_INVALID);
    /* the client's own factors never satisfy APPROVAL */
    oauth_sad_request_t r;
    oauth_factors_t f = {T_PIN, strlen(T_PIN), NULL, 0, NULL, 0};
    unsigned exp;
    memset(&r, 0, sizeof(r));
    r.user = "alice";
    r.cred = "a1";
    r.num_signatures = 1;
    r.client = "cl";
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_DENIED);
}
END_TEST

/* A second handle on the same storage: what csc-sam and csc-server (or csc-sam after a restart) each hold. */
static oauth_t *other_oauth(void)
{
    return fx_second_handle(FX_CHAL_KEY);
}

typedef struct {
    size_t n;
} count_t;

static void count_one(const oauth_approval_view_t *v, void *arg)
{
    (void)v;
    ((count_t *)arg)->n++;
}

START_TEST(t_appr_shared_across_handles)
{
    char h[OAUTH_TOKEN_BUFLEN], sad[OAUTH_TOKEN_BUFLEN];
    unsigned exp = 0;
    seen_t s;
    count_t c = {0};

    /* filed by one handle (csc-sam), listed by another (csc-server's page) */
    ck_assert_int_eq(request("alice", "a1", h), OAUTH_OK);
    oauth_t *page = other_oauth();
    ck_assert_uint_eq(oauth_approval_each(page, "alice", count_one, &c), 1);
    ck_assert_uint_eq(c.n, 1);
    /* csc-sam restarts: a new handle decides and answers what the old one filed */
    fx_oauth((oauth_config_t){.max_failures = 3});
    s = pending("alice");
    ck_assert_uint_eq(s.n, 1);
    ck_assert_int_eq(oauth_approval_decide(fx.o, "alice", s.ref, 1, T_PIN, strlen(T_PIN), "page"), OAUTH_OK);
    /* one decision, whichever process asks next */
    ck_assert_int_eq(oauth_approval_decide(page, "alice", s.ref, 0, NULL, 0, "page"), OAUTH_ERR_INVALID);
    c.n = 0;
    ck_assert_uint_eq(oauth_approval_each(page, "alice", count_one, &c), 0);
    /* one answer: the SAD once */
    ck_assert_int_eq(oauth_approval_check(page, "alice", h, strlen(h), sad, &exp), OAUTH_OK);
    ck_assert_uint_eq(strlen(sad), OAUTH_TOKEN_LEN);
    ck_assert_uint_gt(exp, 0);
    ck_assert_int_eq(check("alice", h, sad), OAUTH_ERR_INVALID);
    oauth_free(page);
}
END_TEST

START_TEST(t_appr_no_handle_or_sad_stored)
{
    char h[OAUTH_TOKEN_BUFLEN], sad[OAUTH_TOKEN_BUFLEN];
    seen_t s;

    ck_assert_int_eq(request("alice", "a2", h), OAUTH_OK);
    s = pending("alice");
    ck_assert_int_eq(oauth_approval_decide(fx.o, "alice", s.ref, 1, NULL, 0, "page"), OAUTH_OK);
    /* approved: a decision is stored, not a SAD */
    assert_no_secret(h);
    ck_assert_int_eq(check("alice", h, sad), OAUTH_OK);
    assert_no_secret(h);
    assert_no_secret(sad);
    /* the SAD is issued at authorizeCheck, for the client that asked, and is spendable */
    auds_t *a = audit_read();
    const aud_t *r = audit_last(a, STOR_EV_AUTHORIZE);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->rec.result, STOR_RES_OK);
    ck_assert_str_eq(r->rec.client, "cl");
    free(a);
    uint8_t hash[32];
    stor_sad_t *st = calloc(1, sizeof(*st));
    ck_assert_ptr_nonnull(st);
    sha256_of(sad, strlen(sad), hash);
    ck_assert_int_eq(get_sad(hash, st), STOR_OK);
    ck_assert_uint_eq(st->remaining, 1);
    ck_assert_uint_eq(st->n_digests, 1);
    free(st);
}
END_TEST

START_TEST(t_appr_reset_after_approval)
{
    char h[OAUTH_TOKEN_BUFLEN], sad[OAUTH_TOKEN_BUFLEN];
    seen_t s;

    ck_assert_int_eq(request("alice", "a2", h), OAUTH_OK);
    s = pending("alice");
    ck_assert_int_eq(oauth_approval_decide(fx.o, "alice", s.ref, 1, NULL, 0, "page"), OAUTH_OK);
    /* an operator resets alice between the approval and authorizeCheck: no SAD, and the answer is final */
    stor_user_t u = get_user("alice");
    u.epoch++;
    put_user(&u);
    ck_assert_int_eq(check("alice", h, sad), OAUTH_ERR_DISABLED);
    ck_assert_str_eq(sad, "");
    ck_assert_int_eq(check("alice", h, sad), OAUTH_ERR_INVALID);
}
END_TEST

START_TEST(t_appr_locked_refuses)
{
    char h[OAUTH_TOKEN_BUFLEN], sad[OAUTH_TOKEN_BUFLEN];
    seen_t s;
    int rc = OAUTH_ERR_DENIED;

    ck_assert_int_eq(request("alice", "a1", h), OAUTH_OK);
    s = pending("alice");
    /* wrong PINs count on the credential's lock (max_failures 3); once locked the request is refused */
    for (int i = 0; i < 10 && rc == OAUTH_ERR_DENIED; i++) {
        rc = oauth_approval_decide(fx.o, "alice", s.ref, 1, "bad", 3, "page");
        if (rc == OAUTH_ERR_DENIED)
            ck_assert_int_eq(check("alice", h, sad), OAUTH_PENDING);
    }
    ck_assert_int_eq(rc, OAUTH_ERR_LOCKED);
    ck_assert_int_eq(oauth_approval_decide(fx.o, "alice", s.ref, 1, T_PIN, strlen(T_PIN), "page"), OAUTH_ERR_INVALID);
    ck_assert_int_eq(check("alice", h, sad), OAUTH_ERR_LOCKED);
    ck_assert_int_eq(check("alice", h, sad), OAUTH_ERR_INVALID);
    auds_t *a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_APPROVAL, STOR_RES_DENIED), 1);
    ck_assert_uint_eq(audit_count(a, STOR_EV_APPROVAL, STOR_RES_OK), 0);
    free(a);
}
END_TEST

START_TEST(t_appr_bounded)
{
    char h[OAUTH_TOKEN_BUFLEN];

    for (unsigned i = 0; i < OAUTH_APPROVALS_MAX; i++)
        ck_assert_int_eq(request("alice", "a2", h), OAUTH_OK);
    ck_assert_int_eq(request("alice", "a2", h), OAUTH_ERR_FULL);
    ck_assert_str_eq(h, "");
    /* expired requests make room */
    oauth_int_set_skew(fx.o, (int64_t)oauth_config(fx.o)->approval_ttl);
    ck_assert_int_eq(request("alice", "a2", h), OAUTH_OK);
}
END_TEST

Suite *suite_approval(void)
{
    Suite *s = suite_create("oauth_approval");
    TCase *tc = tcase_create("approval");

    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_checked_fixture(tc, appr_setup, fx_teardown);
    tcase_add_test(tc, t_appr_approve_once);
    tcase_add_test(tc, t_appr_refuse_and_expiry);
    tcase_add_test(tc, t_appr_refusals);
    tcase_add_test(tc, t_appr_shared_across_handles);
    tcase_add_test(tc, t_appr_no_handle_or_sad_stored);
    tcase_add_test(tc, t_appr_reset_after_approval);
    tcase_add_test(tc, t_appr_locked_refuses);
    tcase_add_test(tc, t_appr_bounded);
    suite_add_tcase(s, tc);
    return s;
}
