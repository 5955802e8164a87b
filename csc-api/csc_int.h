/* csc_int.h - private to csc-api. */
#ifndef CSC_INT_H
#define CSC_INT_H

#include <stdbool.h>
#include <time.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include <openssl/x509.h>
#include "csc.h"
#include "hsm.h" /* HSM_* codes and hsm_sign_params_t only: csc-api calls no hsm_ function but hsm_strerror */
#include "pki.h"

/* On a csc-api function whose result says whether it worked: ignoring the result is a build error (-Werror). */
#define CSC_MUST_CHECK __attribute__((warn_unused_result))

#define CSC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))


/* Counters of the service's outcomes for the operators' /metrics (csc_stats.c; csc.h's csc_stats_t is their copy).
 * Added to with relaxed atomics on the request path, never under a lock; the indexes are fixed tables, so what a
 * client sends never adds a label. */
typedef struct csc_counters {
    uint64_t signatures[CSC_STATS_ALGS_MAX]; /* by index of csc_sign_algs_all() */
    uint64_t sad_denials[CSC_SAD_DENIAL_N];
    uint64_t auth_failures[CSC_AUTH_FAILURE_N];
    uint64_t lockouts;
    uint64_t hsm_errors[CSC_HSM_ERROR_N];
    uint64_t read_cache[CSC_RCACHE_RESULT_N];
} csc_counters_t;

/* signHash's read cache (csc_rcache.c): the principal and the credential row the front end read for a token and a
 * credential id, kept read_cache_ms for its own checks only. NULL (read_cache_ms 0): every call below does nothing
 * (get finds nothing). */
typedef struct csc_rcache csc_rcache_t;
int csc_rcache_new(unsigned ttl_ms, csc_rcache_t **out);
void csc_rcache_free(csc_rcache_t *rc);
/* The key of a bearer token: its SHA-256. 0 or -1. */
int csc_rcache_key(const char *token, size_t len, uint8_t hash[32]);
/* 1 and copies of the entry's principal and row when one for (hash, cred_id) was read within read_cache_ms and its
 * token has not expired; else 0. */
int csc_rcache_get(csc_rcache_t *rc, const uint8_t hash[32], const char *cred_id, oauth_principal_t *p,
                   stor_cred_t *cred);
void csc_rcache_put(csc_rcache_t *rc, const uint8_t hash[32], const char *cred_id, const oauth_principal_t *p,
                    const stor_cred_t *cred);
/* Forget the token's entry (csc-sam refused a request judged on it). */
void csc_rcache_drop(csc_rcache_t *rc, const uint8_t hash[32]);

struct csc {
    csc_config_t cfg;
    stor_env_t *stor;
    oauth_t *oauth;
    sam_client_t *sam;         /* the signature activation module (csc_sam.c); NULL: every call to it is a 503 */
    char *info_body;           /* the info reply, built once */
    size_t info_len;
    char *info_v1_body;        /* the same for /csc/v1/ (v1.0.4.0 shape) */
    size_t info_v1_len;
    bool tsa;                  /* the TSA named by cfg.tsa_credential exists (timestamp, Ades-B-T offered) */
    pki_crl_t *crl;            /* revocation lists (J9), NULL when crl_dir is not set */
    pki_x509_cache_t *certs;   /* with crl: credentials' certificates parsed once for the checks (csc_cert.c) */
    int sender_kind;           /* CSC_SENDER_*: how getChallenge codes are delivered (csc_challenge.c) */
    char sender_path[4096];
    struct csc_async *async;   /* operationMode "A": job queue and threads (csc_async.c) */
    char logo_url[600];        /* info.logo (web/web_logo.c) */
    char logo_path[16];        /* "/logo.png" ...: where the service serves it; "" when external */
    uint8_t *logo;             /* the image served there, read at start-up; NULL when external */
    size_t logo_len;
    const char *logo_ext, *logo_type;
    int sam_down;              /* csc-sam could not be reached by the last call (csc_sam.c logs the changes only) */
    csc_counters_t counters;   /* what the operators' /metrics shows (csc_stats.c) */
    csc_rcache_t *rcache;      /* signHash's read cache (csc_rcache.c); NULL when read_cache_ms is 0 */
};

