/*
 * hsm.h - private-key operations through PKCS#11.
 *
 * The module talks raw PKCS#11 (dlopen + C_GetFunctionList, header from
 * p11-kit): it needs explicit key templates, native CKM_RSA_PKCS_PSS, lookup by
 * CKA_ID with cached handles and one session per concurrent operation, which
 * libp11 0.4.12 does not give (see hsm/README.md).
 *
 * Private keys are generated inside the token as CKA_SENSITIVE, non-extractable,
 * sign-only objects and never leave it, unless generated backup-able
 * (HSM_KEYGEN_BACKUP): then they leave it only wrapped under the token's trusted
 * backup key (hsm_backup_wrap, J8), never in clear. The user PIN of the token is kept only
 * inside hsm_t (locked, wiped on close) so that the module can log in again
 * after the token was lost and came back.
 *
 * Thread-safety: every function may be called from any thread concurrently.
 * Each signing call borrows one session from a pool (a session is never used by
 * two threads at once) and blocks while all sessions are busy.
 *
 * Recovery: when the token, the login or the sessions are lost, the call that
 * meets the loss returns HSM_ERR_UNAVAILABLE and the pool is rebuilt by the
 * next call (re-open sessions, find the token again by label, log in again,
 * re-initialise the library if needed), so service resumes by itself once the
 * token is back. With sequential calls exactly one call fails; with concurrent
 * calls at most hsm_sessions() do. See hsm/README.md.
 *
 * Fork: open the handle in the process that uses it (PKCS#11 state does not
 * survive fork()).
 */
#ifndef HSM_H
#define HSM_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    HSM_OK = 0,
    HSM_ERR_UNAVAILABLE = -1, /**< module, token or session lost; retry later (HTTP 503) */
    HSM_ERR_NOKEY = -2,       /**< no key with that id */
    HSM_ERR_MECH = -3,        /**< mechanism or parameters not supported by key or token */
    HSM_ERR_INVAL = -4,       /**< bad argument (digest length, buffer size, ...) */
    HSM_ERR_PIN = -5,         /**< token login refused */
    HSM_ERR_CONFIG = -6,      /**< module cannot be loaded, token label not found */
    HSM_ERR_INTERNAL = -7,    /**< any other PKCS#11 or OpenSSL failure */
    HSM_ERR_NOMEM = -8,
    HSM_ERR_DENIED = -9,      /**< the key may not leave the token (not extractable / not wrappable with that key) */
    HSM_ERR_BADSIG = -10,     /**< a signature or MAC did not verify */
};

/** @return a static description of an HSM_* code (also for unknown codes); never NULL. */
const char *hsm_strerror(int rc);

typedef struct hsm hsm_t;

typedef struct hsm_config {
    const char *module;       /**< path of the PKCS#11 module (.so) */
    const char *token_label;  /**< token to use, matched on its (blank-padded) label */
    const char *pin;          /**< user PIN; copied, the caller wipes its own copy */
    unsigned sessions;        /**< size of the session pool; 0 = 4 */
} hsm_config_t;

/**
 * Load the module, find the token, log in, open the session pool.
 * The module is initialised with CKF_OS_LOCKING_OK; if it was already
 * initialised in this process, the handle uses it but never finalizes it.
 * @param[in] cfg module, label (1..32 bytes), PIN (at most 256 bytes), pool size (at most 256)
 * @param[out] out the new handle; NULL on error
 * @return HSM_OK;
 *   HSM_ERR_INVAL (NULL argument, PIN or pool size too large);
 *   HSM_ERR_CONFIG (module not loadable or not PKCS#11, C_Initialize failed, no token or
 *   more than one token with that label);
 *   HSM_ERR_PIN (login refused: wrong or locked PIN);
 *   HSM_ERR_UNAVAILABLE, HSM_ERR_NOMEM, HSM_ERR_INTERNAL.
 * @note the PIN is copied into a locked page (if mlock is allowed) and wiped by hsm_close().
 * @note a module that talks to a network HSM (p11-kit-client.so) writes to its socket without MSG_NOSIGNAL: the
 *   process must ignore SIGPIPE (csc-sam does), or the HSM's death kills it instead of giving HSM_ERR_UNAVAILABLE.
 */
int hsm_open(const hsm_config_t *cfg, hsm_t **out);

/**
 * Close all sessions, finalize the module (only if this handle initialised it), wipe the PIN.
 * NULL is allowed. No other call on h may be running or follow.
 */
void hsm_close(hsm_t *h);

/**
 * The module's CK_INFO manufacturerID and libraryDescription (blank padding
 * removed), e.g. "SoftHSM" / "Implementation of PKCS11": lets the server refuse
 * a test module in production (J5, J13). The strings live as long as h.
 */
