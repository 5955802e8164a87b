/*
 * adm_operator.c - the operators of csc-admin (J14): named accounts with roles, a scrypt password verifier and
 * a TOTP secret (the same verifiers and replay guard as users), login sessions of which only the SHA-256 of the
 * token is stored, and commands held for a second operator's approval (two-person rule).
 *
 * Every login, logout, refusal, operator change and approval step is audited as STOR_EV_OPERATOR in the same
 * transaction as the state change; the audit record's user field names the operator acting, detail says what.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "adm_int.h"

#define ERR ADM_FAIL

static const struct {
    const char *name;
    uint32_t bit;
} role_names[] = {
    {"user-admin", STOR_ROLE_USER_ADMIN},
    {"key-admin", STOR_ROLE_KEY_ADMIN},
    {"auditor", STOR_ROLE_AUDITOR},
};
#define N_ROLES (sizeof(role_names) / sizeof(role_names[0]))

int adm_op_roles_parse(const char *s, uint32_t *roles)
{
    char buf[128];
    uint32_t set = 0;

    *roles = 0;
    if (s == NULL || strlen(s) >= sizeof(buf))
        return -1;
    if (strcmp(s, "all") == 0) {
        *roles = STOR_ROLES_ALL;
        return 0;
    }
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < N_ROLES && strcmp(tok, role_names[i].name) != 0; i++)
            ;
        if (i == N_ROLES)
            return -1;
        set |= role_names[i].bit;
    }
    if (set == 0)
        return -1;
    *roles = set;
    return 0;
}

void adm_op_roles_format(uint32_t roles, char *out, size_t out_sz)
{
    size_t pos = 0;

    if (out_sz == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < N_ROLES; i++)
        if (roles & role_names[i].bit)
            pos += (size_t)snprintf(out + pos, pos < out_sz ? out_sz - pos : 0, "%s%s", pos ? "," : "",
                                    role_names[i].name);
    if (pos == 0)
        snprintf(out, out_sz, "-");
}

/* Operator names follow the storage rule for names: 1..STOR_NAME_MAX printable ASCII characters, no spaces. */
static int name_ok(const char *s)
{
    size_t n = s != NULL ? strnlen(s, STOR_NAME_MAX + 1) : 0;

    if (n == 0 || n > STOR_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

static void op_audit_init(stor_audit_t *r, uint32_t result, const char *user, const char *detail)
{
    memset(r, 0, sizeof(*r));
    r->event = STOR_EV_OPERATOR;
    r->result = result;
    snprintf(r->user, sizeof(r->user), "%s", user != NULL ? user : "");
    snprintf(r->client, sizeof(r->client), "csc-admin");
    snprintf(r->detail, sizeof(r->detail), "%s", detail);
}

typedef struct audit_only {
    stor_audit_t rec;
} audit_only_t;

static int audit_only_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_audit_append(t, &((audit_only_t *)arg)->rec);
}

int adm_op_audit(const adm_t *a, uint32_t result, const char *user, const char *detail)
{
    audit_only_t x;

    op_audit_init(&x.rec, result, user, detail);
    return stor_write(a->stor, audit_only_fn, &x) == 0 ? 0 : -1;
}

static void token_hash(const char *token, uint8_t out[32])
{
    unsigned int n = 0;

    EVP_Digest(token, strlen(token), out, &n, EVP_sha256(), NULL);
}

/* ---- operator accounts ------------------------------------------------------ */

/* Production (J14): one operator may not both manage users and manage keys, unless allow_combined_roles. When refused,
 * the refusal is audited (action is "add" or "roles") and err says why. The first operator's roles are
 * adm_op_bootstrap's to choose, so it does not come here. */
static int roles_refused(const adm_t *a, const char *action, const char *name, uint32_t roles, char *err,
                         size_t err_sz)
{
    char detail[200];
    if (!a->production || a->allow_combined_roles || (roles & STOR_ROLE_USER_ADMIN) == 0 ||
        (roles & STOR_ROLE_KEY_ADMIN) == 0)
        return 0;
    snprintf(detail, sizeof(detail), "operator=%s action=operator.%s name=%s refused=combined-roles",
             a->operator_name, action, name);
    adm_op_audit(a, STOR_RES_DENIED, a->operator_name, detail);
    adm_err(err, err_sz, ADM_ERR, "production: one operator may not hold both user-admin and key-admin "
                                  "(allow_combined_roles = yes allows it)");
    return 1;
}

typedef struct put_op {
    stor_operator_t *op;
    int bootstrap;            /* refuse if any operator exists */
    stor_audit_t audit;
} put_op_t;

static int any_operator(const stor_operator_t *op, void *arg)
{
    (void)op;
    (void)arg;
    return 1;
}

static int put_op_fn(stor_txn_t *t, void *arg)
{
    put_op_t *p = arg;
    int rc;

    if (p->bootstrap && (rc = stor_txn_operator_each(t, any_operator, NULL)) != 0)
        return rc == 1 ? STOR_ERR_EXISTS : rc;
    if ((rc = stor_txn_operator_put(t, p->op, 1)) != 0)
        return rc;
    return stor_txn_audit_append(t, &p->audit);
}

static int new_operator(const adm_t *a, const char *name, uint32_t roles, const char *password, int bootstrap,
                        const adm_op_enroll_t *en, uint8_t secret[STOR_TOTP_MAX], size_t *secret_len, char *err,
                        size_t err_sz)
{
    stor_operator_t *op = calloc(1, sizeof(*op));
    char detail[200], rn[64];
    put_op_t p;
    int rc = ADM_ERR, src;

    *secret_len = 0;
    if (op == NULL)
        return ERR("out of memory");
    if (!name_ok(name)) {
        ERR("operator name must be 1..%d printable ASCII characters without spaces", STOR_NAME_MAX);
        goto out;
    }
    if (en == NULL && (password == NULL || strlen(password) < 8)) {
        ERR("password must have at least 8 characters");
        goto out;
    }
    if (!bootstrap && roles_refused(a, "add", name, roles, err, err_sz)) {
        rc = ADM_FORBIDDEN;
        goto out;
    }
    snprintf(op->name, sizeof(op->name), "%s", name);
    op->roles = roles;
    op->status = STOR_OPERATOR_ACTIVE;
    op->created_at = time(NULL);
    if (en != NULL) { /* no factor yet: the new operator makes them (operator enroll) */
        op->status = STOR_OPERATOR_ENROLLING;
        memcpy(op->enroll_code_hash, en->code_hash, sizeof(op->enroll_code_hash));
        op->enroll_expires_at = en->expires_at;
        op->enroll_tries = en->tries;
    } else if (oauth_secret_hash(password, strlen(password), a->scrypt_log2n, op->pw_verifier, &op->pw_verifier_len) != 0 ||
        oauth_totp_new_secret(op->totp_secret) != 0) {
        ERR("cannot derive the password verifier or the TOTP secret");
        goto out;
    }
    if (en == NULL) {
        op->totp_secret_len = OAUTH_TOTP_SECRET_LEN;
        memcpy(secret, op->totp_secret, op->totp_secret_len);
        *secret_len = op->totp_secret_len;
    }
    /* At rest the secret is sealed (csc-sam's factor key); the clear bytes never reach the record. */
    if (en == NULL && a->op_factor != NULL) {
        if (a->op_factor->seal(a->op_factor->arg, name, op->totp_secret, op->totp_secret_len, op->totp_sealed,
                               &op->totp_sealed_len) != 0) {
            ERR("cannot seal the TOTP secret (the token's factor key)");
            goto out;
        }
        OPENSSL_cleanse(op->totp_secret, sizeof(op->totp_secret));
        op->totp_secret_len = 0;
    }
    adm_op_roles_format(roles, rn, sizeof(rn));
    snprintf(detail, sizeof(detail), "operator=%s action=operator.%s name=%s roles=%s%s%s",
             bootstrap ? name : a->operator_name, bootstrap ? "bootstrap" : "add", name, rn,
             en != NULL ? " state=enrolling channel=" : "", en != NULL ? en->channel : "");
    p.op = op;
    p.bootstrap = bootstrap;
    op_audit_init(&p.audit, STOR_RES_OK, bootstrap ? name : a->operator_name, detail);
    src = stor_write(a->stor, put_op_fn, &p);
    if (src == STOR_ERR_EXISTS)
        rc = bootstrap ? (ERR("operators exist already: bootstrap is only for the first one"), ADM_EXISTS)
                       : (ERR("operator %s exists already", name), ADM_EXISTS);
    else if (src != 0)
        ERR("storage: %s", stor_strerror(src));
    else
        rc = ADM_OK;
out:
    if (rc != ADM_OK) {
        OPENSSL_cleanse(secret, STOR_TOTP_MAX);
        *secret_len = 0;
    }
    OPENSSL_clear_free(op, sizeof(*op));
    return rc;
}

uint32_t adm_op_bootstrap_roles(const adm_t *a)
{
    /* In production the first operator manages users (and so operators) only: the ceremony of
     * docs/configuration.md "two_person" adds the others. */
    return a->production && !a->allow_combined_roles ? STOR_ROLE_USER_ADMIN : STOR_ROLES_ALL;
}

int adm_op_new(const adm_t *a, const char *name, uint32_t roles, const char *password,
               uint8_t secret[STOR_TOTP_MAX], size_t *secret_len, char *err, size_t err_sz)
{
    *secret_len = 0;
    if (roles == 0)
        return new_operator(a, name, adm_op_bootstrap_roles(a), password, 1, NULL, secret, secret_len, err, err_sz);
    if ((roles & ~(uint32_t)STOR_ROLES_ALL) != 0)
        return ERR("an operator needs at least one role (user-admin, key-admin, auditor)");
    return new_operator(a, name, roles, password, 0, NULL, secret, secret_len, err, err_sz);
}

int adm_op_add_enrolling(const adm_t *a, const char *name, uint32_t roles, const adm_op_enroll_t *en, char *err,
                         size_t err_sz)
{
    uint8_t none[STOR_TOTP_MAX];
    size_t n = 0;
    if (roles == 0 || (roles & ~(uint32_t)STOR_ROLES_ALL) != 0)
        return ERR("an operator needs at least one role (user-admin, key-admin, auditor)");
    return new_operator(a, name, roles, NULL, 0, en, none, &n, err, err_sz);
}

/* adm_op_new with the secret as base32 and otpauth URI. */
static int new_encoded(const adm_t *a, const char *name, uint32_t roles, const char *password, char *uri,
                       size_t uri_sz, char *b32, size_t b32_sz, char *err, size_t err_sz)
{
    uint8_t secret[STOR_TOTP_MAX];
    size_t n = 0;
    int rc = adm_op_new(a, name, roles, password, secret, &n, err, err_sz);
    if (rc == ADM_OK && (oauth_base32_encode(secret, n, b32, b32_sz) != 0 ||
                         oauth_totp_uri(a->issuer, name, secret, n, uri, uri_sz) != 0))
        rc = ERR("output buffer too small (the operator was made)");
    if (rc != ADM_OK) {
        OPENSSL_cleanse(b32, b32_sz);
        OPENSSL_cleanse(uri, uri_sz);
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    return rc;
}

int adm_op_bootstrap(const adm_t *a, const char *name, const char *password, char *uri, size_t uri_sz,
                     char *b32, size_t b32_sz, char *err, size_t err_sz)
{
    return new_encoded(a, name, 0, password, uri, uri_sz, b32, b32_sz, err, err_sz);
}

int adm_op_add(const adm_t *a, const char *name, uint32_t roles, const char *password, char *uri,
               size_t uri_sz, char *b32, size_t b32_sz, char *err, size_t err_sz)
{
    if (roles == 0 || (roles & ~(uint32_t)STOR_ROLES_ALL) != 0)
        return ERR("an operator needs at least one role (user-admin, key-admin, auditor)");
    return new_encoded(a, name, roles, password, uri, uri_sz, b32, b32_sz, err, err_sz);
}

typedef struct change_op {
    const char *name;
    int remove;
    uint32_t roles;
    stor_audit_t audit;
} change_op_t;

static int change_op_fn(stor_txn_t *t, void *arg)
{
    change_op_t *c = arg;
    stor_operator_t op;
    int rc;

    if ((rc = stor_txn_operator_get(t, c->name, &op)) != 0)
        return rc;
    if (c->remove) {
        rc = stor_txn_operator_del(t, c->name);
    } else {
        op.roles = c->roles;
        rc = stor_txn_operator_put(t, &op, 0);
    }
    stor_wipe(&op, sizeof(op));
    return rc != 0 ? rc : stor_txn_audit_append(t, &c->audit);
}

static int change_operator(const adm_t *a, const char *name, int remove, uint32_t roles, char *err,
                           size_t err_sz)
{
    change_op_t c = {.name = name, .remove = remove, .roles = roles};
    char detail[200], rn[64];
    int rc;

    if (!name_ok(name))
        return ERR("invalid operator name");
    if (strcmp(name, a->operator_name) == 0) {
        snprintf(detail, sizeof(detail), "operator=%s action=operator.%s name=%s refused=self", a->operator_name,
                 remove ? "remove" : "roles", name);
        adm_op_audit(a, STOR_RES_DENIED, a->operator_name, detail);
        adm_err(err, err_sz, ADM_ERR, "an operator cannot %s", remove ? "remove themselves" : "change their own roles");
        return ADM_FORBIDDEN;
    }
    if (!remove && (roles == 0 || (roles & ~(uint32_t)STOR_ROLES_ALL) != 0))
        return ERR("an operator needs at least one role (user-admin, key-admin, auditor)");
    if (!remove && roles_refused(a, "roles", name, roles, err, err_sz))
        return ADM_FORBIDDEN;
    adm_op_roles_format(roles, rn, sizeof(rn));
    if (remove)
        snprintf(detail, sizeof(detail), "operator=%s action=operator.remove name=%s", a->operator_name, name);
    else
        snprintf(detail, sizeof(detail), "operator=%s action=operator.roles name=%s roles=%s", a->operator_name,
                 name, rn);
    op_audit_init(&c.audit, STOR_RES_OK, a->operator_name, detail);
    rc = stor_write(a->stor, change_op_fn, &c);
    if (rc == STOR_ERR_NOTFOUND) {
        adm_err(err, err_sz, ADM_ERR, "no operator %s", name);
        return ADM_NOTFOUND;
    }
    return rc == 0 ? ADM_OK : ERR("storage: %s", stor_strerror(rc));
}

int adm_op_remove(const adm_t *a, const char *name, char *err, size_t err_sz)
{
    return change_operator(a, name, 1, 0, err, err_sz);
}

int adm_op_set_roles(const adm_t *a, const char *name, uint32_t roles, char *err, size_t err_sz)
{
    return change_operator(a, name, 0, roles, err, err_sz);
}

static int list_op(const stor_operator_t *op, void *arg)
{
    char rn[64];

    adm_op_roles_format(op->roles, rn, sizeof(rn));
    fprintf(arg, "operator %s roles=%s status=%s created_at=%lld%s\n", op->name, rn,
            op->status == STOR_OPERATOR_ACTIVE      ? "active"
            : op->status == STOR_OPERATOR_ENROLLING ? "enrolling"
                                                    : "disabled",
            (long long)op->created_at,
            op->locked_until > time(NULL) ? " locked" : "");
    return 0;
}

static int list_op_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_operator_each(t, list_op, arg);
}

int adm_op_list(const adm_t *a, void *out_file)
{
    return stor_read(a->stor, list_op_fn, out_file) == 0 ? 0 : -1;
}

typedef struct sole {
    const char *name;
    int others;
    int self;
} sole_t;

static int count_op(const stor_operator_t *op, void *arg)
{
    sole_t *x = arg;
    if (strcmp(op->name, x->name) == 0)
        x->self = 1;
    else
        x->others++;
    return 0;
}

static int count_op_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_operator_each(t, count_op, arg);
}

