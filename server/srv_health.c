/*
 * srv_health.c - csc-server's operators' listener (admin_listen): GET /healthz, /readyz and /metrics, nothing else,
 * and never on the public listeners.
 *
 * One event loop of its own on one thread, with its own h2o configuration: the public loops never see these paths
 * (they answer them 404 like any unknown path), and a slow /readyz or a scrape never delays a signature.
 *
 * /readyz asks what may block (csc-sam's HELLO, a storage write) on threads of its own, one per check, and waits
 * for their answers at most READY_DEADLINE_MS: a check that has not answered by then is reported failed ("no
 * answer within 2 s"), so /readyz always answers, and the next request waits for the same run instead of starting
 * another behind it. The HELLO goes through a pool of one connection of its own with that deadline (not the
 * service's, whose calls wait up to sam_timeout_ms); it answers both "sam" (csc-sam answers) and "hsm" (csc-sam
 * says its token is logged in). The storage check writes and deletes one browser session in one transaction:
 * the front end may write that table, the commit reaches the disk (LMDB) or the database (PostgreSQL, under
 * csc_front's grants), and nothing stays. The certificate and CRL checks read memory only.
 *
 * Opened in two steps because of the privilege switch and the seccomp filter (srv_priv.c): the socket, the TLS
 * context (with its key) and the client CA are opened before, the threads start after (clone is allowed then,
 * bind and listen are not).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include "srv.h"
#include "srv_metrics.h"
#include "srv_priv.h"

#ifndef CSC_VERSION
#define CSC_VERSION "unknown"
#endif

#define READY_DEADLINE_MS 2000   /* each check's answer, from the request */
#define DETAIL_MAX 256

typedef struct srv_health srv_health_t;

/* One check that may block, run on its own thread when a request asks (asked > done). */
typedef struct probe {
    srv_health_t *h;
    void (*run)(struct probe *p);
    pthread_t tid;
    int started;
    uint64_t asked, done;        /* under h->mu */
    int ok[2];                   /* the sam probe answers two checks: sam, hsm */
    char detail[2][DETAIL_MAX];
    int has_waits;               /* the sam probe: csc-sam's hsm_session_waits, from its HELLO (/metrics) */
    uint64_t waits;
    int has_heap;                /* the sam probe: csc-sam's malloc figures, from its HELLO (/metrics) */
    uint64_t heap_in_use, heap_held;
} probe_t;

enum { PROBE_SAM, PROBE_STORAGE, PROBE_N };

struct srv_health {
    const srv_config_t *cfg;
    srv_modules_t *mods;
    _Atomic int64_t tls_not_after; /* the public certificate's notAfter; 0: plain HTTP (srv_health_reload) */
    _Atomic unsigned cert_days;  /* readyz_cert_days (srv_health_reload) */
    int fd;
    SSL_CTX *ssl_ctx;            /* NULL: plain HTTP (loopback only) */
    sam_client_t *sam;           /* one connection, READY_DEADLINE_MS */
    h2o_globalconf_t conf;
    int conf_made;               /* h2o_config_init ran: h2o_config_dispose frees its hosts at the end */
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    h2o_multithread_receiver_t wake;
    h2o_socket_t *listener;
    pthread_t loop;
    int loop_started;
    volatile int stop;
    int stopping;                /* csc-server got SIGTERM/SIGINT and drains: /healthz and /readyz answer 503 */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    probe_t probes[PROBE_N];
};

/* ---- the checks that may block ------------------------------------------------------------------------------- */

static void probe_sam(probe_t *p)
{
    sam_hello_t hello;
    int rc = sam_client_hello(p->h->sam, &hello);
    if (rc != SAM_OK) {
        p->ok[0] = p->ok[1] = 0;
        snprintf(p->detail[0], DETAIL_MAX, "csc-sam does not answer HELLO: %s", sam_strerror(rc));
        snprintf(p->detail[1], DETAIL_MAX, "unknown: csc-sam does not answer");
        return;
    }
    p->ok[0] = hello.storage_ready;
    snprintf(p->detail[0], DETAIL_MAX, "%.200s (protocol %u, its storage %s)", hello.identity, (unsigned)hello.version,
             hello.storage_ready ? "open" : "UNAVAILABLE");
    p->has_waits = hello.has_hsm_waits;
    p->waits = hello.hsm_waits;
    p->has_heap = hello.has_heap;
    p->heap_in_use = hello.heap_in_use;
    p->heap_held = hello.heap_held;
    p->ok[1] = hello.hsm_ready;
    snprintf(p->detail[1], DETAIL_MAX, "%s", hello.hsm_ready ? "csc-sam's token is logged in"
                                                             : "csc-sam reports its token unavailable");
    OPENSSL_cleanse(&hello, sizeof(hello)); /* the pages' ticket key came with it (csc-server set it at start) */
}

