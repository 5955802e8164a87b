/* test_challenge.c - one-time codes of the CHALLENGE object (getChallenge / v1 sendOTP) and their use by
 * credentials/authorize. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "test_oauth.h"

static void chal_setup(void)
{
    fx_setup();
    mk_user("alice", STOR_USER_ACTIVE, 1);
    mk_user("bob", STOR_USER_ACTIVE, 1);
    mk_cred("c1", "alice", 1, "PIN AND CHALLENGE");
    mk_cred("c2", "alice", 0, "CHALLENGE");
    mk_cred("p1", "alice", 1, "PIN");
    mk_cred("b1", "bob", 0, "CHALLENGE");
}

static oauth_sad_request_t req_of(const char *user, const char *cred)
{
    oauth_sad_request_t r;

    memset(&r, 0, sizeof(r));
    r.user = user;
    r.cred = cred;
    r.num_signatures = 1;
    r.client = "cl";
    return r;
}

/* credentials/authorize through handle o (another process on the same storage), with a PIN and a one-time code. */
static int authorize_through(oauth_t *o, const char *user, const char *cred, const char *pin, const char *code)
{
    oauth_factors_t f = {pin, pin ? strlen(pin) : 0, NULL, 0, code, code ? strlen(code) : 0};
    oauth_sad_request_t r = req_of(user, cred);
    char sad[OAUTH_TOKEN_BUFLEN];
    unsigned exp = 0;
    int rc = oauth_authorize(o, &r, &f, sad, &exp);

    OPENSSL_cleanse(sad, sizeof(sad));
    return rc;
}

static int authorize(const char *user, const char *cred, const char *pin, const char *code)
{
    return authorize_through(fx.o, user, cred, pin, code);
}

static int authorize_on(oauth_t *o, const char *user, const char *cred, const char *code)
{
    return authorize_through(o, user, cred, NULL, code);
}

static void issue(const char *user, const char *cred, char code[OAUTH_CHALLENGE_DIGITS + 1])
{
    unsigned ttl = 0;

    ck_assert_int_eq(oauth_challenge_new(fx.o, user, cred, "cl", code, &ttl), OAUTH_OK);
    ck_assert_uint_eq(strlen(code), OAUTH_CHALLENGE_DIGITS);
    ck_assert_uint_eq(strspn(code, "0123456789"), OAUTH_CHALLENGE_DIGITS);
    ck_assert_uint_eq(ttl, oauth_config(fx.o)->challenge_ttl);
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

/* A code that differs from code in its last digit. */
static void other_code(const char *code, char out[OAUTH_CHALLENGE_DIGITS + 1])
{
    memcpy(out, code, OAUTH_CHALLENGE_DIGITS + 1);
    out[OAUTH_CHALLENGE_DIGITS - 1] = code[OAUTH_CHALLENGE_DIGITS - 1] == '9' ? '0' : (char)(code[OAUTH_CHALLENGE_DIGITS - 1] + 1);
}

START_TEST(t_chal_accepted_once)
{
    char code[OAUTH_CHALLENGE_DIGITS + 1];
    auds_t *a;
    const aud_t *rec;

    issue("alice", "c1", code);
    /* the PIN alone does not satisfy "PIN AND CHALLENGE" (and does not use the code up) */
    ck_assert_int_eq(authorize("alice", "c1", T_PIN, NULL), OAUTH_ERR_DENIED);
    ck_assert_int_eq(authorize("alice", "c1", T_PIN, code), OAUTH_OK);
    ck_assert_int_eq(authorize("alice", "c1", T_PIN, code), OAUTH_ERR_DENIED);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_CHALLENGE, STOR_RES_OK), 1);
    ck_assert_ptr_nonnull(rec = audit_last(a, STOR_EV_CHALLENGE));
    ck_assert_str_eq(rec->rec.user, "alice");
    ck_assert_str_eq(rec->rec.cred, "c1");
    ck_assert_str_eq(rec->rec.client, "cl");
    free(a);
    assert_no_secret(code);
}
END_TEST

