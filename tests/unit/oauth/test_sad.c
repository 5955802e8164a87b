/* test_sad.c - credentials/authorize and the SAD budget. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_oauth.h"

#define SHA256_OID "2.16.840.1.101.3.4.2.1"
#define SIGN_ALG "1.2.840.10045.4.3.2"
#define ND 4

static uint8_t D[ND][32];
static const uint8_t *DP[ND];

static void sad_setup(void)
{
    fx_setup();
    for (int i = 0; i < ND; i++) {
        memset(D[i], 0xa0 + i, 32);
        D[i][31] = (uint8_t)i;
        DP[i] = D[i];
    }
    mk_user("alice", STOR_USER_ACTIVE, 1);
    mk_user("bob", STOR_USER_ACTIVE, 1);
    mk_cred("c1", "alice", 1, "PIN");
    mk_cred("c2", "alice", 1, "PIN");
    mk_cred("b1", "bob", 1, "PIN");
}

static oauth_sad_request_t req_of(const char *user, const char *cred, uint32_t n, const uint8_t *const *dig,
                                  size_t nd)
{
    oauth_sad_request_t r;

    memset(&r, 0, sizeof(r));
    r.user = user;
    r.cred = cred;
    r.num_signatures = n;
    r.hash_alg = nd ? SHA256_OID : NULL;
    r.digests = dig;
    r.digest_len = 32;
    r.n_digests = nd;
    r.client = "cl";
    return r;
}

static oauth_sign_use_t use_of(const char *user, const char *cred, const uint8_t *const *dig, size_t nd)
{
    oauth_sign_use_t u;

    memset(&u, 0, sizeof(u));
    u.user = user;
    u.cred = cred;
    u.hash_alg = SHA256_OID;
    u.digests = dig;
    u.digest_len = 32;
    u.n_digests = nd;
    u.client = "cl";
    u.detail = SIGN_ALG;
    return u;
}

static int authorize(const oauth_sad_request_t *r, const char *pin, const char *otp, char sad[OAUTH_TOKEN_BUFLEN])
{
    oauth_factors_t f = {pin, pin ? strlen(pin) : 0, otp, otp ? strlen(otp) : 0, NULL, 0};
    unsigned exp = 77;
    int rc = oauth_authorize(fx.o, r, &f, sad, &exp);

    if (rc == OAUTH_OK) {
        ck_assert_uint_eq(strlen(sad), OAUTH_TOKEN_LEN);
        ck_assert_uint_eq(exp, oauth_config(fx.o)->sad_ttl);
    } else {
        ck_assert_str_eq(sad, "");
        ck_assert_uint_eq(exp, 0);
    }
    return rc;
}

/* A SAD over digests D[0..nd-1] for alice/c1 with budget n. */
static void sad_for(uint32_t n, size_t nd, char sad[OAUTH_TOKEN_BUFLEN])
{
    oauth_sad_request_t r = req_of("alice", "c1", n, DP, nd);

    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_OK);
}

static int consume(const char *sad, const oauth_sign_use_t *u, uint8_t ref[16])
{
    return oauth_sad_consume(fx.o, sad, strlen(sad), u, ref);
}

static stor_sad_t *stored_sad(const char *value)
{
    stor_sad_t *s = calloc(1, sizeof(*s));
    uint8_t h[32];

    ck_assert_ptr_nonnull(s);
    sha256_of(value, strlen(value), h);
    ck_assert_int_eq(get_sad(h, s), STOR_OK);
    return s;
}

static uint32_t remaining(const char *value)
{
    stor_sad_t *s = stored_sad(value);
    uint32_t n = s->remaining;

    free(s);
    return n;
}

static void set_cred(const char *id, void (*fn)(stor_cred_t *))
{
    stor_cred_t *c = calloc(1, sizeof(*c));

    ck_assert_ptr_nonnull(c);
    get_cred(id, c);
    fn(c);
    put_cred(c);
    free(c);
}

static uint32_t cred_failures(const char *id)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    uint32_t n;

    ck_assert_ptr_nonnull(c);
    get_cred(id, c);
    n = c->failed_auths;
    free(c);
    return n;
}

static void expr_pin_and_otp(stor_cred_t *c) { snprintf(c->auth_expr, sizeof(c->auth_expr), "PIN AND OTP"); }
static void expr_otp(stor_cred_t *c) { snprintf(c->auth_expr, sizeof(c->auth_expr), "OTP"); }
static void expr_empty(stor_cred_t *c) { c->auth_expr[0] = '\0'; }
static void expr_bogus(stor_cred_t *c) { snprintf(c->auth_expr, sizeof(c->auth_expr), "PIN AND"); }
static void no_pin(stor_cred_t *c) { c->pin_verifier_len = 0; }
static void disable(stor_cred_t *c) { c->status = STOR_CRED_DISABLED; }
static void unlock_past(stor_cred_t *c) { c->locked_until = oauth_now() - 1; }

static void otp_now(char otp[7])
{
    totp_at(oauth_now(), otp);
}

/* ---- authorize ------------------------------------------------------------ */

