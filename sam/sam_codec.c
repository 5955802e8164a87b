/*
 * sam_codec.c - the strict table-driven decoder of SAM messages, their accessors, and the builder that can
 * only produce what the decoder accepts (sam_wire.h). Both read the tables of sam_schema.c and check a value
 * with the same function (check_value), so they cannot disagree on a bound.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "sam_int.h"

const char *sam_strerror(int rc)
{
    switch (rc) {
    case SAM_OK: return "ok";
    case SAM_ERR_TRUNCATED: return "message truncated";
    case SAM_ERR_MAGIC: return "bad magic";
    case SAM_ERR_VERSION: return "unsupported protocol version";
    case SAM_ERR_OP: return "unknown op";
    case SAM_ERR_FLAGS: return "undefined flag set";
    case SAM_ERR_RESERVED: return "reserved bits set";
    case SAM_ERR_LENGTH: return "record length does not match its payload";
    case SAM_ERR_TRAILING: return "bytes after the message";
    case SAM_ERR_TOO_BIG: return "message or record over its limit";
    case SAM_ERR_TAG: return "field not allowed in this op";
    case SAM_ERR_ORDER: return "fields out of order";
    case SAM_ERR_COUNT: return "field repeated too often";
    case SAM_ERR_FIELD_LEN: return "field length out of bounds";
    case SAM_ERR_VALUE: return "field value out of bounds";
    case SAM_ERR_UTF8: return "text not UTF-8 or with a NUL";
    case SAM_ERR_MISSING: return "required field missing";
    case SAM_ERR_ONE_OF: return "not exactly one of alternative fields";
    case SAM_ERR_INTERLEAVED: return "record of another request inside a message";
    case SAM_ERR_CLOSED: return "connection closed";
    case SAM_ERR_TIMEOUT: return "deadline passed";
    case SAM_ERR_IO: return "socket error";
    case SAM_ERR_NOMEM: return "out of memory";
    case SAM_ERR_INVAL: return "invalid argument";
    case SAM_ERR_ABSENT: return "field absent";
    case SAM_ERR_UNAVAILABLE: return "signature activation module unavailable";
    case SAM_ERR_REFUSED: return "refused by the signature activation module";
    default: return "unknown error";
    }
}

void sam_hdr_read(const uint8_t *p, sam_hdr_t *h)
{
    h->magic = sam_be16(p);
    h->version = p[2];
    h->op = p[3];
    h->flags = sam_be16(p + 4);
    h->reserved = sam_be16(p + 6);
    h->id = sam_be32(p + 8);
    h->length = sam_be32(p + 12);
}

void sam_hdr_write(uint8_t *p, const sam_hdr_t *h)
{
    sam_put_be16(p, h->magic);
    p[2] = h->version;
    p[3] = h->op;
    sam_put_be16(p + 4, h->flags);
    sam_put_be16(p + 6, h->reserved);
    sam_put_be32(p + 8, h->id);
    sam_put_be32(p + 12, h->length);
}

int sam_hdr_check(const sam_hdr_t *h, uint16_t allowed_flags)
{
    if (h->magic != SAM_MAGIC)
        return SAM_ERR_MAGIC;
    if (h->version != SAM_VERSION)
        return SAM_ERR_VERSION;
    if (sam_op_spec(h->op) == NULL)
        return SAM_ERR_OP;
    if ((h->flags & ~allowed_flags) != 0)
        return SAM_ERR_FLAGS;
    return h->reserved != 0 ? SAM_ERR_RESERVED : SAM_OK;
}

/* Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF) without NUL. */
static int utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1, cp = c & 0x1fu, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2, cp = c & 0x0fu, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3, cp = c & 0x07u, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i - 1 < k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

int sam_text_ok(const char *s, size_t n)
{
    return s != NULL && utf8_ok((const uint8_t *)s, n);
}

