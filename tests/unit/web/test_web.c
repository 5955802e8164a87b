/* The pages and OAuth 2.0 endpoints of csc-api/web/ in-process (issue 10): every request goes through csc_handle()
 * of a service on SoftHSM and a temporary LMDB provisioned through admin/ (tests/unit/fixture/csc_fixture.h). A
 * small "browser" keeps the cookie and the form's CSRF token the way tests/integration/harness.py's does. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "csc_fixture.h"

#define SHA256 "2.16.840.1.101.3.4.2.1"
#define ECDSA_SHA256 "1.2.840.10045.4.3.2"

static cfx_t f;

static void setup(void)
{
    cfx_open(&f, NULL);
}

static void teardown(void)
{
    cfx_close(&f);
}

/* ---- a browser: one cookie, the last CSRF token seen ------------------------------------------------------ */

typedef struct browser {
    char cookie[512];          /* "name=value" to send, "" for none */
    char csrf[512];            /* the last page's form token */
    int got_cookie;            /* the last reply set a cookie */
    const char *accept;        /* Accept-Language to send, NULL for none */
    const char *lang;          /* the lang cookie to send ("ja", "en"), NULL for none */
} browser_t;

/* The Cookie header of b: its one cookie and the lang cookie. */
static const char *cookies(const browser_t *b, char *buf, size_t sz)
{
    if (b->lang == NULL)
        return b->cookie[0] ? b->cookie : NULL;
    snprintf(buf, sz, "%s%slang=%s", b->cookie, b->cookie[0] ? "; " : "", b->lang);
    return buf;
}

static void store(browser_t *b, const cfx_reply_t *x)
{
    b->got_cookie = x->r.set_cookie != NULL;
    if (x->r.set_cookie != NULL) {
        size_t n = strcspn(x->r.set_cookie, ";");
        ck_assert_uint_lt(n, sizeof(b->cookie));
        memcpy(b->cookie, x->r.set_cookie, n);
        b->cookie[n] = '\0';
        if (n > 0 && b->cookie[n - 1] == '=') /* cleared */
            b->cookie[0] = '\0';
    }
    const char *p = strstr(x->text, "name=\"csrf\" value=\"");
    if (p != NULL) {
        p += strlen("name=\"csrf\" value=\"");
        size_t n = strcspn(p, "\"&<"); /* tokens are base64url with dots: nothing to unescape */
        ck_assert_uint_lt(n, sizeof(b->csrf));
        ck_assert_int_eq(p[n], '"');
        memcpy(b->csrf, p, n);
        b->csrf[n] = '\0';
    }
}

static void get(browser_t *b, const char *path, const char *query, cfx_reply_t *x)
{
    char c[600];
    cfx_req_t q = {.method = "GET", .path = path, .query = query, .cookie = cookies(b, c, sizeof(c)),
                   .accept_language = b->accept};
    cfx_call(&f, &q, x);
    store(b, x);
}

/* POST the form fields (urlencoded) and, unless csrf is 0, the page's CSRF token. */
static void post(browser_t *b, const char *path, const char *fields, int csrf, cfx_reply_t *x)
{
    char body[2048];
    ck_assert_int_lt(snprintf(body, sizeof(body), "%s%s%s", fields, csrf ? "&csrf=" : "", csrf ? b->csrf : ""),
                     (int)sizeof(body));
    char c[600];
    cfx_req_t q = {.path = path, .cookie = cookies(b, c, sizeof(c)), .content_type = "application/x-www-form-urlencoded",
                   .body = body, .accept_language = b->accept};
    cfx_call(&f, &q, x);
    store(b, x);
}

/* An inline event handler attribute (" onclick=", " onload=", ...) anywhere in the page? */
static int has_handler(const char *html)
{
    for (const char *p = strstr(html, " on"); p != NULL; p = strstr(p + 1, " on")) {
        size_t n = strspn(p + 3, "abcdefghijklmnopqrstuvwxyz");
        if (n > 0 && p[3 + n] == '=')
            return 1;
    }
    return 0;
}

