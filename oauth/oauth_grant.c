/*
 * oauth_grant.c - the token endpoint's grants (authorization_code with PKCE,
 * refresh_token with rotation, client_credentials), auth/login with a refresh
 * token (the same refresh flow without a client) and RFC 7009 revocation by a
 * client.
 *
 * Each grant is decided and applied in one stor_write(): the code is marked
 * used, or the refresh token rotated, in the transaction that issues the new
 * tokens and appends the audit record, so two concurrent exchanges of one code
 * can never both succeed. A second exchange of a used code, or a rotated
 * refresh token presented again, revokes the grant (RFC 6749 4.1.2, RFC 9700
 * 4.14.2). The callbacks return 0 for refusals too, so those keep their
 * revocations and audit records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "oauth_int.h"

/* ---- shared -------------------------------------------------------------------- */

typedef struct {
    const oauth_t *o;
    const stor_client_t *client;
    char audit_client[64];
    int64_t now;
    uint8_t hash[32];            /* the presented code / refresh token / token */
    uint8_t access[32];          /* hashes of the new tokens */
    uint8_t refresh[32];
    int issue_refresh;           /* decided in the write */
    oauth_token_response_t *out;
    const char *why;
    int rc;
} grant_ctx_t;

/* The client must still be registered (it may have been removed since it authenticated); auth/login has none. */
static int client_live(stor_txn_t *t, grant_ctx_t *c)
{
    stor_client_t *cl;
    int rc;

    if (c->client == NULL)
        return 1;
    if (!(cl = malloc(sizeof(*cl))))
        return OAUTH_ERR_INTERNAL;
    rc = stor_txn_client_get(t, c->client->id, cl);
    free(cl);
    if (rc == STOR_ERR_NOTFOUND) {
        c->rc = OAUTH_ERR_INVALID;
        c->why = "unknown client";
        return 0;
    }
    return rc < 0 ? rc : 1;
}

/* 1 if the user is active, 0 if not, -1 if there is no such user; or a STOR error. */
static int user_active(stor_txn_t *t, const char *name, int *active)
{
    uint32_t status;
    int rc = oauth_user_status(t, name, &status);

    *active = rc == STOR_ERR_NOTFOUND ? -1 : rc == STOR_OK && status == STOR_USER_ACTIVE;
    return rc == STOR_ERR_NOTFOUND ? 0 : rc;
}

static int grant_audit(stor_txn_t *t, grant_ctx_t *c, const char *user, const char *cred, const char *grant_type)
{
    stor_audit_t rec;
    int ok = c->rc == OAUTH_OK;

    oauth_audit_init(&rec, STOR_EV_LOGIN, ok ? STOR_RES_OK : STOR_RES_DENIED, user, cred, c->audit_client);
    if (oauth_token_ref(ok ? c->access : c->hash, rec.authz_ref) != OAUTH_OK)
        return OAUTH_ERR_INTERNAL;
    if (c->client != NULL)
        snprintf(rec.detail, sizeof(rec.detail), "token.issue grant=%s%s%s", grant_type, ok ? "" : " denied: ",
                 ok ? "" : c->why);
    else /* auth/login with a refresh token */
        snprintf(rec.detail, sizeof(rec.detail), "refresh%s%s", ok ? "" : ": ", ok ? "" : c->why);
    return stor_txn_audit_append(t, &rec);
}

/* New token values (and their hashes) made before the write: the callback must stay short. */
static int grant_begin(grant_ctx_t *c, oauth_t *o, const stor_client_t *client, oauth_token_response_t *out,
                       int with_refresh)
{
    int rc;

    c->o = o;
    c->client = client;
    c->out = out;
    c->now = oauth_clock(o);
    if (client != NULL)
        oauth_audit_client(c->audit_client, client->id, NULL);
    if ((rc = oauth_token_new(out->access, c->access)) != OAUTH_OK)
        return rc;
    if (with_refresh && (rc = oauth_token_new(out->refresh, c->refresh)) != OAUTH_OK)
        return rc;
    return OAUTH_OK;
}

static int grant_args_ok(const oauth_t *o, const stor_client_t *client, const oauth_token_response_t *out)
{
    return o && client && out && oauth_id_ok(client->id);
}

/* ---- authorization_code ----------------------------------------------------------- */

