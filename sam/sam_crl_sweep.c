/*
 * sam_crl_sweep.c - csc-sam ends the credentials whose certificates a CRL of crl_dir revokes (J7/J9): its crl-watch
 * task (server/srv_sam.c) runs the sweep once the writes are open and after each reload that changed the store. The
 * one periodic path that ends a credential; it destroys no key: one storage write marks the credential destroyed
 * (stor_txn_cred_change, shared with csc-admin), so it never signs again, and files its key's destruction as
 * "credential revoke ID" (stor_txn_approval_request, never expiring): a job (STOR_APPROVAL_JOB) that the key-jobs
 * task runs at once (sam_keyjobs.c; `csc-admin credential destroy-pending` by hand), or, when two_person holds it,
 * a request a second operator approves (`csc-admin approve ID`). csc-server reloads the CRLs for its own answers
 * (credentials/info, its refusals) but writes nothing of this: the credentials, approvals and audit records are
 * csc-sam's to write (storage/migrations/0001_init.sql, "csc_front writes").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/x509.h>

#include "sam_server.h"

typedef struct revoked {
    const char *id;
    int hold;                    /* the destruction waits for a second operator */
    int marked;                  /* out: this write made the change */
    char job[STOR_NAME_MAX + 1]; /* out: the filed job's (or request's) id */
    stor_audit_t audit;
} revoked_t;

static int revoked_change(stor_cred_t *cur, void *arg)
{
    revoked_t *u = arg;
    /* Once: a credential destroyed for a final reason, or still waiting for its certificate, stays as it is. */
    if ((cur->status == STOR_CRED_DESTROYED && cur->end_reason != STOR_CRED_END_OPERATOR) ||
        cur->status == STOR_CRED_PENDING)
        return STOR_ERR_EXISTS;
    u->marked = 1;
    cur->status = STOR_CRED_DESTROYED;
    cur->end_reason = STOR_CRED_END_REVOKED;
    return 0;
}

/* Marked and filed in one transaction: a credential the sweep ended always has its key's destruction waiting. */
static int revoked_fn(stor_txn_t *t, void *arg)
{
    revoked_t *u = arg;
    char *argv[3] = {"credential", "revoke", (char *)u->id};
    int rc = stor_txn_cred_change(t, u->id, revoked_change, u, &u->audit);
    return rc != 0 ? rc
                   : stor_txn_approval_request(t, "csc-sam", STOR_ROLE_KEY_ADMIN, 0, u->hold ? 0 : STOR_APPROVAL_JOB, 3,
                                               argv, u->job);
}

/* Mark credential id destroyed (reason revoked, audited with detail) and file its key's destruction (job or, with
 * hold, two-person request; its id in job). *marked = 1 when this call made the change. 0, or -1 with a message
 * in err. */
static int cred_revoked(stor_env_t *stor, const char *id, const char *detail, int hold, int *marked,
                        char job[STOR_NAME_MAX + 1], char *err, size_t err_sz)
{
    revoked_t u = {.id = id, .hold = hold};

    *marked = 0;
    job[0] = '\0';
    u.audit.event = STOR_EV_ADMIN;
    u.audit.result = STOR_RES_OK;
    snprintf(u.audit.cred, sizeof(u.audit.cred), "%s", id);
    snprintf(u.audit.client, sizeof(u.audit.client), "csc-sam");
    snprintf(u.audit.detail, sizeof(u.audit.detail),
             "operator=csc-sam action=credential.destroy reason=certificate revoked (%s); %s", detail,
             hold ? "key destruction held for a two-person approval" : "key destruction filed for csc-sam");
    int src = stor_write(stor, revoked_fn, &u);
    if (src == STOR_ERR_EXISTS || src == STOR_ERR_NOTFOUND || src == STOR_ERR_INVAL)
        return 0; /* nothing to do */
    if (src != 0) {
        snprintf(err, err_sz, "storage: %s (nothing changed; the sweep runs again a second later)", stor_strerror(src));
        return -1;
    }
    *marked = u.marked;
    snprintf(job, STOR_NAME_MAX + 1, "%s", u.job);
    return 0;
}

