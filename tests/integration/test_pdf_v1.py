"""A CSC v1.0.4.0 PDF signer end to end, and the exact request bodies v1 PDF signers send (docs/csc-api.md sec. 17).

The client side is done here by hand, as a v1 signer (pyHanko's csc_signer, clients generated from the v1.0.3.0
OpenAPI) does it: build the PDF with its signature dictionary, hash the byte ranges, build the CMS signed attributes
in DER, get them signed through /csc/v1/ (auth/login, credentials/list, credentials/info, credentials/authorize,
signatures/signHash), assemble the CMS SignedData and embed it. Then poppler's pdfsig and openssl cms check the
result, and a tampered copy must fail both. TestV1Replays replays the v1 request bodies not covered by
test_api.TestV1 and checks each answer against the v1 response shape."""
import base64
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
import unittest

import der as D
import harness as H

SVC = None
BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
NSSDIR = None
PIN_V1 = "13572468"  # of the extra credentials made in setUpModule

SIG_HEX = 16384  # /Contents capacity in hex digits: 8 KiB of CMS, far more than two certificates and a signature
BYTERANGE_WIDTH = 48  # room for "[0 a b c]", space-padded, so filling it in moves no byte of the file


def setUpModule():
    global SVC, NSSDIR
    SVC = H.Service(BUILD)
    # Credentials whose failure counters the replays may raise without touching the demo ones.
    for cid, auth in (("v1-2fa", "PIN AND OTP"), ("v1-lock", "PIN")):
        SVC.create_credential("--id", cid, "--user", SVC.env["CSC_USER"], "--key", "p256", "--auth", auth,
                  "--scal", "2", "--multisign", "5", pin=PIN_V1)
    SVC.start()
    # pdfsig validates certificates with NSS: a database that trusts the demo CA.
    NSSDIR = os.path.join(SVC.tmp, "nss")
    os.mkdir(NSSDIR)
    subprocess.run(["certutil", "-N", "-d", "sql:" + NSSDIR, "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", "sql:" + NSSDIR, "-n", "CSC Demo Root CA", "-t", "C,C,C", "-i",
                    SVC.env["CSC_CA_CERT"]], check=True, capture_output=True)


def tearDownModule():
    SVC.stop_checked()


# ---- the v1 client ----------------------------------------------------------------------------------------

def v1(method, body, token=None, auth=None):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if auth is not None:
        headers["Authorization"] = auth
    return SVC.request("POST", "/csc/v1/" + method, json.dumps(body).encode(), headers)


def basic(user=None, password=None):
    pair = "%s:%s" % (user or SVC.env["CSC_USER"], password or SVC.env["CSC_PASSWORD"])
    return "Basic " + base64.b64encode(pair.encode()).decode()


def login_v1():
    r = v1("auth/login", {"rememberMe": False}, auth=basic())  # v1.0.3.0 lists rememberMe as required
    assert r.status == 200, r
    return r.json["access_token"]


# ---- the PDF ------------------------------------------------------------------------------------------------

def build_pdf(text):
    """A one-page PDF (text in Helvetica) with an AcroForm signature field whose value is a signature dictionary
    with /ByteRange and /Contents placeholders of fixed size; one body, one classic xref table."""
    stream = b"BT /F1 24 Tf 72 720 Td (" + text + b") Tj ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R] /SigFlags 3 >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >>"
        b" /Contents 6 0 R /Annots [5 0 R] >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (Signature1) /V 7 0 R /Rect [0 0 0 0] /F 132 /P 3 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /ByteRange "
        + b"[0 0 0 0]".ljust(BYTERANGE_WIDTH) + b" /Contents <" + b"0" * SIG_HEX + b">"
        + b" /M (D:20260101000000Z) /Reason (CSC v1 integration test) >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def fill_byte_range(pdf):
    """Write the real /ByteRange (everything but the /Contents hex string, delimiters included); return it."""
    lt = pdf.index(b"/Contents <") + len(b"/Contents ")
    gt = lt + SIG_HEX + 2
    assert pdf[gt - 1:gt] == b">"
    br = [0, lt, gt, len(pdf) - gt]
    at = pdf.index(b"/ByteRange ") + len(b"/ByteRange ")
    pdf[at:at + BYTERANGE_WIDTH] = ("[%d %d %d %d]" % tuple(br)).encode().ljust(BYTERANGE_WIDTH)
    return br


def signed_bytes(pdf, br):
    return bytes(pdf[br[0]:br[0] + br[1]] + pdf[br[2]:br[2] + br[3]])


def embed(pdf, br, cms):
    hexed = cms.hex().upper().encode()
    assert len(hexed) <= SIG_HEX, "CMS larger than the /Contents placeholder"
    pdf[br[1] + 1:br[2] - 1] = hexed.ljust(SIG_HEX, b"0")


# ---- checks -----------------------------------------------------------------------------------------------

