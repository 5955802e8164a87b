/* test_client.c - OAuth client registry: add, get, authenticate, remove, redirect URI rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_oauth.h"

#define ALL_GRANTS (STOR_GRANT_AUTHORIZATION_CODE | STOR_GRANT_REFRESH_TOKEN | STOR_GRANT_CLIENT_CREDENTIALS)

static stor_client_t *base_client(const char *id)
{
    stor_client_t *c = calloc(1, sizeof(*c));

    ck_assert_ptr_nonnull(c);
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->name, sizeof(c->name), "Example App");
    c->n_redirects = 1;
    snprintf(c->redirects[0], sizeof(c->redirects[0]), "%s", T_REDIRECT);
    c->scopes = 1u << STOR_SCOPE_SERVICE;
    c->grants = STOR_GRANT_AUTHORIZATION_CODE;
    return c;
}

static int add_with_redirect(const char *uri)
{
    stor_client_t *c = base_client("app");
    char secret[OAUTH_TOKEN_BUFLEN];
    int rc;

    snprintf(c->redirects[0], sizeof(c->redirects[0]), "%s", uri);
    rc = oauth_client_add(fx.o, c, "op", secret);
    if (rc == OAUTH_OK)
        ck_assert_int_eq(oauth_client_remove(fx.o, "app", "op"), OAUTH_OK);
    else
        ck_assert_str_eq(secret, "");
    free(c);
    return rc;
}

START_TEST(t_add_ok)
{
    stor_client_t *c = base_client("app"), got;
    char secret[OAUTH_TOKEN_BUFLEN];
    uint8_t h[32];
    int64_t now = oauth_now();
    auds_t *a;
    const aud_t *r;

    c->n_redirects = 2;
    snprintf(c->redirects[1], sizeof(c->redirects[1]), "http://127.0.0.1:9000/cb");
    memset(c->redirects[5], 'x', 20); /* unused slots are not stored */
    memset(c->secret_hash, 0xAB, 32); /* ignored: the secret is generated */
    c->scopes |= 1u << STOR_SCOPE_CREDENTIAL;
    c->grants = ALL_GRANTS;
    ck_assert_int_eq(oauth_client_add(fx.o, c, "operator1", secret), OAUTH_OK);
    ck_assert_uint_eq(strlen(secret), OAUTH_TOKEN_LEN);
    ck_assert_int_eq(oauth_client_get(fx.o, "app", &got), OAUTH_OK);
    ck_assert_str_eq(got.id, "app");
    ck_assert_str_eq(got.name, "Example App");
    ck_assert_uint_eq(got.n_redirects, 2);
    ck_assert_str_eq(got.redirects[0], T_REDIRECT);
    ck_assert_str_eq(got.redirects[1], "http://127.0.0.1:9000/cb");
    ck_assert_str_eq(got.redirects[5], "");
    ck_assert_uint_eq(got.scopes, c->scopes);
    ck_assert_uint_eq(got.grants, ALL_GRANTS);
    ck_assert_int_ge(got.created_at, now);
    ck_assert_int_le(got.created_at, oauth_now());
    sha256_of(secret, strlen(secret), h);
    ck_assert_mem_eq(got.secret_hash, h, 32);

    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_ADMIN, STOR_RES_OK), 1);
    r = audit_last(a, STOR_EV_ADMIN);
    ck_assert_str_eq(r->rec.detail, "operator=operator1 action=client.add id=app");
    ck_assert_str_eq(r->rec.client, "csc-admin");
    free(a);
    assert_no_secret(secret);
    free(c);
}
END_TEST

