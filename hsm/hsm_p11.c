/*
 * hsm_p11.c - module loading, token lookup, login and the session pool.
 *
 * Recovery: a call that gets one of the "lost" return values (hsm_rv_lost)
 * marks its session lost and returns HSM_ERR_UNAVAILABLE. Giving that session
 * back breaks the whole pool and flushes the handle cache: one lost session
 * nearly always means all of them are (C_CloseAllSessions, token removed,
 * library finalized by someone else), and handles may differ once the token
 * is back. The next borrower waits until no session is lent out, then alone
 * rebuilds the pool: close what is left, C_Initialize again if the library was
 * finalized, find the slot again by label, open the sessions, log in again.
 * Rebuilding only while every session is idle means we never close a stale
 * handle whose number was meanwhile reused for one of our own live sessions.
 *
 * If the token cannot be found and we initialised the library, the library is
 * finalized and initialised again (at most once per HSM_REINIT_INTERVAL_MS):
 * SoftHSM, like many network HSM clients, keeps a lost token lost until then.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "hsm_int.h"

#define HSM_SESS_FLAGS (CKF_SERIAL_SESSION | CKF_RW_SESSION)
#define HSM_ERR_NOTINIT_ (-100) /* internal to this file: the library is not initialised */

int hsm_rv_lost(CK_RV rv)
{
    switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_DEVICE_ERROR:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_SLOT_ID_INVALID:
        return 1;
    default:
        return 0;
    }
}

int hsm_rv_map(CK_RV rv)
{
    if (rv == CKR_OK)
        return HSM_OK;
    if (hsm_rv_lost(rv))
        return HSM_ERR_UNAVAILABLE;
    switch (rv) {
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_MECHANISM_INVALID:
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
    case CKR_KEY_SIZE_RANGE:
    case CKR_DOMAIN_PARAMS_INVALID:
        return HSM_ERR_MECH;
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
        return HSM_ERR_NOKEY;
    case CKR_DATA_LEN_RANGE:
    case CKR_DATA_INVALID:
    case CKR_WRAPPED_KEY_INVALID:
    case CKR_WRAPPED_KEY_LEN_RANGE:
        return HSM_ERR_INVAL;
    case CKR_KEY_UNEXTRACTABLE:
    case CKR_KEY_NOT_WRAPPABLE:
        return HSM_ERR_DENIED;
    case CKR_SIGNATURE_INVALID:
    case CKR_SIGNATURE_LEN_RANGE:
        return HSM_ERR_BADSIG;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_EXPIRED:
    case CKR_PIN_LOCKED:
        return HSM_ERR_PIN;
    case CKR_HOST_MEMORY:
        return HSM_ERR_NOMEM;
    default:
        return HSM_ERR_INTERNAL;
    }
}

int hsm_sess_rv(hsm_sess_t *s, CK_RV rv)
{
    if (hsm_rv_lost(rv))
        s->lost = 1;
    return hsm_rv_map(rv);
}

/* ---- PIN: one private page, locked against swap, excluded from core dumps */

static int pin_store(hsm_t *h, const char *pin)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t len = strnlen(pin, HSM_PIN_MAX + 1);
    void *p;

    if (len > HSM_PIN_MAX)
        return HSM_ERR_INVAL;
    h->pin_map_len = pg > HSM_PIN_MAX ? (size_t)pg : 4096;
    p = mmap(NULL, h->pin_map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return HSM_ERR_NOMEM;
    /* Best effort: RLIMIT_MEMLOCK may forbid it; the PIN is still wiped on close. */
    h->pin_locked = mlock(p, h->pin_map_len) == 0;
    (void)madvise(p, h->pin_map_len, MADV_DONTDUMP);
    h->pin = p;
    memcpy(h->pin, pin, len);
    h->pin_len = len;
    return HSM_OK;
}

static void pin_wipe(hsm_t *h)
{
    if (!h->pin)
        return;
    OPENSSL_cleanse(h->pin, h->pin_map_len);
    if (h->pin_locked)
        (void)munlock(h->pin, h->pin_map_len);
    (void)munmap(h->pin, h->pin_map_len);
    h->pin = NULL;
    h->pin_len = 0;
}

/* ---- module and token ---------------------------------------------------- */

