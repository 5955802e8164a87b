/* adm_cred.c - operator actions behind csc-admin: users, credentials, certificates from the CA. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "adm_int.h"


#define ERR ADM_FAIL

static void admin_audit(stor_audit_t *a, const adm_t *ad, const char *user, const char *cred, const char *action)
{
    memset(a, 0, sizeof(*a));
    a->event = STOR_EV_ADMIN;
    a->result = STOR_RES_OK;
    snprintf(a->user, sizeof(a->user), "%s", user ? user : "");
    snprintf(a->cred, sizeof(a->cred), "%s", cred ? cred : "");
    snprintf(a->client, sizeof(a->client), "csc-admin");
    snprintf(a->detail, sizeof(a->detail), "operator=%s action=%s", ad->operator_name ? ad->operator_name : "-",
             action);
}

/* ---- users ------------------------------------------------------------------ */

typedef struct put_user {
    stor_user_t *u;
    stor_audit_t audit;
} put_user_t;

static int put_user_fn(stor_txn_t *t, void *arg)
{
    put_user_t *p = arg;
    int rc = stor_txn_user_put(t, p->u, 1);
    return rc != 0 ? rc : stor_txn_audit_append(t, &p->audit);
}

int adm_user_add_ev(const adm_t *a, const char *name, const char *password, const char *evidence,
                          char *otpauth_uri, size_t uri_sz, char *totp_b32, size_t b32_sz, char *err, size_t err_sz)
{
    stor_user_t *u = calloc(1, sizeof(*u));
    put_user_t p;
    char action[STOR_DESC_MAX + 32];
    int rc = -1;

    if (u == NULL)
        return ERR("out of memory");
    if (evidence != NULL && adm_evidence_check(evidence) != 0) {
        ERR("evidence reference must be 1..%d printable characters", STOR_DESC_MAX);
        goto out;
    }
    if (strlen(name) == 0 || strlen(name) > STOR_NAME_MAX) {
        ERR("user name must be 1..%d characters", STOR_NAME_MAX);
        goto out;
    }
    if (strcmp(name, STOR_TSA_OWNER) == 0) { /* owns the TSA's key (csc-api/csc_tsa.c) */
        ERR("user name %s is reserved", name);
        goto out;
    }
    if (strlen(password) < 8) {
        ERR("password must have at least 8 characters");
        goto out;
    }
    snprintf(u->name, sizeof(u->name), "%s", name);
    snprintf(u->evidence, sizeof(u->evidence), "%s", evidence != NULL ? evidence : "");
    u->status = STOR_USER_ACTIVE;
    u->created_at = time(NULL);
    if (oauth_secret_hash(password, strlen(password), a->scrypt_log2n, u->pw_verifier, &u->pw_verifier_len) != 0 ||
        oauth_totp_new_secret(u->totp_secret) != 0) {
        ERR("cannot derive the password verifier or the TOTP secret");
        goto out;
    }
    u->totp_secret_len = OAUTH_TOTP_SECRET_LEN;
    if (oauth_base32_encode(u->totp_secret, u->totp_secret_len, totp_b32, b32_sz) != 0 ||
        oauth_totp_uri(a->issuer, name, u->totp_secret, u->totp_secret_len, otpauth_uri, uri_sz) != 0) {
        ERR("output buffer too small");
        goto out;
    }
    p.u = u;
    snprintf(action, sizeof(action), "user.add%s%s", u->evidence[0] ? " evidence=" : "", u->evidence);
    admin_audit(&p.audit, a, name, NULL, action);
    int src = stor_write(a->stor, put_user_fn, &p);
    if (src == STOR_ERR_EXISTS)
        ERR("user %s exists already", name);
    else if (src == STOR_ERR_INVAL)
        ERR("invalid user name (printable ASCII without spaces)");
    else if (src != 0)
        ERR("storage: %s", stor_strerror(src));
    else
        rc = 0;
out:
    OPENSSL_clear_free(u, sizeof(*u));
    return rc;
}

/* ---- credentials ---------------------------------------------------------------- */

typedef struct put_cred {
    const stor_cred_t *c;
    stor_audit_t audit;
} put_cred_t;

static int put_cred_fn(stor_txn_t *t, void *arg)
{
    put_cred_t *p = arg;
    stor_user_t *u = malloc(sizeof(*u));
    int rc = u == NULL ? STOR_ERR_NOMEM : stor_txn_user_get(t, p->c->owner, u);
    OPENSSL_clear_free(u, sizeof(*u));
    if (rc == 0)
        rc = stor_txn_cred_put(t, p->c, 1);
    return rc != 0 ? rc : stor_txn_audit_append(t, &p->audit);
}

