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

#define KEY(p, n) STOR_VAL(p, n)

int stor_txn_async_get(stor_txn_t *t, const uint8_t hash[32], stor_async_t *out)
{
    return stor_get_by_hash(t, STOR_DB_ASYNC, STOR_REC_ASYNC, hash, out, sizeof(*out));
}

int stor_txn_async_put(stor_txn_t *t, const stor_async_t *rec)
{
    stor_val_t k;
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
    const char *node;
    const char *desc;
    stor_hash_list_t keys;
    int n;
} fail_t;

/* A pending job's key, unless the job belongs to another node or to another live process of this node. */
static int pending_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    fail_t *f = arg;
    char node[STOR_NODE_MAX + 1];
    uint32_t state, pid;
    int rc;

    (void)t;
    (void)cur;
    if ((rc = stor_codec_peek(STOR_REC_ASYNC, v->data, v->len, offsetof(stor_async_t, state), &state,
                              sizeof(state))) != 0)
        return rc;
    if (state != STOR_ASYNC_PENDING || k->len != 32 ||
        stor_codec_peek(STOR_REC_ASYNC, v->data, v->len, offsetof(stor_async_t, owner_pid), &pid,
                        sizeof(pid)) != 0 ||
        stor_codec_peek(STOR_REC_ASYNC, v->data, v->len, offsetof(stor_async_t, owner_node), node,
                        sizeof(node)) != 0)
        return 0;
    /* Another node's job is that node's to fail: its pid means nothing here ("": a record from before node ids). */
    if (node[0] != '\0' && strcmp(node, f->node) != 0)
        return 0;
    /* Another live process's job stays pending (errno EPERM: alive, someone else's). */
    if (pid != 0 && pid != (uint32_t)getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
        return 0;
    return stor_hash_list_add(&f->keys, k->data);
}

static int fail_fn(stor_txn_t *t, void *arg)
{
    fail_t *f = arg;
    stor_hash_list_t *keys = &f->keys;
    stor_async_t rec;
    int rc;

    f->n = 0;
    free(keys->h); /* a batch run again starts afresh */
    keys->h = NULL;
    keys->n = keys->cap = 0;
    if ((rc = stor_txn_check(t, 1)) != 0)
        return rc;
    /* First collect the pending keys, then rewrite them: no writes while the cursor walks. */
    if ((rc = stor_walk(t, STOR_DB_ASYNC, STOR_WALK_ALL, NULL, pending_row, f)) != 0)
        goto out;
    for (size_t i = 0; i < keys->n; i++) {
        if ((rc = stor_txn_async_get(t, keys->h[i], &rec)) != 0)
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
out:
    free(keys->h);
    keys->h = NULL;
    keys->n = keys->cap = 0;
    return rc;
}

int stor_async_fail_pending(stor_env_t *env, const char *node, const char *desc)
{
    fail_t f = { .node = node, .desc = desc ? desc : "", .keys = { NULL, 0, 0 }, .n = 0 };
    int rc;

    if (node == NULL || node[0] == '\0' || strlen(node) > STOR_NODE_MAX)
        return STOR_ERR_INVAL;
    rc = stor_write(env, fail_fn, &f);
    return rc != 0 ? rc : f.n;
}

static int purge_fn(stor_txn_t *t, int64_t now_ms, int *n)
{
    int rc = stor_txn_check(t, 1);

    return rc != 0 ? rc : stor_purge_table(t, STOR_DB_ASYNC, STOR_REC_ASYNC, offsetof(stor_async_t, expires_ms), now_ms, n);
}

int stor_async_purge(stor_env_t *env, int64_t now_ms)
{
    return stor_purge_run(env, now_ms, purge_fn);
}
