/*
 * csc_crl.c - certificate revocation lists checked before every signature (JIPDEC J9).
 *
 * Every *.crl / *.pem file of crl_dir is a CRL (PEM or DER). A CRL is accepted only when its signature verifies
 * with the public key of its issuer among the trust anchors (trust_anchors: root and intermediate CA
 * certificates); a file that cannot be parsed or whose signature fails is refused with an error on stderr, and
 * the last good version of that file, if any, stays in force.
 *
 * A watcher thread looks at the folder once a second (names, inode, size, mtime, ctime) and builds a new snapshot only
 * when something changed; unchanged files keep their parsed CRL. Signing threads read the current snapshot under
 * a mutex held only to take a reference (no file I/O, no parsing), so a reload never delays a signature.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "csc_int.h"

#define CRL_FILES_MAX 256
#define CRL_FILE_BYTES_MAX (64u << 20)

typedef struct crl_file {
    char name[256];
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    X509_CRL *crl;             /* NULL: refused, and no good version of this file before */
} crl_file_t;

typedef struct crl_snap {
    unsigned refs;             /* under csc_crl_t.lock */
    size_t n;
    crl_file_t *files;
} crl_snap_t;

struct csc_crl {
    char *dir;
    STACK_OF(X509) *anchors;
    int allow_stale;
    int require;
    pthread_mutex_t lock;      /* guards cur and every snapshot's refs */
    crl_snap_t *cur;
    pthread_mutex_t reload_lock; /* one reload at a time (watcher thread or csc_crl_reload) */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    int stop;
    void (*listener)(void *arg); /* under lock: told after a reload that changed something */
    void *listener_arg;
};

static void snap_free(crl_snap_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        X509_CRL_free(s->files[i].crl);
    free(s->files);
    free(s);
}

static crl_snap_t *snap_get(csc_crl_t *c)
{
    pthread_mutex_lock(&c->lock);
    crl_snap_t *s = c->cur;
    if (s != NULL)
        s->refs++;
    pthread_mutex_unlock(&c->lock);
    return s;
}

static void snap_put(csc_crl_t *c, crl_snap_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    unsigned left = --s->refs;
    pthread_mutex_unlock(&c->lock);
    if (left == 0)
        snap_free(s);
}

int csc_crl_load_anchors(const char *file, STACK_OF(X509) **out)
{
    *out = NULL;
    FILE *f = file != NULL && file[0] != '\0' ? fopen(file, "r") : NULL;
    if (f == NULL)
        return -1;
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    while (sk != NULL && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            break;
        }
    ERR_clear_error();
    fclose(f);
    if (sk == NULL || sk_X509_num(sk) == 0) {
        sk_X509_pop_free(sk, X509_free);
        return -1;
    }
    *out = sk;
    return 0;
}

/* Parse a CRL (PEM or DER) and verify it against its issuer among the anchors; NULL with a message if refused. */
static X509_CRL *crl_read(csc_crl_t *c, int fd, const char *path, off_t size)
{
    X509_CRL *crl = NULL;
    if (size <= 0 || (unsigned long long)size > CRL_FILE_BYTES_MAX) {
        fprintf(stderr, "crl: %s: refused: empty or larger than 64 MiB\n", path);
        return NULL;
    }
    unsigned char *buf = malloc((size_t)size);
    size_t got = 0;
    while (buf != NULL && got < (size_t)size) {
        ssize_t n = read(fd, buf + got, (size_t)size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (buf != NULL && got == (size_t)size) {
        BIO *b = BIO_new_mem_buf(buf, (int)got);
        crl = b != NULL ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        if (crl == NULL) {
            const unsigned char *p = buf;
            crl = d2i_X509_CRL(NULL, &p, (long)got);
            if (crl != NULL && p != buf + got) {
                X509_CRL_free(crl);
                crl = NULL;
            }
        }
    }
    free(buf);
    ERR_clear_error();
    if (crl == NULL) {
        fprintf(stderr, "crl: %s: refused: not a CRL (PEM or DER)\n", path);
        return NULL;
    }
    const X509_NAME *issuer = X509_CRL_get_issuer(crl);
    int verified = 0, issuer_known = 0;
    for (int i = 0; i < sk_X509_num(c->anchors) && !verified; i++) {
        X509 *a = sk_X509_value(c->anchors, i);
        if (X509_NAME_cmp(issuer, X509_get_subject_name(a)) != 0)
            continue;
        issuer_known = 1;
        EVP_PKEY *k = X509_get0_pubkey(a);
        verified = k != NULL && X509_CRL_verify(crl, k) == 1;
    }
    ERR_clear_error();
    if (!verified) {
        fprintf(stderr, "crl: %s: refused: %s\n", path,
                issuer_known ? "the signature does not verify with its issuer's key"
                             : "its issuer is not among the trust anchors");
        X509_CRL_free(crl);
        return NULL;
    }
    /* Sort the revoked list now, so that lookups from signing threads only read. */
    ASN1_INTEGER *zero = ASN1_INTEGER_new();
    X509_REVOKED *rev;
    if (zero != NULL)
        (void)X509_CRL_get0_by_serial(crl, &rev, zero);
    ASN1_INTEGER_free(zero);
    return crl;
}

static int has_crl_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && (strcmp(name + n - 4, ".crl") == 0 || strcmp(name + n - 4, ".pem") == 0);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const crl_file_t *)a)->name, ((const crl_file_t *)b)->name);
}

