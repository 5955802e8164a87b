/*
 * fuzz_config.c - libFuzzer target of the configuration file parser (server/srv_config.c srv_config_load): the
 * input is written to a file in a directory of the target's own (mkdtemp under $TMPDIR, else /tmp, removed at
 * exit) and loaded twice. Loading is deterministic: both loads give the same outcome and, when the file is
 * accepted, the same configuration. Config files are at most 64K (scripts/fuzz's -max_len). The parser says why it
 * refuses on stderr: scripts/fuzz closes the target's stderr (-close_fd_mask=2; libFuzzer's report still shows).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "srv.h"

static char dir[4096], path[4200];

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static srv_config_t a, b; /* large (paths): not on the stack */
    if (dir[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof(dir), "%s/fuzz_config.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL) {
            perror(dir);
            abort();
        }
        snprintf(path, sizeof(path), "%s/csc.conf", dir);
        atexit(cleanup);
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        abort();
    }
    int ra = srv_config_load(path, &a), rb = srv_config_load(path, &b);
    if (ra != rb || (ra == 0 && memcmp(&a, &b, sizeof(a)) != 0))
        abort();
    return 0;
}
