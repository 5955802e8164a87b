/*
 * test_sam_stor_faults.c - csc-sam's SIGN and SIGN_RESERVED when storage or the HSM fails part way (issue 14; ctest
 * unit_sam_stor_faults). The fixture's provisioned world (tests/unit/fixture) with its in-process SAM, its storage
 * behind the fault-injecting backend (tests/unit/storage/stor_fault.h), spoken to through the protocol as csc-api
 * does. Every error branch of the SAD's spend (oauth_sad_consume: the read, the write's get and put of the SAD, the
 * audit record's head, record and new head, the signing event, each commit), of the give-back after the HSM fails
 * (oauth_sign_failed), and of a reservation given back: each SIGN is refused with nothing signed, the budget is never
 * overspent, no signature or give-back is acknowledged without its audit record, a give-back that storage refused is
 * tried again, the audit chain verifies, and the SAD signs once the fault is gone exactly as often as its budget
 * says.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>

#include "adm.h"
#include "csc_fixture.h"
#include "sam_call.h"
#include "stor_fault.h"

#define SHA256 "2.16.840.1.101.3.4.2.1"
#define ECDSA_SHA256 "1.2.840.10045.4.3.2"

static cfx_t f;
static char *tok; /* alice's access token */

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

/* ---- the protocol, as test_sam_sign.c speaks it ---- */

/* alice's SAD for cfx-ec, n signatures of the one digest d (PIN and a fresh TOTP code) */
static char *alice_sad(uint32_t n, const uint8_t d[32])
{
    call_t c;
    char otp[7], sad[SAM_TOKEN_MAX + 1];
    uint32_t code;
    cfx_otp(&f, otp);
    call_begin(f.sam, &c, SAM_OP_AUTHORIZE);
    sam_put_str(&c.b, SAM_T_TOKEN, tok);
    sam_put_str(&c.b, SAM_T_CRED, CFX_CRED_EC);
    sam_put_u32(&c.b, SAM_T_NUM_SIGNATURES, n);
    sam_put_str(&c.b, SAM_T_HASH_ALG, SHA256);
    sam_put_bytes(&c.b, SAM_T_DIGEST, d, 32);
    sam_put_str(&c.b, SAM_T_PIN, CFX_PIN);
    sam_put_str(&c.b, SAM_T_OTP, otp);
    sam_put_str(&c.b, SAM_T_CLIENT, "test");
    ck_assert_msg(call_run(f.sam, &c, &code) == (SAM_OP_AUTHORIZE | SAM_OP_REPLY), "authorize: %s", sam_refusal_name(code));
    ck_assert_int_eq(sam_get_text(&c.m, SAM_T_SAD, sad, sizeof(sad)), SAM_OK);
    call_end(&c);
    return strdup(sad);
}

/* SIGN of digest d with sad (ttl > 0: ASYNC, a reservation whose ticket goes to ticket). The reply op; *code the
 * refusal. A reply that is not a refusal carries one signature (or, ASYNC, a ticket and none). */
static unsigned sign(const char *sad, const uint8_t d[32], uint32_t ttl, uint8_t ticket[SAM_TICKET_LEN],
                     uint32_t *code)
{
    call_t c;
    call_begin(f.sam, &c, SAM_OP_SIGN);
    sam_put_str(&c.b, SAM_T_TOKEN, tok);
    sam_put_str(&c.b, SAM_T_CRED, CFX_CRED_EC);
    sam_put_str(&c.b, SAM_T_HASH_ALG, SHA256);
    sam_put_bytes(&c.b, SAM_T_DIGEST, d, 32);
    sam_put_str(&c.b, SAM_T_CLIENT, "test");
    sam_put_str(&c.b, SAM_T_SAD, sad);
    if (ttl > 0)
        sam_put_u32(&c.b, SAM_T_EXPIRES_IN, ttl);
    sam_put_str(&c.b, SAM_T_SIGN_ALG, ECDSA_SHA256);
    if (ttl > 0)
        sam_put_u32(&c.b, SAM_T_ASYNC, 1);
    unsigned op = call_run(f.sam, &c, code);
    if (op == SAM_OP_REFUSED) {
        ck_assert_uint_eq(sam_msg_count(&c.m, SAM_T_SIGNATURE), 0);
    } else if (ttl == 0) {
        ck_assert_uint_eq(sam_msg_count(&c.m, SAM_T_SIGNATURE), 1);
    } else {
        const uint8_t *t;
        size_t tl;
        ck_assert_uint_eq(sam_msg_count(&c.m, SAM_T_SIGNATURE), 0);
        ck_assert_int_eq(sam_get_bytes(&c.m, SAM_T_TICKET, &t, &tl), SAM_OK);
        ck_assert_uint_eq(tl, SAM_TICKET_LEN);
        memcpy(ticket, t, SAM_TICKET_LEN);
    }
    call_end(&c);
    return op;
}