int adm_op_sole(const adm_t *a)
{
    sole_t x = {.name = a->operator_name};
    if (stor_read(a->stor, count_op_fn, &x) != 0)
        return -1;
    return x.self && x.others == 0;
}

/* ---- login, sessions -------------------------------------------------------- */

typedef struct login {
    const char *name;
    const adm_op_policy_t *p;
    int ok;                  /* password and OTP were right */
    int64_t step;            /* matched TOTP step */
    int64_t now;
    stor_opsession_t sess;
    int result;              /* out: ADM_* */
    stor_audit_t audit;
    stor_audit_t lock_audit;
} login_t;

static int login_fn(stor_txn_t *t, void *arg)
{
    login_t *l = arg;
    stor_operator_t op;
    int rc = stor_txn_operator_get(t, l->name, &op), locked = 0;
    char detail[160];

    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL) {
        l->result = ADM_DENIED;
        snprintf(detail, sizeof(detail), "action=login refused=credentials");
        goto audit;
    }
    if (rc != 0)
        return rc;
    if (op.status != STOR_OPERATOR_ACTIVE) {
        l->result = ADM_DENIED;
        snprintf(detail, sizeof(detail), "action=login refused=disabled");
    } else if (op.locked_until > l->now) {
        l->result = ADM_LOCKED;
        snprintf(detail, sizeof(detail), "action=login refused=locked");
    } else if (!l->ok || l->step <= op.totp_last_step) {
        l->result = ADM_DENIED;
        snprintf(detail, sizeof(detail), "action=login refused=%s", l->ok ? "otp-reused" : "credentials");
        if (++op.failed_logins >= l->p->max_failures) {
            op.failed_logins = 0;
            op.locked_until = l->now + l->p->lock_seconds;
            locked = 1;
        }
    } else {
        l->result = ADM_OK;
        op.failed_logins = 0;
        op.locked_until = 0;
        op.totp_last_step = l->step;
        snprintf(detail, sizeof(detail), "action=login");
    }
    if (l->result != ADM_LOCKED && op.status == STOR_OPERATOR_ACTIVE &&
        (rc = stor_txn_operator_put(t, &op, 0)) != 0)
        goto out;
    if (l->result == ADM_OK && (rc = stor_txn_opsession_put(t, &l->sess)) != 0)
        goto out;
    if (locked) {
        op_audit_init(&l->lock_audit, STOR_RES_DENIED, l->name, "action=login locked operator");
        l->lock_audit.event = STOR_EV_LOCKOUT;
        if ((rc = stor_txn_audit_append(t, &l->lock_audit)) != 0)
            goto out;
    }
