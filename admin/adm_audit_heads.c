/*
 * adm_audit_heads.c - the operators' side of the signed audit heads (J11): the audit key is generated in the HSM
 * here (csc-admin audit key-init), exported, and every signed head checked against the log (csc-admin audit
 * verify) or listed for external verifiers. Findings and heads go to the caller's callback; csc-admin
 * (server/srv_audit.c) prints them. csc-sam signs heads (sam/sam_audit_head.c; csc-server never); the signed
 * text is storage's (stor_signed_head_text).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "adm_int.h"

static const uint8_t audit_key_id[HSM_KEYID_LEN] = STOR_AUDIT_KEY_ID;
#define HEAD_TEXT_MAX 160

/* ---- the key --------------------------------------------------------------------- */

static int append_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_audit_append(t, arg);
}

int adm_audit_key_init(stor_env_t *stor, hsm_t *hsm, const char *operator_name, int *created, char *err,
                       size_t err_sz)
{
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .bits = 256, .curve_nid = NID_X9_62_prime256v1};
    uint8_t id[HSM_KEYID_LEN];
    EVP_PKEY *pk = NULL;
    int rc;

    *created = 0;
    if ((rc = hsm_pubkey(hsm, audit_key_id, sizeof(audit_key_id), &pk)) == HSM_OK) {
        EVP_PKEY_free(pk);
        return ADM_OK;
    }
    if (rc != HSM_ERR_NOKEY)
        return ADM_FAIL("cannot look up the audit key in the HSM: %s", hsm_strerror(rc));
    memcpy(id, audit_key_id, sizeof(id));
    if ((rc = hsm_keygen_ex(hsm, &spec, STOR_AUDIT_KEY_LABEL, HSM_KEYGEN_FIXED_ID, id)) != HSM_OK)
        return ADM_FAIL("cannot generate the audit key in the HSM: %s", hsm_strerror(rc));
    *created = 1;
    stor_audit_t a = {.event = STOR_EV_ADMIN, .result = STOR_RES_OK};
    snprintf(a.client, sizeof(a.client), "csc-admin");
    snprintf(a.detail, sizeof(a.detail), "operator=%s action=audit.key-init (EC P-256 audit head key in the HSM)",
             operator_name ? operator_name : "-");
    if ((rc = stor_write(stor, append_fn, &a)) != 0)
        return ADM_FAIL("audit key created, but its audit record failed: %s", stor_strerror(rc));
    return ADM_OK;
}

int adm_audit_key_export(hsm_t *hsm, const char *file, char *err, size_t err_sz)
{
    EVP_PKEY *pk = NULL;
    FILE *f;
    int rc, hrc;

    if ((hrc = hsm_pubkey(hsm, audit_key_id, sizeof(audit_key_id), &pk)) != HSM_OK)
        return ADM_FAIL("no audit key in the HSM (%s): run csc-admin audit key-init", hsm_strerror(hrc));
    if ((f = fopen(file, "wx")) == NULL) {
        rc = ADM_FAIL("cannot create %s: %s", file, strerror(errno));
    } else {
        rc = PEM_write_PUBKEY(f, pk) == 1 ? ADM_OK : ADM_FAIL("cannot write %s", file);
        if (fclose(f) != 0 && rc == ADM_OK)
            rc = ADM_FAIL("cannot write %s: %s", file, strerror(errno));
    }
    EVP_PKEY_free(pk);
    return rc;
}

typedef struct adm_audit_heads_cb {
    stor_signed_head_each_fn fn;
    void *arg;
} adm_audit_heads_cb_t;

/* ---- verification ------------------------------------------------------------------- */

typedef struct heads_check {
    adm_findings_t found;
    EVP_PKEY *pub;
    stor_txn_t *t;
    uint64_t tip;
    uint64_t heads;
    uint64_t last_seq;
    int rc;
} heads_check_t;

