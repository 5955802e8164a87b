/*
 * oauth_session_login.c - the login with password and TOTP that starts a browser session of the pages (csc-sam's
 * LOGIN, sam/sam_op_login.c; a file of its own so that csc-server does not link it: check_symbols SAM_ONLY).
 *
 * The pages keep no session before the password (oauth_ticket.c): oauth_session_login_new() starts one only
 * once the login succeeded, under an id of its own, so every session is signed in from its first moment.
 *
 * The login follows oauth_login(): the user is read, scrypt and TOTP run
 * outside the storage writer, and the outcome (failure count, lock, TOTP
 * replay guard) is applied together with its audit record in one stor_write().
 * Failures also count against the client address (oauth_rate.c), which is
 * refused up front while it is over its limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "oauth_int.h"

/* A new session for req, signed in as user in the user's epoch (only ever after a successful login). */
static int session_insert(oauth_t *o, const oauth_authz_request_t *req, const char *user, uint32_t epoch,
                          char sid[OAUTH_TOKEN_BUFLEN], char csrf[OAUTH_TOKEN_BUFLEN])
{
    char value[OAUTH_TOKEN_BUFLEN] = "";
    oauth_ent_t *e = NULL;
    int64_t now;
    int rc = OAUTH_ERR_INVAL;

    if (sid)
        sid[0] = '\0';
    if (csrf)
        csrf[0] = '\0';
    if (!o || !sid || !csrf || !oauth_req_ok(req))
        goto out;
    rc = OAUTH_ERR_INTERNAL;
    if (!(e = oauth_ent_new(req)))
        goto out;
    now = oauth_clock(o);
    if ((rc = oauth_token_new(value, e->key)) != OAUTH_OK || (rc = oauth_session_csrf(value, csrf)) != OAUTH_OK)
        goto out;
    e->created = now;
    oauth_session_touch(o, e, now);
    oauth_copy(e->user, sizeof(e->user), user);
    e->epoch = epoch;
    if ((rc = oauth_ws_insert(o, e, now)) != OAUTH_OK) {
        OPENSSL_cleanse(csrf, OAUTH_TOKEN_BUFLEN);
        goto out;
    }
    memcpy(sid, value, OAUTH_TOKEN_BUFLEN);
out:
    oauth_ent_free(e);
    OPENSSL_cleanse(value, sizeof(value));
    return rc;
}

/* ---- login ------------------------------------------------------------------------ */

typedef struct {
    const oauth_t *o;
    const char *user;
    char client[64];          /* audit: "oauth:<client_id>@<addr>" */
    int64_t now;
    int known;
    stor_user_t u;            /* as read before the checks */
    int pre;                  /* OK, DENIED (checked), LOCKED, DISABLED */
    int64_t otp_step;
    const char *why;
    int rc;
    stor_audit_t rec;         /* a denial's record */
    oauth_fail_note_t fail; /* what oauth_fail_append() did with a denial, across the write's runs */
    uint32_t epoch;           /* the user's epoch the login succeeded in */
    uint32_t way;             /* stor_signin_way_t: the approval/account pages, or an OAuth client's sign-in page */
} slogin_ctx_t;

static int user_read(stor_txn_t *t, void *arg)
{
    slogin_ctx_t *c = arg;

    return stor_txn_user_get(t, c->user, &c->u);
}

/* scrypt and TOTP, outside any transaction; an unknown user costs one scrypt too. */
static int slogin_check(slogin_ctx_t *c, const char *pw, size_t pw_len, const char *otp, size_t otp_len)
{
    uint8_t secret[STOR_TOTP_MAX];
    size_t len = 0;
    int pw_ok, rc;

    if ((rc = oauth_check_password(c->o, &c->u, c->known, pw, pw_len)) == OAUTH_ERR_BUSY)
        return rc; /* nothing was checked: no failure is counted */
    pw_ok = rc == OAUTH_OK;
    c->pre = OAUTH_ERR_DENIED;
    if (!c->known) {
        c->why = "unknown user";
    } else if (!pw_ok) {
        c->why = "wrong password";
    } else if ((rc = oauth_user_totp(c->o, &c->u, secret, &len)) == OAUTH_ERR_INTERNAL) {
        return OAUTH_ERR_STORAGE; /* sealed, and the token cannot open it now: nothing is counted (503) */
    } else if (rc != OAUTH_OK) {
        c->why = rc == OAUTH_ERR_DENIED ? "TOTP secret does not open" : "no TOTP";
    } else {
        rc = oauth_totp_check(secret, len, otp, otp_len, c->now, c->o->cfg.totp_window, &c->otp_step);
        OPENSSL_cleanse(secret, sizeof(secret));
        if (rc != OAUTH_OK && rc != OAUTH_ERR_DENIED)
            return rc;
        c->why = rc == OAUTH_OK ? "ok" : "wrong OTP";
        c->pre = rc;
    }
    return OAUTH_OK;
}