audit:
    op_audit_init(&l->audit, l->result == ADM_OK ? STOR_RES_OK : STOR_RES_DENIED,
                  name_ok(l->name) ? l->name : "", detail);
    rc = stor_txn_audit_append(t, &l->audit);
out:
    stor_wipe(&op, sizeof(op));
    return rc;
}

static int get_op_fn(stor_txn_t *t, void *arg)
{
    stor_operator_t *op = arg;
    char name[STOR_NAME_MAX + 1];

    snprintf(name, sizeof(name), "%s", op->name); /* the getter clears op first */
    return stor_txn_operator_get(t, name, op);
}

/* The operator's TOTP secret into op->totp_secret: a sealed one opened through a->op_factor (csc-sam), a clear one
 * (a record written before sealing) as it is. 0, -1 (none, or it does not open), -2 (the token could not try). */
static int op_totp(const adm_t *a, stor_operator_t *op)
{
    size_t n = 0;
    if (op->totp_sealed_len == 0)
        return op->totp_secret_len != 0 ? 0 : -1;
    OPENSSL_cleanse(op->totp_secret, sizeof(op->totp_secret));
    op->totp_secret_len = 0;
    if (a->op_factor == NULL)
        return -1;
    int rc = a->op_factor->open(a->op_factor->arg, op->name, op->totp_sealed, op->totp_sealed_len, op->totp_secret, &n);
    if (rc != 0)
        return rc == -2 ? -2 : -1;
    op->totp_secret_len = (uint32_t)n;
    return 0;
}

