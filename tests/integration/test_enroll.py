"""Enrollment (issue 12): csc-admin registers a user and issues a one-time code (never a password, TOTP secret or PIN);
the user makes their own factors on /enroll (a wrong code burns after enroll_code_tries), signs in afterwards,
and sets the PIN of a credential created later on /account before it can authorize; with a file: otp_sender the
code is sent, never shown to the operator."""
import hashlib
import os
import re
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SVC = None
PASSWORD = "Correct-Horse-42"
PIN = "246810"


def setUpModule():
    global SVC
    SVC = H.Service(BUILD, extra_config="enroll_code_tries = 3\npassword_min_length = 12\npassword_classes = 3\n")
    SVC.start()


def tearDownModule():
    SVC.stop_checked()


def letter(out):
    m = re.search(r"^enrollment_code ([A-Z0-9]{4}(?:-[A-Z0-9]{4}){3})$", out, re.M)
    assert m and re.search(r"^expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", out, re.M), out
    return m.group(1)


def step1(name, code):
    b = H.Browser(SVC, "/enroll")
    b.get()
    assert b.last.status == 200 and 'name="code"' in b.text, b.text[:2000]
    b.post({"action": "code", "name": name, "code": code})
    return b


def secret_of(b):
    m = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', b.text)
    return m and m.group(1)


def finish(b, secret, password=PASSWORD, password2=None, pins=None, otp=None):
    fields = {"action": "finish", "password": password, "password2": password2 or password,
              "otp": otp or H.fresh_totp(secret, SVC.used_otps)}
    for cred, pin in (pins or {}).items():
        fields["pin_" + cred] = pin
        fields["pin2_" + cred] = pin
    return b.post(fields)


def account(user, password, secret):
    b = H.Browser(SVC, "/account")
    b.login(user, password, secret)
    return b