int hsm_module_info(const hsm_t *h, const char **manufacturer, const char **description);

/**
 * Our token's CK_TOKEN_INFO manufacturerID and model (blank padding removed), e.g. "SoftHSM project" / "SoftHSM v2":
 * the token behind a proxy module whose own CK_INFO names only the proxy (p11-kit-client.so: "PKCS#11 Kit"; J13).
 * As found when the token was last looked up; the strings live as long as h.
 */
int hsm_token_info(const hsm_t *h, const char **manufacturer, const char **model);

/** Number of sessions in the pool (the useful signing concurrency); 0 for NULL. */
unsigned hsm_sessions(const hsm_t *h);
/** How many times a caller found every session of the pool lent out and waited for one (since hsm_open): a pool
 *  too small for the load (pkcs11_sessions), or a token slow to answer. 0 for NULL. */
uint64_t hsm_session_waits(hsm_t *h);

/**
 * Is the token usable now: does a session of the pool see the application logged in (C_GetSessionInfo)? Borrows a
 * session like a signature does (waits while all are busy, rebuilds a broken pool and logs in again first).
 * csc-sam's health check (HELLO). Not logged in: the pool is marked broken, so the next call logs in again.
 * @return HSM_OK (logged in); HSM_ERR_UNAVAILABLE (not logged in, token or session lost); HSM_ERR_PIN (the login
 *   of a rebuilt pool was refused); HSM_ERR_INVAL (NULL); another HSM_* code of the module's answer
 */
int hsm_ready(hsm_t *h);

/* ---- keys -------------------------------------------------------------- */

typedef enum { HSM_KEY_RSA = 1, HSM_KEY_EC = 2 } hsm_key_type_t;

typedef struct hsm_keyspec {
    hsm_key_type_t type;
    unsigned bits;            /**< RSA modulus bits (2048, 3072, 4096) */
    int curve_nid;            /**< EC: NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1 */
} hsm_keyspec_t;

#define HSM_KEYID_LEN 16

/**
 * Generate a key pair inside the token: private key CKA_TOKEN, CKA_PRIVATE,
 * CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_SIGN only (no decrypt/unwrap/derive).
 * @param[in] spec RSA 2048/3072/4096 (exponent 65537) or EC P-256/P-384/P-521
 * @param[in] label CKA_LABEL of both objects (e.g. the credential id), at most 255 bytes
 * @param[out] id a fresh random CKA_ID, HSM_KEYID_LEN bytes; zeroed on error
 * @return HSM_OK; HSM_ERR_INVAL (unsupported spec, label too long, NULL argument);
 *   HSM_ERR_MECH (the token refuses the mechanism or size); HSM_ERR_UNAVAILABLE; HSM_ERR_INTERNAL ...
 */
int hsm_keygen(hsm_t *h, const hsm_keyspec_t *spec, const char *label, uint8_t id[HSM_KEYID_LEN]);

/** hsm_keygen_ex() flags. */
enum {
    HSM_KEYGEN_BACKUP = 1,   /**< private key CKA_EXTRACTABLE and CKA_WRAP_WITH_TRUSTED: it can leave the token only
                                  wrapped under a CKA_TRUSTED key (hsm_backup_wrap), never in clear (J8) */
    HSM_KEYGEN_FIXED_ID = 2, /**< use the HSM_KEYID_LEN bytes in id as CKA_ID instead of random ones */
};

/**
 * hsm_keygen() with flags (HSM_KEYGEN_*). With HSM_KEYGEN_FIXED_ID, id is input (unchanged on error);
 * otherwise it is output as for hsm_keygen().
 */
int hsm_keygen_ex(hsm_t *h, const hsm_keyspec_t *spec, const char *label, unsigned flags, uint8_t id[HSM_KEYID_LEN]);

/**
 * The public key of the pair with this CKA_ID, as an OpenSSL key.
 * @param[in] id CKA_ID, 1..64 bytes
 * @param[out] out an RSA or EC public key (caller frees with EVP_PKEY_free); NULL on error
 * @return HSM_OK; HSM_ERR_NOKEY; HSM_ERR_INVAL; HSM_ERR_MECH (key type or curve not supported);
 *   HSM_ERR_UNAVAILABLE; HSM_ERR_INTERNAL ...
 */
int hsm_pubkey(hsm_t *h, const uint8_t *id, size_t id_len, EVP_PKEY **out);

/**
 * Destroy both objects of the pair (C_DestroyObject on every private and public key with this CKA_ID)
 * and forget the cached handle.
 * @param[in] id CKA_ID, 1..64 bytes
 * @return HSM_OK; HSM_ERR_NOKEY (no such object); HSM_ERR_INVAL; HSM_ERR_UNAVAILABLE (nothing destroyed
 *   while logged out); HSM_ERR_INTERNAL ...
 */