START_TEST(t_chal_wrong_uses_up)
{
    char code[OAUTH_CHALLENGE_DIGITS + 1], bad[OAUTH_CHALLENGE_DIGITS + 1];

    issue("alice", "c2", code);
    other_code(code, bad);
    ck_assert_int_eq(authorize("alice", "c2", NULL, bad), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(cred_failures("c2"), 1);
    /* the right code after a wrong try: the pending code is gone */
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(cred_failures("c2"), 2);
    /* a new code works and clears the count */
    issue("alice", "c2", code);
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_OK);
    ck_assert_uint_eq(cred_failures("c2"), 0);
    /* malformed values are wrong values */
    issue("alice", "c2", code);
    ck_assert_int_eq(authorize("alice", "c2", NULL, "12345"), OAUTH_ERR_DENIED);
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_ERR_DENIED);
}
END_TEST

START_TEST(t_chal_replaced)
{
    char c_old[OAUTH_CHALLENGE_DIGITS + 1], c_new[OAUTH_CHALLENGE_DIGITS + 1];
    unsigned ttl = 9;

    issue("alice", "c2", c_old);
    /* too soon: refused (each code costs a message), the pending code stays, the refusal is audited */
    ck_assert_int_eq(oauth_challenge_new(fx.o, "alice", "c2", "cl", c_new, &ttl), OAUTH_ERR_RATE);
    ck_assert_str_eq(c_new, "");
    auds_t *a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_CHALLENGE, STOR_RES_DENIED), 1);
    free(a);
    oauth_int_set_skew(fx.o, OAUTH_CHALLENGE_RESEND);
    issue("alice", "c2", c_new);
    if (strcmp(c_old, c_new) != 0)
        ck_assert_int_eq(authorize("alice", "c2", NULL, c_old), OAUTH_ERR_DENIED);
    issue("alice", "c2", c_new);   /* the used-up code left no pending one: no wait */
    ck_assert_int_eq(authorize("alice", "c2", NULL, c_new), OAUTH_OK);
}
END_TEST

START_TEST(t_chal_expired)
{
    char code[OAUTH_CHALLENGE_DIGITS + 1];

    issue("alice", "c2", code);
    oauth_int_set_skew(fx.o, (int64_t)oauth_config(fx.o)->challenge_ttl);
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_ERR_DENIED);
    oauth_int_set_skew(fx.o, 0);
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_ERR_DENIED);
}
END_TEST

START_TEST(t_chal_bound)
{
    char code[OAUTH_CHALLENGE_DIGITS + 1];
    unsigned ttl = 9;

    /* a code for c1 does not open c2 (nor is it used up by that try) */
    issue("alice", "c1", code);
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_ERR_DENIED);
    ck_assert_int_eq(authorize("alice", "c1", T_PIN, code), OAUTH_OK);
    /* another user's credential, an unknown one, one without the object: the same refusal, audited */
    ck_assert_int_eq(oauth_challenge_new(fx.o, "bob", "c1", "cl", code, &ttl), OAUTH_ERR_INVALID);
    ck_assert_str_eq(code, "");
    ck_assert_uint_eq(ttl, 0);
    ck_assert_int_eq(oauth_challenge_new(fx.o, "alice", "nope", "cl", code, &ttl), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_challenge_new(fx.o, "alice", "p1", "cl", code, &ttl), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_challenge_new(fx.o, NULL, "p1", "cl", code, &ttl), OAUTH_ERR_INVAL);
    auds_t *a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_CHALLENGE, STOR_RES_DENIED), 3);
    free(a);
}
END_TEST

static void lock_now(stor_cred_t *c)
{
    c->locked_until = oauth_now() + 100;
}

