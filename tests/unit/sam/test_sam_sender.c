/*
 * test_sam_sender.c - the exec: OTP sender's helper (sam/sam_sender.c): the request decoder's bounds and refusals,
 * the reply's, and the helper itself forked here (without its filter: tests/unit/server/test_priv.c checks the
 * filter) answering real deliveries through csc-sam's side (sam_sender_deliver): a delivered code, an exit status,
 * a program that hangs, one that cannot start, a malformed request, csc-sam's end closing while a program runs (the
 * helper and the program's group go), and a helper that died (the delivery fails, on_lost is called once).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sam_sender.h"
#include "test_sam.h"

/* ---- the request decoder ---------------------------------------------------------------------------------- */

/* A request by hand: magic, seq, timeout, then (length, bytes) for user, cred and code. */
static size_t hand(uint8_t *b, const char *magic, uint32_t seq, uint32_t timeout_ms, const char *user, size_t ulen,
                   const char *cred, size_t clen, const char *code, size_t dlen)
{
    size_t n = 0;
    memcpy(b, magic, 4);
    n = 4;
    uint32_t v[2] = {seq, timeout_ms};
    for (int i = 0; i < 2; i++) {
        b[n++] = (uint8_t)(v[i] >> 24);
        b[n++] = (uint8_t)(v[i] >> 16);
        b[n++] = (uint8_t)(v[i] >> 8);
        b[n++] = (uint8_t)v[i];
    }
    const char *f[3] = {user, cred, code};
    size_t l[3] = {ulen, clen, dlen};
    for (int i = 0; i < 3; i++) {
        b[n++] = (uint8_t)l[i];
        memcpy(b + n, f[i], l[i]);
        n += l[i];
    }
    return n;
}

START_TEST(t_req_roundtrip)
{
    sam_sender_req_t r = {.seq = 7, .timeout_ms = 2000}, d;
    uint8_t b[SAM_SENDER_REQ_MAX];
    snprintf(r.user, sizeof(r.user), "alice");
    snprintf(r.cred, sizeof(r.cred), "cred-1");
    snprintf(r.code, sizeof(r.code), "012345");
    size_t n = sam_sender_req_encode(&r, b);
    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(sam_sender_req_decode(b, n, &d), 0);
    ck_assert_uint_eq(d.seq, 7);
    ck_assert_uint_eq(d.timeout_ms, 2000);
    ck_assert_str_eq(d.user, "alice");
    ck_assert_str_eq(d.cred, "cred-1");
    ck_assert_str_eq(d.code, "012345");
    /* the largest challenge: names of SAM_SENDER_NAME_MAX bytes */
    memset(r.user, 'u', SAM_SENDER_NAME_MAX);
    memset(r.cred, 'c', SAM_SENDER_NAME_MAX);
    r.user[SAM_SENDER_NAME_MAX] = r.cred[SAM_SENDER_NAME_MAX] = '\0';
    r.timeout_ms = SAM_SENDER_TIMEOUT_MAX_MS;
    n = sam_sender_req_encode(&r, b);
    ck_assert_uint_eq(n, 12 + 3 + 2 * SAM_SENDER_NAME_MAX + SAM_SENDER_CODE_LEN);
    ck_assert_int_eq(sam_sender_req_decode(b, n, &d), 0);
    ck_assert_uint_eq(strlen(d.user), SAM_SENDER_NAME_MAX);
    /* an enrollment code (SND2): no credential, the contact and the expiry; the largest request of all */
    sam_sender_req_t e;
    memset(&e, 0, sizeof(e));
    e.seq = 9;
    e.timeout_ms = SAM_SENDER_TIMEOUT_MAX_MS;
    e.enroll = 1;
    memset(e.user, 'u', SAM_SENDER_NAME_MAX);
    snprintf(e.code, sizeof(e.code), "ABCD-EFGH-JKLM-NP23");
    memset(e.contact, 'k', SAM_SENDER_CONTACT_MAX);
    memset(e.expires, 'e', SAM_SENDER_EXPIRES_MAX);
    n = sam_sender_req_encode(&e, b);
    ck_assert_uint_eq(n, SAM_SENDER_REQ_MAX);
    ck_assert_int_eq(sam_sender_req_decode(b, n, &d), 0);
    ck_assert_uint_eq(d.enroll, 1);
    ck_assert_str_eq(d.code, "ABCD-EFGH-JKLM-NP23");
    ck_assert_uint_eq(strlen(d.contact), SAM_SENDER_CONTACT_MAX);
    ck_assert_str_eq(d.cred, "");
    snprintf(e.code, sizeof(e.code), "ABCD-EFGH-JKLM-NP2\n"); /* a line of its own: never */
    ck_assert_uint_eq(sam_sender_req_encode(&e, b), 0);
    snprintf(e.code, sizeof(e.code), "ABCD-EFGH-JKLM-NP23");
    snprintf(e.cred, sizeof(e.cred), "c"); /* an enrollment names no credential */
    ck_assert_uint_eq(sam_sender_req_encode(&e, b), 0);
    /* the encoder refuses what the decoder would */
    r.seq = 0;
    ck_assert_uint_eq(sam_sender_req_encode(&r, b), 0);
}
END_TEST

