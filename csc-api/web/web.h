/*
 * web/web.h - the browser-facing part of csc-api (prefix web_): the OAuth 2.0 authorization server
 * (web_oauth.c: the sign-in and consent pages of /oauth2/authorize, and the JSON endpoints /oauth2/token,
 * /oauth2/pushed_authorize, /oauth2/revoke and the RFC 8414 metadata, which share its request parsing and client
 * authentication), the approval page /approve (web_approve.c), the logo info.logo names (web_logo.c), and what
 * they share: the page frame and the busy page (web_page.c), forms, cookies and a bounded buffer (web_form.c), the
 * languages of the pages and their message catalogues (web_msg.c, messages/<lang>.txt).
 *
 * Private to csc-api: csc_route.c, the top file, dispatches to the *_is_path / *_handle pairs below (and the busy
 * page, web_logo_init); nothing in web/ is called by the CSC API methods, and nothing web/ calls is defined there.
 * Pages answer HTML (reply->page set: CSP without scripts, no framing); the JSON endpoints answer with
 * csc_reply_error's JSON (csc_core.c).
 */
#ifndef CSC_WEB_H
#define CSC_WEB_H

#include "csc_int.h"

/* What every handler in web/ carries: the service, the request (NULL for the busy page), the reply it fills, the
 * language its pages speak (web_lang_t), and what the language switch of the page frame does: by default a link to
 * the request's path with ?lang=; switch_query (the page's own query without its lang) keeps the query; switch_csrf
 * set makes it a form that posts lang with that CSRF token to the path (a page only a post shows, the consent). */
typedef struct web {
    csc_t *c;
    const csc_call_t *call;
    csc_reply_t *reply;
    int lang;
    const char *switch_query;
    size_t switch_query_len;
    const char *switch_csrf;
} web_t;

/* ---- forms, cookies, the bounded buffer (web_form.c) ---------------------------------------------------- */

#define WEB_FORM_FIELDS_MAX 32
#define WEB_FORM_BYTES_MAX (256 * 1024)

typedef struct web_kv {
    const char *key;
    const char *value;
    size_t value_len;
} web_kv_t;

typedef struct web_form {
    web_kv_t kv[WEB_FORM_FIELDS_MAX];
    size_t n;
    char *buf;
    size_t buf_len;
} web_form_t;

/* application/x-www-form-urlencoded (also query strings). Refuses bad escapes, NUL bytes,
 * repeated keys, more than WEB_FORM_FIELDS_MAX fields. Free (and wipe) with web_form_free. */
CSC_MUST_CHECK int web_form_parse(const char *s, size_t len, web_form_t *f);
const char *web_form_get(const web_form_t *f, const char *key);
void web_form_free(web_form_t *f);
/* Value of cookie name from a Cookie header; -1 if absent or too long. */
CSC_MUST_CHECK int web_cookie_get(const char *hdr, size_t len, const char *name, char *out, size_t outsz);

/* A growing buffer with a hard maximum; once over it, failed is set and nothing more is added. */
typedef struct web_buf {
    char *p;
    size_t len, cap, max;
    int failed;
} web_buf_t;

void web_buf_init(web_buf_t *b, size_t max);
void web_buf_puts(web_buf_t *b, const char *s);
CSC_MUST_CHECK int web_buf_reserve(web_buf_t *b, size_t n);      /* room for n more bytes now: 0, or -1 (failed is set) */
__attribute__((format(printf, 2, 3))) void web_buf_printf(web_buf_t *b, const char *fmt, ...);
void web_buf_html(web_buf_t *b, const char *s);   /* HTML-escaped */
void web_buf_urlenc(web_buf_t *b, const char *s); /* percent-encoded (RFC 3986 unreserved kept) */
void web_buf_free(web_buf_t *b);
void web_buf_to_reply(web_buf_t *b, csc_reply_t *reply);

/* ---- languages and the message catalogues (web_msg.c) --------------------------------------------------------- */

/* The languages of the pages; each has a catalogue web/messages/<code>.txt (compiled in). */
typedef enum { WEB_LANG_EN = 0, WEB_LANG_JA = 1, WEB_LANG_COUNT } web_lang_t;
/* The cookie that remembers a person's choice (the page's switch). */
#define WEB_LANG_COOKIE "lang"
#define WEB_MSG_ARGS_MAX 9

/* web_init: the handler's web_t, its language picked for the request: ?lang= (the switch; remembered in the cookie),
 * else the cookie, else Accept-Language (q-values honoured), else the configuration's default_lang (en). */
void web_init(web_t *w, csc_t *c, const csc_call_t *call, csc_reply_t *reply);
/* The language of call (web_init's choice); *chosen = 1 when the request chose it explicitly (?lang=). */
int web_lang_pick(const csc_t *c, const csc_call_t *call, int *chosen);
/* w->lang remembered: the lang cookie in reply->set_cookie2 (the first Set-Cookie stays the page's session's). */
void web_lang_remember(web_t *w);
/* The web_lang_t of a language tag ("ja", "ja-JP", "EN"), or -1; its code ("en", "ja"). */
int web_lang_parse(const char *s, size_t len);
const char *web_lang_code(int lang);

