/*
 * adm_audit.c - the operators' view of the audit log: verification of the hash chain from the stored bytes
 * (csc-admin audit verify) and filtered listing (csc-admin audit query). Findings and records go to the caller's
 * callback; csc-admin (server/srv_audit.c) prints them.
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
    [STOR_EV_SAM] = "sam",              [STOR_EV_ENROLL] = "enroll",
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

/* ---- verify ------------------------------------------------------------------ */

typedef struct verify_state {
    adm_findings_t found;
    uint64_t records;
    uint64_t expect;        /* the seq the next key should have */
    int prev_known;         /* prev_hash/prev_seq describe a decoded record (or the start of the log) */
    uint64_t prev_seq;      /* 0 = start of the log */
    uint8_t prev_hash[32];  /* stored hash of the previous record (zero at the start) */
    int64_t prev_time_ms;   /* time of the last decoded record (0: none yet) */
    uint64_t time_back, time_back_seq;
    int64_t time_back_ms;
    int last_known;         /* the last key seen was decoded */
    uint64_t last_seq;
    uint8_t last_hash[32];
} verify_state_t;

void adm_finding(adm_findings_t *f, const char *fmt, ...)
{
    char line[ADM_AUDIT_LINE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    f->fn(line, f->arg);
    f->problems++;
}

static void check_link(verify_state_t *v, const stor_audit_raw_t *r)
{
    if (!v->prev_known || CRYPTO_memcmp(r->rec.prev_hash, v->prev_hash, 32) == 0)
        return;
    if (v->prev_seq == 0)
        adm_finding(&v->found, "record %" PRIu64 ": chain broken (prev_hash is not the start of the log)", r->key_seq);
    else
        adm_finding(&v->found, "record %" PRIu64 ": chain broken (prev_hash does not match record %" PRIu64 ")", r->key_seq,
                v->prev_seq);
}

static int verify_one(const stor_audit_raw_t *r, void *arg)
{
    verify_state_t *v = arg;

    v->records++;
    if (!r->key_ok || r->key_seq < v->expect) { /* keys sort, so only a malformed key or seq 0 can be behind */
        if (r->key_ok)
            adm_finding(&v->found, "record %" PRIu64 ": not a sequence number", r->key_seq);
        else
            adm_finding(&v->found, "record under a malformed key (not 8 bytes): not a sequence number");
        return 0;
    }
    if (r->key_seq == v->expect + 1)
        adm_finding(&v->found, "record %" PRIu64 " missing", v->expect);
    else if (r->key_seq > v->expect)
        adm_finding(&v->found, "records %" PRIu64 "-%" PRIu64 " missing", v->expect, r->key_seq - 1);
    v->expect = r->key_seq + 1;
    v->last_seq = r->key_seq;
    v->last_known = r->status == 0;
    if (r->status != 0) {
        adm_finding(&v->found, "record %" PRIu64 ": unreadable", r->key_seq);
        v->prev_known = 0; /* the next link cannot be judged */
        return 0;
    }
    if (CRYPTO_memcmp(r->computed, r->rec.hash, 32) != 0)
        adm_finding(&v->found, "record %" PRIu64 ": altered (hash mismatch)", r->key_seq);
    else if (!r->canonical)
        adm_finding(&v->found, "record %" PRIu64 ": altered (stored bytes are not the canonical encoding)", r->key_seq);
    if (r->rec.seq != r->key_seq)
        adm_finding(&v->found, "record %" PRIu64 ": out of place (carries seq %" PRIu64 ")", r->key_seq, r->rec.seq);
    check_link(v, r);
    if (v->prev_time_ms != 0 && r->rec.time_ms < v->prev_time_ms - ADM_AUDIT_TIME_BACK_MS) {
        if (v->time_back++ == 0)
            v->time_back_seq = r->key_seq;
        if (v->prev_time_ms - r->rec.time_ms > v->time_back_ms)
            v->time_back_ms = v->prev_time_ms - r->rec.time_ms;
    }
    v->prev_time_ms = r->rec.time_ms;
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
        adm_finding(&v->found, "head mismatch: meta holds an unreadable head");
        return;
    }
    if (tip->status != 0) {
        if (v->records > 0)
            adm_finding(&v->found, "head mismatch: meta holds no head, log ends at %" PRIu64, v->last_seq);
        return;
    }
    pki_hex(tip->hash, 32, th);
    if (v->records == 0) {
        adm_finding(&v->found, "head mismatch: meta says seq %" PRIu64 " / hash %s, log is empty", tip->seq, th);
        return;
    }
    if (!v->last_known) {
        adm_finding(&v->found, "head mismatch: meta says seq %" PRIu64 " / hash %s, log ends at %" PRIu64 " (unreadable)",
                tip->seq, th, v->last_seq);
        return;
    }
    if (tip->seq == v->last_seq && CRYPTO_memcmp(tip->hash, v->last_hash, 32) == 0)
        return;
    pki_hex(v->last_hash, 32, lh);
    adm_finding(&v->found, "head mismatch: meta says seq %" PRIu64 " / hash %s, log ends at %" PRIu64 " / hash %s", tip->seq,
            th, v->last_seq, lh);
}

