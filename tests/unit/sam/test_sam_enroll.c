/*
 * test_sam_enroll.c - a compromised front end against csc-sam's enrollment ops (ENROLL_BEGIN, ENROLL_FINISH,
 * ACCOUNT_PIN): it speaks the protocol directly (sam_build_* + sam_client_call) to the fixture's in-process SAM, with
 * wrong, expired, replayed and forged codes and tickets, another user's ticket, passwords and PINs that break the
 * rules, forged sessions and form tokens, and credentials that do not wait for the user's PIN. Each is refused by
 * csc-sam itself (the front end's checks are absent here), audited, and changes nothing. ctest: unit_sam_enroll.
 */
#include <liboath/oath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/sha.h>

#include "csc_fixture.h"
#include "oauth_int.h" /* oauth_int_derivations */
#include "sam_client.h"
#include "sam_server.h" /* sam_totp_open */

#define CODE "ABCDEFGHJKLMNPQR"        /* erin's code, as issued (normalized) */
#define CODE_TYPED "abcd-efgh-jkLM-npqr" /* ... as typed */
#define PW "Enrolled-Pass-77"
#define PIN "13572468"
#define ERIN_CRED "erin-key"             /* erin's, PIN AND OTP, waiting for her PIN */

static cfx_t f;

/* ---- the world: users enrolling and credentials waiting for a PIN ---- */

typedef struct {
    const char *user, *code;
    uint32_t tries;
    int64_t expires;
    const char *cred_from, *cred_id, *cred_owner;
    int unset;
} mk_t;

static int mk_user_fn(stor_txn_t *t, void *arg)
{
    const mk_t *m = arg;
    stor_user_t *u = calloc(1, sizeof(*u));
    stor_enroll_t *e = calloc(1, sizeof(*e));
    int rc = u != NULL && e != NULL ? STOR_OK : STOR_ERR_NOMEM;
    if (rc == STOR_OK) {
        snprintf(u->name, sizeof(u->name), "%s", m->user);
        u->status = STOR_USER_ENROLLING;
        rc = stor_txn_user_put(t, u, 0);
    }
    if (rc == STOR_OK) {
        snprintf(e->user, sizeof(e->user), "%s", m->user);
        SHA256((const uint8_t *)m->code, strlen(m->code), e->code_hash);
        e->expires_at = m->expires;
        e->tries_left = m->tries;
        e->kind = STOR_ENROLL_NEW;
        snprintf(e->issued_by, sizeof(e->issued_by), "op");
        rc = stor_txn_enroll_put(t, e);
    }
    free(u);
    free(e);
    return rc;
}

static void enrolling(const char *user, const char *code, uint32_t tries, int64_t expires)
{
    mk_t m = {.user = user, .code = code, .tries = tries, .expires = expires};
    ck_assert_int_eq(stor_write(f.stor, mk_user_fn, &m), STOR_OK);
}

static int mk_cred_fn(stor_txn_t *t, void *arg)
{
    const mk_t *m = arg;
    stor_cred_t *c = calloc(1, sizeof(*c));
    int rc = c != NULL ? stor_txn_cred_get(t, m->cred_from, c) : STOR_ERR_NOMEM;
    if (rc == STOR_OK) {
        snprintf(c->id, sizeof(c->id), "%s", m->cred_id);
        snprintf(c->owner, sizeof(c->owner), "%s", m->cred_owner);
        c->pin_unset = (uint32_t)m->unset;
        if (m->unset) {
            memset(c->pin_verifier, 0, sizeof(c->pin_verifier));
            c->pin_verifier_len = 0;
        }
        rc = stor_txn_cred_put(t, c, 1);
    }
    free(c);
    return rc;
}

/* A credential like CFX_CRED_EC (PIN AND OTP) under id for owner; unset: its PIN waits for the owner. */
static void cred(const char *id, const char *owner, int unset)
{
    mk_t m = {.cred_from = CFX_CRED_EC, .cred_id = id, .cred_owner = owner, .unset = unset};
    ck_assert_int_eq(stor_write(f.stor, mk_cred_fn, &m), STOR_OK);
}

