/*
 * stor_txn.c - record accessors used inside stor_write()/stor_read() callbacks,
 * the secondary indexes they maintain, and the purge of expired records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "stor_int.h"

#define KEY(p, n) STOR_VAL(p, n)

int stor_name_check(const char *name)
{
    size_t n;

    if (name == NULL)
        return STOR_ERR_INVAL;
    n = strnlen(name, STOR_NAME_MAX + 1);
    if (n == 0 || n > STOR_NAME_MAX)
        return STOR_ERR_INVAL;
    for (size_t i = 0; i < n; i++) {
        /* Printable ASCII without space: names are index keys and end up in logs and JSON. */
        if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f)
            return STOR_ERR_INVAL;
    }
    return 0;
}

int stor_txn_check(stor_txn_t *t, int write)
{
    if (t == NULL || t->txn == NULL)
        return STOR_ERR_INVAL;
    if (t->err != 0)
        return t->err;
    if (write && !t->writable)
        return STOR_ERR_INVAL;
    return 0;
}

int stor_kv_get(stor_txn_t *t, int db, const stor_val_t *k, stor_val_t *v)
{
    return stor_txn_fail(t, t->env->be->get(t->env->benv, t->txn, db, k, v));
}

int stor_kv_put(stor_txn_t *t, int db, const stor_val_t *k, stor_val_t *v, unsigned flags)
{
    int rc = stor_write_allowed(t, db);

    return stor_txn_fail(t, rc != 0 ? rc : t->env->be->put(t->env->benv, t->txn, db, k, v, flags));
}

int stor_kv_del(stor_txn_t *t, int db, const stor_val_t *k, const stor_val_t *v)
{
    int rc = stor_write_allowed(t, db);

    return stor_txn_fail(t, rc != 0 ? rc : t->env->be->del(t->env->benv, t->txn, db, k, v));
}

int stor_txn_try_lock(stor_txn_t *t, const char *name)
{
    int rc;

    if (t == NULL || name == NULL || !t->writable)
        return STOR_ERR_INVAL;
    if (t->err != 0)
        return t->err;
    rc = t->env->be->try_lock(t->txn, name);
    return rc < 0 ? stor_txn_fail(t, rc) : rc;
}

int stor_txn_nested(stor_txn_t *t, stor_txn_fn fn, void *arg)
{
    stor_txn_t sub;
    int rc;

    if ((rc = stor_txn_check(t, 1)) != 0)
        return rc;
    sub = *t;
    if ((rc = t->env->be->txn_begin(t->env->benv, t->txn, STOR_BK_WRITE, &sub.txn)) != 0)
        return stor_txn_fail(t, rc);
    __atomic_add_fetch(&t->env->st_nested, 1, __ATOMIC_RELAXED);
    if ((rc = fn(&sub, arg)) == 0 && sub.err != 0)
        rc = sub.err;
    if (rc != 0) {
        t->env->be->txn_abort(sub.txn);
        return rc;
    }
    return stor_txn_fail(t, t->env->be->txn_commit(sub.txn));
}

int stor_count_rows(stor_txn_t *t, int db, size_t *n)
{
    int rc;

    if (n == NULL)
        return STOR_ERR_INVAL;
    *n = 0;
    if ((rc = stor_txn_check(t, 0)) != 0)
        return rc;
    return stor_txn_fail(t, t->env->be->count(t->env->benv, t->txn, db, n));
}

/* Encode rec straight into the space the backend reserves for it (LMDB: its page). */
int stor_put_rec(stor_txn_t *t, int db, const stor_val_t *key, stor_rec_type_t type, const void *rec, unsigned flags)
{
    stor_val_t v = { 0, NULL };
    size_t len;
    int rc;

    if ((rc = stor_codec_size(type, rec, &len)) != 0)
        return rc;
    v.len = len;
    if ((rc = stor_kv_put(t, db, key, &v, flags | STOR_PUT_RESERVE)) != 0)
        return rc;
    /* Cannot fail after stor_codec_size(); if it did, the reserved bytes must never be committed. */
    if ((rc = stor_codec_encode(type, rec, v.data, len)) != 0 && t->err == 0)
        t->err = rc;
    return rc;
}

int stor_get_rec(stor_txn_t *t, int db, const stor_val_t *key, stor_rec_type_t type, void *out, size_t out_size)
{
    stor_val_t v;
    int rc = stor_kv_get(t, db, key, &v);

    if (rc != 0) {
        memset(out, 0, out_size);
        return rc;
    }
    return stor_codec_decode(type, v.data, v.len, out);
}

/* The key of a record keyed by a 32-byte hash, t checked for reading: the get's and the prefetch's. */
static int hash_key(stor_txn_t *t, const uint8_t *hash, stor_val_t *k)
{
    int rc = hash == NULL ? STOR_ERR_INVAL : stor_txn_check(t, 0);

    if (rc == 0)
        *k = KEY(hash, 32);
    return rc;
}

