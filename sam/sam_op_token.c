/*
 * sam_op_token.c - TOKEN and REVOKE (sam_core.h): the token endpoint's grants, auth/login's refresh and the two
 * revocations, run here because they write tokens, codes, SADs and the audit trail, which csc-server may not (its
 * storage role writes only web_sessions, async_results and pars; docs/architecture.md, "The SAM protocol").
 *
 * csc-sam takes nothing from the front end's word that mints or spends a token: it authenticates the client itself
 * (CLIENT_ID and CLIENT_SECRET as the client presented them; oauth_client_auth), and oauth/ checks the code (its hash,
 * single use, expiry, client, redirect URI, PKCE verifier, the user still active) or the refresh token (kind, client,
 * rotation with reuse detection revoking the grant, expiry) in the storage write that issues the tokens and appends
 * the audit record (oauth_grant.c). A caller's bearer token (auth/revoke) is checked here too.
 *
 * Refusals: the client not authenticated: UNAUTHORIZED about CLIENT_SECRET (audited here; oauth/ audits the grants'
 * own refusals). A grant refused: NOT_FOUND (unknown, foreign, expired code; a refresh token that is not usable),
 * EXPIRED (refresh token), DISABLED, NOT_BOUND about VERIFIER (PKCE), EXHAUSTED (a used code or rotated refresh token
 * came back: the grant is revoked), about CODE or REFRESH.
 */
#include <string.h>
#include <openssl/crypto.h>

#include "sam_core.h"

typedef struct token_op {
    char client_id[SAM_NAME_MAX + 1], secret[SAM_CLIENT_SECRET_MAX + 1], caller[SAM_CLIENT_MAX + 1];
    char code[SAM_TOKEN_MAX + 1], redirect[SAM_URI_MAX + 1], verifier[SAM_VERIFIER_MAX + 1];
    char value[SAM_TOKEN_MAX + 1]; /* the refresh token presented, or the token a revocation names */
    char bearer[SAM_TOKEN_MAX + 1];
    stor_client_t client;
    oauth_principal_t who;
    oauth_tokens_t login;
    oauth_token_response_t out;
} token_op_t;

/* The client of req authenticated here. 0, or -1 with the refusal built (*rc). */
static int client_auth(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, token_op_t *x, int *rc)
{
    int orc = sam_msg_count(req, SAM_T_CLIENT_ID) == 0
                  ? OAUTH_ERR_DENIED
                  : oauth_client_auth(cfg->oauth, x->client_id, x->secret, strlen(x->secret), &x->client);
    if (orc == OAUTH_OK)
        return 0;
    if (orc == OAUTH_ERR_DENIED)
        *rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_LOGIN, "", "", x->client_id[0] ? x->client_id : "-",
                                      SAM_REFUSE_UNAUTHORIZED, "client authentication failed", SAM_T_CLIENT_SECRET);
    else
        *rc = sam_refuse_oauth(b, req, orc, SAM_T_CLIENT_SECRET);
    return -1;
}

/* A grant's refusal: the codes the front end reads back into the token endpoint's errors (web_token.c). */
static int grant_refused(sam_builder_t *b, const sam_msg_t *req, int orc, unsigned about)
{
    if (orc == OAUTH_ERR_PKCE)
        return sam_build_refusal(b, req->id, SAM_REFUSE_NOT_BOUND, oauth_strerror(orc), SAM_T_VERIFIER);
    if (orc == OAUTH_ERR_REUSED)
        return sam_build_refusal(b, req->id, SAM_REFUSE_EXHAUSTED, oauth_strerror(orc), about);
    return sam_refuse_oauth(b, req, orc, about);
}

/* The request's fields copied out (wiped with x, OPENSSL_clear_free); NULL: out of memory. */
static token_op_t *read_fields(const sam_msg_t *req)
{
    token_op_t *x = OPENSSL_zalloc(sizeof(*x));
    if (x == NULL)
        return NULL;
    sam_text(req, SAM_T_CLIENT_ID, x->client_id, sizeof(x->client_id));
    sam_text(req, SAM_T_CLIENT_SECRET, x->secret, sizeof(x->secret));
    sam_text(req, SAM_T_CLIENT, x->caller, sizeof(x->caller));
    sam_text(req, SAM_T_CODE, x->code, sizeof(x->code));
    sam_text(req, SAM_T_REDIRECT_URI, x->redirect, sizeof(x->redirect));
    sam_text(req, SAM_T_VERIFIER, x->verifier, sizeof(x->verifier));
    sam_text(req, SAM_T_TOKEN, x->bearer, sizeof(x->bearer));
    sam_text(req, req->op == SAM_OP_REVOKE ? SAM_T_REVOKE_TOKEN : SAM_T_REFRESH_TOKEN, x->value, sizeof(x->value));
    return x;
}

