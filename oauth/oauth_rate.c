/*
 * oauth_rate.c - failures per client address, counted in a fixed window.
 *
 * An address may fail rate_max times within rate_window seconds of its first
 * counted failure; after that it is refused (OAUTH_ERR_RATE) until that window
 * ends. The table is in memory and bounded: when it is full, an address whose
 * window has ended makes room, else the one with the oldest window is evicted
 * (under a flood of addresses the oldest counters are the least informative).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "oauth_int.h"

typedef struct {
    uint64_t h;                  /* keyed hash of addr: most slots are skipped on an integer compare */
    char addr[OAUTH_ADDR_MAX + 1];
    int64_t start;               /* start of the current window */
    uint32_t count;              /* failures in it */
    int used;
} rate_ent_t;

struct oauth_rate {
    pthread_mutex_t mu;
    uint64_t seed;               /* random: other processes' hashes of the same address differ */
    size_t cap;
    rate_ent_t ents[OAUTH_RATE_ADDRS_MAX];
};

int oauth_rate_new(oauth_rate_t **out)
{
    oauth_rate_t *r = calloc(1, sizeof(*r));

    *out = NULL;
    if (!r)
        return OAUTH_ERR_INTERNAL;
    if (RAND_bytes((uint8_t *)&r->seed, sizeof(r->seed)) != 1 || pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return OAUTH_ERR_INTERNAL;
    }
    r->cap = OAUTH_RATE_ADDRS_MAX;
    *out = r;
    return OAUTH_OK;
}

void oauth_rate_free(oauth_rate_t *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    OPENSSL_clear_free(r, sizeof(*r));
}

#ifdef CSC_TEST_HOOKS
void oauth_rate_set_cap(oauth_rate_t *r, size_t cap)
{
    pthread_mutex_lock(&r->mu);
    r->cap = cap < OAUTH_RATE_ADDRS_MAX ? cap : OAUTH_RATE_ADDRS_MAX;
    memset(r->ents, 0, sizeof(r->ents));
    pthread_mutex_unlock(&r->mu);
}
#endif

/* FNV-1a over the seed and the (truncated) address. */
static uint64_t addr_hash(uint64_t seed, const char *addr)
{
    uint64_t h = 14695981039346656037u ^ seed;
    size_t i;

    for (i = 0; addr[i]; i++) {
        h ^= (unsigned char)addr[i];
        h *= 1099511628211u;
    }
    return h;
}

static int window_over(const oauth_t *o, const rate_ent_t *e, int64_t now)
{
    return now - e->start >= (int64_t)o->cfg.rate_window;
}

/* The slot of addr, or NULL; called with mu held. */
static rate_ent_t *find(oauth_rate_t *r, const char *addr, uint64_t h)
{
    size_t i;

    for (i = 0; i < r->cap; i++)
        if (r->ents[i].used && r->ents[i].h == h && strcmp(r->ents[i].addr, addr) == 0)
            return &r->ents[i];
    return NULL;
}

/* A slot for a new address: a free one, one whose window is over, else the oldest. */
static rate_ent_t *claim(const oauth_t *o, oauth_rate_t *r, int64_t now)
{
    rate_ent_t *oldest = &r->ents[0];
    size_t i;

    for (i = 0; i < r->cap; i++) {
        rate_ent_t *e = &r->ents[i];
        if (!e->used || window_over(o, e, now))
            return e;
        if (e->start < oldest->start)
            oldest = e;
    }
    return oldest;
}

static void key_of(const char *addr, char out[OAUTH_ADDR_MAX + 1])
{
    oauth_copy(out, OAUTH_ADDR_MAX + 1, addr ? addr : "");
}

int oauth_rate_hit(oauth_t *o, const char *addr)
{
    char key[OAUTH_ADDR_MAX + 1];
    oauth_rate_t *r;
    rate_ent_t *e;
    int64_t now;
    uint64_t h;
    int rc;

    if (!o)
        return OAUTH_ERR_INVAL;
    r = o->rate;
    now = oauth_clock(o);
    key_of(addr, key);
    pthread_mutex_lock(&r->mu);
    h = addr_hash(r->seed, key);
    if ((e = find(r, key, h)) == NULL) {
        e = claim(o, r, now);
        memset(e, 0, sizeof(*e));
        e->used = 1;
        e->h = h;
        memcpy(e->addr, key, sizeof(key));
        e->start = now;
    } else if (window_over(o, e, now)) {
        e->start = now;
        e->count = 0;
    }
    if (e->count < UINT32_MAX)
        e->count++;
    rc = e->count >= o->cfg.rate_max ? OAUTH_ERR_RATE : OAUTH_OK;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int oauth_rate_check(oauth_t *o, const char *addr)
{
    char key[OAUTH_ADDR_MAX + 1];
    oauth_rate_t *r;
    rate_ent_t *e;
    int64_t now;
    int rc = OAUTH_OK;

    if (!o)
        return OAUTH_ERR_INVAL;
    r = o->rate;
    now = oauth_clock(o);
    key_of(addr, key);
    pthread_mutex_lock(&r->mu);
    e = find(r, key, addr_hash(r->seed, key));
    if (e && !window_over(o, e, now) && e->count >= o->cfg.rate_max)
        rc = OAUTH_ERR_RATE;
    pthread_mutex_unlock(&r->mu);
    return rc;
}