typedef struct write_probe {
    stor_websession_t s;
} write_probe_t;

static int write_and_delete(stor_txn_t *t, void *arg)
{
    write_probe_t *w = arg;
    int rc = stor_txn_websession_put(t, &w->s, 1);
    if (rc == STOR_OK)
        rc = stor_txn_websession_del(t, w->s.hash);
    return rc;
}

static void probe_storage(probe_t *p)
{
    write_probe_t w;
    memset(&w, 0, sizeof(w));
    /* A key no session has: a random SHA-256-sized value (a session's key is the hash of its 32-byte secret id). */
    if (RAND_bytes(w.s.hash, sizeof(w.s.hash)) != 1) {
        p->ok[0] = 0;
        snprintf(p->detail[0], DETAIL_MAX, "no random bytes for the probe's key");
        return;
    }
    static const uint8_t empty_request = 0; /* a session holds a request; one byte stands for it */
    snprintf(w.s.user, sizeof(w.s.user), "readyz");
    snprintf(w.s.client_id, sizeof(w.s.client_id), "readyz");
    w.s.req = &empty_request;
    w.s.req_len = w.s.req_one = 1;
    w.s.created_at = w.s.touched_at = (int64_t)time(NULL);
    w.s.expires_at = w.s.created_at + 60; /* purged like any session, should a commit ever keep it */
    int rc = stor_write(p->h->mods->stor, write_and_delete, &w);
    p->ok[0] = rc == STOR_OK;
    if (rc == STOR_OK)
        snprintf(p->detail[0], DETAIL_MAX, "a write transaction committed");
    else
        snprintf(p->detail[0], DETAIL_MAX, "a write failed: %s", stor_strerror(rc));
}

static void *probe_main(void *arg)
{
    probe_t *p = arg;
    srv_health_t *h = p->h;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (p->done == p->asked && !h->stop)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->stop)
            break;
        uint64_t gen = p->asked;
        probe_t out = *p; /* the run fills a copy: readers see the last whole answer meanwhile */
        pthread_mutex_unlock(&h->mu);
        out.run(&out);
        pthread_mutex_lock(&h->mu);
        memcpy(p->ok, out.ok, sizeof(p->ok));
        memcpy(p->detail, out.detail, sizeof(p->detail));
        if (out.has_waits) { /* a HELLO that failed keeps the last count known */
            p->has_waits = 1;
            p->waits = out.waits;
        }
        if (out.has_heap) { /* likewise */
            p->has_heap = 1;
            p->heap_in_use = out.heap_in_use;
            p->heap_held = out.heap_held;
        }
        p->done = gen;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---- answers ------------------------------------------------------------------------------------------------- */

/* A JSON string of s (the details are the server's own words, but a CRL's file name is not). */
static void json_str(srv_mw_t *w, const char *s)
{
    char esc[8];
    srv_mw_raw(w, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            srv_mw_raw(w, esc, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            srv_mw_raw(w, esc, 6);
        } else {
            srv_mw_raw(w, (const char *)&ch, 1);
        }
    }
    srv_mw_raw(w, "\"", 1);
}

static void answer(h2o_req_t *req, int status, const char *reason, const char *type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    if (status == 405)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
    req->res.content_length = len;
    h2o_send_inline(req, h2o_strdup(&req->pool, body, len).base, len);
}

static void check(srv_mw_t *w, int *first, const char *name, int ok, const char *detail)
{
    srv_mw_raw(w, *first ? "" : ",", *first ? 0 : 1);
    *first = 0;
    json_str(w, name);
    srv_mw_raw(w, ok ? ":{\"ok\":true,\"detail\":" : ":{\"ok\":false,\"detail\":", ok ? 21 : 22);
    json_str(w, detail);
    srv_mw_raw(w, "}", 1);
}

