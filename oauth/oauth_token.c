/*
 * oauth_token.c - bearer token validation. auth/login with a password is oauth_login.c's; auth/login with a
 * refresh token (the token endpoint's refresh flow without a client) and revocation (RFC 7009, auth/revoke) are
 * with the grants in oauth_grant.c. Both files are linked by csc-sam only (SAM ops API_LOGIN, TOKEN, REVOKE).
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
    oauth_t *o;
    const char *hint;                /* the user row to read ahead with the token (NULL: none) */
    char known[STOR_NAME_MAX + 1];   /* the hint kept for this token (oauth_hint.c) */
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

    /* Read ahead only: a failure here is the txn's, and the get that follows returns it. A hint that is no user
     * name (INVAL) reads nothing ahead. */
    if (c->hint != NULL) {
        (void)stor_txn_token_prefetch(t, c->hash);
        (void)stor_txn_user_prefetch(t, c->hint);
    }
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
    if (tok.user[0] && strcmp(c->known, tok.user) != 0) /* the next check of this token reads its user ahead */
        oauth_hint_put(c->o->hints, c->hash, tok.user);
    oauth_copy(c->out->user, sizeof(c->out->user), tok.user);
    oauth_copy(c->out->client, sizeof(c->out->client), tok.client);
    oauth_copy(c->out->cred, sizeof(c->out->cred), tok.cred);
    c->out->scope = tok.scope;
    memcpy(c->out->grant, tok.grant, sizeof(c->out->grant));
    c->out->expires_at = tok.expires_at;
    return oauth_token_ref(c->hash, c->out->ref);
}

/* The context of check_read for token, or OAUTH_ERR_INVAL (out zeroed first when not NULL); the user kept for the
 * token's hash, if any, as the hint of the row to read ahead. */
static int check_init(oauth_t *o, const char *token, size_t len, oauth_principal_t *out, check_ctx_t *c)
{
    int rc;

    memset(c, 0, sizeof(*c));
    if (out)
        memset(out, 0, sizeof(*out));
    if (!o || !out)
        return OAUTH_ERR_INVAL;
    c->now = oauth_clock(o);
    c->out = out;
    c->o = o;
    if ((rc = oauth_token_hash(token, len, c->hash)) != OAUTH_OK)
        return rc;
    if (oauth_hint_get(o->hints, c->hash, c->known))
        c->hint = c->known;
    return OAUTH_OK;
}

int oauth_token_check(oauth_t *o, const char *token, size_t len, oauth_principal_t *out)
{
    check_ctx_t c;
    int rc = check_init(o, token, len, out, &c);

    if (rc == OAUTH_OK)
        rc = oauth_rc(stor_read(o->cfg.stor, check_read, &c));
    if (rc != OAUTH_OK && out)
        memset(out, 0, sizeof(*out));
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}

int oauth_token_check_txn(oauth_t *o, stor_txn_t *t, const char *token, size_t len, const char *user_hint,
                          oauth_principal_t *out)
{
    check_ctx_t c;
    int rc = check_init(o, token, len, out, &c);

    if (user_hint != NULL) /* the caller's (csc-sam's SIGN: the user csc-server found) before the one kept here */
        c.hint = user_hint;
    if (rc == OAUTH_OK)
        rc = oauth_rc(check_read(t, &c));
    if (rc != OAUTH_OK && out)
        memset(out, 0, sizeof(*out));
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}
