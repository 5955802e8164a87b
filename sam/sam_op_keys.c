/*
 * sam_op_keys.c - the operators' socket's ops (cfg->operators; docs/architecture.md "The operators' socket"):
 * csc-admin's key operations, run here with admin/ so that only csc-sam holds the token. Every op checks, itself and
 * in this order: the operator's session (SESSION, the token csc-admin's login printed: adm_op_session_check, which
 * audits a refusal), the role of the command, and the two-person rule (a command named in two_person runs only as
 * the approval of another operator's request: APPROVAL_ID, taken here with adm_op_approval_take, which checks the
 * approver and audits). Refusals of the rule are audited here. The work's own audit records name the operator (and
 * the requester, for an approval). csc-sam opens no path an operator names: inputs and outputs travel as bytes.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

/* the audit key: sam_audit_sign_head, sam_audit_key_pub (sam_server.h) */
#include "sam_core.h"


/* The refusal code of an adm_ result (sam_core.h). */
uint32_t sam_refusal_of_adm(int rc)
{
    switch (rc) {
    case ADM_NOSESSION:
    case ADM_DENIED:
        return SAM_REFUSE_UNAUTHORIZED;
    case ADM_EXPIRED:
        return SAM_REFUSE_EXPIRED;
    case ADM_FORBIDDEN:
        return SAM_REFUSE_FORBIDDEN;
    case ADM_NOTFOUND:
        return SAM_REFUSE_NOT_FOUND;
    case ADM_EXISTS:
        return SAM_REFUSE_EXISTS;
    case ADM_LOCKED:
        return SAM_REFUSE_LOCKED;
    default:
        return SAM_REFUSE_INTERNAL;
    }
}

static int get_approval(stor_txn_t *t, void *arg)
{
    stor_approval_t *ap = arg;
    char id[STOR_NAME_MAX + 1];
    memcpy(id, ap->id, sizeof(id)); /* the get fills ap from the start */
    return stor_txn_approval_get(t, id, ap);
}

/* Whether the stored request ap is the command w1 w2 with, when flag is NULL, match as its first argument, else the
 * value of its option flag equal to match (match NULL: no argument checked). */
static int approval_is(const stor_approval_t *ap, const char *w1, const char *w2, const char *flag, const char *match)
{
    if (ap->n_args < 2 || strcmp(ap->args[0], w1) != 0 || strcmp(ap->args[1], w2) != 0)
        return 0;
    if (match == NULL)
        return 1;
    if (flag == NULL)
        return ap->n_args >= 3 && strcmp(ap->args[2], match) == 0;
    for (uint32_t i = 2; i + 1 < ap->n_args; i++)
        if (strcmp(ap->args[i], flag) == 0)
            return strcmp(ap->args[i + 1], match) == 0;
    return 0;
}

/*
 * The checks every operator op begins with (see the top of the file), for the command w1 w2 needing role; flag and
 * match say what a stored request must name to be this one (approval_is). 0: go on, x filled; else the refusal is
 * built into b and *rc is the builder's result.
 */
