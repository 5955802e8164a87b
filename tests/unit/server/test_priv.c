/*
 * Unit tests of the process hardening (server/srv_priv.c). Every check runs in a child forked for it: a seccomp
 * filter, a switch of user and locked memory cannot be undone. The child reports "" or what went wrong through a
 * pipe. The switch of user needs root and the system user csc-server (scripts/deps creates it); without them those
 * tests say so and pass nothing off as checked.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <malloc.h>
#include "srv_priv.h"

#define TEST_USER "csc-server"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER 1
#else
#define SANITIZER 0
#endif

typedef void (*child_fn)(char *err, size_t sz);

/* The child's verdict: the first failure only. */
__attribute__((format(printf, 3, 4))) static void bad(char *err, size_t sz, const char *fmt, ...)
{
    if (err[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, sz, fmt, ap);
    va_end(ap);
}

/* What a child wrote to fd, into out (NUL-terminated), fd closed and the child reaped: its wait status. */
static int reap_child(pid_t pid, int fd, char *out, size_t osz)
{
    size_t n = 0;
    ssize_t r;
    while (n + 1 < osz && (r = read(fd, out + n, osz - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fd);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

/* Run fn in a child and fail the test with what it reports, or when it dies. */
static void run_child(child_fn fn)
{
    char out[512];
    size_t osz = sizeof(out);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char err[512] = "";
        close(p[0]);
        fn(err, sizeof(err));
        if (write(p[1], err, strlen(err)) < 0)
            _exit(2);
        _exit(0);
    }
    close(p[1]);
    int status = reap_child(pid, p[0], out, osz);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child died (status 0x%x): %s", status, out);
    ck_assert_msg(out[0] == '\0', "%s", out);
}

/* The number after "name:" in /proc/self/status, or -1. */
static long status_field(const char *name)
{
    char line[256];
    long v = -1;
    size_t n = strlen(name);
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

/* The hexadecimal number after "name:" in /proc/self/status (the capability sets), or ~0. */
static unsigned long long status_hex(const char *name)
{
    char line[256];
    unsigned long long v = ~0ull;
    size_t n = strlen(name);
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return v;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            v = strtoull(line + n + 1, NULL, 16);
    fclose(f);
    return v;
}

static void *thread_main(void *arg)
{
    *(int *)arg = 42;
    return NULL;
}

/* What every hardened process must still do after its filter: memory, files, threads, sockets, time, randomness. */
static void ordinary_work(srv_profile_t p, char *err, size_t sz)
{
    char path[] = "/tmp/test_priv.XXXXXX", buf[6] = "";
    unsigned char rnd[16];
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, "hello", 5) != 5 || pread(fd, buf, 5, 0) != 5 || strcmp(buf, "hello") != 0 ||
        fdatasync(fd) != 0 || close(fd) != 0 || unlink(path) != 0)
        bad(err, sz, "file work failed: %s", strerror(errno));
    void *big = malloc(8u << 20);
    if (big == NULL)
        bad(err, sz, "malloc of 8 MiB failed");
    else
        memset(big, 1, 8u << 20);
    free(big);
    pthread_t t;
    int seen = 0;
    if (pthread_create(&t, NULL, thread_main, &seen) != 0 || pthread_join(t, NULL) != 0 || seen != 42)
        bad(err, sz, "a thread could not be started");
    if (p == SRV_PROFILE_FRONT) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), u = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (s < 0 || u < 0)
            bad(err, sz, "socket(AF_INET/AF_UNIX) failed: %s", strerror(errno));
        close(s);
        close(u);
    } else {
        /* the SAM makes no socket: it accepts on the one it opened before the filter */
        errno = 0;
        if (socket(AF_INET, SOCK_STREAM, 0) != -1 || errno != EPERM)
            bad(err, sz, "SAM: socket(AF_INET): expected EPERM, got %s", strerror(errno));
    }
    int ep = epoll_create1(EPOLL_CLOEXEC), pp[2];
    if (ep < 0 || pipe2(pp, O_CLOEXEC) != 0)
        bad(err, sz, "epoll/pipe failed: %s", strerror(errno));
    else {
        close(pp[0]);
        close(pp[1]);
    }
    close(ep);
    struct timespec ts = {0, 1000};
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd) || clock_gettime(CLOCK_MONOTONIC, &ts) != 0 ||
        nanosleep(&(struct timespec){0, 1000}, NULL) != 0)
        bad(err, sz, "getrandom/clock/nanosleep failed: %s", strerror(errno));
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        bad(err, sz, "getrlimit failed: %s", strerror(errno));
}

