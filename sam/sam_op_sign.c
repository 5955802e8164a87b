/*
 * sam_op_sign.c - csc-sam's SIGN and SIGN_RESERVED (sam_core.h): the only place a user's key signs.
 *
 * SIGN, in this order, each step refusing (audited: STOR_EV_SIGN, DENIED) what it cannot verify:
 *   1. who: the caller's access token (sam_principal); a credential-scope token serves its own credential only;
 *   2. the credential, from storage: the user's or delegated to the user (sam_load_cred);
 *   3. signable now: enabled, the production policy, a delegate's owner still active, the certificate inside its
 *      validity period and not revoked or suspended by the SAM's own CRL store (crl_dir; SAM_REFUSE_REVOKED etc.);
 *   4. how: HASH_ALG a digest this service signs (every DIGEST of its length), SIGN_ALG a signature algorithm of
 *      the key's type over that digest (PSS parameters with the same digest);
 *   5. the SAD (SAD, or the credential-scope token itself): oauth_sad_consume checks it is the user's, for this
 *      credential, unexpired, with budget, and that every digest is bound to it, spends it and writes the decision
 *      record in one storage transaction;
 *   6. the HSM signs the digests, or with CMS the digest of the CMS signed attributes the SAM builds itself over each
 *      bound digest (pki_cms_signed_attrs: content type, message digest, the credential's certificate, signing
 *      time), so a SAD bound to a document's digest never signs anything else; a failure gives the budget back
 *      (oauth_sign_failed, audited).
 * With ASYNC step 6 is deferred: the SAM keeps what it verified as a reservation under a random TICKET (in memory,
 * at most TICKETS_MAX, for EXPIRES_IN seconds) and answers the ticket; SIGN_RESERVED then signs it (DECISION 1) or
 * gives the budget back (DECISION 0). A reservation nobody comes back for within its time is given back at the next
 * SIGN or SIGN_RESERVED, and all of them when csc-sam stops; a csc-sam killed with reservations leaves their budget
 * spent (never overspent). A give-back is acknowledged only once its write is done: when storage fails it, DECISION 0
 * is refused and the reservation kept (as one past its time is, for the next sweep).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "sam_core.h"
#include "sam_int.h"

#define TICKETS_MAX 1024                /* reservations kept at once (the front end's async queue is smaller) */
#define TICKET_TTL_MAX (7u * 24 * 3600) /* the longest a reservation is kept, seconds */

/* What SIGN verified and will sign (now, or later as a reservation). */
typedef struct job {
    struct job *next;
    uint8_t ticket[SAM_TICKET_LEN];
    int64_t expires_ms;                /* CLOCK_REALTIME */
    oauth_t *oauth;                    /* for the refund */
    uint8_t key_id[STOR_KEYID_MAX];
    size_t key_id_len;
    uint8_t *certs;                    /* CMS: the credential's certificates (end entity first) */
    size_t certs_len;
    hsm_sign_params_t p;
    size_t n, dlen;
    uint8_t *digests;                  /* n digests of dlen bytes */
    const uint8_t **ptrs;              /* into digests */
    uint8_t *cms;                      /* SAM_CMS_* per digest, 0 = the digest itself */
    int any_cms;
    char sad[SAM_TOKEN_MAX + 1];
    char user[STOR_NAME_MAX + 1], cred[STOR_NAME_MAX + 1], owner[STOR_NAME_MAX + 1];
    char client[SAM_CLIENT_MAX + 1], detail[SAM_DETAIL_MAX + 1], alg[SAM_OID_MAX + 1];
    uint8_t ref[16];
    oauth_sign_use_t use;              /* points into this job */
} job_t;

static pthread_mutex_t tickets_mu = PTHREAD_MUTEX_INITIALIZER;
static job_t *tickets;
static size_t n_tickets;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_free(job_t *j)
{
    OPENSSL_clear_free(j->certs, j->certs_len);
    OPENSSL_clear_free(j->digests, j->n * SAM_DIGEST_LEN_MAX);
    free(j->ptrs);
    free(j->cms);
    OPENSSL_clear_free(j, sizeof(*j));
}

