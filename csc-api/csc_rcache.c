/*
 * csc_rcache.c - signHash's read cache in the front end (read_cache_ms): the token's principal and the credential's
 * row, read together by csc_route.c, kept for a short time under the token's SHA-256 and the credential id.
 *
 * Why: on PostgreSQL each signHash read the token, its user and the credential in csc-server, and csc-sam read the
 * same rows again for its own decision: a round trip and three statements of the database's CPU per request that
 * decide nothing, since csc-sam alone decides (sam_op_sign.c reads every row again from storage, in its own
 * transaction, before the SAD is spent). The front end's checks only choose the error a client sees for a request
 * that would fail, before csc-sam is asked.
 *
 * So an entry answers only requests that then go to csc-sam. When csc-sam refuses one that was judged on an entry,
 * the entry is dropped and csc_sign.c runs the front end's checks again on rows read now: their error, if any, is the
 * answer (the one the same request gets without the cache); else csc-sam's. A row changed since it was read (a token
 * revoked, a credential disabled) thus costs at most a refusal by csc-sam and its audit record, never a signature.
 *
 * The table: CSC_RCACHE_SLOTS entries chosen by the hash's first bytes (a second token landing on a slot replaces
 * the first), each under its own mutex, allocated whole when the service starts and wiped when an entry is replaced,
 * dropped or the cache freed (the credential row holds its PIN's verifier). An entry lives read_cache_ms, and never
 * past its token's expiry. The hash is compared in constant time.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "csc_int.h"

#define CSC_RCACHE_SLOTS 64

typedef struct slot {
    pthread_mutex_t mu;
    int used;
    int64_t until_ms; /* CLOCK_MONOTONIC */
    uint8_t hash[32];
    char cred_id[STOR_NAME_MAX + 1];
    oauth_principal_t principal;
    stor_cred_t cred;
} slot_t;

struct csc_rcache {
    unsigned ttl_ms;
    slot_t slot[CSC_RCACHE_SLOTS];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void slot_wipe(slot_t *s)
{
    OPENSSL_cleanse(&s->used, sizeof(*s) - offsetof(slot_t, used));
}

int csc_rcache_new(unsigned ttl_ms, csc_rcache_t **out)
{
    *out = NULL;
    if (ttl_ms == 0)
        return 0;
    csc_rcache_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        return -1;
    rc->ttl_ms = ttl_ms;
    for (size_t i = 0; i < CSC_RCACHE_SLOTS; i++)
        if (pthread_mutex_init(&rc->slot[i].mu, NULL) != 0) {
            while (i-- > 0)
                pthread_mutex_destroy(&rc->slot[i].mu);
            free(rc);
            return -1;
        }
    *out = rc;
    return 0;
}

void csc_rcache_free(csc_rcache_t *rc)
{
    if (rc == NULL)
        return;
    for (size_t i = 0; i < CSC_RCACHE_SLOTS; i++) {
        slot_wipe(&rc->slot[i]);
        pthread_mutex_destroy(&rc->slot[i].mu);
    }
    free(rc);
}

int csc_rcache_key(const char *token, size_t len, uint8_t hash[32])
{
    return EVP_Digest(token, len, hash, NULL, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

static slot_t *slot_of(csc_rcache_t *rc, const uint8_t hash[32])
{
    return &rc->slot[(hash[0] | (unsigned)hash[1] << 8) % CSC_RCACHE_SLOTS];
}

static int same(const slot_t *s, const uint8_t hash[32], const char *cred_id)
{
    return s->used && CRYPTO_memcmp(s->hash, hash, 32) == 0 && strcmp(s->cred_id, cred_id) == 0;
}

int csc_rcache_get(csc_rcache_t *rc, const uint8_t hash[32], const char *cred_id, oauth_principal_t *p,
                   stor_cred_t *cred)
{
    if (rc == NULL)
        return 0;
    slot_t *s = slot_of(rc, hash);
    int found = 0;
    pthread_mutex_lock(&s->mu);
    if (same(s, hash, cred_id)) {
        if (mono_ms() < s->until_ms && s->principal.expires_at > (int64_t)time(NULL)) {
            memcpy(p, &s->principal, sizeof(*p));
            memcpy(cred, &s->cred, sizeof(*cred));
            found = 1;
        } else {
            slot_wipe(s);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

void csc_rcache_put(csc_rcache_t *rc, const uint8_t hash[32], const char *cred_id, const oauth_principal_t *p,
                    const stor_cred_t *cred)
{
    if (rc == NULL || strlen(cred_id) > STOR_NAME_MAX)
        return;
    slot_t *s = slot_of(rc, hash);
    pthread_mutex_lock(&s->mu);
    slot_wipe(s);
    s->used = 1;
    s->until_ms = mono_ms() + rc->ttl_ms;
    memcpy(s->hash, hash, 32);
    memcpy(s->cred_id, cred_id, strlen(cred_id) + 1);
    memcpy(&s->principal, p, sizeof(*p));
    memcpy(&s->cred, cred, sizeof(*cred));
    pthread_mutex_unlock(&s->mu);
}

void csc_rcache_drop(csc_rcache_t *rc, const uint8_t hash[32])
{
    if (rc == NULL)
        return;
    slot_t *s = slot_of(rc, hash);
    pthread_mutex_lock(&s->mu);
    if (s->used && CRYPTO_memcmp(s->hash, hash, 32) == 0)
        slot_wipe(s);
    pthread_mutex_unlock(&s->mu);
}
