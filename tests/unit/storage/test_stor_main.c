/* test_stor_main.c - runner and shared helpers of the storage unit tests. */
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_stor.h"

static char root[PATH_MAX];

/* mkdtemp, not a counter: each test runs in a forked child, so a counter would restart. */
const char *tst_path(void)
{
    static char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/env.XXXXXX", root);

    ck_assert(n > 0 && (size_t)n < sizeof(path));
    ck_assert_ptr_nonnull(mkdtemp(path));
    return path;
}

stor_env_t *tst_open(const char *path, size_t map_size)
{
    stor_config_t cfg = { .location = path, .map_size = map_size };
    stor_env_t *env = NULL;
    int rc = stor_open(&cfg, &env);

    ck_assert_msg(rc == 0, "stor_open(%s): %s", path, stor_strerror(rc));
    ck_assert_ptr_nonnull(env);
    return env;
}

stor_env_t *tst_env;

void tst_env_setup(void)
{
    tst_env = tst_open(tst_path(), 0);
}

void tst_env_teardown(void)
{
    stor_close(tst_env);
    tst_env = NULL;
}

static void *async_main(void *arg)
{
    tst_async_t *a = arg;

    a->rc = stor_write(a->env, a->fn, a->arg);
    return NULL;
}

void tst_async_start(tst_async_t *a, stor_env_t *env, stor_txn_fn fn, void *arg)
{
    a->env = env;
    a->fn = fn;
    a->arg = arg;
    a->rc = 1;
    ck_assert_int_eq(pthread_create(&a->th, NULL, async_main, a), 0);
}

int tst_async_join(tst_async_t *a)
{
    ck_assert_int_eq(pthread_join(a->th, NULL), 0);
    return a->rc;
}

static int block_fn(stor_txn_t *t, void *arg)
{
    tst_blocker_t *b = arg;

    (void)t;
    pthread_mutex_lock(&b->mu);
    b->entered = 1;
    pthread_cond_broadcast(&b->cv);
    while (!b->released)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

void tst_blocker_start(tst_blocker_t *b, stor_env_t *env)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    tst_async_start(&b->job, env, block_fn, b);
    pthread_mutex_lock(&b->mu);
    while (!b->entered)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

void tst_blocker_release(tst_blocker_t *b)
{
    pthread_mutex_lock(&b->mu);
    b->released = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

int tst_blocker_join(tst_blocker_t *b)
{
    int rc = tst_async_join(&b->job);

    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    return rc;
}

void tst_wait_queued(stor_env_t *env, size_t n)
{
    const struct timespec ms = { 0, 1000000 };

    while (stor_int_queued(env) != n)
        nanosleep(&ms, NULL);
}

void tst_set(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    ck_assert_uint_lt(n, size);
    memcpy(dst, src, n + 1);
}

void tst_user(stor_user_t *u, const char *name, uint32_t failed)
{
    memset(u, 0, sizeof(*u));
    TST_SET(u->name, name);
    u->status = STOR_USER_ACTIVE;
    u->pw_verifier_len = 3;
    memcpy(u->pw_verifier, "v$1", 3);
    u->failed_logins = failed;
    u->created_at = 1700000000;
}

static int put_user_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_user_put(t, arg, 0);
}

int tst_put_user(stor_env_t *env, const stor_user_t *u)
{
    return stor_write(env, put_user_fn, (void *)u);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    SRunner *sr;
    int failed, n;

    if (argc == 3 && strcmp(argv[1], TST_CHILD_ARG) == 0)
        return tst_audit_child(argv[2]);
    n = snprintf(root, sizeof(root), "%s/test_storage.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= sizeof(root) || mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    sr = srunner_create(tst_codec_suite());
    srunner_add_suite(sr, tst_env_suite());
    srunner_add_suite(sr, tst_guard_suite());
    srunner_add_suite(sr, tst_data_suite());
    srunner_add_suite(sr, tst_oauth_suite());
    srunner_add_suite(sr, tst_scan_suite());
    srunner_add_suite(sr, tst_async_suite());
    srunner_add_suite(sr, tst_websession_suite());
    srunner_add_suite(sr, tst_user_approval_suite());
    srunner_add_suite(sr, tst_operator_suite());
    srunner_add_suite(sr, tst_walk_suite());
    srunner_add_suite(sr, tst_account_suite());
    srunner_add_suite(sr, tst_enroll_suite());
    srunner_add_suite(sr, tst_backend_suite());
    srunner_add_suite(sr, tst_copy_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
