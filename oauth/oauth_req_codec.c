/*
 * oauth_req_codec.c - an authorization request (oauth_authz_request_t) as bytes, field by field: how a browser
 * session keeps its request in storage (web_sessions), how a pushed request waits in memory, and how the pages'
 * sign-in hands it to csc-sam (LOGIN, SAM_T_AUTHZ_REQ). One strict decoder for all three.
 *
 * Layout (big-endian integers; str = u16 length + bytes, no NUL, shorter than the field it fills):
 *   u8 version (1)
 *   str client_id, str redirect_uri, u32 redirect_given, str state, 32 bytes challenge, u32 scope, str cred,
 *   str signature_qualifier, u32 num_signatures, str hash_alg, u32 digest_len, u32 n_digests,
 *   n_digests x digest_len bytes, u8 labels (how many label fields follow, <= 16: the rest are empty),
 *   labels x str, str description, str authz_details, str lang
 * Decoding refuses a length past its field, a NUL inside a string, a count past its limit, a short buffer and bytes
 * left over, then checks the whole with oauth_req_ok. A request of a few digests takes a few hundred bytes, not the
 * 73 KB of the struct.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "oauth_int.h"

#define REQ_CODEC_VERSION 1
#define NLABELS (sizeof(((oauth_authz_request_t *)0)->labels) / sizeof(((oauth_authz_request_t *)0)->labels[0]))

static int terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

int oauth_req_ok(const oauth_authz_request_t *r)
{
    size_t i;

    if (!r || !oauth_id_ok(r->client_id) || r->n_digests > STOR_DIGESTS_MAX || r->digest_len > STOR_DIGEST_LEN_MAX)
        return 0;
    if (r->scope != STOR_SCOPE_SERVICE && r->scope != STOR_SCOPE_CREDENTIAL)
        return 0;
    if (!terminated(r->redirect_uri, sizeof(r->redirect_uri)) || !terminated(r->state, sizeof(r->state)) ||
        !terminated(r->cred, sizeof(r->cred)) || !terminated(r->signature_qualifier, sizeof(r->signature_qualifier)) ||
        !terminated(r->hash_alg, sizeof(r->hash_alg)) || !terminated(r->description, sizeof(r->description)) ||
        !terminated(r->authz_details, sizeof(r->authz_details)) || !terminated(r->lang, sizeof(r->lang)))
        return 0;
    for (i = 0; i < sizeof(r->labels) / sizeof(r->labels[0]); i++)
        if (!terminated(r->labels[i], sizeof(r->labels[i])))
            return 0;
    return 1;
}

typedef struct {
    uint8_t *p;
    size_t cap, n;
    int err;
} enc_t;

static void put(enc_t *e, const void *v, size_t len)
{
    if (e->err || (e->p != NULL && len > e->cap - e->n)) {
        e->err = 1;
        return;
    }
    if (e->p != NULL) /* NULL: only counting */
        memcpy(e->p + e->n, v, len);
    e->n += len;
}

static void put_u32(enc_t *e, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(e, b, 4);
}

