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
 *   db restore FILE [--db lmdb:DIR] [--key PEM]
 *       a file of db backup (written by srv_admin_db_backup, below, for csc-admin db backup [auditor], srv_admin.c)
 *       into a new or empty folder (--db defaults to the configuration's storage): the whole file is checked first
 *       (its layout, lengths and SHA-256), before anything is written; the data is written under a temporary name,
 *       hashed again on the way (the file could change between the two reads), renamed, and opened; its audit head
 *       must be the one the file's header names, and audit verify must pass on it. A file with signed heads needs
 *       --key (the audit public key): the header's head is checked with it before anything is written, and every
 *       signed head by audit verify. On any failure what was written is removed again.
 *
 * These run without an operator session: the operators are part of what is copied (or of a database that has no
 * schema yet, or of one that was lost), and whoever runs them already holds the databases' files or credentials.
 * The copy reads one snapshot: the service must be stopped first (docs/operations.md), or what it writes meanwhile
 * stays behind. db backup instead copies while the service runs (one LMDB read snapshot) and needs a session.
 *
 * A backup file (integers big-endian):
 *   "CSCDBBK1" | u16 format version (1) | u16 H | H bytes of header text | u64 D | D bytes of data |
 *   32 bytes SHA-256 over every byte before them | u16 T | T bytes of signed text | u16 S | S bytes of signature
 * The signed text is csc-sam's, "csc-db-backup v1 sha256=HEX time_ms=T operator=NAME" naming that SHA-256, and the
 * signature the audit key's (DER ECDSA P-256 over the text's SHA-256, as the signed heads); db restore checks it
 * with --key.
 * The header text is ASCII lines "key=value\n", in this order: backend (lmdb), created_ms, audit_seq and
 * audit_hash (the log's head in meta, in the copy), head_seq, head_hash, head_time_ms and head_sig (the newest
 * signed head in the copy, its signature as hex; head_seq=0 and empty values when none was signed). The data is the
 * LMDB environment's data.mdb as stor_backup compacted it. A file is created 0600 under a temporary name, synced
 * and linked to its name (never replacing a file).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "srv.h"
#include "srv_audit.h"
#include "srv_dbfile.h"
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

/* ---- db backup / db restore ---------------------------------------------------------------------------------- */

#define BK_MAGIC "CSCDBBK1"
#define BK_MAGIC_LEN 8
#define BK_VERSION 1
#define BK_PRE_LEN (BK_MAGIC_LEN + 2 + 2)  /* magic, version, header length */
#define BK_HEADER_MAX 2048
#define BK_DIGEST_LEN 32
#define BK_CHUNK (256 * 1024)
#define BK_SIG_PREFIX "csc-db-backup v1 sha256="

/* ---- what a copy holds ---- */

static int newest_head_fn(const stor_signed_head_t *sh, int status, void *arg)
{
    srv_dbfile_header_t *h = arg;
    if (status == 0 && sh->seq >= h->head_seq && sh->sig_len <= sizeof(h->head_sig)) {
        h->head_seq = sh->seq;
        memcpy(h->head_hash, sh->hash, 32);
        h->head_time_ms = sh->time_ms;
        memcpy(h->head_sig, sh->sig, sh->sig_len);
        h->head_sig_len = sh->sig_len;
    }
    return 0;
}

static int read_heads_fn(stor_txn_t *t, void *arg)
{
    srv_dbfile_header_t *h = arg;
    int rc = stor_txn_audit_tip(t, &h->audit_seq, h->audit_hash);
    if (rc == STOR_OK)
        rc = stor_txn_signed_head_each(t, newest_head_fn, h);
    return rc;
}

/* The audit head in meta and the newest signed head of the LMDB environment at dir (opened here, then closed). */
static int read_heads(const srv_config_t *cfg, const char *dir, srv_dbfile_header_t *h)
{
    stor_config_t sc = {.backend = "lmdb", .location = dir, .map_size = cfg->lmdb_map_size};
    stor_env_t *env = NULL;
    int rc = stor_open(&sc, &env);
    if (rc == STOR_OK)
        rc = stor_read(env, read_heads_fn, h);
    stor_close(env);
    return rc;
}

