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
    web_buf_printf(b, "%s</td><td class=\"status\">%s</td><td class=\"subject\">",
                   strcmp(c->owner, a->user) != 0 ? " (delegated)" : "",
                   c->status == STOR_CRED_ENABLED     ? "enabled"
                   : c->status == STOR_CRED_DESTROYED ? "destroyed"
                   : c->status == STOR_CRED_PENDING   ? "waiting for its certificate"
                                                      : "disabled");
    web_buf_html(b, subj);
    web_buf_printf(b, "</td><td class=\"pin\">%s", waiting ? "not set" : strstr(c->auth_expr, "PIN") ? "set" : "-");
    /* Waiting: set it. Set: change it with the old one (csc-sam checks it and counts a wrong one). */
    int change = !waiting && c->status != STOR_CRED_DESTROYED && strstr(c->auth_expr, "PIN") != NULL;
    if (waiting || change) {
        web_approve_form(b, ACCOUNT_PATH, a->csrf);
        web_buf_puts(b, "<input type=\"hidden\" name=\"cred\" value=\"");
        web_buf_html(b, c->id);
        web_buf_puts(b, "\">");
        if (change)
            web_buf_puts(b, "<label>Current PIN<input name=\"old_pin\" type=\"password\" inputmode=\"numeric\" "
                            "pattern=\"[0-9]*\" required maxlength=\"32\"></label>");
        web_buf_printf(b, "<label>New PIN (digits)<input name=\"pin\" type=\"password\" inputmode=\"numeric\" "
                          "pattern=\"[0-9]*\" required maxlength=\"32\"></label><label>The PIN again<input name=\"pin2\" "
                          "type=\"password\" inputmode=\"numeric\" pattern=\"[0-9]*\" required maxlength=\"32\"></label>"
                          "<button name=\"action\" value=\"pin\" type=\"submit\" class=\"%s\">%s</button></form>",
                       change ? "change-pin" : "set-pin", change ? "Change the PIN" : "Set the PIN");
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
    acct_t a = {.b = b, .user = v->user, .csrf = v->csrf};
    web_buf_puts(b, "<table id=\"creds\"><tr><th>Signing key</th><th>Status</th><th>Certificate</th><th>PIN</th></tr>\n");
    if ((a.c = malloc(sizeof(*a.c))) == NULL || stor_read(w->c->stor, acct_fn, &a) != 0)
        web_buf_puts(b, "<tr><td colspan=\"4\">Your signing keys cannot be listed right now.</td></tr>\n");
    web_buf_puts(b, "</table>\n");
    if (a.n == 0)
        web_buf_puts(b, "<p id=\"none\">You have no signing key yet.</p>\n");
    web_account_view(w, v, b); /* backups, restore requests, recent activity */
    web_buf_puts(b, "<h2>Password</h2>\n<section id=\"password-change\">\n");
    web_approve_form(b, ACCOUNT_PATH, v->csrf);
    web_buf_puts(b, "<label for=\"old_password\">Current password</label><input id=\"old_password\" "
                    "name=\"old_password\" type=\"password\" autocomplete=\"current-password\" required "
                    "maxlength=\"256\">\n<label for=\"new_password\">New password</label><input id=\"new_password\" "
                    "name=\"new_password\" type=\"password\" autocomplete=\"new-password\" required maxlength=\"256\">\n"
                    "<label for=\"new_password2\">The new password again</label><input id=\"new_password2\" "
                    "name=\"new_password2\" type=\"password\" autocomplete=\"new-password\" required "
                    "maxlength=\"256\">\n<button id=\"change-password\" name=\"action\" value=\"password\" "
                    "type=\"submit\">Change the password</button>\n</form>\n</section>\n");
    web_buf_puts(b, "<h2>Authenticator app</h2>\n<section id=\"totp-change\">\n<p>To move to a new authenticator "
                    "app (or a new secret), enter a code of the one you use now.</p>\n");
    web_approve_form(b, ACCOUNT_PATH, v->csrf);
    web_buf_puts(b, "<label for=\"totp_old\">The code your app shows now</label><input id=\"totp_old\" name=\"otp\" "
                    "inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{6}\" required maxlength=\"6\">\n"
                    "<button id=\"totp-begin\" name=\"action\" value=\"totp_begin\" type=\"submit\">New secret"
                    "</button>\n</form>\n</section>\n");
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
        web_approve_list(w, v, "That signing key is not known.", 1);
        return;
    }
    if (strlen(pin) != strlen(pin2) || CRYPTO_memcmp(pin, pin2, strlen(pin)) != 0) {
        web_approve_list(w, v, "The two PINs are not the same.", 1);
        return;
    }
    if ((old != NULL && strlen(old) > SAM_SECRET_MAX) || csc_sam_begin(w->c, &call, SAM_OP_ACCOUNT_PIN, &err) != 0) {
        web_approve_list(w, v, "The PIN could not be set right now. Try again.", 1);
        return;
    }
    sam_put_str(&call.b, SAM_T_CRED, cred);
    (void)sam_put_text(&call.b, SAM_T_PIN, pin, strlen(pin));
    web_account_put_session(w, &call, sid, v);
    if (old != NULL)
        (void)sam_put_text(&call.b, SAM_T_OLD_SECRET, old, strlen(old));
    uint32_t r = account_run(w, &call, &about, reason);
    if (r == 0)
        web_approve_list(w, v, old != NULL ? "The PIN is changed." : "The PIN is set.", 0);
    else if (r == SAM_REFUSE_BAD_MESSAGE && about == SAM_T_PIN && reason[0] != '\0')
        web_approve_list(w, v, reason, 1); /* the PIN rule, in words */
    else if (r == SAM_REFUSE_NOT_FOUND && about == SAM_T_CRED)
        web_approve_list(w, v, old != NULL ? "That signing key has no PIN of yours to change."
                                           : "That signing key does not wait for your PIN.", 1);
    else
        refused_page(w, v, r, "Too many failed attempts: the signing key is locked for a while.",
                     "The current PIN is not correct.", "The PIN could not be set right now. Try again.");
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
        web_approve_list(w, v, "The two new passwords are not the same.", 1);
        return;
    }
    if (strlen(old) > SAM_SECRET_MAX || strlen(pw) > SAM_SECRET_MAX ||
        csc_sam_begin(w->c, &call, SAM_OP_ACCOUNT_PASSWORD, &err) != 0) {
        web_approve_list(w, v, "The password could not be changed right now. Try again.", 1);
        return;
    }
    web_account_put_session(w, &call, sid, v);
    (void)sam_put_text(&call.b, SAM_T_PASSWORD, pw, strlen(pw));
    (void)sam_put_text(&call.b, SAM_T_OLD_SECRET, old, strlen(old));
    uint32_t r = account_run(w, &call, &about, reason);
    if (r == 0)
        web_approve_list(w, v, "The password is changed. Your other sessions and tokens were revoked.", 0);
    else if (r == SAM_REFUSE_BAD_MESSAGE && about == SAM_T_PASSWORD && reason[0] != '\0')
        web_approve_list(w, v, reason, 1); /* the password rules, in words */
    else
        refused_page(w, v, r, "Too many failed attempts: your account is locked for a while.",
                     "The current password is not correct.", "The password could not be changed right now. Try again.");
    csc_sam_end(&call);
}

