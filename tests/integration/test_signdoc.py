"""signatures/timestamp (built-in RFC 3161 TSA) and signatures/signDoc (CAdES / PAdES B-B and B-T): the real
csc-server over TLS with SoftHSM, every result checked by openssl (cms -verify, ts -verify) and pdfsig."""
import base64
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
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
        SVC.add_user(user, H.pw(user))
    # SCAL 1 credentials (no digests bound) so one SAD serves several documents; SCAL 2 for the binding tests.
    for cid, key, scal in (("dora-ec", "p256", "1"), ("dora-rsa", "rsa2048", "1"), ("dora-ec2", "p256", "2"),
                           ("dora-off", "p256", "1")):
        SVC.create_credential("--id", cid, "--user", "dora", "--key", key, "--auth", "PIN",
                  "--scal", scal, "--multisign", "50", pin=PIN_X)
    SVC.admin("credential", "disable", "dora-off")
    SVC.start()


def tearDownModule():
    SVC.stop_checked()


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
        return SVC.token("dora", H.pw("dora"))


# ---- DER and PDF helpers -------------------------------------------------------------------------------------

def der_tlv(buf, off):
    """(tag, start of content, end of content) of the element at off."""
    tag, n = buf[off], buf[off + 1]
    off += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(buf[off:off + k], "big")
        off += k
    return tag, off, off + n


def der_children(buf, start, end):
    out = []
    while start < end:
        tag, s, e = der_tlv(buf, start)
        out.append((tag, s, e, start))
        start = e
    return out


