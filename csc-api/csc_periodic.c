/*
 * csc_periodic.c - the service's periodic work (the audit heads are csc-sam's: sam/sam_audit_head.c), one run at a time;
 * csc-server's periodic tasks (server/srv_thread.c) call these, this file starts no thread.
 *
 * Purge: expired access/refresh tokens, SADs, authorization codes and operator sessions are deleted from LMDB
 * (stor_purge_expired). They are refused once expired anyway (every check compares expires_at); this keeps the
 * database from growing with dead records.
 *
 * CRL refresh: the CRL folder is looked at again (pki_crl_reload); when something changed, the revocations it
 * lists end their credentials (csc_crl_sweep, J7).
 */
#include <stdio.h>
#include <time.h>

#include "csc_int.h"

int csc_purge_once(csc_t *c)
{
    int n = stor_purge_expired(c->stor, (int64_t)time(NULL));

    if (n < 0 && n != STOR_ERR_CLOSED) {
        fprintf(stderr, "csc-server: purging expired records failed: %s\n", stor_strerror(n));
        return -1;
    }
    return 0;
}

int csc_crl_refresh(csc_t *c)
{
    int rc;

    if (c->crl == NULL)
        return 0;
    rc = pki_crl_reload(c->crl); /* says on stderr what it could not read; the CRLs loaded before stay in force */
    if (rc == PKI_ERR_NOMEM)
        fprintf(stderr, "crl: %s: out of memory; the CRLs loaded before stay in force\n", c->cfg.crl_dir);
    if (rc == 1)
        (void)csc_crl_sweep(c);
    return rc < 0 ? -1 : 0;
}
