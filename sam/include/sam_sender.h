/*
 * sam_sender.h - the exec: OTP sender's helper process of csc-sam (library csc_sam_server; linked by csc-sam only).
 *
 * csc-sam's seccomp filter refuses fork and execve, so the program of `otp_sender = exec:/path` is run by a small
 * process forked before csc-sam reads its PIN, opens its token and database, locks its memory, starts threads or
 * loads its filter (server/srv_sam.c): it holds no secret, no descriptor but its end of a SOCK_SEQPACKET socketpair,
 * runs as sam_user when set, under a filter of its own (SRV_PROFILE_SENDER: processes and files, no network), and
 * does one thing: run the program for a request, one at a time, and answer how it went. It exits when csc-sam's end
 * of the socketpair closes (killing a program still running). docs/architecture.md "Process hardening".
 *
 * THE MESSAGES (one datagram each, big-endian integers, nothing else in the datagram)
 *   request  "SND1" seq:u32 timeout_ms:u32 ulen:u8 user[ulen] clen:u8 cred[clen] dlen:u8 code[dlen]
 *            user and cred 1..SAM_SENDER_NAME_MAX bytes without control characters (< 0x20, 0x7f), code exactly
 *            SAM_SENDER_CODE_LEN ASCII digits, timeout_ms 1..SAM_SENDER_TIMEOUT_MAX_MS, seq not 0.
 *   enroll   "SND2" seq:u32 timeout_ms:u32 ulen:u8 user[ulen] dlen:u8 code[dlen] klen:u8 contact[klen]
 *            elen:u8 expires[elen]: an enrollment code (SAM_SENDER_ENROLL_LEN characters XXXX-XXXX-XXXX-XXXX of
 *            upper-case letters, digits and dashes), the user's contact (1..SAM_SENDER_CONTACT_MAX bytes) and the
 *            code's expiry (ISO-8601, 1..SAM_SENDER_EXPIRES_MAX bytes), same rules.
 *   reply    "SNDR" seq:u32 result:u32 detail:u32 (16 bytes); the helper's first datagram is a reply with seq 0 and
 *            SAM_SENDER_OK: it is ready (switched user, filter loaded).
 * The program gets "user=U\ncredential=C\nchannel=CHALLENGE\ncode=NNNNNN\n" (an enrollment code:
 * "user=U\ncredential=-\nchannel=ENROLL\ncode=XXXX-XXXX-XXXX-XXXX\ncontact=K\nexpires=E\n") on its stdin (no shell, empty argv,
 * environment PATH and LC_ALL=C only, stdout/stderr /dev/null, no other descriptor, a process group of its own);
 * when it runs longer than timeout_ms its process group is killed (SIGKILL).
 */
#ifndef SAM_SENDER_H
#define SAM_SENDER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAM_SENDER_NAME_MAX 64           /**< user names, credential ids (STOR_NAME_MAX) */
#define SAM_SENDER_CODE_LEN 6            /**< the one-time code's digits (OAUTH_CHALLENGE_DIGITS) */
#define SAM_SENDER_TIMEOUT_MAX_MS 120000 /**< otp_sender_timeout's upper bound */
#define SAM_SENDER_ENROLL_LEN 19         /**< an enrollment code as sent: XXXX-XXXX-XXXX-XXXX */
#define SAM_SENDER_CONTACT_MAX 128       /**< a user's contact (STOR_CONTACT_MAX) */
#define SAM_SENDER_EXPIRES_MAX 31        /**< the code's expiry, ISO-8601 */
#define SAM_SENDER_REQ_MAX (12 + 4 + SAM_SENDER_NAME_MAX + SAM_SENDER_ENROLL_LEN + SAM_SENDER_CONTACT_MAX + \
                            SAM_SENDER_EXPIRES_MAX) /**< a request's bytes at most (an enrollment's is the longest) */
#define SAM_SENDER_REPLY_LEN 16

