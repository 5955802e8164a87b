/* srv_main.c - csc-server: the CSC API v2 remote signing server. */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "srv.h"
#include "srv_notify.h"
#include "srv_priv.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: csc-server -c CONFIG [-t]\n"
               "  -c CONFIG  configuration file (see docs/configuration.md, csc-server.conf(5))\n"
               "  -t         check the configuration and exit\n"
               "  --version  print the version and exit\n");
}

static int crl_run(void *c)
{
    return csc_crl_refresh(c);
}

static int purge_run(void *c)
{
    return csc_purge_once(c);
}

/* malloc gives back to the system only the free memory at the top of a heap; what requests freed below a block
 * still in use stays resident. Every connection allocates and frees TLS and request buffers, so between live
 * blocks the heaps fill with free pages, and the process's memory followed its busiest moment for minutes
 * (bench/soak: csc-server's anonymous memory climbed about 2 MiB over five minutes with 2.8 MiB in use, until a
 * trim at a heap's top happened to release it). malloc_trim hands every free page of every heap back
 * (MADV_DONTNEED); a page used again is faulted in anew. */
#define TRIM_PERIOD_MS 10000

static int trim_run(void *unused)
{
    (void)unused;
    (void)malloc_trim(0);
    return 0;
}

int main(int argc, char **argv)
{
    /* Before anything else: the process may execute itself again with a smaller cache of freed blocks per thread
     * (srv_priv.h); csc-sam, started below, inherits the environment that set it. */
    srv_priv_tcache("csc-server", argv);
    const char *file = NULL;
    int check_only = 0, opt;
    srv_config_t *cfg = calloc(1, sizeof(*cfg));
    srv_modules_t m;

    if (cfg == NULL)
        return 1;
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
    /* First: OpenSSL wipes what it frees (libssl's buffers hold decrypted requests), set before it allocates. */
    if (csc_wipe_openssl() != 0) {
        fprintf(stderr, "csc-server: OpenSSL allocated before its wiping allocator could be set\n");
        return 1;
    }
    (void)srv_log_journal(); /* errors to stderr with the journal's levels when systemd runs csc-server */
    while ((opt = getopt_long(argc, argv, "c:th", opts, NULL)) != -1) {
        switch (opt) {
        case 'V':
            printf("csc-server %s\n", CSC_VERSION);
            free(cfg);
            return 0;
        case 'c':
            file = optarg;
            break;
        case 't':
            check_only = 1;
            break;
        case 'h':
            usage(stdout);
            free(cfg);
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
    int loaded = srv_config_load(file, cfg) == 0;
    if (!loaded || check_only) {
        if (loaded)
            printf("%s: configuration OK\n", file);
        free(cfg);
        return loaded ? 0 : 1;
    }
    srv_notify_init("csc-server", 1); /* csc-sam, when spawned, is not the process systemd watches */
    /* No core dumps and no new privileges before any thread starts (srv_priv.c); csc-sam, started next, inherits
     * both before it reads the token PIN file. csc-server itself opens no HSM and never reads that file. */
    uid_t front_uid;
    gid_t front_gid;
    if (srv_priv_early() != 0 ||
        (cfg->server_user[0] != '\0' && srv_priv_user("csc-server", cfg->server_user, &front_uid, &front_gid) != 0)) {
        free(cfg); /* an unknown server_user is named before csc-sam, which gives it the socket, is started */
        return 1;
    }
    srv_priv_arenas(SRV_PRIV_FRONT_ARENAS); /* one heap for every thread (srv_priv.h) */
    /* A fixed trim threshold, and with it a fixed mmap threshold (glibc's 128 KiB): glibc otherwise raises both when a
     * mapped block is freed (the trim threshold up to 64 MiB), and a thread's heap gives the free memory at its top
     * back only above the trim threshold; malloc_trim (trim_run) gives back free pages inside every heap and the main
     * heap's top, never a thread heap's top. csc-server's thread heap kept the top its busiest moment reached
     * (bench/soak: 2.1 -> 2.7 MiB in 12 minutes). Blocks of 16 KiB or more get mappings of their own, given back
     * when freed: above all the three record buffers OpenSSL takes for every TLS connection (16-22 KiB each, 175
     * connections a second in the soak), which otherwise carved up the heaps under the small blocks that outlive
     * them (the main heap's floor after each trim rose 2.7 -> 3.07 MiB in 24 minutes); a keep-alive connection
     * maps them once. The records a request holds come from stor_rec's pool, the SAM receive buffer is the
     * thread's spare: neither is mapped per request. csc-sam (exec'd below, a process image of its own) sets its
     * own (srv_priv_mlock). */
    (void)mallopt(M_TRIM_THRESHOLD, 128 << 10);
    (void)mallopt(M_MMAP_THRESHOLD, 16 << 10);
    /* The signature activation module first: forked before any thread or socket of csc-server exists. */
    srv_sam_t *sam = NULL;
    if (srv_sam_begin(cfg, &sam) != 0) {
        free(cfg);
        return 1;
    }
    if (srv_modules_open(cfg, SRV_NEED_CSC, srv_sam_client(sam), &m) != 0) {
        srv_sam_end(sam);
        free(cfg);
        return 1;
    }
    m.samctl = sam; /* a reload (SIGHUP) is passed on to csc-sam */
    /* csc-server writes web_sessions, async_results and pars only; everything else is csc-sam's (issue 13): the storage
     * write guard makes it a rule of the process on every backend (on PostgreSQL csc_front's GRANTs say it too). */
    if (srv_front_restrict_writes(&m) != 0) {
        srv_modules_close(&m);
        srv_sam_end(sam);
        free(cfg);
        return 1;
    }
    /* The service's periodic work, one thread each (srv_thread.c): its CRL store follows crl_dir (its own answers),
     * expired browser sessions leave web_sessions (refused anyway). The periodic writes of every other table are
     * csc-sam's (srv_sam.c): the purge of the other expired records, the CRL sweep that ends revoked credentials
     * (J7), the signed audit heads (J11; csc-server never uses the audit key). And every TRIM_PERIOD_MS its heaps'
     * free pages go back to the system (trim_run). */
    srv_task_t *crl = NULL, *purge = NULL, *trim = NULL;
    int rc = 1;
    if ((cfg->crl_dir[0] == '\0' || srv_task_start("crl-watch", 1000, crl_run, m.csc, &crl) == 0) &&
        (cfg->purge_interval == 0 || srv_task_start("purge", cfg->purge_interval * 1000u, purge_run, m.csc, &purge) == 0) &&
        srv_task_start("trim", TRIM_PERIOD_MS, trim_run, NULL, &trim) == 0)
        rc = srv_http_run(cfg, &m) == 0 ? 0 : 1;
    srv_task_stop(trim);
    srv_task_stop(purge);
    srv_task_stop(crl); /* before csc_free (srv_modules_close): the task uses the service */
    srv_modules_close(&m);
    srv_sam_end(sam);
    free(cfg);
    return rc;
}