/* Give j's signatures back to its SAD, with the sign-result record (one write). @return OAUTH_OK, or why not (said on
 * stderr: the budget stays spent, never overspent) */
static int job_refund(job_t *j, const char *reason)
{
    int rc = oauth_sign_failed(j->oauth, j->sad, strlen(j->sad), &j->use, j->ref, reason);
    if (rc != OAUTH_OK)
        fprintf(stderr, "csc-sam: a signature's budget could not be given back: %s\n", oauth_strerror(rc));
    return rc;
}

/* Put a reservation whose give-back failed back in the table (under its ticket, with its time), to be given back
 * when the front end asks again or when its time is up. It was in the table a moment ago: TICKETS_MAX may be passed
 * by the few that come back at once. */
static void keep_again(job_t *j)
{
    pthread_mutex_lock(&tickets_mu);
    j->next = tickets;
    tickets = j;
    n_tickets++;
    pthread_mutex_unlock(&tickets_mu);
}

/* Unlink the reservations past their time (under tickets_mu) into *gone, to be given back outside the lock. */
static void take_expired(int64_t now, job_t **gone)
{
    for (job_t **pp = &tickets; *pp != NULL;) {
        job_t *j = *pp;
        if (j->expires_ms > now) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        n_tickets--;
        j->next = *gone;
        *gone = j;
    }
}

/* Give back every reservation of list; keep: one whose give-back fails goes back in the table (tried again at the next
 * sweep), else it is dropped with its budget spent (csc-sam stopping). */
static void refund_all(job_t *list, const char *reason, int keep)
{
    while (list != NULL) {
        job_t *next = list->next;
        if (job_refund(list, reason) != OAUTH_OK && keep)
            keep_again(list);
        else
            job_free(list);
        list = next;
    }
}

static void sweep_expired(void)
{
    job_t *gone = NULL;
    pthread_mutex_lock(&tickets_mu);
    take_expired(now_ms(), &gone);
    pthread_mutex_unlock(&tickets_mu);
    refund_all(gone, "the front end did not come back for the reserved signature", 1);
}

void sam_op_sign_release_all(const char *reason)
{
    pthread_mutex_lock(&tickets_mu);
    job_t *all = tickets;
    tickets = NULL;
    n_tickets = 0;
    pthread_mutex_unlock(&tickets_mu);
    refund_all(all, reason, 0);
}

/* Keep j under a fresh ticket. @return 0, or -1 when full (j not kept) */
static int reserve(job_t *j, uint32_t ttl_s)
{
    if (ttl_s == 0 || ttl_s > TICKET_TTL_MAX)
        ttl_s = TICKET_TTL_MAX;
    if (RAND_bytes(j->ticket, sizeof(j->ticket)) != 1)
        return -1;
    j->expires_ms = now_ms() + (int64_t)ttl_s * 1000;
    pthread_mutex_lock(&tickets_mu);
    int ok = n_tickets < TICKETS_MAX;
    if (ok) {
        j->next = tickets;
        tickets = j;
        n_tickets++;
    }
    pthread_mutex_unlock(&tickets_mu);
    return ok ? 0 : -1;
}

/* The reservation of ticket, unlinked; NULL when unknown (or already taken). Compared in constant time. */
static job_t *take_ticket(const uint8_t *ticket)
{
    job_t *found = NULL;
    pthread_mutex_lock(&tickets_mu);
    for (job_t **pp = &tickets; *pp != NULL; pp = &(*pp)->next)
        if (CRYPTO_memcmp((*pp)->ticket, ticket, SAM_TICKET_LEN) == 0) {
            found = *pp;
            *pp = found->next;
            n_tickets--;
            break;
        }
    pthread_mutex_unlock(&tickets_mu);
    return found;
}

/* ---- the checks before anything is spent ---- */

/* The certificate's revocation status by the SAM's own CRL store (looked at again first when the front end's store
 * says the certificate is not good: reload). @return 0, or SAM_REFUSE_REVOKED / SUSPENDED / CERT_UNKNOWN with the
 * CRL's reason in buf (the audit record's detail, as csc-server wrote it before csc-sam alone decided) */
