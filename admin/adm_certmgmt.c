/*
 * adm_certmgmt.c - certificates from an external CA (JIPDEC J6): a PKCS#10 request signed by the HSM key,
 * renewal by request, and the import of the CA's certificate with its chain.
 *
 * The request is built by pki_csr_build from the public key the HSM returns; its CertificationRequestInfo is
 * DER-encoded and hashed there, and the hash is signed by the private key inside the HSM (hsm_sign, through
 * csr_sign), so the key never leaves the token. An import is refused unless the certificate's public key is the credential's HSM key, the
 * certificate is inside its validity, fit for signing (keyUsage digitalSignature or nonRepudiation, not a CA), and
 * its chain leads to a configured trust anchor. Every request, import and refusal is audited (STOR_EV_CERT).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "adm_int.h"


#define ERR ADM_FAIL

#define CHAIN_MAX 8

/* ---- subject names ------------------------------------------------------------------------ */

static int valid_text(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

int adm_subject_build(const char *cn, const char *o, const char *c, X509_NAME **out, char *err, size_t err_sz)
{
    *out = NULL;
    if (!valid_text(cn, 64))
        return ERR("subject CN: 1..64 characters, no control characters");
    if (!valid_text(o, 64))
        return ERR("subject O (--org): 1..64 characters, no control characters");
    if (c == NULL || strlen(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z')
        return ERR("subject C (--country): two upper-case letters (ISO 3166-1 alpha-2, e.g. JP)");
    X509_NAME *n = X509_NAME_new();
    if (n == NULL || !X509_NAME_add_entry_by_txt(n, "C", MBSTRING_ASC, (const unsigned char *)c, -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)o, -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0)) {
        X509_NAME_free(n);
        ERR_clear_error();
        return ERR("subject: not valid UTF-8");
    }
    *out = n;
    return 0;
}

/* ---- the request -------------------------------------------------------------------------------- */

/* A pki_sign_fn over hsm_sign with one key. */
typedef struct csr_signer {
    hsm_t *h;
    const uint8_t *key_id;
    size_t key_id_len;
} csr_signer_t;

/* The HSM's parameters of a pki/ signature scheme (as csc-api/csc_tsa.c maps them for csc-server's signing). */
static hsm_sign_params_t adm_hsm_sig(const pki_sig_t *p)
{
    hsm_sign_params_t h = {.md_nid = p->md_nid, .mgf1_md_nid = p->mgf1_md_nid, .salt_len = p->salt_len};
    h.scheme = p->scheme == PKI_SIG_RSA_PSS ? HSM_SIG_RSA_PSS : p->scheme == PKI_SIG_ECDSA ? HSM_SIG_ECDSA
             : p->scheme == PKI_SIG_RSA_PKCS1 ? HSM_SIG_RSA_PKCS1 : (hsm_sig_scheme_t)0;
    return h;
}

static int csr_sign(void *arg, const pki_sig_t *p, const uint8_t *digest, size_t len, uint8_t *sig, size_t *sig_len)
{
    const csr_signer_t *s = arg;
    hsm_sign_params_t hp = adm_hsm_sig(p);
    const uint8_t *digests[1] = {digest};
    uint8_t *sigs[1] = {sig};
    return hsm_sign(s->h, s->key_id, s->key_id_len, &hp, digests, len, 1, sigs, sig_len);
}

int adm_csr_build(hsm_t *h, const uint8_t *key_id, size_t key_id_len, const X509_NAME *subject, X509_REQ **out,
                  char *err, size_t err_sz)
{
    EVP_PKEY *pub = NULL;
    *out = NULL;
    int hrc = hsm_pubkey(h, key_id, key_id_len, &pub);
    if (hrc != HSM_OK) {
        EVP_PKEY_free(pub);
        ERR_clear_error();
        return ERR("cannot read the public key from the HSM: %s", hsm_strerror(hrc));
    }
    csr_signer_t s = {.h = h, .key_id = key_id, .key_id_len = key_id_len};
    int cb_rc = HSM_OK;
    int rc = pki_csr_build(pub, subject, csr_sign, &s, out, &cb_rc, err, err_sz);
    EVP_PKEY_free(pub);
    if (rc == PKI_ERR_CALLBACK)
        return ERR("the HSM could not sign the certificate request: %s", hsm_strerror(cb_rc));
    return rc == PKI_OK ? 0 : -1;
}

int adm_csr_write(hsm_t *h, const uint8_t *key_id, size_t key_id_len, const X509_NAME *subject, const char *file,
                  char *err, size_t err_sz)
{
    X509_REQ *req;
    if (adm_csr_build(h, key_id, key_id_len, subject, &req, err, err_sz) != 0)
        return -1;
    FILE *f = fopen(file, "w");
    int ok = f != NULL && PEM_write_X509_REQ(f, req) == 1;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    X509_REQ_free(req);
    return ok ? 0 : ERR("cannot write the certificate request to %s", file);
}

/* ---- audit ---------------------------------------------------------------------------------------- */

static void cert_audit(stor_audit_t *x, const adm_t *a, const char *user, const char *cred, uint32_t result,
                       const char *what)
{
    memset(x, 0, sizeof(*x));
    x->event = STOR_EV_CERT;
    x->result = result;
    snprintf(x->user, sizeof(x->user), "%s", user ? user : "");
    snprintf(x->cred, sizeof(x->cred), "%s", cred ? cred : "");
    snprintf(x->client, sizeof(x->client), "csc-admin");
    snprintf(x->detail, sizeof(x->detail), "operator=%s %s", a->operator_name ? a->operator_name : "-", what);
}

static int append_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_audit_append(t, arg);
}

/* Record a refusal; the message in err stays the operator's answer. */
static int refuse(const adm_t *a, const stor_cred_t *c, const char *id, const char *action, const char *err)
{
    stor_audit_t x;
    char what[240];
    snprintf(what, sizeof(what), "action=%s refused: %.180s", action, err);
    cert_audit(&x, a, c != NULL ? c->owner : NULL, id, STOR_RES_DENIED, what);
    (void)stor_write(a->stor, append_fn, &x);
    return -1;
}

/* ---- renewal by request ---------------------------------------------------------------------------- */

typedef struct pend {
    const char *id;
    const uint8_t *key_id;     /* the new key */
    uint32_t key_backup;       /* stor_key_backup_t of the new key */
    uint8_t old[STOR_KEYID_MAX]; /* out: a pending key it supersedes */
    uint32_t old_len;
    stor_audit_t audit;
} pend_t;

static int pend_change(stor_cred_t *c, void *arg)
{
    pend_t *p = arg;
    if (c->status == STOR_CRED_DESTROYED || c->status == STOR_CRED_PENDING)
        return STOR_ERR_EXISTS;
    memcpy(p->old, c->pending_key_id, sizeof(p->old));
    p->old_len = c->pending_key_id_len;
    memcpy(c->pending_key_id, p->key_id, HSM_KEYID_LEN);
    c->pending_key_id_len = HSM_KEYID_LEN;
    c->pending_key_backup = p->key_backup;
    return 0;
}

static int pend_fn(stor_txn_t *t, void *arg)
{
    pend_t *p = arg;
    return stor_txn_cred_change(t, p->id, pend_change, p, &p->audit);
}

/* adm_cred_renew_csr, the request written to csr_file or handed back in *csr_out. */
static int renew_csr(const adm_t *a, const char *id, const char *cn, const char *o, const char *country,
                     const char *csr_file, X509_REQ **csr_out, char *err, size_t err_sz)
{
    stor_cred_t *cur = calloc(1, sizeof(*cur));
    X509_NAME *subj = NULL;
    X509 *ee = NULL;
    uint8_t key_id[HSM_KEYID_LEN];
    int rc = -1, have_key = 0;
    pend_t p = {.id = id, .key_id = key_id, .key_backup = a->key_backup ? STOR_KEY_BACKUP_WRAPPED : STOR_KEY_BACKUP_NO};

    if (cur == NULL)
        return ERR("out of memory");
    if (a->hsm == NULL) {
        ERR("renewal needs the HSM");
        goto out;
    }
    int src = stor_cred_get(a->stor, id, cur);
    if (src != 0) {
        ERR("no credential %s", id);
        goto out;
    }
    if (cur->status == STOR_CRED_DESTROYED || cur->status == STOR_CRED_PENDING) {
        ERR(cur->status == STOR_CRED_DESTROYED ? "credential %s is destroyed"
                                               : "credential %s has no certificate yet: import it first",
            id);
        goto out;
    }
    if (cn != NULL || o != NULL || country != NULL) {
        if (adm_subject_build(cn, o, country, &subj, err, err_sz) != 0)
            goto out;
    } else {
        const unsigned char *q = cur->certs;
        if ((ee = d2i_X509(NULL, &q, cur->certs_len)) == NULL ||
            (subj = X509_NAME_dup(X509_get_subject_name(ee))) == NULL) {
            ERR("cannot read the current certificate's subject: give --cn, --org and --country");
            goto out;
        }
    }
    hsm_keyspec_t spec = {.type = cur->key_type == STOR_KEY_RSA ? HSM_KEY_RSA : HSM_KEY_EC, .bits = cur->key_bits};
    if (cur->key_type == STOR_KEY_EC)
        spec.curve_nid = OBJ_txt2nid(cur->key_curve);
    int hrc = hsm_keygen_ex(a->hsm, &spec, id, a->key_backup ? HSM_KEYGEN_BACKUP : 0, key_id);
    if (hrc != HSM_OK) {
        ERR("key generation in the HSM failed: %s", hsm_strerror(hrc));
        goto out;
    }
    have_key = 1;
    if (csr_out != NULL ? adm_csr_build(a->hsm, key_id, sizeof(key_id), subj, csr_out, err, err_sz) != 0
                        : adm_csr_write(a->hsm, key_id, sizeof(key_id), subj, csr_file, err, err_sz) != 0)
        goto out;
    cert_audit(&p.audit, a, cur->owner, id, STOR_RES_OK,
               "action=credential.renew-csr (new key pending its certificate; the old key signs until the import)");
    if ((src = stor_write(a->stor, pend_fn, &p)) != 0) {
        ERR(src == STOR_ERR_EXISTS ? "credential %s changed meanwhile" : "storage error", id);
        goto out;
    }
    have_key = 0;
    if (p.old_len > 0) /* an earlier renewal request that never got its certificate */
        (void)hsm_destroy(a->hsm, p.old, p.old_len);
    rc = 0;
out:
    if (have_key)
        (void)hsm_destroy(a->hsm, key_id, sizeof(key_id));
    if (rc != 0)
        refuse(a, cur, id, "credential.renew-csr", err);
    if (rc != 0 && csr_out != NULL) {
        X509_REQ_free(*csr_out);
        *csr_out = NULL;
    }
    X509_free(ee);
    X509_NAME_free(subj);
    OPENSSL_clear_free(cur, sizeof(*cur));
    return rc;
}

int adm_cred_renew_csr(const adm_t *a, const char *id, const char *cn, const char *o, const char *country,
                       const char *csr_file, char *err, size_t err_sz)
{
    return renew_csr(a, id, cn, o, country, csr_file, NULL, err, err_sz);
}

int adm_cred_renew_csr_mem(const adm_t *a, const char *id, const char *cn, const char *o, const char *country,
                           X509_REQ **csr_out, char *err, size_t err_sz)
{
    *csr_out = NULL;
    return renew_csr(a, id, cn, o, country, NULL, csr_out, err, err_sz);
}

/* ---- import ----------------------------------------------------------------------------------------- */

static X509 *read_certs(const char *file, STACK_OF(X509) *more)
{
    FILE *f = fopen(file, "r");
    X509 *first = NULL, *x;
    if (f == NULL)
        return NULL;
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (first == NULL)
            first = x;
        else if (more == NULL || !sk_X509_push(more, x))
            X509_free(x);
    }
    ERR_clear_error();
    fclose(f);
    return first;
}

