/*
 * oauth_sad.c - credentials/authorize (factors -> SAD) and the SAD budget of
 * signHash.
 *
 * Slow work (scrypt, TOTP, digest set membership) runs before the write
 * transaction, against records read in a read transaction; the write callback
 * re-reads the records, re-checks what may have changed meanwhile, applies the
 * outcome and appends the audit record. Decisions are returned through the
 * context with the callback returning 0, so that a denial keeps its audit
 * record and failure count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "oauth_int.h"

/* ---- shared ------------------------------------------------------------- */

static int digest_args_ok(const char *hash_alg, const uint8_t *const *digests, size_t digest_len, size_t n,
                          int need_alg)
{
    size_t i;

    if (n > STOR_DIGESTS_MAX)
        return 0;
    if (!n)
        return 1;
    if (!digests || !digest_len || digest_len > STOR_DIGEST_LEN_MAX)
        return 0;
    if (need_alg && (!hash_alg || !hash_alg[0] || strnlen(hash_alg, STOR_OID_MAX + 1) > STOR_OID_MAX))
        return 0;
    for (i = 0; i < n; i++)
        if (!digests[i])
            return 0;
    return 1;
}

/* Concatenate digests into dst (n * len bytes). */
static void digests_flat(uint8_t *dst, const uint8_t *const *digests, size_t len, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        memcpy(dst + i * len, digests[i], len);
}

static const char *factor_reason(int rc)
{
    switch (rc) {
    case OAUTH_OK: return NULL;
    case OAUTH_ERR_INVALID: return "unknown credential";
    case OAUTH_ERR_LOCKED: return "locked";
    case OAUTH_ERR_DISABLED: return "disabled";
    default: return "authentication failed";
    }
}

/* ---- credentials/authorize ---------------------------------------------- */

typedef struct {
    const oauth_t *o;
    const oauth_sad_request_t *req;
    const oauth_factors_t *f;
    int64_t now;
    int pre;                           /* decision from the read: OK (go on), INVALID, LOCKED, DISABLED */
    unsigned pre_verified;             /* verified by the caller (OAUTH_FACTOR_APPROVAL) ... */
    uint32_t pre_epoch;                /* ... for a request made in this epoch of the user */
    uint32_t read_epoch;               /* the user's epoch as read before the write */
    unsigned verified, bad;            /* OAUTH_FACTOR_*, as decided in the write */
    unsigned verified0, bad0;          /* as checked before it */
    int64_t otp_step;
    uint8_t pin_v[STOR_VERIFIER_MAX];  /* the objects the factors were checked against */
    uint32_t pin_vlen;
    uint8_t totp[STOR_TOTP_MAX];
    uint32_t totp_len;
    stor_cred_t *cred;                 /* scratch: large */
    stor_user_t user;                  /* the user authorizing: the owner, or a delegate (J1) */
    int delegate;                      /* user is a delegate of the credential's owner */
    uint8_t eff_pin[STOR_VERIFIER_MAX]; /* the PIN verifier that applies: the owner's, or the delegate's own */
    uint32_t eff_pin_len;
    stor_sad_t *sad;                   /* stored on success; its digests feed the audit record */
    int rc;
} authz_ctx_t;

