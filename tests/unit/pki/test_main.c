/* test_main.c - runs every suite of the pki unit tests. */
#include <stdlib.h>
#include "test_pki.h"

int main(void)
{
    SRunner *sr = srunner_create(pki_cms_suite());
    srunner_add_suite(sr, pki_crl_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
