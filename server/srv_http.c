/*
 * srv_http.c - h2o glue: event loops, TLS, the hand-off to workers, access log.
 *
 * Each event-loop thread owns an h2o context and accepts on the shared
 * listening sockets. A request is copied into a job and queued to a pool of
 * worker threads that run csc_handle() (which may block on storage commits and
 * the HSM); the reply comes back to the loop through h2o's multithread queue.
 * So no loop ever waits for an HSM operation, and a slow signature delays only
 * its own request.
 *
 * There are two pools, each with its own bounded queue: a small one (auth_workers,
 * auth_queue) for the requests that check a password or PIN with scrypt
 * (csc_checks_secret(): auth/login, credentials/authorize, the page forms), and
 * the main one (workers) for everything else. A flood of password guesses fills
 * only the small pool; signHash, info and the rest never queue behind scrypt.
 * A full queue is answered at once with 503 and Retry-After.
 *
 * HTTP/2 stream cancellation disposes the request's memory pool while its job
 * runs; a shared slot in that pool clears job->req when that happens
 * (docs/stack-notes.md sec. 2.6).
 *
 * SIGHUP reloads (reload()): the configuration file is read again and what can
 * change at run time is put in force whole, or nothing is. A new TLS context is
 * published under a generation number; each loop takes it at its next accept,
 * so a new connection gets the new certificate and an open one keeps the
 * context it was made with (an SSL holds a reference to its SSL_CTX).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include "pki.h"
#include "srv.h"
#include "srv_conns.h"
#include "srv_metrics.h"
#include "srv_notify.h"
#include "srv_priv.h"

#define QUEUE_PER_WORKER 64 /* queued jobs per worker of the main pool before the server answers 503 */
#define AUTH_NICE 10        /* the password/PIN pool yields the CPU to signing and the event loops */
#define WORKER_IDLE_MS 10000 /* a worker idle this long ends (its malloc cache and stack go back), a few kept */
#define WORKERS_KEPT 2
#define REQUEST_ID_MAX 64   /* a client's X-Request-Id is taken when it is [A-Za-z0-9._-]{1,64} */

typedef struct loop loop_t;

typedef struct job {
    h2o_multithread_message_t msg; /* first: the queue hands back this pointer */
    srv_pool_item_t item;          /* a worker pool's link */
    loop_t *loop;
    h2o_req_t *req;                /* NULL once the client's stream is gone */
    struct job **guard;
    csc_call_t call;
    char client[INET6_ADDRSTRLEN];
    char request_id[REQUEST_ID_MAX + 1];
    char *data;                    /* copies of path, headers and body */
    size_t data_len;
    csc_reply_t reply;
} job_t;

struct loop {
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    h2o_multithread_receiver_t done;
    h2o_socket_t *listeners[SRV_LISTEN_MAX];
    size_t n_listeners;
    size_t inflight;
    SSL_CTX *ssl_ctx;              /* this loop's reference to the context it accepts with (NULL: plain HTTP) */
    unsigned tls_gen;              /* the generation of ssl_ctx */
    pthread_t tid;
    h2o_timeout_t wd_timeout;      /* systemd's watchdog (on_watchdog): loop 0's tick, the others' every quarter */
    h2o_timeout_entry_t wd_entry;
    atomic_int wd_ticked;          /* this loop (not loop 0) ticked since loop 0 last sent WATCHDOG=1 */
};

/* What a counted connection's socket carries to its close (h2o_socket_t.on_close). */
typedef struct conn_ref {
    unsigned char addr[SRV_CONNS_ADDR];
} conn_ref_t;

typedef struct server {
    const srv_config_t *cfg;
    srv_config_t *live;            /* the configuration in force: the one a reload compares with (main thread only) */
    srv_modules_t *mods;
    h2o_globalconf_t globalconf;
    pthread_mutex_t tls_mu;        /* guards ssl_ctx once the loops run */
    SSL_CTX *ssl_ctx;              /* the context new connections get */
    _Atomic unsigned tls_gen;      /* bumped by every reload that puts a new context in force */
    int fds[SRV_LISTEN_MAX];
    size_t n_fds;
    loop_t *loops;
    pthread_mutex_t log_mu;        /* guards access_log and log_json: a reload reopens the file */
    FILE *access_log;
    int log_json;                  /* access_log_format = json */
    srv_pool_t *main_pool; /* everything but password/PIN checks */
    srv_pool_t *auth_pool; /* requests that run scrypt */
    srv_health_t *health;  /* the operators' listener (admin_listen), or NULL */
    srv_conns_t *conns;    /* the connection caps' counts */
    volatile sig_atomic_t stop;
} server_t;

static server_t srv;

/* ---- workers ------------------------------------------------------------- */

/* A worker pool's run (srv_thread.c: the most recently idle worker takes the next job). */
static void worker_run(srv_pool_item_t *item)
{
    job_t *j = (job_t *)((char *)item - offsetof(job_t, item));

    csc_handle(srv.mods->csc, &j->call, &j->reply);
    /* The request (body with PINs, headers with tokens) is no longer needed. */
    OPENSSL_cleanse(j->data, j->data_len);
    h2o_multithread_send_message(&j->loop->done, &j->msg);
}

