/*
 * stor_enroll.c - the enrollments and enroll_tickets tables (stor.h): a user's one-time enrollment code (only its
 * hash), and the ticket of /enroll's second step; and the "PIN not set yet" marks of a credential's owner and
 * delegates.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "stor_int.h"

#define KEY(p, n) STOR_VAL(p, n)

int stor_txn_enroll_get(stor_txn_t *t, const char *user, stor_enroll_t *out)
{
    return stor_get_by_name(t, STOR_DB_ENROLL, STOR_REC_ENROLL, user, out, sizeof(*out));
}

int stor_txn_enroll_put(stor_txn_t *t, const stor_enroll_t *e)
{
    if (e == NULL || (e->kind != STOR_ENROLL_NEW && e->kind != STOR_ENROLL_RECOVER))
        return STOR_ERR_INVAL;
    return stor_put_by_name(t, STOR_DB_ENROLL, STOR_REC_ENROLL, e->user, e, 0);
}

int stor_txn_enroll_del(stor_txn_t *t, const char *user)
{
    return stor_del_by_name(t, STOR_DB_ENROLL, user);
}

int stor_txn_enroll_ticket_get(stor_txn_t *t, const uint8_t hash[32], stor_enroll_ticket_t *out)
{
    return stor_get_by_hash(t, STOR_DB_ENROLL_TICKETS, STOR_REC_ENROLL_TICKET, hash, out, sizeof(*out));
}

int stor_txn_enroll_ticket_put(stor_txn_t *t, const stor_enroll_ticket_t *k)
{
    stor_val_t key;
    int rc;

    if (k == NULL || (k->totp_secret_len == 0) == (k->totp_sealed_len == 0) || k->totp_secret_len > STOR_TOTP_MAX ||
        k->totp_sealed_len > STOR_TOTP_SEALED_MAX)
        return STOR_ERR_INVAL; /* one secret, clear (an older csc-sam's) or sealed */
    if ((rc = stor_txn_check(t, 1)) != 0 || (rc = stor_name_check(k->user)) != 0)
        return rc;
    key = KEY(k->hash, 32);
    return stor_put_rec(t, STOR_DB_ENROLL_TICKETS, &key, STOR_REC_ENROLL_TICKET, k, 0);
}

int stor_txn_enroll_ticket_del(stor_txn_t *t, const uint8_t hash[32])
{
    return stor_del_by_hash(t, STOR_DB_ENROLL_TICKETS, hash);
}

int stor_cred_pin_unset(const stor_cred_t *c, const char *user)
{
    if (c == NULL || user == NULL || strstr(c->auth_expr, "PIN") == NULL)
        return 0;
    if (strcmp(c->owner, user) == 0)
        return c->pin_unset != 0;
    int i = stor_cred_delegate(c, user);
    return i >= 0 && (c->delegate_pin_unset >> i & 1u) != 0;
}

int stor_cred_pin_mark(stor_cred_t *c, const char *user, int unset)
{
    if (c == NULL || user == NULL)
        return -1;
    if (strcmp(c->owner, user) == 0) {
        c->pin_unset = unset ? 1 : 0;
        return 0;
    }
    int i = stor_cred_delegate(c, user);
    if (i < 0)
        return -1;
    if (unset)
        c->delegate_pin_unset |= 1u << i;
    else
        c->delegate_pin_unset &= ~(1u << i);
    return 0;
}
