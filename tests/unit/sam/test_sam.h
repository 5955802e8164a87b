/* test_sam.h - the unit tests of sam/ (one program, test_sam; ctest unit_sam). */
#ifndef TEST_SAM_H
#define TEST_SAM_H
#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "sam_wire.h"

TCase *sam_codec_tcase(void); /* test_sam_codec.c: tables, decoder, builder */
TCase *sam_io_tcase(void);    /* test_sam_io.c: records over a SOCK_SEQPACKET socketpair, deadlines, SO_PEERCRED */
TCase *sam_server_tcase(void);/* test_sam_server.c: csc-sam's socket and the front end's pool of connections */
TCase *sam_sender_tcase(void);/* test_sam_sender.c: the exec: sender's helper, its messages and its lifetime */

/* Hand-built messages and records (test_sam_codec.c): what the builder would refuse to make. */
typedef struct raw {
    uint8_t b[16384];
    size_t n;
} raw_t;
void raw_hdr(raw_t *r, uint16_t magic, uint8_t version, uint8_t op, uint16_t flags, uint16_t reserved, uint32_t id);
void raw_start(raw_t *r, unsigned op);          /* a valid header of op, request id 42 */
void raw_bytes(raw_t *r, const void *p, size_t n);
void raw_field(raw_t *r, uint16_t tag, const void *p, uint32_t len);
void raw_u32(raw_t *r, uint16_t tag, uint32_t v);
void raw_str(raw_t *r, uint16_t tag, const char *s);
void raw_done(raw_t *r);                        /* the header's length = the body so far */

#endif