static int module_load(hsm_t *h, const char *path)
{
    CK_C_GetFunctionList get_list;
    CK_FUNCTION_LIST *list = NULL;

    h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h->dl)
        return HSM_ERR_CONFIG;
    get_list = (CK_C_GetFunctionList)dlsym(h->dl, "C_GetFunctionList");
    if (!get_list || get_list(&list) != CKR_OK || !list)
        return HSM_ERR_CONFIG;
    /* We only call v2.x entry points, present in every 2.x and 3.x list. */
    if (list->version.major < 2)
        return HSM_ERR_CONFIG;
    h->p11 = list;
    return HSM_OK;
}

/* PKCS#11 strings are blank padded, not NUL terminated. */
static void trim_copy(char *dst, const unsigned char *src, size_t n)
{
    while (n > 0 && src[n - 1] == ' ')
        n--;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* CKF_OS_LOCKING_OK is mandatory: SoftHSM without it breaks under threads. */
static CK_RV module_init(hsm_t *h)
{
    CK_C_INITIALIZE_ARGS args;
    CK_RV rv;

    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    rv = h->p11->C_Initialize(&args);
    if (rv == CKR_OK)
        h->own_init = 1;
    if (rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        CK_INFO info;
        if (h->p11->C_GetInfo(&info) == CKR_OK) {
            trim_copy(h->manufacturer, info.manufacturerID, sizeof(info.manufacturerID));
            trim_copy(h->description, info.libraryDescription, sizeof(info.libraryDescription));
        }
    }
    return rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? CKR_OK : rv;
}

int hsm_module_info(const hsm_t *h, const char **manufacturer, const char **description)
{
    if (h == NULL)
        return HSM_ERR_INVAL;
    *manufacturer = h->manufacturer;
    *description = h->description;
    return HSM_OK;
}

int hsm_token_info(const hsm_t *h, const char **manufacturer, const char **model)
{
    if (h == NULL)
        return HSM_ERR_INVAL;
    *manufacturer = h->tok_manufacturer;
    *model = h->tok_model;
    return HSM_OK;
}

static CK_RV slot_list(hsm_t *h, CK_SLOT_ID **out, CK_ULONG *n)
{
    CK_SLOT_ID *list = NULL;
    CK_RV rv = CKR_BUFFER_TOO_SMALL;
    int tries;

    *out = NULL;
    /* The count may change between the two calls (hot-plug): retry a little. */
    for (tries = 0; tries < 3 && rv == CKR_BUFFER_TOO_SMALL; tries++) {
        free(list);
        list = NULL;
        rv = h->p11->C_GetSlotList(CK_TRUE, NULL, n);
        if (rv != CKR_OK)
            break;
        if (*n == 0 || *n > HSM_SLOTS_MAX)
            break;
        if (!(list = calloc(*n, sizeof(*list))))
            return CKR_HOST_MEMORY;
        rv = h->p11->C_GetSlotList(CK_TRUE, list, n);
    }
    if (rv == CKR_OK && *n > 0 && *n <= HSM_SLOTS_MAX && list) {
        *out = list;
        return CKR_OK;
    }
    free(list);
    *n = 0;
    return rv == CKR_OK ? CKR_TOKEN_NOT_PRESENT : rv;
}

/*
 * Slot ids change when a token is initialised or re-inserted, so the token is
 * always found by label. Two tokens with our label is a configuration error:
 * picking one would silently sign with whichever comes first.
 */
static int slot_find(hsm_t *h, CK_SLOT_ID *out)
{
    CK_SLOT_ID *list = NULL;
    CK_TOKEN_INFO ti;
    CK_ULONG n = 0, i;
    CK_RV rv;
    int found = 0, rc;

    rv = slot_list(h, &list, &n);
    if (rv != CKR_OK) {
        if (rv == CKR_CRYPTOKI_NOT_INITIALIZED)
            rc = HSM_ERR_NOTINIT_;
        else
            rc = rv == CKR_TOKEN_NOT_PRESENT ? HSM_ERR_CONFIG : hsm_rv_map(rv);
        goto out;
    }
    for (i = 0; i < n; i++) {
        if (h->p11->C_GetTokenInfo(list[i], &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED))
            continue;
        if (memcmp(ti.label, h->label, sizeof(h->label)) == 0) {
            *out = list[i];
            found++;
            trim_copy(h->tok_manufacturer, ti.manufacturerID, sizeof(ti.manufacturerID));
            trim_copy(h->tok_model, ti.model, sizeof(ti.model));
        }
    }
    rc = found == 1 ? HSM_OK : HSM_ERR_CONFIG;
out:
    free(list);
    return rc;
}

/* Is our token still in our slot? Only asked on error paths. */
static int token_present(hsm_t *h)
{
    CK_TOKEN_INFO ti;

    if (h->p11->C_GetTokenInfo(h->slot, &ti) != CKR_OK)
        return 0;
    return (ti.flags & CKF_TOKEN_INITIALIZED) && memcmp(ti.label, h->label, sizeof(h->label)) == 0;
}

static int login(hsm_t *h, CK_SESSION_HANDLE s);

int hsm_sess_login(hsm_t *h, hsm_sess_t *s)
{
    return login(h, s->handle);
}

static int login(hsm_t *h, CK_SESSION_HANDLE s)
{
    CK_SESSION_INFO si;
    CK_RV rv;
    int rc;

    /* A refused PIN is never retried on our own: each try counts towards the token's lockout. */
    if (h->pin_refused)
        return HSM_ERR_PIN;
    if ((rv = h->p11->C_GetSessionInfo(s, &si)) != CKR_OK)
        return hsm_rv_map(rv);
    if (si.state == CKS_RW_USER_FUNCTIONS || si.state == CKS_RO_USER_FUNCTIONS)
        return HSM_OK;
    rv = h->p11->C_Login(s, CKU_USER, h->pin, h->pin_len);
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
        return HSM_OK;
    if ((rc = hsm_rv_map(rv)) == HSM_ERR_PIN)
        h->pin_refused = 1;
    return rc;
}

/* ---- session pool ---------------------------------------------------------- */

static void pool_close_all(hsm_t *h)
{
    unsigned i;

    for (i = 0; i < h->nsess; i++) {
        if (h->sess[i].handle != CK_INVALID_HANDLE)
            (void)h->p11->C_CloseSession(h->sess[i].handle);
        h->sess[i].handle = CK_INVALID_HANDLE;
        h->sess[i].lost = 0;
        h->sess[i].dirty = 0;
    }
}

static int64_t ms_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/*
 * Initialise the library again, finalizing it first if it is ours. Rate limited:
 * while the token is away every borrower comes here, and a network HSM client
 * may take seconds to initialise.
 */
static int lib_reinit(hsm_t *h)
{
    if (h->reinit_tried && ms_since(&h->reinit_at) < HSM_REINIT_INTERVAL_MS)
        return HSM_ERR_UNAVAILABLE;
    h->reinit_tried = 1;
    clock_gettime(CLOCK_MONOTONIC, &h->reinit_at);
    if (h->own_init) {
        (void)h->p11->C_Finalize(NULL);
        h->own_init = 0;
    }
    return module_init(h) == CKR_OK ? HSM_OK : HSM_ERR_UNAVAILABLE;
}

/* Find the token again; re-initialise the library when that is ours to do and may help. */
static int slot_refind(hsm_t *h, CK_SLOT_ID *slot)
{
    int rc = slot_find(h, slot);

    /* Not initialised: someone finalized under us. Not found: the library may keep it lost until re-init. The slot
     * list itself refused as lost (a network HSM's client whose connection broke: p11-kit-client.so answers
     * CKR_DEVICE_REMOVED until it is initialised again, which connects again; docs/stack-notes.md sec. 10.3). */
    if (rc == HSM_ERR_NOTINIT_ || ((rc == HSM_ERR_CONFIG || rc == HSM_ERR_UNAVAILABLE) && h->own_init)) {
        if ((rc = lib_reinit(h)) == HSM_OK)
            rc = slot_find(h, slot);
    }
    return rc == HSM_ERR_NOTINIT_ ? HSM_ERR_UNAVAILABLE : rc;
}

/* Called by exactly one thread while no session is lent out (or from hsm_open, recovering = 0). */
static int pool_rebuild(hsm_t *h, int recovering)
{
    CK_SLOT_ID slot = 0;
    CK_RV rv;
    unsigned i;
    int rc;

    pool_close_all(h);
    rc = recovering ? slot_refind(h, &slot) : slot_find(h, &slot);
    if (rc != HSM_OK)
        goto out;
    pthread_mutex_lock(&h->mtx); /* for hsm_test_p11 only: every other reader holds a session */
    h->slot = slot;
    pthread_mutex_unlock(&h->mtx);
    for (i = 0; i < h->nsess; i++) {
        rv = h->p11->C_OpenSession(slot, HSM_SESS_FLAGS, NULL, NULL, &h->sess[i].handle);
        if (rv != CKR_OK) {
            h->sess[i].handle = CK_INVALID_HANDLE;
            rc = rv == CKR_SESSION_COUNT ? HSM_ERR_CONFIG : hsm_rv_map(rv);
            goto out;
        }
    }
    /* Login state is per application: one login covers every session. */
    rc = login(h, h->sess[0].handle);
out:
    if (rc != HSM_OK)
        pool_close_all(h);
    return rc;
}

int hsm_pool_borrow(hsm_t *h, hsm_sess_t **out)
{
    unsigned i;
    int rc = HSM_OK, waited = 0;

    *out = NULL;
    pthread_mutex_lock(&h->mtx);
    for (;;) {
        if (h->reconnecting || (h->broken && h->busy > 0)) {
            pthread_cond_wait(&h->cv, &h->mtx);
            continue;
        }
        if (h->broken) {
            h->reconnecting = 1;
            pthread_mutex_unlock(&h->mtx);
            rc = pool_rebuild(h, 1);
            pthread_mutex_lock(&h->mtx);
            h->reconnecting = 0;
            if (rc == HSM_OK)
                h->broken = 0;
            pthread_cond_broadcast(&h->cv);
            if (rc != HSM_OK) {
                /* Token absent, not found or not usable right now: the caller retries later. */
                if (rc != HSM_ERR_PIN && rc != HSM_ERR_NOMEM)
                    rc = HSM_ERR_UNAVAILABLE;
                break;
            }
            continue;
        }
        for (i = 0; i < h->nsess && h->sess[i].busy; i++)
            ;
        if (i < h->nsess) {
            h->sess[i].busy = 1;
            h->busy++;
            *out = &h->sess[i];
            break;
        }
        if (!waited) /* every session is lent out: /metrics counts the callers who wait (csc_hsm_session_waits_total) */
            h->waits++;
        waited = 1;
        pthread_cond_wait(&h->cv, &h->mtx);
    }
    pthread_mutex_unlock(&h->mtx);
    return rc;
}

/*
 * An operation may have been left active (e.g. CKR_BUFFER_TOO_SMALL keeps a
 * sign operation alive). PKCS#11 2.40 has no way to cancel it, so the session
 * is swapped for a fresh one. The new one is opened first so the application
 * never drops to zero sessions, which would log it out.
 */
static void sess_replace(hsm_t *h, hsm_sess_t *s)
{
    CK_SESSION_HANDLE nh = CK_INVALID_HANDLE;
    CK_RV rv;

    rv = h->p11->C_OpenSession(h->slot, HSM_SESS_FLAGS, NULL, NULL, &nh);
    if (rv != CKR_OK) {
        s->lost = 1;
        return;
    }
    (void)h->p11->C_CloseSession(s->handle);
    s->handle = nh;
    s->dirty = 0;
}

int hsm_pool_return(hsm_t *h, hsm_sess_t *s, int rc)
{
    int lost;

    if (!s)
        return rc;
    if ((rc == HSM_ERR_NOKEY || rc == HSM_ERR_INTERNAL) && !s->lost && !token_present(h)) {
        s->lost = 1;
        rc = HSM_ERR_UNAVAILABLE;
    }
    if (!s->lost && s->dirty)
        sess_replace(h, s);
    lost = s->lost;
    if (lost)
        hsm_cache_flush(h);
    pthread_mutex_lock(&h->mtx);
    if (lost)
        h->broken = 1;
    s->lost = 0;
    s->dirty = 0;
    s->busy = 0;
    h->busy--;
    /* One free session is for one waiter; a broken pool concerns them all (the last return starts the rebuild). */
    if (h->broken)
        pthread_cond_broadcast(&h->cv);
    else
        pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mtx);
    return rc;
}

