"""Connection abuse (issue 14): the caps and timeouts of csc-server's public listener hold while others sign.

max_connections_per_address closes a connection over the cap as it is accepted (before TLS) and counts it in
/metrics; header_timeout closes a connection whose headers or body never finish (slowloris, a slow body);
idle_timeout (TCP_USER_TIMEOUT) closes one whose client stopped reading its responses, which gives its place under
the cap back. Smuggling shapes (Content-Length with Transfer-Encoding, two Content-Lengths) and oversized headers
get whole answers or a close, never a 5xx or a crash: h2o 2.2 frames by Transfer-Encoding over Content-Length and by
the first of two Content-Lengths and reads what follows as the next request (docs/reliability.md says what a proxy in
front has to refuse). Malformed TLS from raw sockets (a truncated record, one over the size limit, an unknown
content type, broken ClientHellos, garbage before or after a handshake, plain HTTP, an alert mid-handshake, fifty
ClientHellos on one connection, a TLS 1.2 renegotiation) gets a TLS alert or a close within header_timeout, and
csc-server's descriptors come back to where they were. Throughout, a client on another address signs with
signHash: every answer is 200 (the p99 latency is printed, not asserted: the machine may be busy).

Loopback is one interface but many addresses: the abusers connect from 127.0.0.2 and .3, the signer from .1.
CSC_ABUSE_IDLE raises the number of idle connections by hand (the default stays small for CI), and
CSC_ABUSE_HEADER_TIMEOUT (default 3 s) how long they are held: 10,000 take longer than 3 s to open.
"""
import http.client
import json
import os
import resource
import select
import socket
import ssl
import subprocess
import threading
import time
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PIN = "86421357"
CRED = "abuse-ec"
PER_ADDRESS = 20
HEADER_TIMEOUT = int(os.environ.get("CSC_ABUSE_HEADER_TIMEOUT", "3"))
IDLE_TIMEOUT = 4
IDLE = int(os.environ.get("CSC_ABUSE_IDLE", "300"))
SVC = None
ADMIN_PORT = None


def setUpModule():
    global SVC, ADMIN_PORT
    # this process holds IDLE connections and more: its soft descriptor limit up to the hard one
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < IDLE + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if hard != resource.RLIM_INFINITY and hard < IDLE + 200:
            raise unittest.SkipTest("CSC_ABUSE_IDLE=%d needs %d descriptors, the hard limit is %d (ulimit -Hn)"
                                    % (IDLE, IDLE + 200, hard))
    SVC = H.Service(BUILD)
    ADMIN_PORT = H.free_port()
    with open(SVC.conf) as f:
        text = f.read().replace("admin_listen = none\n", "")
    with open(SVC.conf, "w") as f:
        f.write(text + "admin_listen = 127.0.0.1:%d\nmax_connections = %d\nmax_connections_per_address = %d\n"
                "header_timeout = %d\nidle_timeout = %d\n"
                % (ADMIN_PORT, max(1024, IDLE + 100), PER_ADDRESS, HEADER_TIMEOUT, IDLE_TIMEOUT))
    SVC.create_credential("--id", CRED, "--user", SVC.env["CSC_USER"], "--key", "p256", "--auth", "PIN",
                          "--scal", "1", "--multisign", "100000", pin=PIN)
    # csc-server started with a soft descriptor limit under max_connections raises it to the hard one
    # (TestDescriptorLimit); this process's own limit is back before it opens anything
    mine = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, mine[1]), mine[1]))
    try:
        SVC.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, mine)


def tearDownModule():
    if SVC is not None:
        SVC.stop_checked()


def refused_total(reason):
    conn = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    prefix = 'csc_connections_refused_total{reason="%s"} ' % reason
    for line in text.splitlines():
        if line.startswith(prefix):
            return int(float(line[len(prefix):]))
    raise AssertionError("no %s in /metrics" % prefix.strip())


