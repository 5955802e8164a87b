/*
 * srv_config.c - the configuration file: "key = value" lines, '#' comments.
 * One table row per key; unknown keys and bad values are refused with the
 * file, line and key named. Relative paths are relative to the file's folder.
 * docs/configuration.md documents every key.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <openssl/crypto.h>
#include <unistd.h>
#include "srv.h"

typedef enum { T_STR, T_PATH, T_UINT, T_SIZE, T_BOOL, T_ENV, T_LISTEN, T_STORAGE } kind_t;

typedef struct row {
    const char *key;
    kind_t kind;
    size_t off;
    size_t size;          /* buffer size for strings */
    unsigned long long min, max;
    const char *def;      /* default value, parsed like a file value; NULL = none */
} row_t;

#define O(f) offsetof(srv_config_t, f)
#define S(f) sizeof(((srv_config_t *)0)->f)

static const row_t rows[] = {
    {"environment", T_ENV, O(environment), 0, 0, 0, NULL},
    {"listen", T_LISTEN, 0, 0, 0, 0, NULL},
    {"tls_cert", T_PATH, O(tls_cert), S(tls_cert), 0, 0, ""},
    {"tls_key", T_PATH, O(tls_key), S(tls_key), 0, 0, ""},
    {"plain_http", T_BOOL, O(plain_http), 0, 0, 1, "no"},
    {"allow_test_components", T_BOOL, O(allow_test_components), 0, 0, 1, "no"},
    {"http2", T_BOOL, O(http2), 0, 0, 1, "no"},
    {"threads", T_UINT, O(threads), 0, 1, 64, "1"},
    {"workers", T_UINT, O(workers), 0, 1, 1024, "16"},
    {"auth_workers", T_UINT, O(auth_workers), 0, 1, 64, "4"},
    {"auth_queue", T_UINT, O(auth_queue), 0, 1, 4096, "32"},
    {"password_verify_max", T_UINT, O(password_verify_max), 0, 1, 64, "2"},
    {"request_timeout", T_UINT, O(request_timeout), 0, 1, 3600, "30"},
    {"max_connections", T_UINT, O(max_connections), 0, 1, 1000000, "1024"},
    {"max_connections_per_address", T_UINT, O(max_connections_per_address), 0, 1, 1000000, "64"},
    {"header_timeout", T_UINT, O(header_timeout), 0, 1, 3600, "10"},
    {"idle_timeout", T_UINT, O(idle_timeout), 0, 1, 3600, "60"},
    {"pkcs11_module", T_PATH, O(pkcs11_module), S(pkcs11_module), 0, 0, NULL},
    {"pkcs11_token", T_STR, O(pkcs11_token), 33, 0, 0, NULL},
    {"pkcs11_pin_file", T_PATH, O(pkcs11_pin_file), S(pkcs11_pin_file), 0, 0, NULL},
    {"pkcs11_sessions", T_UINT, O(pkcs11_sessions), 0, 1, 256, "4"},
    {"pkcs11_start_wait", T_UINT, O(pkcs11_start_wait), 0, 0, 50, "20"}, /* under csc-server's 60-s wait for csc-sam */
    {"softhsm_conf", T_PATH, O(softhsm_conf), S(softhsm_conf), 0, 0, ""},
    {"storage", T_STORAGE, O(storage), S(storage.location), 0, 0, NULL}, /* required: check_storage */
    {"lmdb_path", T_PATH, O(storage.location), S(storage.location), 0, 0, ""},  /* older spelling of lmdb: */
    {"storage_passfile", T_PATH, O(storage.passfile), S(storage.passfile), 0, 0, ""}, /* postgresql: libpq's passfile */
    {"front_storage", T_STORAGE, O(front_storage), S(front_storage.location), 0, 0, NULL}, /* check_storage */
    {"front_storage_passfile", T_PATH, O(front_storage.passfile), S(front_storage.passfile), 0, 0, ""},
    {"pkcs11_env", T_STR, O(pkcs11_env), S(pkcs11_env), 0, 0, ""},
    {"pkcs11_sockets", T_STR, O(pkcs11_sockets), S(pkcs11_sockets), 0, 0, "none"},
    {"lmdb_map_size", T_SIZE, O(lmdb_map_size), 0, 1ull << 20, 1ull << 40, "1G"},
    {"access_ttl", T_UINT, O(access_ttl), 0, 60, 86400, "3600"},
    {"refresh_ttl", T_UINT, O(refresh_ttl), 0, 60, 31536000, "2592000"},
    {"sad_ttl", T_UINT, O(sad_ttl), 0, 10, 86400, "300"},
    {"max_failures", T_UINT, O(max_failures), 0, 1, 100, "5"},
    {"lock_seconds", T_UINT, O(lock_seconds), 0, 1, 604800, "900"},
    {"lock_max_seconds", T_UINT, O(lock_max_seconds), 0, 1, 31536000, "86400"},
    {"audit_fail_window", T_UINT, O(audit_fail_window), 0, 1, 86400, "60"},
    {"audit_fail_entries", T_UINT, O(audit_fail_entries), 0, 16, 65536, "4096"},
    {"max_body", T_SIZE, O(max_body), 0, 1024, 16ull << 20, "256K"},
    {"max_hashes", T_UINT, O(max_hashes), 0, 1, STOR_DIGESTS_MAX, "1000"},
    {"max_json_depth", T_UINT, O(max_json_depth), 0, 4, 64, "16"},
    {"access_log", T_PATH, O(access_log), S(access_log), 0, 0, "-"},
    {"access_log_format", T_STR, O(access_log_format), S(access_log_format), 0, 0, "text"},
    {"public_url", T_STR, O(public_url), S(public_url), 0, 0, ""},
    {"oauth_code_ttl", T_UINT, O(oauth_code_ttl), 0, 10, 600, "60"},
    {"oauth_par_ttl", T_UINT, O(oauth_par_ttl), 0, 10, 600, "90"},
    {"oauth_session_idle", T_UINT, O(oauth_session_idle), 0, 30, 3600, "300"},
    {"oauth_session_max", T_UINT, O(oauth_session_max), 0, 60, 86400, "900"},
    {"oauth_revoke_status", T_UINT, O(oauth_revoke_status), 0, 200, 204, "200"},
    {"credential_token_ttl", T_UINT, O(credential_token_ttl), 0, 10, 3600, "300"},
    {"rate_window", T_UINT, O(rate_window), 0, 1, 3600, "60"},
    {"rate_max", T_UINT, O(rate_max), 0, 1, 100000, "20"},
    {"info_name", T_STR, O(info_name), S(info_name), 0, 0, "CSC remote signing service"},
    {"info_logo", T_STR, O(info_logo), S(info_logo), 0, 0, ""},
    {"info_logo_file", T_PATH, O(info_logo_file), S(info_logo_file), 0, 0, ""},
    {"info_region", T_STR, O(info_region), 3, 0, 0, "JP"},
    {"info_lang", T_STR, O(info_lang), 16, 0, 0, "en"},
    {"info_description", T_STR, O(info_description), 200, 0, 0, "Remote signature service"},
    {"info_specs", T_STR, O(info_specs), 16, 0, 0, "2.0.0.2"},
    {"ca_cert", T_PATH, O(ca_cert), S(ca_cert), 0, 0, ""},
    {"ca_key", T_PATH, O(ca_key), S(ca_key), 0, 0, ""},
    {"ca_chain", T_PATH, O(ca_chain), S(ca_chain), 0, 0, ""},
    {"cert_days", T_UINT, O(cert_days), 0, 1, 3650, "365"},
    {"totp_issuer", T_STR, O(totp_issuer), 64, 0, 0, "CSC remote signing"},
    {"default_lang", T_STR, O(default_lang), S(default_lang), 0, 0, "en"},
    {"scrypt_log2n", T_UINT, O(scrypt_log2n), 0, 10, 20, "15"},
    {"key_backup", T_STR, O(key_backup), S(key_backup), 0, 0, "no"},
    {"audit_sign_interval", T_UINT, O(audit_sign_interval), 0, 0, 86400, "300"},
    {"audit_sign_records", T_UINT, O(audit_sign_records), 0, 0, 1000000, "0"},
    {"purge_interval", T_UINT, O(purge_interval), 0, 0, 86400, "300"},
    {"tsa_credential", T_STR, O(tsa_credential), S(tsa_credential), 0, 0, ""},
    {"tsa_policy", T_STR, O(tsa_policy), S(tsa_policy), 0, 0, ""},
    {"tsa_accuracy_ms", T_UINT, O(tsa_accuracy_ms), 0, 0, 60000, "1000"},
    {"clock_check", T_STR, O(clock_check), S(clock_check), 0, 0, "none"}, /* adjtimex in production unless given */
    {"clock_max_error_ms", T_UINT, O(clock_max_error_ms), 0, 1, 60000, "1000"},
    {"trust_anchors", T_PATH, O(trust_anchors), S(trust_anchors), 0, 0, ""},
    {"crl_dir", T_PATH, O(crl_dir), S(crl_dir), 0, 0, ""},
    {"crl_allow_stale", T_BOOL, O(crl_allow_stale), 0, 0, 1, "no"},
    {"crl_require", T_BOOL, O(crl_require), 0, 0, 1, "no"},
    {"allow_scal1", T_BOOL, O(allow_scal1), 0, 0, 1, "no"},
    {"allow_single_factor", T_BOOL, O(allow_single_factor), 0, 0, 1, "no"},
    {"allow_builtin_ca", T_BOOL, O(allow_builtin_ca), 0, 0, 1, "no"},
    {"otp_sender", T_STR, O(otp_sender), S(otp_sender), 0, 0, ""},
    {"otp_sender_timeout", T_UINT, O(otp_sender_timeout), 0, 1, 120, "10"},
    {"challenge_ttl", T_UINT, O(challenge_ttl), 0, 5, 1800, "300"},
    {"approval_ttl", T_UINT, O(approval_ttl), 0, 10, 3600, "300"},
    {"node_id", T_STR, O(node_id), S(node_id), 0, 0, ""}, /* "" = this host's name: check_node_id */
    {"async_workers", T_UINT, O(async_workers), 0, 1, 64, "2"},
    {"async_queue", T_UINT, O(async_queue), 0, 1, 100000, "64"},
    {"async_validity_min", T_UINT, O(async_validity_min), 0, 1, 86400, "1"},
    {"async_validity_default", T_UINT, O(async_validity_default), 0, 1, 86400, "600"},
    {"async_validity_max", T_UINT, O(async_validity_max), 0, 1, 86400, "3600"},
    {"notify_timeout", T_UINT, O(notify_timeout), 0, 1, 120, "10"},
    {"notify_threads", T_UINT, O(notify_threads), 0, 1, 16, "2"},
    {"notify_queue", T_UINT, O(notify_queue), 0, 1, 100000, "256"},
    {"notify_allow", T_STR, O(notify_allow), S(notify_allow), 0, 0, ""},
    {"admin_session_idle", T_UINT, O(admin_session_idle), 0, 1, 86400, "900"},
    {"admin_session_max", T_UINT, O(admin_session_max), 0, 1, 604800, "28800"},
    {"admin_approval_ttl", T_UINT, O(admin_approval_ttl), 0, 1, 2592000, "86400"},
    {"two_person", T_STR, O(two_person), S(two_person), 0, 0, ""}, /* SRV_TWO_PERSON_PRODUCTION in production */
    {"allow_combined_roles", T_BOOL, O(allow_combined_roles), 0, 0, 1, "no"},
    {"pin_min_length", T_UINT, O(pin_min_length), 0, 6, 32, "6"}, /* 8 in production unless given */
    {"enroll_code_ttl", T_UINT, O(enroll_code_ttl), 0, 300, 1209600, "86400"},
    {"restore_request_ttl", T_UINT, O(restore_request_ttl), 0, 3600, 7776000, "2592000"},
    {"enroll_code_tries", T_UINT, O(enroll_code_tries), 0, 1, 20, "5"},
    {"password_min_length", T_UINT, O(password_min_length), 0, 8, 128, "12"},
    {"password_classes", T_UINT, O(password_classes), 0, 1, 4, "2"},
    {"sam_mode", T_STR, O(sam_mode), S(sam_mode), 0, 0, "spawn"},
    {"sam_program", T_PATH, O(sam_program), S(sam_program), 0, 0, ""},
    {"sam_socket", T_PATH, O(sam_socket), S(sam_socket), 0, 0, "csc-sam.sock"},
    {"sam_socket_group", T_STR, O(sam_socket_group), S(sam_socket_group), 0, 0, ""},
    {"sam_allowed_user", T_STR, O(sam_allowed_user), S(sam_allowed_user), 0, 0, ""},
    {"sam_max_connections", T_UINT, O(sam_max_connections), 0, 1, 1024, "64"},
    {"sam_connections", T_UINT, O(sam_connections), 0, 1, 1024, "16"}, /* unless given: one per calling thread */
    {"sam_timeout_ms", T_UINT, O(sam_timeout_ms), 0, 100, 600000, "30000"},
    {"read_cache_ms", T_UINT, O(read_cache_ms), 0, 0, 5000, "0"}, /* 1000 unless given when the front reads PostgreSQL */
    {"sam_heap_reserve", T_UINT, O(sam_heap_reserve), 0, 0, 1048576, "4096"}, /* KiB */
    {"server_user", T_STR, O(server_user), S(server_user), 0, 0, ""},
    {"sam_user", T_STR, O(sam_user), S(sam_user), 0, 0, ""},
    {"seccomp", T_BOOL, O(seccomp), 0, 0, 1, "yes"},
    /* the operators' listener (srv_health.c); checked by check_admin_listen */
    {"admin_listen", T_STR, O(admin_listen), S(admin_listen), 0, 0, "127.0.0.1:9464"},
    {"admin_tls_cert", T_PATH, O(admin_tls_cert), S(admin_tls_cert), 0, 0, ""},
    {"admin_tls_key", T_PATH, O(admin_tls_key), S(admin_tls_key), 0, 0, ""},
    {"admin_tls_client_ca", T_PATH, O(admin_tls_client_ca), S(admin_tls_client_ca), 0, 0, ""},
    {"readyz_cert_days", T_UINT, O(readyz_cert_days), 0, 0, 3650, "14"},
    {"sam_admin_socket", T_PATH, O(sam_admin_socket), S(sam_admin_socket), 0, 0, "csc-sam-admin.sock"},
    {"sam_admin_group", T_STR, O(sam_admin_group), S(sam_admin_group), 0, 0, ""},
};