/* ---- errors ---------------------------------------------------------------
 * A method fails by filling r->err with one of these and returning -1. The
 * description is always a static string: request bytes are never echoed. */
typedef struct csc_err {
    int status;
    const char *error;
    const char *description;
    unsigned retry_after;      /* seconds for a Retry-After header, 0 = none */
} csc_err_t;

/* ---- a request in progress ------------------------------------------------ */
typedef struct csc_req {
    csc_t *csc;
    const csc_call_t *call;
    yajl_val root;             /* parsed body: always an object */
    bool have_principal;
    oauth_principal_t principal;
    /* signHash: the credential of the body's credentialID, read in the token's read txn with its row read ahead (2
     * round trips on PostgreSQL instead of 3): csc_load_cred answers from it. NULL: not read (then csc_load_cred
     * reads). Wiped and freed with the request. */
    stor_cred_t *cred_read;
    int cred_read_rc;          /* what stor_txn_cred_get said of it */
    char cred_read_id[STOR_NAME_MAX + 1];
    /* principal and cred_read came from the read cache, whose key is tok_hash: when csc-sam refuses, the front end's
     * checks run again on rows read now (csc_sign.c) */
    bool cached;
    bool keyed;                /* tok_hash is set and the rows read may be kept (csc_rcache_keep) */
    uint8_t tok_hash[32];
    bool v1;                   /* /csc/v1/ path */
    csc_err_t err;
    char desc_buf[320];        /* a description built from stored data (never request bytes) */
    char bearer[520];          /* the Bearer value when it serves as the SAD (credential-scope tokens) */
    yajl_gen gen;              /* success body */
    const char *raw;           /* or a prebuilt success body */
    size_t raw_len;
    int status;                /* success status (200, 204) */
} csc_req_t;

int csc_fail(csc_req_t *r, int status, const char *error, const char *description);
/* shorthand for 400 invalid_request */
int csc_bad(csc_req_t *r, const char *description);
/* shorthand for 503 temporarily_unavailable (storage or HSM trouble, never the client's fault) */
int csc_unavailable(csc_req_t *r);
/* the same for a storage failure: the database out of reach (STOR_ERR_UNAVAILABLE) adds Retry-After: 1 */
int csc_unavailable_stor(csc_req_t *r, int stor_rc);
/* 503 temporarily_unavailable with Retry-After: too many password/PIN checks at once (OAUTH_ERR_BUSY) */
int csc_busy(csc_req_t *r);
/* Seconds a browser or client is told to wait after OAUTH_ERR_BUSY or a full queue. */
#define CSC_BUSY_RETRY_AFTER 1
/* ... and when the database cannot be reached (OAUTH_ERR_UNAVAILABLE, i.e. STOR_ERR_UNAVAILABLE): a PostgreSQL
 * connection is made again at the next transaction, so the next try may well work. */
#define CSC_STORAGE_RETRY_AFTER 1

/* ---- lower modules' codes -> CSC errors (csc_req.c) ------------------------------------------------------ */

/* What an oauth/ result was about: selects the table's rows. */
typedef enum csc_about {
    CSC_ABOUT_TOKEN,      /* the bearer access token */
    CSC_ABOUT_SAD,        /* a SAD spent or extended */
    CSC_ABOUT_CREDENTIAL, /* the credential named by credentialID */
    CSC_ABOUT_HANDLE,     /* the handle of credentials/authorizeCheck */
} csc_about_t;

/* One row: a module's code and the CSC error it becomes (static strings; retry_after for Retry-After). */
typedef struct csc_err_row {
    int code;
    int status;
    const char *error;
    const char *description;
    unsigned retry_after;
} csc_err_row_t;

/* The row of csc_unavailable (after the code) and of csc_busy, for override lists. */
#define CSC_UNAVAILABLE_ROW 503, "temporarily_unavailable", "The service is temporarily unavailable", 0
#define CSC_STORAGE_DOWN_ROW                                                                                       \
    503, "temporarily_unavailable", "The service is temporarily unavailable", CSC_STORAGE_RETRY_AFTER
#define CSC_BUSY_ROW                                                                                               \
    503, "temporarily_unavailable", "Too many sign-ins are being checked; try again in a moment", CSC_BUSY_RETRY_AFTER

