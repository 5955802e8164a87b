/*
 * oauth_token_txn.c - the token records a storage write makes (oauth_int.h): shared by the grants (oauth_grant.c,
 * csc-sam's) and auth/login with a password (oauth_token.c). A file of its own so that a binary linking only one of
 * them does not link the other.
 */
#include <string.h>

#include "oauth_int.h"

int oauth_txn_drop_token_sad(stor_txn_t *t, const stor_token_t *tok)
{
    int rc;

    if (tok->scope != STOR_SCOPE_CREDENTIAL)
        return 0;
    rc = stor_txn_sad_del(t, tok->hash);
    return rc == STOR_ERR_NOTFOUND ? 0 : rc;
}

int oauth_txn_token_new(stor_txn_t *t, const uint8_t hash[32], uint32_t kind, uint32_t scope, const char *user,
                        const char *client, const char *cred, const uint8_t grant[16], int64_t now, int64_t expires_at)
{
    stor_token_t tok;

    memset(&tok, 0, sizeof(tok));
    memcpy(tok.hash, hash, 32);
    tok.kind = kind;
    tok.scope = scope;
    oauth_copy(tok.user, sizeof(tok.user), user);
    oauth_copy(tok.client, sizeof(tok.client), client);
    oauth_copy(tok.cred, sizeof(tok.cred), cred);
    memcpy(tok.grant, grant, 16);
    tok.issued_at = now;
    tok.expires_at = expires_at;
    return stor_txn_token_put(t, &tok);
}