/* A page: HTML, sent with the pages' headers (CSP without scripts, no framing: reply.page), and no script. */
static void assert_page(const cfx_reply_t *x, int status)
{
    ck_assert_msg(x->r.status == status, "status %d, expected %d: %.300s", x->r.status, status, x->text);
    ck_assert_int_eq(x->r.page, 1);
    ck_assert_ptr_nonnull(x->r.content_type);
    ck_assert_ptr_nonnull(strstr(x->r.content_type, "text/html"));
    ck_assert_ptr_null(strstr(x->text, "<script"));
    ck_assert(!has_handler(x->text));
}

static char *b64url(const void *p, size_t n)
{
    char *s = cfx_b64(p, n);
    for (char *c = s; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    s[strcspn(s, "=")] = '\0';
    return s;
}

/* PKCE (RFC 7636): a random verifier and its S256 challenge. */
static void pkce(char verifier[64], char challenge[64])
{
    uint8_t r[32], md[32];
    ck_assert_int_eq(RAND_bytes(r, sizeof(r)), 1);
    char *v = b64url(r, sizeof(r));
    ck_assert_int_eq(EVP_Digest(v, strlen(v), md, NULL, EVP_sha256(), NULL), 1);
    char *c = b64url(md, sizeof(md));
    snprintf(verifier, 64, "%s", v);
    snprintf(challenge, 64, "%s", c);
    free(v);
    free(c);
}

#define REDIRECT_ENC "http%3A%2F%2Flocalhost%3A8765%2Fcallback"

/* The query of an authorization request (extra: more parameters, "" for none). */
static void authz_query(char *q, size_t sz, const char *challenge, const char *extra)
{
    ck_assert_int_lt(snprintf(q, sz,
                              "response_type=code&client_id=" CFX_CLIENT "&redirect_uri=%s"
                              "&code_challenge=%s&code_challenge_method=S256&state=st-42%s",
                              REDIRECT_ENC, challenge, extra),
                     (int)sz);
}

/* The sign-in form's fields with the user's password (or pw) and a fresh TOTP code. */
static void login_fields(char *out, size_t sz, const char *pw)
{
    char otp[7];
    cfx_otp(&f, otp);
    snprintf(out, sz, "action=login&username=" CFX_USER "&password=%s&otp=%s", pw, otp);
}

/* The value of parameter name in the redirect's query (malloc'd), or NULL. */
static char *redirect_param(const cfx_reply_t *x, const char *name)
{
    ck_assert_int_eq(x->r.status, 302);
    ck_assert_ptr_nonnull(x->r.location);
    ck_assert_msg(strncmp(x->r.location, CFX_REDIRECT "?", strlen(CFX_REDIRECT) + 1) == 0, "%s", x->r.location);
    char key[64];
    snprintf(key, sizeof(key), "%s=", name);
    for (const char *p = strchr(x->r.location, '?') + 1; p != NULL && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
        if (strncmp(p, key, strlen(key)) == 0)
            return strndup(p + strlen(key), strcspn(p + strlen(key), "&"));
    return NULL;
}

/* POST /oauth2/token for the code, with client_secret_basic. */
static void token_for_code(const char *code, const char *verifier, cfx_reply_t *x)
{
    char cred[256], auth[400], body[1024];
    snprintf(cred, sizeof(cred), "%s:%s", CFX_CLIENT, cfx_client_secret());
    char *basic = cfx_b64(cred, strlen(cred));
    snprintf(auth, sizeof(auth), "Basic %s", basic);
    snprintf(body, sizeof(body), "grant_type=authorization_code&code=%s&redirect_uri=%s&code_verifier=%s", code,
             REDIRECT_ENC, verifier);
    cfx_req_t q = {.path = "/oauth2/token", .authorization = auth,
                   .content_type = "application/x-www-form-urlencoded", .body = body};
    cfx_call(&f, &q, x);
    free(basic);
}

/* ---- the pages ----------------------------------------------------------------------------------------- */

START_TEST(t_authorize_page)
{
    browser_t b = {0};
    char verifier[64], challenge[64], q[512];
    cfx_reply_t x;
    pkce(verifier, challenge);
    authz_query(q, sizeof(q), challenge, "");
    get(&b, "/oauth2/authorize", q, &x);
    assert_page(&x, 200);
    ck_assert(has_handler("<b onclick=\"x()\">") && !has_handler("<p>on this page</p>")); /* the check can fail */
    ck_assert_ptr_nonnull(strstr(x.text, "CFX App")); /* the client's name */
    ck_assert_ptr_nonnull(strstr(x.text, "name=\"password\""));
    ck_assert_ptr_nonnull(strstr(x.text, "name=\"otp\""));
    /* the visitor's ticket: a cookie only pages can read back, and the form's CSRF token */
    ck_assert_ptr_nonnull(x.r.set_cookie);
    ck_assert_ptr_nonnull(strstr(x.r.set_cookie, "HttpOnly"));
    ck_assert_ptr_nonnull(strstr(x.r.set_cookie, "Secure"));
    ck_assert_ptr_nonnull(strstr(x.r.set_cookie, "SameSite=Strict"));
    ck_assert_str_ne(b.cookie, "");
    ck_assert_str_ne(b.csrf, "");
    cfx_reply_free(&x);
    /* an unknown client: a page saying so, never a redirect to an unregistered URI */
    get(&b, "/oauth2/authorize", "response_type=code&client_id=nobody&redirect_uri=https%3A%2F%2Fevil.example%2F", &x);
    assert_page(&x, 400);
    ck_assert_ptr_null(x.r.location);
    cfx_reply_free(&x);
}
END_TEST

START_TEST(t_wrong_password)
{
    browser_t b = {0};
    char verifier[64], challenge[64], q[512], fields[256], ticket[512];
    cfx_reply_t x;
    pkce(verifier, challenge);
    authz_query(q, sizeof(q), challenge, "");
    get(&b, "/oauth2/authorize", q, &x);
    cfx_reply_free(&x);
    snprintf(ticket, sizeof(ticket), "%s", b.cookie);
    login_fields(fields, sizeof(fields), "not-the-password");
    post(&b, "/oauth2/authorize", fields, 1, &x);
    /* refused on the page, the user name kept; no session starts (no new cookie) */
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "id=\"error\""));
    ck_assert_ptr_nonnull(strstr(x.text, "value=\"" CFX_USER "\""));
    ck_assert_int_eq(b.got_cookie, 0);
    ck_assert_str_eq(b.cookie, ticket);
    ck_assert_ptr_null(x.r.location);
    cfx_reply_free(&x);
    ck_assert_uint_ge(cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_DENIED, NULL), 1);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_OK, NULL), 0);
    /* the ticket is not a session: a consent posted with it is refused */
    post(&b, "/oauth2/authorize", "action=approve&pin=" CFX_PIN, 1, &x);
    ck_assert_int_eq(x.r.status, 400);
    ck_assert_ptr_null(x.r.location);
    cfx_reply_free(&x);
    /* a form without the CSRF token is refused too */
    snprintf(b.cookie, sizeof(b.cookie), "%s", ticket);
    login_fields(fields, sizeof(fields), CFX_PASSWORD);
    post(&b, "/oauth2/authorize", fields, 0, &x);
    assert_page(&x, 400);
    ck_assert_ptr_null(x.r.location);
    cfx_reply_free(&x);
}
END_TEST

