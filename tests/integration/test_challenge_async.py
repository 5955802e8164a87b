"""credentials/getChallenge and v1 credentials/sendOTP: one-time codes for the CHALLENGE object, delivered out of
band by the configured otp_sender (file sink and exec program), then accepted once by credentials/authorize."""
import base64
import json
import os
import re
import stat
import tempfile
import time
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SVC = None
SINK = None


def add_cred(svc, cid, user, auth, pin, multisign=5):
    svc.admin("credential", "create", "--id", cid, "--user", user, "--key", "p256", "--auth", auth, "--scal", "1",
              "--multisign", str(multisign), stdin=(pin or "") + "\n")


def setUpModule():
    global SVC, SINK
    d = tempfile.mkdtemp(prefix="csc-sink-")
    SINK = os.path.join(d, "codes.txt")
    SVC = H.Service(BUILD, "otp_sender = file:%s\n" % SINK)
    add_cred(SVC, "ch-pin", SVC.env["CSC_USER"], "PIN AND CHALLENGE", SVC.env["CSC_PIN"])
    add_cred(SVC, "ch-only", SVC.env["CSC_USER"], "CHALLENGE", None)
    add_cred(SVC, "ch-lock", SVC.env["CSC_USER"], "CHALLENGE", None)
    add_cred(SVC, "ch-v1", SVC.env["CSC_USER"], "PIN AND CHALLENGE", SVC.env["CSC_PIN"])
    add_cred(SVC, "ch-other", SVC.env["CSC_USER2"], "CHALLENGE", None)
    SVC.start()


def tearDownModule():
    if SVC is not None:
        SVC.stop()


def sink_lines(path=None):
    try:
        with open(path or SINK) as f:
            return [line.split() for line in f.read().splitlines()]
    except FileNotFoundError:
        return []


def last_code(user, cred):
    for parts in reversed(sink_lines()):
        if parts[0] == user and parts[1] == cred:
            return parts[3]
    raise AssertionError("no code delivered for %s/%s" % (user, cred))


def v1(method, body, token):
    return SVC.request("POST", "/csc/v1/" + method, json.dumps(body).encode(),
                       {"Content-Type": "application/json", "Authorization": "Bearer " + token})


