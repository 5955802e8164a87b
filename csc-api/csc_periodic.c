/*
 * csc_periodic.c - csc-server's periodic work (server/srv_thread.c calls these; this file starts no thread), one run
 * at a time. csc-server writes no periodic record but its own table's: the purge of the other expired records, the
 * CRL sweep (J7) and the audit heads are csc-sam's (server/srv_sam.c, sam/sam_crl_sweep.c, sam/sam_audit_head.c).
 *
 * Purge: expired browser sessions of the pages (web_sessions) and pushed authorization requests (pars) are deleted
 * (stor_purge_websessions, stor_purge_pars). They are refused once expired anyway; this keeps the tables from growing
 * with dead rows. (async_results: the async worker's own
 * purge, csc_async.c.)
 *
 * CRL refresh: the CRL folder is looked at again (pki_crl_reload) for the service's own answers (credentials/info,
 * refusals before csc-sam is asked); csc-sam follows the folder with its own store and ends the credentials.
 */
#include <stdio.h>
#include <time.h>

#include "csc_int.h"

int csc_purge_once(csc_t *c)
{
    int64_t now = (int64_t)time(NULL);
    int n = stor_purge_websessions(c->stor, now), bad = 0;

    if (n < 0 && n != STOR_ERR_CLOSED) {
        fprintf(stderr, "csc-server: purging expired browser sessions failed: %s\n", stor_strerror(n));
        bad = 1;
    }
    n = stor_purge_pars(c->stor, now);
    if (n < 0 && n != STOR_ERR_CLOSED) {
        fprintf(stderr, "csc-server: purging expired pushed authorization requests failed: %s\n", stor_strerror(n));
        bad = 1;
    }
    return bad ? -1 : 0;
}

int csc_crl_refresh(csc_t *c)
{
    int rc;

    if (c->crl == NULL)
        return 0;
    rc = pki_crl_reload(c->crl); /* says on stderr what it could not read; the CRLs loaded before stay in force */
    if (rc == PKI_ERR_NOMEM)
        fprintf(stderr, "crl: %s: out of memory; the CRLs loaded before stay in force\n", c->cfg.crl_dir);
    return rc < 0 ? -1 : 0;
}

int csc_crl_anchors(csc_t *c, const char *anchors_file)
{
    char err[PATH_MAX + 64];

    if (c->crl == NULL)
        return 0;
    int rc = pki_crl_set_anchors(c->crl, anchors_file, err, sizeof(err));
    if (rc == PKI_ERR_ANCHORS || rc == PKI_ERR_NOMEM) {
        fprintf(stderr, "crl: trust_anchors: %s; the anchors loaded before stay in force\n",
                err[0] ? err : pki_strerror(rc));
        return -1;
    }
    return 0; /* PKI_ERR_IO: the folder could not be read now; said, and the next look reads it again */
}
