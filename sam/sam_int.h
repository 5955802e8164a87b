/* sam_int.h - what sam_codec.c, sam_io.c and sam_client.c share: the record header's byte layout, a wait. */
#ifndef SAM_INT_H
#define SAM_INT_H

#include <stddef.h>
#include <stdint.h>

#include "sam_wire.h"

/** A record header as read from the wire. */
typedef struct sam_hdr {
    uint16_t magic;
    uint8_t version;
    uint8_t op;
    uint16_t flags;
    uint16_t reserved;
    uint32_t id;
    uint32_t length;
} sam_hdr_t;

/** Wait until fd has something to read (or an error, a hang-up) or the deadline passes: SAM_OK, SAM_ERR_TIMEOUT,
 *  SAM_ERR_IO. A caller that knows a message cannot be there yet waits here first, so that sam_recv's first try
 *  succeeds (one recvmsg less). */
int sam_wait_readable(int fd, int64_t deadline_ms);

static inline uint16_t sam_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t sam_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void sam_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void sam_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/** Read the SAM_HDR_LEN bytes at p. */
void sam_hdr_read(const uint8_t *p, sam_hdr_t *h);
/** Write h as SAM_HDR_LEN bytes at p. */
void sam_hdr_write(uint8_t *p, const sam_hdr_t *h);
/**
 * The checks every record header passes: magic, version, a known op, no flag but those in allowed_flags,
 * reserved 0. (Lengths are the caller's: they differ between a record and the flat form.)
 * @return SAM_OK, SAM_ERR_MAGIC, SAM_ERR_VERSION, SAM_ERR_OP, SAM_ERR_FLAGS, SAM_ERR_RESERVED
 */
int sam_hdr_check(const sam_hdr_t *h, uint16_t allowed_flags);

#endif
