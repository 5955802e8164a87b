/* csc_auth.c - auth/login (CSC API v2.0.0.2 sec. 11.2) and auth/revoke (11.3). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "csc_int.h"

#define BASIC_MAX 512 /* decoded user:password */

static int login_reply(csc_req_t *r, const oauth_tokens_t *t)
{
    yajl_gen g = r->gen;
    yajl_gen_map_open(g);
    csc_gen_kv(g, "access_token", t->access);
    if (t->refresh[0] != '\0')
        csc_gen_kv(g, "refresh_token", t->refresh);
    csc_gen_kint(g, "expires_in", t->expires_in);
    yajl_gen_map_close(g);
    return 0;
}

static int login_failed(csc_req_t *r, int rc)
{
    if (rc == OAUTH_ERR_BUSY)
        return csc_busy(r);
    if (rc == OAUTH_ERR_STORAGE || rc == OAUTH_ERR_INTERNAL)
        return csc_unavailable(r);
    /* Wrong password, unknown user, lock and suspension look the same from outside. */
    return csc_fail(r, 400, "authentication_error", "An error occurred during authentication process");
}

/* auth/login with a refresh token: csc-sam checks and uses it (SAM_OP_TOKEN), the front end writes nothing. */
static int login_refresh(csc_req_t *r, const char *refresh)
{
    oauth_token_response_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return csc_unavailable(r);
    csc_token_req_t in = {.grant = SAM_GRANT_LOGIN_REFRESH, .caller = r->call->client, .refresh = refresh};
    int rc = csc_sam_token(r->csc, &in, t);
    if (rc == OAUTH_ERR_INVALID || rc == OAUTH_ERR_EXPIRED || rc == OAUTH_ERR_DISABLED)
        rc = csc_bad(r, "Invalid refresh_token");
    else if (rc != OAUTH_OK)
        rc = login_failed(r, rc);
    else {
        oauth_tokens_t out;
        memset(&out, 0, sizeof(out));
        memcpy(out.access, t->access, sizeof(out.access));
        out.expires_in = t->expires_in;
        rc = login_reply(r, &out);
        OPENSSL_cleanse(&out, sizeof(out));
    }
    OPENSSL_clear_free(t, sizeof(*t));
    return rc;
}

int csc_m_login(csc_req_t *r)
{
    const csc_call_t *call = r->call;
    const char *refresh;
    bool remember = false;
    int rc;

    if (csc_get_string(r, "refresh_token", &refresh, 512) < 0)
        return csc_bad(r, "Invalid string parameter: refresh_token");
    if (csc_get_bool(r, "rememberMe", &remember) < 0)
        return csc_bad(r, "Invalid parameter rememberMe");
    if (csc_get_value(r, "clientData") != NULL && !YAJL_IS_STRING(csc_get_value(r, "clientData")))
        return csc_bad(r, "Invalid parameter clientData");

    if (call->authorization == NULL || call->authorization_len < 6 ||
        strncasecmp(call->authorization, "Basic ", 6) != 0) {
        if (refresh != NULL && call->authorization == NULL)
            return login_refresh(r, refresh);
        return csc_fail(r, 401, "invalid_request", "Malformed authentication parameter.");
    }

    const char *p = call->authorization + 6;
    size_t n = call->authorization_len - 6;
    while (n > 0 && *p == ' ') {
        p++;
        n--;
    }
    uint8_t dec[BASIC_MAX + 1];
    long dlen = n > 0 && n <= BASIC_MAX * 4 / 3 + 4 ? csc_b64_decode(p, n, dec, BASIC_MAX) : -1;
    uint8_t *colon = dlen > 0 ? memchr(dec, ':', (size_t)dlen) : NULL;
    if (colon == NULL || colon == dec || memchr(dec, '\0', (size_t)dlen) != NULL) {
        if (dlen > 0)
            OPENSSL_cleanse(dec, (size_t)dlen);
        return csc_bad(r, "Malformed username-password.");
    }
    *colon = '\0';
    const char *user = (const char *)dec;
    const char *pw = (const char *)colon + 1;
    size_t pw_len = (size_t)dlen - (size_t)(colon + 1 - dec);

    /* Failed password logins count per client address (the same table as the OAuth pages' sign-in): over the
     * limit, no password is checked until the window ends. */
    if (oauth_rate_check(r->csc->oauth, call->client) == OAUTH_ERR_RATE) {
        OPENSSL_cleanse(dec, sizeof(dec));
        csc_fail(r, 429, "temporarily_unavailable", "Too many failed logins from this address; try again later");
        r->err.retry_after = oauth_config(r->csc->oauth)->rate_window;
        return -1;
    }
    oauth_tokens_t t;
    rc = strlen(user) <= STOR_NAME_MAX
             ? oauth_login(r->csc->oauth, user, pw, pw_len, remember, call->client, &t)
             : OAUTH_ERR_DENIED;
    OPENSSL_cleanse(dec, sizeof(dec));
    if (rc == OAUTH_ERR_DENIED || rc == OAUTH_ERR_LOCKED || rc == OAUTH_ERR_DISABLED)
        (void)oauth_rate_hit(r->csc->oauth, call->client);
    if (rc != OAUTH_OK)
        return login_failed(r, rc);
    rc = login_reply(r, &t);
    OPENSSL_cleanse(&t, sizeof(t));
    return rc;
}

int csc_m_revoke(csc_req_t *r)
{
    const char *token, *hint_s;
    oauth_hint_t hint = OAUTH_HINT_NONE;

    if (csc_req_string(r, "token", &token, 512, "Missing (or invalid type) string parameter token") < 0)
        return -1;
    if (csc_get_string(r, "token_type_hint", &hint_s, 32) < 0)
        return csc_bad(r, "Invalid string parameter token_type_hint");
    if (hint_s != NULL) {
        if (strcmp(hint_s, "access_token") == 0)
            hint = OAUTH_HINT_ACCESS;
        else if (strcmp(hint_s, "refresh_token") == 0)
            hint = OAUTH_HINT_REFRESH;
        else
            return csc_bad(r, "Invalid string parameter token_type_hint");
    }
    (void)hint; /* checked, not needed: one table holds both kinds (RFC 7009 2.1) */
    /* csc-sam checks the caller's token again and revokes (SAM_OP_REVOKE). */
    int rc = csc_sam_revoke(r->csc, csc_bearer_value(r), r->call->client, NULL, NULL, token);
    if (rc == OAUTH_ERR_INVALID || rc == OAUTH_ERR_EXPIRED)
        return csc_bad(r, "Invalid string parameter token");
    if (rc == CSC_TOKEN_BEARER_REFUSED)
        return csc_fail(r, 401, "invalid_token", "The access token is not valid");
    if (rc != OAUTH_OK)
        return csc_unavailable(r);
    r->status = 204;
    return 0;
}