/* Refused with EPERM: running programs, new processes, looking into other processes, undoing the hardening. */
static void refusals(char *err, size_t sz)
{
    char *const argv[] = {"/bin/true", NULL}, *const envp[] = {NULL};
    errno = 0;
    if (execve("/bin/true", argv, envp) != -1 || errno != EPERM)
        bad(err, sz, "execve: expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (syscall(SYS_execveat, AT_FDCWD, "/bin/true", argv, envp, 0) != -1 || errno != EPERM)
        bad(err, sz, "execveat: expected EPERM, got %s", strerror(errno));
    errno = 0;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid != -1 || errno != EPERM) {
        bad(err, sz, "fork: expected EPERM, got pid %d, %s", (int)pid, strerror(errno));
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
    char buf[8];
    struct iovec local = {buf, sizeof(buf)}, remote = {buf, sizeof(buf)};
    errno = 0;
    if (process_vm_readv(getppid(), &local, 1, &remote, 1, 0) != -1 || errno != EPERM)
        bad(err, sz, "process_vm_readv: expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (process_vm_writev(getpid(), &local, 1, &remote, 1, 0) != -1 || errno != EPERM)
        bad(err, sz, "process_vm_writev: expected EPERM, got %s", strerror(errno));
    /* LeakSanitizer stops the world at exit with ptrace from a helper; sanitizer builds allow ptrace for it. */
    errno = 0;
    if (!SANITIZER && (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != -1 || errno != EPERM))
        bad(err, sz, "ptrace: expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (!SANITIZER && (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != -1 || errno != EPERM))
        bad(err, sz, "prctl(PR_SET_DUMPABLE, 1): expected EPERM, got %s", strerror(errno));
    struct rlimit core = {RLIM_INFINITY, RLIM_INFINITY};
    errno = 0;
    if (setrlimit(RLIMIT_CORE, &core) != -1 || errno != EPERM)
        bad(err, sz, "setrlimit(RLIMIT_CORE): expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (socket(AF_PACKET, SOCK_RAW, 0) != -1 || errno != EPERM)
        bad(err, sz, "socket(AF_PACKET): expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (socket(AF_NETLINK, SOCK_RAW, 0) != -1 || errno != EPERM)
        bad(err, sz, "socket(AF_NETLINK): expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (unshare(0) != -1 || errno != EPERM)
        bad(err, sz, "unshare: expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (syscall(SYS_setuid, 0) != -1 || errno != EPERM)
        bad(err, sz, "setuid: expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (syscall(SYS_ioctl, 0, 0x5412 /* TIOCSTI */, "x") != -1 || errno != EPERM)
        bad(err, sz, "ioctl: expected EPERM, got %s", strerror(errno));
}

static void hardened_state(char *err, size_t sz)
{
    struct rlimit rl;
    if (status_field("Seccomp") != 2)
        bad(err, sz, "Seccomp is %ld, expected 2 (filter)", status_field("Seccomp"));
    if (status_field("NoNewPrivs") != 1)
        bad(err, sz, "NoNewPrivs is %ld, expected 1", status_field("NoNewPrivs"));
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
        bad(err, sz, "the process is dumpable");
    if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0 || rl.rlim_max != 0)
        bad(err, sz, "RLIMIT_CORE is not 0");
}

/* After a profile's filter: the hardened state, what must still work, what must be refused. */
static void filtered_checks(srv_profile_t p, char *err, size_t sz)
{
    hardened_state(err, sz);
    ordinary_work(p, err, sz);
    refusals(err, sz);
}

static void profile_child(srv_profile_t p, char *err, size_t sz)
{
    if (srv_priv_early() != 0 || srv_priv_seccomp(p) != 0)
        bad(err, sz, "hardening failed");
    else
        filtered_checks(p, err, sz);
}

static void front_child(char *err, size_t sz)
{
    profile_child(SRV_PROFILE_FRONT, err, sz);
}

static void sam_child(char *err, size_t sz)
{
    profile_child(SRV_PROFILE_SAM, err, sz);
}

START_TEST(t_front_profile)
{
    run_child(front_child);
}
END_TEST

START_TEST(t_sam_profile)
{
    run_child(sam_child);
}
END_TEST

/* The sender helper's profile (csc-sam's exec: OTP sender; its program inherits the filter): it may start a program
 * (fork, execve, pipes, wait, kill its group), the program a shell script's usual work, and a Unix socket; never a
 * network socket, a new namespace, ptrace or undoing the hardening. */
static void sender_child(char *err, size_t sz)
{
    char path[] = "/tmp/test_priv_sender.XXXXXX";
    if (srv_priv_early() != 0 || srv_priv_seccomp(SRV_PROFILE_SENDER) != 0) {
        bad(err, sz, "hardening failed");
        return;
    }
    hardened_state(err, sz);
    /* a program under the filter: /bin/sh with a pipe, external commands and a file of its own */
    int fd = mkstemp(path);
    if (fd < 0) {
        bad(err, sz, "mkstemp: %s", strerror(errno));
        return;
    }
    close(fd);
    char script[256];
    snprintf(script, sizeof(script),
             "echo code=123456 | cat > %s && test \"$(cat %s)\" = code=123456 && exit 7", path, path);
    char *const argv[] = {"/bin/sh", "-c", script, NULL}, *const envp[] = {"PATH=/usr/bin:/bin", NULL};
    pid_t pid = fork();
    if (pid == 0) {
        if (setpgid(0, 0) != 0)
            _exit(100);
        execve("/bin/sh", argv, envp);
        _exit(101);
    }
    int st = 0;
    if (pid < 0)
        bad(err, sz, "fork under the sender's filter: %s", strerror(errno));
    else if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
        bad(err, sz, "the program under the sender's filter did not do its work (status 0x%x)", st);
    if (pid > 0 && kill(-pid, SIGKILL) != 0 && errno != ESRCH)
        bad(err, sz, "kill of a process group: %s", strerror(errno));
    unlink(path);
    int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (u < 0)
        bad(err, sz, "socket(AF_UNIX) refused: %s", strerror(errno));
    close(u);
    /* The program reaches its gateway over TCP (and DNS over UDP): IPv4 and IPv6 stream and datagram sockets. */
    int fams[] = {AF_INET, AF_INET6}, types[] = {SOCK_STREAM, SOCK_DGRAM};
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < 2; j++) {
            int n = socket(fams[i], types[j] | SOCK_CLOEXEC, 0);
            if (n < 0)
                bad(err, sz, "sender: socket(family %d, type %d) refused: %s", fams[i], types[j], strerror(errno));
            else
                close(n);
        }
    /* Never raw packets (root could make them: the filter refuses first), packet sockets or netlink. */
    struct { int fam, type; } no[] = {{AF_INET, SOCK_RAW}, {AF_INET6, SOCK_RAW}, {AF_PACKET, SOCK_RAW},
                                      {AF_NETLINK, SOCK_RAW}, {AF_INET, SOCK_PACKET}};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        errno = 0;
        if (socket(no[i].fam, no[i].type, 0) != -1 || errno != EPERM)
            bad(err, sz, "sender: socket(family %d, type %d): expected EPERM, got %s", no[i].fam, no[i].type,
                strerror(errno));
    }
    errno = 0;
    if (syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, NULL, NULL, 0) != -1 || errno != EPERM)
        bad(err, sz, "sender: clone(CLONE_NEWUSER): expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (unshare(CLONE_NEWNET) != -1 || errno != EPERM)
        bad(err, sz, "sender: unshare: expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (!SANITIZER && (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != -1 || errno != EPERM))
        bad(err, sz, "sender: ptrace: expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (syscall(SYS_setuid, 0) != -1 || errno != EPERM)
        bad(err, sz, "sender: setuid: expected EPERM, got %s", strerror(errno));
    errno = 0;
    if (syscall(SYS_ioctl, 0, 0x5412 /* TIOCSTI */, "x") != -1 || errno != EPERM)
        bad(err, sz, "sender: ioctl(TIOCSTI): expected EPERM, got %s", strerror(errno));
    struct rlimit core = {RLIM_INFINITY, RLIM_INFINITY};
    errno = 0;
    if (setrlimit(RLIMIT_CORE, &core) != -1 || errno != EPERM)
        bad(err, sz, "sender: setrlimit(RLIMIT_CORE): expected EPERM, got %s", strerror(errno));
    char buf[8];
    struct iovec local = {buf, sizeof(buf)}, remote = {buf, sizeof(buf)};
    errno = 0;
    if (process_vm_readv(getppid(), &local, 1, &remote, 1, 0) != -1 || errno != EPERM)
        bad(err, sz, "sender: process_vm_readv: expected EPERM, got %s", strerror(errno));
}

START_TEST(t_sender_profile)
{
    run_child(sender_child);
}
END_TEST

/* A thread started before the filter gets it too (TSYNC): csc-server's storage writer and CRL watcher do. */
static volatile int go;
static void *late_exec(void *arg)
{
    while (!go)
        sched_yield();
    char *const argv[] = {"/bin/true", NULL}, *const envp[] = {NULL};
    errno = 0;
    *(int *)arg = execve("/bin/true", argv, envp) == -1 && errno == EPERM;
    return NULL;
}

static void tsync_child(char *err, size_t sz)
{
    pthread_t t;
    int refused = 0;
    if (pthread_create(&t, NULL, late_exec, &refused) != 0) {
        bad(err, sz, "no thread");
        return;
    }
    if (srv_priv_seccomp(SRV_PROFILE_FRONT) != 0)
        bad(err, sz, "srv_priv_seccomp failed");
    go = 1;
    pthread_join(t, NULL);
    if (!refused)
        bad(err, sz, "a thread started before the filter could still call execve");
}

START_TEST(t_filter_reaches_running_threads)
{
    run_child(tsync_child);
}
END_TEST

static void front_off_child(char *err, size_t sz)
{
    if (srv_priv_front("", 0) != 0)
        bad(err, sz, "srv_priv_front failed");
    if (status_field("Seccomp") != 0)
        bad(err, sz, "a filter was loaded with seccomp = no");
}

/* srv_priv_front: the front end always has its filter, whatever otp_sender is (an exec: sender runs from csc-sam's
 * helper, never from csc-server; it took no otp_sender any more), and the filter refuses execve; only seccomp = no
 * leaves it off. */
static void front_on_child(char *err, size_t sz)
{
    if (srv_priv_front("", 1) != 0)
        bad(err, sz, "srv_priv_front failed");
    if (status_field("Seccomp") != 2)
        bad(err, sz, "no filter with seccomp = yes");
    else
        refusals(err, sz);
}

START_TEST(t_front_config)
{
    run_child(front_off_child);
    run_child(front_on_child);
}
END_TEST

/* ---- switching user ---------------------------------------------------------------------------------------- */

static int have_test_user(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_priv: SKIPPED the switch of user: not running as root\n");
        return 0;
    }
    if (getpwnam(TEST_USER) == NULL) {
        fprintf(stderr, "test_priv: SKIPPED the switch of user: no user %s (scripts/deps creates it)\n", TEST_USER);
        return 0;
    }
    return 1;
}

static void drop_child(char *err, size_t sz)
{
    struct passwd *pw = getpwnam(TEST_USER);
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid, groups[64];
    if (srv_priv_drop("test", TEST_USER) != 0) {
        bad(err, sz, "srv_priv_drop failed");
        return;
    }
    uid_t r, e, s;
    gid_t gr, ge, gs;
    if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid)
        bad(err, sz, "uids are %u/%u/%u, expected %u", (unsigned)r, (unsigned)e, (unsigned)s, (unsigned)uid);
    if (getresgid(&gr, &ge, &gs) != 0 || gr != gid || ge != gid || gs != gid)
        bad(err, sz, "gids are %u/%u/%u, expected %u", (unsigned)gr, (unsigned)ge, (unsigned)gs, (unsigned)gid);
    int n = getgroups(64, groups);
    for (int i = 0; i < n; i++)
        if (groups[i] == 0)
            bad(err, sz, "still in group 0");
    if (setuid(0) == 0 || seteuid(0) == 0)
        bad(err, sz, "root could be regained");
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
        bad(err, sz, "dumpable after the switch");
    if (access("/etc/shadow", R_OK) == 0)
        bad(err, sz, "/etc/shadow is readable after the switch");
    /* once switched, another user is refused and the current one is fine */
    if (srv_priv_drop("test", "root") == 0)
        bad(err, sz, "switching to root was accepted");
    if (getpwnam("nobody") != NULL && srv_priv_drop("test", "nobody") == 0)
        bad(err, sz, "not root any more, switching to another user was accepted");
    if (srv_priv_drop("test", TEST_USER) != 0)
        bad(err, sz, "naming the current user (not root) was refused");
}

START_TEST(t_drop)
{
    if (!have_test_user())
        return;
    run_child(drop_child);
}
END_TEST

START_TEST(t_drop_refusals)
{
    /* no user, an unknown user, root: checked before anything changes, so the test process itself can ask */
    ck_assert_int_eq(srv_priv_drop("test", ""), 0);
    ck_assert_int_eq(srv_priv_drop("test", NULL), 0);
    ck_assert_int_eq(srv_priv_drop("test", "no-such-user-csc"), -1);
    ck_assert_int_eq(srv_priv_drop("test", "root"), -1);
    ck_assert_uint_eq(geteuid(), geteuid() == 0 ? 0u : getuid()); /* nothing changed */
}
END_TEST

/* ---- locked memory ----------------------------------------------------------------------------------------- */

static void mlock_child(char *err, size_t sz)
{
    if (srv_priv_mlock("test") != 0) {
        bad(err, sz, "srv_priv_mlock failed");
        return;
    }
    /* ASan answers mlockall itself (a no-op: it would lock the whole shadow memory) */
    if (!SANITIZER && status_field("VmLck") <= 0)
        bad(err, sz, "VmLck is %ld kB after mlockall", status_field("VmLck"));
    void *big = malloc(4u << 20); /* MCL_FUTURE with the raised limit: later allocations still work */
    if (big == NULL)
        bad(err, sz, "malloc after mlockall failed");
    free(big);
}

/* Allocate n bytes in blocks of 1-64 KiB, write them, free them all (the work of requests in flight). */
static void churn(size_t n)
{
    void *blocks[1024];
    size_t k = 0, total = 0;
    unsigned seed = 7;
    while (total < n && k < 1024) {
        size_t len = 1024 + (size_t)(rand_r(&seed) % (63 * 1024));
        if ((blocks[k] = malloc(len)) == NULL)
            break;
        volatile char *p = blocks[k++]; /* not a memset, which a compiler may drop before a free */
        for (size_t off = 0; off < len; off += 512)
            p[off] = 1;
        total += len;
    }
    while (k > 0)
        free(blocks[--k]);
}

static void *churn_main(void *arg)
{
    churn(*(size_t *)arg);
    return NULL;
}

/* Resident anonymous memory (RssAnon, kB: with mlockall's MCL_ONFAULT VmLck counts what is mapped, touched or not)
 * that churn in the main thread and in one other thread adds after a reserve of reserve bytes: each does half of what
 * its arena's share of the reserve is. */
static long churn_growth(size_t reserve, char *err, size_t sz)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t others = cpus <= 1 ? 0 : cpus > 64 ? 63 : (size_t)cpus - 1;
    size_t main_share = others == 0 ? (4u << 20) : (2u << 20), thread_share = others == 0 ? 0 : (2u << 20) / others;
    if (srv_priv_early() != 0 || srv_priv_mlock("test") != 0) {
        bad(err, sz, "srv_priv_early or srv_priv_mlock failed");
        return -1;
    }
    uint64_t used0, held0, used1, held1;
    srv_priv_heap_usage(&used0, &held0);
    long rss0 = status_field("RssAnon");
    if (srv_priv_heap_reserve(reserve) != 0) {
        bad(err, sz, "srv_priv_heap_reserve failed");
        return -1;
    }
    srv_priv_heap_usage(&used1, &held1);
    if (status_field("RssAnon") - rss0 < (long)(reserve >> 10) * 9 / 10) /* the pages are there, not only mapped */
        bad(err, sz, "RssAnon grew %ld kB with a reserve of %zu kB", status_field("RssAnon") - rss0, reserve >> 10);
    if (reserve > 0 && (held1 - held0 < reserve * 9 / 10 || used1 > used0 + (256u << 10)))
        bad(err, sz, "after a reserve of %zu bytes the heaps hold %llu more, %llu more in use", reserve,
            (unsigned long long)(held1 - held0), (unsigned long long)(used1 - used0));
    long before = status_field("RssAnon");
    churn(main_share / 2);
    pthread_t th;
    size_t n = thread_share / 2;
    if (n > 0 && pthread_create(&th, NULL, churn_main, &n) == 0)
        pthread_join(th, NULL);
    return status_field("RssAnon") - before;
}

static void heap_reserve_child(char *err, size_t sz)
{
    /* 4 MiB reserved: the work fits, and the locked memory stays (a thread's stack and glibc's bookkeeping aside) */
    long grew = churn_growth(4u << 20, err, sz);
    if (grew > 256)
        bad(err, sz, "RssAnon grew %ld kB under work that fits the reserve", grew);
}

static void heap_no_reserve_child(char *err, size_t sz)
{
    /* the same work without the reserve: the pages it touches are new, locked, and kept (what the soak saw) */
    long grew = churn_growth(0, err, sz);
    if (grew < 512)
        bad(err, sz, "RssAnon grew only %ld kB under the same work without a reserve", grew);
}

static void mlock_refused_child(char *err, size_t sz)
{
    struct rlimit tiny = {64 * 1024, 64 * 1024};
    if (geteuid() == 0 && srv_priv_drop("test", TEST_USER) != 0) {
        bad(err, sz, "srv_priv_drop failed");
        return;
    }
    if (setrlimit(RLIMIT_MEMLOCK, &tiny) != 0) {
        bad(err, sz, "setrlimit failed");
        return;
    }
    if (srv_priv_mlock("test") != -1)
        bad(err, sz, "mlockall over RLIMIT_MEMLOCK was not refused");
}

/* The mapping of /proc/self/maps that holds p: its bounds and name ("" for an anonymous one); 0, or -1 if none. */
static int mapping_of(const void *p, uintptr_t *lo, uintptr_t *hi, char *name, size_t name_sz)
{
    char line[512];
    int found = -1;
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    while (found != 0 && fgets(line, sizeof(line), f) != NULL) {
        unsigned long a, b;
        int off = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s%n", &a, &b, &off) < 2 || (uintptr_t)p < a || (uintptr_t)p >= b)
            continue;
        const char *nm = line + off;
        while (*nm == ' ')
            nm++;
        snprintf(name, name_sz, "%.*s", (int)strcspn(nm, "\n"), nm);
        *lo = a, *hi = b;
        found = 0;
    }
    fclose(f);
    return found;
}

/* csc-sam's allocator of OpenSSL's blocks, with malloc set as csc-sam sets it (srv_priv_mlock: blocks below 32 MiB
 * from the heaps). Before it, scrypt's working memory (1 MiB at the lowest cost) came from a heap that csc-sam locks
 * and never trims; each such block that landed at a new place stayed resident (bench/soak: csc-sam's memory grew
 * in 1 MiB steps). */
#define FAIL(...)                                                                                                  \
    do {                                                                                                           \
        bad(err, sz, __VA_ARGS__);                                                                                 \
        return;                                                                                                    \
    } while (0)

static void mapped_child(char *err, size_t sz)
{
    uintptr_t lo = 0, hi = 0;
    char name[256];
    if (srv_priv_openssl_mapped() != 0)
        FAIL("srv_priv_openssl_mapped refused in a fresh process");
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
    size_t big = SRV_PRIV_MAPPED_MIN + 3072; /* scrypt's at N = 2^10, r = 8, p = 1 */
    unsigned char *p = OPENSSL_malloc(big);
    if (p == NULL)
        FAIL("OPENSSL_malloc(%zu) failed", big);
    memset(p, 0xa5, big);
    if (mapping_of(p, &lo, &hi, name, sizeof(name)) != 0 || lo != (uintptr_t)p || name[0] != '\0' ||
        hi - lo != (big + 4095) / 4096 * 4096)
        FAIL("a block of %zu bytes is not a mapping of its own: %lx-%lx %s", big, (unsigned long)lo,
             (unsigned long)hi, name);
    if (srv_priv_mapped_live() != 1)
        FAIL("%u blocks mapped, not 1", srv_priv_mapped_live());
    /* Smaller, by realloc: a malloc block with the contents; the mapping is gone. */
    unsigned char *q = OPENSSL_realloc(p, 4096);
    if (q == NULL || q[0] != 0xa5 || q[4095] != 0xa5 || srv_priv_mapped_live() != 0 ||
        (mapping_of(p, &lo, &hi, name, sizeof(name)) == 0 && lo == (uintptr_t)p))
        FAIL("realloc to 4096 bytes: %p, %u mapped", (void *)q, srv_priv_mapped_live());
    /* Larger again: a mapping of its own, the contents kept. */
    p = OPENSSL_realloc(q, big);
    if (p == NULL || p[0] != 0xa5 || p[4095] != 0xa5 || srv_priv_mapped_live() != 1 ||
        mapping_of(p, &lo, &hi, name, sizeof(name)) != 0 || lo != (uintptr_t)p)
        FAIL("realloc to %zu bytes: not mapped", big);
    OPENSSL_free(p);
    /* Small blocks: malloc's, untouched. */
    char *s = OPENSSL_strdup("small");
    if (s == NULL || srv_priv_mapped_live() != 0 || malloc_usable_size(s) < 6)
        FAIL("a small block: %s", s ? s : "NULL");
    OPENSSL_free(s);
    /* More at once than there are slots: the rest from malloc, all freed alike. */
    void *many[SRV_PRIV_MAPPED_MAX + 2];
    for (unsigned i = 0; i < SRV_PRIV_MAPPED_MAX + 2; i++)
        if ((many[i] = OPENSSL_zalloc(big)) == NULL)
            FAIL("block %u of %zu bytes failed", i, big);
    if (srv_priv_mapped_live() != SRV_PRIV_MAPPED_MAX)
        FAIL("%u blocks mapped, not %u", srv_priv_mapped_live(), SRV_PRIV_MAPPED_MAX);
    for (unsigned i = 0; i < SRV_PRIV_MAPPED_MAX + 2; i++)
        OPENSSL_free(many[i]);
    if (srv_priv_mapped_live() != 0)
        FAIL("%u blocks still mapped after all were freed", srv_priv_mapped_live());
    /* scrypt through it (RFC 7914, section 12: N = 1024, r = 8, p = 16), its working memory mapped and gone. */
    static const unsigned char want[8] = {0xfd, 0xba, 0xbe, 0x1c, 0x9d, 0x34, 0x72, 0x00};
    unsigned char key[64];
    if (EVP_PBE_scrypt("password", 8, (const unsigned char *)"NaCl", 4, 1024, 8, 16, 0, key, sizeof(key)) != 1 ||
        memcmp(key, want, sizeof(want)) != 0 || srv_priv_mapped_live() != 0)
        FAIL("scrypt through the allocator: wrong key or %u blocks left", srv_priv_mapped_live());
}

#undef FAIL

START_TEST(t_openssl_mapped)
{
    run_child(mapped_child);
}
END_TEST

START_TEST(t_mlock)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_priv: SKIPPED mlockall with the limit raised: not running as root\n");
        return;
    }
    run_child(mlock_child);
}
END_TEST

START_TEST(t_heap_reserve)
{
    if (SANITIZER || geteuid() != 0) {
        fprintf(stderr, "test_priv: SKIPPED the heap reserve: %s\n",
                SANITIZER ? "ASan answers mlockall and malloc itself" : "not running as root");
        return;
    }
    run_child(heap_reserve_child);
    run_child(heap_no_reserve_child);
}
END_TEST

START_TEST(t_mlock_refused)
{
    if (SANITIZER) {
        fprintf(stderr, "test_priv: SKIPPED the refused mlockall: ASan answers mlockall itself\n");
        return;
    }
    if (geteuid() == 0 && !have_test_user())
        return;
    run_child(mlock_refused_child);
}
END_TEST

/* ---- csc-sam: srv_priv_sam ---------------------------------------------------------------------------------- */

static void sam_on_child(char *err, size_t sz)
{
    if (srv_priv_early() != 0 || srv_priv_sam("", 1, 0, SRV_P11NET_NONE) != 0)
        bad(err, sz, "srv_priv_sam failed");
    else
        filtered_checks(SRV_PROFILE_SAM, err, sz);
}

static void sam_off_child(char *err, size_t sz)
{
    if (srv_priv_sam("", 0, 0, SRV_P11NET_NONE) != 0)
        bad(err, sz, "srv_priv_sam failed");
    if (status_field("Seccomp") != 0)
        bad(err, sz, "a filter was loaded with seccomp = no");
}

START_TEST(t_sam_config)
{
    run_child(sam_on_child);
    run_child(sam_off_child);
}
END_TEST

/* pkcs11_sockets: with unix the SAM's module may connect to a Unix socket (p11-kit-client.so to p11-kit server), with
 * inet also open TCP/IPv4/IPv6 sockets; never a raw or netlink socket, and with none (the default) no socket at all. */
static void sam_net_child(srv_p11net_t net, char *err, size_t sz)
{
    if (srv_priv_early() != 0 || srv_priv_sam("", 1, 0, net) != 0) {
        bad(err, sz, "srv_priv_sam failed");
        return;
    }
    hardened_state(err, sz);
    refusals(err, sz);
    int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (net == SRV_P11NET_NONE) {
        if (u != -1 || errno != EPERM)
            bad(err, sz, "pkcs11_sockets none: socket(AF_UNIX): expected EPERM, got %s", u < 0 ? strerror(errno) : "a socket");
    } else {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", getenv("TEST_PRIV_LISTENER"));
        if (u < 0 || connect(u, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            bad(err, sz, "pkcs11_sockets %d: connect to a Unix socket refused: %s", (int)net, strerror(errno));
    }
    if (u >= 0)
        close(u);
    errno = 0;
    int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (net == SRV_P11NET_INET && s < 0)
        bad(err, sz, "pkcs11_sockets inet: socket(AF_INET6) refused: %s", strerror(errno));
    if (net != SRV_P11NET_INET && (s != -1 || errno != EPERM))
        bad(err, sz, "pkcs11_sockets %d: socket(AF_INET6): expected EPERM, got %s", (int)net,
            s < 0 ? strerror(errno) : "a socket");
    if (s >= 0)
        close(s);
}

static void sam_net_none(char *err, size_t sz)
{
    sam_net_child(SRV_P11NET_NONE, err, sz);
}
static void sam_net_unix(char *err, size_t sz)
{
    sam_net_child(SRV_P11NET_UNIX, err, sz);
}
static void sam_net_inet(char *err, size_t sz)
{
    sam_net_child(SRV_P11NET_INET, err, sz);
}

START_TEST(t_sam_pkcs11_sockets)
{
    char dir[] = "/tmp/test_priv_net.XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/l.sock", dir);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    ck_assert_int_ge(l, 0);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(l, 8), 0);
    ck_assert_int_eq(setenv("TEST_PRIV_LISTENER", path, 1), 0);
    ck_assert_int_eq(srv_priv_p11net("none"), SRV_P11NET_NONE);
    ck_assert_int_eq(srv_priv_p11net("unix"), SRV_P11NET_UNIX);
    ck_assert_int_eq(srv_priv_p11net("inet"), SRV_P11NET_INET);
    run_child(sam_net_none);
    run_child(sam_net_unix);
    run_child(sam_net_inet);
    close(l);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* The capability sets of this thread (data[0]: capabilities 0 to 31, data[1]: 32 to 63). */
static int caps(struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3])
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    return (int)syscall(SYS_capget, &hdr, data);
}

/* Root without CAP_SYS_RESOURCE (as in many containers) cannot raise RLIMIT_MEMLOCK's hard limit: csc-sam's locked
 * memory must still be able to grow after the switch to sam_user (it keeps CAP_IPC_LOCK, and nothing else). */
static void sam_drop_locked_child(char *err, size_t sz)
{
    struct passwd *pw = getpwnam(TEST_USER);
    uid_t uid = pw->pw_uid;
    struct rlimit small = {8u << 20, 8u << 20};
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    if (setrlimit(RLIMIT_MEMLOCK, &small) != 0 || caps(data) != 0) {
        bad(err, sz, "setrlimit/capget: %s", strerror(errno));
        return;
    }
    data[CAP_TO_INDEX(CAP_SYS_RESOURCE)].permitted &= ~CAP_TO_MASK(CAP_SYS_RESOURCE);
    data[CAP_TO_INDEX(CAP_SYS_RESOURCE)].effective &= ~CAP_TO_MASK(CAP_SYS_RESOURCE);
    if (syscall(SYS_capset, &hdr, data) != 0) {
        bad(err, sz, "capset: %s", strerror(errno));
        return;
    }
    if (srv_priv_early() != 0 || srv_priv_mlock("test") != 0 || srv_priv_sam(TEST_USER, 1, 1, SRV_P11NET_NONE) != 0) {
        bad(err, sz, "srv_priv_mlock/srv_priv_sam failed");
        return;
    }
    if (getuid() != uid || geteuid() != uid)
        bad(err, sz, "runs as uid %u, expected %u", (unsigned)geteuid(), (unsigned)uid);
    /* (capget is not on the SAM's list: /proc tells) */
    unsigned long long prm = status_hex("CapPrm"), eff = status_hex("CapEff");
    if (prm != 1ull << CAP_IPC_LOCK || eff != 1ull << CAP_IPC_LOCK)
        bad(err, sz, "capabilities are %llx/%llx, expected CAP_IPC_LOCK alone", prm, eff);
    size_t n = 64u << 20; /* 8 times the limit, locked as it is touched */
    char *big = malloc(n);
    if (big == NULL)
        bad(err, sz, "malloc of 64 MiB after the switch failed (locked memory over RLIMIT_MEMLOCK)");
    else
        memset(big, 1, n);
    if (!SANITIZER && status_field("VmLck") < (long)(n >> 10))
        bad(err, sz, "VmLck is %ld kB, expected at least %zu", status_field("VmLck"), n >> 10);
    free(big);
    hardened_state(err, sz);
    refusals(err, sz);
}

START_TEST(t_sam_drop_locked)
{
    if (!have_test_user())
        return;
    run_child(sam_drop_locked_child);
}
END_TEST

/* srv_priv_tcache. The probe (this binary run as "test_priv tcache-probe") counts how many of 16 freed blocks of one
 * small size its thread's cache kept: the others go to the arena's fast lists, which mallinfo2 counts (smblks). It
 * prints "COUNT GLIBC_TUNABLES COMM". */
#define PROBE_ARG "tcache-probe"
#define PROBE_SIZE 100

static void *tcache_probe_thread(void *res)
{
    free(malloc(4096)); /* the thread's cache is made at its first malloc; this block goes back to the top */
    struct mallinfo2 before = mallinfo2();
    void *p[16];
    for (size_t i = 0; i < 16; i++)
        p[i] = malloc(PROBE_SIZE);
    for (size_t i = 0; i < 16; i++)
        free(p[i]);
    struct mallinfo2 after = mallinfo2();
    /* smblks: the blocks on the arenas' fast lists, where a freed block of this size goes past the cache */
    *(size_t *)res = 16 - (after.smblks - before.smblks);
    return NULL;
}

/* In a thread of its own: a new thread gets a new arena (no M_ARENA_MAX here) whose free lists hold nothing yet,
 * where the main arena's, after the libraries' start-up, may serve a block from a list and so blur the count. */
static int tcache_probe(void)
{
    size_t cached = 0;
    pthread_t th;
    if (pthread_create(&th, NULL, tcache_probe_thread, &cached) != 0 || pthread_join(th, NULL) != 0)
        return 1;
    const char *t = getenv("GLIBC_TUNABLES");
    char comm[32] = "";
    FILE *f = fopen("/proc/self/comm", "r");
    if (f == NULL || fgets(comm, sizeof(comm), f) == NULL)
        return 1;
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    printf("%zu %s %s\n", cached, t != NULL ? t : "-", comm);
    return 0;
}

/* A child whose standard output is the pipe fds[1] and whose GLIBC_TUNABLES is tunables (NULL: unset), for a probe
 * it executes (glibc reads the variable when a process starts). Returns in both, as fork does. */
static pid_t probe_fork(const char *tunables, int fds[2])
{
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        if (tunables != NULL)
            setenv("GLIBC_TUNABLES", tunables, 1);
        else
            unsetenv("GLIBC_TUNABLES");
    }
    return pid;
}

