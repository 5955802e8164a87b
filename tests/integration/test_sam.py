"""csc-sam, the signature activation module's process (issue 11): csc-server forks a supervisor (process title
csc-sam-super) that starts csc-sam (sam_mode = spawn), restarts it after a crash and stops it when csc-server asks or
dies (process tree: csc-server -> csc-sam-super -> csc-sam); or csc-server only connects to one started outside
(sam_mode = connect); a csc-sam that cannot start keeps csc-server from starting. The test speaks the SAM protocol (docs/architecture.md "The SAM protocol") to
the socket itself: HELLO, the health check."""
import base64
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SAM = os.path.join(BUILD, "server", "csc-sam")
SVC = None

OP_HELLO, OP_REPLY, OP_REFUSED = 1, 0x80, 0xFF
T_VERSION, T_IDENTITY, T_HSM_STATE, T_STORAGE_STATE, T_TICKET_KEY = 1, 2, 3, 55, 89


def hello(path, timeout=10):
    """HELLO over a new connection to the SAM socket at path: {tag: value} of the reply (raises OSError if none)."""
    body = struct.pack(">HII", T_VERSION, 4, 1)
    msg = struct.pack(">HBBHHII", 0x5341, 1, OP_HELLO, 0, 0, 99, len(body)) + body
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.send(msg)
        rec = s.recv(65536)
    if len(rec) < 16:
        raise OSError("no reply")
    magic, version, op, flags, _, rid, length = struct.unpack(">HBBHHII", rec[:16])
    if (magic, version, op, flags, rid, length) != (0x5341, 1, OP_HELLO | OP_REPLY, 0, 99, len(rec) - 16):
        raise OSError("not a HELLO reply: %r" % rec[:16])
    fields, p = {}, 16
    while p < len(rec):
        tag, n = struct.unpack(">HI", rec[p:p + 6])
        v = rec[p + 6:p + 6 + n]
        fields[tag] = v.decode() if tag == T_IDENTITY else struct.unpack(">I", v)[0] if n == 4 else v
        p += 6 + n
    return fields


def children(pid):
    """The child processes of pid (every thread's)."""
    out = []
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass  # a thread that ended meanwhile (csc-sam's connection threads end with their peer)
    return out


def alive(pid):
    """pid runs (a zombie does not count)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between the open and the read
        return False


def wait_for(what, deadline_s=30):
    """Poll what() until it returns a true value or the deadline passes; its last value."""
    end = time.time() + deadline_s
    while True:
        v = what()
        if v or time.time() > end:
            return v
        time.sleep(0.1)


def is_sam(pid, build):
    """pid runs build's csc-sam."""
    try:
        return os.path.realpath("/proc/%d/exe" % pid) == os.path.realpath(os.path.join(build, "server", "csc-sam"))
    except OSError:
        return False  # gone meanwhile, or a zombie


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def supervisor(svc):
    """csc-server's one child, the supervisor (None if it has another number of children or that one is not it)."""
    kids = children(svc.proc.pid)
    return kids[0] if len(kids) == 1 and comm(kids[0]) == "csc-sam-super" else None


def sam_child(svc):
    sup = supervisor(svc)
    kids = [k for k in children(sup) if is_sam(k, svc.build)] if sup else []
    return kids[0] if len(kids) == 1 else None


def sam_socket(svc):
    return os.path.join(svc.dir, "csc-sam.sock")


