/*
 * sam_op_authorize.c - csc-sam's AUTHORIZE, AUTHORIZE_CHECK and EXTEND (sam_core.h): credentials/authorize,
 * credentials/authorizeCheck and credentials/extendTransaction decided here, never in the front end. The user is the
 * one of the caller's own access token (sam_principal); the credential is loaded from storage here and checked
 * (mode, status, production policy, numSignatures, SCAL 2 digests) before oauth/ verifies the factors, issues the
 * SAD and audits; a refusal before oauth/ is audited here (STOR_EV_AUTHORIZE, DENIED).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>

#include "sam_core.h"

/* A credential-scope token serves its own credential only: any other reads like an unknown one. */
static int cred_other(const oauth_principal_t *p, const char *id)
{
    return p->scope == STOR_SCOPE_CREDENTIAL && strcmp(id, p->cred) != 0;
}

/* What the read of a credential (rc, out) answers p. */
static uint32_t cred_answer(const oauth_principal_t *p, int rc, const stor_cred_t *out)
{
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL ||
        (rc == STOR_OK && ((strcmp(out->owner, p->user) != 0 && stor_cred_delegate(out, p->user) < 0) ||
                           out->status == STOR_CRED_PENDING)))
        return SAM_REFUSE_NOT_FOUND; /* unknown, another user's, or waiting for its certificate: one answer */
    return rc == STOR_OK ? 0 : sam_refusal_of_stor(rc);
}

uint32_t sam_load_cred(const sam_server_config_t *cfg, const oauth_principal_t *p, const char *id, stor_cred_t *out)
{
    return cred_other(p, id) ? SAM_REFUSE_NOT_FOUND : cred_answer(p, stor_cred_get(cfg->stor, id, out), out);
}

uint32_t sam_load_cred_txn(stor_txn_t *t, const oauth_principal_t *p, const char *id, stor_cred_t *out)
{
    return cred_other(p, id) ? SAM_REFUSE_NOT_FOUND : cred_answer(p, stor_txn_cred_get(t, id, out), out);
}

const char *sam_policy_refusal(const sam_server_config_t *cfg, const stor_cred_t *cred)
{
    if (!cfg->production)
        return NULL;
    if (!cfg->allow_scal1 && cred->scal != 2)
        return "SCAL 1 credential refused by the production policy";
    if (!cfg->allow_single_factor && cred->auth_mode == STOR_AUTH_EXPLICIT && oauth_expr_single_factor(cred->auth_expr))
        return "single-factor credential refused by the production policy";
    return NULL;
}

/* The digests of req (HASH_ALG and DIGEST fields) as oauth/ takes them: every digest of one length, the length of
 * HASH_ALG (a digest this service signs, in dotted form). ptrs points into req. @return 0, or -1 (malformed) */
static int req_digests(const sam_msg_t *req, char alg[SAM_OID_MAX + 1], const uint8_t **ptrs, size_t *n,
                       size_t *len)
{
    sam_iter_t it;
    const uint8_t *p;
    size_t l, want = 0;
    *n = 0;
    *len = 0;
    sam_text(req, SAM_T_HASH_ALG, alg, SAM_OID_MAX + 1);
    if (alg[0] != '\0') {
        ASN1_OBJECT *o = OBJ_txt2obj(alg, 1);
        int nid = o != NULL ? OBJ_obj2nid(o) : NID_undef;
        ASN1_OBJECT_free(o);
        const char *oid = pki_md_oid(nid, &want);
        if (oid == NULL || strcmp(oid, alg) != 0)
            return -1;
    }
    sam_iter_init(req, SAM_T_DIGEST, &it);
    while (sam_iter_next(&it, &p, &l)) {
        if (l != want) /* also: digests without HASH_ALG */
            return -1;
        ptrs[(*n)++] = p;
    }
    *len = want;
    return 0;
}

/* The reply of a SAD issued by oauth/ (orc OAUTH_OK: SAD and EXPIRES_IN, then the SAD is wiped), or its refusal. */
static int sad_reply(sam_builder_t *b, const sam_msg_t *req, int orc, unsigned about, char sad[OAUTH_TOKEN_BUFLEN],
                     unsigned ttl)
{
    if (orc != OAUTH_OK)
        return sam_refuse_oauth(b, req, orc, about);
    int rc = sam_build_init(b, req->op | SAM_OP_REPLY, req->id);
    sam_put_str(b, SAM_T_SAD, sad);
    sam_put_u32(b, SAM_T_EXPIRES_IN, ttl);
    OPENSSL_cleanse(sad, OAUTH_TOKEN_BUFLEN);
    return rc != SAM_OK ? rc : b->err;
}

/* What AUTHORIZE and EXTEND share: the user of the token, the credential the user may use (enabled), the digests. */
typedef struct cred_req {
    const char *what;                  /* for the audit record */
    oauth_principal_t who;
    char id[SAM_NAME_MAX + 1], client[SAM_CLIENT_MAX + 1], alg[SAM_OID_MAX + 1];
    const uint8_t **ptrs;
    size_t n, dlen;
    stor_cred_t *cred;
} cred_req_t;

