/* test_sam_io.c - SAM messages over a real AF_UNIX SOCK_SEQPACKET socketpair: records, limits, deadlines, peers. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_sam.h"
#include "test_sam.h"

static void pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
}

static void unpair(int sv[2])
{
    close(sv[0]);
    close(sv[1]);
}

/* One record as a datagram: header (length = payload) and payload. */
typedef struct rec {
    uint8_t *b;
    size_t n;
} rec_t;

static rec_t rec_make(uint32_t id, uint8_t op, uint16_t flags, size_t payload)
{
    rec_t r = {calloc(1, SAM_HDR_LEN + payload), SAM_HDR_LEN + payload};
    ck_assert_ptr_nonnull(r.b);
    raw_t h;
    raw_hdr(&h, SAM_MAGIC, SAM_VERSION, op, flags, 0, id);
    raw_done(&h);
    memcpy(r.b, h.b, SAM_HDR_LEN);
    r.b[12] = (uint8_t)(payload >> 24), r.b[13] = (uint8_t)(payload >> 16), r.b[14] = (uint8_t)(payload >> 8);
    r.b[15] = (uint8_t)payload;
    return r;
}

/* Sends records from a thread of its own (more than the socket buffer holds), stopping at the first failure. */
typedef struct writer {
    pthread_t t;
    int fd;
    rec_t *recs;
    size_t n;
    const uint8_t *msg; /* or one message with sam_send() */
    size_t msg_len;
    int rc;
} writer_t;

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    if (w->msg != NULL) {
        w->rc = sam_send(w->fd, w->msg, w->msg_len, sam_now_ms() + 30000);
        return NULL;
    }
    for (size_t i = 0; i < w->n; i++)
        if (send(w->fd, w->recs[i].b, w->recs[i].n, MSG_NOSIGNAL) != (ssize_t)w->recs[i].n) {
            w->rc = -1;
            break;
        }
    return NULL;
}

static void writer_start(writer_t *w)
{
    ck_assert_int_eq(pthread_create(&w->t, NULL, writer_main, w), 0);
}

static void writer_join(writer_t *w)
{
    ck_assert_int_eq(pthread_join(w->t, NULL), 0);
    for (size_t i = 0; i < w->n; i++)
        free(w->recs[i].b);
}

/* What sam_recv() says of these records (then the connection is dropped, as the caller must). */
static int recv_records(rec_t *recs, size_t n)
{
    int sv[2];
    pair(sv);
    writer_t w = {.fd = sv[1], .recs = recs, .n = n};
    writer_start(&w);
    sam_rbuf_t rb = {0};
    int rc = sam_recv(sv[0], &rb, sam_now_ms() + 10000);
    ck_assert_uint_eq(rb.len, rc == SAM_OK ? rb.len : 0);
    close(sv[0]); /* a writer blocked on a full socket gets EPIPE */
    writer_join(&w);
    close(sv[1]);
    sam_rbuf_free(&rb);
    return rc;
}

/* A message of n body bytes (each 0xA5) sent on sv[1] and received into rb. */
static void recv_filled(int sv[2], sam_rbuf_t *rb, size_t n)
{
    static raw_t r;
    uint8_t fill[8192];

    memset(fill, 0xA5, sizeof(fill));
    raw_start(&r, SAM_OP_HELLO);
    raw_bytes(&r, fill, n);
    raw_done(&r);
    ck_assert_int_eq(sam_send(sv[1], r.b, r.n, sam_now_ms() + 5000), SAM_OK);
    ck_assert_int_eq(sam_recv(sv[0], rb, sam_now_ms() + 5000), SAM_OK);
    ck_assert_uint_eq(rb->len, r.n);
}

/* A buffer of one record's room given back is the thread's next receive buffer, wiped (csc-server takes one per call
 * to csc-sam: from malloc each time, they kept its heaps fragmented); a second buffer at once is a new one. */
START_TEST(t_spare_buffer)
{
    int sv[2];
    sam_rbuf_t rb = {0}, rb2 = {0}, rb3 = {0};

    pair(sv);
    recv_filled(sv, &rb, 8000);
    uint8_t *first = rb.buf;
    size_t long_len = rb.len;
    sam_rbuf_free(&rb);
    recv_filled(sv, &rb2, 100);
    ck_assert_ptr_eq(rb2.buf, first);
    ck_assert_uint_eq(rb2.cap, SAM_RECORD_MAX);
    for (size_t i = rb2.len; i < long_len; i++) /* what the longer message left: wiped */
        ck_assert_uint_eq(rb2.buf[i], 0);
    recv_filled(sv, &rb3, 100);
    uint8_t *third = rb3.buf;
    ck_assert_ptr_ne(third, first);
    sam_rbuf_free(&rb3); /* the thread's spare */
    sam_rbuf_free(&rb2); /* a spare already: this one is freed */
    recv_filled(sv, &rb, 10);
    ck_assert_ptr_eq(rb.buf, third);
    sam_rbuf_free(&rb);
    unpair(sv);
}
END_TEST

