/*
 * oauth_websession.c - the browser sessions of the OAuth and approval pages, kept in storage (stor.h: web_sessions)
 * rather than in this process's memory: csc-server's pages start and read them, csc-sam checks the one a consent or
 * an approval is decided in (issue 11). The same four operations as the in-memory tables (oauth_mem.c), each one
 * storage transaction, so that a session taken for a decision is taken once across both processes.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "oauth_int.h"

static void to_rec(const oauth_ent_t *e, stor_websession_t *s)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->hash, e->key, 32);
    oauth_copy(s->user, sizeof(s->user), e->user);
    oauth_copy(s->client_id, sizeof(s->client_id), e->client_id);
    s->epoch = e->epoch;
    s->created_at = e->created;
    s->touched_at = e->touched;
    s->expires_at = e->expires;
    s->req_len = (uint32_t)e->req_len;
    s->req_one = 1;
    s->req = e->req;
}

/* A new entry from a record (its request copied out of the transaction). NULL: out of memory. */
static oauth_ent_t *from_rec(const stor_websession_t *s)
{
    oauth_ent_t *e = calloc(1, sizeof(*e) + s->req_len);
    if (!e)
        return NULL;
    memcpy(e->key, s->hash, 32);
    oauth_copy(e->user, sizeof(e->user), s->user);
    oauth_copy(e->client_id, sizeof(e->client_id), s->client_id);
    e->epoch = s->epoch;
    e->created = s->created_at;
    e->touched = s->touched_at;
    e->expires = s->expires_at;
    e->req_len = s->req_len;
    memcpy(e->req, s->req, s->req_len);
    return e;
}

typedef struct {
    const oauth_t *o;
    const oauth_ent_t *in;       /* insert, put back */
    const uint8_t *key;          /* take, with */
    int64_t now;
    int (*fn)(oauth_ent_t *e, void *arg);
    void *arg;
    oauth_ent_t *out;            /* take: the entry taken */
    int rc;
} ws_op_t;

static int insert_fn(stor_txn_t *t, void *arg)
{
    ws_op_t *op = arg;
    stor_websession_t s;
    size_t n = 0;
    int purged = 0, rc;

    op->rc = OAUTH_OK;
    if ((rc = stor_txn_websession_count(t, &n)) != 0)
        return rc;
    if (n >= op->o->sessions_cap) {
        if ((rc = stor_txn_websession_purge(t, op->now, &purged)) != 0 || (rc = stor_txn_websession_count(t, &n)) != 0)
            return rc;
        if (n >= op->o->sessions_cap) {
            op->rc = OAUTH_ERR_FULL;
            return 0;
        }
    }
    to_rec(op->in, &s);
    rc = stor_txn_websession_put(t, &s, 1);
    OPENSSL_cleanse(&s, sizeof(s));
    return rc;
}

int oauth_ws_insert(oauth_t *o, const oauth_ent_t *e, int64_t now)
{
    ws_op_t op = {.o = o, .in = e, .now = now};
    int rc = oauth_rc(stor_write(o->cfg.stor, insert_fn, &op));
    return rc != OAUTH_OK ? rc : op.rc;
}

static int put_back_fn(stor_txn_t *t, void *arg)
{
    ws_op_t *op = arg;
    stor_websession_t s;
    to_rec(op->in, &s);
    int rc = stor_txn_websession_put(t, &s, 0);
    OPENSSL_cleanse(&s, sizeof(s));
    return rc;
}

int oauth_ws_put_back(oauth_t *o, const oauth_ent_t *e)
{
    ws_op_t op = {.o = o, .in = e};
    return oauth_rc(stor_write(o->cfg.stor, put_back_fn, &op));
}

/* take (fn NULL): remove and hand it out; with: run fn on it and write it back (removed when expired). */
static int take_fn(stor_txn_t *t, void *arg)
{
    ws_op_t *op = arg;
    stor_websession_t s;
    int rc = stor_txn_websession_get(t, op->key, &s);

    oauth_ent_free(op->out); /* start clean, whatever an earlier run left */
    op->out = NULL;
    op->rc = OAUTH_ERR_INVALID;
    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (op->now >= s.expires_at || op->fn == NULL) {
        op->rc = op->now >= s.expires_at ? OAUTH_ERR_EXPIRED : OAUTH_OK;
        if (op->rc == OAUTH_OK && !(op->out = from_rec(&s)))
            return STOR_ERR_NOMEM;
        return stor_txn_websession_del(t, op->key);
    }
    if (!(op->out = from_rec(&s)))
        return STOR_ERR_NOMEM;
    if ((op->rc = op->fn(op->out, op->arg)) != OAUTH_OK)
        return 0;
    to_rec(op->out, &s);
    rc = stor_txn_websession_put(t, &s, 0);
    OPENSSL_cleanse(&s, sizeof(s));
    return rc;
}

int oauth_ws_take(oauth_t *o, const uint8_t key[32], int64_t now, oauth_ent_t **out)
{
    ws_op_t op = {.o = o, .key = key, .now = now};
    int rc = oauth_rc(stor_write(o->cfg.stor, take_fn, &op));
    *out = NULL;
    if (rc != OAUTH_OK) {
        oauth_ent_free(op.out); /* rolled back: the session stays */
        return rc;
    }
    *out = op.out;
    return op.rc;
}

int oauth_ws_with(oauth_t *o, const uint8_t key[32], int64_t now, int (*fn)(oauth_ent_t *e, void *arg), void *arg)
{
    ws_op_t op = {.o = o, .key = key, .now = now, .fn = fn, .arg = arg};
    int rc = oauth_rc(stor_write(o->cfg.stor, take_fn, &op));
    oauth_ent_free(op.out);
    return rc != OAUTH_OK ? rc : op.rc;
}
