/* test_session.c - PAR, browser sessions (started signed in: timeouts, bounds, operator resets), the login, the
 * rate limiter, and the tickets of the sign-in pages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_oauth.h"
#include "stor_fault.h"

#define PWL strlen(T_PW)

static void with_cfg(unsigned par_ttl, unsigned idle, unsigned max, unsigned rate_window, unsigned rate_max)
{
    oauth_config_t cfg = {.max_failures = 3, .par_ttl = par_ttl, .session_idle = idle, .session_max = max,
                          .rate_window = rate_window, .rate_max = rate_max};

    fx_oauth(cfg);
}

/* ---- PAR ------------------------------------------------------------------------ */

START_TEST(t_par_put_take)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c1", 3), *got = malloc(sizeof(*got));
    char uri[128], uri2[128];
    unsigned exp = 0;

    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri, &exp), OAUTH_OK);
    ck_assert_uint_eq(exp, 90);
    ck_assert_uint_eq(strlen(uri), strlen(OAUTH_PAR_URN) + OAUTH_TOKEN_LEN);
    ck_assert_int_eq(strncmp(uri, OAUTH_PAR_URN, strlen(OAUTH_PAR_URN)), 0);
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri2, &exp), OAUTH_OK);
    ck_assert_str_ne(uri, uri2);

    /* another client cannot take it, and does not use it up */
    ck_assert_int_eq(oauth_par_take(fx.o, "other", uri, got), OAUTH_ERR_INVALID);
    ck_assert_str_eq(got->client_id, "");
    memset(got, 0x5A, sizeof(*got));
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri, got), OAUTH_OK);
    ck_assert_mem_eq(got, r, sizeof(*r));
    /* single use */
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri, got), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri2, got), OAUTH_OK);

    /* malformed request_uris */
    ck_assert_int_eq(oauth_par_take(fx.o, "app", "urn:ietf:params:oauth:request_uri:", got), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri + 4, got), OAUTH_ERR_INVALID);
    uri[strlen(uri) - 1] = '\0';
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri, got), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_par_take(fx.o, "app", NULL, got), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_par_take(fx.o, NULL, uri, got), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri, NULL), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_par_take(NULL, "app", uri, got), OAUTH_ERR_INVAL);
    free(r);
    free(got);
}
END_TEST

START_TEST(t_par_inval)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    char uri[128] = "x";
    unsigned exp = 9;

    ck_assert_int_eq(oauth_par_put(NULL, r, uri, &exp), OAUTH_ERR_INVAL);
    ck_assert_str_eq(uri, "");
    ck_assert_uint_eq(exp, 0);
    ck_assert_int_eq(oauth_par_put(fx.o, NULL, uri, &exp), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_par_put(fx.o, r, NULL, &exp), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri, NULL), OAUTH_ERR_INVAL);
    snprintf(r->client_id, sizeof(r->client_id), "a b");
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri, &exp), OAUTH_ERR_INVAL);
    free(r);
    r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    memset(r->state, 's', sizeof(r->state));
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri, &exp), OAUTH_ERR_INVAL);
    free(r);
    r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    memset(r->labels[15], 'l', sizeof(r->labels[15]));
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri, &exp), OAUTH_ERR_INVAL);
    free(r);
    r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c1", 1);
    r->n_digests = STOR_DIGESTS_MAX + 1;
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri, &exp), OAUTH_ERR_INVAL);
    r->n_digests = 1;
    r->scope = 3;
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri, &exp), OAUTH_ERR_INVAL);
    free(r);
}
END_TEST

START_TEST(t_par_expiry_and_bound)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0), *got = malloc(sizeof(*got));
    char uri[4][128];
    unsigned exp;

    ck_assert_ptr_nonnull(got);
    with_cfg(5, 0, 0, 0, 0);
    oauth_int_set_caps(fx.o, 0, 3, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(oauth_par_put(fx.o, r, uri[i], &exp), OAUTH_OK);
    ck_assert_uint_eq(exp, 5);
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri[3], &exp), OAUTH_ERR_FULL);
    ck_assert_str_eq(uri[3], "");
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri[0], got), OAUTH_OK); /* frees a place */
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri[0], &exp), OAUTH_OK);
    oauth_int_set_skew(fx.o, 4);
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri[1], got), OAUTH_OK);
    oauth_int_set_skew(fx.o, 5); /* expired: refused; the full table is purged on the next put */
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri[2], got), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri[1], &exp), OAUTH_OK);
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri[2], &exp), OAUTH_OK);
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri[3], &exp), OAUTH_OK);
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri[0], got), OAUTH_ERR_INVALID); /* purged */
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri[3], got), OAUTH_OK);
    free(r);
    free(got);
}
END_TEST

/* A request pushed through one node is used through another (a second oauth_t on the same storage: another node's
 * csc-server, or this one after a restart), once; expiry and the cap are the stored rows', not one process's. */
