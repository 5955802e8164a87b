/* test_expr.c - the auth expression evaluator. */
#include <string.h>

#include "test_oauth.h"

#define P OAUTH_FACTOR_PIN
#define O OAUTH_FACTOR_OTP
#define PO (P | O)

typedef struct {
    const char *expr;
    unsigned have, verified;
    int want;
} ecase_t;

static void run(const ecase_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(oauth_expr_eval(c[i].expr, c[i].have, c[i].verified) == c[i].want,
                      "\"%s\" have %u verified %u: got %d want %d", c[i].expr ? c[i].expr : "(null)", c[i].have,
                      c[i].verified, oauth_expr_eval(c[i].expr, c[i].have, c[i].verified), c[i].want);
}

START_TEST(t_single)
{
    static const ecase_t c[] = {
        {"PIN", PO, P, 1}, {"PIN", PO, 0, 0}, {"PIN", PO, O, 0},
        {"OTP", PO, O, 1}, {"OTP", PO, P, 0}, {"  PIN\t", P, P, 1},
        {"(PIN)", P, P, 1}, {"((OTP))", O, O, 1},
    };
    run(c, sizeof(c) / sizeof(c[0]));
}
END_TEST

START_TEST(t_and_or_xor)
{
    static const ecase_t c[] = {
        {"PIN AND OTP", PO, PO, 1}, {"PIN AND OTP", PO, P, 0}, {"PIN AND OTP", PO, O, 0}, {"PIN AND OTP", PO, 0, 0},
        {"PIN OR OTP", PO, PO, 1}, {"PIN OR OTP", PO, P, 1}, {"PIN OR OTP", PO, O, 1}, {"PIN OR OTP", PO, 0, 0},
        {"(PIN OR OTP)", PO, O, 1}, {"(PIN OR OTP)", PO, 0, 0},
        {"PIN XOR OTP", PO, PO, 0}, {"PIN XOR OTP", PO, P, 1}, {"PIN XOR OTP", PO, O, 1}, {"PIN XOR OTP", PO, 0, 0},
        {"PIN AND PIN AND PIN", P, P, 1}, {"PIN OR OTP OR PIN", PO, O, 1},
        {"(PIN AND OTP) OR OTP", PO, O, 1}, {"PIN AND (OTP OR PIN)", PO, P, 1}, {"PIN AND (OTP OR PIN)", PO, O, 0},
        {"(PIN)AND(OTP)", PO, PO, 1},
    };
    run(c, sizeof(c) / sizeof(c[0]));
}
END_TEST

START_TEST(t_precedence)
{
    /* AND binds tighter than XOR, XOR tighter than OR */
    static const ecase_t c[] = {
        {"PIN OR OTP AND PIN", PO, P, 1},      /* PIN OR (OTP AND PIN) */
        {"PIN OR OTP AND PIN", PO, O, 0},
        {"(PIN OR OTP) AND PIN", PO, O, 0},
        {"OTP AND PIN OR PIN", PO, P, 1},      /* (OTP AND PIN) OR PIN */
        {"PIN XOR OTP AND PIN", PO, PO, 0},    /* PIN XOR (OTP AND PIN) = 1 ^ 1 */
        {"PIN XOR OTP AND PIN", PO, P, 1},     /* 1 ^ 0 */
        {"(PIN XOR OTP) AND PIN", PO, PO, 0},
        {"PIN OR PIN XOR PIN", P, P, 1},       /* PIN OR (PIN XOR PIN) = 1 | 0 */
        {"(PIN OR PIN) XOR PIN", P, P, 0},
    };
    run(c, sizeof(c) / sizeof(c[0]));
}
END_TEST

