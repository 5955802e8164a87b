/* test_stor_codec.c - the private record codec, driven directly. */
#include <stdlib.h>
#include <string.h>

#include "test_stor.h"

/* Bytes of a hand-built record: header, then fields appended with add_field(). */
typedef struct rawrec {
    uint8_t b[4096];
    size_t n;
} rawrec_t;

static void raw_init(rawrec_t *r, uint8_t type, uint8_t version)
{
    r->b[0] = type;
    r->b[1] = version;
    r->n = 2;
}

static void add_field(rawrec_t *r, uint8_t tag, const void *val, uint32_t len)
{
    ck_assert_uint_le(r->n + 5 + len, sizeof(r->b));
    r->b[r->n] = tag;
    for (int i = 0; i < 4; i++)
        r->b[r->n + 1 + i] = (uint8_t)(len >> (8 * i));
    if (len > 0)
        memcpy(r->b + r->n + 5, val, len);
    r->n += 5 + len;
}

static uint8_t *encode(stor_rec_type_t type, const void *rec, size_t *len)
{
    uint8_t *buf;

    ck_assert_int_eq(stor_codec_size(type, rec, len), 0);
    buf = malloc(*len);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(stor_codec_encode(type, rec, buf, *len), 0);
    return buf;
}

static void sample_user(stor_user_t *u)
{
    tst_user(u, "alice", 3);
    u->status = STOR_USER_SUSPENDED;
    u->pw_verifier_len = STOR_VERIFIER_MAX;
    for (size_t i = 0; i < STOR_VERIFIER_MAX; i++)
        u->pw_verifier[i] = (uint8_t)(i * 7 + 1);
    u->totp_secret_len = 20;
    memset(u->totp_secret, 0xA5, 20);
    u->totp_last_step = -5;
    u->locked_until = INT64_MAX;
    u->created_at = INT64_MIN;
    u->locks = 7;
    u->epoch = 9;
}

static void sample_cred(stor_cred_t *c)
{
    memset(c, 0, sizeof(*c));
    TST_SET(c->id, "cred-1");
    TST_SET(c->owner, "alice");
    c->status = STOR_CRED_ENABLED;
    memset(c->description, 'd', STOR_DESC_MAX);
    c->key_id_len = STOR_KEYID_MAX;
    memset(c->key_id, 0x11, STOR_KEYID_MAX);
    c->key_type = STOR_KEY_EC;
    c->key_bits = 256;
    TST_SET(c->key_curve, "1.2.840.10045.3.1.7");
    c->auth_mode = STOR_AUTH_EXPLICIT;
    TST_SET(c->auth_expr, "PIN AND OTP");
    c->pin_verifier_len = 5;
    memcpy(c->pin_verifier, "pinv!", 5);
    c->failed_auths = 2;
    c->locked_until = 99;
    c->scal = 2;
    c->multisign = 10;
    c->certs_len = STOR_CERTS_MAX;
    for (size_t i = 0; i < STOR_CERTS_MAX; i++)
        c->certs[i] = (uint8_t)(i ^ (i >> 8));
    c->created_at = 1234;
    c->pending_key_id_len = 16; /* tag 25: a renewal key waiting for its certificate */
    memset(c->pending_key_id, 0x22, 16);
}

START_TEST(t_roundtrip_user)
{
    stor_user_t u, d;
    size_t len;
    uint8_t *buf;

    sample_user(&u);
    buf = encode(STOR_REC_USER, &u, &len);
    ck_assert_uint_eq(buf[0], STOR_REC_USER);
    ck_assert_uint_eq(buf[1], STOR_CODEC_VERSION);
    memset(&d, 0xEE, sizeof(d));
    ck_assert_int_eq(stor_codec_decode(STOR_REC_USER, buf, len, &d), 0);
    ck_assert_mem_eq(&u, &d, sizeof(u));
    free(buf);
}
END_TEST

START_TEST(t_roundtrip_cred)
{
    stor_cred_t *c = malloc(sizeof(*c)), *d = malloc(sizeof(*d));
    size_t len;
    uint8_t *buf;

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(d);
    sample_cred(c);
    buf = encode(STOR_REC_CRED, c, &len);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_CRED, buf, len, d), 0);
    ck_assert_mem_eq(c, d, sizeof(*c));
    ck_assert_str_eq(d->description + STOR_DESC_MAX, "");
    free(buf);
    free(c);
    free(d);
}
END_TEST