static void put_str(enc_t *e, const char *s, size_t field)
{
    size_t len = strnlen(s, field);
    if (len >= field) { /* unterminated: not a request oauth_req_ok passes */
        e->err = 1;
        return;
    }
    uint8_t b[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    put(e, b, 2);
    put(e, s, len);
}

#define PUT_STR(e, r, f) put_str((e), (r)->f, sizeof((r)->f))

int oauth_req_encode(const oauth_authz_request_t *r, uint8_t *buf, size_t cap, size_t *len)
{
    enc_t e = {.p = buf, .cap = cap};
    uint8_t version = REQ_CODEC_VERSION, nlabels = 0;
    size_t i;

    if (r == NULL || len == NULL || !oauth_req_ok(r))
        return OAUTH_ERR_INVAL;
    for (i = 0; i < NLABELS; i++)
        if (r->labels[i][0] != '\0')
            nlabels = (uint8_t)(i + 1);
    put(&e, &version, 1);
    PUT_STR(&e, r, client_id);
    PUT_STR(&e, r, redirect_uri);
    put_u32(&e, r->redirect_given);
    PUT_STR(&e, r, state);
    put(&e, r->challenge, sizeof(r->challenge));
    put_u32(&e, r->scope);
    PUT_STR(&e, r, cred);
    PUT_STR(&e, r, signature_qualifier);
    put_u32(&e, r->num_signatures);
    PUT_STR(&e, r, hash_alg);
    put_u32(&e, r->digest_len);
    put_u32(&e, r->n_digests);
    for (i = 0; i < r->n_digests; i++)
        put(&e, r->digests[i], r->digest_len);
    put(&e, &nlabels, 1);
    for (i = 0; i < nlabels; i++)
        PUT_STR(&e, r, labels[i]);
    PUT_STR(&e, r, description);
    PUT_STR(&e, r, authz_details);
    PUT_STR(&e, r, lang);
    *len = e.err ? 0 : e.n;
    return e.err ? OAUTH_ERR_INVAL : OAUTH_OK;
}

typedef struct {
    const uint8_t *p;
    size_t len, n;
    int err;
} dec_t;

static const uint8_t *take(dec_t *d, size_t len)
{
    if (d->err || len > d->len - d->n) {
        d->err = 1;
        return NULL;
    }
    const uint8_t *v = d->p + d->n;
    d->n += len;
    return v;
}

static void get(dec_t *d, void *out, size_t len)
{
    const uint8_t *v = take(d, len);
    if (v != NULL)
        memcpy(out, v, len);
}

static uint32_t get_u32(dec_t *d)
{
    const uint8_t *v = take(d, 4);
    return v == NULL ? 0 : (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
}

static void get_str(dec_t *d, char *out, size_t field)
{
    const uint8_t *h = take(d, 2);
    size_t len = h == NULL ? 0 : (size_t)h[0] << 8 | h[1];
    const uint8_t *v;
    if (h == NULL || len >= field) {
        d->err = 1;
        return;
    }
    if ((v = take(d, len)) == NULL || memchr(v, '\0', len) != NULL) {
        d->err = 1;
        return;
    }
    memcpy(out, v, len);
    out[len] = '\0';
}

#define GET_STR(d, r, f) get_str((d), (r)->f, sizeof((r)->f))

int oauth_req_decode(const uint8_t *buf, size_t len, oauth_authz_request_t *r)
{
    dec_t d = {.p = buf, .len = len};
    uint8_t version = 0, nlabels = 0;
    size_t i;

    if (buf == NULL || r == NULL)
        return OAUTH_ERR_INVAL;
    memset(r, 0, sizeof(*r));
    get(&d, &version, 1);
    if (d.err || version != REQ_CODEC_VERSION)
        return OAUTH_ERR_INVAL;
    GET_STR(&d, r, client_id);
    GET_STR(&d, r, redirect_uri);
    r->redirect_given = get_u32(&d);
    GET_STR(&d, r, state);
    get(&d, r->challenge, sizeof(r->challenge));
    r->scope = get_u32(&d);
    GET_STR(&d, r, cred);
    GET_STR(&d, r, signature_qualifier);
    r->num_signatures = get_u32(&d);
    GET_STR(&d, r, hash_alg);
    r->digest_len = get_u32(&d);
    r->n_digests = get_u32(&d);
    if (r->digest_len > STOR_DIGEST_LEN_MAX || r->n_digests > STOR_DIGESTS_MAX)
        d.err = 1;
    for (i = 0; !d.err && i < r->n_digests; i++)
        get(&d, r->digests[i], r->digest_len);
    get(&d, &nlabels, 1);
    if (nlabels > NLABELS)
        d.err = 1;
    for (i = 0; !d.err && i < nlabels; i++)
        GET_STR(&d, r, labels[i]);
    GET_STR(&d, r, description);
    GET_STR(&d, r, authz_details);
    GET_STR(&d, r, lang);
    if (d.err || d.n != len || !oauth_req_ok(r)) {
        OPENSSL_cleanse(r, sizeof(*r));
        return OAUTH_ERR_INVAL;
    }
    return OAUTH_OK;
}
