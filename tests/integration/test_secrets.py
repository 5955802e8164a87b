"""Secrets the server copies are wiped before their memory goes back to the C library (issue 9 item 10); and no
operator ever sees a user's secret (issue 12): TestOperatorsSeeNoUserSecret.

csc-server runs with freewatch (an LD_PRELOAD library built from freewatch.c) that looks into every block passed
to free() or realloc() for a marker that is part of a user's password and of a credential PIN, and names the
caller of each block that still holds it. Passwords arrive in the Basic header of auth/login and in the sign-in
forms, PINs in JSON bodies (v2 authData, v1 top-level PIN), plain and with JSON escapes. The server's own code
and libyajl (whose allocations go through the server's wiping allocator) must never hand such a block back; h2o's
and OpenSSL's own buffers are beyond the server's reach (docs/compliance.md, J2) and are only listed.
Sanitizer builds own the allocator: there the test is skipped."""
import json
import os
import re
import secrets
import time
import unittest
import urllib.parse

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
WATCH = os.path.join(BUILD, "tests", "integration", "libfreewatch.so")
MARKER = "730591826473"
PIN = MARKER + "05"
PASSWORD = "pw-" + MARKER + "-wipe"


def escaped(s):
    """Every character as a JSON \\u escape: the parser must decode it into a buffer of its own."""
    return "".join("\\u%04x" % ord(c) for c in s)


class TestWipedHeap(unittest.TestCase):
    def test_no_freed_block_holds_a_password_or_pin(self):
        if not os.path.exists(WATCH):
            self.skipTest("sanitizer build: freewatch cannot replace the allocator")
        svc = H.Service(BUILD)
        out = os.path.join(svc.tmp, "freewatch.out")
        svc.add_user("wanda", PASSWORD)
        svc.create_credential("--id", "wipe-1", "--user", "wanda", "--key", "p256", "--auth", "PIN", pin=PIN)
        svc.start(env_extra={"LD_PRELOAD": WATCH, "FREEWATCH_MARKER": MARKER, "FREEWATCH_OUT": out})
        try:
            for i in range(10):
                t = svc.token("wanda", PASSWORD)
                basic = "Basic " + H.b64(("nobody:wrong-" + MARKER).encode())
                self.assertEqual(svc.post("auth/login", {}, auth=basic).status, 400)
                dg = H.b64(H.digest("wipe %d" % i))
                r = svc.post("credentials/authorize", {"credentialID": "wipe-1", "numSignatures": 1,
                                                       "hashes": [dg], "hashAlgorithmOID": H.SHA256,
                                                       "authData": [{"id": "PIN", "value": PIN}]}, t)
                self.assertEqual(r.status, 200, r)
                raw = ('{"credentialID":"wipe-1","numSignatures":1,"hashes":["%s"],"hashAlgorithmOID":"%s",'
                       '"authData":[{"id":"PIN","value":"%s"}]}' % (dg, H.SHA256, escaped(PIN))).encode()
                self.assertEqual(svc.post("credentials/authorize", None, t, raw=raw).status, 200)
                r = svc.request("POST", "/csc/v1/credentials/authorize",
                                json.dumps({"credentialID": "wipe-1", "numSignatures": 1, "PIN": PIN,
                                            "hash": [dg]}).encode(),
                                {"Content-Type": "application/json", "Authorization": "Bearer " + t})
                self.assertEqual(r.status, 200, r)
                # a sign-in form (refused: no page was shown first) is parsed all the same
                form = urllib.parse.urlencode({"username": "wanda", "password": PASSWORD, "otp": "000000",
                                               "csrf": "x"}).encode()
                r = svc.request("POST", "/oauth2/authorize", form,
                                {"Content-Type": "application/x-www-form-urlencoded"})
                self.assertLess(r.status, 500, r)
            # /account's forms: the PIN and the password changed with the old ones (csc-server forwards them)
            acc = H.Browser(svc, "/account")
            acc.login("wanda", PASSWORD, svc.totp_of("wanda"))
            new_pin, new_pw = MARKER + "06", "pw-" + MARKER + "-new"
            acc.post({"action": "pin", "cred": "wipe-1", "old_pin": PIN, "pin": new_pin, "pin2": new_pin})
            self.assertIn("The PIN is changed", acc.text)
            acc.post({"action": "password", "old_password": PASSWORD, "new_password": new_pw,
                      "new_password2": new_pw})
            self.assertIn("The password is changed", acc.text)
        finally:
            self.assertEqual(svc.stop(), 0)
        lines = []
        if os.path.exists(out):
            with open(out) as f:
                lines = [l for l in f.read().split("\n") if l]
        print("freewatch: %d freed blocks held the marker: %s" % (len(lines), sorted({l.split(" ")[0] for l in lines})))
        # None, whoever freed it: the server's own blocks and libyajl's (csc_wipe.c), and OpenSSL's, libssl's record
        # buffers with the decrypted requests among them (csc_wipe_openssl: they were freed as they were, and their
        # leftovers, reused by the next malloc, then showed up in blocks the server freed). Each line names the
        # object and the offset of the free's caller in it (addr2line -e OBJ OFFSET).
        self.assertEqual(lines, [], "blocks freed unwiped")


