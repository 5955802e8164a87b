/*
 * adm_audit.c - the operators' view of the audit log: verification of the hash chain from the stored bytes
 * (csc-admin audit verify) and filtered listing (csc-admin audit query).
 *
 * Verification trusts nothing it reads: each record's hash is recomputed from its stored fields by storage
 * (which owns the canonical encoding), and every link, seq and the head in meta are checked here. Every problem
 * is reported, not only the first, so an operator sees the extent of a tampering at once.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "adm_int.h"

static const char *const event_names[] = {
    [STOR_EV_LOGIN] = "login",         [STOR_EV_TOKEN_REVOKE] = "revoke", [STOR_EV_AUTHORIZE] = "authorize",
    [STOR_EV_SIGN] = "sign",           [STOR_EV_SIGN_RESULT] = "sign-result", [STOR_EV_ADMIN] = "admin",
    [STOR_EV_LOCKOUT] = "lockout",
    [STOR_EV_BACKUP] = "backup",       [STOR_EV_RESTORE] = "restore",     [STOR_EV_AUDIT_HEAD] = "audit-head",
    [STOR_EV_TIMESTAMP] = "timestamp",
    [STOR_EV_CERT] = "cert",
    [STOR_EV_CHALLENGE] = "challenge", [STOR_EV_APPROVAL] = "approval",
    [STOR_EV_OPERATOR] = "operator",   [STOR_EV_STORAGE] = "storage",
};
#define N_EVENTS (sizeof(event_names) / sizeof(event_names[0]))

const char *adm_audit_event_name(uint32_t event)
{
    return event < N_EVENTS && event_names[event] != NULL ? event_names[event] : "unknown";
}

int adm_audit_parse_event(const char *s, uint32_t *event)
{
    *event = 0;
    for (uint32_t i = 1; s != NULL && i < N_EVENTS; i++)
        if (event_names[i] != NULL && strcmp(s, event_names[i]) == 0) {
            *event = i;
            return 0;
        }
    return -1;
}

static const char *result_name(uint32_t result)
{
    return result == STOR_RES_OK ? "ok" : result == STOR_RES_DENIED ? "denied" : result == STOR_RES_ERROR ? "error"
                                                                                                         : "unknown";
}

/* authz_ref is a reference (a hash of a hash), never the SAD or token: printing it reveals nothing */
static void hex16_ref(const uint8_t ref[16], char out[65])
{
    uint8_t buf[32] = {0};

    memcpy(buf, ref, 16);
    pki_hex(buf, 32, out);
    out[32] = '\0';
}

/* ---- time ------------------------------------------------------------------ */

#define TIME_MAX_S 253402300799LL /* 9999-12-31T23:59:59Z */

/* n decimal digits at s; -1 if any is not a digit */
static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int parse_iso(const char *s, long long *sec)
{
    struct tm tm = {0}, back;
    time_t t;

    if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[19] != 'Z')
        return -1;
    tm.tm_year = digits(s, 4) - 1900;
    tm.tm_mon = digits(s + 5, 2) - 1;
    tm.tm_mday = digits(s + 8, 2);
    tm.tm_hour = digits(s + 11, 2);
    tm.tm_min = digits(s + 14, 2);
    tm.tm_sec = digits(s + 17, 2);
    if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_hour < 0 ||
        tm.tm_min < 0 || tm.tm_sec < 0)
        return -1;
    back = tm;
    t = timegm(&tm);
    /* timegm normalises 2026-02-30 into March: a date that does not come back unchanged does not exist */
    if (t == (time_t)-1 || tm.tm_year != back.tm_year || tm.tm_mon != back.tm_mon || tm.tm_mday != back.tm_mday ||
        tm.tm_hour != back.tm_hour || tm.tm_min != back.tm_min || tm.tm_sec != back.tm_sec)
        return -1;
    *sec = (long long)t;
    return 0;
}

