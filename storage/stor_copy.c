/*
 * stor_copy.c - moving an installation from one storage backend to another (csc-admin db copy).
 *
 * The copy works below the record layer: every row of every table, bytes as they are, read from one snapshot of
 * the source and written to an empty destination in write transactions of COPY_BATCH rows. Records, the audit
 * chain (its records, its head in meta and the signed heads) and the indexes arrive unchanged, so what verifies
 * on the source verifies on the destination. The copy is then checked: for each table, the number of rows and a
 * SHA-256 over its rows in walk order (length-prefixed key and value) must be the same in the destination as in
 * the snapshot. Walk order is the same on every backend (stor_backend.h), so the digests compare across them.
 *
 * Nothing else may write the destination while the copy runs (csc-admin opens it alone); the source may be in
 * use, but what it gets after the snapshot is not copied: stop the service first (docs/operations.md).
 */
#include <string.h>

#include <openssl/evp.h>

#include "stor_backend.h"
#include "stor_int.h"

#define COPY_BATCH 1000u

#ifdef CSC_TEST_HOOKS
/* Test hook: the n-th row copied (1-based, over all tables) is not written, so the verification must fail. */
static size_t hook_skip_row;

void stor_test_copy_skip_row(size_t n)
{
    hook_skip_row = n;
}
#endif

typedef struct {
    size_t rows;
    uint8_t digest[32];
} table_sum_t;

static int digest_row(EVP_MD_CTX *md, const stor_val_t *k, const stor_val_t *v)
{
    uint8_t len[8];
    for (int i = 0; i < 4; i++) {
        len[i] = (uint8_t)(k->len >> (8 * i));
        len[4 + i] = (uint8_t)(v->len >> (8 * i));
    }
    return EVP_DigestUpdate(md, len, 4) == 1 && EVP_DigestUpdate(md, k->data, k->len) == 1 &&
                   EVP_DigestUpdate(md, len + 4, 4) == 1 && EVP_DigestUpdate(md, v->data, v->len) == 1
               ? 0
               : STOR_ERR_NOMEM;
}

/* Walk table db of txn (environment env) from its first row; each row goes into the digest, and to dst (a write
 * txn on the destination, renewed every COPY_BATCH rows) when dst is not NULL. */
static int walk_table(stor_env_t *env, stor_bk_txn_t *txn, int db, stor_env_t *dst, table_sum_t *sum,
                      size_t *copied)
{
    stor_bk_cur_t *cur = NULL;
    stor_bk_txn_t *out = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    stor_val_t k = { 0, NULL }, v;
    size_t in_batch = 0;
    int rc;

    memset(sum, 0, sizeof(*sum));
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = STOR_ERR_NOMEM;
        goto out;
    }
    if ((rc = env->be->cursor_open(env->benv, txn, db, &cur)) != 0)
        goto out;
    for (rc = env->be->cursor_get(cur, STOR_CUR_FIRST, &k, &v); rc == 0;
         rc = env->be->cursor_get(cur, STOR_CUR_NEXT, &k, &v)) {
        sum->rows++;
        if ((rc = digest_row(md, &k, &v)) != 0)
            goto out;
        if (dst == NULL)
            continue;
        (*copied)++;
#ifdef CSC_TEST_HOOKS
        if (hook_skip_row != 0 && *copied == hook_skip_row)
            continue;
#endif
        if (out == NULL && (rc = dst->be->txn_begin(dst->benv, NULL, STOR_BK_WRITE, &out)) != 0)
            goto out;
        if ((rc = dst->be->put(dst->benv, out, db, &k, &v, 0)) != 0)
            goto out;
        if (++in_batch == COPY_BATCH) {
            rc = dst->be->txn_commit(out);
            out = NULL;
            in_batch = 0;
            if (rc != 0)
                goto out;
        }
    }
    if (rc != STOR_ERR_NOTFOUND)
        goto out;
    rc = 0;
    if (out != NULL) {
        rc = dst->be->txn_commit(out);
        out = NULL;
    }
    if (rc == 0 && EVP_DigestFinal_ex(md, sum->digest, NULL) != 1)
        rc = STOR_ERR_NOMEM;
out:
    if (out != NULL)
        dst->be->txn_abort(out);
    if (cur != NULL)
        env->be->cursor_close(cur);
    EVP_MD_CTX_free(md);
    return rc;
}

/* Whether the destination is empty: no row anywhere but meta's schema row (written by stor_open). */
static int dst_empty(stor_env_t *dst, stor_bk_txn_t *txn, int *db_out)
{
    for (int db = 0; db < STOR_DB_COUNT; db++) {
        size_t n = 0;
        int rc = dst->be->count(dst->benv, txn, db, &n);
        if (rc != 0)
            return rc;
        if (db == STOR_DB_META && n == 1) {
            stor_val_t k = STOR_VAL("schema", 6), v;
            if ((rc = dst->be->get(dst->benv, txn, db, &k, &v)) == 0)
                continue;
            if (rc != STOR_ERR_NOTFOUND)
                return rc;
        }
        if (n != 0) {
            *db_out = db;
            return STOR_ERR_EXISTS;
        }
    }
    return 0;
}

int stor_copy(stor_env_t *from, stor_env_t *to, stor_copy_report_fn report, void *arg, const char **table)
{
    table_sum_t sums[STOR_DB_COUNT], check;
    stor_bk_txn_t *src = NULL, *dtx = NULL;
    size_t copied = 0;
    int db = 0, rc;

    if (table != NULL)
        *table = NULL;
    if (from == NULL || to == NULL || from == to)
        return STOR_ERR_INVAL;
    if ((rc = to->be->txn_begin(to->benv, NULL, STOR_BK_READ, &dtx)) != 0)
        return rc;
    rc = dst_empty(to, dtx, &db);
    to->be->txn_abort(dtx);
    dtx = NULL;
    if (rc != 0)
        goto out;
    /* One snapshot of the source for the copy and its check. */
    if ((rc = from->be->txn_begin(from->benv, NULL, STOR_BK_READ, &src)) != 0)
        return rc;
    for (db = 0; db < STOR_DB_COUNT; db++)
        if ((rc = walk_table(from, src, db, to, &sums[db], &copied)) != 0)
            goto out;
    if ((rc = to->be->txn_begin(to->benv, NULL, STOR_BK_READ, &dtx)) != 0)
        goto out;
    for (db = 0; db < STOR_DB_COUNT; db++) {
        if ((rc = walk_table(to, dtx, db, NULL, &check, NULL)) != 0)
            goto out;
        if (check.rows != sums[db].rows || memcmp(check.digest, sums[db].digest, sizeof(check.digest)) != 0) {
            rc = STOR_ERR_CORRUPT;
            goto out;
        }
        if (report != NULL)
            report(stor_table_name(db), sums[db].rows, arg);
    }
    db = 0;
out:
    if (rc != 0 && table != NULL)
        *table = stor_table_name(db);
    if (dtx != NULL)
        to->be->txn_abort(dtx);
    if (src != NULL)
        from->be->txn_abort(src);
    return rc;
}