START_TEST(t_par_other_node)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c1", 3), *got = malloc(sizeof(*got));
    oauth_t *o2 = fx_second_handle(NULL);
    char uri[3][128];
    unsigned exp;

    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri[0], &exp), OAUTH_OK);
    /* the other node sees it, and a look does not use it up */
    ck_assert_int_eq(oauth_par_peek(o2, "app", uri[0], got), OAUTH_OK);
    ck_assert_mem_eq(got, r, sizeof(*r));
    ck_assert_int_eq(oauth_par_peek(o2, "other", uri[0], got), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_par_take(o2, "other", uri[0], got), OAUTH_ERR_INVALID);
    memset(got, 0x5A, sizeof(*got));
    ck_assert_int_eq(oauth_par_take(o2, "app", uri[0], got), OAUTH_OK);
    ck_assert_mem_eq(got, r, sizeof(*r));
    /* used once, on whichever node */
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri[0], got), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_par_take(o2, "app", uri[0], got), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_par_peek(fx.o, "app", uri[0], got), OAUTH_ERR_INVALID);

    /* expired on the other node's clock (par_ttl 90): refused by a look and by a use, which deletes it */
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri[1], &exp), OAUTH_OK);
    ck_assert_uint_eq(exp, 90);
    oauth_int_set_skew(o2, 89);
    ck_assert_int_eq(oauth_par_peek(o2, "app", uri[1], got), OAUTH_OK);
    oauth_int_set_skew(o2, 90);
    ck_assert_int_eq(oauth_par_peek(o2, "app", uri[1], got), OAUTH_ERR_INVALID);
    ck_assert_str_eq(got->client_id, "");
    ck_assert_int_eq(oauth_par_take(o2, "app", uri[1], got), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri[1], got), OAUTH_ERR_INVALID); /* gone, not only late */

    /* the cap counts the rows every node pushed */
    oauth_int_set_caps(o2, 0, 2, 0);
    oauth_int_set_skew(o2, 0);
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri[0], &exp), OAUTH_OK);
    ck_assert_int_eq(oauth_par_put(fx.o, r, uri[1], &exp), OAUTH_OK);
    ck_assert_int_eq(oauth_par_put(o2, r, uri[2], &exp), OAUTH_ERR_FULL);
    ck_assert_str_eq(uri[2], "");
    ck_assert_uint_eq(exp, 0);
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri[0], got), OAUTH_OK); /* frees a place */
    ck_assert_int_eq(oauth_par_put(o2, r, uri[2], &exp), OAUTH_OK);
    ck_assert_int_eq(oauth_par_take(fx.o, "app", uri[2], got), OAUTH_OK);
    ck_assert_int_eq(oauth_par_take(o2, "app", uri[1], got), OAUTH_OK);
    oauth_free(o2);
    free(r);
    free(got);
}
END_TEST

/* ---- sessions (started signed in by oauth_session_login_new()) ------------------------------ */


START_TEST(t_session_new_get_end)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "c1", STOR_DIGESTS_MAX);
    oauth_session_view_t *v = malloc(sizeof(*v));
    char sid[OAUTH_TOKEN_BUFLEN], sid2[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], csrf2[OAUTH_TOKEN_BUFLEN];
    char bad[OAUTH_TOKEN_BUFLEN];

    ck_assert_ptr_nonnull(v);
    mk_user("alice", STOR_USER_ACTIVE, 1);
    for (uint32_t k = 0; k < STOR_DIGESTS_MAX; k++) {
        r->digests[k][0] = (uint8_t)k;
        r->digests[k][1] = (uint8_t)(k >> 8);
    }
    ck_assert_int_eq(signin(r, "alice", sid, csrf), OAUTH_OK);
    ck_assert_uint_eq(strlen(sid), OAUTH_TOKEN_LEN);
    ck_assert_uint_eq(strlen(csrf), OAUTH_TOKEN_LEN);
    ck_assert_str_ne(sid, csrf);
    ck_assert_int_eq(signin(r, "alice", sid2, csrf2), OAUTH_OK);
    ck_assert_str_ne(sid, sid2);
    ck_assert_str_ne(csrf, csrf2);
    ck_assert_uint_eq(n_sessions(), 2);
    memset(v, 0x33, sizeof(*v));
    ck_assert_int_eq(oauth_session_get(fx.o, sid, v), OAUTH_OK);
    ck_assert_mem_eq(&v->req, r, sizeof(*r));
    ck_assert_str_eq(v->csrf, csrf);
    ck_assert_str_eq(v->user, "alice");
    ck_assert_int_eq(oauth_session_get(fx.o, sid2, v), OAUTH_OK);
    ck_assert_str_eq(v->csrf, csrf2);
    /* live sessions: neither the id nor the CSRF token is in the database (the token is derived from the id) */
    assert_no_secret(sid);
    assert_no_secret(csrf);
    assert_no_secret(csrf2);

    fresh_value(bad, (uint8_t[32]){0});
    ck_assert_int_eq(oauth_session_get(fx.o, bad, v), OAUTH_ERR_INVALID);
    ck_assert_str_eq(v->csrf, "");
    ck_assert_str_eq(v->user, "");
    ck_assert_int_eq(oauth_session_get(fx.o, "short", v), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_session_get(fx.o, NULL, v), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_session_get(fx.o, sid, NULL), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_session_get(NULL, sid, v), OAUTH_ERR_INVAL);

    oauth_session_end(fx.o, sid);
    ck_assert_int_eq(oauth_session_get(fx.o, sid, v), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_session_get(fx.o, sid2, v), OAUTH_OK);
    ck_assert_uint_eq(n_sessions(), 1);
    oauth_session_end(fx.o, sid);      /* unknown: nothing happens */
    oauth_session_end(fx.o, "x");
    oauth_session_end(fx.o, NULL);
    oauth_session_end(NULL, sid2);
    ck_assert_uint_eq(n_sessions(), 1);
    free(r);
    free(v);
}
END_TEST

