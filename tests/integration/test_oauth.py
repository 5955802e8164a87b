"""OAuth 2.0 authorization server integration tests: every grant and error path, against the real server."""
import base64
import collections
import hashlib
import http.client
import json
import os
import re
import secrets
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import harness as H

SVC = None
BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
REDIRECT = "http://localhost:8765/callback"
PIN = "97531864"
CLIENTS = {}
TOTP = {}
POOL = ["user%d" % i for i in range(8)]


def pick_user():
    """A pool user whose code of the current 30 s step was not used yet (waits only when all were)."""
    while True:
        step = int(time.time() // 30)
        for user in POOL:
            if (TOTP[user], step) not in SVC.used_otps and time.time() % 30 < 28:
                return user
        time.sleep(max(0.2, 30 - time.time() % 30 + 0.1))


def setUpModule():
    global SVC
    SVC = H.Service(BUILD, extra_config="oauth_code_ttl = 10\nrate_max = 1000\nmax_failures = 3\n"
                                         "credential_token_ttl = 10\n")
    # A pool of users: each TOTP code is accepted once per user, so logins rotate over users instead of
    # waiting 30 s for the next code of one user.
    for user in POOL + ["oscar", "olocked"]:
        SVC.add_user(user, H.pw(user))  # enrolled by start(), with the PINs below
    creds = [("oscar-ec", "oscar", "explicit")]
    for user in POOL:
        creds += [(user + "-ec", user, "explicit"), (user + "-oauth", user, "oauth2code")]
    for cid, user, mode in creds:
        SVC.create_credential("--id", cid, "--user", user, "--key", "p256", "--auth", "PIN",
                  "--scal", "2", "--multisign", "5", "--auth-mode", mode, pin=PIN)
    SVC.create_credential("--id", "user7-q", "--user", "user7", "--key", "p256", "--auth", "PIN",
              "--scal", "2", "--multisign", "5", "--qualifier", "jp_test_qes", pin=PIN)
    for cid, grants in (("app1", "authorization_code,refresh_token,client_credentials"),
                        ("app2", "authorization_code,refresh_token"), ("codeonly", "authorization_code")):
        out = SVC.admin("client", "add", cid, "--redirect", REDIRECT, "--redirect", "https://app.example/cb",
                        "--name", "Client " + cid, "--grants", grants).stdout
        CLIENTS[cid] = re.search(r"^client_secret (\S+)$", out, re.M).group(1)
    SVC.start()
    for user in POOL + ["oscar", "olocked"]:
        TOTP[user] = SVC.totp_of(user)


def tearDownModule():
    SVC.stop_checked()


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def pkce():
    verifier = b64url(secrets.token_bytes(40))
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def authorize_url(client="app1", redirect=REDIRECT, challenge=None, **params):
    q = {"response_type": "code", "client_id": client, "code_challenge": challenge or pkce()[1],
         "code_challenge_method": "S256", "state": "st-" + secrets.token_hex(4)}
    if redirect is not None:
        q["redirect_uri"] = redirect
    q.update(params)
    q = {k: v for k, v in q.items() if v is not None}
    return "/oauth2/authorize?" + urllib.parse.urlencode(q), q.get("state")


def redirect_params(r):
    assert r.status == 302, r
    loc = r.headers["location"]
    return loc, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))


def token(fields, client="app1", basic=True, secret=None):
    secret = secret or CLIENTS.get(client, "x")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % (client, secret)).encode()).decode()
    else:
        fields = dict(fields, client_id=client, client_secret=secret)
    return SVC.request("POST", "/oauth2/token", urllib.parse.urlencode(fields).encode(), headers)


def login(b, user):
    otp = H.fresh_totp(TOTP[user], SVC.used_otps)
    return b.post({"action": "login", "username": user, "password": H.pw(user), "otp": otp})


def code_flow(user=None, client="app1", **params):
    """Authorize (service scope unless params say otherwise) up to the code. Returns (code, verifier, browser)."""
    user = user or pick_user()
    verifier, challenge = pkce()
    b = H.Browser(SVC)
    url, state = authorize_url(client=client, challenge=challenge, **params)
    r = b.get(url)
    assert r.status == 200, r
    r = login(b, user)
    if r.status == 200 and b"id=\"approve\"" in r.raw:
        r = b.post({"action": "approve", "pin": PIN})
    loc, q = redirect_params(r)
    assert q.get("state") == state, loc
    assert "code" in q, loc
    return q["code"], verifier, b


class Base(unittest.TestCase):
    def assertJsonError(self, r, status, error):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json["error"], error, r)
        self.assertIsInstance(r.json.get("error_description"), str)


class TestMetadata(Base):
    def test_metadata(self):
        r = SVC.request("GET", "/.well-known/oauth-authorization-server")
        self.assertEqual(r.status, 200, r)
        m = r.json
        base = "https://localhost:%d" % SVC.port
        self.assertEqual(m["issuer"], base)
        self.assertEqual(m["authorization_endpoint"], base + "/oauth2/authorize")
        self.assertEqual(m["pushed_authorization_request_endpoint"], base + "/oauth2/pushed_authorize")
        self.assertEqual(m["code_challenge_methods_supported"], ["S256"])
        self.assertIn("client_secret_basic", m["token_endpoint_auth_methods_supported"])
        self.assertIn("https://cloudsignatureconsortium.org/2025/credential", m["authorization_details_types_supported"])

    def test_info_advertises_oauth(self):
        j = SVC.post("info", {}).json
        self.assertIn("oauth2code", j["authType"])
        self.assertEqual(j["oauth2Issuer"], "https://localhost:%d" % SVC.port)
        self.assertTrue(j["supportedHashTypes"])


