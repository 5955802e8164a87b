/* Unit tests of the /metrics writer (server/srv_metrics.c): escaping, histograms, the whole exposition. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "csc.h"
#include "srv_metrics.h"
#include "test_srv.h"

static int has_line(const srv_mw_t *w, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = w->buf; p != NULL && *p != '\0';) {
        const char *e = strchr(p, '\n');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, line, n) == 0)
            return 1;
        p = e != NULL ? e + 1 : NULL;
    }
    return 0;
}

#define HAS(w, line) ck_assert_msg(has_line(&(w), line), "missing line <%s> in:\n%s", line, (w).buf)

/* Label values: backslash, double quote and line feed escaped; HELP: backslash and line feed only. */
START_TEST(t_escaping)
{
    srv_mw_t w = {0};
    srv_mw_family(&w, "x_total", "counter", "a \\ b\nc \"q\"");
    srv_label_t l[] = {{"path", "a\\b\"c\nd"}, {"k", ""}};
    srv_mw_sample_u64(&w, "x_total", l, 2, 7);
    ck_assert(!w.oom);
    HAS(w, "# HELP x_total a \\\\ b\\nc \"q\"");
    HAS(w, "# TYPE x_total counter");
    HAS(w, "x_total{path=\"a\\\\b\\\"c\\nd\",k=\"\"} 7");
    ck_assert_ptr_eq(strstr(w.buf, "# HELP"), w.buf); /* HELP first, then TYPE */
    ck_assert(strstr(w.buf, "# TYPE") < strstr(w.buf, "x_total{"));
    srv_mw_free(&w);
}
END_TEST

/* Buckets cumulative, le="+Inf" equal to _count, _sum as given; labels kept before le. */
START_TEST(t_histogram)
{
    srv_mw_t w = {0};
    const double bounds[] = {0.1, 0.5, 2};
    const uint64_t counts[] = {3, 0, 2, 4}; /* 4 above the last bound */
    srv_label_t l[] = {{"method", "signatures/signHash"}};
    srv_mw_family(&w, "d_seconds", "histogram", "h");
    srv_mw_histogram(&w, "d_seconds", l, 1, bounds, 3, counts, 12.5);
    HAS(w, "d_seconds_bucket{method=\"signatures/signHash\",le=\"0.1\"} 3");
    HAS(w, "d_seconds_bucket{method=\"signatures/signHash\",le=\"0.5\"} 3");
    HAS(w, "d_seconds_bucket{method=\"signatures/signHash\",le=\"2\"} 5");
    HAS(w, "d_seconds_bucket{method=\"signatures/signHash\",le=\"+Inf\"} 9");
    HAS(w, "d_seconds_sum{method=\"signatures/signHash\"} 12.5");
    HAS(w, "d_seconds_count{method=\"signatures/signHash\"} 9");
    srv_mw_free(&w);

    /* no labels: le alone */
    const uint64_t none[] = {0, 0, 0, 0};
    srv_mw_histogram(&w, "e", NULL, 0, bounds, 3, none, 0);
    HAS(w, "e_bucket{le=\"+Inf\"} 0");
    HAS(w, "e_count 0");
    HAS(w, "e_sum 0");
    srv_mw_free(&w);
}
END_TEST

