/* Unit tests of srv_log.c: the journal's level prefixes, only when stderr is the stream JOURNAL_STREAM names. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "srv.h"
#include "test_srv.h"

START_TEST(t_levels)
{
    static const struct {
        const char *line;
        int level;
    } cases[] = {
        {"csc-server: test environment, listening on https://127.0.0.1:8443 (1 loops)", 6},
        {"csc-server: SIGHUP: reloading /etc/csc/csc-server.conf", 6},
        {"csc-sam: reloaded: trust anchors and the CRLs of /etc/csc/crl", 6},
        {"csc-server: SIGTERM, shutting down", 6},
        {"csc-server: reload refused: listen cannot change while csc-server runs", 3},
        {"WARNING: production environment with test components allowed (allow_test_components = yes)", 4},
        {"csc-sam: WARNING: memory not locked (environment = test; production refuses to start)", 4},
        {"access_log /var/log/csc/access.log: Permission denied", 3},
        {"", 3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(srv_log_level(cases[i].line, strlen(cases[i].line)) == cases[i].level, "case %zu: %s", i,
                      cases[i].line);
}
END_TEST

/* In a child whose stderr is file: JOURNAL_STREAM set to js (NULL: unset, "self": stderr's own device and inode),
 * srv_log_journal, then a few messages; its result is the child's exit status. The file's text into out. */
static int run_child(const char *js, char *out, size_t sz)
{
    char path[] = "/tmp/test_srv_log.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd, STDERR_FILENO);
        struct stat st;
        char self[64];
        fstat(STDERR_FILENO, &st);
        snprintf(self, sizeof(self), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
        if (js == NULL)
            unsetenv("JOURNAL_STREAM");
        else
            setenv("JOURNAL_STREAM", strcmp(js, "self") == 0 ? self : js, 1);
        int rc = srv_log_journal();
        fprintf(stderr, "csc-server: %s environment, listening on %s\n", "test", "https://127.0.0.1:1");
        fprintf(stderr, "WARNING: careful\ncsc-server: cannot ");
        fprintf(stderr, "start the worker threads\n");
        fputs("last words", stderr);
        exit(rc + 1); /* exit, not _exit: the last line, without its newline, is written at exit */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ssize_t n = pread(fd, out, sz - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return WEXITSTATUS(status) - 1;
}

START_TEST(t_journal_stream)
{
    char out[1024];
    ck_assert_int_eq(run_child("self", out, sizeof(out)), 1);
    ck_assert_str_eq(out, "<6>csc-server: test environment, listening on https://127.0.0.1:1\n"
                          "<4>WARNING: careful\n"
                          "<3>csc-server: cannot start the worker threads\n"
                          "<3>last words\n");
    /* not the journal's stream, unset, malformed: stderr as it was */
    static const char *const others[] = {"1:2", NULL, "junk", "1:2:3"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        ck_assert_int_eq(run_child(others[i], out, sizeof(out)), 0);
        ck_assert_str_eq(out, "csc-server: test environment, listening on https://127.0.0.1:1\n"
                              "WARNING: careful\ncsc-server: cannot start the worker threads\nlast words");
    }
}
END_TEST

TCase *srv_log_tcase(void)
{
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, t_levels);
    tcase_add_test(tc, t_journal_stream);
    return tc;
}
