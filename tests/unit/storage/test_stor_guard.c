/* test_stor_guard.c - stor_env_restrict_writes: writes outside the allowed tables refused (put, delete, cursor
 * delete), the job's transaction undone, the batch's other jobs kept, one line on stderr per table, and the
 * restriction only ever narrowed. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_stor.h"

static const char *const front[] = {"web_sessions", "async_results", "pars"}; /* server/srv_base.c's */

static void mk_async(stor_async_t *a, uint8_t key)
{
    memset(a, 0, sizeof(*a));
    memset(a->hash, key, 32);
    TST_SET(a->user, "alice");
    TST_SET(a->cred, "c1");
    a->state = STOR_ASYNC_PENDING;
    a->created_ms = 1000;
    a->expires_ms = INT64_MAX / 2;
}

static int put_async_fn(stor_txn_t *t, void *arg)
{
    stor_async_t a;

    mk_async(&a, *(const uint8_t *)arg);
    return stor_txn_async_put(t, &a);
}

static int put_user_fn(stor_txn_t *t, void *arg)
{
    stor_user_t u;

    tst_user(&u, arg, 0);
    return stor_txn_user_put(t, &u, 0);
}

/* An allowed write, then a refused one: the job as a whole must be undone. */
static int async_then_user_fn(stor_txn_t *t, void *arg)
{
    int rc = put_async_fn(t, arg);

    return rc != 0 ? rc : put_user_fn(t, "mixed");
}

static int del_user_fn(stor_txn_t *t, void *arg)
{
    return stor_del_by_name(t, STOR_DB_USERS, arg);
}

static int walk_del_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    (void)k;
    (void)v;
    (void)arg;
    return stor_walk_del(t, cur);
}

static int walk_del_users_fn(stor_txn_t *t, void *arg)
{
    (void)arg;
    return stor_walk(t, STOR_DB_USERS, STOR_WALK_ALL, NULL, walk_del_row, NULL);
}

static int get_async_fn(stor_txn_t *t, void *arg)
{
    stor_async_t a;
    uint8_t h[32];

    memset(h, *(const uint8_t *)arg, 32);
    return stor_txn_async_get(t, h, &a);
}

static int async_exists(stor_env_t *env, uint8_t key)
{
    return stor_read(env, get_async_fn, &key) == STOR_OK;
}

/* stderr sent to a file between capture_begin and capture_end, which counts the lines that name the table. */
typedef struct {
    int saved;
    char path[PATH_MAX];
} capture_t;

static void capture_begin(capture_t *c)
{
    ck_assert_int_lt(snprintf(c->path, sizeof(c->path), "%s/stderr", tst_path()), (int)sizeof(c->path));
    fflush(stderr);
    c->saved = dup(2);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(c->saved, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    close(fd);
}

static unsigned capture_end(capture_t *c, const char *table)
{
    char line[512], needle[96];
    unsigned n = 0;
    FILE *f;

    fflush(stderr);
    ck_assert_int_eq(dup2(c->saved, 2), 2);
    close(c->saved);
    snprintf(needle, sizeof(needle), "table %s refused", table);
    ck_assert_ptr_nonnull(f = fopen(c->path, "r"));
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

START_TEST(t_guard_args)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    const char *bad[] = {"web_sessions", "no_such_table"};
    const char *null_name[] = {NULL};

    ck_assert_int_eq(stor_env_restrict_writes(NULL, front, 2), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_env_restrict_writes(env, NULL, 1), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_env_restrict_writes(env, bad, 2), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_env_restrict_writes(env, null_name, 1), STOR_ERR_INVAL);
    /* nothing changed by a refused call */
    ck_assert_int_eq(stor_write(env, put_user_fn, "alice"), STOR_OK);
    ck_assert_str_eq(stor_strerror(STOR_ERR_DENIED), "this process may not write that table");
    stor_close(env);
}
END_TEST

START_TEST(t_guard_denies_other_tables)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    uint8_t k1 = 1, k2 = 2;
    stor_user_t u;
    capture_t cap;

    ck_assert_int_eq(stor_write(env, put_user_fn, "alice"), STOR_OK);
    ck_assert_int_eq(stor_env_restrict_writes(env, front, 2), STOR_OK);
    capture_begin(&cap);
    ck_assert_int_eq(stor_write(env, put_user_fn, "bob"), STOR_ERR_DENIED);       /* put */
    ck_assert_int_eq(stor_write(env, put_user_fn, "carol"), STOR_ERR_DENIED);
    ck_assert_int_eq(stor_write(env, del_user_fn, "alice"), STOR_ERR_DENIED);     /* delete */
    ck_assert_int_eq(stor_write(env, walk_del_users_fn, NULL), STOR_ERR_DENIED);  /* cursor delete */
    ck_assert_int_eq(stor_write(env, async_then_user_fn, &k2), STOR_ERR_DENIED);  /* the whole job undone */
    ck_assert_uint_eq(capture_end(&cap, "users"), 1);                             /* said once */
    ck_assert_int_eq(stor_user_get(env, "bob", &u), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_user_get(env, "mixed", &u), STOR_ERR_NOTFOUND);
    ck_assert_int_eq(stor_user_get(env, "alice", &u), STOR_OK);                   /* reads still work */
    ck_assert(!async_exists(env, k2));
    /* the allowed tables are still written */
    ck_assert_int_eq(stor_write(env, put_async_fn, &k1), STOR_OK);
    ck_assert(async_exists(env, k1));
    stor_close(env);
}
END_TEST

