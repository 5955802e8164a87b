/* srv.h - the composition root: configuration, process start-up, HTTP glue. Private to server/. */
#ifndef SRV_H
#define SRV_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include "csc.h"
#include "hsm.h"

#define SRV_LISTEN_MAX 8
#define SRV_STR 256
#define SRV_CONFIG_KEYS 192               /* at least the keys srv_config.c knows (checked there) */

/* Where a process keeps its state: storage = <backend>:<location> (lmdb_path = PATH: lmdb). */
typedef struct srv_storage {
    char backend[16];                 /* "lmdb", "postgresql" ("" only for a front_storage not given) */
    char location[PATH_MAX];          /* lmdb: the folder; postgresql: the libpq conninfo (+ passfile='...') */
    char passfile[PATH_MAX];          /* *_passfile = PATH (postgresql only; "" = libpq's default) */
} srv_storage_t;

typedef struct srv_config {
    char file[PATH_MAX];              /* the configuration file itself */
    unsigned environment;             /* CSC_ENV_PRODUCTION / CSC_ENV_TEST */
    char listen[SRV_LISTEN_MAX][SRV_STR];
    unsigned n_listen;
    char tls_cert[PATH_MAX];
    char tls_key[PATH_MAX];
    unsigned plain_http;              /* test environment only (or allow_test_components) */
    unsigned allow_test_components;   /* production override: SoftHSM, the demo CA, plain HTTP */
    unsigned http2;
    unsigned threads;                 /* event loops */
    unsigned workers;                 /* request worker threads */
    unsigned auth_workers, auth_queue; /* the pool of requests that check a password or PIN, and its queue */
    unsigned password_verify_max;     /* scrypt verifications at once (oauth verify_max) */
    unsigned request_timeout;         /* seconds */
    unsigned max_connections;         /* open connections of the public listener, in all and per client address */
    unsigned max_connections_per_address;
    unsigned header_timeout;          /* seconds: TLS handshake; an HTTP/1 request's headers and body, keep-alive */
    unsigned idle_timeout;            /* seconds: HTTP/2 idle; a response left unread (TCP_USER_TIMEOUT) */
    char pkcs11_module[PATH_MAX];
    char pkcs11_token[SRV_STR];
    char pkcs11_pin_file[PATH_MAX];
    char softhsm_conf[PATH_MAX];
    unsigned pkcs11_sessions;
    unsigned pkcs11_start_wait;       /* seconds csc-sam waits at start for a token not there yet (0: none) */
    srv_storage_t storage;            /* storage (csc-sam, csc-admin; csc-server without front_storage) */
    srv_storage_t front_storage;      /* front_storage: csc-server's own (postgresql only; backend "" = not given) */
    char pkcs11_env[PATH_MAX];        /* NAME=VALUE set in csc-sam before the module is loaded ("" = none) */
    char pkcs11_sockets[16];          /* none, unix, inet: new sockets csc-sam's module may open under seccomp */
    size_t lmdb_map_size;
    unsigned access_ttl, refresh_ttl, sad_ttl;
    unsigned max_failures, lock_seconds;
    unsigned lock_max_seconds, audit_fail_window, audit_fail_entries;
    size_t max_body;
    unsigned max_hashes, max_json_depth;
    char access_log[PATH_MAX];
    char access_log_format[8];        /* "text" (one line per request) or "json" (a JSON object per line) */
    unsigned oauth_code_ttl, oauth_par_ttl, oauth_session_idle, oauth_session_max, credential_token_ttl;
    unsigned rate_window, rate_max;
    unsigned oauth_revoke_status;     /* 200 (RFC 7009) or 204 */
    char public_url[2 * SRV_STR + 16];  /* external base URL; default from the first listen address */
    char info_name[SRV_STR], info_logo[SRV_STR], info_region[SRV_STR], info_lang[SRV_STR];
    char info_description[SRV_STR], info_specs[SRV_STR];
    char info_logo_file[PATH_MAX];    /* image served at PUBLIC_URL/logo.<ext> (info.logo) */
    char ca_cert[PATH_MAX], ca_key[PATH_MAX], ca_chain[PATH_MAX];
    unsigned cert_days;
    char totp_issuer[SRV_STR];
    char default_lang[8];             /* the pages' language when the request names none: "en" or "ja" */
    unsigned scrypt_log2n;
    char key_backup[16];              /* "no" or "wrapped" (J8) */
    char clock_check[16];             /* "none" or "adjtimex": csc-sam's clock check before each time-stamp token
                                         (default: none in test, adjtimex in production) */
    unsigned clock_max_error_ms;      /* the clock's largest maximum error for time-stamping (clock_check) */
    unsigned audit_sign_interval;     /* seconds between signed audit heads, 0 = off (J11) */
    unsigned audit_sign_records;      /* sign after this many new records, 0 = off (J11) */
    unsigned purge_interval;          /* seconds between deletions of expired records, 0 = off */
    char tsa_credential[65];
    char tsa_policy[41];
    unsigned tsa_accuracy_ms;
    char trust_anchors[PATH_MAX];     /* PEM CA certificates: certificate imports and CRL issuers (J6, J9) */
    char crl_dir[PATH_MAX];           /* CRLs checked before every signature; "" = none */
    unsigned crl_allow_stale, crl_require;
    unsigned allow_scal1, allow_single_factor, allow_builtin_ca; /* production overrides (warned at start-up) */
    char node_id[STOR_NODE_MAX + 1];  /* this node (async jobs it owns); default the host's name */
    char otp_sender[PATH_MAX + 8];    /* "exec:/path" or "file:/path"; "" = no getChallenge */
    unsigned otp_sender_timeout, challenge_ttl, approval_ttl;
    unsigned async_workers, async_queue, async_validity_min, async_validity_default, async_validity_max;
    unsigned notify_timeout, notify_threads, notify_queue; /* response_uri notifications */
    char notify_allow[1024];          /* production: internal response_uri hosts allowed (SSRF) */
    unsigned admin_session_idle, admin_session_max; /* csc-admin operator sessions, seconds */
    unsigned admin_approval_ttl;                    /* seconds a two-person request waits */
    char two_person[SRV_STR];                       /* commands ("credential destroy" -> "destroy") needing two operators;
                                                       production default: SRV_TWO_PERSON_PRODUCTION; "none": none */
    unsigned allow_combined_roles;                  /* production: one operator may hold user-admin and key-admin */
    unsigned pin_min_length;                        /* shortest credential PIN set (6; 8 in production by default) */
    unsigned enroll_code_ttl;                       /* seconds an enrollment code lives (86400) */
    unsigned restore_request_ttl;                   /* seconds a restore request of /account lives (2592000) */
    unsigned enroll_code_tries;                     /* wrong enrollment codes before it is burnt (5) */
    unsigned password_min_length;                   /* shortest password a user chooses on /enroll (12) */
    unsigned password_classes;                      /* kinds of characters a password mixes (2 of 4) */
    /* csc-sam, the signature activation module (srv_sam.c; csc-server's side: srv_samctl.c) */
    char sam_mode[8];                               /* "spawn" (csc-server starts csc-sam) or "connect" */
    unsigned sam_connect;                           /* sam_mode = connect */
    char sam_program[PATH_MAX];                     /* "": csc-sam beside csc-server's own executable */
    char sam_socket[PATH_MAX];                      /* checked: shorter than a sockaddr_un path */
    char sam_socket_group[SRV_STR];                 /* "": mode 0600; else 0660 and this group */
    gid_t sam_socket_gid;                           /* resolved; (gid_t)-1 without a group */
    char sam_allowed_user[SRV_STR];                 /* "": the uid csc-sam runs as */
    uid_t sam_allowed_uid;                          /* resolved; (uid_t)-1 without a user */
    unsigned sam_max_connections, sam_connections, sam_timeout_ms;
    unsigned read_cache_ms;           /* signHash's read cache in csc-server (csc_rcache.c); 1000 on PostgreSQL unless given */
    unsigned sam_heap_reserve;        /* KiB of csc-sam's heaps faulted in (locked) at start (srv_priv_heap_reserve) */
    char server_user[33];             /* csc-server switches to this user when started as root; "" = stays */
    char sam_user[33];                /* the user of csc-sam (issue 11; not used by csc-server) */
    unsigned seccomp;                 /* the system-call allow-list after start-up (always on in production) */
    char sam_admin_socket[PATH_MAX];  /* csc-sam's operators' socket (csc-admin's key operations) */
    char sam_admin_group[SRV_STR];    /* "": mode 0600; else 0660 and this group (the operators') */
    gid_t sam_admin_gid;              /* resolved; (gid_t)-1 without a group */
    /* the operators' listener (srv_health.c): /healthz, /readyz, /metrics */
    char admin_listen[SRV_STR];       /* HOST:PORT; "" when admin_listen = none */
    char admin_tls_cert[PATH_MAX], admin_tls_key[PATH_MAX]; /* "": plain HTTP (loopback only) */
    char admin_tls_client_ca[PATH_MAX]; /* "": no client certificate asked; else one of this CA is required */
    unsigned readyz_cert_days;        /* /readyz fails when the public certificate expires within this many days */
    unsigned char given[SRV_CONFIG_KEYS]; /* the keys the file gave, by srv_config.c's table (srv_config_changed) */
} srv_config_t;

