/*
 * clockshim.c - an LD_PRELOAD library that steps the wall clock of the process it is loaded into: the system clock
 * stepped back or forward, as settimeofday or an NTP step would, without touching the machine's clock (issue 14,
 * tests/integration/test_clock.py).
 *
 * CSC_CLOCK_OFFSET_FILE names a file holding a whole number of seconds (signed, e.g. "-3600"); that offset is added
 * to what clock_gettime answers for CLOCK_REALTIME and CLOCK_REALTIME_COARSE, to gettimeofday and to time. No file,
 * or one that does not hold a number, is an offset of 0. CLOCK_MONOTONIC (and BOOTTIME) is left alone, as a real
 * step leaves it. The file is looked at again (a stat, and a read when its inode, size or modification time changed)
 * at most every CHECK_NS of CLOCK_MONOTONIC_COARSE, so a test that rewrites it (write a new file, rename it over the
 * old) sees every process follow within about that. The calls it makes (newfstatat, openat, read, close) are
 * allowed by csc-server's and csc-sam's system-call filters, so it keeps working after they are loaded.
 *
 * The environment passes from csc-server to its supervisor and csc-sam (execv), so LD_PRELOAD and the variable given
 * to csc-server step all three. Never for production: it is built only under tests/.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHECK_NS 10000000LL /* 10 ms between looks at the file */

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, void *);
typedef time_t (*time_fn)(time_t *);

static clock_gettime_fn real_clock_gettime;
static gettimeofday_fn real_gettimeofday;
static time_fn real_time;

/* Shared by every thread (atomics: a thread may read an offset one check old, never a torn one). */
static int64_t offset_s;
static int64_t next_check_ns;
static int checking;
static uint64_t seen_ino, seen_size, seen_mtime_ns;

static void resolve(void)
{
    if (__atomic_load_n(&real_clock_gettime, __ATOMIC_ACQUIRE) != NULL)
        return;
    real_gettimeofday = (gettimeofday_fn)dlsym(RTLD_NEXT, "gettimeofday");
    real_time = (time_fn)dlsym(RTLD_NEXT, "time");
    __atomic_store_n(&real_clock_gettime, (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime"), __ATOMIC_RELEASE);
}

/* The file's number, or 0. */
static int64_t read_offset(const char *path)
{
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    return end == buf ? 0 : (int64_t)v;
}

/* Look at the file if CHECK_NS passed since the last look and no other thread is looking. */
static void refresh(void)
{
    struct timespec mono;
    const char *path = getenv("CSC_CLOCK_OFFSET_FILE");

    if (path == NULL || real_clock_gettime(CLOCK_MONOTONIC_COARSE, &mono) != 0)
        return;
    int64_t now = (int64_t)mono.tv_sec * 1000000000LL + mono.tv_nsec;
    if (now < __atomic_load_n(&next_check_ns, __ATOMIC_RELAXED) || __atomic_exchange_n(&checking, 1, __ATOMIC_ACQUIRE))
        return;
    struct stat st;
    if (stat(path, &st) != 0) {
        __atomic_store_n(&offset_s, 0, __ATOMIC_RELAXED);
        seen_ino = 0;
    } else {
        uint64_t mt = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
        if ((uint64_t)st.st_ino != seen_ino || (uint64_t)st.st_size != seen_size || mt != seen_mtime_ns) {
            seen_ino = (uint64_t)st.st_ino;
            seen_size = (uint64_t)st.st_size;
            seen_mtime_ns = mt;
            __atomic_store_n(&offset_s, read_offset(path), __ATOMIC_RELAXED);
        }
    }
    __atomic_store_n(&next_check_ns, now + CHECK_NS, __ATOMIC_RELAXED);
    __atomic_store_n(&checking, 0, __ATOMIC_RELEASE);
}

static int64_t offset(void)
{
    refresh();
    return __atomic_load_n(&offset_s, __ATOMIC_RELAXED);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    resolve();
    int rc = real_clock_gettime(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        ts->tv_sec += (time_t)offset();
    return rc;
}

/* glibc declares tv nonnull, yet its vDSO call takes NULL (a caller asking for nothing): so do we. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnonnull-compare"
#endif
int gettimeofday(struct timeval *tv, void *tz)
{
    resolve();
    int rc = real_gettimeofday(tv, tz);
    if (rc == 0 && tv != NULL)
        tv->tv_sec += (time_t)offset();
    return rc;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

time_t time(time_t *out)
{
    resolve();
    time_t t = real_time(NULL);
    if (t != (time_t)-1)
        t += (time_t)offset();
    if (out != NULL)
        *out = t;
    return t;
}
