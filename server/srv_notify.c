/*
 * srv_notify.c - sd_notify(3) for csc-server and csc-sam under systemd (contrib/systemd/, Type=notify).
 *
 * systemd starts the next unit (csc-server after csc-sam) only once a process says READY=1, so each says it only
 * when it serves: csc-server once its listeners accept (srv_http.c), csc-sam once its socket accepts with the token
 * logged in (srv_sam.c). STOPPING=1 when a stop signal came and the process drains; STATUS= lines show in
 * `systemctl status`. With WatchdogSec= the process sends WATCHDOG=1 at half of WATCHDOG_USEC from the code whose
 * stall it stands for (csc-server: its event loops, all of them; csc-sam: its main thread), and systemd kills and
 * restarts a process that stops sending.
 *
 * A message is a datagram on a new AF_UNIX socket to NOTIFY_SOCKET (libsystemd opens one per call): csc-server's
 * seccomp filter allows Unix sockets already; csc-sam's allows that one kind of socket when it notifies
 * (srv_priv_notify). A failed send is not an error of the service: a missed READY=1 shows as a start timeout, a
 * missed WATCHDOG=1 as a restart, both in the journal.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include "srv_notify.h"

#define STATUS_MAX 256

static int enabled;
static unsigned watchdog_ms;

void srv_notify_init(const char *who, int use)
{
    uint64_t usec = 0;
    const char *sock = getenv("NOTIFY_SOCKET");
    enabled = use && sock != NULL && sock[0] != '\0';
    watchdog_ms = 0;
    /* sd_watchdog_enabled: WATCHDOG_USEC, when WATCHDOG_PID is unset or names this process. */
    if (enabled && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uint64_t half = usec / 2000;
        watchdog_ms = half == 0 ? 1 : half > UINT32_MAX ? UINT32_MAX : (unsigned)half;
    }
    if (enabled)
        fprintf(stderr, "%s: systemd notifications on (watchdog %s%u ms)\n", who, watchdog_ms ? "every " : "off",
                watchdog_ms);
}

int srv_notify_enabled(void)
{
    return enabled;
}

/* head (READY=1, STOPPING=1 or "") then STATUS= the formatted text on one line. */
static void send_status(const char *head, const char *fmt, va_list ap)
{
    char status[STATUS_MAX], msg[STATUS_MAX + 32];
    if (!enabled)
        return;
    vsnprintf(status, sizeof(status), fmt, ap);
    for (char *p = status; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    snprintf(msg, sizeof(msg), "%sSTATUS=%s", head, status);
    (void)sd_notify(0, msg);
}

void srv_notify_ready(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_status("READY=1\n", fmt, ap);
    va_end(ap);
}

void srv_notify_status(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_status("", fmt, ap);
    va_end(ap);
}

void srv_notify_stopping(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_status("STOPPING=1\n", fmt, ap);
    va_end(ap);
}

unsigned srv_notify_watchdog_ms(void)
{
    return watchdog_ms;
}

void srv_notify_watchdog(void)
{
    if (enabled && watchdog_ms != 0)
        (void)sd_notify(0, "WATCHDOG=1");
}