static const crl_file_t *find_file(const crl_snap_t *s, const char *name)
{
    for (size_t i = 0; s != NULL && i < s->n; i++)
        if (strcmp(s->files[i].name, name) == 0)
            return &s->files[i];
    return NULL;
}

static int same_file(const crl_file_t *a, const crl_file_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

int csc_crl_reload(csc_crl_t *c)
{
    pthread_mutex_lock(&c->reload_lock);
    crl_snap_t *old = snap_get(c), *fresh = calloc(1, sizeof(*fresh));
    crl_file_t *files = calloc(CRL_FILES_MAX, sizeof(*files));
    DIR *d = opendir(c->dir);
    size_t n = 0;
    int rc = -1, changed = 0;
    struct dirent *e;

    if (fresh == NULL || files == NULL)
        goto out;
    if (d == NULL) {
        fprintf(stderr, "crl: cannot read crl_dir %s: %s; the CRLs loaded before stay in force\n", c->dir,
                strerror(errno));
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        if (!has_crl_suffix(e->d_name) || strlen(e->d_name) >= sizeof(files[0].name))
            continue;
        if (n == CRL_FILES_MAX) {
            fprintf(stderr, "crl: %s: more than %d CRL files; the rest are ignored\n", c->dir, CRL_FILES_MAX);
            break;
        }
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", c->dir, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        crl_file_t *f = &files[n++];
        snprintf(f->name, sizeof(f->name), "%s", e->d_name);
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        f->size = st.st_size;
        f->mtime = st.st_mtim;
        f->ctime = st.st_ctim;
        const crl_file_t *before = find_file(old, f->name);
        if (before != NULL && same_file(before, f)) {
            if (before->crl != NULL && X509_CRL_up_ref(before->crl))
                f->crl = before->crl;
        } else {
            changed = 1;
            f->crl = crl_read(c, fd, path, st.st_size);
            if (f->crl == NULL && before != NULL && before->crl != NULL) {
                fprintf(stderr, "crl: %s: the previous version stays in force\n", path);
                if (X509_CRL_up_ref(before->crl))
                    f->crl = before->crl;
            }
        }
        close(fd);
    }
    qsort(files, n, sizeof(*files), by_name);
    if (old == NULL || old->n != n)
        changed = 1;
    for (size_t i = 0; !changed && i < n; i++)
        if (strcmp(old->files[i].name, files[i].name) != 0)
            changed = 1;
    rc = 0;
    if (!changed)
        goto out;
    fresh->n = n;
    fresh->files = files;
    fresh->refs = 1;
    files = NULL;
    pthread_mutex_lock(&c->lock);
    crl_snap_t *prev = c->cur;
    c->cur = fresh;
    pthread_mutex_unlock(&c->lock);
    fresh = NULL;
    snap_put(c, prev); /* the reference the store held */
    rc = 1;
out:
    if (d != NULL)
        closedir(d);
    if (files != NULL) {
        for (size_t i = 0; i < n; i++)
            X509_CRL_free(files[i].crl);
        free(files);
    }
    free(fresh);
    snap_put(c, old);
    pthread_mutex_unlock(&c->reload_lock);
    return rc;
}

static void *watch(void *arg)
{
    csc_crl_t *c = arg;
    pthread_mutex_lock(&c->stop_lock);
    while (!c->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&c->stop_cond, &c->stop_lock, &ts);
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->stop_lock);
        if (csc_crl_reload(c) == 1) {
            pthread_mutex_lock(&c->lock);
            void (*fn)(void *) = c->listener;
            void *fn_arg = c->listener_arg;
            pthread_mutex_unlock(&c->lock);
            if (fn != NULL)
                fn(fn_arg);
        }
        pthread_mutex_lock(&c->stop_lock);
    }
    pthread_mutex_unlock(&c->stop_lock);
    return NULL;
}

