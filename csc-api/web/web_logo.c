/*
 * web/web_logo.c - the logo that info.logo names, served by the service itself so that the URL it publishes resolves.
 *
 * info_logo_file: an image file read once at start-up (at most WEB_LOGO_MAX bytes), its type taken from its
 * first bytes (PNG, JPEG, GIF or WebP) and checked against the file name's extension; served at
 * GET {public_url}/logo.<ext>, which info.logo names. SVG is refused: it can carry scripts, and the logo is served
 * from the origin of the sign-in and consent pages.
 * info_logo (no file): an external URL, published as it is; a URL under public_url is refused at start-up, since
 * nothing would answer it.
 * Neither: a small built-in PNG at /logo.png.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "web.h"

#define LOGO_PREFIX "/logo."

/* 32x32 palette PNG (navy with a white frame), made with zlib; 103 bytes. */
static const uint8_t builtin_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
    0x00, 0x20, 0x00, 0x00, 0x00, 0x20, 0x08, 0x03, 0x00, 0x00, 0x00, 0x44, 0xa4, 0x8a, 0xc6, 0x00, 0x00, 0x00,
    0x06, 0x50, 0x4c, 0x54, 0x45, 0x1f, 0x3a, 0x5f, 0xff, 0xff, 0xff, 0x2f, 0xa6, 0x90, 0x40, 0x00, 0x00, 0x00,
    0x1c, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x60, 0x18, 0x05, 0x28, 0x80, 0x11, 0x0d, 0x0c, 0x94, 0x02,
    0x6c, 0xec, 0x91, 0xa8, 0x60, 0xa0, 0xe3, 0x62, 0x84, 0x03, 0x00, 0x90, 0x2f, 0x00, 0xc1, 0xec, 0x37, 0xa7,
    0x12, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

typedef struct logo_type {
    const char *ext;           /* served as /logo.<ext> */
    const char *alt_ext;       /* another extension the file may have, or NULL */
    const char *content_type;
} logo_type_t;

static const logo_type_t types[] = {
    {"png", NULL, "image/png"},
    {"jpg", "jpeg", "image/jpeg"},
    {"gif", NULL, "image/gif"},
    {"webp", NULL, "image/webp"},
};

/* The type of an image by its magic bytes; NULL if it is none of the four. */
static const logo_type_t *sniff(const uint8_t *p, size_t n)
{
    if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
        return &types[0];
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return &types[1];
    if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
        return &types[2];
    if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return &types[3];
    return NULL;
}

int web_logo_read(const char *file, uint8_t **data, size_t *len, const char **ext, const char **content_type,
                  char *err, size_t err_sz)
{
    struct stat st;
    FILE *f = fopen(file, "rb");
    uint8_t *p = NULL;
    size_t n = 0;
    const logo_type_t *t;

    *data = NULL;
    *len = 0;
    if (f == NULL || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_sz, "cannot read %s: %s", file, f == NULL ? strerror(errno) : "not a regular file");
        goto fail;
    }
    if (st.st_size <= 0 || st.st_size > WEB_LOGO_MAX) {
        snprintf(err, err_sz, "%s: empty or larger than %d bytes", file, WEB_LOGO_MAX);
        goto fail;
    }
    if ((p = malloc((size_t)st.st_size + 1)) == NULL) {
        snprintf(err, err_sz, "out of memory");
        goto fail;
    }
    n = fread(p, 1, (size_t)st.st_size + 1, f);
    if (n != (size_t)st.st_size) {
        snprintf(err, err_sz, "%s: changed while it was read", file);
        goto fail;
    }
    if ((t = sniff(p, n)) == NULL) {
        snprintf(err, err_sz, "%s: not a PNG, JPEG, GIF or WebP image (SVG is refused: it can carry scripts)", file);
        goto fail;
    }
    const char *dot = strrchr(file, '.'), *slash = strrchr(file, '/');
    if (dot != NULL && (slash == NULL || dot > slash) && strcasecmp(dot + 1, t->ext) != 0 &&
        (t->alt_ext == NULL || strcasecmp(dot + 1, t->alt_ext) != 0)) {
        snprintf(err, err_sz, "%s: the content is %s but the name ends in .%s", file, t->content_type, dot + 1);
        goto fail;
    }
    fclose(f);
    *data = p;
    *len = n;
    *ext = t->ext;
    *content_type = t->content_type;
    return 0;
