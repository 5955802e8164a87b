"""J6 and J9: key sizes and attributes in the HSM, PKCS#10 requests signed by the HSM key, certificates from an
external CA (import checks), and CRLs checked before every signature, reloaded without a restart."""
import base64
import os
import re
import signal
import subprocess
import time
import unittest

import harness as H

SVC = None
BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PIN_X = "13572468"
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
CA = None        # the external test CA (in trust_anchors)
ROGUE = None     # a CA nobody trusts
CRL_DIR = None


def run(*cmd, check=True, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, **kw)


class TestCA:
    """A small CA driven by `openssl ca` (index file, serials, CRLs) in its own folder."""

    def __init__(self, base, name):
        self.dir = os.path.join(base, name)
        os.makedirs(os.path.join(self.dir, "certs"))
        self.key, self.cert = os.path.join(self.dir, "ca.key"), os.path.join(self.dir, "ca.crt")
        self.index = os.path.join(self.dir, "index.txt")
        open(self.index, "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(self.dir, "crlnumber"), "w") as f:
            f.write("01\n")
        self.conf = os.path.join(self.dir, "ca.cnf")
        with open(self.conf, "w") as f:
            f.write("[ca]\ndefault_ca = test\n[test]\ndir = %s\ndatabase = $dir/index.txt\nserial = $dir/serial\n"
                    "crlnumber = $dir/crlnumber\nnew_certs_dir = $dir/certs\ncertificate = $dir/ca.crt\n"
                    "private_key = $dir/ca.key\ndefault_md = sha256\npolicy = any\nunique_subject = no\n"
                    "copy_extensions = none\nemail_in_dn = no\n"
                    "[any]\ncountryName = optional\norganizationName = optional\ncommonName = supplied\n"
                    "[sign]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,nonRepudiation\n"
                    "[tls]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,keyEncipherment\n"
                    "[inter]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n" % self.dir)
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-sha256",
            "-days", "3650", "-keyout", self.key, "-out", self.cert, "-subj", "/C=JP/O=Test CA/CN=%s" % name,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def sign(self, csr, out, start=None, end=None, ext="sign"):
        """Issue a certificate for a PEM request; start/end as YYYYMMDDHHMMSSZ (default: now .. +30 days)."""
        cmd = ["openssl", "ca", "-batch", "-config", self.conf, "-in", csr, "-out", out, "-notext",
               "-extensions", ext]
        cmd += ["-startdate", start] if start else []
        cmd += ["-enddate", end] if end else ["-days", "30"]
        run(*cmd)
        return out

    def serial(self, cert):
        return run("openssl", "x509", "-in", cert, "-noout", "-serial").stdout.strip().split("=")[1]

    def crl(self, out, revoked=(), days=1, last=None, next_=None):
        """A CRL listing (serial hex, reason) pairs; written through a temp file and rename (like an operator)."""
        lines = []
        for serial, reason in revoked:
            lines.append("R\t301231000000Z\t260101000000Z,%s\t%s\tunknown\t/CN=x\n" % (reason, serial))
        with open(self.index, "w") as f:
            f.writelines(lines)
        tmp = out + ".tmp"
        times = ["-crl_lastupdate", last, "-crl_nextupdate", next_] if next_ else ["-crldays", str(days)]
        run("openssl", "ca", "-gencrl", "-batch", "-config", self.conf, *times, "-out", tmp)
        os.replace(tmp, out)


def key_objects(kind="privkey", login=True, svc=None):
    """pkcs11-tool's listing of the token's objects of one kind, as a list of dicts (label, id, usage, access...)."""
    svc = svc or SVC
    env = dict(os.environ, SOFTHSM2_CONF=os.path.join(svc.dir, "softhsm", "softhsm2.conf"))
    with open(os.path.join(svc.dir, "secrets", "token.pin")) as f:
        pin = f.read().strip()
    cmd = ["pkcs11-tool", "--module", MODULE, "--token-label", "csc-demo", "--list-objects", "--type", kind]
    if login:
        cmd += ["--login", "--pin", pin]
    out = run(*cmd, env=env).stdout
    objs = []
    for block in re.split(r"\n(?=\S)", out.strip()):
        if not block.strip():
            continue
        o = {"head": block.splitlines()[0]}
        for line in block.splitlines()[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                o[k.strip().lower()] = v.strip()
        objs.append(o)
    return objs


def tlv(tag, body):
    n = len(body)
    head = bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8, n & 255])
    return bytes([tag]) + head + body


