/*
 * csc_signdoc.c - signatures/signDoc (CSC API v2.0.0.2 sec. 11.11, docs/csc-api.md sec. 14): CAdES and PAdES
 * baseline B-B and B-T (EN 319 122-1, EN 319 142-1), built around one HSM signature per document or digest
 * (pki/pki_cms.c, signing through sign_cb).
 *
 * What is signed:
 *   documentDigests, format C  -> a detached CMS over each digest (SignatureObject);
 *   documentDigests, format P  -> the CMS for a PDF byte range, without signing-time (SignatureObject);
 *   documents, format C        -> CMS with the document encapsulated ("Attached", default: DocumentWithSignature)
 *                                 or detached ("Detached": SignatureObject);
 *   documents, format P        -> the PDF must carry a prepared signature dictionary (/ByteRange [0 a b c] and a
 *                                 zero-filled /Contents <00...> placeholder between a and b): the server hashes
 *                                 the two ranges and writes the CMS into the placeholder (DocumentWithSignature).
 *                                 Certification or Revision is the prepared dictionary's business (/Reference
 *                                 DocMDP or not): both are accepted.
 * Authorization as signHash: a SAD or a credential-scope token, budget spent per signature, the decision
 * audited in the same transaction (STOR_EV_SIGN, detail "signDoc <format>/<level>/<envelope> <signAlgo>").
 * The digests bound to a SAD (SCAL 2, or any SAD that carries digests) are the digests of what is signed: the
 * documentDigests hashes as sent, and for documents the digest the server computes, with the signature's hash
 * algorithm, of the whole document (CAdES) or of the two byte ranges (PAdES) - exactly what a client sends as
 * documentDigests for the same document, and what it must have sent to credentials/authorize.
 * One SAD binds one hashAlgorithmOID: all digests of one request share one digest algorithm.
 * operationMode "A" (csc_async.c): everything is checked and the SAD spent (audited) in the request, which answers
 * {"responseID"}; the CMS are built on a job thread and signatures/signPolling returns the synchronous body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include "csc_int.h"

/* csc-sam's signatures (at most SAM_SIG_MAX bytes each) are kept in PKI_SIG_MAX slots for pki/'s callback. */
_Static_assert(PKI_SIG_MAX >= SAM_SIG_MAX, "a slot holds any signature csc-sam makes");

#define SIGNDOC_ENTRIES_MAX 16 /* documents or documentDigests entries in one request */
#define SAD_MAX 512
#define PSS_PARAMS_MAX 256
#define CMS_OVERHEAD_MAX (256 * 1024) /* a CMS beyond its content: certificates, attributes, signature, token */

enum { OUT_DOC = 1, OUT_SIG = 2 };

typedef struct entry {
    char format;               /* 'C' or 'P' */
    bool bt;                   /* Ades-B-T: signature-time-stamp from the built-in TSA */
    bool attached;             /* CAdES with the document encapsulated */
    const char *level;         /* canonical names, for the audit record */
    const char *envelope;
    const csc_sign_alg_t *sa;
    hsm_sign_params_t sig;     /* scheme, digest (the documents'), PSS parameters */
    uint8_t pss[PSS_PARAMS_MAX]; /* their DER, for csc-sam (pss_len 0: none) */
    size_t pss_len;
    size_t group;              /* the first entry with the same signAlgo and parameters: one SIGN to csc-sam each */
    uint8_t *doc;              /* documents: decoded (owned) */
    size_t doc_len;
    size_t gap_start, gap_end; /* PAdES: the placeholder's '<' and '>' */
    size_t first, n;           /* its digests in the request's list */
} entry_t;

typedef struct signdoc {
    entry_t e[SIGNDOC_ENTRIES_MAX];
    size_t n_entries;
    bool documents;            /* documents, not documentDigests */
    const csc_hash_alg_t *alg; /* of every digest */
    uint8_t *dbuf;             /* digests, STOR_DIGEST_LEN_MAX apart */
    uint8_t **dptrs;
    size_t n_digests;
    uint8_t **out;             /* one result per digest */
    size_t *out_len;
    uint8_t *sig;              /* csc-sam's signature of each digest's CMS signed attributes, PKI_SIG_MAX apart */
    size_t *sig_len;
    int64_t *time_ms;          /* the signing time csc-sam put into them */
    uint8_t (*ticket)[SAM_TICKET_LEN]; /* operationMode "A": per group leader, its reservation */
} signdoc_t;

/* ---- members of an entry object ------------------------------------------------------------------------ */

static yajl_val obj_get(yajl_val o, const char *name)
{
    for (size_t i = 0; o != NULL && YAJL_IS_OBJECT(o) && i < o->u.object.len; i++)
        if (strcmp(o->u.object.keys[i], name) == 0)
            return YAJL_IS_NULL(o->u.object.values[i]) ? NULL : o->u.object.values[i];
    return NULL;
}

/* 1 present, 0 absent, -1 wrong type or too long */
static int obj_string(yajl_val o, const char *name, const char **out, size_t max)
{
    yajl_val v = obj_get(o, name);
    *out = NULL;
    if (v == NULL)
        return 0;
    if (!YAJL_IS_STRING(v) || strlen(v->u.string) > max)
        return -1;
    *out = v->u.string;
    return 1;
}

