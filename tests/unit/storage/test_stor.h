/* test_stor.h - shared helpers of the storage unit tests. */
#ifndef TEST_STOR_H
#define TEST_STOR_H

#include <check.h>
#include <pthread.h>

#include "stor.h"
#include "stor_int.h"

Suite *tst_codec_suite(void);
Suite *tst_env_suite(void);
Suite *tst_data_suite(void);
Suite *tst_oauth_suite(void);
Suite *tst_scan_suite(void);
Suite *tst_async_suite(void);
Suite *tst_websession_suite(void);
Suite *tst_par_suite(void); /* both runs: LMDB, and PostgreSQL as csc_front */
Suite *tst_user_approval_suite(void);
Suite *tst_operator_suite(void);
Suite *tst_walk_suite(void);
Suite *tst_enroll_suite(void);
Suite *tst_account_suite(void);
Suite *tst_backend_suite(void);
Suite *tst_copy_suite(void);
Suite *tst_guard_suite(void);
Suite *tst_pg_suite(void);

/** argv[1] that runs the PostgreSQL suites (argv[2]: scripts/pg) against a cluster this run starts and stops. */
#define TST_PG_ARG "--pg"
/** With TST_PG_ARG: the cluster's libpq conninfo of the schema's owner (csc_admin) and of node 1's csc_sam role;
 *  NULL otherwise (then only LMDB is tested). */
extern const char *tst_pg_admin, *tst_pg_sam, *tst_pg_front; /* and node 1's csc_front (csc-server's role) */
/** Run scripts/pg CMD on the run's cluster (stop, start: without migrating); its exit status. */
int tst_pg_script(const char *cmd);
/** Run one SQL command as csc_admin through psql; its exit status. */
int tst_pg_psql(const char *sql);

/** argv[1] that makes the test binary act as the second process of the audit test. */
#define TST_CHILD_ARG "--audit-child"
/** Body of that second process: append to the environment at path; 0 on success. */
int tst_audit_child(const char *path);

/** A fresh empty directory under the run's temporary root (removed at the end of the run). */
const char *tst_path(void);
/** Open an environment at path (map_size 0 = default); fails the test on error. */
stor_env_t *tst_open(const char *path, size_t map_size);

/** A fixture: tst_env is a fresh environment in a new directory for each test (closed after it). */
extern stor_env_t *tst_env;
void tst_env_setup(void);
void tst_env_teardown(void);

/** A stor_write() running on its own thread. */
typedef struct tst_async {
    pthread_t th;
    stor_env_t *env;
    stor_txn_fn fn;
    void *arg;
    int rc;
} tst_async_t;
void tst_async_start(tst_async_t *a, stor_env_t *env, stor_txn_fn fn, void *arg);
int tst_async_join(tst_async_t *a);

/** A write job that holds its batch open until released, so later jobs queue up behind it. */
typedef struct tst_blocker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, released;
    tst_async_t job;
} tst_blocker_t;
void tst_blocker_start(tst_blocker_t *b, stor_env_t *env);
void tst_blocker_release(tst_blocker_t *b);
int tst_blocker_join(tst_blocker_t *b);
/** Wait (without a deadline: Check's timeout is the limit) until n jobs are queued. */
void tst_wait_queued(stor_env_t *env, size_t n);

/** Copy a C string into a char array, failing the test if it does not fit. */
void tst_set(char *dst, size_t size, const char *src);
#define TST_SET(dst, src) tst_set((dst), sizeof(dst), (src))

/** A user record with the given name and failed_logins. */
void tst_user(stor_user_t *u, const char *name, uint32_t failed);
/** Write u (create_only = 0) in its own stor_write. */
int tst_put_user(stor_env_t *env, const stor_user_t *u);

#endif