/* The key of a record keyed by a name (stor_name_check), t checked for reading: the get's and the prefetch's. */
static int name_key(stor_txn_t *t, const char *name, stor_val_t *k)
{
    int rc;

    if ((rc = stor_txn_check(t, 0)) != 0 || (rc = stor_name_check(name)) != 0)
        return rc;
    *k = KEY(name, strlen(name));
    return 0;
}

int stor_txn_prefetch(stor_txn_t *t, int db, const void *key, size_t klen)
{
    stor_val_t k = KEY(key, klen);
    int rc;

    if ((rc = stor_txn_check(t, 0)) != 0)
        return rc;
    if (t->env->be->prefetch == NULL)
        return 0;
    return stor_txn_fail(t, t->env->be->prefetch(t->env->benv, t->txn, db, &k));
}

/* A record keyed by a 32-byte hash (tokens, SADs, codes). out is fully written on every path: zeroed on an
 * error, decoded (absent fields zero) otherwise, so no up-front memset of a large record is needed. */
int stor_get_by_hash(stor_txn_t *t, int db, stor_rec_type_t type, const uint8_t hash[32], void *out, size_t size)
{
    stor_val_t k;
    int rc;

    if (out == NULL)
        return STOR_ERR_INVAL;
    if ((rc = hash_key(t, hash, &k)) != 0) {
        memset(out, 0, size);
        return rc;
    }
    return stor_get_rec(t, db, &k, type, out, size);
}

/* Records keyed by a name (users, credentials, OAuth clients, operators, approvals): the name is checked like a
 * user name (STOR_ERR_INVAL). get zeroes out first, so it is zero on every error. */
int stor_get_by_name(stor_txn_t *t, int db, stor_rec_type_t type, const char *name, void *out, size_t size)
{
    stor_val_t k;
    int rc;

    if (out == NULL)
        return STOR_ERR_INVAL;
    memset(out, 0, size);
    if ((rc = name_key(t, name, &k)) != 0)
        return rc;
    return stor_get_rec(t, db, &k, type, out, size);
}

int stor_put_by_name(stor_txn_t *t, int db, stor_rec_type_t type, const char *name, const void *rec, int create_only)
{
    stor_val_t k;
    int rc;

    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(name)) != 0)
        return rc;
    k = KEY(name, strlen(name));
    return stor_put_rec(t, db, &k, type, rec, create_only ? STOR_PUT_NOOVERWRITE : 0);
}

int stor_del_by_name(stor_txn_t *t, int db, const char *name)
{
    stor_val_t k;
    int rc;

    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(name)) != 0)
        return rc;
    k = KEY(name, strlen(name));
    if ((rc = stor_kv_del(t, db, &k, NULL)) != 0)
        return rc;
    return 0;
}

/* Delete one index row; a missing row is tolerated so a damaged index can be repaired by rewriting. */
static int del_index(stor_txn_t *t, int db, stor_val_t *key, stor_val_t *val)
{
    int rc = stor_kv_del(t, db, key, val);

    return rc == STOR_ERR_NOTFOUND ? 0 : rc;
}

static int put_index(stor_txn_t *t, int db, stor_val_t *key, stor_val_t *val)
{
    int rc = stor_kv_put(t, db, key, val, STOR_PUT_NODUPDATA);

    return rc == STOR_ERR_EXISTS ? 0 : rc;
}

/* ---- walking a table ------------------------------------------------------ */

int stor_walk(stor_txn_t *t, int db, stor_walk_t how, const stor_val_t *key, stor_row_fn fn, void *arg)
{
    static const stor_cur_op_t first[] = { STOR_CUR_FIRST, STOR_CUR_SET_RANGE, STOR_CUR_SET_KEY };
    static const stor_cur_op_t next[] = { STOR_CUR_NEXT, STOR_CUR_NEXT, STOR_CUR_NEXT_DUP };
    const stor_backend_t *be;
    stor_cursor_t *cur = NULL;
    stor_val_t k = { 0, NULL }, v;
    int rc, outer;

    if (fn == NULL || (unsigned)how > STOR_WALK_DUPS || (how != STOR_WALK_ALL && key == NULL))
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 0)) != 0)
        return rc;
    be = t->env->be;
    if (key != NULL)
        k = *key;
    if ((rc = be->cursor_open(t->env->benv, t->txn, db, &cur)) != 0)
        return stor_txn_fail(t, rc);
    outer = t->walk_db;
    t->walk_db = db;
    for (rc = be->cursor_get(cur, first[how], &k, &v); rc == 0; rc = be->cursor_get(cur, next[how], &k, &v)) {
        if ((rc = fn(t, cur, &k, &v, arg)) != 0)
            goto out;
    }
    rc = rc == STOR_ERR_NOTFOUND ? 0 : stor_txn_fail(t, rc);
out:
    t->walk_db = outer;
    be->cursor_close(cur);
    return rc;
}

