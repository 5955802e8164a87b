/*
 * test_stor_pg.c - what only the PostgreSQL backend (storage/stor_pg.c) has: several processes or nodes writing
 * at once (FOR UPDATE serializes a read-modify-write; a deadlock makes stor_write run the batch again), RESERVE
 * in nested txns, the pool after the server restarts, the record layer on the migrations' tables as csc_sam.
 * Run by `test_storage --pg scripts/pg` (ctest unit_storage_pg) against the cluster it starts.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stor_backend.h"
#include "test_stor.h"

static const stor_table_t pg_tables[] = { { "race", 0 } };

static stor_bk_env_t *pg_open_tables(void)
{
    stor_config_t cfg = { .backend = "postgresql", .location = tst_pg_admin };
    stor_bk_env_t *e = NULL;

    ck_assert_int_eq(stor_backend_pg.open(&cfg, pg_tables, 1, &e), 0);
    return e;
}

/* The table "race" through another connection string: the admin's with options (e.g. "-c lock_timeout=500"). */
static stor_bk_env_t *pg_open_options(const char *options)
{
    char ci[1200];
    stor_config_t cfg = { .backend = "postgresql", .location = ci };
    stor_bk_env_t *e = NULL;

    ck_assert_int_lt(snprintf(ci, sizeof(ci), "%s options='%s'", tst_pg_admin, options), (int)sizeof(ci));
    ck_assert_int_eq(stor_backend_pg.open(&cfg, pg_tables, 1, &e), 0);
    return e;
}

static stor_bk_txn_t *pg_begin(stor_bk_env_t *e, stor_bk_txn_t *parent, stor_bk_mode_t mode)
{
    stor_bk_txn_t *t = NULL;

    ck_assert_int_eq(stor_backend_pg.txn_begin(e, parent, mode, &t), 0);
    return t;
}

/* The counter of key "n" (a decimal string), -1 if absent. */
static long counter(stor_bk_env_t *e, stor_bk_txn_t *t, int *rc)
{
    stor_val_t k = STOR_VAL("n", 1), v;
    char buf[32];

    if ((*rc = stor_backend_pg.get(e, t, 0, &k, &v)) != 0)
        return -1;
    ck_assert_uint_lt(v.len, sizeof(buf));
    memcpy(buf, v.data, v.len);
    buf[v.len] = '\0';
    return strtol(buf, NULL, 10);
}

static int set_counter(stor_bk_env_t *e, stor_bk_txn_t *t, long n)
{
    char buf[32];
    stor_val_t k = STOR_VAL("n", 1), v;

    v = STOR_VAL(buf, (size_t)snprintf(buf, sizeof(buf), "%ld", n));
    return stor_backend_pg.put(e, t, 0, &k, &v, 0);
}

#define RACE_THREADS 4
#define RACE_ROUNDS 50

/* One "node": its own environment (pool), RACE_ROUNDS read-modify-write txns of the counter. */
static void *racer(void *arg)
{
    stor_bk_env_t *e = pg_open_tables();
    long done = 0;

    (void)arg;
    while (done < RACE_ROUNDS) {
        stor_bk_txn_t *t = pg_begin(e, NULL, STOR_BK_WRITE);
        int rc;
        long n = counter(e, t, &rc);
        if (rc == STOR_ERR_NOTFOUND) /* the first of all: no row yet */
            n = rc = 0;
        if (rc == 0)
            rc = set_counter(e, t, n + 1);
        if (rc != 0) {
            ck_assert_int_eq(rc, STOR_ERR_RETRY); /* the only failure allowed: run it again */
            stor_backend_pg.txn_abort(t);
            continue;
        }
        rc = stor_backend_pg.txn_commit(t);
        ck_assert(rc == 0 || rc == STOR_ERR_RETRY);
        done += rc == 0;
    }
    stor_backend_pg.close(e);
    return NULL;
}

/* RACE_THREADS writers (each its own environment, as nodes) increment one counter RACE_ROUNDS times each, from 0
 * (seeded) or from no row at all; it ends at the sum. */
static void race(int seed)
{
    pthread_t th[RACE_THREADS];
    stor_bk_env_t *e;
    stor_bk_txn_t *t;
    int rc;

    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.race"), 0);
    e = pg_open_tables();
    if (seed) {
        t = pg_begin(e, NULL, STOR_BK_WRITE);
        ck_assert_int_eq(set_counter(e, t, 0), 0);
        ck_assert_int_eq(stor_backend_pg.txn_commit(t), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, racer, NULL), 0);
    for (int i = 0; i < RACE_THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    t = pg_begin(e, NULL, STOR_BK_READ);
    ck_assert_int_eq(counter(e, t, &rc), RACE_THREADS * RACE_ROUNDS);
    stor_backend_pg.txn_abort(t);
    stor_backend_pg.close(e);
}

/* Four writers incrementing one counter 50 times each end at 200: a get in a write txn locks the row. */
START_TEST(t_pg_counter_race)
{
    race(1);
}
END_TEST

/* The same race starting from no row at all: a get that finds no row in a write txn locks the missing key, so the
 * first increments do not both start from "absent" (the first audit append, the first lock-out counter). */
START_TEST(t_pg_counter_race_from_nothing)
{
    race(0);
}
END_TEST

/* Two connections meet at the counter, which has a row (seeded) or none. The second write txn that looks it up waits
 * for the first and gives up after its lock_timeout or statement_timeout (options): UNAVAILABLE, not a NOTFOUND or an
 * old value it would act on. A read txn never waits. Once the first committed, the second reads (and locks) its row. */
static void second_writer_waits(const char *options, int seeded)
{
    stor_bk_env_t *e1, *e2;
    stor_bk_txn_t *t1, *t2;
    int rc;

    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.race"), 0);
    e1 = pg_open_tables();
    e2 = pg_open_options(options);
    if (seeded) {
        t1 = pg_begin(e1, NULL, STOR_BK_WRITE);
        ck_assert_int_eq(set_counter(e1, t1, 5), 0);
        ck_assert_int_eq(stor_backend_pg.txn_commit(t1), 0);
    }
    t1 = pg_begin(e1, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(counter(e1, t1, &rc), seeded ? 5 : -1);
    t2 = pg_begin(e2, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(counter(e2, t2, &rc), -1);
    ck_assert_int_eq(rc, STOR_ERR_UNAVAILABLE);
    stor_backend_pg.txn_abort(t2);
    t2 = pg_begin(e2, NULL, STOR_BK_READ);
    ck_assert_int_eq(counter(e2, t2, &rc), seeded ? 5 : -1);
    stor_backend_pg.txn_abort(t2);
    ck_assert_int_eq(set_counter(e1, t1, 6), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(t1), 0);
    t2 = pg_begin(e2, NULL, STOR_BK_WRITE); /* the connection that gave up serves the next txn */
    ck_assert_int_eq(counter(e2, t2, &rc), 6);
    ck_assert_int_eq(stor_backend_pg.txn_commit(t2), 0);
    stor_backend_pg.close(e2);
    stor_backend_pg.close(e1);
}

/* A key without a row: the first audit append, a first counter. */
START_TEST(t_pg_missing_row_locked)
{
    second_writer_waits("-c lock_timeout=500", 0);
}
END_TEST

/* A statement that runs longer than the statement timeout (here 500 ms; the default is 10 s) is cancelled. */
START_TEST(t_pg_statement_timeout)
{
    second_writer_waits("-c statement_timeout=500", 1);
}
END_TEST

/* An environment opens at most db_connections connections: one more txn waits, and after POOL_WAIT_S answers
 * UNAVAILABLE; when a txn ends, its connection serves the next. */
START_TEST(t_pg_connection_cap)
{
    stor_config_t cfg = { .backend = "postgresql", .location = tst_pg_admin, .db_connections = 2 };
    stor_bk_env_t *e = NULL;
    stor_bk_txn_t *a, *b, *c = NULL;

    ck_assert_int_eq(stor_backend_pg.open(&cfg, pg_tables, 1, &e), 0);
    a = pg_begin(e, NULL, STOR_BK_READ);
    b = pg_begin(e, NULL, STOR_BK_READ);
    ck_assert_int_eq(stor_backend_pg.txn_begin(e, NULL, STOR_BK_READ, &c), STOR_ERR_UNAVAILABLE);
    stor_backend_pg.txn_abort(a);
    c = pg_begin(e, NULL, STOR_BK_WRITE);
    stor_backend_pg.txn_abort(c);
    stor_backend_pg.txn_abort(b);
    stor_backend_pg.close(e);
}
END_TEST

/* The pool keeps every connection a burst opened (closed only after POOL_IDLE_S unused): a second burst of the same
 * size reuses them all, and opens none. Before, at most 8 idle stayed, so every burst past the eighth txn opened a
 * new TLS connection and server process and prepared its statements again. The connections are told apart from
 * others' by their application_name; psql's ON_ERROR_STOP turns a failed check into a non-zero exit. */
START_TEST(t_pg_pool_keeps_connections)
{
    enum { BURST = 12 };
    char ci[1200];
    stor_config_t cfg = { .backend = "postgresql", .location = ci, .db_connections = BURST };
    stor_bk_env_t *e = NULL;
    stor_bk_txn_t *t[BURST];
    const char *count = "DO $$ BEGIN IF (SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                        "'csc_pool_burst') <> 12 THEN RAISE EXCEPTION 'pool: not 12 connections'; END IF; END $$";

    ck_assert_int_lt(snprintf(ci, sizeof(ci), "%s application_name=csc_pool_burst", tst_pg_admin), (int)sizeof(ci));
    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.pool_seen"), 0);
    ck_assert_int_eq(stor_backend_pg.open(&cfg, pg_tables, 1, &e), 0);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < BURST; i++) /* all at once: each holds its own connection */
            t[i] = pg_begin(e, NULL, i % 2 ? STOR_BK_WRITE : STOR_BK_READ);
        for (int i = 0; i < BURST; i++)
            stor_backend_pg.txn_abort(t[i]);
        ck_assert_int_eq(tst_pg_psql(count), 0);
        if (round == 0)
            ck_assert_int_eq(tst_pg_psql("CREATE TABLE csc.pool_seen AS SELECT pid FROM pg_stat_activity "
                                         "WHERE application_name = 'csc_pool_burst'"), 0);
    }
    ck_assert_int_eq(tst_pg_psql("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = "
                                 "'csc_pool_burst' AND pid NOT IN (SELECT pid FROM csc.pool_seen)) THEN "
                                 "RAISE EXCEPTION 'pool: the second burst opened connections'; END IF; END $$"), 0);
    stor_backend_pg.close(e);
    ck_assert_int_eq(tst_pg_psql("DROP TABLE csc.pool_seen"), 0);
}
END_TEST

