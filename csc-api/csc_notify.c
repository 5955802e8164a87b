/*
 * csc_notify.c - the response_uri of asynchronous requests: validation, and one small HTTP(S) POST when the
 * work has ended. Plain sockets and OpenSSL (certificate and host name verified against the system's trust
 * store, TLS 1.2 at least); redirects are not followed (any answer but 2xx is logged as a failure). Errors are
 * only logged, with the host name alone: the path and query may carry the client's own secrets, and the body
 * (the responseID) is never logged.
 *
 * Notifications run on their own threads (notify_threads) from a bounded queue (notify_queue), never on the
 * threads that run signing jobs: a slow receiver delays only notifications. Each one has one overall deadline
 * (notify_timeout) for connect, TLS handshake, request and status line together; a receiver that trickles bytes
 * cannot stretch it. Past the deadline, or with the queue full, the notification is abandoned and logged (the
 * result stays available to signPolling).
 *
 * SSRF: in production a response_uri may not reach this machine or the operator's internal networks. The
 * addresses a host name resolves to are classified (csc_addr_internal: loopback, unspecified, private,
 * unique-local, link-local, CGNAT, multicast, reserved; IPv4 inside IPv6 as IPv4) and an internal one is only
 * connected to when notify_allow names the host or a prefix holding the address. The check is made on the very
 * sockaddr passed to connect(), so a DNS answer that changes between check and use changes nothing. An address
 * literal in the URI is refused at once (csc_response_uri_ok). Name resolution itself (getaddrinfo) is not under
 * the deadline: it is bounded by the resolver's own timeouts (resolv.conf).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "csc_int.h"
typedef struct uri_parts {
    int tls;
    char host[256];
    char port[8];
    const char *path;          /* from the first '/' (or "/" if none); points into the URI */
} uri_parts_t;

static int is_local_host(const char *h)
{
    return strcasecmp(h, "localhost") == 0 || strcmp(h, "127.0.0.1") == 0 || strcmp(h, "::1") == 0;
}

/* Split an absolute http(s) URI; -1 if malformed (userinfo, fragment, bad port, controls or spaces). */
static int uri_split(const char *uri, uri_parts_t *u)
{
    size_t n = strlen(uri);
    const char *p, *auth_end;

    memset(u, 0, sizeof(*u));
    if (n == 0 || n > CSC_URI_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (uri[i] <= ' ' || uri[i] > '~' || uri[i] == '#')
            return -1;
    if (strncmp(uri, "https://", 8) == 0) {
        u->tls = 1;
        p = uri + 8;
    } else if (strncmp(uri, "http://", 7) == 0) {
        p = uri + 7;
    } else {
        return -1;
    }
    auth_end = p + strcspn(p, "/?");
    u->path = *auth_end == '/' ? auth_end : "/";
    if (*auth_end == '?')
        return -1; /* keep it simple: a query needs a path */
    if (memchr(p, '@', (size_t)(auth_end - p)) != NULL || auth_end == p)
        return -1;
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (host_end == NULL)
            return -1;
        if (host_end + 1 < auth_end) {
            if (host_end[1] != ':')
                return -1;
            port = host_end + 2;
        }
    } else {
        host_end = memchr(p, ':', (size_t)(auth_end - p));
        if (host_end != NULL)
            port = host_end + 1;
        else
            host_end = auth_end;
    }
    if (host_end == host || (size_t)(host_end - host) >= sizeof(u->host))
        return -1;
    memcpy(u->host, host, (size_t)(host_end - host));
    if (port != NULL) {
        size_t pl = (size_t)(auth_end - port);
        if (pl == 0 || pl > 5 || strspn(port, "0123456789") < pl)
            return -1;
        memcpy(u->port, port, pl);
        long v = strtol(u->port, NULL, 10);
        if (v < 1 || v > 65535)
            return -1;
    } else {
        snprintf(u->port, sizeof(u->port), "%s", u->tls ? "443" : "80");
    }
    return 0;
}

/* ---- address classes and the allow-list ------------------------------------------------------------- */

