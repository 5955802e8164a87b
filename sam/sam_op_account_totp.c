/*
 * sam_op_account_totp.c - /account's new TOTP secret (sam_core.h), in two steps, as csc-sam alone decides them:
 *   ACCOUNT_TOTP_BEGIN   a current code of the old secret (replay-protected like every TOTP check: a time step used
 *                        once is spent; a wrong or replayed code counts as a failed sign-in of the user); a new secret
 *                        is made, sealed under the factor key for the user (sam_factor.c, AAD = user) and kept in a
 *                        pending ticket of the enrollment ticket table for 15 minutes; the reply is the secret (the
 *                        page shows it with its QR code, as /enroll does) and the ticket.
 *   ACCOUNT_TOTP_FINISH  the ticket and a code of the new secret: only then the user's sealed TOTP is replaced (the
 *                        code's step spent), the ticket dropped, every other browser session of the user ended and
 *                        every token and SAD of the user revoked, in one write with its audit record. A wrong code
 *                        keeps the old secret (and counts).
 * The ticket's kind: a pending TOTP change is stored under SHA-256("csc-account-totp" NUL ticket), an /enroll ticket
 * under SHA-256(ticket), so neither op ever finds the other's. Both ops read the browser session themselves and
 * compare the form's CSRF token (sam_account_session); the ticket must be the session user's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sam_core.h"
#include "sam_server.h"

#define TICKET_TTL 900 /* seconds a pending secret waits for its first code */

typedef struct totp_change {
    const sam_server_config_t *cfg;
    const char *user, *client;
    uint8_t keep[32];                        /* the session that makes the change: it stays */
    uint8_t ticket_hash[32];
    int64_t now, step;
    int code_ok;                             /* the code was right (before the write's checks) */
    uint8_t fp[STOR_TOTP_SEALED_MAX];        /* the user's sealed secret as read (changed meanwhile: refused) */
    uint32_t fp_len;
    uint32_t refusal;                        /* 0, or SAM_REFUSE_* decided in the write */
    const char *why;
    unsigned sessions;
    stor_revoked_t r;
    stor_user_t u;
    stor_enroll_ticket_t k;
    stor_audit_t a;
} totp_change_t;

/* SHA-256("csc-account-totp" NUL ticket): the pending TOTP change's key (see above). */
static int ticket_key(const char *ticket, uint8_t out[32])
{
    static const char kind[] = "csc-account-totp";
    unsigned int n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(c, kind, sizeof(kind)) == 1 && EVP_DigestUpdate(c, ticket, strlen(ticket)) == 1 &&
             EVP_DigestFinal_ex(c, out, &n) == 1 && n == 32;
    EVP_MD_CTX_free(c);
    return ok ? 0 : -1;
}

static void totp_audit(totp_change_t *j, uint32_t result, const char *action, const char *why)
{
    memset(&j->a, 0, sizeof(j->a));
    j->a.event = STOR_EV_ENROLL;
    j->a.result = result;
    snprintf(j->a.user, sizeof(j->a.user), "%s", j->user);
    snprintf(j->a.client, sizeof(j->a.client), "%s", j->client);
    if (why != NULL)
        snprintf(j->a.detail, sizeof(j->a.detail), "action=%s by=account denied: %s", action, why);
    else if (strcmp(action, "totp.change") == 0)
        snprintf(j->a.detail, sizeof(j->a.detail),
                 "action=totp.change by=account revoked: sessions=%u tokens=%u sads=%u codes=%u", j->sessions,
                 j->r.tokens, j->r.sads, j->r.pending);
    else
        snprintf(j->a.detail, sizeof(j->a.detail), "action=%s by=account", action);
}

/* The user as the write sees it: active, not locked, with the TOTP secret that was read. 0 (j->refusal set when
 * not), or a storage error. */
static int user_now(stor_txn_t *t, totp_change_t *j)
{
    int rc = stor_txn_user_get(t, j->user, &j->u);
    if (rc == STOR_ERR_NOTFOUND || (rc == 0 && j->u.status != STOR_USER_ACTIVE)) {
        j->refusal = SAM_REFUSE_DISABLED;
        j->why = "the user is not active";
        return 0;
    }
    if (rc != 0)
        return rc;
    if (j->u.locked_until > j->now) {
        j->refusal = SAM_REFUSE_LOCKED;
        j->why = "the user is locked";
    }
    return 0;
}

