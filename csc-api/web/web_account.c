/*
 * web/web_account.c - the account page's own part (issue 12): /account is the approval page's sibling (web_approve.c
 * keeps the sign-in, the session, the page frame and the dispatch of its forms) and lists the user's credentials (own
 * and delegated: status, certificate subject), with, for each one that waits for this user's PIN, a form whose PIN
 * csc-sam sets, and for each whose PIN is set, a form that changes it with the old PIN (ACCOUNT_PIN); and the change
 * of the password with the old one (ACCOUNT_PASSWORD), and a new TOTP secret in two steps (a code of the old one,
 * then the new one shown once with its QR code and proven by a code: ACCOUNT_TOTP_BEGIN, _FINISH). csc-sam (sam/sam_op_account.c) reads the session and checks
 * the form itself; this process only renders and forwards: it verifies no factor and sets no verifier.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "web.h"

#define ACCOUNT_PATH "/account"

typedef struct acct {
    web_t *w;
    web_buf_t *b;
    const char *user;
    const char *csrf;
    stor_txn_t *t;
    stor_cred_t *c;  /* scratch for a delegated credential */
    unsigned n;
} acct_t;

/* One credential of the user (own or delegated): a row, and the PIN form when it waits for the user's PIN. */
static int acct_row(const stor_cred_t *c, void *arg)
{
    acct_t *a = arg;
    web_t *w = a->w;
    web_buf_t *b = a->b;
    char subj[256] = "-";
    X509 *certs[4];
    size_t n = 0;
    int waiting = c->status != STOR_CRED_DESTROYED && stor_cred_pin_unset(c, a->user);
    if (pki_certs_load(c->certs, c->certs_len, certs, 4, &n) == PKI_OK && n > 0)
        pki_dn(X509_get_subject_name(certs[0]), subj, sizeof(subj));
    pki_certs_free(certs, n);
    a->n++;
    web_buf_puts(b, "<tr class=\"cred\" id=\"cred-");
    web_buf_html(b, c->id);
    web_buf_puts(b, "\"><td class=\"id\">");
    web_buf_html(b, c->id);
    if (strcmp(c->owner, a->user) != 0)
        web_buf_el(b, " ", WEB_T(w, "account.delegated"), "");
    web_buf_el(b, "</td><td class=\"status\">",
               WEB_T(w, c->status == STOR_CRED_ENABLED     ? "account.status_enabled"
                        : c->status == STOR_CRED_DESTROYED ? "account.status_destroyed"
                        : c->status == STOR_CRED_PENDING   ? "account.status_pending"
                                                           : "account.status_disabled"),
               "</td><td class=\"subject\">");
    web_buf_html(b, subj);
    web_buf_el(b, "</td><td class=\"pin\">",
               waiting ? WEB_T(w, "account.pin_not_set") : strstr(c->auth_expr, "PIN") ? WEB_T(w, "account.pin_set") : "-", "");
    /* Waiting: set it. Set: change it with the old one (csc-sam checks it and counts a wrong one). */
    int change = !waiting && c->status != STOR_CRED_DESTROYED && strstr(c->auth_expr, "PIN") != NULL;
    if (waiting || change) {
        web_approve_form(b, ACCOUNT_PATH, a->csrf);
        web_buf_puts(b, "<input type=\"hidden\" name=\"cred\" value=\"");
        web_buf_html(b, c->id);
        web_buf_puts(b, "\">");
        if (change)
            web_buf_el(b, "<label>", WEB_T(w, "account.current_pin"), "<input name=\"old_pin\" type=\"password\" "
                          "inputmode=\"numeric\" pattern=\"[0-9]*\" required maxlength=\"32\"></label>");
        web_buf_el(b, "<label>", WEB_T(w, "account.new_pin"), "<input name=\"pin\" type=\"password\" inputmode=\"numeric\" "
                      "pattern=\"[0-9]*\" required maxlength=\"32\"></label>");
        web_buf_el(b, "<label>", WEB_T(w, "common.pin_again"), "<input name=\"pin2\" type=\"password\" "
                      "inputmode=\"numeric\" pattern=\"[0-9]*\" required maxlength=\"32\"></label>");
        web_buf_printf(b, "<button name=\"action\" value=\"pin\" type=\"submit\" class=\"%s\">",
                       change ? "change-pin" : "set-pin");
        web_buf_el(b, "", WEB_T(w, change ? "account.change_pin" : "account.set_pin"), "</button></form>");
    }
    web_buf_puts(b, "</td></tr>\n");
    return 0;
}

