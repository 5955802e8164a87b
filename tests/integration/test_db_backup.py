"""csc-admin db backup / db restore (issue 15, JIPDEC 2.1.3(13)): a restore drill and the refusals.

The drill: a backup taken while clients sign, restored into a fresh folder (the file checked whole, audit verify on
the result, the signed heads checked with the exported audit key), then `csc-admin audit verify` and a server on the
restored folder, which serves a signature. The restored log is a prefix of the live one: its head (seq and hash) is
a record of the live log. A truncated or altered file, a folder that is not empty and a PostgreSQL destination are
refused before anything is written; the backup is the auditor's.
"""
import hashlib
import json
import os
import re
import struct
import subprocess
import threading
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PIN = "24681357"
CRED = "bk-ec"
SVC = None
BACKUP = None   # the drill's backup file (the refusal tests alter copies of it)
AUDIT_KEY = None


def setUpModule():
    global SVC, AUDIT_KEY
    SVC = H.Service(BUILD)
    SVC.create_credential("--id", CRED, "--user", SVC.env["CSC_USER"], "--key", "p256", "--auth", "PIN",
                          "--scal", "1", "--multisign", "1000", pin=PIN)
    SVC.start()
    AUDIT_KEY = os.path.join(SVC.tmp, "audit.pem")
    SVC.admin("audit", "export-key", AUDIT_KEY)


def tearDownModule():
    if SVC is not None:
        SVC.stop_checked()


def header_of(path):
    """The header's key=value lines of a backup file, as a dict."""
    with open(path, "rb") as f:
        pre = f.read(12)
        assert pre[:8] == b"CSCDBBK1", pre
        (hlen,) = struct.unpack(">H", pre[10:12])
        text = f.read(hlen).decode("ascii")
    return dict(line.split("=", 1) for line in text.splitlines())


def layout(body):
    """(offset of the SHA-256, the signed text, the DER signature) of a backup file's bytes."""
    (hlen,) = struct.unpack(">H", body[10:12])
    (dlen,) = struct.unpack(">Q", body[12 + hlen:20 + hlen])
    at = 20 + hlen + dlen
    (tlen,) = struct.unpack(">H", body[at + 32:at + 34])
    text = body[at + 34:at + 34 + tlen].decode("ascii")
    (slen,) = struct.unpack(">H", body[at + 34 + tlen:at + 36 + tlen])
    sig = body[at + 36 + tlen:]
    assert len(sig) == slen, (len(sig), slen)
    return at, text, sig


def restore(path, target, *extra):
    return SVC.admin_as(None, "db", "restore", path, "--db", "lmdb:" + target, *extra)


class Signer(threading.Thread):
    """Signs a fresh digest per request with one SAD until told to stop; counts the signatures."""

    def __init__(self, token, sad, name):
        super().__init__(daemon=True)
        self.token, self.sad, self.name = token, sad, name
        self.stop = threading.Event()
        self.ok, self.bad = 0, []

    def run(self):
        i = 0
        while not self.stop.is_set():
            d = H.b64(H.digest("%s %d" % (self.name, i)))
            i += 1
            r = SVC.post("signatures/signHash", {"credentialID": CRED, "SAD": self.sad, "hashes": [d],
                                                 "signAlgo": H.ECDSA_SHA256}, self.token)
            if r.status == 200:
                self.ok += 1
            else:
                self.bad.append(r)
                return


