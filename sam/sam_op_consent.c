/*
 * sam_op_consent.c - CONSENT (sam_core.h): the OAuth consent page's decision. The front end passes the browser
 * session's id and the form's anti-CSRF token, the decision, the PIN the person typed and their address; the SAM
 * reads the session itself (in storage: who signed in, and the authorization request with its credential and
 * digests), checks the token against it, verifies the PIN, binds the digests and issues the authorization code
 * whose token acts as the SAD (oauth_session_decide: one storage transaction with its audit record). The message
 * carries no user, credential or digest: the front end cannot choose them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "sam_core.h"

int sam_op_consent(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char code[OAUTH_TOKEN_BUFLEN] = "";
    sam_page_t p;
    int rc;

    /* The session and its form (refusals audited as a consent's other outcomes: STOR_EV_AUTHORIZE). */
    if (sam_page_open(cfg, req, b, STOR_EV_AUTHORIZE, NULL, &p, &rc) != 0)
        goto out;
    /* The decision (audited by oauth/: PIN failures count on the credential's lock; the code binds the session's
     * request: client, redirect URI, PKCE challenge, user, credential, numSignatures, digests). */
    rc = oauth_session_decide(cfg->oauth, p.sid, p.decision != 0, (const char *)p.pin, p.pin_len,
                              p.addr[0] ? p.addr : NULL, code);
    if (rc != OAUTH_OK) {
        uint32_t r = sam_refusal_of_oauth(rc);
        /* what the refusal is about: the PIN (wrong, locked, busy), the request (numSignatures), else the credential */
        unsigned about = rc == OAUTH_ERR_DENIED || rc == OAUTH_ERR_LOCKED || rc == OAUTH_ERR_BUSY ? SAM_T_PIN
                         : rc == OAUTH_ERR_INVAL                                                  ? SAM_T_NUM_SIGNATURES
                                                                                                  : SAM_T_CRED;
        rc = sam_build_refusal(b, req->id, r, oauth_strerror(rc), about);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_CONSENT | SAM_OP_REPLY, req->id);
    if (code[0] != '\0')
        sam_put_str(b, SAM_T_CODE, code);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_cleanse(code, sizeof(code));
    sam_page_close(&p);
    return rc;
}