/* SIGN_RESERVED: sign the reservation (decision 1) or give it back (0). The reply op; *code the refusal. */
static unsigned reserved(const uint8_t ticket[SAM_TICKET_LEN], uint32_t decision, uint32_t *code)
{
    call_t c;
    call_begin(f.sam, &c, SAM_OP_SIGN_RESERVED);
    sam_put_u32(&c.b, SAM_T_DECISION, decision);
    if (decision == 0)
        sam_put_str(&c.b, SAM_T_REASON, "test gives it back");
    sam_put_bytes(&c.b, SAM_T_TICKET, ticket, SAM_TICKET_LEN);
    unsigned op = call_run(f.sam, &c, code);
    ck_assert_uint_eq(sam_msg_count(&c.m, SAM_T_SIGNATURE), op == (SAM_OP_SIGN_RESERVED | SAM_OP_REPLY) && decision);
    call_end(&c);
    return op;
}

static void digest_of(const char *text, uint8_t md[32])
{
    ck_assert(EVP_Digest(text, strlen(text), md, NULL, EVP_sha256(), NULL));
}

/* ---- what storage holds ---- */

typedef struct counts {
    unsigned signed_ok, denied, given_back;
} counts_t;

static counts_t counts(void)
{
    counts_t c = {.signed_ok = cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_OK, CFX_CRED_EC),
                  .denied = cfx_audit_count(&f, STOR_EV_SIGN, STOR_RES_DENIED, CFX_CRED_EC),
                  .given_back = cfx_audit_count(&f, STOR_EV_SIGN_RESULT, STOR_RES_ERROR, CFX_CRED_EC)};
    return c;
}

static void problem(const char *line, void *arg)
{
    (void)arg;
    fprintf(stderr, "audit verify: %s\n", line);
}

/* The audit chain is whole: every record's hash, the links, the head. */
static void chain_verifies(void)
{
    adm_audit_verdict_t v;
    char err[256];
    ck_assert_msg(adm_audit_verify(f.stor, problem, NULL, &v, err, sizeof(err)) == ADM_OK, "%s", err);
    ck_assert_uint_eq(v.problems, 0);
    ck_assert_uint_gt(v.count, 0);
}

/* The SAD of budget 1 is spent: refused as exhausted. */
static void budget_spent(const char *sad, const uint8_t d[32])
{
    uint32_t code;
    ck_assert_uint_eq(sign(sad, d, 0, NULL, &code), SAM_OP_REFUSED);
    ck_assert_msg(code == SAM_REFUSE_EXHAUSTED, "refused %s", sam_refusal_name(code));
}

/* The SAD of budget 1 was not spent: it signs once, and then no more. */
static void budget_intact(const char *sad, const uint8_t d[32])
{
    uint32_t code;
    ck_assert_msg(sign(sad, d, 0, NULL, &code) == (SAM_OP_SIGN | SAM_OP_REPLY), "refused %s", sam_refusal_name(code));
    budget_spent(sad, d);
}


/* ---- the spend fails: refused, nothing signed, nothing spent, nothing recorded ---- */

