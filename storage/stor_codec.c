/*
 * stor_codec.c - table-driven, versioned, tagged record encoding.
 *
 * Each record type is a table of rows {tag, kind, offset, limits}. Adding a field
 * is one row with a new tag; old readers skip tags they do not know and new
 * readers leave fields absent from old records at zero. Tags are stored: never
 * renumber or reuse one.
 */
#include <stddef.h>
#include <string.h>

#include <openssl/crypto.h>

#include "stor_int.h"

typedef enum {
    F_U32 = 1, /* uint32_t */
    F_I64,     /* int64_t */
    F_U64,     /* uint64_t */
    F_STR,     /* char[max + 1], NUL-terminated */
    F_FIXED,   /* uint8_t[max], always exactly max bytes */
    F_BYTES,   /* uint8_t[max] with its length in the u32 at len_off */
    F_BLOB2,   /* uint8_t[max] holding (u32 at len_off) * (u32 at cnt_off) bytes */
    F_PTR2,    /* const uint8_t * to (u32 at len_off) * (u32 at cnt_off) bytes */
    F_STRS,    /* char[n][max + 1], the first (u32 at cnt_off) used; encoded as (u32 length, bytes) each */
    F_OPTSTR,  /* like F_STR, but not encoded at all when empty (fields added to records that are hashed as
                * stored, e.g. audit records: old records keep their exact encoding) */
    F_NUMS,    /* uint32_t[n] or int64_t[n] (max: the size of one), the first (u32 at cnt_off) used; each encoded
                * little-endian of its size, one after the other */
} field_kind_t;

typedef struct field {
    uint8_t tag;
    uint8_t kind;
    size_t off;
    size_t max;
    size_t len_off;
    size_t cnt_off;
    size_t n;  /* F_STRS: number of strings the array holds */
} field_t;

#define HDR_LEN 2
#define FIELD_HDR 5
#define MAX_FIELDS 64 /* the decoder tracks seen rows in a uint64_t */

typedef struct rec_desc {
    size_t size;
    const field_t *fields;
    size_t n_fields;
} rec_desc_t;

/* The "+ 0 * sizeof(char[cond ? 1 : -1])" terms make a row whose kind does not
 * match its member's type a compile error. */
#define MEMBER(T, f) (((T *)0)->f)
#define SIZE_IS(T, f, n) (0 * sizeof(char[sizeof(MEMBER(T, f)) == (n) ? 1 : -1]))
#define U32(tag, T, f) { tag, F_U32, offsetof(T, f) + SIZE_IS(T, f, 4), 4, 0, 0, 0 }
#define I64(tag, T, f) { tag, F_I64, offsetof(T, f) + SIZE_IS(T, f, 8), 8, 0, 0, 0 }
#define U64(tag, T, f) { tag, F_U64, offsetof(T, f) + SIZE_IS(T, f, 8), 8, 0, 0, 0 }
#define STR(tag, T, f) { tag, F_STR, offsetof(T, f), sizeof(MEMBER(T, f)) - 1, 0, 0, 0 }
#define OPTSTR(tag, T, f) { tag, F_OPTSTR, offsetof(T, f), sizeof(MEMBER(T, f)) - 1, 0, 0, 0 }
#define FIXED(tag, T, f) { tag, F_FIXED, offsetof(T, f), sizeof(MEMBER(T, f)), 0, 0, 0 }
#define BYTES(tag, T, f, lf) \
    { tag, F_BYTES, offsetof(T, f), sizeof(MEMBER(T, f)), offsetof(T, lf) + SIZE_IS(T, lf, 4), 0, 0 }
#define BLOB2(tag, T, f, lf, cf) \
    { tag, F_BLOB2, offsetof(T, f), sizeof(MEMBER(T, f)), offsetof(T, lf) + SIZE_IS(T, lf, 4), \
      offsetof(T, cf) + SIZE_IS(T, cf, 4), 0 }
#define PTR2(tag, T, f, maxb, lf, cf) \
    { tag, F_PTR2, offsetof(T, f) + SIZE_IS(T, f, sizeof(void *)), maxb, offsetof(T, lf) + SIZE_IS(T, lf, 4), \
      offsetof(T, cf) + SIZE_IS(T, cf, 4), 0 }
#define STRS(tag, T, f, cf) \
    { tag, F_STRS, offsetof(T, f), sizeof(MEMBER(T, f)[0]) - 1, 0, offsetof(T, cf) + SIZE_IS(T, cf, 4), \
      sizeof(MEMBER(T, f)) / sizeof(MEMBER(T, f)[0]) }
