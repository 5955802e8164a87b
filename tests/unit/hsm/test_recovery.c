/*
 * test_recovery.c - the module loses its sessions, its login, its library or its token, and recovers.
 *
 * Contract under test (hsm/README.md): the call that first meets the loss returns HSM_ERR_UNAVAILABLE;
 * the pool is rebuilt by the next borrower, so with sequential calls exactly one call fails and the next
 * one succeeds. With concurrent callers, each session lent out before the loss was noticed fails once:
 * at most hsm_sessions() calls fail.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_hsm.h"

static void sign_ok(hsm_t *h, const uint8_t *id)
{
    hsm_sign_params_t p = t_params(HSM_SIG_ECDSA, NID_sha256, 0, 0);
    EVP_PKEY *pk = NULL;

    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_OK);
    ck_assert_int_eq(t_sign_verify(h, id, pk, &p), HSM_OK);
    EVP_PKEY_free(pk);
}

static void close_all_sessions(hsm_t *h)
{
    CK_SLOT_ID slot;
    CK_FUNCTION_LIST *p11 = hsm_test_p11(h, &slot);

    ck_assert_int_eq(p11->C_CloseAllSessions(slot), CKR_OK);
}

START_TEST(recover_closed_sessions)
{
    static const unsigned sizes[] = {1, 2, 4};
    hsm_t *h = t_open(sizes[_i]);

    sign_ok(h, t_env.ec256);
    ck_assert_uint_ge(hsm_test_cache_count(h), 1);
    close_all_sessions(h);
    ck_assert_int_eq(t_sign_rc(h, t_env.ec256), HSM_ERR_UNAVAILABLE);
    ck_assert_uint_eq(hsm_test_cache_count(h), 0); /* flushed with the pool */
    sign_ok(h, t_env.ec256);
    sign_ok(h, t_env.ec384);
    /* And again: recovery is not a one-shot. */
    close_all_sessions(h);
    ck_assert_int_eq(t_sign_rc(h, t_env.ec384), HSM_ERR_UNAVAILABLE);
    sign_ok(h, t_env.ec384);
    hsm_close(h);
}
END_TEST

/* Every other entry point meets the loss the same way. */
START_TEST(recover_closed_sessions_keys)
{
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    uint8_t id[HSM_KEYID_LEN];
    EVP_PKEY *pk = NULL;
    hsm_t *h = t_open(1);

    close_all_sessions(h);
    ck_assert_int_eq(hsm_keygen(h, &spec, "after-loss", id), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_keygen(h, &spec, "after-loss", id), HSM_OK);
    close_all_sessions(h);
    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_ERR_UNAVAILABLE);
    ck_assert_ptr_null(pk);
    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_OK);
    EVP_PKEY_free(pk);
    close_all_sessions(h);
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_OK);
    ck_assert_int_eq(t_sign_rc(h, id), HSM_ERR_NOKEY);
    hsm_close(h);
}
END_TEST

static void logout_behind_our_back(hsm_t *h)
{
    CK_SLOT_ID slot;
    CK_FUNCTION_LIST *p11 = hsm_test_p11(h, &slot);
    CK_SESSION_HANDLE s = t_raw_session(h);

    /* Login state is per application: this logs every session of the pool out. */
    ck_assert_int_eq(p11->C_Logout(s), CKR_OK);
    t_raw_close(h, s);
}

/* Logged out with a cached handle (private object no longer usable) and without (no longer visible). */
START_TEST(recover_logout)
{
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    uint8_t id[HSM_KEYID_LEN];
    hsm_t *h = t_open(2);

    sign_ok(h, t_env.ec256);
    logout_behind_our_back(h);
    ck_assert_int_eq(t_sign_rc(h, t_env.ec256), HSM_ERR_UNAVAILABLE);
    sign_ok(h, t_env.ec256);
    hsm_close(h);

    h = t_open(2);
    logout_behind_our_back(h);
    ck_assert_uint_eq(hsm_test_cache_count(h), 0);
    /* The key is invisible now, but it is the login that is missing, not the key. */
    ck_assert_int_eq(t_sign_rc(h, t_env.ec384), HSM_ERR_UNAVAILABLE);
    sign_ok(h, t_env.ec384);
    /* Logged out, destroy must not remove the (still visible) public half alone. */
    ck_assert_int_eq(hsm_keygen(h, &spec, "logout-destroy", id), HSM_OK);
    logout_behind_our_back(h);
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_ERR_UNAVAILABLE);
    sign_ok(h, id); /* both halves still there */
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_OK);
    hsm_close(h);
}
END_TEST

