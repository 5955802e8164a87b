/* test_token.c - login, refresh, token validation and revocation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_oauth.h"
#include "stor_fault.h"

#define PWL strlen(T_PW)

static void login_ok(const char *user, int remember, oauth_tokens_t *t)
{
    ck_assert_int_eq(oauth_login(fx.o, user, T_PW, PWL, remember, "10.0.0.1", t), OAUTH_OK);
    ck_assert_uint_eq(strlen(t->access), OAUTH_TOKEN_LEN);
}

static void principal(const char *token, oauth_principal_t *p)
{
    ck_assert_int_eq(oauth_token_check(fx.o, token, strlen(token), p), OAUTH_OK);
}

static int check(const char *token)
{
    oauth_principal_t p;

    return oauth_token_check(fx.o, token, strlen(token), &p);
}

static int refresh(const char *token, oauth_tokens_t *t)
{
    return oauth_login_refresh(fx.o, token, strlen(token), "10.0.0.2", t);
}

static void stored_token(const char *value, stor_token_t *out)
{
    uint8_t h[32];

    sha256_of(value, strlen(value), h);
    ck_assert_int_eq(get_token(h, out), STOR_OK);
}

/* A token record written straight into storage; value returned. */
static void direct_token(char value[OAUTH_TOKEN_BUFLEN], uint32_t kind, const char *user, int64_t expires_at,
                         uint32_t revoked)
{
    stor_token_t t;

    memset(&t, 0, sizeof(t));
    fresh_value(value, t.hash);
    t.kind = kind;
    t.scope = STOR_SCOPE_SERVICE;
    snprintf(t.user, sizeof(t.user), "%s", user);
    t.issued_at = oauth_now() - 7200;
    t.expires_at = expires_at;
    t.revoked = revoked;
    put_token(&t);
}

static int zeroed(const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* ---- oauth_new ------------------------------------------------------------ */

START_TEST(t_new_config)
{
    oauth_config_t cfg;
    oauth_t *o = (oauth_t *)&cfg;
    const oauth_config_t *c;

    memset(&cfg, 0, sizeof(cfg));
    ck_assert_int_eq(oauth_new(NULL, &o), OAUTH_ERR_INVAL);
    ck_assert_ptr_null(o);
    ck_assert_int_eq(oauth_new(&cfg, &o), OAUTH_ERR_INVAL);   /* no storage */
    ck_assert_int_eq(oauth_new(&cfg, NULL), OAUTH_ERR_INVAL);
    cfg.stor = fx.stor;
    cfg.totp_window = OAUTH_TOTP_WINDOW_MAX + 1;
    ck_assert_int_eq(oauth_new(&cfg, &o), OAUTH_ERR_INVAL);
    cfg.totp_window = 0;
    ck_assert_int_eq(oauth_new(&cfg, &o), OAUTH_OK);
    c = oauth_config(o);
    ck_assert_ptr_eq(c->stor, fx.stor);
    ck_assert_uint_eq(c->access_ttl, 3600);
    ck_assert_uint_eq(c->refresh_ttl, 30u * 24 * 3600);
    ck_assert_uint_eq(c->sad_ttl, 300);
    ck_assert_uint_eq(c->max_failures, 5);
    ck_assert_uint_eq(c->lock_seconds, 900);
    ck_assert_uint_eq(c->totp_window, 1);
    ck_assert_uint_eq(c->code_ttl, 60);
    ck_assert_uint_eq(c->par_ttl, 90);
    ck_assert_uint_eq(c->credential_token_ttl, 300);
    ck_assert_uint_eq(c->session_idle, 300);
    ck_assert_uint_eq(c->session_max, 900);
    ck_assert_uint_eq(c->rate_window, 60);
    ck_assert_uint_eq(c->rate_max, 20);
    oauth_free(o);
    cfg = (oauth_config_t){.stor = fx.stor, .access_ttl = 10, .refresh_ttl = 20, .sad_ttl = 30, .max_failures = 2,
                           .lock_seconds = 40, .totp_window = 3, .code_ttl = 5, .par_ttl = 6,
                           .credential_token_ttl = 7, .session_idle = 8, .session_max = 9, .rate_window = 11,
                           .rate_max = 12};
    ck_assert_int_eq(oauth_new(&cfg, &o), OAUTH_OK);
    c = oauth_config(o);
    ck_assert_uint_eq(c->access_ttl, 10);
    ck_assert_uint_eq(c->refresh_ttl, 20);
    ck_assert_uint_eq(c->sad_ttl, 30);
    ck_assert_uint_eq(c->max_failures, 2);
    ck_assert_uint_eq(c->lock_seconds, 40);
    ck_assert_uint_eq(c->totp_window, 3);
    ck_assert_uint_eq(c->code_ttl, 5);
    ck_assert_uint_eq(c->par_ttl, 6);
    ck_assert_uint_eq(c->credential_token_ttl, 7);
    ck_assert_uint_eq(c->session_idle, 8);
    ck_assert_uint_eq(c->session_max, 9);
    ck_assert_uint_eq(c->rate_window, 11);
    ck_assert_uint_eq(c->rate_max, 12);
    oauth_free(o);
    oauth_free(NULL);
    ck_assert_ptr_null(oauth_config(NULL));
}
END_TEST

/* ---- login ---------------------------------------------------------------- */

START_TEST(t_login_ok)
{
    oauth_tokens_t t;
    oauth_principal_t p;
    stor_token_t st;
    uint8_t ref[16];
    int64_t now = oauth_now();
    auds_t *a;
    const aud_t *r;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    login_ok("alice", 0, &t);
    ck_assert_str_eq(t.refresh, "");
    ck_assert_uint_eq(t.expires_in, 3600);
    principal(t.access, &p);
    ck_assert_str_eq(p.user, "alice");
    ck_assert_uint_eq(p.scope, STOR_SCOPE_SERVICE);
    ref_of(t.access, ref);
    ck_assert_mem_eq(p.ref, ref, 16);
    ck_assert_int_ge(p.expires_at, now + 3600);
    ck_assert_int_le(p.expires_at, now + 3602);
    stored_token(t.access, &st);
    ck_assert_uint_eq(st.kind, STOR_TOKEN_ACCESS);
    ck_assert_str_eq(st.user, "alice");
    ck_assert_uint_eq(st.revoked, 0);
    ck_assert_mem_eq(st.grant, p.grant, 16);
    ck_assert(!zeroed(st.grant, 16));
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_OK), 1);
    ck_assert_ptr_nonnull(r = audit_last(a, STOR_EV_LOGIN));
    ck_assert_str_eq(r->rec.user, "alice");
    ck_assert_str_eq(r->rec.client, "10.0.0.1");
    ck_assert_mem_eq(r->rec.authz_ref, ref, 16);
    free(a);
    assert_no_secret(T_PW);
    assert_no_secret(t.access);
    /* each login is a new grant with new tokens */
    oauth_tokens_t t2;
    oauth_principal_t p2;
    login_ok("alice", 0, &t2);
    principal(t2.access, &p2);
    ck_assert_str_ne(t.access, t2.access);
    ck_assert_int_ne(memcmp(p.grant, p2.grant, 16), 0);
}
END_TEST