fail:
    if (f != NULL)
        fclose(f);
    free(p);
    return -1;
}

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int web_logo_init(csc_t *c)
{
    const csc_config_t *cfg = &c->cfg;
    const char *url = cfg->logo != NULL ? cfg->logo : "", *file = cfg->logo_file != NULL ? cfg->logo_file : "";
    char err[512];

    if (url[0] != '\0' && file[0] != '\0') {
        fprintf(stderr, "csc: info_logo and info_logo_file: give one (with a file, info.logo names where the "
                        "service serves it)\n");
        return -1;
    }
    if (url[0] != '\0') {
        size_t n = strlen(cfg->public_url);
        if (strlen(url) >= sizeof(c->logo_url) || !(has_prefix(url, "https://") || has_prefix(url, "http://"))) {
            fprintf(stderr, "csc: info_logo: an http(s) URL of at most %zu characters\n", sizeof(c->logo_url) - 1);
            return -1;
        }
        if (strncmp(url, cfg->public_url, n) == 0 && (url[n] == '/' || url[n] == '\0')) {
            fprintf(stderr, "csc: info_logo %s: under public_url, where nothing answers; name the image with "
                            "info_logo_file and the service serves it there\n", url);
            return -1;
        }
        snprintf(c->logo_url, sizeof(c->logo_url), "%s", url);
        return 0; /* external: nothing to serve */
    }
    if (file[0] != '\0') {
        if (web_logo_read(file, &c->logo, &c->logo_len, &c->logo_ext, &c->logo_type, err, sizeof(err)) != 0) {
            fprintf(stderr, "csc: info_logo_file: %s\n", err);
            return -1;
        }
    } else {
        if ((c->logo = malloc(sizeof(builtin_png))) == NULL)
            return -1;
        memcpy(c->logo, builtin_png, sizeof(builtin_png));
        c->logo_len = sizeof(builtin_png);
        c->logo_ext = "png";
        c->logo_type = "image/png";
    }
    snprintf(c->logo_path, sizeof(c->logo_path), LOGO_PREFIX "%s", c->logo_ext);
    if ((size_t)snprintf(c->logo_url, sizeof(c->logo_url), "%s%s", cfg->public_url, c->logo_path) >=
        sizeof(c->logo_url)) {
        fprintf(stderr, "csc: public_url too long for the logo URL\n");
        return -1;
    }
    return 0;
}

int web_logo_is_path(const char *path, size_t len)
{
    return len > sizeof(LOGO_PREFIX) - 1 && len < 16 && memcmp(path, LOGO_PREFIX, sizeof(LOGO_PREFIX) - 1) == 0;
}

void web_logo_handle(csc_t *c, const csc_call_t *call, csc_reply_t *reply)
{
    size_t plen = c->logo != NULL ? strlen(c->logo_path) : 0;
    if (plen == 0 || call->path_len != plen || memcmp(call->path, c->logo_path, plen) != 0) {
        csc_reply_error(reply, 404, "invalid_request", "Unknown path");
        return;
    }
    if (!((call->http_method_len == 3 && memcmp(call->http_method, "GET", 3) == 0) ||
          (call->http_method_len == 4 && memcmp(call->http_method, "HEAD", 4) == 0))) {
        csc_reply_error(reply, 405, "invalid_request", "The logo is read with GET");
        return;
    }
    if ((reply->body = malloc(c->logo_len)) == NULL) {
        csc_reply_error(reply, 503, "temporarily_unavailable", "Out of memory");
        return;
    }
    memcpy(reply->body, c->logo, c->logo_len);
    reply->body_len = c->logo_len;
    reply->content_type = c->logo_type;
    reply->status = 200;
}