class TestGetChallenge(unittest.TestCase):
    def setUp(self):
        self.t = SVC.token()
        self.user = SVC.env["CSC_USER"]

    def challenge(self, cred, obj="CHALLENGE", token=None):
        return SVC.post("credentials/getChallenge", {"credentialID": cred, "authObjectID": obj}, token or self.t)

    def authz(self, cred, code, pin=None, digests=None):
        auth = [{"id": "CHALLENGE", "value": code}]
        if pin is not None:
            auth.append({"id": "PIN", "value": pin})
        digests = digests or [H.digest("challenge %s" % time.time())]
        body = {"credentialID": cred, "numSignatures": len(digests), "authData": auth,
                "hashes": [H.b64(d) for d in digests], "hashAlgorithmOID": H.SHA256}
        return SVC.post("credentials/authorize", body, self.t)

    def test_advertised_and_described(self):
        r = SVC.post("info", {})
        self.assertIn("credentials/getChallenge", r.json["methods"])
        r = SVC.post("credentials/info", {"credentialID": "ch-pin", "authInfo": True}, self.t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["auth"]["expression"], "PIN AND CHALLENGE")
        objs = {o["id"]: o for o in r.json["auth"]["objects"]}
        self.assertEqual(objs["CHALLENGE"]["type"], "ChallengeResponse")
        self.assertEqual(objs["PIN"]["type"], "Password")

    def test_delivered_accepted_once_and_signs(self):
        n0 = len(sink_lines())
        r = self.challenge("ch-pin")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.raw, b"")
        lines = sink_lines()
        self.assertEqual(len(lines), n0 + 1)
        user, cred, obj, code = lines[-1]
        self.assertEqual((user, cred, obj), (self.user, "ch-pin", "CHALLENGE"))
        self.assertRegex(code, r"^[0-9]{6}$")
        d = H.digest("signed after a challenge")
        # the PIN alone does not satisfy "PIN AND CHALLENGE"
        r = SVC.authorize(self.t, "ch-pin", [d], pin=SVC.env["CSC_PIN"])
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error"], "invalid_authentication_data")
        r = self.authz("ch-pin", code, SVC.env["CSC_PIN"], [d])
        self.assertEqual(r.status, 200, r)
        self.assertNotIn(code.encode(), r.raw)
        sad = r.json["SAD"]
        r = SVC.post("signatures/signHash", {"credentialID": "ch-pin", "SAD": sad, "hashes": [H.b64(d)],
                                             "signAlgo": H.ECDSA_SHA256}, self.t)
        self.assertEqual(r.status, 200, r)
        pem = SVC.cert_pem(self.t, "ch-pin")
        self.assertTrue(H.verify(pem, base64.b64decode(r.json["signatures"][0]), d))
        # the same code a second time
        r = self.authz("ch-pin", code, SVC.env["CSC_PIN"])
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error"], "invalid_authentication_data")

    def test_wrong_code_uses_it_up(self):
        self.assertEqual(self.challenge("ch-only").status, 204)
        code = last_code(self.user, "ch-only")
        wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
        r = self.authz("ch-only", wrong)
        self.assertEqual(r.json["error"], "invalid_authentication_data", r)
        r = self.authz("ch-only", code)
        self.assertEqual(r.json["error"], "invalid_authentication_data", r)
        # a fresh code works (and resets the failure count)
        self.assertEqual(self.challenge("ch-only").status, 204)
        r = self.authz("ch-only", last_code(self.user, "ch-only"))
        self.assertEqual(r.status, 200, r)

    def test_new_code_replaces_old(self):
        self.assertEqual(self.challenge("ch-only").status, 204)
        old = last_code(self.user, "ch-only")
        self.assertEqual(self.challenge("ch-only").status, 204)
        new = last_code(self.user, "ch-only")
        if old != new:
            self.assertEqual(self.authz("ch-only", old).status, 400)
            self.assertEqual(self.challenge("ch-only").status, 204)
            new = last_code(self.user, "ch-only")
        self.assertEqual(self.authz("ch-only", new).status, 200)

    def test_refusals(self):
        n0 = len(sink_lines())
        r = self.challenge("ch-pin", obj="PIN")
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter authObjectID"))
        r = self.challenge(SVC.env["CSC_CRED_EC"])   # a PIN-only credential
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter authObjectID"))
        r = self.challenge("ch-other")                # another user's
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter credentialID"))
        r = self.challenge("no-such-cred")
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter credentialID"))
        r = SVC.post("credentials/getChallenge", {"credentialID": "ch-pin"}, self.t)
        self.assertEqual(r.status, 400, r)
        r = SVC.post("credentials/getChallenge", {"credentialID": "ch-pin", "authObjectID": 5}, self.t)
        self.assertEqual(r.status, 400, r)
        r = SVC.post("credentials/getChallenge", {"credentialID": "ch-pin", "authObjectID": "CHALLENGE"})
        self.assertEqual(r.status, 401, r)
        self.assertEqual(len(sink_lines()), n0)       # nothing was sent for any refusal

    def test_other_user_cannot_use_a_code(self):
        # demo2's own credential gets a code; demo cannot spend it (the credential is not theirs)
        t2 = SVC.token(SVC.env["CSC_USER2"], SVC.env["CSC_PASSWORD2"])
        self.assertEqual(self.challenge("ch-other", token=t2).status, 204)
        code = last_code(SVC.env["CSC_USER2"], "ch-other")
        r = self.authz("ch-other", code)
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter credentialID"))

    def test_lockout(self):
        for _ in range(5):   # max_failures default
            self.assertEqual(self.challenge("ch-lock").status, 204)
            code = last_code(self.user, "ch-lock")
            wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
            self.assertEqual(self.authz("ch-lock", wrong).status, 400)
        n0 = len(sink_lines())
        r = self.challenge("ch-lock")
        self.assertEqual((r.status, r.json["error_description"]), (400, "Credential locked"))
        self.assertEqual(len(sink_lines()), n0)

    def test_v1_send_otp(self):
        r = SVC.request("POST", "/csc/v1/info", b"{}", {"Content-Type": "application/json"})
        self.assertIn("credentials/sendOTP", r.json["methods"])
        r = v1("credentials/info", {"credentialID": "ch-v1"}, self.t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["OTP"]["type"], "online")
        self.assertEqual(r.json["OTP"]["presence"], "true")
        r = v1("credentials/sendOTP", {"credentialID": "ch-v1"}, self.t)
        self.assertEqual(r.status, 204, r)
        code = last_code(self.user, "ch-v1")
        d = H.digest("v1 online otp")
        body = {"credentialID": "ch-v1", "numSignatures": 1, "hash": [H.b64(d)], "PIN": SVC.env["CSC_PIN"],
                "OTP": code}
        r = v1("credentials/authorize", body, self.t)
        self.assertEqual(r.status, 200, r)
        r = v1("credentials/authorize", body, self.t)
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_pin"))  # v1 code for a PIN + OTP denial
        r = v1("credentials/sendOTP", {"credentialID": SVC.env["CSC_CRED_EC"]}, self.t)
        self.assertEqual(r.status, 400, r)
        # v2 has no sendOTP
        r = SVC.post("credentials/sendOTP", {"credentialID": "ch-v1"}, self.t)
        self.assertEqual(r.status, 404, r)

    def test_audit_and_no_code_in_logs(self):
        self.assertEqual(self.challenge("ch-only").status, 204)
        code = last_code(self.user, "ch-only")
        self.assertEqual(self.authz("ch-only", code).status, 200)
        r = SVC.admin("audit", "query", "--event", "challenge", "--credential", "ch-only")
        self.assertIn("challenge ok", r.stdout)
        logs = SVC.server_stderr()
        for root, _, files in os.walk(os.path.join(SVC.dir, "log")):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    logs += fh.read().decode(errors="replace")
        r = SVC.admin("audit", "query", "--json")
        for parts in sink_lines():
            self.assertNotIn(parts[3], r.stdout)
        self.assertNotIn("code=", logs)


