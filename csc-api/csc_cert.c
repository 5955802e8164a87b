/*
 * csc_cert.c - a credential's certificate as the service sees it: its validity, its revocation status from the
 * CRL store (pki/pki_crl.c) for credentials/info, csc-sam's refusal of a signature for it in the spec's words
 * (J9: csc-sam alone checks, decides and audits it before anything is spent; the sweep that ends credentials whose
 * certificate a CRL lists as revoked, J7, is csc-sam's: sam/sam_crl_sweep.c), and a certificate from the configured
 * CA for a new key (pki_issue_cert).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/x509.h>
#include "csc_int.h"

/* The certificate's validity period: the one kept with the record, else read from the certificate (a record
 * written before it was kept). -1: the certificate cannot be read. */
static int cert_validity(const stor_cred_t *cred, int64_t *nb, int64_t *na)
{
    *nb = cred->cert_not_before;
    *na = cred->cert_not_after;
    if (*na != 0)
        return 0;
    const unsigned char *p = cred->certs;
    X509 *ee = cred->certs_len > 0 ? d2i_X509(NULL, &p, cred->certs_len) : NULL;
    int ok = ee != NULL && pki_cert_validity(ee, nb, na) == 0;
    X509_free(ee);
    return ok ? 0 : -1;
}

const char *csc_cred_cert_status(const stor_cred_t *cred, time_t now)
{
    int64_t nb, na;
    if (cert_validity(cred, &nb, &na) != 0)
        return "expired";
    return (int64_t)now < nb || (int64_t)now > na ? "expired" : "valid";
}

int csc_cred_cert_not_yet_valid(const stor_cred_t *cred, time_t now)
{
    int64_t nb, na;
    return cert_validity(cred, &nb, &na) == 0 && (int64_t)now < nb;
}

/* ---- the service's view ----------------------------------------------------------- */

void csc_cred_o_cn(const stor_cred_t *cred, char *o, size_t o_sz, char *cn, size_t cn_sz)
{
    const unsigned char *p = cred->certs;
    X509 *ee = d2i_X509(NULL, &p, cred->certs_len);

    o[0] = cn[0] = '\0';
    if (ee != NULL) {
        X509_NAME *s = X509_get_subject_name(ee);
        X509_NAME_get_text_by_NID(s, NID_organizationName, o, (int)o_sz);
        X509_NAME_get_text_by_NID(s, NID_commonName, cn, (int)cn_sz);
        X509_free(ee);
    }
}

int csc_cert_check_revocation(csc_t *c, const stor_cred_t *cred, time_t now, const char **why)
{
    *why = "";
    if (c->crl == NULL)
        return PKI_REV_GOOD;
    X509 *ee = pki_x509_cache_get(c->certs, cred->certs, cred->certs_len); /* parsed once per certificate */
    if (ee == NULL) {
        *why = "the certificate cannot be read";
        return PKI_REV_UNKNOWN;
    }
    int rc = pki_crl_check(c->crl, ee, now, why);
    X509_free(ee);
    return rc;
}

int csc_refuse_cert_status(csc_req_t *r, const stor_cred_t *cred, uint32_t refusal)
{
    if (refusal != SAM_REFUSE_REVOKED && refusal != SAM_REFUSE_SUSPENDED && refusal != SAM_REFUSE_CERT_UNKNOWN)
        return 0;
    char o[100] = "", cn[100] = ""; /* with the text, within desc_buf */
    csc_cred_o_cn(cred, o, sizeof(o), cn, sizeof(cn));
    if (refusal == SAM_REFUSE_CERT_UNKNOWN)
        snprintf(r->desc_buf, sizeof(r->desc_buf),
                 "The revocation status of signing certificate 'O=%s,CN=%s' cannot be confirmed.", o, cn);
    else
        snprintf(r->desc_buf, sizeof(r->desc_buf), "Signing certificate 'O=%s,CN=%s' is %s.", o, cn,
                 refusal == SAM_REFUSE_REVOKED ? "revoked" : "suspended");
    return csc_bad(r, r->desc_buf);
}

const char *csc_cred_cert_status_now(csc_t *c, const stor_cred_t *cred, time_t now, bool *usable)
{
    const char *st = csc_cred_cert_status(cred, now), *why;
    *usable = cred->status == STOR_CRED_ENABLED && strcmp(st, "valid") == 0;
    if (strcmp(st, "valid") != 0 || c->crl == NULL)
        return st;
    int rev = csc_cert_check_revocation(c, cred, now, &why);
    if (rev != PKI_REV_GOOD)
        *usable = false;
    return rev == PKI_REV_REVOKED ? "revoked" : rev == PKI_REV_SUSPENDED ? "suspended" : st;
}

