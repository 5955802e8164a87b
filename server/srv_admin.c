/* srv_admin.c - csc-admin: the operators' tool (users, credentials). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include "adm.h"
#include "sam_server.h" /* the signed audit heads (sam_audit_head.c) */
#include "srv.h"
#include "srv_audit.h"
#include "srv_i18n.h"
#include "srv_opsock.h"

static void usage(FILE *f)
{
    fputs(_("usage: csc-admin -c CONFIG COMMAND ...\n"
            "Every command but init, operator bootstrap, operator enroll and login needs an operator session: the token\n"
            "printed by\n"
            "login, in $CSC_ADMIN_SESSION (or in a mode-0600 file named by $CSC_ADMIN_SESSION_FILE), and the role\n"
            "shown in [brackets]. Commands named by the two_person setting wait for a second operator (approve).\n"
            "Commands that use a key run in csc-sam, through its operators' socket (sam_admin_socket); with\n"
            "sam_mode = spawn and no csc-sam running, csc-admin starts one for the command.\n"
            "commands:\n"
            "  init                                   create the database; check the HSM token\n"
            "  db copy --from BACKEND:LOCATION [--to BACKEND:LOCATION]\n"
            "                                         copy every record into an empty database (--to: default the\n"
            "                                         configured storage), check each table, audit the copy; stop the\n"
            "                                         service first; no session needed\n"
            "  db backup FILE                         a consistent copy of the LMDB database while the service\n"
            "                                         runs, with its audit head, signed first (csc-sam), into FILE\n"
            "                                         (new, 0600; its SHA-256 signed by the audit key through\n"
            "                                         csc-sam); PostgreSQL: pg_basebackup instead   [auditor]\n"
            "  db restore FILE [--db lmdb:DIR] [--key PEM]\n"
            "                                         into a new or empty folder (--db: default the configured\n"
            "                                         storage): FILE checked whole before anything is written, then\n"
            "                                         audit verify on the result; --key: the audit public key (of\n"
            "                                         audit export-key): checks FILE's signature, needed for a FILE\n"
            "                                         with signed heads; no session needed\n"
            "  db init [--db BACKEND:LOCATION]        a new database: apply every schema migration it lacks\n"
            "                                         (postgresql: as the migrations' owner, csc_admin; lmdb: create\n"
            "                                         it); --db: default the configured storage; no session needed\n"
            "  db migrate [--db BACKEND:LOCATION]     upgrade an initialised database to this csc-admin's schema\n"
            "                                         version, before starting newer nodes; refuses a newer database\n"
            "  operator bootstrap NAME [--password-file FILE]\n"
            "                                         the first operator, with every role (only while none exists;\n"
            "                                         production: user-admin, see docs/configuration.md);\n"
            "                                         password from FILE or standard input; prints the TOTP secret,\n"
            "                                         its otpauth:// URI and a QR code\n"
            "  login NAME [--session-file FILE]       password and current TOTP code from the terminal (no echo) or,\n"
            "                                         if standard input is not a terminal, its first two lines\n"
            "                                         (csc-sam checks them);\n"
            "                                         prints the session token (or writes it to FILE, mode 0600)\n"
            "  logout                                 end the session at once\n"
            "  operator add NAME --roles ROLES (--contact C | --letter)   [user-admin]\n"
            "                                         ROLES: user-admin,key-admin,auditor (any of them) or all; the\n"
            "                                         operator waits enrolling with a one-time code sent to C by\n"
            "                                         otp_sender (never shown here) or, with no sender and --letter,\n"
            "                                         printed once for a sealed letter\n"
            "  operator enroll NAME                   on the new operator's own terminal: the enrollment code, then\n"
            "                                         the TOTP secret is shown (URI, QR code), then the password\n"
            "                                         twice and a first one-time code\n"
            "  operator roles NAME ROLES | operator remove NAME | operator list   [user-admin]\n"
            "                                         nobody changes their own roles or removes themselves\n"
            "  approvals                              pending two-person requests   [any operator]\n"
            "  approve ID | reject ID                 run or drop a request: another operator with its role\n"
            "  user add NAME --contact C [--evidence REF] [--applicant REF] [--mandate REF] [--letter]   [user-admin]\n"
            "                                         register a user (state enrolling: no password, no TOTP yet) and\n"
            "                                         issue a one-time enrollment code for /enroll: sent to C by\n"
            "                                         otp_sender (never shown here), or, with no sender and --letter,\n"
            "                                         printed once for a sealed letter; REF names the identity-\n"
            "                                         verification evidence (required in production), the applicant,\n"
            "                                         and the applicant's mandate to act for the user\n"
            "  user recover NAME [--pin CRED]... [--contact C] [--letter]   [user-admin]\n"
            "                                         a user who lost a factor: password and TOTP cleared, sessions\n"
            "                                         and tokens revoked, a new enrollment code (as user add); each\n"
            "                                         --pin CRED: that credential's PIN must be set again; also\n"
            "                                         re-issues an expired or burnt code\n"
            "  user change NAME --evidence REF       a new evidence reference   [user-admin]\n"
            "                                         (no operator sets a password, a TOTP secret or a PIN: the user\n"
            "                                         does, on /enroll and /account; a lost factor: user recover)\n"
            "  credential create --user NAME [--id ID] [--key rsa2048|rsa3072|rsa4096|p256|p384|p521]   [key-admin]\n"
            "                    [--auth \"PIN AND OTP\"|PIN|OTP|\"PIN OR OTP\"|CHALLENGE|\"PIN AND CHALLENGE\"|\n"
            "                            APPROVAL|\"PIN AND APPROVAL\"]\n"
            "                    (CHALLENGE: a one-time code sent by otp_sender after\n"
            "                    credentials/getChallenge; APPROVAL: the user approves on the /approve page,\n"
            "                    authorize answers 202 + handle; both need auth mode explicit)\n"
            "                    [--scal 1|2] [--multisign N] [--description TEXT] [--cn NAME]\n"
            "                    [--auth-mode explicit|oauth2code] [--qualifier eu_eidas_qes|...]\n"
            "                    [--csr FILE --org O --country C]\n"
            "                                         key generated in the HSM, certificate from the CA;\n"
            "                                         a PIN the owner sets (/enroll, /account: pin=unset until\n"
            "                                         then); with --csr: a PKCS#10 request signed by the HSM key is\n"
            "                                         written to FILE (subject C, O, CN) and the credential is\n"
            "                                         pending until the import\n"
            "  credential import ID CERT.pem [--chain CHAIN.pem]   [key-admin]\n"
            "                                         the CA's certificate for the pending (or current) key: must\n"
            "                                         match the HSM key, be valid now and chain to trust_anchors\n"
            "  credential renew ID --csr FILE [--cn NAME --org O --country C]   [key-admin]\n"
            "                                         new key and request; the old key signs until the import,\n"
            "                                         which destroys it\n"
            "  credential enable ID | credential disable ID   [key-admin]\n"
            "  credential revoke ID | credential destroy ID   [key-admin]\n"
            "                                         destroy the key in the HSM (certificate revoked / no longer\n"
            "                                         wanted); final: the credential never signs again\n"
            "  credential destroy-pending             destroy the keys whose destruction csc-server filed (a CRL\n"
            "                                         revoked their certificates; the credentials are destroyed\n"
            "                                         already): one audited line per key; idempotent, for a timer;\n"
            "                                         under two_person it names the requests to approve   [key-admin]\n"
            "  credential renew ID                    new key and certificate; the old key is destroyed   [key-admin]\n"
            "  credential delegate ID --user NAME --evidence REF   [key-admin]\n"
            "                                         let NAME sign with the credential on the owner's behalf; REF\n"
            "                                         names the owner's consent; NAME authorizes with their own TOTP\n"
            "                                         and, if the credential needs a PIN, their own PIN, which NAME\n"
            "                                         sets on /enroll or /account\n"
            "  credential delegate ID --user NAME --remove   the delegate can no longer sign, at once   [key-admin]\n"
            "  backup init [--so-pin-file FILE]       create the HSM backup keys (trusted wrapping key, made with\n"
            "                                         the token's SO PIN from FILE or standard input; integrity key)\n"
            "                                         [key-admin]\n"
            "  credential backup ID FILE              write the credential with its key wrapped in the HSM and an\n"
            "                                         HSM integrity tag to FILE (new, 0600); needs key_backup = wrapped\n"
            "                                         when the key was generated   [key-admin]\n"
            "  credential restore FILE --request REF  check the file's integrity tag in the HSM, unwrap the key into\n"
            "                                         the token, store the credential (destroyed by an operator\n"
            "                                         only), on its owner's request REF (made on /account)\n"
            "                                         [key-admin]\n"
            "  tsa init [--key rsa2048|...|p256|p384|p521] [--cn NAME]   [key-admin]\n"
            "                                         create the built-in time-stamping unit named by\n"
            "                                         tsa_credential: key in the HSM, certificate from the CA\n"
            "                                         with a critical extendedKeyUsage timeStamping\n"
            "  user suspend NAME | user resume NAME | user terminate NAME (destroys all the user's keys)   [user-admin]\n"
            "  client add ID --redirect URI [--redirect URI ...] [--name TEXT]   [user-admin]\n"
            "             [--scopes service,credential] [--grants authorization_code,refresh_token,client_credentials]\n"
            "                                         register an OAuth 2.0 client; prints its secret once\n"
            "  client list | client remove ID         [user-admin]\n"
            "  list                                   users and their credentials   [user-admin or key-admin]\n"
            "  audit verify [--key PEM]               check the audit log's hash chain, seqs and head, and every   [auditor]\n"
            "                                         signed head (signature with the audit key from the HSM or PEM,\n"
            "                                         and the log's hash at its seq); exit 1 and one line per problem\n"
            "  audit key-init                         create the audit head key (EC P-256) in the HSM (init does too)\n"
            "                                         [key-admin]\n"
            "  audit sign-head                        sign the current audit head now   [auditor]\n"
            "  audit export-key FILE                  write the audit public key (PEM) for external verifiers   [auditor]\n"
            "  audit heads                            print the signed heads (JSON lines: signed_text, signature)\n"
            "                                         [auditor]\n"
            "  audit report --from TIME --to TIME [--out FILE]   [auditor]\n"
            "                                         event counts by kind and result, refusals, lock-outs, operator\n"
            "                                         actions, the log's and signed heads' verification, the newest\n"
            "                                         signed head: one line of JSON, then its signature by the audit\n"
            "                                         key (csc-sam) as a second line; FILE: new\n"
            "  audit verify-report FILE [--key PEM]   check a report's SHA-256 and signature   [auditor]\n"
            "  audit query [--user NAME] [--credential ID] [--since TIME] [--until TIME] [--json]   [auditor]\n"
            "              [--event login|revoke|authorize|sign|sign-result|admin|lockout|timestamp|challenge|\n"
            "                       approval|operator|cert|backup|restore|audit-head|sam|enroll]\n"
            "                                         print matching audit records; TIME is ISO-8601 UTC\n"
            "                                         (2026-11-25T10:00:00Z) or unix seconds, both inclusive\n"),
          f);
}