typedef struct {
    grant_ctx_t g;
    const char *redirect_uri;    /* NULL: not sent */
    uint8_t verifier_hash[32];
    int verifier_ok;             /* 43..128 unreserved characters */
    stor_code_t *code;           /* scratch: large */
    stor_sad_t *sad;
    uint8_t cred_tokens[4][32];  /* reuse: credential tokens of the grant, whose SADs go */
    size_t n_cred_tokens;
} code_ctx_t;

static int verifier_ok(const char *v, size_t *len)
{
    size_t i, n;

    *len = 0;
    if (!v || (n = strnlen(v, OAUTH_VERIFIER_MAX + 1)) < OAUTH_VERIFIER_MIN || n > OAUTH_VERIFIER_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '.' || ch == '_' || ch == '~'))
            return 0;
    }
    *len = n;
    return 1;
}

static int collect_cred_token(const stor_token_t *tok, void *arg)
{
    code_ctx_t *c = arg;

    if (tok->scope == STOR_SCOPE_CREDENTIAL && c->n_cred_tokens < sizeof(c->cred_tokens) / 32)
        memcpy(c->cred_tokens[c->n_cred_tokens++], tok->hash, 32);
    return 0;
}

/* A used code came back: everything issued for it goes (RFC 6749 4.1.2). */
static int code_reused(stor_txn_t *t, code_ctx_t *c)
{
    size_t i;
    int rc;

    c->n_cred_tokens = 0;
    if ((rc = stor_txn_token_each_grant(t, c->code->grant, collect_cred_token, c)) < 0)
        return rc;
    for (i = 0; i < c->n_cred_tokens; i++)
        if ((rc = stor_txn_sad_del(t, c->cred_tokens[i])) < 0 && rc != STOR_ERR_NOTFOUND)
            return rc;
    if ((rc = stor_txn_token_revoke_grant(t, c->code->grant)) < 0)
        return rc;
    c->g.rc = OAUTH_ERR_REUSED;
    c->g.why = "code reused: grant revoked";
    return 0;
}

/* Checks in order: known, used (reuse), expired, client, redirect URI, PKCE, user still active. */
static int code_check(stor_txn_t *t, code_ctx_t *c)
{
    const stor_code_t *k = c->code;
    int rc, active;

    c->g.rc = OAUTH_ERR_INVALID;
    if (k->used)
        return code_reused(t, c);
    if (k->expires_at <= c->g.now)
        c->g.why = "code expired";
    else if (strcmp(k->client, c->g.client->id) != 0)
        c->g.why = "code of another client";
    else if ((k->redirect_given && !c->redirect_uri) ||
             (c->redirect_uri && strcmp(c->redirect_uri, k->redirect_uri) != 0))
        c->g.why = "redirect_uri mismatch";
    else if (!(c->g.client->grants & STOR_GRANT_AUTHORIZATION_CODE))
        c->g.why = "client may not use authorization_code";
    else if (!c->verifier_ok || CRYPTO_memcmp(c->verifier_hash, k->challenge, 32) != 0) {
        c->g.rc = OAUTH_ERR_PKCE;
        c->g.why = "PKCE verifier mismatch";
    } else if ((rc = user_active(t, k->user, &active)) < 0)
        return rc;
    else if (active != 1)
        c->g.why = "user not active";
    else
        c->g.rc = OAUTH_OK;
    return 0;
}

/* The pending SAD leaves the pending table (keyed by the code's hash) and becomes a SAD under the credential
 * token's hash, expiring with the token: only now, with client, redirect URI and PKCE verifier checked. */
static int move_sad(stor_txn_t *t, code_ctx_t *c, int64_t expires_at)
{
    int rc = stor_txn_pending_sad_get(t, c->code->hash, c->sad);

    if (rc == STOR_ERR_NOTFOUND) {
        c->g.rc = OAUTH_ERR_INVALID;
        c->g.why = "pending SAD missing";
        return 0;
    }
    if (rc < 0 || (rc = stor_txn_pending_sad_del(t, c->code->hash)) < 0)
        return rc;
    memcpy(c->sad->hash, c->g.access, 32);
    c->sad->expires_at = expires_at;
    return stor_txn_sad_put(t, c->sad);
}