/* The ids of every credential the sweep may end (with a certificate, not ended for a final reason). */
typedef struct sweep {
    stor_txn_t *t;
    char (*id)[STOR_NAME_MAX + 1];
    size_t n, cap;
} sweep_t;

static int sweep_cred(const stor_cred_t *cred, void *arg)
{
    sweep_t *s = arg;
    if (cred->certs_len == 0 || cred->status == STOR_CRED_PENDING ||
        (cred->status == STOR_CRED_DESTROYED && cred->end_reason != STOR_CRED_END_OPERATOR))
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        void *p = realloc(s->id, cap * sizeof(*s->id));
        if (p == NULL)
            return STOR_ERR_NOMEM;
        s->id = p;
        s->cap = cap;
    }
    snprintf(s->id[s->n++], sizeof(s->id[0]), "%s", cred->id);
    return 0;
}

static int sweep_user(const stor_user_t *u, void *arg)
{
    return stor_txn_cred_each(((sweep_t *)arg)->t, u->name, sweep_cred, arg);
}

static int sweep_fn(stor_txn_t *t, void *arg)
{
    sweep_t *s = arg;
    s->t = t;
    int rc = stor_txn_user_each(t, sweep_user, s);
    return rc != 0 ? rc : stor_txn_cred_each(t, STOR_TSA_OWNER, sweep_cred, s);
}

/* Is the credential's end-entity certificate revoked by crl? (why: the CRL's reason) */
static int cert_revoked(pki_crl_t *crl, const stor_cred_t *cred, const char **why)
{
    const unsigned char *p = cred->certs;
    X509 *ee = d2i_X509(NULL, &p, (long)cred->certs_len);
    *why = "";
    if (ee == NULL)
        return 0; /* unreadable: signing refuses it anyway, and nothing is ended on a guess */
    int rc = pki_crl_check(crl, ee, time(NULL), why);
    X509_free(ee);
    return rc == PKI_REV_REVOKED;
}

int sam_crl_sweep(stor_env_t *stor, pki_crl_t *crl, int hold)
{
    sweep_t s = {0};
    stor_cred_t *cred = malloc(sizeof(*cred));
    int marked_n = 0, failed = 0;

    if (crl == NULL || cred == NULL || stor_read(stor, sweep_fn, &s) != 0) {
        if (crl != NULL)
            fprintf(stderr, "crl: cannot read the credentials to sweep; tried again a second later\n");
        free(cred);
        free(s.id);
        return crl == NULL ? 0 : -1;
    }
    for (size_t i = 0; i < s.n; i++) {
        const char *why;
        char detail[96], err[256], job[STOR_NAME_MAX + 1];
        int marked = 0;
        if (stor_cred_get(stor, s.id[i], cred) != 0 || !cert_revoked(crl, cred, &why))
            continue;
        snprintf(detail, sizeof(detail), "seen in a CRL: %s", why);
        if (cred_revoked(stor, s.id[i], detail, hold, &marked, job, err, sizeof(err)) != 0) {
            fprintf(stderr, "crl: credential %s: %s\n", s.id[i], err);
            failed = 1;
        }
        if (!marked)
            continue;
        marked_n++;
        if (hold)
            fprintf(stderr, "crl: credential %s: certificate revoked (%s); credential destroyed, its key waits for a "
                            "second operator: csc-admin approve %s\n", s.id[i], why, job);
        else
            fprintf(stderr, "crl: credential %s: certificate revoked (%s); credential destroyed, its key's destruction "
                            "filed (job %s): csc-sam destroys it\n", s.id[i], why, job);
    }
    stor_wipe(cred, sizeof(*cred));
    free(cred);
    free(s.id);
    return failed ? -1 : marked_n;
}
