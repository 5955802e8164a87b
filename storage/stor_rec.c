/*
 * stor_rec.c - a home that does not move for the big records a request holds for a moment (stor.h: stor_rec_new,
 * stor_rec_free). A SAD record is 64 KiB (its digests inline), a credential's 19 KiB: csc-sam takes and gives back
 * several per request. From malloc, each such block is carved out of whatever free space the heap has, and the small
 * blocks that land between them keep that space from being joined again; csc-sam's heap is locked (mlockall) and
 * never trimmed, so its size crept up with every new pattern of requests in flight (docs/reliability.md, soak). Here a
 * block given back is wiped and kept on a free list of its size, for the next request of any thread: the heap sees
 * the blocks of the busiest moment once, and then no more. A class per size (records are of a few sizes), at most
 * KEEP_MAX blocks kept per class; smaller blocks, and beyond the classes, go to calloc and free as before. Under
 * AddressSanitizer a kept block is poisoned but for its link, so that a use after stor_rec_free is still reported.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/asan_interface.h> /* its poisoning macros do nothing outside AddressSanitizer */

#include "stor.h"

#define REC_MIN 4096u /* smaller blocks: calloc and free (malloc's own caches serve them well) */
#define CLASSES 8     /* record sizes pooled; a ninth size goes to calloc and free */
#define KEEP_MAX 32   /* blocks kept per size: more than the requests a csc-sam has in flight */

struct free_blk {
    struct free_blk *next; /* the only bytes of a kept block that are not zero */
};

static struct {
    size_t size; /* 0: class unused */
    struct free_blk *head;
    unsigned kept;
} cls[CLASSES];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void *stor_rec_new(size_t size)
{
    struct free_blk *b = NULL;

    if (size < REC_MIN)
        return calloc(1, size);
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < CLASSES && cls[i].size != 0; i++)
        if (cls[i].size == size) {
            if ((b = cls[i].head) != NULL) {
                ASAN_UNPOISON_MEMORY_REGION(b, size);
                cls[i].head = b->next;
                cls[i].kept--;
            }
            break;
        }
    pthread_mutex_unlock(&mu);
    if (b == NULL)
        return calloc(1, size);
    b->next = NULL; /* the rest was wiped to zero when it was given back */
    return b;
}

void stor_rec_free(void *p, size_t size)
{
    struct free_blk *b = p;
    size_t i;

    if (p == NULL)
        return;
    explicit_bzero(p, size); /* zero: what the next stor_rec_new hands out (stor_wipe says why not OPENSSL_cleanse) */
    if (size < REC_MIN) {
        free(p);
        return;
    }
    pthread_mutex_lock(&mu);
    for (i = 0; i < CLASSES && cls[i].size != 0 && cls[i].size != size; i++)
        ;
    if (i < CLASSES && cls[i].size == 0)
        cls[i].size = size;
    if (i < CLASSES && cls[i].kept < KEEP_MAX) {
        b->next = cls[i].head;
        cls[i].head = b;
        cls[i].kept++;
        /* next stays readable: LeakSanitizer follows no pointer in poisoned bytes */
        ASAN_POISON_MEMORY_REGION(b + 1, size - sizeof(*b));
        b = NULL;
    }
    pthread_mutex_unlock(&mu);
    free(b);
}
