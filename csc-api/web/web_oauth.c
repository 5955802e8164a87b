/*
 * web/web_oauth.c - the OAuth 2.0 authorization server (CSC API v2.0.0.2 sec. 8.4): its pages and its dispatch.
 *   GET  /oauth2/authorize          login page (password + TOTP), then consent for the credential scope
 *   POST /oauth2/authorize          the pages' forms (CSRF-protected; before the login a signed ticket cookie and a
 *                                   form token carrying the request, nothing kept; then a cookie-bound session)
 * The JSON endpoints (/oauth2/token, /oauth2/revoke, /oauth2/pushed_authorize, the RFC 8414 metadata) are in
 * web_token.c; web_oauth_handle below routes to both. The authorization request's parser (web_authz_parse) is
 * shared with PAR.
 * The logic (codes, sessions, tokens, clients) is oauth/'s; this file parses, validates and renders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include "web.h"

#define OAUTH_PREFIX "/oauth2/"
#define WELL_KNOWN "/.well-known/oauth-authorization-server"
/* __Host-: only ever set by this origin over TLS, for the whole host (no Domain, Path=/). */
#define COOKIE "__Host-csc_oauth"
#define PAGE_MAX (256 * 1024)
/* Largest query of GET /oauth2/authorize: 1,024 SHA-512 digests in hashes fit; it travels back in the sign-in
 * page's form token, so it is bounded by what a ticket carries. */
#define AUTHZ_QUERY_MAX ((size_t)OAUTH_TICKET_PAYLOAD_MAX)


int web_oauth_is_path(const char *path, size_t len)
{
    return (len > sizeof(OAUTH_PREFIX) - 1 && memcmp(path, OAUTH_PREFIX, sizeof(OAUTH_PREFIX) - 1) == 0) ||
           (len == sizeof(WELL_KNOWN) - 1 && memcmp(path, WELL_KNOWN, len) == 0);
}

static int is_path(const web_t *w, const char *p)
{
    return w->call->path_len == strlen(p) && memcmp(w->call->path, p, w->call->path_len) == 0;
}

static int is_method(const web_t *w, const char *m)
{
    return w->call->http_method_len == strlen(m) && memcmp(w->call->http_method, m, w->call->http_method_len) == 0;
}

/* ---- replies -------------------------------------------------------------------- */

static void json_error(web_t *w, int status, const char *error, const char *desc)
{
    csc_reply_error(w->reply, status, error, desc);
}

static void page(web_t *w, int status, const char *title, web_buf_t *body)
{
    web_page(w, status, title, body);
}

/* An error shown to the person (no redirect: the client or its redirect URI cannot be trusted); title and message
 * are keys of the catalogues. */
static void error_page(web_t *w, int status, const char *title, const char *message)
{
    web_buf_t b;
    web_buf_init(&b, PAGE_MAX);
    web_buf_el(&b, "<p class=\"err\" role=\"alert\">", WEB_T(w, message), "</p>");
    web_buf_el(&b, "<p>", WEB_T(w, "oauth.close_and_restart"), "</p>");
    page(w, status, WEB_T(w, title), &b);
    web_buf_free(&b);
}

/* Too many password/PIN checks at once (OAUTH_ERR_BUSY): nothing was checked, the session stays. */
static void busy_page(web_t *w)
{
    web_buf_t b;
    web_buf_init(&b, 1024);
    web_buf_el(&b, "<p>", WEB_T(w, "oauth.close_and_restart"), "</p>");
    web_busy_page(w, b.p);
    web_buf_free(&b);
}

