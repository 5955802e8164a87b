/*
 * oauth_challenge.c - one-time codes for the CHALLENGE authentication object
 * (CSC v2 credentials/getChallenge, v1 credentials/sendOTP with an "online" OTP).
 *
 * A code is OAUTH_CHALLENGE_DIGITS random decimal digits. It is handed to the caller for out-of-band delivery and
 * kept only as an HMAC-SHA256, bound to user and credential, with an expiry, in storage's challenges table
 * (stor_challenge_t): a code made by one node's csc-sam is checked by any node's, and a restart keeps it. The HMAC
 * key is the one csc-sam derives from the HSM's factor key at start-up (oauth_set_challenge_key: every node derives
 * the same; no database reader has it), so a stored row does not give a 6-digit code away to a dictionary.
 * One code is pending per user and credential; credentials/authorize uses it up on its first try, right or wrong (a
 * wrong one counts towards the credential's lock like any wrong factor): the row is read and deleted in one write
 * transaction (on PostgreSQL the read locks it), so two nodes cannot both use it.
 *
 * This file is the key and the check (credentials/authorize); making and cancelling a code is
 * oauth_challenge_new.c's, which only csc-sam links (the front end never makes one).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "oauth_int.h"

void oauth_set_challenge_key(oauth_t *o, const uint8_t key[OAUTH_CHALLENGE_KEY_LEN])
{
    if (o == NULL)
        return;
    if (key == NULL) {
        OPENSSL_cleanse(o->chal_key, sizeof(o->chal_key));
        o->chal_key_set = 0;
        return;
    }
    memcpy(o->chal_key, key, sizeof(o->chal_key));
    o->chal_key_set = 1;
}

/* Key of the (user, cred) pair, and the MAC of a code for it. */
int oauth_chal_key(const char *user, const char *cred, uint8_t key[32])
{
    char buf[2 * (STOR_NAME_MAX + 1)];
    size_t ul = strlen(user), cl = strlen(cred);

    memcpy(buf, user, ul + 1);
    memcpy(buf + ul + 1, cred, cl);
    return oauth_sha256(buf, ul + 1 + cl, key);
}

int oauth_chal_mac(const oauth_t *o, const uint8_t key[32], const char *code, size_t len, uint8_t mac[32])
{
    uint8_t msg[32 + OAUTH_CHALLENGE_DIGITS];
    unsigned int n = 0;
    int ok;

    if (len != OAUTH_CHALLENGE_DIGITS)
        return OAUTH_ERR_INVAL;
    if (!o->chal_key_set) /* csc-sam sets it at start (sam_factor_start); no key, no code made or checked */
        return OAUTH_ERR_INTERNAL;
    memcpy(msg, key, 32);
    memcpy(msg + 32, code, len);
    ok = HMAC(EVP_sha256(), o->chal_key, sizeof(o->chal_key), msg, sizeof(msg), mac, &n) != NULL && n == 32;
    OPENSSL_cleanse(msg, sizeof(msg));
    return ok ? OAUTH_OK : OAUTH_ERR_INTERNAL;
}

typedef struct {
    const uint8_t *key;
    stor_challenge_t rec;
    int found;
} take_ctx_t;

/* Read the pending code and delete it in the same write: whoever reads it, uses it up. */
static int take_apply(stor_txn_t *t, void *arg)
{
    take_ctx_t *c = arg;
    int rc;

    c->found = 0;
    if ((rc = stor_txn_challenge_get(t, c->key, &c->rec)) == STOR_ERR_NOTFOUND)
        return 0;
    if (rc == STOR_ERR_CORRUPT) /* an unreadable row is no code: it goes */
        return stor_txn_challenge_del(t, c->key) == STOR_OK ? 0 : STOR_ERR_CORRUPT;
    if (rc != STOR_OK || (rc = stor_txn_challenge_del(t, c->key)) != STOR_OK)
        return rc;
    c->found = 1;
    return 0;
}

int oauth_challenge_take(oauth_t *o, const char *user, const char *cred, const char *code, size_t len, int64_t now,
                         uint32_t epoch)
{
    uint8_t key[32], mac[32];
    take_ctx_t c;
    int found, rc;
    size_t i;

    if (!oauth_name_ok(user) || !oauth_name_ok(cred) || oauth_chal_key(user, cred, key) != OAUTH_OK)
        return OAUTH_ERR_DENIED;
    memset(&c, 0, sizeof(c));
    c.key = key;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, take_apply, &c))) != OAUTH_OK) {
        OPENSSL_cleanse(&c, sizeof(c));
        return rc;
    }
    /* tried once, right or wrong; one issued before an operator's reset of the user is void */
    found = c.found && c.rec.epoch == epoch;
    for (i = 0; i < len; i++)
        if (code[i] < '0' || code[i] > '9')
            found = 0;
    if (found && (c.rec.expires_at <= now || oauth_chal_mac(o, key, code, len, mac) != OAUTH_OK))
        found = 0;
    found = found && CRYPTO_memcmp(mac, c.rec.mac, 32) == 0;
    OPENSSL_cleanse(&c, sizeof(c));
    OPENSSL_cleanse(mac, sizeof(mac));
    return found ? OAUTH_OK : OAUTH_ERR_DENIED;
}