#define SRV_CONFIG_FILE_MAX (1 << 20) /* bytes; a larger file is refused (no configuration comes near it) */

/* Load and validate a configuration file: read whole, then srv_config_parse; prints "FILE:LINE: message" to stderr on
 * error. */
int srv_config_load(const char *file, srv_config_t *cfg);
/* Parse and validate the text of a configuration file, len bytes (a NUL byte in it is refused): what srv_config_load
 * does with the file it read. Messages name the file as name, "NAME:LINE: message" on stderr; path is the file's
 * resolved path (cfg->file, which a reload reads again), whose folder relative paths are taken from. */
int srv_config_parse(const char *text, size_t len, const char *name, const char *path, srv_config_t *cfg);
/* The keys a reload (SIGHUP) may change, NULL-terminated: tls_cert, tls_key, access_log, access_log_format,
 * readyz_cert_days (csc-server's; csc-sam holds none of them). Every other key changed refuses a reload, in csc-server
 * and in csc-sam alike. The files a reload reads again (certificate, key, trust_anchors, crl_dir) keep their names. */
extern const char *const srv_reloadable[];
/* The keys whose values differ between a and b, except those listed in reloadable (NULL-terminated), written to out
 * as "key, key" (cut to sz) for the refusal of a reload. A key neither file gave is not named: its value follows
 * another key's (public_url the first listen, sam_connections the pools' sizes), which is. @return how many. */
