/*
 * pki_crl.c - a store of certificate revocation lists (RFC 5280 5) kept current from a folder.
 *
 * Every *.crl / *.pem file of the folder is a CRL (PEM or DER). A CRL is accepted only when its signature verifies
 * with the public key of its issuer among the trust anchors (root and intermediate CA certificates
 * from a PEM file); a file that cannot be parsed or whose signature fails is refused with an error on stderr, and
 * the last good version of that file, if any, stays in force.
 *
 * pki_crl_reload() looks at the folder (names, inode, size, mtime, ctime) and builds a new snapshot only when
 * something changed; unchanged files keep their parsed CRL. The caller decides when to look (csc-server: a periodic
 * task of server/, once a second); this file starts no thread. Signing threads read the current snapshot under a
 * mutex held only to take a reference (no file I/O, no parsing), so a reload never delays a signature.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "pki_int.h"

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
    unsigned refs;             /* under pki_crl_t.lock */
    size_t n;
    crl_file_t *files;
} crl_snap_t;

struct pki_crl {
    char *dir;
    STACK_OF(X509) *anchors;
    int allow_stale;
    int require;
    pthread_mutex_t lock;      /* guards cur and every snapshot's refs */
    crl_snap_t *cur;
    uint64_t generation;         /* snapshots put in force since pki_crl_new (guarded by lock) */
    pthread_mutex_t reload_lock; /* one reload at a time; guards anchors and reverify */
    int reverify;                /* the anchors changed: the next reload reads and verifies every file again */
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

static crl_snap_t *snap_get(pki_crl_t *c)
{
    pthread_mutex_lock(&c->lock);
    crl_snap_t *s = c->cur;
    if (s != NULL)
        s->refs++;
    pthread_mutex_unlock(&c->lock);
    return s;
}

static void snap_put(pki_crl_t *c, crl_snap_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    unsigned left = --s->refs;
    pthread_mutex_unlock(&c->lock);
    if (left == 0)
        snap_free(s);
}

/* Every PEM certificate b holds into a new stack: pki_crl_load_anchors (a file) and pki_crl_parse_anchors (memory). */
static int anchors_read(BIO *b, STACK_OF(X509) **out)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    while (sk != NULL && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            break;
        }
    ERR_clear_error();
    if (sk == NULL || sk_X509_num(sk) == 0) {
        sk_X509_pop_free(sk, X509_free);
        return sk == NULL ? PKI_ERR_NOMEM : PKI_ERR_INVAL;
    }
    *out = sk;
    return PKI_OK;
}

int pki_crl_load_anchors(const char *file, STACK_OF(X509) **out)
{
    *out = NULL;
    BIO *b = file != NULL && file[0] != '\0' ? BIO_new_file(file, "r") : NULL;
    if (b == NULL) {
        ERR_clear_error();
        return PKI_ERR_IO;
    }
    int rc = anchors_read(b, out);
    BIO_free(b);
    return rc;
}

int pki_crl_parse_anchors(const uint8_t *pem, size_t len, STACK_OF(X509) **out)
{
    *out = NULL;
    if (len > INT_MAX)
        return PKI_ERR_INVAL;
    BIO *b = BIO_new_mem_buf(len > 0 ? pem : (const uint8_t *)"", (int)len);
    if (b == NULL)
        return PKI_ERR_NOMEM;
    int rc = anchors_read(b, out);
    BIO_free(b);
    return rc;
}