int sam_op_begin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, const char *w1,
                 const char *w2, uint32_t role, const char *flag, const char *match, op_ctx_t *x, int *rc)
{
    const sam_operators_t *ops = cfg->operators;
    char tok[SAM_TOKEN_MAX + 1], what[64], err[256], id[SAM_NAME_MAX + 1];
    memset(x, 0, sizeof(*x));
    x->adm = ops->adm;
    x->adm.operator_name = "-";
    (void)sam_core_origin(req, &x->origin); /* no claim: a zero host, which no csc-admin session has */
    x->adm.origin = &x->origin;
    snprintf(what, sizeof(what), "%s %s", w1, w2);
    sam_text(req, SAM_T_SESSION, tok, sizeof(tok));
    int arc = adm_op_session_check(&x->adm, &ops->pol, tok, role, what, x->name, &x->roles, err, sizeof(err));
    OPENSSL_cleanse(tok, sizeof(tok));
    if (arc != ADM_OK) { /* audited by the check */
        *rc = sam_refuse(b, req, sam_refusal_of_adm(arc), err, SAM_T_SESSION);
        return -1;
    }
    snprintf(x->who, sizeof(x->who), "%s", x->name);
    x->adm.operator_name = x->who;
    sam_text(req, SAM_T_APPROVAL_ID, id, sizeof(id));
    if (id[0] == '\0') {
        if (!adm_op_two_person(ops->two_person, w1, w2))
            return 0;
        snprintf(err, sizeof(err), "%s needs a second operator (two_person): file it and have it approved", what);
        *rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_OPERATOR, x->name, "", "csc-admin", SAM_REFUSE_FORBIDDEN,
                                      err, SAM_T_APPROVAL_ID);
        return -1;
    }
    /* The approval of another operator's request: it must hold this very command, then it is taken (checked:
     * another operator than the requester, with the request's role, not expired; removed; audited). */
    stor_approval_t *ap = OPENSSL_zalloc(sizeof(*ap));
    if (ap == NULL) {
        *rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
        return -1;
    }
    snprintf(ap->id, sizeof(ap->id), "%s", id);
    int src = stor_read(cfg->stor, get_approval, ap);
    if (src == STOR_OK && !approval_is(ap, w1, w2, flag, match)) {
        snprintf(err, sizeof(err), "request %s is not this %s", id, what);
        *rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_OPERATOR, x->name, "", "csc-admin", SAM_REFUSE_FORBIDDEN,
                                      err, SAM_T_APPROVAL_ID);
        OPENSSL_clear_free(ap, sizeof(*ap));
        return -1;
    }
    arc = adm_op_approval_take(&x->adm, id, x->roles, ap, err, sizeof(err));
    if (arc != ADM_OK) {
        *rc = sam_refuse(b, req, sam_refusal_of_adm(arc), err, SAM_T_APPROVAL_ID);
        OPENSSL_clear_free(ap, sizeof(*ap));
        return -1;
    }
    snprintf(x->who, sizeof(x->who), "%s,requester=%s", x->name, ap->requester);
    OPENSSL_clear_free(ap, sizeof(*ap));
    return 0;
}

/* The work failed with err: refused INTERNAL (admin/ audited what it refused itself). */
static int op_failed(sam_builder_t *b, const sam_msg_t *req, const char *err)
{
    return sam_refuse(b, req, SAM_REFUSE_INTERNAL, err, 0);
}

/* An op whose reply has no field. */
static int empty_reply(sam_builder_t *b, const sam_msg_t *req)
{
    int rc = sam_build_init(b, req->op | SAM_OP_REPLY, req->id);
    return rc != SAM_OK ? rc : b->err;
}

/* KEY_TYPE, KEY_BITS, CURVE -> a key spec. 0, or -1 (not a key csc-admin offers). */
static int key_spec(const sam_msg_t *req, hsm_keyspec_t *k)
{
    static const struct {
        int nid;
        unsigned bits;
    } curves[] = {{NID_X9_62_prime256v1, 256}, {NID_secp384r1, 384}, {NID_secp521r1, 521}};
    uint32_t type = 0, bits = 0;
    char curve[SAM_OID_MAX + 1];
    memset(k, 0, sizeof(*k));
    (void)sam_get_u32(req, SAM_T_KEY_TYPE, &type);
    (void)sam_get_u32(req, SAM_T_KEY_BITS, &bits);
    sam_text(req, SAM_T_CURVE, curve, sizeof(curve));
    if (type == SAM_KEY_RSA) {
        if (curve[0] != '\0' || (bits != 2048 && bits != 3072 && bits != 4096))
            return -1;
        k->type = HSM_KEY_RSA;
        k->bits = bits;
        return 0;
    }
    ASN1_OBJECT *o = curve[0] != '\0' && bits == 0 ? OBJ_txt2obj(curve, 1) : NULL;
    int nid = o != NULL ? OBJ_obj2nid(o) : NID_undef;
    ASN1_OBJECT_free(o);
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
        if (curves[i].nid == nid) {
            k->type = HSM_KEY_EC;
            k->bits = curves[i].bits;
            k->curve_nid = nid;
            return 0;
        }
    return -1;
}

