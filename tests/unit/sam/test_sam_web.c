/*
 * test_sam_web.c - a compromised front end asks csc-sam for what the web and getChallenge paths need (CHALLENGE,
 * APPROVE, CONSENT): it speaks the protocol directly (sam_build_* + sam_client_call) against an in-process SAM on the
 * fixture's provisioned world (tests/unit/fixture), with forged, other users' and spent values. Each is refused with
 * the right code, audited, and the SAM keeps serving. ctest: unit_sam_web.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csc_fixture.h"
#include "sam_client.h"

#define CH_CRED "cfx-ch"   /* alice's: "PIN AND CHALLENGE" */
#define BOB_CRED "bob-ch"  /* bob's: "PIN AND CHALLENGE" */

static cfx_t f;
static char sink_dir[64], sink[96], sender[128];

/* ---- helpers ---------------------------------------------------------------------------------------------- */

typedef struct {
    const char *from, *id, *owner, *expr;
} cred_copy_t;

static int copy_cred(stor_txn_t *t, void *arg)
{
    const cred_copy_t *c = arg;
    stor_cred_t *cr = calloc(1, sizeof(*cr));
    int rc = cr != NULL ? stor_txn_cred_get(t, c->from, cr) : STOR_ERR_NOMEM;
    if (rc == STOR_OK) {
        snprintf(cr->id, sizeof(cr->id), "%s", c->id);
        snprintf(cr->owner, sizeof(cr->owner), "%s", c->owner);
        snprintf(cr->auth_expr, sizeof(cr->auth_expr), "%s", c->expr);
        rc = stor_txn_cred_put(t, cr, 1);
    }
    free(cr);
    return rc;
}

/* A credential like CFX_CRED_EC under another id, owner and expression (no key of its own is needed to ask). */
static void add_cred(const char *id, const char *owner, const char *expr)
{
    cred_copy_t c = {CFX_CRED_EC, id, owner, expr};
    ck_assert_int_eq(stor_write(f.stor, copy_cred, &c), STOR_OK);
}

static void open_world(const char *otp_sender)
{
    csc_config_t cfg;
    cfx_config(&cfg);
    cfg.otp_sender = otp_sender;
    cfg.otp_sender_timeout = 10;
    cfx_open(&f, &cfg);
    add_cred(CH_CRED, CFX_USER, "PIN AND CHALLENGE");
    add_cred(BOB_CRED, "bob", "PIN AND CHALLENGE");
}