int csc_crl_new(const char *dir, const char *anchors_file, int allow_stale, int require, int watch_thread,
                csc_crl_t **out)
{
    *out = NULL;
    csc_crl_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->dir = strdup(dir)) == NULL) {
        free(c);
        return -1;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->reload_lock, NULL);
    pthread_mutex_init(&c->stop_lock, NULL);
    pthread_cond_init(&c->stop_cond, NULL);
    c->allow_stale = allow_stale;
    c->require = require;
    if (csc_crl_load_anchors(anchors_file, &c->anchors) != 0) {
        fprintf(stderr, "crl_dir needs trust_anchors (PEM CA certificates that issue the CRLs): cannot read %s\n",
                anchors_file != NULL && anchors_file[0] ? anchors_file : "(not set)");
        csc_crl_free(c);
        return -1;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "crl_dir %s: %s\n", dir, strerror(errno));
        csc_crl_free(c);
        return -1;
    }
    closedir(d);
    if (csc_crl_reload(c) < 0) {
        csc_crl_free(c);
        return -1;
    }
    if (watch_thread) {
        if (pthread_create(&c->thread, NULL, watch, c) != 0) {
            csc_crl_free(c);
            return -1;
        }
        c->thread_started = 1;
    }
    *out = c;
    return 0;
}

void csc_crl_free(csc_crl_t *c)
{
    if (c == NULL)
        return;
    if (c->thread_started) {
        pthread_mutex_lock(&c->stop_lock);
        c->stop = 1;
        pthread_cond_signal(&c->stop_cond);
        pthread_mutex_unlock(&c->stop_lock);
        pthread_join(c->thread, NULL);
    }
    snap_free(c->cur);
    sk_X509_pop_free(c->anchors, X509_free);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->reload_lock);
    pthread_mutex_destroy(&c->stop_lock);
    pthread_cond_destroy(&c->stop_cond);
    free(c->dir);
    free(c);
}

static const char *reason_name(int code)
{
    static const char *const names[] = {"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
                                        "superseded", "cessationOfOperation", "certificateHold", "?",
                                        "removeFromCRL", "privilegeWithdrawn", "aACompromise"};
    return code >= 0 && code < (int)CSC_ARRAY_SIZE(names) ? names[code] : "unspecified";
}

int csc_crl_check(csc_crl_t *c, X509 *ee, time_t now, const char **why)
{
    *why = "";
    if (c == NULL)
        return CSC_REV_GOOD;
    crl_snap_t *s = snap_get(c);
    X509_CRL *best = NULL;
    const X509_NAME *issuer = X509_get_issuer_name(ee);
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        X509_CRL *crl = s->files[i].crl;
        if (crl == NULL || X509_NAME_cmp(X509_CRL_get_issuer(crl), issuer) != 0)
            continue;
        if (best == NULL || ASN1_TIME_compare(X509_CRL_get0_lastUpdate(crl), X509_CRL_get0_lastUpdate(best)) > 0)
            best = crl;
    }
    int rc = CSC_REV_GOOD;
    if (best == NULL) {
        if (c->require) {
            rc = CSC_REV_UNKNOWN;
            *why = "no CRL of its issuer is loaded";
        }
        goto out;
    }
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate(best);
    if (next != NULL && X509_cmp_time(next, &now) <= 0 && !c->allow_stale) { /* 0: unreadable time, not trusted */
        rc = CSC_REV_UNKNOWN;
        *why = "the CRL of its issuer is past its nextUpdate";
        goto out;
    }
    X509_REVOKED *rev = NULL;
    if (X509_CRL_get0_by_serial(best, &rev, X509_get0_serialNumber(ee)) == 1 && rev != NULL) {
        /* certificateHold: suspended; an entry with removeFromCRL (delta CRLs) is answered 2 above: not revoked */
        int crit = 0, code = 0;
        ASN1_ENUMERATED *r = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, &crit, NULL);
        if (r != NULL)
            code = (int)ASN1_ENUMERATED_get(r);
        ASN1_ENUMERATED_free(r);
        rc = code == CRL_REASON_CERTIFICATE_HOLD ? CSC_REV_SUSPENDED : CSC_REV_REVOKED;
        *why = reason_name(code);
    }
