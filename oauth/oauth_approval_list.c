/*
 * oauth_approval_list.c - the listing of the pending approvals of a user (oauth.h), as the /approve page shows them:
 * read-only, from storage (user_approvals). A file of its own so that csc-server, whose page lists them, links none
 * of the code that files, decides or answers them (oauth_approval.c: csc-sam's; tests/unit/server/check_symbols).
 */
#include <string.h>

#include "oauth_int.h"

void oauth_approval_view_of(const stor_user_approval_t *a, oauth_approval_view_t *v)
{
    memset(v, 0, sizeof(*v));
    memcpy(v->ref, a->ref, 16);
    oauth_copy(v->cred, sizeof(v->cred), a->cred);
    oauth_copy(v->client, sizeof(v->client), a->client);
    v->num_signatures = a->num_signatures;
    oauth_copy(v->hash_alg, sizeof(v->hash_alg), a->hash_alg);
    v->digest_len = a->digest_len;
    v->n_digests = a->n_digests;
    v->digests = a->digests;
    v->created = a->created_at;
    v->expires = a->expires_at;
    v->needs_pin = a->needs_pin != 0;
}

typedef struct {
    const char *user;
    int64_t now;
    void (*fn)(const oauth_approval_view_t *v, void *arg);
    void *arg;
    size_t n;
} list_t;

static int list_one(const stor_user_approval_t *a, void *arg)
{
    list_t *l = arg;
    oauth_approval_view_t v;

    if (a->state != STOR_UAPPR_PENDING || a->expires_at <= l->now)
        return 0;
    oauth_approval_view_of(a, &v);
    l->fn(&v, l->arg);
    l->n++;
    return 0;
}

static int list_txn(stor_txn_t *t, void *arg)
{
    list_t *l = arg;
    l->n = 0;
    return stor_txn_user_approval_each(t, l->user, list_one, l);
}

size_t oauth_approval_each(oauth_t *o, const char *user, void (*fn)(const oauth_approval_view_t *v, void *arg),
                           void *arg)
{
    list_t l;

    if (!o || !user || !fn || !oauth_name_ok(user))
        return 0;
    l = (list_t){.user = user, .now = oauth_clock(o), .fn = fn, .arg = arg};
    return stor_read(o->cfg.stor, list_txn, &l) == STOR_OK ? l.n : 0;
}
