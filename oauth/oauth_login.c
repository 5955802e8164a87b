/*
 * oauth_login.c - auth/login with a password (CSC API v2.0.0.2 sec. 11.2), run by csc-sam only (its API_LOGIN op,
 * sam/sam_op_login.c; a file of its own so that csc-server does not link it: check_symbols SAM_ONLY). It writes the
 * user's failure counter and lock, the last sign-ins (signins), the tokens on success and the audit record: tables
 * the front end may not write.
 *
 * Token values are 32 random bytes in base64url; storage only ever sees their SHA-256. The decision is written
 * together with its audit record in one stor_write() callback; the callback returns 0 for denials too (a non-zero
 * return would discard the audit record and the failure counter), and hands the decision back in its context.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "oauth_int.h"

typedef struct {
    const char *name;
    stor_user_t *u;
} user_read_t;

static int user_read_cb(stor_txn_t *t, void *arg)
{
    user_read_t *r = arg;

    return stor_txn_user_get(t, r->name, r->u);
}

/* ---- login with a password ---------------------------------------------- */

typedef struct {
    const oauth_t *o;
    const char *user;
    const char *client;
    int64_t now;
    int known;            /* the user existed when it was read */
    int pre;              /* decision before the write: OK/DENIED (password checked), LOCKED, DISABLED */
    int remember;
    uint8_t access[32];   /* hashes of the tokens to store on success */
    uint8_t refresh[32];
    uint8_t grant[16];
    int rc;               /* final decision */
    stor_audit_t rec;     /* the decision's record */
    oauth_fail_note_t fail; /* what oauth_fail_append() did with a denial, across the write's runs */
} login_ctx_t;

/* The user is re-read inside the write: the password outcome applies to its current state. */
static int login_outcome(stor_txn_t *t, login_ctx_t *c, stor_user_t *u)
{
    const oauth_config_t *cfg = &c->o->cfg;
    int rc;

    if (c->rc != OAUTH_OK) {
        int64_t secs = oauth_lock_failure(cfg, &u->failed_logins, &u->locked_until, &u->locks, c->now);
        if (secs && (rc = oauth_audit_lockout(t, u->name, NULL, c->client, u->locked_until, secs, u->locks)) < 0)
            return rc;
        return stor_txn_user_put(t, u, 0);
    }
    if (oauth_lock_success(&u->failed_logins, &u->locked_until, &u->locks) && (rc = stor_txn_user_put(t, u, 0)) < 0)
        return rc;
    rc = oauth_txn_token_new(t, c->access, STOR_TOKEN_ACCESS, STOR_SCOPE_SERVICE, u->name, NULL, NULL, c->grant,
                             c->now, c->now + (int64_t)cfg->access_ttl);
    if (rc >= 0 && c->remember)
        rc = oauth_txn_token_new(t, c->refresh, STOR_TOKEN_REFRESH, STOR_SCOPE_SERVICE, u->name, NULL, NULL, c->grant,
                                 c->now, c->now + (int64_t)cfg->refresh_ttl);
    return rc;
}

static const char *login_reason(int rc)
{
    switch (rc) {
    case OAUTH_OK: return "password";
    case OAUTH_ERR_LOCKED: return "password: locked";
    case OAUTH_ERR_DISABLED: return "password: disabled";
    default: return "password: wrong password";
    }
}

static int login_apply(stor_txn_t *t, void *arg)
{
    login_ctx_t *c = arg;
    stor_user_t u;
    stor_audit_t rec;
    const char *why = NULL;
    int rc = 0;

    c->rc = c->pre;
    memset(&u, 0, sizeof(u));
    if (!c->known) {
        c->rc = OAUTH_ERR_DENIED;
        why = "password: unknown user";
    } else if ((rc = stor_txn_user_get(t, c->user, &u)) == STOR_ERR_NOTFOUND) {
        c->rc = OAUTH_ERR_DENIED;
        why = "password: unknown user";
    } else if (rc < 0) {
        goto out;
    } else if (c->pre == OAUTH_OK || c->pre == OAUTH_ERR_DENIED) {
        if (u.locked_until > c->now)
            c->rc = OAUTH_ERR_LOCKED;
        else if (u.status != STOR_USER_ACTIVE)
            c->rc = OAUTH_ERR_DISABLED;
        else if ((rc = login_outcome(t, c, &u)) < 0)
            goto out;
    }
    oauth_audit_init(&rec, STOR_EV_LOGIN, c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, c->user, NULL,
                     c->client);
    if (c->rc == OAUTH_OK) {
        rc = oauth_audit_append_ref(t, &rec, c->access, login_reason(c->rc));
    } else {
        /* Anyone can fail: repeats of one address and name share a record (oauth_fail.c). */
        oauth_copy(rec.detail, sizeof(rec.detail), why ? why : login_reason(c->rc));
        c->rec = rec;
        rc = oauth_fail_append(c->o, t, &rec, c->now, &c->fail);
    }
    /* A known user's last sign-ins (/account), in the login's own write, last (with the map full it is the one
     * dropped: stor_txn_recent_add). */
    if (rc >= 0 && u.name[0] != '\0')
        rc = stor_txn_recent_add(t, STOR_RECENT_SIGNINS, u.name, c->now * 1000, STOR_SIGNIN_API,
                                 c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, c->client ? c->client : "");
out:
    OPENSSL_cleanse(&u, sizeof(u));
    return rc < 0 ? rc : 0;
}