/* A secret from a file or standard input: first line, without its newline. */
static int read_secret(const char *file, const char *what, char *buf, size_t sz)
{
    FILE *f = file != NULL ? fopen(file, "r") : stdin;
    if (f == NULL) {
        fprintf(stderr, _("csc-admin: cannot read %s from %s\n"), what, file);
        return -1;
    }
    if (file == NULL && isatty(fileno(stdin)))
        fprintf(stderr, "%s: ", what);
    int ok = fgets(buf, (int)sz, f) != NULL;
    if (f != stdin)
        fclose(f);
    if (!ok) {
        fprintf(stderr, _("csc-admin: no %s given\n"), what);
        return -1;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

static int parse_key(const char *s, hsm_keyspec_t *k)
{
    static const struct {
        const char *name;
        hsm_key_type_t type;
        unsigned bits;
        int nid;
    } keys[] = {
        {"rsa2048", HSM_KEY_RSA, 2048, 0},          {"rsa3072", HSM_KEY_RSA, 3072, 0},
        {"rsa4096", HSM_KEY_RSA, 4096, 0},          {"p256", HSM_KEY_EC, 256, NID_X9_62_prime256v1},
        {"p384", HSM_KEY_EC, 384, NID_secp384r1}, {"p521", HSM_KEY_EC, 521, NID_secp521r1},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(s, keys[i].name) == 0) {
            k->type = keys[i].type;
            k->bits = keys[i].bits;
            k->curve_nid = keys[i].nid;
            return 0;
        }
    return -1;
}

/* user change NAME --evidence REF */
static int cmd_user_change(const adm_t *a, int argc, char **argv)
{
    char err[512];
    if (argc != 3 || strcmp(argv[1], "--evidence") != 0) {
        usage(stderr);
        return 2;
    }
    if (adm_user_change(a, argv[0], argv[2], err, sizeof(err)) != 0) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    printf(_("user %s changed\n"), argv[0]);
    return 0;
}

/* ---- operators, sessions, approvals (J14) ------------------------------------------------------------------ */

typedef struct admin_ctx {
    srv_config_t *cfg;
    srv_modules_t *m;
    adm_t *a;
    adm_op_policy_t pol;
    uint32_t roles;            /* of the operator logged in */
    int approving;             /* running a command approved by a second operator */
    const char *approval_id;   /* csc-sam's commands: the request approved (csc-sam takes it), else NULL */
    char approved_line[256];   /* printed once csc-sam accepted the approved command */
} admin_ctx_t;

enum { RUN_LOCAL = 0, RUN_SAM = 2 };

typedef int (*admin_fn)(admin_ctx_t *x, int argc, char **argv);

/* One row per command. role: the operator roles of which one is needed (0 with session = any operator);
 * session 0: runs without an operator session (creating the database, the first operator, logging in). */
typedef struct admin_cmd {
    const char *w1, *w2;       /* the command words ("credential", "destroy"); w2 NULL for one word */
    uint32_t role;
    int session;
    int hsm;                   /* RUN_LOCAL: csc-admin's own (storage only); RUN_SAM: csc-sam's (the operators' socket:
                                  csc-admin opens no token, docs/architecture.md "The operators' socket") */
    admin_fn fn;
} admin_cmd_t;

/* ---- csc-sam's commands (the operators' socket; srv_opsock.c) ---------------------------------------------- */

static int session_token(char *buf, size_t sz);

/* Start a request of op to csc-sam. */
static void sam_begin(sam_builder_t *b, unsigned op)
{
    (void)sam_build_init(b, op, 1); /* a failure sticks: srv_opsock_call reports it */
}

/* SESSION: the operator's token ("-" without one: csc-sam refuses and audits it as no session). */
static void sam_put_token(sam_builder_t *b)
{
    char token[ADM_OP_TOKEN_LEN + 8];
    if (session_token(token, sizeof(token)) != 0 || token[0] == '\0')
        snprintf(token, sizeof(token), "-");
    sam_put_str(b, SAM_T_SESSION, token);
    OPENSSL_cleanse(token, sizeof(token));
}

/* APPROVAL_ID, when running an approved request. */
static void sam_put_approval(const admin_ctx_t *x, sam_builder_t *b)
{
    if (x->approval_id != NULL)
        sam_put_str(b, SAM_T_APPROVAL_ID, x->approval_id);
}

/* SESSION then APPROVAL_ID, where the op's tag order has them together (every operator op but KEY_DESTROY, whose
 * REASON comes between). */
static void sam_put_session(const admin_ctx_t *x, sam_builder_t *b)
{
    sam_put_token(b);
    sam_put_approval(x, b);
}

/* Send b (freed here) and receive csc-sam's reply into rb/reply. 0: the op's reply; 1: refused (its reason printed)
 * or csc-sam not reachable (said). */
static int sam_run(admin_ctx_t *x, sam_builder_t *b, sam_rbuf_t *rb, sam_msg_t *reply)
{
    int rc = srv_opsock_call(x->cfg, b, rb, reply);
    sam_build_free(b);
    if (rc != 0)
        return 1;
    if (reply->op == SAM_OP_REFUSED) {
        char reason[SAM_REASON_MAX + 1];
        if (sam_get_text(reply, SAM_T_REASON, reason, sizeof(reason)) != SAM_OK || reason[0] == '\0')
            snprintf(reason, sizeof(reason), _("csc-sam refused: %s"), sam_refusal_name(0));
        fprintf(stderr, "csc-admin: %s\n", reason);
        return 1;
    }
    if (x->approved_line[0] != '\0')
        printf("%s\n", x->approved_line);
    return 0;
}

/* An op of one name (tag: CRED or USER) and the session, whose reply has no field. 0: done; 1: refused or csc-sam
 * not reachable (said why). */
static int sam_named_op(admin_ctx_t *x, unsigned op, unsigned tag, const char *name)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    sam_begin(&b, op);
    sam_put_str(&b, tag, name);
    sam_put_session(x, &b);
    int rc = sam_run(x, &b, &rb, &reply);
    sam_rbuf_free(&rb);
    return rc;
}

/* A key spec as KEY_TYPE, KEY_BITS (RSA) or CURVE (EC, dotted OID). */
static void sam_put_key(sam_builder_t *b, const hsm_keyspec_t *k)
{
    char oid[SAM_OID_MAX + 1] = "";
    sam_put_u32(b, SAM_T_KEY_TYPE, k->type == HSM_KEY_RSA ? SAM_KEY_RSA : SAM_KEY_EC);
    if (k->type == HSM_KEY_RSA) {
        sam_put_u32(b, SAM_T_KEY_BITS, k->bits);
        return;
    }
    ASN1_OBJECT *o = OBJ_nid2obj(k->curve_nid);
    if (o == NULL || OBJ_obj2txt(oid, sizeof(oid), o, 1) <= 0)
        oid[0] = '\0';
    sam_put_str(b, SAM_T_CURVE, oid);
}

/* Write the DER request der as PEM to file (new or truncated). 0 or -1 (said why). */
static int write_csr(const char *file, const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
    FILE *f = req != NULL ? fopen(file, "w") : NULL;
    int ok = f != NULL && PEM_write_X509_REQ(f, req) == 1;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    X509_REQ_free(req);
    if (!ok)
        fprintf(stderr, _("csc-admin: cannot write the certificate request to %s\n"), file);
    return ok ? 0 : -1;
}

/* backup init [--so-pin-file FILE]: csc-sam makes the backup keys (BACKUP_INIT); the SO PIN is asked only when it
 * says the wrapping key is missing (from FILE: read at once and sent). */
static int cmd_backup_init(admin_ctx_t *x, int argc, char **argv)
{
    const char *file = NULL;
    char pin[300] = "";
    int rc, have_pin = 0;

    if (argc == 2 && strcmp(argv[0], "--so-pin-file") == 0) {
        file = argv[1];
        if (read_secret(file, _("SO PIN"), pin, sizeof(pin)) != 0)
            return 1;
        have_pin = 1;
    } else if (argc != 0) {
        usage(stderr);
        return 2;
    }
    for (int round = 0;; round++) {
        sam_builder_t b;
        sam_rbuf_t rb = {0};
        sam_msg_t reply;
        uint32_t created = 0, about = 0, code = 0;
        sam_begin(&b, SAM_OP_BACKUP_INIT);
        if (have_pin)
            sam_put_str(&b, SAM_T_PIN, pin);
        sam_put_session(x, &b);
        rc = srv_opsock_call(x->cfg, &b, &rb, &reply);
        sam_build_free(&b);
        if (rc == 0 && reply.op == SAM_OP_REFUSED) {
            (void)sam_get_u32(&reply, SAM_T_REFUSAL, &code);
            (void)sam_get_u32(&reply, SAM_T_ABOUT, &about);
        }
        if (rc == 0 && code == SAM_REFUSE_UNAUTHORIZED && about == SAM_T_PIN && !have_pin && round == 0) {
            sam_rbuf_free(&rb);
            if (read_secret(NULL, _("SO PIN"), pin, sizeof(pin)) != 0)
                return 1;
            have_pin = 1;
            continue;
        }
        OPENSSL_cleanse(pin, sizeof(pin));
        if (rc == 0 && reply.op == SAM_OP_REFUSED) {
            char reason[SAM_REASON_MAX + 1];
            if (sam_get_text(&reply, SAM_T_REASON, reason, sizeof(reason)) != SAM_OK)
                reason[0] = '\0';
            fprintf(stderr, "csc-admin: %s\n", reason);
            rc = 1;
        } else if (rc == 0) {
            (void)sam_get_u32(&reply, SAM_T_CREATED, &created);
            if (x->approved_line[0] != '\0')
                printf("%s\n", x->approved_line);
            printf(created ? _("backup keys created in the HSM (wrapping key trusted, sensitive, not extractable)\n")
                           : _("backup keys present in the HSM\n"));
        } else {
            rc = 1;
        }
        sam_rbuf_free(&rb);
        return rc;
    }
}

/* The certificates of a PEM file, appended as CERT fields. 0, or -1 (said which file). */
static int put_pem_certs(sam_builder_t *b, const char *file, const char *what)
{
    FILE *f = fopen(file, "r");
    X509 *x;
    int n = 0;
    while (f != NULL && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        unsigned char *der = NULL;
        int len = i2d_X509(x, &der);
        if (len > 0)
            sam_put_bytes(b, SAM_T_CERT, der, (size_t)len);
        OPENSSL_free(der);
        X509_free(x);
        n++;
    }
    ERR_clear_error();
    if (f != NULL)
        fclose(f);
    if (n == 0)
        fprintf(stderr, _("csc-admin: cannot read %s from %s\n"), what, file);
    return n > 0 ? 0 : -1;
}

/* credential import ID CERT [--chain FILE] (CERT_IMPORT: csc-admin reads the files) | credential renew ID --csr FILE
 * [--cn --org --country] (CSR: csc-admin writes the request) */
static int cmd_cred_cert(admin_ctx_t *x, const char *op, int argc, char **argv)
{
    const char *chain = NULL, *csr = NULL, *cn = NULL, *o = NULL, *country = NULL;
    int first = strcmp(op, "import") == 0 ? 2 : 1, rc;
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    if (argc < first) {
        usage(stderr);
        return 2;
    }
    for (int i = first; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = strcmp(k, "--chain") == 0 && first == 2  ? &chain
                            : strcmp(k, "--csr") == 0 && first == 1  ? &csr
                            : strcmp(k, "--cn") == 0 && first == 1   ? &cn
                            : strcmp(k, "--org") == 0 && first == 1  ? &o
                            : strcmp(k, "--country") == 0 && first == 1 ? &country
                                                                      : NULL;
        if (slot == NULL || v == NULL) {
            usage(stderr);
            return 2;
        }
        *slot = v;
    }
    if (first == 1 && csr == NULL) {
        usage(stderr);
        return 2;
    }
    sam_begin(&b, first == 2 ? SAM_OP_CERT_IMPORT : SAM_OP_CSR);
    sam_put_str(&b, SAM_T_CRED, argv[0]);
    sam_put_session(x, &b);
    if (first == 2) {
        if (put_pem_certs(&b, argv[1], _("a PEM certificate")) != 0 ||
            (chain != NULL && put_pem_certs(&b, chain, _("PEM certificates")) != 0)) {
            sam_build_free(&b);
            return 1;
        }
    } else {
        if (cn != NULL)
            sam_put_str(&b, SAM_T_SUBJECT_CN, cn);
        if (o != NULL)
            sam_put_str(&b, SAM_T_SUBJECT_O, o);
        if (country != NULL)
            sam_put_str(&b, SAM_T_SUBJECT_C, country);
    }
    rc = sam_run(x, &b, &rb, &reply);
    const uint8_t *der;
    size_t len;
    if (rc == 0 && first == 2) {
        printf(_("credential %s: certificate imported\n"), argv[0]);
    } else if (rc == 0 && (sam_get_bytes(&reply, SAM_T_CSR, &der, &len) != SAM_OK || write_csr(csr, der, len) != 0)) {
        rc = 1;
    } else if (rc == 0) {
        printf(_("credential %s: new key pending its certificate; request written to %s\n"), argv[0], csr);
    }
    sam_rbuf_free(&rb);
    return rc;
}

/* credential create: csc-sam makes the key (KEY_CREATE); csc-admin writes the request (--csr). No PIN: the owner's. */
static int cmd_cred_create(admin_ctx_t *x, int argc, char **argv)
{
    const char *owner = NULL, *id = NULL, *auth = "PIN AND OTP", *desc = NULL, *cn = NULL;
    const char *qualifier = NULL, *csr_file = NULL, *org = NULL, *country = NULL;
    unsigned scal = 2, multisign = 1;
    int oauth2code = 0;
    hsm_keyspec_t key;

    parse_key("rsa2048", &key);
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(o, "--user") == 0) {
            owner = v;
        } else if (strcmp(o, "--id") == 0) {
            id = v;
        } else if (strcmp(o, "--key") == 0) {
            if (parse_key(v, &key) != 0) {
                fprintf(stderr, _("csc-admin: unknown key type %s\n"), v);
                return 2;
            }
        } else if (strcmp(o, "--auth") == 0) {
            auth = v;
        } else if (strcmp(o, "--scal") == 0) {
            scal = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(o, "--multisign") == 0) {
            multisign = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(o, "--description") == 0) {
            desc = v;
        } else if (strcmp(o, "--cn") == 0) {
            cn = v;
        } else if (strcmp(o, "--qualifier") == 0) {
            qualifier = v;
        } else if (strcmp(o, "--csr") == 0) {
            csr_file = v;
        } else if (strcmp(o, "--org") == 0) {
            org = v;
        } else if (strcmp(o, "--country") == 0) {
            country = v;
        } else if (strcmp(o, "--auth-mode") == 0) {
            if (strcmp(v, "oauth2code") != 0 && strcmp(v, "explicit") != 0) {
                fprintf(stderr, _("csc-admin: --auth-mode is explicit or oauth2code\n"));
                return 2;
            }
            oauth2code = strcmp(v, "oauth2code") == 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (owner == NULL) {
        fprintf(stderr, _("csc-admin: --user is required\n"));
        return 2;
    }
    if ((org != NULL || country != NULL) && csr_file == NULL) {
        fprintf(stderr, _("csc-admin: --org and --country go with --csr\n"));
        return 2;
    }
    /* The PIN is the owner's to set (/enroll, /account): the credential waits for it (pin=unset). */
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    sam_begin(&b, SAM_OP_KEY_CREATE);
    if (id != NULL)
        sam_put_str(&b, SAM_T_CRED, id);
    sam_put_str(&b, SAM_T_USER, owner);
    if (desc != NULL)
        sam_put_str(&b, SAM_T_DESCRIPTION, desc);
    sam_put_session(x, &b);
    sam_put_key(&b, &key);
    sam_put_str(&b, SAM_T_AUTH_EXPR, auth);
    sam_put_u32(&b, SAM_T_SCAL, scal);
    sam_put_u32(&b, SAM_T_MULTISIGN, multisign);
    if (cn != NULL)
        sam_put_str(&b, SAM_T_SUBJECT_CN, cn);
    if (org != NULL)
        sam_put_str(&b, SAM_T_SUBJECT_O, org);
    if (country != NULL)
        sam_put_str(&b, SAM_T_SUBJECT_C, country);
    if (qualifier != NULL)
        sam_put_str(&b, SAM_T_QUALIFIER, qualifier);
    if (oauth2code)
        sam_put_u32(&b, SAM_T_OAUTH2CODE, 1);
    if (csr_file != NULL)
        sam_put_u32(&b, SAM_T_CSR_WANTED, 1);
    int rc = sam_run(x, &b, &rb, &reply);
    char made[SAM_NAME_MAX + 1];
    const uint8_t *der = NULL;
    size_t der_len = 0;
    if (rc == 0 && sam_get_text(&reply, SAM_T_CRED, made, sizeof(made)) != SAM_OK) {
        fprintf(stderr, _("csc-admin: csc-sam's reply names no credential\n"));
        rc = 1;
    }
    if (rc == 0 && csr_file != NULL &&
        (sam_get_bytes(&reply, SAM_T_CSR, &der, &der_len) != SAM_OK || write_csr(csr_file, der, der_len) != 0))
        rc = 1;
    if (rc == 0 && csr_file != NULL)
        printf(_("credential %s created, pending its certificate; request written to %s\n"), made, csr_file);
    else if (rc == 0)
        printf(_("credential %s created%s\n"), made,
               strstr(auth, "PIN") != NULL ? _("; its PIN waits for the owner (pin=unset)") : "");
    sam_rbuf_free(&rb);
    return rc;
}

/* "a,b,c" against a table of names -> bit set; -1 on an unknown name. */
static long parse_set(const char *list, const char *const *names, const unsigned *bits, size_t n)
{
    long set = 0;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < n && strcmp(tok, names[i]) != 0; i++)
            ;
        if (i == n)
            return -1;
        set |= bits[i];
    }
    return set;
}

