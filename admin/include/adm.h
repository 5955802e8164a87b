/*
 * adm.h - the operator library, used by csc-admin and by csc-sam for the operators' socket (never linked into
 * csc-server): everything csc-admin changes or reports besides the service itself.
 *
 * Error model: every adm_ function that can fail returns ADM_OK (0) or a negative ADM_* code and, where it takes
 * (err, err_sz), writes a one-line reason (no secrets) into err. The codes below say what the caller can act on;
 * ADM_ERR is everything else (storage, HSM, memory). Exceptions, documented at each: adm_backup_init returns -2
 * when it needs the SO PIN. The audit functions (adm_audit_*) hand what they find to a callback; csc-admin prints it.
 *
 * Users (J1, J2), credentials and their keys and certificates (J6, J7), key backup and restore (J8), the
 * built-in time-stamping unit's and the audit log's keys, audit verify/query (J11), and the operators of
 * csc-admin, their roles, sessions and the two-person rule (J14). Nothing here is linked into csc-server, nor key
 * generation, backup or unwrap (tests/unit/server/check_symbols); csc-server destroys a key only in its CRL
 * sweep (csc-api/csc_cert.c).
 */
#ifndef ADM_H
#define ADM_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>
#include "hsm.h"
#include "oauth.h"
#include "stor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the context of every call (csc-admin) ---------------------------------------------- */

typedef struct adm_ca {
    const char *cert_file;     /**< PEM certificate of the issuing CA */
    const char *key_file;      /**< PEM private key of the issuing CA */
    const char *chain_file;    /**< PEM certificates above the CA (optional) */
    unsigned days;             /**< validity of issued certificates */
    const char *refused;       /**< non-NULL: this CA issues nothing, for this reason (production: a CA key in a
                                    file is refused unless allow_builtin_ca) */
} adm_ca_t;

/** csc-sam's sealing of operators' TOTP secrets under the token's factor key (sam/sam_factor.c), handed to admin/ by
 *  csc-sam alone (adm_t.op_factor): operators are made and log in there (docs/architecture.md "The operators'
 *  socket"). seal: 0 or -1; open: 0, -1 (does not open: another's, altered), -2 (the token could not try). */
typedef struct adm_op_factor {
    int (*seal)(void *arg, const char *name, const uint8_t *secret, size_t len, uint8_t out[STOR_TOTP_SEALED_MAX],
                uint32_t *out_len);
    int (*open)(void *arg, const char *name, const uint8_t *blob, size_t len, uint8_t out[STOR_TOTP_MAX],
                size_t *out_len);
    void *arg;
} adm_op_factor_t;

typedef struct adm {
    stor_env_t *stor;
    hsm_t *hsm;                /**< may be NULL for operations that need no keys */
    const adm_ca_t *ca;
    const char *operator_name; /**< recorded in the audit log */
    unsigned scrypt_log2n;     /**< cost of new verifiers (0 = default) */
    const char *issuer;        /**< TOTP issuer shown by authenticator apps */
    int key_backup;            /**< config key_backup = wrapped: new keys can be backed up wrapped (J8) */
    const char *trust_anchors; /**< PEM CA certificates an imported certificate's chain must lead to */
    unsigned pin_min_length;   /**< shortest credential PIN set (config pin_min_length; 0 = 6) */
    int production;            /**< environment = production: new credentials must be SCAL 2 with two factors ... */
    int allow_scal1, allow_single_factor; /**< ... unless these say otherwise */
    const struct adm_origin *origin; /**< where the operator's command comes from (NULL: not known): its host
                                          identity binds the sessions made (adm_op_login) and checked */
    int allow_combined_roles;  /**< production: one operator may hold user-admin and key-admin (config
                                    allow_combined_roles); else bootstrap, operator add and roles refuse it */
    const adm_op_factor_t *op_factor; /**< csc-sam's: new operators' TOTP secrets sealed, sealed ones opened at
                                           login; NULL (admin/'s unit tests): kept clear, a sealed one never opens */
} adm_t;

/* ---- where an operator's command comes from (adm_origin.c; J12, J14) ---- */

