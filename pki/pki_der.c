/*
 * pki_der.c - a small DER writer (X.690) with a hard size limit, the digest and signature AlgorithmIdentifiers
 * this library encodes, and the library's error names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <stdarg.h>
#include <time.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include "pki_int.h"

const char *pki_strerror(int rc)
{
    switch (rc) {
    case PKI_OK: return "ok";
    case PKI_ERR_INVAL: return "invalid input";
    case PKI_ERR_NOMEM: return "out of memory or beyond the size limit";
    case PKI_ERR_INTERNAL: return "internal error";
    case PKI_ERR_CALLBACK: return "the caller's callback failed";
    case PKI_ERR_IO: return "a file or folder cannot be read";
    case PKI_ERR_ANCHORS: return "no trust anchor can be read";
    default: return "unknown error";
    }
}

void pki_err(char *err, size_t err_sz, const char *fmt, ...)
{
    if (err == NULL || err_sz == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_sz, fmt, ap);
    va_end(ap);
}

/* ---- DER writer ------------------------------------------------------------------------------------ */

void pki_der_init(pki_der_t *d, size_t max)
{
    memset(d, 0, sizeof(*d));
    d->max = max;
}

void pki_der_free(pki_der_t *d)
{
    free(d->p);
    memset(d, 0, sizeof(*d));
}

static int der_reserve(pki_der_t *d, size_t more)
{
    if (d->failed)
        return -1;
    if (more > d->max || d->len > d->max - more) {
        d->failed = 1;
        return -1;
    }
    if (d->len + more <= d->cap)
        return 0;
    size_t cap = d->cap ? d->cap : 256;
    while (cap < d->len + more)
        cap *= 2;
    uint8_t *p = realloc(d->p, cap);
    if (p == NULL) {
        d->failed = 1;
        return -1;
    }
    d->p = p;
    d->cap = cap;
    return 0;
}

void pki_der_raw(pki_der_t *d, const void *p, size_t n)
{
    if (n == 0 || der_reserve(d, n) != 0)
        return;
    memcpy(d->p + d->len, p, n);
    d->len += n;
}

size_t pki_int_der_len_bytes(size_t n, uint8_t out[9])
{
    if (n < 0x80) {
        out[0] = (uint8_t)n;
        return 1;
    }
    size_t k = 0;
    for (size_t v = n; v != 0; v >>= 8)
        k++;
    out[0] = (uint8_t)(0x80 | k);
    for (size_t i = 0; i < k; i++)
        out[1 + i] = (uint8_t)(n >> (8 * (k - 1 - i)));
    return 1 + k;
}

void pki_der_close(pki_der_t *d, size_t mark, uint8_t tag)
{
    uint8_t hdr[10];
    if (d->failed || mark > d->len)
        return;
    hdr[0] = tag;
    size_t h = 1 + pki_int_der_len_bytes(d->len - mark, hdr + 1);
    if (der_reserve(d, h) != 0)
        return;
    memmove(d->p + mark + h, d->p + mark, d->len - mark);
    memcpy(d->p + mark, hdr, h);
    d->len += h;
}

void pki_der_tlv(pki_der_t *d, uint8_t tag, const void *p, size_t n)
{
    size_t m = pki_der_mark(d);
    pki_der_raw(d, p, n);
    pki_der_close(d, m, tag);
}

int pki_der_oid(pki_der_t *d, const char *dotted)
{
    uint8_t out[64];
    size_t n = 0;
    unsigned long arcs[32];
    size_t na = 0;
    const char *s = dotted;
    while (*s != '\0' && na < PKI_ARRAY_SIZE(arcs)) {
        char *end;
        if (*s < '0' || *s > '9')
            break;
        arcs[na++] = strtoul(s, &end, 10);
        s = end;
        if (*s == '.')
            s++;
        else
            break;
    }
    if (*s != '\0' || na < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39)) {
        d->failed = 1;
        return PKI_ERR_INVAL;
    }
    arcs[1] += arcs[0] * 40;
    for (size_t i = 1; i < na; i++) {
        uint8_t tmp[10];
        size_t k = 0;
        unsigned long v = arcs[i];
        do {
            tmp[k++] = (uint8_t)(v & 0x7f);
            v >>= 7;
        } while (v != 0);
        if (n + k > sizeof(out)) {
            d->failed = 1;
            return PKI_ERR_INVAL;
        }
        while (k > 0) {
            k--;
            out[n++] = (uint8_t)(tmp[k] | (k > 0 ? 0x80 : 0));
        }
    }
    pki_der_tlv(d, 0x06, out, n);
    return PKI_OK;
}

