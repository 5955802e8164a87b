/*
 * srv_metrics.c - the Prometheus text exposition (format 0.0.4) of csc-server's /metrics, and the counters of the
 * public listener's requests.
 *
 * No client library: Debian has none for C, and the format is small. What the format asks and this writer does:
 * a "# HELP" and a "# TYPE" line before each family's samples, all samples of a family together; label values
 * escaped (backslash, double quote, line feed); HELP text escaped (backslash, line feed); histogram buckets
 * cumulative, ending with le="+Inf" equal to _count; counters named *_total.
 *
 * The request counters are fixed arrays added to with relaxed atomics by the loop threads (srv_http.c's access
 * logger): a request kind from csc_metric_method()'s fixed table times a status code 100..599, so nothing a client
 * sends adds a series. A scrape reads each counter whole; together they are not one instant (a histogram's _count
 * may run ahead of its buckets by a request in flight: Prometheus takes that).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csc.h"
#include "srv_metrics.h"

/* ---- the writer ------------------------------------------------------------------------------------------- */

static int grow(srv_mw_t *w, size_t more)
{
    if (w->oom)
        return -1;
    if (w->len + more + 1 <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + more + 1)
        cap *= 2;
    char *b = realloc(w->buf, cap);
    if (b == NULL) {
        w->oom = 1;
        return -1;
    }
    w->buf = b;
    w->cap = cap;
    return 0;
}