int adm_audit_verify(stor_env_t *stor, adm_audit_problem_fn fn, void *arg, adm_audit_verdict_t *out, char *err,
                     size_t err_sz)
{
    verify_state_t v = {.found = {fn, arg, 0}, .expect = 1, .prev_known = 1};
    stor_audit_tip_t tip;
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (stor == NULL || fn == NULL || out == NULL)
        return adm_err(err, err_sz, ADM_ERR, "audit verify: invalid arguments");
    if ((rc = stor_audit_scan(stor, verify_one, &v, &tip)) != 0)
        return adm_err(err, err_sz, ADM_ERR, "cannot read the audit log: %s", stor_strerror(rc));
    check_tip(&v, &tip);
    out->problems = v.found.problems;
    out->count = v.records;
    out->time_back = v.time_back;
    out->time_back_seq = v.time_back_seq;
    out->time_back_ms = v.time_back_ms;
    out->last_seq = tip.seq;
    memcpy(out->head_hash, tip.hash, 32);
    return ADM_OK;
}

/* ---- query ------------------------------------------------------------------- */

typedef struct query_state {
    const adm_audit_filter_t *f;
    adm_audit_record_fn fn;
    void *arg;
    uint64_t matched;
} query_state_t;

static int query_one(const stor_audit_t *r, void *arg)
{
    query_state_t *q = arg;
    const adm_audit_filter_t *f = q->f;

    /* --user NAME finds what NAME did and what delegates did on NAME's behalf */
    if ((f->user != NULL && strcmp(f->user, r->user) != 0 && strcmp(f->user, r->owner) != 0) ||
        (f->cred != NULL && strcmp(f->cred, r->cred) != 0) || (f->event != 0 && f->event != r->event) ||
        (f->has_since && r->time_ms < f->since_ms) || (f->has_until && r->time_ms > f->until_ms))
        return 0;
    q->matched++;
    return q->fn(r, q->arg);
}

int adm_audit_query(stor_env_t *stor, const adm_audit_filter_t *f, adm_audit_record_fn fn, void *arg,
                    uint64_t *matched, char *err, size_t err_sz)
{
    query_state_t q = {.f = f, .fn = fn, .arg = arg};
    int rc;

    if (matched != NULL)
        *matched = 0;
    if (stor == NULL || f == NULL || fn == NULL)
        return adm_err(err, err_sz, ADM_ERR, "audit query: invalid arguments");
    if ((rc = stor_audit_each(stor, 1, query_one, &q)) != 0)
        return adm_err(err, err_sz, ADM_ERR, "cannot read the audit log (%s); run csc-admin audit verify",
                       stor_strerror(rc));
    if (matched != NULL)
        *matched = q.matched;
    return ADM_OK;
}
