/*
 * sam_op_account.c - the /account page's changes of the user's own factors (sam_core.h; the page is
 * csc-api/web/web_account.c):
 *   ACCOUNT_PIN       sets the PIN of a credential that waits for the signed-in user's PIN (created after the
 *                     enrollment, or delegated); with OLD_SECRET, changes a PIN that is set: the old PIN is checked
 *                     against the verifier (scrypt, constant time) and a wrong one counts on the credential's
 *                     counters with the lock of credentials/authorize; a locked credential refuses.
 *   ACCOUNT_PASSWORD  the old password (a wrong one counts as a failed sign-in of the user: the user's counters and
 *                     lock of LOGIN) and a new one under the rules of /enroll, never the same.
 * Like APPROVE, the front end passes the browser session's id and the form's CSRF token; the SAM reads the session
 * itself (a signed-in session of the account page), compares the token in constant time, and never takes the front
 * end's word for the user. A change is one write with its audit record (STOR_EV_ENROLL, "action=pin.change" or
 * "password.change", "by=account", and how many sessions, tokens and SADs it revoked): every other browser session of
 * the user ends, and every token and SAD of the user (a password) or the credential-scope tokens and SADs of the
 * credential (a PIN) are revoked. Secrets are wiped after use and never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "sam_core.h"

/* One change of a factor: what was read and checked before the write, and what the write decided. */
typedef struct change {
    const sam_server_config_t *cfg;
    const char *user, *cred, *client; /* cred NULL: the password */
    const char *action;                /* "pin.change", "password.change" */
    uint8_t keep[32];                  /* SHA-256 of the session that made the change: it stays */
    uint8_t old_v[STOR_VERIFIER_MAX];  /* the verifier the old factor was checked against */
    uint32_t old_vlen;
    int old_ok;                        /* the old factor matched it */
    uint8_t ver[STOR_VERIFIER_MAX];    /* the new verifier */
    uint32_t vlen;
    int64_t now;
    int outcome;                       /* OAUTH_OK, _DENIED (wrong, counted), _LOCKED, _INVALID (gone or changed) */
    unsigned sessions;
    stor_revoked_t r;
    stor_user_t u;
    stor_cred_t c;
    stor_audit_t a;
} change_t;

/* The verifier of user's PIN of c (the owner's, or the delegate's own) into out: its length, 0 when none. */
static uint32_t pin_of(const stor_cred_t *c, const char *user, uint8_t out[STOR_VERIFIER_MAX])
{
    if (strcmp(c->owner, user) == 0) {
        if (c->pin_verifier_len > STOR_VERIFIER_MAX)
            return 0;
        memcpy(out, c->pin_verifier, c->pin_verifier_len);
        return c->pin_verifier_len;
    }
    int i = stor_cred_delegate(c, user);
    size_t n = 0;
    if (i < 0 || c->delegate_pins[i][0] == '\0' ||
        OPENSSL_hexstr2buf_ex(out, STOR_VERIFIER_MAX, &n, c->delegate_pins[i], '\0') != 1)
        return 0;
    return (uint32_t)n;
}

/* Load the factor's record and its verifier (into v, *vlen); *outcome: OAUTH_OK, _INVALID (none to change) or
 * _LOCKED. @return 0 or a storage error */
static int change_load(stor_txn_t *t, change_t *j, uint8_t v[STOR_VERIFIER_MAX], uint32_t *vlen, int *outcome)
{
    int rc;
    *vlen = 0;
    *outcome = OAUTH_ERR_INVALID;
    if (j->cred != NULL) {
        rc = stor_txn_cred_get(t, j->cred, &j->c);
        if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL)
            return 0;
        if (rc != 0)
            return rc;
        /* Another user's, destroyed, or waiting for its PIN (set, not changed): none to change. */
        if (j->c.status == STOR_CRED_DESTROYED || stor_cred_pin_unset(&j->c, j->user) ||
            (strcmp(j->c.owner, j->user) != 0 && stor_cred_delegate(&j->c, j->user) < 0) ||
            (*vlen = pin_of(&j->c, j->user, v)) == 0)
            return 0;
        *outcome = j->c.locked_until > j->now ? OAUTH_ERR_LOCKED : OAUTH_OK;
        return 0;
    }
    if ((rc = stor_txn_user_get(t, j->user, &j->u)) == STOR_ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (j->u.status != STOR_USER_ACTIVE || j->u.pw_verifier_len == 0 || j->u.pw_verifier_len > STOR_VERIFIER_MAX)
        return 0;
    memcpy(v, j->u.pw_verifier, j->u.pw_verifier_len);
    *vlen = j->u.pw_verifier_len;
    *outcome = j->u.locked_until > j->now ? OAUTH_ERR_LOCKED : OAUTH_OK;
    return 0;
}

