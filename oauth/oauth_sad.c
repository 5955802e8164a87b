/*
 * oauth_sad.c - the SAD budget of signHash: oauth_sad_consume (spend, with the decision's audit record, in one
 * transaction), oauth_sign_failed (give it back), and the digest-set matching extendTransaction shares.
 *
 * Digest set membership runs before the write transaction, against the SAD read in a read transaction; the write
 * callback re-reads it, re-checks what may have changed meanwhile, applies the outcome and appends the audit
 * record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "oauth_int.h"

/* ---- signHash: spending the budget -------------------------------------- */

typedef struct {
    const oauth_t *o;
    const oauth_sign_use_t *use;
    int64_t now;
    uint8_t hash[32];
    uint8_t ref[16];
    uint8_t *req_digests;      /* the requested digests, flat, for the audit record */
    stor_sad_t *sad;           /* scratch: large */
    int pre_found;             /* the SAD was read before the write ... */
    int pre_bound;             /* ... its digest set admits the request ... */
    uint8_t pre_fp[32];        /* ... and this is that digest set's fingerprint */
    uint32_t *idx;             /* bound index of each requested digest (valid while pre_bound / after a match) */
    const char *reason;        /* oauth_sign_failed() */
    int malformed;             /* the SAD value is not 43 base64url characters */
    int rc;
} consume_ctx_t;

int oauth_sad_match(const stor_sad_t *s, const char *hash_alg, const uint8_t *const *digests, size_t digest_len,
                    size_t n, uint32_t *idx)
{
    size_t i, j;

    if (strcmp(hash_alg ? hash_alg : "", s->hash_alg) != 0 || digest_len != s->digest_len ||
        s->n_digests > STOR_DIGESTS_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        uint32_t at = UINT32_MAX;
        for (j = 0; j < s->n_digests; j++)
            if (CRYPTO_memcmp(digests[i], s->digests + j * s->digest_len, s->digest_len) == 0 && at == UINT32_MAX)
                at = (uint32_t)j;
        if (at == UINT32_MAX)
            return 0;
        if (idx)
            idx[i] = at;
    }
    return 1;
}

