/*
 * stor.h - durable state of the signing service, kept by a storage backend (stor_config_t.backend: "lmdb").
 *
 * Users, credentials, access/refresh tokens, SADs and the audit log live in one
 * environment (LMDB: one LMDB environment). Reads run in short read-only transactions on the calling
 * thread. Writes are group-committed, one batch at a time: the stor_write()
 * caller that finds no batch running runs the callbacks of every waiting caller
 * inside one write transaction (each in a nested transaction of its own, so a
 * callback that fails leaves no trace) and commits them with a single fsync; a
 * callback may thus run on another caller's thread. stor_write()
 * returns only after the commit is durable: nothing acknowledged is lost on a
 * crash.
 *
 * Records are plain C structs here; the on-disk encoding is private to the
 * module (tagged, versioned fields), so fields can be added later.
 *
 * Thread-safety: every function may be called from any thread, except the
 * stor_txn_* accessors, which are valid only inside a stor_write() or
 * stor_read() callback, on the thread that runs it.
 *
 * Secrets: tokens and SADs are stored only as SHA-256 hashes of their values.
 * Password and PIN verifiers are opaque byte strings produced by oauth/.
 */
#ifndef STOR_H
#define STOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------ */

enum {
    STOR_OK = 0,
    STOR_ERR_NOTFOUND = -1, /**< no such record */
    STOR_ERR_EXISTS = -2,   /**< insert of a key that is present */
    STOR_ERR_IO = -3,       /**< the backend failed (LMDB, the file system, the database or its connection) */
    STOR_ERR_FULL = -4,     /**< the map, or the disk under it, is full */
    STOR_ERR_CORRUPT = -5,  /**< a record could not be decoded */
    STOR_ERR_INVAL = -6,    /**< bad argument (over-long name, ...) */
    STOR_ERR_NOMEM = -7,
    STOR_ERR_CLOSED = -8,   /**< the environment is shutting down */
    STOR_ERR_RETRY = -9,    /**< a conflict with another writer (PostgreSQL: serialization failure, deadlock); the
                                 batch was rolled back and may be run again (stor_write() does, a few times) */
    STOR_ERR_UNAVAILABLE = -10, /**< the database cannot be reached now (connection lost, server down, no connection
                                     free, statement or lock timeout): nothing was kept; try again in a moment */
    STOR_ERR_DENIED = -11,  /**< a write to a table this environment may not write (stor_env_restrict_writes) */
};
/* Callbacks passed to stor_write()/stor_read() may return any other negative
 * value of their own (e.g. an oauth error); it is handed back unchanged. */

/** @return a static description of a STOR_* code. */
const char *stor_strerror(int rc);

/* ---- limits ------------------------------------------------------------ */

#define STOR_NAME_MAX 64       /**< user names, credential ids (bytes, without NUL) */
#define STOR_NODE_MAX 63       /**< a node's id (config node_id; bytes, without NUL) */
#define STOR_ORIGIN_MAX 200    /**< an operator command's origin (stor_audit_t.origin, stor_approval_t.origin) */
#define STOR_DESC_MAX 255      /**< descriptions */
#define STOR_VERIFIER_MAX 128  /**< encoded password / PIN verifier */
#define STOR_KEYID_MAX 32      /**< HSM object id (CKA_ID) */
#define STOR_TOTP_MAX 64       /**< raw TOTP secret */
#define STOR_TOTP_SEALED_MAX (1 + 12 + STOR_TOTP_MAX + 16) /**< a sealed TOTP secret: version, nonce, ciphertext, tag */
#define STOR_EXPR_MAX 64       /**< auth expression, e.g. "PIN AND OTP" */
#define STOR_OID_MAX 40        /**< dotted OID text */
#define STOR_CERTS_MAX 16384   /**< concatenated DER certificates of a credential */
#define STOR_DIGESTS_MAX 1024  /**< digests bound to one SAD */
#define STOR_DIGEST_LEN_MAX 64
#define STOR_URI_MAX 512       /**< an OAuth redirect URI */
#define STOR_REDIRECTS_MAX 8   /**< redirect URIs of one OAuth client */
#define STOR_AUTHZ_DETAILS_MAX 4096 /**< approved RAR authorization_details, JSON */
#define STOR_DELEGATES_MAX 8   /**< delegates of one credential */

/* ---- environment ------------------------------------------------------- */

typedef struct stor_env stor_env_t;

typedef struct stor_config {
    const char *backend;  /**< the storage backend: "lmdb" (also NULL or ""); see stor_backend_known() */
    const char *location; /**< where the backend keeps the data: for lmdb the directory holding data.mdb (created
                               if missing) */
    size_t map_size;    /**< lmdb: map size in bytes; 0 = 1 GiB */
    unsigned max_readers; /**< 0 = 256 */
    int writer_later;   /**< 1: writes are refused until stor_start_writer() (csc-sam opens them after its switch
                             to sam_user). No writer thread is started either way. */
    int full_log_only;  /**< 1: a full-map episode is said on stderr only, with no audit record (csc-server: the
                             audit trail's writes are csc-sam's); 0: its end appends a STOR_EV_STORAGE record */
    unsigned db_connections; /**< postgresql: connections to the database per environment at most (a txn holds one
                                  for its life; one more waits up to 5 s, then STOR_ERR_UNAVAILABLE); 0 = 32 */
} stor_config_t;

/**
 * Open (creating if needed) the environment; writes are open unless cfg->writer_later. Starts no thread.
 * @param[in] cfg settings; cfg->location must exist or be creatable.
 * @return ... STOR_ERR_INVAL also for an unknown cfg->backend.
 * @param[out] out the environment, NULL on failure.
 * @return STOR_OK or a STOR_ERR_* code (STOR_ERR_CORRUPT if the environment has another schema version).
 * @note Never open the same location twice in one process. Not fork-safe: open after forking.
 * @note Every process opening the same path should use the same map_size.
 */
int stor_open(const stor_config_t *cfg, stor_env_t **out);

/**
 * Open the writes of an environment opened with writer_later. Until then every stor_write() fails with
 * STOR_ERR_INVAL (reads work). Call once, before other threads write.
 * @return STOR_OK, STOR_ERR_INVAL (NULL, or started already)
 */
int stor_start_writer(stor_env_t *env);

/**
 * From now on, let writes through env touch only the tables named (their names in the schema, e.g.
 * "web_sessions"): a put, delete or cursor delete on any other table fails with STOR_ERR_DENIED, which ends its
 * job's transaction like any failed accessor (nothing of that job is kept; the batch's other jobs are not
 * affected), and the first denied write to each table says so on stderr once. Writes can only be narrowed: a
 * second call keeps the tables both calls name. csc-server restricts itself to its own tables
 * (server/srv_main.c), so that a front end cannot write what only csc-sam may, whatever the backend's grants.
 * @return STOR_OK, STOR_ERR_INVAL (NULL, or a name that is no table: nothing changed)
 */
int stor_env_restrict_writes(stor_env_t *env, const char *const *tables, size_t n);

/** @return 1 if name is a storage backend built in (stor_config_t.backend: "lmdb"), else 0. */
int stor_backend_known(const char *name);
/** The names of the backends built in, comma-separated ("lmdb"). */
const char *stor_backend_names(void);
/**
 * Split "BACKEND:LOCATION" (the configuration's storage keys, csc-admin db's options): the backend's name into
 * backend (n bytes), *location pointing into spec after the colon (possibly ""). The caller words the messages.
 * @return STOR_OK, STOR_ERR_INVAL (no colon, an empty name, or one of n bytes or more), STOR_ERR_NOTFOUND (a backend
 *         not built in: its name is in backend)
 */
int stor_spec_split(const char *spec, char *backend, size_t n, const char **location);

/** Refuse new writes, wait for the writes in progress, close. NULL is allowed. */
void stor_close(stor_env_t *env);

/** Called by stor_copy once per table after its check: the table's name and how many rows it holds. */
typedef void (*stor_copy_report_fn)(const char *table, size_t rows, void *arg);

/**
 * Copy an installation to another environment, of the same or another backend (csc-admin db copy): every row of
 * every table as it is, from one snapshot of from, into to, which must be empty (meta may hold only the schema
 * row stor_open writes). Then checked: each table's row count and a SHA-256 over its rows in walk order must be
 * the destination's too. Nothing else may write to while this runs; what from gets after the snapshot is not
 * copied.
 * @param[out] table on failure, the table concerned (the first that is not empty, that failed, or differs).
 * @return STOR_OK; STOR_ERR_EXISTS (to is not empty), STOR_ERR_CORRUPT (the check found a difference),
 *         STOR_ERR_INVAL (from == to, NULL), or a backend's error.
 */
int stor_copy(stor_env_t *from, stor_env_t *to, stor_copy_report_fn report, void *arg, const char **table);

/**
 * Write a consistent copy of env, as of one read snapshot, into dir (an existing empty directory), while this and
 * other processes go on writing (csc-admin db backup). LMDB: dir/data.mdb, compacted (LMDB's own copy, free pages
 * left out), an environment stor_open can open as it is. The snapshot holds every record committed before it began, the
 * audit log and its head together.
 * @return STOR_OK; STOR_ERR_INVAL (NULL, or a backend with no file copy: PostgreSQL, whose backups are
 *         pg_basebackup's, docs/operations.md); STOR_ERR_IO (dir missing or not writable, the disk full), ...
 */
int stor_backup(stor_env_t *env, const char *dir);

/** What stor_migrate does: INIT makes a new database (and completes a partial one), UPGRADE only an initialised one. */
typedef enum {
    STOR_MIGRATE_INIT,    /**< csc-admin db init: apply every migration the database lacks, from none on */
    STOR_MIGRATE_UPGRADE, /**< csc-admin db migrate: the same, but the database must have a schema version already */
} stor_migrate_mode_t;

