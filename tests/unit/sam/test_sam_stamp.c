/*
 * test_sam_stamp.c - csc-sam's STAMP (sam/sam_op_stamp.c) and its key-jobs task (sam/sam_keyjobs.c), spoken to
 * directly as a compromised front end would, on the fixture's provisioned world (tests/unit/fixture: a user, its
 * credentials, a TSA, an in-process SAM server): a token over a SAM-made TSTInfo for a valid access token; forged
 * and expired tokens, unknown and weak hash algorithms, digests of the wrong length, an oversized nonce (raw bytes
 * the builder would refuse), a TSA not offered: each refused with its code, audited, and the SAM still serves. The
 * key destructions the CRL sweep files: run at once, audited, idempotent; a request for a second operator waits.
 * ctest: unit_sam_stamp.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/ts.h>

#include "csc_fixture.h"
#include "oauth_int.h" /* oauth_int_set_skew */
#include "sam_client.h"

#define POLICY "1.2.3.4.5.1"
#define SHA256 "2.16.840.1.101.3.4.2.1"
#define SHA512 "2.16.840.1.101.3.4.2.3"
#define SHA1 "1.3.14.3.2.26"

static cfx_t fx;

static void open_with_tsa(void)
{
    csc_config_t cfg;
    cfx_config(&cfg);
    cfg.tsa_credential = CFX_TSA;
    cfg.tsa_policy = POLICY;
    cfg.tsa_accuracy_ms = 1500;
    cfx_open(&fx, &cfg);
}

static void open_plain(void)
{
    cfx_open(&fx, NULL);
}

static void close_fx(void)
{
    cfx_close(&fx);
}

/* One STAMP over the pool. The refusal code (0: a token in *tst, malloc'd) and what it was about. */
typedef struct stamp_req {
    const char *token, *cred, *oid;
    const uint8_t *digest;
    size_t len;
    const uint8_t *nonce;
    size_t nonce_len;
} stamp_req_t;

static uint32_t stamp(const stamp_req_t *q, uint8_t **tst, size_t *tst_len, uint32_t *about)
{
    sam_builder_t b;
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    const uint8_t *msg;
    size_t len;
    uint32_t code = 0;

    *about = 0;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_STAMP, sam_client_next_id(fx.sam)), SAM_OK);
    sam_put_str(&b, SAM_T_TOKEN, q->token);
    if (q->cred != NULL)
        sam_put_str(&b, SAM_T_CRED, q->cred);
    sam_put_str(&b, SAM_T_HASH_ALG, q->oid);
    sam_put_bytes(&b, SAM_T_DIGEST, q->digest, q->len);
    sam_put_str(&b, SAM_T_CLIENT, "test 127.0.0.1");
    if (q->nonce != NULL)
        sam_put_bytes(&b, SAM_T_NONCE, q->nonce, q->nonce_len);
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(fx.sam, msg, len, &rb, &reply), SAM_OK);
    if (reply.op == SAM_OP_REFUSED) {
        ck_assert_int_eq(sam_get_u32(&reply, SAM_T_REFUSAL, &code), SAM_OK);
        (void)sam_get_u32(&reply, SAM_T_ABOUT, about);
        ck_assert_uint_ne(code, 0);
    } else {
        const uint8_t *p;
        ck_assert_uint_eq(reply.op, SAM_OP_STAMP | SAM_OP_REPLY);
        ck_assert_int_eq(sam_get_bytes(&reply, SAM_T_TST, &p, tst_len), SAM_OK);
        *tst = malloc(*tst_len);
        memcpy(*tst, p, *tst_len);
    }
    sam_build_free(&b);
    sam_rbuf_free(&rb);
    return code;
}

static uint32_t stamp_refused(const stamp_req_t *q, uint32_t *about)
{
    uint8_t *tst = NULL;
    size_t n = 0;
    uint32_t code = stamp(q, &tst, &n, about);
    ck_assert_ptr_null(tst);
    return code;
}

