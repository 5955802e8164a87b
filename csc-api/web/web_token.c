/*
 * web/web_token.c - the OAuth 2.0 authorization server's JSON endpoints (no page): client authentication,
 *   POST /oauth2/token              authorization_code (PKCE S256), refresh_token (rotation), client_credentials
 *   POST /oauth2/revoke             RFC 7009
 *   POST /oauth2/pushed_authorize   PAR (RFC 9126); the request is parsed by web_oauth.c's web_authz_parse
 *   GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
 * web_oauth_handle (web_oauth.c) dispatches here; the answers are JSON (csc_reply_error for errors).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/crypto.h>
#include "web.h"

static void json_error(web_t *w, int status, const char *error, const char *desc)
{
    csc_reply_error(w->reply, status, error, desc);
}

/* The client as it authenticated here: csc-sam authenticates it again from these (TOKEN, REVOKE). Wiped by the
 * caller. */
typedef struct client_cred {
    char id[STOR_NAME_MAX + 1];
    char secret[SAM_CLIENT_SECRET_MAX + 1];
} client_cred_t;

/* A wrong client: 401 with the challenge, counted on the client address (oauth_rate_hit). */
static void client_refused(web_t *w)
{
    json_error(w, 401, "invalid_client", "Client authentication failed");
    w->reply->www_authenticate = "Basic realm=\"oauth2\"";
    (void)oauth_rate_hit(w->c->oauth, w->call->client);
}

/* Check id and secret (oauth_client_auth: a read) and keep them in cc (NULL: not kept) when they are right. */
static int client_check(web_t *w, const char *id, const char *secret, stor_client_t *client, client_cred_t *cc)
{
    size_t n = strlen(secret);
    int rc = oauth_client_auth(w->c->oauth, id, secret, n, client);
    if (rc == OAUTH_OK && cc != NULL) {
        if (strlen(id) >= sizeof(cc->id) || n >= sizeof(cc->secret))
            return OAUTH_ERR_DENIED; /* a right secret is never that long (OAUTH_CLIENT_SECRET_MAX) */
        memcpy(cc->id, id, strlen(id) + 1);
        memcpy(cc->secret, secret, n + 1);
    }
    return rc;
}

static int client_authn(web_t *w, const web_form_t *f, stor_client_t *client, client_cred_t *cc)
{
    const csc_call_t *call = w->call;
    const char *fid = web_form_get(f, "client_id"), *fsecret = web_form_get(f, "client_secret");
    int basic = call->authorization != NULL && call->authorization_len > 6 &&
                strncasecmp(call->authorization, "Basic ", 6) == 0;
    int rc = OAUTH_ERR_DENIED;

    if (basic) {
        char dec[512 + 1];
        long n = call->authorization_len - 6 <= 680 ? csc_b64_decode(call->authorization + 6, call->authorization_len - 6,
                                                                   (uint8_t *)dec, sizeof(dec) - 1)
                                                    : -1;
        char *colon = n > 0 ? memchr(dec, ':', (size_t)n) : NULL;
        web_form_t parts;
        if (colon == NULL || fsecret != NULL) {
            if (n > 0)
                OPENSSL_cleanse(dec, (size_t)n);
            json_error(w, 400, "invalid_request", fsecret ? "Use one client authentication method" : "Invalid authorization header");
            return -1;
        }
        /* Reuse the form decoder: "id=<id>&secret=<secret>" decodes both components. */
        char joined[600];
        *colon = '\0';
        dec[n] = '\0';
        int jl = snprintf(joined, sizeof(joined), "i=%s&s=%s", dec, colon + 1);
        OPENSSL_cleanse(dec, sizeof(dec));
        if (jl > 0 && (size_t)jl < sizeof(joined) && web_form_parse(joined, (size_t)jl, &parts) == 0) {
            const char *id = web_form_get(&parts, "i"), *secret = web_form_get(&parts, "s");
            if (id != NULL && secret != NULL && (fid == NULL || strcmp(fid, id) == 0) && strlen(id) <= STOR_NAME_MAX)
                rc = client_check(w, id, secret, client, cc);
            web_form_free(&parts);
        }
        OPENSSL_cleanse(joined, sizeof(joined));
    } else if (fid != NULL && fsecret != NULL) {
        if (strlen(fid) <= STOR_NAME_MAX)
            rc = client_check(w, fid, fsecret, client, cc);
    } else {
        json_error(w, 401, "invalid_client", "Client authentication required");
        w->reply->www_authenticate = "Basic realm=\"oauth2\"";
        return -1;
    }
    if (rc != OAUTH_OK) {
        client_refused(w);
        return -1;
    }
    return 0;
}

