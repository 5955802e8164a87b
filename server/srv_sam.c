/*
 * srv_sam.c - csc-sam: the signature activation module's process (issue 11). It reads csc-server's configuration,
 * opens storage and the HSM as csc-server does, serves the SAM socket (sam/sam_server.c) until SIGTERM or SIGINT.
 * csc-server starts it (sam_mode = spawn: srv_samctl.c, with -r FD, the descriptor of the pipe to write one byte to
 * once it listens) or systemd does (sam_mode = connect). It also serves the operators' socket (sam_admin_socket:
 * csc-admin's key operations, sam/sam_op_keys.c); csc-admin starts a short-lived one with -o (that socket only, no
 * periodic work; the sender helper too, for user add and user recover) when none answers in sam_mode = spawn. docs/architecture.md "Processes", "The
 * operators' socket".
 * Hardening (srv_priv.c; docs/architecture.md "Process hardening"): no core dumps and NO_NEW_PRIVS first, then its
 * memory locked before the PIN is read; once the PIN file, the token and the database are open and the socket bound:
 * the socket given to sam_user and the front end's group, the switch to sam_user (when root), the SAM's seccomp
 * filter; only then it accepts and tells csc-server it is ready.
 * With otp_sender = exec:, the sender helper (sam/sam_sender.h) is forked first of all, before the PIN is read and
 * anything else is opened (spawn_sender): csc-sam's own filter refuses fork and execve.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "sam_sender.h"
#include "sam_server.h"
#include "srv.h"
#include "srv_cov.h"
#include "srv_notify.h"
#include "srv_priv.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: csc-sam -c CONFIG [-r FD] [-o]\n"
               "  -c CONFIG  configuration file (csc-server's; see docs/configuration.md)\n"
               "  -r FD      write one byte to descriptor FD once listening, then close it (csc-server's spawn)\n"
               "  -o         the operators' socket only, no periodic work (csc-admin's short-lived csc-sam)\n"
               "  --version  print the version and exit\n");
}

/* Tell whoever started us that the socket listens. */
static int tell_ready(int fd)
{
    if (fd < 0)
        return 0;
    ssize_t n;
    do
        n = write(fd, "R", 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    return n == 1 ? 0 : -1;
}

/* Who may reach the socket (docs/configuration.md sam_user, sam_socket_group, sam_allowed_user). The peer allowed:
 * sam_allowed_user, else server_user (the front end's user), else the uid csc-sam was started as (csc-server's, when
 * it started csc-sam). The socket's group: sam_socket_group, else, when csc-sam starts as root (it can give the
 * socket away), server_user's group; with a group mode 0660, else 0600. Its owner: sam_user when csc-sam starts as
 * root and switches to it, else csc-sam's user. */
typedef struct sock_access {
    uid_t allowed, owner;
    gid_t gid;
    unsigned mode;
} sock_access_t;

static int socket_access(const srv_config_t *cfg, sock_access_t *a)
{
    uid_t front_uid = (uid_t)-1, sam_uid = (uid_t)-1;
    gid_t front_gid = (gid_t)-1, sam_gid;
    int root = geteuid() == 0;
    if (cfg->server_user[0] != '\0' && srv_priv_user("csc-sam", cfg->server_user, &front_uid, &front_gid) != 0)
        return -1;
    if (root && cfg->sam_user[0] != '\0' && srv_priv_user("csc-sam", cfg->sam_user, &sam_uid, &sam_gid) != 0)
        return -1;
    a->allowed = cfg->sam_allowed_uid != (uid_t)-1  ? cfg->sam_allowed_uid
                 : front_uid != (uid_t)-1           ? front_uid
                                                    : getuid();
    a->gid = cfg->sam_socket_gid != (gid_t)-1 ? cfg->sam_socket_gid : root ? front_gid : (gid_t)-1;
    a->mode = a->gid != (gid_t)-1 ? 0660 : 0600;
    a->owner = sam_uid;
    return 0;
}

/* csc-sam's periodic work (srv_thread.c): signed audit heads (J11; the audit key is used here only), its own CRL
 * store following crl_dir (J9) with the CRL sweep (J7: the credentials a CRL revokes end, their keys' destructions
 * filed), the key destructions that sweep files, and the purge of expired records. csc-server writes none of this
 * (it purges only its own web_sessions): on a shared database the front end's role may not write these tables.
 * The CRL store is opened before the socket (the SIGN checks read it); the tasks start once the process is
 * hardened, so that their threads run under the filter too. */
typedef struct sam_tasks {
    sam_heads_t *heads;
    sam_key_jobs_t *jobs;
    pki_crl_t *crl;
    stor_env_t *stor;  /* the sweep's */
    int crl_hold;      /* two_person names revoke or destroy: the sweep files requests for a second operator */
    int sweep_due;     /* the next run sweeps: at the first run (the revocations found at start), after a sweep
                          that failed, and after every change of the store */
    uint64_t swept_gen; /* the store's generation the last sweep saw: a SIGN may have reloaded it meanwhile */
    srv_task_t *heads_task, *jobs_task, *crl_task, *purge_task;
} sam_tasks_t;

/* "crl-watch": the SAM's own CRL store follows crl_dir (lookups go on while it reloads); the revocations found at
 * the first run, then those of every reload that changed the store (this task's, or a SIGN's: pki_crl_generation),
 * end their credentials (sam_crl_sweep; one that failed is run again a second later). */
static int crl_run(void *arg)
{
    sam_tasks_t *t = arg;
    int rc = pki_crl_reload(t->crl); /* says on stderr what it could not read; what was loaded stays in force */
    uint64_t gen = pki_crl_generation(t->crl);
    if (rc == 1 || gen != t->swept_gen || t->sweep_due) {
        t->swept_gen = gen;
        t->sweep_due = sam_crl_sweep(t->stor, t->crl, t->crl_hold) < 0;
    }
    return rc < 0 ? -1 : 0;
}

/* "purge": the expired records, SADs among them, go (all but csc-server's web_sessions). A purge is also the write
 * that ends a full-map episode of csc-sam's own writer once space came back. */
static int purge_run(void *arg)
{
    int n = stor_purge_expired(arg, (int64_t)time(NULL));
    if (n < 0 && n != STOR_ERR_CLOSED) {
        fprintf(stderr, "csc-sam: purging expired records failed: %s\n", stor_strerror(n));
        return -1;
    }
    return 0;
}

static int heads_run(void *h)
{
    return sam_audit_heads_once(h);
}

static int jobs_run(void *k)
{
    return sam_key_jobs_once(k);
}

static int tasks_start(const srv_config_t *cfg, srv_modules_t *m, sam_tasks_t *t)
{
    t->stor = m->stor;
    t->crl_hold = srv_two_person_destroys(cfg->two_person);
    t->sweep_due = 1;
    if (t->crl != NULL && srv_task_start("crl-watch", 1000, crl_run, t, &t->crl_task) != 0)
        return -1;
    if (cfg->purge_interval != 0 &&
        srv_task_start("purge", cfg->purge_interval * 1000u, purge_run, m->stor, &t->purge_task) != 0)
        return -1;
    if (m->hsm == NULL)
        return 0;
    if (sam_key_jobs_new(m->stor, m->hsm, &t->jobs) != 0 || srv_task_start("key-jobs", 1000, jobs_run, t->jobs,
                                                                           &t->jobs_task) != 0)
        return -1;
    if (cfg->audit_sign_interval == 0 && cfg->audit_sign_records == 0)
        return 0;
    if (sam_audit_heads_new(m->stor, m->hsm, cfg->audit_sign_interval, cfg->audit_sign_records, "csc-sam",
                            &t->heads) != 0)
        return -1;
    return srv_task_start("audit-heads", 1000, heads_run, t->heads, &t->heads_task);
}

/* After the socket is closed (no request runs): the tasks stop, then the last head is signed. */
static void tasks_stop(sam_tasks_t *t)
{
    srv_task_stop(t->purge_task);
    srv_task_stop(t->crl_task);
    pki_crl_free(t->crl);
    srv_task_stop(t->jobs_task);
    srv_task_stop(t->heads_task);
    sam_audit_heads_final(t->heads);
    sam_audit_heads_free(t->heads);
    sam_key_jobs_free(t->jobs);
}

/* ---- the exec: sender's helper ------------------------------------------------------------------------------
 * Forked in main before csc-sam reads the PIN, opens the token or the database, locks its memory, starts a thread
 * or loads its filter: the helper holds no secret and keeps no descriptor but its end of the socketpair (and
 * stderr). It switches to sam_user itself (csc-sam is still root then, when started as root: the program never runs
 * as root when sam_user is set), loads the sender's filter (srv_priv.c SRV_PROFILE_SENDER; the program inherits it),
 * and serves until csc-sam's end closes, so a csc-sam killed with -9 leaves no helper behind. If the helper ends
 * or stops answering, csc-sam stops with a log line (its filter forbids forking a new one) and its supervisor
 * (srv_samctl.c) starts csc-sam, and a new helper, again. */
static pthread_t main_thread;
static atomic_int sender_lost;

static void on_sender_lost(void *arg)
{
    (void)arg;
    if (atomic_exchange(&sender_lost, 1) == 0) {
        fprintf(stderr, "csc-sam: the otp_sender helper stopped answering: stopping, so that csc-sam and a new "
                        "helper are started again\n");
        pthread_kill(main_thread, SIGTERM);
    }
}

static void sender_main(const srv_config_t *cfg, int fd)
{
    /* The socket as descriptor 3, stdin from /dev/null, stdout and stderr kept (or /dev/null if closed); nothing
     * else of csc-sam's (its -r pipe to the supervisor among them). */
    int sock = fcntl(fd, F_DUPFD, 10), devnull = open("/dev/null", O_RDWR);
    if (sock < 0 || devnull < 0 || dup2(devnull, 0) < 0 || (fcntl(1, F_GETFD) < 0 && dup2(devnull, 1) < 0) ||
        (fcntl(2, F_GETFD) < 0 && dup2(devnull, 2) < 0) || dup2(sock, 3) < 0 || close_range(4, ~0U, 0) != 0)
        _exit(1);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL); /* csc-sam's stop signals are blocked for its sigwait */
    if (srv_priv_drop("csc-sam sender", cfg->sam_user) != 0)
        _exit(1);
    if (!cfg->seccomp)
        fprintf(stderr, "csc-sam sender: WARNING: seccomp = no: no system-call filter (for debugging only)\n");
    else if (srv_priv_seccomp(SRV_PROFILE_SENDER) != 0)
        _exit(1);
    (void)prctl(PR_SET_NAME, "csc-sam-sender", 0, 0, 0); /* named once hardened */
    int rc = sam_sender_serve(3, cfg->otp_sender + 5);
    SRV_COV_DUMP();
    _exit(rc == 0 ? 0 : 1);
}

