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
    return WEB_T(w, is_account(w) ? "account.title" : "approve.title");
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

/* title and msg: keys of the catalogues. */
static void message_page(web_t *w, int status, const char *title, const char *msg)
{
    web_buf_t b;
    web_buf_init(&b, PAGE_MAX);
    web_buf_el(&b, "<p class=\"err\" role=\"alert\" id=\"error\">", WEB_T(w, msg), "</p>");
    web_buf_printf(&b, "<p><a href=\"%s\">", page_path(w));
    web_buf_el(&b, "", WEB_T(w, "common.start_again"), "</a></p>");
    web_page(w, status, WEB_T(w, title), &b);
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
    web_buf_el(&b, "<p>", WEB_T(w, is_account(w) ? "account.login_intro" : "approve.login_intro"), "</p>\n");
    if (error != NULL)
        web_buf_el(&b, "<p class=\"err\" role=\"alert\" id=\"error\">", error, "</p>\n");
    web_approve_form(&b, page_path(w), csrf);
    web_buf_el(&b, "<label for=\"username\">", WEB_T(w, "common.user_name"), "</label>");
    web_buf_puts(&b, "<input id=\"username\" name=\"username\" autocomplete=\"username\" required maxlength=\"64\" value=\"");
    web_buf_html(&b, username != NULL ? username : "");
    web_buf_el(&b, "\">\n<label for=\"password\">", WEB_T(w, "common.password"), "</label>");
    web_buf_puts(&b, "<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" "
                     "required maxlength=\"256\">\n");
    web_buf_el(&b, "<label for=\"otp\">", WEB_T(w, "common.otp"), "</label>");
    web_buf_puts(&b, "<input id=\"otp\" name=\"otp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" "
                     "pattern=\"[0-9]{6}\" required maxlength=\"6\">\n");
    web_buf_el(&b, "<button id=\"login\" name=\"action\" value=\"login\" type=\"submit\">", WEB_T(w, "common.sign_in"),
               "</button>\n</form>\n");
    web_page(w, 200, page_title(w), &b);
    web_buf_free(&b);
}

/* What the list shows of each credential a pending request names, read before the list (whose callback runs in a
 * storage read and may not read again): the certificate's subject and the PIN failure counter. */
#define LIST_CREDS_MAX 16

typedef struct list_ctx {
    web_t *w;
    web_buf_t *b;
    const char *csrf;
    int64_t now;
    size_t n_creds;
    stor_cred_t *creds; /* LIST_CREDS_MAX */
} list_ctx_t;

/* The reference as pki_hex wrote it: 32 lower-case hex digits. */
static int unhex16(const char *s, uint8_t out[16])
{
    if (s == NULL || strlen(s) != 32 || strspn(s, "0123456789abcdef") != 32)
        return -1;
    return pki_unhex(s, 32, out, 16) == 16 ? 0 : -1;
}

static const stor_cred_t *list_cred(const list_ctx_t *l, const char *id)
{
    for (size_t i = 0; i < l->n_creds; i++)
        if (strcmp(l->creds[i].id, id) == 0)
            return &l->creds[i];
    return NULL;
}

/* First pass: the credentials the requests name (memory only: their ids; read after the pass). */
static void list_names(const oauth_approval_view_t *v, void *arg)
{
    list_ctx_t *l = arg;
    if (l->n_creds < LIST_CREDS_MAX && list_cred(l, v->cred) == NULL)
        snprintf(l->creds[l->n_creds++].id, sizeof(l->creds[0].id), "%s", v->cred);
}

