"""Process hardening of the running csc-server, its csc-sam supervisor and csc-sam (server/srv_priv.c): the seccomp
filter in every thread, no new privileges, no core dumps, locked memory (csc-sam), the switch to server_user and
sam_user when started as root with the socket reachable by the front end's user only, and what each refuses; a
signature still goes through the HSM under all of it, and a killed csc-sam comes back while csc-server runs under its
filter. csc-server loads no PKCS#11 module and never reads the token PIN file: csc-sam alone holds the token."""
import base64
import os
import pwd
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_sam import SAM, T_IDENTITY, alive, children, comm, hello, sam_child, supervisor, wait_for  # noqa: E402

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(harness.ROOT, "build"))
TEST_USER = "csc-server"  # scripts/deps creates it (useradd --system)
SAM_USER = "csc-sam"      # and this one


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


ARENA_HEAP = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit: a thread arena's heap is a reservation of this, so aligned


def arena_heaps(pid):
    """How many heaps of glibc's thread arenas pid's memory has: each is a reservation of ARENA_HEAP bytes at an
    address aligned to it, its used part read-write and the rest without access (---p), which ends on the alignment."""
    maps = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            maps.append((start, end, parts[1], len(parts) > 5))
    return sum(1 for prev, cur in zip(maps, maps[1:])
               if cur[2] == "---p" and not cur[3] and cur[1] % ARENA_HEAP == 0 and cur[1] - cur[0] < ARENA_HEAP
               and prev[2] == "rw-p" and not prev[3] and prev[1] == cur[0])


