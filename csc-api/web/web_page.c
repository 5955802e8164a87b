/* web/web_page.c - the one page frame of the OAuth pages, /approve, /account and /enroll (in the request's language,
 * with the switch between the languages), and the busy page. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include "web.h"

#define PAGE_MAX (256 * 1024)

/* The switch: each language in its own name (an endonym reads the same on every page, so it is no message of the
 * catalogues), the current one not a link. A link keeps the page's path (and the
 * query the page needs to be shown again, the authorization request's); a page only a post shows gets a form. */
static void lang_switch(web_t *w, web_buf_t *b)
{
    static const char *const names[WEB_LANG_COUNT] = {"English", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"};
    static const int order[WEB_LANG_COUNT] = {WEB_LANG_JA, WEB_LANG_EN};
    char path[128] = "/";
    if (w->call != NULL && w->call->path_len > 0 && w->call->path_len < sizeof(path)) {
        memcpy(path, w->call->path, w->call->path_len);
        path[w->call->path_len] = '\0';
    }
    web_buf_el(b, "<nav class=\"lang\" aria-label=\"", WEB_T(w, "frame.language"), "\">");
    if (w->switch_csrf != NULL) {
        web_buf_puts(b, "<form method=\"post\" action=\"");
        web_buf_html(b, path);
        web_buf_puts(b, "\"><input type=\"hidden\" name=\"csrf\" value=\"");
        web_buf_html(b, w->switch_csrf);
        web_buf_puts(b, "\">");
    }
    for (int i = 0; i < WEB_LANG_COUNT; i++) {
        int l = order[i];
        const char *code = web_lang_code(l);
        if (i > 0)
            web_buf_puts(b, " | ");
        if (l == w->lang) {
            web_buf_printf(b, "<strong lang=\"%s\" id=\"lang-%s\">%s</strong>", code, code, names[l]);
        } else if (w->switch_csrf != NULL) {
            web_buf_printf(b, "<button type=\"submit\" name=\"lang\" value=\"%s\" lang=\"%s\" id=\"lang-%s\" "
                              "class=\"link\" formnovalidate>%s</button>", code, code, code, names[l]);
        } else {
            web_buf_puts(b, "<a href=\"");
            web_buf_html(b, path);
            web_buf_puts(b, "?");
            if (w->switch_query != NULL && w->switch_query_len > 0) {
                /* the query without its lang pairs, then ours */
                const char *p = w->switch_query, *end = p + w->switch_query_len;
                while (p < end) {
                    const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp != NULL ? amp : end;
                    if (!((size_t)(stop - p) >= 5 && memcmp(p, "lang=", 5) == 0) && stop > p) {
                        char *pair = strndup(p, (size_t)(stop - p));
                        if (pair == NULL) {
                            b->failed = 1;
                            return;
                        }
                        web_buf_html(b, pair);
                        web_buf_puts(b, "&amp;");
                        free(pair);
                    }
                    p = stop + 1;
                }
            }
            web_buf_printf(b, "lang=%s\" hreflang=\"%s\" lang=\"%s\" id=\"lang-%s\">%s</a>", code, code, code, code,
                           names[l]);
        }
    }
    if (w->switch_csrf != NULL)
        web_buf_puts(b, "</form>");
    web_buf_puts(b, "</nav>\n");
}

void web_page(web_t *w, int status, const char *title, web_buf_t *body)
{
    const csc_config_t *cfg = &w->c->cfg;
    csc_reply_t *reply = w->reply;
    web_buf_t b;
    /* the frame's own bytes, plus the body, which its own buffer bounded (Japanese text takes 3 bytes a character) */
    web_buf_init(&b, PAGE_MAX + (body != NULL ? body->len : 0));
    web_buf_printf(&b, "<!DOCTYPE html>\n<html lang=\"%s\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>",
                   web_lang_code(w->lang));
    web_buf_html(&b, title);
    web_buf_puts(&b, " - ");
    web_buf_html(&b, cfg->name);
    /* Japanese text needs Japanese fonts (a CJK fallback of a Latin font picks Chinese glyph forms) and breaks
     * between any two characters; a digest breaks only between its blocks. */
    web_buf_puts(&b, "</title><style>"
                     "body{font-family:system-ui,-apple-system,\"Segoe UI\",\"Hiragino Sans\",\"Hiragino Kaku Gothic "
                     "ProN\",\"Noto Sans CJK JP\",\"Noto Sans JP\",\"Yu Gothic\",Meiryo,sans-serif;background:#f4f5f7;"
                     "color:#1b1f24;margin:0;line-height:1.6}"
                     ":lang(ja) body,body:lang(ja){font-family:\"Hiragino Sans\",\"Hiragino Kaku Gothic ProN\","
                     "\"Noto Sans CJK JP\",\"Noto Sans JP\",\"Yu Gothic\",Meiryo,system-ui,sans-serif;"
                     "line-break:strict;overflow-wrap:break-word}"
                     "main{max-width:36rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;"
                     "box-shadow:0 1px 4px rgba(0,0,0,.15)}"
                     "h1{font-size:1.4rem;margin-top:0}.svc{color:#555;font-size:.9rem;margin-bottom:1.5rem}"
                     "nav.lang{float:right;font-size:.9rem}nav.lang form{display:inline}"
                     "button.link{background:none;border:0;color:#0b57d0;padding:0;margin:0;font-size:.9rem;"
                     "text-decoration:underline;cursor:pointer}"
                     "label{display:block;margin-top:1rem;font-weight:600}"
                     "input{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;margin-top:.3rem;"
                     "border:1px solid #8a8f98;border-radius:4px}"
                     "button{margin-top:1.5rem;padding:.7rem 1.4rem;font-size:1rem;border-radius:4px;border:0;"
                     "background:#0b57d0;color:#fff;cursor:pointer}button.secondary{background:#5f6368;margin-left:.5rem}"
                     ".err{background:#fde7e9;border:1px solid #d93025;padding:.8rem;border-radius:4px;margin:1rem 0}"
                     "table{border-collapse:collapse;width:100%;margin-top:1rem}"
                     "th,td{text-align:left;padding:.4rem;border-bottom:1px solid #ddd;vertical-align:top}"
                     "th{white-space:nowrap}"
                     "code{word-break:break-all;font-size:.85rem}.env{color:#b3261e;font-weight:600}"
                     "ul.digests{list-style:none;padding:0}ul.digests li{margin:.5rem 0}"
                     ".dlabel{display:block;font-weight:600}"
                     "code.hex{font-family:ui-monospace,\"DejaVu Sans Mono\",\"Noto Sans Mono CJK JP\",monospace;"
                     "word-break:normal;overflow-wrap:anywhere;word-spacing:.2em;letter-spacing:.02em}"
                     "</style></head><body><main>\n");
    lang_switch(w, &b);
    web_buf_puts(&b, "<p class=\"svc\">");
    web_buf_html(&b, cfg->name);
    if (cfg->environment != CSC_ENV_PRODUCTION)
        web_buf_el(&b, " &middot; <span class=\"env\">", WEB_T(w, "frame.test_environment"), "</span>");
    web_buf_puts(&b, "</p>\n<h1>");
    web_buf_html(&b, title);
    web_buf_puts(&b, "</h1>\n");
    if (body != NULL && body->p != NULL)
        web_buf_puts(&b, body->p);
    web_buf_puts(&b, "\n</main></body></html>\n");
    if (b.failed) {
        web_buf_free(&b);
        csc_reply_error(reply, 500, "server_error", "Page too large");
        return;
    }
    reply->status = status;
    reply->content_type = "text/html; charset=utf-8";
    reply->page = 1;
    if (status >= 400)
        reply->error = "invalid_request";
    web_buf_to_reply(&b, reply);
}

void web_busy_page(web_t *w, const char *more_html)
{
    web_buf_t b;
    web_buf_init(&b, 4096);
    web_buf_el(&b, "<p class=\"err\" role=\"alert\" id=\"error\">", WEB_T(w, "busy.message"), "</p>");
    if (more_html != NULL)
        web_buf_puts(&b, more_html);
    web_page(w, 503, WEB_T(w, "busy.title"), &b);
    web_buf_free(&b);
    w->reply->retry_after = CSC_BUSY_RETRY_AFTER;
}

/* ---- what the consent and the approval page show of a credential and a request -------------------------------- */

void web_buf_subject(web_buf_t *b, const stor_cred_t *cred)
{
    const unsigned char *p = cred->certs;
    X509 *x = cred->certs_len > 0 ? d2i_X509(NULL, &p, cred->certs_len) : NULL;
    const X509_NAME *name = x != NULL ? X509_get_subject_name(x) : NULL;
    int n = name != NULL ? X509_NAME_entry_count(name) : 0;
    if (n <= 0) {
        web_buf_puts(b, "-");
        X509_free(x);
        return;
    }
    /* Every attribute, in the certificate's order (country first, common name last), one a line: the whole
     * subject, as the person's certificate says it. */
    web_buf_puts(b, "<span class=\"subject\">");
    for (int i = 0; i < n; i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        const ASN1_OBJECT *o = X509_NAME_ENTRY_get_object(e);
        int nid = OBJ_obj2nid(o);
        char oid[80];
        const char *sn = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
        if (sn == NULL && OBJ_obj2txt(oid, sizeof(oid), o, 1) > 0)
            sn = oid;
        if (i > 0)
            web_buf_puts(b, "<br>");
        web_buf_html(b, sn != NULL ? sn : "?");
        web_buf_puts(b, "=");
        if (len >= 0 && utf8 != NULL) {
            char *s = strndup((const char *)utf8, (size_t)len);
            if (s != NULL)
                web_buf_html(b, s);
            free(s);
        }
        OPENSSL_free(utf8);
    }
    web_buf_puts(b, "</span>");
    X509_free(x);
}

void web_buf_pin_tries(web_t *w, web_buf_t *b, const stor_cred_t *cred)
{
    unsigned max = oauth_config(w->c->oauth)->max_failures;
    int64_t now = time(NULL);
    if (cred->locked_until > now) {
        web_buf_say(b, WEB_T(w, "cred.pin_locked"), (unsigned)((cred->locked_until - now + 59) / 60));
        return;
    }
    unsigned left = cred->failed_auths < max ? max - cred->failed_auths : 0;
    web_buf_say(b, WEB_T(w, "cred.pin_tries"), left, (unsigned)((oauth_config(w->c->oauth)->lock_seconds + 59) / 60));
}

char *web_duration(web_t *w, unsigned seconds)
{
    if (seconds >= 120 && seconds % 60 == 0)
        return web_say_dup(WEB_T(w, "time.minutes"), seconds / 60);
    if (seconds >= 120)
        return web_say_dup(WEB_T(w, "time.minutes_seconds"), seconds / 60, seconds % 60);
    return web_say_dup(WEB_T(w, "time.seconds"), seconds);
}

void web_buf_digests(web_t *w, web_buf_t *b, const char *hash_oid, const uint8_t *digests, size_t stride, uint32_t n,
                     uint32_t len, const char (*labels)[128], uint32_t n_labels)
{
    const csc_hash_alg_t *alg = csc_hash_by_oid(hash_oid);
    const char *name = alg == NULL ? "?" : alg->len == 32 ? "SHA-256" : alg->len == 48 ? "SHA-384" : "SHA-512";
    web_buf_puts(b, "<p>");
    if (n == 1)
        web_buf_say(b, WEB_T(w, "digest.only_one"), name);
    else
        web_buf_say(b, WEB_T(w, "digest.only_these"), (unsigned)n, name);
    web_buf_puts(b, "</p>\n<ul id=\"digests\" class=\"digests\">\n");
    for (uint32_t i = 0; i < n && !b->failed; i++) {
        /* The label first (what the person recognises), then the digest in blocks they can compare with the one
         * their application shows. */
        web_buf_puts(b, "<li>");
        web_buf_puts(b, "<span class=\"dlabel\">");
        if (labels != NULL && i < n_labels && labels[i][0])
            web_buf_html(b, labels[i]);
        else
            web_buf_say(b, WEB_T(w, "digest.unlabelled"), (unsigned)i + 1);
        web_buf_puts(b, "</span><code class=\"hex\">");
        web_buf_hex_groups(b, digests + (size_t)i * stride, len);
        /* and as the application sent it (base64), for an application that shows it that way */
        char b64[4 * ((STOR_DIGEST_LEN_MAX + 2) / 3) + 1];
        csc_b64_encode(digests + (size_t)i * stride, len, b64);
        web_buf_el(b, "</code><br><small>", WEB_T(w, "digest.base64"), " <code class=\"digest\">");
        web_buf_html(b, b64);
        web_buf_puts(b, "</code></small></li>\n");
    }
    web_buf_puts(b, "</ul>\n");
}