/* The chain from ee to a trust anchor, ee first, as concatenated DER; -1 with the reason. */
static int verify_chain(const char *anchors, X509 *ee, STACK_OF(X509) *untrusted, uint8_t *out, uint32_t *out_len,
                        char *err, size_t err_sz)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *chain = NULL;
    int rc = -1;

    if (anchors == NULL || anchors[0] == '\0') {
        ERR("no trust anchors configured (trust_anchors)");
        goto out;
    }
    if (store == NULL || ctx == NULL || X509_STORE_load_file(store, anchors) != 1) {
        ERR("cannot read the trust anchors %s", anchors);
        goto out;
    }
    if (X509_STORE_CTX_init(ctx, store, ee, untrusted) != 1) {
        ERR("out of memory");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        ERR("the certificate chain does not lead to a trust anchor: %s",
            X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    chain = X509_STORE_CTX_get1_chain(ctx);
    if (chain == NULL || sk_X509_num(chain) > CHAIN_MAX) {
        ERR("the certificate chain is longer than %d certificates", CHAIN_MAX);
        goto out;
    }
    uint8_t *p = out;
    for (int i = 0; i < sk_X509_num(chain); i++) {
        int l = i2d_X509(sk_X509_value(chain, i), NULL);
        if (l <= 0 || (size_t)(p - out) + (size_t)l > STOR_CERTS_MAX) {
            ERR("certificate chain too large (at most %d bytes)", STOR_CERTS_MAX);
            goto out;
        }
        i2d_X509(sk_X509_value(chain, i), &p);
    }
    *out_len = (uint32_t)(p - out);
    rc = *out_len > 0 ? 0 : ERR("empty certificate chain");
out:
    ERR_clear_error();
    sk_X509_pop_free(chain, X509_free);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}

typedef struct imp {
    const char *id;
    const uint8_t *key_id;      /* the key the certificate was checked against */
    uint32_t key_id_len;
    const stor_cred_t *fresh;   /* certs, validity */
    uint8_t old[STOR_KEYID_MAX]; /* out: the key the import replaced (renewal), to destroy */
    uint32_t old_len;
    stor_audit_t audit;
} imp_t;

static int imp_change(stor_cred_t *c, void *arg)
{
    imp_t *p = arg;
    p->old_len = 0; /* decided afresh on each run: a batch may run again */
    if (c->status == STOR_CRED_DESTROYED)
        return STOR_ERR_EXISTS;
    const uint8_t *target = c->pending_key_id_len > 0 ? c->pending_key_id : c->key_id;
    uint32_t target_len = c->pending_key_id_len > 0 ? c->pending_key_id_len : c->key_id_len;
    if (target_len != p->key_id_len || memcmp(target, p->key_id, target_len) != 0)
        return STOR_ERR_EXISTS; /* changed since the check */
    if (c->pending_key_id_len > 0) {
        memcpy(p->old, c->key_id, sizeof(p->old));
        p->old_len = c->key_id_len;
        memcpy(c->key_id, c->pending_key_id, sizeof(c->key_id));
        c->key_id_len = c->pending_key_id_len;
        c->key_backup = c->pending_key_backup;
        c->pending_key_backup = 0;
        c->backups = 0; /* backups of the replaced key restore nothing now (adm_backup.c restore_refused) */
        c->backup_last_at = 0;
        memset(c->pending_key_id, 0, sizeof(c->pending_key_id));
        c->pending_key_id_len = 0;
    }
    memcpy(c->certs, p->fresh->certs, p->fresh->certs_len);
    c->certs_len = p->fresh->certs_len;
    c->cert_not_before = p->fresh->cert_not_before;
    c->cert_not_after = p->fresh->cert_not_after;
    if (c->status == STOR_CRED_PENDING)
        c->status = STOR_CRED_ENABLED;
    return 0;
}

static int imp_fn(stor_txn_t *t, void *arg)
{
    imp_t *p = arg;
    return stor_txn_cred_change(t, p->id, imp_change, p, &p->audit);
}

int adm_cred_import(const adm_t *a, const char *id, const char *cert_file, const char *chain_file,
                          char *err, size_t err_sz)
{
    return adm_cred_import_certs(a, id, cert_file, NULL, chain_file, NULL, err, err_sz);
}

int adm_cred_import_certs(const adm_t *a, const char *id, const char *cert_file, X509 *ee_given,
                          const char *chain_file, STACK_OF(X509) *chain_given, char *err, size_t err_sz)
{
    stor_cred_t *cur = calloc(1, sizeof(*cur)), *fresh = calloc(1, sizeof(*fresh));
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509 *ee = NULL;
    EVP_PKEY *pub = NULL;
    int rc = -1, found = 0;
    imp_t p = {.id = id};

    if (cur == NULL || fresh == NULL || untrusted == NULL) {
        ERR("out of memory");
        goto out;
    }
    if (a->hsm == NULL) {
        ERR("importing a certificate needs the HSM");
        goto out;
    }
    if (stor_cred_get(a->stor, id, cur) != 0) {
        ERR("no credential %s", id);
        goto out;
    }
    found = 1;
    if (cur->status == STOR_CRED_DESTROYED) {
        ERR("credential %s is destroyed", id);
        goto out;
    }
    if (ee_given != NULL) { /* csc-sam: csc-admin read the files */
        ee = X509_dup(ee_given);
        for (int i = 0; ee != NULL && chain_given != NULL && i < sk_X509_num(chain_given); i++) {
            X509 *x = X509_dup(sk_X509_value(chain_given, i));
            if (x == NULL || !sk_X509_push(untrusted, x)) {
                X509_free(x);
                X509_free(ee);
                ee = NULL;
            }
        }
        if (ee == NULL) {
            ERR("out of memory");
            goto out;
        }
    } else if ((ee = read_certs(cert_file, untrusted)) == NULL) {
        ERR("cannot read a PEM certificate from %s", cert_file);
        goto out;
    }
    if (ee_given == NULL && chain_file != NULL) {
        X509 *first = read_certs(chain_file, untrusted);
        if (first == NULL || !sk_X509_push(untrusted, first)) {
            X509_free(first);
            ERR("cannot read PEM certificates from %s", chain_file);
            goto out;
        }
    }
    p.key_id = cur->pending_key_id_len > 0 ? cur->pending_key_id : cur->key_id;
    p.key_id_len = cur->pending_key_id_len > 0 ? cur->pending_key_id_len : cur->key_id_len;
    int hrc = hsm_pubkey(a->hsm, p.key_id, p.key_id_len, &pub);
    if (hrc != HSM_OK) {
        ERR("cannot read the credential's public key from the HSM: %s", hsm_strerror(hrc));
        goto out;
    }
    EVP_PKEY *cert_key = X509_get0_pubkey(ee);
    if (cert_key == NULL || EVP_PKEY_eq(cert_key, pub) != 1) {
        ERR("the certificate's public key does not match the credential's key in the HSM");
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(ee)) >= 0) {
        ERR("the certificate is not valid yet (notBefore is in the future)");
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(ee)) <= 0) {
        ERR("the certificate has expired");
        goto out;
    }
    uint32_t ku = X509_get_key_usage(ee);
    if (X509_check_ca(ee) != 0 || ku == UINT32_MAX || (ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)) == 0) {
        ERR("the certificate is not fit for signing (keyUsage digitalSignature or nonRepudiation, not a CA)");
        goto out;
    }
    if (verify_chain(a->trust_anchors, ee, untrusted, fresh->certs, &fresh->certs_len, err, err_sz) != 0)
        goto out;
    if (pki_cert_validity(ee, &fresh->cert_not_before, &fresh->cert_not_after) != 0) {
        ERR("cannot read the certificate's validity");
        goto out;
    }
    char subj[160] = "", what[240];
    pki_dn(X509_get_subject_name(ee), subj, sizeof(subj));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(ee), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    snprintf(what, sizeof(what), "action=credential.import%s serial=%s subject=%s",
             cur->pending_key_id_len > 0 ? " (renewal: old key destroyed)" : "", hex ? hex : "?", subj);
    OPENSSL_free(hex);
    BN_free(bn);
    cert_audit(&p.audit, a, cur->owner, id, STOR_RES_OK, what);
    p.fresh = fresh;
    int src = stor_write(a->stor, imp_fn, &p);
    if (src != 0) {
        ERR(src == STOR_ERR_EXISTS ? "credential %s changed meanwhile: run the command again" : "storage error", id);
        goto out;
    }
    rc = 0;
    if (p.old_len > 0) { /* J7: the renewed credential's old key is destroyed */
        hrc = hsm_destroy(a->hsm, p.old, p.old_len);
        if (hrc != HSM_OK && hrc != HSM_ERR_NOKEY)
            rc = ERR("the certificate is imported, but the HSM could not destroy the old key (%s)", hsm_strerror(hrc));
    }
out:
    if (rc != 0 && p.audit.event == 0)
        refuse(a, found ? cur : NULL, id, "credential.import", err);
    ERR_clear_error();
    EVP_PKEY_free(pub);
    X509_free(ee);
    sk_X509_pop_free(untrusted, X509_free);
    OPENSSL_clear_free(cur, sizeof(*cur));
    OPENSSL_clear_free(fresh, sizeof(*fresh));
    return rc;
}
