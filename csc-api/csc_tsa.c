/*
 * csc_tsa.c - the built-in time-stamping unit (RFC 3161, RFC 5816) and signatures/timestamp
 * (CSC API v2.0.0.2 sec. 11.13, docs/csc-api.md sec. 15), as the front end sees it.
 *
 * The TSA's key pair lives in the HSM like every signing key; its certificate comes from the configured CA
 * with a critical extendedKeyUsage timeStamping (RFC 3161 2.3). Both are kept as a credential record owned
 * by the reserved name STOR_TSA_OWNER: no user can list, authorize or sign with it, and `csc-admin credential
 * renew|disable|destroy` work on it as on any key. Tokens are made by csc-sam alone (sam/sam_op_stamp.c: serial,
 * genTime, policy, accuracy, the signature with the TSA key and the STOR_EV_TIMESTAMP record); this file checks the
 * request, passes the message imprint and nonce with the caller's access token (STAMP), and says at start-up
 * whether a TSA is offered (info.methods) and how long its tokens can be (signDoc's PAdES placeholders).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include "csc_int.h"

#define NONCE_HEX_MAX 64 /* 256 bits */

pki_sig_t csc_pki_sig(const hsm_sign_params_t *p)
{
    pki_sig_t s = {.md_nid = p->md_nid, .mgf1_md_nid = p->mgf1_md_nid, .salt_len = p->salt_len};
    s.scheme = p->scheme == HSM_SIG_RSA_PSS ? PKI_SIG_RSA_PSS : p->scheme == HSM_SIG_ECDSA ? PKI_SIG_ECDSA
             : p->scheme == HSM_SIG_RSA_PKCS1 ? PKI_SIG_RSA_PKCS1 : (pki_sig_scheme_t)0;
    return s;
}

hsm_sign_params_t csc_hsm_sig(const pki_sig_t *p)
{
    hsm_sign_params_t h = {.md_nid = p->md_nid, .mgf1_md_nid = p->mgf1_md_nid, .salt_len = p->salt_len};
    h.scheme = p->scheme == PKI_SIG_RSA_PSS ? HSM_SIG_RSA_PSS : p->scheme == PKI_SIG_ECDSA ? HSM_SIG_ECDSA
             : p->scheme == PKI_SIG_RSA_PKCS1 ? HSM_SIG_RSA_PKCS1 : (hsm_sig_scheme_t)0;
    return h;
}

int csc_pki_hsm_rc(int pki_rc, int cb_rc)
{
    switch (pki_rc) {
    case PKI_OK: return HSM_OK;
    case PKI_ERR_INVAL: return HSM_ERR_INVAL;
    case PKI_ERR_NOMEM: return HSM_ERR_NOMEM;
    case PKI_ERR_CALLBACK: return cb_rc;
    default: return HSM_ERR_INTERNAL;
    }
}

static int tsa_load(csc_t *c, stor_cred_t *cred)
{
    if (c->cfg.tsa_credential == NULL || c->cfg.tsa_credential[0] == '\0')
        return HSM_ERR_NOKEY;
    int rc = stor_cred_get(c->stor, c->cfg.tsa_credential, cred);
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL)
        return HSM_ERR_NOKEY;
    if (rc != STOR_OK)
        return HSM_ERR_UNAVAILABLE;
    if (strcmp(cred->owner, STOR_TSA_OWNER) != 0 || cred->status != STOR_CRED_ENABLED ||
        strcmp(csc_cred_cert_status(cred, time(NULL)), "valid") != 0)
        return HSM_ERR_NOKEY;
    return HSM_OK;
}

int csc_tsa_open(csc_t *c)
{
    c->tsa = false;
    if (c->cfg.tsa_credential == NULL || c->cfg.tsa_credential[0] == '\0')
        return 0;
    pki_der_t d;
    pki_der_init(&d, 64);
    int bad_policy = c->cfg.tsa_policy == NULL || pki_der_oid(&d, c->cfg.tsa_policy) != 0;
    pki_der_free(&d);
    if (bad_policy) {
        fprintf(stderr, "csc: tsa_policy must be a dotted OID when tsa_credential is set\n");
        return -1;
    }
    stor_cred_t *cred = stor_rec_new(sizeof(*cred));
    int rc = cred != NULL ? tsa_load(c, cred) : HSM_ERR_NOMEM;
    stor_rec_free(cred, sizeof(*cred));
    if (rc != HSM_OK) {
        fprintf(stderr, "csc: tsa_credential %s: no enabled time-stamping unit with a valid certificate "
                        "(csc-admin tsa init)\n", c->cfg.tsa_credential);
        return -1;
    }
    c->tsa = true;
    return 0;
}

