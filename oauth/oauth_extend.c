/*
 * oauth_extend.c - credentials/extendTransaction (CSC v2 sec. 11.9): a fresh SAD
 * for the rest of a transaction's budget, optionally bound to new digests. The
 * old SAD stops working in the same transaction that stores the new one, so a
 * budget can never be spent through both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "oauth_int.h"

typedef struct {
    const oauth_t *o;
    const oauth_sad_request_t *req; /* user, cred, new digests (n_digests 0 = keep the old ones), client */
    uint8_t old_hash[32];
    stor_sad_t *old, *fresh;
    int64_t now;
    int rc;                         /* the decision */
    unsigned remaining;
} extend_ctx_t;

static int extend_apply(stor_txn_t *t, void *arg)
{
    extend_ctx_t *c = arg;
    stor_audit_t rec;
    const char *why = NULL;
    int rc = stor_txn_sad_get(t, c->old_hash, c->old);

    if (rc == STOR_ERR_NOTFOUND) {
        c->rc = OAUTH_ERR_INVALID;
        why = "unknown SAD";
    } else if (rc != STOR_OK) {
        return rc;
    } else if (c->old->expires_at <= c->now) {
        c->rc = OAUTH_ERR_EXPIRED;
        why = "SAD expired";
    } else if (strcmp(c->old->user, c->req->user) != 0 || strcmp(c->old->cred, c->req->cred) != 0) {
        c->rc = OAUTH_ERR_MISMATCH;
        why = "SAD of another user or credential";
    } else if (c->old->remaining == 0) {
        c->rc = OAUTH_ERR_EXHAUSTED;
        why = "SAD used up";
    } else {
        stor_sad_t *s = c->fresh;
        oauth_copy(s->user, sizeof(s->user), c->old->user);
        oauth_copy(s->cred, sizeof(s->cred), c->old->cred);
        s->remaining = c->old->remaining;
        s->expires_at = c->now + (int64_t)c->o->cfg.sad_ttl;
        if (c->req->n_digests > 0) {
            oauth_copy(s->hash_alg, sizeof(s->hash_alg), c->req->hash_alg);
            s->digest_len = (uint32_t)c->req->digest_len;
            s->n_digests = (uint32_t)c->req->n_digests;
            for (size_t i = 0; i < c->req->n_digests; i++)
                memcpy(s->digests + i * c->req->digest_len, c->req->digests[i], c->req->digest_len);
        } else {
            memcpy(s->hash_alg, c->old->hash_alg, sizeof(s->hash_alg));
            s->digest_len = c->old->digest_len;
            s->n_digests = c->old->n_digests;
            memcpy(s->digests, c->old->digests, (size_t)s->n_digests * s->digest_len);
        }
        if ((rc = stor_txn_sad_del(t, c->old_hash)) != STOR_OK || (rc = stor_txn_sad_put(t, s)) != STOR_OK)
            return rc;
        c->rc = OAUTH_OK;
        c->remaining = s->remaining;
    }
    oauth_audit_init(&rec, STOR_EV_AUTHORIZE, c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, c->req->user,
                     c->req->cred, c->req->client);
    if ((rc = oauth_token_ref(c->old_hash, rec.authz_ref)) != OAUTH_OK)
        return rc;
    snprintf(rec.detail, sizeof(rec.detail), "extendTransaction%s%s", why ? ": " : "", why ? why : "");
    if (c->req->owner != NULL)
        oauth_copy(rec.owner, sizeof(rec.owner), c->req->owner); /* a delegate: on behalf of the owner (J1) */
    rec.digest_len = (uint32_t)c->req->digest_len;
    rec.n_digests = (uint32_t)c->req->n_digests;
    uint8_t *flat = NULL;
    if (c->req->n_digests > 0) {
        if ((flat = malloc(c->req->n_digests * c->req->digest_len)) == NULL)
            return STOR_ERR_NOMEM;
        for (size_t i = 0; i < c->req->n_digests; i++)
            memcpy(flat + i * c->req->digest_len, c->req->digests[i], c->req->digest_len);
    }
    rec.digests = flat;
    rc = stor_txn_audit_append(t, &rec);
    free(flat);
    return rc;
}

int oauth_sad_extend(oauth_t *o, const char *old, size_t len, const oauth_sad_request_t *req, char sad[OAUTH_TOKEN_BUFLEN],
                     unsigned *expires_in)
{
    extend_ctx_t c;
    int rc = OAUTH_ERR_INVAL;

    memset(&c, 0, sizeof(c));
    if (sad)
        sad[0] = '\0';
    if (expires_in)
        *expires_in = 0;
    if (!o || !req || !sad || !expires_in || !oauth_name_ok(req->user) || !oauth_name_ok(req->cred) ||
        req->n_digests > STOR_DIGESTS_MAX || req->digest_len > STOR_DIGEST_LEN_MAX ||
        (req->n_digests > 0 && (!req->digests || !req->hash_alg || !req->digest_len)))
        return OAUTH_ERR_INVAL;
    if ((rc = oauth_token_hash(old, len, c.old_hash)) != OAUTH_OK)
        return rc; /* malformed: OAUTH_ERR_INVALID */
    c.o = o;
    c.req = req;
    c.now = oauth_clock(o);
    c.old = calloc(1, sizeof(*c.old));
    c.fresh = calloc(1, sizeof(*c.fresh));
    rc = OAUTH_ERR_INTERNAL;
    if (c.old == NULL || c.fresh == NULL)
        goto out;
    if ((rc = oauth_token_new(sad, c.fresh->hash)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, extend_apply, &c))) == OAUTH_OK)
        rc = c.rc;
    if (rc == OAUTH_OK)
        *expires_in = o->cfg.sad_ttl;
out:
    if (rc != OAUTH_OK)
        OPENSSL_cleanse(sad, OAUTH_TOKEN_BUFLEN);
    if (c.old != NULL)
        OPENSSL_clear_free(c.old, sizeof(*c.old));
    if (c.fresh != NULL)
        OPENSSL_clear_free(c.fresh, sizeof(*c.fresh));
    return rc;
}
