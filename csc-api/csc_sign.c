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

/* Which digest and scheme: implied by signAlgo, or from hashAlgorithmOID / signAlgoParams. */
static int sign_params(csc_req_t *r, const csc_sign_alg_t *sa, hsm_sign_params_t *p, const csc_hash_alg_t **alg)
{
    memset(p, 0, sizeof(*p));
    p->scheme = sa->scheme;
    if (sa->md_nid != 0) {
        /* signAlgo fixes the digest: hashAlgorithmOID "SHALL be omitted or ignored" (CSC API v2.0.0.2 sec. 11.10). */
        p->md_nid = sa->md_nid;
    } else if (sa->scheme == HSM_SIG_RSA_PSS) {
        const char *b64;
        uint8_t der[PSS_PARAMS_MAX];
        if (csc_req_string(r, "signAlgoParams", &b64, PSS_PARAMS_MAX * 2,
                           "Missing (or invalid type) string parameter signAlgoParams") < 0)
            return -1;
        long len = csc_b64_decode(b64, strlen(b64), der, sizeof(der));
        if (len <= 0 || csc_pss_params_parse(der, (size_t)len, p) != 0)
            return csc_bad(r, "Invalid parameter signAlgoParams");
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

/* Signing needs an enabled credential whose certificate is inside its validity period and not revoked or
 * suspended according to the configured CRLs (J9). Every signing path (signHash, signDoc) calls this. */
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
            return csc_unavailable(r);
        if (!active)
            return csc_bad(r, "The credential identified by credentialID is disabled");
    }
    if (strcmp(csc_cred_cert_status(cred, time(NULL)), "valid") == 0)
        return csc_check_not_revoked(r, cred);
    /* Only the refusal reads the certificate, for the subject the spec's message names. */
    char o[128] = "", cn[128] = "";
    csc_cred_o_cn(cred, o, sizeof(o), cn, sizeof(cn));
    snprintf(r->desc_buf, sizeof(r->desc_buf), "Signing certificate 'O=%s,CN=%s' is expired.", o, cn);
    return csc_bad(r, r->desc_buf);
}

static int sad_error(csc_req_t *r, int rc)
{
    return csc_fail_oauth(r, CSC_ABOUT_SAD, rc, NULL);
}

static int err_set(csc_err_t *err, int status, const char *error, const char *description)
{
    err->status = status;
    err->error = error;
    err->description = description;
    return -1;
}

/* The HSM part of signHash, after the SAD was spent: the {"signatures"} body into g, or err after giving the
 * signatures back to the SAD (audited). Shared by the synchronous path and the asynchronous job. */
static int sign_core(csc_t *c, const uint8_t *key_id, size_t key_id_len, const hsm_sign_params_t *p,
                     const csc_hashes_t *h, const char *sad, const oauth_sign_use_t *use, const uint8_t ref[16],
                     yajl_gen g, csc_err_t *err)
{
    uint8_t *sigbuf = malloc(h->n * HSM_SIG_MAX);
    uint8_t **sigs = malloc(h->n * sizeof(*sigs));
    size_t *lens = malloc(h->n * sizeof(*lens));
    int rc = -1;

    if (sigbuf == NULL || sigs == NULL || lens == NULL) {
        oauth_sign_failed(c->oauth, sad, strlen(sad), use, ref, "out of memory");
        err_set(err, 503, "temporarily_unavailable", "Out of memory");
        goto out;
    }
    for (size_t i = 0; i < h->n; i++)
        sigs[i] = sigbuf + i * HSM_SIG_MAX;
    int hrc = hsm_sign(c->hsm, key_id, key_id_len, p, (const uint8_t *const *)h->ptrs, h->alg->len, h->n, sigs, lens);
    if (hrc != HSM_OK) {
        oauth_sign_failed(c->oauth, sad, strlen(sad), use, ref, hsm_strerror(hrc));
        csc_err_hsm(err, hrc);
        goto out;
    }
    yajl_gen_map_open(g);
    csc_gen_str(g, "signatures");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < h->n; i++)
        csc_gen_b64(g, sigs[i], lens[i]);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    rc = 0;
out:
    free(sigbuf);
    free(sigs);
    free(lens);
    return rc;
}

static int sign_and_reply(csc_req_t *r, const stor_cred_t *cred, const hsm_sign_params_t *p, const csc_hashes_t *h,
                          const char *sad, const oauth_sign_use_t *use, const uint8_t ref[16])
{
    return sign_core(r->csc, cred->key_id, cred->key_id_len, p, h, sad, use, ref, r->gen, &r->err);
}

/* ---- operationMode "A": the same signing as a background job (csc_async.c) ---- */

typedef struct sign_job {
    uint8_t key_id[STOR_KEYID_MAX];
    size_t key_id_len;
    hsm_sign_params_t p;
    csc_hashes_t h;                    /* owned (moved from the request) */
    char sad[SAD_MAX + 1];
    char user[STOR_NAME_MAX + 1];
    char cred[STOR_NAME_MAX + 1];
    char owner[STOR_NAME_MAX + 1];     /* a delegate signs on the owner's behalf; "" otherwise */
    char client[64];
    char detail[STOR_OID_MAX + 1];
    uint8_t ref[16];
    oauth_sign_use_t use;              /* points into this struct */
} sign_job_t;

