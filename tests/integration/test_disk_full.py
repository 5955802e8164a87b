"""The disk under the database full (issue 14): the service's LMDB directory on a small tmpfs, filled by a file of the
test's while four clients sign with signHash, then freed again. The LMDB map (1G by default) is far larger than the
tmpfs, so the filesystem fills first: LMDB's commit meets ENOSPC writing its pages (it writes with pwrite, not
through a writable map, so a full disk is an error code and never a SIGBUS), not MDB_MAP_FULL
(test_lockout.py's test_full_map covers that one).

What must hold:
- every request is answered with 200 or a CSC error JSON: 503 temporarily_unavailable with Retry-After while the disk
  is full (never a 500, a crash or a hang);
- one alarm line per episode on stderr, not one per refused request;
- nothing lost or corrupted: after space is freed, every 200's digest is in an `ok` sign record, no SAD's budget is
  overspent, `csc-admin audit verify` passes;
- the service signs again by itself once space is freed (no restart).

Needs root (mount); skipped otherwise.
"""
import errno
import json
import os
import shutil
import subprocess
import time
import unittest

import harness as H
from test_sam import wait_for
from test_sam_faults import Signer, audited_ok

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PIN = "24681357"
CRED = "disk-ec"
BUDGET = 400
ROOM = 2 * 1024 * 1024  # the tmpfs: the database as provisioned, and this much more
FULL_SECONDS = 6        # how long the disk stays full under load
ALARM = "storage: ALARM: the disk holding the database is full"
BACK = "storage: the disk holding the database has space again"


