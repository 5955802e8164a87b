"""csc-admin audit verify / audit query against a real audit log written by csc-server, then tampered with
directly in LMDB (mdb_dump / mdb_load from lmdb-utils): every kind of tampering must be named."""
import base64
import calendar
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import unittest

import harness as H

SVC = None
BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
DB = None           # the service's LMDB directory
PRISTINE = None     # mdb_dump -a of it once the server stopped
T_START = None      # unix seconds before the server's first request
SIGNED = None       # the digest signed through signHash
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def setUpModule():
    global SVC, DB, PRISTINE, T_START, SIGNED
    SVC = H.Service(BUILD)
    T_START = int(time.time())
    time.sleep(1.1)  # the records of the provisioning and of the flows below fall in different seconds
    SVC.start()
    try:
        t = SVC.token()
        SIGNED = H.digest("audit me")
        r = SVC.authorize(t, "demo-ec", [SIGNED], pin=SVC.env["CSC_PIN"])
        assert r.status == 200, r
        r = SVC.post("signatures/signHash", {"credentialID": "demo-ec", "SAD": r.json["SAD"],
                                             "hashes": [H.b64(SIGNED)], "signAlgo": H.ECDSA_SHA256}, t)
        assert r.status == 200, r
        r = SVC.authorize(t, "demo-ec", [SIGNED], pin="00000000")  # refused
        assert r.status == 400, r
        t2 = SVC.token(SVC.env["CSC_USER2"], SVC.env["CSC_PASSWORD2"])
        bad = "Basic " + base64.b64encode(("%s:wrong" % SVC.env["CSC_USER2"]).encode()).decode()
        assert SVC.post("auth/login", {}, auth=bad).status == 400
        assert SVC.post("auth/revoke", {"token": t2}, t2).status == 204
    finally:
        rc = SVC.stop()
    assert rc == 0, SVC.server_stderr()
    DB = os.path.join(SVC.dir, "db")
    PRISTINE = subprocess.run(["mdb_dump", "-a", DB], check=True, capture_output=True, text=True).stdout


def tearDownModule():
    if SVC is not None:
        shutil.rmtree(SVC.tmp, ignore_errors=True)


def audit(*args):
    return SVC.admin("audit", *args, check=False)


def without_own_read(recs):
    """An audit query is audited before it shows anything (issue 12): its own record is the last it shows (when its
    filters match it). The records without it."""
    if recs and recs[-1]["event"] == "operator" and "action=read command=audit.query" in recs[-1]["detail"]:
        return recs[:-1]
    return recs


# --- the dump: [(header lines, [[key bytes, value bytes], ...]), ...] ------------------------------------------
def parse_dump(text):
    dbs, lines, i = [], text.split("\n"), 0
    while i < len(lines) and lines[i].startswith("VERSION="):
        hdr = []
        while lines[i] != "HEADER=END":
            hdr.append(lines[i])
            i += 1
        i += 1
        recs = []
        while lines[i] != "DATA=END":
            recs.append([bytes.fromhex(lines[i].strip()), bytes.fromhex(lines[i + 1].strip())])
            i += 2
        i += 1
        dbs.append((hdr, recs))
    return dbs


def write_dump(dbs):
    out = []
    for hdr, recs in dbs:
        out += hdr + ["HEADER=END"]
        for k, v in recs:
            out += [" " + k.hex(), " " + v.hex()]
        out.append("DATA=END")
    return "\n".join(out) + "\n"


def table(dbs, name):
    return next(recs for hdr, recs in dbs if "database=" + name in hdr)


def load(text):
    """Replace the service's database by the given dump."""
    for f in ("data.mdb", "lock.mdb"):
        if os.path.exists(os.path.join(DB, f)):
            os.unlink(os.path.join(DB, f))
    subprocess.run(["mdb_load", DB], input=text, check=True, capture_output=True, text=True)


def key(seq):
    return seq.to_bytes(8, "big")


# --- record codec (storage/stor_codec.c: type, version, then tag u8 / length u32 LE / bytes) -----------------
def fields(val):
    out, pos = [], 2
    while pos < len(val):
        tag, n = val[pos], int.from_bytes(val[pos + 1:pos + 5], "little")
        out.append((tag, pos + 5, val[pos + 5:pos + 5 + n]))
        pos += 5 + n
    return out


