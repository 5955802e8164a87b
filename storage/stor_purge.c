/*
 * stor_purge.c - the purge of expired records (stor_purge_expired): csc-sam's purge task (server/srv_sam.c). In a
 * file of its own so that csc-server, which purges only its own web_sessions
 * (stor_purge_websessions, stor_websession.c), links none of it (tests/unit/server/check_symbols: SAM_ONLY): on a
 * shared database the front end's role may not delete tokens, SADs or codes (storage/migrations/0001_init.sql).
 */
#include <stddef.h>
#include <stdint.h>

#include "stor_int.h"

/* Every table with expiring records but web_sessions, in one transaction, by one node at a time. */
static int purge_all(stor_txn_t *t, int64_t now, int *n)
{
    int rc;

    /* One node at a time: another that is purging now holds the lock; this round is skipped (n = 0). */
    if ((rc = stor_txn_try_lock(t, "csc.purge")) <= 0)
        return rc;
    if ((rc = stor_purge_table(t, STOR_DB_TOKENS, STOR_REC_TOKEN, offsetof(stor_token_t, expires_at), now, n)) != 0 ||
        (rc = stor_purge_table(t, STOR_DB_SADS, STOR_REC_SAD, offsetof(stor_sad_t, expires_at), now, n)) != 0 ||
        (rc = stor_purge_table(t, STOR_DB_PENDING_SADS, STOR_REC_SAD, offsetof(stor_sad_t, expires_at), now, n)) != 0 ||
        (rc = stor_purge_table(t, STOR_DB_OPSESSIONS, STOR_REC_OPSESSION, offsetof(stor_opsession_t, expires_at), now,
                               n)) != 0 ||
        (rc = stor_txn_user_approval_purge(t, now, n)) != 0 || (rc = stor_txn_challenge_purge(t, now, n)) != 0 ||
        (rc = stor_purge_table(t, STOR_DB_ENROLL, STOR_REC_ENROLL, offsetof(stor_enroll_t, expires_at), now, n)) != 0 ||
        (rc = stor_purge_table(t, STOR_DB_ENROLL_TICKETS, STOR_REC_ENROLL_TICKET,
                               offsetof(stor_enroll_ticket_t, expires_at), now, n)) != 0 ||
        (rc = stor_purge_table(t, STOR_DB_RESTORE_REQS, STOR_REC_RESTORE_REQ, offsetof(stor_restore_req_t, expires_at),
                               now, n)) != 0)
        return rc;
    return stor_purge_table(t, STOR_DB_CODES, STOR_REC_CODE, offsetof(stor_code_t, expires_at), now, n);
}

int stor_purge_expired(stor_env_t *env, int64_t now)
{
    return stor_purge_run(env, now, purge_all);
}
