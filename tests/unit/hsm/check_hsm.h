/*
 * check_hsm.h - shared fixture of the hsm unit tests.
 *
 * main() (before Check forks) creates a SoftHSM token in a fresh temporary
 * directory and generates the shared keys; every test opens its own hsm_t in
 * its forked child, so no PKCS#11 state crosses a fork.
 */
#ifndef CHECK_HSM_H
#define CHECK_HSM_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>
#include <openssl/evp.h>

#include "cfx_files.h" /* the token: the unit tests' shared fixture (tests/unit/fixture) */
#include "hsm.h"
#include "hsm_int.h"

#define T_MODULE CFX_SOFTHSM_MODULE
#define T_LABEL "hsm-unit"
#define T_PIN CFX_TOKEN_PIN
#define T_SO_PIN CFX_TOKEN_SO_PIN

typedef struct t_env {
    char dir[256];           /* temporary directory holding everything */
    char conf[320];          /* its softhsm2.conf */
    uint8_t rsa2048[HSM_KEYID_LEN];
    uint8_t ec256[HSM_KEYID_LEN];
    uint8_t ec384[HSM_KEYID_LEN];
} t_env_t;

extern t_env_t t_env;

/* Checked fixture of every test case: point SoftHSM at the shared token (tests may change it). */
void t_setup(void);

hsm_t *t_open(unsigned sessions);
int t_open_rc(const char *module, const char *label, const char *pin, unsigned sessions, hsm_t **out);

/* Verify sig over dig with pk the way a relying party does (OpenSSL, md set). */
int t_verify(EVP_PKEY *pk, const hsm_sign_params_t *p, const uint8_t *dig, size_t dlen, const uint8_t *sig,
             size_t slen);
/* Sign one random digest with the parameters and verify it; returns the hsm_sign code (verified if 0). */
int t_sign_verify(hsm_t *h, const uint8_t *id, EVP_PKEY *pk, const hsm_sign_params_t *p);
int t_sign1(hsm_t *h, const uint8_t *id, const hsm_sign_params_t *p, const uint8_t *dig, size_t dlen, uint8_t *sig,
            size_t *slen);

/* Sign a fixed digest with the EC P-256 key id (ECDSA, SHA-256): the hsm_sign code. */
int t_sign_rc(hsm_t *h, const uint8_t *id);

/* Raw PKCS#11 access behind the module's back, through its function list. */
CK_SESSION_HANDLE t_raw_session(hsm_t *h);
void t_raw_close(hsm_t *h, CK_SESSION_HANDLE s);
CK_OBJECT_HANDLE t_raw_find(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const uint8_t *id);
int t_raw_bool(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type);

hsm_sign_params_t t_params(hsm_sig_scheme_t scheme, int md_nid, int mgf_nid, unsigned salt);

Suite *t_suite_open(void);
Suite *t_suite_keys(void);
Suite *t_suite_sign(void);
Suite *t_suite_p11kit(void);
Suite *t_suite_recovery(void);
Suite *t_suite_backup(void);
Suite *t_suite_factor(void);

#endif
