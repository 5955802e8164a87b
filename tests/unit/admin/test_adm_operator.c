/* Unit tests of the csc-admin operators (admin/adm_operator.c) on a real LMDB environment: bootstrap once, login with
 * password and TOTP (wrong factors, replayed code, lockout), sessions (roles, idle and absolute expiry, logout),
 * operator changes (never one's own), two-person approvals, and the audit records of all of it. */
#include <check.h>
#include <liboath/oath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "adm.h"
#include "cfx_files.h"

static char dir[CFX_PATH_MAX];
static stor_env_t *env;
static adm_t adm;
static const adm_op_policy_t pol = {.session_idle = 600, .session_max = 3600, .max_failures = 3,
                                    .lock_seconds = 600, .totp_window = 1, .approval_ttl = 600};

static void setup(void)
{
    ck_assert_int_eq(cfx_tmpdir(NULL, "csc-op-test.", dir, sizeof(dir)), 0);
    stor_config_t cfg = {.location = dir};
    ck_assert_int_eq(stor_open(&cfg, &env), 0);
    adm = (adm_t){.stor = env, .operator_name = "-", .scrypt_log2n = 10, .issuer = "T"};
    ck_assert_int_eq(oath_init(), OATH_OK);
}

static void teardown(void)
{
    stor_close(env);
    cfx_rmtree(dir);
}

/* base32 secret -> the code of time step offset steps away from now */
static void code(const char *b32, int offset, char out[7])
{
    char *raw = NULL;
    size_t len = 0;
    ck_assert_int_eq(oath_base32_decode(b32, strlen(b32), &raw, &len), OATH_OK);
    ck_assert_int_eq(oath_totp_generate(raw, len, time(NULL) + offset * 30, 30, 0, 6, out), OATH_OK);
    free(raw);
}

static char b32[64], uri[512], err[256];

static void mk(const char *name, uint32_t roles)
{
    if (roles == STOR_ROLES_ALL && strcmp(adm.operator_name, "-") == 0)
        ck_assert_int_eq(adm_op_bootstrap(&adm, name, "password-1", uri, sizeof(uri), b32, sizeof(b32), err,
                                          sizeof(err)), ADM_OK);
    else
        ck_assert_int_eq(adm_op_add(&adm, name, roles, "password-1", uri, sizeof(uri), b32, sizeof(b32), err,
                                    sizeof(err)), ADM_OK);
}

/* count audit records of an event whose detail contains needle */
typedef struct cnt {
    uint32_t event;
    const char *needle;
    int n;
    uint32_t last_result;
} cnt_t;

static int cnt_fn(const stor_audit_t *r, void *arg)
{
    cnt_t *c = arg;
    if (r->event == c->event && strstr(r->detail, c->needle) != NULL) {
        c->n++;
        c->last_result = r->result;
    }
    return 0;
}

static int audited(uint32_t event, const char *needle, uint32_t *last_result)
{
    cnt_t c = {.event = event, .needle = needle};
    ck_assert_int_eq(stor_audit_each(env, 1, cnt_fn, &c), 0);
    if (last_result != NULL)
        *last_result = c.last_result;
    return c.n;
}

START_TEST(t_bootstrap_once)
{
    char b1[64];
    mk("root", STOR_ROLES_ALL);
    ck_assert(strncmp(uri, "otpauth://totp/", 15) == 0);
    snprintf(b1, sizeof(b1), "%s", b32);
    ck_assert_int_eq(adm_op_bootstrap(&adm, "second", "password-2", uri, sizeof(uri), b32, sizeof(b32), err,
                                      sizeof(err)), ADM_EXISTS);
    ck_assert_ptr_nonnull(strstr(err, "bootstrap"));
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "action=operator.bootstrap name=root", NULL), 1);
    /* short passwords and bad names are refused */
    adm.operator_name = "root";
    ck_assert_int_eq(adm_op_add(&adm, "x", STOR_ROLE_AUDITOR, "short", uri, sizeof(uri), b32, sizeof(b32), err,
                                sizeof(err)), ADM_ERR);
    ck_assert_int_eq(adm_op_add(&adm, "a b", STOR_ROLE_AUDITOR, "password-1", uri, sizeof(uri), b32, sizeof(b32),
                                err, sizeof(err)), ADM_ERR);
    ck_assert_int_eq(adm_op_add(&adm, "nobody", 0, "password-1", uri, sizeof(uri), b32, sizeof(b32), err,
                                sizeof(err)), ADM_ERR);
}
END_TEST