START_TEST(t_session_timeouts)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    oauth_session_view_t *v = malloc(sizeof(*v));
    char a[OAUTH_TOKEN_BUFLEN], b[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];

    ck_assert_ptr_nonnull(v);
    with_cfg(0, 10, 25, 0, 0);
    mk_user("alice", STOR_USER_ACTIVE, 1);
    ck_assert_int_eq(signin(r, "alice", a, csrf), OAUTH_OK);
    ck_assert_int_eq(signin(r, "alice", b, csrf), OAUTH_OK);
    /* a is used every 5 s: the idle timer (10 s) never runs out, the absolute limit (25 s) does. The steps leave
     * 5 s for the real clock to move during the test (a slow sanitizer run took more than one). */
    oauth_int_set_skew(fx.o, 5);
    ck_assert_int_eq(oauth_session_get(fx.o, a, v), OAUTH_OK);
    oauth_int_set_skew(fx.o, 10);
    ck_assert_int_eq(oauth_session_get(fx.o, a, v), OAUTH_OK);
    /* b was left alone for 12 s: idle */
    oauth_int_set_skew(fx.o, 12);
    ck_assert_int_eq(oauth_session_get(fx.o, b, v), OAUTH_ERR_EXPIRED);
    ck_assert_int_eq(oauth_session_get(fx.o, b, v), OAUTH_ERR_INVALID); /* gone */
    oauth_int_set_skew(fx.o, 15);
    ck_assert_int_eq(oauth_session_get(fx.o, a, v), OAUTH_OK);
    oauth_int_set_skew(fx.o, 20);
    ck_assert_int_eq(oauth_session_get(fx.o, a, v), OAUTH_OK);
    oauth_int_set_skew(fx.o, 25);
    ck_assert_int_eq(oauth_session_get(fx.o, a, v), OAUTH_ERR_EXPIRED);
    ck_assert_int_eq(oauth_session_get(fx.o, a, v), OAUTH_ERR_INVALID);
    ck_assert_uint_eq(n_sessions(), 0);
    free(r);
    free(v);
}
END_TEST

START_TEST(t_session_bound)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    char sid[4][OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    oauth_session_view_t *v = malloc(sizeof(*v));

    ck_assert_ptr_nonnull(v);
    with_cfg(0, 10, 100, 0, 0);
    oauth_int_set_caps(fx.o, 2, 0, 0);
    mk_user("alice", STOR_USER_ACTIVE, 1);
    ck_assert_int_eq(signin(r, "alice", sid[0], csrf), OAUTH_OK);
    oauth_int_set_skew(fx.o, 5);
    ck_assert_int_eq(signin(r, "alice", sid[1], csrf), OAUTH_OK);
    /* full: the login itself is right, but no third session is started */
    ck_assert_int_eq(signin(r, "alice", sid[2], csrf), OAUTH_ERR_FULL);
    ck_assert_str_eq(sid[2], "");
    ck_assert_str_eq(csrf, "");
    ck_assert_uint_eq(n_sessions(), 2);
    oauth_session_end(fx.o, sid[1]);
    ck_assert_int_eq(signin(r, "alice", sid[1], csrf), OAUTH_OK);
    /* once the first has idled out, a new session takes its place */
    oauth_int_set_skew(fx.o, 10);
    ck_assert_int_eq(signin(r, "alice", sid[2], csrf), OAUTH_OK);
    ck_assert_int_eq(signin(r, "alice", sid[3], csrf), OAUTH_ERR_FULL);
    ck_assert_int_eq(oauth_session_get(fx.o, sid[0], v), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_session_get(fx.o, sid[1], v), OAUTH_OK);
    ck_assert_int_eq(oauth_session_get(fx.o, sid[2], v), OAUTH_OK);
    ck_assert_uint_eq(n_sessions(), 2);
    free(r);
    free(v);
}
END_TEST

/* An operator's reset of the user (new password, TOTP reset, suspension: the user's epoch moves, or the user is
 * no longer active) ends the sessions signed in before it at their next use. */
START_TEST(t_session_ends_after_operator_reset)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    oauth_session_view_t *v = malloc(sizeof(*v));
    char a[OAUTH_TOKEN_BUFLEN], b[OAUTH_TOKEN_BUFLEN], c[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN];
    stor_user_t u;

    ck_assert_ptr_nonnull(v);
    mk_user("alice", STOR_USER_ACTIVE, 1);
    mk_user("bob", STOR_USER_ACTIVE, 1);
    ck_assert_int_eq(signin(r, "alice", a, csrf), OAUTH_OK);
    ck_assert_int_eq(signin(r, "bob", b, csrf), OAUTH_OK);
    u = get_user("alice");
    u.epoch++;
    put_user(&u);
    ck_assert_int_eq(oauth_session_get(fx.o, a, v), OAUTH_ERR_INVALID);
    ck_assert_str_eq(v->user, "");
    ck_assert_uint_eq(n_sessions(), 1); /* ended, not only refused */
    ck_assert_int_eq(oauth_session_get(fx.o, b, v), OAUTH_OK); /* another user's session stays */
    /* a login after the reset starts a session of the new epoch */
    ck_assert_int_eq(signin(r, "alice", c, csrf), OAUTH_OK);
    ck_assert_int_eq(oauth_session_get(fx.o, c, v), OAUTH_OK);
    ck_assert_str_eq(v->user, "alice");
    /* suspension */
    u = get_user("bob");
    u.status = STOR_USER_SUSPENDED;
    put_user(&u);
    ck_assert_int_eq(oauth_session_get(fx.o, b, v), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_session_get(fx.o, c, v), OAUTH_OK);
    ck_assert_uint_eq(n_sessions(), 1);
    u = get_user("bob");
    u.status = STOR_USER_ACTIVE;
    put_user(&u);
    ck_assert_int_eq(oauth_session_get(fx.o, b, v), OAUTH_ERR_INVALID); /* gone for good */
    free(r);
    free(v);
}
END_TEST

/* ---- login --------------------------------------------------------------------------- */

/* oauth_session_login_new() for a service-scope request of "app"; sid "" when no session was started. */
static int login(const char *user, const char *pw, const char *otp, const char *addr, char sid[OAUTH_TOKEN_BUFLEN])
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    char csrf[OAUTH_TOKEN_BUFLEN] = "x";
    int rc;

    sid[0] = 'x';
    rc = oauth_session_login_new(fx.o, r, user, pw, pw ? strlen(pw) : 0, otp, otp ? strlen(otp) : 0, addr, sid,
                                 csrf);
    ck_assert_int_eq(rc == OAUTH_OK, sid[0] != '\0');
    ck_assert_int_eq(rc == OAUTH_OK, csrf[0] != '\0');
    free(r);
    return rc;
}