START_TEST(t_login_remember)
{
    oauth_tokens_t t;
    stor_token_t a, r;
    int64_t now = oauth_now();

    mk_user("alice", STOR_USER_ACTIVE, 0);
    login_ok("alice", 1, &t);
    ck_assert_uint_eq(strlen(t.refresh), OAUTH_TOKEN_LEN);
    ck_assert_str_ne(t.access, t.refresh);
    stored_token(t.access, &a);
    stored_token(t.refresh, &r);
    ck_assert_uint_eq(r.kind, STOR_TOKEN_REFRESH);
    ck_assert_mem_eq(a.grant, r.grant, 16);
    ck_assert_int_ge(r.expires_at, now + 30 * 86400);
    ck_assert_int_le(r.expires_at, now + 30 * 86400 + 2);
    /* a refresh token is not a bearer access token */
    ck_assert_int_eq(check(t.refresh), OAUTH_ERR_INVALID);
    assert_no_secret(t.refresh);
}
END_TEST

START_TEST(t_login_wrong_password)
{
    oauth_tokens_t t;
    stor_user_t u;
    auds_t *a;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    memset(&t, 'x', sizeof(t));
    ck_assert_int_eq(oauth_login(fx.o, "alice", "Wrong-Pass-5531", 15, 1, "c", &t), OAUTH_ERR_DENIED);
    ck_assert(zeroed(&t, sizeof(t)));
    u = get_user("alice");
    ck_assert_uint_eq(u.failed_logins, 1);
    ck_assert_int_eq(u.locked_until, 0);
    /* a prefix of the right password is still wrong */
    ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, PWL - 1, 0, "c", &t), OAUTH_ERR_DENIED);
    u = get_user("alice");
    ck_assert_uint_eq(u.failed_logins, 2);
    u.failed_logins = 0;
    put_user(&u);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "", 0, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_login(fx.o, "alice", NULL, 0, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(get_user("alice").failed_logins, 2);
    /* the same failure of the same address and name: one record, the repeats counted in memory */
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 1);
    free(a);
    ck_assert_int_eq(oauth_fail_flush(fx.o, oauth_now(), 1), OAUTH_OK);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 2);
    ck_assert_str_eq(audit_last(a, STOR_EV_LOGIN)->rec.detail,
                     "password: wrong password [repeated count=3 within 60 s]");
    ck_assert_str_eq(audit_last(a, STOR_EV_LOGIN)->rec.user, "alice");
    ck_assert_str_eq(audit_last(a, STOR_EV_LOGIN)->rec.client, "c");
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_OK), 0);
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOCKOUT, STOR_RES_DENIED), 0);
    free(a);
    assert_no_secret("Wrong-Pass-5531");
}
END_TEST