static uint32_t crl_refusal(const sam_server_config_t *cfg, X509 *ee, time_t now, int reload, char *buf, size_t sz)
{
    const char *reason = "";
    if (reload)
        (void)pki_crl_reload(cfg->crl); /* says on stderr what it could not read; the sweep follows (generation) */
    int rev = pki_crl_check(cfg->crl, ee, now, &reason);
    if (rev == PKI_REV_GOOD)
        return 0;
    snprintf(buf, sz, "certificate %s (%s)",
             rev == PKI_REV_REVOKED ? "revoked" : rev == PKI_REV_SUSPENDED ? "suspended" : "status unknown", reason);
    return rev == PKI_REV_REVOKED ? SAM_REFUSE_REVOKED : rev == PKI_REV_SUSPENDED ? SAM_REFUSE_SUSPENDED
                                                                                  : SAM_REFUSE_CERT_UNKNOWN;
}

/* The credential may sign now (step 3). @return 0, or the refusal code with *why (in why_buf for a CRL's) */
static uint32_t signable(const sam_server_config_t *cfg, const sam_msg_t *req, const stor_cred_t *cred,
                         const char *user, const char **why, char *why_buf, size_t why_sz)
{
    time_t now = time(NULL);
    if (cred->status != STOR_CRED_ENABLED) {
        *why = "credential not enabled";
        return SAM_REFUSE_DISABLED;
    }
    if ((*why = sam_policy_refusal(cfg, cred)) != NULL)
        return SAM_REFUSE_DISABLED;
    if (strcmp(cred->owner, user) != 0) {
        /* A delegate signs only while the owner is active (J1). */
        stor_user_t *ow = malloc(sizeof(*ow));
        int urc = ow != NULL ? stor_user_get(cfg->stor, cred->owner, ow) : STOR_ERR_NOMEM;
        int active = urc == STOR_OK && ow->status == STOR_USER_ACTIVE;
        if (ow != NULL)
            stor_wipe(ow, sizeof(*ow));
        free(ow);
        if (urc != STOR_OK && urc != STOR_ERR_NOTFOUND) {
            *why = "storage unavailable";
            return sam_refusal_of_stor(urc);
        }
        if (!active) {
            *why = "the owner of the delegated credential is not active";
            return SAM_REFUSE_DISABLED;
        }
    }
    X509 *ee = pki_x509_cache_get(cfg->certs, cred->certs, cred->certs_len);
    int64_t nb = cred->cert_not_before, na = cred->cert_not_after;
    uint32_t code = 0;
    if (ee == NULL || (na == 0 && pki_cert_validity(ee, &nb, &na) != 0)) {
        *why = "the certificate cannot be read";
        code = SAM_REFUSE_DISABLED;
    } else if ((int64_t)now < nb || (int64_t)now > na) {
        *why = "certificate expired or not yet valid";
        code = SAM_REFUSE_DISABLED;
    } else if (cfg->crl != NULL &&
               (code = crl_refusal(cfg, ee, now, sam_msg_count(req, SAM_T_CRL_RELOAD) > 0, why_buf, why_sz)) != 0) {
        *why = why_buf;
    }
    X509_free(ee);
    return code;
}

static int dotted_nid(const char *oid)
{
    ASN1_OBJECT *o = OBJ_txt2obj(oid, 1); /* dotted only: no names */
    int nid = o != NULL ? OBJ_obj2nid(o) : NID_undef;
    ASN1_OBJECT_free(o);
    return nid;
}

/* Step 4: the HSM parameters of SIGN_ALG (and PSS_PARAMS) over HASH_ALG for a key of key_type. @return 0, or the
 * tag the refusal is about */
