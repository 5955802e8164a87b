/*
 * test_p11kit.c - the HSM shared by nodes: the module loads p11-kit-client.so, which reaches the fixture's SoftHSM
 * token through `p11-kit server` on a Unix socket (the stand-in for a network HSM; docs/stack-notes.md sec. 10).
 *
 * Each test starts its own server (in its own process group: the server forks one p11-kit-remote per client
 * connection, and "the HSM dies" means all of them) and points P11_KIT_SERVER_ADDRESS at it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_hsm.h"

#ifndef T_P11KIT_CLIENT
#error T_P11KIT_CLIENT (the path of p11-kit-client.so) must be defined by the build
#endif

typedef struct srv {
    char dir[64];
    char sock[128];
    pid_t pid;
} srv_t;

static void srv_start(srv_t *s)
{
    struct stat st;
    char addr[160];
    int i;

    s->pid = fork();
    ck_assert_int_ge(s->pid, 0);
    if (s->pid == 0) {
        (void)setpgid(0, 0);
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test (its process gone) leaves no server behind */
        if (freopen("/dev/null", "w", stdout) == NULL)
            _exit(126);
        execlp("p11-kit", "p11-kit", "server", "-f", "-n", s->sock, "--provider", T_MODULE, "pkcs11:token=" T_LABEL,
               (char *)NULL);
        _exit(127);
    }
    (void)setpgid(s->pid, s->pid);
    for (i = 0; i < 100 && stat(s->sock, &st) != 0; i++)
        usleep(50 * 1000);
    ck_assert_msg(stat(s->sock, &st) == 0, "p11-kit server made no socket %s (is p11-kit installed?)", s->sock);
    snprintf(addr, sizeof(addr), "unix:path=%s", s->sock);
    ck_assert_int_eq(setenv("P11_KIT_SERVER_ADDRESS", addr, 1), 0);
}

/* Kill the server and every p11-kit-remote it forked, as a crash of the HSM would. */
static void srv_kill(srv_t *s)
{
    int status;

    ck_assert_int_eq(kill(-s->pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(s->pid, &status, 0), s->pid);
    (void)unlink(s->sock);
}

static void srv_new(srv_t *s)
{
    snprintf(s->dir, sizeof(s->dir), "/tmp/hsm-p11kit.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s->dir));
    snprintf(s->sock, sizeof(s->sock), "%s/p11.sock", s->dir);
    srv_start(s);
}

static void srv_free(srv_t *s)
{
    srv_kill(s);
    (void)rmdir(s->dir);
}

/* The server makes its socket before the first p11-kit-remote it forks has loaded SoftHSM: on a loaded machine the
 * first client may find no token yet. Try again, bounded (5 s), as csc-sam does at its start (pkcs11_start_wait). */
static hsm_t *open_client(unsigned sessions)
{
    hsm_t *h = NULL;
    int rc = HSM_ERR_CONFIG;

    for (int i = 0; i < 50 && (rc == HSM_ERR_CONFIG || rc == HSM_ERR_UNAVAILABLE); i++) {
        if (i > 0)
            usleep(100 * 1000);
        rc = t_open_rc(T_P11KIT_CLIENT, T_LABEL, T_PIN, sessions, &h);
    }
    ck_assert_msg(rc == HSM_OK, "hsm_open through p11-kit-client: %s", hsm_strerror(rc));
    return h;
}

/* Re-initialisation is rate limited (HSM_REINIT_INTERVAL_MS): poll, bounded (10 s), until the HSM is back. */
static int sign_when_back(hsm_t *h)
{
    int i, rc = HSM_ERR_UNAVAILABLE;

    for (i = 0; i < 100 && rc == HSM_ERR_UNAVAILABLE; i++) {
        if ((rc = t_sign_rc(h, t_env.ec256)) == HSM_ERR_UNAVAILABLE)
            usleep(100 * 1000);
    }
    return rc;
}

static void sign_ok(hsm_t *h, const uint8_t *id, const hsm_sign_params_t *p)
{
    EVP_PKEY *pk = NULL;

    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_OK);
    ck_assert_int_eq(t_sign_verify(h, id, pk, p), HSM_OK);
    EVP_PKEY_free(pk);
}

/* Everything csc-sam does with its token works unchanged through the RPC: sessions, login, lookups, the three
 * signature schemes, key generation and destruction; the library says it is p11-kit's proxy, not SoftHSM. */
START_TEST(p11kit_unchanged)
{
    hsm_sign_params_t ec = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    hsm_sign_params_t pkcs1 = t_params(HSM_SIG_RSA_PKCS1, NID_sha256, 0, 0);
    hsm_sign_params_t pss = t_params(HSM_SIG_RSA_PSS, NID_sha256, NID_sha256, 32);
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    const char *manuf = NULL, *desc = NULL;
    uint8_t id[HSM_KEYID_LEN];
    srv_t s;
    hsm_t *h;

    srv_new(&s);
    h = open_client(4);
    ck_assert_int_eq(hsm_module_info(h, &manuf, &desc), HSM_OK);
    ck_assert_msg(strstr(manuf, "PKCS#11 Kit") != NULL, "manufacturer \"%s\"", manuf);
    /* the token behind the proxy still says what it is (production refuses SoftHSM by it: srv_hsm.c) */
    ck_assert_int_eq(hsm_token_info(h, &manuf, &desc), HSM_OK);
    ck_assert_str_eq(manuf, "SoftHSM project");
    ck_assert_str_eq(desc, "SoftHSM v2");
    sign_ok(h, t_env.ec256, &ec);
    sign_ok(h, t_env.rsa2048, &pkcs1);
    sign_ok(h, t_env.rsa2048, &pss);
    ck_assert_int_eq(hsm_keygen(h, &spec, "through-p11kit", id), HSM_OK);
    sign_ok(h, id, &ec);
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_OK);
    ck_assert_int_eq(t_sign_rc(h, id), HSM_ERR_NOKEY);
    hsm_close(h);
    srv_free(&s);
}
END_TEST

