/*
 * adm_audit_heads.c - the operators' side of the signed audit heads (J11): the audit key is generated in the HSM
 * here (csc-admin audit key-init), exported, and every signed head checked against the log (csc-admin audit
 * verify) or listed for external verifiers. csc-server only signs heads (csc-api/csc_audit_sign.c); the signed
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

int adm_audit_key_init(stor_env_t *stor, hsm_t *hsm, const char *operator_name, int *created)
{
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .bits = 256, .curve_nid = NID_X9_62_prime256v1};
    uint8_t id[HSM_KEYID_LEN];
    EVP_PKEY *pk = NULL;
    int rc;

    *created = 0;
    if ((rc = hsm_pubkey(hsm, audit_key_id, sizeof(audit_key_id), &pk)) == HSM_OK) {
        EVP_PKEY_free(pk);
        return 0;
    }
    if (rc != HSM_ERR_NOKEY) {
        fprintf(stderr, "csc: cannot look up the audit key in the HSM: %s\n", hsm_strerror(rc));
        return -1;
    }
    memcpy(id, audit_key_id, sizeof(id));
    if ((rc = hsm_keygen_ex(hsm, &spec, STOR_AUDIT_KEY_LABEL, HSM_KEYGEN_FIXED_ID, id)) != HSM_OK) {
        fprintf(stderr, "csc: cannot generate the audit key in the HSM: %s\n", hsm_strerror(rc));
        return -1;
    }
    *created = 1;
    stor_audit_t a = {.event = STOR_EV_ADMIN, .result = STOR_RES_OK};
    snprintf(a.client, sizeof(a.client), "csc-admin");
    snprintf(a.detail, sizeof(a.detail), "operator=%s action=audit.key-init (EC P-256 audit head key in the HSM)",
             operator_name ? operator_name : "-");
    if ((rc = stor_write(stor, append_fn, &a)) != 0) {
        fprintf(stderr, "csc: audit key created, but its audit record failed: %s\n", stor_strerror(rc));
        return -1;
    }
    return 0;
}

int adm_audit_key_export(hsm_t *hsm, const char *file)
{
    EVP_PKEY *pk = NULL;
    FILE *f;
    int rc = -1, hrc;

    if ((hrc = hsm_pubkey(hsm, audit_key_id, sizeof(audit_key_id), &pk)) != HSM_OK) {
        fprintf(stderr, "csc-admin: no audit key in the HSM (%s): run csc-admin audit key-init\n",
                hsm_strerror(hrc));
        return -1;
    }
    if ((f = fopen(file, "wx")) == NULL) {
        fprintf(stderr, "csc-admin: cannot create %s: %s\n", file, strerror(errno));
    } else {
        rc = PEM_write_PUBKEY(f, pk) == 1 ? 0 : -1;
        if (fclose(f) != 0)
            rc = -1;
    }
    EVP_PKEY_free(pk);
    return rc;
}

/* ---- verification ------------------------------------------------------------------- */

typedef struct heads_check {
    FILE *out;
    EVP_PKEY *pub;
    stor_txn_t *t;
    uint64_t tip;
    uint64_t heads;
    uint64_t last_seq;
    unsigned long problems;
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
        fprintf(c->out, "signed head at seq %" PRIu64 ": unreadable (altered)\n", h->seq);
        c->problems++;
        return 0;
    }
    c->last_seq = h->seq;
    if (c->pub != NULL && !sig_ok(c->pub, h)) {
        fprintf(c->out, "signed head at seq %" PRIu64 ": signature invalid (forged or altered signed head)\n",
                h->seq);
        c->problems++;
    }
    pki_hex(h->hash, 32, sh);
    rc = stor_txn_audit_get(c->t, h->seq, &rec);
    if (rc == STOR_ERR_NOTFOUND) {
        if (h->seq > c->tip)
            fprintf(c->out, "log truncated: signed head at seq %" PRIu64 " but log ends at %" PRIu64 "\n", h->seq,
                    c->tip);
        else
            fprintf(c->out, "signed head at seq %" PRIu64 ": record %" PRIu64 " is missing from the log\n", h->seq,
                    h->seq);
        c->problems++;
    } else if (rc != 0) {
        fprintf(c->out, "signed head at seq %" PRIu64 ": record %" PRIu64 " unreadable\n", h->seq, h->seq);
        c->problems++;
    } else if (CRYPTO_memcmp(rec.hash, h->hash, 32) != 0) {
        pki_hex(rec.hash, 32, lh);
        fprintf(c->out, "signed head at seq %" PRIu64 ": log rewritten (record has hash %s, signed hash %s)\n",
                h->seq, lh, sh);
        c->problems++;
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

int adm_audit_verify_heads(stor_env_t *stor, EVP_PKEY *pub, void *out, unsigned long *problems)
{
    heads_check_t c = {.out = out, .pub = pub};
    int rc;

    *problems = 0;
    if ((rc = stor_read(stor, heads_fn, &c)) != 0) {
        fprintf(stderr, "csc-admin: cannot read the signed audit heads: %s\n", stor_strerror(rc));
        return -1;
    }
    if (c.heads > 0 && pub == NULL) {
        fprintf(c.out, "signed heads: no audit public key to check the signatures (audit key missing from the HSM)\n");
        c.problems++;
    }
    *problems = c.problems;
    if (c.problems == 0 && c.heads > 0)
        fprintf(c.out, "signed heads OK: %" PRIu64 " heads, the last at seq %" PRIu64 "\n", c.heads, c.last_seq);
    else if (c.problems == 0)
        fprintf(c.out, "signed heads: none yet\n");
    else
        fprintf(c.out, "signed heads FAILED: %lu problem%s in %" PRIu64 " heads\n", c.problems,
                c.problems == 1 ? "" : "s", c.heads);
    return 0;
}

/* ---- listing (for external verifiers) -------------------------------------------------- */

static int list_head(const stor_signed_head_t *h, int status, void *arg)
{
    FILE *out = arg;
    char text[HEAD_TEXT_MAX], b64[4 * ((STOR_HEAD_SIG_MAX + 2) / 3) + 1];

    if (status != 0) {
        fprintf(out, "{\"seq\":%" PRIu64 ",\"error\":\"unreadable\"}\n", h->seq);
        return 0;
    }
    if (stor_signed_head_text(h, text, sizeof(text)) < 0)
        return 0;
    oauth_b64_encode(h->sig, h->sig_len, b64, OAUTH_B64_STD);
    fprintf(out, "{\"seq\":%" PRIu64 ",\"time_ms\":%" PRId64 ",\"signed_text\":\"%s\",\"signature\":\"%s\"}\n", h->seq,
            h->time_ms, text, b64);
    return 0;
}

static int list_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_signed_head_each(t, list_head, arg);
}

int adm_audit_heads_list(stor_env_t *stor, void *out)
{
    return stor_read(stor, list_fn, out) == 0 ? 0 : -1;
}
