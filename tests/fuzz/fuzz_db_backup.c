/*
 * fuzz_db_backup.c - libFuzzer target of the header of a db backup file (server/srv_dbfile.c), which csc-admin db
 * restore parses before it writes anything: the input is the header text (up to its 2048 bytes and a little).
 *
 * A header that parses has one text: srv_dbfile_header_text() of what was parsed gives the input back, byte for byte,
 * and that parses to the same header. A refusal names where (a key of the header, or its end). Any difference
 * aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "srv_dbfile.h"

#define TEXT_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"backend", "created_ms", "audit_seq", "audit_hash", "head_seq",
                                       "head_hash", "head_time_ms", "head_sig", SRV_DBFILE_END};
    char text[TEXT_MAX + 1], again[TEXT_MAX + 1];
    srv_dbfile_header_t h1, h2;
    const char *why = NULL;
    /* db restore refuses a NUL in the header before it parses */
    if (size > TEXT_MAX || memchr(data, '\0', size) != NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (srv_dbfile_header_parse(text, &h1, &why) != 0) {
        size_t i = 0;
        while (why != NULL && i < sizeof(keys) / sizeof(keys[0]) && strcmp(why, keys[i]) != 0)
            i++;
        if (why == NULL || i == sizeof(keys) / sizeof(keys[0]))
            abort();
        return 0;
    }
    int n = srv_dbfile_header_text(&h1, again, sizeof(again));
    if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0)
        abort();
    if (srv_dbfile_header_parse(again, &h2, &why) != 0 || memcmp(&h1, &h2, sizeof(h1)) != 0)
        abort();
    return 0;
}