/* The SAM still answers: a valid request gets its token. */
static void still_serves(const char *token)
{
    uint8_t d[32], *tst = NULL;
    size_t n = 0;
    uint32_t about;
    memset(d, 0x5a, sizeof(d));
    stamp_req_t q = {.token = token, .oid = SHA256, .digest = d, .len = sizeof(d)};
    ck_assert_uint_eq(stamp(&q, &tst, &n, &about), 0);
    ck_assert_uint_gt(n, 0);
    free(tst);
}

/* The token's TSTInfo: the imprint, the nonce and the SAM's policy; the signature verifies. */
static void check_token(const uint8_t *tst, size_t n, const uint8_t *digest, size_t len, const uint8_t *nonce,
                        size_t nonce_len)
{
    const unsigned char *p = tst;
    PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)n);
    ck_assert_ptr_nonnull(p7);
    ck_assert_int_eq(PKCS7_verify(p7, NULL, NULL, NULL, NULL, PKCS7_NOVERIFY), 1);
    TS_TST_INFO *info = PKCS7_to_TS_TST_INFO(p7);
    ck_assert_ptr_nonnull(info);
    char oid[64];
    OBJ_obj2txt(oid, sizeof(oid), TS_TST_INFO_get_policy_id(info), 1);
    ck_assert_str_eq(oid, POLICY);
    const ASN1_OCTET_STRING *m = TS_MSG_IMPRINT_get_msg(TS_TST_INFO_get_msg_imprint(info));
    ck_assert_int_eq(ASN1_STRING_length(m), (int)len);
    ck_assert_mem_eq(ASN1_STRING_get0_data(m), digest, len);
    const ASN1_INTEGER *no = TS_TST_INFO_get_nonce(info);
    if (nonce == NULL) {
        ck_assert_ptr_null(no);
    } else {
        BIGNUM *want = BN_bin2bn(nonce, (int)nonce_len, NULL), *got = ASN1_INTEGER_to_BN(no, NULL);
        ck_assert_int_eq(BN_cmp(want, got), 0);
        BN_free(want);
        BN_free(got);
    }
    const TS_ACCURACY *acc = TS_TST_INFO_get_accuracy(info);
    ck_assert_ptr_nonnull(acc);
    ck_assert_int_eq(ASN1_INTEGER_get(TS_ACCURACY_get_seconds(acc)), 1);
    ck_assert_int_eq(ASN1_INTEGER_get(TS_ACCURACY_get_millis(acc)), 500);
    TS_TST_INFO_free(info);
    PKCS7_free(p7);
}

START_TEST(t_stamp_made_by_the_sam)
{
    char *token = cfx_login(&fx);
    uint8_t d[64], nonce[32], *tst = NULL;
    size_t n = 0;
    uint32_t about;
    RAND_bytes(d, sizeof(d));
    RAND_bytes(nonce, sizeof(nonce));
    unsigned before = cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_OK, CFX_TSA);
    stamp_req_t q = {.token = token, .oid = SHA512, .digest = d, .len = 64, .nonce = nonce, .nonce_len = 32};
    ck_assert_uint_eq(stamp(&q, &tst, &n, &about), 0);
    check_token(tst, n, d, 64, nonce, 32);
    free(tst);
    ck_assert_uint_eq(cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_OK, CFX_TSA), before + 1);
    /* A credential named with a service token changes nothing: the TSTInfo is the SAM's either way. */
    q = (stamp_req_t){.token = token, .cred = CFX_CRED_EC, .oid = SHA256, .digest = d, .len = 32};
    ck_assert_uint_eq(stamp(&q, &tst, &n, &about), 0);
    check_token(tst, n, d, 32, NULL, 0);
    free(tst);
    free(token);
}
END_TEST