START_TEST(t_roundtrip_token_sad)
{
    stor_token_t tok, dt;
    stor_sad_t *s = calloc(1, sizeof(*s)), *ds = malloc(sizeof(*ds));
    size_t len;
    uint8_t *buf;

    memset(&tok, 0, sizeof(tok));
    memset(tok.hash, 0x42, 32);
    tok.kind = STOR_TOKEN_REFRESH;
    tok.scope = STOR_SCOPE_CREDENTIAL;
    TST_SET(tok.user, "bob");
    memset(tok.grant, 7, 16);
    tok.issued_at = 10;
    tok.expires_at = 20;
    tok.revoked = 1;
    buf = encode(STOR_REC_TOKEN, &tok, &len);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_TOKEN, buf, len, &dt), 0);
    ck_assert_mem_eq(&tok, &dt, sizeof(tok));
    free(buf);

    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(ds);
    memset(s->hash, 1, 32);
    TST_SET(s->user, "bob");
    TST_SET(s->cred, "c1");
    s->remaining = 3;
    s->expires_at = 77;
    TST_SET(s->hash_alg, "2.16.840.1.101.3.4.2.1");
    s->digest_len = STOR_DIGEST_LEN_MAX;
    s->n_digests = STOR_DIGESTS_MAX;
    for (size_t i = 0; i < sizeof(s->digests); i++)
        s->digests[i] = (uint8_t)(i * 13);
    s->signed_bits_len = sizeof(s->signed_bits);
    for (size_t i = 0; i < sizeof(s->signed_bits); i++)
        s->signed_bits[i] = (uint8_t)(i * 7 + 1);
    buf = encode(STOR_REC_SAD, s, &len);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_SAD, buf, len, ds), 0);
    ck_assert_mem_eq(s, ds, sizeof(*s));
    free(buf);

    /* only n_digests * digest_len bytes are encoded */
    s->digest_len = 32;
    s->n_digests = 2;
    s->signed_bits_len = 1; /* and only the bytes of signed_bits in use */
    buf = encode(STOR_REC_SAD, s, &len);
    ck_assert_uint_lt(len, 300);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_SAD, buf, len, ds), 0);
    ck_assert_mem_eq(ds->digests, s->digests, 64);
    ck_assert_uint_eq(ds->digests[64], 0);
    ck_assert_uint_eq(ds->signed_bits[0], s->signed_bits[0]);
    ck_assert_uint_eq(ds->signed_bits[1], 0);
    free(buf);
    free(s);
    free(ds);
}
END_TEST

START_TEST(t_roundtrip_audit)
{
    uint8_t dig[3 * 48];
    stor_audit_t a, d;
    size_t len;
    uint8_t *buf;

    memset(&a, 0, sizeof(a));
    for (size_t i = 0; i < sizeof(dig); i++)
        dig[i] = (uint8_t)i;
    a.seq = 9;
    a.time_ms = 5;
    a.event = STOR_EV_SIGN;
    a.result = STOR_RES_DENIED;
    TST_SET(a.user, "u");
    TST_SET(a.cred, "c");
    memset(a.client, 'x', sizeof(a.client) - 1);
    memset(a.authz_ref, 3, 16);
    memset(a.detail, 'y', sizeof(a.detail) - 1);
    a.digest_len = 48;
    a.n_digests = 3;
    a.digests = dig;
    memset(a.prev_hash, 4, 32);
    memset(a.hash, 5, 32);
    buf = encode(STOR_REC_AUDIT, &a, &len);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_AUDIT, buf, len, &d), 0);
    /* the decoded digests point into the encoding */
    ck_assert(d.digests >= buf && d.digests + sizeof(dig) <= buf + len);
    ck_assert_mem_eq(d.digests, dig, sizeof(dig));
    d.digests = dig;
    ck_assert_mem_eq(&a, &d, sizeof(a));
    free(buf);

    /* no digests: a NULL pointer is fine */
    a.n_digests = 0;
    a.digests = NULL;
    buf = encode(STOR_REC_AUDIT, &a, &len);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_AUDIT, buf, len, &d), 0);
    ck_assert_uint_eq(d.n_digests, 0);
    free(buf);
}
END_TEST

