/* test_sam_codec.c - the SAM protocol's tables, decoder and builder (sam/include/sam_wire.h). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_sam.h"
#include "test_sam.h"

/* ---- a hand builder: byte strings the real builder would refuse to make ---- */

void raw_start(raw_t *r, unsigned op)
{
    raw_hdr(r, SAM_MAGIC, SAM_VERSION, op, 0, 0, 42);
}

void raw_hdr(raw_t *r, uint16_t magic, uint8_t version, uint8_t op, uint16_t flags, uint16_t reserved, uint32_t id)
{
    memset(r, 0, sizeof(*r));
    uint8_t *p = r->b;
    p[0] = (uint8_t)(magic >> 8), p[1] = (uint8_t)magic, p[2] = version, p[3] = op;
    p[4] = (uint8_t)(flags >> 8), p[5] = (uint8_t)flags, p[6] = (uint8_t)(reserved >> 8), p[7] = (uint8_t)reserved;
    p[8] = (uint8_t)(id >> 24), p[9] = (uint8_t)(id >> 16), p[10] = (uint8_t)(id >> 8), p[11] = (uint8_t)id;
    r->n = SAM_HDR_LEN;
}

void raw_bytes(raw_t *r, const void *p, size_t n)
{
    ck_assert_uint_le(r->n + n, sizeof(r->b));
    memcpy(r->b + r->n, p, n);
    r->n += n;
}

void raw_field(raw_t *r, uint16_t tag, const void *p, uint32_t len)
{
    uint8_t h[6] = {(uint8_t)(tag >> 8), (uint8_t)tag, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                    (uint8_t)len};
    raw_bytes(r, h, sizeof(h));
    raw_bytes(r, p, len);
}

void raw_u32(raw_t *r, uint16_t tag, uint32_t v)
{
    uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    raw_field(r, tag, be, 4);
}

void raw_str(raw_t *r, uint16_t tag, const char *s)
{
    raw_field(r, tag, s, (uint32_t)strlen(s));
}

/* Set the header's length to the body written so far. */
void raw_done(raw_t *r)
{
    uint32_t n = (uint32_t)(r->n - SAM_HDR_LEN);
    r->b[12] = (uint8_t)(n >> 24), r->b[13] = (uint8_t)(n >> 16), r->b[14] = (uint8_t)(n >> 8), r->b[15] = (uint8_t)n;
}

static int decode(const raw_t *r)
{
    sam_msg_t m;
    return sam_msg_decode(r->b, r->n, &m);
}

/* A CHALLENGE request (TOKEN, CRED, CLIENT) with this credential id, valid or not. */
static void raw_challenge_cred(raw_t *r, const void *cred, size_t len)
{
    raw_start(r, SAM_OP_CHALLENGE);
    raw_str(r, SAM_T_TOKEN, "tok");
    raw_field(r, SAM_T_CRED, cred, (uint32_t)len);
    raw_str(r, SAM_T_CLIENT, "127.0.0.1");
    raw_done(r);
}

/* A valid CHALLENGE request. */
static void raw_challenge(raw_t *r)
{
    raw_challenge_cred(r, "cred-1", 6);
}

/* A SIGN request's fields before the digests: TOKEN, CRED, HASH_ALG. */
static void raw_sign_head(raw_t *r)
{
    raw_start(r, SAM_OP_SIGN);
    raw_str(r, SAM_T_TOKEN, "tok");
    raw_str(r, SAM_T_CRED, "c");
    raw_str(r, SAM_T_HASH_ALG, "2.16.840.1.101.3.4.2.1");
}

/* A SIGN request with n one-byte digests. */
static void raw_sign(raw_t *r, int n)
{
    raw_sign_head(r);
    for (int i = 0; i < n; i++)
        raw_field(r, SAM_T_DIGEST, "d", 1);
    raw_str(r, SAM_T_CLIENT, "x");
    raw_str(r, SAM_T_SIGN_ALG, "1.2.840.10045.4.3.2");
    raw_done(r);
}

/* ---- the tables ---- */