/* One pending request: what will be signed, and its two buttons. Runs in a storage read: memory work only. */
static void list_one(const oauth_approval_view_t *v, void *arg)
{
    list_ctx_t *l = arg;
    web_t *w = l->w;
    web_buf_t *b = l->b;
    const stor_cred_t *cred = list_cred(l, v->cred);
    char ref[33];

    pki_hex(v->ref, 16, ref);
    web_buf_printf(b, "<section class=\"req\" id=\"req-%s\">\n<table>", ref);
    web_buf_el(b, "<tr><th>", WEB_T(w, "common.credential"), "</th><td class=\"cred\">");
    web_buf_html(b, v->cred);
    web_buf_el(b, "</td></tr><tr><th>", WEB_T(w, "common.certificate_subject"), "</th><td class=\"subject\">");
    if (cred != NULL && cred->owner[0] != '\0')
        web_buf_subject(b, cred);
    else
        web_buf_puts(b, "-");
    web_buf_el(b, "</td></tr><tr><th>", WEB_T(w, "approve.requested_from"), "</th><td>");
    web_buf_html(b, v->client[0] ? v->client : "-");
    web_buf_el(b, "</td></tr><tr><th>", WEB_T(w, "common.signatures"), "</th>");
    web_buf_printf(b, "<td class=\"num\">%u</td></tr>", v->num_signatures);
    if (v->n_digests == 0) {
        web_buf_el(b, "<tr><th>", WEB_T(w, "approve.digests"), "</th>");
        web_buf_el(b, "<td>", WEB_T(w, "approve.not_bound"), "</td></tr>");
    }
    web_buf_el(b, "<tr><th>", WEB_T(w, "approve.waits"), "</th><td class=\"expires\">");
    char *dur = web_duration(w, (unsigned)(v->expires > l->now ? v->expires - l->now : 0));
    web_buf_say(b, WEB_T(w, "approve.expires_in"), dur);
    free(dur);
    web_buf_el(b, "</td></tr><tr><th>", WEB_T(w, "consent.valid_for"), "</th><td class=\"validity\">");
    dur = web_duration(w, oauth_config(w->c->oauth)->sad_ttl);
    web_buf_say(b, WEB_T(w, "approve.validity"), dur);
    free(dur);
    web_buf_puts(b, "</td></tr>");
    if (v->needs_pin && cred != NULL && cred->owner[0] != '\0') {
        web_buf_el(b, "<tr><th>", WEB_T(w, "common.pin_attempts"), "</th><td class=\"pin-tries\">");
        web_buf_pin_tries(w, b, cred);
        web_buf_puts(b, "</td></tr>");
    }
    web_buf_puts(b, "</table>\n");
    if (v->n_digests > 0)
        web_buf_digests(w, b, v->hash_alg, v->digests, v->digest_len, v->n_digests, v->digest_len, NULL, 0);
    web_approve_form(b, APPROVE_PATH, l->csrf);
    web_buf_printf(b, "<input type=\"hidden\" name=\"ref\" value=\"%s\">\n", ref);
    if (v->needs_pin) {
        web_buf_printf(b, "<label for=\"pin-%s\">", ref);
        web_buf_el(b, "", WEB_T(w, "common.pin_of_credential"), "</label>");
        web_buf_printf(b, "<input id=\"pin-%s\" name=\"pin\" type=\"password\" inputmode=\"numeric\" maxlength=\"64\">\n",
                       ref);
    }
    web_buf_el(b, "<button name=\"action\" value=\"approve\" type=\"submit\" class=\"approve\">", WEB_T(w, "common.approve"),
               "</button>");
    web_buf_el(b, "<button name=\"action\" value=\"refuse\" type=\"submit\" class=\"secondary refuse\" formnovalidate>",
               WEB_T(w, "approve.refuse"), "</button>\n</form>\n</section>\n");
}

/* The credentials of the pending requests (a failure leaves a credential's subject and counter unshown). */
static void list_read_creds(web_t *w, const char *user, list_ctx_t *l)
{
    (void)oauth_approval_each(w->c->oauth, user, list_names, l);
    for (size_t i = 0; i < l->n_creds; i++) {
        char id[STOR_NAME_MAX + 1];
        snprintf(id, sizeof(id), "%s", l->creds[i].id);
        if (stor_cred_get(w->c->stor, id, &l->creds[i]) != STOR_OK) {
            memset(&l->creds[i], 0, sizeof(l->creds[i]));
            snprintf(l->creds[i].id, sizeof(l->creds[i].id), "%s", id);
        }
    }
}

