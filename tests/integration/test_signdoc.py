"""signatures/timestamp (built-in RFC 3161 TSA) and signatures/signDoc (CAdES / PAdES B-B and B-T): the real
csc-server over TLS with SoftHSM, every result checked by openssl (cms -verify, ts -verify) and pdfsig."""
import base64
import json
import os
import re
import subprocess
import tempfile
import unittest

import harness as H

SVC = None
BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SHA256, SHA384, SHA512 = H.SHA256, "2.16.840.1.101.3.4.2.2", "2.16.840.1.101.3.4.2.3"
POLICY = "2.999.3161.1"  # scripts/provision
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
ECDSA_SHA384 = "1.2.840.10045.4.3.3"
RSA_SHA256 = "1.2.840.113549.1.1.11"
RSA_ENC = "1.2.840.113549.1.1.1"
RSA_PSS = "1.2.840.113549.1.1.10"
PIN_X = "24681357"


def setUpModule():
    global SVC
    SVC = H.Service(BUILD)
    for user in ("dora",):
        SVC.admin("user", "add", user, stdin="password-%s\n" % user)
    # SCAL 1 credentials (no digests bound) so one SAD serves several documents; SCAL 2 for the binding tests.
    for cid, key, scal in (("dora-ec", "p256", "1"), ("dora-rsa", "rsa2048", "1"), ("dora-ec2", "p256", "2"),
                           ("dora-off", "p256", "1")):
        SVC.admin("credential", "create", "--id", cid, "--user", "dora", "--key", key, "--auth", "PIN",
                  "--scal", scal, "--multisign", "50", stdin=PIN_X + "\n")
    SVC.admin("credential", "disable", "dora-off")
    SVC.start()


def tearDownModule():
    rc = SVC.stop()
    err = SVC.server_stderr()
    assert rc == 0, "server exit status %d: %s" % (rc, err)
    assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err


def err_of(r):
    assert r.json is not None and isinstance(r.json.get("error"), str), r
    return r.json["error"], r.json.get("error_description")


def run(*cmd, data=None):
    return subprocess.run(list(cmd), input=data, capture_output=True)


class Base(unittest.TestCase):
    def assertError(self, r, status, error=None, desc=None):
        self.assertEqual(r.status, status, r)
        e, d = err_of(r)
        if error is not None:
            self.assertEqual(e, error, r)
        if desc is not None:
            self.assertEqual(d, desc, r)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=SVC.tmp)

    def path(self, name, data=None):
        p = os.path.join(self.tmp, name)
        if data is not None:
            with open(p, "wb") as f:
                f.write(data)
        return p

    def dora(self):
        return SVC.token("dora", "password-dora")


# ---- timestamp -------------------------------------------------------------------------------------------

