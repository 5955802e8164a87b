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

/* HELLO: the protocol version, who this is, and whether the token is logged in and the database readable now; on the
 * front end's socket, the sign-in pages' ticket key (the same bytes on every connection: derived once at start). The
 * builder's buffer is wiped when it is freed (sam_build_free), the key with it. */
static int op_hello(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    int hsm_ok = cfg->hsm != NULL && hsm_ready(cfg->hsm) == HSM_OK;
    int stor_ok = stor_read(cfg->stor, read_tip, NULL) == STOR_OK;
    int rc = sam_build_init(b, SAM_OP_HELLO | SAM_OP_REPLY, req->id);
    sam_put_u32(b, SAM_T_VERSION, SAM_VERSION);
    sam_put_str(b, SAM_T_IDENTITY, cfg->identity);
    sam_put_u32(b, SAM_T_HSM_STATE, hsm_ok ? SAM_HSM_READY : SAM_HSM_UNAVAILABLE);
    sam_put_u32(b, SAM_T_STORAGE_STATE, stor_ok ? SAM_HSM_READY : SAM_HSM_UNAVAILABLE);
    if (cfg->ticket_key != NULL && cfg->operators == NULL)
        sam_put_bytes(b, SAM_T_TICKET_KEY, cfg->ticket_key, SAM_TICKET_KEY_LEN);
    if (cfg->hsm != NULL)
        sam_put_u64(b, SAM_T_HSM_WAITS, hsm_session_waits(cfg->hsm));
    if (cfg->heap_usage != NULL) {
        uint64_t in_use = 0, held = 0;
        cfg->heap_usage(&in_use, &held);
        sam_put_u64(b, SAM_T_HEAP_IN_USE, in_use);
        sam_put_u64(b, SAM_T_HEAP_HELD, held);
    }
    return rc != SAM_OK ? rc : b->err; /* the builder's first error sticks */
}

typedef struct handler_row {
    unsigned op;
    handler_fn fn;
} handler_row_t;

/* The front end's socket. */
static const handler_row_t handlers[] = {
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
    {SAM_OP_ENROLL_BEGIN, sam_op_enroll_begin},
    {SAM_OP_ENROLL_FINISH, sam_op_enroll_finish},
    {SAM_OP_ACCOUNT_PIN, sam_op_account_pin},
    {SAM_OP_LOGIN, sam_op_login},
    {SAM_OP_ACCOUNT_PASSWORD, sam_op_account_password},
    {SAM_OP_ACCOUNT_TOTP_BEGIN, sam_op_account_totp_begin},
    {SAM_OP_ACCOUNT_TOTP_FINISH, sam_op_account_totp_finish},
    {SAM_OP_ACCOUNT_RESTORE, sam_op_account_restore},
    {SAM_OP_TOKEN, sam_op_token},
    {SAM_OP_REVOKE, sam_op_revoke},
    {SAM_OP_API_LOGIN, sam_op_api_login},
};

/* The operators' socket (cfg->operators; sam_op_keys.c): csc-admin's key operations. */
static const handler_row_t operator_handlers[] = {
    {SAM_OP_HELLO, op_hello},
    {SAM_OP_KEY_CREATE, sam_op_key_create},
    {SAM_OP_KEY_DESTROY, sam_op_key_destroy},
    {SAM_OP_DESTROY_PENDING, sam_op_destroy_pending},
    {SAM_OP_USER_TERMINATE, sam_op_user_terminate},
    {SAM_OP_BACKUP_INIT, sam_op_backup_init},
    {SAM_OP_BACKUP, sam_op_backup},
    {SAM_OP_RESTORE, sam_op_restore},
    {SAM_OP_CSR, sam_op_csr},
    {SAM_OP_CERT_IMPORT, sam_op_cert_import},
    {SAM_OP_RENEW, sam_op_renew},
    {SAM_OP_TSA_KEY, sam_op_tsa_key},
    {SAM_OP_AUDIT_KEY, sam_op_audit_key},
    {SAM_OP_AUDIT_HEAD, sam_op_audit_head},
    {SAM_OP_AUDIT_PUBKEY, sam_op_audit_pubkey},
    {SAM_OP_AUDIT_REPORT, sam_op_audit_report},
    {SAM_OP_BACKUP_SIGN, sam_op_audit_report},
    {SAM_OP_ENROLL_ISSUE, sam_op_enroll_issue},
    {SAM_OP_OPERATOR_LOGIN, sam_op_operator_login},
    {SAM_OP_OPERATOR_NEW, sam_op_operator_new},
    {SAM_OP_OPERATOR_ENROLL_BEGIN, sam_op_operator_enroll_begin},
    {SAM_OP_OPERATOR_ENROLL_FINISH, sam_op_operator_enroll_finish},
};

/* An op of the operators' socket (csc-admin's), as opposed to the front end's. */
static int is_operator_op(unsigned op)
{
    return op == SAM_OP_AUDIT_HEAD || op == SAM_OP_AUDIT_REPORT || op == SAM_OP_BACKUP_SIGN ||
           (op >= SAM_OP_KEY_CREATE && op < SAM_OP_REPLY);
}