/* Decision common to the read and the write: who owns what, and its state. */
static int authz_load(stor_txn_t *t, authz_ctx_t *c)
{
    int rc;

    c->rc = OAUTH_ERR_INVALID;
    if ((rc = stor_txn_cred_get(t, c->req->cred, c->cred)) == STOR_ERR_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    c->delegate = 0;
    c->eff_pin_len = 0;
    if (strcmp(c->cred->owner, c->req->user) != 0) {
        /* A delegate presents their own TOTP and the PIN set for them at delegation, never the owner's. */
        int i = stor_cred_delegate(c->cred, c->req->user);
        size_t n = 0;
        if (i < 0)
            return 0;
        c->delegate = 1;
        if (c->cred->delegate_pins[i][0] == '\0' ||
            OPENSSL_hexstr2buf_ex(c->eff_pin, sizeof(c->eff_pin), &n, c->cred->delegate_pins[i], '\0') != 1)
            n = 0; /* no PIN of their own: an expression needing PIN cannot be met */
        c->eff_pin_len = (uint32_t)n;
    } else {
        c->eff_pin_len = c->cred->pin_verifier_len <= STOR_VERIFIER_MAX ? c->cred->pin_verifier_len : 0;
        memcpy(c->eff_pin, c->cred->pin_verifier, c->eff_pin_len);
    }
    if ((rc = stor_txn_user_get(t, c->req->user, &c->user)) == STOR_ERR_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    int owner_active = 1;
    if (c->delegate) {
        stor_user_t *ow = malloc(sizeof(*ow));
        if (ow == NULL)
            return STOR_ERR_NOMEM;
        rc = stor_txn_user_get(t, c->cred->owner, ow);
        owner_active = rc == 0 && ow->status == STOR_USER_ACTIVE;
        stor_wipe(ow, sizeof(*ow));
        free(ow);
        if (rc < 0 && rc != STOR_ERR_NOTFOUND)
            return rc;
    }
    if (c->cred->locked_until > c->now)
        c->rc = OAUTH_ERR_LOCKED;
    else if (c->user.status != STOR_USER_ACTIVE || c->cred->status != STOR_CRED_ENABLED || !owner_active)
        c->rc = OAUTH_ERR_DISABLED;
    else
        c->rc = OAUTH_OK;
    return 0;
}

static int authz_read(stor_txn_t *t, void *arg)
{
    authz_ctx_t *c = arg;
    int rc = authz_load(t, c);

    if (rc < 0 || c->rc != OAUTH_OK)
        return rc;
    c->pin_vlen = c->eff_pin_len;
    memcpy(c->pin_v, c->eff_pin, c->pin_vlen);
    c->totp_len = c->user.totp_secret_len <= STOR_TOTP_MAX ? c->user.totp_secret_len : 0;
    memcpy(c->totp, c->user.totp_secret, c->totp_len);
    c->read_epoch = c->user.epoch;
    return 0;
}

/* scrypt and TOTP, outside any transaction. */
static int authz_check_factors(authz_ctx_t *c)
{
    const oauth_factors_t *f = c->f;
    int rc;

    if (f && f->pin && c->pin_vlen) {
        if ((rc = oauth_secret_check(c->o, c->pin_v, c->pin_vlen, f->pin, f->pin_len)) == OAUTH_ERR_BUSY)
            return rc; /* before the OTP and the one-time code are spent: the caller may simply retry */
        if (rc == OAUTH_OK)
            c->verified0 |= OAUTH_FACTOR_PIN;
        else
            c->bad0 |= OAUTH_FACTOR_PIN;
    }
    if (f && f->otp && c->totp_len) {
        rc = oauth_totp_check(c->totp, c->totp_len, f->otp, f->otp_len, c->now, c->o->cfg.totp_window, &c->otp_step);
        if (rc == OAUTH_OK)
            c->verified0 |= OAUTH_FACTOR_OTP;
        else if (rc == OAUTH_ERR_DENIED)
            c->bad0 |= OAUTH_FACTOR_OTP;
        else
            return rc;
    }
    /* The one-time code is used up by this try, right or wrong. */
    if (f && f->challenge && oauth_expr_names(c->cred->auth_expr, OAUTH_CHALLENGE_ID)) {
        if (oauth_challenge_take((oauth_t *)c->o, c->req->user, c->req->cred, f->challenge, f->challenge_len,
                                 c->now, c->read_epoch) == OAUTH_OK)
            c->verified0 |= OAUTH_FACTOR_CHALLENGE;
        else
            c->bad0 |= OAUTH_FACTOR_CHALLENGE;
    }
    return OAUTH_OK;
}

/* A factor checked against an object that changed since (PIN or TOTP reset) counts neither way. */
static void authz_drop_stale(authz_ctx_t *c)
{
    unsigned stale = 0;

    if (c->eff_pin_len != c->pin_vlen || CRYPTO_memcmp(c->eff_pin, c->pin_v, c->pin_vlen) != 0)
        stale |= OAUTH_FACTOR_PIN;
    if (c->user.totp_secret_len != c->totp_len || CRYPTO_memcmp(c->user.totp_secret, c->totp, c->totp_len) != 0)
        stale |= OAUTH_FACTOR_OTP;
    c->verified = c->verified0 & ~stale;
    c->bad = c->bad0 & ~stale;
}

static int authz_decide(authz_ctx_t *c)
{
    unsigned have = 0;

    authz_drop_stale(c);
    if (c->eff_pin_len)
        have |= OAUTH_FACTOR_PIN;
    if (c->user.totp_secret_len)
        have |= OAUTH_FACTOR_OTP;
    if (oauth_expr_names(c->cred->auth_expr, OAUTH_CHALLENGE_ID))
        have |= OAUTH_FACTOR_CHALLENGE;
    if (oauth_expr_names(c->cred->auth_expr, OAUTH_APPROVAL_ID))
        have |= OAUTH_FACTOR_APPROVAL;
    c->verified |= c->pre_verified & OAUTH_FACTOR_APPROVAL;
    /* Each time step is accepted once. */
    if ((c->verified & OAUTH_FACTOR_OTP) && c->otp_step <= c->user.totp_last_step) {
        c->verified &= ~OAUTH_FACTOR_OTP;
        c->bad |= OAUTH_FACTOR_OTP;
    }
    /* A wrong factor counts even when the expression did not need it. */
    if (c->bad || oauth_expr_eval(c->cred->auth_expr, have, c->verified) != 1)
        return OAUTH_ERR_DENIED;
    return OAUTH_OK;
}

static int authz_outcome(stor_txn_t *t, authz_ctx_t *c)
{
    const oauth_config_t *cfg = &c->o->cfg;
    stor_cred_t *cr = c->cred;
    int rc;

    if (c->rc != OAUTH_OK) {
        int64_t secs = oauth_lock_failure(cfg, &cr->failed_auths, &cr->locked_until, &cr->locks, c->now);
        if (secs && (rc = oauth_audit_lockout(t, c->req->user, cr->id, c->req->client, cr->locked_until, secs,
                                              cr->locks)) < 0)
            return rc;
        return stor_txn_cred_put(t, cr, 0);
    }
    if (oauth_lock_success(&cr->failed_auths, &cr->locked_until, &cr->locks) &&
        (rc = stor_txn_cred_put(t, cr, 0)) < 0)
        return rc;
    if (c->verified & OAUTH_FACTOR_OTP) {
        c->user.totp_last_step = c->otp_step;
        if ((rc = stor_txn_user_put(t, &c->user, 0)) < 0)
            return rc;
    }
    return stor_txn_sad_put(t, c->sad);
}

static int authz_audit(stor_txn_t *t, authz_ctx_t *c)
{
    const char *why = factor_reason(c->rc);
    stor_audit_t rec;

    oauth_audit_init(&rec, STOR_EV_AUTHORIZE, c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, c->req->user,
                     c->req->cred, c->req->client);
    if (c->rc == OAUTH_OK && oauth_token_ref(c->sad->hash, rec.authz_ref) != OAUTH_OK)
        return OAUTH_ERR_INTERNAL;
    if (c->delegate)
        oauth_copy(rec.owner, sizeof(rec.owner), c->cred->owner); /* on behalf of */
    snprintf(rec.detail, sizeof(rec.detail), "numSignatures %u hashAlgorithmOID %s%s%s", c->sad->remaining,
             c->sad->hash_alg[0] ? c->sad->hash_alg : "-", why ? " denied: " : "", why ? why : "");
    rec.digest_len = c->sad->digest_len;
    rec.n_digests = c->sad->n_digests;
    rec.digests = c->sad->n_digests ? c->sad->digests : NULL;
    return stor_txn_audit_append(t, &rec);
}

static int authz_apply(stor_txn_t *t, void *arg)
{
    authz_ctx_t *c = arg;
    int rc, pre = c->pre;

    if ((rc = authz_load(t, c)) < 0)
        goto out;
    /* A read-time refusal stands (it counted no failure); otherwise the fresh state decides. */
    if (pre != OAUTH_OK && c->rc != OAUTH_ERR_INVALID)
        c->rc = pre;
    /* An approval asked for before an operator's reset of the user is void. A one-time code checked against the
     * epoch read before this write is void too if a reset came in between. */
    if (c->rc == OAUTH_OK && (((c->pre_verified & OAUTH_FACTOR_APPROVAL) && c->user.epoch != c->pre_epoch) ||
                              ((c->verified0 & OAUTH_FACTOR_CHALLENGE) && c->user.epoch != c->read_epoch)))
        c->rc = OAUTH_ERR_DISABLED;
    if (c->rc == OAUTH_OK) {
        c->rc = authz_decide(c);
        if ((rc = authz_outcome(t, c)) < 0)
            goto out;
    }
    rc = authz_audit(t, c);
out:
    OPENSSL_cleanse(&c->user, sizeof(c->user));
    OPENSSL_cleanse(c->cred->pin_verifier, sizeof(c->cred->pin_verifier));
    OPENSSL_cleanse(c->cred->delegate_pins, sizeof(c->cred->delegate_pins));
    OPENSSL_cleanse(c->eff_pin, sizeof(c->eff_pin));
    return rc < 0 ? rc : 0;
}

static int authz_args_ok(const oauth_sad_request_t *req)
{
    return oauth_name_ok(req->user) && oauth_name_ok(req->cred) && req->num_signatures >= 1 &&
           digest_args_ok(req->hash_alg, req->digests, req->digest_len, req->n_digests, 1);
}

/* The SAD stored on success; built before the write so the callback stays short. */
static int authz_new_sad(authz_ctx_t *c, char value[OAUTH_TOKEN_BUFLEN])
{
    const oauth_sad_request_t *req = c->req;
    stor_sad_t *s = c->sad;
    int rc;

    if ((rc = oauth_token_new(value, s->hash)) != OAUTH_OK)
        return rc;
    oauth_copy(s->user, sizeof(s->user), req->user);
    oauth_copy(s->cred, sizeof(s->cred), req->cred);
    s->remaining = req->num_signatures;
    s->expires_at = c->now + (int64_t)c->o->cfg.sad_ttl;
    if (req->n_digests) {
        oauth_copy(s->hash_alg, sizeof(s->hash_alg), req->hash_alg);
        s->digest_len = (uint32_t)req->digest_len;
        s->n_digests = (uint32_t)req->n_digests;
        digests_flat(s->digests, req->digests, req->digest_len, req->n_digests);
    }
    return OAUTH_OK;
}

int oauth_authorize(oauth_t *o, const oauth_sad_request_t *req, const oauth_factors_t *f, char sad[OAUTH_TOKEN_BUFLEN],
                    unsigned *expires_in)
{
    return oauth_authorize_pre(o, req, f, 0, 0, sad, expires_in);
}

int oauth_authorize_pre(oauth_t *o, const oauth_sad_request_t *req, const oauth_factors_t *f, unsigned pre,
                        uint32_t epoch, char sad[OAUTH_TOKEN_BUFLEN], unsigned *expires_in)
{
    char value[OAUTH_TOKEN_BUFLEN] = "";
    authz_ctx_t *c = NULL;
    int rc = OAUTH_ERR_INVAL;

    if (sad)
        sad[0] = '\0';
    if (expires_in)
        *expires_in = 0;
    if (!o || !req || !sad || !expires_in || !authz_args_ok(req))
        goto out;
    rc = OAUTH_ERR_INTERNAL;
    if (!(c = calloc(1, sizeof(*c))) || !(c->cred = calloc(1, sizeof(*c->cred))) ||
        !(c->sad = calloc(1, sizeof(*c->sad))))
        goto out;
    c->o = o;
    c->req = req;
    c->f = f;
    c->pre_verified = pre;
    c->pre_epoch = epoch;
    c->now = oauth_clock(o);
    if ((rc = authz_new_sad(c, value)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_read(o->cfg.stor, authz_read, c))) != OAUTH_OK)
        goto out;
    c->pre = c->rc;
    if (c->pre == OAUTH_OK && (rc = authz_check_factors(c)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, authz_apply, c))) == OAUTH_OK)
        rc = c->rc;
    if (rc == OAUTH_OK) {
        memcpy(sad, value, OAUTH_TOKEN_BUFLEN);
        *expires_in = o->cfg.sad_ttl;
    }