/* Every prefix of a record either ends on a field boundary (valid, later fields zero) or is rejected. */
START_TEST(t_truncated)
{
    stor_user_t u, d;
    size_t len, boundary = 2;
    uint8_t *buf;

    sample_user(&u);
    buf = encode(STOR_REC_USER, &u, &len);
    for (size_t n = 0; n < len; n++) {
        int rc = stor_codec_decode(STOR_REC_USER, buf, n, &d);
        if (n < 2) {
            ck_assert_int_eq(rc, STOR_ERR_CORRUPT);
            continue;
        }
        if (n > boundary)
            boundary += 5 + (buf[boundary + 1] | buf[boundary + 2] << 8 | (size_t)buf[boundary + 3] << 16 |
                             (size_t)buf[boundary + 4] << 24);
        if (n == boundary || n == 2) {
            ck_assert_int_eq(rc, 0);
        } else {
            ck_assert_msg(rc == STOR_ERR_CORRUPT, "prefix %zu of %zu decoded", n, len);
            ck_assert_uint_eq(d.failed_logins, 0); /* wiped */
            ck_assert_str_eq(d.name, "");
        }
    }
    /* the last full prefix before created_at (then the evidence field, header + bytes, and the epoch and locks
     * fields, header + 4 each, and the empty contact, applicant, mandate and sealed TOTP secret, a header each) leaves
     * created_at zero */
    ck_assert_int_eq(stor_codec_decode(STOR_REC_USER, buf, len - 9 - 9 - 5 - strlen(u.evidence) - 13 - 4 * 5, &d), 0);
    ck_assert_int_eq(d.created_at, 0);
    ck_assert_int_eq(d.locked_until, INT64_MAX);
    free(buf);
}
END_TEST

START_TEST(t_unknown_tags)
{
    stor_user_t u, d;
    rawrec_t r;
    size_t len;
    uint8_t *buf;

    sample_user(&u);
    buf = encode(STOR_REC_USER, &u, &len);
    /* an unknown field first, the real fields, then two more unknown fields */
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION);
    add_field(&r, 200, "future", 6);
    memcpy(r.b + r.n, buf + 2, len - 2);
    r.n += len - 2;
    add_field(&r, 201, NULL, 0);
    add_field(&r, 200, "again", 5);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_USER, r.b, r.n, &d), 0);
    ck_assert_mem_eq(&u, &d, sizeof(u));
    free(buf);
}
END_TEST

START_TEST(t_absent_fields_zero)
{
    stor_user_t d;
    rawrec_t r;

    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION);
    add_field(&r, 1, "bob", 3);
    memset(&d, 0x5A, sizeof(d));
    ck_assert_int_eq(stor_codec_decode(STOR_REC_USER, r.b, r.n, &d), 0);
    ck_assert_str_eq(d.name, "bob");
    ck_assert_uint_eq(d.status, 0);
    ck_assert_uint_eq(d.pw_verifier_len, 0);
    ck_assert_uint_eq(d.pw_verifier[0], 0);
    ck_assert_int_eq(d.created_at, 0);
    ck_assert_uint_eq(d.name[3], 0);
}
END_TEST

/* TOTP secrets at rest: a record written before sealing (tag 4, clear) decodes clear, with no sealed bytes; a
 * sealed one (tag 20: version, nonce, ciphertext, tag) round-trips with no clear bytes; a sealed field longer than
 * STOR_TOTP_SEALED_MAX is refused. */
START_TEST(t_totp_clear_and_sealed)
{
    uint8_t clear[20], sealed[1 + 12 + 20 + 16], big[STOR_TOTP_SEALED_MAX + 1];
    stor_user_t u, d;
    rawrec_t r;
    size_t len;

    memset(clear, 0x3C, sizeof(clear));
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION);
    add_field(&r, 1, "old", 3);
    add_field(&r, 4, clear, sizeof(clear));
    memset(&d, 0x5A, sizeof(d));
    ck_assert_int_eq(stor_codec_decode(STOR_REC_USER, r.b, r.n, &d), 0);
    ck_assert_uint_eq(d.totp_secret_len, sizeof(clear));
    ck_assert_mem_eq(d.totp_secret, clear, sizeof(clear));
    ck_assert_uint_eq(d.totp_sealed_len, 0); /* marked clear */
    ck_assert(STOR_USER_HAS_TOTP(&d));

    tst_user(&u, "new", 1);
    for (size_t i = 0; i < sizeof(sealed); i++)
        sealed[i] = (uint8_t)(i + 1);
    memcpy(u.totp_sealed, sealed, sizeof(sealed));
    u.totp_sealed_len = sizeof(sealed);
    uint8_t *buf = encode(STOR_REC_USER, &u, &len);
    ck_assert_ptr_null(memmem(buf, len, clear, 4));
    ck_assert_int_eq(stor_codec_decode(STOR_REC_USER, buf, len, &d), 0);
    ck_assert_uint_eq(d.totp_secret_len, 0);
    ck_assert_uint_eq(d.totp_sealed_len, sizeof(sealed));
    ck_assert_mem_eq(d.totp_sealed, sealed, sizeof(sealed));
    ck_assert(STOR_USER_HAS_TOTP(&d));
    free(buf);

    memset(big, 1, sizeof(big));
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION);
    add_field(&r, 1, "big", 3);
    add_field(&r, 20, big, sizeof(big));
    ck_assert_int_eq(stor_codec_decode(STOR_REC_USER, r.b, r.n, &d), STOR_ERR_CORRUPT);
}
END_TEST