int hsm_sess_logged_in(hsm_t *h, hsm_sess_t *s)
{
    CK_SESSION_INFO si;
    CK_RV rv;

    if ((rv = h->p11->C_GetSessionInfo(s->handle, &si)) != CKR_OK)
        return hsm_sess_rv(s, rv);
    return si.state == CKS_RW_USER_FUNCTIONS || si.state == CKS_RO_USER_FUNCTIONS;
}

int hsm_ready(hsm_t *h)
{
    hsm_sess_t *s = NULL;
    if (h == NULL)
        return HSM_ERR_INVAL;
    int rc = hsm_pool_borrow(h, &s);
    if (rc != HSM_OK)
        return rc;
    int li = hsm_sess_logged_in(h, s);
    if (li == 0)
        s->lost = 1; /* logged out behind our back: the next borrow rebuilds the pool and logs in again */
    return hsm_pool_return(h, s, li == 1 ? HSM_OK : li == 0 ? HSM_ERR_UNAVAILABLE : li);
}

/* ---- open / close ---------------------------------------------------------- */

static int handle_new(const hsm_config_t *cfg, hsm_t **out)
{
    unsigned n = cfg->sessions ? cfg->sessions : HSM_SESSIONS_DEFAULT;
    size_t llen = strnlen(cfg->token_label, sizeof(((hsm_t *)0)->label) + 1);
    hsm_t *h;
    unsigned i;
    int rc;

    *out = NULL;
    if (n > HSM_SESSIONS_MAX)
        return HSM_ERR_INVAL;
    /* A label longer than the 32-byte field can never match a token. */
    if (llen == 0 || llen > sizeof(h->label))
        return HSM_ERR_CONFIG;
    if (!(h = calloc(1, sizeof(*h))))
        return HSM_ERR_NOMEM;
    if (pthread_mutex_init(&h->mtx, NULL) != 0) {
        free(h);
        return HSM_ERR_NOMEM;
    }
    if (pthread_cond_init(&h->cv, NULL) != 0 || pthread_mutex_init(&h->cache_mtx, NULL) != 0) {
        /* Destroying an object that failed to initialise is harmless with glibc. */
        pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mtx);
        free(h);
        return HSM_ERR_NOMEM;
    }
    *out = h;
    memset(h->label, ' ', sizeof(h->label));
    memcpy(h->label, cfg->token_label, llen);
    if (!(h->sess = calloc(n, sizeof(*h->sess))))
        return HSM_ERR_NOMEM;
    h->nsess = n;
    for (i = 0; i < n; i++)
        h->sess[i].handle = CK_INVALID_HANDLE;
    if ((rc = pin_store(h, cfg->pin)) != HSM_OK)
        return rc;
    return hsm_cache_init(h);
}