/* signature_format, conformance_level, signed_envelope_property, signed_props */
static int entry_format(csc_req_t *r, yajl_val o, bool documents, entry_t *en)
{
    const char *f, *lvl, *env;
    if (obj_string(o, "signature_format", &f, 8) <= 0)
        return csc_bad(r, "Missing (or invalid type) string parameter signature_format");
    if (strcmp(f, "C") != 0 && strcmp(f, "P") != 0) /* XAdES, JAdES: not offered (info.signature_formats) */
        return csc_bad(r, "Invalid parameter signature_format");
    en->format = f[0];
    int rc = obj_string(o, "conformance_level", &lvl, 16);
    if (rc < 0)
        return csc_bad(r, "Invalid parameter conformance_level");
    /* the spellings vary ("AdES-B-T" in the samples): case-insensitive (docs/csc-api.md sec. 14) */
    if (rc == 0 || strcasecmp(lvl, "Ades-B-B") == 0) {
        en->level = "Ades-B-B";
    } else if (strcasecmp(lvl, "Ades-B-T") == 0 && r->csc->tsa) {
        en->level = "Ades-B-T";
        en->bt = true;
    } else { /* B-LT, B-LTA, the older TS levels, and B-T without a TSA */
        return csc_bad(r, "Invalid parameter conformance_level");
    }
    rc = obj_string(o, "signed_envelope_property", &env, 16);
    if (rc < 0)
        return csc_bad(r, "Invalid parameter signed_envelope_property");
    if (en->format == 'C') {
        /* default Attached; a digest cannot be encapsulated, so documentDigests default to Detached */
        if (rc == 0)
            env = documents ? "Attached" : "Detached";
        if (strcasecmp(env, "Detached") == 0) {
            en->envelope = "Detached";
        } else if (strcasecmp(env, "Attached") == 0 && documents) {
            en->envelope = "Attached";
            en->attached = true;
        } else {
            return csc_bad(r, "Invalid parameter signed_envelope_property");
        }
    } else {
        if (rc == 0 || strcasecmp(env, "Certification") == 0)
            en->envelope = "Certification";
        else if (strcasecmp(env, "Revision") == 0)
            en->envelope = "Revision";
        else
            return csc_bad(r, "Invalid parameter signed_envelope_property");
    }
    yajl_val props = obj_get(o, "signed_props");
    if (props != NULL && (!YAJL_IS_ARRAY(props) || props->u.array.len > 0)) /* none supported yet */
        return csc_bad(r, "Invalid parameter signed_props");
    return 0;
}

/* signAlgo, signAlgoParams, hashAlgorithmOID: the signature scheme and the documents' digest algorithm */
static int entry_algo(csc_req_t *r, yajl_val o, const stor_cred_t *cred, bool documents, entry_t *en)
{
    const char *algo, *params, *hoid;
    if (obj_string(o, "signAlgo", &algo, STOR_OID_MAX) <= 0 || algo[0] == '\0')
        return csc_bad(r, "Missing (or invalid type) string parameter signAlgo");
    const csc_sign_alg_t *sa = csc_sign_alg_by_oid(algo);
    if (sa == NULL || sa->key_type != cred->key_type)
        return csc_bad(r, "Invalid parameter signAlgo");
    en->sa = sa;
    memset(&en->sig, 0, sizeof(en->sig));
    en->sig.scheme = sa->scheme;
    en->sig.md_nid = sa->md_nid;
    if (sa->scheme == HSM_SIG_RSA_PSS) {
        if (obj_string(o, "signAlgoParams", &params, PSS_PARAMS_MAX * 2) <= 0 || params[0] == '\0')
            return csc_bad(r, "Missing (or invalid type) string parameter signAlgoParams");
        long len = csc_b64_decode(params, strlen(params), en->pss, sizeof(en->pss));
        if (len <= 0 || csc_pss_params_parse(en->pss, (size_t)len, &en->sig) != 0)
            return csc_bad(r, "Invalid parameter signAlgoParams");
        en->pss_len = (size_t)len;
    }
    int rc = obj_string(o, "hashAlgorithmOID", &hoid, STOR_OID_MAX);
    if (rc < 0)
        return csc_bad(r, "Invalid parameter hashAlgorithmOID");
    const csc_hash_alg_t *h = rc == 1 ? csc_hash_by_oid(hoid) : NULL;
    if (rc == 1 && h == NULL)
        return csc_bad(r, "Invalid parameter hashAlgorithmOID");
    if (en->sig.md_nid != 0) {
        /* implied by signAlgo (or the PSS parameters): a different hashAlgorithmOID is an error
         * (CSC API v2.0.0.2 sec. 11.11) */
        if (h != NULL && h->nid != en->sig.md_nid)
            return csc_bad(r, "String parameter hashAlgorithmOID contradicts with signAlgo parameter");
    } else if (h != NULL) {
        en->sig.md_nid = h->nid;
    } else if (documents) {
        en->sig.md_nid = NID_sha256; /* rsaEncryption over a document the server hashes */
    } else {
        return csc_bad(r, "Missing (or invalid type) string parameter hashAlgorithmOID");
    }
    return 0;
}

/* ---- PDF ------------------------------------------------------------------------------------------------ */