out:
    snap_put(c, s);
    ERR_clear_error();
    return rc;
}

void csc_crl_set_listener(csc_crl_t *c, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&c->lock);
    c->listener = fn;
    c->listener_arg = arg;
    pthread_mutex_unlock(&c->lock);
}

size_t csc_crl_count(csc_crl_t *c)
{
    size_t n = 0;
    crl_snap_t *s = c != NULL ? snap_get(c) : NULL;
    for (size_t i = 0; s != NULL && i < s->n; i++)
        n += s->files[i].crl != NULL;
    if (s != NULL)
        snap_put(c, s);
    return n;
}

/* ---- the service's view ----------------------------------------------------------- */

int csc_cert_check_revocation(csc_t *c, const stor_cred_t *cred, time_t now, const char **why)
{
    *why = "";
    if (c->crl == NULL)
        return CSC_REV_GOOD;
    const unsigned char *p = cred->certs;
    X509 *ee = cred->certs_len > 0 ? d2i_X509(NULL, &p, cred->certs_len) : NULL;
    if (ee == NULL) {
        *why = "the certificate cannot be read";
        return CSC_REV_UNKNOWN;
    }
    int rc = csc_crl_check(c->crl, ee, now, why);
    X509_free(ee);
    return rc;
}

typedef struct refuse {
    stor_audit_t audit;
} refuse_t;

static int refuse_fn(stor_txn_t *t, void *arg)
{
    return stor_txn_audit_append(t, &((refuse_t *)arg)->audit);
}

int csc_check_not_revoked(csc_req_t *r, const stor_cred_t *cred)
{
    const char *why;
    int rev = csc_cert_check_revocation(r->csc, cred, time(NULL), &why);
    if (rev == CSC_REV_GOOD)
        return 0;
    refuse_t x;
    memset(&x, 0, sizeof(x));
    x.audit.event = STOR_EV_SIGN;
    x.audit.result = STOR_RES_DENIED;
    snprintf(x.audit.user, sizeof(x.audit.user), "%s", r->principal.user);
    snprintf(x.audit.cred, sizeof(x.audit.cred), "%s", cred->id);
    snprintf(x.audit.client, sizeof(x.audit.client), "%s", r->call->client ? r->call->client : "");
    snprintf(x.audit.detail, sizeof(x.audit.detail), "certificate %s (%s)",
             rev == CSC_REV_REVOKED ? "revoked" : rev == CSC_REV_SUSPENDED ? "suspended" : "status unknown", why);
    if (stor_write(r->csc->stor, refuse_fn, &x) != 0)
        return csc_unavailable(r);
    char o[100] = "", cn[100] = ""; /* with the text, within desc_buf */
    const unsigned char *p = cred->certs;
    X509 *ee = d2i_X509(NULL, &p, cred->certs_len);
    if (ee != NULL) {
        X509_NAME *s = X509_get_subject_name(ee);
        X509_NAME_get_text_by_NID(s, NID_organizationName, o, sizeof(o));
        X509_NAME_get_text_by_NID(s, NID_commonName, cn, sizeof(cn));
        X509_free(ee);
    }
    if (rev == CSC_REV_UNKNOWN)
        snprintf(r->desc_buf, sizeof(r->desc_buf),
                 "The revocation status of signing certificate 'O=%s,CN=%s' cannot be confirmed.", o, cn);
    else
        snprintf(r->desc_buf, sizeof(r->desc_buf), "Signing certificate 'O=%s,CN=%s' is %s.", o, cn,
                 rev == CSC_REV_REVOKED ? "revoked" : "suspended");
    return csc_bad(r, r->desc_buf);
}