static void setup(void)
{
    snprintf(sink_dir, sizeof(sink_dir), "/tmp/sam-web-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(sink_dir));
    snprintf(sink, sizeof(sink), "%s/sink", sink_dir);
    snprintf(sender, sizeof(sender), "file:%s", sink);
    open_world(sender);
}

static void teardown(void)
{
    cfx_close(&f);
    unlink(sink);
    rmdir(sink_dir);
}

/* One request of the compromised front end: what it wants, straight to the SAM. */
typedef struct {
    sam_builder_t b;
    sam_rbuf_t rb;
    sam_msg_t reply;
} raw_t;

static void raw_begin(raw_t *r, unsigned op)
{
    memset(r, 0, sizeof(*r));
    ck_assert_int_eq(sam_build_init(&r->b, op, sam_client_next_id(f.sam)), SAM_OK);
}

/* Send it; the reply's op (op | SAM_OP_REPLY or SAM_OP_REFUSED), *refusal the refusal code (0 for a reply). */
static unsigned raw_run(raw_t *r, uint32_t *refusal, uint32_t *about)
{
    const uint8_t *msg;
    size_t len;
    ck_assert_int_eq(sam_build_finish(&r->b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(f.sam, msg, len, &r->rb, &r->reply), SAM_OK);
    *refusal = 0;
    if (about != NULL)
        *about = 0;
    if (r->reply.op == SAM_OP_REFUSED) {
        ck_assert_int_eq(sam_get_u32(&r->reply, SAM_T_REFUSAL, refusal), SAM_OK);
        if (about != NULL)
            (void)sam_get_u32(&r->reply, SAM_T_ABOUT, about);
    }
    return r->reply.op;
}

static void raw_end(raw_t *r)
{
    sam_build_free(&r->b);
    sam_rbuf_free(&r->rb);
}

/* The SAM still answers HELLO. */
static void sam_up(void)
{
    sam_hello_t h;
    ck_assert_int_eq(sam_client_hello(f.sam, &h), SAM_OK);
}

static unsigned sink_lines(void)
{
    FILE *fp = fopen(sink, "r");
    unsigned n = 0;
    int ch;
    if (fp == NULL)
        return 0;
    while ((ch = fgetc(fp)) != EOF)
        n += ch == '\n';
    fclose(fp);
    return n;
}

/* ---- CHALLENGE -------------------------------------------------------------------------------------------- */

static unsigned challenge(const char *token, const char *cred, uint32_t *refusal, uint32_t *about)
{
    raw_t r;
    raw_begin(&r, SAM_OP_CHALLENGE);
    sam_put_str(&r.b, SAM_T_TOKEN, token);
    sam_put_str(&r.b, SAM_T_CRED, cred);
    sam_put_str(&r.b, SAM_T_CLIENT, "test-front-end");
    unsigned op = raw_run(&r, refusal, about);
    if (op == (SAM_OP_CHALLENGE | SAM_OP_REPLY)) {
        uint32_t ttl = 0;
        ck_assert_int_eq(sam_get_u32(&r.reply, SAM_T_EXPIRES_IN, &ttl), SAM_OK);
        ck_assert_uint_gt(ttl, 0);
    }
    raw_end(&r);
    return op;
}

START_TEST(t_challenge_delivered_by_the_sam)
{
    char *tok = cfx_login(&f);
    uint32_t refusal, about;
    ck_assert_uint_eq(challenge(tok, CH_CRED, &refusal, &about), SAM_OP_CHALLENGE | SAM_OP_REPLY);
    ck_assert_uint_eq(sink_lines(), 1);
    FILE *fp = fopen(sink, "r");
    char line[256] = "";
    ck_assert_ptr_nonnull(fp);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), fp));
    fclose(fp);
    ck_assert_int_eq(strncmp(line, CFX_USER " " CH_CRED " CHALLENGE ", strlen(CFX_USER " " CH_CRED " CHALLENGE ")), 0);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_CHALLENGE, STOR_RES_OK, CH_CRED), 1);
    free(tok);
}
END_TEST

START_TEST(t_challenge_other_users_credential)
{
    char *tok = cfx_login(&f);
    uint32_t refusal, about;
    /* bob's credential with alice's token: the SAM reads the owner itself */
    ck_assert_uint_eq(challenge(tok, BOB_CRED, &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(about, SAM_T_CRED);
    /* a credential without the CHALLENGE object, and one that does not exist: the same answer */
    ck_assert_uint_eq(challenge(tok, CFX_CRED_EC, &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(challenge(tok, "no-such-cred", &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(sink_lines(), 0);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_CHALLENGE, STOR_RES_DENIED, BOB_CRED), 1);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_CHALLENGE, STOR_RES_DENIED, CFX_CRED_EC), 1);
    /* still serving: alice's own credential gets its code */
    sam_up();
    ck_assert_uint_eq(challenge(tok, CH_CRED, &refusal, &about), SAM_OP_CHALLENGE | SAM_OP_REPLY);
    ck_assert_uint_eq(sink_lines(), 1);
    free(tok);
}
END_TEST

START_TEST(t_challenge_forged_token)
{
    uint32_t refusal, about;
    ck_assert_uint_eq(challenge("forged-token-forged-token-forged-token-xxxxx", CH_CRED, &refusal, &about),
                      SAM_OP_REFUSED);
    ck_assert_uint_eq(about, SAM_T_TOKEN);
    ck_assert(refusal == SAM_REFUSE_NOT_FOUND || refusal == SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(sink_lines(), 0);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_CHALLENGE, STOR_RES_DENIED, CH_CRED), 1);
    sam_up();
}
END_TEST

START_TEST(t_challenge_flood_rate_limited)
{
    char *tok = cfx_login(&f);
    uint32_t refusal, about;
    ck_assert_uint_eq(challenge(tok, CH_CRED, &refusal, &about), SAM_OP_CHALLENGE | SAM_OP_REPLY);
    for (int i = 0; i < 200; i++) {
        ck_assert_uint_eq(challenge(tok, CH_CRED, &refusal, &about), SAM_OP_REFUSED);
        ck_assert_uint_eq(refusal, SAM_REFUSE_RATE);
    }
    /* one message went out, not 201; each refusal is on record; the SAM serves on */
    ck_assert_uint_eq(sink_lines(), 1);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_CHALLENGE, STOR_RES_DENIED, CH_CRED), 200);
    sam_up();
    free(tok);
}
END_TEST

