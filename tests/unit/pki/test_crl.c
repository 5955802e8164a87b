/* Unit tests of the CRL store (pki/pki_crl.c): CRLs and certificates are made here with OpenSSL in a temporary
 * folder. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "cfx_files.h"
#include "pki.h"
#include "test_pki.h"

static char dir[64], crl_dir[96], anchors[96];
static EVP_PKEY *ca_key, *rogue_key;
static X509 *ca_cert, *rogue_cert;

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(k);
    return k;
}

static X509 *make_cert(const char *cn, long serial, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"Test", -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    ck_assert(X509_set_version(x, 2));
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : n);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    ck_assert(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    X509_NAME_free(n);
    return x;
}

typedef struct entry {
    long serial;
    int reason; /* CRL_REASON_*, -1 = none */
} entry_t;

/* Keep the replaced version's inode allocated (a hard link outside crl_dir), so that a file written within the
 * same clock tick can never get the same inode, size and mtime back: the change is always visible. */
static void keep(const char *path)
{
    static int n;
    char old[160];
    snprintf(old, sizeof(old), "%s/old-%d", dir, n++);
    if (access(path, F_OK) == 0)
        ck_assert_int_eq(link(path, old), 0);
}

/* A CRL of issuer (signed by key), valid from now - 60 s for next_secs, written to crl_dir/name via rename. */
static void write_crl(const char *name, X509 *issuer, EVP_PKEY *key, const entry_t *e, size_t n, long next_secs,
                      int der)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t = ASN1_TIME_adj(NULL, time(NULL), 0, -60);
    ASN1_TIME *next = ASN1_TIME_adj(NULL, time(NULL), 0, next_secs);
    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
    X509_CRL_set1_lastUpdate(crl, t);
    X509_CRL_set1_nextUpdate(crl, next);
    for (size_t i = 0; i < n; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *s = ASN1_INTEGER_new();
        ASN1_INTEGER_set(s, e[i].serial);
        X509_REVOKED_set_serialNumber(r, s);
        X509_REVOKED_set_revocationDate(r, t);
        if (e[i].reason >= 0) {
            ASN1_ENUMERATED *re = ASN1_ENUMERATED_new();
            ASN1_ENUMERATED_set(re, e[i].reason);
            X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, re, 0, 0);
            ASN1_ENUMERATED_free(re);
        }
        X509_CRL_add0_revoked(crl, r);
        ASN1_INTEGER_free(s);
    }
    X509_CRL_sort(crl);
    ck_assert(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
    char tmp[160], path[160];
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", crl_dir, name);
    snprintf(path, sizeof(path), "%s/%s", crl_dir, name);
    FILE *f = fopen(tmp, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert(der ? i2d_X509_CRL_fp(f, crl) : PEM_write_X509_CRL(f, crl));
    fclose(f);
    keep(path);
    ck_assert_int_eq(rename(tmp, path), 0);
    X509_CRL_free(crl);
    ASN1_TIME_free(t);
    ASN1_TIME_free(next);
}

static void write_file(const char *name, const void *data, size_t len)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", crl_dir, name);
    keep(path);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(data, 1, len, f);
    fclose(f);
}

static void setup(void)
{
    ck_assert_int_eq(cfx_tmpdir(NULL, "csc-crl-", dir, sizeof(dir)), 0);
    snprintf(crl_dir, sizeof(crl_dir), "%s/crl", dir);
    snprintf(anchors, sizeof(anchors), "%s/anchors.pem", dir);
    ck_assert_int_eq(mkdir(crl_dir, 0700), 0);
    ca_key = new_key();
    rogue_key = new_key();
    ca_cert = make_cert("Test CA", 1, ca_key, NULL, NULL);
    rogue_cert = make_cert("Rogue CA", 1, rogue_key, NULL, NULL);
    FILE *f = fopen(anchors, "w");
    ck_assert(PEM_write_X509(f, ca_cert));
    fclose(f);
}