/* Service scope: sign in, code, token; the token calls the API. */
START_TEST(t_code_flow_service)
{
    browser_t b = {0};
    char verifier[64], challenge[64], q[512], fields[256];
    cfx_reply_t x;
    pkce(verifier, challenge);
    authz_query(q, sizeof(q), challenge, "&scope=service");
    get(&b, "/oauth2/authorize", q, &x);
    cfx_reply_free(&x);
    login_fields(fields, sizeof(fields), CFX_PASSWORD);
    post(&b, "/oauth2/authorize", fields, 1, &x);
    char *code = redirect_param(&x, "code"), *state = redirect_param(&x, "state");
    ck_assert_ptr_nonnull(code);
    ck_assert_str_eq(state, "st-42");
    cfx_reply_free(&x);
    /* a wrong verifier (PKCE) gets nothing; the right one the token */
    token_for_code(code, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &x);
    ck_assert_int_eq(x.r.status, 400);
    ck_assert_str_eq(cfx_str(&x, "error", NULL), "invalid_grant");
    cfx_reply_free(&x);
    token_for_code(code, verifier, &x);
    ck_assert_msg(x.r.status == 200, "token: %d %s", x.r.status, x.text);
    ck_assert_str_eq(cfx_str(&x, "token_type", NULL), "Bearer");
    ck_assert_int_gt(cfx_num(&x, "expires_in"), 0);
    char *tok = strdup(cfx_str(&x, "access_token", NULL));
    cfx_reply_free(&x);
    cfx_post(&f, &x, tok, "/csc/v2/credentials/list {}");
    ck_assert_int_eq(x.r.status, 200);
    ck_assert_ptr_nonnull(strstr(x.text, CFX_CRED_EC));
    cfx_reply_free(&x);
    /* a code is used once; used again, the tokens issued for it are revoked (RFC 6749 sec. 4.1.2) */
    token_for_code(code, verifier, &x);
    ck_assert_int_eq(x.r.status, 400);
    ck_assert_str_eq(cfx_str(&x, "error", NULL), "invalid_grant");
    cfx_reply_free(&x);
    cfx_post(&f, &x, tok, "/csc/v2/credentials/list {}");
    ck_assert_int_eq(x.r.status, 401);
    cfx_reply_free(&x);
    free(tok);
    free(code);
    free(state);
}
END_TEST