/* RESERVE in nested txns: a NOOVERWRITE reserve claims its key at once (EXISTS from the call itself), an aborted
 * child takes its claim and its unsent value with it, a committed child's value is sent. */
START_TEST(t_pg_nested_reserve)
{
    stor_bk_env_t *e;
    stor_bk_txn_t *p, *c;
    stor_val_t k = STOR_VAL("r", 1), v = { 3, NULL }, got;

    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.race"), 0);
    e = pg_open_tables();
    p = pg_begin(e, NULL, STOR_BK_WRITE);
    c = pg_begin(e, p, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, c, 0, &k, &v, STOR_PUT_RESERVE | STOR_PUT_NOOVERWRITE), 0);
    memcpy(v.data, "abc", 3);
    v.len = 3;
    ck_assert_int_eq(stor_backend_pg.put(e, c, 0, &k, &v, STOR_PUT_RESERVE | STOR_PUT_NOOVERWRITE), STOR_ERR_EXISTS);
    ck_assert_int_eq(stor_backend_pg.get(e, c, 0, &k, &got), 0); /* the first value was sent before the get */
    ck_assert(got.len == 3 && memcmp(got.data, "abc", 3) == 0);
    stor_backend_pg.txn_abort(c);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k, &got), STOR_ERR_NOTFOUND);
    c = pg_begin(e, p, STOR_BK_WRITE);
    v.len = 3;
    ck_assert_int_eq(stor_backend_pg.put(e, c, 0, &k, &v, STOR_PUT_RESERVE), 0);
    memcpy(v.data, "xyz", 3);
    stor_backend_pg.txn_abort(c); /* never sent */
    c = pg_begin(e, p, STOR_BK_WRITE);
    v.len = 2;
    ck_assert_int_eq(stor_backend_pg.put(e, c, 0, &k, &v, STOR_PUT_RESERVE | STOR_PUT_NOOVERWRITE), 0);
    memcpy(v.data, "ok", 2);
    ck_assert_int_eq(stor_backend_pg.txn_commit(c), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(p), 0);
    p = pg_begin(e, NULL, STOR_BK_READ);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k, &got), 0);
    ck_assert(got.len == 2 && memcmp(got.data, "ok", 2) == 0);
    stor_backend_pg.txn_abort(p);
    stor_backend_pg.close(e);
}
END_TEST

/* The server restarts: the next txn works at once. A read txn's first statement, which takes its BEGIN along, finds
 * the pooled connection dead and moves to a fresh one in the same call. A write txn's BEGIN waits for nothing either:
 * its first answer finds the connection dead and says STOR_ERR_RETRY (nothing of it ran), and the next txn is on a
 * fresh connection (stor_write runs the batch again: t_pg_restart_write). While the server is stopped, a txn is
 * refused with STOR_ERR_UNAVAILABLE (no hang, no crash); once it is back, the same environment works again by
 * itself. */
START_TEST(t_pg_restart)
{
    stor_bk_env_t *e;
    stor_bk_txn_t *t = NULL;
    int rc;

    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.race"), 0);
    e = pg_open_tables();
    t = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(set_counter(e, t, 7), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(t), 0); /* its connection goes back to the pool */
    ck_assert_int_eq(tst_pg_script("stop"), 0);
    ck_assert_int_eq(tst_pg_script("start"), 0);
    t = pg_begin(e, NULL, STOR_BK_READ);
    ck_assert_int_eq(counter(e, t, &rc), 7);
    stor_backend_pg.txn_abort(t);
    ck_assert_int_eq(tst_pg_script("stop"), 0);
    ck_assert_int_eq(tst_pg_script("start"), 0);
    t = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(counter(e, t, &rc), -1);
    ck_assert_int_eq(rc, STOR_ERR_RETRY);
    stor_backend_pg.txn_abort(t);
    t = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(counter(e, t, &rc), 7);
    ck_assert_int_eq(stor_backend_pg.txn_commit(t), 0);
    ck_assert_int_eq(tst_pg_script("stop"), 0);
    /* the pooled connection's BEGIN is queued; its first answer (the COMMIT's, which syncs what came before it first)
     * finds it dead */
    t = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(set_counter(e, t, 8), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(t), STOR_ERR_RETRY);
    ck_assert_int_eq(stor_backend_pg.txn_begin(e, NULL, STOR_BK_WRITE, &t), STOR_ERR_UNAVAILABLE); /* none pooled */
    ck_assert_int_eq(stor_backend_pg.txn_begin(e, NULL, STOR_BK_READ, &t), STOR_ERR_UNAVAILABLE);
    ck_assert_int_eq(tst_pg_script("start"), 0);
    t = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(counter(e, t, &rc), 7);
    ck_assert_int_eq(stor_backend_pg.txn_commit(t), 0);
    stor_backend_pg.close(e);
}
END_TEST

/* A statement that fails in PostgreSQL (here: its table was dropped behind the backend's back) fails its nested
 * txn only: the child's abort rolls back to its savepoint and the parent commits what it wrote; the same failure in
 * a top-level txn makes its commit fail with nothing kept. A put whose answer is not needed at once is queued
 * (pipelined): its error comes from the txn's next call that waits for the database. When that call is in the
 * nested txn that made the put, only that one is rolled back; when it is in another (the first one had committed),
 * the whole top-level txn fails and keeps nothing. */
/* The rows a write txn holds: a get after the txn's own put, in the txn or a child, answers the value put; a
 * child rolled back takes its writes with it, so the parent reads its own value again; a delete is seen; what the
 * txn read stays what a reader sees after the commit. */