def public_key_pem(key_id):
    """The public key object with this CKA_ID (hex), as pkcs11-tool reports it, as PEM text."""
    der = os.path.join(SVC.tmp, "pub-%s.der" % key_id)
    pub = [o for o in key_objects("pubkey") if o.get("id") == key_id][0]
    if "ec_point" in pub:
        # pkcs11-tool 0.23 cannot export P-384/P-521 keys: SubjectPublicKeyInfo from CKA_EC_POINT and CKA_EC_PARAMS.
        point = bytes.fromhex(pub["ec_point"])[2:] if pub["ec_point"][2:4] != "81" else bytes.fromhex(pub["ec_point"])[3:]
        alg = tlv(0x30, tlv(0x06, bytes.fromhex("2a8648ce3d0201")) + bytes.fromhex(pub["ec_params"]))
        with open(der, "wb") as f:
            f.write(tlv(0x30, alg + tlv(0x03, b"\x00" + point)))
    else:
        env = dict(os.environ, SOFTHSM2_CONF=os.path.join(SVC.dir, "softhsm", "softhsm2.conf"))
        with open(os.path.join(SVC.dir, "secrets", "token.pin")) as f:
            pin = f.read().strip()
        run("pkcs11-tool", "--module", MODULE, "--token-label", "csc-demo", "--login", "--pin", pin, "--read-object",
            "--type", "pubkey", "--id", key_id, "-o", der, env=env)
    return run("openssl", "pkey", "-pubin", "-inform", "DER", "-in", der).stdout


def key_ids(label, svc=None):
    return [o["id"] for o in key_objects(svc=svc) if o.get("label") == label]


def setUpModule():
    global SVC, CA, ROGUE, CRL_DIR
    SVC = H.Service(BUILD)
    CA = TestCA(SVC.tmp, "ext-ca")
    ROGUE = TestCA(SVC.tmp, "rogue-ca")
    anchors = os.path.join(SVC.dir, "anchors.pem")
    with open(anchors, "w") as out:
        for path in (SVC.env["CSC_CA_CERT"], CA.cert):
            with open(path) as f:
                out.write(f.read())
    CRL_DIR = os.path.join(SVC.dir, "crl")
    os.makedirs(CRL_DIR)
    CA.crl(os.path.join(CRL_DIR, "ext-ca.crl"))
    with open(SVC.conf) as f:
        conf = f.read().replace("trust_anchors = ca/ca.crt", "trust_anchors = anchors.pem")
    with open(SVC.conf, "w") as f:
        f.write(conf + "crl_dir = crl\n")
    SVC.add_user("ext", H.pw("ext"))
    SVC.start()


def tearDownModule():
    SVC.stop_checked()


class Base(unittest.TestCase):
    def assertError(self, r, status, error, desc_part=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json["error"], error, r)
        if desc_part is not None:
            self.assertIn(desc_part, r.json["error_description"], r)

    def token(self):
        return SVC.token("ext", H.pw("ext"))

    def sign(self, t, cid, alg=H.ECDSA_SHA256, text="document"):
        h = H.digest(text)
        r = SVC.authorize(t, cid, [h], pin=PIN_X)
        if r.status != 200:
            return r, h
        return SVC.post("signatures/signHash", {"credentialID": cid, "SAD": r.json["SAD"], "hashes": [H.b64(h)],
                                                "signAlgo": alg}, t), h

    def create_csr(self, cid, key="p256", extra=()):
        csr = os.path.join(SVC.tmp, cid + ".csr")
        SVC.create_credential("--id", cid, "--user", "ext", "--key", key, "--auth", "PIN",
                              "--scal", "2", "--multisign", "5", "--csr", csr, "--cn", "Ext " + cid, "--org",
                              "Ext Org", "--country", "JP", *extra, pin=PIN_X)
        self.assertIn("pending", self.list_line(cid))
        return csr

    def issued(self, cid, csr, **kw):
        return CA.sign(csr, os.path.join(SVC.tmp, cid + ".crt"), **kw)

    def import_(self, cid, cert, *extra, ok=True):
        r = SVC.admin("credential", "import", cid, cert, *extra, check=False)
        self.assertEqual(r.returncode == 0, ok, r.stderr)
        return r

    def list_line(self, cid):
        return [l for l in SVC.admin("list").stdout.splitlines() if "credential %s " % cid in l][0]

    def audit(self, cid, event="cert"):
        return SVC.admin("audit", "query", "--credential", cid, "--event", event).stdout