static unsigned sign_params(const sam_msg_t *req, uint32_t key_type, job_t *j)
{
    char sign_alg[SAM_OID_MAX + 1];
    const uint8_t *pss;
    size_t pss_len = 0, l;
    sam_text(req, SAM_T_HASH_ALG, j->alg, sizeof(j->alg));
    sam_text(req, SAM_T_SIGN_ALG, sign_alg, sizeof(sign_alg));
    int has_pss = sam_get_bytes(req, SAM_T_PSS_PARAMS, &pss, &pss_len) == SAM_OK;

    int hnid = dotted_nid(j->alg);
    const char *oid = pki_md_oid(hnid, &j->dlen);
    if (oid == NULL || strcmp(oid, j->alg) != 0)
        return SAM_T_HASH_ALG;
    sam_iter_t it;
    const uint8_t *d;
    size_t count = sam_msg_count(req, SAM_T_DIGEST); /* 1..SAM_DIGESTS_MAX (the decoder) */
    j->digests = malloc(count * SAM_DIGEST_LEN_MAX);
    j->ptrs = malloc(count * sizeof(*j->ptrs));
    j->cms = calloc(count, 1);
    if (j->digests == NULL || j->ptrs == NULL || j->cms == NULL)
        return SAM_T_DIGEST;
    sam_iter_init(req, SAM_T_DIGEST, &it);
    for (j->n = 0; sam_iter_next(&it, &d, &l); j->n++) {
        j->ptrs[j->n] = j->digests + j->n * SAM_DIGEST_LEN_MAX;
        memcpy(j->digests + j->n * SAM_DIGEST_LEN_MAX, d, l < SAM_DIGEST_LEN_MAX ? l : SAM_DIGEST_LEN_MAX);
        if (l != j->dlen)
            return SAM_T_DIGEST;
    }
    memset(&j->p, 0, sizeof(j->p));
    j->p.md_nid = hnid;
    int snid = dotted_nid(sign_alg), md = NID_undef, pk = NID_undef;
    if (snid == NID_rsassaPss && key_type == STOR_KEY_RSA && has_pss) {
        pki_sig_t s;
        if (pki_pss_params_parse(pss, pss_len, &s) != PKI_OK || s.md_nid != hnid)
            return SAM_T_PSS_PARAMS;
        j->p.scheme = HSM_SIG_RSA_PSS;
        j->p.mgf1_md_nid = s.mgf1_md_nid;
        j->p.salt_len = s.salt_len;
        return 0;
    }
    if (has_pss)
        return SAM_T_PSS_PARAMS;
    if (snid == NID_rsaEncryption && key_type == STOR_KEY_RSA) { /* PKCS #1 v1.5 over HASH_ALG */
        j->p.scheme = HSM_SIG_RSA_PKCS1;
        return 0;
    }
    if (snid == NID_undef || !OBJ_find_sigid_algs(snid, &md, &pk) || md != hnid)
        return SAM_T_SIGN_ALG;
    if (pk == NID_rsaEncryption && key_type == STOR_KEY_RSA)
        j->p.scheme = HSM_SIG_RSA_PKCS1;
    else if (pk == NID_X9_62_id_ecPublicKey && key_type == STOR_KEY_EC)
        j->p.scheme = HSM_SIG_ECDSA;
    else
        return SAM_T_SIGN_ALG;
    return 0;
}

/* ---- signing ---- */

/* Step 6: sign j into b as SIGN's reply (signatures, and the signing time of CMS attributes), or refuse after
 * giving the budget back. */
