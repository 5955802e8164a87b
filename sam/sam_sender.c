/*
 * sam_sender.c - the exec: OTP sender's helper process and csc-sam's side of it (sam_sender.h). The helper's
 * process is forked and hardened by server/srv_sam.c; the code here runs in it (sam_sender_serve) and in csc-sam's
 * connection threads (sam_sender_deliver).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "sam_int.h"
#include "sam_sender.h"

#define REPLY_GRACE_MS 2000 /* the helper's answer after the program was killed at the deadline */

/* ---- the messages --------------------------------------------------------------------------------------------- */

static int text_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return 0;
    return 1;
}

static int code_ok(const char *s, size_t n)
{
    if (n != SAM_SENDER_CODE_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* XXXX-XXXX-XXXX-XXXX: upper-case letters and digits in four groups */
static int enroll_code_ok(const char *s, size_t n)
{
    if (n != SAM_SENDER_ENROLL_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (i % 5 == 4 ? s[i] != '-' : !((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

static int req_ok(const sam_sender_req_t *r)
{
    if (r->seq == 0 || r->timeout_ms < 1 || r->timeout_ms > SAM_SENDER_TIMEOUT_MAX_MS ||
        !text_ok(r->user, strnlen(r->user, sizeof(r->user)), SAM_SENDER_NAME_MAX))
        return 0;
    if (r->enroll)
        return r->cred[0] == '\0' && enroll_code_ok(r->code, strnlen(r->code, sizeof(r->code))) &&
               text_ok(r->contact, strnlen(r->contact, sizeof(r->contact)), SAM_SENDER_CONTACT_MAX) &&
               text_ok(r->expires, strnlen(r->expires, sizeof(r->expires)), SAM_SENDER_EXPIRES_MAX);
    return text_ok(r->cred, strnlen(r->cred, sizeof(r->cred)), SAM_SENDER_NAME_MAX) &&
           code_ok(r->code, strnlen(r->code, sizeof(r->code))) && r->contact[0] == '\0' && r->expires[0] == '\0';
}

static uint8_t *put_text(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    *p++ = (uint8_t)n;
    memcpy(p, s, n);
    return p + n;
}

size_t sam_sender_req_encode(const sam_sender_req_t *r, uint8_t out[SAM_SENDER_REQ_MAX])
{
    if (!req_ok(r))
        return 0;
    memcpy(out, r->enroll ? "SND2" : "SND1", 4);
    sam_put_be32(out + 4, r->seq);
    sam_put_be32(out + 8, r->timeout_ms);
    uint8_t *p = put_text(out + 12, r->user);
    if (r->enroll) {
        p = put_text(p, r->code);
        p = put_text(p, r->contact);
        p = put_text(p, r->expires);
    } else {
        p = put_text(p, r->cred);
        p = put_text(p, r->code);
    }
    return (size_t)(p - out);
}

/* The length-prefixed field at *p (within end) into dst (NUL-terminated, at most max bytes). */
static int get_text(const uint8_t **p, const uint8_t *end, char *dst, size_t max)
{
    if (*p >= end)
        return -1;
    size_t n = **p;
    if (n > max || (size_t)(end - *p - 1) < n || memchr(*p + 1, '\0', n) != NULL)
        return -1;
    memcpy(dst, *p + 1, n);
    dst[n] = '\0';
    *p += 1 + n;
    return 0;
}

int sam_sender_req_decode(const uint8_t *p, size_t len, sam_sender_req_t *out)
{
    const uint8_t *end = p + len, *q = p + 12;
    memset(out, 0, sizeof(*out));
    if (len < 12 || len > SAM_SENDER_REQ_MAX || (memcmp(p, "SND1", 4) != 0 && memcmp(p, "SND2", 4) != 0))
        return -1;
    out->seq = sam_be32(p + 4);
    out->timeout_ms = sam_be32(p + 8);
    out->enroll = p[3] == '2';
    int bad = get_text(&q, end, out->user, SAM_SENDER_NAME_MAX) != 0;
    if (out->enroll)
        bad = bad || get_text(&q, end, out->code, SAM_SENDER_ENROLL_LEN) != 0 ||
              get_text(&q, end, out->contact, SAM_SENDER_CONTACT_MAX) != 0 ||
              get_text(&q, end, out->expires, SAM_SENDER_EXPIRES_MAX) != 0;
    else
        bad = bad || get_text(&q, end, out->cred, SAM_SENDER_NAME_MAX) != 0 ||
              get_text(&q, end, out->code, SAM_SENDER_CODE_LEN) != 0;
    if (bad || q != end || !req_ok(out)) {
        OPENSSL_cleanse(out, sizeof(*out));
        return -1;
    }
    return 0;
}

void sam_sender_reply_encode(uint32_t seq, uint32_t result, uint32_t detail, uint8_t out[SAM_SENDER_REPLY_LEN])
{
    memcpy(out, "SNDR", 4);
    sam_put_be32(out + 4, seq);
    sam_put_be32(out + 8, result);
    sam_put_be32(out + 12, detail);
}

int sam_sender_reply_decode(const uint8_t *p, size_t len, uint32_t *seq, uint32_t *result, uint32_t *detail)
{
    if (len != SAM_SENDER_REPLY_LEN || memcmp(p, "SNDR", 4) != 0 || sam_be32(p + 8) > SAM_SENDER_BAD_REQUEST)
        return -1;
    *seq = sam_be32(p + 4);
    *result = sam_be32(p + 8);
    *detail = sam_be32(p + 12);
    return 0;
}

/* One datagram into buf (cap bytes): its length, 0 at end of file, -1 on error or a datagram longer than cap. */
static ssize_t recv_one(int fd, uint8_t *buf, size_t cap)
{
    struct iovec iov = {buf, cap};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;
    do
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n > 0 && (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
        errno = EMSGSIZE;
        return -1;
    }
    return n;
}

static int send_one(int fd, const uint8_t *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;
    do
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? 0 : -1;
}

/* ---- the helper ----------------------------------------------------------------------------------------------- */

typedef struct run {
    uint32_t result, detail;
    int peer_gone; /* csc-sam's end closed while the program ran */
} run_t;

/* In the forked child, until execve: async-signal-safe calls only. fd 3 is the CLOEXEC pipe that tells the helper
 * why execve failed (nothing arrives when it succeeded). */
static void child(const char *program, int in, int devnull, int err_w)
{
    char *const argv[] = {(char *)program, NULL};
    char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", NULL};
    sigset_t none;
    int e;
    sigemptyset(&none);
    if (setpgid(0, 0) != 0 || dup2(in, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0 || dup2(err_w, 3) < 0 ||
        fcntl(3, F_SETFD, FD_CLOEXEC) != 0 || sigprocmask(SIG_SETMASK, &none, NULL) != 0 ||
        signal(SIGPIPE, SIG_DFL) == SIG_ERR)
        goto fail;
    close_range(4, ~0U, 0);
    execve(program, argv, envp);
fail:
    e = errno;
    (void)!write(3, &e, sizeof(e));
    _exit(127);
}

static void kill_wait(pid_t pid, int *status)
{
    kill(-pid, SIGKILL); /* its process group: what it started dies with it */
    kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
}

/* Run program with msg on its stdin; wait for it within timeout_ms while watching csc-sam's end (fd). */
static void run_program(int fd, const char *program, const char *msg, size_t len, uint32_t timeout_ms, run_t *out)
{
    int in[2] = {-1, -1}, err[2] = {-1, -1}, devnull = -1, pidfd = -1, status = 0, e = 0;
    pid_t pid = -1;
    memset(out, 0, sizeof(*out));
    out->result = SAM_SENDER_NOT_STARTED;
    if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0 || pipe2(in, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        out->detail = (uint32_t)errno;
        goto done;
    }
    pid = fork();
    if (pid == 0)
        child(program, in[0], devnull, err[1]);
    if (pid < 0 || (pidfd = pidfd_open(pid, 0)) < 0) {
        out->detail = (uint32_t)errno;
        if (pid > 0)
            kill_wait(pid, &status);
        goto done;
    }
    close(in[0]);
    close(err[1]);
    in[0] = err[1] = -1;
    /* A few dozen bytes: they fit in the pipe buffer, so this does not wait for the program. EPIPE (it exited without
     * reading; SIGPIPE is ignored here) shows in its exit status. */
    for (size_t off = 0; off < len;) {
        ssize_t w = write(in[1], msg + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(in[1]);
    in[1] = -1;
    int64_t deadline = sam_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - sam_now_ms();
        if (left <= 0) {
            kill_wait(pid, &status);
            out->result = SAM_SENDER_TIMEOUT;
            goto done;
        }
        struct pollfd p[2] = {{.fd = fd, .events = 0}, {.fd = pidfd, .events = POLLIN}};
        int n = poll(p, 2, (int)left);
        if (n < 0 && errno != EINTR) {
            kill_wait(pid, &status);
            out->detail = (uint32_t)errno;
            goto done;
        }
        if (n > 0 && (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) {
            kill_wait(pid, &status);
            out->peer_gone = 1;
            goto done;
        }
        if (n > 0 && (p[1].revents & POLLIN) != 0)
            break;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (read(err[0], &e, sizeof(e)) == (ssize_t)sizeof(e)) {
        out->detail = (uint32_t)e;
    } else if (WIFEXITED(status)) {
        out->result = WEXITSTATUS(status) == 0 ? SAM_SENDER_OK : SAM_SENDER_EXIT;
        out->detail = (uint32_t)WEXITSTATUS(status);
    } else {
        out->result = SAM_SENDER_SIGNAL;
        out->detail = WIFSIGNALED(status) ? (uint32_t)WTERMSIG(status) : 0;
    }
done:;
    int fds[] = {in[0], in[1], err[0], err[1], devnull, pidfd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

int sam_sender_serve(int fd, const char *program)
{
    uint8_t buf[SAM_SENDER_REQ_MAX + 1], rep[SAM_SENDER_REPLY_LEN];
    char msg[SAM_SENDER_REQ_MAX + 96];
    sam_sender_req_t req;
    int rc = -1;

    sam_sender_reply_encode(0, SAM_SENDER_OK, 0, rep);
    if (send_one(fd, rep, sizeof(rep)) != 0)
        return -1;
    for (;;) {
        ssize_t n = recv_one(fd, buf, sizeof(buf));
        if (n == 0) {
            rc = 0;
            break;
        }
        run_t r = {SAM_SENDER_BAD_REQUEST, 0, 0};
        uint32_t seq = n >= 8 ? sam_be32(buf + 4) : 0;
        if (n < 0 && errno != EMSGSIZE)
            break;
        if (n > 0 && sam_sender_req_decode(buf, (size_t)n, &req) == 0) {
            int len = req.enroll ? snprintf(msg, sizeof(msg),
                                            "user=%s\ncredential=-\nchannel=ENROLL\ncode=%s\ncontact=%s\nexpires=%s\n",
                                            req.user, req.code, req.contact, req.expires)
                                 : snprintf(msg, sizeof(msg), "user=%s\ncredential=%s\nchannel=CHALLENGE\ncode=%s\n",
                                            req.user, req.cred, req.code);
            run_program(fd, program, msg, (size_t)len, req.timeout_ms, &r);
        }
        OPENSSL_cleanse(buf, sizeof(buf));
        OPENSSL_cleanse(msg, sizeof(msg));
        OPENSSL_cleanse(&req, sizeof(req));
        if (r.peer_gone) {
            rc = 0;
            break;
        }
        sam_sender_reply_encode(seq, r.result, r.detail, rep);
        if (send_one(fd, rep, sizeof(rep)) != 0)
            break;
    }
    return rc;
}

/* ---- csc-sam's side ------------------------------------------------------------------------------------------- */

struct sam_sender {
    int fd;
    pthread_mutex_t mu; /* one delivery at a time */
    uint32_t seq;
    int lost;
    void (*on_lost)(void *);
    void *arg;
};

/* Wait until fd is readable or deadline (sam_now_ms) passes: 1 readable (or hung up), 0 time is up, -1 error. */
static int wait_readable(int fd, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - sam_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

int sam_sender_new(int fd, unsigned wait_ms, void (*on_lost)(void *), void *arg, sam_sender_t **out)
{
    uint8_t rep[SAM_SENDER_REPLY_LEN + 1];
    uint32_t seq = 1, result = 1, detail = 0;
    ssize_t n = -1;
    *out = NULL;
    if (wait_readable(fd, sam_now_ms() + wait_ms) == 1)
        n = recv_one(fd, rep, sizeof(rep));
    if (n < 0 || sam_sender_reply_decode(rep, (size_t)n, &seq, &result, &detail) != 0 || seq != 0 ||
        result != SAM_SENDER_OK) {
        fprintf(stderr, "csc-sam: the otp_sender helper did not start (see its message above)\n");
        close(fd);
        return -1;
    }
    sam_sender_t *s = calloc(1, sizeof(*s));
    if (s == NULL || pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        close(fd);
        return -1;
    }
    s->fd = fd;
    s->on_lost = on_lost;
    s->arg = arg;
    *out = s;
    return 0;
}

/* The exchange, under s->mu: 0 with the program's result, -1 the helper is gone or stuck (s->lost set). */
static int exchange(sam_sender_t *s, const sam_sender_req_t *req, int64_t deadline, uint32_t *result,
                    uint32_t *detail)
{
    uint8_t buf[SAM_SENDER_REQ_MAX];
    uint32_t seq = 0;
    size_t len = sam_sender_req_encode(req, buf);
    int rc = len > 0 ? send_one(s->fd, buf, len) : -1;
    OPENSSL_cleanse(buf, sizeof(buf));
    if (len == 0) {
        *result = SAM_SENDER_BAD_REQUEST;
        return 0;
    }
    if (rc == 0 && wait_readable(s->fd, deadline + REPLY_GRACE_MS) == 1) {
        ssize_t n = recv_one(s->fd, buf, SAM_SENDER_REPLY_LEN + 1);
        if (n > 0 && sam_sender_reply_decode(buf, (size_t)n, &seq, result, detail) == 0 && seq == req->seq)
            return 0;
    }
    s->lost = 1;
    return -1;
}

/* One delivery of req (user, cred or contact and expiry, code filled in; wiped here). */
static int deliver_req(sam_sender_t *s, unsigned timeout_s, sam_sender_req_t *req_in, char *why, size_t whysz)
{
    int64_t deadline = sam_now_ms() + (int64_t)timeout_s * 1000;
    uint32_t result = SAM_SENDER_NOT_STARTED, detail = 0;
    sam_sender_req_t req;
    struct timespec until;
    int rc, lost_now = 0;

    req = *req_in;
    OPENSSL_cleanse(req_in, sizeof(*req_in));
    snprintf(why, whysz, "sender could not be started");
    if (s == NULL) {
        OPENSSL_cleanse(&req, sizeof(req));
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_s;
    if ((rc = pthread_mutex_clocklock(&s->mu, CLOCK_MONOTONIC, &until)) != 0) {
        OPENSSL_cleanse(&req, sizeof(req));
        snprintf(why, whysz, rc == ETIMEDOUT ? "sender busy" : "sender could not be started");
        return -1;
    }
    int64_t left = deadline - sam_now_ms();
    if (s->lost || left <= 0) {
        pthread_mutex_unlock(&s->mu);
        OPENSSL_cleanse(&req, sizeof(req));
        snprintf(why, whysz, s->lost ? "sender helper lost" : "sender busy");
        return -1;
    }
    req.seq = ++s->seq == 0 ? ++s->seq : s->seq;
    req.timeout_ms = left > SAM_SENDER_TIMEOUT_MAX_MS ? SAM_SENDER_TIMEOUT_MAX_MS : (uint32_t)left;
    rc = exchange(s, &req, deadline, &result, &detail);
    OPENSSL_cleanse(&req, sizeof(req));
    lost_now = rc != 0;
    pthread_mutex_unlock(&s->mu);
    if (lost_now) {
        snprintf(why, whysz, "sender helper lost");
        if (s->on_lost != NULL)
            s->on_lost(s->arg);
        return -1;
    }
    switch (result) {
    case SAM_SENDER_OK:
        return 0;
    case SAM_SENDER_EXIT:
        snprintf(why, whysz, "sender failed (exit status %u)", (unsigned)detail);
        break;
    case SAM_SENDER_SIGNAL:
        snprintf(why, whysz, "sender failed (signal %u)", (unsigned)detail);
        break;
    case SAM_SENDER_TIMEOUT:
        snprintf(why, whysz, "sender timed out");
        break;
    case SAM_SENDER_BAD_REQUEST:
        snprintf(why, whysz, "sender refused the request");
        break;
    default:
        snprintf(why, whysz, "sender could not be started");
        break;
    }
    return -1;
}

int sam_sender_deliver(sam_sender_t *s, unsigned timeout_s, const char *user, const char *cred, const char *code,
                       char *why, size_t whysz)
{
    sam_sender_req_t req;
    if (strlen(user) > SAM_SENDER_NAME_MAX || strlen(cred) > SAM_SENDER_NAME_MAX || strlen(code) > SAM_SENDER_CODE_LEN) {
        snprintf(why, whysz, s == NULL ? "sender could not be started" : "sender refused the request");
        return -1;
    }
    memset(&req, 0, sizeof(req));
    snprintf(req.user, sizeof(req.user), "%s", user);
    snprintf(req.cred, sizeof(req.cred), "%s", cred);
    snprintf(req.code, sizeof(req.code), "%s", code);
    return deliver_req(s, timeout_s, &req, why, whysz);
}

int sam_sender_deliver_enroll(sam_sender_t *s, unsigned timeout_s, const char *user, const char *contact,
                              const char *code, const char *expires, char *why, size_t whysz)
{
    sam_sender_req_t req;
    if (strlen(user) > SAM_SENDER_NAME_MAX || strlen(contact) > SAM_SENDER_CONTACT_MAX ||
        strlen(code) > SAM_SENDER_ENROLL_LEN || strlen(expires) > SAM_SENDER_EXPIRES_MAX) {
        snprintf(why, whysz, s == NULL ? "sender could not be started" : "sender refused the request");
        return -1;
    }
    memset(&req, 0, sizeof(req));
    req.enroll = 1;
    snprintf(req.user, sizeof(req.user), "%s", user);
    snprintf(req.contact, sizeof(req.contact), "%s", contact);
    snprintf(req.code, sizeof(req.code), "%s", code);
    snprintf(req.expires, sizeof(req.expires), "%s", expires);
    return deliver_req(s, timeout_s, &req, why, whysz);
}

void sam_sender_free(sam_sender_t *s)
{
    if (s == NULL)
        return;
    close(s->fd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
