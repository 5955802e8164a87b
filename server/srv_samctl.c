/*
 * srv_samctl.c - csc-server's side of csc-sam's process (srv.h: srv_sam_begin/srv_sam_end).
 *
 * sam_mode = spawn: csc-server forks and execs csc-sam (sam_program, else csc-sam beside csc-server's own executable,
 * /proc/self/exe) before it opens any socket, passing the configuration file and the write end of a pipe as
 * descriptor 3 (-r 3); csc-sam writes one byte to it once it listens. End of file before that byte = csc-sam
 * failed (its own message is on the shared stderr) and csc-server does not start. A supervisor thread waits for
 * the child; when it dies unasked it is started again after a backoff (200 ms, doubled up to 5 s, back to 200 ms
 * once a child has lived 30 s), each restart logged. srv_sam_end sends SIGTERM, waits up to 10 s, then SIGKILL.
 * The child asks the kernel for SIGTERM when csc-server dies (PR_SET_PDEATHSIG), so a killed csc-server leaves no
 * csc-sam behind.
 * sam_mode = connect: systemd runs csc-sam; csc-server only connects.
 * In both, csc-server asks HELLO at start and logs the answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "sam_client.h"
#include "srv.h"

#define READY_WAIT_MS 60000   /* csc-sam opens the token and the database before it listens */
#define STOP_WAIT_MS 10000    /* SIGTERM, then this long, then SIGKILL */
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define STABLE_MS 30000       /* a child that lived this long resets the backoff */

struct srv_sam {
    const srv_config_t *cfg;
    char program[PATH_MAX];
    sam_client_t *client;
    pthread_mutex_t mtx;
    pthread_cond_t cv;        /* stopping set, or the child reaped (CLOCK_MONOTONIC) */
    pid_t pid;                /* the running child, 0 none (under mtx) */
    int stopping, supervising, supervisor_done;
    pthread_t supervisor;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait on s->cv until the deadline (CLOCK_MONOTONIC ms). Under mtx. */
static void wait_until(srv_sam_t *s, int64_t deadline)
{
    struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
    pthread_cond_timedwait(&s->cv, &s->mtx, &ts);
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

/* The child, between fork and exec: only async-signal-safe calls. */
__attribute__((noreturn)) static void child_exec(const srv_sam_t *s, int ready_w, pid_t parent)
{
    static const char msg[] = "csc-server: cannot execute csc-sam (sam_program)\n";
    char *argv[] = {(char *)s->program, "-c", (char *)s->cfg->file, "-r", "3", NULL};
    sigset_t none;
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&none);
    sigemptyset(&dfl.sa_mask);
    sigprocmask(SIG_SETMASK, &none, NULL); /* csc-server's threads block SIGTERM: csc-sam must not */
    sigaction(SIGPIPE, &dfl, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
        _exit(126); /* csc-server is already gone */
    if (ready_w == 3 ? fcntl(3, F_SETFD, 0) != 0 : dup2(ready_w, 3) != 3)
        _exit(126);
    close_range(4, ~0u, 0); /* nothing else of csc-server's: its sockets, its database descriptors */
    execv(s->program, argv);
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(127);
}

/* Start csc-sam and wait until it listens. The child's pid, or -1 (said why on stderr; the child is reaped). */
static pid_t spawn(srv_sam_t *s)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "csc-server: csc-sam: pipe: %s\n", strerror(errno));
        return -1;
    }
    pid_t parent = getpid(), pid = fork();
    if (pid == 0)
        child_exec(s, p[1], parent);
    close(p[1]);
    if (pid < 0) {
        fprintf(stderr, "csc-server: csc-sam: fork: %s\n", strerror(errno));
        close(p[0]);
        return -1;
    }
    char byte = 0;
    ssize_t n = -1;
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    int64_t deadline = now_ms() + READY_WAIT_MS;
    while (n < 0) {
        int64_t left = deadline - now_ms();
        int r = left > 0 ? poll(&pf, 1, (int)left) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        do
            n = read(p[0], &byte, 1);
        while (n < 0 && errno == EINTR);
    }
    close(p[0]);
    if (n == 1)
        return pid;
    int st = 0;
    if (n < 0)
        kill(pid, SIGKILL); /* not ready in time */
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    char how[96];
    describe_status(st, how, sizeof(how));
    if (n < 0)
        fprintf(stderr, "csc-server: csc-sam (%s) was not ready within %d s: killed\n", s->program,
                READY_WAIT_MS / 1000);
    else
        fprintf(stderr, "csc-server: csc-sam (%s) %s before it was ready\n", s->program, how);
    return -1;
}

