/*
 * test_sign.c - hsm_sign: every scheme verified by OpenSSL, argument checks, batches, threads.
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/x509.h>

#include "check_hsm.h"

static EVP_PKEY *pub_of(hsm_t *h, const uint8_t *id)
{
    EVP_PKEY *pk = NULL;

    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_OK);
    return pk;
}

static const int mds[] = {NID_sha256, NID_sha384, NID_sha512};

/* The constant prefixes must equal what OpenSSL encodes for DigestInfo { {hash, NULL}, digest }. */
START_TEST(digestinfo_prefixes)
{
    uint8_t zero[64] = {0}, *der = NULL;
    X509_SIG *di = X509_SIG_new();
    X509_ALGOR *alg = NULL;
    ASN1_OCTET_STRING *dig = NULL;
    size_t plen = 0, mdlen = hsm_md_len(mds[_i]);
    const uint8_t *prefix = hsm_digestinfo_prefix(mds[_i], &plen);
    int len;

    ck_assert_ptr_nonnull(di);
    ck_assert_ptr_nonnull(prefix);
    ck_assert_uint_eq(mdlen, (size_t)EVP_MD_get_size(EVP_get_digestbynid(mds[_i])));
    X509_SIG_getm(di, &alg, &dig);
    ck_assert_int_eq(X509_ALGOR_set0(alg, OBJ_nid2obj(mds[_i]), V_ASN1_NULL, NULL), 1);
    ck_assert_int_eq(ASN1_OCTET_STRING_set(dig, zero, (int)mdlen), 1);
    len = i2d_X509_SIG(di, &der);
    ck_assert_int_eq(len, (int)(plen + mdlen));
    ck_assert_mem_eq(der, prefix, plen);
    OPENSSL_free(der);
    X509_SIG_free(di);
}
END_TEST

START_TEST(digestinfo_unknown)
{
    size_t len = 99;

    ck_assert_ptr_null(hsm_digestinfo_prefix(NID_sha1, &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_uint_eq(hsm_md_len(NID_sha1), 0);
    ck_assert_uint_eq(hsm_md_len(NID_sha224), 0);
}
END_TEST

START_TEST(sign_rsa_pkcs1)
{
    hsm_sign_params_t p = t_params(HSM_SIG_RSA_PKCS1, mds[_i], 0, 0);
    hsm_t *h = t_open(1);
    EVP_PKEY *pk = pub_of(h, t_env.rsa2048);

    ck_assert_int_eq(t_sign_verify(h, t_env.rsa2048, pk, &p), HSM_OK);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

/* PKCS#1 v1.5 is deterministic: the token's signature must equal OpenSSL's own encoding, byte for byte. */
START_TEST(sign_rsa_pkcs1_recover)
{
    hsm_sign_params_t p = t_params(HSM_SIG_RSA_PKCS1, NID_sha384, 0, 0);
    uint8_t dig[48], sig[HSM_SIG_MAX], rec[HSM_SIG_MAX];
    size_t slen = 0, rlen = sizeof(rec);
    hsm_t *h = t_open(1);
    EVP_PKEY *pk = pub_of(h, t_env.rsa2048);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);

    ck_assert_int_eq(RAND_bytes(dig, sizeof(dig)), 1);
    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &p, dig, sizeof(dig), sig, &slen), HSM_OK);
    ck_assert_uint_eq(slen, 256);
    ck_assert_int_eq(EVP_PKEY_verify_recover_init(c), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING), 1);
    ck_assert_int_eq(EVP_PKEY_verify_recover(c, rec, &rlen, sig, slen), 1);
    ck_assert_uint_eq(rlen, 19 + sizeof(dig));
    ck_assert_mem_eq(rec + 19, dig, sizeof(dig));
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

static const struct {
    int md, mgf;
    unsigned salt;
} pss_cases[] = {
    {NID_sha256, NID_sha256, 32}, {NID_sha256, NID_sha256, 20}, {NID_sha384, NID_sha384, 48},
    {NID_sha512, NID_sha512, 64}, {NID_sha256, NID_sha256, 0},  {NID_sha256, NID_sha256, 222},
};

