/*
 * csc.h - the CSC API v2 methods, independent of any HTTP library.
 *
 * The server turns an HTTP request into a csc_call_t, calls csc_handle() (on a
 * worker thread: it may block on storage commits and HSM operations) and sends
 * the csc_reply_t back. Every outcome, including every error, is a complete
 * reply: a status and a JSON body ({"error","error_description"} for errors).
 *
 * csc-api also carries the operator functions behind csc-admin (csc_admin_*),
 * which need the same modules (storage, HSM, verifiers, the CA).
 *
 * Thread-safety: csc_handle() may run on many threads at once.
 */
#ifndef CSC_H
#define CSC_H

#include <stddef.h>
#include <stdint.h>
#include "hsm.h"
#include "oauth.h"
#include "stor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csc csc_t;

typedef enum { CSC_ENV_PRODUCTION = 1, CSC_ENV_TEST = 2 } csc_env_t;

typedef struct csc_config {
    const char *name;          /**< info.name */
    const char *logo;          /**< info.logo: an external URI; NULL/"" = the service serves logo_file (or its own) */
    const char *logo_file;     /**< image served at {public_url}/logo.<ext> and named by info.logo; NULL/"" = none */
    const char *region;        /**< info.region (ISO 3166-1 alpha-2) */
    const char *lang;          /**< info.lang */
    const char *description;   /**< info.description */
    const char *specs;         /**< info.specs, e.g. "2.0.0.2" */
    csc_env_t environment;
    const char *public_url;    /**< external base URL, e.g. "https://sign.example.jp" (OAuth issuer) */
    size_t max_body;           /**< request body limit, bytes (also enforced by the server) */
    unsigned max_hashes;       /**< hashes per request (<= STOR_DIGESTS_MAX) */
    unsigned max_depth;        /**< JSON nesting limit */
    const char *tsa_credential; /**< id of the built-in TSA (csc-admin tsa init); NULL or "" = no TSA */
    const char *tsa_policy;    /**< TSTInfo.policy OID of the TSA */
    unsigned tsa_accuracy_ms;  /**< TSTInfo.accuracy; 0 = omitted */
    const char *trust_anchors; /**< PEM CA certificates: import chains and CRL issuers end here ("" = none) */
    const char *crl_dir;       /**< folder of CRLs checked before every signature ("" = no CRL checks) */
    int crl_allow_stale;       /**< a CRL past its nextUpdate still counts (else signing is refused) */
    int crl_require;           /**< refuse certificates whose issuer has no CRL in crl_dir */
    int crl_destroy_two_person; /**< two_person names credential revoke/destroy: a key whose certificate a CRL lists
                                     as revoked is destroyed only on an operator's approval (the credential is
                                     marked destroyed at once) */
    unsigned admin_approval_ttl; /**< seconds such a request waits (0 = 86400) */
    int allow_scal1;           /**< production: SCAL 1 credentials may be authorized and sign */
    int allow_single_factor;   /**< production: credentials whose expression one factor satisfies may too */
    const char *otp_sender;    /**< "exec:/path" or "file:/path": delivers getChallenge codes; NULL/"" = none */
    unsigned otp_sender_timeout; /**< seconds an exec sender may run (1..120) */
    /* operationMode "A" (all 0 = defaults: 2 workers, queue 64, validity 1 s <= 600 s <= 3600 s) */
    unsigned async_workers;    /**< background job threads (1..64) */
    unsigned async_queue;      /**< jobs accepted and not yet finished before 503 */
    unsigned async_validity_min, async_validity_default, async_validity_max; /**< validity_period bounds, s */
    /* response_uri notifications (0 = defaults: 10 s, 2 threads, queue 256) */
    unsigned notify_timeout;   /**< seconds for one notification, connect to status line */
    unsigned notify_threads;   /**< notification threads (never the job threads) */
    unsigned notify_queue;     /**< notifications waiting before further ones are dropped (logged) */
    const char *notify_allow;  /**< production: internal hosts/addresses/prefixes a response_uri may reach */
    unsigned oauth_revoke_status; /**< status of a successful /oauth2/revoke: 200 (RFC 7009; 0 = 200) or 204 */
} csc_config_t;