/* A credential the delegation index names for the user: listed only while its record still names them (as
 * credentials/list does). */
static int acct_delegated(const char *id, void *arg)
{
    acct_t *a = arg;
    int rc = stor_txn_cred_get(a->t, id, a->c);
    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    return stor_cred_delegate(a->c, a->user) >= 0 ? acct_row(a->c, a) : 0;
}

static int acct_fn(stor_txn_t *t, void *arg)
{
    acct_t *a = arg;
    a->t = t;
    int rc = stor_txn_cred_each(t, a->user, acct_row, a);
    return rc != 0 ? rc : stor_txn_delegation_each(t, a->user, acct_delegated, a);
}

void web_account_list(web_t *w, const oauth_session_view_t *v, web_buf_t *b)
{
    acct_t a = {.w = w, .b = b, .user = v->user, .csrf = v->csrf};
    web_buf_el(b, "<table id=\"creds\"><tr><th>", WEB_T(w, "common.signing_key"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "account.status"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "account.certificate"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "account.pin"), "</th></tr>\n");
    if ((a.c = malloc(sizeof(*a.c))) == NULL || stor_read(w->c->stor, acct_fn, &a) != 0)
        web_buf_el(b, "<tr><td colspan=\"4\">", WEB_T(w, "account.cannot_list"), "</td></tr>\n");
    web_buf_puts(b, "</table>\n");
    if (a.n == 0)
        web_buf_el(b, "<p id=\"none\">", WEB_T(w, "account.no_key"), "</p>\n");
    web_account_view(w, v, b); /* backups, restore requests, recent activity */
    web_buf_el(b, "<h2>", WEB_T(w, "common.password"), "</h2>\n<section id=\"password-change\">\n");
    web_approve_form(b, ACCOUNT_PATH, v->csrf);
    web_buf_el(b, "<label for=\"old_password\">", WEB_T(w, "account.current_password"), "</label>");
    web_buf_puts(b, "<input id=\"old_password\" name=\"old_password\" type=\"password\" autocomplete=\"current-password\" "
                    "required maxlength=\"256\">\n");
    web_buf_el(b, "<label for=\"new_password\">", WEB_T(w, "account.new_password"), "</label>");
    web_buf_puts(b, "<input id=\"new_password\" name=\"new_password\" type=\"password\" autocomplete=\"new-password\" "
                    "required maxlength=\"256\">\n");
    web_buf_el(b, "<label for=\"new_password2\">", WEB_T(w, "account.new_password_again"), "</label>");
    web_buf_puts(b, "<input id=\"new_password2\" name=\"new_password2\" type=\"password\" autocomplete=\"new-password\" "
                    "required maxlength=\"256\">\n");
    web_buf_el(b, "<button id=\"change-password\" name=\"action\" value=\"password\" type=\"submit\">",
               WEB_T(w, "account.change_password"), "</button>\n</form>\n</section>\n");
    web_buf_el(b, "<h2>", WEB_T(w, "account.authenticator"), "</h2>\n<section id=\"totp-change\">\n");
    web_buf_el(b, "<p>", WEB_T(w, "account.totp_intro"), "</p>\n");
    web_approve_form(b, ACCOUNT_PATH, v->csrf);
    web_buf_el(b, "<label for=\"totp_old\">", WEB_T(w, "common.code_now"), "</label>");
    web_buf_puts(b, "<input id=\"totp_old\" name=\"otp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" "
                    "pattern=\"[0-9]{6}\" required maxlength=\"6\">\n");
    web_buf_el(b, "<button id=\"totp-begin\" name=\"action\" value=\"totp_begin\" type=\"submit\">",
               WEB_T(w, "account.new_secret"), "</button>\n</form>\n</section>\n");
    if (a.c != NULL) {
        stor_wipe(a.c, sizeof(*a.c));
        free(a.c);
    }
}

void web_account_put_session(web_t *w, csc_sam_call_t *call, const char *sid, const oauth_session_view_t *v)
{
    sam_put_str(&call->b, SAM_T_SESSION, sid);
    if (w->call->client != NULL && w->call->client[0] != '\0' && strlen(w->call->client) <= SAM_ADDR_MAX)
        sam_put_str(&call->b, SAM_T_ADDR, w->call->client);
    sam_put_str(&call->b, SAM_T_CSRF, v->csrf);
}