START_TEST(t_challenge_delivery_failure)
{
    /* A sink that cannot be written: the code is forgotten, the failure audited, the refusal names the delivery. */
    cfx_close(&f);
    snprintf(sender, sizeof(sender), "file:/nonexistent-dir-%d/sink", (int)getpid());
    open_world(sender);
    char *tok = cfx_login(&f);
    uint32_t refusal, about;
    ck_assert_uint_eq(challenge(tok, CH_CRED, &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAVAILABLE);
    ck_assert_uint_eq(about, SAM_T_CHALLENGE);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_CHALLENGE, STOR_RES_ERROR, CH_CRED), 1);
    free(tok);
}
END_TEST

/* ---- CONSENT ---------------------------------------------------------------------------------------------- */

#define SHA256_OID "2.16.840.1.101.3.4.2.1"

/* A browser session of alice's, signed in with password and TOTP as the pages do, for a credential-scope request of
 * cred with one digest (byte d repeated). */
static void session_for(const char *cred, uint8_t d, char sid[OAUTH_TOKEN_BUFLEN], char csrf[OAUTH_TOKEN_BUFLEN])
{
    oauth_authz_request_t *req = calloc(1, sizeof(*req));
    char otp[7];
    ck_assert_ptr_nonnull(req);
    snprintf(req->client_id, sizeof(req->client_id), "%s", CFX_CLIENT);
    snprintf(req->redirect_uri, sizeof(req->redirect_uri), "%s", CFX_REDIRECT);
    memset(req->challenge, 0x5a, sizeof(req->challenge));
    req->scope = STOR_SCOPE_CREDENTIAL;
    snprintf(req->cred, sizeof(req->cred), "%s", cred);
    req->num_signatures = 1;
    snprintf(req->hash_alg, sizeof(req->hash_alg), SHA256_OID);
    req->digest_len = 32;
    req->n_digests = 1;
    memset(req->digests[0], d, 32);
    cfx_otp(&f, otp);
    ck_assert_int_eq(oauth_session_login_new(f.oauth, req, CFX_USER, CFX_PASSWORD, strlen(CFX_PASSWORD), otp, 6,
                                             "192.0.2.1", sid, csrf),
                     OAUTH_OK);
    free(req);
}

/* CONSENT as a front end would send it; *code gets the code of a reply ("" if none). */
static unsigned consent(const char *sid, const char *csrf, int approve, const char *pin, uint32_t *refusal,
                        uint32_t *about, char code[OAUTH_TOKEN_BUFLEN])
{
    raw_t r;
    raw_begin(&r, SAM_OP_CONSENT);
    if (pin != NULL)
        sam_put_str(&r.b, SAM_T_PIN, pin);
    sam_put_str(&r.b, SAM_T_SESSION, sid);
    sam_put_u32(&r.b, SAM_T_DECISION, approve ? 1 : 0);
    sam_put_str(&r.b, SAM_T_ADDR, "192.0.2.1");
    sam_put_str(&r.b, SAM_T_CSRF, csrf);
    unsigned op = raw_run(&r, refusal, about);
    code[0] = '\0';
    if (op == (SAM_OP_CONSENT | SAM_OP_REPLY) && sam_msg_count(&r.reply, SAM_T_CODE) > 0)
        ck_assert_int_eq(sam_get_text(&r.reply, SAM_T_CODE, code, OAUTH_TOKEN_BUFLEN), SAM_OK);
    raw_end(&r);
    return op;
}

typedef struct {
    const char *cred;
    uint8_t digest[32];
    uint32_t n_digests;
    unsigned found;
} consent_rec_t;

/* The digests of the last approved consent of cred (STOR_EV_AUTHORIZE, OK): what its code's SAD is bound to. */
static int find_consent(const stor_audit_t *rec, void *arg)
{
    consent_rec_t *c = arg;
    if (rec->event == STOR_EV_AUTHORIZE && rec->result == STOR_RES_OK && strcmp(rec->cred, c->cred) == 0 &&
        strstr(rec->detail, "oauth2 consent approved") != NULL) {
        c->found++;
        c->n_digests = rec->n_digests;
        if (rec->n_digests == 1 && rec->digest_len == 32)
            memcpy(c->digest, rec->digests, 32);
    }
    return 0;
}

