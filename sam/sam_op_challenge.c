/*
 * sam_op_challenge.c - CHALLENGE (sam_core.h): credentials/getChallenge and v1 credentials/sendOTP. The SAM checks the
 * caller's access token itself (a user's service-scope token), makes the one-time code (oauth_challenge_new: only its
 * keyed hash is kept, in this process), and delivers it out of band through the configured sender; the front end
 * never sees the code and never starts the sender.
 *
 * Senders (otp_sender, docs/configuration.md):
 *   exec:/path/prog  fork + execve (no shell, empty argv, fixed environment), the program's stdin receives
 *                    "user=U\ncredential=C\nchannel=CHALLENGE\ncode=NNNNNN\n"; stdout and stderr go to
 *                    /dev/null (they are never logged, the code could be in them); exit status 0 = delivered;
 *                    killed after otp_sender_timeout seconds (a failure).
 *   file:/path       appends "U C CHALLENGE NNNNNN\n" (mode 0600): for tests and demonstrations only.
 * A delivery that fails forgets the code and is audited (oauth_challenge_cancel); the refusal is UNAVAILABLE about
 * SAM_T_CHALLENGE, which the front end answers 503 "The one-time code could not be delivered".
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <openssl/crypto.h>

#include "sam_core.h"

typedef enum { SENDER_NONE = 0, SENDER_EXEC, SENDER_FILE } sender_kind_t;

/* The kind of cfg's sender and its path (within otp_sender). srv_config.c and csc-api checked it at start-up. */
static sender_kind_t sender_of(const sam_server_config_t *cfg, const char **path)
{
    const char *s = cfg->otp_sender;
    *path = NULL;
    if (s == NULL || strlen(s) < 6 || s[5] != '/')
        return SENDER_NONE;
    *path = s + 5;
    if (strncmp(s, "exec:", 5) == 0)
        return SENDER_EXEC;
    return strncmp(s, "file:", 5) == 0 ? SENDER_FILE : SENDER_NONE;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Run the program with msg on its stdin; 0 when it exited with status 0 within the timeout. */
static int send_exec(const char *path, unsigned timeout_s, const char *msg, size_t len, const char **why)
{
    char *const argv[] = {(char *)path, NULL};
    char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", NULL};
    int pfd[2], devnull, status = 0;
    pid_t pid;

    *why = "sender could not be started";
    if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
        return -1;
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        close(devnull);
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        /* Child: only async-signal-safe calls until execve. dup2 leaves the new descriptors inheritable. */
        sigset_t none;
        sigemptyset(&none);
        if (dup2(pfd[0], 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0 ||
            sigprocmask(SIG_SETMASK, &none, NULL) != 0 || signal(SIGPIPE, SIG_DFL) == SIG_ERR)
            _exit(126);
        close_range(3, ~0U, 0);
        execve(path, argv, envp);
        _exit(127);
    }
    close(pfd[0]);
    close(devnull);
    if (pid < 0) {
        close(pfd[1]);
        return -1;
    }
    /* A few dozen bytes: they fit in the pipe buffer, so this does not wait for the child. EPIPE (the child exited
     * without reading; SIGPIPE is ignored by csc-sam) shows in the exit status below. */
    (void)write_all(pfd[1], msg, len);
    close(pfd[1]);
    int64_t deadline = sam_now_ms() + (int64_t)timeout_s * 1000;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            *why = "sender lost";
            return -1;
        }
        if (sam_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            *why = "sender timed out";
            return -1;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        *why = "sender failed";
        return -1;
    }
    return 0;
}

static int send_file(const char *path, const char *line, size_t len, const char **why)
{
    *why = "sink not writable";
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, line, len);
    if (close(fd) != 0)
        rc = -1;
    return rc;
}

