"""One node served from PostgreSQL (issue 13). An installation provisioned on LMDB is moved with `csc-admin db copy`
into scripts/pg's cluster (TLS verify-full, a client certificate per role), then served from it: csc-sam connects as
csc_sam (`storage`), csc-server as csc_front (`front_storage`), both under their seccomp filters (the default).

What must hold:
- the usual flows work on PostgreSQL: enrollment, auth/login, credentials/list and info, authorize with a PIN,
  signHash, the audit trail verifies (the copy's record included);
- a pushed authorization request (PAR) lives in the database: csc-server, as csc_front, pushes it, and after a
  restart of the service uses it, once;
- each process uses its own role: csc-server's connections are csc_front's, csc-sam's csc_sam's (application_name
  names the program);
- PostgreSQL stopped under signing load: every request is answered (no hang, never a 500) with 503 and a CSC error
  and `Retry-After: 1`, whether csc-server or csc-sam found the database gone; nothing is acknowledged without its
  audit record and no budget is overspent; when the database is back the same processes serve again (no restart),
  which needs new connections made under the seccomp filters.
"""
import base64
import hashlib
import os
import re
import secrets
import threading
import time
import unittest
import urllib.parse

import harness as H
from pgcluster import PgCluster
from test_sam_faults import audited_ok

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PG = None
SVC = None
CRED = "pg-ec"
PIN = "13572468"
BUDGET = 400
REDIRECT = "http://localhost:8765/callback"
CLIENT = {}