static int read_fn(stor_txn_t *t, void *arg)
{
    change_t *j = arg;
    return change_load(t, j, j->old_v, &j->old_vlen, &j->outcome);
}

static void change_audit(change_t *j, uint32_t result, const char *why)
{
    memset(&j->a, 0, sizeof(j->a));
    j->a.event = STOR_EV_ENROLL;
    j->a.result = result;
    snprintf(j->a.user, sizeof(j->a.user), "%s", j->user);
    snprintf(j->a.client, sizeof(j->a.client), "%s", j->client);
    if (j->cred != NULL) {
        snprintf(j->a.cred, sizeof(j->a.cred), "%s", j->c.id);
        if (strcmp(j->c.owner, j->user) != 0)
            snprintf(j->a.owner, sizeof(j->a.owner), "%s", j->c.owner);
    }
    if (why != NULL)
        snprintf(j->a.detail, sizeof(j->a.detail), "action=%s by=account denied: %s", j->action, why);
    else
        snprintf(j->a.detail, sizeof(j->a.detail),
                 "action=%s by=account revoked: sessions=%u tokens=%u sads=%u codes=%u", j->action, j->sessions,
                 j->r.tokens, j->r.sads, j->r.pending);
}

static int put_record(stor_txn_t *t, change_t *j)
{
    return j->cred != NULL ? stor_txn_cred_put(t, &j->c, 0) : stor_txn_user_put(t, &j->u, 0);
}

/* The write: the record as it is now decides; a wrong old factor is counted (committed, with its record), a right
 * one replaces the verifier, ends the other sessions and revokes tokens and SADs, all with one audit record. */
static int change_fn(stor_txn_t *t, void *arg)
{
    change_t *j = arg;
    uint8_t v[STOR_VERIFIER_MAX];
    uint32_t vlen;
    int rc = change_load(t, j, v, &vlen, &j->outcome);

    if (rc != 0)
        goto out;
    if (j->outcome == OAUTH_OK && (vlen != j->old_vlen || CRYPTO_memcmp(v, j->old_v, vlen) != 0))
        j->outcome = OAUTH_ERR_INVALID; /* changed since it was checked: counts neither way */
    if (j->outcome != OAUTH_OK) {
        rc = 1; /* nothing written; the caller refuses (and audits) */
        goto out;
    }
    if (!j->old_ok) {
        j->outcome = OAUTH_ERR_DENIED;
        if ((rc = oauth_factor_failure(j->cfg->oauth, t, j->cred != NULL ? NULL : &j->u,
                                       j->cred != NULL ? &j->c : NULL, j->user, j->client, j->now)) != 0 ||
            (rc = put_record(t, j)) != 0)
            goto out;
        change_audit(j, STOR_RES_DENIED, j->cred != NULL ? "wrong old PIN" : "wrong old password");
        rc = stor_txn_audit_append(t, &j->a);
        goto out;
    }
    if (j->cred != NULL) {
        oauth_factor_success(NULL, &j->c);
        if (sam_cred_set_pin(&j->c, j->user, j->ver, j->vlen) != 0) {
            rc = STOR_ERR_INVAL;
            goto out;
        }
        rc = stor_txn_user_revoke_cred(t, j->user, j->cred, j->now, &j->r);
    } else {
        oauth_factor_success(&j->u, NULL);
        memcpy(j->u.pw_verifier, j->ver, j->vlen);
        j->u.pw_verifier_len = j->vlen;
        rc = stor_txn_user_revoke_all(t, j->user, j->now, &j->r);
    }
    if (rc != 0 || (rc = stor_txn_websession_end_user(t, j->user, j->keep, j->now, &j->sessions)) != 0 ||
        (rc = put_record(t, j)) != 0)
        goto out;
    change_audit(j, STOR_RES_OK, NULL);
    rc = stor_txn_audit_append(t, &j->a);
out:
    OPENSSL_cleanse(v, sizeof(v));
    return rc;
}

