/* test_main.c - runner of the oauth unit tests. */
#include <stdlib.h>

#include "test_oauth.h"

int main(void)
{
    SRunner *sr = srunner_create(suite_secret());
    int failed;

    srunner_add_suite(sr, suite_totp());
    srunner_add_suite(sr, suite_expr());
    srunner_add_suite(sr, suite_token());
    srunner_add_suite(sr, suite_sad());
    srunner_add_suite(sr, suite_client());
    srunner_add_suite(sr, suite_session());
    srunner_add_suite(sr, suite_consent());
    srunner_add_suite(sr, suite_grant());
    srunner_add_suite(sr, suite_challenge());
    srunner_add_suite(sr, suite_approval());
    srunner_add_suite(sr, suite_req_codec());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