#define NUMS(tag, T, f, cf) \
    { tag, F_NUMS, offsetof(T, f), sizeof(MEMBER(T, f)[0]) + 0 * sizeof(char[sizeof(MEMBER(T, f)[0]) == 4 || \
      sizeof(MEMBER(T, f)[0]) == 8 ? 1 : -1]), 0, offsetof(T, cf) + SIZE_IS(T, cf, 4), \
      sizeof(MEMBER(T, f)) / sizeof(MEMBER(T, f)[0]) }
#define DESC(T, rows) { sizeof(T), rows, sizeof(rows) / sizeof(rows[0]) }

static const field_t user_fields[] = {
    STR(1, stor_user_t, name),
    U32(2, stor_user_t, status),
    BYTES(3, stor_user_t, pw_verifier, pw_verifier_len),
    BYTES(4, stor_user_t, totp_secret, totp_secret_len),
    I64(5, stor_user_t, totp_last_step),
    U32(6, stor_user_t, failed_logins),
    I64(7, stor_user_t, locked_until),
    I64(8, stor_user_t, created_at),
    STR(9, stor_user_t, evidence),
    U32(10, stor_user_t, epoch),
    U32(16, stor_user_t, locks),
    STR(17, stor_user_t, contact),
    STR(18, stor_user_t, applicant),
    STR(19, stor_user_t, mandate),
    BYTES(20, stor_user_t, totp_sealed, totp_sealed_len),
};

static const field_t cred_fields[] = {
    STR(1, stor_cred_t, id),
    STR(2, stor_cred_t, owner),
    U32(3, stor_cred_t, status),
    STR(4, stor_cred_t, description),
    BYTES(5, stor_cred_t, key_id, key_id_len),
    U32(6, stor_cred_t, key_type),
    U32(7, stor_cred_t, key_bits),
    STR(8, stor_cred_t, key_curve),
    U32(9, stor_cred_t, auth_mode),
    STR(10, stor_cred_t, auth_expr),
    BYTES(11, stor_cred_t, pin_verifier, pin_verifier_len),
    U32(12, stor_cred_t, failed_auths),
    I64(13, stor_cred_t, locked_until),
    U32(14, stor_cred_t, scal),
    U32(15, stor_cred_t, multisign),
    BYTES(16, stor_cred_t, certs, certs_len),
    I64(17, stor_cred_t, created_at),
    I64(18, stor_cred_t, cert_not_before),
    I64(19, stor_cred_t, cert_not_after),
    STR(20, stor_cred_t, qualifier),
    BYTES(25, stor_cred_t, pending_key_id, pending_key_id_len),
    U32(26, stor_cred_t, pending_key_backup),
    U32(29, stor_cred_t, key_backup),
    U32(21, stor_cred_t, n_delegates),
    STRS(22, stor_cred_t, delegates, n_delegates),
    STRS(23, stor_cred_t, delegate_pins, n_delegates),
    U32(40, stor_cred_t, locks),
    U32(41, stor_cred_t, end_reason),
    U32(42, stor_cred_t, pin_unset),
    U32(43, stor_cred_t, delegate_pin_unset),
    U32(44, stor_cred_t, backups),
    I64(45, stor_cred_t, backup_last_at),
};

static const field_t token_fields[] = {
    FIXED(1, stor_token_t, hash),
    U32(2, stor_token_t, kind),
    U32(3, stor_token_t, scope),
    STR(4, stor_token_t, user),
    FIXED(5, stor_token_t, grant),
    I64(6, stor_token_t, issued_at),
    I64(7, stor_token_t, expires_at),
    U32(8, stor_token_t, revoked),
    STR(9, stor_token_t, client),
    U32(10, stor_token_t, rotated),
    STR(11, stor_token_t, cred),
};

static const field_t client_fields[] = {
    STR(1, stor_client_t, id),
    STR(2, stor_client_t, name),
    FIXED(3, stor_client_t, secret_hash),
    U32(4, stor_client_t, n_redirects),
    STRS(5, stor_client_t, redirects, n_redirects),
    U32(6, stor_client_t, scopes),
    U32(7, stor_client_t, grants),
    I64(8, stor_client_t, created_at),
};