def raw(addr, tls=True, rcvbuf=None):
    """A connected socket from source address addr; TLS unless told (the handshake done)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.bind((addr, 0))
    s.connect(("127.0.0.1", SVC.port))
    if tls:
        s = SVC.ctx.wrap_socket(s, server_hostname="localhost")
    return s


def closed_within(s, seconds):
    """Seconds until the server closed s (reading what it sends meanwhile), or None if it is still open."""
    t0 = time.time()
    s.settimeout(0.5)
    while time.time() - t0 < seconds:
        try:
            if s.recv(65536) == b"":
                return time.time() - t0
        except socket.timeout:
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            return time.time() - t0
    return None


def drip_until_closed(s, byte, seconds):
    """Send byte every half second (or as fast as the server reads), reading what it sends, until it closes s or
    seconds pass: (seconds until the close or None, the bytes it sent)."""
    t0 = time.time()
    s.settimeout(0.5)
    data = b""
    while time.time() - t0 < seconds:
        try:
            s.sendall(byte)
            b = s.recv(65536)
            if b == b"":
                return time.time() - t0, data
            data += b
        except socket.timeout:
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            return time.time() - t0, data
    return None, data


def answer_of(s, request, seconds=10):
    """Send request, read until the server closes or seconds pass: (status or None, bytes)."""
    s.sendall(request)
    s.settimeout(seconds)
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
            if b"\r\n\r\n" in data and b"connection: close" not in data.lower():
                break  # one answer, the connection kept: enough
    except (socket.timeout, ConnectionError, ssl.SSLError, OSError):
        pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None
    return status, data


def fds_floor(samples=5):
    """csc-server's open descriptors: the lowest of a few samples 0.2 s apart (connections in flight come and go)."""
    n = None
    for _ in range(samples):
        k = len(os.listdir("/proc/%d/fd" % SVC.proc.pid))
        n = k if n is None else min(n, k)
        time.sleep(0.2)
    return n


def record(ctype, body, version=b"\x03\x03", length=None):
    """A TLS record: content type, version, length (body's unless told), body."""
    return bytes([ctype]) + version + (len(body) if length is None else length).to_bytes(2, "big") + body


def client_hello():
    """The bytes of a real ClientHello (TLS 1.2 and 1.3, as Python's ssl module sends it)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = SVC.ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def handshake(s, ctx=None):
    """A TLS handshake over the plain socket s, through memory BIOs: the SSLObject, s still raw beneath it."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = (ctx or SVC.ctx).wrap_bio(inc, out, server_hostname="localhost")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(out.read())
            b = s.recv(65536)
            if not b:
                raise ConnectionError("closed during the handshake")
            inc.write(b)
    s.sendall(out.read())  # the client's Finished
    return tls


def tls_records(data):
    """The content types of the whole TLS records in data (a trailing partial one is ignored)."""
    types = []
    while len(data) >= 5:
        n = int.from_bytes(data[3:5], "big")
        if len(data) < 5 + n:
            break
        types.append(data[0])
        data = data[5 + n:]
    return types


def reaction(s, seconds):
    """What the server does next on s: (seconds until it closed or None, the bytes it sent meanwhile)."""
    t0 = time.time()
    s.settimeout(0.2)
    data = b""
    while time.time() - t0 < seconds:
        try:
            b = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionError, OSError):
            return time.time() - t0, data
        if b == b"":
            return time.time() - t0, data
        data += b
    return None, data


