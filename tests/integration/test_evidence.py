"""Evidence for audits (issue 15): the audit record of every csc-sam start.

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


if __name__ == "__main__":
    unittest.main()