START_TEST(t_authz_pin_only)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    oauth_sad_request_t r = req_of("alice", "c1", 2, DP, 2);
    int64_t now = oauth_now();
    stor_sad_t *s;
    uint8_t ref[16];
    auds_t *a;
    const aud_t *rec;

    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_OK);
    s = stored_sad(sad);
    ck_assert_str_eq(s->user, "alice");
    ck_assert_str_eq(s->cred, "c1");
    ck_assert_uint_eq(s->remaining, 2);
    ck_assert_int_ge(s->expires_at, now + 300);
    ck_assert_int_le(s->expires_at, now + 302);
    ck_assert_str_eq(s->hash_alg, SHA256_OID);
    ck_assert_uint_eq(s->digest_len, 32);
    ck_assert_uint_eq(s->n_digests, 2);
    ck_assert_mem_eq(s->digests, D[0], 32);
    ck_assert_mem_eq(s->digests + 32, D[1], 32);
    free(s);
    ck_assert_uint_eq(cred_failures("c1"), 0);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_AUTHORIZE, STOR_RES_OK), 1);
    ck_assert_ptr_nonnull(rec = audit_last(a, STOR_EV_AUTHORIZE));
    ck_assert_str_eq(rec->rec.user, "alice");
    ck_assert_str_eq(rec->rec.cred, "c1");
    ck_assert_str_eq(rec->rec.client, "cl");
    ref_of(sad, ref);
    ck_assert_mem_eq(rec->rec.authz_ref, ref, 16);
    ck_assert_uint_eq(rec->rec.n_digests, 2);
    ck_assert_uint_eq(rec->rec.digest_len, 32);
    ck_assert_mem_eq(rec->dig, D[0], 32);
    ck_assert_mem_eq(rec->dig + 32, D[1], 32);
    ck_assert_ptr_nonnull(strstr(rec->rec.detail, SHA256_OID));
    free(a);
    assert_no_secret(T_PIN);
    assert_no_secret(sad);
}
END_TEST

START_TEST(t_authz_pin_and_otp)
{
    char sad[OAUTH_TOKEN_BUFLEN], otp[7];
    oauth_sad_request_t r = req_of("alice", "c1", 1, DP, 1);
    int64_t step;

    set_cred("c1", expr_pin_and_otp);
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(cred_failures("c1"), 1);
    otp_now(otp);
    ck_assert_int_eq(authorize(&r, NULL, otp, sad), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(cred_failures("c1"), 2);
    ck_assert_int_eq(get_user("alice").totp_last_step, 0);   /* only a success spends the code */
    ck_assert_int_eq(authorize(&r, T_PIN, otp, sad), OAUTH_OK);
    ck_assert_uint_eq(cred_failures("c1"), 0);
    step = get_user("alice").totp_last_step;
    ck_assert_int_ge(step, oauth_now() / 30 - 2);
    ck_assert_int_le(step, oauth_now() / 30 + 1);
    assert_no_secret(otp);
}
END_TEST

START_TEST(t_authz_wrong_pin)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    oauth_sad_request_t r = req_of("alice", "c1", 1, DP, 1);
    auds_t *a;

    ck_assert_int_eq(authorize(&r, "9999-wrong-pin", NULL, sad), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(cred_failures("c1"), 1);
    ck_assert_int_eq(authorize(&r, "", NULL, sad), OAUTH_ERR_DENIED);
    ck_assert_int_eq(authorize(&r, NULL, NULL, sad), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, NULL, sad, &(unsigned){0}), OAUTH_ERR_LOCKED);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_AUTHORIZE, STOR_RES_DENIED), 4);
    ck_assert_uint_eq(audit_count(a, STOR_EV_AUTHORIZE, STOR_RES_OK), 0);
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOCKOUT, STOR_RES_DENIED), 1);
    free(a);
    assert_no_secret("9999-wrong-pin");
}
END_TEST

START_TEST(t_authz_wrong_otp)
{
    char sad[OAUTH_TOKEN_BUFLEN], otp[7];
    oauth_sad_request_t r = req_of("alice", "c1", 1, DP, 1);

    set_cred("c1", expr_pin_and_otp);
    totp_at(oauth_now() + 120, otp);   /* four steps ahead: outside the window */
    ck_assert_int_eq(authorize(&r, T_PIN, otp, sad), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(cred_failures("c1"), 1);
    ck_assert_int_eq(authorize(&r, T_PIN, "12ab56", sad), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(cred_failures("c1"), 2);
}
END_TEST

START_TEST(t_authz_otp_replay)
{
    char sad[OAUTH_TOKEN_BUFLEN], otp[7];
    oauth_sad_request_t r = req_of("alice", "c1", 1, DP, 1);

    set_cred("c1", expr_otp);
    otp_now(otp);
    ck_assert_int_eq(authorize(&r, NULL, otp, sad), OAUTH_OK);
    ck_assert_int_eq(authorize(&r, NULL, otp, sad), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(cred_failures("c1"), 1);
    /* the same code on another credential of the same user is a replay too */
    set_cred("c2", expr_otp);
    ck_assert_int_eq(authorize(&(oauth_sad_request_t){.user = "alice", .cred = "c2", .num_signatures = 1}, NULL,
                               otp, sad),
                     OAUTH_ERR_DENIED);
}
END_TEST

START_TEST(t_authz_unneeded_wrong_factor)
{
    char sad[OAUTH_TOKEN_BUFLEN], otp[7];
    oauth_sad_request_t r = req_of("alice", "c1", 1, DP, 1);

    /* "OTP" with the right OTP, but a wrong PIN supplied as well */
    set_cred("c1", expr_otp);
    otp_now(otp);
    ck_assert_int_eq(authorize(&r, "wrong", otp, sad), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(cred_failures("c1"), 1);
    /* "PIN" with the right PIN, but a wrong OTP supplied as well */
    r.cred = "c2";
    ck_assert_int_eq(authorize(&r, T_PIN, "000000", sad), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(cred_failures("c2"), 1);
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_OK);
}
END_TEST

START_TEST(t_authz_lockout)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    oauth_sad_request_t r = req_of("alice", "c1", 1, DP, 1);
    stor_cred_t *c = calloc(1, sizeof(*c));
    int64_t now = oauth_now();
    auds_t *a;
    const aud_t *rec;

    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(authorize(&r, "bad", NULL, sad), OAUTH_ERR_DENIED);
    get_cred("c1", c);
    ck_assert_uint_eq(c->failed_auths, 0);
    ck_assert_int_ge(c->locked_until, now + 900);
    ck_assert_int_le(c->locked_until, now + 902);
    free(c);
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_ERR_LOCKED);
    ck_assert_int_eq(authorize(&r, "bad", NULL, sad), OAUTH_ERR_LOCKED);
    ck_assert_uint_eq(cred_failures("c1"), 0);
    /* other credentials of the user are not locked */
    r.cred = "c2";
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_OK);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOCKOUT, STOR_RES_DENIED), 1);
    ck_assert_ptr_nonnull(rec = audit_last(a, STOR_EV_LOCKOUT));
    ck_assert_str_eq(rec->rec.user, "alice");
    ck_assert_str_eq(rec->rec.cred, "c1");
    free(a);
    /* when the lock has passed, the right PIN works again and the lock is cleared */
    set_cred("c1", unlock_past);
    r.cred = "c1";
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_OK);
    c = calloc(1, sizeof(*c));
    get_cred("c1", c);
    ck_assert_int_eq(c->locked_until, 0);
    free(c);
}
END_TEST

