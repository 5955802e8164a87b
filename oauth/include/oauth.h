/*
 * oauth.h - who the caller is and what they may do: password and PIN
 * verifiers (scrypt), TOTP (RFC 6238, each code accepted once), bearer tokens
 * (random, stored hashed, expiring, revocable), lockout after repeated
 * failures, and SADs (signature activation data) bound to user, credential,
 * budget, expiry and digests, with an atomic budget.
 *
 * Every state change and its audit record are written in one storage
 * transaction (stor_write), so a decision is never acknowledged without its
 * record, and two concurrent requests can never spend one budget twice.
 *
 * Secrets passed in (passwords, PINs, OTPs, token values) are not kept or
 * logged; the caller wipes its own copies. Comparisons of secrets are
 * constant-time; tokens are looked up by their SHA-256.
 *
 * Thread-safety: all functions may be called concurrently from any thread.
 */
#ifndef OAUTH_H
#define OAUTH_H

#include <stddef.h>
#include <stdint.h>
#include "stor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    OAUTH_OK = 0,
    OAUTH_ERR_DENIED = -101,         /**< wrong password, PIN or OTP; unknown user */
    OAUTH_ERR_LOCKED = -102,         /**< too many failures; locked until later */
    OAUTH_ERR_INVALID = -103,        /**< unknown, malformed or revoked token / SAD */
    OAUTH_ERR_EXPIRED = -104,        /**< token or SAD past its expiry */
    OAUTH_ERR_NOT_AUTHORIZED = -105, /**< digest or hash algorithm not bound to the SAD */
    OAUTH_ERR_EXHAUSTED = -106,      /**< SAD budget smaller than the request */
    OAUTH_ERR_MISMATCH = -107,       /**< SAD belongs to another user or credential */
    OAUTH_ERR_DISABLED = -108,       /**< user suspended/terminated */
    OAUTH_ERR_STORAGE = -109,        /**< storage failure */
    OAUTH_ERR_INTERNAL = -110,
    OAUTH_ERR_INVAL = -111,          /**< bad argument */
    OAUTH_ERR_RATE = -112,           /**< too many attempts from this client address: HTTP 429 */
    OAUTH_ERR_FULL = -113,           /**< too many pending browser sessions or pushed requests */
    OAUTH_ERR_PKCE = -114,           /**< code_verifier does not match the code_challenge */
    OAUTH_ERR_REUSED = -115,         /**< a used code or a rotated refresh token was presented again */
    OAUTH_ERR_BUSY = -130,           /**< too many password/PIN checks (scrypt) at once: nothing was checked or
                                          counted; HTTP 503 with Retry-After (oauth_config_t.verify_max) */
    OAUTH_ERR_UNAVAILABLE = -131,    /**< the database cannot be reached now (STOR_ERR_UNAVAILABLE): nothing was
                                          kept; HTTP 503 with Retry-After 1 */
};

const char *oauth_strerror(int rc);

typedef struct oauth oauth_t;

typedef struct oauth_config {
    stor_env_t *stor;
    unsigned access_ttl;      /**< access token lifetime, s; 0 = 3600 */
    unsigned refresh_ttl;     /**< refresh token lifetime, s; 0 = 30 days */
    unsigned sad_ttl;         /**< SAD lifetime, s; 0 = 300 */
    unsigned max_failures;    /**< consecutive failures before a lock; 0 = 5 */
    unsigned lock_seconds;    /**< duration of the first lock (each further one doubles); 0 = 900 */
    unsigned totp_window;     /**< accepted time steps either side; 0 = 1; at most 10 */
    /* OAuth 2.0 authorization server (appended: positional initialisers of the fields above still work) */
    unsigned code_ttl;        /**< authorization code lifetime, s; 0 = 60 */
    unsigned par_ttl;         /**< pushed authorization request lifetime, s; 0 = 90 */
    unsigned credential_token_ttl; /**< credential-scope access token (and its SAD) lifetime, s; 0 = 300 */
    unsigned session_idle;    /**< browser session idle timeout, s; 0 = 300 */
    unsigned session_max;     /**< browser session absolute timeout, s; 0 = 900 */
    unsigned rate_window;     /**< per-address failure counting window, s; 0 = 60 */
    unsigned rate_max;        /**< failures per address and window before OAUTH_ERR_RATE; 0 = 20 */
    unsigned challenge_ttl;   /**< one-time code of credentials/getChallenge, s; 0 = 300 */
    unsigned approval_ttl;    /**< pending approval (authorize 202 + handle), s; 0 = 300 */
    unsigned lock_max_seconds; /**< longest lock: lock n lasts lock_seconds * 2^(n-1) up to this, s; 0 = 86400 */
    unsigned scrypt_log2n;    /**< cost of the per-process dummy verifier (as of new verifiers); 0 = OAUTH_SCRYPT_LOG2N */
    unsigned fail_window;     /**< failed logins of one (address, name) within this many s share one audit record
                                   and a count; 0 = 60 */
    unsigned fail_entries;    /**< (address, name) pairs counted in memory at once; 0 = 4096 */
    unsigned verify_max;      /**< password/PIN verifications (scrypt, 32 MiB each at the default cost) running at
                                   once; a few more wait up to OAUTH_VERIFY_WAIT_MS, the rest get OAUTH_ERR_BUSY; 0 = 2 */
} oauth_config_t;

/**
 * @param[in] cfg copied; zero fields take the defaults above
 * @param[out] out the handle, NULL on failure
 * @return OAUTH_OK, OAUTH_ERR_INVAL (no cfg/out/storage, totp_window > 10), OAUTH_ERR_INTERNAL
 */
int oauth_new(const oauth_config_t *cfg, oauth_t **out);
void oauth_free(oauth_t *o);
const oauth_config_t *oauth_config(const oauth_t *o);

/* ---- secrets: scrypt verifiers ----------------------------------------- */

/** Default scrypt cost as log2(N) (r = 8, p = 1). */
#define OAUTH_SCRYPT_LOG2N 15

/**
 * Make a verifier for a password or PIN: scrypt with a random 16-byte salt,
 * parameters encoded in the output so they can change later.
 * @param[in] secret, len at most 1024 bytes
 * @param[in] log2n cost; 0 = OAUTH_SCRYPT_LOG2N (tests may lower it, >= 10), at most 20
 * @param[out] out verifier, *out_len bytes (<= STOR_VERIFIER_MAX)
 * @return OAUTH_OK, OAUTH_ERR_INVAL (log2n out of range, secret too long, NULL), OAUTH_ERR_INTERNAL
 */