def sam_connections(sam_pid, path):
    """How many connections csc-sam has accepted on its socket path now (csc-server's pool to it): the descriptors of
    sam_pid that are Unix sockets bound to path, its listening one not counted."""
    inodes = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path:
                inodes.add(parts[6])
    fds = os.listdir("/proc/%d/fd" % sam_pid)
    n = 0
    for fd in fds:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (sam_pid, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            n += 1
    return max(0, n - 1)


def sam_admin_socket(svc):
    return os.path.join(os.path.dirname(svc.conf), "csc-sam-admin.sock")  # sam_admin_socket's default


def setUpModule():
    global SVC
    SVC = H.Service(BUILD)
    SVC.start()


def tearDownModule():
    SVC.stop_checked()


class TestSpawned(unittest.TestCase):
    def test_child_answers_hello(self):
        sup = supervisor(SVC)
        self.assertIsNotNone(sup, [(k, comm(k)) for k in children(SVC.proc.pid)])
        pid = sam_child(SVC)
        self.assertIsNotNone(pid, children(sup))
        self.assertEqual(children(pid), [])
        r = hello(sam_socket(SVC))
        self.assertEqual(r[T_VERSION], 1)
        self.assertIn("pid=%d " % pid, r[T_IDENTITY])
        self.assertEqual(r[T_HSM_STATE], 0, "token logged in")
        self.assertEqual(r[T_STORAGE_STATE], 0, "storage open")
        self.assertEqual(len(r[T_TICKET_KEY]), 32, "the pages' ticket key, on the front end's socket")
        self.assertEqual(hello(sam_socket(SVC))[T_TICKET_KEY], r[T_TICKET_KEY], "the same on every connection")
        self.assertNotIn(T_TICKET_KEY, hello(sam_admin_socket(SVC)), "never on the operators' socket")
        self.assertNotIn("gave no key for the sign-in pages", SVC.server_stderr())
        self.assertEqual(os.stat(sam_socket(SVC)).st_mode & 0o777, 0o600)
        self.assertIn("csc-sam ready: csc-sam pid=%d" % pid, SVC.server_stderr())

    def test_pool_open_at_start(self):
        """csc-server connects its whole pool to csc-sam when csc-sam first answers (so csc-sam starts every
        connection's thread then, not under load hours later), and again after csc-sam comes back."""
        import re
        m = re.search(r"csc-sam ready: .*, (\d+) connections open\)", SVC.server_stderr())
        self.assertIsNotNone(m, SVC.server_stderr()[-2000:])
        want = int(m.group(1))
        self.assertGreater(want, 1)
        # A call through csc-sam first: when test_kill9_restarts ran before, this is the call that finds the pool's
        # connections dead and connects it whole to the new csc-sam.
        self.assertTrue(SVC.token())
        pid = sam_child(SVC)
        wait_for(lambda: sam_connections(pid, sam_socket(SVC)) == want, 10)
        self.assertEqual(sam_connections(pid, sam_socket(SVC)), want)
        self.assertIn("%d connections to csc-sam" % want, SVC.server_stderr(), "sam_connections, all of them")

    def test_kill9_restarts(self):
        old, sup = sam_child(SVC), supervisor(SVC)
        self.assertIsNotNone(old)
        key = hello(sam_socket(SVC))[T_TICKET_KEY]
        os.kill(old, signal.SIGKILL)

        def restarted():
            new = sam_child(SVC)
            if new is None or new == old:
                return None
            try:
                return new if "pid=%d " % new in hello(sam_socket(SVC))[T_IDENTITY] else None
            except OSError:
                return None
        new = wait_for(restarted)
        self.assertTrue(new, "csc-sam was not restarted: " + SVC.server_stderr()[-2000:])
        self.assertFalse(alive(old))
        self.assertRegex(SVC.server_stderr(),
                         r"csc-sam-super: csc-sam \(pid %d\) was killed by signal 9.*; restart \d+ in" % old)
        self.assertEqual(supervisor(SVC), sup, "the supervisor itself goes on")
        self.assertEqual(SVC.post("info", {}).status, 200)
        # derived from the HSM again: the key csc-server took at its start still holds
        self.assertEqual(hello(sam_socket(SVC))[T_TICKET_KEY], key)


class TestApprovalAcrossRestart(unittest.TestCase):
    """A pending approval is csc-sam's but kept in storage: killed (kill -9) and restarted between
    credentials/authorize and the decision on /approve, csc-sam still knows the request, decides it once, and
    answers authorizeCheck with a SAD that signs. A service of its own: the shared one's csc-sam is not killed here."""

    @classmethod
    def setUpClass(cls):
        cls.svc = H.Service(BUILD)
        cls.svc.start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def test_kill9_between_authorize_and_approve(self):
        svc = self.svc
        svc.create_credential("--id", "ap-restart", "--user", svc.env["CSC_USER"], "--key", "p256",
                  "--auth", "PIN AND APPROVAL", "--scal", "2", "--multisign", "1", pin=svc.env["CSC_PIN"])
        t = svc.token()
        d = H.digest("approved across a restart")
        r = svc.post("credentials/authorize", {"credentialID": "ap-restart", "numSignatures": 1,
                                               "hashes": [H.b64(d)], "hashAlgorithmOID": H.SHA256}, t)
        self.assertEqual(r.status, 202, r)
        handle = r.json["handle"]
        old = sam_child(svc)
        self.assertIsNotNone(old)
        os.kill(old, signal.SIGKILL)

        def restarted():
            new = sam_child(svc)
            try:
                return new if new not in (None, old) and "pid=%d " % new in hello(sam_socket(svc))[T_IDENTITY] else None
            except OSError:
                return None
        self.assertTrue(wait_for(restarted), "csc-sam was not restarted: " + svc.server_stderr()[-2000:])
        r = svc.post("credentials/authorizeCheck", {"handle": handle}, t)
        self.assertEqual((r.status, r.json), (202, {"handle": handle}))
        b = H.Browser(svc, "/approve")
        b.login(svc.env["CSC_USER"], svc.env["CSC_PASSWORD"], svc.env["CSC_TOTP_SECRET"])
        ref = b.ref_for("ap-restart", d)
        self.assertIsNotNone(ref, b.text[:3000])
        b.post({"action": "approve", "ref": ref, "pin": svc.env["CSC_PIN"]})
        self.assertIn("Approved", b.text)
        b.post({"action": "approve", "ref": ref, "pin": svc.env["CSC_PIN"]})
        self.assertIn("no longer waiting", b.text)
        r = svc.post("credentials/authorizeCheck", {"handle": handle}, t)
        self.assertEqual(r.status, 200, r)
        sad = r.json["SAD"]
        r = svc.post("credentials/authorizeCheck", {"handle": handle}, t)
        self.assertEqual((r.status, r.json["error_description"]), (400, "Invalid parameter handle"))
        r = svc.post("signatures/signHash", {"credentialID": "ap-restart", "SAD": sad, "hashes": [H.b64(d)],
                                             "signAlgo": H.ECDSA_SHA256}, t)
        self.assertEqual(r.status, 200, r)


class TestLifecycle(unittest.TestCase):
    """A service of its own: stopped, killed, connected to a SAM it did not start, started with a bad program."""

    @classmethod
    def setUpClass(cls):
        cls.svc = H.Service(BUILD)
        with open(cls.svc.conf) as f:
            cls.conf = f.read()

    def setUp(self):
        with open(self.svc.conf, "w") as f:
            f.write(self.conf)

    def tearDown(self):
        self.svc.stop()

    def configure(self, extra):
        with open(self.svc.conf, "a") as f:
            f.write(extra)

    def test_stop_and_kill_leave_no_sam(self):
        self.svc.start()
        pid = sam_child(self.svc)
        self.assertIsNotNone(pid)
        self.assertEqual(self.svc.stop(), 0)
        self.assertFalse(alive(pid), "csc-sam outlived csc-server's stop")
        self.assertFalse(os.path.exists(sam_socket(self.svc)))
        self.assertIn("csc-sam: stopping (signal 15)", self.svc.server_stderr())
        # SIGKILL of csc-server: nothing of it runs, yet its supervisor and csc-sam go too (end of file on the
        # supervisor's pipe, PR_SET_PDEATHSIG), csc-sam stopped in order.
        self.svc.start()
        pid, sup = sam_child(self.svc), supervisor(self.svc)
        self.assertIsNotNone(pid)
        self.svc.proc.kill()
        self.svc.proc.wait()
        self.svc.proc = None
        self.svc.stderr.close()
        self.assertTrue(wait_for(lambda: not alive(pid)), "csc-sam outlived a killed csc-server")
        self.assertTrue(wait_for(lambda: not alive(sup)), "the supervisor outlived a killed csc-server")
        self.assertEqual(self.svc.server_stderr().count("csc-sam: stopping (signal 15)"), 2)
        # and the next start finds the socket of the dead one stale and serves
        self.svc.start()
        self.assertEqual(self.svc.post("info", {}).status, 200)
        self.assertIn("pid=%d " % sam_child(self.svc), hello(sam_socket(self.svc))[T_IDENTITY])

    def test_supervisor_killed(self):
        """SIGKILL of the supervisor: its csc-sam goes (PR_SET_PDEATHSIG); csc-server goes on (the SAM unavailable)
        and still stops cleanly, without waiting for a supervisor that is gone."""
        self.svc.start()
        pid, sup = sam_child(self.svc), supervisor(self.svc)
        self.assertIsNotNone(pid)
        os.kill(sup, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: not alive(pid)), "csc-sam outlived its supervisor")
        self.assertEqual(self.svc.post("info", {}).status, 200)
        self.assertEqual(self.svc.stop(), 0)
        self.assertNotIn("did not finish", self.svc.server_stderr())

    def test_connect_mode(self):
        self.configure("sam_mode = connect\n")
        with open(os.path.join(self.svc.dir, "log", "sam.stderr"), "wb") as err:
            sam = subprocess.Popen([SAM, "-c", self.svc.conf], stdout=subprocess.DEVNULL, stderr=err)
        try:
            def up():
                try:
                    return hello(sam_socket(self.svc))
                except OSError:
                    return None
            self.assertTrue(wait_for(up), "csc-sam did not listen")
            self.svc.start()
            self.assertEqual(children(self.svc.proc.pid), [])
            self.assertIn("csc-server: csc-sam ready: csc-sam pid=%d " % sam.pid, self.svc.server_stderr())
            self.assertEqual(self.svc.post("info", {}).status, 200)
            self.assertEqual(self.svc.stop(), 0)
            self.assertIsNone(sam.poll(), "connect mode: csc-server does not stop a SAM it did not start")
            self.assertEqual(hello(sam_socket(self.svc))[T_VERSION], 1)
        finally:
            sam.terminate()
            self.assertEqual(sam.wait(timeout=30), 0)
        self.assertFalse(os.path.exists(sam_socket(self.svc)))

    def test_bad_program(self):
        self.configure("sam_program = /nonexistent/csc-sam\n")
        with self.assertRaises(RuntimeError) as e:
            self.svc.start()
        self.assertIn("sam_program /nonexistent/csc-sam: No such file or directory", str(e.exception))
        self.assertIn("the signature activation module did not start", str(e.exception))
        self.svc.proc = None
        self.svc.stderr.close()

    def test_sam_that_fails(self):
        # A program that exits before it is ready: csc-server says how it ended and does not start.
        self.configure("sam_program = /bin/false\n")
        with self.assertRaises(RuntimeError) as e:
            self.svc.start()
        self.assertIn("csc-sam (/bin/false) exited with status 1 before it was ready", str(e.exception))
        self.svc.proc = None
        self.svc.stderr.close()
        # csc-sam's own refusal reaches csc-server's stderr: a file where the socket should be.
        with open(self.svc.conf, "w") as f:
            f.write(self.conf)
        self.configure("sam_socket = not-a-socket\n")
        with open(os.path.join(self.svc.dir, "not-a-socket"), "w") as f:
            f.write("x")
        try:
            with self.assertRaises(RuntimeError) as e:
                self.svc.start()
            self.assertIn("not-a-socket exists and is not a socket", str(e.exception))
            self.assertIn("exited with status 1 before it was ready", str(e.exception))
        finally:
            os.unlink(os.path.join(self.svc.dir, "not-a-socket"))
        self.svc.proc = None
        self.svc.stderr.close()

    def test_token_late_then_there(self):
        """The token not there when csc-sam starts (a network HSM or its proxy starting beside it): csc-sam says so
        once and tries again within pkcs11_start_wait; the service starts when the token appears, and signs. Never
        a retry after the token refused the PIN; a token that stays away ends the start after the wait."""
        tokens = os.path.join(self.svc.dir, "softhsm", "tokens")
        away = os.path.join(self.svc.dir, "tokens-away")
        os.makedirs(away, exist_ok=True)
        names = os.listdir(tokens)
        self.assertTrue(names)

        def hide():
            for n in names:
                os.rename(os.path.join(tokens, n), os.path.join(away, n))

        def back():
            for n in names:
                os.rename(os.path.join(away, n), os.path.join(tokens, n))

        hide()
        timer = threading.Timer(2.0, back)
        timer.start()
        try:
            self.svc.start()
        finally:
            timer.join()
        err = self.svc.server_stderr()
        self.assertEqual(err.count("trying again for up to 20 s (pkcs11_start_wait)"), 1, err)
        token, d = self.svc.token(), H.digest("late token")
        a = self.svc.authorize(token, "demo-ec", [d], pin=self.svc.env["CSC_PIN"],
                               otp_secret=self.svc.env["CSC_TOTP_SECRET"])
        self.assertEqual(a.status, 200, a)
        r = self.svc.post("signatures/signHash", {"credentialID": "demo-ec", "SAD": a.json["SAD"],
                                                  "hashes": [H.b64(d)], "signAlgo": H.ECDSA_SHA256}, token)
        self.assertEqual(r.status, 200, r)
        self.svc.stop()
        # The token stays away: after pkcs11_start_wait the start fails, saying why.
        self.configure("pkcs11_start_wait = 1\n")
        hide()
        try:
            with self.assertRaises(RuntimeError) as e:
                self.svc.start()
            self.assertIn("trying again for up to 1 s (pkcs11_start_wait)", str(e.exception))
        finally:
            back()
        self.svc.proc = None
        self.svc.stderr.close()
        # The PIN refused: no retry at all (a retry could lock the token).
        pin_file = os.path.join(self.svc.dir, "secrets", "token.pin")
        with open(pin_file) as f:
            pin = f.read()
        with open(pin_file, "w") as f:
            f.write("99999999\n")
        before = len(self.svc.server_stderr())
        try:
            with self.assertRaises(RuntimeError):
                self.svc.start()
        finally:
            with open(pin_file, "w") as f:
                f.write(pin)
        this_start = self.svc.server_stderr()[before:]
        self.assertIn("token login refused", this_start)
        self.assertNotIn("trying again", this_start)
        self.svc.proc = None
        self.svc.stderr.close()

    def test_pin_refused_is_not_restarted(self):
        """csc-sam killed, and the token refuses the PIN when the supervisor starts it again: csc-sam exits with
        status 78 and is not started again (each start would try the PIN once more, and a token locks after a few
        wrong ones), csc-server answers 503 meanwhile and stops cleanly. Before: a start every 0.2-5 s, for ever."""
        self.svc.start()
        pid = sam_child(self.svc)
        self.assertIsNotNone(pid)
        pin_file = os.path.join(self.svc.dir, "secrets", "token.pin")
        with open(pin_file) as f:
            pin = f.read()
        try:
            with open(pin_file, "w") as f:
                f.write("99999999\n")
            before = len(self.svc.server_stderr())
            os.kill(pid, signal.SIGKILL)
            self.assertTrue(wait_for(lambda: "is not started again" in self.svc.server_stderr()[before:], 20),
                            self.svc.server_stderr()[before:])
            time.sleep(3)  # longer than the supervisor's first backoffs (0.2, 0.4, 0.8, 1.6 s)
            after = self.svc.server_stderr()[before:]
            self.assertEqual(after.count("token login refused"), 1, after)
            self.assertIn("exit status 78", after)
            self.assertIsNone(sam_child(self.svc))
            self.assertEqual(self.svc.post("info", {}).status, 200)
            basic = base64.b64encode(("%s:%s" % (self.svc.env["CSC_USER"], self.svc.env["CSC_PASSWORD"])).encode())
            r = self.svc.post("auth/login", {}, auth="Basic " + basic.decode())
            self.assertEqual(r.status, 503, r)
        finally:
            with open(pin_file, "w") as f:
                f.write(pin)
        self.assertEqual(self.svc.stop(), 0)


if __name__ == "__main__":
    unittest.main()