static void teardown(void)
{
    ck_assert_int_eq(cfx_rmtree(dir), 0);
    X509_free(ca_cert);
    X509_free(rogue_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(rogue_key);
}

static int check(pki_crl_t *c, X509 *ee, const char **why)
{
    return pki_crl_check(c, ee, time(NULL), why);
}

START_TEST(t_lookup)
{
    EVP_PKEY *k = new_key();
    X509 *good = make_cert("good", 100, k, ca_cert, ca_key), *bad = make_cert("bad", 101, k, ca_cert, ca_key),
         *held = make_cert("held", 102, k, ca_cert, ca_key), *other = make_cert("other", 7, k, rogue_cert, rogue_key);
    entry_t e[] = {{101, CRL_REASON_KEY_COMPROMISE}, {102, CRL_REASON_CERTIFICATE_HOLD}, {103, -1}};
    write_crl("ca.crl", ca_cert, ca_key, e, 3, 3600, 0);
    pki_crl_t *c;
    const char *why;
    ck_assert_int_eq(pki_crl_new(crl_dir, anchors, 0, 0, &c, NULL, 0), PKI_OK);
    ck_assert_uint_eq(pki_crl_count(c), 1);
    ck_assert_int_eq(check(c, good, &why), PKI_REV_GOOD);
    ck_assert_int_eq(check(c, bad, &why), PKI_REV_REVOKED);
    ck_assert_str_eq(why, "keyCompromise");
    ck_assert_int_eq(check(c, held, &why), PKI_REV_SUSPENDED);
    ck_assert_str_eq(why, "certificateHold");
    /* An issuer without a CRL: not checked, unless crl_require. */
    ck_assert_int_eq(check(c, other, &why), PKI_REV_GOOD);
    pki_crl_free(c);
    ck_assert_int_eq(pki_crl_new(crl_dir, anchors, 0, 1, &c, NULL, 0), PKI_OK);
    ck_assert_int_eq(check(c, other, &why), PKI_REV_UNKNOWN);
    ck_assert_int_eq(check(c, good, &why), PKI_REV_GOOD);
    pki_crl_free(c);
    X509_free(good);
    X509_free(bad);
    X509_free(held);
    X509_free(other);
    EVP_PKEY_free(k);
}
END_TEST

/* The memory entry points the store's file reading goes through (pki_crl_parse, pki_crl_parse_anchors) and the
 * lookup in one CRL (pki_crl_status): what a file of the folder gives, its content gives; the refusals. */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static uint8_t buf[65536];
    *len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    return buf;
}

START_TEST(t_from_memory)
{
    EVP_PKEY *k = new_key();
    X509 *good = make_cert("good", 100, k, ca_cert, ca_key), *bad = make_cert("bad", 101, k, ca_cert, ca_key);
    entry_t e[] = {{101, CRL_REASON_KEY_COMPROMISE}};
    STACK_OF(X509) *sk = (STACK_OF(X509) *)1;
    size_t len;
    uint8_t *p = slurp(anchors, &len);
    ck_assert_int_eq(pki_crl_parse_anchors(p, len, &sk), PKI_OK);
    ck_assert_int_eq(sk_X509_num(sk), 1);
    ck_assert_int_eq(X509_cmp(sk_X509_value(sk, 0), ca_cert), 0);
    STACK_OF(X509) *none = (STACK_OF(X509) *)1;
    ck_assert_int_eq(pki_crl_parse_anchors((const uint8_t *)"no PEM here", 11, &none), PKI_ERR_INVAL);
    ck_assert_ptr_null(none);
    ck_assert_int_eq(pki_crl_parse_anchors(NULL, 0, &none), PKI_ERR_INVAL);
    ck_assert_ptr_null(none);

    const char *why;
    for (int der = 0; der <= 1; der++) {
        write_crl("ca.crl", ca_cert, ca_key, e, 1, 3600, der);
        char path[160];
        snprintf(path, sizeof(path), "%s/ca.crl", crl_dir);
        p = slurp(path, &len);
        X509_CRL *crl = pki_crl_parse(sk, p, len, "ca.crl");
        ck_assert_ptr_nonnull(crl);
        ck_assert_int_eq(pki_crl_status(crl, good, time(NULL), 0, &why), PKI_REV_GOOD);
        ck_assert_str_eq(why, "");
        ck_assert_int_eq(pki_crl_status(crl, bad, time(NULL), 0, &why), PKI_REV_REVOKED);
        ck_assert_str_eq(why, "keyCompromise");
        /* two hours on, past its nextUpdate: unknown, unless a stale CRL is allowed */
        ck_assert_int_eq(pki_crl_status(crl, bad, time(NULL) + 7200, 0, &why), PKI_REV_UNKNOWN);
        ck_assert_str_eq(why, "the CRL of its issuer is past its nextUpdate");
        ck_assert_int_eq(pki_crl_status(crl, bad, time(NULL) + 7200, 1, &why), PKI_REV_REVOKED);
        X509_CRL_free(crl);
        /* DER with a byte after it, a CRL cut short, nothing */
        if (der) {
            uint8_t more[65537];
            memcpy(more, p, len);
            more[len] = 0;
            ck_assert_ptr_null(pki_crl_parse(sk, more, len + 1, "ca.crl"));
            ck_assert_ptr_null(pki_crl_parse(sk, p, len - 1, "ca.crl"));
        }
        ck_assert_ptr_null(pki_crl_parse(sk, p, 0, "ca.crl"));
    }
    /* a CRL of a CA that is no anchor, and one in its name signed by another key */
    write_crl("rogue.crl", rogue_cert, rogue_key, e, 1, 3600, 1);
    char path[160];
    snprintf(path, sizeof(path), "%s/rogue.crl", crl_dir);
    p = slurp(path, &len);
    ck_assert_ptr_null(pki_crl_parse(sk, p, len, "rogue.crl"));
    write_crl("forged.crl", ca_cert, rogue_key, e, 1, 3600, 1);
    snprintf(path, sizeof(path), "%s/forged.crl", crl_dir);
    p = slurp(path, &len);
    ck_assert_ptr_null(pki_crl_parse(sk, p, len, "forged.crl"));
    sk_X509_pop_free(sk, X509_free);
    X509_free(good);
    X509_free(bad);
    EVP_PKEY_free(k);
}
END_TEST

