/*
 * hsm_int.h - private header of the hsm module (not for other modules).
 *
 * hsm_p11.c owns the module, the token and the session pool (and recovery);
 * hsm_keys.c owns the CKA_ID -> handle cache and key management; hsm_sign.c
 * the signing mechanisms. The few test hooks at the end are for
 * tests/unit/hsm only: they let a test sabotage the token behind our back.
 */
#ifndef HSM_INT_H
#define HSM_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

#include "hsm.h"

#define HSM_PIN_MAX 256           /* longest user PIN accepted */
#define HSM_ID_MAX 64             /* longest CKA_ID accepted from callers */
#define HSM_LABEL_MAX 255         /* longest CKA_LABEL for generated keys */
#define HSM_SESSIONS_MAX 256      /* largest session pool */
#define HSM_SESSIONS_DEFAULT 4
#define HSM_SLOTS_MAX 1024        /* slots scanned when looking for the token */
#define HSM_CACHE_BUCKETS 1024
#define HSM_CACHE_MAX 65536       /* entries; the cache is flushed when full */
#define HSM_EC_RAW_MAX 132        /* r||s of P-521 */
#define HSM_REINIT_INTERVAL_MS 1000 /* least time between two re-initialisations of the library */

typedef struct hsm_sess {
    CK_SESSION_HANDLE handle;     /* CK_INVALID_HANDLE when not open */
    int busy;                     /* lent to a caller */
    int lost;                     /* a call returned a "token/session lost" code */
    int dirty;                    /* an operation may still be active on it */
} hsm_sess_t;

typedef struct hsm_cache_ent {
    struct hsm_cache_ent *next;
    CK_OBJECT_CLASS cls;
    CK_OBJECT_HANDLE obj;
    CK_KEY_TYPE ktype;
    size_t sig_raw_len;           /* private keys: C_Sign output size (modulus or 2 * field) */
    size_t id_len;
    uint8_t id[HSM_ID_MAX];
} hsm_cache_ent_t;

/** What the signing and key code needs to know about a key object. */
typedef struct hsm_key {
    CK_OBJECT_HANDLE obj;
    CK_KEY_TYPE ktype;
    size_t sig_raw_len;
} hsm_key_t;

struct hsm {
    void *dl;
    CK_FUNCTION_LIST *p11;
    int own_init;                 /* we called C_Initialize successfully: C_Finalize on close */
    unsigned char label[32];      /* token label, blank padded like CK_TOKEN_INFO.label */
    char manufacturer[33];        /* CK_INFO.manufacturerID, trimmed */
    char description[33];         /* CK_INFO.libraryDescription, trimmed */
    char tok_manufacturer[33];    /* our token's CK_TOKEN_INFO.manufacturerID, trimmed (set by slot_find) */
    char tok_model[17];           /* its model, trimmed */
    int gcm_by_ecb;               /* CKM_AES_GCM refused by the module (p11-kit's RPC): the factor key's GCM is
                                   * computed over CKM_AES_ECB blocks (hsm_factor.c); set once, never reset */
    CK_SLOT_ID slot;

    unsigned char *pin;           /* own mmap'ed page, mlock'ed if possible */
    size_t pin_len;
    size_t pin_map_len;
    int pin_locked;
    int pin_refused;              /* login failed with a PIN error: never retry (PIN lockout) */

    pthread_mutex_t mtx;          /* guards everything of the pool below */
    pthread_cond_t cv;
    hsm_sess_t *sess;
    unsigned nsess;
    unsigned busy;                /* sessions lent out */
    uint64_t waits;               /* borrowers that found every session lent out and waited (under mtx) */
    int broken;                   /* the pool must be rebuilt before the next use */
    int reconnecting;
    int reinit_tried;             /* a re-initialisation was attempted at reinit_at (CLOCK_MONOTONIC) */
    struct timespec reinit_at;

    pthread_mutex_t cache_mtx;    /* guards the cache */
    hsm_cache_ent_t **buckets;
    size_t cache_n;
    uint64_t cache_gen;           /* bumped on flush and destroy: lookups racing them do not insert */
};

/* ---- hsm_p11.c ---------------------------------------------------------- */

/** Map a PKCS#11 return value to an HSM_* code. */
int hsm_rv_map(CK_RV rv);

/** True for the return values after which the session pool must be rebuilt. */
int hsm_rv_lost(CK_RV rv);

/** Record rv on the session (lost codes mark it) and map it. */
int hsm_sess_rv(hsm_sess_t *s, CK_RV rv);

/** Lend a session to the caller, rebuilding the pool first if it is broken. Blocks while all are busy. */
int hsm_pool_borrow(hsm_t *h, hsm_sess_t **out);

