/*
 * sam_op_login.c - LOGIN (sam_core.h): the sign-in of the pages (/oauth2/authorize, /approve, /account). The front
 * end passes what the person typed (name, password, TOTP code), their address and the authorization request the
 * session is for; csc-sam verifies the password (scrypt), opens the user's TOTP secret (sealed under the factor key:
 * sam_factor.c), checks the code and its time step against the last one used, counts failures and locks out
 * (oauth_session_login_new: one storage write with its STOR_EV_LOGIN record), and only then stores the browser
 * session itself; the reply is its id (the cookie) and the form's CSRF token. A locked, suspended or enrolling user
 * is refused like a wrong password. The front end keeps its per-address rate limit before it asks (so nobody without
 * credentials spends csc-sam's scrypt), and csc-sam keeps its own per address as well.
 *
 * API_LOGIN is auth/login with a password (oauth_login, oauth/oauth_login.c): the same scrypt check
 * (oauth_check_password), failure counts and locks (oauth_lock_failure), last sign-ins and audit record, then the
 * access token (and with rememberMe the refresh token) issued here. Who spends the scrypt: the front end refuses an
 * address over its rate limit before it asks (csc-api/csc_auth.c), csc-sam refuses it too (its own count of the
 * same failures), and csc-sam runs at most password_verify_max checks at once (oauth_secret_check: BUSY beyond, 503
 * at the client, nothing counted).
 */
#include <string.h>
#include <openssl/crypto.h>

#include "sam_core.h"

typedef struct login {
    char user[SAM_NAME_MAX + 1], addr[SAM_ADDR_MAX + 1];
    char pw[SAM_SECRET_MAX + 1], otp[SAM_OTP_MAX + 1];
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    oauth_authz_request_t req;
} login_t;

int sam_op_login(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    const uint8_t *raw = NULL;
    size_t raw_len = 0;
    int rc;

    login_t *l = OPENSSL_zalloc(sizeof(*l));
    if (l == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    sam_text(req, SAM_T_USER, l->user, sizeof(l->user));
    sam_text(req, SAM_T_ADDR, l->addr, sizeof(l->addr));
    sam_text(req, SAM_T_PASSWORD, l->pw, sizeof(l->pw));
    sam_text(req, SAM_T_OTP, l->otp, sizeof(l->otp));
    if (sam_get_bytes(req, SAM_T_AUTHZ_REQ, &raw, &raw_len) != SAM_OK) {
        rc = sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE, "no authorization request", SAM_T_AUTHZ_REQ);
        goto out;
    }
    /* The login: the request decoded and checked first (oauth_req_decode: lengths, counts, strings, nothing left
     * over; OAUTH_ERR_INVAL before any work), then its outcome audited by oauth/ (STOR_EV_LOGIN), failures counted on
     * the user and on the address. */
    int orc = oauth_req_decode(raw, raw_len, &l->req);
    if (orc == OAUTH_OK)
        orc = oauth_session_login_new(cfg->oauth, &l->req, l->user, l->pw, strlen(l->pw), l->otp, strlen(l->otp),
                                      l->addr[0] ? l->addr : NULL, l->sid, l->csrf);
    if (orc == OAUTH_ERR_INVAL) { /* not an authorization request: refused and audited here */
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_LOGIN, l->user, NULL, l->addr, SAM_REFUSE_BAD_MESSAGE,
                                     "not an authorization request", SAM_T_AUTHZ_REQ);
        goto out;
    }
    if (orc != OAUTH_OK) {
        rc = sam_build_refusal(b, req->id, sam_refusal_of_oauth(orc), oauth_strerror(orc), SAM_T_PASSWORD);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_LOGIN | SAM_OP_REPLY, req->id);
    sam_put_str(b, SAM_T_SESSION, l->sid);
    sam_put_str(b, SAM_T_CSRF, l->csrf);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_clear_free(l, sizeof(*l));
    return rc;
}

typedef struct api_login {
    char user[SAM_NAME_MAX + 1], client[SAM_CLIENT_MAX + 1], addr[SAM_ADDR_MAX + 1];
    char pw[SAM_SECRET_MAX + 1];
    oauth_tokens_t tok;
} api_login_t;

int sam_op_api_login(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    uint32_t remember = 0;
    int rc;

    api_login_t *l = OPENSSL_zalloc(sizeof(*l));
    if (l == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    sam_text(req, SAM_T_USER, l->user, sizeof(l->user));
    sam_text(req, SAM_T_CLIENT, l->client, sizeof(l->client));
    sam_text(req, SAM_T_ADDR, l->addr, sizeof(l->addr));
    sam_text(req, SAM_T_PASSWORD, l->pw, sizeof(l->pw));
    (void)sam_get_u32(req, SAM_T_REMEMBER, &remember);
    const char *addr = l->addr[0] ? l->addr : NULL;
    int orc = oauth_rate_check(cfg->oauth, addr);
    if (orc == OAUTH_OK)
        orc = oauth_login(cfg->oauth, l->user, l->pw, strlen(l->pw), (int)remember, l->client[0] ? l->client : NULL,
                          &l->tok);
    if (orc == OAUTH_ERR_DENIED)
        (void)oauth_rate_hit(cfg->oauth, addr);
    if (orc != OAUTH_OK) {
        rc = sam_build_refusal(b, req->id, sam_refusal_of_oauth(orc), oauth_strerror(orc), SAM_T_PASSWORD);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_API_LOGIN | SAM_OP_REPLY, req->id);
    sam_put_str(b, SAM_T_TOKEN, l->tok.access);
    sam_put_u32(b, SAM_T_EXPIRES_IN, l->tok.expires_in);
    if (l->tok.refresh[0] != '\0')
        sam_put_str(b, SAM_T_REFRESH_TOKEN, l->tok.refresh);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_clear_free(l, sizeof(*l));
    return rc;
}