/**
 * Create the service. The modules are borrowed and must outlive it.
 * @return 0 or -1 (bad configuration; a message is written to stderr).
 */
int csc_new(const csc_config_t *cfg, stor_env_t *stor, hsm_t *hsm, oauth_t *oauth, csc_t **out);
void csc_free(csc_t *c);

/** One API call, as received. Strings are not NUL-terminated; the body is raw bytes. */
typedef struct csc_call {
    const char *http_method;   /**< "POST", "GET", ... */
    size_t http_method_len;
    const char *path;          /**< normalized path, e.g. "/csc/v2/signatures/signHash" */
    size_t path_len;
    const char *query;         /**< query string after '?', NULL if none */
    size_t query_len;
    const char *cookie;        /**< Cookie header value, NULL if absent */
    size_t cookie_len;
    const char *authorization; /**< Authorization header value, NULL if absent */
    size_t authorization_len;
    const char *content_type;  /**< Content-Type header value, NULL if absent */
    size_t content_type_len;
    const uint8_t *body;
    size_t body_len;
    const char *client;        /**< client address, NUL-terminated (for audit) */
} csc_call_t;

typedef struct csc_reply {
    int status;                /**< HTTP status */
    char *body;                /**< malloc'd body, NULL for none (204, 302) */
    size_t body_len;
    const char *content_type;  /**< static; NULL = application/json */
    const char *www_authenticate; /**< static header value for 401s, or NULL */
    const char *error;         /**< static CSC error code when status >= 400 (for the access log) */
    char *location;            /**< malloc'd Location for redirects, or NULL */
    char *set_cookie;          /**< malloc'd Set-Cookie value, or NULL */
    int page;                  /**< an HTML page: send CSP, no framing, no referrer */
    unsigned retry_after;      /**< seconds for a Retry-After header (429, 503), 0 = none */
} csc_reply_t;

/** Retry-After of a 503 that did not set its own. */
#define CSC_RETRY_AFTER 30

/** Is this path served by csc_handle() (the CSC API, OAuth 2.0 endpoints, AS metadata)? */
int csc_is_api_path(const char *path, size_t len);

/**
 * Does this call check a password or PIN (scrypt)? auth/login, credentials/authorize (v1 and v2), and the form
 * posts of the OAuth sign-in/consent page and of the approval page. The server runs these on their own small
 * worker pool, so that guessing never delays signing.
 */
int csc_checks_secret(const char *method, size_t method_len, const char *path, size_t path_len);

/** The reply for a call the server cannot take now (its queue is full): 503 with Retry-After, as a CSC error
 *  JSON or, for the pages, as an HTML page. */
void csc_reply_busy(csc_t *c, const csc_call_t *call, csc_reply_t *reply);

/**
 * Handle one call. Always fills *reply (status >= 200). Never echoes request
 * bytes into error descriptions. The caller frees with csc_reply_free().
 */
void csc_handle(csc_t *c, const csc_call_t *call, csc_reply_t *reply);

/** Build an error reply from a status, code and description (for the server's own errors). */
void csc_reply_error(csc_reply_t *reply, int status, const char *error, const char *description);

void csc_reply_free(csc_reply_t *reply);

/* ---- operators (csc-admin) ---------------------------------------------- */

typedef struct csc_ca {
    const char *cert_file;     /**< PEM certificate of the issuing CA */
    const char *key_file;      /**< PEM private key of the issuing CA */
    const char *chain_file;    /**< PEM certificates above the CA (optional) */
    unsigned days;             /**< validity of issued certificates */
    const char *refused;       /**< non-NULL: this CA issues nothing, for this reason (production: a CA key in a
                                    file is refused unless allow_builtin_ca) */
} csc_ca_t;

typedef struct csc_admin {
    stor_env_t *stor;
    hsm_t *hsm;                /**< may be NULL for operations that need no keys */
    const csc_ca_t *ca;
    const char *operator_name; /**< recorded in the audit log */
    unsigned scrypt_log2n;     /**< cost of new verifiers (0 = default) */
    const char *issuer;        /**< TOTP issuer shown by authenticator apps */
    int key_backup;            /**< config key_backup = wrapped: new keys can be backed up wrapped (J8) */
    const char *trust_anchors; /**< PEM CA certificates an imported certificate's chain must lead to */
    unsigned pin_min_length;   /**< shortest credential PIN set (config pin_min_length; 0 = 6) */
    int production;            /**< environment = production: new credentials must be SCAL 2 with two factors ... */
    int allow_scal1, allow_single_factor; /**< ... unless these say otherwise */
} csc_admin_t;

