/* adm_users.c - user changes behind csc-admin (J1): the evidence reference; delegates. An operator sets no factor of a
 * user (issue 12): passwords, TOTP secrets and PINs are made on /enroll and /account, in csc-sam. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "adm_int.h"

#define ERR ADM_FAIL

int adm_evidence_check(const char *s)
{
    size_t n = s != NULL ? strnlen(s, STOR_DESC_MAX + 1) : 0;

    if (n == 0 || n > STOR_DESC_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return -1;
    return 0;
}

int adm_user_reset_txn(stor_txn_t *t, stor_user_t *u, stor_audit_t *audit)
{
    stor_revoked_t r;
    size_t n = strnlen(audit->detail, sizeof(audit->detail));
    int rc;

    u->epoch++; /* csc-server refuses what it keeps in memory for the older epoch */
    if ((rc = stor_txn_user_revoke_all(t, u->name, (int64_t)time(NULL), &r)) != 0)
        return rc;
    snprintf(audit->detail + n, sizeof(audit->detail) - n, " revoked: tokens=%u sads=%u pending=%u", r.tokens, r.sads,
             r.pending);
    return 0;
}

typedef struct user_change {
    const char *name;
    const char *evidence;
    stor_audit_t audit;
} user_change_t;

static int change_fn(stor_txn_t *t, void *arg)
{
    user_change_t *c = arg;
    stor_user_t *u = malloc(sizeof(*u));
    int rc;

    if (u == NULL)
        return STOR_ERR_NOMEM;
    if ((rc = stor_txn_user_get(t, c->name, u)) != 0)
        goto out;
    if (u->status == STOR_USER_TERMINATED) {
        rc = STOR_ERR_INVAL;
        goto out;
    }
    snprintf(u->evidence, sizeof(u->evidence), "%s", c->evidence);
    if ((rc = stor_txn_user_put(t, u, 0)) == 0)
        rc = stor_txn_audit_append(t, &c->audit);
out:
    stor_wipe(u, sizeof(*u));
    free(u);
    return rc;
}

/* The record of a change of the evidence reference (a long one is cut to fit the record). */
static void change_audit(user_change_t *c, const adm_t *a)
{
    memset(&c->audit, 0, sizeof(c->audit));
    c->audit.event = STOR_EV_ADMIN;
    c->audit.result = STOR_RES_OK;
    snprintf(c->audit.user, sizeof(c->audit.user), "%s", c->name);
    snprintf(c->audit.client, sizeof(c->audit.client), "csc-admin");
    snprintf(c->audit.detail, sizeof(c->audit.detail), "operator=%.64s action=user.change evidence=%.150s",
             a->operator_name ? a->operator_name : "-", c->evidence);
}

static int change_result(int rc, const char *name, char *err, size_t err_sz)
{
    if (rc == STOR_ERR_NOTFOUND)
        return ERR("no user %s", name);
    if (rc == STOR_ERR_INVAL)
        return ERR("user %s is terminated (or the name is invalid)", name);
    if (rc != 0)
        return ERR("storage: %s", stor_strerror(rc));
    return 0;
}

int adm_user_change(const adm_t *a, const char *name, const char *evidence, char *err, size_t err_sz)
{
    user_change_t c = {.name = name, .evidence = evidence};

    if (evidence == NULL || adm_evidence_check(evidence) != 0)
        return ERR("evidence reference must be 1..%d printable characters", STOR_DESC_MAX);
    change_audit(&c, a);
    return change_result(stor_write(a->stor, change_fn, &c), name, err, err_sz);
}

/* ---- delegates (J1) ---------------------------------------------------------- */

typedef struct delegate_job {
    const char *id;
    const char *user;
    int remove;
    stor_cred_t *cred;
    int why;                       /* out: 1 no such user, 2 the owner, 3 full, 4 not a delegate, 5 destroyed */
    stor_audit_t audit;
} delegate_job_t;

