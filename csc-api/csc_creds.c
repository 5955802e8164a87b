/* csc_creds.c - credentials/list, credentials/info, credentials/authorize (CSC API v2.0.0.2 sec. 11.4 to 11.6). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include "csc_int.h"

#define CERTS_MAX 8
#define AUTHDATA_MAX 8
#define AUTHVALUE_MAX 256

static void gen_time(yajl_gen g, const char *key, const ASN1_TIME *t)
{
    struct tm tm;
    char buf[32];
    if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, sizeof(buf), "%Y%m%d%H%M%SZ", &tm) == 0)
        return;
    csc_gen_kv(g, key, buf);
}

static void gen_cert(csc_req_t *r, X509 **certs, size_t n, const char *which, bool cert_info, const char *status)
{
    yajl_gen g = r->gen;
    char dn[1024];

    csc_gen_str(g, "cert");
    yajl_gen_map_open(g);
    csc_gen_kv(g, "status", status);
    if (strcmp(which, "none") != 0 && n > 0) {
        size_t count = strcmp(which, "chain") == 0 ? n : 1;
        csc_gen_str(g, "certificates");
        yajl_gen_array_open(g);
        for (size_t i = 0; i < count; i++) {
            unsigned char *der = NULL;
            int len = i2d_X509(certs[i], &der);
            if (len > 0)
                csc_gen_b64(g, der, (size_t)len);
            OPENSSL_free(der);
        }
        yajl_gen_array_close(g);
    }
    if (cert_info && n > 0) {
        if (pki_dn(X509_get_issuer_name(certs[0]), dn, sizeof(dn)) == 0)
            csc_gen_kv(g, "issuerDN", dn);
        if (pki_dn(X509_get_subject_name(certs[0]), dn, sizeof(dn)) == 0)
            csc_gen_kv(g, "subjectDN", dn);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(certs[0]), NULL);
        char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
        if (hex != NULL)
            csc_gen_kv(g, "serialNumber", hex);
        OPENSSL_free(hex);
        BN_free(bn);
        gen_time(g, "validFrom", X509_get0_notBefore(certs[0]));
        gen_time(g, "validTo", X509_get0_notAfter(certs[0]));
    }
    yajl_gen_map_close(g);
}

static bool expr_names(const char *expr, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = strstr(expr, id); p != NULL; p = strstr(p + 1, id)) {
        bool start = p == expr || p[-1] == ' ' || p[-1] == '(';
        bool end = p[n] == '\0' || p[n] == ' ' || p[n] == ')';
        if (start && end)
            return true;
    }
    return false;
}

/* v1.0.4.0: authMode always; the PIN and OTP objects (presence true|false|optional) only when the client asked
 * with authInfo true (its default is false), like the v2 auth group. */
static void gen_auth_v1(csc_req_t *r, const stor_cred_t *cred, bool auth_info)
{
    yajl_gen g = r->gen;
    bool pin = expr_names(cred->auth_expr, "PIN"), online = expr_names(cred->auth_expr, OAUTH_CHALLENGE_ID);
    bool otp = expr_names(cred->auth_expr, "OTP") || online;
    const char *both = strstr(cred->auth_expr, " OR ") != NULL ? "optional" : "true";
    csc_gen_kv(g, "authMode", cred->auth_mode == STOR_AUTH_EXPLICIT ? "explicit" : "oauth2code");
    if (cred->auth_mode != STOR_AUTH_EXPLICIT || !auth_info)
        return;
    csc_gen_str(g, "PIN");
    yajl_gen_map_open(g);
    csc_gen_kv(g, "presence", !pin ? "false" : otp ? both : "true");
    if (pin) {
        csc_gen_kv(g, "format", "N");
        csc_gen_kv(g, "label", "PIN");
        csc_gen_kv(g, "description", "The PIN of this credential");
    }
    yajl_gen_map_close(g);
    csc_gen_str(g, "OTP");
    yajl_gen_map_open(g);
    csc_gen_kv(g, "presence", !otp ? "false" : pin ? both : "true");
    if (online) {
        /* v1 online OTP: sent by credentials/sendOTP, passed back as "OTP" (docs/csc-api.md sec. 7.1, 17). */
        csc_gen_kv(g, "type", "online");
        csc_gen_kv(g, "format", "N");
        csc_gen_kv(g, "label", "OTP");
        csc_gen_kv(g, "description", "The one-time code sent to you after credentials/sendOTP");
        csc_gen_kv(g, "ID", "oob");
    } else if (otp) {
        csc_gen_kv(g, "type", "offline");
        csc_gen_kv(g, "format", "N");
        csc_gen_kv(g, "label", "OTP");
        csc_gen_kv(g, "description", "The 6-digit code of your authenticator app (TOTP)");
        csc_gen_kv(g, "ID", "totp");
    }
    yajl_gen_map_close(g);
}

