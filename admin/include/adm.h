/*
 * adm.h - the operator library, used by csc-admin only (never linked into csc-server): operators of csc-admin,
 * their roles, login sessions and the two-person rule (J14).
 *
 * Error model: every adm_ function that can fail returns ADM_OK (0) or a negative ADM_* code and, where it takes
 * (err, err_sz), writes a one-line reason (no secrets) into err. The codes below say what the caller can act on;
 * ADM_ERR is everything else (storage, HSM, memory).
 *
 * Transitional: the context (csc_admin_t) is still declared in csc.h while the user, credential and backup
 * functions move here from csc-api.
 */
#ifndef ADM_H
#define ADM_H

#include <stddef.h>
#include <stdint.h>
#include "csc.h"
#include "stor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- csc-admin operators, their sessions and two-person approvals (J14, adm_operator.c) ---- */

/** Login and session rules for operators (from the configuration). */
typedef struct adm_op_policy {
    unsigned session_idle;     /**< seconds without a command before a session ends */
    unsigned session_max;      /**< seconds after login when a session ends regardless */
    unsigned max_failures;     /**< failed logins in a row before the operator is locked */
    unsigned lock_seconds;
    unsigned totp_window;      /**< accepted TOTP steps either side of now */
    unsigned approval_ttl;     /**< seconds a two-person request waits for its approval */
} adm_op_policy_t;

#define ADM_OP_TOKEN_LEN 64    /**< hex characters of a session token */

enum {
    ADM_OK = 0,
    ADM_ERR = -1,              /**< storage or internal failure (message in err) */
    ADM_DENIED = -2,           /**< wrong name, password or OTP (one answer), a reused OTP, or a disabled operator */
    ADM_LOCKED = -3,           /**< too many failed logins */
    ADM_NOSESSION = -4,        /**< no session, unknown or logged out, or its operator is gone or disabled */
    ADM_EXPIRED = -5,          /**< idle or absolute expiry passed */
    ADM_FORBIDDEN = -6,        /**< the operator lacks the role, or the rule forbids the action (self-approval, ...) */
    ADM_EXISTS = -7,   
    ADM_NOTFOUND = -8,   
};

/** "user-admin,key-admin,auditor" (any subset, or "all") to a stor_role_t bit set. @return 0 or -1. */
int adm_op_roles_parse(const char *s, uint32_t *roles);
/** Bit set to "user-admin,key-admin" ("-" for none). */
void adm_op_roles_format(uint32_t roles, char *out, size_t out_sz);

/**
 * First operator, with every role, only while no operator exists (else ADM_EXISTS). New TOTP secret returned
 * as base32 and otpauth URI (the caller wipes them). Audited (STOR_EV_OPERATOR).
 */
int adm_op_bootstrap(const csc_admin_t *a, const char *name, const char *password, char *uri, size_t uri_sz,
                     char *b32, size_t b32_sz, char *err, size_t err_sz);
/** Add an operator with roles (a->operator_name is the acting operator). Same outputs as bootstrap. */
int adm_op_add(const csc_admin_t *a, const char *name, uint32_t roles, const char *password, char *uri,
               size_t uri_sz, char *b32, size_t b32_sz, char *err, size_t err_sz);
/** Remove an operator and (lazily) every session of it; not oneself (ADM_FORBIDDEN). */
int adm_op_remove(const csc_admin_t *a, const char *name, char *err, size_t err_sz);
/** Replace an operator's roles; never one's own (ADM_FORBIDDEN). */
int adm_op_set_roles(const csc_admin_t *a, const char *name, uint32_t roles, char *err, size_t err_sz);
/** Print the operators, one line each (no secrets). */
int adm_op_list(const csc_admin_t *a, void *out_file);
/**
 * Log an operator in with password and current TOTP code; on success a new session token (hex, NUL-terminated)
 * of which only the hash is stored. Failures count towards the lockout; everything is audited.
 * @return ADM_OK, ADM_DENIED, ADM_LOCKED, ADM_ERR
 */
int adm_op_login(const csc_admin_t *a, const adm_op_policy_t *p, const char *name, const char *password,
                 const char *otp, char token[ADM_OP_TOKEN_LEN + 1], char *err, size_t err_sz);
/** End a session at once. @return ADM_OK, ADM_NOSESSION, ADM_ERR. Audited. */
int adm_op_logout(const csc_admin_t *a, const char *token, char *err, size_t err_sz);
/**
 * Check a session for a command needing one of the roles in role (0 = any operator) and refresh its idle timer. name gets the
 * operator's name, roles its roles. A refusal is audited with command (free text, e.g. "user add").
 * @return ADM_OK, ADM_NOSESSION, ADM_EXPIRED, ADM_FORBIDDEN, ADM_ERR
 */
int adm_op_session_check(const csc_admin_t *a, const adm_op_policy_t *p, const char *token, uint32_t role,
                         const char *command, char name[STOR_NAME_MAX + 1], uint32_t *roles, char *err,
                         size_t err_sz);
/** Record a command held for a second operator (requester a->operator_name). id gets the request id. Audited. */
int adm_op_approval_request(const csc_admin_t *a, const adm_op_policy_t *p, uint32_t role, int argc,
                            char *const *argv, char id[STOR_NAME_MAX + 1], char *err, size_t err_sz);
/**
 * Approve request id as operator a->operator_name with approver_roles: it must be another operator than the
 * requester and hold (one of) the request's role(s), and the request must not have expired. The request is removed and
 * copied to out for the caller to execute. Approval and every refusal are audited with both names.
 * @return ADM_OK, ADM_NOTFOUND, ADM_EXPIRED, ADM_FORBIDDEN, ADM_ERR
 */
int adm_op_approval_take(const csc_admin_t *a, const char *id, uint32_t approver_roles, stor_approval_t *out,
                         char *err, size_t err_sz);
/** Reject (remove) request id; needs the request's role. Audited. */
int adm_op_approval_reject(const csc_admin_t *a, const char *id, uint32_t roles, char *err, size_t err_sz);
/** Print pending requests, one line each. */
int adm_op_approvals_list(const csc_admin_t *a, void *out_file);
/** Audit a csc-admin event of an operator (STOR_EV_OPERATOR); result is a stor_result_t. */
int adm_op_audit(const csc_admin_t *a, uint32_t result, const char *user, const char *detail);

#ifdef __cplusplus
}
#endif
#endif
