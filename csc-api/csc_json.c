/* csc_json.c - request parsing with explicit limits, and reply generation. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <yajl/yajl_parse.h>
#include "csc_int.h"

#define CSC_JSON_MAX_MEMBERS 64 /* members of one object; CSC objects have ~20 */

/*
 * yajl's tree parser accepts comments, lets "\u0000" cut a string short and
 * recurses without bound when freeing; one linear pass over the text rejects
 * all three before yajl sees it.
 */
static int prescan(const uint8_t *p, size_t len, unsigned max_depth)
{
    unsigned depth = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = p[i];
        if (in_str) {
            if (ch == '\\') {
                if (i + 1 >= len)
                    return -1;
                if (p[i + 1] == 'u' && i + 5 < len && memcmp(p + i + 2, "0000", 4) == 0)
                    return -1;
                i++;
            } else if (ch == '"') {
                in_str = 0;
            } else if (ch < 0x20) {
                return -1;
            }
            continue;
        }
        switch (ch) {
        case '"':
            in_str = 1;
            break;
        case '{':
        case '[':
            if (++depth > max_depth)
                return -2;
            break;
        case '}':
        case ']':
            if (depth == 0)
                return -1;
            depth--;
            break;
        case '/':
        case '\0':
            return -1;
        default:
            break;
        }
    }
    return in_str ? -1 : 0;
}

static int check_tree(yajl_val v)
{
    if (YAJL_IS_OBJECT(v)) {
        size_t n = v->u.object.len;
        if (n > CSC_JSON_MAX_MEMBERS)
            return -1;
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < i; j++)
                if (strcmp(v->u.object.keys[i], v->u.object.keys[j]) == 0)
                    return -1;
            if (check_tree(v->u.object.values[i]) != 0)
                return -1;
        }
    } else if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++)
            if (check_tree(v->u.array.values[i]) != 0)
                return -1;
    }
    return 0;
}

/*
 * The tree builder: yajl's callback parser with the wiping allocator (csc_wipe.c), so its decode buffer (every
 * string with an escape, e.g. a PIN sent as "\u0031...") and its lexer buffer are wiped when they grow and when
 * they are freed; yajl_tree_parse cannot be given an allocator. The nodes are the ones yajl_tree.h describes,
 * malloc'd the way yajl_tree_parse makes them, so yajl_tree_free and csc_json_free both free a tree from here.
 */
typedef struct tree_build {
    yajl_val root;
    yajl_val *stack;           /* open objects and arrays, innermost last */
    size_t depth, cap;
    char *key;                 /* an object's key waiting for its value */
} tree_build_t;

static yajl_val node_new(yajl_type t)
{
    yajl_val v = calloc(1, sizeof(*v));
    if (v != NULL)
        v->type = t;
    return v;
}

/* Attach v to the innermost open container (or make it the root); 0 on success, else v is freed. */
static int tree_add(tree_build_t *b, yajl_val v)
{
    if (v == NULL)
        return 0;
    if (b->depth == 0) {
        if (b->root != NULL) {
            yajl_tree_free(v);
            return 0;
        }
        b->root = v;
        return 1;
    }
    yajl_val top = b->stack[b->depth - 1];
    if (YAJL_IS_OBJECT(top)) {
        size_t n = top->u.object.len;
        const char **k = b->key != NULL ? realloc((void *)top->u.object.keys, (n + 1) * sizeof(*k)) : NULL;
        if (k != NULL)
            top->u.object.keys = k;
        yajl_val *vals = k != NULL ? realloc(top->u.object.values, (n + 1) * sizeof(*vals)) : NULL;
        if (vals == NULL) {
            csc_json_free(v);
            return 0;
        }
        top->u.object.values = vals;
        k[n] = b->key;
        vals[n] = v;
        b->key = NULL;
        top->u.object.len = n + 1;
        return 1;
    }
    size_t n = top->u.array.len;
    yajl_val *vals = realloc(top->u.array.values, (n + 1) * sizeof(*vals));
    if (vals == NULL) {
        csc_json_free(v);
        return 0;
    }
    top->u.array.values = vals;
    vals[n] = v;
    top->u.array.len = n + 1;
    return 1;
}

static int tb_null(void *ctx)
{
    return tree_add(ctx, node_new(yajl_t_null));
}

static int tb_bool(void *ctx, int b)
{
    return tree_add(ctx, node_new(b ? yajl_t_true : yajl_t_false));
}

static int tb_number(void *ctx, const char *s, size_t len)
{
    yajl_val v = node_new(yajl_t_number);
    if (v == NULL || (v->u.number.r = malloc(len + 1)) == NULL) {
        free(v);
        return 0;
    }
    memcpy(v->u.number.r, s, len);
    v->u.number.r[len] = '\0';
    char *end;
    errno = 0;
    v->u.number.i = strtoll(v->u.number.r, &end, 10);
    if (errno == 0 && *end == '\0')
        v->u.number.flags |= YAJL_NUMBER_INT_VALID;
    errno = 0;
    v->u.number.d = strtod(v->u.number.r, &end);
    if (errno == 0 && *end == '\0')
        v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
    return tree_add(ctx, v);
}

