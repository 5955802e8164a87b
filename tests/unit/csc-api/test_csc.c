/* Unit tests of csc-api pieces that need no storage or HSM: base64, JSON limits, algorithms,
 * PSS parameters, routing and the error model. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "csc_int.h"
#include "web/web.h"

static csc_t *svc;

static void setup(void)
{
    csc_config_t cfg = {.name = "t", .logo = "https://logo.example/l.png", .region = "JP", .lang = "en", .description = "d",
                        .public_url = "https://localhost:8443",
                        .specs = "2.0.0.2", .environment = CSC_ENV_TEST, .max_body = 4096, .max_hashes = 4,
                        .max_depth = 8};
    ck_assert_int_eq(csc_new(&cfg, NULL, NULL, NULL, &svc), 0);
}

static void teardown(void)
{
    csc_free(svc);
}

/* ---- base64 ---------------------------------------------------------------- */

static long dec(const char *s, uint8_t *out)
{
    return csc_b64_decode(s, strlen(s), out, 64);
}

START_TEST(t_b64_decode)
{
    uint8_t out[64];
    ck_assert_int_eq(dec("Zm9vYmFy", out), 6);
    ck_assert(memcmp(out, "foobar", 6) == 0);
    ck_assert_int_eq(dec("Zm9vYg==", out), 4);
    ck_assert_int_eq(dec("Zm9vYg", out), 4);     /* unpadded */
    ck_assert_int_eq(dec("Zm9vYmE=", out), 5);
    ck_assert_int_eq(dec("-_-_", out), 3);       /* URL-safe */
    ck_assert_int_eq(out[0], 0xfb);
    ck_assert_int_eq(dec("+/+/", out), 3);
    ck_assert_int_eq(dec("+_", out), -1);        /* mixed alphabets */
    ck_assert_int_eq(dec("Zm9vY", out), -1);     /* impossible length */
    ck_assert_int_eq(dec("Zm9v Yg==", out), -1); /* whitespace */
    ck_assert_int_eq(dec("Zm9vYh==", out), -1);  /* non-zero trailing bits */
    ck_assert_int_eq(dec("Zm=vYg==", out), -1);
    ck_assert_int_eq(dec("Zg=", out), -1);       /* partial padding */
    ck_assert_int_eq(dec("", out), -1);
    uint8_t small[2];
    ck_assert_int_eq(csc_b64_decode("Zm9v", 4, small, sizeof(small)), -1); /* does not fit */
}
END_TEST

START_TEST(t_b64_roundtrip)
{
    uint8_t in[64], out[64];
    char enc[100];
    for (size_t n = 0; n < sizeof(in); n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(i * 37 + n);
        size_t len = csc_b64_encode(in, n, enc);
        ck_assert_uint_eq(len, 4 * ((n + 2) / 3));
        ck_assert_uint_eq(strlen(enc), len);
        if (n > 0) {
            ck_assert_int_eq(csc_b64_decode(enc, len, out, sizeof(out)), (long)n);
            ck_assert(memcmp(in, out, n) == 0);
        }
    }
}
END_TEST

/* ---- calls through csc_handle (no storage needed for these paths) ------------ */

/* Reply bodies are not NUL-terminated. */
static const void *body_has(const csc_reply_t *r, const char *needle)
{
    return memmem(r->body, r->body_len, needle, strlen(needle));
}

static csc_reply_t call(const char *method, const char *path, const char *auth, const char *body)
{
    csc_call_t c = {.http_method = method, .http_method_len = strlen(method), .path = path,
                    .path_len = strlen(path), .authorization = auth, .authorization_len = auth ? strlen(auth) : 0,
                    .body = (const uint8_t *)body, .body_len = body ? strlen(body) : 0, .client = "127.0.0.1"};
    csc_reply_t r;
    csc_handle(svc, &c, &r);
    return r;
}

