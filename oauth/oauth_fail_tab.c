/*
 * oauth_fail_tab.c - the memory of oauth_fail.c's table of failed logins: made with every oauth_t, its last counts
 * written at oauth_free() by the flush that oauth_fail.c hands over when it first counts (so a process that counts
 * no failure, csc-server, links none of the code that writes their records).
 */
#include <pthread.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "oauth_int.h"

int oauth_fails_new(const oauth_config_t *cfg, struct oauth_fails **out)
{
    struct oauth_fails *f = calloc(1, sizeof(*f));

    *out = NULL;
    if (!f)
        return OAUTH_ERR_INTERNAL;
    f->cap = cfg->fail_entries;
    f->window = cfg->fail_window;
    if (!(f->ents = calloc(f->cap, sizeof(*f->ents))) || pthread_mutex_init(&f->mu, NULL) != 0) {
        free(f->ents);
        free(f);
        return OAUTH_ERR_INTERNAL;
    }
    *out = f;
    return OAUTH_OK;
}

void oauth_fails_end(const oauth_t *o, struct oauth_fails *f)
{
    int (*flush)(const oauth_t *, int64_t, int);

    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    flush = f->end_flush;
    pthread_mutex_unlock(&f->mu);
    if (flush)
        (void)flush(o, oauth_clock(o), 1);
    pthread_mutex_destroy(&f->mu);
    OPENSSL_clear_free(f->ents, f->cap * sizeof(*f->ents));
    free(f);
}
