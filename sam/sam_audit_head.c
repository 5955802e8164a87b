/*
 * sam_audit_head.c - signed audit heads (JIPDEC J11): the head of the hash-chained audit log (seq, hash, time)
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
 *
 * The audit key is used by csc-sam (its audit-heads task) and by `csc-admin audit sign-head`, never by csc-server,
 * which links no PKCS#11 code (tests/unit/server/check_symbols).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sam_server.h"

static const uint8_t audit_key_id[HSM_KEYID_LEN] = STOR_AUDIT_KEY_ID;
#define HEAD_TEXT_MAX 160

/* ---- the key --------------------------------------------------------------------- */


int sam_audit_key_pub(hsm_t *hsm, EVP_PKEY **out)
{
    return hsm_pubkey(hsm, audit_key_id, sizeof(audit_key_id), out);
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

/* head_put_fn: a record came after the head that was signed; nothing written (not a SAM_AUDIT_SIGN_* value) */
#define HEAD_MOVED 2

static int head_put_fn(stor_txn_t *t, void *arg)
{
    head_put_t *p = arg;
    uint8_t hash[32];
    uint64_t seq = 0;
    int rc = stor_txn_audit_tip(t, &seq, hash);

    /* The head read before the signing must still be the last record: else the audit-head record would follow an
     * unsigned one and make it look signed (the next signing, seeing an audit-head last, would skip). */
    if (rc == 0 && (seq != p->h.seq || memcmp(hash, p->h.hash, 32) != 0))
        return HEAD_MOVED;
    if (rc == 0)
        rc = stor_txn_signed_head_put(t, &p->h);
    return rc != 0 ? rc : stor_txn_audit_append(t, &p->audit);
}

static int sign_head_once(stor_env_t *stor, hsm_t *hsm, const char *who, int force, uint64_t *signed_seq);

int sam_audit_sign_text(hsm_t *hsm, const char *text, uint8_t *sig, size_t *sig_len)
{
    hsm_sign_params_t sp = {.scheme = HSM_SIG_ECDSA, .md_nid = NID_sha256};
    uint8_t dig[32];
    const uint8_t *digs[1] = {dig};
    uint8_t *sigs[1] = {sig};

    if (strncmp(text, "csc-audit-head ", 15) == 0 ||
        EVP_Digest(text, strlen(text), dig, NULL, EVP_sha256(), NULL) != 1)
        return SAM_AUDIT_SIGN_ERROR;
    int rc = hsm_sign(hsm, audit_key_id, sizeof(audit_key_id), &sp, digs, sizeof(dig), 1, sigs, sig_len);
    if (rc == HSM_OK)
        return SAM_AUDIT_SIGN_OK;
    fprintf(stderr, "audit key signing in the HSM failed: %s\n", hsm_strerror(rc));
    return rc == HSM_ERR_NOKEY ? SAM_AUDIT_SIGN_NOKEY : SAM_AUDIT_SIGN_ERROR;
}

int sam_audit_sign_head(stor_env_t *stor, hsm_t *hsm, const char *who, int force, uint64_t *signed_seq)
{
    int rc = HEAD_MOVED;
    for (int i = 0; i < 5 && rc == HEAD_MOVED; i++) /* records came meanwhile: sign the new head */
        rc = sign_head_once(stor, hsm, who, force, signed_seq);
    return rc == HEAD_MOVED ? SAM_AUDIT_SIGN_NOTHING : rc;
}

static int sign_head_once(stor_env_t *stor, hsm_t *hsm, const char *who, int force, uint64_t *signed_seq)
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
        return SAM_AUDIT_SIGN_ERROR;
    if ((rc = stor_read(stor, tip_fn, &tip)) != 0) {
        fprintf(stderr, "audit head signing: cannot read the head: %s\n", stor_strerror(rc));
        free(p);
        return SAM_AUDIT_SIGN_ERROR;
    }
    if (tip.seq == 0 || (!force && tip.last_event == STOR_EV_AUDIT_HEAD)) {
        free(p);
        return SAM_AUDIT_SIGN_NOTHING;
    }
    p->h.seq = tip.seq;
    memcpy(p->h.hash, tip.hash, 32);
    p->h.time_ms = tip.time_ms;
    if ((n = stor_signed_head_text(&p->h, text, sizeof(text))) < 0 || EVP_Digest(text, (size_t)n, dig, NULL,
                                                                             EVP_sha256(), NULL) != 1) {
        free(p);
        return SAM_AUDIT_SIGN_ERROR;
    }
    if ((rc = hsm_sign(hsm, audit_key_id, sizeof(audit_key_id), &sp, digs, sizeof(dig), 1, sigs, &slen)) !=
            HSM_OK ||
        slen > sizeof(p->h.sig)) {
        fprintf(stderr, "audit head signing in the HSM failed: %s%s\n", hsm_strerror(rc),
                rc == HSM_ERR_NOKEY ? " (run csc-admin audit key-init)" : "");
        free(p);
        return rc == HSM_ERR_NOKEY ? SAM_AUDIT_SIGN_NOKEY : SAM_AUDIT_SIGN_ERROR;
    }
    memcpy(p->h.sig, sig, slen);
    p->h.sig_len = (uint32_t)slen;
    pki_hex(tip.hash, 32, hex);
    p->audit.event = STOR_EV_AUDIT_HEAD;
    p->audit.result = STOR_RES_OK;
    snprintf(p->audit.client, sizeof(p->audit.client), "%s", who ? who : "csc-sam");
    snprintf(p->audit.detail, sizeof(p->audit.detail), "signed seq=%" PRIu64 " hash=%s", tip.seq, hex);
    rc = stor_write(stor, head_put_fn, p);
    if (rc == HEAD_MOVED) {
        free(p);
        return HEAD_MOVED;
    }
    if (rc == STOR_ERR_EXISTS) {
        free(p);
        return SAM_AUDIT_SIGN_NOTHING; /* someone signed this head meanwhile */
    }
    if (rc != 0) {
        fprintf(stderr, "audit head signing: cannot store the head: %s\n", stor_strerror(rc));
        free(p);
        return SAM_AUDIT_SIGN_ERROR;
    }
    *signed_seq = tip.seq;
    free(p);
    return SAM_AUDIT_SIGN_OK;
}