START_TEST(t_small_messages)
{
    int sv[2];
    pair(sv);
    sam_rbuf_t rb = {0};
    for (unsigned op = 0; op < 256; op++) {
        if (sam_op_spec(op) == NULL)
            continue;
        sam_builder_t b;
        const uint8_t *msg;
        size_t len;
        ck_assert_int_eq(fuzz_sam_sample(op, FUZZ_SAM_MIN, op * 3, &b, &msg, &len), SAM_OK);
        ck_assert_int_eq(sam_send(sv[1], msg, len, sam_now_ms() + 5000), SAM_OK);
        ck_assert_int_eq(sam_recv(sv[0], &rb, sam_now_ms() + 5000), SAM_OK);
        ck_assert_uint_eq(rb.len, len);
        ck_assert_mem_eq(rb.buf, msg, len);
        sam_msg_t m;
        ck_assert_int_eq(sam_msg_decode(rb.buf, rb.len, &m), SAM_OK);
        ck_assert_uint_eq(m.id, op * 3);
        sam_build_free(&b);
    }
    /* sam_send() sends only the flat form */
    raw_t r;
    raw_start(&r, SAM_OP_HELLO);
    raw_u32(&r, SAM_T_VERSION, 1);
    ck_assert_int_eq(sam_send(sv[1], r.b, r.n, SAM_FOREVER), SAM_ERR_INVAL); /* length not set */
    raw_done(&r);
    r.b[0] = 0;
    ck_assert_int_eq(sam_send(sv[1], r.b, r.n, SAM_FOREVER), SAM_ERR_INVAL);
    ck_assert_int_eq(sam_send(sv[1], r.b, 3, SAM_FOREVER), SAM_ERR_INVAL);
    sam_rbuf_free(&rb);
    unpair(sv);
}
END_TEST

/* The largest message goes as 17 records: all but the last full and flagged MORE, one request id. */
START_TEST(t_multi_record)
{
    sam_builder_t b;
    const uint8_t *msg;
    size_t len;
    ck_assert_int_eq(fuzz_sam_sample(SAM_OP_SIGN | SAM_OP_REPLY, FUZZ_SAM_MAX, 0xabcdef, &b, &msg, &len), SAM_OK);
    size_t body = len - SAM_HDR_LEN, records = (body + SAM_RECORD_PAYLOAD_MAX - 1) / SAM_RECORD_PAYLOAD_MAX;
    /* every signature, and the CMS signing time and the ticket (the table's longest sample has every field) */
    ck_assert_uint_eq(body, SAM_DIGESTS_MAX * (SAM_FIELD_HDR + SAM_SIG_MAX) + SAM_FIELD_HDR + 8 + SAM_FIELD_HDR +
                                SAM_TICKET_LEN);
    ck_assert_uint_le(body, SAM_MSG_MAX);
    ck_assert_uint_eq(records, 17);

    /* on the wire */
    int sv[2];
    pair(sv);
    writer_t w = {.fd = sv[1], .msg = msg, .msg_len = len};
    writer_start(&w);
    uint8_t *rec = malloc(SAM_RECORD_MAX + 1);
    ck_assert_ptr_nonnull(rec);
    size_t off = 0;
    for (size_t i = 0; i < records; i++) {
        ssize_t n = recv(sv[0], rec, SAM_RECORD_MAX + 1, 0);
        size_t want = i + 1 < records ? SAM_RECORD_PAYLOAD_MAX : body - off;
        ck_assert_int_eq(n, (ssize_t)(SAM_HDR_LEN + want));
        ck_assert_mem_eq(rec, msg, 4);      /* magic, version, op */
        ck_assert_uint_eq(rec[4], 0);
        ck_assert_uint_eq(rec[5], i + 1 < records ? SAM_FLAG_MORE : 0);
        ck_assert_mem_eq(rec + 6, msg + 6, 6); /* reserved, request id */
        ck_assert_uint_eq((size_t)rec[12] << 24 | (size_t)rec[13] << 16 | (size_t)rec[14] << 8 | rec[15], want);
        ck_assert_mem_eq(rec + SAM_HDR_LEN, msg + SAM_HDR_LEN + off, want);
        off += want;
    }
    writer_join(&w);
    ck_assert_int_eq(w.rc, SAM_OK);
    free(rec);

    /* and reassembled */
    w = (writer_t){.fd = sv[1], .msg = msg, .msg_len = len};
    writer_start(&w);
    sam_rbuf_t rb = {0};
    ck_assert_int_eq(sam_recv(sv[0], &rb, sam_now_ms() + 30000), SAM_OK);
    writer_join(&w);
    ck_assert_int_eq(w.rc, SAM_OK);
    ck_assert_uint_eq(rb.len, len);
    ck_assert_mem_eq(rb.buf, msg, len);
    sam_msg_t m;
    ck_assert_int_eq(sam_msg_decode(rb.buf, rb.len, &m), SAM_OK);
    ck_assert_uint_eq(sam_msg_count(&m, SAM_T_SIGNATURE), SAM_DIGESTS_MAX);
    sam_rbuf_free(&rb);
    sam_build_free(&b);
    unpair(sv);
}
END_TEST

