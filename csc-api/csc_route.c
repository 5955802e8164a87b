/*
 * csc_route.c - the top of csc-api: the service's start and stop (csc_new, csc_free) and the request dispatcher
 * (csc_handle: the OAuth pages and endpoints, /approve and the logo go to web/, the CSC API methods through the
 * routes table; the path tests, the bearer token, the busy reply).
 *
 * Layering: this is the only file outside web/ that includes web/web.h, and nothing web/ calls is defined here.
 * web/ sits on csc_int.h (csc_core.c, csc_req.c, the JSON helpers ...), like the CSC API methods; this file sits
 * on both. No file below calls up into it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "csc_int.h"
#include "web/web.h"

typedef int (*csc_method_fn)(csc_req_t *r);

enum { AUTHZ_NONE = 0, AUTHZ_BEARER = 1 };
/* Which tokens a method takes: any bearer, a user's service token, or also a credential-scope token. */
enum { TOK_ANY = 0, TOK_USER = 1, TOK_USER_OR_CRED = 2 };

enum { V2 = 1, V1 = 2, V12 = 3 };

typedef struct route {
    const char *name;          /* method name after /csc/v2/ or /csc/v1/ */
    csc_method_fn fn;          /* NULL: a CSC method this server does not implement (501) */
    int authz;
    int tokens;
    int versions;              /* V2, V1 or both: v1.0.4.0 clients share the implementation */
    int cred_ahead;            /* 1: the body's credentialID is read with the token (csc_req_t.cred_read) */
} route_t;

static const route_t routes[] = {
    {"info", csc_m_info, AUTHZ_NONE, TOK_ANY, V12, 0},
    {"auth/login", csc_m_login, AUTHZ_NONE, TOK_ANY, V12, 0},
    {"auth/revoke", csc_m_revoke, AUTHZ_BEARER, TOK_ANY, V12, 0},
    {"credentials/list", csc_m_cred_list, AUTHZ_BEARER, TOK_USER, V12, 0},
    {"credentials/info", csc_m_cred_info, AUTHZ_BEARER, TOK_USER_OR_CRED, V12, 0},
    {"credentials/authorize", csc_m_authorize, AUTHZ_BEARER, TOK_USER, V12, 0},
    {"credentials/extendTransaction", csc_m_extend, AUTHZ_BEARER, TOK_USER, V12, 0},
    {"signatures/signHash", csc_m_sign_hash, AUTHZ_BEARER, TOK_USER_OR_CRED, V12, 1},
    /* getChallenge and v1 sendOTP (the trigger of online OTPs) answer 501 unless otp_sender is configured;
     * timestamp answers 501 unless a TSA is configured (tsa_credential). */
    {"credentials/sendOTP", csc_m_send_otp, AUTHZ_BEARER, TOK_USER, V1, 0},
    {"credentials/authorizeCheck", csc_m_authorize_check, AUTHZ_BEARER, TOK_USER, V2, 0},
    {"credentials/getChallenge", csc_m_get_challenge, AUTHZ_BEARER, TOK_USER, V2, 0},
    {"signatures/signDoc", csc_m_sign_doc, AUTHZ_BEARER, TOK_USER_OR_CRED, V2, 0},
    {"signatures/timestamp", csc_m_timestamp, AUTHZ_BEARER, TOK_ANY, V12, 0},
    {"signatures/signPolling", csc_m_sign_polling, AUTHZ_BEARER, TOK_USER_OR_CRED, V2, 0},
};

#define API_PREFIX "/csc/v2/"
#define API_PREFIX_V1 "/csc/v1/"