/* A TEXT argument of the operator's: NULL when absent (present and empty stays "", for admin/ to judge). */
static const char *arg(const sam_msg_t *req, unsigned tag, char *buf, size_t sz)
{
    sam_text(req, tag, buf, sz);
    return sam_msg_count(req, tag) != 0 ? buf : NULL;
}

/* KEY_CREATE: a key for an owner whose PIN, if the expression names one, stays unset until the owner sets it on /enroll
 * or /account (issue 12): a PIN from csc-admin, an operator's, is refused before anything is made. */
int sam_op_key_create(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char cred[SAM_DESCRIPTION_MAX + 1], user[SAM_DESCRIPTION_MAX + 1];
    char desc[SAM_DESCRIPTION_MAX + 1], expr[SAM_DESCRIPTION_MAX + 1], cn[SAM_DESCRIPTION_MAX + 1];
    char o[SAM_DESCRIPTION_MAX + 1], c[SAM_DESCRIPTION_MAX + 1], qual[SAM_DESCRIPTION_MAX + 1];
    char id[STOR_NAME_MAX + 1], err[512];
    uint32_t scal = 0, multisign = 0, oauth2code = 0, csr_wanted = 0;
    X509_REQ *csr = NULL;
    op_ctx_t x;
    int rc;

    sam_text(req, SAM_T_USER, user, sizeof(user));
    if (sam_op_begin(cfg, req, b, "credential", "create", STOR_ROLE_KEY_ADMIN, "--user", user, &x, &rc) != 0)
        return rc;
    if (sam_msg_count(req, SAM_T_PIN) != 0)
        return sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE, "an operator sets no PIN: the owner does (/enroll, /account)",
                          SAM_T_PIN);
    adm_cred_spec_t s = {0};
    if (key_spec(req, &s.key) != 0)
        return sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE, "unsupported key type", SAM_T_KEY_TYPE);
    (void)sam_get_u32(req, SAM_T_SCAL, &scal);
    (void)sam_get_u32(req, SAM_T_MULTISIGN, &multisign);
    (void)sam_get_u32(req, SAM_T_OAUTH2CODE, &oauth2code);
    (void)sam_get_u32(req, SAM_T_CSR_WANTED, &csr_wanted);
    s.id = arg(req, SAM_T_CRED, cred, sizeof(cred));
    s.owner = user;
    s.auth_expr = arg(req, SAM_T_AUTH_EXPR, expr, sizeof(expr));
    s.scal = scal;
    s.multisign = multisign;
    s.description = arg(req, SAM_T_DESCRIPTION, desc, sizeof(desc));
    s.subject_cn = arg(req, SAM_T_SUBJECT_CN, cn, sizeof(cn));
    s.subject_o = arg(req, SAM_T_SUBJECT_O, o, sizeof(o));
    s.subject_c = arg(req, SAM_T_SUBJECT_C, c, sizeof(c));
    s.qualifier = arg(req, SAM_T_QUALIFIER, qual, sizeof(qual));
    s.oauth2code = oauth2code != 0;
    s.csr_out = csr_wanted != 0 ? &csr : NULL;
    rc = adm_cred_create(&x.adm, &s, id, sizeof(id), err, sizeof(err));
    if (rc != 0)
        return op_failed(b, req, err);
    uint8_t *der = NULL;
    int der_len = csr != NULL ? i2d_X509_REQ(csr, &der) : 0;
    X509_REQ_free(csr);
    rc = sam_build_init(b, SAM_OP_KEY_CREATE | SAM_OP_REPLY, req->id);
    sam_put_str(b, SAM_T_CRED, id);
    if (der_len > 0)
        sam_put_bytes(b, SAM_T_CSR, der, (size_t)der_len);
    OPENSSL_free(der);
    return rc != SAM_OK ? rc : b->err;
}

/* The reason csc-admin credential destroy gives (ADM_DESTROY_REVOKED is revoke's). */
#define DESTROY_BY_OPERATOR "operator request"

