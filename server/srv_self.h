/* srv_self.h - the running program's own path, read from /proc/self/exe. A header of its own, the function inline:
 * csc_priv (csc-server's and csc-sam's first step, srv_priv_exec_self), csc_srv (where csc-sam's executable is,
 * srv_sam_program) and csc-admin (its message catalogues, srv_i18n.c) all need it, and csc_priv links none of the
 * service's libraries (srv_priv.h). */
#ifndef SRV_SELF_H
#define SRV_SELF_H

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

/* The absolute path of the running program's file into out (NUL-terminated): its length, or -1 with errno set (a
 * path of sz bytes or more: ENAMETOOLONG). */
static inline ssize_t srv_self_path(char *out, size_t sz)
{
    ssize_t len = readlink("/proc/self/exe", out, sz);
    if (len < 0)
        return -1;
    if (len == 0 || (size_t)len >= sz) {
        errno = len == 0 ? ENOENT : ENAMETOOLONG;
        return -1;
    }
    out[len] = '\0';
    return len;
}

#endif