int oauth_secret_hash(const char *secret, size_t len, unsigned log2n, uint8_t out[STOR_VERIFIER_MAX],
                      uint32_t *out_len);

/** @return OAUTH_OK if secret matches the verifier (constant-time), else OAUTH_ERR_DENIED
 *  (also for a malformed verifier, parameters out of range, or a secret over 1024 bytes). */
int oauth_secret_verify(const uint8_t *verifier, size_t vlen, const char *secret, size_t len);

/** Longest a password/PIN check waits for a free scrypt slot before OAUTH_ERR_BUSY, ms. At most verify_max checks
 *  wait at once; any further one is refused without waiting. */
#define OAUTH_VERIFY_WAIT_MS 1000

/**
 * oauth_secret_verify() under o's cap on concurrent verifications (verify_max): every password and PIN check of
 * the login, the OAuth and approval pages and credentials/authorize goes through it, so that guessing cannot
 * run the server out of memory and CPU.
 * @return OAUTH_OK, OAUTH_ERR_DENIED, or OAUTH_ERR_BUSY (no slot: nothing was checked; the caller counts no
 *         failure and answers 503 with Retry-After)
 */
int oauth_secret_check(const oauth_t *o, const uint8_t *verifier, size_t vlen, const char *secret, size_t len);

/* ---- the user's own changes of factors (oauth_account.c; csc-sam's /account ops) ---- */

/** The clock every decision uses (in test builds with the test skew). */
int64_t oauth_decision_time(const oauth_t *o);
/**
 * A wrong old factor, in the caller's write, on the counters credentials/authorize (c: the credential's PIN lock-out)
 * or the logins (u: the user's) use: at max_failures a lock begins, lock_seconds doubled per lock, and its
 * STOR_EV_LOCKOUT record is appended (user, client). Exactly one of u and c; the caller puts the record.
 * @return 0 or a storage error (< 0)
 */
int oauth_factor_failure(const oauth_t *o, stor_txn_t *t, stor_user_t *u, stor_cred_t *c, const char *user,
                         const char *client, int64_t now);
/** A right old factor: the counters, lock and escalation of u and/or c (NULL: skipped) start over. */
void oauth_factor_success(stor_user_t *u, stor_cred_t *c);

/* ---- TOTP --------------------------------------------------------------- */

#define OAUTH_TOTP_SECRET_LEN 20   /**< bytes of a new secret (160 bits, RFC 4226) */
#define OAUTH_TOTP_DIGITS 6
#define OAUTH_TOTP_STEP 30

/** Fill secret with OAUTH_TOTP_SECRET_LEN random bytes. */
int oauth_totp_new_secret(uint8_t secret[OAUTH_TOTP_SECRET_LEN]);

/** RFC 4648 base32 without padding; out must hold 8*ceil(len/5)+1 bytes
 *  (ceil(8*len/5)+1 suffice). @return OAUTH_OK, OAUTH_ERR_INVAL (NULL, out too small) */
int oauth_base32_encode(const uint8_t *in, size_t len, char *out, size_t outsz);

/** otpauth://totp/ISSUER:USER?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30
 *  (issuer and user percent-encoded). out holds the secret: the caller wipes it.
 *  @return OAUTH_OK, OAUTH_ERR_INVAL (empty/over-long issuer (> 128) or user (> STOR_NAME_MAX),
 *          secret length 0 or > STOR_TOTP_MAX, out too small: then out is all zeros) */
int oauth_totp_uri(const char *issuer, const char *user, const uint8_t *secret, size_t len, char *out,
                   size_t outsz);

/** Opens a user's sealed TOTP secret (u->totp_sealed) into out: 0 and *len; -1 it does not open (altered, another
 *  user's: no valid secret); -2 it cannot be opened now (token unavailable: nothing is checked or counted). */
typedef int (*oauth_totp_open_fn)(void *arg, const stor_user_t *u, uint8_t out[STOR_TOTP_MAX], size_t *len);
/** Give the opener of sealed TOTP secrets (csc-sam, before it serves); without one a sealed secret never
 *  verifies (a user whose secret is sealed cannot pass a TOTP check in that process). */
void oauth_set_totp_open(oauth_t *o, oauth_totp_open_fn fn, void *arg);

/**
 * Check otp for user at time now (unix seconds), without touching storage.
 * Only 6-digit SHA-1 codes with a 30 s step (RFC 6238 defaults).
 * @param[in] window accepted steps either side of now (0 = the current step only), at most 10
 * @param[out] step the matched time step; the caller rejects steps it accepted before
 * @return OAUTH_OK, OAUTH_ERR_DENIED (wrong, or not exactly 6 ASCII digits),
 *         OAUTH_ERR_INVAL (NULL secret/step, secret length 0 or > STOR_TOTP_MAX, now < 0, window > 10),
 *         OAUTH_ERR_INTERNAL (liboath failed to initialise)
 */
int oauth_totp_check(const uint8_t *secret, size_t len, const char *otp, size_t otp_len, int64_t now,
                     unsigned window, int64_t *step);

/* ---- base64 (oauth_b64.c: the one implementation, csc-api and admin use it too) ---- */

#define OAUTH_B64_STD 0 /**< standard alphabet, padded; decoding also takes the URL-safe one (not mixed), padding optional */
#define OAUTH_B64_URL 1 /**< base64url without padding, only */

/** Base64 of in[0..len) into out, which holds 4 * ceil(len / 3) + 1 bytes; NUL-terminated.
 *  @return the number of characters written */
size_t oauth_b64_encode(const uint8_t *in, size_t len, char *out, int how);
/** Strict decode (no whitespace, no non-zero trailing bits, padding correct if present) into out (outsz bytes).
 *  @return the decoded length (0 for len 0), or -1 */
long oauth_b64_decode(const char *in, size_t len, uint8_t *out, size_t outsz, int how);

/* ---- bearer tokens ------------------------------------------------------ */

/** Buffer size for a token or SAD value (base64url of 32 random bytes + NUL). */
#define OAUTH_TOKEN_BUFLEN 48

typedef struct oauth_tokens {
    char access[OAUTH_TOKEN_BUFLEN];
    char refresh[OAUTH_TOKEN_BUFLEN];   /**< "" when none was issued */
    unsigned expires_in;
} oauth_tokens_t;

