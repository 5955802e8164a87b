/* test_util.c - fixture and storage helpers of the oauth unit tests. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <liboath/oath.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cfx_files.h"
#include "test_oauth.h"

fx_t fx;

void fx_oauth(oauth_config_t cfg)
{
    oauth_free(fx.o);
    fx.o = NULL;
    cfg.stor = fx.stor;
    if (!cfg.scrypt_log2n)
        cfg.scrypt_log2n = 10; /* the dummy verifier costs what T_PW's does */
    ck_assert_int_eq(oauth_new(&cfg, &fx.o), OAUTH_OK);
    oauth_set_challenge_key(fx.o, FX_CHAL_KEY); /* csc-sam's is derived from the HSM (sam_factor_start) */
}

oauth_t *fx_second_handle(const uint8_t *chal_key)
{
    oauth_config_t cfg;
    oauth_t *o2 = NULL;

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_failures = 3;
    cfg.scrypt_log2n = 10;
    cfg.stor = fx.stor;
    ck_assert_int_eq(oauth_new(&cfg, &o2), OAUTH_OK);
    oauth_set_challenge_key(o2, chal_key);
    return o2;
}

void fx_setup(void)
{
    stor_config_t sc;
    oauth_config_t cfg;

    memset(&fx, 0, sizeof(fx));
    ck_assert_int_eq(oath_init(), OATH_OK);
    ck_assert_int_eq(cfx_tmpdir(NULL, "test_oauth.", fx.dir, sizeof(fx.dir)), 0);
    memset(&sc, 0, sizeof(sc));
    sc.location = fx.dir;
    sc.map_size = 64u << 20;
    ck_assert_int_eq(stor_open(&sc, &fx.stor), STOR_OK);
    memset(&cfg, 0, sizeof(cfg));
    cfg.max_failures = 3;
    fx_oauth(cfg);
}

void fx_teardown(void)
{
    oauth_free(fx.o);
    stor_close(fx.stor);
    cfx_rmtree(fx.dir);
    memset(&fx, 0, sizeof(fx));
}

/* ---- storage access ------------------------------------------------------ */

enum { K_USER, K_CRED, K_TOKEN, K_SAD, K_PENDING };

typedef struct {
    int kind;
    const void *in;
    void *out;
    const void *key;
} io_t;

static int put_cb(stor_txn_t *t, void *arg)
{
    io_t *io = arg;

    switch (io->kind) {
    case K_USER: return stor_txn_user_put(t, io->in, 0);
    case K_CRED: return stor_txn_cred_put(t, io->in, 0);
    case K_TOKEN: return stor_txn_token_put(t, io->in);
    default: return stor_txn_sad_put(t, io->in);
    }
}

static int get_cb(stor_txn_t *t, void *arg)
{
    io_t *io = arg;

    switch (io->kind) {
    case K_USER: return stor_txn_user_get(t, io->key, io->out);
    case K_CRED: return stor_txn_cred_get(t, io->key, io->out);
    case K_TOKEN: return stor_txn_token_get(t, io->key, io->out);
    case K_PENDING: return stor_txn_pending_sad_get(t, io->key, io->out);
    default: return stor_txn_sad_get(t, io->key, io->out);
    }
}

static void put(int kind, const void *rec)
{
    io_t io = {kind, rec, NULL, NULL};

    ck_assert_int_eq(stor_write(fx.stor, put_cb, &io), STOR_OK);
}

static int get(int kind, const void *key, void *out)
{
    io_t io = {kind, NULL, out, key};

    return stor_read(fx.stor, get_cb, &io);
}

void put_user(const stor_user_t *u) { put(K_USER, u); }
void put_cred(const stor_cred_t *c) { put(K_CRED, c); }
void put_token(const stor_token_t *t) { put(K_TOKEN, t); }
void put_sad(const stor_sad_t *s) { put(K_SAD, s); }

static int count_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_websession_count(t, arg);
}