/* The v2 authInfo objects (CSC API v2.0.0.2 sec. 8.3.1), in this order, each listed when the credential's expression
 * names it. */
typedef struct auth_object {
    const char *id, *type, *format, *generator, *label, *description;
} auth_object_t;

static const auth_object_t auth_objects[] = {
    {"PIN", "Password", "N", NULL, "PIN", "The PIN of this credential"},
    {"OTP", "Password", "N", "totp", "OTP", "The 6-digit code of your authenticator app (TOTP)"},
    /* CSC API v2.0.0.2 sec. 8.3.1.5: the code is sent out of band after credentials/getChallenge (answer 204). */
    {OAUTH_CHALLENGE_ID, "ChallengeResponse", "N", "oob", "One-time code",
     "The one-time code sent to you after credentials/getChallenge"},
    /* CSC API v2.0.0.2 sec. 8.3.1.4: collected out of band (the user approves on the service's page, /approve):
     * authorize answers 202 + handle, credentials/authorizeCheck gives the SAD once approved. */
    {OAUTH_APPROVAL_ID, "PasswordOOB", NULL, "web", "Approval",
     "Approve the request on the service's approval page (/approve)"},
};

static void gen_auth(csc_req_t *r, const stor_cred_t *cred, bool auth_info)
{
    yajl_gen g = r->gen;
    bool explicit_mode = cred->auth_mode == STOR_AUTH_EXPLICIT;

    csc_gen_str(g, "auth");
    yajl_gen_map_open(g);
    csc_gen_kv(g, "mode", explicit_mode ? "explicit" : "oauth2code");
    if (auth_info && explicit_mode) {
        csc_gen_kv(g, "expression", cred->auth_expr);
        csc_gen_str(g, "objects");
        yajl_gen_array_open(g);
        for (size_t i = 0; i < CSC_ARRAY_SIZE(auth_objects); i++) {
            const auth_object_t *o = &auth_objects[i];
            if (!expr_names(cred->auth_expr, o->id))
                continue;
            yajl_gen_map_open(g);
            csc_gen_kv(g, "type", o->type);
            csc_gen_kv(g, "id", o->id);
            if (o->format != NULL)
                csc_gen_kv(g, "format", o->format);
            if (o->generator != NULL)
                csc_gen_kv(g, "generator", o->generator);
            csc_gen_kv(g, "label", o->label);
            csc_gen_kv(g, "description", o->description);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
    }
    yajl_gen_map_close(g);
}

/* Usable for signing now: enabled, inside its certificate's validity, and not revoked or suspended (J9). */
static bool cred_usable(csc_req_t *r, const stor_cred_t *cred)
{
    bool usable;
    (void)csc_cred_cert_status_now(r->csc, cred, time(NULL), &usable);
    return usable;
}

int csc_gen_cred_info(csc_req_t *r, const stor_cred_t *cred, const char *certificates, bool cert_info, bool auth_info)
{
    yajl_gen g = r->gen;
    X509 *certs[CERTS_MAX];
    size_t n = 0;
    const csc_sign_alg_t *algs[16];

    if (pki_certs_load(cred->certs, cred->certs_len, certs, CERTS_MAX, &n) != PKI_OK)
        return csc_fail(r, 500, "server_error", "The credential's certificate cannot be read");
    bool usable;
    const char *cert_status = csc_cred_cert_status_now(r->csc, cred, time(NULL), &usable);

    if (cred->description[0] != '\0')
        csc_gen_kv(g, "description", cred->description);
    if (cred->qualifier[0] != '\0')
        csc_gen_kv(g, "signatureQualifier", cred->qualifier);
    csc_gen_str(g, "key");
    yajl_gen_map_open(g);
    csc_gen_kv(g, "status", usable ? "enabled" : "disabled");
    csc_gen_str(g, "algo");
    yajl_gen_array_open(g);
    size_t na = csc_sign_algs_for_key(cred->key_type, algs, CSC_ARRAY_SIZE(algs));
    for (size_t i = 0; i < na; i++)
        csc_gen_str(g, algs[i]->oid);
    yajl_gen_array_close(g);
    csc_gen_kint(g, "len", cred->key_bits);
    if (cred->key_type == STOR_KEY_EC)
        csc_gen_kv(g, "curve", cred->key_curve);
    yajl_gen_map_close(g);
    gen_cert(r, certs, n, certificates, cert_info, cert_status);
    if (r->v1)
        gen_auth_v1(r, cred, auth_info);
    else
        gen_auth(r, cred, auth_info);
    csc_gen_kv(g, "SCAL", cred->scal == 2 ? "2" : "1");
    csc_gen_kint(g, "multisign", cred->multisign);
    csc_gen_kv(g, "lang", r->csc->cfg.lang);
    pki_certs_free(certs, n);
    return 0;
}

typedef struct info_opts {
    const char *certificates;
    bool cert_info;
    bool auth_info;
} info_opts_t;

static int parse_info_opts(csc_req_t *r, info_opts_t *o)
{
    o->certificates = "single";
    o->cert_info = o->auth_info = false;
    const char *c;
    if (csc_get_string(r, "certificates", &c, 16) < 0)
        return csc_bad(r, "Invalid parameter certificates");
    if (c != NULL) {
        if (strcmp(c, "none") != 0 && strcmp(c, "single") != 0 && strcmp(c, "chain") != 0)
            return csc_bad(r, "Invalid parameter certificates");
        o->certificates = c;
    }
    if (csc_get_bool(r, "certInfo", &o->cert_info) < 0)
        return csc_bad(r, "Invalid parameter certInfo");
    if (csc_get_bool(r, "authInfo", &o->auth_info) < 0)
        return csc_bad(r, "Invalid parameter authInfo");
    const char *s;
    if (csc_get_string(r, "lang", &s, 64) < 0)
        return csc_bad(r, "Invalid parameter lang");
    if (csc_get_string(r, "clientData", &s, 4096) < 0)
        return csc_bad(r, "Invalid parameter clientData");
    return 0;
}

int csc_m_cred_info(csc_req_t *r)
{
    const char *id;
    info_opts_t o;
    stor_cred_t *cred = NULL;
    int rc = -1;

    if (csc_req_string(r, "credentialID", &id, STOR_NAME_MAX * 4,
                       "Missing (or invalid type) string parameter credentialID") < 0)
        return -1;
    if (parse_info_opts(r, &o) != 0)
        return -1;
    if ((cred = stor_rec_new(sizeof(*cred))) == NULL)
        return csc_fail(r, 503, "temporarily_unavailable", "Out of memory");
    if (csc_load_cred(r, id, cred) != 0)
        goto out;
    yajl_gen_map_open(r->gen);
    if (csc_gen_cred_info(r, cred, o.certificates, o.cert_info, o.auth_info) != 0)
        goto out;
    yajl_gen_map_close(r->gen);
    rc = 0;
out:
    stor_rec_free(cred, sizeof(*cred));
    return rc;
}

/* ---- credentials/list ------------------------------------------------------- */

typedef struct list_ctx {
    const char *owner;
    char (*ids)[STOR_NAME_MAX + 1];
    size_t n, cap;
} list_ctx_t;

static int collect_id(const stor_cred_t *c, void *arg)
{
    list_ctx_t *l = arg;
    if (c->status == STOR_CRED_PENDING)
        return 0; /* waits for its certificate: not the client's yet (v1 and v2 lists) */
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *p = realloc(l->ids, cap * sizeof(*l->ids));
        if (p == NULL)
            return STOR_ERR_NOMEM;
        l->ids = p;
        l->cap = cap;
    }
    memcpy(l->ids[l->n++], c->id, sizeof(c->id));
    return 0;
}

