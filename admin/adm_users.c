/* adm_users.c - user changes behind csc-admin (J1, J2): evidence reference, password reset, TOTP re-enrollment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "adm_int.h"

#define ERR ADM_FAIL

int adm_evidence_check(const char *s)
{
    size_t n = s != NULL ? strnlen(s, STOR_DESC_MAX + 1) : 0;

    if (n == 0 || n > STOR_DESC_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return -1;
    return 0;
}

int adm_user_reset_txn(stor_txn_t *t, stor_user_t *u, stor_audit_t *audit)
{
    stor_revoked_t r;
    size_t n = strnlen(audit->detail, sizeof(audit->detail));
    int rc;

    u->epoch++; /* csc-server refuses what it keeps in memory for the older epoch */
    if ((rc = stor_txn_user_revoke_all(t, u->name, (int64_t)time(NULL), &r)) != 0)
        return rc;
    snprintf(audit->detail + n, sizeof(audit->detail) - n, " revoked: tokens=%u sads=%u pending=%u", r.tokens, r.sads,
             r.pending);
    return 0;
}

typedef struct user_change {
    const char *name;
    const char *evidence;          /* NULL = unchanged */
    const uint8_t *pw_verifier;    /* NULL = unchanged */
    uint32_t pw_verifier_len;
    const uint8_t *totp_secret;    /* NULL = unchanged */
    stor_audit_t audit;
} user_change_t;

static int change_fn(stor_txn_t *t, void *arg)
{
    user_change_t *c = arg;
    stor_user_t *u = malloc(sizeof(*u));
    int rc;

    if (u == NULL)
        return STOR_ERR_NOMEM;
    if ((rc = stor_txn_user_get(t, c->name, u)) != 0)
        goto out;
    if (u->status == STOR_USER_TERMINATED) {
        rc = STOR_ERR_INVAL;
        goto out;
    }
    if (c->evidence != NULL)
        snprintf(u->evidence, sizeof(u->evidence), "%s", c->evidence);
    if (c->pw_verifier != NULL) {
        memcpy(u->pw_verifier, c->pw_verifier, c->pw_verifier_len);
        u->pw_verifier_len = c->pw_verifier_len;
        u->failed_logins = 0;
        u->locked_until = 0;
        u->locks = 0;
    }
    if (c->totp_secret != NULL) {
        memcpy(u->totp_secret, c->totp_secret, OAUTH_TOTP_SECRET_LEN);
        u->totp_secret_len = OAUTH_TOTP_SECRET_LEN;
        OPENSSL_cleanse(u->totp_sealed, sizeof(u->totp_sealed)); /* the old sealed one goes (csc-sam seals the new */
        u->totp_sealed_len = 0;                                  /* one at its next start) */
        u->totp_last_step = 0; /* a new secret: no code of it was used */
    }
    /* A new password or TOTP secret shuts out whoever held the old one, at once (issue 9 item 7). */
    if ((c->pw_verifier != NULL || c->totp_secret != NULL) && (rc = adm_user_reset_txn(t, u, &c->audit)) != 0)
        goto out;
    if ((rc = stor_txn_user_put(t, u, 0)) == 0)
        rc = stor_txn_audit_append(t, &c->audit);
out:
    stor_wipe(u, sizeof(*u));
    free(u);
    return rc;
}

static void change_audit(user_change_t *c, const adm_t *a, const char *action)
{
    memset(&c->audit, 0, sizeof(c->audit));
    c->audit.event = STOR_EV_ADMIN;
    c->audit.result = STOR_RES_OK;
    snprintf(c->audit.user, sizeof(c->audit.user), "%s", c->name);
    snprintf(c->audit.client, sizeof(c->audit.client), "csc-admin");
    snprintf(c->audit.detail, sizeof(c->audit.detail), "operator=%s action=%s",
             a->operator_name ? a->operator_name : "-", action);
}

static int change_result(int rc, const char *name, char *err, size_t err_sz)
{
    if (rc == STOR_ERR_NOTFOUND)
        return ERR("no user %s", name);
    if (rc == STOR_ERR_INVAL)
        return ERR("user %s is terminated (or the name is invalid)", name);
    if (rc != 0)
        return ERR("storage: %s", stor_strerror(rc));
    return 0;
}