static void utc(int64_t t, char *buf, size_t sz)
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(buf, sz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void readyz(srv_health_t *h, h2o_req_t *req)
{
    uint64_t want[PROBE_N];
    int ok[PROBE_N][2];
    char detail[PROBE_N][2][DETAIL_MAX];
    struct timespec until;

    /* Ask each probe for a run (or join the one in progress), then wait for them up to the deadline. */
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += READY_DEADLINE_MS / 1000;
    until.tv_nsec += (long)(READY_DEADLINE_MS % 1000) * 1000000L + 200000000L; /* the HELLO's own deadline, + 0.2 s */
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < PROBE_N; i++) {
        probe_t *p = &h->probes[i];
        if (p->done == p->asked)
            p->asked++;
        want[i] = p->asked;
    }
    pthread_cond_broadcast(&h->cv);
    for (;;) {
        int all = 1;
        for (int i = 0; i < PROBE_N; i++)
            all &= h->probes[i].done >= want[i];
        if (all || pthread_cond_timedwait(&h->cv, &h->mu, &until) == ETIMEDOUT)
            break;
    }
    for (int i = 0; i < PROBE_N; i++) {
        probe_t *p = &h->probes[i];
        if (p->done >= want[i]) {
            memcpy(ok[i], p->ok, sizeof(ok[i]));
            memcpy(detail[i], p->detail, sizeof(detail[i]));
        } else {
            ok[i][0] = ok[i][1] = 0;
            snprintf(detail[i][0], DETAIL_MAX, "no answer within %d s", READY_DEADLINE_MS / 1000);
            snprintf(detail[i][1], DETAIL_MAX, "no answer within %d s", READY_DEADLINE_MS / 1000);
        }
    }
    pthread_mutex_unlock(&h->mu);

    /* What needs no waiting: the public certificate's expiry, the CRLs' nextUpdate. */
    int64_t now = (int64_t)time(NULL);
    char when[32], tls[DETAIL_MAX], crls[DETAIL_MAX];
    int tls_ok = 1, crls_ok = 1;
    int64_t not_after = atomic_load(&h->tls_not_after);
    unsigned cert_days = atomic_load(&h->cert_days);
    if (not_after == 0) {
        snprintf(tls, sizeof(tls), "plain HTTP: no certificate");
    } else {
        int64_t left = not_after - now;
        utc(not_after, when, sizeof(when));
        tls_ok = left > (int64_t)cert_days * 86400;
        snprintf(tls, sizeof(tls), "notAfter %s: %lld days left (readyz_cert_days = %u)", when,
                 (long long)(left > 0 ? left / 86400 : 0), cert_days);
    }
    csc_crl_status_t cs;
    csc_crl_status(h->mods->csc, now, &cs);
    if (!cs.configured) {
        snprintf(crls, sizeof(crls), "crl_dir not set");
    } else if (cs.stale > 0) {
        crls_ok = 0;
        snprintf(crls, sizeof(crls), "%zu of %zu CRLs past nextUpdate (first: %.150s)", cs.stale, cs.count,
                 cs.first_stale);
    } else if (cs.count == 0) {
        snprintf(crls, sizeof(crls), "no CRL in crl_dir");
    } else {
        utc(cs.earliest_next_update, when, sizeof(when));
        snprintf(crls, sizeof(crls), "%zu CRLs, the earliest nextUpdate %s", cs.count, when);
    }

    int all = ok[PROBE_SAM][0] && ok[PROBE_SAM][1] && ok[PROBE_STORAGE][0] && tls_ok && crls_ok, first = 1;
    srv_mw_t w = {0};
    srv_mw_raw(&w, all ? "{\"status\":\"ok\",\"checks\":{" : "{\"status\":\"fail\",\"checks\":{", all ? 25 : 27);
    check(&w, &first, "sam", ok[PROBE_SAM][0], detail[PROBE_SAM][0]);
    check(&w, &first, "hsm", ok[PROBE_SAM][1], detail[PROBE_SAM][1]);
    check(&w, &first, "storage", ok[PROBE_STORAGE][0], detail[PROBE_STORAGE][0]);
    check(&w, &first, "tls_cert", tls_ok, tls);
    check(&w, &first, "crls", crls_ok, crls);
    srv_mw_raw(&w, "}}\n", 3);
    if (w.oom)
        answer(req, 500, "Internal Server Error", "application/json", "{\"status\":\"fail\"}\n", 18);
    else
        answer(req, all ? 200 : 503, all ? "OK" : "Service Unavailable", "application/json", w.buf, w.len);
    srv_mw_free(&w);
}