class TestEnroll(unittest.TestCase):
    def test_letter_wrong_codes_burn_then_enroll_sign_in_pin_on_account(self):
        out = SVC.admin("user", "add", "erin", "--contact", "erin@example.org", "--evidence", "ev-erin",
                        "--applicant", "app-7", "--letter").stdout
        code = letter(out)
        listing = SVC.admin("list").stdout
        self.assertRegex(listing, r"(?m)^user erin  enrolling")
        # An enrolling user cannot sign in.
        self.assertNotEqual(SVC.post("auth/login", {}, auth="Basic " + H.b64(b"erin:whatever")).status, 200)
        # Wrong codes: the same answer each time; the third (enroll_code_tries = 3) burns the code.
        wrong = "ABCD-EFGH-JKLM-NPQR" if code != "ABCD-EFGH-JKLM-NPQR" else "BCDE-FGHJ-KLMN-PQRS"
        for _ in range(3):
            b = step1("erin", wrong)
            self.assertIn("The name or the code is wrong or has expired", b.text)
            self.assertNotIn("totp-secret", b.text)
        b = step1("erin", code)
        self.assertIn("The name or the code is wrong or has expired", b.text)  # burnt: the right code is refused
        # A name without a code gets the same page.
        self.assertIn("The name or the code is wrong or has expired", step1("nobody", code).text)
        # The operator issues a new code (user recover re-issues a burnt one).
        code = letter(SVC.admin("user", "recover", "erin", "--letter").stdout)
        b = step1("erin", code.lower().replace("-", " "))  # normalized: case, dashes and spaces do not matter
        secret = secret_of(b)
        self.assertTrue(secret, b.text[:3000])
        self.assertIn('id="totp-qr"', b.text)
        self.assertIn("csc_enroll=", b.set_cookie)
        self.assertIn("Path=/enroll", b.set_cookie)
        self.assertIn("Max-Age=900", b.set_cookie)
        # The SAM's rules: too short, too few kinds, the name in it; the two passwords must match.
        for bad, why in (("Short1-a", "characters"), ("alllowercaseletters", "kinds"),
                         ("Erin-is-the-best-1", "user name")):
            finish(b, secret, password=bad, otp="000000")
            self.assertIn(why, b.text)
            self.assertIn('id="totp-secret"', b.text)
        finish(b, secret, password2=PASSWORD + "x", otp="000000")
        self.assertIn("not the same", b.text)
        finish(b, secret)
        self.assertEqual(b.last.status, 200, b.text[:2000])
        self.assertIn("You are enrolled", b.text)
        # The code is spent: it does not begin another enrollment.
        self.assertIn("The name or the code is wrong or has expired", step1("erin", code).text)
        # Sign-in works now (password; the TOTP on the pages).
        tok = SVC.token("erin", PASSWORD)
        # A credential created now waits for its PIN: authorize refuses it as a disabled credential.
        out = SVC.admin("credential", "create", "--user", "erin", "--id", "erin-key", "--scal", "2",
                        stdin="").stdout
        self.assertIn("pin=unset", out)
        self.assertIn("pin=unset", SVC.admin("list").stdout)
        h = hashlib.sha256(b"enrolled document").digest()
        r = SVC.authorize(tok, "erin-key", [h], pin=PIN, otp_secret=secret)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error"], "invalid_request")
        self.assertIn("disabled", r.json["error_description"])
        # /account: the owner sets it (the rule first, and both PINs the same).
        acc = account("erin", PASSWORD, secret)
        self.assertIn('<tr class="cred" id="cred-erin-key">', acc.text)
        acc.post({"action": "pin", "cred": "erin-key", "pin": "12", "pin2": "12"})
        self.assertIn("digits", acc.text)
        acc.post({"action": "pin", "cred": "erin-key", "pin": PIN, "pin2": PIN + "1"})
        self.assertIn("not the same", acc.text)
        acc.post({"action": "pin", "cred": "erin-key", "pin": PIN, "pin2": PIN})
        self.assertIn("The PIN is set", acc.text)
        self.assertNotIn("pin=unset", SVC.admin("list").stdout)
        # Setting it again: it no longer waits.
        acc.post({"action": "pin", "cred": "erin-key", "pin": PIN, "pin2": PIN})
        self.assertIn("does not wait", acc.text)
        r = SVC.authorize(tok, "erin-key", [h], pin=PIN, otp_secret=secret)
        self.assertEqual(r.status, 200, r)
        s = SVC.post("signatures/signHash", {"credentialID": "erin-key", "SAD": r.json["SAD"], "hashes": [H.b64(h)],
                                             "hashAlgorithmOID": H.SHA256, "signAlgo": H.RSA_SHA256}, tok)
        self.assertEqual(s.status, 200, s)
        # Nothing the operator saw or the audit log holds carries the user's secrets.
        audit = SVC.admin("audit", "query", "--json", "--user", "erin").stdout
        self.assertIn("enroll.done", audit)
        for secret_text in (PASSWORD, PIN, secret, code, code.replace("-", "")):
            self.assertNotIn(secret_text, audit)
            self.assertNotIn(secret_text, SVC.admin("list").stdout)

    def test_step2_form_of_another_ticket_is_refused(self):
        code = letter(SVC.admin("user", "add", "fred", "--letter").stdout)
        b = step1("fred", code)
        secret = secret_of(b)
        self.assertTrue(secret, b.text[:2000])
        b.csrf = "forged" + b.csrf[6:]
        finish(b, secret)
        self.assertNotIn("You are enrolled", b.text)
        self.assertNotEqual(SVC.post("auth/login", {}, auth="Basic " + H.b64(("fred:" + PASSWORD).encode())).status,
                            200)

    def test_add_refused_without_sender_or_letter(self):
        r = SVC.admin("user", "add", "gina", "--contact", "gina@example.org", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--letter", r.stderr)
        self.assertNotIn("user gina", SVC.admin("list").stdout)  # nothing was written


class TestFileSender(unittest.TestCase):
    """With otp_sender = file: the code goes to the sink; csc-admin shows only where it went."""

    def test_code_sent_not_printed(self):
        svc = H.Service(BUILD)
        sink = os.path.join(svc.dir, "codes.txt")
        with open(svc.conf, "a") as f:
            f.write("otp_sender = file:%s\n" % sink)
        r = svc.admin("user", "add", "hana", "--contact", "hana@example.org", "--evidence", "ev-hana", "--letter",
                      check=False)
        self.assertEqual(r.returncode, 2)  # a sender is configured: no letter
        out = svc.admin("user", "add", "hana", "--contact", "hana@example.org", "--evidence", "ev-hana").stdout
        self.assertRegex(out, r"enrollment hana sent to hana@example.org, expires \d{4}-")
        with open(sink) as f:
            m = re.search(r"^hana - ENROLL ([A-Z0-9]{4}(?:-[A-Z0-9]{4}){3})$", f.read(), re.M)
        self.assertTrue(m)
        self.assertNotIn(m.group(1), out)
        self.assertNotIn(m.group(1), svc.admin("audit", "query", "--json").stdout)


class TestTwoPerson(unittest.TestCase):
    """two_person = user.add,recover: a second user-admin approves; csc-sam takes the request and sends the code."""

    def test_add_and_recover_need_a_second_operator(self):
        from test_operators import add_operator
        svc = H.Service(BUILD)
        sink = os.path.join(svc.dir, "codes.txt")
        _, _, tok2 = add_operator(svc, "ua2", "user-admin")
        with open(svc.conf, "a") as f:
            f.write("otp_sender = file:%s\ntwo_person = user.add,recover\n" % sink)
        out = svc.admin("user", "add", "ivan", "--contact", "ivan@example.org", "--evidence", "ev-ivan").stdout
        rid = re.search(r"^approval_required (\S+)$", out, re.M).group(1)
        self.assertFalse(os.path.exists(sink))  # nothing sent, nothing written yet
        self.assertNotIn("user ivan", svc.admin("list").stdout)
        r = svc.admin_as(tok2, "approve", rid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("enrollment ivan sent to ivan@example.org", r.stdout)
        with open(sink) as f:
            self.assertEqual(len(re.findall(r"^ivan - ENROLL ", f.read(), re.M)), 1)
        self.assertIn("operator=ua2,requester=", svc.admin("audit", "query", "--json", "--user", "ivan").stdout)
        out = svc.admin("user", "recover", "ivan").stdout
        rid = re.search(r"^approval_required (\S+)$", out, re.M).group(1)
        self.assertEqual(svc.admin_as(tok2, "approve", rid).returncode, 0)
        with open(sink) as f:
            self.assertEqual(len(re.findall(r"^ivan - ENROLL ", f.read(), re.M)), 2)


if __name__ == "__main__":
    unittest.main()
