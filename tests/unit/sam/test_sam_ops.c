/*
 * test_sam_ops.c - csc-sam's operators' socket (sam/sam_op_keys.c) spoken to directly, as someone who can reach the
 * socket but holds no valid operator session, or the wrong one, would: on the fixture's provisioned world
 * (tests/unit/fixture) with operators of csc-admin (root: every role; aud: auditor; ka2: key-admin) logged in, and
 * an in-process operators' SAM server beside the front end's. KEY_CREATE with a valid key-admin session makes the
 * credential (and a PKCS#10 request when asked); without a session, with a forged one, with an auditor's, or (under
 * two_person) without another operator's approval it is refused with its code, audited, and nothing is made; an
 * approval of another command or one's own request is refused; a front-end op on the operators' socket and an
 * operator op on the front end's are refused and audited. ctest: unit_sam_ops.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <liboath/oath.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "csc_fixture.h"
#include "fuzz_sam.h"
#include "sam_client.h"

#define OP_PASSWORD "operator-password-1"
#define NEW_CRED "ops-new"

static cfx_t fx;
static adm_ca_t ca;
static sam_operators_t ops;
static sam_server_t *opsrv;
static sam_client_t *opcli;
static char ops_path[CFX_PATH_MAX + 16];
static char tok_root[ADM_OP_TOKEN_LEN + 1], tok_aud[ADM_OP_TOKEN_LEN + 1], tok_ka2[ADM_OP_TOKEN_LEN + 1];
static int production;         /* the operators' socket of an environment = production */
static const char *evidence;   /* ENROLL_ISSUE's EVIDENCE (NULL: none) */
static const char *origin_claim; /* key_create sends it as ORIGIN when not NULL */

/* Add (or bootstrap) operator name with roles and log it in with the current TOTP code: its session token. */
static void operator_login(const char *name, uint32_t roles, char tok[ADM_OP_TOKEN_LEN + 1])
{
    adm_t a = ops.adm;
    char uri[512], b32[64], err[256], code[7];
    char *raw = NULL;
    size_t rawlen = 0;
    a.operator_name = "root";
    int rc = roles == 0 ? adm_op_bootstrap(&a, name, OP_PASSWORD, uri, sizeof(uri), b32, sizeof(b32), err, sizeof(err))
                        : adm_op_add(&a, name, roles, OP_PASSWORD, uri, sizeof(uri), b32, sizeof(b32), err,
                                     sizeof(err));
    ck_assert_msg(rc == ADM_OK, "operator %s: %s", name, err);
    ck_assert_int_eq(oath_base32_decode(b32, strlen(b32), &raw, &rawlen), OATH_OK);
    ck_assert_int_eq(oath_totp_generate(raw, rawlen, time(NULL), 30, 0, 6, code), OATH_OK);
    free(raw);
    rc = adm_op_login(&a, &ops.pol, name, OP_PASSWORD, code, tok, err, sizeof(err));
    ck_assert_msg(rc == ADM_OK, "login %s: %s", name, err);
}

/* The world with operators and an operators' socket whose two_person is two. */
static void open_ops(const char *two)
{
    char err[256];
    cfx_open(&fx, NULL);
    ck_assert_int_eq(oath_init(), OATH_OK);
    ca = (adm_ca_t){.cert_file = cfx_ca_file(0), .key_file = cfx_ca_file(1), .days = 365};
    ops = (sam_operators_t){
        .adm = {.stor = fx.stor, .hsm = fx.hsm, .ca = &ca, .operator_name = "-", .scrypt_log2n = 10,
                .issuer = "CFX", .trust_anchors = cfx_ca_file(0)},
        .pol = {.session_idle = 900, .session_max = 3600, .max_failures = 5, .lock_seconds = 60, .totp_window = 1,
                .approval_ttl = 600},
        .two_person = two,
    };
    static adm_op_factor_t factor; /* as csc-sam's: operators' TOTP secrets sealed under the token's factor key */
    factor = (adm_op_factor_t){.seal = sam_operator_totp_seal, .open = sam_operator_totp_open, .arg = fx.hsm};
    ops.adm.op_factor = &factor;
    operator_login("root", 0, tok_root);
    operator_login("aud", STOR_ROLE_AUDITOR, tok_aud);
    operator_login("ka2", STOR_ROLE_KEY_ADMIN, tok_ka2);
    snprintf(ops_path, sizeof(ops_path), "%s/ops.sock", fx.dir);
    sam_server_config_t sc = {.path = ops_path, .mode = 0600, .gid = (gid_t)-1, .allowed_uid = (uid_t)-1,
                              .max_connections = 4, .io_timeout_ms = 10000, .lock_wait_ms = 1000, .identity = "cfx-ops",
                              .stor = fx.stor, .hsm = fx.hsm, .oauth = fx.oauth, .operators = &ops,
                              .production = production};
    ck_assert_msg(sam_server_open(&sc, &opsrv, err, sizeof(err)) == 0, "sam_server_open: %s", err);
    ck_assert_int_eq(sam_server_start(opsrv), 0);
    ck_assert_int_eq(sam_client_new(ops_path, 2, 60000, &opcli), SAM_OK);
}

static void setup(void)
{
    open_ops("");
}

static void setup_two(void)
{
    open_ops("create,destroy");
}

static void setup_two_operator(void)
{
    open_ops("operator");
}

static void teardown(void)
{
    origin_claim = NULL;
    sam_client_free(opcli);
    sam_server_free(opsrv);
    opcli = NULL;
    opsrv = NULL;
    oath_done();
    cfx_close(&fx);
}

/* One KEY_CREATE of NEW_CRED for user (EC P-256, "PIN", SCAL 2) on client c with session (NULL: none), approval
 * (NULL: none) and pin (NULL: none, as csc-admin sends it). The refusal code (0: made; *csr gets the request's DER
 * when csr is not NULL) and about. */
static uint32_t key_create_pin(sam_client_t *c, const char *user, const char *session, const char *approval,
                               X509_REQ **csr, uint32_t *about, const char *pin)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    const uint8_t *msg, *p;
    size_t len;
    uint32_t code = 0;

    *about = 0;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_KEY_CREATE, sam_client_next_id(c)), SAM_OK);
    sam_put_str(&b, SAM_T_CRED, NEW_CRED);
    sam_put_str(&b, SAM_T_USER, user);
    if (pin != NULL)
        sam_put_str(&b, SAM_T_PIN, pin);
    sam_put_str(&b, SAM_T_SESSION, session != NULL ? session : "-");
    if (approval != NULL)
        sam_put_str(&b, SAM_T_APPROVAL_ID, approval);
    sam_put_u32(&b, SAM_T_KEY_TYPE, SAM_KEY_EC);
    sam_put_str(&b, SAM_T_CURVE, "1.2.840.10045.3.1.7");
    sam_put_str(&b, SAM_T_AUTH_EXPR, "PIN");
    sam_put_u32(&b, SAM_T_SCAL, 2);
    sam_put_u32(&b, SAM_T_MULTISIGN, 1);
    if (csr != NULL) {
        sam_put_str(&b, SAM_T_SUBJECT_O, "Test");
        sam_put_str(&b, SAM_T_SUBJECT_C, "JP");
        sam_put_u32(&b, SAM_T_CSR_WANTED, 1);
    }
    if (origin_claim != NULL)
        sam_put_str(&b, SAM_T_ORIGIN, origin_claim);
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(c, msg, len, &rb, &reply), SAM_OK);
    if (reply.op == SAM_OP_REFUSED) {
        ck_assert_int_eq(sam_get_u32(&reply, SAM_T_REFUSAL, &code), SAM_OK);
        (void)sam_get_u32(&reply, SAM_T_ABOUT, about);
    } else {
        char id[SAM_NAME_MAX + 1];
        ck_assert_int_eq(reply.op, SAM_OP_KEY_CREATE | SAM_OP_REPLY);
        ck_assert_int_eq(sam_get_text(&reply, SAM_T_CRED, id, sizeof(id)), SAM_OK);
        ck_assert_str_eq(id, NEW_CRED);
        if (csr != NULL) {
            ck_assert_int_eq(sam_get_bytes(&reply, SAM_T_CSR, &p, &len), SAM_OK);
            *csr = d2i_X509_REQ(NULL, &p, (long)len);
            ck_assert_ptr_nonnull(*csr);
        }
    }
    sam_build_free(&b);
    sam_rbuf_free(&rb);
    return code;
}

static uint32_t key_create(sam_client_t *c, const char *user, const char *session, const char *approval,
                           X509_REQ **csr, uint32_t *about)
{
    return key_create_pin(c, user, session, approval, csr, about, NULL);
}

/* Whether the credential exists, and its status. */
static int cred_status(const char *id, uint32_t *status)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    int rc = stor_cred_get(fx.stor, id, c);
    *status = c->status;
    OPENSSL_clear_free(c, sizeof(*c));
    return rc == STOR_OK;
}

/* Audit records whose detail contains needle (and, when user is not NULL, of that user). */
typedef struct find {
    const char *needle, *user;
    uint32_t result;
    unsigned n;
} find_t;

static int find_rec(const stor_audit_t *rec, void *arg)
{
    find_t *f = arg;
    if (strstr(rec->detail, f->needle) != NULL && rec->result == f->result &&
        (f->user == NULL || strcmp(rec->user, f->user) == 0))
        f->n++;
    return 0;
}

static unsigned audited(const char *needle, const char *user, uint32_t result)
{
    find_t f = {.needle = needle, .user = user, .result = result};
    ck_assert_int_eq(stor_audit_each(fx.stor, 1, find_rec, &f), STOR_OK);
    return f.n;
}

START_TEST(t_create_by_key_admin)
{
    uint32_t about, st;
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_root, NULL, NULL, &about), 0);
    ck_assert(cred_status(NEW_CRED, &st));
    ck_assert_uint_eq(st, STOR_CRED_ENABLED);
    ck_assert_uint_eq(audited("operator=root action=credential.create", CFX_USER, STOR_RES_OK), 1);
    /* the same id again: refused by admin/, nothing replaced */
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_ka2, NULL, NULL, &about), SAM_REFUSE_INTERNAL);
}
END_TEST