class TestOperatorsSeeNoUserSecret(unittest.TestCase):
    """Issue 12, "done when": a full enrollment with otp_sender = file: - registration, a wrong code, the enrollment
    with a credential's PIN, signing, an operator's recovery and the second enrollment, the PIN, the password and the
    TOTP secret changed on /account - and then every csc-admin
    output of it, the audit log as operators read it (audit query, text and JSON, heads, verify), the LMDB file,
    the server's log and access log: none holds the user's password, PIN, TOTP secret or enrollment code, nor those of
    an operator added and enrolled meanwhile (operator add, operator enroll). Only the file the test-only sender
    writes to has the codes. (The TOTP key is in the user record until it is sealed under
    an HSM key: its raw bytes are not searched for in the LMDB file; its base32 text, which the user types, is.)"""

    def test_full_enrollment_shows_operators_no_user_secret(self):
        svc = H.Service(BUILD)
        sink = os.path.join(svc.tmp, "sent-codes")
        with open(svc.conf, "a") as f:
            f.write("otp_sender = file:%s\n" % sink)
        outputs = []

        def admin(*args):
            r = svc.admin(*args)
            outputs.append(("csc-admin " + " ".join(args), r.stdout + r.stderr))
            return r.stdout

        def sent_code(name="sara"):
            with open(sink) as f:
                return re.findall(r"(?m)^%s - ENROLL ([A-HJ-NP-Z2-9]{4}(?:-[A-HJ-NP-Z2-9]{4}){3})$" % name,
                                  f.read())[-1]

        user_secrets = {}
        svc.start()
        try:
            out = admin("user", "add", "sara", "--contact", "sara@example.test", "--evidence", "passport S-1")
            self.assertIn("enrollment sara sent to sara@example.test", out)
            admin("credential", "create", "--id", "sara-ec", "--user", "sara", "--key", "p256", "--auth", "PIN")
            code = sent_code()
            wrong = code[:-1] + ("A" if code[-1] != "A" else "B")
            b = H.Browser(svc, "/enroll")
            b.get()
            b.post({"action": "code", "name": "sara", "code": wrong})
            self.assertIn('id="error"', b.text)
            self.assertNotIn('id="totp-secret"', b.text)
            for n in (1, 2):
                password = "Pw-%d-%s" % (n, secrets.token_hex(8))
                pin = "7306%08d" % secrets.randbelow(10 ** 8)
                svc.users["sara"] = {"password": password, "code": code, "totp": None, "pins": {"sara-ec": pin}}
                totp = svc.enroll("sara")
                user_secrets.update({"password %d" % n: password, "PIN %d" % n: pin, "TOTP secret %d" % n: totp,
                                     "code %d" % n: code, "code %d without dashes" % n: code.replace("-", "")})
                t = svc.token("sara", password)
                dg = H.digest("signed by sara %d" % n)
                r = svc.authorize(t, "sara-ec", [dg], pin=pin)
                self.assertEqual(r.status, 200, r)
                r = svc.post("signatures/signHash", {"credentialID": "sara-ec", "SAD": r.json["SAD"],
                                                     "hashes": [H.b64(dg)], "signAlgo": H.ECDSA_SHA256}, t)
                self.assertEqual(r.status, 200, r)
                if n == 1:  # she lost her phone: a new code, her password, TOTP secret and PIN are cleared
                    out = admin("user", "recover", "sara", "--pin", "sara-ec")
                    self.assertIn("enrollment sara sent to sara@example.test", out)
                    code = sent_code()
                    self.assertNotEqual(code, user_secrets["code 1"])
                    self.assertEqual(svc.post("credentials/list", {}, t).status, 401)  # her tokens revoked
            # /account: she changes her PIN and her password (the old ones asked)
            acc = H.Browser(svc, "/account")
            acc.login("sara", password, totp)
            pin3, password3 = "7307%08d" % secrets.randbelow(10 ** 8), "Pw-3-%s" % secrets.token_hex(8)
            acc.post({"action": "pin", "cred": "sara-ec", "old_pin": pin, "pin": pin3, "pin2": pin3})
            self.assertIn("The PIN is changed", acc.text)
            acc.post({"action": "password", "old_password": password, "new_password": password3,
                      "new_password2": password3})
            self.assertIn("The password is changed", acc.text)
            # ... and her TOTP secret (a code of the old one, then one of the new, each in a step of its own)
            acc.post({"action": "totp_begin", "otp": H.fresh_totp(totp, svc.used_otps)})
            new_totp = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', acc.text).group(1)
            now = int(time.time() // 30)
            svc.used_otps.update({(new_totp, now), (new_totp, now - 1)})
            acc.post({"action": "totp_finish", "otp": H.fresh_totp(new_totp, svc.used_otps),
                      "ticket": re.search(r'name="ticket" value="([^"]+)"', acc.text).group(1)})
            self.assertIn("The new secret is in use", acc.text)
            user_secrets.update({"PIN 3": pin3, "password 3": password3, "TOTP secret 3": new_totp})
            # An operator's enrollment: operator add (the code goes by the sender), operator enroll on the new
            # operator's own terminal (not an output searched here: the secret is shown there, to them), a login.
            out = admin("operator", "add", "olaf", "--roles", "auditor", "--contact", "olaf@example.test")
            self.assertIn("enrollment olaf sent to olaf@example.test", out)
            ocode = sent_code("olaf")
            opw = "Op-%s" % secrets.token_hex(8)
            osecret = svc.enroll_operator("olaf", ocode, opw)
            svc.op_login("olaf", opw, osecret)
            user_secrets.update({"operator password": opw, "operator TOTP secret": osecret, "operator code": ocode,
                                 "operator code without dashes": ocode.replace("-", "")})
            for args in (("list",), ("audit", "query"), ("audit", "query", "--json"), ("audit", "query", "--user",
                         "sara"), ("audit", "query", "--event", "operator"), ("operator", "list"), ("audit", "heads"),
                         ("audit", "verify"), ("approvals",)):
                admin(*args)
        finally:
            svc.stop_checked()
        with open(sink) as f:
            self.assertEqual(len(f.read().splitlines()), 3)  # the codes, nothing else: the sender's own file
        places = list(outputs)
        with open(os.path.join(svc.dir, "db", "data.mdb"), "rb") as f:
            places.append(("the LMDB file", f.read().decode("latin-1")))
        places.append(("the server's log", svc.server_stderr()))
        with open(os.path.join(svc.dir, "log", "access.log")) as f:
            places.append(("the access log", f.read()))
        self.assertIn("sara", "".join(text for _, text in places))  # the places were read
        for what, secret in user_secrets.items():
            for where, text in places:
                self.assertNotIn(secret.lower(), text.lower(), "%s in %s" % (what, where))


if __name__ == "__main__":
    unittest.main()
