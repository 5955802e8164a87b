"""csc-admin operators (J14): bootstrap, login (password + TOTP), sessions, roles, two-person approvals; users
(J1/J2): evidence references, changes, TOTP re-enrollment. Runs the real csc-admin against provisioned services."""
import os
import re
import shutil
import time
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SVC = None      # two_person = destroy, max_failures = 3
SHORT = None    # admin_session_idle = 2, admin_approval_ttl = 2, two_person = destroy
OPS = {}        # name -> (password, totp secret, session)


def setUpModule():
    global SVC, SHORT
    SVC = H.Service(BUILD, extra_config="two_person = destroy\nmax_failures = 3\n")
    SHORT = H.Service(BUILD, extra_config="admin_session_idle = 2\nadmin_approval_ttl = 2\ntwo_person = destroy\n")
    for name, roles in (("ua", "user-admin"), ("ka", "key-admin"), ("ka2", "key-admin"), ("au", "auditor")):
        OPS[name] = add_operator(SVC, name, roles)
    SVC.start()


def tearDownModule():
    for s in (SVC, SHORT):
        if s is not None:
            s.stop()
            shutil.rmtree(s.tmp, ignore_errors=True)


def field(out, key):
    for line in out.splitlines():
        parts = line.split(None, 1)
        if parts and parts[0] == key:
            return parts[1].strip()
    raise AssertionError("no %s in %r" % (key, out))


def add_operator(svc, name, roles, password=None):
    """operator add (a one-time code) and operator enroll on the new operator's terminal; then its login."""
    password = password or "password-" + name
    secret = svc.add_operator(name, roles, password)
    return password, secret, svc.op_login(name, password, secret)


def code_opt(svc, name):
    """How operator add sends the code: --letter without an otp_sender, else to --contact (the sender's file)."""
    with open(svc.conf) as f:
        sender = re.search(r"(?m)^\s*otp_sender\s*=", f.read()) is not None
    return ["--contact", name + "@example.test"] if sender else ["--letter"]


def as_op(name, *args, stdin=None, svc=None):
    return (svc or SVC).admin_as(OPS[name][2], *args, stdin=stdin)


def operator_audit(svc=None):
    return (svc or SVC).admin("audit", "query", "--event", "operator").stdout


