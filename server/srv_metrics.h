/*
 * srv_metrics.h - csc-server's metrics (srv_metrics.c): the request counters of the public listener and the
 * Prometheus text exposition (format 0.0.4) that /metrics on the operators' listener answers. No h2o here: the
 * writer is plain C, tested on its own (tests/unit/server).
 */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* ---- the exposition writer -------------------------------------------------------------------------------- */

/* A growing text buffer; a failed allocation sets oom and later writes do nothing (the caller answers 500). */
typedef struct srv_mw {
    char *buf;
    size_t len, cap;
    int oom;
} srv_mw_t;

/* One label: name (a Prometheus label name, from the code) and value (any bytes: escaped). */
typedef struct srv_label {
    const char *name;
    const char *value;
} srv_label_t;

/* "# HELP name help" and "# TYPE name type" (type: counter, gauge, histogram). Once per family, before its samples. */
void srv_mw_family(srv_mw_t *w, const char *name, const char *type, const char *help);
/* One sample: name{labels} value. */
void srv_mw_sample(srv_mw_t *w, const char *name, const srv_label_t *labels, size_t n_labels, double value);
void srv_mw_sample_u64(srv_mw_t *w, const char *name, const srv_label_t *labels, size_t n_labels, uint64_t value);
/* A histogram's samples: name_bucket{labels,le="bound"} for each bound and le="+Inf", then name_sum and name_count.
 * counts[i] is the number of observations within bounds[i] and above bounds[i-1] (not cumulative), counts[n_bounds]
 * those above the last bound; the writer adds them up. At most 8 labels. */
void srv_mw_histogram(srv_mw_t *w, const char *name, const srv_label_t *labels, size_t n_labels, const double *bounds,
                      size_t n_bounds, const uint64_t *counts, double sum);
void srv_mw_free(srv_mw_t *w);
/* n bytes as they are (srv_health.c writes its JSON with the same buffer). */
void srv_mw_raw(srv_mw_t *w, const char *s, size_t n);

/* ---- csc-server's own counters ------------------------------------------------------------------------------ */

/* Request duration buckets, seconds. */
#define SRV_DURATION_BUCKETS 12
extern const double srv_duration_bounds[SRV_DURATION_BUCKETS];

/* Count one request of the public listener: kind (csc_metric_method), HTTP status, seconds from its first byte to
 * the end of its response. Lock-free (relaxed atomics); any thread. */
void srv_metrics_request(size_t kind, int status, double seconds);

/* A new connection of the public listener closed at once, before TLS: max_connections reached (SRV_REFUSED_TOTAL)
 * or its address's max_connections_per_address (SRV_REFUSED_PER_ADDRESS). Lock-free; any thread. */
enum { SRV_REFUSED_TOTAL, SRV_REFUSED_PER_ADDRESS, SRV_REFUSED_N };
void srv_metrics_refused(unsigned reason);

/* What /metrics shows beside the counters above and the service's (csc_stats_get): read by the caller at scrape
 * time. */
typedef struct srv_metrics_extra {
    const char *version;        /* csc_build_info{version} */
    int64_t tls_not_after;      /* the public certificate's notAfter, unix seconds; 0: no TLS */
    int storage_known;          /* the commit statistics below were read */
    uint64_t commits, commit_jobs;
    const double *commit_bounds;
    size_t n_commit_bounds;
    const uint64_t *commit_buckets;   /* n_commit_bounds + 1 */
    double commit_seconds;
    int size_known;             /* the database's size below was read (stor_size: LMDB) */
    int hsm_waits_known;        /* csc-sam's HSM session-pool waits are known (its last HELLO) */
    uint64_t hsm_waits;
    int sam_heap_known;         /* csc-sam's malloc figures are known (its last HELLO) */
    uint64_t sam_heap_in_use, sam_heap_held;
    int heap_known;             /* csc-server's own malloc figures below were read (srv_priv_heap_usage) */
    uint64_t heap_in_use, heap_held;
    uint64_t size_used, size_capacity;
} srv_metrics_extra_t;

struct csc_stats;
/* The whole exposition into w: the request counters, the service's stats, extra. */
void srv_metrics_write(srv_mw_t *w, const struct csc_stats *st, const srv_metrics_extra_t *x);

#endif