static void expect_error(csc_reply_t r, int status, const char *error, const char *desc)
{
    ck_assert_int_eq(r.status, status);
    ck_assert_ptr_nonnull(r.body);
    char *copy = strndup(r.body, r.body_len);
    char errbuf[64];
    yajl_val v = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    ck_assert_ptr_nonnull(v);
    const char *pe[] = {"error", NULL}, *pd[] = {"error_description", NULL};
    yajl_val e = yajl_tree_get(v, pe, yajl_t_string), d = yajl_tree_get(v, pd, yajl_t_string);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(d);
    ck_assert_str_eq(e->u.string, error);
    if (desc != NULL)
        ck_assert_str_eq(d->u.string, desc);
    yajl_tree_free(v);
    free(copy);
    csc_reply_free(&r);
}

START_TEST(t_info)
{
    csc_reply_t r = call("POST", "/csc/v2/info", NULL, "{}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(body_has(&r, "\"specs\":\"2.0.0.2\""));
    ck_assert_ptr_nonnull(body_has(&r, "[test environment]"));
    ck_assert_ptr_nonnull(body_has(&r, "\"signatures/signHash\""));
    ck_assert_ptr_nonnull(body_has(&r, "\"1.2.840.113549.1.1.10\""));
    csc_reply_free(&r);
    r = call("POST", "/csc/v2/info", NULL, " \n");
    ck_assert_int_eq(r.status, 200); /* empty body = {} */
    csc_reply_free(&r);
}
END_TEST

START_TEST(t_routing)
{
    expect_error(call("GET", "/csc/v2/info", NULL, NULL), 405, "invalid_request", NULL);
    expect_error(call("POST", "/csc/v2/nope", NULL, "{}"), 404, "invalid_request", NULL);
    expect_error(call("POST", "/csc/v2/info/x", NULL, "{}"), 404, "invalid_request", NULL);
    /* offered only with an otp_sender (none here): 501 before authentication */
    expect_error(call("POST", "/csc/v2/credentials/getChallenge", NULL, "{}"), 501, "not_implemented", NULL);
    ck_assert(csc_is_api_path("/csc/v2/info", 12));
    ck_assert(csc_is_api_path("/csc/v1/info", 12));
    ck_assert(csc_is_api_path("/oauth2/token", 13));
    ck_assert(!csc_is_api_path("/csc/v3/info", 12));
    /* v1.0.4.0 surface: its own info, its own set of methods */
    csc_reply_t r = call("POST", "/csc/v1/info", NULL, "{}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(body_has(&r, "\"specs\":\"1.0.4.0\""));
    ck_assert_ptr_null(body_has(&r, "signAlgorithms"));
    csc_reply_free(&r);
    expect_error(call("POST", "/csc/v1/signatures/signDoc", NULL, "{}"), 404, "invalid_request", NULL);
    /* not offered without otp_sender: 501 before any authentication */
    expect_error(call("POST", "/csc/v1/credentials/sendOTP", NULL, "{}"), 501, "not_implemented", NULL);
    expect_error(call("POST", "/csc/v2/credentials/getChallenge", NULL, "{}"), 501, "not_implemented", NULL);
    expect_error(call("POST", "/csc/v2/credentials/sendOTP", NULL, "{}"), 404, "invalid_request", NULL);
}
END_TEST