static int sign_job(const sam_server_config_t *cfg, job_t *j, const sam_msg_t *req, sam_builder_t *b)
{
    uint8_t *sigbuf = malloc(j->n * HSM_SIG_MAX), **sigs = malloc(j->n * sizeof(*sigs));
    uint8_t *tbsbuf = j->any_cms ? malloc(j->n * EVP_MAX_MD_SIZE) : NULL;
    const uint8_t **tbs = malloc(j->n * sizeof(*tbs));
    size_t *lens = malloc(j->n * sizeof(*lens));
    int64_t t = now_ms();
    X509 *ee = NULL;
    const char *why = "out of memory";
    int hrc = HSM_ERR_INTERNAL, rc;

    if (sigbuf == NULL || sigs == NULL || tbs == NULL || lens == NULL || (j->any_cms && tbsbuf == NULL))
        goto failed;
    if (j->any_cms) {
        if ((ee = pki_x509_cache_get(cfg->certs, j->certs, j->certs_len)) == NULL) {
            why = "the certificate cannot be read";
            goto failed;
        }
    }
    for (size_t i = 0; i < j->n; i++) {
        sigs[i] = sigbuf + i * HSM_SIG_MAX;
        tbs[i] = j->ptrs[i];
        if (j->cms[i] == 0)
            continue;
        /* What is signed is the digest of the signed attributes over the bound digest (RFC 5652 5.4). */
        pki_cms_in_t in = {.digest = j->ptrs[i], .digest_len = j->dlen,
                           .signing_time_ms = j->cms[i] == SAM_CMS_SIGNING_TIME ? t : 0};
        pki_der_t attrs;
        unsigned mdl = 0;
        pki_der_init(&attrs, 64 * 1024);
        int ok = pki_cms_signed_attrs(&in, ee, &attrs) == PKI_OK &&
                 EVP_Digest(attrs.p, attrs.len, tbsbuf + i * EVP_MAX_MD_SIZE, &mdl, EVP_get_digestbynid(j->p.md_nid),
                            NULL) &&
                 mdl == j->dlen;
        pki_der_free(&attrs);
        if (!ok) {
            why = "the CMS signed attributes could not be built";
            goto failed;
        }
        tbs[i] = tbsbuf + i * EVP_MAX_MD_SIZE;
    }
    hrc = cfg->hsm != NULL ? hsm_sign(cfg->hsm, j->key_id, j->key_id_len, &j->p, tbs, j->dlen, j->n, sigs, lens)
                           : HSM_ERR_UNAVAILABLE;
    if (hrc != HSM_OK) {
        why = hsm_strerror(hrc);
        goto failed;
    }
    rc = sam_build_init(b, req->op | SAM_OP_REPLY, req->id); /* SIGN's or SIGN_RESERVED's (the same fields) */
    for (size_t i = 0; i < j->n; i++)
        sam_put_bytes(b, SAM_T_SIGNATURE, sigs[i], lens[i]);
    if (j->any_cms)
        sam_put_u64(b, SAM_T_TIME_MS, (uint64_t)t);
    rc = rc != SAM_OK ? rc : b->err;
    goto out;
failed:
    (void)job_refund(j, why); /* nothing is returned: the budget goes back with its record, or stays spent */
    /* ABOUT SIGNATURE: the device failed (UNAVAILABLE: it is not there now), not the request. */
    rc = sam_refuse(b, req, hrc == HSM_ERR_UNAVAILABLE ? SAM_REFUSE_UNAVAILABLE
                                                                          : SAM_REFUSE_INTERNAL,
                    why, SAM_T_SIGNATURE);
out:
    X509_free(ee);
    OPENSSL_clear_free(tbsbuf, j->any_cms ? j->n * EVP_MAX_MD_SIZE : 0);
    free(sigbuf);
    free(sigs);
    free(tbs);
    free(lens);
    return rc;
}

/* Steps 1 and 2 read in one transaction: the token, its user and the credential, the three rows read ahead before
 * the first is asked for (one round trip on PostgreSQL, three before). The user's row is the one USER names: the
 * user csc-server found for the same token, a hint of which row to read and nothing more (the token's own user is
 * the one checked; a wrong or absent hint costs a read of its own). */
typedef struct who_read {
    const sam_server_config_t *cfg;
    const sam_msg_t *req;
    const char *cred_id;
    const char *hint;        /* NULL: none */
    oauth_principal_t *who;
    stor_cred_t *cred;
    int ran;                 /* the callback ran (else stor_read failed to begin) */
    int orc;                 /* step 1: OAUTH_OK, or why not */
    uint32_t code;           /* step 2: 0, or the refusal (after step 1 only) */
} who_read_t;

static int who_read_fn(stor_txn_t *t, void *arg)
{
    who_read_t *w = arg;
    w->ran = 1;
    (void)stor_txn_cred_prefetch(t, w->cred_id); /* read ahead only: a malformed id reads nothing, as the get */
    w->orc = sam_principal_txn(w->cfg, t, w->req, 0, w->hint, w->who);
    if (w->orc == OAUTH_OK)
        w->code = sam_load_cred_txn(t, w->who, w->cred_id, w->cred);
    return 0;
}

