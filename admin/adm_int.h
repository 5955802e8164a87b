/* adm_int.h - private to admin/: the one error helper of the operator library. */
#ifndef ADM_INT_H
#define ADM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/x509.h>
#include "adm.h"
#include "pki.h"

#define ADM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/** Write a formatted reason into err (if err != NULL and err_sz > 0) and return code (an ADM_* value). */
int adm_err(char *err, size_t err_sz, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/** In a function with parameters (err, err_sz): fill err and evaluate to ADM_ERR. */
#define ADM_FAIL(...) adm_err(err, err_sz, ADM_ERR, __VA_ARGS__)

/** Where an audit verification's problem lines go (adm_audit.c, adm_audit_heads.c), and how many went. */
typedef struct adm_findings {
    adm_audit_problem_fn fn;
    void *arg;
    unsigned long problems;
} adm_findings_t;
/** Format one problem line (cut at ADM_AUDIT_LINE_MAX), hand it to f->fn and count it. */
void adm_finding(adm_findings_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Credential PINs adm_cred_create() sets (the unit tests' fixtures; csc-admin sets none): at least adm_pin_min(). */
#define ADM_PIN_MIN 6
#define ADM_PIN_MAX 32
/** The shortest PIN csc-admin sets: the configured pin_min_length, never below ADM_PIN_MIN. */
unsigned adm_pin_min(const adm_t *a);
/** Inside the write that applies an operator's reset of u (password, TOTP, suspension, termination): bump its
 *  epoch and revoke every token, SAD and pending authorization of the user (stor_txn_user_revoke_all), appending
 *  the counts to audit->detail. The caller puts u and appends audit in the same transaction. */
int adm_user_reset_txn(stor_txn_t *t, stor_user_t *u, stor_audit_t *audit);

/* adm_tsa.c: an end-entity certificate for pub from the CA (tsa: EKU timeStamping, critical), chain into cred;
 * -1 with err set (also when the CA is refused). */
int adm_issue_cert(const adm_ca_t *ca, EVP_PKEY *pub, const char *cn, bool tsa, stor_cred_t *cred, char *err,
                   size_t err_sz);

/* adm_certmgmt.c. Subject C=country, O=o, CN=cn after checking them (CN and O 1..64 characters, C two upper-case
 * letters). */
int adm_subject_build(const char *cn, const char *o, const char *c, X509_NAME **out, char *err, size_t err_sz);
/* A PKCS#10 request for the HSM key key_id, its signature made by that key in the HSM; checked to verify. */
int adm_csr_build(hsm_t *h, const uint8_t *key_id, size_t key_id_len, const X509_NAME *subject, X509_REQ **out,
                  char *err, size_t err_sz);
/* The same, written to file as PEM. */
int adm_csr_write(hsm_t *h, const uint8_t *key_id, size_t key_id_len, const X509_NAME *subject, const char *file,
                  char *err, size_t err_sz);

#endif
