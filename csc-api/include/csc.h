/*
 * csc.h - the CSC API v2 methods, independent of any HTTP library.
 *
 * The server turns an HTTP request into a csc_call_t, calls csc_handle() (on a
 * worker thread: it may block on storage commits and HSM operations) and sends
 * the csc_reply_t back. Every outcome, including every error, is a complete
 * reply: a status and a JSON body ({"error","error_description"} for errors).
 *
 * The operator functions behind csc-admin are admin/'s (adm.h); csc-server does not link them. The service holds
 * no key and opens no HSM: every signature, time-stamp and signed audit head is csc-sam's (sam_client.h).
 *
 * Thread-safety: csc_handle() may run on many threads at once.
 */
#ifndef CSC_H
#define CSC_H

#include <stddef.h>
#include <stdint.h>
#include "oauth.h"
#include "sam_client.h"
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
    int restore_two_person;    /**< two_person names credential restore (/account tells the user) */
    unsigned restore_request_ttl; /**< seconds a restore request of /account lives (0: 30 days; /account says) */
    int allow_scal1;           /**< production: SCAL 1 credentials may be authorized and sign */
    int allow_single_factor;   /**< production: credentials whose expression one factor satisfies may too */
    const char *otp_sender;    /**< "exec:/path" or "file:/path": delivers getChallenge codes; NULL/"" = none */
    unsigned otp_sender_timeout; /**< seconds an exec sender may run (1..120) */
    /* operationMode "A" (all 0 = defaults: 2 workers, queue 64, validity 1 s <= 600 s <= 3600 s) */
    const char *node_id;       /**< this node: its pending jobs carry it; NULL/"" = "local" (one node) */
    unsigned async_workers;    /**< background job threads (1..64) */
    unsigned async_queue;      /**< jobs accepted and not yet finished before 503 */
    unsigned async_validity_min, async_validity_default, async_validity_max; /**< validity_period bounds, s */
    /* response_uri notifications (0 = defaults: 10 s, 2 threads, queue 256) */
    unsigned notify_timeout;   /**< seconds for one notification, connect to status line */
    unsigned notify_threads;   /**< notification threads (never the job threads) */
    unsigned notify_queue;     /**< notifications waiting before further ones are dropped (logged) */
    const char *notify_allow;  /**< production: internal hosts/addresses/prefixes a response_uri may reach */
    unsigned oauth_revoke_status; /**< status of a successful /oauth2/revoke: 200 (RFC 7009; 0 = 200) or 204 */
    const char *totp_issuer;   /**< the issuer /enroll's otpauth URI names (NULL or "": "CSC remote signing", the
                                    default of totp_issuer in server/srv_config.c) */
    const char *default_lang;  /**< the pages' language when the request names none (cookie, Accept-Language):
                                    "en" or "ja"; NULL or "" = "en" */
    unsigned read_cache_ms;    /**< signHash: milliseconds the token's and the credential's rows, once read, answer
                                    this process's own checks (csc-sam reads them again and decides); 0 = none */
} csc_config_t;

/**
 * Create the service. The modules are borrowed and must outlive it.
 * @return 0 or -1 (bad configuration; a message is written to stderr).
 */
/* Make OpenSSL wipe every block it frees or moves (CRYPTO_set_mem_functions over csc_wipe.c's allocator): libssl's
 * record buffers hold the decrypted requests, passwords and PINs included, and were freed as they were. Only before
 * OpenSSL's first allocation: the first thing a program does. csc-server's, which speaks TLS; not csc-sam's, which
 * does not, and where the PKCS#11 module's own OpenSSL (SoftHSM) would pay a wipe of every block it frees in each
 * signature (bench/run, one run each: RSA-2048, one hash, 1981 us of CPU per signature with it in csc-sam, 1777
 * without; runs here differ by up to 20%). 0, or -1 when it was too late. */
int csc_wipe_openssl(void);

int csc_new(const csc_config_t *cfg, stor_env_t *stor, oauth_t *oauth, sam_client_t *sam, csc_t **out);
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
    const char *request_id;    /**< the request's id ([A-Za-z0-9._-]{1,64}), NUL-terminated: carried to csc-sam
                                    with SIGN and AUTHORIZE for their audit records; NULL = none */
    const char *accept_language; /**< Accept-Language header value, NULL if absent (the pages' language) */
    size_t accept_language_len;
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
    char *set_cookie2;         /**< malloc'd second Set-Cookie value (the pages' language choice), or NULL */
    int page;                  /**< an HTML page: send CSP, no framing, no referrer */
    unsigned retry_after;      /**< seconds for a Retry-After header (429, 503), 0 = none */
    char user[STOR_NAME_MAX + 1]; /**< the user the request's access token belongs to, "" if none (access log) */
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

/* ---- periodic work (csc_periodic.c) -------------------------------------------------------------------------
 * One run each; the server calls them from its own periodic tasks, one thread per kind (csc-server: srv_thread.c),
 * never two runs of one kind at once. Each returns 0, or -1 once it has written why it failed to stderr (the next
 * run comes all the same). The service starts no thread for this work; stop the tasks before csc_free(). */

/** Delete the expired browser sessions of the pages (web_sessions, the front end's own table; csc-server: every
 *  purge_interval). The other expired records (tokens, SADs, codes, operator sessions, ...) are csc-sam's purge. */
