/*
 * sam_op_operator.c - operators' own factors (sam_core.h; docs/architecture.md "The operators' socket"): csc-admin's
 * login (OPERATOR_LOGIN) and the making of an operator (OPERATOR_NEW: operator bootstrap, operator add). An operator's
 * password verifier and TOTP secret are read and checked here only, never by csc-admin: the secret is sealed under
 * the token's factor key with the operators' additional data (sam_factor.c, through adm_t.op_factor), the password is
 * checked with scrypt, the time step against the last one used, failures counted and the operator locked out by
 * admin/ (adm_op_login, one write with its STOR_EV_OPERATOR records). The session made is bound to the host of the
 * request's ORIGIN claim, as csc-admin's own sessions were; a login without a claim is refused (a session of no host
 * would fit every request without one).
 *
 * operator add makes no factor: the new operator waits in state enrolling with a one-time code (made here, only its
 * hash kept, sent by otp_sender channel ENROLL or answered once for a sealed letter; enroll_code_ttl, enroll_code_tries)
 * and enrolls on their own terminal (csc-admin operator enroll): OPERATOR_ENROLL_BEGIN checks the code (wrong ones
 * count, the last burns it) and answers a ticket and the TOTP secret made here (kept sealed in the record);
 * OPERATOR_ENROLL_FINISH checks the ticket, the password rule (8 characters at least, as for every operator) and a
 * first TOTP code (wrong ones count likewise) and activates the operator. Unknown, active or expired operators and
 * wrong codes get the same answer; every step is audited (STOR_EV_OPERATOR) without a code, ticket or secret.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "sam_core.h"

typedef struct op_secrets {
    char name[SAM_DESCRIPTION_MAX + 1], pw[SAM_SECRET_MAX + 1], otp[SAM_OTP_MAX + 1];
    char token[ADM_OP_TOKEN_LEN + 1], err[256];
    uint8_t secret[STOR_TOTP_MAX];
    size_t secret_len;
} op_secrets_t;

int sam_op_operator_login(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    const sam_operators_t *ops = cfg->operators;
    adm_origin_t o;
    int rc;

    if (sam_core_origin(req, &o) != 0)
        return sam_core_refuse_audited(cfg, req, b, STOR_EV_OPERATOR, "", "", "csc-admin", SAM_REFUSE_BAD_MESSAGE,
                                       "action=login refused=no-origin (a session is bound to csc-admin's host)",
                                       SAM_T_ORIGIN);
    op_secrets_t *s = OPENSSL_zalloc(sizeof(*s));
    if (s == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    adm_t a = ops->adm;
    a.operator_name = "-";
    a.origin = &o;
    sam_text(req, SAM_T_USER, s->name, sizeof(s->name));
    sam_text(req, SAM_T_PASSWORD, s->pw, sizeof(s->pw));
    sam_text(req, SAM_T_OTP, s->otp, sizeof(s->otp));
    int arc = adm_op_login(&a, &ops->pol, s->name, s->pw, s->otp, s->token, s->err, sizeof(s->err));
    if (arc != ADM_OK) { /* audited by admin/ (a refusal of the factors, or the lock) */
        rc = sam_refuse(b, req, sam_refusal_of_adm(arc), s->err, SAM_T_PASSWORD);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_OPERATOR_LOGIN | SAM_OP_REPLY, req->id);
    sam_put_str(b, SAM_T_SESSION, s->token);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_clear_free(s, sizeof(*s));
    return rc;
}

/* operator add's checks: the session, user-admin, and the two-person rule - which a sole operator is spared, as
 * csc-admin spares it (and audits "two_person.waived"): nobody could approve. 0, or -1 with the refusal in b. */
