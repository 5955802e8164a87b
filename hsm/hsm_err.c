/*
 * hsm_err.c - the text of an HSM_* code. A file of its own: csc-server names HSM_* results (signDoc's log line)
 * but links no PKCS#11 code, so nothing here may call into the rest of the module.
 */
#include "hsm.h"

const char *hsm_strerror(int rc)
{
    switch (rc) {
    case HSM_OK: return "success";
    case HSM_ERR_UNAVAILABLE: return "token or session unavailable, retry later";
    case HSM_ERR_NOKEY: return "no key with that id";
    case HSM_ERR_MECH: return "mechanism or parameters not supported by the key or token";
    case HSM_ERR_INVAL: return "invalid argument";
    case HSM_ERR_PIN: return "token login refused";
    case HSM_ERR_CONFIG: return "PKCS#11 module cannot be loaded or token not found";
    case HSM_ERR_INTERNAL: return "internal PKCS#11 or OpenSSL failure";
    case HSM_ERR_NOMEM: return "out of memory";
    case HSM_ERR_DENIED: return "the key may not leave the token (not extractable, or only wrappable with a trusted key)";
    case HSM_ERR_BADSIG: return "signature or integrity tag invalid";
    default: return "unknown hsm error";
    }
}
