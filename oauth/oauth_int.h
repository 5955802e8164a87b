/*
 * oauth_int.h - private to oauth/: the handle, shared helpers of the token and
 * SAD code, and the auth expression evaluator (exposed here for unit tests).
 */
#ifndef OAUTH_INT_H
#define OAUTH_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "oauth.h"

typedef struct oauth_rate oauth_rate_t;

struct oauth {
    oauth_config_t cfg;   /* defaults filled in; immutable after oauth_new() */
    int64_t skew;         /* test builds (CSC_TEST_HOOKS): seconds added to the clock of every decision */
    size_t sessions_cap;  /* browser sessions kept at most (in storage: oauth_websession.c) */
    size_t par_cap;       /* pushed authorization requests kept at most (in storage: oauth_session.c) */
    oauth_rate_t *rate;   /* failures per client address (oauth_rate.c) */
    uint8_t chal_key[32];              /* HMAC key of the pending one-time codes (oauth_challenge.c), set by csc-sam */
    int chal_key_set;
    size_t chal_cap;                   /* pending one-time codes kept at most (OAUTH_CHALLENGES_MAX) */
    uint8_t ticket_key[32];            /* MAC key of the sign-in pages' tickets (oauth_ticket.c): random at
                                        * oauth_new(), csc-sam's shared one once oauth_ticket_set_key() ran */
    struct oauth_fails *fails;         /* failed logins counted per address and name (oauth_fail.c) */
    uint8_t dummy[STOR_VERIFIER_MAX];  /* made at oauth_new() from a random secret nobody keeps: an unknown,
                                        * locked or suspended user's password is checked against it */
    uint32_t dummy_len;
    struct oauth_gate *gate;           /* cap on concurrent scrypt verifications (oauth_secret.c) */
    struct oauth_hints *hints;         /* the users of tokens seen lately, what a check reads ahead (oauth_hint.c) */
    oauth_totp_open_fn totp_open;      /* opens a sealed TOTP secret (csc-sam only; oauth_totp_rest.c) */
    void *totp_open_arg;
};

/** oauth_totp_rest.c: the user's TOTP secret, clear or opened (OAUTH_ERR_INVALID: none; OAUTH_ERR_DENIED: sealed
 *  and it does not open, no valid secret; OAUTH_ERR_INTERNAL: sealed and it cannot be opened now, or no opener in
 *  this process); a digest of the stored form, to see that it changed. */
int oauth_user_totp(const oauth_t *o, const stor_user_t *u, uint8_t out[STOR_TOTP_MAX], size_t *len);
void oauth_user_totp_fp(const stor_user_t *u, uint8_t fp[32]);

/** oauth_hint.c: the user of the token of hash seen last (a hint only: which user row to read ahead with it).
 *  oauth_hint_get: 1 and user set if known, else 0 and user "". */
int oauth_hints_new(struct oauth_hints **out);
void oauth_hints_free(struct oauth_hints *h);
int oauth_hint_get(struct oauth_hints *h, const uint8_t hash[32], char user[STOR_NAME_MAX + 1]);
void oauth_hint_put(struct oauth_hints *h, const uint8_t hash[32], const char *user);

/** The cap of oauth_secret_check(): max checks at once, as many waiting. @return OAUTH_OK, OAUTH_ERR_INTERNAL */
int oauth_gate_new(unsigned max, struct oauth_gate **out);
void oauth_gate_free(struct oauth_gate *g);
/** Take a slot: at once, or after waiting up to OAUTH_VERIFY_WAIT_MS if fewer than max already wait.
 *  @return OAUTH_OK (call oauth_gate_leave() after) or OAUTH_ERR_BUSY */
int oauth_gate_enter(struct oauth_gate *g);
void oauth_gate_leave(struct oauth_gate *g);
#ifdef CSC_TEST_HOOKS
/** Test hook: checks waiting for a slot now. */
unsigned oauth_gate_waiting(struct oauth_gate *g);
#endif

