/*
 * oauth_challenge.c - one-time codes for the CHALLENGE authentication object
 * (CSC v2 credentials/getChallenge, v1 credentials/sendOTP with an "online" OTP).
 *
 * A code is OAUTH_CHALLENGE_DIGITS random decimal digits. It is handed to the
 * caller for out-of-band delivery and kept here only as an HMAC-SHA256 under a
 * key drawn at start-up, bound to user and credential, with an expiry. One code
 * is pending per user and credential; credentials/authorize uses it up on its
 * first try, right or wrong (a wrong one counts towards the credential's lock
 * like any wrong factor). The table is in memory and bounded: a restart forgets
 * pending codes (the user asks for a new one).
 *
 * This file is the table and the check (credentials/authorize); making and cancelling a code is
 * oauth_challenge_new.c's, which only csc-sam links (the front end never makes one).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "oauth_int.h"

typedef struct {
    uint8_t key[32];      /* SHA-256(user NUL cred); all zero = free slot */
    uint8_t mac[32];      /* HMAC(user NUL cred NUL code) */
    int64_t issued;
    int64_t expires;
    int used;
    uint32_t epoch;       /* the user's epoch when it was issued: an operator's reset voids it */
} chal_ent_t;

struct oauth_chal_tab {
    pthread_mutex_t mu;
    uint8_t hmac_key[32];
    size_t cap;
    chal_ent_t ents[OAUTH_CHALLENGES_MAX];
};

int oauth_chal_tab_new(struct oauth_chal_tab **out)
{
    struct oauth_chal_tab *t = calloc(1, sizeof(*t));

    *out = NULL;
    if (!t)
        return OAUTH_ERR_INTERNAL;
    if (RAND_bytes(t->hmac_key, sizeof(t->hmac_key)) != 1 || pthread_mutex_init(&t->mu, NULL) != 0) {
        OPENSSL_clear_free(t, sizeof(*t));
        return OAUTH_ERR_INTERNAL;
    }
    t->cap = OAUTH_CHALLENGES_MAX;
    *out = t;
    return OAUTH_OK;
}

void oauth_chal_tab_free(struct oauth_chal_tab *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    OPENSSL_clear_free(t, sizeof(*t));
}

#ifdef CSC_TEST_HOOKS
void oauth_chal_tab_set_cap(struct oauth_chal_tab *t, size_t cap)
{
    if (t && cap && cap <= OAUTH_CHALLENGES_MAX)
        t->cap = cap;
}
#endif

/* Key of the (user, cred) pair, and the MAC of a code for it. */
int oauth_chal_key(const char *user, const char *cred, uint8_t key[32])
{
    char buf[2 * (STOR_NAME_MAX + 1)];
    size_t ul = strlen(user), cl = strlen(cred);

    memcpy(buf, user, ul + 1);
    memcpy(buf + ul + 1, cred, cl);
    return oauth_sha256(buf, ul + 1 + cl, key);
}

int oauth_chal_mac(const struct oauth_chal_tab *t, const uint8_t key[32], const char *code, size_t len,
                    uint8_t mac[32])
{
    uint8_t msg[32 + OAUTH_CHALLENGE_DIGITS];
    unsigned int n = 0;
    int ok;

    if (len != OAUTH_CHALLENGE_DIGITS)
        return OAUTH_ERR_INVAL;
    memcpy(msg, key, 32);
    memcpy(msg + 32, code, len);
    ok = HMAC(EVP_sha256(), t->hmac_key, sizeof(t->hmac_key), msg, sizeof(msg), mac, &n) != NULL && n == 32;
    OPENSSL_cleanse(msg, sizeof(msg));
    return ok ? OAUTH_OK : OAUTH_ERR_INTERNAL;
}

int oauth_chal_put(struct oauth_chal_tab *t, const uint8_t key[32], const uint8_t mac[32], int64_t expires,
                    int64_t now, uint32_t epoch)
{
    chal_ent_t *slot = NULL;
    int rc = OAUTH_OK;
    size_t i;

    pthread_mutex_lock(&t->mu);
    for (i = 0; i < t->cap; i++) {
        chal_ent_t *e = &t->ents[i];
        if (e->used && CRYPTO_memcmp(e->key, key, 32) == 0) {
            if (e->expires > now && e->issued + OAUTH_CHALLENGE_RESEND > now)
                rc = OAUTH_ERR_RATE;
            slot = e;
            break;
        }
        if (!slot && (!e->used || e->expires <= now))
            slot = e;
    }
    if (!slot)
        rc = OAUTH_ERR_FULL;
    if (rc == OAUTH_OK) {
        memcpy(slot->key, key, 32);
        memcpy(slot->mac, mac, 32);
        slot->issued = now;
        slot->expires = expires;
        slot->used = 1;
        slot->epoch = epoch;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void oauth_chal_drop(struct oauth_chal_tab *t, const uint8_t key[32])
{
    size_t i;

    pthread_mutex_lock(&t->mu);
    for (i = 0; i < t->cap; i++)
        if (t->ents[i].used && CRYPTO_memcmp(t->ents[i].key, key, 32) == 0)
            OPENSSL_cleanse(&t->ents[i], sizeof(t->ents[i]));
    pthread_mutex_unlock(&t->mu);
}

int oauth_challenge_take(oauth_t *o, const char *user, const char *cred, const char *code, size_t len, int64_t now,
                         uint32_t epoch)
{
    struct oauth_chal_tab *t = o->challenges;
    uint8_t key[32], mac[32], want[32];
    int64_t expires = 0;
    int found = 0;
    size_t i;

    if (!oauth_name_ok(user) || !oauth_name_ok(cred) || oauth_chal_key(user, cred, key) != OAUTH_OK)
        return OAUTH_ERR_DENIED;
    pthread_mutex_lock(&t->mu);
    for (i = 0; i < t->cap; i++) {
        chal_ent_t *e = &t->ents[i];
        if (e->used && CRYPTO_memcmp(e->key, key, 32) == 0) {
            memcpy(want, e->mac, 32);
            expires = e->expires;
            found = e->epoch == epoch; /* issued before an operator's reset of the user: void */
            OPENSSL_cleanse(e, sizeof(*e)); /* tried once, right or wrong */
            break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    for (i = 0; i < len; i++)
        if (code[i] < '0' || code[i] > '9')
            found = 0;
    if (found && (expires <= now || oauth_chal_mac(t, key, code, len, mac) != OAUTH_OK))
        found = 0;
    found = found && CRYPTO_memcmp(mac, want, 32) == 0;
    OPENSSL_cleanse(want, sizeof(want));
    OPENSSL_cleanse(mac, sizeof(mac));
    return found ? OAUTH_OK : OAUTH_ERR_DENIED;
}