static const char *curve_oid(int nid)
{
    switch (nid) {
    case NID_X9_62_prime256v1:
        return "1.2.840.10045.3.1.7";
    case NID_secp384r1:
        return "1.3.132.0.34";
    case NID_secp521r1:
        return "1.3.132.0.35";
    default:
        return NULL;
    }
}

static int valid_expr(const char *e)
{
    static const char *const ok[] = {"PIN", "OTP", "PIN AND OTP", "PIN OR OTP", "OTP AND PIN", "OTP OR PIN",
                                     /* the out-of-band one-time code of credentials/getChallenge */
                                     "CHALLENGE", "PIN AND CHALLENGE", "CHALLENGE AND PIN",
                                     /* the user's approval on the service's page (authorize 202 + authorizeCheck) */
                                     "APPROVAL", "PIN AND APPROVAL", "APPROVAL AND PIN"};
    for (size_t i = 0; i < ADM_ARRAY_SIZE(ok); i++)
        if (strcmp(e, ok[i]) == 0)
            return 1;
    return 0;
}

unsigned adm_pin_min(const adm_t *a)
{
    return a->pin_min_length >= ADM_PIN_MIN ? a->pin_min_length : ADM_PIN_MIN;
}

static int valid_pin(const char *pin, unsigned min)
{
    size_t n = pin != NULL ? strlen(pin) : 0;
    if (n < min || n > ADM_PIN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (pin[i] < '0' || pin[i] > '9')
            return 0;
    return 1;
}

static int cred_fill(const adm_t *a, const adm_cred_spec_t *s, stor_cred_t *c, char *err, size_t err_sz)
{
    if (s->id != NULL) {
        if (strlen(s->id) == 0 || strlen(s->id) > STOR_NAME_MAX)
            return ERR("credential id must be 1..%d characters", STOR_NAME_MAX);
        snprintf(c->id, sizeof(c->id), "%s", s->id);
    } else {
        uint8_t rnd[8];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
            return ERR("no randomness");
        int n = snprintf(c->id, sizeof(c->id), "cred-");
        for (size_t i = 0; i < sizeof(rnd); i++)
            n += snprintf(c->id + n, sizeof(c->id) - (size_t)n, "%02x", rnd[i]);
    }
    snprintf(c->owner, sizeof(c->owner), "%s", s->owner);
    if (!valid_expr(s->auth_expr))
        return ERR("auth expression must be one of PIN, OTP, PIN AND OTP, PIN OR OTP, CHALLENGE, PIN AND CHALLENGE, "
                   "APPROVAL, PIN AND APPROVAL");
    if (s->oauth2code && (strstr(s->auth_expr, "CHALLENGE") != NULL || strstr(s->auth_expr, "APPROVAL") != NULL))
        return ERR("the CHALLENGE and APPROVAL objects need auth mode explicit (credentials/authorize)");
    snprintf(c->auth_expr, sizeof(c->auth_expr), "%s", s->auth_expr);
    if (strstr(s->auth_expr, "PIN") != NULL && s->pin == NULL) {
        c->pin_unset = 1; /* the owner sets it (/enroll, /account): no operator ever knows it */
    } else if (strstr(s->auth_expr, "PIN") != NULL) {
        if (!valid_pin(s->pin, adm_pin_min(a)))
            return ERR("the PIN must be %u..%d digits (pin_min_length)", adm_pin_min(a), ADM_PIN_MAX);
        if (oauth_secret_hash(s->pin, strlen(s->pin), a->scrypt_log2n, c->pin_verifier, &c->pin_verifier_len) != 0)
            return ERR("cannot derive the PIN verifier");
    }
    if (s->scal != 1 && s->scal != 2)
        return ERR("SCAL must be 1 or 2");
    if (s->multisign < 1 || s->multisign > 10000000)
        return ERR("multisign must be 1..10000000");
    if (s->description != NULL && strlen(s->description) > STOR_DESC_MAX)
        return ERR("description too long");
    snprintf(c->description, sizeof(c->description), "%s", s->description ? s->description : "");
    if (s->qualifier != NULL) {
        /* country_law_type (CSC Note 33): lower-case letters, digits and underscores */
        size_t n = strlen(s->qualifier);
        if (n == 0 || n >= sizeof(c->qualifier) || strspn(s->qualifier, "abcdefghijklmnopqrstuvwxyz0123456789_") != n)
            return ERR("signature qualifier: 1..63 of a-z, 0-9 and _");
        snprintf(c->qualifier, sizeof(c->qualifier), "%s", s->qualifier);
    }
    c->status = STOR_CRED_ENABLED;
    c->auth_mode = s->oauth2code ? STOR_AUTH_OAUTH2CODE : STOR_AUTH_EXPLICIT;
    c->scal = s->scal;
    c->multisign = s->multisign;
    c->created_at = time(NULL);
    if (s->key.type == HSM_KEY_RSA) {
        c->key_type = STOR_KEY_RSA;
        c->key_bits = s->key.bits;
    } else {
        const char *oid = curve_oid(s->key.curve_nid);
        if (oid == NULL)
            return ERR("unsupported curve");
        c->key_type = STOR_KEY_EC;
        snprintf(c->key_curve, sizeof(c->key_curve), "%s", oid);
    }
    return 0;
}

int adm_cred_create(const adm_t *a, const adm_cred_spec_t *s, char *id_out, size_t id_sz, char *err,
                          size_t err_sz)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    EVP_PKEY *pub = NULL;
    bool have_key = false;
    put_cred_t p;
    int rc = -1;

    if (c == NULL)
        return ERR("out of memory");
    int want_csr = s->csr_file != NULL || s->csr_out != NULL;
    if (s->csr_out != NULL)
        *s->csr_out = NULL;
    if (a->hsm == NULL || (a->ca == NULL && !want_csr)) {
        ERR("creating a credential needs the HSM and the CA");
        goto out;
    }
    /* Production policy (J13): SCAL 2 with two factors, and no certificates from a CA key in a file, unless the
     * configuration says otherwise. Checked before any key is made. */
    if (a->production && !a->allow_scal1 && s->scal != 2) {
        ERR("SCAL 1 credentials are refused in production (allow_scal1 = yes overrides)");
        goto out;
    }
    if (a->production && !a->allow_single_factor && !s->oauth2code && oauth_expr_single_factor(s->auth_expr)) {
        ERR("--auth \"%s\": one factor satisfies it; production requires two (e.g. \"PIN AND OTP\"; "
            "allow_single_factor = yes overrides)", s->auth_expr);
        goto out;
    }
    if (!want_csr && a->ca->refused != NULL) {
        ERR("%s", a->ca->refused);
        goto out;
    }
    stor_user_t *u = malloc(sizeof(*u));
    int urc = u != NULL ? stor_user_get(a->stor, s->owner, u) : STOR_ERR_NOMEM;
    OPENSSL_clear_free(u, sizeof(*u));
    if (urc != 0) {
        ERR("no user %s", s->owner);
        goto out;
    }
    if (cred_fill(a, s, c, err, err_sz) != 0)
        goto out;
    uint8_t key_id[HSM_KEYID_LEN];
    int hrc = hsm_keygen_ex(a->hsm, &s->key, c->id, a->key_backup ? HSM_KEYGEN_BACKUP : 0, key_id);
    if (hrc != HSM_OK) {
        ERR("key generation in the HSM failed: %s", hsm_strerror(hrc));
        goto out;
    }
    have_key = true;
    c->key_backup = a->key_backup ? STOR_KEY_BACKUP_WRAPPED : STOR_KEY_BACKUP_NO;
    memcpy(c->key_id, key_id, sizeof(key_id));
    c->key_id_len = sizeof(key_id);
    if ((hrc = hsm_pubkey(a->hsm, key_id, sizeof(key_id), &pub)) != HSM_OK) {
        ERR("cannot read the public key: %s", hsm_strerror(hrc));
        goto out;
    }
    if (c->key_type == STOR_KEY_EC) {
        c->key_bits = (uint32_t)EVP_PKEY_get_bits(pub);
    }
    if (want_csr) {
        /* External CA (J6): the request goes out, the credential waits for its certificate. */
        X509_NAME *subj = NULL;
        int crc = adm_subject_build(s->subject_cn ? s->subject_cn : s->owner, s->subject_o, s->subject_c, &subj, err,
                                    err_sz);
        if (crc == 0)
            crc = s->csr_out != NULL ? adm_csr_build(a->hsm, key_id, sizeof(key_id), subj, s->csr_out, err, err_sz)
                                     : adm_csr_write(a->hsm, key_id, sizeof(key_id), subj, s->csr_file, err, err_sz);
        X509_NAME_free(subj);
        if (crc != 0)
            goto out;
        c->status = STOR_CRED_PENDING;
    } else if (adm_issue_cert(a->ca, pub, s->subject_cn ? s->subject_cn : s->owner, false, c, err, err_sz) != 0) {
        goto out;
    }
    p.c = c;
    admin_audit(&p.audit, a, c->owner, c->id, want_csr ? "credential.create (CSR; pending its certificate)"
                                                        : "credential.create");
    int src = stor_write(a->stor, put_cred_fn, &p);
    if (src == STOR_ERR_EXISTS) {
        ERR("credential %s exists already", c->id);
        goto out;
    }
    if (src != 0) {
        ERR("storage: %s", stor_strerror(src));
        goto out;
    }
    snprintf(id_out, id_sz, "%s", c->id);
    rc = 0;
out:
    if (rc != 0 && s->csr_out != NULL) {
        X509_REQ_free(*s->csr_out);
        *s->csr_out = NULL;
    }
    if (rc != 0 && have_key)
        (void)hsm_destroy(a->hsm, c->key_id, c->key_id_len);
    EVP_PKEY_free(pub);
    OPENSSL_clear_free(c, sizeof(*c));
    return rc;
}

