/*
 * oauth_totp_check.c - the check of an RFC 6238 TOTP code (SHA-1, 6 digits, 30 s) through liboath. A file of its
 * own so that csc-server, which verifies no TOTP code (the sign-in is csc-sam's LOGIN), does not link it
 * (tests/unit/server/check_symbols SAM_ONLY).
 */
#include <pthread.h>
#include <string.h>

#include <liboath/oath.h>
#include <openssl/crypto.h>

#include "oauth_int.h"

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static int oath_init_rc = OATH_CRYPTO_ERROR;

static void oath_init_once(void)
{
    oath_init_rc = oath_init();
}

/* liboath's own comparison is strcmp; this one does not stop at the first differing digit. */
static int otp_cmp(void *handle, const char *candidate)
{
    const char *want = handle;

    if (!candidate || strnlen(candidate, OAUTH_TOTP_DIGITS + 1) != OAUTH_TOTP_DIGITS)
        return 1;
    return CRYPTO_memcmp(want, candidate, OAUTH_TOTP_DIGITS) != 0;
}

static int otp_well_formed(const char *otp, size_t len)
{
    size_t i;

    if (!otp || len != OAUTH_TOTP_DIGITS)
        return 0;
    for (i = 0; i < len; i++)
        if (otp[i] < '0' || otp[i] > '9')
            return 0;
    return 1;
}

int oauth_totp_check(const uint8_t *secret, size_t len, const char *otp, size_t otp_len, int64_t now,
                     unsigned window, int64_t *step)
{
    char want[OAUTH_TOTP_DIGITS + 1];
    uint64_t counter = 0;
    int pos = 0, rc = OAUTH_ERR_INVAL;

    if (step)
        *step = 0;
    memset(want, 0, sizeof(want));
    if (!secret || !len || len > STOR_TOTP_MAX || !step || now < 0 || window > OAUTH_TOTP_WINDOW_MAX)
        goto out;
    rc = OAUTH_ERR_DENIED;
    if (!otp_well_formed(otp, otp_len))
        goto out;
    memcpy(want, otp, OAUTH_TOTP_DIGITS);
    rc = OAUTH_ERR_INTERNAL;
    if (pthread_once(&oath_once, oath_init_once) != 0 || oath_init_rc != OATH_OK)
        goto out;
    /* Success is the window position (>= 0), not OATH_OK. */
    if (oath_totp_validate3_callback((const char *)secret, len, (time_t)now, OAUTH_TOTP_STEP, 0, OAUTH_TOTP_DIGITS,
                                     window, &pos, &counter, otp_cmp, want) < 0) {
        rc = OAUTH_ERR_DENIED;
        goto out;
    }
    *step = (int64_t)counter;
    rc = OAUTH_OK;
out:
    OPENSSL_cleanse(want, sizeof(want));
    return rc;
}