void web_approve_list(web_t *w, const oauth_session_view_t *v, const char *note, int is_error)
{
    web_buf_t b, user;
    list_ctx_t l = {.w = w, .b = &b, .csrf = v->csrf, .now = time(NULL)};

    web_buf_init(&b, PAGE_MAX);
    web_buf_init(&user, 1024);
    web_buf_el(&user, "<strong id=\"user\">", v->user, "</strong>");
    web_buf_puts(&b, "<p>");
    web_buf_say_html(&b, WEB_T(w, "common.signed_in_as"), user.p != NULL ? user.p : "");
    web_buf_puts(&b, "</p>\n");
    web_buf_free(&user);
    if (note != NULL)
        web_buf_el(&b, is_error ? "<p class=\"err\" role=\"alert\" id=\"error\">" : "<p role=\"status\" id=\"note\">", note,
                   "</p>\n");
    if (is_account(w)) {
        web_account_list(w, v, &b);
    } else {
        l.creds = calloc(LIST_CREDS_MAX, sizeof(*l.creds));
        if (l.creds != NULL)
            list_read_creds(w, v->user, &l);
        if (oauth_approval_each(w->c->oauth, v->user, list_one, &l) == 0)
            web_buf_el(&b, "<p id=\"none\">", WEB_T(w, "approve.none"), "</p>\n");
        if (l.creds != NULL) {
            stor_wipe(l.creds, LIST_CREDS_MAX * sizeof(*l.creds));
            free(l.creds);
        }
    }
    web_approve_form(&b, page_path(w), v->csrf);
    web_buf_el(&b, "<button name=\"action\" value=\"list\" type=\"submit\" class=\"secondary\">", WEB_T(w, "approve.refresh"),
               "</button>");
    web_buf_el(&b, "<button name=\"action\" value=\"logout\" type=\"submit\" class=\"secondary\">", WEB_T(w, "common.sign_out"),
               "</button>\n</form>\n");
    web_page(w, 200, page_title(w), &b);
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
        message_page(w, 400, "t.signin_expired", "m.sign_page_has_expired3");
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
        message_page(w, 503, "t.later", "m.service_busy");
    } else {
        set_cookie(w, ticket);
        ticket_login_page(w, ticket, NULL, NULL);
    }
    OPENSSL_cleanse(sid, sizeof(sid));
}