/* Credential scope with the OAuth-only credential: sign in, consent with the PIN, code, a credential token that
 * signs its one digest (verified against the certificate) and nothing else. */
START_TEST(t_code_flow_credential)
{
    static const char doc[] = "signed through OAuth";
    browser_t b = {0};
    uint8_t md[32];
    char verifier[64], challenge[64], q[1024], fields[256], extra[512];
    cfx_reply_t x;
    ck_assert_int_eq(EVP_Digest(doc, strlen(doc), md, NULL, EVP_sha256(), NULL), 1);
    char *h_url = b64url(md, 32), *h = cfx_b64(md, 32);
    snprintf(extra, sizeof(extra), "&scope=credential&credentialID=" CFX_CRED_OAUTH "&numSignatures=1&hashes=%s"
                                   "&hashAlgorithmOID=" SHA256, h_url);
    pkce(verifier, challenge);
    authz_query(q, sizeof(q), challenge, extra);
    get(&b, "/oauth2/authorize", q, &x);
    assert_page(&x, 200);
    char ticket[512];
    snprintf(ticket, sizeof(ticket), "%s", b.cookie);
    cfx_reply_free(&x);
    login_fields(fields, sizeof(fields), CFX_PASSWORD);
    post(&b, "/oauth2/authorize", fields, 1, &x);
    /* signed in: the consent page, under a new session cookie */
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "id=\"approve\""));
    ck_assert_ptr_nonnull(strstr(x.text, CFX_CRED_OAUTH));
    ck_assert_int_eq(b.got_cookie, 1);
    ck_assert_str_ne(b.cookie, ticket);
    cfx_reply_free(&x);
    /* a wrong PIN stays on the page */
    post(&b, "/oauth2/authorize", "action=approve&pin=11112222", 1, &x);
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "id=\"error\""));
    cfx_reply_free(&x);
    post(&b, "/oauth2/authorize", "action=approve&pin=" CFX_PIN, 1, &x);
    char *code = redirect_param(&x, "code");
    ck_assert_ptr_nonnull(code);
    cfx_reply_free(&x);
    token_for_code(code, verifier, &x);
    ck_assert_msg(x.r.status == 200, "token: %d %s", x.r.status, x.text);
    char *tok = strdup(cfx_str(&x, "access_token", NULL));
    cfx_reply_free(&x);
    /* the credential token is the SAD: it signs the digest approved, once */
    static const char fmt_sign[] = "/csc/v2/signatures/signHash {\"credentialID\":\"" CFX_CRED_OAUTH "\",\"hashes\":"
                                   "[\"%s\"],\"hashAlgorithmOID\":\"" SHA256 "\",\"signAlgo\":\"" ECDSA_SHA256 "\"}";
    char *other = cfx_b64("0123456789abcdef0123456789abcdef", 32);
    cfx_post(&f, &x, tok, fmt_sign, other);
    cfx_expect_error(&x, 400, "invalid_request", "Hash is not authorized by the SAD.");
    cfx_post(&f, &x, tok, fmt_sign, h);
    ck_assert_msg(x.r.status == 200, "signHash: %d %s", x.r.status, x.text);
    const char *sig = YAJL_GET_STRING(YAJL_GET_ARRAY(cfx_arr(&x, "signatures"))->values[0]);
    ck_assert(cfx_verify(&f, CFX_CRED_OAUTH, 0, md, sig));
    cfx_reply_free(&x);
    cfx_post(&f, &x, tok, fmt_sign, h);
    ck_assert_int_ge(x.r.status, 400);
    cfx_reply_free(&x);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_OK, CFX_CRED_OAUTH), 1);
    free(other);
    free(tok);
    free(code);
    free(h);
    free(h_url);
}
END_TEST