static void job_free(job_t *j)
{
    if (j->data != NULL) {
        OPENSSL_cleanse(j->data, j->data_len);
        free(j->data);
    }
    if (j->reply.body != NULL)
        OPENSSL_cleanse(j->reply.body, j->reply.body_len); /* may hold tokens and SADs */
    csc_reply_free(&j->reply);
    free(j);
}

/* ---- request ids ------------------------------------------------------------------ */

#define REQUEST_ID_ENV "csc-request-id" /* req->env: never sent, read back by the access log */
#define USER_ENV "csc-user"

static int request_id_ok(const char *s, size_t len)
{
    if (len == 0 || len > REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static void env_set(h2o_req_t *req, const char *name, const char *value)
{
    h2o_vector_reserve(&req->pool, &req->env, req->env.size + 2);
    req->env.entries[req->env.size++] = h2o_iovec_init(name, strlen(name));
    req->env.entries[req->env.size++] = h2o_strdup(&req->pool, value, SIZE_MAX);
}

static const char *env_get(h2o_req_t *req, const char *name)
{
    for (size_t i = 0; i + 1 < req->env.size; i += 2)
        if (h2o_memis(req->env.entries[i].base, req->env.entries[i].len, name, strlen(name)))
            return req->env.entries[i + 1].base;
    return NULL;
}

/* The request's id: the one it was given already, else the client's X-Request-Id when it is well-formed (a proxy's
 * or a client's own id ties its logs to ours), else 128 random bits in hex. Kept in req->env (the response's
 * X-Request-Id is added by the filter, errjson_setup, to every response). */
static const char *request_id(h2o_req_t *req)
{
    const char *have = env_get(req, REQUEST_ID_ENV);
    if (have != NULL)
        return have;
    char id[REQUEST_ID_MAX + 1];
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0 && request_id_ok(req->headers.entries[i].value.base, req->headers.entries[i].value.len)) {
        memcpy(id, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        id[req->headers.entries[i].value.len] = '\0';
    } else {
        static _Atomic unsigned long long fallback;
        unsigned char rnd[16];
        if (RAND_bytes(rnd, sizeof(rnd)) == 1)
            pki_hex(rnd, sizeof(rnd), id);
        else /* the DRBG failed (and says so elsewhere): the id is still unique in this process */
            snprintf(id, sizeof(id), "t%llx-%llx", (unsigned long long)time(NULL), atomic_fetch_add(&fallback, 1));
    }
    env_set(req, REQUEST_ID_ENV, id);
    return env_get(req, REQUEST_ID_ENV);
}

/* ---- responses ------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value, strlen(value));
}

static void send_reply(h2o_req_t *req, const csc_reply_t *r)
{
    req->res.status = r->status;
    req->res.reason = reason(r->status);
    add_header(req, "cache-control", "no-store");
    add_header(req, "x-content-type-options", "nosniff");
    if (r->www_authenticate != NULL)
        add_header(req, "www-authenticate", r->www_authenticate);
    if (r->status == 405)
        add_header(req, "allow", "POST");
    if (r->location != NULL)
        add_header(req, "location", r->location);
    if (r->retry_after > 0) {
        char secs[16];
        snprintf(secs, sizeof(secs), "%u", r->retry_after);
        add_header(req, "retry-after", h2o_strdup(&req->pool, secs, SIZE_MAX).base);
    }
    if (r->set_cookie != NULL)
        add_header(req, "set-cookie", r->set_cookie);
    if (r->set_cookie2 != NULL)
        add_header(req, "set-cookie", r->set_cookie2);
    if (r->retry_after > 0) {
        char secs[16];
        int n = snprintf(secs, sizeof(secs), "%u", r->retry_after);
        h2o_iovec_t v = h2o_strdup(&req->pool, secs, (size_t)n);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("retry-after"), 1, NULL, v.base, v.len);
    }
    if (r->page) {
        /* Pages load nothing from anywhere, and nobody may frame them (clickjacking on the consent page). */
        add_header(req, "content-security-policy",
                   "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'");
        add_header(req, "x-frame-options", "DENY");
        add_header(req, "referrer-policy", "no-referrer");
    }
    if (r->body == NULL) {
        req->res.content_length = SIZE_MAX;
        h2o_send_inline(req, "", 0);
        return;
    }
    add_header(req, "content-type", r->content_type != NULL ? r->content_type : "application/json");
    req->res.content_length = r->body_len;
    h2o_send_inline(req, r->body, r->body_len);
}

static void send_error_now(h2o_req_t *req, int status, const char *error, const char *desc)
{
    csc_reply_t r = {0};
    csc_reply_error(&r, status, error, desc);
    send_reply(req, &r);
    csc_reply_free(&r);
}

static void on_done(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
    loop_t *l = H2O_STRUCT_FROM_MEMBER(loop_t, done, recv);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        job_t *j = (job_t *)m;
        if (j->req != NULL) {
            *j->guard = NULL;
            if (j->reply.user[0] != '\0')
                env_set(j->req, USER_ENV, j->reply.user);
            send_reply(j->req, &j->reply);
        }
        l->inflight--;
        job_free(j);
    }
}

