/*
 * sam_server.h - csc-sam's side of the SAM protocol: the listening socket, its connections, and the op handlers.
 * Linked by csc-sam only (library csc_sam_server; the front end links csc_sam: the wire and sam_client.h).
 *
 * THE SOCKET
 *   sam_server_open() takes an exclusive lock on PATH.lock (flock, held for the server's life: a second SAM on the
 *   same path waits for the first to go, up to lock_wait_ms, then fails), removes a stale socket file at PATH (only
 *   a socket: any other file there is refused), binds a SOCK_SEQPACKET socket with the mode asked (created under a
 *   umask, so it never has more) and the group, and listens. sam_server_free() closes it and removes the file
 *   before it lets the lock go.
 *
 * CONNECTIONS
 *   One thread per connection, at most max_connections at once. Each accepted peer is checked with SO_PEERCRED:
 *   a uid other than allowed_uid (unless it is (uid_t)-1) is logged on stderr, audited (event STOR_EV_SAM, DENIED) and answered REFUSED
 *   UNAUTHORIZED with request id 0, then closed; a connection over the limit is answered REFUSED FULL with request
 *   id 0 and closed. A connection thread waits for a request without limit (the front end keeps its connections
 *   open), then reads the whole message within io_timeout_ms; a request that does not decode, or is not a request
 *   op, is answered REFUSED BAD_MESSAGE (when its header could be read) and the connection is closed, as after a
 *   framing error. The SAM answers every request: HELLO with its health, every op it does not serve yet with
 *   REFUSED NOT_OFFERED.
 *
 * THREAD-SAFETY: sam_server_start() once; sam_server_free() from one thread, once, after it.
 */
#ifndef SAM_SERVER_H
#define SAM_SERVER_H

#include <sys/types.h>

#include "adm.h"
#include "hsm.h"
#include "oauth.h"
#include "pki.h"
#include "sam_sender.h"
#include "sam_wire.h"
#include "stor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sam_server sam_server_t;

/** The operators' socket (sam_admin_socket; docs/architecture.md "The operators' socket"): what csc-sam needs to
 *  run csc-admin's key operations with admin/. The strings and the CA must outlive the server. */
typedef struct sam_operators {
    adm_t adm;                   /**< stor, hsm, the SAM's own CA (never an operator's path) and the policy of
                                      admin/; operator_name is set per request (the session's operator) */
    adm_op_policy_t pol;         /**< operator sessions and two-person requests (admin_session_*, ...) */
    const char *two_person;      /**< the commands that need a second operator (config two_person) */
} sam_operators_t;

/* ---- the clock check (issue 15; sam_clock.c): at csc-sam's start and before each time-stamp token ---- */

/** What a clock source says about the system clock. */
typedef struct sam_clock_reading {
    int synced;          /**< 1: the source says the clock is synchronised */
    int64_t offset_us;   /**< the clock's offset from the source's time, as the source reports it */
    int64_t maxerror_us; /**< the source's bound on the clock's error */
} sam_clock_reading_t;

/** A clock source: fill *out, 0; or -1 when it cannot tell (errno). */
typedef int (*sam_clock_source_fn)(void *arg, sam_clock_reading_t *out);

/** clock_check and clock_max_error_ms of the configuration; NULL in sam_server_config_t: clock_check = none. */
typedef struct sam_clock {
    sam_clock_source_fn source; /**< sam_clock_adjtimex (clock_check = adjtimex), or a test's fake source */
    void *arg;                  /**< source's argument */
    unsigned max_error_ms;      /**< refused when the source's maxerror is larger (clock_max_error_ms) */
} sam_clock_t;

/**
 * The kernel's view, adjtimex(2) read only (modes 0: nothing is set; csc-sam has no CAP_SYS_TIME anyway): synced
 * unless the state is TIME_ERROR or STA_UNSYNC is set (no NTP daemon disciplines the clock, or it lost its
 * servers); offset_us the offset being corrected (STA_NANO: converted), maxerror_us the kernel's maxerror. arg unused.
 */
int sam_clock_adjtimex(void *arg, sam_clock_reading_t *out);