int adm_user_change(const adm_t *a, const char *name, const char *evidence, const char *password,
                          char *err, size_t err_sz)
{
    user_change_t c = {.name = name, .evidence = evidence};
    uint8_t ver[STOR_VERIFIER_MAX];
    char action[STOR_DESC_MAX + 64];
    int rc;

    if (evidence == NULL && password == NULL)
        return ERR("nothing to change: --evidence REF and/or --password-stdin");
    if (evidence != NULL && adm_evidence_check(evidence) != 0)
        return ERR("evidence reference must be 1..%d printable characters", STOR_DESC_MAX);
    if (password != NULL) {
        if (strlen(password) < 8)
            return ERR("password must have at least 8 characters");
        if (oauth_secret_hash(password, strlen(password), a->scrypt_log2n, ver, &c.pw_verifier_len) != 0)
            return ERR("cannot derive the password verifier");
        c.pw_verifier = ver;
    }
    snprintf(action, sizeof(action), "user.change%s%s%s", password != NULL ? " password=reset" : "",
             evidence != NULL ? " evidence=" : "", evidence != NULL ? evidence : "");
    change_audit(&c, a, action);
    rc = stor_write(a->stor, change_fn, &c);
    OPENSSL_cleanse(ver, sizeof(ver));
    return change_result(rc, name, err, err_sz);
}

int adm_user_totp_reset(const adm_t *a, const char *name, char *otpauth_uri, size_t uri_sz,
                              char *totp_b32, size_t b32_sz, char *err, size_t err_sz)
{
    user_change_t c = {.name = name};
    uint8_t secret[OAUTH_TOTP_SECRET_LEN];
    int rc = -1;

    if (oauth_totp_new_secret(secret) != 0)
        return ERR("cannot make a TOTP secret");
    if (oauth_base32_encode(secret, sizeof(secret), totp_b32, b32_sz) != 0 ||
        oauth_totp_uri(a->issuer, name, secret, sizeof(secret), otpauth_uri, uri_sz) != 0) {
        ERR("output buffer too small or invalid user name");
        goto out;
    }
    c.totp_secret = secret;
    change_audit(&c, a, "user.totp-reset");
    rc = change_result(stor_write(a->stor, change_fn, &c), name, err, err_sz);
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    if (rc != 0) {
        OPENSSL_cleanse(totp_b32, b32_sz);
        OPENSSL_cleanse(otpauth_uri, uri_sz);
    }
    return rc;
}

/* ---- delegates (J1) ---------------------------------------------------------- */

typedef struct delegate_job {
    const char *id;
    const char *user;
    int remove;
    char pin_hex[2 * STOR_VERIFIER_MAX + 1];
    stor_cred_t *cred;
    int why;                       /* out: 1 no such user, 2 the owner, 3 full, 4 not a delegate, 5 destroyed */
    stor_audit_t audit;
} delegate_job_t;

static int delegate_fn(stor_txn_t *t, void *arg)
{
    delegate_job_t *j = arg;
    stor_cred_t *c = j->cred;
    stor_user_t *u;
    int rc, i;

    if ((rc = stor_txn_cred_get(t, j->id, c)) != 0)
        return rc;
    i = stor_cred_delegate(c, j->user);
    if (j->remove) {
        if (i < 0) {
            j->why = 4;
            return STOR_ERR_INVAL;
        }
        for (uint32_t k = (uint32_t)i; k + 1 < c->n_delegates; k++) {
            memcpy(c->delegates[k], c->delegates[k + 1], sizeof(c->delegates[k]));
            memcpy(c->delegate_pins[k], c->delegate_pins[k + 1], sizeof(c->delegate_pins[k]));
        }
        /* the PIN-unset marks follow their delegates down */
        uint32_t low = c->delegate_pin_unset & ((1u << i) - 1u);
        c->delegate_pin_unset = low | (c->delegate_pin_unset >> 1 & ~((1u << i) - 1u));
        c->n_delegates--;
        memset(c->delegates[c->n_delegates], 0, sizeof(c->delegates[0]));
        OPENSSL_cleanse(c->delegate_pins[c->n_delegates], sizeof(c->delegate_pins[0]));
        rc = stor_txn_delegation_del(t, j->user, j->id);
        if (rc != 0 && rc != STOR_ERR_NOTFOUND)
            return rc;
    } else {
        if (c->status == STOR_CRED_DESTROYED) {
            j->why = 5;
            return STOR_ERR_INVAL;
        }
        if (strcmp(c->owner, j->user) == 0) {
            j->why = 2;
            return STOR_ERR_INVAL;
        }
        if ((u = malloc(sizeof(*u))) == NULL)
            return STOR_ERR_NOMEM;
        rc = stor_txn_user_get(t, j->user, u);
        stor_wipe(u, sizeof(*u));
        free(u);
        if (rc == STOR_ERR_NOTFOUND) {
            j->why = 1;
            return STOR_ERR_INVAL;
        }
        if (rc != 0)
            return rc;
        if (i < 0) {
            if (c->n_delegates >= STOR_DELEGATES_MAX) {
                j->why = 3;
                return STOR_ERR_INVAL;
            }
            i = (int)c->n_delegates++;
            snprintf(c->delegates[i], sizeof(c->delegates[i]), "%s", j->user);
        }
        memcpy(c->delegate_pins[i], j->pin_hex, sizeof(c->delegate_pins[i]));
        /* no PIN given: the delegate sets their own (/account) before they can authorize */
        (void)stor_cred_pin_mark(c, j->user, j->pin_hex[0] == '\0');
        if ((rc = stor_txn_delegation_put(t, j->user, j->id)) != 0)
            return rc;
    }
    if ((rc = stor_txn_cred_put(t, c, 0)) != 0)
        return rc;
    snprintf(j->audit.user, sizeof(j->audit.user), "%s", c->owner);
    return stor_txn_audit_append(t, &j->audit);
}

