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

/** STAMP (sam_op_stamp.c): a time-stamp token over the request's message imprint, made and audited here. */
int sam_op_stamp(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/** The refusal code (SAM_REFUSE_*) that stands for an oauth/ result code (OAUTH_ERR_*; the front end reads it back
 *  per subject in csc-api/csc_req.c). OAUTH_OK and unknown codes: SAM_REFUSE_INTERNAL. */
uint32_t sam_refusal_of_oauth(int code);

/** Audit a connection refused because of its peer (STOR_EV_SAM, DENIED, "action=peer.refused uid= gid= pid="). */
void sam_core_audit_peer(const sam_server_config_t *cfg, const sam_peer_t *peer);

#endif