START_TEST(t_login_factors)
{
    char tok[ADM_OP_TOKEN_LEN + 1], c[7], sec[64], name[STOR_NAME_MAX + 1];
    uint32_t roles;
    mk("root", STOR_ROLES_ALL);
    snprintf(sec, sizeof(sec), "%s", b32);
    code(sec, 0, c);
    ck_assert_int_eq(adm_op_login(&adm, &pol, "root", "wrong-password", c, tok, err, sizeof(err)), ADM_DENIED);
    ck_assert_str_eq(tok, "");
    char far[7];
    code(sec, 5, far); /* outside the window of one step */
    ck_assert_int_eq(adm_op_login(&adm, &pol, "root", "password-1", far, tok, err, sizeof(err)), ADM_DENIED);
    ck_assert_int_eq(adm_op_login(&adm, &pol, "ghost", "password-1", c, tok, err, sizeof(err)), ADM_DENIED);
    /* two failures so far; a good login resets the counter */
    ck_assert_int_eq(adm_op_login(&adm, &pol, "root", "password-1", c, tok, err, sizeof(err)), ADM_OK);
    ck_assert_uint_eq(strlen(tok), ADM_OP_TOKEN_LEN);
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, STOR_ROLE_AUDITOR, "audit verify", name, &roles, err,
                                          sizeof(err)), ADM_OK);
    ck_assert_str_eq(name, "root");
    ck_assert_uint_eq(roles, STOR_ROLES_ALL);
    /* the same code again (same step) is refused: replay guard */
    char tok2[ADM_OP_TOKEN_LEN + 1];
    ck_assert_int_eq(adm_op_login(&adm, &pol, "root", "password-1", c, tok2, err, sizeof(err)), ADM_DENIED);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "refused=otp-reused", NULL), 1);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "action=login", NULL), 5);
    /* a made-up token is no session */
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, "00", 0, "list", name, &roles, err, sizeof(err)),
                     ADM_NOSESSION);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "action=list refused=no-session", NULL), 1);
}
END_TEST

START_TEST(t_lockout)
{
    char tok[ADM_OP_TOKEN_LEN + 1], c[7];
    mk("root", STOR_ROLES_ALL);
    code(b32, 0, c);
    for (unsigned i = 0; i < pol.max_failures; i++)
        ck_assert_int_eq(adm_op_login(&adm, &pol, "root", "wrong-password", c, tok, err, sizeof(err)), ADM_DENIED);
    /* locked: even the right factors are refused */
    ck_assert_int_eq(adm_op_login(&adm, &pol, "root", "password-1", c, tok, err, sizeof(err)), ADM_LOCKED);
    ck_assert_int_eq(audited(STOR_EV_LOCKOUT, "locked operator", NULL), 1);
}
END_TEST

typedef struct sess_edit {
    uint8_t hash[32];
    int64_t last_used, expires_at;
} sess_edit_t;

static int sess_edit_fn(stor_txn_t *t, void *arg)
{
    sess_edit_t *e = arg;
    stor_opsession_t s;
    int rc = stor_txn_opsession_get(t, e->hash, &s);
    if (rc != 0)
        return rc;
    if (e->last_used)
        s.last_used = e->last_used;
    if (e->expires_at)
        s.expires_at = e->expires_at;
    return stor_txn_opsession_put(t, &s);
}

static void sess_age(const char *tok, int64_t last_used, int64_t expires_at)
{
    sess_edit_t e = {.last_used = last_used, .expires_at = expires_at};
    unsigned n = 0;
    EVP_Digest(tok, strlen(tok), e.hash, &n, EVP_sha256(), NULL);
    ck_assert_int_eq(stor_write(env, sess_edit_fn, &e), 0);
}

