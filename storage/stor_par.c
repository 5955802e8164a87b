/*
 * stor_par.c - the pars table (stor.h): pushed authorization requests (RFC 9126), keyed by the SHA-256 of the
 * request_uri's random part. In storage rather than in one csc-server's memory so that a request_uri pushed through
 * one node is used through any node, exactly once (oauth/ reads and deletes the row in one write transaction; on
 * PostgreSQL the read locks it), and a restart keeps it. The rows are csc-server's own: it pushes, uses and purges
 * them (stor_purge_pars), and csc-sam never writes them.
 */
#include <stddef.h>
#include <stdint.h>

#include "stor_int.h"

int stor_txn_par_get(stor_txn_t *t, const uint8_t hash[32], stor_par_t *out)
{
    return stor_get_by_hash(t, STOR_DB_PARS, STOR_REC_PAR, hash, out, sizeof(*out));
}

int stor_txn_par_put(stor_txn_t *t, const stor_par_t *p)
{
    stor_val_t k;
    int rc;

    if (p == NULL || p->expires_at <= p->created_at || p->req_len == 0 || p->req_len > STOR_PAR_REQ_MAX ||
        p->req_one != 1 || p->req == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(p->client_id)) != 0)
        return rc;
    k = STOR_VAL(p->hash, 32);
    /* create-only: a request_uri names one request for its life; a clash of 256-bit hashes is refused, not merged */
    return stor_put_rec(t, STOR_DB_PARS, &k, STOR_REC_PAR, p, STOR_PUT_NOOVERWRITE);
}

int stor_txn_par_del(stor_txn_t *t, const uint8_t hash[32])
{
    return stor_del_by_hash(t, STOR_DB_PARS, hash);
}

int stor_txn_par_count(stor_txn_t *t, size_t *n)
{
    return stor_count_rows(t, STOR_DB_PARS, n);
}

int stor_txn_par_purge(stor_txn_t *t, int64_t now, int *n)
{
    /* A request is void once now >= expires_at (oauth/); the table walk deletes below its bound. */
    return stor_purge_table(t, STOR_DB_PARS, STOR_REC_PAR, offsetof(stor_par_t, expires_at),
                            now < INT64_MAX ? now + 1 : now, n);
}

int stor_purge_pars(stor_env_t *env, int64_t now)
{
    return stor_purge_run(env, now, stor_txn_par_purge);
}
