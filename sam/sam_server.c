/*
 * sam_server.c - csc-sam's listening socket and its connections (sam_server.h): the lock, the stale socket, the
 * accepting thread, SO_PEERCRED, one thread per connection within the limit, and the read-decode-answer loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sam_core.h"
#include "sam_int.h"

#define CERT_SLOTS 128 /* credentials whose parsed certificate is kept (pki_x509_cache): at most 2 MiB of DER */

typedef enum { CONN_FREE = 0, CONN_RUNNING, CONN_DONE } conn_state_t;

typedef struct conn {
    sam_server_t *srv;
    int fd;
    sam_peer_t peer;          /* SO_PEERCRED at accept */
    conn_state_t state;
    pthread_t th;
} conn_t;

struct sam_server {
    sam_server_config_t cfg;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int lock_fd, listen_fd;
    int stop_pipe[2];            /* the accepting thread's wake-up */
    int started, stopping;
    pki_x509_cache_t *own_certs; /* cfg.certs when this server made it */
    pthread_t acceptor;
    pthread_mutex_t mtx;         /* conns, stopping */
    conn_t *conns;               /* max_connections slots */
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return -1;
}

/* PATH.lock, held with flock for the server's life; wait up to lock_wait_ms for a SAM that is still going away. */
static int take_lock(sam_server_t *s, char *err, size_t errsz)
{
    char lock[sizeof(s->path) + 8];
    snprintf(lock, sizeof(lock), "%s.lock", s->path);
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (s->lock_fd < 0)
        return fail(err, errsz, "%s: %s", lock, strerror(errno));
    int64_t deadline = sam_now_ms() + s->cfg.lock_wait_ms;
    while (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            return fail(err, errsz, "%s: %s", lock, strerror(errno));
        if (sam_now_ms() >= deadline)
            return fail(err, errsz, "%s: another csc-sam is serving %s", lock, s->path);
        poll(NULL, 0, 20);
    }
    return 0;
}

/* Under the lock no other SAM serves the path: a socket left there is stale. Anything else is not ours to remove. */
static int remove_stale(const sam_server_t *s, char *err, size_t errsz)
{
    struct stat st;
    if (lstat(s->path, &st) != 0)
        return errno == ENOENT ? 0 : fail(err, errsz, "%s: %s", s->path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return fail(err, errsz, "%s exists and is not a socket: refusing to replace it", s->path);
    if (unlink(s->path) != 0 && errno != ENOENT)
        return fail(err, errsz, "%s: cannot remove the stale socket: %s", s->path, strerror(errno));
    return 0;
}

static int bind_listen(sam_server_t *s, char *err, size_t errsz)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, s->path, strlen(s->path) + 1);
    s->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0)
        return fail(err, errsz, "socket: %s", strerror(errno));
    /* The file is created with at most the mode asked: no moment in which others could connect. */
    mode_t old = umask((mode_t)(~s->cfg.mode & 0777));
    int rc = bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a));
    int e = errno;
    umask(old);
    if (rc != 0)
        return fail(err, errsz, "%s: bind: %s", s->path, strerror(e));
    if (s->cfg.gid != (gid_t)-1 && chown(s->path, (uid_t)-1, s->cfg.gid) != 0)
        return fail(err, errsz, "%s: cannot give the socket to group %u: %s", s->path, (unsigned)s->cfg.gid,
                    strerror(errno));
    if (chmod(s->path, s->cfg.mode) != 0)
        return fail(err, errsz, "%s: chmod: %s", s->path, strerror(errno));
    if (listen(s->listen_fd, (int)(s->cfg.max_connections < 64 ? 64 : s->cfg.max_connections)) != 0)
        return fail(err, errsz, "%s: listen: %s", s->path, strerror(errno));
    return 0;
}