/* Runs scrypt outside any transaction; an unknown, locked or suspended user costs one scrypt too.
 * OAUTH_ERR_BUSY: not checked. */
static int login_check_password(const oauth_t *o, const stor_user_t *u, int usable, const char *pw, size_t pw_len)
{
    return oauth_check_password(o, u, usable, pw, pw_len);
}

static int login_new_tokens(login_ctx_t *c, oauth_tokens_t *out)
{
    int rc;

    if (RAND_bytes(c->grant, sizeof(c->grant)) != 1)
        return OAUTH_ERR_INTERNAL;
    if ((rc = oauth_token_new(out->access, c->access)) != OAUTH_OK)
        return rc;
    if (c->remember && (rc = oauth_token_new(out->refresh, c->refresh)) != OAUTH_OK)
        return rc;
    return OAUTH_OK;
}

int oauth_login(oauth_t *o, const char *user, const char *pw, size_t pw_len, int remember, const char *client,
                oauth_tokens_t *out)
{
    login_ctx_t c;
    stor_user_t u;
    user_read_t rd = {user, &u};
    int rc = OAUTH_ERR_INVAL;

    memset(&c, 0, sizeof(c));
    memset(&u, 0, sizeof(u));
    if (out)
        memset(out, 0, sizeof(*out));
    if (!o || !out || !user || (!pw && pw_len))
        goto out;
    c.o = o;
    c.user = user;
    c.client = client;
    c.now = oauth_clock(o);
    c.remember = remember != 0;
    if (oauth_name_ok(user)) {
        rc = stor_read(o->cfg.stor, user_read_cb, &rd);
        if (rc != STOR_OK && rc != STOR_ERR_NOTFOUND) {
            rc = oauth_rc(rc); /* the database out of reach: OAUTH_ERR_UNAVAILABLE (Retry-After: 1) */
            goto out;
        }
        c.known = rc == STOR_OK;
    }
    (void)oauth_fail_flush(o, c.now, 0);
    /* The same scrypt whatever the account's state: the time of the answer tells nothing about it. */
    c.pre = login_check_password(o, &u, c.known && u.locked_until <= c.now && u.status == STOR_USER_ACTIVE, pw,
                                 pw_len);
    if (c.pre == OAUTH_ERR_BUSY) { /* nothing was checked: nothing to count or record */
        rc = c.pre;
        goto out;
    }
    if (c.known && u.locked_until > c.now)
        c.pre = OAUTH_ERR_LOCKED;
    else if (c.known && u.status != STOR_USER_ACTIVE)
        c.pre = OAUTH_ERR_DISABLED;
    if (c.pre == OAUTH_OK && (rc = login_new_tokens(&c, out)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, login_apply, &c))) == OAUTH_OK)
        rc = c.rc;
    else
        oauth_fail_unwritten(o, &c.rec, c.now, &c.fail);
    /* A lock or a suspension answers like a wrong password (the audit record tells them apart). */
    if (rc == OAUTH_ERR_LOCKED || rc == OAUTH_ERR_DISABLED)
        rc = OAUTH_ERR_DENIED;
    if (rc == OAUTH_OK)
        out->expires_in = o->cfg.access_ttl;
out:
    if (rc != OAUTH_OK && out)
        OPENSSL_cleanse(out, sizeof(*out));
    OPENSSL_cleanse(&u, sizeof(u));
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}