/**
 * Ask c's source and judge: synchronised and maxerror at most max_error_ms.
 * @param[out] r the reading (zero when the source failed).
 * @param[out] why (n bytes) "clock synchronised, offset 0.120 ms, maxerror 12.5 ms (at most 1000 ms)" or what
 *             is wrong: "not synchronised", "maxerror ... over ...", "cannot be read: ...".
 * @return 0 (time-stamping may go on), -1 (refuse: why says why).
 */
int sam_clock_check(const sam_clock_t *c, sam_clock_reading_t *r, char *why, size_t n);

typedef struct sam_server_config {
    const char *path;            /**< the socket's path (shorter than 108 bytes) */
    unsigned mode;               /**< 0600, or 0660 with gid */
    gid_t gid;                   /**< the socket's group; (gid_t)-1: the process's */
    uid_t allowed_uid;           /**< the one uid a peer may have */
    unsigned max_connections;    /**< connections served at once (>= 1) */
    unsigned io_timeout_ms;      /**< reading the rest of a request, sending a reply (>= 1) */
    unsigned lock_wait_ms;       /**< how long to wait for another SAM on the same path to go */
    const char *identity;        /**< HELLO's identity text (1..SAM_IDENTITY_MAX bytes) */
    stor_env_t *stor;            /**< the database: audit records, HELLO's storage check (not NULL) */
    hsm_t *hsm;                  /**< the token: HELLO's login check (NULL: reported unavailable) */
    oauth_t *oauth;              /**< tokens, factors, SADs (NULL: only HELLO is served) */
    const char *tsa_credential;  /**< STAMP: the TSA's credential id (NULL or "": STAMP is refused NOT_OFFERED) */
    const char *tsa_policy;      /**< STAMP: TSTInfo.policy, a dotted OID */
    unsigned tsa_accuracy_ms;    /**< STAMP: TSTInfo.accuracy (0: omitted) */
    const sam_clock_t *clock;    /**< STAMP: checked before each token, refused SAM_REFUSE_CLOCK when it fails
                                      (NULL: clock_check = none); must outlive the server */
    int production;              /**< environment = production: the signing policy below applies (J13) */
    int allow_scal1;             /**< production: SCAL 1 credentials may still authorize and sign */
    int allow_single_factor;     /**< production: single-factor credentials may still authorize and sign */
    pki_crl_t *crl;              /**< the SAM's own CRL store of crl_dir, checked before each signature (NULL: none) */
    const char *otp_sender;      /**< CHALLENGE's delivery: "exec:/path" or "file:/path" (NULL, "": not offered) */
    unsigned otp_sender_timeout; /**< seconds an exec: sender may run (1..120) */
    sam_sender_t *sender;        /**< the exec: sender's helper (sam_sender.h; NULL: an exec: sender cannot start) */
    const sam_operators_t *operators; /**< non-NULL: this is the operators' socket: only the operator ops are served
                                           (each checks the operator's session itself), allowed_uid (uid_t)-1 lets in
                                           any peer the socket's mode admits; NULL: the front end's socket */
    const uint8_t *ticket_key;   /**< the front end's socket only (refused with operators): SAM_TICKET_KEY_LEN bytes
                                      HELLO's reply carries as SAM_T_TICKET_KEY on every connection, the sign-in pages'
                                      shared key (sam_factor_start derives it, after sam_server_open and before
                                      sam_server_start: the bytes are read per HELLO and must outlive the server);
                                      NULL: HELLO carries none */
    void (*heap_usage)(uint64_t *in_use, uint64_t *held); /**< the process's malloc figures HELLO's reply carries
                                      (SAM_T_HEAP_IN_USE, SAM_T_HEAP_HELD); NULL: none */
    /* enrollment (sam_op_enroll.c, sam_op_account.c); 0: the default */
    unsigned enroll_code_ttl;    /**< seconds an enrollment code lives (86400; 300..1209600) */
    unsigned enroll_code_tries;  /**< wrong codes (and wrong first TOTP codes) before the code is burnt (5; 1..20) */
    unsigned password_min_length; /**< shortest password a user may choose (12; 8..128) */
    unsigned password_classes;   /**< of lower case, upper case, digits, others: how many a password needs (2; 1..4) */
    unsigned pin_min_length;     /**< shortest credential PIN (digits; 6) */
    unsigned restore_request_ttl; /**< seconds a restore request of /account lives (30 days; 3600..7776000) */
    unsigned scrypt_log2n;       /**< cost of new password and PIN verifiers (0: oauth/'s default) */
    pki_x509_cache_t *certs;     /**< credentials' certificates parsed once (pki.h), shared by the connections; NULL:
                                      sam_server_open makes one of its own (freed by sam_server_free) */
} sam_server_config_t;