static const field_t code_fields[] = {
    FIXED(1, stor_code_t, hash),
    STR(2, stor_code_t, client),
    STR(3, stor_code_t, user),
    STR(4, stor_code_t, redirect_uri),
    U32(5, stor_code_t, redirect_given),
    FIXED(6, stor_code_t, challenge),
    U32(7, stor_code_t, scope),
    I64(8, stor_code_t, expires_at),
    U32(9, stor_code_t, used),
    FIXED(10, stor_code_t, grant),
    STR(11, stor_code_t, cred),
    STR(12, stor_code_t, authz_details),
};

static const field_t sad_fields[] = {
    FIXED(1, stor_sad_t, hash),
    STR(2, stor_sad_t, user),
    STR(3, stor_sad_t, cred),
    U32(4, stor_sad_t, remaining),
    I64(5, stor_sad_t, expires_at),
    STR(6, stor_sad_t, hash_alg),
    U32(7, stor_sad_t, digest_len),
    U32(8, stor_sad_t, n_digests),
    BLOB2(9, stor_sad_t, digests, digest_len, n_digests),
    BYTES(10, stor_sad_t, signed_bits, signed_bits_len),
};

static const field_t audit_fields[] = {
    U64(1, stor_audit_t, seq),
    I64(2, stor_audit_t, time_ms),
    U32(3, stor_audit_t, event),
    U32(4, stor_audit_t, result),
    STR(5, stor_audit_t, user),
    STR(6, stor_audit_t, cred),
    STR(7, stor_audit_t, client),
    FIXED(8, stor_audit_t, authz_ref),
    STR(9, stor_audit_t, detail),
    U32(10, stor_audit_t, digest_len),
    U32(11, stor_audit_t, n_digests),
    PTR2(12, stor_audit_t, digests, (size_t)STOR_DIGESTS_MAX * STOR_DIGEST_LEN_MAX, digest_len, n_digests),
    FIXED(13, stor_audit_t, prev_hash),
    FIXED(14, stor_audit_t, hash),
    OPTSTR(15, stor_audit_t, owner),
    OPTSTR(16, stor_audit_t, origin),
};

static const field_t operator_fields[] = {
    STR(1, stor_operator_t, name),
    U32(2, stor_operator_t, roles),
    U32(3, stor_operator_t, status),
    BYTES(4, stor_operator_t, pw_verifier, pw_verifier_len),
    BYTES(5, stor_operator_t, totp_secret, totp_secret_len),
    I64(6, stor_operator_t, totp_last_step),
    U32(7, stor_operator_t, failed_logins),
    I64(8, stor_operator_t, locked_until),
    I64(9, stor_operator_t, created_at),
    BYTES(10, stor_operator_t, totp_sealed, totp_sealed_len),
    FIXED(11, stor_operator_t, enroll_code_hash),
    I64(12, stor_operator_t, enroll_expires_at),
    U32(13, stor_operator_t, enroll_tries),
    FIXED(14, stor_operator_t, enroll_ticket_hash),
};

static const field_t opsession_fields[] = {
    FIXED(1, stor_opsession_t, hash),
    STR(2, stor_opsession_t, operator_name),
    I64(3, stor_opsession_t, created_at),
    I64(4, stor_opsession_t, last_used),
    I64(5, stor_opsession_t, expires_at),
    FIXED(6, stor_opsession_t, host_id),
};

static const field_t approval_fields[] = {
    STR(1, stor_approval_t, id),
    STR(2, stor_approval_t, requester),
    U32(3, stor_approval_t, role),
    U32(4, stor_approval_t, n_args),
    STRS(5, stor_approval_t, args, n_args),
    I64(6, stor_approval_t, created_at),
    I64(7, stor_approval_t, expires_at),
    U32(8, stor_approval_t, flags),
    STR(9, stor_approval_t, origin),
};

static const field_t head_fields[] = {
    U64(1, stor_head_t, seq),
    FIXED(2, stor_head_t, hash),
};

static const field_t signed_head_fields[] = {
    U64(1, stor_signed_head_t, seq),
    FIXED(2, stor_signed_head_t, hash),
    I64(3, stor_signed_head_t, time_ms),
    BYTES(4, stor_signed_head_t, sig, sig_len),
};