static const uint8_t *find(const uint8_t *p, size_t len, const char *s)
{
    return memmem(p, len, s, strlen(s));
}

static bool pdf_ws(uint8_t c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\0';
}

static bool pdf_uint(const uint8_t **p, const uint8_t *end, size_t *out)
{
    while (*p < end && pdf_ws(**p))
        (*p)++;
    size_t v = 0, digits = 0;
    while (*p < end && **p >= '0' && **p <= '9' && digits < 15) {
        v = v * 10 + (size_t)(**p - '0');
        (*p)++;
        digits++;
    }
    *out = v;
    return digits > 0 && (*p == end || !(**p >= '0' && **p <= '9'));
}

/* The prepared signature: /ByteRange [0 a b c] covering the file but the gap [a, b), which holds
 * /Contents <000...>. The last one that fits is the one to fill (earlier ones belong to earlier revisions). */
int csc_pdf_placeholder(const uint8_t *pdf, size_t len, size_t *gap_start, size_t *gap_end)
{
    int found = 0;
    const uint8_t *p = pdf, *end = pdf + len, *hit;
    while ((hit = find(p, (size_t)(end - p), "/ByteRange")) != NULL) {
        p = hit + 10;
        const uint8_t *q = p;
        size_t r[4];
        while (q < end && pdf_ws(*q))
            q++;
        if (q == end || *q != '[')
            continue;
        q++;
        bool ok = true;
        for (int i = 0; i < 4 && ok; i++)
            ok = pdf_uint(&q, end, &r[i]);
        while (ok && q < end && pdf_ws(*q))
            q++;
        if (!ok || q == end || *q != ']')
            continue;
        if (r[0] != 0 || r[1] == 0 || r[2] < r[1] + 4 || r[2] > len || r[3] != len - r[2])
            continue;
        if (pdf[r[1]] != '<' || pdf[r[2] - 1] != '>')
            continue;
        for (size_t i = r[1] + 1; i < r[2] - 1 && ok; i++)
            ok = pdf[i] == '0';
        /* the gap is the value of /Contents */
        size_t k = r[1];
        while (k > 0 && pdf_ws(pdf[k - 1]))
            k--;
        if (!ok || k < 9 || memcmp(pdf + k - 9, "/Contents", 9) != 0)
            continue;
        *gap_start = r[1];
        *gap_end = r[2] - 1;
        found = 1;
    }
    return found ? 0 : -1;
}

/* ---- parsing the request -------------------------------------------------------------------------------- */

static int add_digest(csc_req_t *r, signdoc_t *sd, const entry_t *en, const uint8_t *d, size_t len)
{
    const csc_hash_alg_t *alg = csc_hash_by_nid(en->sig.md_nid);
    if (sd->alg != NULL && sd->alg != alg)
        return csc_bad(r, "All documents of one request must use the same digest algorithm (one hashAlgorithmOID per SAD)");
    sd->alg = alg;
    if (sd->n_digests >= r->csc->cfg.max_hashes)
        return csc_bad(r, "Too many hashes in one request");
    if (len != alg->len)
        return csc_bad(r, "Invalid digest value length");
    sd->dptrs[sd->n_digests] = sd->dbuf + sd->n_digests * STOR_DIGEST_LEN_MAX;
    memcpy(sd->dptrs[sd->n_digests], d, len);
    sd->n_digests++;
    return 0;
}

static int parse_digest_entry(csc_req_t *r, signdoc_t *sd, yajl_val o, entry_t *en)
{
    yajl_val hs = obj_get(o, "hashes");
    uint8_t tmp[STOR_DIGEST_LEN_MAX + 3];
    /* the samples send one string: a one-element array */
    if (hs == NULL || !(YAJL_IS_STRING(hs) || (YAJL_IS_ARRAY(hs) && hs->u.array.len > 0)))
        return csc_bad(r, "Invalid object parameter documentDigests");
    size_t n = YAJL_IS_STRING(hs) ? 1 : hs->u.array.len;
    en->first = sd->n_digests;
    for (size_t i = 0; i < n; i++) {
        yajl_val h = YAJL_IS_STRING(hs) ? hs : hs->u.array.values[i];
        long len = YAJL_IS_STRING(h) && strlen(h->u.string) <= 4 * sizeof(tmp) / 3
                       ? csc_b64_decode(h->u.string, strlen(h->u.string), tmp, sizeof(tmp))
                       : -1;
        if (len <= 0)
            return csc_bad(r, "Invalid Base64 hashes string parameter");
        if (add_digest(r, sd, en, tmp, (size_t)len) != 0)
            return -1;
    }
    en->n = n;
    return 0;
}