static const struct {
    const char *what;
    sf_op_t op;
    int db;
    sf_txn_t txn;
    unsigned nth;
    int room_short; /* sf_room_short: the map looks nearly full */
} spend_faults[] = {
    {"the SAD read again in the write (consume_decide)", SF_GET, STOR_DB_SADS, SF_WRITE_TXN, 1, 0},
    {"the spent SAD written back", SF_PUT, STOR_DB_SADS, SF_WRITE_TXN, 1, 0},
    {"the audit head read (stor_txn_audit_append)", SF_GET, STOR_DB_META, SF_WRITE_TXN, 1, 0},
    {"the audit record written", SF_PUT, STOR_DB_AUDIT, SF_WRITE_TXN, 1, 0},
    {"the new audit head written", SF_PUT, STOR_DB_META, SF_WRITE_TXN, 1, 0},
    {"the credential's signing event written", SF_PUT, STOR_DB_SIGN_EVENTS, SF_WRITE_TXN, 1, 0},
    /* the write's commits: a lone spend runs in its batch's txn, and with room in the map its signing event too:
     * one commit */
    {"the write's one commit", SF_COMMIT, SF_ANY_TABLE, SF_WRITE_TXN, 1, 0},
    /* with the map nearly full, the signing event's nested txn commits first */
    {"the signing event's nested commit (map nearly full)", SF_COMMIT, SF_ANY_TABLE, SF_WRITE_TXN, 1, 1},
    {"the write's commit after it (map nearly full)", SF_COMMIT, SF_ANY_TABLE, SF_WRITE_TXN, 2, 1},
    {"the write transaction's begin", SF_BEGIN, SF_ANY_TABLE, SF_WRITE_TXN, 1, 0},
};

START_TEST(t_spend_fails)
{
    uint8_t d[32];
    uint32_t code;
    digest_of(spend_faults[_i].what, d);
    char *sad = alice_sad(1, d);
    counts_t before = counts();
    sf_room_short(spend_faults[_i].room_short);
    sf_arm(spend_faults[_i].op, spend_faults[_i].db, spend_faults[_i].txn, spend_faults[_i].nth, STOR_ERR_IO, 0);
    ck_assert_uint_eq(sign(sad, d, 0, NULL, &code), SAM_OP_REFUSED);
    ck_assert_uint_eq(sf_fired(), 1); /* the fault was met, on the way it names */
    sf_disarm();
    sf_room_short(0);
    ck_assert_msg(code == SAM_REFUSE_UNAVAILABLE, "%s: refused %s", spend_faults[_i].what, sam_refusal_name(code));
    counts_t after = counts();
    ck_assert_uint_eq(after.signed_ok, before.signed_ok); /* the decision's record went with the spend */
    ck_assert_uint_eq(after.given_back, before.given_back);
    chain_verifies();
    budget_intact(sad, d);
    ck_assert_uint_eq(counts().signed_ok, before.signed_ok + 1);
    chain_verifies();
    free(sad);
}
END_TEST

/* alice's SAD for cfx-ec bound to the two digests d (PIN and a fresh TOTP code), both signed by one SIGN: the reply
 * op, *code the refusal. */
static char *alice_sad2(const uint8_t d[2][32])
{
    call_t c;
    char otp[7], sad[SAM_TOKEN_MAX + 1];
    uint32_t code;
    cfx_otp(&f, otp);
    call_begin(f.sam, &c, SAM_OP_AUTHORIZE);
    sam_put_str(&c.b, SAM_T_TOKEN, tok);
    sam_put_str(&c.b, SAM_T_CRED, CFX_CRED_EC);
    sam_put_u32(&c.b, SAM_T_NUM_SIGNATURES, 2);
    sam_put_str(&c.b, SAM_T_HASH_ALG, SHA256);
    sam_put_bytes(&c.b, SAM_T_DIGEST, d[0], 32);
    sam_put_bytes(&c.b, SAM_T_DIGEST, d[1], 32);
    sam_put_str(&c.b, SAM_T_PIN, CFX_PIN);
    sam_put_str(&c.b, SAM_T_OTP, otp);
    sam_put_str(&c.b, SAM_T_CLIENT, "test");
    ck_assert_msg(call_run(f.sam, &c, &code) == (SAM_OP_AUTHORIZE | SAM_OP_REPLY), "authorize: %s", sam_refusal_name(code));
    ck_assert_int_eq(sam_get_text(&c.m, SAM_T_SAD, sad, sizeof(sad)), SAM_OK);
    call_end(&c);
    return strdup(sad);
}

