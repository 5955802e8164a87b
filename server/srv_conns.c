/*
 * srv_conns.c - the open connections of the public listener, in all and per client address (srv_conns.h).
 *
 * An open addressing table of at least twice max_total slots, so it never fills (an address is in it only while it
 * has a connection open) and its runs stay short; linear probing; deletion by backward shift, so there are no
 * tombstones and a lookup stops at the first free slot. The hash is FNV-1a from a random start: a client cannot pick
 * addresses that fall on one run. One lock: the event loops take it twice per connection, at accept and at close.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "srv_conns.h"
#include "srv_metrics.h"

typedef struct slot {
    unsigned char addr[SRV_CONNS_ADDR];
    unsigned count;           /* 0: free */
} slot_t;

struct srv_conns {
    pthread_mutex_t mu;
    slot_t *slots;
    size_t mask;              /* slots - 1 (a power of two) */
    uint64_t seed;
    unsigned open, max_total, max_per_address;
};

int srv_conns_new(unsigned max_total, unsigned max_per_address, srv_conns_t **out)
{
    srv_conns_t *t;
    size_t n = 16;

    *out = NULL;
    while (n < 2 * (size_t)max_total)
        n *= 2;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return -1;
    pthread_mutex_init(&t->mu, NULL);
    if ((t->slots = calloc(n, sizeof(*t->slots))) == NULL ||
        RAND_bytes((unsigned char *)&t->seed, sizeof(t->seed)) != 1) {
        srv_conns_free(t);
        return -1;
    }
    t->mask = n - 1;
    t->max_total = max_total;
    t->max_per_address = max_per_address;
    *out = t;
    return 0;
}

static size_t hash(const srv_conns_t *t, const unsigned char *a)
{
    uint64_t h = 1469598103934665603ull ^ t->seed;
    for (size_t i = 0; i < SRV_CONNS_ADDR; i++)
        h = (h ^ a[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29)) & t->mask;
}

/* The slot of addr, or the free slot where it would go. Under t->mu. */
static size_t find(const srv_conns_t *t, const unsigned char *addr)
{
    size_t i = hash(t, addr);
    while (t->slots[i].count != 0 && memcmp(t->slots[i].addr, addr, SRV_CONNS_ADDR) != 0)
        i = (i + 1) & t->mask;
    return i;
}

unsigned srv_conns_enter(srv_conns_t *t, const unsigned char addr[SRV_CONNS_ADDR])
{
    unsigned refused = SRV_REFUSED_N;
    pthread_mutex_lock(&t->mu);
    size_t i = find(t, addr);
    if (t->open >= t->max_total) {
        refused = SRV_REFUSED_TOTAL;
    } else if (t->slots[i].count >= t->max_per_address) {
        refused = SRV_REFUSED_PER_ADDRESS;
    } else {
        memcpy(t->slots[i].addr, addr, SRV_CONNS_ADDR);
        t->slots[i].count++;
        t->open++;
    }
    pthread_mutex_unlock(&t->mu);
    return refused;
}

void srv_conns_leave(srv_conns_t *t, const unsigned char addr[SRV_CONNS_ADDR])
{
    pthread_mutex_lock(&t->mu);
    size_t i = find(t, addr);
    if (t->slots[i].count != 0) {
        t->open--;
        if (--t->slots[i].count == 0) {
            /* Backward shift: each later entry of the run moves into the hole unless its home slot lies cyclically
             * within (hole, its slot]: there it would be found before the hole, and moving it would hide it. */
            for (size_t j = (i + 1) & t->mask; t->slots[j].count != 0; j = (j + 1) & t->mask) {
                size_t home = hash(t, t->slots[j].addr);
                if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
                    t->slots[i] = t->slots[j];
                    t->slots[j].count = 0;
                    i = j;
                }
            }
        }
    }
    pthread_mutex_unlock(&t->mu);
}

unsigned srv_conns_of(srv_conns_t *t, const unsigned char addr[SRV_CONNS_ADDR])
{
    pthread_mutex_lock(&t->mu);
    unsigned n = t->slots[find(t, addr)].count;
    pthread_mutex_unlock(&t->mu);
    return n;
}

unsigned srv_conns_open(srv_conns_t *t)
{
    pthread_mutex_lock(&t->mu);
    unsigned n = t->open;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void srv_conns_free(srv_conns_t *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t);
}