START_TEST(t_login_unknown_user)
{
    oauth_tokens_t t;
    char long_name[STOR_NAME_MAX + 2];
    auds_t *a;
    const aud_t *r;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    ck_assert_int_eq(oauth_login(fx.o, "nobody", T_PW, PWL, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_str_eq(t.access, "");
    memset(long_name, 'a', sizeof(long_name));
    long_name[sizeof(long_name) - 1] = '\0';
    ck_assert_int_eq(oauth_login(fx.o, long_name, T_PW, PWL, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_login(fx.o, "", T_PW, PWL, 0, "c", &t), OAUTH_ERR_DENIED);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 3);
    ck_assert_ptr_nonnull(r = audit_last(a, STOR_EV_LOGIN));
    free(a);
    /* alice is unaffected */
    ck_assert_uint_eq(get_user("alice").failed_logins, 0);
    assert_no_secret(T_PW);
}
END_TEST

/* A failed login whose batch runs again (its first commit answered STOR_ERR_RETRY, as a lost PostgreSQL connection
 * does) is recorded once: the record of the window it opens is written, and a repeat is counted once. (The first
 * run changed the in-memory table: the rerun found its own window open and only counted, losing the record, and a
 * repeat was counted twice.) */
START_TEST(t_login_fail_rerun)
{
    oauth_tokens_t t;
    auds_t *a;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    sf_install(fx.stor);
    sf_arm(SF_COMMIT, STOR_DB_AUDIT, SF_WRITE_TXN, 1, STOR_ERR_RETRY, 0);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(sf_fired(), 1);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 1);
    free(a);
    sf_arm(SF_COMMIT, STOR_DB_USERS, SF_WRITE_TXN, 1, STOR_ERR_RETRY, 0);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(sf_fired(), 1);
    sf_disarm();
    ck_assert_uint_eq(get_user("alice").failed_logins, 2);
    ck_assert_int_eq(oauth_fail_flush(fx.o, oauth_now(), 1), OAUTH_OK);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 2);
    ck_assert_str_eq(audit_last(a, STOR_EV_LOGIN)->rec.detail,
                     "password: wrong password [repeated count=1 within 60 s]");
    free(a);
}
END_TEST

START_TEST(t_login_lockout)
{
    oauth_tokens_t t;
    stor_user_t u;
    int64_t now = oauth_now();
    auds_t *a;
    const aud_t *r;
    int i;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    u = get_user("alice");
    ck_assert_uint_eq(u.failed_logins, 0);
    ck_assert_int_ge(u.locked_until, now + 900);
    ck_assert_int_le(u.locked_until, now + 902);
    /* locked: even the right password is refused, like a wrong one, and nothing is counted */
    ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, PWL, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_str_eq(t.access, "");
    ck_assert_uint_eq(get_user("alice").failed_logins, 0);
    ck_assert_int_eq(oauth_fail_flush(fx.o, oauth_now(), 1), OAUTH_OK);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOCKOUT, STOR_RES_DENIED), 1);
    ck_assert_ptr_nonnull(r = audit_last(a, STOR_EV_LOCKOUT));
    ck_assert_str_eq(r->rec.user, "alice");
    ck_assert_str_eq(r->rec.cred, "");
    ck_assert_ptr_nonnull(strstr(r->rec.detail, "user locked for 900 s until "));
    ck_assert_ptr_nonnull(strstr(r->rec.detail, "(lock 1 since the last success)"));
    /* 3 wrong passwords (a record and a count of 2), 2 refusals while locked (a record and a count of 1) */
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 4);
    ck_assert_str_eq(audit_last(a, STOR_EV_LOGIN)->rec.detail, "password: locked [repeated count=1 within 60 s]");
    free(a);
}
END_TEST

START_TEST(t_login_lock_expires)
{
    oauth_tokens_t t;
    stor_user_t u;
    oauth_config_t cfg = {0};

    cfg.max_failures = 2;
    cfg.lock_seconds = 600; /* not 1: three scrypt checks on a loaded machine took longer, and the lock was over */
    fx_oauth(cfg);
    mk_user("alice", STOR_USER_ACTIVE, 0);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, PWL, 0, "c", &t), OAUTH_ERR_DENIED);
    /* move the lock into the past instead of sleeping */
    u = get_user("alice");
    ck_assert_int_gt(u.locked_until, 0);
    u.locked_until = oauth_now() - 1;
    put_user(&u);
    login_ok("alice", 0, &t);
    u = get_user("alice");
    ck_assert_int_eq(u.locked_until, 0);
    ck_assert_uint_eq(u.failed_logins, 0);
}
END_TEST

/* Each lock lasts twice the one before, up to lock_max_seconds; a success starts over. */
START_TEST(t_login_lock_escalates)
{
    static const int64_t expect[] = {10, 20, 35, 35};
    oauth_tokens_t t;
    oauth_config_t cfg = {0};
    stor_user_t u;
    auds_t *a;

    cfg.max_failures = 1;
    cfg.lock_seconds = 10;
    cfg.lock_max_seconds = 35;
    fx_oauth(cfg);
    mk_user("alice", STOR_USER_ACTIVE, 0);
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        int64_t now = oauth_now();
        ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
        u = get_user("alice");
        ck_assert_uint_eq(u.locks, i + 1);
        ck_assert_int_ge(u.locked_until, now + expect[i]);
        ck_assert_int_le(u.locked_until, now + expect[i] + 2);
        /* while locked, even the right password is refused and nothing more is counted */
        ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, PWL, 0, "c", &t), OAUTH_ERR_DENIED);
        ck_assert_uint_eq(get_user("alice").locks, i + 1);
        u.locked_until = oauth_now() - 1; /* the lock ends */
        put_user(&u);
    }
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOCKOUT, STOR_RES_DENIED), 4);
    ck_assert_ptr_nonnull(strstr(audit_last(a, STOR_EV_LOCKOUT)->rec.detail, "locked for 35 s"));
    free(a);
    login_ok("alice", 0, &t);
    u = get_user("alice");
    ck_assert_uint_eq(u.locks, 0);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_int_le(get_user("alice").locked_until, oauth_now() + 12);
}
END_TEST