START_TEST(t_tables)
{
    unsigned requests = 0;
    for (unsigned op = 0; op < 256; op++) {
        const sam_op_spec_t *s = sam_op_spec(op);
        if (s == NULL)
            continue;
        ck_assert_uint_eq(s->op, op);
        ck_assert_ptr_nonnull(s->name);
        ck_assert_str_eq(sam_op_name(op), s->name);
        if (op < SAM_OP_REPLY) { /* every request has its reply table, and no request op is the refusal */
            requests++;
            ck_assert_ptr_nonnull(sam_op_spec(op | SAM_OP_REPLY));
            ck_assert_uint_ne(op | SAM_OP_REPLY, SAM_OP_REFUSED);
        }
        for (size_t i = 0; i < s->n_fields; i++) {
            const sam_field_spec_t *f = &s->fields[i];
            ck_assert_uint_gt(f->tag, 0);
            ck_assert_uint_lt(f->tag, SAM_TAG_LIMIT);
            if (i > 0)
                ck_assert_uint_gt(f->tag, s->fields[i - 1].tag); /* ascending, each tag once */
            ck_assert_uint_le(f->min_count, f->max_count);
            ck_assert_uint_ge(f->max_count, 1);
            ck_assert_uint_le(f->min_len, f->max_len);
            ck_assert(f->one_of == 0 || (f->min_count == 0 && f->max_count == 1));
            ck_assert_ptr_eq(sam_field_spec(s, f->tag), f);
            switch (f->type) {
            case SAM_TYPE_U32:
                ck_assert(f->min_len == 4 && f->max_len == 4 && f->min_val <= f->max_val && f->max_val <= UINT32_MAX);
                break;
            case SAM_TYPE_U64:
                ck_assert(f->min_len == 8 && f->max_len == 8 && f->min_val <= f->max_val);
                break;
            case SAM_TYPE_BYTES:
            case SAM_TYPE_TEXT:
                ck_assert_uint_le(f->max_len, SAM_MSG_MAX);
                break;
            default:
                ck_abort_msg("%s: tag %u has no type", s->name, f->tag);
            }
        }
    }
    ck_assert_uint_eq(requests, 42);
    ck_assert_ptr_null(sam_op_spec(0));
    ck_assert_ptr_null(sam_op_spec(SAM_OP_REFUSED & 0x7f));
    ck_assert_str_eq(sam_refusal_name(SAM_REFUSE_NOT_BOUND), "NOT_BOUND");
    ck_assert_str_eq(sam_refusal_name(SAM_REFUSE_DB_DOWN), "DB_DOWN");
    ck_assert_str_eq(sam_refusal_name(SAM_REFUSE_MAX), "CLOCK");
    ck_assert_ptr_null(sam_refusal_name(0));
    ck_assert_ptr_null(sam_refusal_name(SAM_REFUSE_MAX + 1));
    ck_assert_str_eq(sam_strerror(SAM_ERR_INTERLEAVED), "record of another request inside a message");
    ck_assert_str_eq(sam_strerror(12345), "unknown error");
}
END_TEST

/* ---- round trips: every op, from its table, in three variants ---- */

START_TEST(t_round_trip_every_op)
{
    unsigned checked = 0;
    uint8_t *want = malloc(SAM_MSG_MAX);
    ck_assert_ptr_nonnull(want);
    for (unsigned op = 0; op < 256; op++) {
        const sam_op_spec_t *s = sam_op_spec(op);
        for (unsigned variant = 0; s != NULL && variant < FUZZ_SAM_VARIANTS; variant++) {
            sam_builder_t b;
            const uint8_t *msg;
            size_t len;
            ck_assert_msg(fuzz_sam_sample(op, variant, 0x01020304u + op, &b, &msg, &len) == SAM_OK, "%s %u", s->name,
                          variant);
            sam_msg_t m;
            ck_assert_int_eq(sam_msg_decode(msg, len, &m), SAM_OK);
            ck_assert_uint_eq(m.op, op);
            ck_assert_uint_eq(m.id, 0x01020304u + op);
            for (size_t i = 0; i < s->n_fields; i++) {
                const sam_field_spec_t *f = &s->fields[i];
                unsigned n = fuzz_sam_count(s, f, variant);
                ck_assert_uint_eq(sam_msg_count(&m, f->tag), n);
                sam_iter_t it;
                const uint8_t *p;
                size_t plen, wlen;
                sam_iter_init(&m, f->tag, &it);
                for (unsigned k = 0; k < n; k++) {
                    ck_assert_int_eq(sam_iter_next(&it, &p, &plen), 1);
                    fuzz_sam_value(f, variant, k, want, &wlen);
                    ck_assert_uint_eq(plen, wlen);
                    ck_assert_mem_eq(p, want, wlen);
                }
                ck_assert_int_eq(sam_iter_next(&it, &p, &plen), 0);
            }
            LLVMFuzzerTestOneInput(msg, len); /* decodes and re-encodes to the same bytes, or aborts */
            sam_build_free(&b);
            checked++;
        }
    }
    free(want);
    ck_assert_uint_eq(checked, 85 * FUZZ_SAM_VARIANTS);
}
END_TEST

/* A SIGN request written field by field, read back with the accessors. */
/* API_LOGIN's table: the name required and not empty, the password required (empty allowed: a wrong one), REMEMBER
 * 0 or 1 and required; and sam_text_ok, which csc-api asks before it puts a name or password. */
