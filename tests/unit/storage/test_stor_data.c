/* test_stor_data.c - records, indexes, audit chain and purge through the public API. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "test_stor.h"

#define MY_ROLLBACK (-999)

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

static void reopen(void)
{
    stor_close(g_env);
    g_env = tst_open(g_path, 0);
}

/* ---- users and names --------------------------------------------------- */

static int put_user_create(stor_txn_t *t, void *arg)
{
    return stor_txn_user_put(t, arg, 1);
}

typedef struct names {
    char list[8][STOR_NAME_MAX + 1];
    int n, stop_at;
} names_t;

static int collect_user(const stor_user_t *u, void *arg)
{
    names_t *nm = arg;

    ck_assert_int_lt(nm->n, 8);
    TST_SET(nm->list[nm->n], u->name);
    nm->n++;
    return nm->n == nm->stop_at ? 42 : 0;
}

static int users_each_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_user_each(t, collect_user, arg);
}

START_TEST(t_user_crud)
{
    stor_user_t u, got;
    names_t nm = { .stop_at = 0 };

    tst_user(&u, "mallory", 1);
    ck_assert_int_eq(stor_user_get(g_env, "mallory", &got), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_write(g_env, put_user_create, &u), 0);
    ck_assert_int_eq(stor_write(g_env, put_user_create, &u), STOR_ERR_EXISTS);
    u.failed_logins = 9;
    u.totp_secret_len = 20;
    memset(u.totp_secret, 0x77, 20);
    ck_assert_int_eq(tst_put_user(g_env, &u), 0); /* overwrite */
    memset(&got, 0x11, sizeof(got));
    ck_assert_int_eq(stor_user_get(g_env, "mallory", &got), 0);
    ck_assert_mem_eq(&got, &u, sizeof(u));

    tst_user(&u, "bob", 0);
    ck_assert_int_eq(tst_put_user(g_env, &u), 0);
    tst_user(&u, "alice", 0);
    ck_assert_int_eq(tst_put_user(g_env, &u), 0);
    ck_assert_int_eq(stor_read(g_env, users_each_fn, &nm), 0);
    ck_assert_int_eq(nm.n, 3);
    ck_assert_str_eq(nm.list[0], "alice");
    ck_assert_str_eq(nm.list[1], "bob");
    ck_assert_str_eq(nm.list[2], "mallory");
    nm = (names_t){ .stop_at = 2 };
    ck_assert_int_eq(stor_read(g_env, users_each_fn, &nm), 42);
    ck_assert_int_eq(nm.n, 2);

    /* an over-long verifier is refused before anything is written */
    tst_user(&u, "eve", 0);
    u.pw_verifier_len = STOR_VERIFIER_MAX + 1;
    ck_assert_int_eq(tst_put_user(g_env, &u), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_user_get(g_env, "eve", &got), STOR_ERR_NOTFOUND);
}
END_TEST

typedef struct name_case {
    const char *name;
    int ok;
} name_case_t;

static const name_case_t name_cases[] = {
    { "", 0 }, { "a b", 0 }, { "tab\tx", 0 }, { "del\x7f", 0 }, { "caf\xc3\xa9", 0 }, { "nl\n", 0 },
    { "a", 1 }, { "!~#user@example.org", 1 },
    { "0123456789012345678901234567890123456789012345678901234567890123", 1 },  /* 64 */
    { "01234567890123456789012345678901234567890123456789012345678901234", 0 }, /* 65 */
};

typedef struct name_arg {
    const char *name;
    int user_put, cred_put_id, cred_put_owner, user_get, cred_get, cred_each;
} name_arg_t;

static int none(const stor_cred_t *c, void *arg)
{
    (void)c;
    (void)arg;
    return 0;
}

static int names_fn(stor_txn_t *t, void *arg)
{
    name_arg_t *na = arg;
    stor_cred_t *c = calloc(1, sizeof(*c));
    stor_user_t u;

    ck_assert_ptr_nonnull(c);
    memset(&u, 0, sizeof(u));
    ck_assert_uint_le(strlen(na->name), STOR_NAME_MAX + 1);
    memcpy(u.name, na->name, strnlen(na->name, STOR_NAME_MAX)); /* an over-long name stays unterminated */
    if (strlen(na->name) > STOR_NAME_MAX)
        u.name[STOR_NAME_MAX] = 'X';
    na->user_put = stor_txn_user_put(t, &u, 0);
    memcpy(c->id, u.name, sizeof(c->id));
    TST_SET(c->owner, "owner");
    na->cred_put_id = stor_txn_cred_put(t, c, 0);
    TST_SET(c->id, "cid");
    memcpy(c->owner, u.name, sizeof(c->owner));
    na->cred_put_owner = stor_txn_cred_put(t, c, 0);
    na->user_get = stor_txn_user_get(t, na->name, &u);
    na->cred_get = stor_txn_cred_get(t, na->name, c);
    na->cred_each = stor_txn_cred_each(t, na->name, none, NULL);
    free(c);
    return MY_ROLLBACK;
}

