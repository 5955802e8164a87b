/*
 * csc_b64.c - base64 for CSC payloads, through oauth's one implementation (oauth_b64.c).
 *
 * Clients send standard base64 (RFC 4648 sec. 4), some send the URL-safe
 * alphabet, some drop the padding. Accept all of those, reject everything else
 * (mixed alphabets, whitespace, bad padding, non-zero trailing bits), and emit
 * standard padded base64 (OAUTH_B64_STD).
 */
#include <string.h>
#include "csc_int.h"

/* Empty is not a value here. */
long csc_b64_decode(const char *in, size_t len, uint8_t *out, size_t outsz)
{
    return len == 0 ? -1 : oauth_b64_decode(in, len, out, outsz, OAUTH_B64_STD);
}

size_t csc_b64_encode(const uint8_t *in, size_t len, char *out)
{
    return oauth_b64_encode(in, len, out, OAUTH_B64_STD);
}
