/*
 * fuzz_json.c - libFuzzer target of csc-api's JSON parser (csc_json.c): arbitrary bytes through
 * csc_json_parse_text() with the default depth limit (max_json_depth 16); request bodies are up to max_body (256K
 * by default: scripts/fuzz's -max_len).
 *
 * What parses is generated again (csc_json_gen_value) and must parse again and generate the same text: a tree the
 * parser builds is one the generator can write, and the round trip is stable. Any difference aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "csc_int.h"
#include "fuzz.h"

#define FUZZ_JSON_DEPTH 16 /* server/srv_config.c: max_json_depth's default */

/* The generated text of v, malloc'ed (*len bytes), or NULL if the generator refused. */
static char *gen(yajl_val v, size_t *len)
{
    yajl_gen g = csc_gen_new();
    const unsigned char *buf;
    char *out = NULL;

    csc_json_gen_value(g, v);
    if (yajl_gen_get_buf(g, &buf, len) == yajl_gen_status_ok && (out = malloc(*len + 1)) != NULL) {
        memcpy(out, buf, *len);
        out[*len] = '\0';
    }
    yajl_gen_free(g);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    yajl_val v = csc_json_parse_text((const char *)data, size, FUZZ_JSON_DEPTH);
    if (v == NULL)
        return 0;
    size_t n1, n2;
    char *t1 = gen(v, &n1);
    csc_json_free(v);
    if (t1 == NULL)
        abort();
    yajl_val w = csc_json_parse_text(t1, n1, FUZZ_JSON_DEPTH);
    if (w == NULL)
        abort(); /* the parser refuses what it was given back */
    char *t2 = gen(w, &n2);
    csc_json_free(w);
    if (t2 == NULL || n1 != n2 || memcmp(t1, t2, n1) != 0)
        abort();
    free(t1);
    free(t2);
    return 0;
}