/* The grant of req (client authenticated unless LOGIN_REFRESH): OAUTH_OK with x->out filled, or an oauth/ code;
 * *about: the field a refusal is about. */
static int run_grant(const sam_server_config_t *cfg, const sam_msg_t *req, uint32_t grant, token_op_t *x,
                     unsigned *about)
{
    oauth_t *o = cfg->oauth;
    int orc;

    *about = SAM_T_REFRESH_TOKEN;
    switch (grant) {
    case SAM_GRANT_CODE:
        *about = SAM_T_CODE;
        if (sam_msg_count(req, SAM_T_CODE) == 0 || sam_msg_count(req, SAM_T_VERIFIER) == 0)
            return OAUTH_ERR_INVAL;
        return oauth_token_from_code(o, &x->client, x->code,
                                     sam_msg_count(req, SAM_T_REDIRECT_URI) > 0 ? x->redirect : NULL, x->verifier,
                                     &x->out);
    case SAM_GRANT_REFRESH:
        if (sam_msg_count(req, SAM_T_REFRESH_TOKEN) == 0)
            return OAUTH_ERR_INVAL;
        return oauth_token_refresh(o, &x->client, x->value, strlen(x->value), &x->out);
    case SAM_GRANT_CLIENT_CREDENTIALS:
        *about = SAM_T_CLIENT_ID;
        return oauth_token_client_credentials(o, &x->client, &x->out);
    default: /* SAM_GRANT_LOGIN_REFRESH: auth/login with a refresh token issued without a client */
        if (sam_msg_count(req, SAM_T_REFRESH_TOKEN) == 0 || sam_msg_count(req, SAM_T_CLIENT_ID) > 0)
            return OAUTH_ERR_INVAL;
        orc = oauth_login_refresh(o, x->value, strlen(x->value), x->caller[0] ? x->caller : NULL, &x->login);
        if (orc == OAUTH_OK) {
            memcpy(x->out.access, x->login.access, sizeof(x->out.access));
            x->out.expires_in = x->login.expires_in;
            x->out.scope = STOR_SCOPE_SERVICE;
        }
        return orc;
    }
}

int sam_op_token(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    uint32_t grant = 0;
    unsigned about;
    int rc;

    token_op_t *x = read_fields(req);
    if (x == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    (void)sam_get_u32(req, SAM_T_GRANT_TYPE, &grant); /* required: the decoder saw to it */
    if (grant != SAM_GRANT_LOGIN_REFRESH && client_auth(cfg, req, b, x, &rc) != 0)
        goto out;
    int orc = run_grant(cfg, req, grant, x, &about);
    if (orc != OAUTH_OK) {
        rc = grant_refused(b, req, orc, about);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_TOKEN | SAM_OP_REPLY, req->id);
    sam_put_str(b, SAM_T_TOKEN, x->out.access);
    if (x->out.cred[0] != '\0')
        sam_put_str(b, SAM_T_CRED, x->out.cred);
    sam_put_u32(b, SAM_T_EXPIRES_IN, x->out.expires_in);
    if (x->out.refresh[0] != '\0')
        sam_put_str(b, SAM_T_REFRESH_TOKEN, x->out.refresh);
    sam_put_u32(b, SAM_T_SCOPE, x->out.scope);
    if (x->out.authz_details[0] != '\0')
        sam_put_str(b, SAM_T_AUTHZ_DETAILS, x->out.authz_details);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_clear_free(x, sizeof(*x));
    return rc;
}

int sam_op_revoke(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    int rc, orc;

    token_op_t *x = read_fields(req);
    if (x == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    if (sam_msg_count(req, SAM_T_TOKEN) > 0) { /* auth/revoke: the caller's own token, checked here */
        if ((orc = oauth_token_check(cfg->oauth, x->bearer, strlen(x->bearer), &x->who)) != OAUTH_OK) {
            rc = sam_refuse_oauth(b, req, orc, SAM_T_TOKEN);
            goto out;
        }
        orc = oauth_token_revoke(cfg->oauth, &x->who, x->value, strlen(x->value), OAUTH_HINT_NONE,
                                 x->caller[0] ? x->caller : NULL);
    } else if (client_auth(cfg, req, b, x, &rc) != 0) {
        goto out;
    } else { /* /oauth2/revoke: an unknown token or another client's is no error (RFC 7009 2.2) */
        orc = oauth_token_revoke_by_client(cfg->oauth, &x->client, x->value, strlen(x->value), OAUTH_HINT_NONE);
    }
    rc = orc != OAUTH_OK ? sam_refuse_oauth(b, req, orc, SAM_T_REVOKE_TOKEN)
                         : sam_build_init(b, SAM_OP_REVOKE | SAM_OP_REPLY, req->id);
out:
    OPENSSL_clear_free(x, sizeof(*x));
    return rc;
}
