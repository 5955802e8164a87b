"""csc-sam and csc-server killed at the worst moment (issue 11): csc-sam killed with SIGKILL while clients sign, and
csc-server killed with SIGKILL while a SAD is half spent.

What must hold whatever the moment of the kill:
- the front end answers every request, with a CSC error JSON and 503 while csc-sam is gone (never a 500, never a
  hang), and signs again once the supervisor has started csc-sam again;
- no signature reaches a client without its audit record (every acknowledged digest is in an `ok` sign record);
- no budget is overspent: a SAD for N signatures yields at most N acknowledged signatures and at most N audited;
- what csc-sam decided (SADs, their budgets, the audit chain) lives in storage and survives either process.
"""
import base64
import json
import os
import random
import signal
import threading
import time
import unittest

import harness as H
from test_sam import alive, sam_child, supervisor, wait_for

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PIN = "24681357"
CRED = "kill-ec"
BUDGET = 120
ROUNDS_CRED, ROUNDS_BUDGET = "kill-rounds", 100000  # test_kill9_rounds: a budget no round uses up


def audited_ok(svc, cred):
    """The digests (base64) of cred's `sign` records with result ok, in order, with repeats."""
    q = svc.admin("audit", "query", "--event", "sign", "--credential", cred, "--json")
    out = []
    for line in q.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("result") == "ok":
            out += rec.get("digests", [])
    return out


class Signer(threading.Thread):
    """Signs one fresh digest per request with sad until told to stop or the SAD is used up; keeps every answer.
    busy_pause: seconds to wait after a 503 (a client honouring Retry-After would wait longer)."""

    def __init__(self, svc, token, sad, name, cred=CRED, busy_pause=0.0):
        super().__init__(daemon=True)
        self.svc, self.token, self.sad, self.name, self.cred = svc, token, sad, name, cred
        self.busy_pause = busy_pause
        self.stop = threading.Event()
        self.answers = []  # (time, digest b64, Reply or exception)

    def run(self):
        i = 0
        while not self.stop.is_set():
            d = H.b64(H.digest("%s %d" % (self.name, i)))
            i += 1
            try:
                r = self.svc.post("signatures/signHash", {"credentialID": self.cred, "SAD": self.sad, "hashes": [d],
                                                          "signAlgo": H.ECDSA_SHA256}, self.token)
            except Exception as e:  # a hang (timeout) or a dropped connection: the test fails on it
                r = e
            self.answers.append((time.time(), d, r))
            if not isinstance(r, Exception) and r.status == 400:
                return  # the SAD is used up
            if self.busy_pause > 0 and not isinstance(r, Exception) and r.status == 503:
                time.sleep(self.busy_pause)


