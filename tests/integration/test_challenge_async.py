"""credentials/getChallenge and v1 credentials/sendOTP: one-time codes for the CHALLENGE object, delivered out of
band by the configured otp_sender (file sink and exec program), then accepted once by credentials/authorize."""
import base64
import json
import os
import re
import http.server
import ssl
import subprocess
import stat
import tempfile
import threading
import time
import unittest
import urllib.parse

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SVC = None
SINK = None


def add_cred(svc, cid, user, auth, pin, multisign=5):
    svc.create_credential("--id", cid, "--user", user, "--key", "p256", "--auth", auth, "--scal", "1",
                          "--multisign", str(multisign), pin=pin)


HOLD = os.path.join(tempfile.mkdtemp(prefix="csc-hold-"), "hold")


def hold_jobs():
    """The async workers of csc-server-test (csc-server with the test hooks compiled in; never csc-server) wait
    before each job while this file exists (CSC_TEST_ASYNC_HOLD, csc_async.c); a response_uri notification no
    longer occupies a worker."""
    open(HOLD, "w").close()


def release_jobs():
    if os.path.exists(HOLD):
        os.unlink(HOLD)


def wait_held(timeout=30):
    deadline = time.time() + timeout
    while not os.path.exists(HOLD + ".held"):
        if time.time() > deadline:
            raise AssertionError("no worker took a job")
        time.sleep(0.05)


def setUpModule():
    global SVC, SINK
    d = tempfile.mkdtemp(prefix="csc-sink-")
    SINK = os.path.join(d, "codes.txt")
    os.environ["CSC_TEST_ASYNC_HOLD"] = HOLD   # inherited by every server this module starts (csc-server ignores it)
    SVC = H.Service(BUILD, "otp_sender = file:%s\n" % SINK)
    add_cred(SVC, "ch-pin", SVC.env["CSC_USER"], "PIN AND CHALLENGE", SVC.env["CSC_PIN"])
    add_cred(SVC, "ch-only", SVC.env["CSC_USER"], "CHALLENGE", None)
    add_cred(SVC, "ch-lock", SVC.env["CSC_USER"], "CHALLENGE", None)
    add_cred(SVC, "ch-v1", SVC.env["CSC_USER"], "PIN AND CHALLENGE", SVC.env["CSC_PIN"])
    add_cred(SVC, "ch-other", SVC.env["CSC_USER2"], "CHALLENGE", None)
    add_cred(SVC, "ap-pin", SVC.env["CSC_USER"], "PIN AND APPROVAL", SVC.env["CSC_PIN"])
    add_cred(SVC, "ap-only", SVC.env["CSC_USER"], "APPROVAL", None)
    SVC.start()


def tearDownModule():
    release_jobs()
    os.environ.pop("CSC_TEST_ASYNC_HOLD", None)
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

    def test_pending_code_survives_a_restart(self):
        # pending codes are in storage (under a key csc-sam derives from the HSM the same way at every start), not
        # in a process: csc-server and csc-sam both restart in between, and the code is still good, once
        self.assertEqual(self.challenge("ch-only").status, 204)
        code = last_code(self.user, "ch-only")
        SVC.stop()
        SVC.start()
        self.t = SVC.token()
        r = self.authz("ch-only", code)
        self.assertEqual(r.status, 200, r)
        r = self.authz("ch-only", code)
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_authentication_data"), r)

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

    def test_asked_again_too_soon(self):
        self.assertEqual(self.challenge("ch-only").status, 204)
        code = last_code(self.user, "ch-only")
        n0 = len(sink_lines())
        r = self.challenge("ch-only")
        self.assertEqual((r.status, r.json["error"]), (429, "temporarily_unavailable"))
        self.assertEqual(len(sink_lines()), n0)      # no second message
        self.assertEqual(self.authz("ch-only", code).status, 200)   # the first code still works

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
        r = v1("credentials/info", {"credentialID": "ch-v1", "authInfo": True}, self.t)
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
        # the new event types chain like any other record
        r = SVC.admin("audit", "verify")
        self.assertIn("audit log OK", r.stdout)


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


class Listener:
    """A tiny local HTTP(S) server for response_uri: records each POST; answers once release is set."""

    def __init__(self, cert=None, key=None):
        self.bodies = []
        self.got = threading.Condition()
        self.release = threading.Event()
        self.release.set()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.got:
                    outer.bodies.append((self.path, body))
                    outer.got.notify_all()
                outer.release.wait(20)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.tls = cert is not None
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
            self.srv.handle_error = lambda *a: None   # refused handshakes are expected in one test
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path="/done"):
        return "%s://localhost:%d%s" % ("https" if self.tls else "http", self.port, path)

    def wait_for(self, n, timeout=30):
        with self.got:
            return self.got.wait_for(lambda: len(self.bodies) >= n, timeout)

    def close(self):
        self.release.set()
        self.srv.shutdown()