static int form_body(web_t *w, web_form_t *f)
{
    const char *ct = w->call->content_type;
    memset(f, 0, sizeof(*f));
    if (ct == NULL || w->call->content_type_len < 33 || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
        json_error(w, 400, "invalid_request", "The body must be application/x-www-form-urlencoded");
        return -1;
    }
    if (web_form_parse((const char *)w->call->body, w->call->body_len, f) != 0) {
        json_error(w, 400, "invalid_request", "Malformed form body (a parameter is repeated or badly encoded)");
        return -1;
    }
    return 0;
}

/* ---- POST /oauth2/token ---------------------------------------------------------------- */

/* The token response's room, taken before a code or refresh token is spent: once it is, nothing here can fail
 * (authorization_details, up to STOR_AUTHZ_DETAILS_MAX, is echoed in full). */
#define TOKEN_REPLY_MAX (STOR_AUTHZ_DETAILS_MAX + 2048)

static void token_reply(web_t *w, const oauth_token_response_t *t, web_buf_t *bp)
{
    web_buf_t b = *bp;
    memset(bp, 0, sizeof(*bp));
    web_buf_printf(&b, "{\"access_token\":\"%s\",\"token_type\":\"Bearer\",\"expires_in\":%u", t->access, t->expires_in);
    if (t->refresh[0])
        web_buf_printf(&b, ",\"refresh_token\":\"%s\"", t->refresh);
    web_buf_printf(&b, ",\"scope\":\"%s\"", t->scope == STOR_SCOPE_CREDENTIAL ? "credential" : "service");
    if (t->cred[0]) {
        web_buf_puts(&b, ",\"credentialID\":\"");
        web_buf_puts(&b, t->cred); /* ids are printable ASCII without quotes or backslashes (checked at creation) */
        web_buf_puts(&b, "\"");
    }
    if (t->authz_details[0]) /* validated JSON, as approved */
        web_buf_printf(&b, ",\"authorization_details\":%s", t->authz_details);
    web_buf_puts(&b, "}");
    if (b.failed) {
        web_buf_free(&b);
        json_error(w, 500, "server_error", "Response too large");
        return;
    }
    w->reply->status = 200;
    web_buf_to_reply(&b, w->reply);
}

static void token_error(web_t *w, int rc)
{
    switch (rc) {
    case OAUTH_ERR_PKCE:
        json_error(w, 400, "invalid_grant", "code_verifier does not match the code_challenge");
        break;
    case OAUTH_ERR_REUSED:
        json_error(w, 400, "invalid_grant", "The grant was already used; the tokens it issued are revoked");
        break;
    case OAUTH_ERR_EXPIRED:
        json_error(w, 400, "invalid_grant", "Refresh token expired");
        break;
    case OAUTH_ERR_INVALID:
    case OAUTH_ERR_DENIED:
    case OAUTH_ERR_DISABLED:
        json_error(w, 400, "invalid_grant", "Authorization code or refresh token is invalid, expired or not yours");
        break;
    case OAUTH_ERR_INVAL:
        json_error(w, 400, "invalid_request", "Invalid parameter");
        break;
    default:
        json_error(w, 503, "temporarily_unavailable", "The service is temporarily unavailable");
    }
}

