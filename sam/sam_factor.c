/*
 * sam_factor.c - TOTP secrets at rest (sam_server.h): sealed under the token's factor key (hsm_factor_seal, AES-GCM)
 * with the additional data "csc-totp/v1" NUL user, so a sealed secret copied into another user's record (or a
 * ticket of another user) does not open; an operator's (csc-admin's) with "csc-totp-operator/v1" NUL name, so neither
 * kind opens as the other. Stored form: version byte SAM_TOTP_SEALED_V1, nonce, ciphertext, tag.
 * csc-sam alone links this (tests/unit/server/check_symbols SAM_ONLY): csc-server never opens a TOTP secret.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "sam_core.h"

#define SAM_TOTP_SEALED_V1 1
#define AAD_PREFIX "csc-totp/v1"
#define AAD_PREFIX_OPERATOR "csc-totp-operator/v1" /* an operator's: never opens as a user's, nor the reverse */
#define AAD_MAX (sizeof(AAD_PREFIX_OPERATOR) + STOR_NAME_MAX)

/* prefix NUL name (a user's or an operator's name, at most STOR_NAME_MAX bytes); 0 or -1. */
static int totp_aad(const char *prefix, const char *name, uint8_t aad[AAD_MAX], size_t *len)
{
    size_t n = name != NULL ? strnlen(name, STOR_NAME_MAX + 1) : 0, p = strlen(prefix) + 1;
    if (n == 0 || n > STOR_NAME_MAX)
        return -1;
    memcpy(aad, prefix, p); /* with its NUL */
    memcpy(aad + p, name, n);
    *len = p + n;
    return 0;
}

static int seal_as(const char *prefix, hsm_t *hsm, const char *name, const uint8_t *secret, size_t len,
                   uint8_t out[STOR_TOTP_SEALED_MAX], uint32_t *out_len)
{
    uint8_t aad[AAD_MAX];
    size_t alen = 0, n = 0;

    *out_len = 0;
    if (hsm == NULL || len == 0 || len > STOR_TOTP_MAX || totp_aad(prefix, name, aad, &alen) != 0)
        return -1;
    out[0] = SAM_TOTP_SEALED_V1;
    if (hsm_factor_seal(hsm, aad, alen, secret, len, out + 1, STOR_TOTP_SEALED_MAX - 1, &n) != HSM_OK) {
        OPENSSL_cleanse(out, STOR_TOTP_SEALED_MAX);
        return -1;
    }
    *out_len = (uint32_t)(1 + n);
    return 0;
}

static int open_as(const char *prefix, hsm_t *hsm, const char *name, const uint8_t *blob, size_t len,
                   uint8_t out[STOR_TOTP_MAX], size_t *out_len)
{
    uint8_t aad[AAD_MAX];
    size_t alen = 0;

    *out_len = 0;
    if (hsm == NULL || len < 2 || len > STOR_TOTP_SEALED_MAX || blob[0] != SAM_TOTP_SEALED_V1 ||
        totp_aad(prefix, name, aad, &alen) != 0)
        return -1;
    int rc = hsm_factor_open(hsm, aad, alen, blob + 1, len - 1, out, STOR_TOTP_MAX, out_len);
    if (rc != HSM_OK) {
        *out_len = 0;
        return rc == HSM_ERR_BADSIG ? -1 : -2; /* -2: the token could not try (unavailable, no factor key) */
    }
    return 0;
}

int sam_totp_seal(hsm_t *hsm, const char *user, const uint8_t *secret, size_t len,
                  uint8_t out[STOR_TOTP_SEALED_MAX], uint32_t *out_len)
{
    return seal_as(AAD_PREFIX, hsm, user, secret, len, out, out_len);
}

int sam_totp_open(hsm_t *hsm, const char *user, const uint8_t *blob, size_t len, uint8_t out[STOR_TOTP_MAX],
                  size_t *out_len)
{
    return open_as(AAD_PREFIX, hsm, user, blob, len, out, out_len);
}

int sam_operator_totp_seal(void *hsm, const char *name, const uint8_t *secret, size_t len,
                           uint8_t out[STOR_TOTP_SEALED_MAX], uint32_t *out_len)
{
    return seal_as(AAD_PREFIX_OPERATOR, hsm, name, secret, len, out, out_len);
}