/* hsm_ready (csc-sam's HELLO) sees the login: logged out behind our back it says so, and the next call logs in. */
START_TEST(ready_sees_logout)
{
    hsm_t *h = t_open(2);

    ck_assert_int_eq(hsm_ready(NULL), HSM_ERR_INVAL);
    ck_assert_int_eq(hsm_ready(h), HSM_OK);
    logout_behind_our_back(h);
    ck_assert_int_eq(hsm_ready(h), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_ready(h), HSM_OK);
    sign_ok(h, t_env.ec256);
    hsm_close(h);
}
END_TEST

/* Two handles in one process share the module: only the one that initialised it finalizes. */
START_TEST(recover_finalized_by_other)
{
    hsm_t *owner = t_open(1), *guest = t_open(1);

    sign_ok(guest, t_env.ec256);
    hsm_close(guest); /* not the owner: must not C_Finalize */
    sign_ok(owner, t_env.ec256);
    guest = t_open(2);
    sign_ok(guest, t_env.ec256);
    hsm_close(owner); /* finalizes the library under the guest */
    ck_assert_int_eq(t_sign_rc(guest, t_env.ec256), HSM_ERR_UNAVAILABLE);
    sign_ok(guest, t_env.ec256); /* initialised again, slot found again, logged in again */
    sign_ok(guest, t_env.ec384);
    hsm_close(guest);
}
END_TEST

#define RTHREADS 8

typedef struct rworker {
    hsm_t *h;
    int ok, unavailable, other;
} rworker_t;

static void *recover_worker(void *arg)
{
    rworker_t *w = arg;
    int i, rc;

    for (i = 0; i < 10; i++) {
        rc = t_sign_rc(w->h, t_env.ec256);
        if (rc == HSM_OK)
            w->ok++;
        else if (rc == HSM_ERR_UNAVAILABLE)
            w->unavailable++;
        else
            w->other++;
    }
    return NULL;
}

START_TEST(recover_concurrent)
{
    unsigned sessions = _i == 0 ? 2 : 4;
    hsm_t *h = t_open(sessions);
    rworker_t w[RTHREADS];
    pthread_t th[RTHREADS];
    int i, ok = 0, unavailable = 0;

    sign_ok(h, t_env.ec256);
    close_all_sessions(h);
    for (i = 0; i < RTHREADS; i++) {
        w[i] = (rworker_t){.h = h};
        ck_assert_int_eq(pthread_create(&th[i], NULL, recover_worker, &w[i]), 0);
    }
    for (i = 0; i < RTHREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(w[i].other, 0);
        ok += w[i].ok;
        unavailable += w[i].unavailable;
    }
    ck_assert_int_ge(unavailable, 1);
    ck_assert_int_le(unavailable, (int)sessions);
    ck_assert_int_eq(ok + unavailable, RTHREADS * 10);
    sign_ok(h, t_env.ec256);
    hsm_close(h);
}
END_TEST

/* A token of our own in its own directory, for tests that damage it. Only this child sees the new conf. */
static void private_token(const char *label, char *tokdir, size_t cap)
{
    char dir[256], conf[320];

    ck_assert_int_eq(cfx_tmpdir(t_env.dir, "private-", dir, sizeof(dir)), 0);
    ck_assert_int_eq(cfx_softhsm_token(dir, label, conf, sizeof(conf)), 0);
    ck_assert_int_lt(snprintf(tokdir, cap, "%s/tokens", dir), (int)cap);
}

