/*
 * bench_raw.c - the physical limit: raw PKCS#11 signatures per second.
 *
 * Each thread opens its own session and signs a fixed digest with C_SignInit
 * + C_Sign in a loop (CKM_RSA_PKCS over a SHA-256 DigestInfo, or CKM_ECDSA over
 * the digest), with the key handle looked up once. Nothing else: no HTTP, no
 * storage, no encoding. bench/run compares csc-server's end-to-end signHash
 * throughput with this number, measured in the same run.
 *
 * usage: bench_raw MODULE TOKEN_LABEL PIN_FILE KEY_LABEL rsa|ec THREADS SECONDS
 * prints: signatures per second (a single number)
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR p11;
static CK_SLOT_ID slot;
static CK_OBJECT_HANDLE key;
static int is_rsa;
static double seconds;

typedef struct {
    unsigned long count;
    int failed;
} result_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
    result_t *res = arg;
    CK_SESSION_HANDLE s;
    /* DigestInfo(SHA-256) prefix + a fixed digest */
    static const unsigned char prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                           0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    unsigned char in[sizeof(prefix) + 32], sig[1024];
    memcpy(in, prefix, sizeof(prefix));
    memset(in + sizeof(prefix), 0x5a, 32);
    CK_MECHANISM mech = {is_rsa ? CKM_RSA_PKCS : CKM_ECDSA, NULL, 0};
    unsigned char *data = is_rsa ? in : in + sizeof(prefix);
    CK_ULONG dlen = is_rsa ? sizeof(in) : 32;

    if (p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) {
        res->failed = 1;
        return NULL;
    }
    double end = now() + seconds;
    while (now() < end) {
        CK_ULONG slen = sizeof(sig);
        if (p11->C_SignInit(s, &mech, key) != CKR_OK || p11->C_Sign(s, data, dlen, sig, &slen) != CKR_OK) {
            res->failed = 1;
            break;
        }
        res->count++;
    }
    p11->C_CloseSession(s);
    return NULL;
}

static int find_slot(const char *label)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    if (p11->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return -1;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        char padded[32];
        memset(padded, ' ', sizeof(padded));
        memcpy(padded, label, strlen(label) < 32 ? strlen(label) : 32);
        if (p11->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, padded, 32) == 0) {
            slot = slots[i];
            return 0;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: bench_raw MODULE TOKEN_LABEL PIN_FILE KEY_LABEL rsa|ec THREADS SECONDS\n");
        return 2;
    }
    is_rsa = strcmp(argv[5], "rsa") == 0;
    int threads = atoi(argv[6]);
    seconds = atof(argv[7]);
    if (threads < 1 || threads > 64 || seconds <= 0)
        return 2;

    void *lib = dlopen(argv[1], RTLD_NOW);
    CK_C_GetFunctionList gfl = lib ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
    if (gfl == NULL || gfl(&p11) != CKR_OK) {
        fprintf(stderr, "bench_raw: cannot load %s\n", argv[1]);
        return 1;
    }
    CK_C_INITIALIZE_ARGS init = {.flags = CKF_OS_LOCKING_OK};
    char pin[256] = "";
    FILE *f = fopen(argv[3], "r");
    if (f == NULL || fgets(pin, sizeof(pin), f) == NULL) {
        fprintf(stderr, "bench_raw: cannot read %s\n", argv[3]);
        return 1;
    }
    fclose(f);
    pin[strcspn(pin, "\r\n")] = '\0';
    CK_SESSION_HANDLE s;
    if (p11->C_Initialize(&init) != CKR_OK || find_slot(argv[2]) != 0 ||
        p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK ||
        p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)) != CKR_OK) {
        fprintf(stderr, "bench_raw: cannot open token %s\n", argv[2]);
        return 1;
    }
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, argv[4], strlen(argv[4])}};
    CK_ULONG found = 0;
    if (p11->C_FindObjectsInit(s, tmpl, 2) != CKR_OK || p11->C_FindObjects(s, &key, 1, &found) != CKR_OK ||
        found != 1) {
        fprintf(stderr, "bench_raw: no private key labelled %s\n", argv[4]);
        return 1;
    }
    p11->C_FindObjectsFinal(s);

    pthread_t tid[64];
    result_t res[64];
    memset(res, 0, sizeof(res));
    double t0 = now();
    for (int i = 0; i < threads; i++)
        pthread_create(&tid[i], NULL, worker, &res[i]);
    unsigned long total = 0;
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        total += res[i].count;
        failed |= res[i].failed;
    }
    double elapsed = now() - t0;
    p11->C_Logout(s);
    p11->C_CloseSession(s);
    p11->C_Finalize(NULL);
    if (failed) {
        fprintf(stderr, "bench_raw: a signing call failed\n");
        return 1;
    }
    printf("%.0f\n", (double)total / elapsed);
    return 0;
}
