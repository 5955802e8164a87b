/*
 * sam_op_enroll.c - enrollment (sam_core.h): ENROLL_ISSUE on the operators' socket (csc-admin user add, user recover)
 * and ENROLL_BEGIN, ENROLL_FINISH on the front end's (/enroll, csc-api/web/web_enroll.c). Every user factor is made or
 * checked here: the one-time code (only its hash stored: storage's enrollments), the TOTP secret (made here, shown only
 * on /enroll, kept with the ticket of step 2 until the first code proves it), the password and PIN rules and their
 * verifiers. The front end passes what the person typed and never decides. Audited as STOR_EV_ENROLL, never a code
 * or secret.
 *
 * Codes: 16 characters of CODE_ALPHABET (80 bits), shown XXXX-XXXX-XXXX-XXXX; typed ones are normalized (upper case,
 * dashes and spaces dropped) before hashing, and compared with CRYPTO_memcmp. A wrong code for a user with a code
 * counts; the last try burns it (deleted, audited). A name without a code, a wrong code, an expired or burnt one get
 * the same refusal after the same work (one storage write with its audit record).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "sam_core.h"

#define CODE_ALPHABET "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
#define CODE_CHARS 16
_Static_assert(SAM_ENROLL_CODE_TEXT == CODE_CHARS + 4, "XXXX-XXXX-XXXX-XXXX and its NUL");
#define TICKET_TTL 900 /* seconds of /enroll's step 2 */
#define ENROLL_CLIENT "enroll-page"

static unsigned code_ttl(const sam_server_config_t *cfg)
{
    return cfg->enroll_code_ttl != 0 ? cfg->enroll_code_ttl : 86400;
}

static unsigned code_tries(const sam_server_config_t *cfg)
{
    return cfg->enroll_code_tries != 0 ? cfg->enroll_code_tries : 5;
}

/* ---- the TOTP secret at rest: the one place that seals and opens a ticket's (sam_factor.c, the factor key) ---- */

static int totp_seal(const sam_server_config_t *cfg, const char *user, const uint8_t *secret, size_t len,
                     stor_enroll_ticket_t *k)
{
    OPENSSL_cleanse(k->totp_secret, sizeof(k->totp_secret));
    k->totp_secret_len = 0;
    return sam_totp_seal(cfg->hsm, user, secret, len, k->totp_sealed, &k->totp_sealed_len);
}

static int totp_open(const sam_server_config_t *cfg, const stor_enroll_ticket_t *k, uint8_t out[STOR_TOTP_MAX],
                     size_t *len)
{
    if (k->totp_sealed_len != 0)
        return sam_totp_open(cfg->hsm, k->user, k->totp_sealed, k->totp_sealed_len, out, len);
    if (k->totp_secret_len == 0 || k->totp_secret_len > STOR_TOTP_MAX) /* a clear one: an older csc-sam's ticket */
        return -1;
    memcpy(out, k->totp_secret, k->totp_secret_len);
    *len = k->totp_secret_len;
    return 0;
}

/* ---- codes and tickets ---- */

/* A new code (sam_core.h): text "XXXX-XXXX-XXXX-XXXX" and the SHA-256 of its normalized form. 0 or -1 (no randomness). */
int sam_enroll_code_new(char text[SAM_ENROLL_CODE_TEXT], uint8_t hash[32])
{
    uint8_t r[10];
    char norm[CODE_CHARS + 1];
    if (RAND_priv_bytes(r, sizeof(r)) != 1)
        return -1;
    for (int i = 0; i < CODE_CHARS; i++) { /* 5 bits each, 80 bits in all */
        int bit = i * 5;
        unsigned v = ((unsigned)r[bit / 8] << 8 | (bit / 8 + 1 < 10 ? r[bit / 8 + 1] : 0)) >> (11 - bit % 8) & 31u;
        norm[i] = CODE_ALPHABET[v];
    }
    norm[CODE_CHARS] = '\0';
    for (int g = 0, o = 0; g < 4; g++) {
        memcpy(text + o, norm + 4 * g, 4);
        o += 4;
        text[o++] = g < 3 ? '-' : '\0';
    }
    SHA256((const uint8_t *)norm, CODE_CHARS, hash);
    OPENSSL_cleanse(r, sizeof(r));
    OPENSSL_cleanse(norm, sizeof(norm));
    return 0;
}

/* The SHA-256 of a typed code, normalized; anything that is not 16 characters of the alphabet hashes "" (so it is
 * wrong after the same work). */
void sam_enroll_code_hash(const char *typed, uint8_t hash[32])
{
    char norm[CODE_CHARS + 1];
    size_t n = 0;
    int ok = 1;
    for (const char *p = typed; *p != '\0'; p++) {
        if (*p == '-' || *p == ' ')
            continue;
        char c = (char)toupper((unsigned char)*p);
        if (n >= CODE_CHARS || strchr(CODE_ALPHABET, c) == NULL || c == '\0') {
            ok = 0;
            break;
        }
        norm[n++] = c;
    }
    if (!ok || n != CODE_CHARS)
        n = 0;
    SHA256((const uint8_t *)norm, n, hash);
    OPENSSL_cleanse(norm, sizeof(norm));
}

/* The CSRF token of step 2's form: base64url(SHA-256("csc-enroll-csrf" NUL ticket)). */
static void ticket_csrf(const char *ticket, char out[OAUTH_TOKEN_BUFLEN])
{
    uint8_t h[32], in[16 + SAM_TOKEN_MAX];
    size_t n = strnlen(ticket, SAM_TOKEN_MAX);
    memcpy(in, "csc-enroll-csrf", 16); /* with its NUL */
    memcpy(in + 16, ticket, n);
    SHA256(in, 16 + n, h);
    oauth_b64_encode(h, sizeof(h), out, OAUTH_B64_URL);
    OPENSSL_cleanse(h, sizeof(h));
    OPENSSL_cleanse(in, sizeof(in));
}

