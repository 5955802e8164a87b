/*
 * oauth_secret.c - scrypt verifiers for passwords and PINs.
 *
 * Verifier layout (52 bytes):
 *   [0] version (1)  [1] log2(N)  [2] r  [3] p  [4..19] salt  [20..51] scrypt output
 * The parameters travel with the verifier so the default cost can rise later
 * without invalidating stored verifiers.
 *
 * A verification needs 128 * r * N bytes (32 MiB at the default cost) and a
 * core for about 0.1 s, and anybody can ask for one (a login with any name).
 * oauth_secret_check() lets at most verify_max run at once; as many more may
 * wait for a slot (up to OAUTH_VERIFY_WAIT_MS), and the rest are refused at
 * once (OAUTH_ERR_BUSY) instead of queueing memory and time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "oauth_int.h"

#define VERIFIER_VERSION 1
#define SALT_LEN 16
#define HASH_LEN 32
#define HDR_LEN 4
#define VERIFIER_LEN (HDR_LEN + SALT_LEN + HASH_LEN)
#define LOG2N_MIN 10
#define LOG2N_MAX 20
#define SCRYPT_R 8
#define SCRYPT_P 1
#define R_MAX 8
#define P_MAX 4
/* scrypt needs 128*r*(N+2) + 128*r*p bytes: just over 1 GiB at N = 2^20, r = 8. */
#define SCRYPT_MAXMEM ((uint64_t)1025 << 20)

_Static_assert(VERIFIER_LEN <= STOR_VERIFIER_MAX, "verifier must fit the storage field");

#ifdef CSC_TEST_HOOKS
static unsigned long derivations; /* scrypt runs of this process (oauth_int_derivations) */

unsigned long oauth_int_derivations(void)
{
    return __atomic_load_n(&derivations, __ATOMIC_RELAXED);
}
#endif

static int derive(const char *secret, size_t len, const uint8_t *salt, unsigned log2n, unsigned r, unsigned p,
                  uint8_t key[HASH_LEN])
{
    static const char empty[1] = "";
#ifdef CSC_TEST_HOOKS
    __atomic_add_fetch(&derivations, 1, __ATOMIC_RELAXED);
#endif

    if (EVP_PBE_scrypt(secret ? secret : empty, len, salt, SALT_LEN, (uint64_t)1 << log2n, r, p, SCRYPT_MAXMEM,
                       key, HASH_LEN) != 1)
        return OAUTH_ERR_INTERNAL;
    return OAUTH_OK;
}

int oauth_secret_hash(const char *secret, size_t len, unsigned log2n, uint8_t out[STOR_VERIFIER_MAX],
                      uint32_t *out_len)
{
    uint8_t key[HASH_LEN];
    int rc = OAUTH_ERR_INVAL;

    if (out_len)
        *out_len = 0;
    if (!log2n)
        log2n = OAUTH_SCRYPT_LOG2N;
    if (!out || !out_len || (!secret && len) || len > OAUTH_SECRET_MAX || log2n < LOG2N_MIN || log2n > LOG2N_MAX)
        goto out;
    out[0] = VERIFIER_VERSION;
    out[1] = (uint8_t)log2n;
    out[2] = SCRYPT_R;
    out[3] = SCRYPT_P;
    rc = OAUTH_ERR_INTERNAL;
    if (RAND_bytes(out + HDR_LEN, SALT_LEN) != 1)
        goto out;
    if ((rc = derive(secret, len, out + HDR_LEN, log2n, SCRYPT_R, SCRYPT_P, key)) != OAUTH_OK)
        goto out;
    memcpy(out + HDR_LEN + SALT_LEN, key, HASH_LEN);
    *out_len = VERIFIER_LEN;
out:
    OPENSSL_cleanse(key, sizeof(key));
    if (rc != OAUTH_OK && out)
        OPENSSL_cleanse(out, STOR_VERIFIER_MAX);
    return rc;
}

static int verifier_ok(const uint8_t *v, size_t vlen)
{
    return v && vlen == VERIFIER_LEN && v[0] == VERIFIER_VERSION && v[1] >= LOG2N_MIN && v[1] <= LOG2N_MAX &&
           v[2] >= 1 && v[2] <= R_MAX && v[3] >= 1 && v[3] <= P_MAX;
}

int oauth_secret_verify(const uint8_t *verifier, size_t vlen, const char *secret, size_t len)
{
    uint8_t key[HASH_LEN];
    int rc = OAUTH_ERR_DENIED;

    if (!verifier_ok(verifier, vlen) || (!secret && len) || len > OAUTH_SECRET_MAX)
        goto out;
    if (derive(secret, len, verifier + HDR_LEN, verifier[1], verifier[2], verifier[3], key) != OAUTH_OK)
        goto out;
    if (CRYPTO_memcmp(key, verifier + HDR_LEN + SALT_LEN, HASH_LEN) == 0)
        rc = OAUTH_OK;
out:
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

/* ---- the cap on verifications at once ---------------------------------------------- */

struct oauth_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* a slot was freed */
    unsigned max;        /* verifications at once; also the most that may wait */
    unsigned running, waiting;
};

int oauth_gate_new(unsigned max, struct oauth_gate **out)
{
    struct oauth_gate *g = calloc(1, sizeof(*g));
    pthread_condattr_t ca;
    int ok;

    *out = NULL;
    if (!g)
        return OAUTH_ERR_INTERNAL;
    g->max = max ? max : 1;
    if (pthread_condattr_init(&ca) != 0) {
        free(g);
        return OAUTH_ERR_INTERNAL;
    }
    ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&g->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok) {
        free(g);
        return OAUTH_ERR_INTERNAL;
    }
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        pthread_cond_destroy(&g->cv);
        free(g);
        return OAUTH_ERR_INTERNAL;
    }
    *out = g;
    return OAUTH_OK;
}

void oauth_gate_free(struct oauth_gate *g)
{
    if (!g)
        return;
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

int oauth_gate_enter(struct oauth_gate *g)
{
    struct timespec until;
    int rc = OAUTH_OK;

    pthread_mutex_lock(&g->mu);
    if (g->running >= g->max && g->waiting >= g->max) {
        rc = OAUTH_ERR_BUSY;
    } else if (g->running >= g->max) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += OAUTH_VERIFY_WAIT_MS / 1000;
        until.tv_nsec += (long)(OAUTH_VERIFY_WAIT_MS % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        g->waiting++;
        while (g->running >= g->max)
            if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT && g->running >= g->max) {
                rc = OAUTH_ERR_BUSY;
                break;
            }
        g->waiting--;
    }
    if (rc == OAUTH_OK)
        g->running++;
    pthread_mutex_unlock(&g->mu);
    return rc;
}

void oauth_gate_leave(struct oauth_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->running--;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

#ifdef CSC_TEST_HOOKS
unsigned oauth_gate_waiting(struct oauth_gate *g)
{
    unsigned n;

    pthread_mutex_lock(&g->mu);
    n = g->waiting;
    pthread_mutex_unlock(&g->mu);
    return n;
}
#endif

int oauth_secret_check(const oauth_t *o, const uint8_t *verifier, size_t vlen, const char *secret, size_t len)
{
    int rc;

    if (!o || !o->gate)
        return OAUTH_ERR_DENIED;
    if (oauth_gate_enter(o->gate) != OAUTH_OK)
        return OAUTH_ERR_BUSY;
    rc = oauth_secret_verify(verifier, vlen, secret, len);
    oauth_gate_leave(o->gate);
    return rc;
}
