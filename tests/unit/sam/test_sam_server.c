/*
 * test_sam_server.c - csc-sam's socket (sam_server.c) and the front end's pool (sam_client.c) on a temporary socket
 * and database: HELLO, ops not offered, the socket file (mode, stale file, a second SAM), malformed and oversized
 * requests, the connection limit, refused peers (audited), a SAM that is down or restarted.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sam_client.h"
#include "sam_server.h"
#include "test_sam.h"

static char dir[32], sock[64], db[64];
static stor_env_t *env;

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/sam-srv-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(chmod(dir, 0755), 0); /* the setuid child of t_peer_other_uid reaches the socket */
    snprintf(sock, sizeof(sock), "%s/sam.sock", dir);
    snprintf(db, sizeof(db), "%s/db", dir);
    stor_config_t sc = {.location = db, .map_size = 16u << 20};
    ck_assert_int_eq(stor_open(&sc, &env), STOR_OK);
}

static void teardown(void)
{
    stor_close(env);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static sam_server_config_t config(void)
{
    sam_server_config_t c = {
        .path = sock,
        .mode = 0600,
        .gid = (gid_t)-1,
        .allowed_uid = getuid(),
        .max_connections = 2,
        .io_timeout_ms = 2000,
        .lock_wait_ms = 100,
        .identity = "test-sam",
        .stor = env,
        .hsm = NULL,
    };
    return c;
}

static sam_server_t *start(const sam_server_config_t *c)
{
    sam_server_t *s = NULL;
    char err[256] = "";
    ck_assert_msg(sam_server_open(c, &s, err, sizeof(err)) == 0, "sam_server_open: %s", err);
    ck_assert_int_eq(sam_server_start(s), 0);
    return s;
}

static sam_client_t *client(unsigned n)
{
    sam_client_t *c = NULL;
    ck_assert_int_eq(sam_client_new(sock, n, 60000, &c), SAM_OK);
    return c;
}

static int raw_connect(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* HELLO over fd with request id 7: SAM_OK and the reply in m (rb keeps it), or sam_recv's error. */
static int raw_hello(int fd, sam_rbuf_t *rb, sam_msg_t *m)
{
    raw_t r;
    raw_start(&r, SAM_OP_HELLO);
    r.b[8] = r.b[9] = r.b[10] = 0, r.b[11] = 7;
    raw_u32(&r, SAM_T_VERSION, 1);
    raw_done(&r);
    if (send(fd, r.b, r.n, MSG_NOSIGNAL) != (ssize_t)r.n)
        return SAM_ERR_CLOSED;
    int rc = sam_recv(fd, rb, sam_now_ms() + 10000);
    if (rc == SAM_OK)
        ck_assert_int_eq(sam_msg_decode(rb->buf, rb->len, m), SAM_OK);
    return rc;
}

/* The refusal in m: its code. */
static uint32_t refusal(const sam_msg_t *m)
{
    uint32_t code = 0;
    ck_assert_uint_eq(m->op, SAM_OP_REFUSED);
    ck_assert_int_eq(sam_get_u32(m, SAM_T_REFUSAL, &code), SAM_OK);
    return code;
}

static void hello_ok(sam_client_t *c)
{
    sam_hello_t h;
    int rc = sam_client_hello(c, &h);
    ck_assert_msg(rc == SAM_OK, "hello: %s", sam_strerror(rc));
    ck_assert_uint_eq(h.version, SAM_VERSION);
    ck_assert_str_eq(h.identity, "test-sam");
    ck_assert_int_eq(h.storage_ready, 1);
    ck_assert_int_eq(h.hsm_ready, 0); /* no token in this test: reported, not assumed */
}

START_TEST(t_hello_and_not_offered)
{
    sam_server_config_t cfg = config();
    sam_server_t *s = start(&cfg);
    struct stat st;
    ck_assert_int_eq(lstat(sock, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0600);

    sam_client_t *c = client(2);
    hello_ok(c);
    hello_ok(c); /* the same pooled connection again */

    /* An op this socket does not serve (an operator's): REFUSED NOT_OFFERED, and the connection stays usable. */
    sam_builder_t b;
    const uint8_t *msg;
    size_t len;
    sam_rbuf_t rb = {0};
    sam_msg_t m;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_AUDIT_HEAD, sam_client_next_id(c)), SAM_OK);
    sam_put_str(&b, SAM_T_SESSION, "x");
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(c, msg, len, &rb, &m), SAM_OK);
    ck_assert_uint_eq(refusal(&m), SAM_REFUSE_NOT_OFFERED);
    sam_build_free(&b);
    sam_rbuf_free(&rb);
    hello_ok(c);

    sam_client_free(c);
    sam_server_free(s);
    ck_assert_int_eq(access(sock, F_OK), -1); /* removed at stop */
}
END_TEST