START_TEST(t_consent_code_bound_to_the_session)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN];
    uint32_t refusal, about;
    uint8_t want[32];
    session_for(CFX_CRED_OAUTH, 0xd1, sid, csrf);
    ck_assert_uint_eq(consent(sid, csrf, 1, CFX_PIN, &refusal, &about, code), SAM_OP_CONSENT | SAM_OP_REPLY);
    ck_assert_uint_eq(strlen(code), 43);
    /* the code's SAD is bound to the digest the session holds (the message carries none) */
    consent_rec_t c = {.cred = CFX_CRED_OAUTH};
    ck_assert_int_eq(stor_audit_each(f.stor, 1, find_consent, &c), STOR_OK);
    ck_assert_uint_eq(c.found, 1);
    ck_assert_uint_eq(c.n_digests, 1);
    memset(want, 0xd1, sizeof(want));
    ck_assert_mem_eq(c.digest, want, 32);
    /* the decision is replayed: the session yielded its one decision */
    ck_assert_uint_eq(consent(sid, csrf, 1, CFX_PIN, &refusal, &about, code), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    ck_assert_str_eq(code, "");
    sam_up();
}
END_TEST

START_TEST(t_consent_forged_session_and_csrf)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN];
    uint32_t refusal, about;
    unsigned denied = cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_DENIED, NULL);
    session_for(CFX_CRED_OAUTH, 0xd2, sid, csrf);
    /* a session id the SAM does not know */
    ck_assert_uint_eq(consent("forged-session-forged-session-forged-sessio", csrf, 1, CFX_PIN, &refusal, &about, code),
                      SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    /* the right session, but not its form */
    ck_assert_uint_eq(consent(sid, "forged-csrf", 1, CFX_PIN, &refusal, &about, code), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    ck_assert_str_eq(code, "");
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_DENIED, NULL), denied + 2);
    /* neither used the session up: the person's own decision still goes through */
    sam_up();
    ck_assert_uint_eq(consent(sid, csrf, 1, CFX_PIN, &refusal, &about, code), SAM_OP_CONSENT | SAM_OP_REPLY);
    ck_assert_uint_eq(strlen(code), 43);
}
END_TEST

START_TEST(t_consent_other_users_credential)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN];
    uint32_t refusal, about;
    /* alice's session for bob's credential: the SAM reads the owner itself */
    session_for(BOB_CRED, 0xd3, sid, csrf);
    ck_assert_uint_eq(consent(sid, csrf, 1, CFX_PIN, &refusal, &about, code), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(about, SAM_T_CRED);
    ck_assert_str_eq(code, "");
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_DENIED, BOB_CRED), 1);
    sam_up();
}
END_TEST

START_TEST(t_consent_wrong_pin_and_lockout)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], code[OAUTH_TOKEN_BUFLEN];
    uint32_t refusal = 0, about;
    unsigned tries = 0;
    session_for(CFX_CRED_OAUTH, 0xd4, sid, csrf);
    /* wrong PINs: each refused (the session stays for a retry) until the credential locks */
    while (tries < 20) {
        tries++;
        ck_assert_uint_eq(consent(sid, csrf, 1, "00000000", &refusal, &about, code), SAM_OP_REFUSED);
        ck_assert_uint_eq(about, SAM_T_PIN);
        if (refusal == SAM_REFUSE_LOCKED)
            break;
        ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    }
    ck_assert_uint_eq(refusal, SAM_REFUSE_LOCKED);
    ck_assert_uint_gt(tries, 1);
    ck_assert_uint_ge(cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_DENIED, CFX_CRED_OAUTH), tries);
    /* locked: even the right PIN gets no code now */
    session_for(CFX_CRED_OAUTH, 0xd5, sid, csrf);
    ck_assert_uint_eq(consent(sid, csrf, 1, CFX_PIN, &refusal, &about, code), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_LOCKED);
    ck_assert_str_eq(code, "");
    sam_up();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sam-web");
    TCase *tc = tcase_create("challenge");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_challenge_delivered_by_the_sam);
    tcase_add_test(tc, t_challenge_other_users_credential);
    tcase_add_test(tc, t_challenge_forged_token);
    tcase_add_test(tc, t_challenge_flood_rate_limited);
    tcase_add_test(tc, t_challenge_delivery_failure);
    suite_add_tcase(s, tc);
    tc = tcase_create("consent");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_consent_code_bound_to_the_session);
    tcase_add_test(tc, t_consent_forged_session_and_csrf);
    tcase_add_test(tc, t_consent_other_users_credential);
    tcase_add_test(tc, t_consent_wrong_pin_and_lockout);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