START_TEST(t_approve_without_session)
{
    browser_t b = {0};
    cfx_reply_t x;
    /* the sign-in page, with its ticket */
    get(&b, "/approve", NULL, &x);
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "name=\"password\""));
    ck_assert_ptr_null(strstr(x.text, "id=\"user\"")); /* nobody signed in */
    cfx_reply_free(&x);
    /* a decision without a session: back to the sign-in page, nothing decided */
    post(&b, "/approve", "action=approve&ref=00000000000000000000000000000000&pin=" CFX_PIN, 1, &x);
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "id=\"error\""));
    ck_assert_ptr_nonnull(strstr(x.text, "name=\"password\""));
    ck_assert_int_eq(b.got_cookie, 0);
    cfx_reply_free(&x);
    /* and without even the ticket: refused */
    b.cookie[0] = '\0';
    post(&b, "/approve", "action=approve&ref=00000000000000000000000000000000&pin=" CFX_PIN, 1, &x);
    assert_page(&x, 400);
    cfx_reply_free(&x);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_APPROVAL, -1, NULL), 0);
}
END_TEST

/* /enroll and /account as pages (issue 12): the frame and its rules, a wrong code answered as every wrong code, a
 * post without the page's ticket, a form token not the page's, and /account's sign-in. */
START_TEST(t_enroll_and_account_pages)
{
    browser_t b = {0};
    cfx_reply_t x;
    get(&b, "/enroll", NULL, &x);
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "name=\"code\""));
    ck_assert_int_eq(b.got_cookie, 1);
    ck_assert_ptr_nonnull(strstr(x.r.set_cookie, "Path=/enroll"));
    ck_assert_ptr_nonnull(strstr(x.r.set_cookie, "HttpOnly; Secure; SameSite=Strict"));
    cfx_reply_free(&x);
    /* a name with no code and a wrong code: the same page (and csc-sam audits both) */
    post(&b, "/enroll", "action=code&name=" CFX_USER "&code=ABCD-EFGH-JKLM-NPQR", 1, &x);
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "The name or the code is wrong or has expired"));
    ck_assert_ptr_null(strstr(x.text, "totp-secret"));
    cfx_reply_free(&x);
    post(&b, "/enroll", "action=code&name=nobody&code=", 1, &x);
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "The name or the code is wrong or has expired"));
    cfx_reply_free(&x);
    post(&b, "/enroll", "action=code&name=no+such+name&code=ABCD-EFGH-JKLM-NPQR", 1, &x); /* no user can have it */
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "The name or the code is wrong or has expired"));
    cfx_reply_free(&x);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_ENROLL, STOR_RES_DENIED, NULL), 3);
    /* a form token that is not the page's: refused, nothing asked of csc-sam */
    post(&b, "/enroll", "action=code&name=nobody&code=x&csrf=forged", 0, &x);
    assert_page(&x, 400);
    cfx_reply_free(&x);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_ENROLL, STOR_RES_DENIED, NULL), 3);
    /* a step 2 post with a ticket csc-sam never issued: back to step 1 */
    snprintf(b.cookie, sizeof(b.cookie), "csc_enroll=forged-ticket");
    post(&b, "/enroll", "action=finish&password=x&password2=x&otp=123456", 1, &x);
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "name=\"code\""));
    ck_assert_ptr_nonnull(strstr(x.text, "id=\"error\""));
    cfx_reply_free(&x);
    /* /account: the approval page's sign-in, its forms posted back to /account */
    browser_t a = {0};
    get(&a, "/account", NULL, &x);
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "name=\"password\""));
    ck_assert_ptr_nonnull(strstr(x.text, "action=\"/account\""));
    cfx_reply_free(&x);
    cfx_req_t q = {.method = "PUT", .path = "/enroll"};
    cfx_call(&f, &q, &x);
    ck_assert_int_eq(x.r.status, 405);
    cfx_reply_free(&x);
}
END_TEST

