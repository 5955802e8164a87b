/*
 * sam_op_stamp.c - STAMP: csc-sam's time-stamping unit (RFC 3161 with RFC 5816's ESSCertIDv2), the only code that
 * signs with the TSA key named by tsa_credential (docs/csc-api.md sec. 15, signatures/timestamp; signDoc's AdES-B-T
 * tokens). The front end passes the caller's access token, the message imprint (hash algorithm and digest) and an
 * optional nonce; everything else in the TSTInfo is the SAM's: the policy and accuracy of its configuration, a
 * 127-bit random serial, genTime from its clock, and the TSA's certificates from storage. So whatever a compromised
 * front end sends, the TSA key signs nothing but a well-formed TSTInfo this file built.
 *
 * Who may ask: the holder of a valid access token, as signatures/timestamp allows today: a service token (a user's,
 * or a client's own), or a credential-scope token only together with CRED naming that token's credential (the B-T
 * token of a signDoc with that credential). Every token given out and every refusal is audited (STOR_EV_TIMESTAMP):
 * no token leaves without its record.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "pki.h"
#include "sam_core.h"

/* The message imprints a TSA accepts (CSC API v2.0.0.2 sec. 11.10: nothing below SHA-256). */
static const int imprint_nids[] = {NID_sha256, NID_sha384, NID_sha512};

/* A refusal of this request, audited (who asked, what was refused and why) before it is answered. */
typedef struct stamp {
    const sam_server_config_t *cfg;
    const sam_msg_t *req;
    sam_builder_t *b;
    oauth_principal_t who;         /* the token's principal, once checked */
    char client[SAM_CLIENT_MAX + 1];
    stor_audit_t rec;
} stamp_t;

static int append_audit(stor_txn_t *t, void *arg)
{
    return stor_txn_audit_append(t, arg);
}

static void audit_init(stamp_t *s, uint32_t result, const char *cred)
{
    memset(&s->rec, 0, sizeof(s->rec));
    s->rec.event = STOR_EV_TIMESTAMP;
    s->rec.result = result;
    snprintf(s->rec.user, sizeof(s->rec.user), "%s", s->who.user);
    snprintf(s->rec.cred, sizeof(s->rec.cred), "%s", cred != NULL ? cred : "");
    size_t n = strnlen(s->client, sizeof(s->rec.client) - 1); /* the record keeps what fits */
    memcpy(s->rec.client, s->client, n);
    s->rec.client[n] = '\0';
}

static int refuse(stamp_t *s, uint32_t code, unsigned about, const char *reason)
{
    audit_init(s, STOR_RES_DENIED, s->cfg->tsa_credential);
    snprintf(s->rec.detail, sizeof(s->rec.detail), "refused=%s about=%u: %s", sam_refusal_name(code), about, reason);
    int rc = stor_write(s->cfg->stor, append_audit, &s->rec);
    if (rc != STOR_OK)
        fprintf(stderr, "csc-sam: STAMP: cannot audit a refusal (%s): %s\n", reason, stor_strerror(rc));
    return sam_build_refusal(s->b, s->req->id, code, reason, about);
}

/* The caller: a valid access token; a credential-scope one only for its own credential (CRED). */
static int check_caller(stamp_t *s, uint32_t *code, const char **why)
{
    char token[SAM_TOKEN_MAX + 1], cred[SAM_NAME_MAX + 1] = "";
    int rc = sam_get_text(s->req, SAM_T_TOKEN, token, sizeof(token));
    if (rc == SAM_OK)
        rc = oauth_token_check(s->cfg->oauth, token, strlen(token), &s->who);
    OPENSSL_cleanse(token, sizeof(token));
    if (rc != OAUTH_OK) {
        memset(&s->who, 0, sizeof(s->who));
        *code = sam_refusal_of_oauth(rc);
        *why = "the access token is not valid";
        return -1;
    }
    if (s->who.scope == STOR_SCOPE_CREDENTIAL &&
        (sam_get_text(s->req, SAM_T_CRED, cred, sizeof(cred)) != SAM_OK || strcmp(cred, s->who.cred) != 0)) {
        *code = SAM_REFUSE_UNAUTHORIZED;
        *why = "a credential-scope token only time-stamps the signatures of its credential";
        return -1;
    }
    return 0;
}

