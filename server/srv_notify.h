/* srv_notify.h - telling systemd how csc-server and csc-sam are doing (Type=notify, sd_notify(3)): srv_notify.c, the
 * only code that links libsystemd. Its own header, as srv_priv.h: csc-server and csc-sam include it, nothing below
 * server/ does. contrib/systemd/README.md. */
#ifndef SRV_NOTIFY_H
#define SRV_NOTIFY_H

/* Once, in main, before any thread starts: use 1 when this process is the one systemd started (NOTIFY_SOCKET, and
 * WATCHDOG_USEC/WATCHDOG_PID naming this process, read here), 0 when it is not (a csc-sam that csc-server spawned or
 * csc-admin started: the notifications are csc-server's, and systemd would refuse another process's anyway). Without
 * NOTIFY_SOCKET (a terminal, the tests) every call below does nothing. who prefixes the one log line. */
void srv_notify_init(const char *who, int use);

/* 1 when notifications go to systemd (srv_notify_init found NOTIFY_SOCKET), else 0. */
int srv_notify_enabled(void);

/* READY=1 with a STATUS= line (printf-style; one line, control characters become spaces). */
void srv_notify_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* STATUS= only. */
void srv_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* STOPPING=1 with a STATUS= line: the process has begun to stop (it drains). */
void srv_notify_stopping(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* How often to send WATCHDOG=1: half of WATCHDOG_USEC, in milliseconds (at least 1); 0 when systemd asked for no
 * watchdog (no WatchdogSec=, or notifications off). */
unsigned srv_notify_watchdog_ms(void);
/* WATCHDOG=1. Thread-safe (each call sends one datagram on a socket of its own). */
void srv_notify_watchdog(void);

#endif