static void login(const char *name, const char *sec, int offset, char tok[ADM_OP_TOKEN_LEN + 1])
{
    char c[7];
    code(sec, offset, c);
    ck_assert_int_eq(adm_op_login(&adm, &pol, name, "password-1", c, tok, err, sizeof(err)), ADM_OK);
}

START_TEST(t_sessions_and_roles)
{
    char root_sec[64], aud_sec[64], tok[ADM_OP_TOKEN_LEN + 1], tok2[ADM_OP_TOKEN_LEN + 1], name[STOR_NAME_MAX + 1];
    uint32_t roles;
    mk("root", STOR_ROLES_ALL);
    snprintf(root_sec, sizeof(root_sec), "%s", b32);
    adm.operator_name = "root";
    mk("aud", STOR_ROLE_AUDITOR);
    snprintf(aud_sec, sizeof(aud_sec), "%s", b32);
    login("aud", aud_sec, 0, tok);
    /* the auditor may audit, not manage users or keys */
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, STOR_ROLE_AUDITOR, "audit query", name, &roles, err,
                                          sizeof(err)), ADM_OK);
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, STOR_ROLE_USER_ADMIN, "user add", name, &roles, err,
                                          sizeof(err)), ADM_FORBIDDEN);
    ck_assert_ptr_nonnull(strstr(err, "user-admin"));
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "action=user add refused=needs-role-user-admin", NULL), 1);
    /* idle expiry */
    sess_age(tok, time(NULL) - pol.session_idle - 1, 0);
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, 0, "list", name, &roles, err, sizeof(err)),
                     ADM_EXPIRED);
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, 0, "list", name, &roles, err, sizeof(err)),
                     ADM_NOSESSION);
    /* absolute expiry, although used just now */
    login("aud", aud_sec, 1, tok);
    sess_age(tok, 0, time(NULL) - 1);
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, 0, "list", name, &roles, err, sizeof(err)),
                     ADM_EXPIRED);
    /* logout ends a session at once */
    login("root", root_sec, 0, tok2);
    ck_assert_int_eq(adm_op_logout(&adm, tok2, err, sizeof(err)), ADM_OK);
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok2, 0, "list", name, &roles, err, sizeof(err)),
                     ADM_NOSESSION);
    ck_assert_int_eq(adm_op_logout(&adm, tok2, err, sizeof(err)), ADM_NOSESSION);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "action=logout", NULL), 2);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "action=logout refused=no-session", NULL), 1);
}
END_TEST

START_TEST(t_operator_changes)
{
    char aud_sec[64], tok[ADM_OP_TOKEN_LEN + 1], name[STOR_NAME_MAX + 1];
    uint32_t roles;
    mk("root", STOR_ROLES_ALL);
    adm.operator_name = "root";
    mk("aud", STOR_ROLE_AUDITOR);
    snprintf(aud_sec, sizeof(aud_sec), "%s", b32);
    /* never one's own roles, never oneself removed */
    ck_assert_int_eq(adm_op_set_roles(&adm, "root", STOR_ROLE_AUDITOR, err, sizeof(err)), ADM_FORBIDDEN);
    ck_assert_int_eq(adm_op_remove(&adm, "root", err, sizeof(err)), ADM_FORBIDDEN);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "refused=self", NULL), 2);
    /* another's roles change; its live session sees the new roles */
    login("aud", aud_sec, 0, tok);
    ck_assert_int_eq(adm_op_set_roles(&adm, "aud", STOR_ROLE_KEY_ADMIN, err, sizeof(err)), ADM_OK);
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, STOR_ROLE_AUDITOR, "audit verify", name, &roles, err,
                                          sizeof(err)), ADM_FORBIDDEN);
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, STOR_ROLE_KEY_ADMIN, "credential create", name, &roles,
                                          err, sizeof(err)), ADM_OK);
    ck_assert_int_eq(adm_op_set_roles(&adm, "ghost", STOR_ROLE_KEY_ADMIN, err, sizeof(err)), ADM_NOTFOUND);
    /* removed: the session dies with it */
    ck_assert_int_eq(adm_op_remove(&adm, "aud", err, sizeof(err)), ADM_OK);
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, 0, "list", name, &roles, err, sizeof(err)),
                     ADM_NOSESSION);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "action=operator.remove name=aud", NULL), 1);
}
END_TEST