/**
 * Add a user with a password and a fresh TOTP secret.
 * @param[out] otpauth_uri the otpauth:// URI to enroll the secret (size uri_sz)
 * @param[out] totp_b32 the secret in base32 (size b32_sz)
 * @return 0, or -1 with a message in err (size err_sz)
 */
int csc_admin_user_add(const csc_admin_t *a, const char *name, const char *password, char *otpauth_uri, size_t uri_sz,
                       char *totp_b32, size_t b32_sz, char *err, size_t err_sz);

/** csc_admin_user_add() with a reference to the identity-verification evidence (J1; NULL = none), kept with the
 *  user, shown by csc_admin_list() and audited. */
int csc_admin_user_add_ev(const csc_admin_t *a, const char *name, const char *password, const char *evidence,
                          char *otpauth_uri, size_t uri_sz, char *totp_b32, size_t b32_sz, char *err, size_t err_sz);

/** 0 if s can be an evidence reference: 1..STOR_DESC_MAX bytes, no control characters. */
int csc_evidence_check(const char *s);

/**
 * Change a user (J1): the evidence reference (NULL = unchanged) and/or the password (NULL = unchanged; a new
 * scrypt verifier, the failure counter and lock cleared). Audited with the new reference (never the password).
 */
int csc_admin_user_change(const csc_admin_t *a, const char *name, const char *evidence, const char *password,
                          char *err, size_t err_sz);

/**
 * Re-enroll a user's TOTP (J2): a new secret replaces the old one, which stops working at once. Outputs as
 * csc_admin_user_add(). Audited.
 */
int csc_admin_user_totp_reset(const csc_admin_t *a, const char *name, char *otpauth_uri, size_t uri_sz,
                              char *totp_b32, size_t b32_sz, char *err, size_t err_sz);

/**
 * Allow user to sign with credential id on the owner's behalf (J1), or (remove) stop it at once. The operator
 * records the owner's consent as evidence (required to add). A delegate authorizes with their own TOTP and,
 * if the credential's expression needs a PIN, the PIN given here (never the owner's). Audited with the owner.
 */
int csc_admin_cred_delegate(const csc_admin_t *a, const char *id, const char *user, const char *pin,
                            const char *evidence, int remove, char *err, size_t err_sz);

typedef struct csc_cred_spec {
    const char *id;            /**< credential id; NULL = generated */
    const char *owner;
    hsm_keyspec_t key;
    const char *auth_expr;     /**< "PIN AND OTP", "PIN", "OTP" */
    const char *pin;           /**< required when the expression names PIN */
    unsigned scal;             /**< 1 or 2 */
    unsigned multisign;
    const char *description;
    const char *subject_cn;    /**< certificate subject CN; NULL = owner name */
    int oauth2code;            /**< auth.mode oauth2code: authorized only through OAuth 2.0 */
    const char *qualifier;     /**< CSC signatureQualifier, e.g. "eu_eidas_qes"; NULL = none */
    const char *csr_file;      /**< instead of a demo-CA certificate: write a PKCS#10 request (PEM) here and keep the
                                    credential STOR_CRED_PENDING until csc_admin_cred_import() */
    const char *subject_o;     /**< with csr_file: subject O and C (CN = subject_cn or the owner name) */
    const char *subject_c;
} csc_cred_spec_t;

/** Generate a key in the HSM, issue its certificate from the CA, store the credential. */
int csc_admin_cred_create(const csc_admin_t *a, const csc_cred_spec_t *spec, char *id_out, size_t id_sz, char *err,
                          size_t err_sz);

/**
 * Renewal through an external CA (J6, J7): a new key pair in the HSM and a PKCS#10 request for it (signed by that key)
 * written to csr_file; subject from cn/o/country, or the current certificate's when all three are NULL. The
 * credential keeps signing with its old key until csc_admin_cred_import() brings the new certificate; the import
 * switches to the new key and destroys the old one. A second request replaces (and destroys) an earlier pending key.
 */