static void setup(void)
{
    cfx_open(&f, NULL);
    enrolling("erin", CODE, 3, (int64_t)time(NULL) + 3600);
    cred(ERIN_CRED, "erin", 1);
}

static void teardown(void)
{
    cfx_close(&f);
}

/* ---- the compromised front end's requests ---- */

typedef struct {
    sam_builder_t b;
    sam_rbuf_t rb;
    sam_msg_t reply;
    uint32_t refusal, about;
} raw_t;

static void raw_begin(raw_t *r, unsigned op)
{
    memset(r, 0, sizeof(*r));
    ck_assert_int_eq(sam_build_init(&r->b, op, sam_client_next_id(f.sam)), SAM_OK);
}

static unsigned raw_run(raw_t *r)
{
    const uint8_t *msg;
    size_t len;
    ck_assert_int_eq(sam_build_finish(&r->b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(f.sam, msg, len, &r->rb, &r->reply), SAM_OK);
    if (r->reply.op == SAM_OP_REFUSED) {
        ck_assert_int_eq(sam_get_u32(&r->reply, SAM_T_REFUSAL, &r->refusal), SAM_OK);
        (void)sam_get_u32(&r->reply, SAM_T_ABOUT, &r->about);
    }
    return r->reply.op;
}

static void raw_end(raw_t *r)
{
    sam_build_free(&r->b);
    sam_rbuf_free(&r->rb);
}

/* What step 2 gets. */
typedef struct {
    char ticket[SAM_TOKEN_MAX + 1], csrf[SAM_TOKEN_MAX + 1], user[SAM_NAME_MAX + 1];
    uint8_t secret[64];
    size_t secret_len;
    unsigned n_creds;
    uint32_t refusal;
} step_t;

/* ENROLL_BEGIN with a code (user) or a ticket (user NULL). */
static unsigned begin(const char *user, const char *code_or_ticket, step_t *s)
{
    raw_t r;
    const uint8_t *p;
    size_t len;
    memset(s, 0, sizeof(*s));
    raw_begin(&r, SAM_OP_ENROLL_BEGIN);
    if (user != NULL)
        sam_put_str(&r.b, SAM_T_USER, user);
    sam_put_str(&r.b, SAM_T_ADDR, "192.0.2.7");
    sam_put_str(&r.b, user != NULL ? SAM_T_ENROLL_CODE : SAM_T_ENROLL_TICKET, code_or_ticket);
    unsigned op = raw_run(&r);
    s->refusal = r.refusal;
    if (op == (SAM_OP_ENROLL_BEGIN | SAM_OP_REPLY)) {
        if (user != NULL)
            ck_assert_int_eq(sam_get_text(&r.reply, SAM_T_ENROLL_TICKET, s->ticket, sizeof(s->ticket)), SAM_OK);
        else
            snprintf(s->ticket, sizeof(s->ticket), "%s", code_or_ticket);
        ck_assert_int_eq(sam_get_text(&r.reply, SAM_T_CSRF, s->csrf, sizeof(s->csrf)), SAM_OK);
        ck_assert_int_eq(sam_get_text(&r.reply, SAM_T_USER, s->user, sizeof(s->user)), SAM_OK);
        ck_assert_int_eq(sam_get_bytes(&r.reply, SAM_T_TOTP_SECRET, &p, &len), SAM_OK);
        memcpy(s->secret, p, len);
        s->secret_len = len;
        s->n_creds = sam_msg_count(&r.reply, SAM_T_CRED);
    }
    raw_end(&r);
    return op;
}

/* The TOTP code of s's secret now (as the person's app shows it). */
static void otp_now(const step_t *s, char code[7])
{
    ck_assert_int_eq(oath_totp_generate((const char *)s->secret, s->secret_len, time(NULL), 30, 0, 6, code), OATH_OK);
}

/* ENROLL_FINISH: ticket and csrf (s's unless given), password, otp ("" = the right one now), PINs of creds. */
static unsigned finish(const step_t *s, const char *ticket, const char *csrf, const char *pw, const char *otp, int n,
                       const char *const *creds, const char *const *pins, uint32_t *about)
{
    raw_t r;
    char code[7];
    raw_begin(&r, SAM_OP_ENROLL_FINISH);
    for (int i = 0; i < n; i++)
        sam_put_str(&r.b, SAM_T_CRED, creds[i]);
    for (int i = 0; i < n; i++)
        sam_put_str(&r.b, SAM_T_PIN, pins[i]);
    if (otp[0] == '\0')
        otp_now(s, code);
    sam_put_str(&r.b, SAM_T_OTP, otp[0] != '\0' ? otp : code);
    sam_put_str(&r.b, SAM_T_ADDR, "192.0.2.7");
    sam_put_str(&r.b, SAM_T_CSRF, csrf != NULL ? csrf : s->csrf);
    sam_put_str(&r.b, SAM_T_ENROLL_TICKET, ticket != NULL ? ticket : s->ticket);
    sam_put_str(&r.b, SAM_T_PASSWORD, pw);
    unsigned op = raw_run(&r);
    *about = r.about;
    uint32_t refusal = r.refusal;
    raw_end(&r);
    return op == SAM_OP_REFUSED ? 0x100u | refusal : op;
}
#define FINISHED (SAM_OP_ENROLL_FINISH | SAM_OP_REPLY)
#define REFUSED(code) (0x100u | (code))

static int get_user_fn(stor_txn_t *t, void *arg)
{
    stor_user_t *u = arg;
    char name[STOR_NAME_MAX + 1];
    memcpy(name, u->name, sizeof(name));
    return stor_txn_user_get(t, name, u);
}

static uint32_t user_status(const char *name)
{
    stor_user_t *u = calloc(1, sizeof(*u));
    ck_assert_ptr_nonnull(u);
    snprintf(u->name, sizeof(u->name), "%s", name);
    ck_assert_int_eq(stor_read(f.stor, get_user_fn, u), STOR_OK);
    uint32_t st = u->status;
    free(u);
    return st;
}

/* TOTP secrets at rest: the ticket of s and then the user's record hold the secret sealed, never in clear. */
typedef struct {
    const step_t *s;
    stor_enroll_ticket_t k;
    stor_user_t u;
    int ticket_rc;
} at_rest_t;

static int at_rest_fn(stor_txn_t *t, void *arg)
{
    at_rest_t *a = arg;
    uint8_t h[32];
    SHA256((const uint8_t *)a->s->ticket, strlen(a->s->ticket), h);
    a->ticket_rc = stor_txn_enroll_ticket_get(t, h, &a->k);
    return stor_txn_user_get(t, a->s->user, &a->u);
}

static at_rest_t *at_rest(const step_t *s)
{
    at_rest_t *a = calloc(1, sizeof(*a));
    ck_assert_ptr_nonnull(a);
    a->s = s;
    ck_assert_int_eq(stor_read(f.stor, at_rest_fn, a), STOR_OK);
    return a;
}

static int pin_unset(const char *id, const char *user)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(stor_cred_get(f.stor, id, c), STOR_OK);
    int r = stor_cred_pin_unset(c, user);
    free(c);
    return r;
}

