/*
 * sam_core.c - csc-sam's op handlers (sam_core.h): one function per op served, a table from op to handler. The
 * signing core (AUTHORIZE, SIGN, ...) is added here as handlers; until then those ops are answered NOT_OFFERED.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>

#include "oauth.h"
#include "sam_core.h"

typedef int (*handler_fn)(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/* The storage check of HELLO: a read transaction that finds the audit log's head. */
static int read_tip(stor_txn_t *t, void *arg)
{
    uint64_t seq;
    uint8_t hash[32];
    (void)arg;
    return stor_txn_audit_tip(t, &seq, hash);
}

/* HELLO: the protocol version, who this is, and whether the token is logged in and the database readable now. */
static int op_hello(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    int hsm_ok = cfg->hsm != NULL && hsm_ready(cfg->hsm) == HSM_OK;
    int stor_ok = stor_read(cfg->stor, read_tip, NULL) == STOR_OK;
    int rc = sam_build_init(b, SAM_OP_HELLO | SAM_OP_REPLY, req->id);
    sam_put_u32(b, SAM_T_VERSION, SAM_VERSION);
    sam_put_str(b, SAM_T_IDENTITY, cfg->identity);
    sam_put_u32(b, SAM_T_HSM_STATE, hsm_ok ? SAM_HSM_READY : SAM_HSM_UNAVAILABLE);
    sam_put_u32(b, SAM_T_STORAGE_STATE, stor_ok ? SAM_HSM_READY : SAM_HSM_UNAVAILABLE);
    return rc != SAM_OK ? rc : b->err; /* the builder's first error sticks */
}

static const struct {
    unsigned op;
    handler_fn fn;
} handlers[] = {
    {SAM_OP_HELLO, op_hello},
    {SAM_OP_STAMP, sam_op_stamp},
    {SAM_OP_AUTHORIZE, sam_op_authorize},
    {SAM_OP_AUTHORIZE_CHECK, sam_op_authorize_check},
    {SAM_OP_EXTEND, sam_op_extend},
    {SAM_OP_SIGN, sam_op_sign},
    {SAM_OP_SIGN_RESERVED, sam_op_sign_reserved},
    {SAM_OP_CHALLENGE, sam_op_challenge},
    {SAM_OP_CONSENT, sam_op_consent},
    {SAM_OP_APPROVE, sam_op_approve},
};

int sam_core_handle(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
        if (handlers[i].op == req->op)
            return handlers[i].fn(cfg, req, b);
    char reason[64];
    snprintf(reason, sizeof(reason), "%s is not offered by this SAM", sam_op_name(req->op));
    return sam_build_refusal(b, req->id, SAM_REFUSE_NOT_OFFERED, reason, 0);
}

uint32_t sam_refusal_of_oauth(int code)
{
    switch (code) {
    case OAUTH_ERR_DENIED:         /* a wrong factor */
    case OAUTH_ERR_MISMATCH:       /* another user's or credential's SAD */
        return SAM_REFUSE_UNAUTHORIZED;
    case OAUTH_ERR_INVALID:        /* unknown, malformed or revoked: the front end reads it per subject */
        return SAM_REFUSE_NOT_FOUND;
    case OAUTH_ERR_EXPIRED:
        return SAM_REFUSE_EXPIRED;
    case OAUTH_ERR_EXHAUSTED:
        return SAM_REFUSE_EXHAUSTED;
    case OAUTH_ERR_NOT_AUTHORIZED:
        return SAM_REFUSE_NOT_BOUND;
    case OAUTH_ERR_DISABLED:
        return SAM_REFUSE_DISABLED;
    case OAUTH_ERR_LOCKED:
        return SAM_REFUSE_LOCKED;
    case OAUTH_ERR_BUSY:
        return SAM_REFUSE_BUSY;
    case OAUTH_ERR_RATE:
        return SAM_REFUSE_RATE;
    case OAUTH_ERR_FULL:
        return SAM_REFUSE_FULL;
    case OAUTH_ERR_INVAL:          /* a value oauth/ refused to look at: the front end reads it back as INVAL */
        return SAM_REFUSE_BAD_MESSAGE;
    case OAUTH_ERR_STORAGE:
        return SAM_REFUSE_UNAVAILABLE;
    default:
        return SAM_REFUSE_INTERNAL;
    }
}

static int append_audit(stor_txn_t *t, void *arg)
{
    return stor_txn_audit_append(t, arg);
}