START_TEST(t_authz_other_user)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    oauth_sad_request_t r = req_of("bob", "c1", 1, DP, 1);
    auds_t *a;

    /* bob knows alice's PIN: still not his credential */
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_ERR_INVALID);
    r.cred = "nope";
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_ERR_INVALID);
    r.user = "ghost";
    r.cred = "c1";
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_ERR_INVALID);
    ck_assert_uint_eq(cred_failures("c1"), 0);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_AUTHORIZE, STOR_RES_DENIED), 3);
    ck_assert_str_eq(audit_last(a, STOR_EV_AUTHORIZE)->rec.user, "ghost");
    free(a);
}
END_TEST

START_TEST(t_authz_disabled)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    oauth_sad_request_t r = req_of("alice", "c1", 1, DP, 1);
    stor_user_t u;

    set_cred("c1", disable);
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_ERR_DISABLED);
    ck_assert_uint_eq(cred_failures("c1"), 0);
    r.cred = "c2";
    u = get_user("alice");
    u.status = STOR_USER_SUSPENDED;
    put_user(&u);
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_ERR_DISABLED);
}
END_TEST

START_TEST(t_authz_expressions)
{
    char sad[OAUTH_TOKEN_BUFLEN], otp[7];
    oauth_sad_request_t r = req_of("alice", "c1", 1, NULL, 0);

    /* empty: every object the credential has (PIN, and the user's OTP) */
    set_cred("c1", expr_empty);
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_ERR_DENIED);
    otp_now(otp);
    ck_assert_int_eq(authorize(&r, T_PIN, otp, sad), OAUTH_OK);
    /* empty, and the credential has no PIN: the OTP alone; a PIN supplied for it is ignored */
    set_cred("c2", expr_empty);
    set_cred("c2", no_pin);
    r.cred = "c2";
    mk_user("alice", STOR_USER_ACTIVE, 1);   /* fresh replay guard */
    ck_assert_int_eq(authorize(&r, "anything", otp, sad), OAUTH_OK);
    /* nothing to verify at all: refused */
    mk_user("carol", STOR_USER_ACTIVE, 0);
    mk_cred("k1", "carol", 0, "");
    r.user = "carol";
    r.cred = "k1";
    ck_assert_int_eq(authorize(&r, NULL, NULL, sad), OAUTH_ERR_DENIED);
    /* a malformed expression is a denial */
    set_cred("c1", expr_bogus);
    r.user = "alice";
    r.cred = "c1";
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_ERR_DENIED);
}
END_TEST

START_TEST(t_authz_unbound)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    oauth_sad_request_t r = req_of("alice", "c1", 3, NULL, 0);
    stor_sad_t *s;

    r.hash_alg = SHA256_OID;   /* ignored without digests */
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_OK);
    s = stored_sad(sad);
    ck_assert_uint_eq(s->n_digests, 0);
    ck_assert_str_eq(s->hash_alg, "");
    ck_assert_uint_eq(s->remaining, 3);
    free(s);
}
END_TEST

START_TEST(t_authz_inval)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    unsigned exp;
    oauth_factors_t f = {T_PIN, strlen(T_PIN), NULL, 0, NULL, 0};
    oauth_sad_request_t r;
    const uint8_t *holes[2] = {D[0], NULL};
    char oid[STOR_OID_MAX + 2];

    r = req_of("alice", "c1", 0, DP, 1);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_INVAL);
    r = req_of("alice", "c1", 1, DP, STOR_DIGESTS_MAX + 1);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_INVAL);
    r = req_of("alice", "c1", 1, DP, 1);
    r.digest_len = STOR_DIGEST_LEN_MAX + 1;
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_INVAL);
    r.digest_len = 0;
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_INVAL);
    r = req_of("alice", "c1", 1, DP, 1);
    r.hash_alg = NULL;
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_INVAL);
    memset(oid, '1', sizeof(oid));
    oid[sizeof(oid) - 1] = '\0';
    r.hash_alg = oid;
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_INVAL);
    r = req_of("alice", "c1", 1, NULL, 1);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_INVAL);
    r = req_of("alice", "c1", 2, holes, 2);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_INVAL);
    r = req_of(NULL, "c1", 1, DP, 1);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_INVAL);
    r = req_of("alice", "", 1, DP, 1);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_INVAL);
    r = req_of("alice", "c1", 1, DP, 1);
    ck_assert_int_eq(oauth_authorize(fx.o, NULL, &f, sad, &exp), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, NULL, &exp), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, NULL), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_authorize(NULL, &r, &f, sad, &exp), OAUTH_ERR_INVAL);
    /* nothing was counted or audited */
    ck_assert_uint_eq(cred_failures("c1"), 0);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_OK);
    /* the largest request fits */
    {
        const uint8_t **many = calloc(STOR_DIGESTS_MAX, sizeof(*many));
        uint8_t *buf = calloc(STOR_DIGESTS_MAX, STOR_DIGEST_LEN_MAX);
        for (size_t i = 0; i < STOR_DIGESTS_MAX; i++) {
            memcpy(buf + i * STOR_DIGEST_LEN_MAX, &i, sizeof(i));
            many[i] = buf + i * STOR_DIGEST_LEN_MAX;
        }
        r = req_of("alice", "c1", STOR_DIGESTS_MAX, many, STOR_DIGESTS_MAX);
        r.digest_len = STOR_DIGEST_LEN_MAX;
        ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_OK);
        /* and one signHash may spend all of it, the digests in reverse order */
        for (size_t i = 0; i < STOR_DIGESTS_MAX / 2; i++) {
            const uint8_t *tmp = many[i];
            many[i] = many[STOR_DIGESTS_MAX - 1 - i];
            many[STOR_DIGESTS_MAX - 1 - i] = tmp;
        }
        oauth_sign_use_t u = use_of("alice", "c1", many, STOR_DIGESTS_MAX);
        uint8_t ref[16];
        u.digest_len = STOR_DIGEST_LEN_MAX;
        ck_assert_int_eq(consume(sad, &u, ref), OAUTH_OK);
        ck_assert_uint_eq(remaining(sad), 0);
        free(many);
        free(buf);
    }
}
END_TEST