/* err from one row (its code is not looked at). Always -1. */
int csc_err_row(csc_err_t *err, const csc_err_row_t *row);
/* err (or r->err) from an oauth/ code: the call site's overrides first (NULL, or ended by a row with code 0),
 * then the table's rows for about, else 503 temporarily_unavailable. Always -1. */
int csc_err_oauth(csc_err_t *err, csc_about_t about, int code, const csc_err_row_t *overrides);
int csc_fail_oauth(csc_req_t *r, csc_about_t about, int code, const csc_err_row_t *overrides);
/* err from a failed hsm_sign (or a PKI signature through it): 503 when the device is unavailable, else 500. -1. */
int csc_err_hsm(csc_err_t *err, int code);
/* err from csc-sam's refusal (SAM_REFUSE_*) of a request about `about`: the refusal is read as the oauth/ code it
 * stands for on that subject (csc_req.c), then as csc_err_oauth, so one table and the call site's overrides decide
 * both. Always -1. */
int csc_err_sam(csc_err_t *err, csc_about_t about, uint32_t refusal, const csc_err_row_t *overrides);

/* ---- the signature activation module (csc_sam.c) ---------------------------------------------------------
 * Everything that activates or uses a key is asked of csc-sam (sam/sam_wire.h has the protocol). */

/* A call in progress: the request being built, then the reply (valid until csc_sam_end). */
typedef struct csc_sam_call {
    unsigned op;
    sam_builder_t b;
    sam_rbuf_t rb;
    sam_msg_t reply;
} csc_sam_call_t;

/* Start a request of op (sam_put_* the fields into call->b). 0, or -1 with err set (503). */
CSC_MUST_CHECK int csc_sam_begin(csc_t *c, csc_sam_call_t *call, unsigned op, csc_err_t *err);
/* Send it and wait for the answer. 0: call->reply is op's reply. -1 with err set: a refusal (through csc_err_sam
 * for about, overrides first), or 503 temporarily_unavailable when csc-sam cannot be reached, does not answer in
 * time, or the request could not be built. */
CSC_MUST_CHECK int csc_sam_run(csc_t *c, csc_sam_call_t *call, csc_about_t about, const csc_err_row_t *overrides,
                               csc_err_t *err);
/* signHash judged on the read cache (r->cached) and csc-sam refused: the entry dropped, the bearer token and the
 * credential read again from storage into r->principal and r->cred_read (csc_route.c). 0, or -1 with the error the
 * token gets without the cache. */
int csc_authenticate_again(csc_req_t *r);
/* signHash's rows read from storage passed its checks: into the read cache (once; nothing without the cache). */
void csc_rcache_keep(csc_req_t *r);
/* Wipe and free both messages (they carry PINs, codes and SADs). Always safe after csc_sam_begin. */
void csc_sam_end(csc_sam_call_t *call);
/* After csc_sam_run failed on a sign-in (LOGIN, API_LOGIN): csc-sam's refusal as an oauth/ code (UNAUTHORIZED:
 * OAUTH_ERR_DENIED, RATE, BUSY, FULL; BAD_MESSAGE: OAUTH_ERR_INVALID); OAUTH_ERR_STORAGE when csc-sam was not
 * reached or refused otherwise (nothing was checked). */
int csc_sam_login_rc(const csc_sam_call_t *call);
/* Fields most requests carry, in their place of the ascending tag order: the caller's bearer token (TOKEN), the
 * client address (CLIENT), and HASH_ALG with every DIGEST (nothing when n is 0). A value the builder refuses makes
 * csc_sam_run a 503. */
void csc_sam_put_token(csc_req_t *r, csc_sam_call_t *call);
void csc_sam_put_client(csc_req_t *r, csc_sam_call_t *call);
/* The request's id (csc_call_t.request_id), when it has one: SIGN and AUTHORIZE, the last tag put (tags ascend). */
void csc_sam_put_request_id(csc_req_t *r, csc_sam_call_t *call);
struct csc_hash_alg;
void csc_sam_put_hashes(csc_sam_call_t *call, const struct csc_hash_alg *alg, const uint8_t *const *d, size_t n);