typedef struct ap_edit {
    const char *id;
} ap_edit_t;

static int ap_expire_fn(stor_txn_t *t, void *arg)
{
    stor_approval_t *a = malloc(sizeof(*a));
    int rc = stor_txn_approval_get(t, ((ap_edit_t *)arg)->id, a);
    if (rc == 0) {
        a->expires_at = time(NULL) - 1;
        rc = stor_txn_approval_put(t, a, 0);
    }
    free(a);
    return rc;
}

START_TEST(t_two_person)
{
    char id[STOR_NAME_MAX + 1], id2[STOR_NAME_MAX + 1];
    char *argv[] = {"credential", "destroy", "c-1"};
    stor_approval_t *ap = calloc(1, sizeof(*ap));
    ck_assert_ptr_nonnull(ap);
    mk("root", STOR_ROLES_ALL);
    adm.operator_name = "root";
    mk("ka2", STOR_ROLE_KEY_ADMIN);
    mk("ua", STOR_ROLE_USER_ADMIN);
    adm.operator_name = "ka2";
    ck_assert_int_eq(adm_op_approval_request(&adm, &pol, STOR_ROLE_KEY_ADMIN, 3, argv, id, err, sizeof(err)),
                     ADM_OK);
    ck_assert_uint_eq(strlen(id), 16);
    /* the requester cannot approve, an operator without the role neither; both audited */
    ck_assert_int_eq(adm_op_approval_take(&adm, id, STOR_ROLE_KEY_ADMIN, ap, err, sizeof(err)), ADM_FORBIDDEN);
    adm.operator_name = "ua";
    ck_assert_int_eq(adm_op_approval_take(&adm, id, STOR_ROLE_USER_ADMIN, ap, err, sizeof(err)), ADM_FORBIDDEN);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "refused=same-operator", NULL), 1);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "operator=ua requester=ka2 action=approval.approve", NULL), 1);
    /* another key admin approves: the command comes back, the request is gone */
    adm.operator_name = "root";
    ck_assert_int_eq(adm_op_approval_take(&adm, id, STOR_ROLES_ALL, ap, err, sizeof(err)), ADM_OK);
    ck_assert_uint_eq(ap->n_args, 3);
    ck_assert_str_eq(ap->args[2], "c-1");
    ck_assert_str_eq(ap->requester, "ka2");
    ck_assert_int_eq(adm_op_approval_take(&adm, id, STOR_ROLES_ALL, ap, err, sizeof(err)), ADM_NOTFOUND);
    uint32_t res = 9;
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "operator=root requester=ka2 action=approval.approve", &res), 1);
    ck_assert_uint_eq(res, STOR_RES_OK);
    /* expired */
    adm.operator_name = "ka2";
    ck_assert_int_eq(adm_op_approval_request(&adm, &pol, STOR_ROLE_KEY_ADMIN, 3, argv, id2, err, sizeof(err)),
                     ADM_OK);
    ap_edit_t e = {id2};
    ck_assert_int_eq(stor_write(env, ap_expire_fn, &e), 0);
    adm.operator_name = "root";
    ck_assert_int_eq(adm_op_approval_take(&adm, id2, STOR_ROLES_ALL, ap, err, sizeof(err)), ADM_EXPIRED);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "refused=expired", NULL), 1);
    /* reject */
    adm.operator_name = "ka2";
    ck_assert_int_eq(adm_op_approval_request(&adm, &pol, STOR_ROLE_KEY_ADMIN, 3, argv, id2, err, sizeof(err)),
                     ADM_OK);
    adm.operator_name = "ua";
    ck_assert_int_eq(adm_op_approval_reject(&adm, id2, STOR_ROLE_USER_ADMIN, err, sizeof(err)), ADM_FORBIDDEN);
    adm.operator_name = "root";
    ck_assert_int_eq(adm_op_approval_reject(&adm, id2, STOR_ROLES_ALL, err, sizeof(err)), ADM_OK);
    ck_assert_int_eq(adm_op_approval_take(&adm, id2, STOR_ROLES_ALL, ap, err, sizeof(err)), ADM_NOTFOUND);
    free(ap);
}
END_TEST

