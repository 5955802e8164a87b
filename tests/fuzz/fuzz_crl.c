/*
 * fuzz_crl.c - libFuzzer target of the CRL store (pki/pki_crl.c) reading a file of crl_dir, PEM or DER: the input is
 * the file's content, loaded by pki_crl_new() as csc-server and csc-sam load their crl_dir, verified against a fixed
 * trust anchor (CA below), then asked about a certificate it issued (EE, serial 0x1234).
 *
 * With no CRL in force the answer must be good (require is off); with one (the input parsed and verified) it is one
 * of PKI_REV_*, with a reason for anything but good. Else the parsing and the verification must not crash or leak.
 * The seeds (corpus/crl/: an empty CRL and one revoking EE, PEM and DER, and near misses) were signed with this CA's
 * key, which was not kept: the target needs only its certificate. New seeds of a verifying CRL need a new CA and EE
 * here (openssl ecparam -genkey, req -x509, x509 -req -set_serial 4660, ca -revoke / -gencrl).
 *
 * The directory (under $TMPDIR) is made once per process and removed at exit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/pem.h>

#include "fuzz.h"
#include "pki.h"

static const char CA[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBjjCCATSgAwIBAgIURZh9SOsutDIoEwdTqu5wfkDEK4UwCgYIKoZIzj0EAwIw\n"
    "JDEUMBIGA1UEAwwLRnV6eiBDUkwgQ0ExDDAKBgNVBAoMA2NzYzAgFw0yNjEyMDYw\n"
    "OTE5MzRaGA8yMTI2MTExMjA5MTkzNFowJDEUMBIGA1UEAwwLRnV6eiBDUkwgQ0Ex\n"
    "DDAKBgNVBAoMA2NzYzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABFU/h8HF7ceM\n"
    "DUSg/zXEEnmj/RECBHI2EoGWixiKe5ktz3fUjiDWCptUv79BTZy1QwFxkRbeUoaV\n"
    "c5226QwA80WjQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMB0G\n"
    "A1UdDgQWBBS+NLA4MGtofQr30aA1hgMouw8bDjAKBggqhkjOPQQDAgNIADBFAiBg\n"
    "CC76OHTj/tsqXoNGZPtxguT7wjOzsyKtut3EAVDyjgIhAKBKPrD6WBn0rT05v1pe\n"
    "vtBG3Qo8YRYpjhcOErk5++5W\n"
    "-----END CERTIFICATE-----\n";

static const char EE[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBQDCB5gICEjQwCgYIKoZIzj0EAwIwJDEUMBIGA1UEAwwLRnV6eiBDUkwgQ0Ex\n"
    "DDAKBgNVBAoMA2NzYzAgFw0yNjEyMDYwOTE5MzRaGA8yMTI2MTExMjA5MTkzNFow\n"
    "MTEUMBIGA1UEAwwLRnV6eiBTaWduZXIxDDAKBgNVBAoMA2NzYzELMAkGA1UEBhMC\n"
    "SlAwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQyP/10J4mLjgHRjkAfbhEHUClp\n"
    "Eravmzm0D22U8dkeG/BKS8jWphfJIQSbsv9aP8+KrTHuMMTwy+EV1t7ofiyLMAoG\n"
    "CCqGSM49BAMCA0kAMEYCIQC4o02Bk7iOempMpQIL6BekvhpTwAmnwhwlInF3rQUW\n"
    "RQIhAMCkuvhBR4NIMOAn2bLS8/J98YWkbG7eoejzG0Ex0tV2\n"
    "-----END CERTIFICATE-----\n";

static char dir[512], crl_dir[600], crl_file[700], anchors[600];
static X509 *ee;

static void teardown(void)
{
    X509_free(ee);
    unlink(crl_file);
    unlink(anchors);
    rmdir(crl_dir);
    rmdir(dir);
}

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/fuzz_crl.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(crl_dir, sizeof(crl_dir), "%s/crl", dir);
    snprintf(crl_file, sizeof(crl_file), "%s/fuzz.crl", crl_dir);
    snprintf(anchors, sizeof(anchors), "%s/anchors.pem", dir);
    BIO *b = BIO_new_mem_buf(EE, -1);
    ee = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (ee == NULL || mkdir(crl_dir, 0700) != 0 || write_file(anchors, CA, strlen(CA)) != 0)
        abort();
    atexit(teardown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ee == NULL)
        setup();
    if (write_file(crl_file, data, size) != 0)
        abort();
    pki_crl_t *c;
    char err[256];
    if (pki_crl_new(crl_dir, anchors, 1, 0, &c, err, sizeof(err)) != PKI_OK) {
        fprintf(stderr, "fuzz_crl: %s\n", err);
        abort();
    }
    const char *why = NULL;
    int rev = pki_crl_check(c, ee, time(NULL), &why);
    size_t n = pki_crl_count(c);
    if (n > 1 || why == NULL || (n == 0 && rev != PKI_REV_GOOD))
        abort();
    if (rev != PKI_REV_GOOD && (rev < 0 || rev > PKI_REV_UNKNOWN || why[0] == '\0'))
        abort();
    pki_crl_free(c);
    return 0;
}
