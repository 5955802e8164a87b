/*
 * sam_op_challenge.c - CHALLENGE (sam_core.h): credentials/getChallenge and v1 credentials/sendOTP. The SAM checks the
 * caller's access token itself (a user's service-scope token), makes the one-time code (oauth_challenge_new: only its
 * keyed hash is kept, in this process), and delivers it out of band through the configured sender; the front end
 * never sees the code and never starts the sender.
 *
 * Senders (otp_sender, docs/configuration.md):
 *   exec:/path/prog  run by csc-sam's sender helper (sam_sender.h: csc-sam itself cannot fork or execve under its
 *                    filter): no shell, empty argv, fixed environment, the program's stdin receives
 *                    "user=U\ncredential=C\nchannel=CHALLENGE\ncode=NNNNNN\n"; stdout and stderr go to
 *                    /dev/null (they are never logged, the code could be in them); exit status 0 = delivered;
 *                    killed after otp_sender_timeout seconds (a failure). Without a helper (cfg->sender NULL) the
 *                    delivery fails: "sender could not be started".
 *   file:/path       appends "U C CHALLENGE NNNNNN\n" (mode 0600): for tests and demonstrations only.
 * A delivery that fails forgets the code and is audited (oauth_challenge_cancel); the refusal is UNAVAILABLE about
 * SAM_T_CHALLENGE, which the front end answers 503 "The one-time code could not be delivered".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "sam_core.h"
#include "sam_sender.h"

_Static_assert(SAM_SENDER_NAME_MAX == STOR_NAME_MAX, "the helper's names are storage's");
_Static_assert(SAM_SENDER_CODE_LEN == OAUTH_CHALLENGE_DIGITS, "the helper's codes are oauth/'s");

typedef enum { SENDER_NONE = 0, SENDER_EXEC, SENDER_FILE } sender_kind_t;

/* The kind of cfg's sender and its path (within otp_sender). srv_config.c and csc-api checked it at start-up. */
int sam_sender_kind(const sam_server_config_t *cfg, const char **path)
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

int sam_sink_append(const char *path, const char *line, size_t len, const char **why)
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

/* Deliver code to user out of band. @return 0, or -1 with the reason in why (for the audit record). */
static int deliver(const sam_server_config_t *cfg, const char *user, const char *cred, const char *code, char *why,
                   size_t whysz)
{
    char line[3 * STOR_NAME_MAX + 128];
    const char *path, *reason = NULL;
    int n, rc;

    if (sam_sender_kind(cfg, &path) == SENDER_EXEC)
        return sam_sender_deliver(cfg->sender, cfg->otp_sender_timeout, user, cred, code, why, whysz);
    n = snprintf(line, sizeof(line), "%s %s %s %s\n", user, cred, OAUTH_CHALLENGE_ID, code);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        reason = "message too long";
        rc = -1;
    } else {
        rc = sam_sink_append(path, line, (size_t)n, &reason);
    }
    OPENSSL_cleanse(line, sizeof(line));
    if (rc != 0)
        snprintf(why, whysz, "%s", reason);
    return rc;
}

int sam_op_challenge(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char token[SAM_TOKEN_MAX + 1], cred[SAM_NAME_MAX + 1], client[SAM_CLIENT_MAX + 1];
    char code[OAUTH_CHALLENGE_DIGITS + 1] = "";
    char why[96] = "";
    const char *path;
    oauth_principal_t who;
    unsigned ttl = 0;
    int rc;

    memset(&who, 0, sizeof(who));
    if (cfg->oauth == NULL || sam_sender_kind(cfg, &path) == SENDER_NONE)
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
        if (code_r == SAM_REFUSE_UNAVAILABLE || code_r == SAM_REFUSE_DB_DOWN || code_r == SAM_REFUSE_INTERNAL)
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
    rc = deliver(cfg, who.user, cred, code, why, sizeof(why));
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