static int add_begin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, const char *name,
                     op_ctx_t *x, int *rc)
{
    const sam_operators_t *ops = cfg->operators;
    if (sam_msg_count(req, SAM_T_APPROVAL_ID) != 0 || !adm_op_two_person(ops->two_person, "operator", "add"))
        return sam_op_begin(cfg, req, b, "operator", "add", STOR_ROLE_USER_ADMIN, NULL, name, x, rc);
    sam_operators_t no_rule = *ops;
    sam_server_config_t c = *cfg;
    no_rule.two_person = "";
    c.operators = &no_rule;
    if (sam_op_begin(&c, req, b, "operator", "add", STOR_ROLE_USER_ADMIN, NULL, name, x, rc) != 0)
        return -1;
    if (adm_op_sole(&x->adm) == 1)
        return 0;
    *rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_OPERATOR, x->name, "", "csc-admin", SAM_REFUSE_FORBIDDEN,
                                  "operator add needs a second operator (two_person): file it and have it approved",
                                  SAM_T_APPROVAL_ID);
    return -1;
}

/* The enrollment of operator add: the code made, the operator stored enrolling (admin/'s checks and audit), the code
 * sent or answered for a letter. A code that could not be sent takes the operator away again (audited). */
typedef struct add_enroll {
    char code[SAM_ENROLL_CODE_TEXT], contact[SAM_DESCRIPTION_MAX + 1];
    adm_op_enroll_t en;
    int letter;
} add_enroll_t;

static void op_audit(stor_audit_t *a, uint32_t result, const char *name, const char *detail)
{
    memset(a, 0, sizeof(*a));
    a->event = STOR_EV_OPERATOR;
    a->result = result;
    snprintf(a->user, sizeof(a->user), "%.*s", STOR_NAME_MAX, name);
    snprintf(a->client, sizeof(a->client), "csc-admin");
    snprintf(a->detail, sizeof(a->detail), "%s", detail);
}

typedef struct undo_add {
    const char *name;
    stor_audit_t a;
} undo_add_t;

static int undo_add_fn(stor_txn_t *t, void *arg)
{
    undo_add_t *u = arg;
    stor_operator_t op;
    int rc = stor_txn_operator_get(t, u->name, &op);
    if (rc == 0 && op.status == STOR_OPERATOR_ENROLLING)
        rc = stor_txn_operator_del(t, u->name);
    stor_wipe(&op, sizeof(op));
    return rc != 0 && rc != STOR_ERR_NOTFOUND ? rc : stor_txn_audit_append(t, &u->a);
}

static int add_enrolling(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, op_ctx_t *x,
                         const char *name, uint32_t roles, char *err, size_t err_sz)
{
    const char *path, *bad = NULL;
    uint32_t letter = 0;
    int sender = sam_sender_kind(cfg, &path) != 0, rc;
    add_enroll_t *e = OPENSSL_zalloc(sizeof(*e));
    if (e == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    (void)sam_get_u32(req, SAM_T_LETTER, &letter);
    sam_text(req, SAM_T_CONTACT, e->contact, sizeof(e->contact));
    int has_contact = sam_msg_count(req, SAM_T_CONTACT) != 0;
    if (sam_msg_count(req, SAM_T_PASSWORD) != 0)
        bad = "an operator's password is their own: they choose it (csc-admin operator enroll)";
    else if (letter && sender)
        bad = "otp_sender is configured: the code is sent to the operator, never shown (no --letter)";
    else if (!letter && !sender)
        bad = "no otp_sender is configured: --letter prints the code once for a sealed letter";
    else if (!letter && !has_contact)
        bad = "--contact is required: the code is sent there";
    else if (has_contact && (strlen(e->contact) > STOR_CONTACT_MAX || adm_evidence_check(e->contact) != 0))
        bad = "the contact must be 1..128 printable characters";
    if (bad != NULL) {
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_OPERATOR, x->name, "", "csc-admin", SAM_REFUSE_BAD_MESSAGE,
                                     bad, 0);
        goto out;
    }
    e->letter = letter != 0;
    e->en.expires_at = (int64_t)time(NULL) + (cfg->enroll_code_ttl != 0 ? cfg->enroll_code_ttl : 86400);
    e->en.tries = cfg->enroll_code_tries != 0 ? cfg->enroll_code_tries : 5;
    e->en.channel = e->letter ? "letter" : "sender";
    if (sam_enroll_code_new(e->code, e->en.code_hash) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "no randomness", 0);
        goto out;
    }
    int arc = adm_op_add_enrolling(&x->adm, name, roles, &e->en, err, err_sz);
    if (arc != ADM_OK) {
        rc = sam_refuse(b, req, arc == ADM_ERR ? SAM_REFUSE_BAD_MESSAGE : sam_refusal_of_adm(arc), err, SAM_T_USER);
        goto out;
    }
    char why[128] = "";
    if (!e->letter && sam_enroll_send_code(cfg, name, e->contact, e->code, e->en.expires_at, why, sizeof(why)) != 0) {
        undo_add_t u = {.name = name};
        char detail[320];
        snprintf(detail, sizeof(detail), "operator=%.100s action=operator.enroll.undelivered name=%.64s why=%.60s",
                 x->who, name, why);
        op_audit(&u.a, STOR_RES_ERROR, x->name, detail);
        if (stor_write(cfg->stor, undo_add_fn, &u) != 0)
            fprintf(stderr, "csc-sam: cannot take back the operator %s whose code was not delivered\n", name);
        snprintf(err, err_sz, "the enrollment code could not be delivered (%.64s): nothing was added", why);
        rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, err, SAM_T_CONTACT);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_OPERATOR_NEW | SAM_OP_REPLY, req->id);
    sam_put_u64(b, SAM_T_TIME_MS, (uint64_t)e->en.expires_at * 1000u);
    if (!e->letter)
        sam_put_str(b, SAM_T_CONTACT, e->contact);
    else
        sam_put_str(b, SAM_T_ENROLL_CODE, e->code);
    sam_put_u32(b, SAM_T_ROLES, roles);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_clear_free(e, sizeof(*e));
    return rc;
}