typedef struct set_enabled {
    const char *id;
    uint32_t status;
    stor_audit_t audit;
} set_enabled_t;

static int set_enabled_change(stor_cred_t *c, void *arg)
{
    const set_enabled_t *s = arg;
    if (c->status == STOR_CRED_DESTROYED)
        return STOR_ERR_EXISTS; /* final: a destroyed key never comes back */
    if (c->status == STOR_CRED_PENDING)
        return 1; /* no certificate yet: only an import enables it (stor_write returns fn's value) */
    c->status = s->status;
    return 0;
}

static int set_enabled_fn(stor_txn_t *t, void *arg)
{
    set_enabled_t *s = arg;
    return stor_txn_cred_change(t, s->id, set_enabled_change, s, &s->audit);
}

int adm_cred_set_enabled(const adm_t *a, const char *id, int enable, char *err, size_t err_sz)
{
    set_enabled_t s = {.id = id, .status = enable ? STOR_CRED_ENABLED : STOR_CRED_DISABLED};
    admin_audit(&s.audit, a, NULL, id, enable ? "credential.enable" : "credential.disable");
    int rc = stor_write(a->stor, set_enabled_fn, &s);
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL)
        return ERR("no credential %s", id);
    if (rc == STOR_ERR_EXISTS)
        return ERR("credential %s is destroyed and cannot change any more", id);
    if (rc == 1)
        return ERR("credential %s waits for its certificate: csc-admin credential import", id);
    if (rc != 0)
        return ERR("storage: %s", stor_strerror(rc));
    return 0;
}