int hsm_open(const hsm_config_t *cfg, hsm_t **out)
{
    hsm_t *h = NULL;
    CK_RV rv;
    int rc;

    if (!out)
        return HSM_ERR_INVAL;
    *out = NULL;
    if (!cfg || !cfg->module || !cfg->token_label || !cfg->pin)
        return HSM_ERR_INVAL;
    if ((rc = handle_new(cfg, &h)) != HSM_OK)
        goto out;
    if ((rc = module_load(h, cfg->module)) != HSM_OK)
        goto out;
    if ((rv = module_init(h)) != CKR_OK) {
        /* e.g. SoftHSM with an unreadable configuration returns CKR_GENERAL_ERROR */
        rc = rv == CKR_HOST_MEMORY ? HSM_ERR_NOMEM : HSM_ERR_CONFIG;
        goto out;
    }
    if ((rc = pool_rebuild(h, 0)) != HSM_OK) {
        if (rc == HSM_ERR_NOTINIT_)
            rc = HSM_ERR_CONFIG;
        goto out;
    }
    *out = h;
    h = NULL;
out:
    hsm_close(h);
    return rc;
}

void hsm_close(hsm_t *h)
{
    if (!h)
        return;
    if (h->p11) {
        if (h->sess)
            pool_close_all(h);
        /* Only the one who initialised finalizes: others in the process may still use the module. */
        if (h->own_init)
            (void)h->p11->C_Finalize(NULL);
    }
    if (h->dl)
        dlclose(h->dl);
    hsm_cache_free(h);
    free(h->sess);
    pin_wipe(h);
    pthread_mutex_destroy(&h->cache_mtx);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mtx);
    free(h);
}

unsigned hsm_sessions(const hsm_t *h)
{
    return h ? h->nsess : 0;
}

uint64_t hsm_session_waits(hsm_t *h)
{
    uint64_t n;

    if (!h)
        return 0;
    pthread_mutex_lock(&h->mtx);
    n = h->waits;
    pthread_mutex_unlock(&h->mtx);
    return n;
}

#ifdef CSC_TEST_HOOKS
void hsm_test_gcm_by_ecb(hsm_t *h, int on)
{
    __atomic_store_n(&h->gcm_by_ecb, on, __ATOMIC_RELAXED);
}

CK_FUNCTION_LIST *hsm_test_p11(hsm_t *h, CK_SLOT_ID *slot)
{
    pthread_mutex_lock(&h->mtx);
    *slot = h->slot;
    pthread_mutex_unlock(&h->mtx);
    return h->p11;
}
#endif