static int totp_changed(const stor_user_t *then, const stor_user_t *now)
{
    uint8_t a[32], b[32];
    oauth_user_totp_fp(then, a);
    oauth_user_totp_fp(now, b);
    return CRYPTO_memcmp(a, b, sizeof(a)) != 0;
}

/* Re-check against the user as it is now: a lock, a status change, a TOTP reset or a spent time step. */
static void slogin_decide(slogin_ctx_t *c, const stor_user_t *u)
{
    c->rc = c->pre;
    if (u->locked_until > c->now) {
        c->rc = OAUTH_ERR_LOCKED;
        c->why = "locked";
    } else if (u->status != STOR_USER_ACTIVE) {
        c->rc = OAUTH_ERR_DISABLED;
        c->why = "disabled";
    } else if (c->pre == OAUTH_OK && totp_changed(&c->u, u)) {
        c->rc = OAUTH_ERR_DENIED;
        c->why = "TOTP secret changed";
    } else if (c->pre == OAUTH_OK && c->otp_step <= u->totp_last_step) {
        c->rc = OAUTH_ERR_DENIED;
        c->why = "replayed OTP";
    } else if (c->pre == OAUTH_OK && u->epoch != c->u.epoch) {
        c->rc = OAUTH_ERR_DENIED; /* an operator reset the user (a new password) since the password was checked */
        c->why = "user reset meanwhile";
    }
    c->epoch = u->epoch;
}

static int slogin_outcome(stor_txn_t *t, slogin_ctx_t *c, stor_user_t *u)
{
    const oauth_config_t *cfg = &c->o->cfg;
    int rc;

    if (c->rc == OAUTH_ERR_DENIED) {
        int64_t secs = oauth_lock_failure(cfg, &u->failed_logins, &u->locked_until, &u->locks, c->now);
        if (secs && (rc = oauth_audit_lockout(t, u->name, NULL, c->client, u->locked_until, secs, u->locks)) < 0)
            return rc;
        return stor_txn_user_put(t, u, 0);
    }
    if (c->rc != OAUTH_OK)
        return 0;
    (void)oauth_lock_success(&u->failed_logins, &u->locked_until, &u->locks);
    u->totp_last_step = c->otp_step;
    return stor_txn_user_put(t, u, 0);
}

static int slogin_apply(stor_txn_t *t, void *arg)
{
    slogin_ctx_t *c = arg;
    stor_audit_t rec;
    stor_user_t u;
    char detail[64];
    int rc = 0;

    memset(&u, 0, sizeof(u));
    c->rc = c->pre;
    if (c->known && (rc = stor_txn_user_get(t, c->user, &u)) < 0 && rc != STOR_ERR_NOTFOUND)
        goto out;
    if (!c->known || rc == STOR_ERR_NOTFOUND) {
        c->rc = OAUTH_ERR_DENIED;
        c->why = "unknown user";
    } else if (c->pre == OAUTH_OK || c->pre == OAUTH_ERR_DENIED) {
        slogin_decide(c, &u);
        if ((rc = slogin_outcome(t, c, &u)) < 0)
            goto out;
    }
    oauth_audit_init(&rec, STOR_EV_LOGIN, c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, c->user, NULL,
                     c->client);
    snprintf(detail, sizeof(detail), "oauth2 login: %s", c->why);
    oauth_copy(rec.detail, sizeof(rec.detail), detail);
    if (c->rc == OAUTH_OK) {
        rc = stor_txn_audit_append(t, &rec);
    } else {
        c->rec = rec;
        rc = oauth_fail_append(c->o, t, &rec, c->now, &c->fail);
    }
    /* A known user's last sign-ins (/account), in the login's own write, last (with the map full it is the one
     * dropped: stor_txn_recent_add). */
    if (rc >= 0 && u.name[0] != '\0')
        rc = stor_txn_recent_add(t, STOR_RECENT_SIGNINS, u.name, c->now * 1000, c->way,
                                 c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, c->client);
out:
    OPENSSL_cleanse(&u, sizeof(u));
    return rc < 0 ? rc : 0;
}

