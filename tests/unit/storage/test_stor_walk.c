/* test_stor_walk.c - stor_walk and stor_walk_recs (stor_int.h), the one cursor loop of storage/: what each way of
 * walking selects, where a walk stops, a damaged index, and the purge that walks with them. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_stor.h"

#define KEY(p, n) STOR_VAL(p, n)

typedef struct seen {
    char keys[8][STOR_NAME_MAX + 1];
    int n, stop_at;
} seen_t;

/* Records the key (or, for an index, the value) of each row; returns 7 at the stop_at-th row. */
static int seen_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    seen_t *s = arg;
    const stor_val_t *name = s->stop_at < 0 ? v : k;

    (void)t;
    (void)cur;
    ck_assert_int_lt(s->n, 8);
    ck_assert_uint_le(name->len, STOR_NAME_MAX);
    memcpy(s->keys[s->n], name->data, name->len);
    s->keys[s->n][name->len] = '\0';
    s->n++;
    return s->n == s->stop_at ? 7 : 0;
}

typedef struct walk_job {
    int db;
    stor_walk_t how;
    const char *key; /* NULL: no key */
    seen_t seen;
    int rc;
} walk_job_t;

static int walk_fn(stor_txn_t *t, void *arg)
{
    walk_job_t *j = arg;
    stor_val_t k = KEY(j->key, j->key ? strlen(j->key) : 0);

    j->rc = stor_walk(t, j->db, j->how, j->key ? &k : NULL, seen_row, &j->seen);
    return 0;
}

static walk_job_t walk(int db, stor_walk_t how, const char *key, int stop_at)
{
    walk_job_t j;

    memset(&j, 0, sizeof(j));
    j.db = db;
    j.how = how;
    j.key = key;
    j.seen.stop_at = stop_at;
    ck_assert_int_eq(stor_read(tst_env, walk_fn, &j), 0);
    return j;
}

static int cred_put_fn(stor_txn_t *t, void *arg)
{
    const char **idowner = arg;
    stor_cred_t *c = calloc(1, sizeof(*c));
    int rc;

    ck_assert_ptr_nonnull(c);
    TST_SET(c->id, idowner[0]);
    TST_SET(c->owner, idowner[1]);
    c->status = STOR_CRED_ENABLED;
    rc = stor_txn_cred_put(t, c, 1);
    free(c);
    return rc;
}

static void put_cred(const char *id, const char *owner)
{
    const char *a[2] = { id, owner };

    ck_assert_int_eq(stor_write(tst_env, cred_put_fn, a), 0);
}

START_TEST(t_walk_ways)
{
    static const char *names[] = { "dave", "alice", "carol", "bob" };
    stor_user_t u;
    walk_job_t j;

    for (size_t i = 0; i < 4; i++) {
        tst_user(&u, names[i], 0);
        ck_assert_int_eq(tst_put_user(tst_env, &u), 0);
    }
    /* ALL: every key, in key order */
    j = walk(STOR_DB_USERS, STOR_WALK_ALL, NULL, 0);
    ck_assert_int_eq(j.rc, 0);
    ck_assert_int_eq(j.seen.n, 4);
    ck_assert_str_eq(j.seen.keys[0], "alice");
    ck_assert_str_eq(j.seen.keys[3], "dave");
    /* FROM: the keys from "bz" on (no such key: the next one) */
    j = walk(STOR_DB_USERS, STOR_WALK_FROM, "bz", 0);
    ck_assert_int_eq(j.rc, 0);
    ck_assert_int_eq(j.seen.n, 2);
    ck_assert_str_eq(j.seen.keys[0], "carol");
    ck_assert_str_eq(j.seen.keys[1], "dave");
    j = walk(STOR_DB_USERS, STOR_WALK_FROM, "e", 0);
    ck_assert_int_eq(j.rc, 0);
    ck_assert_int_eq(j.seen.n, 0);
    /* a non-zero return stops the walk and is its result */
    j = walk(STOR_DB_USERS, STOR_WALK_ALL, NULL, 2);
    ck_assert_int_eq(j.rc, 7);
    ck_assert_int_eq(j.seen.n, 2);

    /* DUPS: the values of one key of an index, and nothing of the next key */
    put_cred("c2", "alice");
    put_cred("c1", "alice");
    put_cred("c0", "bob");
    j = walk(STOR_DB_CREDS_BY_OWNER, STOR_WALK_DUPS, "alice", -1);
    ck_assert_int_eq(j.rc, 0);
    ck_assert_int_eq(j.seen.n, 2);
    ck_assert_str_eq(j.seen.keys[0], "c1");
    ck_assert_str_eq(j.seen.keys[1], "c2");
    j = walk(STOR_DB_CREDS_BY_OWNER, STOR_WALK_DUPS, "al", -1);
    ck_assert_int_eq(j.rc, 0);
    ck_assert_int_eq(j.seen.n, 0);

    /* a key is needed for FROM and DUPS; the way must be one of the three */
    ck_assert_int_eq(walk(STOR_DB_USERS, STOR_WALK_FROM, NULL, 0).rc, STOR_ERR_INVAL);
    ck_assert_int_eq(walk(STOR_DB_USERS, STOR_WALK_DUPS, NULL, 0).rc, STOR_ERR_INVAL);
    ck_assert_int_eq(walk(STOR_DB_USERS, (stor_walk_t)3, NULL, 0).rc, STOR_ERR_INVAL);
}
END_TEST

