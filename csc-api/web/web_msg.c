/*
 * web/web_msg.c - the pages' languages: the message catalogues (web/messages/<lang>.txt, compiled in by
 * cmake/embed_messages.cmake as web_catalogue_<lang>[]), the choice of a request's language, and the formatting of a
 * message into a page.
 *
 * A catalogue is UTF-8 text, one message a line: "key = text". Blank lines and lines starting with '#' are comments;
 * a key is of a-z 0-9 . _; the text runs to the end of the line (spaces around it trimmed) and is plain text: the page
 * HTML-escapes it where it is used. Placeholders are printf-style: %s (a string), %u (an unsigned), %% (a percent
 * sign), and the positional %1$s ... %9$u that let a language put the arguments in its own order (Japanese puts the
 * object before the verb). The catalogues are parsed once, on first use; the unit test unit_web_messages holds them
 * to the same keys and placeholders, so that a key missing at run time (shown as the key itself, or English for a
 * key only English has) is a bug the test finds first.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "web.h"

extern const char web_catalogue_en[];
extern const char web_catalogue_ja[];

static const char *const lang_codes[WEB_LANG_COUNT] = {"en", "ja"};

typedef struct cat {
    char *copy;            /* the catalogue's text, cut into keys and texts in place */
    web_msg_entry_t *e;    /* sorted by key */
    size_t n;
} cat_t;

static cat_t cats[WEB_LANG_COUNT];
static pthread_once_t cats_once = PTHREAD_ONCE_INIT;

const char *web_lang_code(int lang)
{
    return lang >= 0 && lang < WEB_LANG_COUNT ? lang_codes[lang] : lang_codes[WEB_LANG_EN];
}

const char *web_catalogue_text(int lang)
{
    return lang == WEB_LANG_JA ? web_catalogue_ja : web_catalogue_en;
}

/* ---- the catalogue format ---------------------------------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const web_msg_entry_t *)a)->key, ((const web_msg_entry_t *)b)->key);
}

static int key_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_';
}

int web_msg_parse(char *text, web_msg_entry_t **out, size_t *n, char *err, size_t errsz)
{
    size_t cap = 0, count = 0, line = 0;
    web_msg_entry_t *e = NULL;
    char *p = text;

    *out = NULL;
    *n = 0;
    while (*p != '\0') {
        char *end = strchr(p, '\n'), *next = end != NULL ? end + 1 : p + strlen(p);
        if (end == NULL)
            end = p + strlen(p);
        line++;
        if (end > p && end[-1] == '\r')
            end--;
        *end = '\0';
        if (p[0] != '\0' && p[0] != '#') {
            char *k = p, *eq;
            size_t klen = 0;
            while (key_char(k[klen]))
                klen++;
            eq = k + klen;
            while (*eq == ' ')
                eq++;
            if (klen == 0 || *eq != '=' || (eq[1] != ' ' && eq[1] != '\0')) {
                snprintf(err, errsz, "line %zu: not \"key = text\" (a key is of a-z 0-9 . _)", line);
                goto fail;
            }
            k[klen] = '\0';
            char *t = eq + 1;
            while (*t == ' ')
                t++;
            size_t tlen = strlen(t);
            while (tlen > 0 && t[tlen - 1] == ' ')
                t[--tlen] = '\0';
            if (tlen == 0) {
                snprintf(err, errsz, "line %zu: key %s has no text", line, k);
                goto fail;
            }
            if (count == cap) {
                size_t ncap = cap != 0 ? 2 * cap : 256;
                web_msg_entry_t *ne = realloc(e, ncap * sizeof(*e));
                if (ne == NULL) {
                    snprintf(err, errsz, "out of memory");
                    goto fail;
                }
                e = ne;
                cap = ncap;
            }
            e[count].key = k;
            e[count].text = t;
            count++;
        }
        p = next;
    }
    if (count > 0)
        qsort(e, count, sizeof(*e), entry_cmp);
    for (size_t i = 1; i < count; i++)
        if (strcmp(e[i - 1].key, e[i].key) == 0) {
            snprintf(err, errsz, "key %s is given twice", e[i].key);
            goto fail;
        }
    *out = e;
    *n = count;
    return 0;
fail:
    free(e);
    return -1;
}

int web_msg_placeholders(const char *text, char types[WEB_MSG_ARGS_MAX], size_t *n)
{
    int next = 0, positional = -1;
    size_t max = 0;
    memset(types, 0, WEB_MSG_ARGS_MAX);
    for (const char *p = text; *p != '\0'; p++) {
        if (*p != '%')
            continue;
        p++;
        if (*p == '%')
            continue;
        int idx, pos = p[0] >= '1' && p[0] <= '9' && p[1] == '$';
        if (positional >= 0 && pos != positional)
            return -1; /* positional and sequential mixed in one text */
        positional = pos;
        if (pos) {
            idx = p[0] - '1';
            p += 2;
        } else {
            idx = next++;
        }
        if (idx >= WEB_MSG_ARGS_MAX || (*p != 's' && *p != 'u') || (types[idx] != 0 && types[idx] != *p))
            return -1;
        types[idx] = *p;
        if ((size_t)idx + 1 > max)
            max = (size_t)idx + 1;
    }
    for (size_t i = 0; i < max; i++)
        if (types[i] == 0)
            return -1; /* a gap: the arguments could not be read in order */
    *n = max;
    return 0;
}

