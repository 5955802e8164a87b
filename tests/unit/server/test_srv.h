/* The test cases of test_srv beyond the configuration parser (test_config.c holds main). */
#ifndef TEST_SRV_H
#define TEST_SRV_H
#include <check.h>

TCase *srv_thread_tcase(void); /* test_thread.c: the periodic tasks */

#endif
