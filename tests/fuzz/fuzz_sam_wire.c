/*
 * fuzz_sam_wire.c - libFuzzer target of the SAM protocol's decoder (sam/include/sam_wire.h).
 *
 * Input: a message in flat form. Whatever sam_msg_decode() accepts is built again from the decoded view with the
 * builder, field by field in table order, and must come out byte for byte the same (one encoding per message:
 * the canonical rule), and every accessor must agree with the view. Any difference aborts.
 *
 * Built with libFuzzer when CSC_FUZZ is on (tests/fuzz/CMakeLists.txt); fuzz_sam_replay runs the same function over
 * tests/fuzz/corpus/sam_wire/ in every build (ctest unit_fuzz_sam_replay).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sam.h"
#include "sam_wire.h"

int fuzz_sam_reencode(const sam_msg_t *m, sam_builder_t *b, const uint8_t **out, size_t *n)
{
    const sam_op_spec_t *spec = sam_op_spec(m->op);
    if (sam_build_init(b, m->op, m->id) != SAM_OK)
        return SAM_ERR_OP;
    for (size_t i = 0; i < spec->n_fields; i++) {
        const sam_field_spec_t *f = &spec->fields[i];
        sam_iter_t it;
        const uint8_t *p;
        size_t len;
        sam_iter_init(m, f->tag, &it);
        while (sam_iter_next(&it, &p, &len))
            fuzz_sam_put(b, f, p, len);
    }
    return sam_build_finish(b, out, n);
}

/* The accessors of the first value of every tag agree with the iterator. */
static void check_accessors(const sam_msg_t *m)
{
    const sam_op_spec_t *spec = sam_op_spec(m->op);
    for (size_t i = 0; i < spec->n_fields; i++) {
        const sam_field_spec_t *f = &spec->fields[i];
        const uint8_t *p, *q;
        size_t len, qlen;
        sam_iter_t it;
        sam_iter_init(m, f->tag, &it);
        int has = sam_iter_next(&it, &p, &len);
        if (has != (sam_get_bytes(m, f->tag, &q, &qlen) == SAM_OK) || (has && (p != q || len != qlen)))
            abort();
        if (has && f->type == SAM_TYPE_TEXT) {
            char *s = malloc(len + 1);
            if (s == NULL || sam_get_text(m, f->tag, s, len + 1) != SAM_OK || strlen(s) != len || memcmp(s, p, len))
                abort();
            free(s);
        }
        uint32_t v32;
        uint64_t v64;
        if (has && f->type == SAM_TYPE_U32 && (sam_get_u32(m, f->tag, &v32) != SAM_OK || v32 < f->min_val ||
                                                v32 > f->max_val))
            abort();
        if (has && f->type == SAM_TYPE_U64 && sam_get_u64(m, f->tag, &v64) != SAM_OK)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sam_msg_t m;
    if (sam_msg_decode(data, size, &m) != SAM_OK)
        return 0;
    check_accessors(&m);
    sam_builder_t b;
    const uint8_t *out;
    size_t n;
    if (fuzz_sam_reencode(&m, &b, &out, &n) != SAM_OK || n != size || memcmp(out, data, size) != 0)
        abort();
    sam_build_free(&b);
    return 0;
}