static unsigned sign2(const char *sad, const uint8_t d[2][32], uint32_t *code)
{
    call_t c;
    call_begin(f.sam, &c, SAM_OP_SIGN);
    sam_put_str(&c.b, SAM_T_TOKEN, tok);
    sam_put_str(&c.b, SAM_T_CRED, CFX_CRED_EC);
    sam_put_str(&c.b, SAM_T_HASH_ALG, SHA256);
    sam_put_bytes(&c.b, SAM_T_DIGEST, d[0], 32);
    sam_put_bytes(&c.b, SAM_T_DIGEST, d[1], 32);
    sam_put_str(&c.b, SAM_T_CLIENT, "test");
    sam_put_str(&c.b, SAM_T_SAD, sad);
    sam_put_str(&c.b, SAM_T_SIGN_ALG, ECDSA_SHA256);
    unsigned op = call_run(f.sam, &c, code);
    ck_assert_uint_eq(sam_msg_count(&c.m, SAM_T_SIGNATURE), op == SAM_OP_REFUSED ? 0 : 2);
    call_end(&c);
    return op;
}

/* A request of more than one digest reads its SAD before the write, to match the digests outside it: that read
 * failing refuses the request with nothing spent or recorded. One digest is matched inside the write, with no read
 * of its own (the same fault armed is never met). */
START_TEST(t_pre_read_fails)
{
    uint8_t d[2][32], one[32];
    uint32_t code;
    digest_of("pre-read 1", d[0]);
    digest_of("pre-read 2", d[1]);
    char *sad = alice_sad2(d);
    counts_t before = counts();
    sf_arm(SF_GET, STOR_DB_SADS, SF_READ_TXN, 1, STOR_ERR_IO, 0);
    ck_assert_uint_eq(sign2(sad, d, &code), SAM_OP_REFUSED);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_msg(code == SAM_REFUSE_UNAVAILABLE, "refused %s", sam_refusal_name(code));
    ck_assert_uint_eq(counts().signed_ok, before.signed_ok);
    ck_assert_msg(sign2(sad, d, &code) == (SAM_OP_SIGN | SAM_OP_REPLY), "refused %s", sam_refusal_name(code));
    ck_assert_uint_eq(counts().signed_ok, before.signed_ok + 1);
    chain_verifies();
    free(sad);

    digest_of("pre-read one", one);
    sad = alice_sad(1, one);
    sf_arm(SF_GET, STOR_DB_SADS, SF_READ_TXN, 1, STOR_ERR_IO, 0);
    ck_assert_msg(sign(sad, one, 0, NULL, &code) == (SAM_OP_SIGN | SAM_OP_REPLY), "refused %s",
                  sam_refusal_name(code));
    ck_assert_uint_eq(sf_fired(), 0);
    sf_disarm();
    budget_spent(sad, one);
    free(sad);
}
END_TEST

/* A full map during the spend: refused as full (503 at the front end), nothing kept; the full episode's own audit
 * record follows once a write succeeds again. */
START_TEST(t_spend_map_full)
{
    uint8_t d[32];
    uint32_t code;
    digest_of("map full", d);
    char *sad = alice_sad(1, d);
    counts_t before = counts();
    unsigned episodes = cfx_audit_count(&f, STOR_EV_STORAGE, STOR_RES_ERROR, NULL);
    sf_arm(SF_PUT, STOR_DB_AUDIT, SF_WRITE_TXN, 1, STOR_ERR_FULL, 0);
    ck_assert_uint_eq(sign(sad, d, 0, NULL, &code), SAM_OP_REFUSED);
    sf_disarm();
    ck_assert_msg(code == SAM_REFUSE_UNAVAILABLE || code == SAM_REFUSE_FULL, "refused %s", sam_refusal_name(code));
    ck_assert_uint_eq(counts().signed_ok, before.signed_ok);
    budget_intact(sad, d);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_STORAGE, STOR_RES_ERROR, NULL), episodes + 1);
    chain_verifies();
    free(sad);
}
END_TEST

/* The credential's signing event (/account's list) finds the map full: with the map nearly full (the only time a
 * small put can meet it) the event is put in a nested txn, and is dropped there: the signature goes on with its
 * audit record (what /account shows never refuses a signature). With room in the map it is put in the spend's own
 * txn; were that put refused anyway, the signature is refused whole: nothing signed or spent. */
static int recent_ec_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_recent_get(t, STOR_RECENT_SIGNS, CFX_CRED_EC, arg);
}

/* The number of signing events /account lists for cfx-ec. */
static uint32_t sign_events(void)
{
    stor_recent_t *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(stor_read(f.stor, recent_ec_fn, r), STOR_OK);
    uint32_t n = r->n;
    free(r);
    return n;
}