/* The TSTInfo fields this TSA fills in from its configuration (pki_tst_info encodes them). */
static pki_tst_t tst_fields(const csc_config_t *cfg, int md_nid, const uint8_t *digest, size_t len,
                            const uint8_t serial[16], int64_t now_ms, const uint8_t *nonce, size_t nonce_len)
{
    return (pki_tst_t){.policy = cfg->tsa_policy, .accuracy_ms = cfg->tsa_accuracy_ms, .md_nid = md_nid,
                       .digest = digest, .digest_len = len, .serial = serial, .serial_len = 16,
                       .gen_time_ms = now_ms, .nonce = nonce, .nonce_len = nonce_len};
}

int csc_tsa_token_max(csc_t *c, size_t *out)
{
    stor_cred_t *cred = stor_rec_new(sizeof(*cred));
    uint8_t serial[16], digest[32];
    int rc;

    if (cred == NULL) {
        rc = HSM_ERR_NOMEM;
        goto out;
    }
    if (!c->tsa || (rc = tsa_load(c, cred)) != HSM_OK) {
        rc = HSM_ERR_NOKEY;
        goto out;
    }
    memset(serial, 0x7f, sizeof(serial)); /* csc_tsa_stamp's serials are always 16 bytes */
    memset(digest, 0xff, sizeof(digest)); /* B-T imprints are SHA-256 */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* milliseconds with three digits: the longest genTime */
    pki_tst_t t = tst_fields(&c->cfg, NID_sha256, digest, sizeof(digest), serial, (int64_t)ts.tv_sec * 1000 + 123,
                             NULL, 0);
    pki_sig_t sig;
    pki_tst_sig(cred->key_type == STOR_KEY_RSA, cred->key_curve, &sig);
    rc = csc_pki_hsm_rc(pki_tst_size_max(&t, cred->certs, cred->certs_len, &sig, 256 * 1024, out), HSM_OK);
out:
    stor_rec_free(cred, sizeof(*cred));
    return rc;
}

/* What a refusal of STAMP means to a client: the token's own refusals keep the table's answer (401), the rest are
 * the time-stamping unit's, as they were before csc-sam made the tokens. The HSM_* code for signDoc's callback. */
static int stamp_refused(const csc_sam_call_t *call, csc_err_t *err)
{
    uint32_t code = 0;
    if (call->reply.op != SAM_OP_REFUSED || sam_get_u32(&call->reply, SAM_T_REFUSAL, &code) != SAM_OK)
        code = SAM_REFUSE_UNAVAILABLE; /* no answer: csc-sam cannot be reached */
    switch (code) {
    case SAM_REFUSE_UNAUTHORIZED:
    case SAM_REFUSE_EXPIRED:
    case SAM_REFUSE_NOT_FOUND:
    case SAM_REFUSE_DISABLED:
        return HSM_ERR_UNAVAILABLE; /* err: the access token's row (csc_sam_run) */
    case SAM_REFUSE_NOT_OFFERED:
        *err = (csc_err_t){501, "not_implemented", "The time-stamping unit is not available", 0};
        return HSM_ERR_NOKEY;
    case SAM_REFUSE_CLOCK: /* csc-sam's clock check (clock_check): its log and audit record hold the offset */
        *err = (csc_err_t){503, "temporarily_unavailable",
                           "The time-stamping unit's clock is not synchronised: no time-stamp token can be issued now",
                           0};
        return HSM_ERR_UNAVAILABLE;
    case SAM_REFUSE_UNAVAILABLE:
    case SAM_REFUSE_BUSY:
    case SAM_REFUSE_DB_DOWN:
        *err = (csc_err_t){503, "temporarily_unavailable", "The time-stamping unit is temporarily unavailable",
                           code == SAM_REFUSE_DB_DOWN ? CSC_STORAGE_RETRY_AFTER : 0};
        return HSM_ERR_UNAVAILABLE;
    default:
        *err = (csc_err_t){500, "server_error", "The time-stamping unit could not create the token", 0};
        return HSM_ERR_INTERNAL;
    }
}

