/*
 * oauth_mem.c - the entries (oauth_ent_t) of the browser sessions (kept in storage: oauth_websession.c), which also
 * pack a request for PAR (oauth_session.c). Entries are keyed by the SHA-256 of a random value the holder presents,
 * so a lookup reveals nothing about other entries' values. A request is kept encoded (oauth_req_codec.c): most
 * requests carry a few digests and short strings, not the struct's 73 KB.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "oauth_int.h"

oauth_ent_t *oauth_ent_new(const oauth_authz_request_t *req)
{
    size_t len = 0;
    oauth_ent_t *e;

    if (oauth_req_encode(req, NULL, 0, &len) != OAUTH_OK || !(e = calloc(1, sizeof(*e) + len)))
        return NULL;
    if (oauth_req_encode(req, e->req, len, &e->req_len) != OAUTH_OK) {
        free(e);
        return NULL;
    }
    oauth_copy(e->client_id, sizeof(e->client_id), req->client_id);
    return e;
}

int oauth_ent_req(const oauth_ent_t *e, oauth_authz_request_t *out)
{
    return oauth_req_decode(e->req, e->req_len, out) == OAUTH_OK ? OAUTH_OK : OAUTH_ERR_INVALID;
}

void oauth_ent_free(oauth_ent_t *e)
{
    if (e)
        OPENSSL_clear_free(e, sizeof(*e) + e->req_len);
}
