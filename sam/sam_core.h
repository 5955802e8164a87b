/* sam_core.h - csc-sam's op handlers, called by sam_server.c for each decoded request. Private to sam/. */
#ifndef SAM_CORE_H
#define SAM_CORE_H

#include <stdint.h>

#include "sam_server.h"

/**
 * Answer the request req (a request op, decoded against its table) into b, which this initialises: the op's reply,
 * or its REFUSED. Ops not served yet are refused with SAM_REFUSE_NOT_OFFERED.
 * @return SAM_OK, or the builder's error (b is then to be freed and the connection closed)
 */
int sam_core_handle(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/** STAMP (sam_op_stamp.c): a time-stamp token over the request's message imprint, made and audited here. */
int sam_op_stamp(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/** The refusal code (SAM_REFUSE_*) that stands for an oauth/ result code (OAUTH_ERR_*; the front end reads it back
 *  per subject in csc-api/csc_req.c). OAUTH_OK and unknown codes: SAM_REFUSE_INTERNAL. */
uint32_t sam_refusal_of_oauth(int code);
/** A storage failure as a refusal: the database out of reach (STOR_ERR_UNAVAILABLE) is SAM_REFUSE_DB_DOWN, anything
 *  else SAM_REFUSE_UNAVAILABLE. */
uint32_t sam_refusal_of_stor(int stor_rc);

/* ---- what the op handlers share (sam_core.c) ---- */

/** The refusal of req: code, a reason for people, about (a tag, 0 = none). @return as sam_core_handle */
int sam_refuse(sam_builder_t *b, const sam_msg_t *req, uint32_t code, const char *reason, unsigned about);
/** The refusal that stands for an oauth/ result (sam_refusal_of_oauth), its text as the reason. */
int sam_refuse_oauth(sam_builder_t *b, const sam_msg_t *req, int oauth_rc, unsigned about);
/**
 * Who asks: the caller's own bearer token (TOKEN) checked with oauth/ here, never the front end's word. A token
 * that acts for no user (client_credentials) is OAUTH_ERR_INVALID; with user_only, so is a credential-scope token.
 * @return OAUTH_OK (p filled) or the oauth/ code to refuse with, about SAM_T_TOKEN
 */
int sam_principal(const sam_server_config_t *cfg, const sam_msg_t *req, int user_only, oauth_principal_t *p);
/** sam_principal in t, a transaction the caller runs (oauth_token_check_txn; user_hint: which user row to read ahead,
 *  never trusted). */
int sam_principal_txn(const sam_server_config_t *cfg, stor_txn_t *t, const sam_msg_t *req, int user_only,
                      const char *user_hint, oauth_principal_t *p);
/** A TEXT field into out (NUL-terminated; "" when absent). The caller wipes out when it holds a secret. */
void sam_text(const sam_msg_t *req, unsigned tag, char *out, size_t outsz);
/** REQUEST_ID into out ("" when absent). -1 when it holds anything but [A-Za-z0-9._-]: the front end checked it, and
 *  an id with a space or '=' would forge words of the audit detail. */
int sam_request_id(const sam_msg_t *req, char out[SAM_REQUEST_ID_MAX + 1]);
/** Append a DENIED audit record of event for user, credential and client with detail (a printf format). */
__attribute__((format(printf, 6, 7))) void sam_audit_denied(const sam_server_config_t *cfg, uint32_t event,
                                                            const char *user, const char *cred,
                                                            const char *client, const char *fmt, ...);
/** A request that did not decode, or was cut off (too big, too slow): audited (STOR_EV_SAM, DENIED). */
void sam_core_audit_malformed(const sam_server_config_t *cfg, const char *why);

/* ---- op handlers, one file each ---- */
/* sam_op_authorize.c: AUTHORIZE, AUTHORIZE_CHECK, EXTEND */
int sam_op_authorize(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_authorize_check(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_extend(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/* sam_op_sign.c: SIGN (synchronous, ASYNC reservations, CMS signed attributes) and SIGN_RESERVED */
int sam_op_sign(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_sign_reserved(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** Give back every reservation not signed yet (csc-sam stopping). */
void sam_op_sign_release_all(const char *reason);
/* sam_op_authorize.c, shared with sam_op_sign.c: the credential id of req as the user may use it (the owner's, or
 * delegated to the user; not pending); a credential-scope principal only its own. @return 0, or the refusal code
 * (SAM_REFUSE_NOT_FOUND, SAM_REFUSE_UNAVAILABLE) about SAM_T_CRED */
uint32_t sam_load_cred(const sam_server_config_t *cfg, const oauth_principal_t *p, const char *id, stor_cred_t *out);
/* sam_load_cred in t, a transaction the caller runs. */
uint32_t sam_load_cred_txn(stor_txn_t *t, const oauth_principal_t *p, const char *id, stor_cred_t *out);
/* The production policy (J13) for cred: NULL when it may authorize and sign, else why not. */
const char *sam_policy_refusal(const sam_server_config_t *cfg, const stor_cred_t *cred);
/**
 * Refuse req (code, reason, about: a tag or 0) into b, and audit the refusal first (event, STOR_RES_DENIED, user,
 * cred and client as known: NULL is "", detail = reason): the SAM's own refusals (a token or session it could not
 * verify) that no oauth/ call audited already.
 * @return sam_build_refusal()'s result
 */
int sam_core_refuse_audited(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, uint32_t event,
                            const char *user, const char *cred, const char *client, uint32_t code, const char *reason,
                            unsigned about);

/* ---- op handlers (one file each: sam_op_<name>.c), rows of sam_core.c's table ---- */

/** CHALLENGE (sam_op_challenge.c): credentials/getChallenge and v1 sendOTP: make and deliver a one-time code. */
int sam_op_challenge(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/** CONSENT (sam_op_consent.c): the OAuth consent page's decision in a stored browser session -> authorization code. */
int sam_op_consent(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/* sam_page.c: what CONSENT and APPROVE share. */
typedef struct sam_page {
    char sid[SAM_TOKEN_MAX + 1];                 /**< the browser session's id */
    char addr[SAM_ADDR_MAX + 1];                 /**< the person's address ("" when absent) */
    char client[sizeof(OAUTH_APPROVAL_PAGE_CLIENT "@") + SAM_ADDR_MAX]; /**< for audit records: PREFIX@addr, or addr */
    uint32_t decision;                           /**< 1 approve, 0 refuse */
    const uint8_t *pin;                          /**< the PIN typed (NULL: none); points into the request */
    size_t pin_len;
    oauth_session_view_t *v;                     /**< the session as stored */
} sam_page_t;
/**
 * A page's decision: read SESSION, CSRF, DECISION, PIN and ADDR of req, read the browser session from storage and
 * compare the form's CSRF token with the session's in constant time. Refusals about the session are audited as event
 * (STOR_EV_DENIED; client: "prefix@addr", or addr when prefix is NULL).
 * @return 0 (p filled), or -1 with the refusal built into b and *rc its result. Call sam_page_close() either way.
 */
int sam_page_open(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, uint32_t event,
                  const char *prefix, sam_page_t *p, int *rc);
/** sam_page_open for /account's ops: the session must be a signed-in session of the account (approval) page, else
 *  refused (UNAUTHORIZED about SESSION) and audited as event. */
int sam_page_open_account(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, uint32_t event,
                          sam_page_t *p, int *rc);
void sam_page_close(sam_page_t *p);

/** APPROVE (sam_op_approve.c): the /approve page's decision, in a stored browser session, on the session user's own
 *  pending authorization (oauth_approval_decide). */
int sam_op_approve(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/* ---- the operators' socket (sam_op_keys.c; cfg->operators): csc-admin's key operations ---- */

/* One operator request being served: admin/'s context with the operator's name. */
typedef struct op_ctx {
    adm_t adm;
    char name[STOR_NAME_MAX + 1];
    char who[2 * STOR_NAME_MAX + 16]; /* "name" or "approver,requester=name" */
    uint32_t roles;
    adm_origin_t origin;              /* csc-admin's claim: its host identity must be the session's */
} op_ctx_t;
/**
 * The checks every operator op begins with (sam_op_keys.c): the operator's session, the role of the command w1 w2,
 * the two-person rule (a stored request must name flag = match, or its first argument match when flag is NULL).
 * @return 0: go on, x filled; -1: the refusal is built into b and *rc is the builder's result
 */
int sam_op_begin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, const char *w1,
                 const char *w2, uint32_t role, const char *flag, const char *match, op_ctx_t *x, int *rc);
/* Enrollment codes (sam_op_enroll.c), shared with the operators' enrollment (sam_op_operator.c). */
#define SAM_ENROLL_CODE_TEXT 20 /**< "XXXX-XXXX-XXXX-XXXX" and its NUL */
/** A new code: its text and the SHA-256 of its normalized form. 0 or -1 (no randomness). */
int sam_enroll_code_new(char text[SAM_ENROLL_CODE_TEXT], uint8_t hash[32]);
/** The SHA-256 of a typed code, normalized (dashes, spaces, case); anything malformed hashes "" (wrong after the same
 *  work). */
void sam_enroll_code_hash(const char *typed, uint8_t hash[32]);
/** Deliver code to name's contact through otp_sender (channel ENROLL; exec: or file:), expiring at expires. 0, or -1
 *  with why. */
int sam_enroll_send_code(const sam_server_config_t *cfg, const char *name, const char *contact, const char *code,
                         int64_t expires, char *why, size_t whysz);
/** The refusal code (SAM_REFUSE_*) of an adm_ result (ADM_*; ADM_ERR and unknown ones: SAM_REFUSE_INTERNAL). */
uint32_t sam_refusal_of_adm(int rc);
/** OPERATOR_LOGIN (sam_op_operator.c): csc-admin login; the factors checked here (adm_op_login with the sealed TOTP
 *  secret opened through the factor key), the session bound to ORIGIN's host (refused without a claim). */
int sam_op_operator_login(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** OPERATOR_NEW (sam_op_operator.c): csc-admin operator bootstrap (no SESSION: the operator made with its TOTP secret
 *  sealed, the secret answered once to that terminal) and operator add (SESSION, ROLES, the two-person rule: the
 *  operator waits enrolling, with a one-time code sent by otp_sender or answered for a letter). */
int sam_op_operator_new(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** OPERATOR_ENROLL_BEGIN, OPERATOR_ENROLL_FINISH (sam_op_operator.c): csc-admin operator enroll on the new operator's
 *  terminal: name and code -> ticket and the TOTP secret (sealed in the record); ticket, password, first TOTP code ->
 *  active. */
int sam_op_operator_enroll_begin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_operator_enroll_finish(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/** KEY_CREATE: csc-admin credential create (adm_cred_create): key pair, certificate from the SAM's own CA or a PKCS#10
 *  request handed back. */
int sam_op_key_create(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** KEY_DESTROY: csc-admin credential destroy (REASON "operator request") or revoke ("certificate revoked"). */
int sam_op_key_destroy(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** DESTROY_PENDING: csc-admin credential destroy-pending; the report's lines come back (LINE). */
int sam_op_destroy_pending(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** USER_TERMINATE: csc-admin user terminate (every key of the user destroyed). */
int sam_op_user_terminate(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** BACKUP_INIT, BACKUP, RESTORE: csc-admin backup init, credential backup (the file's bytes come back) and restore
 *  (the file's bytes go). */
int sam_op_backup_init(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_backup(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_restore(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** CSR, CERT_IMPORT, RENEW: csc-admin credential renew --csr (the request's DER back), credential import (the
 *  certificates' DER), credential renew (the SAM's CA). */
int sam_op_csr(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_cert_import(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_renew(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** TSA_KEY: csc-admin tsa init (the SAM's own tsa_credential). AUDIT_KEY: audit key-init, and init on a new database
 *  (no session while no operator exists). AUDIT_HEAD: audit sign-head. AUDIT_PUBKEY: audit export-key and verify. */
int sam_op_tsa_key(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_audit_key(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_audit_head(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_audit_pubkey(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_audit_report(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);

/* ---- enrollment (sam_op_enroll.c, sam_op_account.c) ---- */

/** ENROLL_ISSUE (operators' socket): csc-admin user add (a new user, state enrolling) and user recover (password and
 *  TOTP cleared, chosen PINs unset): a one-time enrollment code, only its hash stored, sent by otp_sender or (LETTER,
 *  no sender configured) answered once for a sealed letter. */
int sam_op_enroll_issue(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** ENROLL_BEGIN: /enroll step 1 (name and code: a wrong one counts, the last try burns it) -> a ticket and the TOTP
 *  secret made for the enrollment; or the same step 2 again for a ticket. */
int sam_op_enroll_begin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** ENROLL_FINISH: /enroll step 2: password (rules), first TOTP code, PINs -> the user is active. */
int sam_op_enroll_finish(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** ACCOUNT_PIN: /account: the PIN of a credential that waits for the signed-in user's PIN. */
int sam_op_account_pin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** ACCOUNT_RESTORE (sam_op_restore_req.c): /account: the signed-in owner asks for a restore of a credential's key. */
int sam_op_account_restore(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** LOGIN: the pages' sign-in: password (scrypt) and TOTP (the secret opened here), lock-out, the browser session. */
int sam_op_login(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** API_LOGIN (sam_op_login.c): auth/login with a password: scrypt, lock-out, last sign-ins, the tokens. */
int sam_op_api_login(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** ACCOUNT_PASSWORD: /account: the old password (a wrong one counts as a failed sign-in), a new one (the rules). */
int sam_op_account_password(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** ACCOUNT_TOTP_BEGIN, ACCOUNT_TOTP_FINISH (sam_op_account_totp.c): /account's new TOTP secret: a code of the old
 *  one -> a pending sealed secret (a ticket); a code of the new one -> the user's TOTP replaced. */
int sam_op_account_totp_begin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_account_totp_finish(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** The account page's session of req (sam_page_open; refused unless signed in on the account page): its user and
 *  the audit client (pointing into p), and keep = SHA-256 of the session id. 0, or -1 with the refusal built (*rc). */
int sam_account_session(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b, sam_page_t *p,
                        const char **user, const char **client, uint8_t keep[32], int *rc);
/** The password rules (password_min_length, password_classes, not the name): NULL if pw is acceptable, else why not. */
const char *sam_password_refusal(const sam_server_config_t *cfg, const char *user, const char *pw);
/** The PIN rule (pin_min_length..32 digits): NULL if pin is acceptable, else why not. */
const char *sam_pin_refusal(const sam_server_config_t *cfg, const char *pin);
/** Set user's PIN of c to the verifier ver (vlen bytes) and mark it set (owner or delegate). @return 0 or -1 */
int sam_cred_set_pin(stor_cred_t *c, const char *user, const uint8_t *ver, uint32_t vlen);
/** TOKEN, REVOKE (sam_op_token.c): the token endpoint's grants and auth/login's refresh (the client authenticated
 *  and the code or refresh token checked and spent here), /oauth2/revoke and auth/revoke. */
int sam_op_token(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
int sam_op_revoke(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b);
/** The kind of otp_sender (sam_op_challenge.c): 0 none, 1 exec: (path after the colon in *path), 2 file:. */
int sam_sender_kind(const sam_server_config_t *cfg, const char **path);
/** Append line to the file: sink at path (0600). @return 0, or -1 with *why set */
int sam_sink_append(const char *path, const char *line, size_t len, const char **why);

/** The peer (SO_PEERCRED) of the connection the calling thread serves (sam_server.c; NULL: none known). */
void sam_core_peer_set(const sam_peer_t *peer);
/**
 * Where the operator op req comes from: its ORIGIN claim (adm_origin_parse) with this thread's peer uid beside it. A
 * missing or malformed claim leaves "-" words, the peer's uid and a zero host identity (which fits no session made by
 * csc-admin login). @return 0 (claimed), -1 (no valid claim)
 */
int sam_core_origin(const sam_msg_t *req, adm_origin_t *o);

/** Audit a connection refused because of its peer (STOR_EV_SAM, DENIED, "action=peer.refused uid= gid= pid="). */
void sam_core_audit_peer(const sam_server_config_t *cfg, const sam_peer_t *peer);

#endif
