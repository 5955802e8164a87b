/*
 * web/web_account.c - the account page's own part (issue 12): /account is the approval page's sibling (web_approve.c
 * keeps the sign-in, the session, the page frame and the dispatch of its forms) and lists the user's credentials (own
 * and delegated: status, certificate subject), with, for each one that waits for this user's PIN, a form whose PIN
 * csc-sam sets (ACCOUNT_PIN, sam/sam_op_account.c, which reads the session and checks the form itself). This
 * process only renders and forwards: it verifies no factor and sets no verifier.
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
    if (waiting) {
        web_approve_form(b, ACCOUNT_PATH, a->csrf);
        web_buf_puts(b, "<input type=\"hidden\" name=\"cred\" value=\"");
        web_buf_html(b, c->id);
        web_buf_puts(b, "\"><label>New PIN (digits)<input name=\"pin\" type=\"password\" inputmode=\"numeric\" "
                        "pattern=\"[0-9]*\" required maxlength=\"32\"></label><label>The PIN again<input name=\"pin2\" "
                        "type=\"password\" inputmode=\"numeric\" pattern=\"[0-9]*\" required maxlength=\"32\"></label>"
                        "<button name=\"action\" value=\"pin\" type=\"submit\" class=\"set-pin\">Set the PIN</button>"
                        "</form>");
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
    if (a.c != NULL) {
        stor_wipe(a.c, sizeof(*a.c));
        free(a.c);
    }
}

/* ACCOUNT_PIN: csc-sam reads the session, checks the form's CSRF token, the PIN rule and that the credential waits for
 * this user's PIN. */
static void do_pin(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v)
{
    const char *cred = web_form_get(f, "cred"), *pin = web_form_get(f, "pin"), *pin2 = web_form_get(f, "pin2");
    csc_sam_call_t call;
    csc_err_t err;
    if (cred == NULL || pin == NULL || pin2 == NULL || strlen(cred) > SAM_NAME_MAX || cred[0] == '\0') {
        web_approve_list(w, v, "That signing key is not known.", 1);
        return;
    }
    if (strlen(pin) != strlen(pin2) || CRYPTO_memcmp(pin, pin2, strlen(pin)) != 0) {
        web_approve_list(w, v, "The two PINs are not the same.", 1);
        return;
    }
    if (csc_sam_begin(w->c, &call, SAM_OP_ACCOUNT_PIN, &err) != 0) {
        web_approve_list(w, v, "The PIN could not be set right now. Try again.", 1);
        return;
    }
    sam_put_str(&call.b, SAM_T_CRED, cred);
    (void)sam_put_text(&call.b, SAM_T_PIN, pin, strlen(pin));
    sam_put_str(&call.b, SAM_T_SESSION, sid);
    if (w->call->client != NULL && w->call->client[0] != '\0' && strlen(w->call->client) <= SAM_ADDR_MAX)
        sam_put_str(&call.b, SAM_T_ADDR, w->call->client);
    sam_put_str(&call.b, SAM_T_CSRF, v->csrf);
    if (csc_sam_run(w->c, &call, CSC_ABOUT_CREDENTIAL, NULL, &err) == 0) {
        web_approve_list(w, v, "The PIN is set.", 0);
    } else {
        uint32_t r = 0, about = 0;
        char reason[SAM_REASON_MAX + 1] = "";
        int refused = call.reply.op == SAM_OP_REFUSED && sam_get_u32(&call.reply, SAM_T_REFUSAL, &r) == SAM_OK;
        (void)sam_get_u32(&call.reply, SAM_T_ABOUT, &about);
        if (refused && r == SAM_REFUSE_BAD_MESSAGE && about == SAM_T_PIN &&
            sam_get_text(&call.reply, SAM_T_REASON, reason, sizeof(reason)) == SAM_OK)
            web_approve_list(w, v, reason, 1); /* the PIN rule, in words */
        else if (refused && r == SAM_REFUSE_NOT_FOUND)
            web_approve_list(w, v, "That signing key does not wait for your PIN.", 1);
        else
            web_approve_list(w, v, "The PIN could not be set right now. Try again.", 1);
    }
    csc_sam_end(&call);
}

int web_account_action(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v, const char *action)
{
    if (strcmp(action, "pin") == 0) {
        do_pin(w, f, sid, v);
        return 1;
    }
    return 0;
}
