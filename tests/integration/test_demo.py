"""The demo client (scripts/demo-client, what ./scripts/demo shows) runs against a freshly provisioned service:
the explicit flow (login, list, info, authorize with PIN and TOTP, signHash, openssl verify), the same with a
one-time code of credentials/getChallenge read from the test-only file outbox, and the OAuth 2.0 code flow with
PKCE through the sign-in and consent pages. A change of the pages or the API that breaks the
demo's client breaks this test."""
import os
import subprocess
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))


class TestDemoClient(unittest.TestCase):
    def test_demo_client_flow(self):
        """As ./scripts/demo provisions it: the enrollment codes go to the test-only file sender, and
        scripts/enroll-demo (run by start()) reads them back from there."""
        svc = H.Service(BUILD, provision=("--sender-file",))
        self.assertEqual(svc.env["CSC_ENROLL_CODE"], "")  # no letter: the code went to the sender only
        self.assertEqual(svc.env["CSC_CRED_CHALLENGE"], "demo-otp")
        svc.start()
        outbox = os.path.join(svc.dir, "log", "otp-sender.txt")
        with open(outbox) as f:
            self.assertRegex(f.read(), r"(?m)^demo - ENROLL [A-HJ-NP-Z2-9]{4}(-[A-HJ-NP-Z2-9]{4}){3}$")
        try:
            r = subprocess.run([os.path.join(H.ROOT, "scripts", "demo-client"), os.path.join(svc.dir, "demo.env")],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
            self.assertIn("done: every step succeeded", r.stdout)
            self.assertEqual(r.stdout.count("Verified OK"), 4, r.stdout[-3000:])  # RSA, EC, CHALLENGE, OAuth
            self.assertIn("== signatures/signHash (demo-otp,", r.stdout)
            # the code went to the outbox only: one line for the one getChallenge, never echoed by the client
            with open(outbox) as f:
                sent = [line.split() for line in f.read().splitlines()]
            codes = [w[3] for w in sent if w[:3] == ["demo", "demo-otp", "CHALLENGE"]]
            self.assertEqual(len(codes), 1, sent)
            self.assertRegex(codes[0], r"^[0-9]{6}$")
            # (as a whole number: six digits inside base64 or hex of the printed digests and signatures are chance)
            self.assertNotRegex(r.stdout + r.stderr, r"(?<![0-9A-Za-z+/_-])%s(?![0-9A-Za-z+/_=-])" % codes[0])
        finally:
            svc.stop_checked()


if __name__ == "__main__":
    unittest.main()