/* The outcome of an account op's call, for the page: 0 done, else the refusal code (SAM_REFUSE_INTERNAL when csc-sam
 * was not reached), with *about and the reason (for people) when csc-sam said one. */
static uint32_t account_run(web_t *w, csc_sam_call_t *call, uint32_t *about, char reason[SAM_REASON_MAX + 1])
{
    csc_err_t err;
    uint32_t r = SAM_REFUSE_INTERNAL;
    *about = 0;
    reason[0] = '\0';
    if (csc_sam_run(w->c, call, CSC_ABOUT_CREDENTIAL, NULL, &err) == 0)
        return 0;
    if (call->reply.op == SAM_OP_REFUSED && sam_get_u32(&call->reply, SAM_T_REFUSAL, &r) == SAM_OK) {
        (void)sam_get_u32(&call->reply, SAM_T_ABOUT, about);
        if (sam_get_text(&call->reply, SAM_T_REASON, reason, SAM_REASON_MAX + 1) != SAM_OK)
            reason[0] = '\0';
        return r;
    }
    return SAM_REFUSE_INTERNAL;
}

/* The page after a refusal that the two changes share (r != 0). */
static void refused_page(web_t *w, const oauth_session_view_t *v, uint32_t r, const char *locked, const char *wrong,
                         const char *other)
{
    if (r == SAM_REFUSE_BUSY)
        web_approve_busy(w);
    else if (r == SAM_REFUSE_LOCKED)
        web_approve_list(w, v, locked, 1);
    else if (r == SAM_REFUSE_UNAUTHORIZED)
        web_approve_list(w, v, wrong, 1);
    else
        web_approve_list(w, v, other, 1);
}

/* ACCOUNT_PIN: csc-sam reads the session, checks the form's CSRF token, the PIN rule, and that the credential waits
 * for this user's PIN or, with the old PIN, that the old one is right (counting a wrong one). */
static void do_pin(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v)
{
    const char *cred = web_form_get(f, "cred"), *pin = web_form_get(f, "pin"), *pin2 = web_form_get(f, "pin2");
    const char *old = web_form_get(f, "old_pin");
    char reason[SAM_REASON_MAX + 1];
    csc_sam_call_t call;
    csc_err_t err;
    uint32_t about;
    if (cred == NULL || pin == NULL || pin2 == NULL || strlen(cred) > SAM_NAME_MAX || cred[0] == '\0') {
        web_approve_list(w, v, WEB_T(w, "account.signing_key_not_known"), 1);
        return;
    }
    if (strlen(pin) != strlen(pin2) || CRYPTO_memcmp(pin, pin2, strlen(pin)) != 0) {
        web_approve_list(w, v, WEB_T(w, "account.two_pins_not_same"), 1);
        return;
    }
    if ((old != NULL && strlen(old) > SAM_SECRET_MAX) || csc_sam_begin(w->c, &call, SAM_OP_ACCOUNT_PIN, &err) != 0) {
        web_approve_list(w, v, WEB_T(w, "account.pin_could_not_set"), 1);
        return;
    }
    sam_put_str(&call.b, SAM_T_CRED, cred);
    (void)sam_put_text(&call.b, SAM_T_PIN, pin, strlen(pin));
    web_account_put_session(w, &call, sid, v);
    if (old != NULL)
        (void)sam_put_text(&call.b, SAM_T_OLD_SECRET, old, strlen(old));
    uint32_t r = account_run(w, &call, &about, reason);
    if (r == 0)
        web_approve_list(w, v, old != NULL ? WEB_T(w, "account.pin_changed") : WEB_T(w, "account.pin_set2"), 0);
    else if (r == SAM_REFUSE_BAD_MESSAGE && about == SAM_T_PIN && reason[0] != '\0')
        web_approve_list(w, v, reason, 1); /* the PIN rule, in words */
    else if (r == SAM_REFUSE_NOT_FOUND && about == SAM_T_CRED)
        web_approve_list(w, v, old != NULL ? WEB_T(w, "account.signing_key_has_no")
                                           : WEB_T(w, "account.signing_key_does_not"), 1);
    else
        refused_page(w, v, r, WEB_T(w, "account.too_many_failed_attempts"),
                     WEB_T(w, "account.current_pin_not_correct"), WEB_T(w, "account.pin_could_not_set"));
    csc_sam_end(&call);
}

