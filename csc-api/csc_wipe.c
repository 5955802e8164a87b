/*
 * csc_wipe.c - heap blocks that are wiped before they go back to the C library.
 *
 * Request bodies carry PINs, OTPs and passwords; replies carry tokens, SADs and codes. Every copy the server makes
 * of them (JSON parse buffers, generator buffers, web_buf pages, reply bodies) is allocated here or freed here:
 *   csc_wipe_free     cleanses the whole usable size of the block (malloc_usable_size), then frees it;
 *   csc_wipe_realloc  never grows in place behind our back: a new block, a copy, the old one wiped and freed;
 *   csc_wipe_yajl     yajl_alloc_funcs over the two, for the parser (its decode and lexer buffers) and generators.
 * The size comes from malloc_usable_size rather than from a header of our own, so a block from here can be handed
 * to code that frees it with plain free() (a reply body) and still be wiped when freed here. What the server
 * cannot reach (h2o's socket and pool buffers, the kernel's) is listed in docs/compliance.md.
 *   csc_wipe_openssl  the same for OpenSSL's own allocations (libssl's record buffers hold the decrypted requests).
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "csc_int.h"

void *csc_wipe_malloc(size_t n)
{
    return malloc(n ? n : 1);
}

void csc_wipe_free(void *p)
{
    if (p == NULL)
        return;
    /* glibc's memset behind a barrier no compiler removes: OPENSSL_cleanse's loop is 4-5x slower (stor_wipe) */
    explicit_bzero(p, malloc_usable_size(p));
    free(p);
}

void *csc_wipe_realloc(void *p, size_t n)
{
    if (p == NULL)
        return csc_wipe_malloc(n);
    size_t old = malloc_usable_size(p);
    void *q = malloc(n ? n : 1);
    if (q == NULL)
        return NULL; /* p stays valid, as with realloc */
    memcpy(q, p, old < n ? old : n);
    csc_wipe_free(p);
    return q;
}

static void *y_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return csc_wipe_malloc(n);
}

static void *y_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return csc_wipe_realloc(p, n);
}

static void y_free(void *ctx, void *p)
{
    (void)ctx;
    csc_wipe_free(p);
}

yajl_alloc_funcs csc_wipe_yajl = {y_malloc, y_realloc, y_free, NULL};

/* OpenSSL's allocator: its file and line are not wanted here. */
static void *o_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return csc_wipe_malloc(n);
}

static void *o_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (n == 0) { /* what CRYPTO_realloc does with 0: free, and no block */
        csc_wipe_free(p);
        return NULL;
    }
    return csc_wipe_realloc(p, n);
}

static void o_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    csc_wipe_free(p);
}

int csc_wipe_openssl(void)
{
    return CRYPTO_set_mem_functions(o_malloc, o_realloc, o_free) == 1 ? 0 : -1;
}
