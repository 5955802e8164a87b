/*
 * test_sign_faults.c - signatures/signHash through csc_handle() when storage or the HSM fails part way (issue 14;
 * ctest unit_csc_sign_faults). The fixture's service in-process (tests/unit/fixture), its storage behind the
 * fault-injecting backend (tests/unit/storage/stor_fault.h): what a client sees of a spend that storage refuses, of
 * an HSM failure after the spend (synchronous, and in operationMode "A" where the job signs later), and of a job
 * whose result cannot be stored. Each answer is an error the client can act on, no signature comes without its audit
 * record, and the SAD's budget is whole again unless a signature was made.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>

#include "csc_fixture.h"
#include "stor_fault.h"

#define SHA256 "2.16.840.1.101.3.4.2.1"
#define ECDSA_SHA256 "1.2.840.10045.4.3.2"

static cfx_t f;
static char *tok;

static void setup(void)
{
    cfx_open(&f, NULL);
    tok = cfx_login(&f);
    sf_install(f.stor);
}

static void teardown(void)
{
    sf_disarm();
    free(tok);
    cfx_close(&f);
}

/* A digest of text (md) and its base64 (malloc'd). */
static char *digest_b64(const char *text, uint8_t md[32])
{
    ck_assert_int_eq(EVP_Digest(text, strlen(text), md, NULL, EVP_sha256(), NULL), 1);
    return cfx_b64(md, 32);
}

/* credentials/authorize of cfx-ec for one signature of h (base64): the SAD (malloc'd). */
static char *sad_for(const char *h)
{
    char otp[7];
    cfx_reply_t x;
    cfx_otp(&f, otp);
    cfx_post(&f, &x, tok,
             "/csc/v2/credentials/authorize {\"credentialID\":\"" CFX_CRED_EC "\",\"numSignatures\":1,"
             "\"hashes\":[\"%s\"],\"hashAlgorithmOID\":\"" SHA256 "\",\"authData\":[{\"id\":\"PIN\",\"value\":\""
             CFX_PIN "\"},{\"id\":\"OTP\",\"value\":\"%s\"}]}",
             h, otp);
    ck_assert_msg(x.r.status == 200, "authorize: %d %s", x.r.status, x.text);
    char *sad = strdup(cfx_str(&x, "SAD", NULL));
    cfx_reply_free(&x);
    return sad;
}

/* signatures/signHash of h with sad; extra: more members (",..." or ""). */
static void sign_hash(const char *sad, const char *h, const char *extra, cfx_reply_t *x)
{
    cfx_post(&f, x, tok,
             "/csc/v2/signatures/signHash {\"credentialID\":\"" CFX_CRED_EC "\",\"SAD\":\"%s\",\"hashes\":[\"%s\"],"
             "\"hashAlgorithmOID\":\"" SHA256 "\",\"signAlgo\":\"" ECDSA_SHA256 "\"%s}",
             sad, h, extra);
}

/* sad is spent: signHash refused (invalid_request: the SAD's budget is used up). */
static void spent(const char *sad, const char *h)
{
    cfx_reply_t x;
    sign_hash(sad, h, "", &x);
    cfx_expect_error(&x, 400, "invalid_request", NULL);
}

/* signHash signs h with sad once and verifies; a second is refused: the budget of 1 was whole. */
static void signs_once(const char *sad, const char *h, const uint8_t md[32])
{
    cfx_reply_t x;
    sign_hash(sad, h, "", &x);
    ck_assert_msg(x.r.status == 200, "signHash: %d %s", x.r.status, x.text);
    yajl_val sigs = cfx_arr(&x, "signatures");
    ck_assert_ptr_nonnull(sigs);
    ck_assert_uint_eq(YAJL_GET_ARRAY(sigs)->len, 1);
    ck_assert(cfx_verify(&f, CFX_CRED_EC, 0, md, YAJL_GET_STRING(YAJL_GET_ARRAY(sigs)->values[0])));
    cfx_reply_free(&x);
    spent(sad, h);
}