static void cred_req_close(cred_req_t *c)
{
    stor_rec_free(c->cred, sizeof(*c->cred));
    free(c->ptrs);
}

/* Refuse (audited, STOR_EV_AUTHORIZE DENIED) with code about a tag. @return the refusal's builder result */
static int cred_req_refuse(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, const cred_req_t *c,
                           uint32_t code, const char *why, unsigned about)
{
    sam_audit_denied(cfg, STOR_EV_AUTHORIZE, c->who.user, c->id, c->client, "%s: %s", c->what, why);
    return sam_refuse(b, req, code, why, about);
}

/* Open c for req: 0, or -1 with the refusal in b and its result in *rc (the caller closes c either way). */
static int cred_req_open(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, cred_req_t *c,
                         int *rc)
{
    sam_text(req, SAM_T_CRED, c->id, sizeof(c->id));
    sam_text(req, SAM_T_CLIENT, c->client, sizeof(c->client));
    c->ptrs = calloc(SAM_DIGESTS_MAX, sizeof(*c->ptrs));
    c->cred = stor_rec_new(sizeof(*c->cred));
    if (c->ptrs == NULL || c->cred == NULL) {
        *rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "out of memory", 0);
        return -1;
    }
    int orc = sam_principal(cfg, req, 1, &c->who);
    if (orc != OAUTH_OK) {
        c->who.user[0] = '\0';
        *rc = cred_req_refuse(cfg, req, b, c, sam_refusal_of_oauth(orc), oauth_strerror(orc), SAM_T_TOKEN);
        return -1;
    }
    uint32_t code = sam_load_cred(cfg, &c->who, c->id, c->cred);
    const char *why = code == SAM_REFUSE_NOT_FOUND ? "unknown credential" : "storage unavailable";
    if (code == 0 && c->cred->status != STOR_CRED_ENABLED) {
        code = SAM_REFUSE_DISABLED;
        why = "credential not enabled";
    }
    if (code == 0 && req_digests(req, c->alg, c->ptrs, &c->n, &c->dlen) != 0) {
        *rc = cred_req_refuse(cfg, req, b, c, SAM_REFUSE_BAD_MESSAGE, "digests malformed", SAM_T_DIGEST);
        return -1;
    }
    if (code != 0) {
        *rc = cred_req_refuse(cfg, req, b, c, code, why, SAM_T_CRED);
        return -1;
    }
    return 0;
}

/* AUTHORIZE: the checks of csc_m_authorize, again, then oauth_authorize (or, for an APPROVAL credential, a pending
 * approval). */
