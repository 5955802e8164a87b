/*
 * sam_page.c - what the decisions of the service's pages share (CONSENT, APPROVE; sam_core.h): the message's session,
 * form token, decision, PIN and address, and the browser session as csc-sam reads it from storage, the form's CSRF
 * token compared with the session's own. The front end compared them too; the SAM does not take its word.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "sam_core.h"

int sam_page_open(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, uint32_t event,
                  const char *prefix, sam_page_t *p, int *rc)
{
    char csrf[SAM_TOKEN_MAX + 1];
    int orc;

    memset(p, 0, sizeof(*p));
    if (cfg->oauth == NULL) {
        *rc = sam_build_refusal(b, req->id, SAM_REFUSE_NOT_OFFERED, "no OAuth context", 0);
        return -1;
    }
    if (sam_get_text(req, SAM_T_SESSION, p->sid, sizeof(p->sid)) != SAM_OK ||
        sam_get_text(req, SAM_T_CSRF, csrf, sizeof(csrf)) != SAM_OK ||
        (sam_msg_count(req, SAM_T_DECISION) > 0 && sam_get_u32(req, SAM_T_DECISION, &p->decision) != SAM_OK) ||
        (sam_msg_count(req, SAM_T_ADDR) > 0 && sam_get_text(req, SAM_T_ADDR, p->addr, sizeof(p->addr)) != SAM_OK)) {
        OPENSSL_cleanse(csrf, sizeof(csrf));
        *rc = sam_build_refusal(b, req->id, SAM_REFUSE_BAD_MESSAGE, "unreadable field", 0);
        return -1;
    }
    if (sam_msg_count(req, SAM_T_PIN) > 0)
        (void)sam_get_bytes(req, SAM_T_PIN, &p->pin, &p->pin_len); /* points into the request, which b's owner wipes */
    if (prefix != NULL)
        snprintf(p->client, sizeof(p->client), "%s@%s", prefix, p->addr[0] ? p->addr : "-");
    else
        snprintf(p->client, sizeof(p->client), "%s", p->addr);
    if ((p->v = calloc(1, sizeof(*p->v))) == NULL) {
        OPENSSL_cleanse(csrf, sizeof(csrf));
        *rc = sam_build_refusal(b, req->id, SAM_REFUSE_INTERNAL, "out of memory", 0);
        return -1;
    }
    /* Who decides: the session as stored (signed in with password and TOTP; ends with an operator's reset). */
    if ((orc = oauth_session_get(cfg->oauth, p->sid, p->v)) != OAUTH_OK) {
        uint32_t r = sam_refusal_of_oauth(orc);
        *rc = r == SAM_REFUSE_UNAVAILABLE || r == SAM_REFUSE_DB_DOWN
                  ? sam_build_refusal(b, req->id, r, "storage unavailable", SAM_T_SESSION)
                  : sam_core_refuse_audited(cfg, req, b, event, NULL, NULL, p->client, r, "no such browser session",
                                            SAM_T_SESSION);
    } else if (strlen(csrf) != strlen(p->v->csrf) || CRYPTO_memcmp(csrf, p->v->csrf, strlen(csrf)) != 0) {
        /* The form did not come from the page of this session. */
        *rc = sam_core_refuse_audited(cfg, req, b, event, p->v->user, p->v->req.cred, p->client,
                                      SAM_REFUSE_UNAUTHORIZED, "the form's CSRF token is not the session's",
                                      SAM_T_SESSION);
        orc = OAUTH_ERR_DENIED;
    }
    OPENSSL_cleanse(csrf, sizeof(csrf));
    return orc == OAUTH_OK ? 0 : -1;
}

int sam_page_open_account(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, uint32_t event,
                          sam_page_t *p, int *rc)
{
    if (sam_page_open(cfg, req, b, event, OAUTH_APPROVAL_PAGE_CLIENT, p, rc) != 0)
        return -1;
    if (p->v->user[0] != '\0' && strcmp(p->v->req.client_id, OAUTH_APPROVAL_PAGE_CLIENT) == 0)
        return 0;
    *rc = sam_core_refuse_audited(cfg, req, b, event, p->v->user, NULL, p->client, SAM_REFUSE_UNAUTHORIZED,
                                  "not a session of the account page", SAM_T_SESSION);
    return -1;
}

void sam_page_close(sam_page_t *p)
{
    if (p->v != NULL)
        OPENSSL_clear_free(p->v, sizeof(*p->v));
    OPENSSL_cleanse(p, sizeof(*p));
}