START_TEST(t_stamp_refusals)
{
    char *token = cfx_login(&fx);
    uint8_t d[64];
    uint32_t about;
    memset(d, 0x11, sizeof(d));
    unsigned denied = cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_DENIED, NULL);
    unsigned ok = cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_OK, NULL);

    /* a forged access token */
    stamp_req_t q = {.token = "forged-token-0123456789abcdefghijklmnopqrstu", .oid = SHA256, .digest = d, .len = 32};
    ck_assert_uint_eq(stamp_refused(&q, &about), SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(about, SAM_T_TOKEN);
    /* an unknown hash OID, and SHA-1 (below SHA-256) */
    q = (stamp_req_t){.token = token, .oid = "1.2.3.4", .digest = d, .len = 32};
    ck_assert_uint_eq(stamp_refused(&q, &about), SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(about, SAM_T_HASH_ALG);
    q.oid = SHA1;
    q.len = 20;
    ck_assert_uint_eq(stamp_refused(&q, &about), SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(about, SAM_T_HASH_ALG);
    /* a digest that is not the algorithm's length: shorter, longer */
    q = (stamp_req_t){.token = token, .oid = SHA256, .digest = d, .len = 31};
    ck_assert_uint_eq(stamp_refused(&q, &about), SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(about, SAM_T_DIGEST);
    q.len = 48;
    ck_assert_uint_eq(stamp_refused(&q, &about), SAM_REFUSE_BAD_MESSAGE);
    ck_assert_uint_eq(about, SAM_T_DIGEST);
    q = (stamp_req_t){.token = token, .oid = SHA512, .digest = d, .len = 32};
    ck_assert_uint_eq(stamp_refused(&q, &about), SAM_REFUSE_BAD_MESSAGE);

    /* every refusal audited, no token made */
    ck_assert_uint_eq(cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_DENIED, NULL), denied + 6);
    ck_assert_uint_eq(cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_OK, NULL), ok);
    still_serves(token);

    /* the same token once it has expired */
    oauth_int_set_skew(fx.oauth, 3 * 86400);
    q = (stamp_req_t){.token = token, .oid = SHA256, .digest = d, .len = 32};
    ck_assert_uint_eq(stamp_refused(&q, &about), SAM_REFUSE_EXPIRED);
    ck_assert_uint_eq(about, SAM_T_TOKEN);
    oauth_int_set_skew(fx.oauth, 0);
    still_serves(token);
    free(token);
}
END_TEST

/* Raw bytes: a STAMP whose nonce is one byte over SAM_NONCE_MAX (the builder cannot make it). */
static size_t put_field(uint8_t *p, unsigned tag, const void *v, size_t n)
{
    p[0] = (uint8_t)(tag >> 8);
    p[1] = (uint8_t)tag;
    p[2] = (uint8_t)(n >> 24);
    p[3] = (uint8_t)(n >> 16);
    p[4] = (uint8_t)(n >> 8);
    p[5] = (uint8_t)n;
    memcpy(p + 6, v, n);
    return 6 + n;
}

START_TEST(t_stamp_oversized_nonce)
{
    char *token = cfx_login(&fx);
    uint8_t msg[1024] = {0x53, 0x41, 1, SAM_OP_STAMP, 0, 0, 0, 0, 0, 0, 0, 7}, d[32], nonce[SAM_NONCE_MAX + 1];
    memset(d, 0x22, sizeof(d));
    memset(nonce, 0x33, sizeof(nonce));
    size_t len = SAM_HDR_LEN;
    len += put_field(msg + len, SAM_T_TOKEN, token, strlen(token));
    len += put_field(msg + len, SAM_T_HASH_ALG, SHA256, strlen(SHA256));
    len += put_field(msg + len, SAM_T_DIGEST, d, sizeof(d));
    len += put_field(msg + len, SAM_T_CLIENT, "raw", 3);
    len += put_field(msg + len, SAM_T_NONCE, nonce, sizeof(nonce));
    size_t body = len - SAM_HDR_LEN;
    msg[12] = (uint8_t)(body >> 24);
    msg[13] = (uint8_t)(body >> 16);
    msg[14] = (uint8_t)(body >> 8);
    msg[15] = (uint8_t)body;

    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(fx.sam_path), sizeof(a.sun_path));
    memcpy(a.sun_path, fx.sam_path, strlen(fx.sam_path) + 1);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(sam_send(fd, msg, len, sam_now_ms() + 5000), SAM_OK);
    sam_rbuf_t rb = {0};
    sam_msg_t reply;
    uint32_t code = 0;
    ck_assert_int_eq(sam_recv(fd, &rb, sam_now_ms() + 5000), SAM_OK);
    ck_assert_int_eq(sam_msg_decode(rb.buf, rb.len, &reply), SAM_OK);
    ck_assert_uint_eq(reply.op, SAM_OP_REFUSED);
    ck_assert_int_eq(sam_get_u32(&reply, SAM_T_REFUSAL, &code), SAM_OK);
    ck_assert_uint_eq(code, SAM_REFUSE_BAD_MESSAGE);
    sam_rbuf_free(&rb);
    close(fd);
    /* the same request with a nonce of SAM_NONCE_MAX bytes is stamped: the SAM is still up */
    uint8_t *tst = NULL;
    size_t n = 0;
    uint32_t about;
    stamp_req_t q = {.token = token, .oid = SHA256, .digest = d, .len = 32, .nonce = nonce, .nonce_len = SAM_NONCE_MAX};
    ck_assert_uint_eq(stamp(&q, &tst, &n, &about), 0);
    check_token(tst, n, d, 32, nonce, SAM_NONCE_MAX);
    free(tst);
    free(token);
}
END_TEST

