/*
 * freewatch.c - an LD_PRELOAD library for the integration test of wiped secrets (test_secrets.py).
 *
 * It replaces free() and realloc() in a csc-server process and looks into every block handed back to the C
 * library for a marker (FREEWATCH_MARKER, a PIN or password the test uses). For each block that still holds it,
 * one line goes to FREEWATCH_OUT: the object (executable or shared library) that called free or realloc, and
 * the calling address. The test then decides which callers count: the server's own code and libyajl (whose
 * allocations the server routes through its wiping allocator) must never hand back a secret; h2o's and
 * OpenSSL's buffers are outside the server's reach (docs/compliance.md, J2) and are only reported.
 *
 * Not for sanitizer builds: they replace the allocator themselves.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void __libc_free(void *p);
extern void *__libc_realloc(void *p, size_t n);

static char marker[128];
static size_t marker_len;
static int out_fd = -1;

__attribute__((constructor)) static void freewatch_init(void)
{
    const char *m = getenv("FREEWATCH_MARKER"), *out = getenv("FREEWATCH_OUT");

    if (m == NULL || out == NULL || strlen(m) < 6 || strlen(m) >= sizeof(marker))
        return;
    memcpy(marker, m, strlen(m));
    marker_len = strlen(m);
    out_fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void look(void *p, void *caller)
{
    Dl_info di;
    char line[700];
    const char *obj = "?";
    int n;

    if (p == NULL || out_fd < 0 || memmem(p, malloc_usable_size(p), marker, marker_len) == NULL)
        return;
    unsigned long off = 0;
    if (dladdr(caller, &di) != 0 && di.dli_fname != NULL) {
        obj = di.dli_fname;
        off = (unsigned long)((char *)caller - (char *)di.dli_fbase);
    }
    /* the offset in the object, for addr2line -e OBJ (a position-independent object's address says nothing) */
    n = snprintf(line, sizeof(line), "%s %p +0x%lx\n", obj, caller, off);
    if (n > 0 && write(out_fd, line, (size_t)n) < 0)
        return;
}

void free(void *p)
{
    look(p, __builtin_return_address(0));
    __libc_free(p);
}

void *realloc(void *p, size_t n)
{
    look(p, __builtin_return_address(0));
    return __libc_realloc(p, n);
}