#define ADM_ORIGIN_WORD_MAX 64 /**< bytes of the OS user, host or terminal name */
/** The OS user, host and terminal of a csc-admin command, and its host's identity. */
typedef struct adm_origin {
    char os_user[ADM_ORIGIN_WORD_MAX + 1]; /**< the OS user's name */
    uint32_t uid;                          /**< its uid (csc-admin's getuid(); in a claim: the claim's) */
    char host[ADM_ORIGIN_WORD_MAX + 1];    /**< the host name */
    char tty[ADM_ORIGIN_WORD_MAX + 1];     /**< the terminal of standard input, "-" without one */
    uint8_t host_id[32];                   /**< adm_origin_host_id(host name, /etc/machine-id) */
    int peer_known;                        /**< csc-sam: peer_uid is the connection's SO_PEERCRED uid */
    uint32_t peer_uid;
} adm_origin_t;

/** SHA-256 over a fixed label, the host name and the machine id (an unreadable /etc/machine-id is ""). */
void adm_origin_host_id(const char *host, const char *machine_id, uint8_t out[32]);
/** csc-admin's own: getuid() and its name, gethostname(), ttyname(0) or "-", /etc/machine-id. @return 0 */
int adm_origin_local(adm_origin_t *o);
/** The claim csc-admin sends csc-sam ("os_user=U uid=N host=H tty=T host_id=HEX"). @return 0, -1 (too small) */
int adm_origin_claim(const adm_origin_t *o, char *out, size_t sz);
/** Read a claim back, strictly (those five words in that order, nothing else). @return 0, or -1 (o zeroed) */
int adm_origin_parse(const char *claim, adm_origin_t *o);
/** The text of audit records and approval requests: "os_user=U uid=N host=H tty=T"; with peer_known the uid is
 *  peer_uid, followed by "claimed_uid=N" when the claim said otherwise. */
void adm_origin_text(const adm_origin_t *o, char *out, size_t sz);

/**
 * Add an active user with a password and a fresh TOTP secret, and a reference to the identity-verification evidence
 * (J1; NULL = none), kept with the user, shown by adm_list() and audited. For the unit tests' fixtures only: csc-admin
 * never calls it (tests/unit/server/check_symbols), since an operator knows no factor of a user (issue 12): users are
 * registered through csc-sam (ENROLL_ISSUE) and make their factors on /enroll.
 * @param[out] otpauth_uri the otpauth:// URI to enroll the secret (size uri_sz)
 * @param[out] totp_b32 the secret in base32 (size b32_sz)
 * @return 0, or -1 with a message in err (size err_sz)
 */
int adm_user_add_ev(const adm_t *a, const char *name, const char *password, const char *evidence,
                          char *otpauth_uri, size_t uri_sz, char *totp_b32, size_t b32_sz, char *err, size_t err_sz);

/** 0 if s can be an evidence reference: 1..STOR_DESC_MAX bytes, no control characters. */
int adm_evidence_check(const char *s);

/**
 * Change a user's evidence reference (J1). Audited with the new reference. (A lost password or TOTP secret is no
 * operator's to set: csc-admin user recover issues a new enrollment code, issue 12.)
 */
int adm_user_change(const adm_t *a, const char *name, const char *evidence, char *err, size_t err_sz);

/**
 * Allow user to sign with credential id on the owner's behalf (J1), or (remove) stop it at once. The operator
 * records the owner's consent as evidence (required to add). A delegate authorizes with their own TOTP and, if the
 * credential's expression needs a PIN, their own PIN (never the owner's), which the delegate sets on /enroll or
 * /account: until then it is unset. Audited with the owner.
 */
int adm_cred_delegate(const adm_t *a, const char *id, const char *user, const char *evidence, int remove, char *err,
                      size_t err_sz);

