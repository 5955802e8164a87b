/* csc_info.c - the info method (CSC API v2.0.0.2 sec. 11.1). The body never changes, so it is built once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "csc_int.h"

static const char *const methods[] = {
    "auth/login",       "auth/revoke",           "credentials/list",
    "credentials/info", "credentials/authorize", "credentials/extendTransaction", "signatures/signHash",
};

static int info_v1_build(csc_t *c, const char *desc);

int csc_info_build(csc_t *c)
{
    const csc_config_t *cfg = &c->cfg;
    char desc[512];
    const unsigned char *buf;
    size_t len;
    const csc_sign_alg_t *algs[16];
    int rc = -1;

    /* J13: the environment is part of what every client sees. */
    snprintf(desc, sizeof(desc), "%s [%s environment]", cfg->description,
             cfg->environment == CSC_ENV_PRODUCTION ? "production" : "test");
    if (cfg->public_url == NULL || strlen(cfg->public_url) > 500) {
        fprintf(stderr, "csc: public_url is required (at most 500 characters)\n");
        return -1;
    }
    if (strlen(desc) > 255 || strlen(cfg->name) > 255) {
        fprintf(stderr, "csc: info name and description must stay within 255 characters\n");
        return -1;
    }
    yajl_gen g = csc_gen_new();
    yajl_gen_map_open(g);
    csc_gen_kv(g, "specs", cfg->specs);
    csc_gen_kv(g, "name", cfg->name);
    csc_gen_kv(g, "logo", c->logo_url);
    csc_gen_kv(g, "region", cfg->region);
    csc_gen_kv(g, "lang", cfg->lang);
    csc_gen_kv(g, "description", desc);
    csc_gen_str(g, "authType");
    yajl_gen_array_open(g);
    csc_gen_str(g, "basic");
    csc_gen_str(g, "oauth2code");
    csc_gen_str(g, "oauth2client");
    yajl_gen_array_close(g);
    char url[600];
    snprintf(url, sizeof(url), "%s", cfg->public_url);
    csc_gen_kv(g, "oauth2Issuer", url);
    /* The base URI the oauth2/authorize, oauth2/token... paths are appended to (CSC API v2.0.0.2 sec. 7.2, Note 21). */
    csc_gen_kv(g, "oauth2", url);
    /* v2.2 clients (EUDI) refuse an info without these; harmless for v2.0 clients (docs/csc-api.md sec. 0). */
    csc_gen_kbool(g, "supportsRar", true);
    csc_gen_str(g, "supportedHashTypes");
    yajl_gen_array_open(g);
    csc_gen_str(g, "2.16.840.1.101.3.4.2.1");
    csc_gen_str(g, "2.16.840.1.101.3.4.2.2");
    csc_gen_str(g, "2.16.840.1.101.3.4.2.3");
    yajl_gen_array_close(g);
    csc_gen_str(g, "methods");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < CSC_ARRAY_SIZE(methods); i++)
        csc_gen_str(g, methods[i]);
    csc_gen_str(g, "signatures/signDoc");
    if (c->tsa)
        csc_gen_str(g, "signatures/timestamp");
    if (c->sender_kind != CSC_SENDER_NONE)
        csc_gen_str(g, "credentials/getChallenge");
    csc_gen_str(g, "signatures/signPolling");
    csc_gen_str(g, "credentials/authorizeCheck");
    yajl_gen_array_close(g);
    /* operationMode "A" on signHash, results through signatures/signPolling (csc_async.c) */
    csc_gen_kbool(g, "asynchronousOperationMode", true);
    csc_gen_kbool(g, "validationInfo", false);
    csc_gen_str(g, "signAlgorithms");
    yajl_gen_map_open(g);
    csc_gen_str(g, "algos");
    yajl_gen_array_open(g);
    size_t n = csc_sign_algs_all(algs, CSC_ARRAY_SIZE(algs));
    for (size_t i = 0; i < n; i++)
        csc_gen_str(g, algs[i]->oid);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    /* signDoc (csc_signdoc.c): CAdES attached/detached, PAdES into the client's prepared signature
     * dictionary; B-T only with the built-in TSA. */
    csc_gen_str(g, "signature_formats");
    yajl_gen_map_open(g);
    csc_gen_str(g, "formats");
    yajl_gen_array_open(g);
    csc_gen_str(g, "C");
    csc_gen_str(g, "P");
    yajl_gen_array_close(g);
    csc_gen_str(g, "envelope_properties");
    yajl_gen_array_open(g);
    yajl_gen_array_open(g);
    csc_gen_str(g, "Attached");
    csc_gen_str(g, "Detached");
    yajl_gen_array_close(g);
    yajl_gen_array_open(g);
    csc_gen_str(g, "Certification");
    csc_gen_str(g, "Revision");
    yajl_gen_array_close(g);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    csc_gen_str(g, "conformance_levels");
    yajl_gen_array_open(g);
    csc_gen_str(g, "Ades-B-B");
    if (c->tsa)
        csc_gen_str(g, "Ades-B-T");
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);

    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        fprintf(stderr, "csc: info fields must be valid UTF-8\n");
        goto out;
    }
    c->info_body = malloc(len);
    if (c->info_body == NULL)
        goto out;
    memcpy(c->info_body, buf, len);
    c->info_len = len;
    rc = info_v1_build(c, desc);
