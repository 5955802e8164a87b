/* csc_users.c - user changes behind csc-admin (J1, J2): evidence reference, password reset, TOTP re-enrollment. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "csc_int.h"

__attribute__((format(printf, 3, 4))) static int user_err(char *err, size_t err_sz, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, err_sz, fmt, ap);
    va_end(ap);
    return -1;
}
#define ERR(...) user_err(err, err_sz, __VA_ARGS__)

int csc_evidence_check(const char *s)
{
    size_t n = s != NULL ? strnlen(s, STOR_DESC_MAX + 1) : 0;

    if (n == 0 || n > STOR_DESC_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return -1;
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
    }
    if (c->totp_secret != NULL) {
        memcpy(u->totp_secret, c->totp_secret, OAUTH_TOTP_SECRET_LEN);
        u->totp_secret_len = OAUTH_TOTP_SECRET_LEN;
        u->totp_last_step = 0; /* a new secret: no code of it was used */
    }
    if ((rc = stor_txn_user_put(t, u, 0)) == 0)
        rc = stor_txn_audit_append(t, &c->audit);
out:
    stor_wipe(u, sizeof(*u));
    free(u);
    return rc;
}

static void change_audit(user_change_t *c, const csc_admin_t *a, const char *action)
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

int csc_admin_user_change(const csc_admin_t *a, const char *name, const char *evidence, const char *password,
                          char *err, size_t err_sz)
{
    user_change_t c = {.name = name, .evidence = evidence};
    uint8_t ver[STOR_VERIFIER_MAX];
    char action[STOR_DESC_MAX + 64];
    int rc;

    if (evidence == NULL && password == NULL)
        return ERR("nothing to change: --evidence REF and/or --password-stdin");
    if (evidence != NULL && csc_evidence_check(evidence) != 0)
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

int csc_admin_user_totp_reset(const csc_admin_t *a, const char *name, char *otpauth_uri, size_t uri_sz,
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