typedef struct adm_cred_spec {
    const char *id;            /**< credential id; NULL = generated */
    const char *owner;
    hsm_keyspec_t key;
    const char *auth_expr;     /**< "PIN AND OTP", "PIN", "OTP" */
    const char *pin;           /**< when the expression names PIN: NULL leaves it unset for the owner to set
                                    (stor_cred_t.pin_unset; /enroll, /account). csc-sam's KEY_CREATE never takes
                                    one from csc-admin (issue 12): only the unit tests' fixtures give one */
    unsigned scal;             /**< 1 or 2 */
    unsigned multisign;
    const char *description;
    const char *subject_cn;    /**< certificate subject CN; NULL = owner name */
    int oauth2code;            /**< auth.mode oauth2code: authorized only through OAuth 2.0 */
    const char *qualifier;     /**< CSC signatureQualifier, e.g. "eu_eidas_qes"; NULL = none */
    const char *csr_file;      /**< instead of a demo-CA certificate: write a PKCS#10 request (PEM) here and keep the
                                    credential STOR_CRED_PENDING until adm_cred_import() */
    const char *subject_o;     /**< with csr_file: subject O and C (CN = subject_cn or the owner name) */
    const char *subject_c;
    X509_REQ **csr_out;        /**< as csr_file, but the request is handed back here (the caller frees it), not
                                    written (csc-sam: csc-admin writes the file); set one of the two at most */
} adm_cred_spec_t;

/** Generate a key in the HSM, issue its certificate from the CA, store the credential. */
int adm_cred_create(const adm_t *a, const adm_cred_spec_t *spec, char *id_out, size_t id_sz, char *err,
                          size_t err_sz);

/**
 * Renewal through an external CA (J6, J7): a new key pair in the HSM and a PKCS#10 request for it (signed by that key)
 * written to csr_file; subject from cn/o/country, or the current certificate's when all three are NULL. The
 * credential keeps signing with its old key until adm_cred_import() brings the new certificate; the import
 * switches to the new key and destroys the old one. A second request replaces (and destroys) an earlier pending key.
 */
int adm_cred_renew_csr(const adm_t *a, const char *id, const char *cn, const char *o, const char *country,
                             const char *csr_file, char *err, size_t err_sz);
/** adm_cred_renew_csr() with the request handed back in *csr_out (the caller frees it; csc-admin writes the file). */
int adm_cred_renew_csr_mem(const adm_t *a, const char *id, const char *cn, const char *o, const char *country,
                           X509_REQ **csr_out, char *err, size_t err_sz);

/**
 * Import the CA's certificate for a credential's pending key (new credential or renewal) or, with none pending,
 * for its current key. Refused, with the reason in err and a denied STOR_EV_CERT audit record, when the
 * certificate's public key is not the HSM key, it is outside its validity, not fit for signing, or its chain
 * (chain_file, optional PEM, plus any certificates after the first in cert_file) does not lead to a certificate of
 * a->trust_anchors. On success the end entity and the verified chain are stored, a pending credential is enabled,
 * a renewed credential's old key destroyed; audited.
 */
int adm_cred_import(const adm_t *a, const char *id, const char *cert_file, const char *chain_file,
                          char *err, size_t err_sz);
/** adm_cred_import() of certificates csc-admin read (csc-sam): ee_given, and chain_given (may be NULL) the other
 *  certificates; cert_file and chain_file are then ignored. With ee_given NULL: the files, as adm_cred_import(). */
int adm_cred_import_certs(const adm_t *a, const char *id, const char *cert_file, X509 *ee_given,
                          const char *chain_file, STACK_OF(X509) *chain_given, char *err, size_t err_sz);

/** Enable (enable = 1) or disable a credential. */
int adm_cred_set_enabled(const adm_t *a, const char *id, int enable, char *err, size_t err_sz);

/**
 * Destroy a credential's key in the HSM (J7: certificate revoked, or key no longer wanted) and mark the
 * credential destroyed: it can never sign or be enabled again. The record and its audit trail stay. The mark
 * is written first, so no signing can start once the destruction began. reason goes to the audit record;
 * ADM_DESTROY_REVOKED and ADM_DESTROY_TERMINATED also make the destruction final (no restore from a backup, J8),
 * any other reason is an operator's destroy.
 */
#define ADM_DESTROY_REVOKED "certificate revoked"
#define ADM_DESTROY_TERMINATED "user terminated"
int adm_cred_destroy(const adm_t *a, const char *id, const char *reason, char *err, size_t err_sz);

