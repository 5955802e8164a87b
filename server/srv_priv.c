/*
 * srv_priv.c - process hardening for csc-server (the network front end) and, with issue 11's split, csc-sam
 * (the signature activation module): no core dumps, no new privileges, an unprivileged user, locked memory
 * (the SAM), and a seccomp allow-list of system calls per process.
 *
 * Order in csc-server (docs/architecture.md, "Process hardening"):
 *   main: configuration read -> srv_priv_early() (before the PIN file is read and before any thread exists, so
 *         every thread inherits NO_NEW_PRIVS) -> modules opened (LMDB, PKCS#11 module and PIN, service threads)
 *   srv_http_run: access log, TLS key and listening sockets opened -> srv_priv_front() -> loops and workers serve.
 *
 * What is not on a profile's list fails with EPERM (SCMP_ACT_ERRNO), and the kernel logs it (the filter is loaded
 * with SECCOMP_FILTER_FLAG_LOG: an audit record of type SECCOMP, "journalctl -k" / auditd, names the syscall and
 * the process). Not SCMP_ACT_KILL_PROCESS: a rare path whose syscall the measurements below missed must cost
 * that one request (every syscall's result is checked, so the client gets an error, never a wrong answer), not
 * the whole service and its in-flight group commit; the kernel log tells the operator which call to add. An
 * attacker who runs code in the process gains nothing from EPERM over a kill: the call is refused either way,
 * and the refusal is observable (a unit test calls execve and sees EPERM). A system call of another
 * architecture's ABI (e.g. int 0x80 from x86-64) kills the process (libseccomp's default for a bad arch): no
 * code of ours makes one.
 *
 * Libraries: libseccomp only here (csc_priv, linked by csc-server and csc-server-test, not by csc-admin).
 */
#include <errno.h>
#include <malloc.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "srv_priv.h"
#include "srv_self.h"

#if defined(__SANITIZE_ADDRESS__)
#define SRV_PRIV_SANITIZER 1
#else
#define SRV_PRIV_SANITIZER 0
#endif

/* The malloc arenas a process of ours may have: one per CPU (srv_priv_early sets M_ARENA_MAX to it; the heap
 * reserve fills each). */
#define ARENAS_MAX 64

static unsigned arena_max(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus > ARENAS_MAX ? ARENAS_MAX : (unsigned)cpus;
}

int srv_priv_early(void)
{
    struct rlimit none = {0, 0};

    if (setrlimit(RLIMIT_CORE, &none) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 ||
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fprintf(stderr, "hardening: no core dumps / no new privileges: %s\n", strerror(errno));
        return -1;
    }
    /* One malloc arena per CPU, not glibc's eight: each thread that meets a busy arena makes another, and every
     * arena keeps the heap its peak grew (csc-sam's pages are locked and never trimmed, srv_priv_mlock), so under a
     * load of many connections their number, not the live data, set the memory held. Measured (bench/soak, 25
     * rounds a second on 16 clients, 2 CPUs, 5 minutes): csc-sam's anonymous memory 31.9 -> 39.2 MiB with live data
     * flat at 7.6 MiB (malloc_stats), 13.9 -> 18.9 MiB with two arenas (docs/reliability.md, Soak); no more threads
     * than CPUs run at once, so fewer arenas add little waiting on their locks. */
    srv_priv_arenas(0);
    return 0;
}

#define ARENA_TUNABLE "glibc.malloc.arena_max"
#define TCACHE_TUNABLE "glibc.malloc.tcache_count"

/* cur (GLIBC_TUNABLES, or NULL) names the tunable name: it is name=value pairs separated by ':'. */
static int tunable_named(const char *cur, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = cur; p != NULL;) {
        if (strncmp(p, name, len) == 0 && p[len] == '=')
            return 1;
        p = strchr(p, ':');
        if (p != NULL)
            p++;
    }
    return 0;
}

void srv_priv_arenas(unsigned n)
{
    if (!tunable_named(getenv("GLIBC_TUNABLES"), ARENA_TUNABLE))
        (void)mallopt(M_ARENA_MAX, (int)(n == 0 ? arena_max() : n));
}

