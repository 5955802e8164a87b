/* test_stor_oauth.c - OAuth records: the new token fields, clients, authorization codes, grant walks, purge. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_stor.h"

static char g_path[PATH_MAX];
static stor_env_t *g_env;

static void setup(void)
{
    ck_assert_int_lt(snprintf(g_path, sizeof(g_path), "%s", tst_path()), (int)sizeof(g_path));
    g_env = tst_open(g_path, 0);
}

static void teardown(void)
{
    stor_close(g_env);
    g_env = NULL;
}

/* ---- codec --------------------------------------------------------------- */

typedef struct rawrec {
    uint8_t b[8192];
    size_t n;
} rawrec_t;

static void raw_init(rawrec_t *r, uint8_t type)
{
    r->b[0] = type;
    r->b[1] = STOR_CODEC_VERSION;
    r->n = 2;
}

static void add_field(rawrec_t *r, uint8_t tag, const void *val, uint32_t len)
{
    ck_assert_uint_le(r->n + 5 + len, sizeof(r->b));
    r->b[r->n] = tag;
    for (int i = 0; i < 4; i++)
        r->b[r->n + 1 + i] = (uint8_t)(len >> (8 * i));
    if (len > 0)
        memcpy(r->b + r->n + 5, val, len);
    r->n += 5 + len;
}

/* One string of an F_STRS value: u32 LE length, bytes. */
static size_t str_item(uint8_t *p, const char *s, uint32_t n)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(n >> (8 * i));
    memcpy(p + 4, s, n);
    return 4 + n;
}

static uint8_t *encode(stor_rec_type_t type, const void *rec, size_t *len)
{
    uint8_t *buf;

    ck_assert_int_eq(stor_codec_size(type, rec, len), 0);
    buf = malloc(*len);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(stor_codec_encode(type, rec, buf, *len), 0);
    return buf;
}

static void sample_client(stor_client_t *c, const char *id, uint32_t n_redirects)
{
    memset(c, 0, sizeof(*c));
    tst_set(c->id, sizeof(c->id), id);
    memset(c->name, 'N', STOR_DESC_MAX);
    memset(c->secret_hash, 0x5C, 32);
    c->n_redirects = n_redirects; /* may exceed the array, to test the limit: only the array is filled */
    for (uint32_t i = 0; i < n_redirects && i < STOR_REDIRECTS_MAX; i++) {
        int n = snprintf(c->redirects[i], sizeof(c->redirects[i]), "https://app%u.example/cb", i);
        ck_assert_int_gt(n, 0);
    }
    c->scopes = 1u << STOR_SCOPE_SERVICE | 1u << STOR_SCOPE_CREDENTIAL;
    c->grants = STOR_GRANT_AUTHORIZATION_CODE | STOR_GRANT_REFRESH_TOKEN;
    c->created_at = -7;
}

static void sample_code(stor_code_t *k, uint8_t h, int64_t exp)
{
    memset(k, 0, sizeof(*k));
    memset(k->hash, h, 32);
    TST_SET(k->client, "app");
    TST_SET(k->user, "alice");
    memset(k->redirect_uri, 'u', STOR_URI_MAX);
    k->redirect_given = 1;
    memset(k->challenge, 0xC4, 32);
    k->scope = STOR_SCOPE_CREDENTIAL;
    k->expires_at = exp;
    k->used = 0;
    memset(k->grant, h ^ 0xFF, 16);
    TST_SET(k->cred, "cred-1");
    memset(k->authz_details, '{', STOR_AUTHZ_DETAILS_MAX);
}