/* Failures of one address and name: a record per window, then one with the count once the window ended. */
START_TEST(t_login_failures_aggregated)
{
    oauth_tokens_t t;
    oauth_config_t cfg = {0};
    auds_t *a;
    uint64_t total = 0;

    cfg.max_failures = 100;
    cfg.fail_window = 30;
    cfg.fail_entries = 16;
    fx_oauth(cfg);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(oauth_login(fx.o, "ghost", "bad", 3, 0, "10.0.0.1", &t), OAUTH_ERR_DENIED);
    /* another address: a key of its own */
    ck_assert_int_eq(oauth_login(fx.o, "ghost", "bad", 3, 0, "10.0.0.2", &t), OAUTH_ERR_DENIED);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 2);
    free(a);
    /* past the window: the next failure first writes the ended window's count, then starts a new one */
    oauth_int_set_skew(fx.o, 31);
    ck_assert_int_eq(oauth_login(fx.o, "ghost", "bad", 3, 0, "10.0.0.1", &t), OAUTH_ERR_DENIED);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 4);
    for (size_t i = 0; i < a->n; i++) {
        const char *m = strstr(a->r[i].rec.detail, "count=");
        if (a->r[i].rec.event == STOR_EV_LOGIN && strcmp(a->r[i].rec.client, "10.0.0.1") == 0)
            total += m ? strtoull(m + 6, NULL, 10) : 1;
    }
    ck_assert_uint_eq(total, 51);
    free(a);
    /* more pairs than the table holds: the extra ones are written one by one, none is lost */
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof(name), "g%d", i);
        ck_assert_int_eq(oauth_login(fx.o, name, "bad", 3, 0, "10.0.0.3", &t), OAUTH_ERR_DENIED);
        ck_assert_int_eq(oauth_login(fx.o, name, "bad", 3, 0, "10.0.0.3", &t), OAUTH_ERR_DENIED);
    }
    ck_assert_int_eq(oauth_fail_flush(fx.o, oauth_clock(fx.o), 1), OAUTH_OK);
    a = audit_read();
    total = 0;
    for (size_t i = 0; i < a->n; i++) {
        const char *m = strstr(a->r[i].rec.detail, "count=");
        if (a->r[i].rec.event == STOR_EV_LOGIN && strcmp(a->r[i].rec.client, "10.0.0.3") == 0)
            total += m ? strtoull(m + 6, NULL, 10) : 1;
    }
    ck_assert_uint_eq(total, 40);
    free(a);
}
END_TEST