/* Requests are counted by kind and status; the duration lands in the first bucket at or above it. */
START_TEST(t_requests)
{
    size_t sign = csc_metric_method("/csc/v2/signatures/signHash", 27);
    ck_assert_str_eq(csc_metric_method_name(sign), "signatures/signHash");
    ck_assert_uint_eq(csc_metric_method("/csc/v1/signatures/signHash", 27), sign); /* v1 and v2 together */
    ck_assert_str_eq(csc_metric_method_name(csc_metric_method("/csc/v2/nothing", 15)), "other");
    ck_assert_str_eq(csc_metric_method_name(csc_metric_method("/approve", 8)), "page");
    ck_assert_str_eq(csc_metric_method_name(csc_metric_method("/oauth2/token", 13)), "oauth2/token");
    ck_assert_str_eq(csc_metric_method_name(csc_metric_method("/etc/passwd", 11)), "other");

    srv_metrics_request(sign, 200, 0.003);
    srv_metrics_request(sign, 200, 0.2);
    srv_metrics_request(sign, 400, 100); /* beyond the last bound: +Inf only */
    srv_metrics_request(sign, 999, 0.003); /* no such status: counted as 500 */
    srv_metrics_refused(SRV_REFUSED_PER_ADDRESS);
    srv_metrics_refused(SRV_REFUSED_PER_ADDRESS);
    srv_metrics_refused(SRV_REFUSED_N); /* no such reason: not counted */

    csc_stats_t st;
    memset(&st, 0, sizeof(st));
    st.n_algs = 1;
    st.alg[0] = "1.2.840.10045.4.3.2";
    st.signatures[0] = 5;
    st.sad_denials[CSC_SAD_EXHAUSTED] = 2;
    st.hsm_errors[CSC_HSM_UNAVAILABLE] = 4;
    srv_metrics_extra_t x = {.version = "v1.2-3-g\"x\"", .tls_not_after = 1900000000};
    srv_mw_t w = {0};
    srv_metrics_write(&w, &st, &x);
    ck_assert(!w.oom);
    HAS(w, "csc_requests_total{method=\"signatures/signHash\",status=\"200\"} 2");
    HAS(w, "csc_requests_total{method=\"signatures/signHash\",status=\"400\"} 1");
    HAS(w, "csc_requests_total{method=\"signatures/signHash\",status=\"500\"} 1");
    HAS(w, "csc_request_duration_seconds_bucket{method=\"signatures/signHash\",le=\"0.005\"} 2");
    HAS(w, "csc_request_duration_seconds_bucket{method=\"signatures/signHash\",le=\"0.25\"} 3");
    HAS(w, "csc_request_duration_seconds_bucket{method=\"signatures/signHash\",le=\"30\"} 3");
    HAS(w, "csc_request_duration_seconds_bucket{method=\"signatures/signHash\",le=\"+Inf\"} 4");
    HAS(w, "csc_request_duration_seconds_count{method=\"signatures/signHash\"} 4");
    HAS(w, "csc_request_duration_seconds_sum{method=\"signatures/signHash\"} 100.206");
    HAS(w, "csc_connections_refused_total{reason=\"per_address\"} 2");
    HAS(w, "csc_connections_refused_total{reason=\"total\"} 0"); /* the label set is fixed */
    HAS(w, "csc_signatures_total{algorithm=\"1.2.840.10045.4.3.2\"} 5");
    HAS(w, "csc_sad_denials_total{reason=\"exhausted\"} 2");
    HAS(w, "csc_sad_denials_total{reason=\"expired\"} 0");
    HAS(w, "csc_auth_failures_total{kind=\"pin_otp\"} 0");
    HAS(w, "csc_lockouts_total 0");
    HAS(w, "csc_hsm_errors_total{kind=\"unavailable\"} 4");
    HAS(w, "csc_hsm_errors_total{kind=\"failed\"} 0");
    HAS(w, "csc_sam_reachable 0");
    HAS(w, "csc_tls_cert_expiry_timestamp_seconds 1900000000");
    HAS(w, "csc_build_info{version=\"v1.2-3-g\\\"x\\\"\"} 1");
    HAS(w, "# TYPE csc_request_duration_seconds histogram");
    ck_assert_ptr_null(strstr(w.buf, "csc_storage_commits_total")); /* not read: not shown */
    ck_assert_ptr_null(strstr(w.buf, "method=\"auth/login\"")); /* kinds without requests have no series */
    srv_mw_free(&w);
}
END_TEST

TCase *srv_metrics_tcase(void)
{
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, t_escaping);
    tcase_add_test(tc, t_histogram);
    tcase_add_test(tc, t_requests);
    return tc;
}