int stor_walk_del(stor_txn_t *t, stor_cursor_t *cur)
{
    int rc = stor_txn_check(t, 1);

    if (rc == 0)
        rc = stor_write_allowed(t, t->walk_db);
    return rc != 0 ? stor_txn_fail(t, rc) : stor_txn_fail(t, t->env->be->cursor_del(cur));
}

typedef struct rec_walk {
    const stor_rec_cb_t *cb;
    void *rec;
} rec_walk_t;

static size_t rec_size(stor_rec_type_t type)
{
    switch (type) {
    case STOR_REC_USER: return sizeof(stor_user_t);
    case STOR_REC_CRED: return sizeof(stor_cred_t);
    case STOR_REC_TOKEN: return sizeof(stor_token_t);
    case STOR_REC_CLIENT: return sizeof(stor_client_t);
    case STOR_REC_OPERATOR: return sizeof(stor_operator_t);
    case STOR_REC_APPROVAL: return sizeof(stor_approval_t);
    default: return 0;
    }
}

static int rec_call(const stor_rec_cb_t *cb, const void *rec)
{
    switch (cb->type) {
    case STOR_REC_USER: return cb->fn.user(rec, cb->arg);
    case STOR_REC_CRED: return cb->fn.cred(rec, cb->arg);
    case STOR_REC_TOKEN: return cb->fn.token(rec, cb->arg);
    case STOR_REC_CLIENT: return cb->fn.client(rec, cb->arg);
    case STOR_REC_OPERATOR: return cb->fn.op(rec, cb->arg);
    default: return cb->fn.approval(rec, cb->arg);
    }
}

/* An index row's value is the key of its record in cb->via (a name or a 32-byte hash); a dangling row means the
 * index is damaged. */
static int rec_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    rec_walk_t *w = arg;
    const stor_rec_cb_t *cb = w->cb;
    char id[STOR_NAME_MAX + 1];
    stor_val_t rk;
    int rc;

    (void)cur;
    (void)k;
    if (cb->via < 0) {
        rc = stor_codec_decode(cb->type, v->data, v->len, w->rec);
    } else {
        if (v->len == 0 || v->len > STOR_NAME_MAX)
            return STOR_ERR_CORRUPT;
        memcpy(id, v->data, v->len);
        rk = KEY(id, v->len);
        rc = stor_get_rec(t, cb->via, &rk, cb->type, w->rec, rec_size(cb->type));
        rc = rc == STOR_ERR_NOTFOUND ? STOR_ERR_CORRUPT : rc;
    }
    return rc != 0 ? rc : rec_call(cb, w->rec);
}

int stor_walk_recs(stor_txn_t *t, int db, stor_walk_t how, const stor_val_t *key, const stor_rec_cb_t *cb)
{
    rec_walk_t w = { cb, NULL };
    size_t size = cb != NULL ? rec_size(cb->type) : 0;
    int rc;

    /* Every member of the union is a function pointer: a NULL one reads as NULL through any of them. */
    if (size == 0 || cb->fn.user == NULL)
        return STOR_ERR_INVAL;
    if ((w.rec = stor_rec_new(size)) == NULL)
        return STOR_ERR_NOMEM;
    rc = stor_walk(t, db, how, key, rec_row, &w);
    stor_rec_free(w.rec, size);
    return rc;
}

/* ---- users ------------------------------------------------------------- */

int stor_txn_user_get(stor_txn_t *t, const char *name, stor_user_t *out)
{
    return stor_get_by_name(t, STOR_DB_USERS, STOR_REC_USER, name, out, sizeof(*out));
}

int stor_prefetch_by_name(stor_txn_t *t, int db, const char *name)
{
    stor_val_t k;
    int rc = name_key(t, name, &k);

    return rc != 0 ? rc : stor_txn_prefetch(t, db, k.data, k.len);
}

int stor_prefetch_by_hash(stor_txn_t *t, int db, const uint8_t hash[32])
{
    stor_val_t k;
    int rc = hash_key(t, hash, &k);

    return rc != 0 ? rc : stor_txn_prefetch(t, db, k.data, k.len);
}

int stor_txn_user_prefetch(stor_txn_t *t, const char *name)
{
    return stor_prefetch_by_name(t, STOR_DB_USERS, name);
}

int stor_txn_user_put(stor_txn_t *t, const stor_user_t *u, int create_only)
{
    return u == NULL ? STOR_ERR_INVAL : stor_put_by_name(t, STOR_DB_USERS, STOR_REC_USER, u->name, u, create_only);
}

int stor_txn_user_each(stor_txn_t *t, stor_user_each_fn fn, void *arg)
{
    stor_rec_cb_t cb = { STOR_REC_USER, -1, { .user = fn }, arg };

    return stor_walk_recs(t, STOR_DB_USERS, STOR_WALK_ALL, NULL, &cb);
}

/* ---- credentials ------------------------------------------------------- */

int stor_txn_cred_get(stor_txn_t *t, const char *id, stor_cred_t *out)
{
    return stor_get_by_name(t, STOR_DB_CREDS, STOR_REC_CRED, id, out, sizeof(*out));
}

