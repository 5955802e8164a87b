/*
 * csc_audit_sign.c - signed audit heads (JIPDEC J11): the head of the hash-chained audit log (seq, hash, time)
 * signed with an EC P-256 key that lives in the HSM, kept in the append-only audit_heads table.
 *
 * The hash chain alone shows edits inside the log, but not a truncation whose author also rewrote the head in
 * meta. A signed head cannot be made without the HSM: once the head at seq N is signed, a log that ends before N
 * or whose record N has another hash is reported by `csc-admin audit verify`. External verifiers check a head with
 * the exported public key and openssl (docs: README, csc-admin audit heads).
 *
 * Signed text (ASCII, no newline), signature = ECDSA P-256 over its SHA-256, DER:
 *   csc-audit-head v1 seq=<decimal> hash=<64 lower-case hex> time_ms=<decimal>
 *
 * Each signing appends one audit record (event audit-head, detail "signed seq=N hash=HEX") in the same
 * transaction as the head. The periodic signer does not sign when the log's last record is such a record (nothing
 * happened since the previous signing), so an idle server does not grow its log.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "csc_int.h"

static const uint8_t audit_key_id[HSM_KEYID_LEN] = "csc-audit-key-01";
#define AUDIT_KEY_LABEL "csc-audit"
#define HEAD_TEXT_MAX 160

int csc_audit_head_text(const stor_signed_head_t *h, char *out, size_t sz)
{
    char hex[65];
    int n;

    csc_hex(h->hash, 32, hex);
    n = snprintf(out, sz, "csc-audit-head v1 seq=%" PRIu64 " hash=%s time_ms=%" PRId64, h->seq, hex, h->time_ms);
    return n > 0 && (size_t)n < sz ? n : -1;
}

/* ---- the key --------------------------------------------------------------------- */

static int append_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_audit_append(t, arg);
}

int csc_audit_key_init(stor_env_t *stor, hsm_t *hsm, const char *operator_name, int *created)
{
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .bits = 256, .curve_nid = NID_X9_62_prime256v1};
    uint8_t id[HSM_KEYID_LEN];
    EVP_PKEY *pk = NULL;
    int rc;

    *created = 0;
    if ((rc = hsm_pubkey(hsm, audit_key_id, sizeof(audit_key_id), &pk)) == HSM_OK) {
        EVP_PKEY_free(pk);
        return 0;
    }
    if (rc != HSM_ERR_NOKEY) {
        fprintf(stderr, "csc: cannot look up the audit key in the HSM: %s\n", hsm_strerror(rc));
        return -1;
    }
    memcpy(id, audit_key_id, sizeof(id));
    if ((rc = hsm_keygen_ex(hsm, &spec, AUDIT_KEY_LABEL, HSM_KEYGEN_FIXED_ID, id)) != HSM_OK) {
        fprintf(stderr, "csc: cannot generate the audit key in the HSM: %s\n", hsm_strerror(rc));
        return -1;
    }
    *created = 1;
    stor_audit_t a = {.event = STOR_EV_ADMIN, .result = STOR_RES_OK};
    snprintf(a.client, sizeof(a.client), "csc-admin");
    snprintf(a.detail, sizeof(a.detail), "operator=%s action=audit.key-init (EC P-256 audit head key in the HSM)",
             operator_name ? operator_name : "-");
    if ((rc = stor_write(stor, append_fn, &a)) != 0) {
        fprintf(stderr, "csc: audit key created, but its audit record failed: %s\n", stor_strerror(rc));
        return -1;
    }
    return 0;
}

int csc_audit_key_pub(hsm_t *hsm, EVP_PKEY **out)
{
    return hsm_pubkey(hsm, audit_key_id, sizeof(audit_key_id), out);
}

int csc_audit_key_export(hsm_t *hsm, const char *file)
{
    EVP_PKEY *pk = NULL;
    FILE *f;
    int rc = -1, hrc;

    if ((hrc = csc_audit_key_pub(hsm, &pk)) != HSM_OK) {
        fprintf(stderr, "csc-admin: no audit key in the HSM (%s): run csc-admin audit key-init\n",
                hsm_strerror(hrc));
        return -1;
    }
    if ((f = fopen(file, "wx")) == NULL) {
        fprintf(stderr, "csc-admin: cannot create %s: %s\n", file, strerror(errno));
    } else {
        rc = PEM_write_PUBKEY(f, pk) == 1 ? 0 : -1;
        if (fclose(f) != 0)
            rc = -1;
    }
    EVP_PKEY_free(pk);
    return rc;
}