START_TEST(t_login_success_resets)
{
    oauth_tokens_t t;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(get_user("alice").failed_logins, 2);
    login_ok("alice", 0, &t);
    ck_assert_uint_eq(get_user("alice").failed_logins, 0);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_login(fx.o, "alice", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_int_eq(get_user("alice").locked_until, 0);
    login_ok("alice", 0, &t);
}
END_TEST

START_TEST(t_login_disabled)
{
    oauth_tokens_t t;

    mk_user("sue", STOR_USER_SUSPENDED, 0);
    mk_user("tom", STOR_USER_TERMINATED, 0);
    ck_assert_int_eq(oauth_login(fx.o, "sue", T_PW, PWL, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_int_eq(oauth_login(fx.o, "tom", T_PW, PWL, 1, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_str_eq(t.access, "");
    ck_assert_str_eq(t.refresh, "");
    ck_assert_int_eq(oauth_login(fx.o, "sue", "bad", 3, 0, "c", &t), OAUTH_ERR_DENIED);
    ck_assert_uint_eq(get_user("sue").failed_logins, 0);
    ck_assert_int_eq(oauth_fail_flush(fx.o, oauth_now(), 1), OAUTH_OK);
    auds_t *a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 3); /* sue, tom, sue's repeat counted */
    free(a);
}
END_TEST

START_TEST(t_login_inval)
{
    oauth_tokens_t t;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    ck_assert_int_eq(oauth_login(NULL, "alice", T_PW, PWL, 0, "c", &t), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_login(fx.o, NULL, T_PW, PWL, 0, "c", &t), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_login(fx.o, "alice", NULL, 3, 0, "c", &t), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, PWL, 0, "c", NULL), OAUTH_ERR_INVAL);
    /* a NULL client is fine */
    ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, PWL, 0, NULL, &t), OAUTH_OK);
}
END_TEST

typedef struct {
    unsigned n;
    unsigned seq;
} fill_t;

/* Audit records: every oauth write appends one, so when one more does not fit, no oauth write fits. */
static int fill_cb(stor_txn_t *t, void *arg)
{
    fill_t *f = arg;
    stor_audit_t rec;
    int rc = 0;

    for (unsigned i = 0; i < f->n && rc >= 0; i++) {
        memset(&rec, 0, sizeof(rec));
        rec.event = STOR_EV_ADMIN;
        snprintf(rec.detail, sizeof(rec.detail), "filler %u", f->seq + i);
        rc = stor_txn_audit_append(t, &rec);
    }
    return rc < 0 ? rc : 0;
}

/* Fill the map until not even one more audit record fits. A failed write still
 * commits the (empty) group transaction, which lets LMDB reuse pages freed two
 * commits back; so keep going until several writes in a row have failed. */
static void fill_up(fill_t *f)
{
    int rc, fails;

    for (unsigned batch = 256; batch >= 1; batch /= 4) {
        f->n = batch;
        for (fails = 0; fails < (batch == 1 ? 4 : 1);) {
            if ((rc = stor_write(fx.stor, fill_cb, f)) == STOR_OK) {
                f->seq += batch;
                fails = 0;
            } else {
                ck_assert_int_eq(rc, STOR_ERR_FULL);
                fails++;
            }
        }
    }
}

/* A full map makes writes fail: the answer is OAUTH_ERR_STORAGE, and nothing is half-done. */
START_TEST(t_storage_full)
{
    char dir[128], sad[OAUTH_TOKEN_BUFLEN], sad0[OAUTH_TOKEN_BUFLEN];
    stor_config_t sc;
    oauth_config_t cfg;
    oauth_tokens_t t, t2;
    oauth_principal_t p;
    fill_t f = {0, 1};
    uint8_t d[32] = {7}, ref[16];
    const uint8_t *dp[1] = {d};
    oauth_factors_t fac = {T_PIN, strlen(T_PIN), NULL, 0, NULL, 0};
    oauth_sad_request_t req = {.user = "alice", .cred = "c1", .num_signatures = 2, .hash_alg = "2.16.840.1.101.3.4.2.1",
                               .digests = dp, .digest_len = 32, .n_digests = 1, .client = "c"};
    oauth_sign_use_t use = {"alice", "c1", "2.16.840.1.101.3.4.2.1", dp, 32, 1, "c", "x", NULL};
    unsigned exp;

    oauth_free(fx.o);
    stor_close(fx.stor);
    fx.o = NULL;
    snprintf(dir, sizeof(dir), "%s/small", fx.dir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    memset(&sc, 0, sizeof(sc));
    sc.location = dir;
    sc.map_size = 1u << 20;
    ck_assert_int_eq(stor_open(&sc, &fx.stor), STOR_OK);
    memset(&cfg, 0, sizeof(cfg));
    fx_oauth(cfg);
    mk_user("alice", STOR_USER_ACTIVE, 0);
    mk_cred("c1", "alice", 1, "PIN");
    login_ok("alice", 1, &t2);
    principal(t2.access, &p);
    ck_assert_int_eq(oauth_authorize(fx.o, &req, &fac, sad0, &exp), OAUTH_OK);

    fill_up(&f);
    ck_assert_int_eq(oauth_login(fx.o, "alice", T_PW, PWL, 1, "c", &t), OAUTH_ERR_STORAGE);
    ck_assert_str_eq(t.access, "");
    ck_assert_str_eq(t.refresh, "");
    fill_up(&f);
    ck_assert_int_eq(oauth_login_refresh(fx.o, t2.refresh, OAUTH_TOKEN_LEN, "c", &t), OAUTH_ERR_STORAGE);
    ck_assert_str_eq(t.access, "");
    fill_up(&f);
    ck_assert_int_eq(oauth_token_revoke(fx.o, &p, t2.refresh, OAUTH_TOKEN_LEN, OAUTH_HINT_NONE, "c"),
                     OAUTH_ERR_STORAGE);
    fill_up(&f);
    ck_assert_int_eq(oauth_authorize(fx.o, &req, &fac, sad, &exp), OAUTH_ERR_STORAGE);
    ck_assert_str_eq(sad, "");
    fill_up(&f);
    ck_assert_int_eq(oauth_sad_consume(fx.o, sad0, OAUTH_TOKEN_LEN, &use, ref), OAUTH_ERR_STORAGE);
    fill_up(&f);
    ck_assert_int_eq(oauth_sign_failed(fx.o, sad0, OAUTH_TOKEN_LEN, &use, ref, "r"), OAUTH_ERR_STORAGE);
    /* nothing half-done: the grant was not revoked, reads still work */
    ck_assert_int_eq(oauth_token_check(fx.o, t2.access, OAUTH_TOKEN_LEN, &p), OAUTH_OK);
}
END_TEST

/* ---- refresh -------------------------------------------------------------- */

START_TEST(t_refresh_flow)
{
    oauth_tokens_t t, n;
    oauth_principal_t p, q;
    uint8_t ref[16];
    auds_t *a;
    const aud_t *r;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    login_ok("alice", 1, &t);
    principal(t.access, &p);
    memset(&n, 'x', sizeof(n));
    ck_assert_int_eq(refresh(t.refresh, &n), OAUTH_OK);
    ck_assert_uint_eq(strlen(n.access), OAUTH_TOKEN_LEN);
    ck_assert_str_eq(n.refresh, "");
    ck_assert_uint_eq(n.expires_in, 3600);
    ck_assert_str_ne(n.access, t.access);
    principal(n.access, &q);
    ck_assert_str_eq(q.user, "alice");
    ck_assert_mem_eq(q.grant, p.grant, 16);
    /* the old access token stays valid, the refresh token can be used again */
    principal(t.access, &p);
    ck_assert_int_eq(refresh(t.refresh, &n), OAUTH_OK);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_OK), 3);
    ck_assert_ptr_nonnull(r = audit_last(a, STOR_EV_LOGIN));
    ref_of(n.access, ref);
    ck_assert_mem_eq(r->rec.authz_ref, ref, 16);
    ck_assert_str_eq(r->rec.client, "10.0.0.2");
    ck_assert_str_eq(r->rec.user, "alice");
    ck_assert_str_eq(r->rec.detail, "refresh");
    free(a);
    assert_no_secret(t.refresh);
    assert_no_secret(n.access);
}
END_TEST