int oauth_sad_fp(const stor_sad_t *s, uint8_t fp[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint32_t hdr[2] = {s->digest_len, s->n_digests};
    size_t n = (size_t)s->n_digests * s->digest_len;
    int ok;

    ok = md && n <= sizeof(s->digests) && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(md, hdr, sizeof(hdr)) == 1 && EVP_DigestUpdate(md, s->hash_alg, sizeof(s->hash_alg)) == 1 &&
         EVP_DigestUpdate(md, s->digests, n) == 1 && EVP_DigestFinal_ex(md, fp, NULL) == 1;
    EVP_MD_CTX_free(md);
    return ok ? OAUTH_OK : OAUTH_ERR_INTERNAL;
}

/* Set membership is O(n*m) with n, m up to 1024: done here, outside the write transaction, for requests of more
 * than one digest (oauth_sad_consume). */
static int consume_read(stor_txn_t *t, void *arg)
{
    consume_ctx_t *c = arg;
    int rc = stor_txn_sad_get(t, c->hash, c->sad);

    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (!c->sad->n_digests || oauth_sad_fp(c->sad, c->pre_fp) != OAUTH_OK)
        return 0;   /* the write computes membership itself */
    c->pre_bound = oauth_sad_match(c->sad, c->use->hash_alg, c->use->digests, c->use->digest_len,
                                   c->use->n_digests, c->idx);
    c->pre_found = 1;
    return 0;
}

/* Every requested digest must be in the bound set, in any order; c->idx gets where each one is. */
static int consume_bound(consume_ctx_t *c)
{
    const oauth_sign_use_t *use = c->use;
    uint8_t fp[32];

    if (!c->sad->n_digests)
        return 1;
    if (c->pre_found && oauth_sad_fp(c->sad, fp) == OAUTH_OK && CRYPTO_memcmp(fp, c->pre_fp, 32) == 0)
        return c->pre_bound;
    return oauth_sad_match(c->sad, use->hash_alg, use->digests, use->digest_len, use->n_digests, c->idx);
}

static const char *consume_reason(int rc)
{
    switch (rc) {
    case OAUTH_OK: return NULL;
    case OAUTH_ERR_EXPIRED: return "expired";
    case OAUTH_ERR_MISMATCH: return "mismatch";
    case OAUTH_ERR_EXHAUSTED: return "exhausted";
    case OAUTH_ERR_NOT_AUTHORIZED: return "not-authorized";
    default: return "invalid";
    }
}

static int consume_decide(stor_txn_t *t, consume_ctx_t *c)
{
    const oauth_sign_use_t *use = c->use;
    stor_sad_t *s = c->sad;
    int rc;

    c->rc = OAUTH_ERR_INVALID;
    if (c->malformed || (rc = stor_txn_sad_get(t, c->hash, s)) == STOR_ERR_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (s->expires_at <= c->now)
        c->rc = OAUTH_ERR_EXPIRED;
    else if (strcmp(s->user, use->user) != 0 || strcmp(s->cred, use->cred) != 0)
        c->rc = OAUTH_ERR_MISMATCH;
    else if (s->remaining == 0 || s->remaining < use->n_digests)
        c->rc = OAUTH_ERR_EXHAUSTED;
    else if (!consume_bound(c))
        c->rc = OAUTH_ERR_NOT_AUTHORIZED;
    else
        c->rc = OAUTH_OK;
    if (c->rc != OAUTH_OK)
        return 0;
    /* Kept at 0 too: oauth_sign_failed() may give signatures back until the purge. */
    s->remaining -= (uint32_t)use->n_digests;
    /* The bound digests signed now: extendTransaction renews a SAD only for the ones not yet signed. */
    for (size_t i = 0; s->n_digests && i < use->n_digests; i++)
        s->signed_bits[c->idx[i] / 8] |= (uint8_t)(1u << (c->idx[i] % 8));
    if (s->n_digests)
        s->signed_bits_len = (s->n_digests + 7) / 8;
    return stor_txn_sad_put(t, s);
}

static int sign_audit(stor_txn_t *t, const oauth_sign_use_t *use, uint32_t event, uint32_t result,
                      const uint8_t ref[16], const uint8_t *digests, const char *detail, const char *why)
{
    stor_audit_t rec;

    oauth_audit_init(&rec, event, result, use->user, use->cred, use->client);
    if (use->owner != NULL && use->owner[0] != '\0')
        oauth_copy(rec.owner, sizeof(rec.owner), use->owner); /* signed as a delegate: on behalf of */
    memcpy(rec.authz_ref, ref, 16);
    snprintf(rec.detail, sizeof(rec.detail), "%s%s%s", detail ? detail : "", detail && detail[0] && why ? " " : "",
             why ? why : "");
    rec.digest_len = (uint32_t)use->digest_len;
    rec.n_digests = (uint32_t)use->n_digests;
    rec.digests = digests;
    return stor_txn_audit_append(t, &rec);
}

/* The rows a spend (recent != 0) or a give-back reads, read ahead: on PostgreSQL one round trip for all of them
 * instead of one each (the SAD and the chain's head are locked as their own gets would lock them, only a few
 * microseconds earlier). The signing event's row may go unused (a refusal): it costs its read only. */
static int sign_prefetch(stor_txn_t *t, const consume_ctx_t *c, int recent)
{
    int rc;

    if ((rc = stor_txn_sad_prefetch(t, c->hash)) < 0 || (rc = stor_txn_audit_head_prefetch(t)) < 0)
        return rc;
    return recent ? stor_txn_recent_prefetch(t, STOR_RECENT_SIGNS, c->use->cred) : 0;
}

static int consume_apply(stor_txn_t *t, void *arg)
{
    consume_ctx_t *c = arg;
    int rc;

    if (!c->malformed && (rc = sign_prefetch(t, c, 1)) < 0)
        return rc;
    if ((rc = consume_decide(t, c)) < 0)
        return rc;
    rc = sign_audit(t, c->use, STOR_EV_SIGN, c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, c->ref,
                    c->req_digests, c->use->detail, consume_reason(c->rc));
    /* The credential's last signing events (/account), in the spend's own write, last: one small record. */
    if (rc >= 0 && c->rc == OAUTH_OK)
        rc = stor_txn_recent_add(t, STOR_RECENT_SIGNS, c->use->cred, (int64_t)c->now * 1000,
                                 (uint32_t)c->use->n_digests, STOR_RES_OK, c->use->client ? c->use->client : "");
    return rc < 0 ? rc : 0;
}

static int use_args_ok(const oauth_sign_use_t *use)
{
    return use && oauth_name_ok(use->user) && oauth_name_ok(use->cred) && use->n_digests >= 1 &&
           oauth_digest_args_ok(use->hash_alg, use->digests, use->digest_len, use->n_digests, 0);
}

/* Context for consume and sign_failed: flat digests of the request, then hash and
 * reference of the SAD (OAUTH_ERR_INVALID if the value is malformed; the rest is set up). */
static int sign_ctx_init(consume_ctx_t *c, oauth_t *o, const char *sad, size_t len, const oauth_sign_use_t *use)
{
    int rc;

    memset(c, 0, sizeof(*c));
    c->o = o;
    c->use = use;
    c->now = oauth_clock(o);
    if (!(c->req_digests = malloc(use->n_digests * use->digest_len)) || !(c->sad = stor_rec_new(sizeof(*c->sad))) ||
        !(c->idx = calloc(use->n_digests, sizeof(*c->idx))))
        return OAUTH_ERR_INTERNAL;
    oauth_digests_flat(c->req_digests, use->digests, use->digest_len, use->n_digests);
    if ((rc = oauth_token_hash(sad, len, c->hash)) != OAUTH_OK)
        return rc;
    return oauth_token_ref(c->hash, c->ref);
}

static void sign_ctx_done(consume_ctx_t *c)
{
    free(c->req_digests);
    stor_rec_free(c->sad, sizeof(*c->sad));
    free(c->idx);
    OPENSSL_cleanse(c, sizeof(*c));
}

int oauth_sad_consume(oauth_t *o, const char *sad, size_t len, const oauth_sign_use_t *use, uint8_t ref[16])
{
    consume_ctx_t c;
    int rc = OAUTH_ERR_INVAL;

    memset(&c, 0, sizeof(c));
    if (ref)
        memset(ref, 0, 16);
    if (!o || !ref || !use_args_ok(use))
        goto out;
    /* A malformed value is looked up nowhere, but its refusal is audited like any other. */
    if ((rc = sign_ctx_init(&c, o, sad, len, use)) == OAUTH_ERR_INVALID)
        c.malformed = 1;
    else if (rc != OAUTH_OK)
        goto out;
    memcpy(ref, c.ref, 16);
    /* The pre-read pays for itself only when matching is dear: one digest is matched in one pass over the bound set
     * inside the write, cheaper than a read transaction of its own (a round trip on PostgreSQL) and the decoding of
     * the SAD it costs; nor does an unbound SAD need it, but only reading it tells. */
    if (!c.malformed && use->n_digests > 1 && (rc = oauth_rc(stor_read(o->cfg.stor, consume_read, &c))) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, consume_apply, &c))) == OAUTH_OK)
        rc = c.rc;