START_TEST(t_pg_held_rows)
{
    stor_bk_env_t *e;
    stor_bk_txn_t *p, *c;
    stor_val_t k = STOR_VAL("h", 1), one = STOR_VAL("1", 1), two = STOR_VAL("22", 2), three = STOR_VAL("333", 3),
               got;
    char buf[4] = "444";
    stor_val_t four = STOR_VAL(buf, 3);

    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.race"), 0);
    e = pg_open_tables();
    p = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, p, 0, &k, &one, 0), 0);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k, &got), 0);
    ck_assert(got.len == 1 && memcmp(got.data, "1", 1) == 0);
    c = pg_begin(e, p, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, c, 0, &k, &two, 0), 0);
    ck_assert_int_eq(stor_backend_pg.get(e, c, 0, &k, &got), 0);
    ck_assert(got.len == 2 && memcmp(got.data, "22", 2) == 0);
    stor_backend_pg.txn_abort(c);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k, &got), 0);
    ck_assert(got.len == 1 && memcmp(got.data, "1", 1) == 0);
    c = pg_begin(e, p, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, c, 0, &k, &four, 0), 0);
    memcpy(buf, "xyz", 3); /* the caller's buffer is not the row's value */
    ck_assert_int_eq(stor_backend_pg.txn_commit(c), 0);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k, &got), 0);
    ck_assert(got.len == 3 && memcmp(got.data, "444", 3) == 0);
    ck_assert_int_eq(stor_backend_pg.del(e, p, 0, &k, NULL), 0);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k, &got), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_backend_pg.put(e, p, 0, &k, &three, 0), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(p), 0);
    p = pg_begin(e, NULL, STOR_BK_READ);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k, &got), 0);
    ck_assert(got.len == 3 && memcmp(got.data, "333", 3) == 0);
    stor_backend_pg.txn_abort(p);
    p = pg_begin(e, NULL, STOR_BK_READ); /* a read txn that reads nothing */
    ck_assert_int_eq(stor_backend_pg.txn_commit(p), 0);
    stor_backend_pg.close(e);
}
END_TEST

/* STOR_PUT_NEW (the audit record after the locked head): queued without a claim; a key that exists anyway (a corrupt
 * database) fails the txn with STOR_ERR_CORRUPT at its next round trip, and nothing of it is kept. */
START_TEST(t_pg_put_new)
{
    stor_bk_env_t *e;
    stor_bk_txn_t *p;
    stor_val_t k = STOR_VAL("n1", 2), k2 = STOR_VAL("n2", 2), v = { 2, NULL }, got;

    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.race"), 0);
    e = pg_open_tables();
    p = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, p, 0, &k, &v, STOR_PUT_NOOVERWRITE | STOR_PUT_NEW | STOR_PUT_RESERVE), 0);
    memcpy(v.data, "ab", 2);
    ck_assert_int_eq(stor_backend_pg.txn_commit(p), 0);
    p = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, p, 0, &k2, &STOR_VAL("x", 1), 0), 0);
    ck_assert_int_eq(stor_backend_pg.put(e, p, 0, &k, &STOR_VAL("cd", 2), STOR_PUT_NOOVERWRITE | STOR_PUT_NEW), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(p), STOR_ERR_CORRUPT);
    p = pg_begin(e, NULL, STOR_BK_READ);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k, &got), 0);
    ck_assert(got.len == 2 && memcmp(got.data, "ab", 2) == 0);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k2, &got), STOR_ERR_NOTFOUND);
    stor_backend_pg.txn_abort(p);
    stor_backend_pg.close(e);
}
END_TEST

START_TEST(t_pg_failed_statement)
{
    static const stor_table_t two[] = { { "race", 0 }, { "gone", 0 } };
    stor_config_t cfg = { .backend = "postgresql", .location = tst_pg_admin };
    stor_bk_env_t *e = NULL;
    stor_bk_txn_t *p, *c;
    stor_val_t k = STOR_VAL("k", 1), v = STOR_VAL("v", 1), got;

    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.race, csc.gone"), 0);
    ck_assert_int_eq(stor_backend_pg.open(&cfg, two, 2, &e), 0);
    ck_assert_int_eq(tst_pg_psql("DROP TABLE csc.gone"), 0);
    p = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, p, 0, &k, &v, 0), 0);
    c = pg_begin(e, p, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, c, 0, &v, &v, 0), 0);
    ck_assert_int_eq(stor_backend_pg.put(e, c, 1, &k, &v, 0), 0); /* queued */
    ck_assert_int_eq(stor_backend_pg.get(e, c, 0, &STOR_VAL("zz", 2), &got), STOR_ERR_IO); /* the next round trip */
    stor_backend_pg.txn_abort(c);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &v, &got), STOR_ERR_NOTFOUND); /* the child's write is gone */
    c = pg_begin(e, p, STOR_BK_WRITE); /* the parent goes on: a child after it commits */
    ck_assert_int_eq(stor_backend_pg.put(e, c, 0, &k, &k, 0), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(c), 0);
    ck_assert_int_eq(stor_backend_pg.put(e, p, 0, &k, &v, 0), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(p), 0);
    /* The failed put's answer reaches a later nested txn: the top-level txn fails whole. */
    p = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, p, 0, &STOR_VAL("late", 4), &v, 0), 0);
    c = pg_begin(e, p, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, c, 1, &k, &v, 0), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(c), 0); /* its RELEASE queued too */
    c = pg_begin(e, p, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.get(e, c, 0, &STOR_VAL("zz", 2), &got), STOR_ERR_IO);
    stor_backend_pg.txn_abort(c);
    ck_assert_int_eq(stor_backend_pg.txn_commit(p), STOR_ERR_IO);
    p = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, p, 0, &v, &v, 0), 0);
    ck_assert_int_eq(stor_backend_pg.put(e, p, 1, &k, &v, 0), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(p), STOR_ERR_IO);
    p = pg_begin(e, NULL, STOR_BK_READ);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k, &got), 0);
    ck_assert(got.len == 1 && memcmp(got.data, "v", 1) == 0);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &v, &got), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &STOR_VAL("late", 4), &got), STOR_ERR_NOTFOUND);
    stor_backend_pg.txn_abort(p);
    /* A read txn's statement fails: PostgreSQL skips what follows it up to a sync point, which the answer's round
     * trip sends; the connection then serves the next txns (first the failed statement before another, then last). */
    p = pg_begin(e, NULL, STOR_BK_READ);
    ck_assert_int_eq(stor_backend_pg.prefetch(e, p, 1, &k), 0);
    ck_assert_int_eq(stor_backend_pg.prefetch(e, p, 0, &v), 0);
    ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k, &got), STOR_ERR_IO);
    stor_backend_pg.txn_abort(p);
    for (int i = 0; i < 2; i++) {
        p = pg_begin(e, NULL, STOR_BK_READ);
        ck_assert_int_eq(stor_backend_pg.get(e, p, 0, &k, &got), 0);
        ck_assert(got.len == 1 && memcmp(got.data, "v", 1) == 0);
        if (i == 0) {
            ck_assert_int_eq(stor_backend_pg.get(e, p, 1, &k, &got), STOR_ERR_IO);
            stor_backend_pg.txn_abort(p);
        } else {
            ck_assert_int_eq(stor_backend_pg.txn_commit(p), 0);
        }
    }
    stor_backend_pg.close(e);
}
END_TEST

/* A write txn that looks up one key of a dupsort table (SET_KEY, NEXT_DUP) locks that key's rows only: another node
 * locks the next key's rows at once. (The other node gives up after lock_timeout instead of waiting for ever.) */
START_TEST(t_pg_set_key_locks_one_key)
{
    static const stor_table_t dups[] = { { "race", STOR_TABLE_DUPSORT } };
    char other[1200];
    stor_config_t cfg = { .backend = "postgresql", .location = tst_pg_admin };
    stor_bk_env_t *e1 = NULL, *e2 = NULL;
    stor_bk_txn_t *t1, *t2;
    stor_bk_cur_t *c = NULL;
    stor_val_t a = STOR_VAL("a", 1), b = STOR_VAL("b", 1), v1 = STOR_VAL("1", 1), v2 = STOR_VAL("2", 1), k, v;

    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.race"), 0);
    ck_assert_int_eq(stor_backend_pg.open(&cfg, dups, 1, &e1), 0);
    snprintf(other, sizeof(other), "%s options='-c lock_timeout=3000'", tst_pg_admin);
    cfg.location = other;
    ck_assert_int_eq(stor_backend_pg.open(&cfg, dups, 1, &e2), 0);
    t1 = pg_begin(e1, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e1, t1, 0, &a, &v1, 0), 0);
    ck_assert_int_eq(stor_backend_pg.put(e1, t1, 0, &a, &v2, 0), 0);
    ck_assert_int_eq(stor_backend_pg.put(e1, t1, 0, &b, &v1, 0), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(t1), 0);
    t1 = pg_begin(e1, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.cursor_open(e1, t1, 0, &c), 0);
    k = a;
    ck_assert_int_eq(stor_backend_pg.cursor_get(c, STOR_CUR_SET_KEY, &k, &v), 0);
    ck_assert_int_eq(stor_backend_pg.cursor_get(c, STOR_CUR_NEXT_DUP, &k, &v), 0);
    ck_assert_int_eq(stor_backend_pg.cursor_get(c, STOR_CUR_NEXT_DUP, &k, &v), STOR_ERR_NOTFOUND);
    t2 = pg_begin(e2, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.get(e2, t2, 0, &b, &v), 0); /* not held by t1 */
    ck_assert_int_eq(stor_backend_pg.txn_commit(t2), 0);
    stor_backend_pg.cursor_close(c);
    ck_assert_int_eq(stor_backend_pg.txn_commit(t1), 0);
    stor_backend_pg.close(e2);
    stor_backend_pg.close(e1);
}
END_TEST

