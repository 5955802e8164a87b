/*
 * oauth_approval.c - authorization approved by the user outside the client
 * (CSC API v2.0.0.2 sec. 8.3.1.1, 11.6, 11.7).
 *
 * For a credential whose auth expression names APPROVAL, credentials/authorize does not take factors from the
 * client: the request (user, credential, numSignatures, digests) waits here under a random handle, which the
 * client polls with credentials/authorizeCheck. The user signs in on the service's approval page (password +
 * TOTP, the OAuth session code) and approves (with the credential's PIN when the expression names PIN) or
 * refuses. An approval issues the SAD through the same code as credentials/authorize, with the APPROVAL factor
 * verified; authorizeCheck hands it out once. The table is in memory and bounded; entries expire after
 * approval_ttl seconds (a restart forgets them: the client authorizes again).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "oauth_int.h"

enum { A_PENDING = 0, A_DECIDING = 1, A_APPROVED = 2, A_REFUSED = 3, A_LOCKED = 4 };

typedef struct appr {
    struct appr *next;
    uint8_t key[32];                   /* SHA-256 of the handle */
    uint8_t ref[16];                   /* first 16 bytes of SHA-256(key): names it on the page */
    int state;
    int64_t created, expires;
    char user[STOR_NAME_MAX + 1];
    char cred[STOR_NAME_MAX + 1];
    char client[64];
    uint32_t num;
    int needs_pin;
    uint32_t epoch;                    /* the user's epoch when asked: an operator's reset voids the request */
    char hash_alg[STOR_OID_MAX + 1];
    uint32_t digest_len, n_digests;
    char sad[OAUTH_TOKEN_BUFLEN];      /* A_APPROVED */
    unsigned sad_expires_in;
    uint8_t digests[];                 /* n_digests * digest_len */
} appr_t;

struct oauth_appr_tab {
    pthread_mutex_t mu;
    appr_t *head;
    size_t n;
};

int oauth_appr_tab_new(struct oauth_appr_tab **out)
{
    struct oauth_appr_tab *t = calloc(1, sizeof(*t));

    *out = NULL;
    if (!t || pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return OAUTH_ERR_INTERNAL;
    }
    *out = t;
    return OAUTH_OK;
}

static void appr_free(appr_t *a)
{
    if (a)
        OPENSSL_clear_free(a, sizeof(*a) + (size_t)a->n_digests * a->digest_len);
}