static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void audit_init(stor_audit_t *a, uint32_t result, const char *user, const char *cred, const char *client)
{
    memset(a, 0, sizeof(*a));
    a->event = STOR_EV_ENROLL;
    a->result = result;
    snprintf(a->user, sizeof(a->user), "%s", user != NULL ? user : "");
    snprintf(a->cred, sizeof(a->cred), "%s", cred != NULL ? cred : "");
    snprintf(a->client, sizeof(a->client), "%s", client != NULL ? client : "");
}

/* ---- the credentials that wait for a user's PIN ---- */

typedef struct waiting {
    stor_txn_t *t;
    const char *user;
    size_t n;
    char ids[SAM_ENROLL_CREDS_MAX][STOR_NAME_MAX + 1];
    stor_cred_t *c; /* scratch */
} waiting_t;

static int waiting_own(const stor_cred_t *c, void *arg)
{
    waiting_t *w = arg;
    if (c->status != STOR_CRED_DESTROYED && stor_cred_pin_unset(c, w->user) && w->n < SAM_ENROLL_CREDS_MAX)
        snprintf(w->ids[w->n++], sizeof(w->ids[0]), "%s", c->id);
    return 0;
}

static int waiting_delegated(const char *id, void *arg)
{
    waiting_t *w = arg;
    int rc = stor_txn_cred_get(w->t, id, w->c);
    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    return waiting_own(w->c, w);
}

/* Every credential (own or delegated, not destroyed) whose expression names PIN and whose PIN user has not set. */
static int waiting_list(stor_txn_t *t, const char *user, waiting_t *w)
{
    int rc;
    memset(w, 0, sizeof(*w));
    w->t = t;
    w->user = user;
    if ((w->c = malloc(sizeof(*w->c))) == NULL)
        return STOR_ERR_NOMEM;
    rc = stor_txn_cred_each(t, user, waiting_own, w);
    if (rc == 0)
        rc = stor_txn_delegation_each(t, user, waiting_delegated, w);
    stor_wipe(w->c, sizeof(*w->c));
    free(w->c);
    w->c = NULL;
    return rc;
}

static int waiting_has(const waiting_t *w, const char *id)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->ids[i], id) == 0)
            return 1;
    return 0;
}

int sam_cred_set_pin(stor_cred_t *c, const char *user, const uint8_t *ver, uint32_t vlen)
{
    if (vlen == 0 || vlen > STOR_VERIFIER_MAX)
        return -1;
    if (strcmp(c->owner, user) == 0) {
        memcpy(c->pin_verifier, ver, vlen);
        c->pin_verifier_len = vlen;
    } else {
        int i = stor_cred_delegate(c, user);
        if (i < 0)
            return -1;
        for (uint32_t k = 0; k < vlen; k++)
            snprintf(c->delegate_pins[i] + 2 * k, 3, "%02x", ver[k]);
    }
    c->failed_auths = 0;
    return stor_cred_pin_mark(c, user, 0);
}

const char *sam_pin_refusal(const sam_server_config_t *cfg, const char *pin)
{
    static __thread char why[96];
    unsigned min = cfg->pin_min_length >= 4 ? cfg->pin_min_length : 6;
    size_t n = strlen(pin);
    int digits = strspn(pin, "0123456789") == n;
    if (n < min || n > 32 || !digits) {
        snprintf(why, sizeof(why), "a PIN has %u to 32 digits", min);
        return why;
    }
    return NULL;
}

/* The password rules: password_min_length..128 bytes, password_classes of the four classes, not the name in it. */
const char *sam_password_refusal(const sam_server_config_t *cfg, const char *user, const char *pw)
{
    static __thread char why[160];
    unsigned min = cfg->password_min_length != 0 ? cfg->password_min_length : 12;
    unsigned need = cfg->password_classes != 0 ? cfg->password_classes : 2;
    size_t n = strlen(pw);
    int lower = 0, upper = 0, digit = 0, other = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)pw[i];
        lower |= islower(c) != 0;
        upper |= isupper(c) != 0;
        digit |= isdigit(c) != 0;
        other |= !isalnum(c);
    }
    if (n < min || n > SAM_PASSWORD_MAX)
        snprintf(why, sizeof(why), "The password must have %u to %d characters.", min, SAM_PASSWORD_MAX);
    else if ((unsigned)(lower + upper + digit + other) < need)
        snprintf(why, sizeof(why),
                 "The password must mix at least %u kinds of characters (lower case, upper case, digits, others).",
                 need);
    else if (strcasestr(pw, user) != NULL)
        snprintf(why, sizeof(why), "The password must not contain the user name.");
    else
        return NULL;
    return why;
}

/* ==== ENROLL_ISSUE ============================================================================================== */

typedef struct issue {
    const sam_server_config_t *cfg;
    const char *who, *user, *contact, *evidence, *applicant, *mandate, *channel;
    uint32_t kind;
    char creds[SAM_ENROLL_CREDS_MAX][SAM_DESCRIPTION_MAX + 1];
    unsigned n_creds;
    stor_enroll_t e;
    char sent_to[STOR_CONTACT_MAX + 1]; /* out: the user's contact */
    const char *why;                    /* out: a refusal's reason */
    uint32_t refusal;
    stor_user_t u;
    stor_cred_t c;
    stor_audit_t a;
} issue_t;

static int issue_refuse(issue_t *s, uint32_t code, const char *why)
{
    s->refusal = code;
    s->why = why;
    return 1; /* rolls back */
}