/* TOKEN and REVOKE (csc_token.c): csc-sam authenticates the client, runs the grant or revocation and writes it. */
typedef struct csc_token_req {
    uint32_t grant;                      /* SAM_GRANT_* */
    const char *client_id, *secret;      /* as presented (NULL for SAM_GRANT_LOGIN_REFRESH) */
    const char *caller;                  /* SAM_GRANT_LOGIN_REFRESH: the client address for the audit record */
    const char *code, *redirect_uri, *verifier, *refresh; /* NULL: not sent */
} csc_token_req_t;
#define CSC_TOKEN_CLIENT_REFUSED 1       /* csc-sam did not authenticate the client: 401 invalid_client */
#define CSC_TOKEN_BEARER_REFUSED 2       /* csc-sam refused the caller's own bearer token (REVOKE) */
/* OAUTH_OK (out filled), CSC_TOKEN_CLIENT_REFUSED, or the oauth/ code of the grant's refusal (OAUTH_ERR_INVALID,
 * _EXPIRED, _DISABLED, _DENIED, _PKCE, _REUSED, _INVAL); OAUTH_ERR_STORAGE when csc-sam could not be asked. */
int csc_sam_token(csc_t *c, const csc_token_req_t *in, oauth_token_response_t *out);
/* Revoke token: auth/revoke (bearer: the caller's own token; caller: its address) or /oauth2/revoke (client_id and
 * secret). OAUTH_OK, CSC_TOKEN_CLIENT_REFUSED, CSC_TOKEN_BEARER_REFUSED, OAUTH_ERR_INVALID (auth/revoke: unknown or
 * not the caller's), OAUTH_ERR_STORAGE. */
int csc_sam_revoke(csc_t *c, const char *bearer, const char *caller, const char *client_id, const char *secret,
                   const char *token);

/* ---- JSON ------------------------------------------------------------------ */

/* Parse a request body: size and depth limits, no comments, no duplicate keys,
 * no NUL in strings, top level must be an object. An empty body is {}. */
CSC_MUST_CHECK int csc_json_parse(csc_req_t *r, const uint8_t *body, size_t len);
/* Parse any JSON text with the same checks (depth, comments, NUL, duplicate keys); NULL if refused. */
yajl_val csc_json_parse_text(const char *text, size_t len, unsigned max_depth);
/* Re-emit a parsed value (depth already bounded by the parser). */
void csc_json_gen_value(yajl_gen g, yajl_val v);
/* Wipe every string of the tree (bodies carry secrets), then free it. */
void csc_json_free(yajl_val root);

/* Typed members of r->root. Each returns 1 if present with the right type, 0 if
 * absent (or JSON null), and -1 after filling r->err when present with the wrong
 * type ("Missing (or invalid type) <kind> parameter <name>" style errors use the
 * csc_req_* variants). */
CSC_MUST_CHECK int csc_get_string(csc_req_t *r, const char *name, const char **out, size_t max_len);
CSC_MUST_CHECK int csc_get_bool(csc_req_t *r, const char *name, bool *out);
CSC_MUST_CHECK int csc_get_uint(csc_req_t *r, const char *name, unsigned long *out); /* accepts "12" too */
yajl_val csc_get_value(csc_req_t *r, const char *name);

/* Required string: absent or wrong type -> "Missing (or invalid type) string parameter <name>" */
CSC_MUST_CHECK int csc_req_string(csc_req_t *r, const char *name, const char **out, size_t max_len, const char *missing_desc);

/* Generator helpers on r->gen */
void csc_gen_str(yajl_gen g, const char *s);
void csc_gen_strn(yajl_gen g, const char *s, size_t n);
void csc_gen_kv(yajl_gen g, const char *k, const char *v);
void csc_gen_kint(yajl_gen g, const char *k, long long v);
void csc_gen_kbool(yajl_gen g, const char *k, bool v);
void csc_gen_b64(yajl_gen g, const uint8_t *data, size_t len);
yajl_gen csc_gen_new(void);

/* ---- wiped heap (csc_wipe.c) --------------------------------------------------
 * Blocks that may hold secrets: csc_wipe_free cleanses the whole usable block before free(); csc_wipe_realloc
 * moves to a new block and wipes the old one. Plain malloc blocks (free() may free them too, unwiped).
 * csc_wipe_yajl: the same as yajl_alloc_funcs, for parsers and generators. */