/* Deliver code to user out of band. @return 0, or -1 with a static reason in *why (for the audit record). */
static int deliver(const sam_server_config_t *cfg, const char *user, const char *cred, const char *code,
                   const char **why)
{
    char msg[3 * STOR_NAME_MAX + 128];
    const char *path;
    sender_kind_t kind = sender_of(cfg, &path);
    int n, rc;

    if (kind == SENDER_EXEC)
        n = snprintf(msg, sizeof(msg), "user=%s\ncredential=%s\nchannel=%s\ncode=%s\n", user, cred,
                     OAUTH_CHALLENGE_ID, code);
    else
        n = snprintf(msg, sizeof(msg), "%s %s %s %s\n", user, cred, OAUTH_CHALLENGE_ID, code);
    if (n < 0 || (size_t)n >= sizeof(msg)) {
        *why = "message too long";
        rc = -1;
    } else if (kind == SENDER_EXEC) {
        rc = send_exec(path, cfg->otp_sender_timeout, msg, (size_t)n, why);
    } else {
        rc = send_file(path, msg, (size_t)n, why);
    }
    OPENSSL_cleanse(msg, sizeof(msg));
    return rc;
}

int sam_op_challenge(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char token[SAM_TOKEN_MAX + 1], cred[SAM_NAME_MAX + 1], client[SAM_CLIENT_MAX + 1];
    char code[OAUTH_CHALLENGE_DIGITS + 1] = "";
    const char *path, *why = NULL;
    oauth_principal_t who;
    unsigned ttl = 0;
    int rc;

    memset(&who, 0, sizeof(who));
    if (cfg->oauth == NULL || sender_of(cfg, &path) == SENDER_NONE)
        return sam_build_refusal(b, req->id, SAM_REFUSE_NOT_OFFERED, "no otp_sender is configured", 0);
    if (sam_get_text(req, SAM_T_TOKEN, token, sizeof(token)) != SAM_OK ||
        sam_get_text(req, SAM_T_CRED, cred, sizeof(cred)) != SAM_OK ||
        sam_get_text(req, SAM_T_CLIENT, client, sizeof(client)) != SAM_OK) {
        OPENSSL_cleanse(token, sizeof(token));
        return sam_build_refusal(b, req->id, SAM_REFUSE_BAD_MESSAGE, "unreadable field", 0);
    }
    /* Who asks: the SAM reads the access token itself. Only a user's own service-scope token asks for codes. */
    rc = oauth_token_check(cfg->oauth, token, strlen(token), &who);
    OPENSSL_cleanse(token, sizeof(token));
    if (rc != OAUTH_OK || who.user[0] == '\0' || who.scope != STOR_SCOPE_SERVICE) {
        uint32_t code_r = rc != OAUTH_OK ? sam_refusal_of_oauth(rc) : SAM_REFUSE_UNAUTHORIZED;
        if (code_r == SAM_REFUSE_UNAVAILABLE || code_r == SAM_REFUSE_INTERNAL)
            return sam_build_refusal(b, req->id, code_r, "the access token could not be checked", SAM_T_TOKEN);
        return sam_core_refuse_audited(cfg, req, b, STOR_EV_CHALLENGE, who.user, cred, client, code_r,
                                       rc != OAUTH_OK ? "access token not valid" : "not a user's service token",
                                       SAM_T_TOKEN);
    }
    /* The code (audited by oauth/, refusals included: unknown or another user's credential, no CHALLENGE object,
     * locked, disabled, asked again too soon, table full). */
    rc = oauth_challenge_new(cfg->oauth, who.user, cred, client, code, &ttl);
    if (rc != OAUTH_OK)
        return sam_build_refusal(b, req->id, sam_refusal_of_oauth(rc), oauth_strerror(rc), SAM_T_CRED);
    rc = deliver(cfg, who.user, cred, code, &why);
    OPENSSL_cleanse(code, sizeof(code));
    if (rc != 0) {
        /* The code is forgotten; the failure (not the code) is recorded. */
        (void)oauth_challenge_cancel(cfg->oauth, who.user, cred, client, why);
        fprintf(stderr, "csc-sam: the one-time code for %s could not be delivered: %s\n", cred, why);
        return sam_build_refusal(b, req->id, SAM_REFUSE_UNAVAILABLE, why, SAM_T_CHALLENGE);
    }
    rc = sam_build_init(b, SAM_OP_CHALLENGE | SAM_OP_REPLY, req->id);
    sam_put_u32(b, SAM_T_EXPIRES_IN, ttl);
    return rc != SAM_OK ? rc : b->err;
}