int adm_audit_parse_time(const char *s, int64_t *ms)
{
    long long sec = 0;
    char *end = NULL;

    *ms = 0;
    if (s == NULL || *s == '\0')
        return -1;
    if (strchr(s, 'T') != NULL) {
        if (parse_iso(s, &sec) != 0)
            return -1;
    } else {
        if (strspn(s, "0123456789") != strlen(s) || strlen(s) > 12)
            return -1;
        sec = strtoll(s, &end, 10);
        if (end == NULL || *end != '\0')
            return -1;
    }
    if (sec < 0 || sec > TIME_MAX_S)
        return -1;
    *ms = (int64_t)sec * 1000;
    return 0;
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

/* ---- verify ------------------------------------------------------------------ */

typedef struct verify_state {
    FILE *out;
    unsigned long problems;
    uint64_t records;
    uint64_t expect;        /* the seq the next key should have */
    int prev_known;         /* prev_hash/prev_seq describe a decoded record (or the start of the log) */
    uint64_t prev_seq;      /* 0 = start of the log */
    uint8_t prev_hash[32];  /* stored hash of the previous record (zero at the start) */
    int last_known;         /* the last key seen was decoded */
    uint64_t last_seq;
    uint8_t last_hash[32];
} verify_state_t;

static void problem(verify_state_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(verify_state_t *v, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(v->out, fmt, ap);
    va_end(ap);
    fputc('\n', v->out);
    v->problems++;
}

static void check_link(verify_state_t *v, const stor_audit_raw_t *r)
{
    if (!v->prev_known || CRYPTO_memcmp(r->rec.prev_hash, v->prev_hash, 32) == 0)
        return;
    if (v->prev_seq == 0)
        problem(v, "record %" PRIu64 ": chain broken (prev_hash is not the start of the log)", r->key_seq);
    else
        problem(v, "record %" PRIu64 ": chain broken (prev_hash does not match record %" PRIu64 ")", r->key_seq,
                v->prev_seq);
}

static int verify_one(const stor_audit_raw_t *r, void *arg)
{
    verify_state_t *v = arg;

    v->records++;
    if (!r->key_ok || r->key_seq < v->expect) { /* keys sort, so only a malformed key or seq 0 can be behind */
        if (r->key_ok)
            problem(v, "record %" PRIu64 ": not a sequence number", r->key_seq);
        else
            problem(v, "record under a malformed key (not 8 bytes): not a sequence number");
        return 0;
    }
    if (r->key_seq == v->expect + 1)
        problem(v, "record %" PRIu64 " missing", v->expect);
    else if (r->key_seq > v->expect)
        problem(v, "records %" PRIu64 "-%" PRIu64 " missing", v->expect, r->key_seq - 1);
    v->expect = r->key_seq + 1;
    v->last_seq = r->key_seq;
    v->last_known = r->status == 0;
    if (r->status != 0) {
        problem(v, "record %" PRIu64 ": unreadable", r->key_seq);
        v->prev_known = 0; /* the next link cannot be judged */
        return 0;
    }
    if (CRYPTO_memcmp(r->computed, r->rec.hash, 32) != 0)
        problem(v, "record %" PRIu64 ": altered (hash mismatch)", r->key_seq);
    else if (!r->canonical)
        problem(v, "record %" PRIu64 ": altered (stored bytes are not the canonical encoding)", r->key_seq);
    if (r->rec.seq != r->key_seq)
        problem(v, "record %" PRIu64 ": out of place (carries seq %" PRIu64 ")", r->key_seq, r->rec.seq);
    check_link(v, r);
    v->prev_known = 1;
    v->prev_seq = r->key_seq;
    memcpy(v->prev_hash, r->rec.hash, 32);
    memcpy(v->last_hash, r->rec.hash, 32);
    return 0;
}

static void check_tip(verify_state_t *v, const stor_audit_tip_t *tip)
{
    char th[65], lh[65];

    if (tip->status == STOR_ERR_CORRUPT) {
        problem(v, "head mismatch: meta holds an unreadable head");
        return;
    }
    if (tip->status != 0) {
        if (v->records > 0)
            problem(v, "head mismatch: meta holds no head, log ends at %" PRIu64, v->last_seq);
        return;
    }
    pki_hex(tip->hash, 32, th);
    if (v->records == 0) {
        problem(v, "head mismatch: meta says seq %" PRIu64 " / hash %s, log is empty", tip->seq, th);
        return;
    }
    if (!v->last_known) {
        problem(v, "head mismatch: meta says seq %" PRIu64 " / hash %s, log ends at %" PRIu64 " (unreadable)",
                tip->seq, th, v->last_seq);
        return;
    }
    if (tip->seq == v->last_seq && CRYPTO_memcmp(tip->hash, v->last_hash, 32) == 0)
        return;
    pki_hex(v->last_hash, 32, lh);
    problem(v, "head mismatch: meta says seq %" PRIu64 " / hash %s, log ends at %" PRIu64 " / hash %s", tip->seq,
            th, v->last_seq, lh);
}

int adm_audit_verify(stor_env_t *stor, void *out, unsigned long *problems)
{
    verify_state_t v = {.out = out, .expect = 1, .prev_known = 1};
    stor_audit_tip_t tip;
    char hex[65];
    int rc;

    if (problems != NULL)
        *problems = 0;
    if (stor == NULL || out == NULL || problems == NULL)
        return -1;
    if ((rc = stor_audit_scan(stor, verify_one, &v, &tip)) != 0) {
        fprintf(stderr, "csc-admin: cannot read the audit log: %s\n", stor_strerror(rc));
        return -1;
    }
    check_tip(&v, &tip);
    *problems = v.problems;
    if (v.problems == 0) {
        pki_hex(tip.hash, 32, hex);
        fprintf(out, "audit log OK: %" PRIu64 " records, head %s\n", v.records, hex);
    } else {
        fprintf(out, "audit log FAILED: %lu problem%s in %" PRIu64 " records\n", v.problems,
                v.problems == 1 ? "" : "s", v.records);
    }
    return 0;
}

/* ---- query ------------------------------------------------------------------- */

typedef struct query_state {
    const adm_audit_filter_t *f;
    FILE *out;
    uint64_t matched;
} query_state_t;

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

static void print_text(FILE *out, const stor_audit_t *r, const char *when)
{
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
    fputs("\"\n", out);
}

static void print_json(FILE *out, const stor_audit_t *r, const char *when)
{
    char hex[65], b64[4 * ((STOR_DIGEST_LEN_MAX + 2) / 3) + 1];

    fprintf(out, "{\"seq\":%" PRIu64 ",\"time\":\"%s\",\"time_ms\":%" PRId64, r->seq, when, r->time_ms);
    fprintf(out, ",\"event\":\"%s\",\"result\":\"%s\"", adm_audit_event_name(r->event), result_name(r->result));
    put_json_str(out, "user", r->user, sizeof(r->user));
    put_json_str(out, "credential", r->cred, sizeof(r->cred));
    put_json_str(out, "client", r->client, sizeof(r->client));
    put_json_str(out, "detail", r->detail, sizeof(r->detail));
    if (r->owner[0] != '\0')
        put_json_str(out, "on_behalf_of", r->owner, sizeof(r->owner));
    fprintf(out, ",\"n_digests\":%" PRIu32 ",\"digests\":[", r->n_digests);
    for (uint32_t i = 0; i < r->n_digests && r->digest_len <= STOR_DIGEST_LEN_MAX; i++) {
        oauth_b64_encode(r->digests + (size_t)i * r->digest_len, r->digest_len, b64, OAUTH_B64_STD);
        fprintf(out, "%s\"%s\"", i == 0 ? "" : ",", b64);
    }
    hex16_ref(r->authz_ref, hex);
    fprintf(out, "],\"authz_ref\":\"%s\"", hex);
    pki_hex(r->prev_hash, 32, hex);
    fprintf(out, ",\"prev_hash\":\"%s\"", hex);
    pki_hex(r->hash, 32, hex);
    fprintf(out, ",\"hash\":\"%s\"}\n", hex);
}

static int query_one(const stor_audit_t *r, void *arg)
{
    query_state_t *q = arg;
    const adm_audit_filter_t *f = q->f;
    char when[96];

    /* --user NAME finds what NAME did and what delegates did on NAME's behalf */
    if ((f->user != NULL && strcmp(f->user, r->user) != 0 && strcmp(f->user, r->owner) != 0) || (f->cred != NULL && strcmp(f->cred, r->cred) != 0) ||
        (f->event != 0 && f->event != r->event) || (f->has_since && r->time_ms < f->since_ms) ||
        (f->has_until && r->time_ms > f->until_ms))
        return 0;
    fmt_time(r->time_ms, when, sizeof(when));
    if (f->json)
        print_json(q->out, r, when);
    else
        print_text(q->out, r, when);
    q->matched++;
    return 0;
}

int adm_audit_query(stor_env_t *stor, const adm_audit_filter_t *f, void *out, uint64_t *matched)
{
    query_state_t q = {.f = f, .out = out};
    int rc;

    if (matched != NULL)
        *matched = 0;
    if (stor == NULL || f == NULL || out == NULL)
        return -1;
    if ((rc = stor_audit_each(stor, 1, query_one, &q)) != 0) {
        fprintf(stderr, "csc-admin: cannot read the audit log (%s); run csc-admin audit verify\n",
                stor_strerror(rc));
        return -1;
    }
    if (matched != NULL)
        *matched = q.matched;
    return 0;
}