class TestAuthorizeErrors(Base):
    def test_errors_shown_not_redirected(self):
        b = H.Browser(SVC)
        for url in (authorize_url(client="nope")[0], authorize_url(redirect="https://evil.example/cb")[0],
                    "/oauth2/authorize?client_id=app1&client_id=app2"):
            r = b.get(url)
            self.assertEqual(r.status, 400, r)
            self.assertIn("text/html", r.headers["content-type"])
            self.assertNotIn("location", r.headers)

    def test_errors_redirected(self):
        cases = [({"code_challenge": None}, "invalid_request"), ({"code_challenge_method": "plain"}, "invalid_request"),
                 ({"response_type": "token"}, "unsupported_response_type"), ({"scope": "everything"}, "invalid_scope"),
                 ({"scope": "credential", "authorization_details": "[]"}, "invalid_request"),
                 ({"scope": "credential"}, "invalid_request"),
                 ({"scope": "credential", "credentialID": "olga-ec", "numSignatures": "0"}, "invalid_request"),
                 ({"scope": "credential", "credentialID": "olga-ec", "numSignatures": "1", "hashes": "!!"},
                  "invalid_request")]
        for params, error in cases:
            with self.subTest(params=params):
                url, state = authorize_url(**params)
                r = H.Browser(SVC).get(url)
                loc, q = redirect_params(r)
                self.assertTrue(loc.startswith(REDIRECT + "?"), loc)
                self.assertEqual(q["error"], error, loc)
                self.assertEqual(q.get("state"), state)

    def test_pages_are_safe(self):
        b = H.Browser(SVC)
        r = b.get(authorize_url()[0])
        self.assertEqual(r.status, 200, r)
        csp = r.headers.get("content-security-policy", "")
        self.assertIn("default-src 'none'", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertEqual(r.headers.get("x-frame-options"), "DENY")
        for attr in ("HttpOnly", "Secure", "SameSite=Strict"):
            self.assertIn(attr, b.set_cookie)
        page = r.raw.decode()
        self.assertNotRegex(page, r'(src|href)="https?://')
        self.assertIn("Client app1", page)

    def test_csrf_required(self):
        b = H.Browser(SVC)
        b.get(authorize_url()[0])
        r = b.post({"action": "login", "username": "user0", "password": "x", "otp": "123456"}, csrf=False)
        self.assertEqual(r.status, 400, r)
        # The session is gone: even the right token fails now.
        r = b.post({"action": "login", "username": "user0", "password": "x", "otp": "123456"})
        self.assertEqual(r.status, 400, r)

    def test_session_id_changes_at_login(self):
        user = pick_user()
        b = H.Browser(SVC)
        b.get(authorize_url(scope="credential", credentialID=user + "-ec", numSignatures="1",
                            hashes=b64url(H.digest("fixation")), hashAlgorithmOID=H.SHA256)[0])
        planted = b.cookie
        r = login(b, user)
        self.assertEqual(r.status, 200, r)
        self.assertNotEqual(b.cookie, planted)  # a fresh id once signed in
        stale = H.Browser(SVC)
        stale.cookie, stale.csrf = planted, b.csrf
        r = stale.post({"action": "approve", "pin": PIN})
        self.assertEqual(r.status, 400, r)  # the id from before the login is worth nothing
        loc, q = redirect_params(b.post({"action": "approve", "pin": PIN}))
        self.assertIn("code", q)

    def test_no_cookie(self):
        b = H.Browser(SVC)
        b.get(authorize_url()[0])
        b.cookie = None
        r = b.post({"action": "login", "username": "user0", "password": "x", "otp": "123456"})
        self.assertEqual(r.status, 400, r)

    def test_wrong_login_stays_on_page_then_deny(self):
        b = H.Browser(SVC)
        url, state = authorize_url()
        b.get(url)
        r = b.post({"action": "login", "username": "user1", "password": "wrong", "otp": "000000"})
        self.assertEqual(r.status, 200, r)
        self.assertIn(b'id="error"', r.raw)
        self.assertIn(b'value="user1"', r.raw)  # the user name is kept
        r = b.post({"action": "deny"})
        loc, q = redirect_params(r)
        self.assertEqual(q["error"], "access_denied")
        self.assertEqual(q["state"], state)

    def test_operator_reset_ends_signed_in_sessions(self):
        """Issue 9 item 7: a browser signed in on the authorization page before an operator reset the user's
        factors (issue 12: user recover) gets no code afterwards (the session is kept in csc-server's memory, out of
        csc-admin's reach: the user's epoch voids it)."""
        user = "reset-" + secrets.token_hex(3)
        SVC.add_user(user, H.pw(user), later=True)
        SVC.create_credential("--id", user + "-oauth", "--user", user, "--key", "p256", "--auth", "PIN",
                              "--scal", "2", "--multisign", "5", "--auth-mode", "oauth2code", pin=PIN)
        TOTP[user] = SVC.enroll(user)
        b = H.Browser(SVC)
        url, state = authorize_url(scope="credential", credentialID=user + "-oauth", numSignatures="1",
                                   hashes=b64url(H.digest("reset")), hashAlgorithmOID=H.SHA256)
        self.assertEqual(b.get(url).status, 200)
        r = login(b, user)
        self.assertEqual(r.status, 200, r)
        self.assertIn(b'id="approve"', r.raw)
        SVC.admin("user", "recover", user, "--letter")
        r = b.post({"action": "approve", "pin": PIN})
        if r.status == 302:
            loc, q = redirect_params(r)
            self.assertNotIn("code", q, loc)
        else:
            self.assertNotIn(b"code=", r.raw)
        self.assertIn("revoked: tokens=0 sads=0 pending=0",
                      SVC.admin("audit", "query", "--user", user, "--event", "enroll").stdout)

    def test_user_lockout_through_the_page(self):
        for _ in range(3):
            b = H.Browser(SVC)
            b.get(authorize_url()[0])
            r = b.post({"action": "login", "username": "olocked", "password": "wrong", "otp": "000000"})
            self.assertIn(b'id="error"', r.raw)
        b = H.Browser(SVC)
        b.get(authorize_url()[0])
        r = login(b, "olocked")
        self.assertEqual(r.status, 200, r)
        # Locked: the right password and code are refused, and the page says what it says to a wrong password.
        self.assertIn(b'id="error">The user name, password or one-time code is not correct.<', r.raw)
        self.assertNotIn(b"account is locked", r.raw)


class TestCodeGrant(Base):
    def test_service_scope_refresh_rotation_and_reuse(self):
        user = pick_user()
        code, verifier, _ = code_flow(user)
        r = token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                   "code_verifier": verifier})
        self.assertEqual(r.status, 200, r)
        t = r.json
        self.assertEqual(t["token_type"], "Bearer")
        self.assertEqual(t["scope"], "service")
        self.assertIn("refresh_token", t)
        self.assertEqual(r.headers.get("cache-control"), "no-store")
        lst = SVC.post("credentials/list", {}, t["access_token"])
        self.assertEqual(sorted(lst.json["credentialIDs"]), [user + "-ec", user + "-oauth"])
        # Rotation: a new refresh token; the old one is spent.
        r2 = token({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]})
        self.assertEqual(r2.status, 200, r2)
        self.assertNotEqual(r2.json["refresh_token"], t["refresh_token"])
        self.assertEqual(SVC.post("credentials/list", {}, r2.json["access_token"]).status, 200)
        # Reuse of the rotated token revokes the whole grant.
        self.assertJsonError(token({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}), 400,
                             "invalid_grant")
        self.assertEqual(SVC.post("credentials/list", {}, r2.json["access_token"]).status, 401)
        self.assertJsonError(token({"grant_type": "refresh_token", "refresh_token": r2.json["refresh_token"]}), 400,
                             "invalid_grant")

    def test_client_secret_post_and_client_errors(self):
        code, verifier, _ = code_flow()
        fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
        self.assertJsonError(token(fields, secret="wrong-secret"), 401, "invalid_client")
        self.assertJsonError(SVC.request("POST", "/oauth2/token", urllib.parse.urlencode(fields).encode(),
                                         {"Content-Type": "application/x-www-form-urlencoded"}), 401, "invalid_client")
        self.assertJsonError(token(fields, client="app2"), 400, "invalid_grant")  # another client's code
        r = token(fields, basic=False)
        self.assertEqual(r.status, 200, r)

    def test_pkce_mismatch(self):
        code, verifier, _ = code_flow()
        self.assertJsonError(token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                    "code_verifier": pkce()[0]}), 400, "invalid_grant")

    def test_redirect_uri_must_match(self):
        code, verifier, _ = code_flow()
        self.assertJsonError(token({"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": "https://app.example/cb", "code_verifier": verifier}), 400,
                             "invalid_grant")

    def test_code_reuse_revokes(self):
        code, verifier, _ = code_flow()
        fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
        first = token(fields)
        self.assertEqual(first.status, 200, first)
        self.assertJsonError(token(fields), 400, "invalid_grant")
        self.assertEqual(SVC.post("credentials/list", {}, first.json["access_token"]).status, 401)

    def test_code_expires(self):
        code, verifier, _ = code_flow()
        time.sleep(11)  # oauth_code_ttl = 10 here
        self.assertJsonError(token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                    "code_verifier": verifier}), 400, "invalid_grant")

    def test_grant_type_errors(self):
        self.assertJsonError(token({}), 400, "invalid_request")
        self.assertJsonError(token({"grant_type": "password"}), 400, "unsupported_grant_type")
        self.assertJsonError(token({"grant_type": "client_credentials"}, client="app2"), 400, "unauthorized_client")
        self.assertJsonError(token({"grant_type": "authorization_code", "code": "x"}), 400, "invalid_request")

    def test_client_credentials(self):
        r = token({"grant_type": "client_credentials", "scope": "service"})
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("refresh_token", r.json)
        r = SVC.post("credentials/list", {}, r.json["access_token"])
        self.assertJsonError(r, 403, "insufficient_scope")