static void disable(stor_cred_t *c)
{
    c->status = STOR_CRED_DISABLED;
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

START_TEST(t_chal_locked_disabled)
{
    char code[OAUTH_CHALLENGE_DIGITS + 1];
    unsigned ttl;

    set_cred("c1", lock_now);
    ck_assert_int_eq(oauth_challenge_new(fx.o, "alice", "c1", "cl", code, &ttl), OAUTH_ERR_LOCKED);
    set_cred("c2", disable);
    ck_assert_int_eq(oauth_challenge_new(fx.o, "alice", "c2", "cl", code, &ttl), OAUTH_ERR_DISABLED);
}
END_TEST

START_TEST(t_chal_lockout)
{
    char code[OAUTH_CHALLENGE_DIGITS + 1], bad[OAUTH_CHALLENGE_DIGITS + 1];
    unsigned ttl;

    /* max_failures is 3 in the fixture: three wrong codes lock the credential */
    for (int i = 0; i < 3; i++) {
        issue("alice", "c2", code);
        other_code(code, bad);
        ck_assert_int_eq(authorize("alice", "c2", NULL, bad), OAUTH_ERR_DENIED);
    }
    ck_assert_int_eq(oauth_challenge_new(fx.o, "alice", "c2", "cl", code, &ttl), OAUTH_ERR_LOCKED);
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_ERR_LOCKED);
}
END_TEST

START_TEST(t_chal_cancel_full)
{
    char code[OAUTH_CHALLENGE_DIGITS + 1], c2[OAUTH_CHALLENGE_DIGITS + 1];
    unsigned ttl;
    const aud_t *rec;

    issue("alice", "c2", code);
    ck_assert_int_eq(oauth_challenge_cancel(fx.o, "alice", "c2", "cl", "sender failed"), OAUTH_OK);
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_ERR_DENIED);
    auds_t *a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_CHALLENGE, STOR_RES_ERROR), 1);
    ck_assert_ptr_nonnull(rec = audit_last(a, STOR_EV_CHALLENGE));
    ck_assert_ptr_nonnull(strstr(rec->rec.detail, "sender failed"));
    free(a);
    /* bounded table: with room for one pair, a second pair is refused, the first pair may renew */
    oauth_chal_set_cap(fx.o, 1);
    issue("alice", "c2", code);
    ck_assert_int_eq(oauth_challenge_new(fx.o, "bob", "b1", "cl", c2, &ttl), OAUTH_ERR_FULL);
    oauth_int_set_skew(fx.o, OAUTH_CHALLENGE_RESEND);
    issue("alice", "c2", code);
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_OK);
    /* a used slot is free again */
    issue("bob", "b1", c2);
    ck_assert_int_eq(authorize("bob", "b1", NULL, c2), OAUTH_OK);
}
END_TEST

START_TEST(t_chal_expr)
{
    const unsigned P = OAUTH_FACTOR_PIN, C = OAUTH_FACTOR_CHALLENGE;

    ck_assert_int_eq(oauth_expr_eval("PIN AND CHALLENGE", P | C, P | C), 1);
    ck_assert_int_eq(oauth_expr_eval("PIN AND CHALLENGE", P | C, P), 0);
    ck_assert_int_eq(oauth_expr_eval("PIN AND CHALLENGE", P | C, C), 0);
    ck_assert_int_eq(oauth_expr_eval("CHALLENGE", C, C), 1);
    ck_assert_int_eq(oauth_expr_eval("CHALLENGE", C, 0), 0);
    /* a credential without the object cannot have it verified */
    ck_assert_int_eq(oauth_expr_eval("CHALLENGE", P, C), 0);
    ck_assert_int_eq(oauth_expr_names("PIN AND CHALLENGE", "CHALLENGE"), 1);
    ck_assert_int_eq(oauth_expr_names("(PIN OR CHALLENGE)", "CHALLENGE"), 1);
    ck_assert_int_eq(oauth_expr_names("PIN AND CHALLENGE2", "CHALLENGE"), 0);
    ck_assert_int_eq(oauth_expr_names("XCHALLENGE", "CHALLENGE"), 0);
    ck_assert_int_eq(oauth_expr_names("PIN", "CHALLENGE"), 0);
    ck_assert_int_eq(oauth_expr_names(NULL, "CHALLENGE"), 0);
}
END_TEST

