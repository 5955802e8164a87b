/*
 * oauth_authorize.c - credentials/authorize: factors -> SAD (oauth_authorize, and oauth_authorize_pre for an
 * approval decided on the service's page), and the digest argument helpers the SAD code shares. A file of its own,
 * apart from spending SADs (oauth_sad.c), so that a program which only lists or decides approvals does not link
 * the spending of budgets (tests/unit/server/check_symbols).
 *
 * Slow work (scrypt, TOTP) runs before the write transaction, against records read in a read transaction; the
 * write callback re-reads the records, re-checks what may have changed meanwhile, applies the outcome and appends
 * the audit record. Decisions are returned through the context with the callback returning 0, so that a denial
 * keeps its audit record and failure count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "oauth_int.h"

/* ---- shared ------------------------------------------------------------- */

int oauth_digest_args_ok(const char *hash_alg, const uint8_t *const *digests, size_t digest_len, size_t n,
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
void oauth_digests_flat(uint8_t *dst, const uint8_t *const *digests, size_t len, size_t n)
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
    unsigned pre_verified;             /* verified by the caller (OAUTH_FACTOR_APPROVAL, and the PIN it took) ... */
    uint32_t pre_epoch;                /* ... for a request made in this epoch of the user */
    uint32_t read_epoch;               /* the user's epoch as read before the write */
    unsigned verified, bad;            /* OAUTH_FACTOR_*, as decided in the write */
    unsigned verified0, bad0;          /* as checked before it */
    int64_t otp_step;
    uint8_t pin_v[STOR_VERIFIER_MAX];  /* the objects the factors were checked against */
    uint32_t pin_vlen;
    uint8_t totp_fp[32];               /* the TOTP secret's stored form as read (oauth_user_totp_fp) */
    stor_cred_t *cred;                 /* scratch: large */
    stor_user_t user;                  /* the user authorizing: the owner, or a delegate (J1) */
    int delegate;                      /* user is a delegate of the credential's owner */
    uint8_t eff_pin[STOR_VERIFIER_MAX]; /* the PIN verifier that applies: the owner's, or the delegate's own */
    uint32_t eff_pin_len;
    stor_sad_t *sad;                   /* stored on success; its digests feed the audit record */
    const oauth_authz_hook_t *hook;    /* an approval's part of the write (oauth_approval.c), or NULL */
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
    else if (c->user.status != STOR_USER_ACTIVE || c->cred->status != STOR_CRED_ENABLED || !owner_active ||
             stor_cred_pin_unset(c->cred, c->req->user)) /* its PIN not set yet: not usable (as disabled) */
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
    oauth_user_totp_fp(&c->user, c->totp_fp);
    c->read_epoch = c->user.epoch;
    return 0;
}

/*
 * scrypt and TOTP, outside any transaction, against the records authz_read read (c->user still holds them). The
 * TOTP secret is opened (for a sealed one, an HSM decrypt) only when a code was given; authz_drop_stale later
 * compares the fingerprint taken at the read with the record the write sees.
 */
static int authz_check_factors(authz_ctx_t *c)
{
    const oauth_factors_t *f = c->f;
    uint8_t totp[STOR_TOTP_MAX];
    size_t totp_len = 0;
    int rc;

    /* A TOTP secret the token cannot open now: nothing is checked nor counted (503), before any factor is spent.
     * One it refuses (altered) or none at all: the code is not checked, so an expression needing it is not met. */
    if (f && f->otp && oauth_user_totp(c->o, &c->user, totp, &totp_len) == OAUTH_ERR_INTERNAL)
        return OAUTH_ERR_STORAGE;

    if (f && f->pin && c->pin_vlen) {
        if ((rc = oauth_secret_check(c->o, c->pin_v, c->pin_vlen, f->pin, f->pin_len)) == OAUTH_ERR_BUSY)
            goto out; /* before the OTP and the one-time code are spent: the caller may simply retry */
        if (rc == OAUTH_OK)
            c->verified0 |= OAUTH_FACTOR_PIN;
        else
            c->bad0 |= OAUTH_FACTOR_PIN;
    }
    if (f && f->otp && totp_len) {
        rc = oauth_totp_check(totp, totp_len, f->otp, f->otp_len, c->now, c->o->cfg.totp_window, &c->otp_step);
        if (rc == OAUTH_OK)
            c->verified0 |= OAUTH_FACTOR_OTP;
        else if (rc == OAUTH_ERR_DENIED)
            c->bad0 |= OAUTH_FACTOR_OTP;
        else
            goto out;
    }
    /* The one-time code is used up by this try, right or wrong. */
    if (f && f->challenge && oauth_expr_names(c->cred->auth_expr, OAUTH_CHALLENGE_ID)) {
        rc = oauth_challenge_take((oauth_t *)c->o, c->req->user, c->req->cred, f->challenge, f->challenge_len,
                                  c->now, c->read_epoch);
        if (rc == OAUTH_OK)
            c->verified0 |= OAUTH_FACTOR_CHALLENGE;
        else if (rc == OAUTH_ERR_DENIED)
            c->bad0 |= OAUTH_FACTOR_CHALLENGE;
        else
            goto out; /* storage failed: nothing used up, nothing counted (503) */
    }
    rc = OAUTH_OK;
out:
    OPENSSL_cleanse(totp, sizeof(totp));
    return rc;
}

