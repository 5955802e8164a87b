/*
 * oauth_client.c - OAuth 2.0 client registry: registration by an operator,
 * removal, lookup, and client authentication by secret.
 *
 * A client secret is 32 random bytes in base64url, shown once; storage keeps
 * only its SHA-256 (a 256-bit random secret needs no slow hash). Authentication
 * hashes and compares in constant time, and an unknown client id still costs a
 * hash and a compare, so the answer time does not tell which ids exist.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "oauth_int.h"

#define ALL_GRANTS (STOR_GRANT_AUTHORIZATION_CODE | STOR_GRANT_REFRESH_TOKEN | STOR_GRANT_CLIENT_CREDENTIALS)
#define ALL_SCOPES ((1u << STOR_SCOPE_SERVICE) | (1u << STOR_SCOPE_CREDENTIAL))
#define PORT_DIGITS_MAX 5

/* ---- redirect URIs --------------------------------------------------------- */

static int is_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ":port" with 1..5 digits up to 65535, or nothing. */
static int port_ok(const char *p, size_t n)
{
    unsigned long v = 0;
    size_t i;

    if (n == 0)
        return 1;
    if (p[0] != ':' || n < 2 || n > 1 + PORT_DIGITS_MAX)
        return 0;
    for (i = 1; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

/* Host and port of an authority: a DNS name or IPv4 address, or an IPv6 address in brackets. No userinfo. */
static int authority_ok(const char *a, size_t n, size_t *host_len)
{
    size_t i = 0;

    if (n == 0)
        return 0;
    if (a[0] == '[') {
        for (i = 1; i < n && a[i] != ']'; i++)
            if (!is_hex(a[i]) && a[i] != ':' && a[i] != '.')
                return 0;
        if (i == n || i == 1)
            return 0;
        i++;
    } else {
        for (; i < n && a[i] != ':'; i++)
            if (!is_alnum(a[i]) && a[i] != '-' && a[i] != '.')
                return 0;
        if (i == 0)
            return 0;
    }
    *host_len = i;
    return port_ok(a + i, n - i);
}

/* Hosts plain http may use: the loopback interface only (RFC 8252 7.3). */
static int loopback(const char *h, size_t n)
{
    return (n == 9 && memcmp(h, "localhost", 9) == 0) || (n == 9 && memcmp(h, "127.0.0.1", 9) == 0) ||
           (n == 5 && memcmp(h, "[::1]", 5) == 0);
}

/* Absolute https URI, or http on localhost/127.0.0.1/[::1]; printable ASCII without spaces; no fragment. */
static int redirect_ok(const char *u)
{
    size_t n, i, skip, alen, hlen = 0;
    int https;

    if (!u || (n = strnlen(u, STOR_URI_MAX + 1)) == 0 || n > STOR_URI_MAX)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f || u[i] == '#')
            return 0;
    if (strncmp(u, "https://", 8) == 0)
        https = 1;
    else if (strncmp(u, "http://", 7) == 0)
        https = 0;
    else
        return 0;
    skip = https ? 8 : 7;
    alen = strcspn(u + skip, "/?");
    if (!authority_ok(u + skip, alen, &hlen))
        return 0;
    return https || loopback(u + skip, hlen);
}

static int client_ok(const stor_client_t *c)
{
    uint32_t i;

    if (!oauth_id_ok(c->id) || !memchr(c->name, '\0', sizeof(c->name)) || c->n_redirects > STOR_REDIRECTS_MAX)
        return 0;
    if (!c->grants || (c->grants & ~ALL_GRANTS) || !c->scopes || (c->scopes & ~ALL_SCOPES))
        return 0;
    /* The code flow cannot deliver a code without a registered redirect URI. */
    if ((c->grants & STOR_GRANT_AUTHORIZATION_CODE) && c->n_redirects == 0)
        return 0;
    for (i = 0; i < c->n_redirects; i++)
        if (!redirect_ok(c->redirects[i]))
            return 0;
    return 1;
}

/* ---- add / remove ---------------------------------------------------------- */

typedef struct {
    stor_client_t *c;          /* add: the record; remove: NULL */
    const char *id;
    const char *operator_name;
    int rc;
} admin_ctx_t;

static int admin_audit(stor_txn_t *t, admin_ctx_t *a, const char *action)
{
    stor_audit_t rec;

    oauth_audit_init(&rec, STOR_EV_ADMIN, a->rc == OAUTH_OK ? STOR_RES_OK : STOR_RES_DENIED, NULL, NULL,
                     "csc-admin");
    snprintf(rec.detail, sizeof(rec.detail), "operator=%s action=%s id=%s%s",
             a->operator_name && a->operator_name[0] ? a->operator_name : "-", action, a->id,
             a->rc == OAUTH_OK ? "" : a->c ? " denied: exists" : " denied: unknown client");
    return stor_txn_audit_append(t, &rec);
}

static int add_apply(stor_txn_t *t, void *arg)
{
    admin_ctx_t *a = arg;
    int rc = stor_txn_client_put(t, a->c, 1);

    if (rc < 0 && rc != STOR_ERR_EXISTS)
        return rc;
    a->rc = rc == STOR_ERR_EXISTS ? OAUTH_ERR_DENIED : OAUTH_OK;
    rc = admin_audit(t, a, "client.add");
    return rc < 0 ? rc : 0;
}

static int remove_apply(stor_txn_t *t, void *arg)
{
    admin_ctx_t *a = arg;
    int rc = stor_txn_client_del(t, a->id);

    if (rc < 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    a->rc = rc == STOR_ERR_NOTFOUND ? OAUTH_ERR_INVALID : OAUTH_OK;
    rc = admin_audit(t, a, "client.remove");
    return rc < 0 ? rc : 0;
}

int oauth_client_add(oauth_t *o, const stor_client_t *c, const char *operator_name, char secret[OAUTH_TOKEN_BUFLEN])
{
    char value[OAUTH_TOKEN_BUFLEN] = "";
    admin_ctx_t a = {NULL, NULL, operator_name, OAUTH_OK};
    uint32_t i;
    int rc = OAUTH_ERR_INVAL;

    if (secret)
        secret[0] = '\0';
    if (!o || !c || !secret || !client_ok(c))
        goto out;
    rc = OAUTH_ERR_INTERNAL;
    if (!(a.c = malloc(sizeof(*a.c))))
        goto out;
    *a.c = *c;
    for (i = a.c->n_redirects; i < STOR_REDIRECTS_MAX; i++)
        memset(a.c->redirects[i], 0, sizeof(a.c->redirects[i]));
    a.c->created_at = oauth_clock(o);
    a.id = a.c->id;
    if ((rc = oauth_token_new(value, a.c->secret_hash)) != OAUTH_OK)
        goto out;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, add_apply, &a))) == OAUTH_OK)
        rc = a.rc;
    if (rc == OAUTH_OK)
        memcpy(secret, value, OAUTH_TOKEN_BUFLEN);
