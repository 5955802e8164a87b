"""The operators' listener (admin_listen, issue 15): /healthz, /readyz, /metrics there and only there.

- /healthz 200; /readyz 200 with every check ok, 503 naming sam while csc-sam is killed and held dead (its supervisor
  stopped), 200 again once it is back;
- the three paths are 404 on the public port; the operators' port answers GET only (405 otherwise) and 404 elsewhere;
- after signHash calls, /metrics counts them (requests by method and status, signatures by algorithm) and passes
  `promtool check metrics` (Debian's prometheus package; scripts/deps installs it) and the exposition rules checked
  here;
- /readyz fails on a public certificate that expires within readyz_cert_days and on a CRL past its nextUpdate;
- from SIGTERM on, while requests drain, /healthz and /readyz answer 503 "stopping";
- with admin_tls_client_ca, a client without a certificate gets no answer, one with a certificate of that CA does;
- with seccomp (the default) on all along: every call the listener makes is allowed by csc-server's filter.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

import harness as H
from test_hardening import assert_filtered
from test_sam import alive, sam_child, supervisor, wait_for

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PIN = "13572468"
CRED = "admin-ec"
CHECKS = {"sam", "hsm", "storage", "tls_cert", "crls"}


def get(port, path, method="GET", ctx=None, timeout=10):
    conn = (http.client.HTTPSConnection("localhost", port, context=ctx, timeout=timeout) if ctx is not None
            else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout))
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def samples(text):
    """{(name, frozenset(labels.items())): value} of an exposition (the test's own reading of format 0.0.4)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, "not a sample line: %r" % line
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def check_exposition(test, text):
    """The rules of the text format this service relies on, whatever promtool says: HELP and TYPE once per family
    and before its samples, families not interleaved, counters end in _total, histogram buckets cumulative with a
    +Inf bucket equal to _count."""
    types, seen_family, current = {}, set(), None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            test.assertNotIn(name, seen_family, "family %s twice" % name)
            seen_family.add(name)
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            test.assertEqual(name, current, "TYPE without its HELP: " + line)
            types[name] = kind
            if kind == "counter":
                test.assertTrue(name.endswith("_total"), name)
        elif line:
            name = re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            base = re.sub(r"_(bucket|sum|count)$", "", name) if types.get(current) == "histogram" else name
            test.assertEqual(base, current, "sample outside its family: " + line)
    s = samples(text)
    for name, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (n, labels), v in s.items():
            if n == name + "_bucket":
                rest = frozenset((k, x) for k, x in labels if k != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((float("inf") if le == "+Inf" else float(le), v))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            test.assertEqual(counts, sorted(counts), "%s buckets not cumulative" % name)
            test.assertEqual(buckets[-1][0], float("inf"))
            test.assertEqual(buckets[-1][1], s[(name + "_count", rest)], "%s +Inf != _count" % name)


class TestAdmin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.admin_port = H.free_port()
        cls.svc = H.Service(BUILD, provision=("--admin-port", str(cls.admin_port)))
        cls.svc.create_credential("--id", CRED, "--user", cls.svc.env["CSC_USER"], "--key", "p256",
                                  "--auth", "PIN", "--scal", "1", "--multisign", "20", pin=PIN)
        cls.svc.start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def readyz(self):
        status, headers, body = get(self.admin_port, "/readyz")
        doc = json.loads(body)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(set(doc["checks"]), CHECKS, doc)
        for c in doc["checks"].values():
            self.assertIsInstance(c["ok"], bool)
            self.assertIsInstance(c["detail"], str)
        return status, doc

    def test_healthz_and_readyz(self):
        status, _, body = get(self.admin_port, "/healthz")
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok"}))
        status, doc = self.readyz()
        self.assertEqual((status, doc["status"]), (200, "ok"), doc)
        self.assertTrue(all(c["ok"] for c in doc["checks"].values()), doc)

    def test_readyz_without_sam(self):
        svc = self.svc
        sam, sup = sam_child(svc), supervisor(svc)
        self.assertIsNotNone(sam)
        os.kill(sup, signal.SIGSTOP)
        try:
            os.kill(sam, signal.SIGKILL)
            self.assertTrue(wait_for(lambda: not alive(sam)))
            t0 = time.time()
            status, doc = self.readyz()
            self.assertLess(time.time() - t0, 5, "/readyz is bounded in time")
            self.assertEqual((status, doc["status"]), (503, "fail"), doc)
            self.assertFalse(doc["checks"]["sam"]["ok"], doc)
            self.assertIn("csc-sam", doc["checks"]["sam"]["detail"])
            self.assertFalse(doc["checks"]["hsm"]["ok"], doc)  # nobody can tell
            self.assertTrue(doc["checks"]["storage"]["ok"], doc)  # csc-server's own storage still writes
            self.assertEqual(get(self.admin_port, "/healthz")[0], 200, "the process itself runs")
        finally:
            os.kill(sup, signal.SIGCONT)
        self.assertTrue(wait_for(lambda: self.readyz()[0] == 200, 60), "/readyz never came back: " +
                        svc.server_stderr()[-2000:])

    def test_every_thread_filtered(self):
        """seccomp = yes (the default): the listener's loop and check threads carry csc-server's filter too, and
        everything above ran under it."""
        self.assertEqual(self.readyz()[0], 200)  # the check threads have run at least once
        assert_filtered(self, self.svc.proc.pid, "csc-server")

    def test_not_on_the_public_port(self):
        for path in ("/healthz", "/readyz", "/metrics"):
            self.assertEqual(self.svc.request("GET", path).status, 404, path)

    def test_get_only(self):
        for path in ("/healthz", "/readyz", "/metrics"):
            for method in ("POST", "PUT", "DELETE", "HEAD", "OPTIONS"):
                status, headers, _ = get(self.admin_port, path, method)
                self.assertEqual(status, 405, (method, path))
                self.assertEqual(headers.get("allow"), "GET")
        self.assertEqual(get(self.admin_port, "/csc/v2/info")[0], 404, "the API is not served here")
        self.assertEqual(get(self.admin_port, "/")[0], 404)

    def test_metrics_count_signatures(self):
        svc = self.svc
        get(self.admin_port, "/readyz")  # its HELLO brings csc-sam's HSM session-pool waits to /metrics
        before = samples(get(self.admin_port, "/metrics")[2].decode())
        token = svc.token()
        n = 3
        r = svc.authorize(token, CRED, [], num=n, pin=PIN)
        self.assertEqual(r.status, 200, r)
        sad = r.json["SAD"]
        for i in range(n):
            r = svc.post("signatures/signHash", {"credentialID": CRED, "SAD": sad, "signAlgo": H.ECDSA_SHA256,
                                                 "hashes": [H.b64(H.digest("m%d" % i))]}, token)
            self.assertEqual(r.status, 200, r)
        r = svc.post("signatures/signHash", {"credentialID": CRED, "SAD": sad, "signAlgo": H.ECDSA_SHA256,
                                             "hashes": [H.b64(H.digest("one too many"))]}, token)
        self.assertEqual(r.status, 400, r)  # the SAD is spent

        def delta(name, **labels):
            key = (name, frozenset(labels.items()))
            return after.get(key, 0) - before.get(key, 0)

        # A request is counted by the access logger, which h2o runs once the answer has gone out: the client may
        # see the answer a moment before the count.
        def scrape():
            status, headers, body = get(self.admin_port, "/metrics")
            self.assertEqual(status, 200)
            self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"), headers)
            return body.decode()
        after = {}
        for _ in range(50):
            text = scrape()
            after = samples(text)
            if delta("csc_request_duration_seconds_count", method="signatures/signHash") >= n + 1:
                break
            time.sleep(0.1)

        self.assertEqual(delta("csc_requests_total", method="signatures/signHash", status="200"), n, text)
        self.assertEqual(delta("csc_requests_total", method="signatures/signHash", status="400"), 1, text)
        self.assertEqual(delta("csc_requests_total", method="credentials/authorize", status="200"), 1, text)
        self.assertEqual(delta("csc_request_duration_seconds_count", method="signatures/signHash"), n + 1, text)
        self.assertEqual(delta("csc_signatures_total", algorithm=H.ECDSA_SHA256), n, text)
        self.assertGreaterEqual(delta("csc_sad_denials_total", reason="exhausted") +
                                delta("csc_sad_denials_total", reason="invalid") +
                                delta("csc_sad_denials_total", reason="expired"), 1, text)
        self.assertEqual([v for (nm, _), v in after.items() if nm == "csc_build_info"], [1.0], text)
        self.assertGreater(after[("csc_tls_cert_expiry_timestamp_seconds", frozenset())], time.time())
        # csc-sam's HSM session-pool waits, from its last HELLO (a counter, present once a HELLO brought it)
        self.assertGreaterEqual(after[("csc_hsm_session_waits_total", frozenset())], 0, text)
        # csc-sam's heaps as malloc sees them, from the same HELLO: what the heaps hold is at least what is in use,
        # and sam_heap_reserve (4 MiB by default) was added to it at start when the memory is locked (as root; not in
        # a sanitizer build, whose malloc is its own: glibc's figures then count almost nothing)
        in_use = after[("csc_sam_heap_bytes", frozenset({("state", "in_use")}))]
        held = after[("csc_sam_heap_bytes", frozenset({("state", "held")}))]
        with open("/proc/%d/maps" % svc.proc.pid) as f:
            sanitizer = "libasan" in f.read()
        if not sanitizer:
            self.assertGreater(in_use, 0, text)
        self.assertGreaterEqual(held, in_use + (4 << 20 if os.geteuid() == 0 and not sanitizer else 0), text)
        # csc-server's own heaps, read at the scrape: held (in use and free) at least what is in use
        own_in_use = after[("csc_heap_bytes", frozenset({("state", "in_use")}))]
        own_held = after[("csc_heap_bytes", frozenset({("state", "held")}))]
        if not sanitizer:
            self.assertGreater(own_in_use, 0, text)
        self.assertGreaterEqual(own_held, own_in_use, text)
        # the database's size (LMDB): pages in use, within the map
        used = after[("csc_storage_used_bytes", frozenset())]
        self.assertGreater(used, 0, text)
        self.assertLessEqual(used, after[("csc_storage_capacity_bytes", frozenset())], text)
        # a failed PIN is an authentication failure of kind pin_otp
        r = svc.authorize(token, CRED, [], num=1, pin="00000000")
        self.assertEqual(r.status, 400, r)
        # and a wrong password one of kind login
        basic = "Basic " + H.b64(("%s:%s" % (svc.env["CSC_USER"], "not the password")).encode())
        self.assertEqual(svc.post("auth/login", {}, auth=basic).status, 400)
        later = samples(get(self.admin_port, "/metrics")[2].decode())
        for kind in ("pin_otp", "login"):
            key = ("csc_auth_failures_total", frozenset({"kind": kind}.items()))
            self.assertEqual(later[key] - after[key], 1, kind)

        check_exposition(self, text)
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool not installed (Debian package prometheus: scripts/deps)")
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


class TestReadyzFails(unittest.TestCase):
    """/readyz fails on a certificate that expires within readyz_cert_days and on a CRL past its nextUpdate."""

    @classmethod
    def setUpClass(cls):
        cls.admin_port = H.free_port()
        cls.svc = H.Service(BUILD, provision=("--admin-port", str(cls.admin_port)))
        svc = cls.svc
        crl_dir, ca = os.path.join(svc.dir, "crl"), os.path.join(svc.dir, "ca")
        os.makedirs(crl_dir)
        index, conf, number = (os.path.join(ca, n) for n in ("crl-index.txt", "crl.cnf", "crl-number"))
        open(index, "w").close()
        with open(number, "w") as f:
            f.write("01\n")
        with open(conf, "w") as f:
            f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\n" % (index, number))
        # a CRL whose nextUpdate is 2 s away: stale by the time the server has started
        subprocess.run(["openssl", "ca", "-gencrl", "-batch", "-crlsec", "2", "-config", conf, "-keyfile",
                        os.path.join(ca, "ca.key"), "-cert", os.path.join(ca, "ca.crt"), "-out",
                        os.path.join(crl_dir, "demo-ca.crl")], check=True, capture_output=True)
        with open(svc.conf, "a") as f:
            f.write("crl_dir = crl\nreadyz_cert_days = 3650\n")  # the test certificate lives less than that
        svc.start()
        time.sleep(max(0, 3 - (time.time() - os.path.getmtime(os.path.join(crl_dir, "demo-ca.crl")))))

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def test_cert_and_crl(self):
        status, _, body = get(self.admin_port, "/readyz")
        doc = json.loads(body)
        self.assertEqual((status, doc["status"]), (503, "fail"), doc)
        checks = doc["checks"]
        self.assertFalse(checks["tls_cert"]["ok"], doc)
        self.assertIn("readyz_cert_days = 3650", checks["tls_cert"]["detail"])
        self.assertFalse(checks["crls"]["ok"], doc)
        self.assertIn("demo-ca.crl", checks["crls"]["detail"])
        for name in ("sam", "hsm", "storage"):
            self.assertTrue(checks[name]["ok"], doc)


class TestStopping(unittest.TestCase):
    """From SIGTERM on, while a request is still in flight, /healthz and /readyz answer 503 "stopping"."""

    def test_draining(self):
        admin_port = H.free_port()
        svc = H.Service(BUILD, provision=("--admin-port", str(admin_port)))
        svc.start()
        sam = sam_child(svc)
        os.kill(sam, signal.SIGSTOP)  # csc-sam answers nothing: the login below (csc-sam checks it) stays in flight
        answers = []
        t = threading.Thread(target=lambda: answers.append(svc.login()), daemon=True)
        try:
            t.start()
            time.sleep(0.5)
            svc.proc.send_signal(signal.SIGTERM)
            self.assertTrue(wait_for(lambda: "shutting down" in svc.server_stderr(), 10))
            status, _, body = get(admin_port, "/healthz")
            self.assertEqual((status, json.loads(body)), (503, {"status": "stopping"}))
            self.assertEqual(get(admin_port, "/readyz")[0], 503)
            self.assertEqual(get(admin_port, "/metrics")[0], 200)
        finally:
            os.kill(sam, signal.SIGCONT)
        t.join(60)
        self.assertEqual(svc.stop(), 0)


def make_ca(d, name):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=" + name,
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
                   check=True, capture_output=True)
    return key, crt


def issue(d, name, ca_key, ca_crt, server):
    key, csr, crt, ext = (os.path.join(d, name + s) for s in (".key", ".csr", ".crt", ".ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" if server
                else "extendedKeyUsage=clientAuth\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", "/CN=" + name], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
                    "-out", crt, "-days", "30", "-extfile", ext], check=True, capture_output=True)
    return key, crt


