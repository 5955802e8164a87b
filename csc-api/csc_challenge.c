/*
 * csc_challenge.c - credentials/getChallenge (CSC API v2.0.0.2 sec. 11.8) and v1 credentials/sendOTP: a one-time code
 * for the CHALLENGE authentication object. csc-sam makes it and delivers it out of band through the configured
 * sender (otp_sender: exec:/path or file:/path, sam/sam_op_challenge.c), never to the client and never through this
 * process: csc-server starts no program. The client then passes the code the user received to
 * credentials/authorize as authData {"id":"CHALLENGE","value":...} (v1: "OTP").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

/* Shared by getChallenge and sendOTP once the credential and object are known to be right: csc-sam checks the
 * token, the credential and its object again, makes the code and delivers it (CHALLENGE). */
static int issue(csc_req_t *r, const stor_cred_t *cred)
{
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
    const char *token = csc_bearer_value(r);
    csc_sam_call_t call;
    uint32_t about = 0, refusal = 0;

    if (token == NULL)
        return csc_unavailable(r);
    if (csc_sam_begin(r->csc, &call, SAM_OP_CHALLENGE, &r->err) != 0)
        return -1;
    sam_put_str(&call.b, SAM_T_TOKEN, token);
    sam_put_str(&call.b, SAM_T_CRED, cred->id);
    sam_put_str(&call.b, SAM_T_CLIENT, r->call->client != NULL && r->call->client[0] ? r->call->client : "-");
    int rc = csc_sam_run(r->csc, &call, CSC_ABOUT_CREDENTIAL, r->v1 ? challenge_v1 : challenge_v2, &r->err);
    if (rc != 0 && call.reply.op == SAM_OP_REFUSED && sam_get_u32(&call.reply, SAM_T_ABOUT, &about) == SAM_OK &&
        about == SAM_T_CHALLENGE && sam_get_u32(&call.reply, SAM_T_REFUSAL, &refusal) == SAM_OK &&
        refusal == SAM_REFUSE_UNAVAILABLE)
        csc_fail(r, 503, "temporarily_unavailable", "The one-time code could not be delivered");
    csc_sam_end(&call);
    if (rc != 0)
        return -1;
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
    if ((cred = stor_rec_new(sizeof(*cred))) == NULL)
        return csc_unavailable(r);
    if (csc_load_cred(r, id, cred) != 0)
        goto out;
    if (strcmp(obj, OAUTH_CHALLENGE_ID) != 0 || !cred_has_challenge(cred)) {
        csc_bad(r, "Invalid parameter authObjectID");
        goto out;
    }
    rc = issue(r, cred);
out:
    stor_rec_free(cred, sizeof(*cred));
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
    if ((cred = stor_rec_new(sizeof(*cred))) == NULL)
        return csc_unavailable(r);
    if (csc_load_cred(r, id, cred) != 0)
        goto out;
    if (!cred_has_challenge(cred)) {
        csc_bad(r, "The credential has no online OTP");
        goto out;
    }
    rc = issue(r, cred);
out:
    stor_rec_free(cred, sizeof(*cred));
    return rc;
}