void pki_der_uint_bytes(pki_der_t *d, const uint8_t *p, size_t n)
{
    while (n > 1 && p[0] == 0) {
        p++;
        n--;
    }
    size_t m = pki_der_mark(d);
    if (n == 0 || (p[0] & 0x80))
        pki_der_raw(d, "\0", 1);
    pki_der_raw(d, p, n);
    pki_der_close(d, m, 0x02);
}

void pki_der_uint(pki_der_t *d, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    pki_der_uint_bytes(d, b, sizeof(b));
}

void pki_der_time(pki_der_t *d, int64_t unix_ms, bool generalized)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    if (!generalized) { /* UTCTime: years 1950..2049 (RFC 5280 4.1.2.5) */
        snprintf(buf, sizeof(buf), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        pki_der_tlv(d, 0x17, buf, strlen(buf));
        return;
    }
    size_t n = strftime(buf, sizeof(buf), "%Y%m%d%H%M%S", &tm);
    unsigned ms = (unsigned)(unix_ms % 1000);
    if (ms != 0) { /* DER: a fraction without trailing zeros, none at all when zero (X.690 11.7) */
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%03u", ms);
        while (buf[n - 1] == '0')
            n--;
    }
    buf[n++] = 'Z';
    pki_der_tlv(d, 0x18, buf, n);
}

/* ---- AlgorithmIdentifiers --------------------------------------------------------------------------- */

#define OID_RSA_PSS "1.2.840.113549.1.1.10"
#define OID_MGF1 "1.2.840.113549.1.1.8"

static const struct {
    int nid;
    const char *oid;
    size_t len;
} mds[] = {
    {NID_sha256, "2.16.840.1.101.3.4.2.1", 32},
    {NID_sha384, "2.16.840.1.101.3.4.2.2", 48},
    {NID_sha512, "2.16.840.1.101.3.4.2.3", 64},
};

const char *pki_md_oid(int md_nid, size_t *len)
{
    for (size_t i = 0; i < PKI_ARRAY_SIZE(mds); i++)
        if (mds[i].nid == md_nid) {
            if (len != NULL)
                *len = mds[i].len;
            return mds[i].oid;
        }
    return NULL;
}

/* AlgorithmIdentifier of a digest; with_null: NULL parameters (inside RSASSA-PSS-params, as OpenSSL writes
 * them), else absent (RFC 5754 3). */
void pki_int_der_md_algor(pki_der_t *d, int nid, bool with_null)
{
    size_t m = pki_der_mark(d);
    const char *oid = pki_md_oid(nid, NULL);
    if (oid == NULL) {
        d->failed = 1;
        return;
    }
    pki_der_oid(d, oid);
    if (with_null)
        pki_der_raw(d, "\x05\x00", 2);
    pki_der_close(d, m, 0x30);
}

static const char *sig_oid(const pki_sig_t *p)
{
    static const struct {
        pki_sig_scheme_t scheme;
        int nid;
        const char *oid;
    } t[] = {
        {PKI_SIG_RSA_PKCS1, NID_sha256, "1.2.840.113549.1.1.11"},
        {PKI_SIG_RSA_PKCS1, NID_sha384, "1.2.840.113549.1.1.12"},
        {PKI_SIG_RSA_PKCS1, NID_sha512, "1.2.840.113549.1.1.13"},
        {PKI_SIG_ECDSA, NID_sha256, "1.2.840.10045.4.3.2"},
        {PKI_SIG_ECDSA, NID_sha384, "1.2.840.10045.4.3.3"},
        {PKI_SIG_ECDSA, NID_sha512, "1.2.840.10045.4.3.4"},
    };
    for (size_t i = 0; i < PKI_ARRAY_SIZE(t); i++)
        if (t[i].scheme == p->scheme && t[i].nid == p->md_nid)
            return t[i].oid;
    return p->scheme == PKI_SIG_RSA_PSS ? OID_RSA_PSS : NULL;
}

