/* test_sam_main.c - runs the unit tests of sam/. */
#include <stdlib.h>

#include "test_sam.h"

int main(void)
{
    Suite *s = suite_create("sam");
    suite_add_tcase(s, sam_codec_tcase());
    suite_add_tcase(s, sam_io_tcase());
    suite_add_tcase(s, sam_server_tcase());
    suite_add_tcase(s, sam_sender_tcase());
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
