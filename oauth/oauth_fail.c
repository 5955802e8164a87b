/*
 * oauth_fail.c - failed logins in the audit log, aggregated per address and name.
 *
 * Anyone can fail a login, so one record per failure would let anyone grow the
 * audit log without bound. Failures are keyed by (event, user, client, reason):
 * the client field holds the address. The first failure of a key starts a
 * window of fail_window seconds and is appended as usual; later ones in the
 * window only raise a counter. Once the window has ended, oauth_fail_flush()
 * appends one record with the count (same event, user, client; the reason plus
 * "[repeated count=N within W s]"), so the counts of a key's records add up to
 * its failures. The flush runs before each login's own write (at most once a
 * second) and at shutdown (oauth_free()).
 *
 * The table holds fail_entries keys. When every slot is taken by a window that
 * is still open or still has a count to write, a further failure is appended
 * on its own: memory stays bounded and no failure goes unrecorded.
 *
 * Every change happens under one mutex; the counters are changed only after
 * the write that carries their record committed (a failed flush leaves them).
 * A login's write may run more than once (its batch runs again on
 * STOR_ERR_RETRY): the note its caller keeps across the runs
 * (oauth_fail_note_t) tells oauth_fail_append() what an earlier run did to the
 * table, so that a failure is neither counted twice nor left without its
 * record.
 *
 * Only csc-sam links this file (check_symbols SAM_ONLY): the failures it counts are those of the logins it runs
 * (auth/login: oauth_login.c; the pages' sign-in: oauth_session_login.c), and the lock-out records
 * (oauth_audit_lockout) are written here too. The table's memory is oauth_fail_tab.c's.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oauth_int.h"

#define FLUSH_BATCH 256 /* summaries per write */

typedef oauth_fail_ent_t fail_ent_t;

int oauth_audit_lockout(stor_txn_t *t, const char *user, const char *cred, const char *client, int64_t until,
                        int64_t seconds, uint32_t locks)
{
    stor_audit_t rec;

    oauth_audit_init(&rec, STOR_EV_LOCKOUT, STOR_RES_DENIED, user, cred, client);
    snprintf(rec.detail, sizeof(rec.detail), "%s locked for %" PRId64 " s until %" PRId64 " (lock %" PRIu32
             " since the last success)", cred ? "credential" : "user", seconds, until, locks);
    return stor_txn_audit_append(t, &rec);
}

static int key_of(const stor_audit_t *rec, uint8_t key[32])
{
    char buf[4 + sizeof(rec->user) + sizeof(rec->cred) + sizeof(rec->client) + sizeof(rec->detail)];
    size_t n = 0;

    memcpy(buf, &rec->event, 4);
    n = 4;
#define PUT(s)                                \
    do {                                      \
        size_t l_ = strnlen(s, sizeof(s));    \
        memcpy(buf + n, s, l_);               \
        n += l_;                              \
        buf[n++] = '\0';                      \
    } while (0)
    PUT(rec->user);
    PUT(rec->cred);
    PUT(rec->client);
    PUT(rec->detail);
#undef PUT
    return oauth_sha256(buf, n, key);
}

static fail_ent_t *find(struct oauth_fails *f, const uint8_t key[32])
{
    for (size_t i = 0; i < f->cap; i++)
        if (f->ents[i].used && memcmp(f->ents[i].key, key, 32) == 0)
            return &f->ents[i];
    return NULL;
}

/* A free slot, or one whose window ended with nothing left to write. */
static fail_ent_t *free_slot(struct oauth_fails *f, int64_t now)
{
    for (size_t i = 0; i < f->cap; i++) {
        fail_ent_t *e = &f->ents[i];
        if (!e->used || (e->pending == 0 && e->start + f->window <= now))
            return e;
    }
    return NULL;
}