typedef struct job_file {
    uint32_t flags;
    char id[STOR_NAME_MAX + 1];
} job_file_t;

static int job_file_fn(stor_txn_t *t, void *arg)
{
    job_file_t *j = arg;
    char *argv[] = {"credential", "revoke", "c-9"};
    return stor_txn_approval_request(t, "csc-server", STOR_ROLE_KEY_ADMIN, 0, j->flags, 3, argv, j->id);
}

/* A key destruction csc-server files as a job (csc-api/csc_cert.c): no one can reject it, the key admin who ran it
 * drops it (job.done, audited; again: already gone, no error), and a request for a second operator is no job. */
START_TEST(t_jobs)
{
    job_file_t job = {.flags = STOR_APPROVAL_JOB}, req = {.flags = 0};
    mk("root", STOR_ROLES_ALL);
    adm.operator_name = "root";
    mk("ua", STOR_ROLE_USER_ADMIN);
    ck_assert_int_eq(stor_write(env, job_file_fn, &job), 0);
    ck_assert_int_eq(stor_write(env, job_file_fn, &req), 0);
    /* a request expires (and is dropped when touched); a job has no expiry (expires_at 0) */
    ck_assert_int_eq(stor_write(env, ap_expire_fn, &(ap_edit_t){req.id}), 0);
    ck_assert_int_eq(adm_op_approval_reject(&adm, job.id, STOR_ROLES_ALL, err, sizeof(err)), ADM_FORBIDDEN);
    ck_assert_ptr_nonnull(strstr(err, "it is a job"));
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "requester=csc-server action=approval.reject", NULL), 1);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "refused=job", NULL), 1);
    adm.operator_name = "ua";
    ck_assert_int_eq(adm_op_job_done(&adm, job.id, STOR_ROLE_USER_ADMIN, err, sizeof(err)), ADM_FORBIDDEN);
    adm.operator_name = "root";
    ck_assert_int_eq(adm_op_job_done(&adm, req.id, STOR_ROLES_ALL, err, sizeof(err)), ADM_EXPIRED);
    ck_assert_int_eq(stor_write(env, job_file_fn, &req), 0);
    ck_assert_int_eq(adm_op_job_done(&adm, req.id, STOR_ROLES_ALL, err, sizeof(err)), ADM_FORBIDDEN);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "refused=not-a-job", NULL), 1);
    uint32_t res = 9;
    char done[160];
    snprintf(done, sizeof(done), "operator=root requester=csc-server action=job.done id=%s command=", job.id);
    ck_assert_int_eq(adm_op_job_done(&adm, job.id, STOR_ROLES_ALL, err, sizeof(err)), ADM_OK);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, done, &res), 1);
    ck_assert_uint_eq(res, STOR_RES_OK);
    ck_assert_int_eq(adm_op_job_done(&adm, job.id, STOR_ROLES_ALL, err, sizeof(err)), ADM_OK);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, done, NULL), 1);
    /* the request is still there for approve */
    stor_approval_t *ap = calloc(1, sizeof(*ap));
    ck_assert_ptr_nonnull(ap);
    ck_assert_int_eq(adm_op_approval_take(&adm, req.id, STOR_ROLES_ALL, ap, err, sizeof(err)), ADM_OK);
    ck_assert_str_eq(ap->args[2], "c-9");
    free(ap);
}
END_TEST

START_TEST(t_roles_text)
{
    uint32_t r;
    char out[64];
    ck_assert_int_eq(adm_op_roles_parse("key-admin,auditor", &r), 0);
    ck_assert_uint_eq(r, STOR_ROLE_KEY_ADMIN | STOR_ROLE_AUDITOR);
    adm_op_roles_format(r, out, sizeof(out));
    ck_assert_str_eq(out, "key-admin,auditor");
    ck_assert_int_eq(adm_op_roles_parse("all", &r), 0);
    ck_assert_uint_eq(r, STOR_ROLES_ALL);
    ck_assert_int_eq(adm_op_roles_parse("root", &r), -1);
    ck_assert_int_eq(adm_op_roles_parse("", &r), -1);
    adm_op_roles_format(0, out, sizeof(out));
    ck_assert_str_eq(out, "-");
}
END_TEST