/**
 * Renew a credential: a new key pair in the HSM, a new certificate from the CA for it, the record switched to
 * them, then the old key destroyed (J7). Audited.
 */
int adm_cred_renew(const adm_t *a, const char *id, char *err, size_t err_sz);

/**
 * Run the key destructions csc-server's CRL sweep filed as jobs (STOR_APPROVAL_JOB, "credential revoke ID"; J7): for
 * each, the credential's keys are destroyed as by adm_cred_destroy with ADM_DESTROY_REVOKED (audited with
 * "operator=<a->operator_name>,requester=<the job's>"), then the job is dropped (audited, action=job.done; roles are
 * the operator's, checked against the job's role). A job whose key the HSM could not destroy stays for the next run.
 * With hold (two_person names credential revoke or destroy) no job runs. Requests for a second operator are named
 * with their id (csc-admin approve), not run. One line per key on out_file. Idempotent; nothing to do is ADM_OK.
 * @return ADM_OK, or ADM_ERR (with how many failed in err) when a job could not be done.
 */
int adm_cred_destroy_pending(const adm_t *a, uint32_t roles, int hold, void *out_file, char *err, size_t err_sz);

/**
 * Suspend (status STOR_USER_SUSPENDED), resume (STOR_USER_ACTIVE) or terminate (STOR_USER_TERMINATED: final;
 * every key of the user is destroyed as by adm_cred_destroy) a user. A user who is not active can neither
 * log in nor use a token issued before. Audited.
 */
int adm_user_set_status(const adm_t *a, const char *name, uint32_t status, char *err, size_t err_sz);
/** adm_user_set_status() of STOR_USER_SUSPENDED or STOR_USER_ACTIVE only (no key touched: csc-admin, which holds no
 *  token; termination is csc-sam's). */
int adm_user_suspend_resume(const adm_t *a, const char *name, uint32_t status, char *err, size_t err_sz);

/** Print the registered OAuth clients to out, one line each. */
int adm_clients_list(const adm_t *a, void *out_file);

/** Print users and their credentials to out, one line each. */
int adm_list(const adm_t *a, void *out_file);

/* ---- key backup and restore (J8, adm_backup.c) ------------------------------ */

/**
 * Create the HSM backup keys if missing (trusted AES-256 wrapping key, made with the SO PIN, and the HMAC
 * integrity key). Audited (STOR_EV_BACKUP) when something was created or the SO PIN was refused.
 * @param[in] so_pin the token's SO PIN (needed only while the wrapping key is missing; may be NULL)
 * @param[out] created bit 1 wrapping key, bit 2 integrity key created now (0: both existed)
 * @return 0; -2 if the wrapping key is missing and so_pin is NULL; -1 otherwise (message in err)
 */
int adm_backup_init(const adm_t *a, const char *so_pin, int *created, char *err, size_t err_sz);

/**
 * Back up a credential into a new file (mode 0600, never overwriting): its record fields, public key, and
 * private key wrapped in the HSM under the backup key, with an HSM integrity tag over everything. Refused
 * (with the reason in err, audited) when the key was generated non-extractable (key_backup = no), the
 * credential is destroyed, or no trusted backup key exists. Audited as STOR_EV_BACKUP.
 */
int adm_cred_backup(const adm_t *a, const char *id, const char *file, char *err, size_t err_sz);
/** Write data to path, a new file (mode 0600, written whole and synced, never overwriting: "PATH exists already; a
 *  backup never overwrites a file"). 0, or -1 (err). */
int adm_backup_write_file(const char *path, const uint8_t *data, size_t len, char *err, size_t err_sz);
/** Read a backup file (at most its largest size) into *out (malloc'd; the caller wipes and frees). 0, or -1 (err). */
int adm_backup_read_file(const char *path, uint8_t **out, size_t *len, char *err, size_t err_sz);
/** adm_cred_backup() into memory (csc-sam: csc-admin writes the file): *out (OPENSSL_malloc'd, the caller wipes and
 *  frees it), audited with file as the file's name (the backup is audited before it is written). */