int srv_priv_tcache_value(const char *cur, char *out, size_t n)
{
    if (tunable_named(cur, TCACHE_TUNABLE))
        return 0;
    int len = cur != NULL && cur[0] != '\0'
                  ? snprintf(out, n, "%s:%s=%s", cur, TCACHE_TUNABLE, SRV_PRIV_TCACHE_BLOCKS)
                  : snprintf(out, n, "%s=%s", TCACHE_TUNABLE, SRV_PRIV_TCACHE_BLOCKS);
    return len < 0 || (size_t)len >= n ? -1 : 1;
}

void srv_priv_tcache(const char *who, char **argv)
{
    char value[4096];
    int rc = srv_priv_tcache_value(getenv("GLIBC_TUNABLES"), value, sizeof(value));
    if (rc == 0)
        return;
    if (rc < 0) {
        fprintf(stderr, "%s: WARNING: GLIBC_TUNABLES is too long to add " TCACHE_TUNABLE "=" SRV_PRIV_TCACHE_BLOCKS
                        " to it: glibc's default cache of freed blocks per thread\n", who);
        return;
    }
    if (setenv("GLIBC_TUNABLES", value, 1) != 0) {
        fprintf(stderr, "%s: WARNING: GLIBC_TUNABLES: %s\n", who, strerror(errno));
        return;
    }
    srv_priv_exec_self(argv);
    /* Still here: the variable stays set for the processes this one starts; glibc read it before main, so this one
     * runs with the default cache. */
    fprintf(stderr, "%s: WARNING: cannot start again with " TCACHE_TUNABLE "=" SRV_PRIV_TCACHE_BLOCKS
                    " (/proc/self/exe: %s): glibc's default cache of freed blocks per thread\n", who, strerror(errno));
}

void srv_priv_exec_self(char **argv)
{
    /* The program's own path, not /proc/self/exe itself: the kernel names a process (comm: ps, pidof, the journal)
     * after the file name execve is given. */
    char self[4096];
    if (srv_self_path(self, sizeof(self)) > 0)
        execv(self, argv);
}

int srv_priv_user(const char *who, const char *user, uid_t *uid, gid_t *gid)
{
    /* getpwnam_r into a buffer of our own: the lookup happens at start-up only. */
    struct passwd pw, *res = NULL;
    char buf[4096];
    int rc = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
    if (res == NULL) {
        fprintf(stderr, "%s: user %s: %s\n", who, user, rc != 0 ? strerror(rc) : "no such user");
        return -1;
    }
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

/* Keep only CAP_IPC_LOCK, in the permitted and effective sets (after a setuid with PR_SET_KEEPCAPS). */
static int keep_ipc_lock(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    data[CAP_TO_INDEX(CAP_IPC_LOCK)].permitted = data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective = CAP_TO_MASK(CAP_IPC_LOCK);
    return syscall(SYS_capset, &hdr, data) == 0 && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) == 0 ? 0 : -1;
}

/* srv_priv_drop; keep_lock: the process keeps CAP_IPC_LOCK and nothing else (its locked memory outgrows the
 * RLIMIT_MEMLOCK that root could not raise). */