def pdfsig(path):
    """pdfsig's verdict for the one signature: (signature validation, certificate validation) texts. No -no-ocsp:
    poppler 22.12 then answers "Unknown issue with Certificate" for a good chain; the demo certificates carry no
    AIA, so no OCSP request is made anyway."""
    r = subprocess.run(["pdfsig", "-nssdir", NSSDIR, path], capture_output=True, text=True)
    sig = re.search(r"Signature Validation: (.*)", r.stdout)
    cert = re.search(r"Certificate Validation: (.*)", r.stdout)
    return (sig.group(1).strip() if sig else r.stdout + r.stderr), (cert.group(1).strip() if cert else None)


def openssl_cms_verify(cms, content, ca):
    """(verified, openssl's messages, DER of the certificate openssl verified the signature with)."""
    with tempfile.TemporaryDirectory() as d:
        cp, dp, sp = os.path.join(d, "sig.der"), os.path.join(d, "content.bin"), os.path.join(d, "signer.pem")
        with open(cp, "wb") as f:
            f.write(cms)
        with open(dp, "wb") as f:
            f.write(content)
        r = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", cp, "-content", dp,
                            "-CAfile", ca, "-signer", sp, "-out", os.devnull], capture_output=True, text=True)
        ok = r.returncode == 0 and "Verification successful" in r.stderr
        signer = None
        if ok:
            signer = subprocess.run(["openssl", "x509", "-in", sp, "-outform", "DER"], capture_output=True,
                                    check=True).stdout
        return ok, r.stderr, signer


def ess_cert_hash(cms):
    """certHash of the first ESSCertIDv2 in the signing-certificate-v2 attribute, read back out of the CMS."""
    sd = D.children(D.children(cms)[1])[0]  # ContentInfo.content [0] -> SignedData
    signer_info = D.children(D.children(sd)[-1])[0]
    attrs = D.children(signer_info)[3]
    assert attrs[0] == D.context(0)
    for attr in D.children(attrs):
        oid_enc, values = D.children(attr)
        if D.decode_oid(oid_enc) == D.ID_SIGNING_CERT_V2:
            cert_id = D.children(D.children(D.children(values)[0])[0])[0]
            first = D.children(cert_id)[0]
            _, pos, end = D.read(first)
            return first[pos:end]
    return None


class Base(unittest.TestCase):
    def assertV1Error(self, r, status, error, desc=None):
        self.assertEqual(r.status, status, r)
        self.assertIn("application/json", r.headers.get("content-type", ""))
        self.assertIsInstance(r.json, dict, r)
        self.assertEqual(r.json.get("error"), error, r)
        self.assertIsInstance(r.json.get("error_description"), str, r)
        if desc is not None:
            self.assertEqual(r.json["error_description"], desc, r)

    def assertV1Info(self, j, ec, auth_info=False):
        """output-credentials-info of v1.0.3.0/1.0.4.0: key, cert, authMode, multisign, lang; PIN and OTP only with
        authInfo true (default false); no v2 auth."""
        for k in ("key", "cert", "authMode", "multisign", "lang") + (("PIN", "OTP") if auth_info else ()):
            self.assertIn(k, j)
        self.assertNotIn("auth", j)
        self.assertNotIn("credentialID", j)
        self.assertEqual(j["key"]["status"], "enabled")
        self.assertIsInstance(j["key"]["algo"], list)
        self.assertIsInstance(j["key"]["len"], int)
        self.assertEqual("curve" in j["key"], ec)
        self.assertIn(j["SCAL"], ("1", "2"))
        self.assertIsInstance(j["multisign"], int)
        if not auth_info:
            self.assertNotIn("PIN", j)
            self.assertNotIn("OTP", j)
            return
        self.assertIn(j["PIN"]["presence"], ("true", "false", "optional"))
        self.assertIn(j["OTP"]["presence"], ("true", "false", "optional"))