int hsm_destroy(hsm_t *h, const uint8_t *id, size_t id_len);

/* ---- signing ----------------------------------------------------------- */

typedef enum {
    HSM_SIG_RSA_PKCS1 = 1, /**< EMSA-PKCS1-v1_5: hsm builds the DigestInfo for md */
    HSM_SIG_RSA_PSS = 2,   /**< CKM_RSA_PKCS_PSS over the digest */
    HSM_SIG_ECDSA = 3,     /**< CKM_ECDSA over the digest; the result is DER Ecdsa-Sig-Value */
} hsm_sig_scheme_t;

typedef struct hsm_sign_params {
    hsm_sig_scheme_t scheme;
    int md_nid;              /**< digest of the input: NID_sha256/384/512 (any scheme) */
    int mgf1_md_nid;         /**< PSS only */
    unsigned salt_len;       /**< PSS only */
} hsm_sign_params_t;

/** Largest signature hsm_sign() can produce (RSA-4096 or DER ECDSA P-521). */
#define HSM_SIG_MAX 1024

/**
 * Sign n digests (each dlen bytes, all of params->md_nid) with one key, in order,
 * on one session. sigs[i] receives signature i (up to HSM_SIG_MAX bytes) and
 * sig_lens[i] its length.
 * @param[in] key_id CKA_ID of the private key, 1..64 bytes (handle cached after the first use)
 * @param[in] params PKCS#1 v1.5 (DigestInfo added here), PSS (hash = md_nid, MGF1 with mgf1_md_nid,
 *   salt_len <= modulus bytes - dlen - 2) or ECDSA (DER output)
 * @param[in] digests n >= 1 digests of dlen bytes each
 * @param[out] sigs n buffers of HSM_SIG_MAX bytes
 * @param[out] sig_lens n lengths; all 0 on error
 * @return HSM_OK; HSM_ERR_INVAL (dlen does not match md_nid, unknown md/scheme/MGF1, salt too long,
 *   NULL argument, n == 0); HSM_ERR_NOKEY; HSM_ERR_MECH (scheme does not fit the key type, or the
 *   token refuses the parameters); HSM_ERR_UNAVAILABLE; HSM_ERR_INTERNAL ...
 *   On error no output is meaningful.
 * @note dlen must match md_nid: the token is not trusted to check it.
 */
int hsm_sign(hsm_t *h, const uint8_t *key_id, size_t key_id_len, const hsm_sign_params_t *params,
             const uint8_t *const *digests, size_t dlen, size_t n, uint8_t *const *sigs, size_t *sig_lens);

/* ---- backup and restore (J8) ------------------------------------------- */

#define HSM_BACKUP_TAG_LEN 32    /**< HMAC-SHA256 */
#define HSM_WRAPPED_MAX 8192     /**< largest wrapped private key (RSA-4096 PKCS#8 under AES key wrap is ~2.4 KB) */

/**
 * Create the backup keys if they are missing: the wrapping key (AES-256, CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE,
 * not extractable, CKA_WRAP/CKA_UNWRAP only, CKA_TRUSTED) and the integrity key (32-byte generic secret,
 * CKM_SHA256_HMAC sign/verify only, never extractable). CKA_TRUSTED needs the SO: this process logs out, logs in
 * as SO, creates the key, and logs in as the user again (see hsm/README.md).
 * @param[in] so_pin the token's SO PIN; needed only while the wrapping key is missing (NULL otherwise is fine)
 * @param[out] created bit 1: wrapping key created, bit 2: integrity key created (0: both existed)
 * @return HSM_OK; HSM_ERR_PIN (SO PIN refused); HSM_ERR_INVAL (SO PIN needed but NULL); HSM_ERR_MECH (the token
 *   lost CKA_TRUSTED on copy or lacks a mechanism); HSM_ERR_UNAVAILABLE ...
 * @note Call from an admin process, never concurrently with other calls on h (the login changes).
 */
int hsm_backup_init(hsm_t *h, const char *so_pin, int *created);

/**
 * Are both backup keys there? *trusted is 1 if the wrapping key has CKA_TRUSTED.
 * @return HSM_OK; HSM_ERR_NOKEY (hsm_backup_init not run); ...
 */
int hsm_backup_status(hsm_t *h, int *trusted);

/**
 * Wrap the private key with this CKA_ID under the backup key (CKM_AES_KEY_WRAP_PAD, RFC 5649, over PKCS#8).
 * @param[out] out at least 64 bytes; HSM_WRAPPED_MAX is always enough
 * @return HSM_OK; HSM_ERR_DENIED (the key is not extractable, or may only be wrapped by a trusted key and the
 *   backup key is not trusted); HSM_ERR_NOKEY (no such key, or no backup key); HSM_ERR_INVAL; ...
 */