int csc_tsa_stamp(csc_t *c, const char *token, const char *cred, int md_nid, const uint8_t *digest, size_t len,
                  const uint8_t *nonce, size_t nonce_len, const char *client, pki_der_t *out, csc_err_t *err)
{
    const csc_hash_alg_t *alg = csc_hash_by_nid(md_nid);
    char who[SAM_CLIENT_MAX + 1];
    csc_sam_call_t call;
    const uint8_t *tst = NULL;
    size_t tst_len = 0;
    int rc = HSM_OK;

    out->len = 0;
    if (!c->tsa || alg == NULL) {
        *err = (csc_err_t){501, "not_implemented", "The time-stamping unit is not available", 0};
        return HSM_ERR_NOKEY;
    }
    if (token == NULL || token[0] == '\0' || strlen(token) > SAM_TOKEN_MAX) {
        *err = (csc_err_t){401, "invalid_token", "The access token is not valid", 0};
        return HSM_ERR_UNAVAILABLE;
    }
    snprintf(who, sizeof(who), "%s", client != NULL && client[0] != '\0' ? client : "-");
    if (csc_sam_begin(c, &call, SAM_OP_STAMP, err) == 0) {
        sam_put_str(&call.b, SAM_T_TOKEN, token);
        if (cred != NULL)
            sam_put_str(&call.b, SAM_T_CRED, cred);
        sam_put_str(&call.b, SAM_T_HASH_ALG, alg->oid);
        sam_put_bytes(&call.b, SAM_T_DIGEST, digest, len);
        sam_put_str(&call.b, SAM_T_CLIENT, who);
        if (nonce != NULL)
            sam_put_bytes(&call.b, SAM_T_NONCE, nonce, nonce_len);
        if (csc_sam_run(c, &call, CSC_ABOUT_TOKEN, NULL, err) != 0)
            rc = stamp_refused(&call, err);
        else if (sam_get_bytes(&call.reply, SAM_T_TST, &tst, &tst_len) != SAM_OK)
            rc = stamp_refused(&call, err);
        else {
            pki_der_raw(out, tst, tst_len);
            if (out->failed) {
                out->len = 0;
                *err = (csc_err_t){503, "temporarily_unavailable", "Out of memory", 0};
                rc = HSM_ERR_NOMEM;
            }
        }
    } else {
        rc = stamp_refused(&call, err);
    }
    csc_sam_end(&call);
    return rc;
}

int csc_m_timestamp(csc_req_t *r)
{
    const char *hash, *algo, *nonce_hex, *s;
    uint8_t digest[STOR_DIGEST_LEN_MAX + 3], nonce[NONCE_HEX_MAX / 2 + 1];
    size_t nonce_len = 0;

    if (!r->csc->tsa) /* not in info.methods */
        return csc_fail(r, 501, "not_implemented", "This method is not implemented by this service");
    /* A service authorization (docs/csc-api.md sec. 1.1): a credential-scope token only serves its credential. */
    if (r->principal.scope == STOR_SCOPE_CREDENTIAL)
        return csc_fail(r, 403, "insufficient_scope", "A credential-scope token only serves its credential");
    if (csc_get_string(r, "hash", &hash, 4 * sizeof(digest) / 3) <= 0)
        return csc_bad(r, "Missing (or invalid type) string parameter hash");
    if (hash[0] == '\0')
        return csc_bad(r, "Empty hash parameter");
    if (csc_req_string(r, "hashAlgo", &algo, STOR_OID_MAX, "Missing (or invalid type) string parameter hashAlgo") < 0)
        return -1;
    int nrc = csc_get_string(r, "nonce", &nonce_hex, NONCE_HEX_MAX);
    if (nrc < 0)
        return csc_bad(r, "Invalid parameter nonce");
    if (csc_get_string(r, "clientData", &s, 4096) < 0)
        return csc_bad(r, "Invalid parameter clientData");
    long len = csc_b64_decode(hash, strlen(hash), digest, sizeof(digest));
    if (len <= 0)
        return csc_bad(r, "Invalid Base64 hash string parameter");
    const csc_hash_alg_t *alg = csc_hash_by_oid(algo);
    if (alg == NULL)
        return csc_bad(r, "Invalid parameter hashAlgo");
    if ((size_t)len != alg->len)
        return csc_bad(r, "Invalid digest value length");
    if (nrc == 1) {
        /* a hexadecimal number (docs/csc-api.md sec. 15), at most 256 bits; odd lengths get a leading zero nibble */
        size_t n = strlen(nonce_hex);
        long got = n > 0 ? pki_unhex(nonce_hex, n, nonce, sizeof(nonce)) : -1;
        if (got <= 0)
            return csc_bad(r, "Invalid parameter nonce");
        nonce_len = (size_t)got;
    }
    pki_der_t tok;
    pki_der_init(&tok, SAM_TST_MAX);
    int rc = csc_tsa_stamp(r->csc, csc_bearer_value(r), NULL, alg->nid, digest, alg->len, nrc == 1 ? nonce : NULL,
                           nonce_len, r->call->client, &tok, &r->err);
    if (rc == HSM_OK) {
        yajl_gen_map_open(r->gen);
        csc_gen_str(r->gen, "timestamp");
        csc_gen_b64(r->gen, tok.p, tok.len);
        yajl_gen_map_close(r->gen);
    }
    pki_der_free(&tok);
    return rc == HSM_OK ? 0 : -1;
}