int sam_op_key_destroy(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char cred[SAM_DESCRIPTION_MAX + 1], reason[SAM_REASON_MAX + 1], err[512];
    op_ctx_t x;
    int rc;

    sam_text(req, SAM_T_CRED, cred, sizeof(cred));
    sam_text(req, SAM_T_REASON, reason, sizeof(reason));
    /* The reason names the command (its role and two-person rule): a revocation is final, a destruction is not. */
    const char *w2 = strcmp(reason, ADM_DESTROY_REVOKED) == 0 ? "revoke"
                     : strcmp(reason, DESTROY_BY_OPERATOR) == 0 ? "destroy"
                                                                  : NULL;
    if (w2 == NULL)
        return sam_core_refuse_audited(cfg, req, b, STOR_EV_OPERATOR, "", cred, "csc-admin", SAM_REFUSE_BAD_MESSAGE,
                                       "REASON is \"" DESTROY_BY_OPERATOR "\" or \"" ADM_DESTROY_REVOKED "\"",
                                       SAM_T_REASON);
    if (sam_op_begin(cfg, req, b, "credential", w2, STOR_ROLE_KEY_ADMIN, NULL, cred, &x, &rc) != 0)
        return rc;
    if (adm_cred_destroy(&x.adm, cred, reason, err, sizeof(err)) != 0)
        return op_failed(b, req, err);
    return empty_reply(b, req);
}

/* Put text's lines (each cut to SAM_LINE_MAX bytes at a character boundary) as LINE fields, at most SAM_LINES_MAX:
 * the last then says how many more there were. */
static void put_lines(sam_builder_t *b, const char *text, size_t len)
{
    unsigned n = 0, more = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl != NULL ? (size_t)(nl - text) : len, cut = end - at;
        if (n + 1 >= SAM_LINES_MAX && at + cut + 1 < len) {
            more++;
        } else {
            if (cut > SAM_LINE_MAX)
                cut = SAM_LINE_MAX;
            while (cut > 0 && cut < end - at && ((unsigned char)text[at + cut] & 0xC0) == 0x80)
                cut--;
            sam_put_text(b, SAM_T_LINE, text + at, cut);
            n++;
        }
        at = end + 1;
    }
    if (more != 0) {
        char last[64];
        snprintf(last, sizeof(last), "(%u more lines not shown)", more);
        sam_put_str(b, SAM_T_LINE, last);
    }
}

int sam_op_destroy_pending(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    const sam_operators_t *ops = cfg->operators;
    char err[512] = "", *text = NULL;
    size_t len = 0;
    op_ctx_t x;
    int rc;

    if (sam_op_begin(cfg, req, b, "credential", "destroy-pending", STOR_ROLE_KEY_ADMIN, NULL, NULL, &x, &rc) != 0)
        return rc;
    /* Under two_person for revoke or destroy, the jobs wait for a second operator (named, not run). */
    int hold = adm_op_two_person(ops->two_person, "credential", "revoke") ||
               adm_op_two_person(ops->two_person, "credential", "destroy");
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    int arc = adm_cred_destroy_pending(&x.adm, x.roles, hold, f, err, sizeof(err));
    fclose(f);
    rc = sam_build_init(b, SAM_OP_DESTROY_PENDING | SAM_OP_REPLY, req->id);
    if (arc != ADM_OK)
        sam_put_str(b, SAM_T_REASON, err[0] != '\0' ? err : "failed");
    put_lines(b, text != NULL ? text : "", len);
    free(text);
    return rc != SAM_OK ? rc : b->err;
}

int sam_op_user_terminate(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char user[SAM_DESCRIPTION_MAX + 1], err[512];
    op_ctx_t x;
    int rc;

    sam_text(req, SAM_T_USER, user, sizeof(user));
    if (sam_op_begin(cfg, req, b, "user", "terminate", STOR_ROLE_USER_ADMIN, NULL, user, &x, &rc) != 0)
        return rc;
    if (adm_user_set_status(&x.adm, user, STOR_USER_TERMINATED, err, sizeof(err)) != 0)
        return op_failed(b, req, err);
    return empty_reply(b, req);
}