def du(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


class TestDiskFull(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("mounting a tmpfs needs root")
        cls.svc = H.Service(BUILD)
        cls.svc.create_credential("--id", CRED, "--user", cls.svc.env["CSC_USER"], "--key", "p256",
                                  "--auth", "PIN", "--scal", "1", "--multisign", str(BUDGET), pin=PIN)
        # The database onto a tmpfs of its size and ROOM more, with the folder's owner and mode.
        cls.db = os.path.join(cls.svc.dir, "db")
        seed = cls.db + ".seed"
        shutil.copytree(cls.db, seed)
        st = os.stat(cls.db)
        size = (du(seed) + ROOM + 4095) // 4096 * 4096
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=%o,uid=%d,gid=%d" %
                        (size, st.st_mode & 0o7777, st.st_uid, st.st_gid), "tmpfs", cls.db], check=True)
        # after tearDownClass, and also when what follows fails (then tearDownClass is not run)
        cls.addClassCleanup(subprocess.run, ["umount", "-l", cls.db], check=False)
        for f in os.listdir(seed):
            shutil.copy2(os.path.join(seed, f), os.path.join(cls.db, f))
            os.chown(os.path.join(cls.db, f), os.stat(os.path.join(seed, f)).st_uid,
                     os.stat(os.path.join(seed, f)).st_gid)
        shutil.rmtree(seed)
        cls.svc.start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def fill(self, path):
        """Write path until the filesystem is full; its size."""
        n = 0
        chunk = b"\0" * 65536
        with open(path, "wb", buffering=0) as f:
            while True:
                try:
                    n += f.write(chunk)
                except OSError as e:
                    self.assertEqual(e.errno, errno.ENOSPC, e)
                    try:  # the last pages: smaller writes
                        while True:
                            n += f.write(b"\0" * 4096)
                    except OSError:
                        return n

    def check_answer(self, r):
        """200, or a CSC error JSON; a 503 with Retry-After."""
        self.assertNotIsInstance(r, Exception, r)
        self.assertIn(r.status, (200, 400, 503), r)
        if r.status != 200:
            self.assertIsInstance(r.json.get("error"), str, r)
            self.assertIsInstance(r.json.get("error_description"), str, r)
        if r.status == 503:
            self.assertEqual(r.json["error"], "temporarily_unavailable", r)
            self.assertTrue(r.headers.get("retry-after", "").isdigit(), r.headers)

    def test_disk_full_under_signing_load(self):
        svc = self.svc
        token = svc.token()
        r = svc.authorize(token, CRED, [], num=BUDGET, pin=PIN)
        self.assertEqual(r.status, 200, r)
        sad = r.json["SAD"]
        logged = len(svc.server_stderr())
        signers = [Signer(svc, token, sad, "disk-%d" % k, CRED, busy_pause=0.05) for k in range(4)]
        for s in signers:
            s.start()
        self.assertTrue(wait_for(lambda: sum(len(s.answers) for s in signers) >= 8, 30), "no signing")

        filler = os.path.join(self.db, "filler")
        filled = self.fill(filler)
        full_at = time.time()
        print("\nfiller: %d bytes; the disk is full" % filled)
        # While it is full: other writes too (an authorization with its PIN, a login), each a 200 or a CSC error.
        others = []
        while time.time() < full_at + FULL_SECONDS:
            others.append(svc.authorize(token, CRED, [], num=1, pin=PIN))
            others.append(svc.post("auth/login", {}, auth="Basic " + H.b64(
                ("%s:%s" % (svc.env["CSC_USER"], svc.env["CSC_PASSWORD"])).encode())))
            time.sleep(0.2)
        for r in others:
            self.check_answer(r)
        self.assertEqual(svc.post("info", {}).status, 200, "what writes nothing still works")
        refused = [r for s in signers for (t, _, r) in list(s.answers)
                   if t > full_at and not isinstance(r, Exception) and r.status == 503]
        self.assertGreater(len(refused), 0, "no signature was refused while the disk was full")

        os.unlink(filler)
        freed_at = time.time()
        def signed_after_free():
            return any(t > freed_at and not isinstance(r, Exception) and r.status == 200
                       for s in signers for (t, _, r) in list(s.answers))
        self.assertTrue(wait_for(signed_after_free, 60), "no signature once space was freed: " +
                        svc.server_stderr()[-2000:])
        for s in signers:
            s.join(180)
            self.assertFalse(s.is_alive(), "a signer never saw its SAD used up")

        answers = [a for s in signers for a in s.answers]
        for (_, _, r) in answers:
            self.check_answer(r)
        acked = [d for (_, d, r) in answers if r.status == 200]
        asked = {d for (_, d, _) in answers}
        audited = [d for d in audited_ok(svc, CRED) if d in asked]
        self.assertEqual([d for d in acked if d not in audited], [], "acknowledged signatures without audit record")
        self.assertLessEqual(len(acked), BUDGET, "budget overspent (acknowledged)")
        self.assertLessEqual(len(audited), BUDGET, "budget overspent (audited)")
        self.assertEqual(len(set(audited)), len(audited), "a digest signed twice")
        n503 = sum(1 for (_, _, r) in answers if r.status == 503) + sum(1 for r in others if r.status == 503)
        print("signHash: %d answered 200, %d 503 while the disk was full; %d other writes refused" %
              (len(acked), sum(1 for (_, _, r) in answers if r.status == 503),
               sum(1 for r in others if r.status == 503)))

        # One alarm per episode and process, and each episode ended by a write once the disk's quiet period (10 s
        # without a refusal) has passed: csc-sam's by its next commit (which appends the storage record), csc-server's
        # by its next write. Logins write in both.
        def ended():
            svc.login()
            return svc.server_stderr()[logged:].count(BACK) == svc.server_stderr()[logged:].count(ALARM)
        self.assertTrue(wait_for(ended, 60), svc.server_stderr()[logged:][-3000:])
        log = svc.server_stderr()[logged:]
        alarms = log.count(ALARM)
        print("alarm lines: %d for %d refusals" % (alarms, n503))
        self.assertGreaterEqual(alarms, 1, log[-3000:])
        self.assertLess(alarms, n503, log[-3000:])
        self.assertNotIn("cannot audit", log, "a line per refused request")
        self.assertNotIn("was killed by signal", log, "csc-sam crashed (SIGBUS?)")
        self.assertNotIn("exited with status", log, "csc-sam ended")
        self.assertLessEqual(len(log.splitlines()), 4 * alarms + 4, log[-3000:])
        recs = [json.loads(line) for line in
                svc.admin("audit", "query", "--json", "--event", "storage").stdout.splitlines()]
        self.assertTrue(any("disk full" in r.get("detail", "") for r in recs), recs)

        v = svc.admin("audit", "verify", check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)


if __name__ == "__main__":
    unittest.main()