/* Bounds of the state kept for the pages and PAR (test hooks may lower them). */
#define OAUTH_SESSIONS_MAX 4096
#define OAUTH_PARS_MAX 4096
#define OAUTH_RATE_ADDRS_MAX 8192
/** Longest client address kept by the rate limiter (longer ones are truncated). */
#define OAUTH_ADDR_MAX 63
/** Shortest and longest PKCE code_verifier (RFC 7636 4.1). */
#define OAUTH_VERIFIER_MIN 43
#define OAUTH_VERIFIER_MAX 128
/** request_uri prefix of PAR (RFC 9126 2.2). */
#define OAUTH_PAR_URN "urn:ietf:params:oauth:request_uri:"
/** Longest client secret hashed by oauth_client_auth() (longer ones are hashed only up to here: they fail). */
#define OAUTH_CLIENT_SECRET_MAX 256

/** Characters of a token or SAD value: base64url of 32 bytes, no padding. */
#define OAUTH_TOKEN_LEN 43
/** Longest password or PIN hashed or verified (longer input is refused). */
#define OAUTH_SECRET_MAX 1024
/** Widest TOTP window accepted in the configuration. */
#define OAUTH_TOTP_WINDOW_MAX 10
/** Deepest parenthesis nesting in an auth expression. */
#define OAUTH_EXPR_DEPTH_MAX 8

/* Factor bits for oauth_expr_eval(). */
#define OAUTH_FACTOR_PIN 1u
#define OAUTH_FACTOR_OTP 2u
#define OAUTH_FACTOR_CHALLENGE 4u   /* the one-time code of credentials/getChallenge */
#define OAUTH_FACTOR_APPROVAL 8u    /* the user approved on the service's page (oauth_approval.c) */

/**
 * Evaluate a CSC auth.expression ("PIN AND OTP", "(PIN OR OTP)", ...).
 * Precedence, tightest first: AND, XOR, OR (as C's & ^ |); parentheses group.
 * An empty (or NULL) expression means the AND of every object in have, and is
 * not satisfiable when have is empty.
 * @param[in] expr the expression, at most STOR_EXPR_MAX bytes
 * @param[in] have OAUTH_FACTOR_* objects the credential has
 * @param[in] verified OAUTH_FACTOR_* factors that were supplied and verified
 * @return 1 satisfied; 0 not satisfied (also when it names an id other than
 *         PIN/OTP/CHALLENGE); OAUTH_ERR_INVAL malformed, too long or too deeply nested.
 *         Callers treat anything but 1 as a denial.
 */
int oauth_expr_eval(const char *expr, unsigned have, unsigned verified);

/* ---- one-time codes (oauth_challenge.c; the table is storage's challenges) ---- */
#ifdef CSC_TEST_HOOKS
/** Test hook: lower the number of pending codes kept (at most OAUTH_CHALLENGES_MAX). */
void oauth_chal_set_cap(oauth_t *o, size_t cap);
#endif
/**
 * Check code against user's pending code for cred and use the pending code up, whatever the outcome
 * (each code is tried once: read and deleted in one storage write, so across nodes too).
 * @param[in] epoch the user's current epoch (stor_user_t): a code issued under another one is void
 * @return OAUTH_OK, OAUTH_ERR_DENIED (wrong, expired, none pending, malformed, issued before a reset),
 *         OAUTH_ERR_STORAGE (nothing used up)
 */
int oauth_challenge_take(oauth_t *o, const char *user, const char *cred, const char *code, size_t len, int64_t now,
                         uint32_t epoch);
/** The table's key of (user, cred): SHA-256(user NUL cred). @return OAUTH_OK or OAUTH_ERR_INTERNAL */
int oauth_chal_key(const char *user, const char *cred, uint8_t key[32]);
/** HMAC of a code of OAUTH_CHALLENGE_DIGITS digits for key under o's challenge key.
 *  @return OAUTH_OK, OAUTH_ERR_INVAL (length), OAUTH_ERR_INTERNAL (no challenge key set, HMAC failed) */