START_TEST(t_socket_file)
{
    sam_server_config_t cfg = config();
    char err[256];
    sam_server_t *s = NULL, *s2 = NULL;

    /* A stale socket (a SAM that died) is replaced. */
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(fd);
    s = start(&cfg);
    sam_client_t *c = client(1);
    hello_ok(c);

    /* A second SAM on the same path waits for the lock, then gives up; the first serves on. */
    ck_assert_int_eq(sam_server_open(&cfg, &s2, err, sizeof(err)), -1);
    ck_assert_ptr_null(s2);
    ck_assert_msg(strstr(err, "another csc-sam") != NULL, "%s", err);
    hello_ok(c);
    sam_server_free(s);

    /* Anything but a socket at the path is not removed. */
    int f = open(sock, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(f, 0);
    close(f);
    ck_assert_int_eq(sam_server_open(&cfg, &s2, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "not a socket") != NULL, "%s", err);
    struct stat st;
    ck_assert_int_eq(lstat(sock, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    sam_client_free(c);
}
END_TEST

START_TEST(t_malformed)
{
    sam_server_config_t cfg = config();
    sam_server_t *s = start(&cfg);
    sam_rbuf_t rb = {0};
    sam_msg_t m;
    raw_t r;

    /* A field HELLO does not list: REFUSED BAD_MESSAGE with the request's id, then the connection is closed. */
    int fd = raw_connect();
    raw_start(&r, SAM_OP_HELLO);
    raw_u32(&r, SAM_T_VERSION, 1);
    raw_str(&r, SAM_T_TOKEN, "x");
    raw_done(&r);
    ck_assert_int_eq(send(fd, r.b, r.n, MSG_NOSIGNAL), (ssize_t)r.n);
    ck_assert_int_eq(sam_recv(fd, &rb, sam_now_ms() + 10000), SAM_OK);
    ck_assert_int_eq(sam_msg_decode(rb.buf, rb.len, &m), SAM_OK);
    ck_assert_uint_eq(m.id, 42);
    ck_assert_uint_eq(refusal(&m), SAM_REFUSE_BAD_MESSAGE);
    ck_assert_int_eq(sam_recv(fd, &rb, sam_now_ms() + 10000), SAM_ERR_CLOSED);
    close(fd);

    /* A reply sent as a request: refused the same way. */
    fd = raw_connect();
    raw_start(&r, SAM_OP_HELLO | SAM_OP_REPLY);
    raw_u32(&r, SAM_T_VERSION, 1);
    raw_str(&r, SAM_T_IDENTITY, "me");
    raw_u32(&r, SAM_T_HSM_STATE, 0);
    raw_u32(&r, SAM_T_STORAGE_STATE, 0);
    raw_done(&r);
    ck_assert_int_eq(send(fd, r.b, r.n, MSG_NOSIGNAL), (ssize_t)r.n);
    ck_assert_int_eq(sam_recv(fd, &rb, sam_now_ms() + 10000), SAM_OK);
    ck_assert_int_eq(sam_msg_decode(rb.buf, rb.len, &m), SAM_OK);
    ck_assert_uint_eq(refusal(&m), SAM_REFUSE_BAD_MESSAGE);
    close(fd);

    /* Framing errors: a datagram over SAM_RECORD_MAX, garbage, a header whose length lies: closed. */
    size_t big = SAM_RECORD_MAX + 1;
    uint8_t *junk = calloc(1, big);
    ck_assert_ptr_nonnull(junk);
    raw_start(&r, SAM_OP_HELLO);
    memcpy(junk, r.b, SAM_HDR_LEN);
    int sz = 1 << 21;
    for (int i = 0; i < 3; i++) {
        fd = raw_connect();
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
        size_t n = i == 0 ? big : i == 1 ? 40 : SAM_HDR_LEN + 2;
        if (i == 1)
            memset(junk, 0x5a, 40);
        ck_assert_int_eq(send(fd, junk, n, MSG_NOSIGNAL), (ssize_t)n);
        ck_assert_int_eq(sam_recv(fd, &rb, sam_now_ms() + 10000), SAM_ERR_CLOSED);
        close(fd);
    }
    free(junk);

    /* The SAM serves on. */
    sam_client_t *c = client(1);
    hello_ok(c);
    sam_client_free(c);
    sam_rbuf_free(&rb);
    sam_server_free(s);
}
END_TEST

/* Wait (bounded) until the server serves n connections. */
static void await_connections(sam_server_t *s, unsigned n)
{
    int64_t deadline = sam_now_ms() + 10000;
    while (sam_server_connections(s) != n && sam_now_ms() < deadline)
        poll(NULL, 0, 10);
    ck_assert_uint_eq(sam_server_connections(s), n);
}

/* The whole pool is connected once the SAM answers (csc-sam starts each connection's thread then, not hours later),
 * and again when it comes back: sam_client_fill replaces the connections it ended. With no SAM listening nothing is
 * connected and the calls still connect on their own. */
START_TEST(t_pool_filled)
{
    sam_client_t *c = client(2);
    ck_assert_uint_eq(sam_client_fill(c), 0); /* nobody listens yet */
    ck_assert_uint_eq(sam_client_fill(NULL), 0);

    sam_server_config_t cfg = config(); /* max_connections 2 */
    sam_server_t *s = start(&cfg);
    hello_ok(c); /* one call, and its connection was new: the other slot is connected too */
    await_connections(s, 2);
    ck_assert_uint_eq(sam_client_fill(c), 2); /* nothing left to connect */
    await_connections(s, 2);

    sam_server_free(s); /* the SAM goes away; another comes */
    s = start(&cfg);
    ck_assert_uint_eq(sam_client_fill(c), 2); /* both dead connections replaced */
    await_connections(s, 2);
    hello_ok(c);
    hello_ok(c);
    await_connections(s, 2); /* the calls used the pool's connections */
    sam_client_free(c);
    await_connections(s, 0);
    sam_server_free(s);
}
END_TEST

START_TEST(t_connection_limit)
{
    sam_server_config_t cfg = config(); /* max_connections 2 */
    sam_server_t *s = start(&cfg);
    sam_rbuf_t rb = {0};
    sam_msg_t m;
    int fd[3];

    for (int i = 0; i < 2; i++) {
        fd[i] = raw_connect();
        ck_assert_int_eq(raw_hello(fd[i], &rb, &m), SAM_OK);
        ck_assert_uint_eq(m.op, SAM_OP_HELLO | SAM_OP_REPLY);
    }
    await_connections(s, 2);
    /* The third: REFUSED FULL (request id 0: no request was read), then closed. */
    fd[2] = raw_connect();
    int rc = raw_hello(fd[2], &rb, &m);
    if (rc == SAM_OK) {
        ck_assert_uint_eq(m.id, 0);
        ck_assert_uint_eq(refusal(&m), SAM_REFUSE_FULL);
        rc = sam_recv(fd[2], &rb, sam_now_ms() + 10000);
    }
    ck_assert_int_eq(rc, SAM_ERR_CLOSED);
    close(fd[2]);
    /* The pool of a front end sees the SAM unavailable, not a timeout. */
    sam_client_t *c = client(1);
    sam_hello_t h;
    ck_assert_int_eq(sam_client_hello(c, &h), SAM_ERR_UNAVAILABLE);
    /* One ends: room again. The two served connections were never disturbed. */
    close(fd[0]);
    await_connections(s, 1);
    hello_ok(c);
    ck_assert_int_eq(raw_hello(fd[1], &rb, &m), SAM_OK);
    ck_assert_uint_eq(m.op, SAM_OP_HELLO | SAM_OP_REPLY);
    close(fd[1]);
    sam_client_free(c);
    sam_rbuf_free(&rb);
    sam_server_free(s);
}
END_TEST

typedef struct found {
    unsigned n;
    char detail[256];
} found_t;

static int find_sam_event(const stor_audit_t *rec, void *arg)
{
    found_t *f = arg;
    if (rec->event == STOR_EV_SAM && rec->result == STOR_RES_DENIED) {
        f->n++;
        snprintf(f->detail, sizeof(f->detail), "%s", rec->detail);
    }
    return 0;
}

/* A peer of another uid: without root, a SAM that allows another uid than ours. */
START_TEST(t_peer_refused)
{
    sam_server_config_t cfg = config();
    cfg.allowed_uid = getuid() + 1;
    sam_server_t *s = start(&cfg);
    sam_rbuf_t rb = {0};
    sam_msg_t m;

    int fd = raw_connect();
    int rc = raw_hello(fd, &rb, &m);
    if (rc == SAM_OK) {
        ck_assert_uint_eq(m.id, 0);
        ck_assert_uint_eq(refusal(&m), SAM_REFUSE_UNAUTHORIZED);
        rc = sam_recv(fd, &rb, sam_now_ms() + 10000);
    }
    ck_assert_int_eq(rc, SAM_ERR_CLOSED);
    close(fd);
    sam_client_t *c = client(1);
    sam_hello_t h;
    ck_assert_int_eq(sam_client_hello(c, &h), SAM_ERR_UNAVAILABLE);
    sam_client_free(c);
    sam_server_free(s); /* the audit records of refused peers are written before the connection closes */

    found_t f = {0};
    ck_assert_int_eq(stor_audit_each(env, 1, find_sam_event, &f), STOR_OK);
    ck_assert_uint_eq(f.n, 2);
    char want[64];
    snprintf(want, sizeof(want), "action=peer.refused uid=%u ", (unsigned)getuid());
    ck_assert_msg(strncmp(f.detail, want, strlen(want)) == 0, "%s", f.detail);
    sam_rbuf_free(&rb);
}
END_TEST

/* As root: a child that setuid()s to nobody and connects is refused and audited; root's own client is served. */
START_TEST(t_peer_other_uid)
{
    if (getuid() != 0) {
        fprintf(stderr, "t_peer_other_uid: SKIPPED (needs root to setuid a child; t_peer_refused covers the rest)\n");
        return;
    }
    struct passwd *pw = getpwnam("nobody");
    uid_t nobody = pw != NULL ? pw->pw_uid : 65534;
    gid_t nogroup = pw != NULL ? pw->pw_gid : 65534;
    sam_server_config_t cfg = config(); /* allowed: uid 0 */
    sam_server_t *s = start(&cfg);
    ck_assert_int_eq(chmod(sock, 0666), 0); /* let nobody reach the SO_PEERCRED check */

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(nogroup) != 0 || setuid(nobody) != 0)
            _exit(10);
        sam_rbuf_t rb = {0};
        sam_msg_t m;
        int fd = raw_connect();
        int rc = raw_hello(fd, &rb, &m);
        if (rc == SAM_OK && (m.op != SAM_OP_REFUSED || m.id != 0))
            _exit(11); /* served: the check failed */
        if (rc == SAM_OK)
            rc = sam_recv(fd, &rb, sam_now_ms() + 10000);
        _exit(rc == SAM_ERR_CLOSED ? 0 : 12);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
    sam_client_t *c = client(1);
    hello_ok(c);
    sam_client_free(c);
    sam_server_free(s);

    found_t f = {0};
    ck_assert_int_eq(stor_audit_each(env, 1, find_sam_event, &f), STOR_OK);
    ck_assert_uint_eq(f.n, 1);
    char want[64];
    snprintf(want, sizeof(want), "action=peer.refused uid=%u ", (unsigned)nobody);
    ck_assert_msg(strncmp(f.detail, want, strlen(want)) == 0, "%s", f.detail);
}
END_TEST

/* The pool: SAM_ERR_UNAVAILABLE at once while no SAM listens; connected again when one does, also after the SAM it
 * was connected to went away (its idle connection is dead). */
START_TEST(t_client_reconnects)
{
    sam_server_config_t cfg = config();
    sam_client_t *c = client(2);
    sam_hello_t h;
    ck_assert_int_eq(sam_client_hello(c, &h), SAM_ERR_UNAVAILABLE);
    sam_server_t *s = start(&cfg);
    hello_ok(c);
    sam_server_free(s);
    ck_assert_int_eq(sam_client_hello(c, &h), SAM_ERR_UNAVAILABLE);
    s = start(&cfg);
    hello_ok(c);
    sam_server_free(s);
    s = start(&cfg);
    hello_ok(c); /* the pooled connection to the previous SAM is replaced on the way */
    sam_server_free(s);
    sam_client_free(c);

    ck_assert_int_eq(sam_client_new("", 1, 1000, &c), SAM_ERR_INVAL);
    ck_assert_int_eq(sam_client_new(sock, 0, 1000, &c), SAM_ERR_INVAL);
    ck_assert_int_eq(sam_client_new(sock, 1, 0, &c), SAM_ERR_INVAL);
}
END_TEST

TCase *sam_server_tcase(void)
{
    TCase *tc = tcase_create("server");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_hello_and_not_offered);
    tcase_add_test(tc, t_socket_file);
    tcase_add_test(tc, t_malformed);
    tcase_add_test(tc, t_connection_limit);
    tcase_add_test(tc, t_pool_filled);
    tcase_add_test(tc, t_peer_refused);
    tcase_add_test(tc, t_peer_other_uid);
    tcase_add_test(tc, t_client_reconnects);
    return tc;
}
