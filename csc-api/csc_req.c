/*
 * csc_req.c - the one table from the lower modules' result codes to the CSC error a client sees: HTTP status,
 * `error` and `error_description` (csc_err_t). Every CSC method that turns an oauth/ or hsm/ result into an error
 * goes through here, so the same refusal reads the same everywhere.
 *
 * oauth/ codes mean different things depending on what the call was about (an expired bearer token is 401
 * expired_token, an expired SAD 400 invalid_request "SAD expired"), so the oauth rows are grouped by subject
 * (csc_about_t). A call site whose answer differs on purpose passes its own rows (the override list, ended by a
 * row with code 0), looked at before the table; each such difference is written at the call site.
 * A code that neither the overrides nor the table name is 503 temporarily_unavailable: storage trouble, never
 * the client's fault; the database out of reach (OAUTH_ERR_UNAVAILABLE) adds Retry-After: 1.
 */
#include "csc_int.h"

typedef struct err_row {
    csc_about_t about;
    csc_err_row_t row;
} err_row_t;

#define BAD(d) 400, "invalid_request", (d)

static const err_row_t oauth_rows[] = {
    /* the bearer access token (authenticate in csc_route.c) */
    {CSC_ABOUT_TOKEN, {OAUTH_ERR_EXPIRED, 401, "expired_token", "The access token is expired", 0}},
    {CSC_ABOUT_TOKEN, {OAUTH_ERR_INVALID, 401, "invalid_token", "The access token is not valid", 0}},
    {CSC_ABOUT_TOKEN, {OAUTH_ERR_DISABLED, 401, "invalid_token", "The access token is not valid", 0}},

    /* a SAD spent or extended (signatures/signHash, signatures/signDoc, credentials/extendTransaction) */
    {CSC_ABOUT_SAD, {OAUTH_ERR_EXPIRED, BAD("SAD expired"), 0}},
    {CSC_ABOUT_SAD, {OAUTH_ERR_NOT_AUTHORIZED, BAD("Hash is not authorized by the SAD."), 0}},
    {CSC_ABOUT_SAD, {OAUTH_ERR_EXHAUSTED, BAD("The SAD does not authorize that many more signatures"), 0}},
    {CSC_ABOUT_SAD, {OAUTH_ERR_INVALID, BAD("Invalid parameter SAD"), 0}},
    {CSC_ABOUT_SAD, {OAUTH_ERR_MISMATCH, BAD("Invalid parameter SAD"), 0}},

    /* the credential named by credentialID (credentials/authorize, getChallenge, an approval request) */
    {CSC_ABOUT_CREDENTIAL, {OAUTH_ERR_LOCKED, BAD("Credential locked"), 0}},
    {CSC_ABOUT_CREDENTIAL, {OAUTH_ERR_DISABLED, BAD("The credential identified by credentialID is disabled"), 0}},
    {CSC_ABOUT_CREDENTIAL, {OAUTH_ERR_INVALID, BAD("Invalid parameter credentialID"), 0}},

    /* the handle of credentials/authorizeCheck */
    {CSC_ABOUT_HANDLE, {OAUTH_ERR_DENIED, 400, "invalid_authentication_data", "The authentication data is invalid", 0}},
    {CSC_ABOUT_HANDLE, {OAUTH_ERR_LOCKED, BAD("Credential locked"), 0}},
    {CSC_ABOUT_HANDLE, {OAUTH_ERR_INVALID, BAD("Invalid parameter handle"), 0}},
    {CSC_ABOUT_HANDLE, {OAUTH_ERR_EXPIRED, BAD("Invalid parameter handle"), 0}},
};

static int set(csc_err_t *err, const csc_err_row_t *row)
{
    err->status = row->status;
    err->error = row->error;
    err->description = row->description;
    err->retry_after = row->retry_after;
    return -1;
}

int csc_err_row(csc_err_t *err, const csc_err_row_t *row)
{
    return set(err, row);
}

