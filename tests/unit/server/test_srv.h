/* The test cases of test_srv beyond the configuration parser (test_config.c holds main). */
#ifndef TEST_SRV_H
#define TEST_SRV_H
#include <check.h>

TCase *srv_thread_tcase(void); /* test_thread.c: the periodic tasks */
TCase *srv_metrics_tcase(void); /* test_metrics.c: the Prometheus text writer and the request counters */
TCase *srv_log_tcase(void);     /* test_log.c: stderr with the journal's levels */
TCase *srv_conns_tcase(void);   /* test_conns.c: the counts of the connection caps */

#endif
