/*
 * srv_sam.c - csc-sam: the signature activation module's process (issue 11). It reads csc-server's configuration,
 * opens storage and the HSM as csc-server does, serves the SAM socket (sam/sam_server.c) until SIGTERM or SIGINT.
 * csc-server starts it (sam_mode = spawn: srv_samctl.c, with -r FD, the descriptor of the pipe to write one byte to
 * once it listens) or systemd does (sam_mode = connect). docs/architecture.md "Processes".
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "sam_server.h"
#include "srv.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: csc-sam -c CONFIG [-r FD]\n"
               "  -c CONFIG  configuration file (csc-server's; see docs/configuration.md)\n"
               "  -r FD      write one byte to descriptor FD once listening, then close it (csc-server's spawn)\n");
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

/* csc-sam's periodic task "crl-watch": its own CRL store follows crl_dir (lookups go on while it reloads). */
static int crl_run(void *arg)
{
    int rc = pki_crl_reload(arg); /* says on stderr what it could not read; what was loaded stays in force */
    return rc < 0 ? -1 : 0;
}

/* csc-sam's periodic task "purge": the expired records, SADs among them, go (as csc-server's purge does). A purge is
 * also the write that ends a full-map episode of csc-sam's own writer once space came back. */
static int purge_run(void *arg)
{
    int n = stor_purge_expired(arg, (int64_t)time(NULL));
    if (n < 0 && n != STOR_ERR_CLOSED) {
        fprintf(stderr, "csc-sam: purging expired records failed: %s\n", stor_strerror(n));
        return -1;
    }
    return 0;
}

static int serve(const srv_config_t *cfg, srv_modules_t *m, int ready_fd, const sigset_t *stop)
{
    char identity[SAM_IDENTITY_MAX + 1], err[512];
    pki_crl_t *crl = NULL;
    srv_task_t *crl_task = NULL, *purge_task = NULL;
    /* The SAM checks revocation itself before every signature, from its own store of crl_dir (J9). */
    if (cfg->crl_dir[0] != '\0' &&
        (pki_crl_new(cfg->crl_dir, cfg->trust_anchors, (int)cfg->crl_allow_stale, (int)cfg->crl_require, &crl, err,
                     sizeof(err)) != PKI_OK ||
         srv_task_start("crl-watch", 1000, crl_run, crl, &crl_task) != 0)) {
        fprintf(stderr, "csc-sam: crl_dir %s\n", crl != NULL ? "cannot be watched" : err);
        pki_crl_free(crl);
        return -1;
    }
    snprintf(identity, sizeof(identity), "csc-sam pid=%d token=%.64s", (int)getpid(), cfg->pkcs11_token);
    sam_server_config_t sc = {
        .path = cfg->sam_socket,
        .mode = cfg->sam_socket_gid != (gid_t)-1 ? 0660 : 0600,
        .gid = cfg->sam_socket_gid,
        /* The front end: the user sam_allowed_user names, else the one csc-sam runs as (csc-server started it). */
        .allowed_uid = cfg->sam_allowed_uid != (uid_t)-1 ? cfg->sam_allowed_uid : getuid(),
        .max_connections = cfg->sam_max_connections,
        .io_timeout_ms = cfg->sam_timeout_ms,
        .lock_wait_ms = 10000, /* a SAM whose csc-server was killed may still be finishing its requests */
        .identity = identity,
        .stor = m->stor,
        .hsm = m->hsm,
        .oauth = m->oauth,
        .production = cfg->environment == CSC_ENV_PRODUCTION,
        .allow_scal1 = (int)cfg->allow_scal1,
        .allow_single_factor = (int)cfg->allow_single_factor,
        .crl = crl,
    };
    sam_server_t *srv = NULL;
    if (sam_server_open(&sc, &srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "csc-sam: sam_socket %s\n", err);
        srv_task_stop(crl_task);
        pki_crl_free(crl);
        return -1;
    }
    /* Privileges (issue 11): switching to sam_user, the seccomp allow-list, no core dumps and locked memory are
     * applied here, once the token is open and the socket bound, before the first connection is accepted and
     * before csc-server hears that the SAM is ready. */
    if (sam_server_start(srv) != 0) {
        fprintf(stderr, "csc-sam: cannot start the accepting thread\n");
        sam_server_free(srv);
        srv_task_stop(crl_task);
        pki_crl_free(crl);
        return -1;
    }
    if (cfg->purge_interval != 0 &&
        srv_task_start("purge", cfg->purge_interval * 1000u, purge_run, m->stor, &purge_task) != 0)
        fprintf(stderr, "csc-sam: cannot start the purge task: expired records stay until csc-server purges them\n");
    if (tell_ready(ready_fd) != 0)
        fprintf(stderr, "csc-sam: cannot tell csc-server that the SAM is ready: %s\n", strerror(errno));
    fprintf(stderr, "csc-sam: %s listening on %s\n", identity, cfg->sam_socket);
    int sig = 0;
    while (sigwait(stop, &sig) != 0)
        ;
    fprintf(stderr, "csc-sam: stopping (signal %d)\n", sig);
    srv_task_stop(purge_task);
    sam_server_free(srv);
    srv_task_stop(crl_task);
    pki_crl_free(crl);
    return 0;
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    int ready_fd = -1, opt, bad = 0;
    char *end;

    while ((opt = getopt(argc, argv, "c:r:h")) != -1) {
        if (opt == 'c') {
            file = optarg;
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
    /* SIGTERM and SIGINT stop the SAM: blocked in every thread, taken by sigwait in this one. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv_config_t *cfg = calloc(1, sizeof(*cfg));
    srv_modules_t m;
    if (cfg == NULL)
        return 1;
    if (srv_config_load(file, cfg) != 0 || srv_modules_open(cfg, SRV_NEED_HSM, NULL, &m) != 0) {
        free(cfg);
        return 1;
    }
    int rc = serve(cfg, &m, ready_fd, &stop);
    srv_modules_close(&m);
    free(cfg);
    return rc == 0 ? 0 : 1;
}
