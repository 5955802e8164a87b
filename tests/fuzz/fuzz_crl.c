/*
 * fuzz_crl.c - libFuzzer target of the CRL store's parser (pki/pki_crl.c): the input is the content of a file of
 * crl_dir, PEM or DER, given to pki_crl_parse() as the store gives it each file it reads (csc-server's and csc-sam's
 * crl_dir), verified against a fixed trust anchor (CA below), then asked about a certificate that CA issued (EE,
 * serial 0x1234) by pki_crl_status(), what pki_crl_check() answers with the CRL it found for EE's issuer.
 *
 * A CRL that is accepted was signed by the one anchor, so names it as issuer; it answers one of PKI_REV_*, with a
 * reason for anything but good (allow_stale on), and the same or PKI_REV_UNKNOWN with a reason when a stale CRL does
 * not count (allow_stale off). Else the parsing and the verification must not crash or leak.
 * The seeds (corpus/crl/: an empty CRL and one revoking EE, PEM and DER, and near misses) were signed with this CA's
 * key, which was not kept: the target needs only its certificate. New seeds of a verifying CRL need a new CA and EE
 * here (openssl ecparam -genkey, req -x509, x509 -req -set_serial 4660, ca -revoke / -gencrl).
 *
 * Nothing is read or written: the anchors are parsed from memory once (pki_crl_parse_anchors, the code that reads
 * trust_anchors), the input each time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

static STACK_OF(X509) *anchors;
static X509 *ee;

static void teardown(void)
{
    X509_free(ee);
    sk_X509_pop_free(anchors, X509_free);
}

static void setup(void)
{
    BIO *b = BIO_new_mem_buf(EE, -1);
    ee = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (ee == NULL || pki_crl_parse_anchors((const uint8_t *)CA, strlen(CA), &anchors) != PKI_OK)
        abort();
    atexit(teardown);
}

static int answer(int rev, const char *why)
{
    return rev >= PKI_REV_GOOD && rev <= PKI_REV_UNKNOWN && why != NULL && (rev == PKI_REV_GOOD) == (why[0] == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ee == NULL)
        setup();
    X509_CRL *crl = pki_crl_parse(anchors, data, size, "fuzz.crl");
    if (crl == NULL)
        return 0;
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(sk_X509_value(anchors, 0))) != 0)
        abort();
    const char *why = NULL, *why_fresh = NULL;
    time_t now = time(NULL);
    int rev = pki_crl_status(crl, ee, now, 1, &why), fresh = pki_crl_status(crl, ee, now, 0, &why_fresh);
    if (!answer(rev, why) || !answer(fresh, why_fresh) || (fresh != rev && fresh != PKI_REV_UNKNOWN))
        abort();
    X509_CRL_free(crl);
    return 0;
}