static int issue_fn(stor_txn_t *t, void *arg)
{
    issue_t *s = arg;
    char exp[32];
    int rc = stor_txn_user_get(t, s->user, &s->u);
    if (rc != 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    if (s->kind == SAM_ENROLL_NEW) {
        if (rc == 0)
            return issue_refuse(s, SAM_REFUSE_EXISTS, "the user exists");
        memset(&s->u, 0, sizeof(s->u));
        snprintf(s->u.name, sizeof(s->u.name), "%s", s->user);
        s->u.status = STOR_USER_ENROLLING;
        s->u.created_at = s->e.created_at;
        snprintf(s->u.evidence, sizeof(s->u.evidence), "%s", s->evidence != NULL ? s->evidence : "");
        snprintf(s->u.applicant, sizeof(s->u.applicant), "%s", s->applicant != NULL ? s->applicant : "");
        snprintf(s->u.mandate, sizeof(s->u.mandate), "%s", s->mandate != NULL ? s->mandate : "");
        snprintf(s->u.contact, sizeof(s->u.contact), "%s", s->contact != NULL ? s->contact : "");
        if ((rc = stor_txn_user_put(t, &s->u, 1)) != 0)
            return rc == STOR_ERR_INVAL ? issue_refuse(s, SAM_REFUSE_BAD_MESSAGE, "invalid user name") : rc;
        audit_init(&s->a, STOR_RES_OK, s->user, NULL, "csc-admin");
        snprintf(s->a.detail, sizeof(s->a.detail), "operator=%s action=user.add state=enrolling evidence=%.60s "
                 "applicant=%.40s mandate=%.40s", s->who, s->u.evidence[0] ? s->u.evidence : "-",
                 s->u.applicant[0] ? s->u.applicant : "-", s->u.mandate[0] ? s->u.mandate : "-");
        if ((rc = stor_txn_audit_append(t, &s->a)) != 0)
            return rc;
    } else {
        if (rc == STOR_ERR_NOTFOUND)
            return issue_refuse(s, SAM_REFUSE_NOT_FOUND, "no such user");
        if (s->u.status == STOR_USER_TERMINATED || s->u.status == STOR_USER_SUSPENDED)
            return issue_refuse(s, SAM_REFUSE_DISABLED, "the user is suspended or terminated (resume first)");
        if (s->contact != NULL)
            snprintf(s->u.contact, sizeof(s->u.contact), "%s", s->contact);
        /* The factors go: whoever holds them (or a stolen session) is shut out at once. */
        s->u.status = STOR_USER_ENROLLING;
        OPENSSL_cleanse(s->u.pw_verifier, sizeof(s->u.pw_verifier));
        s->u.pw_verifier_len = 0;
        OPENSSL_cleanse(s->u.totp_secret, sizeof(s->u.totp_secret));
        s->u.totp_secret_len = 0;
        OPENSSL_cleanse(s->u.totp_sealed, sizeof(s->u.totp_sealed));
        s->u.totp_sealed_len = 0;
        s->u.totp_last_step = 0;
        s->u.failed_logins = 0;
        s->u.locked_until = 0;
        s->u.locks = 0;
        audit_init(&s->a, STOR_RES_OK, s->user, NULL, "csc-admin");
        snprintf(s->a.detail, sizeof(s->a.detail), "operator=%s action=user.recover pins=%u", s->who, s->n_creds);
        stor_revoked_t r;
        s->u.epoch++; /* sessions, approvals and codes kept for the older epoch are refused */
        if ((rc = stor_txn_user_revoke_all(t, s->user, s->e.created_at, &r)) != 0)
            return rc;
        size_t dl = strlen(s->a.detail);
        snprintf(s->a.detail + dl, sizeof(s->a.detail) - dl, " revoked: tokens=%u sads=%u pending=%u", r.tokens,
                 r.sads, r.pending);
        if ((rc = stor_txn_user_put(t, &s->u, 0)) != 0 ||
            (rc = stor_txn_audit_append(t, &s->a)) != 0)
            return rc;
        for (unsigned i = 0; i < s->n_creds; i++) {
            if ((rc = stor_txn_cred_get(t, s->creds[i], &s->c)) == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL ||
                (rc == 0 && (strstr(s->c.auth_expr, "PIN") == NULL || stor_cred_pin_mark(&s->c, s->user, 1) != 0)))
                return issue_refuse(s, SAM_REFUSE_NOT_FOUND, "a --pin credential is not the user's or has no PIN");
            if (rc != 0)
                return rc;
            if (strcmp(s->c.owner, s->user) == 0) {
                OPENSSL_cleanse(s->c.pin_verifier, sizeof(s->c.pin_verifier));
                s->c.pin_verifier_len = 0;
            } else {
                OPENSSL_cleanse(s->c.delegate_pins[stor_cred_delegate(&s->c, s->user)], sizeof(s->c.delegate_pins[0]));
            }
            audit_init(&s->a, STOR_RES_OK, s->user, s->c.id, "csc-admin");
            snprintf(s->a.detail, sizeof(s->a.detail), "operator=%s action=pin.unset", s->who);
            if ((rc = stor_txn_cred_put(t, &s->c, 0)) != 0 || (rc = stor_txn_audit_append(t, &s->a)) != 0)
                return rc;
        }
    }
    if (s->contact == NULL && s->channel[0] != 'l' && s->u.contact[0] == '\0')
        return issue_refuse(s, SAM_REFUSE_BAD_MESSAGE, "the user has no contact to send the code to (--contact)");
    snprintf(s->sent_to, sizeof(s->sent_to), "%s", s->u.contact);
    if ((rc = stor_txn_enroll_put(t, &s->e)) != 0)
        return rc;
    iso_time(s->e.expires_at, exp);
    audit_init(&s->a, STOR_RES_OK, s->user, NULL, "csc-admin");
    snprintf(s->a.detail, sizeof(s->a.detail), "operator=%s action=enroll.issue kind=%s channel=%s expires=%s",
             s->who, s->kind == SAM_ENROLL_NEW ? "new" : "recover", s->channel, exp);
    return stor_txn_audit_append(t, &s->a);
}

static int drop_code_fn(stor_txn_t *t, void *arg)
{
    issue_t *s = arg;
    int rc = stor_txn_enroll_del(t, s->user);
    if (rc != 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    return stor_txn_audit_append(t, &s->a);
}

/* Send the code through otp_sender: exec: (the helper: user, channel ENROLL, code, contact, expiry) or file:
 * ("NAME - ENROLL CODE"). 0, or -1 with why. */
int sam_enroll_send_code(const sam_server_config_t *cfg, const char *user, const char *contact, const char *code,
                         int64_t expires, char *why, size_t whysz)
{
    const char *path, *reason = "sink not writable";
    char line[STOR_NAME_MAX + CODE_CHARS + 32], exp[32];
    int kind = sam_sender_kind(cfg, &path), rc = -1;
    iso_time(expires, exp);
    if (kind == 1)
        return sam_sender_deliver_enroll(cfg->sender, cfg->otp_sender_timeout, user, contact, code, exp, why, whysz);
    int n = snprintf(line, sizeof(line), "%s - ENROLL %s\n", user, code);
    if (kind == 2 && n > 0 && (size_t)n < sizeof(line))
        rc = sam_sink_append(path, line, (size_t)n, &reason);
    OPENSSL_cleanse(line, sizeof(line));
    if (rc != 0)
        snprintf(why, whysz, "%s", reason);
    return rc;
}

int sam_op_enroll_issue(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char user[SAM_DESCRIPTION_MAX + 1], contact[SAM_DESCRIPTION_MAX + 1], ev[SAM_DESCRIPTION_MAX + 1];
    char applicant[SAM_DESCRIPTION_MAX + 1], mandate[SAM_DESCRIPTION_MAX + 1], code[CODE_CHARS + 4] = "";
    char why[128] = "";
    const char *path;
    uint32_t kind = 0, letter = 0;
    op_ctx_t x;
    int rc;

    sam_text(req, SAM_T_USER, user, sizeof(user));
    (void)sam_get_u32(req, SAM_T_KIND, &kind);
    (void)sam_get_u32(req, SAM_T_LETTER, &letter);
    if (sam_op_begin(cfg, req, b, "user", kind == SAM_ENROLL_NEW ? "add" : "recover", STOR_ROLE_USER_ADMIN, NULL,
                     user, &x, &rc) != 0)
        return rc;
    issue_t *s = OPENSSL_zalloc(sizeof(*s));
    if (s == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    sam_text(req, SAM_T_CONTACT, contact, sizeof(contact));
    sam_text(req, SAM_T_EVIDENCE, ev, sizeof(ev));
    sam_text(req, SAM_T_APPLICANT, applicant, sizeof(applicant));
    sam_text(req, SAM_T_MANDATE, mandate, sizeof(mandate));
    int sender = sam_sender_kind(cfg, &path) != 0;
    s->cfg = cfg;
    s->who = x.who;
    s->user = user;
    s->kind = kind;
    s->contact = sam_msg_count(req, SAM_T_CONTACT) ? contact : NULL;
    s->evidence = sam_msg_count(req, SAM_T_EVIDENCE) ? ev : NULL;
    s->applicant = sam_msg_count(req, SAM_T_APPLICANT) ? applicant : NULL;
    s->mandate = sam_msg_count(req, SAM_T_MANDATE) ? mandate : NULL;
    s->channel = letter ? "letter" : "sender";
    sam_iter_t it;
    const uint8_t *v;
    size_t vl;
    sam_iter_init(req, SAM_T_CRED, &it);
    while (s->n_creds < SAM_ENROLL_CREDS_MAX && sam_iter_next(&it, &v, &vl)) {
        memcpy(s->creds[s->n_creds], v, vl);
        s->creds[s->n_creds++][vl] = '\0';
    }
    const char *bad = NULL;
    if (letter && sender)
        bad = "otp_sender is configured: the code is sent to the user, never shown (no --letter)";
    else if (!letter && !sender)
        bad = "no otp_sender is configured: --letter prints the code once for a sealed letter";
    else if (s->contact != NULL && (strlen(contact) > STOR_CONTACT_MAX || adm_evidence_check(contact) != 0))
        bad = "the contact must be 1..128 printable characters";
    else if ((s->evidence != NULL && adm_evidence_check(ev) != 0) ||
             (s->applicant != NULL && adm_evidence_check(applicant) != 0) ||
             (s->mandate != NULL && adm_evidence_check(mandate) != 0))
        bad = "a reference (evidence, applicant, mandate) must be 1..255 printable characters";
    else if (kind == SAM_ENROLL_NEW && cfg->production && s->evidence == NULL)
        bad = "--evidence REF (the identity-verification evidence) is required in production";
    else if (strlen(user) == 0 || strlen(user) > STOR_NAME_MAX || (kind == SAM_ENROLL_NEW && strcmp(user, STOR_TSA_OWNER) == 0))
        bad = "invalid user name";
    else if (kind == SAM_ENROLL_NEW && s->n_creds > 0)
        bad = "a new user has no credential yet";
    if (bad != NULL) {
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, user, NULL, "csc-admin", SAM_REFUSE_BAD_MESSAGE, bad,
                                     0);
        goto out;
    }
    int64_t now = (int64_t)time(NULL);
    snprintf(s->e.user, sizeof(s->e.user), "%.*s", STOR_NAME_MAX, user);
    s->e.kind = kind == SAM_ENROLL_NEW ? STOR_ENROLL_NEW : STOR_ENROLL_RECOVER;
    s->e.created_at = now;
    s->e.expires_at = now + (int64_t)code_ttl(cfg);
    s->e.tries_left = code_tries(cfg);
    snprintf(s->e.issued_by, sizeof(s->e.issued_by), "%s", x.who);
    if (sam_enroll_code_new(code, s->e.code_hash) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "no randomness", 0);
        goto out;
    }
    int src = stor_write(cfg->stor, issue_fn, s);
    if (src == 1) {
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, user, NULL, "csc-admin", s->refusal, s->why, 0);
        goto out;
    }
    if (src != 0) {
        rc = sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0);
        goto out;
    }
    if (!letter && sam_enroll_send_code(cfg, user, s->sent_to, code, s->e.expires_at, why, sizeof(why)) != 0) {
        /* Not delivered: the code goes (the user, if new, stays enrolling: user recover issues another). */
        audit_init(&s->a, STOR_RES_ERROR, user, NULL, "csc-admin");
        snprintf(s->a.detail, sizeof(s->a.detail), "operator=%.100s action=enroll.undelivered why=%.60s", x.who, why);
        if (stor_write(cfg->stor, drop_code_fn, s) != 0)
            fprintf(stderr, "csc-sam: cannot drop the undelivered enrollment code of %s\n", user);
        char reason[SAM_REASON_MAX + 1];
        snprintf(reason, sizeof(reason), "the enrollment code could not be delivered (%.64s): user recover %.64s issues "
                 "another", why, user);
        rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, reason, SAM_T_CONTACT);
        goto out;
    }
    rc = sam_build_init(b, SAM_OP_ENROLL_ISSUE | SAM_OP_REPLY, req->id);
    sam_put_u64(b, SAM_T_TIME_MS, (uint64_t)s->e.expires_at * 1000u);
    if (!letter && s->sent_to[0] != '\0')
        sam_put_str(b, SAM_T_CONTACT, s->sent_to);
    if (letter)
        sam_put_str(b, SAM_T_ENROLL_CODE, code);
    rc = rc != SAM_OK ? rc : b->err;