int adm_cred_backup_mem(const adm_t *a, const char *id, const char *file, uint8_t **out, size_t *out_len, char *err,
                        size_t err_sz);

/**
 * Restore a credential from a backup file: the integrity tag is checked in the HSM before anything else; the key
 * is unwrapped into the token and checked against the public key; the credential is stored if its id is unknown
 * or destroyed (restore is for recovery) and its owner exists and is not terminated. A tampered or truncated file is refused and nothing is written.
 * Audited as STOR_EV_RESTORE, refusals too.
 * @param[out] id_out the restored credential id
 */
int adm_cred_restore(const adm_t *a, const char *file, const char *ref, char *id_out, size_t id_sz, char *err,
                     size_t err_sz);
/** adm_cred_restore() of a backup's bytes (csc-sam: csc-admin reads the file); file names it in messages and the
 *  audit record only. ref: the reference of the owner's restore request (made on /account, stor_restore_req_t):
 *  refused without one, or with one unknown, expired, used, or for another credential; the restore's write marks it
 *  used (J8: a restore happens only on its user's request). */
int adm_cred_restore_mem(const adm_t *a, const uint8_t *data, size_t len, const char *file, const char *ref,
                         char *id_out, size_t id_sz, char *err, size_t err_sz);


/**
 * Create the built-in time-stamping unit: a key pair generated in the HSM and a certificate from the CA with
 * a critical extendedKeyUsage timeStamping, stored as credential id (owned by the reserved name
 * STOR_TSA_OWNER, so no user sees or authorizes it). Audited (STOR_EV_ADMIN "tsa.init").
 * @return 0, or -1 with a message in err (id exists, HSM or CA failure)
 */
int adm_tsa_init(const adm_t *a, const char *id, const hsm_keyspec_t *key, const char *cn, char *err,
                       size_t err_sz);

/* ---- the audit log and its signed heads (csc-admin audit; J11; adm_audit.c, adm_audit_heads.c) ----
 * These return ADM_OK or ADM_ERR (reason in err) like the rest; what they find goes to the caller's callback
 * and result struct, and csc-admin prints it (server/srv_audit.c). */

/**
 * Create the audit key (EC P-256, in the HSM, sign only, never extractable, fixed CKA_ID "csc-audit-key-01")
 * if it is missing; audited as an admin action. @param[out] created 1 if made now. @return ADM_OK or ADM_ERR.
 */
int adm_audit_key_init(stor_env_t *stor, hsm_t *hsm, const char *operator_name, int *created, char *err,
                       size_t err_sz);
/** Write the audit public key as PEM (SubjectPublicKeyInfo) to a new file. @return ADM_OK or ADM_ERR. */
int adm_audit_key_export(hsm_t *hsm, const char *file, char *err, size_t err_sz);

/** The longest problem line the verifications hand over (NUL included; longer ones are cut). */
#define ADM_AUDIT_LINE_MAX 512
/** One problem a verification found, as one line of text (no newline). */
typedef void (*adm_audit_problem_fn)(const char *line, void *arg);

/** What a verification found besides its problem lines. */
typedef struct adm_audit_verdict {
    unsigned long problems;   /**< problem lines handed over (0 = intact) */
    uint64_t count;           /**< adm_audit_verify: records read; adm_audit_verify_heads: signed heads read */
    uint64_t last_seq;        /**< the head's seq in meta / the seq of the last readable signed head */
    uint8_t head_hash[32];    /**< adm_audit_verify: the head's hash in meta */
    /** adm_audit_verify: records dated more than ADM_AUDIT_TIME_BACK_MS before the record before them (not a
     *  problem: the chain is by seq and hash; a clock stepped back, or nodes whose clocks disagree), the first of
     *  them and the largest step back in ms */
    uint64_t time_back, time_back_seq;
    int64_t time_back_ms;
} adm_audit_verdict_t;
/** How far a record may be dated before the one before it unremarked: nodes' clocks differ a little. */
#define ADM_AUDIT_TIME_BACK_MS 1000

