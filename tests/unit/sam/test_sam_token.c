/*
 * test_sam_token.c - a compromised front end against csc-sam's TOKEN and REVOKE (sam/sam_op_token.c): it speaks the
 * protocol directly to the fixture's in-process SAM, so nothing of csc-server's checks stands in front. csc-sam
 * authenticates the client itself (a wrong secret spends nothing), spends a refresh token once (its reuse revokes the
 * grant), finds no code the front end made up, and checks the caller's own token before auth/revoke.
 * ctest: unit_sam_token.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csc_fixture.h"
#include "oauth_int.h"
#include "sam_client.h"

static cfx_t f;

static void setup(void)
{
    cfx_open(&f, NULL);
}

static void teardown(void)
{
    cfx_close(&f);
}

/* A refresh token of the fixture's client in storage, as the code grant would have left it; value: its text. */
static int plant_fn(stor_txn_t *t, void *arg)
{
    const uint8_t *hash = arg;
    static const uint8_t grant[16] = {7};
    int64_t now = (int64_t)time(NULL);
    return oauth_txn_token_new(t, hash, STOR_TOKEN_REFRESH, STOR_SCOPE_SERVICE, CFX_USER, CFX_CLIENT, NULL, grant, now,
                               now + 3600);
}

static void plant_refresh(char value[OAUTH_TOKEN_BUFLEN])
{
    uint8_t hash[32];
    ck_assert_int_eq(oauth_token_new(value, hash), OAUTH_OK);
    ck_assert_int_eq(stor_write(f.stor, plant_fn, hash), STOR_OK);
}

typedef struct answer {
    unsigned op;
    uint32_t refusal, about;
    char access[OAUTH_TOKEN_BUFLEN], refresh[OAUTH_TOKEN_BUFLEN];
} answer_t;

/* Send b (built by the caller) and read the answer. */
static void call(sam_builder_t *b, answer_t *a)
{
    const uint8_t *msg;
    size_t len;
    sam_rbuf_t rb;
    sam_msg_t reply;
    memset(&rb, 0, sizeof(rb));
    memset(a, 0, sizeof(*a));
    ck_assert_int_eq(sam_build_finish(b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(f.sam, msg, len, &rb, &reply), SAM_OK);
    a->op = reply.op;
    if (reply.op == SAM_OP_REFUSED) {
        ck_assert_int_eq(sam_get_u32(&reply, SAM_T_REFUSAL, &a->refusal), SAM_OK);
        (void)sam_get_u32(&reply, SAM_T_ABOUT, &a->about);
    } else if (reply.op == (SAM_OP_TOKEN | SAM_OP_REPLY)) {
        ck_assert_int_eq(sam_get_text(&reply, SAM_T_TOKEN, a->access, sizeof(a->access)), SAM_OK);
        if (sam_msg_count(&reply, SAM_T_REFRESH_TOKEN) > 0)
            ck_assert_int_eq(sam_get_text(&reply, SAM_T_REFRESH_TOKEN, a->refresh, sizeof(a->refresh)), SAM_OK);
    }
    sam_build_free(b);
    sam_rbuf_free(&rb);
}

/* TOKEN of grant with the client's id and secret (NULL: none) and the refresh token or code. */
static void token(uint32_t grant, const char *secret, const char *code, const char *refresh, answer_t *a)
{
    sam_builder_t b;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_TOKEN, sam_client_next_id(f.sam)), SAM_OK);
    if (code != NULL)
        sam_put_str(&b, SAM_T_CODE, code);
    if (refresh != NULL)
        sam_put_str(&b, SAM_T_REFRESH_TOKEN, refresh);
    sam_put_u32(&b, SAM_T_GRANT_TYPE, grant);
    if (secret != NULL) {
        sam_put_str(&b, SAM_T_CLIENT_ID, CFX_CLIENT);
        sam_put_str(&b, SAM_T_CLIENT_SECRET, secret);
    }
    if (code != NULL)
        sam_put_str(&b, SAM_T_VERIFIER, "0123456789012345678901234567890123456789abc");
    call(&b, a);
}

static int access_ok(const char *access)
{
    oauth_principal_t p;
    return oauth_token_check(f.oauth, access, strlen(access), &p) == OAUTH_OK;
}

/* The front end's word that the client authenticated counts for nothing: a wrong secret rotates nothing. */
START_TEST(t_client_authenticated_by_the_sam)
{
    char rt[OAUTH_TOKEN_BUFLEN];
    answer_t a;
    plant_refresh(rt);
    unsigned denied = cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_DENIED, NULL);
    token(SAM_GRANT_REFRESH, "not-the-secret", NULL, rt, &a);
    ck_assert_uint_eq(a.op, SAM_OP_REFUSED);
    ck_assert_uint_eq(a.refusal, SAM_REFUSE_UNAUTHORIZED);
    ck_assert_uint_eq(a.about, SAM_T_CLIENT_SECRET);
    ck_assert_uint_eq(cfx_audit_count(&f, STOR_EV_LOGIN, STOR_RES_DENIED, NULL), denied + 1);
    token(SAM_GRANT_REFRESH, NULL, NULL, rt, &a); /* no client at all */
    ck_assert_uint_eq(a.op, SAM_OP_REFUSED);
    ck_assert_uint_eq(a.about, SAM_T_CLIENT_SECRET);
    /* the token was not spent: with the right secret it rotates now */
    token(SAM_GRANT_REFRESH, cfx_client_secret(), NULL, rt, &a);
    ck_assert_uint_eq(a.op, SAM_OP_TOKEN | SAM_OP_REPLY);
    ck_assert(access_ok(a.access));
    ck_assert_uint_gt(strlen(a.refresh), 20);
    /* auth/login's refresh takes no client's token */
    token(SAM_GRANT_LOGIN_REFRESH, NULL, NULL, a.refresh, &a);
    ck_assert_uint_eq(a.op, SAM_OP_REFUSED);
    ck_assert_uint_eq(a.refusal, SAM_REFUSE_NOT_FOUND);
}
END_TEST

