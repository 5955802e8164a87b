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
#include "oauth_int.h" /* oauth_int_set_skew: an approval's expiry */
#include "sam_client.h"
#include "sam_server.h" /* sam_totp_open, sam_totp_seal */

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

/* ---- APPROVE ---------------------------------------------------------------------------------------------- */

#define AP_CRED "cfx-ap"     /* alice's: "PIN AND APPROVAL" */
#define BOB_AP_CRED "bob-ap" /* bob's: "APPROVAL" */

static int copy_user(stor_txn_t *t, void *arg)
{
    stor_user_t *u = calloc(1, sizeof(*u));
    int rc = u != NULL ? stor_txn_user_get(t, CFX_USER, u) : STOR_ERR_NOMEM;
    (void)arg;
    if (rc == STOR_OK) {
        /* alice's password and TOTP secret, under another name: sealed again for bob (alice's sealed bytes do not
         * open under his name: tests/unit/hsm/test_factor.c) */
        uint8_t s[STOR_TOTP_MAX];
        size_t n = 0;
        snprintf(u->name, sizeof(u->name), "bob");
        if (sam_totp_open(f.hsm, CFX_USER, u->totp_sealed, u->totp_sealed_len, s, &n) != 0 ||
            sam_totp_seal(f.hsm, "bob", s, n, u->totp_sealed, &u->totp_sealed_len) != 0)
            rc = STOR_ERR_INVAL;
        else
            rc = stor_txn_user_put(t, u, 1);
    }
    free(u);
    return rc;
}

static void approve_setup(void)
{
    setup();
    add_cred(AP_CRED, CFX_USER, "PIN AND APPROVAL");
    add_cred(BOB_AP_CRED, "bob", "APPROVAL");
    ck_assert_int_eq(stor_write(f.stor, copy_user, NULL), STOR_OK);
}

/* A pending request of user for cred, filed as csc-sam's AUTHORIZE files it; handle for authorizeCheck. */
static void file_request(const char *user, const char *cred, char handle[OAUTH_TOKEN_BUFLEN])
{
    uint8_t d[32];
    const uint8_t *dp[1] = {d};
    unsigned ttl = 0;
    memset(d, 0xa7, sizeof(d));
    oauth_sad_request_t r = {.user = user, .cred = cred, .num_signatures = 1, .hash_alg = SHA256_OID, .digests = dp,
                             .digest_len = 32, .n_digests = 1, .client = "test-client"};
    ck_assert_int_eq(oauth_approval_new(f.oauth, &r, handle, &ttl), OAUTH_OK);
}

typedef struct {
    const char *cred;
    uint8_t ref[16];
    unsigned n;
} ref_find_t;

static void ref_see(const oauth_approval_view_t *v, void *arg)
{
    ref_find_t *r = arg;
    if (strcmp(v->cred, r->cred) == 0) {
        memcpy(r->ref, v->ref, 16);
        r->n++;
    }
}

/* The reference the page shows for user's pending request of cred (0 pending: the test fails). */
static void ref_of_pending(const char *user, const char *cred, uint8_t ref[16])
{
    ref_find_t r = {.cred = cred};
    (void)oauth_approval_each(f.oauth, user, ref_see, &r);
    ck_assert_uint_eq(r.n, 1);
    memcpy(ref, r.ref, 16);
}

static unsigned n_pending(const char *user, const char *cred)
{
    ref_find_t r = {.cred = cred};
    (void)oauth_approval_each(f.oauth, user, ref_see, &r);
    return r.n;
}

/* A browser session of the approval page, signed in as user (password and TOTP, as the page's login does). */
static void page_session(const char *user, char sid[OAUTH_TOKEN_BUFLEN], char csrf[OAUTH_TOKEN_BUFLEN])
{
    cfx_page_session(&f, user, sid, csrf);
}

/* APPROVE as a front end would send it. */
static unsigned approve(const char *sid, const char *csrf, const uint8_t ref[16], int decision, const char *pin,
                        uint32_t *refusal, uint32_t *about)
{
    raw_t r;
    raw_begin(&r, SAM_OP_APPROVE);
    if (pin != NULL)
        sam_put_str(&r.b, SAM_T_PIN, pin);
    sam_put_bytes(&r.b, SAM_T_APPROVAL_REF, ref, 16);
    sam_put_str(&r.b, SAM_T_SESSION, sid);
    sam_put_u32(&r.b, SAM_T_DECISION, decision ? 1 : 0);
    sam_put_str(&r.b, SAM_T_ADDR, "192.0.2.9");
    sam_put_str(&r.b, SAM_T_CSRF, csrf);
    unsigned op = raw_run(&r, refusal, about);
    raw_end(&r);
    return op;
}

