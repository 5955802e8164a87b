"""csc-admin in Japanese (gettext, po/ja.po): --help and failing commands in Japanese with LANG=ja_JP.UTF-8, in English
with LANG=C, with a language that has no catalogue, and with CSC_LOCALEDIR naming a folder without one; a translation
that reorders its arguments (%2$s) puts them where it says; the catalogues pass msgfmt --check with nothing fuzzy or
untranslated and translate every string the sources mark now (scripts/po-update --check). No service is started: the
commands used fail before they need one, or need only an LMDB folder."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
ADMIN = os.path.join(BUILD, "server", "csc-admin")
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")  # kana and kanji

# What every csc-admin configuration needs; the db commands use only storage.
CONF = """environment = test
listen = 127.0.0.1:1
plain_http = yes
node_id = test-admin-i18n
pkcs11_module = /nonexistent
pkcs11_token = none
pkcs11_pin_file = /nonexistent
storage = lmdb:%s
"""


def run(lang, *args, localedir=None):
    """csc-admin with LANG=lang and no other locale variable (LC_ALL or LANGUAGE of the caller would win)."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("LC_") or k in ("LANG", "LANGUAGE"))}
    env["LANG"] = lang
    env.pop("CSC_LOCALEDIR", None)
    if localedir is not None:
        env["CSC_LOCALEDIR"] = localedir
    env.pop("CSC_ADMIN_SESSION", None)
    env.pop("CSC_ADMIN_SESSION_FILE", None)
    return subprocess.run([ADMIN] + list(args), capture_output=True, env=env, timeout=60)


class TestAdminI18n(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        locales = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.split()
        if not any(l.lower() in ("ja_jp.utf8", "ja_jp.utf-8") for l in locales):
            raise AssertionError("the locale ja_JP.UTF-8 is not installed: sudo ./scripts/deps generates it")
        cls.tmp = tempfile.mkdtemp(prefix="csc-i18n-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.conf = os.path.join(cls.tmp, "admin.conf")
        with open(cls.conf, "w") as f:
            f.write(CONF % os.path.join(cls.tmp, "db"))

    def text(self, r):
        return r.stdout.decode("utf-8"), r.stderr.decode("utf-8")

    def test_help_japanese_and_english(self):
        out, _ = self.text(run("ja_JP.UTF-8", "--help"))
        self.assertTrue(out.startswith("使い方: csc-admin -c CONFIG COMMAND ...\n"), out[:200])
        self.assertIn("コマンド:\n", out)
        self.assertIn("  init                                   データベースを作り、HSM のトークンを確かめる\n", out)
        # Command syntax, option names and technical terms stay as they are.
        self.assertIn("db migrate [--db BACKEND:LOCATION]", out)
        self.assertIn('[--auth "PIN AND OTP"|PIN|OTP|"PIN OR OTP"|CHALLENGE|"PIN AND CHALLENGE"|', out)
        self.assertNotIn("usage:", out)
        out, _ = self.text(run("C", "--help"))
        self.assertTrue(out.startswith("usage: csc-admin -c CONFIG COMMAND ...\n"), out[:200])
        self.assertIsNone(JAPANESE.search(out))

    def test_failing_commands_japanese_and_english(self):
        r = run("ja_JP.UTF-8", "--operator", "alice")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(self.text(r)[1],
                         "csc-admin: --operator はなくなりました: 運用者はサインインしている者です(csc-admin login)\n")
        r = run("C", "--operator", "alice")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(self.text(r)[1],
                         "csc-admin: --operator is gone: the operator is the one logged in (csc-admin login)\n")

        r = run("ja_JP.UTF-8", "-c", self.conf, "db", "copy")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(self.text(r)[1], "csc-admin: db copy: --from BACKEND:LOCATION が必要です\n")
        r = run("C", "-c", self.conf, "db", "copy")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(self.text(r)[1], "csc-admin: db copy: --from BACKEND:LOCATION is required\n")

    def test_reordered_arguments(self):
        # The Japanese sentence takes its four arguments in their own order (%1$s ... %4$s).
        r = run("ja_JP.UTF-8", "-c", self.conf, "db", "init", "--db", "nowhere")
        self.assertEqual(r.returncode, 2)
        err = self.text(r)[1]
        self.assertRegex(err, r"^csc-admin: db init: --db: BACKEND:LOCATION\(バックエンド: [a-z, ]+\)のはずが「nowhere」です\n$")
        r = run("C", "-c", self.conf, "db", "init", "--db", "nowhere")
        self.assertRegex(self.text(r)[1], r'^csc-admin: db init: --db: expected BACKEND:LOCATION '
                                          r'\(backends: [a-z, ]+\), got "nowhere"\n$')

    def test_restore_refusals_japanese(self):
        # db restore needs no session: a file that is not a backup (the sentence names its two arguments %1$s, %2$s),
        # and a destination that is not empty (a translated fragment inside the message).
        junk = os.path.join(self.tmp, "junk.backup")
        with open(junk, "w") as f:
            f.write("not a backup\n")
        where = os.path.join(self.tmp, "restore-new")
        r = run("ja_JP.UTF-8", "-c", self.conf, "db", "restore", junk, "--db", "lmdb:" + where)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(self.text(r)[1], "csc-admin: db restore: %s は csc-admin db backup のバックアップではありません"
                                          "(先頭に CSCDBBK1 がありません)\n" % junk)
        r = run("C", "-c", self.conf, "db", "restore", junk, "--db", "lmdb:" + where)
        self.assertEqual(self.text(r)[1], "csc-admin: db restore: %s is not a backup of csc-admin db backup (no "
                                          "CSCDBBK1 at its start)\n" % junk)
        full = os.path.join(self.tmp, "restore-full")
        os.makedirs(full, exist_ok=True)
        open(os.path.join(full, "keep"), "w").close()
        r = run("ja_JP.UTF-8", "-c", self.conf, "db", "restore", junk, "--db", "lmdb:" + full)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(self.text(r)[1], "csc-admin: db restore: %s は空ではありません: リストア先は新しいか空の"
                                          "フォルダに限ります\n" % full)

    def test_success_message_japanese(self):
        where = os.path.join(self.tmp, "lmdb-new")
        r = run("ja_JP.UTF-8", "-c", self.conf, "db", "init", "--db", "lmdb:" + where)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.text(r)[0], "lmdb:%s: スキーマの版 1(LMDB に移行はありません: 環境を開くと作成するか"
                                          "確かめます)\n" % where)

    def test_english_fallback(self):
        # A language without a catalogue (whether or not its locale is installed), and CSC_LOCALEDIR naming a folder
        # that holds no catalogue: English.
        out, _ = self.text(run("fr_FR.UTF-8", "--help"))
        self.assertTrue(out.startswith("usage: csc-admin"), out[:100])
        empty = os.path.join(self.tmp, "no-catalogues")
        os.makedirs(empty, exist_ok=True)
        out, _ = self.text(run("ja_JP.UTF-8", "--help", localedir=empty))
        self.assertTrue(out.startswith("usage: csc-admin"), out[:100])
        # CSC_LOCALEDIR naming the build's own catalogues: Japanese again.
        out, _ = self.text(run("ja_JP.UTF-8", "--help", localedir=os.path.join(BUILD, "locale")))
        self.assertTrue(out.startswith("使い方:"), out[:100])

    def test_catalogues_complete_and_checked(self):
        self.assertTrue(os.path.isfile(os.path.join(BUILD, "locale", "ja", "LC_MESSAGES", "csc-admin.mo")))
        r = subprocess.run([os.path.join(H.ROOT, "scripts", "po-update"), "--check"], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