int stor_txn_cred_prefetch(stor_txn_t *t, const char *id)
{
    return stor_prefetch_by_name(t, STOR_DB_CREDS, id);
}

/* Owner of the stored credential k; *found = 0 if there is none. */
static int stored_owner(stor_txn_t *t, stor_val_t *k, char owner[STOR_NAME_MAX + 1], int *found)
{
    stor_val_t v;
    int rc = stor_kv_get(t, STOR_DB_CREDS, k, &v);

    owner[0] = '\0';
    *found = 0;
    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    *found = 1;
    return stor_codec_peek(STOR_REC_CRED, v.data, v.len, offsetof(stor_cred_t, owner), owner,
                           STOR_NAME_MAX + 1);
}

int stor_txn_cred_put(stor_txn_t *t, const stor_cred_t *c, int create_only)
{
    char old_owner[STOR_NAME_MAX + 1];
    stor_val_t k, ok, ov;
    size_t len;
    int rc, found;

    if (c == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(c->id)) != 0 ||
        (rc = stor_name_check(c->owner)) != 0 || (rc = stor_codec_size(STOR_REC_CRED, c, &len)) != 0)
        return rc;
    k = KEY(c->id, strlen(c->id));
    if ((rc = stored_owner(t, &k, old_owner, &found)) != 0)
        return rc;
    if (found && create_only)
        return STOR_ERR_EXISTS;
    if (found && old_owner[0] != '\0' && strcmp(old_owner, c->owner) != 0) {
        ok = KEY(old_owner, strlen(old_owner));
        if ((rc = del_index(t, STOR_DB_CREDS_BY_OWNER, &ok, &k)) != 0)
            return rc;
    }
    if ((rc = stor_put_rec(t, STOR_DB_CREDS, &k, STOR_REC_CRED, c, create_only ? STOR_PUT_NOOVERWRITE : 0)) != 0)
        return rc;
    ok = KEY(c->owner, strlen(c->owner));
    ov = KEY(c->id, strlen(c->id));
    return put_index(t, STOR_DB_CREDS_BY_OWNER, &ok, &ov);
}

int stor_txn_cred_change(stor_txn_t *t, const char *id, stor_cred_change_fn change, void *arg, stor_audit_t *audit)
{
    stor_cred_t *c = malloc(sizeof(*c));
    int rc = c == NULL ? STOR_ERR_NOMEM : stor_txn_cred_get(t, id, c);
    if (rc == 0)
        rc = change(c, arg);
    if (rc == 0) {
        snprintf(audit->user, sizeof(audit->user), "%s", c->owner);
        rc = stor_txn_cred_put(t, c, 0);
    }
    if (rc == 0)
        rc = stor_txn_audit_append(t, audit);
    if (c != NULL)
        stor_wipe(c, sizeof(*c));
    free(c);
    return rc;
}

int stor_txn_cred_each(stor_txn_t *t, const char *owner, stor_cred_each_fn fn, void *arg)
{
    stor_rec_cb_t cb = { STOR_REC_CRED, STOR_DB_CREDS, { .cred = fn }, arg };
    stor_val_t k;
    int rc;

    if ((rc = stor_txn_check(t, 0)) != 0 || (rc = stor_name_check(owner)) != 0)
        return rc;
    k = KEY(owner, strlen(owner));
    /* Duplicates are sorted by memcmp of the id: that is credentialID order. */
    return stor_walk_recs(t, STOR_DB_CREDS_BY_OWNER, STOR_WALK_DUPS, &k, &cb);
}

/* ---- tokens ------------------------------------------------------------ */

int stor_txn_token_get(stor_txn_t *t, const uint8_t hash[32], stor_token_t *out)
{
    return stor_get_by_hash(t, STOR_DB_TOKENS, STOR_REC_TOKEN, hash, out, sizeof(*out));
}

int stor_txn_token_prefetch(stor_txn_t *t, const uint8_t hash[32])
{
    return stor_prefetch_by_hash(t, STOR_DB_TOKENS, hash);
}

/* Grant of the stored token k; *found = 0 if there is none. */
static int stored_grant(stor_txn_t *t, stor_val_t *k, uint8_t grant[16], int *found)
{
    stor_val_t v;
    int rc = stor_kv_get(t, STOR_DB_TOKENS, k, &v);

    *found = 0;
    if (rc == STOR_ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    *found = 1;
    return stor_codec_peek(STOR_REC_TOKEN, v.data, v.len, offsetof(stor_token_t, grant), grant, 16);
}

int stor_txn_token_put(stor_txn_t *t, const stor_token_t *tok)
{
    uint8_t old_grant[16];
    stor_val_t k, gk, gv;
    size_t len;
    int rc, found;

    if (tok == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_codec_size(STOR_REC_TOKEN, tok, &len)) != 0)
        return rc;
    k = KEY(tok->hash, 32);
    if ((rc = stored_grant(t, &k, old_grant, &found)) != 0)
        return rc;
    if (found && memcmp(old_grant, tok->grant, 16) != 0) {
        gk = KEY(old_grant, 16);
        if ((rc = del_index(t, STOR_DB_TOKENS_BY_GRANT, &gk, &k)) != 0)
            return rc;
    }
    if ((rc = stor_put_rec(t, STOR_DB_TOKENS, &k, STOR_REC_TOKEN, tok, 0)) != 0)
        return rc;
    gk = KEY(tok->grant, 16);
    gv = KEY(tok->hash, 32);
    return put_index(t, STOR_DB_TOKENS_BY_GRANT, &gk, &gv);
}

