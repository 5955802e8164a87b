/*
 * oauth_b64.c - the one base64 of the project (RFC 4648): token values, tickets and their forms here; the CSC
 * payloads of csc-api (csc_b64.c) and the reports of admin/ through oauth.h.
 *
 * Decoding is strict either way: no whitespace, no non-zero trailing bits, no mixed alphabets; OAUTH_B64_URL takes
 * only base64url without padding, OAUTH_B64_STD the standard or the URL-safe alphabet with or without (correct)
 * padding. OpenSSL's EVP_DecodeBlock and h2o's decoder each get one of these wrong (docs/stack-notes.md sec. 3).
 */
#include <string.h>

#include "oauth_int.h"

static const char alpha_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char alpha_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t oauth_b64_encode(const uint8_t *in, size_t len, char *out, int how)
{
    const char *al = how == OAUTH_B64_URL ? alpha_url : alpha_std;
    size_t o = 0, i = 0;

    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = al[v >> 18 & 63];
        out[o++] = al[v >> 12 & 63];
        out[o++] = al[v >> 6 & 63];
        out[o++] = al[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = al[v >> 18 & 63];
        out[o++] = al[v >> 12 & 63];
        if (i + 1 < len)
            out[o++] = al[v >> 6 & 63];
        else if (how != OAUTH_B64_URL)
            out[o++] = '=';
        if (how != OAUTH_B64_URL)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* The value of c; *alphabet remembers which of the two alphabets' own characters came first (1 std, 2 URL). */
static int b64_val(char c, int *alphabet)
{
    int which, v;

    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '/') {
        which = 1;
        v = c == '+' ? 62 : 63;
    } else if (c == '-' || c == '_') {
        which = 2;
        v = c == '-' ? 62 : 63;
    } else {
        return -1;
    }
    if (*alphabet != 0 && *alphabet != which)
        return -1;
    *alphabet = which;
    return v;
}

long oauth_b64_decode(const char *in, size_t len, uint8_t *out, size_t outsz, int how)
{
    int alphabet = how == OAUTH_B64_URL ? 2 : 0;
    uint32_t acc = 0;
    size_t pad = 0, need, o = 0;
    int bits = 0;

    if (in == NULL && len > 0)
        return -1;
    if (how != OAUTH_B64_URL && len > 0 && len % 4 == 0) {
        if (in[len - 1] == '=')
            pad++;
        if (pad && in[len - 2] == '=')
            pad++;
        len -= pad;
    }
    if (len % 4 == 1)
        return -1;
    need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    if (need > outsz)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val(in[i], &alphabet);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-canonical: leftover bits must be zero */
        return -1;
    return (long)o;
}