START_TEST(t_add_inval)
{
    stor_client_t *c = base_client("app"), got;
    char secret[OAUTH_TOKEN_BUFLEN] = "x";

    ck_assert_int_eq(oauth_client_add(NULL, c, "op", secret), OAUTH_ERR_INVAL);
    ck_assert_str_eq(secret, "");
    ck_assert_int_eq(oauth_client_add(fx.o, NULL, "op", secret), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", NULL), OAUTH_ERR_INVAL);
    snprintf(c->id, sizeof(c->id), "my app");
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_INVAL);
    c->id[0] = '\0';
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_INVAL);
    free(c);

    c = base_client("app");
    memset(c->name, 'n', sizeof(c->name)); /* unterminated */
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_INVAL);
    free(c);
    c = base_client("app");
    c->n_redirects = STOR_REDIRECTS_MAX + 1;
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_INVAL);
    c->n_redirects = 0; /* the code flow needs a redirect URI */
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_INVAL);
    c->grants = STOR_GRANT_CLIENT_CREDENTIALS; /* ... client_credentials does not */
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_OK);
    ck_assert_int_eq(oauth_client_remove(fx.o, "app", "op"), OAUTH_OK);
    c->grants = 0;
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_INVAL);
    c->grants = 8;
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_INVAL);
    c->grants = STOR_GRANT_CLIENT_CREDENTIALS;
    c->scopes = 0;
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_INVAL);
    c->scopes = 1; /* bit 0 is no scope */
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_client_get(fx.o, "app", &got), OAUTH_ERR_INVALID);
    free(c);
}
END_TEST

START_TEST(t_redirect_rules)
{
    char longuri[STOR_URI_MAX + 2];

    ck_assert_int_eq(add_with_redirect("https://app.example/cb"), OAUTH_OK);
    ck_assert_int_eq(add_with_redirect("https://app.example"), OAUTH_OK);
    ck_assert_int_eq(add_with_redirect("https://app.example:8443/cb?x=1&y=%20"), OAUTH_OK);
    ck_assert_int_eq(add_with_redirect("https://192.0.2.1/cb"), OAUTH_OK);
    ck_assert_int_eq(add_with_redirect("https://[2001:db8::1]:443/cb"), OAUTH_OK);
    ck_assert_int_eq(add_with_redirect("http://localhost/cb"), OAUTH_OK);
    ck_assert_int_eq(add_with_redirect("http://localhost:8080/cb"), OAUTH_OK);
    ck_assert_int_eq(add_with_redirect("http://127.0.0.1:53111/"), OAUTH_OK);
    ck_assert_int_eq(add_with_redirect("http://[::1]:8080/cb"), OAUTH_OK);

    ck_assert_int_eq(add_with_redirect("http://app.example/cb"), OAUTH_ERR_INVAL);    /* plain http elsewhere */
    ck_assert_int_eq(add_with_redirect("http://localhost.evil.example/"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("http://127.0.0.2/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://app.example/cb#frag"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://app.example/c b"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://app.example/\x01"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://app.example/\xc3\xa9"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("ftp://app.example/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("HTTPS://app.example/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("/relative/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("app.example/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https:///cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://user@app.example/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://app.example:/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://app.example:0/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://app.example:65536/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://app.example:44x/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://[zz::1]/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://[]/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://[::1/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect("https://app_example/cb"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(add_with_redirect(""), OAUTH_ERR_INVAL);
    /* the longest URI fits, one more byte does not */
    memset(longuri, 'a', sizeof(longuri));
    memcpy(longuri, "https://h/", 10);
    longuri[STOR_URI_MAX] = '\0';
    ck_assert_int_eq(add_with_redirect(longuri), OAUTH_OK);
}
END_TEST

START_TEST(t_redirect_over_long)
{
    stor_client_t *c = base_client("app");
    char secret[OAUTH_TOKEN_BUFLEN];

    memset(c->redirects[0], 'a', sizeof(c->redirects[0])); /* no NUL inside the array */
    memcpy(c->redirects[0], "https://h/", 10);
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_INVAL);
    /* a bad URI in the second slot spoils the client too */
    free(c);
    c = base_client("app");
    c->n_redirects = 2;
    snprintf(c->redirects[1], sizeof(c->redirects[1]), "http://example.com/");
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_ERR_INVAL);
    free(c);
}
END_TEST

START_TEST(t_add_exists)
{
    stor_client_t *c = base_client("app"), got;
    char s1[OAUTH_TOKEN_BUFLEN], s2[OAUTH_TOKEN_BUFLEN] = "x";
    auds_t *a;

    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", s1), OAUTH_OK);
    snprintf(c->name, sizeof(c->name), "Impostor");
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op2", s2), OAUTH_ERR_DENIED);
    ck_assert_str_eq(s2, "");
    ck_assert_int_eq(oauth_client_auth(fx.o, "app", s1, strlen(s1), &got), OAUTH_OK);
    ck_assert_str_eq(got.name, "Example App");
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_ADMIN, STOR_RES_DENIED), 1);
    ck_assert_str_eq(audit_last(a, STOR_EV_ADMIN)->rec.detail, "operator=op2 action=client.add id=app denied: exists");
    free(a);
    free(c);
}
END_TEST