static int v4_internal(const uint8_t a[4])
{
    uint32_t v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
    static const struct {
        uint32_t net;
        unsigned bits;
    } nets[] = {
        {0x00000000u, 8},  /* 0.0.0.0/8 "this network" (0.0.0.0 reaches this host) */
        {0x0a000000u, 8},  /* 10/8 private */
        {0x64400000u, 10}, /* 100.64/10 shared address space (CGNAT) */
        {0x7f000000u, 8},  /* 127/8 loopback */
        {0xa9fe0000u, 16}, /* 169.254/16 link-local (cloud metadata services) */
        {0xac100000u, 12}, /* 172.16/12 private */
        {0xc0000000u, 24}, /* 192.0.0/24 IETF protocol assignments */
        {0xc0a80000u, 16}, /* 192.168/16 private */
        {0xc6120000u, 15}, /* 198.18/15 benchmarking */
        {0xe0000000u, 4},  /* 224/4 multicast */
        {0xf0000000u, 4},  /* 240/4 reserved, and the broadcast address */
    };
    for (size_t i = 0; i < CSC_ARRAY_SIZE(nets); i++)
        if ((v >> (32 - nets[i].bits)) == (nets[i].net >> (32 - nets[i].bits)))
            return 1;
    return 0;
}

int csc_addr_internal(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_internal((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family != AF_INET6)
        return 1; /* nothing else is connected to */
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const uint8_t zero[16];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
        return v4_internal(a + 12);        /* ::ffff:a.b.c.d, 64:ff9b::a.b.c.d */
    if (memcmp(a, zero, 12) == 0)
        return 1;                          /* ::, ::1, and the old IPv4-compatible ::a.b.c.d */
    if (a[0] == 0x20 && a[1] == 0x02)
        return v4_internal(a + 2);         /* 6to4 2002:aabb:ccdd::/48 */
    if ((a[0] & 0xfe) == 0xfc)
        return 1;                          /* fc00::/7 unique-local */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return 1;                          /* fe80::/10 link-local */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
        return 1;                          /* fec0::/10 site-local (deprecated) */
    if (a[0] == 0xff)
        return 1;                          /* multicast */
    if (a[0] == 0x01 && memcmp(a + 1, zero, 7) == 0)
        return 1;                          /* 100::/64 discard-only */
    return 0;
}

/* One notify_allow entry: a host name (case-insensitive), an address, or a prefix (address/bits). */
static int prefix_match(const char *entry, const struct sockaddr *sa)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(entry, '/');
    size_t al = slash != NULL ? (size_t)(slash - entry) : strlen(entry);
    uint8_t net[16], host[16];
    int fam, bits_max;
    if (al == 0 || al >= sizeof(addr))
        return 0;
    memcpy(addr, entry, al);
    addr[al] = '\0';
    if (inet_pton(AF_INET, addr, net) == 1) {
        fam = AF_INET;
        bits_max = 32;
    } else if (inet_pton(AF_INET6, addr, net) == 1) {
        fam = AF_INET6;
        bits_max = 128;
    } else {
        return 0;
    }
    long bits = bits_max;
    if (slash != NULL) {
        char *end;
        bits = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || bits < 0 || bits > bits_max)
            return 0;
    }
    /* the address to test, IPv4 inside IPv6 seen as IPv4 */
    if (sa->sa_family == AF_INET) {
        if (fam != AF_INET)
            return 0;
        memcpy(host, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (fam == AF_INET && memcmp(a, mapped, 12) == 0)
            memcpy(host, a + 12, 4);
        else if (fam == AF_INET6)
            memcpy(host, a, 16);
        else
            return 0;
    } else {
        return 0;
    }
    for (long i = 0; i < bits; i++)
        if (((net[i / 8] ^ host[i / 8]) >> (7 - i % 8)) & 1)
            return 0;
    return 1;
}