/* No tsa_credential: NOT_OFFERED, audited; the front end says 501. */
START_TEST(t_stamp_not_offered)
{
    char *token = cfx_login(&fx);
    uint8_t d[32] = {1};
    uint32_t about;
    stamp_req_t q = {.token = token, .oid = SHA256, .digest = d, .len = 32};
    ck_assert_uint_eq(stamp_refused(&q, &about), SAM_REFUSE_NOT_OFFERED);
    ck_assert_uint_eq(cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_DENIED, NULL), 1);
    cfx_reply_t x;
    cfx_post(&fx, &x, token, "/csc/v2/signatures/timestamp {\"hash\":\"%s\",\"hashAlgo\":\"" SHA256 "\"}",
             "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    cfx_expect_error(&x, 501, "not_implemented", NULL);
    free(token);
}
END_TEST

/* The front end's signatures/timestamp goes through STAMP: the token it returns is the SAM's. */
START_TEST(t_timestamp_method_through_the_sam)
{
    char *token = cfx_login(&fx);
    uint8_t d[32];
    memset(d, 0x44, sizeof(d));
    char *h = cfx_b64(d, sizeof(d));
    cfx_reply_t x;
    cfx_post(&fx, &x, token, "/csc/v2/signatures/timestamp {\"hash\":\"%s\",\"hashAlgo\":\"" SHA256 "\","
             "\"nonce\":\"0a0b\"}", h);
    ck_assert_int_eq(x.r.status, 200);
    size_t n = 0;
    uint8_t *tst = cfx_unb64(cfx_str(&x, "timestamp", NULL), &n);
    ck_assert_ptr_nonnull(tst);
    const uint8_t nonce[2] = {0x0a, 0x0b};
    check_token(tst, n, d, sizeof(d), nonce, 2);
    free(tst);
    cfx_reply_free(&x);
    ck_assert_uint_eq(cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_OK, CFX_TSA), 1);
    free(h);
    free(token);
}
END_TEST

/* ---- the key destructions the CRL sweep files (sam_keyjobs.c) --------------------------------------------- */

typedef struct file_job {
    const char *cred;
    uint32_t flags;
    char id[STOR_NAME_MAX + 1];
} file_job_t;