static int code_issue(stor_txn_t *t, code_ctx_t *c)
{
    const oauth_config_t *cfg = &c->g.o->cfg;
    stor_code_t *k = c->code;
    int64_t now = c->g.now;
    int64_t cred_exp = now + (int64_t)cfg->credential_token_ttl;
    int cred = k->scope == STOR_SCOPE_CREDENTIAL, rc;

    if (cred && ((rc = move_sad(t, c, cred_exp)) < 0 || c->g.rc != OAUTH_OK))
        return rc;
    k->used = 1;
    if ((rc = stor_txn_code_put(t, k)) < 0)
        return rc;
    if (cred)
        return oauth_txn_token_new(t, c->g.access, STOR_TOKEN_ACCESS, STOR_SCOPE_CREDENTIAL, k->user, k->client, k->cred,
                         k->grant, now, cred_exp);
    if ((rc = oauth_txn_token_new(t, c->g.access, STOR_TOKEN_ACCESS, STOR_SCOPE_SERVICE, k->user, k->client, NULL, k->grant,
                        now, now + (int64_t)cfg->access_ttl)) < 0)
        return rc;
    c->g.issue_refresh = (c->g.client->grants & STOR_GRANT_REFRESH_TOKEN) != 0;
    if (!c->g.issue_refresh)
        return 0;
    return oauth_txn_token_new(t, c->g.refresh, STOR_TOKEN_REFRESH, STOR_SCOPE_SERVICE, k->user, k->client, NULL, k->grant,
                     now, now + (int64_t)cfg->refresh_ttl);
}

static int code_apply(stor_txn_t *t, void *arg)
{
    code_ctx_t *c = arg;
    oauth_token_response_t *out = c->g.out;
    int rc;

    c->g.rc = OAUTH_ERR_INVALID;
    c->g.why = "unknown code";
    c->g.issue_refresh = 0;
    if ((rc = stor_txn_code_get(t, c->g.hash, c->code)) < 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    if (rc == STOR_ERR_NOTFOUND)
        rc = 0;
    else if ((rc = client_live(t, &c->g)) == 1 && (rc = code_check(t, c)) == 0 && c->g.rc == OAUTH_OK)
        rc = code_issue(t, c);
    if (rc < 0)
        return rc;
    if (c->g.rc == OAUTH_OK) {
        out->scope = c->code->scope;
        oauth_copy(out->cred, sizeof(out->cred), c->code->cred);
        oauth_copy(out->authz_details, sizeof(out->authz_details), c->code->authz_details);
    }
    rc = grant_audit(t, &c->g, c->code->user, c->code->cred, "authorization_code");
    return rc < 0 ? rc : 0;
}

int oauth_token_from_code(oauth_t *o, const stor_client_t *client, const char *code, const char *redirect_uri,
                          const char *verifier, oauth_token_response_t *out)
{
    code_ctx_t *c = NULL;
    size_t vlen;
    int rc = OAUTH_ERR_INVAL;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!grant_args_ok(o, client, out))
        goto out;
    rc = OAUTH_ERR_INTERNAL;
    if (!(c = calloc(1, sizeof(*c))) || !(c->code = calloc(1, sizeof(*c->code))) ||
        !(c->sad = calloc(1, sizeof(*c->sad))))
        goto out;
    if ((rc = oauth_token_hash(code, code ? strnlen(code, OAUTH_TOKEN_BUFLEN) : 0, c->g.hash)) != OAUTH_OK)
        goto out;
    c->redirect_uri = redirect_uri;
    c->verifier_ok = verifier_ok(verifier, &vlen);
    if (c->verifier_ok && (rc = oauth_sha256(verifier, vlen, c->verifier_hash)) != OAUTH_OK)
        goto out;
    if ((rc = grant_begin(&c->g, o, client, out, 1)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, code_apply, c))) == OAUTH_OK)
        rc = c->g.rc;
    if (rc == OAUTH_OK) {
        out->expires_in = out->scope == STOR_SCOPE_CREDENTIAL ? o->cfg.credential_token_ttl : o->cfg.access_ttl;
        if (!c->g.issue_refresh)
            OPENSSL_cleanse(out->refresh, sizeof(out->refresh));
    }
out:
    if (rc != OAUTH_OK && out)
        OPENSSL_cleanse(out, sizeof(*out));
    if (c) {
        if (c->code)
            OPENSSL_clear_free(c->code, sizeof(*c->code));
        free(c->sad);
        OPENSSL_clear_free(c, sizeof(*c));
    }
    return rc;
}