/**
 * Lock, bind and listen (see THE SOCKET). Accepts nothing yet. The config's strings must outlive the server.
 * @param[out] err a one-line reason on failure (naming the path)
 * @return 0 or -1
 */
int sam_server_open(const sam_server_config_t *cfg, sam_server_t **out, char *err, size_t errsz);
/** Start the accepting thread. @return 0 or -1 (errno) */
int sam_server_start(sam_server_t *s);
/** Stop accepting, end every connection (its request in progress finishes first), join the threads, give back the
 *  signatures reserved by SIGN with ASYNC and not made (audited), close and remove the socket, release the lock,
 *  free. NULL is fine. */
void sam_server_free(sam_server_t *s);
/** Connections being served now. */
unsigned sam_server_connections(sam_server_t *s);

/* ---- the CRL sweep (J7; sam_crl_sweep.c): csc-sam's crl-watch task, at start and after each change of crl_dir -- */
/** Every credential whose certificate crl lists as revoked (not on hold) is marked destroyed (reason revoked),
 *  audited as operator csc-sam, and its key's destruction filed in the same write: a job the key-jobs task below
 *  runs, or with hold (two_person names revoke or destroy) a request a second operator approves (csc-admin approve).
 *  It destroys no key itself. Each credential it ends is logged. @return how many credentials this run marked, or
 *  -1 when the credentials could not be read or one could not be written (said on stderr: run it again). */
int sam_crl_sweep(stor_env_t *stor, pki_crl_t *crl, int hold);

/* ---- the key destructions the CRL sweep files (J7; sam_keyjobs.c): csc-sam's key-jobs task -------------------- */
typedef struct sam_key_jobs sam_key_jobs_t;
/** @return 0, -1 (out of memory) */
int sam_key_jobs_new(stor_env_t *stor, hsm_t *hsm, sam_key_jobs_t **out);
/** One run (meant for once a second): destroy the keys of every job (STOR_APPROVAL_JOB "credential revoke ID"),
 *  audited as operator csc-sam, each job dropped once its keys are gone (stor_key_jobs_run). Requests for a second
 *  operator wait. Each key destroyed is logged; failures once until a run succeeds. @return 0, -1 (a job failed) */
int sam_key_jobs_once(sam_key_jobs_t *k);
void sam_key_jobs_free(sam_key_jobs_t *k);

/* ---- TOTP secrets at rest (sam_factor.c): sealed under the token's factor key (hsm_factor_*) ---------------- */

/** Seal a TOTP secret (1..STOR_TOTP_MAX bytes) of user: version byte, nonce, ciphertext, tag; AAD "csc-totp/v1"
 *  NUL user. 0 or -1 (no factor key, token error). */
int sam_totp_seal(hsm_t *hsm, const char *user, const uint8_t *secret, size_t len,
                  uint8_t out[STOR_TOTP_SEALED_MAX], uint32_t *out_len);
/** Open what sam_totp_seal made for the same user. 0; -1 it does not open (another user's, altered, not sealed);
 *  -2 the token could not try (unavailable, no factor key). */
int sam_totp_open(hsm_t *hsm, const char *user, const uint8_t *blob, size_t len, uint8_t out[STOR_TOTP_MAX],
                  size_t *out_len);
/** The same for an operator's TOTP secret (additional data "csc-totp-operator/v1" NUL name: a user's sealed secret
 *  never opens as an operator's, nor the reverse); hsm is the hsm_t (adm_op_factor_t's shape). */
int sam_operator_totp_seal(void *hsm, const char *name, const uint8_t *secret, size_t len,
                           uint8_t out[STOR_TOTP_SEALED_MAX], uint32_t *out_len);
int sam_operator_totp_open(void *hsm, const char *name, const uint8_t *blob, size_t len, uint8_t out[STOR_TOTP_MAX],
                           size_t *out_len);
