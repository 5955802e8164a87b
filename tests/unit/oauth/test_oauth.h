/* test_oauth.h - shared fixture and helpers of the oauth unit tests. */
#ifndef TEST_OAUTH_H
#define TEST_OAUTH_H

#include <stddef.h>
#include <stdint.h>
#include <check.h>

#include "oauth.h"
#include "oauth_int.h"

#define T_PW "Pw-Secret-hunter2-9127"
#define T_PIN "4711-pin-secret"
/** The MAC key of the pending one-time codes in the fixture (oauth_set_challenge_key). */
#define FX_CHAL_KEY ((const uint8_t *)"fixture-challenge-mac-key-32byte")
#define T_TOTP "12345678901234567890"   /* RFC 6238 SHA-1 test secret */
#define T_TOTP_LEN 20
#define T_TIMEOUT 60

typedef struct {
    char dir[64];
    stor_env_t *stor;
    oauth_t *o;
} fx_t;

extern fx_t fx;
/** A second handle on fx's storage with the fixture's settings and this challenge key (NULL: none): what another
 *  process on the same storage (csc-server, another node's csc-sam, csc-sam after a restart) holds. */
oauth_t *fx_second_handle(const uint8_t *chal_key);

/* Fixture: fresh dir + storage + oauth (max_failures 3, others default). */
void fx_setup(void);
void fx_teardown(void);
/* Replace fx.o with one built from cfg (cfg->stor is filled in). */
void fx_oauth(oauth_config_t cfg);

void put_user(const stor_user_t *u);
void put_cred(const stor_cred_t *c);
void put_token(const stor_token_t *t);
void put_sad(const stor_sad_t *s);
stor_user_t get_user(const char *name);
/* Browser sessions stored (they are kept in storage: oauth_websession.c). */
size_t n_sessions(void);
void get_cred(const char *id, stor_cred_t *out);
int get_token(const uint8_t hash[32], stor_token_t *out);
int get_sad(const uint8_t hash[32], stor_sad_t *out);
/** The pending SAD of a credential-scope code (pending SAD table). */
int get_pending_sad(const uint8_t code_hash[32], stor_sad_t *out);

/* A user with password T_PW (log2n 10) and, if totp, secret T_TOTP. */
void mk_user(const char *name, uint32_t status, int totp);
/* A credential owned by owner, PIN T_PIN when pin, auth expression expr. */
void mk_cred(const char *id, const char *owner, int pin, const char *expr);

void sha256_of(const void *in, size_t len, uint8_t out[32]);
/* The audit reference of a token value: first 16 bytes of SHA-256(SHA-256(value)). */
void ref_of(const char *value, uint8_t ref[16]);
/* 6-digit TOTP of T_TOTP at time t. */
void totp_at(int64_t t, char otp[7]);
/* A fresh well-formed token value and its hash, not stored anywhere. */
void fresh_value(char value[OAUTH_TOKEN_BUFLEN], uint8_t hash[32]);

/* Audit records read back (digests copied). */
typedef struct {
    stor_audit_t rec;
    uint8_t dig[16 * 64];
} aud_t;
typedef struct {
    size_t n;
    aud_t r[128];
} auds_t;
auds_t *audit_read(void);          /* free() the result */
size_t audit_count(const auds_t *a, uint32_t event, uint32_t result);
const aud_t *audit_last(const auds_t *a, uint32_t event);
/* The latest STOR_EV_LOGIN record has this detail and result. */
void last_login_detail(const char *want, uint32_t result);
/* Fails if s appears in any audit record or in any file of the storage directory. */
void assert_no_secret(const char *s);

/* ---- authorization server helpers (test_util.c) ---------------------------- */

#define T_VERIFIER "verifier-0123456789_0123456789.0123456789~abc"
#define T_REDIRECT "https://app.example/cb"
#define T_ADDR "10.1.2.3"
#define SHA256_OID "2.16.840.1.101.3.4.2.1"

/* Register client id (redirect T_REDIRECT, both scopes) with the given grants; secret and record returned. */
void mk_client(const char *id, uint32_t grants, char secret[OAUTH_TOKEN_BUFLEN], stor_client_t *out);
/* A validated-looking request of client_id (heap; free()): redirect T_REDIRECT given, PKCE S256 of T_VERIFIER,
 * for the credential scope cred with n digests (byte i of digest k = k + 1), numSignatures n (1 if n is 0). */
oauth_authz_request_t *mk_req(const char *client_id, uint32_t scope, const char *cred, uint32_t n);
/* Digest k of mk_req() (32 bytes). */
void req_digest(uint32_t k, uint8_t out[32]);
/* Forget the user's last TOTP step, so the current code is accepted again. */
void reset_totp(const char *user);
/* The TOTP code of now (after reset_totp). */
void otp_current(char otp[7]);
/* Sign user in for req (oauth_session_login_new(): password T_PW, the OTP of the oauth clock after
 * reset_totp, address T_ADDR): sid and csrf of the session it starts. @return its result */
int signin(const oauth_authz_request_t *req, const char *user, char sid[OAUTH_TOKEN_BUFLEN],
           char csrf[OAUTH_TOKEN_BUFLEN]);
/* A session for req, logged in as user (signin(), which must succeed). */
void session_for(const oauth_authz_request_t *req, const char *user, char sid[OAUTH_TOKEN_BUFLEN]);
/* An approved authorization code for req (user logs in; pin for the credential scope, may be NULL). */
void code_for(const oauth_authz_request_t *req, const char *user, const char *pin, char code[OAUTH_TOKEN_BUFLEN]);
int get_code_rec(const char *code, stor_code_t *out);
int get_client_rec(const char *id, stor_client_t *out);

Suite *suite_secret(void);
Suite *suite_totp(void);
Suite *suite_expr(void);
Suite *suite_token(void);
Suite *suite_sad(void);
Suite *suite_client(void);
Suite *suite_session(void);
Suite *suite_consent(void);
Suite *suite_grant(void);
Suite *suite_challenge(void);
Suite *suite_approval(void);
Suite *suite_req_codec(void);

#endif