PENDING = ("The previous asynchronous signature request has been accepted for processing, but the processing has not "
           "yet been completed.")


class TestAsync(unittest.TestCase):
    """operationMode A and signPolling, on csc-server-test: its jobs can be held (hold_jobs())."""

    @classmethod
    def setUpClass(cls):
        cls.lis = Listener()
        # One async worker and a short queue: the tests make jobs wait behind a held one.
        cls.svc = H.Service(BUILD, "async_workers = 1\nasync_queue = 3\n", server="csc-server-test")
        for cid in ("as-ec", "as-gone"):
            add_cred(cls.svc, cid, cls.svc.env["CSC_USER"], "PIN", cls.svc.env["CSC_PIN"], multisign=50)
        cls.svc.start()

    @classmethod
    def tearDownClass(cls):
        release_jobs()
        cls.svc.stop()
        cls.lis.close()

    def setUp(self):
        self.t = self.svc.token()
        self.lis.release.set()
        release_jobs()

    def sad(self, n, digests=None, cred="as-ec"):
        r = self.svc.authorize(self.t, cred, digests or [], num=n, pin=self.svc.env["CSC_PIN"])
        self.assertEqual(r.status, 200, r)
        return r.json["SAD"]

    def sign_async(self, sad, digests, extra=None, cred="as-ec", token=None):
        body = {"credentialID": cred, "SAD": sad, "hashes": [H.b64(d) for d in digests],
                "signAlgo": H.ECDSA_SHA256, "operationMode": "A"}
        body.update(extra or {})
        return self.svc.post("signatures/signHash", body, token or self.t)

    def poll(self, rid, token=None, extra=None):
        body = {"requestID": rid}
        body.update(extra or {})
        return self.svc.post("signatures/signPolling", body, token or self.t)

    def wait_done(self, rid, token=None):
        deadline = time.time() + 60
        while time.time() < deadline:
            r = self.poll(rid, token)
            if r.status != 202:
                return r
            time.sleep(0.1)
        self.fail("still pending")

    def hold_worker(self):
        """Make the one worker hold a job: jobs queued after this stay pending until release_jobs()."""
        hold_jobs()
        r = self.sign_async(self.sad(1), [H.digest("holder %s" % time.time())])
        self.assertEqual(r.status, 200, r)
        wait_held()
        return r.json["responseID"]

    def test_info(self):
        r = self.svc.post("info", {})
        self.assertTrue(r.json["asynchronousOperationMode"])
        self.assertIn("signatures/signPolling", r.json["methods"])

    def test_pending_then_result_verifies_and_notifies(self):
        holder = self.hold_worker()
        ds = [H.digest("async one"), H.digest("async two")]
        sad = self.sad(2, ds)
        n0 = len(self.lis.bodies)
        r = self.sign_async(sad, ds, {"response_uri": self.lis.url("/cb?x=1"), "validity_period": 60000})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(list(r.json), ["responseID"])
        rid = r.json["responseID"]
        self.assertRegex(rid, r"^[A-Za-z0-9_-]{43}$")
        r = self.poll(rid)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json, {"error": "accepted_request", "error_description": PENDING})
        # the SAD was spent when the request was accepted: no second use meanwhile
        r = self.svc.post("signatures/signHash", {"credentialID": "as-ec", "SAD": sad, "hashes": [H.b64(ds[0])],
                                                  "signAlgo": H.ECDSA_SHA256}, self.t)
        self.assertEqual(r.status, 400, r)
        release_jobs()
        r = self.wait_done(rid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(list(r.json), ["signatures"])
        pem = self.svc.cert_pem(self.t, "as-ec")
        for sig, d in zip(r.json["signatures"], ds):
            self.assertTrue(H.verify(pem, base64.b64decode(sig), d))
        # polled again: the same result while the validity period lasts
        self.assertEqual(self.poll(rid).json, r.json)
        self.assertTrue(self.lis.wait_for(n0 + 1))
        paths = [p for p, b in self.lis.bodies]
        self.assertIn("/cb?x=1", paths)
        body = dict((p, b) for p, b in self.lis.bodies)["/cb?x=1"]
        self.assertEqual(json.loads(body), {"responseID": rid})
        self.assertEqual(self.wait_done(holder).status, 200)
        # the result bytes never reach the logs
        logs = self.svc.server_stderr()
        self.assertNotIn(r.json["signatures"][0], logs)
        self.assertNotIn(rid, logs)

    def test_only_the_user_who_asked(self):
        d = H.digest("mine")
        r = self.sign_async(self.sad(1), [d])
        rid = r.json["responseID"]
        t2 = self.svc.token(self.svc.env["CSC_USER2"], self.svc.env["CSC_PASSWORD2"])
        r = self.poll(rid, t2)
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter requestID"))
        self.assertEqual(self.wait_done(rid).status, 200)
        r = self.poll(rid, t2)
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter requestID"))

    def test_gone_after_validity_period(self):
        r = self.sign_async(self.sad(1), [H.digest("short")], {"validity_period": 2000})
        self.assertEqual(r.status, 200, r)
        rid = r.json["responseID"]
        self.assertEqual(self.wait_done(rid).status, 200)
        time.sleep(2.2)
        r = self.poll(rid)
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter requestID"))

    def test_bad_parameters(self):
        sad = self.sad(1)
        d = [H.digest("bad params")]
        cases = [({"validity_period": 0}, "Out of bounds parameter validity_period"),
                 ({"validity_period": 3600001}, "Out of bounds parameter validity_period"),
                 ({"validity_period": "soon"}, "Invalid parameter validity_period"),
                 ({"validity_period": [1]}, "Invalid parameter validity_period"),
                 ({"response_uri": "ftp://localhost/x"}, "Invalid parameter response_uri"),
                 ({"response_uri": "http://example.com/x"}, "Invalid parameter response_uri"),
                 ({"response_uri": "https://user@example.com/x"}, "Invalid parameter response_uri"),
                 ({"response_uri": "https://example.com/x#f"}, "Invalid parameter response_uri"),
                 ({"response_uri": "https://example.com:99999/"}, "Invalid parameter response_uri"),
                 ({"response_uri": 5}, "Invalid parameter response_uri"),
                 ({"operationMode": "X"}, "Invalid parameter operationMode")]
        for extra, desc in cases:
            with self.subTest(extra=extra):
                r = self.sign_async(sad, d, extra)
                self.assertEqual((r.status, r.json["error_description"]), (400, desc))
        # none of them spent the SAD
        self.assertEqual(self.wait_done(self.sign_async(sad, d).json["responseID"]).status, 200)
        # with "S" the async parameters are ignored
        r = self.svc.post("signatures/signHash", {"credentialID": "as-ec", "SAD": self.sad(1), "hashes": [H.b64(d[0])],
                                                  "signAlgo": H.ECDSA_SHA256, "operationMode": "S",
                                                  "validity_period": 0, "response_uri": "ftp://x"}, self.t)
        self.assertEqual(r.status, 200, r)
        self.assertIn("signatures", r.json)

    def test_bad_sad_refused_at_once(self):
        r = self.sign_async("A" * 43, [H.digest("x")])
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter SAD"))

    def test_polling_errors(self):
        r = self.svc.post("signatures/signPolling", {}, self.t)
        self.assertEqual((r.status, r.json["error_description"]),
                         (400, "Missing (or invalid type) string parameter requestID"))
        for rid in ("short", "A" * 43, "!" * 43):
            r = self.poll(rid)
            self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter requestID"))
        r = self.poll("A" * 43, extra={"userID": "demo"})
        self.assertEqual((r.status, r.json["error_description"]), (400, "userID parameter SHALL be null"))
        r = self.svc.post("signatures/signPolling", {"requestID": "A" * 43})
        self.assertEqual(r.status, 401, r)

    def test_queue_full_spends_nothing(self):
        holder = self.hold_worker()
        sad = self.sad(5)
        rids = []
        for i in range(3):   # async_queue = 3
            r = self.sign_async(sad, [H.digest("queued %d" % i)])
            self.assertEqual(r.status, 200, r)
            rids.append(r.json["responseID"])
        r = self.sign_async(sad, [H.digest("one too many")])
        self.assertEqual((r.status, r.json["error"]), (503, "temporarily_unavailable"))
        for rid in rids:
            self.assertEqual(self.poll(rid).status, 202)
        release_jobs()
        for rid in rids + [holder]:
            self.assertEqual(self.wait_done(rid).status, 200)
        # the refused request did not spend its signature: 2 are left of 5
        r = self.svc.post("signatures/signHash", {"credentialID": "as-ec", "SAD": sad,
                                                  "hashes": [H.b64(H.digest("a")), H.b64(H.digest("b"))],
                                                  "signAlgo": H.ECDSA_SHA256}, self.t)
        self.assertEqual(r.status, 200, r)
        r = self.svc.post("signatures/signHash", {"credentialID": "as-ec", "SAD": sad, "hashes": [H.b64(H.digest("c"))],
                                                  "signAlgo": H.ECDSA_SHA256}, self.t)
        self.assertEqual(r.status, 400, r)

    def test_audited_when_accepted(self):
        d = H.digest("audited async")
        r = self.sign_async(self.sad(1), [d])
        self.assertEqual(self.wait_done(r.json["responseID"]).status, 200)
        q = self.svc.admin("audit", "query", "--event", "sign", "--credential", "as-ec", "--json")
        recs = [json.loads(line) for line in q.stdout.splitlines()]
        self.assertTrue(any(H.b64(d) in rec.get("digests", []) and rec["result"] == "ok" for rec in recs), recs[-1:])


    def test_failed_signing_is_recorded(self):
        """The key is destroyed while the job waits: the HSM fails, the result says so, the failure is audited."""
        holder = self.hold_worker()
        d = H.digest("never signed")
        r = self.sign_async(self.sad(1, cred="as-gone"), [d], cred="as-gone")
        self.assertEqual(r.status, 200, r)
        rid = r.json["responseID"]
        self.svc.admin("credential", "destroy", "as-gone")
        release_jobs()
        r = self.wait_done(rid)
        self.assertEqual(r.status, 500, r)
        self.assertEqual(r.json["error"], "server_error")
        self.assertEqual(self.wait_done(holder).status, 200)
        q = self.svc.admin("audit", "query", "--event", "sign-result", "--credential", "as-gone")
        self.assertIn("sign-result error", q.stdout)


class TestAsyncRestart(unittest.TestCase):
    """Jobs that never ran: stopped with the service (budget given back) or killed with it (marked failed).
    On csc-server-test, whose jobs can be held (hold_jobs())."""

    @classmethod
    def setUpClass(cls):
        cls.lis = Listener()
        cls.svc = H.Service(BUILD, "async_workers = 1\n", server="csc-server-test")
        add_cred(cls.svc, "rs-ec", cls.svc.env["CSC_USER"], "PIN", cls.svc.env["CSC_PIN"], multisign=50)
        cls.svc.start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()
        cls.lis.close()

    def queue_behind_holder(self):
        svc, t = self.svc, self.svc.token()
        hold_jobs()
        sad1 = svc.authorize(t, "rs-ec", [], num=1, pin=svc.env["CSC_PIN"]).json["SAD"]
        body = {"credentialID": "rs-ec", "SAD": sad1, "hashes": [H.b64(H.digest("holder"))],
                "signAlgo": H.ECDSA_SHA256, "operationMode": "A"}
        self.assertEqual(svc.post("signatures/signHash", body, t).status, 200)
        wait_held()
        sad = svc.authorize(t, "rs-ec", [], num=1, pin=svc.env["CSC_PIN"]).json["SAD"]
        body = {"credentialID": "rs-ec", "SAD": sad, "hashes": [H.b64(H.digest("queued"))],
                "signAlgo": H.ECDSA_SHA256, "operationMode": "A"}
        r = svc.post("signatures/signHash", body, t)
        self.assertEqual(r.status, 200, r)
        return sad, r.json["responseID"]

    def test_stopped_gives_budget_back(self):
        sad, rid = self.queue_behind_holder()
        self.svc.stop()             # the held worker sees the service stop: both jobs are aborted
        release_jobs()
        self.svc.start()
        t = self.svc.token()
        r = self.svc.post("signatures/signPolling", {"requestID": rid}, t)
        self.assertEqual((r.status, r.json["error"]), (503, "temporarily_unavailable"), r)
        r = self.svc.post("signatures/signHash", {"credentialID": "rs-ec", "SAD": sad, "hashes": [H.b64(H.digest("x"))],
                                                  "signAlgo": H.ECDSA_SHA256}, t)
        self.assertEqual(r.status, 200, r)   # the aborted job's signature was given back to the SAD
        q = self.svc.admin("audit", "query", "--event", "sign-result", "--credential", "rs-ec")
        self.assertIn("service stopped", q.stdout)

    def test_killed_marked_failed(self):
        sad, rid = self.queue_behind_holder()
        self.svc.proc.kill()
        self.svc.proc.wait()
        self.svc.proc = None
        self.svc.stderr.close()
        release_jobs()
        self.svc.start()
        r = self.svc.post("signatures/signPolling", {"requestID": rid}, self.svc.token())
        self.assertEqual((r.status, r.json["error"]), (500, "server_error"), r)
        self.assertIn("restarted", r.json["error_description"])


class TestNotifyTLS(unittest.TestCase):
    """response_uri over https: the listener's certificate is verified (trust store and host name)."""

    @classmethod
    def setUpClass(cls):
        cls.svc = H.Service(BUILD)
        d = cls.svc.dir
        # trusted: the provisioned localhost certificate, with the demo CA as the server's trust store
        cls.good = Listener(os.path.join(d, "tls", "server.crt"), os.path.join(d, "tls", "server.key"))
        # untrusted: a self-signed localhost certificate
        key, crt = os.path.join(cls.svc.tmp, "self.key"), os.path.join(cls.svc.tmp, "self.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", crt, "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost", "-days", "2"], check=True, capture_output=True)
        cls.bad = Listener(crt, key)
        old = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = cls.svc.env["CSC_TLS_CA"]   # OpenSSL's default verify paths honour it
        try:
            add_cred(cls.svc, "tl-ec", cls.svc.env["CSC_USER"], "PIN", cls.svc.env["CSC_PIN"], multisign=10)
            cls.svc.start()
        finally:
            if old is None:
                del os.environ["SSL_CERT_FILE"]
            else:
                os.environ["SSL_CERT_FILE"] = old

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()
        cls.good.close()
        cls.bad.close()

    def submit(self, uri):
        svc, t = self.svc, self.svc.token()
        sad = svc.authorize(t, "tl-ec", [], num=1, pin=svc.env["CSC_PIN"]).json["SAD"]
        r = svc.post("signatures/signHash", {"credentialID": "tl-ec", "SAD": sad, "hashes": [H.b64(H.digest(uri))],
                                             "signAlgo": H.ECDSA_SHA256, "operationMode": "A", "response_uri": uri}, t)
        self.assertEqual(r.status, 200, r)
        rid = r.json["responseID"]
        deadline = time.time() + 30
        while time.time() < deadline:
            p = svc.post("signatures/signPolling", {"requestID": rid}, t)
            if p.status != 202:
                break
            time.sleep(0.1)
        self.assertEqual(p.status, 200, p)   # the result does not depend on the notification
        return rid

    def test_trusted_listener_notified(self):
        rid = self.submit(self.good.url("/tls-cb"))
        self.assertTrue(self.good.wait_for(1, timeout=20))
        self.assertEqual(json.loads(self.good.bodies[-1][1]), {"responseID": rid})

    def test_untrusted_listener_not_notified(self):
        self.submit(self.bad.url("/secret-path?token=abc"))
        deadline = time.time() + 20
        while "certificate verification failed" not in self.svc.server_stderr() and time.time() < deadline:
            time.sleep(0.2)
        log = self.svc.server_stderr()
        self.assertIn("response_uri notification to localhost failed: TLS handshake or certificate verification "
                      "failed", log)
        self.assertEqual(self.bad.bodies, [])
        self.assertNotIn("secret-path", log)   # only the host is logged
        self.assertNotIn("token=abc", log)


