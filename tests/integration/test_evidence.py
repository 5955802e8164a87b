"""Evidence for audits (issue 15): the audit record of every csc-sam start, the clock check before time-stamping.

Each start of the service's csc-sam (not the short-lived one csc-admin starts) appends one record (event sam,
action=sam.start) naming the configuration file's SHA-256, the binary's version, the environment, the storage
backend and the node: one per start, with the hash of the file as it was at that start.
"""
import hashlib
import json
import os
import re
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


if __name__ == "__main__":
    unittest.main()