def asan(pid):
    """The process is a sanitizer build: ASan answers mlockall itself without locking anything."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def config_value(conf, key):
    with open(conf) as f:
        for line in f:
            k, _, v = line.partition("=")
            if k.strip() == key:
                return v.strip()
    return None


def mapped_files(pid):
    """The files mapped into pid (its libraries and whatever it dlopen'ed), from /proc/PID/maps."""
    with open("/proc/%d/maps" % pid) as f:
        return {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}


# libp11-kit itself (not a module): GnuTLS links it, and libpq -> libldap -> GnuTLS brings it into a process whose
# storage is postgresql (storage/stor_pg.c dlopen()s libpq then). It only reads PKCS#11 module configuration when
# GnuTLS is asked for a "pkcs11:" URI, which nothing here does; the modules it would load are what must never be
# mapped (docs/stack-notes.md, "libpq and p11-kit").
LIB_DIR = "/usr/lib/x86_64-linux-gnu/"  # TestMappingRule's example paths
P11_KIT_LIBRARY = re.compile(r"/libp11-kit\.so(\.[0-9]+)*$")


def pkcs11_mappings(files, module, storage="lmdb"):
    """The files of files (mapped paths) that csc-server must not map: a PKCS#11 module (the configured one, SoftHSM,
    p11-kit's client, proxy or trust module, anything named pkcs11 or p11-kit) and, when storage is lmdb, also
    libp11-kit itself and libpq (nothing of them has a reason to be there). On postgresql libp11-kit.so is GnuTLS's
    dependency (via libpq), not a module, and is allowed."""
    real = os.path.realpath(module)
    bad = []
    for f in sorted(files):
        low = f.lower()
        if f in (module, real) or "softhsm" in low:
            bad.append(f)
        elif "pkcs11" in low or "p11-kit" in low:
            if not (storage == "postgresql" and P11_KIT_LIBRARY.search(f)):
                bad.append(f)
        elif storage != "postgresql" and "libpq" in os.path.basename(low):
            bad.append(f)
    return bad


def assert_no_pkcs11(test, server, sam, module, storage="lmdb"):
    """server maps no PKCS#11 module (pkcs11_mappings), while csc-sam maps the configured one (so the test looks where
    the module would be)."""
    test.assertEqual(pkcs11_mappings(mapped_files(server), module, storage), [], "csc-server maps a PKCS#11 module")
    test.assertTrue({module, os.path.realpath(module)} & mapped_files(sam),
                    "csc-sam does not map %s: the test looks in the wrong place" % module)


class TestMappingRule(unittest.TestCase):
    """What assert_no_pkcs11 refuses in csc-server, per storage backend (no service needed)."""
    MODULE = "/usr/lib/softhsm/libsofthsm2.so"
    BASE = [LIB_DIR + "libc.so.6", LIB_DIR + "libssl.so.3", "/usr/local/lib/libh2o-evloop.so"]

    def test_lmdb_refuses_p11_kit_and_libpq(self):
        for f in (LIB_DIR + "libp11-kit.so.0.3.0", LIB_DIR + "libpq.so.5.15", self.MODULE,
                  LIB_DIR + "pkcs11/p11-kit-client.so"):
            self.assertEqual(pkcs11_mappings(self.BASE + [f], self.MODULE), [f])
        self.assertEqual(pkcs11_mappings(self.BASE, self.MODULE), [])

    def test_postgresql_allows_the_library_not_modules(self):
        ok = self.BASE + [LIB_DIR + "libp11-kit.so.0.3.0", LIB_DIR + "libpq.so.5.15", LIB_DIR + "libgnutls.so.30"]
        self.assertEqual(pkcs11_mappings(ok, self.MODULE, "postgresql"), [])
        for f in (self.MODULE, "/usr/lib/softhsm/libsofthsm2.so.2", LIB_DIR + "p11-kit-proxy.so",
                  LIB_DIR + "pkcs11/p11-kit-client.so", LIB_DIR + "pkcs11/p11-kit-trust.so",
                  LIB_DIR + "opensc-pkcs11.so"):
            self.assertEqual(pkcs11_mappings(ok + [f], self.MODULE, "postgresql"), [f])


def as_user(pw, fn):
    """fn() in a child running as pw's uid, gid and groups (as the process that switched to pw would): its result,
    or the name of the exception it raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        out = "?"
        try:
            os.close(r)
            os.setgroups(os.getgrouplist(pw.pw_name, pw.pw_gid))
            os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
            os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
            out = str(fn())
        except Exception as e:  # noqa: BLE001 - the child reports what it met
            out = type(e).__name__
        finally:
            os.write(w, out.encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


def read_pin(path):
    with open(path) as f:
        return "read %d bytes" % len(f.read())


def assert_filtered(test, pid, who):
    """Every thread of pid has a seccomp filter and NO_NEW_PRIVS; no core file."""
    seen = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            st = proc_status(pid, t)
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended since the listing (a connection's thread once its peer hung up): its
            # file is gone (ENOENT) or, open already, reads ESRCH
        seen += 1
        test.assertEqual(st["Seccomp"].strip(), "2", "%s thread %s (%s) has no filter" % (who, t, st["Name"]))
        test.assertEqual(st["NoNewPrivs"].strip(), "1", "%s thread %s" % (who, t))
    test.assertGreater(seen, 0, "%s has no thread left to look at" % who)
    test.assertEqual(core_limit(pid), ["0", "0"], who)


def ask_hello_as(path, uid=None, gid=None):
    """HELLO over path from a child running as uid/gid (None: this process's): the reply's op (0x81 the answer,
    0xFF a refusal), or the errno of connect."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            if uid is not None:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            body = struct.pack(">HII", 1, 4, 1)
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.settimeout(10)
                s.connect(path)
                try:
                    s.send(struct.pack(">HBBHHII", 0x5341, 1, 1, 0, 0, 7, len(body)) + body)
                except BrokenPipeError:
                    # a refused peer may be refused and closed on before it sends: the refusal is still queued
                    pass
                try:
                    rec = s.recv(65536)
                except ConnectionResetError:
                    # a refused peer's request is left unread: the close reports ECONNRESET once, before the
                    # refusal queued ahead of it
                    rec = s.recv(65536)
            code = rec[3] if len(rec) >= 16 else 0
        except OSError as e:
            code = 1000 + (e.errno or 0)
        finally:
            os.write(w, str(code).encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return int(out)


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
    """The default configuration: the front end's filter, NoNewPrivs, no core dumps, in every thread; csc-sam under
    the SAM's filter with locked memory; the supervisor without secrets, sockets or filter, but without new
    privileges or core dumps; a killed csc-sam comes back while csc-server runs under its filter (which refuses
    fork, execve, kill and wait)."""

    @classmethod
    def setUpClass(cls):
        cls.svc = harness.Service(BUILD).start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def test_every_thread_filtered(self):
        pid = self.svc.proc.pid
        self.assertGreater(len(os.listdir("/proc/%d/task" % pid)), 5)  # loops, workers, storage writer, ...
        assert_filtered(self, pid, "csc-server")

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

    def test_no_pkcs11_module_in_front_end(self):
        """The running csc-server has no PKCS#11 module in its memory; csc-sam, which signs, has."""
        sign_once(self.svc)  # csc-sam has used the token since it started; csc-server asked it to
        sam = sam_child(self.svc)
        self.assertIsNotNone(sam)
        assert_no_pkcs11(self, self.svc.proc.pid, sam, config_value(self.svc.conf, "pkcs11_module"))

    def test_no_libpq_on_lmdb(self):
        """storage = lmdb: neither csc-server nor csc-sam maps libpq (storage/stor_pg.c loads it only when a postgresql
        environment is opened) nor, in csc-server, libp11-kit (which libpq's GnuTLS would bring)."""
        self.assertTrue((config_value(self.svc.conf, "storage") or "lmdb:").startswith("lmdb:"))
        sign_once(self.svc)
        sam = sam_child(self.svc)
        self.assertIsNotNone(sam)
        for pid in (self.svc.proc.pid, sam):
            files = mapped_files(pid)
            self.assertTrue(any("libcrypto" in f for f in files), "the test looks in the wrong place")
            self.assertEqual([f for f in files if "libpq" in os.path.basename(f)], [], comm(pid))
        self.assertEqual([f for f in mapped_files(self.svc.proc.pid) if "p11-kit" in f], [])

    def test_tcache_limited(self):
        """csc-server executed itself again with glibc's cache of freed blocks per thread limited (GLIBC_TUNABLES,
        server/srv_priv.c srv_priv_tcache), with the same pid, and csc-sam inherited it; a value of the test's own
        environment is kept."""
        own = os.environ.get("GLIBC_TUNABLES", "")
        if "glibc.malloc.tcache_count=" in own:
            want = own
        else:
            want = (own + ":" if own else "") + "glibc.malloc.tcache_count=2"
        sam = sam_child(self.svc)
        self.assertIsNotNone(sam)
        for pid in (self.svc.proc.pid, sam):
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = dict(e.decode().partition("=")[::2] for e in f.read().split(b"\0") if e)
            self.assertEqual(env.get("GLIBC_TUNABLES"), want, comm(pid))
        self.assertEqual(comm(self.svc.proc.pid), "csc-server")  # its name kept (ps, pidof, scripts/cluster)

    def test_one_arena(self):
        """csc-server's threads share one malloc arena (srv_priv_arenas(SRV_PRIV_FRONT_ARENAS)): its memory has no
        heap of a thread arena; csc-sam keeps one arena per CPU, which shows that such heaps are seen."""
        sam = sam_child(self.svc)
        self.assertIsNotNone(sam)
        if asan(self.svc.proc.pid):
            self.skipTest("ASan's allocator has no arenas of glibc's")
        self.assertEqual(arena_heaps(self.svc.proc.pid), 0)
        if (os.cpu_count() or 1) >= 2:
            self.assertGreaterEqual(arena_heaps(sam), 1)

    def test_sam_hardened(self):
        pid = sam_child(self.svc)
        self.assertIsNotNone(pid)
        assert_filtered(self, pid, "csc-sam")
        if not asan(pid):
            self.assertGreater(int(proc_status(pid)["VmLck"].split()[0]), 0, "csc-sam's memory is not locked")

    def test_supervisor(self):
        sup = supervisor(self.svc)
        self.assertIsNotNone(sup, [(k, comm(k)) for k in children(self.svc.proc.pid)])
        st = proc_status(sup)
        self.assertEqual(st["NoNewPrivs"].strip(), "1")
        self.assertEqual(st["Seccomp"].strip(), "0")  # it forks, execs, signals and waits
        self.assertEqual(core_limit(sup), ["0", "0"])
        self.assertEqual(os.getpgid(sup), sup, "a process group of its own (a terminal's Ctrl-C is csc-server's)")
        # nothing of csc-server's: no socket, no file of the service (token, database, keys); only its pipes
        fds = {fd: os.readlink("/proc/%d/fd/%s" % (sup, fd)) for fd in os.listdir("/proc/%d/fd" % sup)}
        for fd, what in fds.items():
            if int(fd) > 2:
                self.assertTrue(what.startswith("pipe:") or what.startswith("anon_inode:"), (fd, what))

    def test_restart_under_filter(self):
        server = self.svc.proc.pid
        self.assertEqual(proc_status(server)["Seccomp"].strip(), "2")
        old = sam_child(self.svc)
        os.kill(old, signal.SIGKILL)

        def restarted():
            new = sam_child(self.svc)
            try:
                return new if new not in (None, old) and "pid=%d " % new in hello(
                    os.path.join(self.svc.dir, "csc-sam.sock"))[T_IDENTITY] else None
            except OSError:
                return None
        new = wait_for(restarted)
        self.assertTrue(new, "csc-sam was not restarted: " + self.svc.server_stderr()[-2000:])
        self.assertFalse(alive(old))
        assert_filtered(self, new, "the new csc-sam")
        assert_filtered(self, server, "csc-server")
        sign_once(self.svc)


def sender_helper(sam):
    """csc-sam's exec: sender helper: its one child named csc-sam-sender (None when there is not exactly one)."""
    kids = [k for k in children(sam) if comm(k) == "csc-sam-sender"] if sam else []
    return kids[0] if len(kids) == 1 else None


def exec_sender(svc, prog_dir):
    """Before start: a CHALLENGE credential, and an exec: sender (added to the configuration) that appends its stdin
    and its uid to prog_dir/out."""
    prog = os.path.join(prog_dir, "send.sh")
    with open(prog, "w") as f:
        f.write("#!/bin/sh\ncat >> %s/out\necho uid=$(id -u) >> %s/out\nexit 0\n" % (prog_dir, prog_dir))
    os.chmod(prog, 0o755)
    for cid in ("ch-hard", "ch-hard2"):
        svc.admin("credential", "create", "--id", cid, "--user", svc.env["CSC_USER"], "--key", "p256", "--auth",
                  "CHALLENGE", "--scal", "1")
    with open(svc.conf, "a") as f:
        f.write("otp_sender = exec:%s\n" % prog)


def deliver_once(test, svc, prog_dir, cred="ch-hard"):
    """getChallenge: 204, and the program got the code; the uid it ran as. A csc-sam that has just been restarted
    forks its helper before it listens: until it does, csc-server answers 503 (nothing is sent), so 503 is retried
    for a few seconds; so is auth/login, which csc-sam answers too (API_LOGIN)."""
    deadline, token = time.time() + 15, None
    while True:
        basic = base64.b64encode(("%s:%s" % (svc.env["CSC_USER"], svc.env["CSC_PASSWORD"])).encode()).decode()
        r = svc.post("auth/login", {}, auth="Basic " + basic) if token is None else \
            svc.post("credentials/getChallenge", {"credentialID": cred, "authObjectID": "CHALLENGE"}, token)
        if token is None and r.status == 200:
            token = r.json["access_token"]
            continue
        if r.status != 503 or time.time() > deadline:
            break
        time.sleep(0.2)
    test.assertEqual(r.status, 204, (r, svc.server_stderr()[-2000:]))
    with open(os.path.join(prog_dir, "out")) as f:
        text = f.read()
    test.assertRegex(text, r"credential=%s\nchannel=CHALLENGE\ncode=\d{6}\n" % cred)
    return int(re.findall(r"uid=(\d+)", text)[-1])


def restarted_with_helper(svc, old, hello_as_root=True):
    """The csc-sam that replaced old, with its helper, once it answers HELLO (its helper is forked before it listens;
    hello_as_root False: not asked, with server_user only it answers); None if none came within the deadline."""
    def ready():
        new = sam_child(svc)
        if new in (None, old) or not sender_helper(new):
            return None
        if not hello_as_root:
            return new
        try:
            return new if "pid=%d " % new in hello(os.path.join(svc.dir, "csc-sam.sock"))[T_IDENTITY] else None
        except OSError:
            return None
    return wait_for(ready)


def check_helper(test, svc, sam):
    """sam's helper: under its own filter, without a descriptor of csc-sam's but its socket; its pid."""
    helper = wait_for(lambda: sender_helper(sam))
    test.assertTrue(helper, "csc-sam (pid %s) has no sender helper: %s" % (sam, svc.server_stderr()[-2000:]))
    assert_filtered(test, helper, "the sender helper")
    fds = {int(fd): os.readlink("/proc/%d/fd/%s" % (helper, fd)) for fd in os.listdir("/proc/%d/fd" % helper)}
    test.assertTrue(fds[3].startswith("socket:"), fds)
    test.assertEqual(sorted(fds), [0, 1, 2, 3], fds)
    return helper


class TestExecSender(unittest.TestCase):
    """An exec: otp_sender runs from csc-sam's sender helper, never from csc-server: csc-server keeps its filter in
    every thread; the helper (forked by csc-sam before its own filter) has a filter of its own and delivers the code,
    goes away with a csc-sam killed with -9 and comes back with the new csc-sam, and goes at stop."""

    def test_front_filtered_helper_follows_sam(self):
        d = tempfile.mkdtemp(prefix="csc-hard-exec-")
        svc = harness.Service(BUILD)
        exec_sender(svc, d)
        helper = None
        try:
            svc.start()
            assert_filtered(self, svc.proc.pid, "csc-server")
            self.assertNotIn("no seccomp filter", svc.server_stderr())
            sam = sam_child(svc)
            helper = check_helper(self, svc, sam)
            deliver_once(self, svc, d)
            os.kill(sam, signal.SIGKILL)
            self.assertTrue(wait_for(lambda: not alive(helper)), "the helper outlived csc-sam")
            new = restarted_with_helper(svc, sam)
            self.assertTrue(new, "csc-sam was not restarted with a helper: " + svc.server_stderr()[-2000:])
            helper = check_helper(self, svc, new)
            deliver_once(self, svc, d, "ch-hard2")
            # the first code outlived the csc-sam that made it (it is in storage): asking again so soon is refused
            r = svc.post("credentials/getChallenge", {"credentialID": "ch-hard", "authObjectID": "CHALLENGE"},
                         svc.token())
            self.assertEqual(r.status, 429, r)
            assert_filtered(self, svc.proc.pid, "csc-server")
        finally:
            svc.stop_checked()
        self.assertTrue(wait_for(lambda: not alive(helper)), "the helper outlived csc-sam's stop")

    def test_helper_gone_sam_restarts(self):
        """The helper killed: csc-sam stops with a log line and its supervisor starts it, and a helper, again."""
        d = tempfile.mkdtemp(prefix="csc-hard-exec-")
        svc = harness.Service(BUILD)
        exec_sender(svc, d)
        svc.start()
        try:
            sam = sam_child(svc)
            helper = check_helper(self, svc, sam)
            os.kill(helper, signal.SIGKILL)
            new = restarted_with_helper(svc, sam)
            self.assertTrue(new, "csc-sam was not restarted: " + svc.server_stderr()[-2000:])
            self.assertIn("csc-sam: the otp_sender helper ended: stopping", svc.server_stderr())
            check_helper(self, svc, new)
            deliver_once(self, svc, d)
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
                try:
                    ts = proc_status(pid, t)
                except (FileNotFoundError, ProcessLookupError):
                    continue  # a thread that ended since the listing (as in assert_filtered)
                self.assertEqual(ts["Uid"].split()[0], str(self.pw.pw_uid), "thread %s" % t)
            self.assertEqual(os.stat("/proc/%d" % pid).st_uid, self.pw.pw_uid)
            self.assertEqual(os.stat("/proc/%d/status" % pid).st_uid, 0)  # not dumpable: its files stay root's
            # csc-sam (no sam_user: it stays root) gives its socket to server_user's group and takes that user's
            # connections only
            sock = os.path.join(svc.dir, "csc-sam.sock")
            st = os.stat(sock)
            self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777), (0, self.pw.pw_gid, 0o660))
            self.assertEqual(ask_hello_as(sock, self.pw.pw_uid, self.pw.pw_gid), 0x81)
            self.assertEqual(ask_hello_as(sock), 0xFF, "root is not the front end")
            sign_once(svc)
        finally:
            svc.stop_checked()

    def sam_user_service(self, prepare=None):
        """A service configured with server_user and sam_user (prepare(svc) first, e.g. an exec: sender), not yet
        started; sam_user's passwd entry."""
        try:
            sam_pw = pwd.getpwnam(SAM_USER)
        except KeyError:
            self.skipTest("no user %s (scripts/deps creates it)" % SAM_USER)
        svc = harness.Service(BUILD, extra_config="server_user = %s\nsam_user = %s\n" % (TEST_USER, SAM_USER))
        os.chmod(svc.tmp, 0o711)

        def give():
            # the service directory is sam_user's and the front end's group's (csc-server opens the database, never
            # the token); the PIN file sam_user's alone
            subprocess.run(["chown", "-R", "%s:%s" % (SAM_USER, self.pw.pw_gid), svc.dir], check=True)
            subprocess.run(["chmod", "-R", "g+rwX,o-rwx", svc.dir], check=True)
            os.chmod(os.path.join(svc.dir, "secrets", "token.pin"), 0o400)
        give()
        if prepare is not None:
            # csc-admin's key commands run in a csc-sam of their own, as sam_user: the folder is given first, and
            # again after (prepare may add files)
            prepare(svc)
            give()
        return svc, sam_pw

    def test_sam_user(self):
        """server_user and sam_user: csc-sam runs as sam_user (the supervisor stays root to start and stop it), its
        socket is sam_user's, group server_user's, mode 0660, and answers server_user only; the PIN file is
        sam_user's, mode 0400 (csc-sam reads it as root, before it switches; csc-server never opens it, nor the
        token), and server_user cannot open it; a signature still works end to end; a killed csc-sam comes back as
        sam_user."""
        svc, sam_pw = self.sam_user_service()
        pin = os.path.join(svc.dir, "secrets", "token.pin")
        svc.start()
        try:
            sam, sup, server = sam_child(svc), supervisor(svc), svc.proc.pid
            self.assertIsNotNone(sam)
            self.assertEqual(proc_status(server)["Uid"].split(), [str(self.pw.pw_uid)] * 4)
            self.assertEqual(proc_status(sup)["Uid"].split(), ["0"] * 4)
            self.assertEqual(proc_status(sup)["NoNewPrivs"].strip(), "1")
            sock = os.path.join(svc.dir, "csc-sam.sock")

            def check_sam(pid):
                st = proc_status(pid)
                self.assertEqual(st["Uid"].split(), [str(sam_pw.pw_uid)] * 4)
                self.assertEqual(st["Gid"].split(), [str(sam_pw.pw_gid)] * 4)
                self.assertNotIn("0", st["Groups"].split())
                # no capability but CAP_IPC_LOCK (14), kept only where root could not raise RLIMIT_MEMLOCK
                for cap in ("CapPrm", "CapEff", "CapInh", "CapAmb"):
                    self.assertEqual(int(st[cap], 16) & ~(1 << 14), 0, cap)
                for t in os.listdir("/proc/%d/task" % pid):
                    try:
                        ts = proc_status(pid, t)
                    except (FileNotFoundError, ProcessLookupError):
                        continue  # a thread that ended since the listing (as in assert_filtered)
                    self.assertEqual(ts["Uid"].split()[0], str(sam_pw.pw_uid), "thread %s" % t)
                    # a thread has the capabilities of the thread that made it: none may be older than the switch
                    # (without CAP_IPC_LOCK a thread's new mappings fail under mlockall: storage writes did)
                    self.assertEqual(ts["CapEff"], st["CapEff"], "thread %s (%s)" % (t, ts["Name"]))
                assert_filtered(self, pid, "csc-sam")
                self.assertEqual(os.stat("/proc/%d/status" % pid).st_uid, 0)  # not dumpable
                if not asan(pid):
                    self.assertGreater(int(st["VmLck"].split()[0]), 0)
                s = os.stat(sock)
                self.assertEqual((s.st_uid, s.st_gid, s.st_mode & 0o777), (sam_pw.pw_uid, self.pw.pw_gid, 0o660))
                self.assertEqual(ask_hello_as(sock, self.pw.pw_uid, self.pw.pw_gid), 0x81)
                self.assertEqual(ask_hello_as(sock, sam_pw.pw_uid, sam_pw.pw_gid), 0xFF, "only the front end")
                self.assertEqual(ask_hello_as(sock, 65534, 65534), 1000 + 13, "others cannot even connect (EACCES)")
            check_sam(sam)
            assert_filtered(self, server, "csc-server")
            sign_once(svc)
            # csc-server asked HELLO once it was server_user: csc-sam refused no connection of its
            log = svc.server_stderr()
            self.assertIn("csc-server: csc-sam ready: csc-sam pid=%d " % sam, log)
            self.assertNotIn("refused a connection from uid 0 ", log)
            self.assertNotIn("does not answer HELLO", log)
            # csc-server's user cannot open the PIN file; csc-sam's can (so the check can fail)
            self.assertEqual(as_user(self.pw, lambda: read_pin(pin)), "PermissionError")
            self.assertTrue(as_user(sam_pw, lambda: read_pin(pin)).startswith("read "))
            assert_no_pkcs11(self, server, sam, config_value(svc.conf, "pkcs11_module"))
            os.kill(sam, signal.SIGKILL)
            new = wait_for(lambda: (lambda p: p if p not in (None, sam) and ask_hello_as(
                sock, self.pw.pw_uid, self.pw.pw_gid) == 0x81 else None)(sam_child(svc)))
            self.assertTrue(new, "csc-sam was not restarted: " + svc.server_stderr()[-2000:])
            check_sam(new)
        finally:
            svc.stop_checked()

    def test_exec_sender_as_sam_user(self):
        """With sam_user, csc-sam's sender helper (whose uid the program it runs inherits) is sam_user, never root,
        without capabilities and under its filter; csc-server keeps its own filter; a killed csc-sam's helper goes
        and the new csc-sam's is sam_user again."""
        d = tempfile.mkdtemp(prefix="csc-hard-exec-")
        svc, sam_pw = self.sam_user_service(lambda s: exec_sender(s, d))
        os.chown(d, sam_pw.pw_uid, sam_pw.pw_gid)  # the program, as sam_user, writes its out file there
        svc.start()
        try:
            assert_filtered(self, svc.proc.pid, "csc-server")
            sam = sam_child(svc)
            for cred in ("ch-hard", "ch-hard2"):  # a pending code outlives csc-sam (storage): one per round
                helper = check_helper(self, svc, sam)
                st = proc_status(helper)
                self.assertEqual(st["Uid"].split(), [str(sam_pw.pw_uid)] * 4)
                self.assertEqual(st["Gid"].split(), [str(sam_pw.pw_gid)] * 4)
                self.assertNotIn("0", st["Groups"].split())
                for cap in ("CapPrm", "CapEff", "CapInh", "CapAmb"):
                    self.assertEqual(int(st[cap], 16), 0, cap)
                self.assertEqual(deliver_once(self, svc, d, cred), sam_pw.pw_uid, "the program runs as sam_user")
                os.kill(sam, signal.SIGKILL)
                self.assertTrue(wait_for(lambda: not alive(helper)), "the helper outlived csc-sam")
                sam = restarted_with_helper(svc, sam, hello_as_root=False)
                self.assertTrue(sam, "csc-sam was not restarted with a helper: " + svc.server_stderr()[-2000:])
        finally:
            svc.stop_checked()

    def test_front_end_never_reads_pin_file(self):
        """csc-server never opens the PIN file, the token or the PKCS#11 module: csc-sam (sam_mode = connect, as two
        systemd services would run them) starts as root with sam_user from a configuration whose PIN file is
        sam_user's 0400; csc-server starts as root with server_user from a copy whose pkcs11_pin_file does not
        exist, and whose token directory and module are files that do not exist either. Had csc-server opened any of
        them (it did while it held an HSM session: reading the PIN file as root, before its switch of user), it would
        not start; it starts, and a signature goes through csc-sam."""
        try:
            sam_pw = pwd.getpwnam(SAM_USER)
        except KeyError:
            self.skipTest("no user %s (scripts/deps creates it)" % SAM_USER)
        svc = harness.Service(BUILD, extra_config="server_user = %s\nsam_user = %s\nsam_mode = connect\n"
                              % (TEST_USER, SAM_USER))
        os.chmod(svc.tmp, 0o711)
        subprocess.run(["chown", "-R", "%s:%s" % (SAM_USER, self.pw.pw_gid), svc.dir], check=True)
        subprocess.run(["chmod", "-R", "g+rwX,o-rwx", svc.dir], check=True)
        pin = os.path.join(svc.dir, "secrets", "token.pin")
        os.chmod(pin, 0o400)
        os.chmod(os.path.join(svc.dir, "softhsm"), 0o700)  # the token: sam_user's alone
        with open(svc.conf) as f:
            conf = f.read()
        sam_conf = os.path.join(svc.dir, "csc-sam.conf")  # same folder: the relative paths stay the same
        with open(sam_conf, "w") as f:
            f.write(conf)
        missing = os.path.join(svc.dir, "secrets", "no-such-pin")
        front = []
        for line in conf.splitlines():
            key = line.partition("=")[0].strip()
            if key == "pkcs11_pin_file":
                line = "pkcs11_pin_file = " + missing
            elif key == "pkcs11_module":
                line = "pkcs11_module = /nonexistent/libpkcs11-module.so"
            elif key == "softhsm_conf":
                line = "softhsm_conf = /nonexistent/softhsm2.conf"
            front.append(line)
        with open(svc.conf, "w") as f:
            f.write("\n".join(front) + "\n")
        with open(os.path.join(svc.dir, "log", "sam.stderr"), "wb") as err:
            sam = subprocess.Popen([SAM, "-c", sam_conf], stdout=subprocess.DEVNULL, stderr=err)
        sock = os.path.join(svc.dir, "csc-sam.sock")
        try:
            self.assertTrue(wait_for(lambda: os.path.exists(sock) and ask_hello_as(
                sock, self.pw.pw_uid, self.pw.pw_gid) == 0x81), "csc-sam did not listen")
            svc.start()
            try:
                self.assertFalse(os.path.exists(missing))
                self.assertEqual(proc_status(svc.proc.pid)["Uid"].split(), [str(self.pw.pw_uid)] * 4)
                self.assertEqual(children(svc.proc.pid), [])  # connect mode: the csc-sam above is the one
                sign_once(svc)
                self.assertEqual(as_user(self.pw, lambda: read_pin(pin)), "PermissionError")
                assert_no_pkcs11(self, svc.proc.pid, sam.pid, config_value(sam_conf, "pkcs11_module"))
            finally:
                svc.stop_checked()
        finally:
            sam.terminate()
            self.assertEqual(sam.wait(timeout=30), 0)

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