static int cmd_client(srv_modules_t *m, const char *op, int argc, char **argv, const adm_t *a)
{
    static const char *const scope_names[] = {"service", "credential"};
    static const unsigned scope_bits[] = {1u << STOR_SCOPE_SERVICE, 1u << STOR_SCOPE_CREDENTIAL};
    static const char *const grant_names[] = {"authorization_code", "refresh_token", "client_credentials"};
    static const unsigned grant_bits[] = {STOR_GRANT_AUTHORIZATION_CODE, STOR_GRANT_REFRESH_TOKEN,
                                          STOR_GRANT_CLIENT_CREDENTIALS};
    if (strcmp(op, "list") == 0 && argc == 0)
        return adm_clients_list(a, stdout) == 0 ? 0 : 1;
    if (strcmp(op, "remove") == 0 && argc == 1) {
        int rc = oauth_client_remove(m->oauth, argv[0], a->operator_name);
        if (rc != OAUTH_OK) {
            fprintf(stderr, _("csc-admin: no client %s (%s)\n"), argv[0], oauth_strerror(rc));
            return 1;
        }
        printf(_("client %s removed\n"), argv[0]);
        return 0;
    }
    if (strcmp(op, "add") != 0 || argc < 1) {
        usage(stderr);
        return 2;
    }
    stor_client_t *c = calloc(1, sizeof(*c));
    char secret[OAUTH_TOKEN_BUFLEN];
    if (c == NULL)
        return 1;
    snprintf(c->id, sizeof(c->id), "%s", argv[0]);
    c->scopes = scope_bits[0] | scope_bits[1];
    c->grants = STOR_GRANT_AUTHORIZATION_CODE | STOR_GRANT_REFRESH_TOKEN;
    int rc = 2;
    for (int i = 1; i < argc; i += 2) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long set;
        if (v == NULL)
            goto bad;
        if (strcmp(o, "--redirect") == 0 && c->n_redirects < STOR_REDIRECTS_MAX && strlen(v) <= STOR_URI_MAX)
            snprintf(c->redirects[c->n_redirects++], sizeof(c->redirects[0]), "%s", v);
        else if (strcmp(o, "--name") == 0 && strlen(v) <= STOR_DESC_MAX)
            snprintf(c->name, sizeof(c->name), "%s", v);
        else if (strcmp(o, "--scopes") == 0 && (set = parse_set(v, scope_names, scope_bits, 2)) > 0)
            c->scopes = (uint32_t)set;
        else if (strcmp(o, "--grants") == 0 && (set = parse_set(v, grant_names, grant_bits, 3)) > 0)
            c->grants = (uint32_t)set;
        else
            goto bad;
    }
    if (c->n_redirects == 0 && (c->grants & STOR_GRANT_AUTHORIZATION_CODE)) {
        fprintf(stderr, _("csc-admin: the authorization_code grant needs at least one --redirect\n"));
        goto out;
    }
    int orc = oauth_client_add(m->oauth, c, a->operator_name, secret);
    if (orc != OAUTH_OK) {
        fprintf(stderr, _("csc-admin: cannot add client %s: %s\n"), c->id,
                orc == OAUTH_ERR_DENIED ? _("it exists already")
                : orc == OAUTH_ERR_INVAL ? _("invalid id or redirect URI (absolute https, or http on localhost)")
                                         : oauth_strerror(orc));
        rc = 1;
        goto out;
    }
    printf("client_id %s\nclient_secret %s\n", c->id, secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    rc = 0;
    goto out;
bad:
    usage(stderr);
out:
    free(c);
    return rc;
}

static int load_pem_pub(const char *file, EVP_PKEY **out)
{
    FILE *f = fopen(file, "r");
    *out = f != NULL ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
    if (f != NULL)
        fclose(f);
    if (*out == NULL)
        fprintf(stderr, _("csc-admin: cannot read a PEM public key from %s\n"), file);
    return *out != NULL ? 0 : -1;
}

/* The audit public key from csc-sam (AUDIT_PUBKEY; for the command what: "export-key" or "verify"). 0 with *out (NULL:
 * no audit key), or 1 (refused or csc-sam not reachable: said why). */
static int sam_audit_pub(admin_ctx_t *x, const char *what, EVP_PKEY **out)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    const uint8_t *der;
    size_t len;
    *out = NULL;
    sam_begin(&b, SAM_OP_AUDIT_PUBKEY);
    sam_put_str(&b, SAM_T_DESCRIPTION, what);
    sam_put_session(x, &b);
    int rc = sam_run(x, &b, &rb, &reply);
    if (rc == 0 && sam_get_bytes(&reply, SAM_T_PUBKEY, &der, &len) == SAM_OK) {
        const unsigned char *p = der;
        *out = d2i_PUBKEY(NULL, &p, (long)len);
    }
    sam_rbuf_free(&rb);
    return rc;
}

static int cmd_audit_verify(admin_ctx_t *x, int argc, char **argv)
{
    EVP_PKEY *pub = NULL;
    int rc;

    if (argc == 2 && strcmp(argv[0], "--key") == 0) {
        if (load_pem_pub(argv[1], &pub) != 0)
            return 1;
    } else if (argc != 0) {
        usage(stderr);
        return 2;
    } else {
        (void)sam_audit_pub(x, "verify", &pub); /* no key: signed heads are reported as unverifiable */
    }
    rc = srv_audit_verify(x->m->stor, pub, stdout);
    EVP_PKEY_free(pub);
    return rc;
}

/* audit export-key FILE: csc-sam answers the public key (AUDIT_PUBKEY); csc-admin writes FILE (new). */
static int cmd_audit_export(admin_ctx_t *x, const char *file)
{
    EVP_PKEY *pk = NULL;
    if (sam_audit_pub(x, "export-key", &pk) != 0)
        return 1;
    if (pk == NULL) {
        fprintf(stderr, _("csc-admin: no audit key in the HSM: run csc-admin audit key-init\n"));
        return 1;
    }
    FILE *f = fopen(file, "wx");
    int ok = f != NULL && PEM_write_PUBKEY(f, pk) == 1;
    if (f == NULL)
        fprintf(stderr, _("csc-admin: cannot create %s: %s\n"), file, strerror(errno));
    if (f != NULL && (fclose(f) != 0 || !ok)) {
        fprintf(stderr, _("csc-admin: cannot write %s\n"), file);
        ok = 0;
    }
    EVP_PKEY_free(pk);
    if (ok)
        printf(_("audit public key written to %s\n"), file);
    return ok ? 0 : 1;
}

/* audit key-init (AUDIT_KEY) | init (AUDIT_KEY, without a session while no operator exists): the audit key. */
static int sam_audit_key(admin_ctx_t *x, uint32_t *created, uint32_t *sessions)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    char token[ADM_OP_TOKEN_LEN + 8];
    sam_begin(&b, SAM_OP_AUDIT_KEY);
    if (session_token(token, sizeof(token)) == 0 && token[0] != '\0')
        sam_put_session(x, &b);
    OPENSSL_cleanse(token, sizeof(token));
    int rc = sam_run(x, &b, &rb, &reply);
    if (rc == 0 && (sam_get_u32(&reply, SAM_T_CREATED, created) != SAM_OK ||
                    sam_get_u32(&reply, SAM_T_SESSIONS, sessions) != SAM_OK))
        rc = 1;
    sam_rbuf_free(&rb);
    return rc;
}

/* audit sign-head: csc-sam signs the head now (AUDIT_HEAD). */
static int cmd_audit_sign_head(admin_ctx_t *x)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    uint64_t seq = 0;
    sam_begin(&b, SAM_OP_AUDIT_HEAD);
    sam_put_session(x, &b);
    int rc = sam_run(x, &b, &rb, &reply);
    if (rc == 0 && sam_get_u64(&reply, SAM_T_SEQ, &seq) == SAM_OK)
        printf(_("audit head signed at seq %llu\n"), (unsigned long long)seq);
    else if (rc == 0)
        printf(_("nothing to sign (empty log, or signed meanwhile)\n"));
    sam_rbuf_free(&rb);
    return rc;
}

/* ---- audit report / audit verify-report ---------------------------------------------------------------------- */

#define REPORT_SIG_PREFIX "{\"signed_text\":\""
#define REPORT_SIG_MIDDLE "\",\"signature\":\""
#define REPORT_TEXT_PREFIX "csc-audit-report v1 sha256="
#define REPORT_LINE_PREFIX "{\"report\":\"csc-audit-report\",\"version\":1,"

/* Whether sig (DER) is the audit key pub's ECDSA signature over SHA-256(text). */
static int report_sig_ok(EVP_PKEY *pub, const char *text, const uint8_t *sig, size_t sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)text, strlen(text)) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

