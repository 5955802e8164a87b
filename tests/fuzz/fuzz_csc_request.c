/*
 * fuzz_csc_request.c - libFuzzer target of each CSC method's request validation, through the service's entry point
 * csc_handle() in-process, as the unit tests of csc-api run it (tests/unit/fixture: SoftHSM, a temporary LMDB, a
 * csc-sam server in the same process, the provisioned user CFX_USER and her credentials), through the fixture's
 * calls that do not need Check (cfx_start, cfx_handle, cfx_login_token).
 *
 * Input: byte 0 chooses the method (and v2 or v1 path), the rest is the JSON body of a POST with the user's valid
 * bearer token, so that the body reaches the method's own checks. Every reply must be a complete one: a status of
 * 200 to 599, never 500 (an input the code did not expect), and a JSON object body, with "error" and
 * "error_description" when it is an error (csc.h).
 *
 * The service is set up once per process (its template in a directory of its own under $TMPDIR, removed at exit) and
 * keeps its state from input to input, as a server does: wrong PINs count towards the user's lockout, and the access
 * token expires after access_ttl (an hour), after which every method answers 401. An input's outcome can so depend on
 * the ones before it; the properties above hold either way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "csc_fixture.h"
#include "fuzz.h"

static const char *const paths[] = {
    "/csc/v2/info", "/csc/v2/auth/login", "/csc/v2/auth/revoke", "/csc/v2/credentials/list",
    "/csc/v2/credentials/info", "/csc/v2/credentials/authorize", "/csc/v2/credentials/extendTransaction",
    "/csc/v2/signatures/signHash", "/csc/v2/credentials/authorizeCheck", "/csc/v2/credentials/getChallenge",
    "/csc/v2/signatures/signDoc", "/csc/v2/signatures/timestamp", "/csc/v2/signatures/signPolling",
    "/csc/v1/credentials/list", "/csc/v1/credentials/info", "/csc/v1/credentials/authorize",
    "/csc/v1/signatures/signHash", "/csc/v1/credentials/sendOTP",
};

static cfx_t fx;
static char auth[600];
static int ready;

static void teardown(void)
{
    cfx_close(&fx);
    cfx_world_free();
}

static void setup(void)
{
    char why[600];
    if (cfx_world_make() != 0)
        abort();
    if (cfx_start(&fx, NULL, why, sizeof(why)) != 0) {
        fprintf(stderr, "fuzz_csc_request: %s\n", why);
        abort();
    }
    char *tok = cfx_login_token(&fx);
    if (tok == NULL)
        abort();
    snprintf(auth, sizeof(auth), "Bearer %s", tok);
    free(tok);
    atexit(teardown);
    ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready)
        setup();
    if (size == 0)
        return 0;
    /* The body as its own block of exactly its size (ASan sees a read past it), "" when empty. */
    char *body = malloc(size);
    if (body == NULL)
        abort();
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    cfx_req_t q = {.path = paths[data[0] % (sizeof(paths) / sizeof(paths[0]))], .authorization = auth,
                   .content_type = "application/json", .body = body, .body_len = size - 1};
    cfx_reply_t x;
    int bad = cfx_handle(&fx, &q, &x) != 0 || x.r.status < 200 || x.r.status > 599 || x.r.status == 500 || x.json == NULL || !YAJL_IS_OBJECT(x.json);
    if (!bad && x.r.status >= 400) {
        const char *path_err[] = {"error", NULL}, *path_desc[] = {"error_description", NULL};
        bad = !YAJL_IS_STRING(yajl_tree_get(x.json, path_err, yajl_t_string)) ||
              !YAJL_IS_STRING(yajl_tree_get(x.json, path_desc, yajl_t_string));
    }
    if (bad) {
        fprintf(stderr, "fuzz_csc_request: %s answered %d: %s\n", q.path, x.r.status, x.text);
        abort();
    }
    cfx_reply_free(&x);
    free(body);
    return 0;
}
