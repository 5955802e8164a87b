/*
 * stor_heads.c - signed audit heads (J11): the append-only audit_heads table, and the reads that signing and
 * verifying a head need (the head in meta, one audit record by seq).
 *
 * A signed head says "the audit chain at seq N had hash H" under the HSM audit key. It is never overwritten:
 * whoever rewrites the log and meta afterwards cannot make the signed heads agree without the key.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "stor_int.h"

#define HEAD_KEY "audit_head"

static void be64(uint8_t *p, uint64_t v)
{
    for (size_t i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * (7 - i)));
}

int stor_txn_audit_tip(stor_txn_t *t, uint64_t *seq, uint8_t hash[32])
{
    stor_val_t k = {sizeof(HEAD_KEY) - 1, (void *)HEAD_KEY}, v;
    stor_head_t head;
    int rc;

    if (seq == NULL || hash == NULL)
        return STOR_ERR_INVAL;
    *seq = 0;
    memset(hash, 0, 32);
    if ((rc = stor_txn_check(t, 0)) != 0)
        return rc;
    if ((rc = stor_kv_get(t, STOR_DB_META, &k, &v)) == STOR_ERR_NOTFOUND)
        return 0; /* empty log */
    if (rc != 0)
        return rc;
    if ((rc = stor_codec_decode(STOR_REC_HEAD, v.data, v.len, &head)) != 0)
        return rc;
    *seq = head.seq;
    memcpy(hash, head.hash, 32);
    return 0;
}

int stor_txn_audit_get(stor_txn_t *t, uint64_t seq, stor_audit_t *out)
{
    uint8_t key[8];
    stor_val_t k = {8, key}, v;
    int rc;

    if (out == NULL)
        return STOR_ERR_INVAL;
    memset(out, 0, sizeof(*out));
    if ((rc = stor_txn_check(t, 0)) != 0)
        return rc;
    be64(key, seq);
    if ((rc = stor_kv_get(t, STOR_DB_AUDIT, &k, &v)) != 0)
        return rc;
    return stor_codec_decode(STOR_REC_AUDIT, v.data, v.len, out);
}

int stor_txn_signed_head_put(stor_txn_t *t, const stor_signed_head_t *h)
{
    uint8_t key[8];
    stor_val_t k = {8, key};
    int rc;

    if (h == NULL || h->seq == 0 || h->sig_len == 0)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0)
        return rc;
    be64(key, h->seq);
    return stor_put_rec(t, STOR_DB_AUDIT_HEADS, &k, STOR_REC_SIGNED_HEAD, h, STOR_PUT_NOOVERWRITE);
}

typedef struct head_each {
    stor_signed_head_each_fn fn;
    void *arg;
} head_each_t;

/* A head that does not decode, or sits under another seq's key, reaches fn as STOR_ERR_CORRUPT with the key's seq. */
static int head_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    head_each_t *e = arg;
    stor_signed_head_t h;
    uint64_t kseq = 0;
    int st;

    (void)t;
    (void)cur;
    for (size_t i = 0; i < k->len && i < 8; i++)
        kseq = kseq << 8 | ((const uint8_t *)k->data)[i];
    st = stor_codec_decode(STOR_REC_SIGNED_HEAD, v->data, v->len, &h);
    if (st != 0 || k->len != 8) {
        memset(&h, 0, sizeof(h));
        st = STOR_ERR_CORRUPT;
    }
    if (st == 0 && h.seq != kseq)
        st = STOR_ERR_CORRUPT; /* a head moved under another key */
    if (st != 0)
        h.seq = kseq;
    return e->fn(&h, st, e->arg);
}

int stor_txn_signed_head_each(stor_txn_t *t, stor_signed_head_each_fn fn, void *arg)
{
    head_each_t e = { fn, arg };

    if (fn == NULL)
        return STOR_ERR_INVAL;
    return stor_walk(t, STOR_DB_AUDIT_HEADS, STOR_WALK_ALL, NULL, head_row, &e);
}

int stor_signed_head_text(const stor_signed_head_t *h, char *out, size_t sz)
{
    static const char d[] = "0123456789abcdef";
    char hex[65];
    int n;

    for (size_t i = 0; i < 32; i++) {
        hex[2 * i] = d[h->hash[i] >> 4];
        hex[2 * i + 1] = d[h->hash[i] & 15];
    }
    hex[64] = '\0';
    n = snprintf(out, sz, "csc-audit-head v1 seq=%" PRIu64 " hash=%s time_ms=%" PRId64, h->seq, hex, h->time_ms);
    return n > 0 && (size_t)n < sz ? n : -1;
}
