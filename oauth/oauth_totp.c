/*
 * oauth_totp.c - RFC 6238 TOTP (SHA-1, 6 digits, 30 s) through liboath, the
 * RFC 4648 base32 encoder and the otpauth:// provisioning URI.
 */
#include <pthread.h>
#include <string.h>

#include <liboath/oath.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "oauth_int.h"

/* Longest issuer accepted in a provisioning URI. */
#define ISSUER_MAX 128

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static int oath_init_rc = OATH_CRYPTO_ERROR;

static void oath_init_once(void)
{
    oath_init_rc = oath_init();
}

int oauth_totp_new_secret(uint8_t secret[OAUTH_TOTP_SECRET_LEN])
{
    if (!secret)
        return OAUTH_ERR_INVAL;
    if (RAND_bytes(secret, OAUTH_TOTP_SECRET_LEN) != 1) {
        OPENSSL_cleanse(secret, OAUTH_TOTP_SECRET_LEN);
        return OAUTH_ERR_INTERNAL;
    }
    return OAUTH_OK;
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

int oauth_base32_encode(const uint8_t *in, size_t len, char *out, size_t outsz)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t i, o = 0;

    if (out && outsz)
        out[0] = '\0';
    if (!out || (!in && len) || len > (SIZE_MAX - 5) / 8 || outsz < (len * 8 + 4) / 5 + 1)
        return OAUTH_ERR_INVAL;
    for (i = 0; i < len; i++) {
        acc = (acc << 8 | in[i]) & 0xfff;  /* at most 12 live bits */
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = alphabet[acc >> bits & 31];
        }
    }
    if (bits)
        out[o++] = alphabet[acc << (5 - bits) & 31];
    out[o] = '\0';
    OPENSSL_cleanse(&acc, sizeof(acc));
    return OAUTH_OK;
}

typedef struct {
    char *p;
    size_t sz, n;
    int over;
} outbuf_t;

static void put_str(outbuf_t *b, const char *s)
{
    size_t l = strlen(s);

    if (b->over || l >= b->sz - b->n) {
        b->over = 1;
        return;
    }
    memcpy(b->p + b->n, s, l + 1);
    b->n += l;
}

/* Percent-encode everything outside RFC 3986 unreserved. */
static void put_pct(outbuf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char enc[4];

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            enc[0] = (char)c;
            enc[1] = '\0';
        } else {
            enc[0] = '%';
            enc[1] = hex[c >> 4];
            enc[2] = hex[c & 15];
            enc[3] = '\0';
        }
        put_str(b, enc);
    }
}

int oauth_totp_uri(const char *issuer, const char *user, const uint8_t *secret, size_t len, char *out,
                   size_t outsz)
{
    char b32[8 * ((STOR_TOTP_MAX + 4) / 5) + 1];
    outbuf_t b = {out, outsz, 0, 0};
    int rc = OAUTH_ERR_INVAL;

    memset(b32, 0, sizeof(b32));
    if (out && outsz)
        out[0] = '\0';
    if (!out || !outsz || !issuer || !issuer[0] || strnlen(issuer, ISSUER_MAX + 1) > ISSUER_MAX ||
        !oauth_name_ok(user) || !secret || !len || len > STOR_TOTP_MAX)
        goto out;
    if ((rc = oauth_base32_encode(secret, len, b32, sizeof(b32))) != OAUTH_OK)
        goto out;
    put_str(&b, "otpauth://totp/");
    put_pct(&b, issuer);
    put_str(&b, ":");
    put_pct(&b, user);
    put_str(&b, "?secret=");
    put_str(&b, b32);
    put_str(&b, "&issuer=");
    put_pct(&b, issuer);
    put_str(&b, "&algorithm=SHA1&digits=6&period=30");
    rc = b.over ? OAUTH_ERR_INVAL : OAUTH_OK;
out:
    if (rc != OAUTH_OK && out && outsz)
        OPENSSL_cleanse(out, outsz);   /* a partial URI may hold part of the secret */
    OPENSSL_cleanse(b32, sizeof(b32));
    return rc;
}
