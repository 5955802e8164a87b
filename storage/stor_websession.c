/*
 * stor_websession.c - the web_sessions table: the browser sessions of the OAuth and approval pages (stor.h), keyed by
 * the SHA-256 of the session id. They live here rather than in one process's memory so that csc-sam can check the
 * session a decision (consent, approval) is made in, as csc-server's pages see it.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "stor_int.h"

#define KEY(p, n) STOR_VAL(p, n)

int stor_txn_websession_get(stor_txn_t *t, const uint8_t hash[32], stor_websession_t *out)
{
    return stor_get_by_hash(t, STOR_DB_WEBSESSIONS, STOR_REC_WEBSESSION, hash, out, sizeof(*out));
}

int stor_txn_websession_put(stor_txn_t *t, const stor_websession_t *s, int create_only)
{
    stor_val_t k;
    int rc;

    if (s == NULL || s->req_len == 0 || s->req_len > STOR_WEBSESSION_REQ_MAX || s->req_one != 1 || s->req == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(s->user)) != 0 ||
        (rc = stor_name_check(s->client_id)) != 0)
        return rc;
    k = KEY(s->hash, 32);
    return stor_put_rec(t, STOR_DB_WEBSESSIONS, &k, STOR_REC_WEBSESSION, s, create_only ? STOR_PUT_NOOVERWRITE : 0);
}

int stor_txn_websession_del(stor_txn_t *t, const uint8_t hash[32])
{
    return stor_del_by_hash(t, STOR_DB_WEBSESSIONS, hash);
}

int stor_txn_websession_count(stor_txn_t *t, size_t *n)
{
    return stor_count_rows(t, STOR_DB_WEBSESSIONS, n);
}

int stor_txn_websession_purge(stor_txn_t *t, int64_t now, int *n)
{
    /* A session has expired once now >= expires_at (oauth/); the table walk deletes below its bound. */
    return stor_purge_table(t, STOR_DB_WEBSESSIONS, STOR_REC_WEBSESSION, offsetof(stor_websession_t, expires_at),
                            now < INT64_MAX ? now + 1 : now, n);
}

int stor_purge_websessions(stor_env_t *env, int64_t now)
{
    return stor_purge_run(env, now, stor_txn_websession_purge);
}