/* Fork the helper when otp_sender is exec:, and wait for it to say it is ready. 0 (*out NULL without an exec:
 * sender), or -1 (said). */
static int spawn_sender(const srv_config_t *cfg, sam_sender_t **out)
{
    int sp[2];
    *out = NULL;
    if (strncmp(cfg->otp_sender, "exec:", 5) != 0)
        return 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
        fprintf(stderr, "csc-sam: otp_sender helper: socketpair: %s\n", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(sp[0]);
        sender_main(cfg, sp[1]);
    }
    close(sp[1]);
    if (pid < 0) {
        fprintf(stderr, "csc-sam: otp_sender helper: fork: %s\n", strerror(errno));
        close(sp[0]);
        return -1;
    }
    return sam_sender_new(sp[0], 10000, on_sender_lost, NULL, out);
}

/* The operators' socket (sam_admin_socket; docs/architecture.md "The operators' socket"): csc-admin's key operations
 * run here with admin/, with the CA of csc-sam's own configuration (never a path an operator names). */
typedef struct sam_ops_side {
    adm_ca_t ca;
    adm_op_factor_t factor;   /* operators' TOTP secrets sealed and opened here (sam_factor.c) */
    sam_operators_t ops;
    sam_server_t *srv;
} sam_ops_side_t;