int sam_op_operator_new(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    const sam_operators_t *ops = cfg->operators;
    uint32_t roles = 0;
    op_ctx_t x;
    int rc, bootstrap = sam_msg_count(req, SAM_T_SESSION) == 0;

    (void)sam_get_u32(req, SAM_T_ROLES, &roles);
    if (bootstrap != (roles == 0))
        return sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE,
                          "operator bootstrap has no SESSION and no ROLES; operator add has both", SAM_T_ROLES);
    op_secrets_t *s = OPENSSL_zalloc(sizeof(*s));
    if (s == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    sam_text(req, SAM_T_USER, s->name, sizeof(s->name));
    sam_text(req, SAM_T_PASSWORD, s->pw, sizeof(s->pw));
    if (!bootstrap) { /* no factor of the new operator here: an enrollment code */
        rc = add_begin(cfg, req, b, s->name, &x, &rc) != 0 ? rc
                                                           : add_enrolling(cfg, req, b, &x, s->name, roles, s->err,
                                                                           sizeof(s->err));
        goto out;
    }
    /* bootstrap: only while no operator exists (admin/ refuses EXISTS otherwise), on the installer's terminal */
    if (sam_msg_count(req, SAM_T_CONTACT) != 0 || sam_msg_count(req, SAM_T_LETTER) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE, "operator bootstrap shows the first operator's own secret",
                        SAM_T_LETTER);
        goto out;
    }
    memset(&x, 0, sizeof(x));
    x.adm = ops->adm;
    (void)sam_core_origin(req, &x.origin);
    x.adm.origin = &x.origin;
    x.adm.operator_name = "-";
    roles = adm_op_bootstrap_roles(&x.adm);
    int arc = adm_op_new(&x.adm, s->name, 0, s->pw, s->secret, &s->secret_len, s->err, sizeof(s->err));
    if (arc != ADM_OK) {
        rc = sam_refuse(b, req, arc == ADM_ERR ? SAM_REFUSE_BAD_MESSAGE : sam_refusal_of_adm(arc), s->err,
                        arc == ADM_ERR ? SAM_T_PASSWORD : SAM_T_USER);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_OPERATOR_NEW | SAM_OP_REPLY, req->id);
    sam_put_bytes(b, SAM_T_TOTP_SECRET, s->secret, s->secret_len);
    sam_put_u32(b, SAM_T_ROLES, roles);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_clear_free(s, sizeof(*s));
    return rc;
}