/* ---- key lifecycle (J7) ------------------------------------------------------------ */

typedef struct cred_update {
    const char *id;
    stor_cred_t *c;            /* out: the record before the change (whose key the caller destroys) */
    const stor_cred_t *fresh;  /* renew: the new key and certificate (never written: the write may run twice, and
                                * the caller destroys its key if the write fails) */
    int op;                    /* 0 destroy, 1 renew (a CRL's revocation: csc-api/csc_cert.c) */
    uint32_t end_reason;       /* destroy: stor_cred_end_t */
    stor_audit_t audit;
} cred_update_t;

static int cred_update_change(stor_cred_t *cur, void *arg)
{
    cred_update_t *u = arg;
    if (u->op == 0) {
        /* Revocation and termination are final reasons (J8: never restored); a later destroy does not soften them,
         * while a revocation after an operator's destroy makes the destruction final. */
        if (cur->status != STOR_CRED_DESTROYED || cur->end_reason == STOR_CRED_END_OPERATOR)
            cur->end_reason = u->end_reason;
        cur->status = STOR_CRED_DESTROYED;
        memcpy(u->c, cur, sizeof(*cur)); /* the caller destroys the key this record names */
        return 0;
    }
    if (cur->status == STOR_CRED_DESTROYED)
        return STOR_ERR_EXISTS;
    const stor_cred_t *fresh = u->fresh;
    memcpy(u->c, cur, sizeof(*cur)); /* the old key id, for its destruction once the write is committed */
    memcpy(cur->key_id, fresh->key_id, sizeof(cur->key_id));
    cur->key_id_len = fresh->key_id_len;
    memcpy(cur->certs, fresh->certs, fresh->certs_len);
    cur->certs_len = fresh->certs_len;
    cur->cert_not_before = fresh->cert_not_before;
    cur->cert_not_after = fresh->cert_not_after;
    cur->key_bits = fresh->key_bits;
    cur->key_backup = fresh->key_backup;
    cur->backups = 0; /* a backup of the old key restores nothing now (adm_backup.c restore_refused) */
    cur->backup_last_at = 0;
    /* A renewal request still waiting for its certificate is superseded: its key goes with the old one. */
    memset(cur->pending_key_id, 0, sizeof(cur->pending_key_id));
    cur->pending_key_id_len = 0;
    return 0;
}