size_t srv_config_changed(const srv_config_t *a, const srv_config_t *b, const char *const *reloadable, char *out,
                          size_t sz);
/* The storage a process opens: front (csc-server) front_storage when given, else storage. */
const srv_storage_t *srv_storage_of(const srv_config_t *cfg, int front);

/* The modules a process opens from a configuration. */
typedef struct srv_sam srv_sam_t;
typedef struct srv_modules {
    stor_env_t *stor;
    hsm_t *hsm;                /* csc-sam's (srv_modules_open_hsm); never csc-server's nor csc-admin's */
    oauth_t *oauth;
    csc_t *csc;
    sam_client_t *sam;         /* borrowed from srv_sam_t (csc-server), NULL elsewhere */
    srv_sam_t *samctl;         /* csc-server's csc-sam process (reloads are passed on), NULL elsewhere */
} srv_modules_t;

/* SRV_WRITER_LATER: storage's writes are opened by the caller (stor_start_writer), after its privilege switch (no
 * writer thread: the threads that write, all made after the switch, run the commits). */
enum { SRV_NEED_CSC = 2, SRV_WRITER_LATER = 4 };

/* Open storage and oauth, and as asked the CSC service; never the HSM (m->hsm NULL). Messages to stderr. */
int srv_modules_open(const srv_config_t *cfg, int need, sam_client_t *sam, srv_modules_t *m);
/* Storage and oauth/ only (srv_base.c; csc-admin: no token, no service, nothing of hsm/ linked), then
 * srv_production_checks. */
