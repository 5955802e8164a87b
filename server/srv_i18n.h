/* srv_i18n.h - csc-admin's help and messages in the operator's language (gettext; one catalogue per language,
 * po/LANG.po).
 *
 * _("...") translates at the point of use; N_("...") only marks a string for xgettext (a table's text, translated
 * where it is printed). What programs parse stays untranslated: the key=value and "name value" lines (client_id,
 * totp_secret, enrollment_code, approval_required), the audit records, and the API's error descriptions. Messages
 * that come from the libraries (storage, admin/, csc-sam's refusals) are English: they are also logged and audited. */
#ifndef SRV_I18N_H
#define SRV_I18N_H

#include <libintl.h>

#define _(s) gettext(s)
#define N_(s) (s)

/* Bind the text domain (csc-admin) to its catalogues, in the language of the environment's LANG, LC_ALL, LC_MESSAGES
 * or LANGUAGE; with no catalogue for the language, or the locale not installed, the messages stay English. The
 * catalogues are looked for in $CSC_LOCALEDIR if set (tests), else in the build tree's locale/ when the program runs
 * from its build tree, else in the installed CSC_LOCALEDIR (/usr/share/locale). Call it first in main. */
void srv_i18n_init(const char *domain);

#endif
