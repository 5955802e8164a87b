/*
 * stor_operator.c - csc-admin operators, their login sessions and the commands waiting for a second
 * operator's approval (J14). Three tables of their own; walks and name-keyed get/del
 * are stor_txn.c's (stor_walk, stor_walk_recs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "stor_int.h"

#define KEY(p, n) STOR_VAL(p, n)

/* ---- operators ----------------------------------------------------------- */

int stor_txn_operator_get(stor_txn_t *t, const char *name, stor_operator_t *out)
{
    return stor_get_by_name(t, STOR_DB_OPERATORS, STOR_REC_OPERATOR, name, out, sizeof(*out));
}

int stor_txn_operator_put(stor_txn_t *t, const stor_operator_t *op, int create_only)
{
    stor_val_t k;
    int rc;

    if (op == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(op->name)) != 0)
        return rc;
    if ((op->roles & ~(uint32_t)STOR_ROLES_ALL) != 0 ||
        (op->status != STOR_OPERATOR_ACTIVE && op->status != STOR_OPERATOR_DISABLED &&
         op->status != STOR_OPERATOR_ENROLLING))
        return STOR_ERR_INVAL;
    k = KEY(op->name, strlen(op->name));
    return stor_put_rec(t, STOR_DB_OPERATORS, &k, STOR_REC_OPERATOR, op, create_only ? STOR_PUT_NOOVERWRITE : 0);
}

int stor_txn_operator_del(stor_txn_t *t, const char *name)
{
    return stor_del_by_name(t, STOR_DB_OPERATORS, name);
}

int stor_txn_operator_each(stor_txn_t *t, stor_operator_each_fn fn, void *arg)
{
    stor_rec_cb_t cb = { STOR_REC_OPERATOR, -1, { .op = fn }, arg };

    return stor_walk_recs(t, STOR_DB_OPERATORS, STOR_WALK_ALL, NULL, &cb);
}

/* ---- operator sessions --------------------------------------------------- */

int stor_txn_opsession_get(stor_txn_t *t, const uint8_t hash[32], stor_opsession_t *out)
{
    return stor_get_by_hash(t, STOR_DB_OPSESSIONS, STOR_REC_OPSESSION, hash, out, sizeof(*out));
}

int stor_txn_opsession_put(stor_txn_t *t, const stor_opsession_t *s)
{
    stor_val_t k;
    int rc;

    if (s == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(s->operator_name)) != 0)
        return rc;
    k = KEY(s->hash, 32);
    return stor_put_rec(t, STOR_DB_OPSESSIONS, &k, STOR_REC_OPSESSION, s, 0);
}

int stor_txn_opsession_del(stor_txn_t *t, const uint8_t hash[32])
{
    stor_val_t k;
    int rc;

    if (hash == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0)
        return rc;
    k = KEY(hash, 32);
    return stor_kv_del(t, STOR_DB_OPSESSIONS, &k, NULL);
}

/* ---- approvals ----------------------------------------------------------- */

int stor_txn_approval_get(stor_txn_t *t, const char *id, stor_approval_t *out)
{
    return stor_get_by_name(t, STOR_DB_APPROVALS, STOR_REC_APPROVAL, id, out, sizeof(*out));
}

int stor_txn_approval_put(stor_txn_t *t, const stor_approval_t *a, int create_only)
{
    stor_val_t k;
    int rc;

    if (a == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(a->id)) != 0 ||
        (rc = stor_name_check(a->requester)) != 0)
        return rc;
    if (a->n_args == 0 || a->n_args > STOR_APPROVAL_ARGS_MAX)
        return STOR_ERR_INVAL;
    k = KEY(a->id, strlen(a->id));
    return stor_put_rec(t, STOR_DB_APPROVALS, &k, STOR_REC_APPROVAL, a, create_only ? STOR_PUT_NOOVERWRITE : 0);
}

int stor_txn_approval_del(stor_txn_t *t, const char *id)
{
    return stor_del_by_name(t, STOR_DB_APPROVALS, id);
}

int stor_txn_approval_each(stor_txn_t *t, stor_approval_each_fn fn, void *arg)
{
    stor_rec_cb_t cb = { STOR_REC_APPROVAL, -1, { .approval = fn }, arg };

    return stor_walk_recs(t, STOR_DB_APPROVALS, STOR_WALK_ALL, NULL, &cb);
}

/* ---- delegations (J1) ----------------------------------------------------- */

int stor_cred_delegate(const stor_cred_t *c, const char *user)
{
    if (c == NULL || user == NULL || c->n_delegates > STOR_DELEGATES_MAX)
        return -1;
    for (uint32_t i = 0; i < c->n_delegates; i++)
        if (strcmp(c->delegates[i], user) == 0)
            return (int)i;
    return -1;
}

int stor_txn_delegation_put(stor_txn_t *t, const char *user, const char *cred)
{
    stor_val_t k, v;
    int rc;

    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(user)) != 0 || (rc = stor_name_check(cred)) != 0)
        return rc;
    k = KEY(user, strlen(user));
    v = KEY(cred, strlen(cred));
    rc = stor_kv_put(t, STOR_DB_DELEGATIONS, &k, &v, STOR_PUT_NODUPDATA);
    return rc == STOR_ERR_EXISTS ? 0 : rc;
}