static void session_user(const char *sid, const char *want)
{
    oauth_session_view_t *v = malloc(sizeof(*v));

    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(oauth_session_get(fx.o, sid, v), OAUTH_OK);
    ck_assert_str_eq(v->user, want);
    free(v);
}

START_TEST(t_login_ok)
{
    char sid[OAUTH_TOKEN_BUFLEN], otp[7];
    stor_user_t u;
    int64_t now = oauth_now();
    auds_t *a;
    const aud_t *r;

    mk_user("alice", STOR_USER_ACTIVE, 1);
    otp_current(otp);
    ck_assert_int_eq(login("alice", T_PW, otp, T_ADDR, sid), OAUTH_OK);
    ck_assert_uint_eq(n_sessions(), 1);
    session_user(sid, "alice");
    u = get_user("alice");
    ck_assert_int_ge(u.totp_last_step, now / 30 - 1);
    ck_assert_uint_eq(u.failed_logins, 0);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_OK), 1);
    r = audit_last(a, STOR_EV_LOGIN);
    ck_assert_str_eq(r->rec.user, "alice");
    ck_assert_str_eq(r->rec.client, "oauth:app@" T_ADDR);
    ck_assert_str_eq(r->rec.detail, "oauth2 login: ok");
    free(a);
    assert_no_secret(T_PW);
    assert_no_secret(sid);
}
END_TEST

/* Against fixation (an id from before the login must be worthless): every successful login starts a session
 * under an id and CSRF token of its own, and no session exists before it. */
START_TEST(t_login_fresh_sid)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    char sid[3][OAUTH_TOKEN_BUFLEN], csrf[3][OAUTH_TOKEN_BUFLEN];
    oauth_session_view_t *v = malloc(sizeof(*v));

    ck_assert_ptr_nonnull(v);
    mk_user("alice", STOR_USER_ACTIVE, 1);
    ck_assert_uint_eq(n_sessions(), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(signin(r, "alice", sid[i], csrf[i]), OAUTH_OK);
        ck_assert_uint_eq(n_sessions(), (size_t)i + 1);
        for (int j = 0; j < i; j++) {
            ck_assert_str_ne(sid[i], sid[j]);
            ck_assert_str_ne(csrf[i], csrf[j]);
            ck_assert_str_ne(sid[i], csrf[j]);
        }
    }
    /* each id names its own session: ending one leaves the others */
    oauth_session_end(fx.o, sid[1]);
    ck_assert_int_eq(oauth_session_get(fx.o, sid[1], v), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_session_get(fx.o, sid[0], v), OAUTH_OK);
    ck_assert_str_eq(v->csrf, csrf[0]);
    ck_assert_int_eq(oauth_session_get(fx.o, sid[2], v), OAUTH_OK);
    ck_assert_str_eq(v->csrf, csrf[2]);
    ck_assert_str_eq(v->user, "alice");
    free(r);
    free(v);
}
END_TEST

START_TEST(t_session_set_credential)
{
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], bad[OAUTH_TOKEN_BUFLEN];
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_CREDENTIAL, "", 1);
    oauth_session_view_t *v = malloc(sizeof(*v));
    uint8_t h[32];

    ck_assert_ptr_nonnull(v);
    mk_user("alice", STOR_USER_ACTIVE, 1);
    ck_assert_int_eq(signin(r, "alice", sid, csrf), OAUTH_OK);
    /* unknown session: refused */
    fresh_value(bad, h);
    ck_assert_int_eq(oauth_session_set_credential(fx.o, bad, "c1", "[]"), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_session_set_credential(fx.o, sid, "c1", "[{\"credentialID\":\"c1\"}]"), OAUTH_OK);
    ck_assert_int_eq(oauth_session_get(fx.o, sid, v), OAUTH_OK);
    ck_assert_str_eq(v->req.cred, "c1");
    ck_assert_str_eq(v->req.authz_details, "[{\"credentialID\":\"c1\"}]");
    ck_assert_str_eq(v->user, "alice"); /* the rebuilt session keeps its user and CSRF token */
    ck_assert_str_eq(v->csrf, csrf);
    ck_assert_uint_eq(n_sessions(), 1);
    /* only once: a named credential cannot be replaced */
    ck_assert_int_eq(oauth_session_set_credential(fx.o, sid, "c2", ""), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_session_get(fx.o, sid, v), OAUTH_OK);
    ck_assert_str_eq(v->req.cred, "c1");
    ck_assert_int_eq(oauth_session_set_credential(fx.o, "A123456789012345678901234567890123456789012", "c1", ""),
                     OAUTH_ERR_INVALID);
    free(r);
    free(v);
}
END_TEST

/* A refused login: DENIED, its audit record, and no session. */
static void expect_denied(const char *user, const char *pw, const char *otp, const char *why)
{
    char sid[OAUTH_TOKEN_BUFLEN];
    size_t before = n_sessions();
    auds_t *a;

    ck_assert_int_eq(login(user, pw, otp, T_ADDR, sid), OAUTH_ERR_DENIED);
    ck_assert_str_eq(sid, "");
    ck_assert_uint_eq(n_sessions(), before);
    a = audit_read();
    ck_assert_str_eq(audit_last(a, STOR_EV_LOGIN)->rec.detail, why);
    ck_assert_uint_eq(audit_last(a, STOR_EV_LOGIN)->rec.result, STOR_RES_DENIED);
    free(a);
}