static int drop(const char *who, const char *user, int keep_lock)
{
    if (user == NULL || user[0] == '\0')
        return 0;
    uid_t uid;
    gid_t gid;
    if (srv_priv_user(who, user, &uid, &gid) != 0)
        return -1;
    if (uid == 0) {
        fprintf(stderr, "%s: user %s is root: name an unprivileged user\n", who, user);
        return -1;
    }
    if (geteuid() != 0) {
        /* Started unprivileged (systemd User=, a developer): fine when it is already that user, else refused,
         * because the operator asked for a user this process cannot become. */
        if (getuid() == uid && geteuid() == uid)
            return 0;
        fprintf(stderr, "%s: configured to run as %s (uid %u), but started as uid %u, not root: cannot switch\n",
                who, user, (unsigned)uid, (unsigned)geteuid());
        return -1;
    }
    /* Groups first (they need root), then the group id, then the user id; glibc applies each to every thread. */
    if ((keep_lock && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) || initgroups(user, gid) != 0 || setgid(gid) != 0 ||
        setuid(uid) != 0 || (keep_lock && keep_ipc_lock() != 0)) {
        fprintf(stderr, "%s: cannot switch to user %s: %s\n", who, user, strerror(errno));
        return -1;
    }
    uid_t r, e, s;
    gid_t gr, ge, gs;
    if (getresuid(&r, &e, &s) != 0 || getresgid(&gr, &ge, &gs) != 0 || r != uid || e != uid ||
        s != uid || gr != gid || ge != gid || gs != gid || setuid(0) == 0) {
        fprintf(stderr, "%s: the switch to user %s did not hold (root can still be regained)\n", who, user);
        return -1;
    }
    /* A change of credentials resets the dumpable flag to fs.suid_dumpable, which need not be 0. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return -1;
    return 0;
}

int srv_priv_drop(const char *who, const char *user)
{
    return drop(who, user, 0);
}

int srv_priv_mlock(const char *who)
{
    /* Root may lock without limit; raise the limit first so that it stays raised after the switch of user
     * (rlimits survive setuid) and later allocations (MCL_FUTURE) do not fail against a small default. */
    if (geteuid() == 0) {
        struct rlimit inf = {RLIM_INFINITY, RLIM_INFINITY};
        (void)setrlimit(RLIMIT_MEMLOCK, &inf);
    }
    /* MCL_ONFAULT: a page is locked when first touched, so a secret is locked before it is written, without
     * reading the whole of LMDB's map (lmdb_map_size) and every library into memory at once. */
    if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) {
        struct rlimit lim = {0, 0};
        (void)getrlimit(RLIMIT_MEMLOCK, &lim);
        fprintf(stderr,
                "%s: cannot lock the process's memory (mlockall: %s; RLIMIT_MEMLOCK %llu bytes): start it as root "
                "or raise the limit (systemd LimitMEMLOCK=infinity)\n",
                who, strerror(errno), (unsigned long long)lim.rlim_cur);
        return -1;
    }
    /* Locked pages cannot be given back: madvise(MADV_DONTNEED) fails on them (EINVAL), so malloc's trimming of
     * its heaps after a large free would be a failing system call, and a shrunk heap refaulted and locked again
     * by the next allocation, on every request. Keep what was grown instead (bounded by the connections). Setting
     * the trim threshold freezes the mmap threshold, so that one goes to glibc's maximum first: LMDB allocates 3 MiB
     * per nested write txn (two per signature), which must come from the heap, not from a fresh mapping faulted
     * in and locked each time (that doubled the CPU per one-hash signHash). OpenSSL's large blocks, scrypt's, are
     * kept out of the heaps altogether (srv_priv_openssl_mapped). */
    if (mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1)
        (void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
    return 0;
}

/* ---- csc-sam's heaps faulted in at start (srv_priv_heap_reserve) ----------------------------------------------- */

#define RESERVE_BLOCK (256 * 1024) /* below the mmap threshold srv_priv_mlock sets: from the heap, never mapped */

/* Allocate n bytes in blocks, write a byte of every page, free them all: the arena of the calling thread keeps the
 * pages. The writes go through a volatile pointer: a compiler may drop a memset of memory freed unread, and then no
 * page would be touched. */
static int touch_heap(size_t n)
{
    size_t count = (n + RESERVE_BLOCK - 1) / RESERVE_BLOCK, i;
    long page = sysconf(_SC_PAGESIZE);
    void **blocks = calloc(count ? count : 1, sizeof(*blocks));
    int rc = blocks != NULL && page > 0 ? 0 : -1;
    for (i = 0; rc == 0 && i < count; i++) {
        if ((blocks[i] = malloc(RESERVE_BLOCK)) == NULL) {
            rc = -1;
            break;
        }
        volatile char *p = blocks[i];
        for (size_t off = 0; off < RESERVE_BLOCK; off += (size_t)page)
            p[off] = 0;
    }
    while (blocks != NULL && i-- > 0)
        free(blocks[i]);
    free(blocks);
    return rc;
}

/* The reserving threads: each takes its arena, then waits until all have one before it allocates. */
typedef struct reserve {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned ready;
    int go;
    size_t bytes;
} reserve_t;

typedef struct reserve_arg {
    reserve_t *r;
    int rc;
} reserve_arg_t;