static void cats_load(void)
{
    for (int l = 0; l < WEB_LANG_COUNT; l++) {
        char err[160];
        cats[l].copy = strdup(web_catalogue_text(l));
        if (cats[l].copy == NULL || web_msg_parse(cats[l].copy, &cats[l].e, &cats[l].n, err, sizeof(err)) != 0) {
            /* The unit test parses the same bytes: a release cannot get here but by running out of memory. */
            fprintf(stderr, "csc-api: the %s message catalogue cannot be used: %s\n", lang_codes[l],
                    cats[l].copy == NULL ? "out of memory" : err);
            free(cats[l].copy);
            cats[l].copy = NULL;
            cats[l].n = 0;
        }
    }
}

static const char *lookup(int lang, const char *key)
{
    web_msg_entry_t k = {.key = key}, *hit;
    if (lang < 0 || lang >= WEB_LANG_COUNT || cats[lang].n == 0)
        return NULL;
    hit = bsearch(&k, cats[lang].e, cats[lang].n, sizeof(k), entry_cmp);
    return hit != NULL ? hit->text : NULL;
}

const char *web_msg(int lang, const char *key)
{
    const char *t;
    pthread_once(&cats_once, cats_load);
    if ((t = lookup(lang, key)) != NULL || (t = lookup(WEB_LANG_EN, key)) != NULL)
        return t;
    return key;
}

/* ---- the language of a request ----------------------------------------------------------------------------- */

int web_lang_parse(const char *s, size_t len)
{
    /* A language tag (RFC 5646) whose primary subtag we have: "ja", "ja-JP", "en-GB", ... */
    for (int l = 0; l < WEB_LANG_COUNT; l++)
        if (len >= 2 && strncasecmp(s, lang_codes[l], 2) == 0 && (len == 2 || s[2] == '-' || s[2] == '_'))
            return l;
    return -1;
}

/* Accept-Language (RFC 9110 sec. 12.5.4): the language we have with the highest q (the first of equals); -1 if
 * none. A q of 0 means "not this one"; "*" stands for any, i.e. the default. */
