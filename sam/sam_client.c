/*
 * sam_client.c - the front end's pool of connections to csc-sam (sam_client.h): slots under one mutex, a call
 * within one deadline, reconnection, typed helpers.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "sam_client.h"
#include "sam_int.h"

typedef struct slot {
    int fd;           /* -1: not connected */
    int busy;
} slot_t;

struct sam_client {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    unsigned timeout_ms;
    unsigned n;
    uint32_t next_id;
    pthread_mutex_t mtx;
    pthread_cond_t cv;   /* a slot was given back (CLOCK_MONOTONIC) */
    slot_t slot[];
};

int sam_client_new(const char *path, unsigned connections, unsigned timeout_ms, sam_client_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (path == NULL || out == NULL || path[0] == '\0' || strlen(path) >= sizeof(((sam_client_t *)0)->path) ||
        connections == 0 || connections > SAM_CLIENT_CONNECTIONS_MAX || timeout_ms == 0)
        return SAM_ERR_INVAL;
    sam_client_t *c = calloc(1, sizeof(*c) + connections * sizeof(slot_t));
    if (c == NULL)
        return SAM_ERR_NOMEM;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        free(c);
        return SAM_ERR_NOMEM;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int ok = pthread_cond_init(&c->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok || pthread_mutex_init(&c->mtx, NULL) != 0) {
        if (ok)
            pthread_cond_destroy(&c->cv);
        free(c);
        return SAM_ERR_NOMEM;
    }
    memcpy(c->path, path, strlen(path) + 1);
    c->timeout_ms = timeout_ms;
    c->n = connections;
    for (unsigned i = 0; i < connections; i++)
        c->slot[i].fd = -1;
    *out = c;
    return SAM_OK;
}

void sam_client_free(sam_client_t *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->n; i++)
        if (c->slot[i].fd >= 0)
            close(c->slot[i].fd);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mtx);
    free(c);
}

uint32_t sam_client_next_id(sam_client_t *c)
{
    uint32_t id;
    do
        id = __atomic_add_fetch(&c->next_id, 1, __ATOMIC_RELAXED);
    while (id == 0);
    return id;
}

/* Take a free slot, a connected one first; wait for one until the deadline. */
static slot_t *slot_take(sam_client_t *c, int64_t deadline_ms)
{
    slot_t *got = NULL;
    pthread_mutex_lock(&c->mtx);
    for (;;) {
        for (unsigned i = 0; i < c->n; i++)
            if (!c->slot[i].busy && (got == NULL || (got->fd < 0 && c->slot[i].fd >= 0)))
                got = &c->slot[i];
        if (got != NULL)
            break;
        int64_t left = deadline_ms - sam_now_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&c->cv, &c->mtx, &ts);
    }
    if (got != NULL)
        got->busy = 1;
    pthread_mutex_unlock(&c->mtx);
    return got;
}

static void slot_give(sam_client_t *c, slot_t *s)
{
    pthread_mutex_lock(&c->mtx);
    s->busy = 0;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mtx);
}

static void slot_drop(slot_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/* Connect the slot, without waiting: a SAM that is not listening is SAM_ERR_UNAVAILABLE at once. */
static int slot_connect(const sam_client_t *c, slot_t *s)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, c->path, strlen(c->path) + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return errno == ENOMEM || errno == ENOBUFS ? SAM_ERR_NOMEM : SAM_ERR_IO;
    int rc;
    do
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        close(fd);
        return SAM_ERR_UNAVAILABLE; /* ENOENT, ECONNREFUSED, EAGAIN (backlog full), EACCES */
    }
    s->fd = fd;
    return SAM_OK;
}

/* An idle connection the SAM has ended (it restarted, or refused the connection): hung up, or readable, which an idle
 * connection never is otherwise. */
static int slot_dead(const slot_t *s)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    return poll(&p, 1, 0) != 0;
}

unsigned sam_client_fill(sam_client_t *c)
{
    unsigned n = 0;
    if (c == NULL)
        return 0;
    for (unsigned i = 0; i < c->n; i++) {
        slot_t *s = &c->slot[i];
        pthread_mutex_lock(&c->mtx);
        int mine = !s->busy;
        s->busy = 1;
        pthread_mutex_unlock(&c->mtx);
        if (!mine)
            continue; /* a call has it */
        if (s->fd >= 0 && slot_dead(s))
            slot_drop(s);
        int up = s->fd >= 0 || slot_connect(c, s) == SAM_OK;
        slot_give(c, s);
        if (!up)
            break; /* the SAM is not there: the calls connect as before */
    }
    pthread_mutex_lock(&c->mtx);
    for (unsigned i = 0; i < c->n; i++)
        n += c->slot[i].fd >= 0;
    pthread_mutex_unlock(&c->mtx);
    return n;
}

/* One exchange on the slot: connect if needed, send (again on a fresh connection if an idle one was closed by a
 * SAM that went away), receive, decode, check. */