static int cred_update_fn(stor_txn_t *t, void *arg)
{
    cred_update_t *u = arg;
    return stor_txn_cred_change(t, u->id, cred_update_change, u, &u->audit);
}

static int destroy_key(const adm_t *a, const stor_cred_t *c, char *err, size_t err_sz)
{
    int hrc = c->pending_key_id_len > 0 ? hsm_destroy(a->hsm, c->pending_key_id, c->pending_key_id_len) : HSM_OK;
    if (hrc == HSM_OK || hrc == HSM_ERR_NOKEY)
        hrc = hsm_destroy(a->hsm, c->key_id, c->key_id_len);
    if (hrc != HSM_OK && hrc != HSM_ERR_NOKEY)
        return ERR("the credential is marked destroyed, but the HSM could not destroy its key yet (%s): run the "
                   "command again", hsm_strerror(hrc));
    return 0;
}

int adm_cred_destroy(const adm_t *a, const char *id, const char *reason, char *err, size_t err_sz)
{
    char action[160];
    cred_update_t u = {.id = id, .op = 0, .end_reason = STOR_CRED_END_OPERATOR};
    int rc = -1;

    if (a->hsm == NULL)
        return ERR("destroying a key needs the HSM");
    if ((u.c = calloc(1, sizeof(*u.c))) == NULL)
        return ERR("out of memory");
    if (reason != NULL && strcmp(reason, ADM_DESTROY_REVOKED) == 0)
        u.end_reason = STOR_CRED_END_REVOKED;
    else if (reason != NULL && strcmp(reason, ADM_DESTROY_TERMINATED) == 0)
        u.end_reason = STOR_CRED_END_TERMINATED;
    snprintf(action, sizeof(action), "credential.destroy reason=%s", reason ? reason : "-");
    admin_audit(&u.audit, a, NULL, id, action);
    int src = stor_write(a->stor, cred_update_fn, &u);
    if (src == STOR_ERR_NOTFOUND || src == STOR_ERR_INVAL)
        ERR("no credential %s", id);
    else if (src != 0)
        ERR("storage: %s", stor_strerror(src));
    else
        rc = destroy_key(a, u.c, err, err_sz);
    OPENSSL_clear_free(u.c, sizeof(*u.c));
    return rc;
}

int adm_cred_renew(const adm_t *a, const char *id, char *err, size_t err_sz)
{
    stor_cred_t *cur = calloc(1, sizeof(*cur)), *fresh = calloc(1, sizeof(*fresh));
    EVP_PKEY *pub = NULL;
    X509 *ee = NULL;
    int rc = -1, have_key = 0;
    char cn[256] = "";
    cred_update_t u = {.id = id, .op = 1, .fresh = fresh};

    if (cur == NULL || fresh == NULL) {
        ERR("out of memory");
        goto out;
    }
    if (a->hsm == NULL || a->ca == NULL) {
        ERR("renewal needs the HSM and the CA");
        goto out;
    }
    int src = stor_cred_get(a->stor, id, cur);
    if (src != 0 || cur->status == STOR_CRED_DESTROYED || cur->status == STOR_CRED_PENDING) {
        ERR(src != 0                                ? "no credential %s"
            : cur->status == STOR_CRED_DESTROYED ? "credential %s is destroyed"
                                                 : "credential %s has no certificate yet: import it first",
            id);
        goto out;
    }
    /* Same kind of key, same subject name. */
    hsm_keyspec_t spec = {.type = cur->key_type == STOR_KEY_RSA ? HSM_KEY_RSA : HSM_KEY_EC, .bits = cur->key_bits};
    if (cur->key_type == STOR_KEY_EC)
        spec.curve_nid = OBJ_txt2nid(cur->key_curve);
    const unsigned char *p = cur->certs;
    if ((ee = d2i_X509(NULL, &p, cur->certs_len)) != NULL)
        X509_NAME_get_text_by_NID(X509_get_subject_name(ee), NID_commonName, cn, sizeof(cn));
    uint8_t key_id[HSM_KEYID_LEN];
    int hrc = hsm_keygen_ex(a->hsm, &spec, id, a->key_backup ? HSM_KEYGEN_BACKUP : 0, key_id);
    if (hrc != HSM_OK) {
        ERR("key generation in the HSM failed: %s", hsm_strerror(hrc));
        goto out;
    }
    have_key = 1;
    memcpy(fresh->key_id, key_id, sizeof(key_id));
    fresh->key_id_len = sizeof(key_id);
    fresh->key_type = cur->key_type;
    fresh->key_bits = cur->key_bits;
    fresh->key_backup = a->key_backup ? STOR_KEY_BACKUP_WRAPPED : STOR_KEY_BACKUP_NO;
    if ((hrc = hsm_pubkey(a->hsm, key_id, sizeof(key_id), &pub)) != HSM_OK) {
        ERR("cannot read the public key: %s", hsm_strerror(hrc));
        goto out;
    }
    if (adm_issue_cert(a->ca, pub, cn[0] ? cn : cur->owner, strcmp(cur->owner, STOR_TSA_OWNER) == 0, fresh,
                       err, err_sz) != 0)
        goto out;
    admin_audit(&u.audit, a, NULL, id, "credential.renew (new key and certificate; old key destroyed)");
    u.c = cur; /* out: the record as the write found it */
    if ((src = stor_write(a->stor, cred_update_fn, &u)) != 0) {
        ERR("storage: %s", stor_strerror(src));
        goto out; /* the record still names the old key: only the new one goes */
    }
    have_key = 0;              /* the record names the new key now; u.c holds the old record */
    rc = destroy_key(a, u.c, err, err_sz);
out:
    if (have_key)
        (void)hsm_destroy(a->hsm, fresh->key_id, fresh->key_id_len);
    X509_free(ee);
    EVP_PKEY_free(pub);
    OPENSSL_clear_free(cur, sizeof(*cur));
    OPENSSL_clear_free(fresh, sizeof(*fresh));
    return rc;
}

