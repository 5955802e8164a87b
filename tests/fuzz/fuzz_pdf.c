/*
 * fuzz_pdf.c - libFuzzer target of signDoc's PAdES handling (csc-api/csc_signdoc.c): the search for the prepared
 * signature (csc_pdf_placeholder) in a document a client sent, and the writing of the signature into it
 * (csc_pdf_fill). The whole of the document is the input (scripts/fuzz runs it up to 1 MiB).
 *
 * What the search finds must be what signDoc then relies on: a gap inside the document, '<' ... '>' holding only
 * '0', preceded by /Contents, with room to fill. Filling it with the largest signature that fits changes only the
 * gap's inside, and one byte more is refused with nothing written. Any difference aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "csc_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t a, b;
    if (csc_pdf_placeholder(data, size, &a, &b) != 0)
        return 0;
    if (!(a < b && b < size && b - a >= 3 && data[a] == '<' && data[b] == '>') || a < 9)
        abort();
    for (size_t i = a + 1; i < b; i++)
        if (data[i] != '0')
            abort();
    size_t k = a;
    while (k > 0 && memchr(" \n\r\t\f", data[k - 1], 6) != NULL) /* PDF white space, NUL included */
        k--;
    if (k < 9 || memcmp(data + k - 9, "/Contents", 9) != 0)
        abort();

    size_t room = (b - a - 1) / 2;
    uint8_t *doc = malloc(size), *der = malloc(room + 1);
    if (doc == NULL || der == NULL)
        abort();
    memcpy(doc, data, size);
    for (size_t i = 0; i <= room; i++)
        der[i] = (uint8_t)(i * 151 + 7);
    if (csc_pdf_fill(doc, a, b, der, room + 1) == 0 || memcmp(doc, data, size) != 0)
        abort(); /* too large: refused, nothing written */
    if (csc_pdf_fill(doc, a, b, der, room) != 0)
        abort();
    if (memcmp(doc, data, a + 1) != 0 || memcmp(doc + b, data + b, size - b) != 0)
        abort(); /* outside the gap: untouched (the signed byte ranges) */
    for (size_t i = 0; i < room; i++) {
        static const char hex[] = "0123456789ABCDEF";
        if (doc[a + 1 + 2 * i] != hex[der[i] >> 4] || doc[a + 2 + 2 * i] != hex[der[i] & 15])
            abort();
    }
    free(doc);
    free(der);
    return 0;
}
