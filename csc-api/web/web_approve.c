/*
 * web/web_approve.c - the approval page of credentials that need the user's approval outside the client
 * (auth object APPROVAL; credentials/authorize answers 202 + handle, credentials/authorizeCheck polls):
 *   GET  /approve   sign-in page (password + TOTP), or, once signed in, the user's pending requests
 *   POST /approve   the page's forms: login, approve (with the credential's PIN if its expression names PIN),
 *                   refuse, logout
 * Same rules as the OAuth pages (web_oauth.c): a __Host- cookie (HttpOnly, Secure, SameSite=Strict) with idle and
 * absolute timeouts, a CSRF token in every form compared in constant time, the same page frame (CSP without
 * scripts, no framing). Before the login nothing is kept: the cookie is a signed ticket and the form's CSRF token
 * is bound to it (oauth_ticket_*); the session starts, under a fresh id, with the correct password and TOTP. The browser session is an OAuth session of the
 * pseudo-client "approval-page" (its logins are audited as STOR_EV_LOGIN with client "oauth:approval-page@ADDR").
 * Requests are named on the page by a random reference, never by the handle itself. The page lists them from
 * storage (oauth_approval_each, read-only); the decision is csc-sam's (APPROVE, sam/sam_op_approve.c), which reads the
 * session itself: this process files, decides and answers no approval.
 * The account page (issue 12) is the same page at /account, with the same sign-in and session; its own part, the
 * user's credentials and the forms that change the user's factors, is web_account.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include "web.h"

#define APPROVE_PATH "/approve"
#define ACCOUNT_PATH "/account"
#define COOKIE "__Host-csc_approve"
#define PAGE_MAX (1024 * 1024)
#define PAGE_CLIENT OAUTH_APPROVAL_PAGE_CLIENT


int web_approve_is_path(const char *path, size_t len)
{
    return (len == sizeof(APPROVE_PATH) - 1 && memcmp(path, APPROVE_PATH, len) == 0) ||
           (len == sizeof(ACCOUNT_PATH) - 1 && memcmp(path, ACCOUNT_PATH, len) == 0);
}

static int is_account(const web_t *w)
{
    return w->call->path_len == sizeof(ACCOUNT_PATH) - 1 && memcmp(w->call->path, ACCOUNT_PATH, w->call->path_len) == 0;
}

/* The page this request is for: its forms and links point back to it. */
static const char *page_path(const web_t *w)
{
    return is_account(w) ? ACCOUNT_PATH : APPROVE_PATH;
}

static const char *page_title(const web_t *w)
{
    return is_account(w) ? "Your account" : "Approve signing requests";
}