def field(val, tag):
    return next(v for t, off, v in fields(val) if t == tag)


def encode(rtype, flds):
    return bytes([rtype, 1]) + b"".join(bytes([t]) + len(v).to_bytes(4, "little") + v for t, v in flds)


def set_field(val, tag, new):
    return encode(val[0], [(t, new if t == tag else v) for t, off, v in fields(val)])


def canonical_hash(val, prev):
    """storage/stor_int.h: SHA-256(prev_hash || seq, time, event, result, user, cred, client, authz_ref, detail,
    digest_len, n_digests, digests[, 15 owner][, 16 origin]), integers big-endian, strings with a u32 length; the
    optional fields only when stored (set)."""
    f = {t: v for t, off, v in fields(val)}
    opt = b"".join(bytes([t]) + len(f[t]).to_bytes(4, "big") + f[t] for t in (15, 16) if t in f)

    def u(tag, n):
        return int.from_bytes(f[tag], "little").to_bytes(n, "big")

    def s(tag):
        return len(f[tag]).to_bytes(4, "big") + f[tag]

    return hashlib.sha256(prev + u(1, 8) + u(2, 8) + u(3, 4) + u(4, 4) + s(5) + s(6) + s(7) + f[8] + s(9) +
                          u(10, 4) + u(11, 4) + f[12] + opt).digest()


def split_verify(stdout):
    """audit verify prints the chain report (ending with its "audit log ..." summary), then the signed heads'."""
    lines = stdout.splitlines()
    end = next(i for i, ln in enumerate(lines) if ln.startswith("audit log "))
    return lines[:end + 1], lines[end + 1:]


def head_value(seq, h):
    return encode(6, [(1, seq.to_bytes(8, "little")), (2, h)])