int sam_op_backup_init(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char pin[SAM_SECRET_MAX + 1], err[512];
    int created = 0, rc;
    op_ctx_t x;

    if (sam_op_begin(cfg, req, b, "backup", "init", STOR_ROLE_KEY_ADMIN, NULL, NULL, &x, &rc) != 0)
        return rc;
    const char *so_pin = arg(req, SAM_T_PIN, pin, sizeof(pin));
    int arc = adm_backup_init(&x.adm, so_pin, &created, err, sizeof(err));
    OPENSSL_cleanse(pin, sizeof(pin));
    if (arc == -2) /* the wrapping key is missing: csc-admin asks for the SO PIN and comes again */
        return sam_refuse(b, req, SAM_REFUSE_UNAUTHORIZED, "the token's SO PIN is needed", SAM_T_PIN);
    if (arc != 0)
        return op_failed(b, req, err);
    rc = sam_build_init(b, SAM_OP_BACKUP_INIT | SAM_OP_REPLY, req->id);
    sam_put_u32(b, SAM_T_CREATED, (uint32_t)created);
    return rc != SAM_OK ? rc : b->err;
}

int sam_op_backup(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char cred[SAM_DESCRIPTION_MAX + 1], file[SAM_DESCRIPTION_MAX + 1], err[512];
    uint8_t *blob = NULL;
    size_t len = 0;
    op_ctx_t x;
    int rc;

    sam_text(req, SAM_T_CRED, cred, sizeof(cred));
    if (sam_op_begin(cfg, req, b, "credential", "backup", STOR_ROLE_KEY_ADMIN, NULL, cred, &x, &rc) != 0)
        return rc;
    if (arg(req, SAM_T_DESCRIPTION, file, sizeof(file)) == NULL)
        snprintf(file, sizeof(file), "-");
    if (adm_cred_backup_mem(&x.adm, cred, file, &blob, &len, err, sizeof(err)) != 0)
        return op_failed(b, req, err);
    rc = sam_build_init(b, SAM_OP_BACKUP | SAM_OP_REPLY, req->id);
    sam_put_bytes(b, SAM_T_BACKUP_BLOB, blob, len);
    OPENSSL_clear_free(blob, len);
    return rc != SAM_OK ? rc : b->err;
}

int sam_op_restore(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char file[SAM_DESCRIPTION_MAX + 1], id[STOR_NAME_MAX + 1], ref[SAM_DESCRIPTION_MAX + 1], err[512];
    const uint8_t *blob = NULL;
    size_t len = 0;
    op_ctx_t x;
    int rc;

    sam_text(req, SAM_T_RESTORE_REF, ref, sizeof(ref)); /* "" without: adm_cred_restore_mem refuses (audited) */
    /* Under two_person, the approval must be of a restore on this very request. */
    if (sam_op_begin(cfg, req, b, "credential", "restore", STOR_ROLE_KEY_ADMIN, "--request", ref, &x, &rc) != 0)
        return rc;
    if (arg(req, SAM_T_DESCRIPTION, file, sizeof(file)) == NULL)
        snprintf(file, sizeof(file), "-");
    if (sam_get_bytes(req, SAM_T_BACKUP_BLOB, &blob, &len) != SAM_OK)
        len = 0;
    if (adm_cred_restore_mem(&x.adm, blob, len, file, ref, id, sizeof(id), err, sizeof(err)) != 0)
        return op_failed(b, req, err);
    rc = sam_build_init(b, SAM_OP_RESTORE | SAM_OP_REPLY, req->id);
    sam_put_str(b, SAM_T_CRED, id);
    return rc != SAM_OK ? rc : b->err;
}