START_TEST(t_names)
{
    for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
        name_arg_t na = { .name = name_cases[i].name };
        int want_get = name_cases[i].ok ? 0 : STOR_ERR_INVAL;

        ck_assert_int_eq(stor_write(g_env, names_fn, &na), MY_ROLLBACK);
        ck_assert_msg(na.user_put == (name_cases[i].ok ? 0 : STOR_ERR_INVAL), "user_put %zu: %d", i, na.user_put);
        ck_assert_msg(na.cred_put_id == (name_cases[i].ok ? 0 : STOR_ERR_INVAL), "cred id %zu", i);
        ck_assert_msg(na.cred_put_owner == (name_cases[i].ok ? 0 : STOR_ERR_INVAL), "cred owner %zu", i);
        ck_assert_msg(na.user_get == want_get, "user_get %zu: %d", i, na.user_get);
        ck_assert_msg(na.cred_get == (name_cases[i].ok ? 0 : STOR_ERR_INVAL), "cred_get %zu: %d", i, na.cred_get);
        ck_assert_msg(na.cred_each == (name_cases[i].ok ? 0 : STOR_ERR_INVAL), "cred_each %zu", i);
    }
    {
        stor_user_t u;
        ck_assert_int_eq(stor_user_get(g_env, NULL, &u), STOR_ERR_INVAL);
    }
}
END_TEST

static int writes_in_read(stor_txn_t *t, void *arg)
{
    stor_sad_t *sad = calloc(1, sizeof(*sad));
    stor_audit_t a = { .event = STOR_EV_LOGIN };
    stor_token_t tok = { .kind = STOR_TOKEN_ACCESS };
    stor_cred_t *c = calloc(1, sizeof(*c));
    uint8_t h[32] = { 0 }, g[16] = { 0 };
    stor_user_t u;

    (void)arg;
    ck_assert_ptr_nonnull(sad);
    ck_assert_ptr_nonnull(c);
    tst_user(&u, "r", 0);
    TST_SET(c->id, "c");
    TST_SET(c->owner, "r");
    ck_assert_int_eq(stor_txn_user_put(t, &u, 0), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_cred_put(t, c, 0), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_token_put(t, &tok), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_token_del(t, h), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_token_revoke_grant(t, g), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_sad_put(t, sad), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_sad_del(t, h), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_audit_append(t, &a), STOR_ERR_INVAL);
    /* reads work */
    ck_assert_int_eq(stor_txn_user_get(t, "r", &u), STOR_ERR_NOTFOUND);
    free(sad);
    free(c);
    return 0;
}

START_TEST(t_writes_in_read_txn)
{
    ck_assert_int_eq(stor_read(g_env, writes_in_read, NULL), 0);
}
END_TEST

