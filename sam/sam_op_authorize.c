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

uint32_t sam_load_cred(const sam_server_config_t *cfg, const oauth_principal_t *p, const char *id, stor_cred_t *out)
{
    /* A credential-scope token serves its own credential only: any other reads like an unknown one. */
    if (p->scope == STOR_SCOPE_CREDENTIAL && strcmp(id, p->cred) != 0)
        return SAM_REFUSE_NOT_FOUND;
    int rc = stor_cred_get(cfg->stor, id, out);
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL ||
        (rc == STOR_OK && ((strcmp(out->owner, p->user) != 0 && stor_cred_delegate(out, p->user) < 0) ||
                           out->status == STOR_CRED_PENDING)))
        return SAM_REFUSE_NOT_FOUND; /* unknown, another user's, or waiting for its certificate: one answer */
    return rc == STOR_OK ? 0 : SAM_REFUSE_UNAVAILABLE;
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

/* AUTHORIZE: the checks of csc_m_authorize, again, then oauth_authorize (or, for an APPROVAL credential, a pending
 * approval). */
int sam_op_authorize(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    oauth_principal_t who;
    char id[SAM_NAME_MAX + 1], client[SAM_CLIENT_MAX + 1], alg[SAM_OID_MAX + 1];
    char pin[SAM_SECRET_MAX + 1], otp[SAM_OTP_MAX + 1], chal[SAM_OTP_MAX + 1];
    const uint8_t **ptrs = calloc(SAM_DIGESTS_MAX, sizeof(*ptrs));
    stor_cred_t *cred = malloc(sizeof(*cred));
    uint32_t num = 0;
    size_t n = 0, dlen = 0;
    int rc;

    sam_text(req, SAM_T_CRED, id, sizeof(id));
    sam_text(req, SAM_T_CLIENT, client, sizeof(client));
    (void)sam_get_u32(req, SAM_T_NUM_SIGNATURES, &num);
    if (ptrs == NULL || cred == NULL) {
        rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "out of memory", 0);
        goto out;
    }
    int orc = sam_principal(cfg, req, 1, &who);
    if (orc != OAUTH_OK) {
        sam_audit_denied(cfg, STOR_EV_AUTHORIZE, "", id, client, "csc-sam: access token refused (%s)",
                         oauth_strerror(orc));
        rc = sam_refuse_oauth(b, req, orc, SAM_T_TOKEN);
        goto out;
    }
    uint32_t code = sam_load_cred(cfg, &who, id, cred);
    const char *why = code == SAM_REFUSE_NOT_FOUND ? "unknown credential" : "storage unavailable";
    unsigned about = SAM_T_CRED;
    if (code == 0 && cred->auth_mode != STOR_AUTH_EXPLICIT) {
        code = SAM_REFUSE_DISABLED;
        why = "authorized through OAuth 2.0 only";
    } else if (code == 0 && cred->status != STOR_CRED_ENABLED) {
        code = SAM_REFUSE_DISABLED;
        why = "credential not enabled";
    } else if (code == 0 && (why = sam_policy_refusal(cfg, cred)) != NULL) {
        code = SAM_REFUSE_DISABLED;
    } else if (code == 0 && num > cred->multisign) {
        code = SAM_REFUSE_BAD_MESSAGE;
        why = "numSignatures over the credential's multisign";
        about = SAM_T_NUM_SIGNATURES;
    } else if (code == 0 && (req_digests(req, alg, ptrs, &n, &dlen) != 0 || n > num || (n == 0 && cred->scal == 2))) {
        code = SAM_REFUSE_BAD_MESSAGE;
        why = "digests malformed, more than numSignatures, or missing for SCAL 2";
        about = SAM_T_DIGEST;
    }
    if (code != 0) {
        sam_audit_denied(cfg, STOR_EV_AUTHORIZE, who.user, id, client, "csc-sam: %s", why);
        rc = sam_refuse(b, req, code, why, about);
        goto out;
    }
    oauth_sad_request_t sr = {
        .user = who.user,
        .cred = cred->id,
        .num_signatures = num,
        .hash_alg = n > 0 ? alg : NULL,
        .digests = ptrs,
        .digest_len = dlen,
        .n_digests = n,
        .client = client,
    };
    char sad[OAUTH_TOKEN_BUFLEN];
    unsigned ttl = 0;
    if (oauth_expr_names(cred->auth_expr, OAUTH_APPROVAL_ID)) {
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
    if (orc != OAUTH_OK) {
        rc = sam_refuse_oauth(b, req, orc, 0); /* audited by oauth/ (but BUSY and INVAL: nothing was checked) */
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_AUTHORIZE | SAM_OP_REPLY, req->id);
    sam_put_str(b, SAM_T_SAD, sad);
    sam_put_u32(b, SAM_T_EXPIRES_IN, ttl);
    OPENSSL_cleanse(sad, sizeof(sad));
    rc = rc != SAM_OK ? rc : b->err;
out:
    if (cred != NULL)
        stor_wipe(cred, sizeof(*cred));
    free(cred);
    free(ptrs);
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
    if (orc != OAUTH_OK && orc != OAUTH_PENDING)
        return sam_refuse_oauth(b, req, orc, SAM_T_HANDLE);
    int rc = sam_build_init(b, SAM_OP_AUTHORIZE_CHECK | SAM_OP_REPLY, req->id);
    if (orc == OAUTH_OK) {
        sam_put_str(b, SAM_T_SAD, sad);
        sam_put_u32(b, SAM_T_EXPIRES_IN, ttl);
    } else {
        sam_put_u32(b, SAM_T_PENDING, 1);
    }
    OPENSSL_cleanse(sad, sizeof(sad));
    return rc != SAM_OK ? rc : b->err;
}

