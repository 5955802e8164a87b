/* Unit tests of the revocation lists (csc_crl.c) and of certificate requests and their subject names
 * (csc_certmgmt.c): CRLs and certificates are made here with OpenSSL in a temporary folder, requests are signed
 * in a SoftHSM token made per test. */
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
#include "csc_int.h"

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
    snprintf(dir, sizeof(dir), "/tmp/csc-crl-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
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
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    X509_free(ca_cert);
    X509_free(rogue_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(rogue_key);
}

static int check(csc_crl_t *c, X509 *ee, const char **why)
{
    return csc_crl_check(c, ee, time(NULL), why);
}

START_TEST(t_lookup)
{
    EVP_PKEY *k = new_key();
    X509 *good = make_cert("good", 100, k, ca_cert, ca_key), *bad = make_cert("bad", 101, k, ca_cert, ca_key),
         *held = make_cert("held", 102, k, ca_cert, ca_key), *other = make_cert("other", 7, k, rogue_cert, rogue_key);
    entry_t e[] = {{101, CRL_REASON_KEY_COMPROMISE}, {102, CRL_REASON_CERTIFICATE_HOLD}, {103, -1}};
    write_crl("ca.crl", ca_cert, ca_key, e, 3, 3600, 0);
    csc_crl_t *c;
    const char *why;
    ck_assert_int_eq(csc_crl_new(crl_dir, anchors, 0, 0, 0, &c), 0);
    ck_assert_uint_eq(csc_crl_count(c), 1);
    ck_assert_int_eq(check(c, good, &why), CSC_REV_GOOD);
    ck_assert_int_eq(check(c, bad, &why), CSC_REV_REVOKED);
    ck_assert_str_eq(why, "keyCompromise");
    ck_assert_int_eq(check(c, held, &why), CSC_REV_SUSPENDED);
    ck_assert_str_eq(why, "certificateHold");
    /* An issuer without a CRL: not checked, unless crl_require. */
    ck_assert_int_eq(check(c, other, &why), CSC_REV_GOOD);
    csc_crl_free(c);
    ck_assert_int_eq(csc_crl_new(crl_dir, anchors, 0, 1, 0, &c), 0);
    ck_assert_int_eq(check(c, other, &why), CSC_REV_UNKNOWN);
    ck_assert_int_eq(check(c, good, &why), CSC_REV_GOOD);
    csc_crl_free(c);
    X509_free(good);
    X509_free(bad);
    X509_free(held);
    X509_free(other);
    EVP_PKEY_free(k);
}
END_TEST

START_TEST(t_reload)
{
    EVP_PKEY *k = new_key();
    X509 *ee = make_cert("ee", 200, k, ca_cert, ca_key);
    entry_t e = {200, CRL_REASON_CERTIFICATE_HOLD};
    write_crl("ca.crl", ca_cert, ca_key, NULL, 0, 3600, 0);
    csc_crl_t *c;
    const char *why;
    ck_assert_int_eq(csc_crl_new(crl_dir, anchors, 0, 0, 0, &c), 0);
    ck_assert_int_eq(check(c, ee, &why), CSC_REV_GOOD);
    ck_assert_int_eq(csc_crl_reload(c), 0); /* nothing changed: no new snapshot */
    write_crl("ca.crl", ca_cert, ca_key, &e, 1, 3600, 1); /* now DER, with the certificate on hold */
    ck_assert_int_eq(csc_crl_reload(c), 1);
    ck_assert_int_eq(check(c, ee, &why), CSC_REV_SUSPENDED);
    write_crl("ca.crl", ca_cert, ca_key, NULL, 0, 3600, 0); /* released */
    ck_assert_int_eq(csc_crl_reload(c), 1);
    ck_assert_int_eq(check(c, ee, &why), CSC_REV_GOOD);
    /* Revoked again, then the file replaced by garbage, by a CRL of a stranger and by a forged one: the last good
     * version stays in force each time. */
    e.reason = CRL_REASON_KEY_COMPROMISE;
    write_crl("ca.crl", ca_cert, ca_key, &e, 1, 3600, 0);
    ck_assert_int_eq(csc_crl_reload(c), 1);
    ck_assert_int_eq(check(c, ee, &why), CSC_REV_REVOKED);
    write_file("ca.crl", "not a CRL", 9);
    csc_crl_reload(c);
    ck_assert_int_eq(check(c, ee, &why), CSC_REV_REVOKED);
    write_crl("ca.crl", ca_cert, rogue_key, NULL, 0, 3600, 0); /* the CA's name, another key */
    csc_crl_reload(c);
    ck_assert_int_eq(check(c, ee, &why), CSC_REV_REVOKED);
    ck_assert_uint_eq(csc_crl_count(c), 1);
    /* A CRL of an issuer that is no anchor is refused. */
    write_crl("rogue.crl", rogue_cert, rogue_key, NULL, 0, 3600, 0);
    csc_crl_reload(c);
    ck_assert_uint_eq(csc_crl_count(c), 1);
    /* Removing the file removes its revocations. */
    char path[160];
    snprintf(path, sizeof(path), "%s/ca.crl", crl_dir);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(csc_crl_reload(c), 1);
    ck_assert_int_eq(check(c, ee, &why), CSC_REV_GOOD);
    ck_assert_uint_eq(csc_crl_count(c), 0);
    csc_crl_free(c);
    X509_free(ee);
    EVP_PKEY_free(k);
}
END_TEST

START_TEST(t_stale)
{
    EVP_PKEY *k = new_key();
    X509 *ee = make_cert("ee", 300, k, ca_cert, ca_key);
    write_crl("ca.crl", ca_cert, ca_key, NULL, 0, -10, 0); /* nextUpdate 10 s ago */
    csc_crl_t *c;
    const char *why;
    ck_assert_int_eq(csc_crl_new(crl_dir, anchors, 0, 0, 0, &c), 0);
    ck_assert_int_eq(check(c, ee, &why), CSC_REV_UNKNOWN); /* fail closed */
    ck_assert_ptr_nonnull(strstr(why, "nextUpdate"));
    csc_crl_free(c);
    ck_assert_int_eq(csc_crl_new(crl_dir, anchors, 1, 0, 0, &c), 0);
    ck_assert_int_eq(check(c, ee, &why), CSC_REV_GOOD); /* crl_allow_stale */
    csc_crl_free(c);
    X509_free(ee);
    EVP_PKEY_free(k);
}
END_TEST

START_TEST(t_bad_setup)
{
    csc_crl_t *c = (csc_crl_t *)1;
    ck_assert_int_eq(csc_crl_new(crl_dir, "/nonexistent/anchors.pem", 0, 0, 0, &c), -1);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(csc_crl_new("/nonexistent/crl", anchors, 0, 0, 0, &c), -1);
    ck_assert_ptr_null(c);
}
END_TEST

/* Signing threads look up while the watcher thread swaps snapshots: every answer is one of the two states. */
typedef struct race {
    csc_crl_t *c;
    X509 *ee;
    int stop, bad;
    long checks;
} race_t;

static void *looker(void *arg)
{
    race_t *r = arg;
    const char *why;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        int v = csc_crl_check(r->c, r->ee, time(NULL), &why);
        if (v != CSC_REV_GOOD && v != CSC_REV_REVOKED)
            __atomic_store_n(&r->bad, 1, __ATOMIC_RELEASE);
        __atomic_add_fetch(&r->checks, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

START_TEST(t_concurrent_reload)
{
    EVP_PKEY *k = new_key();
    race_t r = {0};
    r.ee = make_cert("ee", 400, k, ca_cert, ca_key);
    entry_t e = {400, CRL_REASON_KEY_COMPROMISE};
    write_crl("ca.crl", ca_cert, ca_key, NULL, 0, 3600, 0);
    ck_assert_int_eq(csc_crl_new(crl_dir, anchors, 0, 0, 1, &r.c), 0); /* with the watcher thread */
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, looker, &r), 0);
    for (int i = 0; i < 20; i++) {
        write_crl("ca.crl", ca_cert, ca_key, i % 2 ? NULL : &e, i % 2 ? 0 : 1, 3600, 0);
        ck_assert_int_ge(csc_crl_reload(r.c), 0);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(r.bad, 0);
    ck_assert_int_gt(r.checks, 0);
    const char *why;
    ck_assert_int_eq(csc_crl_check(r.c, r.ee, time(NULL), &why), CSC_REV_GOOD); /* the last file: empty */
    csc_crl_free(r.c);
    X509_free(r.ee);
    EVP_PKEY_free(k);
}
END_TEST

START_TEST(t_subject)
{
    X509_NAME *n;
    char err[256], dn[256];
    ck_assert_int_eq(csc_subject_build("Taro Yamada", "Example KK", "JP", &n, err, sizeof(err)), 0);
    ck_assert_int_eq(csc_dn(n, dn, sizeof(dn)), 0);
    ck_assert_str_eq(dn, "CN=Taro Yamada,O=Example KK,C=JP");
    X509_NAME_free(n);
    ck_assert_int_eq(csc_subject_build("\xe5\xb1\xb1\xe7\x94\xb0", "O", "JP", &n, err, sizeof(err)), 0); /* UTF-8 */
    X509_NAME_free(n);
    static const char *const bad[][3] = {
        {"", "O", "JP"}, {"CN", "", "JP"}, {"CN", "O", "jp"}, {"CN", "O", "JPN"}, {"CN", "O", NULL},
        {NULL, "O", "JP"}, {"a\nb", "O", "JP"}, {"CN", "O\x01", "JP"},
        {"12345678901234567890123456789012345678901234567890123456789012345", "O", "JP"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = (X509_NAME *)1;
        ck_assert_int_eq(csc_subject_build(bad[i][0], bad[i][1], bad[i][2], &n, err, sizeof(err)), -1);
        ck_assert_ptr_null(n);
        ck_assert_int_gt(strlen(err), 0);
    }
}
END_TEST

/* ---- certificate requests signed in a SoftHSM token ------------------------------------------------------ */

static char hsm_dir[64];

static void hsm_setup(void)
{
    char conf[128], cmd[512];
    snprintf(hsm_dir, sizeof(hsm_dir), "/tmp/csc-csr-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(hsm_dir));
    snprintf(conf, sizeof(conf), "%s/softhsm2.conf", hsm_dir);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", hsm_dir);
    fclose(f);
    ck_assert_int_eq(setenv("SOFTHSM2_CONF", conf, 1), 0);
    snprintf(cmd, sizeof(cmd),
             "softhsm2-util --init-token --free --label csr-unit --so-pin 12345678 --pin 123456 >/dev/null");
    ck_assert_int_eq(system(cmd), 0);
}

static void hsm_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", hsm_dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(t_csr)
{
    static const struct {
        hsm_keyspec_t spec;
        int sig_nid;
    } keys[] = {
        {{HSM_KEY_RSA, 2048, 0}, NID_sha256WithRSAEncryption},
        {{HSM_KEY_EC, 256, NID_X9_62_prime256v1}, NID_ecdsa_with_SHA256},
        {{HSM_KEY_EC, 384, NID_secp384r1}, NID_ecdsa_with_SHA384},
        {{HSM_KEY_EC, 521, NID_secp521r1}, NID_ecdsa_with_SHA512},
    };
    hsm_config_t cfg = {.module = "/usr/lib/softhsm/libsofthsm2.so", .token_label = "csr-unit", .pin = "123456"};
    hsm_t *h;
    char err[256], dn[256];
    ck_assert_int_eq(hsm_open(&cfg, &h), HSM_OK);
    X509_NAME *subj;
    ck_assert_int_eq(csc_subject_build("Hanako", "Example KK", "JP", &subj, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        uint8_t id[HSM_KEYID_LEN];
        EVP_PKEY *pub;
        X509_REQ *req;
        ck_assert_int_eq(hsm_keygen(h, &keys[i].spec, "csr", id), HSM_OK);
        ck_assert_int_eq(hsm_pubkey(h, id, sizeof(id), &pub), HSM_OK);
        ck_assert_int_eq(csc_csr_build(h, id, sizeof(id), subj, &req, err, sizeof(err)), 0);
        ck_assert_int_eq(X509_REQ_verify(req, pub), 1);                   /* signed by the HSM key */
        ck_assert_int_eq(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), pub), 1); /* and naming it */
        ck_assert_int_eq(X509_REQ_get_signature_nid(req), keys[i].sig_nid);
        ck_assert_int_eq(csc_dn(X509_REQ_get_subject_name(req), dn, sizeof(dn)), 0);
        ck_assert_str_eq(dn, "CN=Hanako,O=Example KK,C=JP");
        /* Another key's public key does not verify it. */
        EVP_PKEY *other = EVP_EC_gen("P-256");
        ck_assert_int_ne(X509_REQ_verify(req, other), 1);
        EVP_PKEY_free(other);
        X509_REQ_free(req);
        EVP_PKEY_free(pub);
        ck_assert_int_eq(hsm_destroy(h, id, sizeof(id)), HSM_OK);
        /* No key, no request. */
        ck_assert_int_eq(csc_csr_build(h, id, sizeof(id), subj, &req, err, sizeof(err)), -1);
        ck_assert_ptr_null(req);
    }
    X509_NAME_free(subj);
    hsm_close(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("csc_crl");
    TCase *tc = tcase_create("crl");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_lookup);
    tcase_add_test(tc, t_reload);
    tcase_add_test(tc, t_stale);
    tcase_add_test(tc, t_bad_setup);
    tcase_add_test(tc, t_concurrent_reload);
    tcase_add_test(tc, t_subject);
    suite_add_tcase(s, tc);
    TCase *tc_csr = tcase_create("csr");
    tcase_add_checked_fixture(tc_csr, hsm_setup, hsm_teardown);
    tcase_set_timeout(tc_csr, 120);
    tcase_add_test(tc_csr, t_csr);
    suite_add_tcase(s, tc_csr);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
