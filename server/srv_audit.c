/*
 * srv_audit.c - csc-admin's audit reports: the operator library (admin/adm_audit.c, adm_audit_heads.c) finds the
 * problems, records and signed heads; this prints them. Text lines escape everything outside printable ASCII,
 * JSON lines are valid JSON whatever was stored; records hold no secrets, so none are printed.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki.h"
#include "srv_audit.h"

#define HEAD_TEXT_MAX 160

static void report_err(const char *err)
{
    fprintf(stderr, "csc-admin: %s\n", err);
}

/* ---- verify ------------------------------------------------------------------ */

static void print_problem(const char *line, void *arg)
{
    fprintf(arg, "%s\n", line);
}

int srv_audit_verify(stor_env_t *stor, EVP_PKEY *pub, FILE *out)
{
    adm_audit_verdict_t log, heads;
    char err[256], hex[65];

    if (adm_audit_verify(stor, print_problem, out, &log, err, sizeof(err)) != ADM_OK) {
        report_err(err);
        return 1;
    }
    if (log.problems == 0) {
        pki_hex(log.head_hash, 32, hex);
        fprintf(out, "audit log OK: %" PRIu64 " records, head %s\n", log.count, hex);
    } else {
        fprintf(out, "audit log FAILED: %lu problem%s in %" PRIu64 " records\n", log.problems,
                log.problems == 1 ? "" : "s", log.count);
    }
    if (log.time_back > 0) /* a notice, not a problem: what the chain proves is the order, not the clock */
        fprintf(out, "note: %" PRIu64 " record%s dated before the record before %s by more than %d s (the first: "
                "record %" PRIu64 "; the largest step back %.3f s): a clock stepped back, or nodes' clocks apart\n",
                log.time_back, log.time_back == 1 ? "" : "s", log.time_back == 1 ? "it" : "them",
                ADM_AUDIT_TIME_BACK_MS / 1000, log.time_back_seq, (double)log.time_back_ms / 1000.0);
    if (adm_audit_verify_heads(stor, pub, print_problem, out, &heads, err, sizeof(err)) != ADM_OK) {
        report_err(err);
        return 1;
    }
    if (heads.problems == 0 && heads.count > 0)
        fprintf(out, "signed heads OK: %" PRIu64 " heads, the last at seq %" PRIu64 "\n", heads.count,
                heads.last_seq);
    else if (heads.problems == 0)
        fprintf(out, "signed heads: none yet\n");
    else
        fprintf(out, "signed heads FAILED: %lu problem%s in %" PRIu64 " heads\n", heads.problems,
                heads.problems == 1 ? "" : "s", heads.count);
    return log.problems == 0 && heads.problems == 0 ? 0 : 1;
}

/* ---- query ------------------------------------------------------------------- */

static const char *result_name(uint32_t result)
{
    return result == STOR_RES_OK ? "ok" : result == STOR_RES_DENIED ? "denied" : result == STOR_RES_ERROR ? "error"
                                                                                                         : "unknown";
}

