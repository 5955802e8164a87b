/*
 * fuzz_stor_codec.c - libFuzzer target of the storage record codec (storage/stor_codec.c): what a damaged or
 * hostile database hands back to stor_codec_decode().
 *
 * Input: a stored value; its byte 0 names the record type, as in the database, so every type is reached. What
 * decodes must be accepted by stor_codec_size() (the decoder yields only records the encoder takes), encodes to
 * bytes that decode again, and those encode to themselves: one encoding per record once written. (The first
 * encoding may differ from the input: unknown tags are skipped, fields come out in table order.) Any difference
 * aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stor_int.h"

typedef union {
    stor_user_t user;
    stor_cred_t cred;
    stor_token_t token;
    stor_sad_t sad;
    stor_audit_t audit;
    stor_head_t head;
    stor_client_t client;
    stor_code_t code;
    stor_signed_head_t signed_head;
    stor_async_t async;
    stor_operator_t operator;
    stor_opsession_t opsession;
    stor_approval_t approval;
    stor_websession_t websession;
    stor_user_approval_t user_approval;
    stor_enroll_t enroll;
    stor_enroll_ticket_t enroll_ticket;
    stor_restore_req_t restore_req;
    stor_recent_t recent;
    stor_challenge_t challenge;
} any_rec_t;

/* The encoding of rec, malloc'ed; aborts if the encoder refuses it. */
static uint8_t *encode(stor_rec_type_t type, const any_rec_t *rec, size_t *len)
{
    uint8_t *buf;
    if (stor_codec_size(type, rec, len) != 0 || (buf = malloc(*len)) == NULL ||
        stor_codec_encode(type, rec, buf, *len) != 0)
        abort();
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static any_rec_t r1, r2; /* large (fixed arrays): not on the stack */
    if (size == 0)
        return 0;
    stor_rec_type_t type = (stor_rec_type_t)data[0];
    int rc = stor_codec_decode(type, data, size, &r1);
    if (rc == STOR_ERR_INVAL)
        return 0; /* not a record type */
    if (rc != 0) {
        if (rc != STOR_ERR_CORRUPT)
            abort();
        return 0;
    }
    size_t n1, n2;
    uint8_t *e1 = encode(type, &r1, &n1);
    if (stor_codec_decode(type, e1, n1, &r2) != 0)
        abort();
    uint8_t *e2 = encode(type, &r2, &n2);
    if (n1 != n2 || memcmp(e1, e2, n1) != 0)
        abort();
    free(e1);
    free(e2);
    return 0;
}
