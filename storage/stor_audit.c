/*
 * stor_audit.c - the append-only, hash-chained audit log.
 *
 * The chain head (last seq and hash) lives in meta and is read inside the write
 * txn, so appends by another process (the admin tool) on the same environment,
 * serialised by LMDB's writer lock, extend the same chain.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "stor_int.h"

#define HEAD_KEY "audit_head"

static void be_put(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static int hash_int(EVP_MD_CTX *md, uint64_t v, size_t n)
{
    uint8_t b[8];

    be_put(b, v, n);
    return EVP_DigestUpdate(md, b, n);
}

static int hash_str(EVP_MD_CTX *md, const char *s, size_t max)
{
    size_t n = strnlen(s, max);

    return hash_int(md, n, 4) && EVP_DigestUpdate(md, s, n);
}

int stor_audit_hash(const stor_audit_t *rec, const uint8_t prev_hash[32], uint8_t out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t dlen = (size_t)rec->digest_len * rec->n_digests;
    unsigned int olen = 0;
    int ok;

    if (md == NULL)
        return STOR_ERR_NOMEM;
    ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) && EVP_DigestUpdate(md, prev_hash, 32) &&
         hash_int(md, rec->seq, 8) && hash_int(md, (uint64_t)rec->time_ms, 8) && hash_int(md, rec->event, 4) &&
         hash_int(md, rec->result, 4) && hash_str(md, rec->user, sizeof(rec->user)) &&
         hash_str(md, rec->cred, sizeof(rec->cred)) && hash_str(md, rec->client, sizeof(rec->client)) &&
         EVP_DigestUpdate(md, rec->authz_ref, sizeof(rec->authz_ref)) &&
         hash_str(md, rec->detail, sizeof(rec->detail)) && hash_int(md, rec->digest_len, 4) &&
         hash_int(md, rec->n_digests, 4) && (dlen == 0 || EVP_DigestUpdate(md, rec->digests, dlen)) &&
         (rec->owner[0] == '\0' || (hash_int(md, 15, 1) && hash_str(md, rec->owner, sizeof(rec->owner)))) &&
         (rec->origin[0] == '\0' || (hash_int(md, 16, 1) && hash_str(md, rec->origin, sizeof(rec->origin)))) &&
         EVP_DigestFinal_ex(md, out, &olen) && olen == 32;
    EVP_MD_CTX_free(md);
    return ok ? 0 : STOR_ERR_NOMEM;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int read_head(stor_txn_t *t, stor_head_t *head)
{
    stor_val_t k = { sizeof(HEAD_KEY) - 1, (void *)HEAD_KEY }, v;
    int rc = stor_kv_get(t, STOR_DB_META, &k, &v);

    memset(head, 0, sizeof(*head)); /* no head yet: seq 0, all-zero hash */
    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    return stor_codec_decode(STOR_REC_HEAD, v.data, v.len, head);
}

int stor_txn_audit_head_prefetch(stor_txn_t *t)
{
    return stor_txn_prefetch(t, STOR_DB_META, HEAD_KEY, sizeof(HEAD_KEY) - 1);
}

static int audit_check(const stor_audit_t *rec)
{
    size_t len;

    if (rec->event < STOR_EV_LOGIN || rec->event > STOR_EV_ENROLL || rec->result > STOR_RES_ERROR ||
        rec->digest_len > STOR_DIGEST_LEN_MAX || rec->n_digests > STOR_DIGESTS_MAX ||
        (rec->n_digests > 0 && rec->digest_len == 0))
        return STOR_ERR_INVAL;
    return stor_codec_size(STOR_REC_AUDIT, rec, &len); /* strings terminated, digests present */
}

int stor_txn_audit_append(stor_txn_t *t, stor_audit_t *rec)
{
    stor_val_t k = { 8, NULL }, hk = { sizeof(HEAD_KEY) - 1, (void *)HEAD_KEY };
    stor_head_t head;
    uint8_t key[8];
    int rc;

    if (rec == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = audit_check(rec)) != 0 || (rc = read_head(t, &head)) != 0)
        return rc;
    if (rec->origin[0] == '\0' && t->origin != NULL)
        snprintf(rec->origin, sizeof(rec->origin), "%s", t->origin);
    rec->seq = head.seq + 1;
    if (rec->time_ms == 0)
        rec->time_ms = now_ms();
    memcpy(rec->prev_hash, head.hash, 32);
    if ((rc = stor_audit_hash(rec, rec->prev_hash, rec->hash)) != 0)
        return rc;
    be_put(key, rec->seq, 8);
    k.data = key;
    /* A record already at head + 1 means meta and the log disagree: never overwrite history. */
    if ((rc = stor_put_rec(t, STOR_DB_AUDIT, &k, STOR_REC_AUDIT, rec, STOR_PUT_NOOVERWRITE | STOR_PUT_NEW)) != 0)
        return rc == STOR_ERR_EXISTS ? STOR_ERR_CORRUPT : rc;
    head.seq = rec->seq;
    memcpy(head.hash, rec->hash, 32);
    return stor_put_rec(t, STOR_DB_META, &hk, STOR_REC_HEAD, &head, 0);
}

