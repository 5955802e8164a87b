/*
 * stor_user_approval.c - the user_approvals table (stor.h): credentials/authorize requests that wait for their
 * user's approval on the service's page, keyed by the SHA-256 of the handle. They live here rather than in one
 * process's memory so that csc-sam (which files and decides them and answers authorizeCheck) and csc-server's
 * /approve page (which lists them) see the same ones, and a csc-sam restart keeps them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stor_int.h"

#define KEY(p, n) STOR_VAL(p, n)

int stor_txn_user_approval_get(stor_txn_t *t, const uint8_t hash[32], stor_user_approval_t *out)
{
    return stor_get_by_hash(t, STOR_DB_USER_APPROVALS, STOR_REC_USER_APPROVAL, hash, out, sizeof(*out));
}

int stor_txn_user_approval_put(stor_txn_t *t, const stor_user_approval_t *a, int create_only)
{
    stor_val_t k;
    int rc;

    if (a == NULL || a->state > STOR_UAPPR_LOCKED || a->num_signatures == 0 || a->n_digests > STOR_DIGESTS_MAX ||
        (a->n_digests > 0 && (a->digest_len == 0 || a->digest_len > STOR_DIGEST_LEN_MAX)))
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(a->user)) != 0 ||
        (rc = stor_name_check(a->cred)) != 0)
        return rc;
    k = KEY(a->hash, 32);
    return stor_put_rec(t, STOR_DB_USER_APPROVALS, &k, STOR_REC_USER_APPROVAL, a, create_only ? STOR_PUT_NOOVERWRITE : 0);
}

int stor_txn_user_approval_del(stor_txn_t *t, const uint8_t hash[32])
{
    return stor_del_by_hash(t, STOR_DB_USER_APPROVALS, hash);
}

int stor_txn_user_approval_count(stor_txn_t *t, size_t *n)
{
    return stor_count_rows(t, STOR_DB_USER_APPROVALS, n);
}

int stor_txn_user_approval_purge(stor_txn_t *t, int64_t now, int *n)
{
    /* A request has expired once now >= expires_at (oauth/); the table walk deletes below its bound. */
    return stor_purge_table(t, STOR_DB_USER_APPROVALS, STOR_REC_USER_APPROVAL,
                            offsetof(stor_user_approval_t, expires_at), now < INT64_MAX ? now + 1 : now, n);
}

typedef struct {
    const char *user;
    stor_user_approval_each_fn fn;
    void *arg;
    stor_user_approval_t *rec;  /* one heap copy for the walk (the digests make it large) */
} each_t;

static int each_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    each_t *e = arg;
    char user[STOR_NAME_MAX + 1];
    int rc;

    (void)t;
    (void)cur;
    (void)k;
    if (e->user != NULL && e->user[0] != '\0') {
        /* Other users' rows are skipped without decoding their digests. */
        if ((rc = stor_codec_peek(STOR_REC_USER_APPROVAL, v->data, v->len,
                                  offsetof(stor_user_approval_t, user), user, sizeof(user))) != 0)
            return rc;
        if (strcmp(user, e->user) != 0)
            return 0;
    }
    if ((rc = stor_codec_decode(STOR_REC_USER_APPROVAL, v->data, v->len, e->rec)) != 0)
        return rc;
    return e->fn(e->rec, e->arg);
}

int stor_txn_user_approval_each(stor_txn_t *t, const char *user, stor_user_approval_each_fn fn, void *arg)
{
    each_t e = {user, fn, arg, NULL};
    int rc;

    if (fn == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 0)) != 0)
        return rc;
    if ((e.rec = malloc(sizeof(*e.rec))) == NULL)
        return STOR_ERR_NOMEM;
    rc = stor_walk(t, STOR_DB_USER_APPROVALS, STOR_WALK_ALL, NULL, each_row, &e);
    stor_wipe(e.rec, sizeof(*e.rec));
    free(e.rec);
    return rc;
}
