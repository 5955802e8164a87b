/*
 * web/web_account_view.c - what /account shows the signed-in user besides the credentials table (issue 12, J8):
 *   - per credential of theirs: whether its key can be backed up (key_backup), whether a backup of the current key
 *     exists (and when the last was made), the conditions under which it can be restored, and, while a restore is
 *     possible, the form "Request a restore of this key" (ACCOUNT_RESTORE: csc-sam reads the session, checks the form's
 *     CSRF token and files the request; sam/sam_op_restore_req.c); the page then shows the request's reference, which
 *     the user gives the operator (csc-admin credential restore FILE --request REF);
 *   - the user's restore requests (reference, credential, time, state);
 *   - the last sign-ins (time, client, which way, result) and, per credential, the last signatures (time, client,
 *     number of signatures), newest first, as storage keeps them (stor_txn_recent_get).
 * Everything here is read in one storage read; nothing is decided here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "web.h"

#define ACCOUNT_PATH "/account"
#define CREDS_SHOWN 64 /* credentials whose sections the page shows (a user has a few) */

/* "YYYY-MM-DD HH:MM UTC" of unix seconds. */
static void when(char out[32], int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t <= 0 || gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%d %H:%M UTC", &tm) == 0)
        snprintf(out, 32, "-");
}

typedef struct view {
    web_t *w;
    web_buf_t *b;
    const oauth_session_view_t *v;
    stor_txn_t *t;
    int64_t now;
    unsigned n;
    stor_recent_t *rec;      /* scratch */
    char ids[CREDS_SHOWN][STOR_NAME_MAX + 1];
    unsigned n_ids;
} view_t;

/* Why a credential's key can never be restored, or NULL. */
static const char *final_end(const view_t *x, const stor_cred_t *c)
{
    if (c->status == STOR_CRED_DESTROYED && c->end_reason != STOR_CRED_END_OPERATOR)
        return WEB_T(x->w, c->end_reason == STOR_CRED_END_REVOKED      ? "view.end_revoked"
                           : c->end_reason == STOR_CRED_END_TERMINATED ? "view.end_terminated"
                                                                       : "view.end_destroyed");
    if (c->cert_not_after != 0 && c->cert_not_after <= x->now)
        return WEB_T(x->w, "view.end_expired");
    return NULL;
}

/* One credential's row of the backups table: backup-able, backups, the conditions, the request form. */
static int backup_row(const stor_cred_t *c, void *arg)
{
    view_t *x = arg;
    web_t *w = x->w;
    web_buf_t *b = x->b;
    char t[32];
    const char *end = final_end(x, c);
    int can = c->key_backup == STOR_KEY_BACKUP_WRAPPED;

    if (x->n_ids < CREDS_SHOWN)
        snprintf(x->ids[x->n_ids++], sizeof(x->ids[0]), "%s", c->id);
    x->n++;
    web_buf_puts(b, "<tr class=\"backup\" id=\"backup-");
    web_buf_html(b, c->id);
    web_buf_puts(b, "\"><td class=\"id\">");
    web_buf_html(b, c->id);
    web_buf_el(b, "</td><td class=\"backupable\">", WEB_T(w, can ? "view.backup_yes" : "view.backup_no"),
               "</td><td class=\"backups\">");
    when(t, c->backup_last_at);
    if (c->backups > 0)
        web_buf_say(b, WEB_T(w, "view.backups_last"), c->backups, t);
    else
        web_buf_html(b, WEB_T(w, "view.none_lower"));
    web_buf_puts(b, "</td><td class=\"conditions\">");
    if (!can)
        web_buf_html(b, WEB_T(w, "view.cannot_backup"));
    else if (end != NULL)
        web_buf_say(b, WEB_T(w, "view.never_restored"), end);
    else if (c->backups == 0)
        web_buf_html(b, WEB_T(w, "view.no_backup_yet"));
    else
        web_buf_html(b, WEB_T(w, "view.can_restore"));
    if (can && end == NULL && c->backups > 0) {
        web_approve_form(b, ACCOUNT_PATH, x->v->csrf);
        web_buf_puts(b, "<input type=\"hidden\" name=\"cred\" value=\"");
        web_buf_html(b, c->id);
        web_buf_el(b, "\"><button name=\"action\" value=\"restore\" type=\"submit\" class=\"restore secondary\">",
                   WEB_T(w, "view.request_restore"), "</button></form>");
    }
    web_buf_puts(b, "</td></tr>\n");
    return 0;
}