static int accept_language(const char *h, size_t len, int dflt)
{
    int best = -1, best_q = 0;
    const char *p = h, *end = h + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p)), *stop = comma != NULL ? comma : end;
        const char *semi = memchr(p, ';', (size_t)(stop - p)), *tag_end = semi != NULL ? semi : stop;
        while (p < tag_end && (*p == ' ' || *p == '\t'))
            p++;
        while (tag_end > p && (tag_end[-1] == ' ' || tag_end[-1] == '\t'))
            tag_end--;
        int q = 1000; /* thousandths */
        if (semi != NULL) {
            const char *s = semi + 1;
            while (s < stop && (*s == ' ' || *s == '\t'))
                s++;
            if (stop - s >= 2 && (s[0] == 'q' || s[0] == 'Q') && s[1] == '=') {
                s += 2;
                q = 0;
                if (s < stop && *s == '1') {
                    q = 1000;
                } else if (s < stop && *s == '0') {
                    s++;
                    if (s < stop && *s == '.')
                        for (int i = 0, m = 100; i < 3 && ++s < stop && *s >= '0' && *s <= '9'; i++, m /= 10)
                            q += (*s - '0') * m;
                }
            }
        }
        int l = tag_end - p == 1 && *p == '*' ? dflt : web_lang_parse(p, (size_t)(tag_end - p));
        if (l >= 0 && q > best_q) {
            best = l;
            best_q = q;
        }
        p = comma != NULL ? comma + 1 : end;
    }
    return best;
}

/* The value of name in a query string ("a=1&lang=ja"), not decoded; NULL if absent. */
static const char *query_value(const char *q, size_t len, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    const char *p = q, *end = q + len;
    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - p) > n && memcmp(p, name, n) == 0 && p[n] == '=') {
            *vlen = (size_t)(stop - p) - n - 1;
            return p + n + 1;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return NULL;
}

static int default_lang(const csc_t *c)
{
    int l = c->cfg.default_lang != NULL ? web_lang_parse(c->cfg.default_lang, strlen(c->cfg.default_lang)) : -1;
    return l >= 0 ? l : WEB_LANG_EN;
}

int web_lang_pick(const csc_t *c, const csc_call_t *call, int *chosen)
{
    char v[16];
    const char *q;
    size_t qlen = 0;
    int l, dflt = default_lang(c);

    *chosen = 0;
    if (call == NULL)
        return dflt;
    /* ?lang=ja: the switch on the page (and the lang parameter of an authorization request, CSC API sec. 8.4.2). */
    if (call->query != NULL && (q = query_value(call->query, call->query_len, "lang", &qlen)) != NULL &&
        (l = web_lang_parse(q, qlen)) >= 0) {
        *chosen = 1;
        return l;
    }
    if (call->cookie != NULL && web_cookie_get(call->cookie, call->cookie_len, WEB_LANG_COOKIE, v, sizeof(v)) == 0 &&
        (l = web_lang_parse(v, strlen(v))) >= 0)
        return l;
    if (call->accept_language != NULL && (l = accept_language(call->accept_language, call->accept_language_len, dflt)) >= 0)
        return l;
    return dflt;
}

void web_init(web_t *w, csc_t *c, const csc_call_t *call, csc_reply_t *reply)
{
    int chosen = 0;
    memset(w, 0, sizeof(*w));
    w->c = c;
    w->call = call;
    w->reply = reply;
    w->lang = web_lang_pick(c, call, &chosen);
    if (chosen)
        web_lang_remember(w);
}

void web_lang_remember(web_t *w)
{
    char buf[96];
    /* Not a secret, and no script reads it: a year, the whole host, sent on top-level navigations. */
    snprintf(buf, sizeof(buf), WEB_LANG_COOKIE "=%s; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Lax",
             web_lang_code(w->lang));
    free(w->reply->set_cookie2);
    w->reply->set_cookie2 = strdup(buf);
}

/* ---- formatting -------------------------------------------------------------------------------------------- */

/* Text into element content or a double-quoted attribute (every attribute the pages write is double-quoted): <, >,
 * & and " escaped; an apostrophe, frequent in English messages, stays as it is. */