/* What both sockets' ops of enrollment need (sam_op_enroll.c, sam_op_account.c). */
static void enroll_config(const srv_config_t *cfg, sam_sender_t *sender, sam_server_config_t *sc)
{
    sc->otp_sender = cfg->otp_sender;
    sc->otp_sender_timeout = cfg->otp_sender_timeout;
    sc->sender = sender;
    sc->enroll_code_ttl = cfg->enroll_code_ttl;
    sc->restore_request_ttl = cfg->restore_request_ttl;
    sc->enroll_code_tries = cfg->enroll_code_tries;
    sc->password_min_length = cfg->password_min_length;
    sc->password_classes = cfg->password_classes;
    sc->pin_min_length = cfg->pin_min_length;
    sc->scrypt_log2n = cfg->scrypt_log2n;
    sc->production = cfg->environment == CSC_ENV_PRODUCTION;
}

static int operators_open(const srv_config_t *cfg, srv_modules_t *m, const char *identity, sam_ops_side_t *o,
                          uid_t owner, sam_sender_t *sender)
{
    char err[512];
    o->ca = (adm_ca_t){.cert_file = cfg->ca_cert, .key_file = cfg->ca_key, .chain_file = cfg->ca_chain,
                       .days = cfg->cert_days};
    /* J13: in production a CA whose key lies in a file (the built-in CA) issues nothing unless allowed. */
    if (cfg->environment == CSC_ENV_PRODUCTION && !cfg->allow_builtin_ca)
        o->ca.refused = "the built-in CA (ca_key, a CA key in a file) issues no certificates in production: use --csr "
                        "and an external CA (allow_builtin_ca = yes overrides)";
    o->factor = (adm_op_factor_t){.seal = sam_operator_totp_seal, .open = sam_operator_totp_open, .arg = m->hsm};
    o->ops = (sam_operators_t){
        .adm = {.stor = m->stor, .hsm = m->hsm, .ca = &o->ca, .operator_name = "-",
                .scrypt_log2n = cfg->scrypt_log2n, .issuer = cfg->totp_issuer,
                .key_backup = strcmp(cfg->key_backup, "wrapped") == 0, .trust_anchors = cfg->trust_anchors,
                .pin_min_length = cfg->pin_min_length, .production = cfg->environment == CSC_ENV_PRODUCTION,
                .allow_scal1 = (int)cfg->allow_scal1, .allow_single_factor = (int)cfg->allow_single_factor,
                .allow_combined_roles = (int)cfg->allow_combined_roles, .op_factor = &o->factor},
        .pol = {.session_idle = cfg->admin_session_idle, .session_max = cfg->admin_session_max,
                .max_failures = cfg->max_failures, .lock_seconds = cfg->lock_seconds, .totp_window = 1,
                .approval_ttl = cfg->admin_approval_ttl},
        .two_person = cfg->two_person,
    };
    sam_server_config_t sc = {
        .path = cfg->sam_admin_socket,
        .mode = cfg->sam_admin_gid != (gid_t)-1 ? 0660 : 0600,
        .gid = cfg->sam_admin_gid,
        .allowed_uid = (uid_t)-1, /* whoever the socket's mode lets in: the operator's session decides */
        .max_connections = 8,
        .io_timeout_ms = cfg->sam_timeout_ms,
        .lock_wait_ms = 10000,
        .identity = identity,
        .stor = m->stor,
        .hsm = m->hsm,
        .oauth = m->oauth,
        .tsa_credential = cfg->tsa_credential,
        .operators = &o->ops,
    };
    enroll_config(cfg, sender, &sc);
    if (sam_server_open(&sc, &o->srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "csc-sam: sam_admin_socket %s\n", err);
        return -1;
    }
    if (owner != (uid_t)-1 && lchown(cfg->sam_admin_socket, owner, (gid_t)-1) != 0) {
        fprintf(stderr, "csc-sam: sam_admin_socket %s: cannot give it to sam_user %s: %s\n", cfg->sam_admin_socket,
                cfg->sam_user, strerror(errno));
        sam_server_free(o->srv);
        o->srv = NULL;
        return -1;
    }
    return 0;
}