class Trickler:
    """A response_uri receiver that reads the request, then sends its status line one byte every 0.4 s (about 10 s
    in all): each byte would renew a per-read timeout. Records when the server hung up."""

    def __init__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted, self.closed_at = [], []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(time.time())
            threading.Thread(target=self.trickle, args=(c,), daemon=True).start()

    def trickle(self, c):
        c.settimeout(30)
        try:
            c.recv(65536)
            for b in b"HTTP/1.1 204 No Content\r\n\r\n":
                time.sleep(0.4)
                c.sendall(bytes([b]))
        except OSError:
            self.closed_at.append(time.time())   # the server closed the connection
        finally:
            c.close()

    def url(self, path="/slow"):
        return "http://localhost:%d%s" % (self.port, path)

    def close(self):
        self.sock.close()


class TestSlowReceiver(unittest.TestCase):
    """Issue 9 item 6: response_uri notifications run on their own threads under one overall deadline
    (notify_timeout = 3 here); receivers that never answer or trickle bytes delay nobody's asynchronous work."""

    @classmethod
    def setUpClass(cls):
        cls.hang = Listener()
        cls.hang.release.clear()               # reads the POST, never answers (within the test)
        cls.slow = Trickler()
        cls.svc = H.Service(BUILD, "async_workers = 1\nnotify_timeout = 3\n")
        add_cred(cls.svc, "sr-ec", cls.svc.env["CSC_USER"], "PIN", cls.svc.env["CSC_PIN"], multisign=50)
        add_cred(cls.svc, "sr-other", cls.svc.env["CSC_USER2"], "PIN", cls.svc.env["CSC_PIN"], multisign=50)
        release_jobs()
        cls.svc.start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()
        cls.hang.close()
        cls.slow.close()

    def submit(self, token, cred, extra=None):
        svc = self.svc
        sad = svc.authorize(token, cred, [], num=1, pin=svc.env["CSC_PIN"]).json["SAD"]
        body = {"credentialID": cred, "SAD": sad, "hashes": [H.b64(H.digest("slow %s" % time.time()))],
                "signAlgo": H.ECDSA_SHA256, "operationMode": "A"}
        body.update(extra or {})
        r = svc.post("signatures/signHash", body, token)
        self.assertEqual(r.status, 200, r)
        return r.json["responseID"]

    def done_within(self, token, rid, seconds):
        t0 = time.time()
        while time.time() - t0 < seconds:
            p = self.svc.post("signatures/signPolling", {"requestID": rid}, token)
            if p.status != 202:
                self.assertEqual(p.status, 200, p)
                return time.time() - t0
            time.sleep(0.05)
        self.fail("still pending after %.1f s" % seconds)

    def test_slow_receivers_delay_nobody_and_are_abandoned(self):
        svc = self.svc
        t1 = svc.token()
        t2 = svc.token(svc.env["CSC_USER2"], svc.env["CSC_PASSWORD2"])
        n_hang = len(self.hang.bodies)
        start = time.time()
        a = self.submit(t1, "sr-ec", {"response_uri": self.hang.url("/never")})
        b = self.submit(t1, "sr-ec", {"response_uri": self.slow.url()})
        # both receivers now hold a notification; the one worker must be free for everybody else
        self.assertTrue(self.hang.wait_for(n_hang + 1, timeout=10))
        for _ in range(3):
            c = self.submit(t2, "sr-other")
            self.done_within(t2, c, 2.5)
            c = self.submit(t1, "sr-ec")
            self.done_within(t1, c, 2.5)
        self.done_within(t1, a, 2.5)
        self.done_within(t1, b, 2.5)
        # the deadline: both notifications abandoned and logged after about notify_timeout, the trickler cut off
        deadline = start + 15
        log = ""
        while time.time() < deadline:
            log = svc.server_stderr()
            if log.count("abandoned: no answer within notify_timeout (3 s)") >= 2:
                break
            time.sleep(0.2)
        self.assertEqual(log.count("response_uri notification to localhost abandoned: no answer within "
                                   "notify_timeout (3 s)"), 2, log[-2000:])
        wait = time.time() + 5
        while not self.slow.closed_at and time.time() < wait:
            time.sleep(0.1)
        self.assertTrue(self.slow.accepted and self.slow.closed_at, "the trickling receiver was not cut off")
        self.assertLess(self.slow.closed_at[0] - self.slow.accepted[0], 6.0)
        self.assertNotIn("never", log)   # only the host is logged