/* ---- stor_walk_recs through an index ----------------------------------------- */

static int count_cred(const stor_cred_t *c, void *arg)
{
    (void)c;
    (*(int *)arg)++;
    return 0;
}

typedef struct recs_job {
    int n, rc, null_rc, bad_type_rc;
} recs_job_t;

static int recs_fn(stor_txn_t *t, void *arg)
{
    recs_job_t *j = arg;
    stor_rec_cb_t null_cb = { STOR_REC_CRED, STOR_DB_CREDS, { .cred = NULL }, NULL };
    stor_rec_cb_t bad = { STOR_REC_AUDIT, -1, { .cred = count_cred }, &j->n };
    stor_val_t k = KEY("alice", 5);

    j->rc = stor_txn_cred_each(t, "alice", count_cred, &j->n);
    j->null_rc = stor_walk_recs(t, STOR_DB_CREDS_BY_OWNER, STOR_WALK_DUPS, &k, &null_cb);
    j->bad_type_rc = stor_walk_recs(t, STOR_DB_AUDIT, STOR_WALK_ALL, NULL, &bad);
    return 0;
}

/* The credential record goes, its owner-index row stays: the index is damaged. */
static int drop_cred_record(stor_txn_t *t, void *arg)
{
    stor_val_t k = KEY(arg, strlen(arg));
    int rc = stor_kv_del(t, STOR_DB_CREDS, &k, NULL);

    return rc == 0 ? 0 : stor_txn_fail(t, rc);
}

START_TEST(t_walk_recs_index)
{
    recs_job_t j = { 0 };

    put_cred("c1", "alice");
    put_cred("c2", "alice");
    ck_assert_int_eq(stor_read(tst_env, recs_fn, &j), 0);
    ck_assert_int_eq(j.rc, 0);
    ck_assert_int_eq(j.n, 2);
    ck_assert_int_eq(j.null_rc, STOR_ERR_INVAL);
    ck_assert_int_eq(j.bad_type_rc, STOR_ERR_INVAL);

    ck_assert_int_eq(stor_write(tst_env, drop_cred_record, "c2"), 0);
    memset(&j, 0, sizeof(j));
    ck_assert_int_eq(stor_read(tst_env, recs_fn, &j), 0);
    ck_assert_int_eq(j.rc, STOR_ERR_CORRUPT);
    ck_assert_int_eq(j.n, 1); /* c1 came first */
}
END_TEST

/* ---- the purge walks past a row that is no token's ---------------------------- */

typedef struct tok_row {
    size_t key_len;
    uint8_t fill;
    int64_t expires_at;
} tok_row_t;

static int tok_row_fn(stor_txn_t *t, void *arg)
{
    const tok_row_t *r = arg;
    stor_token_t tok;
    uint8_t key[32];
    stor_val_t k = KEY(key, r->key_len);

    memset(&tok, 0, sizeof(tok));
    memset(key, r->fill, sizeof(key));
    memcpy(tok.hash, key, 32);
    tok.kind = STOR_TOKEN_ACCESS;
    TST_SET(tok.user, "alice");
    tok.expires_at = r->expires_at;
    /* a 32-byte key through the API (with its grant-index row), any other straight into the table */
    return r->key_len == 32 ? stor_txn_token_put(t, &tok) : stor_put_rec(t, STOR_DB_TOKENS, &k, STOR_REC_TOKEN, &tok, 0);
}

START_TEST(t_purge_past_foreign_row)
{
    tok_row_t odd = { 31, 0x00, 10 }, t1 = { 32, 0x11, 10 }, t2 = { 32, 0x22, 10 };

    ck_assert_int_eq(stor_write(tst_env, tok_row_fn, &odd), 0); /* sorts first */
    ck_assert_int_eq(stor_write(tst_env, tok_row_fn, &t1), 0);
    ck_assert_int_eq(stor_write(tst_env, tok_row_fn, &t2), 0);
    /* Both expired tokens go; the foreign row is left alone (the walk used to stop at it and purge nothing). */
    ck_assert_int_eq(stor_purge_expired(tst_env, 100), 2);
    ck_assert_int_eq(stor_purge_expired(tst_env, 100), 0);
}
END_TEST

Suite *tst_walk_suite(void)
{
    Suite *s = suite_create("stor_walk");
    TCase *tc = tcase_create("walk");

    tcase_add_checked_fixture(tc, tst_env_setup, tst_env_teardown);
    tcase_add_test(tc, t_walk_ways);
    tcase_add_test(tc, t_walk_recs_index);
    tcase_add_test(tc, t_purge_past_foreign_row);
    suite_add_tcase(s, tc);
    return s;
}
