/* srv_audit.h - csc-admin's printing of what the operator library finds in the audit log (srv_audit.c). */
#ifndef SRV_AUDIT_H
#define SRV_AUDIT_H

#include <stdio.h>
#include "adm.h"

/* csc-admin audit verify: the log, then the signed heads (pub NULL: they cannot be checked), each problem and a
 * summary line on out. Returns 0 if both are intact, 1 otherwise (a read failure on stderr). */
int srv_audit_verify(stor_env_t *stor, EVP_PKEY *pub, FILE *out);
/* csc-admin audit query: the records that match f, text or (json != 0) JSON lines. Returns 0 or 1 (stderr). */
int srv_audit_query(stor_env_t *stor, const adm_audit_filter_t *f, int json, FILE *out);
/* csc-admin audit heads: the signed heads as JSON lines. Returns 0 or 1 (stderr). */
int srv_audit_heads(stor_env_t *stor, FILE *out);

/* csc-admin audit report: what the report covers and who asks. */
typedef struct srv_report_range {
    int64_t from_ms, to_ms;     /* records with from_ms <= time <= to_ms */
    const char *operator_name;
} srv_report_range_t;
/* The report of the range as one line of JSON (no newline), malloc'd into *out: event counts by kind and result,
 * refusals, lock-outs, operator actions, the whole log's verification and the signed heads' (with pub; NULL: they
 * cannot be checked), the newest signed head and whether it covers the range. Returns 0 or 1 (stderr). */
int srv_audit_report(stor_env_t *stor, EVP_PKEY *pub, const srv_report_range_t *range, char **out, size_t *out_len);

#endif
