/* adm_int.h - private to admin/: the one error helper of the operator library. */
#ifndef ADM_INT_H
#define ADM_INT_H

#include <stddef.h>
#include "adm.h"

/** Write a formatted reason into err (if err != NULL and err_sz > 0) and return code (an ADM_* value). */
int adm_err(char *err, size_t err_sz, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/** In a function with parameters (err, err_sz): fill err and evaluate to ADM_ERR. */
#define ADM_FAIL(...) adm_err(err, err_sz, ADM_ERR, __VA_ARGS__)

#endif
