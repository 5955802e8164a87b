"""/account changes of the user's own factors (issue 12), through the pages as a person uses them: a PIN that is set
is changed with the old one (old PIN refused by authorize afterwards, the new one works; wrong old PINs lock the
credential as authorize does), the password with the old one (the old no longer signs in, the new one does; the rules
of /enroll), the TOTP secret with a code of the old one and then of the new one (the old one's codes refused
afterwards); every change ends the user's other signed-in sessions and revokes the tokens it concerns, and is audited
without a secret."""
import hashlib
import os
import re
import time
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SVC = None
PIN = "246810"
NEW_PIN = "975318"


def setUpModule():
    global SVC
    SVC = H.Service(BUILD, extra_config="password_min_length = 12\npassword_classes = 3\n")
    SVC.start()


def tearDownModule():
    SVC.stop_checked()


def signed_in(user):
    u = SVC.users[user]
    b = H.Browser(SVC, "/account")
    b.login(user, u["password"], u["totp"])
    return b


def audit_of(user):
    return SVC.admin("audit", "query", "--json", "--user", user).stdout


class TestAccount(unittest.TestCase):
    def test_pin_change(self):
        pw = H.pw("pia")
        SVC.add_user("pia", pw)
        cred = SVC.create_credential("--user", "pia", "--id", "pia-key", "--scal", "2", pin=PIN)
        secret = SVC.totp_of("pia")
        tok = SVC.token("pia", pw)
        h = hashlib.sha256(b"pia's document").digest()
        other = signed_in("pia")  # another browser of hers
        acc = signed_in("pia")
        self.assertIn('<tr class="cred" id="cred-%s">' % cred, acc.text)
        self.assertIn('name="old_pin"', acc.text)
        # The two new PINs differ; the rule; a wrong old PIN (counted on the credential, as authorize counts).
        acc.post({"action": "pin", "cred": cred, "old_pin": PIN, "pin": NEW_PIN, "pin2": NEW_PIN + "1"})
        self.assertIn("not the same", acc.error())
        acc.post({"action": "pin", "cred": cred, "old_pin": PIN, "pin": "12", "pin2": "12"})
        self.assertIn("digits", acc.error())
        acc.post({"action": "pin", "cred": cred, "old_pin": "111111", "pin": NEW_PIN, "pin2": NEW_PIN})
        self.assertIn("current PIN is not correct", acc.error())
        # The right old PIN: changed; the other browser's session is over, this one goes on.
        acc.post({"action": "pin", "cred": cred, "old_pin": PIN, "pin": NEW_PIN, "pin2": NEW_PIN})
        self.assertEqual(acc.last.status, 200, acc.text[:2000])
        self.assertIn("The PIN is changed", acc.text)
        other.get()
        self.assertNotIn('id="user"', other.text)
        acc.get()
        self.assertIn('id="user"', acc.text)
        # authorize: the old PIN is refused, the new one works (the service token was not revoked).
        r = SVC.authorize(tok, cred, [h], pin=PIN, otp_secret=secret)
        self.assertEqual(r.status, 400, r)
        r = SVC.authorize(tok, cred, [h], pin=NEW_PIN, otp_secret=secret)
        self.assertEqual(r.status, 200, r)
        audit = audit_of("pia")
        self.assertIn("action=pin.change by=account denied: wrong old PIN", audit)
        # ended: the other browser's session and the one the harness set the PIN in
        self.assertRegex(audit, r"action=pin\.change by=account revoked: sessions=2 tokens=0 sads=0")
        for s in (PIN, NEW_PIN, pw, secret):
            self.assertNotIn(s, audit)

    def test_wrong_old_pins_lock_the_credential(self):
        pw = H.pw("lena")
        SVC.add_user("lena", pw)
        cred = SVC.create_credential("--user", "lena", "--id", "lena-key", "--scal", "2", pin=PIN)
        acc = signed_in("lena")
        for _ in range(5):  # max_failures
            acc.post({"action": "pin", "cred": cred, "old_pin": "111111", "pin": NEW_PIN, "pin2": NEW_PIN})
        acc.post({"action": "pin", "cred": cred, "old_pin": PIN, "pin": NEW_PIN, "pin2": NEW_PIN})
        self.assertIn("locked", acc.error())
        # The same lock as authorize's: the right PIN is refused there too.
        tok = SVC.token("lena", pw)
        r = SVC.authorize(tok, cred, [hashlib.sha256(b"x").digest()], pin=PIN, otp_secret=SVC.totp_of("lena"))
        self.assertEqual(r.status, 400, r)
        self.assertIn("locked", r.json["error_description"])
        self.assertIn("credential locked", SVC.admin("audit", "query", "--user", "lena").stdout)

    def test_password_change(self):
        pw = H.pw("paul")
        new_pw = "Brand-New-Pass-8642"
        SVC.add_user("paul", pw)
        tok = SVC.token("paul", pw)
        other = signed_in("paul")
        acc = signed_in("paul")
        self.assertIn('id="change-password"', acc.text)
        acc.post({"action": "password", "old_password": pw, "new_password": new_pw, "new_password2": new_pw + "x"})
        self.assertIn("not the same", acc.error())
        for bad, why in (("Short1-a", "characters"), ("alllowercaseletters", "kinds"), (pw, "old one")):
            acc.post({"action": "password", "old_password": pw, "new_password": bad, "new_password2": bad})
            self.assertIn(why, acc.error() or "", acc.text[:2000])
        acc.post({"action": "password", "old_password": "Wrong-Pass-1234", "new_password": new_pw,
                  "new_password2": new_pw})
        self.assertIn("current password is not correct", acc.error())
        acc.post({"action": "password", "old_password": pw, "new_password": new_pw, "new_password2": new_pw})
        self.assertEqual(acc.last.status, 200, acc.text[:2000])
        self.assertIn("The password is changed", acc.text)
        # The old password no longer signs in, the new one does; the old token and the other session are over.
        basic = "Basic " + H.b64(("paul:" + pw).encode())
        self.assertEqual(SVC.post("auth/login", {}, auth=basic).status, 400)
        SVC.token("paul", new_pw)
        r = SVC.post("credentials/list", {}, tok)
        self.assertEqual(r.status, 401, r)
        other.get()
        self.assertNotIn('id="user"', other.text)
        acc.get()
        self.assertIn('id="user"', acc.text)
        audit = audit_of("paul")
        self.assertIn("action=password.change by=account denied: wrong old password", audit)
        self.assertIn("action=password.change by=account revoked: sessions=1 tokens=1", audit)
        for s in (pw, new_pw, "Wrong-Pass-1234", SVC.totp_of("paul")):
            self.assertNotIn(s, audit)
        SVC.users["paul"]["password"] = new_pw

    def test_totp_change(self):
        pw = H.pw("tina")
        SVC.add_user("tina", pw)
        old = SVC.totp_of("tina")
        tok = SVC.token("tina", pw)
        other = signed_in("tina")
        acc = signed_in("tina")
        self.assertIn('id="totp-begin"', acc.text)
        acc.post({"action": "totp_begin", "otp": "000000"})
        self.assertIn("not correct", acc.error())
        acc.post({"action": "totp_begin", "otp": H.fresh_totp(old, SVC.used_otps)})
        self.assertEqual(acc.last.status, 200, acc.text[:2000])
        self.assertIn('id="totp-qr"', acc.text)
        m = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', acc.text)
        self.assertTrue(m, acc.text[:3000])
        new = m.group(1)
        self.assertNotEqual(new, old)
        # A wrong code of the new secret keeps the old one.
        acc.post({"action": "totp_finish", "ticket": re.search(r'name="ticket" value="([^"]+)"', acc.text).group(1),
                  "otp": "000000"})
        self.assertIn("old app stays in use", acc.error())
        self.assertNotIn('id="totp-secret"', acc.text)  # shown once only
        # The step the old code spent is spent for the new secret too: the next one proves it.
        now = int(time.time() // 30)
        SVC.used_otps.update({(new, now), (new, now - 1)})
        acc.post({"action": "totp_finish", "ticket": re.search(r'name="ticket" value="([^"]+)"', acc.text).group(1),
                  "otp": H.fresh_totp(new, SVC.used_otps)})
        self.assertEqual(acc.last.status, 200, acc.text[:2000])
        self.assertIn("The new secret is in use", acc.text)
        # The old secret's codes no longer sign in; the new one's do. The token and the other session are over.
        b = H.Browser(SVC, "/account")
        b.get()
        b.post({"action": "login", "username": "tina", "password": pw, "otp": H.fresh_totp(old, SVC.used_otps)})
        self.assertNotIn('id="user"', b.text)
        SVC.users["tina"]["totp"] = new
        signed_in("tina")
        self.assertEqual(SVC.post("credentials/list", {}, tok).status, 401)
        other.get()
        self.assertNotIn('id="user"', other.text)
        audit = audit_of("tina")
        self.assertIn("action=totp.change.begin by=account denied: wrong code", audit)
        self.assertIn("action=totp.change by=account denied: wrong code of the new secret", audit)
        self.assertIn("action=totp.change by=account revoked: sessions=1 tokens=1", audit)
        for s in (old, new, pw):
            self.assertNotIn(s, audit)

    def test_forged_form_is_refused(self):
        pw = H.pw("fred")
        SVC.add_user("fred", pw)
        acc = signed_in("fred")
        acc.post({"action": "password", "old_password": pw, "new_password": "Fred-New-Pass-1357",
                  "new_password2": "Fred-New-Pass-1357", "csrf": "forged"})
        self.assertEqual(acc.last.status, 400)
        SVC.token("fred", pw)  # unchanged


if __name__ == "__main__":
    unittest.main()