/* The new sockets csc-sam may open under its filter: what pkcs11_sockets lets its module dial, and with storage =
 * postgresql its database's (TCP, or a Unix socket with host=/path): libpq opens one for every new connection of the
 * pool, so also after the database was lost and came back. */
static srv_p11net_t sam_dial(const srv_config_t *cfg)
{
    return strcmp(cfg->storage.backend, "postgresql") == 0 ? SRV_P11NET_INET : srv_priv_p11net(cfg->pkcs11_sockets);
}

#ifndef CSC_VERSION
#define CSC_VERSION "unknown"
#endif

/* SHA-256 of the configuration file, read once at the start (as csc-sam's starting user, who read it just before). */
static int config_sha256(const char *file, uint8_t out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    FILE *f = fopen(file, "rb");
    uint8_t buf[4096];
    size_t n;
    int ok = md != NULL && f != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    while (ok && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        ok = EVP_DigestUpdate(md, buf, n) == 1;
    ok = ok && !ferror(f) && EVP_DigestFinal_ex(md, out, NULL) == 1;
    if (f != NULL)
        fclose(f);
    EVP_MD_CTX_free(md);
    if (!ok)
        fprintf(stderr, "csc-sam: cannot read %s to hash it for the start record\n", file);
    return ok ? 0 : -1;
}

static int start_record_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_audit_append(t, arg);
}