START_TEST(sign_rsa_pss)
{
    hsm_sign_params_t p = t_params(HSM_SIG_RSA_PSS, pss_cases[_i].md, pss_cases[_i].mgf, pss_cases[_i].salt);
    hsm_t *h = t_open(1);
    EVP_PKEY *pk = pub_of(h, t_env.rsa2048);

    ck_assert_int_eq(t_sign_verify(h, t_env.rsa2048, pk, &p), HSM_OK);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

/* A signature made with salt 32 must not verify when the verifier expects salt 20. */
START_TEST(sign_rsa_pss_salt_matters)
{
    hsm_sign_params_t p = t_params(HSM_SIG_RSA_PSS, NID_sha256, NID_sha256, 32);
    hsm_sign_params_t q = t_params(HSM_SIG_RSA_PSS, NID_sha256, NID_sha256, 20);
    uint8_t dig[32] = {7}, sig[HSM_SIG_MAX];
    size_t slen = 0;
    hsm_t *h = t_open(1);
    EVP_PKEY *pk = pub_of(h, t_env.rsa2048);

    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &p, dig, sizeof(dig), sig, &slen), HSM_OK);
    ck_assert(t_verify(pk, &p, dig, sizeof(dig), sig, slen));
    ck_assert(!t_verify(pk, &q, dig, sizeof(dig), sig, slen));
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

START_TEST(sign_rsa_pss_invalid)
{
    hsm_sign_params_t big = t_params(HSM_SIG_RSA_PSS, NID_sha256, NID_sha256, 223); /* 256 - 32 - 2 + 1 */
    hsm_sign_params_t huge = t_params(HSM_SIG_RSA_PSS, NID_sha256, NID_sha256, 1u << 30);
    hsm_sign_params_t nomgf = t_params(HSM_SIG_RSA_PSS, NID_sha256, NID_sha1, 32);
    hsm_sign_params_t zeromgf = t_params(HSM_SIG_RSA_PSS, NID_sha256, 0, 32);
    uint8_t dig[32] = {0}, sig[HSM_SIG_MAX];
    size_t slen = 0;
    hsm_t *h = t_open(1);

    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &big, dig, sizeof(dig), sig, &slen), HSM_ERR_INVAL);
    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &huge, dig, sizeof(dig), sig, &slen), HSM_ERR_INVAL);
    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &nomgf, dig, sizeof(dig), sig, &slen), HSM_ERR_INVAL);
    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &zeromgf, dig, sizeof(dig), sig, &slen), HSM_ERR_INVAL);
    hsm_close(h);
}
END_TEST

/* SoftHSM only does PSS with MGF1 over the message hash (CKR_ARGUMENTS_BAD otherwise): a token limit. */
START_TEST(sign_rsa_pss_mgf_mismatch)
{
    hsm_sign_params_t p = t_params(HSM_SIG_RSA_PSS, NID_sha256, NID_sha512, 32);
    hsm_sign_params_t q = t_params(HSM_SIG_RSA_PSS, NID_sha384, NID_sha256, 32);
    hsm_sign_params_t ok = t_params(HSM_SIG_RSA_PSS, NID_sha256, NID_sha256, 32);
    uint8_t dig[48] = {0}, sig[HSM_SIG_MAX];
    size_t slen = 0;
    hsm_t *h = t_open(1);
    EVP_PKEY *pk = pub_of(h, t_env.rsa2048);

    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &p, dig, 32, sig, &slen), HSM_ERR_MECH);
    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &q, dig, 48, sig, &slen), HSM_ERR_MECH);
    ck_assert_int_eq(t_sign_verify(h, t_env.rsa2048, pk, &ok), HSM_OK);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

static const struct {
    int key; /* 0 = P-256, 1 = P-384 */
    int md;
} ec_cases[] = {
    {0, NID_sha256}, {0, NID_sha384}, {0, NID_sha512}, {1, NID_sha384}, {1, NID_sha256}, {1, NID_sha512},
};

