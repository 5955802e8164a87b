/*
 * oauth_consent.c - the user's decision on an authorization request: on
 * approval, the authorization code (and, for the credential scope, the pending
 * SAD the code will turn into a credential token at the token endpoint; it is kept
 * apart from the SADs, so the bare code is never a SAD).
 *
 * The session is taken out of its table first, so one session yields at most
 * one decision even if the browser posts twice; it goes back only when the
 * user may still retry (a wrong PIN) or the storage write did not happen.
 * As in oauth_authorize(), the PIN is checked outside the write transaction, and the
 * outcome (failure count and lock of the credential, or the code and SAD) is
 * written with its audit record in one transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "oauth_int.h"

typedef struct {
    const oauth_t *o;
    const oauth_authz_request_t *req;
    const char *user;
    uint32_t epoch;                    /* the user's epoch at login: an operator's reset since voids the decision */
    char client[64];                   /* audit: "oauth:<client_id>@<addr>" */
    int64_t now;
    int approve;
    int pre;                           /* decision of the read: OK (go on) or a refusal */
    int pin_ok;                        /* the PIN matched pin_v (checked outside the write txn) */
    uint8_t pin_v[STOR_VERIFIER_MAX];  /* the verifier it was checked against */
    uint32_t pin_vlen;
    stor_cred_t *cred;                 /* scratch: large */
    stor_code_t *code;                 /* written on approval */
    stor_sad_t *sad;                   /* written on approval of the credential scope */
    const char *why;
    int rc;
} decide_ctx_t;

static int is_cred_scope(const decide_ctx_t *c)
{
    return c->req->scope == STOR_SCOPE_CREDENTIAL;
}

/* The user must still be active; for the credential scope the credential must be theirs and usable. */
static void refuse(decide_ctx_t *c, int rc, const char *why)
{
    c->rc = rc;
    c->why = why;
}