START_TEST(t_oversize)
{
    /* 17 full records are within SAM_MSG_MAX, an 18th is not */
    size_t full = SAM_MSG_MAX / SAM_RECORD_PAYLOAD_MAX;
    ck_assert_uint_eq(full, 17);
    rec_t recs[18];
    for (size_t i = 0; i < 18; i++)
        recs[i] = rec_make(1, SAM_OP_SIGN | SAM_OP_REPLY, i < 17 ? SAM_FLAG_MORE : 0, SAM_RECORD_PAYLOAD_MAX);
    ck_assert_int_eq(recv_records(recs, 18), SAM_ERR_TOO_BIG);
    /* a datagram longer than a record */
    recs[0] = rec_make(1, SAM_OP_SIGN, 0, SAM_RECORD_PAYLOAD_MAX + 1);
    ck_assert_int_eq(recv_records(recs, 1), SAM_ERR_TOO_BIG);
    /* the control: the largest message that fits passes (its body is not a valid SIGN reply: framing only) */
    for (size_t i = 0; i < 18; i++)
        recs[i] = rec_make(1, SAM_OP_SIGN | SAM_OP_REPLY, i < 17 ? SAM_FLAG_MORE : 0,
                           i < 17 ? SAM_RECORD_PAYLOAD_MAX : SAM_MSG_MAX - 17 * SAM_RECORD_PAYLOAD_MAX);
    ck_assert_int_eq(recv_records(recs, 18), SAM_OK);
}
END_TEST

START_TEST(t_interleaved)
{
    rec_t recs[2];
    recs[0] = rec_make(1, SAM_OP_SIGN, SAM_FLAG_MORE, SAM_RECORD_PAYLOAD_MAX);
    recs[1] = rec_make(2, SAM_OP_SIGN, 0, 10); /* another request id */
    ck_assert_int_eq(recv_records(recs, 2), SAM_ERR_INTERLEAVED);
    recs[0] = rec_make(1, SAM_OP_SIGN, SAM_FLAG_MORE, SAM_RECORD_PAYLOAD_MAX);
    recs[1] = rec_make(1, SAM_OP_STAMP, 0, 10); /* another op */
    ck_assert_int_eq(recv_records(recs, 2), SAM_ERR_INTERLEAVED);
    recs[0] = rec_make(1, SAM_OP_SIGN, SAM_FLAG_MORE, SAM_RECORD_PAYLOAD_MAX);
    recs[1] = rec_make(1, SAM_OP_SIGN, 0, 10); /* the control */
    ck_assert_int_eq(recv_records(recs, 2), SAM_OK);
}
END_TEST

START_TEST(t_bad_records)
{
    rec_t r;
    r = rec_make(1, SAM_OP_SIGN, 0, 0);
    r.n = SAM_HDR_LEN - 6; /* a header cut short */
    ck_assert_int_eq(recv_records(&r, 1), SAM_ERR_TRUNCATED);
    r = rec_make(1, SAM_OP_SIGN, 0, 10);
    r.b[15] = 11; /* the length field says more than the datagram holds */
    ck_assert_int_eq(recv_records(&r, 1), SAM_ERR_LENGTH);
    r = rec_make(1, SAM_OP_SIGN, 0, 10);
    r.b[15] = 9;
    ck_assert_int_eq(recv_records(&r, 1), SAM_ERR_LENGTH);
    r = rec_make(1, SAM_OP_SIGN, SAM_FLAG_MORE, 100); /* a record before the last not full */
    ck_assert_int_eq(recv_records(&r, 1), SAM_ERR_LENGTH);
    r = rec_make(1, SAM_OP_SIGN, 0, 10);
    r.b[0] = 'X';
    ck_assert_int_eq(recv_records(&r, 1), SAM_ERR_MAGIC);
    r = rec_make(1, SAM_OP_SIGN, 0, 10);
    r.b[2] = 2;
    ck_assert_int_eq(recv_records(&r, 1), SAM_ERR_VERSION);
    r = rec_make(1, 99, 0, 10);
    ck_assert_int_eq(recv_records(&r, 1), SAM_ERR_OP);
    r = rec_make(1, SAM_OP_SIGN, 0x0002, 10);
    ck_assert_int_eq(recv_records(&r, 1), SAM_ERR_FLAGS);
    r = rec_make(1, SAM_OP_SIGN, 0, 10);
    r.b[7] = 1;
    ck_assert_int_eq(recv_records(&r, 1), SAM_ERR_RESERVED);
}
END_TEST