/* In a child with GLIBC_TUNABLES = tunables (NULL: unset): srv_priv_tcache, and if it returns, the probe executed
 * as it is. What the probe printed goes to out; returns what srv_priv_tcache's exec did (1: the probe ran in the
 * image srv_priv_tcache executed; 0: srv_priv_tcache returned). */
static int tcache_run(const char *tunables, char *out, size_t n)
{
    int fds[2];
    pid_t pid = probe_fork(tunables, fds);
    if (pid == 0) {
        char *argv[] = {"test_priv", PROBE_ARG, NULL};
        srv_priv_tcache("test_priv", argv);
        fputs("returned ", stdout);
        fflush(stdout);
        srv_priv_exec_self(argv);
        _exit(127);
    }
    close(fds[1]);
    int status = reap_child(pid, fds[0], out, n);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "probe: status %d, printed '%s'", status, out);
    return strncmp(out, "returned ", 9) != 0;
}

/* "COUNT TUNABLES COMM" from the probe's output (after "returned " if srv_priv_tcache returned). */
static void tcache_check(const char *out, int exec, unsigned count, const char *tunables)
{
    const char *line = exec ? out : out + 9;
    unsigned got;
    char t[512], comm[32];
    ck_assert_msg(sscanf(line, "%u %511s %31s", &got, t, comm) == 3, "probe printed '%s'", out);
    ck_assert_str_eq(t, tunables);
    ck_assert_str_eq(comm, "test_priv"); /* the process keeps its name (ps, pidof, the journal) */
    if (!SANITIZER) /* ASan's allocator has no tcache and answers mallinfo2 itself */
        ck_assert_msg(got == count, "%u blocks cached, %u wanted (GLIBC_TUNABLES %s)", got, count, t);
}