/* ==== operator enroll: OPERATOR_ENROLL_BEGIN, OPERATOR_ENROLL_FINISH ==== */

#define TICKET_TTL 900 /* seconds of the second step */
#define TICKET_HEX 64

static int zero32(const uint8_t h[32])
{
    static const uint8_t z[32];
    return CRYPTO_memcmp(h, z, 32) == 0;
}

typedef struct enr {
    char name[SAM_NAME_MAX + 1], typed[SAM_TOKEN_MAX + 1], pw[SAM_SECRET_MAX + 1], otp[SAM_OTP_MAX + 1];
    char ticket[TICKET_HEX + 1];
    uint8_t hash[32];           /* of the code typed (BEGIN), of the ticket (FINISH) */
    uint8_t new_ticket_hash[32];
    uint8_t secret[STOR_TOTP_MAX];
    size_t secret_len;
    uint8_t sealed[STOR_TOTP_SEALED_MAX];
    uint32_t sealed_len;
    uint8_t ver[STOR_VERIFIER_MAX];
    uint32_t ver_len;
    int64_t now, step;
    unsigned tries;
    int otp_ok;                 /* FINISH: the first code was right */
    uint32_t refusal;           /* 0: accepted */
    unsigned about;
    uint32_t roles;             /* out */
    stor_operator_t op;
    stor_audit_t a;
} enr_t;

/* The record of an operator that may take this step: enrolling, with a code (BEGIN) or a ticket (FINISH) that has
 * not expired; else the one refusal (UNAUTHORIZED; audited by the caller). 0, 1 (refused), or a storage code. */
static int enr_load(stor_txn_t *t, enr_t *e, int ticket, const char **why)
{
    int rc = stor_txn_operator_get(t, e->name, &e->op);
    *why = NULL;
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL)
        *why = "unknown";
    else if (rc != 0)
        return rc;
    else if (e->op.status != STOR_OPERATOR_ENROLLING)
        *why = "not-enrolling";
    else if (zero32(ticket ? e->op.enroll_ticket_hash : e->op.enroll_code_hash))
        *why = ticket ? "no-ticket" : "no-code";
    else if (e->now >= e->op.enroll_expires_at)
        *why = "expired";
    else if (CRYPTO_memcmp(ticket ? e->op.enroll_ticket_hash : e->op.enroll_code_hash, e->hash, 32) != 0)
        *why = ticket ? "wrong-ticket" : "wrong-code";
    if (*why == NULL)
        return 0;
    e->refusal = SAM_REFUSE_UNAUTHORIZED;
    e->about = ticket ? SAM_T_ENROLL_TICKET : SAM_T_ENROLL_CODE;
    return 1;
}

/* A wrong code (BEGIN) or first TOTP code (FINISH): one try less; the last burns the code or ticket (and the secret
 * made for it). */
static int enr_wrong(stor_txn_t *t, enr_t *e, const char *step, const char *what)
{
    char detail[200];
    int burnt = e->op.enroll_tries <= 1;
    e->op.enroll_tries = burnt ? 0 : e->op.enroll_tries - 1;
    if (burnt) {
        memset(e->op.enroll_code_hash, 0, 32);
        memset(e->op.enroll_ticket_hash, 0, 32);
        OPENSSL_cleanse(e->op.totp_sealed, sizeof(e->op.totp_sealed));
        e->op.totp_sealed_len = 0;
    }
    snprintf(detail, sizeof(detail), "action=operator.enroll.%s refused=%s%s tries_left=%u", step, what,
             burnt ? " burnt" : "", e->op.enroll_tries);
    op_audit(&e->a, STOR_RES_DENIED, e->name, detail);
    int rc = stor_txn_operator_put(t, &e->op, 0);
    return rc != 0 ? rc : stor_txn_audit_append(t, &e->a);
}