/** What stor_migrate reports, in this order. */
typedef enum {
    STOR_MIGRATE_FOUND,   /**< the database was at version (name) before: something is missing */
    STOR_MIGRATE_APPLIED, /**< migration version (name) applied and committed now */
    STOR_MIGRATE_CURRENT, /**< nothing to do: the database is at version (name), the newest built in */
} stor_migrate_event_t;

/** Called by stor_migrate for each event: version, the migration's name ("0002_challenges"; "lmdb" on LMDB). */
typedef void (*stor_migrate_report_fn)(stor_migrate_event_t ev, unsigned version, const char *name, void *arg);

/**
 * Bring a database's schema to the version this code needs (csc-admin db init / db migrate); nothing may be open on
 * it in this process.
 *
 * PostgreSQL: the migrations of storage/migrations/, compiled in, applied as cfg->location's role, which must be a
 * member of the owner of the database and of schema csc (csc_admin). Each missing one in its own transaction, which
 * first takes a transaction-level advisory lock and reads csc.schema_version again, so two runners at once apply
 * each file once; the file must have recorded its version row, else nothing of it is kept. A database with a
 * version that has no file here (newer than this code) is refused and left as it is. Then the database is opened
 * the way the services open it (stor_open), as a last check.
 * LMDB keeps no migration files: the environment is opened (created if missing, its schema row written or checked)
 * and its version reported as CURRENT.
 *
 * @param[out] db_version the database's version when the call ended (after what was applied; on STOR_ERR_CORRUPT the
 *             unknown version found), 0 if it has none. May be NULL.
 * @param[out] why on failure (n bytes; NULL or n = 0: not wanted): what went wrong, when more is known than the return code: a failed statement's
 *             SQLSTATE and primary message (DDL and its error hold no secret: meant for the operator), the role that
 *             may not migrate, a file that recorded no version. "" otherwise. The only way a database's message
 *             leaves storage/.
 * @return STOR_OK (applied, or nothing to do); STOR_ERR_NOTFOUND (UPGRADE: the database has no schema version: it
 *         needs INIT); STOR_ERR_CORRUPT (a version with no file here: *db_version is the newest such, or a version row
 *         whose name is not this code's file); STOR_ERR_DENIED (the role may not migrate); STOR_ERR_UNAVAILABLE (no
 *         connection); STOR_ERR_INVAL; or the failed statement's error.
 */
int stor_migrate(const stor_config_t *cfg, stor_migrate_mode_t mode, stor_migrate_report_fn report, void *arg,
                 unsigned *db_version, char *why, size_t n);

/** The newest PostgreSQL migration built in (its version, and its name in *name when name is not NULL). */
unsigned stor_migrate_newest(const char **name);

/* ---- records ----------------------------------------------------------- */

/** ENROLLING: registered by an operator (csc-admin user add, or user recover), no password and no TOTP secret yet:
 *  cannot sign in or authorize until the user completes /enroll with the enrollment code (then ACTIVE). Stored: never
 *  renumber (records written before the state existed are ACTIVE, SUSPENDED or TERMINATED). */
typedef enum {
    STOR_USER_ACTIVE = 1,
    STOR_USER_SUSPENDED = 2,
    STOR_USER_TERMINATED = 3,
    STOR_USER_ENROLLING = 4,
} stor_user_status_t;

#define STOR_CONTACT_MAX 128   /**< a user's contact for the enrollment sender: e-mail address or phone number */

typedef struct stor_user {
    char name[STOR_NAME_MAX + 1];         /**< key; unique login name */
    uint32_t status;                      /**< stor_user_status_t */
    uint8_t pw_verifier[STOR_VERIFIER_MAX]; /**< opaque, from oauth_secret_hash() */
    uint32_t pw_verifier_len;
    uint8_t totp_secret[STOR_TOTP_MAX];   /**< raw RFC 6238 secret; empty = no TOTP */
    uint32_t totp_secret_len;
    int64_t totp_last_step;               /**< last accepted time step (replay guard) */
    uint32_t failed_logins;               /**< consecutive failed password logins */
    int64_t locked_until;                 /**< unix seconds; 0 = not locked */
    int64_t created_at;
    char evidence[STOR_DESC_MAX + 1];     /**< reference to the identity-verification evidence (J1), "" if none */
    uint32_t locks;                       /**< locks since the last successful login: each one lasts twice as long */
    uint32_t epoch;                       /**< bumped by every operator reset (password, TOTP, suspension,
                                               termination): state kept outside storage (sessions, pending
                                               approvals, one-time codes) stamped with an older one is refused */
    char contact[STOR_CONTACT_MAX + 1];   /**< where the enrollment code is sent (no control characters), "" if none */
    char applicant[STOR_DESC_MAX + 1];    /**< reference to who applied (J1), "" if none */
    char mandate[STOR_DESC_MAX + 1];      /**< reference to the mandate of an applicant acting for the user, "" if none */
    uint8_t totp_sealed[STOR_TOTP_SEALED_MAX]; /**< the TOTP secret sealed under the token's factor key by csc-sam
                                               (sam/sam_factor.c); then totp_secret is empty. A record with a clear
                                               totp_secret (written before sealing) is "clear": csc-sam seals it
                                               at start */
    uint32_t totp_sealed_len;
} stor_user_t;

/** Does the user have a TOTP secret (clear or sealed)? */
#define STOR_USER_HAS_TOTP(u) ((u)->totp_secret_len != 0 || (u)->totp_sealed_len != 0)

/** DESTROYED: the key was destroyed in the HSM (revocation, renewal, termination); final.
 *  PENDING: the key was generated for a certificate request (CSR) and waits for its certificate; it cannot be
 *  authorized or sign, and clients do not see it. */
typedef enum {
    STOR_CRED_ENABLED = 1,
    STOR_CRED_DISABLED = 2,
    STOR_CRED_DESTROYED = 3,
    STOR_CRED_PENDING = 4,
} stor_cred_status_t;
/** Why a credential's key was destroyed (stor_cred_t.end_reason). Revocation and termination are final: such a key
 *  is never restored from a backup (J7, J8); 0 (destroyed before the reason was recorded) counts as final too.
 *  Stored: never renumber. */
typedef enum {
    STOR_CRED_END_NONE = 0,
    STOR_CRED_END_OPERATOR = 1,   /**< csc-admin credential destroy: a backup of the current key may restore it */
    STOR_CRED_END_REVOKED = 2,    /**< certificate revoked (credential revoke, or a CRL seen by csc-server) */
    STOR_CRED_END_TERMINATED = 3, /**< the owner was terminated */
} stor_cred_end_t;
typedef enum { STOR_AUTH_EXPLICIT = 1, STOR_AUTH_OAUTH2CODE = 2 } stor_auth_mode_t;
typedef enum { STOR_KEY_RSA = 1, STOR_KEY_EC = 2 } stor_key_type_t;

typedef struct stor_cred {
    char id[STOR_NAME_MAX + 1];           /**< key; the CSC credentialID */
    char owner[STOR_NAME_MAX + 1];        /**< user name of the key owner */
    uint32_t status;                      /**< stor_cred_status_t */
    char description[STOR_DESC_MAX + 1];
    uint8_t key_id[STOR_KEYID_MAX];       /**< CKA_ID of the key pair in the HSM */
    uint32_t key_id_len;
    uint32_t key_type;                    /**< stor_key_type_t */
    uint32_t key_bits;
    char key_curve[STOR_OID_MAX + 1];     /**< curve OID for EC keys, else "" */
    uint32_t auth_mode;                   /**< stor_auth_mode_t */
    char auth_expr[STOR_EXPR_MAX + 1];    /**< over object ids "PIN", "OTP" */
    uint8_t pin_verifier[STOR_VERIFIER_MAX]; /**< empty = no PIN object */
    uint32_t pin_verifier_len;
    uint32_t failed_auths;                /**< consecutive failed authorizations */
    int64_t locked_until;
    uint32_t locks;                       /**< locks since the last successful authorization (escalation) */
    uint32_t scal;                        /**< 1 or 2 */
    uint32_t multisign;                   /**< >= 1 */
    uint8_t certs[STOR_CERTS_MAX];        /**< DER certificates, end entity first, concatenated */
    uint32_t certs_len;
    int64_t created_at;
    int64_t cert_not_before;              /**< validity of the end-entity certificate (unix seconds), */
    int64_t cert_not_after;               /**< kept with the record so signing needs no X.509 parsing */
    char qualifier[64];                   /**< CSC signatureQualifier of the credential, "" if none */
    uint32_t key_backup;                  /**< stor_key_backup_t: the key was generated (or restored) backup-able (J8) */
    uint8_t pending_key_id[STOR_KEYID_MAX]; /**< renewal by CSR: CKA_ID of the new key waiting for its certificate */
    uint32_t pending_key_id_len;          /**< 0 = no renewal pending */
    uint32_t pending_key_backup;          /**< stor_key_backup_t of the pending key (becomes key_backup at import) */
    uint32_t n_delegates;                 /**< users the owner allowed to sign with the credential (J1) */
    char delegates[STOR_DELEGATES_MAX][STOR_NAME_MAX + 1];
    char delegate_pins[STOR_DELEGATES_MAX][2 * STOR_VERIFIER_MAX + 1]; /**< hex of each delegate's own PIN verifier ("" = none) */
    uint32_t end_reason;                  /**< stor_cred_end_t: why the key was destroyed (status DESTROYED) */
    uint32_t pin_unset;                   /**< 1: the owner has not set the PIN yet (/enroll, /account); orthogonal to
                                               status. With an expression naming PIN the owner cannot authorize. */
    uint32_t delegate_pin_unset;          /**< bit i: delegates[i] has not set their PIN yet (same rule) */
    uint32_t backups;                     /**< backups made of the current key (csc-admin credential backup, counted in
                                               the backup's audit write); 0 again when a renewal replaces the key (a
                                               backup of the old key restores nothing: adm_backup.c restore_refused) */
    int64_t backup_last_at;               /**< unix seconds of the last of them; 0 if none */
} stor_cred_t;

