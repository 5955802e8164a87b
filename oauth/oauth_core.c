/*
 * oauth_core.c - the oauth handle, error strings, and helpers shared by the
 * token and SAD code (random values, hashing, audit records).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "oauth_int.h"

const char *oauth_strerror(int rc)
{
    switch (rc) {
    case OAUTH_OK: return "success";
    case OAUTH_ERR_DENIED: return "authentication failed";
    case OAUTH_ERR_LOCKED: return "locked after too many failures";
    case OAUTH_ERR_INVALID: return "unknown, malformed or revoked token or SAD";
    case OAUTH_ERR_EXPIRED: return "expired";
    case OAUTH_ERR_NOT_AUTHORIZED: return "digest or hash algorithm not authorized by the SAD";
    case OAUTH_ERR_EXHAUSTED: return "SAD budget exhausted";
    case OAUTH_ERR_MISMATCH: return "SAD belongs to another user or credential";
    case OAUTH_ERR_DISABLED: return "user or credential disabled";
    case OAUTH_ERR_STORAGE: return "storage failure";
    case OAUTH_ERR_UNAVAILABLE: return "the database cannot be reached now";
    case OAUTH_ERR_INTERNAL: return "internal error";
    case OAUTH_ERR_INVAL: return "invalid argument";
    case OAUTH_ERR_RATE: return "too many attempts from this address";
    case OAUTH_ERR_FULL: return "too many pending requests or sessions";
    case OAUTH_ERR_PKCE: return "code_verifier does not match the code_challenge";
    case OAUTH_ERR_REUSED: return "authorization code or refresh token used twice";
    case OAUTH_ERR_BUSY: return "too many password or PIN checks at once";
    default: return "unknown oauth error";
    }
}

static void set_defaults(oauth_config_t *c)
{
    if (!c->access_ttl)
        c->access_ttl = 3600;
    if (!c->refresh_ttl)
        c->refresh_ttl = 30u * 24 * 3600;
    if (!c->sad_ttl)
        c->sad_ttl = 300;
    if (!c->max_failures)
        c->max_failures = 5;
    if (!c->lock_seconds)
        c->lock_seconds = 900;
    if (!c->totp_window)
        c->totp_window = 1;
    if (!c->code_ttl)
        c->code_ttl = 60;
    if (!c->par_ttl)
        c->par_ttl = 90;
    if (!c->credential_token_ttl)
        c->credential_token_ttl = 300;
    if (!c->session_idle)
        c->session_idle = 300;
    if (!c->session_max)
        c->session_max = 900;
    if (!c->rate_window)
        c->rate_window = 60;
    if (!c->rate_max)
        c->rate_max = 20;
    if (!c->challenge_ttl)
        c->challenge_ttl = 300;
    if (!c->approval_ttl)
        c->approval_ttl = 300;
    if (!c->lock_max_seconds)
        c->lock_max_seconds = 86400;
    if (!c->scrypt_log2n)
        c->scrypt_log2n = OAUTH_SCRYPT_LOG2N;
    if (!c->fail_window)
        c->fail_window = 60;
    if (!c->fail_entries)
        c->fail_entries = 4096;
    if (!c->verify_max)
        c->verify_max = 2;
}

/* A verifier of 32 random bytes that are wiped at once: no password matches it, and checking one against it
 * costs what checking a user's does (same parameters as new verifiers). */
static int make_dummy(oauth_t *o)
{
    uint8_t secret[32];
    int rc = OAUTH_ERR_INTERNAL;

    if (RAND_bytes(secret, sizeof(secret)) == 1)
        rc = oauth_secret_hash((const char *)secret, sizeof(secret), o->cfg.scrypt_log2n, o->dummy, &o->dummy_len);
    OPENSSL_cleanse(secret, sizeof(secret));
    return rc;
}