int csc_notify_allowed(const char *allow, const char *host, const struct sockaddr *sa)
{
    if (allow == NULL)
        return 0;
    const char *p = allow;
    while (*p != '\0') {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t,");
        if (n == 0)
            break;
        char entry[256];
        if (n < sizeof(entry)) {
            memcpy(entry, p, n);
            entry[n] = '\0';
            if (strcasecmp(entry, host) == 0 || (sa != NULL && prefix_match(entry, sa)))
                return 1;
        }
        p += n;
    }
    return 0;
}

/* A host that is an address literal, as a sockaddr; 0 if it is a name. */
static int host_literal(const char *host, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        return 1;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        return 1;
    }
    return 0;
}

int csc_response_uri_ok(const csc_t *c, const char *uri)
{
    uri_parts_t u;
    struct sockaddr_storage ss;

    if (uri_split(uri, &u) != 0)
        return 0;
    /* An internal address written in the URI: refused now (names are checked when they are resolved). */
    if (c->cfg.environment != CSC_ENV_TEST && host_literal(u.host, &ss) &&
        csc_addr_internal((const struct sockaddr *)&ss) &&
        !csc_notify_allowed(c->cfg.notify_allow, u.host, (const struct sockaddr *)&ss))
        return 0;
    if (u.tls)
        return 1;
    /* Plain HTTP only to this machine, and only in the test environment (J10, J13). */
    return c->cfg.environment == CSC_ENV_TEST && is_local_host(u.host);
}

/* ---- one POST under one deadline ------------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until the deadline: 1 ready, 0 deadline passed, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

typedef struct conn {
    int fd;
    SSL *ssl;                  /* NULL: plain */
    int timed_out;
} conn_t;

/* SSL_* on a non-blocking socket, waiting as it asks; 1 done, 0 failed or deadline passed (timed_out set). */
static int ssl_step(conn_t *k, int rc, int64_t deadline)
{
    int e = SSL_get_error(k->ssl, rc), w;
    if (e == SSL_ERROR_WANT_READ)
        w = wait_fd(k->fd, POLLIN, deadline);
    else if (e == SSL_ERROR_WANT_WRITE)
        w = wait_fd(k->fd, POLLOUT, deadline);
    else
        return -1;
    if (w == 0)
        k->timed_out = 1;
    return w == 1 ? 0 : -1;
}

static int conn_write(conn_t *k, const char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        if (k->ssl != NULL) {
            int rc = SSL_write(k->ssl, p, n > 16384 ? 16384 : (int)n);
            if (rc > 0) {
                p += rc;
                n -= (size_t)rc;
            } else if (ssl_step(k, rc, deadline) != 0) {
                return -1;
            }
            continue;
        }
        ssize_t rc = send(k->fd, p, n, MSG_NOSIGNAL);
        if (rc > 0) {
            p += rc;
            n -= (size_t)rc;
        } else if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            int w = wait_fd(k->fd, POLLOUT, deadline);
            if (w != 1) {
                k->timed_out = w == 0;
                return -1;
            }
        } else {
            return -1;
        }
    }
    return 0;
}

/* Some bytes (>= 1), or -1 (closed, error, deadline). */
static ssize_t conn_read(conn_t *k, char *p, size_t n, int64_t deadline)
{
    for (;;) {
        if (k->ssl != NULL) {
            int rc = SSL_read(k->ssl, p, (int)n);
            if (rc > 0)
                return rc;
            if (ssl_step(k, rc, deadline) != 0)
                return -1;
            continue;
        }
        ssize_t rc = recv(k->fd, p, n, 0);
        if (rc > 0)
            return rc;
        if (rc == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return -1;
        int w = wait_fd(k->fd, POLLIN, deadline);
        if (w != 1) {
            k->timed_out = w == 0;
            return -1;
        }
    }
}

typedef enum { N_OK, N_CONNECT, N_REFUSED, N_TLS, N_NO_ANSWER, N_DEADLINE } notify_why_t;

/* Connect to the first address the policy lets us reach, the checked sockaddr itself. */
static int connect_checked(const csc_config_t *cfg, const uri_parts_t *u, int64_t deadline, notify_why_t *why)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL, *ai;
    int fd = -1, refused = 0;

    *why = N_CONNECT;
    if (getaddrinfo(u->host, u->port, &hints, &res) != 0)
        return -1;
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        if (cfg->environment != CSC_ENV_TEST && csc_addr_internal(ai->ai_addr) &&
            !csc_notify_allowed(cfg->notify_allow, u->host, ai->ai_addr)) {
            refused = 1;
            continue;
        }
        if (mono_ms() >= deadline) {
            *why = N_DEADLINE;
            break;
        }
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0)
            continue;
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            int err = 0;
            socklen_t el = sizeof(err);
            int w = wait_fd(fd, POLLOUT, deadline);
            if (w == 0)
                *why = N_DEADLINE;
            rc = w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0 ? 0 : -1;
        }
        if (rc != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0 && refused && *why != N_DEADLINE)
        *why = N_REFUSED;
    return fd;
}

