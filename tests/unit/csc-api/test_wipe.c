/* Unit test of the wiped heap (csc_wipe.c) and of what uses it: web_buf, yajl generators from csc_gen_new and the
 * request parser (csc_json_parse_text, csc_json_free).
 *
 * This program replaces free() and realloc() for the whole process (libyajl's own calls included) with versions
 * that look into every block handed back to the C library: a block that still holds the secret is counted as a
 * leak (a realloc of such a block counts too: the C library may leave the old copy behind). What this proves: none
 * of these paths returns memory holding the secret unwiped. What it cannot prove: that other code paths do the
 * same, or that a copy did not exist for a while. Sanitizer builds own free() themselves: there the test says so
 * and checks nothing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include "csc_int.h"
#include "web/web.h"

#if defined(__SANITIZE_ADDRESS__)
#define NO_HOOKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_HOOKS 1
#endif
#endif

static const char SECRET[] = "7305918264730591826473059182"; /* a 28-digit PIN */
static volatile int watching, leaks;

#ifndef NO_HOOKS
extern void __libc_free(void *p);
extern void *__libc_realloc(void *p, size_t n);

static void look(void *p)
{
    if (watching && p != NULL && memmem(p, malloc_usable_size(p), SECRET + 4, sizeof(SECRET) - 5) != NULL)
        leaks++;
}

void free(void *p)
{
    look(p);
    __libc_free(p);
}

void *realloc(void *p, size_t n)
{
    look(p);
    return __libc_realloc(p, n);
}
#endif

static void start(void)
{
#ifdef NO_HOOKS
    fprintf(stderr, "test_wipe: sanitizer build, free() cannot be watched: nothing checked\n");
#endif
    leaks = 0;
    watching = 1;
}

static int stop(void)
{
    watching = 0;
    return leaks;
}

START_TEST(t_wipe_alloc)
{
    start();
    char *p = csc_wipe_malloc(sizeof(SECRET));
    memcpy(p, SECRET, sizeof(SECRET));
    p = csc_wipe_realloc(p, 100000); /* moved: the old block is wiped before it is freed */
    ck_assert_str_eq(p, SECRET);
    csc_wipe_free(p);
    ck_assert_int_eq(stop(), 0);
    /* the watcher sees a plain free of the same data (so the zero above means something) */
    start();
    p = malloc(sizeof(SECRET));
    memcpy(p, SECRET, sizeof(SECRET));
    free(p);
#ifndef NO_HOOKS
    ck_assert_int_eq(stop(), 1);
#else
    stop();
#endif
}
END_TEST

START_TEST(t_wipe_buf)
{
    start();
    web_buf_t b;
    web_buf_init(&b, 1 << 20);
    web_buf_printf(&b, "<input name=\"pin\" value=\"%s\">", SECRET);
    for (int i = 0; i < 2000; i++) /* grows 1 KiB -> 64 KiB: every old block goes back to the C library */
        web_buf_puts(&b, "some page text ");
    ck_assert(!b.failed);
    ck_assert_ptr_nonnull(strstr(b.p, SECRET));
    web_buf_free(&b);
    ck_assert_int_eq(stop(), 0);
}
END_TEST

START_TEST(t_wipe_gen)
{
    start();
    yajl_gen g = csc_gen_new();
    yajl_gen_map_open(g);
    csc_gen_kv(g, "SAD", SECRET);
    char filler[64];
    for (int i = 0; i < 1000; i++) { /* the generator's buffer grows from 2 KiB */
        snprintf(filler, sizeof(filler), "k%d", i);
        csc_gen_kv(g, filler, "a value to make the buffer grow");
    }
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    ck_assert_int_eq(yajl_gen_get_buf(g, &buf, &len), yajl_gen_status_ok);
    ck_assert_ptr_nonnull(memmem(buf, len, SECRET, strlen(SECRET)));
    yajl_gen_clear(g);
    yajl_gen_free(g);
    ck_assert_int_eq(stop(), 0);
}
END_TEST

START_TEST(t_wipe_parse)
{
    /* every digit escaped: yajl decodes the string in its own buffer before the tree gets it */
    char text[512];
    size_t n = (size_t)snprintf(text, sizeof(text), "{\"clientData\":\"");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "\\u%04x", 'a' + i % 26);
    n += (size_t)snprintf(text + n, sizeof(text) - n, "\",\"PIN\":\"");
    for (const char *c = SECRET; *c; c++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "\\u%04x", *c);
    n += (size_t)snprintf(text + n, sizeof(text) - n, "\",\"OTP\":%s}", SECRET + 18);
    start();
    yajl_val v = csc_json_parse_text(text, n, 8);
    ck_assert_ptr_nonnull(v);
    const char *path[] = {"PIN", NULL};
    yajl_val pin = yajl_tree_get(v, path, yajl_t_string);
    ck_assert_ptr_nonnull(pin);
    ck_assert_str_eq(pin->u.string, SECRET);
    csc_json_free(v);
    ck_assert_int_eq(stop(), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("csc-wipe");
    TCase *tc = tcase_create("wipe");
    tcase_add_test(tc, t_wipe_alloc);
    tcase_add_test(tc, t_wipe_buf);
    tcase_add_test(tc, t_wipe_gen);
    tcase_add_test(tc, t_wipe_parse);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