/** 1 if user (the owner or a delegate of c) cannot authorize c yet because c's expression names PIN and that user's
 *  PIN is not set (stor_cred_t.pin_unset, delegate_pin_unset); else 0 (also for a user who is neither). */
int stor_cred_pin_unset(const stor_cred_t *c, const char *user);
/** Mark user's PIN of c set (unset = 0) or unset (1). @return 0, or -1 if user is neither owner nor delegate */
int stor_cred_pin_mark(stor_cred_t *c, const char *user, int unset);


/** Whether a credential's key can be backed up (J8). Stored: never renumber. */
typedef enum {
    STOR_KEY_BACKUP_NO = 0,      /**< non-extractable: can never leave the HSM */
    STOR_KEY_BACKUP_WRAPPED = 1, /**< extractable only wrapped under the HSM's trusted backup key */
} stor_key_backup_t;

/** Index of user among c's delegates, or -1. */
int stor_cred_delegate(const stor_cred_t *c, const char *user);

typedef enum { STOR_TOKEN_ACCESS = 1, STOR_TOKEN_REFRESH = 2 } stor_token_kind_t;
typedef enum { STOR_SCOPE_SERVICE = 1, STOR_SCOPE_CREDENTIAL = 2 } stor_scope_t;

typedef struct stor_token {
    uint8_t hash[32];                     /**< key: SHA-256 of the token value */
    uint32_t kind;                        /**< stor_token_kind_t */
    uint32_t scope;                       /**< stor_scope_t */
    char user[STOR_NAME_MAX + 1];
    uint8_t grant[16];                    /**< grant id shared by a refresh token and its access tokens */
    int64_t issued_at;
    int64_t expires_at;                   /**< unix seconds */
    uint32_t revoked;
    char client[STOR_NAME_MAX + 1];       /**< OAuth client the token was issued to ("" for auth/login) */
    uint32_t rotated;                     /**< refresh token replaced by rotation: presenting it again is reuse */
    char cred[STOR_NAME_MAX + 1];         /**< credential-scope tokens: the credential (its SAD record has the same hash) */
} stor_token_t;

/* ---- OAuth 2.0 clients and authorization codes ---------------------------- */

typedef enum { STOR_GRANT_AUTHORIZATION_CODE = 1, STOR_GRANT_REFRESH_TOKEN = 2, STOR_GRANT_CLIENT_CREDENTIALS = 4 }
    stor_grant_t;

typedef struct stor_client {
    char id[STOR_NAME_MAX + 1];           /**< key: client_id */
    char name[STOR_DESC_MAX + 1];         /**< shown on the consent page */
    uint8_t secret_hash[32];              /**< SHA-256 of the (256-bit random) client secret */
    uint32_t n_redirects;
    char redirects[STOR_REDIRECTS_MAX][STOR_URI_MAX + 1]; /**< registered redirect URIs, matched exactly */
    uint32_t scopes;                      /**< bit set of 1 << stor_scope_t */
    uint32_t grants;                      /**< bit set of stor_grant_t */
    int64_t created_at;
} stor_client_t;

typedef struct stor_code {
    uint8_t hash[32];                     /**< key: SHA-256 of the code value */
    char client[STOR_NAME_MAX + 1];
    char user[STOR_NAME_MAX + 1];
    char redirect_uri[STOR_URI_MAX + 1];
    uint32_t redirect_given;              /**< redirect_uri was in the authorization request (then the token request must repeat it) */
    uint8_t challenge[32];                /**< PKCE S256: the decoded code_challenge */
    uint32_t scope;                       /**< stor_scope_t */
    int64_t expires_at;
    uint32_t used;                        /**< exchanged once; a second exchange revokes grant */
    uint8_t grant[16];                    /**< grant of the tokens issued for this code */
    char cred[STOR_NAME_MAX + 1];         /**< credential scope: the credential; its pending SAD is stored under the
                                               same hash in the pending SAD table (stor_txn_pending_sad_*) */
    char authz_details[STOR_AUTHZ_DETAILS_MAX + 1]; /**< RAR echo for the token response ("" if none) */
} stor_code_t;


typedef struct stor_sad {
    uint8_t hash[32];                     /**< key: SHA-256 of the SAD value */
    char user[STOR_NAME_MAX + 1];
    char cred[STOR_NAME_MAX + 1];
    uint32_t remaining;                   /**< signatures still allowed */
    int64_t expires_at;
    char hash_alg[STOR_OID_MAX + 1];      /**< OID of the bound digests, "" if none */
    uint32_t digest_len;                  /**< length of each bound digest */
    uint32_t n_digests;                   /**< 0 = not bound to digests */
    uint8_t digests[STOR_DIGESTS_MAX * STOR_DIGEST_LEN_MAX];
    uint8_t signed_bits[STOR_DIGESTS_MAX / 8]; /**< bit i (byte i / 8, bit i % 8): bound digest i was signed under
                                               this SAD (extendTransaction renews only the unsigned ones) */
    uint32_t signed_bits_len;             /**< bytes of signed_bits stored: (n_digests + 7) / 8 once one was signed */
} stor_sad_t;

/* ---- audit ------------------------------------------------------------- */

/** Closed list of audited events. Values are stored: never renumber. */
typedef enum {
    STOR_EV_LOGIN = 1,          /**< auth/login (password or refresh token) */
    STOR_EV_TOKEN_REVOKE = 2,
    STOR_EV_AUTHORIZE = 3,      /**< credentials/authorize (SAD issued or refused) */
    STOR_EV_SIGN = 4,           /**< signatures/signHash decision */
    STOR_EV_SIGN_RESULT = 5,    /**< HSM outcome after an approved SIGN */
    STOR_EV_ADMIN = 6,          /**< csc-admin change */
    STOR_EV_LOCKOUT = 7,        /**< a user or credential was locked */
    STOR_EV_TIMESTAMP = 8,      /**< a time-stamp token issued by the built-in TSA */
    STOR_EV_CHALLENGE = 9,      /**< credentials/getChallenge, v1 sendOTP: one-time code issued (never the code) */
    STOR_EV_APPROVAL = 10,      /**< the user approved or refused a pending authorization on the approval page */
    STOR_EV_OPERATOR = 11,      /**< csc-admin operator login/logout, refusal, operator management, approvals */
    STOR_EV_CERT = 12,          /**< certificate request, import or refusal (csc-admin) */
    STOR_EV_BACKUP = 13,        /**< csc-admin credential backup (done or refused) */
    STOR_EV_RESTORE = 14,       /**< csc-admin credential restore (done or refused) */
    STOR_EV_AUDIT_HEAD = 15,    /**< an audit head was signed with the HSM audit key (stored in audit_heads) */
    STOR_EV_STORAGE = 16,       /**< the LMDB map was full: written by the first commit after space came back */
    STOR_EV_SAM = 17,           /**< csc-sam: a connection refused (peer not allowed), start and stop */
    STOR_EV_ENROLL = 18,        /**< enrollment: code issued, wrong or burnt, step 2 begun, enrolled, a PIN set by its
                                     user (/enroll, /account), an operator's recovery (never a code or secret) */
} stor_event_t;

typedef enum { STOR_RES_OK = 0, STOR_RES_DENIED = 1, STOR_RES_ERROR = 2 } stor_result_t;

typedef struct stor_audit {
    uint64_t seq;                         /**< assigned by stor_txn_audit_append(); 1, 2, ... */
    int64_t time_ms;                      /**< assigned if 0 */
    uint32_t event;                       /**< stor_event_t */
    uint32_t result;                      /**< stor_result_t */
    char user[STOR_NAME_MAX + 1];
    char cred[STOR_NAME_MAX + 1];
    char client[64];                      /**< client address or OAuth client id */
    uint8_t authz_ref[16];                /**< first 16 bytes of the SHA-256 of the SAD/token hash: a reference, never the value */
    char detail[256];                     /**< algorithm OID, reason, admin action (never secrets) */
    uint32_t digest_len;
    uint32_t n_digests;
    const uint8_t *digests;               /**< n_digests * digest_len bytes (not owned) */
    uint8_t prev_hash[32];                /**< filled in: hash of the previous record */
    uint8_t hash[32];                     /**< filled in: SHA-256(prev_hash || record) */
    char owner[STOR_NAME_MAX + 1];        /**< "on behalf of": the credential's owner when user is a delegate, else "".
                                               Stored and hashed only when set, so records without it keep their
                                               encoding and hash. */
    char origin[STOR_ORIGIN_MAX + 1];     /**< where an operator's command came from ("os_user=NAME uid=N host=H
                                               tty=T", stor_audit_origin_set); "" for others. Stored and hashed only
                                               when set, as owner. */
} stor_audit_t;

/* ---- asynchronous signing results (stor_async.c) ------------------------ */

/** Largest stored result body (the JSON reply of a signHash/signDoc job). */
#define STOR_ASYNC_BODY_MAX (8u << 20)

typedef enum { STOR_ASYNC_PENDING = 1, STOR_ASYNC_DONE = 2, STOR_ASYNC_FAILED = 3 } stor_async_state_t;

/** One operationMode "A" request: who asked, its state, and once done its reply. Keyed by SHA-256 of the
 *  responseID (the value itself is never stored). */