static void expect_corrupt(stor_rec_type_t type, const rawrec_t *r)
{
    stor_sad_t *d = malloc(sizeof(*d)); /* large enough for every record type */

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(stor_codec_decode(type, r->b, r->n, d), STOR_ERR_CORRUPT);
    free(d);
}

START_TEST(t_corrupt)
{
    uint8_t big[300], four[4] = { 1, 0, 0, 0 }, dig[64] = { 0 };
    rawrec_t r;

    memset(big, 'a', sizeof(big));
    raw_init(&r, STOR_REC_CRED, STOR_CODEC_VERSION); /* wrong type */
    add_field(&r, 1, "bob", 3);
    expect_corrupt(STOR_REC_USER, &r);
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION + 1); /* unknown version */
    expect_corrupt(STOR_REC_USER, &r);
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION); /* u32 of 5 bytes */
    add_field(&r, 2, big, 5);
    expect_corrupt(STOR_REC_USER, &r);
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION); /* i64 of 4 bytes */
    add_field(&r, 5, four, 4);
    expect_corrupt(STOR_REC_USER, &r);
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION); /* name longer than STOR_NAME_MAX */
    add_field(&r, 1, big, STOR_NAME_MAX + 1);
    expect_corrupt(STOR_REC_USER, &r);
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION); /* embedded NUL */
    add_field(&r, 1, "a\0b", 3);
    expect_corrupt(STOR_REC_USER, &r);
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION); /* verifier longer than its array */
    add_field(&r, 3, big, STOR_VERIFIER_MAX + 1);
    expect_corrupt(STOR_REC_USER, &r);
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION); /* duplicate tag */
    add_field(&r, 1, "bob", 3);
    add_field(&r, 1, "eve", 3);
    expect_corrupt(STOR_REC_USER, &r);
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION); /* length runs past the end */
    add_field(&r, 1, "bob", 3);
    r.b[3] = 4;
    expect_corrupt(STOR_REC_USER, &r);
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION); /* truncated field header */
    add_field(&r, 1, "bob", 3);
    r.b[r.n++] = 2;
    r.b[r.n++] = 4;
    expect_corrupt(STOR_REC_USER, &r);
    raw_init(&r, STOR_REC_USER, STOR_CODEC_VERSION); /* huge length */
    add_field(&r, 1, "bob", 3);
    memset(r.b + 3, 0xFF, 4);
    expect_corrupt(STOR_REC_USER, &r);
    raw_init(&r, STOR_REC_TOKEN, STOR_CODEC_VERSION); /* fixed-size hash of the wrong size */
    add_field(&r, 1, big, 31);
    expect_corrupt(STOR_REC_TOKEN, &r);
    raw_init(&r, STOR_REC_SAD, STOR_CODEC_VERSION); /* digests do not match the counts */
    add_field(&r, 7, (uint8_t[]){ 32, 0, 0, 0 }, 4);
    add_field(&r, 8, (uint8_t[]){ 3, 0, 0, 0 }, 4);
    add_field(&r, 9, dig, 64);
    expect_corrupt(STOR_REC_SAD, &r);
    raw_init(&r, STOR_REC_SAD, STOR_CODEC_VERSION); /* counts without digests */
    add_field(&r, 8, (uint8_t[]){ 1, 0, 0, 0 }, 4);
    add_field(&r, 7, (uint8_t[]){ 32, 0, 0, 0 }, 4);
    expect_corrupt(STOR_REC_SAD, &r);
    raw_init(&r, STOR_REC_AUDIT, STOR_CODEC_VERSION); /* audit digests without counts */
    add_field(&r, 12, dig, 32);
    expect_corrupt(STOR_REC_AUDIT, &r);
}
END_TEST

