/*
 * oauth_totp.c - RFC 6238 TOTP secrets: a new one, the RFC 4648 base32 encoder and the otpauth:// provisioning
 * URI. The check of a code is oauth_totp_check.c (csc-sam and csc-admin only: csc-server checks no TOTP).
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "oauth_int.h"

/* Longest issuer accepted in a provisioning URI. */
#define ISSUER_MAX 128

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