class TestPdfV1(Base):
    """PAdES baseline-B (ETSI.CAdES.detached) signatures made through the v1 API, checked by pdfsig and openssl."""

    @classmethod
    def setUpClass(cls):
        cls.token = login_v1()
        r = v1("credentials/list", {"maxResults": 10}, cls.token)
        assert r.status == 200, r
        cls.creds = r.json["credentialIDs"]

    def credential(self, cred):
        """credentials/info exactly as pyHanko asks; the certificates in order, end entity first. The PIN and OTP
        objects are merged in from a second call with authInfo true (pyHanko does not ask for them)."""
        self.assertIn(cred, self.creds)
        r = v1("credentials/info", {"credentialID": cred, "certificates": "chain", "certInfo": False}, self.token)
        self.assertEqual(r.status, 200, r)
        self.assertV1Info(r.json, ec="curve" in r.json["key"])
        a = v1("credentials/info", {"credentialID": cred, "authInfo": True}, self.token)
        self.assertEqual(a.status, 200, a)
        return dict(r.json, PIN=a.json["PIN"], OTP=a.json["OTP"]), [base64.b64decode(c)
                                                                    for c in r.json["cert"]["certificates"]]

    def prepare(self, text, signer):
        """A PDF with its byte range filled in, and the DER signed attributes over that range."""
        pdf = build_pdf(text)
        br = fill_byte_range(pdf)
        digest = hashlib.sha256(signed_bytes(pdf, br)).digest()
        attrs = D.cades_signed_attrs(digest, signer)
        return pdf, br, attrs

    def finish_and_check(self, pdf, br, attrs, sig_alg, signature, signer, certs, name):
        cms = D.signed_data(attrs, sig_alg, signature, signer, certs)
        embed(pdf, br, cms)
        path = os.path.join(SVC.tmp, name)
        with open(path, "wb") as f:
            f.write(pdf)
        # The file is structurally sound (xref offsets, object syntax) by qpdf's reading.
        q = subprocess.run(["qpdf", "--check", path], capture_output=True, text=True)
        self.assertEqual(q.returncode, 0, q.stdout + q.stderr)
        self.assertEqual(pdfsig(path), ("Signature is Valid.", "Certificate is Trusted."))
        ok, err, verified_with = openssl_cms_verify(cms, signed_bytes(pdf, br), SVC.env["CSC_CA_CERT"])
        self.assertTrue(ok, err)
        # openssl 3.0 does not check signing-certificate-v2 for CMS: the attribute must name the certificate that
        # the signature verified with.
        self.assertEqual(verified_with, certs[0])
        self.assertEqual(ess_cert_hash(cms), hashlib.sha256(verified_with).digest())

        # One byte of the signed page text changed: the digest no longer matches, for both verifiers.
        tampered = bytearray(pdf)
        at = tampered.index(b"(Hello")
        self.assertLess(at, br[1])
        tampered[at + 1:at + 2] = b"J"
        tpath = path + ".tampered.pdf"
        with open(tpath, "wb") as f:
            f.write(tampered)
        self.assertEqual(pdfsig(tpath)[0], "Digest Mismatch.")
        self.assertFalse(openssl_cms_verify(cms, signed_bytes(tampered, br), SVC.env["CSC_CA_CERT"])[0])
        # The signature value itself changed (its last byte ends the CMS): the signed attributes do not verify.
        bad = bytearray(cms)
        bad[-1] ^= 0x01
        self.assertFalse(openssl_cms_verify(bytes(bad), signed_bytes(pdf, br), SVC.env["CSC_CA_CERT"])[0])
        broken = bytearray(pdf)
        embed(broken, br, bytes(bad))
        bpath = path + ".badsig.pdf"
        with open(bpath, "wb") as f:
            f.write(broken)
        self.assertEqual(pdfsig(bpath)[0], "Signature is Invalid.")

    def test_rsa_pin_and_otp_two_documents(self):
        """demo-rsa (PIN AND OTP, SCAL 2): one v1 authorization for two documents, then one signHash per document,
        first as pyHanko sends it (sha256WithRSAEncryption + hashAlgo), then as the v1 OpenAPI sample does
        (rsaEncryption + hashAlgo)."""
        info, certs = self.credential("demo-rsa")
        self.assertV1Info(info, ec=False, auth_info=True)
        self.assertEqual((info["authMode"], info["PIN"]["presence"], info["OTP"]["presence"]),
                         ("explicit", "true", "true"))
        self.assertEqual(len(certs), 2)
        signer = D.Certificate(certs[0])
        self.assertEqual(signer.issuer, D.Certificate(certs[1]).subject)
        self.assertIn(H.RSA_SHA256, info["key"]["algo"])
        self.assertIn(H.RSA_ENC, info["key"]["algo"])

        docs = [self.prepare(b"Hello from a CSC v1 client, document %d" % i, signer) for i in (1, 2)]
        tbs = [hashlib.sha256(attrs).digest() for _, _, attrs in docs]
        otp = H.fresh_totp(SVC.env["CSC_TOTP_SECRET"], SVC.used_otps)
        r = v1("credentials/authorize", {"credentialID": "demo-rsa", "hash": [H.b64(h) for h in tbs],
                                         "numSignatures": 2, "PIN": SVC.env["CSC_PIN"], "OTP": otp}, self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["SAD", "expiresIn"])
        sad = r.json["SAD"]

        for (pdf, br, attrs), h, algo, name in zip(docs, tbs, (H.RSA_SHA256, H.RSA_ENC), ("rsa-pkcs1.pdf",
                                                                                          "rsa-enc.pdf")):
            r = v1("signatures/signHash", {"credentialID": "demo-rsa", "SAD": sad, "hashAlgo": H.SHA256,
                                           "signAlgo": algo, "hash": [H.b64(h)]}, self.token)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(list(r.json), ["signatures"])
            self.assertEqual(len(r.json["signatures"]), 1)
            sig = base64.b64decode(r.json["signatures"][0])
            self.assertEqual(len(sig), 256)
            self.finish_and_check(pdf, br, attrs, D.algorithm(algo, D.null()), sig, signer, certs, name)
        # Both signatures of the authorization are spent.
        r = v1("signatures/signHash", {"credentialID": "demo-rsa", "SAD": sad, "hashAlgo": H.SHA256,
                                       "signAlgo": H.RSA_SHA256, "hash": [H.b64(tbs[0])]}, self.token)
        self.assertV1Error(r, 400, "invalid_request")

    def test_ecdsa_p256_batch_of_two(self):
        """demo-ec (P-256, PIN): pyHanko's batch mode, two documents in one authorize and one signHash; the
        ECDSA values come back DER-encoded and go into SignerInfo.signature as they are."""
        info, certs = self.credential("demo-ec")
        self.assertV1Info(info, ec=True, auth_info=True)
        self.assertEqual(info["key"]["curve"], "1.2.840.10045.3.1.7")
        self.assertEqual((info["PIN"]["presence"], info["OTP"]["presence"]), ("true", "false"))
        self.assertIn(H.ECDSA_SHA256, info["key"]["algo"])
        signer = D.Certificate(certs[0])

        docs = [self.prepare(b"Hello from a CSC v1 batch, document %d" % i, signer) for i in (1, 2)]
        tbs = [H.b64(hashlib.sha256(attrs).digest()) for _, _, attrs in docs]
        r = v1("credentials/authorize", {"credentialID": "demo-ec", "hash": tbs, "numSignatures": 2,
                                         "PIN": SVC.env["CSC_PIN"]}, self.token)
        self.assertEqual(r.status, 200, r)
        r = v1("signatures/signHash", {"credentialID": "demo-ec", "SAD": r.json["SAD"], "hashAlgo": H.SHA256,
                                       "signAlgo": H.ECDSA_SHA256, "hash": tbs}, self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["signatures"]), 2)
        for (pdf, br, attrs), sig, name in zip(docs, r.json["signatures"], ("ec-1.pdf", "ec-2.pdf")):
            sig = base64.b64decode(sig)
            self.assertEqual(sig[0], 0x30)  # Ecdsa-Sig-Value, not r||s
            self.finish_and_check(pdf, br, attrs, D.algorithm(H.ECDSA_SHA256), sig, signer, certs, name)

    def test_second_document_through_extend_transaction(self):
        """The v1 multi-signature transaction of docs/csc-api.md sec. 11: authorize two signatures over both documents'
        hashes, sign the first, then renew the SAD for the second (bound, not yet signed) with extendTransaction
        (v1 `hash`) and sign it with the new SAD; the old SAD is dead. A hash the user never authorized, or one
        already signed, is refused: new hashes need a new credentials/authorize with the user's factors."""
        info, certs = self.credential("demo-ec")
        signer = D.Certificate(certs[0])
        first = self.prepare(b"Hello, first document of the transaction", signer)
        second = self.prepare(b"Hello, second document of the transaction", signer)
        h1 = H.b64(hashlib.sha256(first[2]).digest())
        h2 = H.b64(hashlib.sha256(second[2]).digest())
        r = v1("credentials/authorize", {"credentialID": "demo-ec", "hash": [h1, h2], "numSignatures": 2,
                                         "PIN": SVC.env["CSC_PIN"]}, self.token)
        self.assertEqual(r.status, 200, r)
        sad = r.json["SAD"]
        r = v1("signatures/signHash", {"credentialID": "demo-ec", "SAD": sad, "hashAlgo": H.SHA256,
                                       "signAlgo": H.ECDSA_SHA256, "hash": [h1]}, self.token)
        self.assertEqual(r.status, 200, r)
        self.finish_and_check(*first, D.algorithm(H.ECDSA_SHA256), base64.b64decode(r.json["signatures"][0]),
                              signer, certs, "ec-tx-1.pdf")

        for refused in (H.b64(H.digest("a third document nobody authorized")), h1):
            r = v1("credentials/extendTransaction", {"credentialID": "demo-ec", "SAD": sad, "hash": [refused]},
                   self.token)
            self.assertV1Error(r, 400, "invalid_request", "Hash is not authorized by the SAD.")
        r = v1("credentials/extendTransaction", {"credentialID": "demo-ec", "SAD": sad, "hash": [h2],
                                                 "clientData": "12345678"}, self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["SAD", "expiresIn"])
        fresh = r.json["SAD"]
        self.assertNotEqual(fresh, sad)
        r = v1("signatures/signHash", {"credentialID": "demo-ec", "SAD": sad, "hashAlgo": H.SHA256,
                                       "signAlgo": H.ECDSA_SHA256, "hash": [h2]}, self.token)
        self.assertV1Error(r, 400, "invalid_request")
        r = v1("signatures/signHash", {"credentialID": "demo-ec", "SAD": fresh, "hashAlgo": H.SHA256,
                                       "signAlgo": H.ECDSA_SHA256, "hash": [h2]}, self.token)
        self.assertEqual(r.status, 200, r)
        self.finish_and_check(*second, D.algorithm(H.ECDSA_SHA256), base64.b64decode(r.json["signatures"][0]),
                              signer, certs, "ec-tx-2.pdf")
        # The budget of two is spent.
        r = v1("signatures/signHash", {"credentialID": "demo-ec", "SAD": fresh, "hashAlgo": H.SHA256,
                                       "signAlgo": H.ECDSA_SHA256, "hash": [h2]}, self.token)
        self.assertV1Error(r, 400, "invalid_request")

    def test_signature_over_other_attributes_fails(self):
        """The check is not vacuous: a signature the server made over another document's signed attributes,
        put into this document's CMS, is refused by both verifiers."""
        info, certs = self.credential("demo-ec")
        signer = D.Certificate(certs[0])
        pdf, br, attrs = self.prepare(b"Hello, this is the document", signer)
        _, _, other = self.prepare(b"Hello, this is another one", signer)
        h = H.b64(hashlib.sha256(other).digest())
        r = v1("credentials/authorize", {"credentialID": "demo-ec", "hash": [h], "numSignatures": 1,
                                         "PIN": SVC.env["CSC_PIN"]}, self.token)
        r = v1("signatures/signHash", {"credentialID": "demo-ec", "SAD": r.json["SAD"], "hashAlgo": H.SHA256,
                                       "signAlgo": H.ECDSA_SHA256, "hash": [h]}, self.token)
        self.assertEqual(r.status, 200, r)
        cms = D.signed_data(attrs, D.algorithm(H.ECDSA_SHA256), base64.b64decode(r.json["signatures"][0]), signer,
                            certs)
        embed(pdf, br, cms)
        path = os.path.join(SVC.tmp, "ec-wrong.pdf")
        with open(path, "wb") as f:
            f.write(pdf)
        self.assertEqual(pdfsig(path)[0], "Signature is Invalid.")
        self.assertFalse(openssl_cms_verify(cms, signed_bytes(pdf, br), SVC.env["CSC_CA_CERT"])[0])