/* ---- signing ------------------------------------------------------------------------ */

typedef struct tip_read {
    uint64_t seq;
    uint8_t hash[32];
    int64_t time_ms;
    uint32_t last_event;
} tip_read_t;

static int tip_fn(stor_txn_t *t, void *arg)
{
    tip_read_t *r = arg;
    stor_audit_t rec;
    int rc;

    if ((rc = stor_txn_audit_tip(t, &r->seq, r->hash)) != 0 || r->seq == 0)
        return rc;
    if ((rc = stor_txn_audit_get(t, r->seq, &rec)) != 0)
        return rc;
    r->time_ms = rec.time_ms;
    r->last_event = rec.event;
    return 0;
}

typedef struct head_put {
    stor_signed_head_t h;
    stor_audit_t audit;
} head_put_t;

static int head_put_fn(stor_txn_t *t, void *arg)
{
    head_put_t *p = arg;
    int rc = stor_txn_signed_head_put(t, &p->h);

    return rc != 0 ? rc : stor_txn_audit_append(t, &p->audit);
}

int csc_audit_sign_head(stor_env_t *stor, hsm_t *hsm, const char *who, int force, uint64_t *signed_seq)
{
    hsm_sign_params_t sp = {.scheme = HSM_SIG_ECDSA, .md_nid = NID_sha256};
    tip_read_t tip = {0};
    head_put_t *p = calloc(1, sizeof(*p));
    char text[HEAD_TEXT_MAX], hex[65];
    uint8_t dig[32], sig[HSM_SIG_MAX];
    const uint8_t *digs[1] = {dig};
    uint8_t *sigs[1] = {sig};
    size_t slen = 0;
    int rc, n;

    *signed_seq = 0;
    if (p == NULL)
        return CSC_AUDIT_SIGN_ERROR;
    if ((rc = stor_read(stor, tip_fn, &tip)) != 0) {
        fprintf(stderr, "csc: audit head signing: cannot read the head: %s\n", stor_strerror(rc));
        free(p);
        return CSC_AUDIT_SIGN_ERROR;
    }
    if (tip.seq == 0 || (!force && tip.last_event == STOR_EV_AUDIT_HEAD)) {
        free(p);
        return CSC_AUDIT_SIGN_NOTHING;
    }
    p->h.seq = tip.seq;
    memcpy(p->h.hash, tip.hash, 32);
    p->h.time_ms = tip.time_ms;
    if ((n = csc_audit_head_text(&p->h, text, sizeof(text))) < 0 || EVP_Digest(text, (size_t)n, dig, NULL,
                                                                             EVP_sha256(), NULL) != 1) {
        free(p);
        return CSC_AUDIT_SIGN_ERROR;
    }
    if ((rc = hsm_sign(hsm, audit_key_id, sizeof(audit_key_id), &sp, digs, sizeof(dig), 1, sigs, &slen)) !=
            HSM_OK ||
        slen > sizeof(p->h.sig)) {
        fprintf(stderr, "csc: audit head signing in the HSM failed: %s%s\n", hsm_strerror(rc),
                rc == HSM_ERR_NOKEY ? " (run csc-admin audit key-init)" : "");
        free(p);
        return rc == HSM_ERR_NOKEY ? CSC_AUDIT_SIGN_NOKEY : CSC_AUDIT_SIGN_ERROR;
    }
    memcpy(p->h.sig, sig, slen);
    p->h.sig_len = (uint32_t)slen;
    csc_hex(tip.hash, 32, hex);
    p->audit.event = STOR_EV_AUDIT_HEAD;
    p->audit.result = STOR_RES_OK;
    snprintf(p->audit.client, sizeof(p->audit.client), "%s", who ? who : "csc-server");
    snprintf(p->audit.detail, sizeof(p->audit.detail), "signed seq=%" PRIu64 " hash=%s", tip.seq, hex);
    rc = stor_write(stor, head_put_fn, p);
    if (rc == STOR_ERR_EXISTS) {
        free(p);
        return CSC_AUDIT_SIGN_NOTHING; /* someone signed this head meanwhile */
    }
    if (rc != 0) {
        fprintf(stderr, "csc: audit head signing: cannot store the head: %s\n", stor_strerror(rc));
        free(p);
        return CSC_AUDIT_SIGN_ERROR;
    }
    *signed_seq = tip.seq;
    free(p);
    return CSC_AUDIT_SIGN_OK;
}