START_TEST(t_login_denied)
{
    oauth_config_t cfg = {.max_failures = 10};
    char otp[7], wrong[7];
    stor_user_t u;

    fx_oauth(cfg);
    mk_user("alice", STOR_USER_ACTIVE, 1);
    mk_user("nototp", STOR_USER_ACTIVE, 0);
    mk_user("susp", STOR_USER_SUSPENDED, 1);
    otp_current(otp);
    memcpy(wrong, otp, sizeof(wrong));
    wrong[5] = otp[5] == '9' ? '0' : (char)(otp[5] + 1);
    expect_denied("alice", "wrong-password", otp, "oauth2 login: wrong password");
    expect_denied("alice", T_PW, wrong, "oauth2 login: wrong OTP");
    expect_denied("alice", T_PW, "12345", "oauth2 login: wrong OTP");
    expect_denied("alice", T_PW, NULL, "oauth2 login: wrong OTP");
    u = get_user("alice");
    ck_assert_uint_eq(u.failed_logins, 4);
    ck_assert_int_eq(u.locked_until, 0);
    ck_assert_int_eq(u.totp_last_step, 0);
    expect_denied("bob", T_PW, otp, "oauth2 login: unknown user");
    expect_denied("", T_PW, otp, "oauth2 login: unknown user");
    expect_denied("nototp", T_PW, otp, "oauth2 login: no TOTP");
    expect_denied("susp", T_PW, otp, "oauth2 login: disabled");
    ck_assert_uint_eq(get_user("susp").failed_logins, 0);
    ck_assert_uint_eq(n_sessions(), 0);
}
END_TEST

START_TEST(t_login_replayed_otp)
{
    char s1[OAUTH_TOKEN_BUFLEN], otp[7], prev[7];

    mk_user("alice", STOR_USER_ACTIVE, 1);
    totp_at(oauth_now() - 30, prev);
    otp_current(otp);
    ck_assert_int_eq(login("alice", T_PW, otp, T_ADDR, s1), OAUTH_OK);
    /* the same code again, and the code of an earlier step: both spent */
    expect_denied("alice", T_PW, otp, "oauth2 login: replayed OTP");
    expect_denied("alice", T_PW, prev, "oauth2 login: replayed OTP");
    ck_assert_uint_eq(get_user("alice").failed_logins, 2);
    ck_assert_uint_eq(n_sessions(), 1);
    session_user(s1, "alice");
}
END_TEST

START_TEST(t_login_lock)
{
    char sid[OAUTH_TOKEN_BUFLEN], otp[7];
    stor_user_t u;
    auds_t *a;

    mk_user("alice", STOR_USER_ACTIVE, 1);
    otp_current(otp);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(login("alice", "bad", otp, T_ADDR, sid), OAUTH_ERR_DENIED);
    /* locked: the right password and code get the answer of a wrong one (the audit record tells), no session */
    ck_assert_int_eq(login("alice", T_PW, otp, T_ADDR, sid), OAUTH_ERR_DENIED);
    ck_assert_str_eq(sid, "");
    ck_assert_uint_eq(n_sessions(), 0);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOCKOUT, STOR_RES_DENIED), 1);
    ck_assert_str_eq(audit_last(a, STOR_EV_LOCKOUT)->rec.client, "oauth:app@" T_ADDR);
    ck_assert_str_eq(audit_last(a, STOR_EV_LOGIN)->rec.detail, "oauth2 login: locked");
    free(a);
    /* the lock ends: the right password and code work again */
    u = get_user("alice");
    u.locked_until = oauth_now() - 1;
    put_user(&u);
    ck_assert_int_eq(login("alice", T_PW, otp, T_ADDR, sid), OAUTH_OK);
    session_user(sid, "alice");
    u = get_user("alice");
    ck_assert_int_eq(u.locked_until, 0);
}
END_TEST

START_TEST(t_login_rate)
{
    char sid[OAUTH_TOKEN_BUFLEN], otp[7];

    with_cfg(0, 0, 0, 60, 3);
    mk_user("alice", STOR_USER_ACTIVE, 1);
    mk_user("bob", STOR_USER_ACTIVE, 1);
    otp_current(otp);
    ck_assert_int_eq(login("nobody", T_PW, otp, "10.9.9.9", sid), OAUTH_ERR_DENIED);
    ck_assert_int_eq(login("nobody", T_PW, otp, "10.9.9.9", sid), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_rate_check(fx.o, "10.9.9.9"), OAUTH_OK);
    ck_assert_int_eq(login("nobody", T_PW, otp, "10.9.9.9", sid), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_rate_check(fx.o, "10.9.9.9"), OAUTH_ERR_RATE);
    /* refused up front, even with the right password: nothing reaches storage, no session */
    ck_assert_int_eq(login("alice", T_PW, otp, "10.9.9.9", sid), OAUTH_ERR_RATE);
    ck_assert_str_eq(sid, "");
    ck_assert_uint_eq(n_sessions(), 0);
    ck_assert_uint_eq(get_user("alice").totp_last_step, 0);
    /* other addresses are not affected */
    ck_assert_int_eq(login("alice", T_PW, otp, "10.9.9.8", sid), OAUTH_OK);
    session_user(sid, "alice");
    /* the window ends (the TOTP code is that of the shifted clock) */
    oauth_int_set_skew(fx.o, 60);
    ck_assert_int_eq(oauth_rate_check(fx.o, "10.9.9.9"), OAUTH_OK);
    totp_at(oauth_now() + 60, otp);
    ck_assert_int_eq(login("bob", T_PW, otp, "10.9.9.9", sid), OAUTH_OK);
    session_user(sid, "bob");
}
END_TEST

static void expect_inval(oauth_t *o, const oauth_authz_request_t *r, const char *user, const char *pw, size_t pwl,
                         const char *otp, size_t otpl, char *sid, char *csrf)
{
    if (sid) {
        memset(sid, 'x', OAUTH_TOKEN_LEN);
        sid[OAUTH_TOKEN_LEN] = '\0';
    }
    if (csrf) {
        memset(csrf, 'x', OAUTH_TOKEN_LEN);
        csrf[OAUTH_TOKEN_LEN] = '\0';
    }
    ck_assert_int_eq(oauth_session_login_new(o, r, user, pw, pwl, otp, otpl, T_ADDR, sid, csrf), OAUTH_ERR_INVAL);
    if (sid)
        ck_assert_str_eq(sid, "");
    if (csrf)
        ck_assert_str_eq(csrf, "");
}

