/*
 * stor_fault.h - a storage backend for the unit tests that fails a chosen call (prefix sf_; library csc_stor_fault).
 *
 * sf_install() puts a table of functions (stor_backend.h) in front of an open environment's own backend: every call
 * goes through to it unchanged, except the one a test has armed, which returns the error the test chose without
 * reaching the backend - the Nth get, put, delete, cursor step or commit from now, on one table or any, in a read
 * or a write transaction or either. The record layer above (stor_env.c, stor_txn.c, stor_audit.c) and everything
 * that uses it (oauth/, csc-sam) then meet the failure exactly where a disk error, a full map or a lost database
 * connection would show it. Only in tests/: the product has no way to fail on purpose.
 *
 * The transaction and cursor handles the record layer holds are this backend's (each wraps the real one and
 * remembers whether it writes and, for a cursor, its table). One rule is armed at a time; arming and the calls
 * are safe from any thread (the in-process csc-sam runs its own).
 */
#ifndef STOR_FAULT_H
#define STOR_FAULT_H

#include "stor_int.h"

/** The calls a rule can fail. */
typedef enum {
    SF_BEGIN,      /**< txn_begin (a top-level or nested txn) */
    SF_COMMIT,     /**< txn_commit (a top-level or nested txn) */
    SF_GET,
    SF_PUT,
    SF_DEL,
    SF_COUNT,
    SF_CURSOR_GET,
    SF_CURSOR_DEL,
} sf_op_t;

/** The transactions a rule applies to. */
typedef enum {
    SF_ANY_TXN,
    SF_READ_TXN,
    SF_WRITE_TXN,
} sf_txn_t;

#define SF_ANY_TABLE (-1)

/** Wrap env's backend (one environment per process). It waits until no caller is inside stor_read or stor_write, so
 *  that no transaction begun on the backend below ends on this one. */
void sf_install(stor_env_t *env);
/**
 * From now on, fail the nth matching call (1: the next) of op on table db (STOR_DB_*, or SF_ANY_TABLE; begin has no
 * table; a commit matches db when its txn, or a child it committed, put to or deleted from db) in transactions of kind txn with err (a STOR_ERR_*), and with sticky != 0 every matching
 * call after it too. Replaces the rule armed before; counts start again.
 */
void sf_arm(sf_op_t op, int db, sf_txn_t txn, unsigned nth, int err, int sticky);
/** With on != 0, the environment's use is reported as its capacity (a map that looks full to stor_room_ample: the
 *  record layer takes its nested-txn paths, e.g. a recent-activity record's); 0: the backend's own figure again. */
void sf_room_short(int on);
/** With on != 0: count from now (again from zero) the gets in txns of kind txn, per table, and those of them whose
 *  key was read ahead (prefetch) before in the same top-level txn; 0: stop counting. The backend's prefetch is always
 *  present on this one (doing nothing where the backend below has none), so that it can be seen on LMDB. */
void sf_trace_gets(int on, sf_txn_t txn);
/** What sf_trace_gets counted on table db (STOR_DB_*). */
void sf_traced(int db, unsigned *gets, unsigned *ahead);
/** Fail nothing more. */
void sf_disarm(void);
/** How many calls the rule armed last has failed. */
unsigned sf_fired(void);

#endif