/* The hash algorithm (a dotted OID) and digest of the message imprint: md_nid, or 0 with *why. */
static int imprint(const sam_msg_t *req, const uint8_t **digest, size_t *len, unsigned *about, const char **why)
{
    char oid[SAM_OID_MAX + 1];
    size_t want = 0;
    int nid = 0;
    if (sam_get_text(req, SAM_T_HASH_ALG, oid, sizeof(oid)) != SAM_OK)
        oid[0] = '\0';
    for (size_t i = 0; i < sizeof(imprint_nids) / sizeof(imprint_nids[0]) && nid == 0; i++) {
        const char *o = pki_md_oid(imprint_nids[i], &want);
        if (o != NULL && strcmp(o, oid) == 0)
            nid = imprint_nids[i];
    }
    *about = SAM_T_HASH_ALG;
    *why = "unknown hash algorithm";
    if (nid == 0)
        return 0;
    *about = SAM_T_DIGEST;
    *why = "the digest's length is not the hash algorithm's";
    if (sam_get_bytes(req, SAM_T_DIGEST, digest, len) != SAM_OK || *len != want)
        return 0;
    return nid;
}

/* Is the certificate of cred valid at now? (A record from before the validity was kept: read the certificate.) */
static int cert_valid_now(const stor_cred_t *cred, time_t now)
{
    int64_t nb = cred->cert_not_before, na = cred->cert_not_after;
    if (na == 0) {
        const unsigned char *p = cred->certs;
        X509 *ee = cred->certs_len > 0 ? d2i_X509(NULL, &p, (long)cred->certs_len) : NULL;
        int ok = ee != NULL && pki_cert_validity(ee, &nb, &na) == 0;
        X509_free(ee);
        if (!ok)
            return 0;
    }
    return (int64_t)now >= nb && (int64_t)now <= na;
}

/* The TSA's record: SAM_OK, or the refusal code (NOT_OFFERED: none usable; UNAVAILABLE: storage). */
static uint32_t tsa_load(const sam_server_config_t *cfg, stor_cred_t *cred)
{
    if (cfg->tsa_credential == NULL || cfg->tsa_credential[0] == '\0' || cfg->tsa_policy == NULL)
        return SAM_REFUSE_NOT_OFFERED;
    int rc = stor_cred_get(cfg->stor, cfg->tsa_credential, cred);
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL)
        return SAM_REFUSE_NOT_OFFERED;
    if (rc != STOR_OK)
        return sam_refusal_of_stor(rc);
    if (strcmp(cred->owner, STOR_TSA_OWNER) != 0 || cred->status != STOR_CRED_ENABLED ||
        !cert_valid_now(cred, time(NULL)))
        return SAM_REFUSE_NOT_OFFERED;
    return SAM_OK;
}

typedef struct tsa_signer {
    hsm_t *hsm;
    const stor_cred_t *cred;
} tsa_signer_t;

/* hsm_sign writes up to HSM_SIG_MAX bytes into the PKI_SIG_MAX buffer pki/ hands its callback. */
_Static_assert(PKI_SIG_MAX >= HSM_SIG_MAX, "pki's signature buffer must hold any HSM signature");

/* pki/'s callback: the signature over the token's signed attributes, by the TSA key in the HSM. */
static int tsa_sign(void *arg, const pki_sig_t *p, const uint8_t *digest, size_t len, uint8_t *sig, size_t *sig_len)
{
    const tsa_signer_t *t = arg;
    hsm_sign_params_t hp = {.md_nid = p->md_nid};
    if (p->scheme != PKI_SIG_RSA_PKCS1 && p->scheme != PKI_SIG_ECDSA)
        return HSM_ERR_INVAL;
    hp.scheme = p->scheme == PKI_SIG_ECDSA ? HSM_SIG_ECDSA : HSM_SIG_RSA_PKCS1;
    const uint8_t *const d[1] = {digest};
    uint8_t *const s[1] = {sig};
    return hsm_sign(t->hsm, t->cred->key_id, t->cred->key_id_len, &hp, d, len, 1, s, sig_len);
}

/* Sign the token over a fresh TSTInfo into tok; the serial's hex into serial_hex. SAM_OK or a refusal code. */
static uint32_t make_token(const stamp_t *s, const stor_cred_t *tsa, int md_nid, const uint8_t *digest, size_t len,
                           pki_der_t *tok, char serial_hex[33])
{
    uint8_t serial[16];
    const uint8_t *nonce = NULL;
    size_t nonce_len = 0;
    if (RAND_bytes(serial, sizeof(serial)) != 1)
        return SAM_REFUSE_INTERNAL;
    serial[0] &= 0x7f; /* positive */
    serial[0] |= 0x40; /* and always 16 bytes long */
    pki_hex(serial, sizeof(serial), serial_hex);
    if (sam_msg_count(s->req, SAM_T_NONCE) > 0 && sam_get_bytes(s->req, SAM_T_NONCE, &nonce, &nonce_len) != SAM_OK)
        return SAM_REFUSE_BAD_MESSAGE;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pki_tst_t t = {.policy = s->cfg->tsa_policy, .accuracy_ms = s->cfg->tsa_accuracy_ms, .md_nid = md_nid,
                   .digest = digest, .digest_len = len, .serial = serial, .serial_len = sizeof(serial),
                   .gen_time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, .nonce = nonce,
                   .nonce_len = nonce_len};
    pki_sig_t sig;
    pki_tst_sig(tsa->key_type == STOR_KEY_RSA, tsa->key_curve, &sig);
    tsa_signer_t signer = {.hsm = s->cfg->hsm, .cred = tsa};
    int cb_rc = HSM_OK;
    int rc = pki_tst_sign(&t, tsa->certs, tsa->certs_len, &sig, tsa_sign, &signer, tok, &cb_rc);
    if (rc == PKI_OK)
        return SAM_OK;
    return rc == PKI_ERR_CALLBACK && cb_rc == HSM_ERR_UNAVAILABLE ? SAM_REFUSE_UNAVAILABLE : SAM_REFUSE_INTERNAL;
}

