/*
 * test_sam_errors.c - one error table for both ways an oauth/ result reaches a client (issue 11): csc-api reads
 * csc-sam's refusal (sam_refusal_of_oauth, on the SAM's side) back through csc_err_sam, and must answer exactly what
 * csc_err_oauth answers for the oauth/ code itself - status, error, description, Retry-After - on every subject, with
 * the table alone and with a call site's overrides naming every code (the database out of reach included: csc-sam's
 * DB_DOWN is the front end's own OAUTH_ERR_UNAVAILABLE, 503 with Retry-After: 1). Part of unit_csc_api_service (which links both
 * sides).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "csc_int.h"
#include "sam_core.h"

/* The codes each subject's oauth/ calls can answer (oauth.h): the bearer token (oauth_token_check), a SAD
 * (oauth_sad_consume, oauth_sad_extend), the credential (oauth_authorize, oauth_approval_new, oauth_challenge_new),
 * the handle (oauth_approval_check). */
static const int token_codes[] = {OAUTH_ERR_INVALID, OAUTH_ERR_EXPIRED, OAUTH_ERR_DISABLED, OAUTH_ERR_STORAGE,
                                  OAUTH_ERR_INVAL, OAUTH_ERR_UNAVAILABLE};
static const int sad_codes[] = {OAUTH_ERR_INVALID,   OAUTH_ERR_EXPIRED,        OAUTH_ERR_MISMATCH, OAUTH_ERR_EXHAUSTED,
                                OAUTH_ERR_NOT_AUTHORIZED, OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL, OAUTH_ERR_UNAVAILABLE};
static const int cred_codes[] = {OAUTH_ERR_DENIED,  OAUTH_ERR_LOCKED, OAUTH_ERR_INVALID, OAUTH_ERR_DISABLED,
                                 OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL,  OAUTH_ERR_BUSY,    OAUTH_ERR_FULL,
                                 OAUTH_ERR_RATE,    OAUTH_ERR_UNAVAILABLE};
static const int handle_codes[] = {OAUTH_ERR_DENIED, OAUTH_ERR_LOCKED, OAUTH_ERR_EXPIRED, OAUTH_ERR_INVALID,
                                   OAUTH_ERR_STORAGE, OAUTH_ERR_UNAVAILABLE};
static const struct {
    csc_about_t about;
    const int *codes;
    size_t n;
} subjects[] = {
    {CSC_ABOUT_TOKEN, token_codes, sizeof(token_codes) / sizeof(token_codes[0])},
    {CSC_ABOUT_SAD, sad_codes, sizeof(sad_codes) / sizeof(sad_codes[0])},
    {CSC_ABOUT_CREDENTIAL, cred_codes, sizeof(cred_codes) / sizeof(cred_codes[0])},
    {CSC_ABOUT_HANDLE, handle_codes, sizeof(handle_codes) / sizeof(handle_codes[0])},
};

/* Every oauth/ code, each with a row of its own (a call site that tells them all apart). */
static const int all_codes[] = {OAUTH_ERR_DENIED,   OAUTH_ERR_LOCKED,  OAUTH_ERR_INVALID,  OAUTH_ERR_EXPIRED,
                                OAUTH_ERR_NOT_AUTHORIZED, OAUTH_ERR_EXHAUSTED, OAUTH_ERR_MISMATCH,
                                OAUTH_ERR_DISABLED, OAUTH_ERR_STORAGE, OAUTH_ERR_INTERNAL, OAUTH_ERR_INVAL,
                                OAUTH_ERR_RATE,     OAUTH_ERR_FULL,    OAUTH_ERR_PKCE,     OAUTH_ERR_REUSED,
                                OAUTH_ERR_BUSY,     OAUTH_ERR_UNAVAILABLE};
#define N_ALL (sizeof(all_codes) / sizeof(all_codes[0]))
static const char *const descs[N_ALL] = {"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7",
                                         "d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15", "d16"};

