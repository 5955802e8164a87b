"""Evidence for audits (issue 15): the audit record of every csc-sam start, the clock check before time-stamping,
the signed audit report.

Each start of the service's csc-sam (not the short-lived one csc-admin starts) appends one record (event sam,
action=sam.start) naming the configuration file's SHA-256, the binary's version, the environment, the storage
backend and the node: one per start, with the hash of the file as it was at that start.
"""
import base64
import hashlib
import json
import os
import re
import subprocess
import time
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))


def fields(detail):
    return dict(kv.split("=", 1) for kv in detail.split(" ") if "=" in kv)


class TestStartRecord(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = H.Service(BUILD)

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def starts(self):
        q = self.svc.admin("audit", "query", "--event", "sam", "--json")
        recs = [json.loads(line) for line in q.stdout.splitlines()]
        return [fields(r["detail"]) for r in recs if "action=sam.start" in r["detail"]]

    def conf_sha(self):
        with open(self.svc.conf, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def test_once_per_start(self):
        # provisioning ran csc-admin's short-lived csc-sam (-o) many times: those starts write nothing (the commands
        # they served are audited themselves)
        self.assertEqual(self.starts(), [])
        first_sha = self.conf_sha()
        self.svc.start()
        starts = self.starts()
        self.assertEqual(len(starts), 1, starts)
        s = starts[0]
        self.assertEqual(s["config_sha256"], first_sha)
        self.assertEqual(s["config"], os.path.abspath(self.svc.conf))
        self.assertEqual(s["environment"], "test")
        self.assertEqual(s["storage"], "lmdb")
        self.assertRegex(s["node"], r"^[A-Za-z0-9._-]+$")
        self.assertRegex(s["version"], r"^\S+$")
        self.assertNotEqual(s["version"], "")

        # A second start after the file changed: one more record, with the new hash.
        self.assertEqual(self.svc.stop(), 0)
        with open(self.svc.conf, "a") as f:
            f.write("# changed for the second start\n")
        self.svc.start()
        starts = self.starts()
        self.assertEqual(len(starts), 2, starts)
        self.assertEqual(starts[0]["config_sha256"], first_sha)
        self.assertEqual(starts[1]["config_sha256"], self.conf_sha())
        self.assertNotEqual(first_sha, self.conf_sha())
        self.assertTrue(re.search(r"csc-sam: .* listening", self.svc.server_stderr()))


class TestClockCheck(unittest.TestCase):
    """clock_check = adjtimex against this machine's real clock, which the test does not step: the start record and
    the log name the kernel's verdict, and signatures/timestamp follows it (a token, or 503 with the clock's
    description and the offset in csc-sam's log), csc-sam's filter allowing the read. The verdict on fake readings
    (synchronised or not, maxerror over the bound) is unit_sam_stamp's."""

    @classmethod
    def setUpClass(cls):
        cls.svc = H.Service(BUILD, extra_config="clock_check = adjtimex\nclock_max_error_ms = 500\n")
        cls.svc.start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def test_timestamp_follows_the_clock(self):
        q = self.svc.admin("audit", "query", "--event", "sam", "--json")
        starts = [fields(json.loads(line)["detail"]) for line in q.stdout.splitlines()
                  if "action=sam.start" in line]
        self.assertEqual(len(starts), 1, starts)
        state = starts[0]["clock"]
        self.assertIn(state, ("ok", "unsynchronised"))
        err = self.svc.server_stderr()
        self.assertRegex(err, r"csc-sam: clock_check = adjtimex: the clock (is synchronised|is not synchronised|'s "
                              r"maxerror) .*offset -?\d+\.\d{3} ms")
        token = self.svc.token()
        r = self.svc.post("signatures/timestamp", {"hash": H.b64(H.digest("clock")),
                                                   "hashAlgo": "2.16.840.1.101.3.4.2.1"}, token)
        if state == "ok":
            self.assertEqual(r.status, 200, r)
        else:
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json["error"], "temporarily_unavailable")
            self.assertIn("clock is not synchronised", r.json["error_description"])
            H.wait_until(lambda: "csc-sam: STAMP refused: the clock" in self.svc.server_stderr(), "the refusal's log")
            q = self.svc.admin("audit", "query", "--event", "timestamp", "--json")
            last = json.loads(q.stdout.splitlines()[-1])
            self.assertEqual(last["result"], "denied")
            self.assertIn("refused=CLOCK", last["detail"])
            self.assertRegex(last["detail"], r"offset -?\d+\.\d{3} ms")
        # csc-sam still serves (the filter let adjtimex through)
        d = H.digest("after the clock check")
        r = self.svc.authorize(token, "demo-ec", [d], pin=self.svc.env["CSC_PIN"])
        self.assertEqual(r.status, 200, r)


class TestAuditReport(unittest.TestCase):
    """csc-admin audit report: its counts agree with audit query over the same range; the file (the report, then its
    signature by the audit key through csc-sam) passes audit verify-report and openssl, and fails either once a
    byte of it changes."""

    @classmethod
    def setUpClass(cls):
        cls.svc = H.Service(BUILD)
        cls.svc.start()
        cls.t0 = int(time.time())
        token = cls.svc.token()
        d = H.digest("report")
        assert cls.svc.authorize(token, "demo-ec", [d], pin="00000000").status == 400  # a refusal
        r = cls.svc.authorize(token, "demo-ec", [d], pin=cls.svc.env["CSC_PIN"])
        assert r.status == 200, r
        cls.t1 = int(time.time())
        time.sleep(1.1)  # the head signed next is after the range's last second: it covers the whole range
        cls.svc.admin("audit", "sign-head")
        cls.key = os.path.join(cls.svc.tmp, "audit.pem")
        cls.svc.admin("audit", "export-key", cls.key)

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def report(self, name, *extra):
        path = os.path.join(self.svc.tmp, name)
        r = self.svc.admin("audit", "report", "--from", str(self.t0), "--to", str(self.t1), "--out", path, *extra,
                           check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(path) as f:
            lines = f.read().split("\n")
        self.assertEqual(len(lines), 3, lines)  # two lines, each ended
        self.assertEqual(lines[2], "")
        return path, json.loads(lines[0]), json.loads(lines[1])

    def test_counts_agree_with_query(self):
        path, rep, sig = self.report("r1.json")
        q = self.svc.admin("audit", "query", "--since", str(self.t0), "--until", str(self.t1), "--json")
        recs = [json.loads(line) for line in q.stdout.splitlines()]
        # the query's own read record (written after the report) may fall in the range: leave it out
        recs = [x for x in recs if x["seq"] <= rep["records"]["last_seq"]]
        self.assertEqual(rep["records"]["count"], len(recs))
        self.assertEqual(rep["records"]["first_seq"], recs[0]["seq"])
        events = {}
        for x in recs:
            events.setdefault(x["event"], {"ok": 0, "denied": 0, "error": 0})[x["result"]] += 1
        self.assertEqual(rep["events"], events)
        self.assertEqual(rep["refusals"], sum(1 for x in recs if x["result"] == "denied"))
        self.assertGreaterEqual(rep["refusals"], 1)
        self.assertEqual(rep["lockouts"], sum(1 for x in recs if x["event"] == "lockout"))
        actions = {}
        for x in recs:
            if x["event"] in ("operator", "admin"):
                a = fields(x["detail"]).get("action", "(other)")
                actions[a] = actions.get(a, 0) + 1
        self.assertEqual(rep["operator_actions"], actions)
        self.assertTrue(rep["verify"]["log"]["ok"])
        self.assertTrue(rep["verify"]["signed_heads"]["ok"])
        self.assertEqual(rep["verify"]["problem_lines"], [])
        self.assertTrue(rep["signed_head"]["covers_range"])  # signed after the range's end
        self.assertGreaterEqual(rep["signed_head"]["newest_seq"], rep["records"]["last_seq"])
        self.assertEqual(rep["operator"], self.svc.env["CSC_OPERATOR"])
        # csc-sam audited the signing, naming the report's SHA-256
        with open(path, "rb") as f:
            first = f.read().split(b"\n")[0]
        sha = hashlib.sha256(first).hexdigest()
        self.assertIn("sha256=%s " % sha, sig["signed_text"])
        q = self.svc.admin("audit", "query", "--event", "operator", "--json")
        self.assertTrue(any("action=audit.report sha256=" + sha in line for line in q.stdout.splitlines()))

    def test_verify_report(self):
        path, rep, sig = self.report("r2.json")
        r = self.svc.admin("audit", "verify-report", path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("report OK", r.stdout)
        r = self.svc.admin("audit", "verify-report", path, "--key", self.key)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # anyone with the exported key: openssl over the signed text
        text = os.path.join(self.svc.tmp, "signed.txt")
        der = os.path.join(self.svc.tmp, "sig.der")
        with open(text, "w") as f:
            f.write(sig["signed_text"])
        with open(der, "wb") as f:
            f.write(base64.b64decode(sig["signature"]))
        o = subprocess.run(["openssl", "dgst", "-sha256", "-verify", self.key, "-signature", der, text],
                           capture_output=True, text=True)
        self.assertEqual(o.returncode, 0, o.stdout + o.stderr)

        with open(path) as f:
            lines = f.read().split("\n")

        def altered(name, first, second):
            p = os.path.join(self.svc.tmp, name)
            with open(p, "w") as f:
                f.write(first + "\n" + second + "\n")
            return self.svc.admin("audit", "verify-report", p, check=False)

        r = altered("more-refusals", lines[0].replace('"refusals":', '"refusals":1'), lines[1])
        self.assertEqual(r.returncode, 1)
        self.assertIn("the report was altered", r.stderr)
        forged = base64.b64decode(sig["signature"])
        forged = forged[:-1] + bytes([forged[-1] ^ 1])
        r = altered("forged", lines[0], lines[1].replace(sig["signature"], base64.b64encode(forged).decode()))
        self.assertEqual(r.returncode, 1)
        self.assertIn("not the audit key's", r.stderr)
        r = altered("other-text", lines[0], lines[1].replace("operator=", "operator=x"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("not the audit key's", r.stderr)
        r = altered("no-signature", lines[0], "")
        self.assertEqual(r.returncode, 1)

    def test_refusals(self):
        path = os.path.join(self.svc.tmp, "r3.json")
        open(path, "w").close()
        r = self.svc.admin("audit", "report", "--from", str(self.t0), "--to", str(self.t1), "--out", path, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("never replaces a file", r.stderr)
        r = self.svc.admin("audit", "report", "--from", str(self.t1), "--to", str(self.t0 - 10), check=False)
        self.assertEqual(r.returncode, 2)
        r = self.svc.admin("audit", "report", "--from", "yesterday", "--to", str(self.t1), check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("yesterday", r.stderr)
        r = self.svc.admin("audit", "report", "--from", str(self.t0), check=False)
        self.assertEqual(r.returncode, 2)
        # a key-admin is not an auditor
        secret = self.svc.add_operator("keyonly", "key-admin", "keyonly password 1")
        session = self.svc.op_login("keyonly", "keyonly password 1", secret)
        r = self.svc.admin_as(session, "audit", "report", "--from", str(self.t0), "--to", str(self.t1))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    unittest.main()
