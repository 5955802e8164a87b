/*
 * oauth_totp_rest.c - a user's TOTP secret as storage keeps it: clear (records written before secrets were sealed)
 * or sealed under the token's factor key. oauth/ knows no HSM: the process that may open sealed secrets (csc-sam)
 * gives its opener with oauth_set_totp_open(); without one only a clear secret opens.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "oauth_int.h"

void oauth_set_totp_open(oauth_t *o, oauth_totp_open_fn fn, void *arg)
{
    if (o) {
        o->totp_open = fn;
        o->totp_open_arg = arg;
    }
}

int oauth_user_totp(const oauth_t *o, const stor_user_t *u, uint8_t out[STOR_TOTP_MAX], size_t *len)
{
    *len = 0;
    if (u->totp_sealed_len != 0) {
        int rc = o->totp_open != NULL ? o->totp_open(o->totp_open_arg, u, out, len) : -2;
        if (rc != 0 || *len == 0 || *len > STOR_TOTP_MAX) {
            OPENSSL_cleanse(out, STOR_TOTP_MAX);
            *len = 0;
            return rc == -1 ? OAUTH_ERR_DENIED : OAUTH_ERR_INTERNAL;
        }
        return OAUTH_OK;
    }
    if (u->totp_secret_len == 0 || u->totp_secret_len > STOR_TOTP_MAX)
        return OAUTH_ERR_INVALID;
    memcpy(out, u->totp_secret, u->totp_secret_len);
    *len = u->totp_secret_len;
    return OAUTH_OK;
}

void oauth_user_totp_fp(const stor_user_t *u, uint8_t fp[32])
{
    uint8_t buf[8 + STOR_TOTP_MAX + STOR_TOTP_SEALED_MAX];
    uint32_t n[2] = {u->totp_secret_len <= STOR_TOTP_MAX ? u->totp_secret_len : 0,
                     u->totp_sealed_len <= STOR_TOTP_SEALED_MAX ? u->totp_sealed_len : 0};

    memcpy(buf, n, sizeof(n));
    memcpy(buf + 8, u->totp_secret, n[0]);
    memcpy(buf + 8 + n[0], u->totp_sealed, n[1]);
    SHA256(buf, 8 + n[0] + n[1], fp);
    OPENSSL_cleanse(buf, sizeof(buf));
}
