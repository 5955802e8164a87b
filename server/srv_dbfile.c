/* srv_dbfile.c - the header and the trailer of a db backup file, as bytes and back (srv_dbfile.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_dbfile.h"

void srv_dbfile_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Lower-case hex of exactly 2 * n digits into p (max bytes; *n set). 0, or -1 if it is not. */
static int hex_to(const char *s, uint8_t *p, size_t max, size_t *n)
{
    size_t len = strlen(s);
    if (len % 2 != 0 || len / 2 > max)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned hi = (unsigned)(s[2 * i] <= '9' ? s[2 * i] - '0' : s[2 * i] - 'a' + 10);
        unsigned lo = (unsigned)(s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' : s[2 * i + 1] - 'a' + 10);
        p[i] = (uint8_t)(hi << 4 | lo);
    }
    *n = len / 2;
    return 0;
}

int srv_dbfile_header_text(const srv_dbfile_header_t *h, char *out, size_t sz)
{
    char ah[65], hh[65] = "", sig[2 * STOR_HEAD_SIG_MAX + 1] = "";
    srv_dbfile_hex(h->audit_hash, 32, ah);
    if (h->head_seq != 0) {
        srv_dbfile_hex(h->head_hash, 32, hh);
        srv_dbfile_hex(h->head_sig, h->head_sig_len, sig);
    }
    int n = snprintf(out, sz,
                     "backend=%s\ncreated_ms=%" PRId64 "\naudit_seq=%" PRIu64 "\naudit_hash=%s\nhead_seq=%" PRIu64
                     "\nhead_hash=%s\nhead_time_ms=%" PRId64 "\nhead_sig=%s\n",
                     h->backend, h->created_ms, h->audit_seq, ah, h->head_seq, hh, h->head_seq ? h->head_time_ms : 0,
                     sig);
    return n > 0 && (size_t)n < sz ? n : -1;
}

/* The value of line "key=VALUE\n" at *p (which moves past it); NULL if the next line is not key's. */
static const char *header_line(char **p, const char *key)
{
    size_t k = strlen(key);
    char *nl = strchr(*p, '\n');
    if (nl == NULL || strncmp(*p, key, k) != 0 || (*p)[k] != '=')
        return NULL;
    *nl = '\0';
    const char *v = *p + k + 1;
    *p = nl + 1;
    return v;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s == NULL || s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '\0'))
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int srv_dbfile_header_parse(char *text, srv_dbfile_header_t *h, const char **why)
{
    const char *v;
    uint64_t u;
    size_t n;
    char *p = text;
    memset(h, 0, sizeof(*h));
    *why = "backend";
    if ((v = header_line(&p, "backend")) == NULL || strcmp(v, "lmdb") != 0)
        return -1;
    snprintf(h->backend, sizeof(h->backend), "%s", v);
    *why = "created_ms";
    if (parse_u64(header_line(&p, "created_ms"), &u) != 0 || u > INT64_MAX)
        return -1;
    h->created_ms = (int64_t)u;
    *why = "audit_seq";
    if (parse_u64(header_line(&p, "audit_seq"), &h->audit_seq) != 0)
        return -1;
    *why = "audit_hash";
    if ((v = header_line(&p, "audit_hash")) == NULL || hex_to(v, h->audit_hash, 32, &n) != 0 || n != 32)
        return -1;
    *why = "head_seq";
    if (parse_u64(header_line(&p, "head_seq"), &h->head_seq) != 0 || h->head_seq > h->audit_seq)
        return -1;
    *why = "head_hash";
    if ((v = header_line(&p, "head_hash")) == NULL || hex_to(v, h->head_hash, 32, &n) != 0 ||
        n != (h->head_seq ? 32u : 0u))
        return -1;
    *why = "head_time_ms";
    /* 0 without a signed head, as written: a header has one text (its fuzz target checks text -> parse -> text) */
    if (parse_u64(header_line(&p, "head_time_ms"), &u) != 0 || u > INT64_MAX || (h->head_seq == 0 && u != 0))
        return -1;
    h->head_time_ms = (int64_t)u;
    *why = "head_sig";
    if ((v = header_line(&p, "head_sig")) == NULL || hex_to(v, h->head_sig, sizeof(h->head_sig), &n) != 0 ||
        (n == 0) != (h->head_seq == 0))
        return -1;
    h->head_sig_len = (uint32_t)n;
    *why = SRV_DBFILE_END;
    return *p == '\0' ? 0 : -1;
}

int srv_dbfile_trailer_write(const srv_dbfile_sig_t *s, uint8_t *out, size_t sz)
{
    size_t t = strnlen(s->text, sizeof(s->text)), n = 2 + t + 2 + s->sig_len;
    if (t == 0 || t > SRV_DBFILE_SIG_TEXT_MAX || s->sig_len == 0 || s->sig_len > SRV_DBFILE_SIG_MAX || n > sz)
        return -1;
    out[0] = (uint8_t)(t >> 8);
    out[1] = (uint8_t)t;
    memcpy(out + 2, s->text, t);
    out[2 + t] = (uint8_t)(s->sig_len >> 8);
    out[3 + t] = (uint8_t)s->sig_len;
    memcpy(out + 4 + t, s->sig, s->sig_len);
    return (int)n;
}

int srv_dbfile_trailer_parse(const uint8_t *p, size_t len, srv_dbfile_sig_t *s)
{
    memset(s, 0, sizeof(*s));
    if (len < 2)
        return -1;
    size_t t = (size_t)p[0] << 8 | p[1];
    if (t == 0 || t > SRV_DBFILE_SIG_TEXT_MAX || len < 2 + t + 2 || memchr(p + 2, '\0', t) != NULL)
        return -1;
    size_t n = (size_t)p[2 + t] << 8 | p[3 + t];
    if (n == 0 || n > SRV_DBFILE_SIG_MAX || len != 2 + t + 2 + n)
        return -1;
    memcpy(s->text, p + 2, t);
    s->text[t] = '\0';
    memcpy(s->sig, p + 4 + t, n);
    s->sig_len = n;
    return 0;
}