/* A wrong or replayed code: the user's counters (as LOGIN counts), with its record; committed. */
static int count_wrong(stor_txn_t *t, totp_change_t *j, const char *action, const char *why)
{
    int rc = oauth_factor_failure(j->cfg->oauth, t, &j->u, NULL, j->user, j->client, j->now);
    if (rc != 0 || (rc = stor_txn_user_put(t, &j->u, 0)) != 0)
        return rc;
    j->refusal = SAM_REFUSE_UNAUTHORIZED;
    j->why = why;
    totp_audit(j, STOR_RES_DENIED, action, why);
    return stor_txn_audit_append(t, &j->a);
}

static int read_user_fn(stor_txn_t *t, void *arg)
{
    totp_change_t *j = arg;
    int rc = user_now(t, j);
    if (rc == 0 && j->refusal == 0) {
        j->fp_len = j->u.totp_sealed_len <= sizeof(j->fp) ? j->u.totp_sealed_len : 0;
        memcpy(j->fp, j->u.totp_sealed, j->fp_len);
    }
    return rc;
}

static int sealed_changed(const totp_change_t *j)
{
    return j->u.totp_sealed_len != j->fp_len || CRYPTO_memcmp(j->u.totp_sealed, j->fp, j->fp_len) != 0;
}

static int begin_fn(stor_txn_t *t, void *arg)
{
    totp_change_t *j = arg;
    j->refusal = 0; /* each run decides anew: a batch may run again (STOR_ERR_RETRY) */
    j->why = NULL;
    int rc = user_now(t, j);
    if (rc != 0 || j->refusal != 0)
        return rc != 0 ? rc : 1;
    if (sealed_changed(j)) {
        j->refusal = SAM_REFUSE_UNAUTHORIZED;
        j->why = "the TOTP secret changed meanwhile";
        return 1;
    }
    if (!j->code_ok)
        return count_wrong(t, j, "totp.change.begin", "wrong code");
    if (j->step <= j->u.totp_last_step)
        return count_wrong(t, j, "totp.change.begin", "replayed code");
    j->u.totp_last_step = j->step; /* spent */
    memcpy(j->k.hash, j->ticket_hash, 32);
    snprintf(j->k.user, sizeof(j->k.user), "%s", j->user);
    j->k.expires_at = j->now + TICKET_TTL;
    totp_audit(j, STOR_RES_OK, "totp.change.begin", NULL);
    if ((rc = stor_txn_user_put(t, &j->u, 0)) != 0 || (rc = stor_txn_enroll_ticket_put(t, &j->k)) != 0)
        return rc;
    return stor_txn_audit_append(t, &j->a);
}

/* The user's current secret (sealed; a clear one of an older record as it is). 0, or -1 (none opens). */
static int open_current(const sam_server_config_t *cfg, const stor_user_t *u, uint8_t out[STOR_TOTP_MAX], size_t *len)
{
    if (u->totp_sealed_len != 0)
        return sam_user_totp_open(cfg->hsm, u, out, len) == 0 ? 0 : -1;
    if (u->totp_secret_len == 0 || u->totp_secret_len > STOR_TOTP_MAX)
        return -1;
    memcpy(out, u->totp_secret, u->totp_secret_len);
    *len = u->totp_secret_len;
    return 0;
}

static unsigned window_of(const sam_server_config_t *cfg)
{
    unsigned w = oauth_config(cfg->oauth)->totp_window;
    return w != 0 ? w : 1;
}

/* otp against secret at j's clock (the step into j->step, j->code_ok): 0, or -1 with the refusal built (*rc). */
static int code_check(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, totp_change_t *j,
                      const uint8_t *secret, size_t len, const char *otp, int *rc)
{
    int orc = oauth_totp_check(secret, len, otp, strlen(otp), j->now, window_of(cfg), &j->step);
    if (orc != OAUTH_OK && orc != OAUTH_ERR_DENIED) {
        *rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "the code cannot be checked", 0);
        return -1;
    }
    j->code_ok = orc == OAUTH_OK;
    return 0;
}

