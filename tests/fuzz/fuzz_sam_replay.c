/*
 * fuzz_sam_replay.c - runs the fuzz target fuzz_sam_wire.c over files without libFuzzer (any compiler), so every
 * build exercises it: `fuzz_sam_replay DIR|FILE...` (ctest unit_fuzz_sam_replay, over corpus/sam_wire/). Exits 1
 * when it finds no input at all (a lost corpus must not pass); the target aborts on a finding.
 *
 * `fuzz_sam_replay --write-seeds DIR` writes the seed corpus: for every op of the tables, its FUZZ_SAM_MIN and
 * FUZZ_SAM_ONE samples and the ONE sample cut short (a near miss for the fuzzer to start from).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_sam.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    uint8_t *buf = malloc(SAM_HDR_LEN + SAM_MSG_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, SAM_HDR_LEN + SAM_MSG_MAX + 1, f) : 0;
    int bad = buf == NULL || ferror(f);
    fclose(f);
    if (!bad)
        LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return bad ? -1 : 1;
}

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    DIR *d = opendir(path);
    if (d == NULL) {
        perror(path);
        return -1;
    }
    int count = 0;
    struct dirent *e;
    while (count >= 0 && (e = readdir(d)) != NULL) {
        char p[4096];
        if (e->d_name[0] == '.' || snprintf(p, sizeof(p), "%s/%s", path, e->d_name) >= (int)sizeof(p))
            continue;
        int rc = run_file(p);
        count = rc < 0 ? -1 : count + rc;
    }
    closedir(d);
    return count;
}

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

static int write_seeds(const char *dir)
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

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
        return write_seeds(argv[2]);
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_sam_replay DIR|FILE... | --write-seeds DIR\n");
        return 2;
    }
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int n = run_path(argv[i]);
        if (n < 0)
            return 1;
        total += n;
    }
    printf("fuzz_sam_replay: %d inputs, no finding\n", total);
    return total > 0 ? 0 : 1;
}
