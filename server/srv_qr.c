/* srv_qr.c - QR codes on the terminal for TOTP enrollment (libqrencode), two modules per character cell. */
#include <stdio.h>
#include <qrencode.h>
#include "srv.h"

#define QUIET 2 /* light modules around the symbol (readers need a margin) */

/* Module (x, y) dark? Outside the symbol (the quiet zone) is light. */
static int dark(const QRcode *q, int x, int y)
{
    if (x < 0 || y < 0 || x >= q->width || y >= q->width)
        return 0;
    return q->data[y * q->width + x] & 1;
}

int srv_qr_print(FILE *out, const char *text)
{
    QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);

    if (q == NULL)
        return -1;
    /* Each line is two module rows. Light modules are drawn with the terminal's (light) text colour, dark ones
     * left as its (dark) background: a full block is two light modules, a space two dark ones, the half blocks
     * one of each. Made for the usual light-on-dark terminal; scanners also read the inverted code. */
    for (int y = -QUIET; y < q->width + QUIET; y += 2) {
        for (int x = -QUIET; x < q->width + QUIET; x++) {
            int top = dark(q, x, y), bottom = dark(q, x, y + 1);
            fputs(top && bottom ? " " : top ? "\xe2\x96\x84" : bottom ? "\xe2\x96\x80" : "\xe2\x96\x88", out);
        }
        fputc('\n', out);
    }
    QRcode_free(q);
    return 0;
}