/* The text of key in lang (English if only English has it, the key itself if none: unit_web_messages prevents both). */
const char *web_msg(int lang, const char *key);
#define WEB_T(w, key) web_msg((w)->lang, (key))
/* A message (a catalogue's text) into the page: the text HTML-escaped, each %s argument HTML-escaped (web_buf_say) or
 * HTML already (web_buf_say_html: the caller escaped what it holds), %u an unsigned. */
void web_buf_say(web_buf_t *b, const char *text, ...);
void web_buf_say_html(web_buf_t *b, const char *text, ...);
/* A message formatted as plain text (nothing escaped: it is escaped where it is shown), malloc'd (never NULL but out
 * of memory, then ""). */
char *web_say_dup(const char *text, ...);
/* open (HTML), text HTML-escaped (<, >, &, "; the pages' attributes are all double-quoted), close (HTML): an element
 * around a message. */
void web_buf_el(web_buf_t *b, const char *open, const char *text, const char *close);
/* A digest as a person compares it: hex in blocks of 4 digits, a space between them (wrappable). */
void web_buf_hex_groups(web_buf_t *b, const uint8_t *d, size_t len);

/* For the unit test and the parser's first use: one catalogue's bytes as compiled in; parse it in place (text is cut
 * into keys and texts; *out sorted by key, free() it), 0 or -1 with the line in err; the placeholders of a text
 * (types[i] 's' or 'u' of argument i, *n of them), 0 or -1 when malformed (unknown conversion, a gap, positional and
 * sequential mixed). */
typedef struct web_msg_entry {
    const char *key;
    const char *text;
} web_msg_entry_t;
const char *web_catalogue_text(int lang);
int web_msg_parse(char *text, web_msg_entry_t **out, size_t *n, char *err, size_t errsz);
int web_msg_placeholders(const char *text, char types[WEB_MSG_ARGS_MAX], size_t *n);

/* ---- the page frame (web_page.c) ------------------------------------------------------------------------ */

/* The pages' frame in w->lang: <html lang>, title, the service's name (and "test environment" outside production),
 * the language switch, CSS (a font stack with Japanese fonts); body is the page's own HTML (may be NULL). Sets
 * status, content type and reply->page (CSP, no framing); a status >= 400 also sets reply->error "invalid_request".
 * A frame over the buffer's maximum becomes a 500 JSON error. */
void web_page(web_t *w, int status, const char *title, web_buf_t *body);
/* 503 "Try again in a moment" with Retry-After (CSC_BUSY_RETRY_AFTER): too many password/PIN checks at once, or a
 * full auth queue. more_html (may be NULL) follows the message. */
void web_busy_page(web_t *w, const char *more_html);

/* What the consent and approval pages show (web_page.c): the certificate's whole subject, one attribute a line
 * (HTML); how many wrong PINs the credential still takes before it locks (its failure counter, as credentials/
 * authorize counts it), or how long its lock lasts; a duration in words (plain text); the document digests, each with its label
 * first and in hex blocks (digest i at digests + i * stride, len bytes). */
void web_buf_subject(web_buf_t *b, const stor_cred_t *cred);
void web_buf_pin_tries(web_t *w, web_buf_t *b, const stor_cred_t *cred);
char *web_duration(web_t *w, unsigned seconds); /* plain text, malloc'd (free it) */
void web_buf_digests(web_t *w, web_buf_t *b, const char *hash_oid, const uint8_t *digests, size_t stride, uint32_t n,
                     uint32_t len, const char (*labels)[128], uint32_t n_labels);

/* ---- the OAuth 2.0 authorization server (web_oauth.c) ------------------------------------------------- */

int web_oauth_is_path(const char *path, size_t len);
void web_oauth_handle(csc_t *c, const csc_call_t *call, csc_reply_t *reply);

/* ---- what the authorize page and PAR share (web_oauth.c) ---------------------------------------------- */

#define RAR_TYPE_URI "https://cloudsignatureconsortium.org/2025/credential"
#define RAR_ERR "invalid_authorization_details"

/* An OAuth error of a request's parameters: error code and description (static strings). */
typedef struct authz_err {
    const char *error;
    const char *desc;
} authz_err_t;

/* authorization_details (RFC 9396): parsed, exactly one credential object; 0, or -1 with e set. */
CSC_MUST_CHECK int web_rar_parse(const char *json, yajl_val *out, authz_err_t *e);
/* The client of an authorization request (client_id, redirect_uri): 0, or -1 with *problem set. */
CSC_MUST_CHECK int web_authz_client(web_t *w, const web_form_t *q, stor_client_t *client, oauth_authz_request_t *req,
                     const char **problem);
/* The rest of the authorization request's parameters into req: 0, or -1 with e set. */
CSC_MUST_CHECK int web_authz_parse(web_t *w, const web_form_t *q, const stor_client_t *client, oauth_authz_request_t *req,
                    authz_err_t *e);

/* ---- its JSON endpoints (web_token.c), called by web_oauth_handle ----------------------------------- */