START_TEST(t_token_new_fields)
{
    stor_token_t tok, d;
    uint8_t hash[32], grant[16], *buf;
    uint32_t u;
    int64_t i;
    rawrec_t r;
    size_t len;

    memset(&tok, 0, sizeof(tok));
    memset(tok.hash, 0x42, 32);
    tok.kind = STOR_TOKEN_REFRESH;
    tok.scope = STOR_SCOPE_CREDENTIAL;
    TST_SET(tok.user, "bob");
    memset(tok.client, 'c', STOR_NAME_MAX);
    tok.rotated = 1;
    TST_SET(tok.cred, "cred-7");
    buf = encode(STOR_REC_TOKEN, &tok, &len);
    memset(&d, 0x77, sizeof(d));
    ck_assert_int_eq(stor_codec_decode(STOR_REC_TOKEN, buf, len, &d), 0);
    ck_assert_mem_eq(&tok, &d, sizeof(tok));
    free(buf);

    /* a record of the first layout (tags 1..8 only): the new fields come back empty */
    memset(hash, 0x11, 32);
    memset(grant, 0x22, 16);
    raw_init(&r, STOR_REC_TOKEN);
    add_field(&r, 1, hash, 32);
    u = STOR_TOKEN_ACCESS;
    add_field(&r, 2, &u, 4);
    u = STOR_SCOPE_SERVICE;
    add_field(&r, 3, &u, 4);
    add_field(&r, 4, "carol", 5);
    add_field(&r, 5, grant, 16);
    i = 100;
    add_field(&r, 6, &i, 8);
    i = 200;
    add_field(&r, 7, &i, 8);
    u = 0;
    add_field(&r, 8, &u, 4);
    memset(&d, 0x77, sizeof(d));
    ck_assert_int_eq(stor_codec_decode(STOR_REC_TOKEN, r.b, r.n, &d), 0);
    ck_assert_str_eq(d.user, "carol");
    ck_assert_int_eq(d.expires_at, 200);
    ck_assert_str_eq(d.client, "");
    ck_assert_str_eq(d.cred, "");
    ck_assert_uint_eq(d.rotated, 0);

    /* over-long client */
    memset(&tok, 0, sizeof(tok));
    memset(tok.client, 'c', sizeof(tok.client));
    ck_assert_int_eq(stor_codec_size(STOR_REC_TOKEN, &tok, &len), STOR_ERR_INVAL);
}
END_TEST

START_TEST(t_client_roundtrip)
{
    stor_client_t *c = malloc(sizeof(*c)), *d = malloc(sizeof(*d));
    uint8_t *buf;
    size_t len;

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(d);
    /* every redirect slot used, each of the longest length */
    sample_client(c, "app", STOR_REDIRECTS_MAX);
    for (uint32_t i = 0; i < STOR_REDIRECTS_MAX; i++) {
        memset(c->redirects[i], 'a' + (int)i, STOR_URI_MAX);
        c->redirects[i][STOR_URI_MAX] = '\0';
    }
    buf = encode(STOR_REC_CLIENT, c, &len);
    ck_assert_uint_eq(buf[0], STOR_REC_CLIENT);
    memset(d, 0x66, sizeof(*d));
    ck_assert_int_eq(stor_codec_decode(STOR_REC_CLIENT, buf, len, d), 0);
    ck_assert_mem_eq(c, d, sizeof(*c));
    free(buf);

    /* two redirects: only those are encoded, the other slots decode as zeros */
    sample_client(c, "app2", 2);
    buf = encode(STOR_REC_CLIENT, c, &len);
    ck_assert_uint_lt(len, 1024);
    memset(d, 0x66, sizeof(*d));
    ck_assert_int_eq(stor_codec_decode(STOR_REC_CLIENT, buf, len, d), 0);
    ck_assert_mem_eq(c, d, sizeof(*c));
    ck_assert_str_eq(d->redirects[1], "https://app1.example/cb");
    ck_assert_str_eq(d->redirects[2], "");
    free(buf);

    /* none */
    sample_client(c, "app3", 0);
    buf = encode(STOR_REC_CLIENT, c, &len);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_CLIENT, buf, len, d), 0);
    ck_assert_mem_eq(c, d, sizeof(*c));
    free(buf);

    /* limits: too many redirects, an unterminated one, an unterminated name */
    sample_client(c, "app", STOR_REDIRECTS_MAX + 1);
    ck_assert_int_eq(stor_codec_size(STOR_REC_CLIENT, c, &len), STOR_ERR_INVAL);
    sample_client(c, "app", 1);
    memset(c->redirects[0], 'x', sizeof(c->redirects[0]));
    ck_assert_int_eq(stor_codec_size(STOR_REC_CLIENT, c, &len), STOR_ERR_INVAL);
    sample_client(c, "app", 1);
    memset(c->redirects[1], 'x', sizeof(c->redirects[1])); /* unused slot: not looked at */
    ck_assert_int_eq(stor_codec_size(STOR_REC_CLIENT, c, &len), 0);
    sample_client(c, "app", 1);
    memset(c->name, 'x', sizeof(c->name));
    ck_assert_int_eq(stor_codec_size(STOR_REC_CLIENT, c, &len), STOR_ERR_INVAL);
    free(c);
    free(d);
}
END_TEST