/* Room for one more element in arr, which holds n of *cap (doubling from 8): the array to use, or NULL with arr
 * left as it was. */
static void *grow(void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t c = *cap ? 2 * *cap : 8;
    void *p = realloc(arr, c * elem);
    if (p != NULL)
        *cap = c;
    return p;
}

/* ---- the key destructions the CRL sweep files (J7) ------------------------------------------------------ */

/* The pending destructions of credentials' keys: csc-server's jobs (csc-sam runs them at once), or requests for a
 * second operator, holding "credential revoke ID" (csc-api/csc_cert.c files them; an operator's held revoke looks
 * the same). */
typedef struct key_jobs {
    stor_key_job_t *job;
    size_t n;
} key_jobs_t;

static int collect_jobs(stor_txn_t *t, key_jobs_t *l)
{
    return stor_txn_key_jobs(t, &l->job, &l->n);
}

static const stor_key_job_t *job_of(const key_jobs_t *l, const char *cred)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->job[i].cred, cred) == 0)
            return &l->job[i];
    return NULL;
}

/* The HSM's side of stor_key_jobs_run: a key already gone is destroyed. */
static int destroy_one(void *hsm, const uint8_t *key_id, size_t len)
{
    int rc = hsm_destroy(hsm, key_id, len);
    return rc == HSM_ERR_NOKEY ? HSM_OK : rc;
}

static void report_job(void *out_file, const stor_key_job_t *j, int outcome, int code)
{
    FILE *out = out_file;
    switch (outcome) {
    case STOR_KEY_JOB_DONE:
        fprintf(out, "credential %s: key destroyed (job %s)\n", j->cred, j->id);
        break;
    case STOR_KEY_JOB_WAITING:
        fprintf(out, "credential %s: key destruction waits for a second operator: csc-admin approve %s\n", j->cred,
                j->id);
        break;
    case STOR_KEY_JOB_ROLE:
        fprintf(out, "credential %s: the operator lacks the role of job %s (it stays for the next run)\n", j->cred,
                j->id);
        break;
    case STOR_KEY_JOB_KEY:
        fprintf(out, "credential %s: the credential is marked destroyed, but the HSM could not destroy its key yet "
                     "(%s): run the command again (job %s stays for the next run)\n", j->cred, hsm_strerror(code),
                j->id);
        break;
    default:
        fprintf(out, "credential %s: storage: %s (job %s stays for the next run)\n", j->cred, stor_strerror(code),
                j->id);
        break;
    }
}

int adm_cred_destroy_pending(const adm_t *a, uint32_t roles, int hold, void *out_file, char *err, size_t err_sz)
{
    FILE *out = out_file;
    char who[STOR_NAME_MAX + 1];
    stor_key_jobs_count_t n;

    if (a->hsm == NULL)
        return ERR("destroying a key needs the HSM");
    snprintf(who, sizeof(who), "%s", a->operator_name != NULL ? a->operator_name : "-");
    stor_key_jobs_t how = {.actor = who, .client = "csc-admin", .roles = roles, .hold = hold,
                           .destroy = destroy_one, .arg = a->hsm, .report = report_job, .report_arg = out};
    if (stor_key_jobs_run(a->stor, &how, &n) != 0)
        return ERR("storage: cannot read the pending jobs");
    fprintf(out, "%u key(s) destroyed, %u waiting for a second operator, %u failed\n", n.done, n.waiting, n.failed);
    return n.failed == 0 ? ADM_OK : ERR("%u pending key destruction(s) failed", n.failed);
}