int sam_operator_totp_open(void *hsm, const char *name, const uint8_t *blob, size_t len, uint8_t out[STOR_TOTP_MAX],
                           size_t *out_len)
{
    return open_as(AAD_PREFIX_OPERATOR, hsm, name, blob, len, out, out_len);
}

int sam_user_totp_open(void *hsm, const stor_user_t *u, uint8_t out[STOR_TOTP_MAX], size_t *len)
{
    return sam_totp_open(hsm, u->name, u->totp_sealed, u->totp_sealed_len, out, len);
}

/* ---- the upgrade at start: every clear secret sealed, in one write, audited with the count ---- */

typedef struct seal_all {
    hsm_t *hsm;
    unsigned sealed, failed, op_sealed, op_failed;
    size_t n, cap;
    char (*names)[STOR_NAME_MAX + 1];
    stor_user_t u;
    stor_operator_t op;
} seal_all_t;

/* Note the name of a record whose secret is still clear. */
static int note_name(seal_all_t *s, const char *name)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        void *p = OPENSSL_realloc(s->names, cap * sizeof(s->names[0]));
        if (p == NULL)
            return STOR_ERR_NOMEM;
        s->names = p;
        s->cap = cap;
    }
    snprintf(s->names[s->n++], sizeof(s->names[0]), "%s", name);
    return 0;
}

static int clear_one(const stor_user_t *u, void *arg)
{
    return u->totp_secret_len == 0 || u->totp_sealed_len != 0 ? 0 : note_name(arg, u->name);
}

static int clear_operator(const stor_operator_t *op, void *arg)
{
    return op->totp_secret_len == 0 || op->totp_sealed_len != 0 ? 0 : note_name(arg, op->name);
}

/* The operators' clear secrets, as the users' below (the operators' additional data). */
static int seal_operators(stor_txn_t *t, seal_all_t *s)
{
    int rc;
    s->n = 0;
    if ((rc = stor_txn_operator_each(t, clear_operator, s)) != 0)
        return rc;
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        if ((rc = stor_txn_operator_get(t, s->names[i], &s->op)) != 0)
            break;
        if (sam_operator_totp_seal(s->hsm, s->op.name, s->op.totp_secret, s->op.totp_secret_len, s->op.totp_sealed,
                                   &s->op.totp_sealed_len) != 0) {
            s->op_failed++;
            continue;
        }
        OPENSSL_cleanse(s->op.totp_secret, sizeof(s->op.totp_secret));
        s->op.totp_secret_len = 0;
        if ((rc = stor_txn_operator_put(t, &s->op, 0)) == 0)
            s->op_sealed++;
    }
    OPENSSL_cleanse(&s->op, sizeof(s->op));
    return rc;
}

static int seal_all_fn(stor_txn_t *t, void *arg)
{
    seal_all_t *s = arg;
    int rc = 0;
    s->n = s->sealed = s->failed = s->op_sealed = s->op_failed = 0;
    if ((rc = stor_txn_user_each(t, clear_one, s)) != 0)
        return rc;
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        if ((rc = stor_txn_user_get(t, s->names[i], &s->u)) != 0)
            break;
        if (sam_totp_seal(s->hsm, s->u.name, s->u.totp_secret, s->u.totp_secret_len, s->u.totp_sealed,
                          &s->u.totp_sealed_len) != 0) {
            s->failed++; /* stays clear (csc-sam still opens it), tried again at the next start */
            continue;
        }
        OPENSSL_cleanse(s->u.totp_secret, sizeof(s->u.totp_secret));
        s->u.totp_secret_len = 0;
        if ((rc = stor_txn_user_put(t, &s->u, 0)) == 0)
            s->sealed++;
    }
    OPENSSL_cleanse(&s->u, sizeof(s->u));
    if (rc == 0)
        rc = seal_operators(t, s);
    if (rc != 0 || (s->sealed == 0 && s->failed == 0 && s->op_sealed == 0 && s->op_failed == 0))
        return rc;
    stor_audit_t a;
    memset(&a, 0, sizeof(a));
    a.event = STOR_EV_SAM;
    a.result = s->failed == 0 && s->op_failed == 0 ? STOR_RES_OK : STOR_RES_ERROR;
    snprintf(a.client, sizeof(a.client), "csc-sam");
    snprintf(a.detail, sizeof(a.detail), "action=totp.seal sealed=%u failed=%u operators_sealed=%u operators_failed=%u",
             s->sealed, s->failed, s->op_sealed, s->op_failed);
    return stor_txn_audit_append(t, &a);
}