static void same(csc_about_t about, int code, const csc_err_row_t *ov)
{
    csc_err_t direct = {0}, via = {0};
    ck_assert_int_eq(csc_err_oauth(&direct, about, code, ov), -1);
    ck_assert_int_eq(csc_err_sam(&via, about, sam_refusal_of_oauth(code), ov), -1);
    ck_assert_msg(direct.status == via.status && strcmp(direct.error, via.error) == 0 &&
                      strcmp(direct.description, via.description) == 0 && direct.retry_after == via.retry_after,
                  "subject %d, %s (refusal %s), overrides %s: %d %s \"%s\" directly, %d %s \"%s\" through csc-sam",
                  (int)about, oauth_strerror(code), sam_refusal_name(sam_refusal_of_oauth(code)),
                  ov != NULL ? "all" : "none", direct.status, direct.error, direct.description, via.status, via.error,
                  via.description);
}

START_TEST(t_refusals_read_as_their_oauth_codes)
{
    csc_err_row_t every[N_ALL + 1];
    for (size_t i = 0; i < N_ALL; i++)
        every[i] = (csc_err_row_t){all_codes[i], 400 + (int)i, "e", descs[i], (unsigned)i};
    every[N_ALL] = (csc_err_row_t){0, 0, NULL, NULL, 0};
    for (size_t s = 0; s < sizeof(subjects) / sizeof(subjects[0]); s++)
        for (size_t i = 0; i < subjects[s].n; i++) {
            same(subjects[s].about, subjects[s].codes[i], NULL);
            same(subjects[s].about, subjects[s].codes[i], every);
        }
}
END_TEST

/* The database out of reach (STOR_ERR_UNAVAILABLE -> OAUTH_ERR_UNAVAILABLE) is 503 temporarily_unavailable with
 * Retry-After: 1 on every subject, unless a call site's override names it; another storage failure keeps its 503
 * without a Retry-After of its own. */
START_TEST(t_database_down_is_503_retry_after_1)
{
    static const csc_err_row_t ov[] = {{OAUTH_ERR_UNAVAILABLE, 409, "x", "overridden", 0}, {0, 0, NULL, NULL, 0}};
    for (size_t s = 0; s < sizeof(subjects) / sizeof(subjects[0]); s++) {
        csc_err_t e = {0};
        ck_assert_int_eq(csc_err_oauth(&e, subjects[s].about, OAUTH_ERR_UNAVAILABLE, NULL), -1);
        ck_assert_int_eq(e.status, 503);
        ck_assert_str_eq(e.error, "temporarily_unavailable");
        ck_assert_uint_eq(e.retry_after, 1);
        ck_assert_int_eq(csc_err_oauth(&e, subjects[s].about, OAUTH_ERR_UNAVAILABLE, ov), -1);
        ck_assert_int_eq(e.status, 409);
        ck_assert_int_eq(csc_err_oauth(&e, subjects[s].about, OAUTH_ERR_STORAGE, NULL), -1);
        ck_assert_int_eq(e.status, 503);
        ck_assert_uint_eq(e.retry_after, 0);
    }
}
END_TEST