/* EXTEND: a new SAD for digests already bound to the old one (oauth_sad_extend checks and audits). */
int sam_op_extend(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    oauth_principal_t who;
    char id[SAM_NAME_MAX + 1], client[SAM_CLIENT_MAX + 1], alg[SAM_OID_MAX + 1], old[SAM_TOKEN_MAX + 1];
    const uint8_t **ptrs = calloc(SAM_DIGESTS_MAX, sizeof(*ptrs));
    stor_cred_t *cred = malloc(sizeof(*cred));
    size_t n = 0, dlen = 0;
    int rc;

    sam_text(req, SAM_T_CRED, id, sizeof(id));
    sam_text(req, SAM_T_CLIENT, client, sizeof(client));
    sam_text(req, SAM_T_SAD, old, sizeof(old));
    if (ptrs == NULL || cred == NULL) {
        rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "out of memory", 0);
        goto out;
    }
    int orc = sam_principal(cfg, req, 1, &who);
    if (orc != OAUTH_OK) {
        sam_audit_denied(cfg, STOR_EV_AUTHORIZE, "", id, client, "extendTransaction: access token refused (%s)",
                         oauth_strerror(orc));
        rc = sam_refuse_oauth(b, req, orc, SAM_T_TOKEN);
        goto out;
    }
    uint32_t code = sam_load_cred(cfg, &who, id, cred);
    const char *why = code == SAM_REFUSE_NOT_FOUND ? "unknown credential" : "storage unavailable";
    unsigned about = SAM_T_CRED;
    if (code == 0 && cred->status != STOR_CRED_ENABLED) {
        code = SAM_REFUSE_DISABLED;
        why = "credential not enabled";
    } else if (code == 0 && (req_digests(req, alg, ptrs, &n, &dlen) != 0 || (n == 0 && cred->scal == 2))) {
        code = SAM_REFUSE_BAD_MESSAGE;
        why = "digests malformed, or missing for SCAL 2";
        about = SAM_T_DIGEST;
    }
    if (code != 0) {
        sam_audit_denied(cfg, STOR_EV_AUTHORIZE, who.user, id, client, "extendTransaction: %s", why);
        rc = sam_refuse(b, req, code, why, about);
        goto out;
    }
    oauth_sad_request_t sr = {
        .user = who.user,
        .cred = cred->id,
        .hash_alg = n > 0 ? alg : NULL,
        .digests = ptrs,
        .digest_len = dlen,
        .n_digests = n,
        .client = client,
        .owner = strcmp(cred->owner, who.user) != 0 ? cred->owner : NULL, /* a delegate extends */
    };
    char fresh[OAUTH_TOKEN_BUFLEN];
    unsigned ttl = 0;
    orc = oauth_sad_extend(cfg->oauth, old, strlen(old), &sr, fresh, &ttl);
    if (orc != OAUTH_OK) {
        rc = sam_refuse_oauth(b, req, orc, SAM_T_SAD);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_EXTEND | SAM_OP_REPLY, req->id);
    sam_put_str(b, SAM_T_SAD, fresh);
    sam_put_u32(b, SAM_T_EXPIRES_IN, ttl);
    OPENSSL_cleanse(fresh, sizeof(fresh));
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_cleanse(old, sizeof(old));
    if (cred != NULL)
        stor_wipe(cred, sizeof(*cred));
    free(cred);
    free(ptrs);
    return rc;
}
