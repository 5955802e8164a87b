/* web/web_form.c - what the browser-facing endpoints need: form/query decoding, cookies, a bounded buffer, HTML escaping. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "web.h"

/* Decode in place; returns the new length or -1 (bad escape, NUL byte). */
static long url_decode(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            uint8_t byte;
            if (i + 2 >= len || pki_unhex(s + i + 1, 2, &byte, 1) != 1)
                return -1;
            c = (char)byte;
            i += 2;
        }
        if (c == '\0')
            return -1;
        s[o++] = c;
    }
    s[o] = '\0';
    return (long)o;
}

static int form_parse(const char *s, size_t len, web_form_t *f)
{
    /* A raw NUL byte would end a key or value early in the copy below ("pin\0x=1234" would read as pin=1234), so
     * it is refused like %00 (found by tests/fuzz/fuzz_form.c). */
    if (len > WEB_FORM_BYTES_MAX || memchr(s, '\0', len) != NULL)
        return -1;
    if ((f->buf = malloc(len + 1)) == NULL)
        return -1;
    memcpy(f->buf, s, len);
    f->buf[len] = '\0';
    f->buf_len = len;
    char *p = f->buf, *end = f->buf + len;
    while (p < end) {
        char *amp = memchr(p, '&', (size_t)(end - p));
        char *stop = amp != NULL ? amp : end;
        *stop = '\0';
        if (stop > p) {
            char *eq = memchr(p, '=', (size_t)(stop - p));
            char *val = eq != NULL ? eq + 1 : stop;
            if (eq != NULL)
                *eq = '\0';
            long kl = url_decode(p, strlen(p));
            long vl = url_decode(val, strlen(val));
            if (kl <= 0 || vl < 0 || f->n == WEB_FORM_FIELDS_MAX)
                return -1;
            for (size_t i = 0; i < f->n; i++)
                if (strcmp(f->kv[i].key, p) == 0)
                    return -1; /* a repeated parameter is malformed (RFC 6749 sec. 3.1) */
            f->kv[f->n].key = p;
            f->kv[f->n].value = val;
            f->kv[f->n].value_len = (size_t)vl;
            f->n++;
        }
        p = stop + 1;
    }
    return 0;
}

int web_form_parse(const char *s, size_t len, web_form_t *f)
{
    memset(f, 0, sizeof(*f));
    if (form_parse(s, len, f) == 0)
        return 0;
    web_form_free(f); /* nothing to free for the caller on failure */
    return -1;
}

const char *web_form_get(const web_form_t *f, const char *key)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->kv[i].key, key) == 0)
            return f->kv[i].value;
    return NULL;
}

void web_form_free(web_form_t *f)
{
    if (f->buf != NULL) {
        OPENSSL_cleanse(f->buf, f->buf_len); /* forms carry passwords, OTPs and PINs */
        free(f->buf);
    }
    memset(f, 0, sizeof(*f));
}

int web_cookie_get(const char *hdr, size_t len, const char *name, char *out, size_t outsz)
{
    size_t n = strlen(name);
    const char *p = hdr, *end = hdr + len;
    out[0] = '\0';
    while (p != NULL && p < end) {
        while (p < end && (*p == ' ' || *p == ';'))
            p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi != NULL ? semi : end;
        if ((size_t)(stop - p) > n && memcmp(p, name, n) == 0 && p[n] == '=') {
            size_t vlen = (size_t)(stop - p) - n - 1;
            if (vlen >= outsz)
                return -1;
            memcpy(out, p + n + 1, vlen);
            out[vlen] = '\0';
            return 0;
        }
        p = semi != NULL ? semi + 1 : NULL;
    }
    return -1;
}

/* ---- bounded buffer --------------------------------------------------------------- */

void web_buf_init(web_buf_t *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

/* Grow to hold len + n + 1 bytes. The old block is copied, wiped and freed (never realloc'd): pages and token
 * responses carry codes, tokens and CSRF values, and a realloc would leave a copy behind in freed heap. */
static int buf_grow(web_buf_t *b, size_t n)
{
    if (b->failed)
        return -1;
    if (n > b->max || b->len + n + 1 > b->max) {
        b->failed = 1;
        return -1;
    }
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = csc_wipe_malloc(cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    if (b->p != NULL) {
        memcpy(p, b->p, b->len + 1);
        csc_wipe_free(b->p);
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int web_buf_reserve(web_buf_t *b, size_t n)
{
    return buf_grow(b, n);
}

static void buf_put(web_buf_t *b, const char *s, size_t n)
{
    if (n == 0 || buf_grow(b, n) != 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void web_buf_puts(web_buf_t *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* Formatted straight into the buffer (no fixed scratch buffer: the arguments may be the client's data, e.g. a
 * token response's authorization_details): measured first, then written. */
void web_buf_printf(web_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (n == 0 || buf_grow(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    int m = vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (m != n) {
        b->p[b->len] = '\0';
        b->failed = 1;
        return;
    }
    b->len += (size_t)n;
}

void web_buf_html(web_buf_t *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': web_buf_puts(b, "&lt;"); break;
        case '>': web_buf_puts(b, "&gt;"); break;
        case '&': web_buf_puts(b, "&amp;"); break;
        case '"': web_buf_puts(b, "&quot;"); break;
        case '\'': web_buf_puts(b, "&#39;"); break;
        default: buf_put(b, s, 1);
        }
    }
}

void web_buf_urlenc(web_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            buf_put(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_put(b, e, 3);
        }
    }
}

void web_buf_free(web_buf_t *b)
{
    csc_wipe_free(b->p); /* the whole block, not only len bytes */
    memset(b, 0, sizeof(*b));
}

/* Hand the buffer over to a reply body. */
void web_buf_to_reply(web_buf_t *b, csc_reply_t *reply)
{
    reply->body = b->p;
    reply->body_len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
}