int srv_modules_open_store(const srv_config_t *cfg, srv_modules_t *m);
/** csc-admin db COMMAND ... (srv_admin_db.c): argv[0] is the word after db. @return the exit status. */
int srv_admin_db(const srv_config_t *cfg, int argc, char **argv);

/** What csc-admin db backup wrote (srv_admin_db_backup). */
typedef struct srv_db_backup {
    uint64_t audit_seq;  /**< the audit log's head in the copy */
    uint64_t head_seq;   /**< the newest signed head in the copy (0: none) */
    uint64_t data_len;   /**< bytes of the compacted LMDB data */
    uint8_t sha256[32];  /**< the file's SHA-256 (its last 32 bytes) */
} srv_db_backup_t;

/**
 * The signature of a backup's SHA-256 (csc-admin: csc-sam's BACKUP_SIGN): the text signed (NUL-terminated, at most
 * text_sz - 1 bytes) and the DER signature (at most *sig_len bytes; set to its length). 0, or -1 (said why).
 */
typedef int (*srv_db_sign_fn)(const uint8_t digest[32], char *text, size_t text_sz, uint8_t *sig, size_t *sig_len,
                              void *arg);

/**
 * csc-admin db backup FILE (srv_admin_db.c, its file format): a consistent, compacted copy of stor (LMDB: one read
 * snapshot, while the services write on) with its audit head and newest signed head, its SHA-256 signed by sign,
 * into FILE (new, 0600).
 * @return 0, 1 (failed, said on stderr; no FILE), 2 (the storage is not LMDB: PostgreSQL's backups are its own).
 */
int srv_admin_db_backup(const srv_config_t *cfg, stor_env_t *stor, const char *file, srv_db_sign_fn sign, void *arg,
                        srv_db_backup_t *out);
void srv_modules_close_store(srv_modules_t *m);
/* Storage and oauth/ without any check (srv_modules_open's first step); need: SRV_WRITER_LATER, storage's writes are
 * the caller's to open; SRV_NEED_CSC (csc-server), a full map is logged only, with no audit record (csc-sam's
 * environment records its own episodes: csc-server appends nothing to the audit trail on its own). */
int srv_modules_open_base(const srv_config_t *cfg, int need, srv_modules_t *m);
/* csc-server's storage writes only its own tables, web_sessions, async_results and pars (the pushed authorization
 * requests: client-authenticated at the push, checked again at use, no factor or SAD in them)
 * (stor_env_restrict_writes): everything else it used to write is csc-sam's (the SAM protocol). 0, or -1 (said why). */
int srv_front_restrict_writes(srv_modules_t *m);
/* J13: in production without allow_test_components, the demo CA (ca_cert, trust_anchors) is refused (else a
 * warning names the override). 0 or -1 (said why). */
int srv_production_checks(const srv_config_t *cfg);
void srv_modules_close(srv_modules_t *m);
/* srv_hsm.c, csc-sam only: read pkcs11_pin_file and open the token (SoftHSM refused in production),
 * then srv_modules_open(cfg, need, NULL, m). Close with srv_modules_close_hsm. csc-server and csc-admin call neither, so
 * they link no PKCS#11 code and never open the PIN file. 0; -1 (said why); SRV_HSM_PIN_REFUSED: the token refused the
 * PIN (said). */