/* Bad arguments: OAUTH_ERR_INVAL, sid and csrf cleared, and nothing checked, counted, written or started. */
START_TEST(t_login_new_inval)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], otp[7];
    stor_user_t u;
    auds_t *a;

    with_cfg(0, 10, 20, 60, 1); /* one failure would put the address over the limit */
    mk_user("alice", STOR_USER_ACTIVE, 1);
    otp_current(otp);
    expect_inval(NULL, r, "alice", T_PW, PWL, otp, 6, sid, csrf);
    expect_inval(fx.o, NULL, "alice", T_PW, PWL, otp, 6, sid, csrf);
    expect_inval(fx.o, r, NULL, T_PW, PWL, otp, 6, sid, csrf);
    expect_inval(fx.o, r, "alice", NULL, 3, otp, 6, sid, csrf);
    expect_inval(fx.o, r, "alice", T_PW, PWL, NULL, 6, sid, csrf);
    expect_inval(fx.o, r, "alice", T_PW, PWL, otp, 6, NULL, csrf);
    expect_inval(fx.o, r, "alice", T_PW, PWL, otp, 6, sid, NULL);
    r->client_id[0] = '\0'; /* not a valid request */
    expect_inval(fx.o, r, "alice", T_PW, PWL, otp, 6, sid, csrf);
    free(r);
    r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    r->scope = 3;
    expect_inval(fx.o, r, "alice", T_PW, PWL, otp, 6, sid, csrf);
    ck_assert_uint_eq(n_sessions(), 0);
    ck_assert_int_eq(oauth_rate_check(fx.o, T_ADDR), OAUTH_OK);
    u = get_user("alice");
    ck_assert_uint_eq(u.failed_logins, 0);
    ck_assert_int_eq(u.totp_last_step, 0);
    a = audit_read();
    ck_assert_uint_eq(a->n, 0);
    free(a);
    /* the same call with good arguments works; a NULL address is one address of its own */
    free(r);
    r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    ck_assert_int_eq(oauth_session_login_new(fx.o, r, "alice", T_PW, PWL, otp, 6, NULL, sid, csrf), OAUTH_OK);
    session_user(sid, "alice");
    free(r);
}
END_TEST

/* ---- the rate limiter ------------------------------------------------------------------ */

START_TEST(t_rate)
{
    char longaddr[200];

    with_cfg(0, 0, 0, 100, 2);
    ck_assert_int_eq(oauth_rate_check(fx.o, "a"), OAUTH_OK);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "a"), OAUTH_OK);
    ck_assert_int_eq(oauth_rate_check(fx.o, "a"), OAUTH_OK);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "a"), OAUTH_ERR_RATE);
    ck_assert_int_eq(oauth_rate_check(fx.o, "a"), OAUTH_ERR_RATE);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "a"), OAUTH_ERR_RATE);
    ck_assert_int_eq(oauth_rate_check(fx.o, "b"), OAUTH_OK);
    oauth_int_set_skew(fx.o, 99);
    ck_assert_int_eq(oauth_rate_check(fx.o, "a"), OAUTH_ERR_RATE);
    oauth_int_set_skew(fx.o, 100); /* the window that began with the first failure is over */
    ck_assert_int_eq(oauth_rate_check(fx.o, "a"), OAUTH_OK);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "a"), OAUTH_OK);
    ck_assert_int_eq(oauth_rate_check(fx.o, "a"), OAUTH_OK);

    /* NULL is its own address; long addresses are cut */
    ck_assert_int_eq(oauth_rate_hit(fx.o, NULL), OAUTH_OK);
    ck_assert_int_eq(oauth_rate_hit(fx.o, NULL), OAUTH_ERR_RATE);
    ck_assert_int_eq(oauth_rate_check(fx.o, ""), OAUTH_ERR_RATE);
    memset(longaddr, 'x', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    ck_assert_int_eq(oauth_rate_hit(fx.o, longaddr), OAUTH_OK);
    longaddr[100] = 'y';
    ck_assert_int_eq(oauth_rate_hit(fx.o, longaddr), OAUTH_ERR_RATE);
    ck_assert_int_eq(oauth_rate_hit(NULL, "a"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_rate_check(NULL, "a"), OAUTH_ERR_INVAL);
}
END_TEST

START_TEST(t_rate_bounded)
{
    with_cfg(0, 0, 0, 100, 2);
    oauth_int_set_caps(fx.o, 0, 0, 2);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "a"), OAUTH_OK);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "a"), OAUTH_ERR_RATE);
    oauth_int_set_skew(fx.o, 1);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "b"), OAUTH_OK);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "b"), OAUTH_ERR_RATE);
    /* a third address evicts the oldest window (a) */
    oauth_int_set_skew(fx.o, 2);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "c"), OAUTH_OK);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "c"), OAUTH_ERR_RATE);
    ck_assert_int_eq(oauth_rate_check(fx.o, "a"), OAUTH_OK);
    ck_assert_int_eq(oauth_rate_check(fx.o, "b"), OAUTH_ERR_RATE);
    /* d takes the place of b, whose window is over; c keeps its count */
    oauth_int_set_skew(fx.o, 101);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "d"), OAUTH_OK);
    ck_assert_int_eq(oauth_rate_check(fx.o, "c"), OAUTH_ERR_RATE);
    ck_assert_int_eq(oauth_rate_hit(fx.o, "d"), OAUTH_ERR_RATE);
}
END_TEST

/* ---- tickets of the sign-in pages (no server state before the password) ------------------- */