/* Reads the user and decides what the write will apply. */
static int slogin_prepare(oauth_t *o, slogin_ctx_t *c, const char *pw, size_t pw_len, const char *otp,
                          size_t otp_len)
{
    int rc;

    if (oauth_name_ok(c->user)) {
        rc = stor_read(o->cfg.stor, user_read, c);
        if (rc != STOR_OK && rc != STOR_ERR_NOTFOUND)
            return oauth_rc(rc);
        c->known = rc == STOR_OK;
    }
    /* As in oauth_login(): a locked or disabled user is refused, after the same scrypt (dummy verifier). */
    if (c->known && c->u.locked_until > c->now) {
        (void)oauth_check_password(c->o, &c->u, 0, pw, pw_len);
        c->pre = OAUTH_ERR_LOCKED;
        c->why = "locked";
    } else if (c->known && c->u.status != STOR_USER_ACTIVE) {
        (void)oauth_check_password(c->o, &c->u, 0, pw, pw_len);
        c->pre = OAUTH_ERR_DISABLED;
        c->why = "disabled";
    } else if ((rc = slogin_check(c, pw, pw_len, otp, otp_len)) != OAUTH_OK) {
        return rc;
    }
    return OAUTH_OK;
}

/* The login itself (rate limit, scrypt and TOTP, the outcome and its audit record) for client_id. */
static int login_as(oauth_t *o, const char *client_id, const char *user, const char *pw, size_t pw_len,
                    const char *otp, size_t otp_len, const char *addr, uint32_t *epoch)
{
    slogin_ctx_t *c = NULL;
    int rc = OAUTH_ERR_INTERNAL;

    if (!(c = calloc(1, sizeof(*c))))
        goto out;
    c->o = o;
    c->user = user;
    c->now = oauth_clock(o);
    oauth_audit_client(c->client, client_id, addr ? addr : "");
    c->way = client_id != NULL && strcmp(client_id, OAUTH_APPROVAL_PAGE_CLIENT) == 0 ? STOR_SIGNIN_PAGE
                                                                                  : STOR_SIGNIN_OAUTH;
    (void)oauth_fail_flush(o, c->now, 0);
    if ((rc = slogin_prepare(o, c, pw, pw_len, otp, otp_len)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, slogin_apply, c))) != OAUTH_OK) {
        oauth_fail_unwritten(o, &c->rec, c->now, &c->fail);
        goto out;
    }
    /* A locked or disabled account answers like a wrong password: the browser learns nothing about accounts. */
    rc = c->rc == OAUTH_ERR_DISABLED || c->rc == OAUTH_ERR_LOCKED ? OAUTH_ERR_DENIED : c->rc;
    if (rc != OAUTH_OK)
        (void)oauth_rate_hit(o, addr);
    else
        *epoch = c->epoch;
out:
    if (c)
        OPENSSL_clear_free(c, sizeof(*c));
    return rc;
}

int oauth_session_login_new(oauth_t *o, const oauth_authz_request_t *req, const char *user, const char *pw,
                            size_t pw_len, const char *otp, size_t otp_len, const char *addr,
                            char sid[OAUTH_TOKEN_BUFLEN], char csrf[OAUTH_TOKEN_BUFLEN])
{
    uint32_t epoch = 0;
    int rc = OAUTH_ERR_INVAL;

    if (sid)
        sid[0] = '\0';
    if (csrf)
        csrf[0] = '\0';
    if (!o || !user || !sid || !csrf || (!pw && pw_len) || (!otp && otp_len) || !oauth_req_ok(req))
        return rc;
    if ((rc = oauth_rate_check(o, addr)) != OAUTH_OK)
        return rc;
    if ((rc = login_as(o, req->client_id, user, pw, pw_len, otp, otp_len, addr, &epoch)) != OAUTH_OK)
        return rc;
    return session_insert(o, req, user, epoch, sid, csrf);
}