START_TEST(t_reload)
{
    EVP_PKEY *k = new_key();
    X509 *ee = make_cert("ee", 200, k, ca_cert, ca_key);
    entry_t e = {200, CRL_REASON_CERTIFICATE_HOLD};
    write_crl("ca.crl", ca_cert, ca_key, NULL, 0, 3600, 0);
    pki_crl_t *c;
    const char *why;
    ck_assert_int_eq(pki_crl_new(crl_dir, anchors, 0, 0, &c, NULL, 0), PKI_OK);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_GOOD);
    uint64_t gen = pki_crl_generation(c);
    ck_assert_int_eq(pki_crl_reload(c), 0); /* nothing changed: no new snapshot */
    ck_assert_uint_eq(pki_crl_generation(c), gen);
    write_crl("ca.crl", ca_cert, ca_key, &e, 1, 3600, 1); /* now DER, with the certificate on hold */
    ck_assert_int_eq(pki_crl_reload(c), 1);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_SUSPENDED);
    write_crl("ca.crl", ca_cert, ca_key, NULL, 0, 3600, 0); /* released */
    ck_assert_int_eq(pki_crl_reload(c), 1);
    ck_assert_uint_eq(pki_crl_generation(c), gen + 2); /* one per snapshot put in force */
    ck_assert_uint_eq(pki_crl_generation(NULL), 0);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_GOOD);
    /* Revoked again, then the file replaced by garbage, by a CRL of a stranger and by a forged one: the last good
     * version stays in force each time. */
    e.reason = CRL_REASON_KEY_COMPROMISE;
    write_crl("ca.crl", ca_cert, ca_key, &e, 1, 3600, 0);
    ck_assert_int_eq(pki_crl_reload(c), 1);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_REVOKED);
    write_file("ca.crl", "not a CRL", 9);
    pki_crl_reload(c);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_REVOKED);
    write_crl("ca.crl", ca_cert, rogue_key, NULL, 0, 3600, 0); /* the CA's name, another key */
    pki_crl_reload(c);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_REVOKED);
    ck_assert_uint_eq(pki_crl_count(c), 1);
    /* A CRL of an issuer that is no anchor is refused. */
    write_crl("rogue.crl", rogue_cert, rogue_key, NULL, 0, 3600, 0);
    pki_crl_reload(c);
    ck_assert_uint_eq(pki_crl_count(c), 1);
    /* Removing the file removes its revocations. */
    char path[160];
    snprintf(path, sizeof(path), "%s/ca.crl", crl_dir);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(pki_crl_reload(c), 1);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_GOOD);
    ck_assert_uint_eq(pki_crl_count(c), 0);
    pki_crl_free(c);
    X509_free(ee);
    EVP_PKEY_free(k);
}
END_TEST

/* New trust anchors (a reload): a CRL of an issuer just added is taken at once, every file verified again; a
 * revocation in force stays when its issuer leaves the anchors (the old CRL is kept, as for a broken file); an
 * unreadable or empty anchors file is refused and the anchors before stay. */