/* /metrics's counters (csc_stats.c): each refusal lands in the one series it belongs to, or in none. */
START_TEST(t_refusals_counted)
{
    struct csc *c = calloc(1, sizeof(*c));
    csc_stats_t st;
    ck_assert_ptr_nonnull(c);

    csc_stats_refusal(c, SAM_OP_SIGN, CSC_ABOUT_SAD, 0, SAM_REFUSE_EXPIRED);
    csc_stats_refusal(c, SAM_OP_SIGN, CSC_ABOUT_SAD, 0, SAM_REFUSE_EXHAUSTED);
    csc_stats_refusal(c, SAM_OP_SIGN, CSC_ABOUT_SAD, 0, SAM_REFUSE_NOT_BOUND);
    csc_stats_refusal(c, SAM_OP_SIGN, CSC_ABOUT_SAD, 0, SAM_REFUSE_UNAUTHORIZED); /* another user's SAD */
    csc_stats_refusal(c, SAM_OP_EXTEND, CSC_ABOUT_SAD, 0, SAM_REFUSE_NOT_FOUND);
    csc_stats_refusal(c, SAM_OP_SIGN, CSC_ABOUT_SAD, 0, SAM_REFUSE_DB_DOWN);      /* not the SAD's fault: none */
    csc_stats_refusal(c, SAM_OP_API_LOGIN, CSC_ABOUT_TOKEN, 0, SAM_REFUSE_UNAUTHORIZED);
    csc_stats_refusal(c, SAM_OP_ACCOUNT_PASSWORD, CSC_ABOUT_CREDENTIAL, 0, SAM_REFUSE_UNAUTHORIZED);
    csc_stats_refusal(c, SAM_OP_AUTHORIZE, CSC_ABOUT_CREDENTIAL, 0, SAM_REFUSE_UNAUTHORIZED);
    csc_stats_refusal(c, SAM_OP_AUTHORIZE, CSC_ABOUT_TOKEN, SAM_T_TOKEN, SAM_REFUSE_UNAUTHORIZED); /* no factor */
    csc_stats_refusal(c, SAM_OP_AUTHORIZE_CHECK, CSC_ABOUT_HANDLE, 0, SAM_REFUSE_UNAUTHORIZED); /* APPROVE's */
    csc_stats_refusal(c, SAM_OP_ENROLL_BEGIN, CSC_ABOUT_CREDENTIAL, 0, SAM_REFUSE_UNAUTHORIZED);
    csc_stats_refusal(c, SAM_OP_AUTHORIZE, CSC_ABOUT_CREDENTIAL, SAM_T_CRED, SAM_REFUSE_LOCKED);
    csc_stats_refusal(c, SAM_OP_SIGN, CSC_ABOUT_SAD, SAM_T_SIGNATURE, SAM_REFUSE_UNAVAILABLE);
    csc_stats_refusal(c, SAM_OP_SIGN, CSC_ABOUT_SAD, SAM_T_SIGNATURE, SAM_REFUSE_INTERNAL);
    csc_stats_signed(c, "1.2.840.10045.4.3.2", 3);
    csc_stats_signed(c, "1.2.3.4", 1); /* not in the table: no series */

    csc_stats_get(c, &st);
    ck_assert_uint_eq(st.sad_denials[CSC_SAD_EXPIRED], 1);
    ck_assert_uint_eq(st.sad_denials[CSC_SAD_EXHAUSTED], 1);
    ck_assert_uint_eq(st.sad_denials[CSC_SAD_NOT_BOUND], 1);
    ck_assert_uint_eq(st.sad_denials[CSC_SAD_INVALID], 2);
    ck_assert_uint_eq(st.auth_failures[CSC_AUTH_LOGIN], 2);
    ck_assert_uint_eq(st.auth_failures[CSC_AUTH_PIN_OTP], 1);
    ck_assert_uint_eq(st.auth_failures[CSC_AUTH_ENROLL], 1);
    ck_assert_uint_eq(st.lockouts, 1);
    ck_assert_uint_eq(st.hsm_errors[CSC_HSM_UNAVAILABLE], 1);
    ck_assert_uint_eq(st.hsm_errors[CSC_HSM_FAILED], 1);
    ck_assert_int_eq(st.sam_reachable, 1);
    uint64_t signed_total = 0;
    for (size_t i = 0; i < st.n_algs; i++) {
        signed_total += st.signatures[i];
        if (strcmp(st.alg[i], "1.2.840.10045.4.3.2") == 0)
            ck_assert_uint_eq(st.signatures[i], 3);
    }
    ck_assert_uint_eq(signed_total, 3);
    free(c);
}
END_TEST

TCase *sam_errors_tcase(void); /* test_service.c adds it to its suite */
TCase *sam_errors_tcase(void)
{
    TCase *tc = tcase_create("sam-errors");
    tcase_add_test(tc, t_refusals_read_as_their_oauth_codes);
    tcase_add_test(tc, t_database_down_is_503_retry_after_1);
    tcase_add_test(tc, t_refusals_counted);
    return tc;
}
