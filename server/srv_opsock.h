/* srv_opsock.h - csc-admin's side of csc-sam's operators' socket (srv_opsock.c). */
#ifndef SRV_OPSOCK_H
#define SRV_OPSOCK_H

#include "sam_client.h"
#include "srv.h"

/**
 * Finish the request b and send it to csc-sam's operators' socket (cfg->sam_admin_socket); with sam_mode = spawn and
 * no csc-sam answering, start a short-lived one first (csc-sam -o). reply: the op's reply or REFUSED (the caller
 * looks at reply->op), a view into rb. @return 0, or -1 (said why on stderr: "csc-sam is not reachable at PATH: start
 * the service", ...)
 */
int srv_opsock_call(const srv_config_t *cfg, sam_builder_t *b, sam_rbuf_t *rb, sam_msg_t *reply);
/** The ORIGIN claim (adm_origin_claim) srv_opsock_call adds to every request from now on (NULL: none). */
void srv_opsock_origin(const char *claim);
/** Put the ORIGIN claim into b now (once): for an op with a tag above ORIGIN (OPERATOR_NEW's ROLES, RESTORE's
 *  RESTORE_REF), before it;
 *  srv_opsock_call puts it last otherwise. */
void srv_opsock_put_origin(sam_builder_t *b);
/** Close the connection and stop the csc-sam started here, if any. */
void srv_opsock_end(void);

#endif