void web_token_post(web_t *w)
{
    web_form_t f;
    web_buf_t reply;
    stor_client_t *client = calloc(1, sizeof(*client));
    oauth_token_response_t *t = calloc(1, sizeof(*t));
    client_cred_t cc;
    csc_token_req_t in;
    int rc;

    if (client == NULL || t == NULL) {
        json_error(w, 503, "temporarily_unavailable", "Out of memory");
        free(client);
        free(t);
        return;
    }
    memset(&cc, 0, sizeof(cc));
    memset(&in, 0, sizeof(in));
    in.client_id = cc.id;
    in.secret = cc.secret;
    memset(&f, 0, sizeof(f));
    web_buf_init(&reply, TOKEN_REPLY_MAX);
    if (web_buf_reserve(&reply, TOKEN_REPLY_MAX - 1) != 0) {
        json_error(w, 503, "temporarily_unavailable", "Out of memory");
        goto out;
    }
    if (form_body(w, &f) != 0)
        goto out;
    const char *gt = web_form_get(&f, "grant_type");
    if (gt == NULL) {
        json_error(w, 400, "invalid_request", "Missing parameter grant_type");
        goto out;
    }
    if (client_authn(w, &f, client, &cc) != 0)
        goto out;
    /* RFC 9396 sec. 6: checked before any grant is looked at, so a refusal never uses a code up. The code's
     * own approval decides what the token carries (and is echoed); only that grant can carry one. */
    const char *rar = web_form_get(&f, "authorization_details");
    if (rar != NULL) {
        authz_err_t e = {0};
        yajl_val v = NULL;
        if (web_rar_parse(rar, &v, &e) != 0) {
            json_error(w, 400, e.error, e.desc);
            goto out;
        }
        yajl_tree_free(v);
        if (strcmp(gt, "authorization_code") != 0) {
            json_error(w, 400, RAR_ERR, "authorization_details is only granted with the authorization code");
            goto out;
        }
    }
    if (strcmp(gt, "authorization_code") == 0) {
        const char *code = web_form_get(&f, "code"), *ver = web_form_get(&f, "code_verifier");
        if ((client->grants & STOR_GRANT_AUTHORIZATION_CODE) == 0) {
            json_error(w, 400, "unauthorized_client", "This client may not use the authorization code grant");
            goto out;
        }
        if (code == NULL || ver == NULL) {
            json_error(w, 400, "invalid_request", code == NULL ? "Missing parameter code" : "Missing parameter code_verifier");
            goto out;
        }
        in.grant = SAM_GRANT_CODE;
        in.code = code;
        in.redirect_uri = web_form_get(&f, "redirect_uri");
        in.verifier = ver;
    } else if (strcmp(gt, "refresh_token") == 0) {
        const char *rt = web_form_get(&f, "refresh_token");
        if (rt == NULL)
            rt = web_form_get(&f, "refreshToken"); /* the spec's sample spells it so */
        if ((client->grants & STOR_GRANT_REFRESH_TOKEN) == 0) {
            json_error(w, 400, "unauthorized_client", "This client may not use the refresh_token grant");
            goto out;
        }
        if (rt == NULL) {
            json_error(w, 400, "invalid_request", "Missing parameter refresh_token");
            goto out;
        }
        in.grant = SAM_GRANT_REFRESH;
        in.refresh = rt;
    } else if (strcmp(gt, "client_credentials") == 0) {
        const char *scope = web_form_get(&f, "scope");
        if ((client->grants & STOR_GRANT_CLIENT_CREDENTIALS) == 0) {
            json_error(w, 400, "unauthorized_client", "This client may not use the client_credentials grant");
            goto out;
        }
        if (scope != NULL && strcmp(scope, "service") != 0) {
            json_error(w, 400, "invalid_scope", "client_credentials is for the service scope only");
            goto out;
        }
        in.grant = SAM_GRANT_CLIENT_CREDENTIALS;
    } else {
        json_error(w, 400, "unsupported_grant_type", "Invalid parameter grant_type");
        goto out;
    }
    /* csc-sam authenticates the client again and runs the grant: the code or refresh token is spent there. */
    rc = csc_sam_token(w->c, &in, t);
    if (rc == OAUTH_OK)
        token_reply(w, t, &reply);
    else if (rc == CSC_TOKEN_CLIENT_REFUSED)
        client_refused(w);
    else
        token_error(w, rc);
out:
    web_buf_free(&reply);
    web_form_free(&f);
    OPENSSL_cleanse(&cc, sizeof(cc));
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
    free(client);
}

/* ---- POST /oauth2/revoke ---------------------------------------------------------------- */

void web_revoke_post(web_t *w)
{
    web_form_t f;
    client_cred_t cc;
    stor_client_t *client = calloc(1, sizeof(*client));
    if (client == NULL) {
        json_error(w, 503, "temporarily_unavailable", "Out of memory");
        return;
    }
    memset(&cc, 0, sizeof(cc));
    if (form_body(w, &f) != 0)
        goto out;
    if (client_authn(w, &f, client, &cc) != 0)
        goto out;
    const char *token = web_form_get(&f, "token"), *hint_s = web_form_get(&f, "token_type_hint");
    oauth_hint_t hint = OAUTH_HINT_NONE;
    if (token == NULL) {
        json_error(w, 400, "invalid_request", "Missing parameter token");
        goto out;
    }
    if (hint_s != NULL) {
        if (strcmp(hint_s, "access_token") == 0)
            hint = OAUTH_HINT_ACCESS;
        else if (strcmp(hint_s, "refresh_token") == 0)
            hint = OAUTH_HINT_REFRESH;
        else {
            json_error(w, 400, "unsupported_token_type", "Invalid parameter token_type_hint");
            goto out;
        }
    }
    (void)hint; /* checked, not needed: one table holds both kinds (RFC 7009 2.1) */
    /* csc-sam authenticates the client again and revokes (SAM_OP_REVOKE). */
    int rc = csc_sam_revoke(w->c, NULL, NULL, cc.id, cc.secret, token);
    if (rc == OAUTH_OK || rc == OAUTH_ERR_INVALID)
        /* RFC 7009 sec. 2.2: 200 (unknown tokens are no error); oauth_revoke_status = 204 for clients that
         * follow the CSC text literally. Either way the body is empty. */
        w->reply->status = w->c->cfg.oauth_revoke_status == 204 ? 204 : 200;
    else if (rc == CSC_TOKEN_CLIENT_REFUSED)
        client_refused(w);
    else
        json_error(w, 503, "temporarily_unavailable", "The service is temporarily unavailable");
out:
    web_form_free(&f);
    OPENSSL_cleanse(&cc, sizeof(cc));
    free(client);
}