void *csc_wipe_malloc(size_t n);
void *csc_wipe_realloc(void *p, size_t n);
void csc_wipe_free(void *p);
extern yajl_alloc_funcs csc_wipe_yajl;

/* ---- base64 ---------------------------------------------------------------- */

/* Strict decode of standard or URL-safe base64, padding optional but correct if
 * present; no whitespace. @return decoded length or -1. */
CSC_MUST_CHECK long csc_b64_decode(const char *in, size_t len, uint8_t *out, size_t outsz);
/* Standard padded base64; returns the length written (out holds 4*ceil(n/3)+1). */
size_t csc_b64_encode(const uint8_t *in, size_t len, char *out);

/* ---- algorithms -------------------------------------------------------------- */

typedef struct csc_hash_alg {
    const char *oid;
    int nid;
    size_t len;
} csc_hash_alg_t;

typedef struct csc_sign_alg {
    const char *oid;
    uint32_t key_type;         /* STOR_KEY_RSA / STOR_KEY_EC */
    hsm_sig_scheme_t scheme;
    int md_nid;                /* implied digest, 0 = from hashAlgorithmOID / parameters */
} csc_sign_alg_t;

const csc_hash_alg_t *csc_hash_by_oid(const char *oid);
const csc_hash_alg_t *csc_hash_by_nid(int nid);
const csc_sign_alg_t *csc_sign_alg_by_oid(const char *oid);
/* Every signAlgo OID a key of this type can serve, in a stable order. */
size_t csc_sign_algs_for_key(uint32_t key_type, const csc_sign_alg_t **out, size_t max);
/* All supported signAlgo OIDs (for info). */
size_t csc_sign_algs_all(const csc_sign_alg_t **out, size_t max);
/* Parse DER RSASSA-PSS-params into hsm parameters; -1 if malformed or weaker than SHA-256. */
CSC_MUST_CHECK int csc_pss_params_parse(const uint8_t *der, size_t len, hsm_sign_params_t *out);

/* ---- hashes ---------------------------------------------------------------- */

typedef struct csc_hashes {
    const csc_hash_alg_t *alg;
    size_t n;
    uint8_t *buf;              /* n slots of STOR_DIGEST_LEN_MAX bytes */
    uint8_t **ptrs;            /* n pointers into buf */
} csc_hashes_t;

/* Decode "hashes" (or the v1 "hash"), all of alg; alg NULL = from hashAlgorithmOID
 * (or, for the v1 name only, from the digest length). Absent: 0 with h->n == 0. */
CSC_MUST_CHECK int csc_parse_hashes(csc_req_t *r, csc_hashes_t *h, const csc_hash_alg_t *alg);
void csc_hashes_free(csc_hashes_t *h);

/* ---- certificates ------------------------------------------------------------- */

/* "valid" or "expired" for a credential's end-entity certificate, from the validity kept in the record. */
const char *csc_cred_cert_status(const stor_cred_t *cred, time_t now);
/* 1 when now is before the certificate's notBefore (the CSC status, which has no word for it, says "expired"). */
int csc_cred_cert_not_yet_valid(const stor_cred_t *cred, time_t now);

/* ---- methods ------------------------------------------------------------------ */

int csc_m_info(csc_req_t *r);
int csc_m_login(csc_req_t *r);
int csc_m_revoke(csc_req_t *r);
int csc_m_cred_list(csc_req_t *r);
int csc_m_cred_info(csc_req_t *r);
int csc_m_authorize(csc_req_t *r);
int csc_m_extend(csc_req_t *r);
int csc_m_sign_hash(csc_req_t *r);

/* ---- one-time codes: credentials/getChallenge, v1 sendOTP (csc_challenge.c) ---------- */

enum { CSC_SENDER_NONE = 0, CSC_SENDER_EXEC = 1, CSC_SENDER_FILE = 2 };
/* Parse cfg.otp_sender into c->sender_kind/sender_path; -1 (message on stderr) if malformed. */
CSC_MUST_CHECK int csc_sender_init(csc_t *c);
int csc_m_get_challenge(csc_req_t *r);
/* 0 for a method this configuration does not offer (getChallenge/sendOTP without otp_sender): 501 before auth. */
int csc_method_offered(const csc_t *c, const char *name);
int csc_m_send_otp(csc_req_t *r);