/** Who a bearer token speaks for. */
typedef struct oauth_principal {
    char user[STOR_NAME_MAX + 1];       /**< "" for client_credentials tokens */
    char client[STOR_NAME_MAX + 1];     /**< OAuth client, "" for auth/login tokens */
    char cred[STOR_NAME_MAX + 1];       /**< scope CREDENTIAL: the only credential the token serves */
    uint32_t scope;                     /**< stor_scope_t */
    uint8_t grant[16];
    uint8_t ref[16];                    /**< audit reference of the token (not the value) */
    int64_t expires_at;
} oauth_principal_t;

/**
 * auth/login with a password. On success issues an access token, and a refresh
 * token if remember is set. Failures count towards the user's lockout. Audited
 * (STOR_EV_LOGIN) with client.
 * @return OAUTH_OK, OAUTH_ERR_DENIED (unknown user, wrong password, locked or suspended user: one answer,
 *         after the same scrypt work; the audit record says which), OAUTH_ERR_STORAGE,
 *         OAUTH_ERR_INVAL (NULL o/user/out), OAUTH_ERR_BUSY (no scrypt slot: nothing checked, counted or
 *         audited)
 * @note Every answer but OAUTH_ERR_INVAL/STORAGE is audited, denials included (repeated failures of one
 *       address and name within fail_window share a record with a count). A locked user is refused even
 *       with the right password; each lock lasts twice as long as the one before (up to lock_max_seconds)
 *       until a login succeeds.
 */
int oauth_login(oauth_t *o, const char *user, const char *pw, size_t pw_len, int remember, const char *client,
                oauth_tokens_t *out);

/**
 * auth/login with a refresh token: a new access token of the same grant.
 * A refresh token issued to an OAuth client is INVALID here (it rotates at the token endpoint).
 * @return OAUTH_OK, OAUTH_ERR_INVALID (unknown/revoked/not a refresh token, malformed, user gone),
 *         OAUTH_ERR_EXPIRED, OAUTH_ERR_DISABLED (user no longer active), OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL
 */
int oauth_login_refresh(oauth_t *o, const char *refresh, size_t len, const char *client, oauth_tokens_t *out);

/**
 * Validate a bearer access token.
 * @return OAUTH_OK, OAUTH_ERR_INVALID (unknown, malformed, revoked, a refresh token, user gone),
 *         OAUTH_ERR_EXPIRED, OAUTH_ERR_DISABLED (user no longer active), OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL
 * @note One read transaction, no write: not audited.
 * @note A token of an OAuth client is INVALID once the client is removed (or registered anew after the
 *       token was issued). client_credentials tokens have user "": no user is checked.
 */
int oauth_token_check(oauth_t *o, const char *token, size_t len, oauth_principal_t *out);
/**
 * oauth_token_check in a transaction the caller runs, so that the token's reads share it with the caller's own
 * (csc-sam's SIGN reads the token, its user and the credential in one read txn: one round trip on PostgreSQL).
 * user_hint (NULL: none): the user the caller expects the token to belong to; with it, the token's row and that
 * user's are read ahead together (stor_txn_*_prefetch). Only what is read ahead: the token's own user is the one
 * checked, and a wrong hint costs a read. Without one, both checks use the user found for the same token's hash the
 * last time, if this oauth_t still keeps it (oauth_hint.c: a token used for many requests costs one round trip). Returns as oauth_token_check; a failure of t is OAUTH_ERR_STORAGE or
 * OAUTH_ERR_UNAVAILABLE (oauth_rc).
 */
int oauth_token_check_txn(oauth_t *o, stor_txn_t *t, const char *token, size_t len, const char *user_hint,
                          oauth_principal_t *out);
/** Map a stor_write()/stor_read() result: oauth/'s own codes pass, STOR_ERR_UNAVAILABLE becomes
 *  OAUTH_ERR_UNAVAILABLE and every other storage code OAUTH_ERR_STORAGE. */
int oauth_rc(int rc);

typedef enum { OAUTH_HINT_NONE = 0, OAUTH_HINT_ACCESS = 1, OAUTH_HINT_REFRESH = 2 } oauth_hint_t;

/**
 * Revoke one of who's tokens. A refresh token takes every token of its grant
 * along; an access token only itself (a credential token also its SAD). Audited.
 * who is a user's principal (its user's tokens) or, with user "", a client_credentials principal (that
 * client's own user-less tokens).
 * The hint is checked for range only: one table holds both kinds, so a wrong
 * hint still finds the token (RFC 7009 2.1). Revoking a revoked token is OK.
 * @return OAUTH_OK, OAUTH_ERR_INVALID (unknown, malformed, or another user's: same answer),
 *         OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL (NULL o/who, hint out of range)
 */
int oauth_token_revoke(oauth_t *o, const oauth_principal_t *who, const char *token, size_t len, oauth_hint_t hint,
                       const char *client);

/* ---- credential authorization and SADs ---------------------------------- */

typedef struct oauth_factors {
    const char *pin;    /**< NULL if not supplied */
    size_t pin_len;
    const char *otp;
    size_t otp_len;
    const char *challenge;  /**< the one-time code of the CHALLENGE object (oauth_challenge_new), NULL if none */
    size_t challenge_len;
} oauth_factors_t;

typedef struct oauth_sad_request {
    const char *user;
    const char *cred;              /**< credential id */
    uint32_t num_signatures;       /**< 1..multisign (checked by the caller) */
    const char *hash_alg;          /**< OID of the digests, NULL if none */
    const uint8_t *const *digests; /**< n_digests digests of digest_len bytes */
    size_t digest_len;
    size_t n_digests;
    const char *client;            /**< for the audit record */
    const char *owner;             /**< extendTransaction: the credential's owner when user is a delegate (audited
                                        "on behalf of"); NULL or "" otherwise */
    const char *request_id;        /**< the HTTP request's id, for the audit record's detail (request_id=); NULL or
                                        "" = none */
} oauth_sad_request_t;