static int null_args(stor_txn_t *t, void *arg)
{
    stor_user_t u;
    stor_token_t tok;

    (void)arg;
    ck_assert_int_eq(stor_txn_user_put(t, NULL, 0), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_user_get(t, "x", NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_cred_put(t, NULL, 0), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_cred_get(t, "x", NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_cred_each(t, "x", NULL, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_user_each(t, NULL, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_token_put(t, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_token_get(t, NULL, &tok), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_token_get(t, (uint8_t[32]){ 0 }, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_token_del(t, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_token_revoke_grant(t, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_sad_put(t, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_sad_get(t, NULL, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_sad_del(t, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_audit_append(t, NULL), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_txn_user_get(NULL, "x", &u), STOR_ERR_INVAL);
    return 0;
}

START_TEST(t_null_args)
{
    ck_assert_int_eq(stor_write(g_env, null_args, NULL), 0);
}
END_TEST

/* ---- credentials and the owner index ----------------------------------- */

typedef struct cred_op {
    const char *id, *owner;
    int create_only;
    uint32_t certs_len;
} cred_op_t;

static int cred_put_fn(stor_txn_t *t, void *arg)
{
    cred_op_t *op = arg;
    stor_cred_t *c = calloc(1, sizeof(*c));
    int rc;

    ck_assert_ptr_nonnull(c);
    TST_SET(c->id, op->id);
    TST_SET(c->owner, op->owner);
    c->status = STOR_CRED_ENABLED;
    c->certs_len = op->certs_len;
    for (uint32_t i = 0; i < op->certs_len && i < STOR_CERTS_MAX; i++)
        c->certs[i] = (uint8_t)(i * 31);
    TST_SET(c->description, "a key");
    rc = stor_txn_cred_put(t, c, op->create_only);
    free(c);
    return rc;
}

static int put_cred(const char *id, const char *owner, int create_only)
{
    cred_op_t op = { id, owner, create_only, 100 };

    return stor_write(g_env, cred_put_fn, &op);
}

typedef struct cred_list {
    const char *owner;
    char ids[8][STOR_NAME_MAX + 1];
    int n, stop_at;
} cred_list_t;

static int collect_cred(const stor_cred_t *c, void *arg)
{
    cred_list_t *l = arg;

    ck_assert_str_eq(c->owner, l->owner);
    ck_assert_int_lt(l->n, 8);
    TST_SET(l->ids[l->n], c->id);
    l->n++;
    return l->n == l->stop_at ? -77 : 0;
}

static int list_fn(stor_txn_t *t, void *arg)
{
    cred_list_t *l = arg;

    return stor_txn_cred_each(t, l->owner, collect_cred, l);
}

static cred_list_t list_creds(const char *owner)
{
    cred_list_t l = { .owner = owner };

    ck_assert_int_eq(stor_read(g_env, list_fn, &l), 0);
    return l;
}

START_TEST(t_cred_owner_index)
{
    stor_cred_t *c = malloc(sizeof(*c));
    cred_op_t big = { "big", "carol", 1, STOR_CERTS_MAX };
    cred_list_t l;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(put_cred("c3", "alice", 1), 0);
    ck_assert_int_eq(put_cred("c1", "alice", 1), 0);
    ck_assert_int_eq(put_cred("c10", "alice", 1), 0);
    ck_assert_int_eq(put_cred("c2", "alice", 1), 0);
    ck_assert_int_eq(put_cred("c9", "bob", 1), 0);
    ck_assert_int_eq(put_cred("c1", "bob", 1), STOR_ERR_EXISTS);
    l = list_creds("alice");
    ck_assert_int_eq(l.n, 4);
    ck_assert_str_eq(l.ids[0], "c1");
    ck_assert_str_eq(l.ids[1], "c10");
    ck_assert_str_eq(l.ids[2], "c2");
    ck_assert_str_eq(l.ids[3], "c3");

    /* the EXISTS above changed nothing; now move c2 to bob */
    ck_assert_int_eq(stor_cred_get(g_env, "c1", c), 0);
    ck_assert_str_eq(c->owner, "alice");
    ck_assert_int_eq(put_cred("c2", "bob", 0), 0);
    l = list_creds("alice");
    ck_assert_int_eq(l.n, 3);
    ck_assert_str_eq(l.ids[0], "c1");
    ck_assert_str_eq(l.ids[1], "c10");
    ck_assert_str_eq(l.ids[2], "c3");
    l = list_creds("bob");
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_eq(l.ids[0], "c2");
    ck_assert_str_eq(l.ids[1], "c9");
    /* rewriting with the same owner keeps a single index row */
    ck_assert_int_eq(put_cred("c2", "bob", 0), 0);
    ck_assert_int_eq(list_creds("bob").n, 2);
    ck_assert_int_eq(list_creds("nobody").n, 0);

    /* the walk stops at a non-zero return */
    l = (cred_list_t){ .owner = "alice", .stop_at = 2 };
    ck_assert_int_eq(stor_read(g_env, list_fn, &l), -77);
    ck_assert_int_eq(l.n, 2);

    /* full-size certificates */
    ck_assert_int_eq(stor_write(g_env, cred_put_fn, &big), 0);
    ck_assert_int_eq(stor_cred_get(g_env, "big", c), 0);
    ck_assert_uint_eq(c->certs_len, STOR_CERTS_MAX);
    ck_assert_uint_eq(c->certs[STOR_CERTS_MAX - 1], (uint8_t)((STOR_CERTS_MAX - 1) * 31));
    ck_assert_str_eq(c->description, "a key");
    big.id = "big2";
    big.certs_len = STOR_CERTS_MAX + 1;
    ck_assert_int_eq(stor_write(g_env, cred_put_fn, &big), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_cred_get(g_env, "big2", c), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(list_creds("carol").n, 1);
    free(c);
}
END_TEST

/* ---- tokens ------------------------------------------------------------ */

typedef struct tok_op {
    uint8_t hash_byte, grant_byte;
    int64_t expires_at;
} tok_op_t;

static void make_token(stor_token_t *tok, uint8_t hash_byte, uint8_t grant_byte, int64_t exp)
{
    memset(tok, 0, sizeof(*tok));
    memset(tok->hash, hash_byte, 32);
    memset(tok->grant, grant_byte, 16);
    tok->kind = STOR_TOKEN_ACCESS;
    tok->scope = STOR_SCOPE_SERVICE;
    TST_SET(tok->user, "alice");
    tok->issued_at = 1;
    tok->expires_at = exp;
}

static int tok_put_fn(stor_txn_t *t, void *arg)
{
    tok_op_t *op = arg;
    stor_token_t tok;

    make_token(&tok, op->hash_byte, op->grant_byte, op->expires_at);
    return stor_txn_token_put(t, &tok);
}

static int put_token(uint8_t h, uint8_t g, int64_t exp)
{
    tok_op_t op = { h, g, exp };

    return stor_write(g_env, tok_put_fn, &op);
}

static int revoke_fn(stor_txn_t *t, void *arg)
{
    uint8_t grant[16];

    memset(grant, *(uint8_t *)arg, 16);
    return stor_txn_token_revoke_grant(t, grant);
}

/* stor_write() returns fn's value only if it is 0 or an error: pass the count out separately. */
typedef struct count_arg {
    uint8_t byte;
    int count;
} count_arg_t;

static int revoke_count_fn(stor_txn_t *t, void *arg)
{
    count_arg_t *ca = arg;
    int rc = revoke_fn(t, &ca->byte);

    if (rc < 0)
        return rc;
    ca->count = rc;
    return 0;
}

static int revoke_g(uint8_t g)
{
    count_arg_t ca = { g, -1 };
    int rc = stor_write(g_env, revoke_count_fn, &ca);

    return rc != 0 ? rc : ca.count;
}

typedef struct tok_get {
    uint8_t byte;
    stor_token_t tok;
} tok_get_t;

static int tok_get_fn(stor_txn_t *t, void *arg)
{
    tok_get_t *tg = arg;
    uint8_t h[32];

    memset(h, tg->byte, 32);
    return stor_txn_token_get(t, h, &tg->tok);
}

static int get_token(uint8_t h, stor_token_t *out)
{
    tok_get_t tg = { .byte = h };
    int rc = stor_read(g_env, tok_get_fn, &tg);

    *out = tg.tok;
    return rc;
}

static int tok_del_fn(stor_txn_t *t, void *arg)
{
    uint8_t h[32];

    memset(h, *(uint8_t *)arg, 32);
    return stor_txn_token_del(t, h);
}

START_TEST(t_tokens)
{
    stor_token_t tok, want;
    uint8_t h;

    ck_assert_int_eq(put_token(1, 0xA, 100), 0);
    ck_assert_int_eq(put_token(2, 0xA, 100), 0);
    ck_assert_int_eq(put_token(3, 0xB, 100), 0);
    ck_assert_int_eq(get_token(1, &tok), 0);
    make_token(&want, 1, 0xA, 100);
    ck_assert_mem_eq(&tok, &want, sizeof(tok));
    ck_assert_int_eq(get_token(9, &tok), STOR_ERR_NOTFOUND);

    ck_assert_int_eq(revoke_g(0xA), 2);
    ck_assert_int_eq(get_token(1, &tok), 0);
    ck_assert_uint_eq(tok.revoked, 1);
    ck_assert_int_eq(get_token(2, &tok), 0);
    ck_assert_uint_eq(tok.revoked, 1);
    ck_assert_int_eq(get_token(3, &tok), 0);
    ck_assert_uint_eq(tok.revoked, 0);
    ck_assert_int_eq(revoke_g(0xA), 0); /* already revoked */
    ck_assert_int_eq(revoke_g(0xC), 0); /* no such grant */

    /* moving token 3 to grant A: grant B no longer reaches it */
    ck_assert_int_eq(put_token(3, 0xA, 100), 0);
    ck_assert_int_eq(revoke_g(0xB), 0);
    ck_assert_int_eq(revoke_g(0xA), 1);

    /* delete removes the index row too */
    h = 1;
    ck_assert_int_eq(stor_write(g_env, tok_del_fn, &h), 0);
    ck_assert_int_eq(stor_write(g_env, tok_del_fn, &h), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(get_token(1, &tok), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(put_token(4, 0xA, 100), 0);
    ck_assert_int_eq(revoke_g(0xA), 1); /* only the new token; no dangling row for token 1 */

    /* returning the count from the callback is a non-zero return: the revocation is rolled back */
    h = 0xA;
    ck_assert_int_eq(put_token(5, 0xA, 100), 0);
    ck_assert_int_eq(stor_write(g_env, revoke_fn, &h), 1);
    ck_assert_int_eq(get_token(5, &tok), 0);
    ck_assert_uint_eq(tok.revoked, 0);
    ck_assert_int_eq(revoke_g(0xA), 1);
}
END_TEST

/* ---- SADs -------------------------------------------------------------- */

typedef struct sad_op {
    stor_sad_t *sad;
    int del;
} sad_op_t;

static int sad_fn(stor_txn_t *t, void *arg)
{
    sad_op_t *op = arg;

    return op->del ? stor_txn_sad_del(t, op->sad->hash) : stor_txn_sad_put(t, op->sad);
}

static int sad_get_fn(stor_txn_t *t, void *arg)
{
    sad_op_t *op = arg;
    uint8_t h[32];

    memcpy(h, op->sad->hash, 32);
    return stor_txn_sad_get(t, h, op->sad);
}

static stor_sad_t *new_sad(uint8_t h, uint32_t n, uint32_t len, int64_t exp)
{
    stor_sad_t *s = calloc(1, sizeof(*s));

    ck_assert_ptr_nonnull(s);
    memset(s->hash, h, 32);
    TST_SET(s->user, "alice");
    TST_SET(s->cred, "c1");
    s->remaining = n ? n : 1;
    s->expires_at = exp;
    TST_SET(s->hash_alg, "2.16.840.1.101.3.4.2.1");
    s->digest_len = len;
    s->n_digests = n;
    for (size_t i = 0; i < (size_t)n * len && i < sizeof(s->digests); i++)
        s->digests[i] = (uint8_t)(i + h);
    return s;
}

START_TEST(t_sads)
{
    stor_sad_t *s = new_sad(1, STOR_DIGESTS_MAX, STOR_DIGEST_LEN_MAX, 100), *got = malloc(sizeof(*got));
    sad_op_t op = { s, 0 }, gop = { got, 0 };

    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(stor_write(g_env, sad_fn, &op), 0);
    memcpy(got->hash, s->hash, 32);
    ck_assert_int_eq(stor_read(g_env, sad_get_fn, &gop), 0);
    ck_assert_mem_eq(got, s, sizeof(*s));

    s->remaining = 0; /* overwrite */
    ck_assert_int_eq(stor_write(g_env, sad_fn, &op), 0);
    ck_assert_int_eq(stor_read(g_env, sad_get_fn, &gop), 0);
    ck_assert_uint_eq(got->remaining, 0);

    s->digest_len = STOR_DIGEST_LEN_MAX + 1;
    ck_assert_int_eq(stor_write(g_env, sad_fn, &op), STOR_ERR_INVAL);
    s->digest_len = 32;
    s->n_digests = STOR_DIGESTS_MAX + 1;
    ck_assert_int_eq(stor_write(g_env, sad_fn, &op), STOR_ERR_INVAL);
    s->digest_len = 0;
    s->n_digests = 1;
    ck_assert_int_eq(stor_write(g_env, sad_fn, &op), STOR_ERR_INVAL);

    op.del = 1;
    ck_assert_int_eq(stor_write(g_env, sad_fn, &op), 0);
    ck_assert_int_eq(stor_write(g_env, sad_fn, &op), STOR_ERR_NOTFOUND);
    memcpy(got->hash, s->hash, 32);
    ck_assert_int_eq(stor_read(g_env, sad_get_fn, &gop), STOR_ERR_NOTFOUND);
    ck_assert_uint_eq(got->n_digests, 0);
    free(s);
    free(got);
}
END_TEST

/* ---- audit ------------------------------------------------------------- */

/* The canonical form of stor_int.h, rebuilt here independently of the module. */
static void canon_int(uint8_t **p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        (*p)[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    *p += n;
}

static void canon_str(uint8_t **p, const char *s)
{
    size_t n = strlen(s);

    canon_int(p, n, 4);
    memcpy(*p, s, n);
    *p += n;
}

static void expected_hash(const stor_audit_t *r, const uint8_t prev[32], uint8_t out[32])
{
    size_t dlen = (size_t)r->digest_len * r->n_digests;
    uint8_t *buf = malloc(1024 + dlen), *p = buf;
    unsigned int olen = 0;

    ck_assert_ptr_nonnull(buf);
    memcpy(p, prev, 32);
    p += 32;
    canon_int(&p, r->seq, 8);
    canon_int(&p, (uint64_t)r->time_ms, 8);
    canon_int(&p, r->event, 4);
    canon_int(&p, r->result, 4);
    canon_str(&p, r->user);
    canon_str(&p, r->cred);
    canon_str(&p, r->client);
    memcpy(p, r->authz_ref, 16);
    p += 16;
    canon_str(&p, r->detail);
    canon_int(&p, r->digest_len, 4);
    canon_int(&p, r->n_digests, 4);
    if (dlen > 0)
        memcpy(p, r->digests, dlen);
    p += dlen;
    ck_assert_int_eq(EVP_Digest(buf, (size_t)(p - buf), out, &olen, EVP_sha256(), NULL), 1);
    ck_assert_uint_eq(olen, 32);
    free(buf);
}

typedef struct audit_batch {
    int n;           /* records to append */
    int64_t time_ms; /* 0 = let the module stamp it */
    uint32_t n_digests;
    uint64_t seqs[4];
} audit_batch_t;

static int append_fn(stor_txn_t *t, void *arg)
{
    audit_batch_t *ab = arg;
    uint8_t dig[8 * 32];
    int rc;

    for (size_t i = 0; i < sizeof(dig); i++)
        dig[i] = (uint8_t)(i * 3);
    for (int i = 0; i < ab->n; i++) {
        stor_audit_t a;

        memset(&a, 0, sizeof(a));
        a.time_ms = ab->time_ms;
        a.event = STOR_EV_SIGN;
        a.result = (uint32_t)(i % 3);
        TST_SET(a.user, "alice");
        TST_SET(a.cred, "c1");
        TST_SET(a.client, "192.0.2.1");
        memset(a.authz_ref, 0x5C, 16);
        TST_SET(a.detail, "1.2.840.113549.1.1.11");
        a.digest_len = 32;
        a.n_digests = ab->n_digests;
        a.digests = ab->n_digests ? dig : NULL;
        if ((rc = stor_txn_audit_append(t, &a)) != 0)
            return rc;
        ab->seqs[i] = a.seq;
    }
    return 0;
}

static int append_then_fail(stor_txn_t *t, void *arg)
{
    int rc = append_fn(t, arg);

    return rc != 0 ? rc : MY_ROLLBACK;
}

typedef struct chain {
    uint64_t first, count;
    uint8_t prev[32];
    int64_t min_time;
    int stop_after;
} chain_t;

static int verify_rec(const stor_audit_t *r, void *arg)
{
    chain_t *c = arg;
    uint8_t h[32];

    ck_assert_uint_eq(r->seq, c->first + c->count);
    if (c->count > 0 || c->first == 1)
        ck_assert_mem_eq(r->prev_hash, c->prev, 32);
    expected_hash(r, r->prev_hash, h);
    ck_assert_mem_eq(r->hash, h, 32);
    ck_assert_int_ge(r->time_ms, c->min_time);
    ck_assert_str_eq(r->user, "alice");
    ck_assert_uint_eq(r->event, STOR_EV_SIGN);
    if (r->n_digests > 0)
        ck_assert_uint_eq(r->digests[1], 3);
    memcpy(c->prev, r->hash, 32);
    c->count++;
    return c->stop_after != 0 && c->count == (uint64_t)c->stop_after ? 9 : 0;
}

START_TEST(t_audit_chain)
{
    audit_batch_t a1 = { .n = 1, .n_digests = 8 }, a2 = { .n = 2, .time_ms = 1234 }, a3 = { .n = 2, .n_digests = 1 };
    chain_t c = { .first = 1, .min_time = 1234 };

    ck_assert_int_eq(stor_audit_each(g_env, 1, verify_rec, &c), 0);
    ck_assert_uint_eq(c.count, 0);
    ck_assert_int_eq(stor_write(g_env, append_fn, &a1), 0);
    ck_assert_int_eq(stor_write(g_env, append_fn, &a2), 0);
    ck_assert_int_eq(stor_write(g_env, append_fn, &a3), 0);
    ck_assert_uint_eq(a1.seqs[0], 1);
    ck_assert_uint_eq(a2.seqs[1], 3);
    ck_assert_uint_eq(a3.seqs[1], 5);
    ck_assert_int_eq(stor_audit_each(g_env, 0, verify_rec, &c), 0);
    ck_assert_uint_eq(c.count, 5);

    /* from the middle: prev_hash of record 3 is the hash of record 2 */
    c = (chain_t){ .first = 3, .min_time = 1234 };
    ck_assert_int_eq(stor_audit_each(g_env, 3, verify_rec, &c), 0);
    ck_assert_uint_eq(c.count, 3);
    c = (chain_t){ .first = 1, .min_time = 1234, .stop_after = 2 };
    ck_assert_int_eq(stor_audit_each(g_env, 1, verify_rec, &c), 9);
    ck_assert_uint_eq(c.count, 2);
    c = (chain_t){ .first = 6 };
    ck_assert_int_eq(stor_audit_each(g_env, 6, verify_rec, &c), 0);
    ck_assert_uint_eq(c.count, 0);

    /* an append in a rolled-back callback leaves no gap */
    ck_assert_int_eq(stor_write(g_env, append_then_fail, &(audit_batch_t){ .n = 2, .n_digests = 8 }), MY_ROLLBACK);
    a1.n = 1;
    ck_assert_int_eq(stor_write(g_env, append_fn, &a1), 0);
    ck_assert_uint_eq(a1.seqs[0], 6);
    reopen();
    ck_assert_int_eq(stor_write(g_env, append_fn, &a1), 0);
    ck_assert_uint_eq(a1.seqs[0], 7); /* the chain continues across a reopen */
    c = (chain_t){ .first = 1, .min_time = 1234 };
    ck_assert_int_eq(stor_audit_each(g_env, 1, verify_rec, &c), 0);
    ck_assert_uint_eq(c.count, 7);
}
END_TEST

typedef struct bad_audit {
    stor_audit_t a;
    int rc;
} bad_audit_t;

static int append_bad_fn(stor_txn_t *t, void *arg)
{
    bad_audit_t *b = arg;

    b->rc = stor_txn_audit_append(t, &b->a);
    return 0;
}

START_TEST(t_audit_invalid)
{
    static const struct {
        uint32_t event, result, digest_len, n_digests;
        int with_digests;
    } cases[] = {
        { 0, 0, 0, 0, 0 }, { STOR_EV_ENROLL + 1, 0, 0, 0, 0 }, { 1, 3, 0, 0, 0 }, { 1, 0, 65, 1, 1 },
        { 1, 0, 32, STOR_DIGESTS_MAX + 1, 1 }, { 1, 0, 0, 1, 1 }, { 1, 0, 32, 1, 0 },
    };
    uint8_t dig[64];
    chain_t c = { .first = 1 };

    memset(dig, 1, sizeof(dig));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bad_audit_t b = { .rc = 1 };
        b.a.event = cases[i].event;
        b.a.result = cases[i].result;
        b.a.digest_len = cases[i].digest_len;
        b.a.n_digests = cases[i].n_digests;
        b.a.digests = cases[i].with_digests ? dig : NULL;
        ck_assert_int_eq(stor_write(g_env, append_bad_fn, &b), 0);
        ck_assert_msg(b.rc == STOR_ERR_INVAL, "case %zu: %d", i, b.rc);
    }
    {
        bad_audit_t b = { .rc = 1 };
        b.a.event = STOR_EV_ADMIN;
        memset(b.a.detail, 'x', sizeof(b.a.detail)); /* unterminated */
        ck_assert_int_eq(stor_write(g_env, append_bad_fn, &b), 0);
        ck_assert_int_eq(b.rc, STOR_ERR_INVAL);
    }
    ck_assert_int_eq(stor_audit_each(g_env, 1, verify_rec, &c), 0);
    ck_assert_uint_eq(c.count, 0);
}
END_TEST

/* Like append_fn without Check macros, which must not run outside a test. */
static int child_append_fn(stor_txn_t *t, void *arg)
{
    audit_batch_t *ab = arg;
    int rc;

    for (int i = 0; i < ab->n; i++) {
        stor_audit_t a;

        memset(&a, 0, sizeof(a));
        a.event = STOR_EV_SIGN;
        memcpy(a.user, "alice", 6);
        memcpy(a.cred, "c1", 3);
        memcpy(a.client, "csc-admin", 10);
        memcpy(a.detail, "from the other process", 23);
        if ((rc = stor_txn_audit_append(t, &a)) != 0)
            return rc;
        ab->seqs[i] = a.seq;
    }
    return 0;
}

/* The other process of t_audit_two_processes: append 3 records, expect seqs 3..5. */
int tst_audit_child(const char *path)
{
    stor_config_t cfg = { .location = path };
    audit_batch_t cb = { .n = 3 };
    stor_env_t *env = NULL;
    int ok = stor_open(&cfg, &env) == 0 && stor_write(env, child_append_fn, &cb) == 0 && cb.seqs[0] == 3 &&
             cb.seqs[2] == 5;

    stor_close(env);
    return ok ? 0 : 1;
}

/* A second process (like the admin tool) appends to the same environment while this one has it open.
 * It is exec'd, not just forked: LMDB must not run in a fork of a threaded process. */
START_TEST(t_audit_two_processes)
{
    audit_batch_t ab = { .n = 2, .n_digests = 1 };
    chain_t c = { .first = 1 };
    pid_t pid;
    int status = 0;

    ck_assert_int_eq(stor_write(g_env, append_fn, &ab), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl("/proc/self/exe", "test_storage", TST_CHILD_ARG, g_path, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_int_eq(stor_write(g_env, append_fn, &ab), 0);
    ck_assert_uint_eq(ab.seqs[0], 6);
    ck_assert_int_eq(stor_audit_each(g_env, 1, verify_rec, &c), 0);
    ck_assert_uint_eq(c.count, 7);
}
END_TEST

/* ---- persistence and purge --------------------------------------------- */

START_TEST(t_reopen_persists)
{
    stor_sad_t *s = new_sad(7, 3, 32, 500), *got = malloc(sizeof(*got));
    sad_op_t op = { s, 0 }, gop = { got, 0 };
    audit_batch_t ab = { .n = 1 };
    chain_t c = { .first = 1 };
    stor_user_t u;
    stor_token_t tok;
    stor_cred_t *cr = malloc(sizeof(*cr));

    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_nonnull(cr);
    tst_user(&u, "alice", 4);
    ck_assert_int_eq(tst_put_user(g_env, &u), 0);
    ck_assert_int_eq(put_cred("c1", "alice", 1), 0);
    ck_assert_int_eq(put_token(1, 2, 300), 0);
    ck_assert_int_eq(stor_write(g_env, sad_fn, &op), 0);
    ck_assert_int_eq(stor_write(g_env, append_fn, &ab), 0);
    reopen();
    ck_assert_int_eq(stor_user_get(g_env, "alice", &u), 0);
    ck_assert_uint_eq(u.failed_logins, 4);
    ck_assert_int_eq(stor_cred_get(g_env, "c1", cr), 0);
    ck_assert_str_eq(cr->owner, "alice");
    ck_assert_int_eq(list_creds("alice").n, 1);
    ck_assert_int_eq(get_token(1, &tok), 0);
    ck_assert_int_eq(tok.expires_at, 300);
    ck_assert_int_eq(revoke_g(2), 1);
    memcpy(got->hash, s->hash, 32);
    ck_assert_int_eq(stor_read(g_env, sad_get_fn, &gop), 0);
    ck_assert_mem_eq(got, s, sizeof(*s));
    ck_assert_int_eq(stor_audit_each(g_env, 1, verify_rec, &c), 0);
    ck_assert_uint_eq(c.count, 1);
    free(s);
    free(got);
    free(cr);
}
END_TEST

START_TEST(t_purge)
{
    stor_sad_t *s1 = new_sad(1, 1, 32, 150), *s2 = new_sad(2, 0, 0, 250), *got = malloc(sizeof(*got));
    sad_op_t op1 = { s1, 0 }, op2 = { s2, 0 }, gop = { got, 0 };
    stor_token_t tok;

    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(stor_purge_expired(g_env, 1000), 0); /* nothing stored */
    ck_assert_int_eq(put_token(1, 0xA, 100), 0);
    ck_assert_int_eq(put_token(2, 0xA, 200), 0);
    ck_assert_int_eq(put_token(3, 0xB, 300), 0);
    ck_assert_int_eq(put_token(4, 0xA, 50), 0);
    ck_assert_int_eq(stor_write(g_env, sad_fn, &op1), 0);
    ck_assert_int_eq(stor_write(g_env, sad_fn, &op2), 0);

    ck_assert_int_eq(stor_purge_expired(g_env, 200), 3); /* tokens 1, 4 and SAD 1; 200 is not < 200 */
    ck_assert_int_eq(get_token(1, &tok), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(get_token(4, &tok), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(get_token(2, &tok), 0);
    ck_assert_int_eq(get_token(3, &tok), 0);
    memcpy(got->hash, s1->hash, 32);
    ck_assert_int_eq(stor_read(g_env, sad_get_fn, &gop), STOR_ERR_NOTFOUND);
    memcpy(got->hash, s2->hash, 32);
    ck_assert_int_eq(stor_read(g_env, sad_get_fn, &gop), 0);
    /* the grant index lost the purged rows: revocation finds only token 2 */
    ck_assert_int_eq(revoke_g(0xA), 1);
    ck_assert_int_eq(stor_purge_expired(g_env, 200), 0);
    ck_assert_int_eq(stor_purge_expired(g_env, INT64_MAX), 3);
    ck_assert_int_eq(revoke_g(0xB), 0);
    ck_assert_int_eq(stor_purge_expired(NULL, 0), STOR_ERR_INVAL);
    free(s1);
    free(s2);
    free(got);
}
END_TEST

/* A purge deletes at most STOR_PURGE_TXN_MAX rows per write txn, one txn after another until nothing expired is left:
 * 600 expired tokens go in three txns (256, 256, 88), and the live ones stay. */
static int many_tokens_fn(stor_txn_t *t, void *arg)
{
    stor_token_t tok;
    int rc = 0;

    (void)arg;
    for (int i = 0; i < 610 && rc == 0; i++) {
        make_token(&tok, 0x70, 0x0C, i < 600 ? 100 : 900);
        tok.hash[0] = (uint8_t)(i >> 8);
        tok.hash[1] = (uint8_t)i;
        rc = stor_txn_token_put(t, &tok);
    }
    return rc;
}

START_TEST(t_purge_in_chunks)
{
    stor_stats_t before, after;

    ck_assert_int_eq(stor_write(g_env, many_tokens_fn, NULL), 0);
    stor_int_stats(g_env, &before);
    ck_assert_int_eq(stor_purge_expired(g_env, 200), 600);
    stor_int_stats(g_env, &after);
    ck_assert_uint_eq(after.batches - before.batches, 3);
    ck_assert_int_eq(stor_purge_expired(g_env, 200), 0);
    ck_assert_int_eq(revoke_g(0x0C), 10); /* the ten live ones, with their grant-index rows */
    ck_assert_int_eq(stor_purge_expired(g_env, INT64_MAX), 10);
}
END_TEST

/* ---- signed audit heads (J11) and the backup flag of credentials (J8) ---- */

typedef struct heads_walk {
    uint64_t seqs[8];
    int status[8];
    size_t n;
} heads_walk_t;

static int heads_collect(const stor_signed_head_t *h, int status, void *arg)
{
    heads_walk_t *w = arg;

    if (w->n < 8) {
        w->seqs[w->n] = h->seq;
        w->status[w->n++] = status;
    }
    return 0;
}

typedef struct heads_job {
    stor_signed_head_t h;
    int put_rc;
    uint64_t tip_seq;
    uint8_t tip_hash[32];
    stor_audit_t rec;
    int get_rc, get_missing_rc;
    heads_walk_t walk;
} heads_job_t;

static int heads_fn(stor_txn_t *t, void *arg)
{
    heads_job_t *j = arg;
    stor_audit_t a = { .event = STOR_EV_AUDIT_HEAD, .result = STOR_RES_OK };
    int rc;

    if ((rc = stor_txn_audit_append(t, &a)) != 0 || (rc = stor_txn_audit_tip(t, &j->tip_seq, j->tip_hash)) != 0)
        return rc;
    j->h.seq = j->tip_seq;
    memcpy(j->h.hash, j->tip_hash, 32);
    j->put_rc = stor_txn_signed_head_put(t, &j->h);
    j->get_rc = stor_txn_audit_get(t, j->tip_seq, &j->rec);
    j->get_missing_rc = stor_txn_audit_get(t, j->tip_seq + 100, &j->rec);
    if (j->get_rc == 0)
        j->get_rc = stor_txn_audit_get(t, j->tip_seq, &j->rec);
    return 0;
}

static int heads_dup_fn(stor_txn_t *t, void *arg)
{
    heads_job_t *j = arg;

    j->put_rc = stor_txn_signed_head_put(t, &j->h);
    return 0;
}

static int heads_walk_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_signed_head_each(t, heads_collect, arg);
}

START_TEST(t_signed_heads)
{
    heads_job_t *j = calloc(1, sizeof(*j));
    heads_walk_t w = { .n = 0 };

    ck_assert_ptr_nonnull(j);
    j->h.time_ms = 1234;
    j->h.sig_len = 3;
    memcpy(j->h.sig, "sig", 3);
    ck_assert_int_eq(stor_write(g_env, heads_fn, j), 0);
    ck_assert_int_eq(j->put_rc, 0);
    ck_assert_uint_ge(j->tip_seq, 1);
    ck_assert_int_eq(j->get_rc, 0);
    ck_assert_uint_eq(j->rec.seq, j->tip_seq);
    ck_assert_mem_eq(j->rec.hash, j->tip_hash, 32);
    ck_assert_int_eq(j->get_missing_rc, STOR_ERR_NOTFOUND);
    /* Append-only: a second head at the same seq is refused, the first one stays. */
    j->h.sig[0] = 'X';
    ck_assert_int_eq(stor_write(g_env, heads_dup_fn, j), 0);
    ck_assert_int_eq(j->put_rc, STOR_ERR_EXISTS);
    j->h.sig_len = 0;
    ck_assert_int_eq(stor_write(g_env, heads_dup_fn, j), 0);
    ck_assert_int_eq(j->put_rc, STOR_ERR_INVAL);
    ck_assert_int_eq(stor_read(g_env, heads_walk_fn, &w), 0);
    ck_assert_uint_eq(w.n, 1);
    ck_assert_uint_eq(w.seqs[0], j->tip_seq);
    ck_assert_int_eq(w.status[0], 0);
    free(j);
}
END_TEST

START_TEST(t_cred_key_backup_field)
{
    stor_cred_t *c = calloc(1, sizeof(*c)), *got = calloc(1, sizeof(*got));
    uint8_t *buf;
    size_t len = 0;

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(got);
    snprintf(c->id, sizeof(c->id), "c1");
    c->key_backup = STOR_KEY_BACKUP_WRAPPED;
    ck_assert_int_eq(stor_codec_size(STOR_REC_CRED, c, &len), 0);
    ck_assert_ptr_nonnull(buf = malloc(len));
    ck_assert_int_eq(stor_codec_encode(STOR_REC_CRED, c, buf, len), 0);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_CRED, buf, len, got), 0);
    ck_assert_uint_eq(got->key_backup, STOR_KEY_BACKUP_WRAPPED);
    free(buf);
    free(c);
    free(got);
}
END_TEST

Suite *tst_data_suite(void)
{
    Suite *s = suite_create("stor_data");
    TCase *tc = tcase_create("data");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_user_crud);
    tcase_add_test(tc, t_names);
    tcase_add_test(tc, t_writes_in_read_txn);
    tcase_add_test(tc, t_null_args);
    tcase_add_test(tc, t_cred_owner_index);
    tcase_add_test(tc, t_tokens);
    tcase_add_test(tc, t_sads);
    tcase_add_test(tc, t_audit_chain);
    tcase_add_test(tc, t_audit_invalid);
    tcase_add_test(tc, t_audit_two_processes);
    tcase_add_test(tc, t_reopen_persists);
    tcase_add_test(tc, t_purge);
    tcase_add_test(tc, t_purge_in_chunks);
    tcase_add_test(tc, t_signed_heads);
    tcase_add_test(tc, t_cred_key_backup_field);
    suite_add_tcase(s, tc);
    return s;
}
