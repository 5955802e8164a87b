/*
 * sam_io.c - SAM messages over an AF_UNIX SOCK_SEQPACKET socket (sam_wire.h): cutting a flat message into
 * records and sending them, receiving and reassembling records with the limits, deadlines, and SO_PEERCRED.
 *
 * A SOCK_SEQPACKET datagram is sent whole or not at all, and received whole (MSG_TRUNC tells when it was
 * longer than the buffer), so the record boundaries need no length prefix of their own.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <openssl/crypto.h>
#include <sanitizer/asan_interface.h> /* its poisoning macros do nothing outside AddressSanitizer */

#include "sam_int.h"

int64_t sam_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        int timeout = -1;
        if (deadline_ms != SAM_FOREVER) {
            int64_t left = deadline_ms - sam_now_ms();
            if (left <= 0)
                return SAM_ERR_TIMEOUT;
            timeout = left > 60000 ? 60000 : (int)left;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, timeout);
        if (n > 0)
            return SAM_OK; /* ready, or an error/hangup the next call reports */
        if (n < 0 && errno != EINTR)
            return SAM_ERR_IO;
    }
}

static int send_record(int fd, const sam_hdr_t *h, const uint8_t *payload, int64_t deadline_ms)
{
    uint8_t hdr[SAM_HDR_LEN];
    sam_hdr_write(hdr, h);
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, h->length}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = h->length > 0 ? 2 : 1};
    for (;;) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == (ssize_t)(SAM_HDR_LEN + h->length))
            return SAM_OK;
        if (n >= 0)
            return SAM_ERR_IO; /* a SEQPACKET send is whole or nothing: never here */
        if (errno == EINTR)
            continue;
        if (errno == EPIPE || errno == ECONNRESET)
            return SAM_ERR_CLOSED;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return SAM_ERR_IO;
        int rc = wait_fd(fd, POLLOUT, deadline_ms);
        if (rc != SAM_OK)
            return rc;
    }
}

int sam_send(int fd, const uint8_t *msg, size_t len, int64_t deadline_ms)
{
    if (msg == NULL || len < SAM_HDR_LEN)
        return SAM_ERR_INVAL;
    sam_hdr_t h;
    sam_hdr_read(msg, &h);
    if (sam_hdr_check(&h, 0) != SAM_OK || h.length != len - SAM_HDR_LEN || h.length > SAM_MSG_MAX)
        return SAM_ERR_INVAL;
    const uint8_t *body = msg + SAM_HDR_LEN;
    size_t left = h.length;
    do {
        sam_hdr_t r = h;
        r.length = (uint32_t)(left > SAM_RECORD_PAYLOAD_MAX ? SAM_RECORD_PAYLOAD_MAX : left);
        r.flags = left > SAM_RECORD_PAYLOAD_MAX ? SAM_FLAG_MORE : 0;
        int rc = send_record(fd, &r, body, deadline_ms);
        if (rc != SAM_OK)
            return rc;
        body += r.length;
        left -= r.length;
    } while (left > 0);
    return SAM_OK;
}

/* A thread's spare receive buffer of one record's room (RBUF_FIRST): a buffer of that size given back with
 * sam_rbuf_free is kept, wiped, for the thread's next sam_recv instead of going back to malloc. csc-server takes one
 * per call to csc-sam; 64 KiB blocks coming and going by the hundred a second kept its heaps fragmented
 * (docs/reliability.md, soak). pthread_key_create's destructor frees it when the thread ends (spare_free). Under
 * AddressSanitizer the spare is poisoned while kept: a use after sam_rbuf_free is still reported. */
#define RBUF_FIRST (SAM_HDR_LEN + SAM_RECORD_PAYLOAD_MAX)
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static int spare_ok;

static void spare_free(void *p)
{
    ASAN_UNPOISON_MEMORY_REGION(p, RBUF_FIRST);
    free(p);
}

static void spare_init(void)
{
    spare_ok = pthread_key_create(&spare_key, spare_free) == 0;
}

static uint8_t *spare_take(void)
{
    uint8_t *p;

    (void)pthread_once(&spare_once, spare_init);
    if (!spare_ok || (p = pthread_getspecific(spare_key)) == NULL)
        return NULL;
    (void)pthread_setspecific(spare_key, NULL);
    ASAN_UNPOISON_MEMORY_REGION(p, RBUF_FIRST);
    return p;
}

/* Keep buf (RBUF_FIRST bytes, wiped) as the thread's spare: 1, or 0 when it has one already. */
static int spare_keep(uint8_t *buf)
{
    (void)pthread_once(&spare_once, spare_init);
    if (!spare_ok || pthread_getspecific(spare_key) != NULL || pthread_setspecific(spare_key, buf) != 0)
        return 0;
    ASAN_POISON_MEMORY_REGION(buf, RBUF_FIRST);
    return 1;
}

/* Room for one more record's payload after off body bytes (the first room: the thread's spare if it has one); a
 * move wipes the old buffer. */