/* csc-sam signs a 32-byte digest with the audit key in a text of its own naming it (AUDIT_REPORT, BACKUP_SIGN: each
 * audited there): the text into text, the signature into sig (*sig_len: its room, then its length). 0: done; -1:
 * refused or csc-sam not reachable (said why); 1: the answer lacks either or the signature does not fit. */
static int sam_sign_digest(admin_ctx_t *x, unsigned op, const uint8_t digest[32], char *text, size_t text_sz,
                           uint8_t *sig, size_t *sig_len)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    const uint8_t *s = NULL;
    size_t n = 0;
    int rc;

    sam_begin(&b, op);
    sam_put_bytes(&b, SAM_T_DIGEST, digest, 32);
    sam_put_session(x, &b);
    if (sam_run(x, &b, &rb, &reply) != 0)
        rc = -1;
    else if (sam_get_bytes(&reply, SAM_T_SIGNATURE, &s, &n) != SAM_OK || n > *sig_len ||
             sam_get_text(&reply, SAM_T_SIGNED_TEXT, text, text_sz) != SAM_OK)
        rc = 1;
    else {
        memcpy(sig, s, n);
        *sig_len = n;
        rc = 0;
    }
    sam_rbuf_free(&rb);
    return rc;
}

/* audit report --from DATE --to DATE [--out FILE] [auditor]: the report (srv_audit_report: one line of JSON), then its
 * signature: csc-sam signs a text naming the report's SHA-256 with the audit key (AUDIT_REPORT, audited there), as a
 * second line. A file of two lines that audit verify-report checks, and anyone with the exported key and openssl. */
static int cmd_audit_report(admin_ctx_t *x, int argc, char **argv)
{
    const char *from = NULL, *to = NULL, *file = NULL;
    srv_report_range_t range = {0, 0, x->a->operator_name};
    EVP_PKEY *pub = NULL;
    char *report = NULL, text[SAM_SIGNED_TEXT_MAX + 1] = "";
    size_t len = 0;
    uint8_t digest[32];
    int rc = 1;

    for (int i = 0; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--from") == 0)
            from = argv[i + 1];
        else if (strcmp(argv[i], "--to") == 0)
            to = argv[i + 1];
        else if (strcmp(argv[i], "--out") == 0)
            file = argv[i + 1];
        else
            from = to = NULL;
    }
    if (argc % 2 != 0 || from == NULL || to == NULL) {
        fprintf(stderr, _("csc-admin: audit report: usage: audit report --from TIME --to TIME [--out FILE] (TIME: "
                "ISO-8601 UTC 2026-11-25T10:00:00Z or unix seconds, both inclusive)\n"));
        return 2;
    }
    if (adm_audit_parse_time(from, &range.from_ms) != 0 || adm_audit_parse_time(to, &range.to_ms) != 0) {
        fprintf(stderr, _("csc-admin: audit report: %s: not an ISO-8601 UTC time (2026-11-25T10:00:00Z) or unix "
                "seconds\n"), adm_audit_parse_time(from, &range.from_ms) != 0 ? from : to);
        return 2;
    }
    range.to_ms += 999; /* the whole second named is included */
    if (range.from_ms > range.to_ms) {
        fprintf(stderr, _("csc-admin: audit report: --from is after --to\n"));
        return 2;
    }
    if (sam_audit_pub(x, "verify", &pub) != 0)
        return 1;
    if (pub == NULL) {
        fprintf(stderr, _("csc-admin: audit report: no audit key in the HSM (csc-admin audit key-init): a report is "
                "signed with it\n"));
        return 1;
    }
    if (srv_audit_report(x->m->stor, pub, &range, &report, &len) != 0)
        goto out;
    EVP_Digest(report, len, digest, NULL, EVP_sha256(), NULL);

    uint8_t sig[SAM_SIG_MAX];
    size_t sig_len = sizeof(sig);
    int signed_rc = sam_sign_digest(x, SAM_OP_AUDIT_REPORT, digest, text, sizeof(text), sig, &sig_len);
    if (signed_rc < 0)
        goto out;
    char b64[4 * ((SAM_SIG_MAX + 2) / 3) + 1], hex[65];
    pki_hex(digest, 32, hex);
    if (signed_rc != 0 || strncmp(text, REPORT_TEXT_PREFIX, strlen(REPORT_TEXT_PREFIX)) != 0 ||
        strncmp(text + strlen(REPORT_TEXT_PREFIX), hex, 64) != 0 || strchr(text, '"') != NULL ||
        !report_sig_ok(pub, text, sig, sig_len)) {
        fprintf(stderr, _("csc-admin: audit report: csc-sam's signature does not verify with the audit key\n"));
        goto out;
    }
    oauth_b64_encode(sig, sig_len, b64, OAUTH_B64_STD);
    FILE *f = file != NULL ? fopen(file, "wx") : stdout;
    if (f == NULL) {
        fprintf(stderr, _("csc-admin: audit report: cannot create %s: %s%s\n"), file, strerror(errno),
                errno == EEXIST ? _(" (a report never replaces a file)") : "");
        goto out;
    }
    fwrite(report, 1, len, f);
    fprintf(f, "\n" REPORT_SIG_PREFIX "%s" REPORT_SIG_MIDDLE "%s\"}\n", text, b64);
    if ((f != stdout && fclose(f) != 0) || (f == stdout && fflush(f) != 0)) {
        fprintf(stderr, _("csc-admin: audit report: writing %s failed\n"), file != NULL ? file : _("the report"));
        goto out;
    }
    if (file != NULL)
        printf(_("audit report written to %s (sha256 %s), signed by the audit key\n"), file, hex);
    rc = 0;
out:
    free(report);
    EVP_PKEY_free(pub);
    return rc;
}

/* audit verify-report FILE [--key PEM] [auditor]: the file's two lines; the second's text must name the first's
 * SHA-256 and carry the audit key's signature over it. */
static int cmd_audit_verify_report(admin_ctx_t *x, int argc, char **argv)
{
    EVP_PKEY *pub = NULL;
    char *buf = NULL, hex[65];
    size_t cap = 0;
    uint8_t digest[32], sig[SAM_SIG_MAX];
    int rc = 1;

    if (argc != 1 && !(argc == 3 && strcmp(argv[1], "--key") == 0)) {
        fprintf(stderr, _("csc-admin: audit verify-report: usage: audit verify-report FILE [--key PEM]\n"));
        return 2;
    }
    if (argc == 3 ? load_pem_pub(argv[2], &pub) != 0 : sam_audit_pub(x, "verify", &pub) != 0)
        return 1;
    if (pub == NULL) {
        fprintf(stderr, _("csc-admin: audit verify-report: no audit key in the HSM: give its PEM with --key\n"));
        return 1;
    }
    FILE *f = fopen(argv[0], "r");
    ssize_t n1 = -1, n2 = -1;
    char *line2 = NULL;
    size_t cap2 = 0;
    if (f == NULL) {
        fprintf(stderr, _("csc-admin: audit verify-report: cannot open %s: %s\n"), argv[0], strerror(errno));
        goto out;
    }
    n1 = getline(&buf, &cap, f);
    n2 = getline(&line2, &cap2, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    const char *why = NULL;
    if (n1 <= 1 || n2 <= 1 || extra || buf[n1 - 1] != '\n' || line2[n2 - 1] != '\n')
        why = _("not two lines (the report, its signature)");
    else if (strncmp(buf, REPORT_LINE_PREFIX, strlen(REPORT_LINE_PREFIX)) != 0)
        why = _("the first line is not a report of csc-admin audit report");
    char *text = NULL, *b64 = NULL;
    if (why == NULL) {
        line2[--n2] = '\0';
        text = line2 + strlen(REPORT_SIG_PREFIX);
        b64 = strstr(line2, REPORT_SIG_MIDDLE);
        if (strncmp(line2, REPORT_SIG_PREFIX, strlen(REPORT_SIG_PREFIX)) != 0 || b64 == NULL || n2 < 3 ||
            strcmp(line2 + n2 - 2, "\"}") != 0)
            why = _("the second line is not a signature of csc-admin audit report");
    }
    long sig_len = -1;
    if (why == NULL) {
        *b64 = '\0';
        b64 += strlen(REPORT_SIG_MIDDLE);
        line2[n2 - 2] = '\0';
        sig_len = oauth_b64_decode(b64, strlen(b64), sig, sizeof(sig), OAUTH_B64_STD);
        EVP_Digest(buf, (size_t)n1 - 1, digest, NULL, EVP_sha256(), NULL);
        pki_hex(digest, 32, hex);
        if (sig_len <= 0 || strncmp(text, REPORT_TEXT_PREFIX, strlen(REPORT_TEXT_PREFIX)) != 0)
            why = _("the second line is not a signature of csc-admin audit report");
        else if (strncmp(text + strlen(REPORT_TEXT_PREFIX), hex, 64) != 0 ||
                 text[strlen(REPORT_TEXT_PREFIX) + 64] != ' ')
            why = _("the report was altered: its SHA-256 is not the one signed");
        else if (!report_sig_ok(pub, text, sig, (size_t)sig_len))
            why = _("the signature is not the audit key's (forged or altered)");
    }
    if (why != NULL) {
        fprintf(stderr, "csc-admin: audit verify-report: %s: %s\n", argv[0], why);
        printf(_("report FAILED: %s\n"), why);
    } else {
        printf(_("report OK: sha256 %s, signed by the audit key: %s\n"), hex, text);
        rc = 0;
    }
    free(line2);
out:
    free(buf);
    EVP_PKEY_free(pub);
    return rc;
}

/* db backup FILE [auditor]: csc-sam signs the audit head first (AUDIT_HEAD: the copy then carries a signed head at
 * most the records written meanwhile behind its tip), then the copy (srv_admin_db_backup: one read snapshot while the
 * services run), whose SHA-256 csc-sam signs with the audit key (BACKUP_SIGN), then the backup's own audit record,
 * naming the file's SHA-256 (in the live log: the file cannot hold the record of itself). The auditor's: it changes nothing, holds no key (the keys are in the HSM, TOTP secrets
 * sealed by csc-sam, passwords and PINs as scrypt hashes), and what makes it trustworthy is the signed audit head,
 * the auditor's charge (docs/operations.md "Backups of the database"). */
/* srv_db_sign_fn of db backup: csc-sam's BACKUP_SIGN (the audit key over its own text naming the SHA-256; audited
 * there, action=db.backup.sign). */
static int backup_sign(const uint8_t digest[32], char *text, size_t text_sz, uint8_t *sig, size_t *sig_len, void *arg)
{
    int rc = sam_sign_digest(arg, SAM_OP_BACKUP_SIGN, digest, text, text_sz, sig, sig_len);

    if (rc > 0)
        fprintf(stderr, _("csc-admin: db backup: csc-sam's answer to BACKUP_SIGN is not usable\n"));
    if (rc != 0)
        fprintf(stderr, _("csc-admin: db backup: the backup could not be signed: no backup written\n"));
    return rc == 0 ? 0 : -1;
}

static int cmd_db_backup(admin_ctx_t *x, int argc, char **argv)
{
    srv_db_backup_t r;
    char detail[320], hex[65];
    uint64_t seq = 0;

    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, _("csc-admin: db backup: usage: db backup FILE\n"));
        return 2;
    }
    if (strcmp(x->cfg->storage.backend, "lmdb") == 0) {
        sam_builder_t b;
        sam_rbuf_t rb = {0};
        sam_msg_t reply;
        sam_begin(&b, SAM_OP_AUDIT_HEAD);
        sam_put_session(x, &b);
        int rc = sam_run(x, &b, &rb, &reply);
        if (rc == 0 && sam_get_u64(&reply, SAM_T_SEQ, &seq) != SAM_OK)
            seq = 0; /* nothing signed: the head was signed already, or it moved on under load while csc-sam signed
                      * (sam_audit_sign_head): the copy then carries the newest head signed before */
        sam_rbuf_free(&rb);
        if (rc != 0) {
            fprintf(stderr, _("csc-admin: db backup: the audit head could not be signed: no backup written\n"));
            return 1;
        }
    }
    int rc = srv_admin_db_backup(x->cfg, x->m->stor, argv[0], backup_sign, x, &r);
    if (rc != 0)
        return rc;
    pki_hex(r.sha256, 32, hex);
    snprintf(detail, sizeof(detail),
             "operator=%s action=db.backup file=%s sha256=%s audit_seq=%llu head_seq=%llu bytes=%llu",
             x->a->operator_name, argv[0], hex, (unsigned long long)r.audit_seq, (unsigned long long)r.head_seq,
             (unsigned long long)r.data_len);
    if (adm_op_audit(x->a, STOR_RES_OK, x->a->operator_name, detail) != 0)
        fprintf(stderr, _("csc-admin: db backup: %s is written, but its audit record failed\n"), argv[0]);
    if (seq == 0)
        printf(_("the audit head was not signed now (signed already, or moving under load): the backup carries the "
               "newest signed head\n"));
    printf(_("backup written to %s: audit head seq %llu, signed head seq %llu, %llu bytes of data, sha256 %s\n"),
           argv[0], (unsigned long long)r.audit_seq, (unsigned long long)r.head_seq,
           (unsigned long long)r.data_len, hex);
    return 0;
}

