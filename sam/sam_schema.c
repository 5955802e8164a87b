/*
 * sam_schema.c - the one table per op of the SAM protocol (sam_wire.h): which tags, their types, bounds and
 * counts. The decoder and the builder read only these tables; docs/architecture.md ("The SAM protocol") shows
 * them for people. Rows stay in ascending tag order (tests/unit/sam checks it).
 */
#include <stddef.h>
#include <stdint.h>

#include "hsm.h"
#include "oauth.h"
#include "sam_wire.h"
#include "stor.h"

/* The wire's bounds are the modules' bounds: a value the SAM may store or sign passes the decoder, and nothing
 * longer does. */
_Static_assert(SAM_NAME_MAX == STOR_NAME_MAX, "credential ids and user names");
_Static_assert(SAM_OID_MAX == STOR_OID_MAX, "OIDs");
_Static_assert(SAM_DIGESTS_MAX == STOR_DIGESTS_MAX, "digests of one SAD");
_Static_assert(SAM_DIGEST_LEN_MAX == STOR_DIGEST_LEN_MAX, "one digest");
_Static_assert(SAM_SIG_MAX == HSM_SIG_MAX, "one signature");
_Static_assert(SAM_HEAD_SIG_MAX == STOR_HEAD_SIG_MAX, "a signed head's signature");
_Static_assert(SAM_EXPR_MAX == STOR_EXPR_MAX, "auth expressions");
_Static_assert(SAM_CERT_MAX == STOR_CERTS_MAX, "a credential's certificates");
_Static_assert(SAM_TOKEN_MAX >= OAUTH_TOKEN_BUFLEN - 1, "issued tokens, SADs and handles");
_Static_assert(SAM_OTP_MAX >= OAUTH_CHALLENGE_DIGITS, "one-time codes");
_Static_assert(SAM_BACKUP_MAX >= HSM_WRAPPED_MAX + STOR_CERTS_MAX + 4096, "a backup: wrapped key, certificates, record");
/* SIGN's reply, the largest message: every signature of a full request with its field header. */
_Static_assert((uint64_t)STOR_DIGESTS_MAX * (HSM_SIG_MAX + SAM_FIELD_HDR) <= SAM_MSG_MAX, "SIGN reply fits");
_Static_assert(SAM_TST_MAX + 1024 <= SAM_MSG_MAX, "STAMP reply fits");
_Static_assert(SAM_DETAIL_MAX < sizeof(((stor_audit_t *)0)->detail), "SIGN's audit detail fits the record");
_Static_assert(SAM_MSG_MAX <= UINT32_MAX - SAM_HDR_LEN, "length field");
_Static_assert(SAM_CONTACT_MAX == STOR_CONTACT_MAX, "a user's contact");
_Static_assert(64 >= STOR_TOTP_MAX, "a TOTP secret");
_Static_assert(SAM_URI_MAX == STOR_URI_MAX, "redirect URIs");
_Static_assert(SAM_AUTHZ_DETAILS_MAX == STOR_AUTHZ_DETAILS_MAX, "authorization_details");
_Static_assert(SAM_TICKET_KEY_LEN == OAUTH_TICKET_KEY_LEN && SAM_TICKET_KEY_LEN == HSM_DERIVE_LEN,
               "the pages' ticket key: derived by the HSM, set in oauth/");
_Static_assert(SAM_GRANT_LOGIN_REFRESH == 4 && STOR_SCOPE_CREDENTIAL == 2, "TOKEN's value bounds");

#define REQ 1, 1
#define OPT 0, 1
#define MANY(lo, hi) lo, hi
/* ROW(tag, type, one_of, min_count, max_count, min_len, max_len, min_val, max_val); the macros below take a count
 * as REQ, OPT or MANY(lo, hi) (two values, hence the variadic forwarding). */
#define ROW(...) {__VA_ARGS__}
#define U32(tag, ...) U32_(tag, __VA_ARGS__)
#define U32_(tag, mn, mx, lo, hi) ROW(tag, SAM_TYPE_U32, 0, mn, mx, 4, 4, lo, hi)
#define U64(tag, ...) U64_(tag, __VA_ARGS__)
#define U64_(tag, mn, mx) ROW(tag, SAM_TYPE_U64, 0, mn, mx, 8, 8, 0, UINT64_MAX)
#define BYTES(tag, ...) BYTES_(tag, __VA_ARGS__)
#define BYTES_(tag, mn, mx, lo, hi) ROW(tag, SAM_TYPE_BYTES, 0, mn, mx, lo, hi, 0, 0)
#define TEXT(tag, ...) TEXT_(tag, __VA_ARGS__)
#define TEXT_(tag, mn, mx, lo, hi) ROW(tag, SAM_TYPE_TEXT, 0, mn, mx, lo, hi, 0, 0)
/* Members of one_of group g: each optional, exactly one present. */
#define ONE_U32(g, tag, lo, hi) ROW(tag, SAM_TYPE_U32, g, OPT, 4, 4, lo, hi)
#define ONE_BYTES(g, tag, lo, hi) ROW(tag, SAM_TYPE_BYTES, g, OPT, lo, hi, 0, 0)
#define ONE_TEXT(g, tag, lo, hi) ROW(tag, SAM_TYPE_TEXT, g, OPT, lo, hi, 0, 0)