START_TEST(t_set_anchors)
{
    EVP_PKEY *k = new_key();
    X509 *ee = make_cert("ee", 300, k, rogue_cert, rogue_key);
    entry_t e = {300, CRL_REASON_KEY_COMPROMISE};
    write_crl("rogue.crl", rogue_cert, rogue_key, &e, 1, 3600, 0);
    pki_crl_t *c;
    const char *why;
    char err[256], both[160];
    ck_assert_int_eq(pki_crl_new(crl_dir, anchors, 0, 0, &c, NULL, 0), PKI_OK);
    ck_assert_uint_eq(pki_crl_count(c), 0); /* not an anchor yet */
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_GOOD);
    snprintf(both, sizeof(both), "%s/both.pem", dir);
    FILE *f = fopen(both, "w");
    ck_assert(PEM_write_X509(f, ca_cert) && PEM_write_X509(f, rogue_cert));
    fclose(f);
    ck_assert_int_eq(pki_crl_set_anchors(c, both, err, sizeof(err)), PKI_OK);
    ck_assert_uint_eq(pki_crl_count(c), 1);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_REVOKED);
    ck_assert_int_eq(pki_crl_set_anchors(c, anchors, err, sizeof(err)), PKI_OK);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_REVOKED);
    snprintf(both, sizeof(both), "%s/empty.pem", dir);
    fclose(fopen(both, "w"));
    ck_assert_int_eq(pki_crl_set_anchors(c, both, err, sizeof(err)), PKI_ERR_ANCHORS);
    ck_assert_ptr_nonnull(strstr(err, "empty.pem"));
    snprintf(both, sizeof(both), "%s/none.pem", dir);
    ck_assert_int_eq(pki_crl_set_anchors(c, both, err, sizeof(err)), PKI_ERR_ANCHORS);
    ck_assert_ptr_nonnull(strstr(err, "none.pem"));
    /* the anchors in force are still the CA's: its new CRL is taken, the rogue's new one is not */
    write_crl("rogue.crl", rogue_cert, rogue_key, NULL, 0, 3600, 0);
    ck_assert_int_eq(pki_crl_reload(c), 1);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_REVOKED);
    pki_crl_free(c);
    X509_free(ee);
    EVP_PKEY_free(k);
}
END_TEST

START_TEST(t_stale)
{
    EVP_PKEY *k = new_key();
    X509 *ee = make_cert("ee", 300, k, ca_cert, ca_key);
    write_crl("ca.crl", ca_cert, ca_key, NULL, 0, -10, 0); /* nextUpdate 10 s ago */
    pki_crl_t *c;
    const char *why;
    ck_assert_int_eq(pki_crl_new(crl_dir, anchors, 0, 0, &c, NULL, 0), PKI_OK);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_UNKNOWN); /* fail closed */
    ck_assert_ptr_nonnull(strstr(why, "nextUpdate"));
    pki_crl_free(c);
    ck_assert_int_eq(pki_crl_new(crl_dir, anchors, 1, 0, &c, NULL, 0), PKI_OK);
    ck_assert_int_eq(check(c, ee, &why), PKI_REV_GOOD); /* crl_allow_stale */
    /* /readyz's view: stale whatever crl_allow_stale says, named, with its nextUpdate */
    char name[64];
    time_t earliest, now = time(NULL);
    ck_assert_uint_eq(pki_crl_stale(c, now, name, sizeof(name), &earliest), 1);
    ck_assert_str_eq(name, "ca.crl");
    ck_assert(earliest <= now - 9 && earliest >= now - 11);
    pki_crl_free(c);
    write_crl("ca.crl", ca_cert, ca_key, NULL, 0, 3600, 0); /* fresh: next update in an hour */
    ck_assert_int_eq(pki_crl_new(crl_dir, anchors, 0, 0, &c, NULL, 0), PKI_OK);
    ck_assert_uint_eq(pki_crl_stale(c, now, name, sizeof(name), &earliest), 0);
    ck_assert_str_eq(name, "");
    ck_assert(earliest >= now + 3599 && earliest <= now + 3601);
    pki_crl_free(c);
    ck_assert_uint_eq(pki_crl_stale(NULL, now, name, sizeof(name), &earliest), 0);
    ck_assert(earliest == 0);
    X509_free(ee);
    EVP_PKEY_free(k);
}
END_TEST