START_TEST(t_json_limits)
{
    static const char *bad[] = {
        "{",        "[]",          "\"s\"",           "{\"a\":1}/* c */", "{\"a\":1,\"a\":2}",
        "{\"a\":\"x\\u0000\"}", "{\"a\":[[[[[[[[[[1]]]]]]]]]]}", "{\"a\":1}}", "{\"a\":\"\x01\"}", "{} {}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(call("POST", "/csc/v2/info", NULL, bad[i]), 400, "invalid_request", NULL);
    char *big = malloc(5000);
    memset(big, ' ', 4999);
    big[0] = '{';
    big[4998] = '}';
    big[4999] = '\0';
    expect_error(call("POST", "/csc/v2/info", NULL, big), 413, "invalid_request", NULL);
    free(big);
    /* Nesting up to the limit is fine. */
    csc_reply_t r = call("POST", "/csc/v2/info", NULL, "{\"x\":[[[[[[[1]]]]]]]}");
    ck_assert_int_eq(r.status, 200);
    csc_reply_free(&r);
}
END_TEST

START_TEST(t_bearer_header)
{
    expect_error(call("POST", "/csc/v2/credentials/list", NULL, "{}"), 401, "invalid_request", NULL);
    expect_error(call("POST", "/csc/v2/credentials/list", "Basic dTpw", "{}"), 400, "invalid_request",
                 "Malformed authorization header.");
    expect_error(call("POST", "/csc/v2/credentials/list", "Bearer ", "{}"), 400, "invalid_request",
                 "Malformed authorization header.");
    expect_error(call("POST", "/csc/v2/credentials/list", "Bearer a b", "{}"), 400, "invalid_request",
                 "Malformed authorization header.");
    csc_reply_t r = call("POST", "/csc/v2/credentials/list", NULL, "{}");
    ck_assert_str_eq(r.www_authenticate, "Bearer");
    csc_reply_free(&r);
}
END_TEST

START_TEST(t_login_header)
{
    expect_error(call("POST", "/csc/v2/auth/login", NULL, "{}"), 401, "invalid_request",
                 "Malformed authentication parameter.");
    expect_error(call("POST", "/csc/v2/auth/login", "Basic bm9jb2xvbg==", "{}"), 400, "invalid_request",
                 "Malformed username-password.");
    expect_error(call("POST", "/csc/v2/auth/login", "Basic OnB3", "{}"), 400, "invalid_request",
                 "Malformed username-password."); /* ":pw": empty user */
    expect_error(call("POST", "/csc/v2/auth/login", "Basic ***", "{}"), 400, "invalid_request",
                 "Malformed username-password.");
    expect_error(call("POST", "/csc/v2/auth/login", NULL, "{\"refresh_token\":5}"), 400, "invalid_request",
                 "Invalid string parameter: refresh_token");
}
END_TEST

/* ---- algorithms ------------------------------------------------------------------ */

START_TEST(t_algorithms)
{
    ck_assert_int_eq(csc_hash_by_oid("2.16.840.1.101.3.4.2.1")->len, 32);
    ck_assert_int_eq(csc_hash_by_oid("2.16.840.1.101.3.4.2.3")->len, 64);
    ck_assert_ptr_null(csc_hash_by_oid("1.3.14.3.2.26")); /* SHA-1: below the floor */
    const csc_sign_alg_t *a = csc_sign_alg_by_oid("1.2.840.10045.4.3.3");
    ck_assert_int_eq(a->key_type, STOR_KEY_EC);
    ck_assert_int_eq(a->md_nid, NID_sha384);
    ck_assert_int_eq(csc_sign_alg_by_oid("1.2.840.113549.1.1.1")->md_nid, 0);
    const csc_sign_alg_t *algs[16];
    ck_assert_uint_eq(csc_sign_algs_for_key(STOR_KEY_RSA, algs, 16), 5);
    ck_assert_uint_eq(csc_sign_algs_for_key(STOR_KEY_EC, algs, 16), 3);
    ck_assert_ptr_null(csc_sign_alg_by_oid("1.2.840.10045.4.3.1")); /* ecdsa-with-SHA224 */
}
END_TEST

static int pss(const char *hex, hsm_sign_params_t *p)
{
    uint8_t der[128];
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        der[i] = (uint8_t)v;
    }
    return csc_pss_params_parse(der, n, p);
}

