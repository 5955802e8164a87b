/*
 * pki_x509cache.c - parsed certificates kept for reuse (pki.h, "Parsed certificates").
 *
 * d2i_X509 decodes the certificate's public key through OpenSSL 3's decoder machinery, which costs more than a
 * P-256 signature; a service that reads the same credential's certificate before every signature parses it once.
 * Direct-mapped: the DER bytes hash to one slot; a slot holds the bytes it was parsed from, compared in full, so an
 * entry never stands for any other input. A different certificate hashing to a taken slot replaces it.
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include "pki_int.h"

#define SLOTS_MAX 4096

typedef struct slot {
    uint8_t *der; /* the bytes parsed (NULL: empty) */
    size_t len;
    X509 *x;      /* one reference held by the cache */
} slot_t;

struct pki_x509_cache {
    pthread_mutex_t mu;
    size_t n;
    uint64_t hits, misses;
    slot_t *slots;
};

int pki_x509_cache_new(size_t slots, pki_x509_cache_t **out)
{
    *out = NULL;
    if (slots == 0 || slots > SLOTS_MAX)
        return PKI_ERR_INVAL;
    pki_x509_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->slots = calloc(slots, sizeof(*c->slots))) == NULL) {
        free(c);
        return PKI_ERR_NOMEM;
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->slots);
        free(c);
        return PKI_ERR_INTERNAL;
    }
    c->n = slots;
    *out = c;
    return PKI_OK;
}

static void slot_clear(slot_t *s)
{
    X509_free(s->x);
    free(s->der);
    memset(s, 0, sizeof(*s));
}

void pki_x509_cache_free(pki_x509_cache_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        slot_clear(&c->slots[i]);
    pthread_mutex_destroy(&c->mu);
    free(c->slots);
    free(c);
}

/* FNV-1a over the bytes: spreads certificates over the slots; equality is decided by the full comparison. */
static size_t slot_of(const pki_x509_cache_t *c, const uint8_t *der, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ der[i]) * 1099511628211ull;
    return (size_t)(h % c->n);
}

static X509 *parse(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    return len > 0 && len <= LONG_MAX ? d2i_X509(NULL, &p, (long)len) : NULL;
}

X509 *pki_x509_cache_get(pki_x509_cache_t *c, const uint8_t *der, size_t len)
{
    if (c == NULL)
        return parse(der, len);
    slot_t *s = &c->slots[slot_of(c, der, len)];
    X509 *x = NULL;
    pthread_mutex_lock(&c->mu);
    if (s->der != NULL && s->len == len && memcmp(s->der, der, len) == 0 && X509_up_ref(s->x) == 1) {
        x = s->x;
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    if (x != NULL || (x = parse(der, len)) == NULL)
        return x; /* a hit, or bytes that do not parse (never kept) */
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        return x;
    memcpy(copy, der, len);
    pthread_mutex_lock(&c->mu);
    slot_t old = *s;
    int kept = X509_up_ref(x) == 1;
    if (kept)
        *s = (slot_t){.der = copy, .len = len, .x = x};
    pthread_mutex_unlock(&c->mu);
    if (kept)
        slot_clear(&old); /* outside the lock: the replaced entry's last reference may be the cache's */
    else
        free(copy);
    return x;
}

void pki_x509_cache_stats(pki_x509_cache_t *c, uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}