int csc_admin_cred_renew_csr(const csc_admin_t *a, const char *id, const char *cn, const char *o, const char *country,
                             const char *csr_file, char *err, size_t err_sz);

/**
 * Import the CA's certificate for a credential's pending key (new credential or renewal) or, with none pending,
 * for its current key. Refused, with the reason in err and a denied STOR_EV_CERT audit record, when the
 * certificate's public key is not the HSM key, it is outside its validity, not fit for signing, or its chain
 * (chain_file, optional PEM, plus any certificates after the first in cert_file) does not lead to a certificate of
 * a->trust_anchors. On success the end entity and the verified chain are stored, a pending credential is enabled,
 * a renewed credential's old key destroyed; audited.
 */
int csc_admin_cred_import(const csc_admin_t *a, const char *id, const char *cert_file, const char *chain_file,
                          char *err, size_t err_sz);

/** Enable (enable = 1) or disable a credential. */
int csc_admin_cred_set_enabled(const csc_admin_t *a, const char *id, int enable, char *err, size_t err_sz);

/**
 * Destroy a credential's key in the HSM (J7: certificate revoked, or key no longer wanted) and mark the
 * credential destroyed: it can never sign or be enabled again. The record and its audit trail stay. The mark
 * is written first, so no signing can start once the destruction began. reason goes to the audit record;
 * CSC_DESTROY_REVOKED and CSC_DESTROY_TERMINATED also make the destruction final (no restore from a backup, J8),
 * any other reason is an operator's destroy.
 */
#define CSC_DESTROY_REVOKED "certificate revoked"
#define CSC_DESTROY_TERMINATED "user terminated"
int csc_admin_cred_destroy(const csc_admin_t *a, const char *id, const char *reason, char *err, size_t err_sz);

/**
 * The certificate of credential id was seen revoked in a CRL (csc-server, J7/J9): mark the credential destroyed
 * with reason revoked and audit it (detail names the CRL's reason); then, unless hold_key, destroy its key as
 * csc_admin_cred_destroy does. *marked = 1 when this call made the change (0: destroyed already for a final reason,
 * pending, or unknown: nothing done).
 * @return 0, or -1 with a message in err
 */
int csc_admin_cred_revoked(const csc_admin_t *a, const char *id, const char *detail, int hold_key, int *marked,
                           char *err, size_t err_sz);

/**
 * Renew a credential: a new key pair in the HSM, a new certificate from the CA for it, the record switched to
 * them, then the old key destroyed (J7). Audited.
 */
int csc_admin_cred_renew(const csc_admin_t *a, const char *id, char *err, size_t err_sz);

/**
 * Suspend (status STOR_USER_SUSPENDED), resume (STOR_USER_ACTIVE) or terminate (STOR_USER_TERMINATED: final;
 * every key of the user is destroyed as by csc_admin_cred_destroy) a user. A user who is not active can neither
 * log in nor use a token issued before. Audited.
 */
int csc_admin_user_set_status(const csc_admin_t *a, const char *name, uint32_t status, char *err, size_t err_sz);

/** Print the registered OAuth clients to out, one line each. */
int csc_admin_clients_list(const csc_admin_t *a, void *out_file);

/** Print users and their credentials to out, one line each. */
int csc_admin_list(const csc_admin_t *a, void *out_file);

/* ---- key backup and restore (J8, csc_backup.c) ------------------------------ */

/**
 * Create the HSM backup keys if missing (trusted AES-256 wrapping key, made with the SO PIN, and the HMAC
 * integrity key). Audited (STOR_EV_BACKUP) when something was created or the SO PIN was refused.
 * @param[in] so_pin the token's SO PIN (needed only while the wrapping key is missing; may be NULL)
 * @param[out] created bit 1 wrapping key, bit 2 integrity key created now (0: both existed)
 * @return 0; -2 if the wrapping key is missing and so_pin is NULL; -1 otherwise (message in err)
 */
int csc_admin_backup_init(const csc_admin_t *a, const char *so_pin, int *created, char *err, size_t err_sz);

