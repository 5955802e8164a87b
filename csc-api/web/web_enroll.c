/*
 * web/web_enroll.c - the enrollment page (issue 12): a person registered by an operator (csc-admin user add) makes
 * their own factors with the one-time code they received out of band.
 *   GET  /enroll   step 1 (name and code), or step 2 again while its ticket lives
 *   POST /enroll   action=code: ENROLL_BEGIN (name, code) -> step 2: the TOTP secret as a QR code (SVG, libqrencode),
 *                  as text and as its otpauth URI, a form for the password (twice), the first code of the app, and
 *                  the PIN (twice) of each credential that waits for the person's PIN;
 *                  action=finish: ENROLL_FINISH -> "Enrolled" (the code and the ticket are gone, the user is active)
 * Same frame and protections as the sign-in pages (web_approve.c): before step 1 nothing is kept, the cookie is a
 * signed visitor ticket and the form's token is bound to it (oauth_ticket_*); step 2's cookie is csc-sam's ticket
 * (HttpOnly, Secure, SameSite=Strict, Path=/enroll, Max-Age 900) and its form carries the CSRF token csc-sam derived
 * from it, which csc-sam checks. Every decision is csc-sam's (sam/sam_op_enroll.c): this page shows and passes on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <qrencode.h>
#include "web.h"

#define ENROLL_PATH "/enroll"
#define COOKIE "csc_enroll"
#define PAGE_MAX (1024 * 1024)
#define TITLE "enroll.title"

int web_enroll_is_path(const char *path, size_t len)
{
    return len == sizeof(ENROLL_PATH) - 1 && memcmp(path, ENROLL_PATH, len) == 0;
}

/* max_age < 0: the cookie goes; 0: a session cookie; else its Max-Age. */
static void set_cookie(web_t *w, const char *value, int max_age)
{
    char buf[256];
    if (value == NULL)
        snprintf(buf, sizeof(buf), COOKIE "=; Path=" ENROLL_PATH "; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
    else if (max_age > 0)
        snprintf(buf, sizeof(buf), COOKIE "=%s; Path=" ENROLL_PATH "; Max-Age=%d; HttpOnly; Secure; SameSite=Strict",
                 value, max_age);
    else
        snprintf(buf, sizeof(buf), COOKIE "=%s; Path=" ENROLL_PATH "; HttpOnly; Secure; SameSite=Strict", value);
    free(w->reply->set_cookie);
    w->reply->set_cookie = strdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
}

static void note(web_buf_t *b, const char *error)
{
    if (error == NULL)
        return;
    web_buf_puts(b, "<p class=\"err\" role=\"alert\" id=\"error\">");
    web_buf_html(b, error);
    web_buf_puts(b, "</p>\n");
}

/* title and msg: keys of the catalogues. */
static void message_page(web_t *w, int status, const char *title, const char *msg)
{
    web_buf_t b;
    web_buf_init(&b, PAGE_MAX);
    note(&b, WEB_T(w, msg));
    web_buf_el(&b, "<p><a href=\"" ENROLL_PATH "\">", WEB_T(w, "common.start_again"), "</a></p>");
    web_page(w, status, WEB_T(w, title), &b);
    web_buf_free(&b);
}

/* Step 1 for a visitor: a new ticket (cookie) unless given, and the form bound to it. */
static void step1(web_t *w, const char *ticket, const char *error, const char *name)
{
    char fresh[OAUTH_TICKET_COOKIE_LEN], *form = NULL;
    if (ticket == NULL) {
        if (oauth_ticket_new(w->c->oauth, "enroll", fresh) != OAUTH_OK) {
            message_page(w, 503, "t.later", "m.service_busy");
            return;
        }
        set_cookie(w, fresh, 0);
        ticket = fresh;
    }
    if (oauth_ticket_form(w->c->oauth, "enroll", ticket, "", 0, &form) != OAUTH_OK) {
        set_cookie(w, NULL, -1);
        message_page(w, 400, "t.page_expired", "m.page_has_expired");
        return;
    }
    web_buf_t b;
    web_buf_init(&b, PAGE_MAX);
    web_buf_el(&b, "<p>", WEB_T(w, "enroll.intro"), "</p>\n");
    note(&b, error);
    web_buf_puts(&b, "<form method=\"post\" action=\"" ENROLL_PATH "\" autocomplete=\"off\">\n"
                     "<input type=\"hidden\" name=\"csrf\" value=\"");
    web_buf_html(&b, form);
    web_buf_el(&b, "\">\n<label for=\"name\">", WEB_T(w, "common.user_name"), "</label>");
    web_buf_puts(&b, "<input id=\"name\" name=\"name\" autocomplete=\"username\" required maxlength=\"64\" value=\"");
    web_buf_html(&b, name != NULL ? name : "");
    web_buf_el(&b, "\">\n<label for=\"code\">", WEB_T(w, "enroll.code"), "</label>");
    web_buf_puts(&b, "<input id=\"code\" name=\"code\" required maxlength=\"64\" placeholder=\"XXXX-XXXX-XXXX-XXXX\">\n");
    web_buf_el(&b, "<button id=\"begin\" name=\"action\" value=\"code\" type=\"submit\">", WEB_T(w, "enroll.continue"),
               "</button>\n</form>\n");
    web_page(w, 200, WEB_T(w, TITLE), &b);
    web_buf_free(&b);
    free(form);
}

/* The QR code of text as inline SVG (one path of unit squares, a quiet zone of 4 modules). */
static void qr_svg(web_t *w, web_buf_t *b, const char *text)
{
    QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (q == NULL) {
        web_buf_el(b, "<p>", WEB_T(w, "enroll.no_qr"), "</p>\n");
        return;
    }
    int n = q->width + 8;
    web_buf_printf(b, "<svg id=\"totp-qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
                      "height=\"%d\" role=\"img\" aria-label=\"", n, n, 4 * n, 4 * n);
    web_buf_html(b, WEB_T(w, "enroll.qr_label"));
    web_buf_printf(b, "\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"", n, n);
    for (int y = 0; y < q->width && !b->failed; y++)
        for (int x = 0; x < q->width; x++)
            if (q->data[y * q->width + x] & 1)
                web_buf_printf(b, "M%d %dh1v1h-1z", x + 4, y + 4);
    web_buf_puts(b, "\"/></svg>\n");
    QRcode_free(q);
}

int web_totp_secret(web_t *w, web_buf_t *b, const char *user, const uint8_t *secret, size_t len)
{
    char b32[128] = "", uri[512] = "";
    int rc = -1;
    if (oauth_base32_encode(secret, len, b32, sizeof(b32)) != 0 ||
        oauth_totp_uri(w->c->cfg.totp_issuer != NULL && w->c->cfg.totp_issuer[0] ? w->c->cfg.totp_issuer
                                                                                   : "CSC remote signing",
                       user, secret, len, uri, sizeof(uri)) != 0)
        goto out;
    qr_svg(w, b, uri);
    web_buf_el(b, "<p>", WEB_T(w, "enroll.by_hand"), " <code id=\"totp-secret\">");
    web_buf_html(b, b32);
    web_buf_puts(b, "</code></p>\n<p class=\"small\"><code id=\"totp-uri\">");
    web_buf_html(b, uri);
    web_buf_puts(b, "</code></p>\n");
    rc = 0;
out:
    OPENSSL_cleanse(b32, sizeof(b32));
    OPENSSL_cleanse(uri, sizeof(uri));
    return rc;
}

/* What ENROLL_BEGIN answered, for step 2. */
typedef struct step2 {
    char user[SAM_NAME_MAX + 1];
    char csrf[SAM_TOKEN_MAX + 1];
    uint8_t secret[64];
    size_t secret_len;
    size_t n;
    char creds[SAM_ENROLL_CREDS_MAX][SAM_NAME_MAX + 1];
} step2_t;

static void step2_wipe(step2_t *s)
{
    OPENSSL_cleanse(s, sizeof(*s));
}

/* ENROLL_BEGIN with the typed name and code, or with the ticket of step 2 (name NULL). The refusal code (0: none;
 * -1: csc-sam not reached) in *refusal; new_ticket (may be NULL) gets a new ticket. */
static void begin(web_t *w, const char *name, const char *code, const char *ticket, step2_t *s,
                  char new_ticket[SAM_TOKEN_MAX + 1], long *refusal)
{
    csc_sam_call_t call;
    csc_err_t err;
    const uint8_t *p;
    size_t len;
    *refusal = -1;
    memset(s, 0, sizeof(*s));
    if (csc_sam_begin(w->c, &call, SAM_OP_ENROLL_BEGIN, &err) != 0)
        return;
    if (name != NULL)
        sam_put_str(&call.b, SAM_T_USER, name);
    if (w->call->client != NULL && w->call->client[0] != '\0' && strlen(w->call->client) <= SAM_ADDR_MAX)
        sam_put_str(&call.b, SAM_T_ADDR, w->call->client);
    if (ticket != NULL)
        sam_put_str(&call.b, SAM_T_ENROLL_TICKET, ticket);
    else if (sam_put_text(&call.b, SAM_T_ENROLL_CODE, code, strlen(code)) != SAM_OK) {
        *refusal = SAM_REFUSE_UNAUTHORIZED; /* no code the protocol carries is a code */
        csc_sam_end(&call);
        return;
    }
    if (csc_sam_run(w->c, &call, CSC_ABOUT_CREDENTIAL, NULL, &err) != 0) {
        uint32_t r = 0;
        if (call.reply.op == SAM_OP_REFUSED && sam_get_u32(&call.reply, SAM_T_REFUSAL, &r) == SAM_OK)
            *refusal = r;
        csc_sam_end(&call);
        return;
    }
    sam_iter_t it;
    sam_iter_init(&call.reply, SAM_T_CRED, &it);
    while (s->n < SAM_ENROLL_CREDS_MAX && sam_iter_next(&it, &p, &len)) {
        memcpy(s->creds[s->n], p, len);
        s->creds[s->n++][len] = '\0';
    }
    if (sam_get_text(&call.reply, SAM_T_USER, s->user, sizeof(s->user)) == SAM_OK &&
        sam_get_text(&call.reply, SAM_T_CSRF, s->csrf, sizeof(s->csrf)) == SAM_OK &&
        sam_get_bytes(&call.reply, SAM_T_TOTP_SECRET, &p, &len) == SAM_OK && len <= sizeof(s->secret) &&
        (new_ticket == NULL ||
         sam_get_text(&call.reply, SAM_T_ENROLL_TICKET, new_ticket, SAM_TOKEN_MAX + 1) == SAM_OK)) {
        memcpy(s->secret, p, len);
        s->secret_len = len;
        *refusal = 0;
    }
    csc_sam_end(&call);
}

/* Step 2: the TOTP secret (QR code, text, URI) and the form. */
static void step2_page(web_t *w, const step2_t *s, const char *error)
{
    web_buf_t b, user;
    web_buf_init(&b, PAGE_MAX);
    web_buf_init(&user, 1024);
    web_buf_el(&user, "<strong id=\"user\">", s->user, "</strong>");
    web_buf_puts(&b, "<p>");
    web_buf_say_html(&b, WEB_T(w, "enroll.step2_intro"), user.p != NULL ? user.p : "");
    web_buf_puts(&b, "</p>\n");
    web_buf_free(&user);
    note(&b, error);
    if (web_totp_secret(w, &b, s->user, s->secret, s->secret_len) != 0) {
        web_buf_free(&b);
        message_page(w, 500, "t.error", "m.enrollment_could_not_shown");
        return;
    }
    web_buf_puts(&b, "<form method=\"post\" action=\"" ENROLL_PATH "\" autocomplete=\"off\">\n"
                     "<input type=\"hidden\" name=\"csrf\" value=\"");
    web_buf_html(&b, s->csrf);
    web_buf_el(&b, "\">\n<label for=\"password\">", WEB_T(w, "enroll.choose_password"), "</label>");
    web_buf_puts(&b, "<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required "
                     "maxlength=\"128\">\n");
    web_buf_el(&b, "<label for=\"password2\">", WEB_T(w, "enroll.password_again"), "</label>");
    web_buf_puts(&b, "<input id=\"password2\" name=\"password2\" type=\"password\" autocomplete=\"new-password\" "
                     "required maxlength=\"128\">\n");
    web_buf_el(&b, "<label for=\"otp\">", WEB_T(w, "common.code_now"), "</label>");
    web_buf_puts(&b, "<input id=\"otp\" name=\"otp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" "
                     "pattern=\"[0-9]{6}\" required maxlength=\"6\">\n");
    for (size_t i = 0; i < s->n; i++) {
        web_buf_t id;
        web_buf_init(&id, 1024);
        web_buf_el(&id, "<span class=\"cred-id\">", s->creds[i], "</span>");
        web_buf_puts(&b, "<fieldset class=\"cred\"><legend>");
        web_buf_say_html(&b, WEB_T(w, "enroll.pin_of_key"), id.p != NULL ? id.p : "");
        web_buf_free(&id);
        web_buf_el(&b, "</legend><label>", WEB_T(w, "enroll.pin_digits"), "<input name=\"pin_");
        web_buf_html(&b, s->creds[i]);
        web_buf_el(&b, "\" type=\"password\" inputmode=\"numeric\" pattern=\"[0-9]*\" required maxlength=\"32\">"
                       "</label><label>", WEB_T(w, "common.pin_again"), "<input name=\"pin2_");
        web_buf_html(&b, s->creds[i]);
        web_buf_puts(&b, "\" type=\"password\" inputmode=\"numeric\" pattern=\"[0-9]*\" required maxlength=\"32\">"
                         "</label></fieldset>\n");
    }
    web_buf_el(&b, "<button id=\"finish\" name=\"action\" value=\"finish\" type=\"submit\">", WEB_T(w, "enroll.finish"),
               "</button>\n</form>\n");
    web_page(w, 200, WEB_T(w, TITLE), &b);
    web_buf_free(&b);
}

/* The step 2 of ticket again (with error), or, when it is over, step 1 with a fresh visitor ticket. */
static void step2_again(web_t *w, const char *ticket, const char *error)
{
    step2_t *s = calloc(1, sizeof(*s));
    long refusal = -1;
    if (s != NULL)
        begin(w, NULL, NULL, ticket, s, NULL, &refusal);
    if (refusal == 0) {
        step2_page(w, s, error);
    } else if (refusal < 0) {
        message_page(w, 503, "t.later", "m.service_cannot_enroll_right");
    } else {
        step1(w, NULL, WEB_T(w, "enroll.expired_again"), NULL);
    }
    if (s != NULL) {
        step2_wipe(s);
        free(s);
    }
}

static void do_code(web_t *w, const web_form_t *f, const char *ticket)
{
    const char *name = web_form_get(f, "name"), *code = web_form_get(f, "code");
    char new_ticket[SAM_TOKEN_MAX + 1] = "";
    step2_t *s = calloc(1, sizeof(*s));
    long refusal = -1;
    if (s != NULL && name != NULL && code != NULL && name[0] != '\0' && strlen(name) <= SAM_NAME_MAX)
        begin(w, name, code, NULL, s, new_ticket, &refusal);
    else if (s != NULL)
        refusal = SAM_REFUSE_UNAUTHORIZED;
    if (refusal == 0) {
        set_cookie(w, new_ticket, 900);
        step2_page(w, s, NULL);
    } else if (refusal < 0) {
        message_page(w, 503, "t.later", "m.service_cannot_enroll_right");
    } else {
        step1(w, ticket, WEB_T(w, "enroll.wrong"), name);
    }
    OPENSSL_cleanse(new_ticket, sizeof(new_ticket));
    if (s != NULL) {
        step2_wipe(s);
        free(s);
    }
}

/* Two fields of the form that must be equal (constant time: they are secrets). */
static int same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strlen(a) == strlen(b) && CRYPTO_memcmp(a, b, strlen(a)) == 0;
}

static void do_finish(web_t *w, const web_form_t *f, const char *ticket)
{
    char key[8 + SAM_NAME_MAX];
    const char *pw = web_form_get(f, "password"), *otp = web_form_get(f, "otp"), *csrf = web_form_get(f, "csrf");
    step2_t *s = calloc(1, sizeof(*s));
    long refusal = -1;
    csc_sam_call_t call;
    csc_err_t err;
    if (s != NULL)
        begin(w, NULL, NULL, ticket, s, NULL, &refusal); /* which credentials the form must carry */
    if (refusal != 0) {
        if (refusal > 0)
            set_cookie(w, NULL, -1);
        step2_again(w, ticket, NULL);
        goto out;
    }
    if (!same(pw, web_form_get(f, "password2"))) {
        step2_page(w, s, WEB_T(w, "enroll.passwords_differ"));
        goto out;
    }
    for (size_t i = 0; i < s->n; i++) {
        snprintf(key, sizeof(key), "pin_%s", s->creds[i]);
        const char *p1 = web_form_get(f, key);
        snprintf(key, sizeof(key), "pin2_%s", s->creds[i]);
        if (!same(p1, web_form_get(f, key))) {
            step2_page(w, s, WEB_T(w, "enroll.pins_differ"));
            goto out;
        }
    }
    if (csrf == NULL || otp == NULL || csc_sam_begin(w->c, &call, SAM_OP_ENROLL_FINISH, &err) != 0) {
        step2_page(w, s, WEB_T(w, "enroll.not_sent"));
        goto out;
    }
    for (size_t i = 0; i < s->n; i++)
        sam_put_str(&call.b, SAM_T_CRED, s->creds[i]);
    for (size_t i = 0; i < s->n; i++) {
        snprintf(key, sizeof(key), "pin_%s", s->creds[i]);
        const char *p1 = web_form_get(f, key);
        (void)sam_put_text(&call.b, SAM_T_PIN, p1, strlen(p1));
    }
    (void)sam_put_text(&call.b, SAM_T_OTP, otp, strlen(otp));
    if (w->call->client != NULL && w->call->client[0] != '\0' && strlen(w->call->client) <= SAM_ADDR_MAX)
        sam_put_str(&call.b, SAM_T_ADDR, w->call->client);
    (void)sam_put_text(&call.b, SAM_T_CSRF, csrf, strlen(csrf));
    sam_put_str(&call.b, SAM_T_ENROLL_TICKET, ticket);
    (void)sam_put_text(&call.b, SAM_T_PASSWORD, pw, strlen(pw));
    if (csc_sam_run(w->c, &call, CSC_ABOUT_CREDENTIAL, NULL, &err) == 0) {
        set_cookie(w, NULL, -1);
        web_buf_t b;
        web_buf_init(&b, PAGE_MAX);
        web_buf_t user;
        web_buf_init(&user, 1024);
        web_buf_el(&user, "<strong id=\"user\">", s->user, "</strong>");
        web_buf_puts(&b, "<p id=\"note\">");
        web_buf_say_html(&b, WEB_T(w, "enroll.done"), user.p != NULL ? user.p : "");
        web_buf_free(&user);
        web_buf_el(&b, "</p><p><a href=\"/account\">", WEB_T(w, "account.title"), "</a></p>");
        web_page(w, 200, WEB_T(w, "enroll.done_title"), &b);
        web_buf_free(&b);
    } else {
        uint32_t r = 0, about = 0;
        char reason[SAM_REASON_MAX + 1] = "";
        int refused = call.reply.op == SAM_OP_REFUSED && sam_get_u32(&call.reply, SAM_T_REFUSAL, &r) == SAM_OK;
        (void)sam_get_u32(&call.reply, SAM_T_ABOUT, &about);
        if (refused && sam_get_text(&call.reply, SAM_T_REASON, reason, sizeof(reason)) != SAM_OK)
            reason[0] = '\0';
        if (!refused)
            step2_page(w, s, WEB_T(w, "m.service_cannot_enroll_right"));
        else if (r == SAM_REFUSE_BAD_MESSAGE && (about == SAM_T_PASSWORD || about == SAM_T_PIN))
            step2_page(w, s, reason); /* the rule broken, in words for the person */
        else if (r == SAM_REFUSE_UNAUTHORIZED && about == SAM_T_OTP)
            step2_page(w, s, WEB_T(w, "enroll.code_wrong"));
        else if (r == SAM_REFUSE_LOCKED) {
            set_cookie(w, NULL, -1);
            message_page(w, 400, "t.enroll_ended", "enroll.too_many");
        } else {
            set_cookie(w, NULL, -1);
            message_page(w, 400, "t.enroll_ended", "m.enrollment_has_expired_ended");
        }
        OPENSSL_cleanse(reason, sizeof(reason));
    }
    csc_sam_end(&call);
out:
    if (s != NULL) {
        step2_wipe(s);
        free(s);
    }
}

static void enroll_post(web_t *w)
{
    web_form_t f;
    char cookie[OAUTH_TICKET_COOKIE_LEN];
    const char *body = (const char *)w->call->body, *action;
    memset(&f, 0, sizeof(f));
    if (w->call->cookie == NULL ||
        web_cookie_get(w->call->cookie, w->call->cookie_len, COOKIE, cookie, sizeof(cookie)) != 0) {
        step1(w, NULL, WEB_T(w, "m.page_has_expired_start"), NULL);
        goto out;
    }
    if (web_form_parse(body ? body : "", w->call->body_len, &f) != 0) {
        set_cookie(w, NULL, -1);
        message_page(w, 400, "t.refused", "m.form_could_not_verified2");
        goto out;
    }
    action = web_form_get(&f, "action");
    if (strchr(cookie, '.') != NULL) { /* a visitor's ticket: step 1 */
        char *payload = NULL;
        size_t len = 0;
        int rc = oauth_ticket_check(w->c->oauth, "enroll", cookie, web_form_get(&f, "csrf"), &payload, &len);
        free(payload);
        if (rc != OAUTH_OK) {
            set_cookie(w, NULL, -1);
            message_page(w, 400, "t.refused", rc == OAUTH_ERR_EXPIRED ? "m.page_has_expired_start"
                                                                      : "m.form_could_not_verified2");
        } else if (action != NULL && strcmp(action, "code") == 0) {
            do_code(w, &f, cookie);
        } else {
            step1(w, cookie, WEB_T(w, "enroll.first"), NULL);
        }
    } else if (action != NULL && strcmp(action, "finish") == 0) {
        do_finish(w, &f, cookie);
    } else {
        step2_again(w, cookie, NULL);
    }
out:
    web_form_free(&f);
    OPENSSL_cleanse(cookie, sizeof(cookie));
}

void web_enroll_handle(csc_t *c, const csc_call_t *call, csc_reply_t *reply)
{
    web_t w;
    char cookie[OAUTH_TICKET_COOKIE_LEN];

    memset(reply, 0, sizeof(*reply));
    web_init(&w, c, call, reply);
    if (call->http_method_len == 3 && memcmp(call->http_method, "GET", 3) == 0) {
        if (call->cookie != NULL && web_cookie_get(call->cookie, call->cookie_len, COOKIE, cookie, sizeof(cookie)) == 0 &&
            strchr(cookie, '.') == NULL)
            step2_again(&w, cookie, NULL);
        else
            step1(&w, NULL, NULL, NULL);
        OPENSSL_cleanse(cookie, sizeof(cookie));
    } else if (call->http_method_len == 4 && memcmp(call->http_method, "POST", 4) == 0) {
        enroll_post(&w);
    } else {
        csc_reply_error(reply, 405, "invalid_request", "Method not allowed");
    }
}