class TestAdminMutualTLS(unittest.TestCase):
    """admin_tls_client_ca: no client certificate of that CA, no answer."""

    @classmethod
    def setUpClass(cls):
        cls.admin_port = H.free_port()
        cls.svc = H.Service(BUILD)
        d = os.path.join(cls.svc.dir, "admin-tls")
        os.makedirs(d)
        ca_key, cls.ca = make_ca(d, "ops-ca")
        srv_key, srv_crt = issue(d, "localhost", ca_key, cls.ca, True)
        cls.client = issue(d, "prometheus", ca_key, cls.ca, False)
        other_key, other_ca = make_ca(d, "other-ca")
        cls.stranger = issue(d, "stranger", other_key, other_ca, False)
        with open(cls.svc.conf) as f:
            text = f.read().replace("admin_listen = none\n", "")
        with open(cls.svc.conf, "w") as f:
            f.write(text + "admin_listen = 127.0.0.1:%d\nadmin_tls_cert = %s\nadmin_tls_key = %s\n"
                    "admin_tls_client_ca = %s\n" % (cls.admin_port, srv_crt, srv_key, cls.ca))
        cls.svc.start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def ctx(self, cert=None):
        c = ssl.create_default_context(cafile=self.ca)
        if cert is not None:
            c.load_cert_chain(cert[1], cert[0])
        return c

    def test_client_certificate_required(self):
        status, _, body = get(self.admin_port, "/healthz", ctx=self.ctx(self.client))
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok"}))
        status, _, _ = get(self.admin_port, "/metrics", ctx=self.ctx(self.client))
        self.assertEqual(status, 200)
        for who, cert in (("no certificate", None), ("another CA's", self.stranger)):
            with self.assertRaises((ssl.SSLError, ConnectionError, http.client.HTTPException), msg=who):
                get(self.admin_port, "/healthz", ctx=self.ctx(cert))
        with self.assertRaises((ConnectionError, http.client.HTTPException, socket.timeout, OSError)):
            get(self.admin_port, "/healthz")  # plain HTTP on a TLS port: no answer that parses


if __name__ == "__main__":
    unittest.main()