START_TEST(sign_ecdsa)
{
    const uint8_t *id = ec_cases[_i].key == 0 ? t_env.ec256 : t_env.ec384;
    hsm_sign_params_t p = t_params(HSM_SIG_ECDSA, ec_cases[_i].md, 0, 0);
    uint8_t dig[64], sig[HSM_SIG_MAX];
    size_t slen = 0, dlen = hsm_md_len(ec_cases[_i].md);
    const unsigned char *q;
    ECDSA_SIG *es;
    hsm_t *h = t_open(1);
    EVP_PKEY *pk = pub_of(h, id);

    ck_assert_int_eq(t_sign_verify(h, id, pk, &p), HSM_OK);
    /* The output is a DER ECDSA-Sig-Value that parses completely. */
    ck_assert_int_eq(RAND_bytes(dig, (int)dlen), 1);
    ck_assert_int_eq(t_sign1(h, id, &p, dig, dlen, sig, &slen), HSM_OK);
    q = sig;
    ck_assert_ptr_nonnull(es = d2i_ECDSA_SIG(NULL, &q, (long)slen));
    ck_assert_ptr_eq(q, sig + slen);
    ck_assert_uint_le(slen, ec_cases[_i].key == 0 ? 72 : 104);
    ECDSA_SIG_free(es);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

START_TEST(sign_wrong_digest_length)
{
    hsm_sign_params_t pkcs1 = t_params(HSM_SIG_RSA_PKCS1, NID_sha256, 0, 0);
    hsm_sign_params_t pss = t_params(HSM_SIG_RSA_PSS, NID_sha384, NID_sha384, 48);
    hsm_sign_params_t ecdsa = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    hsm_sign_params_t sha1 = t_params(HSM_SIG_ECDSA, NID_sha1, 0, 0);
    uint8_t dig[64] = {0}, sig[HSM_SIG_MAX];
    size_t slen = 77;
    hsm_t *h = t_open(1);

    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &pkcs1, dig, 48, sig, &slen), HSM_ERR_INVAL);
    ck_assert_uint_eq(slen, 0);
    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &pkcs1, dig, 31, sig, &slen), HSM_ERR_INVAL);
    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &pss, dig, 32, sig, &slen), HSM_ERR_INVAL);
    ck_assert_int_eq(t_sign1(h, t_env.ec256, &ecdsa, dig, 64, sig, &slen), HSM_ERR_INVAL);
    ck_assert_int_eq(t_sign1(h, t_env.ec256, &ecdsa, dig, 0, sig, &slen), HSM_ERR_INVAL);
    ck_assert_int_eq(t_sign1(h, t_env.ec256, &sha1, dig, 20, sig, &slen), HSM_ERR_INVAL);
    hsm_close(h);
}
END_TEST

START_TEST(sign_scheme_key_mismatch)
{
    hsm_sign_params_t pkcs1 = t_params(HSM_SIG_RSA_PKCS1, NID_sha256, 0, 0);
    hsm_sign_params_t pss = t_params(HSM_SIG_RSA_PSS, NID_sha256, NID_sha256, 32);
    hsm_sign_params_t ecdsa = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    uint8_t dig[32] = {0}, sig[HSM_SIG_MAX];
    size_t slen = 0;
    hsm_t *h = t_open(1);

    ck_assert_int_eq(t_sign1(h, t_env.ec256, &pkcs1, dig, sizeof(dig), sig, &slen), HSM_ERR_MECH);
    ck_assert_int_eq(t_sign1(h, t_env.ec256, &pss, dig, sizeof(dig), sig, &slen), HSM_ERR_MECH);
    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &ecdsa, dig, sizeof(dig), sig, &slen), HSM_ERR_MECH);
    /* The same keys still sign with their own schemes (no session left in a bad state). */
    ck_assert_int_eq(t_sign1(h, t_env.ec256, &ecdsa, dig, sizeof(dig), sig, &slen), HSM_OK);
    ck_assert_int_eq(t_sign1(h, t_env.rsa2048, &pss, dig, sizeof(dig), sig, &slen), HSM_OK);
    hsm_close(h);
}
END_TEST