static int cmd_audit(admin_ctx_t *x, int argc, char **argv)
{
    adm_audit_filter_t f = {0};
    stor_env_t *stor = x->m->stor;
    int64_t ms;
    int json = 0;

    if (argc >= 1 && strcmp(argv[0], "verify") == 0)
        return cmd_audit_verify(x, argc - 1, argv + 1);
    if (argc == 1 && strcmp(argv[0], "key-init") == 0) {
        uint32_t created = 0, sessions = 0;
        if (sam_audit_key(x, &created, &sessions) != 0)
            return 1;
        printf(created ? _("audit key created in the HSM (EC P-256)\n") : _("audit key present in the HSM\n"));
        return 0;
    }
    if (argc == 1 && strcmp(argv[0], "sign-head") == 0)
        return cmd_audit_sign_head(x);
    if (argc == 2 && strcmp(argv[0], "export-key") == 0)
        return cmd_audit_export(x, argv[1]);
    if (argc == 1 && strcmp(argv[0], "heads") == 0)
        return srv_audit_heads(stor, stdout);
    if (argc >= 1 && strcmp(argv[0], "report") == 0)
        return cmd_audit_report(x, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "verify-report") == 0)
        return cmd_audit_verify_report(x, argc - 1, argv + 1);
    if (argc < 1 || strcmp(argv[0], "query") != 0)
        goto bad;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--json") == 0) {
            json = 1;
            continue;
        }
        if (v == NULL)
            goto bad;
        i++;
        if (strcmp(o, "--user") == 0) {
            f.user = v;
        } else if (strcmp(o, "--credential") == 0) {
            f.cred = v;
        } else if (strcmp(o, "--event") == 0) {
            if (adm_audit_parse_event(v, &f.event) != 0) {
                fprintf(stderr, _("csc-admin: unknown event %s\n"), v);
                return 2;
            }
        } else if (strcmp(o, "--since") == 0 || strcmp(o, "--until") == 0) {
            if (adm_audit_parse_time(v, &ms) != 0) {
                fprintf(stderr, _("csc-admin: %s: not an ISO-8601 UTC time (2026-11-25T10:00:00Z) or unix seconds\n"),
                        v);
                return 2;
            }
            if (o[2] == 's') {
                f.has_since = 1;
                f.since_ms = ms;
            } else {
                f.has_until = 1;
                f.until_ms = ms + 999; /* the whole second named is included */
            }
        } else {
            goto bad;
        }
    }
    return srv_audit_query(stor, &f, json != 0, stdout);
bad:
    usage(stderr);
    return 2;
}