class TestKillSam(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = H.Service(BUILD)
        cls.svc.create_credential("--id", CRED, "--user", cls.svc.env["CSC_USER"], "--key", "p256",
                      "--auth", "PIN", "--scal", "1", "--multisign", str(BUDGET), pin=PIN)
        cls.svc.create_credential("--id", ROUNDS_CRED, "--user", cls.svc.env["CSC_USER"], "--key", "p256",
                                  "--auth", "PIN", "--scal", "1", "--multisign", str(ROUNDS_BUDGET), pin=PIN)
        cls.svc.start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def sad(self, token, n, cred=CRED):
        r = self.svc.authorize(token, cred, [], num=n, pin=PIN)
        self.assertEqual(r.status, 200, r)
        return r.json["SAD"]

    def test_kill9_under_signing_load(self):
        svc = self.svc
        token = svc.token()
        sad = self.sad(token, BUDGET)
        signers = [Signer(svc, token, sad, "load-%d" % k) for k in range(4)]
        for s in signers:
            s.start()
        # some signatures before the kill
        self.assertTrue(wait_for(lambda: sum(len(s.answers) for s in signers) >= 8), "no signing before the kill")

        # Hold the supervisor so that csc-sam stays dead while we look, then kill csc-sam under load.
        sam, sup = sam_child(svc), supervisor(svc)
        self.assertIsNotNone(sam)
        logged = svc.server_stderr()
        os.kill(sup, signal.SIGSTOP)
        try:
            os.kill(sam, signal.SIGKILL)
            killed_at = time.time()
            self.assertTrue(wait_for(lambda: not os.path.exists("/proc/%d/exe" % sam) or not alive(sam)))
            # csc-sam is gone and nobody restarts it: a request is answered at once with 503 and a CSC error
            r = svc.post("signatures/signHash", {"credentialID": CRED, "SAD": sad, "hashes": [H.b64(H.digest("x"))],
                                                 "signAlgo": H.ECDSA_SHA256}, token)
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json["error"], "temporarily_unavailable", r)
            self.assertIsInstance(r.json["error_description"], str)
            r = svc.authorize(token, CRED, [], num=1, pin=PIN)
            self.assertEqual(r.status, 503, r)
            self.assertEqual(svc.post("info", {}).status, 200, "what needs no SAM still works")
        finally:
            os.kill(sup, signal.SIGCONT)

        # restarted by the supervisor: the signers sign again with the same SAD, until its budget is used up
        def signed_after_kill():
            return any(t > killed_at and not isinstance(r, Exception) and r.status == 200
                       for s in signers for (t, _, r) in list(s.answers))
        self.assertTrue(wait_for(signed_after_kill, 60), "no signature after csc-sam came back: " +
                        svc.server_stderr()[-2000:])
        for s in signers:
            s.join(120)
            self.assertFalse(s.is_alive(), "a signer never saw its SAD used up")

        answers = [a for s in signers for a in s.answers]
        problems = [(d, r) for (_, d, r) in answers if isinstance(r, Exception) or r.status not in (200, 400, 503)]
        self.assertEqual(problems, [], "only 200, 503 (SAM away) and 400 (SAD used up) are right")
        for (_, _, r) in answers:
            if r.status != 200:
                self.assertIsInstance(r.json.get("error"), str, r)
                self.assertIsInstance(r.json.get("error_description"), str, r)
        acked = [d for (_, d, r) in answers if r.status == 200]
        asked = {d for (_, d, _) in answers}
        audited = [d for d in audited_ok(svc, CRED) if d in asked]  # this SAD's (the credential serves other tests)
        self.assertEqual([d for d in acked if d not in audited], [], "acknowledged signatures without audit record")
        self.assertLessEqual(len(acked), BUDGET, "budget overspent (acknowledged)")
        self.assertLessEqual(len(audited), BUDGET, "budget overspent (audited)")
        self.assertEqual(len(set(audited)), len(audited), "a digest signed twice")
        # the signatures made after the restart verify with the credential's key
        pem = svc.cert_pem(token, CRED)
        late = [(d, r) for (t, d, r) in answers if t > killed_at and r.status == 200][:3]
        for d, r in late:
            self.assertTrue(H.verify(pem, base64.b64decode(r.json["signatures"][0]), base64.b64decode(d)))
        # The outage is logged when it starts and when it ends, not once per refused call.
        log = svc.server_stderr()[len(logged):]
        refused = sum(1 for (_, _, r) in answers if r.status == 503) + 2
        self.assertGreaterEqual(refused, 3)
        self.assertIn(log.count("csc: csc-sam cannot be reached"), (1, 2), log[-3000:])
        self.assertIn(log.count("csc: csc-sam answers again"), (1, 2), log[-3000:])
        # the audit chain is whole
        v = svc.admin("audit", "verify", check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)

    def test_kill9_front_end_keeps_state(self):
        """csc-server killed with SIGKILL mid-budget: its csc-sam goes with it (spawn mode), yet what the SAM
        decided is in storage: after a restart the same SAD signs its remaining budget and not one more, and the
        audit chain verifies."""
        svc = self.svc
        token = svc.token()
        sad = self.sad(token, 3)

        def sign(text):
            return svc.post("signatures/signHash", {"credentialID": CRED, "SAD": sad, "hashes": [H.b64(H.digest(text))],
                                                    "signAlgo": H.ECDSA_SHA256}, token)
        self.assertEqual(sign("before 1").status, 200)
        self.assertEqual(sign("before 2").status, 200)
        sam = sam_child(svc)
        svc.proc.kill()
        svc.proc.wait()
        svc.proc = None
        svc.stderr.close()
        self.assertTrue(wait_for(lambda: not alive(sam)), "csc-sam outlived a killed csc-server")
        svc.start()
        self.assertEqual(sign("after 1").status, 200, "the SAD (and its budget) survived")
        r = sign("after 2")
        self.assertEqual(r.status, 400, r)
        v = svc.admin("audit", "verify", check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)

    def test_kill9_rounds(self):
        """csc-server killed with SIGKILL under signing load, ROUNDS times (CSC_KILL_ROUNDS, default 20), and started
        again after each kill (its csc-sam goes with it): every signature acknowledged with a 200 has its audit
        record, no SAD's budget is overspent, the audit chain verifies. The restart times are printed."""
        svc = self.svc
        rounds = int(os.environ.get("CSC_KILL_ROUNDS", "20"))
        token = svc.token()
        acked, asked, restarts = [], set(), []
        per_round = []  # (digests asked in the round, acknowledged in the round)
        for k in range(rounds):
            sad = self.sad(token, ROUNDS_BUDGET, ROUNDS_CRED)
            signers = [Signer(svc, token, sad, "r%d-%d" % (k, i), ROUNDS_CRED) for i in range(4)]
            for s in signers:
                s.start()
            self.assertTrue(wait_for(lambda: sum(len(s.answers) for s in signers) >= 8, 30),
                            "round %d: no signing" % k)
            time.sleep(random.uniform(0.1, 1.0))  # the kill lands anywhere in the signing
            sam = sam_child(svc)
            svc.proc.kill()
            svc.proc.wait()
            svc.proc = None
            svc.stderr.close()
            for s in signers:
                s.stop.set()
            for s in signers:
                s.join(60)
                self.assertFalse(s.is_alive(), "round %d: a signer hangs" % k)
            self.assertTrue(wait_for(lambda: sam is None or not alive(sam)), "csc-sam outlived a killed csc-server")
            answers = [a for s in signers for a in s.answers]
            wrong = [r for (_, _, r) in answers if not isinstance(r, Exception) and r.status not in (200, 400)]
            self.assertEqual(wrong, [], "round %d: answers before the kill are 200, or 400 once the SAD is used" % k)
            ok = [d for (_, d, r) in answers if not isinstance(r, Exception) and r.status == 200]
            acked += ok
            asked |= {d for (_, d, _) in answers}
            per_round.append(({d for (_, d, _) in answers}, ok))
            t0 = time.time()
            svc.start()
            restarts.append(time.time() - t0)
        audited = audited_ok(svc, ROUNDS_CRED)
        self.assertEqual([d for d in acked if d not in audited], [], "acknowledged signatures without audit record")
        for k, (mine, ok) in enumerate(per_round):
            signed = [d for d in audited if d in mine]
            self.assertLess(len(ok), ROUNDS_BUDGET, "round %d: the SAD was used up: the kill came after it" % k)
            self.assertLessEqual(len(signed), ROUNDS_BUDGET, "round %d: the SAD's budget overspent" % k)
            self.assertEqual(len(set(signed)), len(signed), "round %d: a digest signed twice" % k)
        v = svc.admin("audit", "verify", check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        restarts.sort()
        print("kill -9 rounds: %d, signatures acknowledged %d (all audited); restart to ready: min %.2f s, median "
              "%.2f s, max %.2f s" % (rounds, len(acked), restarts[0], restarts[len(restarts) // 2], restarts[-1]))


if __name__ == "__main__":
    unittest.main()