/* ---- reading ----------------------------------------------------------- */

typedef struct each_arg {
    uint64_t from;
    stor_audit_each_fn fn;
    void *arg;
} each_arg_t;

/* digests point into the map, which stays valid until this read txn ends */
static int audit_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    each_arg_t *e = arg;
    stor_audit_t rec;
    uint8_t key[8];
    int rc;

    (void)t;
    (void)cur;
    if ((rc = stor_codec_decode(STOR_REC_AUDIT, v->data, v->len, &rec)) != 0)
        return rc;
    be_put(key, rec.seq, 8);
    if (k->len != 8 || memcmp(k->data, key, 8) != 0)
        return STOR_ERR_CORRUPT;
    return e->fn(&rec, e->arg);
}

static int audit_each_fn(stor_txn_t *t, void *arg)
{
    each_arg_t *e = arg;
    uint8_t key[8];
    stor_val_t k = { 8, key };

    be_put(key, e->from, 8);
    return stor_walk(t, STOR_DB_AUDIT, STOR_WALK_FROM, &k, audit_row, e);
}

int stor_audit_each(stor_env_t *env, uint64_t from, stor_audit_each_fn fn, void *arg)
{
    each_arg_t e = { from, fn, arg };

    if (fn == NULL)
        return STOR_ERR_INVAL;
    return stor_read(env, audit_each_fn, &e);
}

/* ---- verification ------------------------------------------------------ */

typedef struct scan_arg {
    stor_audit_scan_fn fn;
    void *arg;
    stor_audit_tip_t *tip;
    stor_audit_raw_t *r;  /* scratch: one record at a time */
} scan_arg_t;

static void scan_tip(stor_txn_t *t, stor_audit_tip_t *tip)
{
    stor_val_t k = { sizeof(HEAD_KEY) - 1, (void *)HEAD_KEY }, v;
    stor_head_t head;
    /* The backend's own get: a failure is reported in tip, not recorded on t (the scan goes on). */
    int rc = t->env->be->get(t->env->benv, t->txn, STOR_DB_META, &k, &v);

    memset(tip, 0, sizeof(*tip));
    if (rc != 0) {
        tip->status = rc;
        return;
    }
    if ((tip->status = stor_codec_decode(STOR_REC_HEAD, v.data, v.len, &head)) != 0)
        return;
    tip->seq = head.seq;
    memcpy(tip->hash, head.hash, 32);
}

/* Decode one stored value and judge it against its own bytes: a decoder skips unknown tags, so only a byte-exact
 * re-encoding proves that nothing outside the hashed fields was added or changed. */
static int scan_one(const stor_val_t *k, const stor_val_t *v, stor_audit_raw_t *r)
{
    uint8_t *enc = NULL;
    size_t len = 0;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    if (k->len == 8)
        for (size_t i = 0; i < 8; i++)
            r->key_seq = r->key_seq << 8 | ((const uint8_t *)k->data)[i];
    r->key_ok = k->len == 8;
    if ((r->status = stor_codec_decode(STOR_REC_AUDIT, v->data, v->len, &r->rec)) != 0)
        return 0;
    if ((rc = stor_audit_hash(&r->rec, r->rec.prev_hash, r->computed)) != 0)
        return rc;
    if (stor_codec_size(STOR_REC_AUDIT, &r->rec, &len) != 0 || len != v->len) {
        r->canonical = 0;
        return 0;
    }
    if ((enc = malloc(len)) == NULL)
        return STOR_ERR_NOMEM;
    r->canonical = stor_codec_encode(STOR_REC_AUDIT, &r->rec, enc, len) == 0 && memcmp(enc, v->data, len) == 0;
    free(enc);
    return 0;
}

static int scan_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    scan_arg_t *s = arg;
    int rc;

    (void)t;
    (void)cur;
    return (rc = scan_one(k, v, s->r)) != 0 ? rc : s->fn(s->r, s->arg);
}

static int audit_scan_fn(stor_txn_t *t, void *arg)
{
    scan_arg_t *s = arg;
    int rc;

    if ((s->r = malloc(sizeof(*s->r))) == NULL)
        return STOR_ERR_NOMEM;
    scan_tip(t, s->tip);
    rc = stor_walk(t, STOR_DB_AUDIT, STOR_WALK_ALL, NULL, scan_row, s);
    free(s->r);
    s->r = NULL;
    return rc;
}

int stor_audit_scan(stor_env_t *env, stor_audit_scan_fn fn, void *arg, stor_audit_tip_t *tip)
{
    scan_arg_t s = { fn, arg, tip, NULL };

    if (fn == NULL || tip == NULL)
        return STOR_ERR_INVAL;
    memset(tip, 0, sizeof(*tip));
    return stor_read(env, audit_scan_fn, &s);
}
