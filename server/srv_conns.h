/*
 * srv_conns.h - the open connections of csc-server's public listener, in all and per client address: what the
 * connection caps (max_connections, max_connections_per_address; srv_http.c) count. No h2o here: tested on its own
 * (tests/unit/server). Any thread: one lock inside.
 */
#ifndef SRV_CONNS_H
#define SRV_CONNS_H

/* An address is 16 bytes: IPv6, or IPv4 mapped (::ffff:a.b.c.d). */
#define SRV_CONNS_ADDR 16

typedef struct srv_conns srv_conns_t;

/* A table for at most max_total connections, max_per_address (<= max_total) from one address. 0, or -1 (out of
 * memory, or no random bytes for the table's hash). */
int srv_conns_new(unsigned max_total, unsigned max_per_address, srv_conns_t **out);
/* Count a new connection from addr: SRV_REFUSED_N (srv_metrics.h) when it may stay, else the cap it is over
 * (SRV_REFUSED_TOTAL, SRV_REFUSED_PER_ADDRESS), and nothing is counted. */
unsigned srv_conns_enter(srv_conns_t *t, const unsigned char addr[SRV_CONNS_ADDR]);
/* A connection counted by srv_conns_enter closed. An address with none counted is ignored. */
void srv_conns_leave(srv_conns_t *t, const unsigned char addr[SRV_CONNS_ADDR]);
/* Open connections from addr, and in all. */
unsigned srv_conns_of(srv_conns_t *t, const unsigned char addr[SRV_CONNS_ADDR]);
unsigned srv_conns_open(srv_conns_t *t);
/* NULL is fine. */
void srv_conns_free(srv_conns_t *t);

#endif