/* ---- operationMode "A" (csc_async.c, csc_notify.c) ------------------------------------------------
 * A method that supports asynchronous mode (signHash; signDoc the same way):
 *   csc_async_opts_t o;  csc_async_params(r, &o)       validity_period, response_uri
 *   csc_async_reserve(r)                                 before anything is spent (queue full: 503)
 *   ... the checks and spending of the synchronous path (on failure: csc_async_unreserve(r->csc)) ...
 *   csc_async_job_t job = {fn, abort_fn, free_fn, arg};  arg owns copies of everything fn needs
 *   return csc_async_submit(r, &o, cred_id, &job);       writes {"responseID"}; on failure abort_fn + free_fn ran
 * fn(c, arg, gen, err) runs on a pool thread: it writes the synchronous reply's body into gen and returns 0, or
 * fills err (static strings) and returns -1. abort_fn(c, arg, reason) runs instead of fn when the job will never
 * run (gives back what the method spent, audited). free_fn(arg) runs last in every case. */

#define CSC_URI_MAX 512
#define CSC_RESPONSE_ID_LEN 43

typedef struct csc_async_opts {
    int64_t validity_ms;
    char response_uri[CSC_URI_MAX + 1];   /* "" = none */
} csc_async_opts_t;

typedef struct csc_async_job {
    int (*fn)(csc_t *c, void *arg, yajl_gen out, csc_err_t *err);
    void (*abort_fn)(csc_t *c, void *arg, const char *reason);
    void (*free_fn)(void *arg);
    void *arg;
} csc_async_job_t;

CSC_MUST_CHECK int csc_async_start(csc_t *c);
void csc_async_stop(csc_t *c);
CSC_MUST_CHECK int csc_async_params(csc_req_t *r, csc_async_opts_t *o);
CSC_MUST_CHECK int csc_async_reserve(csc_req_t *r);
void csc_async_unreserve(csc_t *c);
/* Jobs accepted and not yet finished (queued, running or reserved): the /metrics gauge csc_async_queue_depth. */
size_t csc_async_depth(csc_t *c);

/* ---- counters for /metrics (csc_stats.c) ---- */
/* A call to csc-sam op was refused with code (sam_wire.h SAM_REFUSE_*) about a subject (the call's, or the one the
 * refusal's tag names: SAM_T_ABOUT, 0 when absent): counted as a SAD denial, a wrong factor or a lock-out when it is
 * one. */
void csc_stats_refusal(csc_t *c, unsigned op, csc_about_t about, uint32_t tag, uint32_t code);
/* n signatures made with the signature algorithm oid (signHash, signDoc: csc-sam answered them). */
void csc_stats_signed(csc_t *c, const char *oid, size_t n);
/* One more CSC_RCACHE_* result of signHash's read cache. */
void csc_stats_rcache(csc_t *c, unsigned result);
CSC_MUST_CHECK int csc_async_submit(csc_req_t *r, const csc_async_opts_t *o, const char *cred, const csc_async_job_t *job);
int csc_m_sign_polling(csc_req_t *r);

/* ---- approval outside the client (csc_creds.c; the page is web/web_approve.c) ------------------------------------ */
int csc_m_authorize_check(csc_req_t *r);
/* 1 if uri may be notified: https, or http to localhost in the test environment; no userinfo or fragment. */
int csc_response_uri_ok(const csc_t *c, const char *uri);
/* POST body to uri under one deadline (cfg->notify_timeout: connect, TLS, request, status line), no redirects; in
 * production only to addresses csc_addr_internal() clears or notify_allow names. Failures are logged with the host
 * name only. @return 0 for a 2xx answer, else -1. */
int csc_notify_post(const csc_config_t *cfg, const char *uri, const char *body, size_t len);
/* 1 for loopback, unspecified, private, unique-local, link-local, CGNAT, multicast and reserved addresses (IPv4
 * inside IPv6 judged as IPv4), 0 for a public address. */
