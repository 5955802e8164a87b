"""Three nodes on one PostgreSQL database and one shared HSM (issue 13, "Atomic across nodes"), as scripts/cluster
lays them out: scripts/pg's cluster (TLS verify-full, a client certificate per node and role), node 1 provisioned and
copied into it with csc-admin db copy, its SoftHSM token shared through p11-kit server, nodes 2 and 3 on their own
ports with their own node_id and certificates. One cluster serves the whole module (`scripts/cluster --serve`, then
`scripts/cluster stop`).

Each test runs one scenario through the three nodes:
- a SAD with numSignatures 5 spent by 12 signHash calls at once, 4 per node: exactly 5 signatures, each audited;
- single use across nodes: a TOTP code, an authorization code (and its reuse revokes the grant), a PAR request_uri,
  a refresh token (reuse of a rotated one revokes the grant wherever it is presented), a one-time challenge code;
- the PIN and sign-in lock-outs counted over all nodes (max_failures = 3 in total); the per-address limit on failed
  sign-ins is per node (held in each process's memory: docs/operations.md, "Several nodes");
- an asynchronous signHash accepted by one node and polled on another; an approval asked for on node 1, decided on
  node 3's /approve page, collected on node 2; a page session signed in on node 1 and continued on node 3; the
  pages' forms before the sign-in served by one node and posted to another (the ticket key csc-sam derives);
- and at the end `csc-admin audit verify`: the three nodes appended to one chain.
"""
import base64
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import harness as H
from test_sam_faults import audited_ok

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
CLUSTER = os.path.join(H.ROOT, "scripts", "cluster")
PIN = "24681357"
RATE_MAX, RATE_WINDOW = 4, 5
TMP = DIR = None
ENV = {}
NODES = []
OAUTH_USERS = ["cl-o1", "cl-o2", "cl-o3"]


class Running:
    """Stands for the process of a node that scripts/cluster started (harness.Service's helpers only ask whether
    Service.proc is set: enrollment and PINs then go through the running pages)."""


def ports_free(first, n):
    for p in range(first, first + n):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def node(k, users, used_otps):
    """A harness.Service for node k (1..3) of the running cluster, sharing users and used TOTP steps with the
    others (a TOTP code is accepted once on any node)."""
    n = H.Service.__new__(H.Service)
    url = ENV["CSC_URLS"].split(",")[k - 1]
    n.build, n.server, n.tmp = os.path.abspath(BUILD), "csc-server", TMP
    n.dir = os.path.join(DIR, "node%d" % k)
    n.port = urllib.parse.urlsplit(url).port
    n.env = dict(ENV, CSC_URL=url)
    n.conf = ENV["CSC_NODE_CONFIGS"].split(",")[k - 1]
    n.session = ENV["CSC_ADMIN_SESSION"]
    n.used_otps = used_otps
    n.ctx = H.ssl.create_default_context(cafile=ENV["CSC_TLS_CA"])
    n.proc = Running()
    n.stderr_path = os.path.join(n.dir, "log", "server.log")
    n.users = users
    n._account, n._pins_later, n._demo_pins = {}, [], {}
    return n


def run_cluster(*args):
    # the nodes inherit the environment: in a sanitizer build, LeakSanitizer's suppressions of harness.Service.start
    env = dict(os.environ, LSAN_OPTIONS="suppressions=" + os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                      "lsan.supp"))
    return subprocess.run([CLUSTER] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, timeout=600)