def setUpModule():
    global PG, SVC
    PG = PgCluster(nodes=1).start()
    SVC = H.Service(BUILD)
    SVC.create_credential("--id", CRED, "--user", SVC.env["CSC_USER"], "--key", "p256", "--auth", "PIN", "--scal", "1",
                          "--multisign", str(BUDGET), pin=PIN)
    out = SVC.admin("client", "add", "pgapp", "--redirect", REDIRECT, "--grants", "authorization_code").stdout
    CLIENT["pgapp"] = re.search(r"^client_secret (\S+)$", out, re.M).group(1)
    with open(SVC.conf) as f:
        text = f.read()
    assert "storage = lmdb:db\n" in text, text
    r = SVC.admin("db", "copy", "--from", "lmdb:" + os.path.join(SVC.dir, "db"), "--to",
                  "postgresql:" + PG.conninfo("admin"), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(SVC.conf, "w") as f:
        f.write(text.replace("storage = lmdb:db\n", "storage = postgresql:%s\nfront_storage = postgresql:%s\n"
                             % (PG.conninfo("sam"), PG.conninfo("front"))))
    SVC.start()


def tearDownModule():
    try:
        if SVC is not None:
            SVC.stop_checked()
    finally:
        if PG is not None:
            PG.stop()


def sign_body(sad, digests):
    return {"credentialID": CRED, "SAD": sad, "hashes": digests, "signAlgo": H.ECDSA_SHA256}


class Signer(threading.Thread):
    """Signs one fresh digest per request until told to stop or the SAD is used up; keeps (sent, answered, digest,
    Reply or exception) for every request."""

    def __init__(self, token, sad, name):
        super().__init__(daemon=True)
        self.token, self.sad, self.name = token, sad, name
        self.stop = threading.Event()
        self.answers = []

    def run(self):
        i = 0
        while not self.stop.is_set():
            d = H.b64(H.digest("%s %d" % (self.name, i)))
            i += 1
            sent = time.time()
            try:
                r = SVC.post("signatures/signHash", sign_body(self.sad, [d]), self.token)
            except Exception as e:  # a hang (timeout) or a dropped connection: the test fails on it
                r = e
            self.answers.append((sent, time.time(), d, r))
            if not isinstance(r, Exception) and r.status == 400:
                return  # the SAD is used up
            if not isinstance(r, Exception) and r.status == 503:
                time.sleep(0.05)


class TestOnPostgres(unittest.TestCase):
    def test_flows(self):
        token = SVC.token()
        r = SVC.post("credentials/list", {"credentialInfo": True}, token)
        self.assertEqual(r.status, 200, r)
        self.assertIn(CRED, r.json["credentialIDs"])
        r = SVC.post("credentials/info", {"credentialID": CRED}, token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["key"]["status"], "enabled")
        raw = [H.digest("pg flows %d" % i) for i in range(3)]
        digests = [H.b64(d) for d in raw]
        r = SVC.authorize(token, CRED, raw, pin=PIN)
        self.assertEqual(r.status, 200, r)
        r = SVC.post("signatures/signHash", sign_body(r.json["SAD"], digests), token)
        self.assertEqual(r.status, 200, r)
        pem = SVC.cert_pem(token, CRED)
        for d, s in zip(digests, r.json["signatures"]):
            self.assertTrue(H.verify(pem, base64.b64decode(s), base64.b64decode(d)))
        self.assertEqual(sorted(d for d in audited_ok(SVC, CRED) if d in digests), sorted(digests))
        # a wrong PIN is refused and counted (csc-sam writes the failure), a right one still works afterwards
        r = SVC.authorize(token, CRED, [], num=1, pin="00000000")
        self.assertEqual(r.status, 400, r)
        r = SVC.authorize(token, CRED, [], num=1, pin=PIN)
        self.assertEqual(r.status, 200, r)
        v = SVC.admin("audit", "verify")
        self.assertRegex(v.stdout, r"^audit log OK: \d+ records")
        q = SVC.admin("audit", "query", "--json")
        self.assertIn('"action=db.copy from=lmdb:', q.stdout)

    def test_par_in_the_database(self):
        verifier = base64.urlsafe_b64encode(secrets.token_bytes(40)).rstrip(b"=").decode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        fields = {"response_type": "code", "client_id": "pgapp", "redirect_uri": REDIRECT, "state": "pg-par",
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        basic = "Basic " + base64.b64encode(("pgapp:%s" % CLIENT["pgapp"]).encode()).decode()
        r = SVC.request("POST", "/oauth2/pushed_authorize", urllib.parse.urlencode(fields).encode(),
                        {"Content-Type": "application/x-www-form-urlencoded", "Authorization": basic})
        self.assertEqual(r.status, 201, r)
        path = "/oauth2/authorize?" + urllib.parse.urlencode({"client_id": "pgapp", "request_uri": r.json["request_uri"]})
        self.assertEqual(SVC.stop(), 0)
        SVC.start()
        b = H.Browser(SVC)
        self.assertEqual(b.get(path).status, 200)
        r = b.post({"action": "login", "username": SVC.env["CSC_USER"], "password": SVC.env["CSC_PASSWORD"],
                    "otp": H.fresh_totp(SVC.env["CSC_TOTP_SECRET"], SVC.used_otps)})
        self.assertEqual(r.status, 302, r)
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["location"]).query))
        self.assertEqual(q.get("state"), "pg-par", q)
        self.assertIn("code", q)
        self.assertEqual(H.Browser(SVC).get(path).status, 400)  # used up
        r = PG.psql(PG.conninfo("admin"), "SELECT count(*) FROM csc.pars")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "0"), r.stderr)

    def test_each_process_has_its_own_role(self):
        SVC.token()  # both processes have used the database
        r = PG.psql(PG.conninfo("admin"), "SELECT DISTINCT application_name || ' ' || usename FROM pg_stat_activity "
                                          "WHERE datname = 'csc' AND usename <> 'csc_admin' ORDER BY 1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split("\n")[:-1], ["csc-sam csc_sam", "csc-server csc_front"])

    def test_database_stopped_under_load(self):
        token = SVC.token()
        r = SVC.authorize(token, CRED, [], num=BUDGET, pin=PIN)
        self.assertEqual(r.status, 200, r)
        sad = r.json["SAD"]
        signers = [Signer(token, sad, "pg-load-%d" % k) for k in range(4)]
        for s in signers:
            s.start()
        try:
            H.wait_until(lambda: sum(len(s.answers) for s in signers) >= 8, "signing before the stop", 60)
            stopped = time.time()
            PG.script("stop")
            H.wait_until(lambda: any(a[0] > stopped and not isinstance(a[3], Exception) and a[3].status == 503
                                     for s in signers for a in list(s.answers)), "a 503 while the database is down", 30)
            # what csc-sam answers for a database it cannot reach: auth/login (API_LOGIN) -> DB_DOWN -> Retry-After 1
            basic = "Basic " + H.b64(("%s:%s" % (SVC.env["CSC_USER"], SVC.env["CSC_PASSWORD"])).encode())
            r = SVC.post("auth/login", {}, auth=basic)
            self.assertEqual((r.status, r.headers.get("retry-after")), (503, "1"), r)
            self.assertEqual(r.json["error"], "temporarily_unavailable", r)
            time.sleep(2)
            restarted = time.time()
            PG.script("start")
            try:
                H.wait_until(lambda: any(a[0] > restarted and not isinstance(a[3], Exception) and a[3].status == 200
                                         for s in signers for a in list(s.answers)),
                             "a signature after the database is back", 60)
            except AssertionError as e:
                raise AssertionError("%s: %s" % (e, SVC.server_stderr()[-3000:]))
            r = SVC.post("auth/login", {}, auth=basic)
            self.assertEqual(r.status, 200, r)
        finally:
            for s in signers:
                s.stop.set()
            for s in signers:
                s.join(60)
        answers = [a for s in signers for a in s.answers]
        bad = [(round(t1 - t0, 2), r) for (t0, t1, _, r) in answers if isinstance(r, Exception) or
               r.status not in (200, 503)]
        self.assertEqual(bad, [], "only 200 and 503 (database down) are right")
        down = [(t0, t1, r) for (t0, t1, _, r) in answers if r.status == 503]
        self.assertGreater(len(down), 0)
        for (_, _, r) in down:
            self.assertEqual(r.json.get("error"), "temporarily_unavailable", r)
            self.assertIsInstance(r.json.get("error_description"), str, r)
            self.assertEqual(r.headers.get("retry-after"), "1", r)
        print("\n  database down: %d requests answered 503, slowest in %.3f s" %
              (len(down), max(t1 - t0 for (t0, t1, _) in down)))
        acked = [d for (_, _, d, r) in answers if r.status == 200]
        asked = {d for (_, _, d, _) in answers}
        audited = [d for d in audited_ok(SVC, CRED) if d in asked]
        self.assertEqual([d for d in acked if d not in audited], [], "acknowledged signatures without audit record")
        self.assertLessEqual(len(audited), BUDGET, "budget overspent")
        self.assertEqual(len(set(audited)), len(audited), "a digest signed twice")
        v = SVC.admin("audit", "verify")
        self.assertRegex(v.stdout, r"^audit log OK: \d+ records")
        self.assertIsNotNone(SVC.proc)
        self.assertIsNone(SVC.proc.poll(), "csc-server exited")


if __name__ == "__main__":
    unittest.main()
