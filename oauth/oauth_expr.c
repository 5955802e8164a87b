/*
 * oauth_expr.c - the CSC auth.expression evaluator.
 *
 *   or      := xor { "OR" xor }
 *   xor     := and { "XOR" and }
 *   and     := primary { "AND" primary }
 *   primary := ID | "(" or ")"
 *
 * CSC does not define precedence; we take C's (& before ^ before |) so that
 * "PIN OR OTP AND X" reads the way most administrators expect. Operators are
 * upper case, as in the specification's examples. The input is at most
 * STOR_EXPR_MAX bytes and nesting at most OAUTH_EXPR_DEPTH_MAX, so the
 * recursion is bounded.
 */
#include <string.h>

#include "oauth_int.h"

#define ID_MAX 32

enum tok { T_END, T_ID, T_AND, T_OR, T_XOR, T_LP, T_RP };

typedef struct {
    const char *p;
    enum tok tok;
    int val;           /* value of the current T_ID */
    int malformed;
    int unknown;       /* an id other than PIN/OTP/CHALLENGE: never satisfiable */
    unsigned depth;
    unsigned verified;
} expr_t;

static int id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static void id_token(expr_t *e, const char *id, size_t n)
{
    e->tok = T_ID;
    e->val = 0;
    if (n == 3 && !memcmp(id, "AND", 3))
        e->tok = T_AND;
    else if (n == 2 && !memcmp(id, "OR", 2))
        e->tok = T_OR;
    else if (n == 3 && !memcmp(id, "XOR", 3))
        e->tok = T_XOR;
    else if (n == 3 && !memcmp(id, "PIN", 3))
        e->val = (e->verified & OAUTH_FACTOR_PIN) != 0;
    else if (n == 3 && !memcmp(id, "OTP", 3))
        e->val = (e->verified & OAUTH_FACTOR_OTP) != 0;
    else if (n == sizeof(OAUTH_CHALLENGE_ID) - 1 && !memcmp(id, OAUTH_CHALLENGE_ID, n))
        e->val = (e->verified & OAUTH_FACTOR_CHALLENGE) != 0;
    else if (n == sizeof(OAUTH_APPROVAL_ID) - 1 && !memcmp(id, OAUTH_APPROVAL_ID, n))
        e->val = (e->verified & OAUTH_FACTOR_APPROVAL) != 0;
    else
        e->unknown = 1;
}

static void advance(expr_t *e)
{
    size_t n = 0;

    while (*e->p == ' ' || *e->p == '\t')
        e->p++;
    if (!*e->p) {
        e->tok = T_END;
        return;
    }
    if (*e->p == '(' || *e->p == ')') {
        e->tok = *e->p++ == '(' ? T_LP : T_RP;
        return;
    }
    while (id_char(e->p[n]))
        n++;
    if (!n || n > ID_MAX) {
        e->malformed = 1;
        e->tok = T_END;
        return;
    }
    id_token(e, e->p, n);
    e->p += n;
}

static int parse_or(expr_t *e);

static int parse_primary(expr_t *e)
{
    int v;

    if (e->malformed)
        return 0;
    if (e->tok == T_ID) {
        v = e->val;
        advance(e);
        return v;
    }
    if (e->tok != T_LP || ++e->depth > OAUTH_EXPR_DEPTH_MAX) {
        e->malformed = 1;
        return 0;
    }
    advance(e);
    v = parse_or(e);
    if (e->tok != T_RP) {
        e->malformed = 1;
        return 0;
    }
    e->depth--;
    advance(e);
    return v;
}

/* Every operand is evaluated (no short circuit) so a malformed tail is always seen. */
static int parse_and(expr_t *e)
{
    int v = parse_primary(e);

    while (!e->malformed && e->tok == T_AND) {
        advance(e);
        v &= parse_primary(e);
    }
    return v;
}

static int parse_xor(expr_t *e)
{
    int v = parse_and(e);

    while (!e->malformed && e->tok == T_XOR) {
        advance(e);
        v ^= parse_and(e);
    }
    return v;
}

static int parse_or(expr_t *e)
{
    int v = parse_xor(e);

    while (!e->malformed && e->tok == T_OR) {
        advance(e);
        v |= parse_xor(e);
    }
    return v;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t')
            return 0;
    return 1;
}

int oauth_expr_eval(const char *expr, unsigned have, unsigned verified)
{
    expr_t e;
    int v;

    have &= OAUTH_FACTOR_PIN | OAUTH_FACTOR_OTP | OAUTH_FACTOR_CHALLENGE | OAUTH_FACTOR_APPROVAL;
    verified &= have;   /* a factor the credential lacks cannot have been verified */
    if (expr && strnlen(expr, STOR_EXPR_MAX + 1) > STOR_EXPR_MAX)
        return OAUTH_ERR_INVAL;
    /* CSC: an empty expression is the AND of all objects; with none there is nothing to satisfy it. */
    if (!expr || blank(expr))
        return have && (verified & have) == have;
    memset(&e, 0, sizeof(e));
    e.p = expr;
    e.verified = verified;
    advance(&e);
    v = parse_or(&e);
    if (e.malformed || e.tok != T_END)
        return OAUTH_ERR_INVAL;
    return e.unknown ? 0 : v;
}

int oauth_expr_names(const char *expr, const char *id)
{
    size_t n = id ? strlen(id) : 0;
    const char *p;

    if (!expr || !n)
        return 0;
    for (p = strstr(expr, id); p; p = strstr(p + 1, id))
        if ((p == expr || !id_char(p[-1])) && !id_char(p[n]))
            return 1;
    return 0;
}

int oauth_expr_single_factor(const char *expr)
{
    static const unsigned one[] = {OAUTH_FACTOR_PIN, OAUTH_FACTOR_OTP, OAUTH_FACTOR_CHALLENGE};
    const unsigned all = OAUTH_FACTOR_PIN | OAUTH_FACTOR_OTP | OAUTH_FACTOR_CHALLENGE | OAUTH_FACTOR_APPROVAL;

    if (expr == NULL || blank(expr))
        return 1;
    for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
        int v = oauth_expr_eval(expr, all, one[i]);
        if (v != 0)
            return 1; /* satisfied by one factor, or malformed */
    }
    return 0;
}
