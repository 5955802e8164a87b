"""Integration harness: provisions a private service directory, runs the real csc-server binary
against SoftHSM and a temporary LMDB, and talks to it over TLS. Standard library only."""
import atexit
import base64
import hashlib
import hmac
import html
import http.client
import json
import os
import re
import shutil
import shlex
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHA256 = "2.16.840.1.101.3.4.2.1"
SHA384 = "2.16.840.1.101.3.4.2.2"
SHA512 = "2.16.840.1.101.3.4.2.3"
RSA_SHA256 = "1.2.840.113549.1.1.11"
RSA_SHA384 = "1.2.840.113549.1.1.12"
RSA_SHA512 = "1.2.840.113549.1.1.13"
RSA_ENC = "1.2.840.113549.1.1.1"
RSA_PSS = "1.2.840.113549.1.1.10"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
ECDSA_SHA384 = "1.2.840.10045.4.3.3"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def totp(secret_b32, at=None, step=30, digits=6):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return str(code).zfill(digits)


def fresh_totp(secret_b32, used):
    """A TOTP code of a time step not used yet by this secret (each code is accepted once)."""
    while True:
        step = int(time.time() // 30)
        if (secret_b32, step) not in used and time.time() % 30 < 28:
            used.add((secret_b32, step))
            return totp(secret_b32)
        time.sleep(max(0.2, 30 - time.time() % 30 + 0.1))


def previous_totp(secret_b32, used):
    """The code of the 30-s step before the current one (a TOTP window of 1 accepts it), recorded in used: a first
    code that leaves the current step free for the test. Waits for a new step when this one is about to end."""
    if time.time() % 30 > 26:
        time.sleep(30 - time.time() % 30 + 0.2)
    step = int(time.time() // 30) - 1
    used.add((secret_b32, step))
    return totp(secret_b32, at=step * 30)


def wait_until(cond, what, seconds=20):
    """Poll cond every quarter of a second until it holds; AssertionError naming what after seconds."""
    deadline = time.time() + seconds
    while not cond():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.25)


def pw(user):
    """A test user's password that meets the default password rules (12+ characters, 2+ classes, not the name)."""
    return "Pw-%012d" % (int(hashlib.sha256(user.encode()).hexdigest()[:12], 16) % 10 ** 12)


def b64(data):
    return base64.b64encode(data).decode()


def digest(text, alg="sha256"):
    return hashlib.new(alg, text.encode() if isinstance(text, str) else text).digest()


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "Reply(%d, %r)" % (self.status, self.raw[:300])


class Service:
    """One provisioned directory and one running server."""

    def __init__(self, build_dir, extra_config="", server="csc-server", provision=()):
        """server: the binary under build_dir/server/ that start() runs; "csc-server-test" is csc-server with the
        test hooks compiled in (-DCSC_TEST_HOOKS), for the few tests that need one (never the default).
        provision: more options of scripts/provision (("--sender-file",): the demo's file sender)."""
        self.build = os.path.abspath(build_dir)
        self.server = server
        self.tmp = tempfile.mkdtemp(prefix="csc-it-")
        if not os.environ.get("CSC_KEEP_TMP"):  # CSC_KEEP_TMP=1 keeps the service directories for a post-mortem
            atexit.register(shutil.rmtree, self.tmp, True)
        self.dir = os.path.join(self.tmp, "svc")
        self.port = free_port()
        self.used_otps = set()
        t0 = time.time()
        subprocess.run([os.path.join(ROOT, "scripts", "provision"), "--dir", self.dir, "--build", self.build,
                        "--port", str(self.port), "--scrypt-log2n", "10"] + list(provision),
                       check=True, stdout=subprocess.DEVNULL)
        self.env = self._read_env(os.path.join(self.dir, "demo.env"))
        self.conf = self.env["CSC_CONFIG"]
        # provision logged the first operator in: its session is ours; the TOTP steps it may have used are spent.
        self.session = self.env["CSC_ADMIN_SESSION"]
        for t in (t0, time.time()):
            self.used_otps.add((self.env["CSC_OPERATOR_TOTP_SECRET"], int(t // 30)))
        if extra_config:
            with open(self.conf, "a") as f:
                f.write(extra_config)
        self.ctx = ssl.create_default_context(cafile=self.env["CSC_TLS_CA"])
        self.proc = None
        # name -> {"password", "totp" (None until enrolled), "code" (until enrolled), "pins" {cred: PIN}}
        self.users = {}
        self._account = {}  # name -> its signed-in /account Browser
        self._pins_later = []  # (user, cred, PIN) given while the server was stopped: set by start()
        self._demo_pins = {}  # cred -> PIN of a demo user's credential made before start() (enroll-demo --pin)

    @staticmethod
    def _read_env(path):
        env = {}
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                k, v = line.split("=", 1)
                env[k] = shlex.split(v)[0] if v else ""
        return env

    def production(self, extra=""):
        """Switch this service to environment = production with what production demands of a test bed: an empty
        CRL of the demo CA in crl_dir (crl_require = yes), SoftHSM and the demo CA allowed (allow_test_components,
        allow_builtin_ca), SCAL 1 and single-factor credentials allowed. Call before start()."""
        crl_dir = os.path.join(self.dir, "crl")
        os.makedirs(crl_dir, exist_ok=True)
        ca = os.path.join(self.dir, "ca")
        index, conf = os.path.join(ca, "crl-index.txt"), os.path.join(ca, "crl.cnf")
        open(index, "w").close()
        with open(conf, "w") as f:
            f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\n"
                    "default_crl_days = 30\n" % (index, os.path.join(ca, "crl-number")))
        with open(os.path.join(ca, "crl-number"), "w") as f:
            f.write("01\n")
        subprocess.run(["openssl", "ca", "-gencrl", "-batch", "-config", conf, "-keyfile",
                        os.path.join(ca, "ca.key"), "-cert", os.path.join(ca, "ca.crt"), "-out",
                        os.path.join(crl_dir, "demo-ca.crl")], check=True, capture_output=True)
        with open(self.conf) as f:
            conf_text = f.read().replace("environment = test", "environment = production")
        with open(self.conf, "w") as f:
            f.write(conf_text + "crl_dir = crl\ncrl_require = yes\nallow_test_components = yes\n"
                    "allow_builtin_ca = yes\nallow_scal1 = yes\nallow_single_factor = yes\n" + extra)

    # --- process -----------------------------------------------------------------
    def start(self, env_extra=None):
        self.stderr_path = os.path.join(self.dir, "log", "server.stderr")
        self.stderr = open(self.stderr_path, "ab")
        env = dict(os.environ)
        env.update(env_extra or {})
        env["LSAN_OPTIONS"] = "suppressions=" + os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                             "lsan.supp")
        self.proc = subprocess.Popen([os.path.join(self.build, "server", self.server), "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=self.stderr, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.server_stderr())
            try:
                if self.post("info", {}).status == 200:
                    self._enroll_waiting()
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start: " + self.server_stderr())

    def _enroll_waiting(self):
        """Once the server runs: scripts/enroll-demo completes the demo users' enrollment (their PINs included;
        demo.env then holds CSC_TOTP_SECRET and CSC_TOTP_SECRET2), then every user add_user registered before
        start() is enrolled with the PINs create_credential was given meanwhile (a demo user's: enroll-demo --pin;
        its other waiting credentials get CSC_PIN / CSC_PIN2); PINs given for enrolled users while the server was
        stopped are set on /account."""
        if not self.env.get("CSC_TOTP_SECRET"):
            env_file = os.path.join(self.dir, "demo.env")
            pins = [a for cid, pin in self._demo_pins.items() for a in ("--pin", "%s=%s" % (cid, pin))]
            r = subprocess.run([os.path.join(ROOT, "scripts", "enroll-demo")] + pins + [env_file],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError("enroll-demo failed: %s%s" % (r.stdout, r.stderr))
            self.env = self._read_env(env_file)
            for k in ("", "2"):
                self.users[self.env["CSC_USER" + k]] = {"password": self.env["CSC_PASSWORD" + k], "code": None,
                                                        "totp": self.env["CSC_TOTP_SECRET" + k], "pins": {}}
        for name, u in list(self.users.items()):
            if u["totp"] is None:
                self.enroll(name)
        self._account.clear()  # sessions of an earlier run
        later, self._pins_later = self._pins_later, []
        for user, cred_id, pin in later:
            self.set_pin(user, cred_id, pin)

    def stop(self):
        if self.proc is None:
            return 0
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.stderr.close()
        return rc

    def stop_checked(self):
        """Stop the server and assert a clean exit: status 0 and no sanitizer report (tearDownModule)."""
        rc = self.stop()
        err = self.server_stderr()
        assert rc == 0, "server exit status %d: %s" % (rc, err)
        assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err

    def server_stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def admin(self, *args, stdin=None, check=True, session=None):
        """Run csc-admin as the provisioned operator (all roles), logging in again if its session ended;
        session= runs it with another session token ("" for none) instead."""
        r = self.admin_as(self.session if session is None else session, *args, stdin=stdin)
        if session is None and r.returncode != 0 and ("session expired" in r.stderr or "not logged in" in r.stderr):
            self.session = self.op_login(self.env["CSC_OPERATOR"], self.env["CSC_OPERATOR_PASSWORD"],
                                         self.env["CSC_OPERATOR_TOTP_SECRET"])
            r = self.admin_as(self.session, *args, stdin=stdin)
        if check and r.returncode != 0:
            raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
        return r

    def admin_as(self, session, *args, stdin=None, env=None):
        """csc-admin with the operator session token session (CSC_ADMIN_SESSION; "" or None: none)."""
        e = dict(os.environ)
        e.pop("CSC_ADMIN_SESSION", None)
        e.pop("CSC_ADMIN_SESSION_FILE", None)
        if session:
            e["CSC_ADMIN_SESSION"] = session
        if env:
            e.update(env)
        return subprocess.run([os.path.join(self.build, "server", "csc-admin"), "-c", self.conf] + list(args),
                              input=stdin, capture_output=True, text=True, env=e)

    def op_login(self, name, password, totp_secret, otp=None):
        """Log an operator in (password and a fresh TOTP code on standard input); returns the session token."""
        code = otp if otp is not None else fresh_totp(totp_secret, self.used_otps)
        r = self.admin_as(None, "login", name, stdin="%s\n%s\n" % (password, code))
        if r.returncode != 0:
            raise AssertionError("operator login failed: " + r.stderr)
        return r.stdout.strip()

    def add_operator(self, name, roles, password, session=None):
        """`csc-admin operator add NAME --roles ROLES` (the one-time code by --letter without an otp_sender, else read
        from the sender's file, as for users) and the new operator's `operator enroll` (enroll_operator). Returns the
        base32 TOTP secret csc-sam made (shown only on the new operator's terminal)."""
        code = self._issue(name, ["operator", "add", name, "--roles", roles, "--contact", "%s@example.test" % name],
                           session)
        return self.enroll_operator(name, code, password)

    def enroll_operator(self, name, code, password):
        """`csc-admin operator enroll NAME` as the new operator at their terminal: the code; once the TOTP secret is
        shown, the password twice and a first code (of the previous step: the current one stays free for a login).
        Returns the base32 secret."""
        e = dict(os.environ)
        e.pop("CSC_ADMIN_SESSION", None)
        e.pop("CSC_ADMIN_SESSION_FILE", None)
        p = subprocess.Popen([os.path.join(self.build, "server", "csc-admin"), "-c", self.conf, "operator", "enroll",
                              name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=e)
        p.stdin.write(code + "\n")
        p.stdin.flush()
        secret = None
        for line in p.stdout:
            if line.startswith("totp_secret "):
                secret = line.split()[1]
                break
        if secret is None:
            _, err = p.communicate(timeout=120)
            raise AssertionError("operator enroll %s showed no secret: %s" % (name, err))
        out, err = p.communicate("%s\n%s\n%s\n" % (password, password, previous_totp(secret, self.used_otps)),
                                 timeout=120)
        if p.returncode != 0:
            raise AssertionError("operator enroll %s failed: %s" % (name, err))
        return secret

    # --- users: enrollment and PINs (csc-admin never sees a user's secret) ---------------------
    def add_user(self, name, password, evidence=None, contact=None, pins=None, extra=(), later=False, session=None):
        """Register NAME (`csc-admin user add NAME --contact C --evidence E` plus extra; evidence default ev-NAME;
        --letter without an otp_sender, else the code is read from the file: sender's file) and enroll it on
        /enroll with password, a TOTP secret of the page's and a first code of the previous 30-s step (the current
        one stays free for the test), and pins {cred_id: PIN} for credentials made between the two. With the server running: enrolled now, returns the base32 TOTP secret. Before start():
        enrolled by start() (with the PINs create_credential is given meanwhile), returns None; svc.users[name]
        ["totp"] holds the secret then; later=True waits likewise with the server running, for svc.enroll(name)
        (credentials created meanwhile get their PINs at the enrollment: no /account sign-in, which would spend
        the current TOTP step). session: another operator's csc-admin session. svc.users[name]: password, totp,
        code (until enrolled), pins."""
        args = ["user", "add", name, "--contact", contact or "%s@example.test" % name,
                "--evidence", evidence or "ev-" + name] + list(extra)
        code = self._issue(name, args, session)
        self.users[name] = {"password": password, "code": code, "totp": None, "pins": dict(pins or {})}
        return self.enroll(name) if self.proc is not None and not later else None

    def _issue(self, name, args, session):
        """Run user add / user recover; the code from the letter csc-admin prints, or with otp_sender = file: from
        the sender's file (csc-admin never shows it then)."""
        sink = None
        with open(self.conf) as f:
            for line in f:
                m = re.match(r"\s*otp_sender\s*=\s*(\S.*?)\s*$", line)
                if m:
                    sink = m.group(1)
        if sink is None:
            out = self.admin(*(args + ["--letter"]), session=session).stdout
            m = re.search(r"^enrollment_code (\S+)$", out, re.M)
            if m is None:
                raise AssertionError("%s printed no enrollment code: %s" % (" ".join(args[:2]), out))
            return m.group(1)
        if not sink.startswith("file:"):
            raise AssertionError("the harness reads enrollment codes from a file: otp_sender only, not " + sink)
        self.admin(*args, session=session)
        with open(os.path.join(self.dir, sink[5:])) as f:
            codes = re.findall(r"(?m)^%s - ENROLL (\S+)$" % re.escape(name), f.read())
        if not codes:
            raise AssertionError("no enrollment code of %s in %s" % (name, sink))
        return codes[-1]

    def recover(self, name, password, *extra, later=False, session=None):
        """`csc-admin user recover NAME EXTRA` (--letter without a sender; password and TOTP cleared, a new code;
        --pin CRED in extra also unsets that PIN) and, with the server running (and not later), the user's new
        enrollment with password (and the PINs set_pin is given before it). Returns the new TOTP secret (None before
        start() or later)."""
        code = self._issue(name, ["user", "recover", name] + list(extra), session)
        self.users[name].update(password=password, code=code, totp=None, pins={})
        self._account.pop(name, None)
        return self.enroll(name) if self.proc is not None and not later else None

    def enroll(self, name, browser=None):
        """Drive /enroll for a user add_user registered: the name and code, then the password, the first TOTP code
        and the PINs of svc.users[name]["pins"]. Returns the TOTP secret (also in svc.users[name]["totp"])."""
        u = self.users[name]
        b = browser or Browser(self, "/enroll")
        b.get()
        b.post({"action": "code", "name": name, "code": u["code"]})
        m = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', b.text)
        if b.last.status != 200 or m is None:
            raise AssertionError("enrollment of %s: step 1 refused: %s" % (name, b.error() or b.text[:2000]))
        secret = m.group(1)
        fields = {"action": "finish", "password": u["password"], "password2": u["password"],
                  "otp": previous_totp(secret, self.used_otps)}
        for cid, pin in u["pins"].items():
            fields["pin_" + cid] = fields["pin2_" + cid] = pin
        b.post(fields)
        if b.last.status != 200 or "You are enrolled" not in b.text:
            raise AssertionError("enrollment of %s: step 2 refused: %s" % (name, b.error() or b.text[:2000]))
        u["totp"], u["code"] = secret, None
        return secret

    def create_credential(self, *args, pin=None, check=True):
        """`csc-admin credential create ARGS` (the credential's PIN is unset); returns its id. pin: the owner's
        PIN for it, set at the owner's enrollment when the owner is still waiting for it (add_user before
        start()), else on /account as the owner (set_pin)."""
        r = self.admin("credential", "create", *args, check=check)
        m = re.search(r"^credential (\S+) created", r.stdout, re.M)
        if m is None:
            if check:
                raise AssertionError("credential create printed no id: " + r.stdout)
            return None
        cid = m.group(1)
        if pin is not None:
            self.set_pin(args[list(args).index("--user") + 1], cid, pin)
        return cid

    def set_pin(self, user, cred_id, pin):
        """Set the PIN of cred_id (the user's own or delegated to the user) as the user: at the user's enrollment
        if it is still to come, else on /account (one signed-in Browser per user, kept for reuse; at the next
        start() if the server is stopped)."""
        if user not in self.users and user in (self.env["CSC_USER"], self.env["CSC_USER2"]) and self.proc is None:
            self._demo_pins[cred_id] = pin  # a demo user before start(): enroll-demo sets it (--pin)
            return
        u = self.users[user]
        if u["totp"] is None:
            u["pins"][cred_id] = pin
            return
        if self.proc is None:  # the server is stopped: on /account at the next start()
            self._pins_later.append((user, cred_id, pin))
            return
        b = self.account(user)
        b.post({"action": "pin", "cred": cred_id, "pin": pin, "pin2": pin})
        if b.last.status != 200 or 'id="user"' not in b.text:  # the session ended: sign in again
            b = self.account(user, fresh=True)
            b.post({"action": "pin", "cred": cred_id, "pin": pin, "pin2": pin})
        if b.last.status != 200 or "The PIN is set." not in b.text:
            raise AssertionError("PIN of %s for %s refused: %s" % (cred_id, user, b.error() or b.text[:2000]))

    def account(self, user, fresh=False):
        """The user's signed-in /account Browser (signed in with password and a fresh TOTP code on first use)."""
        b = self._account.get(user)
        if b is None or fresh:
            u = self.users[user]
            b = self._account[user] = Browser(self, "/account")
            b.login(user, u["password"], u["totp"])
        else:
            b.get()
        return b

    def request_restore(self, user, cred_id):
        """The user asks on /account for a restore of cred_id's key from its backup (J8: csc-admin credential restore
        needs the request's reference): the reference (RR-...). The server must run."""
        b = self.account(user)
        b.post({"action": "restore", "cred": cred_id})
        if b.last.status != 200 or 'id="user"' not in b.text:  # the session ended: sign in again
            b = self.account(user, fresh=True)
            b.post({"action": "restore", "cred": cred_id})
        m = re.search(r'id="note">Your restore request is (RR-[A-Z2-9]{12})\.', b.text)
        if m is None:
            raise AssertionError("restore request for %s refused: %s" % (cred_id, b.error() or b.text[:2000]))
        return m.group(1)

    def totp_of(self, user):
        return self.users[user]["totp"]

    # --- HTTP ----------------------------------------------------------------------
    def request(self, method, path, body=b"", headers=None, timeout=60):
        conn = http.client.HTTPSConnection("localhost", self.port, context=self.ctx, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def post(self, method, body, token=None, auth=None, raw=None):
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        if auth is not None:
            headers["Authorization"] = auth
        data = raw if raw is not None else json.dumps(body).encode()
        return self.request("POST", "/csc/v2/" + method, data, headers)

    # --- flows ---------------------------------------------------------------------
    def login(self, user=None, password=None, remember=False):
        user = user or self.env["CSC_USER"]
        password = password or self.env["CSC_PASSWORD"]
        basic = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        r = self.post("auth/login", {"rememberMe": remember} if remember else {}, auth="Basic " + basic)
        if r.status != 200:
            raise AssertionError("login failed: %r" % r)
        return r.json

    def token(self, user=None, password=None):
        return self.login(user, password)["access_token"]

    def authorize(self, token, cred, hashes, num=None, pin=None, otp_secret=None, alg=SHA256, extra=None):
        body = {"credentialID": cred, "numSignatures": num or max(1, len(hashes))}
        if hashes:
            body["hashes"] = [b64(h) for h in hashes]
            body["hashAlgorithmOID"] = alg
        auth = []
        if pin is not None:
            auth.append({"id": "PIN", "value": pin})
        if otp_secret is not None:
            auth.append({"id": "OTP", "value": fresh_totp(otp_secret, self.used_otps)})
        if auth:
            body["authData"] = auth
        if extra:
            body.update(extra)
        return self.post("credentials/authorize", body, token)

    def cert_pem(self, token, cred):
        r = self.post("credentials/info", {"credentialID": cred}, token)
        der = base64.b64decode(r.json["cert"]["certificates"][0])
        path = os.path.join(self.tmp, "%s.der" % cred)
        with open(path, "wb") as f:
            f.write(der)
        pem = path + ".pem"
        subprocess.run(["openssl", "x509", "-inform", "DER", "-in", path, "-pubkey", "-noout", "-out", pem],
                       check=True)
        return pem


class Browser:
    """Just enough of a browser for the HTML pages (/oauth2/authorize, /approve): one cookie, forms posted back
    to `path` with the page's CSRF token. After each request: `last` is the Reply, `text` its body as text,
    `set_cookie` the last Set-Cookie header seen, `csrf` the last CSRF token seen."""

    def __init__(self, svc, path="/oauth2/authorize"):
        self.svc = svc
        self.path = path
        self.jar = {}  # cookie name -> value (/enroll may hold its sign-in ticket and its step-2 ticket at once)
        self.csrf = None
        self.set_cookie = None
        self.last = None
        self.text = ""

    @property
    def cookie(self):
        """The Cookie header the browser sends (None: no cookie); assigning one replaces every cookie."""
        return "; ".join("%s=%s" % kv for kv in self.jar.items()) or None

    @cookie.setter
    def cookie(self, header):
        self.jar = dict(nv.strip().split("=", 1) for nv in (header or "").split(";") if "=" in nv)

    def _store(self, r):
        sc = r.headers.get("set-cookie")
        if sc:
            self.set_cookie = sc
            name, value = sc.split(";", 1)[0].split("=", 1)
            if value:
                self.jar[name] = value
            else:
                self.jar.pop(name, None)
        self.text = r.raw.decode(errors="replace")
        m = re.search(r'name="csrf" value="([^"]*)"', self.text)
        if m:
            self.csrf = html.unescape(m.group(1))
        self.last = r
        return r

    def get(self, path=None):
        """GET path (default: the form's own path) with the cookie."""
        headers = {"Cookie": self.cookie} if self.cookie else {}
        return self._store(self.svc.request("GET", path or self.path, headers=headers))

    def post(self, fields, csrf=True):
        """POST fields to the form's path; the page's CSRF token is added unless csrf=False or fields has one."""
        if csrf and self.csrf is not None and "csrf" not in fields:
            fields = dict(fields, csrf=self.csrf)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        return self._store(self.svc.request("POST", self.path, urllib.parse.urlencode(fields).encode(), headers))

    def error(self):
        """The text of the page's error paragraph (id="error"), or None."""
        m = re.search(r'id="error">(.*?)</p>', self.text, re.S)
        return html.unescape(m.group(1)) if m else None

    def login(self, user, password, totp_secret):
        """Sign in on the /approve page (GET, then the login form with a fresh TOTP)."""
        self.get()
        r = self.post({"action": "login", "username": user, "password": password,
                       "otp": fresh_totp(totp_secret, self.svc.used_otps)})
        assert r.status == 200 and 'id="user"' in self.text, self.text[:2000]

    def ref_for(self, cred, digest=None):
        """The /approve page's reference of the pending request for cred (and digest, if given)."""
        for m in re.finditer(r'<section class="req" id="req-([0-9a-f]{32})">(.*?)</section>', self.text, re.S):
            if '<td class="cred">%s</td>' % cred in m.group(2) and (digest is None or b64(digest) in m.group(2)):
                return m.group(1)
        return None


def verify(pubkey_pem, sig, dgst, md="sha256", pss_salt=None):
    """Verify a signature over a precomputed digest with openssl pkeyutl (DigestInfo built by openssl)."""
    with tempfile.TemporaryDirectory() as d:
        sp, dp = os.path.join(d, "sig"), os.path.join(d, "dgst")
        with open(sp, "wb") as f:
            f.write(sig)
        with open(dp, "wb") as f:
            f.write(dgst)
        cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pubkey_pem, "-in", dp, "-sigfile", sp,
               "-pkeyopt", "digest:" + md]
        if pss_salt is not None:
            cmd += ["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:%d" % pss_salt,
                    "-pkeyopt", "rsa_mgf1_md:" + md]
        r = subprocess.run(cmd, capture_output=True, text=True)
        return r.returncode == 0 and "Signature Verified Successfully" in r.stdout


def pss_params_der(md="sha256", salt=32):
    """DER RSASSA-PSS-params (RFC 8017 A.2.3) for SHA-2 with MGF1 of the same hash."""
    oids = {"sha256": "608648016503040201", "sha384": "608648016503040202", "sha512": "608648016503040203"}

    def tlv(tag, body):
        n = len(body)
        return bytes([tag]) + (bytes([n]) if n < 128 else bytes([0x81, n])) + body

    hash_alg = tlv(0x30, tlv(0x06, bytes.fromhex(oids[md])) + b"\x05\x00")
    mgf = tlv(0x30, tlv(0x06, bytes.fromhex("2a864886f70d010108")) + hash_alg)
    return tlv(0x30, tlv(0xA0, hash_alg) + tlv(0xA1, mgf) + tlv(0xA2, tlv(0x02, bytes([salt]))))