class TestCredentialScope(Base):
    def credential_token(self, user, kind="ec", hashes=None, num=1, **extra):
        hashes = hashes if hashes is not None else [H.digest("oauth %s" % secrets.token_hex(4))]
        params = {"scope": "credential", "credentialID": user + "-" + kind, "numSignatures": str(num),
                  "hashes": ",".join(b64url(h) for h in hashes), "hashAlgorithmOID": H.SHA256}
        params.update(extra)
        code, verifier, b = code_flow(user, **params)
        r = token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier})
        self.assertEqual(r.status, 200, r)
        return r.json, hashes

    def test_credential_token_signs_once_and_only_its_digest(self):
        user = pick_user()
        t, hashes = self.credential_token(user)
        self.assertEqual(t["scope"], "credential")
        self.assertEqual(t["credentialID"], user + "-ec")
        self.assertNotIn("refresh_token", t)
        ct = t["access_token"]
        body = {"credentialID": user + "-ec", "hashes": [H.b64(hashes[0])], "signAlgo": H.ECDSA_SHA256}
        other = dict(body, hashes=[H.b64(H.digest("not approved"))])
        r = SVC.post("signatures/signHash", other, ct)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error_description"], "Hash is not authorized by the SAD.")
        r = SVC.post("signatures/signHash", body, ct)
        self.assertEqual(r.status, 200, r)
        pub = SVC.cert_pem(ct, user + "-ec")
        self.assertTrue(H.verify(pub, base64.b64decode(r.json["signatures"][0]), hashes[0]))
        self.assertEqual(SVC.post("signatures/signHash", body, ct).status, 400)  # budget spent

    def test_credential_token_expires(self):
        user = pick_user()
        t, hashes = self.credential_token(user)
        self.assertLessEqual(t["expires_in"], 10)
        time.sleep(11)  # credential_token_ttl = 10 here
        r = SVC.post("signatures/signHash", {"credentialID": user + "-ec", "hashes": [H.b64(hashes[0])],
                                             "signAlgo": H.ECDSA_SHA256}, t["access_token"])
        self.assertJsonError(r, 401, "expired_token")

    def test_credential_token_is_bound_to_its_credential(self):
        user = pick_user()
        t, hashes = self.credential_token(user)
        ct = t["access_token"]
        r = SVC.post("signatures/signHash", {"credentialID": user + "-oauth", "hashes": [H.b64(hashes[0])],
                                             "signAlgo": H.ECDSA_SHA256}, ct)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(SVC.post("credentials/list", {}, ct).status, 403)
        self.assertEqual(SVC.post("credentials/info", {"credentialID": user + "-ec"}, ct).status, 200)
        self.assertEqual(SVC.post("credentials/info", {"credentialID": user + "-oauth"}, ct).status, 400)

    def test_credential_token_as_sad_under_a_service_token(self):
        user = pick_user()
        t, hashes = self.credential_token(user, kind="oauth")
        st = SVC.token(user, H.pw(user))  # a service token of the same user (auth/login)
        r = SVC.post("signatures/signHash", {"credentialID": user + "-oauth", "SAD": t["access_token"],
                                             "hashes": [H.b64(hashes[0])], "signAlgo": H.ECDSA_SHA256}, st)
        self.assertEqual(r.status, 200, r)
        # oauth2code credentials cannot be authorized through credentials/authorize.
        r = SVC.authorize(st, user + "-oauth", hashes, pin=PIN)
        self.assertEqual(r.status, 400, r)

    def test_code_is_not_a_sad(self):
        """Issue 9 item 1: the bare authorization code from the front-channel redirect is no SAD. Under a service
        token of the same user (auth/login needs only the password) neither signHash nor extendTransaction accepts
        it; only the token endpoint redeems it, for its client with its PKCE verifier."""
        user = pick_user()
        h = [H.digest("code as SAD %s" % secrets.token_hex(4))]
        params = {"scope": "credential", "credentialID": user + "-oauth", "numSignatures": "2",
                  "hashes": b64url(h[0]), "hashAlgorithmOID": H.SHA256}
        code, verifier, _ = code_flow(user, **params)
        st = SVC.token(user, H.pw(user))
        body = {"credentialID": user + "-oauth", "SAD": code, "hashes": [H.b64(h[0])], "signAlgo": H.ECDSA_SHA256}
        r = SVC.post("signatures/signHash", body, st)
        self.assertJsonError(r, 400, "invalid_request")
        self.assertEqual(r.json["error_description"], "Invalid parameter SAD", r)
        r = SVC.post("credentials/extendTransaction", {"credentialID": user + "-oauth", "SAD": code,
                                                       "hashes": [H.b64(h[0])], "hashAlgorithmOID": H.SHA256}, st)
        self.assertJsonError(r, 400, "invalid_request")
        # Nothing was spent: the client redeems the code and its credential token signs.
        r = token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                   "code_verifier": verifier})
        self.assertEqual(r.status, 200, r)
        ct = r.json["access_token"]
        r = SVC.post("signatures/signHash", dict(body, SAD=ct), st)
        self.assertEqual(r.status, 200, r)
        # and the code is still no SAD after the exchange
        self.assertJsonError(SVC.post("signatures/signHash", body, st), 400, "invalid_request")

    def test_rar_both_types_echoed(self):
        for rtype in ("credential", "https://cloudsignatureconsortium.org/2025/credential"):
            with self.subTest(type=rtype):
                h = H.digest("rar " + rtype)
                user = pick_user()
                rar = [{"type": rtype, "credentialID": user + "-ec", "hashAlgorithmOID": H.SHA256,
                        "documentDigests": [{"hash": H.b64(h), "label": "Contract.pdf"}]}]
                verifier, challenge = pkce()
                b = H.Browser(SVC)
                url, state = authorize_url(challenge=challenge, authorization_details=json.dumps(rar))
                self.assertEqual(b.get(url).status, 200)
                r = login(b, user)
                self.assertIn(b"Contract.pdf", r.raw)
                loc, q = redirect_params(b.post({"action": "approve", "pin": PIN}))
                r = token({"grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT,
                           "code_verifier": verifier})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json["authorization_details"][0]["credentialID"], user + "-ec")
                r = SVC.post("signatures/signHash", {"credentialID": user + "-ec", "hashes": [H.b64(h)],
                                                     "signAlgo": H.ECDSA_SHA256}, r.json["access_token"])
                self.assertEqual(r.status, 200, r)

    def test_signature_qualifier_lets_the_server_pick(self):
        h = H.digest("qualifier")
        rar = [{"type": "https://cloudsignatureconsortium.org/2025/credential", "signatureQualifier": "jp_test_qes",
                "hashAlgorithmOID": H.SHA256, "documentDigests": [{"hash": H.b64(h), "label": "Q.pdf"}]}]
        verifier, challenge = pkce()
        b = H.Browser(SVC)
        self.assertEqual(b.get(authorize_url(challenge=challenge, authorization_details=json.dumps(rar))[0]).status, 200)
        r = login(b, "user7")
        self.assertIn(b"user7-q", r.raw)  # the consent page names the credential the server picked
        loc, q = redirect_params(b.post({"action": "approve", "pin": PIN}))
        r = token({"grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT,
                   "code_verifier": verifier})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["credentialID"], "user7-q")
        self.assertEqual(r.json["authorization_details"][0]["credentialID"], "user7-q")
        self.assertEqual(r.json["authorization_details"][0]["signatureQualifier"], "jp_test_qes")
        r = SVC.post("signatures/signHash", {"credentialID": "user7-q", "hashes": [H.b64(h)],
                                             "signAlgo": H.ECDSA_SHA256}, r.json["access_token"])
        self.assertEqual(r.status, 200, r)
        info = SVC.post("credentials/info", {"credentialID": "user7-q"}, SVC.token("user7", H.pw("user7")))
        self.assertEqual(info.json["signatureQualifier"], "jp_test_qes")
        # A user without such a credential is sent back with an error.
        b = H.Browser(SVC)
        b.get(authorize_url(scope="credential", signatureQualifier="jp_test_qes", numSignatures="1",
                            hashes=b64url(h), hashAlgorithmOID=H.SHA256)[0])
        loc, q = redirect_params(login(b, "user1"))
        self.assertEqual(q["error"], "invalid_request")

    def test_credential_token_for_signdoc_and_not_timestamp(self):
        """signDoc takes a credential-scope token like signHash (no SAD; with a signatureQualifier alone the token's
        credential is meant); signatures/timestamp wants a service token."""
        data = ("signDoc with a credential token " + secrets.token_hex(4)).encode()
        h = hashlib.sha256(data).digest()
        user = pick_user()
        t, _ = self.credential_token(user, hashes=[h])
        ct = t["access_token"]
        r = SVC.post("signatures/timestamp", {"hash": H.b64(h), "hashAlgo": H.SHA256}, ct)
        self.assertJsonError(r, 403, "insufficient_scope")
        entry = {"hashes": [H.b64(h)], "hashAlgorithmOID": H.SHA256, "signature_format": "C",
                 "signAlgo": H.ECDSA_SHA256}
        r = SVC.post("signatures/signDoc", {"credentialID": user + "-oauth", "documentDigests": [entry]}, ct)
        self.assertJsonError(r, 400, "invalid_request")  # not the token's credential
        r = SVC.post("signatures/signDoc", {"credentialID": user + "-ec", "documentDigests": [entry]}, ct)
        self.assertEqual(r.status, 200, r)
        with tempfile.TemporaryDirectory() as d:
            sig, content = os.path.join(d, "sig.p7s"), os.path.join(d, "data")
            with open(sig, "wb") as f:
                f.write(base64.b64decode(r.json["SignatureObject"][0]))
            with open(content, "wb") as f:
                f.write(data)
            v = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", sig, "-binary", "-content",
                                content, "-CAfile", SVC.env["CSC_CA_CERT"], "-purpose", "any", "-out", os.devnull],
                               capture_output=True)
            self.assertEqual(v.returncode, 0, v.stderr)
        r = SVC.post("signatures/signDoc", {"credentialID": user + "-ec", "documentDigests": [entry]}, ct)
        self.assertJsonError(r, 400, "invalid_request")  # budget spent
        # signatureQualifier without credentialID: the token's credential, if it has that qualifier
        t, _ = self.credential_token(pick_user(), hashes=[h])
        r = SVC.post("signatures/signDoc", {"signatureQualifier": "jp_test_qes", "documentDigests": [entry]},
                     t["access_token"])
        self.assertJsonError(r, 400, "invalid_request")
        self.assertEqual(r.json["error_description"], "Invalid parameter signatureQualifier")

    def test_wrong_pin_and_other_users_credential(self):
        b = H.Browser(SVC)
        user = pick_user()
        url, state = authorize_url(scope="credential", credentialID=user + "-ec", numSignatures="1",
                                   hashes=b64url(H.digest("pin")), hashAlgorithmOID=H.SHA256)
        b.get(url)
        login(b, user)
        r = b.post({"action": "approve", "pin": "00000000"})
        self.assertEqual(r.status, 200, r)  # the consent page again, with the error; the session stays
        self.assertIn(b'id="error"', r.raw)
        loc, q = redirect_params(b.post({"action": "approve", "pin": PIN}))
        self.assertIn("code", q)
        b = H.Browser(SVC)
        url, state = authorize_url(scope="credential", credentialID="oscar-ec", numSignatures="1",
                                   hashes=b64url(H.digest("other")), hashAlgorithmOID=H.SHA256)
        b.get(url)
        loc, q = redirect_params(login(b, pick_user()))
        self.assertEqual(q["error"], "invalid_request")

    def test_scal2_needs_hashes_and_multisign_bound(self):
        b = H.Browser(SVC)
        user = pick_user()
        b.get(authorize_url(scope="credential", credentialID=user + "-ec", numSignatures="1")[0])
        loc, q = redirect_params(login(b, user))
        self.assertEqual(q["error"], "invalid_request")
        b = H.Browser(SVC)
        user = pick_user()
        b.get(authorize_url(scope="credential", credentialID=user + "-ec", numSignatures="6",
                            hashes=b64url(H.digest("m")), hashAlgorithmOID=H.SHA256)[0])
        login(b, user)
        loc, q = redirect_params(b.post({"action": "approve", "pin": PIN}))
        self.assertEqual(q["error"], "invalid_request")