/* The audit record of this start (issue 15): what ran, on which configuration, where. One per start of the service's
 * csc-sam; none for the short-lived one csc-admin starts (-o) when no csc-sam runs: the command it serves is audited
 * itself, and audit verify's (which asks it for the audit key) would add a record to the log it checks. */
static int start_record(const srv_config_t *cfg, stor_env_t *stor, const uint8_t conf[32], const char *clock)
{
    stor_audit_t a;
    char hex[65];
    pki_hex(conf, 32, hex);
    memset(&a, 0, sizeof(a));
    a.event = STOR_EV_SAM;
    a.result = STOR_RES_OK;
    snprintf(a.client, sizeof(a.client), "csc-sam");
    /* the path last: a long one is cut short (the rest is bounded) */
    int n = snprintf(a.detail, sizeof(a.detail),
             "action=sam.start version=%.40s environment=%s storage=%s node=%s clock=%s config_sha256=%s config=%s",
             CSC_VERSION, cfg->environment == CSC_ENV_PRODUCTION ? "production" : "test", cfg->storage.backend,
             cfg->node_id, clock, hex, cfg->file);
    if (n < 0)
        return -1;
    int rc = stor_write(stor, start_record_fn, &a);
    if (rc != STOR_OK)
        fprintf(stderr, "csc-sam: cannot write the audit record of this start: %s\n", stor_strerror(rc));
    return rc == STOR_OK ? 0 : -1;
}

/* clock_check at the start: the clock's state and offset in the log (and "ok", "unsynchronised" or "none" for the
 * start record); a clock found unsynchronised does not stop csc-sam, which then refuses each time-stamp token until
 * it is synchronised (sam_op_stamp.c). NULL *out: clock_check = none. */
static const char *clock_start(const srv_config_t *cfg, sam_clock_t *clock, const sam_clock_t **out)
{
    sam_clock_reading_t r;
    char why[SAM_REASON_MAX + 1];
    *out = NULL;
    if (strcmp(cfg->clock_check, "adjtimex") != 0) {
        fprintf(stderr, "csc-sam: clock_check = none: time-stamp tokens are made without a clock check\n");
        return "none";
    }
    *clock = (sam_clock_t){.source = sam_clock_adjtimex, .arg = NULL, .max_error_ms = cfg->clock_max_error_ms};
    *out = clock;
    int rc = sam_clock_check(clock, &r, why, sizeof(why));
    fprintf(stderr, "csc-sam: clock_check = adjtimex: %s%s\n", why,
            rc == 0 ? "" : ": time-stamp tokens are refused until it is");
    return rc == 0 ? "ok" : "unsynchronised";
}

/* The main thread waits for a stop signal (stop). Under systemd's watchdog it sends WATCHDOG=1 meanwhile, every half
 * of WATCHDOG_USEC: it stands for a csc-sam that runs at all (not frozen, not stopped, its main thread scheduled), so
 * such a process is restarted. A connection thread stuck in the token is not seen here: csc-server's /readyz asks
 * csc-sam HELLO on a connection of its own for that (docs/operations.md "Monitoring"). */
static int wait_stop(const sigset_t *stop)
{
    unsigned ms = srv_notify_watchdog_ms();
    for (;;) {
        int sig = 0;
        if (ms == 0) {
            if (sigwait(stop, &sig) == 0)
                return sig;
            continue;
        }
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        if ((sig = sigtimedwait(stop, NULL, &ts)) > 0)
            return sig;
        srv_notify_watchdog(); /* EAGAIN: the half period passed (EINTR: early, which does no harm) */
    }
}

/* SIGHUP (sent by csc-server's supervisor once csc-server reloaded, or by csc-sam's own unit with sam_mode =
 * connect): read the configuration file again; any key changed but srv_reloadable's (csc-server's, none of which
 * csc-sam holds) refuses the reload, named, as csc-server does; else the CRL store takes trust_anchors again, every
 * CRL verified again (the crl-watch task then sweeps what a new snapshot revokes). The file is read as sam_user,
 * under the filter. Imports (csc-admin credential import) read trust_anchors at each import already. */