int adm_op_login(const adm_t *a, const adm_op_policy_t *p, const char *name, const char *password,
                 const char *otp, char token[ADM_OP_TOKEN_LEN + 1], char *err, size_t err_sz)
{
    stor_operator_t *op = calloc(1, sizeof(*op));
    login_t *l = calloc(1, sizeof(*l));
    uint8_t raw[32];
    int rc = ADM_ERR, src;

    token[0] = '\0';
    if (op == NULL || l == NULL) {
        ERR("out of memory");
        goto out;
    }
    l->name = name != NULL ? name : "";
    l->p = p;
    l->now = time(NULL);
    /* The slow checks run outside the write transaction; the transaction re-reads the record and applies the
     * replay guard and the counters. An unknown operator costs the same scrypt work as a known one. */
    snprintf(op->name, sizeof(op->name), "%s", l->name);
    src = name_ok(l->name) ? stor_read(a->stor, get_op_fn, op) : STOR_ERR_NOTFOUND;
    if (src != 0 && src != STOR_ERR_NOTFOUND) {
        ERR("storage: %s", stor_strerror(src));
        goto out;
    }
    if (src == 0) {
        l->ok = password != NULL && otp != NULL &&
                oauth_secret_verify(op->pw_verifier, op->pw_verifier_len, password, strlen(password)) == OAUTH_OK;
        int orc = l->ok ? op_totp(a, op) : -1;
        if (orc == -2) { /* the token could not open it now: nothing checked, nothing counted */
            ERR("the token cannot open the operator's TOTP secret now; try again later");
            goto out;
        }
        l->ok = l->ok && orc == 0 &&
                oauth_totp_check(op->totp_secret, op->totp_secret_len, otp, strlen(otp), l->now, p->totp_window,
                                 &l->step) == OAUTH_OK;
        OPENSSL_cleanse(op->totp_secret, sizeof(op->totp_secret));
    } else {
        uint8_t dummy[STOR_VERIFIER_MAX];
        uint32_t dlen = 0;
        if (password != NULL && oauth_secret_hash(password, strlen(password), a->scrypt_log2n, dummy, &dlen) == 0)
            OPENSSL_cleanse(dummy, sizeof(dummy));
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        ERR("no randomness");
        goto out;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));
    token_hash(token, l->sess.hash);
    snprintf(l->sess.operator_name, sizeof(l->sess.operator_name), "%s", l->name);
    l->sess.created_at = l->now;
    l->sess.last_used = l->now;
    l->sess.expires_at = l->now + p->session_max;
    if (a->origin != NULL) /* the session is bound to this host (adm_op_session_check) */
        memcpy(l->sess.host_id, a->origin->host_id, sizeof(l->sess.host_id));
    src = stor_write(a->stor, login_fn, l);
    if (src != 0) {
        ERR("storage: %s", stor_strerror(src));
        goto out;
    }
    rc = l->result;
    if (rc == ADM_DENIED)
        ERR("login refused: wrong operator name, password or one-time code (or the code was used already)");
    else if (rc == ADM_LOCKED)
        ERR("login refused: operator locked after too many failed logins; try again later");