static int sign_job_run(csc_t *c, void *arg, yajl_gen out, csc_err_t *err)
{
    sign_job_t *j = arg;
    return sign_core(c, j->key_id, j->key_id_len, &j->p, &j->h, j->sad, &j->use, j->ref, out, err);
}

/* The job will not run: its signatures go back to the SAD, with a sign-result record (as a failed HSM call). */
static void sign_job_abort(csc_t *c, void *arg, const char *reason)
{
    sign_job_t *j = arg;
    oauth_sign_failed(c->oauth, j->sad, strlen(j->sad), &j->use, j->ref, reason);
}

static void sign_job_free(void *arg)
{
    sign_job_t *j = arg;
    csc_hashes_free(&j->h);
    OPENSSL_clear_free(j, sizeof(*j));
}

/* Accepted: the SAD is already spent and the STOR_EV_SIGN record written (in the request, so the budget can never
 * be exceeded and the client learns at once about a bad SAD); the HSM runs in the background. */
static int sign_async(csc_req_t *r, const stor_cred_t *cred, const hsm_sign_params_t *p, csc_hashes_t *h,
                      const char *sad, const oauth_sign_use_t *use, const uint8_t ref[16], const csc_async_opts_t *o)
{
    sign_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        oauth_sign_failed(r->csc->oauth, sad, strlen(sad), use, ref, "out of memory");
        csc_async_unreserve(r->csc);
        return csc_unavailable(r);
    }
    memcpy(j->key_id, cred->key_id, cred->key_id_len);
    j->key_id_len = cred->key_id_len;
    j->p = *p;
    j->h = *h;
    memset(h, 0, sizeof(*h)); /* moved */
    snprintf(j->sad, sizeof(j->sad), "%s", sad);
    snprintf(j->user, sizeof(j->user), "%s", use->user);
    snprintf(j->cred, sizeof(j->cred), "%s", use->cred);
    snprintf(j->owner, sizeof(j->owner), "%s", use->owner ? use->owner : "");
    snprintf(j->client, sizeof(j->client), "%s", use->client ? use->client : "");
    snprintf(j->detail, sizeof(j->detail), "%s", use->detail ? use->detail : "");
    memcpy(j->ref, ref, 16);
    j->use = *use;
    j->use.user = j->user;
    j->use.cred = j->cred;
    j->use.owner = j->owner[0] ? j->owner : NULL; /* the request's copy of the credential is gone by then */
    j->use.client = j->client;
    j->use.detail = j->detail;
    j->use.hash_alg = j->h.alg->oid;
    j->use.digests = (const uint8_t *const *)j->h.ptrs;
    csc_async_job_t job = {sign_job_run, sign_job_abort, sign_job_free, j};
    return csc_async_submit(r, o, cred->id, &job);
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

int csc_m_sign_hash(csc_req_t *r)
{
    const char *id, *algo, *sad = NULL, *mode, *s;
    stor_cred_t *cred = NULL;
    csc_hashes_t h = {0};
    hsm_sign_params_t p;
    const csc_hash_alg_t *alg = NULL;
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
    if ((cred = malloc(sizeof(*cred))) == NULL) {
        if (async)
            csc_async_unreserve(r->csc);
        return csc_fail(r, 503, "temporarily_unavailable", "Out of memory");
    }
    if (csc_load_cred(r, id, cred) != 0)
        goto out;

    const csc_sign_alg_t *sa = csc_sign_alg_by_oid(algo);
    if (sa == NULL || sa->key_type != cred->key_type) {
        csc_bad(r, "Invalid parameter signAlgo");
        goto out;
    }
    if (sign_params(r, sa, &p, &alg) != 0 || csc_parse_hashes(r, &h, alg) != 0)
        goto out;
    if ((sad == NULL || sad[0] == '\0') && r->principal.scope == STOR_SCOPE_CREDENTIAL) {
        /* oauth2code: the credential-scope Bearer token is the authorization (CSC API v2.0.0.2 sec. 11.10); its SAD
         * is stored under the token's hash, so it is spent like any SAD. */
        sad = csc_bearer_value(r);
    }
    if (sad == NULL || sad[0] == '\0') {
        csc_bad(r, "Missing (or invalid type) string parameter SAD");
        goto out;
    }
    if (csc_check_signable(r, cred) != 0)
        goto out;

    oauth_sign_use_t use = {
        .user = r->principal.user,
        .cred = cred->id,
        .hash_alg = h.alg->oid,
        .digests = (const uint8_t *const *)h.ptrs,
        .digest_len = h.alg->len,
        .n_digests = h.n,
        .client = r->call->client,
        .detail = sa->oid,
        .owner = strcmp(cred->owner, r->principal.user) != 0 ? cred->owner : NULL, /* a delegate signs */
    };
    uint8_t ref[16];
    int orc = oauth_sad_consume(r->csc->oauth, sad, strlen(sad), &use, ref);
    if (orc != OAUTH_OK) {
        sad_error(r, orc);
        goto out;
    }
    if (async) {
        async = false; /* the reservation passes to sign_async */
        rc = sign_async(r, cred, &p, &h, sad, &use, ref, &ao);
        goto out;
    }
    rc = sign_and_reply(r, cred, &p, &h, sad, &use, ref);
out:
    if (async)
        csc_async_unreserve(r->csc);
    csc_hashes_free(&h);
    if (cred != NULL)
        stor_wipe(cred, sizeof(*cred));
    free(cred);
    return rc;
}
