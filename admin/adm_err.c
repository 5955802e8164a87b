/* adm_err.c - the error text of the operator library (adm.h: return ADM_* with a reason in err), and base64 for
 * its reports. */
#include <stdarg.h>
#include <stdio.h>
#include <openssl/evp.h>

#include "adm_int.h"

int adm_err(char *err, size_t err_sz, int code, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && err_sz > 0) {
        va_start(ap, fmt);
        vsnprintf(err, err_sz, fmt, ap);
        va_end(ap);
    }
    return code;
}

size_t adm_b64_encode(const uint8_t *in, size_t len, char *out)
{
    return len > 0 ? (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len) : (out[0] = '\0', 0);
}