START_TEST(t_bad_setup)
{
    pki_crl_t *c = (pki_crl_t *)1;
    char err[256];
    ck_assert_int_eq(pki_crl_new(crl_dir, "/nonexistent/anchors.pem", 0, 0, &c, err, sizeof(err)),
                     PKI_ERR_ANCHORS);
    ck_assert_str_eq(err, "cannot read /nonexistent/anchors.pem");
    ck_assert_ptr_null(c);
    ck_assert_int_eq(pki_crl_new("/nonexistent/crl", anchors, 0, 0, &c, err, sizeof(err)), PKI_ERR_IO);
    ck_assert_str_eq(err, "/nonexistent/crl: No such file or directory");
    ck_assert_ptr_null(c);
}
END_TEST

/* Signing threads look up while two threads reload (as csc-server's CRL task and a test would): every answer is one of
 * the two states. */
typedef struct race {
    pki_crl_t *c;
    X509 *ee;
    int stop, bad;
    long checks;
} race_t;

static void *looker(void *arg)
{
    race_t *r = arg;
    const char *why;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        int v = pki_crl_check(r->c, r->ee, time(NULL), &why);
        if (v != PKI_REV_GOOD && v != PKI_REV_REVOKED)
            __atomic_store_n(&r->bad, 1, __ATOMIC_RELEASE);
        __atomic_add_fetch(&r->checks, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *reloader(void *arg)
{
    race_t *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
        if (pki_crl_reload(r->c) < 0)
            __atomic_store_n(&r->bad, 1, __ATOMIC_RELEASE);
    return NULL;
}

START_TEST(t_concurrent_reload)
{
    EVP_PKEY *k = new_key();
    race_t r = {0};
    r.ee = make_cert("ee", 400, k, ca_cert, ca_key);
    entry_t e = {400, CRL_REASON_KEY_COMPROMISE};
    write_crl("ca.crl", ca_cert, ca_key, NULL, 0, 3600, 0);
    ck_assert_int_eq(pki_crl_new(crl_dir, anchors, 0, 0, &r.c, NULL, 0), PKI_OK);
    pthread_t th[5];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, looker, &r), 0);
    ck_assert_int_eq(pthread_create(&th[4], NULL, reloader, &r), 0);
    for (int i = 0; i < 20; i++) {
        write_crl("ca.crl", ca_cert, ca_key, i % 2 ? NULL : &e, i % 2 ? 0 : 1, 3600, 0);
        ck_assert_int_ge(pki_crl_reload(r.c), 0);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 5; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(r.bad, 0);
    ck_assert_int_gt(r.checks, 0);
    const char *why;
    ck_assert_int_eq(pki_crl_check(r.c, r.ee, time(NULL), &why), PKI_REV_GOOD); /* the last file: empty */
    pki_crl_free(r.c);
    X509_free(r.ee);
    EVP_PKEY_free(k);
}
END_TEST

/* pki_cert.c: chains in concatenated DER, validity, RFC 4514 names */
START_TEST(t_certs)
{
    EVP_PKEY *k = new_key();
    X509 *ee = make_cert("Taro, \"Jr\"", 7, k, ca_cert, ca_key);
    uint8_t der[8192], *p = der;
    int l1 = i2d_X509(ee, &p), l2 = i2d_X509(ca_cert, &p);
    ck_assert(l1 > 0 && l2 > 0);
    X509 *certs[4];
    size_t n = 9;
    ck_assert_int_eq(pki_certs_load(der, (size_t)(l1 + l2), certs, 4, &n), PKI_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(X509_cmp(certs[0], ee), 0);
    ck_assert_int_eq(X509_cmp(certs[1], ca_cert), 0);
    char dn[128];
    ck_assert_int_eq(pki_dn(X509_get_subject_name(certs[0]), dn, sizeof(dn)), PKI_OK);
    ck_assert_str_eq(dn, "CN=Taro\\, \\\"Jr\\\",O=Test"); /* RFC 4514 escapes, last RDN first */
    ck_assert_int_eq(pki_dn(X509_get_subject_name(certs[0]), dn, 8), PKI_OK);
    ck_assert_str_eq(dn, "CN=Taro"); /* cut to fit */
    int64_t nb = 0, na = 0;
    ck_assert_int_eq(pki_cert_validity(certs[0], &nb, &na), PKI_OK);
    time_t now = time(NULL);
    ck_assert(nb > (int64_t)now - 3700 && nb < (int64_t)now - 3500);
    ck_assert(na > (int64_t)now + 86300 && na < (int64_t)now + 86500);
    pki_certs_free(certs, n);
    /* one byte short, garbage, more than max */
    ck_assert_int_eq(pki_certs_load(der, (size_t)(l1 + l2 - 1), certs, 4, &n), PKI_ERR_INVAL);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(pki_certs_load((const uint8_t *)"\x30\x03\x02\x01\x01", 5, certs, 4, &n), PKI_ERR_INVAL);
    ck_assert_int_eq(pki_certs_load(der, (size_t)(l1 + l2), certs, 1, &n), PKI_ERR_INVAL);
    pki_certs_free(certs, n);
    X509_free(ee);
    EVP_PKEY_free(k);
}
END_TEST

/* pki_x509cache.c: a certificate parsed once per distinct DER, never another's */
START_TEST(t_x509_cache)
{
    EVP_PKEY *k = new_key();
    X509 *a = make_cert("a", 10, k, ca_cert, ca_key), *b = make_cert("b", 11, k, ca_cert, ca_key);
    uint8_t da[4096], db[4096], *p = da;
    int la = i2d_X509(a, &p);
    p = db;
    int lb = i2d_X509(b, &p);
    ck_assert(la > 0 && lb > 0);
    pki_x509_cache_t *c = NULL;
    uint64_t hits, misses;
    ck_assert_int_eq(pki_x509_cache_new(0, &c), PKI_ERR_INVAL);
    ck_assert_int_eq(pki_x509_cache_new(1, &c), PKI_OK); /* one slot: every certificate competes for it */

    X509 *x1 = pki_x509_cache_get(c, da, (size_t)la), *x2 = pki_x509_cache_get(c, da, (size_t)la);
    ck_assert_ptr_nonnull(x1);
    ck_assert_ptr_eq(x1, x2); /* the kept one */
    ck_assert_int_eq(X509_cmp(x1, a), 0);
    pki_x509_cache_stats(c, &hits, &misses);
    ck_assert_uint_eq(hits, 1);
    ck_assert_uint_eq(misses, 1);
    /* Other bytes of the same length (the last byte of a's signature changed) are another certificate. */
    uint8_t dc[4096];
    memcpy(dc, da, (size_t)la);
    dc[la - 1] ^= 1;
    X509 *w = pki_x509_cache_get(c, dc, (size_t)la);
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_ne(w, x1);
    ck_assert_int_ne(X509_cmp(w, a), 0);
    X509 *y = pki_x509_cache_get(c, db, (size_t)lb);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(X509_cmp(y, b), 0);
    /* ...each replaced the one before in the one slot; the references handed out stay valid. */
    X509 *x3 = pki_x509_cache_get(c, da, (size_t)la);
    ck_assert_ptr_ne(x3, x1);
    ck_assert_int_eq(X509_cmp(x3, a), 0);
    ck_assert_int_eq(X509_cmp(x1, a), 0);
    /* Bytes that do not parse: NULL, and nothing kept for them. */
    uint8_t bad[64];
    memcpy(bad, da, sizeof(bad));
    ck_assert_ptr_null(pki_x509_cache_get(c, bad, sizeof(bad)));
    ck_assert_ptr_null(pki_x509_cache_get(c, bad, sizeof(bad)));
    ck_assert_ptr_null(pki_x509_cache_get(c, da, 0));
    pki_x509_cache_stats(c, &hits, &misses);
    ck_assert_uint_eq(hits, 1);
    ck_assert_uint_eq(misses, 7);
    X509 *x4 = pki_x509_cache_get(c, da, (size_t)la); /* a is still the kept one */
    ck_assert_ptr_eq(x4, x3);
    /* No cache: parsed each time. */
    X509 *z = pki_x509_cache_get(NULL, db, (size_t)lb);
    ck_assert_int_eq(X509_cmp(z, b), 0);
    pki_x509_cache_free(c);
    ck_assert_int_eq(X509_cmp(x4, a), 0); /* the caller's references outlive the cache */
    X509 *all[] = {x1, x2, w, y, x3, x4, z, a, b};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        X509_free(all[i]);
    EVP_PKEY_free(k);
}
END_TEST

/* pki_issue.c: the demo CA's certificates */
START_TEST(t_issue)
{
    char cert_file[128], key_file[128];
    snprintf(cert_file, sizeof(cert_file), "%s/ca.pem", dir);
    snprintf(key_file, sizeof(key_file), "%s/ca.key", dir);
    /* a CA certificate as the demo CA's: CA:TRUE and a subjectKeyIdentifier (the issued authorityKeyIdentifier) */
    X509 *ca_x = make_cert("Issuing CA", 2, ca_key, NULL, NULL);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca_x, ca_x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    ck_assert(ext != NULL && X509_add_ext(ca_x, ext, -1));
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
    ck_assert(ext != NULL && X509_add_ext(ca_x, ext, -1));
    X509_EXTENSION_free(ext);
    ck_assert(X509_sign(ca_x, ca_key, EVP_sha256()) > 0);
    FILE *f = fopen(cert_file, "w");
    ck_assert(PEM_write_X509(f, ca_x));
    fclose(f);
    f = fopen(key_file, "w");
    ck_assert(PEM_write_PrivateKey(f, ca_key, NULL, NULL, 0, NULL, NULL));
    fclose(f);
    EVP_PKEY *k = new_key();
    pki_ca_t ca = {.cert_file = cert_file, .key_file = key_file, .days = 30};
    uint8_t chain[8192];
    size_t len = 0;
    int64_t nb = 0, na = 0;
    char err[256];
    for (int tsa = 0; tsa <= 1; tsa++) {
        ck_assert_int_eq(pki_issue_cert(&ca, k, "Tanaka", tsa, chain, sizeof(chain), &len, &nb, &na, err,
                                        sizeof(err)), PKI_OK);
        X509 *certs[4];
        size_t n = 0;
        ck_assert_int_eq(pki_certs_load(chain, len, certs, 4, &n), PKI_OK);
        ck_assert_uint_eq(n, 2);                                    /* the certificate, then the CA */
        ck_assert_int_eq(X509_verify(certs[0], ca_key), 1);         /* signed by the CA */
        ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(certs[0]), k), 1);
        ck_assert_int_eq(X509_cmp(certs[1], ca_x), 0);
        ck_assert_int_eq(pki_dn(X509_get_subject_name(certs[0]), err, sizeof(err)), PKI_OK);
        ck_assert_str_eq(err, "CN=Tanaka");
        ck_assert_int_eq(X509_check_ca(certs[0]), 0);
        /* timeStamping alone for the TSA, no extendedKeyUsage (any use) otherwise */
        ck_assert_uint_eq(X509_get_extended_key_usage(certs[0]), tsa ? XKU_TIMESTAMP : UINT32_MAX);
        ck_assert(X509_get_key_usage(certs[0]) & KU_DIGITAL_SIGNATURE);
        ck_assert_int_eq((X509_get_key_usage(certs[0]) & KU_NON_REPUDIATION) != 0, !tsa);
        /* never beyond the CA's validity (one day here, 30 asked) */
        ck_assert(na <= (int64_t)time(NULL) + 86400 + 5 && nb < (int64_t)time(NULL));
        pki_certs_free(certs, n);
    }
    ck_assert_int_eq(pki_issue_cert(&ca, k, "Tanaka", 0, chain, 100, &len, &nb, &na, err, sizeof(err)),
                     PKI_ERR_NOMEM);
    ck_assert_str_eq(err, "certificate chain too large");
    ca.key_file = "/nonexistent/ca.key";
    ck_assert_int_eq(pki_issue_cert(&ca, k, "Tanaka", 0, chain, sizeof(chain), &len, &nb, &na, err, sizeof(err)),
                     PKI_ERR_IO);
    ck_assert_uint_eq(len, 0);
    X509_free(ca_x);
    EVP_PKEY_free(k);
}
END_TEST

Suite *pki_crl_suite(void)
{
    Suite *s = suite_create("pki_crl");
    TCase *tc = tcase_create("crl");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_lookup);
    tcase_add_test(tc, t_from_memory);
    tcase_add_test(tc, t_reload);
    tcase_add_test(tc, t_set_anchors);
    tcase_add_test(tc, t_stale);
    tcase_add_test(tc, t_bad_setup);
    tcase_add_test(tc, t_concurrent_reload);
    tcase_add_test(tc, t_certs);
    tcase_add_test(tc, t_x509_cache);
    tcase_add_test(tc, t_issue);
    suite_add_tcase(s, tc);
    return s;
}