class TestDer(unittest.TestCase):
    """der.py against openssl's reading of the same bytes."""

    def asn1parse(self, data):
        return subprocess.run(["openssl", "asn1parse", "-inform", "DER"], input=data, capture_output=True,
                              check=True).stdout.decode()

    def test_primitives(self):
        self.assertEqual(D.integer(0), b"\x02\x01\x00")
        self.assertEqual(D.integer(127), b"\x02\x01\x7f")
        self.assertEqual(D.integer(128), b"\x02\x02\x00\x80")
        self.assertEqual(D.integer(-129), b"\x02\x02\xff\x7f")
        self.assertEqual(D.oid("1.2.840.113549.1.7.2"), bytes.fromhex("06092a864886f70d010702"))
        self.assertEqual(D.decode_oid(D.oid("2.999.1")), "2.999.1")
        self.assertEqual(D.length(300), b"\x82\x01\x2c")
        self.assertEqual(D.set_of(D.integer(2), D.integer(1)), D.tlv(D.SET, D.integer(1) + D.integer(2)))
        self.assertEqual(D.implicit(0, D.set_of(D.integer(1))), b"\xa0\x03\x02\x01\x01")
        self.assertIn("OCTET STRING", self.asn1parse(D.sequence(D.octet_string(b"x" * 200), D.null())))
        with self.assertRaises(ValueError):
            D.read(b"\x30\x05\x02\x01")

    def test_certificate_fields(self):
        with open(SVC.env["CSC_CA_CERT"]) as f:
            der = base64.b64decode("".join(l for l in f.read().splitlines() if "-----" not in l))
        c = D.Certificate(der)
        self.assertEqual(c.issuer, c.subject)  # the self-signed demo root
        serial = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", SVC.env["CSC_CA_CERT"]],
                                capture_output=True, text=True, check=True).stdout.strip().split("=")[1]
        _, pos, end = D.read(c.serial)
        self.assertEqual(int.from_bytes(c.serial[pos:end], "big", signed=True), int(serial, 16))
        self.assertIn("CSC Demo Root CA", self.asn1parse(c.subject))