static int sig_ok(EVP_PKEY *pub, const stor_signed_head_t *h)
{
    char text[HEAD_TEXT_MAX];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int n = stor_signed_head_text(h, text, sizeof(text)), ok;

    ok = md != NULL && n > 0 && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
         EVP_DigestVerify(md, h->sig, h->sig_len, (const unsigned char *)text, (size_t)n) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static int check_head(const stor_signed_head_t *h, int status, void *arg)
{
    heads_check_t *c = arg;
    stor_audit_t rec;
    char sh[65], lh[65];
    int rc;

    c->heads++;
    if (status != 0) {
        adm_finding(&c->found, "signed head at seq %" PRIu64 ": unreadable (altered)", h->seq);
        return 0;
    }
    c->last_seq = h->seq;
    if (c->pub != NULL && !sig_ok(c->pub, h))
        adm_finding(&c->found, "signed head at seq %" PRIu64 ": signature invalid (forged or altered signed head)", h->seq);
    pki_hex(h->hash, 32, sh);
    rc = stor_txn_audit_get(c->t, h->seq, &rec);
    if (rc == STOR_ERR_NOTFOUND) {
        if (h->seq > c->tip)
            adm_finding(&c->found, "log truncated: signed head at seq %" PRIu64 " but log ends at %" PRIu64, h->seq, c->tip);
        else
            adm_finding(&c->found, "signed head at seq %" PRIu64 ": record %" PRIu64 " is missing from the log", h->seq,
                         h->seq);
    } else if (rc != 0) {
        adm_finding(&c->found, "signed head at seq %" PRIu64 ": record %" PRIu64 " unreadable", h->seq, h->seq);
    } else if (CRYPTO_memcmp(rec.hash, h->hash, 32) != 0) {
        pki_hex(rec.hash, 32, lh);
        adm_finding(&c->found, "signed head at seq %" PRIu64 ": log rewritten (record has hash %s, signed hash %s)", h->seq,
                     lh, sh);
    }
    return 0;
}

static int heads_fn(stor_txn_t *t, void *arg)
{
    heads_check_t *c = arg;
    uint8_t hash[32];
    int rc;

    c->t = t;
    if ((rc = stor_txn_audit_tip(t, &c->tip, hash)) != 0)
        return rc;
    return stor_txn_signed_head_each(t, check_head, c);
}

int adm_audit_verify_heads(stor_env_t *stor, EVP_PKEY *pub, adm_audit_problem_fn fn, void *arg,
                           adm_audit_verdict_t *out, char *err, size_t err_sz)
{
    heads_check_t c = {.found = {fn, arg, 0}, .pub = pub};
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (stor == NULL || fn == NULL || out == NULL)
        return ADM_FAIL("audit verify: invalid arguments");
    if ((rc = stor_read(stor, heads_fn, &c)) != 0)
        return ADM_FAIL("cannot read the signed audit heads: %s", stor_strerror(rc));
    if (c.heads > 0 && pub == NULL)
        adm_finding(&c.found, "signed heads: no audit public key to check the signatures (audit key missing from the HSM)");
    out->problems = c.found.problems;
    out->count = c.heads;
    out->last_seq = c.last_seq;
    return ADM_OK;
}

/* ---- listing (for external verifiers) -------------------------------------------------- */

static int list_fn(stor_txn_t *t, void *arg)
{
    const adm_audit_heads_cb_t *cb = arg;

    return stor_txn_signed_head_each(t, cb->fn, cb->arg);
}

int adm_audit_heads_each(stor_env_t *stor, stor_signed_head_each_fn fn, void *arg, char *err, size_t err_sz)
{
    adm_audit_heads_cb_t cb = {fn, arg};
    int rc;

    if (stor == NULL || fn == NULL)
        return ADM_FAIL("audit heads: invalid arguments");
    if ((rc = stor_read(stor, list_fn, &cb)) != 0)
        return ADM_FAIL("cannot read the signed audit heads: %s", stor_strerror(rc));
    return ADM_OK;
}