static void on_req_dispose(void *p)
{
    job_t **slot = p;
    if (*slot != NULL)
        (*slot)->req = NULL;
}

/* ---- requests ---------------------------------------------------------------- */

static void peer_name(h2o_req_t *req, char *buf, size_t sz)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    buf[0] = '\0';
    if (len == 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)sz);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)sz);
}

static h2o_iovec_t header(h2o_req_t *req, const h2o_token_t *tok)
{
    ssize_t i = h2o_find_header(&req->headers, tok, -1);
    return i >= 0 ? req->headers.entries[i].value : h2o_iovec_init(NULL, 0);
}

/* Copy everything the worker needs: the request's pool may vanish under it. */
static job_t *job_new(loop_t *l, h2o_req_t *req)
{
    h2o_iovec_t auth = header(req, H2O_TOKEN_AUTHORIZATION), ctype = header(req, H2O_TOKEN_CONTENT_TYPE);
    h2o_iovec_t cookie = header(req, H2O_TOKEN_COOKIE), lang = header(req, H2O_TOKEN_ACCEPT_LANGUAGE);
    h2o_iovec_t body = req->entity.base != NULL ? req->entity : h2o_iovec_init(NULL, 0);
    h2o_iovec_t query = h2o_iovec_init(NULL, 0);
    if (req->query_at != SIZE_MAX && req->query_at < req->path.len)
        query = h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
    size_t total = req->method.len + req->path_normalized.len + auth.len + ctype.len + cookie.len + lang.len + query.len +
                   body.len;
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->data = malloc(total + 1)) == NULL) {
        free(j);
        return NULL;
    }
    char *p = j->data;
#define TAKE(dst, dlen, iov)                                                                                           \
    do {                                                                                                               \
        if ((iov).len > 0)                                                                                             \
            memcpy(p, (iov).base, (iov).len);                                                                          \
        dst = p;                                                                                                       \
        dlen = (iov).len;                                                                                              \
        p += (iov).len;                                                                                                \
    } while (0)
    TAKE(j->call.http_method, j->call.http_method_len, req->method);
    TAKE(j->call.path, j->call.path_len, req->path_normalized);
    TAKE(j->call.authorization, j->call.authorization_len, auth);
    TAKE(j->call.content_type, j->call.content_type_len, ctype);
    TAKE(j->call.cookie, j->call.cookie_len, cookie);
    TAKE(j->call.accept_language, j->call.accept_language_len, lang);
    TAKE(j->call.query, j->call.query_len, query);
    const char *b;
    TAKE(b, j->call.body_len, body);
    j->call.body = (const uint8_t *)b;
#undef TAKE
    if (auth.base == NULL)
        j->call.authorization = NULL;
    if (ctype.base == NULL)
        j->call.content_type = NULL;
    if (cookie.base == NULL)
        j->call.cookie = NULL;
    if (lang.base == NULL)
        j->call.accept_language = NULL;
    if (query.base == NULL)
        j->call.query = NULL;
    j->data_len = total;
    peer_name(req, j->client, sizeof(j->client));
    j->call.client = j->client;
    snprintf(j->request_id, sizeof(j->request_id), "%s", request_id(req));
    j->call.request_id = j->request_id;
    j->loop = l;
    j->req = req;
    return j;
}

/* Request smuggling (RFC 9112 sec. 6.1, 6.3): a request carrying Transfer-Encoding and Content-Length, or either
 * twice, is framed one way here and may be framed another way by a proxy in front, which then takes the rest of the
 * connection for a request of its own, or a request of its own for the rest of ours. h2o 2.2 frames such a request
 * (by the chunks, else by the first Content-Length) and hands the handler neither header, so the head is read again
 * from the connection's input, where h2o keeps it until the response is sent (the body after it may have been
 * decoded in place; the head is not touched). HTTP/1 only: HTTP/2 frames bodies itself. */
static int framing_ambiguous(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->entity.base == NULL || req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->input == NULL || sock->input->size == 0)
        return 0;
    const char *p = sock->input->bytes, *end = p + sock->input->size, *nl = memchr(p, '\n', (size_t)(end - p));
    unsigned cl = 0, te = 0;
    while (nl != NULL) { /* each line after the request line, up to the empty one */
        p = nl + 1;
        if (p >= end || *p == '\r' || *p == '\n')
            break;
        nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl != NULL ? nl : end) - p);
        if (len >= 15 && strncasecmp(p, "content-length:", 15) == 0)
            cl++;
        else if (len >= 18 && strncasecmp(p, "transfer-encoding:", 18) == 0)
            te++;
    }
    return cl + te > 1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    loop_t *l = H2O_STRUCT_FROM_MEMBER(loop_t, ctx, req->conn->ctx);

    if (framing_ambiguous(req)) { /* answered, then the connection closed: nothing after it is read */
        req->http1_is_persistent = 0;
        send_error_now(req, 400, "invalid_request",
                       "Ambiguous message framing: Transfer-Encoding with Content-Length, or either twice");
        return 0;
    }
    if (!csc_is_api_path(req->path_normalized.base, req->path_normalized.len)) {
        send_error_now(req, 404, "invalid_request", "Unknown path");
        return 0;
    }
    job_t *j = job_new(l, req);
    if (j == NULL) {
        send_error_now(req, 503, "temporarily_unavailable", "Out of memory");
        return 0;
    }
    job_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_req_dispose);
    *slot = j;
    j->guard = slot;
    srv_pool_t *p = csc_checks_secret(j->call.http_method, j->call.http_method_len, j->call.path, j->call.path_len)
                        ? srv.auth_pool
                        : srv.main_pool;
    if (srv_pool_submit(p, &j->item) != 0) {
        csc_reply_t r;
        *slot = NULL;
        csc_reply_busy(srv.mods->csc, &j->call, &r);
        send_reply(req, &r);
        csc_reply_free(&r);
        job_free(j);
        return 0;
    }
    l->inflight++;
    return 0;
}