START_TEST(t_pss_params)
{
    hsm_sign_params_t p;
    /* SHA-256, MGF1-SHA-256, salt 32 */
    ck_assert_int_eq(pss("3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402"
                         "010500a203020120", &p), 0);
    ck_assert_int_eq(p.md_nid, NID_sha256);
    ck_assert_int_eq(p.mgf1_md_nid, NID_sha256);
    ck_assert_uint_eq(p.salt_len, 32);
    /* SHA-512 with salt absent: default 20 */
    ck_assert_int_eq(pss("302fa00f300d06096086480165030402030500a11c301a06092a864886f70d010108300d06096086480165030402"
                         "030500", &p), 0);
    ck_assert_int_eq(p.md_nid, NID_sha512);
    ck_assert_uint_eq(p.salt_len, 20);
    ck_assert_int_eq(pss("3000", &p), -1); /* all defaults = SHA-1 */
    ck_assert_int_eq(pss("3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402"
                         "010500a2030201", &p), -1); /* truncated */
    /* trailerField 2 */
    ck_assert_int_eq(pss("3039a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402"
                         "010500a203020120a303020102", &p), -1);
}
END_TEST

START_TEST(t_cert_status)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    time_t now = 1800000000;
    c->cert_not_before = now - 10;
    c->cert_not_after = now + 10;
    ck_assert_str_eq(csc_cred_cert_status(c, now), "valid");
    ck_assert_str_eq(csc_cred_cert_status(c, now + 11), "expired");
    ck_assert_str_eq(csc_cred_cert_status(c, now - 11), "expired"); /* not yet valid */
    c->cert_not_after = 0; /* no validity kept and no certificate: never signable */
    ck_assert_str_eq(csc_cred_cert_status(c, now), "expired");
    free(c);
}
END_TEST

/* csc_req.c: the table, a call site's overrides before it, 503 for what neither names; csc_hex. */
/* csc-sam's refusals read through the same table (csc_err_sam), and a service without a SAM answers 503. */
START_TEST(t_sam_refusals)
{
    csc_err_t e;
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(csc_err_sam(&e, CSC_ABOUT_SAD, SAM_REFUSE_EXPIRED, NULL), -1);
    ck_assert_int_eq(e.status, 400);
    ck_assert_str_eq(e.description, "SAD expired");
    csc_err_sam(&e, CSC_ABOUT_SAD, SAM_REFUSE_NOT_BOUND, NULL);
    ck_assert_str_eq(e.description, "Hash is not authorized by the SAD.");
    csc_err_sam(&e, CSC_ABOUT_SAD, SAM_REFUSE_UNAUTHORIZED, NULL);
    ck_assert_str_eq(e.description, "Invalid parameter SAD");
    csc_err_sam(&e, CSC_ABOUT_TOKEN, SAM_REFUSE_UNAUTHORIZED, NULL);
    ck_assert_int_eq(e.status, 401);
    ck_assert_str_eq(e.error, "invalid_token");
    csc_err_sam(&e, CSC_ABOUT_CREDENTIAL, SAM_REFUSE_NOT_FOUND, NULL);
    ck_assert_str_eq(e.description, "Invalid parameter credentialID");
    csc_err_sam(&e, CSC_ABOUT_CREDENTIAL, SAM_REFUSE_DISABLED, NULL);
    ck_assert_str_eq(e.description, "The credential identified by credentialID is disabled");
    /* SIGN's refusals for the certificate's revocation status: the client's 400 (csc_sam_sign words them) */
    static const uint32_t cert[] = {SAM_REFUSE_REVOKED, SAM_REFUSE_SUSPENDED, SAM_REFUSE_CERT_UNKNOWN};
    for (size_t i = 0; i < sizeof(cert) / sizeof(cert[0]); i++) {
        csc_err_sam(&e, CSC_ABOUT_CREDENTIAL, cert[i], NULL);
        ck_assert_int_eq(e.status, 400);
        ck_assert_str_eq(e.error, "invalid_request");
    }
    csc_err_sam(&e, CSC_ABOUT_HANDLE, SAM_REFUSE_UNAUTHORIZED, NULL);
    ck_assert_str_eq(e.error, "invalid_authentication_data");
    /* an override keyed on the oauth code the refusal stands for (credentials/authorize v1: invalid_pin) */
    static const csc_err_row_t over[] = {{OAUTH_ERR_DENIED, 400, "invalid_pin", "The PIN is invalid", 0},
                                         {0, 0, NULL, NULL, 0}};
    csc_err_sam(&e, CSC_ABOUT_CREDENTIAL, SAM_REFUSE_UNAUTHORIZED, over);
    ck_assert_str_eq(e.error, "invalid_pin");
    /* what is never the client's doing */
    static const uint32_t ours[] = {SAM_REFUSE_BAD_MESSAGE, SAM_REFUSE_UNAVAILABLE, SAM_REFUSE_INTERNAL,
                                    SAM_REFUSE_FORBIDDEN, SAM_REFUSE_NOT_OFFERED, SAM_REFUSE_EXISTS, 999};
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
        csc_err_sam(&e, CSC_ABOUT_SAD, ours[i], NULL);
        ck_assert_int_eq(e.status, 503);
    }
    csc_err_sam(&e, CSC_ABOUT_CREDENTIAL, SAM_REFUSE_BUSY, NULL);
    ck_assert_int_eq(e.status, 503);

    /* no SAM (the fixture's service has none): 503 at once, nothing to free but the call */
    csc_sam_call_t call;
    ck_assert_int_eq(csc_sam_begin(svc, &call, SAM_OP_HELLO, &e), -1);
    ck_assert_int_eq(e.status, 503);
    ck_assert_str_eq(e.error, "temporarily_unavailable");
    csc_sam_end(&call);
}
END_TEST