int oauth_fail_append(const oauth_t *o, stor_txn_t *t, stor_audit_t *rec, int64_t now, oauth_fail_note_t *note)
{
    struct oauth_fails *f = o->fails;
    uint8_t key[32];
    fail_ent_t *e;

    if (key_of(rec, key) != OAUTH_OK) {
        note->how = OAUTH_FAIL_ALONE;
        return stor_txn_audit_append(t, rec);
    }
    pthread_mutex_lock(&f->mu);
    f->end_flush = oauth_fail_flush; /* oauth_free() writes what is still counted */
    e = find(f, key);
    /* An earlier run of this write (its batch ran again) left its mark on the table: the window it counted in, or
     * the one it opened, is still the key's. Counted: not again. Opened: its record was rolled back with that run,
     * so it is appended again. */
    if (note->how == OAUTH_FAIL_COUNTED || note->how == OAUTH_FAIL_OPENED) {
        if (memcmp(note->key, key, 32) == 0 && e && e->start == note->start) {
            pthread_mutex_unlock(&f->mu);
            return note->how == OAUTH_FAIL_COUNTED ? 0 : stor_txn_audit_append(t, rec);
        }
        /* This run decided another failure (the user's state changed between the runs): the earlier count is
         * taken back. (A window the earlier run opened stays, without its first record.) */
        fail_ent_t *old = note->how == OAUTH_FAIL_COUNTED ? find(f, note->key) : NULL;
        if (old && old->start == note->start && old->pending > 0)
            old->pending--;
    }
    note->how = OAUTH_FAIL_ALONE;
    if (e && e->start + f->window > now) {
        if (e->pending < UINT64_MAX)
            e->pending++;
        note->how = OAUTH_FAIL_COUNTED;
    } else if ((e && e->pending == 0) || (!e && (e = free_slot(f, now)) != NULL)) {
        /* A new window: this failure is written now, the window's later ones are counted. */
        memset(e, 0, sizeof(*e));
        memcpy(e->key, key, 32);
        e->used = 1;
        e->event = rec->event;
        e->start = now;
        oauth_copy(e->user, sizeof(e->user), rec->user);
        oauth_copy(e->cred, sizeof(e->cred), rec->cred);
        oauth_copy(e->client, sizeof(e->client), rec->client);
        oauth_copy(e->reason, sizeof(e->reason), rec->detail);
        note->how = OAUTH_FAIL_OPENED;
    }
    /* else: the key's window ended with a count still to flush, or the table is full: written on its own */
    note->start = e != NULL ? e->start : 0;
    memcpy(note->key, key, 32);
    pthread_mutex_unlock(&f->mu);
    return note->how == OAUTH_FAIL_COUNTED ? 0 : stor_txn_audit_append(t, rec);
}

void oauth_fail_unwritten(const oauth_t *o, const stor_audit_t *rec, int64_t now, const oauth_fail_note_t *note)
{
    struct oauth_fails *f = o->fails;
    uint8_t key[32];
    fail_ent_t *e;

    if (note->how == OAUTH_FAIL_NONE || note->how == OAUTH_FAIL_COUNTED || key_of(rec, key) != OAUTH_OK)
        return; /* nothing was tried, or the failure is counted already */
    pthread_mutex_lock(&f->mu);
    if ((e = find(f, key)) != NULL && e->start <= now && e->pending < UINT64_MAX)
        e->pending++;
    pthread_mutex_unlock(&f->mu);
}

/* ---- flush ------------------------------------------------------------------ */

typedef struct {
    const struct oauth_fails *f;
    fail_ent_t *snap;             /* copies of the entries written */
    size_t n;
} flush_ctx_t;

static int flush_fn(stor_txn_t *t, void *arg)
{
    flush_ctx_t *c = arg;
    stor_audit_t rec;
    int rc;

    for (size_t i = 0; i < c->n; i++) {
        const fail_ent_t *e = &c->snap[i];
        oauth_audit_init(&rec, e->event, STOR_RES_DENIED, e->user, e->cred, e->client);
        snprintf(rec.detail, sizeof(rec.detail), "%s [repeated count=%" PRIu64 " within %" PRId64 " s]", e->reason,
                 e->pending, c->f->window);
        if ((rc = stor_txn_audit_append(t, &rec)) < 0)
            return rc;
    }
    return 0;
}

/* Copy up to FLUSH_BATCH due entries (with a count) into snap, from slot *from on. */
static size_t collect(struct oauth_fails *f, int64_t now, int all, size_t *from, fail_ent_t *snap)
{
    size_t n = 0;

    for (; *from < f->cap && n < FLUSH_BATCH; (*from)++) {
        const fail_ent_t *e = &f->ents[*from];
        if (e->used && e->pending > 0 && (all || e->start + f->window <= now))
            snap[n++] = *e;
    }
    return n;
}

/* The write committed: take the written counts off (failures counted since stay). */
static void settle(struct oauth_fails *f, const fail_ent_t *snap, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fail_ent_t *e = find(f, snap[i].key);
        if (e && e->start == snap[i].start)
            e->pending = e->pending > snap[i].pending ? e->pending - snap[i].pending : 0;
    }
}

int oauth_fail_flush(const oauth_t *o, int64_t now, int all)
{
    struct oauth_fails *f = o->fails;
    flush_ctx_t c = {f, NULL, 0};
    size_t from = 0;
    int rc = OAUTH_OK;

    pthread_mutex_lock(&f->mu);
    if (!all && now < f->next_flush) {
        pthread_mutex_unlock(&f->mu);
        return OAUTH_OK;
    }
    f->next_flush = now + 1;
    pthread_mutex_unlock(&f->mu);
    if (!(c.snap = stor_rec_new(FLUSH_BATCH * sizeof(*c.snap)))) /* every second: the same block each time */
        return OAUTH_ERR_INTERNAL;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        c.n = collect(f, now, all, &from, c.snap);
        pthread_mutex_unlock(&f->mu);
        if (c.n == 0)
            break;
        if (stor_write(o->cfg.stor, flush_fn, &c) != STOR_OK) {
            rc = OAUTH_ERR_STORAGE; /* the counts stay for the next flush */
            break;
        }
        pthread_mutex_lock(&f->mu);
        settle(f, c.snap, c.n);
        pthread_mutex_unlock(&f->mu);
    }
    stor_rec_free(c.snap, FLUSH_BATCH * sizeof(*c.snap));
    return rc;
}
