/*
 * stor_keyjob.c - the key destructions the CRL sweep files (J7; stor.h: stor_key_jobs_run): the one core that both
 * runners share, csc-sam's periodic task (at once, unasked) and `csc-admin credential destroy-pending` (by hand,
 * the fallback while csc-sam cannot reach the HSM). Storage knows nothing of the HSM: the runner destroys each key
 * through its callback. One job, in this order, so that a failure at any point leaves the job for the next run:
 *   1. one write: the credential marked destroyed for the final reason "certificate revoked" (its record handed
 *      back), audited (STOR_EV_ADMIN, "operator=ACTOR,requester=R action=credential.destroy reason=...");
 *   2. the callback destroys the keys that record names (a renewal's pending key first, then the key);
 *   3. one write: the job dropped, audited (STOR_EV_OPERATOR, "operator=ACTOR requester=R action=job.done ...").
 * A job already dropped by another runner meanwhile is fine (nothing more happens); destroying a key that is gone
 * is the callback's success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "stor.h"

typedef struct jobs {
    stor_key_job_t *job;
    size_t n, cap;
} jobs_t;

/* Every "credential revoke ID" held: jobs, and requests that wait for a second operator. */
static int collect(const stor_approval_t *ap, void *arg)
{
    jobs_t *l = arg;
    size_t cred_len = ap->n_args == 3 ? strlen(ap->args[2]) : 0;
    if (ap->n_args != 3 || strcmp(ap->args[0], "credential") != 0 || strcmp(ap->args[1], "revoke") != 0 ||
        cred_len > STOR_NAME_MAX)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        void *p = realloc(l->job, cap * sizeof(*l->job));
        if (p == NULL)
            return STOR_ERR_NOMEM;
        l->job = p;
        l->cap = cap;
    }
    stor_key_job_t *j = &l->job[l->n++];
    memset(j, 0, sizeof(*j));
    snprintf(j->id, sizeof(j->id), "%s", ap->id);
    snprintf(j->requester, sizeof(j->requester), "%s", ap->requester);
    memcpy(j->cred, ap->args[2], cred_len + 1);
    j->role = ap->role;
    j->flags = ap->flags;
    return 0;
}

int stor_txn_key_jobs(stor_txn_t *t, stor_key_job_t **out, size_t *n)
{
    jobs_t l = {0};
    int rc = stor_txn_approval_each(t, collect, &l);
    if (rc != 0) {
        free(l.job);
        l.job = NULL;
        l.n = 0;
    }
    *out = l.job;
    *n = l.n;
    return rc;
}

static int collect_fn(stor_txn_t *t, void *arg)
{
    jobs_t *l = arg;
    return stor_txn_key_jobs(t, &l->job, &l->n);
}

/* 1. Destroyed, for the final reason (a later release in the CRL or a restore brings nothing back, J8). */
static int mark_revoked(stor_cred_t *cur, void *arg)
{
    if (cur->status != STOR_CRED_DESTROYED || cur->end_reason == STOR_CRED_END_OPERATOR)
        cur->end_reason = STOR_CRED_END_REVOKED;
    cur->status = STOR_CRED_DESTROYED;
    memcpy(arg, cur, sizeof(*cur)); /* the keys to destroy */
    return 0;
}

typedef struct mark {
    const char *cred;
    stor_cred_t *out;
    stor_audit_t audit;
} mark_t;

static int mark_fn(stor_txn_t *t, void *arg)
{
    mark_t *m = arg;
    return stor_txn_cred_change(t, m->cred, mark_revoked, m->out, &m->audit);
}

/* 3. The job dropped, if it is still there and still a job. */
typedef struct drop {
    const stor_key_job_t *job;
    stor_audit_t audit;
} drop_t;

static int drop_fn(stor_txn_t *t, void *arg)
{
    drop_t *d = arg;
    stor_approval_t *ap = malloc(sizeof(*ap));
    int rc = ap != NULL ? stor_txn_approval_get(t, d->job->id, ap) : STOR_ERR_NOMEM;
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL)
        rc = STOR_ERR_EXISTS; /* done by another run meanwhile: nothing to write */
    else if (rc == 0 && !(ap->flags & STOR_APPROVAL_JOB))
        rc = STOR_ERR_EXISTS;
    else if (rc == 0 && (rc = stor_txn_approval_del(t, d->job->id)) == 0)
        rc = stor_txn_audit_append(t, &d->audit);
    free(ap);
    return rc;
}