/* A thread's first allocation gives it an arena; while every reserving thread is alive at once, glibc makes a new one
 * for each (below M_ARENA_MAX), instead of handing on the arena of a thread that ended. */
static void *reserve_main(void *arg)
{
    reserve_arg_t *a = arg;
    reserve_t *r = a->r;
    void *first = malloc(1);
    pthread_mutex_lock(&r->mu);
    r->ready++;
    pthread_cond_broadcast(&r->cv);
    while (!r->go)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    a->rc = first != NULL ? touch_heap(r->bytes) : -1;
    free(first);
    return NULL;
}

int srv_priv_heap_reserve(size_t bytes)
{
    if (bytes == 0)
        return 0;
    unsigned others = arena_max() - 1; /* the arenas besides the main one */
    size_t main_part = others == 0 ? bytes : bytes / 2;
    if (touch_heap(main_part) != 0)
        return -1;
    if (others == 0)
        return 0;
    pthread_t th[ARENAS_MAX - 1];
    reserve_arg_t arg[ARENAS_MAX - 1];
    reserve_t r = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, (bytes - main_part) / others};
    unsigned started = 0;
    for (; started < others; started++) {
        arg[started] = (reserve_arg_t){&r, -1};
        if (pthread_create(&th[started], NULL, reserve_main, &arg[started]) != 0)
            break;
    }
    pthread_mutex_lock(&r.mu);
    while (r.ready < started)
        pthread_cond_wait(&r.cv, &r.mu);
    r.go = 1;
    pthread_cond_broadcast(&r.cv);
    pthread_mutex_unlock(&r.mu);
    int rc = started < others ? -1 : 0;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        rc |= arg[i].rc;
    }
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return rc;
}

void srv_priv_heap_usage(uint64_t *in_use, uint64_t *held)
{
    struct mallinfo2 mi = mallinfo2();
    *in_use = (uint64_t)mi.uordblks + mi.hblkhd;
    *held = (uint64_t)mi.arena + mi.hblkhd;
}

/* ---- OpenSSL's large blocks in mappings of their own (csc-sam) ------------------------------------------------
 *
 * A slot holds the address of a live mapping (or CLAIMED while one is being made) and the size asked for. A free
 * looks for its pointer among the slots only while some are in use (mapped_live): a small block's free costs one
 * atomic load. A slot is emptied before its mapping goes, so no two slots ever hold the same address. */
#define CLAIMED ((void *)1)
static _Atomic(void *) mapped_at[SRV_PRIV_MAPPED_MAX];
static size_t mapped_len[SRV_PRIV_MAPPED_MAX]; /* written before the slot's address is published */
static atomic_uint mapped_live;

unsigned srv_priv_mapped_live(void)
{
    return atomic_load(&mapped_live);
}

static size_t page_round(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

/* A block of n bytes in a mapping of its own, or NULL (every slot taken, or no mapping): then malloc's. */
static void *mapped_new(size_t n)
{
    if (n > SIZE_MAX / 2)
        return NULL;
    for (unsigned i = 0; i < SRV_PRIV_MAPPED_MAX; i++) {
        void *none = NULL;
        if (atomic_load_explicit(&mapped_at[i], memory_order_relaxed) != NULL ||
            !atomic_compare_exchange_strong(&mapped_at[i], &none, CLAIMED))
            continue;
        void *p = mmap(NULL, page_round(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            atomic_store(&mapped_at[i], NULL);
            return NULL;
        }
        mapped_len[i] = n;
        atomic_fetch_add(&mapped_live, 1);
        atomic_store(&mapped_at[i], p);
        return p;
    }
    return NULL;
}

static int mapped_slot(const void *p)
{
    if (p == NULL || atomic_load(&mapped_live) == 0)
        return -1;
    for (unsigned i = 0; i < SRV_PRIV_MAPPED_MAX; i++)
        if (atomic_load(&mapped_at[i]) == p)
            return (int)i;
    return -1;
}

static void mapped_free(int i)
{
    void *p = atomic_load(&mapped_at[i]);
    size_t len = page_round(mapped_len[i]);
    OPENSSL_cleanse(p, len);
    atomic_store(&mapped_at[i], NULL);
    atomic_fetch_sub(&mapped_live, 1);
    (void)munmap(p, len);
}

static void *m_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    void *p = n >= SRV_PRIV_MAPPED_MIN ? mapped_new(n) : NULL;
    return p != NULL ? p : malloc(n);
}

static void m_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    int i = mapped_slot(p);
    if (i >= 0)
        mapped_free(i);
    else
        free(p);
}

