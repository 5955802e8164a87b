"""systemd: the units of contrib/systemd/ and the notifications of csc-server and csc-sam (Type=notify).

PID 1 here is not systemd, so the units are checked offline: `systemd-analyze verify` on a throwaway root holding
the units, the two binaries and the system's own units (what verify resolves the dependencies against), and
`systemd-analyze security --offline=true` on each unit, whose exposure must stay at or below the figures recorded in
contrib/systemd/README.md. The notifications are checked for real: the test binds the datagram socket systemd would
(NOTIFY_SOCKET), with SO_PASSCRED so that the kernel names the sender of each message, sets WATCHDOG_USEC and runs
csc-server (csc-sam spawned) and csc-sam alone (sam_mode = connect, under its seccomp filter)."""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
UNITS = os.path.join(H.ROOT, "contrib", "systemd")
EXAMPLE = os.path.join(UNITS, "csc-server.conf")
SAM = os.path.join(BUILD, "server", "csc-sam")
# The exposure levels of `systemd-analyze security` (0 best, 10 worst) the units must not exceed: the README's table.
EXPOSURE_MAX = {"csc-sam.service": 1.6, "csc-server.service": 2.2}


def unit_settings(name):
    """{key: [values]} of a unit file."""
    out = {}
    with open(os.path.join(UNITS, name)) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")):
                k, v = line.split("=", 1)
                out.setdefault(k, []).append(v)
    return out


def verify_root(extra_units=()):
    """A throwaway root for `systemd-analyze verify --root`: the system's units, ours, the binaries at the paths the
    units name. extra_units: (name, text) written beside ours."""
    root = tempfile.mkdtemp(prefix="csc-verify-")
    shutil.copytree("/usr/lib/systemd/system", os.path.join(root, "usr/lib/systemd/system"), symlinks=True)
    os.makedirs(os.path.join(root, "usr/sbin"))
    for b in ("csc-server", "csc-sam"):
        shutil.copy(os.path.join(BUILD, "server", b), os.path.join(root, "usr/sbin", b))
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy("/bin/kill", os.path.join(root, "bin", "kill"))  # ExecReload=
    etc = os.path.join(root, "etc/systemd/system")
    os.makedirs(etc)
    for u in ("csc-sam.service", "csc-server.service"):
        shutil.copy(os.path.join(UNITS, u), etc)
    for name, text in extra_units:
        with open(os.path.join(etc, name), "w") as f:
            f.write(text)
    return root


def verify(root, *units):
    return subprocess.run(["systemd-analyze", "verify", "--man=no", "--root=" + root] + list(units),
                          capture_output=True, text=True)


