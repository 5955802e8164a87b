/* srv_main.c - csc-server: the CSC API v2 remote signing server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "srv.h"
#include "srv_priv.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: csc-server -c CONFIG [-t]\n"
               "  -c CONFIG  configuration file (see docs/configuration.md)\n"
               "  -t         check the configuration and exit\n");
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    int check_only = 0, opt;
    srv_config_t *cfg = calloc(1, sizeof(*cfg));
    srv_modules_t m;

    if (cfg == NULL)
        return 1;
    while ((opt = getopt(argc, argv, "c:th")) != -1) {
        switch (opt) {
        case 'c':
            file = optarg;
            break;
        case 't':
            check_only = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (file == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (srv_config_load(file, cfg) != 0)
        return 1;
    if (check_only) {
        printf("%s: configuration OK\n", file);
        return 0;
    }
    /* No core dumps and no new privileges before the PIN is read and any thread starts (srv_priv.c). */
    if (srv_priv_early() != 0)
        return 1;
    if (srv_modules_open(cfg, SRV_NEED_HSM | SRV_NEED_CSC, &m) != 0)
        return 1;
    /* Signed audit heads (J11): a csc-api thread; stopping it signs the last head after the HTTP side finished. */
    csc_audit_signer_t *signer = NULL;
    if (csc_audit_signer_start(m.stor, m.hsm, cfg->audit_sign_interval, cfg->audit_sign_records, &signer) != 0) {
        fprintf(stderr, "csc-server: cannot start the audit head signer\n");
        srv_modules_close(&m);
        free(cfg);
        return 1;
    }
    /* Expired tokens, SADs, codes and operator sessions leave the database (they are refused anyway). */
    csc_purger_t *purger = NULL;
    if (csc_purger_start(m.stor, cfg->purge_interval, &purger) != 0) {
        fprintf(stderr, "csc-server: cannot start the purge thread\n");
        csc_audit_signer_stop(signer);
        srv_modules_close(&m);
        free(cfg);
        return 1;
    }
    int rc = srv_http_run(cfg, &m);
    csc_purger_stop(purger);
    csc_audit_signer_stop(signer);
    srv_modules_close(&m);
    free(cfg);
    return rc == 0 ? 0 : 1;
}