X509_CRL *pki_crl_parse(const STACK_OF(X509) *anchors, const uint8_t *buf, size_t len, const char *name)
{
    X509_CRL *crl = NULL;
    if (len == 0 || len > CRL_FILE_BYTES_MAX) {
        fprintf(stderr, "crl: %s: refused: empty or larger than 64 MiB\n", name);
        return NULL;
    }
    BIO *b = BIO_new_mem_buf(buf, (int)len);
    crl = b != NULL ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (crl == NULL) {
        const unsigned char *p = buf;
        crl = d2i_X509_CRL(NULL, &p, (long)len);
        if (crl != NULL && p != buf + len) {
            X509_CRL_free(crl);
            crl = NULL;
        }
    }
    ERR_clear_error();
    if (crl == NULL) {
        fprintf(stderr, "crl: %s: refused: not a CRL (PEM or DER)\n", name);
        return NULL;
    }
    const X509_NAME *issuer = X509_CRL_get_issuer(crl);
    int verified = 0, issuer_known = 0;
    for (int i = 0; i < sk_X509_num(anchors) && !verified; i++) {
        X509 *a = sk_X509_value(anchors, i);
        if (X509_NAME_cmp(issuer, X509_get_subject_name(a)) != 0)
            continue;
        issuer_known = 1;
        EVP_PKEY *k = X509_get0_pubkey(a);
        verified = k != NULL && X509_CRL_verify(crl, k) == 1;
    }
    ERR_clear_error();
    if (!verified) {
        fprintf(stderr, "crl: %s: refused: %s\n", name,
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

/* A file of the folder (fd, size bytes by fstat) read whole and given to pki_crl_parse; NULL with a message if
 * refused. */
static X509_CRL *crl_read(pki_crl_t *c, int fd, const char *path, off_t size)
{
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
    X509_CRL *crl = NULL;
    if (buf != NULL && got == (size_t)size)
        crl = pki_crl_parse(c->anchors, buf, got, path);
    else
        fprintf(stderr, "crl: %s: refused: %s\n", path, buf == NULL ? "out of memory" : "cannot be read whole");
    free(buf);
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

int pki_crl_reload(pki_crl_t *c)
{
    pthread_mutex_lock(&c->reload_lock);
    crl_snap_t *old = snap_get(c), *fresh = calloc(1, sizeof(*fresh));
    crl_file_t *files = calloc(CRL_FILES_MAX, sizeof(*files));
    DIR *d = opendir(c->dir);
    size_t n = 0;
    int rc = PKI_ERR_NOMEM, changed = c->reverify;
    struct dirent *e;

    if (fresh == NULL || files == NULL)
        goto out;
    if (d == NULL) {
        fprintf(stderr, "crl: cannot read the CRL folder %s: %s; the CRLs loaded before stay in force\n", c->dir,
                strerror(errno));
        rc = PKI_ERR_IO;
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
        if (before != NULL && !c->reverify && same_file(before, f)) {
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
    c->reverify = 0;
    if (!changed)
        goto out;
    fresh->n = n;
    fresh->files = files;
    fresh->refs = 1;
    files = NULL;
    pthread_mutex_lock(&c->lock);
    crl_snap_t *prev = c->cur;
    c->cur = fresh;
    c->generation++;
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

int pki_crl_new(const char *dir, const char *anchors_file, int allow_stale, int require, pki_crl_t **out,
                char *err, size_t err_sz)
{
    *out = NULL;
    if (err != NULL && err_sz > 0)
        err[0] = '\0';
    pki_crl_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->dir = strdup(dir)) == NULL) {
        free(c);
        pki_err(err, err_sz, "out of memory");
        return PKI_ERR_NOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->reload_lock, NULL);
    c->allow_stale = allow_stale;
    c->require = require;
    int rc = pki_crl_load_anchors(anchors_file, &c->anchors);
    if (rc != PKI_OK) {
        pki_err(err, err_sz, "cannot read %s", anchors_file != NULL && anchors_file[0] ? anchors_file : "(not set)");
        pki_crl_free(c);
        return PKI_ERR_ANCHORS;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        pki_err(err, err_sz, "%s: %s", dir, strerror(errno));
        pki_crl_free(c);
        return PKI_ERR_IO;
    }
    closedir(d);
    if ((rc = pki_crl_reload(c)) < 0) {
        pki_err(err, err_sz, "%s: %s", dir, pki_strerror(rc));
        pki_crl_free(c);
        return rc;
    }
    *out = c;
    return PKI_OK;
}

int pki_crl_set_anchors(pki_crl_t *c, const char *anchors_file, char *err, size_t err_sz)
{
    STACK_OF(X509) *fresh = NULL, *old;
    int rc = pki_crl_load_anchors(anchors_file, &fresh);

    if (err != NULL && err_sz > 0)
        err[0] = '\0';
    if (rc != PKI_OK) {
        pki_err(err, err_sz, "cannot read %s", anchors_file != NULL && anchors_file[0] ? anchors_file : "(not set)");
        return rc == PKI_ERR_NOMEM ? rc : PKI_ERR_ANCHORS;
    }
    pthread_mutex_lock(&c->reload_lock);
    old = c->anchors;
    c->anchors = fresh;
    c->reverify = 1;
    pthread_mutex_unlock(&c->reload_lock);
    sk_X509_pop_free(old, X509_free);
    rc = pki_crl_reload(c);
    return rc < 0 ? rc : PKI_OK;
}

void pki_crl_free(pki_crl_t *c)
{
    if (c == NULL)
        return;
    snap_free(c->cur);
    sk_X509_pop_free(c->anchors, X509_free);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->reload_lock);
    free(c->dir);
    free(c);
}

static const char *reason_name(int code)
{
    static const char *const names[] = {"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
                                        "superseded", "cessationOfOperation", "certificateHold", "?",
                                        "removeFromCRL", "privilegeWithdrawn", "aACompromise"};
    return code >= 0 && code < (int)PKI_ARRAY_SIZE(names) ? names[code] : "unspecified";
}

int pki_crl_check(pki_crl_t *c, X509 *ee, time_t now, const char **why)
{
    *why = "";
    if (c == NULL)
        return PKI_REV_GOOD;
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
    int rc = PKI_REV_GOOD;
    if (best == NULL) {
        if (c->require) {
            rc = PKI_REV_UNKNOWN;
            *why = "no CRL of its issuer is loaded";
        }
        goto out;
    }
    rc = pki_crl_status(best, ee, now, c->allow_stale, why);
out:
    snap_put(c, s);
    ERR_clear_error();
    return rc;
}

int pki_crl_status(X509_CRL *crl, X509 *ee, time_t now, int allow_stale, const char **why)
{
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
    int rc = PKI_REV_GOOD;

    *why = "";
    if (next != NULL && X509_cmp_time(next, &now) <= 0 && !allow_stale) { /* 0: unreadable time, not trusted */
        *why = "the CRL of its issuer is past its nextUpdate";
        ERR_clear_error();
        return PKI_REV_UNKNOWN;
    }
    X509_REVOKED *rev = NULL;
    if (X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(ee)) == 1 && rev != NULL) {
        /* certificateHold: suspended; an entry with removeFromCRL (delta CRLs) is answered 2 above: not revoked */
        int crit = 0, code = 0;
        ASN1_ENUMERATED *r = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, &crit, NULL);
        if (r != NULL)
            code = (int)ASN1_ENUMERATED_get(r);
        ASN1_ENUMERATED_free(r);
        rc = code == CRL_REASON_CERTIFICATE_HOLD ? PKI_REV_SUSPENDED : PKI_REV_REVOKED;
        *why = reason_name(code);
    }
    ERR_clear_error();
    return rc;
}

size_t pki_crl_count(pki_crl_t *c)
{
    size_t n = 0;
    crl_snap_t *s = c != NULL ? snap_get(c) : NULL;
    for (size_t i = 0; s != NULL && i < s->n; i++)
        n += s->files[i].crl != NULL;
    if (s != NULL)
        snap_put(c, s);
    return n;
}

size_t pki_crl_stale(pki_crl_t *c, time_t now, char *stale, size_t stale_sz, time_t *earliest)
{
    size_t n = 0;
    crl_snap_t *s = c != NULL ? snap_get(c) : NULL;
    *earliest = 0;
    if (stale_sz > 0)
        stale[0] = '\0';
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        const X509_CRL *crl = s->files[i].crl;
        if (crl == NULL)
            continue;
        const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
        struct tm tm;
        int fresh = next != NULL && X509_cmp_time(next, &now) > 0; /* 0: unreadable time, not trusted */
        if (next != NULL && ASN1_TIME_to_tm(next, &tm) == 1) {
            time_t t = timegm(&tm);
            if (*earliest == 0 || t < *earliest)
                *earliest = t;
        }
        if (!fresh && n++ == 0 && stale_sz > 0)
            snprintf(stale, stale_sz, "%s", s->files[i].name);
    }
    if (s != NULL)
        snap_put(c, s);
    ERR_clear_error();
    return n;
}

uint64_t pki_crl_generation(pki_crl_t *c)
{
    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->lock);
    uint64_t g = c->generation;
    pthread_mutex_unlock(&c->lock);
    return g;
}