out:
    OPENSSL_cleanse(code, sizeof(code));
    OPENSSL_clear_free(s, sizeof(*s));
    return rc;
}

/* ==== ENROLL_BEGIN ============================================================================================== */

typedef struct begin {
    const char *user;
    const char *addr;
    uint8_t code_hash[32];
    uint8_t ticket_hash[32];
    stor_enroll_ticket_t k;      /* the new ticket (code), or the one read (ticket) */
    uint32_t refusal;            /* 0: accepted */
    const char *why;
    stor_enroll_t e;
    stor_user_t u;
    stor_audit_t a;
    waiting_t w;
} begin_t;

static int begin_fn(stor_txn_t *t, void *arg)
{
    begin_t *g = arg;
    int64_t now = (int64_t)time(NULL);
    int rc = stor_txn_enroll_get(t, g->user, &g->e), urc;
    if (rc == STOR_ERR_INVAL) /* a name no user can have: as a name without a code */
        rc = STOR_ERR_NOTFOUND;
    if (rc != 0 && rc != STOR_ERR_NOTFOUND)
        return rc;
    if ((urc = stor_txn_user_get(t, g->user, &g->u)) != 0 && urc != STOR_ERR_NOTFOUND && urc != STOR_ERR_INVAL)
        return urc;
    audit_init(&g->a, STOR_RES_DENIED, g->user, NULL, g->addr);
    g->refusal = SAM_REFUSE_UNAUTHORIZED;
    if (rc == STOR_ERR_NOTFOUND || urc != 0 || g->u.status != STOR_USER_ENROLLING) {
        snprintf(g->a.detail, sizeof(g->a.detail), "action=enroll.refused why=no code");
        return stor_txn_audit_append(t, &g->a); /* the same write as a wrong code: one timing class */
    }
    if (g->e.expires_at <= now) {
        snprintf(g->a.detail, sizeof(g->a.detail), "action=enroll.refused why=expired");
        g->refusal = SAM_REFUSE_EXPIRED;
        if ((rc = stor_txn_enroll_del(t, g->user)) != 0)
            return rc;
        return stor_txn_audit_append(t, &g->a);
    }
    if (CRYPTO_memcmp(g->code_hash, g->e.code_hash, 32) != 0) {
        if (g->e.tries_left > 0)
            g->e.tries_left--;
        if (g->e.tries_left == 0) {
            snprintf(g->a.detail, sizeof(g->a.detail), "action=enroll.burnt why=wrong code");
            rc = stor_txn_enroll_del(t, g->user);
            static const uint8_t zero[32];
            if (rc == 0 && CRYPTO_memcmp(g->e.ticket_hash, zero, 32) != 0 &&
                (rc = stor_txn_enroll_ticket_del(t, g->e.ticket_hash)) == STOR_ERR_NOTFOUND)
                rc = 0;
        } else {
            snprintf(g->a.detail, sizeof(g->a.detail), "action=enroll.wrong tries_left=%u", g->e.tries_left);
            rc = stor_txn_enroll_put(t, &g->e);
        }
        return rc != 0 ? rc : stor_txn_audit_append(t, &g->a);
    }
    /* The right code: a new ticket of step 2 (a ticket of an earlier step 1 is dropped). */
    static const uint8_t zero[32];
    if (CRYPTO_memcmp(g->e.ticket_hash, zero, 32) != 0 && (rc = stor_txn_enroll_ticket_del(t, g->e.ticket_hash)) != 0 &&
        rc != STOR_ERR_NOTFOUND)
        return rc;
    memcpy(g->e.ticket_hash, g->ticket_hash, 32);
    memcpy(g->k.hash, g->ticket_hash, 32);
    snprintf(g->k.user, sizeof(g->k.user), "%s", g->user);
    g->k.expires_at = now + TICKET_TTL;
    if ((rc = stor_txn_enroll_put(t, &g->e)) != 0 || (rc = stor_txn_enroll_ticket_put(t, &g->k)) != 0 ||
        (rc = waiting_list(t, g->user, &g->w)) != 0)
        return rc;
    g->refusal = 0;
    g->a.result = STOR_RES_OK;
    snprintf(g->a.detail, sizeof(g->a.detail), "action=enroll.begin pins_waiting=%zu", g->w.n);
    return stor_txn_audit_append(t, &g->a);
}