struct sockaddr;
int csc_addr_internal(const struct sockaddr *sa);
/* 1 if the notify_allow list (names, addresses, address/bits; comma or space separated) names host or holds sa. */
int csc_notify_allowed(const char *allow, const char *host, const struct sockaddr *sa);
/* The notification threads (cfg->notify_threads) and their queue (cfg->notify_queue): queue drops (and logs) when
 * full or stopping; stop ends the threads after their current notification and drops what waits. */
struct csc_notifier;
struct csc_notifier *csc_notifier_start(const csc_config_t *cfg);
void csc_notifier_stop(struct csc_notifier *q);
void csc_notifier_queue(struct csc_notifier *q, const char *uri, const char *response_id);

/* Build info's body at start-up. */
CSC_MUST_CHECK int csc_info_build(csc_t *c);

/* Load the caller's credential: unknown and not-owned give the same error. */
CSC_MUST_CHECK int csc_load_cred(csc_req_t *r, const char *id, stor_cred_t *out);
/* Production policy for an existing credential (SCAL 1, single factor); 0 or -1 with r->err set (csc_sign.c). */
CSC_MUST_CHECK int csc_check_policy(csc_req_t *r, const stor_cred_t *cred);
/* Write the credentialInfo members (credentials/info output) into r->gen. */
CSC_MUST_CHECK int csc_gen_cred_info(csc_req_t *r, const stor_cred_t *cred, const char *certificates, bool cert_info,
                      bool auth_info);

/* ---- CMS SignedData (pki/), time-stamps (csc_tsa.c), signDoc (csc_signdoc.c) ------------------------------ */

/* csc_tsa.c: the pki/ signature parameters of an HSM scheme, and back. */
pki_sig_t csc_pki_sig(const hsm_sign_params_t *p);
hsm_sign_params_t csc_hsm_sig(const pki_sig_t *p);
/* csc_tsa.c: a pki_cms_* result as an HSM_* code; cb_rc: what the (HSM_* speaking) callback returned. */
CSC_MUST_CHECK int csc_pki_hsm_rc(int pki_rc, int cb_rc);
/* An upper bound of the size of a token csc_tsa_stamp would give now (no signature, nothing audited).
 * @return HSM_OK, HSM_ERR_NOKEY (no usable TSA), ... */
CSC_MUST_CHECK int csc_tsa_token_max(csc_t *c, size_t *out);

/* At start-up: does the configured TSA exist and can it stamp? Sets c->tsa. @return 0, -1 if configured
 * but missing or unusable (message on stderr). */
CSC_MUST_CHECK int csc_tsa_open(csc_t *c);
/* A TimeStampToken over one digest (hashed with md_nid), nonce optional (big-endian unsigned), asked of csc-sam
 * (STAMP), which checks token (the caller's access token; a credential-scope one only with cred, its credential),
 * makes the TSTInfo, signs it with the TSA key and audits it (STOR_EV_TIMESTAMP; no token without its record).
 * @return HSM_OK with the token appended to out; else err is what signatures/timestamp answers and the code says
 * why: HSM_ERR_NOKEY (no usable TSA: 501), HSM_ERR_UNAVAILABLE (csc-sam, HSM or storage: 503; or the token refused:
 * 401), other (500). */
CSC_MUST_CHECK int csc_tsa_stamp(csc_t *c, const char *token, const char *cred, int md_nid, const uint8_t *digest,
                                 size_t len, const uint8_t *nonce, size_t nonce_len, const char *client,
                                 pki_der_t *out, csc_err_t *err);
int csc_m_timestamp(csc_req_t *r);
int csc_m_sign_doc(csc_req_t *r);
/* signDoc's PAdES placeholder (csc_signdoc.c; its fuzz target tests/fuzz/fuzz_pdf.c): the last /ByteRange
 * [0 a b c] of pdf (len bytes) that covers all of it but the gap [a, b), a zero-filled /Contents <00...> string.
 * 0 with the offsets of its '<' and '>', -1 if there is none. */
CSC_MUST_CHECK int csc_pdf_placeholder(const uint8_t *pdf, size_t len, size_t *gap_start, size_t *gap_end);
/* Write der (len bytes) in upper-case hex at the start of that gap; the zeros after it stay (padding).
 * -1, nothing written, if it does not fit. */