static int begin_fn(stor_txn_t *t, void *arg)
{
    enr_t *e = arg;
    const char *why;
    char detail[200];
    e->refusal = 0;
    int rc = enr_load(t, e, 0, &why);
    if (rc == 1 && strcmp(why, "wrong-code") == 0)
        return enr_wrong(t, e, "begin", why);
    if (rc == 1) {
        snprintf(detail, sizeof(detail), "action=operator.enroll.begin refused=%s", why);
        op_audit(&e->a, STOR_RES_DENIED, e->name, detail);
        return stor_txn_audit_append(t, &e->a);
    }
    if (rc != 0)
        return rc;
    /* The code is spent: the ticket of the second step, with the secret sealed, and the tries again. */
    memset(e->op.enroll_code_hash, 0, 32);
    memcpy(e->op.enroll_ticket_hash, e->new_ticket_hash, 32);
    e->op.enroll_expires_at = e->now + TICKET_TTL;
    e->op.enroll_tries = e->tries;
    memcpy(e->op.totp_sealed, e->sealed, e->sealed_len);
    e->op.totp_sealed_len = e->sealed_len;
    op_audit(&e->a, STOR_RES_OK, e->name, "action=operator.enroll.begin");
    if ((rc = stor_txn_operator_put(t, &e->op, 0)) != 0)
        return rc;
    return stor_txn_audit_append(t, &e->a);
}

/* The name as typed: a valid operator name, else "" (refused after the same work). */
static void enr_name(const sam_msg_t *req, enr_t *e)
{
    sam_text(req, SAM_T_USER, e->name, sizeof(e->name));
    for (const char *p = e->name; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            e->name[0] = '\0';
            break;
        }
}

/* The reply of a refused step (audited by the step's write). */
static int enr_refused(sam_builder_t *b, const sam_msg_t *req, const enr_t *e)
{
    return sam_refuse(b, req, e->refusal,
                      e->about == SAM_T_OTP ? "the one-time code is not correct"
                                            : "the operator name or enrollment code is not correct, or it expired",
                      e->about);
}

/* The step's write (fn): 0 to answer, or -1 with the refusal built into b (audited by the write) and *rc. */
static int enr_write(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b,
                     int (*fn)(stor_txn_t *, void *), enr_t *e, int *rc)
{
    int src = stor_write(cfg->stor, fn, e);
    if (src != 0)
        *rc = sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0);
    else if (e->refusal != 0)
        *rc = enr_refused(b, req, e);
    return src != 0 || e->refusal != 0 ? -1 : 0;
}

int sam_op_operator_enroll_begin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    const sam_operators_t *ops = cfg->operators;
    uint8_t raw[TICKET_HEX / 2];
    int rc;
    enr_t *e = OPENSSL_zalloc(sizeof(*e));
    if (e == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    enr_name(req, e);
    sam_text(req, SAM_T_ENROLL_CODE, e->typed, sizeof(e->typed));
    sam_enroll_code_hash(e->typed, e->hash);
    e->now = (int64_t)time(NULL);
    e->tries = cfg->enroll_code_tries != 0 ? cfg->enroll_code_tries : 5;
    /* The secret and the ticket are made before the write (the token seals outside the transaction). */
    if (oauth_totp_new_secret(e->secret) != 0 || RAND_priv_bytes(raw, sizeof(raw)) != 1) {
        rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "no randomness", 0);
        goto out;
    }
    e->secret_len = OAUTH_TOTP_SECRET_LEN;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(e->ticket + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));
    SHA256((const uint8_t *)e->ticket, TICKET_HEX, e->new_ticket_hash);
    if (e->name[0] != '\0' && ops->adm.op_factor->seal(ops->adm.op_factor->arg, e->name, e->secret, e->secret_len,
                                                        e->sealed, &e->sealed_len) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "the token cannot seal the TOTP secret now", 0);
        goto out;
    }
    if (enr_write(cfg, req, b, begin_fn, e, &rc) != 0)
        goto out;
    rc = sam_build_init(b, SAM_OP_OPERATOR_ENROLL_BEGIN | SAM_OP_REPLY, req->id);
    sam_put_u32(b, SAM_T_EXPIRES_IN, TICKET_TTL);
    sam_put_str(b, SAM_T_ENROLL_TICKET, e->ticket);
    sam_put_bytes(b, SAM_T_TOTP_SECRET, e->secret, e->secret_len);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_clear_free(e, sizeof(*e));
    return rc;
}

