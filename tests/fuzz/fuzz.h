/* fuzz.h - what every fuzz target of tests/fuzz defines, for libFuzzer and for the replay driver (fuzz_replay.c). */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

/** One input; aborts on a finding (a property broken), returns 0 otherwise, whatever the parser said. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/** A target's seed writer, if it has one (a weak symbol: NULL otherwise), run by `fuzz_<name>_replay --write-seeds
 *  DIR`: writes the target's seed corpus into DIR. @return 0, or non-zero after saying why on stderr */
int fuzz_write_seeds(const char *dir) __attribute__((weak));

#endif