typedef struct delegated {
    stor_txn_t *t;
    list_ctx_t *l;
    stor_cred_t *cred;
} delegated_t;

/* A credential delegated to the user (J1): listed while its record still names the user as a delegate. */
static int collect_delegated(const char *id, void *arg)
{
    delegated_t *d = arg;
    int rc = stor_txn_cred_get(d->t, id, d->cred);
    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    return stor_cred_delegate(d->cred, d->l->owner) >= 0 ? collect_id(d->cred, d->l) : 0;
}

static int collect_ids(stor_txn_t *t, void *arg)
{
    list_ctx_t *l = arg;
    delegated_t d = {.t = t, .l = l};
    int rc = stor_txn_cred_each(t, l->owner, collect_id, l);
    if (rc != 0)
        return rc;
    if ((d.cred = stor_rec_new(sizeof(*d.cred))) == NULL)
        return STOR_ERR_NOMEM;
    rc = stor_txn_delegation_each(t, l->owner, collect_delegated, &d);
    stor_rec_free(d.cred, sizeof(*d.cred));
    return rc;
}

/* Emit one entry of credentialIDs or credentialInfos; skipped (1) when onlyValid filters it out. */
static int list_entry(csc_req_t *r, const stor_cred_t *cred, const info_opts_t *o, bool with_info, bool only_valid)
{
    if (only_valid && !cred_usable(r, cred))
        return 1;
    if (!with_info) {
        csc_gen_str(r->gen, cred->id);
        return 0;
    }
    yajl_gen_map_open(r->gen);
    csc_gen_kv(r->gen, "credentialID", cred->id);
    if (csc_gen_cred_info(r, cred, o->certificates, o->cert_info, o->auth_info) != 0)
        return -1;
    yajl_gen_map_close(r->gen);
    return 0;
}