static void put(srv_mw_t *w, const char *s, size_t n)
{
    if (grow(w, n) != 0)
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void puts_(srv_mw_t *w, const char *s)
{
    put(w, s, strlen(s));
}

static void printf_(srv_mw_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void printf_(srv_mw_t *w, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(w, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* quote: label values escape '"' too; HELP text only '\\' and line feeds. */
static void escaped(srv_mw_t *w, const char *s, int quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            puts_(w, "\\\\");
        else if (*s == '\n')
            puts_(w, "\\n");
        else if (*s == '"' && quote)
            puts_(w, "\\\"");
        else
            put(w, s, 1);
    }
}

void srv_mw_family(srv_mw_t *w, const char *name, const char *type, const char *help)
{
    puts_(w, "# HELP ");
    puts_(w, name);
    puts_(w, " ");
    escaped(w, help, 0);
    puts_(w, "\n# TYPE ");
    puts_(w, name);
    puts_(w, " ");
    puts_(w, type);
    puts_(w, "\n");
}

static void labels_(srv_mw_t *w, const srv_label_t *labels, size_t n)
{
    if (n == 0)
        return;
    puts_(w, "{");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            puts_(w, ",");
        puts_(w, labels[i].name);
        puts_(w, "=\"");
        escaped(w, labels[i].value, 1);
        puts_(w, "\"");
    }
    puts_(w, "}");
}

/* A finite float in the fewest digits (15 to 17) that read back as the same double: 0.1, not 0.10000000000000001. */
static void shortest(char *buf, size_t sz, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sz, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* A float as the format reads it (Go's ParseFloat): +Inf, -Inf, NaN, else the shortest %g that reads back. */
static void value(srv_mw_t *w, double v)
{
    char buf[40];
    if (isnan(v))
        puts_(w, "NaN");
    else if (isinf(v))
        puts_(w, v > 0 ? "+Inf" : "-Inf");
    else {
        shortest(buf, sizeof(buf), v);
        puts_(w, buf);
    }
}

void srv_mw_sample(srv_mw_t *w, const char *name, const srv_label_t *labels, size_t n_labels, double v)
{
    puts_(w, name);
    labels_(w, labels, n_labels);
    puts_(w, " ");
    value(w, v);
    puts_(w, "\n");
}

void srv_mw_sample_u64(srv_mw_t *w, const char *name, const srv_label_t *labels, size_t n_labels, uint64_t v)
{
    puts_(w, name);
    labels_(w, labels, n_labels);
    printf_(w, " %llu\n", (unsigned long long)v);
}

void srv_mw_histogram(srv_mw_t *w, const char *name, const srv_label_t *labels, size_t n_labels, const double *bounds,
                      size_t n_bounds, const uint64_t *counts, double sum)
{
    srv_label_t l[9];
    char le[40], bucket[128], other[128];
    uint64_t total = 0;

    if (n_labels > 8)
        n_labels = 8;
    if (n_labels > 0)
        memcpy(l, labels, n_labels * sizeof(*l));
    l[n_labels].name = "le";
    l[n_labels].value = le;
    snprintf(bucket, sizeof(bucket), "%s_bucket", name);
    for (size_t i = 0; i <= n_bounds; i++) {
        total += counts[i];
        if (i < n_bounds)
            shortest(le, sizeof(le), bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        srv_mw_sample_u64(w, bucket, l, n_labels + 1, total);
    }
    snprintf(other, sizeof(other), "%s_sum", name);
    srv_mw_sample(w, other, labels, n_labels, sum);
    snprintf(other, sizeof(other), "%s_count", name);
    srv_mw_sample_u64(w, other, labels, n_labels, total);
}

void srv_mw_raw(srv_mw_t *w, const char *s, size_t n)
{
    put(w, s, n);
}

void srv_mw_free(srv_mw_t *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

/* ---- csc-server's request counters --------------------------------------------------------------------------- */

#define KINDS_MAX 32      /* csc_metric_methods() is 20 today */
#define STATUS_MIN 100
#define STATUS_N 500      /* 100..599 */

const double srv_duration_bounds[SRV_DURATION_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                          0.5,   1,    2.5,   5,    10,  30};

static struct {
    uint64_t by_status[KINDS_MAX][STATUS_N];
    uint64_t buckets[KINDS_MAX][SRV_DURATION_BUCKETS + 1];
    uint64_t micros[KINDS_MAX];  /* the sum, in microseconds: an integer adds atomically */
} req;

void srv_metrics_request(size_t kind, int status, double seconds)
{
    if (kind >= KINDS_MAX)
        kind = KINDS_MAX - 1;
    if (status < STATUS_MIN || status >= STATUS_MIN + STATUS_N)
        status = 500; /* h2o never sends one outside; if it did, it is the server's fault */
    if (seconds < 0)
        seconds = 0;
    size_t b = 0;
    while (b < SRV_DURATION_BUCKETS && seconds > srv_duration_bounds[b])
        b++;
    __atomic_fetch_add(&req.by_status[kind][status - STATUS_MIN], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&req.buckets[kind][b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&req.micros[kind], (uint64_t)(seconds * 1e6), __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static uint64_t refused[SRV_REFUSED_N];

void srv_metrics_refused(unsigned reason)
{
    if (reason < SRV_REFUSED_N)
        __atomic_fetch_add(&refused[reason], 1, __ATOMIC_RELAXED);
}

static void write_requests(srv_mw_t *w)
{
    size_t kinds = csc_metric_methods();
    char status[8];
    if (kinds > KINDS_MAX)
        kinds = KINDS_MAX;

    srv_mw_family(w, "csc_requests_total", "counter",
                  "Requests answered on the public listener, by request kind (the CSC method, an OAuth endpoint, "
                  "page, other) and HTTP status.");
    for (size_t k = 0; k < kinds; k++)
        for (int s = 0; s < STATUS_N; s++) {
            uint64_t n = load(&req.by_status[k][s]);
            if (n == 0)
                continue;
            snprintf(status, sizeof(status), "%d", s + STATUS_MIN);
            srv_label_t l[] = {{"method", csc_metric_method_name(k)}, {"status", status}};
            srv_mw_sample_u64(w, "csc_requests_total", l, 2, n);
        }
    srv_mw_family(w, "csc_request_duration_seconds", "histogram",
                  "Time from a request's first byte to the end of its response, by request kind.");
    for (size_t k = 0; k < kinds; k++) {
        uint64_t counts[SRV_DURATION_BUCKETS + 1], any = 0;
        for (size_t b = 0; b <= SRV_DURATION_BUCKETS; b++)
            any += counts[b] = load(&req.buckets[k][b]);
        if (any == 0)
            continue;
        srv_label_t l[] = {{"method", csc_metric_method_name(k)}};
        srv_mw_histogram(w, "csc_request_duration_seconds", l, 1, srv_duration_bounds, SRV_DURATION_BUCKETS, counts,
                         (double)load(&req.micros[k]) / 1e6);
    }
    /* Both reasons always: the label set is fixed. */
    static const char *const reasons[SRV_REFUSED_N] = {"total", "per_address"};
    srv_mw_family(w, "csc_connections_refused_total", "counter",
                  "Connections of the public listener closed as they were accepted, before TLS, by reason: total "
                  "(max_connections open), per_address (max_connections_per_address open from that address).");
    for (unsigned i = 0; i < SRV_REFUSED_N; i++) {
        srv_label_t l[] = {{"reason", reasons[i]}};
        srv_mw_sample_u64(w, "csc_connections_refused_total", l, 1, load(&refused[i]));
    }
}

/* A process's malloc heaps as a gauge family of two samples, state="in_use" and state="held". */
static void heap_family(srv_mw_t *w, const char *name, const char *help, uint64_t in_use, uint64_t held)
{
    srv_label_t l_in_use[] = {{"state", "in_use"}}, l_held[] = {{"state", "held"}};
    srv_mw_family(w, name, "gauge", help);
    srv_mw_sample_u64(w, name, l_in_use, 1, in_use);
    srv_mw_sample_u64(w, name, l_held, 1, held);
}

void srv_metrics_write(srv_mw_t *w, const csc_stats_t *st, const srv_metrics_extra_t *x)
{
    write_requests(w);

    srv_mw_family(w, "csc_signatures_total", "counter",
                  "Signatures returned by signatures/signHash and signatures/signDoc, by signature algorithm (OID).");
    for (size_t i = 0; i < st->n_algs; i++) {
        srv_label_t l[] = {{"algorithm", st->alg[i]}};
        srv_mw_sample_u64(w, "csc_signatures_total", l, 1, st->signatures[i]);
    }
    srv_mw_family(w, "csc_sad_denials_total", "counter",
                  "SADs refused by csc-sam, by reason (expired, exhausted, not_bound, invalid).");
    for (unsigned i = 0; i < CSC_SAD_DENIAL_N; i++) {
        srv_label_t l[] = {{"reason", csc_sad_denial_name(i)}};
        srv_mw_sample_u64(w, "csc_sad_denials_total", l, 1, st->sad_denials[i]);
    }
    srv_mw_family(w, "csc_auth_failures_total", "counter",
                  "Wrong factors, by kind: login (a password), pin_otp (a credential's PIN or OTP, a TOTP code), "
                  "enroll (an enrollment code or the first TOTP code of /enroll).");
    for (unsigned i = 0; i < CSC_AUTH_FAILURE_N; i++) {
        srv_label_t l[] = {{"kind", csc_auth_failure_name(i)}};
        srv_mw_sample_u64(w, "csc_auth_failures_total", l, 1, st->auth_failures[i]);
    }
    srv_mw_family(w, "csc_lockouts_total", "counter",
                  "Requests refused because the user or the credential was locked after too many failures.");
    srv_mw_sample_u64(w, "csc_lockouts_total", NULL, 0, st->lockouts);
    srv_mw_family(w, "csc_hsm_errors_total", "counter",
                  "Signatures csc-sam could not make on its HSM, by kind: unavailable (the device out of reach), "
                  "failed.");
    for (unsigned i = 0; i < CSC_HSM_ERROR_N; i++) {
        srv_label_t l[] = {{"kind", csc_hsm_error_name(i)}};
        srv_mw_sample_u64(w, "csc_hsm_errors_total", l, 1, st->hsm_errors[i]);
    }
    srv_mw_family(w, "csc_read_cache_total", "counter",
                  "signHash's token and credential checks in csc-server (read_cache_ms), by result: hit (answered "
                  "from rows read before), miss (read from storage and kept), recheck (csc-sam refused a request "
                  "judged on kept rows: checked again on rows read then).");
    for (unsigned i = 0; i < CSC_RCACHE_RESULT_N; i++) {
        srv_label_t l[] = {{"result", csc_rcache_result_name(i)}};
        srv_mw_sample_u64(w, "csc_read_cache_total", l, 1, st->read_cache[i]);
    }
    srv_mw_family(w, "csc_sam_reachable", "gauge",
                  "0 when csc-server's last call to csc-sam found it out of reach, else 1 (/readyz asks it anew).");
    srv_mw_sample_u64(w, "csc_sam_reachable", NULL, 0, st->sam_reachable ? 1 : 0);
    srv_mw_family(w, "csc_async_queue_depth", "gauge",
                  "operationMode A jobs accepted and not yet finished.");
    srv_mw_sample_u64(w, "csc_async_queue_depth", NULL, 0, st->async_depth);

    if (x->storage_known) {
        srv_mw_family(w, "csc_storage_commits_total", "counter",
                      "Group commits of csc-server's own storage writes (web_sessions, async_results, pars).");
        srv_mw_sample_u64(w, "csc_storage_commits_total", NULL, 0, x->commits);
        srv_mw_family(w, "csc_storage_commit_jobs_total", "counter", "Writes carried by those group commits.");
        srv_mw_sample_u64(w, "csc_storage_commit_jobs_total", NULL, 0, x->commit_jobs);
        srv_mw_family(w, "csc_storage_commit_duration_seconds", "histogram",
                      "Time of one group commit, from its first write to durable.");
        srv_mw_histogram(w, "csc_storage_commit_duration_seconds", NULL, 0, x->commit_bounds, x->n_commit_bounds,
                         x->commit_buckets, x->commit_seconds);
    }
    if (x->hsm_waits_known) {
        srv_mw_family(w, "csc_hsm_session_waits_total", "counter",
                      "Times a signature in csc-sam waited for a free PKCS#11 session (pkcs11_sessions too small for "
                      "the load, or a slow token); as of csc-sam's last HELLO.");
        srv_mw_sample_u64(w, "csc_hsm_session_waits_total", NULL, 0, x->hsm_waits);
    }
    if (x->sam_heap_known) {
        heap_family(w, "csc_sam_heap_bytes",
                    "csc-sam's malloc heaps as of its last HELLO, by state: in_use (blocks allocated: what a leak "
                    "raises), held (what the heaps hold: in use, free, and sam_heap_reserve; locked, never given "
                    "back).",
                    x->sam_heap_in_use, x->sam_heap_held);
    }
    if (x->heap_known) {
        heap_family(w, "csc_heap_bytes",
                    "csc-server's malloc heaps now, by state: in_use (blocks allocated, mapped ones included: what a "
                    "leak raises), held (what the heaps hold: in use and free; malloc_trim gives free pages back every "
                    "10 s, so resident memory lies between the two).",
                    x->heap_in_use, x->heap_held);
    }
    if (x->size_known) {
        srv_mw_family(w, "csc_storage_used_bytes", "gauge", "Bytes the database uses now (LMDB: its pages in use).");
        srv_mw_sample_u64(w, "csc_storage_used_bytes", NULL, 0, x->size_used);
        srv_mw_family(w, "csc_storage_capacity_bytes", "gauge",
                      "The most the database may take (LMDB: map_size); a write beyond it is refused with 503.");
        srv_mw_sample_u64(w, "csc_storage_capacity_bytes", NULL, 0, x->size_capacity);
    }
    if (x->tls_not_after > 0) {
        srv_mw_family(w, "csc_tls_cert_expiry_timestamp_seconds", "gauge",
                      "notAfter of the public listener's TLS certificate, seconds since the epoch.");
        srv_mw_sample(w, "csc_tls_cert_expiry_timestamp_seconds", NULL, 0, (double)x->tls_not_after);
    }
    srv_mw_family(w, "csc_build_info", "gauge", "Always 1; the label names the version of csc-server.");
    srv_label_t v[] = {{"version", x->version}};
    srv_mw_sample(w, "csc_build_info", v, 1, 1);
}