/**
 * Give a session back (NULL is allowed) and return the final code of the call.
 * A lost session breaks the pool and flushes the cache; a dirty one is replaced. A call that ends in
 * HSM_ERR_NOKEY or HSM_ERR_INTERNAL first checks that the token is still there: if not, the session is
 * lost too and the code becomes HSM_ERR_UNAVAILABLE (SoftHSM reports a vanished token directory as
 * missing objects and CKR_GENERAL_ERROR, not as a token error).
 */
int hsm_pool_return(hsm_t *h, hsm_sess_t *s, int rc);

/** Log the application in as the user with the stored PIN (no-op if it is). */
int hsm_sess_login(hsm_t *h, hsm_sess_t *s);

/** Is the application logged in, seen from session s? 1 yes, 0 no, <0 HSM_* error. */
int hsm_sess_logged_in(hsm_t *h, hsm_sess_t *s);

/* ---- hsm_keys.c --------------------------------------------------------- */

int hsm_cache_init(hsm_t *h);
void hsm_cache_free(hsm_t *h);
void hsm_cache_flush(hsm_t *h);
void hsm_cache_drop(hsm_t *h, const uint8_t *id, size_t id_len);

/**
 * Find the key object of class cls with this CKA_ID, through the cache.
 * @return HSM_OK, HSM_ERR_NOKEY, HSM_ERR_UNAVAILABLE (not logged in / lost), ...
 */
int hsm_key_find(hsm_t *h, hsm_sess_t *s, CK_OBJECT_CLASS cls, const uint8_t *id, size_t id_len, hsm_key_t *out);
/** hsm_keys.c, for hsm_destroy.c: up to max objects of class cls with this CKA_ID (*n of them; a failed search
 *  marks the session dirty); what "nothing found" means (HSM_ERR_NOKEY, or HSM_ERR_UNAVAILABLE when logged out:
 *  private objects are invisible then, a lost login rather than a missing key); a CKA_ID of 1..HSM_ID_MAX bytes. */
int hsm_find_objs(hsm_t *h, hsm_sess_t *s, CK_OBJECT_CLASS cls, const uint8_t *id, size_t id_len,
                  CK_OBJECT_HANDLE *objs, CK_ULONG max, CK_ULONG *n);
int hsm_not_found(hsm_t *h, hsm_sess_t *s);
int hsm_id_ok(const uint8_t *id, size_t id_len);
#define HSM_EC_PARAMS_MAX 256   /* DER OID of a named curve is ~10 bytes */
/* hsm_keys.c, for hsm_keygen.c: the cache generation to read before creating a key, and putting a new private
 * key (its info read from the token) into the cache. */
uint64_t hsm_cache_gen(hsm_t *h);
void hsm_cache_prime(hsm_t *h, hsm_sess_t *s, const uint8_t *id, size_t id_len, hsm_key_t *k, uint64_t gen);

/* hsm_keys.c, for hsm_backup.c and hsm_factor.c: the secret key of the token with this fixed CKA_ID (HSM_ERR_NOKEY
 * if there is none), and a new one: CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, never extractable, generated with mech,
 * type kt of len bytes, with exactly the usages named in uses (HSM_USE_*), label and CKA_ID. */
enum { HSM_USE_SIGN = 1, HSM_USE_CRYPT = 2 }; /* CKA_SIGN + CKA_VERIFY; CKA_ENCRYPT + CKA_DECRYPT */
int hsm_secret_find(hsm_t *h, hsm_sess_t *s, const uint8_t id[HSM_KEYID_LEN], CK_OBJECT_HANDLE *obj);
int hsm_secret_generate(hsm_t *h, hsm_sess_t *s, CK_MECHANISM_TYPE mech, CK_KEY_TYPE kt, CK_ULONG len, unsigned uses,
                        const char *label, const uint8_t id[HSM_KEYID_LEN]);

/* ---- hsm_sign.c --------------------------------------------------------- */

/** DER prefix of the PKCS#1 DigestInfo for md_nid (SHA-256/384/512), NULL otherwise. */
const uint8_t *hsm_digestinfo_prefix(int md_nid, size_t *len);

/** Digest length for md_nid (SHA-256/384/512), 0 otherwise. */
size_t hsm_md_len(int md_nid);

/* ---- test hooks (tests/unit/hsm only: the csc_hsm_t library, -DCSC_TEST_HOOKS) ---- */

#ifdef CSC_TEST_HOOKS

/** The loaded function list and the current slot of the token. */
CK_FUNCTION_LIST *hsm_test_p11(hsm_t *h, CK_SLOT_ID *slot);

/** Make the factor key's AES-GCM go through CKM_AES_ECB blocks (as when the module refuses CKM_AES_GCM), or not. */
void hsm_test_gcm_by_ecb(hsm_t *h, int on);

/** Number of entries in the handle cache. */
size_t hsm_test_cache_count(hsm_t *h);
#endif

#endif