static int parse_document_entry(csc_req_t *r, signdoc_t *sd, yajl_val o, entry_t *en)
{
    const char *b64;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdl = 0;
    if (obj_string(o, "document", &b64, r->csc->cfg.max_body) <= 0 || b64[0] == '\0')
        return csc_bad(r, "Invalid Base64 documents string parameter");
    size_t n = strlen(b64);
    en->doc = malloc(n / 4 * 3 + 3);
    if (en->doc == NULL)
        return csc_fail(r, 503, "temporarily_unavailable", "Out of memory");
    long len = csc_b64_decode(b64, n, en->doc, n / 4 * 3 + 3);
    if (len <= 0)
        return csc_bad(r, "Invalid Base64 documents string parameter");
    en->doc_len = (size_t)len;
    const EVP_MD *emd = EVP_get_digestbynid(en->sig.md_nid);
    if (en->format == 'C') {
        if (!EVP_Digest(en->doc, en->doc_len, md, &mdl, emd, NULL))
            return csc_unavailable(r);
    } else {
        if (csc_pdf_placeholder(en->doc, en->doc_len, &en->gap_start, &en->gap_end) != 0)
            return csc_bad(r, "Invalid PDF document: no prepared signature (/ByteRange [0 a b c] around a "
                              "zero-filled /Contents <00...> placeholder)");
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int ok = ctx != NULL && EVP_DigestInit_ex(ctx, emd, NULL) &&
                 EVP_DigestUpdate(ctx, en->doc, en->gap_start) &&
                 EVP_DigestUpdate(ctx, en->doc + en->gap_end + 1, en->doc_len - en->gap_end - 1) &&
                 EVP_DigestFinal_ex(ctx, md, &mdl);
        EVP_MD_CTX_free(ctx);
        if (!ok)
            return csc_unavailable(r);
    }
    en->first = sd->n_digests;
    en->n = 1;
    return add_digest(r, sd, en, md, mdl);
}

static int parse_entries(csc_req_t *r, signdoc_t *sd, const stor_cred_t *cred)
{
    yajl_val dd = csc_get_value(r, "documentDigests"), docs = csc_get_value(r, "documents");
    if (dd != NULL && docs != NULL)
        return csc_bad(r, "Both documentDigests and documents parameters passed");
    if (dd != NULL && !YAJL_IS_ARRAY(dd) && !YAJL_IS_OBJECT(dd))
        return csc_bad(r, "Invalid object parameter documentDigests");
    if (docs != NULL && !YAJL_IS_ARRAY(docs))
        return csc_bad(r, "Invalid array parameter documents");
    yajl_val list = dd != NULL ? dd : docs;
    /* the samples send one documentDigests object: a one-element array */
    size_t n = list == NULL ? 0 : YAJL_IS_OBJECT(list) ? 1 : list->u.array.len;
    if (n == 0)
        return csc_bad(r, "Empty documentDigests and documents objects");
    if (n > SIGNDOC_ENTRIES_MAX)
        return csc_bad(r, "Too many documents in one request");
    sd->documents = docs != NULL;
    sd->n_entries = n;
    sd->dbuf = malloc((size_t)r->csc->cfg.max_hashes * STOR_DIGEST_LEN_MAX);
    sd->dptrs = calloc(r->csc->cfg.max_hashes, sizeof(*sd->dptrs));
    if (sd->dbuf == NULL || sd->dptrs == NULL)
        return csc_fail(r, 503, "temporarily_unavailable", "Out of memory");
    for (size_t i = 0; i < n; i++) {
        yajl_val o = YAJL_IS_OBJECT(list) ? list : list->u.array.values[i];
        entry_t *en = &sd->e[i];
        if (!YAJL_IS_OBJECT(o))
            return csc_bad(r, sd->documents ? "Invalid array parameter documents"
                                            : "Invalid object parameter documentDigests");
        if (entry_format(r, o, sd->documents, en) != 0 || entry_algo(r, o, cred, sd->documents, en) != 0)
            return -1;
        if ((sd->documents ? parse_document_entry(r, sd, o, en) : parse_digest_entry(r, sd, o, en)) != 0)
            return -1;
        for (en->group = 0; en->group < i; en->group++) {
            const entry_t *g = &sd->e[en->group];
            if (g->sa == en->sa && g->pss_len == en->pss_len && memcmp(g->pss, en->pss, en->pss_len) == 0)
                break;
        }
    }
    return 0;
}

/* ---- signing -------------------------------------------------------------------------------------------- */

/* Who signs: the service, the credential, and for the B-T audit record the user and client address (csc-sam finds
 * the user from the caller's access token, token). Built from the request (synchronous) or from the job's copies
 * (operationMode "A"). */
typedef struct signer {
    csc_t *c;
    const stor_cred_t *cred;
    const char *user;
    const char *client;
    const char *token;
    const signdoc_t *sd;
    size_t k;                  /* the digest being signed */
} signer_t;

static int fail(csc_err_t *err, int status, const char *error, const char *description)
{
    err->status = status;
    err->error = error;
    err->description = description;
    return -1;
}

static int sign_cb(void *arg, const pki_sig_t *p, const uint8_t *digest, size_t len, uint8_t *sig,
                   size_t *sig_len)
{
    signer_t *s = arg;
    (void)p;
    (void)digest;
    (void)len;
    /* csc-sam signed the same signed attributes already (built from the same digest, certificate and time). */
    size_t n = s->sd->sig_len[s->k];
    if (n == 0 || n > PKI_SIG_MAX)
        return HSM_ERR_INTERNAL;
    memcpy(sig, s->sd->sig + s->k * PKI_SIG_MAX, n);
    *sig_len = n;
    return HSM_OK;
}