/* Issue 12: no operator sets a PIN. A KEY_CREATE that carries one (a csc-admin of the operator's own making) is
 * refused before a key is made; without one the credential waits for its owner's PIN, and authorize refuses it. */
START_TEST(t_create_takes_no_pin)
{
    uint32_t about = 0, st;
    ck_assert_uint_eq(key_create_pin(opcli, CFX_USER, tok_root, NULL, NULL, &about, CFX_PIN), SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(about, SAM_T_PIN);
    ck_assert(!cred_status(NEW_CRED, &st));
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_root, NULL, NULL, &about), 0);
    stor_cred_t *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(stor_cred_get(fx.stor, NEW_CRED, c), STOR_OK);
    ck_assert(stor_cred_pin_unset(c, CFX_USER));
    OPENSSL_clear_free(c, sizeof(*c));
}
END_TEST

START_TEST(t_create_csr_bytes_back)
{
    uint32_t about, st;
    X509_REQ *csr = NULL;
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_ka2, NULL, &csr, &about), 0);
    EVP_PKEY *pub = X509_REQ_get0_pubkey(csr);
    ck_assert_ptr_nonnull(pub);
    ck_assert_int_eq(X509_REQ_verify(csr, pub), 1); /* signed in the HSM by the new key */
    X509_REQ_free(csr);
    ck_assert(cred_status(NEW_CRED, &st));
    ck_assert_uint_eq(st, STOR_CRED_PENDING);
}
END_TEST

START_TEST(t_create_no_or_forged_session)
{
    uint32_t about, st;
    unsigned before = audited("action=credential create refused=no-session", NULL, STOR_RES_DENIED);
    ck_assert_uint_eq(key_create(opcli, CFX_USER, NULL, NULL, NULL, &about), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    char forged[ADM_OP_TOKEN_LEN + 1];
    memcpy(forged, tok_root, sizeof(forged));
    forged[0] = forged[0] == 'a' ? 'b' : 'a';
    ck_assert_uint_eq(key_create(opcli, CFX_USER, forged, NULL, NULL, &about), SAM_REFUSE_UNAUTHORIZED);
    ck_assert(!cred_status(NEW_CRED, &st));
    ck_assert_uint_eq(audited("action=credential create refused=no-session", NULL, STOR_RES_DENIED), before + 2);
    /* still serving */
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_root, NULL, NULL, &about), 0);
}
END_TEST

START_TEST(t_create_without_the_role)
{
    uint32_t about, st;
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_aud, NULL, NULL, &about), SAM_REFUSE_FORBIDDEN);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    ck_assert(!cred_status(NEW_CRED, &st));
    ck_assert_uint_eq(audited("action=credential create refused=needs-role-key-admin", "aud", STOR_RES_DENIED), 1);
}
END_TEST

START_TEST(t_create_two_person)
{
    uint32_t about, st;
    char id[STOR_NAME_MAX + 1], other[STOR_NAME_MAX + 1], err[256];
    /* alone: refused, audited, nothing made */
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_root, NULL, NULL, &about), SAM_REFUSE_FORBIDDEN);
    ck_assert_uint_eq(about, SAM_T_APPROVAL_ID);
    ck_assert(!cred_status(NEW_CRED, &st));
    ck_assert_uint_eq(audited("needs a second operator", "root", STOR_RES_DENIED), 1);
    /* root files the request (as csc-admin does), and one for another user */
    adm_t a = ops.adm;
    a.operator_name = "root";
    char *argv[] = {"credential", "create", "--user", CFX_USER, "--id", NEW_CRED, "--auth", "PIN"};
    ck_assert_int_eq(adm_op_approval_request(&a, &ops.pol, STOR_ROLE_KEY_ADMIN, 8, argv, id, err, sizeof(err)),
                     ADM_OK);
    char *argv2[] = {"credential", "create", "--user", "mallory"};
    ck_assert_int_eq(adm_op_approval_request(&a, &ops.pol, STOR_ROLE_KEY_ADMIN, 4, argv2, other, err, sizeof(err)),
                     ADM_OK);
    /* an approval of another command does not carry this one; the requester cannot approve their own */
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_ka2, other, NULL, &about), SAM_REFUSE_FORBIDDEN);
    ck_assert_uint_eq(audited("is not this credential create", "ka2", STOR_RES_DENIED), 1);
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_root, id, NULL, &about), SAM_REFUSE_FORBIDDEN);
    ck_assert(!cred_status(NEW_CRED, &st));
    /* the auditor lacks the request's role */
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_aud, id, NULL, &about), SAM_REFUSE_FORBIDDEN);
    /* another key-admin approves: made, audited with both names; the request is gone */
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_ka2, id, NULL, &about), 0);
    ck_assert(cred_status(NEW_CRED, &st));
    ck_assert_uint_eq(audited("operator=ka2,requester=root action=credential.create", CFX_USER, STOR_RES_OK), 1);
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_ka2, id, NULL, &about), SAM_REFUSE_NOT_FOUND);
}
END_TEST

/* One op given as raw fields on client c: its refusal code (0: answered). */
static uint32_t call_op(sam_client_t *c, sam_builder_t *b)
{
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    const uint8_t *msg;
    size_t len;
    uint32_t code = 0;
    ck_assert_int_eq(sam_build_finish(b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(c, msg, len, &rb, &reply), SAM_OK);
    if (reply.op == SAM_OP_REFUSED)
        ck_assert_int_eq(sam_get_u32(&reply, SAM_T_REFUSAL, &code), SAM_OK);
    sam_build_free(b);
    sam_rbuf_free(&rb);
    return code;
}

START_TEST(t_sockets_keep_their_ops)
{
    uint32_t about, st;
    sam_builder_t b;
    /* a front-end op on the operators' socket */
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_CHALLENGE, sam_client_next_id(opcli)), SAM_OK);
    sam_put_str(&b, SAM_T_TOKEN, "x");
    sam_put_str(&b, SAM_T_CRED, CFX_CRED_EC);
    sam_put_str(&b, SAM_T_CLIENT, "test");
    ck_assert_uint_eq(call_op(opcli, &b), SAM_REFUSE_NOT_OFFERED);
    ck_assert_uint_eq(audited("CHALLENGE is not served on the operators' socket", NULL, STOR_RES_DENIED), 1);
    /* an operator op on the front end's socket, with a valid operator session */
    ck_assert_uint_eq(key_create(fx.sam, CFX_USER, tok_root, NULL, NULL, &about), SAM_REFUSE_NOT_OFFERED);
    ck_assert(!cred_status(NEW_CRED, &st));
    ck_assert_uint_eq(audited("KEY_CREATE is not served on the front end's socket", NULL, STOR_RES_DENIED), 1);
    /* the operators' socket still serves */
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_root, NULL, NULL, &about), 0);
}
END_TEST

/* HELLO's SAM_T_TICKET_KEY, the sign-in pages' key: on the front end's socket the key sam_factor_start derived, the
 * same on every connection and for a second SAM on the same token (another node's csc-sam, or this one restarted),
 * not the challenge key; never on the operators' socket. */
START_TEST(t_hello_ticket_key)
{
    static const uint8_t zero[SAM_TICKET_KEY_LEN];
    uint8_t again[SAM_TICKET_KEY_LEN], ck[HSM_DERIVE_LEN];
    char path2[CFX_PATH_MAX + 16], path3[CFX_PATH_MAX + 16], err[256] = "";
    sam_client_t *c2 = NULL, *c3 = NULL;
    sam_server_t *srv2 = NULL, *srv3 = NULL;
    oauth_t *o2 = NULL;
    sam_hello_t h;

    /* the front end's socket, on two pools (two connections) */
    ck_assert_int_eq(sam_client_hello(fx.sam, &h), SAM_OK);
    ck_assert_int_eq(h.has_ticket_key, 1);
    ck_assert(memcmp(h.ticket_key, fx.ticket_key, SAM_TICKET_KEY_LEN) == 0);
    ck_assert(memcmp(h.ticket_key, zero, SAM_TICKET_KEY_LEN) != 0);
    ck_assert_int_eq(sam_client_new(fx.sam_path, 2, 10000, &c2), SAM_OK);
    ck_assert_int_eq(sam_client_hello(c2, &h), SAM_OK);
    ck_assert_int_eq(h.has_ticket_key, 1);
    ck_assert(memcmp(h.ticket_key, fx.ticket_key, SAM_TICKET_KEY_LEN) == 0);
    /* another label than the one-time codes' key: the front end cannot make a stored code's MAC with it */
    ck_assert_int_eq(hsm_factor_derive(fx.hsm, "challenge-1", ck), HSM_OK);
    ck_assert(memcmp(ck, fx.ticket_key, SAM_TICKET_KEY_LEN) != 0);
    /* a second SAM on the same token derives it again: the same bytes */
    oauth_config_t oc = {.stor = fx.stor, .scrypt_log2n = 10};
    ck_assert_int_eq(oauth_new(&oc, &o2), OAUTH_OK);
    ck_assert_int_eq(sam_factor_start(fx.stor, fx.hsm, o2, again), HSM_OK);
    snprintf(path2, sizeof(path2), "%s/sam2.sock", fx.dir);
    sam_server_config_t sc = {.path = path2, .mode = 0600, .gid = (gid_t)-1, .allowed_uid = getuid(),
                              .max_connections = 2, .io_timeout_ms = 10000, .lock_wait_ms = 1000, .identity = "cfx-2",
                              .stor = fx.stor, .hsm = fx.hsm, .oauth = o2, .ticket_key = again};
    ck_assert_msg(sam_server_open(&sc, &srv2, err, sizeof(err)) == 0, "sam_server_open: %s", err);
    ck_assert_int_eq(sam_server_start(srv2), 0);
    ck_assert_int_eq(sam_client_new(path2, 1, 10000, &c3), SAM_OK);
    ck_assert_int_eq(sam_client_hello(c3, &h), SAM_OK);
    ck_assert_str_eq(h.identity, "cfx-2");
    ck_assert_int_eq(h.has_ticket_key, 1);
    ck_assert(memcmp(h.ticket_key, fx.ticket_key, SAM_TICKET_KEY_LEN) == 0);
    /* the operators' socket: no key, and a configuration that would give one there is refused */
    ck_assert_int_eq(sam_client_hello(opcli, &h), SAM_OK);
    ck_assert_str_eq(h.identity, "cfx-ops");
    ck_assert_int_eq(h.has_ticket_key, 0);
    ck_assert(memcmp(h.ticket_key, zero, SAM_TICKET_KEY_LEN) == 0);
    snprintf(path3, sizeof(path3), "%s/ops3.sock", fx.dir);
    sam_server_config_t so = {.path = path3, .mode = 0600, .gid = (gid_t)-1, .allowed_uid = (uid_t)-1,
                              .max_connections = 2, .io_timeout_ms = 10000, .lock_wait_ms = 1000, .identity = "cfx-3",
                              .stor = fx.stor, .hsm = fx.hsm, .oauth = fx.oauth, .operators = &ops,
                              .ticket_key = fx.ticket_key};
    ck_assert_int_eq(sam_server_open(&so, &srv3, err, sizeof(err)), -1);
    ck_assert_ptr_null(srv3);
    ck_assert_ptr_nonnull(strstr(err, "ticket key"));
    sam_client_free(c3);
    sam_client_free(c2);
    sam_server_free(srv2);
    oauth_free(o2);
    OPENSSL_cleanse(&h, sizeof(h));
}
END_TEST