class TestParAndRevoke(Base):
    def par(self, fields, client="app1"):
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Authorization": "Basic " + base64.b64encode(("%s:%s" % (client, CLIENTS[client])).encode()).decode()}
        return SVC.request("POST", "/oauth2/pushed_authorize", urllib.parse.urlencode(fields).encode(), headers)

    def test_par_single_use(self):
        verifier, challenge = pkce()
        r = self.par({"response_type": "code", "client_id": "app1", "redirect_uri": REDIRECT, "state": "par-1",
                      "code_challenge": challenge, "code_challenge_method": "S256"})
        self.assertEqual(r.status, 201, r)
        uri = r.json["request_uri"]
        self.assertTrue(uri.startswith("urn:ietf:params:oauth:request_uri:"))
        self.assertGreater(r.json["expires_in"], 0)
        path = "/oauth2/authorize?" + urllib.parse.urlencode({"client_id": "app1", "request_uri": uri})
        b = H.Browser(SVC)
        self.assertEqual(b.get(path).status, 200)
        loc, q = redirect_params(login(b, pick_user()))
        self.assertEqual(q["state"], "par-1")
        r = token({"grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT,
                   "code_verifier": verifier})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(H.Browser(SVC).get(path).status, 400)  # used up
        other = "/oauth2/authorize?" + urllib.parse.urlencode({"client_id": "app2", "request_uri": uri})
        self.assertEqual(H.Browser(SVC).get(other).status, 400)

    def test_par_survives_a_restart(self):
        """Issue 13: the pushed request lives in storage, not in csc-server's memory. On one node a restart of the
        whole service stands for another node: the request_uri pushed before it works after it, once."""
        verifier, challenge = pkce()
        r = self.par({"response_type": "code", "client_id": "app1", "redirect_uri": REDIRECT, "state": "par-restart",
                      "code_challenge": challenge, "code_challenge_method": "S256"})
        self.assertEqual(r.status, 201, r)
        path = "/oauth2/authorize?" + urllib.parse.urlencode({"client_id": "app1", "request_uri": r.json["request_uri"]})
        self.assertEqual(SVC.stop(), 0)
        SVC.start()
        b = H.Browser(SVC)
        self.assertEqual(b.get(path).status, 200)
        loc, q = redirect_params(login(b, pick_user()))
        self.assertEqual(q["state"], "par-restart")
        r = token({"grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT,
                   "code_verifier": verifier})
        self.assertEqual(r.status, 200, r)
        r = H.Browser(SVC).get(path)  # used up
        self.assertEqual(r.status, 400)
        self.assertIn(b"unknown, expired or already used", r.raw)

    def test_par_errors(self):
        self.assertJsonError(self.par({"response_type": "code", "client_id": "app1", "redirect_uri": REDIRECT}), 400,
                             "invalid_request")
        self.assertJsonError(self.par({"response_type": "code", "client_id": "app1", "redirect_uri": "https://x/cb",
                                       "code_challenge": pkce()[1], "code_challenge_method": "S256"}), 400,
                             "invalid_request")

    def revoke(self, tok, client="app1", hint=None):
        fields = {"token": tok}
        if hint:
            fields["token_type_hint"] = hint
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Authorization": "Basic " + base64.b64encode(("%s:%s" % (client, CLIENTS[client])).encode()).decode()}
        return SVC.request("POST", "/oauth2/revoke", urllib.parse.urlencode(fields).encode(), headers)

    def test_revoke(self):
        """RFC 7009 sec. 2.2: 200 with an empty body (the default; oauth_revoke_status = 204 is TestRevoke204)."""
        code, verifier, _ = code_flow()
        t = token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                   "code_verifier": verifier}).json
        r = self.revoke(t["access_token"], client="app2")  # not app2's: nothing happens
        self.assertEqual((r.status, r.raw), (200, b""), r)
        self.assertEqual(SVC.post("credentials/list", {}, t["access_token"]).status, 200)
        r = self.revoke(t["access_token"], hint="access_token")
        self.assertEqual((r.status, r.raw), (200, b""), r)
        self.assertEqual(SVC.post("credentials/list", {}, t["access_token"]).status, 401)
        r2 = token({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}).json
        self.assertEqual(self.revoke(r2["refresh_token"], hint="refresh_token").status, 200)
        self.assertEqual(SVC.post("credentials/list", {}, r2["access_token"]).status, 401)
        self.assertEqual(self.revoke("unknown-token").status, 200)
        self.assertJsonError(self.revoke(t["access_token"], hint="id_token"), 400, "unsupported_token_type")

    def test_admin_client_list_and_remove(self):
        out = SVC.admin("client", "list").stdout
        self.assertIn("client app1", out)
        self.assertIn(REDIRECT, out)
        self.assertNotIn(CLIENTS["app1"], out)
        SVC.admin("client", "add", "temp", "--redirect", REDIRECT)
        self.assertEqual(SVC.admin("client", "remove", "temp").returncode, 0)
        self.assertNotIn("client temp", SVC.admin("client", "list").stdout)
        self.assertNotEqual(SVC.admin("client", "add", "bad", "--redirect", "ftp://x/cb", check=False).returncode, 0)