START_TEST(sign_unknown_key)
{
    static const uint8_t unknown[HSM_KEYID_LEN] = {0xde, 0xad};
    hsm_sign_params_t p = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    uint8_t dig[32] = {0}, sig[HSM_SIG_MAX];
    size_t slen = 0;
    hsm_t *h = t_open(1);

    ck_assert_int_eq(t_sign1(h, unknown, &p, dig, sizeof(dig), sig, &slen), HSM_ERR_NOKEY);
    ck_assert_uint_eq(hsm_test_cache_count(h), 0); /* misses are not cached */
    hsm_close(h);
}
END_TEST

START_TEST(sign_invalid_args)
{
    hsm_sign_params_t p = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    hsm_sign_params_t bad = t_params((hsm_sig_scheme_t)42, NID_sha256, 0, 0);
    uint8_t dig[32] = {0}, sig[HSM_SIG_MAX], long_id[HSM_ID_MAX + 1] = {0};
    const uint8_t *digs[2] = {dig, NULL};
    uint8_t *sigs[2] = {sig, sig};
    size_t lens[2] = {5, 5};
    hsm_t *h = t_open(1);

    ck_assert_int_eq(t_sign1(h, t_env.ec256, &bad, dig, sizeof(dig), sig, lens), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_sign(NULL, t_env.ec256, HSM_KEYID_LEN, &p, digs, 32, 1, sigs, lens), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_sign(h, NULL, HSM_KEYID_LEN, &p, digs, 32, 1, sigs, lens), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_sign(h, t_env.ec256, 0, &p, digs, 32, 1, sigs, lens), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_sign(h, long_id, sizeof(long_id), &p, digs, 32, 1, sigs, lens), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_sign(h, t_env.ec256, HSM_KEYID_LEN, NULL, digs, 32, 1, sigs, lens), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_sign(h, t_env.ec256, HSM_KEYID_LEN, &p, NULL, 32, 1, sigs, lens), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_sign(h, t_env.ec256, HSM_KEYID_LEN, &p, digs, 32, 1, NULL, lens), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_sign(h, t_env.ec256, HSM_KEYID_LEN, &p, digs, 32, 1, sigs, NULL), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_sign(h, t_env.ec256, HSM_KEYID_LEN, &p, digs, 32, 0, sigs, lens), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_sign(h, t_env.ec256, HSM_KEYID_LEN, &p, digs, 32, 2, sigs, lens), HSM_ERR_INVAL);
    ck_assert_uint_eq(lens[0], 0);
    ck_assert_uint_eq(lens[1], 0);
    hsm_close(h);
}
END_TEST

/* Start a sign operation on a pool session and leave it active, as a failed C_Sign can. */
static CK_SESSION_HANDLE leave_op_active(hsm_t *h, int mark_dirty)
{
    CK_SLOT_ID slot;
    CK_FUNCTION_LIST *p11 = hsm_test_p11(h, &slot);
    CK_SESSION_HANDLE raw = t_raw_session(h), old;
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    CK_OBJECT_HANDLE key = t_raw_find(h, raw, CKO_PRIVATE_KEY, t_env.ec256);
    hsm_sess_t *s = NULL;

    t_raw_close(h, raw);
    ck_assert_int_eq(hsm_pool_borrow(h, &s), HSM_OK);
    old = s->handle;
    ck_assert_int_eq(p11->C_SignInit(s->handle, &mech, key), CKR_OK);
    s->dirty = mark_dirty;
    ck_assert_int_eq(hsm_pool_return(h, s, HSM_OK), HSM_OK);
    return old;
}

/* A dirty session is replaced before the next borrower gets it. */
START_TEST(dirty_session_replaced)
{
    hsm_t *h = t_open(1);
    CK_SESSION_HANDLE old = leave_op_active(h, 1);
    hsm_sess_t *s = NULL;
    EVP_PKEY *pk = pub_of(h, t_env.ec256);
    hsm_sign_params_t p = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);

    ck_assert_int_eq(hsm_pool_borrow(h, &s), HSM_OK);
    ck_assert_uint_ne(s->handle, old);
    ck_assert_int_eq(hsm_pool_return(h, s, HSM_OK), HSM_OK);
    ck_assert_int_eq(t_sign_verify(h, t_env.ec256, pk, &p), HSM_OK);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

