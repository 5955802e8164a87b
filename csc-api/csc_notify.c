/*
 * csc_notify.c - the response_uri of asynchronous requests: validation, and one small HTTP(S) POST when the
 * work has ended. Plain sockets and OpenSSL (certificate and host name verified against the system's trust
 * store, TLS 1.2 at least); connect, send and receive bounded by a timeout; redirects are not followed (any
 * answer but 2xx is logged as a failure). Errors are only logged, with the host name alone: the path and query
 * may carry the client's own secrets, and the body (the responseID) is never logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
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

int csc_response_uri_ok(const csc_t *c, const char *uri)
{
    uri_parts_t u;

    if (uri_split(uri, &u) != 0)
        return 0;
    if (u.tls)
        return 1;
    /* Plain HTTP only to this machine, and only in the test environment (J10, J13). */
    return c->cfg.environment == CSC_ENV_TEST && is_local_host(u.host);
}

static int connect_timeout(const uri_parts_t *u, unsigned timeout_s)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL, *ai;
    int fd = -1;

    if (getaddrinfo(u->host, u->port, &hints, &res) != 0)
        return -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0)
            continue;
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int err = 0;
            socklen_t el = sizeof(err);
            rc = poll(&pfd, 1, (int)timeout_s * 1000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 &&
                         err == 0
                     ? 0
                     : -1;
        }
        if (rc == 0) {
            struct timeval tv = {.tv_sec = timeout_s};
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* One POST over bio (plain socket BIO or SSL BIO); the answer's status code, or -1. */
static int post_over(BIO *bio, const uri_parts_t *u, const char *body, size_t len)
{
    char head[CSC_URI_MAX + 512], line[256];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\nUser-Agent: csc-server\r\n\r\n",
                     u->path, strchr(u->host, ':') ? "[" : "", u->host, strchr(u->host, ':') ? "]" : "",
                     ":", u->port, len);
    if (n < 0 || (size_t)n >= sizeof(head))
        return -1;
    if (BIO_write(bio, head, n) != n || BIO_write(bio, body, (int)len) != (int)len || BIO_flush(bio) != 1)
        return -1;
    int got = 0;
    while (got < (int)sizeof(line) - 1) {
        int r = BIO_read(bio, line + got, 1);
        if (r != 1)
            break;
        if (line[got++] == '\n')
            break;
    }
    line[got] = '\0';
    int status = 0;
    if (sscanf(line, "HTTP/1.%*1[01] %3d", &status) != 1)
        return -1;
    return status;
}

int csc_notify_post(const char *uri, const char *body, size_t len, unsigned timeout_s)
{
    uri_parts_t u;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    BIO *bio = NULL;
    int fd, status = -1;
    const char *why = "connection failed";

    if (uri_split(uri, &u) != 0) {
        fprintf(stderr, "csc: response_uri notification: malformed URI\n");
        return -1;
    }
    if ((fd = connect_timeout(&u, timeout_s)) < 0)
        goto out;
    if (!u.tls) {
        bio = BIO_new_socket(fd, BIO_CLOSE);
        if (bio == NULL) {
            close(fd);
            goto out;
        }
    } else {
        why = "TLS handshake or certificate verification failed";
        if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL || SSL_CTX_set_default_verify_paths(ctx) != 1 ||
            SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 || (ssl = SSL_new(ctx)) == NULL) {
            close(fd);
            goto out;
        }
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        BIO *sock = BIO_new_socket(fd, BIO_CLOSE);
        if (sock == NULL || SSL_set1_host(ssl, u.host) != 1 ||
            (!is_local_host(u.host) && SSL_set_tlsext_host_name(ssl, u.host) != 1)) {
            BIO_free(sock);
            if (sock == NULL)
                close(fd);
            goto out;
        }
        SSL_set_bio(ssl, sock, sock);
        if (SSL_connect(ssl) != 1)
            goto out;
        if ((bio = BIO_new(BIO_f_ssl())) == NULL)
            goto out;
        BIO_set_ssl(bio, ssl, BIO_CLOSE);
        ssl = NULL;
    }
    why = "no HTTP answer";
    status = post_over(bio, &u, body, len);
out:
    if (status < 200 || status > 299) {
        if (status > 0)
            fprintf(stderr, "csc: response_uri notification to %s answered %d (redirects are not followed)\n",
                    u.host, status);
        else
            fprintf(stderr, "csc: response_uri notification to %s failed: %s\n", u.host, why);
    }
    BIO_free_all(bio);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return status >= 200 && status <= 299 ? 0 : -1;
}