class TestLargeAuthorizationDetails(Base):
    """Issue 9 item 8: authorization_details of several KB, up to the 4096-byte limit, are echoed in full by the token
    endpoint (it answered 500 above ~1 KB, after the code was spent, so a retry found the grant burnt)."""

    def par(self, fields, client="app1"):
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Authorization": "Basic " + base64.b64encode(("%s:%s" % (client, CLIENTS[client])).encode()).decode()}
        return SVC.request("POST", "/oauth2/pushed_authorize", urllib.parse.urlencode(fields).encode(), headers)

    def rar_of_size(self, user, size):
        """One credential object whose compact JSON is exactly size bytes (long digest labels fill it)."""
        digests = [{"hash": H.b64(H.digest("big rar %d %d" % (size, i))), "label": ""} for i in range(4)]
        rar = [{"type": "credential", "credentialID": user + "-ec", "hashAlgorithmOID": H.SHA256,
                "documentDigests": digests}]
        base = len(json.dumps(rar, separators=(",", ":")))
        fill = size - base
        self.assertGreater(fill, 0)
        for i, d in enumerate(digests):
            d["label"] = "L" * (fill // 4 + (1 if i < fill % 4 else 0))
        text = json.dumps(rar, separators=(",", ":"))
        self.assertEqual(len(text), size)
        return rar, text

    def test_echoed_in_full_up_to_the_limit(self):
        for size in (1500, 3000, 4096):
            with self.subTest(size=size):
                user = pick_user()
                rar, text = self.rar_of_size(user, size)
                verifier, challenge = pkce()
                r = self.par({"response_type": "code", "client_id": "app1", "redirect_uri": REDIRECT,
                              "state": "big-%d" % size, "code_challenge": challenge, "code_challenge_method": "S256",
                              "authorization_details": text})
                self.assertEqual(r.status, 201, r)
                b = H.Browser(SVC)
                path = "/oauth2/authorize?" + urllib.parse.urlencode({"client_id": "app1",
                                                                      "request_uri": r.json["request_uri"]})
                self.assertEqual(b.get(path).status, 200)
                r = login(b, user)
                self.assertIn(b'id="approve"', r.raw)
                loc, q = redirect_params(b.post({"action": "approve", "pin": PIN}))
                r = token({"grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT,
                           "code_verifier": verifier})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json["authorization_details"], rar)
                self.assertEqual(r.json["credentialID"], user + "-ec")
        # one byte over the limit is refused before any code exists
        user = pick_user()
        _, text = self.rar_of_size(user, 4097)
        r = self.par({"response_type": "code", "client_id": "app1", "redirect_uri": REDIRECT,
                      "code_challenge": pkce()[1], "code_challenge_method": "S256", "authorization_details": text})
        self.assertEqual(r.status, 400, r)
        self.assertIsInstance(r.json.get("error"), str)


