/* srv_modules.c - open the lower modules from a configuration for csc-server and csc-sam: storage and oauth/
 * (srv_base.c), the service (csc-server). No HSM here: csc-sam opens it through srv_hsm.c, which csc-server does not
 * link; csc-admin opens only storage and oauth/ (srv_modules_open_store). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "srv.h"

/* Whether two_person names one of names (NULL-terminated). */
static int two_person_names(const char *two_person, const char *const *names)
{
    char buf[SRV_STR];
    snprintf(buf, sizeof(buf), "%s", two_person);
    for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok != NULL; tok = strtok_r(NULL, ", \t", &save))
        for (const char *const *n = names; *n != NULL; n++)
            if (strcmp(tok, *n) == 0)
                return 1;
    return 0;
}

int srv_two_person_destroys(const char *two_person)
{
    static const char *const names[] = {"revoke", "credential.revoke", "destroy", "credential.destroy", NULL};
    return two_person_names(two_person, names);
}

/* Whether two_person names credential restore (what /account tells the user). */
int srv_two_person_restores(const char *two_person)
{
    static const char *const names[] = {"restore", "credential.restore", NULL};
    return two_person_names(two_person, names);
}

/*
 * J9/J13: what a production csc-server refuses to start with, whatever allow_test_components says: no CRLs, or
 * certificates whose issuer has no CRL signing unchecked. The policy overrides for credentials are named at
 * start-up. (csc-admin enforces them when it creates credentials; csc-server when they are authorized and sign.)
 */
static int production_policy(const srv_config_t *cfg)
{
    if (cfg->environment != CSC_ENV_PRODUCTION)
        return 0;
    if (cfg->crl_dir[0] == '\0') {
        fprintf(stderr, "%s: crl_dir: required in production (every signature is checked against the CRLs, J9)\n",
                cfg->file);
        return -1;
    }
    if (!cfg->crl_require) {
        fprintf(stderr, "%s: crl_require: must be yes in production (otherwise a certificate whose issuer has no CRL "
                        "signs unchecked)\n", cfg->file);
        return -1;
    }
    if (cfg->allow_scal1)
        fprintf(stderr, "WARNING: production environment accepting SCAL 1 credentials (allow_scal1 = yes)\n");
    if (cfg->allow_single_factor)
        fprintf(stderr, "WARNING: production environment accepting single-factor credentials (allow_single_factor = "
                        "yes)\n");
    if (cfg->allow_builtin_ca && cfg->ca_key[0] != '\0')
        fprintf(stderr, "WARNING: production environment with a CA key in a file as certificate issuer "
                        "(allow_builtin_ca = yes)\n");
    return 0;
}

int srv_modules_open(const srv_config_t *cfg, int need, sam_client_t *sam, srv_modules_t *m)
{
    memset(m, 0, sizeof(*m));
    if ((need & SRV_NEED_CSC) && production_policy(cfg) != 0)
        return -1;
    if (srv_modules_open_base(cfg, need, m) != 0)
        return -1;
    m->sam = sam;
    if (srv_production_checks(cfg) != 0)
        goto fail;
    if (need & SRV_NEED_CSC) {
        csc_config_t cc = {
            .name = cfg->info_name,
            .logo = cfg->info_logo,
            .logo_file = cfg->info_logo_file,
            .region = cfg->info_region,
            .lang = cfg->info_lang,
            .description = cfg->info_description,
            .specs = cfg->info_specs,
            .public_url = cfg->public_url,
            .totp_issuer = cfg->totp_issuer,
            .default_lang = cfg->default_lang,
            .read_cache_ms = cfg->read_cache_ms,
            .environment = (csc_env_t)cfg->environment,
            .max_body = cfg->max_body,
            .max_hashes = cfg->max_hashes,
            .max_depth = cfg->max_json_depth,
            .tsa_credential = cfg->tsa_credential,
            .tsa_policy = cfg->tsa_policy,
            .tsa_accuracy_ms = cfg->tsa_accuracy_ms,
            .trust_anchors = cfg->trust_anchors,
            .crl_dir = cfg->crl_dir,
            .crl_allow_stale = (int)cfg->crl_allow_stale,
            .crl_require = (int)cfg->crl_require,
            .restore_two_person = srv_two_person_restores(cfg->two_person),
            .restore_request_ttl = cfg->restore_request_ttl,
            .allow_scal1 = (int)cfg->allow_scal1,
            .allow_single_factor = (int)cfg->allow_single_factor,
            .otp_sender = cfg->otp_sender,
            .otp_sender_timeout = cfg->otp_sender_timeout,
            .node_id = cfg->node_id,
            .async_workers = cfg->async_workers,
            .async_queue = cfg->async_queue,
            .async_validity_min = cfg->async_validity_min,
            .async_validity_default = cfg->async_validity_default,
            .async_validity_max = cfg->async_validity_max,
            .notify_timeout = cfg->notify_timeout,
            .notify_threads = cfg->notify_threads,
            .notify_queue = cfg->notify_queue,
            .notify_allow = cfg->notify_allow,
            .oauth_revoke_status = cfg->oauth_revoke_status,
        };
        if (csc_new(&cc, m->stor, m->oauth, m->sam, &m->csc) != 0)
            goto fail;
    }
    return 0;
fail:
    srv_modules_close(m);
    return -1;
}

void srv_modules_close(srv_modules_t *m)
{
    csc_free(m->csc);
    m->csc = NULL;
    srv_modules_close_store(m); /* m->hsm is srv_modules_close_hsm's (srv_hsm.c) */
}