int oauth_chal_mac(const oauth_t *o, const uint8_t key[32], const char *code, size_t len, uint8_t mac[32]);

/* ---- tickets of the sign-in pages (oauth_ticket.c) ---- */
/** A fresh random ticket key (until oauth_ticket_set_key() gives the shared one). @return OAUTH_OK or
 *  OAUTH_ERR_INTERNAL */
int oauth_ticket_init(oauth_t *o);

/* ---- approvals (oauth_approval.c, oauth_approval_list.c; the table is storage's user_approvals) ---- */
/** What a pending approval adds to the write transaction of oauth_authorize_pre (oauth_approval.c). */
typedef struct oauth_authz_hook {
    /** First in the write: *result OAUTH_OK to go on; anything else ends the write with that result and nothing
     *  decided or audited. @return 0, or a storage error (< 0). */
    int (*check)(stor_txn_t *t, void *arg, int *result);
    /** Last in the write, with the outcome (OAUTH_OK or the refusal) applied and audited. @return 0 or < 0 */
    int (*done)(stor_txn_t *t, void *arg, int outcome);
    void *arg;
    /** The decision on the page: verify the factors (failures counted and audited as credentials/authorize's),
     *  but store no SAD and write no STOR_EV_AUTHORIZE record for a success (sad stays ""). */
    int no_sad;
} oauth_authz_hook_t;
/** oauth_authorize() with factors already verified by the caller (pre: OAUTH_FACTOR_APPROVAL, and
 *  OAUTH_FACTOR_PIN when the approval checked the PIN), for a request made while the user's epoch was epoch:
 *  after an operator's reset of the user (another epoch) it is OAUTH_ERR_DISABLED, decided in the write that
 *  would issue the SAD. hook (NULL: none) adds an approval's part to that write. */
int oauth_authorize_pre(oauth_t *o, const oauth_sad_request_t *req, const oauth_factors_t *f, unsigned pre,
                        uint32_t epoch, const oauth_authz_hook_t *hook, char sad[OAUTH_TOKEN_BUFLEN],
                        unsigned *expires_in);
/** The view of a stored approval the page shows (digests point into a). */
void oauth_approval_view_of(const stor_user_approval_t *a, oauth_approval_view_t *v);
/* oauth_authorize.c, shared with oauth_sad.c: 1 if n digests of digest_len bytes (with a hash OID when need_alg
 * and n > 0) are within the storage bounds; their concatenation into dst (n * len bytes). */
int oauth_digest_args_ok(const char *hash_alg, const uint8_t *const *digests, size_t digest_len, size_t n,
                         int need_alg);
void oauth_digests_flat(uint8_t *dst, const uint8_t *const *digests, size_t len, size_t n);

/** Check pw against the user's verifier when usable, else against the handle's dummy verifier (same cost):
 *  an unknown, locked or suspended user costs one scrypt like any other.
 *  @return OAUTH_OK only for a usable user and the right password, OAUTH_ERR_BUSY (no scrypt slot: nothing
 *          checked), else OAUTH_ERR_DENIED */
int oauth_check_password(const oauth_t *o, const stor_user_t *u, int usable, const char *pw, size_t pw_len);

/** New random token/SAD value (NUL-terminated) and the SHA-256 it is stored under. */
int oauth_token_new(char value[OAUTH_TOKEN_BUFLEN], uint8_t hash[32]);
/** SHA-256 of a presented value. @return OAUTH_ERR_INVALID unless exactly 43 base64url chars. */
int oauth_token_hash(const char *value, size_t len, uint8_t hash[32]);
/** The anti-CSRF token of the browser session sid: HMAC-SHA-256(key sid, a fixed label), base64url. Derived, never
 *  stored: the session record holds neither it nor sid (only SHA-256(sid)), so a copy of the database cannot forge a
 *  form. @return OAUTH_OK, OAUTH_ERR_INVALID (not a session id), OAUTH_ERR_INTERNAL */
