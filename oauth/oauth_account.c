/*
 * oauth_account.c - what csc-sam's changes of a user's factors on /account (sam/sam_op_account.c) share with the
 * logins and credentials/authorize: a wrong old factor counts on the same counters with the same lock (and its
 * STOR_EV_LOCKOUT record), a right one starts them over; the clock of every decision. A file of its own so that
 * csc-server does not link it (check_symbols SAM_ONLY).
 */
#include <string.h>

#include "oauth_int.h"

int64_t oauth_decision_time(const oauth_t *o)
{
    return oauth_clock(o);
}

int oauth_factor_failure(const oauth_t *o, stor_txn_t *t, stor_user_t *u, stor_cred_t *c, const char *user,
                         const char *client, int64_t now)
{
    int64_t secs;
    int rc;

    if (o == NULL || (u == NULL) == (c == NULL))
        return STOR_ERR_INVAL;
    if (c != NULL) {
        secs = oauth_lock_failure(&o->cfg, &c->failed_auths, &c->locked_until, &c->locks, now);
        if (secs && (rc = oauth_audit_lockout(t, user, c->id, client, c->locked_until, secs, c->locks)) < 0)
            return rc;
        return 0;
    }
    secs = oauth_lock_failure(&o->cfg, &u->failed_logins, &u->locked_until, &u->locks, now);
    if (secs && (rc = oauth_audit_lockout(t, u->name, NULL, client, u->locked_until, secs, u->locks)) < 0)
        return rc;
    return 0;
}

void oauth_factor_success(stor_user_t *u, stor_cred_t *c)
{
    if (c != NULL)
        (void)oauth_lock_success(&c->failed_auths, &c->locked_until, &c->locks);
    if (u != NULL)
        (void)oauth_lock_success(&u->failed_logins, &u->locked_until, &u->locks);
}