/* Steps 1 to 4 into j; 0, or the refusal (audited) already in b as *rc. */
static int verify(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, job_t *j, int *rc)
{
    oauth_principal_t who;
    stor_cred_t *cred = stor_rec_new(sizeof(*cred));
    const char *why = "out of memory";
    char why_buf[SAM_REASON_MAX + 1], hint[SAM_NAME_MAX + 1];
    uint32_t code = SAM_REFUSE_UNAVAILABLE;
    unsigned about = 0;

    sam_text(req, SAM_T_CRED, j->cred, sizeof(j->cred));
    sam_text(req, SAM_T_CLIENT, j->client, sizeof(j->client));
    sam_text(req, SAM_T_USER, hint, sizeof(hint));
    if (cred == NULL)
        goto refuse;
    who_read_t w = {.cfg = cfg, .req = req, .cred_id = j->cred, .hint = hint[0] != '\0' ? hint : NULL, .who = &who,
                    .cred = cred};
    int src = stor_read(cfg->stor, who_read_fn, &w);
    int orc = w.ran ? w.orc : oauth_rc(src);
    if (orc != OAUTH_OK) {
        code = sam_refusal_of_oauth(orc);
        why = oauth_strerror(orc);
        about = SAM_T_TOKEN;
        goto refuse;
    }
    snprintf(j->user, sizeof(j->user), "%s", who.user);
    about = SAM_T_CRED;
    if ((code = w.code) != 0) {
        why = code == SAM_REFUSE_NOT_FOUND ? "unknown credential" : "storage unavailable";
        goto refuse;
    }
    if ((code = signable(cfg, req, cred, who.user, &why, why_buf, sizeof(why_buf))) != 0)
        goto refuse;
    if ((about = sign_params(req, cred->key_type, j)) != 0) {
        code = SAM_REFUSE_BAD_MESSAGE;
        why = "hash or signature algorithm, digest or parameters not usable with this key";
        goto refuse;
    }
    sam_iter_t it;
    const uint8_t *v;
    size_t l, k = 0;
    sam_iter_init(req, SAM_T_CMS, &it);
    for (; sam_iter_next(&it, &v, &l) && k < j->n; k++)
        j->any_cms |= (j->cms[k] = (uint8_t)sam_be32(v)); /* SAM_CMS_*: the decoder bounded it */
    if (sam_msg_count(req, SAM_T_CMS) != 0 && sam_msg_count(req, SAM_T_CMS) != j->n) {
        code = SAM_REFUSE_BAD_MESSAGE;
        why = "CMS must name every digest or none";
        about = SAM_T_CMS;
        goto refuse;
    }
    /* The SAD: the field, or the credential-scope token itself (its SAD is stored under the token's hash). */
    sam_text(req, sam_msg_count(req, SAM_T_SAD) > 0 ? SAM_T_SAD : SAM_T_TOKEN, j->sad, sizeof(j->sad));
    if (sam_msg_count(req, SAM_T_SAD) == 0 && who.scope != STOR_SCOPE_CREDENTIAL) {
        code = SAM_REFUSE_NOT_FOUND;
        why = "no SAD";
        about = SAM_T_SAD;
        goto refuse;
    }
    memcpy(j->key_id, cred->key_id, cred->key_id_len);
    j->key_id_len = cred->key_id_len;
    if (j->any_cms) {
        if ((j->certs = malloc(cred->certs_len + 1)) == NULL) {
            code = SAM_REFUSE_UNAVAILABLE;
            why = "out of memory";
            about = 0;
            goto refuse;
        }
        memcpy(j->certs, cred->certs, cred->certs_len);
        j->certs_len = cred->certs_len;
    }
    snprintf(j->owner, sizeof(j->owner), "%s", strcmp(cred->owner, who.user) != 0 ? cred->owner : "");
    stor_rec_free(cred, sizeof(*cred));
    return 0;
refuse:
    sam_audit_denied(cfg, STOR_EV_SIGN, j->user, j->cred, j->client, "csc-sam: %s", why);
    *rc = sam_refuse(b, req, code, why, about);
    stor_rec_free(cred, sizeof(*cred));
    return -1;
}

