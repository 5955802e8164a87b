/* test_stor_main.c - runner and shared helpers of the storage unit tests. */
#include <arpa/inet.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_stor.h"

extern char **environ;

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

/* ---- the PostgreSQL run (TST_PG_ARG) -------------------------------------------- */

const char *tst_pg_admin, *tst_pg_sam, *tst_pg_front;
static const char *pg_script;
static char pg_dir[PATH_MAX];
static char pg_admin[1024], pg_sam[1024], pg_front[1024];

static int run_argv(char *const argv[])
{
    pid_t pid;
    int st;

    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int tst_pg_script(const char *cmd)
{
    /* start: the schema is there already (pg_init), and these tests run no csc-admin */
    char *argv[] = { (char *)pg_script, (char *)cmd, pg_dir, strcmp(cmd, "start") == 0 ? "--no-migrate" : NULL, NULL };

    return run_argv(argv);
}

int tst_pg_psql(const char *sql)
{
    char *argv[] = { "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", (char *)tst_pg_admin, "-c",
                     "SET client_min_messages = warning", "-c", (char *)sql, NULL };

    return run_argv(argv);
}

/* A TCP port of 127.0.0.1 free right now (the kernel's pick). */
static int free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* NAME='VALUE' of DIR/pg.env into out. */
static int pg_env_get(const char *name, char *out, size_t n)
{
    char path[PATH_MAX + 16], line[2048];
    size_t nl = strlen(name);
    FILE *f;
    int found = 0;

    snprintf(path, sizeof(path), "%s/pg.env", pg_dir);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\''))
            line[--len] = '\0';
        if (strncmp(line, name, nl) == 0 && line[nl] == '=' && line[nl + 1] == '\'' && len - nl - 2 < n) {
            memcpy(out, line + nl + 2, len - nl - 1);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* The schema, by stor_migrate as the schema's owner: 0 or 1. */
static int pg_init(void)
{
    stor_config_t cfg = { .backend = "postgresql", .location = pg_admin };
    unsigned ver = 0;
    char why[512];
    int rc = stor_migrate(&cfg, STOR_MIGRATE_INIT, NULL, NULL, &ver, why, sizeof(why));

    if (rc != STOR_OK || ver != stor_migrate_newest(NULL)) {
        fprintf(stderr, "stor_migrate: %s%s%s (version %u)\n", stor_strerror(rc), why[0] != '\0' ? ": " : "", why, ver);
        return 1;
    }
    return 0;
}

/* Start a cluster under the run's root: 0, 77 (PostgreSQL is not installed: skipped) or 1. */
static int pg_start(void)
{
    char port[16];

    if (access("/usr/lib/postgresql/15/bin/initdb", X_OK) != 0) {
        fprintf(stderr, "SKIP: PostgreSQL 15 is not installed (scripts/deps installs it): the postgresql backend is "
                        "not tested\n");
        return 77;
    }
    /* As root, the cluster runs as postgres, which passes through the root to its directory. */
    if (chmod(root, 0711) != 0 || snprintf(pg_dir, sizeof(pg_dir), "%s/pg", root) >= (int)sizeof(pg_dir))
        return 1;
    for (int tries = 0; tries < 3; tries++) { /* another process may take the free port first */
        /* The schema comes from storage's own runner (stor_migrate, what csc-admin db init calls): these tests need
         * no csc-admin, and the backend's cases run on a database that runner made. */
        char *argv[] = { (char *)pg_script, "start", pg_dir, "--port", port, "--nodes", "1", "--no-migrate", NULL };
        snprintf(port, sizeof(port), "%d", free_port());
        if (run_argv(argv) == 0) {
            if (!pg_env_get("PG_ADMIN", pg_admin, sizeof(pg_admin)) ||
                !pg_env_get("PG_NODE1_SAM", pg_sam, sizeof(pg_sam)) ||
                !pg_env_get("PG_NODE1_FRONT", pg_front, sizeof(pg_front)))
                return 1;
            tst_pg_admin = pg_admin;
            tst_pg_sam = pg_sam;
            tst_pg_front = pg_front;
            return pg_init();
        }
    }
    fprintf(stderr, "scripts/pg start failed\n");
    return 1;
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    SRunner *sr;
    int failed, n, pg = argc == 3 && strcmp(argv[1], TST_PG_ARG) == 0;

    if (argc == 3 && strcmp(argv[1], TST_CHILD_ARG) == 0)
        return tst_audit_child(argv[2]);
    n = snprintf(root, sizeof(root), "%s/test_storage.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= sizeof(root) || mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    if (pg) {
        pg_script = argv[2];
        if ((n = pg_start()) != 0) {
            tst_pg_script("stop");
            nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
            return n;
        }
        sr = srunner_create(tst_backend_suite());
        srunner_add_suite(sr, tst_pg_suite());
        srunner_add_suite(sr, tst_par_suite());
    } else {
        sr = srunner_create(tst_codec_suite());
        srunner_add_suite(sr, tst_env_suite());
        srunner_add_suite(sr, tst_guard_suite());
        srunner_add_suite(sr, tst_data_suite());
        srunner_add_suite(sr, tst_oauth_suite());
        srunner_add_suite(sr, tst_scan_suite());
        srunner_add_suite(sr, tst_async_suite());
        srunner_add_suite(sr, tst_websession_suite());
        srunner_add_suite(sr, tst_par_suite());
        srunner_add_suite(sr, tst_user_approval_suite());
        srunner_add_suite(sr, tst_operator_suite());
        srunner_add_suite(sr, tst_walk_suite());
        srunner_add_suite(sr, tst_account_suite());
        srunner_add_suite(sr, tst_enroll_suite());
        srunner_add_suite(sr, tst_backend_suite());
        srunner_add_suite(sr, tst_copy_suite());
    }
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (pg)
        tst_pg_script("stop");
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