/* Wait for the child to end, restart it when it ended unasked; return when stopping. */
static void *supervise(void *arg)
{
    srv_sam_t *s = arg;
    unsigned backoff = BACKOFF_MIN_MS, restarts = 0;
    int64_t started = now_ms();
    pthread_mutex_lock(&s->mtx);
    while (!s->stopping || s->pid > 0) {
        pid_t pid = s->pid;
        if (pid > 0) {
            pthread_mutex_unlock(&s->mtx);
            siginfo_t si;
            /* WNOWAIT: the pid stays ours (no reuse) until it is cleared under the lock, so srv_sam_end never
             * signals a stranger. */
            while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) != 0 && errno == EINTR)
                ;
            int st = 0;
            pthread_mutex_lock(&s->mtx);
            s->pid = 0;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            pthread_cond_broadcast(&s->cv);
            if (s->stopping)
                break;
            char how[96];
            describe_status(st, how, sizeof(how));
            if (now_ms() - started >= STABLE_MS)
                backoff = BACKOFF_MIN_MS;
            fprintf(stderr, "csc-server: csc-sam (pid %d) %s; restart %u in %u ms\n", (int)pid, how, ++restarts,
                    backoff);
        }
        int64_t until = now_ms() + backoff;
        while (!s->stopping && now_ms() < until)
            wait_until(s, until);
        if (s->stopping)
            break;
        pthread_mutex_unlock(&s->mtx);
        pid = spawn(s);
        pthread_mutex_lock(&s->mtx);
        if (pid < 0) {
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        s->pid = pid;
        started = now_ms();
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        fprintf(stderr, "csc-server: csc-sam restarted (pid %d)\n", (int)pid);
        if (s->stopping)
            kill(pid, SIGTERM); /* srv_sam_end came while it started */
    }
    s->supervisor_done = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mtx);
    return NULL;
}

/* sam_program, else csc-sam in the folder of csc-server's own executable. */
static int find_program(srv_sam_t *s)
{
    if (s->cfg->sam_program[0] != '\0') {
        snprintf(s->program, sizeof(s->program), "%s", s->cfg->sam_program);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) {
            fprintf(stderr, "csc-server: /proc/self/exe: %s (set sam_program)\n", strerror(errno));
            return -1;
        }
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        *slash = '\0';
        if (snprintf(s->program, sizeof(s->program), "%s/csc-sam", self) >= (int)sizeof(s->program))
            return -1;
    }
    if (access(s->program, X_OK) != 0) {
        fprintf(stderr, "csc-server: sam_program %s: %s\n", s->program, strerror(errno));
        return -1;
    }
    return 0;
}

/* Start the supervisor with every signal blocked: SIGTERM and SIGINT belong to csc-server's main thread. */
static int start_supervisor(srv_sam_t *s)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->supervisor, NULL, supervise, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        s->supervising = 1;
    return rc == 0 ? 0 : -1;
}

static void log_hello(srv_sam_t *s)
{
    sam_hello_t h;
    int rc = sam_client_hello(s->client, &h);
    if (rc != SAM_OK)
        fprintf(stderr, "csc-server: csc-sam at %s does not answer HELLO: %s\n", s->cfg->sam_socket, sam_strerror(rc));
    else
        fprintf(stderr, "csc-server: csc-sam ready: %s (protocol %u, token %s, storage %s)\n", h.identity,
                (unsigned)h.version, h.hsm_ready ? "logged in" : "UNAVAILABLE",
                h.storage_ready ? "open" : "UNAVAILABLE");
}

int srv_sam_begin(const srv_config_t *cfg, srv_sam_t **out)
{
    *out = NULL;
    srv_sam_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    s->cfg = cfg;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mtx, NULL);
    if (sam_client_new(cfg->sam_socket, cfg->sam_connections, cfg->sam_timeout_ms, &s->client) != SAM_OK) {
        fprintf(stderr, "csc-server: sam_socket %s: cannot make the connection pool\n", cfg->sam_socket);
        srv_sam_end(s);
        return -1;
    }
    if (!cfg->sam_connect) {
        if (find_program(s) != 0 || (s->pid = spawn(s)) < 0 || start_supervisor(s) != 0) {
            if (s->pid < 0)
                s->pid = 0;
            fprintf(stderr, "csc-server: the signature activation module did not start (sam_mode = spawn)\n");
            srv_sam_end(s);
            return -1;
        }
    }
    log_hello(s);
    *out = s;
    return 0;
}

sam_client_t *srv_sam_client(srv_sam_t *s)
{
    return s->client;
}

void srv_sam_end(srv_sam_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mtx);
    s->stopping = 1;
    if (s->pid > 0)
        kill(s->pid, SIGTERM);
    pthread_cond_broadcast(&s->cv);
    int64_t deadline = now_ms() + STOP_WAIT_MS;
    while (s->supervising && !s->supervisor_done && now_ms() < deadline)
        wait_until(s, deadline);
    if (s->supervising && !s->supervisor_done && s->pid > 0) {
        fprintf(stderr, "csc-server: csc-sam (pid %d) did not stop within %d s: SIGKILL\n", (int)s->pid,
                STOP_WAIT_MS / 1000);
        kill(s->pid, SIGKILL);
    }
    pid_t orphan = s->supervising ? 0 : s->pid; /* started, but its supervisor could not be */
    pthread_mutex_unlock(&s->mtx);
    if (s->supervising)
        pthread_join(s->supervisor, NULL);
    if (orphan > 0) {
        kill(orphan, SIGKILL);
        while (waitpid(orphan, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    sam_client_free(s->client);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mtx);
    free(s);
}