START_TEST(t_spend_event_dropped_when_full)
{
    uint8_t d[32];
    uint32_t code;
    digest_of("event dropped", d);
    char *sad = alice_sad(1, d);
    counts_t before = counts();
    uint32_t events = sign_events();
    sf_arm(SF_PUT, STOR_DB_SIGN_EVENTS, SF_WRITE_TXN, 1, STOR_ERR_FULL, 0);
    ck_assert_uint_eq(sign(sad, d, 0, NULL, &code), SAM_OP_REFUSED);
    ck_assert_uint_eq(sf_fired(), 1);
    ck_assert_msg(code == SAM_REFUSE_UNAVAILABLE || code == SAM_REFUSE_FULL, "refused %s", sam_refusal_name(code));
    ck_assert_uint_eq(counts().signed_ok, before.signed_ok);
    sf_room_short(1);
    sf_arm(SF_PUT, STOR_DB_SIGN_EVENTS, SF_WRITE_TXN, 1, STOR_ERR_FULL, 0);
    ck_assert_msg(sign(sad, d, 0, NULL, &code) == (SAM_OP_SIGN | SAM_OP_REPLY), "refused %s", sam_refusal_name(code));
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    sf_room_short(0);
    ck_assert_uint_eq(counts().signed_ok, before.signed_ok + 1);
    ck_assert_uint_eq(sign_events(), events); /* dropped */
    budget_spent(sad, d);
    chain_verifies();
    free(sad);
}
END_TEST

/* ---- the HSM fails after the spend: the budget comes back, audited; or, when that write fails too, stays spent ---- */

static void break_key(void) /* no key of the token has its id: the HSM cannot sign */
{
    cfx_flip_key(&f, CFX_CRED_EC);
}

#define mend_key break_key /* flipped back */

START_TEST(t_hsm_fails_refund)
{
    uint8_t d[32];
    uint32_t code;
    digest_of("hsm fails", d);
    char *sad = alice_sad(1, d);
    break_key();
    counts_t before = counts();
    ck_assert_uint_eq(sign(sad, d, 0, NULL, &code), SAM_OP_REFUSED);
    ck_assert_msg(code == SAM_REFUSE_INTERNAL || code == SAM_REFUSE_UNAVAILABLE, "refused %s",
                  sam_refusal_name(code));
    counts_t after = counts();
    ck_assert_uint_eq(after.signed_ok, before.signed_ok + 1);   /* the spend, as decided */
    ck_assert_uint_eq(after.given_back, before.given_back + 1); /* and its give-back */
    mend_key();
    budget_intact(sad, d);
    chain_verifies();
    free(sad);
}
END_TEST

/* Every row a spend's write reads, and a give-back's, was read ahead in its txn (on PostgreSQL the reads go out
 * together: one round trip for all of them, docs/architecture.md "What one signHash reads"). */
static void all_read_ahead(const char *what, const int *dbs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned gets, ahead;
        sf_traced(dbs[i], &gets, &ahead);
        ck_assert_msg(gets > 0 && ahead == gets, "%s: table %s: %u gets in write txns, %u of them read ahead", what,
                      stor_table_name(dbs[i]), gets, ahead);
    }
}

START_TEST(t_sign_writes_read_ahead)
{
    static const int spend[] = { STOR_DB_SADS, STOR_DB_META, STOR_DB_SIGN_EVENTS }, back[] = { STOR_DB_SADS,
                                                                                               STOR_DB_META };
    uint8_t d[32];
    uint32_t code;
    digest_of("read ahead", d);
    char *sad = alice_sad(1, d);
    sf_trace_gets(1, SF_WRITE_TXN);
    ck_assert_msg(sign(sad, d, 0, NULL, &code) == (SAM_OP_SIGN | SAM_OP_REPLY), "refused %s", sam_refusal_name(code));
    sf_trace_gets(0, SF_WRITE_TXN);
    all_read_ahead("a spend", spend, sizeof(spend) / sizeof(spend[0]));
    free(sad);
    digest_of("read ahead, given back", d);
    sad = alice_sad(1, d);
    break_key();
    sf_trace_gets(1, SF_WRITE_TXN);
    ck_assert_uint_eq(sign(sad, d, 0, NULL, &code), SAM_OP_REFUSED);
    sf_trace_gets(0, SF_WRITE_TXN);
    mend_key();
    all_read_ahead("a spend and its give-back", back, sizeof(back) / sizeof(back[0]));
    budget_intact(sad, d);
    free(sad);
}
END_TEST