START_TEST(t_req_refusals)
{
    uint8_t b[512];
    sam_sender_req_t d;
    char long_name[SAM_SENDER_NAME_MAX + 1];
    memset(long_name, 'x', sizeof(long_name));
    size_t n = hand(b, "SND1", 1, 1000, "alice", 5, "c1", 2, "123456", 6);
    ck_assert_int_eq(sam_sender_req_decode(b, n, &d), 0);
    /* framing: truncated at every byte, a trailing byte, more than the maximum */
    for (size_t cut = 0; cut < n; cut++)
        ck_assert_msg(sam_sender_req_decode(b, cut, &d) == -1, "a request cut to %zu bytes was accepted", cut);
    b[n] = 0;
    ck_assert_int_eq(sam_sender_req_decode(b, n + 1, &d), -1);
    ck_assert_int_eq(sam_sender_req_decode(b, SAM_SENDER_REQ_MAX + 1, &d), -1);
    /* the magic, then each field's bounds */
#define REFUSED(...)                                                                                                \
    do {                                                                                                            \
        size_t len_ = hand(b, __VA_ARGS__);                                                                         \
        ck_assert_msg(sam_sender_req_decode(b, len_, &d) == -1, "accepted: %s", #__VA_ARGS__);                      \
        ck_assert_msg(d.user[0] == '\0' && d.code[0] == '\0', "a refused request left fields behind");             \
    } while (0)
    REFUSED("SND2", 1, 1000, "alice", 5, "c1", 2, "123456", 6);
    REFUSED("SND1", 0, 1000, "alice", 5, "c1", 2, "123456", 6);                           /* seq 0 is the ready message */
    REFUSED("SND1", 1, 0, "alice", 5, "c1", 2, "123456", 6);                              /* no time */
    REFUSED("SND1", 1, SAM_SENDER_TIMEOUT_MAX_MS + 1, "alice", 5, "c1", 2, "123456", 6);  /* too long */
    REFUSED("SND1", 1, 1000, "", 0, "c1", 2, "123456", 6);                                /* empty user */
    REFUSED("SND1", 1, 1000, long_name, sizeof(long_name), "c1", 2, "123456", 6);         /* 65 bytes */
    REFUSED("SND1", 1, 1000, "alice", 5, long_name, sizeof(long_name), "123456", 6);
    REFUSED("SND1", 1, 1000, "al\nice", 6, "c1", 2, "123456", 6);                         /* a line of its own */
    REFUSED("SND1", 1, 1000, "alice", 5, "c1\ncode=999999", 14, "123456", 6);
    REFUSED("SND1", 1, 1000, "al\0ce", 5, "c1", 2, "123456", 6);                          /* NUL */
    REFUSED("SND1", 1, 1000, "alice", 5, "c\x7f", 2, "123456", 6);                        /* DEL */
    REFUSED("SND1", 1, 1000, "alice", 5, "", 0, "123456", 6);                             /* empty credential */
    REFUSED("SND1", 1, 1000, "alice", 5, "c1", 2, "12345", 5);                            /* short code */
    REFUSED("SND1", 1, 1000, "alice", 5, "c1", 2, "1234567", 7);                          /* long code */
    REFUSED("SND1", 1, 1000, "alice", 5, "c1", 2, "12345a", 6);                           /* not digits */
    REFUSED("SND1", 1, 1000, "alice", 5, "c1", 2, "12\0" "456", 6);
#undef REFUSED
    /* a length byte that runs past the end */
    n = hand(b, "SND1", 1, 1000, "alice", 5, "c1", 2, "123456", 6);
    b[12] = 200;
    ck_assert_int_eq(sam_sender_req_decode(b, n, &d), -1);
}
END_TEST

START_TEST(t_reply)
{
    uint8_t b[SAM_SENDER_REPLY_LEN];
    uint32_t seq, result, detail;
    sam_sender_reply_encode(9, SAM_SENDER_EXIT, 3, b);
    ck_assert_int_eq(sam_sender_reply_decode(b, sizeof(b), &seq, &result, &detail), 0);
    ck_assert_uint_eq(seq, 9);
    ck_assert_uint_eq(result, SAM_SENDER_EXIT);
    ck_assert_uint_eq(detail, 3);
    ck_assert_int_eq(sam_sender_reply_decode(b, sizeof(b) - 1, &seq, &result, &detail), -1);
    sam_sender_reply_encode(9, SAM_SENDER_BAD_REQUEST + 1, 0, b);
    ck_assert_int_eq(sam_sender_reply_decode(b, sizeof(b), &seq, &result, &detail), -1);
    sam_sender_reply_encode(9, SAM_SENDER_OK, 0, b);
    b[0] = 'X';
    ck_assert_int_eq(sam_sender_reply_decode(b, sizeof(b), &seq, &result, &detail), -1);
}
END_TEST

/* ---- the helper, forked here --------------------------------------------------------------------------------- */

static char dir[64], prog[128];

/* The program: its stdin into DIR/out, its pid into DIR/pid; DIR/hang: waits for a child of its own (sleep, in its
 * process group; its pid into DIR/sleep); DIR/fail: exits 3. */
static void write_program(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_sam_sender.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(prog, sizeof(prog), "%s/send.sh", dir);
    FILE *f = fopen(prog, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "#!/bin/sh\ncat >> %s/out\necho $$ > %s/pid\n"
               "if test -e %s/hang; then sleep 30 & echo $! > %s/sleep; wait; fi\n"
               "test -e %s/fail && exit 3\nexit 0\n", dir, dir, dir, dir, dir);
    fclose(f);
    ck_assert_int_eq(chmod(prog, 0700), 0);
}

static void rm_dir(void)
{
    const char *names[] = {"out", "pid", "sleep", "hang", "fail", "send.sh"};
    char p[192];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void touch(const char *name)
{
    char p[192];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

static long read_number(const char *name)
{
    char p[192], buf[32] = "";
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return -1;
    long v = fgets(buf, sizeof(buf), f) != NULL ? strtol(buf, NULL, 10) : -1;
    fclose(f);
    return v;
}

/* The program (DIR/pid, the helper's child, reaped by it) is gone, and its own child (DIR/sleep, once the program
 * got that far) was killed with it: that one is an orphan, reparented to this process (a subreaper, set by the
 * test), which reaps it here. */
static void assert_program_killed(void)
{
    long pid = read_number("pid"), sleep_pid = read_number("sleep");
    ck_assert_int_gt(pid, 0);
    ck_assert_msg(kill((pid_t)pid, 0) == -1 && errno == ESRCH, "the program still runs");
    if (sleep_pid <= 0)
        return; /* killed before it started its child (a slow machine): nothing more to see */
    int st = 0;
    pid_t w = 0;
    for (int i = 0; i < 500 && (w = waitpid((pid_t)sleep_pid, &st, WNOHANG)) == 0; i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    ck_assert_msg(w == (pid_t)sleep_pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "what the program started was not killed with it (waitpid %d, status 0x%x)", (int)w, st);
}

static pid_t helper_pid;

/* Fork a helper running program; its end of the socketpair in *fd. */
static int start_helper(const char *program)
{
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    fflush(NULL);
    helper_pid = fork();
    ck_assert_int_ge(helper_pid, 0);
    if (helper_pid == 0) {
        close(sp[0]);
        signal(SIGPIPE, SIG_IGN);
        _exit(sam_sender_serve(sp[1], program) == 0 ? 0 : 1);
    }
    close(sp[1]);
    return sp[0];
}

/* The helper's exit status once it ended (within 10 s), or -1. */
static int helper_exit(void)
{
    int st = 0;
    for (int i = 0; i < 1000; i++) {
        pid_t w = waitpid(helper_pid, &st, WNOHANG);
        if (w == helper_pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return -1;
}

static int lost_calls;
static void on_lost(void *arg)
{
    (void)arg;
    lost_calls++;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(t_helper_delivers)
{
    char why[96], out[512] = "", p[192];
    sam_sender_t *s = NULL;
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    write_program();
    ck_assert_int_eq(sam_sender_new(start_helper(prog), 5000, on_lost, NULL, &s), 0);

    ck_assert_int_eq(sam_sender_deliver(s, 5, "alice", "cred-1", "123456", why, sizeof(why)), 0);
    snprintf(p, sizeof(p), "%s/out", dir);
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    fclose(f);
    out[n] = '\0';
    ck_assert_str_eq(out, "user=alice\ncredential=cred-1\nchannel=CHALLENGE\ncode=123456\n");

    touch("fail");
    ck_assert_int_eq(sam_sender_deliver(s, 5, "alice", "cred-1", "123456", why, sizeof(why)), -1);
    ck_assert_str_eq(why, "sender failed (exit status 3)");
    snprintf(p, sizeof(p), "%s/fail", dir);
    unlink(p);

    /* a program that hangs is killed at the timeout, with what it started */
    touch("hang");
    int64_t t0 = now_ms();
    ck_assert_int_eq(sam_sender_deliver(s, 1, "alice", "cred-1", "123456", why, sizeof(why)), -1);
    ck_assert_str_eq(why, "sender timed out");
    ck_assert_int_lt(now_ms() - t0, 5000);
    assert_program_killed();
    snprintf(p, sizeof(p), "%s/hang", dir);
    unlink(p);

    /* what the helper cannot pass on is refused on this side, nothing is sent */
    ck_assert_int_eq(sam_sender_deliver(s, 5, "alice\n", "cred-1", "123456", why, sizeof(why)), -1);
    ck_assert_str_eq(why, "sender refused the request");
    /* and the helper still serves */
    ck_assert_int_eq(sam_sender_deliver(s, 5, "bob", "cred-2", "654321", why, sizeof(why)), 0);
    ck_assert_int_eq(lost_calls, 0);

    /* an enrollment code (channel ENROLL): the contact and the expiry, no credential */
    snprintf(p, sizeof(p), "%s/out", dir);
    unlink(p);
    ck_assert_int_eq(sam_sender_deliver_enroll(s, 5, "carol", "carol@example.org", "ABCD-EFGH-JKLM-NP23",
                                               "2026-12-06T10:00:00Z", why, sizeof(why)),
                     0);
    f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    n = fread(out, 1, sizeof(out) - 1, f);
    fclose(f);
    out[n] = '\0';
    ck_assert_str_eq(out, "user=carol\ncredential=-\nchannel=ENROLL\ncode=ABCD-EFGH-JKLM-NP23\n"
                          "contact=carol@example.org\nexpires=2026-12-06T10:00:00Z\n");
    /* a contact that would add a line of its own is refused before anything is sent */
    ck_assert_int_eq(sam_sender_deliver_enroll(s, 5, "carol", "c@x\ncode=1", "ABCD-EFGH-JKLM-NP23",
                                               "2026-12-06T10:00:00Z", why, sizeof(why)),
                     -1);
    ck_assert_str_eq(why, "sender refused the request");

    sam_sender_free(s); /* the helper sees its end close and exits */
    ck_assert_int_eq(helper_exit(), 0);
    rm_dir();
}
END_TEST

START_TEST(t_helper_cannot_start)
{
    char why[96];
    sam_sender_t *s = NULL;
    ck_assert_int_eq(sam_sender_new(start_helper("/nonexistent/prog"), 5000, on_lost, NULL, &s), 0);
    ck_assert_int_eq(sam_sender_deliver(s, 5, "alice", "cred-1", "123456", why, sizeof(why)), -1);
    ck_assert_str_eq(why, "sender could not be started");
    sam_sender_free(s);
    ck_assert_int_eq(helper_exit(), 0);
    /* no helper at all (csc-sam without one): the delivery fails the same way */
    ck_assert_int_eq(sam_sender_deliver(NULL, 5, "alice", "cred-1", "123456", why, sizeof(why)), -1);
    ck_assert_str_eq(why, "sender could not be started");
}
END_TEST

/* Straight at the helper's socket: the ready message, then malformed requests answered BAD_REQUEST, nothing run. */
START_TEST(t_helper_malformed)
{
    uint8_t b[SAM_SENDER_REQ_MAX + 64], rep[SAM_SENDER_REPLY_LEN + 1];
    uint32_t seq, result, detail;
    write_program();
    int fd = start_helper(prog);
    ck_assert_int_eq(recv(fd, rep, sizeof(rep), 0), SAM_SENDER_REPLY_LEN);
    ck_assert_int_eq(sam_sender_reply_decode(rep, SAM_SENDER_REPLY_LEN, &seq, &result, &detail), 0);
    ck_assert_uint_eq(seq, 0);
    ck_assert_uint_eq(result, SAM_SENDER_OK);
    size_t n = hand(b, "SND1", 5, 1000, "al\nce", 5, "c1", 2, "123456", 6);
    ck_assert_int_eq(send(fd, b, n, 0), (ssize_t)n);
    ck_assert_int_eq(send(fd, "SND", 3, 0), 3);
    memset(b, 'A', sizeof(b)); /* longer than any request */
    ck_assert_int_eq(send(fd, b, sizeof(b), 0), (ssize_t)sizeof(b));
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(recv(fd, rep, sizeof(rep), 0), SAM_SENDER_REPLY_LEN);
        ck_assert_int_eq(sam_sender_reply_decode(rep, SAM_SENDER_REPLY_LEN, &seq, &result, &detail), 0);
        ck_assert_uint_eq(result, SAM_SENDER_BAD_REQUEST);
    }
    ck_assert_int_eq(read_number("pid"), -1); /* the program never ran */
    close(fd);
    ck_assert_int_eq(helper_exit(), 0);
    rm_dir();
}
END_TEST

/* csc-sam gone (its end closed) while a program runs: the helper kills the program's group and exits at once. */
START_TEST(t_helper_gone_with_sam)
{
    uint8_t b[SAM_SENDER_REQ_MAX];
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    write_program();
    touch("hang");
    int fd = start_helper(prog);
    uint8_t rep[SAM_SENDER_REPLY_LEN];
    ck_assert_int_eq(recv(fd, rep, sizeof(rep), 0), SAM_SENDER_REPLY_LEN);
    size_t n = hand(b, "SND1", 1, 60000, "alice", 5, "c1", 2, "123456", 6);
    ck_assert_int_eq(send(fd, b, n, 0), (ssize_t)n);
    long sleep_pid = -1; /* the program runs and started its own child */
    for (int i = 0; i < 1000 && (sleep_pid = read_number("sleep")) <= 0; i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    ck_assert_int_gt(sleep_pid, 0);
    int64_t t0 = now_ms();
    close(fd);
    ck_assert_int_eq(helper_exit(), 0);
    ck_assert_int_lt(now_ms() - t0, 5000);
    assert_program_killed();
    rm_dir();
}
END_TEST

/* The helper died: the delivery fails cleanly and on_lost is called, once; later deliveries fail at once. */
START_TEST(t_helper_lost)
{
    char why[96];
    sam_sender_t *s = NULL;
    lost_calls = 0;
    write_program();
    ck_assert_int_eq(sam_sender_new(start_helper(prog), 5000, on_lost, NULL, &s), 0);
    kill(helper_pid, SIGKILL);
    ck_assert_int_eq(helper_exit(), 128 + SIGKILL);
    ck_assert_int_eq(sam_sender_deliver(s, 5, "alice", "cred-1", "123456", why, sizeof(why)), -1);
    ck_assert_str_eq(why, "sender helper lost");
    ck_assert_int_eq(sam_sender_deliver(s, 5, "alice", "cred-1", "123456", why, sizeof(why)), -1);
    ck_assert_str_eq(why, "sender helper lost");
    ck_assert_int_eq(lost_calls, 1);
    sam_sender_free(s);
    /* a helper that never says it is ready is refused */
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    ck_assert_int_eq(send(sp[1], "nope", 4, 0), 4);
    ck_assert_int_eq(sam_sender_new(sp[0], 1000, on_lost, NULL, &s), -1);
    ck_assert_ptr_null(s);
    close(sp[1]);
    rm_dir();
}
END_TEST

TCase *sam_sender_tcase(void)
{
    TCase *tc = tcase_create("sender");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_req_roundtrip);
    tcase_add_test(tc, t_req_refusals);
    tcase_add_test(tc, t_reply);
    tcase_add_test(tc, t_helper_delivers);
    tcase_add_test(tc, t_helper_cannot_start);
    tcase_add_test(tc, t_helper_malformed);
    tcase_add_test(tc, t_helper_gone_with_sam);
    tcase_add_test(tc, t_helper_lost);
    return tc;
}