static int finish_read_fn(stor_txn_t *t, void *arg)
{
    enr_t *e = arg;
    const char *why;
    int rc = enr_load(t, e, 1, &why);
    return rc == 1 ? 0 : rc;
}

static int finish_fn(stor_txn_t *t, void *arg)
{
    enr_t *e = arg;
    const char *why;
    char detail[200];
    e->refusal = 0;
    int rc = enr_load(t, e, 1, &why);
    if (rc == 1) {
        snprintf(detail, sizeof(detail), "action=operator.enroll.finish refused=%s", why);
        op_audit(&e->a, STOR_RES_DENIED, e->name, detail);
        return stor_txn_audit_append(t, &e->a);
    }
    if (rc != 0)
        return rc;
    if (!e->otp_ok) {
        e->refusal = SAM_REFUSE_UNAUTHORIZED;
        e->about = SAM_T_OTP;
        return enr_wrong(t, e, "finish", "otp");
    }
    e->op.status = STOR_OPERATOR_ACTIVE;
    memcpy(e->op.pw_verifier, e->ver, e->ver_len);
    e->op.pw_verifier_len = e->ver_len;
    e->op.totp_last_step = e->step;
    e->op.failed_logins = 0;
    e->op.locked_until = 0;
    memset(e->op.enroll_ticket_hash, 0, 32);
    e->op.enroll_expires_at = 0;
    e->op.enroll_tries = 0;
    e->roles = e->op.roles;
    op_audit(&e->a, STOR_RES_OK, e->name, "action=operator.enroll.finish state=active");
    if ((rc = stor_txn_operator_put(t, &e->op, 0)) != 0)
        return rc;
    return stor_txn_audit_append(t, &e->a);
}

int sam_op_operator_enroll_finish(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    const sam_operators_t *ops = cfg->operators;
    int rc;
    enr_t *e = OPENSSL_zalloc(sizeof(*e));
    if (e == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    enr_name(req, e);
    sam_text(req, SAM_T_ENROLL_TICKET, e->typed, sizeof(e->typed));
    sam_text(req, SAM_T_PASSWORD, e->pw, sizeof(e->pw));
    sam_text(req, SAM_T_OTP, e->otp, sizeof(e->otp));
    SHA256((const uint8_t *)e->typed, strlen(e->typed), e->hash);
    e->now = (int64_t)time(NULL);
    /* The operators' password rule, before anything is counted. */
    if (strlen(e->pw) < 8) {
        rc = sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE, "password must have at least 8 characters", SAM_T_PASSWORD);
        goto out;
    }
    /* The slow work outside the write: the ticket's record read, its secret opened, the code and the verifier. */
    int src = stor_read(cfg->stor, finish_read_fn, e);
    if (src != 0) {
        rc = sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0);
        goto out;
    }
    if (e->refusal == 0) {
        int orc = ops->adm.op_factor->open(ops->adm.op_factor->arg, e->name, e->op.totp_sealed,
                                           e->op.totp_sealed_len, e->secret, &e->secret_len);
        if (orc == -2) {
            rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "the token cannot open the TOTP secret now", 0);
            goto out;
        }
        e->otp_ok = orc == 0 && oauth_totp_check(e->secret, e->secret_len, e->otp, strlen(e->otp), e->now,
                                                 ops->pol.totp_window, &e->step) == OAUTH_OK;
        if (e->otp_ok && oauth_secret_hash(e->pw, strlen(e->pw), ops->adm.scrypt_log2n, e->ver, &e->ver_len) != 0) {
            rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "cannot derive the password verifier", 0);
            goto out;
        }
    }
    if (enr_write(cfg, req, b, finish_fn, e, &rc) != 0)
        goto out;
    rc = sam_build_init(b, SAM_OP_OPERATOR_ENROLL_FINISH | SAM_OP_REPLY, req->id);
    sam_put_u32(b, SAM_T_ROLES, e->roles);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_clear_free(e, sizeof(*e));
    return rc;
}