def oid_text(b):
    first = b[0]
    arcs, v = [first // 40 if first < 80 else 2, first % 40 if first < 80 else first - 80], 0
    for c in b[1:]:
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            arcs.append(v)
            v = 0
    return ".".join(map(str, arcs))


def signer_info(cms):
    """SignedData's first SignerInfo: signed attribute OIDs, signature value, unsigned attributes {oid: value}."""
    _, s, e = der_tlv(cms, 0)
    ci = der_children(cms, s, e)
    _, s, e = der_tlv(cms, ci[1][1])  # [0] -> SignedData
    sd = der_children(cms, s, e)
    sis = sd[-1]
    si = der_children(cms, sis[1], sis[2])[0]
    parts = der_children(cms, si[1], si[2])
    signed = [p for p in parts if p[0] == 0xA0][0]
    attrs = {}
    for a in der_children(cms, signed[1], signed[2]):
        kids = der_children(cms, a[1], a[2])
        attrs[oid_text(cms[kids[0][1]:kids[0][2]])] = cms[kids[1][1]:kids[1][2]]
    sig = [p for p in parts if p[0] == 0x04][0]
    unsigned = {}
    for p in parts:
        if p[0] == 0xA1:
            for a in der_children(cms, p[1], p[2]):
                kids = der_children(cms, a[1], a[2])
                unsigned[oid_text(cms[kids[0][1]:kids[0][2]])] = cms[kids[1][1]:kids[1][2]]
    encap = der_children(cms, sd[2][1], sd[2][2])
    return {"signed": attrs, "signature": cms[sig[1]:sig[2]], "unsigned": unsigned, "attached": len(encap) > 1}


OID_SIGNING_TIME = "1.2.840.113549.1.9.5"
OID_SIGNING_CERT_V2 = "1.2.840.113549.1.9.16.2.47"
OID_TST = "1.2.840.113549.1.9.16.2.14"


def make_pdf(contents_len=8192, zero=True):
    """A one-page PDF with a prepared signature dictionary: /ByteRange [0 a b c] around /Contents <00...>."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [4 0 R] /SigFlags 3 >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Annots [4 0 R] >>",
        b"<< /Type /Annot /Subtype /Widget /FT /Sig /Rect [0 0 0 0] /T (Signature1) /F 4 /P 3 0 R /V 5 0 R >>",
        None,
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    br_at = contents_at = None
    for i, o in enumerate(objs):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % (i + 1)
        if o is None:
            out += b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /M (D:20261126000000Z) "
            br_at = len(out) + len(b"/ByteRange ")
            out += b"/ByteRange " + b" " * 40 + b" /Contents "
            contents_at = len(out)
            out += b"<" + (b"0" if zero else b"1") * (2 * contents_len) + b">"
            out += b" >>"
        else:
            out += o
        out += b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    a = contents_at
    b = contents_at + 2 + 2 * contents_len
    br = b"[0 %d %d %d]" % (a, b, len(out) - b)
    out[br_at:br_at + len(br)] = br
    return bytes(out), (a, b)


def pdf_ranges(pdf, gap):
    return pdf[:gap[0]] + pdf[gap[1]:]


def pdf_cms(pdf, gap):
    """The CMS written into the placeholder (hex, zero-padded)."""
    raw = bytes.fromhex(pdf[gap[0] + 1:gap[1] - 1].decode())
    _, _, e = der_tlv(raw, 0)
    return raw[:e]


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
            self.assertEqual(int(re.search(r"Nonce: 0x([0-9A-F]+)", text).group(1), 16), int(nonce, 16))
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


# ---- signDoc -------------------------------------------------------------------------------------------------

PSS_PARAMS = H.b64(H.pss_params_der("sha256", 32))
# (credential, signAlgo, extra entry fields, digest name)
ALGOS = [
    ("dora-ec", ECDSA_SHA256, {}, "sha256"),
    ("dora-ec", ECDSA_SHA384, {}, "sha384"),
    ("dora-rsa", RSA_SHA256, {}, "sha256"),
    ("dora-rsa", RSA_PSS, {"signAlgoParams": PSS_PARAMS}, "sha256"),
    ("dora-rsa", RSA_ENC, {"hashAlgorithmOID": SHA256}, "sha256"),
]


class SignDocBase(Base):
    def setUp(self):
        super().setUp()
        self.t = self.dora()

    def sad(self, cred, num=1, hashes=None, alg=SHA256):
        r = SVC.authorize(self.t, cred, hashes or [], num=num, pin=PIN_X, alg=alg)
        self.assertEqual(r.status, 200, r)
        return r.json["SAD"]

    def sign_doc(self, body, token=None):
        return SVC.post("signatures/signDoc", body, token or self.t)

    def cms_verify(self, cms, content=None):
        cmd = ["openssl", "cms", "-verify", "-inform", "DER", "-in", self.path("sig.p7s", cms), "-binary",
               "-CAfile", SVC.env["CSC_CA_CERT"], "-purpose", "any", "-out", self.path("out.bin")]
        if content is not None:
            cmd += ["-content", self.path("content.bin", content)]
        r = run(*cmd)
        with open(self.path("out.bin"), "rb") as f:
            out = f.read()
        return r.returncode == 0, out, r.stderr.decode()

    def assert_ades(self, cms, content, attached, cades, bt):
        ok, out, err = self.cms_verify(cms, None if attached else content)
        self.assertTrue(ok, err)
        self.assertEqual(out, content)
        si = signer_info(cms)
        self.assertEqual(si["attached"], attached)
        self.assertIn(OID_SIGNING_CERT_V2, si["signed"])
        if cades:
            self.assertIn(OID_SIGNING_TIME, si["signed"])
        else:  # PAdES B-B SHALL NOT carry signing-time
            self.assertNotIn(OID_SIGNING_TIME, si["signed"])
        if not bt:
            self.assertEqual(si["unsigned"], {})
            return
        tok = si["unsigned"][OID_TST]
        v = run("openssl", "ts", "-verify", "-token_in", "-in", self.path("tst.der", tok), "-data",
                self.path("sigvalue", si["signature"]), "-CAfile", SVC.env["CSC_CA_CERT"])
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        # a token over something else does not verify
        v = run("openssl", "ts", "-verify", "-token_in", "-in", self.path("tst.der", tok), "-data",
                self.path("other", si["signature"] + b"x"), "-CAfile", SVC.env["CSC_CA_CERT"])
        self.assertNotEqual(v.returncode, 0)


class TestSignDocCades(SignDocBase):
    def test_info(self):
        j = SVC.post("info", {}).json
        self.assertIn("signatures/signDoc", j["methods"])
        self.assertEqual(j["signature_formats"]["formats"], ["C", "P"])
        self.assertEqual(j["signature_formats"]["envelope_properties"],
                         [["Attached", "Detached"], ["Certification", "Revision"]])
        self.assertEqual(j["conformance_levels"], ["Ades-B-B", "Ades-B-T"])

    def test_documents_every_level_and_envelope(self):
        docs = [b"first document\n", b"second \x00\xff binary", b"third", b"fourth" * 1000]
        combos = [("Attached", "Ades-B-B"), ("Detached", "Ades-B-B"), ("Attached", "AdES-B-T"),
                  ("Detached", "Ades-B-T")]
        for cred, algo, extra, _ in ALGOS:
            with self.subTest(algo=algo):
                entries = []
                for (env, lvl), doc in zip(combos, docs):
                    e = {"document": H.b64(doc), "signature_format": "C", "conformance_level": lvl,
                         "signed_envelope_property": env, "signAlgo": algo}
                    e.update({k: v for k, v in extra.items() if k != "hashAlgorithmOID"})
                    entries.append(e)
                r = self.sign_doc({"credentialID": cred, "SAD": self.sad(cred, 4), "documents": entries})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(sorted(r.json), ["DocumentWithSignature", "SignatureObject"])
                self.assertEqual(len(r.json["DocumentWithSignature"]), 2)
                self.assertEqual(len(r.json["SignatureObject"]), 2)
                att = [base64.b64decode(x) for x in r.json["DocumentWithSignature"]]
                det = [base64.b64decode(x) for x in r.json["SignatureObject"]]
                self.assert_ades(att[0], docs[0], True, True, False)
                self.assert_ades(det[0], docs[1], False, True, False)
                self.assert_ades(att[1], docs[2], True, True, True)
                self.assert_ades(det[1], docs[3], False, True, True)
                # the detached signature is over that document only
                self.assertFalse(self.cms_verify(det[0], docs[0])[0])

    def test_default_envelope_is_attached(self):
        r = self.sign_doc({"credentialID": "dora-ec", "SAD": self.sad("dora-ec"),
                           "documents": [{"document": H.b64(b"d"), "signature_format": "C",
                                          "signAlgo": ECDSA_SHA256}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(list(r.json), ["DocumentWithSignature"])
        self.assert_ades(base64.b64decode(r.json["DocumentWithSignature"][0]), b"d", True, True, False)

    def test_document_digests(self):
        for cred, algo, extra, md in ALGOS:
            with self.subTest(algo=algo):
                d1, d2, d3 = b"digest one", b"digest two", b"digest three"
                hashes = [H.b64(H.digest(d.decode(), md)) for d in (d1, d2, d3)]
                e1 = {"hashes": hashes[:2], "signature_format": "C", "signAlgo": algo}
                e2 = {"hashes": hashes[2], "signature_format": "C", "conformance_level": "Ades-B-T",
                      "signAlgo": algo, "signed_envelope_property": "Detached"}
                e1.update(extra)
                e2.update(extra)
                r = self.sign_doc({"credentialID": cred, "SAD": self.sad(cred, 3), "documentDigests": [e1, e2]})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(list(r.json), ["SignatureObject"])
                sigs = [base64.b64decode(x) for x in r.json["SignatureObject"]]
                self.assertEqual(len(sigs), 3)
                self.assert_ades(sigs[0], d1, False, True, False)
                self.assert_ades(sigs[1], d2, False, True, False)
                self.assert_ades(sigs[2], d3, False, True, True)

    def test_one_object(self):
        """sample 3 sends documentDigests as one object."""
        h = H.b64(H.digest("obj"))
        r = self.sign_doc({"credentialID": "dora-ec", "SAD": self.sad("dora-ec"),
                           "documentDigests": {"hashes": [h], "hashAlgorithmOID": SHA256, "signature_format": "C",
                                               "signAlgo": ECDSA_SHA256}})
        self.assertEqual(r.status, 200, r)
        self.assert_ades(base64.b64decode(r.json["SignatureObject"][0]), b"obj", False, True, False)

    def test_audit_and_budget(self):
        sad = self.sad("dora-ec", 2)
        h = H.digest("audited signDoc")
        body = {"credentialID": "dora-ec", "SAD": sad,
                "documentDigests": [{"hashes": [H.b64(h)], "signature_format": "P",
                                     "conformance_level": "Ades-B-T", "signAlgo": ECDSA_SHA256}]}
        self.assertEqual(self.sign_doc(body).status, 200)
        self.assertEqual(self.sign_doc(body).status, 200)
        self.assertError(self.sign_doc(body), 400, "invalid_request")  # two signatures were authorized
        out = SVC.admin("audit", "query", "--event", "sign", "--credential", "dora-ec", "--json").stdout
        recs = [json.loads(x) for x in out.splitlines() if x.strip()]
        mine = [rec for rec in recs if rec.get("digests") == [H.b64(h)] and rec["result"] == "ok"]
        self.assertEqual(len(mine), 2, out[-3000:])
        # the front end's words, then the HTTP request's id (X-Request-Id, issue 15)
        self.assertRegex(mine[0]["detail"], "^signDoc P/Ades-B-T/Certification " + re.escape(ECDSA_SHA256) +
                         r" request_id=[0-9a-f]{32}$")
        # B-T: the time-stamp of each signature is audited too
        out = SVC.admin("audit", "query", "--event", "timestamp", "--user", "dora", "--json").stdout
        self.assertGreaterEqual(len(out.splitlines()), 2)
        self.assertEqual(SVC.admin("audit", "verify", check=False).returncode, 0)


class TestSignDocPades(SignDocBase):
    def test_pdf_signed_into_placeholder(self):
        for cred, algo, extra, _ in ALGOS[:4]:
            for lvl, bt in (("Ades-B-B", False), ("Ades-B-T", True)):
                with self.subTest(algo=algo, level=lvl):
                    pdf, gap = make_pdf()
                    e = {"document": H.b64(pdf), "signature_format": "P", "conformance_level": lvl,
                         "signAlgo": algo}
                    e.update(extra)
                    r = self.sign_doc({"credentialID": cred, "SAD": self.sad(cred), "documents": [e]})
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(list(r.json), ["DocumentWithSignature"])
                    signed = base64.b64decode(r.json["DocumentWithSignature"][0])
                    self.assertEqual(len(signed), len(pdf))
                    self.assertEqual(pdf_ranges(signed, gap), pdf_ranges(pdf, gap))
                    cms = pdf_cms(signed, gap)
                    self.assert_ades(cms, pdf_ranges(pdf, gap), False, False, bt)
                    v = run("pdfsig", self.path("signed.pdf", signed))
                    self.assertIn(b"Signature is Valid", v.stdout, v.stdout + v.stderr)
                    # one byte changed inside a signed range: pdfsig says so
                    bad = bytearray(signed)
                    bad[20] ^= 1
                    v = run("pdfsig", self.path("bad.pdf", bytes(bad)))
                    self.assertNotIn(b"Signature is Valid", v.stdout)

    def test_asynchronous_pdf_and_cades(self):
        """operationMode A: the SAD is spent at once, signPolling hands the same body the synchronous call gives,
        only to the user who asked; a PAdES B-T PDF and a detached CAdES made on a job thread verify."""
        pdf, gap = make_pdf()
        doc = b"async CAdES document"
        body = {"credentialID": "dora-ec", "SAD": self.sad("dora-ec", 2), "operationMode": "A",
                "validity_period": 120000,  # milliseconds (CSC API v2.0.0.2 sec. 11.10)
                "documents": [{"document": H.b64(pdf), "signature_format": "P", "conformance_level": "Ades-B-T",
                               "signAlgo": ECDSA_SHA256},
                              {"document": H.b64(doc), "signature_format": "C", "conformance_level": "Ades-B-B",
                               "signed_envelope_property": "Detached", "signAlgo": ECDSA_SHA256}]}
        r = self.sign_doc(body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(list(r.json), ["responseID"])
        rid = r.json["responseID"]
        # spent at acceptance: the same SAD cannot be used again
        again = self.sign_doc(dict(body, operationMode="S"))
        self.assertEqual(again.status, 400, again)
        deadline = time.time() + 60
        while True:
            p = SVC.post("signatures/signPolling", {"requestID": rid}, self.t)
            if p.status != 202 or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(p.status, 200, p)
        self.assertEqual(sorted(p.json), ["DocumentWithSignature", "SignatureObject"])
        signed = base64.b64decode(p.json["DocumentWithSignature"][0])
        self.assert_ades(pdf_cms(signed, gap), pdf_ranges(pdf, gap), False, False, True)
        self.assert_ades(base64.b64decode(p.json["SignatureObject"][0]), doc, False, True, False)
        # another user never sees it
        SVC.add_user("erin-doc", H.pw("erin-doc"))
        other = SVC.post("signatures/signPolling", {"requestID": rid},
                         SVC.token("erin-doc", H.pw("erin-doc")))
        self.assertEqual(other.status, 400, other)

    def test_pdf_byte_range_digest(self):
        pdf, gap = make_pdf()
        h = base64.b64encode(hashlib.sha256(pdf_ranges(pdf, gap)).digest()).decode()
        r = self.sign_doc({"credentialID": "dora-rsa", "SAD": self.sad("dora-rsa"),
                           "documentDigests": [{"hashes": [h], "signature_format": "P",
                                                "signAlgo": RSA_SHA256}]})
        self.assertEqual(r.status, 200, r)
        cms = base64.b64decode(r.json["SignatureObject"][0])
        self.assert_ades(cms, pdf_ranges(pdf, gap), False, False, False)

    def test_bad_placeholders(self):
        pdf, gap = make_pdf()
        no_sig = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
        filled, _ = make_pdf(zero=False)
        wrong_len = pdf + b"\n"  # /ByteRange no longer ends at the end of the file
        not_contents = pdf.replace(b"/Contents <", b"/Xontents <")  # the gap is not the value of /Contents
        br = re.search(rb"/ByteRange \[0 ", pdf)
        not_zero_start = pdf[:br.end() - 2] + b"1" + pdf[br.end() - 1:]  # [1 a b c]
        desc = ("Invalid PDF document: no prepared signature (/ByteRange [0 a b c] around a zero-filled "
                "/Contents <00...> placeholder)")
        sad = self.sad("dora-ec")
        for doc in (no_sig, filled, wrong_len, not_contents, not_zero_start):
            r = self.sign_doc({"credentialID": "dora-ec", "SAD": sad,
                               "documents": [{"document": H.b64(doc), "signature_format": "P",
                                              "signAlgo": ECDSA_SHA256}]})
            self.assertError(r, 400, "invalid_request", desc)
        # a placeholder too small for the CMS: refused, and the signature given back to the SAD
        small, _ = make_pdf(contents_len=64)
        r = self.sign_doc({"credentialID": "dora-ec", "SAD": sad,
                           "documents": [{"document": H.b64(small), "signature_format": "P",
                                          "signAlgo": ECDSA_SHA256}]})
        self.assertError(r, 400, "invalid_request",
                         "The signature does not fit into the /Contents placeholder of the PDF")
        r = self.sign_doc({"credentialID": "dora-ec", "SAD": sad,
                           "documents": [{"document": H.b64(pdf), "signature_format": "P",
                                          "signAlgo": ECDSA_SHA256}]})
        self.assertEqual(r.status, 200, r)


class TestPlaceholderBeforeSad(SignDocBase):
    """Issue 9 item 9: a PDF placeholder too small for the CMS is refused before the SAD is spent or anything is
    signed or audited, so retrying it costs nothing and leaves no records; the same SAD then signs a PDF that fits."""

    def audit_count(self):
        n = 0
        for ev in ("sign", "sign-result"):
            out = SVC.admin("audit", "query", "--event", ev, "--credential", "dora-ec", "--json").stdout
            n += len([x for x in out.splitlines() if x.strip()])
        return n

    def doc(self, pdf, level):
        return {"document": H.b64(pdf), "signature_format": "P", "conformance_level": level, "signAlgo": ECDSA_SHA256}

    def test_too_small_refused_before_the_sad_is_spent(self):
        # the size of a real B-B CMS of this credential, from a roomy placeholder
        pdf, gap = make_pdf()
        r = self.sign_doc({"credentialID": "dora-ec", "SAD": self.sad("dora-ec"), "documents": [self.doc(pdf, "Ades-B-B")]})
        self.assertEqual(r.status, 200, r)
        bb = len(pdf_cms(base64.b64decode(r.json["DocumentWithSignature"][0]), gap))
        sad = self.sad("dora-ec", 1)  # one signature only
        before = self.audit_count()
        tight, tgap = make_pdf(contents_len=bb + 80)   # room for B-B, none for a B-T token
        for small, level in ((make_pdf(contents_len=64)[0], "Ades-B-B"), (tight, "Ades-B-T")) * 3:
            r = self.sign_doc({"credentialID": "dora-ec", "SAD": sad, "documents": [self.doc(small, level)]})
            self.assertError(r, 400, "invalid_request",
                             "The signature does not fit into the /Contents placeholder of the PDF")
        self.assertEqual(self.audit_count(), before)   # no sign or sign-result record for a refusal
        # the SAD's one signature is still there: the tight placeholder takes a B-B
        r = self.sign_doc({"credentialID": "dora-ec", "SAD": sad, "documents": [self.doc(tight, "Ades-B-B")]})
        self.assertEqual(r.status, 200, r)
        signed = base64.b64decode(r.json["DocumentWithSignature"][0])
        self.assert_ades(pdf_cms(signed, tgap), pdf_ranges(tight, tgap), False, False, False)
        self.assertEqual(self.audit_count(), before + 1)
        r = self.sign_doc({"credentialID": "dora-ec", "SAD": sad, "documents": [self.doc(pdf, "Ades-B-B")]})
        self.assertError(r, 400, "invalid_request")    # and now it is spent


class TestSignDocRefusals(SignDocBase):
    def entry(self, **kw):
        e = {"hashes": [H.b64(H.digest("r"))], "hashAlgorithmOID": SHA256, "signature_format": "C",
             "signAlgo": ECDSA_SHA256}
        e.update(kw)
        return e

    def test_parameters(self):
        sad = self.sad("dora-ec", 5)
        good = self.entry()
        doc = {"document": H.b64(b"x"), "signature_format": "C", "signAlgo": ECDSA_SHA256}
        cases = [
            ({"documentDigests": [good], "documents": [doc]}, "Both documentDigests and documents parameters passed"),
            ({}, "Empty documentDigests and documents objects"),
            ({"documentDigests": []}, "Empty documentDigests and documents objects"),
            ({"documentDigests": "x"}, "Invalid object parameter documentDigests"),
            ({"documents": {"document": "eA=="}}, "Invalid array parameter documents"),
            ({"documentDigests": [self.entry(signature_format="X")]}, "Invalid parameter signature_format"),
            ({"documentDigests": [self.entry(signature_format="J")]}, "Invalid parameter signature_format"),
            ({"documentDigests": [self.entry(signature_format=None)]},
             "Missing (or invalid type) string parameter signature_format"),
            ({"documentDigests": [self.entry(conformance_level="Ades-B-LT")]}, "Invalid parameter conformance_level"),
            ({"documentDigests": [self.entry(conformance_level="Ades-B-LTA")]},
             "Invalid parameter conformance_level"),
            ({"documentDigests": [self.entry(signed_envelope_property="Attached")]},
             "Invalid parameter signed_envelope_property"),
            ({"documentDigests": [self.entry(signed_envelope_property="Parallel")]},
             "Invalid parameter signed_envelope_property"),
            ({"documentDigests": [self.entry(signed_props=[{"attribute_name": "signer-location"}])]},
             "Invalid parameter signed_props"),
            ({"documentDigests": [self.entry(hashes=["%%%"])]}, "Invalid Base64 hashes string parameter"),
            ({"documentDigests": [self.entry(hashes=[H.b64(b"short")])]}, "Invalid digest value length"),
            ({"documentDigests": [self.entry(hashes=[])]}, "Invalid object parameter documentDigests"),
            ({"documentDigests": [self.entry(hashAlgorithmOID=SHA384)]},
             "String parameter hashAlgorithmOID contradicts with signAlgo parameter"),
            ({"documentDigests": [self.entry(signAlgo=RSA_SHA256)]}, "Invalid parameter signAlgo"),
            ({"documentDigests": [self.entry(signAlgo="1.2.3")]}, "Invalid parameter signAlgo"),
            ({"documentDigests": [self.entry(signAlgo=None)]}, "Missing (or invalid type) string parameter signAlgo"),
            ({"documentDigests": [self.entry(),
                                  self.entry(signAlgo=ECDSA_SHA384, hashAlgorithmOID=SHA384,
                                             hashes=[H.b64(H.digest("r", "sha384"))])]},
             "All documents of one request must use the same digest algorithm (one hashAlgorithmOID per SAD)"),
            ({"documentDigests": [good] * 17}, "Too many documents in one request"),
            ({"documents": [dict(doc, document="not base64!")]}, "Invalid Base64 documents string parameter"),
            ({"documents": [dict(doc, document="")]}, "Invalid Base64 documents string parameter"),
            ({"documentDigests": [good], "operationMode": "X"}, "Invalid parameter operationMode"),
            ({"documentDigests": [good], "operationMode": "A", "validity_period": 0},
             "Out of bounds parameter validity_period"),
            ({"documentDigests": [good], "returnValidationInfo": "yes"}, "Invalid parameter returnValidationInfo"),
        ]
        for extra, desc in cases:
            with self.subTest(desc=desc, body=str(extra)[:80]):
                body = {"credentialID": "dora-ec", "SAD": sad}
                body.update(extra)
                self.assertError(self.sign_doc(body), 400, "invalid_request", desc)
        # none of these spent the SAD's budget
        for _ in range(5):
            self.assertEqual(self.sign_doc({"credentialID": "dora-ec", "SAD": sad, "documentDigests": [good]}).status,
                             200)

    def test_authorization(self):
        good = self.entry()
        body = {"credentialID": "dora-ec", "documentDigests": [good]}
        self.assertError(self.sign_doc(dict(body, SAD="bogus")), 400, "invalid_request", "Invalid parameter SAD")
        self.assertError(self.sign_doc(body), 400, "invalid_request", "Missing (or invalid type) string parameter SAD")
        # a SAD of another credential
        self.assertError(self.sign_doc(dict(body, SAD=self.sad("dora-rsa"))), 400, "invalid_request",
                         "Invalid parameter SAD")
        # another user's credential reads as unknown
        self.assertError(self.sign_doc(dict(body, credentialID=SVC.env["CSC_CRED_EC"], SAD="x")), 400,
                         "invalid_request", "Invalid parameter credentialID")
        self.assertError(SVC.post("signatures/signDoc", dict(body, SAD="x")), 401)
        # disabled credential
        self.assertError(self.sign_doc(dict(body, credentialID="dora-off", SAD="x")), 400, "invalid_request",
                         "The credential identified by credentialID is disabled")
        # signatureQualifier that is not the credential's
        self.assertError(self.sign_doc(dict(body, signatureQualifier="eu_eidas_qes", SAD="x")), 400,
                         "invalid_request", "Invalid parameter signatureQualifier")

    def test_scal2_binding(self):
        a, b = b"authorized document", b"another document"
        ha = H.digest(a.decode())
        sad = self.sad("dora-ec2", 1, [ha])
        # digests: only the bound one
        r = self.sign_doc({"credentialID": "dora-ec2", "SAD": sad,
                           "documentDigests": [self.entry(hashes=[H.b64(H.digest(b.decode()))])]})
        self.assertError(r, 400, "invalid_request", "documentDigests or documents are not authorized by the SAD.")
        # documents: the server's digest of the document must be the bound one
        doc = {"signature_format": "C", "signAlgo": ECDSA_SHA256}
        r = self.sign_doc({"credentialID": "dora-ec2", "SAD": sad, "documents": [dict(doc, document=H.b64(b))]})
        self.assertError(r, 403, "invalid_hash", "Document or documentDigest does not match authroized hash")
        r = self.sign_doc({"credentialID": "dora-ec2", "SAD": sad, "documents": [dict(doc, document=H.b64(a))]})
        self.assertEqual(r.status, 200, r)
        self.assert_ades(base64.b64decode(r.json["DocumentWithSignature"][0]), a, True, True, False)
        # used up
        r = self.sign_doc({"credentialID": "dora-ec2", "SAD": sad, "documents": [dict(doc, document=H.b64(a))]})
        self.assertError(r, 400, "invalid_request")

    def test_document_size_limit(self):
        """The document limit is the request body limit (max_body, 256K by default)."""
        import socket
        doc = os.urandom(180 * 1024)  # 240K in Base64: fits
        r = self.sign_doc({"credentialID": "dora-ec", "SAD": self.sad("dora-ec"),
                           "documents": [{"document": H.b64(doc), "signature_format": "C",
                                          "signAlgo": ECDSA_SHA256}]})
        self.assertEqual(r.status, 200, r)
        self.assert_ades(base64.b64decode(r.json["DocumentWithSignature"][0]), doc, True, True, False)
        # over the limit: 413 before the body is read
        raw = socket.create_connection(("localhost", SVC.port), timeout=10)
        sock = SVC.ctx.wrap_socket(raw, server_hostname="localhost")
        sock.sendall(b"POST /csc/v2/signatures/signDoc HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/json\r\nAuthorization: Bearer " + self.t.encode() +
                     b"\r\nContent-Length: 307200\r\n\r\n" + b"{" * 1024)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 10:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 413"), head)
        self.assertEqual(json.loads(body)["error"], "invalid_request")

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
        t = svc.token()
        cred = svc.env["CSC_CRED_EC"]
        h = H.digest("no tsa")
        sad = svc.authorize(t, cred, [h], pin=svc.env["CSC_PIN"]).json["SAD"]
        e = {"hashes": [H.b64(h)], "signature_format": "C", "signAlgo": ECDSA_SHA256}
        r = svc.post("signatures/signDoc", {"credentialID": cred, "SAD": sad,
                                            "documentDigests": [dict(e, conformance_level="Ades-B-T")]}, t)
        self.assertError(r, 400, "invalid_request", "Invalid parameter conformance_level")
        r = svc.post("signatures/signDoc", {"credentialID": cred, "SAD": sad, "documentDigests": [e]}, t)
        self.assertEqual(r.status, 200, r)

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
        r = SVC.admin("user", "add", "-tsa-", "--contact", "tsa@example.test", "--letter", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, "reserved|invalid user name")
        self.assertNotIn("user -tsa-", SVC.admin("list").stdout)


if __name__ == "__main__":
    unittest.main()