_Static_assert(sizeof(rows) / sizeof(rows[0]) <= SRV_CONFIG_KEYS,
               "SRV_CONFIG_KEYS: more keys than srv_config_t.given holds");

typedef struct ctx {
    const char *file;
    unsigned line;
    char dir[PATH_MAX];
} ctx_t;

__attribute__((format(printf, 2, 3))) static int fail(const ctx_t *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%u: ", c->file, c->line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

static int parse_ull(const char *v, unsigned long long *out, int with_suffix)
{
    char *end;
    if (!isdigit((unsigned char)v[0]))
        return -1;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0)
        return -1;
    if (with_suffix && *end != '\0' && end[1] == '\0') {
        int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' || *end == 'm' ? 20 : *end == 'G' || *end == 'g' ? 30 : -1;
        if (shift < 0 || n > (~0ull >> shift))
            return -1;
        n <<= shift;
        end++;
    }
    if (*end != '\0')
        return -1;
    *out = n;
    return 0;
}

static int set_value(const ctx_t *c, srv_config_t *cfg, const row_t *r, const char *v)
{
    char *base = (char *)cfg;
    unsigned long long n;

    switch (r->kind) {
    case T_STR:
        if (strlen(v) >= r->size)
            return fail(c, "%s: value longer than %zu characters", r->key, r->size - 1);
        memcpy(base + r->off, v, strlen(v) + 1);
        return 0;
    case T_STORAGE: {
        /* <backend>:<location>; an lmdb location is a path (relative to the file's folder, like T_PATH). */
        srv_storage_t *st = (srv_storage_t *)(base + r->off);
        const char *loc;
        int src = stor_spec_split(v, st->backend, sizeof(st->backend), &loc);
        if (src == STOR_ERR_NOTFOUND)
            return fail(c, "%s: unknown backend \"%s\" (backends: %s)", r->key, st->backend, stor_backend_names());
        if (src != STOR_OK)
            return fail(c, "%s: expected <backend>:<location> (backends: %s), got \"%s\"", r->key,
                        stor_backend_names(), v);
        if (loc[0] == '\0')
            return fail(c, "%s: %s: needs a location (lmdb:PATH, the database's folder; postgresql:CONNINFO)", r->key,
                        st->backend);
        if (strcmp(st->backend, "postgresql") == 0) { /* a libpq conninfo, checked by check_conninfo */
            if (strlen(loc) >= sizeof(st->location))
                return fail(c, "%s: value longer than %zu characters", r->key, sizeof(st->location) - 1);
            memcpy(st->location, loc, strlen(loc) + 1);
            return 0;
        }
        row_t as_path = *r;
        as_path.kind = T_PATH;
        as_path.off = r->off + offsetof(srv_storage_t, location);
        return set_value(c, cfg, &as_path, loc);
    }
    case T_PATH: {
        char buf[PATH_MAX];
        int len = v[0] == '/' || v[0] == '\0' || strcmp(v, "-") == 0 ? snprintf(buf, sizeof(buf), "%s", v)
                                                                     : snprintf(buf, sizeof(buf), "%s/%s", c->dir, v);
        if (len < 0 || (size_t)len >= r->size)
            return fail(c, "%s: path too long", r->key);
        memcpy(base + r->off, buf, (size_t)len + 1);
        return 0;
    }
    case T_UINT:
    case T_SIZE:
        if (parse_ull(v, &n, r->kind == T_SIZE) != 0 || n < r->min || n > r->max)
            return fail(c, "%s: expected a number from %llu to %llu%s, got \"%s\"", r->key, r->min, r->max,
                        r->kind == T_SIZE ? " (suffix K, M or G allowed)" : "", v);
        if (r->kind == T_UINT)
            *(unsigned *)(base + r->off) = (unsigned)n;
        else
            *(size_t *)(base + r->off) = (size_t)n;
        return 0;
    case T_BOOL:
        if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "on") == 0)
            *(unsigned *)(base + r->off) = 1;
        else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 || strcmp(v, "off") == 0)
            *(unsigned *)(base + r->off) = 0;
        else
            return fail(c, "%s: expected yes or no, got \"%s\"", r->key, v);
        return 0;
    case T_ENV:
        if (strcmp(v, "production") == 0)
            cfg->environment = CSC_ENV_PRODUCTION;
        else if (strcmp(v, "test") == 0)
            cfg->environment = CSC_ENV_TEST;
        else
            return fail(c, "environment: expected production or test, got \"%s\"", v);
        return 0;
    case T_LISTEN:
        if (cfg->n_listen == SRV_LISTEN_MAX)
            return fail(c, "listen: at most %d addresses", SRV_LISTEN_MAX);
        if (strlen(v) >= SRV_STR || strrchr(v, ':') == NULL)
            return fail(c, "listen: expected HOST:PORT, got \"%s\"", v);
        snprintf(cfg->listen[cfg->n_listen++], SRV_STR, "%s", v);
        return 0;
    }
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* notify_allow: host names, addresses and address/bits, separated by commas or spaces; the first bad entry or NULL. */
static const char *bad_allow_entry(const char *list, char *entry, size_t sz)
{
    const char *p = list;
    while (*p != '\0') {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t,");
        if (n == 0)
            break;
        snprintf(entry, sz, "%.*s", (int)n, p);
        p += n;
        unsigned char a[16];
        char *slash = strchr(entry, '/'), *end;
        if (slash != NULL) {
            *slash = '\0';
            int v4 = inet_pton(AF_INET, entry, a) == 1, v6 = !v4 && inet_pton(AF_INET6, entry, a) == 1;
            long bits = strtol(slash + 1, &end, 10);
            *slash = '/';
            if ((!v4 && !v6) || slash[1] == '\0' || *end != '\0' || bits < 0 || bits > (v4 ? 32 : 128))
                return entry;
        } else if (inet_pton(AF_INET, entry, a) != 1 && inet_pton(AF_INET6, entry, a) != 1 &&
                   (n >= 254 || strspn(entry, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n)) {
            return entry;
        }
    }
    return NULL;
}

/* A user or group by name or number: 0, or -1 when there is none. */
static int resolve_id(const char *v, int group, unsigned *id)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (isdigit((unsigned char)v[0]) && *end == '\0' && errno == 0 && n < UINT32_MAX) {
        *id = (unsigned)n;
        return 0;
    }
    struct passwd *pw = group ? NULL : getpwnam(v);
    struct group *gr = group ? getgrnam(v) : NULL;
    if (pw == NULL && gr == NULL)
        return -1;
    *id = group ? (unsigned)gr->gr_gid : (unsigned)pw->pw_uid;
    return 0;
}