/* v1.0.4.0 paging: maxResults, and pageToken = the decimal offset we handed out as nextPageToken. */
static int list_v1(csc_req_t *r, const list_ctx_t *l)
{
    unsigned long max = 0, off = 0;
    const char *tok;
    if (csc_get_uint(r, "maxResults", &max) < 0 || (csc_get_value(r, "maxResults") != NULL && max < 1))
        return csc_bad(r, "Invalid parameter maxResults");
    if (csc_get_string(r, "pageToken", &tok, 16) < 0)
        return csc_bad(r, "Invalid parameter pageToken");
    if (tok != NULL) {
        char *end;
        off = strtoul(tok, &end, 10);
        if (*tok < '0' || *tok > '9' || *end != '\0' || off > l->n)
            return csc_bad(r, "Invalid parameter pageToken");
    }
    size_t stop = max > 0 && off + max < l->n ? off + max : l->n;
    yajl_gen g = r->gen;
    yajl_gen_map_open(g);
    csc_gen_str(g, "credentialIDs");
    yajl_gen_array_open(g);
    for (size_t i = off; i < stop; i++)
        csc_gen_str(g, l->ids[i]);
    yajl_gen_array_close(g);
    if (stop < l->n) {
        char next[24];
        snprintf(next, sizeof(next), "%zu", stop);
        csc_gen_kv(g, "nextPageToken", next);
    }
    yajl_gen_map_close(g);
    return 0;
}

int csc_m_cred_list(csc_req_t *r)
{
    info_opts_t o;
    bool with_info = false, only_valid = false;
    yajl_val uid = csc_get_value(r, "userID");
    list_ctx_t l = {.owner = r->principal.user};
    stor_cred_t *cred = NULL;
    int rc = -1;

    /* User-specific service authorization: the user is the token's (CSC API v2.0.0.2 sec. 11.4). */
    if (uid != NULL)
        return csc_bad(r, YAJL_IS_STRING(uid) ? "userID parameter MUST be null" : "Invalid parameter userID");
    if (csc_get_bool(r, "credentialInfo", &with_info) < 0)
        return csc_bad(r, "Invalid parameter credentialInfo");
    if (csc_get_bool(r, "onlyValid", &only_valid) < 0)
        return csc_bad(r, "Invalid parameter onlyValid");
    if (parse_info_opts(r, &o) != 0)
        return -1;
    int src = stor_read(r->csc->stor, collect_ids, &l);
    if (src != STOR_OK || (cred = stor_rec_new(sizeof(*cred))) == NULL) {
        csc_unavailable_stor(r, src);
        goto out;
    }

    if (r->v1) {
        rc = list_v1(r, &l);
        goto out;
    }
    /* Two passes over the same snapshot of ids: credentialIDs, then credentialInfos. */
    yajl_gen g = r->gen;
    yajl_gen_map_open(g);
    for (int pass = 0; pass < (with_info ? 2 : 1); pass++) {
        csc_gen_str(g, pass == 0 ? "credentialIDs" : "credentialInfos");
        yajl_gen_array_open(g);
        for (size_t i = 0; i < l.n; i++) {
            int grc = stor_cred_get(r->csc->stor, l.ids[i], cred);
            if (grc == STOR_ERR_NOTFOUND ||
                (grc == STOR_OK && strcmp(cred->owner, l.owner) != 0 && stor_cred_delegate(cred, l.owner) < 0))
                continue; /* deleted (or the delegation removed) since the snapshot */
            if (grc != STOR_OK) {
                csc_unavailable_stor(r, grc);
                goto out;
            }
            if (list_entry(r, cred, &o, pass == 1, only_valid) < 0)
                goto out;
        }
        yajl_gen_array_close(g);
    }
    if (only_valid)
        csc_gen_kbool(g, "onlyValid", true);
    yajl_gen_map_close(g);
    rc = 0;
out:
    free(l.ids);
    stor_rec_free(cred, sizeof(*cred));
    return rc;
}

