/*
 * sam_clock.c - the clock check of csc-sam (issue 15): a time-stamp token states the time of the system clock
 * (genTime, with tsa_accuracy_ms as its accuracy), so csc-sam makes none while the clock cannot be trusted. The
 * source says whether the clock is synchronised and how far off it may be; csc-sam refuses STAMP (SAM_REFUSE_CLOCK)
 * when it is not synchronised or its maximum error exceeds clock_max_error_ms, and logs the offset at its start and
 * with each refusal.
 *
 * The source is a function (sam_clock_t.source): adjtimex(2) read-only in csc-sam (clock_check = adjtimex), a fake
 * in the tests, which never step the real clock.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>

#include "sam_server.h"

int sam_clock_adjtimex(void *arg, sam_clock_reading_t *out)
{
    struct timex tx;
    (void)arg;
    memset(&tx, 0, sizeof(tx)); /* modes 0: read only */
    int state = adjtimex(&tx);
    if (state < 0)
        return -1;
    out->synced = state != TIME_ERROR && !(tx.status & STA_UNSYNC);
    out->offset_us = (tx.status & STA_NANO) ? (int64_t)tx.offset / 1000 : (int64_t)tx.offset;
    out->maxerror_us = (int64_t)tx.maxerror;
    return 0;
}

/* microseconds as milliseconds with three decimals */
#define MS(us) (us) < 0 ? "-" : "", (llabs((long long)(us)) / 1000), (llabs((long long)(us)) % 1000)

int sam_clock_check(const sam_clock_t *c, sam_clock_reading_t *r, char *why, size_t n)
{
    memset(r, 0, sizeof(*r));
    if (c->source(c->arg, r) != 0) {
        int e = errno;
        memset(r, 0, sizeof(*r));
        snprintf(why, n, "the clock's state cannot be read: %s", strerror(e));
        return -1;
    }
    if (!r->synced) {
        snprintf(why, n, "the clock is not synchronised (offset %s%lld.%03lld ms, maxerror %s%lld.%03lld ms)",
                 MS(r->offset_us), MS(r->maxerror_us));
        return -1;
    }
    if (r->maxerror_us < 0 || r->maxerror_us > (int64_t)c->max_error_ms * 1000) {
        snprintf(why, n,
                 "the clock's maxerror %s%lld.%03lld ms is over clock_max_error_ms %u (offset %s%lld.%03lld ms)",
                 MS(r->maxerror_us), c->max_error_ms, MS(r->offset_us));
        return -1;
    }
    snprintf(why, n, "the clock is synchronised (offset %s%lld.%03lld ms, maxerror %s%lld.%03lld ms, at most %u ms)",
             MS(r->offset_us), MS(r->maxerror_us), c->max_error_ms);
    return 0;
}
