/*
 * sam_op_restore_req.c - ACCOUNT_RESTORE (sam_core.h): on /account (csc-api/web/web_account_view.c) the signed-in owner
 * of a credential asks for its key to be restored from a backup (J8: a restore happens only on the user's own
 * request). As for ACCOUNT_PIN, the front end passes the browser session's id, the form's CSRF token and the
 * credential; csc-sam reads the session itself (a signed-in session of the account page), compares the token in
 * constant time, and files the request only for the session user's own credential, with a backup of its current key,
 * whose end is not final (revoked, terminated, certificate expired: adm_backup.c restore_refused). The request (a
 * random reference "RR-" + 12 characters, its expiry restore_request_ttl) is stored with its audit record
 * (STOR_EV_RESTORE action=restore.request) in one write; an open request of the same credential is answered again
 * instead of a new one. csc-admin credential restore FILE --request REF spends it (sam_op_keys.c, adm_backup.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sam_core.h"

#define REF_ALPHABET "ABCDEFGHJKLMNPQRSTUVWXYZ23456789" /* the enrollment codes' (sam_op_enroll.c) */
#define REF_CHARS (STOR_RESTORE_REF_LEN - 3)
#define DEFAULT_TTL (30u * 86400u)
_Static_assert(sizeof(REF_ALPHABET) - 1 == 32, "256 is a multiple of the alphabet: no bias");

enum { RQ_OK = 0, RQ_NOT_FOUND = 1, RQ_NO_BACKUP = 2, RQ_FINAL = 3 };

typedef struct restore_req_job {
    const char *user, *cred, *client;
    int64_t now, ttl;
    int outcome;                    /* RQ_* */
    const char *why;                /* the refusal's reason */
    stor_cred_t c;
    stor_user_t u;
    stor_restore_req_t r;
    stor_audit_t a;
} restore_req_job_t;

/* An open, unexpired request of the same credential, if any (then j->r holds it). */
static int find_open(const stor_restore_req_t *r, void *arg)
{
    restore_req_job_t *j = arg;
    if (r->state != STOR_RESTORE_OPEN || r->expires_at <= j->now || strcmp(r->cred, j->cred) != 0)
        return 0;
    j->r = *r;
    return 1;
}

static int new_ref(char ref[STOR_NAME_MAX + 1])
{
    uint8_t raw[REF_CHARS];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    memcpy(ref, "RR-", 3);
    for (size_t i = 0; i < REF_CHARS; i++)
        ref[3 + i] = REF_ALPHABET[raw[i] % 32];
    ref[STOR_RESTORE_REF_LEN] = '\0';
    return 0;
}

static int request_fn(stor_txn_t *t, void *arg)
{
    restore_req_job_t *j = arg;
    int rc = stor_txn_cred_get(t, j->cred, &j->c);
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL || (rc == 0 && strcmp(j->c.owner, j->user) != 0)) {
        j->outcome = RQ_NOT_FOUND; /* unknown, or another user's (delegates included): the same answer */
        j->why = "no such credential of yours";
        return 1;
    }
    if (rc != 0 || (rc = stor_txn_user_get(t, j->user, &j->u)) != 0)
        return rc;
    if (j->u.status == STOR_USER_TERMINATED ||
        (j->c.status == STOR_CRED_DESTROYED && j->c.end_reason != STOR_CRED_END_OPERATOR)) {
        j->outcome = RQ_FINAL;
        j->why = "the key's end is final (revoked, or its owner terminated): it is never restored";
        return 1;
    }
    if (j->c.cert_not_after != 0 && j->c.cert_not_after <= j->now) {
        j->outcome = RQ_FINAL;
        j->why = "the certificate has expired: the key is never restored";
        return 1;
    }
    if (j->c.backups == 0 || j->c.key_backup != STOR_KEY_BACKUP_WRAPPED) {
        j->outcome = RQ_NO_BACKUP;
        j->why = "no backup of the credential's current key exists";
        return 1;
    }
    if ((rc = stor_txn_restore_req_each(t, j->user, find_open, j)) == 1)
        return 0; /* asked before and still open: the same reference again, nothing written */
    if (rc != 0)
        return rc;
    memset(&j->r, 0, sizeof(j->r));
    snprintf(j->r.user, sizeof(j->r.user), "%s", j->user);
    snprintf(j->r.cred, sizeof(j->r.cred), "%s", j->cred);
    j->r.created_at = j->now;
    j->r.expires_at = j->now + j->ttl;
    j->r.state = STOR_RESTORE_OPEN;
    rc = STOR_ERR_EXISTS;
    for (int tries = 0; tries < 4 && rc == STOR_ERR_EXISTS; tries++)
        rc = new_ref(j->r.ref) != 0 ? STOR_ERR_IO : stor_txn_restore_req_put(t, &j->r, 1);
    if (rc != 0)
        return rc;
    memset(&j->a, 0, sizeof(j->a));
    j->a.event = STOR_EV_RESTORE;
    j->a.result = STOR_RES_OK;
    snprintf(j->a.user, sizeof(j->a.user), "%s", j->user);
    snprintf(j->a.cred, sizeof(j->a.cred), "%s", j->cred);
    snprintf(j->a.client, sizeof(j->a.client), "%s", j->client);
    snprintf(j->a.detail, sizeof(j->a.detail), "action=restore.request ref=%s expires=%lld", j->r.ref,
             (long long)j->r.expires_at);
    return stor_txn_audit_append(t, &j->a);
}

int sam_op_account_restore(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char cred[SAM_NAME_MAX + 1];
    sam_page_t p;
    int rc;

    restore_req_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    if (sam_page_open_account(cfg, req, b, STOR_EV_RESTORE, &p, &rc) != 0)
        goto out;
    sam_text(req, SAM_T_CRED, cred, sizeof(cred));
    j->user = p.v->user;
    j->cred = cred;
    j->client = p.client;
    j->now = (int64_t)time(NULL);
    j->ttl = cfg->restore_request_ttl != 0 ? cfg->restore_request_ttl : DEFAULT_TTL;
    int src = stor_write(cfg->stor, request_fn, j);
    if (src == 1 && j->outcome != RQ_OK) {
        uint32_t code = j->outcome == RQ_NOT_FOUND   ? SAM_REFUSE_NOT_FOUND
                        : j->outcome == RQ_NO_BACKUP ? SAM_REFUSE_NOT_OFFERED
                                                     : SAM_REFUSE_DISABLED;
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_RESTORE, p.v->user, cred, p.client, code, j->why,
                                     SAM_T_CRED);
    } else if (src != 0) {
        rc = sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0);
    } else {
        rc = sam_build_init(b, SAM_OP_ACCOUNT_RESTORE | SAM_OP_REPLY, req->id);
        sam_put_u32(b, SAM_T_EXPIRES_IN, (uint32_t)(j->r.expires_at > j->now ? j->r.expires_at - j->now : 0));
        sam_put_str(b, SAM_T_RESTORE_REF, j->r.ref);
        rc = rc != SAM_OK ? rc : b->err;
    }
out:
    sam_page_close(&p);
    OPENSSL_clear_free(j, sizeof(*j));
    return rc;
}