static void clear_cookie(web_t *w)
{
    free(w->reply->set_cookie);
    w->reply->set_cookie = strdup(COOKIE "=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
}

/* 302 to the client's redirect URI with code/state or error/error_description/state. */
static void redirect(web_t *w, const oauth_authz_request_t *req, const char *code, const char *error, const char *desc)
{
    web_buf_t b;
    web_buf_init(&b, STOR_URI_MAX + 1024);
    web_buf_puts(&b, req->redirect_uri);
    web_buf_puts(&b, strchr(req->redirect_uri, '?') != NULL ? "&" : "?");
    if (code != NULL) {
        web_buf_puts(&b, "code=");
        web_buf_urlenc(&b, code);
    } else {
        web_buf_puts(&b, "error=");
        web_buf_urlenc(&b, error);
        web_buf_puts(&b, "&error_description=");
        web_buf_urlenc(&b, desc);
    }
    if (req->state[0] != '\0') {
        web_buf_puts(&b, "&state=");
        web_buf_urlenc(&b, req->state);
    }
    if (b.failed) {
        web_buf_free(&b);
        error_page(w, 400, "t.refused", "m.redirect_address_too_long");
        return;
    }
    w->reply->status = 302;
    w->reply->location = b.p;
    b.p = NULL;
    web_buf_free(&b);
}

/* ---- the authorization request ------------------------------------------------------ */


static int bad(authz_err_t *e, const char *error, const char *desc)
{
    e->error = error;
    e->desc = desc;
    return -1;
}

static int copy_str(char *dst, size_t sz, const char *src)
{
    if (src == NULL)
        return 0;
    size_t n = strlen(src);
    if (n >= sz)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

static int parse_uint(const char *s, uint32_t *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9' || strlen(s) > 9)
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0')
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int add_digest(oauth_authz_request_t *req, const char *b64, size_t len, const char *label)
{
    uint8_t d[STOR_DIGEST_LEN_MAX + 3];
    long n = len <= 4 * sizeof(d) / 3 ? csc_b64_decode(b64, len, d, sizeof(d)) : -1;
    if (n <= 0 || n > STOR_DIGEST_LEN_MAX || req->n_digests == STOR_DIGESTS_MAX)
        return -1;
    if (req->n_digests > 0 && (uint32_t)n != req->digest_len)
        return -1;
    req->digest_len = (uint32_t)n;
    memcpy(req->digests[req->n_digests], d, (size_t)n);
    if (label != NULL && req->n_digests < 16)
        snprintf(req->labels[req->n_digests], sizeof(req->labels[0]), "%s", label);
    req->n_digests++;
    return 0;
}

static int check_hash_alg(oauth_authz_request_t *req, authz_err_t *e)
{
    if (req->n_digests == 0)
        return 0;
    const csc_hash_alg_t *alg = csc_hash_by_oid(req->hash_alg);
    if (alg == NULL)
        return bad(e, "invalid_request", "Invalid parameter hashAlgorithmOID");
    if (alg->len != req->digest_len)
        return bad(e, "invalid_request", "Invalid digest value length");
    return 0;
}

static const char *jstr(yajl_val o, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(o, path, yajl_t_string);
    return v != NULL ? v->u.string : NULL;
}

/* ---- authorization_details (RFC 9396) -------------------------------------------------------- */


static int is_string_array(yajl_val v)
{
    if (!YAJL_IS_ARRAY(v))
        return 0;
    for (size_t i = 0; i < v->u.array.len; i++)
        if (!YAJL_IS_STRING(v->u.array.values[i]))
            return 0;
    return 1;
}

/* One documentDigests entry: an object whose hash (required) and label are strings. */
static int rar_digest_ok(yajl_val d)
{
    if (!YAJL_IS_OBJECT(d))
        return 0;
    int has_hash = 0;
    for (size_t i = 0; i < d->u.object.len; i++) {
        const char *k = d->u.object.keys[i];
        yajl_val m = d->u.object.values[i];
        if (strcmp(k, "hash") == 0 && !YAJL_IS_STRING(m))
            return 0;
        if (strcmp(k, "label") == 0 && !YAJL_IS_STRING(m) && !YAJL_IS_NULL(m))
            return 0;
        has_hash |= strcmp(k, "hash") == 0;
    }
    return has_hash;
}

/*
 * Type and member types of an authorization_details object (RFC 9396 sec. 2 and 5): the type must be one we
 * serve, and each member we know (ours and RFC 9396's common ones) must have its type. Unknown members are
 * left alone (they are echoed as approved). NULL or a static description of the first problem.
 */
static const char *rar_object_problem(yajl_val o)
{
    static const char *const strings[] = {"type", "credentialID", "signatureQualifier", "hashAlgorithmOID",
                                          "identifier", "description"};
    static const char *const string_arrays[] = {"locations", "actions", "datatypes", "privileges"};
    const char *type = NULL;

    if (!YAJL_IS_OBJECT(o))
        return "Each authorization_details entry must be an object";
    for (size_t i = 0; i < o->u.object.len; i++) {
        const char *k = o->u.object.keys[i];
        yajl_val m = o->u.object.values[i];
        for (size_t s = 0; s < sizeof(strings) / sizeof(strings[0]); s++)
            if (strcmp(k, strings[s]) == 0 && !YAJL_IS_STRING(m))
                return "An authorization_details member has the wrong type (a string is expected)";
        for (size_t s = 0; s < sizeof(string_arrays) / sizeof(string_arrays[0]); s++)
            if (strcmp(k, string_arrays[s]) == 0 && !is_string_array(m))
                return "An authorization_details member has the wrong type (an array of strings is expected)";
        if (strcmp(k, "numSignatures") == 0 && !YAJL_IS_INTEGER(m) && !YAJL_IS_NULL(m))
            return "authorization_details numSignatures must be an integer";
        if (strcmp(k, "documentDigests") == 0 && !YAJL_IS_NULL(m)) {
            if (!YAJL_IS_ARRAY(m))
                return "authorization_details documentDigests must be an array";
            for (size_t d = 0; d < m->u.array.len; d++)
                if (!rar_digest_ok(m->u.array.values[d]))
                    return "authorization_details documentDigests entries must be objects with a string hash";
        }
        if (strcmp(k, "type") == 0)
            type = m->u.string;
    }
    if (type == NULL)
        return "authorization_details type is missing";
    if (strcmp(type, "credential") != 0 && strcmp(type, RAR_TYPE_URI) != 0)
        return "Unsupported authorization_details type";
    return NULL;
}

/* Parse and check authorization_details: *out is the JSON array of one object of a type we serve, members well
 * typed. -1 with e set (invalid_request when it is no JSON array of objects, else invalid_authorization_details). */
int web_rar_parse(const char *json, yajl_val *out, authz_err_t *e)
{
    const char *problem;
    *out = NULL;
    if (strlen(json) > STOR_AUTHZ_DETAILS_MAX)
        return bad(e, "invalid_request", "authorization_details too large");
    yajl_val v = csc_json_parse_text(json, strlen(json), 8);
    if (v == NULL || !YAJL_IS_ARRAY(v)) {
        if (v != NULL)
            yajl_tree_free(v);
        return bad(e, "invalid_request", "authorization_details must be a JSON array");
    }
    for (size_t i = 0; i < v->u.array.len; i++)
        if ((problem = rar_object_problem(v->u.array.values[i])) != NULL) {
            yajl_tree_free(v);
            return bad(e, RAR_ERR, problem);
        }
    if (v->u.array.len != 1) {
        yajl_tree_free(v);
        return bad(e, RAR_ERR, "authorization_details must hold exactly one credential object");
    }
    *out = v;
    return 0;
}

/* authorization_details (RFC 9396), one object of type credential (v2.0) or the 2025 URI type (v2.2). */
static int parse_rar(web_t *w, const char *json, oauth_authz_request_t *req, authz_err_t *e)
{
    int rc = -1;
    yajl_val v = NULL;
    if (web_rar_parse(json, &v, e) != 0)
        return -1;
    yajl_val o = v->u.array.values[0];
    const char *cred = jstr(o, "credentialID"), *alg = jstr(o, "hashAlgorithmOID");
    const char *qual = jstr(o, "signatureQualifier");
    if ((cred == NULL && qual == NULL) || copy_str(req->cred, sizeof(req->cred), cred) != 0 ||
        copy_str(req->signature_qualifier, sizeof(req->signature_qualifier), qual) != 0) {
        bad(e, RAR_ERR, "Missing parameter credentialID or signatureQualifier");
        goto out;
    }
    const char *dpath[] = {"documentDigests", NULL}, *npath[] = {"numSignatures", NULL};
    yajl_val docs = yajl_tree_get(o, dpath, yajl_t_any), num = yajl_tree_get(o, npath, yajl_t_any);
    if (docs != NULL && !YAJL_IS_NULL(docs)) {
        for (size_t i = 0; i < docs->u.array.len; i++) {
            yajl_val d = docs->u.array.values[i];
            const char *h = jstr(d, "hash");
            if (h == NULL || add_digest(req, h, strlen(h), jstr(d, "label")) != 0) {
                bad(e, "invalid_request", "Invalid parameter documentDigests");
                goto out;
            }
        }
    }
    if (req->n_digests > 0 && (alg == NULL || copy_str(req->hash_alg, sizeof(req->hash_alg), alg) != 0)) {
        bad(e, "invalid_request", "Missing parameter hashAlgorithmOID");
        goto out;
    }
    req->num_signatures = req->n_digests;
    if (num != NULL && !YAJL_IS_NULL(num)) {
        if (YAJL_GET_INTEGER(num) < 1 || YAJL_GET_INTEGER(num) > 1000000) {
            bad(e, "invalid_request", "Invalid parameter numSignatures");
            goto out;
        }
        req->num_signatures = (uint32_t)YAJL_GET_INTEGER(num);
    }
    if (req->num_signatures == 0) {
        bad(e, RAR_ERR, "authorization_details authorizes no signature");
        goto out;
    }
    snprintf(req->authz_details, sizeof(req->authz_details), "%s", json);
    req->scope = STOR_SCOPE_CREDENTIAL;
    rc = check_hash_alg(req, e);
out:
    yajl_tree_free(v);
    (void)w;
    return rc;
}

/* The classic scope=credential parameters (CSC API v2.0.0.2 sec. 8.4.2). */
static int parse_credential_params(const web_form_t *q, oauth_authz_request_t *req, authz_err_t *e)
{
    const char *cred = web_form_get(q, "credentialID"), *num = web_form_get(q, "numSignatures");
    const char *hashes = web_form_get(q, "hashes"), *alg = web_form_get(q, "hashAlgorithmOID");
    const char *qual = web_form_get(q, "signatureQualifier");
    if ((cred == NULL || cred[0] == '\0') && (qual == NULL || qual[0] == '\0'))
        return bad(e, "invalid_request", "Missing parameter credentialID or signatureQualifier");
    if (copy_str(req->cred, sizeof(req->cred), cred) != 0 ||
        copy_str(req->signature_qualifier, sizeof(req->signature_qualifier), qual) != 0)
        return bad(e, "invalid_request", "Invalid parameter credentialID or signatureQualifier");
    if (parse_uint(num, &req->num_signatures) != 0 || req->num_signatures < 1)
        return bad(e, "invalid_request", "Invalid parameter numSignatures");
    if (hashes != NULL && hashes[0] != '\0') {
        for (const char *p = hashes; *p;) {
            const char *comma = strchr(p, ',');
            size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
            if (add_digest(req, p, len, NULL) != 0)
                return bad(e, "invalid_request", "Invalid parameter hashes");
            p += len + (comma != NULL);
        }
        if (alg == NULL || copy_str(req->hash_alg, sizeof(req->hash_alg), alg) != 0)
            return bad(e, "invalid_request", "Missing parameter hashAlgorithmOID");
    }
    req->scope = STOR_SCOPE_CREDENTIAL;
    return check_hash_alg(req, e);
}

/* Everything but client_id / redirect_uri / request_uri, which the caller checked. */
int web_authz_parse(web_t *w, const web_form_t *q, const stor_client_t *client, oauth_authz_request_t *req,
                       authz_err_t *e)
{
    const char *rt = web_form_get(q, "response_type"), *cc = web_form_get(q, "code_challenge");
    const char *ccm = web_form_get(q, "code_challenge_method"), *scope = web_form_get(q, "scope");
    const char *rar = web_form_get(q, "authorization_details");

    if (copy_str(req->state, sizeof(req->state), web_form_get(q, "state")) != 0)
        return bad(e, "invalid_request", "state is too long");
    if (rt == NULL || strcmp(rt, "code") != 0)
        return bad(e, "unsupported_response_type", "response_type must be code");
    if (cc == NULL)
        return bad(e, "invalid_request", "code_challenge is required (PKCE)");
    if (ccm == NULL || strcmp(ccm, "S256") != 0)
        return bad(e, "invalid_request", "code_challenge_method must be S256");
    uint8_t ch[40];
    if (strlen(cc) != 43 || csc_b64_decode(cc, 43, ch, sizeof(ch)) != 32)
        return bad(e, "invalid_request", "Invalid parameter code_challenge");
    memcpy(req->challenge, ch, 32);
    if (copy_str(req->lang, sizeof(req->lang), web_form_get(q, "lang")) != 0 ||
        copy_str(req->description, sizeof(req->description), web_form_get(q, "description")) != 0)
        return bad(e, "invalid_request", "Invalid parameter lang or description");
    req->scope = STOR_SCOPE_SERVICE;
    if (rar != NULL) {
        if (scope != NULL && strcmp(scope, "credential") == 0)
            return bad(e, "invalid_request", "Use either authorization_details or scope=credential, not both");
        if (parse_rar(w, rar, req, e) != 0)
            return -1;
    } else if (scope == NULL || strcmp(scope, "service") == 0) {
        req->scope = STOR_SCOPE_SERVICE;
    } else if (strcmp(scope, "credential") == 0) {
        if (parse_credential_params(q, req, e) != 0)
            return -1;
    } else {
        return bad(e, "invalid_scope", "scope must be service or credential");
    }
    if ((client->scopes & (1u << req->scope)) == 0)
        return bad(e, "invalid_scope", "This client may not ask for that scope");
    if ((client->grants & STOR_GRANT_AUTHORIZATION_CODE) == 0)
        return bad(e, "unauthorized_client", "This client may not use the authorization code grant");
    return 0;
}

/* client_id + redirect_uri: errors here are shown, never redirected (RFC 6749 sec. 4.1.2.1). */
int web_authz_client(web_t *w, const web_form_t *q, stor_client_t *client, oauth_authz_request_t *req,
                          const char **problem)
{
    const char *id = web_form_get(q, "client_id"), *ru = web_form_get(q, "redirect_uri");
    if (id == NULL || strlen(id) > STOR_NAME_MAX || oauth_client_get(w->c->oauth, id, client) != OAUTH_OK) {
        *problem = "m.application_sent_here_not";
        return -1;
    }
    snprintf(req->client_id, sizeof(req->client_id), "%s", client->id);
    if (ru != NULL) {
        for (uint32_t i = 0; i < client->n_redirects; i++)
            if (strcmp(client->redirects[i], ru) == 0) {
                snprintf(req->redirect_uri, sizeof(req->redirect_uri), "%s", ru);
                req->redirect_given = 1;
                return 0;
            }
        *problem = "oauth.redirect_not_registered";
        return -1;
    }
    if (client->n_redirects != 1) {
        *problem = "oauth.redirect_missing";
        return -1;
    }
    snprintf(req->redirect_uri, sizeof(req->redirect_uri), "%s", client->redirects[0]);
    return 0;
}

/* ---- pages ------------------------------------------------------------------------- */

/* The error box (if any) and the opening of a form that posts back with the session's CSRF token. */
static void form_open(web_buf_t *b, const char *csrf, const char *error)
{
    if (error != NULL)
        web_buf_el(b, "<p class=\"err\" role=\"alert\" id=\"error\">", error, "</p>\n");
    web_buf_puts(b, "<form method=\"post\" action=\"/oauth2/authorize\" autocomplete=\"off\">\n"
                    "<input type=\"hidden\" name=\"csrf\" value=\"");
    web_buf_html(b, csrf);
    web_buf_puts(b, "\">\n");
}

/* "<strong>client</strong>" for the pages' sentences (HTML). */
static void client_html(web_buf_t *b, const stor_client_t *client)
{
    web_buf_el(b, "<strong>", client->name[0] ? client->name : client->id, "</strong>");
}

static void login_page(web_t *w, const oauth_authz_request_t *req, const char *csrf, const stor_client_t *client,
                       const char *error, const char *username)
{
    web_buf_t b, who;
    web_buf_init(&b, PAGE_MAX);
    web_buf_init(&who, 1024);
    client_html(&who, client);
    web_buf_puts(&b, "<p>");
    web_buf_say_html(&b, WEB_T(w, req->scope == STOR_SCOPE_CREDENTIAL ? "oauth.login_asks_credential"
                                                                      : "oauth.login_asks_service"),
                     who.p != NULL ? who.p : "");
    web_buf_puts(&b, "</p>\n");
    web_buf_free(&who);
    form_open(&b, csrf, error);
    web_buf_signin_fields(w, &b, username);
    web_buf_el(&b, "<button id=\"login\" name=\"action\" value=\"login\" type=\"submit\">", WEB_T(w, "common.sign_in"),
               "</button>");
    web_buf_el(&b, "<button id=\"cancel\" class=\"secondary\" name=\"action\" value=\"deny\" type=\"submit\" "
                   "formnovalidate>", WEB_T(w, "common.cancel"), "</button>\n</form>\n");
    page(w, 200, WEB_T(w, "common.sign_in"), &b);
    web_buf_free(&b);
}

static void consent_page(web_t *w, const oauth_session_view_t *v, const stor_client_t *client, const stor_cred_t *cred,
                         const char *error)
{
    const oauth_authz_request_t *req = &v->req;
    web_buf_t b, who, name;
    web_buf_init(&b, PAGE_MAX);
    web_buf_init(&who, 1024);
    web_buf_init(&name, 1024);
    web_buf_el(&name, "<strong>", v->user, "</strong>");
    client_html(&who, client);
    web_buf_puts(&b, "<p>");
    web_buf_say_html(&b, WEB_T(w, "consent.intro"), name.p != NULL ? name.p : "", who.p != NULL ? who.p : "");
    web_buf_free(&who);
    web_buf_free(&name);
    web_buf_el(&b, "</p>\n<table>\n<tr><th scope=\"row\">", WEB_T(w, "common.credential"), "</th><td id=\"credential\">");
    web_buf_html(&b, cred->id);
    if (cred->description[0]) {
        web_buf_puts(&b, "<br>");
        web_buf_html(&b, cred->description);
    }
    web_buf_el(&b, "</td></tr>\n<tr><th scope=\"row\">", WEB_T(w, "common.certificate_subject"), "</th><td id=\"subject\">");
    web_buf_subject(&b, cred);
    web_buf_el(&b, "</td></tr>\n<tr><th scope=\"row\">", WEB_T(w, "common.signatures"), "</th>");
    web_buf_printf(&b, "<td id=\"numSignatures\">%u</td></tr>\n", (unsigned)req->num_signatures);
    if (req->description[0]) {
        web_buf_el(&b, "<tr><th scope=\"row\">", WEB_T(w, "consent.purpose"), "</th><td>");
        web_buf_html(&b, req->description);
        web_buf_puts(&b, "</td></tr>\n");
    }
    /* How long what the person grants lasts: the credential-scope token and its SAD. */
    web_buf_el(&b, "<tr><th scope=\"row\">", WEB_T(w, "consent.valid_for"), "</th><td id=\"validity\">");
    char *dur = web_duration(w, oauth_config(w->c->oauth)->credential_token_ttl);
    web_buf_say(&b, WEB_T(w, "consent.validity"), dur);
    free(dur);
    web_buf_puts(&b, "</td></tr>\n");
    if (cred->pin_verifier_len > 0) {
        web_buf_el(&b, "<tr><th scope=\"row\">", WEB_T(w, "common.pin_attempts"), "</th><td id=\"pin-tries\">");
        web_buf_pin_tries(w, &b, cred);
        web_buf_puts(&b, "</td></tr>\n");
    }
    web_buf_puts(&b, "</table>\n");
    if (req->n_digests > 0)
        web_buf_digests(w, &b, req->hash_alg, &req->digests[0][0], sizeof(req->digests[0]), req->n_digests,
                        req->digest_len, req->labels, 16);
    else
        web_buf_el(&b, "<p>", WEB_T(w, "consent.any_document"), "</p>\n");
    form_open(&b, v->csrf, error);
    if (cred->pin_verifier_len > 0) {
        web_buf_el(&b, "<label for=\"pin\">", WEB_T(w, "common.pin_of_credential"), "</label>");
        web_buf_puts(&b, "<input id=\"pin\" name=\"pin\" type=\"password\" inputmode=\"numeric\" autocomplete=\"off\" "
                         "maxlength=\"32\" required>\n");
    }
    web_buf_el(&b, "<button id=\"approve\" name=\"action\" value=\"approve\" type=\"submit\">", WEB_T(w, "common.approve"),
               "</button>");
    web_buf_el(&b, "<button id=\"deny\" class=\"secondary\" name=\"action\" value=\"deny\" type=\"submit\" "
                   "formnovalidate>", WEB_T(w, "common.deny"), "</button>\n</form>\n");
    /* Shown only after a post: the language switch posts back (the session's form token) and shows it again. */
    w->switch_csrf = v->csrf;
    page(w, 200, WEB_T(w, "consent.title"), &b);
    web_buf_free(&b);
}

/* ---- GET /oauth2/authorize -------------------------------------------------------------- */

static void set_session_cookie(web_t *w, const char *sid)
{
    char buf[256];
    snprintf(buf, sizeof(buf), COOKIE "=%s; Path=/; HttpOnly; Secure; SameSite=Strict", sid);
    free(w->reply->set_cookie);
    w->reply->set_cookie = strdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
}

/* The request of the query (or of the pushed request it names, looked at, not used up). 0, or -1 with a page
 * or a redirect set. */
static int load_request(web_t *w, const web_form_t *q, stor_client_t *client, oauth_authz_request_t *req)
{
    const char *problem = NULL;
    authz_err_t e = {0};
    const char *request_uri = web_form_get(q, "request_uri");

    if (request_uri != NULL) {
        const char *id = web_form_get(q, "client_id");
        if (id == NULL || strlen(id) > STOR_NAME_MAX || oauth_client_get(w->c->oauth, id, client) != OAUTH_OK) {
            error_page(w, 400, "t.refused", "m.application_sent_here_not");
            return -1;
        }
        int rc = oauth_par_peek(w->c->oauth, id, request_uri, req);
        if (rc == OAUTH_ERR_UNAVAILABLE || rc == OAUTH_ERR_STORAGE) { /* kept in storage: not a verdict on it */
            error_page(w, 503, "t.later", "m.service_busy");
            return -1;
        }
        if (rc != OAUTH_OK) {
            error_page(w, 400, "t.refused", "m.pushed_authorization_request_unknown");
            return -1;
        }
        return 0;
    }
    if (web_authz_client(w, q, client, req, &problem) != 0) {
        error_page(w, 400, "t.refused", problem);
        return -1;
    }
    if (web_authz_parse(w, q, client, req, &e) != 0) {
        redirect(w, req, NULL, e.error, e.desc);
        return -1;
    }
    return 0;
}

/* The sign-in page of a visitor: the ticket cookie and a form token carrying the request (nothing kept). */
static void ticket_login_page(web_t *w, const char *ticket, const char *query, size_t query_len,
                              const oauth_authz_request_t *req, const stor_client_t *client, const char *error,
                              const char *username)
{
    char *form = NULL;
    if (oauth_ticket_form(w->c->oauth, "oauth", ticket, query, query_len, &form) != OAUTH_OK) {
        clear_cookie(w);
        error_page(w, 400, "t.signin_expired", "m.sign_page_has_expired");
        return;
    }
    /* The switch shows this page again in the other language: the same request, a new sign-in. */
    w->switch_query = query;
    w->switch_query_len = query_len;
    login_page(w, req, form, client, error, username);
    free(form);
}

static void authorize_get(web_t *w)
{
    web_form_t q;
    stor_client_t *client = calloc(1, sizeof(*client));
    oauth_authz_request_t *req = calloc(1, sizeof(*req));
    char ticket[OAUTH_TICKET_COOKIE_LEN];

    memset(&q, 0, sizeof(q));
    w->switch_query = w->call->query; /* an error of this request, shown again in the other language */
    w->switch_query_len = w->call->query_len;
    if (client == NULL || req == NULL) {
        error_page(w, 503, "t.later", "m.service_busy");
        goto out;
    }
    /* The request travels back in the page's form: its size is bounded. */
    if (w->call->query_len > AUTHZ_QUERY_MAX) {
        error_page(w, 400, "t.refused", "m.authorization_request_too_large");
        goto out;
    }
    if (web_form_parse(w->call->query ? w->call->query : "", w->call->query_len, &q) != 0) {
        error_page(w, 400, "t.refused", "m.request_malformed_parameter_repeated");
        goto out;
    }
    if (oauth_rate_check(w->c->oauth, w->call->client) == OAUTH_ERR_RATE) {
        error_page(w, 429, "t.too_many", "m.too_many_failed_attempts");
        w->reply->retry_after = oauth_config(w->c->oauth)->rate_window;
        goto out;
    }
    if (load_request(w, &q, client, req) != 0)
        goto out;
    /* No session before the password: a signed ticket (cookie) and form token (the request) instead. */
    if (oauth_ticket_new(w->c->oauth, "oauth", ticket) != OAUTH_OK) {
        redirect(w, req, NULL, "server_error", "The sign-in could not start");
        goto out;
    }
    set_session_cookie(w, ticket);
    ticket_login_page(w, ticket, w->call->query ? w->call->query : "", w->call->query_len, req, client, NULL, NULL);
out:
    web_form_free(&q);
    if (req != NULL)
        OPENSSL_clear_free(req, sizeof(*req));
    free(client);
}

/* ---- POST /oauth2/authorize ------------------------------------------------------------- */

/* The oauth/ outcome a refusal of CONSENT or APPROVE stands for, as the pages tell it apart. */
static int decision_refusal(const sam_msg_t *reply)
{
    uint32_t code = 0, about = 0;
    if (reply->op != SAM_OP_REFUSED || sam_get_u32(reply, SAM_T_REFUSAL, &code) != SAM_OK)
        return OAUTH_ERR_STORAGE; /* csc-sam not reached, or no answer: nothing was decided */
    (void)sam_get_u32(reply, SAM_T_ABOUT, &about);
    switch (code) {
    case SAM_REFUSE_UNAUTHORIZED:
        return about == SAM_T_PIN ? OAUTH_ERR_DENIED : OAUTH_ERR_INVALID;
    case SAM_REFUSE_NOT_FOUND:
        return OAUTH_ERR_INVALID;
    case SAM_REFUSE_EXPIRED:
        return OAUTH_ERR_EXPIRED;
    case SAM_REFUSE_LOCKED:
        return OAUTH_ERR_LOCKED;
    case SAM_REFUSE_DISABLED:
        return OAUTH_ERR_DISABLED;
    case SAM_REFUSE_BUSY:
        return OAUTH_ERR_BUSY;
    case SAM_REFUSE_BAD_MESSAGE:
        return about == SAM_T_NUM_SIGNATURES ? OAUTH_ERR_INVAL : OAUTH_ERR_STORAGE;
    default:
        return OAUTH_ERR_STORAGE;
    }
}

int web_sam_decision(web_t *w, unsigned op, const char *sid, const char *csrf, const uint8_t ref[16], int approve,
                     const char *pin, size_t pin_len, char code[OAUTH_TOKEN_BUFLEN])
{
    csc_sam_call_t call;
    csc_err_t err;
    char addr[SAM_ADDR_MAX + 1];
    int rc;

    code[0] = '\0';
    if (csc_sam_begin(w->c, &call, op, &err) != 0)
        return OAUTH_ERR_STORAGE;
    if (pin != NULL) {
        /* A PIN the protocol cannot carry (not UTF-8, over SAM_SECRET_MAX bytes) is no credential's PIN. */
        if (sam_put_text(&call.b, SAM_T_PIN, pin, pin_len) != SAM_OK) {
            csc_sam_end(&call);
            return OAUTH_ERR_DENIED;
        }
    }
    if (ref != NULL)
        sam_put_bytes(&call.b, SAM_T_APPROVAL_REF, ref, 16);
    sam_put_str(&call.b, SAM_T_SESSION, sid);
    sam_put_u32(&call.b, SAM_T_DECISION, approve ? 1 : 0);
    snprintf(addr, sizeof(addr), "%s", w->call->client != NULL ? w->call->client : "");
    if (addr[0] != '\0')
        sam_put_str(&call.b, SAM_T_ADDR, addr);
    sam_put_str(&call.b, SAM_T_CSRF, csrf);
    if (csc_sam_run(w->c, &call, CSC_ABOUT_CREDENTIAL, NULL, &err) != 0)
        rc = decision_refusal(&call.reply);
    else if (sam_msg_count(&call.reply, SAM_T_CODE) > 0 &&
             sam_get_text(&call.reply, SAM_T_CODE, code, OAUTH_TOKEN_BUFLEN) != SAM_OK)
        rc = OAUTH_ERR_STORAGE;
    else
        rc = OAUTH_OK;
    csc_sam_end(&call);
    return rc;
}

int web_sam_login(web_t *w, const oauth_authz_request_t *req, const char *user, const char *pw, const char *otp,
                  char sid[OAUTH_TOKEN_BUFLEN], char csrf[OAUTH_TOKEN_BUFLEN])
{
    const char *addr = w->call->client;
    csc_sam_call_t call;
    csc_err_t err;
    int rc;

    sid[0] = csrf[0] = '\0';
    /* Over its limit, an address is refused here: csc-sam spends no scrypt on it. */
    if ((rc = oauth_rate_check(w->c->oauth, addr)) != OAUTH_OK)
        return rc;
    if (csc_sam_begin(w->c, &call, SAM_OP_LOGIN, &err) != 0)
        return OAUTH_ERR_STORAGE;
    /* Values the protocol cannot carry (not UTF-8, too long) are no user's: a wrong sign-in. */
    int bad = sam_put_text(&call.b, SAM_T_USER, user, strlen(user)) != SAM_OK ||
              sam_put_text(&call.b, SAM_T_OTP, otp, strlen(otp)) != SAM_OK;
    if (!bad && addr != NULL && addr[0] != '\0' && strlen(addr) <= SAM_ADDR_MAX)
        sam_put_str(&call.b, SAM_T_ADDR, addr);
    bad = bad || sam_put_text(&call.b, SAM_T_PASSWORD, pw, strlen(pw)) != SAM_OK;
    if (bad) {
        csc_sam_end(&call);
        (void)oauth_rate_hit(w->c->oauth, addr);
        return OAUTH_ERR_DENIED;
    }
    /* The request field by field (oauth_req_encode): a few hundred bytes for a usual request, and csc-sam decodes
     * it with the same strict decoder as a stored session. */
    size_t enc_len = 0;
    uint8_t *enc = NULL;
    if (oauth_req_encode(req, NULL, 0, &enc_len) != OAUTH_OK || (enc = malloc(enc_len)) == NULL ||
        oauth_req_encode(req, enc, enc_len, &enc_len) != OAUTH_OK ||
        sam_put_bytes(&call.b, SAM_T_AUTHZ_REQ, enc, enc_len) != SAM_OK) {
        free(enc);
        csc_sam_end(&call);
        return OAUTH_ERR_STORAGE;
    }
    free(enc);
    if (csc_sam_run(w->c, &call, CSC_ABOUT_CREDENTIAL, NULL, &err) != 0) {
        rc = csc_sam_login_rc(&call);
    } else if (sam_get_text(&call.reply, SAM_T_SESSION, sid, OAUTH_TOKEN_BUFLEN) != SAM_OK ||
               sam_get_text(&call.reply, SAM_T_CSRF, csrf, OAUTH_TOKEN_BUFLEN) != SAM_OK) {
        rc = OAUTH_ERR_STORAGE;
    } else {
        rc = OAUTH_OK;
    }
    csc_sam_end(&call);
    if (rc == OAUTH_ERR_DENIED)
        (void)oauth_rate_hit(w->c->oauth, addr);
    if (rc != OAUTH_OK) {
        OPENSSL_cleanse(sid, OAUTH_TOKEN_BUFLEN);
        OPENSSL_cleanse(csrf, OAUTH_TOKEN_BUFLEN);
        sid[0] = csrf[0] = '\0';
    }
    return rc;
}

/* Returns OAUTH_ERR_DENIED (wrong PIN: the session stays, nothing sent yet) or 0 (a reply is set). */
static int finish_with_code(web_t *w, const oauth_authz_request_t *req, const char *sid, const char *csrf,
                            const char *pin, size_t pin_len)
{
    char code[OAUTH_TOKEN_BUFLEN];
    int rc = web_sam_decision(w, SAM_OP_CONSENT, sid, csrf, NULL, 1, pin, pin_len, code);
    if (rc == OAUTH_ERR_DENIED || rc == OAUTH_ERR_BUSY)
        return rc;
    oauth_session_end(w->c->oauth, sid);
    clear_cookie(w);
    switch (rc) {
    case OAUTH_OK:
        redirect(w, req, code, NULL, NULL);
        break;
    case OAUTH_ERR_LOCKED:
        redirect(w, req, NULL, "access_denied", "Credential locked");
        break;
    case OAUTH_ERR_DISABLED:
        redirect(w, req, NULL, "access_denied", "The credential is disabled");
        break;
    case OAUTH_ERR_INVAL:
        redirect(w, req, NULL, "invalid_request", "numSignatures is above the credential's multisign");
        break;
    case OAUTH_ERR_INVALID:
        redirect(w, req, NULL, "invalid_request", "Unknown credential");
        break;
    default:
        redirect(w, req, NULL, "server_error", "The authorization could not be completed");
        break;
    }
    OPENSSL_cleanse(code, sizeof(code));
    return 0;
}

/* The signatureQualifier flow: the AS picks the user's first enabled credential (in id order) with that
 * qualifier and a valid certificate, and the echoed authorization_details name it. */
typedef struct pick {
    const char *owner;
    const char *qualifier;
    char found[STOR_NAME_MAX + 1];
    csc_t *csc;
} pick_t;

static int pick_fn(const stor_cred_t *c, void *arg)
{
    pick_t *p = arg;
    bool usable = false;
    if (p->found[0] == '\0' && c->status == STOR_CRED_ENABLED && strcmp(c->qualifier, p->qualifier) == 0)
        (void)csc_cred_cert_status_now(p->csc, c, time(NULL), &usable); /* valid, not revoked or suspended (J9) */
    if (usable)
        snprintf(p->found, sizeof(p->found), "%s", c->id);
    return 0;
}

static int pick_read(stor_txn_t *t, void *arg)
{
    pick_t *p = arg;
    return stor_txn_cred_each(t, p->owner, pick_fn, p);
}

static int with_credential(const char *rar, const char *cred, char *out, size_t outsz)
{
    yajl_val v = csc_json_parse_text(rar, strlen(rar), 8);
    int rc = -1;
    if (v == NULL || !YAJL_IS_ARRAY(v) || v->u.array.len != 1 || !YAJL_IS_OBJECT(v->u.array.values[0]))
        goto out;
    yajl_val o = v->u.array.values[0];
    yajl_gen g = csc_gen_new();
    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    csc_gen_kv(g, "credentialID", cred);
    for (size_t i = 0; i < o->u.object.len; i++) {
        if (strcmp(o->u.object.keys[i], "credentialID") == 0)
            continue;
        csc_gen_str(g, o->u.object.keys[i]);
        csc_json_gen_value(g, o->u.object.values[i]);
    }
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
    const unsigned char *buf;
    size_t len;
    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok && len < outsz) {
        memcpy(out, buf, len);
        out[len] = '\0';
        rc = 0;
    }
    yajl_gen_free(g);
out:
    if (v != NULL)
        yajl_tree_free(v);
    return rc;
}

static int pick_by_qualifier(web_t *w, const char *sid, oauth_session_view_t *v)
{
    pick_t p = {.owner = v->user, .qualifier = v->req.signature_qualifier, .csc = w->c};
    if (p.qualifier[0] == '\0' || stor_read(w->c->stor, pick_read, &p) != 0 || p.found[0] == '\0')
        return -1;
    char *rar = calloc(1, STOR_AUTHZ_DETAILS_MAX + 1);
    int rc = -1;
    if (rar != NULL && (v->req.authz_details[0] == '\0' ||
                        with_credential(v->req.authz_details, p.found, rar, STOR_AUTHZ_DETAILS_MAX + 1) == 0) &&
        oauth_session_set_credential(w->c->oauth, sid, p.found, rar) == OAUTH_OK &&
        oauth_session_get(w->c->oauth, sid, v) == OAUTH_OK)
        rc = 0;
    free(rar);
    return rc;
}

/* After a successful login (or a wrong PIN): consent for the credential scope, a code at once for the service scope. */
static void after_login(web_t *w, const char *sid, const oauth_session_view_t *v, const stor_client_t *client,
                        const char *error)
{
    if (v->req.scope != STOR_SCOPE_CREDENTIAL) {
        (void)finish_with_code(w, &v->req, sid, v->csrf, NULL, 0); /* no PIN asked: never DENIED */
        return;
    }
    if (v->req.cred[0] == '\0' && pick_by_qualifier(w, sid, (oauth_session_view_t *)v) != 0) {
        oauth_session_end(w->c->oauth, sid);
        clear_cookie(w);
        redirect(w, &v->req, NULL, "invalid_request", "You have no usable credential with that signatureQualifier");
        return;
    }
    stor_cred_t *cred = stor_rec_new(sizeof(*cred));
    int rc = cred != NULL ? stor_cred_get(w->c->stor, v->req.cred, cred) : STOR_ERR_NOMEM;
    if (rc != STOR_OK || strcmp(cred->owner, v->user) != 0) {
        oauth_session_end(w->c->oauth, sid);
        clear_cookie(w);
        redirect(w, &v->req, NULL, "invalid_request", "Unknown credential");
    } else if (cred->scal == 2 && v->req.n_digests == 0) {
        oauth_session_end(w->c->oauth, sid);
        clear_cookie(w);
        redirect(w, &v->req, NULL, "invalid_request", "This credential (SCAL 2) needs the document digests (hashes)");
    } else {
        consent_page(w, v, client, cred, error);
    }
    stor_rec_free(cred, sizeof(*cred));
}

/* A post from a visitor's sign-in page (ticket cookie): cancel, or the login that starts the session. */
static void ticket_post(web_t *w, const char *ticket, const web_form_t *f)
{
    char *query = NULL;
    size_t query_len = 0;
    web_form_t q;
    stor_client_t *client = calloc(1, sizeof(*client));
    oauth_session_view_t *v = calloc(1, sizeof(*v));
    char sid[OAUTH_TOKEN_BUFLEN] = "", csrf[OAUTH_TOKEN_BUFLEN] = "";
    int rc;

    memset(&q, 0, sizeof(q));
    if (client == NULL || v == NULL) {
        error_page(w, 503, "t.later", "m.service_busy");
        goto out;
    }
    rc = oauth_ticket_check(w->c->oauth, "oauth", ticket, web_form_get(f, "csrf"), &query, &query_len);
    if (rc != OAUTH_OK) {
        /* A form that did not come from our page, or an old one: the person starts again. */
        clear_cookie(w);
        if (rc == OAUTH_ERR_EXPIRED)
            error_page(w, 400, "t.signin_expired", "m.sign_page_has_expired");
        else
            error_page(w, 400, "t.refused", "m.form_could_not_verified");
        goto out;
    }
    if (web_form_parse(query, query_len, &q) != 0) {
        clear_cookie(w);
        error_page(w, 400, "t.refused", "m.request_malformed");
        goto out;
    }
    if (load_request(w, &q, client, &v->req) != 0) {
        clear_cookie(w);
        goto out;
    }
    const char *action = web_form_get(f, "action");
    if (action != NULL && strcmp(action, "deny") == 0) {
        clear_cookie(w);
        redirect(w, &v->req, NULL, "access_denied", "The user refused the request");
    } else if (action != NULL && strcmp(action, "login") == 0) {
        const char *u = web_form_get(f, "username"), *pw = web_form_get(f, "password"), *otp = web_form_get(f, "otp");
        rc = u != NULL && pw != NULL && otp != NULL && strlen(u) <= STOR_NAME_MAX
                 ? web_sam_login(w, &v->req, u, pw, otp, sid, csrf)
                 : OAUTH_ERR_DENIED;
        const char *request_uri = web_form_get(&q, "request_uri");
        if (rc == OAUTH_OK && request_uri != NULL &&
            oauth_par_take(w->c->oauth, client->id, request_uri, &v->req) != OAUTH_OK) {
            /* used or expired meanwhile */
            oauth_session_end(w->c->oauth, sid);
            clear_cookie(w);
            error_page(w, 400, "t.refused", "m.pushed_authorization_request_unknown");
        } else if (rc == OAUTH_OK && oauth_session_get(w->c->oauth, sid, v) == OAUTH_OK) {
            /* The session starts now, under a new id: the ticket from before the login is worth nothing. */
            set_session_cookie(w, sid);
            after_login(w, sid, v, client, NULL);
        } else if (rc == OAUTH_OK) {
            clear_cookie(w);
            error_page(w, 400, "t.signin_expired", "m.sign_page_has_expired");
        } else if (rc == OAUTH_ERR_RATE) {
            error_page(w, 429, "t.too_many", "m.too_many_failed_attempts");
            w->reply->retry_after = oauth_config(w->c->oauth)->rate_window;
        } else if (rc == OAUTH_ERR_BUSY)
            busy_page(w);
        else if (rc == OAUTH_ERR_DENIED) /* also a locked account: the page never tells */
            ticket_login_page(w, ticket, query, query_len, &v->req, client,
                              WEB_T(w, "common.login_wrong"), u);
        else if (rc == OAUTH_ERR_FULL)
            error_page(w, 503, "t.later", "m.too_many_sign_ins");
        else if (rc == OAUTH_ERR_STORAGE || rc == OAUTH_ERR_UNAVAILABLE) {
            error_page(w, 503, "t.later", "m.service_cannot_sign_right");
            if (rc == OAUTH_ERR_UNAVAILABLE)
                w->reply->retry_after = CSC_STORAGE_RETRY_AFTER;
        }
        else
            error_page(w, 503, "t.later", "m.sign_could_not_completed");
    } else {
        error_page(w, 400, "t.refused", "m.step_not_expected");
    }
out:
    web_form_free(&q);
    if (query != NULL)
        OPENSSL_clear_free(query, query_len);
    OPENSSL_cleanse(sid, sizeof(sid));
    OPENSSL_cleanse(csrf, sizeof(csrf));
    if (v != NULL)
        OPENSSL_clear_free(v, sizeof(*v));
    free(client);
}

static void authorize_post(web_t *w)
{
    web_form_t f;
    char sid[OAUTH_TICKET_COOKIE_LEN];
    oauth_session_view_t *v = NULL;
    stor_client_t *client = NULL;

    memset(&f, 0, sizeof(f));
    const char *body = (const char *)w->call->body;
    if (w->call->cookie == NULL || web_cookie_get(w->call->cookie, w->call->cookie_len, COOKIE, sid, sizeof(sid)) != 0) {
        clear_cookie(w);
        error_page(w, 400, "t.signin_expired", "m.sign_page_has_expired2");
        goto out;
    }
    if (web_form_parse(body ? body : "", w->call->body_len, &f) != 0) {
        clear_cookie(w);
        error_page(w, 400, "t.refused", "m.form_could_not_verified");
        goto out;
    }
    if (strchr(sid, '.') != NULL) { /* a visitor's ticket: not signed in, nothing on the server */
        ticket_post(w, sid, &f);
        goto out;
    }
    v = calloc(1, sizeof(*v));
    client = calloc(1, sizeof(*client));
    if (v == NULL || client == NULL) {
        error_page(w, 503, "t.later", "m.service_busy");
        goto out;
    }
    if (oauth_session_get(w->c->oauth, sid, v) != OAUTH_OK) {
        clear_cookie(w);
        error_page(w, 400, "t.signin_expired", "m.sign_page_has_expired2");
        goto out;
    }
    const char *csrf = web_form_get(&f, "csrf");
    if (csrf == NULL || strlen(csrf) != strlen(v->csrf) || CRYPTO_memcmp(csrf, v->csrf, strlen(csrf)) != 0) {
        /* A form that did not come from our page: end the session (the person starts again). */
        oauth_session_end(w->c->oauth, sid);
        clear_cookie(w);
        error_page(w, 400, "t.refused", "m.form_could_not_verified");
        goto out;
    }
    if (oauth_client_get(w->c->oauth, v->req.client_id, client) != OAUTH_OK) {
        oauth_session_end(w->c->oauth, sid);
        clear_cookie(w);
        error_page(w, 400, "t.refused", "m.application_no_longer_registered");
        goto out;
    }
    /* A session exists only once its user signed in (ticket_post): what is left is the consent. */
    const char *action = web_form_get(&f, "action"), *lang = web_form_get(&f, "lang");
    if (action == NULL && lang != NULL && web_lang_parse(lang, strlen(lang)) >= 0 && v->user[0] != '\0' &&
        v->req.scope == STOR_SCOPE_CREDENTIAL) {
        /* the consent page's language switch: the same page, in that language, remembered */
        w->lang = web_lang_parse(lang, strlen(lang));
        web_lang_remember(w);
        after_login(w, sid, v, client, NULL);
    } else if (action != NULL && strcmp(action, "deny") == 0) {
        char code[OAUTH_TOKEN_BUFLEN];
        (void)web_sam_decision(w, SAM_OP_CONSENT, sid, csrf, NULL, 0, NULL, 0, code);
        clear_cookie(w);
        redirect(w, &v->req, NULL, "access_denied", "The user refused the request");
    } else if (action != NULL && strcmp(action, "approve") == 0 && v->user[0] != '\0' &&
               v->req.scope == STOR_SCOPE_CREDENTIAL) {
        const char *pin = web_form_get(&f, "pin");
        int rc = finish_with_code(w, &v->req, sid, csrf, pin, pin != NULL ? strlen(pin) : 0);
        if (rc == OAUTH_ERR_DENIED)
            after_login(w, sid, v, client, WEB_T(w, "common.pin_wrong"));
        else if (rc == OAUTH_ERR_BUSY)
            busy_page(w);
    } else {
        error_page(w, 400, "t.refused", "m.step_not_expected");
    }
out:
    web_form_free(&f);
    OPENSSL_cleanse(sid, sizeof(sid));
    if (v != NULL)
        OPENSSL_clear_free(v, sizeof(*v));
    free(client);
}

/* ---- client authentication (token, PAR, revoke) ------------------------------------------ */

/* client_secret_basic (RFC 6749 sec. 2.3.1: both parts form-urlencoded) or client_secret_post. */
void web_oauth_handle(csc_t *c, const csc_call_t *call, csc_reply_t *reply)
{
    web_t w;
    memset(reply, 0, sizeof(*reply));
    web_init(&w, c, call, reply);
    if (is_path(&w, WELL_KNOWN) && is_method(&w, "GET"))
        web_metadata(&w);
    else if (is_path(&w, "/oauth2/authorize") && is_method(&w, "GET"))
        authorize_get(&w);
    else if (is_path(&w, "/oauth2/authorize") && is_method(&w, "POST"))
        authorize_post(&w);
    else if (is_path(&w, "/oauth2/token") && is_method(&w, "POST"))
        web_token_post(&w);
    else if (is_path(&w, "/oauth2/revoke") && is_method(&w, "POST"))
        web_revoke_post(&w);
    else if (is_path(&w, "/oauth2/pushed_authorize") && is_method(&w, "POST"))
        web_par_post(&w);
    else if (is_path(&w, WELL_KNOWN) || is_path(&w, "/oauth2/authorize") || is_path(&w, "/oauth2/token") ||
             is_path(&w, "/oauth2/revoke") || is_path(&w, "/oauth2/pushed_authorize"))
        json_error(&w, 405, "invalid_request", "Method not allowed");
    else
        json_error(&w, 404, "invalid_request", "Unknown path");
}
