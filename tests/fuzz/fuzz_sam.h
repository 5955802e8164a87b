/* fuzz_sam.h - the SAM protocol's fuzz target and the sample messages its seed corpus and the unit tests share. */
#ifndef FUZZ_SAM_H
#define FUZZ_SAM_H

#include <stddef.h>
#include <stdint.h>

#include "sam_wire.h"

/** The libFuzzer entry point (fuzz_sam_wire.c): aborts when a decoded message does not re-encode to itself. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/** Build m again from its view, field by field in table order: the canonical encoding. b is initialised here. */
int fuzz_sam_reencode(const sam_msg_t *m, sam_builder_t *b, const uint8_t **out, size_t *n);

/** Sample messages of every op, from its table alone (fuzz_sam_sample.c). */
enum {
    FUZZ_SAM_MIN = 0,  /**< required fields only, shortest values, the first member of each one_of group */
    FUZZ_SAM_MAX = 1,  /**< every field as often and as long as allowed (first member of each group) */
    FUZZ_SAM_ONE = 2,  /**< every field once, short values (at most 16 bytes over the minimum), middle integers,
                            the last member of each group */
    FUZZ_SAM_VARIANTS = 3,
};
/** The value number idx of row f in a variant, encoded (integers big-endian): *len bytes into buf (room for
 *  f->max_len). */
void fuzz_sam_value(const sam_field_spec_t *f, unsigned variant, unsigned idx, uint8_t *buf, size_t *len);
/** Put one encoded value of row f with the builder call of its type. */
void fuzz_sam_put(sam_builder_t *b, const sam_field_spec_t *f, const uint8_t *p, size_t len);
/** Build the variant's sample of op (b initialised here). @return sam_build_finish()'s result */
int fuzz_sam_sample(unsigned op, unsigned variant, uint32_t id, sam_builder_t *b, const uint8_t **msg, size_t *len);
/** How many values of row f the variant puts (0: not at all). */
unsigned fuzz_sam_count(const sam_op_spec_t *spec, const sam_field_spec_t *f, unsigned variant);

#endif