size_t n_sessions(void)
{
    size_t n = 0;
    ck_assert_int_eq(stor_read(fx.o->cfg.stor, count_fn, &n), STOR_OK);
    return n;
}

stor_user_t get_user(const char *name)
{
    stor_user_t u;

    memset(&u, 0, sizeof(u));
    ck_assert_int_eq(get(K_USER, name, &u), STOR_OK);
    return u;
}

void get_cred(const char *id, stor_cred_t *out)
{
    ck_assert_int_eq(get(K_CRED, id, out), STOR_OK);
}

int get_token(const uint8_t hash[32], stor_token_t *out) { return get(K_TOKEN, hash, out); }
int get_sad(const uint8_t hash[32], stor_sad_t *out) { return get(K_SAD, hash, out); }
int get_pending_sad(const uint8_t code_hash[32], stor_sad_t *out) { return get(K_PENDING, code_hash, out); }

void mk_user(const char *name, uint32_t status, int totp)
{
    stor_user_t u;

    memset(&u, 0, sizeof(u));
    snprintf(u.name, sizeof(u.name), "%s", name);
    u.status = status;
    ck_assert_int_eq(oauth_secret_hash(T_PW, strlen(T_PW), 10, u.pw_verifier, &u.pw_verifier_len), OAUTH_OK);
    if (totp) {
        memcpy(u.totp_secret, T_TOTP, T_TOTP_LEN);
        u.totp_secret_len = T_TOTP_LEN;
    }
    u.created_at = 1;
    put_user(&u);
}

void mk_cred(const char *id, const char *owner, int pin, const char *expr)
{
    stor_cred_t *c = calloc(1, sizeof(*c));

    ck_assert_ptr_nonnull(c);
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->owner, sizeof(c->owner), "%s", owner);
    c->status = STOR_CRED_ENABLED;
    c->key_type = STOR_KEY_EC;
    c->key_bits = 256;
    c->auth_mode = STOR_AUTH_EXPLICIT;
    snprintf(c->auth_expr, sizeof(c->auth_expr), "%s", expr);
    if (pin)
        ck_assert_int_eq(oauth_secret_hash(T_PIN, strlen(T_PIN), 10, c->pin_verifier, &c->pin_verifier_len),
                         OAUTH_OK);
    c->scal = 2;
    c->multisign = 10;
    c->created_at = 1;
    put_cred(c);
    free(c);
}

/* ---- values --------------------------------------------------------------- */

void sha256_of(const void *in, size_t len, uint8_t out[32])
{
    ck_assert_int_eq(EVP_Digest(in, len, out, NULL, EVP_sha256(), NULL), 1);
}

void ref_of(const char *value, uint8_t ref[16])
{
    uint8_t h[32], h2[32];

    sha256_of(value, strlen(value), h);
    sha256_of(h, 32, h2);
    memcpy(ref, h2, 16);
}

void totp_at(int64_t t, char otp[7])
{
    ck_assert_int_eq(oath_totp_generate(T_TOTP, T_TOTP_LEN, (time_t)t, 30, 0, 6, otp), OATH_OK);
}

void fresh_value(char value[OAUTH_TOKEN_BUFLEN], uint8_t hash[32])
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t r[OAUTH_TOKEN_LEN];
    int i;

    ck_assert_int_eq(RAND_bytes(r, sizeof(r)), 1);
    for (i = 0; i < OAUTH_TOKEN_LEN; i++)
        value[i] = a[r[i] & 63];
    value[OAUTH_TOKEN_LEN] = '\0';
    sha256_of(value, OAUTH_TOKEN_LEN, hash);
}

/* ---- audit ------------------------------------------------------------------ */