out:
    if (rc != ADM_OK)
        OPENSSL_cleanse(token, ADM_OP_TOKEN_LEN + 1);
    OPENSSL_clear_free(op, sizeof(*op));
    OPENSSL_clear_free(l, sizeof(*l));
    return rc;
}

typedef struct sess_check {
    uint8_t hash[32];
    uint8_t host_id[32];      /* the caller's host (zero: none known) */
    int other_host;           /* out: the session was made on another host */
    const adm_op_policy_t *p;
    uint32_t role;
    const char *command;
    int logout;
    int64_t now;
    int result;
    char name[STOR_NAME_MAX + 1];
    uint32_t roles;
    stor_audit_t audit;
} sess_check_t;

static int sess_fn(stor_txn_t *t, void *arg)
{
    sess_check_t *c = arg;
    stor_opsession_t s;
    stor_operator_t op;
    char detail[200];
    int rc = stor_txn_opsession_get(t, c->hash, &s);

    memset(&op, 0, sizeof(op));
    c->other_host = 0; /* decided afresh on each run: a batch may run again */
    c->name[0] = '\0';
    c->roles = 0;
    if (rc == STOR_ERR_NOTFOUND) {
        c->result = ADM_NOSESSION;
        snprintf(detail, sizeof(detail), "action=%s refused=no-session", c->command);
        goto audit;
    }
    if (rc != 0)
        return rc;
    snprintf(c->name, sizeof(c->name), "%s", s.operator_name);
    if (c->now >= s.expires_at || (c->p != NULL && c->now >= s.last_used + (int64_t)c->p->session_idle)) {
        c->result = ADM_EXPIRED;
        snprintf(detail, sizeof(detail), "action=%s refused=session-expired", c->command);
        if ((rc = stor_txn_opsession_del(t, c->hash)) != 0)
            return rc;
        goto audit;
    }
    if (CRYPTO_memcmp(s.host_id, c->host_id, sizeof(c->host_id)) != 0) {
        /* A token used away from the host it was made on has left that host: it ends here. */
        c->result = ADM_NOSESSION;
        c->other_host = 1;
        snprintf(detail, sizeof(detail), "action=%s refused=other-host", c->command);
        if ((rc = stor_txn_opsession_del(t, c->hash)) != 0)
            return rc;
        goto audit;
    }
    rc = stor_txn_operator_get(t, s.operator_name, &op);
    if (rc != 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    if (rc == STOR_ERR_NOTFOUND || op.status != STOR_OPERATOR_ACTIVE) {
        c->result = ADM_NOSESSION;
        snprintf(detail, sizeof(detail), "action=%s refused=operator-gone", c->command);
        if ((rc = stor_txn_opsession_del(t, c->hash)) != 0)
            goto out;
        goto audit;
    }
    c->roles = op.roles;
    if (c->logout) {
        c->result = ADM_OK;
        snprintf(detail, sizeof(detail), "action=logout");
        if ((rc = stor_txn_opsession_del(t, c->hash)) != 0)
            goto out;
        goto audit;
    }
    if (c->role != 0 && (op.roles & c->role) == 0) {
        char rn[64];
        adm_op_roles_format(c->role, rn, sizeof(rn));
        c->result = ADM_FORBIDDEN;
        snprintf(detail, sizeof(detail), "action=%s refused=needs-role-%s", c->command, rn);
        goto audit;
    }
    c->result = ADM_OK;
    s.last_used = c->now;
    rc = stor_txn_opsession_put(t, &s);
    goto out; /* a granted command is audited by the command itself */
audit:
    op_audit_init(&c->audit, c->result == ADM_OK ? STOR_RES_OK : STOR_RES_DENIED, c->name, detail);
    rc = stor_txn_audit_append(t, &c->audit);
out:
    stor_wipe(&op, sizeof(op));
    return rc;
}

static int session_run(const adm_t *a, const adm_op_policy_t *p, const char *token, uint32_t role,
                       const char *command, int logout, char *name, uint32_t *roles, char *err, size_t err_sz)
{
    sess_check_t *c = calloc(1, sizeof(*c));
    int rc;

    if (c == NULL)
        return ERR("out of memory");
    token_hash(token != NULL ? token : "", c->hash);
    if (a->origin != NULL)
        memcpy(c->host_id, a->origin->host_id, sizeof(c->host_id));
    c->p = p;
    c->role = role;
    c->command = command != NULL ? command : "-";
    c->logout = logout;
    c->now = time(NULL);
    rc = stor_write(a->stor, sess_fn, c);
    if (rc != 0) {
        ERR("storage: %s", stor_strerror(rc));
        free(c);
        return ADM_ERR;
    }
    rc = c->result;
    if (name != NULL)
        snprintf(name, STOR_NAME_MAX + 1, "%s", c->name);
    if (roles != NULL)
        *roles = c->roles;
    if (rc == ADM_NOSESSION && c->other_host)
        adm_err(err, err_sz, ADM_ERR, "operator session was made on another host and is ended: log in on this host "
                                      "(csc-admin login)");
    else if (rc == ADM_NOSESSION)
        adm_err(err, err_sz, ADM_ERR, "not logged in (no valid operator session: run csc-admin login and set CSC_ADMIN_SESSION)");
    else if (rc == ADM_EXPIRED)
        adm_err(err, err_sz, ADM_ERR, "operator session expired: log in again (csc-admin login)");
    else if (rc == ADM_FORBIDDEN) {
        char rn[64];
        adm_op_roles_format(role, rn, sizeof(rn));
        adm_err(err, err_sz, ADM_ERR, "operator %s lacks the role %s needed for %s", c->name, rn, c->command);
    }
    OPENSSL_clear_free(c, sizeof(*c));
    return rc;
}

int adm_op_session_check(const adm_t *a, const adm_op_policy_t *p, const char *token, uint32_t role,
                         const char *command, char name[STOR_NAME_MAX + 1], uint32_t *roles, char *err,
                         size_t err_sz)
{
    return session_run(a, p, token, role, command, 0, name, roles, err, err_sz);
}

int adm_op_logout(const adm_t *a, const char *token, char *err, size_t err_sz)
{
    return session_run(a, NULL, token, 0, "logout", 1, NULL, NULL, err, err_sz);
}

/* ---- two-person approvals ---------------------------------------------------- */

typedef enum { APPR_APPROVE, APPR_REJECT, APPR_JOB_DONE } appr_mode_t;

typedef struct appr {
    stor_approval_t *ap;
    const char *id;
    const char *actor;
    uint32_t actor_roles;
    appr_mode_t mode;
    int64_t now;
    int result;
    const char *refused;       /* out: why, as audited */
    stor_audit_t audit;
} appr_t;

static void join_args(const stor_approval_t *ap, char *out, size_t out_sz)
{
    size_t pos = 0;

    out[0] = '\0';
    for (uint32_t i = 0; i < ap->n_args && pos < out_sz; i++)
        pos += (size_t)snprintf(out + pos, out_sz - pos, "%s%s", i ? " " : "", ap->args[i]);
}

/* "operator" in two_person: the commands that change who operates (operator add, remove, roles), not operator list. */
static int operator_change(const char *tok, const char *w1, const char *w2)
{
    return strcmp(tok, "operator") == 0 && strcmp(w1, "operator") == 0 && w2 != NULL &&
           (strcmp(w2, "add") == 0 || strcmp(w2, "remove") == 0 || strcmp(w2, "roles") == 0);
}

int adm_op_two_person(const char *two_person, const char *w1, const char *w2)
{
    char buf[1024], full[2 * STOR_APPROVAL_ARG_MAX + 4];
    snprintf(full, sizeof(full), "%s%s%s", w1, w2 != NULL ? "." : "", w2 != NULL ? w2 : "");
    snprintf(buf, sizeof(buf), "%s", two_person != NULL ? two_person : "");
    for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok != NULL; tok = strtok_r(NULL, ", \t", &save))
        if (strcmp(tok, full) == 0 || strcmp(tok, w2 != NULL ? w2 : w1) == 0 || operator_change(tok, w1, w2))
            return 1;
    return 0;
}