START_TEST(t_code_roundtrip)
{
    stor_code_t *k = malloc(sizeof(*k)), *d = malloc(sizeof(*d));
    uint8_t *buf;
    size_t len;

    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_nonnull(d);
    sample_code(k, 3, INT64_MAX);
    buf = encode(STOR_REC_CODE, k, &len);
    memset(d, 0x66, sizeof(*d));
    ck_assert_int_eq(stor_codec_decode(STOR_REC_CODE, buf, len, d), 0);
    ck_assert_mem_eq(k, d, sizeof(*k));
    free(buf);
    memset(k->authz_details, 'x', sizeof(k->authz_details));
    ck_assert_int_eq(stor_codec_size(STOR_REC_CODE, k, &len), STOR_ERR_INVAL);
    free(k);
    free(d);
}
END_TEST

static void expect_client_corrupt(const rawrec_t *r)
{
    stor_client_t *d = malloc(sizeof(*d));

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_CLIENT, r->b, r->n, d), STOR_ERR_CORRUPT);
    ck_assert_str_eq(d->id, "");
    free(d);
}

static void client_with_redirects(rawrec_t *r, uint32_t count, const uint8_t *strs, size_t strs_len)
{
    raw_init(r, STOR_REC_CLIENT);
    add_field(r, 1, "app", 3);
    add_field(r, 4, &count, 4);
    add_field(r, 5, strs, (uint32_t)strs_len);
}

START_TEST(t_client_corrupt)
{
    stor_client_t *d = malloc(sizeof(*d));
    uint8_t v[8 * 600], big[STOR_URI_MAX + 1];
    size_t n = 0;
    rawrec_t r;

    ck_assert_ptr_nonnull(d);
    memset(big, 'b', sizeof(big));
    /* well-formed: two strings, count 2, count after the strings */
    n = str_item(v, "https://a/", 10);
    n += str_item(v + n, "https://b/", 10);
    raw_init(&r, STOR_REC_CLIENT);
    add_field(&r, 1, "app", 3);
    add_field(&r, 5, v, (uint32_t)n);
    add_field(&r, 4, (uint32_t[]){ 2 }, 4);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_CLIENT, r.b, r.n, d), 0);
    ck_assert_uint_eq(d->n_redirects, 2);
    ck_assert_str_eq(d->redirects[1], "https://b/");

    client_with_redirects(&r, 3, v, n); /* count says 3, two strings */
    expect_client_corrupt(&r);
    client_with_redirects(&r, 1, v, n); /* count says 1, two strings */
    expect_client_corrupt(&r);
    raw_init(&r, STOR_REC_CLIENT); /* count without strings */
    add_field(&r, 4, (uint32_t[]){ 1 }, 4);
    expect_client_corrupt(&r);
    raw_init(&r, STOR_REC_CLIENT); /* strings without count */
    add_field(&r, 5, v, (uint32_t)n);
    expect_client_corrupt(&r);
    n = str_item(v, (const char *)big, STOR_URI_MAX + 1); /* one string too long */
    client_with_redirects(&r, 1, v, n);
    expect_client_corrupt(&r);
    n = str_item(v, "a\0b", 3); /* embedded NUL */
    client_with_redirects(&r, 1, v, n);
    expect_client_corrupt(&r);
    n = str_item(v, "abc", 3) - 1; /* string cut short */
    client_with_redirects(&r, 1, v, n);
    expect_client_corrupt(&r);
    n = str_item(v, "abc", 3) + 2; /* a length prefix cut short */
    v[7] = 0;
    v[8] = 0;
    client_with_redirects(&r, 2, v, n);
    expect_client_corrupt(&r);
    n = 0; /* more strings than the array holds */
    for (int i = 0; i < STOR_REDIRECTS_MAX + 1; i++)
        n += str_item(v + n, "https://x/", 10);
    client_with_redirects(&r, STOR_REDIRECTS_MAX + 1, v, n);
    expect_client_corrupt(&r);
    n = str_item(v, "https://x/", 10); /* the string list twice */
    client_with_redirects(&r, 1, v, n);
    add_field(&r, 5, v, (uint32_t)n);
    expect_client_corrupt(&r);
    free(d);
}
END_TEST

START_TEST(t_peek_strs_refused)
{
    stor_client_t *c = malloc(sizeof(*c));
    char out[STOR_URI_MAX + 1];
    int64_t created;
    uint8_t *buf;
    size_t len;

    ck_assert_ptr_nonnull(c);
    sample_client(c, "app", 1);
    buf = encode(STOR_REC_CLIENT, c, &len);
    ck_assert_int_eq(stor_codec_peek(STOR_REC_CLIENT, buf, len, offsetof(stor_client_t, redirects), out, sizeof(out)),
                     STOR_ERR_INVAL);
    ck_assert_int_eq(stor_codec_peek(STOR_REC_CLIENT, buf, len, offsetof(stor_client_t, created_at), &created, 8), 0);
    ck_assert_int_eq(created, -7);
    free(buf);
    free(c);
}
END_TEST

