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
    if (rc == OAUTH_ERR_RATE) {
        csc_fail(r, 429, "temporarily_unavailable", "Too many failed logins from this address; try again later");
        r->err.retry_after = oauth_config(r->csc->oauth)->rate_window;
        return -1;
    }
    if (rc == OAUTH_ERR_BUSY)
        return csc_busy(r);
    if (rc == OAUTH_ERR_STORAGE || rc == OAUTH_ERR_INTERNAL || rc == OAUTH_ERR_UNAVAILABLE)
        return csc_fail_oauth(r, CSC_ABOUT_TOKEN, rc, NULL); /* 503 (Retry-After 1 when the database is down) */
    /* Wrong password, unknown user, lock and suspension look the same from outside. */
    return csc_fail(r, 400, "authentication_error", "An error occurred during authentication process");
}

/* auth/login with a password is csc-sam's (API_LOGIN, sam/sam_op_login.c): it checks the password, counts
 * failures, locks out, records the sign-in and issues the tokens. What the protocol cannot carry stays a wrong
 * login there, never a skipped one: a name that is not UTF-8 goes with its bytes above 0x7f as '?' (no stored name
 * has such bytes: an unknown user, recorded), a password that is not UTF-8 as "" (wrong for every user, since
 * password_min_length is at least 8: it costs the same scrypt and counts towards the lock). */
static int sam_login(csc_req_t *r, char *user, const char *pw, size_t pw_len, bool remember, oauth_tokens_t *t)
{
    const char *client = r->call->client;
    csc_sam_call_t call;
    csc_err_t err;
    int rc;

    memset(t, 0, sizeof(*t));
    if (csc_sam_begin(r->csc, &call, SAM_OP_API_LOGIN, &err) != 0)
        return OAUTH_ERR_STORAGE;
    size_t ulen = strlen(user);
    if (!sam_text_ok(user, ulen))
        for (size_t i = 0; i < ulen; i++)
            if ((unsigned char)user[i] >= 0x80)
                user[i] = '?';
    sam_put_text(&call.b, SAM_T_USER, user, ulen);
    if (client != NULL && client[0] != '\0' && strlen(client) <= SAM_CLIENT_MAX && sam_text_ok(client, strlen(client)))
        sam_put_str(&call.b, SAM_T_CLIENT, client);
    if (client != NULL && client[0] != '\0' && strlen(client) <= SAM_ADDR_MAX && sam_text_ok(client, strlen(client)))
        sam_put_str(&call.b, SAM_T_ADDR, client);
    sam_put_text(&call.b, SAM_T_PASSWORD, sam_text_ok(pw, pw_len) ? pw : "", sam_text_ok(pw, pw_len) ? pw_len : 0);
    sam_put_u32(&call.b, SAM_T_REMEMBER, remember ? 1 : 0);
    uint32_t expires = 0;
    if (csc_sam_run(r->csc, &call, CSC_ABOUT_TOKEN, NULL, &err) != 0)
        rc = csc_sam_login_rc(&call);
    else if (sam_get_text(&call.reply, SAM_T_TOKEN, t->access, sizeof(t->access)) != SAM_OK ||
             sam_get_u32(&call.reply, SAM_T_EXPIRES_IN, &expires) != SAM_OK ||
             (sam_msg_count(&call.reply, SAM_T_REFRESH_TOKEN) > 0 &&
              sam_get_text(&call.reply, SAM_T_REFRESH_TOKEN, t->refresh, sizeof(t->refresh)) != SAM_OK))
        rc = OAUTH_ERR_STORAGE;
    else
        rc = OAUTH_OK;
    t->expires_in = expires;
    csc_sam_end(&call);
    if (rc != OAUTH_OK)
        OPENSSL_cleanse(t, sizeof(*t));
    return rc;
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
     * limit, no password is checked until the window ends (and csc-sam is not asked: it spends no scrypt). */
    if (oauth_rate_check(r->csc->oauth, call->client) == OAUTH_ERR_RATE) {
        OPENSSL_cleanse(dec, sizeof(dec));
        return login_failed(r, OAUTH_ERR_RATE);
    }
    oauth_tokens_t t;
    rc = strlen(user) <= STOR_NAME_MAX ? sam_login(r, (char *)dec, pw, pw_len, remember, &t) : OAUTH_ERR_DENIED;
    OPENSSL_cleanse(dec, sizeof(dec));
    if (rc == OAUTH_ERR_DENIED)
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
