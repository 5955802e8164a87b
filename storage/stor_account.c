/*
 * stor_account.c - what the /account page shows besides the records themselves (stor.h): the restore_reqs table (a
 * user's requests to restore a credential's key from its backup, named by a reference), and the bounded recent
 * activity of the signins (by user) and sign_events (by credential) tables.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "stor_int.h"

int stor_txn_restore_req_get(stor_txn_t *t, const char *ref, stor_restore_req_t *out)
{
    return stor_get_by_name(t, STOR_DB_RESTORE_REQS, STOR_REC_RESTORE_REQ, ref, out, sizeof(*out));
}

int stor_txn_restore_req_put(stor_txn_t *t, const stor_restore_req_t *r, int create_only)
{
    int rc;

    if (r == NULL || (r->state != STOR_RESTORE_OPEN && r->state != STOR_RESTORE_USED))
        return STOR_ERR_INVAL;
    if ((rc = stor_name_check(r->user)) != 0 || (rc = stor_name_check(r->cred)) != 0)
        return rc;
    return stor_put_by_name(t, STOR_DB_RESTORE_REQS, STOR_REC_RESTORE_REQ, r->ref, r, create_only);
}

typedef struct req_walk {
    const char *user;
    stor_restore_req_each_fn fn;
    void *arg;
    stor_restore_req_t r;
} req_walk_t;

static int req_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    req_walk_t *w = arg;
    (void)t;
    (void)cur;
    (void)k;
    int rc = stor_codec_decode(STOR_REC_RESTORE_REQ, v->data, v->len, &w->r);
    if (rc != 0)
        return rc;
    if (w->user != NULL && strcmp(w->r.user, w->user) != 0)
        return 0;
    return w->fn(&w->r, w->arg);
}

int stor_txn_restore_req_each(stor_txn_t *t, const char *user, stor_restore_req_each_fn fn, void *arg)
{
    req_walk_t w = {.user = user, .fn = fn, .arg = arg};

    if (fn == NULL)
        return STOR_ERR_INVAL;
    return stor_walk(t, STOR_DB_RESTORE_REQS, STOR_WALK_ALL, NULL, req_row, &w);
}

/* The table of a kind of recent activity, and its bound; -1 for an unknown kind. */
static int recent_table(uint32_t kind, uint32_t *bound)
{
    switch (kind) {
    case STOR_RECENT_SIGNINS:
        *bound = STOR_SIGNINS_MAX;
        return STOR_DB_SIGNINS;
    case STOR_RECENT_SIGNS:
        *bound = STOR_SIGN_EVENTS_MAX;
        return STOR_DB_SIGN_EVENTS;
    default:
        return -1;
    }
}

int stor_txn_recent_get(stor_txn_t *t, uint32_t kind, const char *key, stor_recent_t *out)
{
    uint32_t bound;
    int db = recent_table(kind, &bound);

    if (out == NULL || db < 0)
        return STOR_ERR_INVAL;
    int rc = stor_get_by_name(t, db, STOR_REC_RECENT, key, out, sizeof(*out));
    if (rc == STOR_ERR_NOTFOUND) {
        memset(out, 0, sizeof(*out));
        snprintf(out->key, sizeof(out->key), "%s", key);
        return STOR_OK;
    }
    if (rc == 0 && out->n > bound)
        out->n = bound; /* a record of a larger bound: keep the newest */
    return rc;
}

typedef struct recent_put {
    int db;
    const char *key;
    const stor_recent_t *r;
} recent_put_t;

static int recent_put_fn(stor_txn_t *t, void *arg)
{
    const recent_put_t *p = arg;

    return stor_put_by_name(t, p->db, STOR_REC_RECENT, p->key, p->r, 0);
}

int stor_txn_recent_prefetch(stor_txn_t *t, uint32_t kind, const char *key)
{
    uint32_t bound;
    int db = recent_table(kind, &bound);

    return db < 0 ? STOR_ERR_INVAL : stor_prefetch_by_name(t, db, key);
}

int stor_txn_recent_add(stor_txn_t *t, uint32_t kind, const char *key, int64_t time_ms, uint32_t what,
                        uint32_t result, const char *client)
{
    stor_recent_t r;
    uint32_t bound;
    int db = recent_table(kind, &bound), rc;

    if (db < 0 || key == NULL || client == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_recent_get(t, kind, key, &r)) != 0)
        return rc;
    uint32_t keep = r.n < bound ? r.n : bound - 1;
    memmove(&r.time_ms[1], &r.time_ms[0], keep * sizeof(r.time_ms[0]));
    memmove(&r.what[1], &r.what[0], keep * sizeof(r.what[0]));
    memmove(&r.result[1], &r.result[0], keep * sizeof(r.result[0]));
    memmove(&r.client[1], &r.client[0], keep * sizeof(r.client[0]));
    r.n = keep + 1;
    r.time_ms[0] = time_ms;
    r.what[0] = what;
    r.result[0] = result;
    size_t len = strnlen(client, STOR_RECENT_CLIENT_MAX);
    while (len > 0 && len < strlen(client) && ((unsigned char)client[len] & 0xC0) == 0x80)
        len--; /* cut at a character boundary */
    memcpy(r.client[0], client, len);
    r.client[0][len] = '\0';
    /* With the map nearly full, in a nested transaction: then the event is dropped and the write it belongs to goes
     * on (a sign-in or a signature is not refused for want of room for what /account shows; its audit record
     * decides). With ample room the put cannot meet a full map, and the nested txn's cost is saved (LMDB: 3 MiB
     * allocated and freed, stor_env.c run_batch). */
    recent_put_t p = { db, key, &r };
    if (stor_room_ample(t->env))
        return recent_put_fn(t, &p);
    rc = stor_txn_nested(t, recent_put_fn, &p);
    /* A full map inside the nested txn left t usable (t->err == 0); a failed commit into t did not. */
    return rc == STOR_ERR_FULL && t->err == 0 ? STOR_OK : rc;
}
