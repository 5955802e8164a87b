/* srv_dbfile.h - the header of a csc-admin db backup file (its layout: srv_admin_db.c), as text and back: no I/O,
 * so that the parser of what db restore reads links on its own (its fuzz target, tests/fuzz/fuzz_db_backup.c). */
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

/* Lower-case hex of n bytes into out (2 * n + 1 bytes, NUL-terminated). */
void srv_dbfile_hex(const uint8_t *p, size_t n, char *out);
/* The header's text into out (sz bytes, NUL-terminated). @return its length, or -1 if it does not fit. */
int srv_dbfile_header_text(const srv_dbfile_header_t *h, char *out, size_t sz);
/* Parse the header text (NUL-terminated, modified) into *h: every line in order, each value in its one spelling
 * (decimal without leading zeros, lower-case hex of the exact length), so that what parses is what
 * srv_dbfile_header_text writes. @return 0, or -1 with *why the key at which it failed (or SRV_DBFILE_END). */
int srv_dbfile_header_parse(char *text, srv_dbfile_header_t *h, const char **why);

#endif