START_TEST(t_ticket_round_trip)
{
    char cookie[OAUTH_TICKET_COOKIE_LEN], other[OAUTH_TICKET_COOKIE_LEN], *form = NULL, *form2 = NULL, *p = NULL;
    size_t len = 0, sessions = n_sessions();
    const char *q = "client_id=app&state=a%26b";

    with_cfg(0, 300, 900, 0, 0);
    ck_assert_int_eq(oauth_ticket_new(fx.o, "oauth", cookie), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_new(fx.o, "oauth", other), OAUTH_OK);
    ck_assert_str_ne(cookie, other);
    ck_assert_int_eq(oauth_ticket_form(fx.o, "oauth", cookie, q, strlen(q), &form), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", cookie, form, &p, &len), OAUTH_OK);
    ck_assert_uint_eq(len, strlen(q));
    ck_assert_str_eq(p, q);
    free(p);
    p = NULL;
    /* nothing was kept */
    ck_assert_uint_eq(n_sessions(), sessions);
    /* another cookie, another page, an altered token or cookie: refused */
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", other, form, &p, &len), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_ticket_check(fx.o, "approve", cookie, form, &p, &len), OAUTH_ERR_INVALID);
    ck_assert_ptr_null(p);
    form[0] = form[0] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", cookie, form, &p, &len), OAUTH_ERR_INVALID);
    form[0] = form[0] == 'A' ? 'B' : 'A';
    cookie[3] = cookie[3] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", cookie, form, &p, &len), OAUTH_ERR_INVALID);
    cookie[3] = cookie[3] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", cookie, "", &p, &len), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", cookie, NULL, &p, &len), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", "x.1.y", form, &p, &len), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_ticket_form(fx.o, "oauth", "x.1.y", q, strlen(q), &form2), OAUTH_ERR_INVALID);
    /* an empty payload */
    ck_assert_int_eq(oauth_ticket_form(fx.o, "approve", other, "", 0, &form2), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_ticket_new(fx.o, "approve", other), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_form(fx.o, "approve", other, "", 0, &form2), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_check(fx.o, "approve", other, form2, &p, &len), OAUTH_OK);
    ck_assert_uint_eq(len, 0);
    free(p);
    free(form);
    free(form2);
}
END_TEST

/* The key csc-sam gives every node (oauth_ticket_set_key): a ticket and form of one handle pass on another with the same
 * key (another node, or this one after a restart), never under another key or the random key of oauth_new(). */