/* Rotation and reuse, decided in csc-sam: the rotated token again revokes the whole grant. */
START_TEST(t_refresh_reuse_revokes_the_grant)
{
    char rt[OAUTH_TOKEN_BUFLEN];
    answer_t first, again;
    plant_refresh(rt);
    token(SAM_GRANT_REFRESH, cfx_client_secret(), NULL, rt, &first);
    ck_assert_uint_eq(first.op, SAM_OP_TOKEN | SAM_OP_REPLY);
    ck_assert(access_ok(first.access));
    token(SAM_GRANT_REFRESH, cfx_client_secret(), NULL, rt, &again);
    ck_assert_uint_eq(again.op, SAM_OP_REFUSED);
    ck_assert_uint_eq(again.refusal, SAM_REFUSE_EXHAUSTED);
    ck_assert_uint_eq(again.about, SAM_T_REFRESH_TOKEN);
    ck_assert(!access_ok(first.access));
    token(SAM_GRANT_REFRESH, cfx_client_secret(), NULL, first.refresh, &again);
    ck_assert_uint_eq(again.op, SAM_OP_REFUSED);
    ck_assert_uint_eq(again.refusal, SAM_REFUSE_NOT_FOUND);
}
END_TEST

/* A code csc-sam did not issue mints nothing; a code grant without its verifier is no request. */
START_TEST(t_made_up_code)
{
    char code[OAUTH_TOKEN_BUFLEN];
    uint8_t hash[32];
    answer_t a;
    ck_assert_int_eq(oauth_token_new(code, hash), OAUTH_OK);
    token(SAM_GRANT_CODE, cfx_client_secret(), code, NULL, &a);
    ck_assert_uint_eq(a.op, SAM_OP_REFUSED);
    ck_assert_uint_eq(a.refusal, SAM_REFUSE_NOT_FOUND);
    ck_assert_uint_eq(a.about, SAM_T_CODE);
    token(SAM_GRANT_CODE, cfx_client_secret(), NULL, NULL, &a);
    ck_assert_uint_eq(a.op, SAM_OP_REFUSED);
    ck_assert_uint_eq(a.refusal, SAM_REFUSE_BAD_MESSAGE);
}
END_TEST

static void revoke(const char *bearer, const char *secret, const char *tok, answer_t *a)
{
    sam_builder_t b;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_REVOKE, sam_client_next_id(f.sam)), SAM_OK);
    if (bearer != NULL)
        sam_put_str(&b, SAM_T_TOKEN, bearer);
    sam_put_str(&b, SAM_T_CLIENT, "192.0.2.1");
    if (secret != NULL) {
        sam_put_str(&b, SAM_T_CLIENT_ID, CFX_CLIENT);
        sam_put_str(&b, SAM_T_CLIENT_SECRET, secret);
    }
    sam_put_str(&b, SAM_T_REVOKE_TOKEN, tok);
    call(&b, a);
}

/* REVOKE: the client authenticated, or the caller's own token checked, by csc-sam. */
START_TEST(t_revoke)
{
    char rt[OAUTH_TOKEN_BUFLEN], made_up[OAUTH_TOKEN_BUFLEN];
    uint8_t hash[32];
    answer_t a, r;
    plant_refresh(rt);
    token(SAM_GRANT_REFRESH, cfx_client_secret(), NULL, rt, &a);
    ck_assert_uint_eq(a.op, SAM_OP_TOKEN | SAM_OP_REPLY);
    revoke(NULL, "not-the-secret", a.access, &r);
    ck_assert_uint_eq(r.op, SAM_OP_REFUSED);
    ck_assert_uint_eq(r.about, SAM_T_CLIENT_SECRET);
    ck_assert(access_ok(a.access));
    ck_assert_int_eq(oauth_token_new(made_up, hash), OAUTH_OK);
    revoke(made_up, NULL, a.access, &r); /* a bearer token csc-sam does not know */
    ck_assert_uint_eq(r.op, SAM_OP_REFUSED);
    ck_assert_uint_eq(r.about, SAM_T_TOKEN);
    ck_assert(access_ok(a.access));
    revoke(NULL, cfx_client_secret(), a.access, &r);
    ck_assert_uint_eq(r.op, SAM_OP_REVOKE | SAM_OP_REPLY);
    ck_assert(!access_ok(a.access));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sam-token");
    TCase *tc = tcase_create("token");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_client_authenticated_by_the_sam);
    tcase_add_test(tc, t_refresh_reuse_revokes_the_grant);
    tcase_add_test(tc, t_made_up_code);
    tcase_add_test(tc, t_revoke);
    suite_add_tcase(s, tc);
    return cfx_main(s);
}