/* ---- the audit reports hand their findings to callbacks (adm_audit.c, adm_audit_heads.c) ---- */

typedef struct found {
    char lines[4][ADM_AUDIT_LINE_MAX];
    int n, records, stop;
} found_t;

static void on_problem(const char *line, void *arg)
{
    found_t *f = arg;
    if (f->n < 4)
        snprintf(f->lines[f->n], sizeof(f->lines[0]), "%s", line);
    f->n++;
}

static int on_record(const stor_audit_t *r, void *arg)
{
    found_t *f = arg;
    ck_assert_str_eq(r->user, "bob");
    f->records++;
    return f->records == f->stop ? 1 : 0;
}

static int append_three(stor_txn_t *t, void *arg)
{
    static const char *users[] = {"alice", "bob", "bob"};
    stor_signed_head_t h = {0};
    uint8_t hash[32];
    int rc = 0;

    for (int i = 0; i < 3 && rc == 0; i++) {
        stor_audit_t a = {.event = STOR_EV_ADMIN, .result = STOR_RES_OK};
        snprintf(a.user, sizeof(a.user), "%s", users[i]);
        rc = stor_txn_audit_append(t, &a);
    }
    if (rc == 0 && arg != NULL && (rc = stor_txn_audit_tip(t, &h.seq, hash)) == 0) {
        memcpy(h.hash, hash, 32);
        h.sig_len = 1;
        rc = stor_txn_signed_head_put(t, &h);
    }
    return rc;
}

START_TEST(t_audit_callbacks)
{
    adm_audit_verdict_t v;
    adm_audit_filter_t f = {.user = "bob"};
    found_t got = {0};
    uint64_t matched = 0;

    ck_assert_int_eq(stor_write(env, append_three, "head"), 0);
    ck_assert_int_eq(adm_audit_verify(env, on_problem, &got, &v, err, sizeof(err)), ADM_OK);
    ck_assert_int_eq(got.n, 0);
    ck_assert_uint_eq(v.problems, 0);
    ck_assert_uint_eq(v.count, 3);
    ck_assert_uint_eq(v.last_seq, 3);
    /* a signed head and no key to check it with: one problem line, handed over, and the counts */
    ck_assert_int_eq(adm_audit_verify_heads(env, NULL, on_problem, &got, &v, err, sizeof(err)), ADM_OK);
    ck_assert_int_eq(got.n, 1);
    ck_assert_str_eq(got.lines[0],
                     "signed heads: no audit public key to check the signatures (audit key missing from the HSM)");
    ck_assert_uint_eq(v.problems, 1);
    ck_assert_uint_eq(v.count, 1);
    ck_assert_uint_eq(v.last_seq, 3);
    /* query: bob's two records, one callback each; a non-zero return stops it */
    ck_assert_int_eq(adm_audit_query(env, &f, on_record, &got, &matched, err, sizeof(err)), ADM_OK);
    ck_assert_int_eq(got.records, 2);
    ck_assert_uint_eq(matched, 2);
    got.records = 0;
    got.stop = 1;
    ck_assert_int_eq(adm_audit_query(env, &f, on_record, &got, &matched, err, sizeof(err)), ADM_ERR);
    ck_assert_int_eq(got.records, 1);
    ck_assert_int_eq(adm_audit_verify(env, NULL, NULL, &v, err, sizeof(err)), ADM_ERR);
}
END_TEST

/* A session is bound to the host it was made on (adm_t.origin's host identity): used from another host it is refused,
 * audited and ended; a caller without origin cannot use a session made with one. */