static int rbuf_reserve(sam_rbuf_t *rb, size_t off)
{
    size_t need = SAM_HDR_LEN + off + SAM_RECORD_PAYLOAD_MAX;
    if (need <= rb->cap)
        return SAM_OK;
    if (rb->buf == NULL && need == RBUF_FIRST && (rb->buf = spare_take()) != NULL) {
        rb->cap = RBUF_FIRST;
        return SAM_OK;
    }
    if (need < 2 * rb->cap) /* doubling: a long message is copied a few times, not once a record */
        need = 2 * rb->cap;
    if (need > SAM_HDR_LEN + SAM_MSG_MAX + SAM_RECORD_PAYLOAD_MAX)
        need = SAM_HDR_LEN + SAM_MSG_MAX + SAM_RECORD_PAYLOAD_MAX;
    uint8_t *n = malloc(need);
    if (n == NULL)
        return SAM_ERR_NOMEM;
    if (rb->buf != NULL) {
        memcpy(n, rb->buf, SAM_HDR_LEN + off);
        OPENSSL_clear_free(rb->buf, rb->cap);
    }
    rb->buf = n;
    rb->cap = need;
    return SAM_OK;
}

int sam_wait_readable(int fd, int64_t deadline_ms)
{
    return wait_fd(fd, POLLIN, deadline_ms);
}

/* Receive one datagram: its header into hdr, its payload at dst (room for SAM_RECORD_PAYLOAD_MAX bytes). */
static int recv_record(int fd, uint8_t hdr[SAM_HDR_LEN], uint8_t *dst, size_t *got, int64_t deadline_ms)
{
    int rc;
    for (;;) {
        struct iovec iov[2] = {{hdr, SAM_HDR_LEN}, {dst, SAM_RECORD_PAYLOAD_MAX}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
        if (n > 0) {
            if ((mh.msg_flags & MSG_TRUNC) != 0)
                return SAM_ERR_TOO_BIG;
            *got = (size_t)n;
            return SAM_OK;
        }
        if (n == 0)
            return SAM_ERR_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET)
            return SAM_ERR_CLOSED;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return SAM_ERR_IO;
        if ((rc = wait_fd(fd, POLLIN, deadline_ms)) != SAM_OK)
            return rc;
    }
}

static int recv_message(int fd, sam_rbuf_t *rb, int64_t deadline_ms)
{
    sam_hdr_t first = {0};
    size_t off = 0;
    for (unsigned i = 0;; i++) {
        uint8_t raw[SAM_HDR_LEN];
        size_t got;
        int rc = rbuf_reserve(rb, off);
        if (rc == SAM_OK)
            rc = recv_record(fd, raw, rb->buf + SAM_HDR_LEN + off, &got, deadline_ms);
        if (rc != SAM_OK)
            return rc;
        if (got < SAM_HDR_LEN)
            return SAM_ERR_TRUNCATED;
        sam_hdr_t h;
        sam_hdr_read(raw, &h);
        if ((rc = sam_hdr_check(&h, SAM_FLAG_MORE)) != SAM_OK)
            return rc;
        if (h.length != got - SAM_HDR_LEN)
            return SAM_ERR_LENGTH;
        if (i == 0)
            first = h;
        else if (h.id != first.id || h.op != first.op)
            return SAM_ERR_INTERLEAVED;
        if ((h.flags & SAM_FLAG_MORE) != 0 && h.length != SAM_RECORD_PAYLOAD_MAX)
            return SAM_ERR_LENGTH; /* records but the last are full: one way to split a message */
        off += h.length;
        if (off > SAM_MSG_MAX)
            return SAM_ERR_TOO_BIG;
        if ((h.flags & SAM_FLAG_MORE) == 0)
            break;
    }
    first.flags = 0;
    first.length = (uint32_t)off;
    sam_hdr_write(rb->buf, &first);
    rb->len = SAM_HDR_LEN + off;
    return SAM_OK;
}

int sam_recv(int fd, sam_rbuf_t *rb, int64_t deadline_ms)
{
    if (rb == NULL)
        return SAM_ERR_INVAL;
    if (rb->buf != NULL && rb->len > 0)
        OPENSSL_cleanse(rb->buf, rb->len); /* the last message goes */
    rb->len = 0;
    int rc = recv_message(fd, rb, deadline_ms);
    if (rc != SAM_OK && rb->buf != NULL)
        OPENSSL_cleanse(rb->buf, rb->cap);
    return rc;
}

void sam_rbuf_free(sam_rbuf_t *rb)
{
    if (rb == NULL)
        return;
    /* Only the last message's bytes are left to wipe: sam_recv wiped every earlier one, and all of the buffer
     * after a failure. Wiping the rest would only fault in pages never used (the buffer has room for a record). */
    if (rb->buf != NULL) {
        OPENSSL_cleanse(rb->buf, rb->len);
        if (rb->cap != RBUF_FIRST || !spare_keep(rb->buf))
            free(rb->buf);
    }
    memset(rb, 0, sizeof(*rb));
}

int sam_peer(int fd, sam_peer_t *out)
{
    if (out == NULL)
        return SAM_ERR_INVAL;
    struct ucred uc;
    socklen_t len = sizeof(uc);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0 || len != sizeof(uc))
        return SAM_ERR_IO;
    out->pid = uc.pid;
    out->uid = uc.uid;
    out->gid = uc.gid;
    return SAM_OK;
}
