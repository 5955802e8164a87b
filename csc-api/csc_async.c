/*
 * csc_async.c - operationMode "A" (CSC API v2.0.0.2 sec. 11.10 to 11.12): a bounded job queue and a small pool of
 * threads that run accepted requests in the background, the async_results table that keeps each request's state
 * and reply for its validity period (then purged), signatures/signPolling, and the response_uri notification.
 *
 * A method goes asynchronous in three steps:
 *   csc_async_params()   validity_period and response_uri (bounds from the configuration)
 *   csc_async_reserve()  a place in the queue, before anything is spent (full: 503, nothing happened)
 *   csc_async_submit()   the pending record is stored, the job queued, the reply {"responseID"} written;
 *                        on failure the job's abort function runs (it gives back what the method spent)
 * The job function later writes the same body the synchronous method would have (or fills an error); that body
 * is stored and returned by signPolling to the user who asked, and to nobody else.
 *
 * responseID: 32 random bytes (base64url, 43 characters); only its SHA-256 is stored.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "csc_int.h"

#define PURGE_EVERY_MS 30000

typedef struct async_job {
    struct async_job *next;
    uint8_t hash[32];
    char id[CSC_RESPONSE_ID_LEN + 1];
    char user[STOR_NAME_MAX + 1];
    char cred[STOR_NAME_MAX + 1];
    int64_t created_ms, expires_ms;
    char uri[CSC_URI_MAX + 1];
    csc_async_job_t job;
} async_job_t;

struct csc_async {
    csc_t *c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    async_job_t *head, *tail;
    size_t queued, reserved, cap;
    int closing;
    pthread_t *threads;
    unsigned n_threads;
    int64_t next_purge_ms;
    struct csc_notifier *notifier; /* response_uri: its own threads, never these */
#ifdef CSC_TEST_HOOKS
    char *test_hold;               /* csc-server-test only: see test_hold_wait() */
#endif
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- storage ---------------------------------------------------------------- */

typedef struct put_arg {
    const stor_async_t *rec;
} put_arg_t;

/* This node's id (config node_id), stored with its pending jobs: a node starting fails only its own. */
static const char *csc_async_node(const csc_config_t *cfg)
{
    return cfg->node_id != NULL && cfg->node_id[0] != '\0' ? cfg->node_id : "local";
}

static int put_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_async_put(t, ((put_arg_t *)arg)->rec);
}

static void rec_init(stor_async_t *rec, const async_job_t *j, uint32_t state)
{
    memset(rec, 0, sizeof(*rec));
    memcpy(rec->hash, j->hash, 32);
    snprintf(rec->user, sizeof(rec->user), "%s", j->user);
    snprintf(rec->cred, sizeof(rec->cred), "%s", j->cred);
    rec->state = state;
    rec->created_ms = j->created_ms;
    rec->expires_ms = j->expires_ms;
}

/* Storage refused the write for now (full, unreachable, busy), not for good. */
static int transient(int rc)
{
    return rc == STOR_ERR_FULL || rc == STOR_ERR_IO || rc == STOR_ERR_UNAVAILABLE || rc == STOR_ERR_RETRY ||
           rc == STOR_ERR_NOMEM;
}

/* Write the outcome; while storage refuses it for now, again after 0.1, 0.2, 0.4 ... 2 s, until the request's
 * validity period ends or the pool closes. The signature (or the budget given back) is already made and audited:
 * an outcome not stored leaves the client polling a "pending" request until it expires, never learning either.
 * The worker waits here, so other jobs wait in the queue (bounded: csc_async_reserve answers 503 when it is full)
 * while storage is down; they could not store theirs either. a NULL (the pool stops): one try. */