/* The ticket of a step 2 begun: its user's enrollment (still this ticket's, not expired) and waiting credentials. */
static int ticket_fn(stor_txn_t *t, void *arg)
{
    begin_t *g = arg;
    int64_t now = (int64_t)time(NULL);
    int rc = stor_txn_enroll_ticket_get(t, g->ticket_hash, &g->k);
    g->refusal = SAM_REFUSE_NOT_FOUND;
    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if ((rc = stor_txn_enroll_get(t, g->k.user, &g->e)) == STOR_ERR_NOTFOUND)
        return 0;
    if (rc != 0 || (rc = stor_txn_user_get(t, g->k.user, &g->u)) != 0)
        return rc == STOR_ERR_NOTFOUND ? 0 : rc;
    if (CRYPTO_memcmp(g->e.ticket_hash, g->ticket_hash, 32) != 0 || g->u.status != STOR_USER_ENROLLING)
        return 0;
    if (g->k.expires_at <= now || g->e.expires_at <= now) {
        g->refusal = SAM_REFUSE_EXPIRED;
        return 0;
    }
    g->refusal = 0;
    return waiting_list(t, g->k.user, &g->w);
}

/* The reply of ENROLL_BEGIN: what step 2 shows. */
static int begin_reply(const sam_server_config_t *cfg, sam_builder_t *b, const sam_msg_t *req, begin_t *g,
                       const char *new_ticket, const char *ticket)
{
    uint8_t secret[STOR_TOTP_MAX];
    size_t len = 0;
    char csrf[OAUTH_TOKEN_BUFLEN];
    int64_t now = (int64_t)time(NULL);
    if (totp_open(cfg, &g->k, secret, &len) != 0)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "unreadable ticket", 0);
    ticket_csrf(ticket, csrf);
    int rc = sam_build_init(b, SAM_OP_ENROLL_BEGIN | SAM_OP_REPLY, req->id);
    for (size_t i = 0; i < g->w.n; i++)
        sam_put_str(b, SAM_T_CRED, g->w.ids[i]);
    sam_put_str(b, SAM_T_USER, g->k.user);
    sam_put_u32(b, SAM_T_EXPIRES_IN, g->k.expires_at > now ? (uint32_t)(g->k.expires_at - now) : 0);
    sam_put_str(b, SAM_T_CSRF, csrf);
    if (new_ticket != NULL)
        sam_put_str(b, SAM_T_ENROLL_TICKET, new_ticket);
    sam_put_bytes(b, SAM_T_TOTP_SECRET, secret, len);
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(csrf, sizeof(csrf));
    return rc != SAM_OK ? rc : b->err;
}