/* The request, then the status line; the status code or -1. */
static int post_over(conn_t *k, const uri_parts_t *u, const char *body, size_t len, int64_t deadline)
{
    char head[CSC_URI_MAX + 512], line[256];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\nUser-Agent: csc-server\r\n\r\n",
                     u->path, strchr(u->host, ':') ? "[" : "", u->host, strchr(u->host, ':') ? "]" : "",
                     ":", u->port, len);
    if (n < 0 || (size_t)n >= sizeof(head))
        return -1;
    if (conn_write(k, head, (size_t)n, deadline) != 0 || conn_write(k, body, len, deadline) != 0)
        return -1;
    size_t got = 0;
    while (got < sizeof(line) - 1 && memchr(line, '\n', got) == NULL) {
        ssize_t r = conn_read(k, line + got, sizeof(line) - 1 - got, deadline);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    line[got] = '\0';
    int status = 0;
    if (memchr(line, '\n', got) == NULL || sscanf(line, "HTTP/1.%*1[01] %3d", &status) != 1)
        return -1;
    return status;
}

int csc_notify_post(const csc_config_t *cfg, const char *uri, const char *body, size_t len)
{
    unsigned timeout_s = cfg->notify_timeout ? cfg->notify_timeout : 10;
    int64_t deadline = mono_ms() + (int64_t)timeout_s * 1000;
    uri_parts_t u;
    SSL_CTX *ctx = NULL;
    conn_t k = {.fd = -1};
    int status = -1;
    notify_why_t why = N_CONNECT;

    if (uri_split(uri, &u) != 0) {
        fprintf(stderr, "csc: response_uri notification: malformed URI\n");
        return -1;
    }
    if ((k.fd = connect_checked(cfg, &u, deadline, &why)) < 0)
        goto out;
    if (u.tls) {
        why = N_TLS;
        if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL || SSL_CTX_set_default_verify_paths(ctx) != 1 ||
            SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 || (k.ssl = SSL_new(ctx)) == NULL)
            goto out;
        SSL_set_verify(k.ssl, SSL_VERIFY_PEER, NULL);
        if (SSL_set_fd(k.ssl, k.fd) != 1 || SSL_set1_host(k.ssl, u.host) != 1 ||
            (!is_local_host(u.host) && SSL_set_tlsext_host_name(k.ssl, u.host) != 1))
            goto out;
        for (;;) {
            int rc = SSL_connect(k.ssl);
            if (rc == 1)
                break;
            if (ssl_step(&k, rc, deadline) != 0)
                goto out;
        }
    }
    why = N_NO_ANSWER;
    status = post_over(&k, &u, body, len, deadline);