/* ---- the periodic signer ------------------------------------------------------------ */

struct csc_audit_signer {
    stor_env_t *stor;
    hsm_t *hsm;
    unsigned interval;          /* seconds, 0 = off */
    unsigned every;             /* records, 0 = off */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int warned;
};

static void signer_sign(csc_audit_signer_t *s)
{
    uint64_t seq = 0;
    int rc = csc_audit_sign_head(s->stor, s->hsm, "csc-server", 0, &seq);

    if (rc == CSC_AUDIT_SIGN_NOKEY && !s->warned) {
        fprintf(stderr, "csc-server: audit heads are not signed: no audit key in the HSM (csc-admin audit key-init)\n");
        s->warned = 1;
    }
}

/* Records appended since the last signed head (or since start). */
static uint64_t pending(csc_audit_signer_t *s, uint64_t *base)
{
    tip_read_t tip = {0};

    if (stor_read(s->stor, tip_fn, &tip) != 0)
        return 0;
    if (tip.last_event == STOR_EV_AUDIT_HEAD || tip.seq < *base)
        *base = tip.seq; /* signed just now (by us or by csc-admin) */
    return tip.seq - *base;
}

static void *signer_main(void *arg)
{
    csc_audit_signer_t *s = arg;
    struct timespec last, now, until;
    uint64_t base = 0;

    clock_gettime(CLOCK_MONOTONIC, &last);
    (void)pending(s, &base);
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1; /* look once a second: the record count and the interval */
        pthread_cond_timedwait(&s->cv, &s->mu, &until);
        if (s->stop)
            break;
        pthread_mutex_unlock(&s->mu);
        clock_gettime(CLOCK_MONOTONIC, &now);
        int due = s->interval > 0 && now.tv_sec - last.tv_sec >= (time_t)s->interval;
        if (s->every > 0 && pending(s, &base) >= s->every)
            due = 1;
        if (due) {
            signer_sign(s);
            (void)pending(s, &base);
            last = now;
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int csc_audit_signer_start(stor_env_t *stor, hsm_t *hsm, unsigned interval, unsigned every,
                           csc_audit_signer_t **out)
{
    csc_audit_signer_t *s;
    pthread_condattr_t ca;

    *out = NULL;
    if (interval == 0 && every == 0)
        return 0; /* signing off */
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return -1;
    s->stor = stor;
    s->hsm = hsm;
    s->interval = interval;
    s->every = every;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->thread, NULL, signer_main, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void csc_audit_signer_stop(csc_audit_signer_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    signer_sign(s); /* clean shutdown: the last head is signed */
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- verification ------------------------------------------------------------------- */

typedef struct heads_check {
    FILE *out;
    EVP_PKEY *pub;
    stor_txn_t *t;
    uint64_t tip;
    uint64_t heads;
    uint64_t last_seq;
    unsigned long problems;
    int rc;
} heads_check_t;

static int sig_ok(EVP_PKEY *pub, const stor_signed_head_t *h)
{
    char text[HEAD_TEXT_MAX];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int n = csc_audit_head_text(h, text, sizeof(text)), ok;

    ok = md != NULL && n > 0 && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
         EVP_DigestVerify(md, h->sig, h->sig_len, (const unsigned char *)text, (size_t)n) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static int check_head(const stor_signed_head_t *h, int status, void *arg)
{
    heads_check_t *c = arg;
    stor_audit_t rec;
    char sh[65], lh[65];
    int rc;

    c->heads++;
    if (status != 0) {
        fprintf(c->out, "signed head at seq %" PRIu64 ": unreadable (altered)\n", h->seq);
        c->problems++;
        return 0;
    }
    c->last_seq = h->seq;
    if (c->pub != NULL && !sig_ok(c->pub, h)) {
        fprintf(c->out, "signed head at seq %" PRIu64 ": signature invalid (forged or altered signed head)\n",
                h->seq);
        c->problems++;
    }
    csc_hex(h->hash, 32, sh);
    rc = stor_txn_audit_get(c->t, h->seq, &rec);
    if (rc == STOR_ERR_NOTFOUND) {
        if (h->seq > c->tip)
            fprintf(c->out, "log truncated: signed head at seq %" PRIu64 " but log ends at %" PRIu64 "\n", h->seq,
                    c->tip);
        else
            fprintf(c->out, "signed head at seq %" PRIu64 ": record %" PRIu64 " is missing from the log\n", h->seq,
                    h->seq);
        c->problems++;
    } else if (rc != 0) {
        fprintf(c->out, "signed head at seq %" PRIu64 ": record %" PRIu64 " unreadable\n", h->seq, h->seq);
        c->problems++;
    } else if (CRYPTO_memcmp(rec.hash, h->hash, 32) != 0) {
        csc_hex(rec.hash, 32, lh);
        fprintf(c->out, "signed head at seq %" PRIu64 ": log rewritten (record has hash %s, signed hash %s)\n",
                h->seq, lh, sh);
        c->problems++;
    }
    return 0;
}

static int heads_fn(stor_txn_t *t, void *arg)
{
    heads_check_t *c = arg;
    uint8_t hash[32];
    int rc;

    c->t = t;
    if ((rc = stor_txn_audit_tip(t, &c->tip, hash)) != 0)
        return rc;
    return stor_txn_signed_head_each(t, check_head, c);
}

int csc_audit_verify_heads(stor_env_t *stor, EVP_PKEY *pub, void *out, unsigned long *problems)
{
    heads_check_t c = {.out = out, .pub = pub};
    int rc;

    *problems = 0;
    if ((rc = stor_read(stor, heads_fn, &c)) != 0) {
        fprintf(stderr, "csc-admin: cannot read the signed audit heads: %s\n", stor_strerror(rc));
        return -1;
    }
    if (c.heads > 0 && pub == NULL) {
        fprintf(c.out, "signed heads: no audit public key to check the signatures (audit key missing from the HSM)\n");
        c.problems++;
    }
    *problems = c.problems;
    if (c.problems == 0 && c.heads > 0)
        fprintf(c.out, "signed heads OK: %" PRIu64 " heads, the last at seq %" PRIu64 "\n", c.heads, c.last_seq);
    else if (c.problems == 0)
        fprintf(c.out, "signed heads: none yet\n");
    else
        fprintf(c.out, "signed heads FAILED: %lu problem%s in %" PRIu64 " heads\n", c.problems,
                c.problems == 1 ? "" : "s", c.heads);
    return 0;
}

/* ---- listing (for external verifiers) -------------------------------------------------- */

static int list_head(const stor_signed_head_t *h, int status, void *arg)
{
    FILE *out = arg;
    char text[HEAD_TEXT_MAX], b64[4 * ((STOR_HEAD_SIG_MAX + 2) / 3) + 1];

    if (status != 0) {
        fprintf(out, "{\"seq\":%" PRIu64 ",\"error\":\"unreadable\"}\n", h->seq);
        return 0;
    }
    if (csc_audit_head_text(h, text, sizeof(text)) < 0)
        return 0;
    csc_b64_encode(h->sig, h->sig_len, b64);
    fprintf(out, "{\"seq\":%" PRIu64 ",\"time_ms\":%" PRId64 ",\"signed_text\":\"%s\",\"signature\":\"%s\"}\n", h->seq,
            h->time_ms, text, b64);
    return 0;
}

static int list_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_signed_head_each(t, list_head, arg);
}

int csc_audit_heads_list(stor_env_t *stor, void *out)
{
    return stor_read(stor, list_fn, out) == 0 ? 0 : -1;
}