/* A delegation index entry alice -> a credential of mallory's whose record does not name alice as delegate (a stale
 * or forged entry). */
static int stale_delegation_fn(stor_txn_t *t, void *arg)
{
    stor_cred_t *c = arg;
    int rc = stor_txn_cred_get(t, CFX_CRED_EC, c);
    if (rc != 0)
        return rc;
    snprintf(c->id, sizeof(c->id), "not-alices");
    snprintf(c->owner, sizeof(c->owner), "mallory");
    c->n_delegates = 0;
    c->delegate_pin_unset = 0;
    memset(c->delegates, 0, sizeof(c->delegates));
    memset(c->delegate_pins, 0, sizeof(c->delegate_pins));
    if ((rc = stor_txn_cred_put(t, c, 1)) != 0)
        return rc;
    return stor_txn_delegation_put(t, CFX_USER, "not-alices");
}

/* /account lists the user's own credentials and those whose record names them as delegate, not every credential the
 * delegation index points at (as credentials/list). */
START_TEST(t_account_lists_only_real_delegations)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(stor_write(f.stor, stale_delegation_fn, c), STOR_OK);
    free(c);
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], cookie[OAUTH_TOKEN_BUFLEN + 32];
    cfx_page_session(&f, CFX_USER, sid, csrf);
    snprintf(cookie, sizeof(cookie), "__Host-csc_approve=%s", sid);
    cfx_req_t q = {.method = "GET", .path = "/account", .cookie = cookie};
    cfx_reply_t x;
    cfx_call(&f, &q, &x);
    assert_page(&x, 200);
    ck_assert_ptr_nonnull(strstr(x.text, "id=\"cred-" CFX_CRED_EC "\""));
    ck_assert_ptr_null(strstr(x.text, "not-alices"));
    cfx_reply_free(&x);
}
END_TEST

/* ---- the pages' languages (issue 16) ----------------------------------------------------------------- */

#define JA_USER_NAME "\xe3\x83\xa6\xe3\x83\xbc\xe3\x82\xb6\xe3\x83\xbc\xe5\x90\x8d" /* ユーザー名 */
#define JA_NOT_REGISTERED "\xe7\x99\xbb\xe9\x8c\xb2\xe3\x81\x95\xe3\x82\x8c\xe3\x81\xa6\xe3\x81\x84\xe3\x81\xbe\xe3\x81\x9b\xe3\x82\x93" /* 登録されていません */
#define JA_CONSENT_TITLE "\xe7\xbd\xb2\xe5\x90\x8d\xe3\x81\xae\xe6\x89\xbf\xe8\xaa\x8d" /* 署名の承認 */

/* A page in ja (Japanese text, <html lang="ja">) or en (English, and none of the Japanese text). */
static void assert_lang(const cfx_reply_t *x, const char *lang, const char *ja_text, const char *en_text)
{
    if (strcmp(lang, "ja") == 0) {
        ck_assert_msg(strstr(x->text, "<html lang=\"ja\">") != NULL, "not ja: %.200s", x->text);
        ck_assert_msg(strstr(x->text, ja_text) != NULL, "no Japanese text: %.2000s", x->text);
        ck_assert_ptr_null(strstr(x->text, en_text));
        ck_assert_ptr_nonnull(strstr(x->text, "id=\"lang-en\"")); /* the switch to the other language */
    } else {
        ck_assert_msg(strstr(x->text, "<html lang=\"en\">") != NULL, "not en: %.200s", x->text);
        ck_assert_ptr_nonnull(strstr(x->text, en_text));
        ck_assert_ptr_null(strstr(x->text, ja_text));
        ck_assert_ptr_nonnull(strstr(x->text, "id=\"lang-ja\""));
    }
    ck_assert_ptr_nonnull(strstr(x->text, "Noto Sans CJK JP")); /* the Japanese font stack */
}