class TestBootstrapAndLogin(unittest.TestCase):
    def test_bootstrap_only_once(self):
        r = SVC.admin_as(None, "operator", "bootstrap", "second", stdin="password-second\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("bootstrap is only for the first one", r.stderr)
        self.assertNotIn("operator second", SVC.admin("operator", "list").stdout)

    def test_bootstrap_prints_uri_and_qr(self):
        s = H.Service(BUILD)
        try:
            # a fresh database: remove the provisioned operator's record by starting from a new LMDB
            shutil.rmtree(os.path.join(s.dir, "db"))
            os.mkdir(os.path.join(s.dir, "db"))
            self.assertEqual(s.admin_as(None, "init").returncode, 0)
            r = s.admin_as(None, "operator", "bootstrap", "first", stdin="password-first\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(field(r.stdout, "otpauth").startswith("otpauth://totp/"))
            self.assertIn("\u2588", r.stdout)  # the QR code's blocks
            secret = field(r.stdout, "totp_secret")
            tok = s.op_login("first", "password-first", secret)
            self.assertIn("operator first roles=user-admin,key-admin,auditor", s.admin_as(tok, "operator", "list").stdout)
        finally:
            shutil.rmtree(s.tmp, ignore_errors=True)

    def test_no_session_refused(self):
        for args in (("list",), ("user", "add", "x1", "--contact", "x1@example.test", "--letter"), ("audit", "verify"),
                     ("operator", "list")):
            r = SVC.admin_as(None, *args)
            self.assertEqual(r.returncode, 1, args)
            self.assertIn("not logged in", r.stderr)
        r = SVC.admin_as("f" * 64, "list")
        self.assertEqual(r.returncode, 1)
        self.assertIn("refused=no-session", operator_audit())

    def test_operator_option_refused(self):
        r = SVC.admin_as(SVC.session, "--operator", "mallory", "list")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--operator is gone", r.stderr)

    def test_wrong_password_otp_and_reuse(self):
        pw, secret, _ = add_operator(SVC, "lg", "auditor")
        code = H.fresh_totp(secret, SVC.used_otps)
        r = SVC.admin_as(None, "login", "lg", stdin="wrong-password\n%s\n" % code)
        self.assertEqual(r.returncode, 1)
        self.assertIn("login refused", r.stderr)
        bad = "%06d" % ((int(code) + 1) % 1000000)
        r = SVC.admin_as(None, "login", "lg", stdin="%s\n%s\n" % (pw, bad))
        self.assertEqual(r.returncode, 1)
        r = SVC.admin_as(None, "login", "nobody", stdin="%s\n%s\n" % (pw, code))
        self.assertEqual(r.returncode, 1)
        self.assertIn("login refused", r.stderr)
        r = SVC.admin_as(None, "login", "lg", stdin="%s\n%s\n" % (pw, code))
        self.assertEqual(r.returncode, 0, r.stderr)
        tok = r.stdout.strip()
        self.assertRegex(tok, r"^[0-9a-f]{64}$")
        self.assertEqual(SVC.admin_as(tok, "audit", "verify").returncode, 0)
        # the same code a second time: refused (replay guard)
        r = SVC.admin_as(None, "login", "lg", stdin="%s\n%s\n" % (pw, code))
        self.assertEqual(r.returncode, 1)
        log = operator_audit()
        self.assertIn("user=lg", log)
        self.assertIn("refused=otp-reused", log)
        self.assertIn("refused=credentials", log)

    def test_lockout(self):
        pw, secret, _ = add_operator(SVC, "lk", "auditor")
        for _ in range(3):
            r = SVC.admin_as(None, "login", "lk", stdin="wrong-password\n000000\n")
            self.assertEqual(r.returncode, 1)
        r = SVC.admin_as(None, "login", "lk", stdin="%s\n%s\n" % (pw, H.fresh_totp(secret, SVC.used_otps)))
        self.assertEqual(r.returncode, 1)
        self.assertIn("locked", r.stderr)
        self.assertIn("locked operator", SVC.admin("audit", "query", "--event", "lockout").stdout)

    def test_logout(self):
        _, _, tok = add_operator(SVC, "lo", "auditor")
        self.assertEqual(SVC.admin_as(tok, "audit", "verify").returncode, 0)
        r = SVC.admin_as(tok, "logout")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = SVC.admin_as(tok, "audit", "verify")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not logged in", r.stderr)

    def test_session_file(self):
        pw, secret, _ = add_operator(SVC, "sf", "auditor")
        path = os.path.join(SVC.tmp, "session")
        r = SVC.admin_as(None, "login", "sf", "--session-file", path,
                         stdin="%s\n%s\n" % (pw, H.fresh_totp(secret, SVC.used_otps)))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(SVC.admin_as(None, "audit", "verify", env={"CSC_ADMIN_SESSION_FILE": path}).returncode, 0)
        os.chmod(path, 0o644)
        r = SVC.admin_as(None, "audit", "verify", env={"CSC_ADMIN_SESSION_FILE": path})
        self.assertEqual(r.returncode, 1)
        self.assertIn("readable by others", r.stderr)

    def test_session_idle_expiry(self):
        # Operators are made while the harness session lives; the check afterwards logs a fresh one in.
        _, _, tok = add_operator(SHORT, "ex", "auditor")
        secret2 = SHORT.add_operator("ex2", "auditor", "password-ex2")
        time.sleep(2.5)
        r = SHORT.admin_as(tok, "audit", "verify")
        self.assertEqual(r.returncode, 1)
        self.assertIn("session expired", r.stderr)
        tok2 = SHORT.op_login("ex2", "password-ex2", secret2)
        self.assertIn("refused=session-expired", SHORT.admin_as(tok2, "audit", "query", "--event", "operator").stdout)


class TestRoles(unittest.TestCase):
    def assertRefused(self, r, role):
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("lacks the role " + role, r.stderr)

    def test_user_admin(self):
        r = as_op("ua", "user", "add", "ruth", "--contact", "ruth@example.test", "--letter")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("operator=ua action=user.add", SVC.admin("audit", "query", "--user", "ruth").stdout)
        self.assertEqual(as_op("ua", "client", "list").returncode, 0)
        self.assertRefused(as_op("ua", "credential", "create", "--user", "ruth", "--auth", "OTP"), "key-admin")
        self.assertRefused(as_op("ua", "audit", "verify"), "auditor")
        self.assertIn("refused=needs-role-key-admin", operator_audit())

    def test_key_admin(self):
        SVC.add_user("kim", H.pw("kim"))
        r = as_op("ka", "credential", "create", "--user", "kim", "--id", "kim-1", "--key", "p256", "--auth", "OTP")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(as_op("ka", "credential", "disable", "kim-1").returncode, 0)
        self.assertEqual(as_op("ka", "list").returncode, 0)
        self.assertRefused(as_op("ka", "user", "add", "kim2", "--contact", "kim2@example.test", "--letter"),
                           "user-admin")
        self.assertRefused(as_op("ka", "operator", "list"), "user-admin")
        self.assertRefused(as_op("ka", "audit", "query"), "auditor")

    def test_auditor(self):
        self.assertEqual(as_op("au", "audit", "verify").returncode, 0)
        self.assertEqual(as_op("au", "audit", "query", "--event", "operator").returncode, 0)
        self.assertRefused(as_op("au", "list"), "user-admin")
        self.assertRefused(as_op("au", "credential", "enable", "demo-ec"), "key-admin")
        self.assertRefused(as_op("au", "client", "add", "x", "--redirect", "https://x.example/cb"), "user-admin")

    def test_operator_management(self):
        add_operator(SVC, "om", "auditor")
        # a user-admin changes another's roles, never their own
        self.assertEqual(as_op("ua", "operator", "roles", "om", "auditor,key-admin").returncode, 0)
        self.assertIn("operator om roles=key-admin,auditor", SVC.admin("operator", "list").stdout)
        r = as_op("ua", "operator", "roles", "ua", "all")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot change their own roles", r.stderr)
        self.assertIn("refused=self", operator_audit())
        r = SVC.admin("operator", "roles", SVC.env["CSC_OPERATOR"], "auditor", check=False)
        self.assertEqual(r.returncode, 1)
        # an auditor manages no operators
        self.assertEqual(as_op("au", "operator", "add", "x2", "--roles", "all", *code_opt(SVC, "x2")).returncode, 1)
        self.assertEqual(as_op("ua", "operator", "remove", "om").returncode, 0)
        self.assertNotIn("operator om ", SVC.admin("operator", "list").stdout)
        self.assertIn("action=operator.remove name=om", operator_audit())


class TestTwoPerson(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        SVC.add_user("tina", H.pw("tina"))
        for cid in ("tina-1", "tina-2", "tina-3"):
            SVC.admin("credential", "create", "--user", "tina", "--id", cid, "--key", "p256", "--auth", "OTP")

    def request(self, cid, svc=None, op="ka"):
        r = as_op(op, "credential", "destroy", cid, svc=svc)
        self.assertEqual(r.returncode, 0, r.stderr)
        return field(r.stdout, "approval_required")

    def test_pending_then_second_operator(self):
        rid = self.request("tina-1")
        self.assertIn("credential tina-1  enabled", SVC.admin("list").stdout)  # not executed
        self.assertIn("approval %s requester=ka role=key-admin" % rid, as_op("au", "approvals").stdout)
        r = as_op("ka", "approve", rid)  # the requester cannot approve
        self.assertEqual(r.returncode, 1)
        self.assertIn("another operator", r.stderr)
        r = as_op("ua", "approve", rid)  # no key-admin role
        self.assertEqual(r.returncode, 1)
        self.assertIn("lacks the role", r.stderr)
        self.assertIn("credential tina-1  enabled", SVC.admin("list").stdout)
        r = as_op("ka2", "approve", rid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("key destroyed", r.stdout)
        self.assertIn("credential tina-1  destroyed", SVC.admin("list").stdout)
        log = SVC.admin("audit", "query", "--credential", "tina-1", "--event", "admin").stdout
        self.assertIn("operator=ka2,requester=ka action=credential.destroy", log)
        ops = operator_audit()
        self.assertIn("operator=ka2 requester=ka action=approval.approve id=%s" % rid, ops)
        self.assertIn("refused=same-operator", ops)
        self.assertEqual(as_op("ka2", "approve", rid).returncode, 1)  # gone

    def test_unknown_name_refused(self):
        with open(SHORT.conf) as f:
            conf = f.read()
        bad = os.path.join(SHORT.tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write(conf.replace("two_person = destroy\n", "two_person = destroy,destory\n"))
        r = H.subprocess.run([os.path.join(BUILD, "server", "csc-admin"), "-c", bad, "list"], capture_output=True,
                             text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("two_person names no command: destory", r.stderr)

    def test_reject(self):
        rid = self.request("tina-2")
        r = as_op("ka2", "reject", rid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(rid, as_op("ka", "approvals").stdout)
        self.assertEqual(as_op("ka2", "approve", rid).returncode, 1)
        self.assertIn("credential tina-2  enabled", SVC.admin("list").stdout)
        self.assertIn("action=approval.reject id=%s" % rid, operator_audit())

    def test_expired(self):
        SHORT.add_user("tom", H.pw("tom"))
        SHORT.admin("credential", "create", "--user", "tom", "--id", "tom-1", "--key", "p256", "--auth", "OTP")
        rid = field(SHORT.admin("credential", "destroy", "tom-1").stdout, "approval_required")
        secret = SHORT.add_operator("ka3", "key-admin,auditor", "password-ka3")
        time.sleep(2.5)
        tok = SHORT.op_login("ka3", "password-ka3", secret)
        r = SHORT.admin_as(tok, "approve", rid)
        self.assertEqual(r.returncode, 1)
        self.assertIn("expired", r.stderr)
        self.assertIn("credential tom-1  enabled", SHORT.admin_as(tok, "list").stdout)
        self.assertIn("refused=expired", SHORT.admin_as(tok, "audit", "query", "--event", "operator").stdout)


class TestUsers(unittest.TestCase):
    def login_status(self, user, password):
        basic = H.base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        return SVC.post("auth/login", {}, auth="Basic " + basic).status

    def test_evidence_and_change(self):
        SVC.add_user("una", H.pw("una"), evidence="passport JP-1234 seen 2026-11-26", session=OPS["ua"][2])
        self.assertIn('user una  active  evidence="passport JP-1234 seen 2026-11-26"', SVC.admin("list").stdout)
        r = as_op("ua", "user", "change", "una", "--evidence", "doc:4711")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('evidence="doc:4711"', SVC.admin("list").stdout)
        # an operator sets no password any more (issue 12): the option is gone, the password is the user's
        self.assertEqual(as_op("ua", "user", "change", "una", "--password-stdin", stdin="Other-pw-4711\n").returncode,
                         2)
        self.assertEqual(self.login_status("una", H.pw("una")), 200)
        log = SVC.admin("audit", "query", "--user", "una").stdout
        self.assertIn("operator=ua action=user.add state=enrolling evidence=passport JP-1234 seen 2026-11-26", log)
        self.assertIn("operator=ua action=user.change evidence=doc:4711", log)
        # refusals: nothing to change, unknown user, control characters, the wrong role
        self.assertEqual(as_op("ua", "user", "change", "una").returncode, 2)
        self.assertEqual(as_op("ua", "user", "change", "nobody", "--evidence", "x").returncode, 1)
        self.assertEqual(as_op("ua", "user", "change", "una", "--evidence", "a\tb").returncode, 1)
        self.assertEqual(as_op("ka", "user", "change", "una", "--evidence", "x").returncode, 1)

    def test_no_operator_input_of_a_user_factor(self):
        """Issue 12: csc-admin takes no user password, TOTP or PIN: the options are gone (a usage error before anything
        is written), and a PIN on standard input is not read: the credential waits for its owner's PIN."""
        secret = os.path.join(SVC.tmp, "factor.txt")
        with open(secret, "w") as f:
            f.write("13572468\n")
        demo = SVC.env["CSC_USER"]
        for args in (("ua", "user", "add", "nofa", "--letter", "--password-file", secret),
                     ("ua", "user", "change", demo, "--password-file", secret),
                     ("ua", "user", "totp-reset", demo),
                     ("ka", "credential", "create", "--user", demo, "--id", "nofa-1", "--key", "p256", "--auth", "PIN",
                      "--pin-file", secret),
                     ("ka", "credential", "delegate", "demo-ec", "--user", SVC.env["CSC_USER2"], "--evidence", "x",
                      "--pin-file", secret)):
            with self.subTest(args=args[1:3]):
                self.assertEqual(as_op(*args).returncode, 2)
        listing = SVC.admin("list").stdout
        self.assertNotIn("nofa", listing)
        self.assertNotIn("delegate " + SVC.env["CSC_USER2"], listing)
        r = as_op("ka", "credential", "create", "--user", demo, "--id", "nofa-2", "--key", "p256", "--auth", "PIN",
                  stdin="13572468\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("credential nofa-2 created; its PIN waits for the owner (pin=unset)", r.stdout)
        self.assertIn("pin=unset", [l for l in SVC.admin("list").stdout.splitlines() if "nofa-2" in l][0])

    def test_recover(self):
        """Issue 12: a user who lost a factor is recovered by a user-admin: password and TOTP cleared, the user's
        tokens revoked, a new enrollment code (never a secret); on the new enrollment the user chooses a new
        password and gets a new TOTP secret. The old TOTP totp-reset and password change are gone."""
        old = SVC.add_user("otto", H.pw("otto"))
        SVC.admin("credential", "create", "--user", "otto", "--id", "otto-1", "--key", "p256", "--auth", "OTP")
        tok = SVC.token("otto", H.pw("otto"))
        dg = [H.digest("recovery")]
        self.assertEqual(SVC.authorize(tok, "otto-1", dg, otp_secret=old).status, 200)
        self.assertEqual(as_op("ua", "user", "totp-reset", "otto").returncode, 2)
        r = as_op("ka", "user", "recover", "otto", "--letter")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("lacks the role user-admin", r.stderr)
        SVC.recover("otto", H.pw("new otto"), later=True, session=OPS["ua"][2])
        # The recovery revoked the tokens the user held (issue 9 item 7), and the old password is gone.
        self.assertEqual(SVC.authorize(tok, "otto-1", dg, otp_secret=old).status, 401)
        self.assertEqual(self.login_status("otto", H.pw("otto")), 400)
        new = SVC.enroll("otto")
        self.assertNotEqual(new, old)
        self.assertEqual(self.login_status("otto", H.pw("otto")), 400)
        tok = SVC.token("otto", H.pw("new otto"))
        r = SVC.authorize(tok, "otto-1", dg, otp_secret=old)  # a fresh code of the old secret
        self.assertNotEqual(r.status, 200, r)
        self.assertEqual(SVC.authorize(tok, "otto-1", dg, otp_secret=new).status, 200)
        self.assertIn("operator=ua action=user.recover",
                      SVC.admin("audit", "query", "--user", "otto", "--event", "enroll").stdout)


class TestDelegates(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # dana enrolls once owen-1 is delegated to her: she sets her own PIN for it there (no /account sign-in,
        # which would spend a TOTP step of hers)
        for u in ("owen", "dana", "nick"):
            SVC.add_user(u, H.pw(u), later=True)
        SVC.create_credential("--user", "owen", "--id", "owen-1", "--key", "p256", "--auth", "PIN AND OTP",
                              pin="11112222")
        for u in ("owen", "nick"):
            SVC.enroll(u)

    def delegate(self, *extra, stdin=None):
        return as_op("ka", "credential", "delegate", "owen-1", "--user", "dana", *extra, stdin=stdin)

    def unknown_answer(self, tok, method, body):
        """The answer for a credential that does not exist, to compare a non-delegate's with."""
        b = dict(body, credentialID="no-such-credential")
        r = SVC.post(method, b, tok)
        return r.status, r.json

    def test_delegate_lifecycle(self):
        # the owner's consent must be recorded; the owner is no delegate of their own; roles apply
        r = self.delegate()
        self.assertEqual(r.returncode, 1)
        self.assertIn("--evidence", r.stderr)
        r = as_op("ka", "credential", "delegate", "owen-1", "--user", "owen", "--evidence", "x")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(as_op("ua", "credential", "delegate", "owen-1", "--user", "dana", "--evidence", "x").returncode,
                         1)
        r = self.delegate("--evidence", "consent form CF-9 signed by owen")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("    delegate dana  pin=unset", SVC.admin("list").stdout)
        # the delegate's own PIN is hers: set when she enrolls
        SVC.set_pin("dana", "owen-1", "33334444")
        self.otp = {"dana": SVC.enroll("dana")}
        self.assertIn("    delegate dana  (own PIN)", SVC.admin("list").stdout)

        dana, nick = SVC.token("dana", H.pw("dana")), SVC.token("nick", H.pw("nick"))
        # the delegate sees it; another user does not
        self.assertIn("owen-1", SVC.post("credentials/list", {}, dana).json["credentialIDs"])
        self.assertNotIn("owen-1", SVC.post("credentials/list", {}, nick).json["credentialIDs"])
        self.assertEqual(SVC.post("credentials/info", {"credentialID": "owen-1"}, dana).status, 200)
        # a non-delegate gets exactly the answer for an unknown credential
        dg = [H.digest("delegated")]
        body = {"credentialID": "owen-1", "numSignatures": 1, "hashes": [H.b64(dg[0])], "hashAlgorithmOID": H.SHA256,
                "authData": [{"id": "PIN", "value": "33334444"}, {"id": "OTP", "value": "123456"}]}
        r = SVC.post("credentials/authorize", body, nick)
        self.assertEqual((r.status, r.json), self.unknown_answer(nick, "credentials/authorize", body))
        r = SVC.post("credentials/info", {"credentialID": "owen-1"}, nick)
        self.assertEqual((r.status, r.json), self.unknown_answer(nick, "credentials/info", {}))
        # the owner's PIN is not the delegate's
        r = SVC.authorize(dana, "owen-1", dg, pin="11112222", otp_secret=self.otp["dana"])
        self.assertNotEqual(r.status, 200)
        # the delegate's own PIN and own TOTP: a SAD, and a signature with the owner's key
        r = SVC.authorize(dana, "owen-1", dg, pin="33334444", otp_secret=self.otp["dana"])
        self.assertEqual(r.status, 200, r)
        # extendTransaction by the delegate: a fresh SAD, audited on behalf of the owner too
        r = SVC.post("credentials/extendTransaction", {"credentialID": "owen-1", "SAD": r.json["SAD"],
                                                       "hashes": [H.b64(dg[0])], "hashAlgorithmOID": H.SHA256}, dana)
        self.assertEqual(r.status, 200, r)
        sign = {"credentialID": "owen-1", "SAD": r.json["SAD"], "hashes": [H.b64(dg[0])],
                "signAlgo": H.ECDSA_SHA256}
        # while the owner is suspended, the delegate can neither sign nor authorize
        SVC.admin("user", "suspend", "owen")
        r2 = SVC.post("signatures/signHash", sign, dana)
        self.assertEqual(r2.status, 400, r2)
        self.assertIn("disabled", r2.json["error_description"])
        self.assertNotEqual(SVC.authorize(dana, "owen-1", dg, pin="33334444", otp_secret=self.otp["dana"]).status,
                            200)
        SVC.admin("user", "resume", "owen")
        s = SVC.post("signatures/signHash", sign, dana)
        self.assertEqual(s.status, 200, s)
        pem = SVC.cert_pem(dana, "owen-1")
        self.assertTrue(H.verify(pem, H.base64.b64decode(s.json["signatures"][0]), dg[0]))
        # the audit names the signer and the owner
        log = SVC.admin("audit", "query", "--credential", "owen-1").stdout
        self.assertRegex(log, r"authorize ok user=dana cred=owen-1 client=\S+ on_behalf_of=owen")
        self.assertRegex(log, r"sign ok user=dana cred=owen-1 client=\S+ on_behalf_of=owen")
        self.assertRegex(log, r'authorize ok user=dana cred=owen-1 client=\S+ on_behalf_of=owen digests=1 '
                              r'detail="extendTransaction"')
        self.assertIn("action=credential.delegate delegate=dana evidence=consent form CF-9 signed by owen", log)
        self.assertIn("on_behalf_of=owen", SVC.admin("audit", "query", "--user", "owen", "--event", "sign").stdout)
        # removal stops it at once: not listed, answered like an unknown credential
        r = self.delegate("--remove")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("owen-1", SVC.post("credentials/list", {}, dana).json["credentialIDs"])
        body["authData"] = [{"id": "PIN", "value": "33334444"},
                            {"id": "OTP", "value": H.fresh_totp(self.otp["dana"], SVC.used_otps)}]
        r = SVC.post("credentials/authorize", body, dana)
        self.assertEqual((r.status, r.json), self.unknown_answer(dana, "credentials/authorize", body))
        self.assertEqual(self.delegate("--remove").returncode, 1)
        self.assertIn("action=credential.undelegate delegate=dana",
                      SVC.admin("audit", "query", "--credential", "owen-1", "--event", "admin").stdout)
        # the log with "on behalf of" records still verifies
        self.assertEqual(as_op("au", "audit", "verify").returncode, 0)


def sam_processes(conf):
    """csc-sam processes started with configuration conf (from /proc/*/cmdline)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"csc-sam") and conf.encode() in argv:
            found.append(int(pid))
    return found


class TestOperatorsSocket(unittest.TestCase):
    """csc-admin's key commands go through csc-sam's operators' socket (docs/architecture.md "The operators'
    socket"): it starts a short-lived csc-sam when none answers (sam_mode = spawn), else says csc-sam is not
    reachable; a running service's socket is its csc-sam's, mode 0600."""

    def test_short_lived_csc_sam_when_none_runs(self):
        sock = os.path.join(SHORT.dir, "csc-sam-admin.sock")
        self.assertEqual(sam_processes(SHORT.conf), [])
        SHORT.add_user("sid", H.pw("sid"))
        r = SHORT.admin("credential", "create", "--user", "sid", "--id", "sid-1", "--key", "p256", "--auth", "OTP")
        self.assertIn("credential sid-1 created", r.stdout)
        self.assertEqual(r.stderr, "")  # what the short-lived csc-sam says is shown only when it fails to start
        self.assertEqual(sam_processes(SHORT.conf), [])  # stopped again
        self.assertFalse(os.path.exists(sock))
        self.assertIn("operator=admin action=credential.create",
                      SHORT.admin("audit", "query", "--credential", "sid-1").stdout)

    def test_running_service_socket(self):
        st = os.stat(os.path.join(SVC.dir, "csc-sam-admin.sock"))
        self.assertEqual(st.st_mode & 0o777, 0o600)
        before = sam_processes(SVC.conf)
        self.assertEqual(len(before), 1)  # the service's own
        r = SVC.admin("credential", "create", "--user", SVC.env["CSC_USER"], "--id", "run-1", "--key", "p256",
                      "--auth", "OTP")
        self.assertIn("credential run-1 created", r.stdout)
        self.assertEqual(sam_processes(SVC.conf), before)  # served by it: none started

    def test_connect_mode_without_csc_sam(self):
        svc = H.Service(BUILD, extra_config="sam_mode = connect\n")
        try:
            r = svc.admin("credential", "create", "--user", svc.env["CSC_USER"], "--key", "p256", "--auth", "OTP",
                          check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("csc-admin: csc-sam is not reachable at %s: start the service"
                          % os.path.join(svc.dir, "csc-sam-admin.sock"), r.stderr)
            self.assertEqual(svc.admin("list").returncode, 0)  # read-only commands need no csc-sam
        finally:
            shutil.rmtree(svc.tmp, ignore_errors=True)


def audit_json(svc, *args):
    """The audit records (--json) of audit query args, as the provisioned operator."""
    return [H.json.loads(l) for l in svc.admin("audit", "query", "--json", *args).stdout.splitlines() if l.strip()]


def my_origin():
    """What csc-admin run by this test records as its origin: its user, uid, host; no terminal (a pipe)."""
    import pwd
    import socket
    return "os_user=%s uid=%d host=%s tty=-" % (pwd.getpwuid(os.getuid()).pw_name, os.getuid(), socket.gethostname())


class TestReadsAndOrigin(unittest.TestCase):
    """Issue 12 (operators): the commands that only read are audited too (operator, command, arguments; never what
    they show), and every operator record and request carries the OS user, host and terminal of the command."""

    def test_reads_are_audited(self):
        export = os.path.join(SVC.tmp, "audit-pub-reads.pem")
        for op, args in (("ua", ("list",)), ("ua", ("operator", "list")), ("ua", ("client", "list")),
                         ("au", ("approvals",)), ("au", ("audit", "query", "--event", "login")),
                         ("au", ("audit", "heads")), ("au", ("audit", "export-key", export))):
            r = as_op(op, *args)
            self.assertEqual(r.returncode, 0, (args, r.stderr))
        reads = [r for r in audit_json(SVC, "--event", "operator") if "action=read" in r["detail"]]
        seen = {(r["user"], r["detail"]) for r in reads}
        for user, detail in (("ua", "operator=ua action=read command=list"),
                             ("ua", "operator=ua action=read command=operator.list"),
                             ("ua", "operator=ua action=read command=client.list"),
                             ("au", "operator=au action=read command=approvals"),
                             ("au", "operator=au action=read command=audit.query args=--event login"),
                             ("au", "operator=au action=read command=audit.heads"),
                             ("au", "operator=au action=read command=audit.export-key")):
            self.assertIn((user, detail), seen)
        for r in reads:  # never what was shown (the users list, the operators), and always where from
            self.assertNotIn(SVC.env["CSC_USER"], r["detail"])
            self.assertEqual(r["origin"], my_origin())

    def test_origin_on_records_and_requests(self):
        SVC.admin("user", "add", "olga", "--contact", "olga@example.test", "--evidence", "ev-olga", "--letter")
        r = as_op("ka", "credential", "create", "--user", "olga", "--id", "olga-1", "--key", "p256", "--auth", "OTP")
        self.assertEqual(r.returncode, 0, r.stderr)
        rid = field(as_op("ka", "credential", "destroy", "olga-1").stdout, "approval_required")
        # csc-admin's own record, csc-sam's (uid from SO_PEERCRED, the same: no claimed_uid), the request
        recs = audit_json(SVC, "--event", "operator") + audit_json(SVC, "--credential", "olga-1")
        adds = [x for x in recs if "action=user.add" in x["detail"] or "name=olga" in x["detail"]]
        creates = [x for x in recs if "operator=ka action=credential.create" in x["detail"]]
        requests = [x for x in recs if "action=approval.request" in x["detail"] and "olga-1" in x["detail"]]
        self.assertTrue(creates and requests, recs)
        for x in adds + creates + requests:
            self.assertEqual(x.get("origin"), my_origin(), x)
        self.assertIn("(from %s)" % my_origin(),
                      [l for l in as_op("au", "approvals").stdout.splitlines() if rid in l][0])
        self.assertEqual(as_op("ka2", "reject", rid).returncode, 0)
        # the text output shows it too; the chain still verifies with the new field
        self.assertIn('origin="%s"' % my_origin(), SVC.admin("audit", "query", "--credential", "olga-1").stdout)
        self.assertEqual(as_op("au", "audit", "verify").returncode, 0)


class TestSessionHost(unittest.TestCase):
    """Issue 12: an operator session is bound to the host it was made on (host name and /etc/machine-id, hashed);
    used from another host (here: another UTS namespace with another host name) it is refused by csc-admin and by
    csc-sam, audited, and ended."""

    def other_host(self, session, *args):
        env = dict(os.environ)
        env.pop("CSC_ADMIN_SESSION_FILE", None)
        env["CSC_ADMIN_SESSION"] = session
        cmd = [os.path.join(BUILD, "server", "csc-admin"), "-c", SVC.conf] + list(args)
        return H.subprocess.run(["unshare", "--uts", "sh", "-c", 'hostname csc-elsewhere && exec "$@"', "sh"] + cmd,
                                capture_output=True, text=True, env=env)

    def setUp(self):
        r = H.subprocess.run(["unshare", "--uts", "hostname", "csc-probe"], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("unshare --uts refused here (needs CAP_SYS_ADMIN): %s" % r.stderr.strip())

    def login(self, name):
        if name not in OPS:
            OPS[name] = add_operator(SVC, name, "key-admin,auditor")
        pw, secret, _ = OPS[name]
        return SVC.op_login(name, pw, secret)

    def test_csc_admin_refuses_other_host(self):
        tok = self.login("hb1")
        self.assertEqual(SVC.admin_as(tok, "approvals").returncode, 0)
        r = self.other_host(tok, "approvals")
        self.assertEqual(r.returncode, 1)
        self.assertIn("made on another host", r.stderr)
        r = SVC.admin_as(tok, "approvals")  # ended: the token left its host
        self.assertEqual(r.returncode, 1)
        self.assertIn("not logged in", r.stderr)
        refused = [x for x in audit_json(SVC, "--event", "operator", "--user", "hb1")
                   if "refused=other-host" in x["detail"]]
        self.assertEqual(len(refused), 1)
        self.assertIn("host=csc-elsewhere", refused[0]["origin"])

    def test_csc_sam_refuses_other_host(self):
        tok = self.login("hb2")
        out = os.path.join(SVC.tmp, "hb2.pem")
        r = self.other_host(tok, "audit", "export-key", out)  # csc-sam's command: csc-sam checks
        self.assertEqual(r.returncode, 1)
        self.assertIn("made on another host", r.stderr)
        self.assertFalse(os.path.exists(out))
        refused = [x for x in audit_json(SVC, "--event", "operator", "--user", "hb2")
                   if "action=audit export-key refused=other-host" in x["detail"]]
        self.assertEqual(len(refused), 1)
        self.assertIn("host=csc-elsewhere", refused[0]["origin"])
        tok = self.login("hb2")
        self.assertEqual(SVC.admin_as(tok, "audit", "export-key", out).returncode, 0)


class TestProductionCeremony(unittest.TestCase):
    """Issue 12: environment = production defaults two_person to destroy,restore,terminate,operator and refuses one
    operator both user-admin and key-admin (allow_combined_roles). A service still starts from nothing: the first
    operator (bootstrap) manages users; while it is the only operator it adds the second user-admin alone; every
    later operator change needs the other (docs/configuration.md "two_person")."""

    def test_from_nothing(self):
        s = H.Service(BUILD)
        try:
            s.production()
            shutil.rmtree(os.path.join(s.dir, "db"))
            os.mkdir(os.path.join(s.dir, "db"))
            self.assertEqual(s.admin_as(None, "init").returncode, 0)
            r = s.admin_as(None, "operator", "bootstrap", "first", stdin="password-first\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("with the role user-admin", r.stdout)
            first = s.op_login("first", "password-first", field(r.stdout, "totp_secret"))
            self.assertIn("operator first roles=user-admin status", s.admin_as(first, "operator", "list").stdout)
            # the only operator: nobody could approve, so it adds the second user-admin alone (audited)
            r = s.admin_as(first, "operator", "add", "second", "--roles", "user-admin,auditor", "--letter")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("the only operator", r.stderr)
            self.assertNotIn("totp_secret", r.stdout)  # no factor of the new operator on this terminal
            secret = s.enroll_operator("second", field(r.stdout, "enrollment_code"), "password-second")
            second = s.op_login("second", "password-second", secret)
            # from now on operator changes need the other
            r = s.admin_as(first, "operator", "add", "keys", "--roles", "key-admin", "--letter")
            rid = field(r.stdout, "approval_required")
            self.assertNotIn("operator keys ", s.admin_as(first, "operator", "list").stdout)
            r = s.admin_as(second, "approve", rid)  # nothing of the new operator's is typed or shown here
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("totp_secret", r.stdout)
            self.assertIn("operator keys roles=key-admin status=enrolling", s.admin_as(first, "operator", "list").stdout)
            s.enroll_operator("keys", field(r.stdout, "enrollment_code"), "password-keys")
            self.assertIn("operator keys roles=key-admin status=active", s.admin_as(first, "operator", "list").stdout)
            # user-admin with key-admin: refused, even approved
            rid = field(s.admin_as(first, "operator", "roles", "keys", "user-admin,key-admin").stdout,
                        "approval_required")
            r = s.admin_as(second, "approve", rid)
            self.assertEqual(r.returncode, 1)
            self.assertIn("allow_combined_roles", r.stderr)
            self.assertIn("operator keys roles=key-admin status", s.admin_as(first, "operator", "list").stdout)
            log = s.admin_as(second, "audit", "query", "--event", "operator").stdout
            self.assertIn("action=two_person.waived command=operator.add reason=sole-operator", log)
            self.assertIn("refused=combined-roles", log)
            # the other defaults: terminate waits for a second operator
            r = s.admin_as(first, "user", "add", "pu", "--contact", "pu@example.test", "--evidence", "ev-pu", "--letter")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("approval_required", s.admin_as(first, "user", "terminate", "pu").stdout)
        finally:
            shutil.rmtree(s.tmp, ignore_errors=True)

    def test_explicit_keys_win(self):
        s = H.Service(BUILD)
        try:
            s.production("two_person = none\nallow_combined_roles = yes\n")
            r = s.admin("operator", "add", "both", "--roles", "user-admin,key-admin", *code_opt(s, "both"))
            self.assertIn("operator both added", r.stdout)  # no second operator, both roles
            r = s.admin("credential", "create", "--user", s.env["CSC_USER"], "--id", "pe-1", "--key", "p256",
                        "--auth", "OTP", "--scal", "2")
            r = s.admin("credential", "destroy", "pe-1")
            self.assertNotIn("approval_required", r.stdout)
            self.assertIn("key destroyed", r.stdout)
            with open(s.conf) as f:
                conf = f.read().replace("two_person = none\nallow_combined_roles = yes\n", "")
            with open(s.conf, "w") as f:
                f.write(conf)
            r = s.admin("operator", "add", "both2", "--roles", "user-admin,key-admin", *code_opt(s, "both2"))
            self.assertIn("approval_required", r.stdout)  # the production default
        finally:
            shutil.rmtree(s.tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