START_TEST(t_tcache_value)
{
    char out[64];
    ck_assert_int_eq(srv_priv_tcache_value(NULL, out, sizeof(out)), 1);
    ck_assert_str_eq(out, "glibc.malloc.tcache_count=" SRV_PRIV_TCACHE_BLOCKS);
    ck_assert_int_eq(srv_priv_tcache_value("", out, sizeof(out)), 1);
    ck_assert_str_eq(out, "glibc.malloc.tcache_count=" SRV_PRIV_TCACHE_BLOCKS);
    ck_assert_int_eq(srv_priv_tcache_value("glibc.malloc.perturb=0", out, sizeof(out)), 1);
    ck_assert_str_eq(out, "glibc.malloc.perturb=0:glibc.malloc.tcache_count=" SRV_PRIV_TCACHE_BLOCKS);
    /* the operator's own count, wherever it stands, is kept */
    ck_assert_int_eq(srv_priv_tcache_value("glibc.malloc.tcache_count=7", out, sizeof(out)), 0);
    ck_assert_int_eq(srv_priv_tcache_value("glibc.malloc.perturb=0:glibc.malloc.tcache_count=0", out, sizeof(out)), 0);
    /* names that only contain it are other tunables */
    ck_assert_int_eq(srv_priv_tcache_value("glibc.malloc.tcache_counts=7", out, sizeof(out)), 1);
    ck_assert_int_eq(srv_priv_tcache_value("x.glibc.malloc.tcache_count=7", out, sizeof(out)), 1);
    ck_assert_str_eq(out, "x.glibc.malloc.tcache_count=7:glibc.malloc.tcache_count=" SRV_PRIV_TCACHE_BLOCKS);
    /* too long for out: -1, never a cut value */
    ck_assert_int_eq(srv_priv_tcache_value("glibc.malloc.perturb=0", out, 30), -1);
    ck_assert_int_eq(srv_priv_tcache_value(NULL, out, 10), -1);
}
END_TEST