static unsigned signed_ok(void)
{
    return cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_OK, CFX_CRED_EC);
}

static unsigned given_back(void)
{
    return cfx_audit_count(&f, STOR_EV_SIGN_RESULT, STOR_RES_ERROR, CFX_CRED_EC);
}

/* The HSM cannot sign with the credential's key: its key id in storage changed (flipped back by calling again). */
static void flip_key_id(void)
{
    cfx_flip_key(&f, CFX_CRED_EC);
}

/* signPolling until the job is done (at most 20 s): the reply in x. */
static void poll_done(const char *id, cfx_reply_t *x)
{
    for (int i = 0; i < 400; i++) {
        cfx_post(&f, x, tok, "/csc/v2/signatures/signPolling {\"requestID\":\"%s\"}", id);
        if (x->r.status != 202)
            return;
        cfx_reply_free(x);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("the asynchronous request %s did not finish", id);
}

/* signHash of h with sad in operationMode "A": accepted, its responseID (strdup). */
static char *sign_async(const char *sad, const char *h)
{
    cfx_reply_t x;
    sign_hash(sad, h, ",\"operationMode\":\"A\"", &x);
    ck_assert_msg(x.r.status == 200, "signHash A: %d %s", x.r.status, x.text);
    char *id = strdup(cfx_str(&x, "responseID", NULL));
    cfx_reply_free(&x);
    return id;
}

/* The asynchronous request id answers one signature of md (signPolling until it is done). */
static void polls_signature(const char *id, const uint8_t md[32])
{
    cfx_reply_t x;
    poll_done(id, &x);
    ck_assert_msg(x.r.status == 200, "signPolling: %d %s", x.r.status, x.text);
    yajl_val sigs = cfx_arr(&x, "signatures");
    ck_assert_ptr_nonnull(sigs);
    ck_assert(cfx_verify(&f, CFX_CRED_EC, 0, md, YAJL_GET_STRING(YAJL_GET_ARRAY(sigs)->values[0])));
    cfx_reply_free(&x);
}

/* ---- the spend refused by storage: 503, nothing signed, nothing spent ---- */

/* A bearer token used again: in every read txn of a signHash, the token's user row was read ahead with the token
 * (csc-server's check keeps the user it found for the token's hash, oauth_hint.c; csc-sam's gets it in SIGN's USER):
 * on PostgreSQL the token, its user and the credential cost one round trip in each process. */
START_TEST(t_token_user_read_ahead)
{
    static const int dbs[] = { STOR_DB_TOKENS, STOR_DB_USERS };
    uint8_t md[32];
    char *h = digest_b64("token user read ahead", md);
    char *sad = sad_for(h); /* the token's first use since login: its user is known from then on */
    sf_trace_gets(1, SF_READ_TXN);
    signs_once(sad, h, md);
    sf_trace_gets(0, SF_READ_TXN);
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        unsigned gets, ahead;
        sf_traced(dbs[i], &gets, &ahead);
        ck_assert_msg(gets >= 2 && ahead == gets, "table %s: %u gets in read txns, %u of them read ahead",
                      stor_table_name(dbs[i]), gets, ahead);
    }
    free(sad);
    free(h);
}
END_TEST

START_TEST(t_spend_storage_fails)
{
    uint8_t md[32];
    char *h = digest_b64("spend fails", md), *sad = sad_for(h);
    unsigned before = signed_ok();
    cfx_reply_t x;
    sf_arm(SF_PUT, STOR_DB_AUDIT, SF_WRITE_TXN, 1, STOR_ERR_IO, 0);
    sign_hash(sad, h, "", &x);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_ptr_null(cfx_arr(&x, "signatures"));
    cfx_expect_error(&x, 503, "temporarily_unavailable", NULL);
    ck_assert_uint_eq(signed_ok(), before);
    signs_once(sad, h, md);
    free(h);
    free(sad);
}
END_TEST