/* ---- refresh_token, and auth/login with a refresh token ------------------------------------ */

/* The token endpoint (c->client set) and auth/login (no client) take a refresh token through the same checks;
 * auth/login takes only tokens issued without a client (an OAuth client's would skip the rotation), tells a
 * suspended user apart (OAUTH_ERR_DISABLED) and issues only an access token. */
static int refresh_check(stor_txn_t *t, grant_ctx_t *c, const stor_token_t *tok)
{
    int login = c->client == NULL, rc, active;

    c->rc = OAUTH_ERR_INVALID;
    if (tok->kind != STOR_TOKEN_REFRESH)
        c->why = "not a refresh token";
    else if (strcmp(tok->client, login ? "" : c->client->id) != 0)
        c->why = login ? "issued to an OAuth client" : "refresh token of another client";
    else if (tok->rotated) {
        /* The old token of a rotation came back: one of the two holders is not the client. */
        if ((rc = stor_txn_token_revoke_grant(t, tok->grant)) < 0)
            return rc;
        c->rc = OAUTH_ERR_REUSED;
        c->why = "rotated refresh token reused: grant revoked";
    } else if (tok->revoked)
        c->why = "revoked";
    else if (tok->expires_at <= c->now) {
        c->rc = OAUTH_ERR_EXPIRED;
        c->why = "expired";
    } else if (!login && !(c->client->grants & STOR_GRANT_REFRESH_TOKEN))
        c->why = "client may not use refresh_token";
    else if ((rc = user_active(t, tok->user, &active)) < 0)
        return rc;
    else if (active == 1)
        c->rc = OAUTH_OK;
    else if (!login)
        c->why = "user not active";
    else if (active == 0) {
        c->rc = OAUTH_ERR_DISABLED;
        c->why = "disabled";
    } else
        c->why = "unknown user";
    return 0;
}

/* Rotation (token endpoint): the presented token is marked rotated (kept, so its reuse is recognised until it
 * expires); the new one keeps the grant and its expiry, so rotation never extends the life of a login. */
static int refresh_issue(stor_txn_t *t, grant_ctx_t *c, stor_token_t *tok)
{
    int rc;

    if (c->client != NULL) {
        tok->rotated = 1;
        if ((rc = stor_txn_token_put(t, tok)) < 0)
            return rc;
        if ((rc = oauth_txn_token_new(t, c->refresh, STOR_TOKEN_REFRESH, tok->scope, tok->user, tok->client, NULL,
                                      tok->grant, c->now, tok->expires_at)) < 0)
            return rc;
    }
    return oauth_txn_token_new(t, c->access, STOR_TOKEN_ACCESS, tok->scope, tok->user, tok->client, NULL, tok->grant,
                               c->now, c->now + (int64_t)c->o->cfg.access_ttl);
}

static int refresh_apply(stor_txn_t *t, void *arg)
{
    grant_ctx_t *c = arg;
    stor_token_t tok;
    int rc;

    c->rc = OAUTH_ERR_INVALID;
    c->why = "unknown token";
    if ((rc = stor_txn_token_get(t, c->hash, &tok)) < 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    if (rc == STOR_ERR_NOTFOUND) {
        rc = 0;
    } else if ((rc = client_live(t, c)) == 1 && (rc = refresh_check(t, c, &tok)) == 0 && c->rc == OAUTH_OK) {
        rc = refresh_issue(t, c, &tok);
        c->out->scope = tok.scope;
    }
    if (rc < 0)
        return rc;
    rc = grant_audit(t, c, tok.user, NULL, "refresh_token");
    return rc < 0 ? rc : 0;
}

/* client NULL: auth/login, whose audit records name login_client. */
static int refresh_run(oauth_t *o, const stor_client_t *client, const char *login_client, const char *refresh,
                       size_t len, oauth_token_response_t *out)
{
    grant_ctx_t c;
    int rc;

    memset(&c, 0, sizeof(c));
    if ((rc = oauth_token_hash(refresh, len, c.hash)) != OAUTH_OK)
        goto out;
    if (client == NULL)
        oauth_copy(c.audit_client, sizeof(c.audit_client), login_client);
    if ((rc = grant_begin(&c, o, client, out, client != NULL)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, refresh_apply, &c))) == OAUTH_OK)
        rc = c.rc;
    if (rc == OAUTH_OK)
        out->expires_in = o->cfg.access_ttl;
