"""TOTP secrets at rest (issue 12): users' TOTP secrets are kept in the database only sealed under the token's factor
key (AES-GCM in the HSM, bound to the user's name). A user who enrolls on /enroll and signs in on /account never has
the secret in the database in clear, neither as raw bytes nor in base32 (nor do the demo users enrolled so). The
upgrade of a secret an older release wrote in clear (sealed at csc-sam's start, its user still signs in) is
tests/unit/sam/test_sam_login.c t_sealed_at_start_and_bound_to_the_user (operators': tests/unit/sam/test_sam_ops.c
t_operator_sealed_at_start_and_bound): no command writes one any more. Operators' secrets likewise (csc-sam makes,
seals and checks them)."""
import base64
import os
import re
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PASSWORD = "Correct-Horse-42"


def raw_secret(b32):
    return base64.b32decode(b32 + "=" * (-len(b32) % 8))


def db_bytes(svc):
    """Every byte of the service's LMDB files (data and lock)."""
    out = b""
    db = os.path.join(svc.dir, "db")
    for name in sorted(os.listdir(db)):
        with open(os.path.join(db, name), "rb") as f:
            out += f.read()
    return out


class TestTotpAtRest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = H.Service(BUILD)
        cls.svc.start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def in_db(self, b32):
        """Is the secret (raw, or its base32 in either case) anywhere in the database's files?"""
        data = db_bytes(self.svc)
        return raw_secret(b32) in data or b32.encode() in data or b32.lower().encode() in data

    def assert_not_in_db(self, b32):
        self.assertFalse(self.in_db(b32), "a TOTP secret is in the database in clear")

    def sign_in(self, user, password, secret):
        b = H.Browser(self.svc, "/approve")
        b.login(user, password, secret)  # asserts the signed-in page
        return b

    def test_demo_users_sealed_and_sign_in(self):
        svc = self.svc
        for key in ("CSC_TOTP_SECRET", "CSC_TOTP_SECRET2"):
            self.assert_not_in_db(svc.env[key])
        self.sign_in(svc.env["CSC_USER"], svc.env["CSC_PASSWORD"], svc.env["CSC_TOTP_SECRET"])
        # a wrong code is still refused, with the page's one answer
        b = H.Browser(svc, "/approve")
        b.get()
        good = H.totp(svc.env["CSC_TOTP_SECRET"])
        b.post({"action": "login", "username": svc.env["CSC_USER"], "password": svc.env["CSC_PASSWORD"],
                "otp": "%06d" % ((int(good) + 1) % 1000000)})
        self.assertIn("The user name, password or one-time code is not correct.", b.text)
        self.assert_not_in_db(svc.env["CSC_TOTP_SECRET"])

    def test_enrolled_secret_never_in_clear(self):
        svc = self.svc
        out = svc.admin("user", "add", "tess", "--contact", "tess@example.org", "--evidence", "ev-tess",
                        "--letter").stdout
        code = re.search(r"^enrollment_code (\S+)$", out, re.M).group(1)
        b = H.Browser(svc, "/enroll")
        b.get()
        b.post({"action": "code", "name": "tess", "code": code})
        secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', b.text).group(1)
        self.assert_not_in_db(secret)  # step 2: the ticket holds it sealed
        b.post({"action": "finish", "password": PASSWORD, "password2": PASSWORD,
                "otp": H.fresh_totp(secret, svc.used_otps)})
        self.assertEqual(b.last.status, 200, b.text[:2000])
        self.assert_not_in_db(secret)  # enrolled: the user's record holds it sealed
        a = H.Browser(svc, "/account")
        a.login("tess", PASSWORD, secret)
        self.assertIn('id="user"', a.text)
        self.assert_not_in_db(secret)

    def test_operators_sealed_and_log_in(self):
        """Operators' TOTP secrets too (csc-sam makes and seals them: operator bootstrap in scripts/provision,
        operator enroll) are never in the database in clear, and csc-admin login (checked by csc-sam) still works."""
        svc = self.svc
        self.assert_not_in_db(svc.env["CSC_OPERATOR_TOTP_SECRET"])
        svc.op_login(svc.env["CSC_OPERATOR"], svc.env["CSC_OPERATOR_PASSWORD"], svc.env["CSC_OPERATOR_TOTP_SECRET"])
        secret = svc.add_operator("oscar", "auditor", "password-oscar")  # enrolled on the operator's own terminal
        self.assert_not_in_db(secret)
        tok = svc.op_login("oscar", "password-oscar", secret)
        r = svc.admin_as(tok, "audit", "heads")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_not_in_db(secret)


if __name__ == "__main__":
    unittest.main()
