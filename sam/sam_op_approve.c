/*
 * sam_op_approve.c - APPROVE (sam_core.h): the /approve page's decision on a pending authorization. Like CONSENT, the
 * front end passes the browser session's id and the form's anti-CSRF token, the request's reference as the page
 * showed it, the decision, the PIN the person typed and their address; the SAM reads the session itself (in storage:
 * who signed in, on which page), checks the token against it, and lets oauth/ decide the user's own pending request
 * (oauth_approval_decide: the PIN checked and counted, the decision recorded and audited in one storage write). The
 * message carries no user: the front end cannot decide another user's request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "sam_core.h"

/* A refusal the SAM decides itself (a session, form or request it cannot use), audited as an approval's refusal. */
static int refuse(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, const char *user,
                  const char *client, uint32_t code, const char *reason, unsigned about)
{
    return sam_core_refuse_audited(cfg, req, b, STOR_EV_APPROVAL, user, NULL, client, code, reason, about);
}

int sam_op_approve(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char sid[SAM_TOKEN_MAX + 1], csrf[SAM_TOKEN_MAX + 1], addr[SAM_ADDR_MAX + 1] = "";
    char client[sizeof(OAUTH_APPROVAL_PAGE_CLIENT "@") + SAM_ADDR_MAX]; /* the audit record keeps what fits */
    const uint8_t *pin = NULL, *ref = NULL;
    size_t pin_len = 0, ref_len = 0;
    uint32_t decision = 0;
    oauth_session_view_t *v = NULL;
    int rc;

    if (cfg->oauth == NULL)
        return sam_build_refusal(b, req->id, SAM_REFUSE_NOT_OFFERED, "no OAuth context", 0);
    if (sam_get_text(req, SAM_T_SESSION, sid, sizeof(sid)) != SAM_OK ||
        sam_get_text(req, SAM_T_CSRF, csrf, sizeof(csrf)) != SAM_OK ||
        sam_get_u32(req, SAM_T_DECISION, &decision) != SAM_OK ||
        sam_get_bytes(req, SAM_T_APPROVAL_REF, &ref, &ref_len) != SAM_OK || ref_len != 16 ||
        (sam_msg_count(req, SAM_T_ADDR) > 0 && sam_get_text(req, SAM_T_ADDR, addr, sizeof(addr)) != SAM_OK)) {
        rc = sam_build_refusal(b, req->id, SAM_REFUSE_BAD_MESSAGE, "unreadable field", 0);
        goto out;
    }
    if (decision != 0 && sam_msg_count(req, SAM_T_PIN) > 0)
        (void)sam_get_bytes(req, SAM_T_PIN, &pin, &pin_len); /* points into the request, which b's owner wipes */
    /* The audit records name the page and the person's address, as the page did. */
    snprintf(client, sizeof(client), OAUTH_APPROVAL_PAGE_CLIENT "@%s", addr[0] ? addr : "-");
    if ((v = calloc(1, sizeof(*v))) == NULL) {
        rc = sam_build_refusal(b, req->id, SAM_REFUSE_INTERNAL, "out of memory", 0);
        goto out;
    }
    /* Who decides: the session as stored (signed in with password and TOTP; ends with an operator's reset). */
    rc = oauth_session_get(cfg->oauth, sid, v);
    if (rc != OAUTH_OK) {
        uint32_t r = sam_refusal_of_oauth(rc);
        rc = r == SAM_REFUSE_UNAVAILABLE ? sam_build_refusal(b, req->id, r, "storage unavailable", SAM_T_SESSION)
                                         : refuse(cfg, req, b, NULL, client, r, "no such browser session", SAM_T_SESSION);
        goto out;
    }
    /* A session of the approval page, signed in (an OAuth client's consent session decides no approval). */
    if (v->user[0] == '\0' || strcmp(v->req.client_id, OAUTH_APPROVAL_PAGE_CLIENT) != 0) {
        rc = refuse(cfg, req, b, v->user, client, SAM_REFUSE_UNAUTHORIZED, "not a session of the approval page",
                    SAM_T_SESSION);
        goto out;
    }
    /* The form came from the page of this session (the front end compared it too; the SAM does not take its word). */
    if (strlen(csrf) != strlen(v->csrf) || CRYPTO_memcmp(csrf, v->csrf, strlen(csrf)) != 0) {
        rc = refuse(cfg, req, b, v->user, client, SAM_REFUSE_UNAUTHORIZED, "the form's CSRF token is not the session's",
                    SAM_T_SESSION);
        goto out;
    }
    /* The decision on the session user's own pending request (oauth/ audits what it decides: the approval or
     * refusal, a wrong PIN, a lock). */
    rc = oauth_approval_decide(cfg->oauth, v->user, ref, decision != 0, (const char *)pin, pin_len, client);
    if (rc == OAUTH_ERR_INVALID) {
        /* unknown, another user's, already decided or expired: nothing was decided, so it is audited here */
        rc = refuse(cfg, req, b, v->user, client, SAM_REFUSE_NOT_FOUND, "no such pending request of the user",
                    SAM_T_APPROVAL_REF);
        goto out;
    }
    if (rc != OAUTH_OK) {
        /* what the refusal is about: the PIN (wrong, locked, busy), else the credential */
        unsigned about = rc == OAUTH_ERR_DENIED || rc == OAUTH_ERR_LOCKED || rc == OAUTH_ERR_BUSY ? SAM_T_PIN : SAM_T_CRED;
        rc = sam_build_refusal(b, req->id, sam_refusal_of_oauth(rc), oauth_strerror(rc), about);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_APPROVE | SAM_OP_REPLY, req->id);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_cleanse(sid, sizeof(sid));
    OPENSSL_cleanse(csrf, sizeof(csrf));
    if (v != NULL)
        OPENSSL_clear_free(v, sizeof(*v));
    return rc;
}