static uint64_t be_uint(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* One value against its row: the one check the decoder and the builder share. */
static int check_value(const sam_field_spec_t *f, const uint8_t *p, size_t len)
{
    if (len < f->min_len || len > f->max_len)
        return SAM_ERR_FIELD_LEN;
    switch (f->type) {
    case SAM_TYPE_U32:
    case SAM_TYPE_U64: {
        uint64_t v = be_uint(p, len);
        return v < f->min_val || v > f->max_val ? SAM_ERR_VALUE : SAM_OK;
    }
    case SAM_TYPE_TEXT:
        return utf8_ok(p, len) ? SAM_OK : SAM_ERR_UTF8;
    default:
        return SAM_OK;
    }
}

/* The next field's row, given the previous tag and how often it came: the ordering and count rules. */
static int next_row(const sam_op_spec_t *spec, unsigned tag, unsigned prev_tag, unsigned seen,
                    const sam_field_spec_t **row)
{
    if (tag < prev_tag)
        return SAM_ERR_ORDER;
    if ((*row = sam_field_spec(spec, tag)) == NULL)
        return SAM_ERR_TAG;
    return tag == prev_tag && seen >= (*row)->max_count ? SAM_ERR_COUNT : SAM_OK;
}

/* After the last field: every required field there, exactly one of each one_of group. */
static int check_complete(const sam_op_spec_t *spec, const uint16_t count[SAM_TAG_LIMIT])
{
    unsigned groups[8] = {0}, used = 0;
    for (size_t i = 0; i < spec->n_fields; i++) {
        const sam_field_spec_t *f = &spec->fields[i];
        if (count[f->tag] < f->min_count)
            return SAM_ERR_MISSING;
        if (f->one_of != 0) {
            groups[f->one_of % 8] += count[f->tag] != 0;
            used |= 1u << (f->one_of % 8);
        }
    }
    for (unsigned g = 0; g < 8; g++)
        if ((used & (1u << g)) != 0 && groups[g] != 1)
            return SAM_ERR_ONE_OF;
    return SAM_OK;
}

int sam_msg_decode(const uint8_t *buf, size_t len, sam_msg_t *out)
{
    if (out == NULL)
        return SAM_ERR_INVAL;
    memset(out, 0, sizeof(*out));
    if (buf == NULL)
        return SAM_ERR_INVAL;
    if (len < SAM_HDR_LEN)
        return SAM_ERR_TRUNCATED;
    sam_hdr_t h;
    sam_hdr_read(buf, &h);
    int rc = sam_hdr_check(&h, 0);
    if (rc != SAM_OK)
        return rc;
    if (h.length > SAM_MSG_MAX || len - SAM_HDR_LEN > SAM_MSG_MAX)
        return SAM_ERR_TOO_BIG;
    if (h.length > len - SAM_HDR_LEN)
        return SAM_ERR_TRUNCATED;
    if (h.length < len - SAM_HDR_LEN)
        return SAM_ERR_TRAILING;

    const sam_op_spec_t *spec = sam_op_spec(h.op);
    const uint8_t *body = buf + SAM_HDR_LEN;
    size_t pos = 0;
    unsigned prev = 0;
    while (pos < h.length && rc == SAM_OK) {
        const sam_field_spec_t *f;
        if (h.length - pos < SAM_FIELD_HDR)
            rc = SAM_ERR_TRUNCATED;
        else if ((rc = next_row(spec, sam_be16(body + pos), prev, prev != 0 ? out->count[prev] : 0, &f)) != SAM_OK)
            break;
        else {
            size_t flen = sam_be32(body + pos + 2);
            if (flen > h.length - pos - SAM_FIELD_HDR)
                rc = SAM_ERR_TRUNCATED;
            else if ((rc = check_value(f, body + pos + SAM_FIELD_HDR, flen)) == SAM_OK) {
                if (out->count[f->tag]++ == 0)
                    out->first[f->tag] = (uint32_t)pos;
                prev = f->tag;
                pos += SAM_FIELD_HDR + flen;
            }
        }
    }
    if (rc == SAM_OK)
        rc = check_complete(spec, out->count);
    if (rc != SAM_OK) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->op = h.op;
    out->id = h.id;
    out->body = body;
    out->body_len = h.length;
    return SAM_OK;
}

/* ---- accessors ------------------------------------------------------------------------------------------- */

unsigned sam_msg_count(const sam_msg_t *m, unsigned tag)
{
    return m != NULL && tag < SAM_TAG_LIMIT ? m->count[tag] : 0;
}

int sam_get_bytes(const sam_msg_t *m, unsigned tag, const uint8_t **p, size_t *len)
{
    if (sam_msg_count(m, tag) == 0 || p == NULL || len == NULL)
        return SAM_ERR_ABSENT;
    const uint8_t *f = m->body + m->first[tag];
    *len = sam_be32(f + 2);
    *p = f + SAM_FIELD_HDR;
    return SAM_OK;
}

static int get_uint(const sam_msg_t *m, unsigned tag, size_t want, uint64_t *v)
{
    const uint8_t *p;
    size_t len;
    if (sam_get_bytes(m, tag, &p, &len) != SAM_OK || len != want)
        return SAM_ERR_ABSENT;
    *v = be_uint(p, len);
    return SAM_OK;
}

int sam_get_u32(const sam_msg_t *m, unsigned tag, uint32_t *v)
{
    uint64_t x;
    if (v == NULL || get_uint(m, tag, 4, &x) != SAM_OK)
        return SAM_ERR_ABSENT;
    *v = (uint32_t)x;
    return SAM_OK;
}

int sam_get_u64(const sam_msg_t *m, unsigned tag, uint64_t *v)
{
    return v != NULL ? get_uint(m, tag, 8, v) : SAM_ERR_ABSENT;
}

int sam_get_text(const sam_msg_t *m, unsigned tag, char *out, size_t outsz)
{
    const uint8_t *p;
    size_t len;
    if (out == NULL || outsz == 0)
        return SAM_ERR_INVAL;
    out[0] = '\0';
    int rc = sam_get_bytes(m, tag, &p, &len);
    if (rc != SAM_OK)
        return rc;
    if (len >= outsz)
        return SAM_ERR_INVAL;
    memcpy(out, p, len);
    out[len] = '\0';
    return SAM_OK;
}

void sam_iter_init(const sam_msg_t *m, unsigned tag, sam_iter_t *it)
{
    it->left = sam_msg_count(m, tag);
    it->next = it->left > 0 ? m->body + m->first[tag] : NULL;
}

int sam_iter_next(sam_iter_t *it, const uint8_t **p, size_t *len)
{
    if (it->left == 0)
        return 0;
    *len = sam_be32(it->next + 2);
    *p = it->next + SAM_FIELD_HDR;
    it->next += SAM_FIELD_HDR + *len; /* values of one tag follow each other (the decoder saw to it) */
    it->left--;
    return 1;
}

/* ---- the builder ----------------------------------------------------------------------------------------- */

int sam_build_init(sam_builder_t *b, unsigned op, uint32_t id)
{
    if (b == NULL)
        return SAM_ERR_INVAL;
    memset(b, 0, sizeof(*b));
    b->id = id;
    b->spec = sam_op_spec(op);
    b->err = b->spec != NULL ? SAM_OK : SAM_ERR_OP;
    return b->err;
}

/* Room for need more bytes; a move wipes the old buffer (it may hold a PIN). */
static int reserve(sam_builder_t *b, size_t need)
{
    if (b->len + need <= b->cap)
        return SAM_OK;
    if (b->len + need > SAM_HDR_LEN + SAM_MSG_MAX)
        return SAM_ERR_TOO_BIG;
    size_t cap = b->cap != 0 ? b->cap : 256;
    while (cap < b->len + need)
        cap *= 2;
    if (cap > SAM_HDR_LEN + SAM_MSG_MAX)
        cap = SAM_HDR_LEN + SAM_MSG_MAX;
    uint8_t *n = malloc(cap);
    if (n == NULL)
        return SAM_ERR_NOMEM;
    if (b->buf != NULL) {
        memcpy(n, b->buf, b->len);
        OPENSSL_clear_free(b->buf, b->cap);
    }
    b->buf = n;
    b->cap = cap;
    return SAM_OK;
}

static int put(sam_builder_t *b, unsigned tag, unsigned type, const uint8_t *p, size_t len)
{
    if (b == NULL)
        return SAM_ERR_INVAL;
    if (b->err != SAM_OK)
        return b->err;
    const sam_field_spec_t *f = NULL;
    int rc = p == NULL && len > 0 ? SAM_ERR_INVAL
             : tag > UINT16_MAX    ? SAM_ERR_TAG
                                   : next_row(b->spec, tag, b->last_tag, b->last_tag != 0 ? b->count[b->last_tag] : 0, &f);
    if (rc == SAM_OK && f->type != type)
        rc = SAM_ERR_INVAL;
    if (rc == SAM_OK)
        rc = check_value(f, p, len);
    if (rc == SAM_OK)
        rc = reserve(b, (b->len == 0 ? SAM_HDR_LEN : 0) + SAM_FIELD_HDR + len);
    if (rc != SAM_OK)
        return b->err = rc;
    if (b->len == 0)
        b->len = SAM_HDR_LEN; /* written by sam_build_finish */
    sam_put_be16(b->buf + b->len, (uint16_t)tag);
    sam_put_be32(b->buf + b->len + 2, (uint32_t)len);
    if (len > 0)
        memcpy(b->buf + b->len + SAM_FIELD_HDR, p, len);
    b->len += SAM_FIELD_HDR + len;
    b->count[tag]++;
    b->last_tag = tag;
    return SAM_OK;
}

int sam_put_u32(sam_builder_t *b, unsigned tag, uint32_t v)
{
    uint8_t be[4];
    sam_put_be32(be, v);
    return put(b, tag, SAM_TYPE_U32, be, sizeof(be));
}

int sam_put_u64(sam_builder_t *b, unsigned tag, uint64_t v)
{
    uint8_t be[8];
    sam_put_be32(be, (uint32_t)(v >> 32));
    sam_put_be32(be + 4, (uint32_t)v);
    return put(b, tag, SAM_TYPE_U64, be, sizeof(be));
}

int sam_put_bytes(sam_builder_t *b, unsigned tag, const void *p, size_t len)
{
    return put(b, tag, SAM_TYPE_BYTES, p, len);
}

int sam_put_text(sam_builder_t *b, unsigned tag, const char *s, size_t len)
{
    return put(b, tag, SAM_TYPE_TEXT, (const uint8_t *)s, len);
}

int sam_put_str(sam_builder_t *b, unsigned tag, const char *s)
{
    return s != NULL ? sam_put_text(b, tag, s, strlen(s)) : put(b, tag, SAM_TYPE_TEXT, NULL, 1);
}

int sam_build_finish(sam_builder_t *b, const uint8_t **msg, size_t *len)
{
    if (b == NULL || msg == NULL || len == NULL)
        return SAM_ERR_INVAL;
    if (b->err == SAM_OK)
        b->err = check_complete(b->spec, b->count);
    if (b->err == SAM_OK && b->len == 0) { /* no field: the header alone */
        if ((b->err = reserve(b, SAM_HDR_LEN)) == SAM_OK)
            b->len = SAM_HDR_LEN;
    }
    if (b->err != SAM_OK)
        return b->err;
    sam_hdr_t h = {SAM_MAGIC, SAM_VERSION, b->spec->op, 0, 0, b->id, (uint32_t)(b->len - SAM_HDR_LEN)};
    sam_hdr_write(b->buf, &h);
    *msg = b->buf;
    *len = b->len;
    return SAM_OK;
}

void sam_build_free(sam_builder_t *b)
{
    if (b == NULL)
        return;
    if (b->buf != NULL)
        OPENSSL_clear_free(b->buf, b->cap);
    memset(b, 0, sizeof(*b));
    b->err = SAM_ERR_INVAL; /* not initialised */
}

int sam_build_refusal(sam_builder_t *b, uint32_t id, uint32_t code, const char *reason, unsigned about)
{
    int rc = sam_build_init(b, SAM_OP_REFUSED, id);
    if (rc != SAM_OK)
        return rc;
    size_t n = reason != NULL ? strlen(reason) : 0;
    if (n > SAM_REASON_MAX) {
        n = SAM_REASON_MAX;
        while (n > 0 && ((uint8_t)reason[n] & 0xc0) == 0x80) /* do not cut a character */
            n--;
    }
    sam_put_u32(b, SAM_T_REFUSAL, code);
    sam_put_text(b, SAM_T_REASON, reason != NULL ? reason : "", n);
    if (about != 0)
        sam_put_u32(b, SAM_T_ABOUT, about);
    const uint8_t *m;
    size_t len;
    return sam_build_finish(b, &m, &len);
}
