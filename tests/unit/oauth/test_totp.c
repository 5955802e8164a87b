/* test_totp.c - TOTP check, base32 and the provisioning URI. */
#include <string.h>

#include <liboath/oath.h>

#include "test_oauth.h"

static const uint8_t *SECRET = (const uint8_t *)T_TOTP;

static void init_oath(void)
{
    ck_assert_int_eq(oath_init(), OATH_OK);
}

static int check(const char *otp, int64_t now, unsigned window, int64_t *step)
{
    return oauth_totp_check(SECRET, T_TOTP_LEN, otp, strlen(otp), now, window, step);
}

/* RFC 6238 appendix B, SHA-1: the last six of the eight digits. */
START_TEST(t_rfc6238_vectors)
{
    static const struct { int64_t t; const char *otp; } v[] = {
        {59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"},
        {1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"},
    };
    int64_t step = -1;

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ck_assert_msg(check(v[i].otp, v[i].t, 0, &step) == OAUTH_OK, "vector %zu", i);
        ck_assert_int_eq(step, v[i].t / 30);
    }
    ck_assert_int_eq(check("287082", 59, 1, &step), OAUTH_OK);
    ck_assert_int_eq(step, 1);
}
END_TEST

START_TEST(t_window)
{
    const int64_t now = 1700000000;
    char otp[7];
    int64_t step = 0;
    int d;

    for (d = -1; d <= 1; d++) {
        totp_at(now + d * 30, otp);
        ck_assert_msg(check(otp, now, 1, &step) == OAUTH_OK, "offset %d", d);
        /* the matched step, not the current one */
        ck_assert_int_eq(step, now / 30 + d);
    }
    for (d = -2; d <= 2; d += 4) {
        totp_at(now + d * 30, otp);
        ck_assert_msg(check(otp, now, 1, &step) == OAUTH_ERR_DENIED, "offset %d", d);
        ck_assert_int_eq(step, 0);
        /* a wider window takes it */
        ck_assert_int_eq(check(otp, now, 2, &step), OAUTH_OK);
        ck_assert_int_eq(step, now / 30 + d);
    }
    /* window 0: the current step only */
    totp_at(now - 30, otp);
    ck_assert_int_eq(check(otp, now, 0, &step), OAUTH_ERR_DENIED);
    totp_at(now, otp);
    ck_assert_int_eq(check(otp, now, 0, &step), OAUTH_OK);
}
END_TEST

START_TEST(t_wrong_code)
{
    char otp[7];
    int64_t step = 5;

    totp_at(59, otp);
    ck_assert_str_eq(otp, "287082");
    ck_assert_int_eq(check("287083", 59, 1, &step), OAUTH_ERR_DENIED);
    ck_assert_int_eq(step, 0);
    ck_assert_int_eq(check("000000", 59, 1, &step), OAUTH_ERR_DENIED);
    /* another secret */
    ck_assert_int_eq(oauth_totp_check((const uint8_t *)"abcdefghijklmnopqrst", 20, "287082", 6, 59, 1, &step),
                     OAUTH_ERR_DENIED);
}
END_TEST

START_TEST(t_malformed_otp)
{
    int64_t step = 0;
    static const char *bad[] = {"28708a", "28708", "2870820", "94287082", "", " 287082", "287082 ", "+87082",
                                "-87082", "2870 2", "28708\n"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(check(bad[i], 59, 1, &step) == OAUTH_ERR_DENIED, "otp \"%s\"", bad[i]);
    /* the length given is what counts */
    ck_assert_int_eq(oauth_totp_check(SECRET, T_TOTP_LEN, "2870821", 6, 59, 1, &step), OAUTH_OK);
    ck_assert_int_eq(oauth_totp_check(SECRET, T_TOTP_LEN, "287082", 5, 59, 1, &step), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_totp_check(SECRET, T_TOTP_LEN, "287\0" "82", 6, 59, 1, &step), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_totp_check(SECRET, T_TOTP_LEN, NULL, 6, 59, 1, &step), OAUTH_ERR_DENIED);
}
END_TEST

START_TEST(t_check_inval)
{
    int64_t step = 9;

    ck_assert_int_eq(oauth_totp_check(NULL, 20, "287082", 6, 59, 1, &step), OAUTH_ERR_INVAL);
    ck_assert_int_eq(step, 0);
    ck_assert_int_eq(oauth_totp_check(SECRET, 0, "287082", 6, 59, 1, &step), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_totp_check(SECRET, STOR_TOTP_MAX + 1, "287082", 6, 59, 1, &step), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_totp_check(SECRET, 20, "287082", 6, -1, 1, &step), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_totp_check(SECRET, 20, "287082", 6, 59, OAUTH_TOTP_WINDOW_MAX + 1, &step),
                     OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_totp_check(SECRET, 20, "287082", 6, 59, 1, NULL), OAUTH_ERR_INVAL);
}
END_TEST

START_TEST(t_new_secret)
{
    uint8_t a[OAUTH_TOTP_SECRET_LEN], b[OAUTH_TOTP_SECRET_LEN];

    ck_assert_int_eq(oauth_totp_new_secret(a), OAUTH_OK);
    ck_assert_int_eq(oauth_totp_new_secret(b), OAUTH_OK);
    ck_assert_int_ne(memcmp(a, b, sizeof(a)), 0);
    ck_assert_int_eq(oauth_totp_new_secret(NULL), OAUTH_ERR_INVAL);
}
END_TEST

START_TEST(t_base32_vectors)
{
    /* RFC 4648 section 10, without padding */
    static const struct { const char *in, *out; } v[] = {
        {"", ""}, {"f", "MY"}, {"fo", "MZXQ"}, {"foo", "MZXW6"}, {"foob", "MZXW6YQ"},
        {"fooba", "MZXW6YTB"}, {"foobar", "MZXW6YTBOI"},
    };
    char out[64];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        memset(out, 'x', sizeof(out));
        ck_assert_int_eq(oauth_base32_encode((const uint8_t *)v[i].in, strlen(v[i].in), out, sizeof(out)), OAUTH_OK);
        ck_assert_str_eq(out, v[i].out);
    }
    /* the RFC 6238 secret as authenticator apps see it */
    ck_assert_int_eq(oauth_base32_encode(SECRET, T_TOTP_LEN, out, sizeof(out)), OAUTH_OK);
    ck_assert_str_eq(out, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    /* all byte values: 0xff.. */
    ck_assert_int_eq(oauth_base32_encode((const uint8_t *)"\xff\xff\xff\xff\xff", 5, out, sizeof(out)), OAUTH_OK);
    ck_assert_str_eq(out, "77777777");
}
END_TEST

START_TEST(t_base32_bounds)
{
    char out[16];

    /* "foobar" needs 10 characters + NUL */
    ck_assert_int_eq(oauth_base32_encode((const uint8_t *)"foobar", 6, out, 11), OAUTH_OK);
    ck_assert_str_eq(out, "MZXW6YTBOI");
    ck_assert_int_eq(oauth_base32_encode((const uint8_t *)"foobar", 6, out, 10), OAUTH_ERR_INVAL);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(oauth_base32_encode((const uint8_t *)"f", 1, out, 0), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_base32_encode(NULL, 1, out, sizeof(out)), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_base32_encode((const uint8_t *)"f", 1, NULL, 16), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_base32_encode((const uint8_t *)"f", SIZE_MAX, out, sizeof(out)), OAUTH_ERR_INVAL);
}
END_TEST

START_TEST(t_uri)
{
    char out[512];
    const char *want = "otpauth://totp/ACME%20Corp:alice%40example.com?secret=MZXW6YTBOI&issuer=ACME%20Corp"
                       "&algorithm=SHA1&digits=6&period=30";

    ck_assert_int_eq(oauth_totp_uri("ACME Corp", "alice@example.com", (const uint8_t *)"foobar", 6, out, sizeof(out)),
                     OAUTH_OK);
    ck_assert_str_eq(out, want);
    /* reserved characters of the label and query are encoded */
    ck_assert_int_eq(oauth_totp_uri("a:b&c=d?/", "u~._-Z9", (const uint8_t *)"f", 1, out, sizeof(out)), OAUTH_OK);
    ck_assert_str_eq(out, "otpauth://totp/a%3Ab%26c%3Dd%3F%2F:u~._-Z9?secret=MY&issuer=a%3Ab%26c%3Dd%3F%2F"
                          "&algorithm=SHA1&digits=6&period=30");
    /* UTF-8 bytes */
    ck_assert_int_eq(oauth_totp_uri("\xc3\xa9", "u", (const uint8_t *)"f", 1, out, sizeof(out)), OAUTH_OK);
    ck_assert_str_eq(out, "otpauth://totp/%C3%A9:u?secret=MY&issuer=%C3%A9&algorithm=SHA1&digits=6&period=30");
}
END_TEST

START_TEST(t_uri_bounds)
{
    char out[512];
    const char *want = "otpauth://totp/I:u?secret=MY&issuer=I&algorithm=SHA1&digits=6&period=30";
    size_t n = strlen(want);
    char big[200];

    ck_assert_int_eq(oauth_totp_uri("I", "u", (const uint8_t *)"f", 1, out, n + 1), OAUTH_OK);
    ck_assert_str_eq(out, want);
    memset(out, 'x', sizeof(out));
    ck_assert_int_eq(oauth_totp_uri("I", "u", (const uint8_t *)"f", 1, out, n), OAUTH_ERR_INVAL);
    /* nothing of a partial URI (it would hold part of the secret) is left */
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(out[i], 0);
    ck_assert_int_eq(oauth_totp_uri("", "u", (const uint8_t *)"f", 1, out, sizeof(out)), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_totp_uri(NULL, "u", (const uint8_t *)"f", 1, out, sizeof(out)), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_totp_uri("I", "", (const uint8_t *)"f", 1, out, sizeof(out)), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_totp_uri("I", NULL, (const uint8_t *)"f", 1, out, sizeof(out)), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_totp_uri("I", "u", NULL, 1, out, sizeof(out)), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_totp_uri("I", "u", (const uint8_t *)"f", 0, out, sizeof(out)), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_totp_uri("I", "u", SECRET, STOR_TOTP_MAX + 1, out, sizeof(out)), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_totp_uri("I", "u", (const uint8_t *)"f", 1, NULL, sizeof(out)), OAUTH_ERR_INVAL);
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(oauth_totp_uri(big, "u", (const uint8_t *)"f", 1, out, sizeof(out)), OAUTH_ERR_INVAL);
    big[STOR_NAME_MAX + 1] = '\0';
    ck_assert_int_eq(oauth_totp_uri("I", big, (const uint8_t *)"f", 1, out, sizeof(out)), OAUTH_ERR_INVAL);
}
END_TEST

Suite *suite_totp(void)
{
    Suite *s = suite_create("oauth_totp");
    TCase *tc = tcase_create("totp");

    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_checked_fixture(tc, init_oath, NULL);
    tcase_add_test(tc, t_rfc6238_vectors);
    tcase_add_test(tc, t_window);
    tcase_add_test(tc, t_wrong_code);
    tcase_add_test(tc, t_malformed_otp);
    tcase_add_test(tc, t_check_inval);
    tcase_add_test(tc, t_new_secret);
    tcase_add_test(tc, t_base32_vectors);
    tcase_add_test(tc, t_base32_bounds);
    tcase_add_test(tc, t_uri);
    tcase_add_test(tc, t_uri_bounds);
    suite_add_tcase(s, tc);
    return s;
}