int stor_txn_token_del(stor_txn_t *t, const uint8_t hash[32])
{
    uint8_t grant[16];
    stor_val_t k, gk;
    int rc, found;

    if (hash == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0)
        return rc;
    k = KEY(hash, 32);
    if ((rc = stored_grant(t, &k, grant, &found)) != 0)
        return rc;
    if (!found)
        return STOR_ERR_NOTFOUND;
    gk = KEY(grant, 16);
    if ((rc = del_index(t, STOR_DB_TOKENS_BY_GRANT, &gk, &k)) != 0)
        return rc;
    if ((rc = stor_kv_del(t, STOR_DB_TOKENS, &k, NULL)) != 0)
        return rc;
    return 0;
}

/* Set revoked on the token the index row points to; arg counts the tokens that changed. */
static int revoke_one(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *gk, const stor_val_t *hv, void *arg)
{
    stor_token_t tok;
    uint8_t hash[32];
    stor_val_t k;
    int rc;

    (void)cur;
    (void)gk;
    if (hv->len != 32)
        return STOR_ERR_CORRUPT;
    /* Copy: the put below may move the page the cursor's data points into. */
    memcpy(hash, hv->data, 32);
    k = KEY(hash, 32);
    if ((rc = stor_get_rec(t, STOR_DB_TOKENS, &k, STOR_REC_TOKEN, &tok, sizeof(tok))) != 0)
        return rc == STOR_ERR_NOTFOUND ? STOR_ERR_CORRUPT : rc;
    if (tok.revoked)
        return 0;
    tok.revoked = 1;
    if ((rc = stor_put_rec(t, STOR_DB_TOKENS, &k, STOR_REC_TOKEN, &tok, 0)) != 0)
        return rc;
    (*(int *)arg)++;
    return 0;
}

int stor_txn_token_revoke_grant(stor_txn_t *t, const uint8_t grant[16])
{
    stor_val_t k;
    int rc, n = 0;

    if (grant == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0)
        return rc;
    k = KEY(grant, 16);
    rc = stor_walk(t, STOR_DB_TOKENS_BY_GRANT, STOR_WALK_DUPS, &k, revoke_one, &n);
    return rc != 0 ? rc : n;
}

int stor_txn_token_each_grant(stor_txn_t *t, const uint8_t grant[16], stor_token_each_fn fn, void *arg)
{
    stor_rec_cb_t cb = { STOR_REC_TOKEN, STOR_DB_TOKENS, { .token = fn }, arg };
    stor_val_t k;

    if (grant == NULL)
        return STOR_ERR_INVAL;
    k = KEY(grant, 16);
    return stor_walk_recs(t, STOR_DB_TOKENS_BY_GRANT, STOR_WALK_DUPS, &k, &cb);
}

/* ---- SADs and pending SADs ------------------------------------------------ */

static int sad_put_in(stor_txn_t *t, int db, const stor_sad_t *sad)
{
    stor_val_t k;
    int rc;

    if (sad == NULL || sad->digest_len > STOR_DIGEST_LEN_MAX || sad->n_digests > STOR_DIGESTS_MAX ||
        (sad->n_digests > 0 && sad->digest_len == 0))
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0)
        return rc;
    k = KEY(sad->hash, 32);
    return stor_put_rec(t, db, &k, STOR_REC_SAD, sad, 0);
}

int stor_del_by_hash(stor_txn_t *t, int db, const uint8_t hash[32])
{
    stor_val_t k;
    int rc;

    if (hash == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0)
        return rc;
    k = KEY(hash, 32);
    if ((rc = stor_kv_del(t, db, &k, NULL)) != 0)
        return rc;
    return 0;
}

int stor_txn_sad_get(stor_txn_t *t, const uint8_t hash[32], stor_sad_t *out)
{
    return stor_get_by_hash(t, STOR_DB_SADS, STOR_REC_SAD, hash, out, sizeof(*out));
}

int stor_txn_sad_prefetch(stor_txn_t *t, const uint8_t hash[32])
{
    return stor_prefetch_by_hash(t, STOR_DB_SADS, hash);
}

int stor_txn_sad_put(stor_txn_t *t, const stor_sad_t *sad)
{
    return sad_put_in(t, STOR_DB_SADS, sad);
}

int stor_txn_sad_del(stor_txn_t *t, const uint8_t hash[32])
{
    return stor_del_by_hash(t, STOR_DB_SADS, hash);
}