/* What does not cross p11-kit 0.24's RPC (docs/stack-notes.md sec. 10.4): mechanisms whose parameters it cannot
 * serialise are refused before they reach the token. The factor key's CKM_AES_GCM is then done over CKM_AES_ECB
 * (which crosses); the backup's CKM_AES_KEY_WRAP_PAD gives "mechanism not supported" (HSM_ERR_MECH), never a lost
 * HSM; parameterless ones (the backup's HMAC tags) work. If a later p11-kit carries the wrap, this test says so. */
START_TEST(p11kit_factor_and_backup)
{
    static const uint8_t aad[] = "user:demo", secret[20] = {1, 2, 3, 4, 5};
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    uint8_t blob[128], back[64], tag[HSM_BACKUP_TAG_LEN], wrapped[4096], id[HSM_KEYID_LEN];
    size_t n = 0, m = 0;
    int created = -1, rc;
    srv_t s;
    hsm_t *h;

    srv_new(&s);
    h = open_client(2);
    ck_assert_int_eq(hsm_factor_init(h, &created), HSM_OK);
    /* the factor key: CKM_AES_GCM refused by the RPC, so computed over CKM_AES_ECB (hsm_factor.c) */
    rc = hsm_factor_seal(h, aad, sizeof(aad), secret, sizeof(secret), blob, sizeof(blob), &n);
    ck_assert_msg(rc == HSM_OK, "hsm_factor_seal through p11-kit: %s", hsm_strerror(rc));
    ck_assert_int_eq(hsm_factor_open(h, aad, sizeof(aad), blob, n, back, sizeof(back), &m), HSM_OK);
    ck_assert_mem_eq(back, secret, sizeof(secret));
    blob[n - 1] ^= 1;
    ck_assert_int_eq(hsm_factor_open(h, aad, sizeof(aad), blob, n, back, sizeof(back), &m), HSM_ERR_BADSIG);
    /* a derived key (the one-time codes' MAC key) through the RPC is the one the token gives directly */
    uint8_t k1[HSM_DERIVE_LEN], k2[HSM_DERIVE_LEN];
    hsm_t *direct = t_open(1);
    rc = hsm_factor_derive(h, "challenge-1", k1);
    ck_assert_msg(rc == HSM_OK, "hsm_factor_derive through p11-kit: %s", hsm_strerror(rc));
    ck_assert_int_eq(hsm_factor_derive(direct, "challenge-1", k2), HSM_OK);
    ck_assert_mem_eq(k1, k2, sizeof(k1));
    hsm_close(direct);
    rc = hsm_backup_init(h, T_SO_PIN, &created);
    ck_assert_msg(rc == HSM_OK, "hsm_backup_init through p11-kit: %s", hsm_strerror(rc));
    ck_assert_int_eq(hsm_backup_tag(h, secret, sizeof(secret), tag), HSM_OK);
    ck_assert_int_eq(hsm_backup_tag_verify(h, secret, sizeof(secret), tag), HSM_OK);
    tag[0] ^= 1;
    ck_assert_int_eq(hsm_backup_tag_verify(h, secret, sizeof(secret), tag), HSM_ERR_BADSIG);
    ck_assert_int_eq(hsm_keygen_ex(h, &spec, "backup-able", HSM_KEYGEN_BACKUP, id), HSM_OK);
    rc = hsm_backup_wrap(h, id, HSM_KEYID_LEN, wrapped, sizeof(wrapped), &n);
    ck_assert_msg(rc == HSM_ERR_MECH, "hsm_backup_wrap through p11-kit: %s", hsm_strerror(rc));
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_OK);
    /* the handle is still fine afterwards */
    ck_assert_int_eq(t_sign_rc(h, t_env.ec256), HSM_OK);
    hsm_close(h);
    srv_free(&s);
}
END_TEST