/* ---- consume -------------------------------------------------------------- */

START_TEST(t_consume_happy)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    oauth_sign_use_t u1 = use_of("alice", "c1", &DP[1], 1), u0 = use_of("alice", "c1", &DP[0], 1);
    uint8_t ref[16], want[16];
    auds_t *a;
    const aud_t *rec;

    sad_for(2, 2, sad);
    ref_of(sad, want);
    ck_assert_int_eq(consume(sad, &u1, ref), OAUTH_OK);   /* any order */
    ck_assert_mem_eq(ref, want, 16);
    ck_assert_uint_eq(remaining(sad), 1);
    ck_assert_int_eq(consume(sad, &u0, ref), OAUTH_OK);
    ck_assert_uint_eq(remaining(sad), 0);   /* kept at 0 */
    ck_assert_int_eq(consume(sad, &u0, ref), OAUTH_ERR_EXHAUSTED);
    ck_assert_mem_eq(ref, want, 16);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_SIGN, STOR_RES_OK), 2);
    ck_assert_uint_eq(audit_count(a, STOR_EV_SIGN, STOR_RES_DENIED), 1);
    ck_assert_ptr_nonnull(rec = audit_last(a, STOR_EV_SIGN));
    ck_assert_str_eq(rec->rec.detail, SIGN_ALG " exhausted");
    ck_assert_str_eq(rec->rec.user, "alice");
    ck_assert_str_eq(rec->rec.cred, "c1");
    ck_assert_str_eq(rec->rec.client, "cl");
    ck_assert_mem_eq(rec->rec.authz_ref, want, 16);
    ck_assert_uint_eq(rec->rec.n_digests, 1);
    ck_assert_uint_eq(rec->rec.digest_len, 32);
    ck_assert_mem_eq(rec->dig, D[0], 32);
    rec = &a->r[a->n - 2];
    ck_assert_uint_eq(rec->rec.event, STOR_EV_SIGN);
    ck_assert_uint_eq(rec->rec.result, STOR_RES_OK);
    ck_assert_str_eq(rec->rec.detail, SIGN_ALG);
    free(a);
    assert_no_secret(sad);
}
END_TEST

START_TEST(t_consume_multi)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    const uint8_t *two[2] = {D[2], D[0]};
    const uint8_t *other[2] = {D[0], D[1]};
    oauth_sign_use_t u = use_of("alice", "c1", two, 2);
    uint8_t ref[16];

    sad_for(3, 3, sad);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_OK);
    ck_assert_uint_eq(remaining(sad), 1);
    u.digests = other;
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_EXHAUSTED);
    ck_assert_uint_eq(remaining(sad), 1);
    /* the same digest again is allowed while budget remains */
    u.digests = two;
    u.n_digests = 1;
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_OK);
    ck_assert_uint_eq(remaining(sad), 0);
}
END_TEST

START_TEST(t_consume_expired)
{
    char v[OAUTH_TOKEN_BUFLEN];
    stor_sad_t *s = calloc(1, sizeof(*s));
    oauth_sign_use_t u = use_of("alice", "c1", DP, 1);
    oauth_sign_use_t ub = use_of("bob", "b1", DP, 1);
    uint8_t ref[16];

    fresh_value(v, s->hash);
    snprintf(s->user, sizeof(s->user), "alice");
    snprintf(s->cred, sizeof(s->cred), "c1");
    s->remaining = 5;
    s->expires_at = oauth_now() - 1;
    put_sad(s);
    ck_assert_int_eq(consume(v, &u, ref), OAUTH_ERR_EXPIRED);
    /* expiry is checked first */
    ck_assert_int_eq(consume(v, &ub, ref), OAUTH_ERR_EXPIRED);
    ck_assert_uint_eq(remaining(v), 5);
    /* the same record, unexpired, works (unbound) */
    s->expires_at = oauth_now() + 60;
    put_sad(s);
    ck_assert_int_eq(consume(v, &u, ref), OAUTH_OK);
    free(s);
}
END_TEST

