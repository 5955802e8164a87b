/*
 * fuzz_replay.c - runs one fuzz target (the fuzz_<name>.c it is linked with) over files without libFuzzer, with any
 * compiler, so every build (normal and ASan) replays the target's corpus: `fuzz_<name>_replay DIR|FILE...` (ctest
 * unit_fuzz_<name>_replay over corpus/<name>/). The corpus is both the seeds and the regression inputs of the
 * crashes found; a target aborts on a finding, and this exits 1 when it finds no input at all (a lost corpus must
 * not pass). `fuzz_<name>_replay --write-seeds DIR` runs the target's seed writer, for the targets that have one
 * (fuzz_sam_seeds.c).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define FUZZ_REPLAY_MAX (16u << 20) /* no target takes more: the largest configurable body is 16M */

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    uint8_t *buf = malloc(FUZZ_REPLAY_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, FUZZ_REPLAY_MAX + 1, f) : 0;
    int bad = buf == NULL || ferror(f) || n > FUZZ_REPLAY_MAX;
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: unreadable or over %u bytes\n", path, FUZZ_REPLAY_MAX);
    } else {
        /* An exact-size copy, as libFuzzer hands it over: ASan sees a read past the input. */
        uint8_t *in = malloc(n > 0 ? n : 1);
        if (in == NULL) {
            bad = 1;
        } else {
            memcpy(in, buf, n);
            LLVMFuzzerTestOneInput(in, n);
            free(in);
        }
    }
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

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) {
        if (fuzz_write_seeds == NULL) {
            fprintf(stderr, "%s: this target has no seed writer\n", argv[0]);
            return 2;
        }
        return fuzz_write_seeds(argv[2]) == 0 ? 0 : 1;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE... | --write-seeds DIR\n", argv[0]);
        return 2;
    }
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int n = run_path(argv[i]);
        if (n < 0)
            return 1;
        total += n;
    }
    printf("%s: %d inputs, no finding\n", argv[0], total);
    return total > 0 ? 0 : 1;
}
