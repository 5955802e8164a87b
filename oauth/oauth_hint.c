/*
 * oauth_hint.c - the user of a bearer token seen lately, by the token's hash: which user row a token check reads
 * ahead with the token when its caller names none (csc-server's signHash, csc_route.c).
 *
 * Only a hint. The check always reads the token and then the token's own user; a row read ahead is just a row the
 * next get of it takes without a round trip of its own (PostgreSQL; LMDB has nothing to save). A missing, stale or
 * wrong entry costs the read of the right row, never a decision. Direct-mapped (the hash's first bytes choose the
 * slot), one lock for all: a lookup is a 32-byte comparison and a copy of a name. The hash is the token's key in
 * storage (oauth_token_hash), never the token; entries are wiped at free.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "oauth_int.h"

#define HINT_SLOTS 256 /* tokens in use at once that each keep their hint */

struct oauth_hints {
    pthread_mutex_t mu;
    struct {
        uint8_t hash[32];
        char user[STOR_NAME_MAX + 1]; /* "" : empty slot */
    } slot[HINT_SLOTS];
};

int oauth_hints_new(struct oauth_hints **out)
{
    struct oauth_hints *h = calloc(1, sizeof(*h));

    *out = NULL;
    if (h == NULL || pthread_mutex_init(&h->mu, NULL) != 0) {
        free(h);
        return OAUTH_ERR_INTERNAL;
    }
    *out = h;
    return OAUTH_OK;
}

void oauth_hints_free(struct oauth_hints *h)
{
    if (h == NULL)
        return;
    pthread_mutex_destroy(&h->mu);
    OPENSSL_clear_free(h, sizeof(*h));
}

static unsigned slot_of(const uint8_t hash[32])
{
    return ((unsigned)hash[0] | (unsigned)hash[1] << 8) % HINT_SLOTS;
}

int oauth_hint_get(struct oauth_hints *h, const uint8_t hash[32], char user[STOR_NAME_MAX + 1])
{
    unsigned i = slot_of(hash);
    int found;

    user[0] = '\0';
    if (h == NULL)
        return 0;
    pthread_mutex_lock(&h->mu);
    found = h->slot[i].user[0] != '\0' && CRYPTO_memcmp(h->slot[i].hash, hash, 32) == 0;
    if (found)
        memcpy(user, h->slot[i].user, sizeof(h->slot[i].user));
    pthread_mutex_unlock(&h->mu);
    return found;
}

void oauth_hint_put(struct oauth_hints *h, const uint8_t hash[32], const char *user)
{
    unsigned i = slot_of(hash);
    size_t n = user != NULL ? strnlen(user, STOR_NAME_MAX + 1) : 0;

    if (h == NULL || n == 0 || n > STOR_NAME_MAX)
        return;
    pthread_mutex_lock(&h->mu);
    memcpy(h->slot[i].hash, hash, 32);
    memset(h->slot[i].user, 0, sizeof(h->slot[i].user));
    memcpy(h->slot[i].user, user, n);
    pthread_mutex_unlock(&h->mu);
}
