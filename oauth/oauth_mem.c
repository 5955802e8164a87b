/*
 * oauth_mem.c - the in-memory table of pushed authorization requests, and the
 * entries (oauth_ent_t) it shares with the browser sessions (which are kept in
 * storage: oauth_websession.c).
 *
 * Both are short-lived and worthless after a restart (the user starts over),
 * so they need no durability and stay out of the storage writer's queue. Each
 * table is bounded; entries are keyed by the SHA-256 of a random value the
 * holder presents, so a lookup reveals nothing about other entries' values.
 * A request is kept encoded (oauth_req_codec.c): most requests carry a few
 * digests and short strings, not the struct's 73 KB.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "oauth_int.h"

#define BUCKETS 1024 /* keys are uniform hashes: their first bytes spread entries evenly */

struct oauth_mem {
    pthread_mutex_t mu;
    oauth_ent_t *bucket[BUCKETS];
    size_t n, cap;
};

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

int oauth_mem_new(size_t cap, oauth_mem_t **out)
{
    oauth_mem_t *m = calloc(1, sizeof(*m));

    *out = NULL;
    if (!m)
        return OAUTH_ERR_INTERNAL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return OAUTH_ERR_INTERNAL;
    }
    m->cap = cap;
    *out = m;
    return OAUTH_OK;
}

void oauth_mem_free(oauth_mem_t *m)
{
    size_t i;

    if (!m)
        return;
    for (i = 0; i < BUCKETS; i++) {
        while (m->bucket[i]) {
            oauth_ent_t *e = m->bucket[i];
            m->bucket[i] = e->next;
            oauth_ent_free(e);
        }
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static size_t slot(const uint8_t key[32])
{
    return ((size_t)key[0] << 8 | key[1]) % BUCKETS;
}

/* Called with mu held. */
static void purge_expired(oauth_mem_t *m, int64_t now)
{
    size_t i;

    for (i = 0; i < BUCKETS; i++) {
        oauth_ent_t **pp = &m->bucket[i];
        while (*pp) {
            oauth_ent_t *e = *pp;
            if (now >= e->expires) {
                *pp = e->next;
                oauth_ent_free(e);
                m->n--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static void link_ent(oauth_mem_t *m, oauth_ent_t *e)
{
    size_t s = slot(e->key);

    e->next = m->bucket[s];
    m->bucket[s] = e;
    m->n++;
}

int oauth_mem_insert(oauth_mem_t *m, oauth_ent_t *e, int64_t now)
{
    int rc = OAUTH_OK;

    pthread_mutex_lock(&m->mu);
    if (m->n >= m->cap)
        purge_expired(m, now);
    if (m->n >= m->cap)
        rc = OAUTH_ERR_FULL;
    else
        link_ent(m, e);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

void oauth_mem_put_back(oauth_mem_t *m, oauth_ent_t *e)
{
    pthread_mutex_lock(&m->mu);
    link_ent(m, e);
    pthread_mutex_unlock(&m->mu);
}

/* The link pointing at the entry under key, or NULL; called with mu held. */
static oauth_ent_t **find(oauth_mem_t *m, const uint8_t key[32])
{
    oauth_ent_t **pp;

    for (pp = &m->bucket[slot(key)]; *pp; pp = &(*pp)->next)
        if (CRYPTO_memcmp((*pp)->key, key, 32) == 0)
            return pp;
    return NULL;
}

static oauth_ent_t *unlink_ent(oauth_mem_t *m, oauth_ent_t **pp)
{
    oauth_ent_t *e = *pp;

    *pp = e->next;
    e->next = NULL;
    m->n--;
    return e;
}

oauth_ent_t *oauth_mem_take(oauth_mem_t *m, const uint8_t key[32], int64_t now, int *expired)
{
    oauth_ent_t **pp, *e = NULL;

    *expired = 0;
    pthread_mutex_lock(&m->mu);
    if ((pp = find(m, key)) != NULL) {
        e = unlink_ent(m, pp);
        if (now >= e->expires) {
            oauth_ent_free(e);
            e = NULL;
            *expired = 1;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return e;
}

int oauth_mem_with(oauth_mem_t *m, const uint8_t key[32], int64_t now, int (*fn)(oauth_ent_t *e, void *arg),
                   void *arg)
{
    oauth_ent_t **pp;
    int rc = OAUTH_ERR_INVALID;

    pthread_mutex_lock(&m->mu);
    if ((pp = find(m, key)) != NULL) {
        if (now >= (*pp)->expires) {
            oauth_ent_free(unlink_ent(m, pp));
            rc = OAUTH_ERR_EXPIRED;
        } else {
            rc = fn(*pp, arg);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

size_t oauth_mem_count(oauth_mem_t *m)
{
    size_t n;

    pthread_mutex_lock(&m->mu);
    n = m->n;
    pthread_mutex_unlock(&m->mu);
    return n;
}

#ifdef CSC_TEST_HOOKS
void oauth_mem_set_cap(oauth_mem_t *m, size_t cap)
{
    pthread_mutex_lock(&m->mu);
    m->cap = cap;
    pthread_mutex_unlock(&m->mu);
}
#endif