static void html_n(web_buf_t *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = s[i] == '<' ? "&lt;" : s[i] == '>' ? "&gt;" : s[i] == '&' ? "&amp;" : s[i] == '"' ? "&quot;"
                                                                                                         : NULL;
        if (e == NULL) {
            run++;
            continue;
        }
        if (run > 0 && web_buf_reserve(b, run) == 0) {
            memcpy(b->p + b->len, s + i - run, run);
            b->len += run;
            b->p[b->len] = '\0';
        }
        run = 0;
        web_buf_puts(b, e);
    }
    if (run > 0 && web_buf_reserve(b, run) == 0) {
        memcpy(b->p + b->len, s + n - run, run);
        b->len += run;
        b->p[b->len] = '\0';
    }
}

/* mode 0: the text and the %s arguments HTML-escaped; 1: the text escaped, the arguments HTML already; 2: plain text,
 * nothing escaped (a message formatted now and escaped where it is shown). */
static void lit(web_buf_t *b, int mode, const char *s, size_t n)
{
    if (mode != 2) {
        html_n(b, s, n);
    } else if (n > 0 && web_buf_reserve(b, n) == 0) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
    }
}

static void say(web_buf_t *b, int mode, const char *text, va_list ap)
{
    char types[WEB_MSG_ARGS_MAX];
    size_t n = 0;
    union {
        const char *s;
        unsigned u;
    } a[WEB_MSG_ARGS_MAX];

    if (web_msg_placeholders(text, types, &n) != 0) { /* the unit test keeps such a text out */
        lit(b, mode, text, strlen(text));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (types[i] == 's')
            a[i].s = va_arg(ap, const char *);
        else
            a[i].u = va_arg(ap, unsigned);
    }
    size_t next = 0;
    const char *p = text, *from = text;
    for (; *p != '\0'; p++) {
        if (*p != '%')
            continue;
        lit(b, mode, from, (size_t)(p - from));
        p++;
        if (*p == '%') {
            web_buf_puts(b, "%");
            from = p + 1;
            continue;
        }
        size_t idx = next;
        if (p[0] >= '1' && p[0] <= '9' && p[1] == '$') {
            idx = (size_t)(p[0] - '1');
            p += 2;
        } else {
            next++;
        }
        if (*p == 's') {
            const char *s = a[idx].s != NULL ? a[idx].s : "";
            if (mode != 0)
                web_buf_puts(b, s);
            else
                web_buf_html(b, s);
        } else {
            web_buf_printf(b, "%u", a[idx].u);
        }
        from = p + 1;
    }
    lit(b, mode, from, (size_t)(p - from));
}

void web_buf_say(web_buf_t *b, const char *text, ...)
{
    va_list ap;
    va_start(ap, text);
    say(b, 0, text, ap);
    va_end(ap);
}

void web_buf_say_html(web_buf_t *b, const char *text, ...)
{
    va_list ap;
    va_start(ap, text);
    say(b, 1, text, ap);
    va_end(ap);
}

char *web_say_dup(const char *text, ...)
{
    web_buf_t b;
    va_list ap;
    web_buf_init(&b, 64 * 1024);
    va_start(ap, text);
    say(&b, 2, text, ap);
    va_end(ap);
    if (b.failed || b.p == NULL) {
        web_buf_free(&b);
        return strdup("");
    }
    return b.p;
}

void web_buf_hex_groups(web_buf_t *b, const uint8_t *d, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* Blocks of 4 hex digits (2 bytes), a space between: a person compares them block by block, and a line may
     * break at any space (the page also lets a block break: word-break). */
    for (size_t i = 0; i < len; i++) {
        char x[3] = {hex[d[i] >> 4], hex[d[i] & 15], '\0'};
        if (i > 0 && i % 2 == 0)
            web_buf_puts(b, " ");
        web_buf_puts(b, x);
    }
}

void web_buf_el(web_buf_t *b, const char *open, const char *text, const char *close)
{
    web_buf_puts(b, open);
    html_n(b, text, strlen(text));
    web_buf_puts(b, close);
}
