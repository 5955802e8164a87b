/* adm_err.c - the error text of the operator library (adm.h: return ADM_* with a reason in err). */
#include <stdarg.h>
#include <stdio.h>

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
