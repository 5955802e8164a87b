/* sam_core.h - csc-sam's op handlers, called by sam_server.c for each decoded request. Private to sam/. */
#ifndef SAM_CORE_H
#define SAM_CORE_H

#include <stdint.h>

#include "sam_server.h"

/**
 * Answer the request req (a request op, decoded against its table) into b, which this initialises: the op's reply,
 * or its REFUSED. Ops not served yet are refused with SAM_REFUSE_NOT_OFFERED.
 * @return SAM_OK, or the builder's error (b is then to be freed and the connection closed)
 */
int sam_core_handle(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/** The refusal code (SAM_REFUSE_*) that stands for an oauth/ result code (OAUTH_ERR_*; the front end reads it back
 *  per subject in csc-api/csc_req.c). OAUTH_OK and unknown codes: SAM_REFUSE_INTERNAL. */
uint32_t sam_refusal_of_oauth(int code);

/**
 * Refuse req (code, reason, about: a tag or 0) into b, and audit the refusal first (event, STOR_RES_DENIED, user,
 * cred and client as known: NULL is "", detail = reason): the SAM's own refusals (a token or session it could not
 * verify) that no oauth/ call audited already.
 * @return sam_build_refusal()'s result
 */
int sam_core_refuse_audited(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, uint32_t event,
                            const char *user, const char *cred, const char *client, uint32_t code, const char *reason,
                            unsigned about);

/* ---- op handlers (one file each: sam_op_<name>.c), rows of sam_core.c's table ---- */

/** CHALLENGE (sam_op_challenge.c): credentials/getChallenge and v1 sendOTP: make and deliver a one-time code. */
int sam_op_challenge(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/** CONSENT (sam_op_consent.c): the OAuth consent page's decision in a stored browser session -> authorization code. */
int sam_op_consent(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/** Audit a connection refused because of its peer (STOR_EV_SAM, DENIED, "action=peer.refused uid= gid= pid="). */
void sam_core_audit_peer(const sam_server_config_t *cfg, const sam_peer_t *peer);

#endif