static int audit_cb(const stor_audit_t *rec, void *arg)
{
    auds_t *a = arg;
    aud_t *r;
    size_t dl = (size_t)rec->n_digests * rec->digest_len;

    ck_assert_uint_lt(a->n, sizeof(a->r) / sizeof(a->r[0]));
    r = &a->r[a->n++];
    r->rec = *rec;
    r->rec.digests = NULL;
    ck_assert_uint_le(dl, sizeof(r->dig));
    if (dl) {
        ck_assert_ptr_nonnull(rec->digests);
        memcpy(r->dig, rec->digests, dl);
    }
    return 0;
}

auds_t *audit_read(void)
{
    auds_t *a = calloc(1, sizeof(*a));

    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(stor_audit_each(fx.stor, 1, audit_cb, a), STOR_OK);
    return a;
}

size_t audit_count(const auds_t *a, uint32_t event, uint32_t result)
{
    size_t i, n = 0;

    for (i = 0; i < a->n; i++)
        n += a->r[i].rec.event == event && a->r[i].rec.result == result;
    return n;
}

const aud_t *audit_last(const auds_t *a, uint32_t event)
{
    size_t i;

    for (i = a->n; i-- > 0;)
        if (a->r[i].rec.event == event)
            return &a->r[i];
    return NULL;
}

static void scan_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 1 << 20, len = strlen(s), n, keep = 0;
    char *buf = malloc(cap);

    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(buf);
    /* chunks overlapping by len - 1 bytes, so no occurrence falls between two reads */
    while ((n = fread(buf + keep, 1, cap - keep, f)) > 0) {
        n += keep;
        ck_assert_msg(memmem(buf, n, s, len) == NULL, "secret \"%s\" found in %s", s, path);
        keep = n < len - 1 ? n : len - 1;
        memmove(buf, buf + n - keep, keep);
    }
    free(buf);
    fclose(f);
}

void assert_no_secret(const char *s)
{
    auds_t *a = audit_read();
    size_t i, len = strlen(s);
    struct dirent *de;
    DIR *d;
    char path[512];

    ck_assert_uint_gt(len, 0);
    ck_assert_uint_gt(a->n, 0);
    for (i = 0; i < a->n; i++) {
        ck_assert_msg(memmem(&a->r[i].rec, sizeof(a->r[i].rec), s, len) == NULL, "secret in audit record %zu", i);
        ck_assert_msg(memmem(a->r[i].dig, sizeof(a->r[i].dig), s, len) == NULL, "secret in digests of %zu", i);
    }
    free(a);
    ck_assert_ptr_nonnull(d = opendir(fx.dir));
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", fx.dir, de->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            scan_file(path, s);
    }
    closedir(d);
}

/* ---- authorization server ---------------------------------------------------- */

void mk_client(const char *id, uint32_t grants, char secret[OAUTH_TOKEN_BUFLEN], stor_client_t *out)
{
    stor_client_t *c = calloc(1, sizeof(*c));

    ck_assert_ptr_nonnull(c);
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->name, sizeof(c->name), "Client %s", id);
    c->n_redirects = 2;
    snprintf(c->redirects[0], sizeof(c->redirects[0]), "%s", T_REDIRECT);
    snprintf(c->redirects[1], sizeof(c->redirects[1]), "http://localhost:8080/cb");
    c->scopes = 1u << STOR_SCOPE_SERVICE | 1u << STOR_SCOPE_CREDENTIAL;
    c->grants = grants;
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_OK);
    ck_assert_uint_eq(strlen(secret), OAUTH_TOKEN_LEN);
    if (out)
        ck_assert_int_eq(oauth_client_get(fx.o, id, out), OAUTH_OK);
    free(c);
}

void req_digest(uint32_t k, uint8_t out[32])
{
    for (int i = 0; i < 32; i++)
        out[i] = (uint8_t)(k + 1 + i * 7);
}