/* "2026-11-25T10:00:00.123Z" */
static void fmt_time(int64_t ms, char *out, size_t sz)
{
    int64_t sec = ms / 1000, frac = ms % 1000;
    struct tm tm;
    time_t t;

    if (frac < 0) {
        frac += 1000;
        sec -= 1;
    }
    t = (time_t)sec;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, sz, "@%" PRId64, ms);
        return;
    }
    snprintf(out, sz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

/* Text: printable ASCII as is, the rest (and '"', '\\', and spaces outside quotes) as \xHH. */
static void put_text(FILE *out, const char *s, size_t max, int quoted)
{
    size_t n = strnlen(s, max);

    if (n == 0 && !quoted) {
        fputc('-', out);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\' || (c == ' ' && !quoted))
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
}

/* A JSON string value: bytes outside printable ASCII as \u00XX, so the line is valid JSON whatever was stored. */
static void put_json_val(FILE *out, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c > 0x7e)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* ,"key":"value" (put_json_val). */
static void put_json_str(FILE *out, const char *key, const char *s, size_t max)
{
    fprintf(out, ",\"%s\":", key);
    put_json_val(out, s, max);
}

static int print_text(const stor_audit_t *r, void *arg)
{
    FILE *out = arg;
    char when[96];

    fmt_time(r->time_ms, when, sizeof(when));
    fprintf(out, "%" PRIu64 " %s %s %s user=", r->seq, when, adm_audit_event_name(r->event), result_name(r->result));
    put_text(out, r->user, sizeof(r->user), 0);
    fputs(" cred=", out);
    put_text(out, r->cred, sizeof(r->cred), 0);
    fputs(" client=", out);
    put_text(out, r->client, sizeof(r->client), 0);
    if (r->owner[0] != '\0') {
        fputs(" on_behalf_of=", out);
        put_text(out, r->owner, sizeof(r->owner), 0);
    }
    fprintf(out, " digests=%" PRIu32 " detail=\"", r->n_digests);
    put_text(out, r->detail, sizeof(r->detail), 1);
    fputs("\"", out);
    if (r->origin[0] != '\0') { /* where an operator's command came from */
        fputs(" origin=\"", out);
        put_text(out, r->origin, sizeof(r->origin), 1);
        fputs("\"", out);
    }
    fputs("\n", out);
    return 0;
}

/* authz_ref is a reference (a hash of a hash), never the SAD or token: printing it reveals nothing. */
static int print_json(const stor_audit_t *r, void *arg)
{
    FILE *out = arg;
    char when[96], hex[65], b64[4 * ((STOR_DIGEST_LEN_MAX + 2) / 3) + 1];

    fmt_time(r->time_ms, when, sizeof(when));
    fprintf(out, "{\"seq\":%" PRIu64 ",\"time\":\"%s\",\"time_ms\":%" PRId64, r->seq, when, r->time_ms);
    fprintf(out, ",\"event\":\"%s\",\"result\":\"%s\"", adm_audit_event_name(r->event), result_name(r->result));
    put_json_str(out, "user", r->user, sizeof(r->user));
    put_json_str(out, "credential", r->cred, sizeof(r->cred));
    put_json_str(out, "client", r->client, sizeof(r->client));
    put_json_str(out, "detail", r->detail, sizeof(r->detail));
    if (r->owner[0] != '\0')
        put_json_str(out, "on_behalf_of", r->owner, sizeof(r->owner));
    if (r->origin[0] != '\0')
        put_json_str(out, "origin", r->origin, sizeof(r->origin));
    fprintf(out, ",\"n_digests\":%" PRIu32 ",\"digests\":[", r->n_digests);
    for (uint32_t i = 0; i < r->n_digests && r->digest_len <= STOR_DIGEST_LEN_MAX; i++) {
        oauth_b64_encode(r->digests + (size_t)i * r->digest_len, r->digest_len, b64, OAUTH_B64_STD);
        fprintf(out, "%s\"%s\"", i == 0 ? "" : ",", b64);
    }
    pki_hex(r->authz_ref, sizeof(r->authz_ref), hex);
    fprintf(out, "],\"authz_ref\":\"%s\"", hex);
    pki_hex(r->prev_hash, 32, hex);
    fprintf(out, ",\"prev_hash\":\"%s\"", hex);
    pki_hex(r->hash, 32, hex);
    fprintf(out, ",\"hash\":\"%s\"}\n", hex);
    return 0;
}

int srv_audit_query(stor_env_t *stor, const adm_audit_filter_t *f, int json, FILE *out)
{
    char err[256];

    if (adm_audit_query(stor, f, json ? print_json : print_text, out, NULL, err, sizeof(err)) != ADM_OK) {
        report_err(err);
        return 1;
    }
    return 0;
}

/* ---- signed heads (for external verifiers) ------------------------------------------ */

static int print_head(const stor_signed_head_t *h, int status, void *arg)
{
    FILE *out = arg;
    char text[HEAD_TEXT_MAX], b64[4 * ((STOR_HEAD_SIG_MAX + 2) / 3) + 1];

    if (status != 0) {
        fprintf(out, "{\"seq\":%" PRIu64 ",\"error\":\"unreadable\"}\n", h->seq);
        return 0;
    }
    if (stor_signed_head_text(h, text, sizeof(text)) < 0)
        return 0;
    oauth_b64_encode(h->sig, h->sig_len, b64, OAUTH_B64_STD);
    fprintf(out, "{\"seq\":%" PRIu64 ",\"time_ms\":%" PRId64 ",\"signed_text\":\"%s\",\"signature\":\"%s\"}\n", h->seq,
            h->time_ms, text, b64);
    return 0;
}

int srv_audit_heads(stor_env_t *stor, FILE *out)
{
    char err[256];

    if (adm_audit_heads_each(stor, print_head, out, err, sizeof(err)) != ADM_OK) {
        report_err(err);
        return 1;
    }
    return 0;
}

/* ---- the report (csc-admin audit report) -------------------------------------------------------------------- */

#define EV_MAX 64
#define ACTIONS_MAX 64
#define PROBLEM_LINES_MAX 20

typedef struct report_acc {
    int64_t from_ms, to_ms;
    uint64_t count, first_seq, last_seq, refusals, lockouts;
    uint64_t ev[EV_MAX][3]; /* ok, denied, error */
    struct {
        char name[48];
        uint64_t n;
    } actions[ACTIONS_MAX];
    size_t n_actions;
    uint64_t actions_other;    /* operator records with no action=, or more kinds than ACTIONS_MAX */
    char problems[PROBLEM_LINES_MAX][ADM_AUDIT_LINE_MAX];
    size_t n_problems;
    uint64_t newest_head_seq, heads_in_range;
    int64_t newest_head_ms;
} report_acc_t;

static void count_action(report_acc_t *a, const char *detail, size_t max)
{
    const char *p = NULL;
    size_t n = strnlen(detail, max), len = 0;
    for (size_t i = 0; i + 7 <= n; i++)
        if (strncmp(detail + i, "action=", 7) == 0 && (i == 0 || detail[i - 1] == ' ')) {
            p = detail + i + 7;
            break;
        }
    while (p != NULL && p + len < detail + n && p[len] != ' ' && len < sizeof(a->actions[0].name) - 1)
        len++;
    if (p == NULL || len == 0) {
        a->actions_other++;
        return;
    }
    for (size_t i = 0; i < a->n_actions; i++)
        if (strlen(a->actions[i].name) == len && memcmp(a->actions[i].name, p, len) == 0) {
            a->actions[i].n++;
            return;
        }
    if (a->n_actions == ACTIONS_MAX) {
        a->actions_other++;
        return;
    }
    memcpy(a->actions[a->n_actions].name, p, len);
    a->actions[a->n_actions].name[len] = '\0';
    a->actions[a->n_actions++].n = 1;
}

static int report_record(const stor_audit_t *r, void *arg)
{
    report_acc_t *a = arg;
    if (a->count++ == 0)
        a->first_seq = r->seq;
    a->last_seq = r->seq;
    uint32_t ev = r->event < EV_MAX ? r->event : 0;
    int res = r->result == STOR_RES_OK ? 0 : r->result == STOR_RES_DENIED ? 1 : 2;
    a->ev[ev][res]++;
    if (r->result == STOR_RES_DENIED)
        a->refusals++;
    if (r->event == STOR_EV_LOCKOUT)
        a->lockouts++;
    if (r->event == STOR_EV_OPERATOR || r->event == STOR_EV_ADMIN)
        count_action(a, r->detail, sizeof(r->detail));
    return 0;
}

static void report_problem(const char *line, void *arg)
{
    report_acc_t *a = arg;
    if (a->n_problems < PROBLEM_LINES_MAX)
        snprintf(a->problems[a->n_problems++], ADM_AUDIT_LINE_MAX, "%s", line);
}

static int report_head(const stor_signed_head_t *h, int status, void *arg)
{
    report_acc_t *a = arg;
    if (status != 0)
        return 0;
    if (h->seq >= a->newest_head_seq) {
        a->newest_head_seq = h->seq;
        a->newest_head_ms = h->time_ms;
    }
    if (h->time_ms >= a->from_ms && h->time_ms <= a->to_ms)
        a->heads_in_range++;
    return 0;
}

int srv_audit_report(stor_env_t *stor, EVP_PKEY *pub, const srv_report_range_t *range, char **out, size_t *out_len)
{
    report_acc_t *a = calloc(1, sizeof(*a));
    adm_audit_verdict_t log, heads;
    adm_audit_filter_t f = {.has_since = 1, .since_ms = range->from_ms, .has_until = 1, .until_ms = range->to_ms};
    char err[256], t[96], hex[65];
    struct timespec now;
    FILE *m = NULL;
    int rc = 1;

    *out = NULL;
    *out_len = 0;
    if (a == NULL)
        return 1;
    a->from_ms = range->from_ms;
    a->to_ms = range->to_ms;
    if (adm_audit_query(stor, &f, report_record, a, NULL, err, sizeof(err)) != ADM_OK ||
        adm_audit_verify(stor, report_problem, a, &log, err, sizeof(err)) != ADM_OK ||
        adm_audit_verify_heads(stor, pub, report_problem, a, &heads, err, sizeof(err)) != ADM_OK ||
        adm_audit_heads_each(stor, report_head, a, err, sizeof(err)) != ADM_OK) {
        report_err(err);
        goto done;
    }
    if ((m = open_memstream(out, out_len)) == NULL)
        goto done;
    clock_gettime(CLOCK_REALTIME, &now);
    fputs("{\"report\":\"csc-audit-report\",\"version\":1", m);
    fmt_time(range->from_ms, t, sizeof(t));
    fprintf(m, ",\"from\":\"%s\"", t);
    fmt_time(range->to_ms, t, sizeof(t));
    fprintf(m, ",\"to\":\"%s\"", t);
    fmt_time((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, t, sizeof(t));
    fprintf(m, ",\"generated\":\"%s\"", t);
    put_json_str(m, "operator", range->operator_name, STOR_NAME_MAX);
    fprintf(m, ",\"records\":{\"count\":%" PRIu64 ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 "}", a->count,
            a->first_seq, a->last_seq);
    fputs(",\"events\":{", m);
    for (uint32_t ev = 0, first = 1; ev < EV_MAX; ev++) {
        if (a->ev[ev][0] + a->ev[ev][1] + a->ev[ev][2] == 0)
            continue;
        fprintf(m, "%s\"%s\":{\"ok\":%" PRIu64 ",\"denied\":%" PRIu64 ",\"error\":%" PRIu64 "}", first ? "" : ",",
                adm_audit_event_name(ev), a->ev[ev][0], a->ev[ev][1], a->ev[ev][2]);
        first = 0;
    }
    fprintf(m, "},\"refusals\":%" PRIu64 ",\"lockouts\":%" PRIu64 ",\"operator_actions\":{", a->refusals,
            a->lockouts);
    for (size_t i = 0; i < a->n_actions; i++) {
        fputs(i ? "," : "", m);
        put_json_val(m, a->actions[i].name, sizeof(a->actions[i].name));
        fprintf(m, ":%" PRIu64, a->actions[i].n);
    }
    if (a->actions_other > 0)
        fprintf(m, "%s\"(other)\":%" PRIu64, a->n_actions ? "," : "", a->actions_other);
    pki_hex(log.head_hash, 32, hex);
    fprintf(m, "},\"verify\":{\"log\":{\"ok\":%s,\"records\":%" PRIu64 ",\"problems\":%lu,\"head_seq\":%" PRIu64
            ",\"head_hash\":\"%s\"}", log.problems == 0 ? "true" : "false", log.count, log.problems, log.last_seq, hex);
    fprintf(m, ",\"signed_heads\":{\"ok\":%s,\"count\":%" PRIu64 ",\"problems\":%lu,\"checked_with\":\"%s\"}",
            heads.problems == 0 ? "true" : "false", heads.count, heads.problems,
            pub != NULL ? "the audit key" : "nothing (no audit key)");
    fputs(",\"problem_lines\":[", m);
    for (size_t i = 0; i < a->n_problems; i++) {
        fputs(i ? "," : "", m);
        put_json_val(m, a->problems[i], ADM_AUDIT_LINE_MAX);
    }
    fprintf(m, "]},\"signed_head\":{\"newest_seq\":%" PRIu64, a->newest_head_seq);
    if (a->newest_head_seq != 0) {
        fmt_time(a->newest_head_ms, t, sizeof(t));
        fprintf(m, ",\"newest_time\":\"%s\"", t);
    }
    /* the range's records are all under a signed head: one signed at or after its last record */
    fprintf(m, ",\"covers_range\":%s,\"signed_in_range\":%" PRIu64 "}}",
            a->newest_head_seq != 0 && a->newest_head_seq >= a->last_seq ? "true" : "false", a->heads_in_range);
    rc = 0;
done:
    if (m != NULL && fclose(m) != 0)
        rc = 1;
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *out_len = 0;
    }
    free(a);
    return rc;
}