typedef struct stor_async {
    uint8_t hash[32];                     /**< SHA-256 of the responseID */
    char user[STOR_NAME_MAX + 1];         /**< only this user may poll */
    char cred[STOR_NAME_MAX + 1];
    uint32_t state;                       /**< stor_async_state_t */
    uint32_t status;                      /**< HTTP status of the result (DONE 200, FAILED the error's) */
    int64_t created_ms;                   /**< unix milliseconds */
    int64_t expires_ms;                   /**< created_ms + validity_period: gone afterwards */
    char error[64];                       /**< FAILED: the CSC error code */
    char error_description[256];          /**< FAILED: its description */
    uint32_t body_len;                    /**< DONE: bytes of body */
    uint32_t body_one;                    /**< 1 when body_len > 0 (codec: body_len * body_one bytes) */
    const uint8_t *body;                  /**< DONE: the JSON reply; not owned (a get points into the txn) */
    uint32_t owner_pid;                   /**< PENDING: the process that runs the job */
    char owner_node[STOR_NODE_MAX + 1];   /**< PENDING: the node (config node_id) of that process; "" = older */
} stor_async_t;

/* ---- pending one-time codes of the CHALLENGE object (stor_challenge.c) ---------------------------------- */

/** One pending code (oauth/oauth_challenge.c), keyed by SHA-256(user NUL cred): never the code, only its HMAC under
 *  a key derived from the HSM's factor key (no database reader has it). Purged after expires_at. */
typedef struct stor_challenge {
    uint8_t key[32];                      /**< SHA-256(user NUL cred) */
    uint8_t mac[32];                      /**< HMAC-SHA256(key, key || code) */
    int64_t issued_at;                    /**< unix seconds */
    int64_t expires_at;                   /**< unix seconds: void from then on */
    uint32_t epoch;                       /**< the user's epoch when it was issued (an operator's reset voids it) */
} stor_challenge_t;
/* ---- browser sessions of the OAuth and approval pages (stor_websession.c) ------------------------------- */

/** Largest packed authorization request a session holds (oauth/'s oauth_ent_t request: 1,024 digests of 64 bytes,
 *  the RAR JSON, labels, with room). */
#define STOR_WEBSESSION_REQ_MAX (256u * 1024u)

/** One signed-in browser session (oauth/oauth_session.c), in storage so that both csc-server (the pages) and
 *  csc-sam (the decisions: consent, approval) see the same one. Keyed by the SHA-256 of the session id: the
 *  cookie's value is never stored, nor the session's anti-CSRF token (oauth/ derives it from the id). Purged after expires_at by stor_purge_expired(). */
typedef struct stor_websession {
    uint8_t hash[32];                     /**< SHA-256 of the session id */
    char user[STOR_NAME_MAX + 1];         /**< who signed in */
    char client_id[STOR_NAME_MAX + 1];    /**< the OAuth client (or the approval page's pseudo-client) */
    uint32_t epoch;                       /**< the user's epoch at the login (an operator's reset ends the session) */
    int64_t created_at, touched_at, expires_at;
    uint32_t req_len;                     /**< bytes of req */
    uint32_t req_one;                     /**< 1 when req_len > 0 (the codec's count) */
    const uint8_t *req;                   /**< oauth_req_encode's bytes; not owned (a get points into the txn) */
} stor_websession_t;

/* ---- pushed authorization requests, RFC 9126 (stor_par.c) ---------------------------------------------- */

/** Largest packed request a PAR holds: oauth/'s OAUTH_REQ_ENC_MAX (the whole oauth_authz_request_t, about 74 KB with
 *  1,024 digests of 64 bytes, plus 64), with room; oauth/oauth_session.c checks at build time that it fits. */
#define STOR_PAR_REQ_MAX (80u * 1024u)

/** One pushed authorization request (oauth/oauth_session.c), in storage so that a request_uri pushed through one
 *  node is used, once, through any node, and a restart keeps it. Keyed by the SHA-256 of the request_uri's random
 *  part: the request_uri itself is never stored. Purged after expires_at by csc-server (stor_purge_pars). */
typedef struct stor_par {
    uint8_t hash[32];                     /**< SHA-256 of the request_uri's random part */
    char client_id[STOR_NAME_MAX + 1];    /**< the client that pushed it: only its use consumes it */
    int64_t created_at;                   /**< unix seconds */
    int64_t expires_at;                   /**< unix seconds: void from then on */
    uint32_t req_len;                     /**< bytes of req */
    uint32_t req_one;                     /**< 1 (the codec's count) */
    const uint8_t *req;                   /**< oauth_req_encode's bytes; not owned (a get points into the txn) */
} stor_par_t;

/* ---- pending approvals of the /approve page (stor_user_approval.c) ------------------------------------ */

/** stor_user_approval_t.state. Stored: never renumber. */
typedef enum {
    STOR_UAPPR_PENDING = 0,               /**< waiting for the user's decision on the page */
    STOR_UAPPR_APPROVED = 1,              /**< approved: csc-sam issues the SAD at authorizeCheck */
    STOR_UAPPR_REFUSED = 2,               /**< refused by the user, or the credential was not usable */
    STOR_UAPPR_LOCKED = 3,                /**< refused: the credential was locked */
} stor_uappr_state_t;

/** A credentials/authorize that waits for its user's approval on the service's page (oauth/oauth_approval.c),
 *  in storage so that csc-sam (which files, decides and answers it) and csc-server's page (which lists it) see the
 *  same one, and a csc-sam restart keeps it. Keyed by the SHA-256 of the handle (a bearer secret: never stored);
 *  the page names it by ref. Holds no SAD: an approval is a decision, the SAD is issued when the client asks.
 *  Purged after expires_at by stor_purge_expired(). */
typedef struct stor_user_approval {
    uint8_t hash[32];                     /**< key: SHA-256 of the handle */
    uint8_t ref[16];                      /**< random: names the request on the page */
    uint32_t state;                       /**< stor_uappr_state_t */
    uint32_t verified;                    /**< APPROVED: the factors the decision verified (oauth/'s bits) */
    char user[STOR_NAME_MAX + 1];         /**< the credential's owner, who asked and decides */
    char cred[STOR_NAME_MAX + 1];
    char client[64];                      /**< who asked (for the page and the audit records) */
    uint32_t num_signatures;
    uint32_t needs_pin;                   /**< 1: the credential's expression names PIN (asked on the page) */
    uint32_t epoch;                       /**< the user's epoch when asked: an operator's reset voids the request */
    int64_t created_at, expires_at;
    char hash_alg[STOR_OID_MAX + 1];      /**< OID of the digests, "" if none */
    uint32_t digest_len, n_digests;
    uint8_t digests[STOR_DIGESTS_MAX * STOR_DIGEST_LEN_MAX];
} stor_user_approval_t;

/* ---- enrollment (stor_enroll.c): the one-time enrollment code of a user, and the ticket of /enroll's step 2 ------ */

typedef enum { STOR_ENROLL_NEW = 1, STOR_ENROLL_RECOVER = 2 } stor_enroll_kind_t;

/** A user's pending enrollment code (at most one: a new code replaces the old), keyed by the user name. Only the
 *  SHA-256 of the normalized code is kept. Purged after expires_at by stor_purge_expired(). */
typedef struct stor_enroll {
    char user[STOR_NAME_MAX + 1];         /**< key */
    uint8_t code_hash[32];                /**< SHA-256 of the normalized code (16 characters, upper case, no dash) */
    int64_t expires_at;
    uint32_t tries_left;                  /**< wrong codes (and wrong first TOTP codes) still allowed; 0: burnt */
    uint32_t kind;                        /**< stor_enroll_kind_t */
    char issued_by[STOR_DESC_MAX + 1];    /**< the operator (and requester) who issued it */
    int64_t created_at;
    uint8_t ticket_hash[32];              /**< the one live ticket of step 2 (all zero: none) */
} stor_enroll_t;

/** Step 2 of /enroll: keyed by SHA-256 of a random ticket (the cookie), the user and the TOTP secret made for this
 *  enrollment. Purged after expires_at by stor_purge_expired(). */
typedef struct stor_enroll_ticket {
    uint8_t hash[32];                     /**< key */
    char user[STOR_NAME_MAX + 1];
    uint8_t totp_secret[STOR_TOTP_MAX];   /**< never written any more: tickets of an older csc-sam (clear) */
    uint32_t totp_secret_len;
    int64_t expires_at;
    uint8_t totp_sealed[STOR_TOTP_SEALED_MAX]; /**< the secret sealed by csc-sam (sam_op_enroll.c totp_seal) */
    uint32_t totp_sealed_len;
} stor_enroll_ticket_t;


/** Owner name of the built-in time-stamping unit's credential (created by csc-admin tsa init): reserved, so no
 *  user can be created with it, see or authorize it. */
#define STOR_TSA_OWNER "-tsa-"

/* ---- operators of csc-admin, their sessions and pending approvals (J14) ---- */

/** Roles of an operator: a bit set. Values are stored: never renumber. */
typedef enum { STOR_ROLE_USER_ADMIN = 1, STOR_ROLE_KEY_ADMIN = 2, STOR_ROLE_AUDITOR = 4 } stor_role_t;
#define STOR_ROLES_ALL (STOR_ROLE_USER_ADMIN | STOR_ROLE_KEY_ADMIN | STOR_ROLE_AUDITOR)
typedef enum { STOR_OPERATOR_ACTIVE = 1, STOR_OPERATOR_DISABLED = 2, STOR_OPERATOR_ENROLLING = 3 } stor_operator_status_t;