class TestDbBackup(unittest.TestCase):
    def test_1_drill(self):
        global BACKUP
        # csc-sam signs the head again at the backup's start, but under load the head may move on five times
        # running while it signs (sam_audit_sign_head gives up): then the copy holds the newest head signed before.
        r = SVC.admin("audit", "sign-head")
        first = int(re.search(r"signed at seq (\d+)", r.stdout).group(1))
        token = SVC.token()
        signers = []
        for k in range(2):
            r = SVC.authorize(token, CRED, [], num=400, pin=PIN)
            self.assertEqual(r.status, 200, r)
            signers.append(Signer(token, r.json["SAD"], "load %d" % k))
        for s in signers:
            s.start()
        H.wait_until(lambda: sum(s.ok for s in signers) >= 20, "signatures before the backup")
        BACKUP = os.path.join(SVC.tmp, "db.backup")
        r = SVC.admin("db", "backup", BACKUP)
        before = sum(s.ok for s in signers)
        H.wait_until(lambda: sum(s.ok for s in signers) >= before + 20, "signatures after the backup")
        for s in signers:
            s.stop.set()
        for s in signers:
            s.join(60)
            self.assertEqual(s.bad, [], "signing failed during the backup")
        m = re.search(r"audit head seq (\d+), signed head seq (\d+), (\d+) bytes of data, sha256 ([0-9a-f]{64})",
                      r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertEqual(os.stat(BACKUP).st_mode & 0o777, 0o600)
        hdr = header_of(BACKUP)
        self.assertEqual(hdr["backend"], "lmdb")
        self.assertEqual(int(hdr["audit_seq"]), int(m.group(1)))
        # csc-sam signed the head just before the copy: the copy holds it
        self.assertGreaterEqual(int(hdr["head_seq"]), first, (r.stdout, r.stderr, hdr))
        self.assertLessEqual(int(hdr["head_seq"]), int(hdr["audit_seq"]))
        self.assertRegex(hdr["head_sig"], r"^[0-9a-f]{100,}$")
        with open(BACKUP, "rb") as f:
            body = f.read()
        at, text, sig = layout(body)
        self.assertEqual(hashlib.sha256(body[:at]).digest(), body[at:at + 32])
        self.assertEqual(body[at:at + 32].hex(), m.group(4))
        # the audit key's signature of that SHA-256, csc-sam's text, checked here with openssl
        self.assertRegex(text, r"^csc-db-backup v1 sha256=%s time_ms=\d+ operator=%s$"
                         % (m.group(4), SVC.env["CSC_OPERATOR"]))
        for name, data in (("text", text.encode()), ("sig.der", sig)):
            with open(os.path.join(SVC.tmp, name), "wb") as f:
                f.write(data)
        o = subprocess.run(["openssl", "dgst", "-sha256", "-verify", AUDIT_KEY, "-signature",
                            os.path.join(SVC.tmp, "sig.der"), os.path.join(SVC.tmp, "text")],
                           capture_output=True, text=True)
        self.assertEqual(o.returncode, 0, o.stdout + o.stderr)

        # The live log holds the copy's head: the copy is one snapshot of it. The backup's own record names the file.
        q = SVC.admin("audit", "query", "--json")
        live = [json.loads(line) for line in q.stdout.splitlines()]
        at = [rec for rec in live if rec["seq"] == int(hdr["audit_seq"])]
        self.assertEqual(len(at), 1)
        self.assertEqual(at[0]["hash"], hdr["audit_hash"])
        rec = [rec for rec in live if "action=db.backup " in rec.get("detail", "")]
        self.assertEqual(len(rec), 1, rec)
        self.assertIn("sha256=" + m.group(4), rec[0]["detail"])
        signed = [rec for rec in live if "action=db.backup.sign sha256=" + m.group(4) in rec.get("detail", "")]
        self.assertEqual(len(signed), 1, live[-5:])

        # Restore into a folder that does not exist yet, the signed heads checked with the exported key.
        target = os.path.join(SVC.tmp, "restored")
        r = restore(BACKUP, target, "--key", AUDIT_KEY)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("intact (sha256 %s)" % m.group(4), r.stdout)
        self.assertIn("signed by the audit key: csc-db-backup v1", r.stdout)
        self.assertIn("restored into lmdb:" + target, r.stdout)
        self.assertEqual(sorted(os.listdir(target)), ["data.mdb", "lock.mdb"])

        # A server on the restored folder: audit verify passes there, and it signs.
        self.assertEqual(SVC.stop(), 0)
        with open(SVC.conf) as f:
            conf = f.read()
        try:
            with open(SVC.conf, "w") as f:
                f.write(re.sub(r"(?m)^storage = lmdb:db$", "storage = lmdb:" + target, conf))
            v = SVC.admin("audit", "verify", check=False)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            SVC.start()
            token = SVC.token()
            d = H.digest("after the restore")
            r = SVC.authorize(token, CRED, [d], pin=PIN)
            self.assertEqual(r.status, 200, r)
            r = SVC.post("signatures/signHash", {"credentialID": CRED, "SAD": r.json["SAD"], "hashes": [H.b64(d)],
                                                 "signAlgo": H.ECDSA_SHA256}, token)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(SVC.stop(), 0)
            restored = [json.loads(line) for line in SVC.admin("audit", "query", "--json").stdout.splitlines()]
            self.assertTrue(any("action=db.restore" in x.get("detail", "") for x in restored))
            v = SVC.admin("audit", "verify", check=False)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        finally:
            with open(SVC.conf, "w") as f:
                f.write(conf)
            if SVC.proc is None:
                SVC.start()

    def altered(self, name, change):
        """A copy of the drill's backup changed by change(bytes) -> bytes."""
        self.assertIsNotNone(BACKUP, "test_1_drill runs first")
        with open(BACKUP, "rb") as f:
            body = f.read()
        path = os.path.join(SVC.tmp, name)
        with open(path, "wb") as f:
            f.write(change(body))
        return path

    def refused_before_writing(self, path, message):
        target = os.path.join(SVC.tmp, "never-" + os.path.basename(path))
        r = restore(path, target, "--key", AUDIT_KEY)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(message, r.stderr)
        self.assertFalse(os.path.exists(target), "%s was created" % target)
        os.mkdir(target)  # an empty folder given: left empty
        r = restore(path, target, "--key", AUDIT_KEY)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(os.listdir(target), [])

    def test_2_truncated(self):
        for cut in (1, 32, 5000):
            self.refused_before_writing(self.altered("cut%d" % cut, lambda b: b[:-cut]), "truncated or damaged")
        self.refused_before_writing(self.altered("cut-header", lambda b: b[:40]), "truncated or damaged")
        self.refused_before_writing(self.altered("empty", lambda b: b""), "not a backup")

    def test_3_tampered(self):
        def flip(at):
            def change(b):
                i = at % len(b)  # from the end when negative
                return b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]
            return change
        with open(BACKUP, "rb") as f:
            digest_at = layout(f.read())[0]
        for name, at in (("data-flip", digest_at - 5000), ("head-flip", 30), ("digest-flip", digest_at + 31)):
            self.refused_before_writing(self.altered(name, flip(at)), "its SHA-256 does not match")
        # the signature after the SHA-256: the DER's last byte, the text's last character (the operator's name)
        self.refused_before_writing(self.altered("sig-flip", flip(-1)), "is not signed by the audit key")
        in_text = digest_at + 34 + len("csc-db-backup v1 sha256=") + 70  # in time_ms=
        self.refused_before_writing(self.altered("text-flip", flip(in_text)), "is not signed by the audit key")
        # the format version is checked too (and the SHA-256 after it)
        self.refused_before_writing(self.altered("version", lambda b: b[:9] + b"\x02" + b[10:]), "format version 2")

    def test_4_nonempty_folder(self):
        self.assertIsNotNone(BACKUP, "test_1_drill runs first")
        target = os.path.join(SVC.tmp, "busy")
        os.mkdir(target)
        with open(os.path.join(target, "keep"), "w") as f:
            f.write("mine")
        r = restore(BACKUP, target)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("is not empty", r.stderr)
        self.assertEqual(os.listdir(target), ["keep"])
        # nor over the configured database (the default destination), while it runs
        r = SVC.admin_as(None, "db", "restore", BACKUP)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not empty", r.stderr)

    def test_5_postgresql_refused(self):
        self.assertIsNotNone(BACKUP, "test_1_drill runs first")
        r = SVC.admin_as(None, "db", "restore", BACKUP, "--db", "postgresql:host=nowhere.invalid dbname=csc")
        self.assertEqual(r.returncode, 2)
        self.assertIn("pg_basebackup", r.stderr)
        self.assertIn("docs/operations.md", r.stderr)

    def test_5b_audit_key_needed(self):
        """A backup with signed heads is restored only with the audit key (which signed the file, and the heads),
        checked before anything is written."""
        self.assertIsNotNone(BACKUP, "test_1_drill runs first")
        target = os.path.join(SVC.tmp, "never-keyless")
        r = SVC.admin_as(None, "db", "restore", BACKUP, "--db", "lmdb:" + target)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("give the audit public key with --key", r.stderr)
        self.assertFalse(os.path.exists(target))
        other = os.path.join(SVC.tmp, "other.pem")
        k = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                           check=True, capture_output=True).stdout
        subprocess.run(["openssl", "pkey", "-pubout", "-out", other], input=k, check=True, capture_output=True)
        r = restore(BACKUP, target, "--key", other)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("is not signed by the audit key of " + other, r.stderr)
        self.assertFalse(os.path.exists(target))

    def test_6_existing_file_and_role(self):
        self.assertIsNotNone(BACKUP, "test_1_drill runs first")
        size = os.path.getsize(BACKUP)
        r = SVC.admin("db", "backup", BACKUP, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("never replaces a file", r.stderr)
        self.assertEqual(os.path.getsize(BACKUP), size)
        # without a session, and with one that lacks the auditor's role
        r = SVC.admin_as(None, "db", "backup", os.path.join(SVC.tmp, "nosession"))
        self.assertNotEqual(r.returncode, 0)
        secret = SVC.add_operator("keyop", "key-admin", "keyop password 1")
        session = SVC.op_login("keyop", "keyop password 1", secret)
        r = SVC.admin_as(session, "db", "backup", os.path.join(SVC.tmp, "keyop.backup"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(os.path.join(SVC.tmp, "keyop.backup")))
        self.assertFalse([n for n in os.listdir(SVC.tmp) if n.startswith("keyop.backup")])


if __name__ == "__main__":
    unittest.main()