/* An operation left active unnoticed: the next call fails (CKR_OPERATION_ACTIVE), the one after works. */
START_TEST(active_operation_cleaned)
{
    hsm_t *h = t_open(1);
    EVP_PKEY *pk = pub_of(h, t_env.ec256);
    hsm_sign_params_t p = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);

    (void)leave_op_active(h, 0);
    ck_assert_int_eq(t_sign_verify(h, t_env.ec256, pk, &p), HSM_ERR_INTERNAL);
    ck_assert_int_eq(t_sign_verify(h, t_env.ec256, pk, &p), HSM_OK);
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

#define BATCH 64

/* One call, 64 digests, one session: every signature verifies against its own digest. */
START_TEST(sign_batch)
{
    const uint8_t *id = _i == 0 ? t_env.ec256 : t_env.rsa2048;
    hsm_sign_params_t p = _i == 0 ? t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0)
                                  : t_params(HSM_SIG_RSA_PSS, NID_sha256, NID_sha256, 32);
    static uint8_t dig[BATCH][32], sig[BATCH][HSM_SIG_MAX];
    const uint8_t *digs[BATCH];
    uint8_t *sigs[BATCH];
    size_t lens[BATCH], i;
    hsm_t *h = t_open(2);
    EVP_PKEY *pk = pub_of(h, id);

    for (i = 0; i < BATCH; i++) {
        ck_assert_int_eq(RAND_bytes(dig[i], 32), 1);
        digs[i] = dig[i];
        sigs[i] = sig[i];
    }
    ck_assert_int_eq(hsm_sign(h, id, HSM_KEYID_LEN, &p, digs, 32, BATCH, sigs, lens), HSM_OK);
    for (i = 0; i < BATCH; i++) {
        ck_assert_msg(t_verify(pk, &p, dig[i], 32, sig[i], lens[i]), "signature %zu", i);
        /* Signatures are not shifted: each belongs to its own digest. */
        ck_assert(!t_verify(pk, &p, dig[(i + 1) % BATCH], 32, sig[i], lens[i]));
    }
    EVP_PKEY_free(pk);
    hsm_close(h);
}
END_TEST

#define THREADS 8
#define PER_THREAD 40

typedef struct worker {
    hsm_t *h;
    EVP_PKEY *rsa, *ec;
    int seed;
    int ok, failed;
} worker_t;

static void *sign_worker(void *arg)
{
    worker_t *w = arg;
    hsm_sign_params_t pe = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    hsm_sign_params_t pr = t_params(HSM_SIG_RSA_PKCS1, NID_sha256, 0, 0);
    uint8_t dig[4][32], sig[4][HSM_SIG_MAX];
    const uint8_t *digs[4] = {dig[0], dig[1], dig[2], dig[3]};
    uint8_t *sigs[4] = {sig[0], sig[1], sig[2], sig[3]};
    size_t lens[4], n, j;
    int i, rsa;

    for (i = 0; i < PER_THREAD; i++) {
        rsa = (i + w->seed) % 4 == 0; /* mostly ECDSA: RSA is slow */
        n = (size_t)(i % 4) + 1;
        for (j = 0; j < n; j++)
            RAND_bytes(dig[j], 32);
        if (hsm_sign(w->h, rsa ? t_env.rsa2048 : t_env.ec256, HSM_KEYID_LEN, rsa ? &pr : &pe, digs, 32, n, sigs,
                     lens) != HSM_OK) {
            w->failed++;
            continue;
        }
        for (j = 0; j < n; j++) {
            if (t_verify(rsa ? w->rsa : w->ec, rsa ? &pr : &pe, dig[j], 32, sig[j], lens[j]))
                w->ok++;
            else
                w->failed++;
        }
    }
    return NULL;
}

