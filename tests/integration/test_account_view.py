"""/account (issue 12, J8): per credential whether its key can be backed up, whether a backup exists and when, the
conditions of a restore, the user's restore request (its reference is what csc-admin credential restore needs, once),
the user's restore requests, the last sign-ins and the last signatures of each credential."""
import html
import os
import re
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SVC = None
PIN = "13572468"


def setUpModule():
    global SVC
    SVC = H.Service(BUILD, extra_config="key_backup = wrapped\n")
    r = SVC.admin("backup", "init", "--so-pin-file", SVC.env["CSC_SO_PIN_FILE"], check=False)
    assert r.returncode == 0, r.stderr
    SVC.start()


def tearDownModule():
    SVC.stop_checked()


def user():
    return SVC.env["CSC_USER"]


def create(cred):
    SVC.create_credential("--user", user(), "--id", cred, "--key", "p256", "--auth", "PIN", "--scal", "1",
                          "--multisign", "4", pin=PIN)


def page():
    b = SVC.account(user())
    if 'id="user"' not in b.text:
        b = SVC.account(user(), fresh=True)
    return b


def row(text, kind, key):
    """The cells (class -> text) of the row <tr class="kind" id="kind-key">."""
    m = re.search(r'<tr class="%s" id="%s-%s">(.*?)</tr>' % (kind, kind, re.escape(key)), text, re.S)
    if m is None:
        return None
    cells = dict(re.findall(r'<td class="([a-z]+)">(.*?)</td>', m.group(1), re.S))
    cells["form"] = 'value="restore"' in m.group(1)
    return {k: html.unescape(v) if isinstance(v, str) else v for k, v in cells.items()}


def rows(text, table):
    m = re.search(r'<table id="%s">(.*?)</table>' % table, text, re.S)
    assert m, text[:3000]
    return [dict(re.findall(r'<td class="([a-z]+)">(.*?)</td>', r, re.S))
            for r in re.findall(r"<tr class=\"[a-z]+\">(.*?)</tr>", m.group(1), re.S)]


def ask(cred):
    b = page()
    b.post({"action": "restore", "cred": cred})
    assert b.last.status == 200, b.text[:2000]
    return b


class TestBackupsAndRestore(unittest.TestCase):
    def test_backup_shown_request_once_restore_once(self):
        create("av-ec")
        b = page()
        r = row(b.text, "backup", "av-ec")
        self.assertEqual(r["backupable"], "yes (wrapped in the HSM)")
        self.assertEqual(r["backups"], "none")
        self.assertIn("No backup of this key exists yet", r["conditions"])
        self.assertFalse(r["form"])
        b = ask("av-ec")  # a forged form for a key without a backup: csc-sam refuses
        self.assertEqual(b.error(), "No backup of that key exists: nothing can be restored.")
        path = os.path.join(SVC.tmp, "av-ec.bkp")
        r = SVC.admin("credential", "backup", "av-ec", path, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        b = page()
        r = row(b.text, "backup", "av-ec")
        self.assertRegex(r["backups"], r"^1, the last on \d{4}-\d\d-\d\d \d\d:\d\d UTC$")
        self.assertIn("only if you ask for it here", r["conditions"])
        self.assertTrue(r["form"])
        rules = re.search(r'<p id="restore-rules">(.*?)</p>', b.text, re.S).group(1)
        self.assertIn("only on your own request", rules)
        self.assertIn("valid for 30 days and is used once", rules)
        self.assertIn("revoked or has expired, or whose owner's account was ended, is never restored", rules)
        # the request: a reference to give the operator; asked again while open, the same one
        b = ask("av-ec")
        m = re.search(r'id="note">Your restore request is (RR-[A-Z2-9]{12})\.', b.text)
        self.assertIsNotNone(m, b.text[:3000])
        ref = m.group(1)
        self.assertIn("Give this reference to the operator", b.text)
        r = row(b.text, "request", ref)
        self.assertEqual(r["id"], "av-ec")
        self.assertTrue(r["state"].startswith("open until "), r)
        self.assertEqual(SVC.request_restore(user(), "av-ec"), ref)
        # the operator: without the reference, with a wrong one, then with it (once)
        self.assertEqual(SVC.admin("credential", "destroy", "av-ec", check=False).returncode, 0)
        r = SVC.admin("credential", "restore", path, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("a restore needs its user's request", r.stderr)
        r = SVC.admin("credential", "restore", path, "--request", "RR-AAAABBBBCCCC", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no restore request RR-AAAABBBBCCCC", r.stderr)
        r = SVC.admin("credential", "restore", path, "--request", ref, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("credential av-ec restored", r.stdout)
        self.assertEqual(SVC.admin("credential", "destroy", "av-ec", check=False).returncode, 0)
        r = SVC.admin("credential", "restore", path, "--request", ref, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("restore request %s was used already" % ref, r.stderr)
        b = page()
        self.assertTrue(row(b.text, "request", ref)["state"].startswith("used on "))
        out = SVC.admin("audit", "query", "--event", "restore", "--json").stdout
        self.assertIn("action=restore.request ref=%s" % ref, out)
        self.assertIn("ref=%s file=" % ref, out)

    def test_other_users_and_unbackupable_keys(self):
        b = page()
        r = row(b.text, "backup", "demo-ec")  # generated before key_backup = wrapped
        self.assertEqual(r["backupable"], "no (the key never leaves the HSM)")
        self.assertIn("can never be restored", r["conditions"])
        self.assertFalse(r["form"])
        # another user's credential, by a forged form: the same answer as an unknown one
        b = ask("demo2-ec" if "demo2-ec" in SVC.admin("list").stdout else "no-such-key")
        self.assertEqual(b.error(), "That signing key is not known.")


class TestRecentActivity(unittest.TestCase):
    def test_signins_and_signatures_listed(self):
        create("av-sig")
        SVC.token()  # auth/login: ok
        r = SVC.post("auth/login", {}, auth="Basic " + H.base64.b64encode(
            ("%s:Not-The-Password-1" % user()).encode()).decode())
        self.assertIn(r.status, (400, 401), r)
        t = SVC.token()
        d1, d2, d3 = H.digest("a"), H.digest("b"), H.digest("c")
        for hashes in ([d1, d2], [d3]):
            a = SVC.authorize(t, "av-sig", hashes, pin=PIN)
            self.assertEqual(a.status, 200, a)
            s = SVC.post("signatures/signHash", {"credentialID": "av-sig", "SAD": a.json["SAD"],
                                                 "hashes": [H.b64(h) for h in hashes], "signAlgo": H.ECDSA_SHA256}, t)
            self.assertEqual(s.status, 200, s)
        b = SVC.account(user(), fresh=True)  # a page sign-in, the newest
        signins = rows(b.text, "signins")
        self.assertLessEqual(len(signins), 10)
        self.assertEqual((signins[0]["way"], signins[0]["result"]), ("web page", "ok"))
        self.assertEqual([(s["way"], s["result"]) for s in signins[1:4]],
                         [("API (auth/login)", "ok"), ("API (auth/login)", "refused"), ("API (auth/login)", "ok")])
        sigs = [s for s in rows(b.text, "signatures") if s["id"] == "av-sig"]
        self.assertEqual([s["count"] for s in sigs], ["1", "2"])  # newest first
        self.assertTrue(all(s["client"] not in ("", "-") for s in sigs), sigs)


if __name__ == "__main__":
    unittest.main()
