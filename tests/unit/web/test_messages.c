/* The pages' message catalogues (csc-api/web/messages/<lang>.txt, as compiled in) and the language of a request
 * (csc-api/web/web_msg.c). ctest: unit_web_messages. */
#include <check.h>
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web.h"

typedef struct cat {
    char *text;
    web_msg_entry_t *e;
    size_t n;
} cat_t;

static void load(int lang, cat_t *c)
{
    char err[200] = "";
    c->text = strdup(web_catalogue_text(lang));
    ck_assert_ptr_nonnull(c->text);
    ck_assert_msg(web_msg_parse(c->text, &c->e, &c->n, err, sizeof(err)) == 0, "%s.txt: %s", web_lang_code(lang), err);
    ck_assert_uint_gt(c->n, 100);
}

static void unload(cat_t *c)
{
    free(c->e);
    free(c->text);
}

static const char *find(const cat_t *c, const char *key)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].key, key) == 0)
            return c->e[i].text;
    return NULL;
}

/* The format refuses what a catalogue must not hold (the check can fail). */
START_TEST(t_format)
{
    char err[200];
    web_msg_entry_t *e;
    size_t n;
    char ok[] = "# comment\n\na.b = x\nc_d = y %s\n", empty[] = "a.b = \n", nokey[] = "= x\n", twice[] = "a = x\na = y\n";
    char upper[] = "A.b = x\n";
    ck_assert_int_eq(web_msg_parse(ok, &e, &n, err, sizeof(err)), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(e[0].key, "a.b");
    ck_assert_str_eq(e[1].text, "y %s");
    free(e);
    ck_assert_int_eq(web_msg_parse(empty, &e, &n, err, sizeof(err)), -1);
    ck_assert_int_eq(web_msg_parse(nokey, &e, &n, err, sizeof(err)), -1);
    ck_assert_int_eq(web_msg_parse(twice, &e, &n, err, sizeof(err)), -1);
    ck_assert_int_eq(web_msg_parse(upper, &e, &n, err, sizeof(err)), -1);
    char t[WEB_MSG_ARGS_MAX];
    ck_assert_int_eq(web_msg_placeholders("%2$s %1$u", t, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(t[0], 'u');
    ck_assert_int_eq(t[1], 's');
    ck_assert_int_eq(web_msg_placeholders("%d", t, &n), -1);        /* not ours */
    ck_assert_int_eq(web_msg_placeholders("%2$s", t, &n), -1);      /* a gap */
    ck_assert_int_eq(web_msg_placeholders("%1$s %s", t, &n), -1);   /* mixed */
    ck_assert_int_eq(web_msg_placeholders("100%% %s", t, &n), 0);
    ck_assert_uint_eq(n, 1);
}
END_TEST

/* Both catalogues: the same keys, no empty text, the same placeholders (type per argument) for each key. */
START_TEST(t_same_keys_and_placeholders)
{
    cat_t en, ja;
    load(WEB_LANG_EN, &en);
    load(WEB_LANG_JA, &ja);
    for (size_t i = 0; i < en.n; i++)
        ck_assert_msg(find(&ja, en.e[i].key) != NULL, "ja.txt lacks %s", en.e[i].key);
    for (size_t i = 0; i < ja.n; i++)
        ck_assert_msg(find(&en, ja.e[i].key) != NULL, "en.txt lacks %s (ja.txt has it)", ja.e[i].key);
    ck_assert_uint_eq(en.n, ja.n);
    for (size_t i = 0; i < en.n; i++) {
        const char *j = find(&ja, en.e[i].key);
        char te[WEB_MSG_ARGS_MAX], tj[WEB_MSG_ARGS_MAX];
        size_t ne, nj;
        ck_assert_msg(en.e[i].text[0] != '\0' && j[0] != '\0', "%s: empty text", en.e[i].key);
        ck_assert_msg(web_msg_placeholders(en.e[i].text, te, &ne) == 0, "en %s: bad placeholders", en.e[i].key);
        ck_assert_msg(web_msg_placeholders(j, tj, &nj) == 0, "ja %s: bad placeholders", en.e[i].key);
        ck_assert_msg(ne == nj && memcmp(te, tj, ne) == 0, "%s: the placeholders differ (en \"%s\", ja \"%s\")",
                      en.e[i].key, en.e[i].text, j);
        /* a Japanese text is Japanese: some byte outside ASCII (a key left in English is a forgotten one) */
        int non_ascii = 0;
        for (const char *p = j; *p; p++)
            non_ascii |= (unsigned char)*p >= 0x80;
        ck_assert_msg(non_ascii || strcmp(j, en.e[i].text) != 0, "ja %s is the English text", en.e[i].key);
    }
    unload(&en);
    unload(&ja);
}
END_TEST

/* Every key the pages' sources name is in the catalogue, and every key of the catalogue is used: a string literal of
 * csc-api/web/ (its .c files) that looks like a key ("group.name" of a group the catalogue has). */
START_TEST(t_keys_used)
{
    cat_t en;
    load(WEB_LANG_EN, &en);
    char *used = calloc(en.n, 1);
    DIR *d = opendir(WEB_SRC_DIR);
    struct dirent *de;
    regex_t re;
    unsigned seen = 0;
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(regcomp(&re, "\"([a-z]+)\\.([a-z0-9_]+)\"", REG_EXTENDED), 0);
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 3 || strcmp(de->d_name + l - 2, ".c") != 0)
            continue;
        char path[512], *src;
        snprintf(path, sizeof(path), "%s/%s", WEB_SRC_DIR, de->d_name);
        FILE *fp = fopen(path, "r");
        ck_assert_ptr_nonnull(fp);
        src = calloc(1, 1 << 20);
        size_t got = fread(src, 1, (1 << 20) - 1, fp);
        fclose(fp);
        src[got] = '\0';
        regmatch_t m[3];
        for (const char *p = src; regexec(&re, p, 3, m, 0) == 0; p += m[0].rm_eo) {
            char key[128], group[64];
            int len = (int)(m[0].rm_eo - m[0].rm_so - 2);
            if (len <= 0 || len >= (int)sizeof(key))
                continue;
            snprintf(key, sizeof(key), "%.*s", len, p + m[0].rm_so + 1);
            snprintf(group, sizeof(group), "%.*s.", (int)(m[1].rm_eo - m[1].rm_so), p + m[1].rm_so);
            int group_known = 0;
            for (size_t i = 0; i < en.n; i++) {
                group_known |= strncmp(en.e[i].key, group, strlen(group)) == 0;
                if (strcmp(en.e[i].key, key) == 0)
                    used[i] = 1;
            }
            if (!group_known)
                continue; /* "web.h", a file name, ... */
            ck_assert_msg(find(&en, key) != NULL, "%s names %s, which en.txt lacks", de->d_name, key);
            seen++;
        }
        free(src);
    }
    closedir(d);
    regfree(&re);
    ck_assert_uint_gt(seen, 100);
    for (size_t i = 0; i < en.n; i++)
        ck_assert_msg(used[i], "en.txt: %s is used by no page", en.e[i].key);
    free(used);
    unload(&en);
}
END_TEST

/* Messages into a page: the text and the arguments escaped, positional arguments, numbers. */
START_TEST(t_say)
{
    web_buf_t b;
    web_buf_init(&b, 4096);
    web_buf_say(&b, "<%s> & %u%% it's", "a\"b<'", 7u);
    ck_assert_str_eq(b.p, "&lt;a&quot;b&lt;&#39;&gt; &amp; 7% it's");
    web_buf_free(&b);
    web_buf_init(&b, 4096);
    web_buf_say_html(&b, "%2$s \xe3\x81\xae %1$u <", 3u, "<strong>x</strong>");
    ck_assert_str_eq(b.p, "<strong>x</strong> \xe3\x81\xae 3 &lt;");
    web_buf_free(&b);
    char *s = web_say_dup("%s & <%u>", "<i>", 2u);
    ck_assert_str_eq(s, "<i> & <2>");
    free(s);
    web_buf_init(&b, 4096);
    uint8_t d[6] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02};
    web_buf_hex_groups(&b, d, sizeof(d));
    ck_assert_str_eq(b.p, "dead beef 0102");
    web_buf_free(&b);
    /* a catalogue's text in each language, and a key no catalogue has shown as itself */
    ck_assert_str_eq(web_msg(WEB_LANG_EN, "common.sign_in"), "Sign in");
    ck_assert_str_eq(web_msg(WEB_LANG_JA, "common.sign_in"), "\xe3\x82\xb5\xe3\x82\xa4\xe3\x83\xb3\xe3\x82\xa4\xe3\x83\xb3");
    ck_assert_str_eq(web_msg(WEB_LANG_JA, "no.such_key"), "no.such_key");
}
END_TEST