static int request_row(const stor_restore_req_t *r, void *arg)
{
    view_t *x = arg;
    char t[32], e[32];
    when(t, r->created_at);
    when(e, r->state == STOR_RESTORE_USED ? r->used_at : r->expires_at);
    x->n++;
    web_buf_puts(x->b, "<tr class=\"request\" id=\"request-");
    web_buf_html(x->b, r->ref);
    web_buf_puts(x->b, "\"><td class=\"ref\">");
    web_buf_html(x->b, r->ref);
    web_buf_puts(x->b, "</td><td class=\"id\">");
    web_buf_html(x->b, r->cred);
    web_buf_printf(x->b, "</td><td class=\"time\">%s</td><td class=\"state\">", t);
    web_buf_say(x->b, WEB_T(x->w, r->state == STOR_RESTORE_USED ? "view.used_on"
                                 : r->expires_at <= x->now      ? "view.expired_on"
                                                                : "view.open_until"),
                e);
    web_buf_puts(x->b, "</td></tr>\n");
    return 0;
}

static const char *way_name(const web_t *w, uint32_t way)
{
    return way == STOR_SIGNIN_PAGE    ? WEB_T(w, "view.way_page")
           : way == STOR_SIGNIN_API   ? WEB_T(w, "view.way_api")
           : way == STOR_SIGNIN_OAUTH ? WEB_T(w, "view.way_oauth")
                                      : "-";
}

/* The rows of a recent-activity record: sign-ins (signins 1) or signing events. */
static void recent_rows(const web_t *w, web_buf_t *b, const stor_recent_t *r, int signins, const char *cred)
{
    for (uint32_t i = 0; i < r->n && i < STOR_RECENT_MAX; i++) {
        char t[32];
        when(t, r->time_ms[i] / 1000);
        web_buf_printf(b, "<tr class=\"%s\"><td class=\"time\">%s</td>", signins ? "signin" : "signature", t);
        if (!signins) {
            web_buf_puts(b, "<td class=\"id\">");
            web_buf_html(b, cred);
            web_buf_puts(b, "</td>");
        }
        web_buf_puts(b, "<td class=\"client\">");
        web_buf_html(b, r->client[i][0] != '\0' ? r->client[i] : "-");
        if (signins) {
            web_buf_el(b, "</td><td class=\"way\">", way_name(w, r->what[i]), "</td>");
            web_buf_el(b, "<td class=\"result\">", WEB_T(w, r->result[i] == STOR_RES_OK ? "view.ok" : "view.refused"),
                       "</td></tr>\n");
        }
        else
            web_buf_printf(b, "</td><td class=\"count\">%u</td></tr>\n", r->what[i]);
    }
}

static int view_fn(stor_txn_t *t, void *arg)
{
    view_t *x = arg;
    web_t *w = x->w;
    web_buf_t *b = x->b;
    int rc;

    x->t = t;
    x->n = 0;
    x->n_ids = 0;
    web_buf_el(b, "<h2>", WEB_T(w, "view.key_backups"), "</h2>\n<table id=\"backups\">");
    web_buf_el(b, "<tr><th>", WEB_T(w, "common.signing_key"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "view.can_be_backed_up"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "view.backups_current"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "view.restore"), "</th></tr>\n");
    if ((rc = stor_txn_cred_each(t, x->v->user, backup_row, x)) != 0)
        return rc;
    web_buf_puts(b, "</table>\n<p id=\"restore-rules\">");
    web_buf_say(b, WEB_T(w, x->w->c->cfg.restore_two_person ? "view.restore_rules_two" : "view.restore_rules"),
                (x->w->c->cfg.restore_request_ttl != 0 ? x->w->c->cfg.restore_request_ttl : 2592000u) / 86400u);
    web_buf_puts(b, "</p>\n");
    web_buf_el(b, "<h2>", WEB_T(w, "view.restore_requests"), "</h2>\n<table id=\"requests\">");
    web_buf_el(b, "<tr><th>", WEB_T(w, "view.reference"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "common.signing_key"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "view.asked"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "view.state"), "</th></tr>\n");
    x->n = 0;
    if ((rc = stor_txn_restore_req_each(t, x->v->user, request_row, x)) != 0)
        return rc;
    if (x->n == 0)
        web_buf_el(b, "<tr><td colspan=\"4\">", WEB_T(w, "view.none"), "</td></tr>\n");
    web_buf_el(b, "</table>\n<h2>", WEB_T(w, "view.last_signins"), "</h2>\n<table id=\"signins\">");
    web_buf_el(b, "<tr><th>", WEB_T(w, "view.time"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "view.client"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "view.how"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "view.result"), "</th></tr>\n");
    if ((rc = stor_txn_recent_get(t, STOR_RECENT_SIGNINS, x->v->user, x->rec)) != 0)
        return rc;
    recent_rows(w, b, x->rec, 1, NULL);
    web_buf_el(b, "</table>\n<h2>", WEB_T(w, "view.last_signatures"), "</h2>\n<table id=\"signatures\">");
    web_buf_el(b, "<tr><th>", WEB_T(w, "view.time"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "common.signing_key"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "view.client"), "</th>");
    web_buf_el(b, "<th>", WEB_T(w, "common.signatures"), "</th></tr>\n");
    for (unsigned i = 0; i < x->n_ids; i++) {
        if ((rc = stor_txn_recent_get(t, STOR_RECENT_SIGNS, x->ids[i], x->rec)) != 0)
            return rc;
        recent_rows(w, b, x->rec, 0, x->ids[i]);
    }
    web_buf_puts(b, "</table>\n");
    return 0;
}