int sam_op_sign(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    int rc;
    job_t *j = calloc(1, sizeof(*j));
    sweep_expired();
    if (j == NULL)
        return sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "out of memory", 0);
    if (verify(cfg, req, b, j, &rc) != 0) {
        job_free(j);
        return rc;
    }
    /* Step 5: spend and audit in one transaction. The audit detail: the front end's words (signDoc's formats) or
     * the signature algorithm, then the HTTP request's id (whole: the words are cut to leave it room). */
    char id[SAM_REQUEST_ID_MAX + 1], words[SAM_DETAIL_MAX + 1];
    if (sam_request_id(req, id) != 0) {
        job_free(j);
        return sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE, "a request id of other characters than [A-Za-z0-9._-]",
                          SAM_T_REQUEST_ID);
    }
    sam_text(req, sam_msg_count(req, SAM_T_DESCRIPTION) > 0 ? SAM_T_DESCRIPTION : SAM_T_SIGN_ALG, words,
             sizeof(words));
    if (id[0] == '\0')
        snprintf(j->detail, sizeof(j->detail), "%s", words);
    else
        snprintf(j->detail, sizeof(j->detail), "%.*s request_id=%s",
                 (int)(sizeof(j->detail) - 1 - strlen(" request_id=") - strlen(id)), words, id);
    j->oauth = cfg->oauth;
    j->use = (oauth_sign_use_t){.user = j->user, .cred = j->cred, .hash_alg = j->alg, .digests = j->ptrs,
                                .digest_len = j->dlen, .n_digests = j->n, .client = j->client, .detail = j->detail,
                                .owner = j->owner[0] != '\0' ? j->owner : NULL};
    int orc = oauth_sad_consume(cfg->oauth, j->sad, strlen(j->sad), &j->use, j->ref);
    if (orc != OAUTH_OK) {
        job_free(j);
        return sam_refuse_oauth(b, req, orc, SAM_T_SAD);
    }
    if (sam_msg_count(req, SAM_T_ASYNC) == 0) {
        rc = sign_job(cfg, j, req, b);
        job_free(j);
        return rc;
    }
    uint32_t ttl = 0;
    (void)sam_get_u32(req, SAM_T_EXPIRES_IN, &ttl);
    uint8_t ticket[SAM_TICKET_LEN];
    if (reserve(j, ttl) != 0) {
        (void)job_refund(j, "too many reserved signatures");
        job_free(j);
        return sam_refuse(b, req, SAM_REFUSE_FULL, "too many reserved signatures", SAM_T_TICKET);
    }
    memcpy(ticket, j->ticket, sizeof(ticket)); /* j belongs to the table now */
    rc = sam_build_init(b, SAM_OP_SIGN | SAM_OP_REPLY, req->id);
    sam_put_bytes(b, SAM_T_TICKET, ticket, sizeof(ticket));
    OPENSSL_cleanse(ticket, sizeof(ticket));
    return rc != SAM_OK ? rc : b->err;
}

int sam_op_sign_reserved(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    const uint8_t *ticket;
    size_t len;
    uint32_t decision = 0;
    char reason[SAM_REASON_MAX + 1];
    sweep_expired();
    (void)sam_get_bytes(req, SAM_T_TICKET, &ticket, &len);
    (void)sam_get_u32(req, SAM_T_DECISION, &decision);
    job_t *j = take_ticket(ticket);
    if (j == NULL) {
        sam_audit_denied(cfg, STOR_EV_SIGN, "", "", "", "csc-sam: unknown, expired or used reservation ticket");
        return sam_refuse(b, req, SAM_REFUSE_NOT_FOUND, "no such reservation", SAM_T_TICKET);
    }
    if (decision == 1) {
        int rc = sign_job(cfg, j, req, b);
        job_free(j);
        return rc;
    }
    sam_text(req, SAM_T_REASON, reason, sizeof(reason));
    int orc = job_refund(j, reason[0] != '\0' ? reason : "given back by the front end");
    if (orc != OAUTH_OK) {
        /* Not given back, so not acknowledged: the reservation stays (the front end may ask again; its time running
         * out gives it back otherwise, as csc-api expects of a refusal). */
        keep_again(j);
        return sam_refuse_oauth(b, req, orc, SAM_T_TICKET);
    }
    job_free(j);
    int rc = sam_build_init(b, SAM_OP_SIGN_RESERVED | SAM_OP_REPLY, req->id);
    return rc != SAM_OK ? rc : b->err;
}
