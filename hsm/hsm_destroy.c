/*
 * hsm_destroy.c - destroying a key pair (C_DestroyObject on both halves). Its own file so that only the binary
 * that destroys keys (csc-admin) links it: csc-server, whose CRL sweep only files a revoked key's destruction,
 * does not (tests/unit/server/check_symbols).
 */
#include "hsm_int.h"

#define HSM_FIND_BATCH 16

static int destroy_class(hsm_t *h, hsm_sess_t *s, CK_OBJECT_CLASS cls, const uint8_t *id, size_t id_len,
                         unsigned *total)
{
    CK_OBJECT_HANDLE objs[HSM_FIND_BATCH];
    CK_ULONG n, i;
    CK_RV rv;
    int rc, rounds;

    /* Bounded: a token that keeps returning objects it cannot destroy must not spin us forever. */
    for (rounds = 0; rounds < 64; rounds++) {
        if ((rc = hsm_find_objs(h, s, cls, id, id_len, objs, HSM_FIND_BATCH, &n)) != HSM_OK)
            return rc;
        if (n == 0)
            return HSM_OK;
        for (i = 0; i < n; i++) {
            if ((rv = h->p11->C_DestroyObject(s->handle, objs[i])) != CKR_OK)
                return hsm_sess_rv(s, rv);
            (*total)++;
        }
    }
    return HSM_ERR_INTERNAL;
}

int hsm_destroy(hsm_t *h, const uint8_t *id, size_t id_len)
{
    hsm_sess_t *s = NULL;
    unsigned total = 0;
    int rc;

    if (!h || !hsm_id_ok(id, id_len))
        return HSM_ERR_INVAL;
    if ((rc = hsm_pool_borrow(h, &s)) != HSM_OK)
        return rc;
    hsm_cache_drop(h, id, id_len);
    /* Logged out, the private key is invisible but the public one is not: never destroy half a pair. */
    if ((rc = hsm_sess_logged_in(h, s)) != 1) {
        if (rc == 0) {
            s->lost = 1;
            rc = HSM_ERR_UNAVAILABLE;
        }
        goto out;
    }
    if ((rc = destroy_class(h, s, CKO_PRIVATE_KEY, id, id_len, &total)) != HSM_OK ||
        (rc = destroy_class(h, s, CKO_PUBLIC_KEY, id, id_len, &total)) != HSM_OK)
        goto out;
    if (total == 0)
        rc = hsm_not_found(h, s);
out:
    /* Again: a signer may have cached the handle between the first drop and the destruction. */
    hsm_cache_drop(h, id, id_len);
    return hsm_pool_return(h, s, rc);
}