/* ---- users ---------------------------------------------------------------------------- */

typedef struct user_status {
    const char *name;
    uint32_t status;
    stor_audit_t audit;
} user_status_t;

static int user_status_fn(stor_txn_t *t, void *arg)
{
    const user_status_t *s = arg;
    stor_audit_t *a = malloc(sizeof(*a)); /* the caller's record stays as it was: a batch may run this again */
    stor_user_t *u = malloc(sizeof(*u));
    int rc = u == NULL || a == NULL ? STOR_ERR_NOMEM : stor_txn_user_get(t, s->name, u);
    if (rc == 0 && u->status == STOR_USER_TERMINATED)
        rc = STOR_ERR_EXISTS; /* termination is final */
    if (rc == 0) {
        *a = s->audit;
        if (s->status != STOR_USER_ACTIVE)
            rc = adm_user_reset_txn(t, u, a); /* suspension and termination revoke everything at once */
    }
    if (rc == 0) {
        u->status = s->status;
        rc = stor_txn_user_put(t, u, 0);
    }
    if (rc == 0)
        rc = stor_txn_audit_append(t, a);
    OPENSSL_clear_free(u, sizeof(*u));
    free(a);
    return rc;
}

typedef struct ids {
    char (*id)[STOR_NAME_MAX + 1];
    size_t n, cap;
    const char *owner;
} ids_t;

static int collect(const stor_cred_t *c, void *arg)
{
    ids_t *l = arg;
    void *more = grow(l->id, &l->cap, l->n, sizeof(*l->id));
    if (more == NULL)
        return STOR_ERR_NOMEM;
    l->id = more;
    snprintf(l->id[l->n++], sizeof(l->id[0]), "%s", c->id);
    return 0;
}

static int collect_fn(stor_txn_t *t, void *arg)
{
    ids_t *l = arg;
    return stor_txn_cred_each(t, l->owner, collect, l);
}

/* The status change in storage (no key touched). */
static int user_status_write(const adm_t *a, const char *name, uint32_t status, char *err, size_t err_sz)
{
    static const char *const actions[] = {"?", "user.resume", "user.suspend", "user.terminate"};
    user_status_t s = {.name = name, .status = status};
    admin_audit(&s.audit, a, name, NULL, actions[status]);
    int rc = stor_write(a->stor, user_status_fn, &s);
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL)
        return ERR("no user %s", name);
    if (rc == STOR_ERR_EXISTS)
        return ERR("user %s is terminated", name);
    if (rc != 0)
        return ERR("storage: %s", stor_strerror(rc));
    return 0;
}

int adm_user_suspend_resume(const adm_t *a, const char *name, uint32_t status, char *err, size_t err_sz)
{
    if (status != STOR_USER_ACTIVE && status != STOR_USER_SUSPENDED)
        return ERR("bad status");
    return user_status_write(a, name, status, err, err_sz);
}

int adm_user_set_status(const adm_t *a, const char *name, uint32_t status, char *err, size_t err_sz)
{
    if (status < STOR_USER_ACTIVE || status > STOR_USER_TERMINATED)
        return ERR("bad status");
    if (status == STOR_USER_TERMINATED && a->hsm == NULL)
        return ERR("termination destroys the user's keys and needs the HSM");
    if (status != STOR_USER_TERMINATED)
        return user_status_write(a, name, status, err, err_sz);
    int rc = user_status_write(a, name, status, err, err_sz);
    if (rc != 0)
        return rc;
    /* Termination destroys every key of the user (J7). */
    ids_t l = {.owner = name};
    int result = 0;
    if (stor_read(a->stor, collect_fn, &l) != 0)
        result = ERR("storage: cannot list the user's credentials");
    for (size_t i = 0; result == 0 && i < l.n; i++)
        result = adm_cred_destroy(a, l.id[i], ADM_DESTROY_TERMINATED, err, err_sz);
    free(l.id);
    return result;
}

/* ---- listing -------------------------------------------------------------------- */

typedef struct list_walk {
    FILE *out;
    stor_txn_t *t;
    key_jobs_t jobs;
} list_walk_t;