/**
 * Check every signed head: its signature with pub (NULL: reported as a problem when heads exist), and that the
 * log's record at its seq exists and has exactly the signed hash ("log truncated: signed head at seq N but log
 * ends at M", "signed head at seq N: log rewritten (...)", "signed head at seq N: signature invalid (forged or
 * altered signed head)"): one call of fn per problem.
 * @return ADM_OK (see out) or ADM_ERR if the table cannot be read.
 */
int adm_audit_verify_heads(stor_env_t *stor, EVP_PKEY *pub, adm_audit_problem_fn fn, void *arg,
                           adm_audit_verdict_t *out, char *err, size_t err_sz);

/** Call fn for each signed head (with STOR_ERR_CORRUPT for an unreadable one), in seq order; one read transaction.
 *  A non-zero return of fn stops the walk (ADM_ERR). @return ADM_OK or ADM_ERR. */
int adm_audit_heads_each(stor_env_t *stor, stor_signed_head_each_fn fn, void *arg, char *err, size_t err_sz);

/** Which records adm_audit_query() hands over; zero-initialised = all. */
typedef struct adm_audit_filter {
    const char *user;          /**< exact user name (or the owner a delegate acted for), NULL = any */
    const char *cred;          /**< exact credential id, NULL = any */
    uint32_t event;            /**< a stor_event_t, 0 = any */
    int has_since, has_until;  /**< bounds in force */
    int64_t since_ms;          /**< record time >= since_ms (unix milliseconds) */
    int64_t until_ms;          /**< record time <= until_ms */
} adm_audit_filter_t;

/**
 * Check the whole audit log from its stored bytes: every record's hash recomputed from its fields and prev_hash,
 * each prev_hash against the hash of the record before it, seqs 1, 2, 3... without gaps, and the head in meta
 * against the last record. One call of fn per problem ("record 17: altered (hash mismatch)", "record 18: chain
 * broken (prev_hash does not match record 17)", "records 20-21 missing", "record 9: unreadable", "head mismatch:
 * meta says seq 40 / hash HEX, log ends at 39 ...").
 * @param[out] out problems, records read, and the head in meta
 * @return ADM_OK when the log could be read to its end (see out), ADM_ERR if it could not.
 * @note Read-only; one read transaction.
 */
int adm_audit_verify(stor_env_t *stor, adm_audit_problem_fn fn, void *arg, adm_audit_verdict_t *out, char *err,
                     size_t err_sz);

/** One record adm_audit_query() found; a non-zero return stops the query (ADM_ERR). Records hold no secrets. */
typedef int (*adm_audit_record_fn)(const stor_audit_t *rec, void *arg);
/**
 * Call fn for each audit record that matches f, in seq order.
 * @param[out] matched number of records handed over (may be NULL)
 * @return ADM_OK, or ADM_ERR if the log cannot be read (a record cannot be decoded: run verify).
 */
int adm_audit_query(stor_env_t *stor, const adm_audit_filter_t *f, adm_audit_record_fn fn, void *arg,
                    uint64_t *matched, char *err, size_t err_sz);

/**
 * Parse a time for --since/--until: ISO-8601 UTC "2026-11-25T10:00:00Z" or unix seconds ("1795600000").
 * @param[out] ms unix milliseconds (0 on error)
 * @return 0 or -1 (not one of those forms, or out of range).
 */
int adm_audit_parse_time(const char *s, int64_t *ms);

/**
 * Event name (login, revoke, authorize, sign, sign-result, admin, lockout, operator) to its stor_event_t.
 * @return 0 or -1 (unknown name; *event = 0).
 */
int adm_audit_parse_event(const char *s, uint32_t *event);

/** Name of a stor_event_t ("login", ...; "unknown" for any other value). Static string. */
const char *adm_audit_event_name(uint32_t event);

/* ---- csc-admin operators, their sessions and two-person approvals (J14, adm_operator.c) ---- */

/** Login and session rules for operators (from the configuration). */
typedef struct adm_op_policy {
    unsigned session_idle;     /**< seconds without a command before a session ends */
    unsigned session_max;      /**< seconds after login when a session ends regardless */
    unsigned max_failures;     /**< failed logins in a row before the operator is locked */
    unsigned lock_seconds;
    unsigned totp_window;      /**< accepted TOTP steps either side of now */
    unsigned approval_ttl;     /**< seconds a two-person request waits for its approval */
} adm_op_policy_t;