static int check_handle(const char *user, const char *handle, char sad[OAUTH_TOKEN_BUFLEN])
{
    unsigned exp = 0;
    return oauth_approval_check(f.oauth, user, handle, strlen(handle), sad, &exp);
}

START_TEST(t_approve_in_the_session)
{
    char h[OAUTH_TOKEN_BUFLEN], sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], sad[OAUTH_TOKEN_BUFLEN];
    uint8_t ref[16];
    uint32_t refusal, about;
    file_request(CFX_USER, AP_CRED, h);
    ref_of_pending(CFX_USER, AP_CRED, ref);
    page_session(CFX_USER, sid, csrf);
    ck_assert_uint_eq(approve(sid, csrf, ref, 1, CFX_PIN, &refusal, &about), SAM_OP_APPROVE | SAM_OP_REPLY);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_APPROVAL, STOR_RES_OK, AP_CRED), 1);
    ck_assert_int_eq(check_handle(CFX_USER, h, sad), OAUTH_OK);
    ck_assert_uint_eq(strlen(sad), 43);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_OK, AP_CRED), 1);
    sam_up();
}
END_TEST

START_TEST(t_approve_forged_session_csrf_and_page)
{
    char h[OAUTH_TOKEN_BUFLEN], sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], sad[OAUTH_TOKEN_BUFLEN];
    char osid[OAUTH_TOKEN_BUFLEN], ocsrf[OAUTH_TOKEN_BUFLEN];
    uint8_t ref[16];
    uint32_t refusal, about;
    file_request(CFX_USER, AP_CRED, h);
    ref_of_pending(CFX_USER, AP_CRED, ref);
    page_session(CFX_USER, sid, csrf);
    unsigned denied = cfx_audit_count(&f, STOR_EV_APPROVAL, STOR_RES_DENIED, NULL);
    /* a session id the SAM does not know */
    ck_assert_uint_eq(approve("forged-session-forged-session-forged-sessio", csrf, ref, 1, CFX_PIN, &refusal, &about),
                      SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    /* the right session, but not its form */
    ck_assert_uint_eq(approve(sid, "forged-csrf", ref, 1, CFX_PIN, &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    /* alice's signed-in session of an OAuth client's consent page, with its own form token: not the approval page */
    session_for(CFX_CRED_OAUTH, 0xe1, osid, ocsrf);
    ck_assert_uint_eq(approve(osid, ocsrf, ref, 1, CFX_PIN, &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(about, SAM_T_SESSION);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_APPROVAL, STOR_RES_DENIED, NULL), denied + 3);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_APPROVAL, STOR_RES_OK, NULL), 0);
    /* nothing was decided: still pending, and the person's own decision goes through */
    ck_assert_int_eq(check_handle(CFX_USER, h, sad), OAUTH_PENDING);
    sam_up();
    ck_assert_uint_eq(approve(sid, csrf, ref, 0, NULL, &refusal, &about), SAM_OP_APPROVE | SAM_OP_REPLY);
    ck_assert_int_eq(check_handle(CFX_USER, h, sad), OAUTH_ERR_DENIED);
}
END_TEST

