/*
 * test_open.c - hsm_open / hsm_close / hsm_sessions / hsm_strerror.
 */
#include <string.h>

#include "check_hsm.h"

START_TEST(open_default_pool)
{
    hsm_t *h = t_open(0);

    ck_assert_uint_eq(hsm_sessions(h), 4);
    hsm_close(h);
    h = t_open(2);
    ck_assert_uint_eq(hsm_sessions(h), 2);
    hsm_close(h);
    ck_assert_uint_eq(hsm_sessions(NULL), 0);
    hsm_close(NULL);
}
END_TEST

START_TEST(open_wrong_label)
{
    hsm_t *h = (hsm_t *)&h;

    ck_assert_int_eq(t_open_rc(T_MODULE, "no-such-token", T_PIN, 0, &h), HSM_ERR_CONFIG);
    ck_assert_ptr_null(h);
    /* A prefix of the real label must not match: labels compare blank padded over all 32 bytes. */
    ck_assert_int_eq(t_open_rc(T_MODULE, "hsm-uni", T_PIN, 0, &h), HSM_ERR_CONFIG);
    ck_assert_int_eq(t_open_rc(T_MODULE, "hsm-unit-and-more-than-32-bytes-long", T_PIN, 0, &h), HSM_ERR_CONFIG);
    ck_assert_int_eq(t_open_rc(T_MODULE, "", T_PIN, 0, &h), HSM_ERR_CONFIG);
    ck_assert_ptr_null(h);
}
END_TEST

START_TEST(open_wrong_pin)
{
    hsm_t *h = (hsm_t *)&h;

    ck_assert_int_eq(t_open_rc(T_MODULE, T_LABEL, "654321", 0, &h), HSM_ERR_PIN);
    ck_assert_ptr_null(h);
    /* The module is usable again afterwards (nothing left initialised or logged in). */
    h = t_open(1);
    hsm_close(h);
}
END_TEST

START_TEST(open_bad_module)
{
    hsm_t *h = (hsm_t *)&h;

    ck_assert_int_eq(t_open_rc("/nonexistent/libpkcs11.so", T_LABEL, T_PIN, 0, &h), HSM_ERR_CONFIG);
    ck_assert_ptr_null(h);
    /* Loadable, but not a PKCS#11 module: no C_GetFunctionList. */
    ck_assert_int_eq(t_open_rc("libm.so.6", T_LABEL, T_PIN, 0, &h), HSM_ERR_CONFIG);
    ck_assert_ptr_null(h);
}
END_TEST

START_TEST(open_bad_softhsm_conf)
{
    hsm_t *h = (hsm_t *)&h;

    /* C_Initialize fails when SoftHSM cannot read its configuration. */
    ck_assert_int_eq(setenv("SOFTHSM2_CONF", "/nonexistent/softhsm2.conf", 1), 0);
    ck_assert_int_eq(t_open_rc(T_MODULE, T_LABEL, T_PIN, 0, &h), HSM_ERR_CONFIG);
    ck_assert_ptr_null(h);
}
END_TEST

START_TEST(open_invalid_args)
{
    hsm_config_t cfg = {.module = T_MODULE, .token_label = T_LABEL, .pin = T_PIN};
    char pin[HSM_PIN_MAX + 2];
    hsm_t *h = (hsm_t *)&h;

    ck_assert_int_eq(hsm_open(NULL, &h), HSM_ERR_INVAL);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(hsm_open(&cfg, NULL), HSM_ERR_INVAL);
    cfg.module = NULL;
    ck_assert_int_eq(hsm_open(&cfg, &h), HSM_ERR_INVAL);
    cfg.module = T_MODULE, cfg.token_label = NULL;
    ck_assert_int_eq(hsm_open(&cfg, &h), HSM_ERR_INVAL);
    cfg.token_label = T_LABEL, cfg.pin = NULL;
    ck_assert_int_eq(hsm_open(&cfg, &h), HSM_ERR_INVAL);
    memset(pin, '1', sizeof(pin) - 1);
    pin[sizeof(pin) - 1] = '\0';
    cfg.pin = pin;
    ck_assert_int_eq(hsm_open(&cfg, &h), HSM_ERR_INVAL);
    cfg.pin = T_PIN, cfg.sessions = HSM_SESSIONS_MAX + 1;
    ck_assert_int_eq(hsm_open(&cfg, &h), HSM_ERR_INVAL);
    ck_assert_ptr_null(h);
}
END_TEST