START_TEST(t_consume_mismatch)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    oauth_sign_use_t u = use_of("bob", "c1", DP, 1);
    uint8_t ref[16];
    auds_t *a;

    sad_for(2, 1, sad);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_MISMATCH);
    u.user = "alice";
    u.cred = "c2";
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_MISMATCH);
    u.user = "bob";
    u.cred = "b1";
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_MISMATCH);
    ck_assert_uint_eq(remaining(sad), 2);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_SIGN, STOR_RES_DENIED), 3);
    ck_assert_str_eq(audit_last(a, STOR_EV_SIGN)->rec.detail, SIGN_ALG " mismatch");
    free(a);
}
END_TEST

START_TEST(t_consume_exhausted_order)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    const uint8_t *x[2] = {D[3], D[3]};
    oauth_sign_use_t u = use_of("alice", "c1", x, 2);
    uint8_t ref[16];

    /* budget is checked before the digests */
    sad_for(1, 1, sad);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_EXHAUSTED);
    u.n_digests = 1;
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_NOT_AUTHORIZED);
    ck_assert_uint_eq(remaining(sad), 1);
}
END_TEST

START_TEST(t_consume_not_authorized)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    const uint8_t *mixed[2] = {D[0], D[3]};
    oauth_sign_use_t u = use_of("alice", "c1", &DP[3], 1);
    uint8_t ref[16];
    auds_t *a;

    sad_for(4, 2, sad);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_NOT_AUTHORIZED);
    u.digests = mixed;
    u.n_digests = 2;
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_NOT_AUTHORIZED);
    u = use_of("alice", "c1", DP, 1);
    u.hash_alg = "2.16.840.1.101.3.4.2.3";
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_NOT_AUTHORIZED);
    u.hash_alg = NULL;
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_NOT_AUTHORIZED);
    u.hash_alg = SHA256_OID;
    u.digest_len = 20;   /* a prefix of a bound digest */
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_NOT_AUTHORIZED);
    ck_assert_uint_eq(remaining(sad), 4);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_SIGN, STOR_RES_DENIED), 5);
    ck_assert_str_eq(audit_last(a, STOR_EV_SIGN)->rec.detail, SIGN_ALG " not-authorized");
    free(a);
    u.digest_len = 32;
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_OK);
}
END_TEST

START_TEST(t_consume_unbound)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    uint8_t any[48] = {1, 2, 3};
    const uint8_t *ap[1] = {any};
    oauth_sign_use_t u = use_of("alice", "c1", ap, 1);
    uint8_t ref[16];

    sad_for(2, 0, sad);
    u.hash_alg = "2.16.840.1.101.3.4.2.2";
    u.digest_len = 48;
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_OK);
    u.hash_alg = NULL;
    u.digest_len = 32;
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_OK);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_EXHAUSTED);
}
END_TEST

START_TEST(t_consume_invalid)
{
    char sad[OAUTH_TOKEN_BUFLEN], v[OAUTH_TOKEN_BUFLEN];
    uint8_t h[32], ref[16] = {1};
    oauth_sign_use_t u = use_of("alice", "c1", DP, 1);
    auds_t *a;

    sad_for(1, 1, sad);
    fresh_value(v, h);
    ck_assert_int_eq(consume(v, &u, ref), OAUTH_ERR_INVALID);
    ck_assert_int_eq(consume("not-a-sad", &u, ref), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_sad_consume(fx.o, sad, OAUTH_TOKEN_LEN - 1, &u, ref), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_sad_consume(fx.o, NULL, 0, &u, ref), OAUTH_ERR_INVALID);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_SIGN, STOR_RES_DENIED), 4);
    ck_assert_str_eq(audit_last(a, STOR_EV_SIGN)->rec.detail, SIGN_ALG " invalid");
    free(a);
    /* bad arguments: refused before anything is written */
    u.n_digests = 0;
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_INVAL);
    u = use_of("alice", "c1", NULL, 1);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_INVAL);
    u = use_of("alice", "c1", DP, 1);
    u.digest_len = 0;
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_INVAL);
    u.digest_len = STOR_DIGEST_LEN_MAX + 1;
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_INVAL);
    u = use_of("alice", "c1", DP, STOR_DIGESTS_MAX + 1);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_INVAL);
    u = use_of(NULL, "c1", DP, 1);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_ERR_INVAL);
    u = use_of("alice", "c1", DP, 1);
    ck_assert_int_eq(consume(sad, NULL, ref), OAUTH_ERR_INVAL);
    ck_assert_int_eq(consume(sad, &u, NULL), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_sad_consume(NULL, sad, OAUTH_TOKEN_LEN, &u, ref), OAUTH_ERR_INVAL);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_SIGN, STOR_RES_DENIED), 4);
    free(a);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_OK);
}
END_TEST