static void audit_init(stor_audit_t *a, uint32_t event, const stor_key_jobs_t *how, const char *user,
                       const char *cred)
{
    memset(a, 0, sizeof(*a));
    a->event = event;
    a->result = STOR_RES_OK;
    snprintf(a->user, sizeof(a->user), "%s", user);
    snprintf(a->cred, sizeof(a->cred), "%s", cred);
    snprintf(a->client, sizeof(a->client), "%s", how->client);
}

/* One job: its outcome (STOR_KEY_JOB_*) and the failing layer's code in *code. */
static int run_one(stor_env_t *env, const stor_key_jobs_t *how, const stor_key_job_t *j, stor_cred_t *rec, int *code)
{
    mark_t m = {.cred = j->cred, .out = rec};
    audit_init(&m.audit, STOR_EV_ADMIN, how, "", j->cred);
    if (snprintf(m.audit.detail, sizeof(m.audit.detail),
                 "operator=%s,requester=%s action=credential.destroy reason=certificate revoked", how->actor,
                 j->requester) >= (int)sizeof(m.audit.detail))
        m.audit.detail[sizeof(m.audit.detail) - 1] = '\0';
    if ((*code = stor_write(env, mark_fn, &m)) != 0)
        return STOR_KEY_JOB_STORAGE;
    if (rec->pending_key_id_len > 0 &&
        (*code = how->destroy(how->arg, rec->pending_key_id, rec->pending_key_id_len)) != 0)
        return STOR_KEY_JOB_KEY;
    if ((*code = how->destroy(how->arg, rec->key_id, rec->key_id_len)) != 0)
        return STOR_KEY_JOB_KEY;
    drop_t d = {.job = j};
    audit_init(&d.audit, STOR_EV_OPERATOR, how, how->actor, "");
    if (snprintf(d.audit.detail, sizeof(d.audit.detail),
                 "operator=%s requester=%s action=job.done id=%s command=credential revoke %s", how->actor,
                 j->requester, j->id, j->cred) >= (int)sizeof(d.audit.detail))
        d.audit.detail[sizeof(d.audit.detail) - 1] = '\0'; /* cut: the record still names the job */
    *code = stor_write(env, drop_fn, &d);
    if (*code == STOR_ERR_EXISTS)
        *code = 0;
    return *code == 0 ? STOR_KEY_JOB_DONE : STOR_KEY_JOB_STORAGE;
}

int stor_key_jobs_run(stor_env_t *env, const stor_key_jobs_t *how, stor_key_jobs_count_t *count)
{
    jobs_t l = {0};
    memset(count, 0, sizeof(*count));
    if (env == NULL || how == NULL || how->destroy == NULL || how->actor == NULL || how->client == NULL)
        return STOR_ERR_INVAL;
    int rc = stor_read(env, collect_fn, &l);
    stor_cred_t *rec = rc == 0 ? malloc(sizeof(*rec)) : NULL;
    if (rc == 0 && rec == NULL)
        rc = STOR_ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        const stor_key_job_t *j = &l.job[i];
        int outcome, code = 0;
        if (!(j->flags & STOR_APPROVAL_JOB) || how->hold)
            outcome = STOR_KEY_JOB_WAITING;
        else if ((how->roles & j->role) == 0)
            outcome = STOR_KEY_JOB_ROLE;
        else
            outcome = run_one(env, how, j, rec, &code);
        if (outcome == STOR_KEY_JOB_DONE)
            count->done++;
        else if (outcome == STOR_KEY_JOB_WAITING)
            count->waiting++;
        else
            count->failed++;
        if (how->report != NULL)
            how->report(how->report_arg, j, outcome, code);
    }
    if (rec != NULL)
        OPENSSL_clear_free(rec, sizeof(*rec));
    free(l.job);
    return rc;
}
