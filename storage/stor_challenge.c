/*
 * stor_challenge.c - the challenges table (stor.h): the pending one-time codes of the CHALLENGE object
 * (credentials/getChallenge, v1 sendOTP), keyed by SHA-256(user NUL cred). In storage rather than in one process's
 * memory so that a code made by one node's csc-sam is used up by whichever node's csc-sam checks it, exactly once,
 * and a restart keeps it. Only oauth/'s HMAC of the code is stored (oauth/oauth_challenge.c), never the code.
 */
#include <stddef.h>
#include <stdint.h>

#include "stor_int.h"

int stor_txn_challenge_get(stor_txn_t *t, const uint8_t key[32], stor_challenge_t *out)
{
    return stor_get_by_hash(t, STOR_DB_CHALLENGES, STOR_REC_CHALLENGE, key, out, sizeof(*out));
}

int stor_txn_challenge_put(stor_txn_t *t, const stor_challenge_t *c)
{
    stor_val_t k;
    int rc;

    if (c == NULL || c->expires_at <= c->issued_at)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0)
        return rc;
    k = STOR_VAL(c->key, 32);
    return stor_put_rec(t, STOR_DB_CHALLENGES, &k, STOR_REC_CHALLENGE, c, 0);
}

int stor_txn_challenge_del(stor_txn_t *t, const uint8_t key[32])
{
    return stor_del_by_hash(t, STOR_DB_CHALLENGES, key);
}

int stor_txn_challenge_count(stor_txn_t *t, size_t *n)
{
    return stor_count_rows(t, STOR_DB_CHALLENGES, n);
}

int stor_txn_challenge_purge(stor_txn_t *t, int64_t now, int *n)
{
    /* A code is void once now >= expires_at (oauth/); the table walk deletes below its bound. */
    return stor_purge_table(t, STOR_DB_CHALLENGES, STOR_REC_CHALLENGE, offsetof(stor_challenge_t, expires_at),
                            now < INT64_MAX ? now + 1 : now, n);
}