START_TEST(t_sign_failed)
{
    char sad[OAUTH_TOKEN_BUFLEN], v[OAUTH_TOKEN_BUFLEN];
    uint8_t h[32], ref[16], want[16];
    oauth_sign_use_t u = use_of("alice", "c1", DP, 1);
    auds_t *a;
    const aud_t *rec;

    sad_for(2, 1, sad);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_OK);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_OK);
    ck_assert_uint_eq(remaining(sad), 0);
    ck_assert_int_eq(oauth_sign_failed(fx.o, sad, OAUTH_TOKEN_LEN, &u, ref, "CKR_DEVICE_ERROR"), OAUTH_OK);
    ck_assert_uint_eq(remaining(sad), 1);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_SIGN_RESULT, STOR_RES_ERROR), 1);
    ck_assert_ptr_nonnull(rec = audit_last(a, STOR_EV_SIGN_RESULT));
    ck_assert_str_eq(rec->rec.detail, "CKR_DEVICE_ERROR");
    ref_of(sad, want);
    ck_assert_mem_eq(rec->rec.authz_ref, want, 16);
    ck_assert_str_eq(rec->rec.user, "alice");
    ck_assert_str_eq(rec->rec.cred, "c1");
    ck_assert_uint_eq(rec->rec.n_digests, 1);
    ck_assert_mem_eq(rec->dig, D[0], 32);
    free(a);
    /* given back: it signs again */
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_OK);
    /* another user's request gives nothing to this SAD, but is recorded */
    oauth_sign_use_t ub = use_of("bob", "b1", DP, 1);
    ck_assert_int_eq(oauth_sign_failed(fx.o, sad, OAUTH_TOKEN_LEN, &ub, ref, "x"), OAUTH_OK);
    ck_assert_uint_eq(remaining(sad), 0);
    /* a SAD that is gone: only the record */
    fresh_value(v, h);
    ck_assert_int_eq(oauth_sign_failed(fx.o, v, OAUTH_TOKEN_LEN, &u, ref, NULL), OAUTH_OK);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_SIGN_RESULT, STOR_RES_ERROR), 3);
    free(a);
    ck_assert_int_eq(oauth_sign_failed(fx.o, "bad", 3, &u, ref, "x"), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_sign_failed(fx.o, sad, OAUTH_TOKEN_LEN, &u, NULL, "x"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_sign_failed(fx.o, sad, OAUTH_TOKEN_LEN, NULL, ref, "x"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_sign_failed(NULL, sad, OAUTH_TOKEN_LEN, &u, ref, "x"), OAUTH_ERR_INVAL);
}
END_TEST

/* ---- concurrency ---------------------------------------------------------- */

#define NTHREADS 8

typedef struct {
    const char *sad;
    pthread_barrier_t *bar;
    int rc;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    oauth_sign_use_t u = use_of("alice", "c1", DP, 1);
    uint8_t ref[16];

    pthread_barrier_wait(w->bar);
    w->rc = oauth_sad_consume(fx.o, w->sad, OAUTH_TOKEN_LEN, &u, ref);
    return NULL;
}

START_TEST(t_consume_concurrent)
{
    char sad[OAUTH_TOKEN_BUFLEN];
    pthread_t th[NTHREADS];
    worker_t w[NTHREADS];
    pthread_barrier_t bar;
    int ok = 0, exhausted = 0;
    auds_t *a;

    sad_for(5, 1, sad);
    ck_assert_int_eq(pthread_barrier_init(&bar, NULL, NTHREADS), 0);
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker_t){sad, &bar, 1};
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ok += w[i].rc == OAUTH_OK;
        exhausted += w[i].rc == OAUTH_ERR_EXHAUSTED;
    }
    pthread_barrier_destroy(&bar);
    ck_assert_int_eq(ok, 5);
    ck_assert_int_eq(exhausted, 3);
    ck_assert_uint_eq(remaining(sad), 0);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_SIGN, STOR_RES_OK) + audit_count(a, STOR_EV_SIGN, STOR_RES_DENIED),
                      NTHREADS);
    ck_assert_uint_eq(audit_count(a, STOR_EV_SIGN, STOR_RES_OK), 5);
    ck_assert_uint_eq(audit_count(a, STOR_EV_SIGN, STOR_RES_DENIED), 3);
    free(a);
}
END_TEST

/* ---- audit ---------------------------------------------------------------- */