START_TEST(t_api_login_table)
{
    sam_builder_t b;
    const uint8_t *msg;
    size_t len;
    sam_msg_t m;

    ck_assert_int_eq(sam_build_init(&b, SAM_OP_API_LOGIN, 7), SAM_OK);
    ck_assert_int_eq(sam_put_str(&b, SAM_T_USER, "alice"), SAM_OK);
    ck_assert_int_eq(sam_put_str(&b, SAM_T_PASSWORD, ""), SAM_OK);
    ck_assert_int_eq(sam_put_u32(&b, SAM_T_REMEMBER, 2), SAM_ERR_VALUE);
    sam_build_free(&b);
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_API_LOGIN, 7), SAM_OK);
    ck_assert_int_eq(sam_put_str(&b, SAM_T_USER, ""), SAM_ERR_FIELD_LEN);
    sam_build_free(&b);
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_API_LOGIN, 7), SAM_OK);
    ck_assert_int_eq(sam_put_str(&b, SAM_T_USER, "alice"), SAM_OK);
    ck_assert_int_eq(sam_put_str(&b, SAM_T_PASSWORD, "pw"), SAM_OK);
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_ERR_MISSING); /* no REMEMBER */
    sam_build_free(&b);
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_API_LOGIN, 7), SAM_OK);
    ck_assert_int_eq(sam_put_str(&b, SAM_T_USER, "alice"), SAM_OK);
    ck_assert_int_eq(sam_put_str(&b, SAM_T_PASSWORD, "pw"), SAM_OK);
    ck_assert_int_eq(sam_put_u32(&b, SAM_T_REMEMBER, 1), SAM_OK);
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_OK);
    ck_assert_int_eq(sam_msg_decode(msg, len, &m), SAM_OK);
    ck_assert_uint_eq(sam_msg_count(&m, SAM_T_CLIENT), 0);
    sam_build_free(&b);
    ck_assert_int_eq(sam_text_ok("caf\xc3\xa9", 5), 1);
    ck_assert_int_eq(sam_text_ok("caf\xe9", 4), 0);
    ck_assert_int_eq(sam_text_ok("a\0b", 3), 0);
    ck_assert_int_eq(sam_text_ok(NULL, 0), 0);
    ck_assert_int_eq(sam_text_ok("", 0), 1);
}
END_TEST

START_TEST(t_sign_request)
{
    static const uint8_t d[3][32] = {{1}, {2}, {3}};
    sam_builder_t b;
    ck_assert_int_eq(sam_build_init(&b, SAM_OP_SIGN, 77), SAM_OK);
    sam_put_str(&b, SAM_T_TOKEN, "access-token");
    sam_put_str(&b, SAM_T_CRED, "cred-rsa");
    sam_put_str(&b, SAM_T_HASH_ALG, "2.16.840.1.101.3.4.2.1");
    for (int i = 0; i < 3; i++)
        sam_put_bytes(&b, SAM_T_DIGEST, d[i], sizeof(d[i]));
    sam_put_str(&b, SAM_T_CLIENT, "client@127.0.0.1");
    sam_put_str(&b, SAM_T_SAD, "the-sad");
    sam_put_str(&b, SAM_T_SIGN_ALG, "1.2.840.113549.1.1.11");
    sam_put_u32(&b, SAM_T_ASYNC, 1);
    const uint8_t *msg;
    size_t len;
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_OK);

    sam_msg_t m;
    ck_assert_int_eq(sam_msg_decode(msg, len, &m), SAM_OK);
    ck_assert_uint_eq(m.op, SAM_OP_SIGN);
    ck_assert_uint_eq(m.id, 77);
    char s[SAM_TOKEN_MAX + 1];
    ck_assert_int_eq(sam_get_text(&m, SAM_T_TOKEN, s, sizeof(s)), SAM_OK);
    ck_assert_str_eq(s, "access-token");
    ck_assert_int_eq(sam_get_text(&m, SAM_T_SAD, s, sizeof(s)), SAM_OK);
    ck_assert_str_eq(s, "the-sad");
    ck_assert_int_eq(sam_get_text(&m, SAM_T_SAD, s, 7), SAM_ERR_INVAL); /* no room for the NUL */
    ck_assert_str_eq(s, "");
    uint32_t v;
    ck_assert_int_eq(sam_get_u32(&m, SAM_T_ASYNC, &v), SAM_OK);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(sam_get_text(&m, SAM_T_PSS_PARAMS, s, sizeof(s)), SAM_ERR_ABSENT);
    ck_assert_int_eq(sam_get_u32(&m, SAM_T_TOKEN, &v), SAM_ERR_ABSENT); /* not a U32 */
    ck_assert_uint_eq(sam_msg_count(&m, SAM_TAG_LIMIT + 5), 0);
    sam_iter_t it;
    const uint8_t *p;
    size_t plen;
    sam_iter_init(&m, SAM_T_DIGEST, &it);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(sam_iter_next(&it, &p, &plen), 1);
        ck_assert_uint_eq(plen, 32);
        ck_assert_mem_eq(p, d[i], 32);
    }
    ck_assert_int_eq(sam_iter_next(&it, &p, &plen), 0);
    /* the view points into the message: nothing was copied */
    ck_assert(p >= msg && p < msg + len);
    sam_build_free(&b);
}
END_TEST