#define ADM_OP_TOKEN_LEN 64    /**< hex characters of a session token */

enum {
    ADM_OK = 0,
    ADM_ERR = -1,              /**< storage or internal failure (message in err) */
    ADM_DENIED = -2,           /**< wrong name, password or OTP (one answer), a reused OTP, or a disabled operator */
    ADM_LOCKED = -3,           /**< too many failed logins */
    ADM_NOSESSION = -4,        /**< no session, unknown or logged out, or its operator is gone or disabled */
    ADM_EXPIRED = -5,          /**< idle or absolute expiry passed */
    ADM_FORBIDDEN = -6,        /**< the operator lacks the role, or the rule forbids the action (self-approval, ...) */
    ADM_EXISTS = -7,   
    ADM_NOTFOUND = -8,   
};

/** "user-admin,key-admin,auditor" (any subset, or "all") to a stor_role_t bit set. @return 0 or -1. */
int adm_op_roles_parse(const char *s, uint32_t *roles);
/** Bit set to "user-admin,key-admin" ("-" for none). */
void adm_op_roles_format(uint32_t roles, char *out, size_t out_sz);

/**
 * First operator, with every role, only while no operator exists (else ADM_EXISTS). New TOTP secret returned
 * as base32 and otpauth URI (the caller wipes them), stored sealed through a->op_factor. Audited (STOR_EV_OPERATOR).
 * csc-sam's (OPERATOR_NEW, sam/sam_op_operator.c): csc-admin never calls it (tests/unit/server/check_symbols).
 */
int adm_op_bootstrap(const adm_t *a, const char *name, const char *password, char *uri, size_t uri_sz,
                     char *b32, size_t b32_sz, char *err, size_t err_sz);
/** Add an operator with roles (a->operator_name is the acting operator). Same outputs as bootstrap. */
int adm_op_add(const adm_t *a, const char *name, uint32_t roles, const char *password, char *uri,
               size_t uri_sz, char *b32, size_t b32_sz, char *err, size_t err_sz);
/**
 * adm_op_bootstrap (roles 0: the first operator, with adm_op_bootstrap_roles) or adm_op_add (roles), the new TOTP
 * secret answered raw (secret, *secret_len; the caller wipes it). csc-sam's OPERATOR_NEW.
 */
int adm_op_new(const adm_t *a, const char *name, uint32_t roles, const char *password,
               uint8_t secret[STOR_TOTP_MAX], size_t *secret_len, char *err, size_t err_sz);
/** An operator's enrollment code as csc-sam made it (only its hash kept). */
typedef struct adm_op_enroll {
    uint8_t code_hash[32];
    int64_t expires_at;
    uint32_t tries;
    const char *channel;       /**< "sender" or "letter", for the audit record */
} adm_op_enroll_t;
/** operator add with no factor: the operator waits in state enrolling with the code of en (csc-sam's OPERATOR_NEW);
 *  the new operator sets the password and TOTP secret (operator enroll). Checks and audit as adm_op_add. */
int adm_op_add_enrolling(const adm_t *a, const char *name, uint32_t roles, const adm_op_enroll_t *en, char *err,
                         size_t err_sz);
/** The roles the first operator gets: every role, or user-admin alone in production without allow_combined_roles. */
uint32_t adm_op_bootstrap_roles(const adm_t *a);
/** Remove an operator and (lazily) every session of it; not oneself (ADM_FORBIDDEN). */
int adm_op_remove(const adm_t *a, const char *name, char *err, size_t err_sz);
/** Replace an operator's roles; never one's own (ADM_FORBIDDEN). */
int adm_op_set_roles(const adm_t *a, const char *name, uint32_t roles, char *err, size_t err_sz);
/** Print the operators, one line each (no secrets). */
int adm_op_list(const adm_t *a, void *out_file);
/**
 * Log an operator in with password and current TOTP code; on success a new session token (hex, NUL-terminated)
 * of which only the hash is stored, bound to a->origin's host. A sealed TOTP secret is opened through a->op_factor.
 * Failures count towards the lockout; everything is audited. csc-sam's (OPERATOR_LOGIN, sam/sam_op_operator.c):
 * csc-admin never calls it and never reads an operator's verifier or TOTP secret (tests/unit/server/check_symbols).
 * @return ADM_OK, ADM_DENIED, ADM_LOCKED, ADM_ERR (also: the token could not open the secret; nothing counted)
 */