out:
    yajl_gen_free(g);
    return rc;
}

/* v1.0.4.0 info: the fields a v1 client reads (docs/csc-api.md sec. 17), v1 method names. */
static int info_v1_build(csc_t *c, const char *desc)
{
    const csc_config_t *cfg = &c->cfg;
    static const char *const v1_methods[] = {"auth/login", "auth/revoke", "credentials/list", "credentials/info",
                                             "credentials/authorize", "credentials/extendTransaction",
                                             "signatures/signHash"};
    char url[600];
    const unsigned char *buf;
    size_t len;
    int rc = -1;
    yajl_gen g = csc_gen_new();
    yajl_gen_map_open(g);
    csc_gen_kv(g, "specs", "1.0.4.0");
    csc_gen_kv(g, "name", cfg->name);
    csc_gen_kv(g, "logo", c->logo_url);
    csc_gen_kv(g, "region", cfg->region);
    csc_gen_kv(g, "lang", cfg->lang);
    csc_gen_kv(g, "description", desc);
    csc_gen_str(g, "authType");
    yajl_gen_array_open(g);
    csc_gen_str(g, "basic");
    csc_gen_str(g, "oauth2code");
    yajl_gen_array_close(g);
    snprintf(url, sizeof(url), "%s", cfg->public_url);
    csc_gen_kv(g, "oauth2", url);
    csc_gen_str(g, "methods");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < CSC_ARRAY_SIZE(v1_methods); i++)
        csc_gen_str(g, v1_methods[i]);
    if (c->tsa)
        csc_gen_str(g, "signatures/timestamp");
    if (c->sender_kind != CSC_SENDER_NONE)
        csc_gen_str(g, "credentials/sendOTP");
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok && (c->info_v1_body = malloc(len)) != NULL) {
        memcpy(c->info_v1_body, buf, len);
        c->info_v1_len = len;
        rc = 0;
    }
    yajl_gen_free(g);
    return rc;
}

int csc_m_info(csc_req_t *r)
{
    const char *lang;
    if (csc_get_string(r, "lang", &lang, 64) < 0)
        return csc_bad(r, "Invalid parameter lang");
    /* Only one language: answer in it whatever was asked (CSC API v2.0.0.2 sec. 11.1). */
    r->raw = r->v1 ? r->csc->info_v1_body : r->csc->info_body;
    r->raw_len = r->v1 ? r->csc->info_v1_len : r->csc->info_len;
    return 0;
}