START_TEST(t_auth)
{
    stor_client_t *c = base_client("app"), got;
    char secret[OAUTH_TOKEN_BUFLEN], wrong[OAUTH_TOKEN_BUFLEN], big[400];

    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_OK);
    memset(&got, 0x55, sizeof(got));
    ck_assert_int_eq(oauth_client_auth(fx.o, "app", secret, strlen(secret), &got), OAUTH_OK);
    ck_assert_str_eq(got.id, "app");
    ck_assert_str_eq(got.redirects[0], T_REDIRECT);

    memcpy(wrong, secret, sizeof(wrong));
    wrong[5] = wrong[5] == 'A' ? 'B' : 'A';
    memset(&got, 0x55, sizeof(got));
    ck_assert_int_eq(oauth_client_auth(fx.o, "app", wrong, strlen(wrong), &got), OAUTH_ERR_DENIED);
    ck_assert_str_eq(got.id, "");
    ck_assert_int_eq(oauth_client_auth(fx.o, "app", secret, strlen(secret) - 1, &got), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_client_auth(fx.o, "other", secret, strlen(secret), &got), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_client_auth(fx.o, "a p p", secret, strlen(secret), &got), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_client_auth(fx.o, NULL, secret, strlen(secret), &got), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_client_auth(fx.o, "app", NULL, 0, &got), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_client_auth(fx.o, "app", "", 0, &got), OAUTH_ERR_DENIED);
    /* an over-long secret that starts with the right one */
    memset(big, 'A', sizeof(big));
    memcpy(big, secret, strlen(secret));
    ck_assert_int_eq(oauth_client_auth(fx.o, "app", big, sizeof(big), &got), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_client_auth(fx.o, "app", NULL, 5, &got), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_client_auth(fx.o, "app", secret, strlen(secret), NULL), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_client_auth(NULL, "app", secret, strlen(secret), &got), OAUTH_ERR_INVAL);
    free(c);
}
END_TEST

START_TEST(t_get_remove)
{
    stor_client_t *c = base_client("app"), got;
    char secret[OAUTH_TOKEN_BUFLEN];
    auds_t *a;

    ck_assert_int_eq(oauth_client_get(fx.o, "app", &got), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_client_get(fx.o, "a b", &got), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_client_get(fx.o, "app", NULL), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_client_get(NULL, "app", &got), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_client_add(fx.o, c, NULL, secret), OAUTH_OK);
    ck_assert_int_eq(oauth_client_remove(fx.o, "app", "op9"), OAUTH_OK);
    ck_assert_int_eq(oauth_client_get(fx.o, "app", &got), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_client_auth(fx.o, "app", secret, strlen(secret), &got), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_client_remove(fx.o, "app", "op9"), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_client_remove(fx.o, "", "op9"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_client_remove(NULL, "app", "op9"), OAUTH_ERR_INVAL);
    a = audit_read();
    ck_assert_uint_eq(a->n, 3);
    ck_assert_str_eq(a->r[0].rec.detail, "operator=- action=client.add id=app");
    ck_assert_str_eq(a->r[1].rec.detail, "operator=op9 action=client.remove id=app");
    ck_assert_uint_eq(a->r[1].rec.result, STOR_RES_OK);
    ck_assert_str_eq(a->r[2].rec.detail, "operator=op9 action=client.remove id=app denied: unknown client");
    ck_assert_uint_eq(a->r[2].rec.result, STOR_RES_DENIED);
    free(a);
    /* the id can be registered again, with a new secret */
    ck_assert_int_eq(oauth_client_add(fx.o, c, "op", secret), OAUTH_OK);
    ck_assert_int_eq(oauth_client_auth(fx.o, "app", secret, strlen(secret), &got), OAUTH_OK);
    free(c);
}
END_TEST

Suite *suite_client(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("client");

    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, t_add_ok);
    tcase_add_test(tc, t_add_inval);
    tcase_add_test(tc, t_redirect_rules);
    tcase_add_test(tc, t_redirect_over_long);
    tcase_add_test(tc, t_add_exists);
    tcase_add_test(tc, t_auth);
    tcase_add_test(tc, t_get_remove);
    suite_add_tcase(s, tc);
    return s;
}