START_TEST(t_guard_batch_others_kept)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    tst_async_t ja, jb, jc;
    tst_blocker_t b;
    uint8_t k1 = 1, k3 = 3;
    stor_user_t u;
    capture_t cap;

    ck_assert_int_eq(stor_env_restrict_writes(env, front, 2), STOR_OK);
    capture_begin(&cap);
    tst_blocker_start(&b, env);
    tst_async_start(&ja, env, put_async_fn, &k1);
    tst_async_start(&jb, env, put_user_fn, "dave");
    tst_async_start(&jc, env, put_async_fn, &k3);
    tst_wait_queued(env, 3);
    tst_blocker_release(&b);
    ck_assert_int_eq(tst_blocker_join(&b), STOR_OK);
    ck_assert_int_eq(tst_async_join(&ja), STOR_OK);
    ck_assert_int_eq(tst_async_join(&jb), STOR_ERR_DENIED);
    ck_assert_int_eq(tst_async_join(&jc), STOR_OK);
    ck_assert_uint_eq(capture_end(&cap, "users"), 1);
    ck_assert(async_exists(env, k1));
    ck_assert(async_exists(env, k3));
    ck_assert_int_eq(stor_user_get(env, "dave", &u), STOR_ERR_NOTFOUND);
    stor_close(env);
}
END_TEST

START_TEST(t_guard_only_narrows)
{
    stor_env_t *env = tst_open(tst_path(), 0);
    const char *sessions[] = {"web_sessions"};
    const char *users[] = {"users", "async_results"};
    uint8_t k1 = 1;

    ck_assert_int_eq(stor_env_restrict_writes(env, front, 2), STOR_OK);
    ck_assert_int_eq(stor_env_restrict_writes(env, sessions, 1), STOR_OK);
    ck_assert_int_eq(stor_write(env, put_async_fn, &k1), STOR_ERR_DENIED);
    /* a later call cannot open a table again */
    ck_assert_int_eq(stor_env_restrict_writes(env, users, 2), STOR_OK);
    ck_assert_int_eq(stor_write(env, put_user_fn, "erin"), STOR_ERR_DENIED);
    ck_assert_int_eq(stor_write(env, put_async_fn, &k1), STOR_ERR_DENIED);
    ck_assert(!async_exists(env, k1));
    stor_close(env);
}
END_TEST

Suite *tst_guard_suite(void)
{
    Suite *s = suite_create("stor_guard");
    TCase *tc = tcase_create("guard");

    tcase_add_test(tc, t_guard_args);
    tcase_add_test(tc, t_guard_denies_other_tables);
    tcase_add_test(tc, t_guard_batch_others_kept);
    tcase_add_test(tc, t_guard_only_narrows);
    suite_add_tcase(s, tc);
    return s;
}