/* ---- the periodic signing (csc-sam's audit-heads task, server/srv_sam.c) ---------------------------------- */

struct sam_heads {
    stor_env_t *stor;
    hsm_t *hsm;
    unsigned interval, records; /* the triggers: seconds, new records (0: not by that) */
    char who[32];               /* the client field of the audit-head records */
    struct timespec last;       /* when it last signed (CLOCK_MONOTONIC) */
    uint64_t base;              /* the seq of the last signed head seen */
    int warned;                 /* "no audit key" was said */
};

static int heads_sign(sam_heads_t *h)
{
    uint64_t seq = 0;
    int rc = sam_audit_sign_head(h->stor, h->hsm, h->who, 0, &seq);

    if (rc == SAM_AUDIT_SIGN_NOKEY && !h->warned) {
        fprintf(stderr, "%s: audit heads are not signed: no audit key in the HSM (csc-admin audit key-init)\n", h->who);
        h->warned = 1;
    }
    return rc;
}

/* Records appended since the last signed head (or since start). */
static uint64_t pending(stor_env_t *stor, uint64_t *base)
{
    tip_read_t tip = {0};

    if (stor_read(stor, tip_fn, &tip) != 0)
        return 0;
    if (tip.last_event == STOR_EV_AUDIT_HEAD || tip.seq < *base)
        *base = tip.seq; /* signed just now (by us or by csc-admin) */
    return tip.seq - *base;
}

int sam_audit_heads_new(stor_env_t *stor, hsm_t *hsm, unsigned interval, unsigned records, const char *who,
                        sam_heads_t **out)
{
    sam_heads_t *h = calloc(1, sizeof(*h));
    *out = NULL;
    if (h == NULL)
        return -1;
    h->stor = stor;
    h->hsm = hsm;
    h->interval = interval;
    h->records = records;
    snprintf(h->who, sizeof(h->who), "%s", who != NULL ? who : "csc-sam");
    clock_gettime(CLOCK_MONOTONIC, &h->last);
    (void)pending(stor, &h->base);
    *out = h;
    return 0;
}

int sam_audit_heads_once(sam_heads_t *h)
{
    struct timespec now;
    int due, rc;

    clock_gettime(CLOCK_MONOTONIC, &now);
    due = h->interval > 0 && now.tv_sec - h->last.tv_sec >= (time_t)h->interval;
    if (h->records > 0 && pending(h->stor, &h->base) >= h->records)
        due = 1;
    if (!due)
        return 0;
    rc = heads_sign(h);
    (void)pending(h->stor, &h->base);
    h->last = now;
    return rc < 0 ? -1 : 0;
}

void sam_audit_heads_final(sam_heads_t *h)
{
    if (h != NULL && (h->interval > 0 || h->records > 0))
        (void)heads_sign(h);
}

void sam_audit_heads_free(sam_heads_t *h)
{
    free(h);
}