void oauth_appr_tab_free(struct oauth_appr_tab *t)
{
    if (!t)
        return;
    while (t->head) {
        appr_t *a = t->head;
        t->head = a->next;
        appr_free(a);
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* Unlink and free the expired entries that nobody is deciding (locked). */
static void purge_locked(struct oauth_appr_tab *t, int64_t now)
{
    appr_t **pp = &t->head;

    while (*pp) {
        appr_t *a = *pp;
        if (a->expires <= now && a->state != A_DECIDING) {
            *pp = a->next;
            t->n--;
            appr_free(a);
        } else {
            pp = &a->next;
        }
    }
}

/* ---- authorize: a new pending request ------------------------------------------------- */

typedef struct {
    const oauth_sad_request_t *req;
    int64_t now;
    stor_cred_t *cred;
    stor_user_t user;
    int needs_pin;
    int rc;
} new_ctx_t;

static int new_read(stor_txn_t *t, void *arg)
{
    new_ctx_t *c = arg;
    int rc;

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
    c->needs_pin = oauth_expr_names(c->cred->auth_expr, "PIN");
    if (c->cred->locked_until > c->now)
        c->rc = OAUTH_ERR_LOCKED;
    else if (c->user.status != STOR_USER_ACTIVE || c->cred->status != STOR_CRED_ENABLED)
        c->rc = OAUTH_ERR_DISABLED;
    else
        c->rc = OAUTH_OK;
    return 0;
}

int oauth_approval_new(oauth_t *o, const oauth_sad_request_t *req, char handle[OAUTH_TOKEN_BUFLEN], unsigned *ttl)
{
    struct oauth_appr_tab *t;
    new_ctx_t c;
    appr_t *a = NULL;
    uint8_t h2[32];
    size_t dlen;
    int rc;

    if (handle)
        handle[0] = '\0';
    if (ttl)
        *ttl = 0;
    if (!o || !req || !handle || !ttl || !oauth_name_ok(req->user) || !oauth_name_ok(req->cred) ||
        req->num_signatures < 1 || req->n_digests > STOR_DIGESTS_MAX ||
        (req->n_digests && (!req->digests || !req->digest_len || req->digest_len > STOR_DIGEST_LEN_MAX ||
                            !req->hash_alg || strlen(req->hash_alg) > STOR_OID_MAX)))
        return OAUTH_ERR_INVAL;
    t = o->approvals;
    memset(&c, 0, sizeof(c));
    c.req = req;
    c.now = oauth_clock(o);
    if (!(c.cred = calloc(1, sizeof(*c.cred))))
        return OAUTH_ERR_INTERNAL;
    rc = oauth_rc(stor_read(o->cfg.stor, new_read, &c));
    uint32_t epoch = c.user.epoch;
    OPENSSL_clear_free(c.cred, sizeof(*c.cred));
    OPENSSL_cleanse(&c.user, sizeof(c.user));
    if (rc != OAUTH_OK)
        return rc;
    if (c.rc != OAUTH_OK)
        return c.rc;
    dlen = req->n_digests * req->digest_len;
    if (!(a = calloc(1, sizeof(*a) + dlen)))
        return OAUTH_ERR_INTERNAL;
    if ((rc = oauth_token_new(handle, a->key)) != OAUTH_OK || (rc = oauth_sha256(a->key, 32, h2)) != OAUTH_OK) {
        handle[0] = '\0';
        free(a);
        return rc;
    }
    memcpy(a->ref, h2, 16);
    a->state = A_PENDING;
    a->created = c.now;
    a->expires = c.now + (int64_t)o->cfg.approval_ttl;
    oauth_copy(a->user, sizeof(a->user), req->user);
    oauth_copy(a->cred, sizeof(a->cred), req->cred);
    oauth_copy(a->client, sizeof(a->client), req->client);
    a->num = req->num_signatures;
    a->needs_pin = c.needs_pin;
    a->epoch = epoch;
    if (req->n_digests) {
        oauth_copy(a->hash_alg, sizeof(a->hash_alg), req->hash_alg);
        a->digest_len = (uint32_t)req->digest_len;
        a->n_digests = (uint32_t)req->n_digests;
        for (size_t i = 0; i < req->n_digests; i++)
            memcpy(a->digests + i * req->digest_len, req->digests[i], req->digest_len);
    }
    pthread_mutex_lock(&t->mu);
    purge_locked(t, c.now);
    if (t->n >= OAUTH_APPROVALS_MAX) {
        pthread_mutex_unlock(&t->mu);
        OPENSSL_cleanse(handle, OAUTH_TOKEN_BUFLEN);
        appr_free(a);
        return OAUTH_ERR_FULL;
    }
    a->next = t->head;
    t->head = a;
    t->n++;
    pthread_mutex_unlock(&t->mu);
    *ttl = o->cfg.approval_ttl;
    return OAUTH_OK;
}

/* ---- the page: list and decide ---------------------------------------------------------- */

size_t oauth_approval_each(oauth_t *o, const char *user, void (*fn)(const oauth_approval_view_t *v, void *arg),
                           void *arg)
{
    struct oauth_appr_tab *t;
    int64_t now;
    size_t n = 0;

    if (!o || !user || !fn)
        return 0;
    t = o->approvals;
    now = oauth_clock(o);
    pthread_mutex_lock(&t->mu);
    for (appr_t *a = t->head; a; a = a->next) {
        if (a->state != A_PENDING || a->expires <= now || strcmp(a->user, user) != 0)
            continue;
        oauth_approval_view_t v;
        memset(&v, 0, sizeof(v));
        memcpy(v.ref, a->ref, 16);
        oauth_copy(v.cred, sizeof(v.cred), a->cred);
        oauth_copy(v.client, sizeof(v.client), a->client);
        v.num_signatures = a->num;
        oauth_copy(v.hash_alg, sizeof(v.hash_alg), a->hash_alg);
        v.digest_len = a->digest_len;
        v.n_digests = a->n_digests;
        v.digests = a->digests;
        v.created = a->created;
        v.expires = a->expires;
        v.needs_pin = a->needs_pin;
        fn(&v, arg);
        n++;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

typedef struct {
    const appr_t *a;
    int approve;
    const char *why;
    const char *client;
} dec_audit_t;

static int decision_audit(stor_txn_t *t, void *arg)
{
    dec_audit_t *d = arg;
    stor_audit_t rec;
    int rc;

    oauth_audit_init(&rec, STOR_EV_APPROVAL, d->approve ? STOR_RES_OK : STOR_RES_DENIED, d->a->user, d->a->cred,
                     d->client);
    memcpy(rec.authz_ref, d->a->ref, 16);
    snprintf(rec.detail, sizeof(rec.detail), "%s numSignatures %u hashAlgorithmOID %s%s%s",
             d->approve ? "approved" : "refused", d->a->num, d->a->hash_alg[0] ? d->a->hash_alg : "-",
             d->why ? ": " : "", d->why ? d->why : "");
    rec.digest_len = d->a->digest_len;
    rec.n_digests = d->a->n_digests;
    rec.digests = d->a->n_digests ? d->a->digests : NULL;
    rc = stor_txn_audit_append(t, &rec);
    return rc < 0 ? rc : 0;
}

int oauth_approval_decide(oauth_t *o, const char *user, const uint8_t ref[16], int approve, const char *pin,
                          size_t pin_len, const char *client)
{
    struct oauth_appr_tab *t;
    appr_t *a;
    int64_t now;
    int rc;

    if (!o || !user || !ref)
        return OAUTH_ERR_INVAL;
    t = o->approvals;
    now = oauth_clock(o);
    pthread_mutex_lock(&t->mu);
    for (a = t->head; a; a = a->next)
        if (CRYPTO_memcmp(a->ref, ref, 16) == 0 && strcmp(a->user, user) == 0 && a->state == A_PENDING &&
            a->expires > now)
            break;
    if (a)
        a->state = A_DECIDING; /* one decision per request, even posted twice at once */
    pthread_mutex_unlock(&t->mu);
    if (!a)
        return OAUTH_ERR_INVALID;

    /* The entry cannot go away while A_DECIDING (purge and check skip it); its fields are read-only here. */
    int state = A_REFUSED;
    dec_audit_t d = {.a = a, .approve = 0, .client = client};
    char sad[OAUTH_TOKEN_BUFLEN] = "";
    unsigned exp = 0;
    if (approve) {
        const uint8_t *ptrs[STOR_DIGESTS_MAX];
        for (uint32_t i = 0; i < a->n_digests; i++)
            ptrs[i] = a->digests + (size_t)i * a->digest_len;
        oauth_sad_request_t req = {
            .user = a->user,
            .cred = a->cred,
            .num_signatures = a->num,
            .hash_alg = a->n_digests ? a->hash_alg : NULL,
            .digests = ptrs,
            .digest_len = a->digest_len,
            .n_digests = a->n_digests,
            .client = client,
        };
        oauth_factors_t f = {pin, pin ? pin_len : 0, NULL, 0, NULL, 0};
        rc = oauth_authorize_pre(o, &req, &f, OAUTH_FACTOR_APPROVAL, a->epoch, sad, &exp);
        if (rc == OAUTH_ERR_DENIED || rc == OAUTH_ERR_STORAGE || rc == OAUTH_ERR_INTERNAL || rc == OAUTH_ERR_BUSY) {
            /* A wrong PIN (counted on the credential's lock), a busy PIN check or trouble: the user may try again. */
            pthread_mutex_lock(&t->mu);
            a->state = A_PENDING;
            pthread_mutex_unlock(&t->mu);
            OPENSSL_cleanse(sad, sizeof(sad));
            return rc;
        }
        if (rc == OAUTH_OK) {
            state = A_APPROVED;
            d.approve = 1;
        } else {
            state = rc == OAUTH_ERR_LOCKED ? A_LOCKED : A_REFUSED;
            d.why = rc == OAUTH_ERR_LOCKED ? "credential locked" : "credential not usable";
        }
    } else {
        rc = OAUTH_OK;
        d.why = "by the user";
    }
    int arc = oauth_rc(stor_write(o->cfg.stor, decision_audit, &d));
    pthread_mutex_lock(&t->mu);
    a->state = state;
    if (state == A_APPROVED) {
        memcpy(a->sad, sad, sizeof(sad));
        a->sad_expires_in = exp;
    }
    pthread_mutex_unlock(&t->mu);
    OPENSSL_cleanse(sad, sizeof(sad));
    return rc != OAUTH_OK ? rc : arc;
}

/* ---- authorizeCheck ---------------------------------------------------------------------- */

int oauth_approval_check(oauth_t *o, const char *user, const char *handle, size_t len, char sad[OAUTH_TOKEN_BUFLEN],
                         unsigned *expires_in)
{
    struct oauth_appr_tab *t;
    uint8_t key[32];
    appr_t **pp, *a = NULL;
    int64_t now;
    int rc;

    if (sad)
        sad[0] = '\0';
    if (expires_in)
        *expires_in = 0;
    if (!o || !user || !sad || !expires_in)
        return OAUTH_ERR_INVAL;
    if (oauth_token_hash(handle, len, key) != OAUTH_OK)
        return OAUTH_ERR_INVALID;
    t = o->approvals;
    now = oauth_clock(o);
    pthread_mutex_lock(&t->mu);
    for (pp = &t->head; *pp; pp = &(*pp)->next)
        if (CRYPTO_memcmp((*pp)->key, key, 32) == 0)
            break;
    if (!*pp || strcmp((*pp)->user, user) != 0) {
        rc = OAUTH_ERR_INVALID; /* another user's handle stays as it is */
    } else if ((*pp)->state == A_DECIDING) {
        rc = OAUTH_PENDING;
    } else if ((*pp)->expires <= now) {
        rc = OAUTH_ERR_EXPIRED; /* a request (or its outcome) is kept approval_ttl seconds */
    } else if ((*pp)->state == A_PENDING) {
        rc = OAUTH_PENDING;
    } else {
        rc = (*pp)->state == A_APPROVED ? OAUTH_OK : (*pp)->state == A_LOCKED ? OAUTH_ERR_LOCKED : OAUTH_ERR_DENIED;
    }
    if (rc != OAUTH_PENDING && rc != OAUTH_ERR_INVALID) {
        /* A final answer is given once. */
        a = *pp;
        *pp = a->next;
        t->n--;
        if (rc == OAUTH_OK) {
            memcpy(sad, a->sad, OAUTH_TOKEN_BUFLEN);
            *expires_in = a->sad_expires_in;
        }
    }
    pthread_mutex_unlock(&t->mu);
    appr_free(a);
    return rc;
}
