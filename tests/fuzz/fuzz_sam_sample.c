/*
 * fuzz_sam_sample.c - sample messages of every SAM op made from its table alone (sam_op_spec()): the seed
 * corpus (fuzz_sam_replay --write-seeds) and the round trips of tests/unit/sam come from here, so a new op or
 * field is covered by both without a line of test code.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_sam.h"

/* Is f the member of its one_of group the variant uses (the first, or for FUZZ_SAM_ONE the last)? */
static int group_pick(const sam_op_spec_t *spec, const sam_field_spec_t *f, unsigned variant)
{
    const sam_field_spec_t *pick = NULL;
    for (size_t i = 0; i < spec->n_fields; i++) {
        if (spec->fields[i].one_of != f->one_of)
            continue;
        if (pick == NULL || variant == FUZZ_SAM_ONE)
            pick = &spec->fields[i];
    }
    return pick == f;
}

unsigned fuzz_sam_count(const sam_op_spec_t *spec, const sam_field_spec_t *f, unsigned variant)
{
    if (f->one_of != 0)
        return group_pick(spec, f, variant) ? 1 : 0;
    switch (variant) {
    case FUZZ_SAM_MIN: return f->min_count;
    case FUZZ_SAM_MAX: return f->max_count;
    default: return f->min_count > 1 ? f->min_count : 1;
    }
}

void fuzz_sam_value(const sam_field_spec_t *f, unsigned variant, unsigned idx, uint8_t *buf, size_t *len)
{
    if (f->type == SAM_TYPE_U32 || f->type == SAM_TYPE_U64) {
        uint64_t v = variant == FUZZ_SAM_MIN   ? f->min_val
                     : variant == FUZZ_SAM_MAX ? f->max_val
                                               : f->min_val + (f->max_val - f->min_val) / 2;
        *len = f->min_len;
        for (size_t k = *len; k-- > 0; v >>= 8)
            buf[k] = (uint8_t)v;
        return;
    }
    size_t room = f->max_len - f->min_len;
    *len = f->min_len + (variant == FUZZ_SAM_MIN ? 0 : variant == FUZZ_SAM_MAX ? room : room < 16 ? room : 16);
    for (size_t k = 0; k < *len; k++) /* differs per tag and value, so swapped values show; printable for TEXT */
        buf[k] = f->type == SAM_TYPE_TEXT ? (uint8_t)('a' + (f->tag + idx * 7 + k) % 26)
                                          : (uint8_t)(f->tag * 31 + idx * 7 + k);
}

void fuzz_sam_put(sam_builder_t *b, const sam_field_spec_t *f, const uint8_t *p, size_t len)
{
    uint64_t v = 0;
    for (size_t k = 0; k < len && len <= 8; k++)
        v = v << 8 | p[k];
    if (f->type == SAM_TYPE_U32 && len == 4)
        sam_put_u32(b, f->tag, (uint32_t)v);
    else if (f->type == SAM_TYPE_U64 && len == 8)
        sam_put_u64(b, f->tag, v);
    else if (f->type == SAM_TYPE_TEXT)
        sam_put_text(b, f->tag, (const char *)p, len);
    else
        sam_put_bytes(b, f->tag, p, len); /* also a U32/U64 of the wrong length: the builder refuses it */
}

int fuzz_sam_sample(unsigned op, unsigned variant, uint32_t id, sam_builder_t *b, const uint8_t **msg, size_t *len)
{
    const sam_op_spec_t *spec = sam_op_spec(op);
    int rc = sam_build_init(b, op, id);
    uint8_t *buf = malloc(SAM_MSG_MAX);
    if (buf == NULL)
        rc = SAM_ERR_NOMEM;
    for (size_t i = 0; rc == SAM_OK && i < spec->n_fields; i++) {
        const sam_field_spec_t *f = &spec->fields[i];
        unsigned n = fuzz_sam_count(spec, f, variant);
        for (unsigned k = 0; k < n; k++) {
            size_t vlen;
            fuzz_sam_value(f, variant, k, buf, &vlen);
            fuzz_sam_put(b, f, buf, vlen);
        }
    }
    free(buf);
    return rc != SAM_OK ? rc : sam_build_finish(b, msg, len);
}