int oauth_session_csrf(const char *sid, char csrf[OAUTH_TOKEN_BUFLEN]);
/** Audit reference of a stored hash: the first 16 bytes of SHA-256(hash). */
int oauth_token_ref(const uint8_t hash[32], uint8_t ref[16]);
/** Inside a write: append rec with detail and, if hash is not NULL, its token's reference (oauth_token_ref). */
int oauth_audit_append_ref(stor_txn_t *t, stor_audit_t *rec, const uint8_t hash[32], const char *detail);

int64_t oauth_now(void);
/** The clock of every decision: oauth_now() plus the test skew. */
int64_t oauth_clock(const oauth_t *o);
/** SHA-256 of len bytes. @return OAUTH_OK or OAUTH_ERR_INTERNAL */
int oauth_sha256(const void *in, size_t len, uint8_t out[32]);
/** 1 if s is a storage name: 1..STOR_NAME_MAX printable ASCII characters without spaces. */
int oauth_id_ok(const char *s);
/** Audit client field of the authorization server: "oauth:<client_id>" or "oauth:<client_id>@<addr>"
 *  (addr NULL: without), truncated to fit. */
void oauth_audit_client(char out[64], const char *client_id, const char *addr);
/** 1 if s is a non-empty name of at most STOR_NAME_MAX bytes. */
int oauth_name_ok(const char *s);
/** Bounded copy that truncates; NULL src gives "". */
void oauth_copy(char *dst, size_t dstsz, const char *src);
/** Start an audit record (zeroed) with the given event, result and names. */
void oauth_audit_init(stor_audit_t *rec, uint32_t event, uint32_t result, const char *user, const char *cred,
                      const char *client);
/** Append a STOR_EV_LOCKOUT record for user (and cred if not NULL): the lock's length, end and number
 *  (oauth_fail.c: csc-sam's only, like every write of a failure). */
int oauth_audit_lockout(stor_txn_t *t, const char *user, const char *cred, const char *client, int64_t until,
                        int64_t seconds, uint32_t locks);
/**
 * Count one failure on a user's or credential's counters; at max_failures the counter restarts and the next
 * lock begins: lock n (n = *locks after the call) lasts lock_seconds * 2^(n-1), at most lock_max_seconds.
 * @return the new lock's length in seconds, or 0 when no lock began
 */
int64_t oauth_lock_failure(const oauth_config_t *cfg, uint32_t *failed, int64_t *locked_until, uint32_t *locks,
                           int64_t now);
/** A success: counters, lock and escalation start over. @return 1 if anything changed (the record needs a put) */
int oauth_lock_success(uint32_t *failed, int64_t *locked_until, uint32_t *locks);

/* ---- failed logins in the audit log (oauth_fail.c) ---------------------------
 * The first failure of an (event, user, client, reason) within fail_window is appended as usual; later ones
 * in the window are only counted in memory. When the window has ended, one record with the count is appended
 * ("... [repeated count=N within W s]"): by oauth_fail_flush(), which the login functions call before their
 * own write, and oauth_free() at shutdown. When fail_entries pairs are being counted, further failures are
 * appended one by one (memory stays bounded; nothing is dropped).
 * The table itself (oauth_fail_tab.c) is every oauth_t's; what writes records (oauth_fail.c) is linked only by
 * the process that counts failures (csc-sam): oauth_free() reaches the last flush through end_flush, which the
 * first oauth_fail_append() sets. */
typedef struct oauth_fail_ent {
    uint8_t key[32];              /* SHA-256 of event, user, client and reason */
    int used;
    uint32_t event;
    int64_t start;                /* window: [start, start + fail_window) */
    uint64_t pending;             /* failures counted and not written yet */
    char user[STOR_NAME_MAX + 1];
    char cred[STOR_NAME_MAX + 1];
    char client[64];
    char reason[160];
} oauth_fail_ent_t;