void web_token_post(web_t *w);   /* POST /oauth2/token */
void web_revoke_post(web_t *w);  /* POST /oauth2/revoke */
void web_par_post(web_t *w);     /* POST /oauth2/pushed_authorize */
void web_metadata(web_t *w);     /* GET /.well-known/oauth-authorization-server */

/* ---- the approval page (web_approve.c) ---------------------------------------------------------------- */

/* A decision of a page is csc-sam's (web_oauth.c): CONSENT (ref NULL; code: the authorization code, "" unless
 * approved) or APPROVE (ref: the pending request as the page names it). csc-sam reads the session sid itself, checks
 * the form's CSRF token and the PIN. @return OAUTH_OK, or the oauth/ outcome the refusal stands for: OAUTH_ERR_DENIED
 * (wrong PIN), _INVALID (session, request), _EXPIRED, _LOCKED, _DISABLED, _BUSY, _INVAL (numSignatures),
 * _STORAGE (csc-sam not reached: nothing decided) */
int web_sam_decision(web_t *w, unsigned op, const char *sid, const char *csrf, const uint8_t ref[16], int approve,
                     const char *pin, size_t pin_len, char code[OAUTH_TOKEN_BUFLEN]);

/* The pages' sign-in is csc-sam's (LOGIN, web_oauth.c): the address's rate limit checked first (OAUTH_ERR_RATE, and a
 * failure counted on it), then csc-sam checks name, password and TOTP code and stores the session for req.
 * @return OAUTH_OK (sid, csrf set), OAUTH_ERR_DENIED (wrong, locked, suspended, enrolling: one answer), _RATE, _BUSY,
 * _FULL, _INVALID (a request csc-sam refused), _STORAGE (csc-sam not reached or unavailable) */
int web_sam_login(web_t *w, const oauth_authz_request_t *req, const char *user, const char *pw, const char *otp,
                  char sid[OAUTH_TOKEN_BUFLEN], char csrf[OAUTH_TOKEN_BUFLEN]);

int web_approve_is_path(const char *path, size_t len);

/* GET/POST /approve: sign in (password + TOTP), list the user's pending requests, approve (PIN) or refuse. */

void web_approve_handle(csc_t *c, const csc_call_t *call, csc_reply_t *reply);
/* What the account page's part (web_account.c) uses of the page it belongs to: a form posting to path with the
 * session's CSRF token, the signed-in page (the user, a note or error, the page's list), the busy page. */
void web_approve_form(web_buf_t *b, const char *path, const char *csrf);
void web_approve_list(web_t *w, const oauth_session_view_t *v, const char *note, int is_error);
void web_approve_busy(web_t *w);

/* ---- the account page's own part (web_account.c), called by web_approve.c on /account ------------------ */

/* The user's credentials (own and delegated) and the forms of the account page. */
void web_account_list(web_t *w, const oauth_session_view_t *v, web_buf_t *b);
/* The session, address and form token every account op carries: csc-sam reads the session itself. */
void web_account_put_session(web_t *w, csc_sam_call_t *call, const char *sid, const oauth_session_view_t *v);
/* A signed-in post of /account (session and CSRF token checked by the caller, and again by csc-sam): 1 = handled. */
int web_account_action(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v, const char *action);


/* ---- /account's backups, restore requests and recent activity (web_account_view.c) ---- */
/* Render the sections (after the credentials table). */
void web_account_view(web_t *w, const oauth_session_view_t *v, web_buf_t *b);
/* The sections' form actions ("restore"): 1 when handled (the page answered), else 0. */
int web_account_view_action(web_t *w, const web_form_t *f, const char *sid, const oauth_session_view_t *v,
                            const char *action);


/* ---- the enrollment page (web_enroll.c) ---------------------------------------------------------------- */

int web_enroll_is_path(const char *path, size_t len);
/* GET/POST /enroll: name + enrollment code (ENROLL_BEGIN), then password, first TOTP code, PINs (ENROLL_FINISH). */
void web_enroll_handle(csc_t *c, const csc_call_t *call, csc_reply_t *reply);
/* A TOTP secret as /enroll and /account show it once: its QR code (inline SVG, id totp-qr), the base32 text (id
 * totp-secret) and the otpauth URI, for user. 0, or -1 (nothing added). */
int web_totp_secret(web_t *w, web_buf_t *b, const char *user, const uint8_t *secret, size_t len);

/* ---- the logo info.logo names (web_logo.c) ---- */
#define WEB_LOGO_MAX (256 * 1024)
/* Read an image file (at most WEB_LOGO_MAX bytes; PNG, JPEG, GIF or WebP by its magic bytes, consistent with the
 * name's extension). 0, or -1 with a message in err. */
CSC_MUST_CHECK int web_logo_read(const char *file, uint8_t **data, size_t *len, const char **ext, const char **content_type,
                  char *err, size_t err_sz);
/* From cfg.logo / cfg.logo_file: the URL info.logo publishes, and what GET /logo.<ext> serves. 0 or -1 (stderr). */
CSC_MUST_CHECK int web_logo_init(csc_t *c);
int web_logo_is_path(const char *path, size_t len);
void web_logo_handle(csc_t *c, const csc_call_t *call, csc_reply_t *reply);

#endif