/* tsa init [--key K] [--cn NAME]: csc-sam makes the TSA named by its tsa_credential (TSA_KEY). */
static int cmd_tsa_init(admin_ctx_t *x, int argc, char **argv)
{
    hsm_keyspec_t key = {.type = HSM_KEY_EC, .bits = 256, .curve_nid = NID_X9_62_prime256v1};
    const char *cn = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            if (parse_key(argv[++i], &key) != 0) {
                fprintf(stderr, _("csc-admin: unknown key type %s\n"), argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--cn") == 0 && i + 1 < argc) {
            cn = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (x->cfg->tsa_credential[0] == '\0') {
        fprintf(stderr, _("csc-admin: set tsa_credential (and tsa_policy) in the configuration first\n"));
        return 1;
    }
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    char id[SAM_NAME_MAX + 1];
    sam_begin(&b, SAM_OP_TSA_KEY);
    sam_put_session(x, &b);
    sam_put_key(&b, &key);
    if (cn != NULL)
        sam_put_str(&b, SAM_T_SUBJECT_CN, cn);
    int rc = sam_run(x, &b, &rb, &reply);
    if (rc == 0 && sam_get_text(&reply, SAM_T_CRED, id, sizeof(id)) != SAM_OK)
        rc = 1;
    sam_rbuf_free(&rb);
    if (rc == 0)
        printf(_("time-stamping unit %s created (key in the HSM, certificate from the CA)\n"), id);
    return rc;
}

/* Read one line from f into buf without its newline; with echo off if f is a terminal. */
static int read_line(FILE *f, const char *prompt, int hide, char *buf, size_t sz)
{
    struct termios old, quiet;
    int tty = isatty(fileno(f)), ok;

    if (tty) {
        fprintf(stderr, "%s: ", prompt);
        if (hide && tcgetattr(fileno(f), &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(fileno(f), TCSAFLUSH, &quiet);
        } else {
            hide = 0;
        }
    }
    ok = fgets(buf, (int)sz, f) != NULL;
    if (tty && hide) {
        tcsetattr(fileno(f), TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!ok)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* The session token: $CSC_ADMIN_SESSION, else the file named by $CSC_ADMIN_SESSION_FILE (mode 0600). */
static int session_token(char *buf, size_t sz)
{
    const char *v = getenv("CSC_ADMIN_SESSION"), *file = getenv("CSC_ADMIN_SESSION_FILE");
    struct stat st;

    buf[0] = '\0';
    if (v != NULL && v[0] != '\0') {
        snprintf(buf, sz, "%s", v);
        return 0;
    }
    if (file == NULL || file[0] == '\0')
        return -1;
    FILE *f = fopen(file, "r");
    if (f == NULL)
        return -1;
    if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077) != 0) {
        fprintf(stderr, _("csc-admin: %s is readable by others: refused (chmod 600)\n"), file);
        fclose(f);
        return -1;
    }
    int rc = fgets(buf, (int)sz, f) != NULL ? 0 : -1;
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return rc;
}

/* An operator's own TOTP secret (operator bootstrap, operator add), its otpauth:// URI and the URI as a QR code for
 * the authenticator app. (A user's is shown on /enroll only, never here.) */
static void print_enrollment(const char *b32, const char *uri)
{
    printf("totp_secret %s\notpauth %s\n", b32, uri);
    srv_qr_print(stdout, uri);
}

/* The enrollment code csc-sam issued (ENROLL_ISSUE, OPERATOR_NEW): printed once for a letter, else where it was sent;
 * with its expiry. 0, or 1 (said why). */
static int print_issued(const sam_msg_t *reply, const char *name, int letter)
{
    uint64_t ms = 0;
    char code[SAM_ENROLL_CODE_MAX + 1] = "", to[SAM_CONTACT_MAX + 1] = "", exp[32] = "";
    int rc = 0;
    (void)sam_get_u64(reply, SAM_T_TIME_MS, &ms);
    time_t t = (time_t)(ms / 1000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (letter && sam_get_text(reply, SAM_T_ENROLL_CODE, code, sizeof(code)) == SAM_OK)
        printf("enrollment_code %s\nexpires %s\n", code, exp);
    else if (!letter && sam_get_text(reply, SAM_T_CONTACT, to, sizeof(to)) == SAM_OK)
        printf(_("enrollment %s sent to %s, expires %s\n"), name, to, exp);
    else {
        fprintf(stderr, _("csc-admin: csc-sam's reply carries no enrollment\n"));
        rc = 1;
    }
    OPENSSL_cleanse(code, sizeof(code));
    return rc;
}

/* operator bootstrap NAME: csc-sam makes the first operator (OPERATOR_NEW: the password's verifier, the TOTP secret
 * sealed under its factor key) and answers the secret once, shown here, on the installer's own terminal. */
static int cmd_operator_new(admin_ctx_t *x, int argc, char **argv)
{
    const char *pwfile = NULL;
    char pw[256], uri[512], b32[128];
    if (argc < 1)
        goto bad;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc)
            pwfile = argv[++i];
        else
            goto bad;
    }
    if (read_secret(pwfile, _("password"), pw, sizeof(pw)) != 0)
        return 1;
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    sam_begin(&b, SAM_OP_OPERATOR_NEW);
    sam_put_str(&b, SAM_T_USER, argv[0]);
    sam_put_str(&b, SAM_T_PASSWORD, pw);
    OPENSSL_cleanse(pw, sizeof(pw));
    int rc = sam_run(x, &b, &rb, &reply);
    const uint8_t *secret = NULL;
    size_t n = 0;
    uint32_t got = 0;
    if (rc == 0 && (sam_get_bytes(&reply, SAM_T_TOTP_SECRET, &secret, &n) != SAM_OK ||
                    sam_get_u32(&reply, SAM_T_ROLES, &got) != SAM_OK ||
                    oauth_base32_encode(secret, n, b32, sizeof(b32)) != 0 ||
                    oauth_totp_uri(x->cfg->totp_issuer, argv[0], secret, n, uri, sizeof(uri)) != 0)) {
        fprintf(stderr, _("csc-admin: csc-sam's reply carries no usable TOTP secret\n"));
        rc = 1;
    }
    if (rc == 0) {
        printf(_("operator %s added%s\n"), argv[0],
               got != (uint32_t)STOR_ROLES_ALL
                   ? _(" with the role user-admin (production: docs/configuration.md \"two_person\" adds the others)")
                   : _(" with every role"));
        print_enrollment(b32, uri);
    }
    OPENSSL_cleanse(b32, sizeof(b32));
    OPENSSL_cleanse(uri, sizeof(uri));
    sam_rbuf_free(&rb);
    return rc;
bad:
    usage(stderr);
    return 2;
}

static int cmd_op_bootstrap(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_operator_new(x, argc, argv);
}

/* operator add NAME --roles R (--contact C | --letter): no factor of the new operator passes here. csc-sam stores the
 * operator enrolling with a one-time code (OPERATOR_NEW), sent to C by otp_sender or, with no sender, printed once
 * for a sealed letter; the new operator enrolls on their own terminal (operator enroll). */
static int cmd_op_add(admin_ctx_t *x, int argc, char **argv)
{
    const char *contact = NULL;
    uint32_t roles = 0;
    int letter = 0;
    if (argc < 1)
        goto bad;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--letter") == 0)
            letter = 1;
        else if (strcmp(argv[i], "--contact") == 0 && i + 1 < argc)
            contact = argv[++i];
        else if (strcmp(argv[i], "--roles") == 0 && i + 1 < argc) {
            if (adm_op_roles_parse(argv[++i], &roles) != 0) {
                fprintf(stderr, _("csc-admin: --roles is a list of user-admin, key-admin, auditor (or all)\n"));
                return 2;
            }
        } else
            goto bad;
    }
    if (roles == 0) {
        fprintf(stderr, _("csc-admin: --roles is required\n"));
        return 2;
    }
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    sam_begin(&b, SAM_OP_OPERATOR_NEW);
    sam_put_str(&b, SAM_T_USER, argv[0]);
    sam_put_session(x, &b);
    if (contact != NULL)
        sam_put_str(&b, SAM_T_CONTACT, contact);
    if (letter)
        sam_put_u32(&b, SAM_T_LETTER, 1);
    srv_opsock_put_origin(&b);
    sam_put_u32(&b, SAM_T_ROLES, roles);
    int rc = sam_run(x, &b, &rb, &reply);
    if (rc == 0) {
        printf(_("operator %s added: enrolling (csc-admin operator enroll %s, on their own terminal)\n"), argv[0], argv[0]);
        rc = print_issued(&reply, argv[0], letter);
    }
    sam_rbuf_free(&rb);
    return rc;
bad:
    usage(stderr);
    return 2;
}

/* operator enroll NAME, on the new operator's own terminal: the enrollment code, then (OPERATOR_ENROLL_BEGIN) the TOTP
 * secret csc-sam made is shown for the authenticator app, then the password twice and a first one-time code
 * (OPERATOR_ENROLL_FINISH). Without a terminal the lines come from standard input in that order (the code is read
 * after the secret was printed). */
static int cmd_op_enroll(admin_ctx_t *x, int argc, char **argv)
{
    char code[SAM_ENROLL_CODE_MAX + 8], pw[256], pw2[256], otp[32], ticket[SAM_TOKEN_MAX + 1], uri[512], b32[128];
    int rc = 1;
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    if (read_line(stdin, _("enrollment code"), 0, code, sizeof(code)) != 0) {
        fprintf(stderr, _("csc-admin: operator enroll needs the enrollment code\n"));
        return 1;
    }
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    sam_begin(&b, SAM_OP_OPERATOR_ENROLL_BEGIN);
    sam_put_str(&b, SAM_T_USER, argv[0]);
    sam_put_str(&b, SAM_T_ENROLL_CODE, code);
    OPENSSL_cleanse(code, sizeof(code));
    const uint8_t *secret = NULL;
    size_t n = 0;
    ticket[0] = '\0';
    if (sam_run(x, &b, &rb, &reply) != 0)
        goto out;
    if (sam_get_text(&reply, SAM_T_ENROLL_TICKET, ticket, sizeof(ticket)) != SAM_OK ||
        sam_get_bytes(&reply, SAM_T_TOTP_SECRET, &secret, &n) != SAM_OK ||
        oauth_base32_encode(secret, n, b32, sizeof(b32)) != 0 ||
        oauth_totp_uri(x->cfg->totp_issuer, argv[0], secret, n, uri, sizeof(uri)) != 0) {
        fprintf(stderr, _("csc-admin: csc-sam's reply carries no usable enrollment\n"));
        goto out;
    }
    sam_rbuf_free(&rb);
    print_enrollment(b32, uri);
    OPENSSL_cleanse(b32, sizeof(b32));
    OPENSSL_cleanse(uri, sizeof(uri));
    fflush(stdout);
    for (int tries = isatty(fileno(stdin)) ? 3 : 1;; tries--) { /* at a terminal, a typo may be typed again */
        if (read_line(stdin, _("new password"), 1, pw, sizeof(pw)) != 0 ||
            read_line(stdin, _("the password again"), 1, pw2, sizeof(pw2)) != 0) {
            fprintf(stderr, _("csc-admin: operator enroll needs the password twice and a one-time code\n"));
            goto out;
        }
        if (strcmp(pw, pw2) == 0)
            break;
        fprintf(stderr, _("csc-admin: the two passwords differ\n"));
        if (tries <= 1)
            goto out;
    }
    if (read_line(stdin, _("one-time code"), 1, otp, sizeof(otp)) != 0) {
        fprintf(stderr, _("csc-admin: operator enroll needs the password twice and a one-time code\n"));
        goto out;
    }
    sam_begin(&b, SAM_OP_OPERATOR_ENROLL_FINISH);
    sam_put_str(&b, SAM_T_USER, argv[0]);
    sam_put_str(&b, SAM_T_OTP, otp);
    sam_put_str(&b, SAM_T_ENROLL_TICKET, ticket);
    sam_put_str(&b, SAM_T_PASSWORD, pw);
    if (sam_run(x, &b, &rb, &reply) != 0)
        goto out;
    printf(_("operator %s enrolled: csc-admin login %s\n"), argv[0], argv[0]);
    rc = 0;
out:
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(pw2, sizeof(pw2));
    OPENSSL_cleanse(otp, sizeof(otp));
    OPENSSL_cleanse(ticket, sizeof(ticket));
    OPENSSL_cleanse(b32, sizeof(b32));
    OPENSSL_cleanse(uri, sizeof(uri));
    sam_rbuf_free(&rb);
    return rc;
}

/* operator remove NAME (argc 1) and operator roles NAME ROLES (argc 2) */
static int cmd_op_change(admin_ctx_t *x, int argc, char **argv, int remove)
{
    char err[256];
    uint32_t roles = 0;
    int rc;
    if (remove && argc == 1)
        rc = adm_op_remove(x->a, argv[0], err, sizeof(err));
    else if (!remove && argc == 2 && adm_op_roles_parse(argv[1], &roles) == 0)
        rc = adm_op_set_roles(x->a, argv[0], roles, err, sizeof(err));
    else {
        usage(stderr);
        return 2;
    }
    if (rc != ADM_OK) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    printf(argc == 1 ? _("operator %s removed\n") : _("operator %s roles changed\n"), argv[0]);
    return 0;
}

static int cmd_op_remove(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_op_change(x, argc, argv, 1);
}

static int cmd_op_roles(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_op_change(x, argc, argv, 0);
}

static int cmd_op_list(admin_ctx_t *x, int argc, char **argv)
{
    (void)argv;
    if (argc != 0) {
        usage(stderr);
        return 2;
    }
    return adm_op_list(x->a, stdout) == 0 ? 0 : 1;
}

/* login NAME [--session-file FILE]: password and one-time code from the terminal (no echo) or, when standard
 * input is not a terminal, its first two lines. Prints the session token, or writes it to FILE (mode 0600). */
static int cmd_login(admin_ctx_t *x, int argc, char **argv)
{
    const char *file = NULL;
    char pw[256], otp[32], token[ADM_OP_TOKEN_LEN + 1];
    if (argc == 3 && strcmp(argv[1], "--session-file") == 0)
        file = argv[2];
    else if (argc != 1) {
        usage(stderr);
        return 2;
    }
    if (read_line(stdin, _("password"), 1, pw, sizeof(pw)) != 0 || read_line(stdin, _("one-time code"), 1, otp, sizeof(otp)) != 0) {
        OPENSSL_cleanse(pw, sizeof(pw));
        fprintf(stderr, _("csc-admin: login needs the password and the one-time code (two lines on standard input)\n"));
        return 1;
    }
    /* csc-sam checks the factors (OPERATOR_LOGIN): csc-admin reads no operator's verifier or TOTP secret. */
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    sam_begin(&b, SAM_OP_OPERATOR_LOGIN);
    sam_put_str(&b, SAM_T_USER, argv[0]);
    sam_put_str(&b, SAM_T_OTP, otp);
    sam_put_str(&b, SAM_T_PASSWORD, pw);
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(otp, sizeof(otp));
    int rc = sam_run(x, &b, &rb, &reply);
    if (rc == 0 && sam_get_text(&reply, SAM_T_SESSION, token, sizeof(token)) != SAM_OK) {
        fprintf(stderr, _("csc-admin: csc-sam's reply carries no session\n"));
        rc = 1;
    }
    sam_rbuf_free(&rb);
    if (rc != 0)
        return 1;
    if (file != NULL) {
        int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (f == NULL || fchmod(fd, 0600) != 0 || fprintf(f, "%s\n", token) < 0 || fclose(f) != 0) {
            fprintf(stderr, _("csc-admin: cannot write %s: %s\n"), file, strerror(errno));
            OPENSSL_cleanse(token, sizeof(token));
            return 1;
        }
        fprintf(stderr, _("csc-admin: logged in; session in %s (CSC_ADMIN_SESSION_FILE)\n"), file);
    } else {
        printf("%s\n", token);
    }
    OPENSSL_cleanse(token, sizeof(token));
    return 0;
}

static int cmd_logout(admin_ctx_t *x, int argc, char **argv)
{
    char token[ADM_OP_TOKEN_LEN + 8], err[256];
    (void)argv;
    if (argc != 0) {
        usage(stderr);
        return 2;
    }
    if (session_token(token, sizeof(token)) != 0) {
        fprintf(stderr, _("csc-admin: no session to end (CSC_ADMIN_SESSION or CSC_ADMIN_SESSION_FILE)\n"));
        return 1;
    }
    int rc = adm_op_logout(x->a, token, err, sizeof(err));
    OPENSSL_cleanse(token, sizeof(token));
    if (rc != ADM_OK) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    printf(_("logged out\n"));
    return 0;
}

/* init: the database (opened, so made, by csc-admin) and, through csc-sam, the audit key (AUDIT_KEY). */
static int cmd_init(admin_ctx_t *x, int argc, char **argv)
{
    uint32_t created = 0, sessions = 0;
    (void)argv;
    if (argc != 0) {
        usage(stderr);
        return 2;
    }
    if (sam_audit_key(x, &created, &sessions) != 0)
        return 1;
    printf(_("database %s ready; token \"%s\" reachable (%u sessions)\n"), x->cfg->storage.location, x->cfg->pkcs11_token,
           sessions);
    return 0;
}

/* user add NAME --contact C ... | user recover NAME ...: csc-sam registers the user or clears the factors, makes the
 * enrollment code, keeps its hash and sends it (ENROLL_ISSUE); csc-admin sees the code only for --letter, when no
 * sender is configured. */
static int cmd_enroll_issue(admin_ctx_t *x, uint32_t kind, int argc, char **argv)
{
    const char *contact = NULL, *evidence = NULL, *applicant = NULL, *mandate = NULL, *pins[SAM_ENROLL_CREDS_MAX];
    int letter = 0, n_pins = 0;
    if (argc < 1)
        goto bad;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--letter") == 0) {
            letter = 1;
            continue;
        }
        if (v == NULL)
            goto bad;
        i++;
        if (strcmp(o, "--contact") == 0)
            contact = v;
        else if (strcmp(o, "--evidence") == 0 && kind == SAM_ENROLL_NEW)
            evidence = v;
        else if (strcmp(o, "--applicant") == 0 && kind == SAM_ENROLL_NEW)
            applicant = v;
        else if (strcmp(o, "--mandate") == 0 && kind == SAM_ENROLL_NEW)
            mandate = v;
        else if (strcmp(o, "--pin") == 0 && kind == SAM_ENROLL_RECOVER && n_pins < SAM_ENROLL_CREDS_MAX)
            pins[n_pins++] = v;
        else
            goto bad;
    }
    /* Refused before anything is written: the code goes to the user or into a letter, never both ways. */
    if (x->cfg->otp_sender[0] == '\0' && !letter) {
        fprintf(stderr, _("csc-admin: no otp_sender is configured: --letter prints the code once for a sealed letter\n"));
        return 2;
    }
    if (x->cfg->otp_sender[0] != '\0' && letter) {
        fprintf(stderr, _("csc-admin: otp_sender is configured: the code is sent to the user, never shown (drop --letter)\n"));
        return 2;
    }
    if (kind == SAM_ENROLL_NEW && !letter && contact == NULL) {
        fprintf(stderr, _("csc-admin: --contact is required: the code is sent there\n"));
        return 2;
    }
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    sam_begin(&b, SAM_OP_ENROLL_ISSUE);
    for (int i = 0; i < n_pins; i++)
        sam_put_str(&b, SAM_T_CRED, pins[i]);
    sam_put_str(&b, SAM_T_USER, argv[0]);
    sam_put_session(x, &b);
    if (contact != NULL)
        sam_put_str(&b, SAM_T_CONTACT, contact);
    if (evidence != NULL)
        sam_put_str(&b, SAM_T_EVIDENCE, evidence);
    if (applicant != NULL)
        sam_put_str(&b, SAM_T_APPLICANT, applicant);
    if (mandate != NULL)
        sam_put_str(&b, SAM_T_MANDATE, mandate);
    if (letter)
        sam_put_u32(&b, SAM_T_LETTER, 1);
    sam_put_u32(&b, SAM_T_KIND, kind);
    int rc = sam_run(x, &b, &rb, &reply);
    if (rc == 0) {
        printf(kind == SAM_ENROLL_NEW ? _("user %s added: enrolling\n")
                                      : _("user %s: password and TOTP cleared, sessions revoked: enrolling again\n"),
               argv[0]);
        rc = print_issued(&reply, argv[0], letter);
    }
    sam_rbuf_free(&rb);
    return rc;
bad:
    usage(stderr);
    return 2;
}

/* user add is csc-sam's command (ENROLL_ISSUE checks the session and takes an approved request itself); csc-admin first
 * runs the production checks its own commands run (the demo CA), as csc-sam runs its own (SoftHSM). */
static int cmd_user_add(admin_ctx_t *x, int argc, char **argv)
{
    if (srv_production_checks(x->cfg) != 0)
        return 1;
    return cmd_enroll_issue(x, SAM_ENROLL_NEW, argc, argv);
}

static int cmd_user_recover(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_enroll_issue(x, SAM_ENROLL_RECOVER, argc, argv);
}

static int cmd_user_change_row(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_user_change(x->a, argc, argv);
}

static int cmd_user_status(admin_ctx_t *x, int argc, char **argv, uint32_t st)
{
    char err[256];
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    if (adm_user_suspend_resume(x->a, argv[0], st, err, sizeof(err)) != 0) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    printf(_("user %s %s\n"), argv[0], st == STOR_USER_SUSPENDED ? _("suspended") : _("resumed"));
    return 0;
}

static int cmd_user_suspend(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_user_status(x, argc, argv, STOR_USER_SUSPENDED);
}

static int cmd_user_resume(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_user_status(x, argc, argv, STOR_USER_ACTIVE);
}