static void set_cookie(web_t *w, const char *sid)
{
    char buf[256];
    if (sid == NULL)
        snprintf(buf, sizeof(buf), COOKIE "=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
    else
        snprintf(buf, sizeof(buf), COOKIE "=%s; Path=/; HttpOnly; Secure; SameSite=Strict", sid);
    free(w->reply->set_cookie);
    w->reply->set_cookie = strdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
}

static void message_page(web_t *w, int status, const char *title, const char *msg)
{
    web_buf_t b;
    web_buf_init(&b, PAGE_MAX);
    web_buf_puts(&b, "<p class=\"err\" role=\"alert\" id=\"error\">");
    web_buf_html(&b, msg);
    web_buf_printf(&b, "</p><p><a href=\"%s\">Start again</a></p>", page_path(w));
    web_page(w->c, w->reply, status, title, &b);
    if (status >= 400)
        w->reply->error = "invalid_request";
    web_buf_free(&b);
}

void web_approve_form(web_buf_t *b, const char *path, const char *csrf)
{
    web_buf_printf(b, "<form method=\"post\" action=\"%s\" autocomplete=\"off\">\n"
                      "<input type=\"hidden\" name=\"csrf\" value=\"", path);
    web_buf_html(b, csrf);
    web_buf_puts(b, "\">\n");
}

static void login_page(web_t *w, const char *csrf, const char *error, const char *username)
{
    web_buf_t b;
    web_buf_init(&b, PAGE_MAX);
    web_buf_puts(&b, is_account(w) ? "<p>Sign in to see your signing keys and set their PINs.</p>\n"
                                    : "<p>Sign in to see the signing requests that wait for your approval.</p>\n");
    if (error != NULL) {
        web_buf_puts(&b, "<p class=\"err\" role=\"alert\" id=\"error\">");
        web_buf_html(&b, error);
        web_buf_puts(&b, "</p>\n");
    }
    web_approve_form(&b, page_path(w), csrf);
    web_buf_puts(&b, "<label for=\"username\">User name</label>"
                     "<input id=\"username\" name=\"username\" autocomplete=\"username\" required maxlength=\"64\" value=\"");
    web_buf_html(&b, username != NULL ? username : "");
    web_buf_puts(&b, "\">\n<label for=\"password\">Password</label>"
                     "<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" "
                     "required maxlength=\"256\">\n"
                     "<label for=\"otp\">One-time code (authenticator app)</label>"
                     "<input id=\"otp\" name=\"otp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" "
                     "pattern=\"[0-9]{6}\" required maxlength=\"6\">\n"
                     "<button id=\"login\" name=\"action\" value=\"login\" type=\"submit\">Sign in</button>\n</form>\n");
    web_page(w->c, w->reply, 200, page_title(w), &b);
    web_buf_free(&b);
}

typedef struct list_ctx {
    web_buf_t *b;
    const char *csrf;
    int64_t now;
} list_ctx_t;

/* The reference as pki_hex wrote it: 32 lower-case hex digits. */
static int unhex16(const char *s, uint8_t out[16])
{
    if (s == NULL || strlen(s) != 32 || strspn(s, "0123456789abcdef") != 32)
        return -1;
    return pki_unhex(s, 32, out, 16) == 16 ? 0 : -1;
}

/* One pending request: what will be signed, and its two buttons. Runs in a storage read: memory work only. */
static void list_one(const oauth_approval_view_t *v, void *arg)
{
    list_ctx_t *l = arg;
    web_buf_t *b = l->b;
    char ref[33];

    pki_hex(v->ref, 16, ref);
    web_buf_printf(b, "<section class=\"req\" id=\"req-%s\">\n<table>", ref);
    web_buf_puts(b, "<tr><th>Credential</th><td class=\"cred\">");
    web_buf_html(b, v->cred);
    web_buf_puts(b, "</td></tr><tr><th>Requested from</th><td>");
    web_buf_html(b, v->client[0] ? v->client : "-");
    web_buf_printf(b, "</td></tr><tr><th>Signatures</th><td class=\"num\">%u</td></tr>", v->num_signatures);
    if (v->n_digests > 0) {
        const csc_hash_alg_t *alg = csc_hash_by_oid(v->hash_alg);
        web_buf_puts(b, "<tr><th>Document digests (");
        web_buf_html(b, alg != NULL ? alg->oid : "-");
        web_buf_puts(b, ")</th><td>");
        for (uint32_t i = 0; i < v->n_digests && !b->failed; i++) {
            char enc[4 * ((STOR_DIGEST_LEN_MAX + 2) / 3) + 1];
            csc_b64_encode(v->digests + (size_t)i * v->digest_len, v->digest_len, enc);
            web_buf_puts(b, "<code class=\"digest\">");
            web_buf_html(b, enc);
            web_buf_puts(b, "</code><br>");
        }
        web_buf_puts(b, "</td></tr>");
    } else {
        web_buf_puts(b, "<tr><th>Document digests</th><td>not bound (any documents)</td></tr>");
    }
    web_buf_printf(b, "<tr><th>Expires in</th><td>%lld s</td></tr></table>\n",
                   (long long)(v->expires > l->now ? v->expires - l->now : 0));
    web_approve_form(b, APPROVE_PATH, l->csrf);
    web_buf_printf(b, "<input type=\"hidden\" name=\"ref\" value=\"%s\">\n", ref);
    if (v->needs_pin)
        web_buf_printf(b, "<label for=\"pin-%s\">PIN of this credential</label>"
                          "<input id=\"pin-%s\" name=\"pin\" type=\"password\" inputmode=\"numeric\" maxlength=\"64\">\n",
                       ref, ref);
    web_buf_puts(b, "<button name=\"action\" value=\"approve\" type=\"submit\" class=\"approve\">Approve</button>"
                    "<button name=\"action\" value=\"refuse\" type=\"submit\" class=\"secondary refuse\" "
                    "formnovalidate>Refuse</button>\n</form>\n</section>\n");
}

void web_approve_list(web_t *w, const oauth_session_view_t *v, const char *note, int is_error)
{
    web_buf_t b;
    list_ctx_t l = {.b = &b, .csrf = v->csrf, .now = time(NULL)};

    web_buf_init(&b, PAGE_MAX);
    web_buf_puts(&b, "<p>Signed in as <strong id=\"user\">");
    web_buf_html(&b, v->user);
    web_buf_puts(&b, "</strong>.</p>\n");
    if (note != NULL) {
        web_buf_puts(&b, is_error ? "<p class=\"err\" role=\"alert\" id=\"error\">" : "<p role=\"status\" id=\"note\">");
        web_buf_html(&b, note);
        web_buf_puts(&b, "</p>\n");
    }
    if (is_account(w))
        web_account_list(w, v, &b);
    else if (oauth_approval_each(w->c->oauth, v->user, list_one, &l) == 0)
        web_buf_puts(&b, "<p id=\"none\">No request is waiting for your approval.</p>\n");
    web_approve_form(&b, page_path(w), v->csrf);
    web_buf_puts(&b, "<button name=\"action\" value=\"list\" type=\"submit\" class=\"secondary\">Refresh</button>"
                     "<button name=\"action\" value=\"logout\" type=\"submit\" class=\"secondary\">Sign out</button>\n"
                     "</form>\n");
    web_page(w->c, w->reply, 200, page_title(w), &b);
    web_buf_free(&b);
}

static int session_of(web_t *w, char sid[OAUTH_TOKEN_BUFLEN], oauth_session_view_t *v)
{
    return w->call->cookie != NULL &&
                   web_cookie_get(w->call->cookie, w->call->cookie_len, COOKIE, sid, OAUTH_TOKEN_BUFLEN) == 0 &&
                   oauth_session_get(w->c->oauth, sid, v) == OAUTH_OK
               ? 0
               : -1;
}

/* The sign-in page of a visitor: a ticket (cookie) and its form token, nothing kept on the server. */
static void ticket_login_page(web_t *w, const char *ticket, const char *error, const char *username)
{
    char *form = NULL;
    if (oauth_ticket_form(w->c->oauth, "approve", ticket, "", 0, &form) != OAUTH_OK) {
        set_cookie(w, NULL);
        message_page(w, 400, "Sign-in expired", "This sign-in page has expired.");
        return;
    }
    login_page(w, form, error, username);
    free(form);
}

static void approve_get(web_t *w, oauth_session_view_t *v)
{
    char sid[OAUTH_TOKEN_BUFLEN], ticket[OAUTH_TICKET_COOKIE_LEN];

    if (session_of(w, sid, v) == 0 && v->user[0] != '\0') {
        web_approve_list(w, v, NULL, 0);
    } else if (oauth_ticket_new(w->c->oauth, "approve", ticket) != OAUTH_OK) {
        message_page(w, 503, "Try again later", "The service is busy.");
    } else {
        set_cookie(w, ticket);
        ticket_login_page(w, ticket, NULL, NULL);
    }
    OPENSSL_cleanse(sid, sizeof(sid));
}

/* Too many password/PIN checks at once (OAUTH_ERR_BUSY): nothing was checked, the session stays. */
void web_approve_busy(web_t *w)
{
    web_busy_page(w->c, w->reply, is_account(w) ? "<p><a href=\"" ACCOUNT_PATH "\">Start again</a></p>"
                                                : "<p><a href=\"" APPROVE_PATH "\">Start again</a></p>");
}

/* The login of a visitor (ticket checked): the session starts only now, signed in. */
static void do_login(web_t *w, const web_form_t *f, const char *ticket, oauth_session_view_t *v)
{
    const char *u = web_form_get(f, "username"), *pw = web_form_get(f, "password"), *otp = web_form_get(f, "otp");
    char sid[OAUTH_TOKEN_BUFLEN] = "", csrf[OAUTH_TOKEN_BUFLEN] = "";
    oauth_authz_request_t *req = calloc(1, sizeof(*req));
    int rc = OAUTH_ERR_INTERNAL;

    if (req != NULL) {
        snprintf(req->client_id, sizeof(req->client_id), "%s", PAGE_CLIENT);
        req->scope = STOR_SCOPE_SERVICE;
        rc = u != NULL && pw != NULL && otp != NULL && strlen(u) <= STOR_NAME_MAX
                 ? web_sam_login(w, req, u, pw, otp, sid, csrf)
                 : OAUTH_ERR_DENIED;
        free(req);
    }
    if (rc == OAUTH_OK && oauth_session_get(w->c->oauth, sid, v) == OAUTH_OK) {
        /* A new id once signed in: the ticket from before the login is worth nothing (fixation). */
        set_cookie(w, sid);
        web_approve_list(w, v, NULL, 0);
    } else if (rc == OAUTH_ERR_RATE) {
        message_page(w, 429, "Too many attempts", "Too many failed attempts came from your address. Wait a few minutes.");
        w->reply->retry_after = oauth_config(w->c->oauth)->rate_window;
    } else if (rc == OAUTH_ERR_BUSY) {
        web_approve_busy(w);
    } else if (rc == OAUTH_ERR_DENIED) { /* also a locked account: the page never tells */
        ticket_login_page(w, ticket, "The user name, password or one-time code is not correct.", u);
    } else if (rc == OAUTH_ERR_STORAGE || rc == OAUTH_ERR_UNAVAILABLE) {
        message_page(w, 503, "Try again later", "The service cannot sign you in right now. Try again in a minute.");
        if (rc == OAUTH_ERR_UNAVAILABLE)
            w->reply->retry_after = CSC_STORAGE_RETRY_AFTER;
    } else if (rc == OAUTH_ERR_FULL || rc == OAUTH_ERR_INTERNAL) {
        message_page(w, 503, "Try again later", "The service is busy.");
    } else {
        set_cookie(w, NULL);
        message_page(w, 400, "Sign-in expired", "This sign-in page has expired.");
    }
    OPENSSL_cleanse(sid, sizeof(sid));
    OPENSSL_cleanse(csrf, sizeof(csrf));
}

/* The decision is csc-sam's (APPROVE): it reads the session, checks the form's CSRF token, that the request is the
 * session user's and still pending, the PIN, and records the decision. */
static void do_decide(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v, int approve)
{
    uint8_t ref[16];
    const char *pin = web_form_get(f, "pin");
    char none[OAUTH_TOKEN_BUFLEN];

    if (unhex16(web_form_get(f, "ref"), ref) != 0) {
        web_approve_list(w, v, "That request is not known.", 1);
        return;
    }
    int rc = web_sam_decision(w, SAM_OP_APPROVE, sid, v->csrf, ref, approve, approve ? pin : NULL,
                              approve && pin != NULL ? strlen(pin) : 0, none);
    switch (rc) {
    case OAUTH_OK:
        web_approve_list(w, v, approve ? "Approved. The application can now sign." : "Refused.", 0);
        break;
    case OAUTH_ERR_DENIED:
        web_approve_list(w, v, "The PIN is not correct. Try again.", 1);
        break;
    case OAUTH_ERR_LOCKED:
        web_approve_list(w, v, "Too many failed attempts: the credential is locked for a while. The request was refused.", 1);
        break;
    case OAUTH_ERR_INVALID:
        web_approve_list(w, v, "That request is no longer waiting (decided, expired or unknown).", 1);
        break;
    case OAUTH_ERR_BUSY:
        web_approve_busy(w);
        break;
    default:
        web_approve_list(w, v, "The request could not be decided. Try again.", 1);
        break;
    }
}

/* A post from a visitor's sign-in page (ticket cookie). */
static void ticket_post(web_t *w, const char *ticket, const web_form_t *f, oauth_session_view_t *v)
{
    char *payload = NULL;
    size_t len = 0;
    const char *action = web_form_get(f, "action");
    int rc = oauth_ticket_check(w->c->oauth, "approve", ticket, web_form_get(f, "csrf"), &payload, &len);

    free(payload);
    if (rc != OAUTH_OK) {
        /* A form that did not come from our page, or an old one. */
        set_cookie(w, NULL);
        if (rc == OAUTH_ERR_EXPIRED)
            message_page(w, 400, "Sign-in expired", "This page has expired. Start again.");
        else
            message_page(w, 400, "Request refused", "The form could not be verified (CSRF). Start again.");
    } else if (action != NULL && strcmp(action, "login") == 0) {
        do_login(w, f, ticket, v);
    } else {
        ticket_login_page(w, ticket, "Sign in first.", NULL);
    }
}

static void approve_post(web_t *w, oauth_session_view_t *v)
{
    web_form_t f;
    char sid[OAUTH_TICKET_COOKIE_LEN];
    const char *csrf, *action;
    const char *body = (const char *)w->call->body;

    memset(&f, 0, sizeof(f));
    if (w->call->cookie == NULL || web_cookie_get(w->call->cookie, w->call->cookie_len, COOKIE, sid, sizeof(sid)) != 0) {
        set_cookie(w, NULL);
        message_page(w, 400, "Sign-in expired", "This page has expired. Start again.");
        goto out;
    }
    if (web_form_parse(body ? body : "", w->call->body_len, &f) != 0) {
        set_cookie(w, NULL);
        message_page(w, 400, "Request refused", "The form could not be verified (CSRF). Start again.");
        goto out;
    }
    if (strchr(sid, '.') != NULL) { /* a visitor's ticket: not signed in, nothing on the server */
        ticket_post(w, sid, &f, v);
        goto out;
    }
    if (oauth_session_get(w->c->oauth, sid, v) != OAUTH_OK || v->user[0] == '\0') {
        set_cookie(w, NULL);
        message_page(w, 400, "Sign-in expired", "This page has expired. Start again.");
        goto out;
    }
    if ((csrf = web_form_get(&f, "csrf")) == NULL || strlen(csrf) != strlen(v->csrf) ||
        CRYPTO_memcmp(csrf, v->csrf, strlen(csrf)) != 0) {
        /* A form that did not come from our page: end the session. */
        oauth_session_end(w->c->oauth, sid);
        set_cookie(w, NULL);
        message_page(w, 400, "Request refused", "The form could not be verified (CSRF). Start again.");
        goto out;
    }
    /* A session exists only once its user signed in (do_login). */
    action = web_form_get(&f, "action");
    if (action == NULL) {
        message_page(w, 400, "Request refused", "That step is not expected now.");
    } else if (is_account(w) && web_account_action(w, &f, sid, v, action)) {
    } else if (strcmp(action, "approve") == 0 || strcmp(action, "refuse") == 0) {
        do_decide(w, &f, sid, v, strcmp(action, "approve") == 0);
    } else if (strcmp(action, "list") == 0) {
        web_approve_list(w, v, NULL, 0);
    } else if (strcmp(action, "logout") == 0) {
        oauth_session_end(w->c->oauth, sid);
        set_cookie(w, NULL);
        web_buf_t b;
        web_buf_init(&b, PAGE_MAX);
        web_buf_printf(&b, "<p id=\"note\">You are signed out.</p><p><a href=\"%s\">Sign in again</a></p>",
                       page_path(w));
        web_page(w->c, w->reply, 200, "Signed out", &b);
        web_buf_free(&b);
    } else {
        message_page(w, 400, "Request refused", "That step is not expected now.");
    }
out:
    web_form_free(&f);
    OPENSSL_cleanse(sid, sizeof(sid));
}

void web_approve_handle(csc_t *c, const csc_call_t *call, csc_reply_t *reply)
{
    web_t w = {.c = c, .call = call, .reply = reply};
    oauth_session_view_t *v = calloc(1, sizeof(*v));

    memset(reply, 0, sizeof(*reply));
    if (v == NULL)
        csc_reply_error(reply, 503, "temporarily_unavailable", "The service is temporarily unavailable");
    else if (call->http_method_len == 3 && memcmp(call->http_method, "GET", 3) == 0)
        approve_get(&w, v);
    else if (call->http_method_len == 4 && memcmp(call->http_method, "POST", 4) == 0)
        approve_post(&w, v);
    else
        csc_reply_error(reply, 405, "invalid_request", "Method not allowed");
    if (v != NULL)
        OPENSSL_clear_free(v, sizeof(*v));
}