static int delegate_fn(stor_txn_t *t, void *arg)
{
    delegate_job_t *j = arg;
    stor_cred_t *c = j->cred;
    stor_user_t *u;
    int rc, i;

    if ((rc = stor_txn_cred_get(t, j->id, c)) != 0)
        return rc;
    i = stor_cred_delegate(c, j->user);
    if (j->remove) {
        if (i < 0) {
            j->why = 4;
            return STOR_ERR_INVAL;
        }
        for (uint32_t k = (uint32_t)i; k + 1 < c->n_delegates; k++) {
            memcpy(c->delegates[k], c->delegates[k + 1], sizeof(c->delegates[k]));
            memcpy(c->delegate_pins[k], c->delegate_pins[k + 1], sizeof(c->delegate_pins[k]));
        }
        /* the PIN-unset marks follow their delegates down */
        uint32_t low = c->delegate_pin_unset & ((1u << i) - 1u);
        c->delegate_pin_unset = low | (c->delegate_pin_unset >> 1 & ~((1u << i) - 1u));
        c->n_delegates--;
        memset(c->delegates[c->n_delegates], 0, sizeof(c->delegates[0]));
        OPENSSL_cleanse(c->delegate_pins[c->n_delegates], sizeof(c->delegate_pins[0]));
        rc = stor_txn_delegation_del(t, j->user, j->id);
        if (rc != 0 && rc != STOR_ERR_NOTFOUND)
            return rc;
    } else {
        if (c->status == STOR_CRED_DESTROYED) {
            j->why = 5;
            return STOR_ERR_INVAL;
        }
        if (strcmp(c->owner, j->user) == 0) {
            j->why = 2;
            return STOR_ERR_INVAL;
        }
        if ((u = malloc(sizeof(*u))) == NULL)
            return STOR_ERR_NOMEM;
        rc = stor_txn_user_get(t, j->user, u);
        stor_wipe(u, sizeof(*u));
        free(u);
        if (rc == STOR_ERR_NOTFOUND) {
            j->why = 1;
            return STOR_ERR_INVAL;
        }
        if (rc != 0)
            return rc;
        if (i < 0) {
            if (c->n_delegates >= STOR_DELEGATES_MAX) {
                j->why = 3;
                return STOR_ERR_INVAL;
            }
            i = (int)c->n_delegates++;
            snprintf(c->delegates[i], sizeof(c->delegates[i]), "%s", j->user);
        }
        /* the delegate sets their own PIN (/enroll, /account) before they can authorize: never the operator */
        memset(c->delegate_pins[i], 0, sizeof(c->delegate_pins[i]));
        (void)stor_cred_pin_mark(c, j->user, 1);
        if ((rc = stor_txn_delegation_put(t, j->user, j->id)) != 0)
            return rc;
    }
    if ((rc = stor_txn_cred_put(t, c, 0)) != 0)
        return rc;
    snprintf(j->audit.user, sizeof(j->audit.user), "%s", c->owner);
    return stor_txn_audit_append(t, &j->audit);
}

int adm_cred_delegate(const adm_t *a, const char *id, const char *user, const char *evidence, int remove, char *err,
                      size_t err_sz)
{
    delegate_job_t *j = calloc(1, sizeof(*j));
    int rc = -1;

    if (j == NULL || (j->cred = malloc(sizeof(*j->cred))) == NULL) {
        ERR("out of memory");
        goto out;
    }
    if (!remove && (evidence == NULL || adm_evidence_check(evidence) != 0)) {
        ERR("--evidence REF (the owner's consent: a document id or URI) is required to add a delegate");
        goto out;
    }
    if (evidence != NULL && adm_evidence_check(evidence) != 0) {
        ERR("evidence reference must be 1..%d printable characters", STOR_DESC_MAX);
        goto out;
    }
    j->id = id;
    j->user = user;
    j->remove = remove;
    j->audit.event = STOR_EV_ADMIN;
    j->audit.result = STOR_RES_OK;
    snprintf(j->audit.cred, sizeof(j->audit.cred), "%s", id);
    snprintf(j->audit.client, sizeof(j->audit.client), "csc-admin");
    snprintf(j->audit.detail, sizeof(j->audit.detail), "operator=%s action=credential.%s delegate=%s%s%s",
             a->operator_name ? a->operator_name : "-", remove ? "undelegate" : "delegate", user,
             evidence != NULL ? " evidence=" : "", evidence != NULL ? evidence : "");
    int src = stor_write(a->stor, delegate_fn, j);
    static const char *const why[] = {"", "no such user", "the owner cannot be a delegate",
                                      "too many delegates", "not a delegate of the credential",
                                      "the credential's key is destroyed"};
    if (src == STOR_ERR_NOTFOUND)
        ERR("no credential %s", id);
    else if (src == STOR_ERR_INVAL && j->why > 0 && j->why <= 5)
        ERR("credential %s, user %s: %s", id, user, why[j->why]);
    else if (src != 0)
        ERR("storage: %s", stor_strerror(src));
    else
        rc = 0;
out:
    if (j != NULL) {
        if (j->cred != NULL)
            stor_wipe(j->cred, sizeof(*j->cred));
        free(j->cred);
        OPENSSL_cleanse(j, sizeof(*j));
    }
    free(j);
    return rc;
}