out:
    OPENSSL_cleanse(value, sizeof(value));
    if (c) {
        if (c->cred)
            OPENSSL_clear_free(c->cred, sizeof(*c->cred));
        free(c->sad);
        OPENSSL_clear_free(c, sizeof(*c));
    }
    return rc;
}

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

/* Set membership is O(n*m) with n, m up to 1024: done here, outside the writer thread. */
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

static int consume_apply(stor_txn_t *t, void *arg)
{
    consume_ctx_t *c = arg;
    int rc;

    if ((rc = consume_decide(t, c)) < 0)
        return rc;
    rc = sign_audit(t, c->use, STOR_EV_SIGN, c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, c->ref,
                    c->req_digests, c->use->detail, consume_reason(c->rc));
    return rc < 0 ? rc : 0;
}

static int use_args_ok(const oauth_sign_use_t *use)
{
    return use && oauth_name_ok(use->user) && oauth_name_ok(use->cred) && use->n_digests >= 1 &&
           digest_args_ok(use->hash_alg, use->digests, use->digest_len, use->n_digests, 0);
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
    if (!(c->req_digests = malloc(use->n_digests * use->digest_len)) || !(c->sad = calloc(1, sizeof(*c->sad))) ||
        !(c->idx = calloc(use->n_digests, sizeof(*c->idx))))
        return OAUTH_ERR_INTERNAL;
    digests_flat(c->req_digests, use->digests, use->digest_len, use->n_digests);
    if ((rc = oauth_token_hash(sad, len, c->hash)) != OAUTH_OK)
        return rc;
    return oauth_token_ref(c->hash, c->ref);
}

static void sign_ctx_done(consume_ctx_t *c)
{
    free(c->req_digests);
    free(c->sad);
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
    if (!c.malformed && (rc = oauth_rc(stor_read(o->cfg.stor, consume_read, &c))) != OAUTH_OK)
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
    int rc = stor_txn_sad_get(t, c->hash, s);

    if (rc < 0 && rc != STOR_ERR_NOTFOUND)
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