static void sam_up(void)
{
    sam_hello_t h;
    ck_assert_int_eq(sam_client_hello(f.sam, &h), SAM_OK);
}

/* ---- ENROLL_BEGIN ---- */

START_TEST(t_wrong_code_burns_after_the_tries)
{
    step_t s;
    unsigned before = cfx_audit_count(&f, STOR_EV_ENROLL, STOR_RES_DENIED, NULL);
    for (int i = 0; i < 3; i++) { /* enroll_code_tries 3 */
        ck_assert_uint_eq(begin("erin", "BCDE-FGHJ-KLMN-PQRS", &s), SAM_OP_REFUSED);
        ck_assert_uint_eq(s.refusal, SAM_REFUSE_UNAUTHORIZED);
    }
    /* burnt: the right code no longer begins anything, and the refusal is the same as for a name without a code */
    ck_assert_uint_eq(begin("erin", CODE_TYPED, &s), SAM_OP_REFUSED);
    ck_assert_uint_eq(s.refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(begin("nobody", CODE_TYPED, &s), SAM_OP_REFUSED);
    ck_assert_uint_eq(s.refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_ENROLL, STOR_RES_DENIED, NULL), before + 5);
    ck_assert_uint_eq(user_status("erin"), STOR_USER_ENROLLING);
    sam_up();
}
END_TEST

