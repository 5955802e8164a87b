/*
 * sam_op_account.c - ACCOUNT_PIN (sam_core.h): the /account page (csc-api/web/web_approve.c) sets the PIN of a
 * credential created after the user's enrollment (or delegated to them), which waits for it. Like APPROVE, the front
 * end passes the browser session's id and the form's CSRF token, the credential and the PIN typed; the SAM reads the
 * session itself (a signed-in session of the account and approval pages), compares the token in constant time,
 * applies the PIN rule, and sets the verifier only if the credential waits for this very user's PIN (owner or
 * delegate), in one write with its audit record. The message carries no user.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "sam_core.h"

typedef struct account_pin {
    const char *user;
    const char *cred;
    const char *client;
    uint8_t ver[STOR_VERIFIER_MAX];
    uint32_t vlen;
    int not_waiting;
    stor_cred_t c;
    stor_audit_t a;
} account_pin_t;

static int pin_fn(stor_txn_t *t, void *arg)
{
    account_pin_t *j = arg;
    int rc = stor_txn_cred_get(t, j->cred, &j->c);
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL ||
        (rc == 0 && (j->c.status == STOR_CRED_DESTROYED || !stor_cred_pin_unset(&j->c, j->user)))) {
        j->not_waiting = 1; /* unknown, another user's, destroyed, or its PIN is set: the same answer */
        return 1;
    }
    if (rc != 0)
        return rc;
    if (sam_cred_set_pin(&j->c, j->user, j->ver, j->vlen) != 0)
        return STOR_ERR_INVAL;
    memset(&j->a, 0, sizeof(j->a));
    j->a.event = STOR_EV_ENROLL;
    j->a.result = STOR_RES_OK;
    snprintf(j->a.user, sizeof(j->a.user), "%s", j->user);
    snprintf(j->a.cred, sizeof(j->a.cred), "%s", j->c.id);
    snprintf(j->a.client, sizeof(j->a.client), "%s", j->client);
    if (strcmp(j->c.owner, j->user) != 0)
        snprintf(j->a.owner, sizeof(j->a.owner), "%s", j->c.owner);
    snprintf(j->a.detail, sizeof(j->a.detail), "action=pin.set by=account");
    if ((rc = stor_txn_cred_put(t, &j->c, 0)) != 0)
        return rc;
    return stor_txn_audit_append(t, &j->a);
}

int sam_op_account_pin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char cred[SAM_NAME_MAX + 1], pin[SAM_SECRET_MAX + 1];
    sam_page_t p;
    int rc;

    account_pin_t *j = OPENSSL_zalloc(sizeof(*j));
    if (j == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    if (sam_page_open_account(cfg, req, b, STOR_EV_ENROLL, &p, &rc) != 0)
        goto out;
    sam_text(req, SAM_T_CRED, cred, sizeof(cred));
    sam_text(req, SAM_T_PIN, pin, sizeof(pin));
    const char *bad = sam_pin_refusal(cfg, pin);
    if (bad != NULL) {
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, p.v->user, cred, p.client, SAM_REFUSE_BAD_MESSAGE,
                                     bad, SAM_T_PIN);
        goto out;
    }
    if (oauth_secret_hash(pin, strlen(pin), cfg->scrypt_log2n, j->ver, &j->vlen) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "cannot derive the PIN verifier", 0);
        goto out;
    }
    j->user = p.v->user;
    j->cred = cred;
    j->client = p.client;
    int src = stor_write(cfg->stor, pin_fn, j);
    if (src == 1 && j->not_waiting)
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, p.v->user, cred, p.client, SAM_REFUSE_NOT_FOUND,
                                     "no credential of the user waits for its PIN", SAM_T_CRED);
    else if (src != 0)
        rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, stor_strerror(src), 0);
    else {
        rc = sam_build_init(b, SAM_OP_ACCOUNT_PIN | SAM_OP_REPLY, req->id);
        rc = rc != SAM_OK ? rc : b->err;
    }
out:
    OPENSSL_cleanse(pin, sizeof(pin));
    sam_page_close(&p);
    OPENSSL_clear_free(j, sizeof(*j));
    return rc;
}
