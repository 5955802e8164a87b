/*
 * pki.h - the public-key infrastructure pieces this server builds with OpenSSL alone: a DER writer, the
 * CMS SignedData (RFC 5652) used for CAdES/PAdES signatures, RFC 3161 time-stamp tokens, certificate checks, a
 * store of certificate revocation lists, PKCS#10 requests and the demo CA's issuing.
 *
 * The library knows nothing of the CSC API, of users, credentials, the HSM or storage: a private key never
 * exists in-process, so every signature is asked of a callback (pki_sign_fn) that the caller wires to its
 * signing device. Dependencies point one way: csc-api -> pki, never back.
 *
 * Error convention
 * ----------------
 * Functions returning int return PKI_OK (0) or a negative PKI_ERR_* code; pki_strerror() names one. The
 * callbacks the caller supplies return 0 for success and any non-zero value of the caller's own convention:
 * the library then stops, returns PKI_ERR_CALLBACK and hands that value back through an `int *cb_rc` argument
 * (may be NULL), so a caller keeps its own error codes across the library. Functions marked PKI_MUST_CHECK
 * (warn_unused_result) have a result that must be looked at.
 *
 * Thread safety: every function works only on its arguments and keeps no global state; a pki_crl_t may be read
 * (pki_crl_check, pki_crl_count) by any number of threads while it reloads, a pki_x509_cache_t by any number at once.
 */
#ifndef PKI_H
#define PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <openssl/x509.h>

#define PKI_MUST_CHECK __attribute__((warn_unused_result))

/** Result codes: PKI_OK or one of the negative PKI_ERR_* values. */
enum {
    PKI_OK = 0,
    PKI_ERR_INVAL = -1,    /**< bad input: unparsable certificate, unknown digest, wrong digest length, bad OID */
    PKI_ERR_NOMEM = -2,    /**< out of memory, or the output would exceed its buffer's maximum */
    PKI_ERR_INTERNAL = -3, /**< OpenSSL failed where it should not */
    PKI_ERR_CALLBACK = -4, /**< a caller's callback returned non-zero (its value in *cb_rc) */
    PKI_ERR_IO = -5,       /**< a file or folder cannot be read */
    PKI_ERR_ANCHORS = -6,  /**< the trust anchors file cannot be read or holds no certificate */
};

/*
 * Functions that can say more take `char *err, size_t err_sz`: on failure err receives a one-line English
 * message without a trailing newline (err may be NULL). Nothing secret is ever written there.
 */

/** A static English name of a PKI_* code ("unknown error" for anything else). */
const char *pki_strerror(int rc);

/** Lower-case hex of in[0..n) into out, which holds 2n + 1 bytes (NUL-terminated). */
void pki_hex(const uint8_t *in, size_t n, char *out);
/**
 * The one hex decoder: the n hex digits at s (either case) into out, as a big-endian number (an odd n reads as if it
 * had a leading 0). @return the number of bytes written, (n + 1) / 2, or -1 if a character is not a hex digit or out
 * (outsz bytes) is too small (then out is unchanged).
 */
long pki_unhex(const char *s, size_t n, uint8_t *out, size_t outsz);

/* ---- DER writer --------------------------------------------------------------------------------------- */

/**
 * A growing DER buffer with a hard maximum. Elements are written content first: take a mark, write the
 * content, then close the mark with a tag (the header is inserted there). Any failure (size, memory, bad
 * OID) sets failed and makes every later call a no-op, so a sequence of writes is checked once at the end.
 * p is malloc'd: a caller may take it over (and set p to NULL) instead of calling pki_der_free().
 */
typedef struct pki_der {
    uint8_t *p;
    size_t len, cap, max;
    int failed;
} pki_der_t;

/** An empty buffer that never grows beyond max bytes. */
void pki_der_init(pki_der_t *d, size_t max);
/** Free the buffer and zero d (an initialized d only). */
void pki_der_free(pki_der_t *d);
/** The position to close later with pki_der_close(). */
static inline size_t pki_der_mark(const pki_der_t *d) { return d->len; }
/** Wrap everything written since mark into one element with tag. */
void pki_der_close(pki_der_t *d, size_t mark, uint8_t tag);
/** Append n bytes as they are (already DER). */
void pki_der_raw(pki_der_t *d, const void *p, size_t n);
/** One element: tag, length, the n bytes of p. */
void pki_der_tlv(pki_der_t *d, uint8_t tag, const void *p, size_t n);
/** An OBJECT IDENTIFIER from dotted text. @return PKI_OK or PKI_ERR_INVAL (not a valid OID; d failed). */
int pki_der_oid(pki_der_t *d, const char *dotted);
/** An INTEGER of an unsigned value. */
void pki_der_uint(pki_der_t *d, uint64_t v);
/** An INTEGER of an unsigned big-endian number of n bytes (leading zeros dropped, a 0 prepended if needed). */
void pki_der_uint_bytes(pki_der_t *d, const uint8_t *p, size_t n);
/** UTCTime (generalized false, years 1950..2049) or GeneralizedTime with milliseconds when non-zero. */
void pki_der_time(pki_der_t *d, int64_t unix_ms, bool generalized);