/* Check old (as typed) against the factor's verifier; only if it is right, derive the new verifier from fresh (so a
 * wrong old secret costs one scrypt, not two) and apply the change; the reply or refusal into b. The refusals: UNAUTHORIZED about OLD_SECRET (wrong: counted), LOCKED, NOT_FOUND about CRED or
 * SESSION (nothing to change), BUSY (nothing checked), UNAVAILABLE. */
static int change_run(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, change_t *j,
                      const char *old, const char *fresh, unsigned op)
{
    unsigned about = j->cred != NULL ? SAM_T_CRED : SAM_T_SESSION;
    int rc, src;

    j->now = oauth_decision_time(cfg->oauth);
    if ((src = stor_read(cfg->stor, read_fn, j)) != 0)
        return sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0);
    if (j->outcome == OAUTH_ERR_INVALID)
        return sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, j->user, j->cred, j->client,
                                       SAM_REFUSE_NOT_FOUND,
                                       j->cred != NULL ? "no PIN of the user's to change" : "no password to change",
                                       about);
    if (j->outcome == OAUTH_ERR_LOCKED)
        return sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, j->user, j->cred, j->client, SAM_REFUSE_LOCKED,
                                       j->cred != NULL ? "the credential is locked" : "the user is locked", about);
    rc = oauth_secret_check(cfg->oauth, j->old_v, j->old_vlen, old, strlen(old));
    if (rc == OAUTH_ERR_BUSY)
        return sam_refuse(b, req, SAM_REFUSE_BUSY, "too many secret checks at once", 0);
    j->old_ok = rc == OAUTH_OK;
    if (j->old_ok && oauth_secret_hash(fresh, strlen(fresh), cfg->scrypt_log2n, j->ver, &j->vlen) != 0)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "cannot derive the new verifier", 0);
    src = stor_write(cfg->stor, change_fn, j);
    if (src == 1 && j->outcome == OAUTH_ERR_LOCKED)
        return sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, j->user, j->cred, j->client, SAM_REFUSE_LOCKED,
                                       "locked meanwhile", about);
    if (src == 1)
        return sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, j->user, j->cred, j->client,
                                       SAM_REFUSE_NOT_FOUND, "changed meanwhile", about);
    if (src != 0)
        return sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0);
    if (j->outcome == OAUTH_ERR_DENIED)
        return sam_build_refusal(b, req->id, SAM_REFUSE_UNAUTHORIZED,
                                 j->cred != NULL ? "wrong old PIN" : "wrong old password", SAM_T_OLD_SECRET);
    rc = sam_build_init(b, op | SAM_OP_REPLY, req->id);
    return rc != SAM_OK ? rc : b->err;
}

int sam_account_session(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, sam_page_t *p,
                        const char **user, const char **client, uint8_t keep[32], int *rc)
{
    unsigned int n = 0;
    if (sam_page_open_account(cfg, req, b, STOR_EV_ENROLL, p, rc) != 0)
        return -1;
    if (EVP_Digest(p->sid, strlen(p->sid), keep, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        *rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "cannot hash the session id", 0);
        return -1;
    }
    *user = p->v->user;
    *client = p->client;
    return 0;
}

