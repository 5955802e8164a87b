/*
 * oauth_extend.c - credentials/extendTransaction (CSC API v2.0.0.2 sec. 11.9): a fresh SAD
 * for what is left of a transaction. It renews the validity of a SAD for
 * digests already bound to it and not yet signed, never for new ones: the user
 * approved exactly the bound digests (SCAL 2, the consent and approval pages
 * show them), so a digest the SAD was not bound to needs a new
 * credentials/authorize with the user's factors. The fresh SAD binds the
 * digests the request names (each bound to the old SAD and unsigned), or, when
 * it names none, every bound digest not yet signed; its budget is the old
 * remaining budget, at most one signature per digest it binds. A SAD bound to
 * no digests (SCAL 1) stays unbound, or is narrowed to the digests named. The
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
    const oauth_sad_request_t *req; /* user, cred, digests to renew (n_digests 0 = every unsigned one) */
    uint8_t old_hash[32];
    stor_sad_t *old, *fresh;
    int64_t now;
    int pre_found;                  /* the old SAD was read before the write ... */
    int pre_bound;                  /* ... the request's digests are bound to it, at idx ... */
    uint8_t pre_fp[32];             /* ... and this is its digest set's fingerprint */
    uint32_t *idx;                  /* bound index of each requested digest */
    int rc;                         /* the decision */
    const char *why;
    unsigned remaining;
} extend_ctx_t;

static int is_signed(const stor_sad_t *s, uint32_t i)
{
    return (s->signed_bits[i / 8] >> (i % 8)) & 1u;
}

/* Membership is O(n*m): computed here, outside the write transaction, and reused if the digest set is unchanged. */
static int extend_read(stor_txn_t *t, void *arg)
{
    extend_ctx_t *c = arg;
    const oauth_sad_request_t *r = c->req;
    int rc = stor_txn_sad_get(t, c->old_hash, c->old);

    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (!c->old->n_digests || !r->n_digests || oauth_sad_fp(c->old, c->pre_fp) != OAUTH_OK)
        return 0;
    c->pre_bound = oauth_sad_match(c->old, r->hash_alg, r->digests, r->digest_len, r->n_digests, c->idx);
    c->pre_found = 1;
    return 0;
}

static int requested_bound(extend_ctx_t *c)
{
    const oauth_sad_request_t *r = c->req;
    uint8_t fp[32];

    if (c->pre_found && oauth_sad_fp(c->old, fp) == OAUTH_OK && CRYPTO_memcmp(fp, c->pre_fp, 32) == 0)
        return c->pre_bound;
    return oauth_sad_match(c->old, r->hash_alg, r->digests, r->digest_len, r->n_digests, c->idx);
}

static void fresh_add(stor_sad_t *s, const stor_sad_t *old, uint32_t i)
{
    memcpy(s->digests + (size_t)s->n_digests * old->digest_len, old->digests + (size_t)i * old->digest_len,
           old->digest_len);
    s->n_digests++;
}

/* The digests the fresh SAD binds; OAUTH_OK or the refusal (c->why set). */
static int fresh_digests(extend_ctx_t *c)
{
    const oauth_sad_request_t *r = c->req;
    const stor_sad_t *old = c->old;
    stor_sad_t *s = c->fresh;
    uint8_t taken[STOR_DIGESTS_MAX / 8];
    uint32_t i;

    if (!old->n_digests) {
        /* Unbound (SCAL 1): it may sign any digest; naming some narrows it to them. */
        if (r->n_digests) {
            oauth_copy(s->hash_alg, sizeof(s->hash_alg), r->hash_alg);
            s->digest_len = (uint32_t)r->digest_len;
            s->n_digests = (uint32_t)r->n_digests;
            for (i = 0; i < r->n_digests; i++)
                memcpy(s->digests + (size_t)i * r->digest_len, r->digests[i], r->digest_len);
        }
        return OAUTH_OK;
    }
    memcpy(s->hash_alg, old->hash_alg, sizeof(s->hash_alg));
    s->digest_len = old->digest_len;
    s->n_digests = 0;
    memset(taken, 0, sizeof(taken));
    if (!r->n_digests) {
        for (i = 0; i < old->n_digests; i++)
            if (!is_signed(old, i))
                fresh_add(s, old, i);
        if (!s->n_digests) {
            c->why = "every bound digest is signed";
            return OAUTH_ERR_EXHAUSTED;
        }
        return OAUTH_OK;
    }
    if (!requested_bound(c)) {
        c->why = "digest not bound to the SAD";
        return OAUTH_ERR_NOT_AUTHORIZED;
    }
    for (i = 0; i < r->n_digests; i++) {
        uint32_t at = c->idx[i];
        if (is_signed(old, at)) {
            c->why = "digest already signed";
            return OAUTH_ERR_NOT_AUTHORIZED;
        }
        if (!((taken[at / 8] >> (at % 8)) & 1u)) {
            taken[at / 8] |= (uint8_t)(1u << (at % 8));
            fresh_add(s, old, at);
        }
    }
    return OAUTH_OK;
}