class TestV1Replays(Base):
    """Request bodies v1 signers send that test_api.TestV1 does not replay: the v1.0.3.0 OpenAPI samples (which
    generated clients copy), pyHanko's optional members, numbers and booleans as strings, unknown members, null for
    absent, missing optional members, other spellings. Each answer is checked against the v1 response shape."""

    @classmethod
    def setUpClass(cls):
        cls.token = login_v1()

    def ec_pub(self):
        return SVC.cert_pem(self.token, "demo-ec")

    def wrong_totp(self):
        """A 6-digit code that is none of the codes of the current time steps around now."""
        now = int(time.time())
        near = {H.totp(SVC.env["CSC_TOTP_SECRET"], at=now + d) for d in range(-90, 91, 30)}
        return next(c for c in ("%06d" % i for i in range(1000)) if c not in near)

    def test_transport_quirks(self):
        """No body at all and a charset in the Content-Type (Java's HttpURLConnection) on info and auth/login."""
        for ctype in ("application/json", "application/json; charset=UTF-8", "application/json;charset=utf-8"):
            r = SVC.request("POST", "/csc/v1/info", b"", {"Content-Type": ctype})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["specs"], "1.0.4.0")
            r = SVC.request("POST", "/csc/v1/auth/login", b"", {"Content-Type": ctype, "Authorization": basic()})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(sorted(r.json), ["access_token", "expires_in"])

    def test_login_bodies_and_revoke(self):
        # The v1.0.3.0 OpenAPI sample misspells rememberMe: an unknown member, ignored; no refresh token.
        r = v1("auth/login", {"remeberMe": True}, auth=basic())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["access_token", "expires_in"])
        self.assertIsInstance(r.json["expires_in"], int)
        self.assertEqual(v1("credentials/list", {}, r.json["access_token"]).status, 200)
        # rememberMe as a string, with clientData: a refresh token usable on the v1 path without Basic.
        r = v1("auth/login", {"rememberMe": "true", "clientData": "12345678"}, auth=basic())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["access_token", "expires_in", "refresh_token"])
        refresh, access = r.json["refresh_token"], r.json["access_token"]
        r = v1("auth/login", {"refresh_token": refresh, "rememberMe": False})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(v1("credentials/list", {}, r.json["access_token"]).status, 200)
        # auth/revoke exactly as the OpenAPI sample: 204 without a body, then the refresh token is dead.
        r = v1("auth/revoke", {"token": refresh, "token_type_hint": "refresh_token", "clientData": "12345678"}, access)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.raw, b"")
        self.assertV1Error(v1("auth/login", {"refresh_token": refresh}), 400, "invalid_request",
                           "Invalid refresh_token")

    def test_list_bodies(self):
        # OpenAPI sample: maxResults as a string.
        r = v1("credentials/list", {"maxResults": "10"}, self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["credentialIDs"])
        self.assertEqual(sorted(r.json["credentialIDs"]), ["demo-ec", "demo-rsa", "v1-2fa", "v1-lock"])
        # null for absent members, unknown members, clientData.
        r = v1("credentials/list", {"userID": None, "maxResults": "3", "pageToken": None, "clientData": "x",
                                    "vendorOptions": {"includeExpired": True, "tags": [1, 2]}}, self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["credentialIDs", "nextPageToken"])
        self.assertEqual(len(r.json["credentialIDs"]), 3)
        self.assertIsInstance(r.json["nextPageToken"], str)
        r2 = v1("credentials/list", {"maxResults": 3, "pageToken": r.json["nextPageToken"]}, self.token)
        self.assertEqual(sorted(r.json["credentialIDs"] + r2.json["credentialIDs"]),
                         ["demo-ec", "demo-rsa", "v1-2fa", "v1-lock"])
        self.assertV1Error(v1("credentials/list", {"maxResults": "ten"}, self.token), 400, "invalid_request",
                           "Invalid parameter maxResults")
        self.assertV1Error(v1("credentials/list", {"userID": "demo"}, self.token), 400, "invalid_request",
                           "userID parameter MUST be null")

    def test_info_bodies(self):
        # OpenAPI sample: chain, certInfo and authInfo true.
        r = v1("credentials/info", {"credentialID": "demo-rsa", "certificates": "chain", "certInfo": True,
                                    "authInfo": True, "lang": "en-US"}, self.token)
        self.assertEqual(r.status, 200, r)
        self.assertV1Info(r.json, ec=False, auth_info=True)
        cert = r.json["cert"]
        self.assertEqual(cert["status"], "valid")
        self.assertEqual(len(cert["certificates"]), 2)
        ee = D.Certificate(base64.b64decode(cert["certificates"][0]))
        _, pos, end = D.read(ee.serial)
        self.assertEqual(int(cert["serialNumber"], 16), int.from_bytes(ee.serial[pos:end], "big"))
        self.assertRegex(cert["validFrom"], r"^\d{14}Z$")
        self.assertRegex(cert["validTo"], r"^\d{14}Z$")
        self.assertIn("CN=", cert["issuerDN"])
        self.assertIn("CN=", cert["subjectDN"])
        self.assertEqual((r.json["PIN"]["format"], r.json["OTP"]["type"]), ("N", "offline"))
        # Booleans as strings, "single", null lang: one certificate, no certInfo fields.
        r = v1("credentials/info", {"credentialID": "demo-ec", "certificates": "single", "certInfo": "false",
                                    "authInfo": "true", "lang": None}, self.token)
        self.assertEqual(r.status, 200, r)
        self.assertV1Info(r.json, ec=True, auth_info=True)
        self.assertEqual(len(r.json["cert"]["certificates"]), 1)
        self.assertNotIn("issuerDN", r.json["cert"])
        # No certificates member at all: "single" is the default.
        r = v1("credentials/info", {"credentialID": "demo-ec"}, self.token)
        self.assertEqual(len(r.json["cert"]["certificates"]), 1)
        # "none": no certificates member in cert.
        r = v1("credentials/info", {"credentialID": "demo-ec", "certificates": "none"}, self.token)
        self.assertNotIn("certificates", r.json["cert"])
        self.assertV1Error(v1("credentials/info", {"credentialID": "demo-ec", "certInfo": "yes"}, self.token), 400,
                           "invalid_request", "Invalid parameter certInfo")

    def test_credential_id_spellings(self):
        """credentialID is case-sensitive, as a JSON member and as a value: other spellings are refused the same
        way as a missing or unknown credential, with a v1 error body."""
        h = H.b64(H.digest("spelling"))
        for method, body in (("credentials/info", {"credentialId": "demo-ec"}),
                             ("credentials/authorize", {"credentialId": "demo-ec", "numSignatures": 1, "hash": [h],
                                                        "PIN": SVC.env["CSC_PIN"]}),
                             ("signatures/signHash", {"credentialId": "demo-ec", "SAD": "x", "hash": [h],
                                                      "signAlgo": H.ECDSA_SHA256})):
            with self.subTest(method=method):
                self.assertV1Error(v1(method, body, self.token), 400, "invalid_request",
                                   "Missing (or invalid type) string parameter credentialID")
        for value in ("DEMO-EC", "Demo-Ec", " demo-ec", "demo-ec "):
            with self.subTest(value=value):
                self.assertV1Error(v1("credentials/info", {"credentialID": value}, self.token), 400,
                                   "invalid_request", "Invalid parameter credentialID")

    def test_authorize_and_sign_with_strings_extras_and_defaults(self):
        """numSignatures as a string, description (in Japanese) and clientData, an unknown member; then signHash
        without hashAlgo (signAlgo implies SHA-256), the hashes in another order than authorized."""
        a, b = H.digest("契約書 1"), H.digest("契約書 2")
        r = v1("credentials/authorize", {"credentialID": "demo-ec", "numSignatures": "2",
                                         "hash": [H.b64(a), H.b64(b)], "PIN": SVC.env["CSC_PIN"],
                                         "description": "契約書.pdf ほか 1 件に署名", "clientData": "12345678",
                                         "vendorTransactionID": "tx-0001"}, self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["SAD", "expiresIn"])
        self.assertIsInstance(r.json["expiresIn"], int)
        r = v1("signatures/signHash", {"credentialID": "demo-ec", "SAD": r.json["SAD"], "hash": [H.b64(b), H.b64(a)],
                                       "signAlgo": H.ECDSA_SHA256, "clientData": "12345678",
                                       "vendorOptions": {}}, self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["signatures"])
        pub = self.ec_pub()
        sigs = [base64.b64decode(s) for s in r.json["signatures"]]
        self.assertTrue(H.verify(pub, sigs[0], b))
        self.assertTrue(H.verify(pub, sigs[1], a))
        self.assertFalse(H.verify(pub, sigs[0], a))

    def test_hash_as_a_bracketed_string(self):
        """The v1.0.3.0 OpenAPI samples of authorize and extendTransaction write hash as the string "[h1,h2]";
        the schema (and v1.0.4.0) says array. Refused as a wrong type, with the v1 parameter name."""
        h1, h2 = H.b64(H.digest("s1")), H.b64(H.digest("s2"))
        r = v1("credentials/authorize", {"credentialID": "demo-ec", "numSignatures": 2, "hash": "[%s,%s]" % (h1, h2),
                                         "PIN": SVC.env["CSC_PIN"], "clientData": "12345678"}, self.token)
        self.assertV1Error(r, 400, "invalid_request", "Missing (or invalid type) array parameter hash")
        r = v1("credentials/authorize", {"credentialID": "demo-ec", "numSignatures": 1, "hash": [h1],
                                         "PIN": SVC.env["CSC_PIN"]}, self.token)
        self.assertEqual(r.status, 200, r)
        sad = r.json["SAD"]
        r = v1("credentials/extendTransaction", {"credentialID": "demo-ec", "hash": "[%s]" % h1, "SAD": sad,
                                                 "clientData": "12345678"}, self.token)
        self.assertV1Error(r, 400, "invalid_request", "Missing (or invalid type) array parameter hash")
        r = v1("signatures/signHash", {"credentialID": "demo-ec", "SAD": sad, "hash": h1,
                                       "signAlgo": H.ECDSA_SHA256}, self.token)
        self.assertV1Error(r, 400, "invalid_request", "Missing (or invalid type) array parameter hash")
        # None of the refusals spent the authorization.
        r = v1("signatures/signHash", {"credentialID": "demo-ec", "SAD": sad, "hash": [h1],
                                       "signAlgo": H.ECDSA_SHA256}, self.token)
        self.assertEqual(r.status, 200, r)

    def test_sign_hash_openapi_sample(self):
        """The v1.0.3.0 signHash sample has no credentialID (required by its own schema): refused before the SAD
        is touched, so the corrected request still signs with it."""
        h = H.digest("openapi sample")
        r = v1("credentials/authorize", {"credentialID": "demo-ec", "numSignatures": 1, "hash": [H.b64(h)],
                                         "PIN": SVC.env["CSC_PIN"]}, self.token)
        sad = r.json["SAD"]
        sample = {"SAD": sad, "hash": [H.b64(h)], "hashAlgo": H.SHA256, "signAlgo": H.ECDSA_SHA256,
                  "clientData": "12345678"}
        self.assertV1Error(v1("signatures/signHash", sample, self.token), 400, "invalid_request",
                           "Missing (or invalid type) string parameter credentialID")
        r = v1("signatures/signHash", dict(sample, credentialID="demo-ec"), self.token)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(H.verify(self.ec_pub(), base64.b64decode(r.json["signatures"][0]), h))

    def test_wrong_otp_alone_is_invalid_otp(self):
        """The v1 error code of authorize on a PIN AND OTP credential when only a (wrong) OTP is sent."""
        h = H.b64(H.digest("otp only"))
        r = v1("credentials/authorize", {"credentialID": "v1-2fa", "numSignatures": 1, "hash": [h],
                                         "OTP": self.wrong_totp()}, self.token)
        self.assertV1Error(r, 400, "invalid_otp", "The OTP is invalid")
        # Both factors right: authorized (the counter did not lock anything).
        otp = H.fresh_totp(SVC.env["CSC_TOTP_SECRET"], SVC.used_otps)
        r = v1("credentials/authorize", {"credentialID": "v1-2fa", "numSignatures": 1, "hash": [h],
                                         "PIN": PIN_V1, "OTP": otp}, self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["SAD", "expiresIn"])

    def test_pin_locked_v1_text(self):
        """After max_failures wrong PINs (default 5) the v1 path answers "PIN locked", even for the right PIN."""
        h = H.b64(H.digest("lock"))
        body = {"credentialID": "v1-lock", "numSignatures": 1, "hash": [h]}
        for _ in range(5):
            self.assertV1Error(v1("credentials/authorize", dict(body, PIN="00000000"), self.token), 400, "invalid_pin",
                               "The PIN is invalid")
        self.assertV1Error(v1("credentials/authorize", dict(body, PIN=PIN_V1), self.token), 400, "invalid_request",
                           "PIN locked")

    def test_wrong_json_types_are_refused(self):
        """Types the v1 schema fixes: a PIN or OTP as a JSON number (leading zeros lost), a fractional or negative
        numSignatures, a hash element that is not a string. Clean v1 errors; nothing authorized."""
        h = H.b64(H.digest("types"))
        base = {"credentialID": "demo-ec", "numSignatures": 1, "hash": [h], "PIN": SVC.env["CSC_PIN"]}
        cases = [({"PIN": 12345678}, "Invalid parameter PIN"),
                 ({"OTP": 123456}, "Invalid parameter OTP"),
                 ({"numSignatures": 1.0}, "Missing (or invalid type) integer parameter numSignatures"),
                 ({"numSignatures": -1}, "Missing (or invalid type) integer parameter numSignatures"),
                 ({"numSignatures": "two"}, "Missing (or invalid type) integer parameter numSignatures"),
                 ({"numSignatures": "0"}, "Invalid value for parameter numSignatures"),
                 ({"hash": [42]}, "Invalid Base64 hash string parameter"),
                 ({"hash": []}, "Empty hash array")]
        for change, desc in cases:
            with self.subTest(change=change):
                self.assertV1Error(v1("credentials/authorize", dict(base, **change), self.token), 400,
                                   "invalid_request", desc)

    def test_missing_hash_names_the_v1_member(self):
        r = v1("credentials/authorize", {"credentialID": "demo-ec", "numSignatures": 1, "PIN": SVC.env["CSC_PIN"]},
               self.token)
        self.assertV1Error(r, 400, "invalid_request", "Missing (or invalid type) array parameter hash")
        r = v1("credentials/extendTransaction", {"credentialID": "demo-ec", "SAD": "x"}, self.token)
        self.assertV1Error(r, 400, "invalid_request", "Missing (or invalid type) array parameter hash")

    def test_send_otp_is_not_offered(self):
        """v1 credentials/sendOTP (online OTP) is defined but not offered: 501 with an error body, and info does
        not list it."""
        r = v1("credentials/sendOTP", {"credentialID": "v1-2fa", "clientData": "12345678"}, self.token)
        self.assertV1Error(r, 501, "not_implemented")
        self.assertNotIn("credentials/sendOTP", v1("info", {}).json["methods"])
