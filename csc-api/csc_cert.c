/*
 * csc_cert.c - a credential's certificate as the service sees it: its validity, its revocation status from the
 * CRL store (pki/pki_crl.c) checked before every signature (J9), the sweep that ends credentials whose
 * certificate a CRL lists as revoked (J7), and a certificate from the configured CA for a new key (pki_issue_cert).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/x509.h>
#include "csc_int.h"

const char *csc_cred_cert_status(const stor_cred_t *cred, time_t now)
{
    int64_t nb = cred->cert_not_before, na = cred->cert_not_after;
    if (na == 0) {
        /* A record written before the validity was kept with it: read the certificate. */
        const unsigned char *p = cred->certs;
        X509 *ee = cred->certs_len > 0 ? d2i_X509(NULL, &p, cred->certs_len) : NULL;
        int ok = ee != NULL && pki_cert_validity(ee, &nb, &na) == 0;
        X509_free(ee);
        if (!ok)
            return "expired";
    }
    return (int64_t)now < nb || (int64_t)now > na ? "expired" : "valid";
}

/* ---- the service's view ----------------------------------------------------------- */

void csc_cred_o_cn(const stor_cred_t *cred, char *o, size_t o_sz, char *cn, size_t cn_sz)
{
    const unsigned char *p = cred->certs;
    X509 *ee = d2i_X509(NULL, &p, cred->certs_len);

    o[0] = cn[0] = '\0';
    if (ee != NULL) {
        X509_NAME *s = X509_get_subject_name(ee);
        X509_NAME_get_text_by_NID(s, NID_organizationName, o, (int)o_sz);
        X509_NAME_get_text_by_NID(s, NID_commonName, cn, (int)cn_sz);
        X509_free(ee);
    }
}

int csc_cert_check_revocation(csc_t *c, const stor_cred_t *cred, time_t now, const char **why)
{
    *why = "";
    if (c->crl == NULL)
        return PKI_REV_GOOD;
    X509 *ee = pki_x509_cache_get(c->certs, cred->certs, cred->certs_len); /* parsed once per certificate */
    if (ee == NULL) {
        *why = "the certificate cannot be read";
        return PKI_REV_UNKNOWN;
    }
    int rc = pki_crl_check(c->crl, ee, now, why);
    X509_free(ee);
    return rc;
}

typedef struct refuse {
    stor_audit_t audit;
} refuse_t;

static int refuse_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_audit_append(t, &((refuse_t *)arg)->audit);
}

int csc_check_not_revoked(csc_req_t *r, const stor_cred_t *cred)
{
    const char *why;
    int rev = csc_cert_check_revocation(r->csc, cred, time(NULL), &why);
    if (rev == PKI_REV_GOOD)
        return 0;
    refuse_t x;
    memset(&x, 0, sizeof(x));
    x.audit.event = STOR_EV_SIGN;
    x.audit.result = STOR_RES_DENIED;
    snprintf(x.audit.user, sizeof(x.audit.user), "%s", r->principal.user);
    snprintf(x.audit.cred, sizeof(x.audit.cred), "%s", cred->id);
    snprintf(x.audit.client, sizeof(x.audit.client), "%s", r->call->client ? r->call->client : "");
    snprintf(x.audit.detail, sizeof(x.audit.detail), "certificate %s (%s)",
             rev == PKI_REV_REVOKED ? "revoked" : rev == PKI_REV_SUSPENDED ? "suspended" : "status unknown", why);
    if (stor_write(r->csc->stor, refuse_fn, &x) != 0)
        return csc_unavailable(r);
    char o[100] = "", cn[100] = ""; /* with the text, within desc_buf */
    csc_cred_o_cn(cred, o, sizeof(o), cn, sizeof(cn));
    if (rev == PKI_REV_UNKNOWN)
        snprintf(r->desc_buf, sizeof(r->desc_buf),
                 "The revocation status of signing certificate 'O=%s,CN=%s' cannot be confirmed.", o, cn);
    else
        snprintf(r->desc_buf, sizeof(r->desc_buf), "Signing certificate 'O=%s,CN=%s' is %s.", o, cn,
                 rev == PKI_REV_REVOKED ? "revoked" : "suspended");
    return csc_bad(r, r->desc_buf);
}

const char *csc_cred_cert_status_now(csc_t *c, const stor_cred_t *cred, time_t now, bool *usable)
{
    const char *st = csc_cred_cert_status(cred, now), *why;
    *usable = cred->status == STOR_CRED_ENABLED && strcmp(st, "valid") == 0;
    if (strcmp(st, "valid") != 0 || c->crl == NULL)
        return st;
    int rev = csc_cert_check_revocation(c, cred, now, &why);
    if (rev != PKI_REV_GOOD)
        *usable = false;
    return rev == PKI_REV_REVOKED ? "revoked" : rev == PKI_REV_SUSPENDED ? "suspended" : st;
}

