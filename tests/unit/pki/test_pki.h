/* test_pki.h - the suites of the pki unit tests (one program, test_pki). */
#ifndef TEST_PKI_H
#define TEST_PKI_H
#include <check.h>

Suite *pki_cms_suite(void); /* test_cms.c: DER writer, CMS SignedData */
Suite *pki_crl_suite(void); /* test_crl.c: CRL store, certificate checks */

#endif