/* Rows many ops share. */
#define TOKEN TEXT(SAM_T_TOKEN, REQ, 1, SAM_TOKEN_MAX)
#define CRED TEXT(SAM_T_CRED, REQ, 1, SAM_NAME_MAX)
#define HASH_ALG(cnt) TEXT(SAM_T_HASH_ALG, cnt, 1, SAM_OID_MAX)
#define DIGESTS(lo) BYTES(SAM_T_DIGEST, MANY(lo, SAM_DIGESTS_MAX), 1, SAM_DIGEST_LEN_MAX)
#define CLIENT TEXT(SAM_T_CLIENT, REQ, 1, SAM_CLIENT_MAX)
#define PIN TEXT(SAM_T_PIN, OPT, 0, SAM_SECRET_MAX)
#define SAD(cnt) TEXT(SAM_T_SAD, cnt, 1, SAM_TOKEN_MAX)
#define EXPIRES_IN(cnt) U32(SAM_T_EXPIRES_IN, cnt, 0, UINT32_MAX)
#define SESSION TEXT(SAM_T_SESSION, REQ, 1, SAM_TOKEN_MAX)
#define DECISION U32(SAM_T_DECISION, REQ, 0, 1)
#define APPROVAL_ID TEXT(SAM_T_APPROVAL_ID, OPT, 1, SAM_NAME_MAX)
#define ORIGIN TEXT(SAM_T_ORIGIN, OPT, 1, SAM_ORIGIN_MAX) /* after every lower tag: csc-admin adds it last, or before
                                                            * the tags above it (srv_opsock_put_origin) */
#define KEY_SPEC U32(SAM_T_KEY_TYPE, REQ, SAM_KEY_RSA, SAM_KEY_EC), U32(SAM_T_KEY_BITS, OPT, 2048, 4096), \
        TEXT(SAM_T_CURVE, OPT, 1, SAM_OID_MAX)
#define SUBJECT_CN TEXT(SAM_T_SUBJECT_CN, OPT, 1, SAM_NAME_MAX)
#define SUBJECT_O_C TEXT(SAM_T_SUBJECT_O, OPT, 1, SAM_NAME_MAX), TEXT(SAM_T_SUBJECT_C, OPT, 2, 2)

static const sam_field_spec_t hello[] = {
    U32(SAM_T_VERSION, REQ, 1, UINT16_MAX),
};
static const sam_field_spec_t hello_r[] = {
    U32(SAM_T_VERSION, REQ, 1, UINT16_MAX),
    TEXT(SAM_T_IDENTITY, REQ, 1, SAM_IDENTITY_MAX),
    U32(SAM_T_HSM_STATE, REQ, SAM_HSM_READY, SAM_HSM_UNAVAILABLE),
    U32(SAM_T_STORAGE_STATE, REQ, SAM_HSM_READY, SAM_HSM_UNAVAILABLE),
    BYTES(SAM_T_TICKET_KEY, OPT, SAM_TICKET_KEY_LEN, SAM_TICKET_KEY_LEN), /* the front end's socket only */
    U64(SAM_T_HSM_WAITS, OPT), /* absent without a token (the operators-only csc-sam of csc-admin) */
    U64(SAM_T_HEAP_IN_USE, OPT), /* absent when the process does not say (sam_server_config_t.heap_usage) */
    U64(SAM_T_HEAP_HELD, OPT),
};
/* PIN, OTP and challenge code as the client sent them: an empty one is a wrong factor (it counts). */
static const sam_field_spec_t authorize[] = {
    TOKEN,
    CRED,
    U32(SAM_T_NUM_SIGNATURES, REQ, 1, UINT32_MAX),
    HASH_ALG(OPT),
    DIGESTS(0),
    PIN,
    TEXT(SAM_T_OTP, OPT, 0, SAM_OTP_MAX),
    TEXT(SAM_T_CHALLENGE, OPT, 0, SAM_OTP_MAX),
    CLIENT,
    TEXT(SAM_T_DESCRIPTION, OPT, 0, SAM_DESCRIPTION_MAX),
    TEXT(SAM_T_REQUEST_ID, OPT, 1, SAM_REQUEST_ID_MAX),
};
static const sam_field_spec_t authorize_r[] = { /* a SAD, or the handle of a pending approval */
    ONE_TEXT(1, SAM_T_SAD, 1, SAM_TOKEN_MAX),
    EXPIRES_IN(REQ),
    ONE_TEXT(1, SAM_T_HANDLE, 1, SAM_TOKEN_MAX),
};
static const sam_field_spec_t authorize_check[] = {
    TOKEN,
    CLIENT,
    TEXT(SAM_T_HANDLE, REQ, 1, SAM_TOKEN_MAX),
};
static const sam_field_spec_t authorize_check_r[] = { /* the SAD (once), or still pending */
    ONE_TEXT(1, SAM_T_SAD, 1, SAM_TOKEN_MAX),
    EXPIRES_IN(OPT),
    ONE_U32(1, SAM_T_PENDING, 1, 1),
};
static const sam_field_spec_t extend[] = {
    TOKEN,
    CRED,
    HASH_ALG(OPT),
    DIGESTS(0),
    CLIENT,
    SAD(REQ),
};
static const sam_field_spec_t sad_r[] = {
    SAD(REQ),
    EXPIRES_IN(REQ),
};
/* Every digest of the request in one message. Without SAD the bearer token (a credential-scope token) is it.
 * USER: the user the front end found for the token, only which user row csc-sam reads ahead (never trusted: the
 * token's own user decides). DESCRIPTION: the audit detail the front end asks for (else SIGN_ALG). ASYNC: spend now, answer a TICKET that
 * SIGN_RESERVED signs or gives back within EXPIRES_IN seconds. CMS (signDoc): one per digest. */