int sam_server_open(const sam_server_config_t *cfg, sam_server_t **out, char *err, size_t errsz)
{
    *out = NULL;
    if (cfg == NULL || cfg->path == NULL || cfg->stor == NULL || cfg->identity == NULL ||
        cfg->identity[0] == '\0' || strlen(cfg->identity) > SAM_IDENTITY_MAX || cfg->max_connections == 0 ||
        cfg->io_timeout_ms == 0 || (cfg->mode != 0600 && cfg->mode != 0660))
        return fail(err, errsz, "invalid SAM server configuration");
    if (cfg->operators != NULL && cfg->ticket_key != NULL) /* csc-admin has no use for the pages' key */
        return fail(err, errsz, "the operators' socket never gives the pages' ticket key");
    if (cfg->path[0] == '\0' || strlen(cfg->path) + 1 > sizeof(((sam_server_t *)0)->path))
        return fail(err, errsz, "%s: a socket path has at most %zu bytes", cfg->path,
                    sizeof(((sam_server_t *)0)->path) - 1);
    sam_server_t *s = calloc(1, sizeof(*s));
    conn_t *conns = calloc(cfg->max_connections, sizeof(conn_t));
    if (s == NULL || conns == NULL || pthread_mutex_init(&s->mtx, NULL) != 0) {
        free(s);
        free(conns);
        return fail(err, errsz, "out of memory");
    }
    s->cfg = *cfg;
    s->conns = conns;
    s->lock_fd = s->listen_fd = s->stop_pipe[0] = s->stop_pipe[1] = -1;
    memcpy(s->path, cfg->path, strlen(cfg->path) + 1);
    if (s->cfg.certs == NULL && pki_x509_cache_new(CERT_SLOTS, &s->own_certs) != PKI_OK) {
        fail(err, errsz, "out of memory");
        sam_server_free(s);
        return -1;
    }
    if (s->cfg.certs == NULL)
        s->cfg.certs = s->own_certs;
    if (pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
        fail(err, errsz, "pipe: %s", strerror(errno));
        sam_server_free(s);
        return -1;
    }
    if (take_lock(s, err, errsz) != 0 || remove_stale(s, err, errsz) != 0 || bind_listen(s, err, errsz) != 0) {
        sam_server_free(s); /* removes the socket file only once this server has a socket of its own */
        return -1;
    }
    *out = s;
    return 0;
}

/* The id of a message whose header arrived, else 0. */
static uint32_t header_id(const sam_rbuf_t *rb)
{
    return rb->len >= SAM_HDR_LEN ? sam_be32(rb->buf + 8) : 0;
}

/* Send b's message (finished here) and free b. */
static int send_built(int fd, sam_builder_t *b, int build_rc, unsigned timeout_ms)
{
    const uint8_t *msg;
    size_t len;
    int rc = build_rc == SAM_OK ? sam_build_finish(b, &msg, &len) : build_rc;
    if (rc == SAM_OK)
        rc = sam_send(fd, msg, len, sam_now_ms() + timeout_ms);
    sam_build_free(b);
    return rc;
}

/* Refuse the connection itself (request id 0), then the caller closes it. */
static void refuse_conn(int fd, uint32_t code, const char *reason)
{
    sam_builder_t b;
    (void)send_built(fd, &b, sam_build_refusal(&b, 0, code, reason, 0), 1000);
}

static int is_request_op(unsigned op)
{
    return op != SAM_OP_REFUSED && (op & SAM_OP_REPLY) == 0;
}

/* Serve one connection: wait for a request, read it within the deadline, answer it; a bad one ends the connection. */
static void serve(sam_server_t *s, int fd)
{
    sam_rbuf_t rb = {0};
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (p.revents & POLLIN) == 0)
            break; /* hung up or shut down by sam_server_free */
        int rc = sam_recv(fd, &rb, sam_now_ms() + s->cfg.io_timeout_ms);
        if (rc != SAM_OK) {
            if (rc != SAM_ERR_CLOSED) {
                fprintf(stderr, "csc-sam: connection closed: %s\n", sam_strerror(rc));
                sam_core_audit_malformed(&s->cfg, sam_strerror(rc)); /* too big, too slow, bad framing */
            }
            break;
        }
        sam_msg_t m;
        sam_builder_t b;
        rc = sam_msg_decode(rb.buf, rb.len, &m);
        if (rc != SAM_OK || !is_request_op(m.op)) {
            const char *why = rc != SAM_OK ? sam_strerror(rc) : "not a request";
            fprintf(stderr, "csc-sam: malformed request (%s): connection closed\n", why);
            sam_core_audit_malformed(&s->cfg, why);
            (void)send_built(fd, &b, sam_build_refusal(&b, header_id(&rb), SAM_REFUSE_BAD_MESSAGE, why, 0),
                             s->cfg.io_timeout_ms);
            break;
        }
        if (send_built(fd, &b, sam_core_handle(&s->cfg, &m, &b), s->cfg.io_timeout_ms) != SAM_OK)
            break;
    }
    sam_rbuf_free(&rb);
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    sam_core_peer_set(&c->peer); /* the operators' ops record the peer's uid beside csc-admin's claim */
    serve(c->srv, c->fd);
    pthread_mutex_lock(&c->srv->mtx);
    close(c->fd);
    c->fd = -1;
    c->state = CONN_DONE;
    pthread_mutex_unlock(&c->srv->mtx);
    return NULL;
}