START_TEST(t_tcache_exec)
{
    char out[512];
    /* unset: the process executes itself with the cache limited, and glibc keeps that many */
    ck_assert_int_eq(tcache_run(NULL, out, sizeof(out)), 1);
    tcache_check(out, 1, 2, "glibc.malloc.tcache_count=" SRV_PRIV_TCACHE_BLOCKS);
    /* an operator's other tunables stay */
    ck_assert_int_eq(tcache_run("glibc.malloc.perturb=0", out, sizeof(out)), 1);
    tcache_check(out, 1, 2, "glibc.malloc.perturb=0:glibc.malloc.tcache_count=" SRV_PRIV_TCACHE_BLOCKS);
    /* an operator's own count: no exec, and glibc keeps that many (7: its default, which the probe tells apart) */
    ck_assert_int_eq(tcache_run("glibc.malloc.tcache_count=7", out, sizeof(out)), 0);
    tcache_check(out, 0, 7, "glibc.malloc.tcache_count=7");
    ck_assert_int_eq(tcache_run("glibc.malloc.tcache_count=5", out, sizeof(out)), 0);
    tcache_check(out, 0, 5, "glibc.malloc.tcache_count=5");
}
END_TEST

/* srv_priv_arenas. The probe (this binary run as "test_priv arena-probe N") calls srv_priv_arenas(N), starts
 * ARENA_THREADS threads that each allocate while all of them are alive (a thread's first allocation gives it an arena:
 * a new one while there are fewer than the limit), and prints how many arenas malloc_info lists. */
