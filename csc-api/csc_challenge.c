/*
 * csc_challenge.c - credentials/getChallenge (CSC API v2.0.0.2 sec. 11.8) and v1 credentials/sendOTP: a one-time code
 * for the CHALLENGE authentication object, made by oauth_challenge_new() and delivered out of band by the
 * configured sender (otp_sender), never to the client. The client then passes the code the user received to
 * credentials/authorize as authData {"id":"CHALLENGE","value":...} (v1: "OTP").
 *
 * Senders:
 *   exec:/path/prog  fork + execve (no shell, empty argv, fixed environment), the program's stdin receives
 *                    "user=U\ncredential=C\nchannel=CHALLENGE\ncode=NNNNNN\n"; stdout and stderr go to
 *                    /dev/null (they are never logged, the code could be in them); exit status 0 = delivered;
 *                    killed after otp_sender_timeout seconds (a failure).
 *   file:/path       appends "U C CHALLENGE NNNNNN\n" (mode 0600): for tests and demonstrations only.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <openssl/crypto.h>
#include "csc_int.h"

int csc_sender_init(csc_t *c)
{
    const char *s = c->cfg.otp_sender;

    c->sender_kind = CSC_SENDER_NONE;
    if (s == NULL || s[0] == '\0')
        return 0;
    if (strncmp(s, "exec:", 5) == 0)
        c->sender_kind = CSC_SENDER_EXEC;
    else if (strncmp(s, "file:", 5) == 0)
        c->sender_kind = CSC_SENDER_FILE;
    else {
        fprintf(stderr, "csc: otp_sender must be exec:/path or file:/path\n");
        return -1;
    }
    s += 5;
    if (s[0] != '/' || strlen(s) >= sizeof(c->sender_path)) {
        fprintf(stderr, "csc: otp_sender needs an absolute path\n");
        return -1;
    }
    snprintf(c->sender_path, sizeof(c->sender_path), "%s", s);
    if (c->sender_kind == CSC_SENDER_EXEC && access(c->sender_path, X_OK) != 0) {
        fprintf(stderr, "csc: otp_sender %s: not an executable program\n", c->sender_path);
        return -1;
    }
    if (c->cfg.otp_sender_timeout == 0 || c->cfg.otp_sender_timeout > 120) {
        fprintf(stderr, "csc: otp_sender_timeout must be 1..120 seconds\n");
        return -1;
    }
    return 0;
}

int csc_method_offered(const csc_t *c, const char *name)
{
    if (strcmp(name, "credentials/getChallenge") == 0 || strcmp(name, "credentials/sendOTP") == 0)
        return c->sender_kind != CSC_SENDER_NONE;
    if (strcmp(name, "signatures/timestamp") == 0)
        return c->tsa;
    return 1;
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

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the program with msg on its stdin; 0 when it exited with status 0 within the timeout. */
static int send_exec(const csc_t *c, const char *msg, size_t len, const char **why)
{
    char *const argv[] = {(char *)c->sender_path, NULL};
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
        execve(c->sender_path, argv, envp);
        _exit(127);
    }
    close(pfd[0]);
    close(devnull);
    if (pid < 0) {
        close(pfd[1]);
        return -1;
    }
    /* A few dozen bytes: they fit in the pipe buffer, so this does not wait for the child. EPIPE (the
     * child exited without reading; SIGPIPE is ignored by the server) shows in the exit status below. */
    (void)write_all(pfd[1], msg, len);
    close(pfd[1]);
    int64_t deadline = mono_ms() + (int64_t)c->cfg.otp_sender_timeout * 1000;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            *why = "sender lost";
            return -1;
        }
        if (mono_ms() >= deadline) {
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

static int send_file(const csc_t *c, const char *line, size_t len, const char **why)
{
    *why = "sink not writable";
    int fd = open(c->sender_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, line, len);
    if (close(fd) != 0)
        rc = -1;
    return rc;
}

/* Deliver code to user out of band. @return 0, or -1 with a static reason in *why (for the audit record). */
static int deliver(const csc_t *c, const char *user, const char *cred, const char *code, const char **why)
{
    char msg[3 * STOR_NAME_MAX + 128];
    int n, rc;

    if (c->sender_kind == CSC_SENDER_EXEC)
        n = snprintf(msg, sizeof(msg), "user=%s\ncredential=%s\nchannel=%s\ncode=%s\n", user, cred,
                     OAUTH_CHALLENGE_ID, code);
    else
        n = snprintf(msg, sizeof(msg), "%s %s %s %s\n", user, cred, OAUTH_CHALLENGE_ID, code);
    if (n < 0 || (size_t)n >= sizeof(msg)) {
        *why = "message too long";
        rc = -1;
    } else if (c->sender_kind == CSC_SENDER_EXEC) {
        rc = send_exec(c, msg, (size_t)n, why);
    } else {
        rc = send_file(c, msg, (size_t)n, why);
    }
    OPENSSL_cleanse(msg, sizeof(msg));
    return rc;
}

/* Shared by getChallenge and sendOTP once the credential and object are known to be right. */
static int issue(csc_req_t *r, const stor_cred_t *cred)
{
    char code[OAUTH_CHALLENGE_DIGITS + 1];
    unsigned ttl = 0;
    const char *why = NULL;
    oauth_t *o = r->csc->oauth;

    /* The credential rows of csc_req.c, plus what only a one-time code has: asked again too soon (429), and v1's
     * "OTP locked". */
    static const csc_err_row_t challenge_v2[] = {
        {OAUTH_ERR_RATE, 429, "temporarily_unavailable",
         "A one-time code was sent a moment ago: use it, or ask again in a few seconds", 0},
        {0, 0, NULL, NULL, 0}};
    static const csc_err_row_t challenge_v1[] = {
        {OAUTH_ERR_RATE, 429, "temporarily_unavailable",
         "A one-time code was sent a moment ago: use it, or ask again in a few seconds", 0},
        {OAUTH_ERR_LOCKED, 400, "invalid_request", "OTP locked", 0},
        {0, 0, NULL, NULL, 0}};
    int crc = oauth_challenge_new(o, r->principal.user, cred->id, r->call->client, code, &ttl);
    switch (crc) {
    case OAUTH_OK:
        break;
    default:
        return csc_fail_oauth(r, CSC_ABOUT_CREDENTIAL, crc, r->v1 ? challenge_v1 : challenge_v2);
    }
    int rc = deliver(r->csc, r->principal.user, cred->id, code, &why);
    OPENSSL_cleanse(code, sizeof(code));
    if (rc != 0) {
        /* The code is forgotten; the failure (not the code) is recorded. */
        (void)oauth_challenge_cancel(o, r->principal.user, cred->id, r->call->client, why);
        return csc_fail(r, 503, "temporarily_unavailable", "The one-time code could not be delivered");
    }
    r->status = 204;
    return 0;
}

static bool cred_has_challenge(const stor_cred_t *cred)
{
    return cred->auth_mode == STOR_AUTH_EXPLICIT && oauth_expr_names(cred->auth_expr, OAUTH_CHALLENGE_ID);
}

int csc_m_get_challenge(csc_req_t *r)
{
    const char *id, *obj;
    stor_cred_t *cred = NULL;
    int rc = -1;

    if (r->csc->sender_kind == CSC_SENDER_NONE)
        return csc_fail(r, 501, "not_implemented", "This method is not implemented by this service");
    if (csc_req_string(r, "credentialID", &id, STOR_NAME_MAX * 4,
                       "Missing (or invalid type) string parameter credentialID") < 0)
        return -1;
    if (csc_req_string(r, "authObjectID", &obj, 64, "Missing (or invalid type) string parameter authObjectID") < 0)
        return -1;
    if ((cred = malloc(sizeof(*cred))) == NULL)
        return csc_unavailable(r);
    if (csc_load_cred(r, id, cred) != 0)
        goto out;
    if (strcmp(obj, OAUTH_CHALLENGE_ID) != 0 || !cred_has_challenge(cred)) {
        csc_bad(r, "Invalid parameter authObjectID");
        goto out;
    }
    rc = issue(r, cred);
out:
    stor_wipe(cred, sizeof(*cred));
    free(cred);
    return rc;
}

int csc_m_send_otp(csc_req_t *r)
{
    const char *id, *s;
    stor_cred_t *cred = NULL;
    int rc = -1;

    if (r->csc->sender_kind == CSC_SENDER_NONE)
        return csc_fail(r, 501, "not_implemented", "This method is not implemented by this service");
    if (csc_req_string(r, "credentialID", &id, STOR_NAME_MAX * 4,
                       "Missing (or invalid type) string parameter credentialID") < 0)
        return -1;
    if (csc_get_string(r, "clientData", &s, 4096) < 0)
        return csc_bad(r, "Invalid parameter clientData");
    if ((cred = malloc(sizeof(*cred))) == NULL)
        return csc_unavailable(r);
    if (csc_load_cred(r, id, cred) != 0)
        goto out;
    if (!cred_has_challenge(cred)) {
        csc_bad(r, "The credential has no online OTP");
        goto out;
    }
    rc = issue(r, cred);
out:
    stor_wipe(cred, sizeof(*cred));
    free(cred);
    return rc;
}
