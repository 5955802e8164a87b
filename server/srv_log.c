/*
 * srv_log.c - standard error as the systemd journal keeps it.
 *
 * csc-server and csc-sam write one line per event to stderr. When stderr is the journal's stream (systemd sets
 * JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected, sd-daemon(3)), each line gets the kernel-style level
 * prefix the journal reads ("<3>" error, "<4>" warning, "<6>" info): `journalctl -p warning` then shows what needs
 * an operator, and the start-up and reload lines are kept as information. Anywhere else (a terminal, a file, the
 * tests, a child's stderr that is not the journal's) nothing changes.
 *
 * The level is read from the line, in one place, rather than passed by every caller: a line that says WARNING is
 * a warning, a line of one of the few fixed informational messages (info_phrases) is info, everything else that
 * reaches stderr is an error or a refusal.
 * (fopencookie, memmem: _GNU_SOURCE is set for the whole build.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "srv.h"

#define LINE_MAX_BYTES 4096 /* a longer line is cut into lines of this length, each with its prefix */

/* Parts of the messages that report normal operation (start, ready, reload, stop). */
static const char *const info_phrases[] = {
    " listening on ", ": operators' socket ", ": operators' listener on ", ": csc-sam ready: ", ": SIGHUP: reloading ",
    ": reloaded: ", ", shutting down", ": stopping (signal ", ": csc-sam restarted (pid ", ": csc-sam answers again",
    "storage: csc-server writes only ",
};

int srv_log_level(const char *line, size_t len)
{
    if (memmem(line, len, "WARNING", 7) != NULL)
        return 4;
    for (size_t i = 0; i < sizeof(info_phrases) / sizeof(info_phrases[0]); i++)
        if (memmem(line, len, info_phrases[i], strlen(info_phrases[i])) != NULL)
            return 6;
    return 3;
}

/* The line being written (the stream's lock serialises the calls; one stream uses it). */
static char pending[LINE_MAX_BYTES];
static size_t pending_len;

static void emit(void)
{
    char out[LINE_MAX_BYTES + 8];
    int n = snprintf(out, sizeof(out), "<%d>", srv_log_level(pending, pending_len));
    memcpy(out + n, pending, pending_len);
    out[(size_t)n + pending_len] = '\n';
    size_t total = (size_t)n + pending_len + 1, done = 0;
    while (done < total) { /* one write per line: lines of several threads never mix */
        ssize_t w = write(STDERR_FILENO, out + done, total - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* the journal is gone: nowhere to say so */
        done += (size_t)w;
    }
    pending_len = 0;
}

static ssize_t journal_write(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    for (size_t i = 0; i < size; i++) {
        if (buf[i] == '\n') {
            emit();
            continue;
        }
        if (pending_len == sizeof(pending))
            emit();
        pending[pending_len++] = buf[i];
    }
    return (ssize_t)size;
}

static void journal_flush_at_exit(void)
{
    fflush(stderr);
    if (pending_len > 0)
        emit(); /* a last message without its newline */
}

int srv_log_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char end;
    struct stat st;

    if (js == NULL || sscanf(js, "%llu:%llu%c", &dev, &ino, &end) != 2 || fstat(STDERR_FILENO, &st) != 0 ||
        (unsigned long long)st.st_dev != dev || (unsigned long long)st.st_ino != ino)
        return 0;
    FILE *f = fopencookie(NULL, "w", (cookie_io_functions_t){.write = journal_write});
    if (f == NULL)
        return -1;
    setvbuf(f, NULL, _IONBF, 0); /* every call reaches journal_write at once; it keeps the partial line */
    fflush(stderr);
    stderr = f;
    atexit(journal_flush_at_exit);
    return 1;
}