/* B-T: a token from the built-in TSA over the signature value (EN 319 122-1 5.3), SHA-256 imprint */
static int tst_cb(void *arg, const uint8_t *sig, size_t sig_len, uint8_t **tok, size_t *tok_len)
{
    signer_t *s = arg;
    uint8_t md[32];
    pki_der_t d;
    if (!EVP_Digest(sig, sig_len, md, NULL, EVP_sha256(), NULL))
        return HSM_ERR_INTERNAL;
    csc_err_t err;
    pki_der_init(&d, SAM_TST_MAX);
    int rc = csc_tsa_stamp(s->c, s->token, s->cred->id, NID_sha256, md, sizeof(md), NULL, 0, s->client, &d, &err);
    if (rc != HSM_OK) {
        pki_der_free(&d);
        return rc == HSM_ERR_NOKEY ? HSM_ERR_UNAVAILABLE : rc;
    }
    *tok = d.p;
    *tok_len = d.len;
    return HSM_OK;
}

int csc_pdf_fill(uint8_t *pdf, size_t gap_start, size_t gap_end, const uint8_t *der, size_t len)
{
    static const char digits[] = "0123456789ABCDEF";
    if (len > (gap_end - gap_start - 1) / 2)
        return -1;
    uint8_t *out = pdf + gap_start + 1;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = (uint8_t)digits[der[i] >> 4];
        out[2 * i + 1] = (uint8_t)digits[der[i] & 15];
    }
    return 0;
}

/* Build every CMS around csc-sam's signatures; PAdES documents get theirs written into the placeholder. -1 with
 * err set and why. */
static int sign_all(signer_t *s, signdoc_t *sd, csc_err_t *err, const char **why)
{
    const stor_cred_t *cred = s->cred;
    s->sd = sd;
    sd->out = calloc(sd->n_digests, sizeof(*sd->out));
    sd->out_len = calloc(sd->n_digests, sizeof(*sd->out_len));
    if (sd->out == NULL || sd->out_len == NULL) {
        *why = "out of memory";
        return fail(err, 503, "temporarily_unavailable", "Out of memory");
    }
    for (size_t i = 0; i < sd->n_entries; i++) {
        entry_t *en = &sd->e[i];
        for (size_t k = en->first; k < en->first + en->n; k++) {
            pki_cms_in_t in = {.certs = cred->certs, .certs_len = cred->certs_len, .digest = sd->dptrs[k],
                               .digest_len = sd->alg->len, .sig = csc_pki_sig(&en->sig),
                               /* PAdES B-B SHALL NOT carry signing-time (EN 319 142-1 5.3): /M has it */
                               .signing_time_ms = en->format == 'C' ? sd->time_ms[k] : 0};
            if (en->attached) {
                in.content = en->doc;
                in.content_len = en->doc_len;
            }
            pki_der_t d;
            pki_der_init(&d, en->doc_len + CMS_OVERHEAD_MAX);
            int cb_rc = HSM_OK;
            s->k = k;
            int rc = csc_pki_hsm_rc(pki_cms_sign(&in, sign_cb, en->bt ? tst_cb : NULL, (void *)s, &d, &cb_rc), cb_rc);
            if (rc != HSM_OK) {
                pki_der_free(&d);
                *why = hsm_strerror(rc);
                return csc_err_hsm(err, rc);
            }
            if (en->format == 'P' && sd->documents) {
                int fits = csc_pdf_fill(en->doc, en->gap_start, en->gap_end, d.p, d.len) == 0;
                pki_der_free(&d);
                if (!fits) {
                    *why = "signature larger than the PDF placeholder";
                    return fail(err, 400, "invalid_request",
                                "The signature does not fit into the /Contents placeholder of the PDF");
                }
                continue;
            }
            sd->out[k] = d.p;
            sd->out_len[k] = d.len;
        }
    }
    return 0;
}

static void reply(yajl_gen g, const signdoc_t *sd)
{
    bool any_doc = false, any_sig = false;
    for (size_t i = 0; i < sd->n_entries; i++) {
        bool doc = sd->documents && (sd->e[i].attached || sd->e[i].format == 'P');
        any_doc |= doc;
        any_sig |= !doc;
    }
    yajl_gen_map_open(g);
    if (any_doc) {
        csc_gen_str(g, "DocumentWithSignature");
        yajl_gen_array_open(g);
        for (size_t i = 0; i < sd->n_entries; i++) {
            const entry_t *en = &sd->e[i];
            if (!sd->documents)
                continue;
            if (en->format == 'P')
                csc_gen_b64(g, en->doc, en->doc_len);
            else if (en->attached)
                csc_gen_b64(g, sd->out[en->first], sd->out_len[en->first]);
        }
        yajl_gen_array_close(g);
    }
    if (any_sig) {
        csc_gen_str(g, "SignatureObject");
        yajl_gen_array_open(g);
        for (size_t i = 0; i < sd->n_entries; i++) {
            const entry_t *en = &sd->e[i];
            if (sd->documents && (en->attached || en->format == 'P'))
                continue;
            for (size_t k = en->first; k < en->first + en->n; k++)
                csc_gen_b64(g, sd->out[k], sd->out_len[k]);
        }
        yajl_gen_array_close(g);
    }
    yajl_gen_map_close(g);
}

