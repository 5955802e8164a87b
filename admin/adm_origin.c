/*
 * adm_origin.c - where an operator's command comes from (J12, J14): the OS user, host and terminal csc-admin runs
 * on, and the host's identity an operator session is bound to. csc-admin states them (adm_origin_local) and sends the
 * claim to csc-sam (adm_origin_claim, SAM_T_ORIGIN); csc-sam reads it back strictly (adm_origin_parse) and puts the
 * uid it reads from SO_PEERCRED beside it (adm_origin_text). The host identity is the SHA-256 of the host name and
 * /etc/machine-id: a session token copied to another machine (or into another UTS namespace with another name) no
 * longer matches the session it names (adm_op_session_check).
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "adm_int.h"

#define MACHINE_ID_FILE "/etc/machine-id"

/* Copy s into out (size sz) with every byte that is not printable ASCII, a space or '=' made '?': the claim and the
 * audit text stay "key=value" words. "" becomes "-". */
static void word(char *out, size_t sz, const char *s)
{
    snprintf(out, sz, "%s", s != NULL && s[0] != '\0' ? s : "-");
    for (char *p = out; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '=')
            *p = '?';
}

void adm_origin_host_id(const char *host, const char *machine_id, uint8_t out[32])
{
    static const char label[] = "csc-admin host identity 1";
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(md, label, sizeof(label)) && EVP_DigestUpdate(md, host, strlen(host) + 1) &&
             EVP_DigestUpdate(md, machine_id, strlen(machine_id)) && EVP_DigestFinal_ex(md, out, &n) && n == 32;
    EVP_MD_CTX_free(md);
    if (!ok)
        memset(out, 0xff, 32); /* never the all-zero "no host" of a session made without one */
}

int adm_origin_local(adm_origin_t *o)
{
    char host[256] = "", mid[128] = "", pwbuf[4096], *tty = ttyname(STDIN_FILENO);
    struct passwd pw, *res = NULL;
    uid_t uid = getuid();

    memset(o, 0, sizeof(*o));
    o->uid = (uint32_t)uid;
    if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res != NULL)
        word(o->os_user, sizeof(o->os_user), res->pw_name);
    else
        snprintf(o->os_user, sizeof(o->os_user), "uid%u", (unsigned)uid);
    if (gethostname(host, sizeof(host) - 1) != 0)
        host[0] = '\0';
    word(o->host, sizeof(o->host), host);
    word(o->tty, sizeof(o->tty), tty);
    FILE *f = fopen(MACHINE_ID_FILE, "r");
    if (f != NULL) {
        if (fgets(mid, sizeof(mid), f) == NULL)
            mid[0] = '\0';
        fclose(f);
        mid[strcspn(mid, "\r\n")] = '\0';
    }
    adm_origin_host_id(host, mid, o->host_id);
    return 0;
}

int adm_origin_claim(const adm_origin_t *o, char *out, size_t sz)
{
    char hex[65];
    pki_hex(o->host_id, sizeof(o->host_id), hex);
    int n = snprintf(out, sz, "os_user=%s uid=%u host=%s tty=%s host_id=%s", o->os_user, (unsigned)o->uid, o->host,
                     o->tty, hex);
    return n > 0 && (size_t)n < sz ? 0 : -1;
}

/* The value of key in the next word of *s ("key=value", then one space or the end), into out (1..sz-1 bytes of
 * printable ASCII without '='). 0 or -1. */
static int take(const char **s, const char *key, char *out, size_t sz)
{
    size_t kl = strlen(key), n = 0;
    const char *p = *s;
    if (strncmp(p, key, kl) != 0 || p[kl] != '=')
        return -1;
    p += kl + 1;
    while (p[n] != '\0' && p[n] != ' ') {
        if ((unsigned char)p[n] < 0x21 || (unsigned char)p[n] > 0x7e || p[n] == '=' || n + 1 >= sz)
            return -1;
        out[n] = p[n];
        n++;
    }
    if (n == 0)
        return -1;
    out[n] = '\0';
    p += n;
    *s = *p == ' ' ? p + 1 : p;
    return 0;
}

int adm_origin_parse(const char *claim, adm_origin_t *o)
{
    char uid[12], hex[65];
    const char *s = claim;
    char *end;

    memset(o, 0, sizeof(*o));
    if (claim == NULL || take(&s, "os_user", o->os_user, sizeof(o->os_user)) != 0 ||
        take(&s, "uid", uid, sizeof(uid)) != 0 || take(&s, "host", o->host, sizeof(o->host)) != 0 ||
        take(&s, "tty", o->tty, sizeof(o->tty)) != 0 || take(&s, "host_id", hex, sizeof(hex)) != 0 || *s != '\0' ||
        strspn(hex, "0123456789abcdef") != 64 || hex[64] != '\0' || uid[0] < '0' || uid[0] > '9')
        goto bad;
    unsigned long u = strtoul(uid, &end, 10);
    if (*end != '\0' || u > UINT32_MAX)
        goto bad;
    o->uid = (uint32_t)u;
    /* lower case only, as adm_origin_claim writes it */
    if (pki_unhex(hex, 64, o->host_id, sizeof(o->host_id)) != 32)
        goto bad;
    return 0;
bad:
    memset(o, 0, sizeof(*o));
    return -1;
}

void adm_origin_text(const adm_origin_t *o, char *out, size_t sz)
{
    if (!o->peer_known) {
        snprintf(out, sz, "os_user=%s uid=%u host=%s tty=%s", o->os_user, (unsigned)o->uid, o->host, o->tty);
        return;
    }
    /* csc-sam: the uid is the kernel's (SO_PEERCRED); the claim's is kept beside it only when it differs */
    if (o->peer_uid == o->uid)
        snprintf(out, sz, "os_user=%s uid=%u host=%s tty=%s", o->os_user, (unsigned)o->peer_uid, o->host, o->tty);
    else
        snprintf(out, sz, "os_user=%s uid=%u claimed_uid=%u host=%s tty=%s", o->os_user, (unsigned)o->peer_uid,
                 (unsigned)o->uid, o->host, o->tty);
}