int oauth_new(const oauth_config_t *cfg, oauth_t **out)
{
    oauth_t *o = NULL;
    int rc = OAUTH_ERR_INVAL;

    if (out)
        *out = NULL;
    if (!cfg || !out || !cfg->stor || cfg->totp_window > OAUTH_TOTP_WINDOW_MAX)
        goto out;
    rc = OAUTH_ERR_INTERNAL;
    if (!(o = calloc(1, sizeof(*o))))
        goto out;
    o->cfg = *cfg;
    set_defaults(&o->cfg);
    o->sessions_cap = OAUTH_SESSIONS_MAX;
    o->par_cap = OAUTH_PARS_MAX;
    o->chal_cap = OAUTH_CHALLENGES_MAX;
    if (oauth_rate_new(&o->rate) != OAUTH_OK ||
        oauth_ticket_init(o) != OAUTH_OK || oauth_fails_new(&o->cfg, &o->fails) != OAUTH_OK ||
        oauth_gate_new(o->cfg.verify_max, &o->gate) != OAUTH_OK || oauth_hints_new(&o->hints) != OAUTH_OK)
        goto out;
    if ((rc = make_dummy(o)) != OAUTH_OK)
        goto out;
    *out = o;
    o = NULL;
    rc = OAUTH_OK;
out:
    oauth_free(o);
    return rc;
}

void oauth_free(oauth_t *o)
{
    if (!o)
        return;
    oauth_rate_free(o->rate);
    oauth_fails_end(o, o->fails); /* counts of failed logins not written yet: storage is still open here */
    oauth_gate_free(o->gate);
    oauth_hints_free(o->hints);
    OPENSSL_clear_free(o, sizeof(*o)); /* the ticket key with it */
}

#ifdef CSC_TEST_HOOKS
void oauth_int_set_skew(oauth_t *o, int64_t seconds)
{
    o->skew = seconds;
}

void oauth_chal_set_cap(oauth_t *o, size_t cap)
{
    if (o && cap && cap <= OAUTH_CHALLENGES_MAX)
        o->chal_cap = cap;
}

void oauth_int_set_caps(oauth_t *o, size_t sessions, size_t pars, size_t addrs)
{
    if (sessions)
        o->sessions_cap = sessions;
    if (pars)
        o->par_cap = pars;
    if (addrs)
        oauth_rate_set_cap(o->rate, addrs);
}
#endif

const oauth_config_t *oauth_config(const oauth_t *o)
{
    return o ? &o->cfg : NULL;
}

/* ---- helpers ------------------------------------------------------------ */

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int oauth_sha256(const void *in, size_t len, uint8_t out[32])
{
    unsigned int n = 0;

    if (EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return OAUTH_ERR_INTERNAL;
    return OAUTH_OK;
}

int oauth_token_new(char value[OAUTH_TOKEN_BUFLEN], uint8_t hash[32])
{
    uint8_t raw[32];
    int rc = OAUTH_ERR_INTERNAL;

    value[0] = '\0';
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        goto out;
    oauth_b64_encode(raw, sizeof(raw), value, OAUTH_B64_URL);
    if ((rc = oauth_sha256(value, OAUTH_TOKEN_LEN, hash)) != OAUTH_OK)
        OPENSSL_cleanse(value, OAUTH_TOKEN_BUFLEN);
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    return rc;
}

int oauth_token_hash(const char *value, size_t len, uint8_t hash[32])
{
    size_t i;

    memset(hash, 0, 32);
    if (!value || len != OAUTH_TOKEN_LEN)
        return OAUTH_ERR_INVALID;
    for (i = 0; i < len; i++)
        if (!is_b64url(value[i]))
            return OAUTH_ERR_INVALID;
    return oauth_sha256(value, len, hash);
}

int oauth_session_csrf(const char *sid, char csrf[OAUTH_TOKEN_BUFLEN])
{
    static const char label[] = "csc session csrf v1";
    uint8_t mac[32];
    unsigned n = 0;
    int ok;

    csrf[0] = '\0';
    if (!sid || strnlen(sid, OAUTH_TOKEN_BUFLEN) != OAUTH_TOKEN_LEN)
        return OAUTH_ERR_INVALID;
    ok = HMAC(EVP_sha256(), sid, OAUTH_TOKEN_LEN, (const uint8_t *)label, sizeof(label) - 1, mac, &n) != NULL &&
         n == sizeof(mac);
    if (ok)
        oauth_b64_encode(mac, sizeof(mac), csrf, OAUTH_B64_URL);
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok ? OAUTH_OK : OAUTH_ERR_INTERNAL;
}

int oauth_token_ref(const uint8_t hash[32], uint8_t ref[16])
{
    uint8_t h2[32];
    int rc = oauth_sha256(hash, 32, h2);

    memcpy(ref, h2, 16);
    return rc;
}

int oauth_rc(int rc)
{
    if (rc >= 0)
        return OAUTH_OK;
    if (rc <= OAUTH_ERR_DENIED && rc >= OAUTH_ERR_REUSED)
        return rc;
    if (rc == STOR_ERR_UNAVAILABLE)
        return OAUTH_ERR_UNAVAILABLE;
    return OAUTH_ERR_STORAGE;
}

int64_t oauth_now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (int64_t)time(NULL);
    return (int64_t)ts.tv_sec;
}