START_TEST(t_counts_in_any_order)
{
    stor_sad_t *d = malloc(sizeof(*d));
    uint8_t dig[64];
    rawrec_t r;

    ck_assert_ptr_nonnull(d);
    memset(dig, 9, sizeof(dig));
    raw_init(&r, STOR_REC_SAD, STOR_CODEC_VERSION);
    add_field(&r, 9, dig, 64);
    add_field(&r, 8, (uint8_t[]){ 2, 0, 0, 0 }, 4);
    add_field(&r, 7, (uint8_t[]){ 32, 0, 0, 0 }, 4);
    ck_assert_int_eq(stor_codec_decode(STOR_REC_SAD, r.b, r.n, d), 0);
    ck_assert_uint_eq(d->n_digests, 2);
    ck_assert_mem_eq(d->digests, dig, 64);
    free(d);
}
END_TEST

START_TEST(t_encode_inval)
{
    stor_sad_t *s = calloc(1, sizeof(*s));
    stor_user_t u;
    stor_audit_t a;
    size_t len = 99;
    uint8_t buf[64];

    ck_assert_ptr_nonnull(s);
    sample_user(&u);
    u.pw_verifier_len = STOR_VERIFIER_MAX + 1;
    ck_assert_int_eq(stor_codec_size(STOR_REC_USER, &u, &len), STOR_ERR_INVAL);
    ck_assert_uint_eq(len, 0);
    sample_user(&u);
    memset(u.name, 'n', sizeof(u.name)); /* not terminated inside its array */
    ck_assert_int_eq(stor_codec_size(STOR_REC_USER, &u, &len), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_codec_encode(STOR_REC_USER, &u, buf, sizeof(buf)), STOR_ERR_INVAL);
    sample_user(&u);
    ck_assert_int_eq(stor_codec_size(STOR_REC_USER, &u, &len), 0);
    ck_assert_int_eq(stor_codec_encode(STOR_REC_USER, &u, buf, sizeof(buf)), STOR_ERR_INVAL); /* wrong size */
    ck_assert_int_eq(stor_codec_size((stor_rec_type_t)99, &u, &len), STOR_ERR_INVAL);
    ck_assert_int_eq(stor_codec_decode((stor_rec_type_t)0, buf, sizeof(buf), &u), STOR_ERR_INVAL);

    s->digest_len = STOR_DIGEST_LEN_MAX;
    s->n_digests = STOR_DIGESTS_MAX + 1; /* more bytes than the array holds */
    ck_assert_int_eq(stor_codec_size(STOR_REC_SAD, s, &len), STOR_ERR_INVAL);
    s->digest_len = 0x10000;
    s->n_digests = 0x10000; /* product overflows 32 bits */
    ck_assert_int_eq(stor_codec_size(STOR_REC_SAD, s, &len), STOR_ERR_INVAL);

    memset(&a, 0, sizeof(a));
    a.digest_len = 32;
    a.n_digests = 1; /* digests == NULL */
    ck_assert_int_eq(stor_codec_size(STOR_REC_AUDIT, &a, &len), STOR_ERR_INVAL);
    free(s);
}
END_TEST

