/*
 * adm_backup.c - backup and restore of credentials (JIPDEC J8), behind csc-admin.
 *
 * A backup file holds what a restore needs to bring a credential back after its key was lost or destroyed:
 * the credential record's fields, the public key, and the private key wrapped in the HSM under the trusted
 * backup key (CKM_AES_KEY_WRAP_PAD); the private key is never in clear outside the token. An integrity tag
 * (HMAC-SHA256 with a non-extractable key, computed and checked in the HSM) covers every byte before it.
 *
 * File layout (integers big-endian):
 *   "CSCBKUP1" (8 bytes) | u16 format version (1) | fields: u8 tag, u32 length, value ... |
 *   u8 0xFF, u32 32, HMAC-SHA256 over every byte before the HMAC value
 * Restore checks the tag in the HSM before it reads anything else; a file that is altered anywhere (header,
 * fields, wrapped key, tag) or truncated is refused and nothing is written. Files are created 0600, written
 * to a temporary name, synced, and linked to their final name (never overwriting a file).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "adm_int.h"

#define BK_MAGIC "CSCBKUP1"
#define BK_MAGIC_LEN 8
#define BK_VERSION 1
#define BK_HDR_LEN (BK_MAGIC_LEN + 2)
#define BK_TAG_FIELD 0xFF
#define BK_TRAILER_LEN (1 + 4 + HSM_BACKUP_TAG_LEN)
#define BK_FILE_MAX (64 * 1024)
#define BK_PUB_MAX 2048
#define BK_MECH "CKM_AES_KEY_WRAP_PAD"

enum {
    F_ID = 1, F_OWNER, F_STATUS, F_DESC, F_KEY_TYPE, F_KEY_BITS, F_KEY_CURVE, F_AUTH_MODE, F_AUTH_EXPR, F_PIN_VER,
    F_SCAL, F_MULTISIGN, F_CERTS, F_CREATED, F_NOT_BEFORE, F_NOT_AFTER, F_QUALIFIER, F_KEY_BACKUP, F_TIME,
    F_OPERATOR, F_MECH = 32, F_PUBKEY = 33, F_WRAPPED = 34,
};

#define ERR ADM_FAIL

/* ---- audit ------------------------------------------------------------------------ */

typedef struct bk_audit {
    stor_audit_t rec;
} bk_audit_t;

static int audit_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_audit_append(t, &((bk_audit_t *)arg)->rec);
}

static void audit_fill(stor_audit_t *r, const adm_t *a, uint32_t event, uint32_t result, const char *user,
                       const char *cred, const char *what)
{
    memset(r, 0, sizeof(*r));
    r->event = event;
    r->result = result;
    snprintf(r->user, sizeof(r->user), "%s", user ? user : "");
    snprintf(r->cred, sizeof(r->cred), "%s", cred ? cred : "");
    snprintf(r->client, sizeof(r->client), "csc-admin");
    snprintf(r->detail, sizeof(r->detail), "operator=%s %s", a->operator_name ? a->operator_name : "-", what);
}

/* "action=A refused: WHY", cut to the audit detail's size (the full reason goes to the operator). */
static void refusal_text(char *out, size_t sz, const char *action, const char *why)
{
    if (snprintf(out, sz, "action=%s refused: %s", action, why) < 0)
        out[0] = '\0';
}

/* A refusal is audited in its own transaction; the refusal stands even if that write fails. */
static void audit_refusal(const adm_t *a, uint32_t event, const char *user, const char *cred, const char *why)
{
    bk_audit_t b;

    audit_fill(&b.rec, a, event, STOR_RES_DENIED, user, cred, why);
    (void)stor_write(a->stor, audit_fn, &b);
}

/* ---- backup keys -------------------------------------------------------------------- */

int adm_backup_init(const adm_t *a, const char *so_pin, int *created, char *err, size_t err_sz)
{
    char what[128];
    bk_audit_t b;
    int trusted = 0, rc;

    *created = 0;
    if (a->hsm == NULL)
        return ERR("backup init needs the HSM");
    rc = hsm_backup_init(a->hsm, so_pin, created);
    if (rc == HSM_ERR_INVAL) {
        ERR("the backup wrapping key is missing: creating it needs the token's SO PIN");
        return -2;
    }
    if (rc == HSM_ERR_PIN) {
        audit_refusal(a, STOR_EV_BACKUP, NULL, NULL, "action=backup.init refused: SO login failed");
        return ERR("the HSM refused the SO PIN");
    }
    if (rc != HSM_OK)
        return ERR("cannot create the backup keys in the HSM: %s", hsm_strerror(rc));
    if ((rc = hsm_backup_status(a->hsm, &trusted)) != HSM_OK || !trusted)
        return ERR("the backup wrapping key is not CKA_TRUSTED: keys cannot be backed up");
    if (*created == 0)
        return 0;
    snprintf(what, sizeof(what), "action=backup.init created=%s%s%s", (*created & 1) ? "wrap-key" : "",
             *created == 3 ? "," : "", (*created & 2) ? "integrity-key" : "");
    audit_fill(&b.rec, a, STOR_EV_BACKUP, STOR_RES_OK, NULL, NULL, what);
    if ((rc = stor_write(a->stor, audit_fn, &b)) != 0)
        return ERR("backup keys created, but the audit record failed: %s", stor_strerror(rc));
    return 0;
}