static int tb_string(void *ctx, const unsigned char *s, size_t len)
{
    yajl_val v = node_new(yajl_t_string);
    if (v == NULL || (v->u.string = malloc(len + 1)) == NULL) {
        free(v);
        return 0;
    }
    memcpy(v->u.string, s, len);
    v->u.string[len] = '\0';
    return tree_add(ctx, v);
}

static int tb_key(void *ctx, const unsigned char *s, size_t len)
{
    tree_build_t *b = ctx;
    if (b->key != NULL || (b->key = malloc(len + 1)) == NULL)
        return 0;
    memcpy(b->key, s, len);
    b->key[len] = '\0';
    return 1;
}

static int tb_open(tree_build_t *b, yajl_type t)
{
    yajl_val v = node_new(t);
    if (v == NULL)
        return 0;
    if (b->depth == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        yajl_val *st = realloc(b->stack, cap * sizeof(*st));
        if (st == NULL) {
            free(v);
            return 0;
        }
        b->stack = st;
        b->cap = cap;
    }
    if (!tree_add(b, v))
        return 0;
    b->stack[b->depth++] = v;
    return 1;
}

static int tb_start_map(void *ctx)
{
    return tb_open(ctx, yajl_t_object);
}

static int tb_start_array(void *ctx)
{
    return tb_open(ctx, yajl_t_array);
}

static int tb_close(void *ctx)
{
    tree_build_t *b = ctx;
    if (b->depth == 0)
        return 0;
    b->depth--;
    return 1;
}

static const yajl_callbacks tree_callbacks = {
    tb_null, tb_bool, NULL, NULL, tb_number, tb_string, tb_start_map, tb_key, tb_close, tb_start_array, tb_close,
};

/* text[len] is NUL (as yajl_tree_parse wants it, though the length is what counts here). NULL if not JSON. */
static yajl_val tree_parse(const char *text, size_t len)
{
    tree_build_t b;
    memset(&b, 0, sizeof(b));
    yajl_handle h = yajl_alloc(&tree_callbacks, &csc_wipe_yajl, &b);
    if (h == NULL)
        return NULL;
    int ok = yajl_parse(h, (const unsigned char *)text, len) == yajl_status_ok &&
             yajl_complete_parse(h) == yajl_status_ok && b.depth == 0 && b.root != NULL;
    yajl_free(h);
    free(b.stack);
    if (b.key != NULL) {
        OPENSSL_cleanse(b.key, strlen(b.key));
        free(b.key);
    }
    if (!ok) {
        csc_json_free(b.root);
        return NULL;
    }
    return b.root;
}

int csc_json_parse(csc_req_t *r, const uint8_t *body, size_t len)
{
    const csc_config_t *cfg = &r->csc->cfg;
    size_t i = 0;

    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len) {
        body = (const uint8_t *)"{}";
        len = 2;
    }
    if (len > cfg->max_body)
        return csc_fail(r, 413, "invalid_request", "Request body too large");
    int pre = prescan(body, len, cfg->max_depth);
    if (pre == -2)
        return csc_bad(r, "JSON nesting too deep");
    if (pre != 0)
        return csc_bad(r, "Malformed JSON body");

    char *copy = malloc(len + 1);
    if (copy == NULL)
        return csc_fail(r, 503, "temporarily_unavailable", "Out of memory");
    memcpy(copy, body, len);
    copy[len] = '\0';
    r->root = tree_parse(copy, len);
    OPENSSL_cleanse(copy, len); /* bodies carry PINs and OTPs */
    free(copy);
    if (r->root == NULL)
        return csc_bad(r, "Malformed JSON body");
    if (!YAJL_IS_OBJECT(r->root))
        return csc_bad(r, "The request body must be a JSON object");
    if (check_tree(r->root) != 0)
        return csc_bad(r, "Repeated parameter or too many members in a JSON object");
    return 0;
}

yajl_val csc_json_parse_text(const char *text, size_t len, unsigned max_depth)
{
    if (prescan((const uint8_t *)text, len, max_depth) != 0)
        return NULL;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, text, len);
    copy[len] = '\0';
    yajl_val v = tree_parse(copy, len);
    OPENSSL_cleanse(copy, len);
    free(copy);
    if (v != NULL && check_tree(v) != 0) {
        csc_json_free(v);
        v = NULL;
    }
    return v;
}

yajl_val csc_get_value(csc_req_t *r, const char *name)
{
    yajl_val o = r->root;
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < o->u.object.len; i++)
        if (strcmp(o->u.object.keys[i], name) == 0)
            return YAJL_IS_NULL(o->u.object.values[i]) ? NULL : o->u.object.values[i];
    return NULL;
}