typedef struct stor_operator {
    char name[STOR_NAME_MAX + 1];         /**< key */
    uint32_t roles;                       /**< bit set of stor_role_t */
    uint32_t status;                      /**< stor_operator_status_t */
    uint8_t pw_verifier[STOR_VERIFIER_MAX]; /**< opaque, from oauth_secret_hash() */
    uint32_t pw_verifier_len;
    uint8_t totp_secret[STOR_TOTP_MAX];   /**< raw RFC 6238 secret: only in records written before sealing (csc-sam
                                               seals it at its start and clears this) */
    uint32_t totp_secret_len;
    int64_t totp_last_step;               /**< last accepted time step (replay guard) */
    uint32_t failed_logins;               /**< consecutive failed logins */
    int64_t locked_until;                 /**< unix seconds; 0 = not locked */
    int64_t created_at;
    uint8_t totp_sealed[STOR_TOTP_SEALED_MAX]; /**< the TOTP secret sealed under the token's factor key by csc-sam
                                                    (sam_factor.c, additional data of operators) */
    uint32_t totp_sealed_len;
    /* enrolling (csc-admin operator add, then operator enroll on the new operator's own terminal): */
    uint8_t enroll_code_hash[32];         /**< SHA-256 of the one-time enrollment code (all zero: none) */
    int64_t enroll_expires_at;            /**< the code's, then the ticket's expiry (unix seconds) */
    uint32_t enroll_tries;                /**< wrong codes (then wrong first TOTP codes) left before it is burnt */
    uint8_t enroll_ticket_hash[32];       /**< SHA-256 of the ticket of enrollment's second step (all zero: none) */
} stor_operator_t;

/** A csc-admin login session: only the SHA-256 of its token is stored. */
typedef struct stor_opsession {
    uint8_t hash[32];                     /**< key: SHA-256 of the session token */
    char operator_name[STOR_NAME_MAX + 1];
    int64_t created_at;
    int64_t last_used;                    /**< idle expiry counts from here */
    int64_t expires_at;                   /**< absolute expiry (unix seconds) */
    uint8_t host_id[32];                  /**< the host it was created on (adm_origin_t.host_id; zero: none given) */
} stor_opsession_t;

#define STOR_APPROVAL_ARGS_MAX 32  /**< words of a command waiting for approval */
#define STOR_APPROVAL_ARG_MAX 255  /**< bytes of one word */

/** stor_approval_t.flags. Stored: never renumber. */
#define STOR_APPROVAL_JOB 1u /**< a pending job, no request: it needs no second operator and cannot be rejected
                                  (csc-server's CRL sweep files a revoked key's destruction so; csc-admin credential
                                  destroy-pending runs it) */

/** A command held for a second operator's approval (two-person rule), or a job filed for csc-admin to run. */
typedef struct stor_approval {
    char id[STOR_NAME_MAX + 1];           /**< key: random hex id */
    char requester[STOR_NAME_MAX + 1];    /**< operator who asked ("csc-server": its CRL sweep) */
    uint32_t role;                        /**< stor_role_t the command needs (and the approver too) */
    uint32_t n_args;
    char args[STOR_APPROVAL_ARGS_MAX][STOR_APPROVAL_ARG_MAX + 1]; /**< the command words, as typed */
    int64_t created_at;
    int64_t expires_at;                   /**< 0 = never (what csc-server files waits until it is done) */
    uint32_t flags;                       /**< STOR_APPROVAL_* */
    char origin[STOR_ORIGIN_MAX + 1];     /**< the requester's command's origin (the thread's stor_audit_origin_set
                                               when filed; "" for csc-server's jobs) */
} stor_approval_t;

/* ---- transactions ------------------------------------------------------ */

typedef struct stor_txn stor_txn_t;
typedef int (*stor_txn_fn)(stor_txn_t *txn, void *arg);

/**
 * Run fn in a write transaction (on this thread, or on the caller running the batch) and wait until it is durable.
 * If fn returns non-zero, everything it wrote is discarded and its value is returned; if it returns 0 and the
 * commit succeeds, 0 is returned. fn sees the writes of the jobs batched before it, never those of a job that
 * failed.
 * @return fn's value, or STOR_ERR_IO/FULL/CLOSED when the commit itself failed
 *         (then nothing fn wrote is kept). STOR_ERR_CLOSED once stor_close() has started.
 * @note fn must be short and must not block or call stor_write() itself (that returns STOR_ERR_INVAL).
 * @note fn must be re-runnable: when the batch meets a conflict with another writer (PostgreSQL: serialization
 *       failure or deadlock, STOR_ERR_RETRY) it is rolled back and run again, fn included (at most STOR_RETRY_MAX
 *       times in all), and when another job of its batch fails, the batch runs again without that job (stor_env.c
 *       run_batch); fn must thus set its outputs from what it reads each time, not accumulate them, and change
 *       nothing outside the transaction that a second run would change again.
 * @note If an accessor inside fn fails inside LMDB (STOR_ERR_FULL, IO, ...), the txn is dead: later accessors
 *       return the same code and the write fails with it even if fn returns 0.
 */
int stor_write(stor_env_t *env, stor_txn_fn fn, void *arg);

/**
 * Set (NULL or "": clear) the origin of the calling thread's operator command: every audit record appended and every
 * approval request filed by the writes this thread asks for from now on (stor_write captures it per call) carries it
 * in its origin field, unless the record sets one itself. csc-admin sets it once; csc-sam for each operator op
 * (docs/architecture.md "The operators' socket"). Cut to STOR_ORIGIN_MAX bytes.
 */
void stor_audit_origin_set(const char *origin);

/** Group commits of this environment (this process's writes only) for csc-server's /metrics: batches run (committed
 *  or failed), the jobs they carried, and how long each batch took from its first callback to durable, as a histogram
 *  over stor_commit_bounds (buckets[i]: batches within bounds[i] and above bounds[i-1]; buckets[STOR_COMMIT_BUCKETS]:
 *  slower than the last bound). */
#define STOR_COMMIT_BUCKETS 11
typedef struct stor_commit_stats {
    uint64_t batches, jobs;
    uint64_t buckets[STOR_COMMIT_BUCKETS + 1];
    double seconds;
} stor_commit_stats_t;
extern const double stor_commit_bounds[STOR_COMMIT_BUCKETS];
void stor_commit_stats(stor_env_t *env, stor_commit_stats_t *out);

/** How large the database is, for /metrics: *used the bytes in use now, *capacity the most it may take (LMDB: the map
 *  size), without a transaction and without blocking. STOR_ERR_NOTFOUND when the backend cannot say so cheaply
 *  (PostgreSQL: pg_database_size, from its own statistics). */
int stor_size(stor_env_t *env, uint64_t *used, uint64_t *capacity);

/** Run fn in a read-only transaction on the calling thread; returns fn's value
 *  (STOR_ERR_CLOSED once stor_close() has started). */
int stor_read(stor_env_t *env, stor_txn_fn fn, void *arg);

/**
 * Is the map (or the disk under it) full? A write refused with STOR_ERR_FULL starts an episode (one line on stderr);
 * the first batch that commits afterwards appends a STOR_EV_STORAGE audit record and ends it.
 * @param[out] since_ms unix ms of the first refusal (0 when not full); may be NULL
 * @param[out] refused writes refused so far in the episode; may be NULL
 * @return 1 full, 0 not
 */
int stor_full_status(stor_env_t *env, int64_t *since_ms, uint64_t *refused);

/* Accessors, only inside a stor_write()/stor_read() callback. Getters copy
 * the record out. Putters in a read transaction return STOR_ERR_INVAL. */
int stor_txn_user_get(stor_txn_t *t, const char *name, stor_user_t *out);
int stor_txn_user_put(stor_txn_t *t, const stor_user_t *u, int create_only);
int stor_txn_cred_get(stor_txn_t *t, const char *id, stor_cred_t *out);
int stor_txn_cred_put(stor_txn_t *t, const stor_cred_t *c, int create_only);
/** One change of a stored credential: read it (heap copy), let change decide and edit (a non-zero return aborts:
 *  stor_write hands it back), write it, then append audit (its user set to the owner) in the same transaction;
 *  the copy is wiped. Shared by csc-admin's credential commands and csc-server's CRL sweep. */
typedef int (*stor_cred_change_fn)(stor_cred_t *c, void *arg);
int stor_txn_cred_change(stor_txn_t *t, const char *id, stor_cred_change_fn change, void *arg, stor_audit_t *audit);
int stor_txn_token_get(stor_txn_t *t, const uint8_t hash[32], stor_token_t *out);
/** Read ahead the record a later stor_txn_*_get of the same key in t will ask for: on PostgreSQL the reads of the
 *  rows a callback names this way go out together, one round trip for all of them instead of one each (at most 8
 *  pending per txn; beyond, it does nothing). The get returns what it would have without it; a row never asked
 *  for only costs its read. Nothing on LMDB.
 *  @return 0, STOR_ERR_INVAL (a malformed key: nothing read ahead, t usable), or the failure of t */
int stor_txn_token_prefetch(stor_txn_t *t, const uint8_t hash[32]);
int stor_txn_user_prefetch(stor_txn_t *t, const char *name);
int stor_txn_cred_prefetch(stor_txn_t *t, const char *id);
int stor_txn_token_put(stor_txn_t *t, const stor_token_t *tok);
int stor_txn_token_del(stor_txn_t *t, const uint8_t hash[32]);
/** Revoke every token of a grant. @return the number revoked (>= 0; tokens already revoked are not
 *  counted) or an error. @note Do not return the count from the stor_write() callback: any non-zero
 *  return rolls the callback's writes back. */
int stor_txn_token_revoke_grant(stor_txn_t *t, const uint8_t grant[16]);
/** Call fn for each token of a grant (in hash order). A non-zero return of fn stops the walk and is returned.
 *  @note fn gets a copy; it must not change the tokens of the grant while the walk runs (collect, then act).
 *  @note Added with the OAuth server (not in the first contract): a reused authorization code must find the
 *        credential token it issued, to delete that token's SAD. */
typedef int (*stor_token_each_fn)(const stor_token_t *tok, void *arg);
int stor_txn_token_each_grant(stor_txn_t *t, const uint8_t grant[16], stor_token_each_fn fn, void *arg);
int stor_txn_sad_get(stor_txn_t *t, const uint8_t hash[32], stor_sad_t *out);
/** Read ahead (stor_txn_token_prefetch) the SAD a stor_txn_sad_get of hash in t reads. */
int stor_txn_sad_prefetch(stor_txn_t *t, const uint8_t hash[32]);
int stor_txn_sad_put(stor_txn_t *t, const stor_sad_t *sad);
int stor_txn_sad_del(stor_txn_t *t, const uint8_t hash[32]);
/* Pending SADs: what a credential-scope authorization code will turn into a SAD when the token endpoint redeems
 * it, keyed by the code's hash (pending->hash). A table of their own: the SAD accessors above never see them, so
 * a code can never be presented as a SAD. Expired ones go with stor_purge_expired(). */