/* ---- credentials/authorize ------------------------------------------------------ */

/* The hashes a new SAD is bound to; SCAL 2 credentials need them (CSC API v2.0.0.2 sec. 11.6, 11.9). */
static int scal_hashes(csc_req_t *r, const stor_cred_t *cred, csc_hashes_t *hs)
{
    if (csc_parse_hashes(r, hs, NULL) != 0)
        return -1;
    if (hs->n == 0 && cred->scal == 2)
        return csc_bad(r, r->v1 ? "Missing (or invalid type) array parameter hash"
                                : "Missing (or invalid type) array parameter hashes");
    return 0;
}

/* {"SAD", "expiresIn"}, then the SAD is wiped from the caller's buffer. */
static int sad_reply(csc_req_t *r, char sad[OAUTH_TOKEN_BUFLEN], unsigned expires_in)
{
    yajl_gen_map_open(r->gen);
    csc_gen_kv(r->gen, "SAD", sad);
    csc_gen_kint(r->gen, "expiresIn", expires_in);
    yajl_gen_map_close(r->gen);
    OPENSSL_cleanse(sad, OAUTH_TOKEN_BUFLEN);
    return 0;
}

/* authData (v2) or top-level PIN / OTP (v1 clients on the v2 path). */
static int parse_factors(csc_req_t *r, oauth_factors_t *f)
{
    memset(f, 0, sizeof(*f));
    yajl_val ad = csc_get_value(r, "authData");
    if (ad != NULL) {
        if (!YAJL_IS_ARRAY(ad) || ad->u.array.len > AUTHDATA_MAX)
            return csc_bad(r, "Invalid parameter authData");
        for (size_t i = 0; i < ad->u.array.len; i++) {
            yajl_val o = ad->u.array.values[i];
            const char *idp[] = {"id", NULL}, *valp[] = {"value", NULL};
            yajl_val id = YAJL_IS_OBJECT(o) ? yajl_tree_get(o, idp, yajl_t_string) : NULL;
            yajl_val val = YAJL_IS_OBJECT(o) ? yajl_tree_get(o, valp, yajl_t_string) : NULL;
            if (id == NULL || val == NULL || strlen(val->u.string) > AUTHVALUE_MAX)
                return csc_bad(r, "Invalid parameter authData");
            const char **slot = strcmp(id->u.string, "PIN") == 0                  ? &f->pin
                                : strcmp(id->u.string, "OTP") == 0                ? &f->otp
                                : strcmp(id->u.string, OAUTH_CHALLENGE_ID) == 0 ? &f->challenge
                                                                                  : NULL;
            if (slot == NULL || *slot != NULL)
                return csc_bad(r, "Invalid parameter authData");
            *slot = val->u.string;
        }
    }
    const char *pin, *otp;
    if (csc_get_string(r, "PIN", &pin, AUTHVALUE_MAX) < 0 || (pin != NULL && f->pin != NULL))
        return csc_bad(r, "Invalid parameter PIN");
    if (csc_get_string(r, "OTP", &otp, AUTHVALUE_MAX) < 0 || (otp != NULL && f->otp != NULL))
        return csc_bad(r, "Invalid parameter OTP");
    if (pin != NULL)
        f->pin = pin;
    if (otp != NULL)
        f->otp = otp;
    f->pin_len = f->pin != NULL ? strlen(f->pin) : 0;
    f->otp_len = f->otp != NULL ? strlen(f->otp) : 0;
    f->challenge_len = f->challenge != NULL ? strlen(f->challenge) : 0;
    return 0;
}