class TestRevoke204(Base):
    """oauth_revoke_status = 204: for clients that follow the CSC text literally; anything else is refused."""

    def test_revoke_status_204_and_bad_values(self):
        svc = H.Service(BUILD, extra_config="oauth_revoke_status = 204\n")
        secret = re.search(r"^client_secret (\S+)$", svc.admin("client", "add", "r204", "--redirect", REDIRECT,
                                                             "--grants", "client_credentials").stdout, re.M).group(1)
        svc.start()
        try:
            basic = "Basic " + base64.b64encode(("r204:%s" % secret).encode()).decode()
            form = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": basic}
            t = svc.request("POST", "/oauth2/token", b"grant_type=client_credentials&scope=service", form).json
            self.assertEqual(svc.post("credentials/list", {}, t["access_token"]).status, 403)  # valid, no user
            r = svc.request("POST", "/oauth2/revoke", urllib.parse.urlencode({"token": t["access_token"]}).encode(),
                            form)
            self.assertEqual((r.status, r.raw), (204, b""), r)
            self.assertEqual(svc.post("credentials/list", {}, t["access_token"]).status, 401)  # revoked
        finally:
            self.assertEqual(svc.stop(), 0)
        server = os.path.join(svc.build, "server", "csc-server")
        with open(svc.conf) as f:
            conf = f.read()
        for bad in ("201", "204x", "500"):
            with open(svc.conf, "w") as f:
                f.write(conf.replace("oauth_revoke_status = 204", "oauth_revoke_status = " + bad))
            r = subprocess.run([server, "-c", svc.conf, "-t"], capture_output=True, text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn("oauth_revoke_status", r.stderr)


class TestRateLimit(Base):
    def test_flood_gets_429(self):
        svc = H.Service(BUILD, extra_config="rate_max = 5\nrate_window = 60\n")
        out = svc.admin("client", "add", "c1", "--redirect", REDIRECT).stdout
        try:
            svc.start()
            global SVC
            saved, SVC = SVC, svc
            try:
                statuses = []
                for _ in range(8):
                    b = H.Browser(SVC)
                    r = b.get(authorize_url(client="c1")[0])
                    if r.status == 200:
                        r = b.post({"action": "login", "username": "nobody", "password": "x", "otp": "000000"})
                    statuses.append(r.status)
                self.assertIn(429, statuses, statuses)
                self.assertEqual(H.Browser(SVC).get(authorize_url(client="c1")[0]).status, 429)
            finally:
                SVC = saved
        finally:
            self.assertEqual(svc.stop(), 0)
        self.assertIn("client_secret", out)


BAD_RARS = [
    # RFC 9396 sec. 5: an unknown type, or a member of the wrong type, is invalid_authorization_details
    [{"type": "payment_initiation", "credentialID": "user0-ec", "numSignatures": 1}],
    [{"credentialID": "user0-ec", "numSignatures": 1}],
    [{"type": 7, "credentialID": "user0-ec", "numSignatures": 1}],
    [{"type": "credential", "credentialID": 5, "numSignatures": 1}],
    [{"type": "credential", "credentialID": "user0-ec", "numSignatures": "1"}],
    [{"type": "credential", "credentialID": "user0-ec", "numSignatures": 1, "hashAlgorithmOID": 2}],
    [{"type": "credential", "credentialID": "user0-ec", "numSignatures": 1, "documentDigests": {"hash": "x"}}],
    [{"type": "credential", "credentialID": "user0-ec", "hashAlgorithmOID": H.SHA256,
      "documentDigests": [{"hash": H.b64(H.digest("x")), "label": 3}]}],
    [{"type": "https://cloudsignatureconsortium.org/2025/credential", "signatureQualifier": ["jp_test_qes"],
      "numSignatures": 1}],
    [{"type": "credential", "credentialID": "user0-ec", "numSignatures": 1, "locations": "https://x"}],
]


class TestInvalidAuthorizationDetails(Base):
    """Item 14: invalid_authorization_details from PAR, from /oauth2/authorize (redirected) and from the token
    endpoint."""

    def par(self, fields, client="app1"):
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Authorization": "Basic " + base64.b64encode(("%s:%s" % (client, CLIENTS[client])).encode()).decode()}
        return SVC.request("POST", "/oauth2/pushed_authorize", urllib.parse.urlencode(fields).encode(), headers)

    def test_par(self):
        for rar in BAD_RARS:
            with self.subTest(rar=rar):
                r = self.par({"response_type": "code", "client_id": "app1", "redirect_uri": REDIRECT,
                              "code_challenge": pkce()[1], "code_challenge_method": "S256",
                              "authorization_details": json.dumps(rar)})
                self.assertJsonError(r, 400, "invalid_authorization_details")

    def test_authorize_redirects(self):
        for rar in BAD_RARS:
            with self.subTest(rar=rar):
                url, state = authorize_url(authorization_details=json.dumps(rar))
                loc, q = redirect_params(H.Browser(SVC).get(url))
                self.assertTrue(loc.startswith(REDIRECT + "?"), loc)
                self.assertEqual(q["error"], "invalid_authorization_details", loc)
                self.assertEqual(q.get("state"), state)
        # before the client and its redirect URI are known, the error is shown, not redirected
        url, _ = authorize_url(client="nope", authorization_details=json.dumps(BAD_RARS[0]))
        r = H.Browser(SVC).get(url)
        self.assertEqual(r.status, 400, r)
        self.assertNotIn("location", r.headers)

    def test_token_endpoint(self):
        code, verifier, _ = code_flow()
        fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                  "code_verifier": verifier}
        for rar in BAD_RARS:
            with self.subTest(rar=rar):
                r = token(dict(fields, authorization_details=json.dumps(rar)))
                self.assertJsonError(r, 400, "invalid_authorization_details")
        # refused before the code was looked at: it still works once
        r = token(fields)
        self.assertEqual(r.status, 200, r)
        r = token({"grant_type": "refresh_token", "refresh_token": r.json["refresh_token"],
                   "authorization_details": json.dumps(BAD_RARS[0])})
        self.assertJsonError(r, 400, "invalid_authorization_details")
        r = token({"grant_type": "client_credentials", "authorization_details": json.dumps(BAD_RARS[3])})
        self.assertJsonError(r, 400, "invalid_authorization_details")