int stor_txn_pending_sad_get(stor_txn_t *t, const uint8_t code_hash[32], stor_sad_t *out);
int stor_txn_pending_sad_put(stor_txn_t *t, const stor_sad_t *pending);
int stor_txn_pending_sad_del(stor_txn_t *t, const uint8_t code_hash[32]);
/** Append an audit record; fills rec->seq, time_ms (if 0), prev_hash and hash. */
int stor_txn_audit_append(stor_txn_t *t, stor_audit_t *rec);
/** Read ahead (stor_txn_token_prefetch) the chain's head that the next stor_txn_audit_append in t reads. */
int stor_txn_audit_head_prefetch(stor_txn_t *t);

/* OAuth clients, keyed by client_id (1..STOR_NAME_MAX printable ASCII characters without spaces, like user
 * names: else STOR_ERR_INVAL). get: STOR_ERR_NOTFOUND if there is none; put with create_only: STOR_ERR_EXISTS
 * if there is one; del: STOR_ERR_NOTFOUND if there is none. A put with n_redirects > STOR_REDIRECTS_MAX or an
 * unterminated string is STOR_ERR_INVAL. Redirect URIs are not judged here (oauth/ does). */
int stor_txn_client_get(stor_txn_t *t, const char *id, stor_client_t *out);
int stor_txn_client_put(stor_txn_t *t, const stor_client_t *c, int create_only);
int stor_txn_client_del(stor_txn_t *t, const char *id);
/** Call fn for each client in client_id order. A non-zero return of fn stops the walk and is returned. */
typedef int (*stor_client_each_fn)(const stor_client_t *c, void *arg);
int stor_txn_client_each(stor_txn_t *t, stor_client_each_fn fn, void *arg);
/* Authorization codes, keyed by the SHA-256 of the code; put overwrites (marking a code used). put checks
 * client and user as names, and cred if it is not "" (STOR_ERR_INVAL). Expired codes go with
 * stor_purge_expired(). */
int stor_txn_code_get(stor_txn_t *t, const uint8_t hash[32], stor_code_t *out);
int stor_txn_code_put(stor_txn_t *t, const stor_code_t *code);

/** What stor_txn_user_revoke_all() did. */
typedef struct stor_revoked {
    unsigned tokens;   /**< access and refresh tokens revoked */
    unsigned sads;     /**< SADs deleted (credential tokens' SADs included) */
    unsigned pending;  /**< unused authorization codes deleted, with their pending SADs */
} stor_revoked_t;

/**
 * Revoke everything user holds: every unexpired, unrevoked access and refresh token (revoked, kept), every SAD
 * and pending SAD of user (deleted), every unused authorization code issued to user (deleted; used codes stay so
 * that their reuse is still recognised). Walks the tables (no per-user index): for operator resets.
 * @param[out] out counts (only unexpired records at now are counted)
 */
int stor_txn_user_revoke_all(stor_txn_t *t, const char *user, int64_t now, stor_revoked_t *out);
/** stor_txn_user_revoke_all() of what names credential cred only: user's credential-scope tokens of cred, SADs and
 *  pending SADs of cred, unused codes for cred (a change of the credential's PIN on /account). */
int stor_txn_user_revoke_cred(stor_txn_t *t, const char *user, const char *cred, int64_t now, stor_revoked_t *out);
/** End every browser session of user but keep (the SHA-256 of the session id that stays; NULL: none): deleted.
 *  *n = how many of them had not expired at now. Walks the table: for a change of the user's factors. */
int stor_txn_websession_end_user(stor_txn_t *t, const char *user, const uint8_t keep[32], int64_t now, unsigned *n);

/** Call fn for each credential owned by user, in credentialID order. A non-zero
 *  return of fn stops the walk and is returned. */
typedef int (*stor_cred_each_fn)(const stor_cred_t *c, void *arg);
int stor_txn_cred_each(stor_txn_t *t, const char *owner, stor_cred_each_fn fn, void *arg);
/** Same over all users. */
typedef int (*stor_user_each_fn)(const stor_user_t *u, void *arg);
int stor_txn_user_each(stor_txn_t *t, stor_user_each_fn fn, void *arg);

/* Operators (keyed by name, checked like user names), operator sessions (by token hash) and approvals (by id,
 * a name). get: STOR_ERR_NOTFOUND if absent; put with create_only: STOR_ERR_EXISTS if present; del:
 * STOR_ERR_NOTFOUND if absent. each: in key order; a non-zero return of fn stops the walk and is returned. */
int stor_txn_operator_get(stor_txn_t *t, const char *name, stor_operator_t *out);
int stor_txn_operator_put(stor_txn_t *t, const stor_operator_t *op, int create_only);
int stor_txn_operator_del(stor_txn_t *t, const char *name);
typedef int (*stor_operator_each_fn)(const stor_operator_t *op, void *arg);
int stor_txn_operator_each(stor_txn_t *t, stor_operator_each_fn fn, void *arg);
int stor_txn_opsession_get(stor_txn_t *t, const uint8_t hash[32], stor_opsession_t *out);
int stor_txn_opsession_put(stor_txn_t *t, const stor_opsession_t *s);
int stor_txn_opsession_del(stor_txn_t *t, const uint8_t hash[32]);
int stor_txn_approval_get(stor_txn_t *t, const char *id, stor_approval_t *out);
int stor_txn_approval_put(stor_txn_t *t, const stor_approval_t *a, int create_only);
int stor_txn_approval_del(stor_txn_t *t, const char *id);
typedef int (*stor_approval_each_fn)(const stor_approval_t *a, void *arg);
int stor_txn_approval_each(stor_txn_t *t, stor_approval_each_fn fn, void *arg);

/**
 * Hold a command for a second operator's approval (two-person rule): a new approval with a random hex id, the
 * words argv[0..argc-1] (1..STOR_APPROVAL_ARGS_MAX words of at most STOR_APPROVAL_ARG_MAX bytes), needing role,
 * expiring ttl seconds from now (0: never), and its audit record (STOR_EV_OPERATOR "action=approval.request", user
 * = requester) in one write. Used by csc-admin (adm_op_approval_request).
 * @param[out] id the request id (NUL-terminated; "" on failure)
 * @return STOR_OK; STOR_ERR_INVAL (bad words or requester), STOR_ERR_IO (no randomness), or a write's error.
 */
int stor_approval_request(stor_env_t *env, const char *requester, uint32_t role, int64_t ttl, int argc,
                          char *const *argv, char id[STOR_NAME_MAX + 1]);
/** The same inside a write transaction, with flags (STOR_APPROVAL_JOB: a job, audited as "action=job.file"): how
 *  csc-server's CRL sweep files a revoked credential's key destruction in the transaction that marks it destroyed.
 *  ttl < 0 or an unknown flag: STOR_ERR_INVAL. */
int stor_txn_approval_request(stor_txn_t *t, const char *requester, uint32_t role, int64_t ttl, uint32_t flags,
                              int argc, char *const *argv, char id[STOR_NAME_MAX + 1]);

/* ---- the key destructions the CRL sweep files (J7; stor_keyjob.c) ---------------------------------------------
 * Each "credential revoke ID" held in approvals: a job (STOR_APPROVAL_JOB), which csc-sam runs at once and
 * `csc-admin credential destroy-pending` by hand, or a request that waits for a second operator (csc-admin approve).
 * Storage has no HSM: the runner destroys each key through its callback. */
typedef struct stor_key_job {
    char id[STOR_NAME_MAX + 1];        /**< the job's (or request's) id */
    char requester[STOR_NAME_MAX + 1]; /**< who filed it ("csc-server": its CRL sweep) */
    char cred[STOR_NAME_MAX + 1];      /**< the credential whose keys go */
    uint32_t role;                     /**< the role it needs */
    uint32_t flags;                    /**< STOR_APPROVAL_JOB, or 0: a request for a second operator */
} stor_key_job_t;
/** Every "credential revoke ID" held (jobs and requests), malloc'd into *out (free() it; NULL when none). */
int stor_txn_key_jobs(stor_txn_t *t, stor_key_job_t **out, size_t *n);
/** What became of one job: done (keys destroyed, job dropped), waiting (a request, or hold), or failed because the
 *  runner lacks its role, storage refused (code: STOR_ERR_*), or the key was not destroyed (code: the callback's). */
enum { STOR_KEY_JOB_DONE = 0, STOR_KEY_JOB_WAITING, STOR_KEY_JOB_ROLE, STOR_KEY_JOB_STORAGE, STOR_KEY_JOB_KEY };
/** Destroy the key key_id (len bytes): 0 when it is gone (also: it was gone already), else the runner's code. */
typedef int (*stor_key_destroy_fn)(void *arg, const uint8_t *key_id, size_t len);
typedef void (*stor_key_job_report_fn)(void *arg, const stor_key_job_t *job, int outcome, int code);
typedef struct stor_key_jobs {
    const char *actor;                 /**< who runs them (audit: "operator=ACTOR"): "csc-sam", an operator's name */
    const char *client;                /**< the audit records' client: "csc-sam", "csc-admin" */
    uint32_t roles;                    /**< the runner's roles: a job needing another role fails (csc-sam: all) */
    int hold;                          /**< run none: every job waits for a second operator (two_person) */
    stor_key_destroy_fn destroy;       /**< the HSM's side */
    void *arg;
    stor_key_job_report_fn report;     /**< each job's outcome (may be NULL) */
    void *report_arg;
} stor_key_jobs_t;
typedef struct stor_key_jobs_count {
    unsigned done, waiting, failed;
} stor_key_jobs_count_t;
/**
 * Run every job: one write marks the credential destroyed (reason revoked, final) with its audit record (STOR_EV_ADMIN
 * "operator=ACTOR,requester=R action=credential.destroy reason=certificate revoked"), then how->destroy destroys the
 * keys that record names (a renewal's pending key, then the key), then one write drops the job with its record
 * (STOR_EV_OPERATOR "operator=ACTOR requester=R action=job.done id=ID command=credential revoke CRED"). A job that
 * fails at any step stays for the next run; one that another runner dropped meanwhile counts as done. Idempotent.
 * @return STOR_OK (count says what happened; failed jobs included), STOR_ERR_INVAL, or the error of reading them
 */
