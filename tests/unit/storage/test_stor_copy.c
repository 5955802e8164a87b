/* test_stor_copy.c - stor_copy (csc-admin db copy): every row of every table arrives, over several write batches,
 * with the audit chain intact; a destination that is not empty is refused; a row lost on the way is caught by the
 * check; the report names each table with its row count. Run against LMDB on both ends here; the backends share
 * the walk order the check relies on (test_stor_backend.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stor_int.h"
#include "test_stor.h"

#define N_USERS 30
#define N_AUDIT 2300 /* more than two of stor_copy's write batches */

static int fill_fn(stor_txn_t *t, void *arg)
{
    int *round = arg;
    char name[32];
    int rc;

    for (int i = 0; i < N_USERS; i++) {
        stor_user_t u;
        memset(&u, 0, sizeof(u));
        snprintf(name, sizeof(name), "user%02d", i);
        TST_SET(u.name, name);
        u.status = STOR_USER_ACTIVE;
        u.created_at = 1700000000 + i;
        if (*round == 0 && (rc = stor_txn_user_put(t, &u, 1)) != 0)
            return rc;
        /* dupsort: three delegates' credentials per user */
        for (int d = 0; *round == 0 && d < 3; d++) {
            char cred[32];
            snprintf(cred, sizeof(cred), "cred-%02d-%d", i, d);
            if ((rc = stor_txn_delegation_put(t, name, cred)) != 0)
                return rc;
        }
    }
    for (int i = 0; i < N_AUDIT / 10; i++) {
        stor_audit_t rec;
        memset(&rec, 0, sizeof(rec));
        rec.event = STOR_EV_ADMIN;
        rec.result = STOR_RES_OK;
        snprintf(rec.detail, sizeof(rec.detail), "round=%d record=%d", *round, i);
        if ((rc = stor_txn_audit_append(t, &rec)) != 0)
            return rc;
    }
    return 0;
}

/* Rounds first..9 of fill_fn (round 0 makes the users and delegations, every round N_AUDIT / 10 records). */
static void fill(stor_env_t *env, int first)
{
    for (int round = first; round < 10; round++)
        ck_assert_msg(stor_write(env, fill_fn, &round) == 0, "round %d", round);
}

typedef struct {
    size_t tables, rows, users, delegations, audit;
} report_t;

static void report_fn(const char *table, size_t rows, void *arg)
{
    report_t *r = arg;
    r->tables++;
    r->rows += rows;
    if (strcmp(table, "users") == 0)
        r->users = rows;
    else if (strcmp(table, "delegations") == 0)
        r->delegations = rows;
    else if (strcmp(table, "audit") == 0)
        r->audit = rows;
}

typedef struct {
    uint64_t n, bad;
    uint8_t prev[32];
} chain_t;

static int chain_fn(const stor_audit_raw_t *r, void *arg)
{
    chain_t *c = arg;
    if (r->status != 0 || !r->key_ok || r->key_seq != c->n + 1 || memcmp(r->rec.prev_hash, c->prev, 32) != 0 ||
        memcmp(r->computed, r->rec.hash, 32) != 0)
        c->bad++;
    memcpy(c->prev, r->rec.hash, 32);
    c->n++;
    return 0;
}

static int delegations_fn(const char *cred, void *arg)
{
    (void)cred;
    (*(int *)arg)++;
    return 0;
}

static int count_delegations(stor_txn_t *t, void *arg)
{
    return stor_txn_delegation_each(t, "user07", delegations_fn, arg);
}

