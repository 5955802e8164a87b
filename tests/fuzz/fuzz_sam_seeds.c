/*
 * fuzz_sam_seeds.c - the seed writer of the SAM protocol's target (fuzz_sam_wire.c), linked into its replay driver:
 * `fuzz_sam_replay --write-seeds DIR` (fuzz_replay.c) writes the seed corpus: for every op of the tables, its
 * FUZZ_SAM_MIN and FUZZ_SAM_ONE samples and the ONE sample cut short (a near miss for the fuzzer to start from).
 */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_sam.h"

static int write_seed(const char *dir, const char *name, const char *suffix, const uint8_t *p, size_t len)
{
    char path[4096], base[64];
    size_t i;
    for (i = 0; name[i] != '\0' && i + 1 < sizeof(base); i++)
        base[i] = name[i] == ' ' ? '_' : name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] - 'A' + 'a') : name[i];
                  /* "KEY_CREATE reply" -> "key_create_reply" */
    base[i] = '\0';
    if (snprintf(path, sizeof(path), "%s/%s-%s", dir, base, suffix) >= (int)sizeof(path))
        return -1;
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, len, f) != len) {
        perror(path);
        if (f != NULL)
            fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

int fuzz_write_seeds(const char *dir)
{
    for (unsigned op = 0; op < 256; op++) {
        const sam_op_spec_t *spec = sam_op_spec(op);
        if (spec == NULL)
            continue;
        static const struct { unsigned variant; const char *suffix; } v[] = {{FUZZ_SAM_MIN, "min"}, {FUZZ_SAM_ONE, "one"}};
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
            sam_builder_t b;
            const uint8_t *m;
            size_t len;
            int rc = fuzz_sam_sample(op, v[i].variant, 7, &b, &m, &len);
            if (rc != SAM_OK) {
                fprintf(stderr, "%s: %s\n", spec->name, sam_strerror(rc));
                return 1;
            }
            if (write_seed(dir, spec->name, v[i].suffix, m, len) != 0 ||
                (v[i].variant == FUZZ_SAM_ONE && len > SAM_HDR_LEN + 1 &&
                 write_seed(dir, spec->name, "cut", m, len - 1) != 0)) {
                sam_build_free(&b);
                return 1;
            }
            sam_build_free(&b);
        }
    }
    return 0;
}