START_TEST(recover_pin_changed)
{
    hsm_config_t cfg = {.module = T_MODULE, .token_label = "hsm-pin", .pin = T_PIN, .sessions = 2};
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    uint8_t id[HSM_KEYID_LEN];
    char tokdir[320];
    hsm_t *h = NULL;
    CK_SLOT_ID slot;
    CK_FUNCTION_LIST *p11;
    CK_SESSION_HANDLE s;
    CK_UTF8CHAR oldpin[] = T_PIN, newpin[] = "999999";

    private_token("hsm-pin", tokdir, sizeof(tokdir));
    ck_assert_int_eq(hsm_open(&cfg, &h), HSM_OK);
    ck_assert_int_eq(hsm_keygen(h, &spec, "k", id), HSM_OK);
    p11 = hsm_test_p11(h, &slot);
    s = t_raw_session(h);
    ck_assert_int_eq(p11->C_SetPIN(s, oldpin, sizeof(oldpin) - 1, newpin, sizeof(newpin) - 1), CKR_OK);
    t_raw_close(h, s);
    close_all_sessions(h);
    ck_assert_int_eq(t_sign_rc(h, id), HSM_ERR_UNAVAILABLE);
    /* Re-login is refused, and from then on not retried (each try would count towards a PIN lockout). */
    ck_assert_int_eq(t_sign_rc(h, id), HSM_ERR_PIN);
    ck_assert_int_eq(t_sign_rc(h, id), HSM_ERR_PIN);
    hsm_close(h);
    cfg.pin = "999999";
    ck_assert_int_eq(hsm_open(&cfg, &h), HSM_OK);
    sign_ok(h, id);
    hsm_close(h);
}
END_TEST

/*
 * The token's directory disappears (SoftHSM's "device removed") and comes back. SoftHSM reports this as
 * missing objects / CKR_GENERAL_ERROR and keeps the token lost until the library is initialised again;
 * the module must say UNAVAILABLE (not NOKEY: the keys are not gone) and recover once it is back.
 * Root ignores permissions, so the directory is renamed away rather than made unreadable.
 */
START_TEST(recover_token_removed)
{
    hsm_config_t cfg = {.module = T_MODULE, .token_label = "hsm-gone", .pin = T_PIN, .sessions = 2};
    hsm_keyspec_t spec = {.type = HSM_KEY_EC, .curve_nid = NID_X9_62_prime256v1};
    uint8_t id[HSM_KEYID_LEN], id2[HSM_KEYID_LEN];
    char tokdir[320], gone[340];
    EVP_PKEY *pk = NULL;
    hsm_t *h = NULL;
    int i, rc = HSM_ERR_UNAVAILABLE;

    private_token("hsm-gone", tokdir, sizeof(tokdir));
    ck_assert_int_lt(snprintf(gone, sizeof(gone), "%s.gone", tokdir), (int)sizeof(gone));
    ck_assert_int_eq(hsm_open(&cfg, &h), HSM_OK);
    ck_assert_int_eq(hsm_keygen(h, &spec, "k", id), HSM_OK);
    sign_ok(h, id);
    ck_assert_int_eq(rename(tokdir, gone), 0);
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(t_sign_rc(h, id), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_keygen(h, &spec, "k2", id2), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_pubkey(h, id, HSM_KEYID_LEN, &pk), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_ERR_UNAVAILABLE);
    ck_assert_int_eq(rename(gone, tokdir), 0);
    /* Re-initialisation is rate limited (HSM_REINIT_INTERVAL_MS): poll, bounded, until it is back. */
    for (i = 0; i < 100 && rc == HSM_ERR_UNAVAILABLE; i++) {
        if ((rc = t_sign_rc(h, id)) == HSM_ERR_UNAVAILABLE)
            usleep(100 * 1000);
    }
    ck_assert_int_eq(rc, HSM_OK);
    sign_ok(h, id);
    ck_assert_int_eq(hsm_destroy(h, id, HSM_KEYID_LEN), HSM_OK);
    hsm_close(h);
}
END_TEST

Suite *t_suite_recovery(void)
{
    Suite *s = suite_create("hsm_recovery");
    TCase *tc = tcase_create("recovery");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, t_setup, NULL);
    tcase_add_loop_test(tc, recover_closed_sessions, 0, 3);
    tcase_add_test(tc, recover_closed_sessions_keys);
    tcase_add_test(tc, recover_logout);
    tcase_add_test(tc, ready_sees_logout);
    tcase_add_test(tc, recover_finalized_by_other);
    tcase_add_loop_test(tc, recover_concurrent, 0, 2);
    tcase_add_test(tc, recover_pin_changed);
    tcase_add_test(tc, recover_token_removed);
    suite_add_tcase(s, tc);
    return s;
}