/* ---- h2o's own error pages become CSC JSON (e.g. 413 for an oversized body) ------- */

typedef struct errjson {
    h2o_ostream_t super;
    h2o_iovec_t body;
} errjson_t;

static void errjson_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t cnt, h2o_send_state_t state)
{
    errjson_t *e = (errjson_t *)self;
    if (h2o_send_state_is_in_progress(state))
        h2o_ostream_send_next(self, req, NULL, 0, state);
    else
        h2o_ostream_send_next(self, req, &e->body, 1, state);
}

static void errjson_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    /* every response echoes the request's id, h2o's own answers and the 404s too */
    const char *id = request_id(req);
    if (h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1) < 0)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, id, strlen(id));
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (req->res.status >= 400 && i >= 0 &&
        h2o_memis(req->res.headers.entries[i].value.base, 10, H2O_STRLIT("text/plain")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        csc_reply_t r = {0};
        const char *code = req->res.status >= 500 ? "server_error" : "invalid_request";
        csc_reply_error(&r, req->res.status, code, req->res.reason != NULL ? req->res.reason : "Error");
        errjson_t *e = (errjson_t *)h2o_add_ostream(req, sizeof(*e), slot);
        e->super.do_send = errjson_send;
        e->body = h2o_strdup(&req->pool, r.body, r.body_len);
        req->res.headers.entries[i].value = h2o_iovec_init(H2O_STRLIT("application/json"));
        req->res.content_length = r.body_len;
        csc_reply_free(&r);
        slot = &e->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- access log: one line per request, never a header or a body ---------------- */

/* Printable ASCII of s (at most max bytes) into out; anything else, and '"' and '\', becomes '?': a client cannot
 * forge log lines nor break the JSON. */
static void log_clean(char *out, const char *s, size_t len, size_t max)
{
    size_t n = len > max ? max : len;
    for (size_t k = 0; k < n; k++) {
        char ch = s[k];
        out[k] = ch > ' ' && ch < 0x7f && ch != '"' && ch != '\\' ? ch : '?';
    }
    out[n] = '\0';
}

static void log_access(h2o_logger_t *self, h2o_req_t *req)
{
    char peer[INET6_ADDRSTRLEN], when[40], method[17], path[129], user[STOR_NAME_MAX + 1];
    struct timeval now;
    struct tm tm;
    gettimeofday(&now, NULL);
    /* a request h2o refused before it was read whole has no begin time: it took no time of ours */
    double secs = req->timestamps.request_begin_at.tv_sec == 0
                      ? 0
                      : (double)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) +
                            (double)(now.tv_usec - req->timestamps.request_begin_at.tv_usec) / 1e6;
    srv_metrics_request(csc_metric_method(req->path_normalized.base, req->path_normalized.len), req->res.status, secs);
    gmtime_r(&now.tv_sec, &tm);
    peer_name(req, peer, sizeof(peer));
    double ms = secs * 1e3;
    /* path_normalized has no query string (nothing a client put after '?' is logged) */
    log_clean(path, req->path_normalized.base, req->path_normalized.len, sizeof(path) - 1);
    log_clean(method, req->method.base, req->method.len, sizeof(method) - 1);
    const char *id = env_get(req, REQUEST_ID_ENV), *who = env_get(req, USER_ENV);
    log_clean(user, who != NULL ? who : "", who != NULL ? strlen(who) : 0, sizeof(user) - 1);

    pthread_mutex_lock(&srv.log_mu);
    if (srv.access_log != NULL && srv.log_json) {
        size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + n, sizeof(when) - n, ".%03dZ", (int)(now.tv_usec / 1000));
        fprintf(srv.access_log,
                "{\"time\":\"%s\",\"request_id\":\"%s\",\"peer\":\"%s\",\"method\":\"%s\",\"path\":\"%s\","
                "\"status\":%d,\"bytes\":%zu,\"latency_ms\":%.3f%s%s%s}\n",
                when, id != NULL ? id : "", peer, method, path, req->res.status, req->bytes_sent, ms,
                user[0] ? ",\"user\":\"" : "", user, user[0] ? "\"" : "");
    } else if (srv.access_log != NULL) {
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(srv.access_log, "%s %s \"%s %s\" HTTP/%d.%d %d %zu %.1fms\n", when, peer[0] ? peer : "-", method, path,
                req->version >> 8, req->version & 0xff, req->res.status, req->bytes_sent, ms);
    }
    pthread_mutex_unlock(&srv.log_mu);
}