int sam_op_stamp(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    stamp_t s = {.cfg = cfg, .req = req, .b = b};
    const uint8_t *digest = NULL;
    size_t len = 0;
    unsigned about = 0;
    uint32_t code = 0;
    const char *why = NULL;
    char serial_hex[33];

    if (sam_get_text(req, SAM_T_CLIENT, s.client, sizeof(s.client)) != SAM_OK)
        s.client[0] = '\0';
    if (cfg->oauth == NULL || cfg->hsm == NULL)
        return refuse(&s, SAM_REFUSE_NOT_OFFERED, 0, "this SAM has no time-stamping unit");
    if (check_caller(&s, &code, &why) != 0)
        return refuse(&s, code, SAM_T_TOKEN, why);
    int md_nid = imprint(req, &digest, &len, &about, &why);
    if (md_nid == 0)
        return refuse(&s, SAM_REFUSE_BAD_MESSAGE, about, why);

    stor_cred_t *tsa = OPENSSL_zalloc(sizeof(*tsa));
    if (tsa == NULL)
        return refuse(&s, SAM_REFUSE_INTERNAL, 0, "out of memory");
    pki_der_t tok;
    pki_der_init(&tok, SAM_TST_MAX);
    /* The clock (clock_check): genTime is the system clock's; no token while it cannot be trusted. The reason (its
     * offset and maxerror) goes to the log, to the refusal's audit record and to the front end. */
    sam_clock_reading_t clk = {0};
    char clock_why[SAM_REASON_MAX + 1];
    if ((code = tsa_load(cfg, tsa)) != SAM_OK) {
        why = code == SAM_REFUSE_NOT_OFFERED ? "no enabled time-stamping unit with a valid certificate"
                                             : "storage is not available";
    } else if (cfg->clock != NULL && sam_clock_check(cfg->clock, &clk, clock_why, sizeof(clock_why)) != 0) {
        fprintf(stderr, "csc-sam: STAMP refused: %s\n", clock_why);
        code = SAM_REFUSE_CLOCK;
        why = clock_why;
    } else if ((code = make_token(&s, tsa, md_nid, digest, len, &tok, serial_hex)) != SAM_OK) {
        why = code == SAM_REFUSE_UNAVAILABLE ? "the HSM is not available" : "the token could not be made";
    }
    if (code == SAM_OK) {
        char clock_note[64] = "";
        if (cfg->clock != NULL)
            snprintf(clock_note, sizeof(clock_note), " clock_offset_us %" PRId64 " maxerror_us %" PRId64,
                     clk.offset_us, clk.maxerror_us);
        audit_init(&s, STOR_RES_OK, tsa->id);
        snprintf(s.rec.detail, sizeof(s.rec.detail), "serial %s hashAlgo %s%s%s", serial_hex,
                 pki_md_oid(md_nid, NULL), sam_msg_count(req, SAM_T_NONCE) > 0 ? " nonce" : "", clock_note);
        s.rec.digest_len = (uint32_t)len;
        s.rec.n_digests = 1;
        s.rec.digests = digest;
        int wrc = stor_write(cfg->stor, append_audit, &s.rec);
        if (wrc != STOR_OK) {
            code = sam_refusal_of_stor(wrc); /* never a token that the log does not know */
            why = "the audit record could not be written";
        }
    }
    OPENSSL_clear_free(tsa, sizeof(*tsa));
    int rc;
    if (code != SAM_OK) {
        rc = refuse(&s, code, 0, why);
    } else {
        rc = sam_build_init(b, SAM_OP_STAMP | SAM_OP_REPLY, req->id);
        sam_put_bytes(b, SAM_T_TST, tok.p, tok.len);
        rc = rc != SAM_OK ? rc : b->err;
    }
    pki_der_free(&tok);
    return rc;
}
