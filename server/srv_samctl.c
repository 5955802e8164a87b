/*
 * srv_samctl.c - csc-server's side of csc-sam's process (srv.h: srv_sam_begin/srv_sam_end).
 *
 * sam_mode = spawn, the OpenSSH way: csc-server, once its configuration is read and before it has a thread, a
 * socket, a secret or its seccomp filter, forks a small supervisor process ("csc-sam-super"). The supervisor has no
 * secret and no network, runs no filter (it must fork, exec, signal and wait) but keeps csc-server's NO_NEW_PRIVS
 * and its disabled core dumps, and:
 *   - starts csc-sam (sam_program, else csc-sam beside csc-server's own executable, /proc/self/exe) with fork and
 *     exec, passing the configuration file and the write end of a pipe as descriptor 3 (-r 3); csc-sam writes one
 *     byte to it once it listens. End of file before that byte = csc-sam failed (its own message is on the shared
 *     stderr);
 *   - restarts a csc-sam that ended unasked after a backoff (200 ms, doubled up to 5 s, back to 200 ms once a child
 *     has lived 30 s), each restart logged;
 *   - stops it (SIGTERM, up to 10 s, then SIGKILL) when csc-server asks or dies, then exits.
 * csc-server and the supervisor talk through two pipes only: "ctl" (csc-server closes its end: stop; it writes 'H'
 * when it reloaded on SIGHUP: the supervisor sends csc-sam SIGHUP, csc-sam reloads what it holds) and "st" (the
 * supervisor writes one byte once the first csc-sam is ready; its end closing = the supervisor is done, or failed
 * before that byte). So csc-server, under its filter, never forks, execs, signals or waits.
 * Both children ask the kernel for SIGTERM when their parent dies (PR_SET_PDEATHSIG), and the supervisor also sees
 * end of file on ctl: a csc-server killed with SIGKILL leaves no supervisor and no csc-sam behind. The supervisor
 * has a process group of its own, so a terminal's Ctrl-C reaches csc-server only, which stops them in order.
 * sam_mode = connect: systemd runs csc-sam; csc-server only connects.
 * In both, csc-server asks HELLO at start and logs the answer. docs/architecture.md "Processes".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "sam_client.h"
#include "srv.h"
#include "srv_cov.h"

#define READY_WAIT_MS 60000   /* csc-sam opens the token and the database before it listens */
#define STOP_WAIT_MS 10000    /* SIGTERM, then this long, then SIGKILL */
#define END_WAIT_MS (STOP_WAIT_MS + 5000) /* csc-server's wait for the supervisor to be done */
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define STABLE_MS 30000       /* a child that lived this long resets the backoff */
#define SUPER_NAME "csc-sam-super"

struct srv_sam {
    const srv_config_t *cfg;
    char program[PATH_MAX];
    sam_client_t *client;
    pid_t super;              /* the supervisor (spawn), 0 none */
    int ctl_w, st_r;          /* csc-server's ends of the two pipes, -1 none */
};

/* The supervisor's state (its own process: no locks). */
typedef struct super {
    const srv_sam_t *s;
    int ctl_r, sig_fd;        /* ctl: end of file = stop; sig_fd: SIGCHLD, SIGTERM, SIGINT, SIGHUP */
    pid_t pid;                /* the running csc-sam, 0 none */
    int stopping;
    int pin_refused;          /* csc-sam exited SRV_EXIT_PIN_REFUSED: not started again (each start is a PIN try) */
} super_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void describe_status(int st, char *out, size_t sz)
{
    if (WIFEXITED(st))
        snprintf(out, sz, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, sz, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(out, sz, "ended (status 0x%x)", st);
}

/* Close every descriptor from 3 up but keep_a and keep_b (either may be -1). */
static void close_all_but(int keep_a, int keep_b)
{
    int lo = keep_a < keep_b ? keep_a : keep_b, hi = keep_a < keep_b ? keep_b : keep_a, from = 3;
    int keep[2] = {lo, hi};
    for (int i = 0; i < 2; i++) {
        if (keep[i] < from)
            continue;
        if (keep[i] > from)
            close_range((unsigned)from, (unsigned)keep[i] - 1, 0);
        from = keep[i] + 1;
    }
    close_range((unsigned)from, ~0u, 0);
}

/* csc-sam's process between fork and exec. The supervisor is single-threaded, so any call is safe here. */
__attribute__((noreturn)) static void child_exec(const srv_sam_t *s, int ready_w, pid_t parent)
{
    char *argv[] = {(char *)s->program, "-c", (char *)s->cfg->file, "-r", "3", NULL};
    sigset_t none;
    sigemptyset(&none);
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the supervisor blocks SIGTERM for its signalfd: csc-sam must not */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
        _exit(126); /* the supervisor is already gone */
    if (ready_w == 3 ? fcntl(3, F_SETFD, 0) != 0 : dup2(ready_w, 3) != 3)
        _exit(126);
    close_range(4, ~0u, 0); /* nothing else: not the supervisor's pipes to csc-server */
    execv(s->program, argv);
    fprintf(stderr, SUPER_NAME ": cannot execute csc-sam (%s): %s\n", s->program, strerror(errno));
    _exit(127);
}

/* Wait for pid to end within ms (SIGCHLD on sig_fd); its status, or -1 if it still runs. */
static int reap_within(super_t *u, pid_t pid, int ms)
{
    int64_t deadline = now_ms() + ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return 0; /* not our child any more: nothing to wait for */
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pf = {.fd = u->sig_fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(left < 100 ? left : 100)) > 0) {
            struct signalfd_siginfo si;
            if (read(u->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si) && si.ssi_signo != SIGCHLD)
                u->stopping = 1;
        }
    }
}