static int exchange(sam_client_t *c, slot_t *s, const uint8_t *msg, size_t len, int64_t deadline_ms, sam_rbuf_t *rb,
                    sam_msg_t *reply, int *connected)
{
    int fresh = s->fd < 0, rc;
    if (fresh && (rc = slot_connect(c, s)) != SAM_OK)
        return rc;
    *connected = fresh;
    rc = sam_send(s->fd, msg, len, deadline_ms);
    if (!fresh && (rc == SAM_ERR_CLOSED || rc == SAM_ERR_IO)) {
        slot_drop(s);
        if ((rc = slot_connect(c, s)) != SAM_OK)
            return rc;
        *connected = 1;
        rc = sam_send(s->fd, msg, len, deadline_ms);
    }
    if (rc == SAM_ERR_CLOSED)
        return SAM_ERR_UNAVAILABLE;
    if (rc != SAM_OK)
        return rc;
    /* The answer is not there yet: wait for it first, then read it in one try. */
    if ((rc = sam_wait_readable(s->fd, deadline_ms)) == SAM_OK)
        rc = sam_recv(s->fd, rb, deadline_ms);
    if (rc == SAM_ERR_CLOSED)
        return SAM_ERR_UNAVAILABLE; /* the SAM went away while it had the request */
    if (rc != SAM_OK || (rc = sam_msg_decode(rb->buf, rb->len, reply)) != SAM_OK)
        return rc;
    if (reply->op == SAM_OP_REFUSED && reply->id == 0)
        return SAM_ERR_UNAVAILABLE; /* the SAM refused the connection itself (peer not allowed, limit) */
    uint32_t id = sam_be32(msg + 8);
    unsigned op = msg[3];
    if (reply->id != id || (reply->op != (op | SAM_OP_REPLY) && reply->op != SAM_OP_REFUSED))
        return SAM_ERR_INTERLEAVED;
    return SAM_OK;
}

int sam_client_call(sam_client_t *c, const uint8_t *msg, size_t len, sam_rbuf_t *rb, sam_msg_t *reply)
{
    if (reply != NULL)
        memset(reply, 0, sizeof(*reply));
    if (c == NULL || msg == NULL || len < SAM_HDR_LEN || rb == NULL || reply == NULL)
        return SAM_ERR_INVAL;
    int64_t deadline = sam_now_ms() + c->timeout_ms;
    slot_t *s = slot_take(c, deadline);
    if (s == NULL)
        return SAM_ERR_TIMEOUT;
    int connected = 0;
    int rc = exchange(c, s, msg, len, deadline, rb, reply, &connected);
    if (rc != SAM_OK) {
        slot_drop(s); /* a message may be half sent or half read */
        memset(reply, 0, sizeof(*reply));
    }
    slot_give(c, s);
    if (rc == SAM_OK && connected)
        (void)sam_client_fill(c); /* the SAM is (back) up: the rest of the pool too, its dead connections replaced */
    return rc;
}

int sam_client_hello(sam_client_t *c, sam_hello_t *out)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t m;
    const uint8_t *msg;
    size_t len;
    uint32_t v, hsm, stor;

    if (out == NULL)
        return SAM_ERR_INVAL;
    memset(out, 0, sizeof(*out));
    if (c == NULL)
        return SAM_ERR_INVAL;
    int rc = sam_build_init(&b, SAM_OP_HELLO, sam_client_next_id(c));
    if (rc == SAM_OK)
        rc = sam_put_u32(&b, SAM_T_VERSION, SAM_VERSION);
    if (rc == SAM_OK)
        rc = sam_build_finish(&b, &msg, &len);
    if (rc == SAM_OK)
        rc = sam_client_call(c, msg, len, &rb, &m);
    if (rc == SAM_OK && m.op == SAM_OP_REFUSED)
        rc = SAM_ERR_REFUSED;
    /* The decoder checked the reply against HELLO's table: the fields are there, of their types and bounds. */
    if (rc == SAM_OK && (rc = sam_get_text(&m, SAM_T_IDENTITY, out->identity, sizeof(out->identity))) == SAM_OK &&
        sam_get_u32(&m, SAM_T_VERSION, &v) == SAM_OK && sam_get_u32(&m, SAM_T_HSM_STATE, &hsm) == SAM_OK &&
        sam_get_u32(&m, SAM_T_STORAGE_STATE, &stor) == SAM_OK) {
        out->version = v;
        out->hsm_ready = hsm == SAM_HSM_READY;
        out->storage_ready = stor == SAM_HSM_READY;
        const uint8_t *key;
        size_t key_len = 0;
        if (sam_msg_count(&m, SAM_T_TICKET_KEY) > 0 &&
            (rc = sam_get_bytes(&m, SAM_T_TICKET_KEY, &key, &key_len)) == SAM_OK) { /* of its length: the table's */
            memcpy(out->ticket_key, key, sizeof(out->ticket_key));
            out->has_ticket_key = 1;
        }
        if (rc == SAM_OK && sam_msg_count(&m, SAM_T_HSM_WAITS) > 0 && sam_get_u64(&m, SAM_T_HSM_WAITS, &out->hsm_waits) == SAM_OK)
            out->has_hsm_waits = 1;
        if (rc == SAM_OK && sam_msg_count(&m, SAM_T_HEAP_IN_USE) > 0 && sam_msg_count(&m, SAM_T_HEAP_HELD) > 0 &&
            sam_get_u64(&m, SAM_T_HEAP_IN_USE, &out->heap_in_use) == SAM_OK &&
            sam_get_u64(&m, SAM_T_HEAP_HELD, &out->heap_held) == SAM_OK)
            out->has_heap = 1;
    } else if (rc == SAM_OK) {
        rc = SAM_ERR_MISSING;
    }
    if (rc != SAM_OK)
        OPENSSL_cleanse(out, sizeof(*out));
    sam_build_free(&b);
    sam_rbuf_free(&rb); /* wiped: the key was in it */
    return rc;
}