/**
 * Back up a credential into a new file (mode 0600, never overwriting): its record fields, public key, and
 * private key wrapped in the HSM under the backup key, with an HSM integrity tag over everything. Refused
 * (with the reason in err, audited) when the key was generated non-extractable (key_backup = no), the
 * credential is destroyed, or no trusted backup key exists. Audited as STOR_EV_BACKUP.
 */
int csc_admin_cred_backup(const csc_admin_t *a, const char *id, const char *file, char *err, size_t err_sz);

/**
 * Restore a credential from a backup file: the integrity tag is checked in the HSM before anything else; the key
 * is unwrapped into the token and checked against the public key; the credential is stored if its id is unknown
 * or destroyed (restore is for recovery) and its owner exists and is not terminated. A tampered or truncated file is refused and nothing is written.
 * Audited as STOR_EV_RESTORE, refusals too.
 * @param[out] id_out the restored credential id
 */
int csc_admin_cred_restore(const csc_admin_t *a, const char *file, char *id_out, size_t id_sz, char *err,
                           size_t err_sz);

/* ---- signed audit heads (J11, csc_audit_sign.c) ------------------------------ */

/**
 * Create the audit key (EC P-256, in the HSM, sign only, never extractable, fixed CKA_ID "csc-audit-key-01")
 * if it is missing; audited as an admin action. @param[out] created 1 if made now. @return 0 or -1 (stderr).
 */
int csc_audit_key_init(stor_env_t *stor, hsm_t *hsm, const char *operator_name, int *created);
/** The audit public key from the HSM (HSM_* code; HSM_ERR_NOKEY if there is none). */
int csc_audit_key_pub(hsm_t *hsm, EVP_PKEY **out);
/** Write the audit public key as PEM (SubjectPublicKeyInfo) to a new file. @return 0 or -1 (stderr). */
int csc_audit_key_export(hsm_t *hsm, const char *file);
/** The text a head's signature covers: "csc-audit-head v1 seq=N hash=HEX time_ms=T". @return its length or -1. */
int csc_audit_head_text(const stor_signed_head_t *h, char *out, size_t sz);

enum { CSC_AUDIT_SIGN_OK = 0, CSC_AUDIT_SIGN_NOTHING = 1, CSC_AUDIT_SIGN_ERROR = -1, CSC_AUDIT_SIGN_NOKEY = -2 };

/**
 * Sign the current audit head (seq, hash, time of that record) with the audit key and store it in audit_heads,
 * with an audit record (event audit-head) in the same transaction.
 * @param[in] who the client field of that record ("csc-server", "csc-admin")
 * @param[in] force sign even if the log's last record is the record of the previous signing
 * @param[out] signed_seq the seq signed (0 if none)
 * @return CSC_AUDIT_SIGN_OK; CSC_AUDIT_SIGN_NOTHING (empty log, nothing new, or signed meanwhile);
 *   CSC_AUDIT_SIGN_NOKEY (no audit key in the HSM); CSC_AUDIT_SIGN_ERROR (message on stderr).
 */
int csc_audit_sign_head(stor_env_t *stor, hsm_t *hsm, const char *who, int force, uint64_t *signed_seq);

/** The server's periodic signer: a thread that signs the head every interval seconds and/or every `every` records
 *  (0 = that trigger off; both 0 = no thread), and once more when stopped (clean shutdown). */
typedef struct csc_audit_signer csc_audit_signer_t;
int csc_audit_signer_start(stor_env_t *stor, hsm_t *hsm, unsigned interval, unsigned every,
                           csc_audit_signer_t **out);
/** Stop the thread, then sign the last head. NULL is allowed. */
void csc_audit_signer_stop(csc_audit_signer_t *s);

/**
 * Check every signed head: its signature with pub (NULL: reported as a problem when heads exist), and that the
 * log's record at its seq exists and has exactly the signed hash ("log truncated: signed head at seq N but log
 * ends at M", "signed head at seq N: log rewritten (...)", "signed head at seq N: signature invalid (forged or
 * altered signed head)"). Prints one line per problem and a summary line.
 * @return 0 (see *problems) or -1 if the table cannot be read.
 */
int csc_audit_verify_heads(stor_env_t *stor, EVP_PKEY *pub, void *out, unsigned long *problems);