/* v1 clients send an online OTP (the code of sendOTP) as "OTP": for a credential whose expression has the
 * CHALLENGE object and no TOTP, that value is the one-time code. */
static void route_online_otp(const stor_cred_t *cred, oauth_factors_t *f)
{
    if (f->otp != NULL && f->challenge == NULL && expr_names(cred->auth_expr, OAUTH_CHALLENGE_ID) &&
        !expr_names(cred->auth_expr, "OTP")) {
        f->challenge = f->otp;
        f->challenge_len = f->otp_len;
        f->otp = NULL;
        f->otp_len = 0;
    }
}

/* credentials/authorizeCheck (CSC API v2.0.0.2 sec. 11.7): 202 {"handle"} while pending, then the SAD, once.
 * csc-sam keeps the pending approvals and answers for the user of the caller's token. */
int csc_m_authorize_check(csc_req_t *r)
{
    const char *handle;
    char sad[OAUTH_TOKEN_BUFLEN];
    uint32_t expires_in = 0;
    csc_sam_call_t call;

    if (csc_req_string(r, "handle", &handle, 256, "Missing (or invalid type) string parameter handle") < 0)
        return -1;
    if (handle[0] == '\0')
        return csc_fail_oauth(r, CSC_ABOUT_HANDLE, OAUTH_ERR_INVALID, NULL);
    if (csc_sam_begin(r->csc, &call, SAM_OP_AUTHORIZE_CHECK, &r->err) != 0)
        return -1;
    csc_sam_put_token(r, &call);
    csc_sam_put_client(r, &call);
    sam_put_str(&call.b, SAM_T_HANDLE, handle);
    if (csc_sam_run(r->csc, &call, CSC_ABOUT_HANDLE, NULL, &r->err) != 0) {
        csc_sam_end(&call);
        return -1;
    }
    int rc = 0;
    if (sam_msg_count(&call.reply, SAM_T_PENDING) > 0) {
        r->status = 202;
        yajl_gen_map_open(r->gen);
        csc_gen_kv(r->gen, "handle", handle);
        yajl_gen_map_close(r->gen);
    } else if (sam_get_text(&call.reply, SAM_T_SAD, sad, sizeof(sad)) == SAM_OK) {
        (void)sam_get_u32(&call.reply, SAM_T_EXPIRES_IN, &expires_in);
        rc = sad_reply(r, sad, expires_in);
    } else {
        rc = csc_unavailable(r);
    }
    csc_sam_end(&call);
    return rc;
}