int csc_err_oauth(csc_err_t *err, csc_about_t about, int code, const csc_err_row_t *overrides)
{
    for (const csc_err_row_t *o = overrides; o != NULL && o->code != 0; o++)
        if (o->code == code)
            return set(err, o);
    for (size_t i = 0; i < sizeof(oauth_rows) / sizeof(oauth_rows[0]); i++)
        if (oauth_rows[i].about == about && oauth_rows[i].row.code == code)
            return set(err, &oauth_rows[i].row);
    static const csc_err_row_t storage_down = {OAUTH_ERR_UNAVAILABLE, CSC_STORAGE_DOWN_ROW};
    if (code == OAUTH_ERR_UNAVAILABLE) /* on every subject */
        return set(err, &storage_down);
    static const csc_err_row_t unavailable = {0, CSC_UNAVAILABLE_ROW};
    return set(err, &unavailable);
}

int csc_fail_oauth(csc_req_t *r, csc_about_t about, int code, const csc_err_row_t *overrides)
{
    return csc_err_oauth(&r->err, about, code, overrides);
}

int csc_err_hsm(csc_err_t *err, int code)
{
    static const csc_err_row_t unavailable = {HSM_ERR_UNAVAILABLE, 503, "temporarily_unavailable",
                                              "The signing device is temporarily unavailable", 0};
    static const csc_err_row_t failed = {0, 500, "server_error", "The signing device could not create the signature",
                                         0};
    return set(err, code == HSM_ERR_UNAVAILABLE ? &unavailable : &failed);
}

/* csc-sam answers with its own refusal codes (sam_wire.h). On each subject a refusal stands for the oauth/ code the
 * SAM saw (sam/ reads oauth/'s codes the other way), so the rows above, and a call site's overrides, decide the CSC
 * error of both: one table. A refusal no row names is 503 temporarily_unavailable. */
static int oauth_code_of(csc_about_t about, uint32_t refusal)
{
    switch (refusal) {
    case SAM_REFUSE_UNAUTHORIZED: /* a wrong factor; another user's or credential's SAD; a token not valid */
        return about == CSC_ABOUT_CREDENTIAL || about == CSC_ABOUT_HANDLE ? OAUTH_ERR_DENIED
               : about == CSC_ABOUT_SAD                                 ? OAUTH_ERR_MISMATCH
                                                                        : OAUTH_ERR_INVALID;
    case SAM_REFUSE_NOT_FOUND:
        return OAUTH_ERR_INVALID;
    case SAM_REFUSE_EXPIRED:
        return OAUTH_ERR_EXPIRED;
    case SAM_REFUSE_EXHAUSTED:
        return OAUTH_ERR_EXHAUSTED;
    case SAM_REFUSE_NOT_BOUND:
        return OAUTH_ERR_NOT_AUTHORIZED;
    case SAM_REFUSE_DISABLED:
    case SAM_REFUSE_REVOKED: /* SIGN's: csc_refuse_cert_status words them with the certificate's subject */
    case SAM_REFUSE_SUSPENDED:
    case SAM_REFUSE_CERT_UNKNOWN:
        return OAUTH_ERR_DISABLED;
    case SAM_REFUSE_LOCKED:
        return OAUTH_ERR_LOCKED;
    case SAM_REFUSE_BUSY:
        return OAUTH_ERR_BUSY;
    case SAM_REFUSE_RATE:
        return OAUTH_ERR_RATE;
    case SAM_REFUSE_FULL:
        return OAUTH_ERR_FULL;
    case SAM_REFUSE_BAD_MESSAGE: /* a value oauth/ would not look at (extendTransaction: an invalid SAD) */
        return OAUTH_ERR_INVAL;
    case SAM_REFUSE_DB_DOWN: /* the database out of reach from csc-sam: 503 with Retry-After: 1 */
        return OAUTH_ERR_UNAVAILABLE;
    default: /* UNAVAILABLE, INTERNAL, FORBIDDEN, NOT_OFFERED, EXISTS: none is the client's doing */
        return OAUTH_ERR_STORAGE;
    }
}

int csc_err_sam(csc_err_t *err, csc_about_t about, uint32_t refusal, const csc_err_row_t *overrides)
{
    return csc_err_oauth(err, about, oauth_code_of(about, refusal), overrides);
}