START_TEST(t_malformed)
{
    static const char *bad[] = {"PIN AND", "AND PIN", "OR", "(PIN", "PIN)", "()", "(", ")", "PIN OTP",
                                "PIN & OTP", "PIN && OTP", "PIN, OTP", "PIN AND AND OTP", "pin and otp",
                                "PIN NOT OTP", "(PIN OR) OTP", "PIN\nAND OTP", "PIN AND ()",
                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};   /* 33-character id */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(oauth_expr_eval(bad[i], PO, PO) == OAUTH_ERR_INVAL, "\"%s\"", bad[i]);
}
END_TEST

START_TEST(t_unknown_ids)
{
    static const ecase_t c[] = {
        {"FOO", PO, PO, 0}, {"PIN OR FOO", PO, PO, 0}, {"PIN AND FOO", PO, PO, 0}, {"FOO XOR PIN", PO, P, 0},
        {"pin", PO, PO, 0}, {"PIN2", PO, PO, 0}, {"SMS OR OTP", PO, PO, 0}, {"PASSWORD", PO, PO, 0},
    };
    run(c, sizeof(c) / sizeof(c[0]));
}
END_TEST

START_TEST(t_empty)
{
    static const ecase_t c[] = {
        {"", PO, PO, 1}, {"", PO, P, 0}, {"", PO, O, 0}, {"", PO, 0, 0},
        {"", P, P, 1}, {"", P, 0, 0}, {"", O, O, 1},
        {NULL, PO, PO, 1}, {NULL, P, 0, 0}, {" \t ", P, P, 1},
        /* nothing to verify is nothing satisfied */
        {"", 0, 0, 0}, {"", 0, PO, 0},
    };
    run(c, sizeof(c) / sizeof(c[0]));
}
END_TEST

START_TEST(t_not_had)
{
    /* a factor the credential does not have cannot count as verified */
    static const ecase_t c[] = {
        {"OTP", P, PO, 0}, {"PIN OR OTP", 0, PO, 0}, {"PIN", O, PO, 0},
    };
    run(c, sizeof(c) / sizeof(c[0]));
}
END_TEST

START_TEST(t_depth_and_length)
{
    char e[STOR_EXPR_MAX + 2];
    int d = OAUTH_EXPR_DEPTH_MAX;

    /* depth exactly at the limit */
    memset(e, 0, sizeof(e));
    memset(e, '(', (size_t)d);
    memcpy(e + d, "PIN", 3);
    memset(e + d + 3, ')', (size_t)d);
    ck_assert_int_eq(oauth_expr_eval(e, P, P), 1);
    /* one deeper */
    memset(e, 0, sizeof(e));
    memset(e, '(', (size_t)d + 1);
    memcpy(e + d + 1, "PIN", 3);
    memset(e + d + 4, ')', (size_t)d + 1);
    ck_assert_int_eq(oauth_expr_eval(e, P, P), OAUTH_ERR_INVAL);
    /* sequential groups do not add up */
    ck_assert_int_eq(oauth_expr_eval("((((PIN)))) AND ((((OTP))))", PO, PO), 1);
    /* length: STOR_EXPR_MAX is fine, one more is refused */
    memset(e, ' ', sizeof(e));
    memcpy(e, "PIN", 3);
    e[STOR_EXPR_MAX] = '\0';
    ck_assert_int_eq(oauth_expr_eval(e, P, P), 1);
    e[STOR_EXPR_MAX] = ' ';
    e[STOR_EXPR_MAX + 1] = '\0';
    ck_assert_int_eq(oauth_expr_eval(e, P, P), OAUTH_ERR_INVAL);
}
END_TEST

Suite *suite_expr(void)
{
    Suite *s = suite_create("oauth_expr");
    TCase *tc = tcase_create("expr");

    tcase_add_test(tc, t_single);
    tcase_add_test(tc, t_and_or_xor);
    tcase_add_test(tc, t_precedence);
    tcase_add_test(tc, t_malformed);
    tcase_add_test(tc, t_unknown_ids);
    tcase_add_test(tc, t_empty);
    tcase_add_test(tc, t_not_had);
    tcase_add_test(tc, t_depth_and_length);
    suite_add_tcase(s, tc);
    return s;
}
