/*
 * stor_migrate.c - stor_migrate(): a database's schema brought to the version this code needs (csc-admin db init,
 * db migrate), on any backend.
 *
 * PostgreSQL's schema is the files of storage/migrations/, compiled in (stor_migrations[], generated at build time
 * by cmake/embed_migrations.cmake, which also makes the build fail if the newest file is not STOR_PG_SCHEMA_VERSION):
 * the runner that applies them is stor_pg.c's stor_pg_migrate, the only code that talks to libpq. There is no other
 * runner (scripts/pg calls csc-admin db init / db migrate too). LMDB has no migration files: stor_open creates an
 * environment with its schema row or checks the row of an existing one.
 */
#include <stdio.h>
#include <string.h>

#include "stor_int.h"

unsigned stor_migrate_newest(const char **name)
{
    const stor_migration_t *m = &stor_migrations[stor_migrations_count - 1];

    if (name != NULL)
        *name = m->name;
    return m->version;
}

int stor_migrate(const stor_config_t *cfg, stor_migrate_mode_t mode, stor_migrate_report_fn report, void *arg,
                 unsigned *db_version, char *why, size_t n)
{
    const stor_backend_t *be;
    stor_env_t *env = NULL;
    unsigned ver = 0;
    char unwanted[128];
    int rc;

    if (why == NULL || n == 0) { /* the caller wants no detail */
        why = unwanted;
        n = sizeof(unwanted);
    }
    why[0] = '\0';
    if (db_version != NULL)
        *db_version = 0;
    if (cfg == NULL || cfg->location == NULL || (mode != STOR_MIGRATE_INIT && mode != STOR_MIGRATE_UPGRADE) ||
        (be = stor_backend_find(cfg->backend)) == NULL)
        return STOR_ERR_INVAL;
    if (be == &stor_backend_pg) {
        rc = stor_pg_migrate(cfg->location, stor_migrations, stor_migrations_count, mode == STOR_MIGRATE_INIT, report,
                             arg, &ver, why, n);
        if (db_version != NULL)
            *db_version = ver;
        if (rc != STOR_OK)
            return rc;
        /* The last check: the database opens as the services open it (its tables, its version). */
        if ((rc = stor_open(cfg, &env)) != STOR_OK) {
            snprintf(why, n, "the migrated database does not open: %s", stor_strerror(rc));
            return rc;
        }
        stor_close(env);
        return STOR_OK;
    }
    /* LMDB: opening creates the environment or checks its schema row (stor_env.c check_schema). */
    if ((rc = stor_open(cfg, &env)) != STOR_OK)
        return rc;
    stor_close(env);
    if (db_version != NULL)
        *db_version = STOR_SCHEMA_VERSION;
    if (report != NULL)
        report(STOR_MIGRATE_CURRENT, STOR_SCHEMA_VERSION, be->name, arg);
    return STOR_OK;
}