static const struct {
    const char *what;
    sf_op_t op;
    int db;
} refund_faults[] = {
    {"the SAD read in the give-back", SF_GET, STOR_DB_SADS},
    {"the SAD written back with its budget", SF_PUT, STOR_DB_SADS},
    {"the give-back's audit record", SF_PUT, STOR_DB_AUDIT},
    {"the give-back's audit head", SF_PUT, STOR_DB_META},
};

START_TEST(t_hsm_fails_refund_fails)
{
    uint8_t d[32];
    uint32_t code;
    digest_of(refund_faults[_i].what, d);
    char *sad = alice_sad(1, d);
    break_key();
    counts_t before = counts();
    /* the spend's write succeeds; the fault is the give-back's (its write comes after the spend's) */
    sf_arm(refund_faults[_i].op, refund_faults[_i].db, SF_WRITE_TXN, 2, STOR_ERR_IO, 0);
    ck_assert_uint_eq(sign(sad, d, 0, NULL, &code), SAM_OP_REFUSED);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    counts_t after = counts();
    ck_assert_uint_eq(after.signed_ok, before.signed_ok + 1);
    ck_assert_uint_eq(after.given_back, before.given_back); /* nothing given back, nothing recorded */
    mend_key();
    budget_spent(sad, d); /* spent, never overspent */
    chain_verifies();
    free(sad);
}
END_TEST

/* ---- a reservation given back (operationMode "A" abandoned): the give-back acknowledged only when recorded ---- */

START_TEST(t_reserved_give_back)
{
    uint8_t d[32], ticket[SAM_TICKET_LEN];
    uint32_t code;
    digest_of("reserved", d);
    char *sad = alice_sad(1, d);
    ck_assert_uint_eq(sign(sad, d, 600, ticket, &code), SAM_OP_SIGN | SAM_OP_REPLY);
    counts_t before = counts();
    /* the give-back's write fails: refused, and the reservation is still there */
    sf_arm(SF_PUT, STOR_DB_AUDIT, SF_WRITE_TXN, 1, STOR_ERR_IO, 0);
    ck_assert_uint_eq(reserved(ticket, 0, &code), SAM_OP_REFUSED);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_msg(code == SAM_REFUSE_UNAVAILABLE, "refused %s", sam_refusal_name(code));
    ck_assert_uint_eq(counts().given_back, before.given_back);
    budget_spent(sad, d);
    /* given back again once storage answers: recorded, and the SAD signs */
    ck_assert_uint_eq(reserved(ticket, 0, &code), SAM_OP_SIGN_RESERVED | SAM_OP_REPLY);
    ck_assert_uint_eq(counts().given_back, before.given_back + 1);
    ck_assert_uint_eq(reserved(ticket, 0, &code), SAM_OP_REFUSED); /* used up */
    ck_assert_uint_eq(code, SAM_REFUSE_NOT_FOUND);
    budget_intact(sad, d);
    chain_verifies();
    free(sad);
}
END_TEST

/* A reservation nobody comes back for is given back by the next call's sweep; when that write fails, it is kept and
 * given back by the sweep after. */
START_TEST(t_reserved_expired)
{
    uint8_t d[32], ticket[SAM_TICKET_LEN];
    uint32_t code;
    digest_of("reserved, forgotten", d);
    char *sad = alice_sad(1, d);
    ck_assert_uint_eq(sign(sad, d, 1, ticket, &code), SAM_OP_SIGN | SAM_OP_REPLY); /* kept 1 s */
    struct timespec ts = {1, 200 * 1000000L};
    nanosleep(&ts, NULL);
    counts_t before = counts();
    sf_arm(SF_PUT, STOR_DB_AUDIT, SF_WRITE_TXN, 1, STOR_ERR_IO, 0); /* the sweep's give-back: the first write */
    budget_spent(sad, d);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_uint_eq(counts().given_back, before.given_back);
    budget_intact(sad, d); /* the next sweep gave it back before this SIGN spent it */
    ck_assert_uint_eq(counts().given_back, before.given_back + 1);
    ck_assert_uint_eq(reserved(ticket, 1, &code), SAM_OP_REFUSED); /* gone from the table */
    ck_assert_uint_eq(code, SAM_REFUSE_NOT_FOUND);
    chain_verifies();
    free(sad);
}
END_TEST

