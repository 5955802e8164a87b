/*
 * oauth_session.c - pushed authorization requests (RFC 9126) and the browser
 * session of the authorization endpoint: lookup, end. The login with password and TOTP that starts one is
 * oauth_session_login.c (csc-sam's).
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
    rc = oauth_ent_req(e, out);
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
    return oauth_ent_req(e, p->out);
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

void oauth_session_touch(const oauth_t *o, oauth_ent_t *e, int64_t now)
{
    e->touched = now;
    e->expires = min64(now + (int64_t)o->cfg.session_idle, e->created + (int64_t)o->cfg.session_max);
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

    if (oauth_ent_req(e, &op->view->req) != OAUTH_OK)
        return OAUTH_ERR_INVALID;
    oauth_session_touch(op->o, e, op->now);
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
    if (rc == OAUTH_OK)
        rc = oauth_session_csrf(sid, out->csrf);
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
    if ((rc = oauth_ent_req(e, req)) != OAUTH_OK)
        goto back;
    rc = OAUTH_ERR_INVAL;
    if (e->user[0] == '\0' || req->cred[0] != '\0')
        goto back;
    oauth_copy(req->cred, sizeof(req->cred), cred);
    oauth_copy(req->authz_details, sizeof(req->authz_details), authz_details);
    rc = OAUTH_ERR_INTERNAL;
    if (!(n = oauth_ent_new(req)))
        goto back;
    memcpy(n->key, e->key, sizeof(n->key));
    memcpy(n->user, e->user, sizeof(n->user));
    n->epoch = e->epoch;
    memcpy(n->client_id, e->client_id, sizeof(n->client_id));
    n->created = e->created;
    n->touched = e->touched;
    n->expires = e->expires;
    oauth_session_touch(o, n, now);
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