/* KEY_DESTROY of cred with reason on the operators' socket, with session: the refusal code (0: done). */
static uint32_t key_destroy_approved(const char *cred, const char *session, const char *reason, const char *approval)
{
    sam_builder_t b;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_KEY_DESTROY, sam_client_next_id(opcli)), SAM_OK);
    sam_put_str(&b, SAM_T_CRED, cred);
    sam_put_str(&b, SAM_T_SESSION, session);
    sam_put_str(&b, SAM_T_REASON, reason);
    if (approval != NULL)
        sam_put_str(&b, SAM_T_APPROVAL_ID, approval);
    return call_op(opcli, &b);
}

static uint32_t key_destroy(const char *cred, const char *session, const char *reason)
{
    return key_destroy_approved(cred, session, reason, NULL);
}

START_TEST(t_destroy_checked)
{
    uint32_t st;
    /* a reason that names no command; an auditor; a forged session: refused, audited, the key stays */
    ck_assert_uint_eq(key_destroy(CFX_CRED_EC, tok_root, "because"), SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(audited("REASON is", NULL, STOR_RES_DENIED), 1);
    ck_assert_uint_eq(key_destroy(CFX_CRED_EC, tok_aud, "operator request"), SAM_REFUSE_FORBIDDEN);
    ck_assert_uint_eq(audited("action=credential destroy refused=needs-role-key-admin", "aud", STOR_RES_DENIED), 1);
    ck_assert_uint_eq(key_destroy(CFX_CRED_EC, "0123", "certificate revoked"), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(audited("action=credential revoke refused=no-session", NULL, STOR_RES_DENIED), 1);
    ck_assert(cred_status(CFX_CRED_EC, &st));
    ck_assert_uint_ne(st, STOR_CRED_DESTROYED);
    /* a key-admin: destroyed, audited with the operator */
    ck_assert_uint_eq(key_destroy(CFX_CRED_EC, tok_ka2, "operator request"), 0);
    ck_assert(cred_status(CFX_CRED_EC, &st));
    ck_assert_uint_eq(st, STOR_CRED_DESTROYED);
    ck_assert_uint_eq(audited("operator=ka2 action=credential.destroy reason=operator request", NULL, STOR_RES_OK), 1);
}
END_TEST

START_TEST(t_destroy_two_person_by_command)
{
    uint32_t st;
    /* two_person names destroy, not revoke: the reason decides which rule applies */
    ck_assert_uint_eq(key_destroy(CFX_CRED_EC, tok_root, "operator request"), SAM_REFUSE_FORBIDDEN);
    ck_assert(cred_status(CFX_CRED_EC, &st));
    ck_assert_uint_ne(st, STOR_CRED_DESTROYED);
    ck_assert_uint_eq(key_destroy(CFX_CRED_EC, tok_root, "certificate revoked"), 0);
    ck_assert(cred_status(CFX_CRED_EC, &st));
    ck_assert_uint_eq(st, STOR_CRED_DESTROYED);
    /* destroy with another operator's approval of root's request */
    char id[STOR_NAME_MAX + 1], err[256];
    adm_t a = ops.adm;
    a.operator_name = "root";
    char *argv[] = {"credential", "destroy", CFX_CRED_RSA};
    ck_assert_int_eq(adm_op_approval_request(&a, &ops.pol, STOR_ROLE_KEY_ADMIN, 3, argv, id, err, sizeof(err)),
                     ADM_OK);
    ck_assert_uint_eq(key_destroy_approved(CFX_CRED_RSA, tok_ka2, "certificate revoked", id), SAM_REFUSE_FORBIDDEN);
    ck_assert_uint_eq(key_destroy_approved(CFX_CRED_RSA, tok_ka2, "operator request", id), 0);
    ck_assert(cred_status(CFX_CRED_RSA, &st));
    ck_assert_uint_eq(st, STOR_CRED_DESTROYED);
    ck_assert_uint_eq(audited("operator=ka2,requester=root action=credential.destroy", NULL, STOR_RES_OK), 1);
}
END_TEST

START_TEST(t_terminate_needs_user_admin)
{
    sam_builder_t b;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_USER_TERMINATE, sam_client_next_id(opcli)), SAM_OK);
    sam_put_str(&b, SAM_T_USER, CFX_USER);
    sam_put_str(&b, SAM_T_SESSION, tok_ka2);
    ck_assert_uint_eq(call_op(opcli, &b), SAM_REFUSE_FORBIDDEN);
    ck_assert_uint_eq(audited("action=user terminate refused=needs-role-user-admin", "ka2", STOR_RES_DENIED), 1);
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_USER_TERMINATE, sam_client_next_id(opcli)), SAM_OK);
    sam_put_str(&b, SAM_T_USER, CFX_USER);
    sam_put_str(&b, SAM_T_SESSION, tok_root);
    ck_assert_uint_eq(call_op(opcli, &b), 0);
    uint32_t st;
    ck_assert(cred_status(CFX_CRED_RSA, &st));
    ck_assert_uint_eq(st, STOR_CRED_DESTROYED);
}
END_TEST

/* Denied audit records so far (any event). */
static int count_denied(const stor_audit_t *rec, void *arg)
{
    *(unsigned *)arg += rec->result == STOR_RES_DENIED;
    return 0;
}

static unsigned denied(void)
{
    unsigned n = 0;
    ck_assert_int_eq(stor_audit_each(fx.stor, 1, count_denied, &n), STOR_OK);
    return n;
}

/* Every op of the operators' socket, as the fuzz target's sample with every field once (SESSION: a short text, no
 * session anyone has): refused and audited on the operators' socket, refused (NOT_OFFERED) and audited on the front
 * end's; the operators' socket keeps serving. */
START_TEST(t_every_op_refused_without_a_session)
{
    static const unsigned ops_list[] = {SAM_OP_AUDIT_HEAD, SAM_OP_KEY_CREATE, SAM_OP_KEY_DESTROY,
                                        SAM_OP_BACKUP_INIT, SAM_OP_BACKUP, SAM_OP_RESTORE, SAM_OP_CSR,
                                        SAM_OP_CERT_IMPORT, SAM_OP_TSA_KEY, SAM_OP_AUDIT_KEY,
                                        SAM_OP_DESTROY_PENDING, SAM_OP_USER_TERMINATE, SAM_OP_RENEW,
                                        SAM_OP_AUDIT_PUBKEY, SAM_OP_ENROLL_ISSUE};
    uint32_t about, st;
    for (size_t i = 0; i < sizeof(ops_list) / sizeof(ops_list[0]); i++) {
        for (int front = 0; front < 2; front++) {
            sam_client_t *c = front ? fx.sam : opcli;
            sam_builder_t b;
            sam_rbuf_t rb = {0};
            sam_msg_t reply;
            const uint8_t *msg;
            size_t len;
            uint32_t code = 0;
            unsigned before = denied();
            ck_assert_int_eq(fuzz_sam_sample(ops_list[i], FUZZ_SAM_ONE, sam_client_next_id(c), &b, &msg, &len),
                             SAM_OK);
            ck_assert_int_eq(sam_client_call(c, msg, len, &rb, &reply), SAM_OK);
            ck_assert_msg(reply.op == SAM_OP_REFUSED, "%s answered on the %s socket", sam_op_name(ops_list[i]),
                          front ? "front end's" : "operators'");
            ck_assert_int_eq(sam_get_u32(&reply, SAM_T_REFUSAL, &code), SAM_OK);
            if (front)
                ck_assert_uint_eq(code, SAM_REFUSE_NOT_OFFERED);
            ck_assert_msg(denied() == before + 1, "%s: refusal not audited", sam_op_name(ops_list[i]));
            sam_build_free(&b);
            sam_rbuf_free(&rb);
        }
    }
    ck_assert(cred_status(CFX_CRED_EC, &st));
    ck_assert_uint_eq(st, STOR_CRED_ENABLED);
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_root, NULL, NULL, &about), 0);
}
END_TEST

/* ENROLL_ISSUE of kind for user on the operators' socket with session; letter; cred (recover: a PIN to set again,
 * NULL: none). The refusal code (0: answered; code gets the letter's code). */
static uint32_t enroll_issue(const char *user, uint32_t kind, const char *session, int letter, const char *cred,
                             char code[SAM_ENROLL_CODE_MAX + 1])
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    const uint8_t *msg;
    size_t len;
    uint32_t refusal = 0;
    code[0] = '\0';
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_ENROLL_ISSUE, sam_client_next_id(opcli)), SAM_OK);
    if (cred != NULL)
        sam_put_str(&b, SAM_T_CRED, cred);
    sam_put_str(&b, SAM_T_USER, user);
    sam_put_str(&b, SAM_T_SESSION, session);
    sam_put_str(&b, SAM_T_CONTACT, "someone@example.org");
    if (evidence != NULL)
        sam_put_str(&b, SAM_T_EVIDENCE, evidence);
    if (letter)
        sam_put_u32(&b, SAM_T_LETTER, 1);
    sam_put_u32(&b, SAM_T_KIND, kind);
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(opcli, msg, len, &rb, &reply), SAM_OK);
    if (reply.op == SAM_OP_REFUSED)
        ck_assert_int_eq(sam_get_u32(&reply, SAM_T_REFUSAL, &refusal), SAM_OK);
    else
        ck_assert_int_eq(sam_get_text(&reply, SAM_T_ENROLL_CODE, code, SAM_ENROLL_CODE_MAX + 1), SAM_OK);
    sam_build_free(&b);
    sam_rbuf_free(&rb);
    return refusal;
}

