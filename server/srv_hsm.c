/*
 * srv_hsm.c - the HSM of csc-sam and csc-admin: the token PIN file read, the PKCS#11 module loaded and logged in,
 * SoftHSM refused in production. A file of its own: csc-server never opens the HSM, and since nothing it calls
 * reaches this file, it links no PKCS#11 code (hsm_open, hsm_sign: tests/unit/server/check_symbols) and never reads
 * the PIN file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "srv.h"

/* The token PIN comes from a file readable by csc-sam's user only; it is wiped once the HSM has its copy. */
static int read_pin(const char *path, char *pin, size_t sz)
{
    struct stat st;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "pkcs11_pin_file %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
        fprintf(stderr, "warning: pkcs11_pin_file %s is readable by group or others\n", path);
    int ok = fgets(pin, (int)sz, f) != NULL;
    fclose(f);
    if (!ok) {
        fprintf(stderr, "pkcs11_pin_file %s: empty\n", path);
        return -1;
    }
    pin[strcspn(pin, "\r\n")] = '\0';
    return 0;
}

/* Whether either of two CK_INFO strings (a manufacturer, a description or model) names SoftHSM. */
static int names_softhsm(const char *a, const char *b)
{
    return strcasestr(a, "softhsm") != NULL || strcasestr(b, "softhsm") != NULL;
}

/* J13 (and J5): production refuses the SoftHSM module (by its own CK_INFO) unless allow_test_components says
 * otherwise; the demo CA is refused in srv_modules.c. */
static int production_hsm(const srv_config_t *cfg, const hsm_t *hsm)
{
    const char *manuf = "", *desc = "", *tok_manuf = "", *tok_model = "";
    if (cfg->environment != CSC_ENV_PRODUCTION || cfg->allow_test_components)
        return 0;
    /* the library's CK_INFO, and the token's: a proxy (p11-kit-client.so, "PKCS#11 Kit") names only itself */
    int soft = hsm_module_info(hsm, &manuf, &desc) == HSM_OK && names_softhsm(manuf, desc);
    if (!soft && hsm_token_info(hsm, &tok_manuf, &tok_model) == HSM_OK && names_softhsm(tok_manuf, tok_model)) {
        soft = 1;
        manuf = tok_manuf;
    }
    if (soft) {
        fprintf(stderr, "%s: pkcs11_module: SoftHSM (\"%s\") is for tests and the embedded demo, not for production "
                        "(a certified HSM's module is required; allow_test_components = yes overrides)\n",
                cfg->file, manuf);
        return -1;
    }
    return 0;
}

/* hsm_open, again for up to pkcs11_start_wait seconds while the module loads but finds no token with that label or
 * cannot reach it (a network HSM or its proxy starting beside csc-sam). Never after a PIN refusal: a retry could
 * lock the token; never for a module that is not a file. */
static int open_token(const srv_config_t *cfg, const hsm_config_t *hc, hsm_t **hsm)
{
    struct timespec t0, now;
    unsigned delay_ms = 500;
    int rc, said = 0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        rc = hsm_open(hc, hsm);
        if ((rc != HSM_ERR_CONFIG && rc != HSM_ERR_UNAVAILABLE) || access(cfg->pkcs11_module, R_OK) != 0)
            return rc;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double left = (double)cfg->pkcs11_start_wait - (double)(now.tv_sec - t0.tv_sec) -
                      (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        if (left <= 0)
            return rc;
        if (!said) {
            fprintf(stderr, "pkcs11 module %s token \"%s\": %s; trying again for up to %u s (pkcs11_start_wait)\n",
                    cfg->pkcs11_module, cfg->pkcs11_token, hsm_strerror(rc), cfg->pkcs11_start_wait);
            said = 1;
        }
        double wait = delay_ms / 1000.0 < left ? delay_ms / 1000.0 : left;
        struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        delay_ms = delay_ms < 2000 ? delay_ms * 2 : 2000;
    }
}

int srv_modules_open_hsm(const srv_config_t *cfg, int need, srv_modules_t *m)
{
    char pin[256];
    hsm_t *hsm = NULL;

    memset(m, 0, sizeof(*m));
    if (cfg->softhsm_conf[0] != '\0')
        setenv("SOFTHSM2_CONF", cfg->softhsm_conf, 1);
    /* pkcs11_env (checked by srv_config.c): e.g. p11-kit-client.so's P11_KIT_SERVER_ADDRESS, read at C_Initialize */
    const char *eq = strchr(cfg->pkcs11_env, '=');
    if (eq != NULL) {
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - cfg->pkcs11_env), cfg->pkcs11_env);
        setenv(name, eq + 1, 1);
    }
    if (read_pin(cfg->pkcs11_pin_file, pin, sizeof(pin)) != 0)
        return -1;
    hsm_config_t hc = {
        .module = cfg->pkcs11_module,
        .token_label = cfg->pkcs11_token,
        .pin = pin,
        .sessions = cfg->pkcs11_sessions,
    };
    int rc = open_token(cfg, &hc, &hsm);
    OPENSSL_cleanse(pin, sizeof(pin));
    if (rc != HSM_OK) {
        fprintf(stderr, "pkcs11 module %s token \"%s\": %s\n", cfg->pkcs11_module, cfg->pkcs11_token,
                hsm_strerror(rc));
        return -1;
    }
    /* the SoftHSM check first, then storage and the demo CA's (as before the HSM left srv_modules.c) */
    if (production_hsm(cfg, hsm) != 0 || srv_modules_open(cfg, need, NULL, m) != 0) {
        hsm_close(hsm);
        return -1;
    }
    m->hsm = hsm;
    return 0;
}

void srv_modules_close_hsm(srv_modules_t *m)
{
    hsm_t *hsm = m->hsm;
    srv_modules_close(m);
    hsm_close(hsm);
}