#define ARENA_PROBE_ARG "arena-probe"
#define ARENA_THREADS 4

static pthread_barrier_t arena_all_in;
static void *volatile arena_block[ARENA_THREADS]; /* seen from outside: the compiler may not drop malloc and free */

static void *arena_probe_thread(void *slot)
{
    void *volatile *mine = slot;
    *mine = malloc(64);
    pthread_barrier_wait(&arena_all_in); /* every thread holds a block: none hands its arena on by ending */
    free(*mine);
    return NULL;
}

static int arena_probe(const char *n)
{
    srv_priv_arenas((unsigned)atoi(n));
    pthread_t th[ARENA_THREADS];
    if (pthread_barrier_init(&arena_all_in, NULL, ARENA_THREADS + 1) != 0)
        return 1;
    for (size_t i = 0; i < ARENA_THREADS; i++)
        if (pthread_create(&th[i], NULL, arena_probe_thread, (void *)&arena_block[i]) != 0)
            return 1;
    pthread_barrier_wait(&arena_all_in);
    char *xml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&xml, &len);
    if (f == NULL || malloc_info(0, f) != 0 || fclose(f) != 0)
        return 1;
    unsigned heaps = 0;
    for (const char *q = xml; (q = strstr(q, "<heap nr=")) != NULL; q++)
        heaps++;
    free(xml);
    for (size_t i = 0; i < ARENA_THREADS; i++)
        pthread_join(th[i], NULL);
    printf("%u\n", heaps);
    return 0;
}