const char *csc_cred_cert_status_now(csc_t *c, const stor_cred_t *cred, time_t now, bool *usable)
{
    const char *st = csc_cred_cert_status(cred, now), *why;
    *usable = cred->status == STOR_CRED_ENABLED && strcmp(st, "valid") == 0;
    if (strcmp(st, "valid") != 0 || c->crl == NULL)
        return st;
    int rev = csc_cert_check_revocation(c, cred, now, &why);
    if (rev != CSC_REV_GOOD)
        *usable = false;
    return rev == CSC_REV_REVOKED ? "revoked" : rev == CSC_REV_SUSPENDED ? "suspended" : st;
}

/* ---- a revocation seen in a CRL ends the credential (J7) ---------------------------------- */

typedef struct sweep {
    stor_txn_t *t;
    char (*id)[STOR_NAME_MAX + 1];
    size_t n, cap;
} sweep_t;

static int sweep_cred(const stor_cred_t *cred, void *arg)
{
    sweep_t *s = arg;
    if (cred->certs_len == 0 || cred->status == STOR_CRED_PENDING ||
        (cred->status == STOR_CRED_DESTROYED && cred->end_reason != STOR_CRED_END_OPERATOR))
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        void *p = realloc(s->id, cap * sizeof(*s->id));
        if (p == NULL)
            return STOR_ERR_NOMEM;
        s->id = p;
        s->cap = cap;
    }
    snprintf(s->id[s->n++], sizeof(s->id[0]), "%s", cred->id);
    return 0;
}

static int sweep_user(const stor_user_t *u, void *arg)
{
    return stor_txn_cred_each(((sweep_t *)arg)->t, u->name, sweep_cred, arg);
}

static int sweep_fn(stor_txn_t *t, void *arg)
{
    sweep_t *s = arg;
    s->t = t;
    int rc = stor_txn_user_each(t, sweep_user, s);
    return rc != 0 ? rc : stor_txn_cred_each(t, CSC_TSA_OWNER, sweep_cred, s);
}

/* The server is the first of the two persons: it asks, an operator with the key-admin role approves. */
static void queue_destroy(csc_t *c, const csc_admin_t *a, const char *id)
{
    csc_op_policy_t pol = {.approval_ttl = c->cfg.admin_approval_ttl ? c->cfg.admin_approval_ttl : 86400};
    char *argv[3] = {"credential", "revoke", (char *)id}, rid[STOR_NAME_MAX + 1], err[256];
    if (csc_op_approval_request(a, &pol, STOR_ROLE_KEY_ADMIN, 3, argv, rid, err, sizeof(err)) != CSC_OP_OK)
        fprintf(stderr, "crl: credential %s: the request to destroy its key failed (%s); run csc-admin credential "
                        "revoke %s\n", id, err, id);
    else
        fprintf(stderr, "crl: credential %s: certificate revoked; credential destroyed, its key waits for a second "
                        "operator: csc-admin approve %s\n", id, rid);
}

size_t csc_crl_sweep(csc_t *c)
{
    sweep_t s = {0};
    stor_cred_t *cred = malloc(sizeof(*cred));
    size_t marked_n = 0;
    csc_admin_t a = {.stor = c->stor, .hsm = c->hsm, .operator_name = "csc-server"};

    if (c->crl == NULL || c->hsm == NULL || cred == NULL || stor_read(c->stor, sweep_fn, &s) != 0) {
        free(cred);
        free(s.id);
        return 0;
    }
    for (size_t i = 0; i < s.n; i++) {
        const char *why;
        char detail[96], err[256];
        int marked = 0;
        if (stor_cred_get(c->stor, s.id[i], cred) != 0 ||
            csc_cert_check_revocation(c, cred, time(NULL), &why) != CSC_REV_REVOKED)
            continue;
        snprintf(detail, sizeof(detail), "seen in a CRL: %s", why);
        if (csc_admin_cred_revoked(&a, s.id[i], detail, c->cfg.crl_destroy_two_person, &marked, err, sizeof(err)) != 0)
            fprintf(stderr, "crl: credential %s: %s\n", s.id[i], err);
        if (!marked)
            continue;
        marked_n++;
        if (c->cfg.crl_destroy_two_person)
            queue_destroy(c, &a, s.id[i]);
        else
            fprintf(stderr, "crl: credential %s: certificate revoked (%s); credential and key destroyed\n", s.id[i],
                    why);
    }
    stor_wipe(cred, sizeof(*cred));
    free(cred);
    free(s.id);
    return marked_n;
}