/**
 * credentials/authorize: verify the factors the credential's auth expression
 * asks for (PIN against the credential's verifier, OTP against the user's TOTP
 * secret, once per time step), count failures towards the credential's lock,
 * and on success issue a SAD. One transaction; audited (STOR_EV_AUTHORIZE).
 * Expression: operators AND, XOR, OR (binding in that order, tightest first)
 * and parentheses over "PIN" and "OTP"; empty = every object the credential
 * has (none: refused); other ids are never satisfied; malformed = refused.
 * A supplied factor that is wrong is a failure even if the expression did not
 * need it; a factor supplied for an object the credential lacks is ignored.
 * @param[in] f factors; NULL = none
 * @param[out] sad the SAD value (OAUTH_TOKEN_BUFLEN)
 * @param[out] expires_in its lifetime in seconds
 * @return OAUTH_OK, OAUTH_ERR_DENIED, OAUTH_ERR_LOCKED, OAUTH_ERR_INVALID (unknown
 *         credential or not the user's), OAUTH_ERR_DISABLED (user not active or
 *         credential disabled), OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL (bad request:
 *         num_signatures 0, n_digests > STOR_DIGESTS_MAX, digest_len 0 or >
 *         STOR_DIGEST_LEN_MAX, digests without hash_alg, over-long names),
 *         OAUTH_ERR_BUSY (no scrypt slot for the PIN: nothing checked, counted or audited)
 */
int oauth_authorize(oauth_t *o, const oauth_sad_request_t *req, const oauth_factors_t *f, char sad[OAUTH_TOKEN_BUFLEN],
                    unsigned *expires_in);

/**
 * credentials/extendTransaction: replace an unexpired SAD that still has budget
 * with a new one (same user and credential, a fresh sad_ttl) that renews it for
 * digests already bound to it and not yet signed under it, never for new ones.
 * The new SAD binds req's digests (each must be bound to the old SAD and
 * unsigned) or, when req has none, every bound digest not yet signed; its
 * budget is the old remaining budget, at most one signature per digest bound.
 * A SAD bound to no digests stays unbound, or is narrowed to req's digests. The
 * old SAD stops working in the same transaction. req->num_signatures is
 * ignored. Audited (STOR_EV_AUTHORIZE, detail "extendTransaction").
 * @return OAUTH_OK, OAUTH_ERR_INVALID (unknown or malformed), OAUTH_ERR_EXPIRED, OAUTH_ERR_MISMATCH,
 *         OAUTH_ERR_EXHAUSTED (no budget left, or every bound digest signed), OAUTH_ERR_NOT_AUTHORIZED (a digest
 *         not bound to the SAD, another hash algorithm, or a digest already signed), OAUTH_ERR_INVAL,
 *         OAUTH_ERR_STORAGE
 */
int oauth_sad_extend(oauth_t *o, const char *old, size_t len, const oauth_sad_request_t *req,
                     char sad[OAUTH_TOKEN_BUFLEN], unsigned *expires_in);

/** What a signing request asks of a SAD. */
typedef struct oauth_sign_use {
    const char *user;
    const char *cred;
    const char *hash_alg;          /**< OID of the digests */
    const uint8_t *const *digests;
    size_t digest_len;
    size_t n_digests;
    const char *client;
    const char *detail;            /**< e.g. the signAlgo OID, for the audit record */
    const char *owner;             /**< the credential's owner when user signs as a delegate (audited "on behalf
                                        of"); NULL or "" otherwise */
} oauth_sign_use_t;

/**
 * signHash: spend n_digests signatures of a SAD, atomically, after checking
 * that it is the user's, for this credential, unexpired, with budget enough, and
 * that every digest (and the hash algorithm) is bound to it if it is bound to
 * digests. Writes the STOR_EV_SIGN decision record in the same transaction,
 * whatever the decision. A SAD whose budget reaches 0 stays stored (so a failed
 * signing can give the budget back) until it expires and is purged; it signs no more.
 * Checked in this order: known (INVALID), unexpired (EXPIRED), user and
 * credential (MISMATCH), budget (EXHAUSTED), digests and hash_alg (NOT_AUTHORIZED).
 * @param[out] ref audit reference of the SAD (for the result record)
 * @return OAUTH_OK, OAUTH_ERR_INVALID, OAUTH_ERR_EXPIRED, OAUTH_ERR_MISMATCH,
 *         OAUTH_ERR_EXHAUSTED, OAUTH_ERR_NOT_AUTHORIZED, OAUTH_ERR_STORAGE,
 *         OAUTH_ERR_INVAL (NULL, n_digests 0 or > STOR_DIGESTS_MAX, digest_len 0 or too long: not audited)
 */
int oauth_sad_consume(oauth_t *o, const char *sad, size_t len, const oauth_sign_use_t *use, uint8_t ref[16]);

/**
 * After an approved signing failed in the HSM: give the n_digests signatures
 * back to the SAD (if it has not expired and been purged) and write a
 * STOR_EV_SIGN_RESULT record with STOR_RES_ERROR and reason. A successful signing needs no second record: the decision record
 * written by oauth_sad_consume() stands for it. Call it once per approved
 * oauth_sad_consume(); a use of another user or credential gives nothing back.
 * @return OAUTH_OK (record written), OAUTH_ERR_INVALID (malformed SAD value),
 *         OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL
 */
int oauth_sign_failed(oauth_t *o, const char *sad, size_t len, const oauth_sign_use_t *use, const uint8_t ref[16],
                      const char *reason);

/* ---- one-time codes for the CHALLENGE object (credentials/getChallenge, v1 sendOTP) ------------ */

/** Object id of the out-of-band one-time code in auth expressions ("PIN AND CHALLENGE"). */
#define OAUTH_CHALLENGE_ID "CHALLENGE"
/** Digits of a one-time code. */
#define OAUTH_CHALLENGE_DIGITS 6
/** Pending codes kept at most (one per user and credential; a new one replaces the old): once this many unexpired
 *  ones are stored, a code for another pair is refused (OAUTH_ERR_FULL). */
#define OAUTH_CHALLENGES_MAX 4096
/** Bytes of the key the pending codes are MACed under (oauth_set_challenge_key). */
#define OAUTH_CHALLENGE_KEY_LEN 32
/** Seconds before a pending, unexpired code may be replaced by a new one (each costs a message). */
#define OAUTH_CHALLENGE_RESEND 30

/**
 * 1 if the auth expression names the object id (a whole word: "PIN AND CHALLENGE" names CHALLENGE and PIN).
 */
int oauth_expr_names(const char *expr, const char *id);

