/*
 * oauth_session.c - pushed authorization requests (RFC 9126) and the browser
 * session of the authorization endpoint: the login with password and TOTP
 * that starts it, lookup, end.
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

#define URN_LEN (sizeof(OAUTH_PAR_URN) - 1)
#define REQUEST_URI_MAX 128

/* ---- PAR ----------------------------------------------------------------------- */

int oauth_par_put(oauth_t *o, const oauth_authz_request_t *req, char request_uri[128], unsigned *expires_in)
{
    char value[OAUTH_TOKEN_BUFLEN] = "";
    oauth_ent_t *e = NULL;
    int64_t now;
    int rc = OAUTH_ERR_INVAL;

    if (request_uri)
        request_uri[0] = '\0';
    if (expires_in)
        *expires_in = 0;
    if (!o || !request_uri || !expires_in || !oauth_req_ok(req))
        goto out;
    rc = OAUTH_ERR_INTERNAL;
    if (!(e = oauth_ent_new(req)))
        goto out;
    now = oauth_clock(o);
    if ((rc = oauth_token_new(value, e->key)) != OAUTH_OK)
        goto out;
    e->created = e->touched = now;
    e->expires = now + (int64_t)o->cfg.par_ttl;
    if ((rc = oauth_mem_insert(o->pars, e, now)) != OAUTH_OK)
        goto out;
    e = NULL; /* the table owns it */
    snprintf(request_uri, REQUEST_URI_MAX, "%s%s", OAUTH_PAR_URN, value);
    *expires_in = o->cfg.par_ttl;
out:
    oauth_ent_free(e);
    OPENSSL_cleanse(value, sizeof(value));
    return rc;
}

/* Table key of a request_uri: the SHA-256 of its random part. */
static int par_key(const char *request_uri, uint8_t key[32])
{
    size_t n = strnlen(request_uri, REQUEST_URI_MAX);

    if (n < URN_LEN || memcmp(request_uri, OAUTH_PAR_URN, URN_LEN) != 0)
        return OAUTH_ERR_INVALID;
    return oauth_token_hash(request_uri + URN_LEN, n - URN_LEN, key);
}

int oauth_par_take(oauth_t *o, const char *client_id, const char *request_uri, oauth_authz_request_t *out)
{
    oauth_ent_t *e = NULL;
    uint8_t key[32];
    int rc = OAUTH_ERR_INVAL, expired;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!o || !client_id || !request_uri || !out)
        goto out;
    if ((rc = par_key(request_uri, key)) != OAUTH_OK)
        goto out;
    rc = OAUTH_ERR_INVALID;
    if (!(e = oauth_mem_take(o->pars, key, oauth_clock(o), &expired)))
        goto out;
    /* Another client's request stays for its owner: only the owner's use consumes it. */
    if (strcmp(e->client_id, client_id) != 0) {
        oauth_mem_put_back(o->pars, e);
        e = NULL;
        goto out;
    }
    oauth_ent_req(e, out);
    rc = OAUTH_OK;
out:
    oauth_ent_free(e);
    return rc;
}

typedef struct par_peek {
    const char *client_id;
    oauth_authz_request_t *out;
} par_peek_t;

static int peek_fn(oauth_ent_t *e, void *arg)
{
    par_peek_t *p = arg;

    if (strcmp(e->client_id, p->client_id) != 0)
        return OAUTH_ERR_INVALID;
    oauth_ent_req(e, p->out);
    return OAUTH_OK;
}

int oauth_par_peek(oauth_t *o, const char *client_id, const char *request_uri, oauth_authz_request_t *out)
{
    par_peek_t p = {client_id, out};
    uint8_t key[32];
    int rc = OAUTH_ERR_INVAL;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!o || !client_id || !request_uri || !out)
        return rc;
    if ((rc = par_key(request_uri, key)) != OAUTH_OK)
        return rc;
    rc = oauth_mem_with(o->pars, key, oauth_clock(o), peek_fn, &p);
    if (rc != OAUTH_OK) {
        OPENSSL_cleanse(out, sizeof(*out));
        return rc == OAUTH_ERR_EXPIRED ? OAUTH_ERR_INVALID : rc;
    }
    return OAUTH_OK;
}