/* The production policy's test: can one factor alone satisfy the expression? */
START_TEST(t_expr_single_factor)
{
    static const char *const one[] = {"PIN", "OTP", "CHALLENGE", "PIN OR OTP", "PIN XOR OTP", "(PIN AND OTP) OR PIN",
                                      "", "  ", "PIN AND", "APPROVAL OR PIN"};
    static const char *const two[] = {"PIN AND OTP", "PIN AND CHALLENGE", "(PIN OR OTP) AND CHALLENGE", "APPROVAL",
                                      "PIN AND APPROVAL", "OTP AND (PIN OR CHALLENGE)"};
    for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++)
        ck_assert_msg(oauth_expr_single_factor(one[i]) == 1, "%s", one[i]);
    for (size_t i = 0; i < sizeof(two) / sizeof(two[0]); i++)
        ck_assert_msg(oauth_expr_single_factor(two[i]) == 0, "%s", two[i]);
    ck_assert_int_eq(oauth_expr_single_factor(NULL), 1);
}
END_TEST

/* Codes live in storage: one handle makes a code, another (a restarted csc-sam, another node) uses it, once. */
START_TEST(t_chal_shared_across_handles)
{
    char code[OAUTH_CHALLENGE_DIGITS + 1];
    oauth_t *o2 = fx_second_handle(FX_CHAL_KEY);

    issue("alice", "c2", code);
    oauth_free(fx.o); /* the process that made it is gone */
    fx.o = NULL;
    ck_assert_int_eq(authorize_on(o2, "alice", "c2", code), OAUTH_OK);
    fx_oauth((oauth_config_t){.max_failures = 3});
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_ERR_DENIED); /* used up on the other handle */
    ck_assert_int_eq(authorize_on(o2, "alice", "c2", code), OAUTH_ERR_DENIED);
    /* the other way round, and a new code may be asked for at once (none pending) */
    issue("alice", "c2", code);
    ck_assert_int_eq(authorize_on(o2, "alice", "c2", code), OAUTH_OK);
    oauth_free(o2);
    /* a handle without the key cannot check a code; one with another key does not accept it */
    issue("alice", "c2", code);
    o2 = fx_second_handle(NULL);
    ck_assert_int_eq(authorize_on(o2, "alice", "c2", code), OAUTH_ERR_DENIED);
    oauth_free(o2);
    issue("alice", "c2", code);
    o2 = fx_second_handle((const uint8_t *)"another-challenge-mac-key-32byte");
    ck_assert_int_eq(authorize_on(o2, "alice", "c2", code), OAUTH_ERR_DENIED);
    unsigned ttl = 0;
    ck_assert_int_eq(oauth_challenge_new(o2, "alice", "c2", "cl", code, &ttl), OAUTH_OK);
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_ERR_DENIED);
    oauth_free(o2);
    /* without a key no code is made */
    o2 = fx_second_handle(NULL);
    ck_assert_int_eq(oauth_challenge_new(o2, "alice", "c2", "cl", code, &ttl), OAUTH_ERR_INTERNAL);
    ck_assert_str_eq(code, "");
    oauth_free(o2);
}
END_TEST

typedef struct {
    uint8_t key[32];
    stor_challenge_t rec;
    size_t n;
} row_t;

static int row_read(stor_txn_t *t, void *arg)
{
    row_t *r = arg;
    int rc = stor_txn_challenge_get(t, r->key, &r->rec);
    return rc != STOR_OK ? rc : stor_txn_challenge_count(t, &r->n);
}