int csc_m_authorize(csc_req_t *r)
{
    const char *id, *desc, *s;
    unsigned long num = 0;
    stor_cred_t *cred = NULL;
    csc_hashes_t hs = {0};
    oauth_factors_t f;
    int rc = -1;

    if (csc_req_string(r, "credentialID", &id, STOR_NAME_MAX * 4,
                       "Missing (or invalid type) string parameter credentialID") < 0)
        return -1;
    if (csc_get_uint(r, "numSignatures", &num) <= 0)
        return csc_bad(r, "Missing (or invalid type) integer parameter numSignatures");
    if (num < 1)
        return csc_bad(r, "Invalid value for parameter numSignatures");
    if (csc_get_string(r, "description", &desc, 500) < 0)
        return csc_bad(r, "Invalid parameter description");
    if (csc_get_string(r, "clientData", &s, 4096) < 0)
        return csc_bad(r, "Invalid parameter clientData");
    if (parse_factors(r, &f) != 0)
        return -1;
    if ((cred = stor_rec_new(sizeof(*cred))) == NULL)
        return csc_fail(r, 503, "temporarily_unavailable", "Out of memory");
    if (csc_load_cred(r, id, cred) != 0)
        goto out;
    if (cred->auth_mode != STOR_AUTH_EXPLICIT) {
        csc_bad(r, "The credential is authorized through OAuth 2.0 (auth mode oauth2code)");
        goto out;
    }
    if (cred->status != STOR_CRED_ENABLED || stor_cred_pin_unset(cred, r->principal.user)) { /* PIN unset: as disabled */
        csc_bad(r, "The credential identified by credentialID is disabled");
        goto out;
    }
    if (csc_check_policy(r, cred) != 0)
        goto out;
    if (num > cred->multisign) {
        csc_bad(r, "Numbers of signatures is too high");
        goto out;
    }
    if (scal_hashes(r, cred, &hs) != 0)
        goto out;
    route_online_otp(cred, &f);
    if (hs.n > num) {
        csc_bad(r, "Invalid value for parameter numSignatures");
        goto out;
    }
    bool approval = expr_names(cred->auth_expr, OAUTH_APPROVAL_ID);
    if (approval && r->v1) {
        csc_bad(r, "This credential is authorized on the approval page (CSC v2 credentials/authorizeCheck)");
        goto out;
    }
    /* The credential rows of csc_req.c, with what only credentials/authorize answers: wrong authentication data
     * (v1.0.4.0 names the factor: invalid_otp when only an OTP or challenge code was sent, else invalid_pin;
     * "PIN locked") and too many secret checks at once (Retry-After). A user, owner or credential that is not
     * active (OAUTH_ERR_DISABLED) takes the table's row: 400 "The credential identified by credentialID is
     * disabled" (docs/csc-api.md sec. 8; v1.0.4.0 the same). csc-sam verifies the factors and answers them as
     * refusals that csc_req.c reads back as these codes. */
    static const csc_err_row_t authorize_v2[] = {
        {OAUTH_ERR_DENIED, 400, "invalid_authentication_data", "The authentication data is invalid", 0},
        {OAUTH_ERR_BUSY, CSC_BUSY_ROW},
        {0, 0, NULL, NULL, 0}};
    static const csc_err_row_t authorize_v1_pin[] = {
        {OAUTH_ERR_DENIED, 400, "invalid_pin", "The PIN is invalid", 0},
        {OAUTH_ERR_LOCKED, 400, "invalid_request", "PIN locked", 0},
        {OAUTH_ERR_BUSY, CSC_BUSY_ROW},
        {0, 0, NULL, NULL, 0}};
    static const csc_err_row_t authorize_v1_otp[] = {
        {OAUTH_ERR_DENIED, 400, "invalid_otp", "The OTP is invalid", 0},
        {OAUTH_ERR_LOCKED, 400, "invalid_request", "PIN locked", 0},
        {OAUTH_ERR_BUSY, CSC_BUSY_ROW},
        {0, 0, NULL, NULL, 0}};
    csc_sam_call_t call;
    if (csc_sam_begin(r->csc, &call, SAM_OP_AUTHORIZE, &r->err) != 0)
        goto out;
    csc_sam_put_token(r, &call);
    sam_put_str(&call.b, SAM_T_CRED, cred->id);
    sam_put_u32(&call.b, SAM_T_NUM_SIGNATURES, (uint32_t)num);
    csc_sam_put_hashes(&call, hs.alg, (const uint8_t *const *)hs.ptrs, hs.n);
    /* The factors as the client sent them (an approval's are collected on the page, never from the client). */
    if (!approval && f.pin != NULL)
        sam_put_text(&call.b, SAM_T_PIN, f.pin, f.pin_len);
    if (!approval && f.otp != NULL)
        sam_put_text(&call.b, SAM_T_OTP, f.otp, f.otp_len);
    if (!approval && f.challenge != NULL)
        sam_put_text(&call.b, SAM_T_CHALLENGE, f.challenge, f.challenge_len);
    csc_sam_put_client(r, &call);
    csc_sam_put_request_id(r, &call); /* the last tag (tags ascend) */
    if (csc_sam_run(r->csc, &call, CSC_ABOUT_CREDENTIAL,
                    !r->v1                                                       ? authorize_v2
                    : f.pin == NULL && (f.otp != NULL || f.challenge != NULL) ? authorize_v1_otp
                                                                                : authorize_v1_pin,
                    &r->err) != 0) {
        csc_sam_end(&call);
        goto out;
    }
    char sad[OAUTH_TOKEN_BUFLEN];
    uint32_t expires_in = 0;
    (void)sam_get_u32(&call.reply, SAM_T_EXPIRES_IN, &expires_in);
    if (sam_get_text(&call.reply, SAM_T_HANDLE, sad, sizeof(sad)) == SAM_OK) {
        /* A credential that needs the user's approval on the service's page: 202 {"handle"} (CSC API v2.0.0.2
         * sec. 11.6). */
        r->status = 202;
        yajl_gen_map_open(r->gen);
        csc_gen_kv(r->gen, "handle", sad);
        yajl_gen_map_close(r->gen);
        OPENSSL_cleanse(sad, sizeof(sad));
        rc = 0;
    } else if (sam_get_text(&call.reply, SAM_T_SAD, sad, sizeof(sad)) == SAM_OK) {
        rc = sad_reply(r, sad, expires_in);
    } else {
        csc_unavailable(r);
    }
    csc_sam_end(&call);
out:
    csc_hashes_free(&hs);
    stor_rec_free(cred, sizeof(*cred));
    return rc;
}

