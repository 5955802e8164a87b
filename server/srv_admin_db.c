/*
 * srv_admin_db.c - csc-admin db ...: the database itself, below the operators' commands.
 *
 *   db copy --from BACKEND:LOCATION [--to BACKEND:LOCATION]
 *       moves an installation to another database (from LMDB to PostgreSQL, or to a fresh LMDB folder): every
 *       record, the audit trail and its signed heads, as they are (storage/stor_copy.c), into a database that holds
 *       nothing yet; --to defaults to the configuration's storage. Each table is then checked (rows and a digest
 *       of them) and reported; the destination gets one audit record of the copy, after the check.
 *
 *   db init [--db BACKEND:LOCATION]
 *   db migrate [--db BACKEND:LOCATION]
 *       bring the database's schema to the version this csc-admin needs (storage/stor_migrate.c: the migrations of
 *       storage/migrations/ are compiled in); --db defaults to the configuration's storage. init makes a new
 *       database (and completes one that lacks migrations); migrate upgrades one that init made, and tells to run
 *       init on one that has no schema version yet. On PostgreSQL they connect as the storage conninfo's role, which
 *       must be the migrations' owner (csc_admin: docs/operations.md). A database newer than this csc-admin is
 *       refused and left as it is. On LMDB there is nothing to migrate: init creates the environment, both report
 *       its schema version.
 *
 * These run without an operator session: the operators are part of what is copied (or of a database that has no
 * schema yet), and whoever runs them already holds the databases' files or credentials. The copy reads one snapshot: the service must be stopped first
 * (docs/operations.md), or what it writes meanwhile stays behind.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv.h"
#include "srv_i18n.h"
#include "stor.h"

typedef struct {
    char backend[16];
    const char *location;
} db_spec_t;

/* BACKEND:LOCATION from the command line (an lmdb location is a path as given, relative to the current folder). */
static int parse_spec(const char *cmd, const char *opt, const char *v, db_spec_t *out)
{
    int rc = stor_spec_split(v, out->backend, sizeof(out->backend), &out->location);

    if (rc == STOR_ERR_NOTFOUND) {
        fprintf(stderr, _("csc-admin: db %s: %s: unknown backend \"%s\" (backends: %s)\n"), cmd, opt, out->backend,
                stor_backend_names());
        return -1;
    }
    if (rc != STOR_OK || out->location[0] == '\0') {
        fprintf(stderr, _("csc-admin: db %s: %s: expected BACKEND:LOCATION (backends: %s), got \"%s\"\n"), cmd, opt,
                stor_backend_names(), v != NULL ? v : "");
        return -1;
    }
    return 0;
}

/* Whether two specs name one database: the same text, or for lmdb the same folder by another path (opening one
 * LMDB environment twice in a process breaks its locks). */
static int same_database(const db_spec_t *a, const db_spec_t *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (strcmp(a->backend, b->backend) != 0)
        return 0;
    if (strcmp(a->location, b->location) == 0)
        return 1;
    return strcmp(a->backend, "lmdb") == 0 && realpath(a->location, ra) != NULL && realpath(b->location, rb) != NULL &&
           strcmp(ra, rb) == 0;
}

static int open_spec(const srv_config_t *cfg, const char *what, const db_spec_t *s, stor_env_t **env)
{
    stor_config_t sc = {.backend = s->backend, .location = s->location, .map_size = cfg->lmdb_map_size};
    int rc = stor_open(&sc, env);
    if (rc != STOR_OK)
        fprintf(stderr, "csc-admin: db copy: %s %s:%s: %s\n", what, s->backend, s->location, stor_strerror(rc));
    return rc == STOR_OK ? 0 : -1;
}

typedef struct {
    size_t tables, rows;
} copy_sum_t;

static void report_table(const char *table, size_t rows, void *arg)
{
    copy_sum_t *sum = arg;
    sum->tables++;
    sum->rows += rows;
    printf("  %-16s %zu\n", table, rows);
}

typedef struct {
    char detail[256];
} copy_audit_t;

static int audit_copy_fn(stor_txn_t *t, void *arg)
{
    copy_audit_t *c = arg;
    stor_audit_t rec;
    memset(&rec, 0, sizeof(rec));
    rec.event = STOR_EV_ADMIN;
    rec.result = STOR_RES_OK;
    snprintf(rec.user, sizeof(rec.user), "-");
    snprintf(rec.detail, sizeof(rec.detail), "%s", c->detail);
    return stor_txn_audit_append(t, &rec);
}