/* ---- clients ---------------------------------------------------------------- */

typedef struct client_op {
    stor_client_t *c;
    const char *id;
    int create_only;
} client_op_t;

static int client_put_fn(stor_txn_t *t, void *arg)
{
    client_op_t *op = arg;

    return stor_txn_client_put(t, op->c, op->create_only);
}

static int client_get_fn(stor_txn_t *t, void *arg)
{
    client_op_t *op = arg;

    return stor_txn_client_get(t, op->id, op->c);
}

static int client_del_fn(stor_txn_t *t, void *arg)
{
    client_op_t *op = arg;

    return stor_txn_client_del(t, op->id);
}

static int put_client(stor_client_t *c, int create_only)
{
    client_op_t op = { c, NULL, create_only };

    return stor_write(g_env, client_put_fn, &op);
}

static int get_client(const char *id, stor_client_t *out)
{
    client_op_t op = { out, id, 0 };

    return stor_read(g_env, client_get_fn, &op);
}

static int del_client(const char *id)
{
    client_op_t op = { NULL, id, 0 };

    return stor_write(g_env, client_del_fn, &op);
}

typedef struct ids {
    char list[8][STOR_NAME_MAX + 1];
    int n, stop_at;
} ids_t;

static int collect_client(const stor_client_t *c, void *arg)
{
    ids_t *ids = arg;

    ck_assert_int_lt(ids->n, 8);
    TST_SET(ids->list[ids->n], c->id);
    ids->n++;
    return ids->n == ids->stop_at ? 42 : 0;
}

static int client_each_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_client_each(t, collect_client, arg);
}

