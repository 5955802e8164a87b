/* srv_conns.c: the counts of the connection caps against a plain model, on a table small enough that addresses share
 * runs of slots, wrap around its end and are deleted from the middle of a run (the backward shift). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "srv_conns.h"
#include "srv_metrics.h"
#include "test_srv.h"

#define ADDRS 40

static void addr_of(unsigned k, unsigned char a[SRV_CONNS_ADDR])
{
    memset(a, 0, SRV_CONNS_ADDR);
    a[10] = a[11] = 0xff;
    a[12] = 127;
    a[14] = (unsigned char)(k >> 8);
    a[15] = (unsigned char)k;
}

START_TEST(t_caps)
{
    srv_conns_t *t;
    unsigned char a[SRV_CONNS_ADDR], b[SRV_CONNS_ADDR];
    ck_assert_int_eq(srv_conns_new(3, 2, &t), 0);
    addr_of(1, a);
    addr_of(2, b);
    ck_assert_uint_eq(srv_conns_enter(t, a), SRV_REFUSED_N);
    ck_assert_uint_eq(srv_conns_enter(t, a), SRV_REFUSED_N);
    ck_assert_uint_eq(srv_conns_enter(t, a), SRV_REFUSED_PER_ADDRESS); /* counted nothing */
    ck_assert_uint_eq(srv_conns_of(t, a), 2);
    ck_assert_uint_eq(srv_conns_enter(t, b), SRV_REFUSED_N);
    ck_assert_uint_eq(srv_conns_enter(t, b), SRV_REFUSED_TOTAL);
    ck_assert_uint_eq(srv_conns_open(t), 3);
    srv_conns_leave(t, a);
    ck_assert_uint_eq(srv_conns_enter(t, b), SRV_REFUSED_N); /* the place a gave back */
    srv_conns_leave(t, b);
    srv_conns_leave(t, b);
    srv_conns_leave(t, b); /* none left: ignored */
    ck_assert_uint_eq(srv_conns_of(t, b), 0);
    ck_assert_uint_eq(srv_conns_open(t), 1);
    srv_conns_free(t);
    srv_conns_free(NULL);
}
END_TEST

/* Random enters and leaves of ADDRS addresses on a table of 16 slots (max_total 8): after each step every address's
 * count and the total agree with the model. */
START_TEST(t_model)
{
    srv_conns_t *t;
    unsigned model[ADDRS] = {0}, open = 0;
    unsigned char a[SRV_CONNS_ADDR];
    srand(14);
    ck_assert_int_eq(srv_conns_new(8, 3, &t), 0);
    for (int step = 0; step < 20000; step++) {
        unsigned k = (unsigned)rand() % ADDRS;
        addr_of(k, a);
        if (rand() % 2) {
            unsigned want = open >= 8 ? SRV_REFUSED_TOTAL : model[k] >= 3 ? SRV_REFUSED_PER_ADDRESS : SRV_REFUSED_N;
            ck_assert_uint_eq(srv_conns_enter(t, a), want);
            if (want == SRV_REFUSED_N) {
                model[k]++;
                open++;
            }
        } else {
            srv_conns_leave(t, a);
            if (model[k] > 0) {
                model[k]--;
                open--;
            }
        }
        if (step % 5 == 0 || step > 19000)
            for (unsigned j = 0; j < ADDRS; j++) {
                addr_of(j, a);
                ck_assert_uint_eq(srv_conns_of(t, a), model[j]);
            }
        ck_assert_uint_eq(srv_conns_open(t), open);
    }
    srv_conns_free(t);
}
END_TEST

TCase *srv_conns_tcase(void)
{
    TCase *tc = tcase_create("conns");
    tcase_set_timeout(tc, 30); /* the model's steps take about a second in the ASan build of a busy machine */
    tcase_add_test(tc, t_caps);
    tcase_add_test(tc, t_model);
    return tc;
}