/* ---- through the record layer (stor_open, stor_write) on the migrations' tables, as csc_sam ---------------- */

static stor_env_t *pg_store(void)
{
    stor_config_t cfg = { .backend = "postgresql", .location = tst_pg_sam };
    stor_env_t *env = NULL;
    int rc = stor_open(&cfg, &env);

    ck_assert_msg(rc == 0, "stor_open(postgresql): %s", stor_strerror(rc));
    return env;
}

static int user_get_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_user_get(t, "pg-alice", arg);
}

START_TEST(t_pg_store)
{
    stor_env_t *env = pg_store();
    stor_user_t u, got;

    tst_user(&u, "pg-alice", 3);
    ck_assert_int_eq(tst_put_user(env, &u), 0);
    memset(&got, 0, sizeof(got));
    ck_assert_int_eq(stor_read(env, user_get_fn, &got), 0);
    ck_assert_str_eq(got.name, "pg-alice");
    ck_assert_uint_eq(got.failed_logins, 3);
    uint64_t used = 0, cap = 0;
    ck_assert_int_eq(stor_size(env, &used, &cap), STOR_ERR_NOTFOUND); /* PostgreSQL's own statistics say it */
    stor_close(env);
}
END_TEST

/* A row read ahead in a read txn is read in its snapshot: a change committed by another txn after the snapshot was
 * taken (its first statement) and before the row is asked for is not seen, as with a plain get. */
START_TEST(t_pg_prefetch_snapshot)
{
    stor_bk_env_t *e;
    stor_bk_txn_t *r, *w;
    stor_val_t a = STOR_VAL("a", 1), b = STOR_VAL("b", 1), one = STOR_VAL("1", 1), two = STOR_VAL("2", 1), got;

    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.race"), 0);
    e = pg_open_tables();
    w = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, w, 0, &a, &one, 0), 0);
    ck_assert_int_eq(stor_backend_pg.put(e, w, 0, &b, &one, 0), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(w), 0);
    r = pg_begin(e, NULL, STOR_BK_READ);
    ck_assert_int_eq(stor_backend_pg.get(e, r, 0, &a, &got), 0); /* the snapshot */
    ck_assert_int_eq(stor_backend_pg.prefetch(e, r, 0, &b), 0);
    w = pg_begin(e, NULL, STOR_BK_WRITE);
    ck_assert_int_eq(stor_backend_pg.put(e, w, 0, &b, &two, 0), 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(w), 0);
    ck_assert_int_eq(stor_backend_pg.get(e, r, 0, &b, &got), 0);
    ck_assert(got.len == 1 && memcmp(got.data, "1", 1) == 0);
    stor_backend_pg.txn_abort(r);
    r = pg_begin(e, NULL, STOR_BK_READ); /* read ahead first: the prefetch's statement takes the snapshot */
    ck_assert_int_eq(stor_backend_pg.prefetch(e, r, 0, &b), 0);
    ck_assert_int_eq(stor_backend_pg.get(e, r, 0, &b, &got), 0);
    ck_assert(got.len == 1 && memcmp(got.data, "2", 1) == 0);
    ck_assert_int_eq(stor_backend_pg.txn_commit(r), 0);
    stor_backend_pg.close(e);
}
END_TEST

/* What a one-hash SIGN reads before it spends (csc-sam's verify, sam/sam_op_sign.c): the token, its user and the
 * credential, in one read txn. Read ahead, the three cost one round trip together; read one by one, three. Counted
 * by the backend (stor_int_stats: its pipeline sync points). */
typedef struct sign_reads {
    int ahead;
    const char *hint;        /* the user read ahead */
    uint8_t hash[32];
    stor_token_t tok;
    stor_user_t user;
    stor_cred_t cred;
} sign_reads_t;

static int sign_reads_fn(stor_txn_t *t, void *arg)
{
    sign_reads_t *s = arg;
    int rc;

    if (s->ahead && ((rc = stor_txn_token_prefetch(t, s->hash)) != 0 || (rc = stor_txn_user_prefetch(t, s->hint)) != 0 ||
                     (rc = stor_txn_cred_prefetch(t, "pg-rt-cred")) != 0))
        return rc;
    if ((rc = stor_txn_token_get(t, s->hash, &s->tok)) != 0 || (rc = stor_txn_user_get(t, s->tok.user, &s->user)) != 0)
        return rc;
    return stor_txn_cred_get(t, "pg-rt-cred", &s->cred);
}

static int sign_seed_fn(stor_txn_t *t, void *arg)
{
    sign_reads_t *s = arg;
    int rc;

    if ((rc = stor_txn_user_put(t, &s->user, 0)) != 0 || (rc = stor_txn_token_put(t, &s->tok)) != 0)
        return rc;
    return stor_txn_cred_put(t, &s->cred, 0);
}

/* The round trips of one stor_read of sign_reads_fn (the sync point that ends it waits for no answer); *stmts: the
 * statements it sent (its reads only: a read txn is the implicit transaction of its pipeline, without BEGIN or
 * ROLLBACK). */
static uint64_t sign_reads_cost(stor_env_t *env, sign_reads_t *s, int ahead, const char *hint, uint64_t *stmts)
{
    stor_stats_t before, after;

    s->ahead = ahead;
    s->hint = hint;
    stor_int_stats(env, &before);
    ck_assert_int_eq(stor_read(env, sign_reads_fn, s), 0);
    stor_int_stats(env, &after);
    ck_assert_str_eq(s->user.name, "pg-rt");
    ck_assert_str_eq(s->cred.owner, "pg-rt");
    ck_assert_str_eq(s->tok.cred, "pg-rt-cred");
    if (stmts != NULL)
        *stmts = after.statements - before.statements;
    return after.round_trips - before.round_trips;
}

START_TEST(t_pg_prefetch_round_trips)
{
    stor_env_t *env = pg_store();
    sign_reads_t s;

    memset(&s, 0, sizeof(s));
    memset(s.hash, 0x5a, sizeof(s.hash));
    tst_user(&s.user, "pg-rt", 0);
    memcpy(s.tok.hash, s.hash, 32);
    s.tok.kind = STOR_TOKEN_ACCESS;
    s.tok.scope = STOR_SCOPE_CREDENTIAL;
    tst_set(s.tok.user, sizeof(s.tok.user), "pg-rt");
    tst_set(s.tok.cred, sizeof(s.tok.cred), "pg-rt-cred");
    s.tok.expires_at = INT64_MAX;
    tst_set(s.cred.id, sizeof(s.cred.id), "pg-rt-cred");
    tst_set(s.cred.owner, sizeof(s.cred.owner), "pg-rt");
    ck_assert_int_eq(stor_write(env, sign_seed_fn, &s), 0);
    uint64_t stmts = 0;
    (void)sign_reads_cost(env, &s, 0, "pg-rt", NULL); /* the statements prepared on the connection */
    (void)sign_reads_cost(env, &s, 1, "pg-rt", NULL);
    ck_assert_uint_eq(sign_reads_cost(env, &s, 0, "pg-rt", &stmts), 3);
    ck_assert_uint_eq(stmts, 3);
    ck_assert_uint_eq(sign_reads_cost(env, &s, 1, "pg-rt", &stmts), 1);
    ck_assert_uint_eq(stmts, 3);
    /* another user read ahead (csc-sam's USER hint wrong): the token's own user is read, by a round trip of its own */
    ck_assert_uint_eq(sign_reads_cost(env, &s, 1, "pg-someone-else", &stmts), 2);
    ck_assert_uint_eq(stmts, 4);
    stor_close(env);
}
END_TEST

static int bump_user(stor_txn_t *t, void *arg)
{
    stor_user_t u;
    int rc;

    (void)arg;
    if ((rc = stor_txn_user_get(t, "pg-restart", &u)) != 0)
        return -1000; /* a code of its own for any failure: the batch still runs again after STOR_ERR_RETRY */
    u.failed_logins++;
    return stor_txn_user_put(t, &u, 0);
}

/* The server restarts between two writes: the next stor_write succeeds at once. Its batch's first answer finds the
 * pooled connection dead (STOR_ERR_RETRY from the backend) and runs again on a fresh one; the write is made once. */