static void metrics(srv_health_t *h, h2o_req_t *req)
{
    csc_stats_t st;
    stor_commit_stats_t cs;
    srv_metrics_extra_t x = {.version = CSC_VERSION, .tls_not_after = atomic_load(&h->tls_not_after)};
    srv_mw_t w = {0};

    csc_stats_get(h->mods->csc, &st);
    stor_commit_stats(h->mods->stor, &cs);
    x.storage_known = 1;
    x.commits = cs.batches;
    x.commit_jobs = cs.jobs;
    x.commit_bounds = stor_commit_bounds;
    x.n_commit_bounds = STOR_COMMIT_BUCKETS;
    x.commit_buckets = cs.buckets;
    x.commit_seconds = cs.seconds;
    x.size_known = stor_size(h->mods->stor, &x.size_used, &x.size_capacity) == STOR_OK;
    x.heap_known = 1;
    srv_priv_heap_usage(&x.heap_in_use, &x.heap_held);
    /* csc-sam's pool waits: the sam probe's last HELLO (a /readyz, or the previous scrape), and a new one asked for the
     * next scrape without waiting for it: a scrape never blocks on csc-sam. */
    pthread_mutex_lock(&h->mu);
    probe_t *sp = &h->probes[PROBE_SAM];
    x.hsm_waits_known = sp->has_waits;
    x.hsm_waits = sp->waits;
    x.sam_heap_known = sp->has_heap;
    x.sam_heap_in_use = sp->heap_in_use;
    x.sam_heap_held = sp->heap_held;
    if (sp->started && sp->done == sp->asked) {
        sp->asked++;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    srv_metrics_write(&w, &st, &x);
    if (w.oom)
        answer(req, 500, "Internal Server Error", "text/plain", "out of memory\n", 14);
    else
        answer(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", w.buf, w.len);
    srv_mw_free(&w);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    srv_health_t *h = *(srv_health_t **)(self + 1);
    h2o_iovec_t p = req->path_normalized;
    enum { HEALTHZ, READYZ, METRICS, NONE } what = NONE;

    if (h2o_memis(p.base, p.len, H2O_STRLIT("/healthz")))
        what = HEALTHZ;
    else if (h2o_memis(p.base, p.len, H2O_STRLIT("/readyz")))
        what = READYZ;
    else if (h2o_memis(p.base, p.len, H2O_STRLIT("/metrics")))
        what = METRICS;
    if (what == NONE) {
        answer(req, 404, "Not Found", "application/json", "{\"error\":\"not_found\"}\n", 22);
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        answer(req, 405, "Method Not Allowed", "application/json", "{\"error\":\"method_not_allowed\"}\n", 31);
        return 0;
    }
    if (what != METRICS && __atomic_load_n(&h->stopping, __ATOMIC_RELAXED)) /* take this node out of the pool */
        answer(req, 503, "Service Unavailable", "application/json", "{\"status\":\"stopping\"}\n", 22);
    else if (what == HEALTHZ) /* this loop answers: the process is up and has not begun to stop */
        answer(req, 200, "OK", "application/json", "{\"status\":\"ok\"}\n", 16);
    else if (what == READYZ)
        readyz(h, req);
    else
        metrics(h, req);
    return 0;
}

/* ---- the listener ---------------------------------------------------------------------------------------------- */

static void on_wake(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
    (void)recv;
    (void)messages; /* srv_health_stop's empty message: the loop looks at h->stop */
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;
    if (err != NULL || (sock = h2o_evloop_socket_accept(listener)) == NULL)
        return;
    h2o_accept(listener->data, sock);
}

static void *loop_main(void *arg)
{
    srv_health_t *h = arg;
    h2o_context_init(&h->ctx, h2o_evloop_create(), &h->conf);
    h2o_multithread_register_receiver(h->ctx.queue, &h->wake, on_wake);
    h->accept.ctx = &h->ctx;
    h->accept.hosts = h->conf.hosts;
    h->accept.ssl_ctx = h->ssl_ctx;
    h->listener = h2o_evloop_socket_create(h->ctx.loop, h->fd, H2O_SOCKET_FLAG_DONT_READ);
    h->fd = -1; /* the socket owns it */
    h->listener->data = &h->accept;
    h2o_socket_read_start(h->listener, on_accept);
    while (!h->stop)
        h2o_evloop_run(h->ctx.loop, INT32_MAX);
    h2o_socket_read_stop(h->listener);
    h2o_socket_close(h->listener);
    return NULL;
}

static SSL_CTX *admin_tls(const srv_config_t *cfg)
{
    SSL_CTX *ctx = srv_tls_server_ctx(cfg->admin_tls_cert, cfg->admin_tls_key, "admin_tls_cert", "admin_tls_key");
    if (ctx == NULL)
        return NULL;
    if (cfg->admin_tls_client_ca[0] != '\0') {
        /* Mutual TLS: no certificate of that CA, no handshake (so no request is read at all). */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->admin_tls_client_ca);
        if (names == NULL || SSL_CTX_load_verify_locations(ctx, cfg->admin_tls_client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            fprintf(stderr, "admin_tls_client_ca %s: ", cfg->admin_tls_client_ca);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        SSL_CTX_set_verify_depth(ctx, 4);
    }
    return ctx;
fail:
    ERR_print_errors_fp(stderr);
    SSL_CTX_free(ctx);
    return NULL;
}

int srv_health_open(const srv_config_t *cfg, srv_modules_t *m, int64_t tls_not_after, srv_health_t **out)
{
    *out = NULL;
    if (cfg->admin_listen[0] == '\0')
        return 0;
    srv_health_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -1;
    h->cfg = cfg;
    h->mods = m;
    atomic_init(&h->tls_not_after, tls_not_after);
    atomic_init(&h->cert_days, cfg->readyz_cert_days);
    h->fd = -1;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (sam_client_new(cfg->sam_socket, 1, READY_DEADLINE_MS, &h->sam) != SAM_OK) {
        fprintf(stderr, "admin_listen: cannot make the connection to csc-sam of /readyz\n");
        goto fail;
    }
    if (cfg->admin_tls_cert[0] != '\0' && (h->ssl_ctx = admin_tls(cfg)) == NULL)
        goto fail;
    if ((h->fd = srv_http_listen(cfg->admin_listen)) < 0)
        goto fail;
    h2o_config_init(&h->conf);
    h->conf_made = 1;
    h->conf.server_name = h2o_iovec_init(H2O_STRLIT("csc-server"));
    h->conf.max_request_entity_size = 1024; /* GET only: nothing to upload */
    h->conf.http1.req_timeout = 10000;
    h2o_hostconf_t *host = h2o_config_register_host(&h->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler) + sizeof(h));
    handler->on_req = on_req;
    *(srv_health_t **)(handler + 1) = h;
    h->probes[PROBE_SAM].run = probe_sam;
    h->probes[PROBE_STORAGE].run = probe_storage;
    for (int i = 0; i < PROBE_N; i++)
        h->probes[i].h = h;
    *out = h;
    return 0;
fail:
    srv_health_close(h);
    return -1;
}

int srv_health_start(srv_health_t *h)
{
    if (h == NULL)
        return 0;
    for (int i = 0; i < PROBE_N; i++) {
        if (pthread_create(&h->probes[i].tid, NULL, probe_main, &h->probes[i]) != 0)
            return -1;
        h->probes[i].started = 1;
    }
    if (pthread_create(&h->loop, NULL, loop_main, h) != 0)
        return -1;
    h->loop_started = 1;
    fprintf(stderr, "csc-server: operators' listener on %s://%s (/healthz, /readyz, /metrics%s)\n",
            h->ssl_ctx != NULL ? "https" : "http", h->cfg->admin_listen,
            h->cfg->admin_tls_client_ca[0] != '\0' ? "; client certificate required" : "");
    return 0;
}

void srv_health_stopping(srv_health_t *h)
{
    if (h != NULL)
        __atomic_store_n(&h->stopping, 1, __ATOMIC_RELAXED);
}

void srv_health_reload(srv_health_t *h, int64_t tls_not_after, unsigned readyz_cert_days)
{
    if (h == NULL)
        return;
    atomic_store(&h->tls_not_after, tls_not_after);
    atomic_store(&h->cert_days, readyz_cert_days);
}

void srv_health_close(srv_health_t *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (h->loop_started) {
        h2o_multithread_send_message(&h->wake, NULL);
        pthread_join(h->loop, NULL);
    }
    /* A probe still in a storage write or a HELLO ends with it (each is bounded: the HELLO by its deadline, the
     * write by storage's own timeouts). */
    for (int i = 0; i < PROBE_N; i++)
        if (h->probes[i].started)
            pthread_join(h->probes[i].tid, NULL);
    if (h->fd >= 0)
        close(h->fd);
    /* The loop's context stays to process exit, as the public loops' do (h2o 2.2.5 cannot dispose one with
     * keep-alive connections open; tests/integration/lsan.supp); the configuration is ours to free. */
    if (h->conf_made)
        h2o_config_dispose(&h->conf);
    SSL_CTX_free(h->ssl_ctx);
    sam_client_free(h->sam);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