/* A key made by another client process (another node's csc-sam, csc-admin's ceremony) is usable here at once, though
 * this handle opened its sessions and filled its cache before the key existed; and a key it destroys is gone here. */
START_TEST(p11kit_key_of_another_process)
{
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    hsm_sign_params_t ec = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    uint8_t id[HSM_KEYID_LEN];
    int fds[2], status;
    srv_t s;
    hsm_t *h;
    pid_t pid;

    srv_new(&s);
    h = open_client(2);
    sign_ok(h, t_env.ec256, &ec);
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* the other node: its own connection, its own p11-kit-remote, its own SoftHSM instance */
        hsm_t *o = NULL;
        int ok = t_open_rc(T_P11KIT_CLIENT, T_LABEL, T_PIN, 1, &o) == HSM_OK && hsm_keygen(o, &spec, "other", id) == HSM_OK &&
                 write(fds[1], id, sizeof(id)) == (ssize_t)sizeof(id);
        hsm_close(o);
        _exit(ok ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the other process could not make its key");
    ck_assert_int_eq(read(fds[0], id, sizeof(id)), (ssize_t)sizeof(id));
    sign_ok(h, id, &ec);
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_OK);
    close(fds[0]);
    close(fds[1]);
    hsm_close(h);
    srv_free(&s);
}
END_TEST

/* The p11-kit server (the network HSM) dies: every call says UNAVAILABLE at once (no hang, no NOKEY), and once a
 * server listens again the same handle signs again, without being reopened. */
START_TEST(p11kit_server_restart)
{
    hsm_sign_params_t ec = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    uint8_t id[HSM_KEYID_LEN];
    EVP_PKEY *pk = NULL;
    int i;
    srv_t s;
    hsm_t *h;

    /* p11-kit-client writes to the dead server's socket without MSG_NOSIGNAL: SIGPIPE would kill us (csc-sam
     * ignores it, as hsm.h asks of a process whose module talks to a network HSM) */
    signal(SIGPIPE, SIG_IGN);
    srv_new(&s);
    h = open_client(2);
    sign_ok(h, t_env.ec256, &ec);
    srv_kill(&s);
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(t_sign_rc(h, t_env.ec256), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_keygen(h, &spec, "while-down", id), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_pubkey(h, t_env.ec256, HSM_KEYID_LEN, &pk), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_ready(h), HSM_ERR_UNAVAILABLE);
    srv_start(&s);
    ck_assert_int_eq(sign_when_back(h), HSM_OK);
    sign_ok(h, t_env.ec256, &ec);
    ck_assert_int_eq(hsm_ready(h), HSM_OK);
    /* and again: recovery is not a one-shot */
    srv_kill(&s);
    ck_assert_int_eq(t_sign_rc(h, t_env.ec256), HSM_ERR_UNAVAILABLE);
    srv_start(&s);
    ck_assert_int_eq(sign_when_back(h), HSM_OK);
    hsm_close(h);
    srv_free(&s);
}
END_TEST

Suite *t_suite_p11kit(void)
{
    Suite *s = suite_create("hsm_p11kit");
    TCase *tc = tcase_create("p11kit");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, t_setup, NULL);
    tcase_add_test(tc, p11kit_unchanged);
    tcase_add_test(tc, p11kit_factor_and_backup);
    tcase_add_test(tc, p11kit_key_of_another_process);
    tcase_add_test(tc, p11kit_server_restart);
    suite_add_tcase(s, tc);
    return s;
}
