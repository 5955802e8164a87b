/*
 * oauth_int.h - private to oauth/: the handle, shared helpers of the token and
 * SAD code, and the auth expression evaluator (exposed here for unit tests).
 */
#ifndef OAUTH_INT_H
#define OAUTH_INT_H

#include <stddef.h>
#include <stdint.h>
#include "oauth.h"

struct oauth {
    oauth_config_t cfg;   /* defaults filled in; immutable after oauth_new() */
};

/** Characters of a token or SAD value: base64url of 32 bytes, no padding. */
#define OAUTH_TOKEN_LEN 43
/** Longest password or PIN hashed or verified (longer input is refused). */
#define OAUTH_SECRET_MAX 1024
/** Widest TOTP window accepted in the configuration. */
#define OAUTH_TOTP_WINDOW_MAX 10
/** Deepest parenthesis nesting in an auth expression. */
#define OAUTH_EXPR_DEPTH_MAX 8

/* Factor bits for oauth_expr_eval(). */
#define OAUTH_FACTOR_PIN 1u
#define OAUTH_FACTOR_OTP 2u

/**
 * Evaluate a CSC auth.expression ("PIN AND OTP", "(PIN OR OTP)", ...).
 * Precedence, tightest first: AND, XOR, OR (as C's & ^ |); parentheses group.
 * An empty (or NULL) expression means the AND of every object in have, and is
 * not satisfiable when have is empty.
 * @param[in] expr the expression, at most STOR_EXPR_MAX bytes
 * @param[in] have OAUTH_FACTOR_* objects the credential has
 * @param[in] verified OAUTH_FACTOR_* factors that were supplied and verified
 * @return 1 satisfied; 0 not satisfied (also when it names an id other than
 *         PIN/OTP); OAUTH_ERR_INVAL malformed, too long or too deeply nested.
 *         Callers treat anything but 1 as a denial.
 */
int oauth_expr_eval(const char *expr, unsigned have, unsigned verified);

/** A verifier no secret matches (log2n = OAUTH_SCRYPT_LOG2N), so that a login
 *  for an unknown user costs the same scrypt as one for a known user. */
extern const uint8_t oauth_dummy_verifier[];
extern const size_t oauth_dummy_verifier_len;

/** New random token/SAD value (NUL-terminated) and the SHA-256 it is stored under. */
int oauth_token_new(char value[OAUTH_TOKEN_BUFLEN], uint8_t hash[32]);
/** SHA-256 of a presented value. @return OAUTH_ERR_INVALID unless exactly 43 base64url chars. */
int oauth_token_hash(const char *value, size_t len, uint8_t hash[32]);
/** Audit reference of a stored hash: the first 16 bytes of SHA-256(hash). */
int oauth_token_ref(const uint8_t hash[32], uint8_t ref[16]);

/** Map a stor_write()/stor_read() result: our own codes pass, storage codes become OAUTH_ERR_STORAGE. */
int oauth_rc(int rc);
int64_t oauth_now(void);
/** 1 if s is a non-empty name of at most STOR_NAME_MAX bytes. */
int oauth_name_ok(const char *s);
/** Bounded copy that truncates; NULL src gives "". */
void oauth_copy(char *dst, size_t dstsz, const char *src);
/** Start an audit record (zeroed) with the given event, result and names. */
void oauth_audit_init(stor_audit_t *rec, uint32_t event, uint32_t result, const char *user, const char *cred,
                      const char *client);
/** Append a STOR_EV_LOCKOUT record for user (and cred if not NULL). */
int oauth_audit_lockout(stor_txn_t *t, const char *user, const char *cred, const char *client, int64_t until);

#endif