START_TEST(t_pg_restart_write)
{
    stor_env_t *env = pg_store();
    stor_user_t u;

    tst_user(&u, "pg-restart", 0);
    ck_assert_int_eq(tst_put_user(env, &u), 0);
    ck_assert_int_eq(stor_write(env, bump_user, NULL), 0);
    ck_assert_int_eq(tst_pg_script("stop"), 0);
    ck_assert_int_eq(tst_pg_script("start"), 0);
    ck_assert_int_eq(stor_write(env, bump_user, NULL), 0);
    ck_assert_int_eq(stor_user_get(env, "pg-restart", &u), 0);
    ck_assert_uint_eq(u.failed_logins, 2);
    stor_close(env);
}
END_TEST

/* What a one-hash spend writes (oauth_sad_consume, oauth/oauth_sad.c): the SAD read and written back, an audit
 * record on the chain's head, the credential's signing event. Its three reads read ahead cost one round trip together,
 * read one by one three; the COMMIT is one more (the write txn's BEGIN goes with its first read, the writes with the
 * COMMIT). */
typedef struct spend_write {
    int ahead;
    uint8_t hash[32];
    stor_sad_t *sad;
} spend_write_t;

static int spend_write_fn(stor_txn_t *t, void *arg)
{
    spend_write_t *w = arg;
    stor_audit_t rec;
    int rc;

    if (w->ahead && ((rc = stor_txn_sad_prefetch(t, w->hash)) != 0 || (rc = stor_txn_audit_head_prefetch(t)) != 0 ||
                     (rc = stor_txn_recent_prefetch(t, STOR_RECENT_SIGNS, "pg-rt-cred")) != 0))
        return rc;
    if ((rc = stor_txn_sad_get(t, w->hash, w->sad)) != 0)
        return rc;
    w->sad->remaining--;
    if ((rc = stor_txn_sad_put(t, w->sad)) != 0)
        return rc;
    memset(&rec, 0, sizeof(rec));
    rec.event = STOR_EV_SIGN;
    rec.result = STOR_RES_OK;
    tst_set(rec.user, sizeof(rec.user), "pg-rt");
    if ((rc = stor_txn_audit_append(t, &rec)) != 0)
        return rc;
    return stor_txn_recent_add(t, STOR_RECENT_SIGNS, "pg-rt-cred", 1000, 1, STOR_RES_OK, "client");
}

static int spend_seed_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_sad_put(t, ((spend_write_t *)arg)->sad);
}

static uint64_t spend_write_cost(stor_env_t *env, spend_write_t *w, int ahead)
{
    stor_stats_t before, after;
    uint32_t left = w->sad->remaining;

    w->ahead = ahead;
    stor_int_stats(env, &before);
    ck_assert_int_eq(stor_write(env, spend_write_fn, w), 0);
    stor_int_stats(env, &after);
    ck_assert_uint_eq(w->sad->remaining, left - 1);
    return after.round_trips - before.round_trips;
}

START_TEST(t_pg_spend_round_trips)
{
    stor_env_t *env = pg_store();
    spend_write_t w;

    memset(&w, 0, sizeof(w));
    ck_assert_ptr_nonnull(w.sad = calloc(1, sizeof(*w.sad)));
    memset(w.hash, 0x5b, sizeof(w.hash));
    memcpy(w.sad->hash, w.hash, 32);
    tst_set(w.sad->user, sizeof(w.sad->user), "pg-rt");
    tst_set(w.sad->cred, sizeof(w.sad->cred), "pg-rt-cred");
    w.sad->remaining = 100;
    w.sad->expires_at = INT64_MAX;
    ck_assert_int_eq(stor_write(env, spend_seed_fn, &w), 0);
    (void)spend_write_cost(env, &w, 0); /* the statements prepared on the connection */
    (void)spend_write_cost(env, &w, 1);
    uint64_t one_by_one = spend_write_cost(env, &w, 0), ahead = spend_write_cost(env, &w, 1);
    ck_assert_msg(one_by_one == 4 && ahead == 2, "%" PRIu64 " round trips one by one, %" PRIu64 " read ahead",
                  one_by_one, ahead);
    free(w.sad);
    stor_close(env);
}
END_TEST

/* Writes sent once: a held row written five times costs one statement, sent with the COMMIT; reads in the txn see
 * each new value, and so does everything that could see the row in the database (a walk, a count, a delete, a nested
 * txn rolled back after it). */
typedef struct late_case {
    int step;           /* which part of the test the callback runs */
    int seen;           /* walk: the value of key "late-a" seen */
    size_t rows_pre, rows; /* step 2: the rows counted before and after the delete */
} late_case_t;

static int late_row_fn(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    late_case_t *c = arg;
    (void)t;
    (void)cur;
    if (k->len == 6 && memcmp(k->data, "late-a", 6) == 0 && v->len == 1)
        c->seen = ((const char *)v->data)[0];
    return 0;
}

static int late_nested_fn(stor_txn_t *t, void *arg)
{
    stor_val_t k = STOR_VAL("late-b", 6), v = STOR_VAL("9", 1);
    (void)arg;
    ck_assert_int_eq(stor_kv_put(t, STOR_DB_META, &k, &v, 0), 0);
    return STOR_ERR_INVAL; /* rolled back: late-b's earlier value stays */
}

static int late_fn(stor_txn_t *t, void *arg)
{
    late_case_t *c = arg;
    stor_val_t a = STOR_VAL("late-a", 6), b = STOR_VAL("late-b", 6), v;
    char digit[2] = "0";
    int rc;

    if (c->step == 0) { /* the rows made */
        v = STOR_VAL("0", 1);
        if ((rc = stor_kv_put(t, STOR_DB_META, &a, &v, 0)) != 0)
            return rc;
        return stor_kv_put(t, STOR_DB_META, &b, &v, 0);
    }
    if ((rc = stor_kv_get(t, STOR_DB_META, &a, &v)) != 0 || (rc = stor_kv_get(t, STOR_DB_META, &b, &v)) != 0)
        return rc; /* both held now */
    if (c->step == 1) { /* five writes of each, every one read back */
        for (char d = '1'; d <= '5'; d++) {
            digit[0] = d;
            v = STOR_VAL(digit, 1);
            ck_assert_int_eq(stor_kv_put(t, STOR_DB_META, &a, &v, 0), 0);
            ck_assert_int_eq(stor_kv_put(t, STOR_DB_META, &b, &v, 0), 0);
            ck_assert_int_eq(stor_kv_get(t, STOR_DB_META, &a, &v), 0);
            ck_assert_int_eq((int)v.len, 1);
            ck_assert_int_eq(((const char *)v.data)[0], d);
        }
        return 0;
    }
    /* step 2: a walk sees the new value; a nested txn rolled back keeps it; a delete after a write deletes */
    digit[0] = '7';
    v = STOR_VAL(digit, 1);
    ck_assert_int_eq(stor_kv_put(t, STOR_DB_META, &a, &v, 0), 0);
    ck_assert_int_eq(stor_walk(t, STOR_DB_META, STOR_WALK_ALL, NULL, late_row_fn, c), 0);
    ck_assert_int_eq(stor_kv_put(t, STOR_DB_META, &b, &v, 0), 0);
    ck_assert_int_eq(stor_txn_nested(t, late_nested_fn, NULL), STOR_ERR_INVAL);
    digit[0] = '8';
    v = STOR_VAL(digit, 1);
    ck_assert_int_eq(stor_kv_put(t, STOR_DB_META, &a, &v, 0), 0);
    ck_assert_int_eq(stor_count_rows(t, STOR_DB_META, &c->rows_pre), 0);
    ck_assert_int_eq(stor_kv_put(t, STOR_DB_META, &a, &v, 0), 0);
    ck_assert_int_eq(stor_kv_del(t, STOR_DB_META, &a, NULL), 0);
    ck_assert_int_eq(stor_kv_get(t, STOR_DB_META, &a, &v), STOR_ERR_NOTFOUND);
    return stor_count_rows(t, STOR_DB_META, &c->rows);
}

static int late_read_fn(stor_txn_t *t, void *arg)
{
    char *out = arg;
    stor_val_t a = STOR_VAL("late-a", 6), b = STOR_VAL("late-b", 6), v;
    int rc = stor_kv_get(t, STOR_DB_META, &a, &v);
    out[0] = rc == STOR_ERR_NOTFOUND ? '-' : rc == 0 && v.len == 1 ? ((const char *)v.data)[0] : '?';
    rc = stor_kv_get(t, STOR_DB_META, &b, &v);
    out[1] = rc == 0 && v.len == 1 ? ((const char *)v.data)[0] : '?';
    return 0;
}