int adm_cred_delegate(const adm_t *a, const char *id, const char *user, const char *pin,
                            const char *evidence, int remove, char *err, size_t err_sz)
{
    delegate_job_t *j = calloc(1, sizeof(*j));
    uint8_t ver[STOR_VERIFIER_MAX];
    uint32_t vlen = 0;
    int rc = -1;

    if (j == NULL || (j->cred = malloc(sizeof(*j->cred))) == NULL) {
        ERR("out of memory");
        goto out;
    }
    if (!remove && (evidence == NULL || adm_evidence_check(evidence) != 0)) {
        ERR("--evidence REF (the owner's consent: a document id or URI) is required to add a delegate");
        goto out;
    }
    if (evidence != NULL && adm_evidence_check(evidence) != 0) {
        ERR("evidence reference must be 1..%d printable characters", STOR_DESC_MAX);
        goto out;
    }
    if (pin != NULL) {
        if (strlen(pin) < adm_pin_min(a) || strlen(pin) > ADM_PIN_MAX) {
            ERR("the delegate's PIN must have %u..%d characters (pin_min_length)", adm_pin_min(a), ADM_PIN_MAX);
            goto out;
        }
        if (oauth_secret_hash(pin, strlen(pin), a->scrypt_log2n, ver, &vlen) != 0) {
            ERR("cannot derive the PIN verifier");
            goto out;
        }
        for (uint32_t i = 0; i < vlen; i++)
            snprintf(j->pin_hex + 2 * i, 3, "%02x", ver[i]);
        OPENSSL_cleanse(ver, sizeof(ver));
    }
    j->id = id;
    j->user = user;
    j->remove = remove;
    j->audit.event = STOR_EV_ADMIN;
    j->audit.result = STOR_RES_OK;
    snprintf(j->audit.cred, sizeof(j->audit.cred), "%s", id);
    snprintf(j->audit.client, sizeof(j->audit.client), "csc-admin");
    snprintf(j->audit.detail, sizeof(j->audit.detail), "operator=%s action=credential.%s delegate=%s%s%s%s",
             a->operator_name ? a->operator_name : "-", remove ? "undelegate" : "delegate", user,
             !remove && pin != NULL ? " pin=set" : "", evidence != NULL ? " evidence=" : "",
             evidence != NULL ? evidence : "");
    int src = stor_write(a->stor, delegate_fn, j);
    static const char *const why[] = {"", "no such user", "the owner cannot be a delegate",
                                      "too many delegates", "not a delegate of the credential",
                                      "the credential's key is destroyed"};
    if (src == STOR_ERR_NOTFOUND)
        ERR("no credential %s", id);
    else if (src == STOR_ERR_INVAL && j->why > 0 && j->why <= 5)
        ERR("credential %s, user %s: %s", id, user, why[j->why]);
    else if (src != 0)
        ERR("storage: %s", stor_strerror(src));
    else
        rc = 0;
out:
    if (j != NULL) {
        if (j->cred != NULL)
            stor_wipe(j->cred, sizeof(*j->cred));
        free(j->cred);
        OPENSSL_cleanse(j, sizeof(*j));
    }
    free(j);
    return rc;
}