static const field_t async_fields[] = {
    FIXED(1, stor_async_t, hash),
    STR(2, stor_async_t, user),
    STR(3, stor_async_t, cred),
    U32(4, stor_async_t, state),
    U32(5, stor_async_t, status),
    I64(6, stor_async_t, created_ms),
    I64(7, stor_async_t, expires_ms),
    STR(8, stor_async_t, error),
    STR(9, stor_async_t, error_description),
    U32(10, stor_async_t, body_len),
    U32(11, stor_async_t, body_one),
    PTR2(12, stor_async_t, body, STOR_ASYNC_BODY_MAX, body_len, body_one),
    U32(13, stor_async_t, owner_pid),
    STR(14, stor_async_t, owner_node),
};

static const field_t websession_fields[] = {
    FIXED(1, stor_websession_t, hash),
    STR(2, stor_websession_t, user),
    STR(3, stor_websession_t, client_id),
    /* tag 4 (the anti-CSRF token in clear) is no longer written: the token is derived from the session id */
    U32(5, stor_websession_t, epoch),
    I64(6, stor_websession_t, created_at),
    I64(7, stor_websession_t, touched_at),
    I64(8, stor_websession_t, expires_at),
    U32(9, stor_websession_t, req_len),
    U32(10, stor_websession_t, req_one),
    PTR2(11, stor_websession_t, req, STOR_WEBSESSION_REQ_MAX, req_len, req_one),
};

static const field_t user_approval_fields[] = {
    FIXED(1, stor_user_approval_t, hash),
    FIXED(2, stor_user_approval_t, ref),
    U32(3, stor_user_approval_t, state),
    U32(4, stor_user_approval_t, verified),
    STR(5, stor_user_approval_t, user),
    STR(6, stor_user_approval_t, cred),
    STR(7, stor_user_approval_t, client),
    U32(8, stor_user_approval_t, num_signatures),
    U32(9, stor_user_approval_t, needs_pin),
    U32(10, stor_user_approval_t, epoch),
    I64(11, stor_user_approval_t, created_at),
    I64(12, stor_user_approval_t, expires_at),
    STR(13, stor_user_approval_t, hash_alg),
    U32(14, stor_user_approval_t, digest_len),
    U32(15, stor_user_approval_t, n_digests),
    BLOB2(16, stor_user_approval_t, digests, digest_len, n_digests),
};

static const field_t enroll_fields[] = {
    STR(1, stor_enroll_t, user),
    FIXED(2, stor_enroll_t, code_hash),
    I64(3, stor_enroll_t, expires_at),
    U32(4, stor_enroll_t, tries_left),
    U32(5, stor_enroll_t, kind),
    STR(6, stor_enroll_t, issued_by),
    I64(7, stor_enroll_t, created_at),
    FIXED(8, stor_enroll_t, ticket_hash),
};

static const field_t enroll_ticket_fields[] = {
    FIXED(1, stor_enroll_ticket_t, hash),
    STR(2, stor_enroll_ticket_t, user),
    BYTES(3, stor_enroll_ticket_t, totp_secret, totp_secret_len),
    I64(4, stor_enroll_ticket_t, expires_at),
    BYTES(5, stor_enroll_ticket_t, totp_sealed, totp_sealed_len),
};

static const field_t restore_req_fields[] = {
    STR(1, stor_restore_req_t, ref),
    STR(2, stor_restore_req_t, user),
    STR(3, stor_restore_req_t, cred),
    I64(4, stor_restore_req_t, created_at),
    I64(5, stor_restore_req_t, expires_at),
    U32(6, stor_restore_req_t, state),
    I64(7, stor_restore_req_t, used_at),
};

static const field_t recent_fields[] = {
    STR(1, stor_recent_t, key),
    U32(2, stor_recent_t, n),
    NUMS(3, stor_recent_t, time_ms, n),
    NUMS(4, stor_recent_t, what, n),
    NUMS(5, stor_recent_t, result, n),
    STRS(6, stor_recent_t, client, n),
};

static const field_t challenge_fields[] = {
    FIXED(1, stor_challenge_t, key),
    FIXED(2, stor_challenge_t, mac),
    I64(3, stor_challenge_t, issued_at),
    I64(4, stor_challenge_t, expires_at),
    U32(5, stor_challenge_t, epoch),
};

static const field_t par_fields[] = {
    FIXED(1, stor_par_t, hash),
    STR(2, stor_par_t, client_id),
    I64(3, stor_par_t, created_at),
    I64(4, stor_par_t, expires_at),
    U32(5, stor_par_t, req_len),
    U32(6, stor_par_t, req_one),
    PTR2(7, stor_par_t, req, STOR_PAR_REQ_MAX, req_len, req_one),
};