void pki_der_sig_algor(pki_der_t *d, const pki_sig_t *p)
{
    const char *oid = sig_oid(p);
    size_t m = pki_der_mark(d);
    if (oid == NULL) {
        d->failed = 1;
        return;
    }
    pki_der_oid(d, oid);
    if (p->scheme == PKI_SIG_RSA_PKCS1) {
        pki_der_raw(d, "\x05\x00", 2);
    } else if (p->scheme == PKI_SIG_RSA_PSS) { /* RSASSA-PSS-params (RFC 8017 A.2.3), defaults omitted */
        size_t pm = pki_der_mark(d);
        size_t e = pki_der_mark(d);
        pki_int_der_md_algor(d, p->md_nid, true);
        pki_der_close(d, e, 0xa0);
        e = pki_der_mark(d);
        size_t mg = pki_der_mark(d);
        pki_der_oid(d, OID_MGF1);
        pki_int_der_md_algor(d, p->mgf1_md_nid, true);
        pki_der_close(d, mg, 0x30);
        pki_der_close(d, e, 0xa1);
        if (p->salt_len != 20) {
            e = pki_der_mark(d);
            pki_der_uint(d, p->salt_len);
            pki_der_close(d, e, 0xa2);
        }
        pki_der_close(d, pm, 0x30);
    }
    pki_der_close(d, m, 0x30);
}

void pki_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

long pki_unhex(const char *s, size_t n, uint8_t *out, size_t outsz)
{
    size_t len = (n + 1) / 2;

    if ((s == NULL && n > 0) || len > outsz || len > LONG_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (hex_digit(s[i]) < 0)
            return -1;
    memset(out, 0, len);
    /* From the last digit back: an odd count leaves the first byte's high nibble zero. */
    for (size_t i = 0; i < n; i++) {
        size_t from_end = n - 1 - i;
        out[len - 1 - from_end / 2] |= (uint8_t)(hex_digit(s[i]) << (from_end % 2 ? 4 : 0));
    }
    return (long)len;
}

/* ---- RSASSA-PSS-params ---- */

/* An AlgorithmIdentifier naming one of the digests this library encodes, with absent or NULL parameters. */
static int algor_md(const X509_ALGOR *a, int *nid)
{
    const ASN1_OBJECT *obj;
    int ptype;
    const void *pval;
    X509_ALGOR_get0(&obj, &ptype, &pval, a);
    if (ptype != V_ASN1_UNDEF && ptype != V_ASN1_NULL)
        return -1;
    *nid = OBJ_obj2nid(obj);
    return pki_md_oid(*nid, NULL) != NULL ? 0 : -1;
}

int pki_pss_params_parse(const uint8_t *der, size_t len, pki_sig_t *out)
{
    const unsigned char *p = der;
    RSA_PSS_PARAMS *pss = d2i_RSA_PSS_PARAMS(NULL, &p, (long)len);
    X509_ALGOR *mgf_md = NULL;
    int rc = PKI_ERR_INVAL;

    if (pss == NULL || p != der + len)
        goto out;
    /* Absent hashAlgorithm / MGF mean SHA-1 (RFC 8017 A.2.3): below the floor. */
    if (pss->hashAlgorithm == NULL || pss->maskGenAlgorithm == NULL)
        goto out;
    if (algor_md(pss->hashAlgorithm, &out->md_nid) != 0)
        goto out;
    /* MGF1's parameter is the AlgorithmIdentifier of its hash (OpenSSL 3.0's d2i leaves it encoded). */
    if (OBJ_obj2nid(pss->maskGenAlgorithm->algorithm) != NID_mgf1 || pss->maskGenAlgorithm->parameter == NULL)
        goto out;
    mgf_md = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(X509_ALGOR), pss->maskGenAlgorithm->parameter);
    if (mgf_md == NULL || algor_md(mgf_md, &out->mgf1_md_nid) != 0)
        goto out;
    long salt = 20;
    if (pss->saltLength != NULL && (salt = ASN1_INTEGER_get(pss->saltLength)) < 0)
        goto out;
    if (salt > 512)
        goto out;
    if (pss->trailerField != NULL && ASN1_INTEGER_get(pss->trailerField) != 1)
        goto out;
    out->scheme = PKI_SIG_RSA_PSS;
    out->salt_len = (unsigned)salt;
    rc = PKI_OK;
out:
    X509_ALGOR_free(mgf_md);
    RSA_PSS_PARAMS_free(pss);
    return rc;
}