/* The arenas the probe's process had, run with GLIBC_TUNABLES = tunables (NULL: unset) and srv_priv_arenas(n). */
static unsigned arena_run(const char *tunables, unsigned n)
{
    int fds[2];
    char out[64], arg[16];
    snprintf(arg, sizeof(arg), "%u", n);
    pid_t pid = probe_fork(tunables, fds);
    if (pid == 0) {
        char *argv[] = {"test_priv", ARENA_PROBE_ARG, arg, NULL};
        srv_priv_exec_self(argv);
        _exit(127);
    }
    close(fds[1]);
    int status = reap_child(pid, fds[0], out, sizeof(out));
    unsigned heaps = 0;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 && sscanf(out, "%u", &heaps) == 1,
                  "probe: status %d, printed '%s'", status, out);
    return heaps;
}

START_TEST(t_arenas)
{
    if (SANITIZER) /* ASan's allocator has no arenas of glibc's */
        return;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    /* csc-server's one: every thread shares the main arena */
    ck_assert_uint_eq(arena_run(NULL, SRV_PRIV_FRONT_ARENAS), 1);
    /* an operator's own count is kept: 3 arenas, though 1 was asked for */
    ck_assert_uint_eq(arena_run("glibc.malloc.perturb=0:glibc.malloc.arena_max=3", 1), 3);
    /* 0: one per CPU (csc-sam's), and the probe's threads make that many */
    unsigned want = cpus < 1 ? 1 : cpus > ARENA_THREADS + 1 ? ARENA_THREADS + 1 : (unsigned)cpus;
    ck_assert_uint_eq(arena_run(NULL, 0), want);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], PROBE_ARG) == 0)
        return tcache_probe();
    if (argc == 3 && strcmp(argv[1], ARENA_PROBE_ARG) == 0)
        return arena_probe(argv[2]);
    Suite *s = suite_create("priv");
    TCase *tc = tcase_create("priv");
    tcase_add_test(tc, t_front_profile);
    tcase_add_test(tc, t_arenas);
    tcase_add_test(tc, t_sam_profile);
    tcase_add_test(tc, t_sender_profile);
    tcase_add_test(tc, t_filter_reaches_running_threads);
    tcase_add_test(tc, t_front_config);
    tcase_add_test(tc, t_drop);
    tcase_add_test(tc, t_drop_refusals);
    tcase_add_test(tc, t_openssl_mapped);
    tcase_add_test(tc, t_mlock);
    tcase_add_test(tc, t_heap_reserve);
    tcase_add_test(tc, t_mlock_refused);
    tcase_add_test(tc, t_sam_config);
    tcase_add_test(tc, t_sam_pkcs11_sockets);
    tcase_add_test(tc, t_sam_drop_locked);
    tcase_add_test(tc, t_tcache_value);
    tcase_add_test(tc, t_tcache_exec);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