#define FITS(rows) _Static_assert(sizeof(rows) / sizeof(rows[0]) <= MAX_FIELDS, #rows " has too many rows")
FITS(user_fields);
FITS(cred_fields);
FITS(token_fields);
FITS(sad_fields);
FITS(audit_fields);
FITS(head_fields);
FITS(client_fields);
FITS(code_fields);
FITS(signed_head_fields);
FITS(async_fields);
FITS(operator_fields);
FITS(opsession_fields);
FITS(approval_fields);
FITS(websession_fields);
FITS(user_approval_fields);
FITS(enroll_fields);
FITS(enroll_ticket_fields);
FITS(restore_req_fields);
FITS(recent_fields);
FITS(challenge_fields);
FITS(par_fields);

static const rec_desc_t descs[] = {
    [STOR_REC_USER] = DESC(stor_user_t, user_fields),
    [STOR_REC_CRED] = DESC(stor_cred_t, cred_fields),
    [STOR_REC_TOKEN] = DESC(stor_token_t, token_fields),
    [STOR_REC_SAD] = DESC(stor_sad_t, sad_fields),
    [STOR_REC_AUDIT] = DESC(stor_audit_t, audit_fields),
    [STOR_REC_HEAD] = DESC(stor_head_t, head_fields),
    [STOR_REC_CLIENT] = DESC(stor_client_t, client_fields),
    [STOR_REC_CODE] = DESC(stor_code_t, code_fields),
    [STOR_REC_SIGNED_HEAD] = DESC(stor_signed_head_t, signed_head_fields),
    [STOR_REC_ASYNC] = DESC(stor_async_t, async_fields),
    [STOR_REC_OPERATOR] = DESC(stor_operator_t, operator_fields),
    [STOR_REC_OPSESSION] = DESC(stor_opsession_t, opsession_fields),
    [STOR_REC_APPROVAL] = DESC(stor_approval_t, approval_fields),
    [STOR_REC_WEBSESSION] = DESC(stor_websession_t, websession_fields),
    [STOR_REC_USER_APPROVAL] = DESC(stor_user_approval_t, user_approval_fields),
    [STOR_REC_ENROLL] = DESC(stor_enroll_t, enroll_fields),
    [STOR_REC_ENROLL_TICKET] = DESC(stor_enroll_ticket_t, enroll_ticket_fields),
    [STOR_REC_RESTORE_REQ] = DESC(stor_restore_req_t, restore_req_fields),
    [STOR_REC_RECENT] = DESC(stor_recent_t, recent_fields),
    [STOR_REC_CHALLENGE] = DESC(stor_challenge_t, challenge_fields),
    [STOR_REC_PAR] = DESC(stor_par_t, par_fields),
};

static const rec_desc_t *desc_of(stor_rec_type_t type)
{
    if ((unsigned)type >= sizeof(descs) / sizeof(descs[0]) || descs[type].fields == NULL)
        return NULL;
    return &descs[type];
}