/* The stored row holds neither the code nor an unkeyed hash of it: only the HMAC under the challenge key. */
START_TEST(t_chal_row_keyed)
{
    char code[OAUTH_CHALLENGE_DIGITS + 1];
    uint8_t h[32], want[32];
    unsigned n = 0;
    row_t r;

    memset(&r, 0, sizeof(r));
    issue("alice", "c2", code);
    ck_assert_int_eq(oauth_chal_key("alice", "c2", r.key), OAUTH_OK);
    ck_assert_int_eq(stor_read(fx.stor, row_read, &r), STOR_OK);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_ptr_null(memmem(&r.rec, sizeof(r.rec), code, OAUTH_CHALLENGE_DIGITS));
    uint8_t msg[32 + OAUTH_CHALLENGE_DIGITS];
    ck_assert_int_eq(oauth_sha256(code, OAUTH_CHALLENGE_DIGITS, h), OAUTH_OK);
    ck_assert_int_ne(memcmp(h, r.rec.mac, 32), 0);
    memcpy(msg, "alice\0c2\0", 9);
    memcpy(msg + 9, code, OAUTH_CHALLENGE_DIGITS);
    ck_assert_int_eq(oauth_sha256(msg, 9 + OAUTH_CHALLENGE_DIGITS, h), OAUTH_OK);
    ck_assert_int_ne(memcmp(h, r.rec.mac, 32), 0);
    memcpy(msg, r.key, 32);
    memcpy(msg + 32, code, OAUTH_CHALLENGE_DIGITS);
    ck_assert_int_eq(oauth_sha256(msg, sizeof(msg), h), OAUTH_OK);
    ck_assert_int_ne(memcmp(h, r.rec.mac, 32), 0);
    /* what it is: HMAC-SHA256 under the key of oauth_set_challenge_key over key || code */
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), FX_CHAL_KEY, OAUTH_CHALLENGE_KEY_LEN, msg, sizeof(msg), want, &n));
    ck_assert_int_eq(memcmp(want, r.rec.mac, 32), 0);
    ck_assert_int_eq(r.rec.expires_at - r.rec.issued_at, (int64_t)oauth_config(fx.o)->challenge_ttl);
    /* used up: the row is gone */
    ck_assert_int_eq(authorize("alice", "c2", NULL, code), OAUTH_OK);
    ck_assert_int_eq(stor_read(fx.stor, row_read, &r), STOR_ERR_NOTFOUND);
}
END_TEST

/* Full: expired codes make room (they are purged), unexpired ones do not; the purge removes expired rows. */
START_TEST(t_chal_full_expired_make_room)
{
    char code[OAUTH_CHALLENGE_DIGITS + 1], c2[OAUTH_CHALLENGE_DIGITS + 1];
    unsigned ttl;
    row_t r;

    oauth_chal_set_cap(fx.o, 1);
    issue("alice", "c2", code);
    ck_assert_int_eq(oauth_challenge_new(fx.o, "bob", "b1", "cl", c2, &ttl), OAUTH_ERR_FULL);
    oauth_int_set_skew(fx.o, (int64_t)oauth_config(fx.o)->challenge_ttl);
    issue("bob", "b1", c2);
    ck_assert_int_eq(authorize("bob", "b1", NULL, c2), OAUTH_OK);
    /* csc-sam's purge removes expired codes */
    oauth_int_set_skew(fx.o, 0);
    issue("alice", "c2", code);
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(oauth_chal_key("alice", "c2", r.key), OAUTH_OK);
    ck_assert_int_eq(stor_purge_expired(fx.stor, oauth_now()), 0);
    ck_assert_int_eq(stor_read(fx.stor, row_read, &r), STOR_OK);
    ck_assert_int_eq(stor_purge_expired(fx.stor, oauth_now() + oauth_config(fx.o)->challenge_ttl), 1);
    ck_assert_int_eq(stor_read(fx.stor, row_read, &r), STOR_ERR_NOTFOUND);
}
END_TEST

Suite *suite_challenge(void)
{
    Suite *s = suite_create("oauth_challenge");
    TCase *tc = tcase_create("challenge");

    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_checked_fixture(tc, chal_setup, fx_teardown);
    tcase_add_test(tc, t_chal_accepted_once);
    tcase_add_test(tc, t_chal_wrong_uses_up);
    tcase_add_test(tc, t_chal_replaced);
    tcase_add_test(tc, t_chal_expired);
    tcase_add_test(tc, t_chal_bound);
    tcase_add_test(tc, t_chal_locked_disabled);
    tcase_add_test(tc, t_chal_lockout);
    tcase_add_test(tc, t_chal_cancel_full);
    tcase_add_test(tc, t_chal_shared_across_handles);
    tcase_add_test(tc, t_chal_row_keyed);
    tcase_add_test(tc, t_chal_full_expired_make_room);
    tcase_add_test(tc, t_chal_expr);
    tcase_add_test(tc, t_expr_single_factor);
    suite_add_tcase(s, tc);
    return s;
}