START_TEST(t_refresh_errors)
{
    oauth_tokens_t t, n;
    char v[OAUTH_TOKEN_BUFLEN];
    uint8_t h[32];
    stor_user_t u;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    login_ok("alice", 1, &t);
    /* an access token is not a refresh token */
    ck_assert_int_eq(refresh(t.access, &n), OAUTH_ERR_INVALID);
    ck_assert_str_eq(n.access, "");
    last_login_detail("refresh: not a refresh token", STOR_RES_DENIED);
    /* malformed, unknown */
    ck_assert_int_eq(refresh("abc", &n), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_login_refresh(fx.o, t.refresh, OAUTH_TOKEN_LEN - 1, "c", &n), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_login_refresh(fx.o, NULL, 0, "c", &n), OAUTH_ERR_INVALID);
    fresh_value(v, h);
    ck_assert_int_eq(refresh(v, &n), OAUTH_ERR_INVALID);
    last_login_detail("refresh: unknown token", STOR_RES_DENIED);
    /* expired, revoked, unknown user */
    direct_token(v, STOR_TOKEN_REFRESH, "alice", oauth_now() - 1, 0);
    ck_assert_int_eq(refresh(v, &n), OAUTH_ERR_EXPIRED);
    last_login_detail("refresh: expired", STOR_RES_DENIED);
    direct_token(v, STOR_TOKEN_REFRESH, "alice", oauth_now() + 600, 1);
    ck_assert_int_eq(refresh(v, &n), OAUTH_ERR_INVALID);
    last_login_detail("refresh: revoked", STOR_RES_DENIED);
    direct_token(v, STOR_TOKEN_REFRESH, "ghost", oauth_now() + 600, 0);
    ck_assert_int_eq(refresh(v, &n), OAUTH_ERR_INVALID);
    last_login_detail("refresh: unknown user", STOR_RES_DENIED);
    /* suspended user */
    u = get_user("alice");
    u.status = STOR_USER_SUSPENDED;
    put_user(&u);
    ck_assert_int_eq(refresh(t.refresh, &n), OAUTH_ERR_DISABLED);
    ck_assert_str_eq(n.access, "");
    last_login_detail("refresh: disabled", STOR_RES_DENIED);
    ck_assert_int_eq(oauth_login_refresh(NULL, t.refresh, OAUTH_TOKEN_LEN, "c", &n), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_login_refresh(fx.o, t.refresh, OAUTH_TOKEN_LEN, "c", NULL), OAUTH_ERR_INVAL);
    auds_t *a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_LOGIN, STOR_RES_DENIED), 6);   /* well-formed ones only */
    free(a);
}
END_TEST

/* ---- check ---------------------------------------------------------------- */

START_TEST(t_check_errors)
{
    oauth_tokens_t t;
    oauth_principal_t p;
    char v[OAUTH_TOKEN_BUFLEN], bad[OAUTH_TOKEN_BUFLEN];
    uint8_t h[32];
    stor_user_t u;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    login_ok("alice", 0, &t);
    /* unknown and malformed */
    fresh_value(v, h);
    ck_assert_int_eq(check(v), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_check(fx.o, t.access, OAUTH_TOKEN_LEN - 1, &p), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_check(fx.o, t.access, OAUTH_TOKEN_LEN + 1, &p), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_check(fx.o, NULL, OAUTH_TOKEN_LEN, &p), OAUTH_ERR_INVALID);
    memcpy(bad, t.access, sizeof(bad));
    bad[5] = '+';
    ck_assert_int_eq(check(bad), OAUTH_ERR_INVALID);
    bad[5] = '=';
    ck_assert_int_eq(check(bad), OAUTH_ERR_INVALID);
    ck_assert_int_eq(check(""), OAUTH_ERR_INVALID);
    /* expired, revoked, unknown user */
    direct_token(v, STOR_TOKEN_ACCESS, "alice", oauth_now() - 1, 0);
    memset(&p, 'x', sizeof(p));
    ck_assert_int_eq(check(v), OAUTH_ERR_EXPIRED);
    ck_assert_int_eq(oauth_token_check(fx.o, v, strlen(v), &p), OAUTH_ERR_EXPIRED);
    ck_assert(zeroed(&p, sizeof(p)));
    direct_token(v, STOR_TOKEN_ACCESS, "alice", oauth_now() + 600, 0);
    ck_assert_int_eq(check(v), OAUTH_OK);
    direct_token(v, STOR_TOKEN_ACCESS, "alice", oauth_now() + 600, 1);
    ck_assert_int_eq(check(v), OAUTH_ERR_INVALID);
    direct_token(v, STOR_TOKEN_ACCESS, "ghost", oauth_now() + 600, 0);
    ck_assert_int_eq(check(v), OAUTH_ERR_INVALID);
    /* user suspended after login */
    ck_assert_int_eq(check(t.access), OAUTH_OK);
    u = get_user("alice");
    u.status = STOR_USER_SUSPENDED;
    put_user(&u);
    ck_assert_int_eq(check(t.access), OAUTH_ERR_DISABLED);
    ck_assert_int_eq(oauth_token_check(fx.o, t.access, OAUTH_TOKEN_LEN, NULL), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_token_check(NULL, t.access, OAUTH_TOKEN_LEN, &p), OAUTH_ERR_INVAL);
}
END_TEST

/* ---- revoke --------------------------------------------------------------- */