/* The waiting case: set the PIN of a credential that waits for this user's (no old PIN). */
static int pin_fn(stor_txn_t *t, void *arg)
{
    change_t *j = arg;
    int rc = stor_txn_cred_get(t, j->cred, &j->c);
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL ||
        (rc == 0 && (j->c.status == STOR_CRED_DESTROYED || !stor_cred_pin_unset(&j->c, j->user)))) {
        j->outcome = OAUTH_ERR_INVALID; /* unknown, another user's, destroyed, or its PIN is set: the same answer */
        return 1;
    }
    if (rc != 0)
        return rc;
    if (sam_cred_set_pin(&j->c, j->user, j->ver, j->vlen) != 0)
        return STOR_ERR_INVAL;
    change_audit(j, STOR_RES_OK, NULL);
    snprintf(j->a.detail, sizeof(j->a.detail), "action=pin.set by=account");
    if ((rc = stor_txn_cred_put(t, &j->c, 0)) != 0)
        return rc;
    return stor_txn_audit_append(t, &j->a);
}

int sam_op_account_pin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char cred[SAM_NAME_MAX + 1], pin[SAM_SECRET_MAX + 1], old[SAM_SECRET_MAX + 1];
    sam_page_t p;
    int rc;

    change_t *j = OPENSSL_zalloc(sizeof(*j));
    if (j == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    sam_text(req, SAM_T_CRED, cred, sizeof(cred));
    sam_text(req, SAM_T_PIN, pin, sizeof(pin));
    sam_text(req, SAM_T_OLD_SECRET, old, sizeof(old));
    if (sam_account_session(cfg, req, b, &p, &j->user, &j->client, j->keep, &rc) != 0)
        goto out;
    j->cfg = cfg;
    j->cred = cred;
    j->action = "pin.change";
    const char *bad = sam_pin_refusal(cfg, pin);
    if (bad != NULL) {
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, p.v->user, cred, p.client, SAM_REFUSE_BAD_MESSAGE,
                                     bad, SAM_T_PIN);
        goto out;
    }
    if (sam_msg_count(req, SAM_T_OLD_SECRET) > 0) {
        rc = change_run(cfg, req, b, j, old, pin, SAM_OP_ACCOUNT_PIN);
        goto out;
    }
    if (oauth_secret_hash(pin, strlen(pin), cfg->scrypt_log2n, j->ver, &j->vlen) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "cannot derive the PIN verifier", 0);
        goto out;
    }
    int src = stor_write(cfg->stor, pin_fn, j);
    if (src == 1 && j->outcome == OAUTH_ERR_INVALID)
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, p.v->user, cred, p.client, SAM_REFUSE_NOT_FOUND,
                                     "no credential of the user waits for its PIN", SAM_T_CRED);
    else if (src != 0)
        rc = sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0);
    else {
        rc = sam_build_init(b, SAM_OP_ACCOUNT_PIN | SAM_OP_REPLY, req->id);
        rc = rc != SAM_OK ? rc : b->err;
    }
out:
    OPENSSL_cleanse(pin, sizeof(pin));
    OPENSSL_cleanse(old, sizeof(old));
    sam_page_close(&p);
    OPENSSL_clear_free(j, sizeof(*j));
    return rc;
}

int sam_op_account_password(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char pw[SAM_SECRET_MAX + 1], old[SAM_SECRET_MAX + 1];
    sam_page_t p;
    int rc;

    change_t *j = OPENSSL_zalloc(sizeof(*j));
    if (j == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    sam_text(req, SAM_T_PASSWORD, pw, sizeof(pw));
    sam_text(req, SAM_T_OLD_SECRET, old, sizeof(old));
    if (sam_account_session(cfg, req, b, &p, &j->user, &j->client, j->keep, &rc) != 0)
        goto out;
    j->cfg = cfg;
    j->action = "password.change";
    const char *bad = sam_password_refusal(cfg, p.v->user, pw);
    if (bad == NULL && strlen(pw) == strlen(old) && CRYPTO_memcmp(pw, old, strlen(pw)) == 0)
        bad = "the new password is the old one";
    if (bad != NULL) {
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, p.v->user, NULL, p.client, SAM_REFUSE_BAD_MESSAGE,
                                     bad, SAM_T_PASSWORD);
        goto out;
    }
    rc = change_run(cfg, req, b, j, old, pw, SAM_OP_ACCOUNT_PASSWORD);
out:
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(old, sizeof(old));
    sam_page_close(&p);
    OPENSSL_clear_free(j, sizeof(*j));
    return rc;
}