typedef struct enr {
    const char *user;
    stor_user_t u;
    stor_enroll_t e;
    int has_code;
} enr_t;

static int enr_fn(stor_txn_t *t, void *arg)
{
    enr_t *x = arg;
    int rc = stor_txn_user_get(t, x->user, &x->u);
    if (rc != STOR_OK)
        return rc;
    rc = stor_txn_enroll_get(t, x->user, &x->e);
    x->has_code = rc == STOR_OK;
    return rc == STOR_ERR_NOTFOUND ? STOR_OK : rc;
}

/* Audit records whose detail or fields contain text anywhere. */
static int any_text(const stor_audit_t *rec, void *arg)
{
    const char *needle = arg;
    return strstr(rec->detail, needle) != NULL || strstr(rec->user, needle) != NULL ||
           strstr(rec->client, needle) != NULL;
}

START_TEST(t_enroll_issue_letter_and_recover)
{
    char code[SAM_ENROLL_CODE_MAX + 1], norm[17];
    uint8_t h[32];
    enr_t *x = calloc(1, sizeof(*x));
    ck_assert_ptr_nonnull(x);
    /* no sender is configured here: the code is sent nowhere, so only a letter */
    ck_assert_uint_eq(enroll_issue("newbie", SAM_ENROLL_NEW, tok_root, 0, NULL, code), SAM_REFUSE_BAD_MESSAGE);
    x->user = "newbie";
    ck_assert_int_eq(stor_read(fx.stor, enr_fn, x), STOR_ERR_NOTFOUND); /* nothing was written */
    /* a key-admin manages no users */
    ck_assert_uint_eq(enroll_issue("newbie", SAM_ENROLL_NEW, tok_ka2, 1, NULL, code), SAM_REFUSE_FORBIDDEN);
    ck_assert_uint_eq(enroll_issue("newbie", SAM_ENROLL_NEW, tok_root, 1, NULL, code), 0);
    ck_assert_uint_eq(strlen(code), 19);
    ck_assert_int_eq(stor_read(fx.stor, enr_fn, x), STOR_OK);
    ck_assert_uint_eq(x->u.status, STOR_USER_ENROLLING);
    ck_assert_uint_eq(x->u.pw_verifier_len, 0);
    ck_assert_uint_eq(x->u.totp_secret_len, 0);
    ck_assert(x->has_code);
    for (int i = 0, o = 0; code[i] != '\0'; i++)
        if (code[i] != '-')
            norm[o++] = code[i], norm[o] = '\0';
    SHA256((const uint8_t *)norm, 16, h);
    ck_assert_mem_eq(x->e.code_hash, h, 32); /* only its hash is kept */
    ck_assert_int_eq(stor_audit_each(fx.stor, 1, any_text, code), 0);
    ck_assert_int_eq(stor_audit_each(fx.stor, 1, any_text, norm), 0);
    ck_assert_uint_eq(audited("operator=root action=enroll.issue kind=new channel=letter", "newbie", STOR_RES_OK), 1);
    ck_assert_uint_eq(enroll_issue("newbie", SAM_ENROLL_NEW, tok_root, 1, NULL, code), SAM_REFUSE_EXISTS);
    /* recover alice: password and TOTP gone, the PIN of cfx-ec to set again, a new code */
    x->user = CFX_USER;
    ck_assert_int_eq(stor_read(fx.stor, enr_fn, x), STOR_OK);
    uint32_t epoch = x->u.epoch;
    ck_assert_uint_eq(enroll_issue(CFX_USER, SAM_ENROLL_RECOVER, tok_root, 1, "no-such-cred", code),
                      SAM_REFUSE_NOT_FOUND);
    ck_assert_int_eq(stor_read(fx.stor, enr_fn, x), STOR_OK);
    ck_assert_uint_eq(x->u.status, STOR_USER_ACTIVE); /* refused: nothing changed */
    ck_assert_uint_eq(enroll_issue(CFX_USER, SAM_ENROLL_RECOVER, tok_root, 1, CFX_CRED_EC, code), 0);
    ck_assert_int_eq(stor_read(fx.stor, enr_fn, x), STOR_OK);
    ck_assert_uint_eq(x->u.status, STOR_USER_ENROLLING);
    ck_assert_uint_eq(x->u.pw_verifier_len, 0);
    ck_assert_uint_eq(x->u.totp_secret_len, 0);
    ck_assert_uint_eq(x->u.epoch, epoch + 1);
    ck_assert(x->has_code);
    stor_cred_t *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(stor_cred_get(fx.stor, CFX_CRED_EC, c), STOR_OK);
    ck_assert_int_eq(stor_cred_pin_unset(c, CFX_USER), 1);
    ck_assert_uint_eq(c->pin_verifier_len, 0);
    ck_assert_int_eq(stor_cred_get(fx.stor, CFX_CRED_RSA, c), STOR_OK);
    ck_assert_int_eq(stor_cred_pin_unset(c, CFX_USER), 0); /* not named: kept */
    free(c);
    free(x);
}
END_TEST

static void setup_production(void)
{
    production = 1;
    open_ops("");
}

START_TEST(t_enroll_issue_production_needs_evidence)
{
    char code[SAM_ENROLL_CODE_MAX + 1];
    evidence = NULL;
    ck_assert_uint_eq(enroll_issue("newbie", SAM_ENROLL_NEW, tok_root, 1, NULL, code), SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(audited("--evidence REF", "newbie", STOR_RES_DENIED), 1);
    evidence = "passport check PC-1";
    ck_assert_uint_eq(enroll_issue("newbie", SAM_ENROLL_NEW, tok_root, 1, NULL, code), 0);
    ck_assert_uint_eq(audited("action=user.add state=enrolling evidence=passport check PC-1", "newbie", STOR_RES_OK), 1);
}
END_TEST

/* Audit records whose detail contains needle, and the origin of the last one. */
typedef struct origin_find {
    const char *needle;
    unsigned n;
    char origin[STOR_ORIGIN_MAX + 1];
} origin_find_t;

static int find_origin(const stor_audit_t *rec, void *arg)
{
    origin_find_t *f = arg;
    if (strstr(rec->detail, f->needle) != NULL) {
        f->n++;
        snprintf(f->origin, sizeof(f->origin), "%s", rec->origin);
    }
    return 0;
}

static origin_find_t origin_of(const char *needle)
{
    origin_find_t f = {.needle = needle};
    ck_assert_int_eq(stor_audit_each(fx.stor, 1, find_origin, &f), STOR_OK);
    return f;
}

/* A new key-admin name logged in from the host of o: its session token. */
static void login_from(const char *name, const adm_origin_t *o, char tok[ADM_OP_TOKEN_LEN + 1])
{
    adm_t a = ops.adm;
    char err[256], code[7], b32[64], uri[512];
    char *raw = NULL;
    size_t rawlen = 0;
    a.operator_name = "root";
    a.origin = o;
    ck_assert_int_eq(adm_op_add(&a, name, STOR_ROLE_KEY_ADMIN, OP_PASSWORD, uri, sizeof(uri), b32, sizeof(b32), err,
                                sizeof(err)), ADM_OK);
    ck_assert_int_eq(oath_base32_decode(b32, strlen(b32), &raw, &rawlen), OATH_OK);
    ck_assert_int_eq(oath_totp_generate(raw, rawlen, time(NULL), 30, 0, 6, code), OATH_OK);
    free(raw);
    ck_assert_int_eq(adm_op_login(&a, &ops.pol, name, OP_PASSWORD, code, tok, err, sizeof(err)), ADM_OK);
}

/* csc-admin's ORIGIN: the session must have been made on the claim's host (another host's use is refused, audited
 * and ends the session), and every record of the op carries the claim with the uid the kernel gives for the peer
 * (SO_PEERCRED), the claim's own kept beside it when it differs. */
START_TEST(t_origin_and_host)
{
    adm_origin_t here = {0}, there;
    char tok[ADM_OP_TOKEN_LEN + 1], claim[SAM_ORIGIN_MAX + 1], want[STOR_ORIGIN_MAX + 1];
    uint32_t about, st;
    snprintf(here.os_user, sizeof(here.os_user), "alice");
    here.uid = (uint32_t)getuid() + 1; /* a claim the kernel contradicts */
    snprintf(here.host, sizeof(here.host), "signer-1");
    snprintf(here.tty, sizeof(here.tty), "/dev/pts/7");
    adm_origin_host_id("signer-1", "machine", here.host_id);
    there = here;
    adm_origin_host_id("elsewhere", "machine", there.host_id);
    /* no claim: refused (a zero host is no host this session was made on) */
    login_from("ka3", &here, tok);
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok, NULL, NULL, &about), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    ck_assert(!cred_status(NEW_CRED, &st));
    snprintf(want, sizeof(want), "os_user=- uid=%u host=- tty=- claim=none", (unsigned)getuid());
    ck_assert_str_eq(origin_of("refused=other-host").origin, want);
    /* another host's claim: refused, audited with the claim and the kernel's uid; the session is ended */
    login_from("ka4", &here, tok);
    ck_assert_int_eq(adm_origin_claim(&there, claim, sizeof(claim)), 0);
    origin_claim = claim;
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok, NULL, NULL, &about), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    ck_assert(!cred_status(NEW_CRED, &st));
    snprintf(want, sizeof(want), "os_user=alice uid=%u claimed_uid=%u host=signer-1 tty=/dev/pts/7",
             (unsigned)getuid(), (unsigned)getuid() + 1);
    origin_find_t f = origin_of("refused=other-host");
    ck_assert_uint_eq(f.n, 2);
    ck_assert_str_eq(f.origin, want);
    ck_assert_int_eq(adm_origin_claim(&here, claim, sizeof(claim)), 0);
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok, NULL, NULL, &about), SAM_REFUSE_UNAUTHORIZED);
    /* the host it was made on: served, and the op's records carry where it came from */
    login_from("ka5", &here, tok);
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok, NULL, NULL, &about), 0);
    ck_assert(cred_status(NEW_CRED, &st));
    f = origin_of("operator=ka5 action=credential.create");
    ck_assert_uint_eq(f.n, 1);
    ck_assert_str_eq(f.origin, want);
    /* the operators added and logged in outside csc-sam carry no origin (none was set on this thread) */
    ck_assert_str_eq(origin_of("action=operator.add name=ka5").origin, "");
}
END_TEST