int adm_op_login(const adm_t *a, const adm_op_policy_t *p, const char *name, const char *password,
                 const char *otp, char token[ADM_OP_TOKEN_LEN + 1], char *err, size_t err_sz);
/** End a session at once. @return ADM_OK, ADM_NOSESSION, ADM_ERR. Audited. */
int adm_op_logout(const adm_t *a, const char *token, char *err, size_t err_sz);
/**
 * Check a session for a command needing one of the roles in role (0 = any operator) and refresh its idle timer. name gets the
 * operator's name, roles its roles. A refusal is audited with command (free text, e.g. "user add").
 * @return ADM_OK, ADM_NOSESSION, ADM_EXPIRED, ADM_FORBIDDEN, ADM_ERR
 */
int adm_op_session_check(const adm_t *a, const adm_op_policy_t *p, const char *token, uint32_t role,
                         const char *command, char name[STOR_NAME_MAX + 1], uint32_t *roles, char *err,
                         size_t err_sz);
/**
 * Whether two_person (the configuration's list: words separated by commas or blanks) names the command w1 w2
 * (w2 NULL for a one-word command): by its last word ("destroy") or its words joined by a dot
 * ("credential.destroy"); "operator" names operator add, remove and roles. @return 1 or 0
 */
int adm_op_two_person(const char *two_person, const char *w1, const char *w2);
/** Record a command held for a second operator (requester a->operator_name). id gets the request id. Audited. */
int adm_op_approval_request(const adm_t *a, const adm_op_policy_t *p, uint32_t role, int argc,
                            char *const *argv, char id[STOR_NAME_MAX + 1], char *err, size_t err_sz);
/**
 * Approve request id as operator a->operator_name with approver_roles: it must be another operator than the
 * requester and hold (one of) the request's role(s), and the request must not have expired. The request is removed and
 * copied to out for the caller to execute. Approval and every refusal are audited with both names.
 * @return ADM_OK, ADM_NOTFOUND, ADM_EXPIRED, ADM_FORBIDDEN, ADM_ERR
 */
int adm_op_approval_take(const adm_t *a, const char *id, uint32_t approver_roles, stor_approval_t *out,
                         char *err, size_t err_sz);
/** Reject (remove) request id; needs the request's role. A job (STOR_APPROVAL_JOB) is no request: refused
 *  (ADM_FORBIDDEN), so a revoked key's destruction cannot be dropped. Audited. */
int adm_op_approval_reject(const adm_t *a, const char *id, uint32_t roles, char *err, size_t err_sz);
/** Job id (STOR_APPROVAL_JOB) done: remove it, audited (action=job.done); needs the job's role. A job already gone
 *  (another run did it) is ADM_OK; a request for approval is ADM_FORBIDDEN. */
int adm_op_job_done(const adm_t *a, const char *id, uint32_t roles, char *err, size_t err_sz);
/** Print pending requests and jobs, one line each ("approval ID ..." / "job ID ..."). */
int adm_op_approvals_list(const adm_t *a, void *out_file);
/**
 * Whether a->operator_name is the only operator (1), so that no second one could approve its request: csc-admin lets
 * it add operators alone then (the start of a service, docs/configuration.md "two_person"). @return 1, 0, -1 (storage)
 */
int adm_op_sole(const adm_t *a);
/** Audit a csc-admin event of an operator (STOR_EV_OPERATOR); result is a stor_result_t. */
int adm_op_audit(const adm_t *a, uint32_t result, const char *user, const char *detail);

#ifdef __cplusplus
}
#endif
#endif