int stor_key_jobs_run(stor_env_t *env, const stor_key_jobs_t *how, stor_key_jobs_count_t *count);

/* Enrollment codes (by user) and /enroll tickets (by hash); see stor_enroll_t. */
/** get: STOR_ERR_NOTFOUND if absent; put replaces; del: STOR_ERR_NOTFOUND if absent. */
int stor_txn_enroll_get(stor_txn_t *t, const char *user, stor_enroll_t *out);
int stor_txn_enroll_put(stor_txn_t *t, const stor_enroll_t *e);
int stor_txn_enroll_del(stor_txn_t *t, const char *user);
int stor_txn_enroll_ticket_get(stor_txn_t *t, const uint8_t hash[32], stor_enroll_ticket_t *out);
int stor_txn_enroll_ticket_put(stor_txn_t *t, const stor_enroll_ticket_t *k);
int stor_txn_enroll_ticket_del(stor_txn_t *t, const uint8_t hash[32]);

/* Delegations by delegate (an index for listing; the credential record's delegates decide): put adds
 * (user, cred), del removes it (STOR_ERR_NOTFOUND if absent), each calls fn with every credential id
 * delegated to user, in id order. */
int stor_txn_delegation_put(stor_txn_t *t, const char *user, const char *cred);
int stor_txn_delegation_del(stor_txn_t *t, const char *user, const char *cred);
typedef int (*stor_delegation_each_fn)(const char *cred, void *arg);
int stor_txn_delegation_each(stor_txn_t *t, const char *user, stor_delegation_each_fn fn, void *arg);

/* ---- restore requests (stor_account.c): a restore happens only on its user's request (J8, /account) ----------
 * The user asks on /account (csc-sam's ACCOUNT_RESTORE); the operator's csc-admin credential restore names the
 * request's reference, and the restore's own write marks it used. Purged after expires_at. */
#define STOR_RESTORE_REF_LEN 15           /**< "RR-" and 12 characters of the enrollment code alphabet */
typedef enum { STOR_RESTORE_OPEN = 1, STOR_RESTORE_USED = 2 } stor_restore_state_t; /**< stored: never renumber */
typedef struct stor_restore_req {
    char ref[STOR_NAME_MAX + 1];          /**< key: the reference the user gives the operator */
    char user[STOR_NAME_MAX + 1];         /**< who asked: the credential's owner */
    char cred[STOR_NAME_MAX + 1];
    int64_t created_at, expires_at;       /**< unix seconds */
    uint32_t state;                       /**< stor_restore_state_t */
    int64_t used_at;                      /**< USED: when the restore ran */
} stor_restore_req_t;
/** get: STOR_ERR_NOTFOUND if absent; put (create_only: STOR_ERR_EXISTS if present) checks the names and the state. */
int stor_txn_restore_req_get(stor_txn_t *t, const char *ref, stor_restore_req_t *out);
int stor_txn_restore_req_put(stor_txn_t *t, const stor_restore_req_t *r, int create_only);
/** Call fn with each request of user (NULL: all), in reference order; a non-zero return stops the walk. */
typedef int (*stor_restore_req_each_fn)(const stor_restore_req_t *r, void *arg);
int stor_txn_restore_req_each(stor_txn_t *t, const char *user, stor_restore_req_each_fn fn, void *arg);

/* ---- recent activity (stor_account.c): what /account shows, bounded ----------------------------------------
 * A user's last STOR_SIGNINS_MAX sign-ins (table signins, by user) and a credential's last STOR_SIGN_EVENTS_MAX
 * signing events (table sign_events, by credential), newest first; each added in the write of the event itself. */
#define STOR_SIGNINS_MAX 10
#define STOR_SIGN_EVENTS_MAX 5
#define STOR_RECENT_MAX 10                /**< the larger of the two */
#define STOR_RECENT_CLIENT_MAX 63
typedef enum { STOR_RECENT_SIGNINS = 1, STOR_RECENT_SIGNS = 2 } stor_recent_kind_t;
/** stor_recent_t.what of a sign-in: where the password was checked. Stored: never renumber. */
typedef enum { STOR_SIGNIN_PAGE = 1, STOR_SIGNIN_API = 2, STOR_SIGNIN_OAUTH = 3 } stor_signin_way_t;
typedef struct stor_recent {
    char key[STOR_NAME_MAX + 1];          /**< key: the user (sign-ins) or the credential (signing events) */
    uint32_t n;                           /**< entries used, newest first */
    int64_t time_ms[STOR_RECENT_MAX];     /**< unix milliseconds */
    uint32_t what[STOR_RECENT_MAX];       /**< sign-ins: stor_signin_way_t; signing events: number of signatures */
    uint32_t result[STOR_RECENT_MAX];     /**< sign-ins: stor_result_t (OK or DENIED); signing events: STOR_RES_OK */
    char client[STOR_RECENT_MAX][STOR_RECENT_CLIENT_MAX + 1]; /**< the client (OAuth client id, address) */
} stor_recent_t;
/** The record of key in table kind (out->n = 0 and STOR_OK when there is none yet). */
int stor_txn_recent_get(stor_txn_t *t, uint32_t kind, const char *key, stor_recent_t *out);
/** Read ahead (stor_txn_token_prefetch) the record a stor_txn_recent_get or _add of kind and key in t reads. */
int stor_txn_recent_prefetch(stor_txn_t *t, uint32_t kind, const char *key);
/** Put one event first in key's record of table kind, dropping the oldest past the table's bound (one small put).
 *  With the map nearly full (or its room not known: PostgreSQL) in a nested transaction: with the map full the event
 *  is dropped, STOR_OK, and t stays usable. client is cut to STOR_RECENT_CLIENT_MAX bytes (at a character
 *  boundary). @return STOR_OK, STOR_ERR_INVAL, ... */
int stor_txn_recent_add(stor_txn_t *t, uint32_t kind, const char *key, int64_t time_ms, uint32_t what,
                        uint32_t result, const char *client);

/* ---- convenience (each in its own transaction) ------------------------- */

int stor_user_get(stor_env_t *env, const char *name, stor_user_t *out);
int stor_cred_get(stor_env_t *env, const char *id, stor_cred_t *out);

/**
 * Read audit records with seq >= from, in order, calling fn for each
 * (rec->digests points into a buffer valid during the call).
 */
typedef int (*stor_audit_each_fn)(const stor_audit_t *rec, void *arg);
int stor_audit_each(stor_env_t *env, uint64_t from, stor_audit_each_fn fn, void *arg);

/** The audit head kept in meta, as found by stor_audit_scan(). */
typedef struct stor_audit_tip {
    int status;        /**< 0; STOR_ERR_NOTFOUND if meta has no head; STOR_ERR_CORRUPT if it cannot be decoded */
    uint64_t seq;      /**< last seq according to meta (0 unless status is 0) */
    uint8_t hash[32];  /**< hash of that record according to meta */
} stor_audit_tip_t;

/** One stored audit record, judged against its own bytes (for stor_audit_scan()). */
typedef struct stor_audit_raw {
    uint64_t key_seq;      /**< the seq of the LMDB key (big-endian u64) */
    int key_ok;            /**< 0 if the key is not 8 bytes long (key_seq is then 0) */
    int status;            /**< 0, or STOR_ERR_CORRUPT if the value cannot be decoded (then rec is zero) */
    int canonical;         /**< 1 if encoding rec again gives the stored bytes exactly */
    stor_audit_t rec;      /**< the fields as stored, hash and prev_hash included (digests valid during the call) */
    uint8_t computed[32];  /**< SHA-256(rec.prev_hash || canonical(rec)), recomputed from the stored fields */
} stor_audit_raw_t;

/**
 * Walk every key of the audit table in key order, for verification: unlike stor_audit_each(), a value that
 * cannot be decoded or a key out of place does not stop the walk; every record is handed to fn as found.
 * @param[in] fn called for each record; a non-zero return stops the walk and is returned.
 * @param[out] tip the head kept in meta, read in the same read transaction as the records.
 * @return 0, fn's value, STOR_ERR_INVAL (fn or tip NULL), STOR_ERR_NOMEM, or an LMDB failure.
 * @note Read-only; safe while a server appends (the walk sees one snapshot).
 */
typedef int (*stor_audit_scan_fn)(const stor_audit_raw_t *r, void *arg);
int stor_audit_scan(stor_env_t *env, stor_audit_scan_fn fn, void *arg, stor_audit_tip_t *tip);

/* ---- signed audit heads (J11) ------------------------------------------------ */

#define STOR_HEAD_SIG_MAX 160  /**< DER ECDSA signature (P-256: at most 72 bytes) */

/** A head of the audit chain signed with the HSM audit key, kept in the append-only audit_heads table. */
typedef struct stor_signed_head {
    uint64_t seq;                         /**< key: the seq of the audit record whose hash was signed */
    uint8_t hash[32];                     /**< that record's hash */
    int64_t time_ms;                      /**< when it was signed (unix milliseconds) */
    uint8_t sig[STOR_HEAD_SIG_MAX];       /**< DER ECDSA signature over SHA-256 of the head text (csc-api) */
    uint32_t sig_len;
} stor_signed_head_t;