static int file_fn(stor_txn_t *t, void *arg)
{
    file_job_t *j = arg;
    char *argv[3] = {"credential", "revoke", (char *)j->cred};
    return stor_txn_approval_request(t, "csc-server", STOR_ROLE_KEY_ADMIN, 0, j->flags, 3, argv, j->id);
}

static int key_present(const char *cred)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    ck_assert_int_eq(stor_cred_get(fx.stor, cred, c), STOR_OK);
    EVP_PKEY *pub = NULL;
    int rc = hsm_pubkey(fx.hsm, c->key_id, c->key_id_len, &pub);
    EVP_PKEY_free(pub);
    free(c);
    return rc == HSM_OK;
}

typedef struct ap_get {
    const char *id;
    stor_approval_t ap;
} ap_get_t;

static int ap_get_fn(stor_txn_t *t, void *arg)
{
    ap_get_t *g = arg;
    return stor_txn_approval_get(t, g->id, &g->ap);
}

static int approval_there(const char *id)
{
    ap_get_t *g = calloc(1, sizeof(*g));
    g->id = id;
    int rc = stor_read(fx.stor, ap_get_fn, g);
    free(g);
    return rc == STOR_OK;
}

START_TEST(t_key_jobs_run_at_once)
{
    file_job_t job = {.cred = CFX_CRED_EC, .flags = STOR_APPROVAL_JOB};
    file_job_t req = {.cred = CFX_CRED_RSA, .flags = 0};
    ck_assert_int_eq(stor_write(fx.stor, file_fn, &job), STOR_OK);
    ck_assert_int_eq(stor_write(fx.stor, file_fn, &req), STOR_OK);
    ck_assert(key_present(CFX_CRED_EC));
    unsigned admin = cfx_audit_count(&fx, STOR_EV_ADMIN, STOR_RES_OK, CFX_CRED_EC);
    unsigned ops = cfx_audit_count(&fx, STOR_EV_OPERATOR, STOR_RES_OK, NULL);

    sam_key_jobs_t *k = NULL;
    ck_assert_int_eq(sam_key_jobs_new(fx.stor, fx.hsm, &k), 0);
    ck_assert_int_eq(sam_key_jobs_once(k), 0);
    /* the job's key is gone, the credential destroyed for good, the job dropped; each step audited */
    ck_assert(!key_present(CFX_CRED_EC));
    stor_cred_t *c = calloc(1, sizeof(*c));
    ck_assert_int_eq(stor_cred_get(fx.stor, CFX_CRED_EC, c), STOR_OK);
    ck_assert_uint_eq(c->status, STOR_CRED_DESTROYED);
    ck_assert_uint_eq(c->end_reason, STOR_CRED_END_REVOKED);
    free(c);
    ck_assert(!approval_there(job.id));
    ck_assert_uint_eq(cfx_audit_count(&fx, STOR_EV_ADMIN, STOR_RES_OK, CFX_CRED_EC), admin + 1);
    ck_assert_uint_eq(cfx_audit_count(&fx, STOR_EV_OPERATOR, STOR_RES_OK, NULL), ops + 1);
    /* the request for a second operator waits: its key stays */
    ck_assert(approval_there(req.id));
    ck_assert(key_present(CFX_CRED_RSA));
    /* idempotent: nothing more to do, nothing more written */
    ck_assert_int_eq(sam_key_jobs_once(k), 0);
    ck_assert_uint_eq(cfx_audit_count(&fx, STOR_EV_ADMIN, STOR_RES_OK, CFX_CRED_EC), admin + 1);
    ck_assert_uint_eq(cfx_audit_count(&fx, STOR_EV_OPERATOR, STOR_RES_OK, NULL), ops + 1);
    ck_assert(approval_there(req.id));
    sam_key_jobs_free(k);
}
END_TEST