/* The refusal of j after a write that returned src (1: refused in the write, 0: maybe counted). */
static int totp_refusal(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, totp_change_t *j,
                        int src, unsigned about)
{
    if (src != 0 && src != 1)
        return sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0);
    if (src == 1) /* nothing written: audit the refusal now */
        return sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, j->user, NULL, j->client, j->refusal, j->why,
                                       about);
    return sam_build_refusal(b, req->id, j->refusal, j->why, SAM_T_OTP); /* counted and audited in the write */
}

int sam_op_account_totp_begin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char otp[SAM_OTP_MAX + 1], ticket[OAUTH_TOKEN_BUFLEN];
    uint8_t raw[32], secret[OAUTH_TOTP_SECRET_LEN], cur[STOR_TOTP_MAX];
    size_t cur_len = 0;
    sam_page_t p;
    int rc;

    totp_change_t *j = OPENSSL_zalloc(sizeof(*j));
    if (j == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    sam_text(req, SAM_T_OTP, otp, sizeof(otp));
    if (sam_account_session(cfg, req, b, &p, &j->user, &j->client, j->keep, &rc) != 0)
        goto out;
    j->cfg = cfg;
    j->now = oauth_decision_time(cfg->oauth);
    int src = stor_read(cfg->stor, read_user_fn, j);
    if (src != 0 || j->refusal != 0) {
        rc = totp_refusal(cfg, req, b, j, src == 0 ? 1 : src, SAM_T_SESSION);
        goto out;
    }
    if (open_current(cfg, &j->u, cur, &cur_len) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "the TOTP secret cannot be opened now", 0);
        goto out;
    }
    if (code_check(cfg, req, b, j, cur, cur_len, otp, &rc) != 0)
        goto out;
    /* What a right code gets, made before the write: the ticket and the new secret, sealed for the user. */
    if (RAND_priv_bytes(raw, sizeof(raw)) != 1 || oauth_totp_new_secret(secret) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "no randomness", 0);
        goto out;
    }
    if (sam_totp_seal(cfg->hsm, j->user, secret, sizeof(secret), j->k.totp_sealed, &j->k.totp_sealed_len) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "the TOTP secret cannot be sealed (factor key)", 0);
        goto out;
    }
    oauth_b64_encode(raw, sizeof(raw), ticket, OAUTH_B64_URL);
    if (ticket_key(ticket, j->ticket_hash) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "cannot hash the ticket", 0);
        goto out;
    }
    src = stor_write(cfg->stor, begin_fn, j);
    if (src != 0 || j->refusal != 0) {
        rc = totp_refusal(cfg, req, b, j, src, SAM_T_SESSION);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_ACCOUNT_TOTP_BEGIN | SAM_OP_REPLY, req->id);
    sam_put_u32(b, SAM_T_EXPIRES_IN, TICKET_TTL);
    sam_put_str(b, SAM_T_ENROLL_TICKET, ticket);
    sam_put_bytes(b, SAM_T_TOTP_SECRET, secret, sizeof(secret));
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_cleanse(otp, sizeof(otp));
    OPENSSL_cleanse(ticket, sizeof(ticket));
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(cur, sizeof(cur));
    sam_page_close(&p);
    OPENSSL_clear_free(j, sizeof(*j));
    return rc;
}

/* The pending ticket of the session's user, unexpired. 0 (j->refusal set when not), or a storage error. */
static int ticket_now(stor_txn_t *t, totp_change_t *j)
{
    int rc = stor_txn_enroll_ticket_get(t, j->ticket_hash, &j->k);
    if (rc == STOR_ERR_NOTFOUND || (rc == 0 && strcmp(j->k.user, j->user) != 0)) {
        j->refusal = SAM_REFUSE_NOT_FOUND; /* none, or another user's: the same answer */
        j->why = "no such pending TOTP change";
        return 0;
    }
    if (rc != 0)
        return rc;
    if (j->k.expires_at <= j->now) {
        j->refusal = SAM_REFUSE_EXPIRED;
        j->why = "the pending TOTP change has expired";
    }
    return 0;
}