int sam_op_csr(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char cred[SAM_DESCRIPTION_MAX + 1], cn[SAM_DESCRIPTION_MAX + 1], o[SAM_DESCRIPTION_MAX + 1];
    char c[SAM_DESCRIPTION_MAX + 1], err[512];
    X509_REQ *csr = NULL;
    op_ctx_t x;
    int rc;

    sam_text(req, SAM_T_CRED, cred, sizeof(cred));
    if (sam_op_begin(cfg, req, b, "credential", "renew", STOR_ROLE_KEY_ADMIN, NULL, cred, &x, &rc) != 0)
        return rc;
    if (adm_cred_renew_csr_mem(&x.adm, cred, arg(req, SAM_T_SUBJECT_CN, cn, sizeof(cn)),
                               arg(req, SAM_T_SUBJECT_O, o, sizeof(o)), arg(req, SAM_T_SUBJECT_C, c, sizeof(c)), &csr,
                               err, sizeof(err)) != 0)
        return op_failed(b, req, err);
    uint8_t *der = NULL;
    int der_len = i2d_X509_REQ(csr, &der);
    X509_REQ_free(csr);
    rc = sam_build_init(b, SAM_OP_CSR | SAM_OP_REPLY, req->id);
    if (der_len > 0)
        sam_put_bytes(b, SAM_T_CSR, der, (size_t)der_len);
    OPENSSL_free(der);
    return rc != SAM_OK ? rc : b->err; /* no request: the builder's finish refuses the reply */
}

int sam_op_cert_import(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char cred[SAM_DESCRIPTION_MAX + 1], err[512];
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *ee = NULL;
    sam_iter_t it;
    const uint8_t *p;
    size_t len;
    op_ctx_t x;
    int rc;

    sam_text(req, SAM_T_CRED, cred, sizeof(cred));
    if (sam_op_begin(cfg, req, b, "credential", "import", STOR_ROLE_KEY_ADMIN, NULL, cred, &x, &rc) != 0) {
        sk_X509_free(chain);
        return rc;
    }
    int ok = chain != NULL;
    sam_iter_init(req, SAM_T_CERT, &it);
    while (ok && sam_iter_next(&it, &p, &len)) {
        const unsigned char *q = p;
        X509 *cert = d2i_X509(NULL, &q, (long)len);
        if (cert == NULL || q != p + len)
            ok = 0;
        else if (ee == NULL)
            ee = cert;
        else if (!sk_X509_push(chain, cert))
            ok = 0;
        if (!ok)
            X509_free(cert);
    }
    if (!ok || ee == NULL) {
        X509_free(ee);
        sk_X509_pop_free(chain, X509_free);
        return sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE, "a certificate is not DER", SAM_T_CERT);
    }
    rc = adm_cred_import_certs(&x.adm, cred, NULL, ee, NULL, chain, err, sizeof(err));
    X509_free(ee);
    sk_X509_pop_free(chain, X509_free);
    return rc != 0 ? op_failed(b, req, err) : empty_reply(b, req);
}

int sam_op_renew(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char cred[SAM_DESCRIPTION_MAX + 1], err[512];
    op_ctx_t x;
    int rc;

    sam_text(req, SAM_T_CRED, cred, sizeof(cred));
    if (sam_op_begin(cfg, req, b, "credential", "renew", STOR_ROLE_KEY_ADMIN, NULL, cred, &x, &rc) != 0)
        return rc;
    if (adm_cred_renew(&x.adm, cred, err, sizeof(err)) != 0)
        return op_failed(b, req, err);
    return empty_reply(b, req);
}

int sam_op_tsa_key(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char cn[SAM_DESCRIPTION_MAX + 1], err[512];
    hsm_keyspec_t key;
    op_ctx_t x;
    int rc;

    if (sam_op_begin(cfg, req, b, "tsa", "init", STOR_ROLE_KEY_ADMIN, NULL, NULL, &x, &rc) != 0)
        return rc;
    if (cfg->tsa_credential == NULL || cfg->tsa_credential[0] == '\0')
        return sam_refuse(b, req, SAM_REFUSE_NOT_OFFERED,
                          "set tsa_credential (and tsa_policy) in the configuration first", 0);
    if (key_spec(req, &key) != 0)
        return sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE, "unsupported key type", SAM_T_KEY_TYPE);
    if (adm_tsa_init(&x.adm, cfg->tsa_credential, &key, arg(req, SAM_T_SUBJECT_CN, cn, sizeof(cn)), err,
                     sizeof(err)) != 0)
        return op_failed(b, req, err);
    rc = sam_build_init(b, SAM_OP_TSA_KEY | SAM_OP_REPLY, req->id);
    sam_put_str(b, SAM_T_CRED, cfg->tsa_credential);
    return rc != SAM_OK ? rc : b->err;
}