/* The csc-sam keys: the mode, a socket path that fits a sockaddr_un, the peer's user, the socket's group. */
static int check_sam(const ctx_t *c, srv_config_t *cfg)
{
    unsigned id;
    if (strcmp(cfg->sam_mode, "spawn") != 0 && strcmp(cfg->sam_mode, "connect") != 0)
        return fail(c, "sam_mode: expected spawn or connect, got \"%s\"", cfg->sam_mode);
    cfg->sam_connect = strcmp(cfg->sam_mode, "connect") == 0;
    if (cfg->sam_socket[0] == '\0' || strlen(cfg->sam_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return fail(c, "sam_socket: a Unix socket path of 1 to %zu bytes is required, got \"%s\"",
                    sizeof(((struct sockaddr_un *)0)->sun_path) - 1, cfg->sam_socket);
    if (cfg->sam_connections > cfg->sam_max_connections)
        return fail(c, "sam_connections: at most sam_max_connections (%u)", cfg->sam_max_connections);
    cfg->sam_allowed_uid = (uid_t)-1;
    if (cfg->sam_allowed_user[0] != '\0') {
        if (resolve_id(cfg->sam_allowed_user, 0, &id) != 0)
            return fail(c, "sam_allowed_user: no user \"%s\"", cfg->sam_allowed_user);
        cfg->sam_allowed_uid = (uid_t)id;
    }
    cfg->sam_socket_gid = (gid_t)-1;
    if (cfg->sam_socket_group[0] != '\0') {
        if (resolve_id(cfg->sam_socket_group, 1, &id) != 0)
            return fail(c, "sam_socket_group: no group \"%s\"", cfg->sam_socket_group);
        cfg->sam_socket_gid = (gid_t)id;
    }
    if (cfg->sam_admin_socket[0] == '\0' ||
        strlen(cfg->sam_admin_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return fail(c, "sam_admin_socket: a Unix socket path of 1 to %zu bytes is required, got \"%s\"",
                    sizeof(((struct sockaddr_un *)0)->sun_path) - 1, cfg->sam_admin_socket);
    if (strcmp(cfg->sam_admin_socket, cfg->sam_socket) == 0)
        return fail(c, "sam_admin_socket: must differ from sam_socket (the front end must not reach the operators' "
                       "socket)");
    cfg->sam_admin_gid = (gid_t)-1;
    if (cfg->sam_admin_group[0] != '\0') {
        if (resolve_id(cfg->sam_admin_group, 1, &id) != 0)
            return fail(c, "sam_admin_group: no group \"%s\"", cfg->sam_admin_group);
        cfg->sam_admin_gid = (gid_t)id;
    }
    return 0;
}

/* pkcs11_env: NAME=VALUE for the module (a network HSM's client: p11-kit-client.so's P11_KIT_SERVER_ADDRESS), set by
 * csc-sam before it loads the module. Not the dynamic loader's variables (LD_*: read at exec, useless here, and
 * dangerous in a child), nor SOFTHSM2_CONF (softhsm_conf says it). pkcs11_sockets: what csc-sam's seccomp filter lets
 * the module open (srv_priv.c). */
static int check_pkcs11(const ctx_t *c, const srv_config_t *cfg)
{
    const char *e = cfg->pkcs11_env, *eq = strchr(e, '=');
    size_t n = eq != NULL ? (size_t)(eq - e) : 0;
    if (e[0] != '\0') {
        if (eq == NULL || n == 0 || eq[1] == '\0' || isdigit((unsigned char)e[0]) ||
            strspn(e, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != n)
            return fail(c, "pkcs11_env: expected NAME=VALUE (NAME: letters, digits, '_'), got \"%s\"", e);
        if (n > 64)
            return fail(c, "pkcs11_env: the name is longer than 64 characters");
        if (strncmp(e, "LD_", 3) == 0 || (n == 13 && strncmp(e, "SOFTHSM2_CONF", 13) == 0))
            return fail(c, "pkcs11_env: %.*s cannot be set here (LD_* act only at exec; SOFTHSM2_CONF: softhsm_conf)",
                        (int)n, e);
    }
    if (strcmp(cfg->pkcs11_sockets, "none") != 0 && strcmp(cfg->pkcs11_sockets, "unix") != 0 &&
        strcmp(cfg->pkcs11_sockets, "inet") != 0)
        return fail(c, "pkcs11_sockets: expected none, unix or inet, got \"%s\"", cfg->pkcs11_sockets);
    return 0;
}

/* server_user, sam_user: "" (none) or letters, digits, '.', '_', '-', not starting with '-'. */
static int bad_user_name(const char *u)
{
    return u[0] == '-' || strspn(u, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(u);
}

/* One "keyword = value" of a libpq conninfo at *p (value bare or single-quoted with \\ escapes): key and value
 * copied (value unescaped), *p moved past it. 0, 1 at the end, -1 if malformed or too long. */
static int conninfo_next(const char **p, char *key, size_t kn, char *val, size_t vn)
{
    const char *s = *p;
    size_t k = 0, v = 0;

    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return 1;
    while ((*s >= 'a' && *s <= 'z') || *s == '_')
        if (k + 1 < kn)
            key[k++] = *s++;
        else
            return -1;
    key[k] = '\0';
    while (*s == ' ' || *s == '\t')
        s++;
    if (k == 0 || *s++ != '=')
        return -1;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\'') {
        for (s++; *s != '\''; s++) {
            if (*s == '\\' && s[1] != '\0')
                s++;
            if (*s == '\0' || v + 1 >= vn)
                return -1;
            val[v++] = *s;
        }
        s++;
    } else {
        for (; *s != '\0' && *s != ' ' && *s != '\t'; s++) {
            if (*s == '\\' && s[1] != '\0')
                s++;
            if (v + 1 >= vn)
                return -1;
            val[v++] = *s;
        }
    }
    val[v] = '\0';
    *p = s;
    return 0;
}

/* What check_conninfo keeps of a conninfo: where it connects (so that front_storage can be held to storage's
 * database) and its client certificate (production gives each role its own). "" when not given. */
typedef struct {
    char host[256], hostaddr[256], port[16], dbname[64], sslcert[PATH_MAX];
} conninfo_t;

static void conninfo_keep(conninfo_t *ci, const char *key, const char *val)
{
    static const struct {
        const char *key;
        size_t off, size;
    } kept[] = {
#define K(f) {#f, offsetof(conninfo_t, f), sizeof(((conninfo_t *)0)->f)}
        K(host), K(hostaddr), K(port), K(dbname), K(sslcert),
#undef K
    };
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        if (strcmp(key, kept[i].key) == 0)
            snprintf((char *)ci + kept[i].off, kept[i].size, "%s", val);
}

/* KEY = postgresql:CONNINFO (storage, front_storage): the keyword = value form only; never a password in the
 * configuration text (libpq reads it from KEY_passfile, PGPASSFILE or ~/.pgpass); in production mutual TLS with the
 * database (sslmode=verify-full, sslcert, sslkey). KEY_passfile becomes the conninfo's passfile. */
static int check_conninfo(const ctx_t *c, const srv_config_t *cfg, const char *what, srv_storage_t *st,
                          conninfo_t *out)
{
    char key[32], val[PATH_MAX], *ci = st->location;
    const char *p = ci;
    int rc, verify_full = 0, cert = 0, key_file = 0, passfile = 0;
    size_t len;

    memset(out, 0, sizeof(*out));
    if (strncmp(ci, "postgresql://", 13) == 0 || strncmp(ci, "postgres://", 11) == 0)
        return fail(c, "%s: postgresql: give the conninfo as keyword=value pairs, not a URI", what);
    while ((rc = conninfo_next(&p, key, sizeof(key), val, sizeof(val))) == 0) {
        if (strcmp(key, "password") == 0) {
            OPENSSL_cleanse(val, sizeof(val));
            OPENSSL_cleanse(st->location, sizeof(st->location));
            return fail(c, "%s: postgresql: password= is refused in the configuration (use %s_passfile, PGPASSFILE or "
                           "~/.pgpass)", what, what);
        }
        verify_full |= strcmp(key, "sslmode") == 0 && strcmp(val, "verify-full") == 0;
        cert |= strcmp(key, "sslcert") == 0 && val[0] != '\0';
        key_file |= strcmp(key, "sslkey") == 0 && val[0] != '\0';
        passfile |= strcmp(key, "passfile") == 0;
        conninfo_keep(out, key, val);
    }
    if (rc < 0)
        return fail(c, "%s: postgresql: a malformed conninfo (expected keyword=value pairs)", what);
    if (cfg->environment == CSC_ENV_PRODUCTION && !(verify_full && cert && key_file))
        return fail(c, "%s: postgresql: production needs mutual TLS with the database: sslmode=verify-full, "
                       "sslcert and sslkey", what);
    if (st->passfile[0] == '\0')
        return 0;
    if (passfile)
        return fail(c, "%s_passfile and %s's passfile=: give one", what, what);
    len = strlen(ci);
    if (len + sizeof(" passfile=''") + 2 * strlen(st->passfile) > sizeof(st->location))
        return fail(c, "%s_passfile: path too long", what);
    ci += len;
    ci += sprintf(ci, " passfile='");
    for (const char *f = st->passfile; *f != '\0'; f++) {
        if (*f == '\'' || *f == '\\')
            *ci++ = '\\';
        *ci++ = *f;
    }
    memcpy(ci, "'", 2);
    return 0;
}

/*
 * front_storage = postgresql:CONNINFO: csc-server's own connection to storage's database, as the role whose GRANTs
 * let it write only web_sessions, async_results and pars (csc_front), while csc-sam and csc-admin connect with
 * storage's (csc_sam). Only with storage = postgresql (on lmdb both processes open one folder); the same host, hostaddr,
 * port and dbname as storage's where either names them. Required in production, with a client certificate of
 * its own (one per node and role, JIPDEC 2.2.4). Without it (test environment) csc-server uses storage's
 * connection; its write guard (srv_front_restrict_writes) still holds it to its own tables.
 */
static int check_front_storage(const ctx_t *c, srv_config_t *cfg, const conninfo_t *sam)
{
    srv_storage_t *f = &cfg->front_storage;
    int pg = strcmp(cfg->storage.backend, "postgresql") == 0, production = cfg->environment == CSC_ENV_PRODUCTION;
    conninfo_t front;

    if (f->backend[0] == '\0') {
        if (f->passfile[0] != '\0')
            return fail(c, "front_storage_passfile: only with front_storage = postgresql:...");
        if (pg && production)
            return fail(c, "front_storage: required in production with storage = postgresql: csc-server connects as "
                           "its own role (csc_front) with its own client certificate");
        return 0;
    }
    if (!pg)
        return fail(c, "front_storage: only with storage = postgresql:... (with lmdb csc-server opens storage's folder)");
    if (strcmp(f->backend, "postgresql") != 0)
        return fail(c, "front_storage: expected postgresql:CONNINFO (the database of storage), got %s:", f->backend);
    if (check_conninfo(c, cfg, "front_storage", f, &front) != 0)
        return -1;
    static const struct {
        const char *key;
        size_t off;
    } same[] = {{"host", offsetof(conninfo_t, host)}, {"hostaddr", offsetof(conninfo_t, hostaddr)},
                {"port", offsetof(conninfo_t, port)}, {"dbname", offsetof(conninfo_t, dbname)}};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        if (strcmp((const char *)&front + same[i].off, (const char *)sam + same[i].off) != 0)
            return fail(c, "front_storage: %s differs from storage's (\"%s\" and \"%s\"): both name one database",
                        same[i].key, (const char *)&front + same[i].off, (const char *)sam + same[i].off);
    if (production && strcmp(front.sslcert, sam->sslcert) == 0)
        return fail(c, "front_storage: production needs csc-server's own client certificate (sslcert is storage's)");
    return 0;
}

/* storage (or its older spelling lmdb_path = PATH, i.e. storage = lmdb:PATH): exactly one is given; then
 * front_storage. */
static int check_storage(const ctx_t *c, srv_config_t *cfg, const unsigned char *seen)
{
    int storage = 0, lmdb_path = 0;
    conninfo_t sam;

    memset(&sam, 0, sizeof(sam));
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        storage |= seen[i] && rows[i].kind == T_STORAGE && rows[i].off == O(storage);
        lmdb_path |= seen[i] && strcmp(rows[i].key, "lmdb_path") == 0;
    }
    if (storage && lmdb_path)
        return fail(c, "storage and lmdb_path: give one (lmdb_path = PATH is the older spelling of storage = lmdb:PATH)");
    if (!storage && !lmdb_path)
        return fail(c, "missing required key storage (storage = lmdb:PATH)");
    if (lmdb_path)
        snprintf(cfg->storage.backend, sizeof(cfg->storage.backend), "lmdb");
    if (cfg->storage.location[0] == '\0')
        return fail(c, "%s: an empty location", storage ? "storage" : "lmdb_path");
    if (strcmp(cfg->storage.backend, "postgresql") == 0) {
        if (check_conninfo(c, cfg, "storage", &cfg->storage, &sam) != 0)
            return -1;
    } else if (cfg->storage.passfile[0] != '\0') {
        return fail(c, "storage_passfile: only with storage = postgresql:...");
    }
    return check_front_storage(c, cfg, &sam);
}

/* node_id: the host's name unless given; 1..STOR_NODE_MAX of [A-Za-z0-9._-] either way (it is stored with the
 * node's asynchronous jobs: stor_async_fail_pending). */
static int check_node_id(const ctx_t *c, srv_config_t *cfg)
{
    int given = cfg->node_id[0] != '\0';

    if (!given && gethostname(cfg->node_id, sizeof(cfg->node_id)) != 0)
        cfg->node_id[0] = '\0';
    cfg->node_id[sizeof(cfg->node_id) - 1] = '\0';
    size_t n = strlen(cfg->node_id);
    if (n == 0 || strspn(cfg->node_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
        return fail(c, given ? "node_id: expected 1..%d of A-Z a-z 0-9 . _ -, got \"%s\""
                             : "node_id: the host name is no node id (1..%d of A-Z a-z 0-9 . _ -): \"%s\"; set node_id",
                    STOR_NODE_MAX, cfg->node_id);
    return 0;
}

/* HOST:PORT into host (brackets of [V6] taken off) and port; -1 when there is no ':' or a part is too long. */
static int split_addr(const char *addr, char *host, size_t hsz, char *port, size_t psz)
{
    const char *colon = strrchr(addr, ':');
    size_t hlen = colon != NULL ? (size_t)(colon - addr) : 0;
    if (colon == NULL || colon[1] == '\0' || hlen >= hsz || strlen(colon + 1) >= psz)
        return -1;
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']')
        snprintf(host, hsz, "%.*s", (int)hlen - 2, addr + 1);
    else
        snprintf(host, hsz, "%.*s", (int)hlen, addr);
    snprintf(port, psz, "%s", colon + 1);
    return 0;
}

static int is_wildcard(const char *host)
{
    return host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || strcmp(host, "*") == 0;
}

static int is_loopback(const char *host)
{
    struct in_addr a4;
    return strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 ||
           (inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127);
}

/* admin_listen: none, or HOST:PORT on no port a public listener takes (the same port on the same or a wildcard
 * address); a non-loopback address needs TLS, and in production a client certificate (admin_tls_client_ca). */
static int check_admin_listen(const ctx_t *c, srv_config_t *cfg)
{
    char host[SRV_STR], port[16], lhost[SRV_STR], lport[16];
    if (strcmp(cfg->admin_listen, "none") == 0) {
        cfg->admin_listen[0] = '\0';
        return 0;
    }
    if (split_addr(cfg->admin_listen, host, sizeof(host), port, sizeof(port)) != 0)
        return fail(c, "admin_listen: expected HOST:PORT or none, got \"%s\"", cfg->admin_listen);
    for (unsigned i = 0; i < cfg->n_listen; i++)
        if (split_addr(cfg->listen[i], lhost, sizeof(lhost), lport, sizeof(lport)) == 0 && strcmp(port, lport) == 0 &&
            (strcmp(host, lhost) == 0 || is_wildcard(host) || is_wildcard(lhost)))
            return fail(c, "admin_listen: %s is the public listener %s (the operators' endpoints are never on the "
                           "public port)", cfg->admin_listen, cfg->listen[i]);
    if ((cfg->admin_tls_cert[0] == '\0') != (cfg->admin_tls_key[0] == '\0'))
        return fail(c, "admin_tls_cert and admin_tls_key: give both or neither");
    if (cfg->admin_tls_client_ca[0] != '\0' && cfg->admin_tls_cert[0] == '\0')
        return fail(c, "admin_tls_client_ca needs admin_tls_cert and admin_tls_key (mutual TLS is TLS)");
    if (!is_loopback(host) && cfg->admin_tls_cert[0] == '\0')
        return fail(c, "admin_listen: %s is not a loopback address: admin_tls_cert and admin_tls_key are required "
                       "(plain HTTP only on 127.0.0.0/8, ::1, localhost)", cfg->admin_listen);
    if (!is_loopback(host) && cfg->admin_tls_client_ca[0] == '\0' && cfg->environment == CSC_ENV_PRODUCTION)
        return fail(c, "admin_listen: %s is not a loopback address: in production admin_tls_client_ca is required "
                       "(only operators' clients with a certificate of that CA may connect)", cfg->admin_listen);
    return 0;
}

static int check_required(const ctx_t *c, srv_config_t *cfg, const unsigned char *seen)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (!seen[i] && rows[i].def == NULL && rows[i].kind != T_LISTEN && rows[i].kind != T_STORAGE)
            return fail(c, "missing required key %s", rows[i].key);
    if (cfg->n_listen == 0)
        return fail(c, "missing required key listen");
    if (check_storage(c, cfg, seen) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (!seen[i] && rows[i].off == O(pin_min_length) && cfg->environment == CSC_ENV_PRODUCTION)
            cfg->pin_min_length = 8;
        else if (!seen[i] && rows[i].off == O(clock_check) && cfg->environment == CSC_ENV_PRODUCTION)
            snprintf(cfg->clock_check, sizeof(cfg->clock_check), "adjtimex");
        else if (!seen[i] && rows[i].off == O(two_person) && cfg->environment == CSC_ENV_PRODUCTION)
            snprintf(cfg->two_person, sizeof(cfg->two_person), "%s", SRV_TWO_PERSON_PRODUCTION);
        else if (!seen[i] && rows[i].off == O(read_cache_ms) &&
                 strcmp(srv_storage_of(cfg, 1)->backend, "postgresql") == 0)
            /* a read there is a round trip and statements of the database's CPU; on LMDB a lookup in mapped pages */
            cfg->read_cache_ms = 1000;
        else if (!seen[i] && rows[i].off == O(sam_connections)) {
            /* one connection for every thread that calls csc-sam (workers, auth workers, async workers): a thread
             * never waits for another's connection; at most sam_max_connections */
            unsigned want = cfg->workers + cfg->auth_workers + cfg->async_workers;
            cfg->sam_connections = want < cfg->sam_max_connections ? want : cfg->sam_max_connections;
        }
    if (strcmp(cfg->two_person, "none") == 0) /* explicit: no command needs a second operator */
        cfg->two_person[0] = '\0';
    if (cfg->plain_http && cfg->environment != CSC_ENV_TEST && !cfg->allow_test_components)
        return fail(c, "plain_http: refused in production (allowed with environment = test, or allow_test_components = yes)");
    if (!cfg->plain_http && (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0'))
        return fail(c, "tls_cert and tls_key are required (plain_http is for the test environment only)");
    if (strcmp(cfg->access_log_format, "text") != 0 && strcmp(cfg->access_log_format, "json") != 0)
        return fail(c, "access_log_format: expected text or json, got \"%s\"", cfg->access_log_format);
    if (strcmp(cfg->key_backup, "no") != 0 && strcmp(cfg->key_backup, "wrapped") != 0)
        return fail(c, "key_backup: expected no or wrapped, got \"%s\"", cfg->key_backup);
    if (strcmp(cfg->clock_check, "none") != 0 && strcmp(cfg->clock_check, "adjtimex") != 0)
        return fail(c, "clock_check: expected none or adjtimex, got \"%s\"", cfg->clock_check);
    if (cfg->crl_dir[0] != '\0' && cfg->trust_anchors[0] == '\0')
        return fail(c, "crl_dir needs trust_anchors (the CA certificates whose CRLs are accepted)");
    if (strncmp(cfg->otp_sender, "file:", 5) == 0 && cfg->environment != CSC_ENV_TEST && !cfg->allow_test_components)
        return fail(c, "otp_sender: file: writes one-time codes to a file and is for the test environment only");
    if (cfg->async_validity_min > cfg->async_validity_default || cfg->async_validity_default > cfg->async_validity_max)
        return fail(c, "async_validity_min <= async_validity_default <= async_validity_max is required");
    char entry[300];
    if (bad_allow_entry(cfg->notify_allow, entry, sizeof(entry)) != NULL)
        return fail(c, "notify_allow: \"%s\" is no host name, address or address/bits", entry);
    /* Process hardening (srv_priv.c): user names as useradd takes them; two processes, two users. */
    if (bad_user_name(cfg->server_user))
        return fail(c, "server_user: \"%s\" is no user name", cfg->server_user);
    if (bad_user_name(cfg->sam_user))
        return fail(c, "sam_user: \"%s\" is no user name", cfg->sam_user);
    if (cfg->server_user[0] != '\0' && strcmp(cfg->server_user, cfg->sam_user) == 0)
        return fail(c, "sam_user: must differ from server_user (the front end must not reach the SAM's files)");
    if (!cfg->seccomp && cfg->environment == CSC_ENV_PRODUCTION)
        return fail(c, "seccomp: no is for debugging only and refused in production");
    if (cfg->lock_max_seconds < cfg->lock_seconds)
        return fail(c, "lock_max_seconds: must be at least lock_seconds (%u)", cfg->lock_seconds);
    /* The languages the pages have a catalogue for (csc-api/web/messages/). */
    if (strcmp(cfg->default_lang, "en") != 0 && strcmp(cfg->default_lang, "ja") != 0)
        return fail(c, "default_lang: expected en or ja, got \"%s\"", cfg->default_lang);
    if (cfg->oauth_revoke_status != 200 && cfg->oauth_revoke_status != 204)
        return fail(c, "oauth_revoke_status: expected 200 or 204, got %u", cfg->oauth_revoke_status);
    if (cfg->max_body > 16u << 20)
        return fail(c, "max_body: at most 16M");
    if (cfg->max_connections_per_address > cfg->max_connections)
        return fail(c, "max_connections_per_address: at most max_connections (%u)", cfg->max_connections);
    if (check_sam(c, cfg) != 0 || check_pkcs11(c, cfg) != 0 || check_node_id(c, cfg) != 0 ||
        check_admin_listen(c, cfg) != 0)
        return -1;
    if (cfg->public_url[0] == '\0') {
        const char *l = cfg->listen[0];
        const char *host = strncmp(l, "127.0.0.1:", 10) == 0 || strncmp(l, "0.0.0.0:", 8) == 0 ? "localhost" : NULL;
        if (host != NULL)
            snprintf(cfg->public_url, sizeof(cfg->public_url), "%s://%s%s", cfg->plain_http ? "http" : "https", host,
                     strrchr(l, ':'));
        else
            snprintf(cfg->public_url, sizeof(cfg->public_url), "%s://%s", cfg->plain_http ? "http" : "https", l);
    } else if (strncmp(cfg->public_url, "https://", 8) != 0 &&
               !((cfg->environment == CSC_ENV_TEST || cfg->allow_test_components) &&
                 strncmp(cfg->public_url, "http://", 7) == 0)) {
        return fail(c, "public_url: must start with https:// (http:// only in the test environment)");
    }
    size_t n = strlen(cfg->public_url);
    if (n > 0 && cfg->public_url[n - 1] == '/')
        cfg->public_url[n - 1] = '\0';
    /* info.logo must resolve: a file the service serves, or an external URL (nothing answers under public_url). */
    if (cfg->info_logo[0] != '\0' && cfg->info_logo_file[0] != '\0')
        return fail(c, "info_logo and info_logo_file: give one (with info_logo_file, info.logo names where the "
                       "service serves the file)");
    n = strlen(cfg->public_url);
    if (cfg->info_logo[0] != '\0' && strncmp(cfg->info_logo, cfg->public_url, n) == 0 &&
        (cfg->info_logo[n] == '/' || cfg->info_logo[n] == '\0'))
        return fail(c, "info_logo: %s is under public_url, where nothing answers; name the image with "
                       "info_logo_file instead", cfg->info_logo);
    return 0;
}

int srv_config_parse(const char *text, size_t len, const char *name, const char *path, srv_config_t *cfg)
{
    ctx_t c = {.file = name, .line = 0};
    unsigned char *seen = cfg->given;
    char line[4096], tmp[PATH_MAX];
    const char *p = text, *end = text + len;

    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->file, sizeof(cfg->file), "%s", path);
    snprintf(tmp, sizeof(tmp), "%s", path);
    snprintf(c.dir, sizeof(c.dir), "%s", dirname(tmp));

    /* Defaults first, so that a file only says what differs. */
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (rows[i].def != NULL && set_value(&c, cfg, &rows[i], rows[i].def) != 0)
            return -1;
    cfg->environment = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl != NULL ? nl : end) - p);
        c.line++;
        /* A NUL byte would end the line early, the rest of it read as if it were not there. */
        if (memchr(p, '\0', n) != NULL)
            return fail(&c, "a NUL byte (a configuration file is text)");
        if (n >= sizeof(line))
            return fail(&c, "line too long (at most %zu characters)", sizeof(line) - 1);
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl != NULL ? nl + 1 : end;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL)
            return fail(&c, "expected key = value");
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t i;
        for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
            if (strcmp(rows[i].key, key) == 0)
                break;
        if (i == sizeof(rows) / sizeof(rows[0]))
            return fail(&c, "unknown key \"%s\"", key);
        if (seen[i] && rows[i].kind != T_LISTEN)
            return fail(&c, "%s given twice", key);
        seen[i] = 1;
        if (set_value(&c, cfg, &rows[i], val) != 0)
            return -1;
    }
    if (cfg->environment == 0)
        return fail(&c, "missing required key environment (production or test)");
    return check_required(&c, cfg, seen);
}

int srv_config_load(const char *file, srv_config_t *cfg)
{
    char path[PATH_MAX];
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;

    memset(cfg, 0, sizeof(*cfg));
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", file, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            /* one byte over the limit read tells a file over it */
            size_t ncap = cap == 0 ? 16384 : cap * 2 < SRV_CONFIG_FILE_MAX + 1 ? cap * 2 : SRV_CONFIG_FILE_MAX + 1;
            if (cap == ncap) {
                fprintf(stderr, "%s: larger than %d bytes: not a configuration file\n", file, SRV_CONFIG_FILE_MAX);
                goto out;
            }
            /* OPENSSL_clear_realloc: the text leaves nothing behind in freed memory (see below) */
            char *t = OPENSSL_clear_realloc(text, cap, ncap);
            if (t == NULL) {
                fprintf(stderr, "%s: out of memory\n", file);
                goto out;
            }
            text = t;
            cap = ncap;
        }
        size_t want = cap - len, got = fread(text + len, 1, want, f);
        len += got;
        if (got < want)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "%s: %s\n", file, strerror(errno));
        goto out;
    }
    if (realpath(file, path) == NULL)
        snprintf(path, sizeof(path), "%s", file);
    rc = srv_config_parse(text, len, file, path, cfg);