static const sam_field_spec_t sign[] = {
    TOKEN,
    CRED,
    TEXT(SAM_T_USER, OPT, 1, SAM_NAME_MAX),
    HASH_ALG(REQ),
    DIGESTS(1),
    CLIENT,
    TEXT(SAM_T_DESCRIPTION, OPT, 1, SAM_DETAIL_MAX),
    SAD(OPT),
    EXPIRES_IN(OPT),
    TEXT(SAM_T_SIGN_ALG, REQ, 1, SAM_OID_MAX),
    BYTES(SAM_T_PSS_PARAMS, OPT, 1, SAM_PSS_PARAMS_MAX),
    U32(SAM_T_ASYNC, OPT, 1, 1),
    U32(SAM_T_CMS, MANY(0, SAM_DIGESTS_MAX), SAM_CMS_SIGNING_TIME, SAM_CMS_NO_TIME),
    U32(SAM_T_CRL_RELOAD, OPT, 1, 1),
    TEXT(SAM_T_REQUEST_ID, OPT, 1, SAM_REQUEST_ID_MAX),
};
/* The signatures, in digest order (with the CMS signing time), or the TICKET of ASYNC: exactly one of the two. */
static const sam_field_spec_t sign_r[] = {
    BYTES(SAM_T_SIGNATURE, MANY(0, SAM_DIGESTS_MAX), 1, SAM_SIG_MAX),
    U64(SAM_T_TIME_MS, OPT),
    BYTES(SAM_T_TICKET, OPT, SAM_TICKET_LEN, SAM_TICKET_LEN),
};
/* DECISION 1: sign what the ticket reserved; 0: give it back to the SAD (REASON goes into the audit record). */
static const sam_field_spec_t sign_reserved[] = {
    U32(SAM_T_DECISION, REQ, 0, 1),
    TEXT(SAM_T_REASON, OPT, 1, SAM_REASON_MAX),
    BYTES(SAM_T_TICKET, REQ, SAM_TICKET_LEN, SAM_TICKET_LEN),
};
static const sam_field_spec_t stamp[] = { /* the policy is the SAM's own: the front end names none */
    TOKEN,
    TEXT(SAM_T_CRED, OPT, 1, SAM_NAME_MAX), /* a credential-scope token: its credential (signDoc's B-T token) */
    HASH_ALG(REQ),
    BYTES(SAM_T_DIGEST, REQ, 1, SAM_DIGEST_LEN_MAX),
    CLIENT,
    BYTES(SAM_T_NONCE, OPT, 1, SAM_NONCE_MAX),
};
static const sam_field_spec_t stamp_r[] = {
    BYTES(SAM_T_TST, REQ, 1, SAM_TST_MAX),
};
static const sam_field_spec_t challenge[] = {
    TOKEN,
    CRED,
    CLIENT,
};
static const sam_field_spec_t challenge_r[] = { /* the code went out; valid this long */
    EXPIRES_IN(REQ),
};
/* Like CONSENT: the browser session (stored: the SAM reads its user itself) and the form's CSRF token, and the request
 * as the page names it; the user is the session's, never the message's. */
static const sam_field_spec_t approve[] = {
    PIN,
    BYTES(SAM_T_APPROVAL_REF, REQ, 16, 16),
    SESSION,
    DECISION,
    TEXT(SAM_T_ADDR, OPT, 1, SAM_ADDR_MAX),
    TEXT(SAM_T_CSRF, REQ, 1, SAM_TOKEN_MAX),
};
/* The browser session (stored: the SAM reads its user and request itself) and the form's CSRF token; the request's
 * credential and digests are the session's, never the message's. */
static const sam_field_spec_t consent[] = {
    PIN,
    SESSION,
    DECISION,
    TEXT(SAM_T_ADDR, OPT, 1, SAM_ADDR_MAX),
    TEXT(SAM_T_CSRF, REQ, 1, SAM_TOKEN_MAX),
};
static const sam_field_spec_t consent_r[] = { /* absent on a refusal by the user */
    TEXT(SAM_T_CODE, OPT, 1, SAM_TOKEN_MAX),
};
/* AUDIT_HEAD is the operators' (csc-admin audit sign-head); csc-sam signs the periodic heads itself. */
static const sam_field_spec_t audit_head[] = {
    SESSION,
    APPROVAL_ID,
    ORIGIN,
};
static const sam_field_spec_t audit_head_r[] = { /* the seq signed; absent: nothing to sign */
    U64(SAM_T_SEQ, OPT),
};
/* /enroll step 1: the name and the code typed (one_of 1), or the ticket of a step 2 already begun (to show step 2
 * again); the reply: a new ticket (code only), its user, the TOTP secret made for it, the credentials that wait for
 * this user's PIN, and the CSRF token step 2's form must carry (derived from the ticket: ENROLL_FINISH checks it). */
static const sam_field_spec_t enroll_begin[] = {
    TEXT(SAM_T_USER, OPT, 1, SAM_NAME_MAX),
    TEXT(SAM_T_ADDR, OPT, 1, SAM_ADDR_MAX),
    ONE_TEXT(1, SAM_T_ENROLL_TICKET, 1, SAM_TOKEN_MAX),
    ONE_TEXT(1, SAM_T_ENROLL_CODE, 0, SAM_ENROLL_CODE_MAX),
};
static const sam_field_spec_t enroll_begin_r[] = {
    TEXT(SAM_T_CRED, MANY(0, SAM_ENROLL_CREDS_MAX), 1, SAM_NAME_MAX),
    TEXT(SAM_T_USER, REQ, 1, SAM_NAME_MAX),
    U32(SAM_T_EXPIRES_IN, REQ, 0, UINT32_MAX),
    TEXT(SAM_T_CSRF, REQ, 1, SAM_TOKEN_MAX),
    TEXT(SAM_T_ENROLL_TICKET, OPT, 1, SAM_TOKEN_MAX),
    BYTES(SAM_T_TOTP_SECRET, REQ, 1, 64),
};
/* /enroll step 2: the ticket and the form's CSRF token, the password chosen, the first TOTP code, and the PIN of each
 * credential named (CRED i with PIN i). */