/* ---- POST /oauth2/pushed_authorize ------------------------------------------------------ */

void web_par_post(web_t *w)
{
    web_form_t f;
    stor_client_t *client = calloc(1, sizeof(*client));
    oauth_authz_request_t *req = calloc(1, sizeof(*req));
    authz_err_t e = {0};
    const char *problem = NULL;
    char uri[128];
    unsigned expires_in = 0;

    if (client == NULL || req == NULL) {
        json_error(w, 503, "temporarily_unavailable", "Out of memory");
        goto out_nofree;
    }
    if (form_body(w, &f) != 0)
        goto out_nofree;
    if (client_authn(w, &f, client, NULL) != 0)
        goto out;
    if (web_form_get(&f, "request_uri") != NULL) {
        json_error(w, 400, "invalid_request", "request_uri is not allowed in a pushed request");
        goto out;
    }
    stor_client_t *check = calloc(1, sizeof(*check));
    int crc = check != NULL ? web_authz_client(w, &f, check, req, &problem) : -1;
    free(check);
    if (crc != 0) {
        json_error(w, 400, "invalid_request", problem ? "Invalid parameter redirect_uri" : "Out of memory");
        goto out;
    }
    if (strcmp(req->client_id, client->id) != 0) {
        json_error(w, 400, "invalid_request", "client_id does not match the authenticated client");
        goto out;
    }
    if (web_authz_parse(w, &f, client, req, &e) != 0) {
        json_error(w, 400, e.error, e.desc);
        goto out;
    }
    int rc = oauth_par_put(w->c->oauth, req, uri, &expires_in);
    if (rc == OAUTH_ERR_FULL) {
        json_error(w, 503, "temporarily_unavailable", "Too many pushed requests; try again shortly");
        goto out;
    }
    if (rc != OAUTH_OK) { /* the request is kept in storage (any node uses it): out of reach or failing */
        json_error(w, 503, "temporarily_unavailable", "The request cannot be kept now; try again shortly");
        goto out;
    }
    web_buf_t b;
    web_buf_init(&b, 512);
    web_buf_printf(&b, "{\"request_uri\":\"%s\",\"expires_in\":%u}", uri, expires_in);
    w->reply->status = 201;
    web_buf_to_reply(&b, w->reply);
out:
    web_form_free(&f);
out_nofree:
    free(client);
    free(req);
}

/* ---- metadata (RFC 8414) ----------------------------------------------------------------- */

void web_metadata(web_t *w)
{
    const char *base = w->c->cfg.public_url;
    web_buf_t b;
    web_buf_init(&b, 4096);
    web_buf_printf(&b, "{\"issuer\":\"%s\",", base);
    web_buf_printf(&b, "\"authorization_endpoint\":\"%s/oauth2/authorize\",", base);
    web_buf_printf(&b, "\"token_endpoint\":\"%s/oauth2/token\",", base);
    web_buf_printf(&b, "\"pushed_authorization_request_endpoint\":\"%s/oauth2/pushed_authorize\",", base);
    web_buf_printf(&b, "\"revocation_endpoint\":\"%s/oauth2/revoke\",", base);
    web_buf_puts(&b, "\"response_types_supported\":[\"code\"],"
                     "\"response_modes_supported\":[\"query\"],"
                     "\"grant_types_supported\":[\"authorization_code\",\"refresh_token\",\"client_credentials\"],"
                     "\"code_challenge_methods_supported\":[\"S256\"],"
                     "\"token_endpoint_auth_methods_supported\":[\"client_secret_basic\",\"client_secret_post\"],"
                     "\"revocation_endpoint_auth_methods_supported\":[\"client_secret_basic\",\"client_secret_post\"],"
                     "\"scopes_supported\":[\"service\",\"credential\"],"
                     "\"authorization_details_types_supported\":[\"credential\",\"" RAR_TYPE_URI "\"],"
                     "\"require_pushed_authorization_requests\":false}");
    w->reply->status = 200;
    web_buf_to_reply(&b, w->reply);
}