class TestVerifyAndQuery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        load(PRISTINE)
        r = audit("query", "--json")
        assert r.returncode == 0, r.stderr
        cls.recs = without_own_read([json.loads(line) for line in r.stdout.splitlines()])

    def test_verify_ok(self):
        load(PRISTINE)  # as it was before this class's queries (each is audited)
        r = audit("verify")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # the clean shutdown signed the head before the server's last record (the audit-head record itself)
        m = re.fullmatch(r"audit log OK: (\d+) records, head ([0-9a-f]{64})\n"
                         r"signed heads OK: 1 heads, the last at seq (\d+)\n", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertEqual(int(m.group(1)), len(self.recs))
        self.assertEqual(m.group(2), self.recs[-1]["hash"])
        self.assertEqual(int(m.group(3)), len(self.recs) - 1)
        self.assertEqual(len(table(parse_dump(PRISTINE), "audit")), len(self.recs))

    def test_json_lines_form_the_chain(self):
        self.assertGreaterEqual(len(self.recs), 12)
        prev = "0" * 64
        for i, rec in enumerate(self.recs):
            self.assertEqual(rec["seq"], i + 1)
            self.assertEqual(rec["prev_hash"], prev)
            self.assertRegex(rec["hash"], HEX64)
            self.assertRegex(rec["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertEqual(len(rec["digests"]), rec["n_digests"])
            prev = rec["hash"]
        # the hashes printed are the ones stored, and they follow the canonical form of stor_int.h
        stored = table(parse_dump(PRISTINE), "audit")
        prev = bytes(32)
        for (k, v), rec in zip(stored, self.recs):
            self.assertEqual(canonical_hash(v, prev).hex(), rec["hash"])
            prev = field(v, 14)

    def test_sign_records(self):
        signs = [r for r in self.recs if r["event"] == "sign"]
        self.assertEqual(len(signs), 1, signs)
        s = signs[0]
        self.assertEqual((s["user"], s["credential"], s["result"]), (SVC.env["CSC_USER"], "demo-ec", "ok"))
        self.assertEqual(s["digests"], [H.b64(SIGNED)])
        self.assertEqual(s["n_digests"], 1)
        self.assertRegex(s["client"], r"^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)")
        self.assertNotEqual(s["authz_ref"], "0" * 32)

    def test_no_secrets_in_output(self):
        r = audit("query", "--json")
        text = audit("query").stdout
        for name in ("CSC_PASSWORD", "CSC_PASSWORD2", "CSC_PIN", "CSC_TOTP_SECRET"):
            self.assertNotIn(SVC.env[name], r.stdout)
            self.assertNotIn(SVC.env[name], text)

    def query(self, *args):
        r = audit("query", "--json", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return without_own_read([json.loads(line) for line in r.stdout.splitlines()])

    def test_filter_user_credential_event(self):
        u2 = SVC.env["CSC_USER2"]
        got = self.query("--user", u2)
        self.assertEqual([r["seq"] for r in got], [r["seq"] for r in self.recs if r["user"] == u2])
        self.assertTrue({"login", "revoke", "admin"} <= {r["event"] for r in got}, got)
        logins = self.query("--user", u2, "--event", "login")
        self.assertEqual(sorted(r["result"] for r in logins), ["denied", "ok"])
        creds = self.query("--credential", "demo-ec")
        self.assertEqual({r["credential"] for r in creds}, {"demo-ec"})
        self.assertEqual(sorted(r["event"] for r in creds if r["event"] not in ("admin", "enroll")),
                         ["authorize", "authorize", "sign"])  # (enroll: its PIN set by the user on /enroll)
        auths = self.query("--credential", "demo-ec", "--event", "authorize")
        self.assertEqual(sorted(r["result"] for r in auths), ["denied", "ok"])
        self.assertEqual(self.query("--user", "nobody"), [])
        self.assertEqual(self.query("--event", "lockout"), [])

    def test_filter_time(self):
        load(PRISTINE)  # as it was before this class's queries (each is audited)
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T_START))
        before = self.query("--until", iso)
        after = [r for r in self.query("--since", str(T_START + 1)) if r["seq"] <= self.recs[-1]["seq"]]
        self.assertTrue(before and after)
        # provisioning only (its operator too), csc-sam's start (the factor key made) and the demo users' enrollment
        # (codes issued, then enrolled on /enroll)
        self.assertEqual({r["event"] for r in before}, {"admin", "operator", "sam", "enroll"})
        self.assertIn("sign", {r["event"] for r in after})
        self.assertEqual(len(before) + len(after), len(self.recs))
        for r in before:
            self.assertLess(r["time_ms"], (T_START + 1) * 1000)
        self.assertEqual(self.query("--since", iso, "--until", iso), [r for r in before if
                                                                         r["time_ms"] >= T_START * 1000])
        self.assertEqual(self.query("--since", "2999-01-01T00:00:00Z"), [])
        self.assertEqual(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")), T_START)

    def test_text_lines(self):
        r = audit("query", "--event", "sign")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1)
        self.assertRegex(lines[0], r"^\d+ \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z sign ok user=%s cred=demo-ec "
                                   r"client=\S+ digests=1 detail=\".*\"$" % re.escape(SVC.env["CSC_USER"]))

    def test_bad_arguments(self):
        for args in (("--event", "bogus"), ("--since", "2026-02-30T00:00:00Z"), ("--until", "yesterday"),
                     ("--since", "2026-11-25 10:00:00"), ("--user",), ("--frobnicate", "x")):
            r = audit("query", *args)
            self.assertEqual(r.returncode, 2, args)
        self.assertEqual(audit("verify", "extra").returncode, 2)
        self.assertEqual(audit().returncode, 2)


class TestDbCopy(unittest.TestCase):
    """csc-admin db copy: the stopped service's database into a new one, checked table by table; the copy's audit
    trail verifies with its signed heads and ends with the record of the copy; the copy serves the same operator
    session; a destination that holds records, the same database twice and a missing --from are refused."""

    def setUp(self):
        load(PRISTINE)
        self.dst = os.path.join(SVC.dir, "db-copy")
        shutil.rmtree(self.dst, ignore_errors=True)
        with open(SVC.conf) as f:
            text = f.read()
        self.assertIn("storage = lmdb:db\n", text)
        self.conf2 = os.path.join(SVC.dir, "copy.conf")
        with open(self.conf2, "w") as f:
            f.write(text.replace("storage = lmdb:db\n", "storage = lmdb:db-copy\n"))

    def admin2(self, *args, session=None):
        e = dict(os.environ)
        e.pop("CSC_ADMIN_SESSION", None)
        e.pop("CSC_ADMIN_SESSION_FILE", None)
        if session:
            e["CSC_ADMIN_SESSION"] = session
        return subprocess.run([os.path.join(BUILD, "server", "csc-admin"), "-c", self.conf2] + list(args),
                              capture_output=True, text=True, env=e)

    def test_copy_verifies(self):
        n_src = len(table(parse_dump(PRISTINE), "audit"))
        r = self.admin2("db", "copy", "--from", "lmdb:" + DB)  # --to: the configured storage, db-copy
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"\n  audit +%d\n" % n_src)
        self.assertRegex(r.stdout, r"copied and checked: \d+ tables, \d+ records\n$")
        # the session of the provisioned operator was copied with the operators: it works on the copy
        r = self.admin2("audit", "verify", session=SVC.session)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"^audit log OK: %d records, head [0-9a-f]{64}\nsigned heads OK: 1 heads" % (n_src + 1))
        r = self.admin2("audit", "query", "--json", session=SVC.session)
        self.assertEqual(r.returncode, 0, r.stderr)
        recs = without_own_read([json.loads(line) for line in r.stdout.splitlines()])
        self.assertIn("action=db.copy from=lmdb:%s " % DB, recs[-1]["detail"])
        # the source is unchanged by the copy
        self.assertEqual(subprocess.run(["mdb_dump", "-a", DB], check=True, capture_output=True, text=True).stdout,
                         PRISTINE)

    def test_refusals(self):
        r = self.admin2("db", "copy", "--from", "lmdb:" + DB)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.admin2("db", "copy", "--from", "lmdb:" + DB)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("is not empty (table", r.stderr)
        for same in (DB, DB + "/", os.path.join(DB, "..", "db")):
            r = self.admin2("db", "copy", "--from", "lmdb:" + DB, "--to", "lmdb:" + same)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("the same database", r.stderr)
        for args in ((), ("--to", "lmdb:" + self.dst), ("--from",), ("--from", "nosuch:x"), ("--from", "lmdb:"),
                     ("--bogus", "x")):
            r = self.admin2("db", "copy", *args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertTrue(r.stderr.startswith("csc-admin: db copy: "), (args, r.stderr))
        r = self.admin2("db", "frobnicate")
        self.assertEqual(r.returncode, 2, r.stderr)


class TestTamper(unittest.TestCase):
    """Each case loads a modified copy of the pristine dump; tearDown puts the pristine database back."""

    def setUp(self):
        self.dbs = parse_dump(PRISTINE)
        self.log = table(self.dbs, "audit")
        self.meta = table(self.dbs, "meta")
        self.n = len(self.log)
        self.k = self.n // 2  # a record in the middle
        self.assertGreaterEqual(self.n, 8)
        self.assertEqual([int.from_bytes(k, "big") for k, v in self.log], list(range(1, self.n + 1)))

    def tearDown(self):
        load(PRISTINE)

    def hash_of(self, seq):
        return field(self.log[seq - 1][1], 14)

    def set_head(self, seq, h):
        for rec in self.meta:
            if rec[0] == b"audit_head":
                rec[1] = head_value(seq, h)

    def verify_after_tamper(self, *expected):
        load(write_dump(self.dbs))
        r = audit("verify")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines, _ = split_verify(r.stdout)
        self.assertEqual(lines[:-1], list(expected))
        self.assertRegex(lines[-1], r"^audit log FAILED: %d problems? in \d+ records$" % len(expected))
        self.assertEqual(lines[:-1], list(expected))

    def test_untouched_reload_is_ok(self):
        load(write_dump(self.dbs))  # the tampering machinery alone changes nothing
        r = audit("verify")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertTrue(r.stdout.startswith("audit log OK: %d records" % self.n))

    def test_altered_byte_in_a_field(self):
        v = self.log[self.k - 1][1]
        off = next(off for t, off, val in fields(v) if t == 9 and val)  # first byte of detail
        self.log[self.k - 1][1] = v[:off] + bytes([v[off] ^ 0x01]) + v[off + 1:]
        self.verify_after_tamper("record %d: altered (hash mismatch)" % self.k)

    def test_altered_time(self):
        v = self.log[1][1]
        t = int.from_bytes(field(v, 2), "little") - 3600 * 1000  # back-dated by an hour
        self.log[1][1] = set_field(v, 2, t.to_bytes(8, "little"))
        self.verify_after_tamper("record 2: altered (hash mismatch)")

    def test_altered_stored_hash(self):
        v = self.log[self.k - 1][1]
        h = bytearray(field(v, 14))
        h[0] ^= 0x80
        self.log[self.k - 1][1] = set_field(v, 14, bytes(h))
        self.verify_after_tamper("record %d: altered (hash mismatch)" % self.k,
                                 "record %d: chain broken (prev_hash does not match record %d)" % (self.k + 1, self.k))

    def test_field_added_outside_the_hash(self):
        self.log[self.k - 1][1] += bytes([99, 3, 0, 0, 0]) + b"abc"  # an unknown tag: skipped by the decoder
        self.verify_after_tamper("record %d: altered (stored bytes are not the canonical encoding)" % self.k)

    def test_fields_reordered(self):
        v = self.log[self.k - 1][1]
        f = [(t, val) for t, off, val in fields(v)]
        f[2], f[3] = f[3], f[2]  # event and result: same values, same length, other bytes
        self.log[self.k - 1][1] = encode(v[0], f)
        self.verify_after_tamper("record %d: altered (stored bytes are not the canonical encoding)" % self.k)

    def test_unreadable_record(self):
        v = self.log[self.k - 1][1]
        self.log[self.k - 1][1] = v[:-10]  # cut inside the hash field
        self.verify_after_tamper("record %d: unreadable" % self.k)

    def test_deleted_record(self):
        del self.log[self.k - 1]
        self.verify_after_tamper("record %d missing" % self.k,
                                 "record %d: chain broken (prev_hash does not match record %d)"
                                 % (self.k + 1, self.k - 1))

    def test_deleted_records(self):
        del self.log[self.k - 1:self.k + 1]
        self.verify_after_tamper("records %d-%d missing" % (self.k, self.k + 1),
                                 "record %d: chain broken (prev_hash does not match record %d)"
                                 % (self.k + 2, self.k - 1))

    def test_swapped_records(self):
        a, b = self.log[self.k - 1], self.log[self.k]
        a[1], b[1] = b[1], a[1]
        k = self.k
        self.verify_after_tamper("record %d: out of place (carries seq %d)" % (k, k + 1),
                                 "record %d: chain broken (prev_hash does not match record %d)" % (k, k - 1),
                                 "record %d: out of place (carries seq %d)" % (k + 1, k),
                                 "record %d: chain broken (prev_hash does not match record %d)" % (k + 1, k),
                                 "record %d: chain broken (prev_hash does not match record %d)" % (k + 2, k + 1))

    def test_duplicate_appended(self):
        self.log.append([key(self.n + 1), self.log[self.k - 1][1]])
        n = self.n
        self.verify_after_tamper("record %d: out of place (carries seq %d)" % (n + 1, self.k),
                                 "record %d: chain broken (prev_hash does not match record %d)" % (n + 1, n),
                                 "head mismatch: meta says seq %d / hash %s, log ends at %d / hash %s"
                                 % (n, self.hash_of(n).hex(), n + 1, self.hash_of(self.k).hex()))

    def test_forged_record_inserted(self):
        """A well-formed record with its own hash recomputed, put in the middle, the rest renumbered and the head
        rewritten: only the link to the record after it can give it away."""
        k, n = self.k, self.n
        v = self.log[k - 1][1]
        forged = set_field(set_field(v, 1, (k + 1).to_bytes(8, "little")), 13, self.hash_of(k))
        forged = set_field(forged, 9, b"forged")
        forged = set_field(forged, 14, canonical_hash(forged, self.hash_of(k)))
        shifted = [[key(int.from_bytes(kk, "big") + 1), set_field(vv, 1, (int.from_bytes(kk, "big") + 1)
                                                                  .to_bytes(8, "little"))]
                   for kk, vv in self.log[k:]]
        del self.log[k:]
        self.log += [[key(k + 1), forged]] + shifted
        last = shifted[-1][1]
        self.set_head(n + 1, field(last, 14))
        # renumbering changes the hashed seq of every shifted record, so each is altered; the first one after the
        # forgery also no longer links to its predecessor
        expected = ["record %d: altered (hash mismatch)" % (k + 2),
                    "record %d: chain broken (prev_hash does not match record %d)" % (k + 2, k + 1)]
        expected += ["record %d: altered (hash mismatch)" % s for s in range(k + 3, n + 2)]
        self.verify_after_tamper(*expected)

    def test_last_record_removed(self):
        n = self.n
        hn, hn1 = self.hash_of(n).hex(), self.hash_of(n - 1).hex()
        del self.log[-1]
        self.verify_after_tamper("head mismatch: meta says seq %d / hash %s, log ends at %d / hash %s"
                                 % (n, hn, n - 1, hn1))

    def test_truncated_after_the_last_signed_head_is_undetectable(self):
        """Documents the limit that remains: cutting only records after the last signed head and rewriting the
        head leaves a valid shorter chain (here the audit-head record of the shutdown signing). The window is at
        most audit_sign_interval seconds / audit_sign_records records."""
        del self.log[-1]
        self.set_head(self.n - 1, self.hash_of(self.n - 1))
        load(write_dump(self.dbs))
        r = audit("verify")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertTrue(r.stdout.startswith("audit log OK: %d records" % (self.n - 1)))

    def test_head_missing(self):
        self.meta[:] = [rec for rec in self.meta if rec[0] != b"audit_head"]
        self.verify_after_tamper("head mismatch: meta holds no head, log ends at %d" % self.n)

    def test_query_stops_at_unreadable_record(self):
        self.log[1][1] = self.log[1][1][:-10]
        load(write_dump(self.dbs))
        r = audit("query")
        self.assertEqual(r.returncode, 1)
        self.assertIn("run csc-admin audit verify", r.stderr)


# --- signed audit heads (J11) ------------------------------------------------------------------------------------
def head_fields(val):
    return {t: v for t, off, v in fields(val)}


class TestSignedHeads(unittest.TestCase):
    """The pristine log has one head signed by the server's clean shutdown (at seq n - 1; record n is the
    audit-head record of that signing). Each case tampers with a copy; tearDown puts the pristine database back."""

    def setUp(self):
        self.dbs = parse_dump(PRISTINE)
        self.log = table(self.dbs, "audit")
        self.meta = table(self.dbs, "meta")
        self.heads = table(self.dbs, "audit_heads")
        self.n = len(self.log)
        self.assertEqual(len(self.heads), 1)
        self.s = int.from_bytes(self.heads[0][0], "big")
        self.assertEqual(self.s, self.n - 1)

    def tearDown(self):
        load(PRISTINE)

    def hash_of(self, seq):
        return field(self.log[seq - 1][1], 14)

    def set_head(self, seq, h):
        for rec in self.meta:
            if rec[0] == b"audit_head":
                rec[1] = head_value(seq, h)

    def verify(self):
        load(write_dump(self.dbs))
        r = audit("verify")
        chain, heads = split_verify(r.stdout)
        return r.returncode, chain, heads

    def test_server_signed_the_head_at_shutdown(self):
        last = without_own_read([json.loads(ln) for ln in audit("query", "--json").stdout.splitlines()])[-1]
        self.assertEqual((last["event"], last["client"], last["result"]), ("audit-head", "csc-sam", "ok"))
        self.assertEqual(last["detail"], "signed seq=%d hash=%s" % (self.s, self.hash_of(self.s).hex()))
        f = head_fields(self.heads[0][1])
        self.assertEqual(f[2], self.hash_of(self.s))

    def test_truncated_past_a_signed_head_with_head_rewritten_is_reported(self):
        """The tampering that was undetectable with the hash chain alone."""
        k = self.n - 4
        del self.log[k:]
        self.set_head(k, self.hash_of(k))
        rc, chain, heads = self.verify()
        self.assertEqual(rc, 1)
        self.assertTrue(chain[-1].startswith("audit log OK: %d records" % k), chain)
        self.assertEqual(heads, ["log truncated: signed head at seq %d but log ends at %d" % (self.s, k),
                                 "signed heads FAILED: 1 problem in 1 heads"])

    def test_log_rewritten_with_a_valid_chain_is_reported(self):
        """Whoever rewrites a record and recomputes every hash after it and the head still cannot match the
        signed head."""
        prev = self.hash_of(self.s - 1)
        for seq in range(self.s, self.n + 1):
            val = self.log[seq - 1][1]
            if seq == self.s:
                val = set_field(val, 9, b"rewritten")
            val = set_field(val, 13, prev)
            val = set_field(val, 14, canonical_hash(val, prev))
            self.log[seq - 1][1] = val
            prev = field(val, 14)
        self.set_head(self.n, prev)
        rc, chain, heads = self.verify()
        self.assertEqual(rc, 1)
        self.assertTrue(chain[-1].startswith("audit log OK: %d records" % self.n), chain)
        signed = head_fields(self.heads[0][1])[2].hex()
        self.assertEqual(heads[0], "signed head at seq %d: log rewritten (record has hash %s, signed hash %s)"
                         % (self.s, self.hash_of(self.s).hex(), signed))
        self.assertEqual(len(heads), 2)

    def test_altered_signed_head_is_reported(self):
        val = self.heads[0][1]
        f = head_fields(val)
        cases = {
            "time": set_field(val, 3, (int.from_bytes(f[3], "little") + 1).to_bytes(8, "little")),
            "signature byte": set_field(val, 4, f[4][:-1] + bytes([f[4][-1] ^ 1])),
        }
        for name, bad in cases.items():
            with self.subTest(case=name):
                self.heads[0][1] = bad
                rc, chain, heads = self.verify()
                self.assertEqual(rc, 1)
                self.assertTrue(chain[-1].startswith("audit log OK"), chain)
                self.assertEqual(heads[0], "signed head at seq %d: signature invalid (forged or altered signed head)"
                                 % self.s)
                self.heads[0][1] = val
        # a head moved to another seq (with the log's hash there) does not verify either
        k = self.s - 2
        self.heads[0] = [key(k), set_field(set_field(val, 1, k.to_bytes(8, "little")), 2, self.hash_of(k))]
        rc, chain, heads = self.verify()
        self.assertEqual(rc, 1)
        self.assertEqual(heads[0], "signed head at seq %d: signature invalid (forged or altered signed head)" % k)

    def test_forged_head_with_another_key_is_reported(self):
        d = os.path.join(SVC.tmp, "forge")
        os.makedirs(d, exist_ok=True)
        kp = os.path.join(d, "k.pem")
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", kp], check=True)
        k = self.s - 1
        f = head_fields(self.heads[0][1])
        text = "csc-audit-head v1 seq=%d hash=%s time_ms=%d" % (k, self.hash_of(k).hex(),
                                                               int.from_bytes(f[3], "little"))
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", kp], input=text.encode(), check=True,
                             capture_output=True).stdout
        self.heads.insert(0, [key(k), encode(15, [(1, k.to_bytes(8, "little")), (2, self.hash_of(k)), (3, f[3]),
                                                  (4, sig)])])
        rc, chain, heads = self.verify()
        self.assertEqual(rc, 1)
        self.assertEqual(heads, ["signed head at seq %d: signature invalid (forged or altered signed head)" % k,
                                 "signed heads FAILED: 1 problem in 2 heads"])
        # and verify --key with the forger's key rejects the genuine head instead
        pub = os.path.join(d, "pub.pem")
        subprocess.run(["openssl", "ec", "-in", kp, "-pubout", "-out", pub], check=True, capture_output=True)
        r = audit("verify", "--key", pub)
        self.assertEqual(r.returncode, 1)
        self.assertIn("signed head at seq %d: signature invalid" % self.s, r.stdout)

    def test_external_openssl_verification(self):
        d = os.path.join(SVC.tmp, "ext")
        os.makedirs(d, exist_ok=True)
        pem = os.path.join(d, "audit.pem")
        r = SVC.admin("audit", "export-key", pem, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("BEGIN PUBLIC KEY", open(pem).read())
        self.assertEqual(SVC.admin("audit", "export-key", pem, check=False).returncode, 1)  # never overwrites
        heads = [json.loads(ln) for ln in audit("heads").stdout.splitlines()]
        self.assertEqual([h["seq"] for h in heads], [self.s])
        h = heads[0]
        self.assertEqual(h["signed_text"], "csc-audit-head v1 seq=%d hash=%s time_ms=%d"
                         % (self.s, self.hash_of(self.s).hex(), h["time_ms"]))
        sig = os.path.join(d, "sig.der")
        txt = os.path.join(d, "head.txt")
        with open(sig, "wb") as f:
            f.write(base64.b64decode(h["signature"]))
        with open(txt, "w") as f:
            f.write(h["signed_text"])
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pem, "-signature", sig, txt],
                           capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "Verified OK"))
        with open(txt, "w") as f:
            f.write(h["signed_text"].replace("seq=%d" % self.s, "seq=%d" % (self.s + 1)))
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pem, "-signature", sig, txt],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        # csc-admin audit verify --key with the exported key agrees with the HSM's key
        r = audit("verify", "--key", pem)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("signed heads OK: 1 heads", r.stdout)