/** A reply's result. */
typedef enum {
    SAM_SENDER_OK = 0,          /**< the program exited with status 0 (or: the helper is ready) */
    SAM_SENDER_NOT_STARTED = 1, /**< no process or execve failed (detail: errno) */
    SAM_SENDER_EXIT = 2,        /**< exited with status detail (not 0) */
    SAM_SENDER_SIGNAL = 3,      /**< killed by signal detail */
    SAM_SENDER_TIMEOUT = 4,     /**< ran longer than timeout_ms: killed */
    SAM_SENDER_BAD_REQUEST = 5, /**< the request did not decode: nothing was run */
} sam_sender_result_t;

typedef struct sam_sender_req {
    uint32_t seq;
    uint32_t timeout_ms;
    char user[SAM_SENDER_NAME_MAX + 1];
    char cred[SAM_SENDER_NAME_MAX + 1];              /**< CHALLENGE only */
    char code[SAM_SENDER_ENROLL_LEN + 1];
    uint32_t enroll;                                 /**< 1: "SND2", an enrollment code */
    char contact[SAM_SENDER_CONTACT_MAX + 1];        /**< enrollment only */
    char expires[SAM_SENDER_EXPIRES_MAX + 1];        /**< enrollment only */
} sam_sender_req_t;

/** Encode r. @return the length (<= SAM_SENDER_REQ_MAX), or 0 when r breaks a bound (nothing to send). */
size_t sam_sender_req_encode(const sam_sender_req_t *r, uint8_t out[SAM_SENDER_REQ_MAX]);
/** Decode exactly len bytes (see THE MESSAGES). @return 0, or -1 (out zeroed) when anything is off. */
int sam_sender_req_decode(const uint8_t *p, size_t len, sam_sender_req_t *out);
void sam_sender_reply_encode(uint32_t seq, uint32_t result, uint32_t detail, uint8_t out[SAM_SENDER_REPLY_LEN]);
/** @return 0, or -1 (wrong length, magic or result) */
int sam_sender_reply_decode(const uint8_t *p, size_t len, uint32_t *seq, uint32_t *result, uint32_t *detail);

/**
 * The helper's loop, in the forked process once it switched user and loaded its filter: says it is ready, then
 * answers each request on fd by running program (an absolute path). Wipes each request after use.
 * @return 0 when csc-sam's end closed, -1 when fd failed (the process should exit either way)
 */
int sam_sender_serve(int fd, const char *program);

/* ---- csc-sam's side ------------------------------------------------------------------------------------------ */
typedef struct sam_sender sam_sender_t;

/**
 * Take fd (csc-sam's end) once the helper said it is ready, within wait_ms. on_lost(arg) is called once, from the
 * delivering thread, when the helper is found gone or stuck (csc-sam then stops so that its supervisor starts it,
 * and a new helper, again: csc-sam cannot fork under its filter). @return 0, or -1 (fd closed, message on stderr)
 */
int sam_sender_new(int fd, unsigned wait_ms, void (*on_lost)(void *), void *arg, sam_sender_t **out);

/**
 * Deliver code to user for cred through the helper, one delivery at a time; the calling thread waits at most
 * timeout_s seconds for a delivery in progress and its own together (a program still running at the end is killed),
 * plus a short grace for the helper's answer.
 * @param why on failure, the audit detail: "sender could not be started", "sender failed (exit status N)",
 *        "sender failed (signal N)", "sender timed out", "sender busy", "sender helper lost"
 * @return 0 delivered, -1 not
 */
int sam_sender_deliver(sam_sender_t *s, unsigned timeout_s, const char *user, const char *cred, const char *code,
                       char *why, size_t whysz);

/** The same for an enrollment code (channel ENROLL: the code, the user's contact, its expiry in ISO-8601). */
int sam_sender_deliver_enroll(sam_sender_t *s, unsigned timeout_s, const char *user, const char *contact,
                              const char *code, const char *expires, char *why, size_t whysz);

/** Close csc-sam's end (the helper exits) and free. NULL is fine. */
void sam_sender_free(sam_sender_t *s);

#ifdef __cplusplus
}
#endif
#endif
