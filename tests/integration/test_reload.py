"""csc-server's reload on SIGHUP (issue 15) and its access log.

- under signing load from a few threads, each request on a new connection, and one connection kept open: the TLS
  certificate and key are replaced and SIGHUP sent; every request is answered 200, the kept connection goes on, and
  a new connection gets the new certificate;
- a changed listen (and workers) refuses the reload as a whole, one log line naming each; the old port still serves;
- a broken key, and a file with a syntax error, are refused and logged; the certificate in force stays;
- the access log is opened again after logrotate's rename;
- access_log_format = json (put in force by a reload): one JSON object per line with time, request id, peer, method,
  path (no query string), status, bytes, latency and user, and no token, password or PIN in the log;
- every response carries X-Request-Id: the client's when well-formed, else 128 random bits in hex; the ids of
  credentials/authorize and signHash are in csc-sam's audit records of them (csc-admin audit query).
"""
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

import harness as H
from test_sam import sam_child

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PIN = "24681357"
CRED = "reload-ec"


def served_cert(svc):
    """The DER certificate a new TLS connection to svc gets."""
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as raw:
        with svc.ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def make_ca(d, name):
    """A self-signed CA NAME (NAME.key, NAME.crt in d) and its empty CRL (NAME.crl)."""
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-subj", "/O=Reload Test/CN=" + name, "-days", "30"],
                   check=True, capture_output=True)
    return key, crt


def make_crl(d, key, crt, out):
    """An empty CRL of the CA (key, crt), valid 30 days, at out."""
    index, conf, number = (os.path.join(d, os.path.basename(out) + s) for s in (".idx", ".cnf", ".num"))
    open(index, "w").close()
    with open(number, "w") as f:
        f.write("01\n")
    with open(conf, "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\n"
                "default_crl_days = 30\n" % (index, number))
    tmp = out + ".tmp"
    subprocess.run(["openssl", "ca", "-gencrl", "-batch", "-config", conf, "-keyfile", key, "-cert", crt, "-out",
                    tmp], check=True, capture_output=True)
    os.rename(tmp, out)


def pem_to_der(path):
    return subprocess.run(["openssl", "x509", "-in", path, "-outform", "DER"], check=True,
                          capture_output=True).stdout


