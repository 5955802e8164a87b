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

/* The refusal of a session the SAM cannot use, audited (STOR_EV_AUTHORIZE, as a consent's other outcomes). */
static int refuse_session(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, const char *user,
                          const char *cred, const char *addr, uint32_t code, const char *reason)
{
    return sam_core_refuse_audited(cfg, req, b, STOR_EV_AUTHORIZE, user, cred, addr, code, reason, SAM_T_SESSION);
}

int sam_op_consent(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char sid[SAM_TOKEN_MAX + 1], csrf[SAM_TOKEN_MAX + 1], addr[SAM_ADDR_MAX + 1] = "";
    char code[OAUTH_TOKEN_BUFLEN] = "";
    const uint8_t *pin = NULL;
    size_t pin_len = 0;
    uint32_t decision = 0;
    oauth_session_view_t *v = NULL;
    int rc;

    if (cfg->oauth == NULL)
        return sam_build_refusal(b, req->id, SAM_REFUSE_NOT_OFFERED, "no OAuth context", 0);
    if (sam_get_text(req, SAM_T_SESSION, sid, sizeof(sid)) != SAM_OK ||
        sam_get_text(req, SAM_T_CSRF, csrf, sizeof(csrf)) != SAM_OK ||
        sam_get_u32(req, SAM_T_DECISION, &decision) != SAM_OK ||
        (sam_msg_count(req, SAM_T_ADDR) > 0 && sam_get_text(req, SAM_T_ADDR, addr, sizeof(addr)) != SAM_OK)) {
        rc = sam_build_refusal(b, req->id, SAM_REFUSE_BAD_MESSAGE, "unreadable field", 0);
        goto out;
    }
    if (sam_msg_count(req, SAM_T_PIN) > 0)
        (void)sam_get_bytes(req, SAM_T_PIN, &pin, &pin_len); /* points into the request, which b's owner wipes */
    if ((v = calloc(1, sizeof(*v))) == NULL) {
        rc = sam_build_refusal(b, req->id, SAM_REFUSE_INTERNAL, "out of memory", 0);
        goto out;
    }
    /* Who decides: the session as stored (signed in with password and TOTP; ends with an operator's reset). */
    rc = oauth_session_get(cfg->oauth, sid, v);
    if (rc != OAUTH_OK) {
        uint32_t r = sam_refusal_of_oauth(rc);
        rc = r == SAM_REFUSE_UNAVAILABLE ? sam_build_refusal(b, req->id, r, "storage unavailable", SAM_T_SESSION)
                                         : refuse_session(cfg, req, b, NULL, NULL, addr, r, "no such browser session");
        goto out;
    }
    /* The form came from the page of this session (the front end compared it too; the SAM does not take its word). */
    if (strlen(csrf) != strlen(v->csrf) || CRYPTO_memcmp(csrf, v->csrf, strlen(csrf)) != 0) {
        rc = refuse_session(cfg, req, b, v->user, v->req.cred, addr, SAM_REFUSE_UNAUTHORIZED,
                            "the form's CSRF token is not the session's");
        goto out;
    }
    /* The decision (audited by oauth/: PIN failures count on the credential's lock; the code binds the session's
     * request: client, redirect URI, PKCE challenge, user, credential, numSignatures, digests). */
    rc = oauth_session_decide(cfg->oauth, sid, decision != 0, (const char *)pin, pin_len, addr[0] ? addr : NULL, code);
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
    OPENSSL_cleanse(sid, sizeof(sid));
    OPENSSL_cleanse(csrf, sizeof(csrf));
    OPENSSL_cleanse(code, sizeof(code));
    if (v != NULL)
        OPENSSL_clear_free(v, sizeof(*v));
    return rc;
}