/* ---- a revoked credential ends (csc-server's CRL sweep, J7/J9) ---------------------------------------------
 * The one path of csc-server that ends a credential. It destroys no key (csc-server links no key destruction,
 * tests/unit/server/check_symbols): one storage write marks the credential destroyed (stor_txn_cred_change, shared
 * with csc-admin), so it never signs again, and files its key's destruction as "credential revoke ID"
 * (stor_txn_approval_request, never expiring): a job (STOR_APPROVAL_JOB) that csc-sam runs at once (its key-jobs
 * task, sam/sam_keyjobs.c; `csc-admin credential destroy-pending` by hand while csc-sam cannot), or, when
 * crl_destroy_two_person holds it, a request a second operator approves (`csc-admin approve ID`). */

typedef struct revoked {
    const char *id;
    int hold;                  /* the destruction waits for a second operator */
    int marked;                /* out: this write made the change */
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
                   : stor_txn_approval_request(t, "csc-server", STOR_ROLE_KEY_ADMIN, 0, u->hold ? 0 : STOR_APPROVAL_JOB,
                                               3, argv, u->job);
}

/* Mark credential id destroyed (reason revoked, audited with detail) and file its key's destruction (job or, with
 * hold, two-person request; its id in job). *marked = 1 when this call made the change. 0, or -1 with a message
 * in err. */
static int cred_revoked(csc_t *c, const char *id, const char *detail, int hold, int *marked,
                        char job[STOR_NAME_MAX + 1], char *err, size_t err_sz)
{
    revoked_t u = {.id = id, .hold = hold};

    *marked = 0;
    job[0] = '\0';
    u.audit.event = STOR_EV_ADMIN;
    u.audit.result = STOR_RES_OK;
    snprintf(u.audit.cred, sizeof(u.audit.cred), "%s", id);
    snprintf(u.audit.client, sizeof(u.audit.client), "csc-server");
    snprintf(u.audit.detail, sizeof(u.audit.detail),
             "operator=csc-server action=credential.destroy reason=certificate revoked (%s); %s", detail,
             hold ? "key destruction held for a two-person approval" : "key destruction filed for csc-sam");
    int src = stor_write(c->stor, revoked_fn, &u);
    if (src == STOR_ERR_EXISTS || src == STOR_ERR_NOTFOUND || src == STOR_ERR_INVAL)
        return 0; /* nothing to do */
    if (src != 0) {
        snprintf(err, err_sz, "storage: %s (nothing changed; the next sweep tries again)", stor_strerror(src));
        return -1;
    }
    *marked = u.marked;
    snprintf(job, STOR_NAME_MAX + 1, "%s", u.job);
    return 0;
}

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

size_t csc_crl_sweep(csc_t *c)
{
    sweep_t s = {0};
    stor_cred_t *cred = malloc(sizeof(*cred));
    size_t marked_n = 0;

    if (c->crl == NULL || cred == NULL || stor_read(c->stor, sweep_fn, &s) != 0) {
        free(cred);
        free(s.id);
        return 0;
    }
    for (size_t i = 0; i < s.n; i++) {
        const char *why;
        char detail[96], err[256], job[STOR_NAME_MAX + 1];
        int marked = 0;
        if (stor_cred_get(c->stor, s.id[i], cred) != 0 ||
            csc_cert_check_revocation(c, cred, time(NULL), &why) != PKI_REV_REVOKED)
            continue;
        snprintf(detail, sizeof(detail), "seen in a CRL: %s", why);
        if (cred_revoked(c, s.id[i], detail, c->cfg.crl_destroy_two_person, &marked, job, err, sizeof(err)) != 0)
            fprintf(stderr, "crl: credential %s: %s\n", s.id[i], err);
        if (!marked)
            continue;
        marked_n++;
        if (c->cfg.crl_destroy_two_person)
            fprintf(stderr, "crl: credential %s: certificate revoked (%s); credential destroyed, its key waits for a "
                            "second operator: csc-admin approve %s\n", s.id[i], why, job);
        else
            fprintf(stderr, "crl: credential %s: certificate revoked (%s); credential destroyed, its key's destruction "
                            "filed (job %s): csc-sam destroys it\n", s.id[i], why, job);
    }
    stor_wipe(cred, sizeof(*cred));
    free(cred);
    free(s.id);
    return marked_n;
}
