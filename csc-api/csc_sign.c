/* csc_sign.c - signatures/signHash (CSC API v2.0.0.2 sec. 11.10) and the hashes both it and authorize take. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>
#include "csc_int.h"

#define SAD_MAX 512
#define PSS_PARAMS_MAX 256

void csc_hashes_free(csc_hashes_t *h)
{
    free(h->buf);
    free(h->ptrs);
    memset(h, 0, sizeof(*h));
}

static const csc_hash_alg_t *hash_alg_param(csc_req_t *r, bool *absent)
{
    const char *oid;
    *absent = false;
    int rc = csc_get_string(r, "hashAlgorithmOID", &oid, STOR_OID_MAX);
    if (rc == 0) /* v1 name, accepted on the v2 path (docs/csc-api.md sec. 17) */
        rc = csc_get_string(r, "hashAlgo", &oid, STOR_OID_MAX);
    if (rc < 0) {
        csc_bad(r, "Invalid parameter hashAlgorithmOID");
        return NULL;
    }
    if (rc == 0) {
        *absent = true;
        return NULL;
    }
    const csc_hash_alg_t *alg = csc_hash_by_oid(oid);
    if (alg == NULL)
        csc_bad(r, "Invalid parameter hashAlgorithmOID");
    return alg;
}

int csc_parse_hashes(csc_req_t *r, csc_hashes_t *h, const csc_hash_alg_t *alg)
{
    memset(h, 0, sizeof(*h));
    bool v1_name = false;
    yajl_val v = csc_get_value(r, "hashes");
    if (v == NULL && (v = csc_get_value(r, "hash")) != NULL)
        v1_name = true;
    if (v == NULL)
        return 0;
    if (!YAJL_IS_ARRAY(v))
        return csc_bad(r, "Missing (or invalid type) array parameter hash");
    size_t n = v->u.array.len;
    if (n == 0)
        return csc_bad(r, "Empty hash array");
    if (n > r->csc->cfg.max_hashes)
        return csc_bad(r, "Too many hashes in one request");
    if (alg == NULL) {
        bool absent;
        alg = hash_alg_param(r, &absent);
        if (alg == NULL && !absent)
            return -1;
        if (alg == NULL && !v1_name)
            return csc_bad(r, "Missing (or invalid type) string parameter hashAlgorithmOID");
    }

    uint8_t tmp[STOR_DIGEST_LEN_MAX + 3];
    h->buf = malloc(n * STOR_DIGEST_LEN_MAX);
    h->ptrs = malloc(n * sizeof(*h->ptrs));
    if (h->buf == NULL || h->ptrs == NULL) {
        csc_hashes_free(h);
        return csc_fail(r, 503, "temporarily_unavailable", "Out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        yajl_val e = v->u.array.values[i];
        long len = YAJL_IS_STRING(e) && strlen(e->u.string) <= 4 * sizeof(tmp) / 3
                       ? csc_b64_decode(e->u.string, strlen(e->u.string), tmp, sizeof(tmp))
                       : -1;
        if (len <= 0) {
            csc_hashes_free(h);
            return csc_bad(r, "Invalid Base64 hash string parameter");
        }
        if (alg == NULL) /* v1 "hash" without an algorithm: the length decides */
            alg = csc_hash_by_nid(len == 32 ? NID_sha256 : len == 48 ? NID_sha384 : len == 64 ? NID_sha512 : 0);
        if (alg == NULL || (size_t)len != alg->len) {
            csc_hashes_free(h);
            return csc_bad(r, "Invalid digest value length");
        }
        h->ptrs[i] = h->buf + i * STOR_DIGEST_LEN_MAX;
        memcpy(h->ptrs[i], tmp, alg->len);
    }
    h->alg = alg;
    h->n = n;
    return 0;
}

/* Which digest and scheme: implied by signAlgo, or from hashAlgorithmOID / signAlgoParams (whose DER goes into
 * pss, pss_len for csc-sam). */
static int sign_params(csc_req_t *r, const csc_sign_alg_t *sa, hsm_sign_params_t *p, const csc_hash_alg_t **alg,
                       uint8_t pss[PSS_PARAMS_MAX], size_t *pss_len)
{
    memset(p, 0, sizeof(*p));
    *pss_len = 0;
    p->scheme = sa->scheme;
    if (sa->md_nid != 0) {
        /* signAlgo fixes the digest: hashAlgorithmOID "SHALL be omitted or ignored" (CSC API v2.0.0.2 sec. 11.10). */
        p->md_nid = sa->md_nid;
    } else if (sa->scheme == HSM_SIG_RSA_PSS) {
        const char *b64;
        if (csc_req_string(r, "signAlgoParams", &b64, PSS_PARAMS_MAX * 2,
                           "Missing (or invalid type) string parameter signAlgoParams") < 0)
            return -1;
        long len = csc_b64_decode(b64, strlen(b64), pss, PSS_PARAMS_MAX);
        if (len <= 0 || csc_pss_params_parse(pss, (size_t)len, p) != 0)
            return csc_bad(r, "Invalid parameter signAlgoParams");
        *pss_len = (size_t)len;
    } else {
        bool absent;
        const csc_hash_alg_t *h = hash_alg_param(r, &absent);
        if (absent)
            return csc_bad(r, "Missing (or invalid type) string parameter hashAlgorithmOID");
        if (h == NULL)
            return -1;
        p->md_nid = h->nid;
    }
    *alg = csc_hash_by_nid(p->md_nid);
    return *alg != NULL ? 0 : csc_bad(r, "Invalid parameter hashAlgorithmOID");
}

/* Production (J13): credentials created before the policy, or with an override since removed, are refused when
 * they are authorized and when they sign: SCAL 1 unless allow_scal1, one factor unless allow_single_factor (OAuth
 * credentials sign in with password and TOTP, so their expression alone does not decide). */
int csc_check_policy(csc_req_t *r, const stor_cred_t *cred)
{
    const csc_config_t *cfg = &r->csc->cfg;
    if (cfg->environment != CSC_ENV_PRODUCTION)
        return 0;
    if (!cfg->allow_scal1 && cred->scal != 2)
        return csc_bad(r, "The credential is SCAL 1, which this production service does not accept");
    if (!cfg->allow_single_factor && cred->auth_mode == STOR_AUTH_EXPLICIT && oauth_expr_single_factor(cred->auth_expr))
        return csc_bad(r, "The credential's authorization has a single factor, which this production service does not "
                          "accept");
    return 0;
}

/* Signing needs an enabled credential whose certificate is inside its validity period (and not revoked or
 * suspended according to the configured CRLs, J9: csc-sam's check, csc_sam_sign). Every signing path (signHash,
 * signDoc) calls this. */
int csc_check_signable(csc_req_t *r, const stor_cred_t *cred)
{
    if (cred->status != STOR_CRED_ENABLED)
        return csc_bad(r, "The credential identified by credentialID is disabled");
    if (csc_check_policy(r, cred) != 0)
        return -1;
    if (strcmp(cred->owner, r->principal.user) != 0) {
        /* A delegate signs only while the owner is active (J1): a suspended or terminated owner's key is not
         * used by anyone. */
        stor_user_t *ow = malloc(sizeof(*ow));
        int urc = ow != NULL ? stor_user_get(r->csc->stor, cred->owner, ow) : STOR_ERR_NOMEM;
        int active = urc == STOR_OK && ow->status == STOR_USER_ACTIVE;
        if (ow != NULL)
            stor_wipe(ow, sizeof(*ow));
        free(ow);
        if (urc != STOR_OK && urc != STOR_ERR_NOTFOUND)
            return csc_unavailable_stor(r, urc);
        if (!active)
            return csc_bad(r, "The credential identified by credentialID is disabled");
    }
    time_t now = time(NULL);
    if (strcmp(csc_cred_cert_status(cred, now), "valid") == 0)
        return 0;
    /* Only the refusal reads the certificate, for the subject the spec's message names. The spec words only the
     * expired certificate; one whose validity has not begun (a clock stepped back, a certificate dated ahead) is
     * said as such, in the same form. */
    char o[128] = "", cn[128] = "";
    csc_cred_o_cn(cred, o, sizeof(o), cn, sizeof(cn));
    snprintf(r->desc_buf, sizeof(r->desc_buf), "Signing certificate 'O=%s,CN=%s' is %s.", o, cn,
             csc_cred_cert_not_yet_valid(cred, now) ? "not yet valid" : "expired");
    return csc_bad(r, r->desc_buf);
}

/* ---- csc-sam signs (signHash, signDoc) ---- */

int csc_sam_sign(csc_req_t *r, const csc_sign_in_t *in, const csc_err_row_t *overrides, csc_sam_call_t *call)
{
    if (csc_sam_begin(r->csc, call, SAM_OP_SIGN, &r->err) != 0)
        return -1;
    sam_builder_t *b = &call->b;
    csc_sam_put_token(r, call);
    sam_put_str(b, SAM_T_CRED, in->cred->id);
    /* The token's user as this process found it: csc-sam reads that user's row ahead with the token's (one round trip
     * on PostgreSQL), and checks the token's own user. */
    if (r->have_principal && r->principal.user[0] != '\0')
        sam_put_str(b, SAM_T_USER, r->principal.user);
    csc_sam_put_hashes(call, in->alg, in->digests, in->n);
    csc_sam_put_client(r, call);
    if (in->detail != NULL)
        sam_put_str(b, SAM_T_DESCRIPTION, in->detail);
    if (in->sad != NULL && in->sad[0] != '\0') /* else the credential-scope token is the SAD (csc-sam checks) */
        sam_put_str(b, SAM_T_SAD, in->sad);
    if (in->async_ttl > 0)
        sam_put_u32(b, SAM_T_EXPIRES_IN, in->async_ttl);
    sam_put_str(b, SAM_T_SIGN_ALG, in->sign_alg);
    if (in->pss_len > 0)
        sam_put_bytes(b, SAM_T_PSS_PARAMS, in->pss, in->pss_len);
    if (in->async_ttl > 0)
        sam_put_u32(b, SAM_T_ASYNC, 1);
    for (size_t i = 0; in->cms != NULL && i < in->n; i++)
        sam_put_u32(b, SAM_T_CMS, in->cms[i]);
    /* The certificate's revocation status is csc-sam's to decide (and audit, before the SAD is spent); when this
     * process's CRL store already says it is not good, csc-sam looks at the CRL folder again first, so that a
     * signature is never refused later than credentials/info shows the certificate revoked. */
    const char *why;
    if (csc_cert_check_revocation(r->csc, in->cred, time(NULL), &why) != PKI_REV_GOOD)
        sam_put_u32(b, SAM_T_CRL_RELOAD, 1);
    csc_sam_put_request_id(r, call); /* the last tag (tags ascend) */
    if (csc_sam_run(r->csc, call, CSC_ABOUT_SAD, overrides, &r->err) != 0) {
        uint32_t refusal = 0;
        if (call->reply.op == SAM_OP_REFUSED && sam_get_u32(&call->reply, SAM_T_REFUSAL, &refusal) == SAM_OK)
            (void)csc_refuse_cert_status(r, in->cred, refusal);
        csc_sam_end(call);
        return -1;
    }
    if (in->async_ttl == 0) /* operationMode "A" reserves the signatures: they are made later, by the job */
        csc_stats_signed(r->csc, in->sign_alg, sam_msg_count(&call->reply, SAM_T_SIGNATURE));
    return 0;
}

int csc_sam_reserved(csc_t *c, const uint8_t ticket[SAM_TICKET_LEN], const char *give_back, csc_sam_call_t *call,
                     csc_err_t *err)
{
    if (csc_sam_begin(c, call, SAM_OP_SIGN_RESERVED, err) != 0)
        return -1;
    sam_put_u32(&call->b, SAM_T_DECISION, give_back == NULL);
    if (give_back != NULL)
        sam_put_str(&call->b, SAM_T_REASON, give_back);
    sam_put_bytes(&call->b, SAM_T_TICKET, ticket, SAM_TICKET_LEN);
    if (csc_sam_run(c, call, CSC_ABOUT_SAD, NULL, err) != 0) {
        csc_sam_end(call);
        return -1;
    }
    return 0;
}

/* {"signatures":[...]} from SIGN's reply (n signatures, in digest order) into g. */
static int signatures_reply(const sam_msg_t *reply, size_t n, yajl_gen g, csc_err_t *err)
{
    sam_iter_t it;
    const uint8_t *sig;
    size_t len;
    if (sam_msg_count(reply, SAM_T_SIGNATURE) != n) {
        err->status = 503;
        err->error = "temporarily_unavailable";
        err->description = "The service is temporarily unavailable";
        return -1;
    }
    yajl_gen_map_open(g);
    csc_gen_str(g, "signatures");
    yajl_gen_array_open(g);
    sam_iter_init(reply, SAM_T_SIGNATURE, &it);
    while (sam_iter_next(&it, &sig, &len))
        csc_gen_b64(g, sig, len);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    return 0;
}

/* ---- operationMode "A": csc-sam spent the SAD and reserved the signatures; the job has them made (csc_async.c) */

typedef struct sign_job {
    uint8_t ticket[SAM_TICKET_LEN];
    size_t n;
} sign_job_t;

static int sign_job_run(csc_t *c, void *arg, yajl_gen out, csc_err_t *err)
{
    sign_job_t *j = arg;
    csc_sam_call_t call;
    if (csc_sam_reserved(c, j->ticket, NULL, &call, err) != 0)
        return -1;
    int rc = signatures_reply(&call.reply, j->n, out, err);
    csc_sam_end(&call);
    return rc;
}

/* The job will not run: csc-sam gives its signatures back to the SAD, with a sign-result record. */
static void sign_job_abort(csc_t *c, void *arg, const char *reason)
{
    csc_sam_call_t call;
    csc_err_t err;
    if (csc_sam_reserved(c, ((sign_job_t *)arg)->ticket, reason, &call, &err) == 0)
        csc_sam_end(&call);
    else /* csc-sam gives it back itself when the reservation's time is up */
        fprintf(stderr, "csc: a reserved signature could not be given back now: %s\n", err.description);
}

static void sign_job_free(void *arg)
{
    OPENSSL_clear_free(arg, sizeof(sign_job_t));
}

/* Seconds csc-sam keeps an asynchronous request's reservation: its validity period and a minute. */
uint32_t csc_async_reserve_ttl(const csc_async_opts_t *o)
{
    return (uint32_t)(o->validity_ms / 1000 + 60);
}

/* The Bearer token's value (validated by csc_route.c before the method runs), NUL-terminated in r->bearer. */
const char *csc_bearer_value(csc_req_t *r)
{
    const char *p = r->call->authorization + 7;
    size_t n = r->call->authorization_len - 7;
    while (n > 0 && *p == ' ') {
        p++;
        n--;
    }
    if (n >= sizeof(r->bearer))
        return NULL;
    memcpy(r->bearer, p, n);
    r->bearer[n] = '\0';
    return r->bearer;
}

/* ---- signHash's checks of stored rows, and the read cache (read_cache_ms, csc_rcache.c) ----
 * With the cache the principal and the credential's row may be copies kept from an earlier request of the same
 * token (r->cached). Every check below that fails on copies runs again on rows read now (fresh_retry), so a client
 * gets what it gets without the cache; rows go into the cache only once they passed every check here. csc-sam reads
 * them again and decides in any case; when it refuses a request judged on copies, after_refusal checks again too. */

/* The credential: the user's, and a key of signAlgo's type. */
static int cred_checks(csc_req_t *r, const char *id, const csc_sign_alg_t *sa, stor_cred_t *cred)
{
    if (csc_load_cred(r, id, cred) != 0)
        return -1;
    if (sa == NULL || sa->key_type != cred->key_type)
        return csc_bad(r, "Invalid parameter signAlgo");
    return 0;
}

/* The authorization and the credential's state. */
static int signable_checks(csc_req_t *r, const char *sad, const stor_cred_t *cred)
{
    /* oauth2code: without SAD the credential-scope Bearer token is the authorization (CSC API v2.0.0.2 sec. 11.10);
     * its SAD is stored under the token's hash, so csc-sam spends it like any SAD. */
    if ((sad == NULL || sad[0] == '\0') && r->principal.scope != STOR_SCOPE_CREDENTIAL)
        return csc_bad(r, "Missing (or invalid type) string parameter SAD");
    /* Checked here for the spec's messages (the certificate's subject, the policy's reason), and again by csc-sam,
     * which alone decides: a refusal there reads as the credential's ("disabled"), the revocation status (csc-sam's
     * check only) as the spec words it (csc_sam_sign). */
    return csc_check_signable(r, cred);
}

/* A check failed on the cache's copies: 1 when the token and the credential were read again (the check is to run
 * again on them); 0 when they were not copies, or when the token fails now (r->err says how). */
static int fresh_retry(csc_req_t *r)
{
    return r->cached && csc_authenticate_again(r) == 0;
}

/* csc-sam refused (or could not answer) a request judged on copies: the checks of rows again, on rows read now. The
 * request's own checks passed already, so the first of these that fails is what the request gets without the cache,
 * and is the answer; when all pass, csc-sam's stands. */
static void after_refusal(csc_req_t *r, const char *id, const csc_sign_alg_t *sa, const char *sad, stor_cred_t *cred)
{
    csc_err_t sam_err = r->err;
    char desc[sizeof(r->desc_buf)];
    int own = sam_err.description == r->desc_buf;
    if (own)
        memcpy(desc, r->desc_buf, sizeof(desc));
    if (!fresh_retry(r) || cred_checks(r, id, sa, cred) != 0 || signable_checks(r, sad, cred) != 0)
        return;
    r->err = sam_err;
    if (own) {
        memcpy(r->desc_buf, desc, sizeof(desc));
        r->err.description = r->desc_buf;
    }
}

int csc_m_sign_hash(csc_req_t *r)
{
    const char *id, *algo, *sad = NULL, *mode, *s;
    stor_cred_t *cred = NULL;
    csc_hashes_t h = {0};
    hsm_sign_params_t p;
    const csc_hash_alg_t *alg = NULL;
    uint8_t pss[PSS_PARAMS_MAX];
    size_t pss_len = 0;
    int rc = -1;

    if (csc_req_string(r, "credentialID", &id, STOR_NAME_MAX * 4,
                       "Missing (or invalid type) string parameter credentialID") < 0)
        return -1;
    if (csc_get_value(r, "hashes") == NULL && csc_get_value(r, "hash") == NULL)
        return csc_bad(r, "Missing (or invalid type) array parameter hash");
    if (csc_req_string(r, "signAlgo", &algo, STOR_OID_MAX, "Missing (or invalid type) string parameter signAlgo") < 0)
        return -1;
    if (csc_get_string(r, "SAD", &sad, SAD_MAX) < 0)
        return csc_bad(r, "Missing (or invalid type) string parameter SAD");
    if (csc_get_string(r, "operationMode", &mode, 8) < 0 || (mode != NULL && strcmp(mode, "S") != 0 &&
                                                              strcmp(mode, "A") != 0))
        return csc_bad(r, "Invalid parameter operationMode");
    if (csc_get_string(r, "clientData", &s, 4096) < 0)
        return csc_bad(r, "Invalid parameter clientData");
    /* validity_period and response_uri only count with "A" (CSC API v2.0.0.2 sec. 11.10: else ignored). */
    bool async = mode != NULL && strcmp(mode, "A") == 0;
    if (async && r->v1)
        return csc_bad(r, "Invalid parameter operationMode"); /* v1.0.4.0 has no asynchronous mode */
    csc_async_opts_t ao;
    if (async && (csc_async_params(r, &ao) != 0 || csc_async_reserve(r) != 0))
        return -1;
    if ((cred = stor_rec_new(sizeof(*cred))) == NULL) {
        if (async)
            csc_async_unreserve(r->csc);
        return csc_fail(r, 503, "temporarily_unavailable", "Out of memory");
    }
    const csc_sign_alg_t *sa = csc_sign_alg_by_oid(algo);
    if (cred_checks(r, id, sa, cred) != 0 && !(fresh_retry(r) && cred_checks(r, id, sa, cred) == 0))
        goto out;
    if (sign_params(r, sa, &p, &alg, pss, &pss_len) != 0 || csc_parse_hashes(r, &h, alg) != 0)
        goto out;
    if (signable_checks(r, sad, cred) != 0 &&
        !(fresh_retry(r) && cred_checks(r, id, sa, cred) == 0 && signable_checks(r, sad, cred) == 0))
        goto out;
    if (!r->cached)
        csc_rcache_keep(r);

    csc_sign_in_t in = {.cred = cred, .alg = h.alg, .digests = (const uint8_t *const *)h.ptrs, .n = h.n,
                        .sad = sad, .sign_alg = sa->oid, .pss = pss, .pss_len = pss_len,
                        .async_ttl = async ? csc_async_reserve_ttl(&ao) : 0};
    csc_sam_call_t call;
    if (csc_sam_sign(r, &in, NULL, &call) != 0) {
        if (r->cached)
            after_refusal(r, id, sa, sad, cred);
        goto out;
    }
    if (!async) {
        rc = signatures_reply(&call.reply, h.n, r->gen, &r->err);
        csc_sam_end(&call);
        goto out;
    }
    /* Accepted: csc-sam spent the SAD and wrote the STOR_EV_SIGN record (so the budget can never be exceeded and the
     * client learns at once about a bad SAD); the HSM signs in the background, on the ticket. */
    const uint8_t *ticket;
    size_t tlen = 0;
    sign_job_t *j = calloc(1, sizeof(*j));
    int got = sam_get_bytes(&call.reply, SAM_T_TICKET, &ticket, &tlen) == SAM_OK && tlen == SAM_TICKET_LEN;
    if (got) {
        sign_job_t spare; /* out of memory: the ticket is still given back */
        sign_job_t *dst = j != NULL ? j : &spare;
        memcpy(dst->ticket, ticket, SAM_TICKET_LEN);
        dst->n = h.n;
        if (j == NULL)
            sign_job_abort(r->csc, &spare, "out of memory");
        OPENSSL_cleanse(&spare, sizeof(spare));
    }
    csc_sam_end(&call);
    async = false; /* the queue's reservation passes to the job (or is given back below) */
    if (j == NULL || !got) {
        free(j);
        csc_async_unreserve(r->csc);
        csc_unavailable(r);
        goto out;
    }
    csc_async_job_t job = {sign_job_run, sign_job_abort, sign_job_free, j};
    rc = csc_async_submit(r, &ao, cred->id, &job);
out:
    if (async)
        csc_async_unreserve(r->csc);
    csc_hashes_free(&h);
    stor_rec_free(cred, sizeof(*cred));
    return rc;
}