/* ---- sessions ------------------------------------------------------------------- */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void touch(const oauth_t *o, oauth_ent_t *e, int64_t now)
{
    e->touched = now;
    e->expires = min64(now + (int64_t)o->cfg.session_idle, e->created + (int64_t)o->cfg.session_max);
}

/* A new session for req, signed in as user in the user's epoch (only ever after a successful login). */
static int session_insert(oauth_t *o, const oauth_authz_request_t *req, const char *user, uint32_t epoch,
                          char sid[OAUTH_TOKEN_BUFLEN], char csrf[OAUTH_TOKEN_BUFLEN])
{
    char value[OAUTH_TOKEN_BUFLEN] = "";
    uint8_t unused[32];
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
    if ((rc = oauth_token_new(value, e->key)) != OAUTH_OK || (rc = oauth_token_new(e->csrf, unused)) != OAUTH_OK)
        goto out;
    e->created = now;
    touch(o, e, now);
    oauth_copy(e->user, sizeof(e->user), user);
    e->epoch = epoch;
    memcpy(csrf, e->csrf, OAUTH_TOKEN_BUFLEN);
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

typedef struct {
    const oauth_t *o;
    int64_t now;
    oauth_session_view_t *view;
    uint32_t epoch; /* the user's epoch the session was signed in with */
} sess_op_t;

static int get_fn(oauth_ent_t *e, void *arg)
{
    sess_op_t *op = arg;

    touch(op->o, e, op->now);
    oauth_ent_req(e, &op->view->req);
    memcpy(op->view->csrf, e->csrf, sizeof(op->view->csrf));
    memcpy(op->view->user, e->user, sizeof(op->view->user));
    op->epoch = e->epoch;
    return OAUTH_OK;
}

typedef struct {
    const char *user;
    uint32_t epoch;
    int live;
} sess_user_t;

static int sess_user_read(stor_txn_t *t, void *arg)
{
    sess_user_t *s = arg;
    stor_user_t u;
    int rc = stor_txn_user_get(t, s->user, &u);

    s->live = rc == STOR_OK && u.status == STOR_USER_ACTIVE && u.epoch == s->epoch;
    OPENSSL_cleanse(&u, sizeof(u));
    return rc == STOR_ERR_NOTFOUND ? 0 : rc;
}

int oauth_session_get(oauth_t *o, const char *sid, oauth_session_view_t *out)
{
    sess_op_t op;
    uint8_t key[32];
    int rc = OAUTH_ERR_INVAL;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!o || !out)
        goto out;
    if ((rc = oauth_token_hash(sid, sid ? strnlen(sid, OAUTH_TOKEN_BUFLEN) : 0, key)) != OAUTH_OK)
        goto out;
    op = (sess_op_t){o, oauth_clock(o), out, 0};
    rc = oauth_ws_with(o, key, op.now, get_fn, &op);
    if (rc == OAUTH_OK && out->user[0]) {
        /* Signed in before an operator's reset (password, TOTP, suspension) of the user: the session ends. */
        sess_user_t su = {out->user, op.epoch, 0};
        if ((rc = oauth_rc(stor_read(o->cfg.stor, sess_user_read, &su))) == OAUTH_OK && !su.live) {
            oauth_session_end(o, sid);
            rc = OAUTH_ERR_INVALID;
        }
    }
out:
    if (rc != OAUTH_OK && out)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

void oauth_session_end(oauth_t *o, const char *sid)
{
    uint8_t key[32];

    if (!o || oauth_token_hash(sid, sid ? strnlen(sid, OAUTH_TOKEN_BUFLEN) : 0, key) != OAUTH_OK)
        return;
    oauth_ent_t *e = NULL;
    (void)oauth_ws_take(o, key, oauth_clock(o), &e);
    oauth_ent_free(e);
}

int oauth_session_set_credential(oauth_t *o, const char *sid, const char *cred, const char *authz_details)
{
    uint8_t key[32];
    int rc = OAUTH_ERR_INVAL;
    oauth_ent_t *e = NULL, *n = NULL;
    oauth_authz_request_t *req = NULL;

    if (!o || !cred || !authz_details || strlen(cred) > STOR_NAME_MAX || strlen(authz_details) > STOR_AUTHZ_DETAILS_MAX)
        return OAUTH_ERR_INVAL;
    if ((rc = oauth_token_hash(sid, sid ? strnlen(sid, OAUTH_TOKEN_BUFLEN) : 0, key)) != OAUTH_OK)
        return rc;
    int64_t now = oauth_clock(o);
    /* Entries are packed: take it out, rebuild it with the credential, put the new one in its place. */
    if ((rc = oauth_ws_take(o, key, now, &e)) != OAUTH_OK)
        return rc;
    rc = OAUTH_ERR_INTERNAL;
    if (!(req = malloc(sizeof(*req))))
        goto out;
    oauth_ent_req(e, req);
    rc = OAUTH_ERR_INVAL;
    if (e->user[0] == '\0' || req->cred[0] != '\0')
        goto back;
    oauth_copy(req->cred, sizeof(req->cred), cred);
    oauth_copy(req->authz_details, sizeof(req->authz_details), authz_details);
    rc = OAUTH_ERR_INTERNAL;
    if (!(n = oauth_ent_new(req)))
        goto back;
    memcpy(n->key, e->key, sizeof(n->key));
    memcpy(n->csrf, e->csrf, sizeof(n->csrf));
    memcpy(n->user, e->user, sizeof(n->user));
    n->epoch = e->epoch;
    memcpy(n->client_id, e->client_id, sizeof(n->client_id));
    n->created = e->created;
    n->touched = e->touched;
    n->expires = e->expires;
    touch(o, n, now);
    if ((rc = oauth_ws_put_back(o, n)) != OAUTH_OK)
        goto back;
    goto out;
back:
    (void)oauth_ws_put_back(o, e);
out:
    oauth_ent_free(n);
    oauth_ent_free(e);
    if (req != NULL) {
        OPENSSL_cleanse(req, sizeof(*req));
        free(req);
    }
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
    int written;              /* ... was appended, not only counted (oauth_fail.c) */
    uint32_t epoch;           /* the user's epoch the login succeeded in */
} slogin_ctx_t;

static int user_read(stor_txn_t *t, void *arg)
{
    slogin_ctx_t *c = arg;

    return stor_txn_user_get(t, c->user, &c->u);
}

/* scrypt and TOTP, outside any transaction; an unknown user costs one scrypt too. */
static int slogin_check(slogin_ctx_t *c, const char *pw, size_t pw_len, const char *otp, size_t otp_len)
{
    int pw_ok, rc;

    if ((rc = oauth_check_password(c->o, &c->u, c->known, pw, pw_len)) == OAUTH_ERR_BUSY)
        return rc; /* nothing was checked: no failure is counted */
    pw_ok = rc == OAUTH_OK;
    c->pre = OAUTH_ERR_DENIED;
    if (!c->known) {
        c->why = "unknown user";
    } else if (!pw_ok) {
        c->why = "wrong password";
    } else if (!c->u.totp_secret_len || c->u.totp_secret_len > STOR_TOTP_MAX) {
        c->why = "no TOTP";
    } else {
        rc = oauth_totp_check(c->u.totp_secret, c->u.totp_secret_len, otp, otp_len, c->now, c->o->cfg.totp_window,
                              &c->otp_step);
        if (rc != OAUTH_OK && rc != OAUTH_ERR_DENIED)
            return rc;
        c->why = rc == OAUTH_OK ? "ok" : "wrong OTP";
        c->pre = rc;
    }
    return OAUTH_OK;
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
    } else if (c->pre == OAUTH_OK && (u->totp_secret_len != c->u.totp_secret_len ||
                                      CRYPTO_memcmp(u->totp_secret, c->u.totp_secret, u->totp_secret_len) != 0)) {
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
        int counted;
        c->rec = rec;
        rc = oauth_fail_append(c->o, t, &rec, c->now, &counted);
        c->written = !counted;
    }
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
            return OAUTH_ERR_STORAGE;
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
    (void)oauth_fail_flush(o, c->now, 0);
    if ((rc = slogin_prepare(o, c, pw, pw_len, otp, otp_len)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, slogin_apply, c))) != OAUTH_OK) {
        if (c->written)
            oauth_fail_unwritten(o, &c->rec, c->now);
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