/**
 * 1 if one factor alone (the PIN, the TOTP code, or an out-of-band code) satisfies the auth expression, or the
 * expression is empty or malformed; 0 if it always takes two or more. APPROVAL counts as two: the approval page signs
 * the user in with password and TOTP code. Production refuses single-factor credentials (allow_single_factor).
 */
int oauth_expr_single_factor(const char *expr);

/**
 * The key the pending codes are MACed under in storage: csc-sam derives it from the HSM's factor key at start-up
 * (sam_factor_start), the same on every node, before its threads start; NULL forgets it. Without a key no code is made
 * (oauth_challenge_new: OAUTH_ERR_INTERNAL) nor accepted.
 */
void oauth_set_challenge_key(oauth_t *o, const uint8_t key[OAUTH_CHALLENGE_KEY_LEN]);

/**
 * credentials/getChallenge: make a fresh random one-time code for user's credential cred, whose auth
 * expression must name OAUTH_CHALLENGE_ID. Only its keyed hash is kept (in storage's challenges table, challenge_ttl seconds,
 * bound to user and credential, one per pair: a new code replaces the pending one). The code is handed back
 * for out-of-band delivery only. Audited (STOR_EV_CHALLENGE, never the code), refusals included.
 * @param[out] code OAUTH_CHALLENGE_DIGITS digits + NUL; the caller delivers and wipes it
 * @param[out] ttl seconds the code stays valid
 * @return OAUTH_OK, OAUTH_ERR_INVALID (unknown credential or another user's, or its expression has no
 *         CHALLENGE: same answer), OAUTH_ERR_LOCKED, OAUTH_ERR_DISABLED (user or credential), OAUTH_ERR_FULL,
 *         OAUTH_ERR_RATE (the pending code is younger than OAUTH_CHALLENGE_RESEND s and unexpired),
 *         OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL
 */
int oauth_challenge_new(oauth_t *o, const char *user, const char *cred, const char *client,
                        char code[OAUTH_CHALLENGE_DIGITS + 1], unsigned *ttl);
/**
 * The delivery of a code failed: forget it and record the failure (STOR_EV_CHALLENGE, STOR_RES_ERROR, reason).
 * @return OAUTH_OK, OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL
 */
int oauth_challenge_cancel(oauth_t *o, const char *user, const char *cred, const char *client, const char *reason);

/* ---- approval outside the client (authorize 202 + handle, credentials/authorizeCheck) ------------------- */

/** Object id of the user's approval on the service's own page ("APPROVAL", "PIN AND APPROVAL"). */
#define OAUTH_APPROVAL_ID "APPROVAL"
/** Pending approvals kept at most (in storage, all users together). */
#define OAUTH_APPROVALS_MAX 1024
/** The pseudo-client of the approval page's browser sessions (csc-api/web/web_approve.c): csc-sam decides an
 *  approval only in a session of this client. */
#define OAUTH_APPROVAL_PAGE_CLIENT "approval-page"
/** Not an error: the approval is still pending (authorizeCheck answers 202). */
#define OAUTH_PENDING 1

/**
 * credentials/authorize for a credential whose expression names OAUTH_APPROVAL_ID: keep the request (user,
 * credential, numSignatures, digests) pending under a fresh random handle (in storage under the handle's SHA-256,
 * approval_ttl seconds; csc-sam's). The user approves or refuses it on the service's page (oauth_approval_decide).
 * @return OAUTH_OK, OAUTH_ERR_INVALID (unknown / another user's credential, or no APPROVAL object),
 *         OAUTH_ERR_LOCKED, OAUTH_ERR_DISABLED, OAUTH_ERR_FULL, OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL
 */
int oauth_approval_new(oauth_t *o, const oauth_sad_request_t *req, char handle[OAUTH_TOKEN_BUFLEN], unsigned *ttl);

/** A pending request as shown on the approval page. */
typedef struct oauth_approval_view {
    uint8_t ref[16];                /**< names the request on the page (not the handle) */
    char cred[STOR_NAME_MAX + 1];
    char client[64];
    uint32_t num_signatures;
    char hash_alg[STOR_OID_MAX + 1];
    uint32_t digest_len, n_digests;
    const uint8_t *digests;         /**< valid during the callback only */
    int64_t created, expires;
    int needs_pin;                  /**< the credential's expression names PIN: ask for it on the page */
} oauth_approval_view_t;

/** Call fn for each pending, unexpired request of user (read from storage, in one read transaction: fn must be
 *  short). Read-only: what csc-server's page may call. @return the count (0 also when storage fails) */
size_t oauth_approval_each(oauth_t *o, const char *user, void (*fn)(const oauth_approval_view_t *v, void *arg),
                           void *arg);

/**
 * The logged-in user decides request ref. Approval checks the credential's PIN if its expression names PIN
 * (a wrong PIN counts towards the credential's lock and is audited as credentials/authorize's, the request stays
 * pending) and the credential's state, then records the decision in the request (no SAD yet: authorizeCheck
 * issues it). Both decisions are audited (STOR_EV_APPROVAL). A request yields one decision (one storage write
 * re-reads it), across processes.
 * @return OAUTH_OK, OAUTH_ERR_INVALID (no such pending request of user), OAUTH_ERR_DENIED (wrong PIN),
 *         OAUTH_ERR_LOCKED / OAUTH_ERR_DISABLED (the request is then refused), OAUTH_ERR_STORAGE
 */
int oauth_approval_decide(oauth_t *o, const char *user, const uint8_t ref[16], int approve, const char *pin,
                          size_t pin_len, const char *client);

/**
 * credentials/authorizeCheck: the outcome of handle for user. An approved request gets its SAD now, issued as
 * credentials/authorize would (audited STOR_EV_AUTHORIZE; refused if the user was reset or the credential is no
 * longer usable since). A final answer (SAD, refusal, lock, expiry) is given once: the request is removed in the
 * same write.
 * @return OAUTH_OK (sad, expires_in filled), OAUTH_PENDING, OAUTH_ERR_DENIED (refused), OAUTH_ERR_LOCKED,
 *         OAUTH_ERR_EXPIRED, OAUTH_ERR_INVALID (unknown, malformed, another user's)
 */
int oauth_approval_check(oauth_t *o, const char *user, const char *handle, size_t len, char sad[OAUTH_TOKEN_BUFLEN],
                         unsigned *expires_in);

/* ---- OAuth 2.0 authorization server (CSC API v2.0.0.2 sec. 8.4, RFC 6749/7636/9126/7009) */