/* ---- signature schemes --------------------------------------------------------------------------------- */

typedef enum {
    PKI_SIG_RSA_PKCS1 = 1, /**< RSASSA-PKCS1-v1_5 */
    PKI_SIG_RSA_PSS = 2,   /**< RSASSA-PSS */
    PKI_SIG_ECDSA = 3,     /**< ECDSA, the signature a DER Ecdsa-Sig-Value */
} pki_sig_scheme_t;

/** How a signature is made: scheme and the digest signed (NID_sha256/384/512); PSS also MGF1 digest, salt. */
typedef struct pki_sig {
    pki_sig_scheme_t scheme;
    int md_nid;
    int mgf1_md_nid;   /**< PSS only */
    unsigned salt_len; /**< PSS only */
} pki_sig_t;

/** Largest signature a pki_sign_fn may return (RSA-4096 or DER ECDSA P-521). */
#define PKI_SIG_MAX 1024

/** The OID (dotted) of a digest this library encodes, NULL for any other; *len its size when non-NULL. */
const char *pki_md_oid(int md_nid, size_t *len);
/** DER RSASSA-PSS-params (RFC 8017 A.2.3) into out (scheme PSS, md_nid, mgf1_md_nid, salt_len): digests of this
 *  library only (SHA-256 and up: absent hash or MGF, meaning SHA-1, is refused), MGF1, salt <= 512, trailer 1.
 *  @return PKI_OK or PKI_ERR_INVAL (malformed, trailing bytes, or weaker) */
PKI_MUST_CHECK int pki_pss_params_parse(const uint8_t *der, size_t len, pki_sig_t *out);
/** The signatureAlgorithm AlgorithmIdentifier of a scheme (d fails for a combination it cannot name). */
void pki_der_sig_algor(pki_der_t *d, const pki_sig_t *sig);

/**
 * Sign digest (len bytes, of sig->md_nid) into out (PKI_SIG_MAX bytes), setting *out_len.
 * @return 0, or non-zero in the caller's own convention (passed back through cb_rc).
 */
typedef int (*pki_sign_fn)(void *arg, const pki_sig_t *sig, const uint8_t *digest, size_t len, uint8_t *out,
                           size_t *out_len);
/**
 * A time-stamp token over a signature value, malloc'd into *tok (the library frees it).
 * @return 0, or non-zero in the caller's own convention (passed back through cb_rc).
 */
typedef int (*pki_tst_fn)(void *arg, const uint8_t *sig, size_t sig_len, uint8_t **tok, size_t *tok_len);

/* ---- CMS SignedData (CAdES / PAdES baseline B-B and B-T, RFC 3161 tokens) ------------------------------- */

typedef struct pki_cms_in {
    const uint8_t *certs;      /**< concatenated DER, end entity first (all go into SignedData.certificates) */
    size_t certs_len;
    const char *content_type;  /**< eContentType OID; NULL = id-data */
    const uint8_t *digest;     /**< message-digest of the content, of sig.md_nid */
    size_t digest_len;
    const uint8_t *content;    /**< encapsulated content, NULL = detached */
    size_t content_len;
    int64_t signing_time_ms;   /**< signing-time attribute (CAdES); 0 = none (PAdES, time-stamp tokens) */
    pki_sig_t sig;             /**< scheme and digest of the signature; the digest is the SignerInfo's */
} pki_cms_in_t;

/**
 * The DER SET OF signed attributes: content-type, message-digest, signing-certificate-v2 of ee, and
 * signing-time when asked. @return PKI_OK or PKI_ERR_NOMEM (encoding failed).
 */