static int any_operator(const stor_operator_t *op, void *arg)
{
    (void)op;
    (void)arg;
    return 1;
}

static int count_operators(stor_txn_t *t, void *arg)
{
    int rc = stor_txn_operator_each(t, any_operator, NULL);
    *(int *)arg = rc == 1;
    return rc == 1 ? 0 : rc;
}

int sam_op_audit_key(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char err[512];
    int created = 0, rc, exists = 1;
    op_ctx_t x;

    if (sam_msg_count(req, SAM_T_SESSION) != 0) {
        if (sam_op_begin(cfg, req, b, "audit", "key-init", STOR_ROLE_KEY_ADMIN, NULL, NULL, &x, &rc) != 0)
            return rc;
    } else {
        /* csc-admin init on a new database: no operator exists who could log in yet (as operator bootstrap). */
        if (stor_read(cfg->stor, count_operators, &exists) != STOR_OK || exists)
            return sam_core_refuse_audited(cfg, req, b, STOR_EV_OPERATOR, "", "", "csc-admin",
                                           SAM_REFUSE_UNAUTHORIZED,
                                           "not logged in (no valid operator session: run csc-admin login and set "
                                           "CSC_ADMIN_SESSION)", SAM_T_SESSION);
        memset(&x, 0, sizeof(x));
        x.adm = cfg->operators->adm;
        snprintf(x.who, sizeof(x.who), "-");
        x.adm.operator_name = x.who;
    }
    if (adm_audit_key_init(x.adm.stor, x.adm.hsm, x.adm.operator_name, &created, err, sizeof(err)) != ADM_OK)
        return op_failed(b, req, err);
    rc = sam_build_init(b, SAM_OP_AUDIT_KEY | SAM_OP_REPLY, req->id);
    sam_put_u32(b, SAM_T_CREATED, (uint32_t)created);
    sam_put_u32(b, SAM_T_SESSIONS, cfg->hsm != NULL ? hsm_sessions(cfg->hsm) : 0);
    return rc != SAM_OK ? rc : b->err;
}

int sam_op_audit_head(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    uint64_t seq = 0;
    op_ctx_t x;
    int rc;

    if (sam_op_begin(cfg, req, b, "audit", "sign-head", STOR_ROLE_AUDITOR, NULL, NULL, &x, &rc) != 0)
        return rc;
    int arc = sam_audit_sign_head(cfg->stor, cfg->hsm, "csc-admin", 1, &seq);
    if (arc == SAM_AUDIT_SIGN_NOKEY)
        return sam_refuse(b, req, SAM_REFUSE_NOT_OFFERED, "no audit key in the HSM: run csc-admin audit key-init", 0);
    if (arc != SAM_AUDIT_SIGN_OK && arc != SAM_AUDIT_SIGN_NOTHING)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "signing the audit head failed (see csc-sam's log)", 0);
    rc = sam_build_init(b, SAM_OP_AUDIT_HEAD | SAM_OP_REPLY, req->id);
    if (arc == SAM_AUDIT_SIGN_OK)
        sam_put_u64(b, SAM_T_SEQ, seq);
    return rc != SAM_OK ? rc : b->err;
}

/* csc-admin audit report (AUDIT_REPORT) and db backup (BACKUP_SIGN) [auditor]: csc-sam signs a text of its own
 * making that names the file's SHA-256, its time and the operator, never bytes the operator chose; the text cannot
 * be a head's ("csc-audit-report v1", "csc-db-backup v1"). Audited before it answers: the log names each file
 * signed. */
