/*
 * sam_op_operator.c - operators' own factors (sam_core.h; docs/architecture.md "The operators' socket"): csc-admin's
 * login (OPERATOR_LOGIN) and the making of an operator (OPERATOR_NEW: operator bootstrap, operator add). An operator's
 * password verifier and TOTP secret are read and checked here only, never by csc-admin: the secret is sealed under
 * the token's factor key with the operators' additional data (sam_factor.c, through adm_t.op_factor), the password is
 * checked with scrypt, the time step against the last one used, failures counted and the operator locked out by
 * admin/ (adm_op_login, one write with its STOR_EV_OPERATOR records). The session made is bound to the host of the
 * request's ORIGIN claim, as csc-admin's own sessions were; a login without a claim is refused (a session of no host
 * would fit every request without one).
 */
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>

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
    if (bootstrap) { /* only while no operator exists: admin/ refuses (EXISTS) otherwise */
        memset(&x, 0, sizeof(x));
        x.adm = ops->adm;
        (void)sam_core_origin(req, &x.origin);
        x.adm.origin = &x.origin;
        x.adm.operator_name = "-";
        roles = adm_op_bootstrap_roles(&x.adm);
    } else if (add_begin(cfg, req, b, s->name, &x, &rc) != 0) {
        goto out;
    }
    int arc = adm_op_new(&x.adm, s->name, bootstrap ? 0 : roles, s->pw, s->secret, &s->secret_len, s->err,
                         sizeof(s->err));
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