PKI_MUST_CHECK int pki_cms_signed_attrs(const pki_cms_in_t *in, X509 *ee, pki_der_t *out);
/**
 * A ContentInfo with SignedData and one SignerInfo, appended to out. sign makes the signature over the signed
 * attributes; tst (may be NULL) adds the signature-time-stamp unsigned attribute.
 * @return PKI_OK; PKI_ERR_INVAL (bad certificates, digest or scheme); PKI_ERR_NOMEM (memory or out's maximum);
 *         PKI_ERR_INTERNAL; PKI_ERR_CALLBACK with the callback's value in *cb_rc (cb_rc may be NULL).
 */
PKI_MUST_CHECK int pki_cms_sign(const pki_cms_in_t *in, pki_sign_fn sign, pki_tst_fn tst, void *arg,
                                pki_der_t *out, int *cb_rc);
/**
 * An upper bound of pki_cms_sign's output size for in, without signing: the same encoding with a signature as
 * long as the first certificate's key can make and a time-stamp token of tst_max bytes (0: none). max bounds
 * the probe. @return PKI_OK with *out set; PKI_ERR_INVAL (no usable certificate); PKI_ERR_NOMEM (beyond max).
 */
PKI_MUST_CHECK int pki_cms_size_max(const pki_cms_in_t *in, size_t tst_max, size_t max, size_t *out);

/* ---- RFC 3161 time-stamp tokens -------------------------------------------------------------------------- */

/** The fields of one TSTInfo (RFC 3161 2.4.2); the caller picks serial, time and policy. */
typedef struct pki_tst {
    const char *policy;        /**< TSA policy OID, dotted */
    unsigned accuracy_ms;      /**< accuracy (seconds and millis); 0 = no accuracy field */
    int md_nid;                /**< digest of the messageImprint: NID_sha256/384/512 */
    const uint8_t *digest;     /**< the messageImprint's hashedMessage */
    size_t digest_len;
    const uint8_t *serial;     /**< serialNumber, unsigned big-endian */
    size_t serial_len;
    int64_t gen_time_ms;       /**< genTime, unix milliseconds (GeneralizedTime with the fraction when non-zero) */
    const uint8_t *nonce;      /**< nonce, unsigned big-endian; NULL = none */
    size_t nonce_len;
} pki_tst_t;

/** The DER TSTInfo of t appended to d (d fails for an unknown digest or a bad policy OID). */
void pki_tst_info(pki_der_t *d, const pki_tst_t *t);
/**
 * A TimeStampToken: SignedData with eContentType id-ct-TSTInfo over t, made by sign with sig (certs: the TSA's
 * chain, its certificate first). @return as pki_cms_sign; PKI_ERR_INTERNAL when the TSTInfo cannot be encoded.
 */
PKI_MUST_CHECK int pki_tst_sign(const pki_tst_t *t, const uint8_t *certs, size_t certs_len, const pki_sig_t *sig,
                                pki_sign_fn sign, void *arg, pki_der_t *out, int *cb_rc);
/** How a TSA signs its tokens: the digest that fits its key (SHA-256 for RSA, PKCS#1 v1.5, and for P-256; SHA-384
 *  for P-384 and SHA-512 for P-521, ECDSA); rsa non-zero for an RSA key, else curve_oid names the EC curve. */
void pki_tst_sig(int rsa, const char *curve_oid, pki_sig_t *out);
/** An upper bound of pki_tst_sign's output for t without signing (see pki_cms_size_max). */
PKI_MUST_CHECK int pki_tst_size_max(const pki_tst_t *t, const uint8_t *certs, size_t certs_len, const pki_sig_t *sig,
                                    size_t max, size_t *out);

/* ---- certificate requests and the demo CA ---------------------------------------------------------------------- */

/**
 * A PKCS#10 request for pub with subject, its signature made by sign (SHA-256 with RSA; ECDSA with the digest of
 * the curve's strength: SHA-256 for P-256, SHA-384 for P-384, SHA-512 for P-521), checked to verify with pub.
 * @return PKI_OK with *out set; PKI_ERR_CALLBACK (sign's value in *cb_rc), PKI_ERR_NOMEM, PKI_ERR_INTERNAL;
 *         a message in err.
 */
PKI_MUST_CHECK int pki_csr_build(EVP_PKEY *pub, const X509_NAME *subject, pki_sign_fn sign, void *arg,
                                 X509_REQ **out, int *cb_rc, char *err, size_t err_sz);

/** A CA whose certificate and private key are PEM files (the demo CA). */
typedef struct pki_ca {
    const char *cert_file;  /**< PEM certificate of the issuing CA */
    const char *key_file;   /**< PEM private key of the issuing CA */
    const char *chain_file; /**< PEM certificates above the CA; NULL or "" = none */
    unsigned days;          /**< validity of issued certificates; 0 = 365 (never beyond the CA's) */
} pki_ca_t;