out:
    sign_ctx_done(&c);
    return rc;
}

static int failed_apply(stor_txn_t *t, void *arg)
{
    consume_ctx_t *c = arg;
    const oauth_sign_use_t *use = c->use;
    stor_sad_t *s = c->sad;
    int rc;

    if ((rc = sign_prefetch(t, c, 0)) < 0)
        return rc;
    if ((rc = stor_txn_sad_get(t, c->hash, s)) < 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    if (rc == STOR_OK && !strcmp(s->user, use->user) && !strcmp(s->cred, use->cred)) {
        s->remaining = use->n_digests > UINT32_MAX - s->remaining ? UINT32_MAX
                                                                  : s->remaining + (uint32_t)use->n_digests;
        /* Not signed after all: these digests count as unsigned again (the budget came back with them). */
        if (s->n_digests && oauth_sad_match(s, use->hash_alg, use->digests, use->digest_len, use->n_digests, c->idx))
            for (size_t i = 0; i < use->n_digests; i++)
                s->signed_bits[c->idx[i] / 8] &= (uint8_t)~(1u << (c->idx[i] % 8));
        if ((rc = stor_txn_sad_put(t, s)) < 0)
            return rc;
    }
    rc = sign_audit(t, use, STOR_EV_SIGN_RESULT, STOR_RES_ERROR, c->ref, c->req_digests, c->reason, NULL);
    return rc < 0 ? rc : 0;
}

int oauth_sign_failed(oauth_t *o, const char *sad, size_t len, const oauth_sign_use_t *use, const uint8_t ref[16],
                      const char *reason)
{
    consume_ctx_t c;
    int rc = OAUTH_ERR_INVAL;

    memset(&c, 0, sizeof(c));
    if (!o || !ref || !use_args_ok(use))
        goto out;
    if ((rc = sign_ctx_init(&c, o, sad, len, use)) != OAUTH_OK)
        goto out;
    memcpy(c.ref, ref, 16);
    c.reason = reason;
    rc = oauth_rc(stor_write(o->cfg.stor, failed_apply, &c));
out:
    sign_ctx_done(&c);
    return rc;
}