static void store_retrying(csc_t *c, struct csc_async *a, const async_job_t *j, put_arg_t *arg)
{
    unsigned tries = 0;
    for (long delay_ms = 100;; delay_ms = delay_ms < 2000 ? delay_ms * 2 : 2000) {
        int rc = stor_write(c->stor, put_fn, arg);
        tries++;
        if (rc == 0) {
            if (tries > 1)
                fprintf(stderr, "csc: an asynchronous result stored at try %u\n", tries);
            return;
        }
        int closing = 1;
        if (a != NULL) {
            pthread_mutex_lock(&a->mu);
            closing = a->closing;
            pthread_mutex_unlock(&a->mu);
        }
        if (!transient(rc) || closing || now_ms() + delay_ms >= j->expires_ms) {
            fprintf(stderr, "csc: an asynchronous result could not be stored (%s, %u tr%s): signPolling answers it "
                    "as pending until it expires\n", stor_strerror(rc), tries, tries == 1 ? "y" : "ies");
            return;
        }
        if (tries == 1)
            fprintf(stderr, "csc: an asynchronous result could not be stored (%s): trying again until it expires\n",
                    stor_strerror(rc));
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Store the job's outcome: the body on success, the error otherwise; a_pool: retry while storage refuses it for now
 * (NULL: the pool stops, one try). */
static void store_outcome(csc_t *c, struct csc_async *a_pool, const async_job_t *j, int ok, const uint8_t *body,
                          size_t len, const csc_err_t *err)
{
    stor_async_t rec;
    put_arg_t a = {&rec};

    rec_init(&rec, j, ok ? STOR_ASYNC_DONE : STOR_ASYNC_FAILED);
    if (ok && len > STOR_ASYNC_BODY_MAX) {
        ok = 0;
        rec.state = STOR_ASYNC_FAILED;
    }
    if (ok) {
        rec.status = 200;
        rec.body = body;
        rec.body_len = (uint32_t)len;
        rec.body_one = 1;
    } else {
        rec.status = err != NULL && err->status >= 400 ? (uint32_t)err->status : 500;
        snprintf(rec.error, sizeof(rec.error), "%s", err != NULL && err->error ? err->error : "server_error");
        snprintf(rec.error_description, sizeof(rec.error_description), "%s",
                 err != NULL && err->description ? err->description : "The request could not be completed");
    }
    store_retrying(c, a_pool, j, &a);
}

/* ---- the pool ------------------------------------------------------------------- */

static void job_free(async_job_t *j)
{
    if (j == NULL)
        return;
    if (j->job.free_fn != NULL)
        j->job.free_fn(j->job.arg);
    OPENSSL_clear_free(j, sizeof(*j));
}

static void run_job(struct csc_async *a, csc_t *c, async_job_t *j)
{
    yajl_gen g = csc_gen_new();
    csc_err_t err = {0};
    const unsigned char *buf = NULL;
    size_t len = 0;

    int rc = j->job.fn(c, j->job.arg, g, &err);
    if (rc == 0 && yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        rc = -1;
        err.status = 500;
        err.error = "server_error";
        err.description = "Could not encode the response";
    }
    store_outcome(c, a, j, rc == 0, buf, len, &err);
    yajl_gen_clear(g);
    yajl_gen_free(g);
    if (j->uri[0] != '\0') /* handed over: a slow receiver never holds this thread */
        csc_notifier_queue(a->notifier, j->uri, j->id);
}

/* A queued job that will not run (the service stops): what it spent is given back, its record says so. */
static void abort_job(csc_t *c, async_job_t *j, const char *reason)
{
    csc_err_t err = {503, "temporarily_unavailable", "The service stopped before the request was processed", 0};
    if (j->job.abort_fn != NULL)
        j->job.abort_fn(c, j->job.arg, reason);
    store_outcome(c, NULL, j, 0, NULL, 0, &err);
}

#ifdef CSC_TEST_HOOKS
/* Test hook, compiled only into csc-server-test (csc_api_t, -DCSC_TEST_HOOKS), never into csc-server, and only
 * with environment = test: with CSC_TEST_ASYNC_HOLD=<file> in the server's environment, a worker that took a job
 * waits while <file> exists (120 s at most) before it runs it, and shows it by creating <file>.held. The
 * integration tests keep jobs pending with it, deterministically. */
static void test_hold_wait(struct csc_async *a)
{
    char held[4200];
    if (a->test_hold == NULL || snprintf(held, sizeof(held), "%s.held", a->test_hold) >= (int)sizeof(held))
        return;
    int marked = 0;
    for (int i = 0; i < 2400 && access(a->test_hold, F_OK) == 0; i++) {
        pthread_mutex_lock(&a->mu);
        int closing = a->closing;
        pthread_mutex_unlock(&a->mu);
        if (closing)
            break;
        if (!marked) {
            FILE *f = fopen(held, "w");
            if (f != NULL)
                fclose(f);
            marked = 1;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (marked)
        unlink(held);
}
#endif

static void *worker(void *arg)
{
    struct csc_async *a = arg;

    pthread_mutex_lock(&a->mu);
    for (;;) {
        /* Expired results go every PURGE_EVERY_MS, busy or not (one worker does it). */
        int64_t now = now_ms();
        if (now >= a->next_purge_ms && !a->closing) {
            a->next_purge_ms = now + PURGE_EVERY_MS;
            pthread_mutex_unlock(&a->mu);
            (void)stor_async_purge(a->c->stor, now);
            pthread_mutex_lock(&a->mu);
            continue;
        }
        if (a->head == NULL) {
            if (a->closing)
                break;
            int64_t until = a->next_purge_ms;
            struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (long)(until % 1000) * 1000000};
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
            continue;
        }
        async_job_t *j = a->head;
        a->head = j->next;
        if (a->head == NULL)
            a->tail = NULL;
        a->queued--;
        int closing = a->closing;
        pthread_mutex_unlock(&a->mu);
#ifdef CSC_TEST_HOOKS
        if (!closing && a->test_hold != NULL) {
            test_hold_wait(a);
            pthread_mutex_lock(&a->mu);
            closing = a->closing;
            pthread_mutex_unlock(&a->mu);
        }
#endif
        if (closing)
            abort_job(a->c, j, "service stopped");
        else
            run_job(a, a->c, j);
        job_free(j);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int csc_async_start(csc_t *c)
{
    const csc_config_t *cfg = &c->cfg;
    unsigned workers = cfg->async_workers ? cfg->async_workers : 2;
    struct csc_async *a;

    if (cfg->async_validity_min == 0 && cfg->async_validity_max == 0 && cfg->async_validity_default == 0) {
        c->cfg.async_validity_min = 1;
        c->cfg.async_validity_default = 600;
        c->cfg.async_validity_max = 3600;
    }
    if (c->cfg.async_validity_min < 1 || c->cfg.async_validity_min > c->cfg.async_validity_default ||
        c->cfg.async_validity_default > c->cfg.async_validity_max || workers > 64) {
        fprintf(stderr, "csc: async_validity_min <= async_validity_default <= async_validity_max (>= 1 s) and "
                        "async_workers 1..64 are required\n");
        return -1;
    }
    if (strlen(csc_async_node(cfg)) > STOR_NODE_MAX) {
        fprintf(stderr, "csc: node_id: at most %d characters\n", STOR_NODE_MAX);
        return -1;
    }
    if ((a = calloc(1, sizeof(*a))) == NULL || (a->threads = calloc(workers, sizeof(*a->threads))) == NULL) {
        free(a);
        return -1;
    }
    a->c = c;
    a->cap = cfg->async_queue ? cfg->async_queue : 64;
    /* Jobs accepted by a previous process died with it: their results say so (the SADs stay spent and the
     * STOR_EV_SIGN records stand; no signature was returned). */
    int n = stor_async_fail_pending(c->stor, csc_async_node(&c->cfg),
                                    "The service restarted before the request was processed");
    if (n > 0)
        fprintf(stderr, "csc: %d asynchronous request(s) left unfinished by the previous run marked failed\n", n);
#ifdef CSC_TEST_HOOKS
    const char *hold = getenv("CSC_TEST_ASYNC_HOLD");
    if (hold != NULL && hold[0] != '\0' && cfg->environment == CSC_ENV_TEST)
        a->test_hold = strdup(hold);
#endif
    if ((a->notifier = csc_notifier_start(&c->cfg)) == NULL) {
#ifdef CSC_TEST_HOOKS
        free(a->test_hold);
#endif
        free(a->threads);
        free(a);
        return -1;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    c->async = a;
    /* The workers take no signals (they inherit this mask): a SIGTERM must not cut a job or a notification short;
     * the main thread handles it and csc_async_stop() ends the workers. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (unsigned i = 0; i < workers && rc == 0; i++) {
        if (pthread_create(&a->threads[i], NULL, worker, a) != 0)
            rc = -1;
        else
            a->n_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        csc_async_stop(c);
    return rc;
}

void csc_async_stop(csc_t *c)
{
    struct csc_async *a = c->async;

    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->closing = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    for (unsigned i = 0; i < a->n_threads; i++)
        pthread_join(a->threads[i], NULL);
    /* No worker could start (or all are gone): what is left is aborted here. */
    while (a->head != NULL) {
        async_job_t *j = a->head;
        a->head = j->next;
        abort_job(c, j, "service stopped");
        job_free(j);
    }
    csc_notifier_stop(a->notifier); /* after the workers: they queue notifications */
#ifdef CSC_TEST_HOOKS
    free(a->test_hold);
#endif
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a->threads);
    free(a);
    c->async = NULL;
}

/* ---- the request side -------------------------------------------------------------- */

int csc_async_params(csc_req_t *r, csc_async_opts_t *o)
{
    const csc_config_t *cfg = &r->csc->cfg;
    unsigned long ms = 0;
    const char *uri = NULL;
    int rc;

    memset(o, 0, sizeof(*o));
    if ((rc = csc_get_uint(r, "validity_period", &ms)) < 0)
        return csc_bad(r, "Invalid parameter validity_period");
    if (rc == 0)
        ms = (unsigned long)cfg->async_validity_default * 1000ul;
    else if (ms < (unsigned long)cfg->async_validity_min * 1000ul || ms > (unsigned long)cfg->async_validity_max * 1000ul)
        return csc_bad(r, "Out of bounds parameter validity_period");
    o->validity_ms = (int64_t)ms;
    if (csc_get_string(r, "response_uri", &uri, CSC_URI_MAX) < 0 || (uri != NULL && !csc_response_uri_ok(r->csc, uri)))
        return csc_bad(r, "Invalid parameter response_uri");
    if (uri != NULL)
        snprintf(o->response_uri, sizeof(o->response_uri), "%s", uri);
    return 0;
}

int csc_async_reserve(csc_req_t *r)
{
    struct csc_async *a = r->csc->async;
    int ok;

    if (a == NULL)
        return csc_unavailable(r);
    pthread_mutex_lock(&a->mu);
    ok = !a->closing && a->queued + a->reserved < a->cap;
    if (ok)
        a->reserved++;
    pthread_mutex_unlock(&a->mu);
    return ok ? 0 : csc_fail(r, 503, "temporarily_unavailable", "Too many asynchronous requests are waiting");
}

size_t csc_async_depth(csc_t *c)
{
    struct csc_async *a = c->async;
    if (a == NULL)
        return 0;
    pthread_mutex_lock(&a->mu);
    size_t n = a->queued + a->reserved;
    pthread_mutex_unlock(&a->mu);
    return n;
}

void csc_async_unreserve(csc_t *c)
{
    struct csc_async *a = c->async;

    pthread_mutex_lock(&a->mu);
    if (a->reserved > 0)
        a->reserved--;
    pthread_mutex_unlock(&a->mu);
}

/* SHA-256 of a presented responseID; -1 unless it is 43 base64url characters. */
static int id_hash(const char *id, uint8_t hash[32])
{
    size_t n = strlen(id);
    unsigned int hl = 0;
    if (n != CSC_RESPONSE_ID_LEN ||
        strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != n)
        return -1;
    return EVP_Digest(id, n, hash, &hl, EVP_sha256(), NULL) == 1 && hl == 32 ? 0 : -1;
}

int csc_async_submit(csc_req_t *r, const csc_async_opts_t *o, const char *cred, const csc_async_job_t *job)
{
    struct csc_async *a = r->csc->async;
    async_job_t *j = calloc(1, sizeof(*j));
    uint8_t rnd[32];
    stor_async_t rec;
    put_arg_t pa = {&rec};

    if (j == NULL || RAND_bytes(rnd, sizeof(rnd)) != 1)
        goto fail;
    oauth_b64_encode(rnd, sizeof(rnd), j->id, OAUTH_B64_URL);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    if (id_hash(j->id, j->hash) != 0)
        goto fail;
    snprintf(j->user, sizeof(j->user), "%s", r->principal.user);
    snprintf(j->cred, sizeof(j->cred), "%s", cred);
    snprintf(j->uri, sizeof(j->uri), "%s", o->response_uri);
    j->created_ms = now_ms();
    j->expires_ms = j->created_ms + o->validity_ms;
    j->job = *job;
    rec_init(&rec, j, STOR_ASYNC_PENDING);
    rec.owner_pid = (uint32_t)getpid();
    snprintf(rec.owner_node, sizeof(rec.owner_node), "%s", csc_async_node(&r->csc->cfg));
    if (stor_write(r->csc->stor, put_fn, &pa) != 0)
        goto fail;
    yajl_gen_map_open(r->gen);
    csc_gen_kv(r->gen, "responseID", j->id);
    yajl_gen_map_close(r->gen);
    pthread_mutex_lock(&a->mu);
    if (a->reserved > 0)
        a->reserved--;
    if (a->tail != NULL)
        a->tail->next = j;
    else
        a->head = j;
    a->tail = j;
    a->queued++;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
fail:
    if (job->abort_fn != NULL)
        job->abort_fn(r->csc, job->arg, "the request could not be queued");
    if (j != NULL)
        j->job.free_fn = NULL;
    if (job->free_fn != NULL)
        job->free_fn(job->arg);
    job_free(j);
    csc_async_unreserve(r->csc);
    return csc_unavailable(r);
}

/* ---- signatures/signPolling (CSC API v2.0.0.2 sec. 11.12) ----------------------------- */

typedef struct poll_arg {
    const uint8_t *hash;
    stor_async_t rec;
    char *body;                /* copied out of the read transaction */
    size_t body_len;
} poll_arg_t;

static int poll_fn(stor_txn_t *t, void *arg)
{
    poll_arg_t *p = arg;
    int rc = stor_txn_async_get(t, p->hash, &p->rec);
    if (rc != STOR_OK)
        return rc;
    if (p->rec.state == STOR_ASYNC_DONE && p->rec.body_len > 0) {
        if ((p->body = malloc(p->rec.body_len)) == NULL)
            return STOR_ERR_NOMEM;
        memcpy(p->body, p->rec.body, p->rec.body_len);
        p->body_len = p->rec.body_len;
    }
    p->rec.body = NULL;
    return 0;
}

/* Stored error codes are mapped back to static strings (the error model keeps no pointers to stored data). */
static const char *static_error(const char *e)
{
    static const char *const known[] = {"server_error", "temporarily_unavailable", "invalid_request"};
    for (size_t i = 0; i < CSC_ARRAY_SIZE(known); i++)
        if (strcmp(e, known[i]) == 0)
            return known[i];
    return "server_error";
}

int csc_m_sign_polling(csc_req_t *r)
{
    const char *id, *s;
    uint8_t hash[32];
    poll_arg_t p = {.hash = hash};
    yajl_val uid = csc_get_value(r, "userID");
    int rc = -1;

    if (csc_req_string(r, "requestID", &id, 256, "Missing (or invalid type) string parameter requestID") < 0)
        return -1;
    /* The user was authenticated by the token (CSC API v2.0.0.2 sec. 11.12). */
    if (uid != NULL)
        return csc_bad(r, YAJL_IS_STRING(uid) ? "userID parameter SHALL be null" : "Invalid parameter userID");
    if (csc_get_string(r, "clientData", &s, 4096) < 0)
        return csc_bad(r, "Invalid parameter clientData");
    if (id_hash(id, hash) != 0)
        return csc_bad(r, "Invalid parameter requestID");
    int src = stor_read(r->csc->stor, poll_fn, &p);
    if (src == STOR_ERR_NOTFOUND || (src == STOR_OK && (strcmp(p.rec.user, r->principal.user) != 0 ||
                                                        p.rec.expires_ms <= now_ms()))) {
        /* Unknown, another user's, or past its validity period: the same answer. */
        csc_bad(r, "Invalid parameter requestID");
        goto out;
    }
    if (src != STOR_OK) {
        csc_unavailable_stor(r, src);
        goto out;
    }
    if (r->principal.scope == STOR_SCOPE_CREDENTIAL && strcmp(p.rec.cred, r->principal.cred) != 0) {
        csc_bad(r, "Invalid parameter requestID");
        goto out;
    }
    if (p.rec.state == STOR_ASYNC_PENDING) {
        csc_fail(r, 202, "accepted_request",
                 "The previous asynchronous signature request has been accepted for processing, but the processing "
                 "has not yet been completed.");
        goto out;
    }
    if (p.rec.state == STOR_ASYNC_FAILED) {
        snprintf(r->desc_buf, sizeof(r->desc_buf), "%s", p.rec.error_description);
        csc_fail(r, p.rec.status >= 400 && p.rec.status <= 599 ? (int)p.rec.status : 500, static_error(p.rec.error),
                 r->desc_buf);
        goto out;
    }
    yajl_val v = p.body != NULL ? csc_json_parse_text(p.body, p.body_len, 16) : NULL;
    if (v == NULL) {
        csc_fail(r, 500, "server_error", "The stored result cannot be read");
        goto out;
    }
    csc_json_gen_value(r->gen, v);
    csc_json_free(v);
    rc = 0;
out:
    if (p.body != NULL)
        OPENSSL_clear_free(p.body, p.body_len);
    return rc;
}