struct oauth_fails {
    pthread_mutex_t mu;
    size_t cap;
    int64_t window;
    int64_t next_flush;           /* no flush scan before this second */
    oauth_fail_ent_t *ents;
    int (*end_flush)(const oauth_t *o, int64_t now, int all); /* oauth_fail_flush once anything was counted */
};
int oauth_fails_new(const oauth_config_t *cfg, struct oauth_fails **out);
/** The last flush (if anything was ever counted: storage is still open here), then free. */
void oauth_fails_end(const oauth_t *o, struct oauth_fails *f);
/** What oauth_fail_append() did with a failure, kept by the caller across the runs of one write (zeroed before
 *  it): a batch that runs again (STOR_ERR_RETRY) must neither count a failure twice nor lose the record of a
 *  window it opened. */
typedef struct oauth_fail_note {
    enum { OAUTH_FAIL_NONE, OAUTH_FAIL_ALONE, OAUTH_FAIL_OPENED, OAUTH_FAIL_COUNTED } how;
    int64_t start;   /* the window's start (OPENED, COUNTED) */
    uint8_t key[32]; /* and its key */
} oauth_fail_note_t;
/**
 * Inside a write callback: append rec (a denied login) unless it repeats one of the current window, which is only
 * counted. Safe to run again with the same note. @return 0 or the append's error
 */
int oauth_fail_append(const oauth_t *o, stor_txn_t *t, stor_audit_t *rec, int64_t now, oauth_fail_note_t *note);
/** After a write that failed: rec's failure, appended in it, was not written: count it with the next summary. */
void oauth_fail_unwritten(const oauth_t *o, const stor_audit_t *rec, int64_t now, const oauth_fail_note_t *note);
/** Append the counts of ended windows (all of them if all), in one write. @return OAUTH_OK or OAUTH_ERR_STORAGE
 *  (then the counts stay for the next flush) */
int oauth_fail_flush(const oauth_t *o, int64_t now, int all);

/* ---- state of the authorization server: entries (oauth_mem.c), rate limits (oauth_rate.c) ---- */

/** A browser session (or a request being pushed). The request is packed (unused digest rows left out). */
typedef struct oauth_ent {
    uint8_t key[32];                       /* SHA-256 of the session id / the request_uri's random part */
    int64_t created, touched, expires;     /* expires: the earlier of the idle and the absolute limit */
    char client_id[STOR_NAME_MAX + 1];
    char user[STOR_NAME_MAX + 1];          /* sessions: the user signed in (set at start) */
    uint32_t epoch;                        /* sessions: the user's epoch at login (an operator's reset ends it) */
    size_t req_len;
    uint8_t req[];                         /* oauth_req_encode's bytes */
} oauth_ent_t;

/** 1 if req is well-formed enough to keep: client_id a name, strings terminated, counts in range. */
int oauth_req_ok(const oauth_authz_request_t *req);
/** A new entry (not in any table) holding req encoded (oauth_req_encode). @return NULL if out of memory or req is
 *  not oauth_req_ok */
oauth_ent_t *oauth_ent_new(const oauth_authz_request_t *req);
/** Wipe and free an entry. NULL is allowed. */
void oauth_ent_free(oauth_ent_t *e);
/** Decode the request of e into out (whole struct written).
 *  @return OAUTH_OK, OAUTH_ERR_INVALID (bytes that are not a request: a record from storage damaged or of another
 *  version; the session is as good as gone) */
int oauth_ent_req(const oauth_ent_t *e, oauth_authz_request_t *out);
/* The browser sessions, in storage (oauth_websession.c): insert, put back, take and update entries of the
 * web_sessions table, each one storage transaction. None takes ownership of an entry. */