START_TEST(t_revoke_access)
{
    oauth_tokens_t t, n;
    oauth_principal_t p;
    uint8_t ref[16];
    auds_t *a;
    const aud_t *r;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    login_ok("alice", 1, &t);
    principal(t.access, &p);
    ck_assert_int_eq(oauth_token_revoke(fx.o, &p, t.access, OAUTH_TOKEN_LEN, OAUTH_HINT_ACCESS, "c9"), OAUTH_OK);
    ck_assert_int_eq(check(t.access), OAUTH_ERR_INVALID);
    /* only itself: the refresh token still works */
    ck_assert_int_eq(refresh(t.refresh, &n), OAUTH_OK);
    ck_assert_int_eq(check(n.access), OAUTH_OK);
    /* revoking again is harmless */
    ck_assert_int_eq(oauth_token_revoke(fx.o, &p, t.access, OAUTH_TOKEN_LEN, OAUTH_HINT_NONE, "c9"), OAUTH_OK);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_TOKEN_REVOKE, STOR_RES_OK), 2);
    ck_assert_ptr_nonnull(r = audit_last(a, STOR_EV_TOKEN_REVOKE));
    ref_of(t.access, ref);
    ck_assert_mem_eq(r->rec.authz_ref, ref, 16);
    ck_assert_str_eq(r->rec.user, "alice");
    ck_assert_str_eq(r->rec.client, "c9");
    free(a);
    assert_no_secret(t.access);
}
END_TEST

START_TEST(t_revoke_refresh)
{
    oauth_tokens_t t, n, other;
    oauth_principal_t p;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    login_ok("alice", 1, &t);
    login_ok("alice", 1, &other);   /* another grant of the same user */
    ck_assert_int_eq(refresh(t.refresh, &n), OAUTH_OK);
    principal(t.access, &p);
    ck_assert_int_eq(oauth_token_revoke(fx.o, &p, t.refresh, OAUTH_TOKEN_LEN, OAUTH_HINT_REFRESH, "c"), OAUTH_OK);
    /* the grant is gone: both its access tokens and the refresh token */
    ck_assert_int_eq(check(t.access), OAUTH_ERR_INVALID);
    ck_assert_int_eq(check(n.access), OAUTH_ERR_INVALID);
    ck_assert_int_eq(refresh(t.refresh, &n), OAUTH_ERR_INVALID);
    /* other grants are untouched */
    ck_assert_int_eq(check(other.access), OAUTH_OK);
    ck_assert_int_eq(refresh(other.refresh, &n), OAUTH_OK);
}
END_TEST

START_TEST(t_revoke_wrong_hint)
{
    oauth_tokens_t t, u;
    oauth_principal_t p;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    login_ok("alice", 1, &t);
    login_ok("alice", 1, &u);
    principal(u.access, &p);
    /* RFC 7009: a wrong hint still finds the token */
    ck_assert_int_eq(oauth_token_revoke(fx.o, &p, t.refresh, OAUTH_TOKEN_LEN, OAUTH_HINT_ACCESS, "c"), OAUTH_OK);
    ck_assert_int_eq(check(t.access), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_revoke(fx.o, &p, u.access, OAUTH_TOKEN_LEN, OAUTH_HINT_REFRESH, "c"), OAUTH_OK);
    ck_assert_int_eq(check(u.access), OAUTH_ERR_INVALID);
    ck_assert_int_eq(refresh(u.refresh, &t), OAUTH_OK);
}
END_TEST

START_TEST(t_revoke_other_user)
{
    oauth_tokens_t ta, tb;
    oauth_principal_t pb;
    auds_t *a;

    mk_user("alice", STOR_USER_ACTIVE, 0);
    mk_user("bob", STOR_USER_ACTIVE, 0);
    login_ok("alice", 1, &ta);
    login_ok("bob", 0, &tb);
    principal(tb.access, &pb);
    ck_assert_int_eq(oauth_token_revoke(fx.o, &pb, ta.access, OAUTH_TOKEN_LEN, OAUTH_HINT_NONE, "c"),
                     OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_revoke(fx.o, &pb, ta.refresh, OAUTH_TOKEN_LEN, OAUTH_HINT_REFRESH, "c"),
                     OAUTH_ERR_INVALID);
    ck_assert_int_eq(check(ta.access), OAUTH_OK);
    a = audit_read();
    ck_assert_uint_eq(audit_count(a, STOR_EV_TOKEN_REVOKE, STOR_RES_DENIED), 2);
    ck_assert_uint_eq(audit_count(a, STOR_EV_TOKEN_REVOKE, STOR_RES_OK), 0);
    ck_assert_str_eq(audit_last(a, STOR_EV_TOKEN_REVOKE)->rec.user, "bob");
    free(a);
}
END_TEST