static void *m_realloc(void *p, size_t n, const char *file, int line)
{
    if (p == NULL)
        return m_malloc(n, file, line);
    if (n == 0) { /* what CRYPTO_realloc does with 0: free, and no block */
        m_free(p, file, line);
        return NULL;
    }
    int i = mapped_slot(p);
    void *q;
    if (i < 0 && n < SRV_PRIV_MAPPED_MIN)
        return realloc(p, n);
    if (i < 0 && (q = mapped_new(n)) == NULL)
        return realloc(p, n);
    if (i >= 0 && (q = m_malloc(n, file, line)) == NULL)
        return NULL; /* p stays valid, as with realloc */
    size_t old = i >= 0 ? mapped_len[i] : malloc_usable_size(p);
    memcpy(q, p, old < n ? old : n);
    m_free(p, file, line);
    return q;
}

int srv_priv_openssl_mapped(void)
{
    return CRYPTO_set_mem_functions(m_malloc, m_realloc, m_free) == 1 ? 0 : -1;
}

/* ---- the allow-lists ----------------------------------------------------------------------------------------
 *
 * How the lists were found: csc-server (normal and ASan builds) ran under `strace -D -f -c` (a wrapper in place of
 * the binary) through the integration tests api, oauth, signdoc, challenge_async, overload, lockout and demo, the
 * browser test e2e_oauth and the conformance suite; the union of the syscalls counted is below, minus what only
 * start-up needs (execve, bind, listen, mkdir...: done before the filter) and what only the otp_sender exec:
 * program did (no filter then), and grouped by what needs it; a call that cannot fail is allowed. Then the
 * same tests ran with the filter on, in both builds. The SAM's list: csc-sam (a wrapper as sam_program running
 * `strace -qq -D -f` on it) through the integration tests sam, hardening (with sam_user) and api, counting what
 * every thread called after the filter was loaded: accept4, getsockopt (SO_PEERCRED), recvmsg/sendmsg, shutdown,
 * poll, the storage writer's pwrite64/fdatasync (audit records), thread start and exit, sigtimedwait, the token's
 * close (munlock of hsm/'s PIN copy), unlink of the socket at stop; all within the groups marked for it below,
 * none refused. It also keeps the front end's file and PKCS#11 groups, because signing (SoftHSM re-reads its
 * object files) moves into csc-sam; it has no connect and no socket().
 * Calls with arguments worth checking (clone, clone3, socket, prctl, prlimit64, tgkill) have rules of their own
 * in add_rules(). Names unknown to this libseccomp/architecture are skipped.
 */
enum {
    P_FRONT = 1u << SRV_PROFILE_FRONT,
    P_SAM = 1u << SRV_PROFILE_SAM,
    P_SENDER = 1u << SRV_PROFILE_SENDER,
    P_BOTH = P_FRONT | P_SAM,
    P_ALL = P_BOTH | P_SENDER
};

typedef struct sc_group {
    unsigned profiles;
    const char *why;
    const char *names[16];
} sc_group_t;