static uint32_t get_u32(const void *rec, size_t off)
{
    uint32_t v;
    memcpy(&v, (const uint8_t *)rec + off, sizeof(v));
    return v;
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Address of string i of an F_STRS field. */
static const char *strs_elem(const field_t *f, const void *rec, size_t i)
{
    return (const char *)rec + f->off + i * (f->max + 1);
}

/* Encoded length of an F_STRS field: a u32 length and the bytes of each used string. */
static int strs_len(const field_t *f, const void *rec, size_t *len)
{
    uint32_t cnt = get_u32(rec, f->cnt_off);
    size_t total = 0, n;

    *len = 0;
    if (cnt > f->n)
        return STOR_ERR_INVAL;
    for (size_t i = 0; i < cnt; i++) {
        n = strnlen(strs_elem(f, rec, i), f->max + 1);
        if (n > f->max)
            return STOR_ERR_INVAL;
        total += 4 + n;
    }
    *len = total;
    return 0;
}

/* Length of a field's encoded value; STOR_ERR_INVAL if the struct violates its limits. */
static int field_len(const field_t *f, const void *rec, size_t *len)
{
    const uint8_t *base = rec;
    uint64_t n;

    switch (f->kind) {
    case F_U32: case F_I64: case F_U64: case F_FIXED:
        *len = f->max;
        return 0;
    case F_STR: case F_OPTSTR:
        *len = strnlen((const char *)base + f->off, f->max + 1);
        return *len <= f->max ? 0 : STOR_ERR_INVAL;
    case F_BYTES:
        *len = get_u32(rec, f->len_off);
        return *len <= f->max ? 0 : STOR_ERR_INVAL;
    case F_BLOB2: case F_PTR2:
        n = (uint64_t)get_u32(rec, f->len_off) * get_u32(rec, f->cnt_off);
        if (n > f->max)
            return STOR_ERR_INVAL;
        *len = (size_t)n;
        if (f->kind == F_PTR2 && n > 0) {
            const uint8_t *p;
            memcpy(&p, base + f->off, sizeof(p));
            if (p == NULL)
                return STOR_ERR_INVAL;
        }
        return 0;
    case F_STRS:
        return strs_len(f, rec, len);
    case F_NUMS:
        n = get_u32(rec, f->cnt_off);
        *len = (size_t)n * f->max;
        return n <= f->n ? 0 : STOR_ERR_INVAL;
    }
    return STOR_ERR_INVAL;
}

int stor_codec_size(stor_rec_type_t type, const void *rec, size_t *len)
{
    const rec_desc_t *d = desc_of(type);
    size_t total = HDR_LEN, flen;
    int rc;

    *len = 0;
    if (d == NULL || rec == NULL)
        return STOR_ERR_INVAL;
    for (size_t i = 0; i < d->n_fields; i++) {
        if ((rc = field_len(&d->fields[i], rec, &flen)) != 0)
            return rc;
        if (d->fields[i].kind != F_OPTSTR || flen > 0)
            total += FIELD_HDR + flen;
    }
    *len = total;
    return 0;
}

static const uint8_t *field_src(const field_t *f, const void *rec)
{
    const uint8_t *p = (const uint8_t *)rec + f->off, *ptr;

    if (f->kind != F_PTR2)
        return p;
    memcpy(&ptr, p, sizeof(ptr)); /* the pointer stored in the record (possibly unaligned: no cast) */
    return ptr;
}

int stor_codec_encode(stor_rec_type_t type, const void *rec, uint8_t *buf, size_t len)
{
    const rec_desc_t *d = desc_of(type);
    size_t need, pos = HDR_LEN, flen;
    int rc;

    if ((rc = stor_codec_size(type, rec, &need)) != 0)
        return rc;
    if (buf == NULL || len != need)
        return STOR_ERR_INVAL;
    buf[0] = (uint8_t)type;
    buf[1] = STOR_CODEC_VERSION;
    for (size_t i = 0; i < d->n_fields; i++) {
        const field_t *f = &d->fields[i];
        (void)field_len(f, rec, &flen); /* validated by stor_codec_size() */
        if (f->kind == F_OPTSTR && flen == 0)
            continue;
        buf[pos] = f->tag;
        put_le(buf + pos + 1, flen, 4);
        pos += FIELD_HDR;
        if (f->kind == F_U32 || f->kind == F_I64 || f->kind == F_U64) {
            uint64_t v = f->kind == F_U32 ? get_u32(rec, f->off) : 0;
            if (f->kind != F_U32)
                memcpy(&v, (const uint8_t *)rec + f->off, sizeof(v));
            put_le(buf + pos, v, flen);
        } else if (f->kind == F_STRS) {
            size_t p = pos;
            for (size_t j = 0; j < get_u32(rec, f->cnt_off); j++) {
                size_t n = strlen(strs_elem(f, rec, j)); /* terminated: checked by stor_codec_size() */
                put_le(buf + p, n, 4);
                memcpy(buf + p + 4, strs_elem(f, rec, j), n);
                p += 4 + n;
            }
        } else if (f->kind == F_NUMS) {
            for (size_t j = 0; j < flen / f->max; j++) {
                uint64_t v = f->max == 4 ? get_u32(rec, f->off + 4 * j) : 0;
                if (f->max == 8)
                    memcpy(&v, (const uint8_t *)rec + f->off + 8 * j, sizeof(v));
                put_le(buf + pos + j * f->max, v, f->max);
            }
        } else if (flen > 0) {
            memcpy(buf + pos, field_src(f, rec), flen);
        }
        pos += flen;
    }
    return 0;
}

/* Unpack the strings of an F_STRS field; *cnt is how many there were (checked against the count field later). */
static int strs_decode(const field_t *f, const uint8_t *p, size_t len, void *rec, size_t *cnt)
{
    size_t pos = 0, i = 0, n;

    while (pos < len) {
        if (len - pos < 4 || i >= f->n)
            return STOR_ERR_CORRUPT;
        n = (size_t)get_le(p + pos, 4);
        if (n > f->max || n > len - pos - 4 || memchr(p + pos + 4, '\0', n) != NULL)
            return STOR_ERR_CORRUPT;
        memcpy((char *)strs_elem(f, rec, i), p + pos + 4, n);
        pos += 4 + n;
        i++;
    }
    *cnt = i;
    return 0;
}

/* Store one field's bytes into rec; lengths of BLOB2/PTR2 and string counts of STRS are checked after all
 * fields are read, against *blen (the value length, or for STRS the number of strings). */
static int field_decode(const field_t *f, const uint8_t *p, size_t len, void *rec, size_t *blen)
{
    uint8_t *dst = (uint8_t *)rec + f->off;
    uint32_t v32;
    uint64_t v64;

    *blen = len;
    switch (f->kind) {
    case F_U32:
        if (len != 4)
            return STOR_ERR_CORRUPT;
        v32 = (uint32_t)get_le(p, 4);
        memcpy(dst, &v32, 4);
        return 0;
    case F_I64: case F_U64:
        if (len != 8)
            return STOR_ERR_CORRUPT;
        v64 = get_le(p, 8);
        memcpy(dst, &v64, 8);
        return 0;
    case F_STR: case F_OPTSTR:
        /* An empty F_OPTSTR is never encoded: a stored empty one is not the canonical form of anything. */
        if (len > f->max || memchr(p, '\0', len) != NULL || (f->kind == F_OPTSTR && len == 0))
            return STOR_ERR_CORRUPT;
        break;
    case F_FIXED:
        if (len != f->max)
            return STOR_ERR_CORRUPT;
        break;
    case F_BYTES: case F_BLOB2:
        if (len > f->max)
            return STOR_ERR_CORRUPT;
        if (f->kind == F_BYTES) {
            v32 = (uint32_t)len;
            memcpy((uint8_t *)rec + f->len_off, &v32, 4);
        }
        break;
    case F_PTR2:
        if (len > f->max)
            return STOR_ERR_CORRUPT;
        memcpy(dst, &p, sizeof(p));
        return 0;
    case F_STRS:
        return strs_decode(f, p, len, rec, blen);
    case F_NUMS:
        if (len % f->max != 0 || len / f->max > f->n)
            return STOR_ERR_CORRUPT;
        *blen = len / f->max;
        for (size_t j = 0; j < *blen; j++) {
            v64 = get_le(p + j * f->max, f->max);
            if (f->max == 4) {
                v32 = (uint32_t)v64;
                memcpy(dst + 4 * j, &v32, 4);
            } else {
                memcpy(dst + 8 * j, &v64, 8);
            }
        }
        return 0;
    default:
        return STOR_ERR_CORRUPT;
    }
    if (len > 0)
        memcpy(dst, p, len);
    return 0;
}

static const field_t *find_field(const rec_desc_t *d, uint8_t tag, size_t *idx)
{
    for (size_t i = 0; i < d->n_fields; i++) {
        if (d->fields[i].tag == tag) {
            *idx = i;
            return &d->fields[i];
        }
    }
    return NULL;
}

/* Digest blobs and string lists must match the count fields, wherever the fields appeared in the record. */
static int check_products(const rec_desc_t *d, const void *rec, const size_t *blob_len)
{
    for (size_t i = 0; i < d->n_fields; i++) {
        const field_t *f = &d->fields[i];
        if (f->kind == F_STRS || f->kind == F_NUMS) {
            if (get_u32(rec, f->cnt_off) != blob_len[i])
                return STOR_ERR_CORRUPT;
            continue;
        }
        if (f->kind != F_BLOB2 && f->kind != F_PTR2)
            continue;
        if ((uint64_t)get_u32(rec, f->len_off) * get_u32(rec, f->cnt_off) != blob_len[i])
            return STOR_ERR_CORRUPT;
    }
    return 0;
}

/* Step to the next field: 1 with tag, val and vlen set, 0 at the end, STOR_ERR_CORRUPT if truncated. */
static int next_field(const uint8_t *buf, size_t len, size_t *pos, uint8_t *tag, const uint8_t **val, size_t *vlen)
{
    size_t flen;

    if (*pos >= len)
        return 0;
    if (len - *pos < FIELD_HDR)
        return STOR_ERR_CORRUPT;
    flen = (size_t)get_le(buf + *pos + 1, 4);
    if (flen > len - *pos - FIELD_HDR)
        return STOR_ERR_CORRUPT;
    *tag = buf[*pos];
    *val = buf + *pos + FIELD_HDR;
    *vlen = flen;
    *pos += FIELD_HDR + flen;
    return 1;
}

static int decode_fields(const rec_desc_t *d, const uint8_t *buf, size_t len, void *rec)
{
    size_t blob_len[MAX_FIELDS] = { 0 };
    uint64_t seen = 0;
    size_t pos = HDR_LEN, idx = 0, flen;
    const uint8_t *val;
    uint8_t tag;
    int rc;

    while ((rc = next_field(buf, len, &pos, &tag, &val, &flen)) == 1) {
        const field_t *f = find_field(d, tag, &idx);

        if (f == NULL)
            continue; /* written by a newer version: skip */
        if (seen & ((uint64_t)1 << idx))
            return STOR_ERR_CORRUPT;
        seen |= (uint64_t)1 << idx;
        if ((rc = field_decode(f, val, flen, rec, &blob_len[idx])) != 0)
            return rc;
    }
    return rc != 0 ? rc : check_products(d, rec, blob_len);
}

int stor_codec_decode(stor_rec_type_t type, const uint8_t *buf, size_t len, void *rec)
{
    const rec_desc_t *d = desc_of(type);
    int rc;

    if (d == NULL || rec == NULL)
        return STOR_ERR_INVAL;
    memset(rec, 0, d->size);
    if (buf == NULL || len < HDR_LEN || buf[0] != (uint8_t)type || buf[1] != STOR_CODEC_VERSION) {
        rc = STOR_ERR_CORRUPT;
        goto out;
    }
    rc = decode_fields(d, buf, len, rec);
out:
    if (rc != 0)
        OPENSSL_cleanse(rec, d->size);
    return rc;
}

/* Find the raw value of the field at struct offset off. 1 found, 0 absent, or an error. */
static int find_raw(stor_rec_type_t type, const uint8_t *buf, size_t len, size_t off, const field_t **fp,
                    const uint8_t **val, size_t *vlen)
{
    const rec_desc_t *d = desc_of(type);
    size_t pos = HDR_LEN, idx = 0;
    uint8_t tag;
    int rc;

    if (d == NULL)
        return STOR_ERR_INVAL;
    for (idx = 0; idx < d->n_fields && d->fields[idx].off != off; idx++)
        ;
    if (idx == d->n_fields)
        return STOR_ERR_INVAL;
    if (buf == NULL || len < HDR_LEN || buf[0] != (uint8_t)type || buf[1] != STOR_CODEC_VERSION)
        return STOR_ERR_CORRUPT;
    while ((rc = next_field(buf, len, &pos, &tag, val, vlen)) == 1) {
        *fp = find_field(d, tag, &idx);
        if (*fp != NULL && (*fp)->off == off)
            return 1;
    }
    return rc;
}

int stor_codec_peek(stor_rec_type_t type, const uint8_t *buf, size_t len, size_t off, void *out, size_t out_size)
{
    const field_t *f = NULL;
    const uint8_t *val = NULL;
    size_t vlen = 0;
    uint64_t v;
    int rc;

    if (out == NULL || out_size == 0)
        return STOR_ERR_INVAL;
    memset(out, 0, out_size);
    if ((rc = find_raw(type, buf, len, off, &f, &val, &vlen)) != 1)
        return rc; /* absent: zero, as a full decode would give */
    switch (f->kind) {
    case F_U32: case F_I64: case F_U64:
        if (out_size != f->max)
            return STOR_ERR_INVAL;
        if (vlen != f->max)
            return STOR_ERR_CORRUPT;
        v = get_le(val, vlen);
        if (f->kind == F_U32) {
            uint32_t v32 = (uint32_t)v;
            memcpy(out, &v32, 4);
        } else {
            memcpy(out, &v, 8);
        }
        return 0;
    case F_STR: case F_OPTSTR: case F_FIXED:
        if (out_size != f->max + (f->kind != F_FIXED))
            return STOR_ERR_INVAL;
        if ((f->kind != F_FIXED && (vlen > f->max || memchr(val, '\0', vlen) != NULL)) ||
            (f->kind == F_FIXED && vlen != f->max))
            return STOR_ERR_CORRUPT;
        memcpy(out, val, vlen);
        return 0;
    default:
        return STOR_ERR_INVAL;
    }
}
