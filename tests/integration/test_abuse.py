"""Connection abuse (issue 14): the caps and timeouts of csc-server's public listener hold while others sign.

max_connections_per_address closes a connection over the cap as it is accepted (before TLS) and counts it in
/metrics; header_timeout closes a connection whose headers or body never finish (slowloris, a slow body);
idle_timeout (TCP_USER_TIMEOUT) closes one whose client stopped reading its responses, which gives its place under
the cap back. Smuggling shapes (Content-Length with Transfer-Encoding, two Content-Lengths) and oversized headers
get whole answers or a close, never a 5xx or a crash: h2o 2.2 frames by Transfer-Encoding over Content-Length and by
the first of two Content-Lengths and reads what follows as the next request (docs/reliability.md says what a proxy in
front has to refuse). Throughout, a client on another address signs with signHash: every answer is
200 (the p99 latency is printed, not asserted: the machine may be busy).

Loopback is one interface but many addresses: the abusers connect from 127.0.0.2 and .3, the signer from .1.
CSC_ABUSE_IDLE raises the number of idle connections by hand (the default stays small for CI).
"""
import http.client
import json
import os
import select
import socket
import ssl
import threading
import time
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PIN = "86421357"
CRED = "abuse-ec"
PER_ADDRESS = 20
HEADER_TIMEOUT = 3
IDLE_TIMEOUT = 4
IDLE = int(os.environ.get("CSC_ABUSE_IDLE", "300"))
SVC = None
ADMIN_PORT = None


def setUpModule():
    global SVC, ADMIN_PORT
    SVC = H.Service(BUILD)
    ADMIN_PORT = H.free_port()
    with open(SVC.conf) as f:
        text = f.read().replace("admin_listen = none\n", "")
    with open(SVC.conf, "w") as f:
        f.write(text + "admin_listen = 127.0.0.1:%d\nmax_connections = %d\nmax_connections_per_address = %d\n"
                "header_timeout = %d\nidle_timeout = %d\n"
                % (ADMIN_PORT, max(1024, IDLE + 100), PER_ADDRESS, HEADER_TIMEOUT, IDLE_TIMEOUT))
    SVC.create_credential("--id", CRED, "--user", SVC.env["CSC_USER"], "--key", "p256", "--auth", "PIN",
                          "--scal", "1", "--multisign", "1000", pin=PIN)
    SVC.start()


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


class Signer(threading.Thread):
    """signHash from 127.0.0.1 with one SAD, one fresh digest a request, until stopped; keeps statuses and times."""

    def __init__(self):
        super().__init__(daemon=True)
        self.token = SVC.token()
        r = SVC.authorize(self.token, CRED, [], num=1000, pin=PIN)
        assert r.status == 200, r
        self.sad = r.json["SAD"]
        self.stop = threading.Event()
        self.results = []  # (status or exception, seconds)

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
                self.results.append((r.status, time.time() - t0))
            except Exception as e:  # a refusal or a hang: the test fails on it
                self.results.append((e, time.time() - t0))
            time.sleep(0.05)


class TestAbuse(unittest.TestCase):
    def test_attacks_while_signing(self):
        signer = Signer()
        signer.start()
        try:
            self.idle_connections()
            self.slowloris()
            self.slow_body()
            self.never_reads()
            self.smuggling_and_oversized()
        finally:
            signer.stop.set()
            signer.join(60)
        bad = [r for r in signer.results if r[0] != 200]
        times = sorted(t for _, t in signer.results)
        self.assertGreater(len(times), 20, "the signer signed during the attacks")
        p50, p99 = times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]
        print("\nsignHash during the attacks: %d calls, p50 %.1f ms, p99 %.1f ms"
              % (len(times), p50 * 1000, p99 * 1000))
        self.assertEqual(bad, [], "every signHash during the attacks is a 200")
        self.assertEqual(SVC.post("info", {}).status, 200)
        self.assertIsNone(SVC.proc.poll(), "csc-server still runs")

    def idle_connections(self):
        """IDLE plain TCP connections that send nothing: from one address the cap's worth stay until the TLS
        handshake's header_timeout, the rest are closed at once (no handshake is even started) and counted."""
        before = refused_total("per_address")
        socks = []
        try:
            for i in range(IDLE - 2 * PER_ADDRESS):  # spread over addresses of PER_ADDRESS connections each
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.1.%d" % (i // PER_ADDRESS + 1), 0))
                s.connect(("127.0.0.1", SVC.port))
                socks.append(s)
            mine = []  # one address, twice its cap
            t0 = time.time()
            for i in range(2 * PER_ADDRESS):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.2", 0))
                s.connect(("127.0.0.1", SVC.port))
                mine.append(s)
            socks += mine
            closed_at = {}
            while time.time() - t0 < HEADER_TIMEOUT + 5 and len(closed_at) < len(mine):
                ready, _, _ = select.select([s for s in mine if s not in closed_at], [], [], 0.2)
                for s in ready:
                    try:
                        if s.recv(1) == b"":
                            closed_at[s] = time.time() - t0
                    except ConnectionError:
                        closed_at[s] = time.time() - t0
            early = [s for s in mine if closed_at.get(s, 99) < 1]
            self.assertEqual(early, mine[PER_ADDRESS:], "the connections over the cap, and only they, were closed "
                             "at once")
            self.assertEqual(refused_total("per_address") - before, PER_ADDRESS)
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
        t0 = time.time()
        s.settimeout(0.5)
        gone = None
        while time.time() - t0 < HEADER_TIMEOUT + 10:
            try:
                s.sendall(b"X")
                if s.recv(65536) == b"":
                    gone = time.time() - t0
                    break
            except socket.timeout:
                continue
            except (ConnectionError, ssl.SSLError, OSError):
                gone = time.time() - t0
                break
        s.close()
        self.assertIsNotNone(gone, "a slowloris connection is closed")
        self.assertLess(gone, HEADER_TIMEOUT + 5)

    def slow_body(self):
        """A body announced and sent a byte at a time: closed (or answered 4xx) within header_timeout."""
        s = raw("127.0.0.3")
        s.sendall(b"POST /csc/v2/info HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{")
        t0 = time.time()
        s.settimeout(0.5)
        gone, data = None, b""
        while time.time() - t0 < HEADER_TIMEOUT + 10:
            try:
                s.sendall(b" ")
                b = s.recv(65536)
                data += b
                if b == b"":
                    gone = time.time() - t0
                    break
            except socket.timeout:
                continue
            except (ConnectionError, ssl.SSLError, OSError):
                gone = time.time() - t0
                break
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


if __name__ == "__main__":
    unittest.main()