class TestTimestamp(Base):
    def stamp(self, body, token=None):
        return SVC.post("signatures/timestamp", body, token or SVC.token())

    def ts_verify(self, tok, data, extra=()):
        return run("openssl", "ts", "-verify", "-token_in", "-in", self.path("tok.der", tok), "-data",
                   self.path("data", data), "-CAfile", SVC.env["CSC_CA_CERT"], *extra)

    def ts_text(self, tok):
        r = run("openssl", "ts", "-reply", "-token_in", "-in", self.path("t.der", tok), "-token_out", "-text")
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode()

    def test_info_lists_timestamp_and_bt(self):
        j = SVC.post("info", {}).json
        self.assertIn("signatures/timestamp", j["methods"])
        v1 = SVC.request("POST", "/csc/v1/info", b"{}", {"Content-Type": "application/json"}).json
        self.assertIn("signatures/timestamp", v1["methods"])

    def query(self, data, md):
        """An RFC 3161 request made by openssl (random nonce): its nonce in hex."""
        q = self.path("q-%s.tsq" % md)
        r = run("openssl", "ts", "-query", "-data", self.path("qdata", data), "-" + md, "-out", q)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = run("openssl", "ts", "-query", "-in", q, "-text").stdout.decode()
        return q, re.search(r"Nonce: 0x([0-9A-Fa-f]+)", text).group(1)

    def test_token_verifies_with_nonce_and_policy(self):
        data = b"time-stamp me\n"
        for alg, md in ((SHA256, "sha256"), (SHA384, "sha384"), (SHA512, "sha512")):
            q, nonce = self.query(data, md)
            r = self.stamp({"hash": H.b64(H.digest(data.decode(), md)), "hashAlgo": alg, "nonce": nonce})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(list(r.json), ["timestamp"])
            tok = base64.b64decode(r.json["timestamp"])
            v = self.ts_verify(tok, data)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            self.assertIn(b"Verification: OK", v.stdout)
            # against the request: imprint and nonce checked by openssl
            v = run("openssl", "ts", "-verify", "-token_in", "-in", self.path("tok.der", tok), "-queryfile", q,
                    "-CAfile", SVC.env["CSC_CA_CERT"])
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            q2, _ = self.query(data, md)  # another nonce
            v = run("openssl", "ts", "-verify", "-token_in", "-in", self.path("tok.der", tok), "-queryfile", q2,
                    "-CAfile", SVC.env["CSC_CA_CERT"])
            self.assertNotEqual(v.returncode, 0)
            text = self.ts_text(tok)
            self.assertIn("Nonce: 0x" + nonce.upper().lstrip("0"), text)
            self.assertIn("Policy OID: " + POLICY, text)
            self.assertIn("Hash Algorithm: " + md, text)
            self.assertIn("Accuracy: 0x01 seconds", text)
            self.assertNotEqual(self.ts_verify(tok, b"other data").returncode, 0)

    def test_odd_nonce_and_no_nonce(self):
        h = H.b64(H.digest("x"))
        tok = base64.b64decode(self.stamp({"hash": h, "hashAlgo": SHA256, "nonce": "abc"}).json["timestamp"])
        self.assertIn("Nonce: 0x0ABC", self.ts_text(tok))
        tok = base64.b64decode(self.stamp({"hash": h, "hashAlgo": SHA256}).json["timestamp"])
        self.assertIn("Nonce: unspecified", self.ts_text(tok))

    def test_serials_unique_and_tsa_certificate(self):
        h = H.b64(H.digest("serials"))
        serials = set()
        for _ in range(5):
            tok = base64.b64decode(self.stamp({"hash": h, "hashAlgo": SHA256}).json["timestamp"])
            serials.add(re.search(r"Serial number: (\S+)", self.ts_text(tok)).group(1))
        self.assertEqual(len(serials), 5)
        # the signer certificate carries a critical extendedKeyUsage timeStamping
        r = run("openssl", "pkcs7", "-inform", "DER", "-in", self.path("tok.der", tok), "-print_certs")
        self.assertEqual(r.returncode, 0, r.stderr)
        certs = self.path("certs.pem", r.stdout)
        x = run("openssl", "x509", "-in", certs, "-noout", "-text").stdout.decode()
        self.assertRegex(x, r"Extended Key Usage: critical\s+Time Stamping")

    def test_audited(self):
        h = H.digest("audit me")
        self.assertEqual(self.stamp({"hash": H.b64(h), "hashAlgo": SHA256}).status, 200)
        out = SVC.admin("audit", "query", "--event", "timestamp", "--json").stdout
        recs = [json.loads(line) for line in out.splitlines() if line.strip()]
        mine = [rec for rec in recs if rec.get("digests") == [H.b64(h)]]
        self.assertEqual(len(mine), 1, out[-2000:])
        self.assertEqual(mine[0]["credential"], "tsa")
        self.assertEqual(mine[0]["user"], SVC.env["CSC_USER"])
        self.assertRegex(mine[0]["detail"], r"^serial [0-9a-f]{32} hashAlgo " + re.escape(SHA256))
        self.assertEqual(SVC.admin("audit", "verify", check=False).returncode, 0)

    def test_refusals(self):
        h = H.b64(H.digest("x"))
        cases = [
            ({"hashAlgo": SHA256}, "Missing (or invalid type) string parameter hash"),
            ({"hash": 5, "hashAlgo": SHA256}, "Missing (or invalid type) string parameter hash"),
            ({"hash": "", "hashAlgo": SHA256}, "Empty hash parameter"),
            ({"hash": "%%%", "hashAlgo": SHA256}, "Invalid Base64 hash string parameter"),
            ({"hash": h, "hashAlgo": "1.3.14.3.2.26"}, "Invalid parameter hashAlgo"),
            ({"hash": h, "hashAlgo": SHA384}, "Invalid digest value length"),
            ({"hash": h}, "Missing (or invalid type) string parameter hashAlgo"),
            ({"hash": h, "hashAlgo": SHA256, "nonce": "12xz"}, "Invalid parameter nonce"),
            ({"hash": h, "hashAlgo": SHA256, "nonce": ""}, "Invalid parameter nonce"),
            ({"hash": h, "hashAlgo": SHA256, "nonce": 12}, "Invalid parameter nonce"),
            ({"hash": h, "hashAlgo": SHA256, "nonce": "1" * 65}, "Invalid parameter nonce"),
        ]
        for body, desc in cases:
            with self.subTest(body=body):
                self.assertError(self.stamp(body), 400, "invalid_request", desc)
        # a service token is needed
        self.assertError(SVC.post("signatures/timestamp", {"hash": h, "hashAlgo": SHA256}), 401)
        self.assertError(SVC.post("signatures/timestamp", {"hash": h, "hashAlgo": SHA256}, "bogus"), 401,
                         "invalid_token")


class TestNoTsa(Base):
    """A service without tsa_credential: no timestamp method, no B-T; one whose TSA is missing does not start."""

    def test_without_tsa(self):
        svc = H.Service(BUILD)
        try:
            with open(svc.conf) as f:
                conf = f.read()
            with open(svc.conf, "w") as f:
                f.write(re.sub(r"^tsa_credential = .*$", "tsa_credential =", conf, flags=re.M))
            svc.start()
            j = svc.post("info", {}).json
            self.assertNotIn("signatures/timestamp", j["methods"])
            self.assertNotIn("Ades-B-T", j["conformance_levels"])
            r = svc.post("signatures/timestamp", {"hash": H.b64(H.digest("x")), "hashAlgo": SHA256}, svc.token())
            self.assertError(r, 501, "not_implemented")
            self.without_tsa_signdoc(svc)
        finally:
            self.assertEqual(svc.stop(), 0)

    def without_tsa_signdoc(self, svc):
        pass

    def test_missing_tsa_refused_at_start(self):
        svc = H.Service(BUILD)
        with open(svc.conf) as f:
            conf = f.read()
        with open(svc.conf, "w") as f:
            f.write(re.sub(r"^tsa_credential = .*$", "tsa_credential = no-such-tsa", conf, flags=re.M))
        with self.assertRaises(RuntimeError) as cm:
            svc.start()
        svc.stop()
        self.assertIn("tsa_credential no-such-tsa", str(cm.exception))

    def test_tsa_init_twice_and_reserved_owner(self):
        r = SVC.admin("tsa", "init", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists already", r.stderr)
        r = SVC.admin("user", "add", "-tsa-", stdin="password-x\n", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("reserved", r.stderr)


if __name__ == "__main__":
    unittest.main()
