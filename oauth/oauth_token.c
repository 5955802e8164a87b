/*
 * oauth_token.c - bearer token validation and revocation (RFC 7009). auth/login with a password is
 * oauth_login.c's (csc-sam's), auth/login with a refresh token the token endpoint's refresh flow without a
 * client (oauth_grant.c).
 *
 * Token values are 32 random bytes in base64url; storage only ever sees their
 * SHA-256. Every decision that reaches storage is written together with its
 * audit record in one stor_write() callback; the callback returns 0 for
 * denials too (a non-zero return would discard the audit record and the
 * failure counter), and hands the decision back in its context.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "oauth_int.h"

/* ---- shared ------------------------------------------------------------- */

int oauth_audit_append_ref(stor_txn_t *t, stor_audit_t *rec, const uint8_t hash[32], const char *detail)
{
    if (hash && oauth_token_ref(hash, rec->authz_ref) != OAUTH_OK)
        return OAUTH_ERR_INTERNAL;
    oauth_copy(rec->detail, sizeof(rec->detail), detail);
    return stor_txn_audit_append(t, rec);
}

int oauth_user_status(stor_txn_t *t, const char *name, uint32_t *status)
{
    stor_user_t u;
    int rc = stor_txn_user_get(t, name, &u);

    *status = rc == STOR_OK ? u.status : 0;
    OPENSSL_cleanse(&u, sizeof(u));
    return rc;
}

/* ---- validation --------------------------------------------------------- */

typedef struct {
    uint8_t hash[32];
    int64_t now;
    oauth_principal_t *out;
} check_ctx_t;

/* A token issued to an OAuth client dies with the client: also when an id is registered again later. */
static int client_current(stor_txn_t *t, const stor_token_t *tok)
{
    stor_client_t cl;
    int rc = stor_txn_client_get(t, tok->client, &cl);

    if (rc == STOR_ERR_NOTFOUND || (rc == STOR_OK && cl.created_at > tok->issued_at))
        rc = OAUTH_ERR_INVALID;
    OPENSSL_cleanse(&cl, sizeof(cl));
    return rc;
}

static int check_read(stor_txn_t *t, void *arg)
{
    check_ctx_t *c = arg;
    stor_token_t tok;
    uint32_t status = 0;
    int rc;

    if ((rc = stor_txn_token_get(t, c->hash, &tok)) == STOR_ERR_NOTFOUND)
        return OAUTH_ERR_INVALID;
    if (rc < 0)
        return rc;
    if (tok.kind != STOR_TOKEN_ACCESS || tok.revoked)
        return OAUTH_ERR_INVALID;
    if (tok.expires_at <= c->now)
        return OAUTH_ERR_EXPIRED;
    if (tok.client[0] && (rc = client_current(t, &tok)) != STOR_OK)
        return rc;
    /* client_credentials tokens speak for the client alone: no user to check. */
    if (!tok.user[0] && !tok.client[0])
        return OAUTH_ERR_INVALID;
    if (tok.user[0] && (rc = oauth_user_status(t, tok.user, &status)) == STOR_ERR_NOTFOUND)
        return OAUTH_ERR_INVALID;
    if (rc < 0)
        return rc;
    if (tok.user[0] && status != STOR_USER_ACTIVE)
        return OAUTH_ERR_DISABLED;
    oauth_copy(c->out->user, sizeof(c->out->user), tok.user);
    oauth_copy(c->out->client, sizeof(c->out->client), tok.client);
    oauth_copy(c->out->cred, sizeof(c->out->cred), tok.cred);
    c->out->scope = tok.scope;
    memcpy(c->out->grant, tok.grant, sizeof(c->out->grant));
    c->out->expires_at = tok.expires_at;
    return oauth_token_ref(c->hash, c->out->ref);
}

int oauth_token_check(oauth_t *o, const char *token, size_t len, oauth_principal_t *out)
{
    check_ctx_t c;
    int rc = OAUTH_ERR_INVAL;

    memset(&c, 0, sizeof(c));
    if (out)
        memset(out, 0, sizeof(*out));
    if (!o || !out)
        goto out;
    if ((rc = oauth_token_hash(token, len, c.hash)) != OAUTH_OK)
        goto out;
    c.now = oauth_clock(o);
    c.out = out;
    rc = oauth_rc(stor_read(o->cfg.stor, check_read, &c));
out:
    if (rc != OAUTH_OK && out)
        memset(out, 0, sizeof(*out));
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}

/* ---- revocation --------------------------------------------------------- */

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
    stor_audit_t rec;
    const char *why = "unknown token";
    int rc;

    c->rc = OAUTH_ERR_INVALID;
    if ((rc = stor_txn_token_get(t, c->hash, &tok)) < 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    if (rc == STOR_OK && !owns(c->who, &tok)) {
        why = "another user's token";
    } else if (rc == STOR_OK && tok.kind == STOR_TOKEN_REFRESH) {
        /* RFC 7009 2.1: revoking a refresh token also ends the access tokens of its grant. */
        if ((rc = stor_txn_token_revoke_grant(t, tok.grant)) < 0)
            return rc;
        c->rc = OAUTH_OK;
        why = "refresh";
    } else if (rc == STOR_OK && tok.kind == STOR_TOKEN_ACCESS) {
        /* A credential token's SAD goes with it: signHash accepts the token value as the SAD. */
        tok.revoked = 1;
        if ((rc = stor_txn_token_put(t, &tok)) < 0 || (rc = oauth_txn_drop_token_sad(t, &tok)) < 0)
            return rc;
        c->rc = OAUTH_OK;
        why = tok.scope == STOR_SCOPE_CREDENTIAL ? "credential" : "access";
    }
    oauth_audit_init(&rec, STOR_EV_TOKEN_REVOKE, c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, c->who->user,
                     NULL, c->client);
    rc = oauth_audit_append_ref(t, &rec, c->hash, why);
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