START_TEST(t_pg_held_writes_sent_once)
{
    stor_env_t *env = pg_store();
    late_case_t c = {0};
    stor_stats_t before, after;
    char got[3] = "";

    ck_assert_int_eq(stor_write(env, late_fn, &c), 0);
    c.step = 1;
    ck_assert_int_eq(stor_write(env, late_fn, &c), 0); /* the statements prepared on the connection */
    stor_int_stats(env, &before);
    ck_assert_int_eq(stor_write(env, late_fn, &c), 0);
    stor_int_stats(env, &after);
    /* BEGIN, the two reads, one upsert of each row, COMMIT: 6 (14 when each write was sent: 10 upserts) */
    ck_assert_uint_eq(after.statements - before.statements, 6);
    ck_assert_int_eq(stor_read(env, late_read_fn, got), 0);
    ck_assert_str_eq(got, "55");
    c.step = 2;
    ck_assert_int_eq(stor_write(env, late_fn, &c), 0);
    ck_assert_int_eq(c.seen, '7'); /* the walk saw the write before it */
    ck_assert_int_eq(stor_read(env, late_read_fn, got), 0);
    ck_assert_str_eq(got, "-7"); /* late-a deleted after its last write; late-b's 7 kept by the rollback of 9 */
    ck_assert_uint_eq(c.rows, c.rows_pre - 1);
    stor_close(env);
}
END_TEST

/* A write of a held row that could not be kept for the commit (no memory for its copy) is sent at once; the value
 * kept before it, still waiting, must not be sent after it at the COMMIT. Once that older value overwrote the
 * newer one. */
static int late_nomem_fn(stor_txn_t *t, void *arg)
{
    stor_val_t a = STOR_VAL("late-a", 6), v;
    int rc;
    if (arg == NULL) /* the row made */
        return stor_kv_put(t, STOR_DB_META, &a, &STOR_VAL("0", 1), 0);
    if ((rc = stor_kv_get(t, STOR_DB_META, &a, &v)) != 0) /* held now */
        return rc;
    if ((rc = stor_kv_put(t, STOR_DB_META, &a, &STOR_VAL("1", 1), 0)) != 0) /* held: kept for the commit */
        return rc;
    stor_int_pg_fail_copies(1); /* the next copy of a value fails, as malloc would */
    rc = stor_kv_put(t, STOR_DB_META, &a, &STOR_VAL("2", 1), 0); /* not kept: sent now */
    stor_int_pg_fail_copies(0);
    if (rc != 0)
        return rc;
    ck_assert_int_eq(stor_kv_get(t, STOR_DB_META, &a, &v), 0);
    ck_assert_int_eq((int)v.len, 1);
    ck_assert_int_eq(((const char *)v.data)[0], '2');
    return 0;
}

START_TEST(t_pg_held_write_not_kept)
{
    stor_env_t *env = pg_store();
    char got[3] = "";

    ck_assert_int_eq(stor_write(env, late_nomem_fn, NULL), 0);
    ck_assert_int_eq(stor_write(env, late_nomem_fn, env), 0);
    ck_assert_int_eq(stor_read(env, late_read_fn, got), 0);
    ck_assert_int_eq(got[0], '2'); /* the last write, not the value kept before it */
    stor_close(env);
}
END_TEST

/* Two environments (two nodes) whose jobs lock two rows in opposite order: PostgreSQL breaks the deadlock by
 * failing one (40P01), and stor_write runs that batch again, so both writes succeed. */
typedef struct lockstep {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int locked; /* jobs holding their first row */
} lockstep_t;

typedef struct dl_job {
    lockstep_t *ls;
    const char *first, *second;
    int runs;
} dl_job_t;

static int lock_row(stor_txn_t *t, const char *key)
{
    stor_val_t k = STOR_VAL(key, strlen(key)), v;

    return stor_kv_get(t, STOR_DB_META, &k, &v);
}

static int deadlock_fn(stor_txn_t *t, void *arg)
{
    dl_job_t *j = arg;
    stor_val_t k = STOR_VAL(j->first, strlen(j->first)), v = STOR_VAL("x", 1);
    int rc;

    if ((rc = lock_row(t, j->first)) != 0)
        return rc;
    if (j->runs++ == 0) { /* the first run waits until both hold their first row */
        pthread_mutex_lock(&j->ls->mu);
        j->ls->locked++;
        pthread_cond_broadcast(&j->ls->cv);
        while (j->ls->locked < 2)
            pthread_cond_wait(&j->ls->cv, &j->ls->mu);
        pthread_mutex_unlock(&j->ls->mu);
    }
    if ((rc = lock_row(t, j->second)) != 0)
        return rc;
    return stor_kv_put(t, STOR_DB_META, &k, &v, 0);
}

static int seed_fn(stor_txn_t *t, void *arg)
{
    stor_val_t a = STOR_VAL("dl-a", 4), b = STOR_VAL("dl-b", 4), v = STOR_VAL("0", 1);
    int rc;

    (void)arg;
    if ((rc = stor_kv_put(t, STOR_DB_META, &a, &v, 0)) != 0)
        return rc;
    return stor_kv_put(t, STOR_DB_META, &b, &v, 0);
}

/* stor_open reads the migrations' version (csc.schema_version) without locking anything: csc-server's role, which may
 * lock no row of meta, opens the database; none, or a version newer than the code's which does not say (its
 * compatible_from) that this code may still run on it, is refused. */
START_TEST(t_pg_schema_version)
{
    stor_config_t cfg = { .backend = "postgresql", .location = tst_pg_front };
    stor_env_t *env = NULL;
    char sql[256];

    ck_assert_int_eq(stor_open(&cfg, &env), 0);
    stor_close(env);
    env = NULL;
    ck_assert_int_eq(tst_pg_psql("INSERT INTO csc.schema_version (version, name) VALUES (99, '0099_future')"), 0);
    ck_assert_int_eq(stor_open(&cfg, &env), STOR_ERR_CORRUPT); /* says nothing of older code: its own version */
    ck_assert_ptr_null(env);
    /* A rolling upgrade: the newer version says this code may still run on it, or that it may not. */
    snprintf(sql, sizeof(sql), "UPDATE csc.schema_version SET compatible_from = %u WHERE version = 99",
             STOR_PG_SCHEMA_VERSION);
    ck_assert_int_eq(tst_pg_psql(sql), 0);
    ck_assert_int_eq(stor_open(&cfg, &env), 0);
    stor_close(env);
    env = NULL;
    snprintf(sql, sizeof(sql), "UPDATE csc.schema_version SET compatible_from = %u WHERE version = 99",
             STOR_PG_SCHEMA_VERSION + 1);
    ck_assert_int_eq(tst_pg_psql(sql), 0);
    ck_assert_int_eq(stor_open(&cfg, &env), STOR_ERR_CORRUPT);
    ck_assert_ptr_null(env);
    ck_assert_int_eq(tst_pg_psql("DELETE FROM csc.schema_version WHERE version = 99"), 0);
    /* Older than this code: refused (the migrations first). */
    snprintf(sql, sizeof(sql), "CREATE TABLE csc.newest AS SELECT * FROM csc.schema_version WHERE version = %u; "
             "DELETE FROM csc.schema_version WHERE version = %u", STOR_PG_SCHEMA_VERSION, STOR_PG_SCHEMA_VERSION);
    ck_assert_int_eq(tst_pg_psql(sql), 0);
    ck_assert_int_eq(stor_open(&cfg, &env), STOR_ERR_CORRUPT);
    ck_assert_ptr_null(env);
    ck_assert_int_eq(tst_pg_psql("INSERT INTO csc.schema_version SELECT * FROM csc.newest; DROP TABLE csc.newest"), 0);
    ck_assert_int_eq(tst_pg_psql("ALTER TABLE csc.schema_version RENAME TO schema_version_gone"), 0);
    ck_assert_int_eq(stor_open(&cfg, &env), STOR_ERR_CORRUPT);
    ck_assert_int_eq(tst_pg_psql("ALTER TABLE csc.schema_version_gone RENAME TO schema_version"), 0);
    ck_assert_int_eq(stor_open(&cfg, &env), 0);
    stor_close(env);
}
END_TEST

/* ---- the migrations' runner (stor_migrate, stor_pg_migrate) ----------------------------------------------------
 * The cluster's schema was made by stor_migrate (test_stor_main.c pg_init); these cases run it again, with the
 * built-in migrations and with lists that add a bad third one, and leave the database at the built-in version. */