oauth_authz_request_t *mk_req(const char *client_id, uint32_t scope, const char *cred, uint32_t n)
{
    oauth_authz_request_t *r = calloc(1, sizeof(*r));
    uint32_t k;

    ck_assert_ptr_nonnull(r);
    snprintf(r->client_id, sizeof(r->client_id), "%s", client_id);
    snprintf(r->redirect_uri, sizeof(r->redirect_uri), "%s", T_REDIRECT);
    r->redirect_given = 1;
    snprintf(r->state, sizeof(r->state), "state-xyz");
    sha256_of(T_VERIFIER, strlen(T_VERIFIER), r->challenge);
    r->scope = scope;
    snprintf(r->lang, sizeof(r->lang), "en");
    if (scope == STOR_SCOPE_CREDENTIAL) {
        snprintf(r->cred, sizeof(r->cred), "%s", cred ? cred : "");
        r->num_signatures = n ? n : 1;
        if (n) {
            snprintf(r->hash_alg, sizeof(r->hash_alg), SHA256_OID);
            r->digest_len = 32;
            r->n_digests = n;
            for (k = 0; k < n; k++)
                req_digest(k, r->digests[k]);
            snprintf(r->labels[0], sizeof(r->labels[0]), "contract.pdf");
        }
        snprintf(r->authz_details, sizeof(r->authz_details), "[{\"type\":\"credential\",\"credentialID\":\"%s\"}]",
                 cred ? cred : "");
    }
    return r;
}

void reset_totp(const char *user)
{
    stor_user_t u = get_user(user);

    u.totp_last_step = 0;
    put_user(&u);
}

void otp_current(char otp[7])
{
    totp_at(oauth_now(), otp);
}

int signin(const oauth_authz_request_t *req, const char *user, char sid[OAUTH_TOKEN_BUFLEN],
           char csrf[OAUTH_TOKEN_BUFLEN])
{
    char otp[7];

    reset_totp(user);
    totp_at(oauth_clock(fx.o), otp);
    return oauth_session_login_new(fx.o, req, user, T_PW, strlen(T_PW), otp, 6, T_ADDR, sid, csrf);
}

void session_for(const oauth_authz_request_t *req, const char *user, char sid[OAUTH_TOKEN_BUFLEN])
{
    char csrf[OAUTH_TOKEN_BUFLEN];

    ck_assert_int_eq(signin(req, user, sid, csrf), OAUTH_OK);
    ck_assert_uint_eq(strlen(sid), OAUTH_TOKEN_LEN);
}

void code_for(const oauth_authz_request_t *req, const char *user, const char *pin, char code[OAUTH_TOKEN_BUFLEN])
{
    char sid[OAUTH_TOKEN_BUFLEN];

    session_for(req, user, sid);
    ck_assert_int_eq(oauth_session_decide(fx.o, sid, 1, pin, pin ? strlen(pin) : 0, T_ADDR, code), OAUTH_OK);
    ck_assert_uint_eq(strlen(code), OAUTH_TOKEN_LEN);
}

typedef struct {
    const void *key;
    void *out;
} rec_io_t;

static int code_get_cb(stor_txn_t *t, void *arg)
{
    rec_io_t *io = arg;

    return stor_txn_code_get(t, io->key, io->out);
}

static int client_get_cb(stor_txn_t *t, void *arg)
{
    rec_io_t *io = arg;

    return stor_txn_client_get(t, io->key, io->out);
}

int get_code_rec(const char *code, stor_code_t *out)
{
    uint8_t h[32];
    rec_io_t io = {h, out};

    sha256_of(code, strlen(code), h);
    return stor_read(fx.stor, code_get_cb, &io);
}

int get_client_rec(const char *id, stor_client_t *out)
{
    rec_io_t io = {id, out};

    return stor_read(fx.stor, client_get_cb, &io);
}

void last_login_detail(const char *want, uint32_t result)
{
    auds_t *a = audit_read();
    const aud_t *r = audit_last(a, STOR_EV_LOGIN);

    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->rec.detail, want);
    ck_assert_uint_eq(r->rec.result, result);
    free(a);
}