int sam_core_refuse_audited(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, uint32_t event,
                            const char *user, const char *cred, const char *client, uint32_t code, const char *reason,
                            unsigned about)
{
    stor_audit_t rec;
    memset(&rec, 0, sizeof(rec));
    rec.event = event;
    rec.result = STOR_RES_DENIED;
    snprintf(rec.user, sizeof(rec.user), "%s", user != NULL ? user : "");
    snprintf(rec.cred, sizeof(rec.cred), "%s", cred != NULL ? cred : "");
    snprintf(rec.client, sizeof(rec.client), "%s", client != NULL ? client : "");
    snprintf(rec.detail, sizeof(rec.detail), "csc-sam refused %s: %s", sam_op_name(req->op), reason);
    int rc = stor_write(cfg->stor, append_audit, &rec);
    if (rc != STOR_OK) /* still refused: a refusal never needs its record to stand */
        fprintf(stderr, "csc-sam: cannot audit a refused %s: %s\n", sam_op_name(req->op), stor_strerror(rc));
    return sam_build_refusal(b, req->id, code, reason, about);
}

void sam_core_audit_peer(const sam_server_config_t *cfg, const sam_peer_t *peer)
{
    stor_audit_t rec;
    memset(&rec, 0, sizeof(rec));
    rec.event = STOR_EV_SAM;
    rec.result = STOR_RES_DENIED;
    snprintf(rec.client, sizeof(rec.client), "uid=%u", (unsigned)peer->uid);
    snprintf(rec.detail, sizeof(rec.detail), "action=peer.refused uid=%u gid=%u pid=%d allowed_uid=%u",
             (unsigned)peer->uid, (unsigned)peer->gid, (int)peer->pid, (unsigned)cfg->allowed_uid);
    int rc = stor_write(cfg->stor, append_audit, &rec);
    if (rc != STOR_OK)
        fprintf(stderr, "csc-sam: cannot audit the refused peer uid %u: %s\n", (unsigned)peer->uid,
                stor_strerror(rc));
}

int sam_refuse(sam_builder_t *b, const sam_msg_t *req, uint32_t code, const char *reason, unsigned about)
{
    return sam_build_refusal(b, req->id, code, reason, about);
}

int sam_refuse_oauth(sam_builder_t *b, const sam_msg_t *req, int oauth_rc, unsigned about)
{
    return sam_build_refusal(b, req->id, sam_refusal_of_oauth(oauth_rc), oauth_strerror(oauth_rc), about);
}

void sam_text(const sam_msg_t *req, unsigned tag, char *out, size_t outsz)
{
    if (sam_get_text(req, tag, out, outsz) != SAM_OK)
        out[0] = '\0'; /* absent (the decoder bounded every present value by its table, which fits out) */
}

int sam_principal(const sam_server_config_t *cfg, const sam_msg_t *req, int user_only, oauth_principal_t *p)
{
    char tok[SAM_TOKEN_MAX + 1];
    sam_text(req, SAM_T_TOKEN, tok, sizeof(tok));
    int rc = oauth_token_check(cfg->oauth, tok, strlen(tok), p);
    OPENSSL_cleanse(tok, sizeof(tok));
    if (rc == OAUTH_OK && (p->user[0] == '\0' || (user_only && p->scope == STOR_SCOPE_CREDENTIAL)))
        rc = OAUTH_ERR_INVALID;
    return rc;
}

void sam_audit_denied(const sam_server_config_t *cfg, uint32_t event, const char *user, const char *cred,
                      const char *client, const char *fmt, ...)
{
    stor_audit_t rec;
    memset(&rec, 0, sizeof(rec));
    rec.event = event;
    rec.result = STOR_RES_DENIED;
    snprintf(rec.user, sizeof(rec.user), "%s", user != NULL ? user : "");
    snprintf(rec.cred, sizeof(rec.cred), "%s", cred != NULL ? cred : "");
    snprintf(rec.client, sizeof(rec.client), "%s", client != NULL ? client : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rec.detail, sizeof(rec.detail), fmt, ap);
    va_end(ap);
    int rc = stor_write(cfg->stor, append_audit, &rec);
    if (rc != STOR_OK)
        fprintf(stderr, "csc-sam: cannot audit a refusal (%s): %s\n", rec.detail, stor_strerror(rc));
}

void sam_core_audit_malformed(const sam_server_config_t *cfg, const char *why)
{
    sam_audit_denied(cfg, STOR_EV_SAM, "", "", "csc-server", "action=request.malformed why=%s", why);
}