int stor_txn_delegation_del(stor_txn_t *t, const char *user, const char *cred)
{
    stor_val_t k, v;
    int rc;

    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(user)) != 0 || (rc = stor_name_check(cred)) != 0)
        return rc;
    k = KEY(user, strlen(user));
    v = KEY(cred, strlen(cred));
    return stor_kv_del(t, STOR_DB_DELEGATIONS, &k, &v);
}

typedef struct deleg_each {
    stor_delegation_each_fn fn;
    void *arg;
} deleg_each_t;

static int deleg_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    deleg_each_t *e = arg;
    char id[STOR_NAME_MAX + 1];

    (void)t;
    (void)cur;
    (void)k;
    if (v->len == 0 || v->len > STOR_NAME_MAX)
        return STOR_ERR_CORRUPT;
    memcpy(id, v->data, v->len);
    id[v->len] = '\0';
    return e->fn(id, e->arg);
}

int stor_txn_delegation_each(stor_txn_t *t, const char *user, stor_delegation_each_fn fn, void *arg)
{
    deleg_each_t e = { fn, arg };
    stor_val_t k;
    int rc;

    if (fn == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 0)) != 0 || (rc = stor_name_check(user)) != 0)
        return rc;
    k = KEY(user, strlen(user));
    return stor_walk(t, STOR_DB_DELEGATIONS, STOR_WALK_DUPS, &k, deleg_row, &e);
}

int stor_txn_approval_request(stor_txn_t *t, const char *requester, uint32_t role, int64_t ttl, uint32_t flags,
                              int argc, char *const *argv, char id[STOR_NAME_MAX + 1])
{
    stor_approval_t *ap;
    stor_audit_t *audit;
    uint8_t raw[8];
    char cmd[160];
    size_t pos = 0;
    int rc = STOR_ERR_INVAL;

    id[0] = '\0';
    if (requester == NULL || argv == NULL || argc < 1 || argc > STOR_APPROVAL_ARGS_MAX || ttl < 0 ||
        (flags & ~STOR_APPROVAL_JOB) != 0)
        return STOR_ERR_INVAL;
    ap = calloc(1, sizeof(*ap));
    audit = calloc(1, sizeof(*audit));
    if (ap == NULL || audit == NULL) {
        rc = STOR_ERR_NOMEM;
        goto out;
    }
    for (int i = 0; i < argc; i++) {
        if (argv[i] == NULL || strlen(argv[i]) > STOR_APPROVAL_ARG_MAX)
            goto out;
        snprintf(ap->args[i], sizeof(ap->args[i]), "%s", argv[i]);
    }
    ap->n_args = (uint32_t)argc;
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        rc = STOR_ERR_IO;
        goto out;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(ap->id + 2 * i, 3, "%02x", raw[i]);
    snprintf(ap->requester, sizeof(ap->requester), "%s", requester);
    ap->role = role;
    ap->flags = flags;
    if (t->origin != NULL)
        snprintf(ap->origin, sizeof(ap->origin), "%s", t->origin);
    ap->created_at = time(NULL);
    ap->expires_at = ttl > 0 ? ap->created_at + ttl : 0;
    cmd[0] = '\0';
    for (uint32_t i = 0; i < ap->n_args && pos < sizeof(cmd); i++)
        pos += (size_t)snprintf(cmd + pos, sizeof(cmd) - pos, "%s%s", i ? " " : "", ap->args[i]);
    audit->event = STOR_EV_OPERATOR;
    audit->result = STOR_RES_OK;
    snprintf(audit->user, sizeof(audit->user), "%s", requester);
    snprintf(audit->client, sizeof(audit->client), "csc-admin");
    /* A long command is cut in the audit detail (the approval keeps every word). */
    if (snprintf(audit->detail, sizeof(audit->detail), "operator=%s action=%s id=%s command=%s", requester,
                 (flags & STOR_APPROVAL_JOB) ? "job.file" : "approval.request", ap->id, cmd) < 0)
        goto out;
    if ((rc = stor_txn_approval_put(t, ap, 1)) == 0 && (rc = stor_txn_audit_append(t, audit)) == 0)
        snprintf(id, STOR_NAME_MAX + 1, "%s", ap->id);
out:
    free(ap);
    free(audit);
    return rc;
}

typedef struct approval_req {
    const char *requester;
    uint32_t role;
    int64_t ttl;
    int argc;
    char *const *argv;
    char *id;
} approval_req_t;

static int approval_request_fn(stor_txn_t *t, void *arg)
{
    approval_req_t *x = arg;
    return stor_txn_approval_request(t, x->requester, x->role, x->ttl, 0, x->argc, x->argv, x->id);
}

int stor_approval_request(stor_env_t *env, const char *requester, uint32_t role, int64_t ttl, int argc,
                          char *const *argv, char id[STOR_NAME_MAX + 1])
{
    approval_req_t x = {.requester = requester, .role = role, .ttl = ttl, .argc = argc, .argv = argv, .id = id};
    int rc = stor_write(env, approval_request_fn, &x);

    if (rc != 0)
        id[0] = '\0'; /* the transaction wrote it, but did not commit */
    return rc;
}