START_TEST(t_refusal)
{
    sam_builder_t b;
    const uint8_t *msg;
    size_t len;
    char reason[400];
    memset(reason, 'x', sizeof(reason));
    memcpy(reason + SAM_REASON_MAX - 1, "\xe3\x81\x82", 3); /* a character across the limit is left out whole */
    reason[sizeof(reason) - 1] = '\0';
    ck_assert_int_eq(sam_build_refusal(&b, 5, SAM_REFUSE_NOT_BOUND, reason, SAM_T_DIGEST), SAM_OK);
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_OK);
    sam_msg_t m;
    ck_assert_int_eq(sam_msg_decode(msg, len, &m), SAM_OK);
    ck_assert_uint_eq(m.op, SAM_OP_REFUSED);
    ck_assert_uint_eq(m.id, 5);
    uint32_t code, about;
    ck_assert_int_eq(sam_get_u32(&m, SAM_T_REFUSAL, &code), SAM_OK);
    ck_assert_int_eq(sam_get_u32(&m, SAM_T_ABOUT, &about), SAM_OK);
    ck_assert_uint_eq(code, SAM_REFUSE_NOT_BOUND);
    ck_assert_uint_eq(about, SAM_T_DIGEST);
    const uint8_t *p;
    size_t n;
    ck_assert_int_eq(sam_get_bytes(&m, SAM_T_REASON, &p, &n), SAM_OK);
    ck_assert_uint_eq(n, SAM_REASON_MAX - 1);
    sam_build_free(&b);
    /* an unknown code cannot be sent */
    ck_assert_int_eq(sam_build_refusal(&b, 5, SAM_REFUSE_MAX + 1, "x", 0), SAM_ERR_VALUE);
    sam_build_free(&b);
    ck_assert_int_eq(sam_build_refusal(&b, 5, SAM_REFUSE_BUSY, NULL, 0), SAM_OK);
    sam_build_free(&b);
}
END_TEST

/* ---- the decoder's refusals, one rule each, on hand-built bytes ---- */