out:
    OPENSSL_cleanse(value, sizeof(value));
    if (a.c)
        OPENSSL_clear_free(a.c, sizeof(*a.c));
    return rc;
}

int oauth_client_remove(oauth_t *o, const char *id, const char *operator_name)
{
    admin_ctx_t a = {NULL, id, operator_name, OAUTH_OK};
    int rc;

    if (!o || !oauth_id_ok(id))
        return OAUTH_ERR_INVAL;
    if ((rc = oauth_rc(stor_write(o->cfg.stor, remove_apply, &a))) == OAUTH_OK)
        rc = a.rc;
    return rc;
}

/* ---- lookup and authentication ----------------------------------------------- */

typedef struct {
    const char *id;
    stor_client_t *out;
} get_ctx_t;

static int get_read(stor_txn_t *t, void *arg)
{
    get_ctx_t *g = arg;

    return stor_txn_client_get(t, g->id, g->out);
}

/* OAUTH_OK, OAUTH_ERR_INVALID (no such client) or OAUTH_ERR_STORAGE. */
static int client_read(oauth_t *o, const char *id, stor_client_t *out)
{
    get_ctx_t g = {id, out};
    int rc = stor_read(o->cfg.stor, get_read, &g);

    if (rc == STOR_ERR_NOTFOUND)
        return OAUTH_ERR_INVALID;
    return oauth_rc(rc);
}

int oauth_client_get(oauth_t *o, const char *id, stor_client_t *out)
{
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!o || !out || !oauth_id_ok(id))
        return OAUTH_ERR_INVAL;
    if ((rc = client_read(o, id, out)) != OAUTH_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

int oauth_client_auth(oauth_t *o, const char *id, const char *secret, size_t len, stor_client_t *out)
{
    /* No secret hashes to this (that would need a SHA-256 preimage): the unknown-client path compares to it. */
    static const uint8_t dummy[32] = {0};
    stor_client_t *c = NULL;
    uint8_t h[32];
    int rc = OAUTH_ERR_INVAL, known = 0, eq;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!o || !out || (!secret && len))
        goto out;
    rc = OAUTH_ERR_INTERNAL;
    if (!(c = calloc(1, sizeof(*c))))
        goto out;
    if (oauth_id_ok(id)) {
        if ((rc = client_read(o, id, c)) != OAUTH_OK && rc != OAUTH_ERR_INVALID)
            goto out;
        known = rc == OAUTH_OK;
    }
    /* An over-long secret is wrong anyway: hash only a bounded prefix, and refuse. */
    if ((rc = oauth_sha256(secret ? secret : "", len < OAUTH_CLIENT_SECRET_MAX ? len : OAUTH_CLIENT_SECRET_MAX,
                           h)) != OAUTH_OK)
        goto out;
    eq = CRYPTO_memcmp(h, known ? c->secret_hash : dummy, 32) == 0;
    rc = known && eq && len <= OAUTH_CLIENT_SECRET_MAX ? OAUTH_OK : OAUTH_ERR_DENIED;
    if (rc == OAUTH_OK)
        *out = *c;
out:
    OPENSSL_cleanse(h, sizeof(h));
    if (c)
        OPENSSL_clear_free(c, sizeof(*c));
    return rc;
}