int sam_totp_seal_all(stor_env_t *stor, hsm_t *hsm, unsigned *sealed, unsigned *failed)
{
    seal_all_t *s = OPENSSL_zalloc(sizeof(*s));
    if (s == NULL)
        return STOR_ERR_NOMEM;
    s->hsm = hsm;
    int rc = stor_write(stor, seal_all_fn, s);
    *sealed = rc == 0 ? s->sealed + s->op_sealed : 0;
    *failed = rc == 0 ? s->failed + s->op_failed : 0;
    OPENSSL_free(s->names);
    OPENSSL_clear_free(s, sizeof(*s));
    return rc;
}

static int audit_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_audit_append(t, arg);
}

/* hsm_factor_derive's label of the one-time codes' MAC key. Never change it: codes pending at an upgrade would fail. */
#define SAM_CHALLENGE_KEY_LABEL "challenge-1"
/* hsm_factor_derive's label of the sign-in pages' ticket key (HELLO's SAM_T_TICKET_KEY): another label, so it never
 * equals the challenge key (the front end, which has it, cannot make a stored code's MAC). Changing it ends the pages
 * in progress at the upgrade, nothing more. */
#define SAM_TICKET_KEY_LABEL "ticket-1"

int sam_factor_start(stor_env_t *stor, hsm_t *hsm, oauth_t *oauth, uint8_t *ticket_key)
{
    if (ticket_key != NULL)
        memset(ticket_key, 0, SAM_TICKET_KEY_LEN);
    int created = 0, rc = hsm_factor_init(hsm, &created);
    if (rc != HSM_OK)
        return rc;
    if (created) {
        stor_audit_t a;
        memset(&a, 0, sizeof(a));
        a.event = STOR_EV_SAM;
        a.result = STOR_RES_OK;
        snprintf(a.client, sizeof(a.client), "csc-sam");
        snprintf(a.detail, sizeof(a.detail), "action=factor_key.created label=csc-factor-key");
        if (stor_write(stor, audit_fn, &a) != STOR_OK)
            return HSM_ERR_INTERNAL;
    }
    unsigned sealed = 0, failed = 0;
    if ((sam_totp_seal_all(stor, hsm, &sealed, &failed)) != STOR_OK)
        return HSM_ERR_INTERNAL;
    if (sealed != 0 || failed != 0)
        fprintf(stderr, "csc-sam: TOTP secrets found in clear: %u sealed, %u could not be sealed\n", sealed, failed);
    oauth_set_totp_open(oauth, sam_user_totp_open, hsm);
    /* The MAC key of the pending one-time codes in storage: the same on every node of the shared HSM. */
    uint8_t ck[HSM_DERIVE_LEN];
    _Static_assert(HSM_DERIVE_LEN == OAUTH_CHALLENGE_KEY_LEN, "the derived key is oauth/'s challenge key");
    if ((rc = hsm_factor_derive(hsm, SAM_CHALLENGE_KEY_LABEL, ck)) != HSM_OK)
        return rc;
    oauth_set_challenge_key(oauth, ck);
    OPENSSL_cleanse(ck, sizeof(ck));
    /* The sign-in pages' ticket key, for csc-server (HELLO): a page one node served is accepted by any node. */
    _Static_assert(HSM_DERIVE_LEN == SAM_TICKET_KEY_LEN, "the derived key is HELLO's ticket key");
    if (ticket_key != NULL && (rc = hsm_factor_derive(hsm, SAM_TICKET_KEY_LABEL, ticket_key)) != HSM_OK)
        return rc; /* hsm_factor_derive zeroed it */
    return HSM_OK;
}