static void sam_reload(const srv_config_t *cfg, sam_tasks_t *t)
{
    srv_config_t *fresh = calloc(1, sizeof(*fresh));
    char changed[1024], err[PATH_MAX + 64];

    fprintf(stderr, "csc-sam: SIGHUP: reloading %s\n", cfg->file);
    if (fresh == NULL) {
        fprintf(stderr, "csc-sam: reload refused: out of memory; the configuration in force stays\n");
        return;
    }
    size_t n = 0;
    if (srv_config_load(cfg->file, fresh) != 0) {
        fprintf(stderr, "csc-sam: reload refused: %s is not valid (said above); the configuration in force stays\n",
                cfg->file);
    } else if ((n = srv_config_changed(cfg, fresh, srv_reloadable, changed, sizeof(changed))) > 0) {
        fprintf(stderr, "csc-sam: reload refused: %s cannot change while csc-sam runs (a restart puts %s in force); "
                        "the configuration in force stays\n",
                changed, n > 1 ? "them" : "it");
    } else if (t->crl != NULL && pki_crl_set_anchors(t->crl, fresh->trust_anchors, err, sizeof(err)) != PKI_OK) {
        fprintf(stderr, "csc-sam: reload refused: trust_anchors: %s; the anchors in force stay\n", err);
    } else {
        fprintf(stderr, "csc-sam: reloaded: %s%s\n",
                t->crl != NULL ? "trust anchors and the CRLs of " : "nothing to do (no crl_dir)",
                t->crl != NULL ? cfg->crl_dir : "");
    }
    free(fresh);
}