/* ---- credentials/extendTransaction (CSC API v2.0.0.2 sec. 11.9) ---------------------- */

int csc_m_extend(csc_req_t *r)
{
    const char *id, *sad, *s;
    stor_cred_t *cred = NULL;
    csc_hashes_t hs = {0};
    int rc = -1;

    if (csc_req_string(r, "credentialID", &id, STOR_NAME_MAX * 4,
                       "Missing (or invalid type) string parameter credentialID") < 0)
        return -1;
    if (csc_req_string(r, "SAD", &sad, 512, "Missing (or invalid type) string parameter SAD") < 0)
        return -1;
    if (csc_get_string(r, "clientData", &s, 4096) < 0)
        return csc_bad(r, "Invalid parameter clientData");
    if ((cred = stor_rec_new(sizeof(*cred))) == NULL)
        return csc_fail(r, 503, "temporarily_unavailable", "Out of memory");
    if (csc_load_cred(r, id, cred) != 0)
        goto out;
    if (cred->status != STOR_CRED_ENABLED) {
        csc_bad(r, "The credential identified by credentialID is disabled");
        goto out;
    }
    if (scal_hashes(r, cred, &hs) != 0)
        goto out;
    /* The SAD rows of csc_req.c (NOT_AUTHORIZED: a digest the SAD was not bound to, or one already signed; new
     * digests need credentials/authorize), except that extending asks for no signature ("any more", not "that
     * many more") and a malformed SAD (OAUTH_ERR_INVAL) is an invalid SAD parameter, not a 503. */
    static const csc_err_row_t extend[] = {
        {OAUTH_ERR_EXHAUSTED, 400, "invalid_request", "The SAD does not authorize any more signatures", 0},
        {OAUTH_ERR_INVAL, 400, "invalid_request", "Invalid parameter SAD", 0},
        {0, 0, NULL, NULL, 0}};
    if (sad[0] == '\0') {
        csc_fail_oauth(r, CSC_ABOUT_SAD, OAUTH_ERR_INVALID, extend);
        goto out;
    }
    csc_sam_call_t call;
    if (csc_sam_begin(r->csc, &call, SAM_OP_EXTEND, &r->err) != 0)
        goto out;
    csc_sam_put_token(r, &call);
    sam_put_str(&call.b, SAM_T_CRED, cred->id);
    csc_sam_put_hashes(&call, hs.alg, (const uint8_t *const *)hs.ptrs, hs.n);
    csc_sam_put_client(r, &call);
    sam_put_str(&call.b, SAM_T_SAD, sad);
    char fresh[OAUTH_TOKEN_BUFLEN];
    uint32_t expires_in = 0;
    if (csc_sam_run(r->csc, &call, CSC_ABOUT_SAD, extend, &r->err) != 0 ||
        sam_get_text(&call.reply, SAM_T_SAD, fresh, sizeof(fresh)) != SAM_OK ||
        sam_get_u32(&call.reply, SAM_T_EXPIRES_IN, &expires_in) != SAM_OK) {
        if (call.reply.op == (SAM_OP_EXTEND | SAM_OP_REPLY))
            csc_unavailable(r);
        csc_sam_end(&call);
        goto out;
    }
    csc_sam_end(&call);
    rc = sad_reply(r, fresh, expires_in);
out:
    csc_hashes_free(&hs);
    stor_rec_free(cred, sizeof(*cred));
    return rc;
}