int csc_get_string(csc_req_t *r, const char *name, const char **out, size_t max_len)
{
    *out = NULL;
    yajl_val v = csc_get_value(r, name);
    if (v == NULL)
        return 0;
    if (!YAJL_IS_STRING(v) || strlen(v->u.string) > max_len)
        return -1;
    *out = v->u.string;
    return 1;
}

int csc_req_string(csc_req_t *r, const char *name, const char **out, size_t max_len, const char *missing_desc)
{
    int rc = csc_get_string(r, name, out, max_len);
    if (rc <= 0 || **out == '\0') {
        *out = NULL;
        return csc_bad(r, missing_desc);
    }
    return 1;
}

int csc_get_bool(csc_req_t *r, const char *name, bool *out)
{
    yajl_val v = csc_get_value(r, name);
    if (v == NULL)
        return 0;
    if (YAJL_IS_TRUE(v)) {
        *out = true;
        return 1;
    }
    if (YAJL_IS_FALSE(v)) {
        *out = false;
        return 1;
    }
    /* Some clients send "true"/"false" as strings. */
    if (YAJL_IS_STRING(v) && strcmp(v->u.string, "true") == 0) {
        *out = true;
        return 1;
    }
    if (YAJL_IS_STRING(v) && strcmp(v->u.string, "false") == 0) {
        *out = false;
        return 1;
    }
    return -1;
}

int csc_get_uint(csc_req_t *r, const char *name, unsigned long *out)
{
    yajl_val v = csc_get_value(r, name);
    const char *s;
    if (v == NULL)
        return 0;
    if (YAJL_IS_NUMBER(v))
        s = YAJL_GET_NUMBER(v); /* raw text; big numbers are not YAJL_IS_INTEGER */
    else if (YAJL_IS_STRING(v))
        s = v->u.string; /* numbers sent as strings: accepted (docs/csc-api.md sec. 17) */
    else
        return -1;
    if (s == NULL || *s < '0' || *s > '9' || strlen(s) > 9)
        return -1;
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = n;
    return 1;
}

/* ---- generation ---------------------------------------------------------------- */

yajl_gen csc_gen_new(void)
{
    yajl_gen g = yajl_gen_alloc(&csc_wipe_yajl); /* its buffer grows by copy-and-wipe, and is wiped when freed */
    if (g == NULL)
        abort();
    yajl_gen_config(g, yajl_gen_beautify, 0);
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    return g;
}

void csc_gen_strn(yajl_gen g, const char *s, size_t n)
{
    yajl_gen_string(g, (const unsigned char *)s, n);
}

void csc_gen_str(yajl_gen g, const char *s)
{
    csc_gen_strn(g, s, strlen(s));
}

void csc_gen_kv(yajl_gen g, const char *k, const char *v)
{
    csc_gen_str(g, k);
    csc_gen_str(g, v);
}

void csc_gen_kint(yajl_gen g, const char *k, long long v)
{
    csc_gen_str(g, k);
    yajl_gen_integer(g, v);
}

void csc_gen_kbool(yajl_gen g, const char *k, bool v)
{
    csc_gen_str(g, k);
    yajl_gen_bool(g, v);
}

void csc_gen_b64(yajl_gen g, const uint8_t *data, size_t len)
{
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char stackbuf[1400];
    char *buf = cap <= sizeof(stackbuf) ? stackbuf : malloc(cap);
    if (buf == NULL)
        abort();
    size_t n = csc_b64_encode(data, len, buf);
    csc_gen_strn(g, buf, n);
    if (buf != stackbuf)
        free(buf);
}

/* Request bodies carry PINs and OTPs: wipe every string before freeing the tree. */
static void wipe_strings(yajl_val v)
{
    if (v == NULL)
        return;
    if (YAJL_IS_STRING(v)) {
        OPENSSL_cleanse(v->u.string, strlen(v->u.string));
    } else if (YAJL_IS_NUMBER(v)) {
        if (v->u.number.r != NULL) /* an OTP or a PIN may come as a number */
            OPENSSL_cleanse(v->u.number.r, strlen(v->u.number.r));
    } else if (YAJL_IS_OBJECT(v)) {
        for (size_t i = 0; i < v->u.object.len; i++)
            wipe_strings(v->u.object.values[i]);
    } else if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++)
            wipe_strings(v->u.array.values[i]);
    }
}

void csc_json_free(yajl_val root)
{
    if (root == NULL)
        return;
    wipe_strings(root);
    yajl_tree_free(root);
}

void csc_json_gen_value(yajl_gen g, yajl_val v)
{
    if (YAJL_IS_STRING(v)) {
        csc_gen_str(g, v->u.string);
    } else if (YAJL_IS_NUMBER(v)) {
        const char *n = YAJL_GET_NUMBER(v);
        yajl_gen_number(g, n, strlen(n));
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        yajl_gen_bool(g, YAJL_IS_TRUE(v));
    } else if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            csc_gen_str(g, v->u.object.keys[i]);
            csc_json_gen_value(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            csc_json_gen_value(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
    } else {
        yajl_gen_null(g);
    }
}