/* ACCOUNT_PASSWORD: the two new passwords compared here; csc-sam checks the old one (counting a wrong one as a
 * failed sign-in) and the password rules. */
static void do_password(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v)
{
    const char *old = web_form_get(f, "old_password"), *pw = web_form_get(f, "new_password");
    const char *pw2 = web_form_get(f, "new_password2");
    char reason[SAM_REASON_MAX + 1];
    csc_sam_call_t call;
    csc_err_t err;
    uint32_t about;
    if (old == NULL || pw == NULL || pw2 == NULL || strlen(pw) != strlen(pw2) ||
        CRYPTO_memcmp(pw, pw2, strlen(pw)) != 0) {
        web_approve_list(w, v, WEB_T(w, "account.two_new_passwords_not"), 1);
        return;
    }
    if (strlen(old) > SAM_SECRET_MAX || strlen(pw) > SAM_SECRET_MAX ||
        csc_sam_begin(w->c, &call, SAM_OP_ACCOUNT_PASSWORD, &err) != 0) {
        web_approve_list(w, v, WEB_T(w, "account.password_could_not_changed"), 1);
        return;
    }
    web_account_put_session(w, &call, sid, v);
    (void)sam_put_text(&call.b, SAM_T_PASSWORD, pw, strlen(pw));
    (void)sam_put_text(&call.b, SAM_T_OLD_SECRET, old, strlen(old));
    uint32_t r = account_run(w, &call, &about, reason);
    if (r == 0)
        web_approve_list(w, v, WEB_T(w, "account.password_changed_other_sessions"), 0);
    else if (r == SAM_REFUSE_BAD_MESSAGE && about == SAM_T_PASSWORD && reason[0] != '\0')
        web_approve_list(w, v, reason, 1); /* the password rules, in words */
    else
        refused_page(w, v, r, WEB_T(w, "account.too_many_failed_attempts2"),
                     WEB_T(w, "account.current_password_not_correct"), WEB_T(w, "account.password_could_not_changed"));
    csc_sam_end(&call);
}

/* Step 2 of the new TOTP secret: the secret (shown only now; NULL when the page is shown again after a wrong code)
 * and the form that proves it with a code, carrying the pending change's ticket. */
static void totp_page(web_t *w, const oauth_session_view_t *v, const char *ticket, const uint8_t *secret, size_t len,
                      const char *error)
{
    web_buf_t b, user;
    web_buf_init(&b, 1024 * 1024);
    web_buf_init(&user, 1024);
    web_buf_el(&user, "<strong id=\"user\">", v->user, "</strong>");
    web_buf_puts(&b, "<p>");
    web_buf_say_html(&b, WEB_T(w, "common.signed_in_as"), user.p != NULL ? user.p : "");
    web_buf_puts(&b, "</p>\n");
    web_buf_free(&user);
    if (error != NULL)
        web_buf_el(&b, "<p class=\"err\" role=\"alert\" id=\"error\">", error, "</p>\n");
    if (secret != NULL) {
        web_buf_el(&b, "<p>", WEB_T(w, "account.scan_new"), "</p>\n");
        if (web_totp_secret(w, &b, v->user, secret, len) != 0) {
            web_buf_free(&b);
            web_approve_list(w, v, WEB_T(w, "account.new_secret_could_not"), 1);
            return;
        }
    }
    web_approve_form(&b, ACCOUNT_PATH, v->csrf);
    web_buf_puts(&b, "<input type=\"hidden\" name=\"ticket\" value=\"");
    web_buf_html(&b, ticket);
    web_buf_el(&b, "\">\n<label for=\"totp_new\">", WEB_T(w, "account.code_new_secret"), "</label>");
    web_buf_puts(&b, "<input id=\"totp_new\" name=\"otp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" "
                     "pattern=\"[0-9]{6}\" required maxlength=\"6\">\n");
    web_buf_el(&b, "<button id=\"totp-finish\" name=\"action\" value=\"totp_finish\" type=\"submit\">",
               WEB_T(w, "account.use_new_secret"), "</button>\n</form>\n");
    web_approve_form(&b, ACCOUNT_PATH, v->csrf);
    web_buf_el(&b, "<button name=\"action\" value=\"list\" type=\"submit\" class=\"secondary\">", WEB_T(w, "common.cancel"),
               "</button></form>\n");
    web_page(w, 200, WEB_T(w, "account.title"), &b);
    web_buf_free(&b);
}