/* Too many password/PIN checks at once (OAUTH_ERR_BUSY): nothing was checked, the session stays. */
void web_approve_busy(web_t *w)
{
    web_buf_t b;
    web_buf_init(&b, 1024);
    web_buf_printf(&b, "<p><a href=\"%s\">", page_path(w));
    web_buf_el(&b, "", WEB_T(w, "common.start_again"), "</a></p>");
    web_busy_page(w, b.p);
    web_buf_free(&b);
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
        message_page(w, 429, "t.too_many", "m.too_many_failed_attempts");
        w->reply->retry_after = oauth_config(w->c->oauth)->rate_window;
    } else if (rc == OAUTH_ERR_BUSY) {
        web_approve_busy(w);
    } else if (rc == OAUTH_ERR_DENIED) { /* also a locked account: the page never tells */
        ticket_login_page(w, ticket, WEB_T(w, "common.login_wrong"), u);
    } else if (rc == OAUTH_ERR_STORAGE || rc == OAUTH_ERR_UNAVAILABLE) {
        message_page(w, 503, "t.later", "m.service_cannot_sign_right");
        if (rc == OAUTH_ERR_UNAVAILABLE)
            w->reply->retry_after = CSC_STORAGE_RETRY_AFTER;
    } else if (rc == OAUTH_ERR_FULL || rc == OAUTH_ERR_INTERNAL) {
        message_page(w, 503, "t.later", "m.service_busy");
    } else {
        set_cookie(w, NULL);
        message_page(w, 400, "t.signin_expired", "m.sign_page_has_expired3");
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
        web_approve_list(w, v, WEB_T(w, "approve.unknown"), 1);
        return;
    }
    int rc = web_sam_decision(w, SAM_OP_APPROVE, sid, v->csrf, ref, approve, approve ? pin : NULL,
                              approve && pin != NULL ? strlen(pin) : 0, none);
    switch (rc) {
    case OAUTH_OK:
        web_approve_list(w, v, WEB_T(w, approve ? "approve.approved" : "approve.refused"), 0);
        break;
    case OAUTH_ERR_DENIED:
        web_approve_list(w, v, WEB_T(w, "common.pin_wrong"), 1);
        break;
    case OAUTH_ERR_LOCKED:
        web_approve_list(w, v, WEB_T(w, "approve.locked"), 1);
        break;
    case OAUTH_ERR_INVALID:
        web_approve_list(w, v, WEB_T(w, "approve.gone"), 1);
        break;
    case OAUTH_ERR_BUSY:
        web_approve_busy(w);
        break;
    default:
        web_approve_list(w, v, WEB_T(w, "approve.not_decided"), 1);
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
            message_page(w, 400, "t.signin_expired", "m.page_has_expired_start");
        else
            message_page(w, 400, "t.refused", "m.form_could_not_verified2");
    } else if (action != NULL && strcmp(action, "login") == 0) {
        do_login(w, f, ticket, v);
    } else {
        ticket_login_page(w, ticket, WEB_T(w, "approve.sign_in_first"), NULL);
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
        message_page(w, 400, "t.signin_expired", "m.page_has_expired_start");
        goto out;
    }
    if (web_form_parse(body ? body : "", w->call->body_len, &f) != 0) {
        set_cookie(w, NULL);
        message_page(w, 400, "t.refused", "m.form_could_not_verified2");
        goto out;
    }
    if (strchr(sid, '.') != NULL) { /* a visitor's ticket: not signed in, nothing on the server */
        ticket_post(w, sid, &f, v);
        goto out;
    }
    if (oauth_session_get(w->c->oauth, sid, v) != OAUTH_OK || v->user[0] == '\0') {
        set_cookie(w, NULL);
        message_page(w, 400, "t.signin_expired", "m.page_has_expired_start");
        goto out;
    }
    if ((csrf = web_form_get(&f, "csrf")) == NULL || strlen(csrf) != strlen(v->csrf) ||
        CRYPTO_memcmp(csrf, v->csrf, strlen(csrf)) != 0) {
        /* A form that did not come from our page: end the session. */
        oauth_session_end(w->c->oauth, sid);
        set_cookie(w, NULL);
        message_page(w, 400, "t.refused", "m.form_could_not_verified2");
        goto out;
    }
    /* A session exists only once its user signed in (do_login). */
    action = web_form_get(&f, "action");
    if (action == NULL) {
        message_page(w, 400, "t.refused", "m.step_not_expected");
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
        web_buf_el(&b, "<p id=\"note\">", WEB_T(w, "approve.signed_out"), "</p>");
        web_buf_printf(&b, "<p><a href=\"%s\">", page_path(w));
        web_buf_el(&b, "", WEB_T(w, "approve.sign_in_again"), "</a></p>");
        web_page(w, 200, WEB_T(w, "approve.signed_out_title"), &b);
        web_buf_free(&b);
    } else {
        message_page(w, 400, "t.refused", "m.step_not_expected");
    }
out:
    web_form_free(&f);
    OPENSSL_cleanse(sid, sizeof(sid));
}

void web_approve_handle(csc_t *c, const csc_call_t *call, csc_reply_t *reply)
{
    web_t w;
    oauth_session_view_t *v = calloc(1, sizeof(*v));

    memset(reply, 0, sizeof(*reply));
    web_init(&w, c, call, reply);
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
