/* srv_dbfile.h - the header and the trailer of a csc-admin db backup file (its layout: srv_admin_db.c), as bytes and
 * back: no I/O, so that the parsers of what db restore reads link on their own (their fuzz target,
 * tests/fuzz/fuzz_db_backup.c). */
#ifndef SRV_DBFILE_H
#define SRV_DBFILE_H

#include <stddef.h>
#include <stdint.h>
#include "stor.h"

/* What the header says (and, for a backup, what the copy holds). */
typedef struct srv_dbfile_header {
    char backend[16];
    int64_t created_ms;
    uint64_t audit_seq;
    uint8_t audit_hash[32];
    uint64_t head_seq;                 /* 0: no signed head */
    uint8_t head_hash[32];
    int64_t head_time_ms;              /* 0 when head_seq is */
    uint8_t head_sig[STOR_HEAD_SIG_MAX];
    uint32_t head_sig_len;
} srv_dbfile_header_t;

/* srv_dbfile_header_parse's why when the fields are right but something follows them (English; the others are the
 * keys of the header, as written). */
#define SRV_DBFILE_END "the end of the header"

#define SRV_DBFILE_SIG_TEXT_MAX 255 /* the signed text of the trailer (csc-sam's SAM_SIGNED_TEXT_MAX) */
#define SRV_DBFILE_SIG_MAX 1024     /* its DER signature (an ECDSA P-256 one is at most 72 bytes) */
#define SRV_DBFILE_TRAILER_MAX (2 + SRV_DBFILE_SIG_TEXT_MAX + 2 + SRV_DBFILE_SIG_MAX)

/* The trailer of a backup file, after the SHA-256 that ends its data: csc-sam's signed text naming that SHA-256 and
 * the audit key's signature of the text. */
typedef struct srv_dbfile_sig {
    char text[SRV_DBFILE_SIG_TEXT_MAX + 1]; /* 1..SRV_DBFILE_SIG_TEXT_MAX bytes, no NUL among them, NUL-terminated */
    uint8_t sig[SRV_DBFILE_SIG_MAX];
    size_t sig_len;                         /* 1..SRV_DBFILE_SIG_MAX */
} srv_dbfile_sig_t;

/* Lower-case hex of n bytes into out (2 * n + 1 bytes, NUL-terminated). */
void srv_dbfile_hex(const uint8_t *p, size_t n, char *out);
/* The header's text into out (sz bytes, NUL-terminated). @return its length, or -1 if it does not fit. */
int srv_dbfile_header_text(const srv_dbfile_header_t *h, char *out, size_t sz);
/* Parse the header text (NUL-terminated, modified) into *h: every line in order, each value in its one spelling
 * (decimal without leading zeros, lower-case hex of the exact length), so that what parses is what
 * srv_dbfile_header_text writes. @return 0, or -1 with *why the key at which it failed (or SRV_DBFILE_END). */
int srv_dbfile_header_parse(char *text, srv_dbfile_header_t *h, const char **why);
/* The trailer's bytes into out (sz bytes): u16 T | T bytes of text | u16 S | S bytes of signature (big-endian).
 * @return its length, or -1 if s is none the parser takes (an empty or overlong text or signature) or out is short. */
int srv_dbfile_trailer_write(const srv_dbfile_sig_t *s, uint8_t *out, size_t sz);
/* Parse a trailer that is exactly len bytes (the rest of the file after the SHA-256) into *s: each length within its
 * limit and not 0, nothing after the signature, no NUL in the text (it is a C string from then on: a NUL would leave
 * what follows it unsigned and unread), so that what parses is what srv_dbfile_trailer_write writes. @return 0, or
 * -1. */
int srv_dbfile_trailer_parse(const uint8_t *p, size_t len, srv_dbfile_sig_t *s);

#endif