/**
 * An end-entity certificate for pub with subject CN=cn, random 127-bit serial, signed by ca with SHA-256: key usage
 * digitalSignature and nonRepudiation, or with tsa digitalSignature and a critical extendedKeyUsage timeStamping
 * (RFC 3161 2.3). The chain (the certificate, the CA, then chain_file's) goes into chain as concatenated DER.
 * @return PKI_OK with *chain_len and the validity set; PKI_ERR_IO (CA files), PKI_ERR_NOMEM (memory or chain_max),
 *         PKI_ERR_INTERNAL; a message in err.
 */
PKI_MUST_CHECK int pki_issue_cert(const pki_ca_t *ca, EVP_PKEY *pub, const char *cn, bool tsa, uint8_t *chain,
                                  size_t chain_max, size_t *chain_len, int64_t *not_before, int64_t *not_after,
                                  char *err, size_t err_sz);

/* ---- certificates ---------------------------------------------------------------------------------------- */

/**
 * Split concatenated DER certificates (end entity first) into X509 objects, at most max.
 * @return PKI_OK with *n set; PKI_ERR_INVAL (not DER certificates, or more than max: nothing kept).
 */
PKI_MUST_CHECK int pki_certs_load(const uint8_t *der, size_t len, X509 **out, size_t max, size_t *n);
/** Free n certificates of pki_certs_load. */
void pki_certs_free(X509 **certs, size_t n);
/** The validity period of a certificate in unix seconds. @return PKI_OK or PKI_ERR_INVAL (unreadable time). */
PKI_MUST_CHECK int pki_cert_validity(X509 *ee, int64_t *not_before, int64_t *not_after);
/** A distinguished name as RFC 4514 text (UTF-8 kept) into buf of sz bytes (cut to fit). @return PKI_OK, PKI_ERR_*. */
int pki_dn(const X509_NAME *name, char *buf, size_t sz);

/* ---- parsed certificates kept for reuse (pki_x509cache.c) ----
 * d2i_X509 decodes the public key through OpenSSL 3's decoders, which costs more than a P-256 signature: a service
 * that reads the same credential's certificate before every signature keeps the parsed one here. An entry is found
 * by the DER bytes themselves, compared in full, so it never stands for other bytes; at most `slots` entries (a new
 * certificate may replace another). Any number of threads may call pki_x509_cache_get at once. */
typedef struct pki_x509_cache pki_x509_cache_t;
/** @param slots 1..4096 entries. @return PKI_OK, PKI_ERR_INVAL, PKI_ERR_NOMEM, PKI_ERR_INTERNAL */
PKI_MUST_CHECK int pki_x509_cache_new(size_t slots, pki_x509_cache_t **out);
/** Free the cache (references handed out stay valid). NULL is fine. */
void pki_x509_cache_free(pki_x509_cache_t *c);
/** The first certificate of der, as d2i_X509 reads it, in a reference of the caller's own (X509_free it; read it,
 *  never change it: other threads share it); NULL when it does not parse (never kept). c NULL: parsed each time. */
X509 *pki_x509_cache_get(pki_x509_cache_t *c, const uint8_t *der, size_t len);
/** Lookups that found their entry (hits) and that parsed (misses) so far. */
void pki_x509_cache_stats(pki_x509_cache_t *c, uint64_t *hits, uint64_t *misses);

/* ---- revocation lists ------------------------------------------------------------------------------------ */

/**
 * A store of CRLs kept from a folder: every *.crl / *.pem file in it (PEM or DER, up to 256 files of 64 MiB)
 * counts only when its signature verifies with the key of its issuer among the trust anchors. A file that does
 * not parse or verify is refused (a line on stderr, prefix "crl: ") and the last good version of that file stays
 * in force. Lookups read an immutable snapshot: a reload never blocks them.
 */
typedef struct pki_crl pki_crl_t;

/** Revocation status of a certificate. */
enum {
    PKI_REV_GOOD = 0,      /**< not listed (or no CRL of its issuer, unless require) */
    PKI_REV_REVOKED = 1,   /**< listed with any reason but certificateHold */
    PKI_REV_SUSPENDED = 2, /**< listed with certificateHold */
    PKI_REV_UNKNOWN = 3,   /**< cannot be told: no CRL of its issuer (require), or the CRL is past nextUpdate */
};