/* The peer of the connection this thread serves (sam_core_peer_set). */
static _Thread_local int peer_known;
static _Thread_local uint32_t peer_uid;

void sam_core_peer_set(const sam_peer_t *peer)
{
    peer_known = peer != NULL;
    peer_uid = peer != NULL ? (uint32_t)peer->uid : 0;
}

int sam_core_origin(const sam_msg_t *req, adm_origin_t *o)
{
    char claim[SAM_ORIGIN_MAX + 1];
    sam_text(req, SAM_T_ORIGIN, claim, sizeof(claim));
    int rc = adm_origin_parse(claim, o);
    if (rc != 0) { /* no claim, or not one csc-admin makes: the kernel's uid alone, and no host (no session fits) */
        snprintf(o->os_user, sizeof(o->os_user), "-");
        snprintf(o->host, sizeof(o->host), "-");
        snprintf(o->tty, sizeof(o->tty), "-");
        o->uid = peer_uid;
    }
    o->peer_known = peer_known;
    o->peer_uid = peer_uid;
    return rc;
}

static int dispatch(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/* A request on the operators' socket: its records and requests (a refusal of a front-end op too) carry where it comes
 * from (stor_audit_origin_set) while it runs. */
static int handle_operator_op(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    adm_origin_t o;
    char text[STOR_ORIGIN_MAX + 1];
    int claimed = sam_core_origin(req, &o) == 0;
    adm_origin_text(&o, text, sizeof(text));
    if (!claimed)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), " claim=none");
    stor_audit_origin_set(text);
    int rc = dispatch(cfg, req, b);
    stor_audit_origin_set(NULL);
    return rc;
}

int sam_core_handle(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    return cfg->operators != NULL && req->op != SAM_OP_HELLO ? handle_operator_op(cfg, req, b) : dispatch(cfg, req, b);
}

static int dispatch(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    int operators = cfg->operators != NULL;
    const handler_row_t *rows = operators ? operator_handlers : handlers;
    size_t n = operators ? sizeof(operator_handlers) / sizeof(operator_handlers[0])
                         : sizeof(handlers) / sizeof(handlers[0]);
    for (size_t i = 0; i < n; i++)
        if (rows[i].op == req->op)
            return rows[i].fn(cfg, req, b);
    char reason[96];
    if (req->op != SAM_OP_HELLO && is_operator_op(req->op) != operators) {
        /* A front-end op on the operators' socket, or an operator op on the front end's: never served there. */
        snprintf(reason, sizeof(reason), "%s is not served on the %s socket", sam_op_name(req->op),
                 operators ? "operators'" : "front end's");
        return sam_core_refuse_audited(cfg, req, b, operators ? STOR_EV_OPERATOR : STOR_EV_SAM, "", "",
                                       operators ? "csc-admin" : "csc-server", SAM_REFUSE_NOT_OFFERED, reason, 0);
    }
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
    case OAUTH_ERR_UNAVAILABLE:
        return SAM_REFUSE_DB_DOWN;
    default:
        return SAM_REFUSE_INTERNAL;
    }
}

uint32_t sam_refusal_of_stor(int stor_rc)
{
    return stor_rc == STOR_ERR_UNAVAILABLE ? SAM_REFUSE_DB_DOWN : SAM_REFUSE_UNAVAILABLE;
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

int sam_request_id(const sam_msg_t *req, char out[SAM_REQUEST_ID_MAX + 1])
{
    sam_text(req, SAM_T_REQUEST_ID, out, SAM_REQUEST_ID_MAX + 1);
    for (const char *p = out; *p != '\0'; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-'))
            return -1;
    return 0;
}

/* sam_principal's answer to what oauth/ said of the token (rc). */
static int principal_answer(int rc, int user_only, const oauth_principal_t *p)
{
    if (rc == OAUTH_OK && (p->user[0] == '\0' || (user_only && p->scope == STOR_SCOPE_CREDENTIAL)))
        rc = OAUTH_ERR_INVALID;
    return rc;
}

int sam_principal(const sam_server_config_t *cfg, const sam_msg_t *req, int user_only, oauth_principal_t *p)
{
    char tok[SAM_TOKEN_MAX + 1];
    sam_text(req, SAM_T_TOKEN, tok, sizeof(tok));
    int rc = oauth_token_check(cfg->oauth, tok, strlen(tok), p);
    OPENSSL_cleanse(tok, sizeof(tok));
    return principal_answer(rc, user_only, p);
}

int sam_principal_txn(const sam_server_config_t *cfg, stor_txn_t *t, const sam_msg_t *req, int user_only,
                      const char *user_hint, oauth_principal_t *p)
{
    char tok[SAM_TOKEN_MAX + 1];
    sam_text(req, SAM_T_TOKEN, tok, sizeof(tok));
    int rc = oauth_token_check_txn(cfg->oauth, t, tok, strlen(tok), user_hint, p);
    OPENSSL_cleanse(tok, sizeof(tok));
    return principal_answer(rc, user_only, p);
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
