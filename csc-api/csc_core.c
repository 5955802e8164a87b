/* csc_core.c - what every part of the service shares: a failed request's error (csc_fail and its shorthands), the
 * reply's error JSON and its release, and loading the credential a request names. Below csc_route.c: nothing here
 * calls the dispatcher or web/. */
#include <stdlib.h>
#include <string.h>
#include "csc_int.h"

int csc_fail(csc_req_t *r, int status, const char *error, const char *description)
{
    r->err.status = status;
    r->err.error = error;
    r->err.description = description;
    r->err.retry_after = 0;
    return -1;
}

int csc_busy(csc_req_t *r)
{
    csc_fail(r, 503, "temporarily_unavailable", "Too many sign-ins are being checked; try again in a moment");
    r->err.retry_after = CSC_BUSY_RETRY_AFTER;
    return -1;
}

int csc_bad(csc_req_t *r, const char *description)
{
    return csc_fail(r, 400, "invalid_request", description);
}

int csc_unavailable(csc_req_t *r)
{
    return csc_fail(r, 503, "temporarily_unavailable", "The service is temporarily unavailable");
}

int csc_unavailable_stor(csc_req_t *r, int stor_rc)
{
    static const csc_err_row_t down = {0, CSC_STORAGE_DOWN_ROW};
    return stor_rc == STOR_ERR_UNAVAILABLE ? csc_err_row(&r->err, &down) : csc_unavailable(r);
}

void csc_reply_error(csc_reply_t *reply, int status, const char *error, const char *description)
{
    yajl_gen g = csc_gen_new();
    const unsigned char *buf;
    size_t len;

    yajl_gen_map_open(g);
    csc_gen_kv(g, "error", error);
    csc_gen_kv(g, "error_description", description);
    yajl_gen_map_close(g);
    yajl_gen_get_buf(g, &buf, &len);
    reply->status = status;
    reply->error = error;
    reply->body = malloc(len);
    if (reply->body == NULL)
        abort();
    memcpy(reply->body, buf, len);
    reply->body_len = len;
    reply->www_authenticate = NULL;
    if (status == 401)
        reply->www_authenticate = strcmp(error, "invalid_token") == 0 || strcmp(error, "expired_token") == 0
                                      ? "Bearer error=\"invalid_token\""
                                      : "Bearer";
    yajl_gen_free(g);
}

void csc_reply_free(csc_reply_t *reply)
{
    if (reply == NULL)
        return;
    /* bodies carry tokens and SADs, redirects carry codes, cookies carry sessions */
    csc_wipe_free(reply->body);
    csc_wipe_free(reply->location);
    csc_wipe_free(reply->set_cookie);
    free(reply->set_cookie2);
    reply->body = reply->location = reply->set_cookie = reply->set_cookie2 = NULL;
}

int csc_load_cred(csc_req_t *r, const char *id, stor_cred_t *out)
{
    /* A credential-scope token serves its own credential only; it reads like any unknown one. */
    if (r->principal.scope == STOR_SCOPE_CREDENTIAL && strcmp(id, r->principal.cred) != 0)
        return csc_bad(r, "Invalid parameter credentialID");
    int rc;
    if (r->cred_read != NULL && strcmp(id, r->cred_read_id) == 0) { /* read with the token (csc_route.c) */
        rc = r->cred_read_rc;
        memcpy(out, r->cred_read, sizeof(*out));
    } else {
        rc = stor_cred_get(r->csc->stor, id, out);
    }
    /* The owner's, or delegated to the user by the owner (J1); anything else reads like an unknown one. A credential
     * waiting for its certificate (STOR_CRED_PENDING) is nobody's yet. */
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL ||
        (rc == STOR_OK && ((strcmp(out->owner, r->principal.user) != 0 && stor_cred_delegate(out, r->principal.user) < 0) ||
                           out->status == STOR_CRED_PENDING)))
        return csc_bad(r, "Invalid parameter credentialID");
    if (rc != STOR_OK)
        return csc_unavailable_stor(r, rc);
    return 0;
}