/** Every PEM certificate of file into a new stack. @return PKI_OK, PKI_ERR_IO, PKI_ERR_INVAL (none), PKI_ERR_NOMEM. */
PKI_MUST_CHECK int pki_crl_load_anchors(const char *file, STACK_OF(X509) **out);
/** The same from a file's content in memory (len bytes of PEM), read by the same code (a memory BIO instead of the
 *  file's). @return PKI_OK, PKI_ERR_INVAL (none), PKI_ERR_NOMEM. */
PKI_MUST_CHECK int pki_crl_parse_anchors(const uint8_t *pem, size_t len, STACK_OF(X509) **out);
/** A CRL file's content (len bytes, PEM or DER: DER with nothing after it) parsed and verified against the key of its
 *  issuer among anchors, as the store does with each file of its folder (it reads the file and calls this): the CRL,
 *  its revoked list sorted so that lookups only read; NULL when refused, with a line on stderr naming the file as
 *  name ("crl: NAME: refused: ..."). Empty or over 64 MiB is refused. */
X509_CRL *pki_crl_parse(const STACK_OF(X509) *anchors, const uint8_t *buf, size_t len, const char *name);
/** PKI_REV_* of ee by crl, a CRL of ee's issuer from pki_crl_parse, at now (past its nextUpdate: PKI_REV_UNKNOWN
 *  unless allow_stale); *why as pki_crl_check's. What pki_crl_check answers once it found the issuer's latest CRL. */
int pki_crl_status(X509_CRL *crl, X509 *ee, time_t now, int allow_stale, const char **why);
/**
 * A store of the CRLs of dir, verified against anchors_file (PEM CA certificates). allow_stale: a CRL past its
 * nextUpdate still answers (else PKI_REV_UNKNOWN); require: a certificate whose issuer has no CRL is
 * PKI_REV_UNKNOWN (else PKI_REV_GOOD). The folder is read once here; later changes count from the next
 * pki_crl_reload() (no thread of its own: the caller looks as often as it wants). @return PKI_OK with *out set;
 * PKI_ERR_ANCHORS, PKI_ERR_IO (dir unreadable), PKI_ERR_NOMEM, each with a message in err.
 */
PKI_MUST_CHECK int pki_crl_new(const char *dir, const char *anchors_file, int allow_stale, int require,
                               pki_crl_t **out, char *err, size_t err_sz);
/** Free the store (NULL is fine). No lookup or reload may be running. */
void pki_crl_free(pki_crl_t *c);
/** Look at the folder now and reload what changed (one reload at a time; lookups go on meanwhile).
 *  @return 1 a new snapshot is in force, 0 nothing changed, PKI_ERR_IO / PKI_ERR_NOMEM. */
int pki_crl_reload(pki_crl_t *c);
/** Replace the trust anchors with those of anchors_file and reload, every CRL verified again against them (a CRL
 *  the new anchors refuse keeps its previous version in force, as a file that stopped parsing does: a revocation
 *  is never lost by a reload). Unreadable or empty: PKI_ERR_ANCHORS (message in err), the old anchors stay.
 *  @return PKI_OK, PKI_ERR_ANCHORS, PKI_ERR_IO (the folder, the anchors changed), PKI_ERR_NOMEM. */
PKI_MUST_CHECK int pki_crl_set_anchors(pki_crl_t *c, const char *anchors_file, char *err, size_t err_sz);
/** PKI_REV_* of ee at now; *why = the CRL reason name or what is missing (static text, "" when good). c NULL: good. */
int pki_crl_check(pki_crl_t *c, X509 *ee, time_t now, const char **why);
/** How many snapshots pki_crl_reload() put in force so far (0 for NULL): whoever acts on a changed store (the
 *  CRL sweep) compares it with the one it last acted on, whichever caller did the reload. */
uint64_t pki_crl_generation(pki_crl_t *c);
/** How many CRLs are in force. */
size_t pki_crl_count(pki_crl_t *c);
/** Freshness of the CRLs in force at now (the readiness check of csc-server's operators' listener): how many are
 *  past their nextUpdate (or have none: nothing says until when they hold), the file name of the first of those in
 *  stale (NUL-terminated, cut to stale_sz), and the earliest nextUpdate of all in *earliest (0 when none has one).
 *  c NULL: 0, nothing set but *earliest = 0. */
size_t pki_crl_stale(pki_crl_t *c, time_t now, char *stale, size_t stale_sz, time_t *earliest);

#endif