int sam_op_authorize(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    cred_req_t c = {.what = "csc-sam"};
    char pin[SAM_SECRET_MAX + 1], otp[SAM_OTP_MAX + 1], chal[SAM_OTP_MAX + 1];
    uint32_t num = 0;
    int rc;
    const char *why;

    char id[SAM_REQUEST_ID_MAX + 1];
    (void)sam_get_u32(req, SAM_T_NUM_SIGNATURES, &num);
    if (sam_request_id(req, id) != 0)
        return sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE, "a request id of other characters than [A-Za-z0-9._-]",
                          SAM_T_REQUEST_ID);
    if (cred_req_open(cfg, req, b, &c, &rc) != 0)
        goto out;
    if (c.cred->auth_mode != STOR_AUTH_EXPLICIT) {
        rc = cred_req_refuse(cfg, req, b, &c, SAM_REFUSE_DISABLED, "authorized through OAuth 2.0 only", SAM_T_CRED);
        goto out;
    }
    if ((why = sam_policy_refusal(cfg, c.cred)) != NULL) {
        rc = cred_req_refuse(cfg, req, b, &c, SAM_REFUSE_DISABLED, why, SAM_T_CRED);
        goto out;
    }
    if (num > c.cred->multisign) {
        rc = cred_req_refuse(cfg, req, b, &c, SAM_REFUSE_BAD_MESSAGE, "numSignatures over the credential's multisign",
                             SAM_T_NUM_SIGNATURES);
        goto out;
    }
    if (c.n > num || (c.n == 0 && c.cred->scal == 2)) {
        rc = cred_req_refuse(cfg, req, b, &c, SAM_REFUSE_BAD_MESSAGE, "more digests than numSignatures, or none for SCAL 2",
                             SAM_T_DIGEST);
        goto out;
    }
    oauth_sad_request_t sr = {
        .user = c.who.user,
        .cred = c.cred->id,
        .num_signatures = num,
        .hash_alg = c.n > 0 ? c.alg : NULL,
        .digests = c.ptrs,
        .digest_len = c.dlen,
        .n_digests = c.n,
        .client = c.client,
        .request_id = id[0] != '\0' ? id : NULL,
    };
    char sad[OAUTH_TOKEN_BUFLEN];
    unsigned ttl = 0;
    int orc;
    if (oauth_expr_names(c.cred->auth_expr, OAUTH_APPROVAL_ID)) {
        /* The factors are collected on the approval page, never from the client: a pending request and its handle. */
        orc = oauth_approval_new(cfg->oauth, &sr, sad, &ttl);
        if (orc != OAUTH_OK) {
            rc = sam_refuse_oauth(b, req, orc, 0);
            goto out;
        }
        rc = sam_build_init(b, SAM_OP_AUTHORIZE | SAM_OP_REPLY, req->id);
        sam_put_u32(b, SAM_T_EXPIRES_IN, ttl);
        sam_put_str(b, SAM_T_HANDLE, sad);
        OPENSSL_cleanse(sad, sizeof(sad));
        rc = rc != SAM_OK ? rc : b->err;
        goto out;
    }
    sam_text(req, SAM_T_PIN, pin, sizeof(pin));
    sam_text(req, SAM_T_OTP, otp, sizeof(otp));
    sam_text(req, SAM_T_CHALLENGE, chal, sizeof(chal));
    /* Present but empty is a factor sent empty: a wrong one, which counts. */
    oauth_factors_t f = {
        .pin = sam_msg_count(req, SAM_T_PIN) > 0 ? pin : NULL,
        .pin_len = strlen(pin),
        .otp = sam_msg_count(req, SAM_T_OTP) > 0 ? otp : NULL,
        .otp_len = strlen(otp),
        .challenge = sam_msg_count(req, SAM_T_CHALLENGE) > 0 ? chal : NULL,
        .challenge_len = strlen(chal),
    };
    orc = oauth_authorize(cfg->oauth, &sr, &f, sad, &ttl);
    OPENSSL_cleanse(pin, sizeof(pin));
    OPENSSL_cleanse(otp, sizeof(otp));
    OPENSSL_cleanse(chal, sizeof(chal));
    rc = sad_reply(b, req, orc, 0, sad, ttl); /* a refusal: audited by oauth/ (but BUSY, INVAL: nothing was checked) */
out:
    cred_req_close(&c);
    return rc;
}

/* AUTHORIZE_CHECK: the outcome of a pending approval, for the user of the token only. */
int sam_op_authorize_check(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    oauth_principal_t who;
    char handle[SAM_TOKEN_MAX + 1], sad[OAUTH_TOKEN_BUFLEN];
    unsigned ttl = 0;
    int orc = sam_principal(cfg, req, 1, &who);
    if (orc != OAUTH_OK)
        return sam_refuse_oauth(b, req, orc, SAM_T_TOKEN);
    sam_text(req, SAM_T_HANDLE, handle, sizeof(handle));
    orc = oauth_approval_check(cfg->oauth, who.user, handle, strlen(handle), sad, &ttl);
    OPENSSL_cleanse(handle, sizeof(handle));
    if (orc != OAUTH_PENDING)
        return sad_reply(b, req, orc, SAM_T_HANDLE, sad, ttl);
    int rc = sam_build_init(b, SAM_OP_AUTHORIZE_CHECK | SAM_OP_REPLY, req->id);
    sam_put_u32(b, SAM_T_PENDING, 1);
    return rc != SAM_OK ? rc : b->err;
}

/* EXTEND: a new SAD for digests already bound to the old one (oauth_sad_extend checks and audits). */
int sam_op_extend(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    cred_req_t c = {.what = "extendTransaction"};
    char old[SAM_TOKEN_MAX + 1];
    int rc;

    sam_text(req, SAM_T_SAD, old, sizeof(old));
    if (cred_req_open(cfg, req, b, &c, &rc) != 0)
        goto out;
    if (c.n == 0 && c.cred->scal == 2) {
        rc = cred_req_refuse(cfg, req, b, &c, SAM_REFUSE_BAD_MESSAGE, "no digests for SCAL 2", SAM_T_DIGEST);
        goto out;
    }
    oauth_sad_request_t sr = {
        .user = c.who.user,
        .cred = c.cred->id,
        .hash_alg = c.n > 0 ? c.alg : NULL,
        .digests = c.ptrs,
        .digest_len = c.dlen,
        .n_digests = c.n,
        .client = c.client,
        .owner = strcmp(c.cred->owner, c.who.user) != 0 ? c.cred->owner : NULL, /* a delegate extends */
    };
    char fresh[OAUTH_TOKEN_BUFLEN];
    unsigned ttl = 0;
    int orc = oauth_sad_extend(cfg->oauth, old, strlen(old), &sr, fresh, &ttl);
    rc = sad_reply(b, req, orc, SAM_T_SAD, fresh, ttl);
out:
    OPENSSL_cleanse(old, sizeof(old));
    cred_req_close(&c);
    return rc;
}