class TestUnits(unittest.TestCase):
    def test_verify(self):
        root = verify_root()
        try:
            r = verify(root, "csc-sam.service", "csc-server.service")
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
        finally:
            shutil.rmtree(root)

    def test_verify_catches_a_bad_unit(self):
        """The same check fails on a unit whose program is missing and on an unknown key (the check can fail)."""
        with open(os.path.join(UNITS, "csc-sam.service")) as f:
            good = f.read()
        missing = good.replace("/usr/sbin/csc-sam ", "/usr/sbin/csc-sam-missing ")
        typo = good.replace("ProtectSystem=strict", "ProtectSystme=strict")
        root = verify_root([("bad-missing.service", missing), ("bad-typo.service", typo)])
        try:
            r = verify(root, "bad-missing.service")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("csc-sam-missing", r.stderr)
            r = verify(root, "bad-typo.service")
            self.assertIn("ProtectSystme", r.stderr)
        finally:
            shutil.rmtree(root)

    def test_security_exposure(self):
        for unit, limit in EXPOSURE_MAX.items():
            r = subprocess.run(["systemd-analyze", "security", "--no-pager", "--offline=true",
                                os.path.join(UNITS, unit)], capture_output=True, text=True)
            text = r.stdout + r.stderr
            m = re.search(r"Overall exposure level for %s: (\d+\.\d)" % re.escape(unit), text)
            self.assertIsNotNone(m, text)
            self.assertLessEqual(float(m.group(1)), limit, "%s: exposure %s > %s\n%s" % (unit, m.group(1), limit, text))
            for setting in ("NoNewPrivileges=", "MemoryDenyWriteExecute=", "PrivateTmp=", "PrivateDevices=",
                            "ProtectSystem=", "LockPersonality=", "SystemCallArchitectures=", "RestrictNamespaces=~",
                            "ProtectKernelModules=", "ProtectKernelTunables="):
                self.assertRegex(text, r"✓ %s" % re.escape(setting), unit)

    def test_units_agree_with_the_example(self):
        """The units start csc-sam first and run both on the packaged configuration, whose sockets lie in csc-sam's
        RuntimeDirectory and which connects (csc-server never spawns csc-sam under these units)."""
        sam, srv = unit_settings("csc-sam.service"), unit_settings("csc-server.service")
        for u in (sam, srv):
            self.assertEqual(u["Type"], ["notify"])
            self.assertTrue(u["ExecStart"][0].endswith(" -c /etc/csc-server/csc-server.conf"))
            self.assertIn("WatchdogSec", u)
            self.assertEqual(u["CapabilityBoundingSet"][0].split().count("CAP_SYS_ADMIN"), 0)
            self.assertEqual(u["Environment"], ["GLIBC_TUNABLES=glibc.malloc.tcache_count=2"])  # srv_priv_tcache's
        self.assertIn("csc-sam.service", srv["Requires"][0].split())
        self.assertIn("csc-sam.service", srv["After"][0].split())
        r = subprocess.run([os.path.join(BUILD, "server", "csc-server"), "-t", "-c", EXAMPLE], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(EXAMPLE) as f:
            conf = dict(l.split(" = ", 1) for l in f.read().splitlines() if " = " in l and l[0] != "#")
        self.assertEqual(conf["sam_mode"], "connect")
        for key in ("sam_socket", "sam_admin_socket"):
            self.assertEqual(os.path.dirname(conf[key]), "/run/" + sam["RuntimeDirectory"][0])
        self.assertTrue(conf["storage"].startswith("lmdb:/var/lib/csc-server/"))
        for u in (sam, srv):
            self.assertIn("/var/lib/csc-server", u["ReadWritePaths"])


class Listener:
    """The notification socket systemd binds: a datagram socket at a path, SO_PASSCRED on."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="csc-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.messages = []  # (pid, {key: value})

    def env(self, watchdog_usec=None, watchdog_pid=None):
        e = {"NOTIFY_SOCKET": self.path}
        if watchdog_usec is not None:
            e["WATCHDOG_USEC"] = str(watchdog_usec)
        if watchdog_pid is not None:
            e["WATCHDOG_PID"] = str(watchdog_pid)
        return e

    def read(self, seconds):
        """Collect messages for seconds."""
        deadline = time.time() + seconds
        while True:
            left = deadline - time.time()
            if left <= 0:
                return self.messages
            self.sock.settimeout(left)
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                return self.messages
            pid = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", value[:12])[0]
            fields = dict(l.split("=", 1) for l in data.decode().splitlines() if "=" in l)
            self.messages.append((pid, fields))

    def wait_for(self, key, seconds=30):
        """Read until a message with key arrives; that message."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            for _, m in self.messages:
                if key in m:
                    return m
            self.read(0.2)
        raise AssertionError("no %s among %r" % (key, self.messages))

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, True)


