/*
 * csc_token.c - the front end's side of csc-sam's TOKEN and REVOKE (csc_int.h): the token endpoint's grants and
 * auth/login's refresh, /oauth2/revoke and auth/revoke. csc-server writes no token, code or SAD itself: it passes what
 * the client presented (the client's id and secret too: csc-sam authenticates the client again) and renders the
 * answer; the refusals come back as the oauth/ codes the callers already answered (web_token.c, csc_auth.c).
 */
#include <string.h>
#include <openssl/crypto.h>

#include "csc_int.h"

/* A value as the protocol carries it: printable ASCII of at most max bytes (every valid code, token, verifier,
 * registered redirect URI and client secret is); anything else is sent as "", which is as wrong as it was. */
static const char *wire_value(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return "";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return "";
    return s;
}

static void put_opt(sam_builder_t *b, unsigned tag, const char *s, size_t max)
{
    if (s != NULL)
        sam_put_str(b, tag, wire_value(s, max));
}

/* csc-sam's refusal of a TOKEN or REVOKE as an oauth/ code (the reverse of sam_op_token.c's choice). */
static int refusal_rc(const sam_msg_t *reply)
{
    uint32_t code = 0, about = 0;
    if (reply->op != SAM_OP_REFUSED || sam_get_u32(reply, SAM_T_REFUSAL, &code) != SAM_OK)
        return OAUTH_ERR_STORAGE; /* csc-sam not reached, or no answer: nothing was decided */
    (void)sam_get_u32(reply, SAM_T_ABOUT, &about);
    if (about == SAM_T_CLIENT_SECRET && code == SAM_REFUSE_UNAUTHORIZED)
        return CSC_TOKEN_CLIENT_REFUSED;
    if (about == SAM_T_TOKEN && code != SAM_REFUSE_UNAVAILABLE && code != SAM_REFUSE_DB_DOWN &&
        code != SAM_REFUSE_INTERNAL)
        return CSC_TOKEN_BEARER_REFUSED;
    switch (code) {
    case SAM_REFUSE_NOT_FOUND: return OAUTH_ERR_INVALID;
    case SAM_REFUSE_UNAUTHORIZED: return OAUTH_ERR_DENIED;
    case SAM_REFUSE_EXPIRED: return OAUTH_ERR_EXPIRED;
    case SAM_REFUSE_DISABLED: return OAUTH_ERR_DISABLED;
    case SAM_REFUSE_NOT_BOUND: return OAUTH_ERR_PKCE;
    case SAM_REFUSE_EXHAUSTED: return OAUTH_ERR_REUSED;
    case SAM_REFUSE_BAD_MESSAGE: return OAUTH_ERR_INVAL;
    case SAM_REFUSE_DB_DOWN: return OAUTH_ERR_UNAVAILABLE;
    default: return OAUTH_ERR_STORAGE;
    }
}

static int read_tokens(const sam_msg_t *m, oauth_token_response_t *out)
{
    uint32_t expires = 0, scope = 0;
    int bad = sam_get_text(m, SAM_T_TOKEN, out->access, sizeof(out->access)) != SAM_OK ||
              sam_get_u32(m, SAM_T_EXPIRES_IN, &expires) != SAM_OK || sam_get_u32(m, SAM_T_SCOPE, &scope) != SAM_OK;
    if (!bad && sam_msg_count(m, SAM_T_REFRESH_TOKEN) > 0)
        bad = sam_get_text(m, SAM_T_REFRESH_TOKEN, out->refresh, sizeof(out->refresh)) != SAM_OK;
    if (!bad && sam_msg_count(m, SAM_T_CRED) > 0)
        bad = sam_get_text(m, SAM_T_CRED, out->cred, sizeof(out->cred)) != SAM_OK;
    if (!bad && sam_msg_count(m, SAM_T_AUTHZ_DETAILS) > 0)
        bad = sam_get_text(m, SAM_T_AUTHZ_DETAILS, out->authz_details, sizeof(out->authz_details)) != SAM_OK;
    out->expires_in = expires;
    out->scope = scope;
    return bad ? OAUTH_ERR_STORAGE : OAUTH_OK;
}

/* Send call and read its answer: OAUTH_OK (out filled when not NULL), a refusal's code, OAUTH_ERR_STORAGE. */
static int run(csc_t *c, csc_sam_call_t *call, oauth_token_response_t *out)
{
    csc_err_t err;
    int rc = csc_sam_run(c, call, CSC_ABOUT_TOKEN, NULL, &err) != 0 ? refusal_rc(&call->reply)
             : out != NULL                                         ? read_tokens(&call->reply, out)
                                                                   : OAUTH_OK;
    csc_sam_end(call);
    if (rc != OAUTH_OK && out != NULL)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

static void put_client(sam_builder_t *b, const char *id, const char *secret)
{
    if (id != NULL) {
        sam_put_str(b, SAM_T_CLIENT_ID, wire_value(id, SAM_NAME_MAX));
        sam_put_str(b, SAM_T_CLIENT_SECRET, wire_value(secret != NULL ? secret : "", SAM_CLIENT_SECRET_MAX));
    }
}

int csc_sam_token(csc_t *c, const csc_token_req_t *in, oauth_token_response_t *out)
{
    csc_sam_call_t call;
    csc_err_t err;

    memset(out, 0, sizeof(*out));
    if (csc_sam_begin(c, &call, SAM_OP_TOKEN, &err) != 0)
        return OAUTH_ERR_STORAGE;
    if (in->caller != NULL && in->caller[0] != '\0')
        sam_put_str(&call.b, SAM_T_CLIENT, wire_value(in->caller, SAM_CLIENT_MAX));
    put_opt(&call.b, SAM_T_CODE, in->code, SAM_TOKEN_MAX);
    put_opt(&call.b, SAM_T_REFRESH_TOKEN, in->refresh, SAM_TOKEN_MAX);
    sam_put_u32(&call.b, SAM_T_GRANT_TYPE, in->grant);
    put_client(&call.b, in->client_id, in->secret);
    put_opt(&call.b, SAM_T_REDIRECT_URI, in->redirect_uri, SAM_URI_MAX);
    put_opt(&call.b, SAM_T_VERIFIER, in->verifier, SAM_VERIFIER_MAX);
    return run(c, &call, out);
}

int csc_sam_revoke(csc_t *c, const char *bearer, const char *caller, const char *client_id, const char *secret,
                   const char *token)
{
    csc_sam_call_t call;
    csc_err_t err;

    if (csc_sam_begin(c, &call, SAM_OP_REVOKE, &err) != 0)
        return OAUTH_ERR_STORAGE;
    if (bearer != NULL)
        sam_put_str(&call.b, SAM_T_TOKEN, wire_value(bearer, SAM_TOKEN_MAX));
    if (caller != NULL && caller[0] != '\0')
        sam_put_str(&call.b, SAM_T_CLIENT, wire_value(caller, SAM_CLIENT_MAX));
    put_client(&call.b, client_id, secret);
    sam_put_str(&call.b, SAM_T_REVOKE_TOKEN, wire_value(token, SAM_TOKEN_MAX));
    return run(c, &call, NULL);
}