CSC_MUST_CHECK int csc_pdf_fill(uint8_t *pdf, size_t gap_start, size_t gap_end, const uint8_t *der, size_t len);
/* csc_sign.c, shared with signDoc: the SIGN request to csc-sam (one message for every digest). */
typedef struct csc_sign_in {
    const stor_cred_t *cred;           /* the credential (its id; its certificate for a refusal's words) */
    const csc_hash_alg_t *alg;         /* of every digest */
    const uint8_t *const *digests;
    size_t n;
    const char *sad;                   /* NULL or "": the credential-scope bearer token is the SAD */
    const char *sign_alg;              /* signAlgo OID */
    const uint8_t *pss;                /* DER RSASSA-PSS-params (pss_len 0: none) */
    size_t pss_len;
    const char *detail;                /* the audit record's detail; NULL: sign_alg */
    const uint8_t *cms;                /* per digest SAM_CMS_*: csc-sam signs CMS signed attributes; NULL: the digests */
    uint32_t async_ttl;                /* > 0: reserve (spend now, sign on SIGN_RESERVED) for this many seconds */
} csc_sign_in_t;
/* Send SIGN. 0: call->reply holds the signatures (and TIME_MS with cms) or the TICKET; the caller ends the call.
 * -1: r->err set (the SAD rows of csc_req.c after overrides; a failed device as csc_err_hsm), call ended. */
CSC_MUST_CHECK int csc_sam_sign(csc_req_t *r, const csc_sign_in_t *in, const csc_err_row_t *overrides,
                                csc_sam_call_t *call);
/* SIGN_RESERVED: sign what ticket reserved (give_back NULL), or give it back to its SAD with that reason (audited).
 * 0 with call->reply (the signatures), or -1 with err set (call ended). */
CSC_MUST_CHECK int csc_sam_reserved(csc_t *c, const uint8_t ticket[SAM_TICKET_LEN], const char *give_back,
                                    csc_sam_call_t *call, csc_err_t *err);
/* Seconds csc-sam keeps the reservation of an asynchronous request with these options. */
uint32_t csc_async_reserve_ttl(const csc_async_opts_t *o);
/* csc_sign.c, shared with signDoc: enabled credential with a certificate in its validity period (J9; its revocation
 * status is csc-sam's to check, csc_sam_sign); the
 * Bearer value NUL-terminated in r->bearer (a credential-scope token serving as the SAD) */
CSC_MUST_CHECK int csc_check_signable(csc_req_t *r, const stor_cred_t *cred);
const char *csc_bearer_value(csc_req_t *r);
/* ---- certificate requests, imports and revocation lists (csc_cert.c, csc_certmgmt.c; J6, J9) ------------ */
/* The CRL store itself is pki/'s (pki_crl_t in c->crl); revocation statuses are PKI_REV_*. */

/* The sweep that ends credentials whose certificate a CRL revokes is csc-sam's (sam/sam_crl_sweep.c). */

/** The O and CN of the credential's end-entity certificate (each "" when absent or unreadable), for refusal texts. */
void csc_cred_o_cn(const stor_cred_t *cred, char *o, size_t o_sz, char *cn, size_t cn_sz);
/* The revocation status (PKI_REV_*) of a credential's end-entity certificate: the one check every signing path
 * (signHash, signDoc) makes before the HSM is asked (J9). */
CSC_MUST_CHECK int csc_cert_check_revocation(csc_t *c, const stor_cred_t *cred, time_t now, const char **why);
/* csc-sam's refusal of a SIGN for the certificate's revocation status (SAM_REFUSE_REVOKED, SUSPENDED, CERT_UNKNOWN;
 * csc-sam audited it) as the method's error: 400 invalid_request "Signing certificate 'O=..,CN=..' is revoked." (or
 * suspended, or "... cannot be confirmed."), -1. Any other refusal: 0, r->err untouched. */
int csc_refuse_cert_status(csc_req_t *r, const stor_cred_t *cred, uint32_t refusal);
/* cert.status for credentials/info: valid, expired, revoked or suspended; *usable = enabled and good. */
const char *csc_cred_cert_status_now(csc_t *c, const stor_cred_t *cred, time_t now, bool *usable);

#endif