/* ---- operators' own factors: OPERATOR_LOGIN, OPERATOR_NEW (sam/sam_op_operator.c) ---- */

static char here_claim[SAM_ORIGIN_MAX + 1];

/* A claim of csc-admin on host "signer-1" (every OPERATOR_LOGIN below sends it unless told otherwise). */
static const char *claim_here(void)
{
    adm_origin_t o = {0};
    snprintf(o.os_user, sizeof(o.os_user), "op");
    o.uid = (uint32_t)getuid();
    snprintf(o.host, sizeof(o.host), "signer-1");
    snprintf(o.tty, sizeof(o.tty), "/dev/pts/1");
    adm_origin_host_id("signer-1", "machine", o.host_id);
    ck_assert_int_eq(adm_origin_claim(&o, here_claim, sizeof(here_claim)), 0);
    return here_claim;
}

/* The reply of a request built in b on the operators' socket: the refusal code (0: answered, *reply kept in rb). */
static uint32_t call_keep(sam_builder_t *b, sam_rbuf_t *rb, sam_msg_t *reply, char *reason, size_t reason_sz)
{
    const uint8_t *msg;
    size_t len;
    uint32_t code = 0;
    ck_assert_int_eq(sam_build_finish(b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(opcli, msg, len, rb, reply), SAM_OK);
    if (reply->op == SAM_OP_REFUSED) {
        ck_assert_int_eq(sam_get_u32(reply, SAM_T_REFUSAL, &code), SAM_OK);
        if (reason != NULL)
            ck_assert_int_eq(sam_get_text(reply, SAM_T_REASON, reason, reason_sz), SAM_OK);
    }
    sam_build_free(b);
    return code;
}

/* OPERATOR_LOGIN of name with password and code, claim as ORIGIN (NULL: none): the refusal code (0: tok filled). */
static uint32_t op_login(const char *name, const char *password, const char *code, const char *claim,
                         char tok[ADM_OP_TOKEN_LEN + 1], char reason[SAM_REASON_MAX + 1])
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    char r[SAM_REASON_MAX + 1];
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_OPERATOR_LOGIN, sam_client_next_id(opcli)), SAM_OK);
    sam_put_str(&b, SAM_T_USER, name);
    sam_put_str(&b, SAM_T_OTP, code);
    sam_put_str(&b, SAM_T_PASSWORD, password);
    if (claim != NULL)
        sam_put_str(&b, SAM_T_ORIGIN, claim);
    uint32_t rc = call_keep(&b, &rb, &reply, reason != NULL ? reason : r, SAM_REASON_MAX + 1);
    tok[0] = '\0';
    if (rc == 0) {
        ck_assert_int_eq(reply.op, SAM_OP_OPERATOR_LOGIN | SAM_OP_REPLY);
        ck_assert_int_eq(sam_get_text(&reply, SAM_T_SESSION, tok, ADM_OP_TOKEN_LEN + 1), SAM_OK);
    }
    sam_rbuf_free(&rb);
    return rc;
}

/* OPERATOR_NEW of name: bootstrap (session NULL: the new secret into secret) or add with roles (letter: the code into
 * code; password: a password sent along, which add refuses). The refusal code (0: answered). */
static uint32_t op_new_ex(const char *name, const char *session, uint32_t roles, int letter, const char *password,
                          uint8_t secret[STOR_TOTP_MAX], size_t *n, char code[SAM_ENROLL_CODE_MAX + 1])
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    const uint8_t *p;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_OPERATOR_NEW, sam_client_next_id(opcli)), SAM_OK);
    sam_put_str(&b, SAM_T_USER, name);
    if (session != NULL)
        sam_put_str(&b, SAM_T_SESSION, session);
    if (letter)
        sam_put_u32(&b, SAM_T_LETTER, 1);
    if (password != NULL)
        sam_put_str(&b, SAM_T_PASSWORD, password);
    if (origin_claim != NULL) /* the fixture's sessions were made with no host: no claim fits them */
        sam_put_str(&b, SAM_T_ORIGIN, origin_claim);
    if (roles != 0)
        sam_put_u32(&b, SAM_T_ROLES, roles);
    uint32_t rc = call_keep(&b, &rb, &reply, NULL, 0);
    if (n != NULL)
        *n = 0;
    if (code != NULL)
        code[0] = '\0';
    if (rc == 0 && secret != NULL) {
        ck_assert_int_eq(sam_get_bytes(&reply, SAM_T_TOTP_SECRET, &p, n), SAM_OK);
        memcpy(secret, p, *n);
    }
    if (rc == 0 && code != NULL)
        ck_assert_int_eq(sam_get_text(&reply, SAM_T_ENROLL_CODE, code, SAM_ENROLL_CODE_MAX + 1), SAM_OK);
    if (rc == 0)
        ck_assert_int_eq(sam_msg_count(&reply, SAM_T_TOTP_SECRET), secret != NULL); /* add: never a secret */
    sam_rbuf_free(&rb);
    return rc;
}

/* operator add with a letter (the fixture has no otp_sender): the code. */
static uint32_t op_add(const char *name, const char *session, uint32_t roles, char code[SAM_ENROLL_CODE_MAX + 1])
{
    return op_new_ex(name, session, roles, 1, NULL, NULL, NULL, code);
}

/* OPERATOR_ENROLL_BEGIN: the refusal code (0: ticket and secret filled). */
static uint32_t op_begin(const char *name, const char *code, char ticket[SAM_TOKEN_MAX + 1],
                         uint8_t secret[STOR_TOTP_MAX], size_t *n)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    const uint8_t *p;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_OPERATOR_ENROLL_BEGIN, sam_client_next_id(opcli)), SAM_OK);
    sam_put_str(&b, SAM_T_USER, name);
    sam_put_str(&b, SAM_T_ENROLL_CODE, code);
    uint32_t rc = call_keep(&b, &rb, &reply, NULL, 0);
    *n = 0;
    ticket[0] = '\0';
    if (rc == 0) {
        ck_assert_int_eq(sam_get_text(&reply, SAM_T_ENROLL_TICKET, ticket, SAM_TOKEN_MAX + 1), SAM_OK);
        ck_assert_int_eq(sam_get_bytes(&reply, SAM_T_TOTP_SECRET, &p, n), SAM_OK);
        memcpy(secret, p, *n);
    }
    sam_rbuf_free(&rb);
    return rc;
}

/* OPERATOR_ENROLL_FINISH: the refusal code (0: active). */
static uint32_t op_finish(const char *name, const char *ticket, const char *password, const char *otp)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_OPERATOR_ENROLL_FINISH, sam_client_next_id(opcli)), SAM_OK);
    sam_put_str(&b, SAM_T_USER, name);
    sam_put_str(&b, SAM_T_OTP, otp);
    sam_put_str(&b, SAM_T_ENROLL_TICKET, ticket);
    sam_put_str(&b, SAM_T_PASSWORD, password);
    uint32_t rc = call_keep(&b, &rb, &reply, NULL, 0);
    sam_rbuf_free(&rb);
    return rc;
}

/* The TOTP code of secret at offset steps from now. */
static void code_of(const uint8_t *secret, size_t n, int offset, char out[7])
{
    ck_assert_int_eq(oath_totp_generate((const char *)secret, n, time(NULL) + offset * 30, 30, 0, 6, out), OATH_OK);
}

static int op_get_fn(stor_txn_t *t, void *arg)
{
    stor_operator_t *op = arg;
    char name[STOR_NAME_MAX + 1];
    snprintf(name, sizeof(name), "%s", op->name); /* the getter clears op first */
    return stor_txn_operator_get(t, name, op);
}

static stor_operator_t *op_read(const char *name)
{
    stor_operator_t *op = calloc(1, sizeof(*op));
    ck_assert_ptr_nonnull(op);
    snprintf(op->name, sizeof(op->name), "%s", name);
    ck_assert_int_eq(stor_read(fx.stor, op_get_fn, op), STOR_OK);
    return op;
}

static int op_put_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_operator_put(t, arg, 0);
}

/* A key-admin added through OPERATOR_NEW by root and enrolled as its new operator would (BEGIN, FINISH with the code
 * of the previous step, so the current one stays free): its secret. */
static size_t add_ka(const char *name, uint8_t secret[STOR_TOTP_MAX])
{
    char code[SAM_ENROLL_CODE_MAX + 1], ticket[SAM_TOKEN_MAX + 1], otp[7];
    size_t n = 0;
    ck_assert_uint_eq(op_add(name, tok_root, STOR_ROLE_KEY_ADMIN, code), 0);
    ck_assert_uint_eq(op_begin(name, code, ticket, secret, &n), 0);
    ck_assert_uint_eq(n, OAUTH_TOTP_SECRET_LEN);
    code_of(secret, n, -1, otp);
    ck_assert_uint_eq(op_finish(name, ticket, OP_PASSWORD, otp), 0);
    return n;
}

/* OPERATOR_LOGIN as a forged csc-admin would send it: no claim, an unknown operator, a wrong password, a wrong or
 * reused code; the right factors open a session bound to the claim's host. */
