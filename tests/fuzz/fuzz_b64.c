/*
 * fuzz_b64.c - libFuzzer target of the base64 decoders: oauth_b64_decode() in both modes (oauth_b64.c, the one
 * implementation) and csc_b64_decode() (csc_b64.c, what the CSC methods call on client payloads).
 *
 * Input: byte 0 chooses the decoder (mod 3: csc, oauth standard, oauth URL), the rest is the text. What decodes is
 * encoded again and must give back the text in its canonical form: the decoders are strict (no whitespace, no
 * non-zero trailing bits, padding right or absent), so there is exactly one text per value up to the alphabet and
 * the padding the standard mode tolerates. Decoding into a buffer one byte short must fail, not overflow.
 */
#include <stdlib.h>
#include <string.h>

#include "csc_int.h"
#include "fuzz.h"
#include "oauth.h"

static long decode(unsigned how, const char *in, size_t len, uint8_t *out, size_t outsz)
{
    switch (how) {
    case 0:
        return csc_b64_decode(in, len, out, outsz);
    case 1:
        return oauth_b64_decode(in, len, out, outsz, OAUTH_B64_STD);
    default:
        return oauth_b64_decode(in, len, out, outsz, OAUTH_B64_URL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned how = data[0] % 3;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    size_t outsz = len / 4 * 3 + 3;
    uint8_t *out = malloc(outsz);
    char *enc = malloc(4 * (outsz / 3 + 1) + 1), *canon = malloc(len + 4);
    if (out == NULL || enc == NULL || canon == NULL)
        abort();

    long n = decode(how, in, len, out, outsz);
    if (n >= 0) {
        if ((size_t)n > outsz || (how == 0 && n == 0))
            abort();
        /* The canonical text: standard alphabet and padding, except in URL mode, which has neither. */
        size_t clen = len;
        memcpy(canon, in, len);
        if (how != 2) {
            for (size_t i = 0; i < clen; i++)
                canon[i] = canon[i] == '-' ? '+' : canon[i] == '_' ? '/' : canon[i];
            while (clen % 4 != 0)
                canon[clen++] = '=';
        }
        size_t elen = how == 2 ? oauth_b64_encode(out, (size_t)n, enc, OAUTH_B64_URL)
                      : how == 1 ? oauth_b64_encode(out, (size_t)n, enc, OAUTH_B64_STD)
                                 : csc_b64_encode(out, (size_t)n, enc);
        if (elen != clen || memcmp(enc, canon, clen) != 0 || enc[elen] != '\0')
            abort();
        /* One byte short of the value: refused. */
        if (n > 0 && decode(how, in, len, out, (size_t)n - 1) != -1)
            abort();
    }
    free(out);
    free(enc);
    free(canon);
    return 0;
}