def setUpModule():
    global TMP, DIR, ENV, NODES
    t0 = time.time()
    TMP = tempfile.mkdtemp(prefix="csc-cluster-")
    os.chmod(TMP, 0o711)  # PostgreSQL's user (postgres, as root) passes through to DIR/pg
    DIR = os.path.join(TMP, "cl")
    attempt = 0
    while True:  # three free ports in a row; another process may take one first
        base = H.free_port()
        if base > 65000 or not ports_free(base, 3):
            continue
        attempt += 1
        r = run_cluster("--dir", DIR, "--nodes", "3", "--no-demo", "--serve", "--build", BUILD,
                        "--scrypt-log2n", "10", "--base-port", str(base), "--pg-port", str(H.free_port()),
                        "--set", "max_failures = 3", "--set", "rate_max = %d" % RATE_MAX,
                        "--set", "rate_window = %d" % RATE_WINDOW)
        if r.returncode == 0:
            break
        if "in use" not in r.stdout or attempt == 3:
            shutil.rmtree(TMP, ignore_errors=True)
            raise RuntimeError("scripts/cluster failed (%d):\n%s" % (r.returncode, r.stdout[-6000:]))
    ENV = H.Service._read_env(os.path.join(DIR, "cluster.env"))
    users, used = {}, set()
    NODES = [node(k, users, used) for k in (1, 2, 3)]
    n1 = NODES[0]
    for t in (t0, time.time()):  # the operator's TOTP steps scripts/provision may have used
        used.add((ENV["CSC_OPERATOR_TOTP_SECRET"], int(t // 30)))
    for k in ("", "2"):
        users[ENV["CSC_USER" + k]] = {"password": ENV["CSC_PASSWORD" + k], "code": None,
                                      "totp": ENV["CSC_TOTP_SECRET" + k], "pins": {}}
        # scripts/enroll-demo's first codes were of the step before its own
        used.update((ENV["CSC_TOTP_SECRET" + k], int(t // 30) - d) for t in (t0, time.time()) for d in (0, 1))
    # Registered and enrolled through node 1 (csc-admin through node 1's csc-sam, keys in the shared HSM); the PINs
    # are set at the enrollment.
    creds = {"cl-signer": [("cl-budget", "PIN", 5), ("cl-lock", "PIN", 5), ("cl-otp", "PIN AND OTP", 5),
                           ("cl-ch", "PIN AND CHALLENGE", 5), ("cl-async", "PIN", 5)],
             "cl-approver": [("cl-ap", "APPROVAL", 5)]}
    for user in ["cl-signer", "cl-approver", "cl-locked"] + OAUTH_USERS:
        n1.add_user(user, H.pw(user), later=True)
        for cid, auth, num in creds.get(user, []):
            n1.create_credential("--id", cid, "--user", user, "--key", "p256", "--auth", auth, "--scal", "1",
                                 "--multisign", str(num), pin=PIN if "PIN" in auth else None)
        n1.enroll(user)


def tearDownModule():
    if DIR is None:
        return
    try:
        v = NODES[0].admin("audit", "verify", check=False) if NODES else None
    finally:
        r = run_cluster("stop", "--dir", DIR)
    logs = {}
    for k in (1, 2, 3):
        p = os.path.join(DIR, "node%d" % k, "log", "server.log")
        if os.path.exists(p):
            with open(p, errors="replace") as f:
                logs[k] = f.read()
    if not os.environ.get("CSC_KEEP_TMP"):
        shutil.rmtree(TMP, ignore_errors=True)
    assert r.returncode == 0, "scripts/cluster stop failed: " + r.stdout
    for k, text in logs.items():
        for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error"):
            assert bad not in text, "node%d: %s" % (k, text)
    # the three nodes appended to one audit chain, which verifies as a whole
    assert v is not None and v.returncode == 0, v and (v.stdout + v.stderr)
    assert re.match(r"audit log OK: \d+ records", v.stdout), v.stdout


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def pkce():
    verifier = b64url(secrets.token_bytes(40))
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def client_auth():
    pair = "%s:%s" % (ENV["CSC_OAUTH_CLIENT_ID"], ENV["CSC_OAUTH_CLIENT_SECRET"])
    return "Basic " + base64.b64encode(pair.encode()).decode()


def token_endpoint(n, fields):
    return n.request("POST", "/oauth2/token", urllib.parse.urlencode(fields).encode(),
                     {"Content-Type": "application/x-www-form-urlencoded", "Authorization": client_auth()})


def redirect_params(r):
    assert r.status == 302, r
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["location"]).query))


def sign_in_page(b, n, user):
    """The login form of the OAuth page b (of node n) with user's password and a TOTP code not used yet."""
    u = n.users[user]
    return b.post({"action": "login", "username": user, "password": u["password"],
                   "otp": H.fresh_totp(u["totp"], n.used_otps)})


class ClusterCase(unittest.TestCase):
    def assertCscError(self, r, status, error=None):
        self.assertEqual(r.status, status, r)
        self.assertIsInstance(r.json, dict, r)
        self.assertIsInstance(r.json.get("error"), str, r)
        self.assertIsInstance(r.json.get("error_description"), str, r)
        if error is not None:
            self.assertEqual(r.json["error"], error, r)

    def signer_token(self, n):
        return n.token("cl-signer", H.pw("cl-signer"))


class TestSadBudget(ClusterCase):
    def test_twelve_calls_over_three_nodes_sign_five(self):
        n1 = NODES[0]
        token = self.signer_token(n1)
        r = n1.authorize(token, "cl-budget", [], num=5, pin=PIN)
        self.assertEqual(r.status, 200, r)
        sad = r.json["SAD"]
        digests = [H.b64(H.digest("budget %d %s" % (i, time.time()))) for i in range(12)]
        answers = [None] * 12
        start = threading.Barrier(12)

        def call(i):
            n = NODES[i % 3]
            start.wait()
            try:
                answers[i] = n.post("signatures/signHash", {"credentialID": "cl-budget", "SAD": sad,
                                                            "hashes": [digests[i]], "signAlgo": H.ECDSA_SHA256},
                                    token)
            except Exception as e:  # a hang or a dropped connection fails the test below
                answers[i] = e

        threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual([a for a in answers if not isinstance(a, H.Reply)], [])
        self.assertEqual(sorted(a.status for a in answers), [200] * 5 + [400] * 7, answers)
        for a in answers:
            if a.status == 400:
                self.assertCscError(a, 400)
        signed = sorted(digests[i] for i, a in enumerate(answers) if a.status == 200)
        pem = n1.cert_pem(token, "cl-budget")
        for i, a in enumerate(answers):
            if a.status == 200:
                self.assertTrue(H.verify(pem, base64.b64decode(a.json["signatures"][0]), base64.b64decode(digests[i])))
        self.assertEqual(sorted(d for d in audited_ok(n1, "cl-budget") if d in digests), signed)
        # the spent SAD is refused on every node
        for n in NODES:
            r = n.post("signatures/signHash", {"credentialID": "cl-budget", "SAD": sad, "hashes": [digests[0]],
                                               "signAlgo": H.ECDSA_SHA256}, token)
            self.assertCscError(r, 400)


class TestSingleUse(ClusterCase):
    def test_totp_code_used_on_node1_refused_on_2_and_3(self):
        u = NODES[0].users["cl-signer"]
        code = H.fresh_totp(u["totp"], NODES[0].used_otps)
        d = H.digest("totp %s" % time.time())

        def authorize(n):
            body = {"credentialID": "cl-otp", "numSignatures": 1, "hashes": [H.b64(d)],
                    "hashAlgorithmOID": H.SHA256, "authData": [{"id": "PIN", "value": PIN},
                                                               {"id": "OTP", "value": code}]}
            return n.post("credentials/authorize", body, self.signer_token(n))

        self.assertEqual(authorize(NODES[0]).status, 200)
        for n in NODES[1:]:
            self.assertCscError(authorize(n), 400, "invalid_authentication_data")

    def code_flow(self, n, user, **params):
        """The OAuth pages of node n up to the code (service scope). Returns (code, verifier)."""
        verifier, challenge = pkce()
        state = "st-" + secrets.token_hex(4)
        q = {"response_type": "code", "client_id": ENV["CSC_OAUTH_CLIENT_ID"],
             "redirect_uri": ENV["CSC_OAUTH_REDIRECT_URI"], "code_challenge": challenge,
             "code_challenge_method": "S256", "state": state}
        q.update(params)
        b = H.Browser(n)
        r = b.get("/oauth2/authorize?" + urllib.parse.urlencode(q))
        self.assertEqual(r.status, 200, r)
        got = redirect_params(sign_in_page(b, n, user))
        self.assertEqual(got.get("state"), state, got)
        self.assertIn("code", got)
        return got["code"], verifier

    def exchange(self, n, code, verifier):
        return token_endpoint(n, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                  "redirect_uri": ENV["CSC_OAUTH_REDIRECT_URI"]})

    def test_authorization_code_once_across_nodes(self):
        n1, n2, n3 = NODES
        code, verifier = self.code_flow(n1, "cl-o1")
        r = self.exchange(n2, code, verifier)
        self.assertEqual(r.status, 200, r)
        access = r.json["access_token"]
        self.assertEqual(n3.post("credentials/list", {}, access).status, 200)
        r = self.exchange(n3, code, verifier)
        self.assertEqual((r.status, r.json and r.json.get("error")), (400, "invalid_grant"), r)
        # the code's reuse revoked the grant it had given: its access token, on every node
        for n in NODES:
            self.assertEqual(n.post("credentials/list", {}, access).status, 401)

    def test_signed_in_page_session_continues_on_another_node(self):
        """Signed in on node 1's page, the consent posted to node 3 (the session is in the database), the code
        exchanged at node 2, the credential token signing on node 1."""
        n1, n2, n3 = NODES
        user, cred = ENV["CSC_USER2"], ENV["CSC_CRED2"]
        d = H.digest("pages %s" % time.time())
        verifier, challenge = pkce()
        q = {"response_type": "code", "client_id": ENV["CSC_OAUTH_CLIENT_ID"],
             "redirect_uri": ENV["CSC_OAUTH_REDIRECT_URI"], "code_challenge": challenge,
             "code_challenge_method": "S256", "state": "st-pages", "scope": "credential", "credentialID": cred,
             "numSignatures": "1", "hashes": b64url(d), "hashAlgorithmOID": H.SHA256}
        b = H.Browser(n1)
        self.assertEqual(b.get("/oauth2/authorize?" + urllib.parse.urlencode(q)).status, 200)
        sign_in_page(b, n1, user)
        self.assertIn('id="approve"', b.text, b.error())
        b.svc = n3
        got = redirect_params(b.post({"action": "approve", "pin": ENV["CSC_PIN2"]}))
        self.assertEqual(got.get("state"), "st-pages")
        r = self.exchange(n2, got["code"], verifier)
        self.assertEqual(r.status, 200, r)
        ctoken = r.json["access_token"]
        r = n1.post("signatures/signHash", {"credentialID": cred, "hashes": [H.b64(d)], "signAlgo": H.ECDSA_SHA256},
                    ctoken)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(H.verify(n1.cert_pem(ctoken, cred), base64.b64decode(r.json["signatures"][0]), d))

    def test_pre_sign_in_forms_posted_to_another_node(self):
        """The pages' ticket cookie and form token before the sign-in are MACed under the key each node's csc-sam
        derives from the shared HSM: node 1's authorization page signs in on node 2 (the code exchanged at node 3),
        node 3's /approve login form on node 1."""
        n1, n2, n3 = NODES
        user = "cl-o1"
        verifier, challenge = pkce()
        q = {"response_type": "code", "client_id": ENV["CSC_OAUTH_CLIENT_ID"],
             "redirect_uri": ENV["CSC_OAUTH_REDIRECT_URI"], "code_challenge": challenge,
             "code_challenge_method": "S256", "state": "st-form"}
        b = H.Browser(n1)
        self.assertEqual(b.get("/oauth2/authorize?" + urllib.parse.urlencode(q)).status, 200)
        b.svc = n2
        got = redirect_params(sign_in_page(b, n2, user))
        self.assertEqual(got.get("state"), "st-form", got)
        r = self.exchange(n3, got["code"], verifier)
        self.assertEqual(r.status, 200, r)
        a = H.Browser(n3, "/approve")
        self.assertEqual(a.get().status, 200)
        a.svc = n1
        u = n1.users[user]
        r = a.post({"action": "login", "username": user, "password": u["password"],
                    "otp": H.fresh_totp(u["totp"], n1.used_otps)})
        self.assertEqual(r.status, 200, r)
        self.assertIn('id="user"', a.text, a.error())
        for n in NODES:
            self.assertNotIn("gave no key for the sign-in pages", n.server_stderr())

    def test_par_request_uri_once_across_nodes(self):
        n1, n2, n3 = NODES
        verifier, challenge = pkce()
        fields = {"response_type": "code", "client_id": ENV["CSC_OAUTH_CLIENT_ID"],
                  "redirect_uri": ENV["CSC_OAUTH_REDIRECT_URI"], "state": "par-cl", "code_challenge": challenge,
                  "code_challenge_method": "S256"}
        r = n1.request("POST", "/oauth2/pushed_authorize", urllib.parse.urlencode(fields).encode(),
                       {"Content-Type": "application/x-www-form-urlencoded", "Authorization": client_auth()})
        self.assertEqual(r.status, 201, r)
        path = "/oauth2/authorize?" + urllib.parse.urlencode({"client_id": ENV["CSC_OAUTH_CLIENT_ID"],
                                                              "request_uri": r.json["request_uri"]})
        # pushed to node 1, used on node 2 (the request lives in the database), the code exchanged on node 3
        b = H.Browser(n2)
        self.assertEqual(b.get(path).status, 200)
        got = redirect_params(sign_in_page(b, n2, "cl-o2"))
        self.assertEqual(got.get("state"), "par-cl")
        self.assertEqual(self.exchange(n3, got["code"], verifier).status, 200)
        for n in NODES:
            self.assertEqual(H.Browser(n).get(path).status, 400, "request_uri used again on port %d" % n.port)

    def test_refresh_token_reuse_revokes_wherever_detected(self):
        n1, n2, n3 = NODES
        code, verifier = self.code_flow(n1, "cl-o3")
        r = self.exchange(n1, code, verifier)
        self.assertEqual(r.status, 200, r)
        old = r.json["refresh_token"]
        r = token_endpoint(n1, {"grant_type": "refresh_token", "refresh_token": old})
        self.assertEqual(r.status, 200, r)
        new, access = r.json["refresh_token"], r.json["access_token"]
        self.assertNotEqual(new, old)
        self.assertEqual(n2.post("credentials/list", {}, access).status, 200)
        r = token_endpoint(n2, {"grant_type": "refresh_token", "refresh_token": old})
        self.assertEqual((r.status, r.json and r.json.get("error")), (400, "invalid_grant"), r)
        # the grant is revoked: the new refresh token on node 3, the new access token on every node
        r = token_endpoint(n3, {"grant_type": "refresh_token", "refresh_token": new})
        self.assertEqual((r.status, r.json and r.json.get("error")), (400, "invalid_grant"), r)
        for n in NODES:
            self.assertEqual(n.post("credentials/list", {}, access).status, 401)

    def test_challenge_code_asked_on_1_used_on_2_refused_on_3(self):
        n1, n2, n3 = NODES
        with open(n1.conf) as f:
            sink = re.search(r"(?m)^otp_sender = file:(.+)$", f.read()).group(1)
        r = n1.post("credentials/getChallenge", {"credentialID": "cl-ch", "authObjectID": "CHALLENGE"},
                    self.signer_token(n1))
        self.assertEqual(r.status, 204, r)
        with open(sink) as f:
            lines = [ln.split() for ln in f.read().splitlines()]
        code = [ln[3] for ln in lines if ln[:3] == ["cl-signer", "cl-ch", "CHALLENGE"]][-1]

        def authorize(n):
            d = H.digest("challenge %d %s" % (n.port, time.time()))
            body = {"credentialID": "cl-ch", "numSignatures": 1, "hashes": [H.b64(d)], "hashAlgorithmOID": H.SHA256,
                    "authData": [{"id": "CHALLENGE", "value": code}, {"id": "PIN", "value": PIN}]}
            return n.post("credentials/authorize", body, self.signer_token(n))

        self.assertEqual(authorize(n2).status, 200)
        self.assertCscError(authorize(n3), 400, "invalid_authentication_data")


class TestShared(ClusterCase):
    def test_pin_lockout_counted_over_all_nodes(self):
        n1 = NODES[0]
        r = n1.authorize(self.signer_token(n1), "cl-lock", [], num=1, pin=PIN)
        self.assertEqual(r.status, 200, r)  # the right PIN works before the lock, and starts the count over
        for n in NODES:  # max_failures = 3: one wrong PIN on each node
            self.assertCscError(n.authorize(self.signer_token(n), "cl-lock", [], num=1, pin="11112222"), 400)
        for n in NODES:
            self.assertCscError(n.authorize(self.signer_token(n), "cl-lock", [], num=1, pin=PIN), 400)
        q = n1.admin("audit", "query", "--event", "lockout", "--credential", "cl-lock")
        self.assertEqual(len(q.stdout.splitlines()), 1, q.stdout)

    def test_user_lockout_counted_over_all_nodes(self):
        user = "cl-locked"
        right = "Basic " + H.b64(("%s:%s" % (user, H.pw(user))).encode())
        wrong = "Basic " + H.b64(("%s:not the password" % user).encode())
        self.assertEqual(NODES[2].post("auth/login", {}, auth=right).status, 200)
        for n in NODES:  # max_failures = 3: one wrong password on each node
            self.assertCscError(n.post("auth/login", {}, auth=wrong), 400, "authentication_error")
        for n in NODES:
            self.assertCscError(n.post("auth/login", {}, auth=right), 400, "authentication_error")

    def test_failed_sign_in_limit_per_address_is_per_node(self):
        """rate_max failed sign-ins from one address put it over the limit on the node that counted them only: each
        process keeps its counters in memory (docs/operations.md, "Several nodes")."""
        n1, n2, n3 = NODES
        wrong = "Basic " + H.b64(b"nobody-here:wrong password")
        for _ in range(RATE_MAX):
            self.assertCscError(n1.post("auth/login", {}, auth=wrong), 400, "authentication_error")
        r = n1.post("auth/login", {}, auth=wrong)
        self.assertCscError(r, 429, "temporarily_unavailable")
        for n in (n2, n3):
            self.assertCscError(n.post("auth/login", {}, auth=wrong), 400, "authentication_error")
            self.assertEqual(n.post("auth/login", {}, auth="Basic " + H.b64(b"cl-signer:" +
                                                                              H.pw("cl-signer").encode())).status, 200)
        time.sleep(RATE_WINDOW + 0.5)
        self.assertTrue(self.signer_token(n1))  # node 1's window is over: signs in again

    def test_async_sign_on_node1_polled_on_node2(self):
        n1, n2, _ = NODES
        d = H.digest("async %s" % time.time())
        token = self.signer_token(n1)
        r = n1.authorize(token, "cl-async", [d], pin=PIN)
        self.assertEqual(r.status, 200, r)
        r = n1.post("signatures/signHash", {"credentialID": "cl-async", "SAD": r.json["SAD"], "hashes": [H.b64(d)],
                                            "signAlgo": H.ECDSA_SHA256, "operationMode": "A"}, token)
        self.assertEqual(r.status, 200, r)
        rid = r.json["responseID"]
        token2 = self.signer_token(n2)
        deadline = time.time() + 60
        while True:
            p = n2.post("signatures/signPolling", {"requestID": rid}, token2)
            if p.status != 202 or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(p.status, 200, p)
        self.assertTrue(H.verify(n2.cert_pem(token2, "cl-async"), base64.b64decode(p.json["signatures"][0]), d))

    def test_approval_asked_on_1_decided_on_3_checked_on_2(self):
        n1, n2, n3 = NODES
        d = H.digest("approval %s" % time.time())
        user = "cl-approver"
        r = n1.post("credentials/authorize", {"credentialID": "cl-ap", "numSignatures": 1, "hashes": [H.b64(d)],
                                              "hashAlgorithmOID": H.SHA256}, n1.token(user, H.pw(user)))
        self.assertEqual(r.status, 202, r)
        handle = r.json["handle"]
        token2 = n2.token(user, H.pw(user))
        self.assertEqual(n2.post("credentials/authorizeCheck", {"handle": handle}, token2).status, 202)
        b = H.Browser(n3, "/approve")
        b.login(user, H.pw(user), n3.users[user]["totp"])
        ref = b.ref_for("cl-ap", d)
        self.assertIsNotNone(ref, b.text[:3000])
        b.post({"action": "approve", "ref": ref})
        self.assertIn("Approved", b.text)
        r = n2.post("credentials/authorizeCheck", {"handle": handle}, token2)
        self.assertEqual(r.status, 200, r)
        r = n3.post("signatures/signHash", {"credentialID": "cl-ap", "SAD": r.json["SAD"], "hashes": [H.b64(d)],
                                            "signAlgo": H.ECDSA_SHA256}, n3.token(user, H.pw(user)))
        self.assertEqual(r.status, 200, r)
        # collected once: the handle is spent on every node
        for n in NODES:
            r = n.post("credentials/authorizeCheck", {"handle": handle}, n.token(user, H.pw(user)))
            self.assertCscError(r, 400)


if __name__ == "__main__":
    unittest.main()
