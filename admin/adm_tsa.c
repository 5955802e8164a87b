/*
 * adm_tsa.c - csc-admin tsa init: the built-in time-stamping unit's key pair is generated in the HSM and its
 * certificate issued by the CA here, in csc-admin; csc-server only loads and uses it (csc-api/csc_tsa.c).
 * Also the demo CA's issuing for csc-admin (adm_issue_cert, over pki_issue_cert).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include "adm_int.h"

int adm_issue_cert(const adm_ca_t *ca, EVP_PKEY *pub, const char *cn, bool tsa, stor_cred_t *cred, char *err,
                   size_t err_sz)
{
    if (ca->refused != NULL) {
        snprintf(err, err_sz, "%s", ca->refused);
        return -1;
    }
    pki_ca_t p = {.cert_file = ca->cert_file, .key_file = ca->key_file, .chain_file = ca->chain_file, .days = ca->days};
    size_t len = 0;
    if (pki_issue_cert(&p, pub, cn, tsa, cred->certs, sizeof(cred->certs), &len, &cred->cert_not_before,
                       &cred->cert_not_after, err, err_sz) != PKI_OK)
        return -1;
    cred->certs_len = (uint32_t)len;
    return 0;
}

/* ---- csc-admin tsa init ------------------------------------------------------------------------------- */

typedef struct put_tsa {
    const stor_cred_t *c;
    stor_audit_t audit;
} put_tsa_t;

static int put_tsa_fn(stor_txn_t *t, void *arg)
{
    put_tsa_t *p = arg;
    int rc = stor_txn_cred_put(t, p->c, 1);
    return rc != 0 ? rc : stor_txn_audit_append(t, &p->audit);
}

int adm_tsa_init(const adm_t *a, const char *id, const hsm_keyspec_t *key, const char *cn, char *err,
                       size_t err_sz)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    EVP_PKEY *pub = NULL;
    bool have_key = false;
    int rc = -1;

    if (c == NULL) {
        snprintf(err, err_sz, "out of memory");
        return -1;
    }
    if (a->hsm == NULL || a->ca == NULL) {
        snprintf(err, err_sz, "creating the TSA needs the HSM and the CA");
        goto out;
    }
    if (id == NULL || id[0] == '\0' || strlen(id) > STOR_NAME_MAX) {
        snprintf(err, err_sz, "TSA id must be 1..%d characters (tsa_credential)", STOR_NAME_MAX);
        goto out;
    }
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->owner, sizeof(c->owner), "%s", STOR_TSA_OWNER);
    snprintf(c->description, sizeof(c->description), "built-in time-stamping unit (RFC 3161)");
    c->status = STOR_CRED_ENABLED;
    c->auth_mode = STOR_AUTH_EXPLICIT; /* never authorized: no auth expression, no verifier */
    c->scal = 2;
    c->multisign = 1;
    c->created_at = time(NULL);
    if (key->type == HSM_KEY_RSA) {
        c->key_type = STOR_KEY_RSA;
        c->key_bits = key->bits;
    } else {
        const char *oid = key->curve_nid == NID_X9_62_prime256v1 ? "1.2.840.10045.3.1.7"
                          : key->curve_nid == NID_secp384r1      ? "1.3.132.0.34"
                          : key->curve_nid == NID_secp521r1      ? "1.3.132.0.35"
                                                                 : NULL;
        if (oid == NULL) {
            snprintf(err, err_sz, "unsupported curve");
            goto out;
        }
        c->key_type = STOR_KEY_EC;
        snprintf(c->key_curve, sizeof(c->key_curve), "%s", oid);
    }
    stor_cred_t *old = malloc(sizeof(*old));
    int grc = old != NULL ? stor_cred_get(a->stor, id, old) : STOR_ERR_NOMEM;
    free(old);
    if (grc != STOR_ERR_NOTFOUND) {
        if (grc == STOR_OK)
            snprintf(err, err_sz, "credential %s exists already", id);
        else
            snprintf(err, err_sz, "storage: %s", stor_strerror(grc));
        goto out;
    }
    uint8_t key_id[HSM_KEYID_LEN];
    int hrc = hsm_keygen(a->hsm, key, c->id, key_id);
    if (hrc != HSM_OK) {
        snprintf(err, err_sz, "key generation in the HSM failed: %s", hsm_strerror(hrc));
        goto out;
    }
    have_key = true;
    memcpy(c->key_id, key_id, sizeof(key_id));
    c->key_id_len = sizeof(key_id);
    if ((hrc = hsm_pubkey(a->hsm, key_id, sizeof(key_id), &pub)) != HSM_OK) {
        snprintf(err, err_sz, "cannot read the public key: %s", hsm_strerror(hrc));
        goto out;
    }
    if (c->key_type == STOR_KEY_EC)
        c->key_bits = (uint32_t)EVP_PKEY_get_bits(pub);
    if (adm_issue_cert(a->ca, pub, cn != NULL ? cn : "CSC time-stamping unit", true, c, err, err_sz) != 0)
        goto out;
    put_tsa_t p = {.c = c};
    p.audit.event = STOR_EV_ADMIN;
    p.audit.result = STOR_RES_OK;
    snprintf(p.audit.cred, sizeof(p.audit.cred), "%s", c->id);
    snprintf(p.audit.client, sizeof(p.audit.client), "csc-admin");
    snprintf(p.audit.detail, sizeof(p.audit.detail), "operator=%s action=tsa.init",
             a->operator_name ? a->operator_name : "-");
    int src = stor_write(a->stor, put_tsa_fn, &p);
    if (src != STOR_OK) {
        if (src == STOR_ERR_EXISTS)
            snprintf(err, err_sz, "credential %s exists already", c->id);
        else
            snprintf(err, err_sz, "storage: %s", stor_strerror(src));
        goto out;
    }
    rc = 0;
out:
    if (rc != 0 && have_key)
        (void)hsm_destroy(a->hsm, c->key_id, c->key_id_len);
    EVP_PKEY_free(pub);
    stor_wipe(c, sizeof(*c));
    free(c);
    return rc;
}
