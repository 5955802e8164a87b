/* test_secret.c - scrypt verifiers, and the cap on verifications at once. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_oauth.h"

#define VLEN 52

static void hash10(const char *s, uint8_t v[STOR_VERIFIER_MAX], uint32_t *len)
{
    ck_assert_int_eq(oauth_secret_hash(s, strlen(s), 10, v, len), OAUTH_OK);
    ck_assert_uint_eq(*len, VLEN);
}

START_TEST(t_roundtrip)
{
    uint8_t v[STOR_VERIFIER_MAX], w[STOR_VERIFIER_MAX];
    uint32_t len = 99, wlen = 0;

    hash10("correct horse", v, &len);
    ck_assert_uint_eq(v[0], 1);
    ck_assert_uint_eq(v[1], 10);
    ck_assert_uint_eq(v[2], 8);
    ck_assert_uint_eq(v[3], 1);
    ck_assert_int_eq(oauth_secret_verify(v, len, "correct horse", 13), OAUTH_OK);
    /* a fresh salt each time: same secret, different verifier, both verify */
    hash10("correct horse", w, &wlen);
    ck_assert_int_ne(memcmp(v + 4, w + 4, VLEN - 4), 0);
    ck_assert_int_eq(oauth_secret_verify(w, wlen, "correct horse", 13), OAUTH_OK);
    /* the secret does not appear in its verifier */
    ck_assert_ptr_null(memmem(v, len, "correct horse", 13));
}
END_TEST

START_TEST(t_wrong_secret)
{
    uint8_t v[STOR_VERIFIER_MAX];
    uint32_t len = 0;

    hash10("1234", v, &len);
    ck_assert_int_eq(oauth_secret_verify(v, len, "1235", 4), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_secret_verify(v, len, "123", 3), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_secret_verify(v, len, "12345", 5), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_secret_verify(v, len, "", 0), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_secret_verify(v, len, NULL, 0), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_secret_verify(v, len, NULL, 4), OAUTH_ERR_DENIED);
    /* the length given counts, not the NUL */
    ck_assert_int_eq(oauth_secret_verify(v, len, "12345", 4), OAUTH_OK);
}
END_TEST

START_TEST(t_empty_secret)
{
    uint8_t v[STOR_VERIFIER_MAX];
    uint32_t len = 0;

    ck_assert_int_eq(oauth_secret_hash("", 0, 10, v, &len), OAUTH_OK);
    ck_assert_int_eq(oauth_secret_verify(v, len, "", 0), OAUTH_OK);
    ck_assert_int_eq(oauth_secret_verify(v, len, "x", 1), OAUTH_ERR_DENIED);
}
END_TEST