#define SRV_HSM_PIN_REFUSED (-2)
int srv_modules_open_hsm(const srv_config_t *cfg, int need, srv_modules_t *m);
/* csc-sam's exit status when the token refused its PIN: nobody starts it again on its own (its supervisor in
 * csc-server, its systemd unit's RestartPreventExitStatus=), since every start tries the PIN once more and a token
 * locks after a few wrong ones. 78: EX_CONFIG of <sysexits.h>, the PIN file being wrong. */
#define SRV_EXIT_PIN_REFUSED 78
void srv_modules_close_hsm(srv_modules_t *m);
/* two_person in production when the key is not given (`operator`: operator add, remove, roles). */
#define SRV_TWO_PERSON_PRODUCTION "destroy,restore,terminate,operator"

/* two_person names credential revoke or destroy (by last word or dotted name): the destruction of a key whose
 * certificate csc-server sees revoked in a CRL then waits for a second operator (csc-admin approve), not for
 * csc-admin credential destroy-pending. */
int srv_two_person_destroys(const char *two_person);
int srv_two_person_restores(const char *two_person);
/* csc-sam's executable: sam_program, else csc-sam in the folder of the running executable (/proc/self/exe); it must
 * be executable. who prefixes the messages. 0, or -1 (said why on stderr). */
int srv_sam_program(const srv_config_t *cfg, const char *who, char *out, size_t sz);

/* srv_log.c: when stderr is the systemd journal's stream (JOURNAL_STREAM names its device and inode), replace stderr
 * by a stream that writes each line with the journal's level prefix ("<3>", "<4>", "<6>"); else nothing changes.
 * First thing in main. 1 replaced, 0 not the journal, -1 could not (stderr unchanged). */
int srv_log_journal(void);
/* The level of one line (without its newline): 4 says WARNING, 6 a start, ready, reload or stop message, else 3. */
int srv_log_level(const char *line, size_t len);

/* Print text (an otpauth:// URI) as a QR code of Unicode half blocks, dark on light, with a quiet zone;
 * returns 0, or -1 (nothing printed) if it cannot be encoded. srv_qr.c. */
int srv_qr_print(FILE *out, const char *text);

/* Periodic tasks (srv_thread.c): a thread named name calls run(arg) every period_ms (> 0) milliseconds, the first
 * time one period after the start, the next one period after the previous run ended. run returns 0, or -1 once it
 * has written why it failed to stderr; either way the task keeps its period. @return 0, or -1 (with a message). */
typedef struct srv_task srv_task_t;
typedef int (*srv_task_fn)(void *arg);
int srv_task_start(const char *name, unsigned period_ms, srv_task_fn run, void *arg, srv_task_t **out);
/* Wake the thread at once, wait for a run in progress to end, join and free. NULL is allowed. */
void srv_task_stop(srv_task_t *t);

/* Worker pools (srv_thread.c): up to `threads` threads run the items submitted, each with run(item). The item a thread
 * takes is handed to the thread that went idle last (a stack of idle threads, each woken by its own condition
 * variable), items that find every thread busy and none to start wait in a FIFO queue of at most queue_max. So the
 * threads that serve a light load are the same few, warm: their stacks, CPU caches and malloc's per-thread caches are
 * the ones in use (with a shared condition variable every thread took its turn, and each one's cache of freed blocks
 * kept pages of the heaps resident: bench/soak). A thread idle for idle_ms ends (0: never) while more than keep run
 * (at least 1), handing its cached blocks and stack back; an item that finds no idle thread starts one in its slot.
 * nice: the threads' priority relative to the process. */