int csc_new(const csc_config_t *cfg, stor_env_t *stor, oauth_t *oauth, sam_client_t *sam, csc_t **out)
{
    *out = NULL;
    if (cfg->max_hashes == 0 || cfg->max_hashes > STOR_DIGESTS_MAX) {
        fprintf(stderr, "csc: max_hashes must be 1..%d\n", STOR_DIGESTS_MAX);
        return -1;
    }
    if (cfg->max_depth < 4 || cfg->max_depth > 64 || cfg->max_body < 1024) {
        fprintf(stderr, "csc: max_depth must be 4..64 and max_body at least 1024\n");
        return -1;
    }
    csc_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    c->cfg = *cfg;
    c->stor = stor;
    c->oauth = oauth;
    c->sam = sam;
    if (cfg->crl_dir != NULL && cfg->crl_dir[0] != '\0') {
        char err[512];
        int rc = pki_crl_new(cfg->crl_dir, cfg->trust_anchors, cfg->crl_allow_stale, cfg->crl_require, &c->crl, err,
                             sizeof(err));
        if (rc != PKI_OK) {
            if (rc == PKI_ERR_ANCHORS)
                fprintf(stderr, "crl_dir needs trust_anchors (PEM CA certificates that issue the CRLs): %s\n", err);
            else
                fprintf(stderr, "crl_dir %s\n", err);
            csc_free(c);
            return -1;
        }
        if (pki_x509_cache_new(128, &c->certs) != PKI_OK) {
            csc_free(c);
            return -1;
        }
    }
    if (csc_rcache_new(cfg->read_cache_ms, &c->rcache) != 0 || csc_sender_init(c) != 0 || csc_tsa_open(c) != 0 ||
        web_logo_init(c) != 0 || csc_info_build(c) != 0 || csc_async_start(c) != 0) {
        csc_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void csc_free(csc_t *c)
{
    if (c == NULL)
        return;
    csc_async_stop(c); /* jobs still running sign through the CRL store (the server stopped its periodic tasks) */
    pki_crl_free(c->crl);
    pki_x509_cache_free(c->certs);
    csc_rcache_free(c->rcache);
    free(c->info_body);
    free(c->info_v1_body);
    free(c->logo);
    free(c);
}

static int has_prefix(const char *path, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(path, prefix, n) == 0;
}

int csc_is_api_path(const char *path, size_t len)
{
    return has_prefix(path, len, API_PREFIX) || has_prefix(path, len, API_PREFIX_V1) || web_oauth_is_path(path, len) ||
           web_approve_is_path(path, len) || web_enroll_is_path(path, len) || web_logo_is_path(path, len);
}

/* After the version prefix: the methods that verify a password or a PIN. */
static const char *const secret_methods[] = {"auth/login", "credentials/authorize"};

static int is_page_form(const char *path, size_t len)
{
    static const char authorize[] = "/oauth2/authorize";
    return (len == sizeof(authorize) - 1 && memcmp(path, authorize, len) == 0) || web_approve_is_path(path, len) ||
           web_enroll_is_path(path, len);
}

/* /metrics's request kinds (csc_metric_method): the routes by name, then these. The OAuth endpoints that answer
 * JSON are named; the HTML pages (sign-in and consent, /approve, /account, /enroll) and the logo are one kind. */
static const char *const metric_kinds[] = {"oauth2/token", "oauth2/revoke", "oauth2/pushed_authorize",
                                           "oauth2/metadata", "page", "other"};
enum { KIND_TOKEN, KIND_REVOKE, KIND_PAR, KIND_METADATA, KIND_PAGE, KIND_OTHER };

size_t csc_metric_methods(void)
{
    return CSC_ARRAY_SIZE(routes) + CSC_ARRAY_SIZE(metric_kinds);
}

const char *csc_metric_method_name(size_t i)
{
    if (i < CSC_ARRAY_SIZE(routes))
        return routes[i].name;
    i -= CSC_ARRAY_SIZE(routes);
    return metric_kinds[i < CSC_ARRAY_SIZE(metric_kinds) ? i : KIND_OTHER];
}

static int is(const char *path, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(path, want, len) == 0;
}

size_t csc_metric_method(const char *path, size_t len)
{
    size_t extra = CSC_ARRAY_SIZE(routes);
    if (has_prefix(path, len, API_PREFIX) || has_prefix(path, len, API_PREFIX_V1)) {
        path += sizeof(API_PREFIX) - 1; /* both prefixes have the same length */
        len -= sizeof(API_PREFIX) - 1;
        for (size_t i = 0; i < CSC_ARRAY_SIZE(routes); i++)
            if (is(path, len, routes[i].name))
                return i;
        return extra + KIND_OTHER;
    }
    if (is(path, len, "/oauth2/token"))
        return extra + KIND_TOKEN;
    if (is(path, len, "/oauth2/revoke"))
        return extra + KIND_REVOKE;
    if (is(path, len, "/oauth2/pushed_authorize"))
        return extra + KIND_PAR;
    if (is(path, len, "/.well-known/oauth-authorization-server"))
        return extra + KIND_METADATA;
    if (web_oauth_is_path(path, len) || web_approve_is_path(path, len) || web_enroll_is_path(path, len) ||
        web_logo_is_path(path, len))
        return extra + KIND_PAGE;
    return extra + KIND_OTHER;
}

int csc_checks_secret(const char *method, size_t method_len, const char *path, size_t path_len)
{
    if (method_len != 4 || memcmp(method, "POST", 4) != 0)
        return 0;
    if (has_prefix(path, path_len, API_PREFIX) || has_prefix(path, path_len, API_PREFIX_V1)) {
        path += sizeof(API_PREFIX) - 1; /* both prefixes have the same length */
        path_len -= sizeof(API_PREFIX) - 1;
        for (size_t i = 0; i < CSC_ARRAY_SIZE(secret_methods); i++)
            if (strlen(secret_methods[i]) == path_len && memcmp(secret_methods[i], path, path_len) == 0)
                return 1;
        return 0;
    }
    /* The sign-in, consent and approval forms post to these. */
    return is_page_form(path, path_len);
}

void csc_reply_busy(csc_t *c, const csc_call_t *call, csc_reply_t *reply)
{
    memset(reply, 0, sizeof(*reply));
    if (is_page_form(call->path, call->path_len)) {
        web_t w;
        web_init(&w, c, call, reply);
        web_busy_page(&w, NULL);
    } else {
        csc_reply_error(reply, 503, "temporarily_unavailable", "The service is overloaded; try again later");
    }
    reply->retry_after = CSC_BUSY_RETRY_AFTER;
}

/* "Bearer <token>": scheme case-insensitive (RFC 7235), token68 without spaces. */
static int parse_bearer(csc_req_t *r, const char **tok, size_t *tok_len)
{
    const csc_call_t *call = r->call;
    if (call->authorization == NULL)
        return csc_fail(r, 401, "invalid_request", "Missing authorization header");
    const char *p = call->authorization;
    size_t n = call->authorization_len;
    if (n < 7 || strncasecmp(p, "Bearer ", 7) != 0)
        return csc_bad(r, "Malformed authorization header.");
    p += 7;
    n -= 7;
    while (n > 0 && *p == ' ') {
        p++;
        n--;
    }
    if (n == 0 || n > 512)
        return csc_bad(r, "Malformed authorization header.");
    for (size_t i = 0; i < n; i++)
        if (p[i] <= ' ' || p[i] > '~')
            return csc_bad(r, "Malformed authorization header.");
    *tok = p;
    *tok_len = n;
    return 0;
}

/* signHash: the token and the credential of credentialID in one read txn, the credential's row read ahead (the token's
 * get takes it along: one round trip for both on PostgreSQL). */
typedef struct auth_read {
    csc_req_t *r;
    const char *tok;
    size_t len;
    int ran, orc;
} auth_read_t;

static int auth_read_fn(stor_txn_t *t, void *arg)
{
    auth_read_t *a = arg;
    csc_req_t *r = a->r;
    a->ran = 1;
    (void)stor_txn_cred_prefetch(t, r->cred_read_id); /* read ahead only: a malformed id reads nothing */
    a->orc = oauth_token_check_txn(r->csc->oauth, t, a->tok, a->len, NULL, &r->principal);
    if (a->orc == OAUTH_OK)
        r->cred_read_rc = stor_txn_cred_get(t, r->cred_read_id, r->cred_read);
    return 0;
}

/* oauth_token_check, with the credential of credentialID read along when the route asks for it and the body names
 * one (else, or without memory for it, csc_load_cred reads it later). Both come from signHash's read cache when it
 * has them and use_cache is set (r->cached); rows read with use_cache set may go into it (r->keyed: the method calls
 * csc_rcache_keep once they passed its checks). */
static int token_check(csc_req_t *r, const char *tok, size_t len, int cred_ahead, int use_cache)
{
    const char *id = NULL;
    if (!cred_ahead || csc_get_string(r, "credentialID", &id, STOR_NAME_MAX) < 0 || id == NULL ||
        (r->cred_read == NULL && (r->cred_read = stor_rec_new(sizeof(*r->cred_read))) == NULL))
        return oauth_token_check(r->csc->oauth, tok, len, &r->principal);
    snprintf(r->cred_read_id, sizeof(r->cred_read_id), "%s", id);
    r->keyed = r->csc->rcache != NULL && csc_rcache_key(tok, len, r->tok_hash) == 0;
    if (r->keyed && use_cache &&
        csc_rcache_get(r->csc->rcache, r->tok_hash, r->cred_read_id, &r->principal, r->cred_read)) {
        r->cred_read_rc = STOR_OK;
        r->cached = true;
        csc_stats_rcache(r->csc, CSC_RCACHE_HIT);
        return OAUTH_OK;
    }
    auth_read_t a = {.r = r, .tok = tok, .len = len};
    int rc = stor_read(r->csc->stor, auth_read_fn, &a);
    rc = a.ran ? a.orc : oauth_rc(rc);
    if (rc != OAUTH_OK) { /* nothing was read for a request that ends here */
        stor_rec_free(r->cred_read, sizeof(*r->cred_read));
        r->cred_read = NULL;
    }
    r->keyed = r->keyed && use_cache && rc == OAUTH_OK && r->cred_read_rc == STOR_OK;
    return rc;
}

void csc_rcache_keep(csc_req_t *r)
{
    if (!r->keyed || r->cred_read == NULL)
        return;
    csc_rcache_put(r->csc->rcache, r->tok_hash, r->cred_read_id, &r->principal, r->cred_read);
    csc_stats_rcache(r->csc, CSC_RCACHE_MISS);
    r->keyed = false;
}

static int authenticate(csc_req_t *r, int cred_ahead, int use_cache)
{
    const char *tok = NULL;
    size_t len = 0;
    if (parse_bearer(r, &tok, &len) != 0)
        return -1;
    int rc = token_check(r, tok, len, cred_ahead, use_cache);
    r->have_principal = rc == OAUTH_OK;
    return rc == OAUTH_OK ? 0 : csc_fail_oauth(r, CSC_ABOUT_TOKEN, rc, NULL);
}

int csc_authenticate_again(csc_req_t *r)
{
    csc_rcache_drop(r->csc->rcache, r->tok_hash);
    csc_stats_rcache(r->csc, CSC_RCACHE_RECHECK);
    r->cached = false;
    return authenticate(r, 1, 0);
}

static const route_t *find_route(const char *path, size_t len, bool *v1)
{
    int version;
    if (has_prefix(path, len, API_PREFIX))
        version = V2;
    else if (has_prefix(path, len, API_PREFIX_V1))
        version = V1;
    else
        return NULL;
    *v1 = version == V1;
    path += sizeof(API_PREFIX) - 1; /* both prefixes have the same length */
    len -= sizeof(API_PREFIX) - 1;
    for (size_t i = 0; i < CSC_ARRAY_SIZE(routes); i++)
        if ((routes[i].versions & version) && strlen(routes[i].name) == len && memcmp(routes[i].name, path, len) == 0)
            return &routes[i];
    return NULL;
}

static int dispatch(csc_req_t *r)
{
    const csc_call_t *call = r->call;
    const route_t *rt = find_route(call->path, call->path_len, &r->v1);

    if (rt == NULL)
        return csc_fail(r, 404, "invalid_request", "Unknown API method");
    if (rt->fn == NULL || !csc_method_offered(r->csc, rt->name))
        return csc_fail(r, 501, "not_implemented", "This method is not implemented by this service");
    if (call->http_method_len != 4 || memcmp(call->http_method, "POST", 4) != 0)
        return csc_fail(r, 405, "invalid_request", "API methods are called with POST");
    if (csc_json_parse(r, call->body, call->body_len) != 0)
        return -1;
    if (rt->authz == AUTHZ_BEARER && authenticate(r, rt->cred_ahead, 1) != 0)
        return -1;
    if (r->have_principal && rt->tokens != TOK_ANY) {
        /* RFC 6750 sec. 3.1: a valid token whose scope does not cover the call. */
        if (r->principal.user[0] == '\0')
            return csc_fail(r, 403, "insufficient_scope", "This token does not act for a user");
        if (r->principal.scope == STOR_SCOPE_CREDENTIAL && rt->tokens != TOK_USER_OR_CRED)
            return csc_fail(r, 403, "insufficient_scope", "A credential-scope token only serves its credential");
    }
    return rt->fn(r);
}

/* A 503 (storage refusing writes, e.g. a full map; a busy resource) says when to come back. */
static void retry_later(csc_reply_t *reply)
{
    if (reply->status == 503 && reply->retry_after == 0)
        reply->retry_after = CSC_RETRY_AFTER;
}

void csc_handle(csc_t *c, const csc_call_t *call, csc_reply_t *reply)
{
    csc_req_t r;
    memset(&r, 0, sizeof(r));
    memset(reply, 0, sizeof(*reply));
    r.csc = c;
    r.call = call;
    r.status = 200;
    if (web_oauth_is_path(call->path, call->path_len)) {
        web_oauth_handle(c, call, reply);
        retry_later(reply);
        return;
    }
    if (web_approve_is_path(call->path, call->path_len)) {
        web_approve_handle(c, call, reply);
        retry_later(reply);
        return;
    }
    if (web_enroll_is_path(call->path, call->path_len)) {
        web_enroll_handle(c, call, reply);
        retry_later(reply);
        return;
    }
    if (web_logo_is_path(call->path, call->path_len)) {
        web_logo_handle(c, call, reply);
        return;
    }
    r.gen = csc_gen_new();

    if (dispatch(&r) != 0) {
        csc_reply_error(reply, r.err.status, r.err.error, r.err.description);
        reply->retry_after = r.err.retry_after;
    } else if (r.status == 204) {
        reply->status = 204;
    } else {
        const unsigned char *buf = (const unsigned char *)r.raw;
        size_t len = r.raw_len;
        if (r.raw == NULL && yajl_gen_get_buf(r.gen, &buf, &len) != yajl_gen_status_ok) {
            csc_reply_error(reply, 500, "server_error", "Could not encode the response");
        } else {
            reply->status = r.status;
            reply->body = malloc(len);
            if (reply->body == NULL)
                abort();
            memcpy(reply->body, buf, len);
            reply->body_len = len;
        }
    }
    if (r.have_principal)
        snprintf(reply->user, sizeof(reply->user), "%s", r.principal.user);
    yajl_gen_clear(r.gen);
    yajl_gen_free(r.gen);
    csc_json_free(r.root);
    OPENSSL_cleanse(r.bearer, sizeof(r.bearer));
    stor_rec_free(r.cred_read, sizeof(*r.cred_read));
    retry_later(reply);
}