/* ACCOUNT_TOTP_BEGIN: csc-sam checks the code of the old secret (spent once; a wrong one counts) and answers the new
 * secret and its pending change's ticket. */
static void do_totp_begin(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v)
{
    const char *otp = web_form_get(f, "otp");
    char reason[SAM_REASON_MAX + 1], ticket[SAM_TOKEN_MAX + 1];
    const uint8_t *secret = NULL;
    size_t len = 0;
    csc_sam_call_t call;
    csc_err_t err;
    uint32_t about;
    if (otp == NULL || strlen(otp) > SAM_OTP_MAX || csc_sam_begin(w->c, &call, SAM_OP_ACCOUNT_TOTP_BEGIN, &err) != 0) {
        web_approve_list(w, v, WEB_T(w, "account.code_not_correct"), 1);
        return;
    }
    (void)sam_put_text(&call.b, SAM_T_OTP, otp, strlen(otp));
    web_account_put_session(w, &call, sid, v);
    uint32_t r = account_run(w, &call, &about, reason);
    if (r == 0 && sam_get_text(&call.reply, SAM_T_ENROLL_TICKET, ticket, sizeof(ticket)) == SAM_OK &&
        sam_get_bytes(&call.reply, SAM_T_TOTP_SECRET, &secret, &len) == SAM_OK)
        totp_page(w, v, ticket, secret, len, NULL);
    else if (r == 0)
        web_approve_list(w, v, WEB_T(w, "account.new_secret_could_not2"), 1);
    else
        refused_page(w, v, r, WEB_T(w, "account.too_many_failed_attempts2"),
                     WEB_T(w, "account.code_not_correct_used"),
                     WEB_T(w, "account.new_secret_could_not2"));
    OPENSSL_cleanse(ticket, sizeof(ticket));
    csc_sam_end(&call);
}

/* ACCOUNT_TOTP_FINISH: csc-sam checks the code of the new secret and only then replaces the old one. */
static void do_totp_finish(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v)
{
    const char *otp = web_form_get(f, "otp"), *ticket = web_form_get(f, "ticket");
    char reason[SAM_REASON_MAX + 1];
    csc_sam_call_t call;
    csc_err_t err;
    uint32_t about;
    if (otp == NULL || ticket == NULL || ticket[0] == '\0' || strlen(ticket) > SAM_TOKEN_MAX ||
        strlen(otp) > SAM_OTP_MAX || csc_sam_begin(w->c, &call, SAM_OP_ACCOUNT_TOTP_FINISH, &err) != 0) {
        web_approve_list(w, v, WEB_T(w, "account.change_secret_not_known"), 1);
        return;
    }
    (void)sam_put_text(&call.b, SAM_T_OTP, otp, strlen(otp));
    web_account_put_session(w, &call, sid, v);
    sam_put_str(&call.b, SAM_T_ENROLL_TICKET, ticket);
    uint32_t r = account_run(w, &call, &about, reason);
    if (r == 0)
        web_approve_list(w, v, WEB_T(w, "account.new_secret_use_other"), 0);
    else if (r == SAM_REFUSE_UNAUTHORIZED && about == SAM_T_OTP)
        totp_page(w, v, ticket, NULL, 0,
                  WEB_T(w, "account.code_not_correct_used2"));
    else if (r == SAM_REFUSE_NOT_FOUND || r == SAM_REFUSE_EXPIRED)
        web_approve_list(w, v, WEB_T(w, "account.change_secret_has_expired"), 1);
    else
        refused_page(w, v, r, WEB_T(w, "account.too_many_failed_attempts2"),
                     WEB_T(w, "account.change_could_not_made"), WEB_T(w, "account.change_could_not_made2"));
    csc_sam_end(&call);
}

int web_account_action(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v, const char *action)
{
    if (strcmp(action, "pin") == 0) {
        do_pin(w, f, sid, v);
        return 1;
    }
    if (strcmp(action, "password") == 0) {
        do_password(w, f, sid, v);
        return 1;
    }
    if (strcmp(action, "totp_begin") == 0) {
        do_totp_begin(w, f, sid, v);
        return 1;
    }
    if (strcmp(action, "totp_finish") == 0) {
        do_totp_finish(w, f, sid, v);
        return 1;
    }
    return web_account_view_action(w, f, sid, v, action);
}