/* ---- the HSM fails after the spend: an error, the budget given back with its record ---- */

START_TEST(t_hsm_fails)
{
    uint8_t md[32];
    char *h = digest_b64("hsm fails", md), *sad = sad_for(h);
    unsigned ok0 = signed_ok(), back0 = given_back();
    cfx_reply_t x;
    flip_key_id();
    sign_hash(sad, h, "", &x);
    ck_assert_msg(x.r.status >= 500, "signHash: %d %s", x.r.status, x.text);
    ck_assert_ptr_null(cfx_arr(&x, "signatures"));
    cfx_reply_free(&x);
    ck_assert_uint_eq(signed_ok(), ok0 + 1);
    ck_assert_uint_eq(given_back(), back0 + 1);
    flip_key_id();
    signs_once(sad, h, md);
    free(h);
    free(sad);
}
END_TEST

/* operationMode "A": accepted (the SAD spent), the job's signature fails in the HSM: signPolling answers the error,
 * the budget is back; a job that signs answers the signature. */
START_TEST(t_async_hsm_fails)
{
    uint8_t md[32];
    char *h = digest_b64("async, hsm fails", md), *sad = sad_for(h);
    unsigned back0 = given_back();
    cfx_reply_t x;
    flip_key_id(); /* before the request: csc-sam keeps the key id it verified with the reservation */
    char *id = sign_async(sad, h);
    flip_key_id();
    poll_done(id, &x);
    ck_assert_msg(x.r.status >= 500, "signPolling: %d %s", x.r.status, x.text);
    ck_assert_ptr_null(cfx_arr(&x, "signatures"));
    cfx_reply_free(&x);
    ck_assert_uint_eq(given_back(), back0 + 1);
    free(id);

    id = sign_async(sad, h); /* the budget came back: accepted, and signed */
    polls_signature(id, md);
    spent(sad, h);
    free(id);
    free(h);
    free(sad);
}
END_TEST

/* operationMode "A" whose pending record cannot be stored: refused before anything is signed; the reservation csc-sam
 * made is given back (audited) and the SAD signs afterwards. */
START_TEST(t_async_pending_not_stored)
{
    uint8_t md[32];
    char *h = digest_b64("async, pending record fails", md), *sad = sad_for(h);
    unsigned back0 = given_back();
    cfx_reply_t x;
    sf_arm(SF_PUT, STOR_DB_ASYNC, SF_WRITE_TXN, 1, STOR_ERR_IO, 0);
    sign_hash(sad, h, ",\"operationMode\":\"A\"", &x);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_ptr_null(cfx_str(&x, "responseID", NULL));
    cfx_expect_error(&x, 503, "temporarily_unavailable", NULL);
    ck_assert_uint_eq(given_back(), back0 + 1);
    signs_once(sad, h, md);
    free(h);
    free(sad);
}
END_TEST

/* operationMode "A" whose result storage refuses once (the signature made and audited): the result is stored at a
 * later try, and signPolling answers it. Before, signPolling answered "pending" until the request expired. */
START_TEST(t_async_result_stored_late)
{
    uint8_t md[32];
    char *h = digest_b64("async, result stored late", md), *sad = sad_for(h);
    /* the request's own puts on async_results: its pending record (1st), then its result (2nd) */
    sf_arm(SF_PUT, STOR_DB_ASYNC, SF_WRITE_TXN, 2, STOR_ERR_IO, 0);
    char *id = sign_async(sad, h);
    polls_signature(id, md);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    spent(sad, h);
    free(id);
    free(h);
    free(sad);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("csc-sign-faults");
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_spend_storage_fails);
    tcase_add_test(tc, t_token_user_read_ahead);
    tcase_add_test(tc, t_hsm_fails);
    tcase_add_test(tc, t_async_hsm_fails);
    tcase_add_test(tc, t_async_pending_not_stored);
    tcase_add_test(tc, t_async_result_stored_late);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