/** @return OAUTH_OK, OAUTH_ERR_FULL (sessions_cap even after purging the expired ones), OAUTH_ERR_STORAGE */
int oauth_ws_insert(oauth_t *o, const oauth_ent_t *e, int64_t now);
/** Put an entry that was taken back. @return OAUTH_OK, OAUTH_ERR_STORAGE */
int oauth_ws_put_back(oauth_t *o, const oauth_ent_t *e);
/** Remove the entry under key and hand it out in *out (the caller frees it).
 *  @return OAUTH_OK, OAUTH_ERR_INVALID (none), OAUTH_ERR_EXPIRED (removed), OAUTH_ERR_STORAGE (nothing removed) */
int oauth_ws_take(oauth_t *o, const uint8_t key[32], int64_t now, oauth_ent_t **out);
/** Run fn on a copy of the entry under key and write it back when fn returns OAUTH_OK.
 *  @return OAUTH_ERR_INVALID (none), OAUTH_ERR_EXPIRED (then removed), OAUTH_ERR_STORAGE, else fn's value */
int oauth_ws_with(oauth_t *o, const uint8_t key[32], int64_t now, int (*fn)(oauth_ent_t *e, void *arg), void *arg);

int oauth_rate_new(oauth_rate_t **out);
void oauth_rate_free(oauth_rate_t *r);
#ifdef CSC_TEST_HOOKS
/** Test hook: lower the number of addresses kept (at most OAUTH_RATE_ADDRS_MAX). */
void oauth_rate_set_cap(oauth_rate_t *r, size_t cap);
#endif

/* ---- SAD digest sets (oauth_sad.c), shared with extendTransaction (oauth_extend.c) ---- */

/**
 * Whether every one of the n digests (hash_alg, digest_len bytes each) is bound to s (s->n_digests > 0).
 * @param[out] idx if not NULL, n entries: the index in s->digests of each digest (its first occurrence)
 * @return 1 all bound (same algorithm and length), else 0. O(n * s->n_digests): keep it out of the write transaction.
 */
int oauth_sad_match(const stor_sad_t *s, const char *hash_alg, const uint8_t *const *digests, size_t digest_len,
                    size_t n, uint32_t *idx);
/** SHA-256 over what oauth_sad_match() looks at, to tell whether an answer computed earlier still holds. */
int oauth_sad_fp(const stor_sad_t *s, uint8_t fp[32]);

/* ---- shared by the grant code (oauth_grant.c) and oauth_token.c ------------ */

/** Delete the SAD of a credential-scope token (it is stored under the token's hash); a missing one is fine. */
int oauth_txn_drop_token_sad(stor_txn_t *t, const stor_token_t *tok);
/** Store a new token of the given kind and scope (client, cred: NULL or "" for none). @return a STOR code */
int oauth_txn_token_new(stor_txn_t *t, const uint8_t hash[32], uint32_t kind, uint32_t scope, const char *user,
                        const char *client, const char *cred, const uint8_t grant[16], int64_t now, int64_t expires_at);
/** The status of a user (*status 0 on an error), without keeping its verifier and TOTP secret around.
 *  @return STOR_OK, STOR_ERR_NOTFOUND or another STOR code */
int oauth_user_status(stor_txn_t *t, const char *name, uint32_t *status);

/* ---- test hooks: only in the csc_oauth_t library of the unit tests (-DCSC_TEST_HOOKS) ---- */

#ifdef CSC_TEST_HOOKS
/** Shift the clock of every decision (tokens, SADs, sessions, PAR, rate limits, codes). */
void oauth_int_set_skew(oauth_t *o, int64_t seconds);
/** Lower the caps on browser sessions, pending PARs and rate-limited addresses (0 = leave as is). */
void oauth_int_set_caps(oauth_t *o, size_t sessions, size_t pars, size_t addrs);
/** How many times this process ran scrypt (verifiers made and checked). */
unsigned long oauth_int_derivations(void);
#endif

/** oauth_session.c: a session used now: idle expiry moved, never past its maximum life. */
void oauth_session_touch(const oauth_t *o, oauth_ent_t *e, int64_t now);

#endif
