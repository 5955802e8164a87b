/*
 * csc_sam.c - csc-api's calls to the signature activation module, csc-sam (csc_int.h: csc_sam_begin, csc_sam_run,
 * csc_sam_end). A method builds one request with sam_put_* between begin and run, reads the reply's fields after
 * run, and ends the call. What can go wrong becomes a CSC error in one place: a refusal through csc_req.c's table,
 * everything else (no SAM, no answer in time, a request the builder refused) 503 temporarily_unavailable, which is
 * never the client's fault and never a signature.
 */
#include <stdio.h>
#include <string.h>

#include "csc_int.h"

/* The two 503s of a call that got no answer: csc-sam away (csc-server starts a csc-sam that died again within a
 * second: Retry-After 1), or a request that could not be made (a bug). */
static const csc_err_row_t sam_away = {0, 503, "temporarily_unavailable",
                                       "The signature activation module is not available", CSC_BUSY_RETRY_AFTER};
static const csc_err_row_t unavailable = {0, CSC_UNAVAILABLE_ROW};

/* Log when csc-sam goes out of reach and when it is back, not once per failed call (an outage under load would
 * flood the log). */
static void note_reach(csc_t *c, int rc, unsigned op)
{
    if (rc != SAM_OK) {
        if (!__atomic_exchange_n(&c->sam_down, 1, __ATOMIC_RELAXED))
            fprintf(stderr, "csc: csc-sam cannot be reached (%s: %s): what needs it is answered 503 until it is "
                            "back\n", sam_op_name(op), sam_strerror(rc));
    } else if (__atomic_load_n(&c->sam_down, __ATOMIC_RELAXED) &&
               __atomic_exchange_n(&c->sam_down, 0, __ATOMIC_RELAXED)) {
        fprintf(stderr, "csc: csc-sam answers again\n");
    }
}

int csc_sam_begin(csc_t *c, csc_sam_call_t *call, unsigned op, csc_err_t *err)
{
    memset(call, 0, sizeof(*call));
    call->op = op;
    if (c->sam == NULL)
        return csc_err_row(err, &sam_away);
    if (sam_build_init(&call->b, op, sam_client_next_id(c->sam)) != SAM_OK)
        return csc_err_row(err, &unavailable);
    return 0;
}

int csc_sam_run(csc_t *c, csc_sam_call_t *call, csc_about_t about, const csc_err_row_t *overrides, csc_err_t *err)
{
    const uint8_t *msg;
    size_t len;
    unsigned op = call->op;

    if (sam_build_finish(&call->b, &msg, &len) != SAM_OK) {
        /* The front end checks every value against the same bounds before it builds: this is a bug, logged. */
        fprintf(stderr, "csc: the %s request to csc-sam could not be built\n", sam_op_name(op));
        return csc_err_row(err, &unavailable);
    }
    int rc = sam_client_call(c->sam, msg, len, &call->rb, &call->reply);
    sam_build_free(&call->b); /* wiped: it may hold a PIN */
    note_reach(c, rc, op);
    if (rc != SAM_OK)
        return csc_err_row(err, &sam_away);
    if (call->reply.op == SAM_OP_REFUSED) {
        uint32_t code = 0, tag = 0;
        if (sam_get_u32(&call->reply, SAM_T_REFUSAL, &code) != SAM_OK)
            return csc_err_row(err, &unavailable);
        (void)sam_get_u32(&call->reply, SAM_T_ABOUT, &tag);
        csc_stats_refusal(c, op, tag == SAM_T_TOKEN ? CSC_ABOUT_TOKEN : tag == SAM_T_CRED ? CSC_ABOUT_CREDENTIAL : about,
                          tag, code);
        /* What the refusal is about may be another subject than the call's: the device that failed to sign, the
         * caller's access token (which csc-sam checks again), or the credential (checked again before signing). */
        if (tag == SAM_T_SIGNATURE)
            return csc_err_hsm(err, code == SAM_REFUSE_UNAVAILABLE ? HSM_ERR_UNAVAILABLE : HSM_ERR_INTERNAL);
        if (tag == SAM_T_TOKEN && about != CSC_ABOUT_TOKEN)
            return csc_err_sam(err, CSC_ABOUT_TOKEN, code, NULL);
        if (tag == SAM_T_CRED && about != CSC_ABOUT_CREDENTIAL)
            return csc_err_sam(err, CSC_ABOUT_CREDENTIAL, code, NULL);
        return csc_err_sam(err, about, code, overrides);
    }
    return 0;
}

void csc_sam_put_token(csc_req_t *r, csc_sam_call_t *call)
{
    const char *tok = csc_bearer_value(r);
    sam_put_str(&call->b, SAM_T_TOKEN, tok != NULL ? tok : ""); /* too long or absent: the builder fails (503) */
}

void csc_sam_put_client(csc_req_t *r, csc_sam_call_t *call)
{
    const char *client = r->call->client;
    sam_put_str(&call->b, SAM_T_CLIENT, client != NULL && client[0] != '\0' ? client : "-");
}

void csc_sam_put_request_id(csc_req_t *r, csc_sam_call_t *call)
{
    const char *id = r->call->request_id;
    if (id != NULL && id[0] != '\0')
        sam_put_str(&call->b, SAM_T_REQUEST_ID, id);
}

void csc_sam_put_hashes(csc_sam_call_t *call, const csc_hash_alg_t *alg, const uint8_t *const *d, size_t n)
{
    if (n == 0)
        return;
    sam_put_str(&call->b, SAM_T_HASH_ALG, alg->oid);
    for (size_t i = 0; i < n; i++)
        sam_put_bytes(&call->b, SAM_T_DIGEST, d[i], alg->len);
}

int csc_sam_login_rc(const csc_sam_call_t *call)
{
    uint32_t code = 0;

    if (call->reply.op != SAM_OP_REFUSED || sam_get_u32(&call->reply, SAM_T_REFUSAL, &code) != SAM_OK)
        return OAUTH_ERR_STORAGE; /* csc-sam not reached: nothing was checked */
    switch (code) {
    case SAM_REFUSE_UNAUTHORIZED: return OAUTH_ERR_DENIED;
    case SAM_REFUSE_RATE: return OAUTH_ERR_RATE;
    case SAM_REFUSE_BUSY: return OAUTH_ERR_BUSY;
    case SAM_REFUSE_DB_DOWN: return OAUTH_ERR_UNAVAILABLE;
    case SAM_REFUSE_FULL: return OAUTH_ERR_FULL;
    case SAM_REFUSE_BAD_MESSAGE: return OAUTH_ERR_INVALID;
    default: return OAUTH_ERR_STORAGE;
    }
}

void csc_sam_end(csc_sam_call_t *call)
{
    sam_build_free(&call->b);
    sam_rbuf_free(&call->rb);
    memset(&call->reply, 0, sizeof(call->reply));
}