static int read_ticket_fn(stor_txn_t *t, void *arg)
{
    totp_change_t *j = arg;
    int rc = ticket_now(t, j);
    return rc != 0 || j->refusal != 0 ? rc : user_now(t, j);
}

static int finish_fn(stor_txn_t *t, void *arg)
{
    totp_change_t *j = arg;
    j->refusal = 0; /* each run decides anew: a batch may run again (STOR_ERR_RETRY) */
    j->why = NULL;
    int rc = ticket_now(t, j);
    if (rc == 0 && j->refusal == 0)
        rc = user_now(t, j);
    if (rc != 0 || j->refusal != 0)
        return rc != 0 ? rc : 1;
    if (!j->code_ok) /* the old secret stays; the ticket too, until it expires */
        return count_wrong(t, j, "totp.change", "wrong code of the new secret");
    if (j->step <= j->u.totp_last_step) /* the user's steps are spent whichever secret made the code */
        return count_wrong(t, j, "totp.change", "replayed code");
    if (j->k.totp_sealed_len == 0 || j->k.totp_sealed_len > sizeof(j->u.totp_sealed))
        return STOR_ERR_CORRUPT;
    oauth_factor_success(&j->u, NULL);
    OPENSSL_cleanse(j->u.totp_secret, sizeof(j->u.totp_secret));
    j->u.totp_secret_len = 0;
    memcpy(j->u.totp_sealed, j->k.totp_sealed, j->k.totp_sealed_len); /* sealed for this user (AAD = user) */
    j->u.totp_sealed_len = j->k.totp_sealed_len;
    j->u.totp_last_step = j->step; /* the code that proved it is spent */
    if ((rc = stor_txn_enroll_ticket_del(t, j->ticket_hash)) != 0 ||
        (rc = stor_txn_user_revoke_all(t, j->user, j->now, &j->r)) != 0 ||
        (rc = stor_txn_websession_end_user(t, j->user, j->keep, j->now, &j->sessions)) != 0 ||
        (rc = stor_txn_user_put(t, &j->u, 0)) != 0)
        return rc;
    totp_audit(j, STOR_RES_OK, "totp.change", NULL);
    return stor_txn_audit_append(t, &j->a);
}

int sam_op_account_totp_finish(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char otp[SAM_OTP_MAX + 1], ticket[SAM_TOKEN_MAX + 1];
    uint8_t secret[STOR_TOTP_MAX];
    size_t len = 0;
    sam_page_t p;
    int rc;

    totp_change_t *j = OPENSSL_zalloc(sizeof(*j));
    if (j == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    sam_text(req, SAM_T_OTP, otp, sizeof(otp));
    sam_text(req, SAM_T_ENROLL_TICKET, ticket, sizeof(ticket));
    if (sam_account_session(cfg, req, b, &p, &j->user, &j->client, j->keep, &rc) != 0)
        goto out;
    j->cfg = cfg;
    j->now = oauth_decision_time(cfg->oauth);
    if (ticket_key(ticket, j->ticket_hash) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "cannot hash the ticket", 0);
        goto out;
    }
    int src = stor_read(cfg->stor, read_ticket_fn, j);
    if (src != 0 || j->refusal != 0) {
        rc = totp_refusal(cfg, req, b, j, src == 0 ? 1 : src, SAM_T_ENROLL_TICKET);
        goto out;
    }
    if (sam_totp_open(cfg->hsm, j->user, j->k.totp_sealed, j->k.totp_sealed_len, secret, &len) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "the pending TOTP secret cannot be opened now", 0);
        goto out;
    }
    if (code_check(cfg, req, b, j, secret, len, otp, &rc) != 0)
        goto out;
    src = stor_write(cfg->stor, finish_fn, j);
    if (src != 0 || j->refusal != 0) {
        rc = totp_refusal(cfg, req, b, j, src, SAM_T_ENROLL_TICKET);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_ACCOUNT_TOTP_FINISH | SAM_OP_REPLY, req->id);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_cleanse(otp, sizeof(otp));
    OPENSSL_cleanse(ticket, sizeof(ticket));
    OPENSSL_cleanse(secret, sizeof(secret));
    sam_page_close(&p);
    OPENSSL_clear_free(j, sizeof(*j));
    return rc;
}
