/*
 * srv_opsock.c - csc-admin's side of csc-sam's operators' socket (sam_admin_socket; docs/architecture.md "The
 * operators' socket"): one connection, one request at a time. When no csc-sam answers and sam_mode is spawn (the
 * embedded default: ./scripts/provision and ./scripts/demo run csc-admin before any service runs), csc-admin starts
 * a short-lived csc-sam itself (csc-sam -o: the operators' socket only), as csc-server starts its own, and stops it
 * when it is done. It can only start where its user may read the token PIN file: in production (sam_user's file)
 * the service's csc-sam must be running. csc-admin is single-threaded: the state below is the process's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srv_opsock.h"

#define OPSOCK_TIMEOUT_MS 300000 /* one operation: an RSA-4096 key generation in a slow token included */
#define OPSOCK_START_MS 60000    /* a csc-sam starting (the token's login included) */

static sam_client_t *client;
static pid_t child = -1;
static char origin[SAM_ORIGIN_MAX + 1]; /* srv_opsock_origin: sent with every request */

void srv_opsock_origin(const char *claim)
{
    snprintf(origin, sizeof(origin), "%s", claim != NULL ? claim : "");
}

/* Copy what the csc-sam that failed to start said (memfd log) to csc-admin's stderr. */
static void show_log(int log)
{
    char buf[4096];
    ssize_t n;
    if (lseek(log, 0, SEEK_SET) != 0)
        return;
    while ((n = read(log, buf, sizeof(buf))) > 0)
        fwrite(buf, 1, (size_t)n, stderr);
}

/* Start csc-sam -c CONFIG -o -r 3 and wait for its ready byte. 0, or -1 (said why). */
static int spawn_sam(const srv_config_t *cfg)
{
    char prog[PATH_MAX];
    int ready[2], log = -1;
    if (srv_sam_program(cfg, "csc-admin", prog, sizeof(prog)) != 0 || pipe2(ready, O_CLOEXEC) != 0)
        return -1;
    log = memfd_create("csc-sam-log", MFD_CLOEXEC); /* what it says goes to csc-admin's stderr only if it fails */
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        char *argv[] = {prog, "-c", (char *)cfg->file, "-o", "-r", "3", NULL};
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
            _exit(126);
        if (log >= 0 && (dup2(log, 1) != 1 || dup2(log, 2) != 2))
            _exit(126);
        if (dup2(ready[1], 3) != 3)
            _exit(126);
        close_range(4, ~0u, 0);
        execv(prog, argv);
        fprintf(stderr, "csc-admin: cannot execute csc-sam (%s): %s\n", prog, strerror(errno));
        _exit(127);
    }
    close(ready[1]);
    if (pid < 0) {
        close(ready[0]);
        if (log >= 0)
            close(log);
        return -1;
    }
    child = pid;
    struct pollfd p = {.fd = ready[0], .events = POLLIN};
    char byte = 0;
    int n;
    do
        n = poll(&p, 1, OPSOCK_START_MS);
    while (n < 0 && errno == EINTR);
    int ok = n == 1 && read(ready[0], &byte, 1) == 1 && byte == 'R';
    close(ready[0]);
    if (!ok) {
        if (log >= 0)
            show_log(log);
        srv_opsock_end();
    }
    if (log >= 0)
        close(log);
    return ok ? 0 : -1;
}

void srv_opsock_put_origin(sam_builder_t *b)
{
    if (origin[0] != '\0')
        sam_put_str(b, SAM_T_ORIGIN, origin);
}

int srv_opsock_call(const srv_config_t *cfg, sam_builder_t *b, sam_rbuf_t *rb, sam_msg_t *reply)
{
    const uint8_t *msg;
    size_t len;
    if (b->last_tag < SAM_T_ORIGIN) /* else the op put it before its higher tags (srv_opsock_put_origin) */
        srv_opsock_put_origin(b);
    int rc = sam_build_finish(b, &msg, &len);
    if (rc != SAM_OK) {
        fprintf(stderr, "csc-admin: a value is out of bounds for csc-sam (%s)\n", sam_strerror(rc));
        return -1;
    }
    if (client == NULL && (rc = sam_client_new(cfg->sam_admin_socket, 1, OPSOCK_TIMEOUT_MS, &client)) != SAM_OK) {
        fprintf(stderr, "csc-admin: sam_admin_socket %s: %s\n", cfg->sam_admin_socket, sam_strerror(rc));
        return -1;
    }
    rc = sam_client_call(client, msg, len, rb, reply);
    if (rc == SAM_ERR_UNAVAILABLE && child < 0 && !cfg->sam_connect && spawn_sam(cfg) == 0)
        rc = sam_client_call(client, msg, len, rb, reply);
    if (rc == SAM_ERR_UNAVAILABLE) {
        fprintf(stderr, "csc-admin: csc-sam is not reachable at %s: start the service\n", cfg->sam_admin_socket);
        return -1;
    }
    if (rc != SAM_OK) {
        fprintf(stderr, "csc-admin: csc-sam at %s: %s\n", cfg->sam_admin_socket, sam_strerror(rc));
        return -1;
    }
    return 0;
}

void srv_opsock_end(void)
{
    sam_client_free(client);
    client = NULL;
    if (child > 0) {
        int st;
        kill(child, SIGTERM);
        while (waitpid(child, &st, 0) < 0 && errno == EINTR)
            ;
    }
    child = -1;
}
