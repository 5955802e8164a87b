"""csc-server writes only its own tables (issue 13): with the storage write guard on (csc-server calls
stor_env_restrict_writes to web_sessions, async_results and pars), auth/login with a password,
its failures, the lock-out and the audit records still work, because csc-sam writes them (API_LOGIN). Before the
move csc-server wrote users, signins and audit itself, and the guard refused it (503). Likewise a signature refused
for the certificate's revocation status: csc-sam decides and audits it (SIGN)."""
import base64
import json
import os
import subprocess
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SVC = None
DENIED = "this process may not write it"
GUARDED = "storage: csc-server writes only web_sessions, async_results and pars"


def demo_crl(held=()):
    """The demo CA's CRL in crl_dir listing the serials (hex) held as certificateHold; through a rename."""
    ca, crl_dir = os.path.join(SVC.dir, "ca"), os.path.join(SVC.dir, "crl")
    os.makedirs(crl_dir, exist_ok=True)
    index, conf = os.path.join(ca, "guard-crl-index.txt"), os.path.join(ca, "guard-crl.cnf")
    with open(index, "w") as f:
        f.writelines("R\t301231000000Z\t260101000000Z,certificateHold\t%s\tunknown\t/CN=x\n" % s for s in held)
    if not os.path.exists(conf):
        with open(os.path.join(ca, "guard-crl-number"), "w") as f:
            f.write("01\n")
        with open(conf, "w") as f:
            f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\n"
                    "default_crl_days = 30\n" % (index, os.path.join(ca, "guard-crl-number")))
    tmp = os.path.join(crl_dir, "demo-ca.crl.tmp")
    subprocess.run(["openssl", "ca", "-gencrl", "-batch", "-config", conf, "-keyfile", os.path.join(ca, "ca.key"),
                    "-cert", os.path.join(ca, "ca.crt"), "-out", tmp], check=True, capture_output=True)
    os.replace(tmp, os.path.join(crl_dir, "demo-ca.crl"))


def setUpModule():
    global SVC
    SVC = H.Service(BUILD, extra_config="max_failures = 3\nlock_seconds = 600\nlock_max_seconds = 3600\n"
                                        "rate_max = 100000\ncrl_dir = crl\n")
    demo_crl()
    for user in ("guard-ok", "guard-lock"):
        SVC.add_user(user, H.pw(user))
    SVC.start()


def tearDownModule():
    SVC.stop_checked()


def basic(user, password):
    return "Basic " + H.b64(("%s:%s" % (user, password)).encode())


def audit(*args):
    r = SVC.admin("audit", "query", "--json", *args)
    return [json.loads(line) for line in r.stdout.splitlines()]


class TestGuardedLogin(unittest.TestCase):
    def test_guard_is_on(self):
        self.assertIn(GUARDED, SVC.server_stderr())

    def test_login_with_the_guard_on(self):
        """auth/login answers as before (tokens, rememberMe's refresh token), the token works, and the sign-in is in
        the audit trail: written by csc-sam, not refused by csc-server's guard."""
        r = SVC.post("auth/login", {"rememberMe": True}, auth=basic("guard-ok", H.pw("guard-ok")))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["access_token"]), 43)
        self.assertEqual(len(r.json["refresh_token"]), 43)
        self.assertGreater(r.json["expires_in"], 0)
        listed = SVC.post("credentials/list", {}, token=r.json["access_token"])
        self.assertEqual(listed.status, 200, listed)
        r = SVC.post("auth/login", {}, auth=basic("guard-ok", H.pw("guard-ok")))
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("refresh_token", r.json)
        ok = [a for a in audit("--user", "guard-ok", "--event", "login") if a["result"] == "ok"]
        self.assertGreaterEqual(len(ok), 2, ok)
        self.assertNotIn(DENIED, SVC.server_stderr())

    def test_failures_and_lockout_with_the_guard_on(self):
        """Wrong passwords: 400 authentication_error (not 503); the third locks the account (its audit record), and
        the right password is then refused alike; an unknown user too."""
        for _ in range(3):
            r = SVC.post("auth/login", {}, auth=basic("guard-lock", "not-the-password"))
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.json["error"], "authentication_error")
        r = SVC.post("auth/login", {}, auth=basic("guard-lock", H.pw("guard-lock")))
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error"], "authentication_error")
        r = SVC.post("auth/login", {}, auth=basic("guard-nobody", "whatever-1234"))
        self.assertEqual(r.status, 400, r)
        locks = audit("--user", "guard-lock", "--event", "lockout")
        self.assertEqual(len(locks), 1, locks)
        self.assertIn("user locked for 600 s", locks[0]["detail"])
        denied = [a for a in audit("--user", "guard-lock", "--event", "login") if a["result"] != "ok"]
        self.assertGreaterEqual(len(denied), 1, denied)
        self.assertNotIn(DENIED, SVC.server_stderr())


class TestGuardedSignRefusal(unittest.TestCase):
    def test_suspended_certificate_with_the_guard_on(self):
        """A signature with a certificate on hold: 400 invalid_request naming the certificate (not 503), the denied
        sign record with the CRL's reason (csc-sam's), and the SAD not spent: once the hold is released the same
        SAD signs."""
        t = SVC.token()
        info = SVC.post("credentials/info", {"credentialID": "demo-ec"}, t).json
        der = base64.b64decode(info["cert"]["certificates"][0])
        serial = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                                capture_output=True, check=True).stdout.decode().strip().split("=")[1]
        h = H.digest("guarded signature")
        sad = SVC.authorize(t, "demo-ec", [h], pin=SVC.env["CSC_PIN"])
        self.assertEqual(sad.status, 200, sad)
        body = {"credentialID": "demo-ec", "SAD": sad.json["SAD"], "hashes": [H.b64(h)],
                "hashAlgorithmOID": H.SHA256, "signAlgo": H.ECDSA_SHA256}
        status = lambda: SVC.post("credentials/info", {"credentialID": "demo-ec"}, t).json["cert"]["status"]
        demo_crl([serial])
        try:
            H.wait_until(lambda: status() == "suspended", "csc-server to see the hold")
            r = SVC.post("signatures/signHash", body, t)
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.json["error"], "invalid_request")
            self.assertRegex(r.json["error_description"], r"^Signing certificate 'O=.*,CN=.*' is suspended\.$")
            denied = [a for a in audit("--credential", "demo-ec", "--event", "sign") if a["result"] != "ok"]
            self.assertEqual(len(denied), 1, denied)
            self.assertIn("certificate suspended (certificateHold)", denied[0]["detail"])
            self.assertNotIn(DENIED, SVC.server_stderr())
        finally:
            demo_crl()
        H.wait_until(lambda: status() == "valid", "csc-server to see the release")
        # csc-sam follows its own folder a moment later at most; each refusal there spends nothing either.
        H.wait_until(lambda: SVC.post("signatures/signHash", body, t).status == 200, "the same SAD to sign")


if __name__ == "__main__":
    unittest.main()