/* user terminate NAME: csc-sam ends the user and destroys every key of theirs (USER_TERMINATE). */
static int cmd_user_terminate(admin_ctx_t *x, int argc, char **argv)
{
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    int rc = sam_named_op(x, SAM_OP_USER_TERMINATE, SAM_T_USER, argv[0]);
    if (rc == 0)
        printf(_("user %s terminated; keys destroyed\n"), argv[0]);
    return rc;
}
/* credential delegate ID --user U --evidence REF  |  credential delegate ID --user U --remove */
static int cmd_cred_delegate(admin_ctx_t *x, int argc, char **argv)
{
    const char *user = NULL, *evidence = NULL;
    int remove = 0;
    char err[512];
    if (argc < 1)
        goto bad;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--remove") == 0)
            remove = 1;
        else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
            user = argv[++i];
        else if (strcmp(argv[i], "--evidence") == 0 && i + 1 < argc)
            evidence = argv[++i];
        else
            goto bad;
    }
    if (user == NULL)
        goto bad;
    /* The delegate's own PIN, when the credential's expression names PIN, is the delegate's to set (/account). */
    int rc = adm_cred_delegate(x->a, argv[0], user, evidence, remove, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    printf(remove ? _("credential %s: %s is no longer a delegate\n") : _("credential %s: %s may sign as a delegate\n"),
           argv[0], user);
    return 0;
bad:
    usage(stderr);
    return 2;
}

static int cmd_cred_enable(admin_ctx_t *x, int argc, char **argv, int en)
{
    char err[256];
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    if (adm_cred_set_enabled(x->a, argv[0], en, err, sizeof(err)) != 0) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    printf(_("credential %s %s\n"), argv[0], en ? _("enabled") : _("disabled"));
    return 0;
}

static int cmd_cred_on(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_cred_enable(x, argc, argv, 1);
}

static int cmd_cred_off(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_cred_enable(x, argc, argv, 0);
}

/* credential destroy | revoke ID: csc-sam destroys the key (KEY_DESTROY; the reason names the command). */
static int cmd_cred_end(admin_ctx_t *x, int argc, char **argv, const char *reason)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    sam_begin(&b, SAM_OP_KEY_DESTROY);
    sam_put_str(&b, SAM_T_CRED, argv[0]);
    sam_put_token(&b);
    sam_put_str(&b, SAM_T_REASON, reason);
    sam_put_approval(x, &b);
    int rc = sam_run(x, &b, &rb, &reply);
    sam_rbuf_free(&rb);
    if (rc == 0)
        printf(_("credential %s: key destroyed; it can never sign again\n"), argv[0]);
    return rc;
}

static int cmd_cred_revoke(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_cred_end(x, argc, argv, ADM_DESTROY_REVOKED);
}

static int cmd_cred_destroy(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_cred_end(x, argc, argv, "operator request");
}

/* credential destroy-pending: csc-sam runs the jobs (DESTROY_PENDING) and answers the report's lines. */
static int cmd_cred_destroy_pending(admin_ctx_t *x, int argc, char **argv)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    char line[SAM_LINE_MAX + 1], reason[SAM_REASON_MAX + 1];
    (void)argv;
    if (argc != 0) {
        usage(stderr);
        return 2;
    }
    sam_begin(&b, SAM_OP_DESTROY_PENDING);
    sam_put_session(x, &b);
    int rc = sam_run(x, &b, &rb, &reply);
    if (rc == 0) {
        sam_iter_t it;
        const uint8_t *p;
        size_t len;
        sam_iter_init(&reply, SAM_T_LINE, &it);
        while (sam_iter_next(&it, &p, &len)) {
            memcpy(line, p, len); /* bounded by the table: len <= SAM_LINE_MAX */
            line[len] = '\0';
            printf("%s\n", line);
        }
        if (sam_get_text(&reply, SAM_T_REASON, reason, sizeof(reason)) == SAM_OK) {
            fprintf(stderr, "csc-admin: %s\n", reason);
            rc = 1;
        }
    }
    sam_rbuf_free(&rb);
    return rc;
}

/* credential renew ID (demo CA: new key and certificate now; RENEW) | credential renew ID --csr FILE ... (external
 * CA; CSR) */
static int cmd_cred_renew(admin_ctx_t *x, int argc, char **argv)
{
    if (argc > 1)
        return cmd_cred_cert(x, "renew", argc, argv);
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    int rc = sam_named_op(x, SAM_OP_RENEW, SAM_T_CRED, argv[0]);
    if (rc == 0)
        printf(_("credential %s renewed: new key and certificate, old key destroyed\n"), argv[0]);
    return rc;
}

static int cmd_client_add(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_client(x->m, "add", argc, argv, x->a);
}

static int cmd_client_remove(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_client(x->m, "remove", argc, argv, x->a);
}

static int cmd_client_list(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_client(x->m, "list", argc, argv, x->a);
}

static int cmd_list(admin_ctx_t *x, int argc, char **argv)
{
    (void)argv;
    if (argc != 0) {
        usage(stderr);
        return 2;
    }
    return adm_list(x->a, stdout) == 0 ? 0 : 1;
}

/* audit verify|query|key-init|sign-head|export-key|heads: argv[-1] is the second word */
static int cmd_audit_row(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_audit(x, argc + 1, argv - 1);
}

static int cmd_cred_import(admin_ctx_t *x, int argc, char **argv)
{
    return cmd_cred_cert(x, "import", argc, argv);
}

/* credential backup ID FILE: csc-sam wraps the key and answers the file's bytes (BACKUP); csc-admin writes FILE. */
static int cmd_cred_backup(admin_ctx_t *x, int argc, char **argv)
{
    char err[512];
    struct stat st;
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    const uint8_t *blob;
    size_t len;
    if (argc != 2) {
        usage(stderr);
        return 2;
    }
    if (lstat(argv[1], &st) == 0) { /* before the key is wrapped: a backup never overwrites a file */
        fprintf(stderr, _("csc-admin: %s exists already; a backup never overwrites a file\n"), argv[1]);
        return 1;
    }
    snprintf(err, sizeof(err), "%s", _("csc-sam's reply holds no backup")); /* adm_backup_write_file's, if it fails */
    sam_begin(&b, SAM_OP_BACKUP);
    sam_put_str(&b, SAM_T_CRED, argv[0]);
    sam_put_str(&b, SAM_T_DESCRIPTION, argv[1]);
    sam_put_session(x, &b);
    int rc = sam_run(x, &b, &rb, &reply);
    if (rc == 0 && (sam_get_bytes(&reply, SAM_T_BACKUP_BLOB, &blob, &len) != SAM_OK ||
                    adm_backup_write_file(argv[1], blob, len, err, sizeof(err)) != 0)) {
        fprintf(stderr, "csc-admin: %s\n", err);
        rc = 1;
    }
    sam_rbuf_free(&rb);
    if (rc == 0)
        printf(_("credential %s backed up to %s (key wrapped in the HSM, integrity tag from the HSM)\n"), argv[0],
               argv[1]);
    return rc;
}

/* credential restore FILE --request REF: csc-admin reads FILE, csc-sam checks the owner's request REF, checks and
 * unwraps the key (RESTORE). */
static int cmd_cred_restore(admin_ctx_t *x, int argc, char **argv)
{
    char err[512], rid[SAM_NAME_MAX + 1];
    uint8_t *data = NULL;
    size_t len = 0;
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    if (argc != 1 && (argc != 3 || strcmp(argv[1], "--request") != 0)) {
        usage(stderr);
        return 2;
    }
    if (adm_backup_read_file(argv[0], &data, &len, err, sizeof(err)) != 0) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    sam_begin(&b, SAM_OP_RESTORE);
    sam_put_str(&b, SAM_T_DESCRIPTION, argv[0]);
    sam_put_session(x, &b);
    sam_put_bytes(&b, SAM_T_BACKUP_BLOB, data, len);
    OPENSSL_cleanse(data, len);
    free(data);
    if (argc == 3) { /* without: csc-sam refuses, audited */
        srv_opsock_put_origin(&b); /* RESTORE_REF is above it */
        sam_put_str(&b, SAM_T_RESTORE_REF, argv[2]);
    }
    int rc = sam_run(x, &b, &rb, &reply);
    if (rc == 0 && sam_get_text(&reply, SAM_T_CRED, rid, sizeof(rid)) != SAM_OK)
        rc = 1;
    sam_rbuf_free(&rb);
    if (rc == 0)
        printf(_("credential %s restored from %s (integrity tag verified, key unwrapped into the HSM)\n"), rid, argv[0]);
    return rc;
}


static int cmd_approvals(admin_ctx_t *x, int argc, char **argv)
{
    (void)argv;
    if (argc != 0) {
        usage(stderr);
        return 2;
    }
    return adm_op_approvals_list(x->a, stdout) == 0 ? 0 : 1;
}

static int cmd_reject(admin_ctx_t *x, int argc, char **argv)
{
    char err[256];
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    if (adm_op_approval_reject(x->a, argv[0], x->roles, err, sizeof(err)) != ADM_OK) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    printf(_("request %s rejected\n"), argv[0]);
    return 0;
}

static int cmd_approve(admin_ctx_t *x, int argc, char **argv);

#define UA STOR_ROLE_USER_ADMIN
#define KA STOR_ROLE_KEY_ADMIN
#define AU STOR_ROLE_AUDITOR
static const admin_cmd_t commands[] = {
    /* w1, w2, role, session, hsm, fn */
    {"init", NULL, 0, 0, RUN_SAM, cmd_init},
    {"operator", "bootstrap", 0, 0, RUN_SAM, cmd_op_bootstrap},
    {"login", NULL, 0, 0, RUN_SAM, cmd_login},
    {"logout", NULL, 0, 1, 0, cmd_logout},
    {"operator", "add", UA, 1, RUN_SAM, cmd_op_add},
    {"operator", "enroll", 0, 0, RUN_SAM, cmd_op_enroll},
    {"operator", "remove", UA, 1, 0, cmd_op_remove},
    {"operator", "roles", UA, 1, 0, cmd_op_roles},
    {"operator", "list", UA, 1, 0, cmd_op_list},
    {"user", "add", UA, 1, RUN_SAM, cmd_user_add},
    {"user", "change", UA, 1, 0, cmd_user_change_row},
    {"user", "recover", UA, 1, RUN_SAM, cmd_user_recover},
    {"user", "suspend", UA, 1, 0, cmd_user_suspend},
    {"user", "resume", UA, 1, 0, cmd_user_resume},
    {"user", "terminate", UA, 1, RUN_SAM, cmd_user_terminate},
    {"credential", "create", KA, 1, RUN_SAM, cmd_cred_create},
    {"credential", "enable", KA, 1, 0, cmd_cred_on},
    {"credential", "disable", KA, 1, 0, cmd_cred_off},
    {"credential", "revoke", KA, 1, RUN_SAM, cmd_cred_revoke},
    {"credential", "destroy", KA, 1, RUN_SAM, cmd_cred_destroy},
    {"credential", "destroy-pending", KA, 1, RUN_SAM, cmd_cred_destroy_pending},
    {"credential", "renew", KA, 1, RUN_SAM, cmd_cred_renew},
    {"credential", "delegate", KA, 1, 0, cmd_cred_delegate},
    {"credential", "import", KA, 1, RUN_SAM, cmd_cred_import},
    {"credential", "backup", KA, 1, RUN_SAM, cmd_cred_backup},
    {"credential", "restore", KA, 1, RUN_SAM, cmd_cred_restore},
    {"backup", "init", KA, 1, RUN_SAM, cmd_backup_init},
    {"tsa", "init", KA, 1, RUN_SAM, cmd_tsa_init},
    {"client", "add", UA, 1, 0, cmd_client_add},
    {"client", "remove", UA, 1, 0, cmd_client_remove},
    {"client", "list", UA, 1, 0, cmd_client_list},
    {"list", NULL, UA | KA, 1, 0, cmd_list},
    {"audit", "verify", AU, 1, RUN_LOCAL, cmd_audit_row},
    {"audit", "query", AU, 1, 0, cmd_audit_row},
    {"audit", "heads", AU, 1, 0, cmd_audit_row},
    {"audit", "report", AU, 1, RUN_LOCAL, cmd_audit_row},
    {"audit", "verify-report", AU, 1, RUN_LOCAL, cmd_audit_row},
    {"audit", "sign-head", AU, 1, RUN_SAM, cmd_audit_row},
    {"audit", "export-key", AU, 1, RUN_SAM, cmd_audit_row},
    {"audit", "key-init", KA, 1, RUN_SAM, cmd_audit_row},
    {"db", "backup", AU, 1, RUN_LOCAL, cmd_db_backup},
    {"approvals", NULL, 0, 1, 0, cmd_approvals},
    {"approve", NULL, 0, 1, RUN_LOCAL, cmd_approve},
    {"reject", NULL, 0, 1, 0, cmd_reject},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The row of argv ("credential destroy ID": the row credential/destroy) and how many words it took. */
static const admin_cmd_t *find_command(int argc, char **argv, int *words)
{
    for (size_t i = 0; argc >= 1 && i < N_COMMANDS; i++) {
        const admin_cmd_t *c = &commands[i];
        if (strcmp(argv[0], c->w1) != 0)
            continue;
        if (c->w2 == NULL) {
            *words = 1;
            return c;
        }
        if (argc >= 2 && strcmp(argv[1], c->w2) == 0) {
            *words = 2;
            return c;
        }
    }
    return NULL;
}

/* two_person lists commands by their last word ("destroy", "restore") or their words joined by a dot
 * ("credential.destroy"; adm_op_two_person); any command of the table can be named. */
static int needs_two(const srv_config_t *cfg, const admin_cmd_t *c)
{
    if (c->session == 0 || c->fn == cmd_approve || c->fn == cmd_reject)
        return 0;
    return adm_op_two_person(cfg->two_person, c->w1, c->w2);
}

/* Every name in two_person must name a command: a typo must not silently drop the protection. */
static int two_person_ok(const srv_config_t *cfg)
{
    char buf[SRV_STR];
    snprintf(buf, sizeof(buf), "%s", cfg->two_person);
    for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok != NULL; tok = strtok_r(NULL, ", \t", &save)) {
        size_t i;
        for (i = 0; i < N_COMMANDS; i++) {
            const admin_cmd_t *c = &commands[i];
            if (c->session && c->fn != cmd_approve && c->fn != cmd_reject && adm_op_two_person(tok, c->w1, c->w2))
                break;
        }
        if (i == N_COMMANDS) {
            fprintf(stderr, _("csc-admin: %s: two_person names no command: %s\n"), cfg->file, tok);
            return 0;
        }
    }
    return 1;
}