/* SIGTERM, STOP_WAIT_MS, SIGKILL; reaped. */
static void stop_child(super_t *u)
{
    if (u->pid <= 0)
        return;
    kill(u->pid, SIGTERM); /* our unreaped child: the pid cannot be someone else's */
    if (reap_within(u, u->pid, STOP_WAIT_MS) < 0) {
        fprintf(stderr, SUPER_NAME ": csc-sam (pid %d) did not stop within %d s: SIGKILL\n", (int)u->pid,
                STOP_WAIT_MS / 1000);
        kill(u->pid, SIGKILL);
        while (waitpid(u->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    u->pid = 0;
}

/* ctl readable: end of file (or an error) means csc-server asks to stop, or is gone. */
static void read_ctl(super_t *u)
{
    char b[16];
    ssize_t n = read(u->ctl_r, b, sizeof(b));
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        u->stopping = 1;
    if (n > 0 && memchr(b, 'H', (size_t)n) != NULL && u->pid > 0 && !u->stopping)
        kill(u->pid, SIGHUP); /* our unreaped child; a csc-sam restarted later reads the file at its start anyway */
}

/* Start csc-sam and wait until it listens (or stop is asked meanwhile: it is then stopped). Its pid, or -1 (said
 * why on stderr; the child is reaped). */
static pid_t spawn(super_t *u)
{
    const srv_sam_t *s = u->s;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, SUPER_NAME ": csc-sam: pipe: %s\n", strerror(errno));
        return -1;
    }
    pid_t parent = getpid(), pid = fork();
    if (pid == 0)
        child_exec(s, p[1], parent);
    close(p[1]);
    if (pid < 0) {
        fprintf(stderr, SUPER_NAME ": csc-sam: fork: %s\n", strerror(errno));
        close(p[0]);
        return -1;
    }
    char byte = 0;
    ssize_t n = -1;
    int64_t deadline = now_ms() + READY_WAIT_MS;
    while (n < 0) {
        struct pollfd pf[2] = {{.fd = p[0], .events = POLLIN}, {.fd = u->ctl_r, .events = POLLIN}};
        int64_t left = deadline - now_ms();
        int r = left > 0 ? poll(pf, u->stopping ? 1 : 2, (int)left) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (!u->stopping && pf[1].revents != 0)
            read_ctl(u); /* csc-server stops: let csc-sam come up, then stop it (it takes SIGTERM once serving) */
        if (pf[0].revents != 0)
            do
                n = read(p[0], &byte, 1);
            while (n < 0 && errno == EINTR);
    }
    close(p[0]);
    if (n == 1)
        return pid;
    if (n < 0)
        kill(pid, SIGKILL); /* not ready in time */
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    char how[96];
    describe_status(st, how, sizeof(how));
    if (WIFEXITED(st) && WEXITSTATUS(st) == SRV_EXIT_PIN_REFUSED)
        u->pin_refused = 1;
    if (n < 0)
        fprintf(stderr, SUPER_NAME ": csc-sam (%s) was not ready within %d s: killed\n", s->program,
                READY_WAIT_MS / 1000);
    else
        fprintf(stderr, SUPER_NAME ": csc-sam (%s) %s before it was ready\n", s->program, how);
    return -1;
}

/* Wait for csc-sam to end, restart it when it ended unasked; return when stopping (csc-sam stopped). */
static void supervise(super_t *u)
{
    unsigned backoff = BACKOFF_MIN_MS, restarts = 0;
    int said_pin = 0;
    int64_t started = now_ms(), next_start = 0;
    while (!u->stopping) {
        int wait = -1;
        if (u->pin_refused) {
            if (!said_pin) {
                fprintf(stderr, SUPER_NAME ": the token refused csc-sam's PIN: csc-sam is not started again, since "
                                "each start would try the PIN once more and could lock the token; correct "
                                "pkcs11_pin_file, then restart the service\n");
                said_pin = 1;
            }
        } else if (u->pid <= 0) {
            int64_t left = next_start - now_ms();
            if (left <= 0) {
                pid_t pid = spawn(u);
                if (pid < 0) {
                    next_start = now_ms() + backoff;
                    backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                    continue;
                }
                u->pid = pid;
                started = now_ms();
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                fprintf(stderr, SUPER_NAME ": csc-sam restarted (pid %d)\n", (int)pid);
                continue;
            }
            wait = (int)left;
        }
        struct pollfd pf[2] = {{.fd = u->ctl_r, .events = POLLIN}, {.fd = u->sig_fd, .events = POLLIN}};
        if (poll(pf, 2, wait) < 0)
            continue; /* EINTR */
        if (pf[0].revents != 0)
            read_ctl(u);
        if (pf[1].revents != 0) {
            struct signalfd_siginfo si;
            if (read(u->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si) && si.ssi_signo != SIGCHLD)
                u->stopping = 1;
        }
        int st = 0;
        if (u->pid > 0 && waitpid(u->pid, &st, WNOHANG) == u->pid) {
            char how[96];
            pid_t old = u->pid;
            u->pid = 0;
            describe_status(st, how, sizeof(how));
            if (now_ms() - started >= STABLE_MS)
                backoff = BACKOFF_MIN_MS;
            if (WIFEXITED(st) && WEXITSTATUS(st) == SRV_EXIT_PIN_REFUSED)
                u->pin_refused = 1;
            else if (!u->stopping)
                fprintf(stderr, SUPER_NAME ": csc-sam (pid %d) %s; restart %u in %u ms\n", (int)old, how,
                        ++restarts, backoff);
            next_start = now_ms() + backoff;
        }
    }
    stop_child(u);
}

/* The supervisor process: never returns. ctl_r: end of file = stop; st_w: one byte once csc-sam is ready. */
__attribute__((noreturn)) static void supervisor_main(const srv_sam_t *s, int ctl_r, int st_w, pid_t server)
{
    super_t u = {.s = s, .ctl_r = ctl_r, .sig_fd = -1};
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGCHLD);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN); /* st_w to a csc-server that is gone: EPIPE, not death */
    signal(SIGTTOU, SIG_IGN); /* a background process group writing to a terminal with tostop */
    (void)prctl(PR_SET_NAME, SUPER_NAME, 0, 0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != server)
        _exit(1); /* csc-server is already gone */
    (void)setpgid(0, 0);
    close_all_but(ctl_r, st_w); /* nothing of csc-server's but the two pipes */
    u.sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (u.sig_fd < 0) {
        fprintf(stderr, SUPER_NAME ": signalfd: %s\n", strerror(errno));
        _exit(1);
    }
    u.pid = spawn(&u);
    if (u.pid < 0)
        _exit(1); /* st_w closes without the byte: csc-server does not start */
    ssize_t n;
    do
        n = write(st_w, "R", 1);
    while (n < 0 && errno == EINTR);
    supervise(&u);
    SRV_COV_DUMP();
    _exit(0); /* st_w closes: csc-server knows the supervisor and its csc-sam are done */
}