/* A factor checked against an object that changed since (PIN or TOTP reset) counts neither way. */
static void authz_drop_stale(authz_ctx_t *c)
{
    unsigned stale = 0;

    if (c->eff_pin_len != c->pin_vlen || CRYPTO_memcmp(c->eff_pin, c->pin_v, c->pin_vlen) != 0)
        stale |= OAUTH_FACTOR_PIN;
    uint8_t fp[32];
    oauth_user_totp_fp(&c->user, fp);
    if (CRYPTO_memcmp(fp, c->totp_fp, sizeof(fp)) != 0)
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
    if (STOR_USER_HAS_TOTP(&c->user))
        have |= OAUTH_FACTOR_OTP;
    if (oauth_expr_names(c->cred->auth_expr, OAUTH_CHALLENGE_ID))
        have |= OAUTH_FACTOR_CHALLENGE;
    if (oauth_expr_names(c->cred->auth_expr, OAUTH_APPROVAL_ID))
        have |= OAUTH_FACTOR_APPROVAL;
    c->verified |= c->pre_verified & (OAUTH_FACTOR_APPROVAL | OAUTH_FACTOR_PIN);
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
    return c->hook != NULL && c->hook->no_sad ? 0 : stor_txn_sad_put(t, c->sad);
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
    const char *id = c->req->request_id != NULL ? c->req->request_id : "";
    snprintf(rec.detail, sizeof(rec.detail), "numSignatures %u hashAlgorithmOID %s%s%s%s%s", c->sad->remaining,
             c->sad->hash_alg[0] ? c->sad->hash_alg : "-", id[0] ? " request_id=" : "", id, why ? " denied: " : "",
             why ? why : "");
    rec.digest_len = c->sad->digest_len;
    rec.n_digests = c->sad->n_digests;
    rec.digests = c->sad->n_digests ? c->sad->digests : NULL;
    return stor_txn_audit_append(t, &rec);
}

static int authz_apply(stor_txn_t *t, void *arg)
{
    authz_ctx_t *c = arg;
    int rc, pre = c->pre;

    /* An approval's request is taken (or found still pending) in this same write: one decision, one SAD. */
    if (c->hook != NULL && c->hook->check != NULL) {
        if ((rc = c->hook->check(t, c->hook->arg, &c->rc)) < 0)
            return rc;
        if (c->rc != OAUTH_OK)
            return 0;
    }
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
    /* A decision on the approval page issues no SAD: its own record (STOR_EV_APPROVAL) says it was approved. */
    rc = c->rc == OAUTH_OK && c->hook != NULL && c->hook->no_sad ? 0 : authz_audit(t, c);
    if (rc >= 0 && c->hook != NULL && c->hook->done != NULL)
        rc = c->hook->done(t, c->hook->arg, c->rc);
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
           oauth_digest_args_ok(req->hash_alg, req->digests, req->digest_len, req->n_digests, 1);
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
        oauth_digests_flat(s->digests, req->digests, req->digest_len, req->n_digests);
    }
    return OAUTH_OK;
}

int oauth_authorize(oauth_t *o, const oauth_sad_request_t *req, const oauth_factors_t *f, char sad[OAUTH_TOKEN_BUFLEN],
                    unsigned *expires_in)
{
    return oauth_authorize_pre(o, req, f, 0, 0, NULL, sad, expires_in);
}

int oauth_authorize_pre(oauth_t *o, const oauth_sad_request_t *req, const oauth_factors_t *f, unsigned pre,
                        uint32_t epoch, const oauth_authz_hook_t *hook, char sad[OAUTH_TOKEN_BUFLEN],
                        unsigned *expires_in)
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
    if (!(c = calloc(1, sizeof(*c))) || !(c->cred = stor_rec_new(sizeof(*c->cred))) ||
        !(c->sad = stor_rec_new(sizeof(*c->sad))))
        goto out;
    c->o = o;
    c->req = req;
    c->f = f;
    c->pre_verified = pre;
    c->pre_epoch = epoch;
    c->hook = hook;
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
    if (rc == OAUTH_OK && !(hook != NULL && hook->no_sad)) {
        memcpy(sad, value, OAUTH_TOKEN_BUFLEN);
        *expires_in = o->cfg.sad_ttl;
    }
out:
    OPENSSL_cleanse(value, sizeof(value));
    if (c) {
        stor_rec_free(c->cred, sizeof(*c->cred));
        stor_rec_free(c->sad, sizeof(*c->sad));
        OPENSSL_clear_free(c, sizeof(*c));
    }
    return rc;
}