out:
    if (k.timed_out || (status < 0 && mono_ms() >= deadline))
        why = N_DEADLINE;
    if (status < 200 || status > 299) {
        static const char *const text[] = {
            [N_OK] = "", [N_CONNECT] = "connection failed",
            [N_REFUSED] = "refused: the host resolves only to internal addresses (notify_allow)",
            [N_TLS] = "TLS handshake or certificate verification failed", [N_NO_ANSWER] = "no HTTP answer",
            [N_DEADLINE] = "no answer within notify_timeout"};
        if (status > 0)
            fprintf(stderr, "csc: response_uri notification to %s answered %d (redirects are not followed)\n",
                    u.host, status);
        else if (why == N_DEADLINE)
            fprintf(stderr, "csc: response_uri notification to %s abandoned: %s (%u s)\n", u.host, text[why],
                    timeout_s);
        else
            fprintf(stderr, "csc: response_uri notification to %s failed: %s\n", u.host, text[why]);
    }
    if (k.ssl != NULL) {
        if (status > 0)
            (void)SSL_shutdown(k.ssl); /* non-blocking: one attempt, no wait */
        SSL_free(k.ssl);
    }
    if (k.fd >= 0)
        close(k.fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return status >= 200 && status <= 299 ? 0 : -1;
}

/* ---- the notifier: its own threads and a bounded queue ------------------------------------------------ */

typedef struct note {
    struct note *next;
    char uri[CSC_URI_MAX + 1];
    char body[CSC_RESPONSE_ID_LEN + 32];
    size_t len;
} note_t;

struct csc_notifier {
    const csc_config_t *cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    note_t *head, *tail;
    size_t queued, cap;
    int closing;
    pthread_t *threads;
    unsigned n_threads;
};

static void note_free(note_t *n)
{
    OPENSSL_clear_free(n, sizeof(*n)); /* the responseID is the key to the result */
}

static void note_log(const char *uri, const char *what)
{
    uri_parts_t u;
    fprintf(stderr, "csc: response_uri notification to %s abandoned: %s\n",
            uri_split(uri, &u) == 0 ? u.host : "(malformed URI)", what);
}

static void *notifier_main(void *arg)
{
    struct csc_notifier *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->head == NULL && !q->closing)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->head == NULL)
            break;
        note_t *n = q->head;
        q->head = n->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->queued--;
        int closing = q->closing;
        pthread_mutex_unlock(&q->mu);
        if (closing)
            note_log(n->uri, "the service stopped");
        else
            (void)csc_notify_post(q->cfg, n->uri, n->body, n->len);
        note_free(n);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

struct csc_notifier *csc_notifier_start(const csc_config_t *cfg)
{
    unsigned threads = cfg->notify_threads ? cfg->notify_threads : 2;
    struct csc_notifier *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->threads = calloc(threads, sizeof(*q->threads))) == NULL) {
        free(q);
        return NULL;
    }
    q->cfg = cfg;
    q->cap = cfg->notify_queue ? cfg->notify_queue : 256;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (unsigned i = 0; i < threads; i++)
        if (pthread_create(&q->threads[q->n_threads], NULL, notifier_main, q) == 0)
            q->n_threads++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (q->n_threads == 0) {
        csc_notifier_stop(q);
        return NULL;
    }
    return q;
}

void csc_notifier_stop(struct csc_notifier *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->closing = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (unsigned i = 0; i < q->n_threads; i++)
        pthread_join(q->threads[i], NULL);
    while (q->head != NULL) {
        note_t *n = q->head;
        q->head = n->next;
        note_log(n->uri, "the service stopped");
        note_free(n);
    }
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->threads);
    free(q);
}

void csc_notifier_queue(struct csc_notifier *q, const char *uri, const char *response_id)
{
    note_t *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        note_log(uri, "out of memory");
        return;
    }
    snprintf(n->uri, sizeof(n->uri), "%s", uri);
    int len = snprintf(n->body, sizeof(n->body), "{\"responseID\":\"%s\"}", response_id);
    n->len = len > 0 && (size_t)len < sizeof(n->body) ? (size_t)len : 0;
    pthread_mutex_lock(&q->mu);
    int ok = !q->closing && q->queued < q->cap && n->len > 0;
    if (ok) {
        if (q->tail != NULL)
            q->tail->next = n;
        else
            q->head = n;
        q->tail = n;
        q->queued++;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (!ok) {
        note_log(uri, "too many notifications are waiting (notify_queue)");
        note_free(n);
    }
}