static void signdoc_free(signdoc_t *sd)
{
    for (size_t i = 0; i < sd->n_entries; i++)
        free(sd->e[i].doc);
    for (size_t k = 0; sd->out != NULL && k < sd->n_digests; k++)
        free(sd->out[k]);
    free(sd->out);
    free(sd->out_len);
    free(sd->sig);
    free(sd->sig_len);
    free(sd->time_ms);
    free(sd->ticket);
    free(sd->dbuf);
    free(sd->dptrs);
}

/* The SAD rows of csc_req.c, but a digest the SAD does not cover names documents: with documents the server
 * computed the digest itself, so it is the document that does not match (403 invalid_hash). */
static const csc_err_row_t *sad_rows(bool documents)
{
    static const csc_err_row_t of_documents[] = {
        {OAUTH_ERR_NOT_AUTHORIZED, 403, "invalid_hash", "Document or documentDigest does not match authroized hash", 0},
        {0, 0, NULL, NULL, 0}};
    static const csc_err_row_t of_digests[] = {
        {OAUTH_ERR_NOT_AUTHORIZED, 400, "invalid_request", "documentDigests or documents are not authorized by the SAD.",
         0},
        {0, 0, NULL, NULL, 0}};
    return documents ? of_documents : of_digests;
}

static int top_params(csc_req_t *r, const char **id, const char **qualifier, const char **sad, bool *async)
{
    const char *mode, *s;
    bool b;
    if (csc_get_string(r, "credentialID", id, STOR_NAME_MAX * 4) < 0)
        return csc_bad(r, "Missing (or invalid type) string parameter credentialID");
    if (csc_get_string(r, "signatureQualifier", qualifier, 64) < 0)
        return csc_bad(r, "Invalid parameter signatureQualifier");
    if (*id == NULL && *qualifier != NULL && r->principal.scope == STOR_SCOPE_CREDENTIAL)
        *id = r->principal.cred; /* the qualifier's credential is the token's (CSC API v2.0.0.2 sec. 8.4) */
    if (*id == NULL || (*id)[0] == '\0')
        return csc_bad(r, "Missing (or invalid type) string parameter credentialID");
    if (csc_get_string(r, "SAD", sad, SAD_MAX) < 0)
        return csc_bad(r, "Missing (or invalid type) string parameter SAD");
    if (csc_get_string(r, "operationMode", &mode, 8) < 0 || (mode != NULL && strcmp(mode, "S") != 0 &&
                                                              strcmp(mode, "A") != 0))
        return csc_bad(r, "Invalid parameter operationMode");
    *async = mode != NULL && strcmp(mode, "A") == 0; /* validity_period, response_uri only count with "A" */
    if (csc_get_string(r, "clientData", &s, 4096) < 0)
        return csc_bad(r, "Invalid parameter clientData");
    /* validationInfo is only due for PAdES B-LT, which is not offered (info.validationInfo false) */
    if (csc_get_bool(r, "returnValidationInfo", &b) < 0 || csc_get_bool(r, "returnValidationInformation", &b) < 0)
        return csc_bad(r, "Invalid parameter returnValidationInfo");
    return 0;
}

/* ---- csc-sam signs: one SIGN per group of entries with the same signAlgo and parameters ---------------------- */

/* The signatures (and signing time) of reply for group g's digests, in their order. -1: a reply that does not fit. */
static int take_signatures(signdoc_t *sd, size_t g, const sam_msg_t *reply)
{
    sam_iter_t it;
    const uint8_t *sig;
    size_t len;
    uint64_t t = 0;
    (void)sam_get_u64(reply, SAM_T_TIME_MS, &t);
    sam_iter_init(reply, SAM_T_SIGNATURE, &it);
    for (size_t i = 0; i < sd->n_entries; i++) {
        const entry_t *en = &sd->e[i];
        for (size_t k = en->first; en->group == g && k < en->first + en->n; k++) {
            if (!sam_iter_next(&it, &sig, &len) || len > PKI_SIG_MAX)
                return -1;
            memcpy(sd->sig + k * PKI_SIG_MAX, sig, len);
            sd->sig_len[k] = len;
            sd->time_ms[k] = (int64_t)t;
        }
    }
    return sam_iter_next(&it, &sig, &len) ? -1 : 0;
}

/* SIGN for every group: csc-sam checks, spends the SAD (audited with detail) and signs the CMS signed attributes it
 * builds over each bound digest, or with async_ttl reserves them (sd->ticket per group). A later group's refusal
 * leaves the earlier groups' signatures spent: one SIGN carries one signature algorithm. */
