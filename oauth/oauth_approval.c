/*
 * oauth_approval.c - authorization approved by the user outside the client
 * (CSC API v2.0.0.2 sec. 8.3.1.1, 11.6, 11.7): csc-sam's part (filing, deciding, answering).
 *
 * For a credential whose auth expression names APPROVAL, credentials/authorize does not take factors from the
 * client: the request (user, credential, numSignatures, digests) waits in storage (user_approvals) under a random
 * handle, which the client polls with credentials/authorizeCheck. The user signs in on the service's approval page
 * (password + TOTP) and approves (with the credential's PIN when the expression names PIN) or refuses; the decision
 * is recorded in the request (no SAD is kept anywhere but as its hash in the SAD table). authorizeCheck then issues
 * the SAD through the same code as credentials/authorize, with the APPROVAL factor (and the PIN the decision
 * checked) verified, in the write that removes the request: one answer. Each step is one storage transaction, so a
 * request yields one decision across csc-sam and csc-server and survives a restart. Requests expire after
 * approval_ttl seconds; at most OAUTH_APPROVALS_MAX are kept. The page's listing is oauth_approval_list.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "oauth_int.h"

static stor_user_approval_t *appr_new(void)
{
    return calloc(1, sizeof(stor_user_approval_t));
}

static void appr_free(stor_user_approval_t *a)
{
    if (a)
        OPENSSL_clear_free(a, sizeof(*a));
}

/* The request of a stored approval as oauth_authorize_pre takes it (ptrs: STOR_DIGESTS_MAX pointers into a). */
static void appr_request(const stor_user_approval_t *a, const uint8_t **ptrs, const char *client,
                         oauth_sad_request_t *req)
{
    for (uint32_t i = 0; i < a->n_digests; i++)
        ptrs[i] = a->digests + (size_t)i * a->digest_len;
    *req = (oauth_sad_request_t){
        .user = a->user,
        .cred = a->cred,
        .num_signatures = a->num_signatures,
        .hash_alg = a->n_digests ? a->hash_alg : NULL,
        .digests = ptrs,
        .digest_len = a->digest_len,
        .n_digests = a->n_digests,
        .client = client,
    };
}

/* ---- authorize: a new pending request ------------------------------------------------- */

typedef struct {
    const oauth_t *o;
    const oauth_sad_request_t *req;
    int64_t now;
    stor_cred_t *cred;
    stor_user_t user;
    stor_user_approval_t *a;   /* filled but for what the credential and user say */
    int rc;
} new_ctx_t;