out:
    if (rc != OAUTH_OK)
        OPENSSL_cleanse(out, sizeof(*out));
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}

int oauth_token_refresh(oauth_t *o, const stor_client_t *client, const char *refresh, size_t len,
                        oauth_token_response_t *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (!grant_args_ok(o, client, out))
        return OAUTH_ERR_INVAL;
    return refresh_run(o, client, NULL, refresh, len, out);
}

int oauth_login_refresh(oauth_t *o, const char *refresh, size_t len, const char *client, oauth_tokens_t *out)
{
    oauth_token_response_t *r;
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!o || !out)
        return OAUTH_ERR_INVAL;
    if (!(r = calloc(1, sizeof(*r))))
        return OAUTH_ERR_INTERNAL;
    if ((rc = refresh_run(o, NULL, client, refresh, len, r)) == OAUTH_OK) {
        memcpy(out->access, r->access, sizeof(out->access));
        out->expires_in = r->expires_in;
    }
    OPENSSL_clear_free(r, sizeof(*r));
    return rc;
}

/* ---- client_credentials -------------------------------------------------------------- */

static int cc_apply(stor_txn_t *t, void *arg)
{
    grant_ctx_t *c = arg;
    uint8_t grant[16];
    int rc;

    if ((rc = client_live(t, c)) == 1) {
        c->rc = OAUTH_OK;
        if (RAND_bytes(grant, sizeof(grant)) != 1)
            return OAUTH_ERR_INTERNAL;
        rc = oauth_txn_token_new(t, c->access, STOR_TOKEN_ACCESS, STOR_SCOPE_SERVICE, NULL, c->client->id, NULL, grant, c->now,
                       c->now + (int64_t)c->o->cfg.access_ttl);
    }
    if (rc < 0)
        return rc;
    rc = grant_audit(t, c, NULL, NULL, "client_credentials");
    return rc < 0 ? rc : 0;
}

int oauth_token_client_credentials(oauth_t *o, const stor_client_t *client, oauth_token_response_t *out)
{
    grant_ctx_t c;
    int rc = OAUTH_ERR_INVAL;

    memset(&c, 0, sizeof(c));
    if (out)
        memset(out, 0, sizeof(*out));
    if (!grant_args_ok(o, client, out))
        goto out;
    rc = OAUTH_ERR_INVALID;
    if (!(client->grants & STOR_GRANT_CLIENT_CREDENTIALS))
        goto out;
    if ((rc = grant_begin(&c, o, client, out, 0)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, cc_apply, &c))) == OAUTH_OK)
        rc = c.rc;
    if (rc == OAUTH_OK) {
        out->expires_in = o->cfg.access_ttl;
        out->scope = STOR_SCOPE_SERVICE;
    }
out:
    if (rc != OAUTH_OK && out)
        OPENSSL_cleanse(out, sizeof(*out));
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}

/* ---- revocation (RFC 7009) -------------------------------------------------------------- */

/* A known token revoked: a refresh token ends its whole grant (RFC 7009 2.1: its access tokens too); an access
 * token ends alone, a credential token's SAD with it (signHash accepts the token value as the SAD). */
static int revoke_found(stor_txn_t *t, stor_token_t *tok, const char **why)
{
    int rc;

    if (tok->kind == STOR_TOKEN_REFRESH) {
        *why = "refresh";
        return stor_txn_token_revoke_grant(t, tok->grant);
    }
    tok->revoked = 1;
    if ((rc = stor_txn_token_put(t, tok)) < 0 || (rc = oauth_txn_drop_token_sad(t, tok)) < 0)
        return rc;
    *why = tok->scope == STOR_SCOPE_CREDENTIAL ? "credential" : "access";
    return 0;
}

static int revoke_audit(stor_txn_t *t, int ok, const char *user, const char *client, const uint8_t hash[32],
                        const char *why)
{
    stor_audit_t rec;

    oauth_audit_init(&rec, STOR_EV_TOKEN_REVOKE, ok ? STOR_RES_OK : STOR_RES_DENIED, user, NULL, client);
    if (oauth_token_ref(hash, rec.authz_ref) != OAUTH_OK)
        return OAUTH_ERR_INTERNAL;
    oauth_copy(rec.detail, sizeof(rec.detail), why);
    return stor_txn_audit_append(t, &rec);
}