/** csc-sam's start, through its PIN-holding token: the factor key created if the token has none (audited,
 *  STOR_EV_SAM action=factor_key.created), every clear TOTP secret sealed (sam_totp_seal_all: the upgrade),
 *  oauth's opener of sealed secrets set, oauth's MAC key of the pending one-time codes, and (ticket_key not NULL)
 *  the sign-in pages' ticket key HELLO gives the front end (sam_server_config_t.ticket_key), each derived from the
 *  factor key under a label of its own (hsm_factor_derive): the same on every node of the token and after a restart.
 *  HSM_OK or an HSM_* code (ticket_key zeroed). */
int sam_factor_start(stor_env_t *stor, hsm_t *hsm, oauth_t *oauth, uint8_t *ticket_key);
/** Every user's and operator's clear TOTP secret (records written before sealing) sealed in one write, audited
 *  (STOR_EV_SAM action=totp.seal sealed=N failed=M operators_sealed=K operators_failed=L) if there was any; one that
 *  does not seal stays clear (still opened) and is counted failed. *sealed, *failed: users and operators together.
 *  STOR_OK or a storage code. */
int sam_totp_seal_all(stor_env_t *stor, hsm_t *hsm, unsigned *sealed, unsigned *failed);
/** The opener of oauth_set_totp_open() (arg: the hsm_t). */
int sam_user_totp_open(void *hsm, const stor_user_t *u, uint8_t out[STOR_TOTP_MAX], size_t *len);

/* ---- signed audit heads (J11, sam_audit_head.c): csc-sam's audit-heads task and csc-admin audit sign-head ------ */

/** The audit public key from the HSM (HSM_* code; HSM_ERR_NOKEY if there is none). */
int sam_audit_key_pub(hsm_t *hsm, EVP_PKEY **out);

enum { SAM_AUDIT_SIGN_OK = 0, SAM_AUDIT_SIGN_NOTHING = 1, SAM_AUDIT_SIGN_ERROR = -1, SAM_AUDIT_SIGN_NOKEY = -2 };

/**
 * Sign the current audit head (seq, hash, time of that record) with the audit key and store it in audit_heads,
 * with an audit record (event audit-head) in the same transaction.
 * @param[in] who the client field of that record ("csc-sam", "csc-admin")
 * @param[in] force sign even if the log's last record is the record of the previous signing
 * @param[out] signed_seq the seq signed (0 if none)
 * @return SAM_AUDIT_SIGN_OK; SAM_AUDIT_SIGN_NOTHING (empty log, nothing new, or signed meanwhile);
 *   SAM_AUDIT_SIGN_NOKEY (no audit key in the HSM); SAM_AUDIT_SIGN_ERROR (message on stderr).
 */
int sam_audit_sign_head(stor_env_t *stor, hsm_t *hsm, const char *who, int force, uint64_t *signed_seq);

/**
 * Sign text (ASCII) with the audit key: DER ECDSA P-256 over its SHA-256, as the heads. For texts that cannot be
 * taken for a head's (which begin "csc-audit-head v1"): csc-admin audit report's "csc-audit-report v1 ...".
 * @return SAM_AUDIT_SIGN_OK (*sig_len set, at most HSM_SIG_MAX bytes into sig), SAM_AUDIT_SIGN_NOKEY, or
 *         SAM_AUDIT_SIGN_ERROR.
 */
int sam_audit_sign_text(hsm_t *hsm, const char *text, uint8_t *sig, size_t *sig_len);

/** The periodic signing of audit heads: csc-sam's audit-heads task (server/srv_sam.c), one run at a time. */
typedef struct sam_heads sam_heads_t;
/** Start counting records and time from now. interval: sign after this many seconds (0: not by time); records: or
 *  after this many new audit records (0: not by count); who: the client field of the audit-head records.
 *  @return 0, -1 (out of memory) */
int sam_audit_heads_new(stor_env_t *stor, hsm_t *hsm, unsigned interval, unsigned records, const char *who,
                        sam_heads_t **out);
/** Look at the audit log (meant for once a second): sign its head when interval seconds passed since it last
 *  signed (or since sam_audit_heads_new), or records records were added since the last signed head; not when
 *  nothing was added since. An absent audit key is said once. @return 0, -1 (said on stderr) */
int sam_audit_heads_once(sam_heads_t *h);
/** At clean shutdown, after the task stopped: sign the last head (nothing when both triggers are 0). */
void sam_audit_heads_final(sam_heads_t *h);
void sam_audit_heads_free(sam_heads_t *h);

#ifdef __cplusplus
}
#endif
#endif