START_TEST(t_operator_login)
{
    uint8_t secret[STOR_TOTP_MAX];
    char code[7], tok[ADM_OP_TOKEN_LEN + 1], r_unknown[SAM_REASON_MAX + 1], r_wrong[SAM_REASON_MAX + 1];
    uint32_t about, st;
    size_t n = add_ka("kop", secret);
    code_of(secret, n, 0, code);
    /* no ORIGIN: refused and audited, nothing counted, no session */
    ck_assert_uint_eq(op_login("kop", OP_PASSWORD, code, NULL, tok, NULL), SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(audited("action=login refused=no-origin", NULL, STOR_RES_DENIED), 1);
    /* an unknown operator and a wrong password get the same answer */
    ck_assert_uint_eq(op_login("ghost", OP_PASSWORD, code, claim_here(), tok, r_unknown), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(op_login("kop", "wrong-password", code, claim_here(), tok, r_wrong), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_str_eq(r_unknown, r_wrong);
    /* a code of another time step */
    char far[7];
    code_of(secret, n, 5, far);
    ck_assert_uint_eq(op_login("kop", OP_PASSWORD, far, claim_here(), tok, NULL), SAM_REFUSE_UNAUTHORIZED);
    /* the right factors: a session, bound to the claim's host */
    ck_assert_uint_eq(op_login("kop", OP_PASSWORD, code, claim_here(), tok, NULL), 0);
    ck_assert_uint_eq(strlen(tok), ADM_OP_TOKEN_LEN);
    ck_assert_uint_eq(audited("action=login", "kop", STOR_RES_OK), 1);
    origin_claim = claim_here();
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok, NULL, NULL, &about), 0);
    ck_assert(cred_status(NEW_CRED, &st));
    /* the same code again: its time step is used */
    char tok2[ADM_OP_TOKEN_LEN + 1];
    ck_assert_uint_eq(op_login("kop", OP_PASSWORD, code, claim_here(), tok2, NULL), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(audited("action=login refused=otp-reused", "kop", STOR_RES_DENIED), 1);
    /* the session does not work from another host's claim (the key-admin's op refused) */
    adm_origin_t there = {0};
    char claim[SAM_ORIGIN_MAX + 1];
    snprintf(there.os_user, sizeof(there.os_user), "op");
    snprintf(there.host, sizeof(there.host), "elsewhere");
    snprintf(there.tty, sizeof(there.tty), "-");
    adm_origin_host_id("elsewhere", "machine", there.host_id);
    ck_assert_int_eq(adm_origin_claim(&there, claim, sizeof(claim)), 0);
    origin_claim = claim;
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok, NULL, NULL, &about), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    ck_assert_uint_eq(audited("refused=other-host", "kop", STOR_RES_DENIED), 1);
}
END_TEST

/* Wrong passwords and wrong codes count; at max_failures the operator is locked, even for the right factors. */
START_TEST(t_operator_login_locks)
{
    uint8_t secret[STOR_TOTP_MAX];
    char code[7], tok[ADM_OP_TOKEN_LEN + 1];
    size_t n = add_ka("klock", secret);
    code_of(secret, n, 0, code);
    for (unsigned i = 0; i < ops.pol.max_failures; i++)
        ck_assert_uint_eq(op_login("klock", i % 2 ? "wrong-password" : OP_PASSWORD, i % 2 ? code : "000000",
                                   claim_here(), tok, NULL),
                          SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(op_login("klock", OP_PASSWORD, code, claim_here(), tok, NULL), SAM_REFUSE_LOCKED);
    ck_assert_str_eq(tok, "");
    ck_assert_uint_eq(audited("action=login locked operator", "klock", STOR_RES_DENIED), 1);
    stor_operator_t *op = op_read("klock");
    ck_assert_int_gt(op->locked_until, time(NULL));
    free(op);
}
END_TEST

/* OPERATOR_NEW: add is checked like every operator op (session, role, two-person rule) and carries no factor (a
 * password sent along is refused; the reply has no secret); bootstrap only while no operator exists. The enrolled
 * operator's secret is sealed at rest and the operator logs in. */
START_TEST(t_operator_new)
{
    uint8_t secret[STOR_TOTP_MAX];
    size_t n = 0;
    char code[7], tok[ADM_OP_TOKEN_LEN + 1], ecode[SAM_ENROLL_CODE_MAX + 1];
    /* bootstrap while operators exist; with a letter */
    ck_assert_uint_eq(op_new_ex("boot2", NULL, 0, 0, OP_PASSWORD, secret, &n, NULL), SAM_REFUSE_EXISTS);
    ck_assert_uint_eq(op_new_ex("boot2", NULL, 0, 1, OP_PASSWORD, secret, &n, NULL), SAM_REFUSE_BAD_MESSAGE);
    /* a session without roles, roles without a session */
    ck_assert_uint_eq(op_add("x1", tok_root, 0, ecode), SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(op_add("x1", NULL, STOR_ROLE_AUDITOR, ecode), SAM_REFUSE_BAD_MESSAGE);
    /* a forged session, an auditor's; a password chosen by the adding operator; no letter (and no sender) */
    ck_assert_uint_eq(op_add("x1", "forged-session", STOR_ROLE_AUDITOR, ecode), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(op_add("x1", tok_aud, STOR_ROLE_AUDITOR, ecode), SAM_REFUSE_FORBIDDEN);
    ck_assert_uint_eq(op_new_ex("x1", tok_root, STOR_ROLE_AUDITOR, 1, OP_PASSWORD, NULL, NULL, ecode),
                      SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(op_new_ex("x1", tok_root, STOR_ROLE_AUDITOR, 0, NULL, NULL, NULL, NULL), SAM_REFUSE_BAD_MESSAGE);
    stor_operator_t *op = calloc(1, sizeof(*op));
    ck_assert_ptr_nonnull(op);
    snprintf(op->name, sizeof(op->name), "x1");
    ck_assert_int_eq(stor_read(fx.stor, op_get_fn, op), STOR_ERR_NOTFOUND);
    free(op);
    /* root adds (enrolling: no factor, no login), the new operator enrolls: sealed at rest, and it logs in */
    ck_assert_uint_eq(op_add("x0", tok_root, STOR_ROLE_AUDITOR, ecode), 0);
    op = op_read("x0");
    ck_assert_uint_eq(op->status, STOR_OPERATOR_ENROLLING);
    ck_assert_uint_eq(op->pw_verifier_len + op->totp_secret_len + op->totp_sealed_len, 0);
    free(op);
    ck_assert_uint_eq(audited("operator=root action=operator.add name=x0 roles=auditor state=enrolling channel=letter",
                              "root", STOR_RES_OK), 1);
    ck_assert_uint_eq(op_login("x0", OP_PASSWORD, "000000", claim_here(), tok, NULL), SAM_REFUSE_UNAUTHORIZED);
    n = add_ka("x1", secret);
    op = op_read("x1");
    ck_assert_uint_eq(op->status, STOR_OPERATOR_ACTIVE);
    ck_assert_uint_eq(op->totp_secret_len, 0);
    ck_assert_uint_eq(op->totp_sealed_len, 1 + 12 + OAUTH_TOTP_SECRET_LEN + 16);
    ck_assert(memmem(op, sizeof(*op), secret, n) == NULL);
    free(op);
    ck_assert_uint_eq(audited("action=operator.enroll.finish state=active", "x1", STOR_RES_OK), 1);
    code_of(secret, n, 0, code);
    ck_assert_uint_eq(op_login("x1", OP_PASSWORD, code, claim_here(), tok, NULL), 0);
    /* the same name again */
    ck_assert_uint_eq(op_add("x1", tok_root, STOR_ROLE_AUDITOR, ecode), SAM_REFUSE_EXISTS);
}
END_TEST

/* OPERATOR_ENROLL_BEGIN and _FINISH as a compromised csc-admin would send them: an unknown name, a wrong code (the
 * last try burns it), a spent code, an expired one, another operator's ticket, a short password, a wrong first code
 * (counted), all with the same answer and audited; nothing of the secret in the audit log. */
START_TEST(t_operator_enroll)
{
    char c1[SAM_ENROLL_CODE_MAX + 1], c2[SAM_ENROLL_CODE_MAX + 1], c3[SAM_ENROLL_CODE_MAX + 1];
    char t1[SAM_TOKEN_MAX + 1], t2[SAM_TOKEN_MAX + 1], otp[7];
    uint8_t s1[STOR_TOTP_MAX], s2[STOR_TOTP_MAX];
    size_t n1 = 0, n2 = 0;
    ck_assert_uint_eq(op_add("e1", tok_root, STOR_ROLE_AUDITOR, c1), 0);
    ck_assert_uint_eq(op_add("e2", tok_root, STOR_ROLE_AUDITOR, c2), 0);
    ck_assert_uint_eq(op_add("e3", tok_root, STOR_ROLE_AUDITOR, c3), 0);
    /* an unknown name, an active operator, another's code: one answer */
    ck_assert_uint_eq(op_begin("ghost", c1, t1, s1, &n1), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(op_begin("root", c1, t1, s1, &n1), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(op_begin("e2", c1, t1, s1, &n1), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(audited("action=operator.enroll.begin refused=wrong-code tries_left=4", "e2", STOR_RES_DENIED), 1);
    /* e3: wrong codes until the code is burnt; then its right code no longer works */
    for (int i = 0; i < 5; i++) /* enroll_code_tries: 5 */
        ck_assert_uint_eq(op_begin("e3", "AAAA-AAAA-AAAA-AAAA", t1, s1, &n1), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(audited("refused=wrong-code burnt tries_left=0", "e3", STOR_RES_DENIED), 1);
    ck_assert_uint_eq(op_begin("e3", c3, t1, s1, &n1), SAM_REFUSE_UNAUTHORIZED);
    /* e1: the right code gives a ticket and the secret; the code is spent */
    ck_assert_uint_eq(op_begin("e1", c1, t1, s1, &n1), 0);
    ck_assert_uint_eq(op_begin("e1", c1, t2, s2, &n2), SAM_REFUSE_UNAUTHORIZED);
    /* e2's code expired */
    stor_operator_t *op = op_read("e2");
    op->enroll_expires_at = time(NULL) - 1;
    ck_assert_int_eq(stor_write(fx.stor, op_put_fn, op), STOR_OK);
    free(op);
    ck_assert_uint_eq(op_begin("e2", c2, t2, s2, &n2), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(audited("action=operator.enroll.begin refused=expired", "e2", STOR_RES_DENIED), 1);
    /* FINISH: another operator's ticket, a short password, a wrong first code (counted) */
    code_of(s1, n1, -1, otp);
    ck_assert_uint_eq(op_finish("e2", t1, OP_PASSWORD, otp), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(audited("action=operator.enroll.finish refused=", "e2", STOR_RES_DENIED), 1);
    ck_assert_uint_eq(op_finish("e1", t1, "short", otp), SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(op_finish("e1", t1, OP_PASSWORD, "000000"), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(audited("action=operator.enroll.finish refused=otp tries_left=4", "e1", STOR_RES_DENIED), 1);
    /* the right code: active; the ticket is spent */
    ck_assert_uint_eq(op_finish("e1", t1, OP_PASSWORD, otp), 0);
    ck_assert_uint_eq(op_finish("e1", t1, OP_PASSWORD, otp), SAM_REFUSE_UNAUTHORIZED);
    op = op_read("e1");
    ck_assert_uint_eq(op->status, STOR_OPERATOR_ACTIVE);
    free(op);
}
END_TEST

/* Under two_person "operator": operator add needs another operator's approval (root is not alone here). */
START_TEST(t_operator_new_two_person)
{
    char code[SAM_ENROLL_CODE_MAX + 1];
    ck_assert_uint_eq(op_add("x2", tok_root, STOR_ROLE_AUDITOR, code), SAM_REFUSE_FORBIDDEN);
    ck_assert_uint_eq(audited("operator add needs a second operator", "root", STOR_RES_DENIED), 1);
    stor_operator_t *op = calloc(1, sizeof(*op));
    ck_assert_ptr_nonnull(op);
    snprintf(op->name, sizeof(op->name), "x2");
    ck_assert_int_eq(stor_read(fx.stor, op_get_fn, op), STOR_ERR_NOTFOUND);
    free(op);
}
END_TEST

/* At rest: csc-sam seals an operator's clear secret at its start (sam_totp_seal_all) and wipes the clear bytes; an
 * operator's sealed secret does not open as a user's nor as another operator's, and a user's not as an operator's. */
START_TEST(t_operator_sealed_at_start_and_bound)
{
    uint8_t secret[STOR_TOTP_MAX], out[STOR_TOTP_MAX];
    size_t n = add_ka("kold", secret), m = 0;
    char code[7], tok[ADM_OP_TOKEN_LEN + 1];
    unsigned sealed = 0, failed = 0;
    /* an old record: the secret in clear */
    stor_operator_t *op = op_read("kold");
    OPENSSL_cleanse(op->totp_sealed, sizeof(op->totp_sealed));
    op->totp_sealed_len = 0;
    memcpy(op->totp_secret, secret, n);
    op->totp_secret_len = (uint32_t)n;
    ck_assert_int_eq(stor_write(fx.stor, op_put_fn, op), STOR_OK);
    free(op);
    ck_assert_int_eq(sam_totp_seal_all(fx.stor, fx.hsm, &sealed, &failed), STOR_OK);
    ck_assert_uint_eq(sealed, 1);
    ck_assert_uint_eq(failed, 0);
    ck_assert_uint_eq(audited("operators_sealed=1 operators_failed=0", NULL, STOR_RES_OK), 1);
    op = op_read("kold");
    ck_assert_uint_eq(op->totp_secret_len, 0);
    ck_assert(memmem(op, sizeof(*op), secret, n) == NULL);
    ck_assert_int_eq(sam_operator_totp_open(fx.hsm, "kold", op->totp_sealed, op->totp_sealed_len, out, &m), 0);
    ck_assert(m == n && memcmp(out, secret, n) == 0);
    /* not as a user's of the same name, not as another operator's */
    ck_assert_int_eq(sam_totp_open(fx.hsm, "kold", op->totp_sealed, op->totp_sealed_len, out, &m), -1);
    ck_assert_int_eq(sam_operator_totp_open(fx.hsm, "root", op->totp_sealed, op->totp_sealed_len, out, &m), -1);
    code_of(secret, n, 0, code);
    ck_assert_uint_eq(op_login("kold", OP_PASSWORD, code, claim_here(), tok, NULL), 0);
    /* a user's sealed secret copied into an operator's record does not open: the login is refused */
    stor_user_t *u = calloc(1, sizeof(*u));
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(stor_user_get(fx.stor, CFX_USER, u), STOR_OK);
    ck_assert_uint_gt(u->totp_sealed_len, 0);
    ck_assert_int_eq(sam_operator_totp_open(fx.hsm, CFX_USER, u->totp_sealed, u->totp_sealed_len, out, &m), -1);
    memcpy(op->totp_sealed, u->totp_sealed, u->totp_sealed_len);
    op->totp_sealed_len = u->totp_sealed_len;
    free(u);
    ck_assert_int_eq(stor_write(fx.stor, op_put_fn, op), STOR_OK);
    free(op);
    char ucode[7];
    cfx_otp(&fx, ucode);
    ck_assert_uint_eq(op_login("kold", OP_PASSWORD, ucode, claim_here(), tok, NULL), SAM_REFUSE_UNAUTHORIZED);
}
END_TEST

/* ---- J8: a restore only on its user's request (ACCOUNT_RESTORE on the front end's socket, RESTORE here) ---- */

/* A copy of CFX_CRED_EC under id for owner, with backups, status and end reason as given. */
typedef struct cred_like {
    const char *id, *owner;
    uint32_t backups, status, end;
} cred_like_t;

static int cred_like_fn(stor_txn_t *t, void *arg)
{
    const cred_like_t *l = arg;
    stor_cred_t *c = calloc(1, sizeof(*c));
    int rc = c != NULL ? stor_txn_cred_get(t, CFX_CRED_EC, c) : STOR_ERR_NOMEM;
    if (rc == STOR_OK) {
        snprintf(c->id, sizeof(c->id), "%s", l->id);
        snprintf(c->owner, sizeof(c->owner), "%s", l->owner);
        c->backups = l->backups;
        c->backup_last_at = l->backups ? (int64_t)time(NULL) : 0;
        c->key_backup = STOR_KEY_BACKUP_WRAPPED;
        c->status = l->status;
        c->end_reason = l->end;
        rc = stor_txn_cred_put(t, c, 0);
    }
    OPENSSL_clear_free(c, sizeof(*c));
    return rc;
}

static void cred_like(const char *id, const char *owner, uint32_t backups, uint32_t status, uint32_t end)
{
    cred_like_t l = {id, owner, backups, status, end};
    ck_assert_int_eq(stor_write(fx.stor, cred_like_fn, &l), STOR_OK);
}

/* ACCOUNT_RESTORE as a front end sends it: the refusal code (0: filed, ref set) and about. */
static uint32_t account_restore(const char *sid, const char *csrf, const char *cred, char ref[SAM_NAME_MAX + 1],
                                uint32_t *about)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    const uint8_t *msg;
    size_t len;
    uint32_t code = 0;
    *about = 0;
    ref[0] = '\0';
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_ACCOUNT_RESTORE, sam_client_next_id(fx.sam)), SAM_OK);
    sam_put_str(&b, SAM_T_CRED, cred);
    sam_put_str(&b, SAM_T_SESSION, sid);
    sam_put_str(&b, SAM_T_ADDR, "192.0.2.7");
    sam_put_str(&b, SAM_T_CSRF, csrf);
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(fx.sam, msg, len, &rb, &reply), SAM_OK);
    if (reply.op == SAM_OP_REFUSED) {
        ck_assert_int_eq(sam_get_u32(&reply, SAM_T_REFUSAL, &code), SAM_OK);
        (void)sam_get_u32(&reply, SAM_T_ABOUT, about);
    } else {
        uint32_t expires = 0;
        ck_assert_int_eq(reply.op, SAM_OP_ACCOUNT_RESTORE | SAM_OP_REPLY);
        ck_assert_int_eq(sam_get_text(&reply, SAM_T_RESTORE_REF, ref, SAM_NAME_MAX + 1), SAM_OK);
        ck_assert_int_eq(sam_get_u32(&reply, SAM_T_EXPIRES_IN, &expires), SAM_OK);
        ck_assert_uint_gt(expires, 29u * 86400u); /* restore_request_ttl's default: 30 days */
    }
    sam_build_free(&b);
    sam_rbuf_free(&rb);
    return code;
}

/* RESTORE of blob with ref (NULL: none) by root: the refusal code (0: restored). */
static uint32_t restore(const uint8_t *blob, size_t blen, const char *ref)
{
    sam_builder_t b;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_RESTORE, sam_client_next_id(opcli)), SAM_OK);
    sam_put_str(&b, SAM_T_DESCRIPTION, "unit.bak");
    sam_put_str(&b, SAM_T_SESSION, tok_root);
    sam_put_bytes(&b, SAM_T_BACKUP_BLOB, blob, blen);
    if (ref != NULL)
        sam_put_str(&b, SAM_T_RESTORE_REF, ref);
    return call_op(opcli, &b);
}

/* BACKUP_INIT: the backup keys. */
static void backup_init(void)
{
    sam_builder_t b;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_BACKUP_INIT, sam_client_next_id(opcli)), SAM_OK);
    sam_put_str(&b, SAM_T_PIN, CFX_TOKEN_SO_PIN);
    sam_put_str(&b, SAM_T_SESSION, tok_root);
    ck_assert_uint_eq(call_op(opcli, &b), 0);
}

/* A backup of cred: its bytes (malloc'd) in *blob. */
static void backup_of(const char *cred, uint8_t **blob, size_t *blen)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    const uint8_t *msg, *p;
    size_t len;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_BACKUP, sam_client_next_id(opcli)), SAM_OK);
    sam_put_str(&b, SAM_T_CRED, cred);
    sam_put_str(&b, SAM_T_SESSION, tok_root);
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(opcli, msg, len, &rb, &reply), SAM_OK);
    char why[SAM_REASON_MAX + 1] = "";
    if (sam_get_text(&reply, SAM_T_REASON, why, sizeof(why)) != SAM_OK)
        why[0] = '\0';
    ck_assert_msg(reply.op == (SAM_OP_BACKUP | SAM_OP_REPLY), "backup refused: %s", why);
    ck_assert_int_eq(sam_get_bytes(&reply, SAM_T_BACKUP_BLOB, &p, &len), SAM_OK);
    *blob = malloc(len);
    ck_assert_ptr_nonnull(*blob);
    memcpy(*blob, p, len);
    *blen = len;
    sam_build_free(&b);
    sam_rbuf_free(&rb);
}

static stor_cred_t *cred_read(const char *id)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(stor_cred_get(fx.stor, id, c), STOR_OK);
    return c;
}