/* Remove dir's LMDB files and dir itself (rmdir_too) or only the files. */
static void remove_env_files(const char *dir, int rmdir_too)
{
    static const char *const names[] = {"data.mdb", "lock.mdb", "data.mdb.restoring"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) < (int)sizeof(path))
            (void)unlink(path);
    if (rmdir_too)
        (void)rmdir(dir);
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes (0), or -1 (an error or the end of the file first). */
static int read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* fsync the folder dir (or, with parent_of, the folder of the file dir names): a new name in it is durable. */
static void sync_dir(const char *dir, int parent_of)
{
    char d[PATH_MAX];
    snprintf(d, sizeof(d), "%s", dir);
    char *slash = parent_of ? strrchr(d, '/') : NULL;
    if (parent_of && slash == NULL)
        snprintf(d, sizeof(d), ".");
    else if (slash == d)
        d[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Write and hash: every byte that goes to fd also goes into md. */
static int emit(int fd, EVP_MD_CTX *md, const void *p, size_t n)
{
    return EVP_DigestUpdate(md, p, n) == 1 && write_all(fd, p, n) == 0 ? 0 : -1;
}

/* The file of a backup: into a new temporary file next to file (0600), then linked to file. */
static int write_backup(const char *file, const srv_dbfile_header_t *h, const char *data_path, srv_db_sign_fn sign,
                        void *arg, uint8_t digest[32], uint64_t *data_len)
{
    char tmp[PATH_MAX], text[BK_HEADER_MAX];
    uint8_t pre[BK_PRE_LEN], len8[8], *buf = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    struct stat st;
    int fd = -1, in = -1, rc = -1, n = srv_dbfile_header_text(h, text, sizeof(text));

    if (n < 0 || md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        (buf = malloc(BK_CHUNK)) == NULL || snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", file) >= (int)sizeof(tmp))
        goto out;
    if ((in = open(data_path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(in, &st) != 0) {
        fprintf(stderr, _("csc-admin: db backup: cannot read the copy %s: %s\n"), data_path, strerror(errno));
        goto out;
    }
    if ((fd = mkstemp(tmp)) < 0) {
        fprintf(stderr, _("csc-admin: db backup: cannot create %s: %s\n"), tmp, strerror(errno));
        goto out;
    }
    memcpy(pre, BK_MAGIC, BK_MAGIC_LEN);
    put_be(pre + BK_MAGIC_LEN, BK_VERSION, 2);
    put_be(pre + BK_MAGIC_LEN + 2, (uint64_t)n, 2);
    put_be(len8, (uint64_t)st.st_size, 8);
    if (fchmod(fd, 0600) != 0 || emit(fd, md, pre, sizeof(pre)) != 0 || emit(fd, md, text, (size_t)n) != 0 ||
        emit(fd, md, len8, 8) != 0)
        goto io;
    uint64_t left = (uint64_t)st.st_size;
    while (left > 0) {
        size_t chunk = left < BK_CHUNK ? (size_t)left : BK_CHUNK;
        if (read_all(in, buf, chunk) != 0 || emit(fd, md, buf, chunk) != 0)
            goto io;
        left -= chunk;
    }
    if (EVP_DigestFinal_ex(md, digest, NULL) != 1 || write_all(fd, digest, BK_DIGEST_LEN) != 0)
        goto io;
    /* the audit key's signature of that SHA-256 (csc-sam makes the text and signs it) */
    srv_dbfile_sig_t sig;
    uint8_t trailer[SRV_DBFILE_TRAILER_MAX];
    sig.sig_len = sizeof(sig.sig);
    if (sign(digest, sig.text, sizeof(sig.text), sig.sig, &sig.sig_len, arg) != 0)
        goto out;
    if ((n = srv_dbfile_trailer_write(&sig, trailer, sizeof(trailer))) < 0) {
        /* an empty text or signature: what csc-sam answered is not one (the message of backup_sign, srv_admin.c) */
        fprintf(stderr, _("csc-admin: db backup: csc-sam's answer to BACKUP_SIGN is not usable\n"));
        goto out;
    }
    if (write_all(fd, trailer, (size_t)n) != 0 || fsync(fd) != 0)
        goto io;
    if (link(tmp, file) != 0) {
        fprintf(stderr, _("csc-admin: db backup: cannot create %s: %s%s\n"), file, strerror(errno),
                errno == EEXIST ? _(" (a backup never replaces a file)") : "");
        goto out;
    }
    sync_dir(file, 1);
    *data_len = (uint64_t)st.st_size;
    rc = 0;
    goto out;
io:
    fprintf(stderr, _("csc-admin: db backup: writing %s failed: %s\n"), tmp, strerror(errno));
out:
    if (fd >= 0) {
        close(fd);
        (void)unlink(tmp);
    }
    if (in >= 0)
        close(in);
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
}

int srv_admin_db_backup(const srv_config_t *cfg, stor_env_t *stor, const char *file, srv_db_sign_fn sign, void *arg,
                        srv_db_backup_t *out)
{
    char dir[PATH_MAX], data[PATH_MAX];
    srv_dbfile_header_t h;
    struct timespec ts;
    int rc;

    memset(out, 0, sizeof(*out));
    if (strcmp(cfg->storage.backend, "lmdb") != 0) {
        fprintf(stderr, _("csc-admin: db backup: the storage is %s: its backups are the database's own "
                "(pg_basebackup and WAL archiving for point-in-time recovery: docs/operations.md, \"Backups on "
                "PostgreSQL\"); nothing written\n"), cfg->storage.backend);
        return 2;
    }
    if (access(file, F_OK) == 0) {
        fprintf(stderr, _("csc-admin: db backup: %s exists (a backup never replaces a file)\n"), file);
        return 1;
    }
    /* The copy goes into a temporary folder next to file (the same file system, usually), then into file. */
    if (snprintf(dir, sizeof(dir), "%s.copy.XXXXXX", file) >= (int)sizeof(dir) || mkdtemp(dir) == NULL) {
        fprintf(stderr, _("csc-admin: db backup: cannot create a temporary folder next to %s: %s\n"), file,
                strerror(errno));
        return 1;
    }
    if (snprintf(data, sizeof(data), "%s/data.mdb", dir) >= (int)sizeof(data)) {
        fprintf(stderr, _("csc-admin: db backup: %s: the path is too long\n"), file);
        remove_env_files(dir, 1);
        return 1;
    }
    memset(&h, 0, sizeof(h));
    snprintf(h.backend, sizeof(h.backend), "lmdb");
    clock_gettime(CLOCK_REALTIME, &ts);
    h.created_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if ((rc = stor_backup(stor, dir)) != STOR_OK) {
        fprintf(stderr, _("csc-admin: db backup: the copy failed: %s\n"), stor_strerror(rc));
        remove_env_files(dir, 1);
        return 1;
    }
    /* What the copy holds: read from the copy itself (its own snapshot, not the live database's). */
    if ((rc = read_heads(cfg, dir, &h)) != STOR_OK) {
        fprintf(stderr, _("csc-admin: db backup: cannot read the copy's audit head: %s\n"), stor_strerror(rc));
        remove_env_files(dir, 1);
        return 1;
    }
    rc = write_backup(file, &h, data, sign, arg, out->sha256, &out->data_len);
    remove_env_files(dir, 1);
    if (rc != 0)
        return 1;
    out->audit_seq = h.audit_seq;
    out->head_seq = h.head_seq;
    return 0;
}

/* Check FILE whole: layout, lengths, the SHA-256 after the data, the signature's form (not yet with a key). 0 with *h,
 * *s, the data's offset and length; -1 (said). */
static int restore_check(int fd, const char *file, srv_dbfile_header_t *h, srv_dbfile_sig_t *s, off_t *data_off,
                         uint64_t *data_len, uint8_t digest[32])
{
    uint8_t pre[BK_PRE_LEN], len8[8], want[BK_DIGEST_LEN], *buf = NULL;
    char text[BK_HEADER_MAX + 1];
    const char *why = "";
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    struct stat st;
    int rc = -1;

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 || (buf = malloc(BK_CHUNK)) == NULL)
        goto out;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, _("csc-admin: db restore: %s is not a regular file\n"), file);
        goto out;
    }
    if (read_all(fd, pre, sizeof(pre)) != 0 || memcmp(pre, BK_MAGIC, BK_MAGIC_LEN) != 0) {
        fprintf(stderr, _("csc-admin: db restore: %s is not a backup of csc-admin db backup (no %s at its start)\n"),
                file, BK_MAGIC);
        goto out;
    }
    if (get_be(pre + BK_MAGIC_LEN, 2) != BK_VERSION) {
        fprintf(stderr, _("csc-admin: db restore: %s has format version %u; this csc-admin reads version %u\n"), file,
                (unsigned)get_be(pre + BK_MAGIC_LEN, 2), BK_VERSION);
        goto out;
    }
    size_t hlen = (size_t)get_be(pre + BK_MAGIC_LEN + 2, 2);
    uint64_t fixed = (uint64_t)BK_PRE_LEN + hlen + 8 + BK_DIGEST_LEN;
    if (hlen == 0 || hlen > BK_HEADER_MAX || (uint64_t)st.st_size < fixed || read_all(fd, text, hlen) != 0 ||
        read_all(fd, len8, 8) != 0) {
        fprintf(stderr, _("csc-admin: db restore: %s is truncated or damaged (its header)\n"), file);
        goto out;
    }
    *data_len = get_be(len8, 8);
    /* the data and the signature's two lengths at least */
    if (*data_len > (uint64_t)st.st_size - fixed || (uint64_t)st.st_size - fixed - *data_len < 4) {
        fprintf(stderr, _("csc-admin: db restore: %s is truncated or damaged: %" PRIu64 " bytes of data announced, %"
                PRIu64 " present\n"), file, *data_len, (uint64_t)st.st_size - fixed);
        goto out;
    }
    if (EVP_DigestUpdate(md, pre, sizeof(pre)) != 1 || EVP_DigestUpdate(md, text, hlen) != 1 ||
        EVP_DigestUpdate(md, len8, 8) != 1)
        goto out;
    for (uint64_t left = *data_len; left > 0;) {
        size_t chunk = left < BK_CHUNK ? (size_t)left : BK_CHUNK;
        if (read_all(fd, buf, chunk) != 0 || EVP_DigestUpdate(md, buf, chunk) != 1) {
            fprintf(stderr, _("csc-admin: db restore: reading %s failed\n"), file);
            goto out;
        }
        left -= chunk;
    }
    if (read_all(fd, want, sizeof(want)) != 0 || EVP_DigestFinal_ex(md, digest, NULL) != 1 ||
        CRYPTO_memcmp(digest, want, sizeof(want)) != 0) {
        fprintf(stderr, _("csc-admin: db restore: %s is damaged or was altered: its SHA-256 does not match its "
                "content; nothing written\n"), file);
        goto out;
    }
    /* The signature after it: the text and the DER, ending the file exactly. */
    uint8_t trailer[SRV_DBFILE_TRAILER_MAX];
    uint64_t tlen = (uint64_t)st.st_size - fixed - *data_len;
    if (tlen > sizeof(trailer) || read_all(fd, trailer, (size_t)tlen) != 0 ||
        srv_dbfile_trailer_parse(trailer, (size_t)tlen, s) != 0) {
        fprintf(stderr, _("csc-admin: db restore: %s is truncated or damaged (its signature)\n"), file);
        goto out;
    }
    /* Intact: now the header may be believed, and must make sense. */
    text[hlen] = '\0';
    if (memchr(text, '\0', hlen) != NULL || srv_dbfile_header_parse(text, h, &why) != 0) {
        /* why: a key of the header (as written), or the end of it (translated: SRV_DBFILE_END) */
        fprintf(stderr, _("csc-admin: db restore: %s: its header is not this version's (at %s)\n"), file,
                strcmp(why, SRV_DBFILE_END) == 0 ? _("the end of the header") : why);
        goto out;
    }
    *data_off = (off_t)(BK_PRE_LEN + hlen + 8);
    rc = 0;
out:
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
}

/* Whether the header's signed head verifies with pub: ECDSA over SHA-256 of its text (stor_signed_head_text). */
static int head_sig_ok(const srv_dbfile_header_t *h, EVP_PKEY *pub)
{
    stor_signed_head_t sh;
    char text[192];
    memset(&sh, 0, sizeof(sh));
    sh.seq = h->head_seq;
    memcpy(sh.hash, h->head_hash, 32);
    sh.time_ms = h->head_time_ms;
    int n = stor_signed_head_text(&sh, text, sizeof(text));
    EVP_MD_CTX *md = n > 0 ? EVP_MD_CTX_new() : NULL;
    int ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(md, h->head_sig, h->head_sig_len, (const unsigned char *)text, (size_t)n) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

/* Whether the trailer is the audit key's signature of this file: csc-sam's text names the file's SHA-256, and pub's
 * ECDSA signature over the text's SHA-256 verifies. */
static int backup_sig_ok(const srv_dbfile_sig_t *s, const uint8_t digest[32], EVP_PKEY *pub)
{
    char hex[65];
    size_t p = strlen(BK_SIG_PREFIX);
    srv_dbfile_hex(digest, 32, hex);
    if (strncmp(s->text, BK_SIG_PREFIX, p) != 0 || strncmp(s->text + p, hex, 64) != 0 || s->text[p + 64] != ' ')
        return 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(md, s->sig, s->sig_len, (const unsigned char *)s->text, strlen(s->text)) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

/* 1 if dir holds no entry, 0 if it holds some, -1 if it cannot be read (errno). */
static int dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int empty = 1;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

/* Copy the data part of fd (checked) into dir/data.mdb: to a temporary name, hashed again on the way with the
 * whole file, synced, renamed. 0 or -1 (said). */
static int restore_write(int fd, const char *file, const char *dir, off_t data_off, uint64_t data_len,
                         const uint8_t want[32])
{
    char tmp[PATH_MAX], final[PATH_MAX];
    uint8_t *buf = malloc(BK_CHUNK), got[BK_DIGEST_LEN];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int out = -1, rc = -1;

    if (snprintf(tmp, sizeof(tmp), "%s/data.mdb.restoring", dir) >= (int)sizeof(tmp) ||
        snprintf(final, sizeof(final), "%s/data.mdb", dir) >= (int)sizeof(final)) {
        fprintf(stderr, _("csc-admin: db restore: %s: the path is too long\n"), dir);
        goto out;
    }
    if (buf == NULL || md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 || lseek(fd, 0, SEEK_SET) != 0)
        goto out;
    if ((out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        fprintf(stderr, _("csc-admin: db restore: cannot create %s: %s\n"), tmp, strerror(errno));
        goto out;
    }
    for (uint64_t pos = 0, end = (uint64_t)data_off + data_len; pos < end;) {
        size_t chunk = end - pos < BK_CHUNK ? (size_t)(end - pos) : BK_CHUNK;
        if (read_all(fd, buf, chunk) != 0 || EVP_DigestUpdate(md, buf, chunk) != 1)
            goto changed;
        /* the part before the data only goes into the hash */
        if (pos + chunk > (uint64_t)data_off) {
            size_t skip = pos < (uint64_t)data_off ? (size_t)((uint64_t)data_off - pos) : 0;
            if (write_all(out, buf + skip, chunk - skip) != 0) {
                fprintf(stderr, _("csc-admin: db restore: writing %s failed: %s\n"), tmp, strerror(errno));
                goto out;
            }
        }
        pos += chunk;
    }
    if (EVP_DigestFinal_ex(md, got, NULL) != 1 || CRYPTO_memcmp(got, want, sizeof(got)) != 0)
        goto changed;
    if (fsync(out) != 0 || rename(tmp, final) != 0) {
        fprintf(stderr, _("csc-admin: db restore: cannot complete %s: %s\n"), final, strerror(errno));
        goto out;
    }
    sync_dir(dir, 0);
    rc = 0;
    goto out;
changed:
    fprintf(stderr, _("csc-admin: db restore: %s changed while it was restored: nothing kept\n"), file);
out:
    if (out >= 0) {
        close(out);
        if (rc != 0)
            (void)unlink(tmp);
    }
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
}

typedef struct {
    char detail[256];
} restore_audit_t;

static int restore_audit_fn(stor_txn_t *t, void *arg)
{
    stor_audit_t rec;
    memset(&rec, 0, sizeof(rec));
    rec.event = STOR_EV_ADMIN;
    rec.result = STOR_RES_OK;
    snprintf(rec.user, sizeof(rec.user), "-");
    snprintf(rec.detail, sizeof(rec.detail), "%s", ((restore_audit_t *)arg)->detail);
    return stor_txn_audit_append(t, &rec);
}

/* The restored environment at dir: its heads must be the header's, audit verify must pass; then the restore is
 * audited in it. 0 or -1 (said). */
static int restore_check_result(const srv_config_t *cfg, const char *dir, const srv_dbfile_header_t *want,
                                EVP_PKEY *pub, const uint8_t digest[32])
{
    stor_config_t sc = {.backend = "lmdb", .location = dir, .map_size = cfg->lmdb_map_size};
    stor_env_t *env = NULL;
    srv_dbfile_header_t got;
    restore_audit_t a;
    char hex[65];
    int rc = stor_open(&sc, &env);

    memset(&got, 0, sizeof(got));
    if (rc == STOR_OK)
        rc = stor_read(env, read_heads_fn, &got);
    if (rc != STOR_OK) {
        fprintf(stderr, _("csc-admin: db restore: the restored database does not open: %s\n"), stor_strerror(rc));
        goto fail;
    }
    if (got.audit_seq != want->audit_seq || memcmp(got.audit_hash, want->audit_hash, 32) != 0 ||
        got.head_seq != want->head_seq || (want->head_seq != 0 && memcmp(got.head_hash, want->head_hash, 32) != 0)) {
        fprintf(stderr, _("csc-admin: db restore: the restored database's audit head (seq %" PRIu64 ", signed head %"
                PRIu64 ") is not the one the backup names (seq %" PRIu64 ", signed head %" PRIu64 ")\n"),
                got.audit_seq, got.head_seq, want->audit_seq, want->head_seq);
        goto fail;
    }
    printf(_("audit verify of the restored database:\n"));
    fflush(stdout);
    if (srv_audit_verify(env, pub, stdout) != 0) {
        fprintf(stderr, _("csc-admin: db restore: audit verify fails on the restored database: not kept\n"));
        goto fail;
    }
    srv_dbfile_hex(digest, 32, hex);
    snprintf(a.detail, sizeof(a.detail), "action=db.restore sha256=%s audit_seq=%" PRIu64 " head_seq=%" PRIu64, hex,
             want->audit_seq, want->head_seq);
    if ((rc = stor_write(env, restore_audit_fn, &a)) != STOR_OK) {
        fprintf(stderr, _("csc-admin: db restore: its audit record failed: %s\n"), stor_strerror(rc));
        goto fail;
    }
    stor_close(env);
    return 0;
fail:
    stor_close(env);
    return -1;
}

/* db restore FILE [--db lmdb:DIR] [--key PEM] */
static int db_restore(const srv_config_t *cfg, int argc, char **argv)
{
    db_spec_t db = {{0}, NULL};
    const char *file = NULL, *keyfile = NULL;
    srv_dbfile_header_t h;
    srv_dbfile_sig_t sig;
    uint8_t digest[32];
    char hex[65];
    EVP_PKEY *pub = NULL;
    off_t off = 0;
    uint64_t len = 0;
    int fd = -1, made = 0, rc = 1;

    snprintf(db.backend, sizeof(db.backend), "%s", cfg->storage.backend);
    db.location = cfg->storage.location;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            if (parse_spec("restore", argv[i], argv[i + 1], &db) != 0)
                return 2;
            i++;
        } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            keyfile = argv[++i];
        } else if (file == NULL && argv[i][0] != '-') {
            file = argv[i];
        } else {
            file = NULL;
            break;
        }
    }
    if (file == NULL) {
        fprintf(stderr, _("csc-admin: db restore: usage: db restore FILE [--db lmdb:DIR] [--key PEM]\n"));
        return 2;
    }
    if (strcmp(db.backend, "lmdb") != 0) {
        fprintf(stderr, _("csc-admin: db restore: the destination is %s: a PostgreSQL database is restored with its "
                "own tools (pg_basebackup's copy and the WAL archive: docs/operations.md, \"Backups on "
                "PostgreSQL\")\n"), db.backend);
        return 2;
    }
    int empty = dir_empty(db.location);
    if (empty == 0 || (empty < 0 && errno != ENOENT)) {
        fprintf(stderr, _("csc-admin: db restore: %s %s: restore only into a new or empty folder\n"), db.location,
                empty == 0 ? _("is not empty") : strerror(errno));
        return 1;
    }
    if (keyfile != NULL) {
        FILE *f = fopen(keyfile, "r");
        pub = f != NULL ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
        if (f != NULL)
            fclose(f);
        if (pub == NULL) {
            fprintf(stderr, _("csc-admin: db restore: cannot read a PEM public key from %s\n"), keyfile);
            return 1;
        }
    }
    if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, _("csc-admin: db restore: cannot open %s: %s\n"), file, strerror(errno));
        goto out;
    }
    if (restore_check(fd, file, &h, &sig, &off, &len, digest) != 0)
        goto out;
    /* The signed head the header names, with the audit key, before anything is written: audit verify on the result
     * checks every signed head's signature, which needs the key (the database that could answer it is the one being
     * restored: keep the file of audit export-key with the backups). */
    if (h.head_seq != 0 && pub == NULL) {
        fprintf(stderr, _("csc-admin: db restore: %s carries signed audit heads: give the audit public key with --key "
                "(the file of csc-admin audit export-key) to check them; nothing written\n"), file);
        goto out;
    }
    if (pub != NULL && !backup_sig_ok(&sig, digest, pub)) {
        fprintf(stderr, _("csc-admin: db restore: %s is not signed by the audit key of %s (its signature: \"%s\"): "
                "another installation's backup, or an altered one; nothing written\n"), file, keyfile, sig.text);
        goto out;
    }
    if (h.head_seq != 0 && !head_sig_ok(&h, pub)) {
        fprintf(stderr, _("csc-admin: db restore: the signed head in %s does not verify with the audit key of %s: "
                "another installation's backup, or a forged head; nothing written\n"), file, keyfile);
        goto out;
    }
    srv_dbfile_hex(digest, 32, hex);
    printf(_("%s: intact (sha256 %s), audit head seq %" PRIu64 ", signed head seq %" PRIu64 "; %s: %s\n"), file, hex,
           h.audit_seq, h.head_seq,
           pub != NULL ? _("signed by the audit key") : _("its signature NOT checked (no --key)"), sig.text);
    if (empty < 0) {
        if (mkdir(db.location, 0700) != 0) {
            fprintf(stderr, _("csc-admin: db restore: cannot create %s: %s\n"), db.location, strerror(errno));
            goto out;
        }
        made = 1;
    }
    if (restore_write(fd, file, db.location, off, len, digest) != 0 ||
        restore_check_result(cfg, db.location, &h, pub, digest) != 0) {
        remove_env_files(db.location, made);
        goto out;
    }
    printf(_("restored into lmdb:%s\n"), db.location);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    EVP_PKEY_free(pub);
    return rc;
}

int srv_admin_db(const srv_config_t *cfg, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "copy") == 0)
        return db_copy(cfg, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "init") == 0)
        return db_migrate(cfg, "init", STOR_MIGRATE_INIT, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "migrate") == 0)
        return db_migrate(cfg, "migrate", STOR_MIGRATE_UPGRADE, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "restore") == 0)
        return db_restore(cfg, argc - 1, argv + 1);
    fprintf(stderr, _("csc-admin: db: unknown command (db backup, db copy, db init, db migrate, db restore)\n"));
    return 2;
}