static int serve(const srv_config_t *cfg, srv_modules_t *m, int ready_fd, const sigset_t *stop, int locked,
                 sam_sender_t *sender, int operators_only, const uint8_t conf_sha[32])
{
    char identity[SAM_IDENTITY_MAX + 1], err[512];
    uint8_t ticket_key[SAM_TICKET_KEY_LEN] = {0}; /* the pages' key HELLO gives csc-server (sam_factor_start) */
    sock_access_t acc;
    sam_tasks_t tasks = {0};
    sam_clock_t clock_src;
    const sam_clock_t *clock = NULL;
    const char *clock_state = operators_only ? "none" : clock_start(cfg, &clock_src, &clock);
    /* The SAM checks revocation itself before every signature, from its own store of crl_dir (J9). */
    if (cfg->crl_dir[0] != '\0' && pki_crl_new(cfg->crl_dir, cfg->trust_anchors, (int)cfg->crl_allow_stale,
                                               (int)cfg->crl_require, &tasks.crl, err, sizeof(err)) != PKI_OK) {
        fprintf(stderr, "csc-sam: crl_dir %s\n", err);
        return -1;
    }
    snprintf(identity, sizeof(identity), "csc-sam pid=%d token=%.64s", (int)getpid(), cfg->pkcs11_token);
    if (socket_access(cfg, &acc) != 0) {
        tasks_stop(&tasks);
        return -1;
    }
    sam_server_config_t sc = {
        .path = cfg->sam_socket,
        .mode = acc.mode,
        .gid = acc.gid,
        .allowed_uid = acc.allowed,
        .max_connections = cfg->sam_max_connections,
        .io_timeout_ms = cfg->sam_timeout_ms,
        .lock_wait_ms = 10000, /* a SAM whose csc-server was killed may still be finishing its requests */
        .identity = identity,
        .stor = m->stor,
        .hsm = m->hsm,
        .oauth = m->oauth,
        .tsa_credential = cfg->tsa_credential,
        .tsa_policy = cfg->tsa_policy,
        .tsa_accuracy_ms = cfg->tsa_accuracy_ms,
        .clock = clock,
        .production = cfg->environment == CSC_ENV_PRODUCTION,
        .allow_scal1 = (int)cfg->allow_scal1,
        .allow_single_factor = (int)cfg->allow_single_factor,
        .crl = tasks.crl,
        .ticket_key = ticket_key, /* filled below, before the server starts; never on the operators' socket */
        .heap_usage = srv_priv_heap_usage,
    };
    enroll_config(cfg, sender, &sc);
    sam_server_t *srv = NULL;
    sam_ops_side_t ops = {0};
    if (!operators_only && sam_server_open(&sc, &srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "csc-sam: sam_socket %s\n", err);
        tasks_stop(&tasks);
        return -1;
    }
    if (operators_open(cfg, m, identity, &ops, acc.owner, sender) != 0) {
        sam_server_free(srv);
        tasks_stop(&tasks);
        return -1;
    }
    /* Privileges: once the token is open and the socket bound, before the first connection is accepted and before
     * csc-server hears that the SAM is ready (no core dumps, NO_NEW_PRIVS and locked memory came first, in main):
     * the socket to sam_user (no symlink followed; it is under the lock and has its final mode already), the switch
     * to sam_user, the SAM's filter. */
    int bad = srv != NULL && acc.owner != (uid_t)-1 && lchown(cfg->sam_socket, acc.owner, (gid_t)-1) != 0;
    if (bad)
        fprintf(stderr, "csc-sam: sam_socket %s: cannot give it to sam_user %s: %s\n", cfg->sam_socket, cfg->sam_user,
                strerror(errno));
    if (!bad && srv_priv_sam(cfg->sam_user, cfg->seccomp, locked, sam_dial(cfg)) != 0)
        bad = 1;
    /* Writes open after the switch: they run on the threads made after it, which have what the switch kept
     * (CAP_IPC_LOCK, which every thread needs for new mappings under mlockall when RLIMIT_MEMLOCK could not be
     * raised). */
    int src = bad ? STOR_OK : stor_start_writer(m->stor);
    if (src != STOR_OK) {
        fprintf(stderr, "csc-sam: cannot start the storage writer: %s\n", stor_strerror(src));
        bad = 1;
    }
    /* The factor key (TOTP secrets at rest), made through this PIN-holding token if it has none (audited). */
    int hrc = bad ? HSM_OK : sam_factor_start(m->stor, m->hsm, m->oauth, ticket_key);
    if (hrc != HSM_OK) {
        fprintf(stderr, "csc-sam: the factor key (csc-factor-key): %s\n", hsm_strerror(hrc));
        bad = 1;
    }
    if (!bad && !operators_only && start_record(cfg, m->stor, conf_sha, clock_state) != 0)
        bad = 1;
    /* The locked heaps' pages the requests will use, touched now, before the threads that serve them exist. */
    if (!bad && locked && srv_priv_heap_reserve((size_t)cfg->sam_heap_reserve << 10) != 0) {
        fprintf(stderr, "csc-sam: cannot reserve sam_heap_reserve (%u KiB) of locked memory\n", cfg->sam_heap_reserve);
        bad = 1;
    }
    if (!bad && ((srv != NULL && sam_server_start(srv) != 0) || sam_server_start(ops.srv) != 0 ||
                 (!operators_only && tasks_start(cfg, m, &tasks) != 0))) {
        fprintf(stderr, "csc-sam: cannot start its threads\n");
        bad = 1;
    }
    if (bad) {
        sam_server_free(ops.srv);
        sam_server_free(srv);
        tasks_stop(&tasks);
        OPENSSL_cleanse(ticket_key, sizeof(ticket_key));
        return -1;
    }
    if (tell_ready(ready_fd) != 0)
        fprintf(stderr, "csc-sam: cannot tell csc-server that the SAM is ready: %s\n", strerror(errno));
    if (srv != NULL)
        fprintf(stderr, "csc-sam: %s listening on %s (%u HSM sessions)\n", identity, cfg->sam_socket,
                hsm_sessions(m->hsm));
    fprintf(stderr, "csc-sam: %s: operators' socket %s\n", identity, cfg->sam_admin_socket);
    if (srv != NULL)
        srv_notify_ready("serving on %s, token %.64s logged in (%u HSM sessions)", cfg->sam_socket, cfg->pkcs11_token,
                         hsm_sessions(m->hsm));
    int sig;
    while ((sig = wait_stop(stop)) == SIGHUP) {
        sam_reload(cfg, &tasks);
        srv_notify_status("serving on %s; SIGHUP handled (see the log)", cfg->sam_socket);
    }
    srv_notify_stopping("stopping (signal %d): closing the sockets, then the periodic work", sig);
    /* SIGCHLD: the sender helper (csc-sam's only child) ended */
    if (sig == SIGCHLD)
        fprintf(stderr, "csc-sam: the otp_sender helper ended: stopping, so that csc-sam and a new helper are started "
                        "again\n");
    else
        fprintf(stderr, "csc-sam: stopping (signal %d)\n", sig);
    sam_server_free(ops.srv);
    sam_server_free(srv); /* no connection reads the key after this */
    tasks_stop(&tasks);
    OPENSSL_cleanse(ticket_key, sizeof(ticket_key));
    return sig == SIGCHLD || atomic_load(&sender_lost) ? -1 : 0;
}