START_TEST(t_session_host)
{
    char sec[64], tok[ADM_OP_TOKEN_LEN + 1], name[STOR_NAME_MAX + 1];
    uint32_t roles;
    adm_origin_t here = {0}, there = {0};
    snprintf(here.host, sizeof(here.host), "h1");
    adm_origin_host_id("h1", "0123456789abcdef", here.host_id);
    adm_origin_host_id("h2", "0123456789abcdef", there.host_id);
    ck_assert_int_ne(memcmp(here.host_id, there.host_id, 32), 0);
    mk("root", STOR_ROLES_ALL);
    snprintf(sec, sizeof(sec), "%s", b32);
    adm.origin = &here;
    login("root", sec, 0, tok);
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, 0, "list", name, &roles, err, sizeof(err)), ADM_OK);
    adm.origin = &there;
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, 0, "list", name, &roles, err, sizeof(err)),
                     ADM_NOSESSION);
    ck_assert_ptr_nonnull(strstr(err, "another host"));
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "action=list refused=other-host", NULL), 1);
    adm.origin = &here; /* ended: not even the first host takes it back */
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, 0, "list", name, &roles, err, sizeof(err)),
                     ADM_NOSESSION);
    login("root", sec, 1, tok);
    adm.origin = NULL;
    ck_assert_int_eq(adm_op_session_check(&adm, &pol, tok, 0, "list", name, &roles, err, sizeof(err)),
                     ADM_NOSESSION);
}
END_TEST