static void ticket_hash(const char *ticket, uint8_t out[32])
{
    SHA256((const uint8_t *)ticket, strlen(ticket), out);
}

int sam_op_enroll_begin(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char user[SAM_NAME_MAX + 1], addr[SAM_ADDR_MAX + 1], code[SAM_ENROLL_CODE_MAX + 1];
    char ticket[SAM_TOKEN_MAX + 1] = "";
    uint8_t raw[32], secret[OAUTH_TOTP_SECRET_LEN];
    int rc;

    begin_t *g = OPENSSL_zalloc(sizeof(*g));
    if (g == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    sam_text(req, SAM_T_USER, user, sizeof(user));
    sam_text(req, SAM_T_ADDR, addr, sizeof(addr));
    sam_text(req, SAM_T_ENROLL_CODE, code, sizeof(code));
    g->user = user;
    g->addr = addr[0] ? addr : ENROLL_CLIENT;
    if (sam_msg_count(req, SAM_T_ENROLL_TICKET) > 0) { /* step 2 shown again */
        sam_text(req, SAM_T_ENROLL_TICKET, ticket, sizeof(ticket));
        ticket_hash(ticket, g->ticket_hash);
        int src = stor_read(cfg->stor, ticket_fn, g);
        if (src != 0)
            rc = sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0);
        else if (g->refusal != 0)
            rc = sam_refuse(b, req, g->refusal, "no such enrollment ticket", SAM_T_ENROLL_TICKET);
        else
            rc = begin_reply(cfg, b, req, g, NULL, ticket);
        goto out;
    }
    if (user[0] == '\0') {
        rc = sam_refuse(b, req, SAM_REFUSE_BAD_MESSAGE, "USER is required with a code", SAM_T_USER);
        goto out;
    }
    /* What a right code gets, made before the write (so every request does the same work). */
    if (RAND_priv_bytes(raw, sizeof(raw)) != 1 || oauth_totp_new_secret(secret) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "no randomness", 0);
        goto out;
    }
    if (totp_seal(cfg, user, secret, sizeof(secret), &g->k) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "the TOTP secret cannot be sealed (factor key)", 0);
        goto out;
    }
    oauth_b64_encode(raw, sizeof(raw), ticket, OAUTH_B64_URL);
    ticket_hash(ticket, g->ticket_hash);
    sam_enroll_code_hash(code, g->code_hash);
    int src = stor_write(cfg->stor, begin_fn, g);
    if (src != 0)
        rc = sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0);
    else if (g->refusal != 0) /* one reason for every case: the page must not tell them apart */
        rc = sam_refuse(b, req, g->refusal, "the name or the code is wrong or has expired", SAM_T_ENROLL_CODE);
    else
        rc = begin_reply(cfg, b, req, g, ticket, ticket);
out:
    OPENSSL_cleanse(code, sizeof(code));
    OPENSSL_cleanse(ticket, sizeof(ticket));
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_clear_free(g, sizeof(*g));
    return rc;
}

/* ==== ENROLL_FINISH ============================================================================================= */

typedef struct finish {
    const sam_server_config_t *cfg;
    const char *addr;
    uint8_t ticket_hash[32];
    /* read, then checked again in the write */
    stor_enroll_ticket_t k;
    stor_enroll_t e;
    stor_user_t u;
    waiting_t w;
    stor_cred_t c;
    stor_audit_t a;
    /* the PINs given: credential i gets verifier i */
    unsigned n;
    char ids[SAM_ENROLL_CREDS_MAX][SAM_NAME_MAX + 1];
    uint8_t pin_ver[SAM_ENROLL_CREDS_MAX][STOR_VERIFIER_MAX];
    uint32_t pin_len[SAM_ENROLL_CREDS_MAX];
    uint8_t pw_ver[STOR_VERIFIER_MAX];
    uint32_t pw_len;
    int64_t step;                /* the TOTP step of the first code */
    uint8_t sealed[STOR_TOTP_SEALED_MAX]; /* the ticket's secret sealed for the user's record, before the write (a
                                           * ticket never changes: a new one has a new key) */
    uint32_t sealed_len;
    int wrong_otp;               /* the write counts a wrong first code */
    uint32_t refusal;
    const char *why;
} finish_t;