static const sam_field_spec_t enroll_finish[] = {
    TEXT(SAM_T_CRED, MANY(0, SAM_ENROLL_CREDS_MAX), 1, SAM_NAME_MAX),
    TEXT(SAM_T_PIN, MANY(0, SAM_ENROLL_CREDS_MAX), 0, SAM_SECRET_MAX),
    TEXT(SAM_T_OTP, REQ, 0, SAM_OTP_MAX),
    TEXT(SAM_T_ADDR, OPT, 1, SAM_ADDR_MAX),
    TEXT(SAM_T_CSRF, REQ, 1, SAM_TOKEN_MAX),
    TEXT(SAM_T_ENROLL_TICKET, REQ, 1, SAM_TOKEN_MAX),
    TEXT(SAM_T_PASSWORD, REQ, 0, SAM_SECRET_MAX),
};
static const sam_field_spec_t enroll_finish_r[] = {
    TEXT(SAM_T_USER, REQ, 1, SAM_NAME_MAX),
};
/* /account: the browser session (stored: the SAM reads its user) and the form's CSRF token, the credential and its
 * new PIN. */
static const sam_field_spec_t account_pin[] = { /* OLD_SECRET: the PIN set now (a change), absent while it waits */
    CRED,
    TEXT(SAM_T_PIN, REQ, 0, SAM_SECRET_MAX),
    SESSION,
    TEXT(SAM_T_ADDR, OPT, 1, SAM_ADDR_MAX),
    TEXT(SAM_T_CSRF, REQ, 1, SAM_TOKEN_MAX),
    TEXT(SAM_T_OLD_SECRET, OPT, 0, SAM_SECRET_MAX),
};
/* /account's change of password: the session and form token, the new password and the old one as typed. */
static const sam_field_spec_t account_password[] = {
    SESSION,
    TEXT(SAM_T_ADDR, OPT, 1, SAM_ADDR_MAX),
    TEXT(SAM_T_CSRF, REQ, 1, SAM_TOKEN_MAX),
    TEXT(SAM_T_PASSWORD, REQ, 0, SAM_SECRET_MAX),
    TEXT(SAM_T_OLD_SECRET, REQ, 0, SAM_SECRET_MAX),
};
/* /account's new TOTP secret, step 1: a code of the old secret; the reply: the pending secret and its ticket. */
static const sam_field_spec_t account_totp_begin[] = {
    TEXT(SAM_T_OTP, REQ, 0, SAM_OTP_MAX),
    SESSION,
    TEXT(SAM_T_ADDR, OPT, 1, SAM_ADDR_MAX),
    TEXT(SAM_T_CSRF, REQ, 1, SAM_TOKEN_MAX),
};
static const sam_field_spec_t account_totp_begin_r[] = {
    U32(SAM_T_EXPIRES_IN, REQ, 0, UINT32_MAX),
    TEXT(SAM_T_ENROLL_TICKET, REQ, 1, SAM_TOKEN_MAX),
    BYTES(SAM_T_TOTP_SECRET, REQ, 1, 64),
};
/* Step 2: the ticket of step 1 and a code of the new secret. */
static const sam_field_spec_t account_totp_finish[] = {
    TEXT(SAM_T_OTP, REQ, 0, SAM_OTP_MAX),
    SESSION,
    TEXT(SAM_T_ADDR, OPT, 1, SAM_ADDR_MAX),
    TEXT(SAM_T_CSRF, REQ, 1, SAM_TOKEN_MAX),
    TEXT(SAM_T_ENROLL_TICKET, REQ, 1, SAM_TOKEN_MAX),
};
/* /account: the owner's request to restore a credential's key from its backup (J8); the reply is the request's
 * reference, which the user gives the operator, and its lifetime. */
static const sam_field_spec_t account_restore[] = {
    CRED,
    SESSION,
    TEXT(SAM_T_ADDR, OPT, 1, SAM_ADDR_MAX),
    TEXT(SAM_T_CSRF, REQ, 1, SAM_TOKEN_MAX),
};
static const sam_field_spec_t account_restore_r[] = {
    EXPIRES_IN(REQ),
    TEXT(SAM_T_RESTORE_REF, REQ, STOR_RESTORE_REF_LEN, STOR_RESTORE_REF_LEN),
};
/* The pages' sign-in (LOGIN): what the person typed (empty values are wrong ones: they cost the same and count), the
 * address, and the request the session is for; csc-sam checks the factors and answers the session it stored. */
static const sam_field_spec_t login[] = {
    TEXT(SAM_T_USER, REQ, 0, SAM_NAME_MAX),
    TEXT(SAM_T_OTP, REQ, 0, SAM_OTP_MAX),
    TEXT(SAM_T_ADDR, OPT, 1, SAM_ADDR_MAX),
    TEXT(SAM_T_PASSWORD, REQ, 0, SAM_SECRET_MAX),
    BYTES(SAM_T_AUTHZ_REQ, REQ, 1, OAUTH_REQ_ENC_MAX),
};
static const sam_field_spec_t login_r[] = {
    SESSION,
    TEXT(SAM_T_CSRF, REQ, 1, SAM_TOKEN_MAX),
};
_Static_assert(sizeof(oauth_authz_request_t) + 4096 <= SAM_MSG_MAX, "LOGIN fits");
/* auth/login with a password (API_LOGIN): the name and password as the client sent them (an empty password is a
 * wrong one: it costs the same and counts), its audit client text and address, rememberMe; the tokens issued. */
static const sam_field_spec_t api_login[] = {
    TEXT(SAM_T_USER, REQ, 1, SAM_NAME_MAX),
    TEXT(SAM_T_CLIENT, OPT, 1, SAM_CLIENT_MAX),
    TEXT(SAM_T_ADDR, OPT, 1, SAM_ADDR_MAX),
    TEXT(SAM_T_PASSWORD, REQ, 0, SAM_SECRET_MAX),
    U32(SAM_T_REMEMBER, REQ, 0, 1),
};
static const sam_field_spec_t api_login_r[] = {
    TEXT(SAM_T_TOKEN, REQ, 1, SAM_TOKEN_MAX),
    EXPIRES_IN(REQ),
    TEXT(SAM_T_REFRESH_TOKEN, OPT, 1, SAM_TOKEN_MAX),
};
static const sam_field_spec_t refused[] = {
    U32(SAM_T_REFUSAL, REQ, 1, SAM_REFUSE_MAX),
    TEXT(SAM_T_REASON, REQ, 0, SAM_REASON_MAX),
    U32(SAM_T_ABOUT, OPT, 1, SAM_TAG_LIMIT - 1),
};