static int pick(const char *dflt, const char *query, const char *cookie, const char *accept, int *chosen)
{
    csc_t *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    c->cfg.default_lang = dflt;
    csc_call_t call = {.query = query, .query_len = query != NULL ? strlen(query) : 0, .cookie = cookie,
                       .cookie_len = cookie != NULL ? strlen(cookie) : 0, .accept_language = accept,
                       .accept_language_len = accept != NULL ? strlen(accept) : 0};
    int l = web_lang_pick(c, &call, chosen);
    free(c);
    return l;
}

/* ?lang= (the switch), then the cookie, then Accept-Language with its q-values, then default_lang. */
START_TEST(t_lang_pick)
{
    int ch;
    ck_assert_int_eq(pick(NULL, NULL, NULL, NULL, &ch), WEB_LANG_EN);
    ck_assert_int_eq(pick("ja", NULL, NULL, NULL, &ch), WEB_LANG_JA);
    ck_assert_int_eq(pick("en", NULL, NULL, "ja", &ch), WEB_LANG_JA);
    ck_assert_int_eq(pick("en", NULL, NULL, "ja-JP,ja;q=0.9,en;q=0.8", &ch), WEB_LANG_JA);
    ck_assert_int_eq(pick("ja", NULL, NULL, "en-US,en;q=0.9,ja;q=0.8", &ch), WEB_LANG_EN);
    ck_assert_int_eq(pick("en", NULL, NULL, "fr, ja;q=0.5, en;q=0.4", &ch), WEB_LANG_JA);
    ck_assert_int_eq(pick("en", NULL, NULL, "en;q=0.3, JA-jp;q=0.7", &ch), WEB_LANG_JA);
    ck_assert_int_eq(pick("en", NULL, NULL, "ja;q=0, en;q=0.1", &ch), WEB_LANG_EN);   /* q=0: not this one */
    ck_assert_int_eq(pick("ja", NULL, NULL, "ja;q=0", &ch), WEB_LANG_JA);           /* nothing usable: default */
    ck_assert_int_eq(pick("ja", NULL, NULL, "fr, de", &ch), WEB_LANG_JA);
    ck_assert_int_eq(pick("en", NULL, NULL, "java", &ch), WEB_LANG_EN);             /* not a "ja" tag */
    ck_assert_int_eq(pick("ja", NULL, NULL, "fr, *;q=0.5", &ch), WEB_LANG_JA);      /* any: the default */
    /* the cookie overrides Accept-Language; ?lang= overrides both and is a choice to remember */
    ck_assert_int_eq(pick("en", NULL, "a=b; lang=en", "ja", &ch), WEB_LANG_EN);
    ck_assert_int_eq(ch, 0);
    ck_assert_int_eq(pick("en", NULL, "lang=ja", "en", &ch), WEB_LANG_JA);
    ck_assert_int_eq(pick("en", NULL, "lang=xx", "ja", &ch), WEB_LANG_JA);          /* a bad cookie is ignored */
    ck_assert_int_eq(pick("en", "x=1&lang=ja", "lang=en", "en", &ch), WEB_LANG_JA);
    ck_assert_int_eq(ch, 1);
    ck_assert_int_eq(pick("ja", "lang=en-US", NULL, NULL, &ch), WEB_LANG_EN);
    ck_assert_int_eq(ch, 1);
    ck_assert_int_eq(pick("ja", "lang=", NULL, NULL, &ch), WEB_LANG_JA);
    ck_assert_int_eq(ch, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("web_messages");
    TCase *tc = tcase_create("catalogues");
    tcase_add_test(tc, t_format);
    tcase_add_test(tc, t_same_keys_and_placeholders);
    tcase_add_test(tc, t_keys_used);
    tcase_add_test(tc, t_say);
    tcase_add_test(tc, t_lang_pick);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