int adm_op_approval_request(const adm_t *a, const adm_op_policy_t *p, uint32_t role, int argc,
                            char *const *argv, char id[STOR_NAME_MAX + 1], char *err, size_t err_sz)
{
    id[0] = '\0';
    if (argc < 1 || argc > STOR_APPROVAL_ARGS_MAX)
        return ERR("a command held for approval has 1..%d words", STOR_APPROVAL_ARGS_MAX);
    for (int i = 0; i < argc; i++)
        if (strlen(argv[i]) > STOR_APPROVAL_ARG_MAX)
            return ERR("a word of a command held for approval has at most %d bytes", STOR_APPROVAL_ARG_MAX);
    int src = stor_approval_request(a->stor, a->operator_name, role, p->approval_ttl, argc, argv, id);
    return src != 0 ? ERR("storage: %s", stor_strerror(src)) : ADM_OK;
}

static int take_fn(stor_txn_t *t, void *arg)
{
    static const char *const actions[] = {"approval.approve", "approval.reject", "job.done"};
    appr_t *x = arg;
    char detail[512], cmd[160];
    int rc = stor_txn_approval_get(t, x->id, x->ap);

    x->refused = NULL;
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL) {
        x->result = ADM_NOTFOUND;
        if (x->mode == APPR_JOB_DONE)
            return 0; /* done by another run meanwhile: nothing happened here */
        snprintf(detail, sizeof(detail), "operator=%s action=%s id=%.64s refused=unknown", x->actor,
                 actions[x->mode], x->id);
        goto audit;
    }
    if (rc != 0)
        return rc;
    join_args(x->ap, cmd, sizeof(cmd));
    int job = (x->ap->flags & STOR_APPROVAL_JOB) != 0;
    x->result = ADM_FORBIDDEN;
    if (x->ap->expires_at != 0 && x->now >= x->ap->expires_at) {
        x->result = ADM_EXPIRED;
        x->refused = "expired";
        if ((rc = stor_txn_approval_del(t, x->id)) != 0)
            return rc;
    } else if ((x->actor_roles & x->ap->role) == 0) {
        x->refused = "role";
    } else if (x->mode == APPR_APPROVE && strcmp(x->actor, x->ap->requester) == 0) {
        x->refused = "same-operator";
    } else if (x->mode == APPR_REJECT && job) {
        x->refused = "job"; /* a key's destruction csc-server filed is no request to turn down */
    } else if (x->mode == APPR_JOB_DONE && !job) {
        x->refused = "not-a-job";
    } else {
        x->result = ADM_OK;
        if ((rc = stor_txn_approval_del(t, x->id)) != 0)
            return rc;
    }
    snprintf(detail, sizeof(detail), "operator=%s requester=%s action=%s id=%s%s%s command=%s", x->actor,
             x->ap->requester, actions[x->mode], x->id, x->refused ? " refused=" : "", x->refused ? x->refused : "",
             cmd);