/* ---- sockets and TLS ---------------------------------------------------------------- */

int srv_http_listen(const char *addr)
{
    char host[SRV_STR];
    const char *colon = strrchr(addr, ':');
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= sizeof(host))
        return -1;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    if (host[0] == '[' && hlen >= 2 && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "listen %s: %s\n", addr, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        fprintf(stderr, "listen %s: %s\n", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

SSL_CTX *srv_tls_server_ctx(const char *cert, const char *key, const char *cert_key, const char *key_key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* TLS 1.2: forward secrecy and AEAD only; TLS 1.3 suites are all fine. */
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "%s %s / %s %s: ", cert_key, cert, key_key, key);
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static SSL_CTX *tls_ctx(const srv_config_t *cfg)
{
    SSL_CTX *ctx = srv_tls_server_ctx(cfg->tls_cert, cfg->tls_key, "tls_cert", "tls_key");
    if (ctx == NULL)
        return NULL;
    /* HTTP/2 only when asked for: h2o 2.2.5 predates the rapid-reset fix (CVE-2023-44487). */
    if (cfg->http2)
        h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
}

/* notAfter of the certificate in use, seconds since the epoch (0 if it cannot be read): /readyz and /metrics. */
static int64_t cert_not_after(SSL_CTX *ctx)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    struct tm tm;
    if (x == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* Take the context a reload put in force, if there is a newer one than this loop's: the connections made before
 * keep theirs (each SSL holds a reference to its context), this loop's reference moves to the new one. */
static void tls_follow(loop_t *l)
{
    if (l->ssl_ctx == NULL || atomic_load(&srv.tls_gen) == l->tls_gen)
        return;
    pthread_mutex_lock(&srv.tls_mu);
    SSL_CTX *ctx = srv.ssl_ctx;
    SSL_CTX_up_ref(ctx);
    l->tls_gen = atomic_load(&srv.tls_gen);
    pthread_mutex_unlock(&srv.tls_mu);
    SSL_CTX_free(l->ssl_ctx);
    l->ssl_ctx = l->accept.ssl_ctx = ctx;
}

/* ---- connection caps ------------------------------------------------------------------------------------- */

static void on_conn_close(void *data)
{
    conn_ref_t *ref = data;
    srv_conns_leave(srv.conns, ref->addr);
    free(ref);
}

/* The peer's address as 16 bytes (IPv4 mapped). -1 when it has none of these families. */
static int peer_addr(h2o_socket_t *sock, unsigned char out[SRV_CONNS_ADDR])
{
    struct sockaddr_storage ss;
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    if (len == 0)
        return -1;
    if (ss.ss_family == AF_INET) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        return 0;
    }
    if (ss.ss_family == AF_INET6) {
        memcpy(out, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;
    conn_ref_t *ref;
    if (err != NULL)
        return;
    if ((sock = h2o_evloop_socket_accept(listener)) == NULL)
        return;
    /* Over a cap, or nothing to count it by: closed before a byte is read, so before any TLS work. */
    if ((ref = malloc(sizeof(*ref))) == NULL || peer_addr(sock, ref->addr) != 0) {
        free(ref);
        h2o_socket_close(sock);
        return;
    }
    unsigned refused = srv_conns_enter(srv.conns, ref->addr);
    if (refused != SRV_REFUSED_N) {
        free(ref);
        srv_metrics_refused(refused);
        h2o_socket_close(sock);
        return;
    }
    sock->on_close.cb = on_conn_close;
    sock->on_close.data = ref;
    /* A client that stops reading its response holds the connection until the kernel gives up sending: after
     * idle_timeout with nothing acknowledged (zero-window probes included, Linux 5.1 and later), the socket fails and
     * h2o closes it. h2o 2.2's HTTP/1 has no timeout of its own while it writes. Best effort: the caps still hold. */
    int fd = h2o_socket_get_fd(sock);
    unsigned ms = srv.cfg->idle_timeout * 1000;
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
    tls_follow(H2O_STRUCT_FROM_MEMBER(loop_t, accept, listener->data));
    h2o_accept(listener->data, sock);
}

/* systemd's watchdog (srv_notify.c): loop 0 ticks every half of WATCHDOG_USEC and sends WATCHDOG=1 when every other
 * loop ticked (each quarter) since its last one. A loop stuck in a callback stops the pings and systemd restarts the
 * service: such a loop no longer accepts nor answers its connections, which no other check of a running process
 * would see. */
static void on_watchdog(h2o_timeout_entry_t *e)
{
    loop_t *l = H2O_STRUCT_FROM_MEMBER(loop_t, wd_entry, e);
    if (l != &srv.loops[0]) {
        atomic_store(&l->wd_ticked, 1);
    } else {
        int all = 1;
        for (unsigned i = 1; i < srv.cfg->threads; i++)
            all = all && atomic_load(&srv.loops[i].wd_ticked);
        if (all) {
            for (unsigned i = 1; i < srv.cfg->threads; i++)
                atomic_store(&srv.loops[i].wd_ticked, 0);
            srv_notify_watchdog();
        }
    }
    h2o_timeout_link(l->ctx.loop, &l->wd_timeout, &l->wd_entry);
}

static void *loop_main(void *arg)
{
    loop_t *l = arg;
    h2o_context_init(&l->ctx, h2o_evloop_create(), &srv.globalconf);
    h2o_multithread_register_receiver(l->ctx.queue, &l->done, on_done);
    l->accept.ctx = &l->ctx;
    l->accept.hosts = srv.globalconf.hosts;
    pthread_mutex_lock(&srv.tls_mu);
    if ((l->ssl_ctx = srv.ssl_ctx) != NULL)
        SSL_CTX_up_ref(l->ssl_ctx);
    l->tls_gen = atomic_load(&srv.tls_gen);
    pthread_mutex_unlock(&srv.tls_mu);
    l->accept.ssl_ctx = l->ssl_ctx;
    for (size_t i = 0; i < srv.n_fds; i++) {
        int fd = dup(srv.fds[i]);
        h2o_socket_t *s = h2o_evloop_socket_create(l->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        s->data = &l->accept;
        h2o_socket_read_start(s, on_accept);
        l->listeners[l->n_listeners++] = s;
    }
    unsigned wd_ms = srv_notify_watchdog_ms();
    if (wd_ms != 0) {
        h2o_timeout_init(l->ctx.loop, &l->wd_timeout, l == &srv.loops[0] || wd_ms < 2 ? wd_ms : wd_ms / 2);
        l->wd_entry.cb = on_watchdog;
        h2o_timeout_link(l->ctx.loop, &l->wd_timeout, &l->wd_entry);
    }
    while (!srv.stop)
        h2o_evloop_run(l->ctx.loop, INT32_MAX);
    /* Stop accepting; finish what the workers still have (at most request_timeout). */
    for (size_t i = 0; i < l->n_listeners; i++) {
        h2o_socket_read_stop(l->listeners[i]);
        h2o_socket_close(l->listeners[i]);
    }
    time_t deadline = time(NULL) + (time_t)srv.cfg->request_timeout;
    while (l->inflight > 0 && time(NULL) < deadline)
        h2o_evloop_run(l->ctx.loop, 100);
    if (wd_ms != 0)
        h2o_timeout_unlink(&l->wd_entry);
    SSL_CTX_free(l->ssl_ctx);
    l->ssl_ctx = NULL;
    return NULL;
}

static void setup_globalconf(const srv_config_t *cfg)
{
    h2o_config_init(&srv.globalconf);
    srv.globalconf.server_name = h2o_iovec_init(H2O_STRLIT("csc-server"));
    srv.globalconf.max_request_entity_size = cfg->max_body;
    srv.globalconf.http1.upgrade_to_http2 = cfg->http2 ? 1 : 0;
    /* h2o 2.2's HTTP/1 has one timer for reading a request (headers and body) and for the wait for the next one on
     * a kept-alive connection: header_timeout bounds both. HTTP/2 closes a connection idle for idle_timeout. */
    srv.globalconf.handshake_timeout = (uint64_t)cfg->header_timeout * 1000;
    srv.globalconf.http1.req_timeout = (uint64_t)cfg->header_timeout * 1000;
    srv.globalconf.http2.idle_timeout = (uint64_t)cfg->idle_timeout * 1000;
    h2o_hostconf_t *host = h2o_config_register_host(&srv.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_req;
    h2o_pathconf_t *confs[] = {path, &host->fallback_path};
    for (size_t i = 0; i < 2; i++) {
        h2o_filter_t *f = h2o_create_filter(confs[i], sizeof(*f));
        f->on_setup_ostream = errjson_setup;
        h2o_logger_t *lg = h2o_create_logger(confs[i], sizeof(*lg));
        lg->log_access = log_access;
    }
}

/* access_log opened for appending, line-buffered ("-": standard output). NULL if it cannot be (said why). */
static FILE *open_log(const srv_config_t *cfg)
{
    FILE *f = strcmp(cfg->access_log, "-") == 0 ? stdout : fopen(cfg->access_log, "ae");
    if (f == NULL) {
        fprintf(stderr, "access_log %s: %s\n", cfg->access_log, strerror(errno));
        return NULL;
    }
    setvbuf(f, NULL, _IOLBF, 0);
    return f;
}

/* SIGHUP: read the configuration file again and put in force, whole or not at all: a new TLS context from tls_cert
 * and tls_key (read again even when the names did not change: a renewed certificate), trust_anchors read again for
 * the CRL store with every CRL verified again and crl_dir read now, the access log opened again (the name after
 * logrotate's rename, or a new one) in access_log_format, readyz_cert_days; then csc-sam is asked to reload (its CRL
 * store's anchors). Any other key changed (srv_reloadable) refuses it, named. Runs in the main thread; requests go
 * on meanwhile. Files are read as server_user, under the filter: they must be readable by it. */
static void reload(void)
{
    srv_config_t *fresh = calloc(1, sizeof(*fresh));
    char changed[1024];
    SSL_CTX *ctx = NULL;
    FILE *log = NULL;

    fprintf(stderr, "csc-server: SIGHUP: reloading %s\n", srv.live->file);
    if (fresh == NULL) {
        fprintf(stderr, "csc-server: reload refused: out of memory; the configuration in force stays\n");
        return;
    }
    if (srv_config_load(srv.live->file, fresh) != 0 || srv_production_checks(fresh) != 0) {
        fprintf(stderr, "csc-server: reload refused: %s is not valid (said above); the configuration in force stays\n",
                srv.live->file);
        goto refused;
    }
    size_t n = srv_config_changed(srv.live, fresh, srv_reloadable, changed, sizeof(changed));
    if (n > 0) {
        fprintf(stderr, "csc-server: reload refused: %s cannot change while csc-server runs (a restart puts %s in "
                        "force); the configuration in force stays\n",
                changed, n > 1 ? "them" : "it");
        goto refused;
    }
    /* Everything is read before anything changes: a bad key or an unreadable file leaves the old in force. */
    if (!fresh->plain_http && (ctx = tls_ctx(fresh)) == NULL) {
        fprintf(stderr, "csc-server: reload refused: the TLS certificate or key (said above); the configuration in "
                        "force stays\n");
        goto refused;
    }
    if ((log = open_log(fresh)) == NULL) {
        fprintf(stderr, "csc-server: reload refused: the access log (said above); the configuration in force stays\n");
        goto refused;
    }
    if (fresh->crl_dir[0] != '\0' && csc_crl_anchors(srv.mods->csc, fresh->trust_anchors) != 0) {
        fprintf(stderr, "csc-server: reload refused: trust_anchors (said above); the configuration in force stays\n");
        goto refused;
    }
    /* In force from here on; nothing below can fail. */
    int64_t not_after = 0;
    if (ctx != NULL) {
        not_after = cert_not_after(ctx);
        pthread_mutex_lock(&srv.tls_mu);
        SSL_CTX *old = srv.ssl_ctx;
        srv.ssl_ctx = ctx;
        atomic_fetch_add(&srv.tls_gen, 1);
        pthread_mutex_unlock(&srv.tls_mu);
        SSL_CTX_free(old); /* the loops and the open connections hold their own references */
    }
    pthread_mutex_lock(&srv.log_mu);
    FILE *old_log = srv.access_log;
    srv.access_log = log;
    srv.log_json = strcmp(fresh->access_log_format, "json") == 0;
    pthread_mutex_unlock(&srv.log_mu);
    if (old_log != NULL && old_log != stdout)
        fclose(old_log);
    srv_health_reload(srv.health, not_after, fresh->readyz_cert_days);
    char when[32] = "-";
    if (not_after != 0) {
        time_t t = (time_t)not_after;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    fprintf(stderr, "csc-server: reloaded: %s%s%s%s, access log %s (%s), readyz_cert_days %u\n",
            ctx != NULL ? "certificate notAfter " : "plain HTTP", ctx != NULL ? when : "",
            fresh->crl_dir[0] ? ", trust anchors and the CRLs of " : "", fresh->crl_dir, fresh->access_log,
            fresh->access_log_format, fresh->readyz_cert_days);
    free(srv.live);
    srv.live = fresh;
    srv_sam_reload(srv.mods->samctl);
    return;
refused:
    SSL_CTX_free(ctx);
    if (log != NULL && log != stdout)
        fclose(log);
    free(fresh);
}

/* Descriptors open now: what start-up left (listeners, the database, csc-sam's connections, logs). */
static unsigned open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    unsigned n = 0;

    if (d == NULL)
        return 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n > 3 ? n - 3 : 0; /* ".", ".." and the directory's own descriptor */
}

/* Every connection of the public listener is a descriptor: raise the soft RLIMIT_NOFILE to the hard one (systemd's
 * default soft limit, 1024, would not even hold max_connections' default) and refuse to start when max_connections
 * does not fit under it, rather than fail accept() with EMFILE under load. Besides the connections and what is open
 * now, each event loop (and the operators' listener's) takes an epoll descriptor and a pipe, and FD_RESERVE is kept
 * for the operators' connections, a reload's new log and certificate files and the CRL files read. Called before
 * the system-call filter, which forbids changing limits. */
#define FD_RESERVE 64
static int fit_nofile(const srv_config_t *cfg)
{
    struct rlimit lim;
    unsigned long long need = (unsigned long long)open_fds() + cfg->max_connections + 4ull * (cfg->threads + 1) +
                              FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        fprintf(stderr, "csc-server: descriptor limit: %s\n", strerror(errno));
        return -1;
    }
    if (lim.rlim_cur != lim.rlim_max && lim.rlim_cur < need) {
        struct rlimit raised = {lim.rlim_max, lim.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            lim = raised;
    }
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < need) {
        fprintf(stderr, "csc-server: max_connections = %u needs %llu open descriptors, the limit is %llu (hard "
                "limit %llu): raise the limit (LimitNOFILE= of the systemd unit, ulimit -n) or lower "
                "max_connections\n", cfg->max_connections, need, (unsigned long long)lim.rlim_cur,
                (unsigned long long)lim.rlim_max);
        return -1;
    }
    return 0;
}

int srv_http_run(const srv_config_t *cfg, srv_modules_t *m)
{
    sigset_t sigs;
    int rc = -1, sig;

    memset(&srv, 0, sizeof(srv));
    srv.cfg = cfg;
    srv.mods = m;
    pthread_mutex_init(&srv.tls_mu, NULL);
    pthread_mutex_init(&srv.log_mu, NULL);
    if ((srv.live = malloc(sizeof(*srv.live))) == NULL)
        return -1;
    memcpy(srv.live, cfg, sizeof(*cfg));
    srv.log_json = strcmp(cfg->access_log_format, "json") == 0;
    if ((srv.access_log = open_log(cfg)) == NULL)
        goto out;
    if (!cfg->plain_http && (srv.ssl_ctx = tls_ctx(cfg)) == NULL)
        goto out;
    for (unsigned i = 0; i < cfg->n_listen; i++) {
        if ((srv.fds[srv.n_fds] = srv_http_listen(cfg->listen[i])) < 0)
            goto out;
        srv.n_fds++;
    }
    setup_globalconf(cfg);
    if (srv_conns_new(cfg->max_connections, cfg->max_connections_per_address, &srv.conns) != 0) {
        fprintf(stderr, "csc-server: cannot make the table of open connections (out of memory or no random bytes)\n");
        goto out;
    }
    if (srv_health_open(cfg, m, srv.ssl_ctx != NULL ? cert_not_after(srv.ssl_ctx) : 0, &srv.health) != 0)
        goto out;
    /* Everything that needs root is open (TLS key, listeners, LMDB, the PKCS#11 module): drop to server_user and
     * load the front end's system-call filter before the first connection is accepted (srv_priv.c). */
    if (fit_nofile(cfg) != 0 || srv_priv_front(cfg->server_user, cfg->seccomp) != 0)
        goto out;
    srv_sam_hello(m->sam, cfg->sam_socket, m->oauth); /* the pages' ticket key: before the loops start */

    /* Signals go to this thread only; the others never see them. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    srv.loops = calloc(cfg->threads, sizeof(*srv.loops));
    srv_pool_opts_t main_opts = {.threads = cfg->workers, .keep = WORKERS_KEPT, .idle_ms = WORKER_IDLE_MS,
                                 .queue_max = (size_t)cfg->workers * QUEUE_PER_WORKER},
                    auth_opts = {.threads = cfg->auth_workers, .keep = 1, .idle_ms = WORKER_IDLE_MS,
                                 .queue_max = cfg->auth_queue, .nice = AUTH_NICE};
    if (srv.loops == NULL || srv_pool_start(&main_opts, worker_run, &srv.main_pool) != 0 ||
        srv_pool_start(&auth_opts, worker_run, &srv.auth_pool) != 0) {
        fprintf(stderr, "csc-server: cannot start the worker threads\n");
        goto out;
    }
    for (unsigned i = 0; i < cfg->threads; i++)
        pthread_create(&srv.loops[i].tid, NULL, loop_main, &srv.loops[i]);
    if (srv_health_start(srv.health) != 0) {
        fprintf(stderr, "csc-server: cannot start the operators' listener's threads\n");
        srv.stop = 1;
        for (unsigned i = 0; i < cfg->threads; i++)
            h2o_multithread_send_message(&srv.loops[i].done, NULL);
        for (unsigned i = 0; i < cfg->threads; i++)
            pthread_join(srv.loops[i].tid, NULL);
        goto out;
    }

    fprintf(stderr, "csc-server: %s environment, listening on", cfg->environment == CSC_ENV_PRODUCTION ? "production" : "test");
    for (unsigned i = 0; i < cfg->n_listen; i++)
        fprintf(stderr, " %s://%s", cfg->plain_http ? "http" : "https", cfg->listen[i]);
    fprintf(stderr, " (%u loops, %u workers + %u for password/PIN checks, %u connections to csc-sam%s)\n",
            cfg->threads, cfg->workers, cfg->auth_workers, cfg->sam_connections, cfg->http2 ? ", HTTP/2 enabled" : "");
    srv_notify_ready("serving on %s%s (%u loops, %u workers)", cfg->listen[0], cfg->n_listen > 1 ? " and more" : "",
                     cfg->threads, cfg->workers);

    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        reload();
    }
    fprintf(stderr, "csc-server: %s, shutting down\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv_notify_stopping("draining: finishing the requests in flight (at most %u s)", cfg->request_timeout);
    srv_health_stopping(srv.health);
    srv.stop = 1;
    for (unsigned i = 0; i < cfg->threads; i++)
        h2o_multithread_send_message(&srv.loops[i].done, NULL);
    for (unsigned i = 0; i < cfg->threads; i++)
        pthread_join(srv.loops[i].tid, NULL);
    rc = 0;
out:
    srv_health_close(srv.health); /* before the modules close: its probes use storage and the service */
    srv_pool_stop(srv.main_pool);
    srv_pool_stop(srv.auth_pool);
    for (size_t i = 0; i < srv.n_fds; i++)
        close(srv.fds[i]);
    free(srv.loops);
    srv_conns_free(srv.conns); /* the loops are gone: no close comes any more */
    SSL_CTX_free(srv.ssl_ctx);
    if (srv.access_log != NULL && srv.access_log != stdout)
        fclose(srv.access_log);
    free(srv.live);
    pthread_mutex_destroy(&srv.log_mu);
    pthread_mutex_destroy(&srv.tls_mu);
    return rc;
}