out:
    fclose(f);
    /* Nothing secret belongs in the file (check_conninfo refuses a password=), but one written there anyway is not
     * left in freed memory. */
    if (text != NULL)
        OPENSSL_clear_free(text, cap);
    return rc;
}

const char *const srv_reloadable[] = {"tls_cert", "tls_key", "access_log", "access_log_format", "readyz_cert_days",
                                      NULL};

/* Whether row r holds the same value in a and b. */
static int same_value(const row_t *r, const srv_config_t *a, const srv_config_t *b)
{
    const char *pa = (const char *)a + r->off, *pb = (const char *)b + r->off;

    switch (r->kind) {
    case T_STR:
    case T_PATH:
        return strcmp(pa, pb) == 0;
    case T_UINT:
    case T_BOOL:
        return *(const unsigned *)pa == *(const unsigned *)pb;
    case T_ENV:
        return a->environment == b->environment;
    case T_SIZE:
        return *(const size_t *)pa == *(const size_t *)pb;
    case T_LISTEN:
        if (a->n_listen != b->n_listen)
            return 0;
        for (unsigned i = 0; i < a->n_listen; i++)
            if (strcmp(a->listen[i], b->listen[i]) != 0)
                return 0;
        return 1;
    case T_STORAGE: {
        const srv_storage_t *sa = (const srv_storage_t *)pa, *sb = (const srv_storage_t *)pb;
        return strcmp(sa->backend, sb->backend) == 0 && strcmp(sa->location, sb->location) == 0 &&
               strcmp(sa->passfile, sb->passfile) == 0;
    }
    }
    return 0;
}