class Signer(threading.Thread):
    """signHash from 127.0.0.1 with one SAD, one fresh digest a request, until stopped; keeps statuses and times."""

    def __init__(self):
        super().__init__(daemon=True)
        self.token = SVC.token()
        r = SVC.authorize(self.token, CRED, [], num=100000, pin=PIN)
        assert r.status == 200, r
        self.sad = r.json["SAD"]
        self.stop = threading.Event()
        self.results = []  # (status or exception, seconds, started at)

    def percentiles(self, since=0, until=None):
        """(calls, p50, p99 in seconds) of the calls started in [since, until)."""
        times = sorted(t for _, t, at in list(self.results) if since <= at < (until or float("inf")))
        if not times:
            return 0, float("nan"), float("nan")
        return len(times), times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            body = {"credentialID": CRED, "SAD": self.sad, "hashes": [H.b64(H.digest("abuse %d" % i))],
                    "signAlgo": H.ECDSA_SHA256}
            t0 = time.time()
            try:
                conn = http.client.HTTPSConnection("localhost", SVC.port, context=SVC.ctx, timeout=30,
                                                   source_address=("127.0.0.1", 0))
                conn.request("POST", "/csc/v2/signatures/signHash", body=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json", "Authorization": "Bearer " + self.token})
                r = conn.getresponse()
                r.read()
                conn.close()
                self.results.append((r.status, time.time() - t0, t0))
            except Exception as e:  # a refusal or a hang: the test fails on it
                self.results.append((e, time.time() - t0, t0))
            time.sleep(0.05)


class TestAbuse(unittest.TestCase):
    def while_signing(self, what, *attacks):
        """Run attacks while a Signer signs; every signHash meanwhile a 200 and csc-server the same process."""
        pid = SVC.proc.pid
        signer = self.signer = Signer()
        signer.start()
        try:
            for attack in attacks:
                attack()
        finally:
            signer.stop.set()
            signer.join(60)
        bad = [r for r in signer.results if r[0] != 200]
        n, p50, p99 = signer.percentiles()
        self.assertGreater(n, 20, "the signer signed during the attacks")
        print("\nsignHash during %s: %d calls, p50 %.1f ms, p99 %.1f ms" % (what, n, p50 * 1000, p99 * 1000))
        self.assertEqual(bad, [], "every signHash during %s is a 200" % what)
        self.assertEqual(SVC.post("info", {}).status, 200)
        self.assertIsNone(SVC.proc.poll(), "csc-server still runs")
        self.assertEqual(SVC.proc.pid, pid)

    def test_attacks_while_signing(self):
        self.while_signing("the attacks", self.idle_connections, self.slowloris, self.slow_body, self.never_reads,
                           self.smuggling_and_oversized)

    def test_malformed_tls_while_signing(self):
        base = fds_floor()
        self.while_signing("the malformed TLS", self.malformed_tls)
        # every connection's descriptor given back (the signer's come and go: the lowest of a few samples)
        H.wait_until(lambda: fds_floor() <= base, "csc-server's descriptors back to %d" % base, seconds=30)

    def idle_connections(self):
        """IDLE plain TCP connections that send nothing: from one address the cap's worth stay until the TLS
        handshake's header_timeout, the rest are closed at once (no handshake is even started) and counted. The
        others come from addresses of PER_ADDRESS connections each (127.1.0.1, 127.1.0.2, ...)."""
        before = refused_total("per_address")
        socks = []
        try:
            t_open = time.time()
            for i in range(IDLE - 2 * PER_ADDRESS):
                n = i // PER_ADDRESS
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.1.%d.%d" % (n // 250, n % 250 + 1), 0))
                s.connect(("127.0.0.1", SVC.port))
                socks.append(s)
            opened = time.time()
            held = len(os.listdir("/proc/%d/fd" % SVC.proc.pid))
            with open("/proc/%d/status" % SVC.proc.pid) as f:
                rss = [line.split()[1] for line in f if line.startswith("VmRSS:")][0]
            print("\n%d idle connections opened in %.1f s: csc-server then %d descriptors, RSS %s KiB"
                  % (len(socks), opened - t_open, held, rss))
            mine = []  # one address, twice its cap
            t0 = time.time()
            for i in range(2 * PER_ADDRESS):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.2", 0))
                s.connect(("127.0.0.1", SVC.port))
                mine.append(s)
            socks += mine
            closed_at = {}
            by_fd = {s.fileno(): s for s in mine}
            poll = select.poll()  # not select(): with CSC_ABUSE_IDLE in the thousands the descriptors pass 1024
            for s in mine:
                poll.register(s, select.POLLIN)
            while time.time() - t0 < HEADER_TIMEOUT + 5 and len(closed_at) < len(mine):
                for fd, _ in poll.poll(200):
                    s = by_fd[fd]
                    try:
                        gone = s.recv(1) == b""
                    except ConnectionError:
                        gone = True
                    if gone:
                        closed_at[s] = time.time() - t0
                        poll.unregister(fd)
            early = [s for s in mine if closed_at.get(s, 99) < 1]
            self.assertEqual(early, mine[PER_ADDRESS:], "the connections over the cap, and only they, were closed "
                             "at once")
            self.assertEqual(refused_total("per_address") - before, PER_ADDRESS)
            calls, p50, p99 = self.signer.percentiles(t_open, t_open + HEADER_TIMEOUT)
            print("signHash while they were held (their first header_timeout): %d calls, p50 %.1f ms, p99 %.1f ms"
                  % (calls, p50 * 1000, p99 * 1000))
            late = [closed_at.get(s) for s in mine[:PER_ADDRESS]]
            self.assertTrue(all(t is not None and HEADER_TIMEOUT - 1 <= t for t in late),
                            "the others were closed once the TLS handshake's header_timeout passed: %r" % late)
        finally:
            for s in socks:
                s.close()
        # the places are given back once the connections are closed: the address is served again
        s = raw("127.0.0.2")
        status, _ = answer_of(s, b"GET /csc/v2/info HTTP/1.1\r\nHost: localhost\r\n\r\n")
        s.close()
        self.assertIsNotNone(status, "127.0.0.2 is served again once its connections are gone")

    def slowloris(self):
        """Headers sent a byte at a time, never finished: closed after header_timeout."""
        s = raw("127.0.0.3")
        s.sendall(b"POST /csc/v2/info HTTP/1.1\r\nHost: localhost\r\n")
        gone, _ = drip_until_closed(s, b"X", HEADER_TIMEOUT + 10)
        s.close()
        self.assertIsNotNone(gone, "a slowloris connection is closed")
        self.assertLess(gone, HEADER_TIMEOUT + 5)

    def slow_body(self):
        """A body announced and sent a byte at a time: closed (or answered 4xx) within header_timeout."""
        s = raw("127.0.0.3")
        s.sendall(b"POST /csc/v2/info HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{")
        gone, data = drip_until_closed(s, b" ", HEADER_TIMEOUT + 10)
        s.close()
        self.assertIsNotNone(gone, "a slow body's connection is closed")
        self.assertLess(gone, HEADER_TIMEOUT + 5)
        if data:
            self.assertRegex(data, rb"^HTTP/1\.1 4\d\d ", "what is answered is a 4xx")

    def never_reads(self):
        """PER_ADDRESS connections, each with hundreds of pipelined requests whose answers it never reads (a small
        receive window): the server gives up on them after about idle_timeout, and the address is served again."""
        req = (b"POST /csc/v2/info HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               b"Content-Length: 2\r\n\r\n{}")
        socks = []
        for _ in range(PER_ADDRESS):
            s = raw("127.0.0.4", rcvbuf=4096)
            s.settimeout(2)
            try:
                for _ in range(400):
                    s.send(req)
            except (socket.timeout, ssl.SSLError, OSError):
                pass  # the server stopped reading: its replies fill the window
            socks.append(s)
        try:
            def served():
                try:
                    c = raw("127.0.0.4")
                    st, _ = answer_of(c, b"GET /csc/v2/info HTTP/1.1\r\nHost: localhost\r\n\r\n", 5)
                    c.close()
                    return st is not None
                except OSError:
                    return False
            t0 = time.time()
            self.assertFalse(served(), "while the unread connections hold the address's places, it is refused")
            H.wait_until(served, "the unread connections given up", seconds=IDLE_TIMEOUT + 60)
            print("\nunread responses: the address was served again after %.1f s" % (time.time() - t0))
        finally:
            for s in socks:
                s.close()

    def malformed_tls(self):
        """Broken TLS from raw sockets: each answered with a TLS alert or a close within header_timeout (what it sends
        is TLS records, never anything else), and nothing else on the server affected."""
        def plain():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.6", 0))
            s.connect(("127.0.0.1", SVC.port))
            return s

        def truncated(s):  # a record announcing 300 bytes, 10 sent: the server waits for the rest, then gives up
            s.sendall(record(22, b"\x01\x00\x01\x28" + bytes(6), length=300))

        def oversized(s):  # 2^14 + 2048 is the most a TLSCiphertext may carry (RFC 8446 sec. 5.2)
            s.sendall(record(22, bytes(64), length=2 ** 14 + 2048 + 1))

        def unknown_type(s):
            s.sendall(record(99, b"hello"))

        def hello_garbage(s):  # a ClientHello record and header of the right lengths around random bytes
            body = os.urandom(200)
            s.sendall(record(22, b"\x01" + len(body).to_bytes(3, "big") + body, version=b"\x03\x01"))

        def hello_cut(s):  # a real ClientHello with its last half replaced by random bytes
            ch = client_hello()
            s.sendall(ch[:len(ch) // 2] + os.urandom(len(ch) - len(ch) // 2))

        def garbage_first(s):
            s.sendall(os.urandom(512))

        def http_plain(s):
            s.sendall(b"GET /csc/v2/info HTTP/1.1\r\nHost: localhost\r\n\r\n")

        def alert_mid_handshake(s):  # the ClientHello, the server's first flight, then a fatal handshake_failure
            s.sendall(client_hello())
            s.settimeout(5)
            s.recv(65536)
            s.sendall(record(21, b"\x02\x28"))

        def hellos(s):  # fifty ClientHellos on one connection
            s.sendall(client_hello() * 50)

        def garbage_records(s):  # a handshake done, then records of random bytes (no valid MAC or AEAD tag)
            handshake(s)
            s.sendall(record(23, os.urandom(64)) * 5)

        def garbage_after(s):  # a handshake done, then bytes that are not even a record
            handshake(s)
            s.sendall(b"\xff" * 100)

        def unknown_after(s):  # a handshake done, then a record of an unknown type in clear
            handshake(s)
            s.sendall(record(99, b"hello"))

        def hello_after_handshake(s):  # TLS 1.2 done, then a ClientHello in clear on the established session
            ctx = ssl.create_default_context(cafile=SVC.env["CSC_TLS_CA"])
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            handshake(s, ctx)
            s.sendall(client_hello())

        cases = [truncated, oversized, unknown_type, hello_garbage, hello_cut, garbage_first, http_plain,
                 alert_mid_handshake, hellos, garbage_records, garbage_after, unknown_after, hello_after_handshake]
        for case in cases:
            with self.subTest(case=case.__name__):
                s = plain()
                try:
                    try:
                        case(s)
                    except (ConnectionError, OSError):
                        pass  # closed while we still sent: what it did is read below
                    gone, data = reaction(s, HEADER_TIMEOUT + 5)
                finally:
                    s.close()
                types = tls_records(data)
                print("\n%s: %s after %s, sent %s" % (case.__name__, "closed" if gone is not None else "open",
                                                     "%.1f s" % gone if gone is not None else "-",
                                                     ["alert" if t == 21 else t for t in types] or "nothing"))
                self.assertIsNotNone(gone, "%s: closed within header_timeout (+5 s)" % case.__name__)
                self.assertTrue(data == b"" or data[0] in (20, 21, 22, 23), "%s: %r" % (case.__name__, data[:64]))
                self.assertTrue(all(t in (20, 21, 22, 23) for t in types), "%s: %r" % (case.__name__, types))
                self.assertIsNone(SVC.proc.poll(), "csc-server still runs after %s" % case.__name__)
        self.openssl_renegotiation()

    def openssl_renegotiation(self):
        """A TLS 1.2 renegotiation asked by the client (Python's ssl cannot: openssl s_client's R command): refused
        (OpenSSL 3 refuses client-initiated renegotiation unless SSL_OP_ALLOW_CLIENT_RENEGOTIATION, which h2o does not
        set): no ServerHello answers the second ClientHello, and the connection ends within header_timeout."""
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % SVC.port, "-servername", "localhost", "-tls1_2",
               "-CAfile", SVC.env["CSC_TLS_CA"], "-msg"]
        log = os.path.join(SVC.dir, "s_client.out")
        with open(log, "wb") as f:
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=f, stderr=subprocess.STDOUT)
        try:
            time.sleep(1)  # the handshake
            p.stdin.write(b"R\n")
            p.stdin.flush()
            # stdin stays open (its end would make s_client close the connection itself): it exits when the
            # server closes
            p.wait(timeout=HEADER_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.fail("the renegotiated connection still open after header_timeout: %r" % open(log, "rb").read()[-500:])
        finally:
            p.stdin.close()
        with open(log, "rb") as f:
            out = f.read()
        text = out.decode(errors="replace")
        self.assertIn("RENEGOTIATING", text, "s_client asked for it")
        after = text[text.index("RENEGOTIATING"):]
        said = [line.strip() for line in after.splitlines() if "Alert" in line or "alert" in line or
                "ServerHello" in line or "ClientHello" in line]
        print("\nrenegotiation (openssl s_client -tls1_2, R): %s" % said)
        self.assertIn("ClientHello", after, "s_client sent its second ClientHello")
        self.assertNotIn("ServerHello", after, "the renegotiation is refused")
        self.assertIsNone(SVC.proc.poll(), "csc-server still runs after a renegotiation")

    def smuggling_and_oversized(self):
        shapes = {
            "CL+TE": b"POST /csc/v2/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /csc/v2/info HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "two CL": b"POST /csc/v2/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 40\r\n"
                      b"\r\n{}GET /csc/v2/info HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "two TE": b"POST /csc/v2/info HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n"
                      b"transfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /csc/v2/info HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "chunked alone": b"POST /csc/v2/info HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"2\r\n{}\r\n0\r\n\r\nGET /csc/v2/info HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "TE obfuscated": b"POST /csc/v2/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n"
                             b"Transfer-Encoding : chunked\r\n\r\n{}",
            "oversized header": (b"GET /csc/v2/info HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 200000 +
                                 b"\r\n\r\n"),
            "many headers": b"GET /csc/v2/info HTTP/1.1\r\nHost: localhost\r\n" +
                            b"".join(b"X-%d: y\r\n" % i for i in range(5000)) + b"\r\n",
        }
        for name, req in shapes.items():
            with self.subTest(shape=name):
                s = raw("127.0.0.5")
                data = b""
                try:
                    s.sendall(req)
                except OSError:
                    pass  # closed while we still sent (too many headers): what it answered is read below
                s.settimeout(2)
                closed = False
                try:
                    while True:  # every answer, until the server closes or is quiet for 2 s
                        b = s.recv(65536)
                        if not b:
                            closed = True
                            break
                        data += b
                except (socket.timeout, ConnectionError, ssl.SSLError, OSError) as e:
                    closed = not isinstance(e, socket.timeout)
                s.close()
                statuses = [int(part.split(b" ", 1)[0]) for part in data.split(b"HTTP/1.1 ")[1:]
                            if part[:3].isdigit()]
                print("\n%s: %s" % (name, statuses or "closed"))
                # every answer a whole response with a 2xx or 4xx status (the info POST, the GET read as a request
                # of its own: 405, a refusal: 400/413/431), or a close; never a 5xx, never a crash
                self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 "), "%s: %r" % (name, data[:200]))
                self.assertTrue(all(200 <= st < 500 for st in statuses), "%s: %r" % (name, statuses))
                # RFC 9112 sec. 6.3: framing a proxy may read otherwise is refused and the connection closed, so the
                # request after it is never read (h2o 2.2 framed it and answered both, keeping the connection)
                if name in ("CL+TE", "two CL", "two TE"):
                    self.assertEqual(statuses, [400], "%s: refused, nothing after it answered" % name)
                    self.assertIn(b"Ambiguous message framing", data)
                    self.assertIn(b"\r\nconnection: close\r\n", data.lower())
                    self.assertTrue(closed, "%s: the connection is closed after the refusal" % name)
                if name == "chunked alone":  # a chunked body alone is well framed: both requests answered
                    self.assertEqual(statuses, [200, 405])
                self.assertIsNone(SVC.proc.poll(), "csc-server still runs after %s" % name)
                self.assertEqual(SVC.post("info", {}).status, 200)


class TestDescriptorLimit(unittest.TestCase):
    """Every connection is a descriptor: csc-server raises its soft RLIMIT_NOFILE to the hard limit, and refuses to
    start when max_connections cannot fit under the hard limit (rather than fail accept() under load)."""

    def test_soft_limit_raised(self):
        # SVC was started with a soft limit of 256 (setUpModule)
        with open("/proc/%d/limits" % SVC.proc.pid) as f:
            soft = [line.split()[3] for line in f if line.startswith("Max open files")][0]
        self.assertTrue(soft == "unlimited" or int(soft) > max(1024, IDLE + 100), soft)

    def test_refused_when_max_connections_cannot_fit(self):
        svc = H.Service(BUILD)  # max_connections 1024, its default
        log = os.path.join(svc.dir, "log", "refused.stderr")
        with open(log, "wb") as f:
            p = subprocess.Popen([os.path.join(BUILD, "server", svc.server), "-c", svc.conf], stdout=subprocess.DEVNULL,
                                 stderr=f, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (600, 600)))
        try:
            rc = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.fail("csc-server started with max_connections 1024 and a hard limit of 600 descriptors")
        with open(log, "rb") as f:
            err = f.read().decode(errors="replace")
        self.assertNotEqual(rc, 0)
        self.assertRegex(err, r"max_connections = 1024 needs \d+ open descriptors, the limit is 600 \(hard limit "
                              r"600\): raise the limit")


if __name__ == "__main__":
    unittest.main()