typedef struct {
    char log[512];
} mig_log_t;

static void mig_report(stor_migrate_event_t ev, unsigned version, const char *name, void *arg)
{
    mig_log_t *l = arg;
    size_t n = strlen(l->log);

    snprintf(l->log + n, sizeof(l->log) - n, "%s %u %s;",
             ev == STOR_MIGRATE_FOUND ? "found" : ev == STOR_MIGRATE_APPLIED ? "applied" : "current", version, name);
}

START_TEST(t_pg_migrate_nothing_to_do)
{
    stor_config_t cfg = { .backend = "postgresql", .location = tst_pg_admin };
    mig_log_t l = { "" };
    const char *newest;
    char why[256], want[96];
    unsigned ver = 0;

    ck_assert_uint_eq(stor_migrate_newest(&newest), stor_migrations_count);
    snprintf(want, sizeof(want), "current %zu %s;", stor_migrations_count, newest);
    for (int mode = 0; mode < 2; mode++) {
        l.log[0] = '\0';
        ck_assert_int_eq(stor_migrate(&cfg, mode ? STOR_MIGRATE_UPGRADE : STOR_MIGRATE_INIT, mig_report, &l, &ver, why,
                                      sizeof(why)), 0);
        ck_assert_str_eq(l.log, want);
        ck_assert_uint_eq(ver, stor_migrations_count);
        ck_assert_str_eq(why, "");
    }
}
END_TEST

/* A recorded version with no migration here: refused, reported, nothing applied. */
START_TEST(t_pg_migrate_newer_refused)
{
    stor_config_t cfg = { .backend = "postgresql", .location = tst_pg_admin };
    mig_log_t l = { "" };
    char why[256];
    unsigned ver = 0;
    int rc;

    ck_assert_int_eq(tst_pg_psql("INSERT INTO csc.schema_version (version, name) VALUES (9999, '9999_future')"), 0);
    rc = stor_migrate(&cfg, STOR_MIGRATE_UPGRADE, mig_report, &l, &ver, why, sizeof(why));
    ck_assert_int_eq(tst_pg_psql("DELETE FROM csc.schema_version WHERE version = 9999"), 0);
    ck_assert_int_eq(rc, STOR_ERR_CORRUPT);
    ck_assert_uint_eq(ver, 9999);
    ck_assert_str_eq(l.log, "");
    ck_assert_ptr_nonnull(strstr(why, "schema version 9999 (9999_future)"));
}
END_TEST

/* A failed migration: its SQLSTATE and message come out through why, nothing of its transaction stays, the version is
 * the one before; a migration that records no version row is refused the same way. */
START_TEST(t_pg_migrate_failed_rolled_back)
{
    stor_migration_t m[8];
    mig_log_t l = { "" };
    char why[256], want[96];
    unsigned ver = 0;
    size_t n = stor_migrations_count;

    ck_assert_uint_lt(n, 8);
    memcpy(m, stor_migrations, n * sizeof(m[0]));
    m[n] = (stor_migration_t){ (unsigned)n + 1, "0099_bad", "CREATE TABLE csc.half (x int); SELECT 1 / 0" };
    ck_assert_int_eq(stor_pg_migrate(tst_pg_admin, m, n + 1, 0, mig_report, &l, &ver, why, sizeof(why)), STOR_ERR_INVAL);
    ck_assert_ptr_nonnull(strstr(why, "migration 0099_bad failed: SQLSTATE 22012: division by zero"));
    ck_assert_uint_eq(ver, n);
    snprintf(want, sizeof(want), "found %zu %s;", n, stor_migrations[n - 1].name);
    ck_assert_str_eq(l.log, want);
    ck_assert_int_ne(tst_pg_psql("SELECT 1 FROM csc.half"), 0); /* rolled back */

    m[n].sql = "CREATE TABLE csc.half (x int)"; /* no INSERT INTO csc.schema_version */
    ck_assert_int_eq(stor_pg_migrate(tst_pg_admin, m, n + 1, 0, NULL, NULL, &ver, why, sizeof(why)), STOR_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(why, "migration 0099_bad did not record version"));
    ck_assert_int_ne(tst_pg_psql("SELECT 1 FROM csc.half"), 0);

    /* versions must run 1, 2, ...: a list with a gap is refused before anything is done */
    m[n].version = (unsigned)n + 2;
    ck_assert_int_eq(stor_pg_migrate(tst_pg_admin, m, n + 1, 0, NULL, NULL, &ver, why, sizeof(why)), STOR_ERR_INVAL);
}
END_TEST

/* Only the migrations' owner may run them: csc_sam is refused before anything is read or done. */
START_TEST(t_pg_migrate_other_role_refused)
{
    stor_config_t cfg = { .backend = "postgresql", .location = tst_pg_sam };
    char why[256];
    unsigned ver = 7;

    ck_assert_int_eq(stor_migrate(&cfg, STOR_MIGRATE_INIT, NULL, NULL, &ver, why, sizeof(why)), STOR_ERR_DENIED);
    ck_assert_ptr_nonnull(strstr(why, "role csc_sam may not migrate this database"));
    ck_assert_uint_eq(ver, 0);
}
END_TEST

/* The purge runs on one node at a time: while one environment's write txn holds the lock "csc.purge", another's
 * purge skips its round (0 removed, the expired code still there); once the first ended, the purge removes it. On
 * LMDB (one writer per database anyway) the lock is always taken. */
typedef struct holder {
    lockstep_t *ls;
    int got;
} holder_t;

static int hold_fn(stor_txn_t *t, void *arg)
{
    holder_t *h = arg;

    h->got = stor_txn_try_lock(t, "csc.purge");
    pthread_mutex_lock(&h->ls->mu);
    h->ls->locked = 1;
    pthread_cond_broadcast(&h->ls->cv);
    while (h->ls->locked != 2)
        pthread_cond_wait(&h->ls->cv, &h->ls->mu);
    pthread_mutex_unlock(&h->ls->mu);
    return 0;
}

static int code_put_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_code_put(t, arg);
}

static int code_get_fn(stor_txn_t *t, void *arg)
{
    stor_code_t got;

    return stor_txn_code_get(t, ((stor_code_t *)arg)->hash, &got);
}

static int try_lock_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_try_lock(t, arg);
}

START_TEST(t_pg_purge_one_node)
{
    stor_env_t *n1 = pg_store(), *n2 = pg_store(), *lm = tst_open(tst_path(), 0);
    lockstep_t ls = { .locked = 0 };
    holder_t h = { &ls, -1 };
    stor_code_t code;
    tst_async_t a;

    pthread_mutex_init(&ls.mu, NULL);
    pthread_cond_init(&ls.cv, NULL);
    memset(&code, 0, sizeof(code));
    memset(code.hash, 0x5a, sizeof(code.hash));
    TST_SET(code.client, "c");
    TST_SET(code.user, "u");
    code.expires_at = 1000; /* long past */
    ck_assert_int_eq(stor_write(n1, code_put_fn, &code), 0);
    tst_async_start(&a, n1, hold_fn, &h);
    pthread_mutex_lock(&ls.mu);
    while (ls.locked != 1)
        pthread_cond_wait(&ls.cv, &ls.mu);
    pthread_mutex_unlock(&ls.mu);
    ck_assert_int_eq(h.got, 1);
    ck_assert_int_eq(stor_write(n2, try_lock_fn, "csc.purge"), 0); /* held by n1 */
    ck_assert_int_eq(stor_write(n2, try_lock_fn, "csc.other"), 1);
    ck_assert_int_eq(stor_purge_expired(n2, 2000), 0);
    ck_assert_int_eq(stor_read(n2, code_get_fn, &code), 0); /* skipped: still there */
    pthread_mutex_lock(&ls.mu);
    ls.locked = 2;
    pthread_cond_broadcast(&ls.cv);
    pthread_mutex_unlock(&ls.mu);
    ck_assert_int_eq(tst_async_join(&a), 0);
    ck_assert_int_ge(stor_purge_expired(n2, 2000), 1);
    ck_assert_int_eq(stor_read(n2, code_get_fn, &code), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_write(lm, try_lock_fn, "csc.purge"), 1);
    stor_close(lm);
    stor_close(n1);
    stor_close(n2);
    pthread_cond_destroy(&ls.cv);
    pthread_mutex_destroy(&ls.mu);
}
END_TEST

/* Two nodes append to an empty audit trail at once (no head row yet: the first appends start from "no row"): one
 * chain comes out, seqs 1..2N without a gap or a fork, each record's prev_hash the hash of the one before. */