/* Every page in each language: from Accept-Language, the cookie over it, ?lang= over both (and remembered). */
START_TEST(t_pages_in_both_languages)
{
    static const char *const langs[] = {"ja", "en"};
    char verifier[64], challenge[64], q[512];
    pkce(verifier, challenge);
    authz_query(q, sizeof(q), challenge, "");
    const char *paths[][2] = {{"/oauth2/authorize", q}, {"/approve", NULL}, {"/account", NULL}, {"/enroll", NULL}};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        for (size_t l = 0; l < 2; l++) {
            cfx_reply_t x;
            browser_t b = {.accept = strcmp(langs[l], "ja") == 0 ? "ja-JP,ja;q=0.9,en;q=0.8" : "en-GB,en;q=0.9,ja;q=0.5"};
            get(&b, paths[i][0], paths[i][1], &x);
            assert_page(&x, 200);
            assert_lang(&x, langs[l], JA_USER_NAME, "User name");
            ck_assert_ptr_null(x.r.set_cookie2); /* nothing chosen: nothing remembered */
            cfx_reply_free(&x);
            /* the cookie overrides Accept-Language */
            browser_t c = {.accept = b.accept, .lang = langs[1 - l]};
            get(&c, paths[i][0], paths[i][1], &x);
            assert_page(&x, 200);
            assert_lang(&x, langs[1 - l], JA_USER_NAME, "User name");
            cfx_reply_free(&x);
        }
    /* the switch: ?lang=ja over the cookie and the header, remembered beside the page's own cookie */
    browser_t b = {.accept = "en", .lang = "en"};
    cfx_reply_t x;
    get(&b, "/approve", "lang=ja", &x);
    assert_page(&x, 200);
    assert_lang(&x, "ja", JA_USER_NAME, "User name");
    ck_assert_ptr_nonnull(x.r.set_cookie);
    ck_assert_ptr_nonnull(x.r.set_cookie2);
    ck_assert_ptr_nonnull(strstr(x.r.set_cookie2, "lang=ja;"));
    ck_assert_ptr_nonnull(strstr(x.r.set_cookie2, "Max-Age=31536000"));
    ck_assert_ptr_nonnull(strstr(x.text, "href=\"/approve?lang=en\""));
    cfx_reply_free(&x);
    /* the sign-in page's switch keeps the authorization request (without its own lang) */
    char ql[600];
    snprintf(ql, sizeof(ql), "%s&lang=ja", q);
    get(&b, "/oauth2/authorize", ql, &x);
    assert_page(&x, 200);
    assert_lang(&x, "ja", JA_USER_NAME, "User name");
    ck_assert_ptr_nonnull(strstr(x.text, "state=st-42&amp;lang=en\""));
    cfx_reply_free(&x);
    /* an error page: in the language asked for */
    b = (browser_t){.accept = "ja"};
    get(&b, "/oauth2/authorize", "response_type=code&client_id=nobody", &x);
    assert_page(&x, 400);
    ck_assert_ptr_nonnull(strstr(x.text, JA_NOT_REGISTERED));
    cfx_reply_free(&x);
}
END_TEST

/* The consent page in Japanese: what it shows besides (how long, PIN tries, subject, digests in blocks), and its
 * switch, a form (the page only a post shows). */
