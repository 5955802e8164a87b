/*
 * oauth_ticket.c - the sign-in pages before the password: no state on the server.
 *
 * A visitor who has not presented a password gets a ticket cookie and a form token, both MACed
 * (HMAC-SHA-256) under the ticket key:
 *   cookie  <nonce>.<created>.<mac>             mac over ("cookie", purpose, nonce, created)
 *   form    <payload>.<expires>.<mac>           mac over ("form", purpose, nonce, created, expires, payload)
 * nonce: 16 random bytes, payload: the pending request (base64url, at most OAUTH_TICKET_PAYLOAD_MAX bytes
 * decoded), created/expires: unix seconds. The form token is the CSRF token of the double submit: it is only
 * valid with the cookie it was made for, which another site can neither read nor set (__Host-, SameSite).
 * Idle timeout: expires = now + session_idle (renewed with each page); absolute: created + session_max.
 * Nothing is kept: a flood of visitors costs CPU per request, never memory or a slot in a table.
 * The key: csc-server sets the one csc-sam derives from the HSM's factor key (oauth_ticket_set_key, from the HELLO
 * reply), the same on every node of that HSM and across restarts, so a form served by one node is accepted by another
 * and by the same node after a restart. Without it (no csc-sam gave one, unit tests) the key is random, drawn at
 * oauth_new(): a restart then ends the pages in progress, and another node refuses them (the visitor starts again).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "oauth_int.h"

#define NONCE_LEN 16
#define NONCE_B64 22   /* base64url of 16 bytes, no padding */
#define MAC_B64 43     /* base64url of 32 bytes */
#define TIME_DIGITS_MAX 19

int oauth_ticket_init(oauth_t *o)
{
    return RAND_bytes(o->ticket_key, sizeof(o->ticket_key)) == 1 ? OAUTH_OK : OAUTH_ERR_INTERNAL;
}

int oauth_ticket_set_key(oauth_t *o, const uint8_t *key, size_t len)
{
    _Static_assert(sizeof(o->ticket_key) == OAUTH_TICKET_KEY_LEN, "the ticket key's length");
    if (o == NULL || key == NULL || len != sizeof(o->ticket_key))
        return OAUTH_ERR_INVAL;
    memcpy(o->ticket_key, key, sizeof(o->ticket_key));
    return OAUTH_OK;
}

/* HMAC-SHA-256 under the ticket key over the NUL-separated parts; base64url into out (MAC_B64 + 1). */
static int mac(const oauth_t *o, const char *const *parts, size_t n, char out[MAC_B64 + 1])
{
    uint8_t md[32];
    size_t mdlen = 0;
    int ok = 0;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};

    if (ctx != NULL && EVP_MAC_init(ctx, o->ticket_key, sizeof(o->ticket_key), params) == 1) {
        ok = 1;
        for (size_t i = 0; i < n && ok; i++)
            ok = EVP_MAC_update(ctx, (const unsigned char *)parts[i], strlen(parts[i]) + 1) == 1;
        ok = ok && EVP_MAC_final(ctx, md, &mdlen, sizeof(md)) == 1 && mdlen == sizeof(md);
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    if (!ok)
        return OAUTH_ERR_INTERNAL;
    oauth_b64_encode(md, sizeof(md), out, OAUTH_B64_URL);
    OPENSSL_cleanse(md, sizeof(md));
    return OAUTH_OK;
}

/* Non-negative decimal of at most 19 digits, whole string. */
static int parse_time(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    if (len == 0 || len > TIME_DIGITS_MAX - 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

typedef struct cookie_parts {
    char nonce[NONCE_B64 + 1];
    char created_s[TIME_DIGITS_MAX + 1];
    int64_t created;
} cookie_parts_t;

/* Parse and authenticate a ticket cookie; unexpired (absolute limit) at now. */
static int cookie_check(const oauth_t *o, const char *purpose, const char *cookie, int64_t now, cookie_parts_t *c)
{
    char want[MAC_B64 + 1];
    const char *d1, *d2;
    size_t len;

    if (!cookie || (len = strnlen(cookie, OAUTH_TICKET_COOKIE_LEN)) >= OAUTH_TICKET_COOKIE_LEN)
        return OAUTH_ERR_INVALID;
    if (!(d1 = memchr(cookie, '.', len)) || !(d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - cookie))))
        return OAUTH_ERR_INVALID;
    if (d1 - cookie != NONCE_B64 || strlen(d2 + 1) != MAC_B64 ||
        parse_time(d1 + 1, (size_t)(d2 - d1 - 1), &c->created) != 0)
        return OAUTH_ERR_INVALID;
    memcpy(c->nonce, cookie, NONCE_B64);
    c->nonce[NONCE_B64] = '\0';
    memcpy(c->created_s, d1 + 1, (size_t)(d2 - d1 - 1));
    c->created_s[d2 - d1 - 1] = '\0';
    const char *parts[] = {"csc-ticket-cookie", purpose, c->nonce, c->created_s};
    if (mac(o, parts, 4, want) != OAUTH_OK)
        return OAUTH_ERR_INTERNAL;
    if (CRYPTO_memcmp(want, d2 + 1, MAC_B64) != 0)
        return OAUTH_ERR_INVALID;
    if (c->created > now + 60 || now >= c->created + (int64_t)o->cfg.session_max)
        return OAUTH_ERR_EXPIRED;
    return OAUTH_OK;
}

