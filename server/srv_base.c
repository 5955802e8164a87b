/*
 * srv_base.c - what every process uses without the token: storage and oauth/ (srv_modules_open_store), the production
 * checks that need no token, where csc-sam's executable is. In a file of its own so that csc-admin, which uses
 * nothing else of srv_modules.c, links nothing of the token or the service (tests/unit/server/check_symbols).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "srv.h"
#include "srv_self.h"

/* The demo CA made by scripts/provision has O=CSC Demo in its subject; any certificate of the file counts (a
 * trust_anchors file holds several). */
static int is_demo_ca(const char *file)
{
    int demo = 0;
    FILE *f = file[0] ? fopen(file, "r") : NULL;
    X509 *x;
    while (f != NULL && !demo && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        char o[64] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_organizationName, o, sizeof(o));
        demo = strcmp(o, "CSC Demo") == 0;
        X509_free(x);
    }
    ERR_clear_error();
    if (f != NULL)
        fclose(f);
    return demo;
}

/*
 * J13 (and J5): production refuses the test components unless allow_test_components says otherwise: the demo CA
 * here, the SoftHSM module where the HSM is opened (srv_hsm.c). Plain HTTP is refused in srv_config.c.
 */
int srv_production_checks(const srv_config_t *cfg)
{
    if (cfg->environment != CSC_ENV_PRODUCTION)
        return 0;
    if (cfg->allow_test_components) {
        fprintf(stderr, "WARNING: production environment with test components allowed (allow_test_components = yes)\n");
        return 0;
    }
    if (is_demo_ca(cfg->ca_cert)) {
        fprintf(stderr, "%s: ca_cert: the demo CA is refused in production (allow_test_components = yes overrides)\n",
                cfg->file);
        return -1;
    }
    if (is_demo_ca(cfg->trust_anchors)) {
        fprintf(stderr, "%s: trust_anchors: the demo CA is refused in production (allow_test_components = yes "
                        "overrides)\n",
                cfg->file);
        return -1;
    }
    return 0;
}

const srv_storage_t *srv_storage_of(const srv_config_t *cfg, int front)
{
    return front && cfg->front_storage.backend[0] != '\0' ? &cfg->front_storage : &cfg->storage;
}

int srv_modules_open_base(const srv_config_t *cfg, int need, srv_modules_t *m)
{
    memset(m, 0, sizeof(*m));
    /* csc-server (the only process with the CSC service) connects as its own database role when front_storage is
     * given; csc-sam and csc-admin with storage's. */
    const srv_storage_t *st = srv_storage_of(cfg, (need & SRV_NEED_CSC) != 0);
    stor_config_t sc = {.backend = st->backend, .location = st->location,
                        .map_size = cfg->lmdb_map_size, .writer_later = (need & SRV_WRITER_LATER) != 0,
                        .full_log_only = (need & SRV_NEED_CSC) != 0};
    int rc = stor_open(&sc, &m->stor);
    if (rc != STOR_OK) {
        fprintf(stderr, "%s %s:%s: %s\n", st == &cfg->storage ? "storage" : "front_storage", st->backend,
                st->location, stor_strerror(rc));
        goto fail;
    }
    oauth_config_t oc = {
        .stor = m->stor,
        .access_ttl = cfg->access_ttl,
        .refresh_ttl = cfg->refresh_ttl,
        .sad_ttl = cfg->sad_ttl,
        .max_failures = cfg->max_failures,
        .lock_seconds = cfg->lock_seconds,
        .code_ttl = cfg->oauth_code_ttl,
        .par_ttl = cfg->oauth_par_ttl,
        .session_idle = cfg->oauth_session_idle,
        .session_max = cfg->oauth_session_max,
        .credential_token_ttl = cfg->credential_token_ttl,
        .rate_window = cfg->rate_window,
        .rate_max = cfg->rate_max,
        .challenge_ttl = cfg->challenge_ttl,
        .approval_ttl = cfg->approval_ttl,
        .lock_max_seconds = cfg->lock_max_seconds,
        .scrypt_log2n = cfg->scrypt_log2n,
        .fail_window = cfg->audit_fail_window,
        .fail_entries = cfg->audit_fail_entries,
        .verify_max = cfg->password_verify_max,
    };
    if ((rc = oauth_new(&oc, &m->oauth)) != OAUTH_OK) {
        fprintf(stderr, "oauth: %s\n", oauth_strerror(rc));
        goto fail;
    }
    return 0;
fail:
    srv_modules_close_store(m);
    return -1;
}

int srv_modules_open_store(const srv_config_t *cfg, srv_modules_t *m)
{
    if (srv_modules_open_base(cfg, 0, m) != 0)
        return -1;
    if (srv_production_checks(cfg) == 0)
        return 0;
    srv_modules_close_store(m);
    return -1;
}

int srv_front_restrict_writes(srv_modules_t *m)
{
    /* pars: the pushed authorization requests (RFC 9126) are the front end's own, client-authenticated at the push
     * and checked again at use; nothing in them is a factor or a SAD. */
    static const char *const own[] = {"web_sessions", "async_results", "pars"};
    int rc = stor_env_restrict_writes(m->stor, own, sizeof(own) / sizeof(own[0]));

    if (rc != STOR_OK)
        fprintf(stderr, "storage: cannot restrict csc-server's writes: %s\n", stor_strerror(rc));
    else
        fprintf(stderr, "storage: csc-server writes only web_sessions, async_results and pars\n");
    return rc == STOR_OK ? 0 : -1;
}

void srv_modules_close_store(srv_modules_t *m)
{
    oauth_free(m->oauth);
    stor_close(m->stor);
    memset(m, 0, sizeof(*m));
}


int srv_sam_program(const srv_config_t *cfg, const char *who, char *out, size_t sz)
{
    if (cfg->sam_program[0] != '\0') {
        snprintf(out, sz, "%s", cfg->sam_program);
    } else {
        char self[PATH_MAX];
        if (srv_self_path(self, sizeof(self)) < 0) {
            fprintf(stderr, "%s: /proc/self/exe: %s (set sam_program)\n", who, strerror(errno));
            return -1;
        }
        *strrchr(self, '/') = '\0';
        if (snprintf(out, sz, "%s/csc-sam", self) >= (int)sz)
            return -1;
    }
    if (access(out, X_OK) != 0) {
        fprintf(stderr, "%s: sam_program %s: %s\n", who, out, strerror(errno));
        return -1;
    }
    return 0;
}