static const sc_group_t groups[] = {
    {P_ALL, "memory: malloc, thread stacks, LMDB's map, OpenSSL's secure heap and hsm/'s locked PIN copy",
     {"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mlock", "munlock", NULL}},
    {P_ALL, "threads: pthread mutexes and condition variables, thread exit, the worker pools' nice +10",
     {"futex", "set_robust_list", "rseq", "set_tid_address", "gettid", "getpid", "exit", "exit_group",
      "sched_yield", "sched_getaffinity", "getpriority", "setpriority", "restart_syscall", NULL}},
    {P_ALL, "time and sleeping (vDSO fallbacks, timed waits)",
     {"clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep", NULL}},
    {P_ALL, "signals: the main thread's sigwait for SIGTERM/SIGINT, per-thread masks, abort()",
     {"rt_sigaction", "rt_sigprocmask", "rt_sigtimedwait", "rt_sigreturn", "sigaltstack", NULL}},
    {P_ALL, "files: LMDB (pread/pwrite, fdatasync at each group commit), the PKCS#11 module's token files, the "
             "CRL folder (crl_dir, reloaded by a thread), otp_sender file:, the access log",
     {"openat", "open", "close", "read", "write", "readv", "writev", "pread64", "pwrite64", "lseek", "fstat",
      "newfstatat", "statx", "fcntl", "dup", NULL}},
    {P_ALL, "more files: the same, and the PKCS#11 module's object files and locks",
     {"getdents64", "readlink", "access", "faccessat", "faccessat2", "fstatfs", "ftruncate", "fdatasync", "fsync",
      "flock", "unlink", "rename", NULL}},
    {P_ALL, "randomness (OpenSSL, tokens, SADs) and system facts glibc and OpenSSL read",
     {"getrandom", "uname", "sysinfo", NULL}},
    {P_ALL, "calls that cannot fail, so their callers never look (a refusal would be read as uid -1, a silent wrong "
             "answer): reading ids, umask",
     {"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "getppid", "umask", NULL}},
    {P_ALL, "event loops and queues: h2o's epoll loop and its multithread queue, the SAM's loop; socket() itself "
             "is checked in add_rules()",
     {"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "pipe2", "eventfd2", "poll",
      "ppoll", "select", "pselect6", NULL}},
    {P_ALL, "sockets already open: TLS connections (front end), the Unix socket between front end and SAM",
     {"getsockname", "setsockopt", "getsockopt", "sendmsg", "recvmsg", "shutdown", NULL}},
    {P_SAM, "the clock check before time-stamping (clock_check = adjtimex): adjtimex read-only, glibc's through "
            "clock_adjtime; without CAP_SYS_TIME (dropped with the switch to sam_user) neither can set the clock",
     {"adjtimex", "clock_adjtime", NULL}},
    {P_BOTH, "accepting on sockets opened before the filter: the front end's listeners, the SAM's Unix socket",
     {"accept4", "accept", NULL}},
    {P_FRONT, "dialling out: response_uri notifications and their DNS lookups, the SAM's socket (issue 11)",
     {"connect", "getpeername", "sendto", "recvfrom", NULL}},
    {P_SENDER, "the sender helper: starting the program (fork is clone, in add_rules), its stdin and error pipes, "
               "waiting for it (pidfd), killing its process group at the timeout",
     {"execve", "wait4", "waitid", "kill", "setpgid", "getpgid", "getpgrp", "pidfd_open", "dup2", "dup3",
      "close_range", NULL}},
    {P_SENDER, "the program under the helper's filter: what a dynamically linked program and /bin/sh need (the "
               "dynamic loader's arch_prctl, the working directory, coreutils' fadvise, its own children; terminal "
               "checks are ioctl, in add_rules)",
     {"arch_prctl", "fadvise64", "getcwd", "chdir", "fchdir", "readlinkat", "mkdir", "mkdirat", "unlinkat", "renameat",
      "renameat2", "fchmod", "fchmodat", "pipe", "vfork", NULL}},
    {P_SENDER, "the program reaches its SMS or e-mail gateway (TCP, DNS over UDP) or a local service over a Unix "
               "socket (socket() is checked in add_rules: no raw, packet or netlink sockets)",
     {"connect", "getpeername", "sendto", "recvfrom", NULL}},
};

/* csc-sam's PKCS#11 module dialling its HSM (pkcs11_sockets): p11-kit-client.so connects to p11-kit server's Unix
 * socket at every C_Initialize, so also when hsm/ initialises the library again after the server was lost
 * (docs/stack-notes.md sec. 10); a network HSM's client uses TCP (and DNS). */
static int add_p11net_rules(scmp_filter_ctx ctx, srv_p11net_t p11net)
{
    static const char *const dial[] = {"connect", "getpeername", "sendto", "recvfrom"};
    int rc = 0;
    if (p11net == SRV_P11NET_NONE)
        return 0;
    for (size_t i = 0; i < sizeof(dial) / sizeof(dial[0]); i++)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name(dial[i]), 0);
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
    if (p11net == SRV_P11NET_INET) {
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET));
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET6));
    }
    return rc;
}