/* The reservation is signed later, but the HSM fails then: the budget comes back, audited; with the give-back's
 * write failing too, it stays spent and nothing is signed. */
START_TEST(t_reserved_hsm_fails)
{
    uint8_t d[32], ticket[SAM_TICKET_LEN];
    uint32_t code;
    digest_of("reserved, then the HSM fails", d);
    char *sad = alice_sad(1, d);
    break_key(); /* before the reservation, which keeps the key's id it verified */
    ck_assert_uint_eq(sign(sad, d, 600, ticket, &code), SAM_OP_SIGN | SAM_OP_REPLY);
    counts_t before = counts();
    ck_assert_uint_eq(reserved(ticket, 1, &code), SAM_OP_REFUSED);
    ck_assert_uint_eq(counts().given_back, before.given_back + 1);
    mend_key();
    budget_intact(sad, d);

    digest_of("reserved, then the HSM and storage fail", d);
    free(sad);
    sad = alice_sad(1, d);
    break_key();
    ck_assert_uint_eq(sign(sad, d, 600, ticket, &code), SAM_OP_SIGN | SAM_OP_REPLY);
    before = counts();
    sf_arm(SF_PUT, STOR_DB_SADS, SF_WRITE_TXN, 1, STOR_ERR_IO, 0);
    ck_assert_uint_eq(reserved(ticket, 1, &code), SAM_OP_REFUSED);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_uint_eq(counts().given_back, before.given_back);
    mend_key();
    budget_spent(sad, d);
    chain_verifies();
    free(sad);
}
END_TEST

/* ---- the audit append's own refusal: a record already where the next one goes (meta and the log disagree) ---- */

static int plant_fn(stor_txn_t *t, void *arg)
{
    (void)arg;
    /* the record the next append will number head + 1, written behind the head's back */
    uint8_t key[8];
    stor_val_t hk = {10, (void *)"audit_head"}, v, k = {8, key};
    stor_head_t head;
    int rc = stor_kv_get(t, STOR_DB_META, &hk, &v);
    if (rc != 0 || (rc = stor_codec_decode(STOR_REC_HEAD, v.data, v.len, &head)) != 0)
        return rc;
    stor_audit_t rec = {.event = STOR_EV_ADMIN, .result = STOR_RES_OK, .seq = head.seq + 1, .time_ms = 1};
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)((head.seq + 1) >> (8 * (7 - i)));
    return stor_put_rec(t, STOR_DB_AUDIT, &k, STOR_REC_AUDIT, &rec, 0);
}

START_TEST(t_audit_slot_taken)
{
    uint8_t d[32];
    uint32_t code;
    digest_of("slot taken", d);
    char *sad = alice_sad(1, d);
    counts_t before = counts();
    ck_assert_int_eq(stor_write(f.stor, plant_fn, NULL), STOR_OK);
    ck_assert_uint_eq(sign(sad, d, 0, NULL, &code), SAM_OP_REFUSED); /* never overwrites history */
    ck_assert_msg(code == SAM_REFUSE_UNAVAILABLE, "refused %s", sam_refusal_name(code));
    ck_assert_uint_eq(counts().signed_ok, before.signed_ok);
    free(sad);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sam-stor-faults");
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, t_spend_fails, 0, (int)(sizeof(spend_faults) / sizeof(spend_faults[0])));
    tcase_add_test(tc, t_pre_read_fails);
    tcase_add_test(tc, t_spend_map_full);
    tcase_add_test(tc, t_spend_event_dropped_when_full);
    tcase_add_test(tc, t_sign_writes_read_ahead);
    tcase_add_test(tc, t_hsm_fails_refund);
    tcase_add_loop_test(tc, t_hsm_fails_refund_fails, 0, (int)(sizeof(refund_faults) / sizeof(refund_faults[0])));
    tcase_add_test(tc, t_reserved_give_back);
    tcase_add_test(tc, t_reserved_expired);
    tcase_add_test(tc, t_reserved_hsm_fails);
    tcase_add_test(tc, t_audit_slot_taken);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
