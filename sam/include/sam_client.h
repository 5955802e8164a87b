/*
 * sam_client.h - the front end's side of the SAM protocol (csc-server): a small pool of connections to csc-sam's
 * socket, one call = one request and its reply within a deadline, typed helpers per op.
 *
 * THE POOL
 *   A fixed number of slots, each one connection or none, shared by every thread of the process under one mutex
 *   (held only to take or give back a slot, never during I/O). Not one connection per thread: the front end has
 *   several pools of threads (workers, auth workers, async workers, the audit head signer) whose sizes add up past
 *   what the SAM serves at once (sam_max_connections), most of them idle at any moment. A call takes a free slot
 *   (waiting for one until its deadline), connects it if it has no connection (a non-blocking connect: a SAM that
 *   is not there answers at once), sends, receives, and gives the slot back. Any error closes that connection; the
 *   next call on the slot connects again. A connection that was idle may have been closed by a SAM that restarted:
 *   when sending on it fails, the call connects once more and sends again (nothing had reached a SAM).
 *
 * ERRORS (sam_wire.h's SAM_ERR_*)
 *   SAM_ERR_UNAVAILABLE: no SAM listens (no socket, connection refused, its backlog full), it refused the
 *   connection (peer not allowed, connection limit), or it closed the connection before it answered. Returned
 *   without waiting, so the front end can answer 503 at once. SAM_ERR_TIMEOUT: no free slot or no answer before the
 *   deadline. SAM_ERR_REFUSED (typed helpers): the SAM answered REFUSED. Other codes: a reply that does not decode
 *   or answers another request (the connection is closed).
 *
 * THREAD-SAFETY: every function but sam_client_free() may run on any thread at once.
 */
#ifndef SAM_CLIENT_H
#define SAM_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "sam_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sam_client sam_client_t;

#define SAM_CLIENT_CONNECTIONS_MAX 1024u

/**
 * A pool for the SAM listening at path. Connects nothing yet.
 * @param[in] path the socket (shorter than sun_path: 107 bytes)
 * @param[in] connections slots (1..SAM_CLIENT_CONNECTIONS_MAX)
 * @param[in] timeout_ms deadline of one call, from its start (>= 1)
 * @return SAM_OK, SAM_ERR_INVAL, SAM_ERR_NOMEM
 */
SAM_MUST_CHECK int sam_client_new(const char *path, unsigned connections, unsigned timeout_ms, sam_client_t **out);
/**
 * Connect every slot that is not connected yet, so that the SAM starts the thread of each now, not when calls in
 * flight first need that many (a process that serves a while should not start threads late). A slot that cannot
 * connect is left to connect on its call, as before.
 * @return the number of slots connected now (0..connections)
 */
unsigned sam_client_fill(sam_client_t *c);
/** Close every connection and free. No call may be running. NULL is fine. */
void sam_client_free(sam_client_t *c);

/** A request id for a message to pass to sam_client_call() (never 0: id 0 is the SAM's answer to no request). */
uint32_t sam_client_next_id(sam_client_t *c);

/**
 * Send one finished request (sam_build_finish()) and receive its answer: reply is rb's message decoded, of the
 * same request id, and either the request's op | SAM_OP_REPLY or SAM_OP_REFUSED (the caller looks at reply->op).
 * @return SAM_OK or an error above; on error reply is zeroed
 */
SAM_MUST_CHECK int sam_client_call(sam_client_t *c, const uint8_t *msg, size_t len, sam_rbuf_t *rb,
                                   sam_msg_t *reply);

/** HELLO: the SAM's health. */
typedef struct sam_hello {
    uint32_t version;                       /**< the SAM's protocol version */
    char identity[SAM_IDENTITY_MAX + 1];    /**< e.g. "csc-sam pid=123 token=csc-demo" */
    int hsm_ready;                          /**< 1: the token is logged in */
    int storage_ready;                      /**< 1: the database is open and readable */
    int has_ticket_key;                     /**< 1: ticket_key is the SAM's (its front end's socket gives it) */
    int has_hsm_waits;                      /**< 1: hsm_waits was in the reply */
    uint64_t hsm_waits;                     /**< hsm_session_waits of csc-sam's token (SAM_T_HSM_WAITS) */
    int has_heap;                           /**< 1: heap_in_use and heap_held were in the reply */
    uint64_t heap_in_use, heap_held;        /**< csc-sam's malloc figures (SAM_T_HEAP_IN_USE, SAM_T_HEAP_HELD) */
    uint8_t ticket_key[SAM_TICKET_KEY_LEN]; /**< the sign-in pages' shared ticket key: a secret (never log it; wipe
                                                 the struct after use, OPENSSL_cleanse) */
} sam_hello_t;

/** @return SAM_OK (out filled), SAM_ERR_REFUSED, or a call's error (out zeroed) */
SAM_MUST_CHECK int sam_client_hello(sam_client_t *c, sam_hello_t *out);

#ifdef __cplusplus
}
#endif
#endif