int stor_txn_pending_sad_get(stor_txn_t *t, const uint8_t code_hash[32], stor_sad_t *out)
{
    return stor_get_by_hash(t, STOR_DB_PENDING_SADS, STOR_REC_SAD, code_hash, out, sizeof(*out));
}

int stor_txn_pending_sad_put(stor_txn_t *t, const stor_sad_t *pending)
{
    return sad_put_in(t, STOR_DB_PENDING_SADS, pending);
}

int stor_txn_pending_sad_del(stor_txn_t *t, const uint8_t code_hash[32])
{
    return stor_del_by_hash(t, STOR_DB_PENDING_SADS, code_hash);
}

/* ---- OAuth clients ----------------------------------------------------- */

int stor_txn_client_get(stor_txn_t *t, const char *id, stor_client_t *out)
{
    return stor_get_by_name(t, STOR_DB_CLIENTS, STOR_REC_CLIENT, id, out, sizeof(*out));
}

int stor_txn_client_put(stor_txn_t *t, const stor_client_t *c, int create_only)
{
    return c == NULL ? STOR_ERR_INVAL : stor_put_by_name(t, STOR_DB_CLIENTS, STOR_REC_CLIENT, c->id, c, create_only);
}

int stor_txn_client_del(stor_txn_t *t, const char *id)
{
    return stor_del_by_name(t, STOR_DB_CLIENTS, id);
}

int stor_txn_client_each(stor_txn_t *t, stor_client_each_fn fn, void *arg)
{
    stor_rec_cb_t cb = { STOR_REC_CLIENT, -1, { .client = fn }, arg };

    /* Keys sort by memcmp: client_id order. */
    return stor_walk_recs(t, STOR_DB_CLIENTS, STOR_WALK_ALL, NULL, &cb);
}

/* ---- authorization codes ------------------------------------------------ */

int stor_txn_code_get(stor_txn_t *t, const uint8_t hash[32], stor_code_t *out)
{
    return stor_get_by_hash(t, STOR_DB_CODES, STOR_REC_CODE, hash, out, sizeof(*out));
}

int stor_txn_code_put(stor_txn_t *t, const stor_code_t *code)
{
    stor_val_t k;
    int rc;

    if (code == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(code->client)) != 0 ||
        (rc = stor_name_check(code->user)) != 0)
        return rc;
    if (strnlen(code->cred, sizeof(code->cred)) > 0 && (rc = stor_name_check(code->cred)) != 0)
        return rc;
    k = KEY(code->hash, 32);
    return stor_put_rec(t, STOR_DB_CODES, &k, STOR_REC_CODE, code, 0);
}

/* ---- an operator's reset of a user ------------------------------------------ */

int stor_hash_list_add(stor_hash_list_t *l, const void *h)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        void *p = realloc(l->h, cap * 32);
        if (p == NULL)
            return STOR_ERR_NOMEM;
        l->h = p;
        l->cap = cap;
    }
    memcpy(l->h[l->n++], h, 32);
    return 0;
}

/* What collect_user looks for, and where it lists what it found. */
typedef struct collect {
    stor_rec_type_t type;
    const char *user;
    size_t user_off, exp_off, flag_off;
    int64_t now;
    stor_hash_list_t *l;
    unsigned *live;
    const char *cred;   /* NULL: any; else only records naming this credential (at cred_off) */
    size_t cred_off;
} collect_t;

static int collect_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    const collect_t *c = arg;
    char name[STOR_NAME_MAX + 1];
    int64_t exp;
    uint32_t flag;
    int rc;

    (void)t;
    (void)cur;
    if (k->len != 32)
        return 0;
    if ((rc = stor_codec_peek(c->type, v->data, v->len, c->user_off, name, sizeof(name))) != 0 ||
        (rc = stor_codec_peek(c->type, v->data, v->len, c->exp_off, &exp, sizeof(exp))) != 0)
        return rc;
    if (strcmp(name, c->user) != 0)
        return 0;
    if (c->cred != NULL) {
        if ((rc = stor_codec_peek(c->type, v->data, v->len, c->cred_off, name, sizeof(name))) != 0)
            return rc;
        if (strcmp(name, c->cred) != 0)
            return 0;
    }
    if (c->flag_off != 0) {
        if ((rc = stor_codec_peek(c->type, v->data, v->len, c->flag_off, &flag, sizeof(flag))) != 0)
            return rc;
        if (flag)
            return 0;
    }
    if ((rc = stor_hash_list_add(c->l, k->data)) != 0)
        return rc;
    if (exp >= c->now)
        (*c->live)++;
    return 0;
}

/* The 32-byte keys of db whose record names user (at user_off), is unexpired at now (at exp_off; counted only
 * then) and, if flag_off is not 0, has the u32 at flag_off clear (a token not yet revoked, a code not yet used). */