START_TEST(t_malformed_verifier)
{
    uint8_t v[STOR_VERIFIER_MAX], bad[STOR_VERIFIER_MAX];
    uint32_t len = 0;

    hash10("pin", v, &len);
    ck_assert_int_eq(oauth_secret_verify(NULL, len, "pin", 3), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_secret_verify(v, 0, "pin", 3), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_secret_verify(v, len - 1, "pin", 3), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_secret_verify(v, len + 1, "pin", 3), OAUTH_ERR_DENIED);
    /* each header field out of range */
    static const struct { int off; uint8_t val; } cases[] = {
        {0, 0}, {0, 2}, {1, 9}, {1, 21}, {1, 255}, {2, 0}, {2, 9}, {3, 0}, {3, 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(bad, v, len);
        bad[cases[i].off] = cases[i].val;
        ck_assert_msg(oauth_secret_verify(bad, len, "pin", 3) == OAUTH_ERR_DENIED, "case %zu", i);
    }
    /* tampered salt or hash */
    memcpy(bad, v, len);
    bad[10] ^= 1;
    ck_assert_int_eq(oauth_secret_verify(bad, len, "pin", 3), OAUTH_ERR_DENIED);
    memcpy(bad, v, len);
    bad[len - 1] ^= 0x80;
    ck_assert_int_eq(oauth_secret_verify(bad, len, "pin", 3), OAUTH_ERR_DENIED);
    /* the untouched verifier still works */
    ck_assert_int_eq(oauth_secret_verify(v, len, "pin", 3), OAUTH_OK);
}
END_TEST

START_TEST(t_changed_params_verify)
{
    uint8_t v[STOR_VERIFIER_MAX];
    uint32_t len = 0;

    hash10("pin", v, &len);
    /* the stored parameters are the ones used: a different r gives a different key */
    v[2] = 4;
    ck_assert_int_eq(oauth_secret_verify(v, len, "pin", 3), OAUTH_ERR_DENIED);
}
END_TEST

START_TEST(t_hash_inval)
{
    uint8_t v[STOR_VERIFIER_MAX];
    uint32_t len = 7;
    char big[OAUTH_SECRET_MAX + 1];

    memset(big, 'a', sizeof(big));
    ck_assert_int_eq(oauth_secret_hash("x", 1, 9, v, &len), OAUTH_ERR_INVAL);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(oauth_secret_hash("x", 1, 21, v, &len), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_secret_hash("x", 1, 10, NULL, &len), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_secret_hash("x", 1, 10, v, NULL), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_secret_hash(NULL, 1, 10, v, &len), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_secret_hash(big, sizeof(big), 10, v, &len), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_secret_hash(big, sizeof(big) - 1, 10, v, &len), OAUTH_OK);
    ck_assert_int_eq(oauth_secret_verify(v, len, big, sizeof(big) - 1), OAUTH_OK);
    ck_assert_int_eq(oauth_secret_verify(v, len, big, sizeof(big)), OAUTH_ERR_DENIED);
}
END_TEST

START_TEST(t_default_cost)
{
    uint8_t v[STOR_VERIFIER_MAX];
    uint32_t len = 0;

    ck_assert_int_eq(oauth_secret_hash("pw", 2, 0, v, &len), OAUTH_OK);
    ck_assert_uint_eq(v[1], OAUTH_SCRYPT_LOG2N);
    ck_assert_int_eq(oauth_secret_verify(v, len, "pw", 2), OAUTH_OK);
}
END_TEST

/* Each handle makes its own dummy verifier at start, with the configured cost; nothing matches it. */
START_TEST(t_dummy_verifier)
{
    oauth_config_t cfg;
    uint8_t first[STOR_VERIFIER_MAX];

    fx_setup();
    memset(&cfg, 0, sizeof(cfg));
    cfg.scrypt_log2n = 11;
    fx_oauth(cfg);
    ck_assert_uint_eq(fx.o->dummy_len, VLEN);
    ck_assert_uint_eq(fx.o->dummy[1], 11);
    ck_assert_int_eq(oauth_secret_verify(fx.o->dummy, fx.o->dummy_len, "", 0), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_secret_verify(fx.o->dummy, fx.o->dummy_len, "password", 8), OAUTH_ERR_DENIED);
    memcpy(first, fx.o->dummy, VLEN);
    fx_oauth(cfg);
    ck_assert_int_ne(memcmp(first + 4, fx.o->dummy + 4, VLEN - 4), 0); /* per process, not a constant */
    fx_teardown();
}
END_TEST

START_TEST(t_strerror)
{
    int rc;

    for (rc = OAUTH_ERR_INVAL; rc <= OAUTH_OK; rc++) {
        const char *s = oauth_strerror(rc);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_gt(strlen(s), 0);
    }
    ck_assert_str_eq(oauth_strerror(OAUTH_OK), "success");
    ck_assert_str_eq(oauth_strerror(12345), "unknown oauth error");
    ck_assert_str_ne(oauth_strerror(OAUTH_ERR_EXHAUSTED), oauth_strerror(OAUTH_ERR_EXPIRED));
}
END_TEST

/* ---- the cap on verifications at once (oauth_gate_*, oauth_secret_check) ---------------- */

typedef struct {
    struct oauth_gate *g;
    int rc;
} enter_arg_t;

/* Takes a slot (waiting if it must) and gives it back at once. */
static void *enter_thread(void *p)
{
    enter_arg_t *a = p;
    a->rc = oauth_gate_enter(a->g);
    if (a->rc == OAUTH_OK)
        oauth_gate_leave(a->g);
    return NULL;
}

static void wait_for_waiters(struct oauth_gate *g, unsigned n)
{
    for (int i = 0; i < 2000 && oauth_gate_waiting(g) != n; i++)
        usleep(5000);
    ck_assert_uint_eq(oauth_gate_waiting(g), n);
}

START_TEST(t_gate)
{
    struct oauth_gate *g = NULL;
    enter_arg_t a = {0}, b = {0};
    pthread_t ta, tb;

    ck_assert_int_eq(oauth_gate_new(1, &g), OAUTH_OK);
    ck_assert_int_eq(oauth_gate_enter(g), OAUTH_OK);
    /* The slot is taken: one more may wait for it... */
    a.g = g;
    ck_assert_int_eq(pthread_create(&ta, NULL, enter_thread, &a), 0);
    wait_for_waiters(g, 1);
    /* ...and a third is refused without waiting. */
    ck_assert_int_eq(oauth_gate_enter(g), OAUTH_ERR_BUSY);
    ck_assert_uint_eq(oauth_gate_waiting(g), 1);
    /* The slot given back goes to the one waiting. */
    oauth_gate_leave(g);
    pthread_join(ta, NULL);
    ck_assert_int_eq(a.rc, OAUTH_OK);
    ck_assert_uint_eq(oauth_gate_waiting(g), 0);
    /* A waiter whose slot never comes back gives up after OAUTH_VERIFY_WAIT_MS. */
    ck_assert_int_eq(oauth_gate_enter(g), OAUTH_OK);
    b.g = g;
    ck_assert_int_eq(pthread_create(&tb, NULL, enter_thread, &b), 0);
    pthread_join(tb, NULL);
    ck_assert_int_eq(b.rc, OAUTH_ERR_BUSY);
    ck_assert_uint_eq(oauth_gate_waiting(g), 0);
    oauth_gate_leave(g);
    ck_assert_int_eq(oauth_gate_enter(g), OAUTH_OK);
    oauth_gate_leave(g);
    oauth_gate_free(g);
}
END_TEST

/* With every slot taken and the waiting room full, a login or an authorize is refused without checking or counting
 * anything; once a slot is free the same calls are checked and counted as usual. */
START_TEST(t_busy_counts_nothing)
{
    oauth_config_t cfg = {.max_failures = 3, .verify_max = 1};
    enter_arg_t w = {0};
    oauth_tokens_t t;
    stor_cred_t c;
    char sad[OAUTH_TOKEN_BUFLEN];
    unsigned exp = 0;
    pthread_t tw;
    auds_t *a;

    fx_oauth(cfg);
    mk_user("alice", STOR_USER_ACTIVE, 0);
    mk_cred("c1", "alice", 1, "PIN");
    oauth_sad_request_t r = {.user = "alice", .cred = "c1", .num_signatures = 1, .client = "t"};
    oauth_factors_t f = {.pin = "0000", .pin_len = 4};

    ck_assert_int_eq(oauth_gate_enter(fx.o->gate), OAUTH_OK);
    w.g = fx.o->gate;
    ck_assert_int_eq(pthread_create(&tw, NULL, enter_thread, &w), 0);
    wait_for_waiters(fx.o->gate, 1);
    ck_assert_int_eq(oauth_secret_check(fx.o, fx.o->dummy, fx.o->dummy_len, "x", 1), OAUTH_ERR_BUSY);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "Wrong-1", 7, 0, "c", &t), OAUTH_ERR_BUSY);
    ck_assert_int_eq(oauth_login(fx.o, "nobody", "Wrong-1", 7, 0, "c", &t), OAUTH_ERR_BUSY);
    ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, strlen(T_PW), 0, "c", &t), OAUTH_ERR_BUSY);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_BUSY);
    ck_assert_uint_eq(get_user("alice").failed_logins, 0);
    get_cred("c1", &c);
    ck_assert_uint_eq(c.failed_auths, 0);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 0);
    ck_assert_uint_eq(audit_count(a, STOR_EV_AUTHORIZE, STOR_RES_DENIED), 0);
    free(a);

    oauth_gate_leave(fx.o->gate);
    pthread_join(tw, NULL);
    ck_assert_int_eq(w.rc, OAUTH_OK);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "Wrong-1", 7, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(get_user("alice").failed_logins, 1);
    ck_assert_int_eq(oauth_authorize(fx.o, &r, &f, sad, &exp), OAUTH_ERR_DENIED);
    get_cred("c1", &c);
    ck_assert_uint_eq(c.failed_auths, 1);
    ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, strlen(T_PW), 0, "c", &t), OAUTH_OK);
}
END_TEST

Suite *suite_secret(void)
{
    Suite *s = suite_create("oauth_secret");
    TCase *tc = tcase_create("scrypt");

    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, t_roundtrip);
    tcase_add_test(tc, t_wrong_secret);
    tcase_add_test(tc, t_empty_secret);
    tcase_add_test(tc, t_malformed_verifier);
    tcase_add_test(tc, t_changed_params_verify);
    tcase_add_test(tc, t_hash_inval);
    tcase_add_test(tc, t_default_cost);
    tcase_add_test(tc, t_dummy_verifier);
    tcase_add_test(tc, t_strerror);
    suite_add_tcase(s, tc);
    tc = tcase_create("cap");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_add_test(tc, t_gate);
    tcase_add_test(tc, t_busy_counts_nothing);
    suite_add_tcase(s, tc);
    return s;
}