audit:
    op_audit_init(&x->audit, x->result == ADM_OK ? STOR_RES_OK : STOR_RES_DENIED, x->actor, detail);
    return stor_txn_audit_append(t, &x->audit);
}

static int approval_decide(const adm_t *a, const char *id, uint32_t roles, appr_mode_t mode, stor_approval_t *out,
                           char *err, size_t err_sz)
{
    stor_approval_t *ap = out != NULL ? out : calloc(1, sizeof(*ap));
    appr_t x = {.ap = ap, .id = id, .actor = a->operator_name, .actor_roles = roles, .mode = mode,
                .now = time(NULL)};
    int rc;

    if (ap == NULL)
        return ERR("out of memory");
    rc = stor_write(a->stor, take_fn, &x);
    if (rc != 0) {
        if (ap != out)
            free(ap);
        return ERR("storage: %s", stor_strerror(rc));
    }
    if (x.result == ADM_NOTFOUND && mode == APPR_JOB_DONE)
        x.result = ADM_OK;
    switch (x.result) {
    case ADM_NOTFOUND:
        adm_err(err, err_sz, ADM_ERR, "no pending request %s", id);
        break;
    case ADM_EXPIRED:
        adm_err(err, err_sz, ADM_ERR, "request %s expired before its approval", id);
        break;
    case ADM_FORBIDDEN:
        adm_err(err, err_sz, ADM_ERR, "request %s: %s", id,
                strcmp(x.refused, "role") == 0 ? "the operator lacks the role of the request"
                : strcmp(x.refused, "job") == 0
                    ? "it is a job, not a request: csc-sam runs it (csc-admin credential destroy-pending by hand)"
                : strcmp(x.refused, "not-a-job") == 0 ? "it waits for a second operator (csc-admin approve)"
                                                      : "it must be approved by another operator with the same role");
        break;
    default:
        break;
    }
    if (ap != out)
        free(ap);
    return x.result;
}