static int collect_user(stor_txn_t *t, int db, stor_rec_type_t type, const char *user, size_t user_off,
                        size_t exp_off, size_t flag_off, int64_t now, stor_hash_list_t *l, unsigned *live)
{
    collect_t c = { type, user, user_off, exp_off, flag_off, now, l, live, NULL, 0 };

    return stor_walk(t, db, STOR_WALK_ALL, NULL, collect_row, &c);
}

/* collect_user for the records of db that also name cred (at cred_off). */
static int collect_cred(stor_txn_t *t, int db, stor_rec_type_t type, const char *user, size_t user_off,
                        const char *cred, size_t cred_off, size_t exp_off, size_t flag_off, int64_t now,
                        stor_hash_list_t *l, unsigned *live)
{
    collect_t c = { type, user, user_off, exp_off, flag_off, now, l, live, cred, cred_off };

    return stor_walk(t, db, STOR_WALK_ALL, NULL, collect_row, &c);
}

static int del_listed(stor_txn_t *t, int db, const stor_hash_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        int rc = stor_del_by_hash(t, db, l->h[i]);
        if (rc != 0 && rc != STOR_ERR_NOTFOUND)
            return rc;
    }
    return 0;
}

/* Collect the rows of db that name user (and cred, unless NULL). */
static int collect_of(stor_txn_t *t, int db, stor_rec_type_t type, const char *user, size_t user_off, const char *cred,
                      size_t cred_off, size_t exp_off, size_t flag_off, int64_t now, stor_hash_list_t *l,
                      unsigned *live)
{
    l->n = 0;
    return cred == NULL ? collect_user(t, db, type, user, user_off, exp_off, flag_off, now, l, live)
                        : collect_cred(t, db, type, user, user_off, cred, cred_off, exp_off, flag_off, now, l, live);
}

/* stor_txn_user_revoke_all, or with cred only what names that credential. */
static int revoke_of(stor_txn_t *t, const char *user, const char *cred, int64_t now, stor_revoked_t *out)
{
    stor_hash_list_t l = {0};
    unsigned dead = 0;
    stor_token_t tok;
    int rc;

    if (out == NULL)
        return STOR_ERR_INVAL;
    memset(out, 0, sizeof(*out));
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(user)) != 0 ||
        (cred != NULL && (rc = stor_name_check(cred)) != 0))
        return rc;
    /* Tokens: marked revoked (kept, like every revocation); with cred, the credential-scope tokens of cred. */
    if ((rc = collect_of(t, STOR_DB_TOKENS, STOR_REC_TOKEN, user, offsetof(stor_token_t, user), cred,
                         offsetof(stor_token_t, cred), offsetof(stor_token_t, expires_at),
                         offsetof(stor_token_t, revoked), now, &l, &out->tokens)) != 0)
        goto out;
    for (size_t i = 0; i < l.n; i++) {
        if ((rc = stor_txn_token_get(t, l.h[i], &tok)) != 0)
            goto out;
        tok.revoked = 1;
        if ((rc = stor_txn_token_put(t, &tok)) != 0)
            goto out;
    }
    /* SADs (those of credential tokens too), pending SADs, unused codes: deleted. */
    if ((rc = collect_of(t, STOR_DB_SADS, STOR_REC_SAD, user, offsetof(stor_sad_t, user), cred,
                         offsetof(stor_sad_t, cred), offsetof(stor_sad_t, expires_at), 0, now, &l, &out->sads)) != 0 ||
        (rc = del_listed(t, STOR_DB_SADS, &l)) != 0)
        goto out;
    if ((rc = collect_of(t, STOR_DB_PENDING_SADS, STOR_REC_SAD, user, offsetof(stor_sad_t, user), cred,
                         offsetof(stor_sad_t, cred), offsetof(stor_sad_t, expires_at), 0, now, &l, &dead)) != 0 ||
        (rc = del_listed(t, STOR_DB_PENDING_SADS, &l)) != 0)
        goto out;
    if ((rc = collect_of(t, STOR_DB_CODES, STOR_REC_CODE, user, offsetof(stor_code_t, user), cred,
                         offsetof(stor_code_t, cred), offsetof(stor_code_t, expires_at), offsetof(stor_code_t, used),
                         now, &l, &out->pending)) != 0 ||
        (rc = del_listed(t, STOR_DB_CODES, &l)) != 0)
        goto out;
out:
    free(l.h);
    OPENSSL_cleanse(&tok, sizeof(tok));
    return rc;
}

int stor_txn_user_revoke_all(stor_txn_t *t, const char *user, int64_t now, stor_revoked_t *out)
{
    return revoke_of(t, user, NULL, now, out);
}

int stor_txn_user_revoke_cred(stor_txn_t *t, const char *user, const char *cred, int64_t now, stor_revoked_t *out)
{
    return cred == NULL ? STOR_ERR_INVAL : revoke_of(t, user, cred, now, out);
}