/* ---- operators' socket (sam/sam_op_keys.c): every op names
 * the csc-admin session, and APPROVAL_ID when it carries out a two-person request a second operator approved (csc-admin
 * files the request; csc-sam refuses a two_person command without an approval) ---- */

/* The operator's words are bounded here and checked by admin/ (adm_cred_create), whose messages reach the operator:
 * texts 0..SAM_DESCRIPTION_MAX, SCAL and MULTISIGN any u32; the key spec is checked here (a key csc-admin offers). */
#define ARG(tag, cnt) TEXT(tag, cnt, 0, SAM_DESCRIPTION_MAX)
static const sam_field_spec_t key_create[] = {
    ARG(SAM_T_CRED, OPT), /* absent: the SAM makes one */
    ARG(SAM_T_USER, REQ), /* the owner */
    PIN,                  /* refused (sam_op_key_create): the owner sets it; decoded, so the refusal names it */
    ARG(SAM_T_DESCRIPTION, OPT),
    SESSION,
    APPROVAL_ID,
    KEY_SPEC,
    ARG(SAM_T_AUTH_EXPR, REQ),
    U32(SAM_T_SCAL, REQ, 0, UINT32_MAX),
    U32(SAM_T_MULTISIGN, REQ, 0, UINT32_MAX),
    ARG(SAM_T_SUBJECT_CN, OPT),
    ARG(SAM_T_SUBJECT_O, OPT),
    ARG(SAM_T_SUBJECT_C, OPT),
    ARG(SAM_T_QUALIFIER, OPT),
    U32(SAM_T_OAUTH2CODE, OPT, 1, 1),
    U32(SAM_T_CSR_WANTED, OPT, 1, 1),
    ORIGIN,
};
static const sam_field_spec_t key_create_r[] = { /* the credential, with its PKCS#10 request when CSR_WANTED */
    CRED,
    BYTES(SAM_T_CSR, OPT, 1, SAM_CERT_MAX),
};
static const sam_field_spec_t key_destroy[] = { /* REASON: "operator request" (destroy) or "certificate revoked" */
    ARG(SAM_T_CRED, REQ),
    SESSION,
    TEXT(SAM_T_REASON, REQ, 1, SAM_REASON_MAX),
    APPROVAL_ID,
    ORIGIN,
};
static const sam_field_spec_t destroy_pending[] = {
    SESSION,
    APPROVAL_ID,
    ORIGIN,
};
static const sam_field_spec_t destroy_pending_r[] = { /* the report; REASON: the run failed */
    TEXT(SAM_T_REASON, OPT, 1, SAM_REASON_MAX),
    TEXT(SAM_T_LINE, MANY(0, SAM_LINES_MAX), 0, SAM_LINE_MAX),
};
static const sam_field_spec_t user_terminate[] = {
    ARG(SAM_T_USER, REQ),
    SESSION,
    APPROVAL_ID,
    ORIGIN,
};
static const sam_field_spec_t backup_init[] = {
    PIN, /* the token's SO PIN, needed while the wrapping key is missing (else: refused UNAUTHORIZED about PIN) */
    SESSION,
    APPROVAL_ID,
    ORIGIN,
};
static const sam_field_spec_t backup_init_r[] = {
    U32(SAM_T_CREATED, REQ, 0, 3), /* bit 1: wrapping key, bit 2: integrity key */
};
/* DESCRIPTION (BACKUP, RESTORE): the file's name as csc-admin names it, for messages and the audit record only. */
static const sam_field_spec_t backup[] = {
    ARG(SAM_T_CRED, REQ),
    ARG(SAM_T_DESCRIPTION, OPT),
    SESSION,
    APPROVAL_ID,
    ORIGIN,
};
static const sam_field_spec_t backup_r[] = {
    BYTES(SAM_T_BACKUP_BLOB, REQ, 1, SAM_BACKUP_MAX),
};
static const sam_field_spec_t restore[] = { /* RESTORE_REF: the owner's request (csc-sam refuses a restore without) */
    ARG(SAM_T_DESCRIPTION, OPT),
    SESSION,
    APPROVAL_ID,
    BYTES(SAM_T_BACKUP_BLOB, REQ, 0, SAM_BACKUP_MAX),
    ORIGIN,
    ARG(SAM_T_RESTORE_REF, OPT),
};
static const sam_field_spec_t restore_r[] = {
    CRED,
};
static const sam_field_spec_t csr[] = { /* subject: any of the three, or none (the current certificate's) */
    ARG(SAM_T_CRED, REQ),
    SESSION,
    APPROVAL_ID,
    ARG(SAM_T_SUBJECT_CN, OPT),
    ARG(SAM_T_SUBJECT_O, OPT),
    ARG(SAM_T_SUBJECT_C, OPT),
    ORIGIN,
};
static const sam_field_spec_t csr_r[] = {
    BYTES(SAM_T_CSR, REQ, 1, SAM_CERT_MAX),
};
static const sam_field_spec_t cert_import[] = {
    ARG(SAM_T_CRED, REQ),
    SESSION,
    APPROVAL_ID,
    BYTES(SAM_T_CERT, MANY(1, SAM_CERTS_MAX), 1, SAM_CERT_MAX), /* end entity, then the chain */
    ORIGIN,
};
static const sam_field_spec_t renew[] = {
    ARG(SAM_T_CRED, REQ),
    SESSION,
    APPROVAL_ID,
    ORIGIN,
};
static const sam_field_spec_t tsa_key[] = { /* the credential id is the SAM's own tsa_credential */
    SESSION,
    APPROVAL_ID,
    KEY_SPEC,
    ARG(SAM_T_SUBJECT_CN, OPT),
    ORIGIN,
};
static const sam_field_spec_t tsa_key_r[] = {
    CRED,
};
/* Without SESSION only while no operator exists (csc-admin init on a new database). */
static const sam_field_spec_t audit_key[] = {
    TEXT(SAM_T_SESSION, OPT, 1, SAM_TOKEN_MAX),
    APPROVAL_ID,
    ORIGIN,
};
static const sam_field_spec_t audit_key_r[] = {
    U32(SAM_T_CREATED, REQ, 0, 1),
    U32(SAM_T_SESSIONS, REQ, 0, UINT32_MAX),
};
/* DESCRIPTION: the command asking, "export-key" or "verify" (its two-person rule). */
/* csc-admin audit report (AUDIT_REPORT) and db backup (BACKUP_SIGN): the file's SHA-256; the reply: the text csc-sam
 * signed (naming that digest, the time and the operator) and the audit key's DER ECDSA signature over its SHA-256. */
