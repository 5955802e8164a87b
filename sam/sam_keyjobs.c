/*
 * sam_keyjobs.c - csc-sam destroys the keys of credentials whose certificates a CRL revoked (J7), at once and
 * unasked: csc-server's CRL sweep marks such a credential destroyed and files its key's destruction as a job
 * (csc-api/csc_cert.c); csc-sam's key-jobs task (server/srv_sam.c) runs every job here through storage's one core
 * (stor_key_jobs_run, shared with `csc-admin credential destroy-pending`, the manual fallback), audited as
 * "operator=csc-sam". Requests that wait for a second operator (two_person names revoke or destroy) are not run.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sam_server.h"

struct sam_key_jobs {
    stor_env_t *stor;
    hsm_t *hsm;
    int failing;               /* the last run had failures: said once, until a run succeeds */
};

int sam_key_jobs_new(stor_env_t *stor, hsm_t *hsm, sam_key_jobs_t **out)
{
    sam_key_jobs_t *k = calloc(1, sizeof(*k));
    *out = k;
    if (k == NULL)
        return -1;
    k->stor = stor;
    k->hsm = hsm;
    return 0;
}

void sam_key_jobs_free(sam_key_jobs_t *k)
{
    free(k);
}

/* The HSM's side: a key already gone is destroyed. */
static int destroy_one(void *hsm, const uint8_t *key_id, size_t len)
{
    int rc = hsm_destroy(hsm, key_id, len);
    return rc == HSM_ERR_NOKEY ? HSM_OK : rc;
}

static void report(void *arg, const stor_key_job_t *j, int outcome, int code)
{
    const sam_key_jobs_t *k = arg;
    if (outcome == STOR_KEY_JOB_DONE)
        fprintf(stderr, "csc-sam: credential %s: key destroyed (job %s, certificate revoked)\n", j->cred, j->id);
    else if (outcome != STOR_KEY_JOB_WAITING && !k->failing)
        fprintf(stderr, "csc-sam: credential %s: its key could not be destroyed yet (%s); job %s stays, tried again "
                        "every second (csc-admin credential destroy-pending does it by hand)\n", j->cred,
                outcome == STOR_KEY_JOB_KEY ? hsm_strerror(code) : stor_strerror(code), j->id);
}

int sam_key_jobs_once(sam_key_jobs_t *k)
{
    stor_key_jobs_t how = {.actor = "csc-sam", .client = "csc-sam", .roles = STOR_ROLES_ALL, .hold = 0,
                           .destroy = destroy_one, .arg = k->hsm, .report = report, .report_arg = k};
    stor_key_jobs_count_t n;
    int rc = stor_key_jobs_run(k->stor, &how, &n);
    if (rc != STOR_OK && !k->failing)
        fprintf(stderr, "csc-sam: cannot read the pending key destructions: %s\n", stor_strerror(rc));
    k->failing = rc != STOR_OK || n.failed > 0;
    return k->failing ? -1 : 0;
}