int sam_op_audit_report(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    const uint8_t *digest = NULL;
    size_t len = 0;
    op_ctx_t x;
    int rc, backup = req->op == SAM_OP_BACKUP_SIGN;

    if (sam_get_bytes(req, SAM_T_DIGEST, &digest, &len) != SAM_OK || len != 32)
        return sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE, "DIGEST is a SHA-256 (32 bytes)", SAM_T_DIGEST);
    /* words of no csc-admin command: two_person names csc-admin's db backup and audit report, which csc-admin itself
     * holds for a second operator (they run in csc-admin: the approval is taken there, before this op) */
    if (sam_op_begin(cfg, req, b, backup ? "db" : "audit", backup ? "backup-sign" : "report-sign", STOR_ROLE_AUDITOR,
                     NULL, NULL, &x, &rc) != 0)
        return rc;
    char hex[65], text[SAM_SIGNED_TEXT_MAX + 1], detail[sizeof(x.who) + 128];
    struct timespec ts;
    pki_hex(digest, 32, hex);
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = snprintf(text, sizeof(text), "%s v1 sha256=%s time_ms=%lld operator=%s",
                     backup ? "csc-db-backup" : "csc-audit-report", hex,
                     (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, x.name);
    if (n < 0 || (size_t)n >= sizeof(text))
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "the signed text does not fit", 0);
    snprintf(detail, sizeof(detail), "operator=%s action=%s sha256=%s", x.who,
             backup ? "db.backup.sign" : "audit.report", hex);
    if (adm_op_audit(&x.adm, STOR_RES_OK, x.name, detail) != 0)
        return sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "cannot write the audit record", 0);
    uint8_t sig[HSM_SIG_MAX];
    size_t sig_len = 0;
    int arc = sam_audit_sign_text(cfg->hsm, text, sig, &sig_len);
    if (arc == SAM_AUDIT_SIGN_NOKEY)
        return sam_refuse(b, req, SAM_REFUSE_NOT_OFFERED, "no audit key in the HSM: run csc-admin audit key-init", 0);
    if (arc != SAM_AUDIT_SIGN_OK)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "signing failed (see csc-sam's log)", 0);
    rc = sam_build_init(b, req->op | SAM_OP_REPLY, req->id);
    sam_put_bytes(b, SAM_T_SIGNATURE, sig, sig_len);
    sam_put_str(b, SAM_T_SIGNED_TEXT, text);
    return rc != SAM_OK ? rc : b->err;
}

int sam_op_audit_pubkey(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char what[17];
    EVP_PKEY *pk = NULL;
    op_ctx_t x;
    int rc;

    sam_text(req, SAM_T_DESCRIPTION, what, sizeof(what));
    if (strcmp(what, "export-key") != 0 && strcmp(what, "verify") != 0)
        return sam_core_refuse_audited(cfg, req, b, STOR_EV_OPERATOR, "", "", "csc-admin", SAM_REFUSE_BAD_MESSAGE,
                                       "DESCRIPTION is export-key or verify", SAM_T_DESCRIPTION);
    if (sam_op_begin(cfg, req, b, "audit", what, STOR_ROLE_AUDITOR, NULL, NULL, &x, &rc) != 0)
        return rc;
    /* audit export-key only reads, and is audited before it answers (verify is audited by csc-admin's command) */
    if (strcmp(what, "export-key") == 0) {
        char detail[sizeof(x.who) + 64];
        snprintf(detail, sizeof(detail), "operator=%s action=read command=audit.export-key", x.who);
        if (adm_op_audit(&x.adm, STOR_RES_OK, x.name, detail) != 0)
            return sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "cannot write the audit record", 0);
    }
    uint8_t *der = NULL;
    int der_len = sam_audit_key_pub(cfg->hsm, &pk) == 0 && pk != NULL ? i2d_PUBKEY(pk, &der) : 0;
    EVP_PKEY_free(pk);
    rc = sam_build_init(b, SAM_OP_AUDIT_PUBKEY | SAM_OP_REPLY, req->id);
    if (der_len > 0)
        sam_put_bytes(b, SAM_T_PUBKEY, der, (size_t)der_len);
    OPENSSL_free(der);
    return rc != SAM_OK ? rc : b->err;
}