class TestPeriodicSigning(unittest.TestCase):
    """The running server's csc-sam signs heads by itself: every audit_sign_interval seconds, or every
    audit_sign_records records. Each service is polled while it still runs (so the head is not the one of the clean shutdown)."""

    def run_service(self, config, activity):
        svc = H.Service(BUILD, extra_config=config)
        try:
            svc.start()
            try:
                activity(svc)
                seen = []
                deadline = time.time() + 60
                while time.time() < deadline and not seen:
                    out = svc.admin("audit", "query", "--event", "audit-head", "--json").stdout
                    seen = [json.loads(ln) for ln in out.splitlines()]
                    if not seen:
                        time.sleep(0.2)
                self.assertTrue(seen, "no head signed while the server runs")
                self.assertEqual(seen[0]["client"], "csc-sam")  # the audit key is csc-sam's alone
                svc.token()  # something after the signing: the clean shutdown signs it
            finally:
                self.assertEqual(svc.stop(), 0, svc.server_stderr())
            r = svc.admin("audit", "verify", check=False)
            self.assertEqual(r.returncode, 0, r.stdout)
            m = re.search(r"signed heads OK: (\d+) heads, the last at seq (\d+)", r.stdout)
            self.assertIsNotNone(m, r.stdout)
            self.assertGreaterEqual(int(m.group(1)), 2)
            recs = without_own_read([json.loads(ln) for ln in svc.admin("audit", "query", "--json").stdout.splitlines()])
            last = recs[-1]
            self.assertEqual((last["event"], last["client"]), ("audit-head", "csc-sam"))
            self.assertEqual(int(m.group(2)), len(recs) - 1)  # everything but that record is under a signature
            return svc
        finally:
            shutil.rmtree(svc.tmp, ignore_errors=True)

    def test_interval(self):
        self.run_service("audit_sign_interval = 1\n", lambda svc: svc.token())

    def test_every_n_records(self):
        def three_logins(svc):
            for _ in range(3):
                svc.token()
        self.run_service("audit_sign_interval = 0\naudit_sign_records = 3\n", three_logins)

    def test_off(self):
        svc = H.Service(BUILD, extra_config="audit_sign_interval = 0\n")
        try:
            svc.start()
            svc.token()
            self.assertEqual(svc.stop(), 0)
            self.assertEqual(svc.admin("audit", "heads").stdout, "")
            r = svc.admin("audit", "verify", check=False)
            self.assertEqual(r.returncode, 0, r.stdout)
            self.assertIn("signed heads: none yet", r.stdout)
        finally:
            shutil.rmtree(svc.tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