static int notify_socket; /* srv_priv_notify */

void srv_priv_notify(int on)
{
    notify_socket = on;
}

srv_p11net_t srv_priv_p11net(const char *pkcs11_sockets)
{
    if (strcmp(pkcs11_sockets, "inet") == 0)
        return SRV_P11NET_INET;
    return strcmp(pkcs11_sockets, "unix") == 0 ? SRV_P11NET_UNIX : SRV_P11NET_NONE;
}

/* The allowed arguments of the calls that get rules of their own. */
static int add_rules(scmp_filter_ctx ctx, srv_profile_t profile)
{
    int rc = 0;
    /* Threads only: clone with CLONE_THREAD. No fork, vfork, nor a process sharing our memory. glibc tries clone3
     * first (its flags sit in memory a filter cannot read) and falls back to clone on ENOSYS. */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                           SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* The sender helper and its program: new processes too (fork, vfork), but never in new namespaces. */
    if (profile == SRV_PROFILE_SENDER) {
        /* ioctl: the questions a program asks about its descriptors (isatty, window size, bytes readable,
         * blocking and close-on-exec); nothing that acts on a terminal (TIOCSTI and the like). */
        static const unsigned long asks[] = {TCGETS, TIOCGWINSZ, TIOCGPGRP, FIONREAD, FIONBIO, FIOCLEX, FIONCLEX};
        for (size_t i = 0; i < sizeof(asks) / sizeof(asks[0]); i++)
            rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, asks[i]));
    }
    if (profile == SRV_PROFILE_SENDER)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
                                                               CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET,
                                       0));
    /* New sockets: the front end IPv4/IPv6 (notifications, DNS) and Unix (the SAM, nscd); the SAM none at all (it
     * accepts on its Unix socket) unless pkcs11_sockets lets its module dial (add_p11net_rules). No raw packets,
     * netlink or other families. */
    if (profile == SRV_PROFILE_FRONT) {
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET));
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET6));
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
    } else if (profile == SRV_PROFILE_SENDER) {
        /* The program: its gateway over TCP, DNS over UDP (type compared without SOCK_NONBLOCK / SOCK_CLOEXEC), a
         * local relay over Unix. glibc's getaddrinfo asks netlink which address families are configured and, refused,
         * assumes both. */
        static const int fams[] = {AF_INET, AF_INET6};
        static const int types[] = {SOCK_STREAM, SOCK_DGRAM};
        for (size_t i = 0; i < 2; i++)
            for (size_t j = 0; j < 2; j++)
                rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2, SCMP_A0(SCMP_CMP_EQ, fams[i]),
                                       SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, types[j]));
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
    } else if (profile == SRV_PROFILE_SAM && notify_socket) {
        /* csc-sam under systemd: sd_notify's datagram socket, Unix and datagram only (type compared without
         * SOCK_CLOEXEC). The SAM has still no connect; sendmsg it had already. */
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2, SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
                               SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_DGRAM));
    }
    /* Limits may be read (getrlimit), never changed: RLIMIT_CORE stays 0. */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 1, SCMP_A2(SCMP_CMP_EQ, 0));
    /* Signals to this process only (abort, raise, pthread_kill): no other process can be signalled. The sender's
     * program is another process (kill is on its list anyway: the helper kills the program's group). */
    if (profile == SRV_PROFILE_SENDER)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 0);
    else
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                               SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    /* prctl: thread names and reading the dumpable flag; never setting it again, nor other options. */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_GET_DUMPABLE));
#if SRV_PRIV_SANITIZER
    /* Sanitizer builds only: LeakSanitizer checks for leaks at exit by stopping every thread from a helper (clone
     * with CLONE_VM and CLONE_UNTRACED, no CLONE_THREAD) that lists /proc/PID/task with the old getdents and
     * attaches to each thread with ptrace, after the process made itself dumpable for it and named it its ptracer;
     * the parent waits for it. strace cannot see the helper (CLONE_UNTRACED): these were found by running the
     * integration tests under the filter. Never in other builds (unit_priv checks there that ptrace and
     * PR_SET_DUMPABLE are refused). */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                           SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_VM | CLONE_UNTRACED | CLONE_THREAD, CLONE_VM | CLONE_UNTRACED));
    static const int asan[] = {SCMP_SYS(ptrace), SCMP_SYS(wait4), SCMP_SYS(getdents)};
    for (size_t i = 0; i < sizeof(asan) / sizeof(asan[0]); i++)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, asan[i], 0);
    static const int asan_prctl[] = {PR_SET_DUMPABLE, PR_SET_PTRACER, PR_SET_PDEATHSIG};
    for (size_t i = 0; i < sizeof(asan_prctl) / sizeof(asan_prctl[0]); i++)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, asan_prctl[i]));
