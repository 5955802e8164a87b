/*
 * oauth_challenge_new.c - making a one-time code for the CHALLENGE object (oauth_challenge_new) and forgetting it
 * when its delivery failed (oauth_challenge_cancel). Apart from the table (oauth_challenge.c) so that only the
 * process that delivers codes, csc-sam, links it: csc-server must not be able to make one (tests/unit/server's
 * check_symbols).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "oauth_int.h"

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

/* Store the pending code of c->key: a pending, unexpired one is replaced only OAUTH_CHALLENGE_RESEND seconds after
 * it was issued (each code costs a message); a new pair needs room among the unexpired ones (o->chal_cap: the
 * expired ones are purged first). Sets c->rc (OAUTH_OK, _RATE, _FULL). @return 0 or a storage error. */
static int chal_store(stor_txn_t *t, chal_ctx_t *c)
{
    stor_challenge_t rec;
    size_t n = 0;
    int rc, purged = 0;

    memset(&rec, 0, sizeof(rec));
    rc = stor_txn_challenge_get(t, c->key, &rec);
    if (rc == STOR_OK && rec.expires_at > c->now && rec.issued_at + OAUTH_CHALLENGE_RESEND > c->now) {
        c->rc = OAUTH_ERR_RATE;
        return 0;
    }
    if (rc == STOR_ERR_NOTFOUND) {
        if ((rc = stor_txn_challenge_count(t, &n)) != STOR_OK)
            return rc;
        if (n >= c->o->chal_cap) {
            if ((rc = stor_txn_challenge_purge(t, c->now, &purged)) != STOR_OK ||
                (rc = stor_txn_challenge_count(t, &n)) != STOR_OK)
                return rc;
        }
        if (n >= c->o->chal_cap) {
            c->rc = OAUTH_ERR_FULL;
            return 0;
        }
    } else if (rc != STOR_OK && rc != STOR_ERR_CORRUPT) { /* a corrupt row is replaced */
        return rc;
    }
    memcpy(rec.key, c->key, 32);
    memcpy(rec.mac, c->mac, 32);
    rec.issued_at = c->now;
    rec.expires_at = c->now + (int64_t)c->o->cfg.challenge_ttl;
    rec.epoch = c->u.epoch;
    rc = stor_txn_challenge_put(t, &rec);
    OPENSSL_cleanse(&rec, sizeof(rec));
    if (rc != STOR_OK)
        return rc;
    c->rc = OAUTH_OK;
    return 0;
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
        else if ((rc = chal_store(t, c)) != 0)
            return rc;
    }
    if (c->rc == OAUTH_OK)
        snprintf(detail, sizeof(detail), "object %s issued, valid %us", OAUTH_CHALLENGE_ID, c->o->cfg.challenge_ttl);
    else
        snprintf(detail, sizeof(detail), "object %s denied: %s", OAUTH_CHALLENGE_ID, chal_reason(c->rc));
    /* the code and its record are written together or not at all */
    if ((rc = chal_audit(t, c, c->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, detail)) < 0)
        return rc;
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
    if ((rc = chal_code(code)) != OAUTH_OK || (rc = oauth_chal_key(user, cred, c.key)) != OAUTH_OK ||
        (rc = oauth_chal_mac(o, c.key, code, OAUTH_CHALLENGE_DIGITS, c.mac)) != OAUTH_OK)
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

    /* the code is forgotten with the record of why */
    if ((rc = stor_txn_challenge_del(t, c->key)) != STOR_OK && rc != STOR_ERR_NOTFOUND)
        return rc;
    snprintf(detail, sizeof(detail), "object %s delivery failed: %s", OAUTH_CHALLENGE_ID, c->reason);
    rc = chal_audit(t, c, STOR_RES_ERROR, detail);
    return rc < 0 ? rc : 0;
}

int oauth_challenge_cancel(oauth_t *o, const char *user, const char *cred, const char *client, const char *reason)
{
    chal_ctx_t c;
    int rc;

    memset(&c, 0, sizeof(c));
    if (!o || !oauth_name_ok(user) || !oauth_name_ok(cred) || oauth_chal_key(user, cred, c.key) != OAUTH_OK)
        return OAUTH_ERR_INVAL;
    c.o = o;
    c.user = user;
    c.cred = cred;
    c.client = client;
    c.reason = reason ? reason : "-";
    rc = oauth_rc(stor_write(o->cfg.stor, cancel_apply, &c));
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}