/* A peer that stops half-way, or never sends: the deadline ends the wait with SAM_ERR_TIMEOUT. */
START_TEST(t_stalled_peer)
{
    int sv[2];
    pair(sv);
    sam_rbuf_t rb = {0};
    ck_assert_int_eq(sam_recv(sv[0], &rb, sam_now_ms() + 50), SAM_ERR_TIMEOUT);
    rec_t r = rec_make(1, SAM_OP_SIGN, SAM_FLAG_MORE, SAM_RECORD_PAYLOAD_MAX);
    ck_assert_int_eq(send(sv[1], r.b, r.n, MSG_NOSIGNAL), (ssize_t)r.n);
    free(r.b);
    ck_assert_int_eq(sam_recv(sv[0], &rb, sam_now_ms() + 100), SAM_ERR_TIMEOUT);
    ck_assert_uint_eq(rb.len, 0);
    sam_rbuf_free(&rb);
    unpair(sv);

    /* a peer that does not read: the sender's wait for room ends at the deadline too */
    pair(sv);
    sam_builder_t b;
    const uint8_t *msg;
    size_t len;
    ck_assert_int_eq(fuzz_sam_sample(SAM_OP_SIGN | SAM_OP_REPLY, FUZZ_SAM_MAX, 1, &b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_send(sv[1], msg, len, sam_now_ms() + 100), SAM_ERR_TIMEOUT);
    sam_build_free(&b);
    unpair(sv);
}
END_TEST

START_TEST(t_closed_peer)
{
    int sv[2];
    sam_rbuf_t rb = {0};
    pair(sv);
    close(sv[1]);
    ck_assert_int_eq(sam_recv(sv[0], &rb, SAM_FOREVER), SAM_ERR_CLOSED);
    close(sv[0]);
    /* gone in the middle of a message */
    pair(sv);
    rec_t r = rec_make(1, SAM_OP_SIGN, SAM_FLAG_MORE, SAM_RECORD_PAYLOAD_MAX);
    ck_assert_int_eq(send(sv[1], r.b, r.n, MSG_NOSIGNAL), (ssize_t)r.n);
    free(r.b);
    close(sv[1]);
    ck_assert_int_eq(sam_recv(sv[0], &rb, sam_now_ms() + 5000), SAM_ERR_CLOSED);
    /* and sending to a closed peer: an error, not SIGPIPE */
    sam_builder_t b;
    const uint8_t *msg;
    size_t len;
    ck_assert_int_eq(fuzz_sam_sample(SAM_OP_HELLO, FUZZ_SAM_MIN, 1, &b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_send(sv[0], msg, len, sam_now_ms() + 5000), SAM_ERR_CLOSED);
    sam_build_free(&b);
    close(sv[0]);
    ck_assert_int_eq(sam_recv(-1, &rb, SAM_FOREVER), SAM_ERR_IO);
    ck_assert_int_eq(sam_recv(0, NULL, SAM_FOREVER), SAM_ERR_INVAL);
    sam_rbuf_free(&rb);
}
END_TEST

START_TEST(t_peer_cred)
{
    int sv[2];
    pair(sv);
    sam_peer_t p;
    ck_assert_int_eq(sam_peer(sv[0], &p), SAM_OK);
    ck_assert_int_eq(p.pid, getpid());
    ck_assert_uint_eq(p.uid, getuid());
    ck_assert_uint_eq(p.gid, getgid());
    ck_assert_int_eq(sam_peer(sv[0], NULL), SAM_ERR_INVAL);
    unpair(sv);
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    ck_assert_int_eq(sam_peer(fd[0], &p), SAM_ERR_IO); /* not a socket */
    close(fd[0]);
    close(fd[1]);
}
END_TEST

TCase *sam_io_tcase(void)
{
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_small_messages);
    tcase_add_test(tc, t_spare_buffer);
    tcase_add_test(tc, t_multi_record);
    tcase_add_test(tc, t_oversize);
    tcase_add_test(tc, t_interleaved);
    tcase_add_test(tc, t_bad_records);
    tcase_add_test(tc, t_stalled_peer);
    tcase_add_test(tc, t_closed_peer);
    tcase_add_test(tc, t_peer_cred);
    return tc;
}