static const sam_field_spec_t audit_report[] = {
    BYTES(SAM_T_DIGEST, REQ, 32, 32),
    SESSION,
    APPROVAL_ID,
    ORIGIN,
};
static const sam_field_spec_t audit_report_r[] = {
    BYTES(SAM_T_SIGNATURE, REQ, 1, SAM_SIG_MAX),
    TEXT(SAM_T_SIGNED_TEXT, REQ, 1, SAM_SIGNED_TEXT_MAX),
};
static const sam_field_spec_t audit_pubkey[] = {
    TEXT(SAM_T_DESCRIPTION, REQ, 1, 16),
    SESSION,
    APPROVAL_ID,
    ORIGIN,
};
static const sam_field_spec_t audit_pubkey_r[] = { /* absent: no audit key in the HSM */
    BYTES(SAM_T_PUBKEY, OPT, 1, SAM_PUBKEY_MAX),
};
/* csc-admin user add (KIND new: USER and its references; csc-sam creates the user, state enrolling) and user recover
 * (KIND recover; CRED: credentials whose PIN the user must set again). LETTER: answer the code instead of sending it
 * (refused when a sender is configured: the operator never sees a code that can be sent). */
static const sam_field_spec_t enroll_issue[] = {
    TEXT(SAM_T_CRED, MANY(0, SAM_ENROLL_CREDS_MAX), 0, SAM_DESCRIPTION_MAX),
    ARG(SAM_T_USER, REQ),
    SESSION,
    APPROVAL_ID,
    ARG(SAM_T_CONTACT, OPT),
    ARG(SAM_T_EVIDENCE, OPT),
    ARG(SAM_T_APPLICANT, OPT),
    ARG(SAM_T_MANDATE, OPT),
    U32(SAM_T_LETTER, OPT, 1, 1),
    U32(SAM_T_KIND, REQ, SAM_ENROLL_NEW, SAM_ENROLL_RECOVER),
    ORIGIN,
};
static const sam_field_spec_t enroll_issue_r[] = { /* the expiry; the code only for a letter; CONTACT: sent there */
    U64(SAM_T_TIME_MS, REQ),
    TEXT(SAM_T_CONTACT, OPT, 1, SAM_CONTACT_MAX),
    TEXT(SAM_T_ENROLL_CODE, OPT, 1, SAM_ENROLL_CODE_MAX),
};
/* csc-admin login (OPERATOR_LOGIN): what the operator typed (empty values are wrong ones: they cost the same and
 * count); csc-sam checks the factors (admin/'s lock-out) and answers the session token, bound to ORIGIN's host. */
static const sam_field_spec_t operator_login[] = {
    TEXT(SAM_T_USER, REQ, 0, SAM_NAME_MAX),
    TEXT(SAM_T_OTP, REQ, 0, SAM_OTP_MAX),
    TEXT(SAM_T_PASSWORD, REQ, 0, SAM_SECRET_MAX),
    ORIGIN,
};
static const sam_field_spec_t operator_login_r[] = {
    SESSION,
};
/* csc-admin operator bootstrap (no SESSION, no ROLES: the first operator, while none exists; PASSWORD; the TOTP secret
 * made and sealed here, answered once to that terminal) and operator add (SESSION, ROLES, APPROVAL_ID under two_person;
 * CONTACT or LETTER: a one-time enrollment code sent, or answered for a sealed letter; no factor of the new operator). */
static const sam_field_spec_t operator_new[] = {
    ARG(SAM_T_USER, REQ),
    TEXT(SAM_T_SESSION, OPT, 1, SAM_TOKEN_MAX),
    APPROVAL_ID,
    ARG(SAM_T_CONTACT, OPT),
    U32(SAM_T_LETTER, OPT, 1, 1),
    TEXT(SAM_T_PASSWORD, OPT, 0, SAM_SECRET_MAX),
    ORIGIN,
    U32(SAM_T_ROLES, OPT, 1, STOR_ROLES_ALL),
};
static const sam_field_spec_t operator_new_r[] = { /* bootstrap: the secret; add: the expiry, where it went or the code */
    U64(SAM_T_TIME_MS, OPT),
    TEXT(SAM_T_CONTACT, OPT, 1, SAM_CONTACT_MAX),
    BYTES(SAM_T_TOTP_SECRET, OPT, 1, STOR_TOTP_MAX),
    TEXT(SAM_T_ENROLL_CODE, OPT, 1, SAM_ENROLL_CODE_MAX),
    U32(SAM_T_ROLES, REQ, 1, STOR_ROLES_ALL),
};
/* csc-admin operator enroll, on the new operator's terminal: the name and the code typed -> the ticket of the second
 * step and the TOTP secret (made here, kept sealed); then the ticket, the password chosen and a first TOTP code. */
