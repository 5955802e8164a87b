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

static int serve(const srv_config_t *cfg, srv_modules_t *m, int ready_fd, const sigset_t *stop)
{
    char identity[SAM_IDENTITY_MAX + 1], err[512];
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
        .otp_sender = cfg->otp_sender,
        .otp_sender_timeout = cfg->otp_sender_timeout,
    };
    sam_server_t *srv = NULL;
    if (sam_server_open(&sc, &srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "csc-sam: sam_socket %s\n", err);
        return -1;
    }
    /* Privileges (issue 11): switching to sam_user, the seccomp allow-list, no core dumps and locked memory are
     * applied here, once the token is open and the socket bound, before the first connection is accepted and
     * before csc-server hears that the SAM is ready. */
    if (sam_server_start(srv) != 0) {
        fprintf(stderr, "csc-sam: cannot start the accepting thread\n");
        sam_server_free(srv);
        return -1;
    }
    if (tell_ready(ready_fd) != 0)
        fprintf(stderr, "csc-sam: cannot tell csc-server that the SAM is ready: %s\n", strerror(errno));
    fprintf(stderr, "csc-sam: %s listening on %s\n", identity, cfg->sam_socket);
    int sig = 0;
    while (sigwait(stop, &sig) != 0)
        ;
    fprintf(stderr, "csc-sam: stopping (signal %d)\n", sig);
    sam_server_free(srv);
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
