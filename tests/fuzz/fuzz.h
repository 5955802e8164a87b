/* fuzz.h - what every fuzz target of tests/fuzz defines, for libFuzzer and for the replay driver (fuzz_replay.c). */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

/** One input; aborts on a finding (a property broken), returns 0 otherwise, whatever the parser said. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