START_TEST(t_ticket_shared_key)
{
    static const uint8_t key[OAUTH_TICKET_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                                      17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
    uint8_t other_key[OAUTH_TICKET_KEY_LEN];
    char cookie[OAUTH_TICKET_COOKIE_LEN], *form = NULL, *form2 = NULL, *p = NULL;
    size_t len = 0;
    const char *q = "client_id=app&state=s";
    oauth_t *o2 = fx_second_handle(FX_CHAL_KEY), *o3 = fx_second_handle(FX_CHAL_KEY);

    memcpy(other_key, key, sizeof(other_key));
    other_key[31] ^= 1;
    /* each handle's random key: what one made, the other refuses */
    ck_assert_int_eq(oauth_ticket_new(fx.o, "oauth", cookie), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_form(fx.o, "oauth", cookie, q, strlen(q), &form), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_check(o2, "oauth", cookie, form, &p, &len), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_ticket_form(o2, "oauth", cookie, q, strlen(q), &form2), OAUTH_ERR_INVALID);
    free(form);
    form = NULL;
    /* the same key on both: either one's ticket and form pass on the other */
    ck_assert_int_eq(oauth_ticket_set_key(fx.o, key, sizeof(key)), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_set_key(o2, key, sizeof(key)), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_set_key(o3, other_key, sizeof(other_key)), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_new(fx.o, "oauth", cookie), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_form(fx.o, "oauth", cookie, q, strlen(q), &form), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_check(o2, "oauth", cookie, form, &p, &len), OAUTH_OK);
    ck_assert_str_eq(p, q);
    free(p);
    p = NULL;
    ck_assert_int_eq(oauth_ticket_form(o2, "oauth", cookie, q, strlen(q), &form2), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", cookie, form2, &p, &len), OAUTH_OK);
    free(p);
    p = NULL;
    /* another key (one bit apart): neither the cookie nor the form */
    ck_assert_int_eq(oauth_ticket_check(o3, "oauth", cookie, form, &p, &len), OAUTH_ERR_INVALID);
    free(form2);
    form2 = NULL;
    ck_assert_int_eq(oauth_ticket_form(o3, "oauth", cookie, q, strlen(q), &form2), OAUTH_ERR_INVALID);
    ck_assert_ptr_null(p);
    /* a key of another length, or none: refused, and the key in use stays */
    ck_assert_int_eq(oauth_ticket_set_key(o2, other_key, sizeof(other_key) - 1), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_ticket_set_key(o2, NULL, sizeof(key)), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_ticket_set_key(NULL, key, sizeof(key)), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_ticket_check(o2, "oauth", cookie, form, &p, &len), OAUTH_OK);
    free(p);
    free(form);
    oauth_free(o2);
    oauth_free(o3);
}
END_TEST

START_TEST(t_ticket_timeouts_and_bounds)
{
    char cookie[OAUTH_TICKET_COOKIE_LEN], *form = NULL, *p = NULL, *big = malloc(OAUTH_TICKET_PAYLOAD_MAX + 1);
    size_t len;

    ck_assert_ptr_nonnull(big);
    with_cfg(0, 30, 100, 0, 0);
    ck_assert_int_eq(oauth_ticket_new(fx.o, "oauth", cookie), OAUTH_OK);
    ck_assert_int_eq(oauth_ticket_form(fx.o, "oauth", cookie, "a=b", 3, &form), OAUTH_OK);
    /* idle: the form token lives session_idle seconds */
    oauth_int_set_skew(fx.o, 29);
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", cookie, form, &p, &len), OAUTH_OK);
    free(p);
    oauth_int_set_skew(fx.o, 30);
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", cookie, form, &p, &len), OAUTH_ERR_EXPIRED);
    free(form);
    /* a new page renews it, but never past the absolute limit */
    oauth_int_set_skew(fx.o, 90);
    ck_assert_int_eq(oauth_ticket_form(fx.o, "oauth", cookie, "a=b", 3, &form), OAUTH_OK);
    oauth_int_set_skew(fx.o, 99);
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", cookie, form, &p, &len), OAUTH_OK);
    free(p);
    oauth_int_set_skew(fx.o, 100);
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", cookie, form, &p, &len), OAUTH_ERR_EXPIRED);
    ck_assert_int_eq(oauth_ticket_form(fx.o, "oauth", cookie, "a=b", 3, &p), OAUTH_ERR_EXPIRED);
    free(form);
    oauth_int_set_skew(fx.o, 0);
    /* the payload is bounded */
    memset(big, 'q', OAUTH_TICKET_PAYLOAD_MAX + 1);
    ck_assert_int_eq(oauth_ticket_form(fx.o, "oauth", cookie, big, OAUTH_TICKET_PAYLOAD_MAX + 1, &form),
                     OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_ticket_form(fx.o, "oauth", cookie, big, OAUTH_TICKET_PAYLOAD_MAX, &form), OAUTH_OK);
    ck_assert_uint_le(strlen(form), OAUTH_TICKET_FORM_MAX);
    ck_assert_int_eq(oauth_ticket_check(fx.o, "oauth", cookie, form, &p, &len), OAUTH_OK);
    ck_assert_uint_eq(len, OAUTH_TICKET_PAYLOAD_MAX);
    free(p);
    free(form);
    free(big);
}
END_TEST

START_TEST(t_login_new_starts_the_session_only_after_the_password)
{
    oauth_authz_request_t *r = mk_req("app", STOR_SCOPE_SERVICE, NULL, 0);
    oauth_session_view_t *v = malloc(sizeof(*v));
    char sid[OAUTH_TOKEN_BUFLEN], csrf[OAUTH_TOKEN_BUFLEN], otp[7];
    size_t before;

    ck_assert_ptr_nonnull(v);
    mk_user("alice", STOR_USER_ACTIVE, 1);
    before = n_sessions();
    ck_assert_int_eq(oauth_session_login_new(fx.o, r, "alice", "wrong", 5, "000000", 6, T_ADDR, sid, csrf),
                     OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_session_login_new(fx.o, r, "nobody", T_PW, PWL, "000000", 6, T_ADDR, sid, csrf),
                     OAUTH_ERR_DENIED);
    ck_assert_str_eq(sid, "");
    ck_assert_uint_eq(n_sessions(), before);
    otp_current(otp);
    ck_assert_int_eq(oauth_session_login_new(fx.o, r, "alice", T_PW, PWL, otp, 6, T_ADDR, sid, csrf), OAUTH_OK);
    ck_assert_uint_eq(n_sessions(), before + 1);
    ck_assert_int_eq(oauth_session_get(fx.o, sid, v), OAUTH_OK);
    ck_assert_str_eq(v->user, "alice");
    ck_assert_str_eq(v->csrf, csrf);
    ck_assert_str_eq(v->req.client_id, "app");
    free(v);
    free(r);
}
END_TEST

/* The pages' sign-in: a failure whose batch runs again (STOR_ERR_RETRY at its first commit) is recorded once and a
 * repeat counted once (see t_login_fail_rerun). */
START_TEST(t_login_new_fail_rerun)
{
    char sid[OAUTH_TOKEN_BUFLEN];
    auds_t *a;

    mk_user("alice", STOR_USER_ACTIVE, 1);
    sf_install(fx.stor);
    sf_arm(SF_COMMIT, STOR_DB_AUDIT, SF_WRITE_TXN, 1, STOR_ERR_RETRY, 0);
    ck_assert_int_eq(login("alice", "wrong", "000000", T_ADDR, sid), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(sf_fired(), 1);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 1);
    free(a);
    sf_arm(SF_COMMIT, STOR_DB_USERS, SF_WRITE_TXN, 1, STOR_ERR_RETRY, 0);
    ck_assert_int_eq(login("alice", "wrong", "000000", T_ADDR, sid), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_int_eq(oauth_fail_flush(fx.o, oauth_now(), 1), OAUTH_OK);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 2);
    ck_assert_ptr_nonnull(strstr(audit_last(a, STOR_EV_LOGIN)->rec.detail, "[repeated count=1 within "));
    free(a);
}
END_TEST

Suite *suite_session(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("session");

    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, t_par_put_take);
    tcase_add_test(tc, t_login_new_fail_rerun);
    tcase_add_test(tc, t_par_inval);
    tcase_add_test(tc, t_par_expiry_and_bound);
    tcase_add_test(tc, t_par_other_node);
    tcase_add_test(tc, t_session_new_get_end);
    tcase_add_test(tc, t_session_timeouts);
    tcase_add_test(tc, t_session_bound);
    tcase_add_test(tc, t_session_ends_after_operator_reset);
    tcase_add_test(tc, t_login_ok);
    tcase_add_test(tc, t_session_set_credential);
    tcase_add_test(tc, t_login_fresh_sid);
    tcase_add_test(tc, t_login_denied);
    tcase_add_test(tc, t_login_replayed_otp);
    tcase_add_test(tc, t_login_lock);
    tcase_add_test(tc, t_login_rate);
    tcase_add_test(tc, t_login_new_inval);
    tcase_add_test(tc, t_rate);
    tcase_add_test(tc, t_rate_bounded);
    tcase_add_test(tc, t_ticket_round_trip);
    tcase_add_test(tc, t_ticket_timeouts_and_bounds);
    tcase_add_test(tc, t_ticket_shared_key);
    tcase_add_test(tc, t_login_new_starts_the_session_only_after_the_password);
    suite_add_tcase(s, tc);
    return s;
}
