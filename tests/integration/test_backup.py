"""J8: csc-admin backup init / credential backup / credential restore against the real binaries, SoftHSM and
LMDB. Backups hold the key only wrapped under the HSM's trusted backup key, with an HSM integrity tag; a
tampered or truncated file is refused before anything is written; keys generated with key_backup = no never
leave the HSM. The token's attributes are read through PKCS#11 directly (ctypes on the SoftHSM module)."""
import glob
import json
import os
import subprocess
import sys
import unittest

import harness as H

SVC = None
BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PIN = "47114711"

# Reads attributes of token objects by label through the module's own C_* exports (Python standard library
# only). argv: module token_label user_pin object_label class(3 private, 4 secret). Prints JSON.
P11_READER = r'''
import ctypes, json, sys
mod, token, pin, label, cls = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode(), sys.argv[4].encode(), int(sys.argv[5])
L = ctypes.CDLL(mod)
UL = ctypes.c_ulong
class A(ctypes.Structure):
    _fields_ = [("type", UL), ("p", ctypes.c_void_p), ("len", UL)]
assert L.C_Initialize(None) == 0
n = UL(0)
assert L.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(n)) == 0
slots = (UL * n.value)()
assert L.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(n)) == 0
slot = None
for s in slots[:n.value]:
    info = ctypes.create_string_buffer(1024)
    if L.C_GetTokenInfo(UL(s), info) == 0 and info.raw[:32].rstrip(b" ") == token:
        slot = s
h = UL(0)
assert L.C_OpenSession(UL(slot), UL(6), None, None, ctypes.byref(h)) == 0
assert L.C_Login(h, UL(1), pin, UL(len(pin))) == 0
c = UL(cls)
lab = ctypes.create_string_buffer(label, len(label))
t = (A * 2)(A(0, ctypes.cast(ctypes.byref(c), ctypes.c_void_p), ctypes.sizeof(c)),
            A(3, ctypes.cast(lab, ctypes.c_void_p), len(label)))
assert L.C_FindObjectsInit(h, t, UL(2)) == 0
objs = (UL * 8)()
cnt = UL(0)
assert L.C_FindObjects(h, objs, UL(8), ctypes.byref(cnt)) == 0
L.C_FindObjectsFinal(h)
out = []
names = {"sensitive": 0x103, "extractable": 0x162, "wrap_with_trusted": 0x210, "trusted": 0x86,
         "never_extractable": 0x164, "private": 0x2, "sign": 0x108, "decrypt": 0x105, "unwrap": 0x107,
         "wrap": 0x106}
for o in objs[:cnt.value]:
    r = {}
    for k, typ in names.items():
        b = ctypes.c_ubyte(2)
        a = A(typ, ctypes.cast(ctypes.byref(b), ctypes.c_void_p), 1)
        rv = L.C_GetAttributeValue(h, UL(o), ctypes.byref(a), UL(1))
        r[k] = b.value == 1 if rv == 0 else None
    buf = ctypes.create_string_buffer(8192)
    a = A(0x11, ctypes.cast(buf, ctypes.c_void_p), 8192)
    r["value_rv"] = L.C_GetAttributeValue(h, UL(o), ctypes.byref(a), UL(1))
    out.append(r)
L.C_Logout(h)
L.C_CloseSession(h)
L.C_Finalize(None)
print(json.dumps(out))
'''


def conf_value(key):
    with open(SVC.conf) as f:
        for line in f:
            k, _, v = line.partition("=")
            if k.strip() == key:
                return v.strip()
    return None