/* Join finished connection threads; the free slot, or NULL when max_connections are running. Under mtx. */
static conn_t *free_slot(sam_server_t *s)
{
    conn_t *got = NULL;
    for (unsigned i = 0; i < s->cfg.max_connections; i++) {
        conn_t *c = &s->conns[i];
        if (c->state == CONN_DONE) {
            pthread_join(c->th, NULL);
            c->state = CONN_FREE;
        }
        if (c->state == CONN_FREE && got == NULL)
            got = c;
    }
    return got;
}

static void accept_one(sam_server_t *s, int fd)
{
    sam_peer_t peer;
    int known = sam_peer(fd, &peer) == SAM_OK;
    if (!known || (s->cfg.allowed_uid != (uid_t)-1 && peer.uid != s->cfg.allowed_uid)) {
        if (!known)
            memset(&peer, 0xff, sizeof(peer));
        fprintf(stderr, "csc-sam: refused a connection from uid %u pid %d (allowed: uid %u)\n", (unsigned)peer.uid,
                (int)peer.pid, (unsigned)s->cfg.allowed_uid);
        sam_core_audit_peer(&s->cfg, &peer);
        refuse_conn(fd, SAM_REFUSE_UNAUTHORIZED, "peer not allowed");
        close(fd);
        return;
    }
    pthread_mutex_lock(&s->mtx);
    conn_t *c = s->stopping ? NULL : free_slot(s);
    if (c != NULL) {
        c->srv = s;
        c->fd = fd;
        c->peer = peer;
        c->state = CONN_RUNNING;
        if (pthread_create(&c->th, NULL, conn_main, c) != 0) {
            c->state = CONN_FREE;
            c = NULL;
        }
    }
    pthread_mutex_unlock(&s->mtx);
    if (c == NULL) {
        fprintf(stderr, "csc-sam: connection from pid %d refused: %u connections at once (sam_max_connections)\n",
                (int)peer.pid, s->cfg.max_connections);
        refuse_conn(fd, SAM_REFUSE_FULL, "too many connections");
        close(fd);
    }
}

static void *accept_main(void *arg)
{
    sam_server_t *s = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->listen_fd, .events = POLLIN}, {.fd = s->stop_pipe[0], .events = POLLIN}};
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || p[1].revents != 0)
            break;
        if ((p[0].revents & POLLIN) == 0)
            continue;
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                poll(NULL, 0, 100); /* out of descriptors: let connections end before trying again */
            continue;
        }
        accept_one(s, fd);
    }
    return NULL;
}

int sam_server_start(sam_server_t *s)
{
    if (s == NULL || s->started)
        return -1;
    if (pthread_create(&s->acceptor, NULL, accept_main, s) != 0)
        return -1;
    s->started = 1;
    return 0;
}

unsigned sam_server_connections(sam_server_t *s)
{
    unsigned n = 0;
    pthread_mutex_lock(&s->mtx);
    for (unsigned i = 0; i < s->cfg.max_connections; i++)
        n += s->conns[i].state == CONN_RUNNING;
    pthread_mutex_unlock(&s->mtx);
    return n;
}

void sam_server_free(sam_server_t *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        (void)!write(s->stop_pipe[1], "x", 1);
        pthread_join(s->acceptor, NULL);
    }
    /* No new connection now; wake every connection thread waiting for a request (one busy with a request
     * finishes it, then sees the shutdown). */
    pthread_mutex_lock(&s->mtx);
    s->stopping = 1;
    for (unsigned i = 0; i < s->cfg.max_connections; i++)
        if (s->conns[i].state == CONN_RUNNING)
            shutdown(s->conns[i].fd, SHUT_RD);
    pthread_mutex_unlock(&s->mtx);
    for (unsigned i = 0; i < s->cfg.max_connections; i++)
        if (s->conns[i].state != CONN_FREE)
            pthread_join(s->conns[i].th, NULL);
    /* Signatures reserved by SIGN with ASYNC that were never made go back to their SADs (audited). */
    if (s->cfg.oauth != NULL)
        sam_op_sign_release_all("csc-sam stopped before the reserved signature was made");
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        unlink(s->path); /* still under the lock: no other SAM made it */
    }
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock */
    for (int i = 0; i < 2; i++)
        if (s->stop_pipe[i] >= 0)
            close(s->stop_pipe[i]);
    pki_x509_cache_free(s->own_certs);
    pthread_mutex_destroy(&s->mtx);
    free(s->conns);
    free(s);
}