int hsm_backup_wrap(hsm_t *h, const uint8_t *id, size_t id_len, uint8_t *out, size_t cap, size_t *out_len);

/**
 * Unwrap a private key made by hsm_backup_wrap() into the token under a fresh random CKA_ID (sensitive, sign
 * only; with HSM_KEYGEN_BACKUP in flags again extractable only under a trusted key, else never extractable),
 * create its public key object from pub, and check that the two match (a random digest signed in the token
 * verifies with pub). On any failure nothing stays in the token.
 * @return HSM_OK; HSM_ERR_BADSIG (the unwrapped key does not match pub); HSM_ERR_INVAL (wrapped bytes refused by
 *   the token, bad argument); HSM_ERR_MECH (pub is neither RSA nor EC); HSM_ERR_NOKEY (no backup key); ...
 */
int hsm_backup_unwrap(hsm_t *h, const uint8_t *wrapped, size_t len, EVP_PKEY *pub, const char *label,
                      unsigned flags, uint8_t id[HSM_KEYID_LEN]);

/** HMAC-SHA256 over data with the integrity key, in the token. @return HSM_OK; HSM_ERR_NOKEY; ... */
int hsm_backup_tag(hsm_t *h, const uint8_t *data, size_t len, uint8_t tag[HSM_BACKUP_TAG_LEN]);

/** Check a tag in the token (C_Verify). @return HSM_OK; HSM_ERR_BADSIG (tag does not match); HSM_ERR_NOKEY; ... */
int hsm_backup_tag_verify(hsm_t *h, const uint8_t *data, size_t len, const uint8_t tag[HSM_BACKUP_TAG_LEN]);

/* ---- the factor key (hsm_factor.c: csc-sam only) ---- */

#define HSM_SEAL_NONCE_LEN 12    /**< AES-GCM nonce, random per seal */
#define HSM_SEAL_TAG_LEN 16      /**< AES-GCM tag */
#define HSM_SEAL_OVERHEAD (HSM_SEAL_NONCE_LEN + HSM_SEAL_TAG_LEN)
#define HSM_SEAL_IN_MAX 256      /**< longest secret sealed */

/**
 * Create the factor key if the token has none: AES-256, CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not extractable,
 * CKA_ENCRYPT/CKA_DECRYPT only (label csc-factor-key, a fixed CKA_ID).
 * @param[out] created 1 if it was created now, 0 if it was there
 * @return HSM_OK; HSM_ERR_MECH (no AES key generation); HSM_ERR_UNAVAILABLE ...
 */
int hsm_factor_init(hsm_t *h, int *created);

/**
 * Seal in (1..HSM_SEAL_IN_MAX bytes) under the factor key with CKM_AES_GCM: out = nonce || ciphertext || tag,
 * len + HSM_SEAL_OVERHEAD bytes; aad (may be empty) is authenticated, not stored.
 * @return HSM_OK; HSM_ERR_NOKEY (hsm_factor_init not run); HSM_ERR_INVAL (sizes); HSM_ERR_UNAVAILABLE ...
 */
int hsm_factor_seal(hsm_t *h, const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                    size_t cap, size_t *out_len);

/**
 * Open what hsm_factor_seal made with the same aad.
 * @return HSM_OK; HSM_ERR_BADSIG (another aad, a changed byte, not a sealed blob); HSM_ERR_NOKEY; HSM_ERR_INVAL
 *   (cap too small); HSM_ERR_UNAVAILABLE ... On error out is wiped.
 */
int hsm_factor_open(hsm_t *h, const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                    size_t cap, size_t *out_len);

#define HSM_DERIVE_LEN 32        /**< bytes of a key hsm_factor_derive makes */
#define HSM_DERIVE_LABEL_MAX 12  /**< longest label */

/**
 * A secret key for label (1..HSM_DERIVE_LABEL_MAX bytes) derived from the factor key through CKM_AES_ECB (which a
 * p11-kit RPC carries): the same on every process that uses the same token, different per label, unknown without
 * the token. csc-sam's key for the pending one-time codes' MACs (sam_factor_start).
 * @return HSM_OK; HSM_ERR_NOKEY (hsm_factor_init not run); HSM_ERR_INVAL; HSM_ERR_UNAVAILABLE ... (out zeroed)
 */
int hsm_factor_derive(hsm_t *h, const char *label, uint8_t out[HSM_DERIVE_LEN]);

#ifdef __cplusplus
}
#endif
#endif
