/* srv_i18n.c - csc-admin's message catalogues: the locale and the folder they are read from (srv_i18n.h). */
#include <limits.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "srv_i18n.h"
#include "srv_self.h"

/* The program's own path starts with the build tree (CSC_BUILD_DIR): it runs before `make install`. */
static int in_build_tree(void)
{
    char self[PATH_MAX];
    size_t n = strlen(CSC_BUILD_DIR);
    if (srv_self_path(self, sizeof(self)) < 0)
        return 0;
    return strncmp(self, CSC_BUILD_DIR, n) == 0 && self[n] == '/';
}

void srv_i18n_init(const char *domain)
{
    const char *dir = getenv("CSC_LOCALEDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = in_build_tree() ? CSC_BUILD_DIR "/locale" : CSC_LOCALEDIR;
    /* Only the message language and the character set (gettext converts the catalogue to the terminal's): numbers,
     * times and collation stay C, so what csc-admin prints and parses (amounts, ISO-8601 times, sorting) does not
     * change with the operator's locale. */
    setlocale(LC_CTYPE, "");
    setlocale(LC_MESSAGES, "");
    bindtextdomain(domain, dir);
    textdomain(domain);
}
