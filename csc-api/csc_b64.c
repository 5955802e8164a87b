/*
 * csc_b64.c - base64 for CSC payloads.
 *
 * Clients send standard base64 (RFC 4648 sec. 4), some send the URL-safe
 * alphabet, some drop the padding. Accept all of those, reject everything else
 * (mixed alphabets, whitespace, bad padding, non-zero trailing bits), and emit
 * standard padded base64. OpenSSL's EVP_DecodeBlock and h2o's decoder each get
 * one of these wrong (docs/stack-notes.md sec. 3).
 */
#include <string.h>
#include "csc_int.h"

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(char c, int *alphabet)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    int which = 0, v = -1;
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

long csc_b64_decode(const char *in, size_t len, uint8_t *out, size_t outsz)
{
    int alphabet = 0;
    size_t pad = 0;

    if (len == 0)
        return -1;
    if (len % 4 == 0) {
        if (in[len - 1] == '=')
            pad++;
        if (pad && in[len - 2] == '=')
            pad++;
        len -= pad;
    }
    if (len % 4 == 1)
        return -1;
    if (pad != 0 && (len + pad) % 4 != 0)
        return -1;
    size_t need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    if (need > outsz)
        return -1;

    uint32_t acc = 0;
    size_t o = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val(in[i], &alphabet);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
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

size_t csc_b64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_std[v >> 18];
        out[o++] = b64_std[(v >> 12) & 63];
        out[o++] = b64_std[(v >> 6) & 63];
        out[o++] = b64_std[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64_std[v >> 18];
        out[o++] = b64_std[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_std[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}