START_TEST(t_error_table)
{
    csc_err_t e;
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(csc_err_oauth(&e, CSC_ABOUT_TOKEN, OAUTH_ERR_EXPIRED, NULL), -1);
    ck_assert_int_eq(e.status, 401);
    ck_assert_str_eq(e.error, "expired_token");
    csc_err_oauth(&e, CSC_ABOUT_SAD, OAUTH_ERR_EXPIRED, NULL);
    ck_assert_int_eq(e.status, 400);
    ck_assert_str_eq(e.error, "invalid_request");
    ck_assert_str_eq(e.description, "SAD expired");
    csc_err_oauth(&e, CSC_ABOUT_HANDLE, OAUTH_ERR_DENIED, NULL);
    ck_assert_str_eq(e.error, "invalid_authentication_data");
    /* a code the subject has no row for */
    csc_err_oauth(&e, CSC_ABOUT_SAD, OAUTH_ERR_DENIED, NULL);
    ck_assert_int_eq(e.status, 503);
    ck_assert_str_eq(e.error, "temporarily_unavailable");
    ck_assert_uint_eq(e.retry_after, 0);
    /* an override wins over the table, and only for its code (credentials/authorize's rows, csc_creds.c) */
    static const csc_err_row_t over[] = {
        {OAUTH_ERR_DENIED, 400, "invalid_authentication_data", "The authentication data is invalid", 0},
        {OAUTH_ERR_BUSY, CSC_BUSY_ROW}, {0, 0, NULL, NULL, 0}};
    csc_err_oauth(&e, CSC_ABOUT_CREDENTIAL, OAUTH_ERR_DENIED, over);
    ck_assert_int_eq(e.status, 400);
    ck_assert_str_eq(e.error, "invalid_authentication_data");
    csc_err_oauth(&e, CSC_ABOUT_CREDENTIAL, OAUTH_ERR_BUSY, over);
    ck_assert_uint_eq(e.retry_after, CSC_BUSY_RETRY_AFTER);
    csc_err_oauth(&e, CSC_ABOUT_CREDENTIAL, OAUTH_ERR_LOCKED, over);
    ck_assert_int_eq(e.status, 400);
    ck_assert_str_eq(e.description, "Credential locked");
    ck_assert_uint_eq(e.retry_after, 0);
    /* a user, owner or credential not active: the table's row, also past authorize's overrides */
    csc_err_oauth(&e, CSC_ABOUT_CREDENTIAL, OAUTH_ERR_DISABLED, over);
    ck_assert_int_eq(e.status, 400);
    ck_assert_str_eq(e.error, "invalid_request");
    ck_assert_str_eq(e.description, "The credential identified by credentialID is disabled");
    csc_err_hsm(&e, HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(e.status, 503);
    csc_err_hsm(&e, HSM_ERR_INTERNAL);
    ck_assert_int_eq(e.status, 500);
    ck_assert_str_eq(e.error, "server_error");

    const uint8_t bytes[] = {0x00, 0x0f, 0xa5, 0xff};
    char hex[2 * sizeof(bytes) + 1];
    pki_hex(bytes, sizeof(bytes), hex);
    ck_assert_str_eq(hex, "000fa5ff");
    pki_hex(bytes, 0, hex);
    ck_assert_str_eq(hex, "");
}
END_TEST

START_TEST(t_form)
{
    web_form_t f;
    const char *q = "a=1&b=x%20y+z&c=&d&e=%C3%A9";
    ck_assert_int_eq(web_form_parse(q, strlen(q), &f), 0);
    ck_assert_str_eq(web_form_get(&f, "a"), "1");
    ck_assert_str_eq(web_form_get(&f, "b"), "x y z");
    ck_assert_str_eq(web_form_get(&f, "c"), "");
    ck_assert_str_eq(web_form_get(&f, "d"), "");
    ck_assert_str_eq(web_form_get(&f, "e"), "\xc3\xa9");
    ck_assert_ptr_null(web_form_get(&f, "z"));
    web_form_free(&f);
    static const char *bad[] = {"a=1&a=2", "a=%zz", "a=%4", "a=%00", "=x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(web_form_parse(bad[i], strlen(bad[i]), &f), -1);
        web_form_free(&f);
    }
    static const char raw_nul[] = "pin\0x=1234&a=b"; /* a raw NUL, not only %00: it would cut "pin\0x" to "pin" */
    ck_assert_int_eq(web_form_parse(raw_nul, sizeof(raw_nul) - 1, &f), -1);
    web_form_free(&f);
    char many[400] = "";
    for (int i = 0; i < 40; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "k%d=v&", i);
    ck_assert_int_eq(web_form_parse(many, strlen(many), &f), -1); /* more than WEB_FORM_FIELDS_MAX */
    web_form_free(&f);
}
END_TEST

START_TEST(t_cookie_and_escaping)
{
    char v[64];
    const char *h = "a=1; csc_oauth=abc-_DEF; other=2";
    ck_assert_int_eq(web_cookie_get(h, strlen(h), "csc_oauth", v, sizeof(v)), 0);
    ck_assert_str_eq(v, "abc-_DEF");
    ck_assert_int_eq(web_cookie_get(h, strlen(h), "csc_oaut", v, sizeof(v)), -1);
    ck_assert_int_eq(web_cookie_get("x_csc_oauth=1", 13, "csc_oauth", v, sizeof(v)), -1);
    web_buf_t b;
    web_buf_init(&b, 64);
    web_buf_html(&b, "<a href=\"x\">'&'</a>");
    ck_assert_str_eq(b.p, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    web_buf_free(&b);
    web_buf_init(&b, 64);
    web_buf_urlenc(&b, "a b&c=d/é~");
    ck_assert_str_eq(b.p, "a%20b%26c%3Dd%2F%C3%A9~");
    web_buf_free(&b);
    web_buf_init(&b, 8);
    web_buf_puts(&b, "0123456789");
    ck_assert_int_eq(b.failed, 1); /* the bound holds */
    web_buf_free(&b);
}
END_TEST

/* ---- response_uri of asynchronous requests and the otp_sender setting ------------------------------------ */

START_TEST(t_response_uri)
{
    static const char *ok[] = {"https://app.example/cb", "https://app.example:8443/cb?x=1", "https://[2001:db8::1]/x",
                               "https://app.example", "http://localhost:9/cb", "http://127.0.0.1/x", "http://[::1]:80/"};
    static const char *bad[] = {"", "ftp://app.example/", "http://app.example/cb", "https://user@app.example/",
                                "https://app.example/#frag", "https://app.example:0/", "https://app.example:65536/",
                                "https://app.example:x/", "https://app example/", "https:///x", "https://[::1/",
                                "https://app.example?x", "javascript:alert(1)", "http://localhost.evil.example/"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(csc_response_uri_ok(svc, ok[i]), "refused %s", ok[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!csc_response_uri_ok(svc, bad[i]), "accepted %s", bad[i]);
    char longer[CSC_URI_MAX + 16] = "https://app.example/";
    memset(longer + strlen(longer), 'a', sizeof(longer) - strlen(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    ck_assert(!csc_response_uri_ok(svc, longer));

    /* production: plain HTTP never, not even to localhost */
    csc_config_t cfg = {.name = "t", .logo = "https://logo.example/l.png", .region = "JP", .lang = "en", .description = "d",
                        .public_url = "https://localhost:8443", .specs = "2.0.0.2",
                        .environment = CSC_ENV_PRODUCTION, .max_body = 4096, .max_hashes = 4, .max_depth = 8};
    csc_t *prod = NULL;
    ck_assert_int_eq(csc_new(&cfg, NULL, NULL, NULL, &prod), 0);
    ck_assert(!csc_response_uri_ok(prod, "http://localhost:9/cb"));
    ck_assert(csc_response_uri_ok(prod, "https://app.example/cb"));
    csc_free(prod);
}
END_TEST

/* SSRF: the address classes refused in production, and the notify_allow list */
static int internal(const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    else
        ck_abort_msg("bad test address %s", addr);
    return csc_addr_internal((struct sockaddr *)&ss);
}

static int allowed(const char *list, const char *host, const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else {
        ck_assert_int_eq(inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
        ss.ss_family = AF_INET6;
    }
    return csc_notify_allowed(list, host, (struct sockaddr *)&ss);
}

START_TEST(t_notify_addresses)
{
    static const char *in[] = {"127.0.0.1", "127.255.0.9", "0.0.0.0", "0.1.2.3", "10.0.0.1", "172.16.0.1",
                               "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.255",
                               "192.0.0.8", "198.18.0.1", "224.0.0.1", "239.255.255.250", "240.0.0.1",
                               "255.255.255.255", "::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:0.0.0.0",
                               "::127.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1", "2002:7f00:1::", "fc00::1", "fd12:3456::1",
                               "fe80::1", "febf::1", "fec0::1", "ff02::1", "100::1"};
    static const char *out[] = {"8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "192.169.0.1", "100.63.255.255",
                                "100.128.0.1", "169.253.0.1", "223.255.255.255", "11.0.0.1", "2001:db8::1",
                                "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "fbff::1",
                                "fe7f::1"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        ck_assert_msg(internal(in[i]), "%s not internal", in[i]);
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
        ck_assert_msg(!internal(out[i]), "%s internal", out[i]);

    ck_assert(allowed("localhost", "localhost", "127.0.0.1"));
    ck_assert(allowed("a.example, LocalHost", "localhost", "::1"));
    ck_assert(!allowed("localhost", "localhost.evil.example", "127.0.0.1"));
    ck_assert(allowed("10.1.0.0/16", "x.example", "10.1.200.3"));
    ck_assert(!allowed("10.1.0.0/16", "x.example", "10.2.0.1"));
    ck_assert(allowed("10.1.0.0/16", "x.example", "::ffff:10.1.0.1")); /* v4-mapped judged as IPv4 */
    ck_assert(allowed("fd00::/8 192.168.5.5", "x.example", "fd00::7"));
    ck_assert(allowed("fd00::/8 192.168.5.5", "x.example", "192.168.5.5"));
    ck_assert(!allowed("fd00::/8 192.168.5.5", "x.example", "192.168.5.6"));
    ck_assert(!allowed("", "localhost", "127.0.0.1"));
    ck_assert(!allowed("10.0.0.0/33 garbage/x", "x.example", "10.0.0.1"));

    /* production: an internal address literal is refused at once, unless allowed */
    csc_config_t cfg = {.name = "t", .logo = "https://logo.example/l.png", .region = "JP", .lang = "en", .description = "d",
                        .public_url = "https://localhost:8443", .specs = "2.0.0.2",
                        .environment = CSC_ENV_PRODUCTION, .max_body = 4096, .max_hashes = 4, .max_depth = 8,
                        .notify_allow = "10.9.0.0/16"};
    csc_t *prod = NULL;
    ck_assert_int_eq(csc_new(&cfg, NULL, NULL, NULL, &prod), 0);
    ck_assert(!csc_response_uri_ok(prod, "https://127.0.0.1/cb"));
    ck_assert(!csc_response_uri_ok(prod, "https://[::ffff:192.168.0.1]/cb"));
    ck_assert(!csc_response_uri_ok(prod, "https://[fe80::1]:8443/cb"));
    ck_assert(csc_response_uri_ok(prod, "https://10.9.1.1/cb"));
    ck_assert(csc_response_uri_ok(prod, "https://8.8.8.8/cb"));
    ck_assert(csc_response_uri_ok(prod, "https://localhost/cb")); /* a name: judged when it is resolved */
    csc_free(prod);
}
END_TEST

START_TEST(t_otp_sender_config)
{
    csc_config_t cfg = {.name = "t", .logo = "https://logo.example/l.png", .region = "JP", .lang = "en", .description = "d",
                        .public_url = "https://localhost:8443", .specs = "2.0.0.2", .environment = CSC_ENV_TEST,
                        .max_body = 4096, .max_hashes = 4, .max_depth = 8, .otp_sender_timeout = 10};
    static const char *bad[] = {"sms:/x", "exec:relative/prog", "file:relative", "exec:/nonexistent/prog"};
    csc_t *c = NULL;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg.otp_sender = bad[i];
        ck_assert_msg(csc_new(&cfg, NULL, NULL, NULL, &c) != 0, "accepted %s", bad[i]);
        ck_assert_ptr_null(c);
    }
    cfg.otp_sender = "file:/tmp/csc-unit-sink";
    ck_assert_int_eq(csc_new(&cfg, NULL, NULL, NULL, &c), 0);
    ck_assert(csc_method_offered(c, "credentials/getChallenge"));
    csc_free(c);
    ck_assert(!csc_method_offered(svc, "credentials/getChallenge"));
    ck_assert(!csc_method_offered(svc, "credentials/sendOTP"));
    ck_assert(csc_method_offered(svc, "signatures/signHash"));
    /* the async validity bounds must be ordered */
    cfg.otp_sender = NULL;
    cfg.async_validity_min = 10;
    cfg.async_validity_default = 5;
    cfg.async_validity_max = 20;
    ck_assert_int_ne(csc_new(&cfg, NULL, NULL, NULL, &c), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("csc-api");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_b64_decode);
    tcase_add_test(tc, t_b64_roundtrip);
    tcase_add_test(tc, t_error_table);
    tcase_add_test(tc, t_sam_refusals);
    tcase_add_test(tc, t_info);
    tcase_add_test(tc, t_routing);
    tcase_add_test(tc, t_json_limits);
    tcase_add_test(tc, t_bearer_header);
    tcase_add_test(tc, t_login_header);
    tcase_add_test(tc, t_algorithms);
    tcase_add_test(tc, t_pss_params);
    tcase_add_test(tc, t_cert_status);
    tcase_add_test(tc, t_form);
    tcase_add_test(tc, t_cookie_and_escaping);
    tcase_add_test(tc, t_response_uri);
    tcase_add_test(tc, t_notify_addresses);
    tcase_add_test(tc, t_otp_sender_config);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