START_TEST(strerror_all)
{
    int codes[] = {HSM_OK, HSM_ERR_UNAVAILABLE, HSM_ERR_NOKEY, HSM_ERR_MECH, HSM_ERR_INVAL,
                   HSM_ERR_PIN, HSM_ERR_CONFIG, HSM_ERR_INTERNAL, HSM_ERR_NOMEM};
    size_t i, j, n = sizeof(codes) / sizeof(codes[0]);
    const char *unknown = hsm_strerror(12345);

    ck_assert_ptr_nonnull(unknown);
    for (i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(hsm_strerror(codes[i]));
        ck_assert_str_ne(hsm_strerror(codes[i]), unknown);
        for (j = 0; j < i; j++)
            ck_assert_str_ne(hsm_strerror(codes[i]), hsm_strerror(codes[j]));
    }
}
END_TEST

START_TEST(rv_mapping)
{
    ck_assert_int_eq(hsm_rv_map(CKR_OK), HSM_OK);
    ck_assert_int_eq(hsm_rv_map(CKR_SESSION_HANDLE_INVALID), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_rv_map(CKR_SESSION_CLOSED), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_rv_map(CKR_DEVICE_REMOVED), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_rv_map(CKR_TOKEN_NOT_PRESENT), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_rv_map(CKR_DEVICE_ERROR), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_rv_map(CKR_USER_NOT_LOGGED_IN), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_rv_map(CKR_CRYPTOKI_NOT_INITIALIZED), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_rv_map(CKR_SLOT_ID_INVALID), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_rv_map(CKR_KEY_TYPE_INCONSISTENT), HSM_ERR_MECH);
    ck_assert_int_eq(hsm_rv_map(CKR_MECHANISM_INVALID), HSM_ERR_MECH);
    ck_assert_int_eq(hsm_rv_map(CKR_MECHANISM_PARAM_INVALID), HSM_ERR_MECH);
    ck_assert_int_eq(hsm_rv_map(CKR_KEY_FUNCTION_NOT_PERMITTED), HSM_ERR_MECH);
    ck_assert_int_eq(hsm_rv_map(CKR_PIN_INCORRECT), HSM_ERR_PIN);
    ck_assert_int_eq(hsm_rv_map(CKR_PIN_LOCKED), HSM_ERR_PIN);
    ck_assert_int_eq(hsm_rv_map(CKR_KEY_HANDLE_INVALID), HSM_ERR_NOKEY);
    ck_assert_int_eq(hsm_rv_map(CKR_HOST_MEMORY), HSM_ERR_NOMEM);
    ck_assert_int_eq(hsm_rv_map(CKR_GENERAL_ERROR), HSM_ERR_INTERNAL);
    ck_assert_int_eq(hsm_rv_lost(CKR_GENERAL_ERROR), 0);
    ck_assert_int_eq(hsm_rv_lost(CKR_SESSION_CLOSED), 1);
}
END_TEST

Suite *t_suite_open(void)
{
    Suite *s = suite_create("hsm_open");
    TCase *tc = tcase_create("open");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, t_setup, NULL);
    tcase_add_test(tc, open_default_pool);
    tcase_add_test(tc, open_wrong_label);
    tcase_add_test(tc, open_wrong_pin);
    tcase_add_test(tc, open_bad_module);
    tcase_add_test(tc, open_bad_softhsm_conf);
    tcase_add_test(tc, open_invalid_args);
    tcase_add_test(tc, strerror_all);
    tcase_add_test(tc, rv_mapping);
    suite_add_tcase(s, tc);
    return s;
}
