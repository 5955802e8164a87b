/* web/web_page.c - the one page frame of the OAuth pages and /approve, and the busy page. */
#include "web.h"

#define PAGE_MAX (256 * 1024)

void web_page(csc_t *c, csc_reply_t *reply, int status, const char *title, web_buf_t *body)
{
    const csc_config_t *cfg = &c->cfg;
    web_buf_t b;
    web_buf_init(&b, PAGE_MAX);
    web_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
    web_buf_html(&b, title);
    web_buf_puts(&b, " - ");
    web_buf_html(&b, cfg->name);
    web_buf_puts(&b, "</title><style>"
                     "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1b1f24;margin:0}"
                     "main{max-width:34rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;"
                     "box-shadow:0 1px 4px rgba(0,0,0,.15)}"
                     "h1{font-size:1.4rem;margin-top:0}.svc{color:#555;font-size:.9rem;margin-bottom:1.5rem}"
                     "label{display:block;margin-top:1rem;font-weight:600}"
                     "input{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;margin-top:.3rem;"
                     "border:1px solid #8a8f98;border-radius:4px}"
                     "button{margin-top:1.5rem;padding:.7rem 1.4rem;font-size:1rem;border-radius:4px;border:0;"
                     "background:#0b57d0;color:#fff;cursor:pointer}button.secondary{background:#5f6368;margin-left:.5rem}"
                     ".err{background:#fde7e9;border:1px solid #d93025;padding:.8rem;border-radius:4px;margin:1rem 0}"
                     "table{border-collapse:collapse;width:100%;margin-top:1rem}"
                     "th,td{text-align:left;padding:.4rem;border-bottom:1px solid #ddd;vertical-align:top}"
                     "code{word-break:break-all;font-size:.85rem}.env{color:#b3261e;font-weight:600}"
                     "</style></head><body><main>\n<p class=\"svc\">");
    web_buf_html(&b, cfg->name);
    if (cfg->environment != CSC_ENV_PRODUCTION)
        web_buf_puts(&b, " &middot; <span class=\"env\">test environment</span>");
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

void web_busy_page(csc_t *c, csc_reply_t *reply, const char *more_html)
{
    web_buf_t b;
    web_buf_init(&b, 4096);
    web_buf_puts(&b, "<p class=\"err\" role=\"alert\" id=\"error\">The service is busy. Go back and send the form "
                     "again in a moment.</p>");
    if (more_html != NULL)
        web_buf_puts(&b, more_html);
    web_page(c, reply, 503, "Try again in a moment", &b);
    web_buf_free(&b);
    reply->retry_after = CSC_BUSY_RETRY_AFTER;
}