class TestReload(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = H.Service(BUILD)
        cls.svc.create_credential("--id", CRED, "--user", cls.svc.env["CSC_USER"], "--key", "p256",
                                  "--auth", "PIN", "--scal", "1", "--multisign", "100", pin=PIN)
        # CRLs checked by both processes, with anchors of their own (a copy of the demo CA) that a test extends
        d = cls.svc.dir
        cls.anchors, cls.crl_dir = os.path.join(d, "anchors.pem"), os.path.join(d, "crl")
        os.makedirs(cls.crl_dir)
        with open(os.path.join(d, "ca", "ca.crt")) as f, open(cls.anchors, "w") as out:
            out.write(f.read())
        make_crl(d, os.path.join(d, "ca", "ca.key"), os.path.join(d, "ca", "ca.crt"),
                 os.path.join(cls.crl_dir, "demo-ca.crl"))
        with open(cls.svc.conf) as f:
            text = re.sub(r"(?m)^trust_anchors = .*$", "trust_anchors = anchors.pem", f.read())
        cls.conf_text = text + "crl_dir = crl\n"
        with open(cls.svc.conf, "w") as f:
            f.write(cls.conf_text)
        cls.svc.start()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop_checked()

    def tearDown(self):
        self.write_conf(self.conf_text)

    # --- helpers ---------------------------------------------------------------------------------------------------
    def write_conf(self, text):
        tmp = self.svc.conf + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.svc.conf)

    def hup(self):
        """SIGHUP, then the reload's outcome: the log lines csc-server wrote about it."""
        before = self.svc.server_stderr()
        os.kill(self.svc.proc.pid, signal.SIGHUP)
        done = re.compile(r"csc-server: (reloaded|reload refused)")
        H.wait_until(lambda: done.search(self.svc.server_stderr()[len(before):]), "the reload's outcome")
        return self.svc.server_stderr()[len(before):]

    def new_tls_files(self, name):
        """A new key and certificate for localhost from the demo CA, at tls/NAME.key and tls/NAME.crt."""
        d, ca = os.path.join(self.svc.dir, "tls"), os.path.join(self.svc.dir, "ca")
        key, crt, csr, ext = (os.path.join(d, name + s) for s in (".key", ".crt", ".csr", ".cnf"))
        subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", csr, "-subj", "/CN=localhost"], check=True, capture_output=True)
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(ca, "ca.crt"), "-CAkey",
                        os.path.join(ca, "ca.key"), "-set_serial", "0x" + os.urandom(16).hex(), "-days", "30",
                        "-sha256", "-extfile", ext, "-out", crt], check=True, capture_output=True)
        return key, crt

    def sign_once(self, token, conn=None):
        """authorize + signHash; the statuses. conn: an open connection to use, else a new one per request."""
        def post(method, body):
            if conn is None:
                return self.svc.post(method, body, token).status
            conn.request("POST", "/csc/v2/" + method, body=json.dumps(body).encode(),
                         headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
            r = conn.getresponse()
            data = r.read()
            if method == "credentials/authorize" and r.status == 200:
                post.sad = json.loads(data)["SAD"]
            return r.status
        if conn is None:
            r = self.svc.authorize(token, CRED, [], num=1, pin=PIN)
            if r.status != 200:
                return [r.status]
            post.sad = r.json["SAD"]
            first = 200
        else:
            first = post("credentials/authorize", {"credentialID": CRED, "numSignatures": 1,
                                                   "authData": [{"id": "PIN", "value": PIN}]})
            if first != 200:
                return [first]
        return [first, post("signatures/signHash", {"credentialID": CRED, "SAD": post.sad,
                                                    "signAlgo": H.ECDSA_SHA256,
                                                    "hashes": [H.b64(H.digest(os.urandom(8).hex()))]})]

    # --- tests -----------------------------------------------------------------------------------------------------
    def test_certificate_under_load(self):
        svc = self.svc
        old_der = served_cert(svc)
        token = svc.token()
        statuses, errors, stop = [], [], threading.Event()

        def load(keep_open):
            conn = (http.client.HTTPSConnection("localhost", svc.port, context=svc.ctx, timeout=60)
                    if keep_open else None)
            try:
                while not stop.is_set():
                    statuses.extend(self.sign_once(token, conn))
            except Exception as e:  # a dropped connection fails the test below
                errors.append(repr(e))
            finally:
                if conn is not None:
                    conn.close()

        threads = [threading.Thread(target=load, args=(i == 0,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)
            key, crt = self.new_tls_files("renewed")
            os.rename(key, os.path.join(svc.dir, "tls", "server.key"))
            os.rename(crt, os.path.join(svc.dir, "tls", "server.crt"))
            out = self.hup()
            self.assertIn("csc-server: reloaded", out)
            new_der = served_cert(svc)
            time.sleep(1.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        self.assertGreater(len(statuses), 8)
        self.assertEqual(set(statuses), {200}, statuses)
        self.assertNotEqual(new_der, old_der)
        self.assertEqual(new_der, pem_to_der(os.path.join(svc.dir, "tls", "server.crt")))

    def test_fixed_settings_refused(self):
        svc = self.svc
        other = H.free_port()
        text = re.sub(r"(?m)^listen = .*$", "listen = 127.0.0.1:%d" % other, self.conf_text)
        text = re.sub(r"(?m)^workers = .*$", "workers = 7", text)
        self.write_conf(text)
        out = self.hup()
        refusals = [l for l in out.splitlines() if "reload refused" in l]
        self.assertEqual(len(refusals), 1, out)
        self.assertIn("listen, ", refusals[0])
        self.assertIn("workers", refusals[0])
        self.assertNotIn("tls_cert", refusals[0])
        self.assertEqual(svc.post("info", {}).status, 200)  # the old port serves
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", other), timeout=2).close()

    def test_broken_files_refused(self):
        svc = self.svc
        before = served_cert(svc)
        key = os.path.join(svc.dir, "tls", "server.key")
        with open(key, "rb") as f:
            good = f.read()
        try:
            with open(key, "wb") as f:
                f.write(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
            out = self.hup()
            self.assertRegex(out, r"reload refused: the TLS certificate or key")
            self.assertEqual(served_cert(svc), before)
        finally:
            with open(key, "wb") as f:
                f.write(good)
        self.write_conf(self.conf_text + "this is not a setting\n")
        out = self.hup()
        self.assertIn("expected key = value", out)
        self.assertIn("is not valid", out)
        self.assertEqual(svc.post("info", {}).status, 200)
        self.assertEqual(served_cert(svc), before)

    def test_access_log_reopened_and_json(self):
        svc = self.svc
        log = os.path.join(svc.dir, "log", "access.log")
        os.rename(log, log + ".1")
        self.write_conf(self.conf_text + "access_log_format = json\n")
        out = self.hup()
        self.assertIn("access log %s (json)" % log, out)
        password = svc.env["CSC_PASSWORD"]
        token = svc.token()
        self.assertEqual(self.sign_once(token), [200, 200])
        r = svc.request("POST", "/csc/v2/credentials/list?secret=" + token, json.dumps({}).encode(),
                        {"Content-Type": "application/json", "Authorization": "Bearer " + token,
                         "X-Request-Id": "it-reload.1_A"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["x-request-id"], "it-reload.1_A")
        for bad in ("has space", "x" * 65, "semi;colon"):
            r = svc.request("POST", "/csc/v2/info", b"{}", {"Content-Type": "application/json",
                                                            "X-Request-Id": bad})
            self.assertRegex(r.headers["x-request-id"], r"^[0-9a-f]{32}$")
        r404 = svc.request("GET", "/nowhere")
        self.assertRegex(r404.headers["x-request-id"], r"^[0-9a-f]{32}$")

        def lines():
            with open(log) as f:
                return [json.loads(l) for l in f]
        H.wait_until(lambda: any(e["path"] == "/nowhere" for e in lines()), "the 404 in the access log")
        entries = lines()
        with open(log + ".1") as f:
            for l in f:  # the old file got text lines only
                self.assertFalse(l.startswith("{"), l)
        for e in entries:
            self.assertTrue({"time", "request_id", "peer", "method", "path", "status", "bytes",
                             "latency_ms"} <= set(e), e)
            self.assertRegex(e["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIsInstance(e["status"], int)
            self.assertIsInstance(e["latency_ms"], (int, float))
            self.assertNotIn("?", e["path"])
        listed = [e for e in entries if e["request_id"] == "it-reload.1_A"]
        self.assertEqual(len(listed), 1, entries)
        self.assertEqual((listed[0]["path"], listed[0]["status"], listed[0]["user"]),
                         ("/csc/v2/credentials/list", 200, svc.env["CSC_USER"]))
        signed = [e for e in entries if e["path"] == "/csc/v2/signatures/signHash"]
        self.assertEqual(len(signed), 1)
        self.assertEqual(signed[0]["user"], svc.env["CSC_USER"])
        with open(log) as f:
            text = f.read()
        for secret in (token, password, PIN):
            self.assertNotIn(secret, text)
        self.assertNotIn(hashlib.sha256(token.encode()).hexdigest(), text)

    def test_request_id_in_audit(self):
        """The request id of credentials/authorize and of signHash reaches csc-sam (wire tag 90) and its audit
        records: csc-admin audit query shows request_id=ID in each record's detail."""
        svc = self.svc
        token = svc.token()
        hdrs = {"Content-Type": "application/json", "Authorization": "Bearer " + token}
        body = {"credentialID": CRED, "numSignatures": 1, "authData": [{"id": "PIN", "value": PIN}]}
        r = svc.request("POST", "/csc/v2/credentials/authorize", json.dumps(body).encode(),
                        dict(hdrs, **{"X-Request-Id": "auth-rq.1"}))
        self.assertEqual((r.status, r.headers["x-request-id"]), (200, "auth-rq.1"), r)
        body = {"credentialID": CRED, "SAD": r.json["SAD"], "signAlgo": H.ECDSA_SHA256,
                "hashes": [H.b64(H.digest("audited with its id"))]}
        r = svc.request("POST", "/csc/v2/signatures/signHash", json.dumps(body).encode(), hdrs)
        self.assertEqual(r.status, 200, r)
        sign_id = r.headers["x-request-id"]
        self.assertRegex(sign_id, r"^[0-9a-f]{32}$")
        out = svc.admin("audit", "query", "--json", "--event", "sign").stdout
        self.assertIn("request_id=%s" % sign_id, out)
        out = svc.admin("audit", "query", "--json", "--event", "authorize").stdout
        self.assertIn("request_id=auth-rq.1", out)

    def test_trust_anchors_both_processes(self):
        """A CRL of a CA that is no anchor yet is refused by both processes; the CA added to trust_anchors and SIGHUP:
        csc-server reloads, passes the reload on (its supervisor signals csc-sam, which is not restarted), and both
        take the CRL."""
        svc = self.svc
        sam = sam_child(svc)
        self.assertIsNotNone(sam)
        key, crt = make_ca(svc.dir, "other-ca")
        make_crl(svc.dir, key, crt, os.path.join(self.crl_dir, "other-ca.crl"))
        not_anchor = re.compile(r"other-ca\.crl.*not among the trust anchors")
        H.wait_until(lambda: len(not_anchor.findall(svc.server_stderr())) >= 2, "both processes refusing the CRL")
        with open(self.anchors) as f:
            before = f.read()
        try:
            with open(crt) as f, open(self.anchors, "a") as out:
                out.write(f.read())
            log = len(svc.server_stderr())
            out = self.hup()
            self.assertIn("csc-server: reloaded: certificate notAfter", out)
            self.assertIn("trust anchors and the CRLs of " + self.crl_dir, out)
            H.wait_until(lambda: "csc-sam: reloaded: trust anchors and the CRLs of " in svc.server_stderr()[log:],
                         "csc-sam's reload")
            time.sleep(1.5)  # both crl-watch tasks look again meanwhile: nothing refused any more
            self.assertIsNone(not_anchor.search(svc.server_stderr()[log:]), svc.server_stderr()[log:])
            self.assertEqual(sam_child(svc), sam)  # reloaded, not restarted
            self.assertEqual(self.sign_once(svc.token()), [200, 200])
        finally:
            with open(self.anchors, "w") as f:
                f.write(before)
            os.unlink(os.path.join(self.crl_dir, "other-ca.crl"))


if __name__ == "__main__":
    unittest.main()