START_TEST(t_decode_header)
{
    raw_t r;
    raw_challenge(&r);
    ck_assert_int_eq(decode(&r), SAM_OK); /* the control: the hand builder makes valid messages */
    sam_msg_t m;
    ck_assert_int_eq(sam_msg_decode(NULL, 16, &m), SAM_ERR_INVAL);
    ck_assert_int_eq(sam_msg_decode(r.b, SAM_HDR_LEN - 1, &m), SAM_ERR_TRUNCATED); /* a header cut short */
    ck_assert_int_eq(sam_msg_decode(r.b, 0, &m), SAM_ERR_TRUNCATED);

    static const struct {
        uint16_t magic;
        uint8_t version, op;
        uint16_t flags, reserved;
        int rc;
    } cases[] = {
        {0x5342, 1, SAM_OP_CHALLENGE, 0, 0, SAM_ERR_MAGIC},
        {0x0000, 1, SAM_OP_CHALLENGE, 0, 0, SAM_ERR_MAGIC},
        {SAM_MAGIC, 0, SAM_OP_CHALLENGE, 0, 0, SAM_ERR_VERSION},
        {SAM_MAGIC, 2, SAM_OP_CHALLENGE, 0, 0, SAM_ERR_VERSION},
        {SAM_MAGIC, 1, 0, 0, 0, SAM_ERR_OP},
        {SAM_MAGIC, 1, 25, 0, 0, SAM_ERR_OP}, /* the first op number not used */
        {SAM_MAGIC, 1, 0x7f, 0, 0, SAM_ERR_OP},
        {SAM_MAGIC, 1, SAM_OP_REPLY, 0, 0, SAM_ERR_OP},
        {SAM_MAGIC, 1, SAM_OP_CHALLENGE, SAM_FLAG_MORE, 0, SAM_ERR_FLAGS}, /* MORE has no place in the flat form */
        {SAM_MAGIC, 1, SAM_OP_CHALLENGE, 0x8000, 0, SAM_ERR_FLAGS},
        {SAM_MAGIC, 1, SAM_OP_CHALLENGE, 0, 1, SAM_ERR_RESERVED},
        {SAM_MAGIC, 1, SAM_OP_CHALLENGE, 0, 0x8000, SAM_ERR_RESERVED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        raw_hdr(&r, cases[i].magic, cases[i].version, cases[i].op, cases[i].flags, cases[i].reserved, 1);
        raw_str(&r, SAM_T_TOKEN, "tok");
        raw_str(&r, SAM_T_CRED, "cred-1");
        raw_str(&r, SAM_T_CLIENT, "127.0.0.1");
        raw_done(&r);
        ck_assert_msg(decode(&r) == cases[i].rc, "case %zu: %s", i, sam_strerror(decode(&r)));
    }

    /* the declared length against the buffer */
    raw_challenge(&r);
    ck_assert_int_eq(sam_msg_decode(r.b, r.n - 1, &m), SAM_ERR_TRUNCATED);
    r.b[r.n++] = 0;
    ck_assert_int_eq(decode(&r), SAM_ERR_TRAILING);
    /* over the limit: declared, or given */
    raw_challenge(&r);
    r.b[12] = 0x7f;
    ck_assert_int_eq(decode(&r), SAM_ERR_TOO_BIG);
    uint8_t *big = calloc(1, SAM_HDR_LEN + SAM_MSG_MAX + 1);
    ck_assert_ptr_nonnull(big);
    raw_challenge(&r);
    memcpy(big, r.b, SAM_HDR_LEN);
    big[12] = (uint8_t)((SAM_MSG_MAX + 1) >> 24), big[13] = (uint8_t)((SAM_MSG_MAX + 1) >> 16);
    big[14] = (uint8_t)((SAM_MSG_MAX + 1) >> 8), big[15] = (uint8_t)(SAM_MSG_MAX + 1);
    ck_assert_int_eq(sam_msg_decode(big, SAM_HDR_LEN + SAM_MSG_MAX + 1, &m), SAM_ERR_TOO_BIG);
    free(big);
    ck_assert_ptr_null(m.body); /* a refused message leaves no view */
}
END_TEST

START_TEST(t_decode_fields)
{
    raw_t r;
    static const uint8_t ref15[15] = {0};
    char long_name[SAM_NAME_MAX + 2];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';

    /* a tag the op does not list: another op's, 0, past the limit */
    raw_start(&r, SAM_OP_CHALLENGE);
    raw_str(&r, SAM_T_TOKEN, "tok");
    raw_str(&r, SAM_T_CRED, "c");
    raw_str(&r, SAM_T_CLIENT, "x");
    raw_str(&r, SAM_T_SAD, "sad");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_TAG);
    raw_start(&r, SAM_OP_CHALLENGE);
    raw_str(&r, 0, "zero");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_TAG);
    raw_start(&r, SAM_OP_CHALLENGE);
    raw_str(&r, SAM_T_TOKEN, "tok");
    raw_str(&r, 0xffff, "high");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_TAG);

    /* out of order */
    raw_start(&r, SAM_OP_CHALLENGE);
    raw_str(&r, SAM_T_CRED, "c");
    raw_str(&r, SAM_T_TOKEN, "tok");
    raw_str(&r, SAM_T_CLIENT, "x");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_ORDER);
    /* a repeated field's values not together */
    raw_sign_head(&r);
    raw_field(&r, SAM_T_DIGEST, "0123456789abcdef0123456789abcdef", 32);
    raw_str(&r, SAM_T_CLIENT, "x");
    raw_field(&r, SAM_T_DIGEST, "0123456789abcdef0123456789abcdef", 32);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_ORDER);

    /* counts: a single field twice, a repeated one past its max */
    raw_start(&r, SAM_OP_CHALLENGE);
    raw_str(&r, SAM_T_TOKEN, "tok");
    raw_str(&r, SAM_T_TOKEN, "tok");
    raw_str(&r, SAM_T_CRED, "c");
    raw_str(&r, SAM_T_CLIENT, "x");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_COUNT);
    raw_sign(&r, SAM_DIGESTS_MAX);
    ck_assert_int_eq(decode(&r), SAM_OK); /* 1024: the limit itself */
    raw_sign(&r, SAM_DIGESTS_MAX + 1);
    ck_assert_int_eq(decode(&r), SAM_ERR_COUNT);

    /* lengths: a name too long, an empty one, a U32 of 3 bytes, a U64 of 4, fixed-size bytes of 15 */
    raw_challenge_cred(&r, long_name, strlen(long_name));
    ck_assert_int_eq(decode(&r), SAM_ERR_FIELD_LEN);
    raw_challenge_cred(&r, long_name, SAM_NAME_MAX); /* the control */
    ck_assert_int_eq(decode(&r), SAM_OK);
    raw_challenge_cred(&r, "", 0);
    ck_assert_int_eq(decode(&r), SAM_ERR_FIELD_LEN);
    raw_start(&r, SAM_OP_HELLO);
    raw_field(&r, SAM_T_VERSION, "\0\0\1", 3);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_FIELD_LEN);
    raw_start(&r, SAM_OP_AUDIT_HEAD | SAM_OP_REPLY);
    raw_field(&r, SAM_T_SEQ, "\0\0\0\1", 4);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_FIELD_LEN);
    raw_start(&r, SAM_OP_APPROVE);
    raw_field(&r, SAM_T_APPROVAL_REF, ref15, sizeof(ref15));
    raw_str(&r, SAM_T_SESSION, "s");
    raw_u32(&r, SAM_T_DECISION, 1);
    raw_str(&r, SAM_T_CSRF, "c");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_FIELD_LEN);

    /* HELLO reply's TICKET_KEY: exactly SAM_TICKET_KEY_LEN bytes; never in a request (the front end sends no key) */
    static const uint8_t key33[SAM_TICKET_KEY_LEN + 1];
    static const size_t key_lens[] = {SAM_TICKET_KEY_LEN - 1, SAM_TICKET_KEY_LEN + 1, 0, SAM_TICKET_KEY_LEN};
    for (size_t i = 0; i < sizeof(key_lens) / sizeof(key_lens[0]); i++) {
        raw_start(&r, SAM_OP_HELLO | SAM_OP_REPLY);
        raw_u32(&r, SAM_T_VERSION, 1);
        raw_str(&r, SAM_T_IDENTITY, "sam");
        raw_u32(&r, SAM_T_HSM_STATE, SAM_HSM_READY);
        raw_u32(&r, SAM_T_STORAGE_STATE, SAM_HSM_READY);
        raw_field(&r, SAM_T_TICKET_KEY, key33, key_lens[i]);
        raw_done(&r);
        ck_assert_msg(decode(&r) == (key_lens[i] == SAM_TICKET_KEY_LEN ? SAM_OK : SAM_ERR_FIELD_LEN), "len %zu",
                      key_lens[i]);
    }
    raw_start(&r, SAM_OP_HELLO);
    raw_u32(&r, SAM_T_VERSION, 1);
    raw_field(&r, SAM_T_TICKET_KEY, key33, SAM_TICKET_KEY_LEN);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_TAG);

    /* values: version 0, decision 2 */
    raw_start(&r, SAM_OP_HELLO);
    raw_u32(&r, SAM_T_VERSION, 0);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_VALUE);
    raw_start(&r, SAM_OP_CONSENT);
    raw_str(&r, SAM_T_SESSION, "s");
    raw_u32(&r, SAM_T_DECISION, 2);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_VALUE);

    /* TEXT: not UTF-8 (overlong, surrogate, past U+10FFFF, a lone continuation byte, cut short) or with a NUL */
    static const char *const bad_text[] = {"a\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
                                           "\x80", "ok\xe3\x81", "\xe0\x80\xaf", "a\0b"};
    static const size_t bad_len[] = {3, 3, 4, 4, 1, 4, 3, 3};
    for (size_t i = 0; i < sizeof(bad_text) / sizeof(bad_text[0]); i++) {
        raw_challenge_cred(&r, bad_text[i], bad_len[i]);
        ck_assert_msg(decode(&r) == SAM_ERR_UTF8, "text %zu", i);
    }
    raw_challenge_cred(&r, "\xc3\xa9\xe3\x81\x82\xf0\x9f\x94\x91", 9); /* the good kinds pass: 2, 3, 4 bytes */
    ck_assert_int_eq(decode(&r), SAM_OK);

    /* a field cut short: its header, its value */
    raw_challenge(&r);
    raw_bytes(&r, "\0\x0d\0", 3);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_TRUNCATED);
    raw_start(&r, SAM_OP_CHALLENGE);
    raw_str(&r, SAM_T_TOKEN, "tok");
    raw_str(&r, SAM_T_CRED, "c");
    raw_bytes(&r, "\0\x0d\0\0\0\x09" "abc", 9); /* CLIENT says 9 bytes, 3 follow */
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_TRUNCATED);
    raw_start(&r, SAM_OP_CHALLENGE);
    raw_str(&r, SAM_T_TOKEN, "tok");
    raw_bytes(&r, "\0\x05\xff\xff\xff\xff", 6); /* a length that would wrap */
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_TRUNCATED);

    /* required fields */
    raw_start(&r, SAM_OP_HELLO);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_MISSING);
    raw_sign(&r, 0); /* no digest */
    ck_assert_int_eq(decode(&r), SAM_ERR_MISSING);

    /* one_of: AUTHORIZE's reply is a SAD or a handle, never both or neither */
    raw_start(&r, SAM_OP_AUTHORIZE | SAM_OP_REPLY);
    raw_str(&r, SAM_T_SAD, "sad");
    raw_u32(&r, SAM_T_EXPIRES_IN, 300);
    raw_str(&r, SAM_T_HANDLE, "h");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_ONE_OF);
    raw_start(&r, SAM_OP_AUTHORIZE | SAM_OP_REPLY);
    raw_u32(&r, SAM_T_EXPIRES_IN, 300);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_ONE_OF);
    raw_start(&r, SAM_OP_AUTHORIZE | SAM_OP_REPLY);
    raw_u32(&r, SAM_T_EXPIRES_IN, 300);
    raw_str(&r, SAM_T_HANDLE, "h");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_OK);

    /* an op without fields: its header alone, and nothing else */
    raw_start(&r, SAM_OP_APPROVE | SAM_OP_REPLY);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_OK);
    raw_u32(&r, SAM_T_DECISION, 1);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_TAG);
}
END_TEST