/** Print the signed heads as JSON lines {seq, time_ms, signed_text, signature (base64 DER)}. @return 0 or -1. */
int csc_audit_heads_list(stor_env_t *stor, void *out);
/**
 * Create the built-in time-stamping unit: a key pair generated in the HSM and a certificate from the CA with
 * a critical extendedKeyUsage timeStamping, stored as credential id (owned by the reserved name
 * CSC_TSA_OWNER, so no user sees or authorizes it). Audited (STOR_EV_ADMIN "tsa.init").
 * @return 0, or -1 with a message in err (id exists, HSM or CA failure)
 */
int csc_admin_tsa_init(const csc_admin_t *a, const char *id, const hsm_keyspec_t *key, const char *cn, char *err,
                       size_t err_sz);
#define CSC_TSA_OWNER "-tsa-"

/* ---- housekeeping (csc_purge.c) ------------------------------------------------ */

/** A thread that deletes expired tokens, SADs, authorization codes and operator sessions every interval
 *  seconds (0 = no thread; *out stays NULL). @return 0 or -1. */
typedef struct csc_purger csc_purger_t;
int csc_purger_start(stor_env_t *stor, unsigned interval, csc_purger_t **out);
/** Stop (at once, without waiting for the interval) and free. NULL is allowed. */
void csc_purger_stop(csc_purger_t *p);

/* ---- audit log (csc-admin audit) ----------------------------------------- */

/** Which records csc_audit_query() prints; zero-initialised = all. */
typedef struct csc_audit_filter {
    const char *user;          /**< exact user name, NULL = any */
    const char *cred;          /**< exact credential id, NULL = any */
    uint32_t event;            /**< a stor_event_t, 0 = any */
    int has_since, has_until;  /**< bounds in force */
    int64_t since_ms;          /**< record time >= since_ms (unix milliseconds) */
    int64_t until_ms;          /**< record time <= until_ms */
    int json;                  /**< JSON lines instead of text lines */
} csc_audit_filter_t;

/**
 * Check the whole audit log from its stored bytes: every record's hash recomputed from its fields and prev_hash,
 * each prev_hash against the hash of the record before it, seqs 1, 2, 3... without gaps, and the head in meta
 * against the last record. Prints "audit log OK: N records, head HEX" to out, or one line per problem
 * ("record 17: altered (hash mismatch)", "record 18: chain broken (prev_hash does not match record 17)",
 * "records 20-21 missing", "record 9: unreadable", "head mismatch: meta says seq 40 / hash HEX, log ends at 39 ...")
 * followed by a summary line.
 * @param[in] out a FILE * for the report
 * @param[out] problems number of problems found (0 = intact)
 * @return 0 when the log could be read to its end (see *problems), -1 if it could not (a message is on stderr).
 * @note Read-only; one read transaction.
 */
int csc_audit_verify(stor_env_t *stor, void *out, unsigned long *problems);

/**
 * Print the audit records that match f, one per line: text ("seq time event result user= cred= client=
 * digests= detail=") or JSON lines with digests in base64 and authz_ref/prev_hash/hash in hex. Strings are escaped:
 * nothing printed is raw control characters. Records hold no secrets, so none are printed.
 * @param[out] matched number of records printed (may be NULL)
 * @return 0, or -1 if the log cannot be read (a record cannot be decoded: run verify; message on stderr).
 */
int csc_audit_query(stor_env_t *stor, const csc_audit_filter_t *f, void *out, uint64_t *matched);

/**
 * Parse a time for --since/--until: ISO-8601 UTC "2026-11-25T10:00:00Z" or unix seconds ("1795600000").
 * @param[out] ms unix milliseconds (0 on error)
 * @return 0 or -1 (not one of those forms, or out of range).
 */
int csc_audit_parse_time(const char *s, int64_t *ms);

/**
 * Event name (login, revoke, authorize, sign, sign-result, admin, lockout, operator) to its stor_event_t.
 * @return 0 or -1 (unknown name; *event = 0).
 */
int csc_audit_parse_event(const char *s, uint32_t *event);

/** Name of a stor_event_t ("login", ...; "unknown" for any other value). Static string. */
const char *csc_audit_event_name(uint32_t event);


#ifdef __cplusplus
}
#endif
#endif