START_TEST(t_expired_code)
{
    step_t s;
    enrolling("fred", "QRSTUVWXYZ234567", 3, (int64_t)time(NULL) - 1);
    ck_assert_uint_eq(begin("fred", "QRST-UVWX-YZ23-4567", &s), SAM_OP_REFUSED);
    ck_assert_uint_eq(s.refusal, SAM_REFUSE_EXPIRED);
    ck_assert_uint_eq(begin("fred", "QRST-UVWX-YZ23-4567", &s), SAM_OP_REFUSED); /* gone */
    ck_assert_uint_eq(s.refusal, SAM_REFUSE_UNAUTHORIZED);
    sam_up();
}
END_TEST

/* ---- ENROLL_FINISH ---- */

START_TEST(t_enroll_then_replays_refused)
{
    step_t s, s2;
    uint32_t about;
    const char *creds[] = {ERIN_CRED}, *pins[] = {PIN};
    ck_assert_uint_eq(begin("erin", CODE_TYPED, &s), SAM_OP_ENROLL_BEGIN | SAM_OP_REPLY);
    ck_assert_str_eq(s.user, "erin");
    ck_assert_uint_eq(s.n_creds, 1);
    ck_assert_uint_eq(s.secret_len, OAUTH_TOTP_SECRET_LEN);
    /* the ticket shows step 2 again, with the same secret */
    ck_assert_uint_eq(begin(NULL, s.ticket, &s2), SAM_OP_ENROLL_BEGIN | SAM_OP_REPLY);
    ck_assert_mem_eq(s2.secret, s.secret, s.secret_len);
    at_rest_t *a = at_rest(&s); /* the ticket keeps the secret sealed under the factor key */
    ck_assert_int_eq(a->ticket_rc, STOR_OK);
    ck_assert_uint_eq(a->k.totp_secret_len, 0);
    ck_assert_uint_eq(a->k.totp_sealed_len, 1 + 12 + s.secret_len + 16);
    ck_assert_ptr_null(memmem(&a->k, sizeof(a->k), s.secret, s.secret_len));
    free(a);
    ck_assert_uint_eq(finish(&s, NULL, NULL, PW, "", 1, creds, pins, &about), FINISHED);
    ck_assert_uint_eq(user_status("erin"), STOR_USER_ACTIVE);
    a = at_rest(&s); /* and so does the user's record */
    ck_assert_uint_eq(a->u.totp_secret_len, 0);
    ck_assert_uint_eq(a->u.totp_sealed_len, 1 + 12 + s.secret_len + 16);
    ck_assert_ptr_null(memmem(&a->u, sizeof(a->u), s.secret, s.secret_len));
    uint8_t opened[STOR_TOTP_MAX];
    size_t n = 0;
    ck_assert_int_eq(sam_totp_open(f.hsm, "erin", a->u.totp_sealed, a->u.totp_sealed_len, opened, &n), 0);
    ck_assert_mem_eq(opened, s.secret, s.secret_len);
    free(a);
    ck_assert_int_eq(pin_unset(ERIN_CRED, "erin"), 0);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_ENROLL, STOR_RES_OK, ERIN_CRED), 1); /* pin.set */
    /* the code and the ticket are spent */
    ck_assert_uint_eq(begin("erin", CODE_TYPED, &s2), SAM_OP_REFUSED);
    ck_assert_uint_eq(finish(&s, NULL, NULL, PW, "", 1, creds, pins, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(begin(NULL, s.ticket, &s2), SAM_OP_REFUSED);
    sam_up();
}
END_TEST

/* base64url(SHA-256("csc-enroll-csrf" NUL ticket)): what csc-sam derives; a front end can compute it for any ticket. */
static void csrf_of(const char *ticket, char out[OAUTH_TOKEN_BUFLEN])
{
    uint8_t in[16 + SAM_TOKEN_MAX], h[32];
    memcpy(in, "csc-enroll-csrf", 16);
    memcpy(in + 16, ticket, strlen(ticket));
    SHA256(in, 16 + strlen(ticket), h);
    oauth_b64_encode(h, 32, out, OAUTH_B64_URL);
}

static int expire_ticket_fn(stor_txn_t *t, void *arg)
{
    const char *ticket = arg;
    uint8_t h[32];
    stor_enroll_ticket_t k;
    SHA256((const uint8_t *)ticket, strlen(ticket), h);
    int rc = stor_txn_enroll_ticket_get(t, h, &k);
    if (rc == STOR_OK) {
        k.expires_at = (int64_t)time(NULL) - 1;
        rc = stor_txn_enroll_ticket_put(t, &k);
    }
    return rc;
}

START_TEST(t_forged_and_expired_ticket)
{
    step_t s;
    uint32_t about;
    char forged_csrf[OAUTH_TOKEN_BUFLEN];
    const char *forged = "forged-ticket-forged-ticket-forged-ticket-0";
    ck_assert_uint_eq(begin("erin", CODE_TYPED, &s), SAM_OP_ENROLL_BEGIN | SAM_OP_REPLY);
    /* the form of another ticket (its CSRF token is not this one's) */
    ck_assert_uint_eq(finish(&s, NULL, "not-the-tickets-csrf-token", PW, "", 0, NULL, NULL, &about),
                      REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_uint_eq(about, SAM_T_CSRF);
    /* a ticket csc-sam never issued, with the token that goes with it */
    csrf_of(forged, forged_csrf);
    ck_assert_uint_eq(finish(&s, forged, forged_csrf, PW, "", 0, NULL, NULL, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(about, SAM_T_ENROLL_TICKET);
    /* an expired ticket */
    ck_assert_int_eq(stor_write(f.stor, expire_ticket_fn, s.ticket), STOR_OK);
    ck_assert_uint_eq(finish(&s, NULL, NULL, PW, "", 0, NULL, NULL, &about), REFUSED(SAM_REFUSE_EXPIRED));
    ck_assert_uint_eq(user_status("erin"), STOR_USER_ENROLLING);
    sam_up();
}
END_TEST

START_TEST(t_ticket_of_another_user)
{
    step_t se, sf, se2;
    uint32_t about;
    const char *creds[] = {ERIN_CRED}, *pins[] = {PIN};
    enrolling("fred", "QRSTUVWXYZ234567", 3, (int64_t)time(NULL) + 3600);
    ck_assert_uint_eq(begin("erin", CODE_TYPED, &se), SAM_OP_ENROLL_BEGIN | SAM_OP_REPLY);
    ck_assert_uint_eq(begin("fred", "QRSTUVWXYZ234567", &sf), SAM_OP_ENROLL_BEGIN | SAM_OP_REPLY);
    /* fred's ticket cannot set the PIN of erin's credential */
    ck_assert_uint_eq(finish(&sf, NULL, NULL, PW, "", 1, creds, pins, &about), REFUSED(SAM_REFUSE_BAD_MESSAGE));
    ck_assert_uint_eq(about, SAM_T_PIN);
    ck_assert_int_eq(pin_unset(ERIN_CRED, "erin"), 1);
    ck_assert_uint_eq(user_status("fred"), STOR_USER_ENROLLING);
    /* a second step 1 of erin's makes her first ticket worthless */
    ck_assert_uint_eq(begin("erin", CODE_TYPED, &se2), SAM_OP_ENROLL_BEGIN | SAM_OP_REPLY);
    ck_assert_uint_eq(finish(&se, NULL, NULL, PW, "", 1, creds, pins, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(finish(&se2, NULL, NULL, PW, "", 1, creds, pins, &about), FINISHED);
    sam_up();
}
END_TEST

START_TEST(t_new_code_voids_the_ticket)
{
    step_t s;
    uint32_t about;
    const char *creds[] = {ERIN_CRED}, *pins[] = {PIN};
    ck_assert_uint_eq(begin("erin", CODE_TYPED, &s), SAM_OP_ENROLL_BEGIN | SAM_OP_REPLY);
    /* an operator issues a new code meanwhile (user recover): the ticket of the old one no longer finishes */
    enrolling("erin", "QRSTUVWXYZ234567", 3, (int64_t)time(NULL) + 3600);
    ck_assert_uint_eq(finish(&s, NULL, NULL, PW, "", 1, creds, pins, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    step_t s2;
    ck_assert_uint_eq(begin(NULL, s.ticket, &s2), SAM_OP_REFUSED);
    ck_assert_uint_eq(user_status("erin"), STOR_USER_ENROLLING);
    sam_up();
}
END_TEST

START_TEST(t_rules_enforced_by_the_sam)
{
    step_t s;
    uint32_t about;
    const char *creds[] = {ERIN_CRED}, *short_pin[] = {"12"}, *letters[] = {"12ab5678"}, *pins[] = {PIN};
    ck_assert_uint_eq(begin("erin", CODE_TYPED, &s), SAM_OP_ENROLL_BEGIN | SAM_OP_REPLY);
    static const char *const bad_pw[] = {"Short-1a", "alllowercaseletters", "Erin-is-here-123", ""};
    for (size_t i = 0; i < sizeof(bad_pw) / sizeof(bad_pw[0]); i++) {
        ck_assert_uint_eq(finish(&s, NULL, NULL, bad_pw[i], "", 1, creds, pins, &about),
                          REFUSED(SAM_REFUSE_BAD_MESSAGE));
        ck_assert_uint_eq(about, SAM_T_PASSWORD);
    }
    ck_assert_uint_eq(finish(&s, NULL, NULL, PW, "", 1, creds, short_pin, &about), REFUSED(SAM_REFUSE_BAD_MESSAGE));
    ck_assert_uint_eq(about, SAM_T_PIN);
    ck_assert_uint_eq(finish(&s, NULL, NULL, PW, "", 1, creds, letters, &about), REFUSED(SAM_REFUSE_BAD_MESSAGE));
    ck_assert_uint_eq(about, SAM_T_PIN);
    /* a credential that does not wait for her PIN (alice's, its PIN set) */
    const char *alices[] = {CFX_CRED_EC};
    ck_assert_uint_eq(finish(&s, NULL, NULL, PW, "", 1, alices, pins, &about), REFUSED(SAM_REFUSE_BAD_MESSAGE));
    ck_assert_uint_eq(about, SAM_T_PIN);
    /* wrong first TOTP codes count on the code: the third (enroll_code_tries 3) burns it. A wrong code costs no
     * scrypt: the password's and PINs' verifiers are derived only after the code was right. */
    unsigned long scrypts = oauth_int_derivations();
    ck_assert_uint_eq(finish(&s, NULL, NULL, PW, "000000", 1, creds, pins, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_uint_eq(about, SAM_T_OTP);
    ck_assert_uint_eq(oauth_int_derivations(), scrypts);
    ck_assert_uint_eq(finish(&s, NULL, NULL, PW, "999999", 1, creds, pins, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_uint_eq(finish(&s, NULL, NULL, PW, "000001", 1, creds, pins, &about), REFUSED(SAM_REFUSE_LOCKED));
    ck_assert_uint_eq(finish(&s, NULL, NULL, PW, "", 1, creds, pins, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(user_status("erin"), STOR_USER_ENROLLING);
    ck_assert_int_eq(pin_unset(ERIN_CRED, "erin"), 1);
    sam_up();
}
END_TEST

/* ---- ACCOUNT_PIN ---- */

static unsigned account_pin(const char *sid, const char *csrf, const char *id, const char *pin, uint32_t *about)
{
    raw_t r;
    raw_begin(&r, SAM_OP_ACCOUNT_PIN);
    sam_put_str(&r.b, SAM_T_CRED, id);
    sam_put_str(&r.b, SAM_T_PIN, pin);
    sam_put_str(&r.b, SAM_T_SESSION, sid);
    sam_put_str(&r.b, SAM_T_ADDR, "192.0.2.9");
    sam_put_str(&r.b, SAM_T_CSRF, csrf);
    unsigned op = raw_run(&r);
    *about = r.about;
    uint32_t refusal = r.refusal;
    raw_end(&r);
    return op == SAM_OP_REFUSED ? 0x100u | refusal : op;
}
#define PIN_SET (SAM_OP_ACCOUNT_PIN | SAM_OP_REPLY)

START_TEST(t_account_pin)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    uint32_t about;
    cred("alice-new", CFX_USER, 1);
    cfx_page_session(&f, CFX_USER, sid, csrf);
    unsigned denied = cfx_audit_count(&f, STOR_EV_ENROLL, STOR_RES_DENIED, NULL);
    /* a session csc-sam does not know; the right session with a forged form */
    ck_assert_uint_eq(account_pin("forged-session-forged-session-forged-sessio", csrf, "alice-new", PIN, &about),
                      REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(about, SAM_T_SESSION);
    ck_assert_uint_eq(account_pin(sid, "forged-csrf", "alice-new", PIN, &about), REFUSED(SAM_REFUSE_UNAUTHORIZED));
    ck_assert_uint_eq(about, SAM_T_SESSION);
    /* the rule */
    ck_assert_uint_eq(account_pin(sid, csrf, "alice-new", "12", &about), REFUSED(SAM_REFUSE_BAD_MESSAGE));
    ck_assert_uint_eq(about, SAM_T_PIN);
    /* a credential whose PIN is set; another user's waiting one; one that does not exist */
    ck_assert_uint_eq(account_pin(sid, csrf, CFX_CRED_EC, PIN, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(account_pin(sid, csrf, ERIN_CRED, PIN, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(account_pin(sid, csrf, "no-such-cred", PIN, &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    ck_assert_uint_eq(about, SAM_T_CRED);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_ENROLL, STOR_RES_DENIED, NULL), denied + 6);
    ck_assert_int_eq(pin_unset(ERIN_CRED, "erin"), 1);
    ck_assert_int_eq(pin_unset("alice-new", CFX_USER), 1);
    /* her own waiting credential: set, once */
    ck_assert_uint_eq(account_pin(sid, csrf, "alice-new", PIN, &about), PIN_SET);
    ck_assert_int_eq(pin_unset("alice-new", CFX_USER), 0);
    ck_assert_uint_eq(account_pin(sid, csrf, "alice-new", "86420864", &about), REFUSED(SAM_REFUSE_NOT_FOUND));
    sam_up();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sam-enroll");
    TCase *tc = tcase_create("enroll");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_wrong_code_burns_after_the_tries);
    tcase_add_test(tc, t_expired_code);
    tcase_add_test(tc, t_enroll_then_replays_refused);
    tcase_add_test(tc, t_forged_and_expired_ticket);
    tcase_add_test(tc, t_ticket_of_another_user);
    tcase_add_test(tc, t_new_code_voids_the_ticket);
    tcase_add_test(tc, t_rules_enforced_by_the_sam);
    tcase_add_test(tc, t_account_pin);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