START_TEST(t_revoke_errors)
{
    oauth_tokens_t t;
    oauth_principal_t p;
    char v[OAUTH_TOKEN_BUFLEN];
    uint8_t h[32];

    mk_user("alice", STOR_USER_ACTIVE, 0);
    login_ok("alice", 0, &t);
    principal(t.access, &p);
    fresh_value(v, h);
    ck_assert_int_eq(oauth_token_revoke(fx.o, &p, v, OAUTH_TOKEN_LEN, OAUTH_HINT_NONE, "c"), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_revoke(fx.o, &p, "xyz", 3, OAUTH_HINT_NONE, "c"), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_revoke(fx.o, &p, NULL, 0, OAUTH_HINT_NONE, "c"), OAUTH_ERR_INVALID);
    ck_assert_int_eq(oauth_token_revoke(fx.o, &p, t.access, OAUTH_TOKEN_LEN, (oauth_hint_t)7, "c"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_token_revoke(fx.o, NULL, t.access, OAUTH_TOKEN_LEN, OAUTH_HINT_NONE, "c"),
                     OAUTH_ERR_INVAL);
    ck_assert_int_eq(oauth_token_revoke(NULL, &p, t.access, OAUTH_TOKEN_LEN, OAUTH_HINT_NONE, "c"), OAUTH_ERR_INVAL);
    ck_assert_int_eq(check(t.access), OAUTH_OK);
}
END_TEST

/* ---- base64 (oauth_b64.c, also csc-api's and admin's) ------------------------------------ */

static long dec(const char *s, int how, uint8_t *out, size_t outsz)
{
    return oauth_b64_decode(s, strlen(s), out, outsz, how);
}

START_TEST(t_b64)
{
    static const uint8_t raw[] = { 0xfb, 0xff, 0x01, 0xfe };
    uint8_t out[8];
    char enc[16];

    ck_assert_uint_eq(oauth_b64_encode(raw, 4, enc, OAUTH_B64_STD), 8);
    ck_assert_str_eq(enc, "+/8B/g==");
    ck_assert_uint_eq(oauth_b64_encode(raw, 4, enc, OAUTH_B64_URL), 6);
    ck_assert_str_eq(enc, "-_8B_g");
    ck_assert_uint_eq(oauth_b64_encode(raw, 2, enc, OAUTH_B64_STD), 4);
    ck_assert_str_eq(enc, "+/8=");
    ck_assert_uint_eq(oauth_b64_encode(raw, 0, enc, OAUTH_B64_STD), 0);
    ck_assert_str_eq(enc, "");
    /* STD: either alphabet, padding optional */
    ck_assert_int_eq(dec("+/8B/g==", OAUTH_B64_STD, out, sizeof(out)), 4);
    ck_assert_mem_eq(out, raw, 4);
    ck_assert_int_eq(dec("-_8B_g", OAUTH_B64_STD, out, sizeof(out)), 4);
    ck_assert_mem_eq(out, raw, 4);
    ck_assert_int_eq(dec("-_8B_g==", OAUTH_B64_STD, out, sizeof(out)), 4);
    ck_assert_int_eq(dec("+_8B_g", OAUTH_B64_STD, out, sizeof(out)), -1); /* mixed */
    /* URL: base64url without padding only */
    ck_assert_int_eq(dec("-_8B_g", OAUTH_B64_URL, out, sizeof(out)), 4);
    ck_assert_mem_eq(out, raw, 4);
    ck_assert_int_eq(dec("-_8B_g==", OAUTH_B64_URL, out, sizeof(out)), -1);
    ck_assert_int_eq(dec("+/8B/g", OAUTH_B64_URL, out, sizeof(out)), -1);
    ck_assert_int_eq(dec("", OAUTH_B64_URL, out, sizeof(out)), 0);
    /* both: no whitespace, no stray length, no non-zero trailing bits, no overflow of out */
    ck_assert_int_eq(dec("Zm9v ", OAUTH_B64_STD, out, sizeof(out)), -1);
    ck_assert_int_eq(dec("Zm9vY", OAUTH_B64_URL, out, sizeof(out)), -1);
    ck_assert_int_eq(dec("Zh", OAUTH_B64_URL, out, sizeof(out)), -1);
    ck_assert_int_eq(dec("Zg", OAUTH_B64_URL, out, sizeof(out)), 1);
    ck_assert_int_eq(dec("Zm9vYmFy", OAUTH_B64_STD, out, 5), -1);
    ck_assert_int_eq(dec("Zm9vYmFy", OAUTH_B64_STD, out, 6), 6);
}
END_TEST

Suite *suite_token(void)
{
    Suite *s = suite_create("oauth_token");
    TCase *tc = tcase_create("token");

    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_add_test(tc, t_new_config);
    tcase_add_test(tc, t_b64);
    tcase_add_test(tc, t_login_ok);
    tcase_add_test(tc, t_login_remember);
    tcase_add_test(tc, t_login_wrong_password);
    tcase_add_test(tc, t_login_unknown_user);
    tcase_add_test(tc, t_login_lockout);
    tcase_add_test(tc, t_login_fail_rerun);
    tcase_add_test(tc, t_login_lock_expires);
    tcase_add_test(tc, t_login_lock_escalates);
    tcase_add_test(tc, t_login_failures_aggregated);
    tcase_add_test(tc, t_login_success_resets);
    tcase_add_test(tc, t_login_disabled);
    tcase_add_test(tc, t_login_inval);
    tcase_add_test(tc, t_storage_full);
    tcase_add_test(tc, t_refresh_flow);
    tcase_add_test(tc, t_refresh_errors);
    tcase_add_test(tc, t_check_errors);
    tcase_add_test(tc, t_revoke_access);
    tcase_add_test(tc, t_revoke_refresh);
    tcase_add_test(tc, t_revoke_wrong_hint);
    tcase_add_test(tc, t_revoke_other_user);
    tcase_add_test(tc, t_revoke_errors);
    suite_add_tcase(s, tc);
    return s;
}