typedef struct srv_pool_item {
    struct srv_pool_item *next; /* the pool's link */
} srv_pool_item_t;
typedef struct srv_pool srv_pool_t;
typedef void (*srv_pool_fn)(srv_pool_item_t *item);
typedef struct srv_pool_opts {
    unsigned threads;   /* at most, all started by srv_pool_start */
    unsigned keep;      /* never ended for idleness (0 counts as 1) */
    unsigned idle_ms;   /* a thread idle this long ends while more than keep run; 0: never */
    size_t queue_max;
    int nice;
} srv_pool_opts_t;
/* @return 0, or -1 (no thread or memory; *out NULL) */
int srv_pool_start(const srv_pool_opts_t *o, srv_pool_fn run, srv_pool_t **out);
/* Hand item to an idle thread, or to a new one, or queue it. @return 0, or -1 when the queue is full or the pool
 * stopping. */
int srv_pool_submit(srv_pool_t *p, srv_pool_item_t *item);
/* Let the threads run what is queued, then join them and free. NULL is allowed. */
void srv_pool_stop(srv_pool_t *p);
/* The threads waiting for an item now. */
unsigned srv_pool_idle(srv_pool_t *p);
/* The threads running now (busy or idle). */
unsigned srv_pool_live(srv_pool_t *p);

/* csc-server's csc-sam (srv_samctl.c): with sam_mode = spawn started here (before any listening socket), supervised
 * (restarted after a crash) and stopped by srv_sam_end; with connect only connected to. Messages to stderr; -1:
 * csc-server does not start. */
int srv_sam_begin(const srv_config_t *cfg, srv_sam_t **out);
void srv_sam_end(srv_sam_t *s);
/* csc-server reloaded on SIGHUP: with sam_mode = spawn the supervisor sends csc-sam SIGHUP (csc-sam reloads what it
 * holds); with connect nothing (csc-sam's own unit reloads it). NULL is fine. */
void srv_sam_reload(srv_sam_t *s);
/* The pool of connections to csc-sam the service asks (owned by s). */
sam_client_t *srv_sam_client(srv_sam_t *s);
/* Ask csc-sam HELLO and log its answer, and give oauth the sign-in pages' ticket key it carries (a warning when it
 * carries none: oauth keeps its random key). Called once csc-server runs as server_user (csc-sam serves that user
 * only: asked as root before the switch, it would refuse and audit the connection), before any thread serves a page. */
void srv_sam_hello(sam_client_t *client, const char *path, oauth_t *oauth);

/* Run the HTTP server until SIGTERM/SIGINT. */
int srv_http_run(const srv_config_t *cfg, srv_modules_t *m);
/* A listening TCP socket on addr (HOST:PORT, [V6]:PORT), or -1 (said why on stderr). Before the seccomp filter. */
int srv_http_listen(const char *addr);
/* A TLS server context (OpenSSL's SSL_CTX) with the project's protocol floor and suites (TLS 1.2 with ECDHE and AEAD
 * only, TLS 1.3), the certificate chain and key of these files; NULL (said why on stderr, naming the settings
 * cert_key and key_key). The public listener and the operators' one (srv_health.c) add their own on top. */
struct ssl_ctx_st;
struct ssl_ctx_st *srv_tls_server_ctx(const char *cert, const char *key, const char *cert_key, const char *key_key);

/* csc-server's operators' listener (srv_health.c): with admin_listen, open its socket, TLS context and connection to
 * csc-sam (before the privilege switch and the filter: *out NULL without admin_listen), start its threads after,
 * close at the end (NULL is fine). tls_not_after: the public certificate's notAfter (0: plain HTTP). 0, or -1 (said
 * why on stderr). */
typedef struct srv_health srv_health_t;
int srv_health_open(const srv_config_t *cfg, srv_modules_t *m, int64_t tls_not_after, srv_health_t **out);
int srv_health_start(srv_health_t *h);
/* csc-server begins to stop (it drains for at most request_timeout): /healthz and /readyz answer 503 from now on. */
void srv_health_stopping(srv_health_t *h);
/* A reload (SIGHUP) put a new public certificate or readyz_cert_days in force: /readyz and /metrics use them from
 * now on. NULL is fine. */
void srv_health_reload(srv_health_t *h, int64_t tls_not_after, unsigned readyz_cert_days);
void srv_health_close(srv_health_t *h);

#endif