START_TEST(t_extend)
{
    char sad[OAUTH_TOKEN_BUFLEN], fresh[OAUTH_TOKEN_BUFLEN], other[OAUTH_TOKEN_BUFLEN];
    uint8_t ref[16];
    unsigned exp = 0;
    oauth_sign_use_t u0 = use_of("alice", "c1", DP, 1), u1 = use_of("alice", "c1", DP + 1, 1);
    oauth_sign_use_t u2 = use_of("alice", "c1", DP + 2, 1);
    oauth_sad_request_t nr = req_of("alice", "c1", 0, DP + 1, 1);

    sad_for(3, 2, sad);
    ck_assert_int_eq(consume(sad, &u0, ref), OAUTH_OK);
    /* another user or credential: refused, nothing changes */
    oauth_sad_request_t bad = req_of("bob", "b1", 0, DP + 1, 1);
    ck_assert_int_eq(oauth_sad_extend(fx.o, sad, strlen(sad), &bad, other, &exp), OAUTH_ERR_MISMATCH);
    ck_assert_str_eq(other, "");
    ck_assert_int_eq(oauth_sad_extend(fx.o, "short", 5, &nr, other, &exp), OAUTH_ERR_INVALID);
    ck_assert_uint_eq(remaining(sad), 2);
    /* a digest never bound to the SAD: refused (that needs credentials/authorize), nothing changes */
    oauth_sad_request_t nd = req_of("alice", "c1", 0, DP + 2, 1);
    ck_assert_int_eq(oauth_sad_extend(fx.o, sad, strlen(sad), &nd, other, &exp), OAUTH_ERR_NOT_AUTHORIZED);
    ck_assert_str_eq(other, "");
    oauth_sad_request_t mixed = req_of("alice", "c1", 0, DP + 1, 2); /* D1 bound, D2 not */
    ck_assert_int_eq(oauth_sad_extend(fx.o, sad, strlen(sad), &mixed, other, &exp), OAUTH_ERR_NOT_AUTHORIZED);
    /* a bound digest already signed: refused too */
    oauth_sad_request_t done = req_of("alice", "c1", 0, DP, 1);
    ck_assert_int_eq(oauth_sad_extend(fx.o, sad, strlen(sad), &done, other, &exp), OAUTH_ERR_NOT_AUTHORIZED);
    ck_assert_uint_eq(remaining(sad), 2);
    ck_assert_int_eq(consume(sad, &u2, ref), OAUTH_ERR_NOT_AUTHORIZED);
    /* the unsigned bound digest: the new SAD binds it alone, one signature; the old SAD is gone */
    ck_assert_int_eq(oauth_sad_extend(fx.o, sad, strlen(sad), &nr, fresh, &exp), OAUTH_OK);
    ck_assert_uint_eq(exp, oauth_config(fx.o)->sad_ttl);
    ck_assert_uint_eq(remaining(fresh), 1);
    ck_assert_int_eq(consume(sad, &u1, ref), OAUTH_ERR_INVALID);
    ck_assert_int_eq(consume(fresh, &u0, ref), OAUTH_ERR_NOT_AUTHORIZED);
    ck_assert_int_eq(consume(fresh, &u2, ref), OAUTH_ERR_NOT_AUTHORIZED);
    ck_assert_int_eq(consume(fresh, &u1, ref), OAUTH_OK);
    ck_assert_int_eq(consume(fresh, &u1, ref), OAUTH_ERR_EXHAUSTED);
    ck_assert_int_eq(oauth_sad_extend(fx.o, fresh, strlen(fresh), &nr, other, &exp), OAUTH_ERR_EXHAUSTED);

    /* without digests: every bound digest not yet signed */
    sad_for(2, 2, sad);
    oauth_sad_request_t keep = req_of("alice", "c1", 0, NULL, 0);
    ck_assert_int_eq(consume(sad, &u0, ref), OAUTH_OK);
    ck_assert_int_eq(oauth_sad_extend(fx.o, sad, strlen(sad), &keep, fresh, &exp), OAUTH_OK);
    ck_assert_uint_eq(remaining(fresh), 1);
    ck_assert_int_eq(consume(fresh, &u0, ref), OAUTH_ERR_NOT_AUTHORIZED);
    ck_assert_int_eq(consume(fresh, &u1, ref), OAUTH_OK);
    sad_for(2, 2, sad);
    ck_assert_int_eq(oauth_sad_extend(fx.o, sad, strlen(sad), &keep, fresh, &exp), OAUTH_OK);
    ck_assert_uint_eq(remaining(fresh), 2);
    ck_assert_int_eq(consume(fresh, &u0, ref), OAUTH_OK);
    ck_assert_int_eq(consume(fresh, &u1, ref), OAUTH_OK);
    /* every bound digest signed, budget left (numSignatures above the digests): nothing to renew */
    sad_for(3, 1, sad);
    ck_assert_int_eq(consume(sad, &u0, ref), OAUTH_OK);
    ck_assert_int_eq(oauth_sad_extend(fx.o, sad, strlen(sad), &keep, other, &exp), OAUTH_ERR_EXHAUSTED);
    ck_assert_uint_eq(remaining(sad), 2);

    /* a signature that failed in the HSM gave its budget back: its digest counts as unsigned again */
    sad_for(2, 2, sad);
    ck_assert_int_eq(consume(sad, &u0, ref), OAUTH_OK);
    ck_assert_int_eq(oauth_sign_failed(fx.o, sad, strlen(sad), &u0, ref, "CKR_DEVICE_ERROR"), OAUTH_OK);
    ck_assert_int_eq(oauth_sad_extend(fx.o, sad, strlen(sad), &done, fresh, &exp), OAUTH_OK);
    ck_assert_int_eq(consume(fresh, &u0, ref), OAUTH_OK);

    /* a SAD bound to no digests (SCAL 1) stays unbound, or is narrowed to the digests named */
    sad_for(2, 0, sad);
    ck_assert_int_eq(oauth_sad_extend(fx.o, sad, strlen(sad), &nd, fresh, &exp), OAUTH_OK);
    ck_assert_int_eq(consume(fresh, &u0, ref), OAUTH_ERR_NOT_AUTHORIZED);
    ck_assert_int_eq(consume(fresh, &u2, ref), OAUTH_OK);
    sad_for(2, 0, sad);
    ck_assert_int_eq(oauth_sad_extend(fx.o, sad, strlen(sad), &keep, fresh, &exp), OAUTH_OK);
    ck_assert_uint_eq(remaining(fresh), 2);
    ck_assert_int_eq(consume(fresh, &u2, ref), OAUTH_OK);
}
END_TEST

static int recent_signins_fn(stor_txn_t *t, void *arg)
{
    stor_recent_t *r = arg;
    char user[STOR_NAME_MAX + 1];
    snprintf(user, sizeof(user), "%s", r->key);
    return stor_txn_recent_get(t, STOR_RECENT_SIGNINS, user, r);
}

/* auth/login records a known user's sign-ins, ok or refused, newest first, in its own write (/account); an unknown
 * name gets no record (nobody can grow the table with made-up names). */
START_TEST(t_signins_recorded)
{
    oauth_tokens_t t;
    stor_recent_t *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, strlen(T_PW), 0, "10.1.2.3", &t), OAUTH_OK);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "Wrong-Pw-3141", 13, 0, "10.1.2.4", &t), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_login(fx.o, "nobody", "Wrong-Pw-3141", 13, 0, "10.1.2.5", &t), OAUTH_ERR_DENIED);
    snprintf(r->key, sizeof(r->key), "alice");
    ck_assert_int_eq(stor_read(fx.stor, recent_signins_fn, r), STOR_OK);
    ck_assert_uint_eq(r->n, 2);
    ck_assert_uint_eq(r->result[0], STOR_RES_DENIED);
    ck_assert_str_eq(r->client[0], "10.1.2.4");
    ck_assert_uint_eq(r->result[1], STOR_RES_OK);
    ck_assert_str_eq(r->client[1], "10.1.2.3");
    ck_assert_uint_eq(r->what[0], STOR_SIGNIN_API);
    ck_assert(r->time_ms[0] > 0);
    memset(r, 0, sizeof(*r));
    snprintf(r->key, sizeof(r->key), "nobody");
    ck_assert_int_eq(stor_read(fx.stor, recent_signins_fn, r), STOR_OK);
    ck_assert_uint_eq(r->n, 0);
    free(r);
}
END_TEST