static int sam_sign_groups(csc_req_t *r, signdoc_t *sd, const stor_cred_t *cred, const char *sad, const char *detail,
                           uint32_t async_ttl)
{
    const uint8_t **ptrs = malloc(sd->n_digests * sizeof(*ptrs));
    uint8_t *cms = malloc(sd->n_digests);
    int rc = 0;
    sd->sig = malloc(sd->n_digests * PKI_SIG_MAX);
    sd->sig_len = calloc(sd->n_digests, sizeof(*sd->sig_len));
    sd->time_ms = calloc(sd->n_digests, sizeof(*sd->time_ms));
    sd->ticket = async_ttl > 0 ? calloc(sd->n_entries, sizeof(*sd->ticket)) : NULL;
    if (ptrs == NULL || cms == NULL || sd->sig == NULL || sd->sig_len == NULL || sd->time_ms == NULL ||
        (async_ttl > 0 && sd->ticket == NULL)) {
        rc = csc_fail(r, 503, "temporarily_unavailable", "Out of memory");
        goto out;
    }
    for (size_t g = 0; g < sd->n_entries && rc == 0; g++) {
        if (sd->e[g].group != g)
            continue;
        size_t n = 0;
        for (size_t i = g; i < sd->n_entries; i++)
            for (size_t k = sd->e[i].first; sd->e[i].group == g && k < sd->e[i].first + sd->e[i].n; k++) {
                ptrs[n] = sd->dptrs[k];
                cms[n++] = sd->e[i].format == 'C' ? SAM_CMS_SIGNING_TIME : SAM_CMS_NO_TIME;
            }
        csc_sign_in_t in = {.cred = cred, .alg = sd->alg, .digests = ptrs, .n = n, .sad = sad,
                            .sign_alg = sd->e[g].sa->oid, .pss = sd->e[g].pss, .pss_len = sd->e[g].pss_len,
                            .detail = detail, .cms = cms, .async_ttl = async_ttl};
        csc_sam_call_t call;
        if (csc_sam_sign(r, &in, sad_rows(sd->documents), &call) != 0) {
            rc = -1;
            break;
        }
        const uint8_t *t;
        size_t tlen = 0;
        if (async_ttl > 0 && sam_get_bytes(&call.reply, SAM_T_TICKET, &t, &tlen) == SAM_OK && tlen == SAM_TICKET_LEN)
            memcpy(sd->ticket[g], t, SAM_TICKET_LEN);
        else if (async_ttl > 0 || take_signatures(sd, g, &call.reply) != 0)
            rc = csc_unavailable(r);
        csc_sam_end(&call);
    }
out:
    free(ptrs);
    free(cms);
    return rc;
}

/* ---- operationMode "A": csc-sam reserved the signatures; a job thread has them made and builds the CMS -------- */

typedef struct doc_job {
    signdoc_t *sd;                     /* owned (moved from the request) */
    stor_cred_t cred;                  /* a copy: the certificates to build with */
    char token[SAM_TOKEN_MAX + 1];     /* the caller's access token: csc-sam's STAMP of a B-T signature wants it */
    char user[STOR_NAME_MAX + 1];
    char client[64];
} doc_job_t;

static int doc_job_run(csc_t *c, void *arg, yajl_gen out, csc_err_t *err)
{
    doc_job_t *j = arg;
    signdoc_t *sd = j->sd;
    const char *why = NULL;
    for (size_t g = 0; g < sd->n_entries; g++) {
        if (sd->e[g].group != g)
            continue;
        csc_sam_call_t call;
        if (csc_sam_reserved(c, sd->ticket[g], NULL, &call, err) != 0)
            return -1;
        int bad = take_signatures(sd, g, &call.reply);
        csc_sam_end(&call);
        memset(sd->ticket[g], 0, SAM_TICKET_LEN); /* used */
        if (bad) {
            err->status = 503;
            err->error = "temporarily_unavailable";
            err->description = "The service is temporarily unavailable";
            return -1;
        }
    }
    signer_t s = {.c = c, .cred = &j->cred, .user = j->user, .client = j->client, .token = j->token};
    if (sign_all(&s, sd, err, &why) != 0)
        return -1;
    reply(out, sd);
    return 0;
}

/* The job will not run: csc-sam gives the reserved signatures back to the SAD, with sign-result records. */
static void doc_job_abort(csc_t *c, void *arg, const char *reason)
{
    doc_job_t *j = arg;
    static const uint8_t none[SAM_TICKET_LEN];
    for (size_t g = 0; g < j->sd->n_entries; g++) {
        csc_sam_call_t call;
        csc_err_t err;
        if (j->sd->e[g].group != g || memcmp(j->sd->ticket[g], none, SAM_TICKET_LEN) == 0)
            continue;
        if (csc_sam_reserved(c, j->sd->ticket[g], reason, &call, &err) == 0)
            csc_sam_end(&call);
    }
}

static void doc_job_free(void *arg)
{
    doc_job_t *j = arg;
    signdoc_free(j->sd);
    free(j->sd);
    OPENSSL_cleanse(j, sizeof(*j));
    free(j);
}

/* PAdES documents: the placeholder must hold the largest CMS this signature can become (the credential's chain, the
 * longest signature its key makes, the signed attributes, a B-T token from this TSA as long as it can be). Checked
 * before the SAD is spent and anything is signed or audited: a too-small placeholder costs the client nothing and
 * leaves no record, and retrying it can never sign. */