int adm_op_approval_take(const adm_t *a, const char *id, uint32_t approver_roles, stor_approval_t *out,
                         char *err, size_t err_sz)
{
    if (out == NULL)
        return ERR("no output");
    return approval_decide(a, id, approver_roles, APPR_APPROVE, out, err, err_sz);
}

int adm_op_approval_reject(const adm_t *a, const char *id, uint32_t roles, char *err, size_t err_sz)
{
    return approval_decide(a, id, roles, APPR_REJECT, NULL, err, err_sz);
}

int adm_op_job_done(const adm_t *a, const char *id, uint32_t roles, char *err, size_t err_sz)
{
    return approval_decide(a, id, roles, APPR_JOB_DONE, NULL, err, err_sz);
}

static int list_appr(const stor_approval_t *ap, void *arg)
{
    char cmd[STOR_APPROVAL_ARGS_MAX * 8], rn[64];

    join_args(ap, cmd, sizeof(cmd));
    adm_op_roles_format(ap->role, rn, sizeof(rn));
    char until[32] = "never";
    if (ap->expires_at != 0)
        snprintf(until, sizeof(until), "%lld%s", (long long)ap->expires_at,
                 ap->expires_at <= time(NULL) ? " expired" : "");
    fprintf(arg, "%s %s requester=%s role=%s created_at=%lld expires_at=%s%s command: %s%s%s%s\n",
            (ap->flags & STOR_APPROVAL_JOB) ? "job" : "approval", ap->id, ap->requester, rn, (long long)ap->created_at,
            until, (ap->flags & STOR_APPROVAL_JOB) ? " (csc-sam runs it; by hand: csc-admin credential destroy-pending)" : "", cmd,
            ap->origin[0] != '\0' ? " (from " : "", ap->origin, ap->origin[0] != '\0' ? ")" : "");
    return 0;
}

static int list_appr_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_approval_each(t, list_appr, arg);
}

int adm_op_approvals_list(const adm_t *a, void *out_file)
{
    return stor_read(a->stor, list_appr_fn, out_file) == 0 ? 0 : -1;
}