/* A job whose key the HSM cannot destroy (here: no token at all) stays for the next run, which then does it. */
START_TEST(t_key_jobs_stay_when_the_hsm_fails)
{
    file_job_t job = {.cred = CFX_CRED_EC, .flags = STOR_APPROVAL_JOB};
    ck_assert_int_eq(stor_write(fx.stor, file_fn, &job), STOR_OK);
    hsm_t *none = NULL;
    sam_key_jobs_t *bad = NULL, *k = NULL;
    ck_assert_int_eq(sam_key_jobs_new(fx.stor, none, &bad), 0);
    ck_assert_int_eq(sam_key_jobs_once(bad), -1);
    ck_assert(approval_there(job.id));
    ck_assert(key_present(CFX_CRED_EC));
    ck_assert_int_eq(sam_key_jobs_new(fx.stor, fx.hsm, &k), 0);
    ck_assert_int_eq(sam_key_jobs_once(k), 0);
    ck_assert(!approval_there(job.id));
    ck_assert(!key_present(CFX_CRED_EC));
    sam_key_jobs_free(bad);
    sam_key_jobs_free(k);
}
END_TEST

/* ---- the clock check (sam_clock.c): a fake source, never the real clock ------------------------------------ */

static sam_clock_reading_t fake;   /* what the fake source says */
static int fake_fails;             /* 1: it cannot tell (EIO) */
static unsigned fake_calls;

static int fake_source(void *arg, sam_clock_reading_t *out)
{
    (void)arg;
    fake_calls++;
    if (fake_fails) {
        errno = EIO;
        return -1;
    }
    *out = fake;
    return 0;
}

static const sam_clock_t fake_clock = {.source = fake_source, .arg = NULL, .max_error_ms = 100};

