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
static int chal_key(const char *user, const char *cred, uint8_t key[32])
{
    char buf[2 * (STOR_NAME_MAX + 1)];
    size_t ul = strlen(user), cl = strlen(cred);

    memcpy(buf, user, ul + 1);
    memcpy(buf + ul + 1, cred, cl);
    return oauth_sha256(buf, ul + 1 + cl, key);
}

static int chal_mac(const struct oauth_chal_tab *t, const uint8_t key[32], const char *code, size_t len,
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

/* Store (or replace) the pending code of key. A pending, unexpired code is replaced only OAUTH_CHALLENGE_RESEND
 * seconds after it was issued (each code costs an out-of-band message).
 * @return OAUTH_OK, OAUTH_ERR_RATE (too soon) or OAUTH_ERR_FULL */
static int chal_put(struct oauth_chal_tab *t, const uint8_t key[32], const uint8_t mac[32], int64_t expires,
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

/* Forget the pending code of key, if any. */
static void chal_drop(struct oauth_chal_tab *t, const uint8_t key[32])
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

    if (!oauth_name_ok(user) || !oauth_name_ok(cred) || chal_key(user, cred, key) != OAUTH_OK)
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
    if (found && (expires <= now || chal_mac(t, key, code, len, mac) != OAUTH_OK))
        found = 0;
    found = found && CRYPTO_memcmp(mac, want, 32) == 0;
    OPENSSL_cleanse(want, sizeof(want));
    OPENSSL_cleanse(mac, sizeof(mac));
    return found ? OAUTH_OK : OAUTH_ERR_DENIED;
}

/* ---- issuing a code --------------------------------------------------------- */

typedef struct {
    oauth_t *o;
    const char *user, *cred, *client;
    int64_t now;
    uint8_t key[32], mac[32];
    stor_cred_t *c;
    stor_user_t u;
    const char *reason;        /* cancel: the delivery failure */
    int rc;
} chal_ctx_t;

static const char *chal_reason(int rc)
{
    switch (rc) {
    case OAUTH_OK: return NULL;
    case OAUTH_ERR_LOCKED: return "locked";
    case OAUTH_ERR_DISABLED: return "disabled";
    case OAUTH_ERR_FULL: return "too many pending codes";
    case OAUTH_ERR_RATE: return "asked again too soon";
    default: return "no challenge object";
    }
}

static int chal_audit(stor_txn_t *t, chal_ctx_t *c, uint32_t result, const char *detail)
{
    stor_audit_t rec;

    oauth_audit_init(&rec, STOR_EV_CHALLENGE, result, c->user, c->cred, c->client);
    snprintf(rec.detail, sizeof(rec.detail), "%s", detail);
    return stor_txn_audit_append(t, &rec);
}

static int chal_apply(stor_txn_t *t, void *arg)
{
    chal_ctx_t *c = arg;
    char detail[128];
    int rc;

    c->rc = OAUTH_ERR_INVALID;
    rc = stor_txn_cred_get(t, c->cred, c->c);
    if (rc < 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    if (rc == STOR_OK && !strcmp(c->c->owner, c->user) && c->c->auth_mode == STOR_AUTH_EXPLICIT &&
        oauth_expr_names(c->c->auth_expr, OAUTH_CHALLENGE_ID)) {
        if ((rc = stor_txn_user_get(t, c->user, &c->u)) < 0 && rc != STOR_ERR_NOTFOUND)
            return rc;
        if (rc == STOR_ERR_NOTFOUND)
            c->rc = OAUTH_ERR_INVALID;
        else if (c->c->locked_until > c->now)
            c->rc = OAUTH_ERR_LOCKED;
        else if (c->u.status != STOR_USER_ACTIVE || c->c->status != STOR_CRED_ENABLED)
            c->rc = OAUTH_ERR_DISABLED;
        else
            c->rc = chal_put(c->o->challenges, c->key, c->mac, c->now + (int64_t)c->o->cfg.challenge_ttl, c->now,
                             c->u.epoch);
    }
    if (c->rc == OAUTH_OK)
        snprintf(detail, sizeof(detail), "object %s issued, valid %us", OAUTH_CHALLENGE_ID, c->o->cfg.challenge_ttl);
    else
        snprintf(detail, sizeof(detail), "object %s denied: %s", OAUTH_CHALLENGE_ID, chal_reason(c->rc));
    if ((rc = chal_audit(t, c, c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, detail)) < 0) {
        if (c->rc == OAUTH_OK)
            chal_drop(c->o->challenges, c->key);
        return rc;
    }
    return 0;
}

/* Uniform random decimal digits (rejection sampling: no modulo bias). */
static int chal_code(char code[OAUTH_CHALLENGE_DIGITS + 1])
{
    size_t i = 0;
    uint8_t b[32];

    while (i < OAUTH_CHALLENGE_DIGITS) {
        size_t j;
        if (RAND_bytes(b, sizeof(b)) != 1) {
            OPENSSL_cleanse(code, OAUTH_CHALLENGE_DIGITS + 1);
            return OAUTH_ERR_INTERNAL;
        }
        for (j = 0; j < sizeof(b) && i < OAUTH_CHALLENGE_DIGITS; j++)
            if (b[j] < 250)
                code[i++] = (char)('0' + b[j] % 10);
    }
    code[i] = '\0';
    OPENSSL_cleanse(b, sizeof(b));
    return OAUTH_OK;
}

int oauth_challenge_new(oauth_t *o, const char *user, const char *cred, const char *client,
                        char code[OAUTH_CHALLENGE_DIGITS + 1], unsigned *ttl)
{
    chal_ctx_t c;
    int rc = OAUTH_ERR_INVAL;

    memset(&c, 0, sizeof(c));
    if (code)
        memset(code, 0, OAUTH_CHALLENGE_DIGITS + 1);
    if (ttl)
        *ttl = 0;
    if (!o || !code || !ttl || !oauth_name_ok(user) || !oauth_name_ok(cred))
        return rc;
    rc = OAUTH_ERR_INTERNAL;
    if (!(c.c = calloc(1, sizeof(*c.c))))
        goto out;
    c.o = o;
    c.user = user;
    c.cred = cred;
    c.client = client;
    c.now = oauth_clock(o);
    if ((rc = chal_code(code)) != OAUTH_OK || (rc = chal_key(user, cred, c.key)) != OAUTH_OK ||
        (rc = chal_mac(o->challenges, c.key, code, OAUTH_CHALLENGE_DIGITS, c.mac)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, chal_apply, &c))) == OAUTH_OK)
        rc = c.rc;
    if (rc == OAUTH_OK)
        *ttl = o->cfg.challenge_ttl;
out:
    if (rc != OAUTH_OK)
        OPENSSL_cleanse(code, OAUTH_CHALLENGE_DIGITS + 1);
    if (c.c)
        OPENSSL_clear_free(c.c, sizeof(*c.c));
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}

static int cancel_apply(stor_txn_t *t, void *arg)
{
    chal_ctx_t *c = arg;
    char detail[160];
    int rc;

    snprintf(detail, sizeof(detail), "object %s delivery failed: %s", OAUTH_CHALLENGE_ID, c->reason);
    rc = chal_audit(t, c, STOR_RES_ERROR, detail);
    return rc < 0 ? rc : 0;
}

int oauth_challenge_cancel(oauth_t *o, const char *user, const char *cred, const char *client, const char *reason)
{
    chal_ctx_t c;
    int rc;

    memset(&c, 0, sizeof(c));
    if (!o || !oauth_name_ok(user) || !oauth_name_ok(cred) || chal_key(user, cred, c.key) != OAUTH_OK)
        return OAUTH_ERR_INVAL;
    chal_drop(o->challenges, c.key);
    c.o = o;
    c.user = user;
    c.cred = cred;
    c.client = client;
    c.reason = reason ? reason : "-";
    rc = oauth_rc(stor_write(o->cfg.stor, cancel_apply, &c));
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}