static int list_cred(const stor_cred_t *c, void *arg)
{
    const list_walk_t *w = arg;
    FILE *out = w->out;
    const stor_key_job_t *job = job_of(&w->jobs, c->id);
    char pending[STOR_NAME_MAX + 64] = "";
    X509 *certs[8];
    size_t n = 0;
    char subj[512] = "", until[32] = "";
    if (pki_certs_load(c->certs, c->certs_len, certs, 8, &n) == PKI_OK && n > 0) {
        struct tm tm;
        pki_dn(X509_get_subject_name(certs[0]), subj, sizeof(subj));
        if (ASN1_TIME_to_tm(X509_get0_notAfter(certs[0]), &tm) == 1)
            strftime(until, sizeof(until), "%Y-%m-%d", &tm);
    }
    pki_certs_free(certs, n);
    if (job != NULL)
        snprintf(pending, sizeof(pending), (job->flags & STOR_APPROVAL_JOB) ? " (key destruction pending: job %s)"
                                                                          : " (key destruction waits for approval %s)",
                 job->id);
    fprintf(out, "  credential %s  %s%s%s%s  %s-%u%s%s  auth=\"%s\" SCAL=%u multisign=%u  cert=\"%s\" until %s\n", c->id,
            c->status == STOR_CRED_ENABLED     ? "enabled"
            : c->status == STOR_CRED_DESTROYED ? "destroyed"
            : c->status == STOR_CRED_PENDING   ? "pending"
                                               : "disabled",
            c->pending_key_id_len > 0 && c->status != STOR_CRED_DESTROYED ? " (renewal key pending its certificate)" : "",
            pending, stor_cred_pin_unset(c, c->owner) ? "  pin=unset" : "",
            c->key_type == STOR_KEY_RSA ? "RSA" : "EC",
            (unsigned)c->key_bits, c->key_curve[0] ? " curve " : "", c->key_curve, c->auth_expr, (unsigned)c->scal,
            (unsigned)c->multisign, subj, until);
    for (uint32_t i = 0; i < c->n_delegates && i < STOR_DELEGATES_MAX; i++)
        fprintf(out, "    delegate %s%s\n", c->delegates[i],
                stor_cred_pin_unset(c, c->delegates[i]) ? "  pin=unset" : c->delegate_pins[i][0] ? "  (own PIN)" : "");
    return 0;
}

static int list_user(const stor_user_t *u, void *arg)
{
    list_walk_t *w = arg;
    static const char *const st[] = {"?", "active", "suspended", "terminated", "enrolling"};
    fprintf(w->out, "user %s  %s%s%s%s%s\n", u->name, u->status <= 4 ? st[u->status] : "?",
            u->locked_until > time(NULL) ? "  (locked)" : "", u->evidence[0] ? "  evidence=\"" : "", u->evidence,
            u->evidence[0] ? "\"" : "");
    return stor_txn_cred_each(w->t, u->name, list_cred, w);
}

static int list_fn(stor_txn_t *t, void *arg)
{
    list_walk_t *w = arg;
    w->t = t;
    int rc = collect_jobs(t, &w->jobs);
    return rc != 0 ? rc : stor_txn_user_each(t, list_user, w);
}

static int list_client(const stor_client_t *c, void *arg)
{
    FILE *out = arg;
    fprintf(out, "client %s  \"%s\"  scopes=%s%s%s  grants=%s%s%s%s%s\n", c->id, c->name,
            (c->scopes & (1u << STOR_SCOPE_SERVICE)) ? "service" : "",
            (c->scopes & (1u << STOR_SCOPE_SERVICE)) && (c->scopes & (1u << STOR_SCOPE_CREDENTIAL)) ? "," : "",
            (c->scopes & (1u << STOR_SCOPE_CREDENTIAL)) ? "credential" : "",
            (c->grants & STOR_GRANT_AUTHORIZATION_CODE) ? "authorization_code" : "",
            (c->grants & STOR_GRANT_REFRESH_TOKEN) ? "," : "", (c->grants & STOR_GRANT_REFRESH_TOKEN) ? "refresh_token" : "",
            (c->grants & STOR_GRANT_CLIENT_CREDENTIALS) ? "," : "",
            (c->grants & STOR_GRANT_CLIENT_CREDENTIALS) ? "client_credentials" : "");
    for (uint32_t i = 0; i < c->n_redirects; i++)
        fprintf(out, "  redirect %s\n", c->redirects[i]);
    return 0;
}

static int clients_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_client_each(t, list_client, arg);
}

int adm_clients_list(const adm_t *a, void *out_file)
{
    return stor_read(a->stor, clients_fn, out_file) == 0 ? 0 : -1;
}

int adm_list(const adm_t *a, void *out_file)
{
    list_walk_t w = {.out = out_file};
    int rc = stor_read(a->stor, list_fn, &w) == 0 ? 0 : -1;
    free(w.jobs.job);
    return rc;
}
