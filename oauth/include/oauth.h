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
};

const char *oauth_strerror(int rc);

typedef struct oauth oauth_t;

typedef struct oauth_config {
    stor_env_t *stor;
    unsigned access_ttl;      /**< access token lifetime, s; 0 = 3600 */
    unsigned refresh_ttl;     /**< refresh token lifetime, s; 0 = 30 days */
    unsigned sad_ttl;         /**< SAD lifetime, s; 0 = 300 */
    unsigned max_failures;    /**< consecutive failures before a lock; 0 = 5 */
    unsigned lock_seconds;    /**< lock duration; 0 = 900 */
    unsigned totp_window;     /**< accepted time steps either side; 0 = 1; at most 10 */
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
    char user[STOR_NAME_MAX + 1];
    uint32_t scope;                     /**< stor_scope_t */
    uint8_t grant[16];
    uint8_t ref[16];                    /**< audit reference of the token (not the value) */
    int64_t expires_at;
} oauth_principal_t;

/**
 * auth/login with a password. On success issues an access token, and a refresh
 * token if remember is set. Failures count towards the user's lockout. Audited
 * (STOR_EV_LOGIN) with client.
 * @return OAUTH_OK, OAUTH_ERR_DENIED (unknown user or wrong password: same answer),
 *         OAUTH_ERR_LOCKED, OAUTH_ERR_DISABLED, OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL (NULL o/user/out)
 * @note Every answer but OAUTH_ERR_INVAL/STORAGE is audited, denials included.
 *       A locked user is refused before the password is checked.
 */
int oauth_login(oauth_t *o, const char *user, const char *pw, size_t pw_len, int remember, const char *client,
                oauth_tokens_t *out);

/**
 * auth/login with a refresh token: a new access token of the same grant.
 * @return OAUTH_OK, OAUTH_ERR_INVALID (unknown/revoked/not a refresh token, malformed, user gone),
 *         OAUTH_ERR_EXPIRED, OAUTH_ERR_DISABLED (user no longer active), OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL
 */
int oauth_login_refresh(oauth_t *o, const char *refresh, size_t len, const char *client, oauth_tokens_t *out);

/**
 * Validate a bearer access token.
 * @return OAUTH_OK, OAUTH_ERR_INVALID (unknown, malformed, revoked, a refresh token, user gone),
 *         OAUTH_ERR_EXPIRED, OAUTH_ERR_DISABLED (user no longer active), OAUTH_ERR_STORAGE, OAUTH_ERR_INVAL
 * @note One read transaction, no write: not audited.
 */
int oauth_token_check(oauth_t *o, const char *token, size_t len, oauth_principal_t *out);

typedef enum { OAUTH_HINT_NONE = 0, OAUTH_HINT_ACCESS = 1, OAUTH_HINT_REFRESH = 2 } oauth_hint_t;

/**
 * Revoke one of who's tokens. A refresh token takes every token of its grant
 * along; an access token only itself. Audited.
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
 *         STOR_DIGEST_LEN_MAX, digests without hash_alg, over-long names)
 */
int oauth_authorize(oauth_t *o, const oauth_sad_request_t *req, const oauth_factors_t *f, char sad[OAUTH_TOKEN_BUFLEN],
                    unsigned *expires_in);

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

#ifdef __cplusplus
}
#endif
#endif