/**
 * Register a client. c->id, name, redirects, scopes and grants come from the
 * operator; a fresh 256-bit secret is generated, returned once in secret
 * (base64url) and stored only as its SHA-256. Audited (STOR_EV_ADMIN).
 * @return OAUTH_OK, OAUTH_ERR_INVAL (bad id or redirect URI: must be absolute https, or http on
 *         localhost/127.0.0.1, without fragment), OAUTH_ERR_DENIED (id exists)
 * @note Also OAUTH_ERR_INVAL: id not 1..STOR_NAME_MAX printable ASCII without spaces; name unterminated;
 *       n_redirects > STOR_REDIRECTS_MAX, or 0 with the authorization_code grant; grants or scopes empty or
 *       with unknown bits ("http on localhost" also admits [::1]; ports 1..65535; no userinfo).
 *       c->secret_hash and c->created_at are ignored. operator_name NULL is recorded as "-".
 */
int oauth_client_add(oauth_t *o, const stor_client_t *c, const char *operator_name, char secret[OAUTH_TOKEN_BUFLEN]);
/** Remove a client; tokens issued to it stop working (oauth_token_check, refresh). Audited (STOR_EV_ADMIN).
 *  @return OAUTH_OK, OAUTH_ERR_INVALID (no such client), OAUTH_ERR_INVAL (bad id), OAUTH_ERR_STORAGE */
int oauth_client_remove(oauth_t *o, const char *id, const char *operator_name);
/** @return OAUTH_OK, OAUTH_ERR_INVALID (no such client), OAUTH_ERR_INVAL (NULL, bad id), OAUTH_ERR_STORAGE */
int oauth_client_get(oauth_t *o, const char *id, stor_client_t *out);
/** Authenticate a client by id and secret (constant-time). @return OAUTH_OK or OAUTH_ERR_DENIED
 *  (also OAUTH_ERR_INVAL for NULL o/out or NULL secret with len > 0, OAUTH_ERR_STORAGE if storage failed;
 *  out is zeroed unless OAUTH_OK) */
int oauth_client_auth(oauth_t *o, const char *id, const char *secret, size_t len, stor_client_t *out);

#define OAUTH_STATE_MAX 512
#define OAUTH_LANG_MAX 16
#define OAUTH_DESC_MAX 500

/** A validated authorization request (what /oauth2/authorize or PAR received). */
typedef struct oauth_authz_request {
    char client_id[STOR_NAME_MAX + 1];
    char redirect_uri[STOR_URI_MAX + 1];  /**< resolved: the registered URI used */
    uint32_t redirect_given;              /**< redirect_uri was a parameter */
    char state[OAUTH_STATE_MAX + 1];
    uint8_t challenge[32];                /**< decoded S256 code_challenge */
    uint32_t scope;                       /**< STOR_SCOPE_SERVICE or STOR_SCOPE_CREDENTIAL */
    char cred[STOR_NAME_MAX + 1];         /**< credential scope: credentialID ("" = let the user choose) */
    char signature_qualifier[64];
    uint32_t num_signatures;
    char hash_alg[STOR_OID_MAX + 1];
    uint32_t digest_len;
    uint32_t n_digests;
    uint8_t digests[STOR_DIGESTS_MAX][STOR_DIGEST_LEN_MAX];
    char labels[16][128];                 /**< RAR documentDigests[].label of the first 16 digests */
    char description[OAUTH_DESC_MAX + 1];
    char authz_details[STOR_AUTHZ_DETAILS_MAX + 1]; /**< the RAR JSON as received ("" if scope= was used) */
    char lang[OAUTH_LANG_MAX + 1];
} oauth_authz_request_t;

/** An upper bound of oauth_req_encode's output for any request. */
#define OAUTH_REQ_ENC_MAX (sizeof(oauth_authz_request_t) + 64)

/**
 * An authorization request as bytes, field by field (oauth_req_codec.c documents the layout): how a browser session
 * keeps it in storage and how the pages' sign-in hands it to csc-sam (LOGIN).
 * @param buf NULL to only count the bytes (cap is then ignored)
 * @param[out] len the bytes written (or needed)
 * @return OAUTH_OK, OAUTH_ERR_INVAL (NULL, a request oauth_req_ok refuses, cap too small)
 */
int oauth_req_encode(const oauth_authz_request_t *req, uint8_t *buf, size_t cap, size_t *len);
/**
 * The strict decoder: every length within its field, no NUL in a string, counts within their limits, no byte short
 * or left over, and the result checked as oauth_req_encode checks its input.
 * @return OAUTH_OK, OAUTH_ERR_INVAL (out wiped)
 */
int oauth_req_decode(const uint8_t *buf, size_t len, oauth_authz_request_t *out);

/**
 * PAR: keep a validated request for par_ttl seconds under a single-use
 * request_uri ("urn:ietf:params:oauth:request_uri:" + random), in storage (the pars table: any node can use it, a
 * restart keeps it; only the SHA-256 of the request_uri's random part is stored).
 * @return OAUTH_OK, OAUTH_ERR_FULL (OAUTH_PARS_MAX pending even after purging the expired ones; across nodes the cap
 *         is approximate), OAUTH_ERR_UNAVAILABLE (the database out of reach), OAUTH_ERR_STORAGE
 *         (OAUTH_ERR_INVAL: NULL, client_id not a valid id, a string unterminated, n_digests >
 *         STOR_DIGESTS_MAX, digest_len > STOR_DIGEST_LEN_MAX, scope neither SERVICE nor CREDENTIAL)
 */
int oauth_par_put(oauth_t *o, const oauth_authz_request_t *req, char request_uri[128], unsigned *expires_in);
/** Take (and forget) a pushed request; it must belong to client_id and be unexpired. Read and deleted in one
 *  storage write: used once across every node.
 *  @return OAUTH_OK, OAUTH_ERR_INVALID, OAUTH_ERR_UNAVAILABLE, OAUTH_ERR_STORAGE (OAUTH_ERR_INVAL for NULL arguments)
 *  @note Another client's attempt does not use the request up. */
int oauth_par_take(oauth_t *o, const char *client_id, const char *request_uri, oauth_authz_request_t *out);

/** Take a look at a pushed request without using it up (it must belong to client_id and be unexpired).
 *  @return OAUTH_OK, OAUTH_ERR_INVALID, OAUTH_ERR_UNAVAILABLE, OAUTH_ERR_STORAGE (OAUTH_ERR_INVAL for NULL
 *  arguments) */