int csc_purge_once(csc_t *c);

/** Look at crl_dir (csc-server: once a second): reload the CRLs that changed, for the service's own answers
 *  (credentials/info, refusals). Ending the credentials they revoke (J7) is csc-sam's (sam/sam_crl_sweep.c). Nothing
 *  without crl_dir. */
int csc_crl_refresh(csc_t *c);
/** Reload (csc-server's SIGHUP): the CRL store's trust anchors from anchors_file, every CRL verified again against
 *  them. Nothing to do without crl_dir. @return 0, or -1 (said why on stderr; the anchors before stay in force). */
int csc_crl_anchors(csc_t *c, const char *anchors_file);

/* ---- what the operators' listener shows (csc_stats.c; csc-server's /metrics and /readyz) -------------------------
 * The counters are the service's own outcomes, added to on the request path with relaxed atomics; every label
 * comes from a fixed table (no user name, credential id or request byte), so the number of series never grows. */

#define CSC_STATS_ALGS_MAX 16  /**< signature algorithms counted (csc_alg.c's table has fewer) */

/** Why a SAD was refused (signHash, signDoc, extendTransaction, operationMode "A"). */
enum { CSC_SAD_EXPIRED, CSC_SAD_EXHAUSTED, CSC_SAD_NOT_BOUND, CSC_SAD_INVALID, CSC_SAD_DENIAL_N };
/** Which factor was wrong: a password (auth/login, the pages' sign-in, /account's password change), a credential's
 *  PIN or OTP or the user's TOTP code (credentials/authorize, the consent and approval pages, /account's TOTP change),
 *  an enrollment code or the first TOTP code of /enroll. */
enum { CSC_AUTH_LOGIN, CSC_AUTH_PIN_OTP, CSC_AUTH_ENROLL, CSC_AUTH_FAILURE_N };
/** A signature csc-sam could not make on its HSM: the device out of reach, or it failed otherwise. */
enum { CSC_HSM_UNAVAILABLE, CSC_HSM_FAILED, CSC_HSM_ERROR_N };
/** signHash's read cache: answered from an entry; read from storage (and kept); an entry csc-sam's refusal made
 *  this process check again on rows read now. */
enum { CSC_RCACHE_HIT, CSC_RCACHE_MISS, CSC_RCACHE_RECHECK, CSC_RCACHE_RESULT_N };

typedef struct csc_stats {
    size_t n_algs;
    const char *alg[CSC_STATS_ALGS_MAX];       /**< signAlgo OIDs, static */
    uint64_t signatures[CSC_STATS_ALGS_MAX];   /**< signatures returned, by alg[i] */
    uint64_t sad_denials[CSC_SAD_DENIAL_N];    /**< by CSC_SAD_* */
    uint64_t auth_failures[CSC_AUTH_FAILURE_N]; /**< by CSC_AUTH_* */
    uint64_t lockouts;                         /**< requests refused because the user or credential was locked */
    uint64_t hsm_errors[CSC_HSM_ERROR_N];      /**< by CSC_HSM_* */
    int sam_reachable;                         /**< 0 when the last call found csc-sam out of reach, else 1 */
    uint64_t async_depth;                      /**< operationMode "A" jobs accepted and not finished (a gauge) */
    uint64_t read_cache[CSC_RCACHE_RESULT_N];  /**< signHash's read cache (read_cache_ms), by CSC_RCACHE_* */
} csc_stats_t;

/** The label of CSC_SAD_* or CSC_AUTH_* i ("expired", "exhausted", "not_bound", "invalid"; "login", "pin_otp",
 *  "enroll"). */
const char *csc_sad_denial_name(unsigned i);
const char *csc_auth_failure_name(unsigned i);
/** The label of CSC_HSM_* i ("unavailable", "failed"). */
const char *csc_hsm_error_name(unsigned i);
/** The label of CSC_RCACHE_* i ("hit", "miss", "recheck"). */
const char *csc_rcache_result_name(unsigned i);

/** A copy of the counters now (each read atomically; together they are not one instant). */
void csc_stats_get(csc_t *c, csc_stats_t *out);

/** How many request kinds csc_metric_method() tells apart, and their names (index 0..n-1): the CSC methods by their
 *  path after the version prefix ("signatures/signHash"; v1 and v2 together), the OAuth endpoints
 *  ("oauth2/token", "oauth2/revoke", "oauth2/pushed_authorize", "oauth2/metadata"), "page" for the HTML pages and
 *  the logo, and "other" for any other path. */
size_t csc_metric_methods(void);
const char *csc_metric_method_name(size_t i);
/** The index of the request kind of path (normalized, without query). */
size_t csc_metric_method(const char *path, size_t len);

/** The CRLs' freshness (/readyz): crl_dir set or not, how many CRLs are in force, how many are past their
 *  nextUpdate, the file name of the first such, the earliest nextUpdate (0: none). */
typedef struct csc_crl_status {
    int configured;
    size_t count, stale;
    char first_stale[256];
    int64_t earliest_next_update;
} csc_crl_status_t;
void csc_crl_status(csc_t *c, int64_t now, csc_crl_status_t *out);

#ifdef __cplusplus
}
#endif
#endif