START_TEST(t_clients)
{
    stor_client_t *c = malloc(sizeof(*c)), *got = malloc(sizeof(*got));
    char longid[STOR_NAME_MAX + 2];
    ids_t ids;

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(get_client("app", got), STOR_ERR_NOTFOUND);
    sample_client(c, "app", 3);
    ck_assert_int_eq(put_client(c, 1), 0);
    ck_assert_int_eq(get_client("app", got), 0);
    ck_assert_mem_eq(c, got, sizeof(*c));
    ck_assert_int_eq(put_client(c, 1), STOR_ERR_EXISTS);
    c->n_redirects = 1;
    memset(c->redirects[1], 0, sizeof(c->redirects[1]));
    memset(c->redirects[2], 0, sizeof(c->redirects[2]));
    ck_assert_int_eq(put_client(c, 0), 0); /* overwrite */
    ck_assert_int_eq(get_client("app", got), 0);
    ck_assert_mem_eq(c, got, sizeof(*c));

    /* names: like user names */
    memset(longid, 'i', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    ck_assert_int_eq(get_client("", got), STOR_ERR_INVAL);
    ck_assert_int_eq(get_client("a b", got), STOR_ERR_INVAL);
    ck_assert_int_eq(get_client(longid, got), STOR_ERR_INVAL);
    ck_assert_int_eq(get_client(NULL, got), STOR_ERR_INVAL);
    ck_assert_int_eq(del_client("a\tb"), STOR_ERR_INVAL);
    sample_client(c, "bad id", 1);
    ck_assert_int_eq(put_client(c, 0), STOR_ERR_INVAL);
    sample_client(c, "", 1);
    ck_assert_int_eq(put_client(c, 0), STOR_ERR_INVAL);
    sample_client(c, "ok", STOR_REDIRECTS_MAX + 1);
    ck_assert_int_eq(put_client(c, 0), STOR_ERR_INVAL);
    ck_assert_int_eq(get_client("ok", got), STOR_ERR_NOTFOUND);

    /* each, in id order, and stopping */
    sample_client(c, "zeta", 1);
    ck_assert_int_eq(put_client(c, 1), 0);
    sample_client(c, "Alpha", 1);
    ck_assert_int_eq(put_client(c, 1), 0);
    sample_client(c, "beta", 1);
    ck_assert_int_eq(put_client(c, 1), 0);
    memset(&ids, 0, sizeof(ids));
    ck_assert_int_eq(stor_read(g_env, client_each_fn, &ids), 0);
    ck_assert_int_eq(ids.n, 4);
    ck_assert_str_eq(ids.list[0], "Alpha");
    ck_assert_str_eq(ids.list[1], "app");
    ck_assert_str_eq(ids.list[2], "beta");
    ck_assert_str_eq(ids.list[3], "zeta");
    memset(&ids, 0, sizeof(ids));
    ids.stop_at = 2;
    ck_assert_int_eq(stor_read(g_env, client_each_fn, &ids), 42);
    ck_assert_int_eq(ids.n, 2);

    /* delete */
    ck_assert_int_eq(del_client("beta"), 0);
    ck_assert_int_eq(del_client("beta"), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(get_client("beta", got), STOR_ERR_NOTFOUND);
    memset(&ids, 0, sizeof(ids));
    ck_assert_int_eq(stor_read(g_env, client_each_fn, &ids), 0);
    ck_assert_int_eq(ids.n, 3);

    /* survives a reopen */
    stor_close(g_env);
    g_env = tst_open(g_path, 0);
    ck_assert_int_eq(get_client("zeta", got), 0);
    ck_assert_str_eq(got->redirects[0], "https://app0.example/cb");
    free(c);
    free(got);
}
END_TEST

static int client_writes_in_read(stor_txn_t *t, void *arg)
{
    stor_client_t *c = arg;
    stor_code_t k;

    sample_code(&k, 1, 10);
    ck_assert_int_eq(stor_txn_client_put(t, c, 0), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_client_del(t, "app"), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_code_put(t, &k), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_client_each(t, NULL, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_client_put(t, NULL, 0), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_client_get(t, "app", NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_code_get(t, NULL, &k), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_code_get(t, k.hash, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_code_put(t, NULL), STOR_ERR_INVAL);
    return 0;
}

START_TEST(t_oauth_null_and_readonly)
{
    stor_client_t *c = malloc(sizeof(*c));

    ck_assert_ptr_nonnull(c);
    sample_client(c, "app", 1);
    ck_assert_int_eq(stor_read(g_env, client_writes_in_read, c), 0);
    ck_assert_int_eq(stor_txn_client_get(NULL, "app", c), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_client_each(NULL, collect_client, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_token_each_grant(NULL, (uint8_t[16]){ 0 }, NULL, NULL), STOR_ERR_INVAL);
    free(c);
}
END_TEST

/* ---- codes -------------------------------------------------------------------- */

typedef struct code_op {
    stor_code_t *k;
    uint8_t h;
} code_op_t;

static int code_put_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_code_put(t, ((code_op_t *)arg)->k);
}

static int code_get_fn(stor_txn_t *t, void *arg)
{
    code_op_t *op = arg;
    uint8_t h[32];

    memset(h, op->h, 32);
    return stor_txn_code_get(t, h, op->k);
}

static int put_code(stor_code_t *k)
{
    code_op_t op = { k, 0 };

    return stor_write(g_env, code_put_fn, &op);
}

static int get_code(uint8_t h, stor_code_t *out)
{
    code_op_t op = { out, h };

    return stor_read(g_env, code_get_fn, &op);
}

START_TEST(t_codes)
{
    stor_code_t *k = malloc(sizeof(*k)), *got = malloc(sizeof(*got));

    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(get_code(1, got), STOR_ERR_NOTFOUND);
    sample_code(k, 1, 500);
    ck_assert_int_eq(put_code(k), 0);
    ck_assert_int_eq(get_code(1, got), 0);
    ck_assert_mem_eq(k, got, sizeof(*k));
    k->used = 1; /* overwrite: marking the code used */
    ck_assert_int_eq(put_code(k), 0);
    ck_assert_int_eq(get_code(1, got), 0);
    ck_assert_uint_eq(got->used, 1);
    ck_assert_int_eq(get_code(2, got), STOR_ERR_NOTFOUND);

    /* a service-scope code has no credential */
    sample_code(k, 2, 500);
    k->cred[0] = '\0';
    k->scope = STOR_SCOPE_SERVICE;
    ck_assert_int_eq(put_code(k), 0);
    ck_assert_int_eq(get_code(2, got), 0);
    ck_assert_str_eq(got->cred, "");

    /* names are checked */
    sample_code(k, 3, 500);
    TST_SET(k->client, "a b");
    ck_assert_int_eq(put_code(k), STOR_ERR_INVAL);
    sample_code(k, 3, 500);
    k->user[0] = '\0';
    ck_assert_int_eq(put_code(k), STOR_ERR_INVAL);
    sample_code(k, 3, 500);
    TST_SET(k->cred, "c\x01");
    ck_assert_int_eq(put_code(k), STOR_ERR_INVAL);
    ck_assert_int_eq(get_code(3, got), STOR_ERR_NOTFOUND);
    free(k);
    free(got);
}
END_TEST

/* ---- tokens of a grant ---------------------------------------------------------- */

static int token_put_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_token_put(t, arg);
}

static void put_tok(uint8_t h, uint8_t g, uint32_t scope, int64_t exp)
{
    stor_token_t tok;

    memset(&tok, 0, sizeof(tok));
    memset(tok.hash, h, 32);
    memset(tok.grant, g, 16);
    tok.kind = STOR_TOKEN_ACCESS;
    tok.scope = scope;
    TST_SET(tok.user, "alice");
    TST_SET(tok.client, "app");
    if (scope == STOR_SCOPE_CREDENTIAL)
        TST_SET(tok.cred, "c1");
    tok.expires_at = exp;
    ck_assert_int_eq(stor_write(g_env, token_put_fn, &tok), 0);
}

typedef struct walk {
    uint8_t grant;
    uint8_t seen[8];
    int n, stop_at;
} walk_t;

static int walk_tok(const stor_token_t *tok, void *arg)
{
    walk_t *w = arg;

    ck_assert_int_lt(w->n, 8);
    w->seen[w->n++] = tok->hash[0];
    return w->n == w->stop_at ? 7 : 0;
}

static int walk_fn(stor_txn_t *t, void *arg)
{
    walk_t *w = arg;
    uint8_t g[16];

    memset(g, w->grant, 16);
    return stor_txn_token_each_grant(t, g, walk_tok, w);
}

START_TEST(t_token_each_grant)
{
    walk_t w;

    put_tok(5, 0xA, STOR_SCOPE_SERVICE, 100);
    put_tok(2, 0xA, STOR_SCOPE_CREDENTIAL, 100);
    put_tok(9, 0xB, STOR_SCOPE_SERVICE, 100);
    memset(&w, 0, sizeof(w));
    w.grant = 0xA;
    ck_assert_int_eq(stor_read(g_env, walk_fn, &w), 0);
    ck_assert_int_eq(w.n, 2);
    ck_assert_uint_eq(w.seen[0], 2); /* hash order */
    ck_assert_uint_eq(w.seen[1], 5);
    memset(&w, 0, sizeof(w));
    w.grant = 0xA;
    w.stop_at = 1;
    ck_assert_int_eq(stor_read(g_env, walk_fn, &w), 7);
    ck_assert_int_eq(w.n, 1);
    memset(&w, 0, sizeof(w));
    w.grant = 0xC;
    ck_assert_int_eq(stor_read(g_env, walk_fn, &w), 0);
    ck_assert_int_eq(w.n, 0);
    /* in a write txn too */
    memset(&w, 0, sizeof(w));
    w.grant = 0xB;
    ck_assert_int_eq(stor_write(g_env, walk_fn, &w), 0);
    ck_assert_int_eq(w.n, 1);
}
END_TEST

/* ---- an operator's reset: everything of one user ----------------------------------- */

typedef struct reset_io {
    stor_sad_t *sad;
    int pending;           /* put into the pending table */
    stor_revoked_t r;
    const char *user;
    uint8_t key;
    stor_token_t tok;
} reset_io_t;

static int sad_put_fn(stor_txn_t *t, void *arg)
{
    reset_io_t *io = arg;
    return io->pending ? stor_txn_pending_sad_put(t, io->sad) : stor_txn_sad_put(t, io->sad);
}

static void put_sad_of(stor_sad_t *s, uint8_t h, const char *user, int pending, int64_t exp)
{
    reset_io_t io = {.sad = s, .pending = pending};

    memset(s, 0, sizeof(*s));
    memset(s->hash, h, 32);
    TST_SET(s->user, user);
    TST_SET(s->cred, "c1");
    s->remaining = 1;
    s->expires_at = exp;
    ck_assert_int_eq(stor_write(g_env, sad_put_fn, &io), 0);
}

static int revoke_all_fn(stor_txn_t *t, void *arg)
{
    reset_io_t *io = arg;
    return stor_txn_user_revoke_all(t, io->user, 200, &io->r);
}

static int lookup_fn(stor_txn_t *t, void *arg)
{
    reset_io_t *io = arg;
    uint8_t h[32];

    memset(h, io->key, 32);
    switch (io->pending) {
    case 0: return stor_txn_sad_get(t, h, io->sad);
    case 1: return stor_txn_pending_sad_get(t, h, io->sad);
    default: return stor_txn_token_get(t, h, &io->tok);
    }
}

static int lookup(uint8_t key, int what, reset_io_t *io)
{
    io->key = key;
    io->pending = what;
    return stor_read(g_env, lookup_fn, io);
}

START_TEST(t_user_revoke_all)
{
    stor_code_t *k = malloc(sizeof(*k));
    stor_sad_t *s = malloc(sizeof(*s));
    reset_io_t io = {.sad = s, .user = "alice"};

    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_nonnull(s);
    put_tok(1, 0xA, STOR_SCOPE_SERVICE, 300);    /* alice's, live */
    put_tok(2, 0xA, STOR_SCOPE_CREDENTIAL, 300); /* alice's, live */
    put_tok(3, 0xB, STOR_SCOPE_SERVICE, 100);    /* alice's, expired: revoked, not counted */
    put_sad_of(s, 4, "alice", 0, 300);
    put_sad_of(s, 5, "bob", 0, 300);
    put_sad_of(s, 6, "alice", 1, 300);
    sample_code(k, 7, 300);                       /* alice's, unused */
    ck_assert_int_eq(put_code(k), 0);
    sample_code(k, 8, 300);                       /* alice's, used: kept for reuse detection */
    k->used = 1;
    ck_assert_int_eq(put_code(k), 0);
    sample_code(k, 9, 300);                       /* bob's */
    TST_SET(k->user, "bob");
    ck_assert_int_eq(put_code(k), 0);

    ck_assert_int_eq(stor_write(g_env, revoke_all_fn, &io), 0);
    ck_assert_uint_eq(io.r.tokens, 2);
    ck_assert_uint_eq(io.r.sads, 1);
    ck_assert_uint_eq(io.r.pending, 1);
    for (uint8_t h = 1; h <= 3; h++) {
        ck_assert_int_eq(lookup(h, 2, &io), 0);
        ck_assert_uint_eq(io.tok.revoked, 1);
    }
    ck_assert_int_eq(lookup(4, 0, &io), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(lookup(5, 0, &io), 0);
    ck_assert_int_eq(lookup(6, 1, &io), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(get_code(7, k), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(get_code(8, k), 0);
    ck_assert_int_eq(get_code(9, k), 0);
    /* again: nothing left to count */
    ck_assert_int_eq(stor_write(g_env, revoke_all_fn, &io), 0);
    ck_assert_uint_eq(io.r.tokens + io.r.sads + io.r.pending, 0);
    io.user = "not a name";
    ck_assert_int_eq(stor_write(g_env, revoke_all_fn, &io), STOR_ERR_INVAL);
    free(k);
    free(s);
}
END_TEST

/* ---- purge ------------------------------------------------------------------------- */

START_TEST(t_purge_codes)
{
    stor_code_t *k = malloc(sizeof(*k));

    ck_assert_ptr_nonnull(k);
    sample_code(k, 1, 150);
    ck_assert_int_eq(put_code(k), 0);
    sample_code(k, 2, 250);
    ck_assert_int_eq(put_code(k), 0);
    put_tok(3, 0xA, STOR_SCOPE_SERVICE, 100);
    ck_assert_int_eq(stor_purge_expired(g_env, 200), 2); /* code 1 and the token */
    ck_assert_int_eq(get_code(1, k), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(get_code(2, k), 0);
    ck_assert_int_eq(stor_purge_expired(g_env, 250), 0); /* 250 is not < 250 */
    ck_assert_int_eq(stor_purge_expired(g_env, 251), 1);
    ck_assert_int_eq(get_code(2, k), STOR_ERR_NOTFOUND);
    free(k);
}
END_TEST

/* ---- an environment of the first layout --------------------------------------------- */

static void old_layout(const char *path, const uint8_t *tok_rec, size_t tok_len, const uint8_t hash[32],
                       const uint8_t grant[16])
{
    static const stor_table_t dbs[] = { { "users", 0 }, { "creds", 0 }, { "creds_by_owner", STOR_TABLE_DUPSORT },
                                        { "tokens", 0 }, { "tokens_by_grant", STOR_TABLE_DUPSORT | STOR_TABLE_DUPFIXED },
                                        { "sads", 0 }, { "audit", 0 }, { "meta", 0 } };
    const stor_backend_t *be = &stor_backend_lmdb;
    stor_config_t cfg = { .location = path };
    stor_bk_env_t *e;
    stor_bk_txn_t *txn;
    stor_val_t k, v;

    ck_assert_int_eq(be->open(&cfg, dbs, 8, &e), 0);
    ck_assert_int_eq(be->txn_begin(e, NULL, STOR_BK_WRITE, &txn), 0);
    k = STOR_VAL("schema", 6);
    v = STOR_VAL(((uint8_t[]){ 1, 0, 0, 0 }), 4);
    ck_assert_int_eq(be->put(e, txn, 7, &k, &v, 0), 0);
    k = STOR_VAL(hash, 32);
    v = STOR_VAL(tok_rec, tok_len);
    ck_assert_int_eq(be->put(e, txn, 3, &k, &v, 0), 0);
    k = STOR_VAL(grant, 16);
    v = STOR_VAL(hash, 32);
    ck_assert_int_eq(be->put(e, txn, 4, &k, &v, 0), 0);
    ck_assert_int_eq(be->txn_commit(txn), 0);
    be->close(e);
}

static int old_tok_get(stor_txn_t *t, void *arg)
{
    uint8_t h[32];

    memset(h, 0x11, 32);
    return stor_txn_token_get(t, h, arg);
}

START_TEST(t_old_layout_opens)
{
    const char *dir = tst_path();
    uint8_t hash[32], grant[16];
    stor_client_t *c = malloc(sizeof(*c));
    stor_token_t tok;
    uint32_t u;
    int64_t i;
    rawrec_t r;
    walk_t w;

    ck_assert_ptr_nonnull(c);
    memset(hash, 0x11, 32);
    memset(grant, 0x22, 16);
    raw_init(&r, STOR_REC_TOKEN);
    add_field(&r, 1, hash, 32);
    u = STOR_TOKEN_REFRESH;
    add_field(&r, 2, &u, 4);
    u = STOR_SCOPE_SERVICE;
    add_field(&r, 3, &u, 4);
    add_field(&r, 4, "carol", 5);
    add_field(&r, 5, grant, 16);
    i = 100;
    add_field(&r, 6, &i, 8);
    i = 5000;
    add_field(&r, 7, &i, 8);
    u = 0;
    add_field(&r, 8, &u, 4);
    old_layout(dir, r.b, r.n, hash, grant);

    stor_close(g_env);
    ck_assert_int_lt(snprintf(g_path, sizeof(g_path), "%s", dir), (int)sizeof(g_path));
    g_env = tst_open(g_path, 0);
    ck_assert_int_eq(stor_read(g_env, old_tok_get, &tok), 0);
    ck_assert_str_eq(tok.user, "carol");
    ck_assert_uint_eq(tok.kind, STOR_TOKEN_REFRESH);
    ck_assert_str_eq(tok.client, "");
    ck_assert_str_eq(tok.cred, "");
    ck_assert_uint_eq(tok.rotated, 0);
    memset(&w, 0, sizeof(w));
    w.grant = 0x22;
    ck_assert_int_eq(stor_read(g_env, walk_fn, &w), 0);
    ck_assert_int_eq(w.n, 1);
    /* the new tables exist and work */
    ck_assert_int_eq(get_client("app", c), STOR_ERR_NOTFOUND);
    sample_client(c, "app", 1);
    ck_assert_int_eq(put_client(c, 1), 0);
    ck_assert_int_eq(get_client("app", c), 0);
    ck_assert_int_eq(stor_purge_expired(g_env, 6000), 1);
    free(c);
}
END_TEST

Suite *tst_oauth_suite(void)
{
    Suite *s = suite_create("stor_oauth");
    TCase *tc = tcase_create("codec");
    TCase *td = tcase_create("data");

    tcase_add_test(tc, t_token_new_fields);
    tcase_add_test(tc, t_client_roundtrip);
    tcase_add_test(tc, t_code_roundtrip);
    tcase_add_test(tc, t_client_corrupt);
    tcase_add_test(tc, t_peek_strs_refused);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(td, setup, teardown);
    tcase_set_timeout(td, 60);
    tcase_add_test(td, t_clients);
    tcase_add_test(td, t_oauth_null_and_readonly);
    tcase_add_test(td, t_codes);
    tcase_add_test(td, t_token_each_grant);
    tcase_add_test(td, t_purge_codes);
    tcase_add_test(td, t_user_revoke_all);
    tcase_add_test(td, t_old_layout_opens);
    suite_add_tcase(s, td);
    return s;
}