/* The claim csc-admin sends csc-sam reads back exactly; anything else is refused whole. */
START_TEST(t_origin_claim)
{
    adm_origin_t o = {0}, r;
    char claim[512], text[256];
    snprintf(o.os_user, sizeof(o.os_user), "alice");
    o.uid = 1000;
    snprintf(o.host, sizeof(o.host), "signer-1");
    snprintf(o.tty, sizeof(o.tty), "/dev/pts/3");
    memset(o.host_id, 0xab, 32);
    ck_assert_int_eq(adm_origin_claim(&o, claim, sizeof(claim)), 0);
    ck_assert_int_eq(adm_origin_parse(claim, &r), 0);
    ck_assert_str_eq(r.os_user, "alice");
    ck_assert_uint_eq(r.uid, 1000);
    ck_assert_str_eq(r.host, "signer-1");
    ck_assert_str_eq(r.tty, "/dev/pts/3");
    ck_assert_int_eq(memcmp(r.host_id, o.host_id, 32), 0);
    adm_origin_text(&r, text, sizeof(text));
    ck_assert_str_eq(text, "os_user=alice uid=1000 host=signer-1 tty=/dev/pts/3");
    r.peer_known = 1;
    r.peer_uid = 1000;
    adm_origin_text(&r, text, sizeof(text));
    ck_assert_str_eq(text, "os_user=alice uid=1000 host=signer-1 tty=/dev/pts/3");
    r.peer_uid = 0; /* the kernel's uid is the record's; the claim's stays beside it */
    adm_origin_text(&r, text, sizeof(text));
    ck_assert_str_eq(text, "os_user=alice uid=0 claimed_uid=1000 host=signer-1 tty=/dev/pts/3");
    static const char *const bad[] = {
        "", "os_user=alice uid=1000 host=h tty=-",
        "os_user=alice uid=1000 host=h tty=- host_id=00",
        "uid=1000 os_user=alice host=h tty=- host_id=" "abababababababababababababababababababababababababababababababab",
        "os_user=alice uid=-1 host=h tty=- host_id=" "abababababababababababababababababababababababababababababababab",
        "os_user=alice uid=1000 host=h tty=- host_id=" "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB",
        "os_user=alice uid=1000 host=h tty=- host_id=" "abababababababababababababababababababababababababababababababab x=y",
        "os_user=alice uid=1000 host=h  tty=- host_id=" "abababababababababababababababababababababababababababababababab",
        "os_user= uid=1000 host=h tty=- host_id=" "abababababababababababababababababababababababababababababababab",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(adm_origin_parse(bad[i], &r) == -1, "accepted: %s", bad[i]);
    /* csc-admin's own: never empty words, a 32-byte host identity */
    ck_assert_int_eq(adm_origin_local(&o), 0);
    ck_assert_int_eq(adm_origin_claim(&o, claim, sizeof(claim)), 0);
    ck_assert_int_eq(adm_origin_parse(claim, &r), 0);
    ck_assert_uint_eq(r.uid, (uint32_t)getuid());
}
END_TEST

static int op_get_fn(stor_txn_t *t, void *arg)
{
    stor_operator_t *op = arg;
    char name[STOR_NAME_MAX + 1];
    snprintf(name, sizeof(name), "%s", op->name);
    return stor_txn_operator_get(t, name, op);
}

static int op_get(const char *name, stor_operator_t *op)
{
    snprintf(op->name, sizeof(op->name), "%s", name);
    return stor_read(env, op_get_fn, op);
}

/* Production (J14): nobody gets user-admin and key-admin at once unless allow_combined_roles; the first operator
 * manages users only. two_person's "operator" names operator add, remove and roles. */
START_TEST(t_production_roles)
{
    adm.production = 1;
    mk("root", STOR_ROLES_ALL); /* bootstrap */
    adm.operator_name = "root";
    ck_assert_int_eq(adm_op_sole(&adm), 1);
    stor_operator_t *op = calloc(1, sizeof(*op));
    ck_assert_ptr_nonnull(op);
    ck_assert_int_eq(op_get("root", op), 0);
    ck_assert_uint_eq(op->roles, STOR_ROLE_USER_ADMIN);
    ck_assert_int_eq(adm_op_add(&adm, "both", STOR_ROLE_USER_ADMIN | STOR_ROLE_KEY_ADMIN, "password-1", uri,
                                sizeof(uri), b32, sizeof(b32), err, sizeof(err)), ADM_FORBIDDEN);
    ck_assert_ptr_nonnull(strstr(err, "allow_combined_roles"));
    ck_assert_int_eq(adm_op_add(&adm, "both", STOR_ROLES_ALL, "password-1", uri, sizeof(uri), b32, sizeof(b32),
                                err, sizeof(err)), ADM_FORBIDDEN);
    ck_assert_int_eq(op_get("both", op), STOR_ERR_NOTFOUND);
    mk("ua2", STOR_ROLE_USER_ADMIN | STOR_ROLE_AUDITOR);
    ck_assert_int_eq(adm_op_sole(&adm), 0);
    mk("ka", STOR_ROLE_KEY_ADMIN);
    ck_assert_int_eq(adm_op_set_roles(&adm, "ka", STOR_ROLE_KEY_ADMIN | STOR_ROLE_USER_ADMIN, err, sizeof(err)),
                     ADM_FORBIDDEN);
    ck_assert_int_eq(op_get("ka", op), 0);
    ck_assert_uint_eq(op->roles, STOR_ROLE_KEY_ADMIN);
    ck_assert_int_eq(audited(STOR_EV_OPERATOR, "refused=combined-roles", NULL), 3);
    adm.allow_combined_roles = 1;
    ck_assert_int_eq(adm_op_set_roles(&adm, "ka", STOR_ROLES_ALL, err, sizeof(err)), ADM_OK);
    free(op);
    ck_assert_int_eq(adm_op_two_person("operator", "operator", "add"), 1);
    ck_assert_int_eq(adm_op_two_person("operator", "operator", "remove"), 1);
    ck_assert_int_eq(adm_op_two_person("operator", "operator", "roles"), 1);
    ck_assert_int_eq(adm_op_two_person("operator", "operator", "list"), 0);
    ck_assert_int_eq(adm_op_two_person("operator", "operator", "bootstrap"), 0);
    ck_assert_int_eq(adm_op_two_person("destroy,restore,terminate", "operator", "add"), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin-operator");
    TCase *tc = tcase_create("operators");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_bootstrap_once);
    tcase_add_test(tc, t_login_factors);
    tcase_add_test(tc, t_lockout);
    tcase_add_test(tc, t_sessions_and_roles);
    tcase_add_test(tc, t_operator_changes);
    tcase_add_test(tc, t_two_person);
    tcase_add_test(tc, t_jobs);
    tcase_add_test(tc, t_roles_text);
    tcase_add_test(tc, t_audit_callbacks);
    tcase_add_test(tc, t_session_host);
    tcase_add_test(tc, t_origin_claim);
    tcase_add_test(tc, t_production_roles);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
