/* test_req_codec.c - oauth_req_encode / oauth_req_decode (oauth_req_codec.c), and a stored browser session whose
 * request bytes are damaged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_oauth.h"

/* Encoded bytes of r (malloc'd); *len set. */
static uint8_t *encode(const oauth_authz_request_t *r, size_t *len)
{
    size_t need = 0;
    ck_assert_int_eq(oauth_req_encode(r, NULL, 0, &need), OAUTH_OK);
    uint8_t *buf = malloc(need + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(oauth_req_encode(r, buf, need, len), OAUTH_OK);
    ck_assert_uint_eq(*len, need);
    return buf;
}

/* A request with every field used: it comes back byte for byte. The bytes are few for a few digests. */
START_TEST(t_round_trip)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c1", 3), *back = malloc(sizeof(*back));
    size_t len = 0;
    ck_assert_ptr_nonnull(back);
    snprintf(r->signature_qualifier, sizeof(r->signature_qualifier), "eu_eidas_qes");
    snprintf(r->labels[2], sizeof(r->labels[2]), "third.pdf"); /* label 1 empty between two */
    snprintf(r->description, sizeof(r->description), "Sign the contract");
    uint8_t *buf = encode(r, &len);
    ck_assert_uint_lt(len, 1024);
    ck_assert_int_eq(oauth_req_decode(buf, len, back), OAUTH_OK);
    ck_assert_mem_eq(back, r, sizeof(*r));
    /* the largest request fits the bound */
    free(buf);
    free(r);
    r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c1", STOR_DIGESTS_MAX);
    r->digest_len = STOR_DIGEST_LEN_MAX;
    memset(r->state, 's', sizeof(r->state) - 1);
    memset(r->authz_details, 'd', sizeof(r->authz_details) - 1);
    for (size_t i = 0; i < 16; i++)
        memset(r->labels[i], 'l', sizeof(r->labels[i]) - 1);
    buf = encode(r, &len);
    ck_assert_uint_le(len, OAUTH_REQ_ENC_MAX);
    ck_assert_int_eq(oauth_req_decode(buf, len, back), OAUTH_OK);
    ck_assert_mem_eq(back, r, sizeof(*r));
    /* a service-scope request */
    free(buf);
    free(r);
    r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    buf = encode(r, &len);
    ck_assert_int_eq(oauth_req_decode(buf, len, back), OAUTH_OK);
    ck_assert_mem_eq(back, r, sizeof(*r));
    free(buf);
    free(r);
    free(back);
}
END_TEST

/* Every prefix, every byte more, a wrong version, a string length past its field, a NUL inside a string, too many
 * digests or labels: refused, and the output left wiped. The encoder refuses what oauth_req_ok refuses, and a
 * buffer too small. */
START_TEST(t_strict)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c1", 2), *back = malloc(sizeof(*back));
    size_t len = 0, n = 0;
    ck_assert_ptr_nonnull(back);
    uint8_t *buf = encode(r, &len);
    for (size_t cut = 0; cut < len; cut++) {
        memset(back, 0x5a, sizeof(*back));
        ck_assert_int_eq(oauth_req_decode(buf, cut, back), OAUTH_ERR_INVAL);
        ck_assert_str_eq(back->client_id, "");
    }
    uint8_t *more = malloc(len + 1);
    ck_assert_ptr_nonnull(more);
    memcpy(more, buf, len);
    more[len] = 0;
    ck_assert_int_eq(oauth_req_decode(more, len + 1, back), OAUTH_ERR_INVAL);
    /* version */
    more[0] = 2;
    ck_assert_int_eq(oauth_req_decode(more, len, back), OAUTH_ERR_INVAL);
    memcpy(more, buf, len);
    /* client_id's length (bytes 1-2) past its field, then a NUL inside it ("app" -> "a\0p") */
    more[1] = 0;
    more[2] = STOR_NAME_MAX + 1;
    ck_assert_int_eq(oauth_req_decode(more, len, back), OAUTH_ERR_INVAL);
    memcpy(more, buf, len);
    ck_assert_uint_eq(more[2], 3);
    more[4] = '\0';
    ck_assert_int_eq(oauth_req_decode(more, len, back), OAUTH_ERR_INVAL);
    /* a scope that is neither (decodes, then oauth_req_ok refuses it) */
    r->scope = 7;
    ck_assert_int_eq(oauth_req_encode(r, NULL, 0, &n), OAUTH_ERR_INVAL);
    r->scope = STOR_SCOPE_CREDENTIAL;
    r->n_digests = STOR_DIGESTS_MAX + 1;
    ck_assert_int_eq(oauth_req_encode(r, NULL, 0, &n), OAUTH_ERR_INVAL);
    r->n_digests = 2;
    r->state[sizeof(r->state) - 1] = 'x'; /* unterminated */
    memset(r->state, 'x', sizeof(r->state));
    ck_assert_int_eq(oauth_req_encode(r, NULL, 0, &n), OAUTH_ERR_INVAL);
    snprintf(r->state, sizeof(r->state), "ok");
    ck_assert_int_eq(oauth_req_encode(r, more, 10, &n), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_req_encode(NULL, more, len, &n), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_req_decode(NULL, 0, back), OAUTH_ERR_INVAL);
    free(more);
    free(buf);
    free(r);
    free(back);
}
END_TEST

typedef struct {
    uint8_t hash[32];
    const uint8_t *req;
    uint32_t len;
} damage_t;

static int damage_fn(stor_txn_t *t, void *arg)
{
    damage_t *d = arg;
    stor_websession_t s;
    int rc = stor_txn_websession_get(t, d->hash, &s);
    if (rc != 0)
        return rc;
    s.req = d->req;
    s.req_len = d->len;
    return stor_txn_websession_put(t, &s, 0);
}

/* A stored session whose request bytes are not a request (a damaged record, or one written by another version):
 * the session is as good as gone, it is not read past its bytes. Before the codec, a record shorter than the
 * struct's fixed parts made the unpacking copy from far outside it. */
START_TEST(t_damaged_session_record)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c1", 1);
    oauth_session_view_t *v = malloc(sizeof(*v));
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    static const uint8_t junk[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    damage_t d = {.req = junk, .len = sizeof(junk)};

    ck_assert_ptr_nonnull(v);
    mk_user("alice", STOR_USER_ACTIVE, 1);
    ck_assert_int_eq(signin(r, "alice", sid, csrf), OAUTH_OK);
    ck_assert_int_eq(oauth_session_get(fx.o, sid, v), OAUTH_OK);
    ck_assert_int_eq(oauth_token_hash(sid, strlen(sid), d.hash), OAUTH_OK);
    ck_assert_int_eq(stor_write(fx.stor, damage_fn, &d), 0);
    ck_assert_int_eq(oauth_session_get(fx.o, sid, v), OAUTH_ERR_INVALID);
    free(r);
    free(v);
}
END_TEST

Suite *suite_req_codec(void)
{
    Suite *s = suite_create("req_codec");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_add_test(tc, t_round_trip);
    tcase_add_test(tc, t_strict);
    tcase_add_test(tc, t_damaged_session_record);
    suite_add_tcase(s, tc);
    return s;
}
