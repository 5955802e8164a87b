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

int sam_op_approve(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    const uint8_t *ref = NULL;
    size_t ref_len = 0;
    sam_page_t p;
    int rc;

    /* The session and its form (refusals audited as an approval's: STOR_EV_APPROVAL, client the page@address). */
    if (sam_page_open(cfg, req, b, STOR_EV_APPROVAL, OAUTH_APPROVAL_PAGE_CLIENT, &p, &rc) != 0)
        goto out;
    if (sam_get_bytes(req, SAM_T_APPROVAL_REF, &ref, &ref_len) != SAM_OK || ref_len != 16) {
        rc = sam_build_refusal(b, req->id, SAM_REFUSE_BAD_MESSAGE, "unreadable field", 0);
        goto out;
    }
    /* A session of the approval page, signed in (an OAuth client's consent session decides no approval). */
    if (p.v->user[0] == '\0' || strcmp(p.v->req.client_id, OAUTH_APPROVAL_PAGE_CLIENT) != 0) {
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_APPROVAL, p.v->user, NULL, p.client, SAM_REFUSE_UNAUTHORIZED,
                                     "not a session of the approval page", SAM_T_SESSION);
        goto out;
    }
    /* The decision on the session user's own pending request (oauth/ audits what it decides: the approval or
     * refusal, a wrong PIN, a lock). */
    rc = oauth_approval_decide(cfg->oauth, p.v->user, ref, p.decision != 0, p.decision ? (const char *)p.pin : NULL,
                               p.decision ? p.pin_len : 0, p.client);
    if (rc == OAUTH_ERR_INVALID) {
        /* unknown, another user's, already decided or expired: nothing was decided, so it is audited here */
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_APPROVAL, p.v->user, NULL, p.client, SAM_REFUSE_NOT_FOUND,
                                     "no such pending request of the user", SAM_T_APPROVAL_REF);
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
    sam_page_close(&p);
    return rc;
}