static int decide_load(stor_txn_t *t, decide_ctx_t *c)
{
    uint32_t status = 0, epoch;
    stor_user_t u;
    int rc = stor_txn_user_get(t, c->user, &u);

    status = u.status;
    epoch = u.epoch;
    OPENSSL_cleanse(&u, sizeof(u));
    if (rc < 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    refuse(c, OAUTH_OK, NULL);
    if (rc == STOR_ERR_NOTFOUND)
        refuse(c, OAUTH_ERR_INVALID, "unknown user");
    else if (status != STOR_USER_ACTIVE)
        refuse(c, OAUTH_ERR_DISABLED, "user disabled");
    else if (epoch != c->epoch)
        refuse(c, OAUTH_ERR_DISABLED, "user reset by an operator since the login");
    if (c->rc != OAUTH_OK || !is_cred_scope(c))
        return 0;
    if ((rc = stor_txn_cred_get(t, c->req->cred, c->cred)) < 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    if (rc == STOR_ERR_NOTFOUND || strcmp(c->cred->owner, c->user) != 0)
        refuse(c, OAUTH_ERR_INVALID, "unknown credential");
    else if (c->cred->locked_until > c->now)
        refuse(c, OAUTH_ERR_LOCKED, "locked");
    else if (c->cred->status != STOR_CRED_ENABLED || stor_cred_pin_unset(c->cred, c->user))
        refuse(c, OAUTH_ERR_DISABLED, "credential disabled");
    else if (c->req->num_signatures > c->cred->multisign)
        refuse(c, OAUTH_ERR_INVAL, "numSignatures above multisign");
    return 0;
}

static int decide_read(stor_txn_t *t, void *arg)
{
    decide_ctx_t *c = arg;
    int rc = decide_load(t, c);

    if (rc < 0 || c->rc != OAUTH_OK || !is_cred_scope(c))
        return rc;
    c->pin_vlen = c->cred->pin_verifier_len <= STOR_VERIFIER_MAX ? c->cred->pin_verifier_len : 0;
    memcpy(c->pin_v, c->cred->pin_verifier, c->pin_vlen);
    return 0;
}

/* Fresh state decides; a read-time refusal stands (it counted nothing and checked no PIN). */
static void decide_pin(decide_ctx_t *c)
{
    const stor_cred_t *cr = c->cred;

    if (c->pre != OAUTH_OK) {
        c->rc = c->pre;
        return;
    }
    if (!cr->pin_verifier_len)
        return;
    /* A PIN checked against a verifier that was replaced meanwhile proves nothing. */
    if (cr->pin_verifier_len != c->pin_vlen || CRYPTO_memcmp(cr->pin_verifier, c->pin_v, c->pin_vlen) != 0 ||
        !c->pin_ok) {
        c->rc = OAUTH_ERR_DENIED;
        c->why = "wrong PIN";
    }
}

static int cred_outcome(stor_txn_t *t, decide_ctx_t *c)
{
    const oauth_config_t *cfg = &c->o->cfg;
    stor_cred_t *cr = c->cred;
    int rc;

    if (c->rc == OAUTH_ERR_DENIED) {
        int64_t secs = oauth_lock_failure(cfg, &cr->failed_auths, &cr->locked_until, &cr->locks, c->now);
        if (secs && (rc = oauth_audit_lockout(t, c->user, cr->id, c->client, cr->locked_until, secs, cr->locks)) < 0)
            return rc;
        return stor_txn_cred_put(t, cr, 0);
    }
    if (c->rc == OAUTH_OK && oauth_lock_success(&cr->failed_auths, &cr->locked_until, &cr->locks))
        return stor_txn_cred_put(t, cr, 0);
    return 0;
}

static int decide_audit(stor_txn_t *t, decide_ctx_t *c)
{
    const oauth_authz_request_t *r = c->req;
    stor_audit_t rec;
    int ok = c->rc == OAUTH_OK && c->approve;

    oauth_audit_init(&rec, STOR_EV_AUTHORIZE, ok ? STOR_RES_OK : STOR_RES_DENIED, c->user,
                     is_cred_scope(c) ? r->cred : NULL, c->client);
    if (ok && oauth_token_ref(c->code->hash, rec.authz_ref) != OAUTH_OK)
        return OAUTH_ERR_INTERNAL;
    if (is_cred_scope(c)) {
        snprintf(rec.detail, sizeof(rec.detail), "oauth2 consent %s scope=credential numSignatures %u "
                 "hashAlgorithmOID %s%s%s", c->approve ? "approved" : "denied", r->num_signatures,
                 r->hash_alg[0] ? r->hash_alg : "-", c->why ? " refused: " : "", c->why ? c->why : "");
        rec.digest_len = c->sad->digest_len;
        rec.n_digests = c->sad->n_digests;
        rec.digests = c->sad->n_digests ? c->sad->digests : NULL;
    } else {
        snprintf(rec.detail, sizeof(rec.detail), "oauth2 consent %s scope=service%s%s",
                 c->approve ? "approved" : "denied", c->why ? " refused: " : "", c->why ? c->why : "");
    }
    return stor_txn_audit_append(t, &rec);
}

static int decide_apply(stor_txn_t *t, void *arg)
{
    decide_ctx_t *c = arg;
    int rc = 0;

    c->rc = OAUTH_OK;
    c->why = NULL;
    if (c->approve) {
        if ((rc = decide_load(t, c)) < 0)
            goto out;
        if (c->rc == OAUTH_OK && is_cred_scope(c)) {
            decide_pin(c);
            if ((rc = cred_outcome(t, c)) < 0)
                goto out;
        }
        if (c->rc == OAUTH_OK && ((rc = stor_txn_code_put(t, c->code)) < 0 ||
                                  (is_cred_scope(c) && (rc = stor_txn_pending_sad_put(t, c->sad)) < 0)))
            goto out;
    }
    rc = decide_audit(t, c);
out:
    if (c->cred)
        OPENSSL_cleanse(c->cred->pin_verifier, sizeof(c->cred->pin_verifier));
    return rc < 0 ? rc : 0;
}

/* The pending SAD (also the digests of the audit record, approved or not). */
static void sad_record(decide_ctx_t *c)
{
    const oauth_authz_request_t *r = c->req;
    stor_sad_t *s = c->sad;
    uint32_t i;

    oauth_copy(s->user, sizeof(s->user), c->user);
    oauth_copy(s->cred, sizeof(s->cred), r->cred);
    s->remaining = r->num_signatures;
    if (r->n_digests && r->n_digests <= STOR_DIGESTS_MAX && r->digest_len && r->digest_len <= STOR_DIGEST_LEN_MAX) {
        oauth_copy(s->hash_alg, sizeof(s->hash_alg), r->hash_alg);
        s->digest_len = r->digest_len;
        s->n_digests = r->n_digests;
        for (i = 0; i < r->n_digests; i++)
            memcpy(s->digests + (size_t)i * r->digest_len, r->digests[i], r->digest_len);
    }
}

/* The code (and the pending SAD's key and expiry) written on approval; built before the write so the
 * callback stays short. */
static int code_record(decide_ctx_t *c, char value[OAUTH_TOKEN_BUFLEN])
{
    const oauth_authz_request_t *r = c->req;
    stor_code_t *k = c->code;
    int rc;

    if ((rc = oauth_token_new(value, k->hash)) != OAUTH_OK)
        return rc;
    if (RAND_bytes(k->grant, sizeof(k->grant)) != 1)
        return OAUTH_ERR_INTERNAL;
    oauth_copy(k->client, sizeof(k->client), r->client_id);
    oauth_copy(k->user, sizeof(k->user), c->user);
    oauth_copy(k->redirect_uri, sizeof(k->redirect_uri), r->redirect_uri);
    k->redirect_given = r->redirect_given != 0;
    memcpy(k->challenge, r->challenge, sizeof(k->challenge));
    k->scope = r->scope;
    k->expires_at = c->now + (int64_t)c->o->cfg.code_ttl;
    oauth_copy(k->authz_details, sizeof(k->authz_details), r->authz_details);
    if (!is_cred_scope(c))
        return OAUTH_OK;
    oauth_copy(k->cred, sizeof(k->cred), r->cred);
    /* Pending until the code is exchanged: kept under the code's hash in the pending table (never looked up as
     * a SAD, so the code itself signs nothing), expiring with the code. */
    memcpy(c->sad->hash, k->hash, 32);
    c->sad->expires_at = k->expires_at;
    return OAUTH_OK;
}

/* What a credential-scope request must carry before anything is looked up. */
static int cred_request_ok(const oauth_authz_request_t *r)
{
    if (!oauth_id_ok(r->cred))
        return OAUTH_ERR_INVALID;
    if (r->num_signatures < 1 || r->n_digests > STOR_DIGESTS_MAX)
        return OAUTH_ERR_INVAL;
    if (r->n_digests && (!r->digest_len || r->digest_len > STOR_DIGEST_LEN_MAX || !r->hash_alg[0]))
        return OAUTH_ERR_INVAL;
    return OAUTH_OK;
}

static int decide_run(oauth_t *o, decide_ctx_t *c, const char *pin, size_t pin_len, char value[OAUTH_TOKEN_BUFLEN])
{
    int rc;

    if (is_cred_scope(c))
        sad_record(c);
    if (c->approve) {
        if (is_cred_scope(c) && (rc = cred_request_ok(c->req)) != OAUTH_OK)
            return rc;
        if ((rc = code_record(c, value)) != OAUTH_OK)
            return rc;
        if ((rc = oauth_rc(stor_read(o->cfg.stor, decide_read, c))) != OAUTH_OK)
            return rc;
        c->pre = c->rc;
        if (c->pre == OAUTH_OK && c->pin_vlen && pin) {
            if ((rc = oauth_secret_check(o, c->pin_v, c->pin_vlen, pin, pin_len)) == OAUTH_ERR_BUSY)
                return rc;
            c->pin_ok = rc == OAUTH_OK;
        }
    }
    if ((rc = oauth_rc(stor_write(o->cfg.stor, decide_apply, c))) != OAUTH_OK)
        return rc;
    return c->rc;
}

static int decide_ctx_new(decide_ctx_t **out)
{
    decide_ctx_t *c = calloc(1, sizeof(*c));

    *out = c;
    if (!c || !(c->cred = calloc(1, sizeof(*c->cred))) || !(c->code = calloc(1, sizeof(*c->code))) ||
        !(c->sad = calloc(1, sizeof(*c->sad))))
        return OAUTH_ERR_INTERNAL;
    return OAUTH_OK;
}

static void decide_ctx_free(decide_ctx_t *c)
{
    if (!c)
        return;
    if (c->cred)
        OPENSSL_clear_free(c->cred, sizeof(*c->cred));
    if (c->code)
        OPENSSL_clear_free(c->code, sizeof(*c->code));
    free(c->sad);
    OPENSSL_clear_free(c, sizeof(*c));
}

/* Take the session (claiming it for this decision); it must have a logged-in user. */
static int take_session(oauth_t *o, const char *sid, oauth_ent_t **out)
{
    uint8_t key[32];
    int rc;

    *out = NULL;
    if ((rc = oauth_token_hash(sid, sid ? strnlen(sid, OAUTH_TOKEN_BUFLEN) : 0, key)) != OAUTH_OK)
        return rc;
    if ((rc = oauth_ws_take(o, key, oauth_clock(o), out)) != OAUTH_OK)
        return rc;
    if (!(*out)->user[0]) {
        (void)oauth_ws_put_back(o, *out);
        oauth_ent_free(*out);
        *out = NULL;
        return OAUTH_ERR_INVALID;
    }
    return OAUTH_OK;
}

int oauth_session_decide(oauth_t *o, const char *sid, int approve, const char *pin, size_t pin_len, const char *addr,
                         char code[OAUTH_TOKEN_BUFLEN])
{
    char value[OAUTH_TOKEN_BUFLEN] = "";
    oauth_authz_request_t *req = NULL;
    decide_ctx_t *c = NULL;
    oauth_ent_t *e = NULL;
    int rc = OAUTH_ERR_INVAL;

    if (code)
        code[0] = '\0';
    if (!o || !code || (!pin && pin_len))
        goto out;
    if ((rc = take_session(o, sid, &e)) != OAUTH_OK)
        goto out;
    rc = OAUTH_ERR_INTERNAL;
    if (!(req = malloc(sizeof(*req))) || decide_ctx_new(&c) != OAUTH_OK)
        goto out;
    if ((rc = oauth_ent_req(e, req)) != OAUTH_OK)
        goto out;
    c->o = o;
    c->req = req;
    c->user = e->user;
    c->epoch = e->epoch;
    c->now = oauth_clock(o);
    c->approve = approve != 0;
    oauth_audit_client(c->client, req->client_id, addr ? addr : "");
    rc = decide_run(o, c, pin, pin_len, value);
    if (rc == OAUTH_OK && approve)
        memcpy(code, value, OAUTH_TOKEN_BUFLEN);
out:
    /* The user may retry a wrong PIN; a failed write or a busy PIN check changed nothing. Anything else ends the
     * session. */
    if (e && (rc == OAUTH_ERR_DENIED || rc == OAUTH_ERR_STORAGE || rc == OAUTH_ERR_UNAVAILABLE ||
              rc == OAUTH_ERR_INTERNAL || rc == OAUTH_ERR_BUSY))
        (void)oauth_ws_put_back(o, e);
    oauth_ent_free(e);
    OPENSSL_cleanse(value, sizeof(value));
    if (req)
        OPENSSL_clear_free(req, sizeof(*req));
    decide_ctx_free(c);
    return rc;
}