/* 8 threads on a pool of 2 or 4 sessions: no crash, no failure, every signature verifies. */
START_TEST(sign_threads)
{
    unsigned sessions = _i == 0 ? 2 : 4;
    hsm_t *h = t_open(sessions);
    worker_t w[THREADS];
    pthread_t th[THREADS];
    int i, ok = 0, expected = 0;

    for (i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.h = h, .rsa = pub_of(h, t_env.rsa2048), .ec = pub_of(h, t_env.ec256), .seed = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, sign_worker, &w[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(w[i].failed, 0);
        ok += w[i].ok;
        EVP_PKEY_free(w[i].rsa);
        EVP_PKEY_free(w[i].ec);
    }
    for (i = 0; i < PER_THREAD; i++)
        expected += i % 4 + 1;
    ck_assert_int_eq(ok, THREADS * expected);
    ck_assert_uint_eq(hsm_sessions(h), sessions);
    hsm_close(h);
}
END_TEST

/* hsm_session_waits counts a signature that found every session lent out (csc_hsm_session_waits_total): the only
 * session held here, a signing thread waits for it, once. */
typedef struct waiter {
    hsm_t *h;
    int rc;
} waiter_t;

static void *sign_one(void *arg)
{
    waiter_t *w = arg;
    w->rc = t_sign_rc(w->h, t_env.ec256);
    return NULL;
}

START_TEST(session_waits_counted)
{
    hsm_t *h = t_open(1);
    hsm_sess_t *s = NULL;
    waiter_t w = {.h = h, .rc = -1};
    pthread_t th;
    int i;

    ck_assert_uint_eq(hsm_session_waits(NULL), 0);
    ck_assert_int_eq(t_sign_rc(h, t_env.ec256), HSM_OK);
    ck_assert_uint_eq(hsm_session_waits(h), 0); /* a free session: no wait */
    ck_assert_int_eq(hsm_pool_borrow(h, &s), HSM_OK);
    ck_assert_int_eq(pthread_create(&th, NULL, sign_one, &w), 0);
    for (i = 0; i < 500 && hsm_session_waits(h) == 0; i++)
        usleep(10 * 1000);
    ck_assert_uint_eq(hsm_session_waits(h), 1);
    ck_assert_int_eq(hsm_pool_return(h, s, HSM_OK), HSM_OK);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(w.rc, HSM_OK);
    ck_assert_uint_eq(hsm_session_waits(h), 1);
    hsm_close(h);
}
END_TEST

Suite *t_suite_sign(void)
{
    Suite *s = suite_create("hsm_sign");
    TCase *tc = tcase_create("sign");
    TCase *tt = tcase_create("threads");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, t_setup, NULL);
    tcase_add_loop_test(tc, digestinfo_prefixes, 0, 3);
    tcase_add_test(tc, digestinfo_unknown);
    tcase_add_test(tc, session_waits_counted);
    tcase_add_loop_test(tc, sign_rsa_pkcs1, 0, 3);
    tcase_add_test(tc, sign_rsa_pkcs1_recover);
    tcase_add_loop_test(tc, sign_rsa_pss, 0, (int)(sizeof(pss_cases) / sizeof(pss_cases[0])));
    tcase_add_test(tc, sign_rsa_pss_salt_matters);
    tcase_add_test(tc, sign_rsa_pss_invalid);
    tcase_add_test(tc, sign_rsa_pss_mgf_mismatch);
    tcase_add_loop_test(tc, sign_ecdsa, 0, (int)(sizeof(ec_cases) / sizeof(ec_cases[0])));
    tcase_add_test(tc, sign_wrong_digest_length);
    tcase_add_test(tc, sign_scheme_key_mismatch);
    tcase_add_test(tc, sign_unknown_key);
    tcase_add_test(tc, sign_invalid_args);
    tcase_add_loop_test(tc, sign_batch, 0, 2);
    tcase_add_test(tc, dirty_session_replaced);
    tcase_add_test(tc, active_operation_cleaned);
    suite_add_tcase(s, tc);
    tcase_set_timeout(tt, 120);
    tcase_add_checked_fixture(tt, t_setup, NULL);
    tcase_add_loop_test(tt, sign_threads, 0, 2);
    suite_add_tcase(s, tt);
    return s;
}