static int get_approval(stor_txn_t *t, void *arg)
{
    stor_approval_t *ap = arg;
    char id[STOR_NAME_MAX + 1];
    memcpy(id, ap->id, sizeof(id)); /* the get fills ap from the start */
    return stor_txn_approval_get(t, id, ap);
}

static int cmd_approve(admin_ctx_t *x, int argc, char **argv)
{
    stor_approval_t *ap;
    char err[256], who[2 * STOR_NAME_MAX + 16], *args[STOR_APPROVAL_ARGS_MAX];
    const char *approver = x->a->operator_name;
    int words = 0, rc;

    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    if ((ap = calloc(1, sizeof(*ap))) == NULL)
        return 1;
    /* A command of csc-sam's: csc-sam takes the request itself (another operator, its role, this very command) and
     * runs it; csc-admin reads it here only to know what to send. */
    snprintf(ap->id, sizeof(ap->id), "%s", argv[0]);
    if (stor_read(x->m->stor, get_approval, ap) == STOR_OK) {
        for (uint32_t i = 0; i < ap->n_args; i++)
            args[i] = ap->args[i];
        const admin_cmd_t *c = find_command((int)ap->n_args, args, &words);
        if (c != NULL && c->hsm == RUN_SAM) {
            snprintf(x->approved_line, sizeof(x->approved_line), _("request %s of %s approved by %s: running it"),
                     argv[0], ap->requester, approver);
            x->approval_id = argv[0];
            x->approving = 1;
            rc = c->fn(x, (int)ap->n_args - words, args + words);
            free(ap);
            return rc;
        }
    }
    memset(ap, 0, sizeof(*ap));
    if (adm_op_approval_take(x->a, argv[0], x->roles, ap, err, sizeof(err)) != ADM_OK) {
        fprintf(stderr, "csc-admin: %s\n", err);
        free(ap);
        return 1;
    }
    for (uint32_t i = 0; i < ap->n_args; i++)
        args[i] = ap->args[i];
    const admin_cmd_t *c = find_command((int)ap->n_args, args, &words);
    if (c == NULL || c->session == 0 || c->fn == cmd_approve || c->hsm == RUN_SAM) {
        fprintf(stderr, _("csc-admin: request %s holds no command that can be run\n"), argv[0]);
        free(ap);
        return 1;
    }
    /* Every record the command writes names both operators. */
    snprintf(who, sizeof(who), "%s,requester=%s", approver, ap->requester);
    x->a->operator_name = who;
    x->approving = 1;
    printf(_("request %s of %s approved by %s: running it\n"), argv[0], ap->requester, approver);
    rc = c->fn(x, (int)ap->n_args - words, args + words);
    x->a->operator_name = approver;
    free(ap);
    return rc;
}

/* ---- what csc-admin adds around a command: its origin, the audit of reads, the first operators (J12, J14) ---- */

/* The commands that only read: audited too, before they show anything (the operator, the command and its arguments,
 * none of them secret; never what they show). audit export-key is audited by csc-sam, which answers the key. audit
 * verify writes nothing: a record appended to the log it checks would change what it finds in a damaged one. */
static int audit_read(admin_ctx_t *x, const admin_cmd_t *c, int argc, char **argv)
{
    static const char *const reads[][2] = {{"list", NULL},      {"operator", "list"}, {"client", "list"},
                                           {"approvals", NULL}, {"audit", "query"},   {"audit", "heads"}};
    char detail[256];
    size_t i, pos;
    for (i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
        if (strcmp(c->w1, reads[i][0]) == 0 && (c->w2 == NULL) == (reads[i][1] == NULL) &&
            (c->w2 == NULL || strcmp(c->w2, reads[i][1]) == 0))
            break;
    if (i == sizeof(reads) / sizeof(reads[0]))
        return 0;
    pos = (size_t)snprintf(detail, sizeof(detail), "operator=%s action=read command=%s%s%s%s", x->a->operator_name,
                           c->w1, c->w2 != NULL ? "." : "", c->w2 != NULL ? c->w2 : "", argc > 0 ? " args=" : "");
    for (int k = 0; k < argc && pos < sizeof(detail); k++)
        pos += (size_t)snprintf(detail + pos, sizeof(detail) - pos, "%s%s", k ? " " : "", argv[k]);
    if (adm_op_audit(x->a, STOR_RES_OK, x->a->operator_name, detail) != 0) {
        fprintf(stderr, _("csc-admin: cannot write the audit record of this read: nothing shown\n"));
        return -1;
    }
    return 0;
}

/* two_person names operator add, but the operator is the only one: nobody could approve (a new service). Then it
 * adds alone, audited; from the second operator on the rule holds (docs/configuration.md "two_person"). */
static int two_person_waived(admin_ctx_t *x, const admin_cmd_t *c)
{
    if (c->fn != cmd_op_add || adm_op_sole(x->a) != 1)
        return 0;
    char detail[160];
    snprintf(detail, sizeof(detail), "operator=%s action=two_person.waived command=operator.add reason=sole-operator",
             x->a->operator_name);
    if (adm_op_audit(x->a, STOR_RES_OK, x->a->operator_name, detail) != 0)
        return 0;
    fprintf(stderr, _("csc-admin: %s is the only operator: operator add runs without a second operator\n"),
            x->a->operator_name);
    return 1;
}

/* csc-admin's origin (adm_origin_local): binds the sessions it makes and checks (a.origin), goes with every request
 * to csc-sam (ORIGIN), and into every record and request this process writes (stor_audit_origin_set). */
static void origin_begin(adm_origin_t *o)
{
    char text[STOR_ORIGIN_MAX + 1], claim[SAM_ORIGIN_MAX + 1];
    adm_origin_local(o);
    adm_origin_text(o, text, sizeof(text));
    stor_audit_origin_set(text);
    if (adm_origin_claim(o, claim, sizeof(claim)) == 0)
        srv_opsock_origin(claim);
}

/* db ...: below the operators' commands, without a session (srv_admin_db.c). */
static int admin_db(const char *file, int argc, char **argv)
{
    srv_config_t *cfg = calloc(1, sizeof(*cfg));
    int rc = 1;
    if (cfg != NULL && srv_config_load(file, cfg) == 0) {
        adm_origin_t origin;
        origin_begin(&origin);
        rc = srv_admin_db(cfg, argc, argv);
    }
    free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"operator", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL;
    int c, words = 0;
    srv_i18n_init("csc-admin"); /* help and messages in the operator's language (LANG=ja_JP.UTF-8), else English */
    while ((c = getopt_long(argc, argv, "+c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'o':
            fprintf(stderr, _("csc-admin: --operator is gone: the operator is the one logged in (csc-admin login)\n"));
            return 2;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("csc-admin %s\n", CSC_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    argc -= optind;
    argv += optind;
    if (file != NULL && argc >= 1 && strcmp(argv[0], "db") == 0 && !(argc >= 2 && strcmp(argv[1], "backup") == 0))
        return admin_db(file, argc - 1, argv + 1);
    const admin_cmd_t *cmd = file != NULL ? find_command(argc, argv, &words) : NULL;
    if (cmd == NULL) {
        usage(stderr);
        return 2;
    }
    srv_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || srv_config_load(file, cfg) != 0 || !two_person_ok(cfg)) {
        free(cfg);
        return 1;
    }
    adm_origin_t origin;
    origin_begin(&origin);
    srv_modules_t m;
    /* csc-sam's commands: the production checks are csc-sam's (at its start, the token's module first). */
    if ((cmd->hsm == RUN_SAM ? srv_modules_open_base(cfg, 0, &m) : srv_modules_open_store(cfg, &m)) != 0) {
        free(cfg);
        return 1;
    }
    /* No token and no CA here: what needs them is csc-sam's (RUN_SAM). */
    char opname[STOR_NAME_MAX + 1] = "", token[ADM_OP_TOKEN_LEN + 8], err[512], what[64];
    adm_t a = {
        .stor = m.stor,
        .operator_name = "-",
        .scrypt_log2n = cfg->scrypt_log2n,
        .issuer = cfg->totp_issuer,
        .key_backup = strcmp(cfg->key_backup, "wrapped") == 0,
        .trust_anchors = cfg->trust_anchors,
        .pin_min_length = cfg->pin_min_length,
        .production = cfg->environment == CSC_ENV_PRODUCTION,
        .allow_scal1 = (int)cfg->allow_scal1,
        .allow_single_factor = (int)cfg->allow_single_factor,
        .origin = &origin,
        .allow_combined_roles = (int)cfg->allow_combined_roles,
    };
    admin_ctx_t x = {
        .cfg = cfg, .m = &m, .a = &a,
        .pol = {.session_idle = cfg->admin_session_idle, .session_max = cfg->admin_session_max,
                .max_failures = cfg->max_failures, .lock_seconds = cfg->lock_seconds, .totp_window = 1,
                .approval_ttl = cfg->admin_approval_ttl},
    };
    int rc = 1;
    snprintf(what, sizeof(what), "%s%s%s", cmd->w1, cmd->w2 ? " " : "", cmd->w2 ? cmd->w2 : "");
    /* csc-sam checks the session of its commands itself (and audits a refusal); csc-admin checks it for the others,
     * and to file a two-person request. */
    if (cmd->session && cmd->fn != cmd_logout && (cmd->hsm != RUN_SAM || needs_two(cfg, cmd))) {
        if (session_token(token, sizeof(token)) != 0)
            token[0] = '\0';
        int src = adm_op_session_check(&a, &x.pol, token, cmd->role, what, opname, &x.roles, err, sizeof(err));
        OPENSSL_cleanse(token, sizeof(token));
        if (src != ADM_OK) {
            fprintf(stderr, "csc-admin: %s\n", err);
            goto out;
        }
        a.operator_name = opname;
    }
    if (needs_two(cfg, cmd) && !two_person_waived(&x, cmd)) {
        char id[STOR_NAME_MAX + 1];
        if (adm_op_approval_request(&a, &x.pol, cmd->role, argc, argv, id, err, sizeof(err)) != ADM_OK) {
            fprintf(stderr, "csc-admin: %s\n", err);
            goto out;
        }
        /* TRANSLATORS: the first line, "approval_required ID", is read by scripts: keep it as it is. */
        printf(_("approval_required %s\n%s needs a second operator: csc-admin approve %s\n"), id, what, id);
        rc = 0;
        goto out;
    }
    if (audit_read(&x, cmd, argc - words, argv + words) != 0)
        goto out;
    rc = cmd->fn(&x, argc - words, argv + words);
out:
    srv_opsock_end();
    srv_modules_close_store(&m);
    free(cfg);
    return rc;
}
