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

/* ---- PAR -----------------------------------------------------------------------
 * Kept in storage (stor.h: pars), not in this process's memory: a request_uri pushed through one node is used
 * through any node, and a restart keeps it. Each operation is one storage transaction; a take reads the row and
 * deletes it in the same write (on PostgreSQL the read locks the row), so two nodes cannot both use it. */

_Static_assert(OAUTH_REQ_ENC_MAX <= STOR_PAR_REQ_MAX, "a packed request fits a stored PAR");

typedef struct {
    const oauth_t *o;
    const uint8_t *key;        /* take, peek */
    const char *client_id;     /* take, peek: the client asking */
    stor_par_t rec;            /* put: the row */
    int64_t now;
    uint8_t *req;              /* take, peek: the request's bytes copied out of the transaction */
    size_t req_len;
    int rc;
} par_op_t;

static void par_op_clear(par_op_t *op)
{
    if (op->req)
        OPENSSL_clear_free(op->req, op->req_len);
    op->req = NULL;
    op->req_len = 0;
}

/* Room first: the cap counts the stored rows, expired ones until purged (on several nodes it may be overshot by
 * one row per concurrent writer: a count locks nothing, storage/stor_backend.h). */
static int par_put_fn(stor_txn_t *t, void *arg)
{
    par_op_t *op = arg;
    size_t n = 0;
    int purged = 0, rc;

    op->rc = OAUTH_OK;
    if ((rc = stor_txn_par_count(t, &n)) != STOR_OK)
        return rc;
    if (n >= op->o->par_cap) {
        if ((rc = stor_txn_par_purge(t, op->now, &purged)) != STOR_OK || (rc = stor_txn_par_count(t, &n)) != STOR_OK)
            return rc;
        if (n >= op->o->par_cap) {
            op->rc = OAUTH_ERR_FULL;
            return 0;
        }
    }
    rc = stor_txn_par_put(t, &op->rec);
    if (rc == STOR_ERR_EXISTS) { /* two equal SHA-256 of 256 random bits: the random source is broken */
        op->rc = OAUTH_ERR_INTERNAL;
        return 0;
    }
    return rc;
}

int oauth_par_put(oauth_t *o, const oauth_authz_request_t *req, char request_uri[128], unsigned *expires_in)
{
    char value[OAUTH_TOKEN_BUFLEN] = "";
    oauth_ent_t *e = NULL;
    par_op_t op;
    int rc = OAUTH_ERR_INVAL;

    memset(&op, 0, sizeof(op));
    if (request_uri)
        request_uri[0] = '\0';
    if (expires_in)
        *expires_in = 0;
    if (!o || !request_uri || !expires_in || !oauth_req_ok(req))
        goto out;
    rc = OAUTH_ERR_INTERNAL;
    if (!(e = oauth_ent_new(req))) /* the request packed (oauth_req_encode) */
        goto out;
    if ((rc = oauth_token_new(value, op.rec.hash)) != OAUTH_OK)
        goto out;
    op.o = o;
    op.now = oauth_clock(o);
    oauth_copy(op.rec.client_id, sizeof(op.rec.client_id), e->client_id);
    op.rec.created_at = op.now;
    op.rec.expires_at = op.now + (int64_t)o->cfg.par_ttl;
    op.rec.req = e->req;
    op.rec.req_len = (uint32_t)e->req_len;
    op.rec.req_one = 1;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, par_put_fn, &op))) == OAUTH_OK)
        rc = op.rc;
    if (rc != OAUTH_OK)
        goto out;
    snprintf(request_uri, REQUEST_URI_MAX, "%s%s", OAUTH_PAR_URN, value);
    *expires_in = o->cfg.par_ttl;
out:
    oauth_ent_free(e);
    OPENSSL_cleanse(value, sizeof(value));
    OPENSSL_cleanse(&op, sizeof(op));
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

/* The row under op->key if it is the asking client's and unexpired: its request copied to op->req (op->rc OAUTH_OK),
 * else op->rc OAUTH_ERR_INVALID. *gone: the row is no request any more (expired or unreadable). */
static int par_read(stor_txn_t *t, par_op_t *op, int *gone)
{
    stor_par_t rec;
    int rc;

    par_op_clear(op); /* start clean, whatever an earlier run of the batch left */
    op->rc = OAUTH_ERR_INVALID;
    *gone = 0;
    rc = stor_txn_par_get(t, op->key, &rec);
    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc == STOR_ERR_CORRUPT) {
        *gone = 1;
        return 0;
    }
    if (rc != STOR_OK)
        return rc;
    if (op->now >= rec.expires_at) {
        *gone = 1;
        return 0;
    }
    /* Another client's request stays for its owner: only the owner's use consumes it. */
    if (strcmp(rec.client_id, op->client_id) != 0)
        return 0;
    if (!(op->req = malloc(rec.req_len)))
        return STOR_ERR_NOMEM;
    memcpy(op->req, rec.req, rec.req_len);
    op->req_len = rec.req_len;
    op->rc = OAUTH_OK;
    return 0;
}

static int par_take_fn(stor_txn_t *t, void *arg)
{
    par_op_t *op = arg;
    int gone, rc;

    if ((rc = par_read(t, op, &gone)) != 0)
        return rc;
    if (op->rc == OAUTH_OK || gone) /* used up, or dead: either way it goes */
        return stor_txn_par_del(t, op->key);
    return 0;
}

static int par_peek_fn(stor_txn_t *t, void *arg)
{
    int gone;

    return par_read(t, arg, &gone); /* a dead row stays for the purge: a read writes nothing */
}

static int par_get(oauth_t *o, const char *client_id, const char *request_uri, oauth_authz_request_t *out, int take)
{
    par_op_t op;
    uint8_t key[32];
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!o || !client_id || !request_uri || !out)
        return OAUTH_ERR_INVAL;
    if ((rc = par_key(request_uri, key)) != OAUTH_OK)
        return rc;
    memset(&op, 0, sizeof(op));
    op.o = o;
    op.key = key;
    op.client_id = client_id;
    op.now = oauth_clock(o);
    rc = take ? stor_write(o->cfg.stor, par_take_fn, &op) : stor_read(o->cfg.stor, par_peek_fn, &op);
    if ((rc = oauth_rc(rc)) == OAUTH_OK && (rc = op.rc) == OAUTH_OK &&
        oauth_req_decode(op.req, op.req_len, out) != OAUTH_OK)
        rc = OAUTH_ERR_INVALID; /* bytes that are not a request (another version's): as good as gone */
    if (rc != OAUTH_OK)
        OPENSSL_cleanse(out, sizeof(*out));
    par_op_clear(&op);
    return rc;
}

int oauth_par_take(oauth_t *o, const char *client_id, const char *request_uri, oauth_authz_request_t *out)
{
    return par_get(o, client_id, request_uri, out, 1);
}

int oauth_par_peek(oauth_t *o, const char *client_id, const char *request_uri, oauth_authz_request_t *out)
{
    return par_get(o, client_id, request_uri, out, 0);
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
