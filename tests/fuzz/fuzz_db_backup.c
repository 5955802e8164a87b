/*
 * fuzz_db_backup.c - libFuzzer target of the parts of a db backup file that csc-admin db restore parses
 * (server/srv_dbfile.c) before it writes anything: the header text (up to its 2048 bytes and a little) and the
 * trailer after the file's SHA-256 (the signed text and its signature). The input is the header text, then, after a
 * NUL byte (which no header holds: db restore refuses one), the trailer's bytes, if any.
 *
 * A header that parses has one text: srv_dbfile_header_text() of what was parsed gives the input back, byte for byte,
 * and that parses to the same header. A refusal names where (a key of the header, or its end). A trailer that parses
 * is likewise written back by srv_dbfile_trailer_write() as the input's bytes, which parse to the same. Any
 * difference aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "srv_dbfile.h"

#define TEXT_MAX 4096

static void header(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"backend", "created_ms", "audit_seq", "audit_hash", "head_seq",
                                       "head_hash", "head_time_ms", "head_sig", SRV_DBFILE_END};
    char text[TEXT_MAX + 1], again[TEXT_MAX + 1];
    srv_dbfile_header_t h1, h2;
    const char *why = NULL;
    if (size > TEXT_MAX)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    if (srv_dbfile_header_parse(text, &h1, &why) != 0) {
        size_t i = 0;
        while (why != NULL && i < sizeof(keys) / sizeof(keys[0]) && strcmp(why, keys[i]) != 0)
            i++;
        if (why == NULL || i == sizeof(keys) / sizeof(keys[0]))
            abort();
        return;
    }
    int n = srv_dbfile_header_text(&h1, again, sizeof(again));
    if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0)
        abort();
    if (srv_dbfile_header_parse(again, &h2, &why) != 0 || memcmp(&h1, &h2, sizeof(h1)) != 0)
        abort();
}

static void trailer(const uint8_t *data, size_t size)
{
    static srv_dbfile_sig_t s1, s2;
    uint8_t again[SRV_DBFILE_TRAILER_MAX];
    if (srv_dbfile_trailer_parse(data, size, &s1) != 0)
        return;
    int n = srv_dbfile_trailer_write(&s1, again, sizeof(again));
    if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0 || strlen(s1.text) + 4 + s1.sig_len != size)
        abort();
    if (srv_dbfile_trailer_parse(again, (size_t)n, &s2) != 0 || memcmp(&s1, &s2, sizeof(s1)) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t hlen = nul != NULL ? (size_t)(nul - data) : size;
    header(data, hlen);
    if (nul != NULL)
        trailer(nul + 1, size - hlen - 1);
    return 0;
}