static int extend_decide(stor_txn_t *t, extend_ctx_t *c)
{
    stor_sad_t *s = c->fresh;
    int rc = stor_txn_sad_get(t, c->old_hash, c->old);

    c->why = NULL;
    if (rc == STOR_ERR_NOTFOUND) {
        c->rc = OAUTH_ERR_INVALID;
        c->why = "unknown SAD";
        return 0;
    }
    if (rc != STOR_OK)
        return rc;
    if (c->old->expires_at <= c->now) {
        c->rc = OAUTH_ERR_EXPIRED;
        c->why = "SAD expired";
    } else if (strcmp(c->old->user, c->req->user) != 0 || strcmp(c->old->cred, c->req->cred) != 0) {
        c->rc = OAUTH_ERR_MISMATCH;
        c->why = "SAD of another user or credential";
    } else if (c->old->remaining == 0) {
        c->rc = OAUTH_ERR_EXHAUSTED;
        c->why = "SAD used up";
    } else {
        c->rc = fresh_digests(c);
    }
    if (c->rc != OAUTH_OK)
        return 0;
    oauth_copy(s->user, sizeof(s->user), c->old->user);
    oauth_copy(s->cred, sizeof(s->cred), c->old->cred);
    s->remaining = c->old->remaining;
    if (s->n_digests && s->remaining > s->n_digests)
        s->remaining = s->n_digests; /* one signature per digest still to sign */
    s->expires_at = c->now + (int64_t)c->o->cfg.sad_ttl;
    memset(s->signed_bits, 0, sizeof(s->signed_bits));
    s->signed_bits_len = 0;
    if ((rc = stor_txn_sad_del(t, c->old_hash)) != STOR_OK || (rc = stor_txn_sad_put(t, s)) != STOR_OK)
        return rc;
    c->remaining = s->remaining;
    return 0;
}

static int extend_apply(stor_txn_t *t, void *arg)
{
    extend_ctx_t *c = arg;
    stor_audit_t rec;
    uint8_t *flat = NULL;
    int rc;

    if ((rc = extend_decide(t, c)) != 0)
        return rc;
    oauth_audit_init(&rec, STOR_EV_AUTHORIZE, c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, c->req->user,
                     c->req->cred, c->req->client);
    if ((rc = oauth_token_ref(c->old_hash, rec.authz_ref)) != OAUTH_OK)
        return rc;
    snprintf(rec.detail, sizeof(rec.detail), "extendTransaction%s%s", c->why ? ": " : "", c->why ? c->why : "");
    if (c->req->owner != NULL)
        oauth_copy(rec.owner, sizeof(rec.owner), c->req->owner); /* a delegate: on behalf of the owner (J1) */
    rec.digest_len = (uint32_t)c->req->digest_len;
    rec.n_digests = (uint32_t)c->req->n_digests;
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
    c.idx = calloc(req->n_digests ? req->n_digests : 1, sizeof(*c.idx));
    rc = OAUTH_ERR_INTERNAL;
    if (c.old == NULL || c.fresh == NULL || c.idx == NULL)
        goto out;
    if ((rc = oauth_token_new(sad, c.fresh->hash)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_read(o->cfg.stor, extend_read, &c))) != OAUTH_OK)
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
    free(c.idx);
    return rc;
}