START_TEST(t_audit_no_secrets)
{
    char sad[OAUTH_TOKEN_BUFLEN], otp[7];
    oauth_sad_request_t r = req_of("alice", "c1", 2, DP, 2);
    oauth_sign_use_t u = use_of("alice", "c1", DP, 1);
    oauth_tokens_t t;
    uint8_t ref[16];

    set_cred("c1", expr_pin_and_otp);
    ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, strlen(T_PW), 1, "cl", &t), OAUTH_OK);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "Wrong-Pw-3141", 13, 1, "cl", &t), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, strlen(T_PW), 1, "cl", &t), OAUTH_OK);
    otp_now(otp);
    ck_assert_int_eq(authorize(&r, "Wrong-Pin-2718", otp, sad), OAUTH_ERR_DENIED);
    ck_assert_int_eq(authorize(&r, T_PIN, otp, sad), OAUTH_OK);
    ck_assert_int_eq(consume(sad, &u, ref), OAUTH_OK);
    ck_assert_int_eq(oauth_sign_failed(fx.o, sad, OAUTH_TOKEN_LEN, &u, ref, "CKR_GENERAL_ERROR"), OAUTH_OK);
    assert_no_secret(T_PW);
    assert_no_secret("Wrong-Pw-3141");
    assert_no_secret(T_PIN);
    assert_no_secret("Wrong-Pin-2718");
    assert_no_secret(otp);
    assert_no_secret(sad);
    assert_no_secret(t.access);
    assert_no_secret(t.refresh);
    /* nor the raw TOTP secret */
    auds_t *a = audit_read();
    for (size_t i = 0; i < a->n; i++)
        ck_assert_ptr_null(memmem(&a->r[i].rec, sizeof(a->r[i].rec), T_TOTP, T_TOTP_LEN));
    ck_assert_uint_ge(a->n, 7);
    free(a);
}
END_TEST

/* A sealed TOTP secret is opened (an HSM decrypt in csc-sam) only by an authorization that gives a code: here an
 * opener that counts its calls and opens to T_TOTP. */
static int opened;

static int counting_opener(void *arg, const stor_user_t *u, uint8_t out[STOR_TOTP_MAX], size_t *len)
{
    (void)arg, (void)u;
    opened++;
    memcpy(out, T_TOTP, T_TOTP_LEN);
    *len = T_TOTP_LEN;
    return 0;
}

START_TEST(t_authz_sealed_opened_only_for_a_code)
{
    char sad[OAUTH_TOKEN_BUFLEN], otp[7];
    stor_user_t u;

    memset(&u, 0, sizeof(u));
    snprintf(u.name, sizeof(u.name), "sue");
    u.status = STOR_USER_ACTIVE;
    memset(u.totp_sealed, 0x5e, 1 + 12 + T_TOTP_LEN + 16);
    u.totp_sealed_len = 1 + 12 + T_TOTP_LEN + 16;
    u.created_at = 1;
    put_user(&u);
    mk_cred("s1", "sue", 1, "PIN");
    mk_cred("s2", "sue", 1, "PIN AND OTP");
    oauth_set_totp_open(fx.o, counting_opener, NULL);
    opened = 0;
    oauth_sad_request_t r = req_of("sue", "s1", 1, DP, 1);
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_OK);
    ck_assert_int_eq(authorize(&r, "wrong-pin", NULL, sad), OAUTH_ERR_DENIED);
    r = req_of("sue", "s2", 1, DP, 1);
    ck_assert_int_eq(authorize(&r, T_PIN, NULL, sad), OAUTH_ERR_DENIED); /* the code it needs is missing */
    ck_assert_int_eq(opened, 0);
    otp_now(otp);
    ck_assert_int_eq(authorize(&r, T_PIN, otp, sad), OAUTH_OK);
    ck_assert_int_eq(opened, 1);
}
END_TEST

Suite *suite_sad(void)
{
    Suite *s = suite_create("oauth_sad");
    TCase *tc = tcase_create("sad");

    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_checked_fixture(tc, sad_setup, fx_teardown);
    tcase_add_test(tc, t_authz_pin_only);
    tcase_add_test(tc, t_authz_pin_and_otp);
    tcase_add_test(tc, t_authz_wrong_pin);
    tcase_add_test(tc, t_authz_wrong_otp);
    tcase_add_test(tc, t_authz_otp_replay);
    tcase_add_test(tc, t_authz_unneeded_wrong_factor);
    tcase_add_test(tc, t_authz_lockout);
    tcase_add_test(tc, t_authz_other_user);
    tcase_add_test(tc, t_authz_disabled);
    tcase_add_test(tc, t_authz_expressions);
    tcase_add_test(tc, t_authz_unbound);
    tcase_add_test(tc, t_authz_inval);
    tcase_add_test(tc, t_consume_happy);
    tcase_add_test(tc, t_consume_multi);
    tcase_add_test(tc, t_consume_expired);
    tcase_add_test(tc, t_consume_mismatch);
    tcase_add_test(tc, t_consume_exhausted_order);
    tcase_add_test(tc, t_consume_not_authorized);
    tcase_add_test(tc, t_consume_unbound);
    tcase_add_test(tc, t_consume_invalid);
    tcase_add_test(tc, t_sign_failed);
    tcase_add_test(tc, t_consume_concurrent);
    tcase_add_test(tc, t_audit_no_secrets);
    tcase_add_test(tc, t_signins_recorded);
    tcase_add_test(tc, t_extend);
    tcase_add_test(tc, t_authz_sealed_opened_only_for_a_code);
    suite_add_tcase(s, tc);
    return s;
}