/* A compromised front end asks for restores it must not get: each refused by csc-sam, audited, nothing filed. */
START_TEST(t_account_restore_refusals)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], ref[SAM_NAME_MAX + 1];
    uint32_t about;
    cfx_page_session(&fx, CFX_USER, sid, csrf);
    cred_like("al-bk", CFX_USER, 1, STOR_CRED_ENABLED, 0);
    cred_like("bob-bk", "bob", 1, STOR_CRED_ENABLED, 0);
    cred_like("al-rev", CFX_USER, 1, STOR_CRED_DESTROYED, STOR_CRED_END_REVOKED);
    cred_like("al-term", CFX_USER, 1, STOR_CRED_DESTROYED, STOR_CRED_END_TERMINATED);
    unsigned before = audited("ACCOUNT_RESTORE", CFX_USER, STOR_RES_DENIED);
    /* a session csc-sam does not know; the right session with a forged form */
    ck_assert_uint_eq(account_restore("forged-session-forged-session-forged-sessio", csrf, "al-bk", ref, &about),
                      SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    ck_assert_uint_eq(account_restore(sid, "forged-csrf", "al-bk", ref, &about), SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    /* another user's credential, an unknown one: the same answer */
    ck_assert_uint_eq(account_restore(sid, csrf, "bob-bk", ref, &about), SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(about, SAM_T_CRED);
    ck_assert_uint_eq(account_restore(sid, csrf, "no-such", ref, &about), SAM_REFUSE_NOT_FOUND);
    /* no backup of the key (the fixture's credential was never backed up) */
    ck_assert_uint_eq(account_restore(sid, csrf, CFX_CRED_EC, ref, &about), SAM_REFUSE_NOT_OFFERED);
    ck_assert_uint_eq(about, SAM_T_CRED);
    /* a final end: revoked, its owner terminated */
    ck_assert_uint_eq(account_restore(sid, csrf, "al-rev", ref, &about), SAM_REFUSE_DISABLED);
    ck_assert_uint_eq(account_restore(sid, csrf, "al-term", ref, &about), SAM_REFUSE_DISABLED);
    ck_assert_uint_eq(audited("ACCOUNT_RESTORE", CFX_USER, STOR_RES_DENIED), before + 6); /* the forged form too */
    ck_assert_uint_eq(audited("action=restore.request", NULL, STOR_RES_OK), 0);
    /* her own, backed up: filed once; asked again while open, the same reference */
    ck_assert_uint_eq(account_restore(sid, csrf, "al-bk", ref, &about), 0);
    ck_assert_uint_eq(strlen(ref), STOR_RESTORE_REF_LEN);
    ck_assert(strncmp(ref, "RR-", 3) == 0);
    ck_assert_uint_eq(strspn(ref + 3, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"), STOR_RESTORE_REF_LEN - 3);
    char again[SAM_NAME_MAX + 1];
    ck_assert_uint_eq(account_restore(sid, csrf, "al-bk", again, &about), 0);
    ck_assert_str_eq(again, ref);
    char needle[160];
    snprintf(needle, sizeof(needle), "action=restore.request ref=%s", ref);
    ck_assert_uint_eq(audited(needle, CFX_USER, STOR_RES_OK), 1);
}
END_TEST

typedef struct req_edit {
    const char *ref, *cred;
    int64_t expires_at;
} req_edit_t;

static int req_edit_fn(stor_txn_t *t, void *arg)
{
    const req_edit_t *e = arg;
    stor_restore_req_t r;
    int rc = stor_txn_restore_req_get(t, e->ref, &r);
    if (rc != 0)
        return rc;
    if (e->cred != NULL)
        snprintf(r.cred, sizeof(r.cred), "%s", e->cred);
    if (e->expires_at != 0)
        r.expires_at = e->expires_at;
    return stor_txn_restore_req_put(t, &r, 0);
}

static void req_edit(const char *ref, const char *cred, int64_t expires_at)
{
    req_edit_t e = {ref, cred, expires_at};
    ck_assert_int_eq(stor_write(fx.stor, req_edit_fn, &e), STOR_OK);
}

/* BACKUP counts on the credential; RESTORE needs the owner's request: refused without one, with an unknown, expired,
 * or another credential's one; it spends the request in its own write, so the same reference is refused after. */
START_TEST(t_restore_needs_the_users_request)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], ref[SAM_NAME_MAX + 1], other[SAM_NAME_MAX + 1];
    uint32_t about, st;
    uint8_t *blob = NULL;
    size_t blen = 0;
    cfx_page_session(&fx, CFX_USER, sid, csrf); /* before BACKUP_INIT's SO login (see the report on the pool) */
    backup_init();
    ops.adm.key_backup = 1;
    ck_assert_uint_eq(key_create(opcli, CFX_USER, tok_root, NULL, NULL, &about), 0);
    stor_cred_t *c = cred_read(NEW_CRED);
    ck_assert_uint_eq(c->backups, 0);
    free(c);
    backup_of(NEW_CRED, &blob, &blen);
    c = cred_read(NEW_CRED);
    ck_assert_uint_eq(c->backups, 1);
    ck_assert(c->backup_last_at > 0);
    free(c);
    ck_assert_uint_eq(key_destroy(NEW_CRED, tok_root, "operator request"), 0);

    ck_assert_uint_eq(account_restore(sid, csrf, NEW_CRED, ref, &about), 0);
    cred_like("al-other", CFX_USER, 1, STOR_CRED_ENABLED, 0);
    ck_assert_uint_eq(account_restore(sid, csrf, "al-other", other, &about), 0);

    unsigned before = audited("action=credential.restore refused", CFX_USER, STOR_RES_DENIED);
    ck_assert_uint_eq(restore(blob, blen, NULL), SAM_REFUSE_INTERNAL);
    ck_assert_uint_eq(audited("a restore needs its user's request", NULL, STOR_RES_DENIED), 1);
    ck_assert_uint_eq(restore(blob, blen, "RR-AAAABBBBCCCC"), SAM_REFUSE_INTERNAL);
    ck_assert_uint_eq(restore(blob, blen, other), SAM_REFUSE_INTERNAL); /* another credential's */
    req_edit(ref, NULL, (int64_t)time(NULL) - 1);
    ck_assert_uint_eq(restore(blob, blen, ref), SAM_REFUSE_INTERNAL); /* expired */
    ck_assert_uint_eq(audited("action=credential.restore refused", CFX_USER, STOR_RES_DENIED), before + 3);
    ck_assert_uint_eq(audited("is for another credential", CFX_USER, STOR_RES_DENIED), 1);
    ck_assert_uint_eq(audited("has expired", CFX_USER, STOR_RES_DENIED), 1);
    ck_assert(cred_status(NEW_CRED, &st));
    ck_assert_uint_eq(st, STOR_CRED_DESTROYED);

    req_edit(ref, NULL, (int64_t)time(NULL) + 600);
    ck_assert_uint_eq(restore(blob, blen, ref), 0);
    ck_assert(cred_status(NEW_CRED, &st));
    ck_assert_uint_eq(st, STOR_CRED_ENABLED);
    c = cred_read(NEW_CRED);
    ck_assert_uint_eq(c->backups, 1); /* the same key: its backup still restores it */
    free(c);
    char needle[160];
    snprintf(needle, sizeof(needle), "action=credential.restore mech=CKM_AES_KEY_WRAP_PAD ref=%s", ref);
    ck_assert_uint_eq(audited(needle, CFX_USER, STOR_RES_OK), 1);
    /* used: refused, even over a destroyed record again */
    ck_assert_uint_eq(key_destroy(NEW_CRED, tok_root, "operator request"), 0);
    ck_assert_uint_eq(restore(blob, blen, ref), SAM_REFUSE_INTERNAL);
    ck_assert_uint_eq(audited("was used already", CFX_USER, STOR_RES_DENIED), 1);
    free(blob);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sam-ops");
    TCase *tc = tcase_create("key_create");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_create_by_key_admin);
    tcase_add_test(tc, t_create_takes_no_pin);
    tcase_add_test(tc, t_create_csr_bytes_back);
    tcase_add_test(tc, t_create_no_or_forged_session);
    tcase_add_test(tc, t_create_without_the_role);
    tcase_add_test(tc, t_sockets_keep_their_ops);
    tcase_add_test(tc, t_hello_ticket_key);
    tcase_add_test(tc, t_destroy_checked);
    tcase_add_test(tc, t_terminate_needs_user_admin);
    tcase_add_test(tc, t_every_op_refused_without_a_session);
    tcase_add_test(tc, t_enroll_issue_letter_and_recover);
    tcase_add_test(tc, t_origin_and_host);
    tcase_add_test(tc, t_operator_login);
    tcase_add_test(tc, t_operator_login_locks);
    tcase_add_test(tc, t_operator_new);
    tcase_add_test(tc, t_operator_enroll);
    tcase_add_test(tc, t_operator_sealed_at_start_and_bound);
    tcase_add_test(tc, t_account_restore_refusals);
    tcase_add_test(tc, t_restore_needs_the_users_request);
    suite_add_tcase(s, tc);
    tc = tcase_create("production");
    tcase_add_checked_fixture(tc, setup_production, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_enroll_issue_production_needs_evidence);
    suite_add_tcase(s, tc);
    tc = tcase_create("two_person");
    tcase_add_checked_fixture(tc, setup_two, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_create_two_person);
    tcase_add_test(tc, t_destroy_two_person_by_command);
    suite_add_tcase(s, tc);
    tc = tcase_create("two_person_operator");
    tcase_add_checked_fixture(tc, setup_two_operator, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_operator_new_two_person);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