def p11_objects(label, cls):
    env = dict(os.environ)
    env["SOFTHSM2_CONF"] = os.path.join(SVC.dir, conf_value("softhsm_conf"))
    with open(os.path.join(SVC.dir, conf_value("pkcs11_pin_file"))) as f:
        pin = f.read().strip()
    r = subprocess.run([sys.executable, "-c", P11_READER, conf_value("pkcs11_module"), conf_value("pkcs11_token"),
                        pin, label, str(cls)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def setUpModule():
    global SVC
    SVC = H.Service(BUILD, extra_config="key_backup = wrapped\n")
    r = SVC.admin("backup", "init", "--so-pin-file", SVC.env["CSC_SO_PIN_FILE"], check=False)
    assert r.returncode == 0, r.stderr


def tearDownModule():
    if SVC is not None:
        SVC.stop()
        import shutil
        shutil.rmtree(SVC.tmp, ignore_errors=True)


def create(cred, key="p256", pin=PIN):
    """A credential of the demo user; its PIN (pin=None: none) is set as the user does it (harness set_pin)."""
    SVC.create_credential("--user", SVC.env["CSC_USER"], "--id", cred, "--key", key, "--auth", "PIN", "--scal", "1",
                          pin=pin)


def backup(cred, name):
    path = os.path.join(SVC.tmp, name)
    return path, SVC.admin("credential", "backup", cred, path, check=False)


def request(cred):
    """The owner's restore request for cred, made on /account (the server started for it if it is stopped)."""
    started = SVC.proc is None
    if started:
        SVC.start()
    try:
        return SVC.request_restore(SVC.env["CSC_USER"], cred)
    finally:
        if started:
            SVC.stop()


def restore(path, ref):
    return SVC.admin("credential", "restore", path, "--request", ref, check=False)


def cred_line(cred):
    out = SVC.admin("list").stdout
    return [ln for ln in out.splitlines() if ln.strip().startswith("credential %s " % cred)]


def audit_records(event):
    out = SVC.admin("audit", "query", "--event", event, "--json").stdout
    return [json.loads(ln) for ln in out.splitlines() if ln.strip()]


def sign_and_verify(cred, text):
    t = SVC.token()
    dg = H.digest(text)
    r = SVC.authorize(t, cred, [dg], pin=PIN)
    if r.status != 200:
        return False, r
    r = SVC.post("signatures/signHash", {"credentialID": cred, "SAD": r.json["SAD"], "hashes": [H.b64(dg)],
                                         "signAlgo": H.ECDSA_SHA256 if "ec" in cred else H.RSA_SHA256}, t)
    if r.status != 200:
        return False, r
    sig = H.base64.b64decode(r.json["signatures"][0])
    return H.verify(SVC.cert_pem(t, cred), sig, dg), r


class TestBackupRestore(unittest.TestCase):
    def test_1_round_trip_after_destroy_signs_again(self):
        for cred, key in (("bk-ec", "p256"), ("bk-rsa", "rsa2048")):
            create(cred, key)
        SVC.start()  # the owner sets the PINs, then asks for the restores, on /account
        try:
            for cred in ("bk-ec", "bk-rsa"):
                with self.subTest(cred=cred):
                    path, r = backup(cred, cred + ".bkp")
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
                    self.assertEqual(glob.glob(path + ".tmp*"), [])
                    with open(path, "rb") as f:
                        data = f.read()
                    self.assertEqual(data[:8], b"CSCBKUP1")
                    # restore is for recovery: refused while the credential is alive
                    ref = SVC.request_restore(SVC.env["CSC_USER"], cred)
                    r = restore(path, ref)
                    self.assertEqual(r.returncode, 1)
                    self.assertIn("exists and is not destroyed", r.stderr)
                    # a backup never overwrites a file
                    r = SVC.admin("credential", "backup", cred, path, check=False)
                    self.assertEqual(r.returncode, 1)
                    self.assertIn("exists already", r.stderr)
                    with open(path, "rb") as f:
                        self.assertEqual(f.read(), data)
                    r = SVC.admin("credential", "destroy", cred, check=False)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertIn("destroyed", cred_line(cred)[0])
                    self.assertEqual(p11_objects(cred, 3), [])
                    r = restore(path, ref)  # the refusal above did not spend the request
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertIn("credential %s restored" % cred, r.stdout)
                    self.assertIn("enabled", cred_line(cred)[0])
                    # the restored key is again backup-able, sensitive and sign-only
                    objs = p11_objects(cred, 3)
                    self.assertEqual(len(objs), 1)
                    self.assertTrue(objs[0]["sensitive"] and objs[0]["extractable"] and objs[0]["wrap_with_trusted"])
                    self.assertTrue(objs[0]["sign"])
                    self.assertFalse(objs[0]["decrypt"] or objs[0]["unwrap"])
            for cred in ("bk-ec", "bk-rsa"):
                ok, r = sign_and_verify(cred, "after restore " + cred)
                self.assertTrue(ok, r)
        finally:
            self.assertEqual(SVC.stop(), 0, SVC.server_stderr())
        recs = [r for r in audit_records("restore") if r["credential"] in ("bk-ec", "bk-rsa")]
        asked = [r for r in recs if "action=restore.request ref=RR-" in r["detail"]]
        self.assertEqual([r["result"] for r in asked], ["ok", "ok"])  # the users' requests, then the restores
        recs = [r for r in recs if r not in asked]
        self.assertEqual(sorted(r["result"] for r in recs), ["denied", "denied", "ok", "ok"])
        self.assertTrue(all("ref=RR-" in r["detail"] for r in recs if r["result"] == "ok"))
        oks = [r for r in audit_records("backup") if r["result"] == "ok" and r["credential"] in ("bk-ec", "bk-rsa")]
        self.assertEqual(len(oks), 2)
        self.assertIn("mech=CKM_AES_KEY_WRAP_PAD", oks[0]["detail"])
        self.assertIn("operator=" + SVC.env["CSC_OPERATOR"], oks[0]["detail"])

    def test_2_tampered_or_truncated_refused_nothing_written(self):
        create("bk-t", pin=None)
        path, r = backup("bk-t", "bk-t.bkp")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(SVC.admin("credential", "destroy", "bk-t", check=False).returncode, 0)
        ref = request("bk-t")
        with open(path, "rb") as f:
            data = f.read()
        n = len(data)
        flips = {"magic": 0, "version": 9, "id field": 16, "middle": n // 2, "wrapped key": n - 37 - 16,
                 "tag header": n - 37, "tag": n - 1}
        cases = [(name, data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]) for name, i in flips.items()]
        cases += [("truncated by 1", data[:-1]), ("truncated to half", data[:n // 2]), ("truncated to 5", data[:5]),
                  ("empty", b""), ("one byte appended", data + b"\0")]
        before = len(audit_records("restore"))
        for name, bad in cases:
            with self.subTest(case=name):
                p = os.path.join(SVC.tmp, "bad.bkp")
                with open(p, "wb") as f:
                    f.write(bad)
                r = restore(p, ref)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn("nothing restored", r.stderr)
                self.assertTrue("integrity tag invalid" in r.stderr or "truncated or not a backup file" in r.stderr,
                                r.stderr)
                self.assertIn("destroyed", cred_line("bk-t")[0])
                self.assertEqual(p11_objects("bk-t", 3), [])
        recs = audit_records("restore")[before:]
        self.assertEqual(len(recs), len(cases))
        self.assertTrue(all(r["result"] == "denied" for r in recs))
        # the genuine file still restores: the refusals were the tampering
        r = restore(path, ref)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_3_key_backup_no_refused(self):
        # the demo credentials were generated before key_backup = wrapped was configured
        before = len(audit_records("backup"))
        path, r = backup("demo-ec", "demo-ec.bkp")
        self.assertEqual(r.returncode, 1)
        self.assertIn("credential demo-ec: key generated non-extractable (key_backup = no); it cannot be backed up",
                      r.stderr)
        self.assertFalse(os.path.exists(path))
        self.assertEqual(glob.glob(path + ".tmp*"), [])
        recs = audit_records("backup")[before:]
        self.assertEqual([(r["credential"], r["result"]) for r in recs], [("demo-ec", "denied")])
        objs = p11_objects("demo-ec", 3)
        self.assertEqual(len(objs), 1)
        self.assertFalse(objs[0]["extractable"])
        self.assertTrue(objs[0]["never_extractable"])

    def test_4_token_attributes(self):
        wrap = p11_objects("csc-backup-wrap", 4)
        self.assertEqual(len(wrap), 1)
        w = wrap[0]
        self.assertTrue(w["trusted"] and w["private"] and w["sensitive"] and w["never_extractable"])
        self.assertFalse(w["extractable"])
        self.assertTrue(w["wrap"] and w["unwrap"])
        self.assertEqual(w["value_rv"], 0x11)  # CKR_ATTRIBUTE_SENSITIVE
        mac = p11_objects("csc-backup-mac", 4)
        self.assertEqual(len(mac), 1)
        self.assertFalse(mac[0]["extractable"])
        self.assertEqual(mac[0]["value_rv"], 0x11)
        create("bk-attr", pin=None)
        k = p11_objects("bk-attr", 3)
        self.assertEqual(len(k), 1)
        self.assertTrue(k[0]["extractable"] and k[0]["wrap_with_trusted"] and k[0]["sensitive"])
        self.assertEqual(k[0]["value_rv"], 0x11)  # never readable in clear
        # pkcs11-tool's view agrees: the backup key never extractable, the user key extractable (wrapped only)
        env = dict(os.environ)
        env["SOFTHSM2_CONF"] = os.path.join(SVC.dir, conf_value("softhsm_conf"))
        with open(os.path.join(SVC.dir, conf_value("pkcs11_pin_file"))) as f:
            pin = f.read().strip()
        out = subprocess.run(["pkcs11-tool", "--module", conf_value("pkcs11_module"), "--token-label",
                              conf_value("pkcs11_token"), "--login", "--pin", pin, "--list-objects"], env=env,
                             capture_output=True, text=True, check=True).stdout
        blocks = out.split("Object;")
        wb = [b for b in blocks if "label:      csc-backup-wrap" in b][0]
        self.assertIn("never extractable", wb)
        kb = [b for b in blocks if "label:      bk-attr\n" in b and "Usage:      sign" in b][0]
        self.assertIn("sensitive, extractable", kb)

    def test_5_backup_init_idempotent(self):
        # keys exist: no SO PIN needed, nothing created
        r = SVC.admin("backup", "init", check=False, stdin="")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("backup keys present", r.stdout)
        inits = [r for r in audit_records("backup") if "backup.init" in r["detail"]]
        self.assertEqual(len(inits), 1)
        self.assertEqual(inits[0]["result"], "ok")

    def test_6_terminated_owner_refused(self):
        SVC.admin("user", "add", "bk-user", "--contact", "bk@example.test", "--letter")  # never enrolls
        r = SVC.admin("credential", "create", "--user", "bk-user", "--id", "bk-term", "--key", "p256", "--auth", "PIN",
                      check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        path, r = backup("bk-term", "bk-term.bkp")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(SVC.admin("user", "terminate", "bk-user", check=False).returncode, 0)
        r = restore(path, "RR-AAAABBBBCCCC")  # a terminated user asks nothing: the end is final first
        self.assertEqual(r.returncode, 1)
        self.assertIn("credential bk-term was destroyed by the owner's termination: its key is never restored", r.stderr)
        self.assertIn("destroyed", cred_line("bk-term")[0])
        self.assertEqual(p11_objects("bk-term", 3), [])  # the unwrapped key did not stay

    def test_7_without_backup_keys(self):
        """A fresh token: wrong SO PIN refused and audited; no backup possible before backup init."""
        svc = H.Service(BUILD, extra_config="key_backup = wrapped\n")
        try:
            bad = os.path.join(svc.tmp, "wrong.pin")
            with open(bad, "w") as f:
                f.write("000000000000\n")
            r = svc.admin("backup", "init", "--so-pin-file", bad, check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("the HSM refused the SO PIN", r.stderr)
            r = svc.admin("credential", "create", "--user", svc.env["CSC_USER"], "--id", "bk-x", "--key", "p256",
                          "--auth", "PIN", check=False)
            self.assertEqual(r.returncode, 0, r.stderr)
            path = os.path.join(svc.tmp, "x.bkp")
            r = svc.admin("credential", "backup", "bk-x", path, check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("no trusted backup key in the HSM", r.stderr)
            self.assertFalse(os.path.exists(path))
            out = svc.admin("audit", "query", "--event", "backup", "--json").stdout
            recs = [json.loads(ln) for ln in out.splitlines()]
            self.assertEqual([r["result"] for r in recs], ["denied", "denied"])
            self.assertIn("SO login failed", recs[0]["detail"])
            self.assertEqual(svc.admin("audit", "verify", check=False).returncode, 0)
        finally:
            import shutil
            shutil.rmtree(svc.tmp, ignore_errors=True)

    def test_7b_revoked_or_renewed_key_never_restored(self):
        """J7/J8: a key destroyed by revocation (also after an operator's destroy) or replaced by a renewal never
        comes back from a backup; an operator's destroy stays recoverable, from a backup of the current key."""
        for cred, steps in (("bk-rev", (("revoke",),)), ("bk-rev2", (("destroy",), ("revoke",)))):
            with self.subTest(cred=cred):
                create(cred, pin=None)  # never signs
                path, r = backup(cred, cred + ".bkp")
                self.assertEqual(r.returncode, 0, r.stderr)
                ref = request(cred)  # asked while the key was alive
                for step in steps:
                    r = SVC.admin("credential", step[0], cred, check=False)
                    self.assertEqual(r.returncode, 0, r.stderr)
                r = restore(path, ref)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn("destroyed by certificate revocation", r.stderr)
                self.assertIn("nothing restored", r.stderr)
                self.assertIn("destroyed", cred_line(cred)[0])
                self.assertEqual(p11_objects(cred, 3), [])
        create("bk-ec-ren")
        old, r = backup("bk-ec-ren", "bk-ec-ren-old.bkp")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = SVC.admin("credential", "renew", "bk-ec-ren", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        SVC.start()  # the owner sets the PIN, and asks for the restore once the current key is backed up
        try:
            new, r = backup("bk-ec-ren", "bk-ec-ren-new.bkp")
            self.assertEqual(r.returncode, 0, r.stderr)
            ref = SVC.request_restore(SVC.env["CSC_USER"], "bk-ec-ren")
        finally:
            self.assertEqual(SVC.stop(), 0, SVC.server_stderr())
        self.assertEqual(SVC.admin("credential", "destroy", "bk-ec-ren", check=False).returncode, 0)
        r = restore(old, ref)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("older than the credential's last renewal", r.stderr)
        self.assertIn("destroyed", cred_line("bk-ec-ren")[0])
        self.assertEqual(p11_objects("bk-ec-ren", 3), [])
        r = restore(new, ref)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("enabled", cred_line("bk-ec-ren")[0])
        self.assertEqual(len(p11_objects("bk-ec-ren", 3)), 1)
        denied = [a for a in audit_records("restore") if a["credential"] in ("bk-rev", "bk-rev2", "bk-ec-ren")
                  and a["result"] == "denied"]
        self.assertEqual(len(denied), 3, denied)
        SVC.start()
        try:
            ok, r = sign_and_verify("bk-ec-ren", "after restore of the renewed key")
            self.assertTrue(ok, r)
            t = SVC.token()
            r = SVC.authorize(t, "bk-rev", [H.digest("revoked")], pin=PIN)
            self.assertNotEqual(r.status, 200, r)
        finally:
            self.assertEqual(SVC.stop(), 0, SVC.server_stderr())

    def test_8_audit_log_still_verifies(self):
        r = SVC.admin("audit", "verify", check=False)
        self.assertEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    unittest.main()
