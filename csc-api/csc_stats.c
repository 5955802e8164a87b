/*
 * csc_stats.c - the service's counters for csc-server's /metrics, and the CRLs' freshness for its /readyz.
 *
 * Every counter is a uint64_t added to with a relaxed atomic on the request path (no lock, no order with anything
 * else: a scrape sees each counter whole, not all of them at one instant). Labels come from fixed tables: the
 * signature algorithms of csc_alg.c, the kinds of SAD refusal and of authentication failure below.
 */
#include <string.h>

#include "csc_int.h"

static const char *const sad_denial_names[CSC_SAD_DENIAL_N] = {"expired", "exhausted", "not_bound", "invalid"};
static const char *const auth_failure_names[CSC_AUTH_FAILURE_N] = {"login", "pin_otp", "enroll"};
static const char *const hsm_error_names[CSC_HSM_ERROR_N] = {"unavailable", "failed"};
static const char *const rcache_names[CSC_RCACHE_RESULT_N] = {"hit", "miss", "recheck"};

const char *csc_sad_denial_name(unsigned i)
{
    return i < CSC_SAD_DENIAL_N ? sad_denial_names[i] : "invalid";
}

const char *csc_auth_failure_name(unsigned i)
{
    return i < CSC_AUTH_FAILURE_N ? auth_failure_names[i] : "login";
}

const char *csc_hsm_error_name(unsigned i)
{
    return i < CSC_HSM_ERROR_N ? hsm_error_names[i] : "failed";
}

const char *csc_rcache_result_name(unsigned i)
{
    return i < CSC_RCACHE_RESULT_N ? rcache_names[i] : "miss";
}

static void add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

void csc_stats_rcache(csc_t *c, unsigned result)
{
    if (result < CSC_RCACHE_RESULT_N)
        add(&c->counters.read_cache[result], 1);
}

/* The kind of factor an op checks, whose refusal SAM_REFUSE_UNAUTHORIZED means "wrong factor"; -1 for the ops where it
 * means something else (a token not valid, another user's session, authorizeCheck repeating the approval's
 * outcome, which APPROVE counted already). */
static int failure_kind(unsigned op)
{
    switch (op) {
    case SAM_OP_LOGIN:
    case SAM_OP_API_LOGIN:
    case SAM_OP_ACCOUNT_PASSWORD:
        return CSC_AUTH_LOGIN;
    case SAM_OP_AUTHORIZE:
    case SAM_OP_CONSENT:
    case SAM_OP_APPROVE:
    case SAM_OP_ACCOUNT_TOTP_BEGIN:
    case SAM_OP_ACCOUNT_TOTP_FINISH:
        return CSC_AUTH_PIN_OTP;
    case SAM_OP_ENROLL_BEGIN:
    case SAM_OP_ENROLL_FINISH:
        return CSC_AUTH_ENROLL;
    default:
        return -1;
    }
}

void csc_stats_refusal(csc_t *c, unsigned op, csc_about_t about, uint32_t tag, uint32_t code)
{
    csc_counters_t *k = &c->counters;

    if (tag == SAM_T_SIGNATURE) { /* the device failed to sign (csc_err_hsm reads it the same way) */
        add(&k->hsm_errors[code == SAM_REFUSE_UNAVAILABLE ? CSC_HSM_UNAVAILABLE : CSC_HSM_FAILED], 1);
        return;
    }
    if (code == SAM_REFUSE_LOCKED) {
        add(&k->lockouts, 1);
        return;
    }
    if (about == CSC_ABOUT_SAD) {
        switch (code) {
        case SAM_REFUSE_EXPIRED: add(&k->sad_denials[CSC_SAD_EXPIRED], 1); return;
        case SAM_REFUSE_EXHAUSTED: add(&k->sad_denials[CSC_SAD_EXHAUSTED], 1); return;
        case SAM_REFUSE_NOT_BOUND: add(&k->sad_denials[CSC_SAD_NOT_BOUND], 1); return;
        case SAM_REFUSE_UNAUTHORIZED: /* another user's or credential's SAD */
        case SAM_REFUSE_NOT_FOUND:    /* unknown, malformed or revoked */
        case SAM_REFUSE_BAD_MESSAGE:  /* extendTransaction: a SAD oauth/ would not look at */
            add(&k->sad_denials[CSC_SAD_INVALID], 1);
            return;
        default: /* the credential, the device, csc-sam's own trouble: not the SAD's */
            return;
        }
    }
    int kind = failure_kind(op);
    if (code == SAM_REFUSE_UNAUTHORIZED && kind >= 0 && tag != SAM_T_TOKEN) /* the caller's token: no factor */
        add(&k->auth_failures[kind], 1);
}

void csc_stats_signed(csc_t *c, const char *oid, size_t n)
{
    const csc_sign_alg_t *all[CSC_STATS_ALGS_MAX];
    size_t n_algs = csc_sign_algs_all(all, CSC_STATS_ALGS_MAX);
    for (size_t i = 0; i < n_algs; i++)
        if (strcmp(all[i]->oid, oid) == 0) {
            add(&c->counters.signatures[i], n);
            return;
        }
}

void csc_stats_get(csc_t *c, csc_stats_t *out)
{
    const csc_sign_alg_t *all[CSC_STATS_ALGS_MAX];
    memset(out, 0, sizeof(*out));
    out->n_algs = csc_sign_algs_all(all, CSC_STATS_ALGS_MAX);
    for (size_t i = 0; i < out->n_algs; i++) {
        out->alg[i] = all[i]->oid;
        out->signatures[i] = __atomic_load_n(&c->counters.signatures[i], __ATOMIC_RELAXED);
    }
    for (size_t i = 0; i < CSC_SAD_DENIAL_N; i++)
        out->sad_denials[i] = __atomic_load_n(&c->counters.sad_denials[i], __ATOMIC_RELAXED);
    for (size_t i = 0; i < CSC_AUTH_FAILURE_N; i++)
        out->auth_failures[i] = __atomic_load_n(&c->counters.auth_failures[i], __ATOMIC_RELAXED);
    out->lockouts = __atomic_load_n(&c->counters.lockouts, __ATOMIC_RELAXED);
    for (size_t i = 0; i < CSC_HSM_ERROR_N; i++)
        out->hsm_errors[i] = __atomic_load_n(&c->counters.hsm_errors[i], __ATOMIC_RELAXED);
    for (size_t i = 0; i < CSC_RCACHE_RESULT_N; i++)
        out->read_cache[i] = __atomic_load_n(&c->counters.read_cache[i], __ATOMIC_RELAXED);
    out->sam_reachable = !__atomic_load_n(&c->sam_down, __ATOMIC_RELAXED);
    out->async_depth = csc_async_depth(c);
}

void csc_crl_status(csc_t *c, int64_t now, csc_crl_status_t *out)
{
    time_t earliest = 0;
    memset(out, 0, sizeof(*out));
    out->configured = c->crl != NULL;
    if (c->crl == NULL)
        return;
    out->count = pki_crl_count(c->crl);
    out->stale = pki_crl_stale(c->crl, (time_t)now, out->first_stale, sizeof(out->first_stale), &earliest);
    out->earliest_next_update = (int64_t)earliest;
}