START_TEST(t_copy_all)
{
    stor_env_t *from = tst_open(tst_path(), 0), *to = tst_open(tst_path(), 0);
    report_t rep = { 0 };
    const char *table = "x";
    chain_t chain = { 0 };
    stor_audit_tip_t tip;
    stor_user_t u;
    int n = 0;

    fill(from, 0);
    ck_assert_int_eq(stor_copy(from, to, report_fn, &rep, &table), 0);
    ck_assert_ptr_null(table);
    ck_assert_uint_eq(rep.tables, STOR_DB_COUNT);
    ck_assert_uint_eq(rep.users, N_USERS);
    ck_assert_uint_eq(rep.delegations, N_USERS * 3);
    ck_assert_uint_eq(rep.audit, N_AUDIT);

    /* The destination serves the records: a user, a dupsort walk, the audit chain with its head. */
    ck_assert_int_eq(stor_user_get(to, "user29", &u), 0);
    ck_assert(u.created_at == 1700000000 + 29);
    ck_assert_int_eq(stor_read(to, count_delegations, &n), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(stor_audit_scan(to, chain_fn, &chain, &tip), 0);
    ck_assert_uint_eq(chain.n, N_AUDIT);
    ck_assert_uint_eq(chain.bad, 0);
    ck_assert_int_eq(tip.status, 0);
    ck_assert_uint_eq(tip.seq, N_AUDIT);
    ck_assert_mem_eq(tip.hash, chain.prev, 32);
    /* and goes on appending after the copied chain */
    fill(to, 1);
    memset(&chain, 0, sizeof(chain));
    ck_assert_int_eq(stor_audit_scan(to, chain_fn, &chain, &tip), 0);
    ck_assert_uint_eq(chain.n, N_AUDIT + N_AUDIT / 10 * 9);
    ck_assert_uint_eq(chain.bad, 0);

    /* A second copy into a destination that holds data is refused, naming the first table with rows. */
    ck_assert_int_eq(stor_copy(from, to, NULL, NULL, &table), STOR_ERR_EXISTS);
    ck_assert_str_eq(table, "users");
    ck_assert_int_eq(stor_copy(from, from, NULL, NULL, &table), STOR_ERR_INVAL);
    stor_close(from);
    stor_close(to);
}
END_TEST

START_TEST(t_copy_checked)
{
    stor_env_t *from = tst_open(tst_path(), 0), *to = tst_open(tst_path(), 0);
    const char *table = NULL;

    fill(from, 0);
    /* the walk goes table by table in STOR_DB_* order: users (30 rows), then empty tables, then audit */
    stor_test_copy_skip_row(N_USERS + 5);
    ck_assert_int_eq(stor_copy(from, to, NULL, NULL, &table), STOR_ERR_CORRUPT);
    stor_test_copy_skip_row(0);
    ck_assert_ptr_nonnull(table);
    ck_assert_str_eq(table, "audit");
    stor_close(from);
    stor_close(to);
}
END_TEST

/* stor_backup (csc-admin db backup): taken while another thread appends, the copy opens as an environment of its
 * own holding one snapshot: a chain with no gap and meta's head at its last record; a missing folder is an error. */
START_TEST(t_backup_snapshot)
{
    stor_env_t *from = tst_open(tst_path(), 0), *to;
    chain_t chain = { 0 };
    stor_audit_tip_t tip;
    stor_user_t u;
    tst_async_t w;
    char copy[512], missing[600];
    int round = 1;

    snprintf(copy, sizeof(copy), "%s", tst_path()); /* tst_path's buffer is its own */

    fill(from, 0);
    tst_async_start(&w, from, fill_fn, &round);
    ck_assert_int_eq(stor_backup(from, copy), 0);
    ck_assert_int_eq(tst_async_join(&w), 0);
    snprintf(missing, sizeof(missing), "%s/no/such/folder", copy);
    ck_assert_int_eq(stor_backup(from, missing), STOR_ERR_IO);
    ck_assert_int_eq(stor_backup(from, NULL), STOR_ERR_INVAL);
    stor_close(from);

    to = tst_open(copy, 0);
    ck_assert_int_eq(stor_user_get(to, "user29", &u), 0);
    ck_assert_int_eq(stor_audit_scan(to, chain_fn, &chain, &tip), 0);
    ck_assert_uint_eq(chain.bad, 0);
    /* before or after the concurrent round: either way, whole */
    ck_assert(chain.n == N_AUDIT || chain.n == N_AUDIT + N_AUDIT / 10);
    ck_assert_int_eq(tip.status, 0);
    ck_assert_uint_eq(tip.seq, chain.n);
    ck_assert_mem_eq(tip.hash, chain.prev, 32);
    stor_close(to);
}
END_TEST

Suite *tst_copy_suite(void)
{
    Suite *s = suite_create("copy");
    TCase *tc = tcase_create("copy");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_copy_all);
    tcase_add_test(tc, t_copy_checked);
    tcase_add_test(tc, t_backup_snapshot);
    suite_add_tcase(s, tc);
    return s;
}