/* The ticket, its enrollment and user as they are now: 0 (refusal 0 when usable), or a storage error. */
static int finish_load(stor_txn_t *t, finish_t *f)
{
    int64_t now = (int64_t)time(NULL);
    int rc = stor_txn_enroll_ticket_get(t, f->ticket_hash, &f->k);
    f->refusal = SAM_REFUSE_NOT_FOUND;
    f->why = "the enrollment has ended or expired: start again with the code";
    if (rc == 0)
        rc = stor_txn_enroll_get(t, f->k.user, &f->e);
    if (rc == 0)
        rc = stor_txn_user_get(t, f->k.user, &f->u);
    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (CRYPTO_memcmp(f->e.ticket_hash, f->ticket_hash, 32) != 0 || f->u.status != STOR_USER_ENROLLING)
        return 0;
    if (f->k.expires_at <= now || f->e.expires_at <= now) {
        f->refusal = SAM_REFUSE_EXPIRED;
        return 0;
    }
    f->refusal = 0;
    return waiting_list(t, f->k.user, &f->w);
}

static int finish_read_fn(stor_txn_t *t, void *arg)
{
    return finish_load(t, arg);
}

static int finish_write_fn(stor_txn_t *t, void *arg)
{
    finish_t *f = arg;
    int rc = finish_load(t, f);
    if (rc != 0 || f->refusal != 0)
        return rc != 0 ? rc : 1;
    if (f->wrong_otp) { /* a wrong first code counts on the code's tries */
        audit_init(&f->a, STOR_RES_DENIED, f->k.user, NULL, f->addr);
        if (f->e.tries_left > 0)
            f->e.tries_left--;
        if (f->e.tries_left == 0) {
            snprintf(f->a.detail, sizeof(f->a.detail), "action=enroll.burnt why=wrong first TOTP code");
            if ((rc = stor_txn_enroll_del(t, f->k.user)) == 0)
                rc = stor_txn_enroll_ticket_del(t, f->ticket_hash);
        } else {
            snprintf(f->a.detail, sizeof(f->a.detail), "action=enroll.wrong-otp tries_left=%u", f->e.tries_left);
            rc = stor_txn_enroll_put(t, &f->e);
        }
        return rc != 0 ? rc : stor_txn_audit_append(t, &f->a);
    }
    for (unsigned i = 0; i < f->n; i++) {
        if (!waiting_has(&f->w, f->ids[i])) {
            f->refusal = SAM_REFUSE_NOT_FOUND;
            f->why = "a credential named is not waiting for this user's PIN";
            return 1;
        }
        if ((rc = stor_txn_cred_get(t, f->ids[i], &f->c)) != 0)
            return rc;
        if (sam_cred_set_pin(&f->c, f->k.user, f->pin_ver[i], f->pin_len[i]) != 0)
            return STOR_ERR_INVAL;
        audit_init(&f->a, STOR_RES_OK, f->k.user, f->c.id, f->addr);
        snprintf(f->a.detail, sizeof(f->a.detail), "action=pin.set by=enroll");
        if (strcmp(f->c.owner, f->k.user) != 0)
            snprintf(f->a.owner, sizeof(f->a.owner), "%s", f->c.owner);
        if ((rc = stor_txn_cred_put(t, &f->c, 0)) != 0 || (rc = stor_txn_audit_append(t, &f->a)) != 0)
            return rc;
    }
    memcpy(f->u.pw_verifier, f->pw_ver, f->pw_len);
    f->u.pw_verifier_len = f->pw_len;
    if (f->sealed_len == 0 || f->sealed_len > sizeof(f->u.totp_sealed))
        return STOR_ERR_CORRUPT;
    OPENSSL_cleanse(f->u.totp_secret, sizeof(f->u.totp_secret)); /* never clear in the record */
    f->u.totp_secret_len = 0;
    memcpy(f->u.totp_sealed, f->sealed, f->sealed_len);
    f->u.totp_sealed_len = f->sealed_len;
    f->u.totp_last_step = f->step; /* the first code is spent */
    f->u.status = STOR_USER_ACTIVE;
    f->u.failed_logins = 0;
    f->u.locked_until = 0;
    f->u.locks = 0;
    audit_init(&f->a, STOR_RES_OK, f->k.user, NULL, f->addr);
    snprintf(f->a.detail, sizeof(f->a.detail), "action=enroll.done kind=%s pins_set=%u pins_waiting=%zu",
             f->e.kind == STOR_ENROLL_RECOVER ? "recover" : "new", f->n, f->w.n - f->n);
    if ((rc = stor_txn_user_put(t, &f->u, 0)) != 0 || (rc = stor_txn_enroll_del(t, f->k.user)) != 0 ||
        (rc = stor_txn_enroll_ticket_del(t, f->ticket_hash)) != 0)
        return rc;
    return stor_txn_audit_append(t, &f->a);
}


/* The PIN verifiers of the credentials the finish names (the loop of sam_op_enroll_finish checked them, in the same
 * order, into f->ids). */