/** The audit head in meta: last seq and its hash (0 and all-zero for an empty log). Inside a txn. */
int stor_txn_audit_tip(stor_txn_t *t, uint64_t *seq, uint8_t hash[32]);
/** The audit record with this seq (rec->digests valid during the txn). STOR_ERR_NOTFOUND if none. */
int stor_txn_audit_get(stor_txn_t *t, uint64_t seq, stor_audit_t *out);
/** Append a signed head; never overwrites (STOR_ERR_EXISTS if a head with this seq is stored). */
int stor_txn_signed_head_put(stor_txn_t *t, const stor_signed_head_t *h);
/**
 * Call fn for every stored signed head in seq order. A value that cannot be decoded is handed over with
 * status STOR_ERR_CORRUPT (only h->seq, from the key, is set); otherwise status is 0. A non-zero return of fn
 * stops the walk and is returned.
 */
typedef int (*stor_signed_head_each_fn)(const stor_signed_head_t *h, int status, void *arg);
int stor_txn_signed_head_each(stor_txn_t *t, stor_signed_head_each_fn fn, void *arg);
/**
 * The text a head's signature covers: "csc-audit-head v1 seq=N hash=HEX time_ms=T" (ASCII, no newline; the
 * signature is ECDSA P-256 over its SHA-256). Shared by the signer (csc-server, csc-api) and the verifier
 * (csc-admin, admin/). @return its length, or -1 if sz is too small.
 */
int stor_signed_head_text(const stor_signed_head_t *h, char *out, size_t sz);
/** CKA_ID (16 bytes, no NUL) and label of the HSM key that signs the heads: generated by csc-admin audit key-init
 *  (admin/), used by csc-server's head signer (csc-api). */
#define STOR_AUDIT_KEY_ID "csc-audit-key-01"
#define STOR_AUDIT_KEY_LABEL "csc-audit"

/**
 * Take the lock called name for the rest of t's top-level transaction, if no other process or node holds it: for
 * periodic work that one node at a time must do (the purge). PostgreSQL: pg_try_advisory_xact_lock of a hash of
 * name (released at the end of the transaction); LMDB (one writer per database anyway): always taken.
 * @return 1 taken, 0 held elsewhere (skip the work this round), or an error (a write txn is needed).
 */
int stor_txn_try_lock(stor_txn_t *t, const char *name);

/** Delete expired tokens, SADs, pending SADs, authorization codes, pending approvals, enrollments, restore requests
 *  and operator sessions past their absolute expiry (a write). csc-sam's purge task; not the browser sessions
 *  and pushed authorization requests (stor_purge_websessions, stor_purge_pars: csc-server's own tables). @return count
 *  removed or an error. */
int stor_purge_expired(stor_env_t *env, int64_t now);
/** Delete the browser sessions (web_sessions) past their absolute expiry (a write of that table only): csc-server's
 *  purge task. @return count removed or an error. */
int stor_purge_websessions(stor_env_t *env, int64_t now);
/** Delete the pushed authorization requests (pars) past their expiry (a write of that table only): csc-server's
 *  purge task, like the browser sessions. @return count removed or an error. */
int stor_purge_pars(stor_env_t *env, int64_t now);

/** @return STOR_OK (out->req points into the transaction's memory: copy it before the callback returns),
 *          STOR_ERR_NOTFOUND, STOR_ERR_CORRUPT, STOR_ERR_INVAL */
int stor_txn_websession_get(stor_txn_t *t, const uint8_t hash[32], stor_websession_t *out);
/** Create (create_only) or replace. @return STOR_OK, STOR_ERR_EXISTS, STOR_ERR_INVAL (bad names, req too long or
 *  missing), ... */
int stor_txn_websession_put(stor_txn_t *t, const stor_websession_t *s, int create_only);
/** @return STOR_OK, STOR_ERR_NOTFOUND, ... */
int stor_txn_websession_del(stor_txn_t *t, const uint8_t hash[32]);
/** How many sessions are stored (expired ones included until purged). @return STOR_OK, ... */
int stor_txn_websession_count(stor_txn_t *t, size_t *n);
/** Delete the sessions expired at now; *n += how many (in the caller's write). @return STOR_OK, ... */
int stor_txn_websession_purge(stor_txn_t *t, int64_t now, int *n);

/** @return STOR_OK (out->req points into the transaction's memory: copy it before the callback returns),
 *          STOR_ERR_NOTFOUND, STOR_ERR_CORRUPT, STOR_ERR_INVAL */
int stor_txn_par_get(stor_txn_t *t, const uint8_t hash[32], stor_par_t *out);
/** Create (write txn; a request_uri is used once, so never replaced). @return STOR_OK, STOR_ERR_EXISTS (the key is
 *  taken), STOR_ERR_INVAL (bad client_id, expires_at <= created_at, req missing or over STOR_PAR_REQ_MAX), ... */
int stor_txn_par_put(stor_txn_t *t, const stor_par_t *p);
/** @return STOR_OK, STOR_ERR_NOTFOUND, ... */
int stor_txn_par_del(stor_txn_t *t, const uint8_t hash[32]);
/** How many are stored (expired ones included until purged). @return STOR_OK, ... */
int stor_txn_par_count(stor_txn_t *t, size_t *n);
/** Delete the ones expired at now (now >= expires_at); *n += how many (in the caller's write). @return STOR_OK, ... */
int stor_txn_par_purge(stor_txn_t *t, int64_t now, int *n);

/** @return STOR_OK, STOR_ERR_NOTFOUND, STOR_ERR_CORRUPT, STOR_ERR_INVAL */
int stor_txn_user_approval_get(stor_txn_t *t, const uint8_t hash[32], stor_user_approval_t *out);
/** Create (create_only) or replace. @return STOR_OK, STOR_ERR_EXISTS, STOR_ERR_INVAL (bad names, state, digests), ... */
int stor_txn_user_approval_put(stor_txn_t *t, const stor_user_approval_t *a, int create_only);
/** @return STOR_OK, STOR_ERR_NOTFOUND, ... */
int stor_txn_user_approval_del(stor_txn_t *t, const uint8_t hash[32]);
/** How many are stored (expired ones included until purged). @return STOR_OK, ... */
int stor_txn_user_approval_count(stor_txn_t *t, size_t *n);
/** Delete the ones expired at now (now >= expires_at); *n += how many (in the caller's write). @return STOR_OK, ... */
int stor_txn_user_approval_purge(stor_txn_t *t, int64_t now, int *n);
/** Called for each stored approval of a walk (a heap copy, wiped after the call); non-zero stops the walk. */
typedef int (*stor_user_approval_each_fn)(const stor_user_approval_t *a, void *arg);
/** Call fn for the approvals of user ("" or NULL: all), in key order. @return 0, fn's non-zero return, or an error */
int stor_txn_user_approval_each(stor_txn_t *t, const char *user, stor_user_approval_each_fn fn, void *arg);

/** @return STOR_OK (out->body points into the transaction's memory: copy it before the callback returns),
 *          STOR_ERR_NOTFOUND, STOR_ERR_CORRUPT, STOR_ERR_INVAL */
int stor_txn_async_get(stor_txn_t *t, const uint8_t hash[32], stor_async_t *out);
/** Create or replace. @return STOR_OK, STOR_ERR_INVAL (bad user/cred name, state, body too long), ... */
int stor_txn_async_put(stor_txn_t *t, const stor_async_t *rec);
/** At start-up: every PENDING result of this node (owner_node == node, or "" from before node ids) whose owner
 *  process is gone (not alive, or this very pid: a restart that got the same pid) becomes FAILED with error
 *  server_error and description desc; jobs of another node, or of another live process of this node, stay.
 *  @return the number changed (>= 0) or an error (STOR_ERR_INVAL: node not 1..STOR_NODE_MAX bytes). */
int stor_async_fail_pending(stor_env_t *env, const char *node, const char *desc);

/** @return STOR_OK, STOR_ERR_NOTFOUND, STOR_ERR_CORRUPT, STOR_ERR_INVAL */
int stor_txn_challenge_get(stor_txn_t *t, const uint8_t key[32], stor_challenge_t *out);
/** Create or replace (write txn). @return STOR_OK, STOR_ERR_INVAL, ... */
int stor_txn_challenge_put(stor_txn_t *t, const stor_challenge_t *c);
/** @return STOR_OK, STOR_ERR_NOTFOUND, ... */
int stor_txn_challenge_del(stor_txn_t *t, const uint8_t key[32]);
/** How many are stored (expired ones included until purged). @return STOR_OK, ... */
int stor_txn_challenge_count(stor_txn_t *t, size_t *n);
/** Delete the ones expired at now (now >= expires_at); *n += how many (in the caller's write). @return STOR_OK, ... */
int stor_txn_challenge_purge(stor_txn_t *t, int64_t now, int *n);
/** Delete the results whose expires_ms < now_ms. @return the number deleted (>= 0) or an error. */
int stor_async_purge(stor_env_t *env, int64_t now_ms);

/** Wipe a record that may hold verifiers or secrets (OPENSSL_cleanse). */
void stor_wipe(void *rec, size_t len);

/**
 * A zeroed block of size bytes for a record held while a request runs (a stor_sad_t, a stor_cred_t), or NULL. Blocks
 * of 4 KiB or more come from a pool: one given back with stor_rec_free is kept, wiped, for the next stor_rec_new of
 * its size (any thread), so the blocks of a busy process do not move about its heap (storage/stor_rec.c).
 */
void *stor_rec_new(size_t size);
/** Wipe p (size bytes, as given to stor_rec_new; NULL: nothing) and give it back. */
void stor_rec_free(void *p, size_t size);

#ifdef __cplusplus
}
#endif
#endif