/* Before the PIN is read: the SAM's memory never reaches swap. Refused in production; in the test environment (a
 * developer's csc-sam without root and under a small RLIMIT_MEMLOCK) a warning. 1 locked, 0 not, -1 refused. */
static int lock_memory(const srv_config_t *cfg)
{
    if (srv_priv_mlock("csc-sam") == 0)
        return 1;
    if (cfg->environment == CSC_ENV_PRODUCTION)
        return -1;
    fprintf(stderr, "csc-sam: WARNING: memory not locked (environment = test; production refuses to start)\n");
    return 0;
}

int main(int argc, char **argv)
{
    /* Before anything else (srv_priv.h): a no-op when csc-server started it (the variable is inherited), an exec of
     * itself when systemd or csc-admin did without it. */
    srv_priv_tcache("csc-sam", argv);
    const char *file = NULL;
    int ready_fd = -1, opt, bad = 0, operators_only = 0;
    char *end;

    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
    /* First, before OpenSSL allocates: its large blocks (scrypt's) in mappings of their own (srv_priv.h). */
    if (srv_priv_openssl_mapped() != 0) {
        fprintf(stderr, "csc-sam: OpenSSL allocated before its allocator could be set\n");
        return 1;
    }
    (void)srv_log_journal(); /* its stderr is csc-server's (spawn) or its own unit's (connect) */
    while ((opt = getopt_long(argc, argv, "c:r:oh", opts, NULL)) != -1) {
        if (opt == 'V') {
            printf("csc-sam %s\n", CSC_VERSION);
            return 0;
        } else if (opt == 'c') {
            file = optarg;
        } else if (opt == 'o') {
            operators_only = 1;
        } else if (opt == 'r') {
            errno = 0;
            ready_fd = (int)strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || end == optarg || ready_fd < 0)
                bad = 1;
        } else {
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (bad || file == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    /* Notifications only from the csc-sam systemd started (csc-sam.service): not one csc-server spawned (-r) nor
     * csc-admin's short-lived one (-o); that one, under its filter, may then open the socket they need. */
    srv_notify_init("csc-sam", ready_fd < 0 && !operators_only);
    srv_priv_notify(srv_notify_enabled());
    /* SIGTERM and SIGINT stop the SAM, and SIGCHLD (the sender helper ended); SIGHUP reloads: blocked in every
     * thread, taken by sigwait in this one. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGCHLD);
    sigaddset(&stop, SIGHUP);
    main_thread = pthread_self();
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv_config_t *cfg = calloc(1, sizeof(*cfg));
    srv_modules_t m;
    if (cfg == NULL)
        return 1;
    int locked = -1, hrc = -1;
    sam_sender_t *sender = NULL;
    if (srv_config_load(file, cfg) != 0 || srv_priv_early() != 0 ||
        spawn_sender(cfg, &sender) != 0 ||
        (locked = lock_memory(cfg)) < 0 || (hrc = srv_modules_open_hsm(cfg, SRV_WRITER_LATER, &m)) != 0) {
        sam_sender_free(sender);
        free(cfg);
        if (hrc == SRV_HSM_PIN_REFUSED) {
            fprintf(stderr, "csc-sam: the token refused the PIN of pkcs11_pin_file: exit status %d, which is not "
                            "restarted (a token locks after a few wrong PINs)\n", SRV_EXIT_PIN_REFUSED);
            return SRV_EXIT_PIN_REFUSED;
        }
        return 1;
    }
    uint8_t conf_sha[32];
    int rc = config_sha256(file, conf_sha) != 0
                 ? -1
                 : serve(cfg, &m, ready_fd, &stop, locked, sender, operators_only, conf_sha);
    srv_modules_close_hsm(&m);
    sam_sender_free(sender);
    free(cfg);
    return rc == 0 ? 0 : 1;
}