class TestNotifyProduction(unittest.TestCase):
    """Issue 9 item 6 (SSRF): in production a response_uri reaches no internal address unless notify_allow names it;
    the address actually connected to is the one checked."""

    @classmethod
    def setUpClass(cls):
        cls.svc = H.Service(BUILD)
        d = cls.svc.dir
        cls.lis = Listener(os.path.join(d, "tls", "server.crt"), os.path.join(d, "tls", "server.key"))
        cls.svc.production()
        add_cred(cls.svc, "pr-ec", cls.svc.env["CSC_USER"], "PIN", cls.svc.env["CSC_PIN"], multisign=50)

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()
        cls.lis.close()

    def start(self, extra=""):
        if extra:
            with open(self.svc.conf, "a") as f:
                f.write(extra)
        old = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = self.svc.env["CSC_TLS_CA"]
        try:
            self.svc.start()
        finally:
            if old is None:
                del os.environ["SSL_CERT_FILE"]
            else:
                os.environ["SSL_CERT_FILE"] = old

    def submit(self, uri):
        svc, t = self.svc, self.svc.token()
        d = H.digest(uri + str(time.time()))
        sad = svc.authorize(t, "pr-ec", [d], num=1, pin=svc.env["CSC_PIN"]).json["SAD"]
        r = svc.post("signatures/signHash", {"credentialID": "pr-ec", "SAD": sad, "hashes": [H.b64(d)],
                                             "signAlgo": H.ECDSA_SHA256, "operationMode": "A", "response_uri": uri}, t)
        if r.status != 200:
            return r
        rid = r.json["responseID"]
        deadline = time.time() + 30
        while svc.post("signatures/signPolling", {"requestID": rid}, t).status == 202 and time.time() < deadline:
            time.sleep(0.1)
        return rid

    def test_internal_hosts_refused_unless_allowed(self):
        self.start()
        try:
            p = self.lis.port
            for uri in ("https://127.0.0.1:%d/x" % p, "https://[::1]:%d/x" % p, "https://[::ffff:127.0.0.1]:%d/x" % p,
                        "https://0.0.0.0:%d/x" % p, "https://10.1.2.3/x", "https://192.168.0.1/x",
                        "https://169.254.169.254/latest", "https://[fd00::1]/x", "https://[fe80::1]/x"):
                with self.subTest(uri=uri):
                    r = self.submit(uri)
                    self.assertNotIsInstance(r, str, "accepted and run")
                    self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter response_uri"))
            # a name: resolved when the notification is sent, and its loopback addresses are refused
            self.submit(self.lis.url("/prod-refused"))
            deadline = time.time() + 15
            while "refused: the host resolves only to internal addresses" not in self.svc.server_stderr():
                self.assertLess(time.time(), deadline, self.svc.server_stderr()[-2000:])
                time.sleep(0.2)
            self.assertEqual(self.lis.bodies, [])
        finally:
            self.assertEqual(self.svc.stop(), 0)
        # named in notify_allow: notified
        self.start("notify_allow = localhost\n")
        rid = self.submit(self.lis.url("/prod-allowed"))
        self.assertTrue(self.lis.wait_for(1, timeout=20), self.svc.server_stderr()[-2000:])
        self.assertEqual(self.lis.bodies[-1][0], "/prod-allowed")
        self.assertEqual(json.loads(self.lis.bodies[-1][1]), {"responseID": rid})