/* Step 2 of the new TOTP secret: the secret (shown only now; NULL when the page is shown again after a wrong code)
 * and the form that proves it with a code, carrying the pending change's ticket. */
static void totp_page(web_t *w, const oauth_session_view_t *v, const char *ticket, const uint8_t *secret, size_t len,
                      const char *error)
{
    web_buf_t b;
    web_buf_init(&b, 1024 * 1024);
    web_buf_puts(&b, "<p>Signed in as <strong id=\"user\">");
    web_buf_html(&b, v->user);
    web_buf_puts(&b, "</strong>.</p>\n");
    if (error != NULL) {
        web_buf_puts(&b, "<p class=\"err\" role=\"alert\" id=\"error\">");
        web_buf_html(&b, error);
        web_buf_puts(&b, "</p>\n");
    }
    if (secret != NULL) {
        web_buf_puts(&b, "<p>Scan this new code with your authenticator app (it is shown only here, now). Your old "
                         "app stays in use until you enter a code of the new one below.</p>\n");
        if (web_totp_secret(w, &b, v->user, secret, len) != 0) {
            web_buf_free(&b);
            web_approve_list(w, v, "The new secret could not be shown. Start again.", 1);
            return;
        }
    }
    web_approve_form(&b, ACCOUNT_PATH, v->csrf);
    web_buf_puts(&b, "<input type=\"hidden\" name=\"ticket\" value=\"");
    web_buf_html(&b, ticket);
    web_buf_puts(&b, "\">\n<label for=\"totp_new\">The code the new secret shows now</label><input id=\"totp_new\" "
                     "name=\"otp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{6}\" required "
                     "maxlength=\"6\">\n<button id=\"totp-finish\" name=\"action\" value=\"totp_finish\" "
                     "type=\"submit\">Use the new secret</button>\n</form>\n");
    web_approve_form(&b, ACCOUNT_PATH, v->csrf);
    web_buf_puts(&b, "<button name=\"action\" value=\"list\" type=\"submit\" class=\"secondary\">Cancel</button>"
                     "</form>\n");
    web_page(w->c, w->reply, 200, "Your account", &b);
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
        web_approve_list(w, v, "The code is not correct.", 1);
        return;
    }
    (void)sam_put_text(&call.b, SAM_T_OTP, otp, strlen(otp));
    web_account_put_session(w, &call, sid, v);
    uint32_t r = account_run(w, &call, &about, reason);
    if (r == 0 && sam_get_text(&call.reply, SAM_T_ENROLL_TICKET, ticket, sizeof(ticket)) == SAM_OK &&
        sam_get_bytes(&call.reply, SAM_T_TOTP_SECRET, &secret, &len) == SAM_OK)
        totp_page(w, v, ticket, secret, len, NULL);
    else if (r == 0)
        web_approve_list(w, v, "The new secret could not be made right now. Try again.", 1);
    else
        refused_page(w, v, r, "Too many failed attempts: your account is locked for a while.",
                     "The code is not correct (or was used already). Wait for the next one.",
                     "The new secret could not be made right now. Try again.");
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
        web_approve_list(w, v, "That change of secret is not known. Start again.", 1);
        return;
    }
    (void)sam_put_text(&call.b, SAM_T_OTP, otp, strlen(otp));
    web_account_put_session(w, &call, sid, v);
    sam_put_str(&call.b, SAM_T_ENROLL_TICKET, ticket);
    uint32_t r = account_run(w, &call, &about, reason);
    if (r == 0)
        web_approve_list(w, v, "The new secret is in use. Your other sessions and tokens were revoked.", 0);
    else if (r == SAM_REFUSE_UNAUTHORIZED && about == SAM_T_OTP)
        totp_page(w, v, ticket, NULL, 0,
                  "The code is not correct (or was used already): your old app stays in use. Try the next code.");
    else if (r == SAM_REFUSE_NOT_FOUND || r == SAM_REFUSE_EXPIRED)
        web_approve_list(w, v, "That change of secret has expired or is not known. Start again.", 1);
    else
        refused_page(w, v, r, "Too many failed attempts: your account is locked for a while.",
                     "The change could not be made. Start again.", "The change could not be made right now. Try again.");
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