int oauth_par_peek(oauth_t *o, const char *client_id, const char *request_uri, oauth_authz_request_t *out);

/* ---- the sign-in pages before the password: signed tickets, no server state (oauth_ticket.c) ---- */

/** Longest ticket cookie value (with its NUL). */
#define OAUTH_TICKET_COOKIE_LEN 128
/** Largest pending request a ticket's form token carries (bytes before encoding). */
#define OAUTH_TICKET_PAYLOAD_MAX (128 * 1024)
/** Longest form token: base64url of the payload, '.', expiry, '.', MAC. */
#define OAUTH_TICKET_FORM_MAX ((OAUTH_TICKET_PAYLOAD_MAX + 2) / 3 * 4 + 1 + 19 + 1 + 43)

/** Bytes of the key the sign-in pages' tickets and form tokens are MACed under (oauth_ticket_set_key). */
#define OAUTH_TICKET_KEY_LEN 32

/**
 * The key the sign-in pages' tickets and form tokens are MACed under, in place of the random one oauth_new() draws
 * (which serves alone: a restart, or another node, refuses what this process issued). csc-server sets the key
 * csc-sam derives from the HSM's factor key and gives in its HELLO reply, the same on every node of that HSM and
 * after a restart. Call it before the pages are served (not while another thread makes or checks a ticket).
 * @return OAUTH_OK, OAUTH_ERR_INVAL (NULL, or len other than OAUTH_TICKET_KEY_LEN: the key is left as it was)
 */
int oauth_ticket_set_key(oauth_t *o, const uint8_t *key, size_t len);
/**
 * A ticket for a visitor who has not signed in yet, for a cookie: a random nonce and the time, MACed
 * (HMAC-SHA-256) under the ticket key (oauth_ticket_set_key's, else a random one of this process). Nothing is kept
 * on the server.
 * @param[in] purpose names the page ("oauth", "approve"): a ticket serves only its own page
 * @return OAUTH_OK, OAUTH_ERR_INVAL, OAUTH_ERR_INTERNAL
 */
int oauth_ticket_new(oauth_t *o, const char *purpose, char cookie[OAUTH_TICKET_COOKIE_LEN]);
/**
 * The form token (the CSRF token of the page's forms) bound to cookie, carrying payload (the pending
 * request, at most OAUTH_TICKET_PAYLOAD_MAX bytes): valid session_idle seconds from now, never past the
 * ticket's creation + session_max.
 * @param[out] out malloc'd, NUL-terminated; the caller frees it
 * @return OAUTH_OK, OAUTH_ERR_INVALID (cookie not a ticket of ours), OAUTH_ERR_EXPIRED (past session_max),
 *         OAUTH_ERR_INVAL (payload too large, NULL), OAUTH_ERR_INTERNAL
 */
int oauth_ticket_form(oauth_t *o, const char *purpose, const char *cookie, const char *payload, size_t len,
                      char **out);
/**
 * Check a posted form token against the ticket cookie (MACs compared in constant time) and the clock.
 * @param[out] payload the payload (malloc'd, NUL-terminated; the caller frees it), *len its length
 * @return OAUTH_OK, OAUTH_ERR_INVALID (forged, altered, another cookie's or another page's),
 *         OAUTH_ERR_EXPIRED, OAUTH_ERR_INVAL, OAUTH_ERR_INTERNAL
 */
int oauth_ticket_check(oauth_t *o, const char *purpose, const char *cookie, const char *form, char **payload,
                       size_t *len);

/** A browser session, bound to one authorization request and signed in as its user. */
typedef struct oauth_session_view {
    oauth_authz_request_t req;
    char csrf[OAUTH_TOKEN_BUFLEN];        /**< the session's anti-CSRF token, for the forms */
    char user[STOR_NAME_MAX + 1];         /**< the user who signed in (sessions start only with the login) */
} oauth_session_view_t;

/** Look a session up and refresh its idle timer. @return OAUTH_OK, OAUTH_ERR_INVALID, OAUTH_ERR_EXPIRED
 *  @note A session whose user an operator reset since it was signed in (password, TOTP, suspension: the
 *        user's epoch moved) or that is no longer active ends here: OAUTH_ERR_INVALID. Also OAUTH_ERR_INVAL
 *        (NULL o/out), OAUTH_ERR_STORAGE. Compare a form's CSRF token with the view's csrf using CRYPTO_memcmp. */
int oauth_session_get(oauth_t *o, const char *sid, oauth_session_view_t *out);
/**
 * The login of a visitor without a session (the pages keep none before the password: oauth_ticket_*) with
 * password and TOTP (each code once), for req's client (a validated request). Failures count towards the
 * user's lock and towards the client address's rate limit. Audited (STOR_EV_LOGIN, client = OAuth client id
 * and address). Only after the login succeeded is a browser session started, for req and signed in as user:
 * kept in storage (so that csc-sam sees it: the consent and approval decisions are its), bounded count, idle and absolute timeouts from the configuration, a new id every time.
 * @param[out] sid, csrf the new session's id for the cookie (base64url, 43 characters) and its anti-CSRF
 *             token; "" unless OAUTH_OK
 * @return OAUTH_OK, OAUTH_ERR_DENIED (any wrong or unknown value, a locked user), OAUTH_ERR_RATE,
 *         OAUTH_ERR_FULL (too many sessions: the login was right, no session started), OAUTH_ERR_INTERNAL
 * @note A suspended or locked user, or one without a TOTP secret, is DENIED too (as oauth_login()). DENIED counts
 *       on addr (NULL = one address of its own); RATE is checked first and nothing is read or written then.
 *       Also OAUTH_ERR_INVAL (NULL o/user/sid/csrf, NULL pw/otp with a length, req not valid as for
 *       oauth_par_put: nothing checked or counted), OAUTH_ERR_STORAGE, and OAUTH_ERR_BUSY (no scrypt slot:
 *       nothing checked or counted). No failure starts a session.
 */
int oauth_session_login_new(oauth_t *o, const oauth_authz_request_t *req, const char *user, const char *pw,
                            size_t pw_len, const char *otp, size_t otp_len, const char *addr,
                            char sid[OAUTH_TOKEN_BUFLEN], char csrf[OAUTH_TOKEN_BUFLEN]);