static int db_copy(const srv_config_t *cfg, int argc, char **argv)
{
    db_spec_t from = {{0}, NULL}, to = {{0}, NULL};
    stor_env_t *src = NULL, *dst = NULL;
    copy_sum_t sum = {0, 0};
    const char *table = NULL;
    int have_from = 0, rc = 1;

    snprintf(to.backend, sizeof(to.backend), "%s", cfg->storage.backend);
    to.location = cfg->storage.location;
    for (int i = 0; i < argc; i++) {
        if (i + 1 >= argc || (strcmp(argv[i], "--from") != 0 && strcmp(argv[i], "--to") != 0)) {
            fprintf(stderr, _("csc-admin: db copy: usage: db copy --from BACKEND:LOCATION [--to BACKEND:LOCATION]\n"));
            return 2;
        }
        int is_from = strcmp(argv[i], "--from") == 0;
        if (parse_spec("copy", argv[i], argv[i + 1], is_from ? &from : &to) != 0)
            return 2;
        have_from |= is_from;
        i++;
    }
    if (!have_from) {
        fprintf(stderr, _("csc-admin: db copy: --from BACKEND:LOCATION is required\n"));
        return 2;
    }
    if (same_database(&from, &to)) {
        fprintf(stderr, _("csc-admin: db copy: --from and --to name the same database\n"));
        return 2;
    }
    if (open_spec(cfg, "from", &from, &src) != 0 || open_spec(cfg, "to", &to, &dst) != 0)
        goto out;
    printf(_("copying %s:%s to %s:%s\n"), from.backend, from.location, to.backend, to.location);
    int crc = stor_copy(src, dst, report_table, &sum, &table);
    if (crc == STOR_ERR_EXISTS) {
        fprintf(stderr, _("csc-admin: db copy: %s:%s is not empty (table %s has records): copy only into a new database\n"),
                to.backend, to.location, table);
        goto out;
    }
    if (crc != STOR_OK) {
        fprintf(stderr, "csc-admin: db copy: %s%s: %s%s\n", table != NULL ? _("table ") : "", table != NULL ? table : "",
                stor_strerror(crc),
                crc == STOR_ERR_CORRUPT ? _(" (the copy differs from the source: was the service still running?)") : "");
        goto out;
    }
    copy_audit_t a;
    snprintf(a.detail, sizeof(a.detail), "action=db.copy from=%s:%s tables=%zu rows=%zu", from.backend, from.location,
             sum.tables, sum.rows);
    int arc = stor_write(dst, audit_copy_fn, &a);
    if (arc != STOR_OK) {
        fprintf(stderr, _("csc-admin: db copy: the copy is complete, but its audit record failed: %s\n"),
                stor_strerror(arc));
        goto out;
    }
    printf(_("copied and checked: %zu tables, %zu records\n"), sum.tables, sum.rows);
    rc = 0;
out:
    stor_close(dst);
    stor_close(src);
    return rc;
}

static void report_migration(stor_migrate_event_t ev, unsigned version, const char *name, void *arg)
{
    (void)arg;
    switch (ev) {
    case STOR_MIGRATE_FOUND: printf(_("the database is at version %u (%s)\n"), version, name); break;
    case STOR_MIGRATE_APPLIED: printf(_("applied %s\n"), name); break;
    case STOR_MIGRATE_CURRENT: printf(_("already at version %u (%s), nothing to do\n"), version, name); break;
    }
    fflush(stdout); /* each line as it happens: a later migration may take long, or fail */
}

/* db init / db migrate [--db BACKEND:LOCATION] */
static int db_migrate(const srv_config_t *cfg, const char *cmd, stor_migrate_mode_t mode, int argc, char **argv)
{
    db_spec_t db = {{0}, NULL};
    char why[512];
    const char *newest_name;
    unsigned newest = stor_migrate_newest(&newest_name), ver = 0;
    int rc;

    snprintf(db.backend, sizeof(db.backend), "%s", cfg->storage.backend);
    db.location = cfg->storage.location;
    if (argc != 0 && (argc != 2 || strcmp(argv[0], "--db") != 0)) {
        fprintf(stderr, _("csc-admin: db %s: usage: db %s [--db BACKEND:LOCATION]\n"), cmd, cmd);
        return 2;
    }
    if (argc == 2 && parse_spec(cmd, argv[0], argv[1], &db) != 0)
        return 2;
    stor_config_t sc = {.backend = db.backend, .location = db.location, .map_size = cfg->lmdb_map_size};
    if (strcmp(db.backend, "lmdb") == 0) {
        rc = stor_migrate(&sc, mode, NULL, NULL, &ver, why, sizeof(why));
        if (rc != STOR_OK) {
            fprintf(stderr, "csc-admin: db %s: lmdb:%s: %s%s\n", cmd, db.location, stor_strerror(rc),
                    rc == STOR_ERR_CORRUPT ? _(" (another schema version than this csc-admin's, or not a csc database)")
                                           : "");
            return 1;
        }
        printf(_("lmdb:%s: schema version %u (LMDB has no migrations: opening the environment creates it or checks "
               "it)\n"), db.location, ver);
        return 0;
    }
    /* The location is a conninfo: never printed (it names key files, and could hold a password). */
    rc = stor_migrate(&sc, mode, report_migration, NULL, &ver, why, sizeof(why));
    switch (rc) {
    case STOR_OK:
        return 0;
    case STOR_ERR_NOTFOUND:
        fprintf(stderr, _("csc-admin: db %s: the database has no schema version (no csc.schema_version): it was never "
                "initialised; run csc-admin db init\n"), cmd);
        return 1;
    case STOR_ERR_CORRUPT:
        if (ver > newest) {
            fprintf(stderr, _("csc-admin: db %s: the database has schema version %u, newer than this csc-admin's %u "
                    "(%s): upgrade csc-admin first; nothing changed\n"), cmd, ver, newest, newest_name);
            return 1;
        }
        break;
    case STOR_ERR_UNAVAILABLE:
        fprintf(stderr, _("csc-admin: db %s: %s (check the storage conninfo: host, port, certificates)\n"), cmd,
                stor_strerror(rc));
        return 1;
    default:
        break;
    }
    /* why: the failed statement's SQLSTATE and message (a failed migration is rolled back whole), or the role. */
    fprintf(stderr, "csc-admin: db %s: %s\n", cmd, why[0] != '\0' ? why : stor_strerror(rc));
    return 1;
}

int srv_admin_db(const srv_config_t *cfg, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "copy") == 0)
        return db_copy(cfg, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "init") == 0)
        return db_migrate(cfg, "init", STOR_MIGRATE_INIT, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "migrate") == 0)
        return db_migrate(cfg, "migrate", STOR_MIGRATE_UPGRADE, argc - 1, argv + 1);
    fprintf(stderr, _("csc-admin: db: unknown command (db copy, db init, db migrate)\n"));
    return 2;
}
