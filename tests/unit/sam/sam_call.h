/* sam_call.h - the SAM protocol by hand, for the unit tests that speak it to the fixture's csc-sam (test_sam_sign.c,
 * test_sam_stor_faults.c): build a request, send it on the fixture's pool of connections, read the reply. */
#ifndef TEST_SAM_CALL_H
#define TEST_SAM_CALL_H

#include <string.h>
#include <check.h>
#include "csc_fixture.h"

typedef struct call {
    sam_builder_t b;
    sam_rbuf_t rb;
    sam_msg_t m;
} call_t;

static inline void call_begin(sam_client_t *sam, call_t *c, unsigned op)
{
    memset(c, 0, sizeof(*c));
    ck_assert_int_eq(sam_build_init(&c->b, op, sam_client_next_id(sam)), SAM_OK);
}

/* Send; the reply op (op | SAM_OP_REPLY, or SAM_OP_REFUSED with *code). */
static inline unsigned call_run(sam_client_t *sam, call_t *c, uint32_t *code)
{
    const uint8_t *msg;
    size_t len;
    ck_assert_int_eq(sam_build_finish(&c->b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_client_call(sam, msg, len, &c->rb, &c->m), SAM_OK);
    *code = 0;
    if (c->m.op == SAM_OP_REFUSED)
        ck_assert_int_eq(sam_get_u32(&c->m, SAM_T_REFUSAL, code), SAM_OK);
    return c->m.op;
}

static inline void call_end(call_t *c)
{
    sam_build_free(&c->b);
    sam_rbuf_free(&c->rb);
}

#endif