START_TEST(t_peek)
{
    stor_token_t tok;
    uint8_t grant[16], *buf;
    int64_t exp = 1;
    char user[STOR_NAME_MAX + 1];
    rawrec_t r;
    size_t len;

    memset(&tok, 0, sizeof(tok));
    TST_SET(tok.user, "carol");
    memset(tok.grant, 0x33, 16);
    tok.expires_at = -42;
    buf = encode(STOR_REC_TOKEN, &tok, &len);
    ck_assert_int_eq(stor_codec_peek(STOR_REC_TOKEN, buf, len, offsetof(stor_token_t, expires_at), &exp, 8), 0);
    ck_assert_int_eq(exp, -42);
    ck_assert_int_eq(stor_codec_peek(STOR_REC_TOKEN, buf, len, offsetof(stor_token_t, grant), grant, 16), 0);
    ck_assert_mem_eq(grant, tok.grant, 16);
    ck_assert_int_eq(stor_codec_peek(STOR_REC_TOKEN, buf, len, offsetof(stor_token_t, user), user, sizeof(user)), 0);
    ck_assert_str_eq(user, "carol");
    /* wrong out size, an offset that is no field */
    ck_assert_int_eq(stor_codec_peek(STOR_REC_TOKEN, buf, len, offsetof(stor_token_t, expires_at), &exp, 4),
                     STOR_ERR_INVAL);
    ck_assert_int_eq(stor_codec_peek(STOR_REC_TOKEN, buf, len, 1, &exp, 8), STOR_ERR_INVAL);
    /* the last field (cred) is cut: reaching it finds the damage; revoked comes before the cut */
    ck_assert_int_eq(stor_codec_peek(STOR_REC_TOKEN, buf, len - 3, offsetof(stor_token_t, cred), user, sizeof(user)),
                     STOR_ERR_CORRUPT);
    ck_assert_int_eq(stor_codec_peek(STOR_REC_TOKEN, buf, len - 3, offsetof(stor_token_t, revoked), &exp, 4), 0);
    free(buf);

    raw_init(&r, STOR_REC_TOKEN, STOR_CODEC_VERSION); /* absent: zero */
    add_field(&r, 4, "dave", 4);
    ck_assert_int_eq(stor_codec_peek(STOR_REC_TOKEN, r.b, r.n, offsetof(stor_token_t, expires_at), &exp, 8), 0);
    ck_assert_int_eq(exp, 0);
    raw_init(&r, STOR_REC_TOKEN, STOR_CODEC_VERSION);
    add_field(&r, 7, "abc", 3);
    ck_assert_int_eq(stor_codec_peek(STOR_REC_TOKEN, r.b, r.n, offsetof(stor_token_t, expires_at), &exp, 8),
                     STOR_ERR_CORRUPT);
    ck_assert_int_eq(stor_codec_peek(STOR_REC_USER, r.b, r.n, offsetof(stor_user_t, created_at), &exp, 8),
                     STOR_ERR_CORRUPT);
}
END_TEST

/* stor_rec_new and stor_rec_free: a big record given back is the next one of its size, wiped to zero; a record of
 * another size is not; small blocks are not pooled. */
START_TEST(t_record_pool)
{
    stor_sad_t *a = stor_rec_new(sizeof(*a)), *b;
    stor_cred_t *c;

    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < sizeof(*a); i++)
        ck_assert_uint_eq(((const uint8_t *)a)[i], 0);
    memset(a, 0x5a, sizeof(*a)); /* a SAD's digests, its user's name, ... */
    stor_rec_free(a, sizeof(*a));
    ck_assert_ptr_nonnull(c = stor_rec_new(sizeof(*c)));
    ck_assert_ptr_ne((void *)c, (void *)a);
    b = stor_rec_new(sizeof(*b));
    ck_assert_ptr_eq(b, a);
    for (size_t i = 0; i < sizeof(*b); i++)
        ck_assert_uint_eq(((const uint8_t *)b)[i], 0);
    a = stor_rec_new(sizeof(*a)); /* none kept now: a block of its own */
    ck_assert_ptr_ne(a, b);
    stor_rec_free(a, sizeof(*a));
    stor_rec_free(b, sizeof(*b));
    stor_rec_free(c, sizeof(*c));
    stor_rec_free(NULL, sizeof(*c));
    ck_assert_ptr_eq(stor_rec_new(sizeof(*b)), b); /* the last given back first */
    ck_assert_ptr_eq(stor_rec_new(sizeof(*a)), a);
    stor_rec_free(a, sizeof(*a));
    stor_rec_free(b, sizeof(*b));
    uint8_t *small = stor_rec_new(100);
    ck_assert_ptr_nonnull(small);
    stor_rec_free(small, 100);
}
END_TEST

Suite *tst_codec_suite(void)
{
    Suite *s = suite_create("stor_codec");
    TCase *tc = tcase_create("codec");

    tcase_add_test(tc, t_roundtrip_user);
    tcase_add_test(tc, t_roundtrip_cred);
    tcase_add_test(tc, t_roundtrip_token_sad);
    tcase_add_test(tc, t_roundtrip_audit);
    tcase_add_test(tc, t_truncated);
    tcase_add_test(tc, t_unknown_tags);
    tcase_add_test(tc, t_absent_fields_zero);
    tcase_add_test(tc, t_totp_clear_and_sealed);
    tcase_add_test(tc, t_corrupt);
    tcase_add_test(tc, t_counts_in_any_order);
    tcase_add_test(tc, t_encode_inval);
    tcase_add_test(tc, t_peek);
    tcase_add_test(tc, t_record_pool);
    suite_add_tcase(s, tc);
    return s;
}
