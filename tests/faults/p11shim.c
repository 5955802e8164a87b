/*
 * p11shim.c - a PKCS#11 module that forwards every call to another one and makes every Nth signing call fail
 * with CKR_DEVICE_ERROR: an HSM that errs in the middle of a signature (issue 14, tests/integration/test_hsm_faults.py).
 *
 * CSC_SHIM_MODULE names the module it forwards to (SoftHSM in the tests); CSC_SHIM_FAIL_EVERY=N (N >= 1) makes
 * every Nth call of C_SignInit fail, and every Nth call of C_Sign (each counted on its own: a C_SignInit that fails
 * is followed by no C_Sign, so one count over both would fall on C_SignInit alone with an odd N). The real
 * call is not made when the shim fails one: a C_Sign that fails leaves the real operation active, as a device
 * that broke mid-signature would, and the caller has to recover its session. CSC_SHIM_COUNT, when set, names a
 * file the shim appends a line to for every failure it made ("C_SignInit" or "C_Sign"), so the test knows how
 * many signatures the device refused. Both are read once, when the module is loaded (C_GetFunctionList), before
 * any system-call filter of the process that loads it.
 *
 * Only the version 2.x function list is forwarded: csc-sam's hsm/ calls nothing else.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CK_FUNCTION_LIST shim;
static CK_FUNCTION_LIST_PTR real;
static unsigned long every;
static unsigned long init_calls, sign_calls; /* calls so far (atomic) */
static int count_fd = -1;

/* One signing call: CKR_DEVICE_ERROR when it is an Nth one (and noted), else CKR_OK (forward it). */
static CK_RV fault(unsigned long *calls, const char *what)
{
    unsigned long n = __atomic_add_fetch(calls, 1, __ATOMIC_RELAXED);
    if (every == 0 || n % every != 0)
        return CKR_OK;
    if (count_fd >= 0) {
        char line[32];
        size_t len = strlen(what);
        memcpy(line, what, len);
        line[len++] = '\n';
        (void)!write(count_fd, line, len); /* O_APPEND: one line at a time */
    }
    return CKR_DEVICE_ERROR;
}

static CK_RV shim_sign_init(CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
    CK_RV rv = fault(&init_calls, "C_SignInit");
    return rv != CKR_OK ? rv : real->C_SignInit(s, mech, key);
}

static CK_RV shim_sign(CK_SESSION_HANDLE s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
    CK_RV rv = fault(&sign_calls, "C_Sign");
    return rv != CKR_OK ? rv : real->C_Sign(s, data, len, sig, sig_len);
}

static void load(void)
{
    const char *path = getenv("CSC_SHIM_MODULE"), *n = getenv("CSC_SHIM_FAIL_EVERY"), *cf = getenv("CSC_SHIM_COUNT");
    CK_C_GetFunctionList get;
    void *dl;
    char *end;

    if (path == NULL || n == NULL)
        return;
    every = strtoul(n, &end, 10);
    if (*n == '\0' || *end != '\0' || every == 0)
        return;
    if ((dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL)
        return;
    if ((get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList")) == NULL || get(&real) != CKR_OK || real == NULL) {
        real = NULL;
        return;
    }
    if (cf != NULL && (count_fd = open(cf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
        real = NULL;
        return;
    }
    memcpy(&shim, real, sizeof(shim));
    shim.version.major = 2;
    shim.version.minor = 40;
    shim.C_GetFunctionList = C_GetFunctionList;
    shim.C_SignInit = shim_sign_init;
    shim.C_Sign = shim_sign;
}

/* Missing or bad settings, or a module that cannot be loaded: CKR_GENERAL_ERROR, so the caller refuses to start. */
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    pthread_once(&once, load);
    if (real == NULL)
        return CKR_GENERAL_ERROR;
    *out = &shim;
    return CKR_OK;
}