static int pin_verifiers(const sam_server_config_t *cfg, const sam_msg_t *req, finish_t *f)
{
    char pin[SAM_SECRET_MAX + 1];
    sam_iter_t ip;
    const uint8_t *v;
    size_t vl;
    int rc = 0;
    sam_iter_init(req, SAM_T_PIN, &ip);
    for (unsigned i = 0; rc == 0 && i < f->n; i++) {
        if (!sam_iter_next(&ip, &v, &vl))
            return -1;
        memcpy(pin, v, vl);
        pin[vl] = '\0';
        rc = oauth_secret_hash(pin, vl, cfg->scrypt_log2n, f->pin_ver[i], &f->pin_len[i]) != 0 ? -1 : 0;
        OPENSSL_cleanse(pin, sizeof(pin));
    }
    return rc;
}
int sam_op_enroll_finish(const sam_server_config_t *cfg, const sam_msg_t *req, sam_builder_t *b)
{
    char ticket[SAM_TOKEN_MAX + 1], csrf[SAM_TOKEN_MAX + 1], want[OAUTH_TOKEN_BUFLEN], addr[SAM_ADDR_MAX + 1];
    char pw[SAM_SECRET_MAX + 1], otp[SAM_OTP_MAX + 1], pin[SAM_SECRET_MAX + 1];
    uint8_t secret[STOR_TOTP_MAX];
    size_t slen = 0;
    int rc;

    finish_t *f = OPENSSL_zalloc(sizeof(*f));
    if (f == NULL)
        return sam_refuse(b, req, SAM_REFUSE_INTERNAL, "out of memory", 0);
    f->cfg = cfg;
    sam_text(req, SAM_T_ENROLL_TICKET, ticket, sizeof(ticket));
    sam_text(req, SAM_T_CSRF, csrf, sizeof(csrf));
    sam_text(req, SAM_T_ADDR, addr, sizeof(addr));
    sam_text(req, SAM_T_PASSWORD, pw, sizeof(pw));
    sam_text(req, SAM_T_OTP, otp, sizeof(otp));
    f->addr = addr[0] ? addr : ENROLL_CLIENT;
    ticket_hash(ticket, f->ticket_hash);
    ticket_csrf(ticket, want);
    /* The form must come from the step 2 page of this very ticket. */
    if (strlen(csrf) != strlen(want) || CRYPTO_memcmp(csrf, want, strlen(want)) != 0) {
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, NULL, NULL, f->addr, SAM_REFUSE_UNAUTHORIZED,
                                     "the form's CSRF token is not the ticket's", SAM_T_CSRF);
        goto out;
    }
    int src = stor_read(cfg->stor, finish_read_fn, f);
    if (src != 0 || f->refusal != 0) {
        rc = src != 0 ? sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0)
                      : sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, NULL, NULL, f->addr, f->refusal, f->why,
                                                SAM_T_ENROLL_TICKET);
        goto out;
    }
    const char *bad = sam_password_refusal(cfg, f->k.user, pw);
    unsigned about = SAM_T_PASSWORD;
    sam_iter_t ic, ip;
    const uint8_t *v;
    size_t vl;
    if (bad == NULL && sam_msg_count(req, SAM_T_CRED) != sam_msg_count(req, SAM_T_PIN)) {
        bad = "one PIN per credential";
        about = SAM_T_PIN;
    }
    sam_iter_init(req, SAM_T_CRED, &ic);
    sam_iter_init(req, SAM_T_PIN, &ip);
    if (bad == NULL)
        while (bad == NULL && f->n < SAM_ENROLL_CREDS_MAX && sam_iter_next(&ic, &v, &vl)) {
            memcpy(f->ids[f->n], v, vl);
            f->ids[f->n][vl] = '\0';
            if (!sam_iter_next(&ip, &v, &vl))
                break;
            memcpy(pin, v, vl);
            pin[vl] = '\0';
            about = SAM_T_PIN;
            if (!waiting_has(&f->w, f->ids[f->n]))
                bad = "a credential named is not waiting for this user's PIN";
            else
                bad = sam_pin_refusal(cfg, pin);
            for (unsigned j = 0; bad == NULL && j < f->n; j++)
                if (strcmp(f->ids[j], f->ids[f->n]) == 0)
                    bad = "a credential named twice";
            OPENSSL_cleanse(pin, sizeof(pin));
            f->n++;
        }
    if (bad != NULL) {
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, f->k.user, NULL, f->addr, SAM_REFUSE_BAD_MESSAGE,
                                     bad, about);
        goto out;
    }
    /* The first code from the app proves the secret shown reached it (window 1: the step before counts too). */
    if (totp_open(cfg, &f->k, secret, &slen) != 0 ||
        oauth_totp_check(secret, slen, otp, strlen(otp), (int64_t)time(NULL), 1, &f->step) != OAUTH_OK)
        f->wrong_otp = 1;
    if (!f->wrong_otp && sam_totp_seal(cfg->hsm, f->k.user, secret, slen, f->sealed, &f->sealed_len) != 0) {
        rc = sam_refuse(b, req, SAM_REFUSE_UNAVAILABLE, "the TOTP secret cannot be sealed (factor key)", 0);
        goto out;
    }
    /* The verifiers only once the code is right: a wrong code costs no scrypt at all. */
    if (!f->wrong_otp && (oauth_secret_hash(pw, strlen(pw), cfg->scrypt_log2n, f->pw_ver, &f->pw_len) != 0 ||
                          pin_verifiers(cfg, req, f) != 0)) {
        rc = sam_refuse(b, req, SAM_REFUSE_INTERNAL, "cannot derive the password and PIN verifiers", 0);
        goto out;
    }
    src = stor_write(cfg->stor, finish_write_fn, f);
    if (src == 1)
        rc = sam_core_refuse_audited(cfg, req, b, STOR_EV_ENROLL, f->k.user, NULL, f->addr, f->refusal, f->why,
                                     SAM_T_ENROLL_TICKET);
    else if (src != 0)
        rc = sam_refuse(b, req, sam_refusal_of_stor(src), stor_strerror(src), 0);
    else if (f->wrong_otp)
        rc = sam_refuse(b, req, f->e.tries_left > 0 ? SAM_REFUSE_UNAUTHORIZED : SAM_REFUSE_LOCKED,
                        "the one-time code is not correct", SAM_T_OTP);
    else {
        rc = sam_build_init(b, SAM_OP_ENROLL_FINISH | SAM_OP_REPLY, req->id);
        sam_put_str(b, SAM_T_USER, f->k.user);
        rc = rc != SAM_OK ? rc : b->err;
    }
out:
    OPENSSL_cleanse(ticket, sizeof(ticket));
    OPENSSL_cleanse(csrf, sizeof(csrf));
    OPENSSL_cleanse(want, sizeof(want));
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(otp, sizeof(otp));
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_clear_free(f, sizeof(*f));
    return rc;
}