class TestKeys(Base):
    """J6: every key size; the private key's attributes as the token reports them; each signs."""

    def assert_private_key_attributes(self, priv):
        # One place for the template's promises (a backup switch may change extractability: adjust here).
        self.assertEqual(priv["usage"], "sign", priv)                  # CKA_SIGN only: no decrypt/unwrap/derive
        access = [a.strip() for a in priv["access"].split(",")]
        self.assertIn("sensitive", access, priv)                       # CKA_SENSITIVE
        self.assertIn("never extractable", access, priv)               # CKA_EXTRACTABLE false since generation
        self.assertIn("local", access, priv)                           # generated in the token

    def test_every_size(self):
        sizes = [("rsa2048", "RSA 2048 bits", H.RSA_SHA256, None), ("rsa3072", "RSA 3072 bits", H.RSA_SHA256, None),
                 ("rsa4096", "RSA 4096 bits", H.RSA_SHA256, None), ("p256", "EC", H.ECDSA_SHA256, "06082a8648ce3d030107"),
                 ("p384", "EC", H.ECDSA_SHA256, "06052b81040022"), ("p521", "EC", H.ECDSA_SHA256, "06052b81040023")]
        t = None
        for key, pub_head, alg, params in sizes:
            cid = "size-" + key
            SVC.create_credential("--id", cid, "--user", "ext", "--key", key, "--auth", "PIN",
                      "--scal", "2", "--multisign", "5", pin=PIN_X)
            privs = [o for o in key_objects() if o.get("label") == cid]
            self.assertEqual(len(privs), 1, privs)
            self.assert_private_key_attributes(privs[0])
            pubs = [o for o in key_objects("pubkey") if o.get("id") == privs[0]["id"]]
            self.assertEqual(len(pubs), 1)
            self.assertIn(pub_head, pubs[0]["head"])
            if params is not None:
                self.assertEqual(pubs[0]["ec_params"], params)
            # CKA_PRIVATE and CKA_TOKEN: invisible without login, and still there for another process.
            self.assertNotIn(cid, [o.get("label") for o in key_objects(login=False)])
            t = t or self.token()
            r, h = self.sign(t, cid, alg)
            self.assertEqual(r.status, 200, r)
            self.assertTrue(H.verify(SVC.cert_pem(t, cid), base64.b64decode(r.json["signatures"][0]), h), key)
            info = SVC.post("credentials/info", {"credentialID": cid}, t).json
            bits = {"p256": 256, "p384": 384, "p521": 521}.get(key) or int(key[3:])
            self.assertEqual(info["key"]["len"], bits)

    def test_unknown_key_refused(self):
        r = SVC.admin("credential", "create", "--user", "ext", "--key", "rsa1024", "--auth", "PIN", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown key type", r.stderr)


class TestRequests(Base):
    """J6: the CSR is signed by the HSM key and names it; the pending credential is invisible and cannot sign."""

    def test_csr_verifies_and_names_the_hsm_key(self):
        for key in ("p384", "p521", "rsa3072"):
            cid = "csr-" + key
            csr = self.create_csr(cid, key)
            v = run("openssl", "req", "-in", csr, "-verify", "-noout")
            self.assertIn("verify OK", v.stdout + v.stderr)
            subj = run("openssl", "req", "-in", csr, "-noout", "-subject", "-nameopt", "RFC2253").stdout
            self.assertIn("CN=Ext %s,O=Ext Org,C=JP" % cid, subj)
            pub = run("openssl", "req", "-in", csr, "-noout", "-pubkey").stdout
            ids = key_ids(cid)
            self.assertEqual(len(ids), 1)
            self.assertEqual(pub, public_key_pem(ids[0]))

    def test_pending_is_hidden_and_cannot_sign(self):
        cid = "csr-pending"
        self.create_csr(cid)
        SVC.create_credential("--id", "csr-sibling", "--user", "ext", "--key", "p256", "--auth", "PIN",
                  pin=PIN_X)
        t = self.token()
        ids = SVC.post("credentials/list", {}, t).json["credentialIDs"]
        self.assertIn("csr-sibling", ids)
        self.assertNotIn(cid, ids)
        v1 = SVC.request("POST", "/csc/v1/credentials/list", b"{}", {"Authorization": "Bearer " + t,
                                                                      "Content-Type": "application/json"})
        self.assertEqual(v1.status, 200, v1)
        self.assertIn("csr-sibling", v1.json["credentialIDs"])
        self.assertNotIn(cid, v1.json["credentialIDs"])
        self.assertError(SVC.post("credentials/info", {"credentialID": cid}, t), 400, "invalid_request",
                         "Invalid parameter credentialID")
        r, _ = self.sign(t, cid)
        self.assertError(r, 400, "invalid_request", "Invalid parameter credentialID")
        self.assertIn("pending", SVC.admin("list").stdout)
        r = SVC.admin("credential", "enable", cid, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("waits for its certificate", r.stderr)

    def test_subject_validated(self):
        for extra, msg in ((["--country", "jp"], "country"), (["--org", ""], "subject O")):
            args = ["credential", "create", "--user", "ext", "--key", "p256", "--auth", "PIN", "--csr",
                    os.path.join(SVC.tmp, "bad.csr"), "--org", "O", "--country", "JP"]
            i = args.index(extra[0])
            args[i + 1] = extra[1]
            r = SVC.admin(*args, check=False)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn(msg, r.stderr)


class TestImport(Base):
    """J6: only a certificate for the HSM key, valid now, fit for signing, chaining to a trust anchor."""

    def test_good_certificate_signs(self):
        cid = "imp-good"
        cert = self.issued(cid, self.create_csr(cid))
        self.assertIn("imported", self.import_(cid, cert).stdout)
        t = self.token()
        info = SVC.post("credentials/info", {"credentialID": cid, "certInfo": True, "certificates": "chain"}, t).json
        self.assertEqual(info["key"]["status"], "enabled")
        self.assertEqual(info["cert"]["status"], "valid")
        self.assertIn("CN=ext-ca", info["cert"]["issuerDN"])
        self.assertEqual(len(info["cert"]["certificates"]), 2)  # end entity and the anchor
        r, h = self.sign(t, cid)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(H.verify(SVC.cert_pem(t, cid), base64.b64decode(r.json["signatures"][0]), h))
        log = self.audit(cid)
        self.assertIn("credential.import", log)
        self.assertIn(" ok ", log)
        # A new certificate for the same key (re-issued by the CA) replaces the old one; the key stays.
        before = info["cert"]["serialNumber"]
        ids = key_ids(cid)
        self.import_(cid, CA.sign(os.path.join(SVC.tmp, cid + ".csr"), os.path.join(SVC.tmp, cid + "-re.crt")))
        info = SVC.post("credentials/info", {"credentialID": cid, "certInfo": True}, t).json
        self.assertNotEqual(info["cert"]["serialNumber"], before)
        self.assertEqual(key_ids(cid), ids)
        self.assertEqual(self.sign(t, cid)[0].status, 200)

    def test_chain_through_an_intermediate(self):
        cid = "imp-inter"
        csr = self.create_csr(cid)
        inter = TestCA(SVC.tmp, "inter-ca")
        inter_csr = os.path.join(SVC.tmp, "inter.csr")
        run("openssl", "req", "-new", "-key", inter.key, "-subj", "/C=JP/O=Test CA/CN=inter-ca", "-out", inter_csr)
        CA.sign(inter_csr, inter.cert, ext="inter")
        cert = inter.sign(csr, os.path.join(SVC.tmp, cid + ".crt"))
        r = self.import_(cid, cert, ok=False)
        self.assertIn("trust anchor", r.stderr)
        self.import_(cid, cert, "--chain", inter.cert)
        t = self.token()
        info = SVC.post("credentials/info", {"credentialID": cid, "certificates": "chain"}, t).json
        self.assertEqual(len(info["cert"]["certificates"]), 3)
        self.assertEqual(self.sign(t, cid)[0].status, 200)

    def test_mismatched_key_refused(self):
        cid = "imp-mismatch"
        self.create_csr(cid)
        other = self.create_csr("imp-mismatch-other")
        cert = self.issued("imp-mismatch-other", other)
        r = self.import_(cid, cert, ok=False)
        self.assertIn("does not match", r.stderr)
        self.assertIn("refused", self.audit(cid))
        self.assertIn("denied", self.audit(cid))

    def test_untrusted_ca_refused(self):
        cid = "imp-rogue"
        cert = ROGUE.sign(self.create_csr(cid), os.path.join(SVC.tmp, cid + ".crt"))
        r = self.import_(cid, cert, ok=False)
        self.assertIn("trust anchor", r.stderr)
        r = self.import_(cid, cert, "--chain", ROGUE.cert, ok=False)  # a self-signed chain is no anchor
        self.assertIn("trust anchor", r.stderr)

    def test_expired_and_not_yet_valid_refused(self):
        cid = "imp-dates"
        csr = self.create_csr(cid)
        old = self.issued(cid + "-old", csr, start="20200101000000Z", end="20210101000000Z")
        self.assertIn("expired", self.import_(cid, old, ok=False).stderr)
        future = self.issued(cid + "-future", csr, start="20400101000000Z", end="20410101000000Z")
        self.assertIn("not valid yet", self.import_(cid, future, ok=False).stderr)
        self.assertIn("pending", SVC.admin("list").stdout)

    def test_unfit_key_usage_refused(self):
        cid = "imp-tls"
        cert = self.issued(cid, self.create_csr(cid), ext="tls")
        self.assertIn("not fit for signing", self.import_(cid, cert, ok=False).stderr)

    def test_destroyed_key_cannot_sign_or_import(self):
        cid = "imp-destroy"
        csr = self.create_csr(cid)
        cert = self.issued(cid, csr)
        self.import_(cid, cert)
        t = self.token()
        SVC.admin("credential", "destroy", cid)
        self.assertEqual(key_ids(cid), [])
        r, _ = self.sign(t, cid)
        self.assertError(r, 400, "invalid_request", "disabled")
        self.assertIn("destroyed", self.import_(cid, cert, ok=False).stderr)

    def test_renewal_by_csr_destroys_the_old_key_on_import(self):
        cid = "imp-renew"
        self.import_(cid, self.issued(cid, self.create_csr(cid)))
        old_ids = key_ids(cid)
        self.assertEqual(len(old_ids), 1)
        csr2 = os.path.join(SVC.tmp, cid + "-2.csr")
        SVC.admin("credential", "renew", cid, "--csr", csr2)
        ids = key_ids(cid)
        self.assertEqual(len(ids), 2)
        new_id = [i for i in ids if i not in old_ids][0]
        self.assertEqual(run("openssl", "req", "-in", csr2, "-noout", "-pubkey").stdout, public_key_pem(new_id))
        self.assertIn("renewal key pending", self.list_line(cid))
        t = self.token()
        self.assertEqual(self.sign(t, cid)[0].status, 200)  # the old key signs until the import
        # The old certificate does not fit the new key.
        self.assertIn("does not match", self.import_(cid, os.path.join(SVC.tmp, cid + ".crt"), ok=False).stderr)
        self.import_(cid, CA.sign(csr2, os.path.join(SVC.tmp, cid + "-2.crt")))
        self.assertEqual(key_ids(cid), [new_id])
        self.assertNotIn("renewal key pending", self.list_line(cid))
        r, h = self.sign(t, cid, text="after renewal")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(H.verify(SVC.cert_pem(t, cid), base64.b64decode(r.json["signatures"][0]), h))
        self.assertIn("renewal: old key destroyed", self.audit(cid))

    def test_demo_renewal_supersedes_a_pending_request(self):
        cid = "imp-renew-demo"
        SVC.create_credential("--id", cid, "--user", "ext", "--key", "p256", "--auth", "PIN",
                  pin=PIN_X)
        SVC.admin("credential", "renew", cid, "--csr", os.path.join(SVC.tmp, cid + ".csr"))
        self.assertEqual(len(key_ids(cid)), 2)
        SVC.admin("credential", "renew", cid)  # the demo CA's renewal: both earlier keys are destroyed
        self.assertEqual(len(key_ids(cid)), 1)
        self.assertEqual(self.sign(self.token(), cid)[0].status, 200)
        r = SVC.admin("credential", "renew", "csr-never", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.create_csr("imp-renew-pending")
        r = SVC.admin("credential", "renew", "imp-renew-pending", check=False)
        self.assertIn("no certificate yet", r.stderr)
        r = SVC.admin("credential", "renew", "imp-renew-pending", "--csr", os.path.join(SVC.tmp, "x.csr"),
                      check=False)
        self.assertIn("no certificate yet", r.stderr)

    def test_demo_ca_still_default(self):
        SVC.create_credential("--id", "imp-demo", "--user", "ext", "--key", "p256", "--auth", "PIN",
                  "--scal", "2", "--multisign", "5", pin=PIN_X)
        t = self.token()
        info = SVC.post("credentials/info", {"credentialID": "imp-demo", "certInfo": True}, t).json
        self.assertIn("CSC Demo", info["cert"]["issuerDN"])
        self.assertEqual(self.sign(t, "imp-demo")[0].status, 200)


class TestRevocation(Base):
    """J9: the CRL is checked before every signature and reloaded when its file changes."""

    def wait_for(self, cond, what):
        deadline = time.time() + 20
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.25)
        self.fail("timed out waiting for " + what)

    def status(self, t, cid):
        return SVC.post("credentials/info", {"credentialID": cid}, t).json["cert"]["status"]

    def test_revoke_hold_release(self):
        cid = "rev-1"
        cert = self.issued(cid, self.create_csr(cid))
        self.import_(cid, cert)
        serial = CA.serial(cert)
        t = self.token()
        self.assertEqual(self.sign(t, cid)[0].status, 200)
        crl = os.path.join(CRL_DIR, "ext-ca.crl")
        # certificateHold: suspended, picked up without a restart.
        CA.crl(crl, [(serial, "certificateHold")])
        self.wait_for(lambda: self.status(t, cid) == "suspended", "suspended")
        info = SVC.post("credentials/info", {"credentialID": cid}, t).json
        self.assertEqual(info["key"]["status"], "disabled")
        self.assertNotIn(cid, SVC.post("credentials/list", {"onlyValid": True}, t).json["credentialIDs"])
        r, _ = self.sign(t, cid)
        self.assertError(r, 400, "invalid_request", "is suspended")
        # signDoc takes the same check before the HSM is asked.
        h = H.digest("document for signDoc")
        sad = SVC.authorize(t, cid, [h], pin=PIN_X)
        self.assertEqual(sad.status, 200, sad)
        r = SVC.post("signatures/signDoc", {"credentialID": cid, "SAD": sad.json["SAD"],
                                            "documentDigests": [{"hashes": [H.b64(h)],
                                                                 "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                                                                 "signature_format": "C",
                                                                 "conformance_level": "Ades-B-B",
                                                                 "signAlgo": H.ECDSA_SHA256}]}, t)
        self.assertError(r, 400, "invalid_request", "is suspended")
        # A hold is no revocation: the credential and its key stay.
        self.assertNotIn("destroyed", self.list_line(cid))
        self.assertEqual(len(key_ids(cid)), 1)
        # Released (the entry removed from the CRL): signs again.
        CA.crl(crl, [])
        self.wait_for(lambda: self.status(t, cid) == "valid", "valid again")
        # csc-sam reloads the folder on its own (once a second, like csc-server): it may follow a moment later
        self.wait_for(lambda: self.sign(t, cid)[0].status == 200, "signs again")
        log = SVC.admin("audit", "query", "--credential", cid, "--event", "sign").stdout
        self.assertIn("denied", log)
        self.assertIn("certificate suspended (certificateHold)", log)

    def test_revocation_destroys_the_key_in_csc_sam(self):
        """J7: a revocation seen in a CRL ends the credential as credential revoke does: csc-sam's CRL sweep marks it
        destroyed (it never signs again) and files its key's destruction as a job; csc-sam destroys the key at once, unasked, audited, and drops the job; csc-admin credential
        destroy-pending (the manual fallback) then has nothing to do; releasing the CRL entry later brings nothing
        back."""
        cid = "rev-kill"
        cert = self.issued(cid, self.create_csr(cid))
        self.import_(cid, cert)
        t = self.token()
        self.assertEqual(self.sign(t, cid)[0].status, 200)
        self.assertEqual(len(key_ids(cid)), 1)
        crl = os.path.join(CRL_DIR, "ext-ca.crl")
        CA.crl(crl, [(CA.serial(cert), "keyCompromise")])
        self.wait_for(lambda: "destroyed" in self.list_line(cid), "the credential destroyed")
        # csc-server's own CRL store (its answers) follows the folder once a second too: it may follow a moment later
        self.wait_for(lambda: self.status(t, cid) == "revoked", "csc-server to see the revocation")
        r, _ = self.sign(t, cid)
        self.assertError(r, 400, "invalid_request", "is disabled")
        log = SVC.admin("audit", "query", "--credential", cid, "--event", "admin").stdout
        self.assertIn("operator=csc-sam action=credential.destroy reason=certificate revoked (seen in a CRL: "
                      "keyCompromise); key destruction filed", log)
        self.wait_for(lambda: "credential %s: certificate revoked (keyCompromise); credential destroyed, its key's "
                      "destruction filed" % cid in SVC.server_stderr(), "the sweep's report")
        # No csc-admin command: csc-sam destroys the key and drops the job by itself.
        self.wait_for(lambda: key_ids(cid) == [], "csc-sam to destroy the key")
        self.wait_for(lambda: "credential revoke %s" % cid not in SVC.admin("approvals").stdout, "the job dropped")
        self.assertNotIn("key destruction pending", self.list_line(cid))
        self.assertIn("csc-sam: credential %s: key destroyed (job " % cid, SVC.server_stderr())
        log = SVC.admin("audit", "query", "--credential", cid, "--event", "admin").stdout
        self.assertIn("operator=csc-sam,requester=csc-sam action=credential.destroy reason=certificate revoked",
                      log)
        log = SVC.admin("audit", "query", "--event", "operator").stdout
        self.assertRegex(log, r"operator=csc-sam requester=csc-sam action=job\.done id=[0-9a-f]+ "
                              r"command=credential revoke %s" % cid)
        # The manual fallback: only a key-admin runs it (an auditor is refused, audited), and it has nothing to do.
        secret = SVC.add_operator("rev-aud", "auditor", "password-rev-aud")
        aud = SVC.op_login("rev-aud", "password-rev-aud", secret)
        r = SVC.admin_as(aud, "credential", "destroy-pending")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("lacks the role key-admin", r.stderr)
        self.assertIn("action=credential destroy-pending refused=needs-role-key-admin",
                      SVC.admin("audit", "query", "--event", "operator").stdout)
        r = SVC.admin("credential", "destroy-pending")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(cid, r.stdout)
        # csc-admin cannot bring it back, and a release in the CRL changes nothing.
        self.assertNotEqual(SVC.admin("credential", "enable", cid, check=False).returncode, 0)
        CA.crl(crl, [])
        self.wait_for(lambda: self.status(t, cid) == "valid", "the CRL entry released")
        self.assertIn("destroyed", self.list_line(cid))
        r, _ = self.sign(t, cid)
        self.assertError(r, 400, "invalid_request", "is disabled")

    def test_csc_sam_sweeps_while_csc_server_is_stopped(self):
        """The CRL sweep is csc-sam's periodic work, not csc-server's (on a shared database the front end's role
        may not write credentials, approvals or audit records): with csc-server stopped (SIGSTOP: none of its
        threads runs), a revocation published in crl_dir still ends the credential within a period of csc-sam's
        crl-watch task, audited as csc-sam, and its key is destroyed."""
        cid = "rev-sam"
        cert = self.issued(cid, self.create_csr(cid))
        self.import_(cid, cert)
        self.assertEqual(len(key_ids(cid)), 1)
        crl = os.path.join(CRL_DIR, "ext-ca.crl")
        SVC.proc.send_signal(signal.SIGSTOP)
        try:
            CA.crl(crl, [(CA.serial(cert), "keyCompromise")])
            self.wait_for(lambda: "destroyed" in self.list_line(cid), "csc-sam to end the credential")
            self.wait_for(lambda: key_ids(cid) == [], "csc-sam to destroy the key")
            log = SVC.admin("audit", "query", "--credential", cid, "--event", "admin").stdout
            self.assertIn("operator=csc-sam action=credential.destroy reason=certificate revoked (seen in a CRL: "
                          "keyCompromise); key destruction filed", log)
            self.assertNotIn("operator=csc-server", log)
        finally:
            SVC.proc.send_signal(signal.SIGCONT)
        CA.crl(crl, [])
        t = self.token()
        self.wait_for(lambda: self.status(t, cid) == "valid", "the CRL entry released")
        self.assertIn("destroyed", self.list_line(cid))

    def test_stale_crl_fails_closed(self):
        cid = "rev-stale"
        self.import_(cid, self.issued(cid, self.create_csr(cid)))
        t = self.token()
        crl = os.path.join(CRL_DIR, "ext-ca.crl")
        CA.crl(crl, [], last="20250101000000Z", next_="20250102000000Z")  # nextUpdate in the past
        self.wait_for(lambda: SVC.post("credentials/info", {"credentialID": cid}, t).json["key"]["status"] ==
                      "disabled", "key disabled")
        r, _ = self.sign(t, cid)
        self.assertError(r, 400, "invalid_request", "cannot be confirmed")
        self.assertIn("past its nextUpdate", SVC.admin("audit", "query", "--credential", cid, "--event",
                                                       "sign").stdout)
        CA.crl(crl, [])
        self.wait_for(lambda: SVC.post("credentials/info", {"credentialID": cid}, t).json["key"]["status"] ==
                      "enabled", "key enabled")
        # credentials/info is csc-server's view of the CRLs and the signature csc-sam's: each process reloads the
        # changed file on its own watch, so the signature may follow the view by one poll (seen under ASan + load).
        self.wait_for(lambda: self.sign(t, cid)[0].status == 200, "a signature once csc-sam has the fresh CRL")

    def test_bad_crl_is_refused_and_the_old_one_kept(self):
        cid = "rev-bad"
        cert = self.issued(cid, self.create_csr(cid))
        self.import_(cid, cert)
        serial = CA.serial(cert)
        t = self.token()
        good = os.path.join(CRL_DIR, "ext-ca.crl")
        CA.crl(good, [(serial, "keyCompromise")])
        self.wait_for(lambda: self.status(t, cid) == "revoked", "revoked")
        # The same CRL with one signature byte changed: refused, the revocation stays in force.
        der = bytearray(subprocess.run(["openssl", "crl", "-in", good, "-outform", "DER"], capture_output=True,
                                       check=True).stdout)
        der[-3] ^= 0x01
        with open(good + ".tmp", "wb") as f:
            f.write(bytes(der))
        os.replace(good + ".tmp", good)
        self.wait_for(lambda: "ext-ca.crl: refused: the signature does not verify" in SVC.server_stderr(),
                      "the error log")
        self.assertEqual(self.status(t, cid), "revoked")
        # A CRL signed by a CA that is no anchor is refused too.
        ROGUE.crl(os.path.join(CRL_DIR, "rogue.crl"), [])
        self.wait_for(lambda: "rogue.crl: refused: its issuer is not among the trust anchors" in SVC.server_stderr(),
                      "the error log")
        os.remove(os.path.join(CRL_DIR, "rogue.crl"))
        CA.crl(good, [])
        self.wait_for(lambda: self.status(t, cid) == "valid", "valid at the end")


class TestRevocationTwoPerson(Base):
    """J7 with two_person naming revoke: csc-sam's CRL sweep marks a credential whose certificate a CRL revokes
    destroyed at once, and asks for the key's destruction; csc-sam does not destroy it: an operator's approval does."""

    def test_crl_revocation_queues_key_destruction(self):
        svc = H.Service(BUILD)
        crl_dir = os.path.join(svc.dir, "crl")
        os.makedirs(crl_dir)
        with open(os.path.join(svc.dir, "anchors.pem"), "w") as out, open(CA.cert) as f:
            out.write(f.read())
        CA.crl(os.path.join(crl_dir, "ext-ca.crl"))
        with open(svc.conf) as f:
            conf = f.read().replace("trust_anchors = ca/ca.crt", "trust_anchors = anchors.pem")
        with open(svc.conf, "w") as f:
            f.write(conf + "crl_dir = crl\ntwo_person = revoke\n")
        svc.add_user("ext2", H.pw("ext2"))
        cid = "rev-2p"
        csr = os.path.join(svc.tmp, cid + ".csr")
        svc.create_credential("--id", cid, "--user", "ext2", "--key", "p256", "--auth", "PIN",
                  "--csr", csr, "--cn", "Ext " + cid, "--org", "Ext Org", "--country", "JP", pin=PIN_X)
        cert = CA.sign(csr, os.path.join(svc.tmp, cid + ".crt"))
        svc.admin("credential", "import", cid, cert)
        self.assertEqual(len(key_ids(cid, svc)), 1)
        svc.start()
        try:
            CA.crl(os.path.join(crl_dir, "ext-ca.crl"), [(CA.serial(cert), "cessationOfOperation")])
            deadline = time.time() + 20
            while "destroyed" not in svc.admin("list").stdout and time.time() < deadline:
                time.sleep(0.25)
            line = [l for l in svc.admin("list").stdout.splitlines() if "credential %s " % cid in l][0]
            self.assertIn("destroyed", line)
            t = svc.token("ext2", H.pw("ext2"))
            r = svc.authorize(t, cid, [H.digest("x")], pin=PIN_X)
            self.assertError(r, 400, "invalid_request", "is disabled")
            # The key waits for an operator, also for csc-sam (its key-jobs task runs every second, but no request
            # for a second operator); the request is the sweep's (csc-sam's).
            time.sleep(2.5)
            self.assertEqual(len(key_ids(cid, svc)), 1)
            pending = [l for l in svc.admin("approvals").stdout.splitlines() if "credential revoke %s" % cid in l]
            self.assertEqual(len(pending), 1, pending)
            self.assertIn("requester=csc-sam", pending[0])
            self.assertIn("waits for a second operator: csc-admin approve", svc.server_stderr())
            log = svc.admin("audit", "query", "--credential", cid, "--event", "admin").stdout
            self.assertIn("key destruction held for a two-person approval", log)
            self.assertIn("key destruction waits for approval", line)
            rid = pending[0].split()[1]
            # destroy-pending runs no request that waits for a second operator: it names it.
            r = svc.admin("credential", "destroy-pending")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("credential %s: key destruction waits for a second operator: csc-admin approve %s"
                          % (cid, rid), r.stdout)
            self.assertEqual(len(key_ids(cid, svc)), 1)
            r = svc.admin("approve", rid)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(key_ids(cid, svc), [])
            self.assertNotIn("credential revoke %s" % cid, svc.admin("approvals").stdout)
        finally:
            self.assertEqual(svc.stop(), 0)


class TestProduction(Base):
    """J13 for trust_anchors: the demo CA is no anchor in production (unless allow_test_components)."""

    def test_demo_anchor_refused_in_production(self):
        svc = H.Service(BUILD)
        with open(svc.conf) as f:
            conf = f.read().replace("environment = test", "environment = production")
        conf = "\n".join(l for l in conf.splitlines() if not l.startswith(("ca_cert", "ca_key"))) + "\n"
        with open(svc.conf, "w") as f:
            f.write(conf)
        # (csc-admin's own commands check it; those of csc-sam's, such as user add, meet csc-sam's own checks,
        # which refuse SoftHSM here first)
        out = svc.admin("list", check=False)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("trust_anchors: the demo CA is refused in production", out.stderr)
        with open(svc.conf, "w") as f:
            f.write(conf.replace("trust_anchors = ca/ca.crt", "trust_anchors = %s" % CA.cert))
        out = svc.admin("list", check=False)
        self.assertEqual(out.returncode, 0, out.stderr)


if __name__ == "__main__":
    unittest.main()