static const sam_field_spec_t operator_enroll_begin[] = {
    TEXT(SAM_T_USER, REQ, 0, SAM_NAME_MAX),
    TEXT(SAM_T_ENROLL_CODE, REQ, 0, SAM_ENROLL_CODE_MAX),
    ORIGIN,
};
static const sam_field_spec_t operator_enroll_begin_r[] = {
    EXPIRES_IN(REQ),
    TEXT(SAM_T_ENROLL_TICKET, REQ, 1, SAM_TOKEN_MAX),
    BYTES(SAM_T_TOTP_SECRET, REQ, 1, STOR_TOTP_MAX),
};
static const sam_field_spec_t operator_enroll_finish[] = {
    TEXT(SAM_T_USER, REQ, 0, SAM_NAME_MAX),
    TEXT(SAM_T_OTP, REQ, 0, SAM_OTP_MAX),
    TEXT(SAM_T_ENROLL_TICKET, REQ, 1, SAM_TOKEN_MAX),
    TEXT(SAM_T_PASSWORD, REQ, 0, SAM_SECRET_MAX),
    ORIGIN,
};
static const sam_field_spec_t operator_enroll_finish_r[] = {
    U32(SAM_T_ROLES, REQ, 1, STOR_ROLES_ALL),
};

/* TOKEN: the grant as the client presented it; csc-sam authenticates the client (CLIENT_ID, CLIENT_SECRET: every grant
 * but LOGIN_REFRESH) and checks the code (hash, single use, client, redirect URI, PKCE) or the refresh token (rotation,
 * reuse) itself. CLIENT: the caller's address for LOGIN_REFRESH's audit record. Values the front end cannot carry
 * (too long, not ASCII) it sends as "", which is as wrong as they are. */
static const sam_field_spec_t token[] = {
    TEXT(SAM_T_CLIENT, OPT, 1, SAM_CLIENT_MAX),
    TEXT(SAM_T_CODE, OPT, 0, SAM_TOKEN_MAX),
    TEXT(SAM_T_REFRESH_TOKEN, OPT, 0, SAM_TOKEN_MAX),
    U32(SAM_T_GRANT_TYPE, REQ, SAM_GRANT_CODE, SAM_GRANT_LOGIN_REFRESH),
    TEXT(SAM_T_CLIENT_ID, OPT, 1, SAM_NAME_MAX),
    TEXT(SAM_T_CLIENT_SECRET, OPT, 0, SAM_CLIENT_SECRET_MAX),
    TEXT(SAM_T_REDIRECT_URI, OPT, 0, SAM_URI_MAX),
    TEXT(SAM_T_VERIFIER, OPT, 0, SAM_VERIFIER_MAX),
};
static const sam_field_spec_t token_r[] = { /* the access (or credential) token; a refresh token when one is issued */
    TEXT(SAM_T_TOKEN, REQ, 1, SAM_TOKEN_MAX),
    TEXT(SAM_T_CRED, OPT, 1, SAM_NAME_MAX),
    EXPIRES_IN(REQ),
    TEXT(SAM_T_REFRESH_TOKEN, OPT, 1, SAM_TOKEN_MAX),
    U32(SAM_T_SCOPE, REQ, STOR_SCOPE_SERVICE, STOR_SCOPE_CREDENTIAL),
    TEXT(SAM_T_AUTHZ_DETAILS, OPT, 1, SAM_AUTHZ_DETAILS_MAX),
};
/* REVOKE: auth/revoke (TOKEN: the caller's bearer token, checked here; CLIENT for the audit record) or /oauth2/revoke
 * (the client authenticated here); REVOKE_TOKEN as presented ("" when it cannot be carried: unknown). */