/**
 * The logged-in user approved (approve != 0) or denied the request. On
 * approval, issue the authorization code (code_ttl, single use, bound to
 * client, redirect URI, PKCE challenge, user, scope and, for the credential
 * scope, a pending SAD: credential, num_signatures <= multisign, digests). For
 * the credential scope the credential must be the user's and enabled, and a
 * credential with a PIN needs pin. The session ends either way. Audited.
 * @param[out] code the code (base64url), only on approval
 * @return OAUTH_OK, OAUTH_ERR_DENIED (wrong PIN), OAUTH_ERR_LOCKED, OAUTH_ERR_INVALID (session, or a
 *         credential that is not the user's), OAUTH_ERR_DISABLED (credential disabled), OAUTH_ERR_INVAL
 *         (num_signatures above multisign), OAUTH_ERR_BUSY (no scrypt slot for the PIN: the session stays)
 * @note A denial returns OAUTH_OK with code "". The credential scope needs a credentialID (cred "" is
 *       OAUTH_ERR_INVALID); num_signatures 0, or digests without hash_alg, is OAUTH_ERR_INVAL; a user no
 *       longer active is OAUTH_ERR_DISABLED; a session without a user (none starts so), OAUTH_ERR_INVALID.
 *       "Either way": the session ends on every decision except OAUTH_ERR_DENIED (the user may retype the
 *       PIN; the failure counted on the credential's lock) and OAUTH_ERR_STORAGE/INTERNAL (nothing written).
 *       One session yields one decision even if posted twice at once.
 */
int oauth_session_decide(oauth_t *o, const char *sid, int approve, const char *pin, size_t pin_len, const char *addr,
                         char code[OAUTH_TOKEN_BUFLEN]);
void oauth_session_end(oauth_t *o, const char *sid);
/**
 * signatureQualifier flow: once the user is logged in, the authorization
 * server picks the credential; record it (and the authorization_details to echo,
 * now naming it) in the session's request. Only when the request named none.
 * @return OAUTH_OK, OAUTH_ERR_INVALID/EXPIRED (session), OAUTH_ERR_INVAL (a credential is already named;
 *         also a session without a user, which none is)
 */
int oauth_session_set_credential(oauth_t *o, const char *sid, const char *cred, const char *authz_details);

/** Count a failed or suspicious request from addr. @return OAUTH_OK or OAUTH_ERR_RATE once over the limit
 *  @note Fixed window: rate_max failures within rate_window seconds of the first one put addr over the limit
 *        until that window ends. Addresses longer than 63 bytes are cut; NULL counts as "". The table is in
 *        memory and bounded (8192 addresses; when full, the oldest window is forgotten). */
int oauth_rate_hit(oauth_t *o, const char *addr);
/** @return OAUTH_ERR_RATE while addr is over the limit, else OAUTH_OK (no counting) */
int oauth_rate_check(oauth_t *o, const char *addr);

typedef struct oauth_token_response {
    char access[OAUTH_TOKEN_BUFLEN];
    char refresh[OAUTH_TOKEN_BUFLEN];     /**< "" if none */
    unsigned expires_in;
    uint32_t scope;                       /**< stor_scope_t */
    char cred[STOR_NAME_MAX + 1];         /**< credential scope: the credential */
    char authz_details[STOR_AUTHZ_DETAILS_MAX + 1]; /**< RAR echo with the chosen credentialID, "" if none */
} oauth_token_response_t;

/**
 * grant_type=authorization_code. The code must exist, be unexpired and unused,
 * belong to client, and its redirect_uri must equal redirect_uri when the
 * request had one (NULL = not sent); SHA-256(verifier) must equal the challenge
 * (43..128 unreserved characters, RFC 7636). A second exchange of a code
 * revokes everything issued for it (OAUTH_ERR_REUSED). Service scope: access
 * token (+ refresh token if the client may use refresh_token). Credential
 * scope: a credential token (credential_token_ttl) whose SAD is the pending
 * one, no refresh token. Audited.
 * @return OAUTH_OK, OAUTH_ERR_INVALID (unknown/expired/foreign code, redirect mismatch),
 *         OAUTH_ERR_PKCE, OAUTH_ERR_REUSED
 * @note Checked in this order: known, used (REUSED, whichever client presents it), unexpired, client,
 *       redirect_uri, client->grants has authorization_code, verifier (PKCE), user still active. Refusals
 *       other than REUSED leave the code usable. Also OAUTH_ERR_INVAL (NULL o/client/out), OAUTH_ERR_STORAGE.
 *       out->expires_in is access_ttl, or credential_token_ttl for the credential scope.
 */
int oauth_token_from_code(oauth_t *o, const stor_client_t *client, const char *code, const char *redirect_uri,
                          const char *verifier, oauth_token_response_t *out);
/**
 * grant_type=refresh_token with rotation: a new refresh token replaces the
 * presented one (marked rotated). Presenting a rotated one again revokes the
 * whole grant (OAUTH_ERR_REUSED). @return OAUTH_OK, OAUTH_ERR_INVALID, OAUTH_ERR_EXPIRED, OAUTH_ERR_REUSED
 * @note INVALID also for another client's token, a client without the refresh_token grant or no longer
 *       registered, a user no longer active. The new refresh token keeps the old one's expiry (rotation
 *       never extends a login). Also OAUTH_ERR_INVAL, OAUTH_ERR_STORAGE.
 */
int oauth_token_refresh(oauth_t *o, const stor_client_t *client, const char *refresh, size_t len,
                        oauth_token_response_t *out);
/** grant_type=client_credentials: a service token for the client itself (no user).
 *  @return OAUTH_OK, OAUTH_ERR_INVALID (client without the client_credentials grant, or no longer registered),
 *          OAUTH_ERR_INVAL, OAUTH_ERR_STORAGE */
int oauth_token_client_credentials(oauth_t *o, const stor_client_t *client, oauth_token_response_t *out);
/**
 * RFC 7009 revocation by a client: a token issued to another client, or
 * unknown, is answered OAUTH_OK too (and changes nothing). A refresh token
 * takes its grant along; a credential token its SAD.
 * @return OAUTH_OK (also for a malformed token), OAUTH_ERR_INVAL (NULL, hint out of range), OAUTH_ERR_STORAGE
 */
int oauth_token_revoke_by_client(oauth_t *o, const stor_client_t *client, const char *token, size_t len,
                                 oauth_hint_t hint);

#ifdef __cplusplus
}
#endif
#endif
