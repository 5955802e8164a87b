/*
 * fuzz_form.c - libFuzzer target of the pages' parsers of browser input (csc-api/web/web_form.c): web_form_parse()
 * for form bodies and query strings, web_cookie_get() for the Cookie header.
 *
 * Input: byte 0 chooses (even: a form or query string, odd: a Cookie header looked up under the pages' cookie
 * names, with byte 0 / 2 choosing the output buffer's size), the rest is the text. A form that parses has at most
 * WEB_FORM_FIELDS_MAX fields, distinct non-empty keys, values of their stated length; it is written again with
 * every byte escaped and must parse to the same fields. An input with a NUL byte is refused (web.h). A cookie
 * found fits its buffer and is what follows "name=" in the header.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "web.h"

static const char *const cookies[] = {"__Host-csc_approve", "__Host-csc_oauth", "csc_enroll", "s"};

/* Every byte of s as %XX. */
static size_t escape(char *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        out[3 * i] = '%';
        out[3 * i + 1] = hex[(uint8_t)s[i] >> 4];
        out[3 * i + 2] = hex[(uint8_t)s[i] & 15];
    }
    return 3 * len;
}

static void check_form(const char *in, size_t len)
{
    web_form_t f, g;
    if (web_form_parse(in, len, &f) != 0) {
        if (f.buf != NULL || f.n != 0)
            abort(); /* nothing left to free after a refusal */
        return;
    }
    if (memchr(in, '\0', len) != NULL || f.n > WEB_FORM_FIELDS_MAX)
        abort();
    char *again = malloc(3 * len + 2 * WEB_FORM_FIELDS_MAX + 1);
    size_t alen = 0;
    if (again == NULL)
        abort();
    for (size_t i = 0; i < f.n; i++) {
        const web_kv_t *kv = &f.kv[i];
        if (kv->key[0] == '\0' || strlen(kv->value) != kv->value_len || web_form_get(&f, kv->key) != kv->value)
            abort();
        if (i > 0)
            again[alen++] = '&';
        alen += escape(again + alen, kv->key, strlen(kv->key));
        again[alen++] = '=';
        alen += escape(again + alen, kv->value, kv->value_len);
    }
    /* Escaping triples the length: past the form limit only when the input was near it. */
    if (alen <= WEB_FORM_BYTES_MAX) {
        if (web_form_parse(again, alen, &g) != 0 || g.n != f.n)
            abort();
        for (size_t i = 0; i < f.n; i++)
            if (strcmp(g.kv[i].key, f.kv[i].key) != 0 || g.kv[i].value_len != f.kv[i].value_len ||
                memcmp(g.kv[i].value, f.kv[i].value, f.kv[i].value_len) != 0)
                abort();
        web_form_free(&g);
    }
    free(again);
    web_form_free(&f);
}

static void check_cookie(const char *in, size_t len, size_t outsz)
{
    char *out = malloc(outsz), pat[64];
    if (out == NULL)
        abort();
    for (size_t i = 0; i < sizeof(cookies) / sizeof(cookies[0]); i++) {
        if (web_cookie_get(in, len, cookies[i], out, outsz) != 0)
            continue;
        size_t vlen = strlen(out), plen = (size_t)snprintf(pat, sizeof(pat), "%s=", cookies[i]);
        char *whole = malloc(plen + vlen);
        if (whole == NULL || vlen >= outsz)
            abort();
        memcpy(whole, pat, plen);
        memcpy(whole + plen, out, vlen);
        if (memmem(in, len, whole, plen + vlen) == NULL)
            abort();
        free(whole);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *in = (const char *)data + 1;
    if (data[0] % 2 == 0)
        check_form(in, size - 1);
    else
        check_cookie(in, size - 1, data[0] / 2 % 2 ? 8 : 4096); /* 4096: more than any cookie the pages set */
    return 0;
}