size_t srv_config_changed(const srv_config_t *a, const srv_config_t *b, const char *const *reloadable, char *out,
                          size_t sz)
{
    size_t n = 0, len = 0, lmdb_path = 0;
    int full = 0;

    if (sz > 0)
        out[0] = '\0';
    while (strcmp(rows[lmdb_path].key, "lmdb_path") != 0)
        lmdb_path++;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row_t *r = &rows[i];
        /* lmdb_path is storage's location under its older name: a change is named once, as storage */
        int given = a->given[i] || b->given[i] ||
                    (r->off == O(storage) && (a->given[lmdb_path] || b->given[lmdb_path]));
        if (r->off == O(storage.location) || !given || same_value(r, a, b))
            continue;
        size_t k = 0;
        while (reloadable[k] != NULL && strcmp(reloadable[k], r->key) != 0)
            k++;
        if (reloadable[k] != NULL)
            continue;
        int w = full ? 0 : snprintf(out + len, len < sz ? sz - len : 0, "%s%s", n > 0 ? ", " : "", r->key);
        if (!full && w > 0 && len + (size_t)w < sz) {
            len += (size_t)w;
        } else if (!full && len < sz) {
            out[len] = '\0'; /* whole names only, the first ones */
            full = 1;
        }
        n++;
    }
    return n;
}