START_TEST(t_consent_in_japanese)
{
    static const char doc[] = "consent in Japanese";
    browser_t b = {.accept = "ja"};
    uint8_t md[32];
    char verifier[64], challenge[64], q[1024], fields[256], extra[512], block[16];
    cfx_reply_t x;
    ck_assert_int_eq(EVP_Digest(doc, strlen(doc), md, NULL, EVP_sha256(), NULL), 1);
    char *h_url = b64url(md, 32);
    snprintf(extra, sizeof(extra), "&scope=credential&credentialID=" CFX_CRED_OAUTH "&numSignatures=1&hashes=%s"
                                   "&hashAlgorithmOID=" SHA256, h_url);
    pkce(verifier, challenge);
    authz_query(q, sizeof(q), challenge, extra);
    get(&b, "/oauth2/authorize", q, &x);
    cfx_reply_free(&x);
    login_fields(fields, sizeof(fields), CFX_PASSWORD);
    post(&b, "/oauth2/authorize", fields, 1, &x);
    assert_page(&x, 200);
    assert_lang(&x, "ja", JA_CONSENT_TITLE, "Approve signing");
    ck_assert_ptr_nonnull(strstr(x.text, "id=\"validity\""));
    ck_assert_ptr_nonnull(strstr(x.text, "id=\"pin-tries\""));
    ck_assert_ptr_nonnull(strstr(x.text, "id=\"subject\""));
    ck_assert_ptr_nonnull(strstr(x.text, "CN="));
    /* the digest in blocks of 4 hex digits */
    snprintf(block, sizeof(block), "%02x%02x %02x%02x", md[0], md[1], md[2], md[3]);
    ck_assert_msg(strstr(x.text, block) != NULL, "no %s in %s", block, x.text);
    ck_assert_ptr_nonnull(strstr(x.text, "name=\"lang\" value=\"en\""));
    cfx_reply_free(&x);
    /* the switch posts lang with the form token: the same consent, in English, remembered */
    post(&b, "/oauth2/authorize", "lang=en", 1, &x);
    assert_page(&x, 200);
    assert_lang(&x, "en", JA_CONSENT_TITLE, "Approve signing");
    ck_assert_ptr_nonnull(strstr(x.text, "id=\"approve\""));
    ck_assert_ptr_nonnull(x.r.set_cookie2);
    ck_assert_ptr_nonnull(strstr(x.r.set_cookie2, "lang=en;"));
    ck_assert_ptr_nonnull(strstr(x.text, "wrong PINs in a row are allowed"));
    cfx_reply_free(&x);
    /* and the consent goes on */
    post(&b, "/oauth2/authorize", "action=approve&pin=" CFX_PIN, 1, &x);
    char *code = redirect_param(&x, "code");
    ck_assert_ptr_nonnull(code);
    cfx_reply_free(&x);
    free(code);
    free(h_url);
}
END_TEST

/* default_lang applies when the request names no language; Accept-Language still wins over it. */
START_TEST(t_default_lang)
{
    csc_config_t cfg;
    cfx_close(&f);
    cfx_config(&cfg);
    cfg.default_lang = "ja";
    cfx_open(&f, &cfg);
    browser_t b = {0};
    cfx_reply_t x;
    get(&b, "/approve", NULL, &x);
    assert_page(&x, 200);
    assert_lang(&x, "ja", JA_USER_NAME, "User name");
    cfx_reply_free(&x);
    b = (browser_t){.accept = "en-US"};
    get(&b, "/enroll", NULL, &x);
    assert_page(&x, 200);
    assert_lang(&x, "en", JA_USER_NAME, "User name");
    cfx_reply_free(&x);
}
END_TEST

START_TEST(t_metadata)
{
    cfx_reply_t x;
    cfx_req_t q = {.method = "GET", .path = "/.well-known/oauth-authorization-server"};
    cfx_call(&f, &q, &x);
    ck_assert_int_eq(x.r.status, 200);
    ck_assert_int_eq(x.r.page, 0);
    ck_assert_ptr_nonnull(x.json);
    ck_assert_str_eq(cfx_str(&x, "issuer", NULL), CFX_PUBLIC_URL);
    ck_assert_str_eq(cfx_str(&x, "authorization_endpoint", NULL), CFX_PUBLIC_URL "/oauth2/authorize");
    ck_assert_str_eq(cfx_str(&x, "token_endpoint", NULL), CFX_PUBLIC_URL "/oauth2/token");
    yajl_val m = cfx_arr(&x, "code_challenge_methods_supported");
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(YAJL_GET_ARRAY(m)->len, 1);
    ck_assert_str_eq(YAJL_GET_STRING(YAJL_GET_ARRAY(m)->values[0]), "S256");
    cfx_reply_free(&x);
    /* only GET */
    q.method = "POST";
    cfx_call(&f, &q, &x);
    ck_assert_int_eq(x.r.status, 405);
    cfx_reply_free(&x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("web");
    TCase *tc = tcase_create("pages");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_authorize_page);
    tcase_add_test(tc, t_wrong_password);
    tcase_add_test(tc, t_code_flow_service);
    tcase_add_test(tc, t_code_flow_credential);
    tcase_add_test(tc, t_approve_without_session);
    tcase_add_test(tc, t_enroll_and_account_pages);
    tcase_add_test(tc, t_account_lists_only_real_delegations);
    tcase_add_test(tc, t_metadata);
    tcase_add_test(tc, t_pages_in_both_languages);
    tcase_add_test(tc, t_consent_in_japanese);
    tcase_add_test(tc, t_default_lang);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
