/*
 * srv_audit.c - csc-admin's audit reports: the operator library (admin/adm_audit.c, adm_audit_heads.c) finds the
 * problems, records and signed heads; this prints them. Text lines escape everything outside printable ASCII,
 * JSON lines are valid JSON whatever was stored; records hold no secrets, so none are printed.
 */
#include <inttypes.h>
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

/* JSON string: bytes outside printable ASCII as \u00XX, so the line is valid JSON whatever was stored. */
static void put_json_str(FILE *out, const char *key, const char *s, size_t max)
{
    size_t n = strnlen(s, max);

    fprintf(out, ",\"%s\":\"", key);
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