START_TEST(t_approve_other_users_request)
{
    char ha[OAUTH_TOKEN_BUFLEN], hb[OAUTH_TOKEN_BUFLEN], sad[OAUTH_TOKEN_BUFLEN];
    char asid[OAUTH_TOKEN_BUFLEN], acsrf[OAUTH_TOKEN_BUFLEN], bsid[OAUTH_TOKEN_BUFLEN], bcsrf[OAUTH_TOKEN_BUFLEN];
    uint8_t aref[16], bref[16];
    uint32_t refusal, about;
    file_request(CFX_USER, AP_CRED, ha);
    file_request("bob", BOB_AP_CRED, hb);
    ref_of_pending(CFX_USER, AP_CRED, aref);
    ref_of_pending("bob", BOB_AP_CRED, bref);
    page_session("bob", bsid, bcsrf);
    page_session(CFX_USER, asid, acsrf);
    unsigned denied = cfx_audit_count(&f, STOR_EV_APPROVAL, STOR_RES_DENIED, NULL);
    /* bob, signed in, approves alice's request by its reference (and with her PIN): the SAM decides only the
     * session user's own */
    ck_assert_uint_eq(approve(bsid, bcsrf, aref, 1, CFX_PIN, &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(about, SAM_T_APPROVAL_REF);
    /* and alice refuses bob's */
    ck_assert_uint_eq(approve(asid, acsrf, bref, 0, NULL, &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_APPROVAL, STOR_RES_DENIED, NULL), denied + 2);
    ck_assert_int_eq(check_handle(CFX_USER, ha, sad), OAUTH_PENDING);
    ck_assert_int_eq(check_handle("bob", hb, sad), OAUTH_PENDING);
    ck_assert_uint_eq(n_pending(CFX_USER, AP_CRED), 1);
    ck_assert_uint_eq(n_pending("bob", BOB_AP_CRED), 1);
    sam_up();
}
END_TEST

START_TEST(t_approve_decided_and_expired)
{
    char h[OAUTH_TOKEN_BUFLEN], h2[OAUTH_TOKEN_BUFLEN], sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    char sad[OAUTH_TOKEN_BUFLEN];
    uint8_t ref[16], ref2[16];
    uint32_t refusal, about;
    file_request(CFX_USER, AP_CRED, h);
    ref_of_pending(CFX_USER, AP_CRED, ref);
    page_session(CFX_USER, sid, csrf);
    ck_assert_uint_eq(approve(sid, csrf, ref, 1, CFX_PIN, &refusal, &about), SAM_OP_APPROVE | SAM_OP_REPLY);
    /* decided: neither a second approval nor a refusal changes it */
    unsigned denied = cfx_audit_count(&f, STOR_EV_APPROVAL, STOR_RES_DENIED, NULL);
    ck_assert_uint_eq(approve(sid, csrf, ref, 0, NULL, &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(about, SAM_T_APPROVAL_REF);
    ck_assert_uint_eq(approve(sid, csrf, ref, 1, CFX_PIN, &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_APPROVAL, STOR_RES_OK, AP_CRED), 1);
    /* an expired request: approval_ttl later, in a fresh session */
    file_request(CFX_USER, AP_CRED, h2);
    ref_of_pending(CFX_USER, AP_CRED, ref2);
    f.skew += (int64_t)oauth_config(f.oauth)->approval_ttl;
    oauth_int_set_skew(f.oauth, f.skew);
    page_session(CFX_USER, sid, csrf);
    ck_assert_uint_eq(approve(sid, csrf, ref2, 1, CFX_PIN, &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(about, SAM_T_APPROVAL_REF);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_APPROVAL, STOR_RES_DENIED, NULL), denied + 3);
    ck_assert_int_eq(check_handle(CFX_USER, h2, sad), OAUTH_ERR_EXPIRED);
    sam_up();
}
END_TEST

START_TEST(t_approve_wrong_pin_to_lock)
{
    char h[OAUTH_TOKEN_BUFLEN], sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], sad[OAUTH_TOKEN_BUFLEN];
    uint8_t ref[16];
    uint32_t refusal = 0, about;
    unsigned tries = 0;
    file_request(CFX_USER, AP_CRED, h);
    ref_of_pending(CFX_USER, AP_CRED, ref);
    page_session(CFX_USER, sid, csrf);
    /* wrong PINs: each refused, the request still pending, until the credential locks; then it is refused */
    while (tries < 20) {
        tries++;
        ck_assert_uint_eq(approve(sid, csrf, ref, 1, "00000000", &refusal, &about), SAM_OP_REFUSED);
        ck_assert_uint_eq(about, SAM_T_PIN);
        if (refusal == SAM_REFUSE_LOCKED)
            break;
        ck_assert_uint_eq(refusal, SAM_REFUSE_UNAUTHORIZED);
        ck_assert_int_eq(check_handle(CFX_USER, h, sad), OAUTH_PENDING);
    }
    ck_assert_uint_eq(refusal, SAM_REFUSE_LOCKED);
    ck_assert_uint_gt(tries, 1);
    ck_assert_uint_ge(cfx_audit_count(&f, STOR_EV_AUTHORIZE, STOR_RES_DENIED, AP_CRED), tries);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_APPROVAL, STOR_RES_DENIED, AP_CRED), 1);
    /* the right PIN comes too late: the request was refused, once */
    ck_assert_uint_eq(approve(sid, csrf, ref, 1, CFX_PIN, &refusal, &about), SAM_OP_REFUSED);
    ck_assert_uint_eq(refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_int_eq(check_handle(CFX_USER, h, sad), OAUTH_ERR_LOCKED);
    ck_assert_str_eq(sad, "");
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
    tc = tcase_create("approve");
    tcase_add_checked_fixture(tc, approve_setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_approve_in_the_session);
    tcase_add_test(tc, t_approve_forged_session_csrf_and_page);
    tcase_add_test(tc, t_approve_other_users_request);
    tcase_add_test(tc, t_approve_decided_and_expired);
    tcase_add_test(tc, t_approve_wrong_pin_to_lock);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
