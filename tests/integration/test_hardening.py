"""Process hardening of the running csc-server (server/srv_priv.c): the seccomp filter in every thread, no new
privileges, no core dumps, the switch to server_user when started as root, and what each refuses; a signature
still goes through the HSM under all of it."""
import os
import pwd
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(harness.ROOT, "build"))
TEST_USER = "csc-server"  # scripts/deps creates it (useradd --system)


def proc_status(pid, task=None):
    path = "/proc/%d/status" % pid if task is None else "/proc/%d/task/%s/status" % (pid, task)
    with open(path) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def core_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4:6]
    return None


def sign_once(svc):
    """login, authorize the EC credential (PIN), signHash: the HSM and LMDB still work behind the filter."""
    tok = svc.token()
    d = harness.digest("hardening")
    r = svc.authorize(tok, svc.env["CSC_CRED_EC"], [d], pin=svc.env["CSC_PIN"])
    assert r.status == 200, r
    r = svc.post("signatures/signHash", {"credentialID": svc.env["CSC_CRED_EC"], "SAD": r.json["SAD"],
                                         "hashes": [harness.b64(d)], "signAlgo": harness.ECDSA_SHA256}, tok)
    assert r.status == 200 and len(r.json["signatures"]) == 1, r


class TestFilter(unittest.TestCase):
    """The default configuration: the front end's filter, NoNewPrivs, no core dumps, in every thread."""

    @classmethod
    def setUpClass(cls):
        cls.svc = harness.Service(BUILD).start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def test_every_thread_filtered(self):
        pid = self.svc.proc.pid
        tasks = os.listdir("/proc/%d/task" % pid)
        self.assertGreater(len(tasks), 5)  # loops, workers, storage writer, async workers, ...
        for t in tasks:
            st = proc_status(pid, t)
            self.assertEqual(st["Seccomp"].strip(), "2", "thread %s (%s) has no filter" % (t, st["Name"]))
            self.assertEqual(st["NoNewPrivs"].strip(), "1", "thread %s" % t)
        self.assertEqual(core_limit(pid), ["0", "0"])

    def test_not_dumpable(self):
        """A process that is not dumpable has its /proc files (not the /proc/PID folder) owned by root, whatever
        user it runs as; as root without server_user that shows nothing, so TestServerUser checks it instead."""
        pid = self.svc.proc.pid
        uid = int(proc_status(pid)["Uid"].split()[0])
        if uid == 0:
            self.skipTest("runs as root: /proc ownership shows nothing (TestServerUser checks it)")
        self.assertEqual(os.stat("/proc/%d/status" % pid).st_uid, 0)

    def test_still_signs(self):
        sign_once(self.svc)
        self.assertIn("csc-server: test environment, listening on", self.svc.server_stderr())


class TestExecSender(unittest.TestCase):
    """An exec: otp_sender still runs from csc-server: no filter (said at start), the rest of the hardening."""

    def test_no_filter_with_exec_sender(self):
        svc = harness.Service(BUILD, extra_config="otp_sender = exec:/bin/true\n").start()
        try:
            st = proc_status(svc.proc.pid)
            self.assertEqual(st["Seccomp"].strip(), "0")
            self.assertEqual(st["NoNewPrivs"].strip(), "1")
            self.assertEqual(core_limit(svc.proc.pid), ["0", "0"])
            self.assertIn("WARNING: no seccomp filter: otp_sender = exec:", svc.server_stderr())
        finally:
            svc.stop_checked()


@unittest.skipUnless(os.geteuid() == 0, "the switch of user needs root")
class TestServerUser(unittest.TestCase):
    """Started as root with server_user: the process runs as that user after start-up, cannot become root again,
    and still reads its token and database (the service directory is given to the user, as an operator would)."""

    def setUp(self):
        try:
            self.pw = pwd.getpwnam(TEST_USER)
        except KeyError:
            self.skipTest("no user %s (scripts/deps creates it)" % TEST_USER)

    def test_runs_as_server_user(self):
        svc = harness.Service(BUILD, extra_config="server_user = %s\n" % TEST_USER)
        os.chmod(svc.tmp, 0o711)
        subprocess.run(["chown", "-R", "%s:" % TEST_USER, svc.dir], check=True)
        svc.start()
        try:
            pid = svc.proc.pid
            st = proc_status(pid)
            self.assertEqual(st["Uid"].split(), [str(self.pw.pw_uid)] * 4)
            self.assertEqual(st["Gid"].split(), [str(self.pw.pw_gid)] * 4)
            self.assertNotIn("0", st["Groups"].split())
            self.assertEqual(st["Seccomp"].strip(), "2")
            self.assertEqual(st["NoNewPrivs"].strip(), "1")
            for t in os.listdir("/proc/%d/task" % pid):
                self.assertEqual(proc_status(pid, t)["Uid"].split()[0], str(self.pw.pw_uid), "thread %s" % t)
            self.assertEqual(os.stat("/proc/%d" % pid).st_uid, self.pw.pw_uid)
            self.assertEqual(os.stat("/proc/%d/status" % pid).st_uid, 0)  # not dumpable: its files stay root's
            sign_once(svc)
        finally:
            svc.stop_checked()

    def test_refusals(self):
        for user, says in (("no-such-user-csc", "csc-server: user no-such-user-csc: no such user"),
                           ("root", "csc-server: user root is root")):
            svc = harness.Service(BUILD, extra_config="server_user = %s\n" % user)
            with self.assertRaises(RuntimeError) as ctx:
                svc.start()
            self.assertIn(says, str(ctx.exception))
            svc.stop()


if __name__ == "__main__":
    unittest.main()