EXEC_SCRIPT = """#!/bin/sh
cat >> %(dir)s/exec.out
test -e %(dir)s/hang && sleep 30
test -e %(dir)s/fail && exit 3
exit 0
"""


class TestExecSender(unittest.TestCase):
    """otp_sender = exec:PROG: the program gets user, credential, channel and code on stdin."""

    @classmethod
    def setUpClass(cls):
        cls.d = tempfile.mkdtemp(prefix="csc-exec-")
        prog = os.path.join(cls.d, "send.sh")
        with open(prog, "w") as f:
            f.write(EXEC_SCRIPT % {"dir": cls.d})
        os.chmod(prog, stat.S_IRWXU)
        cls.svc = H.Service(BUILD, "otp_sender = exec:%s\notp_sender_timeout = 2\nchallenge_ttl = 5\n" % prog)
        add_cred(cls.svc, "ch-exec", cls.svc.env["CSC_USER"], "CHALLENGE", None)
        cls.svc.start()
        cls.t = cls.svc.token()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()

    def setUp(self):
        for f in ("fail", "hang"):
            if os.path.exists(os.path.join(self.d, f)):
                os.unlink(os.path.join(self.d, f))

    def messages(self):
        try:
            with open(os.path.join(self.d, "exec.out")) as f:
                text = f.read()
        except FileNotFoundError:
            return []
        return re.findall(r"user=(\S+)\ncredential=(\S+)\nchannel=(\S+)\ncode=(\d+)\n", text)

    def challenge(self):
        return self.svc.post("credentials/getChallenge", {"credentialID": "ch-exec", "authObjectID": "CHALLENGE"},
                             self.t)

    def authz(self, code):
        return self.svc.post("credentials/authorize", {"credentialID": "ch-exec", "numSignatures": 1,
                                                       "authData": [{"id": "CHALLENGE", "value": code}]}, self.t)

    def test_stdin_and_accept(self):
        r = self.challenge()
        self.assertEqual(r.status, 204, r)
        user, cred, channel, code = self.messages()[-1]
        self.assertEqual((user, cred, channel), (self.svc.env["CSC_USER"], "ch-exec", "CHALLENGE"))
        self.assertEqual(self.authz(code).status, 200)

    def test_failure_is_a_clean_error(self):
        open(os.path.join(self.d, "fail"), "w").close()
        r = self.challenge()
        self.assertEqual((r.status, r.json["error"]), (503, "temporarily_unavailable"))
        # the code the failing program received is not usable
        code = self.messages()[-1][3]
        self.assertEqual(self.authz(code).status, 400)
        r = self.svc.admin("audit", "query", "--event", "challenge", "--credential", "ch-exec")
        self.assertIn("sender failed", r.stdout)

    def test_timeout_is_a_clean_error(self):
        open(os.path.join(self.d, "hang"), "w").close()
        r = self.challenge()
        self.assertEqual((r.status, r.json["error"]), (503, "temporarily_unavailable"))
        r = self.svc.admin("audit", "query", "--event", "challenge", "--credential", "ch-exec")
        self.assertIn("sender timed out", r.stdout)

    def test_expired_code(self):
        self.assertEqual(self.challenge().status, 204)
        code = self.messages()[-1][3]
        time.sleep(6)   # challenge_ttl = 5
        r = self.authz(code)
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_authentication_data"))


class TestNoSender(unittest.TestCase):
    def test_not_configured_is_501_and_not_advertised(self):
        svc = H.Service(BUILD)
        add_cred(svc, "ch-x", svc.env["CSC_USER"], "CHALLENGE", None)
        svc.start()
        try:
            self.assertNotIn("credentials/getChallenge", svc.post("info", {}).json["methods"])
            t = svc.token()
            r = svc.post("credentials/getChallenge", {"credentialID": "ch-x", "authObjectID": "CHALLENGE"}, t)
            self.assertEqual((r.status, r.json["error"]), (501, "not_implemented"))
            r = svc.request("POST", "/csc/v1/credentials/sendOTP", b'{"credentialID":"ch-x"}',
                            {"Content-Type": "application/json", "Authorization": "Bearer " + t})
            self.assertEqual(r.status, 501, r)
        finally:
            svc.stop()


if __name__ == "__main__":
    unittest.main()
