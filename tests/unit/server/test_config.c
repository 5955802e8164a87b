/* Unit tests of the configuration parser: every refusal names the key (and line). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "srv.h"
#include "test_srv.h"

static char dir[64], file[128], errfile[128];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_srv.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/c.conf", dir);
    snprintf(errfile, sizeof(errfile), "%s/err", dir);
}

static void teardown(void)
{
    unlink(file);
    unlink(errfile);
    rmdir(dir);
}

#define BASE_NO_STORAGE "environment = test\n"                                    \
                        "listen = 127.0.0.1:8443\n"                               \
                        "tls_cert = tls/cert.pem\n"                               \
                        "tls_key = /abs/key.pem\n"                                \
                        "pkcs11_module = /usr/lib/softhsm/libsofthsm2.so\n"       \
                        "pkcs11_token = t\n"                                      \
                        "pkcs11_pin_file = pin\n"
static const char *base = BASE_NO_STORAGE "lmdb_path = db\n";

/* Load the file as it is; return rc and leave stderr's text in msg. */
static int load_file(srv_config_t *cfg, char *msg, size_t msz)
{
    FILE *f;
    fflush(stderr);
    int saved = dup(2), fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    int rc = srv_config_load(file, cfg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    f = fopen(errfile, "r");
    size_t n = fread(msg, 1, msz - 1, f);
    msg[n] = '\0';
    fclose(f);
    return rc;
}

/* Load head + extra; return rc and leave stderr's text in msg. */
static int load_with(const char *head, const char *extra, srv_config_t *cfg, char *msg, size_t msz)
{
    FILE *f = fopen(file, "w");
    fputs(head, f);
    fputs(extra, f);
    fclose(f);
    return load_file(cfg, msg, msz);
}

/* Load base + extra. */
static int load(const char *extra, srv_config_t *cfg, char *msg, size_t msz)
{
    return load_with(base, extra, cfg, msg, msz);
}

START_TEST(t_valid)
{
    srv_config_t cfg;
    char msg[512];
    ck_assert_int_eq(load("listen = [::1]:9443\nlmdb_map_size = 2G\nmax_body = 64K\n# comment\n\n", &cfg, msg,
                          sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.environment, CSC_ENV_TEST);
    ck_assert_uint_eq(cfg.n_listen, 2);
    ck_assert_str_eq(cfg.listen[1], "[::1]:9443");
    ck_assert_uint_eq(cfg.lmdb_map_size, 2ull << 30);
    ck_assert_uint_eq(cfg.max_body, 64 * 1024);
    ck_assert_uint_eq(cfg.workers, 16); /* default */
    ck_assert_uint_eq(cfg.sad_ttl, 300);
    ck_assert_str_eq(cfg.tls_key, "/abs/key.pem");
    char expect[PATH_MAX + 32], real[PATH_MAX]; /* relative paths are relative to the file */
    ck_assert_ptr_nonnull(realpath(dir, real));
    snprintf(expect, sizeof(expect), "%s/tls/cert.pem", real);
    ck_assert_str_eq(cfg.tls_cert, expect);
    /* J6, J9: no anchors, no CRLs, fail closed on stale CRLs unless told otherwise */
    ck_assert_str_eq(cfg.trust_anchors, "");
    ck_assert_str_eq(cfg.crl_dir, "");
    ck_assert_uint_eq(cfg.crl_allow_stale, 0);
    ck_assert_uint_eq(cfg.crl_require, 0);
    ck_assert_int_eq(load("trust_anchors = anchors.pem\ncrl_dir = crl\ncrl_require = yes\n", &cfg, msg, sizeof(msg)), 0);
    snprintf(expect, sizeof(expect), "%s/crl", real);
    ck_assert_str_eq(cfg.crl_dir, expect);
    ck_assert_uint_eq(cfg.crl_require, 1);
}
END_TEST

/* srv_config_parse: the text srv_config_load reads, parsed as that file would be (relative paths from path's folder,
 * messages naming name); a NUL byte, a line over 4095 characters and a file over SRV_CONFIG_FILE_MAX refused. */
START_TEST(t_text)
{
    static srv_config_t a, b;
    char msg[512];
    ck_assert_int_eq(load("# the last line without its newline\nworkers = 3", &a, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(a.workers, 3);
    char text[8192];
    int n = snprintf(text, sizeof(text), "%s# the last line without its newline\nworkers = 3", base);
    ck_assert_int_eq(srv_config_parse(text, (size_t)n, "elsewhere.conf", a.file, &b), 0);
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
    ck_assert_int_eq(srv_config_parse(text, (size_t)n, "x.conf", "/etc/csc/x.conf", &b), 0);
    ck_assert_str_eq(b.file, "/etc/csc/x.conf");
    ck_assert_str_eq(b.tls_cert, "/etc/csc/tls/cert.pem");
    /* the text as it is: a NUL byte is refused, not taken for the end of its line */
    n = snprintf(text, sizeof(text), "%sworkers = 3\n# x\n", base);
    ck_assert_int_eq(srv_config_parse(text, (size_t)n, "x.conf", "/etc/csc/x.conf", &b), 0);
    text[n - 5] = '\0'; /* "workers = 3\0# x" */
    ck_assert_int_eq(srv_config_parse(text, (size_t)n, "x.conf", "/etc/csc/x.conf", &b), -1);
    /* a line of 4095 characters is taken, one of 4096 refused (with its file and line) */
    char line[4200];
    memset(line, ' ', sizeof(line));
    memcpy(line, "# ", 2);
    line[4095] = '\n';
    line[4096] = '\0';
    ck_assert_int_eq(load(line, &a, msg, sizeof(msg)), 0);
    line[4095] = ' ';
    line[4096] = '\n';
    line[4097] = '\0';
    ck_assert_int_eq(load(line, &a, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "c.conf:9: line too long") != NULL, "not said: \"%s\"", msg);
    /* a file over SRV_CONFIG_FILE_MAX is refused, one of that size read whole */
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs(base, f);
    for (long left = SRV_CONFIG_FILE_MAX - (long)strlen(base); left > 0; left -= 64)
        fprintf(f, "%.*s\n", (int)(left < 64 ? left - 1 : 63), "#                                                               ");
    fclose(f);
    ck_assert_int_eq(srv_config_load(file, &a), 0);
    f = fopen(file, "a");
    fputc('#', f);
    fclose(f);
    ck_assert_int_eq(load_file(&a, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "larger than 1048576 bytes") != NULL, "not said: \"%s\"", msg);
}
END_TEST

/* A configuration that must be refused: what to add to the head, and what the message must say. */
typedef struct refusal {
    const char *extra;
    const char *needle;
} refusal_t;

/* Each of cases[0..n) added to head is refused, with file:line and the needle in the message. */
static void refuse_all(const char *head, const refusal_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        srv_config_t cfg;
        char msg[512];
        ck_assert_int_eq(load_with(head, cases[i].extra, &cfg, msg, sizeof(msg)), -1);
        ck_assert_msg(strstr(msg, cases[i].needle) != NULL, "case %zu: \"%s\" not in \"%s\"", i, cases[i].needle,
                      msg);
        ck_assert_msg(strstr(msg, "c.conf:") != NULL, "no file:line in \"%s\"", msg);
    }
}

START_TEST(t_refusals)
{
    static const refusal_t cases[] = {
        {"colour = blue\n", "unknown key \"colour\""},
        {"workers = 0\n", "workers: expected a number from 1 to 1024"},
        {"workers = 12x\n", "workers"},
        {"workers = -1\n", "workers"},
        {"lmdb_map_size = 5T\n", "lmdb_map_size"},
        {"http2 = maybe\n", "http2: expected yes or no"},
        {"environment = staging\n", "given twice"},
        {"sad_ttl = 5\n", "sad_ttl"},
        {"max_hashes = 5000\n", "max_hashes"},
        {"just words\n", "expected key = value"},
        {"listen = nocolon\n", "listen: expected HOST:PORT"},
        {"info_region = JPN\n", "info_region: value longer than"},
        {"workers = 4\nworkers = 5\n", "workers given twice"},
        {"crl_dir = crl\n", "crl_dir needs trust_anchors"},
        {"crl_allow_stale = sometimes\n", "crl_allow_stale: expected yes or no"},
        {"server_user = csc server\n", "server_user: \"csc server\" is no user name"},
        {"server_user = -u\n", "server_user: \"-u\" is no user name"},
        {"sam_user = a/b\n", "sam_user: \"a/b\" is no user name"},
        {"server_user = abcdefghijabcdefghijabcdefghijabc\n", "server_user: value longer than 32"},
        {"server_user = csc\nsam_user = csc\n", "sam_user: must differ from server_user"},
        {"seccomp = maybe\n", "seccomp: expected yes or no"},
        {"access_log_format = xml\n", "access_log_format: expected text or json, got \"xml\""},
    };
    refuse_all(base, cases, sizeof(cases) / sizeof(cases[0]));
}
END_TEST

/* A reload (csc-server's SIGHUP) compares the file read again with the one in force: every key that differs and
 * is not reloadable is named, once, and a key neither file gave (a value derived from another key) is not. */
START_TEST(t_changed)
{
    static const char *const reloadable[] = {"tls_cert", "tls_key", "access_log_format", NULL};
    srv_config_t *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    char msg[512], out[256];
    ck_assert_int_eq(load("access_log = log/a\n", a, msg, sizeof(msg)), 0);
    ck_assert_int_eq(load("access_log = log/a\n", b, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(srv_config_changed(a, b, reloadable, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "");
    /* reloadable keys: not named */
    ck_assert_int_eq(load_with(BASE_NO_STORAGE "lmdb_path = db\naccess_log_format = json\n", "access_log = log/a\n", b,
                               msg, sizeof(msg)),
                     0);
    ck_assert_uint_eq(srv_config_changed(a, b, reloadable, out, sizeof(out)), 0);
    /* listen (the default public_url follows it: not named), workers (sam_connections follows), a second listen,
     * storage under its older name, a key given in one file only */
    ck_assert_int_eq(load_with("environment = test\nlisten = 127.0.0.1:9443\nlisten = [::1]:9443\n"
                               "tls_cert = tls/cert.pem\ntls_key = /abs/key.pem\n"
                               "pkcs11_module = /usr/lib/softhsm/libsofthsm2.so\npkcs11_token = t\n"
                               "pkcs11_pin_file = pin\nlmdb_path = db2\n",
                               "workers = 7\nsad_ttl = 300\n", b, msg, sizeof(msg)),
                     0);
    ck_assert_str_ne(a->public_url, b->public_url);
    ck_assert_uint_ne(a->sam_connections, b->sam_connections);
    ck_assert_uint_eq(srv_config_changed(a, b, reloadable, out, sizeof(out)), 4);
    ck_assert_str_eq(out, "listen, workers, storage, access_log");
    ck_assert_uint_eq(srv_config_changed(b, a, reloadable, out, sizeof(out)), 4); /* either way round */
    /* cut to the buffer, still counted */
    ck_assert_uint_eq(srv_config_changed(a, b, reloadable, out, 12), 4);
    ck_assert_str_eq(out, "listen");
    /* the same value given in one file and left at its default in the other is no change */
    ck_assert_int_eq(load("access_log = log/a\nworkers = 16\n", b, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(srv_config_changed(a, b, reloadable, out, sizeof(out)), 0);
    free(a);
    free(b);
}
END_TEST

/* storage = <backend>:<location>; lmdb_path = PATH is the older spelling of storage = lmdb:PATH. */
START_TEST(t_storage)
{
    static const refusal_t refused[] = {
        {"", "missing required key storage"},
        {"storage = lmdb:db\nlmdb_path = db\n", "storage and lmdb_path: give one"},
        {"lmdb_path = db\nstorage = lmdb:db\n", "storage and lmdb_path: give one"},
        {"storage = mysql:dbname=csc\n", "storage: unknown backend \"mysql\" (backends: lmdb, postgresql)"},
        {"storage = db\n", "storage: expected <backend>:<location> (backends: lmdb, postgresql)"},
        {"storage = :db\n", "storage: expected <backend>:<location>"},
        {"storage = lmdb:\n", "storage: lmdb: needs a location"},
        {"storage = lmdb:db\nstorage = lmdb:db2\n", "storage given twice"},
        {"lmdb_path =\n", "lmdb_path: an empty location"},
    };
    srv_config_t cfg;
    char msg[512], expect[PATH_MAX + 32], real[PATH_MAX];

    ck_assert_ptr_nonnull(realpath(dir, real));
    ck_assert_int_eq(load_with(BASE_NO_STORAGE, "storage = lmdb:db\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.storage.backend, "lmdb");
    snprintf(expect, sizeof(expect), "%s/db", real); /* relative to the file, like every path */
    ck_assert_str_eq(cfg.storage.location, expect);
    ck_assert_int_eq(load_with(BASE_NO_STORAGE, "storage = lmdb:/var/lib/csc\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.storage.location, "/var/lib/csc");
    /* the older spelling */
    ck_assert_int_eq(load("", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.storage.backend, "lmdb");
    ck_assert_str_eq(cfg.storage.location, expect);
    ck_assert_uint_eq(cfg.read_cache_ms, 0); /* signHash's read cache: none on LMDB unless given */
    ck_assert_int_eq(load("read_cache_ms = 250\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.read_cache_ms, 250);
    ck_assert_int_eq(load("read_cache_ms = 5001\n", &cfg, msg, sizeof(msg)), -1);
    refuse_all(BASE_NO_STORAGE, refused, sizeof(refused) / sizeof(refused[0]));
}
END_TEST

/* storage = postgresql:CONNINFO: the conninfo kept as given (not a path); never a password in it (naming the key,
 * not showing the value); storage_passfile becomes its passfile= (quoted); in production mutual TLS
 * (sslmode=verify-full, sslcert, sslkey). */
START_TEST(t_storage_postgresql)
{
    static const refusal_t refused[] = {
        {"storage = postgresql:host=db password=pw-s3cret\n", "storage: postgresql: password= is refused"},
        {"storage = postgresql:host=db password = 'pw-s3 cret'\n", "storage: postgresql: password= is refused"},
        {"storage = postgresql:postgresql://u:pw-s3cret@db/csc\n", "not a URI"},
        {"storage = postgresql:host=db dbname\n", "storage: postgresql: a malformed conninfo"},
        {"storage = postgresql:host='db\n", "storage: postgresql: a malformed conninfo"},
        {"storage = postgresql:host=db passfile=/a\nstorage_passfile = /b\n", "storage_passfile and storage's"},
        {"storage = lmdb:db\nstorage_passfile = /b\n", "storage_passfile: only with storage = postgresql"},
        {"storage = postgresql:\n", "storage: postgresql: needs a location"},
    };
    static const char prod[] = "environment = production\nlisten = 127.0.0.1:1\nplain_http = yes\n"
                               "allow_test_components = yes\npkcs11_module = m\npkcs11_token = t\npkcs11_pin_file = p\n";
    srv_config_t cfg;
    char msg[512], real[PATH_MAX], expect[PATH_MAX + 64];

    ck_assert_int_eq(load_with(BASE_NO_STORAGE, "storage = postgresql:host=db.example sslmode=require\n", &cfg, msg,
                               sizeof(msg)), 0);
    ck_assert_str_eq(cfg.storage.backend, "postgresql");
    ck_assert_str_eq(cfg.storage.location, "host=db.example sslmode=require");
    ck_assert_uint_eq(cfg.read_cache_ms, 1000); /* a read is a round trip there */
    ck_assert_int_eq(load_with(BASE_NO_STORAGE, "storage = postgresql:host=db\nread_cache_ms = 0\n", &cfg, msg,
                               sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.read_cache_ms, 0); /* given: kept */
    ck_assert_int_eq(load_with(BASE_NO_STORAGE, "storage = postgresql:host=db\nstorage_passfile = pg'pass\n", &cfg,
                               msg, sizeof(msg)), 0);
    ck_assert_ptr_nonnull(realpath(dir, real));
    snprintf(expect, sizeof(expect), "host=db passfile='%s/pg\\'pass'", real); /* relative to the file's folder */
    ck_assert_str_eq(cfg.storage.location, expect);
    refuse_all(BASE_NO_STORAGE, refused, sizeof(refused) / sizeof(refused[0]));
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(load_with(BASE_NO_STORAGE, refused[i].extra, &cfg, msg, sizeof(msg)), -1);
        ck_assert_msg(strstr(msg, "pw-s3") == NULL, "the password shown: %s", msg);
    }
    ck_assert_int_eq(load_with(prod, "storage = postgresql:host=db sslmode=require sslcert=c sslkey=k\n", &cfg, msg,
                               sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "production needs mutual TLS") != NULL, "%s", msg);
    ck_assert_int_eq(load_with(prod, "storage = postgresql:host=db sslmode=verify-full sslkey=k\n", &cfg, msg,
                               sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "sslcert") != NULL, "%s", msg);
    ck_assert_int_eq(load_with(prod, "storage = postgresql:host=db sslmode=verify-full sslcert=c sslkey='k'\n"
                                     "front_storage = postgresql:host=db sslmode=verify-full sslcert=f sslkey=fk\n",
                               &cfg, msg, sizeof(msg)), 0);
}
END_TEST

/* front_storage = postgresql:CONNINFO: csc-server's own connection (role csc_front) to storage's database. Only
 * with storage = postgresql; the same host, hostaddr, port and dbname; its own passfile key; in production
 * required, mutual TLS, and a client certificate that is not storage's. srv_storage_of gives csc-server the
 * front one, every other process storage. */
START_TEST(t_front_storage)
{
    static const refusal_t refused[] = {
        {"storage = lmdb:db\nfront_storage = postgresql:host=db\n", "front_storage: only with storage = postgresql"},
        {"storage = postgresql:host=db\nfront_storage = lmdb:db\n", "front_storage: expected postgresql:CONNINFO"},
        {"storage = postgresql:host=db\nfront_storage = postgresql:host=db password=pw-s3cret\n",
         "front_storage: postgresql: password= is refused in the configuration (use front_storage_passfile"},
        {"storage = postgresql:host=db\nfront_storage = postgresql:host=other\n",
         "front_storage: host differs from storage's (\"other\" and \"db\")"},
        {"storage = postgresql:host=db dbname=csc\nfront_storage = postgresql:host=db\n",
         "front_storage: dbname differs from storage's"},
        {"storage = postgresql:host=db port=5432\nfront_storage = postgresql:host=db port=5433\n",
         "front_storage: port differs"},
        {"storage = postgresql:host=db\nfront_storage_passfile = /p\n",
         "front_storage_passfile: only with front_storage"},
        {"storage = postgresql:host=db\nfront_storage = postgresql:host=db passfile=/a\nfront_storage_passfile = /b\n",
         "front_storage_passfile and front_storage's passfile=: give one"},
        {"storage = postgresql:host=db\nfront_storage = postgresql:host=db\nfront_storage = postgresql:host=db\n",
         "front_storage given twice"},
    };
    static const char prod[] = "environment = production\nlisten = 127.0.0.1:1\nplain_http = yes\n"
                               "allow_test_components = yes\npkcs11_module = m\npkcs11_token = t\npkcs11_pin_file = p\n";
    static const char sam[] = "storage = postgresql:host=db dbname=csc sslmode=verify-full sslcert=s.crt sslkey=s.key\n";
    srv_config_t cfg;
    char msg[512], extra[512];

    ck_assert_int_eq(load_with(BASE_NO_STORAGE, "storage = postgresql:host=db user=csc_sam\nfront_storage = "
                               "postgresql:host=db user=csc_front\nfront_storage_passfile = /etc/csc/front.pass\n",
                               &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.storage.location, "host=db user=csc_sam");
    ck_assert_str_eq(cfg.front_storage.backend, "postgresql");
    ck_assert_str_eq(cfg.front_storage.location, "host=db user=csc_front passfile='/etc/csc/front.pass'");
    ck_assert_ptr_eq(srv_storage_of(&cfg, 1), &cfg.front_storage);
    ck_assert_ptr_eq(srv_storage_of(&cfg, 0), &cfg.storage);
    /* not given: csc-server uses storage (test environment; its write guard still applies) */
    ck_assert_int_eq(load_with(BASE_NO_STORAGE, "storage = postgresql:host=db\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.front_storage.backend, "");
    ck_assert_ptr_eq(srv_storage_of(&cfg, 1), &cfg.storage);
    refuse_all(BASE_NO_STORAGE, refused, sizeof(refused) / sizeof(refused[0]));
    ck_assert_int_eq(load_with(BASE_NO_STORAGE, refused[2].extra, &cfg, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "pw-s3") == NULL, "the password shown: %s", msg);

    /* production */
    ck_assert_int_eq(load_with(prod, sam, &cfg, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "front_storage: required in production") != NULL, "%s", msg);
    snprintf(extra, sizeof(extra), "%sfront_storage = postgresql:host=db dbname=csc sslmode=verify-full "
                                   "sslcert=s.crt sslkey=s.key\n", sam);
    ck_assert_int_eq(load_with(prod, extra, &cfg, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "front_storage: production needs csc-server's own client certificate") != NULL, "%s", msg);
    snprintf(extra, sizeof(extra), "%sfront_storage = postgresql:host=db dbname=csc sslmode=require "
                                   "sslcert=f.crt sslkey=f.key\n", sam);
    ck_assert_int_eq(load_with(prod, extra, &cfg, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "front_storage: postgresql: production needs mutual TLS") != NULL, "%s", msg);
    snprintf(extra, sizeof(extra), "%sfront_storage = postgresql:host=db dbname=csc sslmode=verify-full "
                                   "sslcert=f.crt sslkey=f.key\n", sam);
    ck_assert_int_eq(load_with(prod, extra, &cfg, msg, sizeof(msg)), 0);
    ck_assert_ptr_eq(srv_storage_of(&cfg, 1), &cfg.front_storage);
}
END_TEST

/* A production configuration (plain HTTP allowed by allow_test_components) with extra lines. */
static int load_production(const char *extra, srv_config_t *cfg)
{
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "listen = 127.0.0.1:1\nplain_http = yes\nenvironment = production\npkcs11_module = m\n"
               "pkcs11_token = t\npkcs11_pin_file = p\nlmdb_path = d\nallow_test_components = yes\n%s", extra);
    fclose(f);
    return srv_config_load(file, cfg);
}

/* two_person: empty in test, destroy,restore,terminate,operator in production unless given ("none": none);
 * allow_combined_roles a yes/no key. */
START_TEST(t_operator_rules)
{
    srv_config_t cfg;
    char msg[512];
    ck_assert_int_eq(load_production("", &cfg), 0);
    ck_assert_str_eq(cfg.two_person, "destroy,restore,terminate,operator");
    ck_assert_uint_eq(cfg.allow_combined_roles, 0);
    ck_assert_int_eq(load_production("two_person = none\nallow_combined_roles = yes\n", &cfg), 0);
    ck_assert_str_eq(cfg.two_person, "");
    ck_assert_uint_eq(cfg.allow_combined_roles, 1);
    ck_assert_int_eq(load_production("two_person = destroy\n", &cfg), 0);
    ck_assert_str_eq(cfg.two_person, "destroy");
    ck_assert_int_eq(load("", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.two_person, "");
    ck_assert_int_eq(load("two_person = none\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.two_person, "");
    ck_assert_int_eq(load("allow_combined_roles = maybe\n", &cfg, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "allow_combined_roles") != NULL, "key not named in \"%s\"", msg);
}
END_TEST

START_TEST(t_environment_rules)
{
    srv_config_t cfg;
    char msg[512];
    FILE *f = fopen(file, "w");
    fputs("listen = 127.0.0.1:1\nplain_http = yes\nenvironment = production\npkcs11_module = m\n"
          "pkcs11_token = t\npkcs11_pin_file = p\nlmdb_path = d\n", f);
    fclose(f);
    ck_assert_int_eq(srv_config_load(file, &cfg), -1);
    /* production may serve plain HTTP only with the explicit override */
    f = fopen(file, "w");
    fputs("listen = 127.0.0.1:1\nplain_http = yes\nenvironment = production\npkcs11_module = m\n"
          "pkcs11_token = t\npkcs11_pin_file = p\nlmdb_path = d\nallow_test_components = yes\n", f);
    fclose(f);
    ck_assert_int_eq(srv_config_load(file, &cfg), 0);
    ck_assert_uint_eq(cfg.allow_test_components, 1);
    ck_assert_uint_eq(cfg.pin_min_length, 8); /* production's default */
    ck_assert_str_eq(cfg.clock_check, "adjtimex"); /* production's default: no time-stamp on an unsynchronised clock */
    ck_assert_uint_eq(cfg.clock_max_error_ms, 1000);
    f = fopen(file, "w");
    fputs("listen = 127.0.0.1:1\nplain_http = yes\nenvironment = production\npkcs11_module = m\n"
          "pkcs11_token = t\npkcs11_pin_file = p\nlmdb_path = d\nallow_test_components = yes\npin_min_length = 7\n", f);
    fclose(f);
    ck_assert_int_eq(srv_config_load(file, &cfg), 0);
    ck_assert_uint_eq(cfg.pin_min_length, 7);
    /* the test environment's default, and nothing below 6 */
    ck_assert_int_eq(load("", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.pin_min_length, 6);
    ck_assert_str_eq(cfg.clock_check, "none");
    /* clock_check: none or adjtimex; clock_max_error_ms 1..60000 */
    ck_assert_int_eq(load("clock_check = adjtimex\nclock_max_error_ms = 250\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.clock_check, "adjtimex");
    ck_assert_uint_eq(cfg.clock_max_error_ms, 250);
    ck_assert_int_eq(load("clock_check = ntp\n", &cfg, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "clock_check: expected none or adjtimex") != NULL, "not said: \"%s\"", msg);
    ck_assert_int_eq(load("clock_max_error_ms = 0\n", &cfg, msg, sizeof(msg)), -1);
    ck_assert_int_eq(load("clock_max_error_ms = 60001\n", &cfg, msg, sizeof(msg)), -1);
    ck_assert_int_eq(load("pin_min_length = 4\n", &cfg, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "pin_min_length") != NULL, "key not named in \"%s\"", msg);
    ck_assert_int_eq(load("pin_min_length = 33\n", &cfg, msg, sizeof(msg)), -1);
    /* a restore request's lifetime: 30 days unless said, 1 hour to 90 days */
    ck_assert_int_eq(load("", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.restore_request_ttl, 2592000);
    ck_assert_int_eq(load("restore_request_ttl = 3600\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.restore_request_ttl, 3600);
    ck_assert_int_eq(load("restore_request_ttl = 3599\n", &cfg, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "restore_request_ttl") != NULL, "key not named in \"%s\"", msg);
    ck_assert_int_eq(load("restore_request_ttl = 7776001\n", &cfg, msg, sizeof(msg)), -1);
    /* process hardening: the filter is on unless said otherwise, and off only outside production */
    ck_assert_int_eq(load("", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.seccomp, 1);
    ck_assert_str_eq(cfg.server_user, "");
    ck_assert_str_eq(cfg.sam_user, "");
    ck_assert_int_eq(load("seccomp = no\nserver_user = csc-server\nsam_user = csc-sam\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.seccomp, 0);
    ck_assert_str_eq(cfg.server_user, "csc-server");
    ck_assert_str_eq(cfg.sam_user, "csc-sam");
    f = fopen(file, "w");
    fputs("listen = 127.0.0.1:1\nplain_http = yes\nenvironment = production\npkcs11_module = m\n"
          "pkcs11_token = t\npkcs11_pin_file = p\nlmdb_path = d\nallow_test_components = yes\nseccomp = no\n", f);
    fclose(f);
    ck_assert_int_eq(srv_config_load(file, &cfg), -1);
    /* plain HTTP in test is fine, no TLS files needed */
    ck_assert_int_eq(load("plain_http = yes\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.plain_http, 1);
    /* missing required key */
    f = fopen(file, "w");
    fputs("environment = test\nlisten = 127.0.0.1:1\nplain_http = yes\n", f);
    fclose(f);
    ck_assert_int_eq(srv_config_load(file, &cfg), -1);
    ck_assert_int_eq(srv_config_load("/nonexistent/c.conf", &cfg), -1);
}
END_TEST

/* The csc-sam keys: defaults (a socket beside the file, spawn), the values resolved, and every refusal named. */
START_TEST(t_sam_keys)
{
    srv_config_t cfg;
    char msg[512], want[256];
    ck_assert_int_eq(load("", &cfg, msg, sizeof(msg)), 0);
    snprintf(want, sizeof(want), "%s/csc-sam.sock", dir);
    ck_assert_str_eq(cfg.sam_socket, want);
    ck_assert_uint_eq(cfg.sam_connect, 0);
    ck_assert_str_eq(cfg.sam_program, "");
    ck_assert_uint_eq(cfg.sam_allowed_uid, (uid_t)-1);
    ck_assert_uint_eq(cfg.sam_socket_gid, (gid_t)-1);
    ck_assert_uint_eq(cfg.sam_max_connections, 64);
    ck_assert_uint_eq(cfg.sam_connections, 16 + 4 + 2); /* workers + auth_workers + async_workers */
    ck_assert_uint_eq(cfg.sam_timeout_ms, 30000);
    ck_assert_uint_eq(cfg.sam_heap_reserve, 4096); /* KiB */
    ck_assert_int_eq(load("workers = 32\nauth_workers = 8\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.sam_connections, 32 + 8 + 2);
    ck_assert_int_eq(load("workers = 100\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.sam_connections, 64); /* at most sam_max_connections */
    ck_assert_int_eq(load("workers = 100\nsam_max_connections = 200\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.sam_connections, 106);
    ck_assert_int_eq(load("workers = 100\nsam_connections = 5\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.sam_connections, 5); /* given: kept */
    ck_assert_int_eq(load("sam_mode = connect\nsam_allowed_user = root\nsam_socket_group = 0\nsam_program = bin/sam\n"
                          "sam_socket = /run/csc/sam.sock\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.sam_connect, 1);
    ck_assert_uint_eq(cfg.sam_allowed_uid, 0);
    ck_assert_uint_eq(cfg.sam_socket_gid, 0);
    snprintf(want, sizeof(want), "%s/bin/sam", dir);
    ck_assert_str_eq(cfg.sam_program, want);
    ck_assert_str_eq(cfg.sam_socket, "/run/csc/sam.sock");
    /* the operators' socket: beside the file by default, 0600 (no group) */
    ck_assert_int_eq(load("", &cfg, msg, sizeof(msg)), 0);
    snprintf(want, sizeof(want), "%s/csc-sam-admin.sock", dir);
    ck_assert_str_eq(cfg.sam_admin_socket, want);
    ck_assert_uint_eq(cfg.sam_admin_gid, (gid_t)-1);
    ck_assert_int_eq(load("sam_admin_socket = /run/csc/ops.sock\nsam_admin_group = 0\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.sam_admin_socket, "/run/csc/ops.sock");
    ck_assert_uint_eq(cfg.sam_admin_gid, 0);

    char longpath[160], longadmin[180];
    snprintf(longpath, sizeof(longpath), "sam_socket = /%0120d\n", 0);
    snprintf(longadmin, sizeof(longadmin), "sam_admin_socket = /%0120d\n", 0);
    const struct {
        const char *extra;
        const char *needle;
    } cases[] = {
        {"sam_mode = fork\n", "sam_mode: expected spawn or connect"},
        {"sam_allowed_user = no-such-user-here\n", "sam_allowed_user: no user \"no-such-user-here\""},
        {"sam_socket_group = no-such-group-here\n", "sam_socket_group: no group"},
        {"sam_max_connections = 4\nsam_connections = 5\n", "sam_connections: at most sam_max_connections (4)"},
        {"sam_timeout_ms = 10\n", "sam_timeout_ms: expected a number from 100"},
        {"sam_max_connections = 0\n", "sam_max_connections"},
        {longpath, "sam_socket: a Unix socket path of 1 to 107 bytes"},
        {longadmin, "sam_admin_socket: a Unix socket path of 1 to 107 bytes"},
        {"sam_socket = /run/x.sock\nsam_admin_socket = /run/x.sock\n", "sam_admin_socket: must differ from sam_socket"},
        {"sam_admin_group = no-such-group-here\n", "sam_admin_group: no group \"no-such-group-here\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(load(cases[i].extra, &cfg, msg, sizeof(msg)), -1);
        ck_assert_msg(strstr(msg, cases[i].needle) != NULL, "case %zu: \"%s\" not in \"%s\"", i, cases[i].needle,
                      msg);
    }
}
END_TEST

/* pkcs11_env (NAME=VALUE for the module, set by csc-sam before loading it) and pkcs11_sockets (what csc-sam's filter lets
 * the module open): defaults, accepted values, refusals naming the key. */
START_TEST(t_pkcs11_network_keys)
{
    srv_config_t cfg;
    char msg[512];
    ck_assert_int_eq(load("", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.pkcs11_env, "");
    ck_assert_str_eq(cfg.pkcs11_sockets, "none");
    ck_assert_int_eq(load("pkcs11_env = P11_KIT_SERVER_ADDRESS=unix:path=/run/hsm/p11.sock\npkcs11_sockets = unix\n",
                          &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.pkcs11_env, "P11_KIT_SERVER_ADDRESS=unix:path=/run/hsm/p11.sock");
    ck_assert_str_eq(cfg.pkcs11_sockets, "unix");
    ck_assert_int_eq(load("pkcs11_env = A_1=x=y\npkcs11_sockets = inet\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.pkcs11_env, "A_1=x=y");
    const struct {
        const char *extra;
        const char *needle;
    } cases[] = {
        {"pkcs11_env = NOEQUALS\n", "pkcs11_env: expected NAME=VALUE"},
        {"pkcs11_env = =value\n", "pkcs11_env: expected NAME=VALUE"},
        {"pkcs11_env = NAME=\n", "pkcs11_env: expected NAME=VALUE"},
        {"pkcs11_env = BAD-NAME=1\n", "pkcs11_env: expected NAME=VALUE"},
        {"pkcs11_env = 1ABC=1\n", "pkcs11_env: expected NAME=VALUE"},
        {"pkcs11_env = LD_PRELOAD=/tmp/x.so\n", "pkcs11_env: LD_PRELOAD cannot be set here"},
        {"pkcs11_env = SOFTHSM2_CONF=/x\n", "pkcs11_env: SOFTHSM2_CONF cannot be set here"},
        {"pkcs11_env = A=1\npkcs11_env = B=2\n", "pkcs11_env given twice"},
        {"pkcs11_sockets = tcp\n", "pkcs11_sockets: expected none, unix or inet"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(load(cases[i].extra, &cfg, msg, sizeof(msg)), -1);
        ck_assert_msg(strstr(msg, cases[i].needle) != NULL, "case %zu: \"%s\" not in \"%s\"", i, cases[i].needle,
                      msg);
    }
}
END_TEST

/* node_id: the host's name by default, or the value given; refusals name the key. */
START_TEST(t_node_id)
{
    srv_config_t cfg;
    char msg[512], host[256] = "";
    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
    ck_assert_int_eq(load("", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.node_id, host);
    ck_assert_int_eq(load("node_id = node-2.eu_1\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.node_id, "node-2.eu_1");
    const char *bad[] = {"node_id = two words\n", "node_id = n\xc3\xa9\n", "node_id = a/b\n",
                         "node_id = 0123456789012345678901234567890123456789012345678901234567890123\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(load(bad[i], &cfg, msg, sizeof(msg)), -1);
        ck_assert_msg(strstr(msg, "node_id") != NULL, "case %zu: \"%s\"", i, msg);
    }
}
END_TEST

/* admin_listen: none, or an address no public listener takes; off loopback TLS, and in production mutual TLS. */
START_TEST(t_admin_listen)
{
    srv_config_t cfg;
    char msg[512];
    ck_assert_int_eq(load("", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.admin_listen, "127.0.0.1:9464"); /* the default */
    ck_assert_uint_eq(cfg.readyz_cert_days, 14);
    ck_assert_int_eq(load("admin_listen = none\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_str_eq(cfg.admin_listen, "");
    ck_assert_int_eq(load("admin_listen = [::1]:9100\nreadyz_cert_days = 30\n", &cfg, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cfg.readyz_cert_days, 30);
    ck_assert_int_eq(load("admin_listen = 10.0.0.5:9464\nadmin_tls_cert = a.crt\nadmin_tls_key = a.key\n", &cfg,
                          msg, sizeof(msg)),
                     0); /* TLS off loopback: enough in the test environment */
    ck_assert_str_eq(cfg.admin_tls_cert + strlen(cfg.admin_tls_cert) - 6, "/a.crt"); /* relative to the file */
    /* production: off loopback, a client certificate is required */
    ck_assert_int_eq(load_production("admin_listen = 10.0.0.5:9464\nadmin_tls_cert = a.crt\nadmin_tls_key = a.key\n",
                                     &cfg),
                     -1);
    ck_assert_int_eq(load_production("admin_listen = 10.0.0.5:9464\nadmin_tls_cert = a.crt\nadmin_tls_key = a.key\n"
                                     "admin_tls_client_ca = ops.crt\n",
                                     &cfg),
                     0);
    ck_assert_int_eq(load_production("", &cfg), 0); /* the default, loopback, needs nothing */

    static const refusal_t cases[] = {
        {"admin_listen = 9464\n", "admin_listen: expected HOST:PORT or none"},
        {"admin_listen = 127.0.0.1:8443\n", "admin_listen: 127.0.0.1:8443 is the public listener"},
        {"admin_listen = 0.0.0.0:8443\n", "is the public listener 127.0.0.1:8443"},
        {"admin_listen = 10.0.0.5:9464\n", "not a loopback address: admin_tls_cert and admin_tls_key are required"},
        {"admin_tls_cert = a.crt\n", "admin_tls_cert and admin_tls_key: give both or neither"},
        {"admin_tls_client_ca = ca.crt\n", "admin_tls_client_ca needs admin_tls_cert"},
        {"readyz_cert_days = 5000\n", "readyz_cert_days: expected a number from 0 to 3650"},
    };
    refuse_all(base, cases, sizeof(cases) / sizeof(cases[0]));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_valid);
    tcase_add_test(tc, t_text);
    tcase_add_test(tc, t_refusals);
    tcase_add_test(tc, t_changed);
    tcase_add_test(tc, t_storage);
    tcase_add_test(tc, t_storage_postgresql);
    tcase_add_test(tc, t_front_storage);
    tcase_add_test(tc, t_environment_rules);
    tcase_add_test(tc, t_operator_rules);
    tcase_add_test(tc, t_sam_keys);
    tcase_add_test(tc, t_pkcs11_network_keys);
    tcase_add_test(tc, t_node_id);
    tcase_add_test(tc, t_admin_listen);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, srv_metrics_tcase());
    suite_add_tcase(s, srv_thread_tcase());
    suite_add_tcase(s, srv_log_tcase());
    suite_add_tcase(s, srv_conns_tcase());
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