class TestNotify(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = H.Service(BUILD)
        with open(cls.svc.conf) as f:
            cls.conf = f.read()

    def setUp(self):
        with open(self.svc.conf, "w") as f:
            f.write(self.conf)
        self.listener = Listener()

    def tearDown(self):
        self.svc.stop()
        self.listener.close()

    def test_server_ready_watchdog_stopping(self):
        """csc-server (csc-sam spawned): READY=1 once it serves, WATCHDOG=1 at half of WATCHDOG_USEC from its loops,
        STOPPING=1 at SIGTERM; every message from csc-server's own pid (the spawned csc-sam sends none)."""
        lst = self.listener
        self.svc.start(env_extra=lst.env(watchdog_usec=400000))
        ready = lst.wait_for("READY")
        self.assertEqual(ready["READY"], "1")
        self.assertIn("serving on 127.0.0.1:%d" % self.svc.port, ready["STATUS"])
        n0 = sum(1 for _, m in lst.messages if "WATCHDOG" in m)
        lst.read(2.0)
        pings = sum(1 for _, m in lst.messages if "WATCHDOG" in m) - n0
        # every 200 ms (half of 400 ms) while both loops turn: about 10 in 2 s (fewer on a busy machine, whose timers
        # fire late; never more, which would be a shorter period than half of WATCHDOG_USEC)
        self.assertGreaterEqual(pings, 5, lst.messages)
        self.assertLessEqual(pings, 11, lst.messages)
        self.assertEqual(self.svc.post("info", {}).status, 200)
        pid = self.svc.proc.pid
        self.assertEqual(self.svc.stop(), 0, self.svc.server_stderr()[-4000:])
        stopping = lst.wait_for("STOPPING", 5)
        self.assertIn("draining", stopping["STATUS"])
        self.assertEqual({p for p, _ in lst.messages}, {pid})
        self.assertIn("csc-server: systemd notifications on (watchdog every 200 ms)", self.svc.server_stderr())

    def test_no_watchdog_unless_asked(self):
        """Without WATCHDOG_USEC, or with a WATCHDOG_PID naming another process, READY=1 but no WATCHDOG=1."""
        for env in (self.listener.env(), self.listener.env(watchdog_usec=200000, watchdog_pid=1)):
            self.listener.messages.clear()
            self.svc.start(env_extra=env)
            self.listener.wait_for("READY")
            self.listener.read(1.0)
            self.assertFalse([m for _, m in self.listener.messages if "WATCHDOG" in m], self.listener.messages)
            self.assertEqual(self.svc.stop(), 0, self.svc.server_stderr()[-4000:])

    def test_sam_alone(self):
        """csc-sam started on its own (csc-sam.service, sam_mode = connect), under its seccomp filter: READY=1 once
        its socket serves, WATCHDOG=1 from its main thread, STOPPING=1 at SIGTERM, exit 0."""
        with open(self.svc.conf, "a") as f:
            f.write("sam_mode = connect\n")
        lst = self.listener
        env = dict(os.environ)
        env.update(lst.env(watchdog_usec=300000))
        with open(os.path.join(self.svc.dir, "log", "sam.stderr"), "wb") as err:
            sam = subprocess.Popen([SAM, "-c", self.svc.conf], stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            ready = lst.wait_for("READY")
            self.assertRegex(ready["STATUS"], r"serving on .*csc-sam\.sock, token csc-demo logged in")
            lst.read(1.5)
            pings = sum(1 for _, m in lst.messages if "WATCHDOG" in m)
            self.assertGreaterEqual(pings, 4, lst.messages)  # every 150 ms
            self.svc.start()  # connects to it
            self.assertIn("csc-sam ready: csc-sam pid=%d " % sam.pid, self.svc.server_stderr())
            self.assertEqual(self.svc.stop(), 0, self.svc.server_stderr()[-4000:])
            sam.send_signal(signal.SIGTERM)
            self.assertEqual(sam.wait(timeout=30), 0)
        finally:
            if sam.poll() is None:
                sam.kill()
                sam.wait()
        self.assertIn("STOPPING", lst.wait_for("STOPPING", 5))
        self.assertEqual({p for p, _ in lst.messages}, {sam.pid})


if __name__ == "__main__":
    unittest.main()