/* ---- the builder: it cannot make what the decoder refuses ---- */

/* ---- TOKEN and REVOKE: the grant as the client presented it ---- */

/* A TOKEN request of grant with a client secret of secret_len bytes ('s'); a code and verifier for SAM_GRANT_CODE. */
static void raw_token(raw_t *r, uint32_t grant, size_t secret_len)
{
    char secret[SAM_CLIENT_SECRET_MAX + 2];
    ck_assert_uint_lt(secret_len, sizeof(secret));
    memset(secret, 's', secret_len);
    raw_start(r, SAM_OP_TOKEN);
    if (grant == SAM_GRANT_CODE)
        raw_str(r, SAM_T_CODE, "code");
    raw_u32(r, SAM_T_GRANT_TYPE, grant);
    raw_str(r, SAM_T_CLIENT_ID, "app1");
    raw_field(r, SAM_T_CLIENT_SECRET, secret, (uint32_t)secret_len);
    if (grant == SAM_GRANT_CODE) {
        raw_str(r, SAM_T_REDIRECT_URI, "");
        raw_str(r, SAM_T_VERIFIER, "v");
    }
    raw_done(r);
}

START_TEST(t_token_revoke)
{
    raw_t r;
    raw_token(&r, SAM_GRANT_CODE, SAM_CLIENT_SECRET_MAX); /* the controls: the longest secret, "" as a redirect */
    ck_assert_int_eq(decode(&r), SAM_OK);
    raw_token(&r, SAM_GRANT_LOGIN_REFRESH, 0);
    ck_assert_int_eq(decode(&r), SAM_OK);
    raw_token(&r, SAM_GRANT_CODE, SAM_CLIENT_SECRET_MAX + 1);
    ck_assert_int_eq(decode(&r), SAM_ERR_FIELD_LEN);
    raw_token(&r, 0, 1);
    ck_assert_int_eq(decode(&r), SAM_ERR_VALUE);
    raw_token(&r, SAM_GRANT_LOGIN_REFRESH + 1, 1);
    ck_assert_int_eq(decode(&r), SAM_ERR_VALUE);
    raw_start(&r, SAM_OP_TOKEN); /* no grant type */
    raw_str(&r, SAM_T_CODE, "code");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_MISSING);
    raw_start(&r, SAM_OP_TOKEN); /* a bearer token has no place in a grant */
    raw_str(&r, SAM_T_TOKEN, "tok");
    raw_u32(&r, SAM_T_GRANT_TYPE, SAM_GRANT_REFRESH);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_TAG);

    /* REVOKE: the caller's bearer token or a client, exactly one; the token it names always */
    raw_start(&r, SAM_OP_REVOKE);
    raw_str(&r, SAM_T_TOKEN, "tok");
    raw_str(&r, SAM_T_CLIENT, "127.0.0.1");
    raw_str(&r, SAM_T_REVOKE_TOKEN, "");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_OK);
    raw_start(&r, SAM_OP_REVOKE);
    raw_str(&r, SAM_T_TOKEN, "tok");
    raw_str(&r, SAM_T_CLIENT_ID, "app1");
    raw_str(&r, SAM_T_REVOKE_TOKEN, "x");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_ONE_OF);
    raw_start(&r, SAM_OP_REVOKE);
    raw_str(&r, SAM_T_CLIENT_SECRET, "s");
    raw_str(&r, SAM_T_REVOKE_TOKEN, "x");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_ONE_OF);
    raw_start(&r, SAM_OP_REVOKE);
    raw_str(&r, SAM_T_CLIENT_ID, "app1");
    raw_str(&r, SAM_T_CLIENT_SECRET, "s");
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_MISSING);

    /* the reply: a scope out of range, an access token always */
    raw_start(&r, SAM_OP_TOKEN | SAM_OP_REPLY);
    raw_str(&r, SAM_T_TOKEN, "t");
    raw_u32(&r, SAM_T_EXPIRES_IN, 60);
    raw_u32(&r, SAM_T_SCOPE, 3); /* stor_scope_t: 1 service, 2 credential */
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_VALUE);
    raw_start(&r, SAM_OP_TOKEN | SAM_OP_REPLY);
    raw_u32(&r, SAM_T_EXPIRES_IN, 60);
    raw_u32(&r, SAM_T_SCOPE, 1);
    raw_done(&r);
    ck_assert_int_eq(decode(&r), SAM_ERR_MISSING);
}
END_TEST