START_TEST(t_clock_check_judges)
{
    sam_clock_reading_t r;
    char why[256];
    fake_fails = 0;
    fake = (sam_clock_reading_t){.synced = 1, .offset_us = -1250, .maxerror_us = 99999};
    ck_assert_int_eq(sam_clock_check(&fake_clock, &r, why, sizeof(why)), 0);
    ck_assert_int_eq(r.offset_us, -1250);
    ck_assert_str_eq(why, "the clock is synchronised (offset -1.250 ms, maxerror 99.999 ms, at most 100 ms)");
    /* just over the bound, whatever the offset */
    fake.maxerror_us = 100001;
    ck_assert_int_eq(sam_clock_check(&fake_clock, &r, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "the clock's maxerror 100.001 ms is over clock_max_error_ms 100 (offset -1.250 ms)");
    /* not synchronised, however small the error */
    fake = (sam_clock_reading_t){.synced = 0, .offset_us = 2500000, .maxerror_us = 10};
    ck_assert_int_eq(sam_clock_check(&fake_clock, &r, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "the clock is not synchronised (offset 2500.000 ms, maxerror 0.010 ms)");
    /* a source that cannot tell: refused */
    fake_fails = 1;
    ck_assert_int_eq(sam_clock_check(&fake_clock, &r, why, sizeof(why)), -1);
    ck_assert_int_eq(r.synced, 0);
    ck_assert_ptr_nonnull(strstr(why, "cannot be read"));
    fake_fails = 0;
    /* the kernel's own reading, whatever it says here: it can be read, and its maxerror is not negative */
    ck_assert_int_eq(sam_clock_adjtimex(NULL, &r), 0);
    ck_assert(r.maxerror_us >= 0);
}
END_TEST

static void open_with_fake_clock(void)
{
    fake = (sam_clock_reading_t){.synced = 1, .offset_us = 42, .maxerror_us = 5000};
    fake_fails = 0;
    fake_calls = 0;
    cfx_sam_clock = &fake_clock;
    open_with_tsa();
}

static void close_fake_clock(void)
{
    close_fx();
    cfx_sam_clock = NULL;
}

/* The last audit record's detail. */
static int last_detail_fn(const stor_audit_t *rec, void *arg)
{
    snprintf(arg, sizeof(((stor_audit_t *)0)->detail), "%s", rec->detail);
    return 0;
}

START_TEST(t_stamp_refused_while_the_clock_is_not_synchronised)
{
    char *token = cfx_login(&fx), detail[sizeof(((stor_audit_t *)0)->detail)];
    uint8_t d[32], *tst = NULL;
    size_t n = 0;
    uint32_t about;
    memset(d, 0x66, sizeof(d));
    stamp_req_t q = {.token = token, .oid = SHA256, .digest = d, .len = sizeof(d)};

    /* synchronised: a token, its record naming the offset and maxerror */
    ck_assert_uint_eq(stamp(&q, &tst, &n, &about), 0);
    free(tst);
    ck_assert_uint_eq(fake_calls, 1);
    ck_assert_int_eq(stor_audit_each(fx.stor, 1, last_detail_fn, detail), 0);
    ck_assert_ptr_nonnull(strstr(detail, "clock_offset_us 42 maxerror_us 5000"));

    unsigned denied = cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_DENIED, NULL);
    unsigned ok = cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_OK, NULL);
    /* not synchronised: refused CLOCK, audited with the offset */
    fake.synced = 0;
    fake.offset_us = 3000000;
    ck_assert_uint_eq(stamp_refused(&q, &about), SAM_REFUSE_CLOCK);
    ck_assert_int_eq(stor_audit_each(fx.stor, 1, last_detail_fn, detail), 0);
    ck_assert_ptr_nonnull(strstr(detail, "refused=CLOCK"));
    ck_assert_ptr_nonnull(strstr(detail, "not synchronised (offset 3000.000 ms"));
    /* synchronised again, but a maxerror over clock_max_error_ms */
    fake = (sam_clock_reading_t){.synced = 1, .offset_us = 1, .maxerror_us = 100001};
    ck_assert_uint_eq(stamp_refused(&q, &about), SAM_REFUSE_CLOCK);
    /* the front end's answer: 503 with a clear description, for signatures/timestamp */
    char *h = cfx_b64(d, sizeof(d));
    cfx_reply_t x;
    cfx_post(&fx, &x, token, "/csc/v2/signatures/timestamp {\"hash\":\"%s\",\"hashAlgo\":\"" SHA256 "\"}", h);
    cfx_expect_error(&x, 503, "temporarily_unavailable",
                     "The time-stamping unit's clock is not synchronised: no time-stamp token can be issued now");
    ck_assert_uint_eq(cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_DENIED, NULL), denied + 3);
    ck_assert_uint_eq(cfx_audit_count(&fx, STOR_EV_TIMESTAMP, STOR_RES_OK, NULL), ok);
    /* and a token again once it is back */
    fake.maxerror_us = 100000;
    still_serves(token);
    free(h);
    free(token);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sam_stamp");
    TCase *tc = tcase_create("stamp");
    tcase_add_checked_fixture(tc, open_with_tsa, close_fx);
    tcase_add_test(tc, t_stamp_made_by_the_sam);
    tcase_add_test(tc, t_stamp_refusals);
    tcase_add_test(tc, t_stamp_oversized_nonce);
    tcase_add_test(tc, t_timestamp_method_through_the_sam);
    suite_add_tcase(s, tc);
    tc = tcase_create("plain");
    tcase_add_checked_fixture(tc, open_plain, close_fx);
    tcase_add_test(tc, t_stamp_not_offered);
    tcase_add_test(tc, t_key_jobs_run_at_once);
    tcase_add_test(tc, t_key_jobs_stay_when_the_hsm_fails);
    tcase_add_test(tc, t_clock_check_judges);
    suite_add_tcase(s, tc);
    tc = tcase_create("clock");
    tcase_add_checked_fixture(tc, open_with_fake_clock, close_fake_clock);
    tcase_add_test(tc, t_stamp_refused_while_the_clock_is_not_synchronised);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return cfx_main(suite());
}