def flood(svc, paths, n, threads=4):
    """n anonymous GETs over keep-alive connections (paths in turn); returns a Counter of the statuses."""
    statuses = collections.Counter()
    lock = threading.Lock()

    def run(k):
        conn = http.client.HTTPSConnection("localhost", svc.port, context=svc.ctx, timeout=60)
        try:
            for i in range(k, n, threads):
                conn.request("GET", paths[i % len(paths)])
                resp = conn.getresponse()
                resp.read()
                with lock:
                    statuses[resp.status] += 1
        finally:
            conn.close()

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return statuses


def vmrss_kib(svc):
    with open("/proc/%d/status" % svc.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class TestAnonymousVisitors(Base):
    """Item 3: a visitor who has not presented a password leaves no state on the server: thousands of anonymous
    GETs of the sign-in pages lock nobody out, and large requests do not pile up in memory."""

    def service(self):
        svc = H.Service(BUILD)
        out = svc.admin("client", "add", "c1", "--redirect", REDIRECT).stdout
        secret = re.search(r"^client_secret (\S+)$", out, re.M).group(1)
        svc.admin("credential", "create", "--id", "ap", "--user", svc.env["CSC_USER"], "--key", "p256", "--auth",
                  "APPROVAL", "--scal", "1", "--multisign", "5")
        svc.start()
        self.addCleanup(svc.stop_checked)
        return svc, secret

    def test_flood_then_real_users_sign_in(self):
        svc, secret = self.service()
        paths = [authorize_url(client="c1")[0], "/approve"]
        statuses = flood(svc, paths, 5000)
        self.assertEqual(statuses, collections.Counter({200: 5000}))
        # the OAuth flow: sign in, code, token
        verifier, challenge = pkce()
        b = H.Browser(svc)
        url, state = authorize_url(client="c1", challenge=challenge)
        r = b.get(url)
        self.assertEqual(r.status, 200, r)
        for attr in ("__Host-csc_oauth=", "HttpOnly", "Secure", "SameSite=Strict"):
            self.assertIn(attr, b.set_cookie)
        r = b.post({"action": "login", "username": svc.env["CSC_USER"], "password": svc.env["CSC_PASSWORD"],
                    "otp": H.fresh_totp(svc.env["CSC_TOTP_SECRET"], svc.used_otps)})
        loc, q = redirect_params(r)
        self.assertEqual(q.get("state"), state, loc)
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Authorization": "Basic " + base64.b64encode(("c1:" + secret).encode()).decode()}
        r = svc.request("POST", "/oauth2/token", urllib.parse.urlencode(
            {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT,
             "code_verifier": verifier}).encode(), headers)
        self.assertEqual(r.status, 200, r)
        # the approval page: a pending request approved by its user
        t = svc.token()
        d = H.digest("after the flood")
        r = svc.post("credentials/authorize", {"credentialID": "ap", "numSignatures": 1, "hashes": [H.b64(d)],
                                               "hashAlgorithmOID": H.SHA256}, t)
        self.assertEqual(r.status, 202, r)
        handle = r.json["handle"]
        a = H.Browser(svc, "/approve")
        r = a.get("/approve")
        self.assertEqual(r.status, 200, r)
        r = a.post({"action": "login", "username": svc.env["CSC_USER"], "password": svc.env["CSC_PASSWORD"],
                    "otp": H.fresh_totp(svc.env["CSC_TOTP_SECRET"], svc.used_otps)})
        self.assertEqual(r.status, 200, r)
        m = re.search(r'name="ref" value="([0-9a-f]{32})"', r.raw.decode())
        self.assertIsNotNone(m, r.raw[:2000])
        r = a.post({"action": "approve", "ref": m.group(1)})
        self.assertIn(b"Approved", r.raw)
        r = svc.post("credentials/authorizeCheck", {"handle": handle}, t)
        self.assertEqual(r.status, 200, r)
        r = svc.post("signatures/signHash", {"credentialID": "ap", "SAD": r.json["SAD"], "hashes": [H.b64(d)],
                                             "signAlgo": H.ECDSA_SHA256}, t)
        self.assertEqual(r.status, 200, r)

    def test_stale_pre_login_form_is_refused(self):
        """The signed pre-login form expires (oauth_session_idle) and is bound to its cookie."""
        svc, _ = self.service()
        b = H.Browser(svc)
        b.get(authorize_url(client="c1")[0])
        other = H.Browser(svc)
        other.get(authorize_url(client="c1")[0])
        # another visitor's form with this cookie: refused (CSRF)
        mixed = H.Browser(svc)
        mixed.cookie, mixed.csrf = b.cookie, other.csrf
        r = mixed.post({"action": "login", "username": "demo", "password": "x", "otp": "123456"})
        self.assertEqual(r.status, 400, r)
        self.assertIn(b"CSRF", r.raw)
        # a forged or altered form: refused
        for forged in (b.csrf[:-2] + ("AA" if not b.csrf.endswith("AA") else "BB"), "x", ""):
            mixed = H.Browser(svc)
            mixed.cookie, mixed.csrf = b.cookie, forged
            r = mixed.post({"action": "login", "username": "demo", "password": "x", "otp": "123456"})
            self.assertEqual(r.status, 400, r)

    def test_memory_stays_bounded(self):
        # Under AddressSanitizer freed memory waits in a quarantine (256 MB by default) before reuse: keep it
        # small for this server, or every freed request would count as resident.
        saved = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = (saved + ":" if saved else "") + "quarantine_size_mb=4"
        try:
            svc, _ = self.service()
        finally:
            if saved is None:
                del os.environ["ASAN_OPTIONS"]
            else:
                os.environ["ASAN_OPTIONS"] = saved
        hashes = ",".join(b64url(H.digest("d%d" % i)) for i in range(1024))
        url = authorize_url(client="c1", scope="credential", credentialID="ap", numSignatures="1024",
                            hashes=hashes, hashAlgorithmOID=H.SHA256)[0]
        self.assertEqual(H.Browser(svc).get(url).status, 200)
        self.assertEqual(flood(svc, [url], 200), collections.Counter({200: 200}))
        before = vmrss_kib(svc)
        self.assertEqual(flood(svc, [url], 1500), collections.Counter({200: 1500}))
        after = vmrss_kib(svc)
        # 1,500 pending requests of 1,024 digests kept on the server would be ~100 MiB
        self.assertLess(after - before, 32 * 1024, (before, after))

    def test_request_size_limits(self):
        svc, _ = self.service()
        # over the explicit limit of an authorization request's query: refused, no cookie
        url = authorize_url(client="c1", description="x", filler="y" * (140 * 1024))[0]
        r = H.Browser(svc).get(url)
        self.assertEqual(r.status, 400, r)
        self.assertNotIn("set-cookie", r.headers)
        # more digests than a request may bind: redirected with an error, no cookie
        hashes = ",".join(b64url(H.digest("d%d" % i)) for i in range(1025))
        url, state = authorize_url(client="c1", scope="credential", credentialID="ap", numSignatures="1",
                                   hashes=hashes, hashAlgorithmOID=H.SHA256)
        r = H.Browser(svc).get(url)
        loc, q = redirect_params(r)
        self.assertEqual(q["error"], "invalid_request", loc)
        self.assertNotIn("set-cookie", r.headers)


class TestPagesAcrossRestart(Base):
    """The sign-in pages' tickets and form tokens are MACed under the key csc-sam derives from the HSM's factor key and
    hands csc-server in its HELLO reply: the same after a restart (and on every node of that HSM), so a page served
    before csc-server and its csc-sam restarted is posted after it and accepted."""

    def test_page_served_before_restart_is_posted_after_it(self):
        svc = H.Service(BUILD)
        out = svc.admin("client", "add", "c1", "--redirect", REDIRECT).stdout
        secret = re.search(r"^client_secret (\S+)$", out, re.M).group(1)
        svc.start()
        self.addCleanup(svc.stop_checked)
        user, password, otp_secret = svc.env["CSC_USER"], svc.env["CSC_PASSWORD"], svc.env["CSC_TOTP_SECRET"]
        verifier, challenge = pkce()
        b = H.Browser(svc)
        url, state = authorize_url(client="c1", challenge=challenge)
        self.assertEqual(b.get(url).status, 200)
        a = H.Browser(svc, "/approve")
        self.assertEqual(a.get().status, 200)
        self.assertIsNotNone(b.csrf)
        self.assertIsNotNone(a.csrf)
        svc.stop()
        svc.start()
        self.assertNotIn("gave no key for the sign-in pages", svc.server_stderr())
        # the login form of /oauth2/authorize, served by the process before: signed in, the code, the token
        r = b.post({"action": "login", "username": user, "password": password,
                    "otp": H.fresh_totp(otp_secret, svc.used_otps)})
        loc, q = redirect_params(r)
        self.assertEqual(q.get("state"), state, loc)
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Authorization": "Basic " + base64.b64encode(("c1:" + secret).encode()).decode()}
        r = svc.request("POST", "/oauth2/token", urllib.parse.urlencode(
            {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT,
             "code_verifier": verifier}).encode(), headers)
        self.assertEqual(r.status, 200, r)
        # the login form of /approve, likewise
        r = a.post({"action": "login", "username": user, "password": password,
                    "otp": H.fresh_totp(otp_secret, svc.used_otps)})
        self.assertEqual(r.status, 200, r)
        self.assertIn('id="user"', a.text)
        # a form under another key (a ticket forged without it) is still refused
        forged = H.Browser(svc)
        forged.get(authorize_url(client="c1")[0])
        forged.csrf = b.csrf
        r = forged.post({"action": "login", "username": user, "password": password, "otp": "000000"})
        self.assertEqual(r.status, 400, r)


if __name__ == "__main__":
    unittest.main()