enum { AUDIT_N = 20 };

static int audit_one_fn(stor_txn_t *t, void *arg)
{
    stor_audit_t a;

    memset(&a, 0, sizeof(a));
    a.event = STOR_EV_ADMIN;
    memcpy(a.user, arg, strlen(arg) + 1);
    return stor_txn_audit_append(t, &a);
}

static void *audit_node(void *arg)
{
    stor_env_t *env = pg_store();
    intptr_t failed = 0;

    for (int i = 0; i < AUDIT_N; i++)
        failed += stor_write(env, audit_one_fn, arg) != 0;
    stor_close(env);
    return (void *)failed;
}

typedef struct chain_walk {
    uint64_t n;
    uint8_t last[32];
    int broken;
} chain_walk_t;

static int chain_fn(const stor_audit_t *rec, void *arg)
{
    chain_walk_t *c = arg;

    if (rec->seq != c->n + 1 || (c->n > 0 && memcmp(rec->prev_hash, c->last, 32) != 0))
        c->broken = 1;
    memcpy(c->last, rec->hash, 32);
    c->n++;
    return 0;
}

START_TEST(t_pg_audit_first_append_race)
{
    pthread_t th[2];
    void *failed[2];
    chain_walk_t c = { 0 };
    stor_env_t *env;

    ck_assert_int_eq(tst_pg_psql("TRUNCATE csc.audit, csc.audit_heads; "
                                 "DELETE FROM csc.meta WHERE k = convert_to('audit_head', 'UTF8')"), 0);
    ck_assert_int_eq(pthread_create(&th[0], NULL, audit_node, "node-a"), 0);
    ck_assert_int_eq(pthread_create(&th[1], NULL, audit_node, "node-b"), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(pthread_join(th[i], &failed[i]), 0);
        ck_assert_msg(failed[i] == NULL, "node %d: %ld appends failed", i, (long)(intptr_t)failed[i]);
    }
    env = pg_store();
    ck_assert_int_eq(stor_audit_each(env, 1, chain_fn, &c), 0);
    ck_assert_uint_eq(c.n, 2 * AUDIT_N);
    ck_assert_int_eq(c.broken, 0);
    stor_close(env);
}
END_TEST

START_TEST(t_pg_deadlock_retried)
{
    stor_env_t *n1 = pg_store(), *n2 = pg_store();
    lockstep_t ls = { .locked = 0 };
    dl_job_t j1 = { &ls, "dl-a", "dl-b", 0 }, j2 = { &ls, "dl-b", "dl-a", 0 };
    tst_async_t a1, a2;

    pthread_mutex_init(&ls.mu, NULL);
    pthread_cond_init(&ls.cv, NULL);
    ck_assert_int_eq(stor_write(n1, seed_fn, NULL), 0);
    tst_async_start(&a1, n1, deadlock_fn, &j1);
    tst_async_start(&a2, n2, deadlock_fn, &j2);
    ck_assert_int_eq(tst_async_join(&a1), 0);
    ck_assert_int_eq(tst_async_join(&a2), 0);
    /* One of them ran again; its second run may meet the same deadlock when it takes its first row back before
     * the other, woken by the rollback, has taken it (each time one of them goes through). */
    ck_assert_int_ge(j1.runs + j2.runs, 3);
    ck_assert_int_le(j1.runs + j2.runs, 6);
    stor_close(n1);
    stor_close(n2);
    pthread_cond_destroy(&ls.cv);
    pthread_mutex_destroy(&ls.mu);
}
END_TEST

/* libpq is loaded, not linked: the loader resolves every function stor_pg.c calls, and names the library it could
 * not load or the first function a library lacks (here libz, which has none of them). */
START_TEST(t_pg_resolve)
{
    size_t n = stor_pg_api_size();
    void *table = calloc(1, n), *zero = calloc(1, n);
    char why[512] = "";

    ck_assert(table != NULL && zero != NULL && n > 0);
    ck_assert_int_eq(stor_pg_resolve("libpq.so.5", table, why, sizeof(why)), 0);
    ck_assert(memcmp(table, zero, n) != 0);
    ck_assert_int_eq(stor_pg_resolve("libz.so.1", table, why, sizeof(why)), STOR_ERR_IO);
    ck_assert_str_eq(why, "libz.so.1 has no symbol PQclear");
    ck_assert(memcmp(table, zero, n) == 0); /* nothing half-resolved is left */
    ck_assert_int_eq(stor_pg_resolve("libcsc-no-such-lib.so.5", table, why, sizeof(why)), STOR_ERR_IO);
    ck_assert_msg(strncmp(why, "cannot load libcsc-no-such-lib.so.5 (", 37) == 0, "%s", why);
    free(zero);
    free(table);
}
END_TEST

/* Figures, printed and not checked (tests never check timings): the cost of a get, a put and a commit over TLS on
 * this machine's loopback, through the backend. Each of the 200 keys is put in a write txn of its own, then read. */
static double us_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e6 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e3;
}

START_TEST(t_pg_figures)
{
    enum { N = 200 };
    stor_bk_env_t *e;
    stor_bk_txn_t *t;
    struct timespec t0;
    double put = 0, commit = 0, get = 0;
    char key[16];
    stor_val_t k, v = STOR_VAL("0123456789abcdef0123456789abcdef", 32), got;

    ck_assert_int_eq(tst_pg_psql("DROP TABLE IF EXISTS csc.race"), 0);
    e = pg_open_tables();
    for (int i = 0; i < N; i++) {
        k = STOR_VAL(key, (size_t)snprintf(key, sizeof(key), "k%05d", i));
        t = pg_begin(e, NULL, STOR_BK_WRITE);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_int_eq(stor_backend_pg.put(e, t, 0, &k, &v, 0), 0);
        put += us_since(&t0);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_int_eq(stor_backend_pg.txn_commit(t), 0);
        commit += us_since(&t0);
    }
    t = pg_begin(e, NULL, STOR_BK_READ);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) {
        k = STOR_VAL(key, (size_t)snprintf(key, sizeof(key), "k%05d", i));
        ck_assert_int_eq(stor_backend_pg.get(e, t, 0, &k, &got), 0);
        ck_assert_uint_eq(got.len, 32);
    }
    get = us_since(&t0);
    stor_backend_pg.txn_abort(t);
    stor_backend_pg.close(e);
    fprintf(stderr, "postgresql over TLS (loopback), per call: get %.0f us, put %.0f us, commit %.0f us (%d each)\n",
            get / N, put / N, commit / N, N);
}
END_TEST

Suite *tst_pg_suite(void)
{
    Suite *s = suite_create("postgresql");
    TCase *tc = tcase_create("pg");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_pg_resolve);
    tcase_add_test(tc, t_pg_counter_race);
    tcase_add_test(tc, t_pg_counter_race_from_nothing);
    tcase_add_test(tc, t_pg_missing_row_locked);
    tcase_add_test(tc, t_pg_connection_cap);
    tcase_add_test(tc, t_pg_pool_keeps_connections);
    tcase_add_test(tc, t_pg_statement_timeout);
    tcase_add_test(tc, t_pg_schema_version);
    tcase_add_test(tc, t_pg_migrate_nothing_to_do);
    tcase_add_test(tc, t_pg_migrate_newer_refused);
    tcase_add_test(tc, t_pg_migrate_failed_rolled_back);
    tcase_add_test(tc, t_pg_migrate_other_role_refused);
    tcase_add_test(tc, t_pg_purge_one_node);
    tcase_add_test(tc, t_pg_figures);
    tcase_add_test(tc, t_pg_audit_first_append_race);
    tcase_add_test(tc, t_pg_nested_reserve);
    tcase_add_test(tc, t_pg_failed_statement);
    tcase_add_test(tc, t_pg_held_rows);
    tcase_add_test(tc, t_pg_put_new);
    tcase_add_test(tc, t_pg_set_key_locks_one_key);
    tcase_add_test(tc, t_pg_store);
    tcase_add_test(tc, t_pg_prefetch_snapshot);
    tcase_add_test(tc, t_pg_prefetch_round_trips);
    tcase_add_test(tc, t_pg_spend_round_trips);
    tcase_add_test(tc, t_pg_held_writes_sent_once);
    tcase_add_test(tc, t_pg_held_write_not_kept);
    tcase_add_test(tc, t_pg_deadlock_retried);
    tcase_add_test(tc, t_pg_restart);
    tcase_add_test(tc, t_pg_restart_write);
    suite_add_tcase(s, tc);
    return s;
}