void web_account_view(web_t *w, const oauth_session_view_t *v, web_buf_t *b)
{
    view_t *x = calloc(1, sizeof(*x));
    if (x != NULL)
        x->rec = calloc(1, sizeof(*x->rec));
    if (x == NULL || x->rec == NULL) {
        web_buf_el(b, "<p>", WEB_T(w, "view.cannot_show"), "</p>\n");
    } else {
        *x = (view_t){.w = w, .b = b, .v = v, .now = (int64_t)time(NULL), .rec = x->rec};
        web_buf_t part;
        web_buf_init(&part, b->max);
        x->b = &part;
        if (stor_read(w->c->stor, view_fn, x) != 0)
            web_buf_el(b, "<p>", WEB_T(w, "view.cannot_show"), "</p>\n");
        else if (!part.failed && part.p != NULL)
            web_buf_puts(b, part.p);
        web_buf_free(&part);
    }
    if (x != NULL)
        free(x->rec);
    free(x);
}

/* ACCOUNT_RESTORE: csc-sam reads the session, checks the form's CSRF token, that the credential is the user's own, has
 * a backup of its current key and no final end, and files the request. */
static void do_restore(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v)
{
    const char *cred = web_form_get(f, "cred");
    char ref[SAM_NAME_MAX + 1] = "";
    uint32_t expires = 0;
    csc_sam_call_t call;
    csc_err_t err;
    if (cred == NULL || cred[0] == '\0' || strlen(cred) > SAM_NAME_MAX) {
        web_approve_list(w, v, WEB_T(w, "account.signing_key_not_known"), 1);
        return;
    }
    if (csc_sam_begin(w->c, &call, SAM_OP_ACCOUNT_RESTORE, &err) != 0) {
        web_approve_list(w, v, WEB_T(w, "view.request_not_made"), 1);
        return;
    }
    sam_put_str(&call.b, SAM_T_CRED, cred);
    web_account_put_session(w, &call, sid, v);
    if (csc_sam_run(w->c, &call, CSC_ABOUT_CREDENTIAL, NULL, &err) == 0 &&
        sam_get_text(&call.reply, SAM_T_RESTORE_REF, ref, sizeof(ref)) == SAM_OK &&
        sam_get_u32(&call.reply, SAM_T_EXPIRES_IN, &expires) == SAM_OK) {
        char *note = web_say_dup(WEB_T(w, "view.request_made"), ref, expires / 86400u);
        web_approve_list(w, v, note, 0);
        free(note);
    } else {
        uint32_t r = 0;
        int refused = call.reply.op == SAM_OP_REFUSED && sam_get_u32(&call.reply, SAM_T_REFUSAL, &r) == SAM_OK;
        web_approve_list(w, v,
                         WEB_T(w, refused && r == SAM_REFUSE_NOT_OFFERED ? "view.no_backup_that"
                                  : refused && r == SAM_REFUSE_DISABLED  ? "view.never_restorable"
                                  : refused && r == SAM_REFUSE_NOT_FOUND ? "account.signing_key_not_known"
                                                                         : "view.request_not_made"),
                         1);
    }
    csc_sam_end(&call);
}

int web_account_view_action(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v,
                            const char *action)
{
    if (strcmp(action, "restore") != 0)
        return 0;
    do_restore(w, f, sid, v);
    return 1;
}
