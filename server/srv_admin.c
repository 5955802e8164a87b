/* srv_admin.c - csc-admin: the operators' tool (users, credentials). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include "srv.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: csc-admin -c CONFIG [--operator NAME] COMMAND ...\n"
            "commands:\n"
            "  init                                   create the database; check the HSM token\n"
            "  user add NAME [--password-file FILE]   add a user (password from FILE or standard input);\n"
            "                                         prints the otpauth:// URI of the user's TOTP secret\n"
            "  credential create --user NAME [--id ID] [--key rsa2048|rsa3072|rsa4096|p256|p384|p521]\n"
            "                    [--auth \"PIN AND OTP\"|PIN|OTP|\"PIN OR OTP\"|CHALLENGE|\"PIN AND CHALLENGE\"|\n"
            "                            APPROVAL|\"PIN AND APPROVAL\"]\n"
            "                    [--pin-file FILE]  (CHALLENGE: a one-time code sent by otp_sender after\n"
            "                    credentials/getChallenge; APPROVAL: the user approves on the /approve page,\n"
            "                    authorize answers 202 + handle; both need auth mode explicit)\n"
            "                    [--scal 1|2] [--multisign N] [--description TEXT] [--cn NAME]\n"
            "                    [--auth-mode explicit|oauth2code] [--qualifier eu_eidas_qes|...]\n"
            "                    [--csr FILE --org O --country C]\n"
            "                                         key generated in the HSM, certificate from the CA;\n"
            "                                         the PIN from FILE or standard input; with --csr: a PKCS#10\n"
            "                                         request signed by the HSM key is written to FILE (subject\n"
            "                                         C, O, CN) and the credential is pending until the import\n"
            "  credential import ID CERT.pem [--chain CHAIN.pem]\n"
            "                                         the CA's certificate for the pending (or current) key: must\n"
            "                                         match the HSM key, be valid now and chain to trust_anchors\n"
            "  credential renew ID --csr FILE [--cn NAME --org O --country C]\n"
            "                                         new key and request; the old key signs until the import,\n"
            "                                         which destroys it\n"
            "  credential enable ID | credential disable ID\n"
            "  credential revoke ID | credential destroy ID\n"
            "                                         destroy the key in the HSM (certificate revoked / no longer\n"
            "                                         wanted); final: the credential never signs again\n"
            "  credential renew ID                    new key and certificate; the old key is destroyed\n"
            "  backup init [--so-pin-file FILE]       create the HSM backup keys (trusted wrapping key, made with\n"
            "                                         the token's SO PIN from FILE or standard input; integrity key)\n"
            "  credential backup ID FILE              write the credential with its key wrapped in the HSM and an\n"
            "                                         HSM integrity tag to FILE (new, 0600); needs key_backup = wrapped\n"
            "                                         when the key was generated\n"
            "  credential restore FILE                check the file's integrity tag in the HSM, unwrap the key into\n"
            "                                         the token, store the credential (id unknown or destroyed only)\n"
            "  user suspend NAME | user resume NAME | user terminate NAME (destroys all the user's keys)\n"
            "  client add ID --redirect URI [--redirect URI ...] [--name TEXT]\n"
            "             [--scopes service,credential] [--grants authorization_code,refresh_token,client_credentials]\n"
            "                                         register an OAuth 2.0 client; prints its secret once\n"
            "  client list | client remove ID\n"
            "  list                                   users and their credentials\n"
            "  tsa init [--key rsa2048|...|p256|p384|p521] [--cn NAME]\n"
            "                                         create the built-in time-stamping unit named by\n"
            "                                         tsa_credential: key in the HSM, certificate from the CA\n"
            "                                         with a critical extendedKeyUsage timeStamping\n"
            "  audit verify [--key PEM]               check the audit log's hash chain, seqs and head, and every\n"
            "                                         signed head (signature with the audit key from the HSM or PEM,\n"
            "                                         and the log's hash at its seq); exit 1 and one line per problem\n"
            "  audit key-init                         create the audit head key (EC P-256) in the HSM (init does too)\n"
            "  audit sign-head                        sign the current audit head now\n"
            "  audit export-key FILE                  write the audit public key (PEM) for external verifiers\n"
            "  audit heads                            print the signed heads (JSON lines: signed_text, signature)\n"
            "  audit query [--user NAME] [--credential ID] [--since TIME] [--until TIME] [--json]\n"
            "              [--event login|revoke|authorize|sign|sign-result|admin|lockout|cert]\n"
            "                                         print matching audit records; TIME is ISO-8601 UTC\n"
            "                                         (2026-11-25T10:00:00Z) or unix seconds, both inclusive\n");
}

/* A secret from a file or standard input: first line, without its newline. */
static int read_secret(const char *file, const char *what, char *buf, size_t sz)
{
    FILE *f = file != NULL ? fopen(file, "r") : stdin;
    if (f == NULL) {
        fprintf(stderr, "csc-admin: cannot read %s from %s\n", what, file);
        return -1;
    }
    if (file == NULL && isatty(fileno(stdin)))
        fprintf(stderr, "%s: ", what);
    int ok = fgets(buf, (int)sz, f) != NULL;
    if (f != stdin)
        fclose(f);
    if (!ok) {
        fprintf(stderr, "csc-admin: no %s given\n", what);
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

static int cmd_user_add(const csc_admin_t *a, int argc, char **argv)
{
    const char *pwfile = NULL;
    char pw[256], uri[512], b32[64], err[256];
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc) {
            pwfile = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (read_secret(pwfile, "password", pw, sizeof(pw)) != 0)
        return 1;
    int rc = csc_admin_user_add(a, name, pw, uri, sizeof(uri), b32, sizeof(b32), err, sizeof(err));
    OPENSSL_cleanse(pw, sizeof(pw));
    if (rc != 0) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    printf("user %s added\ntotp_secret %s\notpauth %s\n", name, b32, uri);
    OPENSSL_cleanse(b32, sizeof(b32));
    OPENSSL_cleanse(uri, sizeof(uri));
    return 0;
}

static int cmd_cred_create(const csc_admin_t *a, int argc, char **argv)
{
    csc_cred_spec_t s = {.auth_expr = "PIN AND OTP", .scal = 2, .multisign = 1};
    const char *pinfile = NULL;
    char pin[64] = "", id[STOR_NAME_MAX + 1], err[512];

    parse_key("rsa2048", &s.key);
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(o, "--user") == 0) {
            s.owner = v;
        } else if (strcmp(o, "--id") == 0) {
            s.id = v;
        } else if (strcmp(o, "--key") == 0) {
            if (parse_key(v, &s.key) != 0) {
                fprintf(stderr, "csc-admin: unknown key type %s\n", v);
                return 2;
            }
        } else if (strcmp(o, "--auth") == 0) {
            s.auth_expr = v;
        } else if (strcmp(o, "--pin-file") == 0) {
            pinfile = v;
        } else if (strcmp(o, "--scal") == 0) {
            s.scal = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(o, "--multisign") == 0) {
            s.multisign = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(o, "--description") == 0) {
            s.description = v;
        } else if (strcmp(o, "--cn") == 0) {
            s.subject_cn = v;
        } else if (strcmp(o, "--qualifier") == 0) {
            s.qualifier = v;
        } else if (strcmp(o, "--csr") == 0) {
            s.csr_file = v;
        } else if (strcmp(o, "--org") == 0) {
            s.subject_o = v;
        } else if (strcmp(o, "--country") == 0) {
            s.subject_c = v;
        } else if (strcmp(o, "--auth-mode") == 0) {
            if (strcmp(v, "oauth2code") != 0 && strcmp(v, "explicit") != 0) {
                fprintf(stderr, "csc-admin: --auth-mode is explicit or oauth2code\n");
                return 2;
            }
            s.oauth2code = strcmp(v, "oauth2code") == 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (s.owner == NULL) {
        fprintf(stderr, "csc-admin: --user is required\n");
        return 2;
    }
    if ((s.subject_o != NULL || s.subject_c != NULL) && s.csr_file == NULL) {
        fprintf(stderr, "csc-admin: --org and --country go with --csr\n");
        return 2;
    }
    if (strstr(s.auth_expr, "PIN") != NULL) {
        if (read_secret(pinfile, "PIN", pin, sizeof(pin)) != 0)
            return 1;
        s.pin = pin;
    }
    int rc = csc_admin_cred_create(a, &s, id, sizeof(id), err, sizeof(err));
    OPENSSL_cleanse(pin, sizeof(pin));
    if (rc != 0) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    if (s.csr_file != NULL)
        printf("credential %s created, pending its certificate; request written to %s\n", id, s.csr_file);
    else
        printf("credential %s created\n", id);
    return 0;
}

static int cmd_backup_init(const csc_admin_t *a, int argc, char **argv)
{
    const char *file = NULL;
    char pin[300] = "", err[512];
    int created = 0, rc;

    if (argc == 2 && strcmp(argv[0], "--so-pin-file") == 0) {
        file = argv[1];
    } else if (argc != 0) {
        usage(stderr);
        return 2;
    }
    /* The SO PIN is asked only when the wrapping key is missing. */
    rc = csc_admin_backup_init(a, NULL, &created, err, sizeof(err));
    if (rc == -2) {
        if (read_secret(file, "SO PIN", pin, sizeof(pin)) != 0)
            return 1;
        rc = csc_admin_backup_init(a, pin, &created, err, sizeof(err));
        OPENSSL_cleanse(pin, sizeof(pin));
    }
    if (rc != 0) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    printf(created ? "backup keys created in the HSM (wrapping key trusted, sensitive, not extractable)\n"
                   : "backup keys present in the HSM\n");
    return 0;
}

/* credential import ID CERT [--chain FILE] | credential renew ID --csr FILE [--cn --org --country] */
static int cmd_cred_cert(const csc_admin_t *a, const char *op, int argc, char **argv)
{
    const char *chain = NULL, *csr = NULL, *cn = NULL, *o = NULL, *country = NULL;
    char err[512];
    int first = strcmp(op, "import") == 0 ? 2 : 1, rc;
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
    if (first == 2) {
        rc = csc_admin_cred_import(a, argv[0], argv[1], chain, err, sizeof(err));
        if (rc == 0)
            printf("credential %s: certificate imported\n", argv[0]);
    } else {
        if (csr == NULL) {
            usage(stderr);
            return 2;
        }
        rc = csc_admin_cred_renew_csr(a, argv[0], cn, o, country, csr, err, sizeof(err));
        if (rc == 0)
            printf("credential %s: new key pending its certificate; request written to %s\n", argv[0], csr);
    }
    if (rc != 0)
        fprintf(stderr, "csc-admin: %s\n", err);
    return rc == 0 ? 0 : 1;
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

static int cmd_client(srv_modules_t *m, const char *op, int argc, char **argv, const csc_admin_t *a)
{
    static const char *const scope_names[] = {"service", "credential"};
    static const unsigned scope_bits[] = {1u << STOR_SCOPE_SERVICE, 1u << STOR_SCOPE_CREDENTIAL};
    static const char *const grant_names[] = {"authorization_code", "refresh_token", "client_credentials"};
    static const unsigned grant_bits[] = {STOR_GRANT_AUTHORIZATION_CODE, STOR_GRANT_REFRESH_TOKEN,
                                          STOR_GRANT_CLIENT_CREDENTIALS};
    if (strcmp(op, "list") == 0 && argc == 0)
        return csc_admin_clients_list(a, stdout) == 0 ? 0 : 1;
    if (strcmp(op, "remove") == 0 && argc == 1) {
        int rc = oauth_client_remove(m->oauth, argv[0], a->operator_name);
        if (rc != OAUTH_OK) {
            fprintf(stderr, "csc-admin: no client %s (%s)\n", argv[0], oauth_strerror(rc));
            return 1;
        }
        printf("client %s removed\n", argv[0]);
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
        fprintf(stderr, "csc-admin: the authorization_code grant needs at least one --redirect\n");
        goto out;
    }
    int orc = oauth_client_add(m->oauth, c, a->operator_name, secret);
    if (orc != OAUTH_OK) {
        fprintf(stderr, "csc-admin: cannot add client %s: %s\n", c->id,
                orc == OAUTH_ERR_DENIED ? "it exists already"
                : orc == OAUTH_ERR_INVAL ? "invalid id or redirect URI (absolute https, or http on localhost)"
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
        fprintf(stderr, "csc-admin: cannot read a PEM public key from %s\n", file);
    return *out != NULL ? 0 : -1;
}

static int cmd_audit_verify(stor_env_t *stor, hsm_t *hsm, int argc, char **argv)
{
    unsigned long problems = 0, head_problems = 0;
    EVP_PKEY *pub = NULL;
    int rc;

    if (argc == 2 && strcmp(argv[0], "--key") == 0) {
        if (load_pem_pub(argv[1], &pub) != 0)
            return 1;
    } else if (argc != 0) {
        usage(stderr);
        return 2;
    } else if (hsm != NULL) {
        (void)csc_audit_key_pub(hsm, &pub); /* no key: signed heads are reported as unverifiable */
    }
    rc = csc_audit_verify(stor, stdout, &problems);
    if (rc == 0)
        rc = csc_audit_verify_heads(stor, pub, stdout, &head_problems);
    EVP_PKEY_free(pub);
    return rc == 0 && problems == 0 && head_problems == 0 ? 0 : 1;
}

static int cmd_audit(stor_env_t *stor, hsm_t *hsm, const char *op, int argc, char **argv)
{
    csc_audit_filter_t f = {0};
    int64_t ms;

    if (argc >= 1 && strcmp(argv[0], "verify") == 0)
        return cmd_audit_verify(stor, hsm, argc - 1, argv + 1);
    if (argc == 1 && strcmp(argv[0], "key-init") == 0) {
        int created = 0;
        if (csc_audit_key_init(stor, hsm, op, &created) != 0)
            return 1;
        printf(created ? "audit key created in the HSM (EC P-256)\n" : "audit key present in the HSM\n");
        return 0;
    }
    if (argc == 1 && strcmp(argv[0], "sign-head") == 0) {
        uint64_t seq = 0;
        int rc = csc_audit_sign_head(stor, hsm, "csc-admin", 1, &seq);
        if (rc == CSC_AUDIT_SIGN_OK)
            printf("audit head signed at seq %llu\n", (unsigned long long)seq);
        else if (rc == CSC_AUDIT_SIGN_NOTHING)
            printf("nothing to sign (empty log, or signed meanwhile)\n");
        return rc == CSC_AUDIT_SIGN_OK || rc == CSC_AUDIT_SIGN_NOTHING ? 0 : 1;
    }
    if (argc == 2 && strcmp(argv[0], "export-key") == 0) {
        if (csc_audit_key_export(hsm, argv[1]) != 0)
            return 1;
        printf("audit public key written to %s\n", argv[1]);
        return 0;
    }
    if (argc == 1 && strcmp(argv[0], "heads") == 0)
        return csc_audit_heads_list(stor, stdout) == 0 ? 0 : 1;
    if (argc < 1 || strcmp(argv[0], "query") != 0)
        goto bad;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--json") == 0) {
            f.json = 1;
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
            if (csc_audit_parse_event(v, &f.event) != 0) {
                fprintf(stderr, "csc-admin: unknown event %s\n", v);
                return 2;
            }
        } else if (strcmp(o, "--since") == 0 || strcmp(o, "--until") == 0) {
            if (csc_audit_parse_time(v, &ms) != 0) {
                fprintf(stderr, "csc-admin: %s: not an ISO-8601 UTC time (2026-11-25T10:00:00Z) or unix seconds\n",
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
    return csc_audit_query(stor, &f, stdout, NULL) == 0 ? 0 : 1;
bad:
    usage(stderr);
    return 2;
}

/* tsa init [--key K] [--cn NAME]: the TSA named by tsa_credential */
static int cmd_tsa_init(const csc_admin_t *a, const char *id, int argc, char **argv)
{
    hsm_keyspec_t key = {.type = HSM_KEY_EC, .bits = 256, .curve_nid = NID_X9_62_prime256v1};
    const char *cn = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            if (parse_key(argv[++i], &key) != 0) {
                fprintf(stderr, "csc-admin: unknown key type %s\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--cn") == 0 && i + 1 < argc) {
            cn = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (id[0] == '\0') {
        fprintf(stderr, "csc-admin: set tsa_credential (and tsa_policy) in the configuration first\n");
        return 1;
    }
    char err[256];
    if (csc_admin_tsa_init(a, id, &key, cn, err, sizeof(err)) != 0) {
        fprintf(stderr, "csc-admin: %s\n", err);
        return 1;
    }
    printf("time-stamping unit %s created (key in the HSM, certificate from the CA)\n", id);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"operator", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *op = getenv("USER");
    int c;
    while ((c = getopt_long(argc, argv, "+c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'o':
            op = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    argc -= optind;
    argv += optind;
    if (file == NULL || argc < 1) {
        usage(stderr);
        return 2;
    }
    srv_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || srv_config_load(file, cfg) != 0)
        return 1;

    const char *cmd = argv[0];
    int need_hsm = strcmp(cmd, "init") == 0 ||
                   (strcmp(cmd, "credential") == 0 && argc > 1 &&
                    (strcmp(argv[1], "create") == 0 || strcmp(argv[1], "revoke") == 0 ||
                     strcmp(argv[1], "destroy") == 0 || strcmp(argv[1], "renew") == 0 ||
                     strcmp(argv[1], "backup") == 0 || strcmp(argv[1], "restore") == 0 ||
                     strcmp(argv[1], "import") == 0)) ||
                   strcmp(cmd, "backup") == 0 ||
                   (strcmp(cmd, "audit") == 0 && argc > 1 &&
                    (strcmp(argv[1], "key-init") == 0 || strcmp(argv[1], "sign-head") == 0 ||
                     strcmp(argv[1], "export-key") == 0 ||
                     (strcmp(argv[1], "verify") == 0 && !(argc > 2 && strcmp(argv[2], "--key") == 0)))) ||
                   (strcmp(cmd, "user") == 0 && argc > 1 && strcmp(argv[1], "terminate") == 0) ||
                   strcmp(cmd, "tsa") == 0;
    srv_modules_t m;
    if (srv_modules_open(cfg, need_hsm ? SRV_NEED_HSM : 0, &m) != 0)
        return 1;
    csc_ca_t ca = {.cert_file = cfg->ca_cert, .key_file = cfg->ca_key, .chain_file = cfg->ca_chain,
                   .days = cfg->cert_days};
    csc_admin_t a = {
        .stor = m.stor,
        .hsm = m.hsm,
        .ca = &ca,
        .operator_name = op != NULL ? op : "unknown",
        .scrypt_log2n = cfg->scrypt_log2n,
        .issuer = cfg->totp_issuer,
        .key_backup = strcmp(cfg->key_backup, "wrapped") == 0,
        .trust_anchors = cfg->trust_anchors,
    };
    char err[256];
    int rc = 2;
    if (strcmp(cmd, "init") == 0 && argc == 1) {
        int created = 0;
        if (csc_audit_key_init(m.stor, m.hsm, a.operator_name, &created) != 0) {
            srv_modules_close(&m);
            free(cfg);
            return 1;
        }
        printf("database %s ready; token \"%s\" reachable (%u sessions)\n", cfg->lmdb_path, cfg->pkcs11_token,
               hsm_sessions(m.hsm));
        rc = 0;
    } else if (strcmp(cmd, "user") == 0 && argc >= 2 && strcmp(argv[1], "add") == 0) {
        rc = cmd_user_add(&a, argc - 2, argv + 2);
    } else if (strcmp(cmd, "credential") == 0 && argc >= 2 && strcmp(argv[1], "create") == 0) {
        rc = cmd_cred_create(&a, argc - 2, argv + 2);
    } else if (strcmp(cmd, "credential") == 0 && argc >= 3 &&
               (strcmp(argv[1], "import") == 0 || (strcmp(argv[1], "renew") == 0 && argc > 3))) {
        rc = cmd_cred_cert(&a, argv[1], argc - 2, argv + 2);
    } else if (strcmp(cmd, "credential") == 0 && argc == 3 &&
               (strcmp(argv[1], "enable") == 0 || strcmp(argv[1], "disable") == 0)) {
        int en = strcmp(argv[1], "enable") == 0;
        rc = csc_admin_cred_set_enabled(&a, argv[2], en, err, sizeof(err)) == 0 ? 0 : 1;
        if (rc == 0)
            printf("credential %s %s\n", argv[2], en ? "enabled" : "disabled");
        else
            fprintf(stderr, "csc-admin: %s\n", err);
    } else if (strcmp(cmd, "credential") == 0 && argc == 3 &&
               (strcmp(argv[1], "revoke") == 0 || strcmp(argv[1], "destroy") == 0 || strcmp(argv[1], "renew") == 0)) {
        int renew = strcmp(argv[1], "renew") == 0;
        rc = (renew ? csc_admin_cred_renew(&a, argv[2], err, sizeof(err))
                    : csc_admin_cred_destroy(&a, argv[2], strcmp(argv[1], "revoke") == 0 ? "certificate revoked"
                                                                                           : "operator request",
                                             err, sizeof(err))) == 0
                 ? 0
                 : 1;
        if (rc == 0)
            printf(renew ? "credential %s renewed: new key and certificate, old key destroyed\n"
                         : "credential %s: key destroyed; it can never sign again\n",
                   argv[2]);
        else
            fprintf(stderr, "csc-admin: %s\n", err);
    } else if (strcmp(cmd, "backup") == 0 && argc >= 2 && strcmp(argv[1], "init") == 0) {
        rc = cmd_backup_init(&a, argc - 2, argv + 2);
    } else if (strcmp(cmd, "credential") == 0 && argc == 4 && strcmp(argv[1], "backup") == 0) {
        rc = csc_admin_cred_backup(&a, argv[2], argv[3], err, sizeof(err)) == 0 ? 0 : 1;
        if (rc == 0)
            printf("credential %s backed up to %s (key wrapped in the HSM, integrity tag from the HSM)\n", argv[2],
                   argv[3]);
        else
            fprintf(stderr, "csc-admin: %s\n", err);
    } else if (strcmp(cmd, "credential") == 0 && argc == 3 && strcmp(argv[1], "restore") == 0) {
        char rid[STOR_NAME_MAX + 1];
        rc = csc_admin_cred_restore(&a, argv[2], rid, sizeof(rid), err, sizeof(err)) == 0 ? 0 : 1;
        if (rc == 0)
            printf("credential %s restored from %s (integrity tag verified, key unwrapped into the HSM)\n", rid,
                   argv[2]);
        else
            fprintf(stderr, "csc-admin: %s\n", err);
    } else if (strcmp(cmd, "user") == 0 && argc == 3 &&
               (strcmp(argv[1], "suspend") == 0 || strcmp(argv[1], "resume") == 0 ||
                strcmp(argv[1], "terminate") == 0)) {
        uint32_t st = strcmp(argv[1], "suspend") == 0  ? STOR_USER_SUSPENDED
                      : strcmp(argv[1], "resume") == 0 ? STOR_USER_ACTIVE
                                                       : STOR_USER_TERMINATED;
        rc = csc_admin_user_set_status(&a, argv[2], st, err, sizeof(err)) == 0 ? 0 : 1;
        if (rc == 0)
            printf("user %s %s\n", argv[2], st == STOR_USER_SUSPENDED ? "suspended" : st == STOR_USER_ACTIVE ? "resumed"
                                                                                   : "terminated; keys destroyed");
        else
            fprintf(stderr, "csc-admin: %s\n", err);
    } else if (strcmp(cmd, "client") == 0 && argc >= 2) {
        rc = cmd_client(&m, argv[1], argc - 2, argv + 2, &a);
    } else if (strcmp(cmd, "audit") == 0 && argc >= 2) {
        rc = cmd_audit(m.stor, m.hsm, a.operator_name, argc - 1, argv + 1);
    } else if (strcmp(cmd, "tsa") == 0 && argc >= 2 && strcmp(argv[1], "init") == 0) {
        rc = cmd_tsa_init(&a, cfg->tsa_credential, argc - 2, argv + 2);
    } else if (strcmp(cmd, "list") == 0 && argc == 1) {
        rc = csc_admin_list(&a, stdout) == 0 ? 0 : 1;
    } else {
        usage(stderr);
    }
    srv_modules_close(&m);
    free(cfg);
    return rc;
}