static int placeholders_fit(csc_req_t *r, const signdoc_t *sd, const stor_cred_t *cred)
{
    size_t tst_max = 0;
    bool have_tst = false;
    for (size_t i = 0; i < sd->n_entries; i++) {
        const entry_t *en = &sd->e[i];
        if (en->format != 'P' || !sd->documents)
            continue;
        if (en->bt && !have_tst) {
            int rc = csc_tsa_token_max(r->csc, &tst_max);
            if (rc != HSM_OK)
                return rc == HSM_ERR_NOKEY || rc == HSM_ERR_UNAVAILABLE ? csc_unavailable(r)
                                                                        : csc_fail(r, 500, "server_error",
                                                                                   "The signature size could not be estimated");
            have_tst = true;
        }
        pki_cms_in_t in = {.certs = cred->certs, .certs_len = cred->certs_len, .digest = sd->dptrs[en->first],
                           .digest_len = sd->alg->len, .sig = csc_pki_sig(&en->sig)};
        size_t need = 0, room = en->gap_end - en->gap_start - 1;
        int rc = csc_pki_hsm_rc(pki_cms_size_max(&in, en->bt ? tst_max : 0, CMS_OVERHEAD_MAX, &need), HSM_OK);
        if (rc != HSM_OK)
            return csc_fail(r, 500, "server_error", "The signature size could not be estimated");
        if (2 * need > room)
            return csc_bad(r, "The signature does not fit into the /Contents placeholder of the PDF");
    }
    return 0;
}

int csc_m_sign_doc(csc_req_t *r)
{
    const char *id = NULL, *qualifier = NULL, *sad = NULL, *why = NULL;
    stor_cred_t *cred = NULL;
    signdoc_t *sd = NULL;
    bool async = false;
    csc_async_opts_t ao;
    int rc = -1;

    if (top_params(r, &id, &qualifier, &sad, &async) != 0)
        return -1;
    if (async && (csc_async_params(r, &ao) != 0 || csc_async_reserve(r) != 0))
        return -1;
    if ((sd = calloc(1, sizeof(*sd))) == NULL || (cred = stor_rec_new(sizeof(*cred))) == NULL) {
        csc_fail(r, 503, "temporarily_unavailable", "Out of memory");
        goto out;
    }
    if (csc_load_cred(r, id, cred) != 0)
        goto out;
    if (qualifier != NULL && strcmp(qualifier, cred->qualifier) != 0) {
        csc_bad(r, "Invalid parameter signatureQualifier");
        goto out;
    }
    if (parse_entries(r, sd, cred) != 0)
        goto out;
    if ((sad == NULL || sad[0] == '\0') && r->principal.scope == STOR_SCOPE_CREDENTIAL)
        sad = csc_bearer_value(r); /* oauth2code: the credential-scope token is the authorization */
    if (sad == NULL || sad[0] == '\0') {
        csc_bad(r, "Missing (or invalid type) string parameter SAD");
        goto out;
    }
    if (csc_check_signable(r, cred) != 0 || placeholders_fit(r, sd, cred) != 0)
        goto out;

    char detail[200];
    size_t dl = (size_t)snprintf(detail, sizeof(detail), "signDoc");
    for (size_t i = 0; i < sd->n_entries && dl < sizeof(detail); i++)
        dl += (size_t)snprintf(detail + dl, sizeof(detail) - dl, "%s %c/%s/%s %s", i ? ";" : "", sd->e[i].format,
                               sd->e[i].level, sd->e[i].envelope, sd->e[i].sa->oid);
    if (sam_sign_groups(r, sd, cred, sad, detail, async ? csc_async_reserve_ttl(&ao) : 0) != 0) {
        if (async && sd->ticket != NULL) { /* the groups reserved before the refusal go back */
            doc_job_t gone = {.sd = sd};
            doc_job_abort(r->csc, &gone, "a later part of the request was refused");
        }
        goto out;
    }
    if (async) {
        /* Accepted: csc-sam spent the SAD and wrote the STOR_EV_SIGN records; the job has the signatures made. */
        doc_job_t *j = calloc(1, sizeof(*j));
        async = false; /* the queue's reservation passes to the job */
        if (j == NULL) {
            doc_job_t gone = {.sd = sd};
            doc_job_abort(r->csc, &gone, "out of memory");
            csc_async_unreserve(r->csc);
            csc_unavailable(r);
            goto out;
        }
        j->sd = sd;
        sd = NULL; /* moved */
        memcpy(&j->cred, cred, sizeof(j->cred));
        const char *token = csc_bearer_value(r);
        snprintf(j->token, sizeof(j->token), "%s", token != NULL ? token : "");
        snprintf(j->user, sizeof(j->user), "%s", r->principal.user);
        snprintf(j->client, sizeof(j->client), "%s", r->call->client ? r->call->client : "");
        csc_async_job_t job = {doc_job_run, doc_job_abort, doc_job_free, j};
        rc = csc_async_submit(r, &ao, cred->id, &job);
        goto out;
    }
    signer_t s = {.c = r->csc, .cred = cred, .user = r->principal.user, .client = r->call->client,
                  .token = csc_bearer_value(r)};
    if (sign_all(&s, sd, &r->err, &why) != 0) {
        /* csc-sam made the signatures and spent the SAD: nothing is returned, and nothing can be given back (the
         * front end is not trusted to say it threw a signature away) */
        fprintf(stderr, "csc: signDoc could not be completed after signing: %s\n", why != NULL ? why : "?");
        goto out;
    }
    reply(r->gen, sd);
    rc = 0;
out:
    if (async)
        csc_async_unreserve(r->csc);
    if (sd != NULL) {
        signdoc_free(sd);
        free(sd);
    }
    stor_rec_free(cred, sizeof(*cred));
    return rc;
}
