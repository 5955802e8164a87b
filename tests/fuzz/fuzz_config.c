/*
 * fuzz_config.c - libFuzzer target of the configuration file parser (server/srv_config.c srv_config_parse, which
 * srv_config_load calls on the text of the file it read): the input is a file's text, parsed twice as the file
 * /fuzz/csc.conf (relative paths under /fuzz; nothing is read or written). Parsing is deterministic: both parses
 * give the same outcome and, when the text is accepted, the same configuration. Config files are at most 64K
 * (scripts/fuzz's -max_len). The parser says why it refuses on stderr: scripts/fuzz closes the target's stderr
 * (-close_fd_mask=2; libFuzzer's report still shows).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "srv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static srv_config_t a, b; /* large (paths): not on the stack */
    int ra = srv_config_parse((const char *)data, size, "csc.conf", "/fuzz/csc.conf", &a);
    int rb = srv_config_parse((const char *)data, size, "csc.conf", "/fuzz/csc.conf", &b);
    if (ra != rb || (ra == 0 && memcmp(&a, &b, sizeof(a)) != 0))
        abort();
    return 0;
}
