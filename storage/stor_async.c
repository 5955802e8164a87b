/*
 * stor_async.c - the async_results table: state and reply of each operationMode "A" request, keyed by the
 * SHA-256 of its responseID, deleted once its validity period has passed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stor_int.h"

#define KEY(p, n) ((MDB_val){ (n), (void *)(p) })

int stor_txn_async_get(stor_txn_t *t, const uint8_t hash[32], stor_async_t *out)
{
    return stor_get_by_hash(t, STOR_DB_ASYNC, STOR_REC_ASYNC, hash, out, sizeof(*out));
}

int stor_txn_async_put(stor_txn_t *t, const stor_async_t *rec)
{
    MDB_val k;
    int rc;

    if (rec == NULL || rec->state < STOR_ASYNC_PENDING || rec->state > STOR_ASYNC_FAILED ||
        rec->body_len > STOR_ASYNC_BODY_MAX || (rec->body_len > 0 && (rec->body_one != 1 || rec->body == NULL)))
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(rec->user)) != 0 ||
        (rc = stor_name_check(rec->cred)) != 0)
        return rc;
    k = KEY(rec->hash, 32);
    return stor_put_rec(t, STOR_DB_ASYNC, &k, STOR_REC_ASYNC, rec, 0);
}

typedef struct {
    const char *desc;
    int n;
} fail_t;

static int fail_fn(stor_txn_t *t, void *arg)
{
    fail_t *f = arg;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    stor_async_t rec;
    uint8_t (*keys)[32] = NULL;
    size_t n = 0, cap = 0;
    int rc;

    f->n = 0;
    if ((rc = stor_txn_check(t, 1)) != 0)
        return rc;
    /* First collect the pending keys, then rewrite them: no writes while the cursor walks. */
    if ((rc = mdb_cursor_open(t->txn, stor_dbi(t, STOR_DB_ASYNC), &cur)) != 0)
        return stor_txn_fail(t, rc);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint32_t state;
        if ((rc = stor_codec_peek(STOR_REC_ASYNC, v.mv_data, v.mv_size, offsetof(stor_async_t, state), &state,
                                  sizeof(state))) != 0)
            goto out;
        uint32_t pid;
        if (state != STOR_ASYNC_PENDING || k.mv_size != 32 ||
            stor_codec_peek(STOR_REC_ASYNC, v.mv_data, v.mv_size, offsetof(stor_async_t, owner_pid), &pid,
                            sizeof(pid)) != 0)
            continue;
        /* Another live process's job stays pending (errno EPERM: alive, someone else's). */
        if (pid != 0 && pid != (uint32_t)getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;
        if (n == cap) {
            void *p = realloc(keys, (cap = cap ? 2 * cap : 64) * sizeof(*keys));
            if (p == NULL) {
                rc = STOR_ERR_NOMEM;
                goto out;
            }
            keys = p;
        }
        memcpy(keys[n++], k.mv_data, 32);
    }
    if (rc != MDB_NOTFOUND) {
        rc = stor_txn_fail(t, rc);
        goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    for (size_t i = 0; i < n; i++) {
        if ((rc = stor_txn_async_get(t, keys[i], &rec)) != 0)
            goto out;
        rec.state = STOR_ASYNC_FAILED;
        rec.status = 500;
        snprintf(rec.error, sizeof(rec.error), "server_error");
        snprintf(rec.error_description, sizeof(rec.error_description), "%s", f->desc);
        rec.body = NULL;
        rec.body_len = rec.body_one = 0;
        if ((rc = stor_txn_async_put(t, &rec)) != 0)
            goto out;
        f->n++;
    }
    rc = 0;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    free(keys);
    return rc;
}

int stor_async_fail_pending(stor_env_t *env, const char *desc)
{
    fail_t f = { .desc = desc ? desc : "", .n = 0 };
    int rc = stor_write(env, fail_fn, &f);

    return rc != 0 ? rc : f.n;
}

typedef struct {
    int64_t now;
    int n;
} purge_t;

static int purge_fn(stor_txn_t *t, void *arg)
{
    purge_t *p = arg;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int64_t exp;
    int rc;

    p->n = 0;
    if ((rc = stor_txn_check(t, 1)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(t->txn, stor_dbi(t, STOR_DB_ASYNC), &cur)) != 0)
        return stor_txn_fail(t, rc);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((rc = stor_codec_peek(STOR_REC_ASYNC, v.mv_data, v.mv_size, offsetof(stor_async_t, expires_ms), &exp,
                                  sizeof(exp))) != 0)
            goto out;
        if (exp >= p->now)
            continue;
        if ((rc = mdb_cursor_del(cur, 0)) != 0) {
            rc = stor_txn_fail(t, rc);
            goto out;
        }
        p->n++;
    }
    rc = rc == MDB_NOTFOUND ? 0 : stor_txn_fail(t, rc);
out:
    mdb_cursor_close(cur);
    return rc;
}

int stor_async_purge(stor_env_t *env, int64_t now_ms)
{
    purge_t p = { .now = now_ms, .n = 0 };
    int rc = stor_write(env, purge_fn, &p);

    return rc != 0 ? rc : p.n;
}