class TestApproval(unittest.TestCase):
    """authorize 202 + handle, approval on /approve (plain HTTP with cookie and CSRF token), authorizeCheck."""

    @classmethod
    def setUpClass(cls):
        cls.b = H.Browser(SVC, "/approve")
        cls.b.login(SVC.env["CSC_USER"], SVC.env["CSC_PASSWORD"], SVC.env["CSC_TOTP_SECRET"])

    def setUp(self):
        self.t = SVC.token()

    def request(self, cred, digests, num=None):
        body = {"credentialID": cred, "numSignatures": num or len(digests)}
        if digests:
            body["hashes"] = [H.b64(d) for d in digests]
            body["hashAlgorithmOID"] = H.SHA256
        r = SVC.post("credentials/authorize", body, self.t)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(list(r.json), ["handle"])
        return r.json["handle"]

    def check(self, handle, token=None):
        return SVC.post("credentials/authorizeCheck", {"handle": handle}, token or self.t)

    def test_described(self):
        r = SVC.post("info", {})
        self.assertIn("credentials/authorizeCheck", r.json["methods"])
        r = SVC.post("credentials/info", {"credentialID": "ap-pin", "authInfo": True}, self.t)
        objs = {o["id"]: o for o in r.json["auth"]["objects"]}
        self.assertEqual(objs["APPROVAL"]["type"], "PasswordOOB")

    def test_page_is_safe(self):
        b = H.Browser(SVC, "/approve")
        r = b.get()
        self.assertEqual(r.status, 200)
        self.assertIn("frame-ancestors 'none'", r.headers["content-security-policy"])
        for attr in ("__Host-csc_approve=", "HttpOnly", "Secure", "SameSite=Strict"):
            self.assertIn(attr, b.set_cookie)
        # a form without the CSRF token ends the session
        r = b.post({"action": "login", "username": "demo", "password": "x", "otp": "123456"}, csrf=False)
        self.assertEqual(r.status, 400)
        self.assertIn("CSRF", b.text)
        r = b.post({"action": "list"})
        self.assertEqual(r.status, 400)   # the session is gone
        # a wrong password is refused on the page
        b = H.Browser(SVC, "/approve")
        b.get()
        r = b.post({"action": "login", "username": SVC.env["CSC_USER"], "password": "wrong", "otp": "000000"})
        self.assertEqual(r.status, 200)
        self.assertIn("not correct", b.text)
        self.assertNotIn('id="user"', b.text)

    def test_approve_with_pin_then_sign(self):
        d = H.digest("approve me")
        handle = self.request("ap-pin", [d])
        r = self.check(handle)
        self.assertEqual((r.status, r.json), (202, {"handle": handle}))
        self.b.post({"action": "list"})
        ref = self.b.ref_for("ap-pin", d)
        self.assertIsNotNone(ref, self.b.text[:3000])
        self.assertNotIn(handle, self.b.text)        # the page never shows the handle
        self.assertIn('<td class="num">1</td>', self.b.text)
        # wrong PIN: stays pending
        self.b.post({"action": "approve", "ref": ref, "pin": "99999999"})
        self.assertIn("PIN is not correct", self.b.text)
        self.assertEqual(self.check(handle).status, 202)
        self.b.post({"action": "approve", "ref": ref, "pin": SVC.env["CSC_PIN"]})
        self.assertIn("Approved", self.b.text)
        self.assertIsNone(self.b.ref_for("ap-pin", d))
        r = self.check(handle)
        self.assertEqual(r.status, 200, r)
        sad = r.json["SAD"]
        self.assertGreater(r.json["expiresIn"], 0)
        # exactly once
        r = self.check(handle)
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter handle"))
        r = SVC.post("signatures/signHash", {"credentialID": "ap-pin", "SAD": sad, "hashes": [H.b64(d)],
                                             "signAlgo": H.ECDSA_SHA256}, self.t)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(H.verify(SVC.cert_pem(self.t, "ap-pin"), base64.b64decode(r.json["signatures"][0]), d))
        # bound to the digests shown on the page
        q = SVC.admin("audit", "query", "--event", "approval", "--credential", "ap-pin")
        self.assertIn("approval ok", q.stdout)

    def test_refuse(self):
        d = H.digest("refuse me")
        handle = self.request("ap-only", [d])
        self.b.post({"action": "list"})
        ref = self.b.ref_for("ap-only", d)
        self.assertIsNotNone(ref)
        self.b.post({"action": "refuse", "ref": ref})
        self.assertIn("Refused", self.b.text)
        r = self.check(handle)
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_authentication_data"))
        r = self.check(handle)
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter handle"))
        # a decided request cannot be decided again
        self.b.post({"action": "approve", "ref": ref})
        self.assertIn("no longer waiting", self.b.text)
        q = SVC.admin("audit", "query", "--event", "approval", "--credential", "ap-only")
        self.assertIn("approval denied", q.stdout)

    def test_other_user(self):
        handle = self.request("ap-only", [H.digest("not yours")])
        t2 = SVC.token(SVC.env["CSC_USER2"], SVC.env["CSC_PASSWORD2"])
        r = self.check(handle, t2)
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter handle"))
        # still pending for its owner
        self.assertEqual(self.check(handle).status, 202)
        b2 = H.Browser(SVC, "/approve")
        b2.login(SVC.env["CSC_USER2"], SVC.env["CSC_PASSWORD2"], SVC.env["CSC_TOTP_SECRET2"])
        self.assertIn('id="none"', b2.text)
        self.b.post({"action": "list"})
        ref = self.b.ref_for("ap-only")
        b2.post({"action": "approve", "ref": ref})
        self.assertIn("no longer waiting", b2.text)
        self.assertEqual(self.check(handle).status, 202)

    def test_bad_handles_and_v1(self):
        for h in ("x", "A" * 43):
            r = self.check(h)
            self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter handle"))
        r = SVC.post("credentials/authorizeCheck", {}, self.t)
        self.assertEqual((r.status, r.json["error_description"]),
                         (400, "Missing (or invalid type) string parameter handle"))
        r = v1("credentials/authorize", {"credentialID": "ap-only", "numSignatures": 1}, self.t)
        self.assertEqual(r.status, 400, r)


class TestApprovalExpiry(unittest.TestCase):
    def test_expired_handle(self):
        svc = H.Service(BUILD, "approval_ttl = 10\n")
        add_cred(svc, "ap-x", svc.env["CSC_USER"], "APPROVAL", None)
        svc.start()
        try:
            t = svc.token()
            r = svc.post("credentials/authorize", {"credentialID": "ap-x", "numSignatures": 1}, t)
            self.assertEqual(r.status, 202, r)
            handle = r.json["handle"]
            time.sleep(10.5)
            r = svc.post("credentials/authorizeCheck", {"handle": handle}, t)
            self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter handle"))
        finally:
            svc.stop()


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