/* sam_program, else csc-sam in the folder of csc-server's own executable. */
static int find_program(srv_sam_t *s)
{
    return srv_sam_program(s->cfg, "csc-server", s->program, sizeof(s->program));
}

/* Fork the supervisor and wait for its byte (csc-sam ready) or its end (csc-sam failed). Before csc-server has a
 * thread or its filter: csc-server may still wait for the supervisor here. 0 or -1 (said why). */
static int start_supervisor(srv_sam_t *s)
{
    int ctl[2], st[2];
    if (pipe2(ctl, O_CLOEXEC) != 0 || pipe2(st, O_CLOEXEC) != 0) {
        fprintf(stderr, "csc-server: csc-sam: pipe: %s\n", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t server = getpid(), pid = fork();
    if (pid == 0) {
        close(ctl[1]);
        close(st[0]);
        supervisor_main(s, ctl[0], st[1], server);
    }
    close(ctl[0]);
    close(st[1]);
    s->ctl_w = ctl[1];
    s->st_r = st[0];
    if (pid < 0) {
        fprintf(stderr, "csc-server: csc-sam supervisor: fork: %s\n", strerror(errno));
        return -1;
    }
    s->super = pid;
    char byte = 0;
    ssize_t n;
    do
        n = read(s->st_r, &byte, 1); /* the supervisor answers within READY_WAIT_MS */
    while (n < 0 && errno == EINTR);
    if (n == 1)
        return 0;
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    s->super = 0;
    return -1;
}

void srv_sam_hello(sam_client_t *client, const char *path, oauth_t *oauth)
{
    sam_hello_t h;
    int rc = sam_client_hello(client, &h);
    if (rc != SAM_OK)
        fprintf(stderr, "csc-server: csc-sam at %s does not answer HELLO: %s\n", path, sam_strerror(rc));
    else {
        /* HELLO's call filled the pool (csc-sam starts a thread per connection: all of them now, not after hours
         * of service); filling it again counts it. */
        unsigned open = sam_client_fill(client);
        fprintf(stderr, "csc-server: csc-sam ready: %s (protocol %u, token %s, storage %s, %u connections open)\n",
                h.identity, (unsigned)h.version, h.hsm_ready ? "logged in" : "UNAVAILABLE",
                h.storage_ready ? "open" : "UNAVAILABLE", open);
    }
    /* The pages' ticket key every node on this HSM shares: before the first page, as no thread serves one yet. */
    if (rc != SAM_OK || !h.has_ticket_key ||
        oauth_ticket_set_key(oauth, h.ticket_key, sizeof(h.ticket_key)) != OAUTH_OK)
        fprintf(stderr, "csc-server: WARNING: csc-sam gave no key for the sign-in pages' tickets: they are MACed "
                        "under a key of this process only (a page is refused by another node and after a restart)\n");
    OPENSSL_cleanse(&h, sizeof(h));
}

int srv_sam_begin(const srv_config_t *cfg, srv_sam_t **out)
{
    *out = NULL;
    srv_sam_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    s->cfg = cfg;
    s->ctl_w = s->st_r = -1;
    if (!cfg->sam_connect && (find_program(s) != 0 || start_supervisor(s) != 0)) {
        fprintf(stderr, "csc-server: the signature activation module did not start (sam_mode = spawn)\n");
        srv_sam_end(s);
        return -1;
    }
    if (sam_client_new(cfg->sam_socket, cfg->sam_connections, cfg->sam_timeout_ms, &s->client) != SAM_OK) {
        fprintf(stderr, "csc-server: sam_socket %s: cannot make the connection pool\n", cfg->sam_socket);
        srv_sam_end(s);
        return -1;
    }
    *out = s;
    return 0;
}

void srv_sam_reload(srv_sam_t *s)
{
    if (s == NULL || s->ctl_w < 0)
        return; /* sam_mode = connect: csc-sam is reloaded by its own unit */
    ssize_t n;
    do
        n = write(s->ctl_w, "H", 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        fprintf(stderr, "csc-server: cannot ask the csc-sam supervisor to reload csc-sam: %s\n", strerror(errno));
}

sam_client_t *srv_sam_client(srv_sam_t *s)
{
    return s->client;
}

/* Close ctl (stop) and wait until the supervisor's end of st closes (it stopped csc-sam and exited). No kill and no
 * wait: csc-server may run under its filter here. The supervisor is reaped by whoever reaps csc-server's orphans
 * once csc-server exits, which it does next. */
void srv_sam_end(srv_sam_t *s)
{
    if (s == NULL)
        return;
    if (s->ctl_w >= 0)
        close(s->ctl_w);
    if (s->st_r >= 0) {
        int64_t deadline = now_ms() + END_WAIT_MS;
        char b[16];
        for (;;) {
            struct pollfd pf = {.fd = s->st_r, .events = POLLIN};
            int64_t left = deadline - now_ms();
            int r = left > 0 ? poll(&pf, 1, (int)left) : 0;
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                fprintf(stderr, "csc-server: the csc-sam supervisor (pid %d) did not finish within %d s\n",
                        (int)s->super, END_WAIT_MS / 1000);
                break;
            }
            ssize_t n = read(s->st_r, b, sizeof(b));
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                break;
        }
        close(s->st_r);
    }
    sam_client_free(s->client);
    free(s);
}