START_TEST(t_builder_refusals)
{
    sam_builder_t b;
    const uint8_t *msg;
    size_t len;
    char long_name[SAM_NAME_MAX + 2];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';

    ck_assert_int_eq(sam_build_init(&b, 0x7f, 1), SAM_ERR_OP);
    ck_assert_int_eq(sam_put_str(&b, SAM_T_TOKEN, "t"), SAM_ERR_OP);
    ck_assert_int_eq(sam_build_finish(&b, &msg, &len), SAM_ERR_OP);
    sam_build_free(&b);

    static const struct {
        int rc;
        const char *what;
    } want[] = {
        {SAM_ERR_ORDER, "out of order"},   {SAM_ERR_TAG, "another op's tag"}, {SAM_ERR_COUNT, "twice"},
        {SAM_ERR_FIELD_LEN, "too long"},   {SAM_ERR_FIELD_LEN, "empty"},      {SAM_ERR_UTF8, "not UTF-8"},
        {SAM_ERR_VALUE, "out of range"},   {SAM_ERR_INVAL, "wrong type"},     {SAM_ERR_INVAL, "NULL"},
        {SAM_ERR_MISSING, "missing"},      {SAM_ERR_TAG, "tag over 16 bits"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_int_eq(sam_build_init(&b, SAM_OP_CHALLENGE, 1), SAM_OK);
        int rc = SAM_OK;
        switch (i) {
        case 0: sam_put_str(&b, SAM_T_CRED, "c"), rc = sam_put_str(&b, SAM_T_TOKEN, "t"); break;
        case 1: rc = sam_put_str(&b, SAM_T_SAD, "s"); break;
        case 2: sam_put_str(&b, SAM_T_TOKEN, "t"), rc = sam_put_str(&b, SAM_T_TOKEN, "t"); break;
        case 3: sam_put_str(&b, SAM_T_TOKEN, "t"), rc = sam_put_str(&b, SAM_T_CRED, long_name); break;
        case 4: sam_put_str(&b, SAM_T_TOKEN, "t"), rc = sam_put_str(&b, SAM_T_CRED, ""); break;
        case 5: rc = sam_put_text(&b, SAM_T_TOKEN, "a\0b", 3); break;
        case 6: sam_build_free(&b), sam_build_init(&b, SAM_OP_HELLO, 1), rc = sam_put_u32(&b, SAM_T_VERSION, 0); break;
        case 7: rc = sam_put_u32(&b, SAM_T_TOKEN, 1); break;
        case 8: rc = sam_put_str(&b, SAM_T_TOKEN, NULL); break;
        case 9: sam_put_str(&b, SAM_T_TOKEN, "t"), rc = sam_put_str(&b, SAM_T_CLIENT, "x"); break; /* no CRED */
        case 10: rc = sam_put_str(&b, 0x10000 + SAM_T_TOKEN, "t"); break;
        }
        if (i != 9) {
            ck_assert_msg(rc == want[i].rc, "%s: %s", want[i].what, sam_strerror(rc));
            /* the first failure sticks: a valid put after it changes nothing, and the finish reports it */
            sam_put_str(&b, SAM_T_CLIENT, "x");
        }
        ck_assert_msg(sam_build_finish(&b, &msg, &len) == want[i].rc, "finish after %s", want[i].what);
        sam_build_free(&b);
    }
    /* the NULL builder */
    ck_assert_int_eq(sam_put_u32(NULL, SAM_T_VERSION, 1), SAM_ERR_INVAL);
    ck_assert_int_eq(sam_build_init(NULL, SAM_OP_HELLO, 1), SAM_ERR_INVAL);
    sam_build_free(NULL);
    /* a freed builder refuses until initialised again */
    ck_assert_int_eq(sam_put_u32(&b, SAM_T_VERSION, 1), SAM_ERR_INVAL);
}
END_TEST

TCase *sam_codec_tcase(void)
{
    TCase *tc = tcase_create("codec");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_tables);
    tcase_add_test(tc, t_round_trip_every_op);
    tcase_add_test(tc, t_api_login_table);
    tcase_add_test(tc, t_sign_request);
    tcase_add_test(tc, t_refusal);
    tcase_add_test(tc, t_decode_header);
    tcase_add_test(tc, t_decode_fields);
    tcase_add_test(tc, t_builder_refusals);
    tcase_add_test(tc, t_token_revoke);
    return tc;
}