#endif
    return rc;
}

static int load_filter(srv_profile_t profile, srv_p11net_t p11net);

int srv_priv_seccomp(srv_profile_t profile)
{
    return load_filter(profile, SRV_P11NET_NONE);
}

int srv_priv_seccomp_sam(srv_p11net_t p11net)
{
    return load_filter(SRV_PROFILE_SAM, p11net);
}

static int load_filter(srv_profile_t profile, srv_p11net_t p11net)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    const char *step = "seccomp_init";
    int rc = -1, err = 0;

    if (ctx == NULL)
        goto out;
    /* TSYNC: every thread already running gets the filter too (the storage writer, the CRL watcher...). LOG: the
     * kernel logs what is refused. NNP: libseccomp sets NO_NEW_PRIVS (srv_priv_early did already). */
    step = "attributes";
    if ((err = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) != 0 ||
        (err = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1)) != 0 || (err = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1)) != 0)
        goto out;
    step = "rules";
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        if (!(groups[g].profiles & (1u << profile)))
            continue;
        for (size_t i = 0; groups[g].names[i] != NULL; i++) {
            int nr = seccomp_syscall_resolve_name(groups[g].names[i]);
            if (nr != __NR_SCMP_ERROR && (err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) != 0)
                goto out;
        }
    }
    if ((err = add_rules(ctx, profile)) != 0 || (err = add_p11net_rules(ctx, p11net)) != 0)
        goto out;
    step = "seccomp_load";
    if ((err = seccomp_load(ctx)) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "hardening: cannot load the seccomp filter (%s: %s)\n", step, err < 0 ? strerror(-err) : "failed");
    seccomp_release(ctx);
    return rc;
}

/* The switch to user, then the profile's filter unless seccomp is 0 (said). 1: done but the filter (the caller
 * decides), 0: done, -1: refused. */
static int drop_then_filter(const char *who, const char *user, int keep_lock, unsigned seccomp)
{
    if (drop(who, user, keep_lock) != 0)
        return -1;
    if (!seccomp) {
        fprintf(stderr, "%s: WARNING: seccomp = no: no system-call filter (for debugging only)\n", who);
        return 0;
    }
    return 1;
}

int srv_priv_sam(const char *sam_user, unsigned seccomp, int memory_locked, srv_p11net_t p11net)
{
    /* Locked memory outlives the switch of user only within RLIMIT_MEMLOCK (srv_priv_mlock raised it to infinity
     * when root may: CAP_SYS_RESOURCE); where it could not, CAP_IPC_LOCK is kept, alone. */
    struct rlimit lim = {0, 0};
    int keep = memory_locked && geteuid() == 0 && sam_user != NULL && sam_user[0] != '\0' &&
               getrlimit(RLIMIT_MEMLOCK, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY;
    if (keep)
        fprintf(stderr, "csc-sam: RLIMIT_MEMLOCK could not be raised (%llu bytes): %s keeps CAP_IPC_LOCK, and no "
                        "other capability\n", (unsigned long long)lim.rlim_cur, sam_user);
    int rc = drop_then_filter("csc-sam", sam_user, keep, seccomp);
    return rc <= 0 ? rc : srv_priv_seccomp_sam(p11net);
}

int srv_priv_front(const char *server_user, unsigned seccomp)
{
    int rc = drop_then_filter("csc-server", server_user, 0, seccomp);
    return rc <= 0 ? rc : srv_priv_seccomp(SRV_PROFILE_FRONT);
}