static int revoke_client_apply(stor_txn_t *t, void *arg)
{
    grant_ctx_t *c = arg;
    stor_token_t tok;
    int rc;

    c->rc = OAUTH_ERR_INVALID; /* "nothing revoked" for the record; the caller answers OK either way */
    c->why = "unknown token";
    if ((rc = stor_txn_token_get(t, c->hash, &tok)) < 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    if (rc == STOR_OK && strcmp(tok.client, c->client->id) != 0) {
        c->why = "token of another client";
    } else if (rc == STOR_OK) {
        if ((rc = revoke_found(t, &tok, &c->why)) < 0)
            return rc;
        c->rc = OAUTH_OK;
    }
    rc = revoke_audit(t, c->rc == OAUTH_OK, c->rc == OAUTH_OK ? tok.user : NULL, c->audit_client, c->hash, c->why);
    return rc < 0 ? rc : 0;
}

int oauth_token_revoke_by_client(oauth_t *o, const stor_client_t *client, const char *token, size_t len,
                                 oauth_hint_t hint)
{
    grant_ctx_t c;
    int rc = OAUTH_ERR_INVAL;

    memset(&c, 0, sizeof(c));
    /* The hint is not needed to find the token (one table holds both kinds, RFC 7009 2.1). */
    if (!o || !client || !oauth_id_ok(client->id) ||
        (hint != OAUTH_HINT_NONE && hint != OAUTH_HINT_ACCESS && hint != OAUTH_HINT_REFRESH))
        goto out;
    /* A malformed token is as unknown as any other (RFC 7009 2.2): OK, nothing to look up. */
    rc = OAUTH_OK;
    if (oauth_token_hash(token, len, c.hash) != OAUTH_OK)
        goto out;
    c.o = o;
    c.client = client;
    oauth_audit_client(c.audit_client, client->id, NULL);
    rc = oauth_rc(stor_write(o->cfg.stor, revoke_client_apply, &c));
out:
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}

/* ---- auth/revoke: a user's (or a client_credentials client's) own token ---------------------------- */

typedef struct {
    const oauth_principal_t *who;
    const char *client;
    uint8_t hash[32];
    int rc;
} revoke_ctx_t;

/* A user's principal owns the user's tokens; a client's own (client_credentials) principal the client's. */
static int owns(const oauth_principal_t *who, const stor_token_t *tok)
{
    if (who->user[0])
        return strcmp(tok->user, who->user) == 0;
    return !tok->user[0] && strcmp(tok->client, who->client) == 0;
}

static int revoke_apply(stor_txn_t *t, void *arg)
{
    revoke_ctx_t *c = arg;
    stor_token_t tok;
    const char *why = "unknown token";
    int rc;

    c->rc = OAUTH_ERR_INVALID;
    if ((rc = stor_txn_token_get(t, c->hash, &tok)) < 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    if (rc == STOR_OK && !owns(c->who, &tok)) {
        why = "another user's token";
    } else if (rc == STOR_OK) {
        if ((rc = revoke_found(t, &tok, &why)) < 0)
            return rc;
        c->rc = OAUTH_OK;
    }
    rc = revoke_audit(t, c->rc == OAUTH_OK, c->who->user, c->client, c->hash, why);
    return rc < 0 ? rc : 0;
}

int oauth_token_revoke(oauth_t *o, const oauth_principal_t *who, const char *token, size_t len, oauth_hint_t hint,
                       const char *client)
{
    revoke_ctx_t c;
    int rc = OAUTH_ERR_INVAL;

    memset(&c, 0, sizeof(c));
    /* The hint only speeds up a lookup elsewhere; here one table holds both
     * kinds, and a wrong hint must still find the token (RFC 7009 2.1). */
    if (!o || !who || !memchr(who->user, '\0', sizeof(who->user)) || !memchr(who->client, '\0', sizeof(who->client)) ||
        (!oauth_name_ok(who->user) && !oauth_name_ok(who->client)) ||
        (hint != OAUTH_HINT_NONE && hint != OAUTH_HINT_ACCESS && hint != OAUTH_HINT_REFRESH))
        goto out;
    if ((rc = oauth_token_hash(token, len, c.hash)) != OAUTH_OK)
        goto out;
    c.who = who;
    c.client = client;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, revoke_apply, &c))) == OAUTH_OK)
        rc = c.rc;
out:
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}