int stor_txn_websession_end_user(stor_txn_t *t, const char *user, const uint8_t keep[32], int64_t now, unsigned *n)
{
    stor_hash_list_t l = {0};
    unsigned live = 0;
    int rc;

    if (n == NULL)
        return STOR_ERR_INVAL;
    *n = 0;
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(user)) != 0)
        return rc;
    if ((rc = collect_user(t, STOR_DB_WEBSESSIONS, STOR_REC_WEBSESSION, user, offsetof(stor_websession_t, user),
                           offsetof(stor_websession_t, expires_at), 0, now, &l, &live)) != 0)
        goto out;
    for (size_t i = 0; i < l.n; i++) {
        stor_websession_t s;
        if (keep != NULL && memcmp(l.h[i], keep, 32) == 0)
            continue; /* the session that made the change */
        if ((rc = stor_txn_websession_get(t, l.h[i], &s)) != 0)
            goto out;
        *n += s.expires_at > now; /* an expired one is only purged early */
        if ((rc = stor_del_by_hash(t, STOR_DB_WEBSESSIONS, l.h[i])) != 0)
            goto out;
    }
out:
    free(l.h);
    return rc;
}

/* ---- purge ------------------------------------------------------------- */

typedef struct purge {
    int db;
    stor_rec_type_t type;
    size_t exp_off;
    int64_t now;
    int n;
} purge_t;

/* Delete the row if its record expired before now; a token also loses its grant-index row. */
static int purge_row(stor_txn_t *t, stor_cursor_t *cur, const stor_val_t *k, const stor_val_t *v, void *arg)
{
    purge_t *p = arg;
    int64_t exp;
    int rc;

    if ((rc = stor_codec_peek(p->type, v->data, v->len, p->exp_off, &exp, sizeof(exp))) != 0)
        return rc;
    if (exp >= p->now)
        return 0;
    if (t->purge_chunked && p->n >= STOR_PURGE_TXN_MAX)
        return STOR_PURGE_MORE; /* this one goes in the next txn */
    if (p->db == STOR_DB_TOKENS) {
        uint8_t grant[16], hash[32];
        stor_val_t gk = KEY(grant, 16), hk = KEY(hash, 32);
        if (k->len != 32) /* not a token's key: left alone (the walk used to end here, silently) */
            return 0;
        if ((rc = stor_codec_peek(p->type, v->data, v->len, offsetof(stor_token_t, grant), grant, 16)) != 0)
            return rc;
        memcpy(hash, k->data, 32);
        if ((rc = del_index(t, STOR_DB_TOKENS_BY_GRANT, &gk, &hk)) != 0)
            return rc;
    }
    if ((rc = stor_walk_del(t, cur)) != 0)
        return rc;
    if (p->n < INT32_MAX)
        p->n++;
    return 0;
}

int stor_purge_table(stor_txn_t *t, int db, stor_rec_type_t type, size_t exp_off, int64_t now, int *n)
{
    purge_t p = { db, type, exp_off, now, *n };
    int rc = stor_walk(t, db, STOR_WALK_ALL, NULL, purge_row, &p);

    *n = p.n;
    return rc;
}

typedef struct purge_run {
    int64_t now;
    stor_purge_fn purge;
    int n;
    int more; /* the txn stopped at STOR_PURGE_TXN_MAX */
} purge_run_t;

static int purge_run_fn(stor_txn_t *t, void *arg)
{
    purge_run_t *p = arg;
    p->n = 0; /* a retried or rolled-back run must not count twice */
    t->purge_chunked = 1;
    int rc = p->purge(t, p->now, &p->n);
    t->purge_chunked = 0;
    p->more = rc == STOR_PURGE_MORE;
    return p->more ? 0 : rc; /* what it deleted is committed */
}

int stor_purge_run(stor_env_t *env, int64_t now, stor_purge_fn purge)
{
    purge_run_t p = {.now = now, .purge = purge};
    int total = 0, rc;
    do { /* each txn that stops at the limit deleted STOR_PURGE_TXN_MAX rows: this ends */
        if ((rc = stor_write(env, purge_run_fn, &p)) != 0)
            return rc;
        total = p.n < INT32_MAX - total ? total + p.n : INT32_MAX;
    } while (p.more);
    return total;
}

/* ---- convenience ------------------------------------------------------- */

typedef struct get_arg {
    const char *key;
    void *out;
} get_arg_t;

static int user_get_fn(stor_txn_t *t, void *arg)
{
    get_arg_t *g = arg;
    return stor_txn_user_get(t, g->key, g->out);
}

static int cred_get_fn(stor_txn_t *t, void *arg)
{
    get_arg_t *g = arg;
    return stor_txn_cred_get(t, g->key, g->out);
}

int stor_user_get(stor_env_t *env, const char *name, stor_user_t *out)
{
    get_arg_t g = { name, out };
    int rc;

    if (out == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_read(env, user_get_fn, &g)) != 0)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

int stor_cred_get(stor_env_t *env, const char *id, stor_cred_t *out)
{
    get_arg_t g = { id, out };
    int rc;

    if (out == NULL)
        return STOR_ERR_INVAL;
    if ((rc = stor_read(env, cred_get_fn, &g)) != 0)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}