static int new_write(stor_txn_t *t, void *arg)
{
    new_ctx_t *c = arg;
    size_t n = 0;
    int purged = 0, rc;

    c->rc = OAUTH_ERR_INVALID;
    if ((rc = stor_txn_cred_get(t, c->req->cred, c->cred)) == STOR_ERR_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (strcmp(c->cred->owner, c->req->user) != 0 || c->cred->auth_mode != STOR_AUTH_EXPLICIT ||
        !oauth_expr_names(c->cred->auth_expr, OAUTH_APPROVAL_ID))
        return 0;
    if ((rc = stor_txn_user_get(t, c->req->user, &c->user)) == STOR_ERR_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (c->cred->locked_until > c->now) {
        c->rc = OAUTH_ERR_LOCKED;
        return 0;
    }
    if (c->user.status != STOR_USER_ACTIVE || c->cred->status != STOR_CRED_ENABLED ||
        stor_cred_pin_unset(c->cred, c->user.name)) {
        c->rc = OAUTH_ERR_DISABLED;
        return 0;
    }
    /* The bound: expired requests make room first. */
    if ((rc = stor_txn_user_approval_count(t, &n)) != 0)
        return rc;
    if (n >= OAUTH_APPROVALS_MAX) {
        if ((rc = stor_txn_user_approval_purge(t, c->now, &purged)) != 0 ||
            (rc = stor_txn_user_approval_count(t, &n)) != 0)
            return rc;
        if (n >= OAUTH_APPROVALS_MAX) {
            c->rc = OAUTH_ERR_FULL;
            return 0;
        }
    }
    c->a->needs_pin = oauth_expr_names(c->cred->auth_expr, "PIN") ? 1 : 0;
    c->a->epoch = c->user.epoch;
    c->rc = OAUTH_OK;
    return stor_txn_user_approval_put(t, c->a, 1);
}

int oauth_approval_new(oauth_t *o, const oauth_sad_request_t *req, char handle[OAUTH_TOKEN_BUFLEN], unsigned *ttl)
{
    new_ctx_t c;
    int rc;

    if (handle)
        handle[0] = '\0';
    if (ttl)
        *ttl = 0;
    if (!o || !req || !handle || !ttl || !oauth_name_ok(req->user) || !oauth_name_ok(req->cred) ||
        req->num_signatures < 1 || !oauth_digest_args_ok(req->hash_alg, req->digests, req->digest_len,
                                                         req->n_digests, 1))
        return OAUTH_ERR_INVAL;
    memset(&c, 0, sizeof(c));
    c.o = o;
    c.req = req;
    c.now = oauth_clock(o);
    c.cred = calloc(1, sizeof(*c.cred));
    c.a = appr_new();
    rc = OAUTH_ERR_INTERNAL;
    if (!c.cred || !c.a)
        goto out;
    if ((rc = oauth_token_new(handle, c.a->hash)) != OAUTH_OK)
        goto out;
    if (RAND_bytes(c.a->ref, sizeof(c.a->ref)) != 1) {
        rc = OAUTH_ERR_INTERNAL;
        goto out;
    }
    c.a->state = STOR_UAPPR_PENDING;
    oauth_copy(c.a->user, sizeof(c.a->user), req->user);
    oauth_copy(c.a->cred, sizeof(c.a->cred), req->cred);
    oauth_copy(c.a->client, sizeof(c.a->client), req->client);
    c.a->num_signatures = req->num_signatures;
    c.a->created_at = c.now;
    c.a->expires_at = c.now + (int64_t)o->cfg.approval_ttl;
    if (req->n_digests) {
        oauth_copy(c.a->hash_alg, sizeof(c.a->hash_alg), req->hash_alg);
        c.a->digest_len = (uint32_t)req->digest_len;
        c.a->n_digests = (uint32_t)req->n_digests;
        oauth_digests_flat(c.a->digests, req->digests, req->digest_len, req->n_digests);
    }
    if ((rc = oauth_rc(stor_write(o->cfg.stor, new_write, &c))) == OAUTH_OK)
        rc = c.rc;
    if (rc == OAUTH_OK)
        *ttl = o->cfg.approval_ttl;
out:
    if (rc != OAUTH_OK)
        OPENSSL_cleanse(handle, OAUTH_TOKEN_BUFLEN);
    if (c.cred)
        OPENSSL_clear_free(c.cred, sizeof(*c.cred));
    OPENSSL_cleanse(&c.user, sizeof(c.user));
    appr_free(c.a);
    return rc;
}

/* ---- the page: decide ------------------------------------------------------------------- */

typedef struct {
    const oauth_t *o;
    const char *user;
    const uint8_t *ref;
    int64_t now;
    stor_user_approval_t *a;   /* the request found (find), re-read in the write (decide) */
    int approve;
    int pin_given;
    const char *client;        /* the page, for the STOR_EV_APPROVAL record */
    int found;
} dec_ctx_t;

static int pending_of(const stor_user_approval_t *a, const char *user, int64_t now)
{
    return a->state == STOR_UAPPR_PENDING && a->expires_at > now && strcmp(a->user, user) == 0;
}

/* The user's pending request named ref (a walk of the user's rows: the table is bounded). */
static int find_one(const stor_user_approval_t *a, void *arg)
{
    dec_ctx_t *d = arg;
    if (!pending_of(a, d->user, d->now) || CRYPTO_memcmp(a->ref, d->ref, 16) != 0)
        return 0;
    memcpy(d->a, a, sizeof(*a));
    d->found = 1;
    return 1;
}

static int find_txn(stor_txn_t *t, void *arg)
{
    dec_ctx_t *d = arg;
    int rc;
    d->found = 0;
    rc = stor_txn_user_approval_each(t, d->user, find_one, d);
    return rc == 1 ? 0 : rc;
}

/* In the decision's write: the request is still the user's, pending and unexpired (else another decision came
 * first, in this process or the other). */
static int decide_check(stor_txn_t *t, void *arg, int *result)
{
    dec_ctx_t *d = arg;
    uint8_t key[32];
    int rc;

    memcpy(key, d->a->hash, 32);
    *result = OAUTH_ERR_INVALID;
    if ((rc = stor_txn_user_approval_get(t, key, d->a)) == STOR_ERR_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (pending_of(d->a, d->user, d->now) && CRYPTO_memcmp(d->a->ref, d->ref, 16) == 0)
        *result = OAUTH_OK;
    return 0;
}

/* The decision recorded in the request and audited (STOR_EV_APPROVAL), in the same write. */
static int decide_done(stor_txn_t *t, void *arg, int outcome)
{
    dec_ctx_t *d = arg;
    stor_user_approval_t *a = d->a;
    stor_audit_t rec;
    const char *why = NULL;
    int rc;

    if (outcome == OAUTH_ERR_DENIED)
        return 0; /* a wrong PIN (counted on the credential's lock): the user may try again */
    if (!d->approve) {
        a->state = STOR_UAPPR_REFUSED;
        why = "by the user";
    } else if (outcome == OAUTH_OK) {
        a->state = STOR_UAPPR_APPROVED;
        a->verified = OAUTH_FACTOR_APPROVAL | (d->pin_given ? OAUTH_FACTOR_PIN : 0);
    } else if (outcome == OAUTH_ERR_LOCKED) {
        a->state = STOR_UAPPR_LOCKED;
        why = "credential locked";
    } else {
        a->state = STOR_UAPPR_REFUSED;
        why = "credential not usable";
    }
    if ((rc = stor_txn_user_approval_put(t, a, 0)) < 0)
        return rc;
    oauth_audit_init(&rec, STOR_EV_APPROVAL, a->state == STOR_UAPPR_APPROVED ? STOR_RES_OK : STOR_RES_DENIED, a->user,
                     a->cred, d->client);
    memcpy(rec.authz_ref, a->ref, 16);
    snprintf(rec.detail, sizeof(rec.detail), "%s numSignatures %u hashAlgorithmOID %s%s%s",
             a->state == STOR_UAPPR_APPROVED ? "approved" : "refused", a->num_signatures,
             a->hash_alg[0] ? a->hash_alg : "-", why ? ": " : "", why ? why : "");
    rec.digest_len = a->digest_len;
    rec.n_digests = a->n_digests;
    rec.digests = a->n_digests ? a->digests : NULL;
    rc = stor_txn_audit_append(t, &rec);
    return rc < 0 ? rc : 0;
}

/* A refusal by the user: no factor to check, the request re-read and decided in one write. */
static int refuse_write(stor_txn_t *t, void *arg)
{
    dec_ctx_t *d = arg;
    int result, rc = decide_check(t, d, &result);
    if (rc < 0)
        return rc;
    d->found = result == OAUTH_OK;
    return d->found ? decide_done(t, d, OAUTH_OK) : 0;
}

int oauth_approval_decide(oauth_t *o, const char *user, const uint8_t ref[16], int approve, const char *pin,
                          size_t pin_len, const char *client)
{
    dec_ctx_t d;
    int rc;

    if (!o || !user || !ref || !oauth_name_ok(user))
        return OAUTH_ERR_INVAL;
    memset(&d, 0, sizeof(d));
    d.o = o;
    d.user = user;
    d.ref = ref;
    d.now = oauth_clock(o);
    d.approve = approve != 0;
    d.pin_given = approve && pin != NULL;
    d.client = client;
    if (!(d.a = appr_new()))
        return OAUTH_ERR_INTERNAL;
    if ((rc = oauth_rc(stor_read(o->cfg.stor, find_txn, &d))) != OAUTH_OK)
        goto out;
    if (!d.found) {
        rc = OAUTH_ERR_INVALID; /* unknown, another user's, decided or expired: one answer */
        goto out;
    }
    if (!d.approve) {
        if ((rc = oauth_rc(stor_write(o->cfg.stor, refuse_write, &d))) == OAUTH_OK && !d.found)
            rc = OAUTH_ERR_INVALID;
        goto out;
    }
    /* Approval: the factors of credentials/authorize (the PIN here, APPROVAL being this decision), checked and
     * counted by the same code, in a write that records the decision in the request instead of issuing a SAD. */
    {
        const uint8_t **ptrs = calloc(STOR_DIGESTS_MAX, sizeof(*ptrs));
        stor_user_approval_t *copy = appr_new();
        oauth_sad_request_t req;
        char none[OAUTH_TOKEN_BUFLEN];
        unsigned exp = 0;
        if (!ptrs || !copy) {
            free(ptrs);
            appr_free(copy);
            rc = OAUTH_ERR_INTERNAL;
            goto out;
        }
        /* The request's fields stay put while the write re-reads d.a. */
        memcpy(copy, d.a, sizeof(*copy));
        appr_request(copy, ptrs, client, &req);
        oauth_factors_t f = {d.pin_given ? pin : NULL, d.pin_given ? pin_len : 0, NULL, 0, NULL, 0};
        oauth_authz_hook_t hook = {.check = decide_check, .done = decide_done, .arg = &d, .no_sad = 1};
        rc = oauth_authorize_pre(o, &req, &f, OAUTH_FACTOR_APPROVAL, copy->epoch, &hook, none, &exp);
        OPENSSL_cleanse(none, sizeof(none));
        free(ptrs);
        appr_free(copy);
    }
out:
    appr_free(d.a);
    return rc;
}

/* ---- authorizeCheck ---------------------------------------------------------------------- */

typedef struct {
    const char *user;
    uint8_t key[32];
    int64_t now;
    stor_user_approval_t *a;   /* APPROVED: the request, to issue its SAD */
    int rc;
} chk_ctx_t;

/* The outcome of the request. A final answer other than a SAD removes it here; an approved one is removed in the
 * write that issues its SAD (issue_check). */
static int check_write(stor_txn_t *t, void *arg)
{
    chk_ctx_t *c = arg;
    int rc = stor_txn_user_approval_get(t, c->key, c->a);

    c->rc = OAUTH_ERR_INVALID;
    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (strcmp(c->a->user, c->user) != 0)
        return 0; /* another user's handle stays as it is */
    if (c->a->expires_at <= c->now)
        c->rc = OAUTH_ERR_EXPIRED; /* a request (or its outcome) is kept approval_ttl seconds */
    else if (c->a->state == STOR_UAPPR_PENDING)
        return c->rc = OAUTH_PENDING, 0;
    else if (c->a->state == STOR_UAPPR_APPROVED)
        return c->rc = OAUTH_OK, 0;
    else
        c->rc = c->a->state == STOR_UAPPR_LOCKED ? OAUTH_ERR_LOCKED : OAUTH_ERR_DENIED;
    return stor_txn_user_approval_del(t, c->key);
}

/* In the write that issues the SAD: the approved request is still there (no other check took it) and goes. */
static int issue_check(stor_txn_t *t, void *arg, int *result)
{
    chk_ctx_t *c = arg;
    stor_user_approval_t *a = malloc(sizeof(*a));
    int rc;

    *result = OAUTH_ERR_INVALID;
    if (!a)
        return STOR_ERR_NOMEM;
    rc = stor_txn_user_approval_get(t, c->key, a);
    if (rc == 0 && a->state == STOR_UAPPR_APPROVED && a->expires_at > c->now && strcmp(a->user, c->user) == 0 &&
        (rc = stor_txn_user_approval_del(t, c->key)) == 0)
        *result = OAUTH_OK;
    appr_free(a);
    return rc == STOR_ERR_NOTFOUND ? 0 : rc;
}

int oauth_approval_check(oauth_t *o, const char *user, const char *handle, size_t len, char sad[OAUTH_TOKEN_BUFLEN],
                         unsigned *expires_in)
{
    chk_ctx_t c;
    int rc;

    if (sad)
        sad[0] = '\0';
    if (expires_in)
        *expires_in = 0;
    if (!o || !user || !sad || !expires_in)
        return OAUTH_ERR_INVAL;
    memset(&c, 0, sizeof(c));
    if (!oauth_name_ok(user) || oauth_token_hash(handle, len, c.key) != OAUTH_OK)
        return OAUTH_ERR_INVALID;
    c.user = user;
    c.now = oauth_clock(o);
    if (!(c.a = appr_new()))
        return OAUTH_ERR_INTERNAL;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, check_write, &c))) != OAUTH_OK || (rc = c.rc) != OAUTH_OK)
        goto out;
    /* Approved: the SAD, issued now as credentials/authorize would (audited STOR_EV_AUTHORIZE, for the client that
     * asked), with the factors the decision verified; the user's epoch must still be the one of the request. */
    {
        const uint8_t **ptrs = calloc(STOR_DIGESTS_MAX, sizeof(*ptrs));
        oauth_sad_request_t req;
        oauth_authz_hook_t hook = {.check = issue_check, .arg = &c};
        if (!ptrs) {
            rc = OAUTH_ERR_INTERNAL;
            goto out;
        }
        appr_request(c.a, ptrs, c.a->client, &req);
        rc = oauth_authorize_pre(o, &req, NULL, c.a->verified & (OAUTH_FACTOR_APPROVAL | OAUTH_FACTOR_PIN),
                                 c.a->epoch, &hook, sad, expires_in);
        free(ptrs);
    }
out:
    appr_free(c.a);
    OPENSSL_cleanse(c.key, sizeof(c.key));
    return rc;
}