static const sam_field_spec_t revoke[] = {
    ONE_TEXT(1, SAM_T_TOKEN, 1, SAM_TOKEN_MAX),
    TEXT(SAM_T_CLIENT, OPT, 1, SAM_CLIENT_MAX),
    ONE_TEXT(1, SAM_T_CLIENT_ID, 1, SAM_NAME_MAX),
    TEXT(SAM_T_CLIENT_SECRET, OPT, 0, SAM_CLIENT_SECRET_MAX),
    TEXT(SAM_T_REVOKE_TOKEN, REQ, 0, SAM_TOKEN_MAX),
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define OP(op, prov, name, req, rep) {op, prov, name, req, N(req)}, {(op) | SAM_OP_REPLY, prov, name " reply", rep, N(rep)}
#define OP_EMPTY_REPLY(op, prov, name, req) {op, prov, name, req, N(req)}, {(op) | SAM_OP_REPLY, prov, name " reply", NULL, 0}

static const sam_op_spec_t ops[] = {
    OP(SAM_OP_HELLO, 0, "HELLO", hello, hello_r),
    OP(SAM_OP_AUTHORIZE, 0, "AUTHORIZE", authorize, authorize_r),
    OP(SAM_OP_AUTHORIZE_CHECK, 0, "AUTHORIZE_CHECK", authorize_check, authorize_check_r),
    OP(SAM_OP_EXTEND, 0, "EXTEND", extend, sad_r),
    OP(SAM_OP_SIGN, 0, "SIGN", sign, sign_r),
    OP(SAM_OP_STAMP, 0, "STAMP", stamp, stamp_r),
    OP(SAM_OP_CHALLENGE, 0, "CHALLENGE", challenge, challenge_r),
    OP_EMPTY_REPLY(SAM_OP_APPROVE, 0, "APPROVE", approve),
    OP(SAM_OP_CONSENT, 0, "CONSENT", consent, consent_r),
    OP(SAM_OP_AUDIT_HEAD, 0, "AUDIT_HEAD", audit_head, audit_head_r),
    OP(SAM_OP_SIGN_RESERVED, 0, "SIGN_RESERVED", sign_reserved, sign_r),
    OP(SAM_OP_KEY_CREATE, 0, "KEY_CREATE", key_create, key_create_r),
    OP_EMPTY_REPLY(SAM_OP_KEY_DESTROY, 0, "KEY_DESTROY", key_destroy),
    OP(SAM_OP_BACKUP_INIT, 0, "BACKUP_INIT", backup_init, backup_init_r),
    OP(SAM_OP_BACKUP, 0, "BACKUP", backup, backup_r),
    OP(SAM_OP_RESTORE, 0, "RESTORE", restore, restore_r),
    OP(SAM_OP_CSR, 0, "CSR", csr, csr_r),
    OP_EMPTY_REPLY(SAM_OP_CERT_IMPORT, 0, "CERT_IMPORT", cert_import),
    OP(SAM_OP_TSA_KEY, 0, "TSA_KEY", tsa_key, tsa_key_r),
    OP(SAM_OP_AUDIT_KEY, 0, "AUDIT_KEY", audit_key, audit_key_r),
    OP(SAM_OP_DESTROY_PENDING, 0, "DESTROY_PENDING", destroy_pending, destroy_pending_r),
    OP_EMPTY_REPLY(SAM_OP_USER_TERMINATE, 0, "USER_TERMINATE", user_terminate),
    OP_EMPTY_REPLY(SAM_OP_RENEW, 0, "RENEW", renew),
    OP(SAM_OP_AUDIT_PUBKEY, 0, "AUDIT_PUBKEY", audit_pubkey, audit_pubkey_r),
    OP(SAM_OP_AUDIT_REPORT, 0, "AUDIT_REPORT", audit_report, audit_report_r),
    OP(SAM_OP_BACKUP_SIGN, 0, "BACKUP_SIGN", audit_report, audit_report_r),
    OP(SAM_OP_ENROLL_BEGIN, 0, "ENROLL_BEGIN", enroll_begin, enroll_begin_r),
    OP(SAM_OP_ENROLL_FINISH, 0, "ENROLL_FINISH", enroll_finish, enroll_finish_r),
    OP_EMPTY_REPLY(SAM_OP_ACCOUNT_PIN, 0, "ACCOUNT_PIN", account_pin),
    OP(SAM_OP_LOGIN, 0, "LOGIN", login, login_r),
    OP_EMPTY_REPLY(SAM_OP_ACCOUNT_PASSWORD, 0, "ACCOUNT_PASSWORD", account_password),
    OP(SAM_OP_ACCOUNT_TOTP_BEGIN, 0, "ACCOUNT_TOTP_BEGIN", account_totp_begin, account_totp_begin_r),
    OP_EMPTY_REPLY(SAM_OP_ACCOUNT_TOTP_FINISH, 0, "ACCOUNT_TOTP_FINISH", account_totp_finish),
    OP(SAM_OP_ACCOUNT_RESTORE, 0, "ACCOUNT_RESTORE", account_restore, account_restore_r),
    OP(SAM_OP_ENROLL_ISSUE, 0, "ENROLL_ISSUE", enroll_issue, enroll_issue_r),
    OP(SAM_OP_OPERATOR_LOGIN, 0, "OPERATOR_LOGIN", operator_login, operator_login_r),
    OP(SAM_OP_OPERATOR_NEW, 0, "OPERATOR_NEW", operator_new, operator_new_r),
    OP(SAM_OP_OPERATOR_ENROLL_BEGIN, 0, "OPERATOR_ENROLL_BEGIN", operator_enroll_begin, operator_enroll_begin_r),
    OP(SAM_OP_OPERATOR_ENROLL_FINISH, 0, "OPERATOR_ENROLL_FINISH", operator_enroll_finish, operator_enroll_finish_r),
    OP(SAM_OP_TOKEN, 0, "TOKEN", token, token_r),
    OP_EMPTY_REPLY(SAM_OP_REVOKE, 0, "REVOKE", revoke),
    OP(SAM_OP_API_LOGIN, 0, "API_LOGIN", api_login, api_login_r),
    {SAM_OP_REFUSED, 0, "REFUSED", refused, N(refused)},
};

const sam_op_spec_t *sam_op_spec(unsigned op)
{
    for (size_t i = 0; i < N(ops); i++)
        if (ops[i].op == op)
            return &ops[i];
    return NULL;
}

const sam_field_spec_t *sam_field_spec(const sam_op_spec_t *spec, unsigned tag)
{
    if (spec == NULL)
        return NULL;
    for (size_t i = 0; i < spec->n_fields; i++)
        if (spec->fields[i].tag == tag)
            return &spec->fields[i];
    return NULL;
}

const char *sam_op_name(unsigned op)
{
    const sam_op_spec_t *s = sam_op_spec(op);
    return s != NULL ? s->name : NULL;
}

const char *sam_refusal_name(uint32_t code)
{
    static const char *const names[] = {
        NULL,          "BAD_MESSAGE", "UNAUTHORIZED", "EXPIRED", "EXHAUSTED", "NOT_BOUND",
        "DISABLED",    "LOCKED",      "BUSY",         "UNAVAILABLE", "INTERNAL", "NOT_FOUND",
        "RATE",        "FULL",        "FORBIDDEN",    "NOT_OFFERED", "EXISTS",
        "REVOKED",     "SUSPENDED",   "CERT_UNKNOWN", "DB_DOWN",     "CLOCK",
    };
    _Static_assert(N(names) == SAM_REFUSE_MAX + 1, "one name per refusal code");
    return code < N(names) ? names[code] : NULL;
}