/* ---- encoding ---------------------------------------------------------------------- */

typedef struct bk_buf {
    uint8_t *p;
    size_t len, cap;
    int failed;
} bk_buf_t;

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_raw(bk_buf_t *b, const void *data, size_t len)
{
    if (b->failed || len > b->cap - b->len) {
        b->failed = 1;
        return;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void put_field(bk_buf_t *b, uint8_t tag, const void *data, size_t len)
{
    uint8_t hdr[5];

    hdr[0] = tag;
    put_be(hdr + 1, len, 4);
    put_raw(b, hdr, sizeof(hdr));
    put_raw(b, data, len);
}

static void put_str(bk_buf_t *b, uint8_t tag, const char *s)
{
    put_field(b, tag, s, strlen(s));
}

static void put_u32(bk_buf_t *b, uint8_t tag, uint32_t v)
{
    uint8_t x[4];
    put_be(x, v, 4);
    put_field(b, tag, x, 4);
}

static void put_i64(bk_buf_t *b, uint8_t tag, int64_t v)
{
    uint8_t x[8];
    put_be(x, (uint64_t)v, 8);
    put_field(b, tag, x, 8);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void encode_cred(bk_buf_t *b, const stor_cred_t *c, const char *op)
{
    uint8_t ver[2];

    put_raw(b, BK_MAGIC, BK_MAGIC_LEN);
    put_be(ver, BK_VERSION, 2);
    put_raw(b, ver, 2);
    put_str(b, F_ID, c->id);
    put_str(b, F_OWNER, c->owner);
    put_u32(b, F_STATUS, c->status);
    put_str(b, F_DESC, c->description);
    put_u32(b, F_KEY_TYPE, c->key_type);
    put_u32(b, F_KEY_BITS, c->key_bits);
    put_str(b, F_KEY_CURVE, c->key_curve);
    put_u32(b, F_AUTH_MODE, c->auth_mode);
    put_str(b, F_AUTH_EXPR, c->auth_expr);
    put_field(b, F_PIN_VER, c->pin_verifier, c->pin_verifier_len);
    put_u32(b, F_SCAL, c->scal);
    put_u32(b, F_MULTISIGN, c->multisign);
    put_field(b, F_CERTS, c->certs, c->certs_len);
    put_i64(b, F_CREATED, c->created_at);
    put_i64(b, F_NOT_BEFORE, c->cert_not_before);
    put_i64(b, F_NOT_AFTER, c->cert_not_after);
    put_str(b, F_QUALIFIER, c->qualifier);
    put_u32(b, F_KEY_BACKUP, c->key_backup);
    put_i64(b, F_TIME, now_ms());
    put_str(b, F_OPERATOR, op ? op : "-");
    put_str(b, F_MECH, BK_MECH);
}

/* ---- backup --------------------------------------------------------------------------- */

/* Write data to a fresh 0600 file next to path, sync it, and link it to path (which must not exist). */
int adm_backup_write_file(const char *path, const uint8_t *data, size_t len, char *err, size_t err_sz)
{
    char tmp[4096];
    int fd, rc = -1;
    size_t off = 0;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= sizeof(tmp))
        return ERR("file name too long");
    if ((fd = mkstemp(tmp)) < 0)
        return ERR("cannot create %s: %s", tmp, strerror(errno));
    if (fchmod(fd, 0600) != 0)
        goto io;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto io;
        off += (size_t)n;
    }
    if (fsync(fd) != 0)
        goto io;
    if (close(fd) != 0) {
        fd = -1;
        goto io;
    }
    fd = -1;
    if (link(tmp, path) != 0) {
        if (errno == EEXIST)
            ERR("%s exists already; a backup never overwrites a file", path);
        else
            ERR("cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
    goto out;
io:
    ERR("cannot write %s: %s", tmp, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

/* The backup of credential id in b (whose buffer the caller allocated, BK_FILE_MAX bytes) and its record in c; a
 * refusal audited. 0 or -1 (err). */
static int backup_make(const adm_t *a, const char *id, bk_buf_t *bp, stor_cred_t *c, char *err, size_t err_sz)
{
    uint8_t *wrapped = malloc(HSM_WRAPPED_MAX), pub[BK_PUB_MAX], *pp = pub, tag[HSM_BACKUP_TAG_LEN];
    bk_buf_t b = *bp;
    EVP_PKEY *pk = NULL;
    size_t wlen = 0;
    char why[STOR_NAME_MAX + 200], what[256];
    int rc = -1, hrc = HSM_OK, trusted = 0, plen = 0;

    if (c == NULL || wrapped == NULL || b.p == NULL) {
        ERR("out of memory");
        goto out;
    }
    if (a->hsm == NULL) {
        ERR("backup needs the HSM");
        goto out;
    }
    if (stor_cred_get(a->stor, id, c) != 0) {
        ERR("no credential %s", id);
        goto out;
    }
    why[0] = '\0';
    if (c->status == STOR_CRED_DESTROYED) {
        snprintf(why, sizeof(why), "credential %s is destroyed: its key no longer exists", id);
    } else if (c->key_backup != STOR_KEY_BACKUP_WRAPPED) {
        snprintf(why, sizeof(why), "credential %s: key generated non-extractable (key_backup = no); it cannot be "
                 "backed up", id);
    } else if ((hrc = hsm_backup_status(a->hsm, &trusted)) != HSM_OK || !trusted) {
        snprintf(why, sizeof(why), "no trusted backup key in the HSM (%s): run csc-admin backup init first",
                 hrc != HSM_OK ? hsm_strerror(hrc) : "not CKA_TRUSTED");
    } else if ((hrc = hsm_pubkey(a->hsm, c->key_id, c->key_id_len, &pk)) != HSM_OK ||
               (plen = i2d_PUBKEY(pk, NULL)) <= 0 || plen > (int)sizeof(pub) || i2d_PUBKEY(pk, &pp) != plen) {
        snprintf(why, sizeof(why), "credential %s: cannot read its public key (%s)", id, hsm_strerror(hrc));
    } else if ((hrc = hsm_backup_wrap(a->hsm, c->key_id, c->key_id_len, wrapped, HSM_WRAPPED_MAX, &wlen)) != HSM_OK) {
        if (hrc == HSM_ERR_DENIED)
            snprintf(why, sizeof(why), "credential %s: the HSM refuses to let the key out (%s)", id,
                     hsm_strerror(hrc));
        else
            snprintf(why, sizeof(why), "credential %s: wrapping the key failed (%s)", id, hsm_strerror(hrc));
    }
    if (why[0] != '\0') {
        refusal_text(what, sizeof(what), "credential.backup", why);
        audit_refusal(a, STOR_EV_BACKUP, c->owner, id, what);
        ERR("%s", why);
        goto out;
    }
    encode_cred(&b, c, a->operator_name);
    put_field(&b, F_PUBKEY, pub, (size_t)plen);
    put_field(&b, F_WRAPPED, wrapped, wlen);
    {
        uint8_t hdr[5] = {BK_TAG_FIELD};
        put_be(hdr + 1, HSM_BACKUP_TAG_LEN, 4);
        put_raw(&b, hdr, sizeof(hdr));
    }
    if (b.failed || b.len + HSM_BACKUP_TAG_LEN > b.cap) {
        ERR("credential %s: backup larger than %d bytes", id, BK_FILE_MAX);
        goto out;
    }
    if ((hrc = hsm_backup_tag(a->hsm, b.p, b.len, tag)) != HSM_OK) {
        ERR("cannot compute the integrity tag in the HSM: %s", hsm_strerror(hrc));
        goto out;
    }
    put_raw(&b, tag, sizeof(tag));
    rc = 0;
out:
    *bp = b;
    EVP_PKEY_free(pk);
    if (wrapped != NULL)
        OPENSSL_cleanse(wrapped, HSM_WRAPPED_MAX);
    free(wrapped);
    return rc;
}

typedef struct backup_mark {
    const stor_cred_t *c; /* the record the backup was made from */
    stor_audit_t rec;
} backup_mark_t;

/* The credential counts a backup of its current key (what /account shows), unless the key changed meanwhile. */
static int backup_mark(stor_cred_t *cur, void *arg)
{
    const stor_cred_t *c = ((backup_mark_t *)arg)->c;
    if (cur->status == STOR_CRED_DESTROYED || cur->key_id_len != c->key_id_len ||
        memcmp(cur->key_id, c->key_id, c->key_id_len) != 0)
        return STOR_ERR_EXISTS;
    cur->backups++;
    cur->backup_last_at = (int64_t)time(NULL);
    return 0;
}

static int backup_mark_fn(stor_txn_t *t, void *arg)
{
    backup_mark_t *m = arg;
    return stor_txn_cred_change(t, m->c->id, backup_mark, m, &m->rec);
}

/* The audit record of a backup made (file: its name, for people), in the write that counts it on the credential. */
static int backup_audit(const adm_t *a, const stor_cred_t *c, const char *file, char *err, size_t err_sz)
{
    char what[256];
    backup_mark_t m = {.c = c};
    snprintf(what, sizeof(what), "action=credential.backup mech=%s file=%s", BK_MECH, file);
    audit_fill(&m.rec, a, STOR_EV_BACKUP, STOR_RES_OK, c->owner, c->id, what);
    int rc = stor_write(a->stor, backup_mark_fn, &m);
    if (rc == STOR_ERR_EXISTS)
        return ERR("credential %s changed its key during the backup; no backup written", c->id);
    return rc == 0 ? 0 : ERR("storage (audit): %s; no backup written", stor_strerror(rc));
}

static void backup_free(bk_buf_t *b, stor_cred_t *c)
{
    if (b->p != NULL)
        OPENSSL_cleanse(b->p, b->cap);
    free(b->p);
    OPENSSL_clear_free(c, sizeof(*c));
}

int adm_cred_backup(const adm_t *a, const char *id, const char *file, char *err, size_t err_sz)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    bk_buf_t b = {.p = malloc(BK_FILE_MAX), .cap = BK_FILE_MAX};
    int rc = backup_make(a, id, &b, c, err, err_sz);
    if (rc == 0)
        rc = adm_backup_write_file(file, b.p, b.len, err, err_sz);
    if (rc == 0 && (rc = backup_audit(a, c, file, err, err_sz)) != 0)
        unlink(file); /* an unaudited backup does not exist */
    backup_free(&b, c);
    return rc;
}

int adm_cred_backup_mem(const adm_t *a, const char *id, const char *file, uint8_t **out, size_t *out_len, char *err,
                        size_t err_sz)
{
    stor_cred_t *c = calloc(1, sizeof(*c));
    bk_buf_t b = {.p = malloc(BK_FILE_MAX), .cap = BK_FILE_MAX};
    *out = NULL;
    *out_len = 0;
    int rc = backup_make(a, id, &b, c, err, err_sz);
    if (rc == 0 && (*out = OPENSSL_memdup(b.p, b.len)) == NULL)
        rc = ERR("out of memory");
    if (rc == 0 && (rc = backup_audit(a, c, file, err, err_sz)) != 0) {
        OPENSSL_clear_free(*out, b.len);
        *out = NULL;
    }
    if (rc == 0)
        *out_len = b.len;
    backup_free(&b, c);
    return rc;
}

/* ---- restore --------------------------------------------------------------------------- */

typedef struct bk_parsed {
    stor_cred_t c;
    const uint8_t *pub, *wrapped;
    size_t pub_len, wrapped_len;
    uint64_t seen;
} bk_parsed_t;

static int get_str(char *dst, size_t cap, const uint8_t *v, size_t len)
{
    if (len >= cap || memchr(v, '\0', len) != NULL)
        return -1;
    memcpy(dst, v, len);
    dst[len] = '\0';
    return 0;
}

static int get_bytes(uint8_t *dst, uint32_t *dlen, size_t cap, const uint8_t *v, size_t len)
{
    if (len > cap)
        return -1;
    memcpy(dst, v, len);
    *dlen = (uint32_t)len;
    return 0;
}

static int get_u32(uint32_t *dst, const uint8_t *v, size_t len)
{
    if (len != 4)
        return -1;
    *dst = (uint32_t)get_be(v, 4);
    return 0;
}

static int get_i64(int64_t *dst, const uint8_t *v, size_t len)
{
    if (len != 8)
        return -1;
    *dst = (int64_t)get_be(v, 8);
    return 0;
}

/* Parse the fields of a file whose tag was verified; strict: unknown, repeated or missing fields refused. */
static int parse(const uint8_t *p, size_t n, bk_parsed_t *o)
{
    stor_cred_t *c = &o->c;
    size_t off = BK_HDR_LEN, end = n - BK_TRAILER_LEN;
    int64_t ignored;
    char tmp[STOR_DESC_MAX + 1];

    if (memcmp(p, BK_MAGIC, BK_MAGIC_LEN) != 0 || get_be(p + BK_MAGIC_LEN, 2) != BK_VERSION ||
        p[end] != BK_TAG_FIELD || get_be(p + end + 1, 4) != HSM_BACKUP_TAG_LEN)
        return -1;
    while (off < end) {
        uint8_t t;
        size_t len;
        const uint8_t *v;
        int bad;

        if (end - off < 5)
            return -1;
        t = p[off];
        len = (size_t)get_be(p + off + 1, 4);
        off += 5;
        if (len > end - off || t >= 64 || (o->seen & (1ull << t)))
            return -1;
        o->seen |= 1ull << t;
        v = p + off;
        off += len;
        switch (t) {
        case F_ID: bad = get_str(c->id, sizeof(c->id), v, len); break;
        case F_OWNER: bad = get_str(c->owner, sizeof(c->owner), v, len); break;
        case F_STATUS: bad = get_u32(&c->status, v, len); break;
        case F_DESC: bad = get_str(c->description, sizeof(c->description), v, len); break;
        case F_KEY_TYPE: bad = get_u32(&c->key_type, v, len); break;
        case F_KEY_BITS: bad = get_u32(&c->key_bits, v, len); break;
        case F_KEY_CURVE: bad = get_str(c->key_curve, sizeof(c->key_curve), v, len); break;
        case F_AUTH_MODE: bad = get_u32(&c->auth_mode, v, len); break;
        case F_AUTH_EXPR: bad = get_str(c->auth_expr, sizeof(c->auth_expr), v, len); break;
        case F_PIN_VER: bad = get_bytes(c->pin_verifier, &c->pin_verifier_len, sizeof(c->pin_verifier), v, len); break;
        case F_SCAL: bad = get_u32(&c->scal, v, len); break;
        case F_MULTISIGN: bad = get_u32(&c->multisign, v, len); break;
        case F_CERTS: bad = get_bytes(c->certs, &c->certs_len, sizeof(c->certs), v, len); break;
        case F_CREATED: bad = get_i64(&c->created_at, v, len); break;
        case F_NOT_BEFORE: bad = get_i64(&c->cert_not_before, v, len); break;
        case F_NOT_AFTER: bad = get_i64(&c->cert_not_after, v, len); break;
        case F_QUALIFIER: bad = get_str(c->qualifier, sizeof(c->qualifier), v, len); break;
        case F_KEY_BACKUP: bad = get_u32(&c->key_backup, v, len); break;
        case F_TIME: bad = get_i64(&ignored, v, len); break;
        case F_OPERATOR: bad = get_str(tmp, sizeof(tmp), v, len); break;
        case F_MECH: bad = get_str(tmp, sizeof(tmp), v, len) != 0 || strcmp(tmp, BK_MECH) != 0; break;
        case F_PUBKEY: o->pub = v, o->pub_len = len, bad = len == 0; break;
        case F_WRAPPED: o->wrapped = v, o->wrapped_len = len, bad = len == 0 || len > HSM_WRAPPED_MAX; break;
        default: bad = 1;
        }
        if (bad)
            return -1;
    }
    for (int t = F_ID; t <= F_OPERATOR; t++)
        if (!(o->seen & (1ull << t)))
            return -1;
    if (!(o->seen & (1ull << F_MECH)) || !(o->seen & (1ull << F_PUBKEY)) || !(o->seen & (1ull << F_WRAPPED)))
        return -1;
    if (c->key_type != STOR_KEY_RSA && c->key_type != STOR_KEY_EC)
        return -1;
    if (c->key_backup != STOR_KEY_BACKUP_NO && c->key_backup != STOR_KEY_BACKUP_WRAPPED)
        return -1;
    /* A PIN the owner had not set yet when the file was made (no verifier): it still waits for the owner (issue 12),
     * else the restored credential would refuse every PIN and never offer its owner to set one. */
    c->pin_unset = strstr(c->auth_expr, "PIN") != NULL && c->pin_verifier_len == 0;
    return 0;
}

int adm_backup_read_file(const char *path, uint8_t **out, size_t *len, char *err, size_t err_sz)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = malloc(BK_FILE_MAX + 1);
    size_t n;

    *out = NULL;
    *len = 0;
    if (f == NULL || p == NULL) {
        if (f != NULL)
            fclose(f);
        free(p);
        return ERR("cannot read %s: %s", path, f == NULL ? strerror(errno) : "out of memory");
    }
    n = fread(p, 1, BK_FILE_MAX + 1, f);
    fclose(f);
    if (n > BK_FILE_MAX) {
        free(p);
        return ERR("%s: larger than any backup file (%d bytes); nothing restored", path, BK_FILE_MAX);
    }
    *out = p;
    *len = n;
    return 0;
}

#define RESTORE_OWNER_TERMINATED (-1000) /* put_restored_fn results of its own */
#define RESTORE_REFUSED (-1001)          /* restore_refused() said why */

/* The end-entity certificate in the record certifies the public key in the file. */
static int cert_matches(const stor_cred_t *c, EVP_PKEY *pk);

/*
 * J7, J8: what a backup may bring back over an existing record. Only a key an operator destroyed (csc-admin
 * credential destroy): never one destroyed by certificate revocation or the owner's termination (nor one destroyed
 * before the reason was recorded), and never a key the credential no longer names: a renewal replaced it and
 * destroyed it, so the backup is older than the renewal. 0, or 1 with the reason in why.
 */
static int restore_refused(const stor_cred_t *cur, EVP_PKEY *pk, char *why, size_t why_sz)
{
    if (cur->status != STOR_CRED_DESTROYED) {
        snprintf(why, why_sz, "credential %s exists and is not destroyed (restore is for recovery only)", cur->id);
        return 1;
    }
    if (cur->end_reason != STOR_CRED_END_OPERATOR) {
        snprintf(why, why_sz, "credential %s was destroyed by %s: its key is never restored", cur->id,
                 cur->end_reason == STOR_CRED_END_REVOKED      ? "certificate revocation"
                 : cur->end_reason == STOR_CRED_END_TERMINATED ? "the owner's termination"
                                                               : "an event recorded before this version (reason unknown)");
        return 1;
    }
    if (!cert_matches(cur, pk)) {
        snprintf(why, why_sz, "the backup is older than the credential's last renewal: the key it holds was replaced "
                 "and destroyed by the renewal");
        return 1;
    }
    return 0;
}

/*
 * J8: a restore happens only on its user's request (made on /account: stor_restore_req_t). The request must exist, be
 * open and unexpired, and name this credential and its owner. 0, or 1 with the reason in why.
 */
static int request_refused(stor_txn_t *t, const char *ref, const stor_cred_t *c, stor_restore_req_t *r, char *why,
                           size_t why_sz)
{
    int rc = stor_txn_restore_req_get(t, ref, r); /* a reference that is no name: STOR_ERR_INVAL */
    if (rc == STOR_ERR_NOTFOUND || rc == STOR_ERR_INVAL)
        snprintf(why, why_sz, "no restore request %s (the user makes it on the account page)", ref);
    else if (rc != 0)
        snprintf(why, why_sz, "storage: %s", stor_strerror(rc));
    else if (strcmp(r->cred, c->id) != 0 || strcmp(r->user, c->owner) != 0)
        snprintf(why, why_sz, "restore request %s is for another credential", ref);
    else if (r->state != STOR_RESTORE_OPEN)
        snprintf(why, why_sz, "restore request %s was used already", ref);
    else if (r->expires_at <= (int64_t)time(NULL))
        snprintf(why, why_sz, "restore request %s has expired", ref);
    else
        return 0;
    return 1;
}

typedef struct put_restored {
    stor_cred_t *c;
    EVP_PKEY *pk;              /* the public key of the file */
    const char *ref;           /* the user's restore request */
    stor_restore_req_t req;
    stor_audit_t audit;
    int existed;               /* out: a destroyed record was replaced */
    char why[STOR_NAME_MAX + 200]; /* out: with RESTORE_REFUSED */
} put_restored_t;

static int put_restored_fn(stor_txn_t *t, void *arg)
{
    put_restored_t *p = arg;
    stor_cred_t *cur = malloc(sizeof(*cur));
    stor_user_t *u = malloc(sizeof(*u));
    int rc = cur == NULL || u == NULL ? STOR_ERR_NOMEM : stor_txn_user_get(t, p->c->owner, u);

    if (rc == 0 && u->status == STOR_USER_TERMINATED)
        rc = RESTORE_OWNER_TERMINATED; /* termination destroyed the user's keys for good (J7) */
    if (rc == 0 && request_refused(t, p->ref, p->c, &p->req, p->why, sizeof(p->why)))
        rc = RESTORE_REFUSED; /* checked again here: the request may have been used meanwhile */
    if (rc == 0) {
        rc = stor_txn_cred_get(t, p->c->id, cur);
        if (rc == 0 && restore_refused(cur, p->pk, p->why, sizeof(p->why)))
            rc = RESTORE_REFUSED; /* checked again here: the record may have changed since the first look */
        else if (rc == 0 || rc == STOR_ERR_NOTFOUND) {
            p->existed = rc == 0;
            if (p->existed) { /* the same key comes back: its backups still restore it */
                p->c->backups = cur->backups;
                p->c->backup_last_at = cur->backup_last_at;
            }
            rc = stor_txn_cred_put(t, p->c, !p->existed);
        }
    } else if (rc == STOR_ERR_NOTFOUND) {
        rc = STOR_ERR_INVAL; /* no owner */
    }
    if (rc == 0) { /* the request is spent in the restore's own write */
        p->req.state = STOR_RESTORE_USED;
        p->req.used_at = (int64_t)time(NULL);
        rc = stor_txn_restore_req_put(t, &p->req, 0);
    }
    if (rc == 0)
        rc = stor_txn_audit_append(t, &p->audit);
    OPENSSL_clear_free(cur, sizeof(*cur));
    OPENSSL_clear_free(u, sizeof(*u));
    return rc;
}

static int cert_matches(const stor_cred_t *c, EVP_PKEY *pk)
{
    const unsigned char *p = c->certs;
    X509 *ee = c->certs_len > 0 ? d2i_X509(NULL, &p, c->certs_len) : NULL;
    int ok = ee != NULL && EVP_PKEY_eq(X509_get0_pubkey(ee), pk) == 1;

    X509_free(ee);
    return ok;
}

int adm_cred_restore(const adm_t *a, const char *file, const char *ref, char *id_out, size_t id_sz, char *err,
                     size_t err_sz)
{
    uint8_t *data = NULL;
    size_t n = 0;
    if (id_out != NULL && id_sz > 0)
        id_out[0] = '\0';
    if (a->hsm == NULL)
        return ERR("restore needs the HSM");
    if (adm_backup_read_file(file, &data, &n, err, err_sz) != 0)
        return -1;
    int rc = adm_cred_restore_mem(a, data, n, file, ref, id_out, id_sz, err, err_sz);
    OPENSSL_cleanse(data, n);
    free(data);
    return rc;
}

/* The reader of a restore request, outside the restore's write (the first look; the write looks again). */
typedef struct req_look {
    const char *ref;
    const stor_cred_t *c;
    stor_restore_req_t r;
    char why[STOR_NAME_MAX + 200];
} req_look_t;

static int req_look_fn(stor_txn_t *t, void *arg)
{
    req_look_t *l = arg;
    (void)request_refused(t, l->ref, l->c, &l->r, l->why, sizeof(l->why));
    return 0;
}

int adm_cred_restore_mem(const adm_t *a, const uint8_t *data, size_t n, const char *file, const char *ref,
                         char *id_out, size_t id_sz, char *err, size_t err_sz)
{
    uint8_t key_id[HSM_KEYID_LEN];
    bk_parsed_t *o = calloc(1, sizeof(*o));
    EVP_PKEY *pk = NULL;
    const unsigned char *pp;
    char why[STOR_NAME_MAX + 200], what[256];
    int rc = -1, hrc, have_key = 0;
    put_restored_t pr;

    if (id_out != NULL && id_sz > 0)
        id_out[0] = '\0';
    if (o == NULL) {
        ERR("out of memory");
        goto out;
    }
    if (a->hsm == NULL) {
        ERR("restore needs the HSM");
        goto out;
    }
    if (n > BK_FILE_MAX) {
        ERR("%s: larger than any backup file (%d bytes); nothing restored", file, BK_FILE_MAX);
        goto out;
    }
    why[0] = '\0';
    /* The tag first: nothing of the file is interpreted before the HSM vouched for every byte of it. */
    if (ref == NULL || ref[0] == '\0') {
        snprintf(why, sizeof(why), "a restore needs its user's request: give its reference (--request REF; the user "
                 "makes it on the account page)");
    } else if (n < BK_HDR_LEN + BK_TRAILER_LEN) {
        snprintf(why, sizeof(why), "backup %s refused: truncated or not a backup file (%zu bytes)", file, n);
    } else if ((hrc = hsm_backup_tag_verify(a->hsm, data, n - HSM_BACKUP_TAG_LEN, data + n - HSM_BACKUP_TAG_LEN)) !=
               HSM_OK) {
        if (hrc == HSM_ERR_BADSIG)
            snprintf(why, sizeof(why), "backup %s refused: integrity tag invalid (the file was altered or "
                     "truncated, or made with another HSM's backup key)", file);
        else
            snprintf(why, sizeof(why), "backup %s: cannot check the integrity tag in the HSM (%s)", file,
                     hsm_strerror(hrc));
    } else if (parse(data, n, o) != 0) {
        snprintf(why, sizeof(why), "backup %s refused: integrity tag valid but the format is not understood", file);
    }
    if (why[0] != '\0') {
        refusal_text(what, sizeof(what), "credential.restore", why);
        audit_refusal(a, STOR_EV_RESTORE, NULL, NULL, what);
        ERR("%s; nothing restored", why);
        goto out;
    }
    pp = o->pub;
    if ((pk = d2i_PUBKEY(NULL, &pp, (long)o->pub_len)) == NULL || pp != o->pub + o->pub_len ||
        EVP_PKEY_is_a(pk, o->c.key_type == STOR_KEY_RSA ? "RSA" : "EC") != 1) {
        snprintf(why, sizeof(why), "public key unreadable or not of the credential's key type");
    } else if (!cert_matches(&o->c, pk)) {
        snprintf(why, sizeof(why), "the certificate in the backup does not certify its public key");
    } else {
        stor_cred_t *cur = malloc(sizeof(*cur));
        int src = cur == NULL ? STOR_ERR_NOMEM : stor_cred_get(a->stor, o->c.id, cur);
        if (src == 0)
            (void)restore_refused(cur, pk, why, sizeof(why));
        else if (src != STOR_ERR_NOTFOUND)
            snprintf(why, sizeof(why), "storage: %s", stor_strerror(src));
        OPENSSL_clear_free(cur, sizeof(*cur));
    }
    if (why[0] == '\0') { /* then the user's request: a final end says why first */
        req_look_t *l = calloc(1, sizeof(*l));
        if (l != NULL) {
            l->ref = ref;
            l->c = &o->c;
        }
        if (l == NULL || stor_read(a->stor, req_look_fn, l) != 0)
            snprintf(why, sizeof(why), "cannot read restore request %s", ref);
        else if (l->why[0] != '\0')
            snprintf(why, sizeof(why), "%s", l->why);
        free(l);
    }
    if (why[0] == '\0') {
        hrc = hsm_backup_unwrap(a->hsm, o->wrapped, o->wrapped_len, pk, o->c.id,
                                o->c.key_backup == STOR_KEY_BACKUP_WRAPPED ? HSM_KEYGEN_BACKUP : 0, key_id);
        if (hrc == HSM_ERR_BADSIG)
            snprintf(why, sizeof(why), "the unwrapped private key does not match the public key in the backup");
        else if (hrc != HSM_OK)
            snprintf(why, sizeof(why), "unwrapping the key in the HSM failed (%s)", hsm_strerror(hrc));
        else
            have_key = 1;
    }
    if (why[0] != '\0') {
        refusal_text(what, sizeof(what), "credential.restore", why);
        audit_refusal(a, STOR_EV_RESTORE, o->c.owner, o->c.id, what);
        ERR("restore of credential %s refused: %s; nothing restored", o->c.id, why);
        goto out;
    }
    memcpy(o->c.key_id, key_id, sizeof(key_id));
    o->c.key_id_len = sizeof(key_id);
    o->c.failed_auths = 0;
    o->c.locked_until = 0;
    o->c.locks = 0;
    pr.c = &o->c;
    pr.pk = pk;
    pr.ref = ref;
    pr.existed = 0;
    pr.why[0] = '\0';
    o->c.end_reason = STOR_CRED_END_NONE;
    snprintf(what, sizeof(what), "action=credential.restore mech=%s ref=%s file=%s", BK_MECH, ref, file);
    audit_fill(&pr.audit, a, STOR_EV_RESTORE, STOR_RES_OK, o->c.owner, o->c.id, what);
    int src = stor_write(a->stor, put_restored_fn, &pr);
    if (src != 0) {
        if (src == RESTORE_REFUSED)
            snprintf(why, sizeof(why), "%s", pr.why);
        else if (src == STOR_ERR_INVAL)
            snprintf(why, sizeof(why), "owner %s does not exist", o->c.owner);
        else if (src == RESTORE_OWNER_TERMINATED)
            snprintf(why, sizeof(why), "owner %s is terminated: its keys stay destroyed", o->c.owner);
        else
            snprintf(why, sizeof(why), "storage: %s", stor_strerror(src));
        refusal_text(what, sizeof(what), "credential.restore", why);
        audit_refusal(a, STOR_EV_RESTORE, o->c.owner, o->c.id, what);
        ERR("restore of credential %s refused: %s; nothing restored", o->c.id, why);
        goto out;
    }
    have_key = 0;
    if (id_out != NULL)
        snprintf(id_out, id_sz, "%s", o->c.id);
    rc = 0;
out:
    if (have_key)
        (void)hsm_destroy(a->hsm, key_id, sizeof(key_id));
    EVP_PKEY_free(pk);
    OPENSSL_clear_free(o, sizeof(*o));
    return rc;
}