int oauth_ticket_new(oauth_t *o, const char *purpose, char cookie[OAUTH_TICKET_COOKIE_LEN])
{
    uint8_t nonce[NONCE_LEN];
    char n64[NONCE_B64 + 1], created[TIME_DIGITS_MAX + 1], m[MAC_B64 + 1];
    int rc;

    if (cookie)
        cookie[0] = '\0';
    if (!o || !purpose || !cookie)
        return OAUTH_ERR_INVAL;
    if (RAND_bytes(nonce, sizeof(nonce)) != 1)
        return OAUTH_ERR_INTERNAL;
    oauth_b64_encode(nonce, sizeof(nonce), n64, OAUTH_B64_URL);
    snprintf(created, sizeof(created), "%" PRId64, oauth_clock(o));
    const char *parts[] = {"csc-ticket-cookie", purpose, n64, created};
    if ((rc = mac(o, parts, 4, m)) != OAUTH_OK)
        return rc;
    snprintf(cookie, OAUTH_TICKET_COOKIE_LEN, "%s.%s.%s", n64, created, m);
    return OAUTH_OK;
}

int oauth_ticket_form(oauth_t *o, const char *purpose, const char *cookie, const char *payload, size_t len,
                      char **out)
{
    cookie_parts_t c;
    char expires[TIME_DIGITS_MAX + 1], m[MAC_B64 + 1];
    char *b = NULL, *f = NULL;
    int64_t now;
    int rc = OAUTH_ERR_INVAL;

    if (out)
        *out = NULL;
    if (!o || !purpose || !out || (!payload && len) || len > OAUTH_TICKET_PAYLOAD_MAX)
        return rc;
    now = oauth_clock(o);
    if ((rc = cookie_check(o, purpose, cookie, now, &c)) != OAUTH_OK)
        return rc;
    int64_t exp = now + (int64_t)o->cfg.session_idle;
    if (exp > c.created + (int64_t)o->cfg.session_max)
        exp = c.created + (int64_t)o->cfg.session_max;
    snprintf(expires, sizeof(expires), "%" PRId64, exp);
    rc = OAUTH_ERR_INTERNAL;
    size_t blen = (len + 2) / 3 * 4 + 1;
    if (!(b = malloc(blen)) || !(f = malloc(blen + 1 + sizeof(expires) + 1 + sizeof(m))))
        goto out;
    oauth_b64_encode((const uint8_t *)payload, len, b, OAUTH_B64_URL);
    const char *parts[] = {"csc-ticket-form", purpose, c.nonce, c.created_s, expires, b};
    if ((rc = mac(o, parts, 6, m)) != OAUTH_OK)
        goto out;
    sprintf(f, "%s.%s.%s", b, expires, m);
    *out = f;
    f = NULL;
    rc = OAUTH_OK;
out:
    free(b);
    free(f);
    return rc;
}

int oauth_ticket_check(oauth_t *o, const char *purpose, const char *cookie, const char *form, char **payload,
                       size_t *len)
{
    cookie_parts_t c;
    char want[MAC_B64 + 1], expires[TIME_DIGITS_MAX + 1];
    const char *d1, *d2;
    uint8_t *p = NULL;
    int64_t now, exp;
    size_t flen;
    int rc = OAUTH_ERR_INVAL;

    if (payload)
        *payload = NULL;
    if (len)
        *len = 0;
    if (!o || !purpose || !payload || !len)
        return rc;
    now = oauth_clock(o);
    if ((rc = cookie_check(o, purpose, cookie, now, &c)) != OAUTH_OK)
        return rc;
    rc = OAUTH_ERR_INVALID;
    if (!form || (flen = strnlen(form, OAUTH_TICKET_FORM_MAX + 1)) > OAUTH_TICKET_FORM_MAX)
        return rc;
    /* <payload>.<expires>.<mac>: the payload has no dot */
    if (!(d1 = memchr(form, '.', flen)) || !(d2 = memchr(d1 + 1, '.', flen - (size_t)(d1 + 1 - form))))
        return rc;
    if (strlen(d2 + 1) != MAC_B64 || parse_time(d1 + 1, (size_t)(d2 - d1 - 1), &exp) != 0)
        return rc;
    memcpy(expires, d1 + 1, (size_t)(d2 - d1 - 1));
    expires[d2 - d1 - 1] = '\0';
    size_t blen = (size_t)(d1 - form);
    char *b = malloc(blen + 1);
    if (!b)
        return OAUTH_ERR_INTERNAL;
    memcpy(b, form, blen);
    b[blen] = '\0';
    const char *parts[] = {"csc-ticket-form", purpose, c.nonce, c.created_s, expires, b};
    rc = mac(o, parts, 6, want);
    if (rc == OAUTH_OK && CRYPTO_memcmp(want, d2 + 1, MAC_B64) != 0)
        rc = OAUTH_ERR_INVALID;
    if (rc == OAUTH_OK && (now >= exp || exp > c.created + (int64_t)o->cfg.session_max))
        rc = OAUTH_ERR_EXPIRED;
    if (rc == OAUTH_OK && !(p = malloc(blen * 3 / 4 + 1)))
        rc = OAUTH_ERR_INTERNAL;
    long n = rc == OAUTH_OK ? oauth_b64_decode(b, blen, p, blen * 3 / 4 + 1, OAUTH_B64_URL) : -1;
    if (rc == OAUTH_OK && (n < 0 || (size_t)n > OAUTH_TICKET_PAYLOAD_MAX || memchr(p, '\0', (size_t)n)))
        rc = OAUTH_ERR_INVALID;
    free(b);
    if (rc != OAUTH_OK) {
        free(p);
        return rc;
    }
    p[n] = '\0';
    *payload = (char *)p;
    *len = (size_t)n;
    return OAUTH_OK;
}