int64_t oauth_clock(const oauth_t *o)
{
#ifdef CSC_TEST_HOOKS
    return oauth_now() + o->skew;
#else
    (void)o;
    return oauth_now();
#endif
}

int oauth_name_ok(const char *s)
{
    return s && s[0] && strnlen(s, STOR_NAME_MAX + 1) <= STOR_NAME_MAX;
}

int oauth_id_ok(const char *s)
{
    size_t i, n;

    if (!oauth_name_ok(s))
        return 0;
    n = strlen(s);
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

void oauth_audit_client(char out[64], const char *client_id, const char *addr)
{
    /* Truncation is wanted: the field is 64 bytes, and the id is the part that matters. */
    int n = snprintf(out, 64, "oauth:%s%s%s", client_id ? client_id : "", addr ? "@" : "", addr ? addr : "");

    if (n < 0)
        out[0] = '\0';
}

void oauth_copy(char *dst, size_t dstsz, const char *src)
{
    size_t n;

    if (!dstsz)
        return;
    n = src ? strnlen(src, dstsz - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void oauth_audit_init(stor_audit_t *rec, uint32_t event, uint32_t result, const char *user, const char *cred,
                      const char *client)
{
    memset(rec, 0, sizeof(*rec));
    rec->event = event;
    rec->result = result;
    oauth_copy(rec->user, sizeof(rec->user), user);
    oauth_copy(rec->cred, sizeof(rec->cred), cred);
    oauth_copy(rec->client, sizeof(rec->client), client);
}

int64_t oauth_lock_failure(const oauth_config_t *cfg, uint32_t *failed, int64_t *locked_until, uint32_t *locks,
                           int64_t now)
{
    int64_t cap = cfg->lock_max_seconds > cfg->lock_seconds ? cfg->lock_max_seconds : cfg->lock_seconds;
    int64_t secs = cfg->lock_seconds;
    uint32_t i;

    if (++*failed < cfg->max_failures)
        return 0;
    *failed = 0;
    for (i = 0; i < *locks && secs < cap; i++)
        secs *= 2;
    if (secs > cap)
        secs = cap;
    if (*locks < UINT32_MAX)
        (*locks)++;
    *locked_until = now + secs;
    return secs;
}

int oauth_lock_success(uint32_t *failed, int64_t *locked_until, uint32_t *locks)
{
    int changed = *failed || *locked_until || *locks;

    *failed = 0;
    *locked_until = 0;
    *locks = 0;
    return changed;
}

int oauth_check_password(const oauth_t *o, const stor_user_t *u, int usable, const char *pw, size_t pw_len)
{
    const uint8_t *v = o->dummy;
    size_t vlen = o->dummy_len;
    int rc;

    if (usable && u->pw_verifier_len) {
        v = u->pw_verifier;
        vlen = u->pw_verifier_len;
    }
    if ((rc = oauth_secret_check(o, v, vlen, pw, pw_len)) == OAUTH_ERR_BUSY)
        return rc; /* nothing was checked */
    return usable && rc == OAUTH_OK ? OAUTH_OK : OAUTH_ERR_DENIED;
}
