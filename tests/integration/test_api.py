"""CSC v2 API integration tests: the real csc-server over TLS, SoftHSM, a temporary LMDB."""
import base64
import concurrent.futures
import json
import os
import re
import signal
import ssl
import subprocess
import threading
import time
import unittest

import harness as H

SVC = None
BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
PIN_X = "24681357"
CAROL_TOTP = None


def setUpModule():
    global SVC
    SVC = H.Service(BUILD, extra_config="max_failures = 3\nlock_seconds = 3600\nsad_ttl = 10\n")
    # Extra users and credentials for tests that change state (locks, disabling).
    global CAROL_TOTP
    for user in ("locky", "carol"):
        SVC.add_user(user, H.pw(user))  # enrolled by start(), with the PINs below
    for cid, user, key, auth in (("carol-rsa", "carol", "rsa2048", "PIN"), ("carol-lock", "carol", "p256", "PIN"),
                                 ("carol-off", "carol", "p256", "PIN"), ("carol-scal1", "carol", "p256", "PIN"),
                                 ("carol-2fa", "carol", "p256", "PIN AND OTP"),
                                 ("carol-2fa-b", "carol", "p256", "PIN AND OTP")):
        scal = "1" if cid == "carol-scal1" else "2"
        SVC.create_credential("--id", cid, "--user", user, "--key", key, "--auth", auth,
                  "--scal", scal, "--multisign", "5", pin=PIN_X)
    SVC.admin("credential", "disable", "carol-off")
    SVC.start()
    CAROL_TOTP = SVC.totp_of("carol")


def tearDownModule():
    SVC.stop_checked()


def err_of(r):
    assert r.json is not None and isinstance(r.json.get("error"), str), r
    assert isinstance(r.json.get("error_description"), str), r
    return r.json["error"], r.json["error_description"]


class Base(unittest.TestCase):
    def assertError(self, r, status, error=None, desc=None):
        self.assertEqual(r.status, status, r)
        e, d = err_of(r)
        if error is not None:
            self.assertEqual(e, error, r)
        if desc is not None:
            self.assertEqual(d, desc, r)
        self.assertIn("application/json", r.headers.get("content-type", ""))

    def carol(self):
        return SVC.token("carol", H.pw("carol"))


class TestInfo(Base):
    def test_info_fields(self):
        r = SVC.post("info", {})
        self.assertEqual(r.status, 200, r)
        j = r.json
        for k in ("specs", "name", "logo", "region", "lang", "description", "authType", "methods",
                  "signAlgorithms", "signature_formats", "conformance_levels"):
            self.assertIn(k, j)
        self.assertTrue(j["specs"].startswith("2."))
        self.assertEqual(j["region"], "JP")
        self.assertIn("test environment", j["description"])
        self.assertIn("basic", j["authType"])
        for m in ("auth/login", "auth/revoke", "credentials/list", "credentials/info", "credentials/authorize",
                  "credentials/extendTransaction", "signatures/signHash"):
            self.assertIn(m, j["methods"])
        for a in (H.RSA_SHA256, H.RSA_PSS, H.RSA_ENC, H.ECDSA_SHA256):
            self.assertIn(a, j["signAlgorithms"]["algos"])
        self.assertEqual(r.headers.get("cache-control"), "no-store")

    def test_info_empty_body_and_lang(self):
        self.assertEqual(SVC.post("info", None, raw=b"").status, 200)
        self.assertEqual(SVC.post("info", {"lang": "ja-JP"}).status, 200)
        self.assertError(SVC.post("info", {"lang": 5}), 400, "invalid_request")

    def test_wrong_http_method(self):
        r = SVC.request("GET", "/csc/v2/info")
        self.assertError(r, 405, "invalid_request")

    def test_unknown_paths(self):
        self.assertError(SVC.post("nosuch/method", {}), 404, "invalid_request")
        self.assertError(SVC.request("GET", "/"), 404, "invalid_request")
        self.assertError(SVC.request("GET", "/csc/v2x/info"), 404)

    def test_unimplemented_method_is_501(self):
        # getChallenge is offered only with an otp_sender (the provisioned server has none)
        self.assertError(SVC.post("credentials/getChallenge", {}), 501)
        self.assertNotIn("credentials/getChallenge", SVC.post("info", {}).json["methods"])

    def test_bad_json(self):
        cases = [b"{", b"[]", b"\"x\"", b"{\"a\":1}/*c*/", b"{\"lang\":\"a\",\"lang\":\"b\"}",
                 b"{\"lang\":\"a\\u0000b\"}", b"{\"a\":" + b"[" * 100 + b"]" * 100 + b"}", b"\xff\xfe"]
        for body in cases:
            with self.subTest(body=body[:20]):
                self.assertError(SVC.post("info", None, raw=body), 400, "invalid_request")

    def test_body_limit(self):
        # Announce a body over max_body (256 KiB): the server answers 413 before reading it.
        import socket
        raw = socket.create_connection(("localhost", SVC.port), timeout=10)
        sock = SVC.ctx.wrap_socket(raw, server_hostname="localhost")
        sock.sendall(b"POST /csc/v2/info HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 307200\r\n\r\n" + b"{" * 1024)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 10:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 413"), head)
        self.assertIn(b"application/json", head)
        self.assertEqual(json.loads(body)["error"], "invalid_request")
        # Just under the limit, the body is parsed (and refused as JSON, not for its size).
        self.assertError(SVC.post("info", None, raw=b"{" + b" " * (200 * 1024)), 400, "invalid_request")

    def test_http2_is_off_by_default(self):
        ctx = ssl.create_default_context(cafile=SVC.env["CSC_TLS_CA"])
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        import socket
        with socket.create_connection(("localhost", SVC.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertNotEqual(s.selected_alpn_protocol(), "h2")
                self.assertIn(s.version(), ("TLSv1.2", "TLSv1.3"))

    def test_tls_versions(self):
        ctx = ssl.create_default_context(cafile=SVC.env["CSC_TLS_CA"])
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        import http.client
        conn = http.client.HTTPSConnection("localhost", SVC.port, context=ctx, timeout=10)
        with self.assertRaises((ssl.SSLError, OSError)):
            conn.request("POST", "/csc/v2/info", body=b"{}")
            conn.getresponse()


class TestLogin(Base):
    def basic(self, s):
        return "Basic " + base64.b64encode(s.encode()).decode()

    def test_login_ok(self):
        j = SVC.login()
        self.assertIsInstance(j["access_token"], str)
        self.assertGreater(j["expires_in"], 0)
        self.assertNotIn("refresh_token", j)

    def test_login_errors(self):
        self.assertError(SVC.post("auth/login", {}), 401, "invalid_request", "Malformed authentication parameter.")
        self.assertError(SVC.post("auth/login", {}, auth="Bearer abc"), 401, "invalid_request")
        self.assertError(SVC.post("auth/login", {}, auth=self.basic("nocolon")), 400, "invalid_request",
                         "Malformed username-password.")
        self.assertError(SVC.post("auth/login", {}, auth="Basic !!!"), 400, "invalid_request",
                         "Malformed username-password.")
        wrong = SVC.post("auth/login", {}, auth=self.basic(SVC.env["CSC_USER2"] + ":wrong-password"))
        unknown = SVC.post("auth/login", {}, auth=self.basic("nobody:wrong-password"))
        self.assertError(wrong, 400, "authentication_error")
        self.assertEqual(wrong.raw, unknown.raw)
        self.assertError(SVC.post("auth/login", {"rememberMe": "maybe"}, auth=self.basic("a:b")), 400)

    def test_remember_me_and_refresh(self):
        j = SVC.login(remember=True)
        self.assertIn("refresh_token", j)
        r = SVC.post("auth/login", {"refresh_token": j["refresh_token"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(SVC.post("credentials/list", {}, r.json["access_token"]).status, 200)
        self.assertError(SVC.post("auth/login", {"refresh_token": "x" * 43}), 400, "invalid_request",
                         "Invalid refresh_token")
        self.assertError(SVC.post("auth/login", {"refresh_token": 42}), 400, "invalid_request")
        # An access token is not a refresh token.
        self.assertError(SVC.post("auth/login", {"refresh_token": j["access_token"]}), 400)

    def test_lockout(self):
        for _ in range(3):
            self.assertError(SVC.post("auth/login", {}, auth=self.basic("locky:not-the-password")), 400,
                             "authentication_error")
        # Locked: even the right password is refused now.
        self.assertError(SVC.post("auth/login", {}, auth=self.basic("locky:" + H.pw("locky"))), 400,
                         "authentication_error")


class TestBearer(Base):
    def test_bearer_errors(self):
        self.assertError(SVC.post("credentials/list", {}), 401)
        self.assertIn("Bearer", SVC.post("credentials/list", {}).headers.get("www-authenticate", ""))
        self.assertError(SVC.post("credentials/list", {}, auth="Basic abc"), 400, "invalid_request",
                         "Malformed authorization header.")
        self.assertError(SVC.post("credentials/list", {}, auth="Bearer"), 400, "invalid_request")
        self.assertError(SVC.post("credentials/list", {}, token="A" * 43), 401, "invalid_token")
        self.assertError(SVC.post("credentials/list", {}, token="short"), 401, "invalid_token")

    def test_revoke_access_token(self):
        t = SVC.token()
        other = SVC.token()
        r = SVC.post("auth/revoke", {"token": t, "token_type_hint": "access_token"}, other)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.raw, b"")
        self.assertError(SVC.post("credentials/list", {}, t), 401)
        self.assertEqual(SVC.post("credentials/list", {}, other).status, 200)

    def test_revoke_refresh_token_kills_its_grant(self):
        j = SVC.login(remember=True)
        access2 = SVC.post("auth/login", {"refresh_token": j["refresh_token"]}).json["access_token"]
        r = SVC.post("auth/revoke", {"token": j["refresh_token"]}, j["access_token"])
        self.assertEqual(r.status, 204, r)
        self.assertError(SVC.post("credentials/list", {}, j["access_token"]), 401)
        self.assertError(SVC.post("credentials/list", {}, access2), 401)
        self.assertError(SVC.post("auth/login", {"refresh_token": j["refresh_token"]}), 400)

    def test_revoke_errors(self):
        t = SVC.token()
        self.assertError(SVC.post("auth/revoke", {}, t), 400, "invalid_request",
                         "Missing (or invalid type) string parameter token")
        self.assertError(SVC.post("auth/revoke", {"token": t, "token_type_hint": "sad"}, t), 400,
                         "invalid_request", "Invalid string parameter token_type_hint")
        self.assertError(SVC.post("auth/revoke", {"token": "B" * 43}, t), 400, "invalid_request",
                         "Invalid string parameter token")
        # Another user's token cannot be revoked (and is not affected).
        t2 = SVC.token(SVC.env["CSC_USER2"], SVC.env["CSC_PASSWORD2"])
        self.assertError(SVC.post("auth/revoke", {"token": t2}, t), 400)
        self.assertEqual(SVC.post("credentials/list", {}, t2).status, 200)


class TestCredentials(Base):
    @classmethod
    def setUpClass(cls):
        cls.t = SVC.token()

    def test_list(self):
        r = SVC.post("credentials/list", {}, self.t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json["credentialIDs"]), ["demo-ec", "demo-rsa"])
        self.assertNotIn("credentialInfos", r.json)
        t2 = SVC.token(SVC.env["CSC_USER2"], SVC.env["CSC_PASSWORD2"])
        self.assertEqual(SVC.post("credentials/list", {}, t2).json["credentialIDs"], ["demo2-ec"])

    def test_list_with_info(self):
        r = SVC.post("credentials/list", {"credentialInfo": True, "certificates": "chain", "certInfo": True,
                                          "authInfo": True}, self.t)
        self.assertEqual(r.status, 200, r)
        infos = {i["credentialID"]: i for i in r.json["credentialInfos"]}
        self.assertEqual(set(infos), {"demo-ec", "demo-rsa"})
        self.assertEqual(len(infos["demo-rsa"]["cert"]["certificates"]), 2)
        self.assertEqual(infos["demo-rsa"]["auth"]["expression"], "PIN AND OTP")

    def test_list_errors(self):
        self.assertError(SVC.post("credentials/list", {"userID": "demo"}, self.t), 400, "invalid_request",
                         "userID parameter MUST be null")
        self.assertError(SVC.post("credentials/list", {"certificates": "bogus", "credentialInfo": True}, self.t),
                         400, "invalid_request", "Invalid parameter certificates")
        self.assertError(SVC.post("credentials/list", {"credentialInfo": 3}, self.t), 400)

    def test_only_valid(self):
        c = self.carol()
        all_ids = SVC.post("credentials/list", {}, c).json["credentialIDs"]
        self.assertIn("carol-off", all_ids)
        r = SVC.post("credentials/list", {"onlyValid": True}, c)
        self.assertTrue(r.json["onlyValid"])
        self.assertNotIn("carol-off", r.json["credentialIDs"])
        self.assertIn("carol-rsa", r.json["credentialIDs"])

    def test_info_rsa(self):
        r = SVC.post("credentials/info", {"credentialID": "demo-rsa", "certificates": "chain", "certInfo": True,
                                          "authInfo": True}, self.t)
        self.assertEqual(r.status, 200, r)
        j = r.json
        self.assertEqual(j["key"]["status"], "enabled")
        self.assertEqual(j["key"]["len"], 2048)
        self.assertNotIn("curve", j["key"])
        for a in (H.RSA_SHA256, H.RSA_SHA384, H.RSA_SHA512, H.RSA_ENC, H.RSA_PSS):
            self.assertIn(a, j["key"]["algo"])
        self.assertNotIn(H.ECDSA_SHA256, j["key"]["algo"])
        certs = j["cert"]["certificates"]
        self.assertEqual(len(certs), 2)
        ee = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
                            input=base64.b64decode(certs[0]), capture_output=True).stdout.decode()
        self.assertIn("demo", ee)  # end entity first
        self.assertEqual(j["cert"]["status"], "valid")
        self.assertRegex(j["cert"]["validFrom"], r"^\d{14}Z$")
        self.assertRegex(j["cert"]["validTo"], r"^\d{14}Z$")
        self.assertRegex(j["cert"]["serialNumber"], r"^[0-9A-F]+$")
        self.assertIn("CN=CSC Demo Root CA", j["cert"]["issuerDN"])
        self.assertIn("CN=demo", j["cert"]["subjectDN"])
        self.assertEqual(j["auth"]["mode"], "explicit")
        self.assertEqual(j["auth"]["expression"], "PIN AND OTP")
        objs = {o["id"]: o for o in j["auth"]["objects"]}
        self.assertEqual(objs["PIN"]["type"], "Password")
        self.assertEqual(objs["OTP"]["generator"], "totp")
        self.assertEqual(j["SCAL"], "2")
        self.assertGreaterEqual(j["multisign"], 100)

    def test_info_ec_and_options(self):
        r = SVC.post("credentials/info", {"credentialID": "demo-ec"}, self.t)
        j = r.json
        self.assertEqual(j["key"]["curve"], "1.2.840.10045.3.1.7")
        self.assertEqual(j["key"]["len"], 256)
        self.assertEqual(j["key"]["algo"][0], H.ECDSA_SHA256)
        self.assertEqual(len(j["cert"]["certificates"]), 1)      # default "single"
        self.assertNotIn("issuerDN", j["cert"])
        self.assertEqual(j["auth"], {"mode": "explicit"})       # objects only with authInfo
        r = SVC.post("credentials/info", {"credentialID": "demo-ec", "certificates": "none"}, self.t)
        self.assertNotIn("certificates", r.json["cert"])

    def test_info_errors_do_not_reveal_other_users(self):
        other = SVC.post("credentials/info", {"credentialID": "demo2-ec"}, self.t)
        unknown = SVC.post("credentials/info", {"credentialID": "no-such-credential"}, self.t)
        self.assertError(other, 400, "invalid_request", "Invalid parameter credentialID")
        self.assertEqual(other.raw, unknown.raw)
        self.assertError(SVC.post("credentials/info", {}, self.t), 400, "invalid_request",
                         "Missing (or invalid type) string parameter credentialID")
        self.assertError(SVC.post("credentials/info", {"credentialID": 7}, self.t), 400, "invalid_request",
                         "Missing (or invalid type) string parameter credentialID")
        self.assertError(SVC.post("credentials/info", {"credentialID": "demo-ec", "certificates": "all"}, self.t),
                         400, "invalid_request", "Invalid parameter certificates")

    def test_disabled_key_status(self):
        r = SVC.post("credentials/info", {"credentialID": "carol-off"}, self.carol())
        self.assertEqual(r.json["key"]["status"], "disabled")


class TestAuthorize(Base):
    @classmethod
    def setUpClass(cls):
        cls.t = SVC.token()

    def test_authorize_rsa_pin_and_otp(self):
        h = H.digest("authorize rsa")
        r = SVC.authorize(self.t, "demo-rsa", [h], pin=SVC.env["CSC_PIN"], otp_secret=SVC.env["CSC_TOTP_SECRET"])
        self.assertEqual(r.status, 200, r)
        self.assertIsInstance(r.json["SAD"], str)
        self.assertGreater(r.json["expiresIn"], 0)

    def test_v1_style_pin_otp_fields(self):
        h = H.digest("v1 fields")
        otp = H.fresh_totp(SVC.env["CSC_TOTP_SECRET"], SVC.used_otps)
        r = SVC.post("credentials/authorize", {"credentialID": "demo-rsa", "numSignatures": "1",
                                               "hash": [H.b64(h)], "PIN": SVC.env["CSC_PIN"], "OTP": otp}, self.t)
        self.assertEqual(r.status, 200, r)

    def test_authorize_errors(self):
        h = [H.b64(H.digest("x"))]
        pin = [{"id": "PIN", "value": SVC.env["CSC_PIN"]}]
        base = {"credentialID": "demo-ec", "hashes": h, "hashAlgorithmOID": H.SHA256, "authData": pin}
        cases = [
            ({"numSignatures": 1, "credentialID": None}, "Missing (or invalid type) string parameter credentialID"),
            ({}, "Missing (or invalid type) integer parameter numSignatures"),
            ({"numSignatures": "abc"}, "Missing (or invalid type) integer parameter numSignatures"),
            ({"numSignatures": -1}, "Missing (or invalid type) integer parameter numSignatures"),
            ({"numSignatures": 0}, "Invalid value for parameter numSignatures"),
            ({"numSignatures": 101}, "Numbers of signatures is too high"),
            ({"numSignatures": 1, "credentialID": "demo2-ec"}, "Invalid parameter credentialID"),
            ({"numSignatures": 1, "hashes": None}, "Missing (or invalid type) array parameter hashes"),
            ({"numSignatures": 1, "hashAlgorithmOID": None},
             "Missing (or invalid type) string parameter hashAlgorithmOID"),
            ({"numSignatures": 1, "hashAlgorithmOID": "1.3.14.3.2.26"}, "Invalid parameter hashAlgorithmOID"),
            ({"numSignatures": 1, "hashes": ["ab$c"]}, "Invalid Base64 hash string parameter"),
            ({"numSignatures": 1, "hashes": [7]}, "Invalid Base64 hash string parameter"),
            ({"numSignatures": 1, "hashes": [H.b64(b"x" * 31)]}, "Invalid digest value length"),
            ({"numSignatures": 1, "hashes": []}, "Empty hash array"),
            ({"numSignatures": 1, "hashes": h * 2}, "Invalid value for parameter numSignatures"),
            ({"numSignatures": 1, "authData": [{"id": "PIN"}]}, "Invalid parameter authData"),
            ({"numSignatures": 1, "authData": [{"id": "FOO", "value": "1"}]}, "Invalid parameter authData"),
            ({"numSignatures": 1, "authData": pin * 2}, "Invalid parameter authData"),
            ({"numSignatures": 1, "description": "d" * 501}, "Invalid parameter description"),
        ]
        for patch, desc in cases:
            body = dict(base)
            for k, v in patch.items():
                if v is None:
                    body.pop(k, None)
                else:
                    body[k] = v
            with self.subTest(desc=desc, patch=str(patch)[:60]):
                self.assertError(SVC.post("credentials/authorize", body, self.t), 400, "invalid_request", desc)

    def test_wrong_factors(self):
        c = self.carol()
        h = H.digest("wrong factors")
        self.assertError(SVC.authorize(c, "carol-2fa", [h], pin="11223344"), 400, "invalid_authentication_data")
        # Right PIN, wrong OTP.
        r = SVC.post("credentials/authorize", {
            "credentialID": "carol-2fa", "numSignatures": 1, "hashes": [H.b64(h)], "hashAlgorithmOID": H.SHA256,
            "authData": [{"id": "PIN", "value": PIN_X}, {"id": "OTP", "value": "000000"}]}, c)
        self.assertError(r, 400, "invalid_authentication_data")
        # A success resets the failure count (max_failures = 3 here: two failures above).
        r = SVC.authorize(c, "carol-2fa", [h], pin=PIN_X, otp_secret=CAROL_TOTP)
        self.assertEqual(r.status, 200, r)
        # Right PIN, OTP missing; OTP without the PIN.
        self.assertError(SVC.authorize(c, "carol-2fa", [h], pin=PIN_X), 400, "invalid_authentication_data")
        self.assertError(SVC.authorize(c, "carol-2fa", [h], otp_secret=CAROL_TOTP), 400,
                         "invalid_authentication_data")
        self.assertEqual(SVC.authorize(c, "carol-2fa", [h], pin=PIN_X, otp_secret=CAROL_TOTP).status, 200)

    def test_otp_replay(self):
        c = self.carol()
        otp = H.fresh_totp(CAROL_TOTP, SVC.used_otps)
        body = {"credentialID": "carol-2fa-b", "numSignatures": 1, "hashes": [H.b64(H.digest("replay"))],
                "hashAlgorithmOID": H.SHA256,
                "authData": [{"id": "PIN", "value": PIN_X}, {"id": "OTP", "value": otp}]}
        self.assertEqual(SVC.post("credentials/authorize", body, c).status, 200)
        self.assertError(SVC.post("credentials/authorize", body, c), 400, "invalid_authentication_data")

    def test_credential_lockout(self):
        c = self.carol()
        h = H.digest("lock")
        for _ in range(3):
            self.assertError(SVC.authorize(c, "carol-lock", [h], pin="11112222"), 400, "invalid_authentication_data")
        self.assertError(SVC.authorize(c, "carol-lock", [h], pin=PIN_X), 400, "invalid_request", "Credential locked")
        # Other credentials of the same user are not locked.
        self.assertEqual(SVC.authorize(c, "carol-rsa", [h], pin=PIN_X).status, 200)

    def test_disabled_credential(self):
        r = SVC.authorize(self.carol(), "carol-off", [H.digest("off")], pin=PIN_X)
        self.assertError(r, 400, "invalid_request", "The credential identified by credentialID is disabled")

    def test_scal1_without_hashes(self):
        r = SVC.authorize(self.carol(), "carol-scal1", [], num=2, pin=PIN_X)
        self.assertEqual(r.status, 200, r)


class TestSignHash(Base):
    @classmethod
    def setUpClass(cls):
        cls.t = SVC.token()
        cls.rsa_pub = SVC.cert_pem(cls.t, "demo-rsa")
        cls.ec_pub = SVC.cert_pem(cls.t, "demo-ec")
        cls.carol_t = SVC.token("carol", H.pw("carol"))
        cls.carol_pub = SVC.cert_pem(cls.carol_t, "carol-rsa")

    def sad_ec(self, hashes, num=None, alg=H.SHA256):
        r = SVC.authorize(self.t, "demo-ec", hashes, num=num, pin=SVC.env["CSC_PIN"], alg=alg)
        self.assertEqual(r.status, 200, r)
        return r.json["SAD"]

    def sad_carol(self, hashes, num=None, alg=H.SHA256):
        r = SVC.authorize(self.carol_t, "carol-rsa", hashes, num=num, pin=PIN_X, alg=alg)
        self.assertEqual(r.status, 200, r)
        return r.json["SAD"]

    def sign(self, token, cred, sad, hashes, algo, **extra):
        body = {"credentialID": cred, "SAD": sad, "hashes": [H.b64(h) for h in hashes], "signAlgo": algo}
        body.update(extra)
        return SVC.post("signatures/signHash", body, token)

    def test_rsa_pin_and_otp_end_to_end(self):
        h = H.digest("end to end")
        r = SVC.authorize(self.t, "demo-rsa", [h], pin=SVC.env["CSC_PIN"], otp_secret=SVC.env["CSC_TOTP_SECRET"])
        r = self.sign(self.t, "demo-rsa", r.json["SAD"], [h], H.RSA_SHA256)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(H.verify(self.rsa_pub, base64.b64decode(r.json["signatures"][0]), h))

    def test_rsa_variants(self):
        for algo, md, extra in ((H.RSA_SHA384, "sha384", {}), (H.RSA_SHA512, "sha512", {}),
                                (H.RSA_ENC, "sha256", {"hashAlgorithmOID": H.SHA256}),
                                (H.RSA_ENC, "sha512", {"hashAlgorithmOID": H.SHA512})):
            with self.subTest(algo=algo, md=md):
                h = H.digest("variant " + algo + md, md)
                oid = {"sha256": H.SHA256, "sha384": H.SHA384, "sha512": H.SHA512}[md]
                sad = self.sad_carol([h], alg=oid)
                r = self.sign(self.carol_t, "carol-rsa", sad, [h], algo, **extra)
                self.assertEqual(r.status, 200, r)
                self.assertTrue(H.verify(self.carol_pub, base64.b64decode(r.json["signatures"][0]), h, md))

    def test_rsa_pss(self):
        for md, salt in (("sha256", 32), ("sha256", 20), ("sha512", 64)):
            with self.subTest(md=md, salt=salt):
                h = H.digest("pss %s %d" % (md, salt), md)
                oid = {"sha256": H.SHA256, "sha512": H.SHA512}[md]
                sad = self.sad_carol([h], alg=oid)
                r = self.sign(self.carol_t, "carol-rsa", sad, [h], H.RSA_PSS,
                              signAlgoParams=H.b64(H.pss_params_der(md, salt)))
                self.assertEqual(r.status, 200, r)
                self.assertTrue(H.verify(self.carol_pub, base64.b64decode(r.json["signatures"][0]), h, md, salt))

    def test_ecdsa_der(self):
        h = H.digest("ecdsa")
        r = self.sign(self.t, "demo-ec", self.sad_ec([h]), [h], H.ECDSA_SHA256)
        self.assertEqual(r.status, 200, r)
        sig = base64.b64decode(r.json["signatures"][0])
        self.assertEqual(sig[0], 0x30)  # DER SEQUENCE, not raw r||s
        self.assertTrue(H.verify(self.ec_pub, sig, h))

    def test_order_and_budget(self):
        a, b = H.digest("A"), H.digest("B")
        sad = self.sad_ec([a, b], num=2)
        r = self.sign(self.t, "demo-ec", sad, [b, a], H.ECDSA_SHA256)
        self.assertEqual(r.status, 200, r)
        sigs = [base64.b64decode(s) for s in r.json["signatures"]]
        self.assertTrue(H.verify(self.ec_pub, sigs[0], b))
        self.assertTrue(H.verify(self.ec_pub, sigs[1], a))
        self.assertFalse(H.verify(self.ec_pub, sigs[0], a))
        self.assertError(self.sign(self.t, "demo-ec", sad, [a], H.ECDSA_SHA256), 400, "invalid_request")

    def test_budget_spent_across_calls(self):
        a, b = H.digest("C1"), H.digest("C2")
        sad = self.sad_ec([a, b], num=2)
        self.assertEqual(self.sign(self.t, "demo-ec", sad, [a], H.ECDSA_SHA256).status, 200)
        self.assertEqual(self.sign(self.t, "demo-ec", sad, [b], H.ECDSA_SHA256).status, 200)
        self.assertError(self.sign(self.t, "demo-ec", sad, [b], H.ECDSA_SHA256), 400)

    def test_hash_not_authorized(self):
        a = H.digest("authorized")
        sad = self.sad_ec([a])
        r = self.sign(self.t, "demo-ec", sad, [H.digest("other")], H.ECDSA_SHA256)
        self.assertError(r, 400, "invalid_request", "Hash is not authorized by the SAD.")
        # The refused attempt spent nothing.
        self.assertEqual(self.sign(self.t, "demo-ec", sad, [a], H.ECDSA_SHA256).status, 200)

    def test_hash_algorithm_must_match_the_sad(self):
        h = H.digest("alg")
        sad = self.sad_ec([h])
        r = self.sign(self.t, "demo-ec", sad, [H.digest("alg", "sha384")], H.ECDSA_SHA384)
        self.assertError(r, 400, "invalid_request", "Hash is not authorized by the SAD.")

    def test_url_safe_and_unpadded_base64(self):
        h = next(H.digest("u%d" % i) for i in range(1000) if b"\xfb" in H.digest("u%d" % i) or
                 b"\xff" in H.digest("u%d" % i))
        sad = self.sad_ec([h])
        urlsafe = base64.urlsafe_b64encode(h).decode().rstrip("=")
        r = SVC.post("signatures/signHash", {"credentialID": "demo-ec", "SAD": sad, "hashes": [urlsafe],
                                             "signAlgo": H.ECDSA_SHA256}, self.t)
        self.assertEqual(r.status, 200, r)

    def test_v1_aliases(self):
        h = H.digest("v1 alias")
        sad = self.sad_carol([h])
        r = SVC.post("signatures/signHash", {"credentialID": "carol-rsa", "SAD": sad, "hash": [H.b64(h)],
                                             "hashAlgo": H.SHA256, "signAlgo": H.RSA_ENC}, self.carol_t)
        self.assertEqual(r.status, 200, r)

    def test_sad_bound_to_credential_and_user(self):
        h = H.digest("bound")
        sad = self.sad_ec([h])
        self.assertError(self.sign(self.t, "demo-rsa", sad, [h], H.RSA_SHA256), 400, "invalid_request",
                         "Invalid parameter SAD")
        t2 = SVC.token(SVC.env["CSC_USER2"], SVC.env["CSC_PASSWORD2"])
        self.assertError(self.sign(t2, "demo2-ec", sad, [h], H.ECDSA_SHA256), 400, "invalid_request",
                         "Invalid parameter SAD")
        self.assertError(self.sign(t2, "demo-ec", sad, [h], H.ECDSA_SHA256), 400, "invalid_request",
                         "Invalid parameter credentialID")
        # Still usable by its owner.
        self.assertEqual(self.sign(self.t, "demo-ec", sad, [h], H.ECDSA_SHA256).status, 200)

    def test_sign_errors(self):
        h = H.digest("errors")
        sad = self.sad_ec([h])
        good = {"credentialID": "demo-ec", "SAD": sad, "hashes": [H.b64(h)], "signAlgo": H.ECDSA_SHA256}
        cases = [
            ({"credentialID": None}, "Missing (or invalid type) string parameter credentialID"),
            ({"hashes": None}, "Missing (or invalid type) array parameter hash"),
            ({"hashes": "abc"}, "Missing (or invalid type) array parameter hash"),
            ({"hashes": []}, "Empty hash array"),
            ({"hashes": ["%%%"]}, "Invalid Base64 hash string parameter"),
            ({"hashes": [H.b64(b"y" * 31)]}, "Invalid digest value length"),
            ({"signAlgo": None}, "Missing (or invalid type) string parameter signAlgo"),
            ({"signAlgo": H.RSA_SHA256}, "Invalid parameter signAlgo"),
            ({"signAlgo": "1.2.3"}, "Invalid parameter signAlgo"),
            ({"SAD": None}, "Missing (or invalid type) string parameter SAD"),
            ({"SAD": "not-a-sad"}, "Invalid parameter SAD"),
            ({"operationMode": "X"}, "Invalid parameter operationMode"),
            ({"credentialID": "nope"}, "Invalid parameter credentialID"),
            ({"clientData": 5}, "Invalid parameter clientData"),
        ]
        for patch, desc in cases:
            body = dict(good)
            for k, v in patch.items():
                if v is None:
                    body.pop(k)
                else:
                    body[k] = v
            with self.subTest(desc=desc):
                self.assertError(SVC.post("signatures/signHash", body, self.t), 400, "invalid_request", desc)
        # None of those spent the SAD.
        self.assertEqual(SVC.post("signatures/signHash", good, self.t).status, 200)

    def test_rsa_parameter_errors(self):
        h = H.digest("rsa params")
        sad = self.sad_carol([h])
        base = {"credentialID": "carol-rsa", "SAD": sad, "hashes": [H.b64(h)]}
        self.assertError(SVC.post("signatures/signHash", dict(base, signAlgo=H.RSA_ENC), self.carol_t), 400,
                         "invalid_request", "Missing (or invalid type) string parameter hashAlgorithmOID")
        self.assertError(SVC.post("signatures/signHash", dict(base, signAlgo=H.RSA_PSS), self.carol_t), 400,
                         "invalid_request", "Missing (or invalid type) string parameter signAlgoParams")
        self.assertError(SVC.post("signatures/signHash", dict(base, signAlgo=H.RSA_PSS, signAlgoParams="MAA="),
                                  self.carol_t), 400, "invalid_request", "Invalid parameter signAlgoParams")
        # sha256WithRSAEncryption ignores a contradicting hashAlgorithmOID (CSC API v2.0.0.2 sec. 11.10).
        r = SVC.post("signatures/signHash", dict(base, signAlgo=H.RSA_SHA256, hashAlgorithmOID=H.SHA512),
                     self.carol_t)
        self.assertEqual(r.status, 200, r)

    def test_sad_expires(self):
        h = H.digest("expiry")
        sad = self.sad_ec([h])
        time.sleep(11)  # sad_ttl = 10 in this service's configuration
        self.assertError(self.sign(self.t, "demo-ec", sad, [h], H.ECDSA_SHA256), 400, "invalid_request",
                         "SAD expired")
        # An expired SAD cannot be extended either.
        r = SVC.post("credentials/extendTransaction", {"credentialID": "demo-ec", "SAD": sad, "hashes": [H.b64(h)],
                                                       "hashAlgorithmOID": H.SHA256}, self.t)
        self.assertError(r, 400, "invalid_request", "SAD expired")

    def extend(self, token, cred, sad, hashes=None):
        body = {"credentialID": cred, "SAD": sad}
        if hashes is not None:
            body["hashes"] = [H.b64(x) for x in hashes]
            body["hashAlgorithmOID"] = H.SHA256
        return SVC.post("credentials/extendTransaction", body, token)

    def test_extend_transaction(self):
        a, b, c = H.digest("ext a"), H.digest("ext b"), H.digest("ext c")
        sad1 = self.sad_ec([a, b, c], num=3)
        self.assertEqual(self.sign(self.t, "demo-ec", sad1, [a], H.ECDSA_SHA256).status, 200)
        r = self.extend(self.t, "demo-ec", sad1, [b, c])
        self.assertEqual(r.status, 200, r)
        sad2 = r.json["SAD"]
        self.assertNotEqual(sad2, sad1)
        self.assertGreater(r.json["expiresIn"], 0)
        # The old SAD stopped working; the new one carries the rest of the budget and only the new digests.
        self.assertError(self.sign(self.t, "demo-ec", sad1, [b], H.ECDSA_SHA256), 400, "invalid_request",
                         "Invalid parameter SAD")
        self.assertError(self.sign(self.t, "demo-ec", sad2, [a], H.ECDSA_SHA256), 400, "invalid_request",
                         "Hash is not authorized by the SAD.")
        r = self.sign(self.t, "demo-ec", sad2, [c, b], H.ECDSA_SHA256)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(H.verify(self.ec_pub, base64.b64decode(r.json["signatures"][0]), c))
        self.assertError(self.extend(self.t, "demo-ec", sad2, [a]), 400, "invalid_request")  # used up

    def test_extend_renews_only_bound_unsigned_digests(self):
        """Issue 9 item 2: extendTransaction renews a SAD for digests already bound to it and not yet signed. A
        digest never bound (the user approved only the bound ones) or one already signed is refused without a
        factor ever being asked, and the refusal leaves the SAD as it was; without hashes (SCAL 1 style) the new
        SAD binds every bound digest not yet signed."""
        a, b, c = H.digest("bound a"), H.digest("bound b"), H.digest("never approved c")
        sad = self.sad_ec([a, b], num=2)
        self.assertEqual(self.sign(self.t, "demo-ec", sad, [a], H.ECDSA_SHA256).status, 200)
        for refused in ([c], [a], [b, c]):
            self.assertError(self.extend(self.t, "demo-ec", sad, refused), 400, "invalid_request",
                             "Hash is not authorized by the SAD.")
        r = self.extend(self.t, "demo-ec", sad, [b])
        self.assertEqual(r.status, 200, r)
        sad2 = r.json["SAD"]
        self.assertError(self.sign(self.t, "demo-ec", sad2, [c], H.ECDSA_SHA256), 400, "invalid_request",
                         "Hash is not authorized by the SAD.")
        self.assertError(self.sign(self.t, "demo-ec", sad2, [a], H.ECDSA_SHA256), 400, "invalid_request",
                         "Hash is not authorized by the SAD.")
        r = self.sign(self.t, "demo-ec", sad2, [b], H.ECDSA_SHA256)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(H.verify(self.ec_pub, base64.b64decode(r.json["signatures"][0]), b))
        # Every digest signed: nothing left to renew.
        self.assertError(self.extend(self.t, "demo-ec", sad2, [b]), 400, "invalid_request")

    def test_extend_errors(self):
        a = H.digest("ext err")
        sad = self.sad_ec([a], num=2)
        self.assertError(self.extend(self.t, "demo-ec", sad), 400, "invalid_request",
                         "Missing (or invalid type) array parameter hashes")  # SCAL 2 needs the new digests
        self.assertError(SVC.post("credentials/extendTransaction", {"credentialID": "demo-ec"}, self.t), 400,
                         "invalid_request", "Missing (or invalid type) string parameter SAD")
        self.assertError(self.extend(self.t, "demo-rsa", sad, [a]), 400, "invalid_request", "Invalid parameter SAD")
        self.assertError(self.extend(self.t, "demo-ec", "x" * 43, [a]), 400, "invalid_request", "Invalid parameter SAD")
        t2 = SVC.token(SVC.env["CSC_USER2"], SVC.env["CSC_PASSWORD2"])
        self.assertError(self.extend(t2, "demo2-ec", sad, [a]), 400, "invalid_request", "Invalid parameter SAD")
        # None of those touched the SAD.
        self.assertEqual(self.sign(self.t, "demo-ec", sad, [a], H.ECDSA_SHA256).status, 200)

    def test_extend_scal1_keeps_unbound_budget(self):
        r = SVC.authorize(self.carol_t, "carol-scal1", [], num=2, pin=PIN_X)
        self.assertEqual(r.status, 200, r)
        r = self.extend(self.carol_t, "carol-scal1", r.json["SAD"])
        self.assertEqual(r.status, 200, r)
        h = H.digest("scal1 any")
        self.assertEqual(self.sign(self.carol_t, "carol-scal1", r.json["SAD"], [h], H.ECDSA_SHA256).status, 200)

    def test_concurrent_spending_never_exceeds_the_budget(self):
        h = H.digest("race")
        sad = self.sad_ec([h], num=3)

        def one(_):
            return self.sign(self.t, "demo-ec", sad, [h], H.ECDSA_SHA256).status

        with concurrent.futures.ThreadPoolExecutor(max_workers=12) as ex:
            statuses = list(ex.map(one, range(12)))
        self.assertEqual(statuses.count(200), 3, statuses)
        self.assertEqual(statuses.count(400), 9, statuses)

    def test_many_hashes(self):
        hs = [H.digest("many %d" % i) for i in range(64)]
        sad = self.sad_ec(hs)
        r = self.sign(self.t, "demo-ec", sad, hs, H.ECDSA_SHA256)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["signatures"]), 64)
        self.assertTrue(H.verify(self.ec_pub, base64.b64decode(r.json["signatures"][63]), hs[63]))

    def test_disabled_credential_cannot_sign(self):
        h = H.digest("disable me")
        sad = self.sad_carol([h], num=2)
        SVC.admin("credential", "disable", "carol-rsa")
        try:
            self.assertError(self.sign(self.carol_t, "carol-rsa", sad, [h], H.RSA_SHA256), 400, "invalid_request",
                             "The credential identified by credentialID is disabled")
        finally:
            SVC.admin("credential", "enable", "carol-rsa")
        self.assertEqual(self.sign(self.carol_t, "carol-rsa", sad, [h], H.RSA_SHA256).status, 200)


class TestLogs(Base):
    def test_access_log_has_no_secrets(self):
        # Make sure some traffic with secrets went by.
        j = SVC.login(remember=True)
        SVC.authorize(j["access_token"], "demo-ec", [H.digest("log")], pin=SVC.env["CSC_PIN"])
        time.sleep(0.3)
        log = open(os.path.join(SVC.dir, "log", "access.log")).read()
        self.assertIn("/csc/v2/credentials/authorize", log)
        for secret in (SVC.env["CSC_PASSWORD"], SVC.env["CSC_PIN"], j["access_token"], j["refresh_token"]):
            self.assertNotIn(secret, log)
            self.assertNotIn(secret, SVC.server_stderr())
        self.assertRegex(log, r'"POST /csc/v2/info" HTTP/1\.1 200 \d+')


class TestV1(Base):
    """CSC v1.0.4.0 clients on /csc/v1/: the request bodies pyHanko sends (docs/csc-api.md sec. 17)."""

    def v1(self, method, body, token=None, auth=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        if auth:
            headers["Authorization"] = auth
        return SVC.request("POST", "/csc/v1/" + method, json.dumps(body).encode(), headers)

    def login_v1(self):
        basic = base64.b64encode(("%s:%s" % (SVC.env["CSC_USER"], SVC.env["CSC_PASSWORD"])).encode()).decode()
        r = self.v1("auth/login", {}, auth="Basic " + basic)
        self.assertEqual(r.status, 200, r)
        return r.json["access_token"]

    def test_info_v1(self):
        r = self.v1("info", {})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["specs"], "1.0.4.0")
        self.assertIn("credentials/authorize", r.json["methods"])
        self.assertNotIn("signAlgorithms", r.json)
        self.assertEqual(r.json["oauth2"], "https://localhost:%d" % SVC.port)  # + "/oauth2/authorize" etc.

    def test_list_paging(self):
        t = self.login_v1()
        r = self.v1("credentials/list", {"maxResults": 1}, t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["credentialIDs"]), 1)
        r2 = self.v1("credentials/list", {"maxResults": 1, "pageToken": r.json["nextPageToken"]}, t)
        self.assertEqual(len(r2.json["credentialIDs"]), 1)
        self.assertNotIn("nextPageToken", r2.json)
        self.assertEqual(sorted(r.json["credentialIDs"] + r2.json["credentialIDs"]), ["demo-ec", "demo-rsa"])
        self.assertError(self.v1("credentials/list", {"pageToken": "x"}, t), 400, "invalid_request")
        self.assertError(self.v1("credentials/list", {"maxResults": 0}, t), 400, "invalid_request")

    def test_info_authmode_objects(self):
        """v1.0.4.0: authMode always; the PIN and OTP objects only with authInfo true (its default is false)."""
        t = self.login_v1()
        for extra in ({}, {"authInfo": False}, {"authInfo": "false"}):
            r = self.v1("credentials/info", dict({"credentialID": "demo-rsa", "certificates": "chain"}, **extra), t)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["authMode"], "explicit")
            self.assertNotIn("PIN", r.json, extra)
            self.assertNotIn("OTP", r.json, extra)
        r = self.v1("credentials/info", {"credentialID": "demo-rsa", "certificates": "chain", "authInfo": True}, t)
        self.assertEqual(r.status, 200, r)
        j = r.json
        self.assertEqual(j["authMode"], "explicit")
        self.assertEqual(j["PIN"]["presence"], "true")
        self.assertEqual(j["OTP"]["presence"], "true")
        self.assertEqual(j["OTP"]["type"], "offline")
        self.assertNotIn("auth", j)
        self.assertEqual(len(j["cert"]["certificates"]), 2)
        self.assertIn(H.RSA_SHA256, j["key"]["algo"])
        r = self.v1("credentials/info", {"credentialID": "demo-ec", "authInfo": True}, t)
        self.assertEqual(r.json["OTP"]["presence"], "false")
        # The v1 list has no credentialInfo: ids only, whatever credentialInfo and authInfo say.
        r = self.v1("credentials/list", {"credentialInfo": True, "authInfo": False}, t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["credentialIDs"])
        self.assertTrue(all(isinstance(c, str) for c in r.json["credentialIDs"]), r)

    def test_pyhanko_flow_and_shared_sad_rules(self):
        t = self.login_v1()
        h = H.digest("pyhanko v1")
        r = self.v1("credentials/authorize", {"credentialID": "demo-ec", "numSignatures": 1, "hash": [H.b64(h)],
                                              "PIN": SVC.env["CSC_PIN"]}, t)
        self.assertEqual(r.status, 200, r)
        sad = r.json["SAD"]
        r = self.v1("signatures/signHash", {"credentialID": "demo-ec", "SAD": sad, "hashAlgo": H.SHA256,
                                            "signAlgo": H.ECDSA_SHA256, "hash": [H.b64(h)]}, t)
        self.assertEqual(r.status, 200, r)
        pub = SVC.cert_pem(t, "demo-ec")
        self.assertTrue(H.verify(pub, base64.b64decode(r.json["signatures"][0]), h))
        # Same SAD rules underneath: the budget is spent, on either path.
        r = SVC.post("signatures/signHash", {"credentialID": "demo-ec", "SAD": sad, "hashes": [H.b64(h)],
                                             "signAlgo": H.ECDSA_SHA256}, t)
        self.assertError(r, 400, "invalid_request")

    def test_v1_errors(self):
        t = self.login_v1()
        h = H.digest("v1 errors")
        r = self.v1("credentials/authorize", {"credentialID": "demo-ec", "numSignatures": 1, "hash": [H.b64(h)],
                                              "PIN": "00000000" if SVC.env["CSC_PIN"] != "00000000" else "1"}, t)
        self.assertError(r, 400, "invalid_pin")
        r = self.v1("credentials/authorize", {"credentialID": "demo-ec", "numSignatures": 1, "hash": [H.b64(h)],
                                              "PIN": SVC.env["CSC_PIN"]}, t)
        sad = r.json["SAD"]
        r = self.v1("credentials/extendTransaction", {"credentialID": "demo-ec", "SAD": sad, "hash": [H.b64(h)]}, t)
        self.assertEqual(r.status, 200, r)
        self.assertError(self.v1("signatures/signDoc", {}, t), 404, "invalid_request")


class TestAuthorizeNotActive(Base):
    """credentials/authorize for a credential that is disabled, whose user is suspended, or whose owner is
    suspended while a delegate asks: 400 invalid_request "The credential identified by credentialID is disabled"
    (docs/csc-api.md sec. 8 and 17), on /csc/v2/ and /csc/v1/, never 503 temporarily_unavailable."""

    DISABLED = "The credential identified by credentialID is disabled"

    def v1(self, body, token):
        return SVC.request("POST", "/csc/v1/credentials/authorize", json.dumps(body).encode(),
                           {"Content-Type": "application/json", "Authorization": "Bearer " + token})

    def attempts(self, token, cid, pin):
        """The v2 request, the v1 request with its PIN, and the v1 request with an OTP only (v1 names the factor
        it was given, so it has a table of its own)."""
        h = [H.b64(H.digest("not active " + cid))]
        return [
            ("v2", SVC.post("credentials/authorize", {"credentialID": cid, "numSignatures": 1, "hashes": h,
                                                      "hashAlgorithmOID": H.SHA256,
                                                      "authData": [{"id": "PIN", "value": pin}]}, token)),
            ("v1 PIN", self.v1({"credentialID": cid, "numSignatures": 1, "hash": h, "PIN": pin}, token)),
            ("v1 OTP", self.v1({"credentialID": cid, "numSignatures": 1, "hash": h, "OTP": "123456"}, token)),
        ]

    def test_disabled_credential(self):
        for what, r in self.attempts(self.carol(), "carol-off", PIN_X):
            with self.subTest(what):
                self.assertError(r, 400, "invalid_request", self.DISABLED)

    def test_delegate_of_a_suspended_owner(self):
        SVC.add_user("nao-own", H.pw("nao-own"))
        SVC.add_user("nao-del", H.pw("nao-del"))
        SVC.create_credential("--id", "nao-1", "--user", "nao-own", "--key", "p256", "--auth", "PIN",
                  "--scal", "2", "--multisign", "5", pin=PIN_X)
        SVC.admin("credential", "delegate", "nao-1", "--user", "nao-del", "--evidence", "consent NAO-1")
        SVC.set_pin("nao-del", "nao-1", "13572468")
        dele = SVC.token("nao-del", H.pw("nao-del"))
        self.assertEqual(SVC.authorize(dele, "nao-1", [H.digest("nao")], pin="13572468").status, 200)
        SVC.admin("user", "suspend", "nao-own")
        try:
            for what, r in self.attempts(dele, "nao-1", "13572468"):
                with self.subTest(what):
                    self.assertError(r, 400, "invalid_request", self.DISABLED)
        finally:
            SVC.admin("user", "resume", "nao-own")
        self.assertEqual(SVC.authorize(dele, "nao-1", [H.digest("nao again")], pin="13572468").status, 200)

    def test_suspended_user(self):
        """The suspension revokes the user's tokens in the same transaction (J4), so the bearer token is refused
        first: 401 invalid_token, not a 503."""
        SVC.add_user("nao-sus", H.pw("nao-sus"))
        SVC.create_credential("--id", "nao-sus-1", "--user", "nao-sus", "--key", "p256", "--auth",
                  "PIN", "--scal", "2", "--multisign", "5", pin=PIN_X)
        t = SVC.token("nao-sus", H.pw("nao-sus"))
        SVC.admin("user", "suspend", "nao-sus")
        for what, r in self.attempts(t, "nao-sus-1", PIN_X):
            with self.subTest(what):
                self.assertError(r, 401, "invalid_token")


class TestLifecycle(Base):
    """J7 and J1: revocation and renewal destroy keys; suspension and termination of users."""

    def key_labels(self):
        env = dict(os.environ, SOFTHSM2_CONF=os.path.join(SVC.dir, "softhsm", "softhsm2.conf"))
        with open(os.path.join(SVC.dir, "secrets", "token.pin")) as f:
            pin = f.read().strip()
        out = subprocess.run(["pkcs11-tool", "--module", "/usr/lib/softhsm/libsofthsm2.so", "--token-label",
                              "csc-demo", "--login", "--pin", pin, "--list-objects", "--type", "privkey"],
                             capture_output=True, text=True, env=env, check=True).stdout
        return re.findall(r"label:\s+(\S+)", out)

    def make(self, user, cid):
        SVC.create_credential("--id", cid, "--user", user, "--key", "p256", "--auth", "PIN",
                  "--scal", "2", "--multisign", "5", pin=PIN_X)

    def sad(self, t, cid, hashes):
        r = SVC.authorize(t, cid, hashes, pin=PIN_X)
        self.assertEqual(r.status, 200, r)
        return r.json["SAD"]

    def sign(self, t, cid, sad, h):
        return SVC.post("signatures/signHash", {"credentialID": cid, "SAD": sad, "hashes": [H.b64(h)],
                                                "signAlgo": H.ECDSA_SHA256}, t)

    def test_pin_min_length(self):
        """Issue 9 item 12: a credential PIN has at least pin_min_length digits (default 6 in the test environment),
        wherever it is set: the owner's and a delegate's own PIN, each on /account (issue 12: never by an operator).
        Until then the credential cannot be authorized."""
        SVC.add_user("pina", H.pw("pina"))
        SVC.add_user("pinb", H.pw("pinb"))
        SVC.create_credential("--id", "pina-1", "--user", "pina", "--key", "p256", "--auth", "PIN")
        SVC.admin("credential", "delegate", "pina-1", "--user", "pinb", "--evidence", "form 1")
        self.assertIn("pin=unset", [l for l in SVC.admin("list").stdout.splitlines() if "pina-1" in l][0])
        t = SVC.token("pina", H.pw("pina"))
        self.assertError(SVC.authorize(t, "pina-1", [H.digest("no PIN yet")], pin="123456"), 400, "invalid_request",
                         "The credential identified by credentialID is disabled")
        for user, pin in (("pina", "123456"), ("pinb", "471147")):
            for short in ("1234", "12345"):
                with self.assertRaises(AssertionError, msg=(user, short)):
                    SVC.set_pin(user, "pina-1", short)
            SVC.set_pin(user, "pina-1", pin)
        self.assertEqual(SVC.authorize(t, "pina-1", [H.digest("pin 6")], pin="123456").status, 200)
        t = SVC.token("pinb", H.pw("pinb"))
        self.assertEqual(SVC.authorize(t, "pina-1", [H.digest("delegate pin 6")], pin="471147").status, 200)

    def test_revoke_destroys_the_key(self):
        SVC.add_user("dora", H.pw("dora"))
        self.make("dora", "dora-1")
        t = SVC.token("dora", H.pw("dora"))
        h = H.digest("before revocation")
        sad = self.sad(t, "dora-1", [h])
        self.assertIn("dora-1", self.key_labels())
        out = SVC.admin("credential", "revoke", "dora-1")
        self.assertIn("can never sign again", out.stdout)
        self.assertNotIn("dora-1", self.key_labels())
        self.assertError(self.sign(t, "dora-1", sad, h), 400, "invalid_request",
                         "The credential identified by credentialID is disabled")
        self.assertEqual(SVC.post("credentials/info", {"credentialID": "dora-1"}, t).json["key"]["status"], "disabled")
        self.assertNotEqual(SVC.admin("credential", "enable", "dora-1", check=False).returncode, 0)
        self.assertIn("destroyed", SVC.admin("list").stdout)

    def test_renew_replaces_key_and_certificate(self):
        SVC.add_user("erin", H.pw("erin"))
        self.make("erin", "erin-1")
        t = SVC.token("erin", H.pw("erin"))
        before = SVC.post("credentials/info", {"credentialID": "erin-1", "certInfo": True}, t).json
        out = SVC.admin("credential", "renew", "erin-1")
        self.assertIn("old key destroyed", out.stdout)
        self.assertEqual(self.key_labels().count("erin-1"), 1)  # the new key only
        after = SVC.post("credentials/info", {"credentialID": "erin-1", "certInfo": True}, t).json
        self.assertNotEqual(before["cert"]["serialNumber"], after["cert"]["serialNumber"])
        self.assertNotEqual(before["cert"]["certificates"], after["cert"]["certificates"])
        h = H.digest("after renewal")
        r = self.sign(t, "erin-1", self.sad(t, "erin-1", [h]), h)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(H.verify(SVC.cert_pem(t, "erin-1"), base64.b64decode(r.json["signatures"][0]), h))

    def test_operator_reset_revokes_everything(self):
        """Issue 9 item 7: user recover (issue 12: password and TOTP cleared, a new enrollment code), user suspend
        (then resume) and user terminate revoke, at once, every access token, refresh token and SAD the user held
        before, and audit how many; a new login (where the user may still log in: after the new enrollment) gets a
        working token and a fresh authorization."""
        for cmd in ("recover", "suspend", "terminate"):
            with self.subTest(cmd=cmd):
                user = "reset-" + cmd
                pw = H.pw(user)
                SVC.add_user(user, pw)
                self.make(user, user + "-1")
                j = SVC.login(user, pw, remember=True)
                t, rt = j["access_token"], j["refresh_token"]
                h = H.digest("before the reset: " + cmd)
                sad = self.sad(t, user + "-1", [h])
                if cmd == "recover":
                    pw = H.pw("new " + user)
                    SVC.recover(user, pw)  # and the user enrolls again
                elif cmd == "suspend":
                    SVC.admin("user", "suspend", user)
                    SVC.admin("user", "resume", user)
                else:
                    SVC.admin("user", "terminate", user)
                self.assertError(SVC.post("credentials/list", {}, t), 401)
                self.assertError(SVC.post("auth/login", {"refresh_token": rt}), 400, "invalid_request",
                                 "Invalid refresh_token")
                log = SVC.admin("audit", "query", "--user", user, "--event",
                                "enroll" if cmd == "recover" else "admin").stdout
                self.assertIn("revoked: tokens=2 sads=1 pending=0", log)
                if cmd == "terminate":
                    continue
                t2 = SVC.token(user, pw)
                self.assertError(self.sign(t2, user + "-1", sad, h), 400, "invalid_request", "Invalid parameter SAD")
                self.assertEqual(self.sign(t2, user + "-1", self.sad(t2, user + "-1", [h]), h).status, 200)

    def test_suspend_resume_terminate(self):
        SVC.add_user("fred", H.pw("fred"))
        self.make("fred", "fred-1")
        self.make("fred", "fred-2")
        t = SVC.token("fred", H.pw("fred"))
        SVC.admin("user", "suspend", "fred")
        self.assertError(SVC.post("credentials/list", {}, t), 401)
        basic = "Basic " + base64.b64encode(("fred:" + H.pw("fred")).encode()).decode()
        self.assertError(SVC.post("auth/login", {}, auth=basic), 400, "authentication_error")
        SVC.admin("user", "resume", "fred")
        # The suspension revoked the token for good (issue 9 item 7): after the resume a new login is needed.
        self.assertError(SVC.post("credentials/list", {}, t), 401)
        t = SVC.token("fred", H.pw("fred"))
        self.assertEqual(SVC.post("credentials/list", {}, t).status, 200)
        out = SVC.admin("user", "terminate", "fred")
        self.assertIn("terminated", out.stdout)
        labels = self.key_labels()
        self.assertNotIn("fred-1", labels)
        self.assertNotIn("fred-2", labels)
        self.assertError(SVC.post("credentials/list", {}, t), 401)
        self.assertNotEqual(SVC.admin("user", "resume", "fred", check=False).returncode, 0)
        # Every step is in the audit log with the operator's name.
        log = SVC.admin("audit", "query", "--user", "fred", "--event", "admin").stdout
        for action in ("user.suspend", "user.resume", "user.terminate", "credential.destroy"):
            self.assertIn(action, log)
        self.assertIn("operator=%s " % SVC.env["CSC_OPERATOR"], log)  # the operator logged in


class TestLogo(Base):
    """info.logo resolves: the file of info_logo_file (the demo's PNG) is served where info.logo says."""

    def test_demo_logo_resolves(self):
        for path in ("/csc/v2/info", "/csc/v1/info"):
            url = SVC.request("POST", path, b"{}", {"Content-Type": "application/json"}).json["logo"]
            self.assertTrue(url.startswith("https://localhost:%d/" % SVC.port), url)
            r = SVC.request("GET", url.split("localhost:%d" % SVC.port, 1)[1])
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers["content-type"], "image/png")
            with open(os.path.join(SVC.dir, "logo.png"), "rb") as f:
                self.assertEqual(r.raw, f.read())
            self.assertTrue(r.raw.startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertEqual(SVC.request("HEAD", "/logo.png").status, 200)
        self.assertError(SVC.request("GET", "/logo.gif"), 404)
        self.assertError(SVC.request("POST", "/logo.png", b"{}"), 405)

    def test_logo_configurations(self):
        svc = H.Service(BUILD)
        server = os.path.join(svc.build, "server", "csc-server")
        with open(svc.conf) as f:
            conf = f.read()
        self.assertIn("info_logo_file = logo.png\n", conf)

        def start(extra, files=None):
            for name, data in (files or {}).items():
                with open(os.path.join(svc.dir, name), "wb") as f:
                    f.write(data)
            with open(svc.conf, "w") as f:
                f.write(conf.replace("info_logo_file = logo.png\n", "") + extra)
            return subprocess.run([server, "-c", svc.conf], capture_output=True, text=True, timeout=60)

        gif = b"GIF89a" + bytes(30)
        for extra, files, text in (
                ("info_logo_file = big.png\n", {"big.png": b"\x89PNG\r\n\x1a\n" + bytes(300 * 1024)}, "larger than"),
                ("info_logo_file = logo.svg\n", {"logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>"}, "SVG"),
                ("info_logo_file = wrong.png\n", {"wrong.png": gif}, "image/gif"),
                ("info_logo_file = missing.png\n", None, "missing.png"),
                ("info_logo = https://localhost:%d/logo.png\n" % svc.port, None, "info_logo"),
                ("info_logo = https://cdn.example/l.png\ninfo_logo_file = logo.png\n", None, "give one")):
            r = start(extra, files)
            self.assertEqual(r.returncode, 1, (extra, r.stderr))
            self.assertIn(text, r.stderr, extra)
        # A GIF is served as one, at /logo.gif.
        with open(os.path.join(svc.dir, "l.gif"), "wb") as f:
            f.write(gif)
        with open(svc.conf, "w") as f:
            f.write(conf.replace("info_logo_file = logo.png\n", "info_logo_file = l.gif\n"))
        svc.start()
        try:
            self.assertEqual(svc.post("info", {}).json["logo"], "https://localhost:%d/logo.gif" % svc.port)
            r = svc.request("GET", "/logo.gif")
            self.assertEqual((r.status, r.headers["content-type"], r.raw), (200, "image/gif", gif))
            self.assertEqual(svc.request("GET", "/logo.png").status, 404)
        finally:
            self.assertEqual(svc.stop(), 0)
        # An external URL is published as it is, and the service serves no logo of its own.
        with open(svc.conf, "w") as f:
            f.write(conf.replace("info_logo_file = logo.png\n", "info_logo = https://cdn.example/l.png\n"))
        svc.start()
        try:
            self.assertEqual(svc.post("info", {}).json["logo"], "https://cdn.example/l.png")
            self.assertEqual(svc.request("GET", "/logo.png").status, 404)
        finally:
            self.assertEqual(svc.stop(), 0)


class TestEnvironment(Base):
    """J13: production refuses SoftHSM and the demo CA unless allow_test_components is set."""

    def test_production_refuses_test_components(self):
        svc = H.Service(BUILD)
        with open(svc.conf) as f:
            conf = f.read().replace("environment = test", "environment = production")
        with open(svc.conf, "w") as f:
            f.write(conf)
        # (production also requires CRLs: TestProductionPolicy)
        os.makedirs(os.path.join(svc.dir, "crl"))
        with open(svc.conf, "a") as f:
            f.write("crl_dir = crl\ncrl_require = yes\n")
        server = os.path.join(svc.build, "server", "csc-server")
        r = subprocess.run([server, "-c", svc.conf], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("SoftHSM", r.stderr)
        self.assertIn("allow_test_components", r.stderr)
        # The admin tool refuses them too: SoftHSM where it needs the HSM, the demo CA everywhere.
        out = svc.admin("credential", "create", "--user", svc.env["CSC_USER"], "--key", "p256", "--auth", "PIN",
                        check=False)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("SoftHSM", out.stderr)
        out = svc.admin("user", "add", "prod-user", "--contact", "prod@example.test", "--evidence", "ev-prod",
                        "--letter", check=False)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("demo CA", out.stderr)
        with open(svc.conf, "a") as f:
            f.write("allow_test_components = yes\n")
        svc.start()
        try:
            info = svc.post("info", {}).json
            self.assertIn("production environment", info["description"])
            self.assertIn("test components allowed", svc.server_stderr())
        finally:
            self.assertEqual(svc.stop(), 0)


class TestProductionPolicy(Base):
    """J9/J13: production refuses to start without CRLs (crl_dir, crl_require = yes); csc-admin creates no SCAL 1 or
    single-factor credentials and issues nothing from the built-in CA unless allowed; existing such credentials are
    refused when authorized and when they sign, unless allow_scal1 / allow_single_factor (warned at start-up)."""

    def test_production_policy(self):
        svc = H.Service(BUILD)
        pin = "86420975"
        for cid, scal, auth in (("p-scal1", "1", "PIN AND OTP"), ("p-one", "2", "PIN"), ("p-two", "2", "PIN AND OTP"),
                                ("p-otp-or-pin", "2", "PIN OR OTP")):
            svc.create_credential("--id", cid, "--user", svc.env["CSC_USER"], "--key", "p256",
                      "--auth", auth, "--scal", scal, pin=pin)
        with open(svc.conf) as f:
            base = f.read().replace("environment = test", "environment = production") + "allow_test_components = yes\n"
        os.makedirs(os.path.join(svc.dir, "crl"))
        server = os.path.join(svc.build, "server", "csc-server")

        def write(extra):
            with open(svc.conf, "w") as f:
                f.write(base + extra)

        def refused(extra, text):
            write(extra)
            r = subprocess.run([server, "-c", svc.conf], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 1, (extra, r.stderr))
            self.assertIn(text, r.stderr)

        # csc-server start-up: no CRLs, or CRLs that let an issuer without one sign unchecked.
        refused("", "crl_dir: required in production")
        refused("crl_dir = crl\n", "crl_require: must be yes in production")
        refused("crl_dir = crl\ncrl_require = no\n", "crl_require: must be yes in production")
        write("crl_dir = crl\ncrl_require = yes\n")

        # csc-admin credential create: before any key is made.
        def create(cid, scal, auth, *extra):
            return svc.admin("credential", "create", "--id", cid, "--user", svc.env["CSC_USER"], "--key", "p256",
                             "--auth", auth, "--scal", scal, *extra, check=False)
        r = create("n-scal1", "1", "PIN AND OTP")
        self.assertEqual(r.returncode, 1)
        self.assertIn("SCAL 1 credentials are refused in production (allow_scal1 = yes overrides)", r.stderr)
        for auth in ("PIN", "OTP", "PIN OR OTP", "CHALLENGE"):
            r = create("n-one", "2", auth)
            self.assertEqual(r.returncode, 1, auth)
            self.assertIn("production requires two", r.stderr)
        r = create("n-ca", "2", "PIN AND OTP")
        self.assertEqual(r.returncode, 1)
        self.assertIn("built-in CA", r.stderr)
        self.assertIn("allow_builtin_ca", r.stderr)
        self.assertNotIn("n-scal1", svc.admin("list").stdout)
        self.assertNotIn("n-one", svc.admin("list").stdout)
        csr = os.path.join(svc.tmp, "n-csr.csr")
        r = create("n-csr", "2", "PIN AND OTP", "--csr", csr, "--cn", "CSR", "--org", "Org", "--country", "JP")
        self.assertEqual(r.returncode, 0, r.stderr)      # an external CA's request is fine
        self.assertNotEqual(svc.admin("credential", "renew", "p-two", check=False).returncode, 0)

        # Signing time: the credentials made before are refused by policy, the two-factor one only lacks a CRL.
        svc.start()
        try:
            t = svc.token()
            h = H.digest("production")
            r = svc.authorize(t, "p-scal1", [h], pin=pin, otp_secret=svc.env["CSC_TOTP_SECRET"])
            self.assertError(r, 400, "invalid_request",
                             "The credential is SCAL 1, which this production service does not accept")
            for cid in ("p-one", "p-otp-or-pin"):
                r = svc.authorize(t, cid, [h], pin=pin)
                self.assertError(r, 400, "invalid_request", "The credential's authorization has a single factor, "
                                 "which this production service does not accept")
            r = svc.authorize(t, "p-two", [h], pin=pin, otp_secret=svc.env["CSC_TOTP_SECRET"])
            self.assertEqual(r.status, 200, r)
            r = svc.post("signatures/signHash", {"credentialID": "p-two", "SAD": r.json["SAD"], "hashes": [H.b64(h)],
                                                 "signAlgo": H.ECDSA_SHA256}, t)
            self.assertError(r, 400, "invalid_request")
            self.assertIn("cannot be confirmed", r.json["error_description"])   # crl_require: no CRL of the demo CA
        finally:
            self.assertEqual(svc.stop(), 0)

        # The overrides: warned at start-up, and then accepted.
        write("crl_dir = crl\ncrl_require = yes\nallow_scal1 = yes\nallow_single_factor = yes\nallow_builtin_ca = yes\n")
        r = create("n-ok", "1", "PIN")
        self.assertEqual(r.returncode, 0, r.stderr)
        svc.start()
        try:
            err = svc.server_stderr()
            self.assertIn("WARNING: production environment accepting SCAL 1 credentials (allow_scal1 = yes)", err)
            self.assertIn("WARNING: production environment accepting single-factor credentials", err)
            self.assertIn("allow_builtin_ca = yes", err)
            t = svc.token()
            h = H.digest("production, allowed")
            self.assertEqual(svc.authorize(t, "p-one", [h], pin=pin).status, 200)
            r = svc.authorize(t, "p-scal1", [h], pin=pin, otp_secret=svc.env["CSC_TOTP_SECRET"])
            self.assertEqual(r.status, 200, r)
        finally:
            self.assertEqual(svc.stop(), 0)


class TestZRecovery(Base):
    """Runs last: disturbs the shared service (token loss, a hard crash) and checks it recovers."""

    def test_token_loss_gives_503_then_recovers(self):
        t = SVC.token()
        h = H.digest("token loss")
        r = SVC.authorize(t, "demo-ec", [h], pin=SVC.env["CSC_PIN"])
        sad = r.json["SAD"]
        tokens = os.path.join(SVC.dir, "softhsm", "tokens")
        os.rename(tokens, tokens + ".away")
        try:
            r = SVC.post("signatures/signHash", {"credentialID": "demo-ec", "SAD": sad, "hashes": [H.b64(h)],
                                                 "signAlgo": H.ECDSA_SHA256}, t)
            self.assertError(r, 503, "temporarily_unavailable")
        finally:
            os.rename(tokens + ".away", tokens)
        # The failed attempt gave the signature back; the service recovers by itself.
        deadline = time.time() + 20
        while True:
            r = SVC.post("signatures/signHash", {"credentialID": "demo-ec", "SAD": sad, "hashes": [H.b64(h)],
                                                 "signAlgo": H.ECDSA_SHA256}, t)
            if r.status == 200 or time.time() > deadline:
                break
            self.assertEqual(r.status, 503, r)
            time.sleep(0.5)
        self.assertEqual(r.status, 200, r)

    def test_nothing_acknowledged_is_lost_on_a_crash(self):
        t = SVC.token()
        a, b = H.digest("crash a"), H.digest("crash b")
        r = SVC.authorize(t, "demo-ec", [a, b], pin=SVC.env["CSC_PIN"])
        sad = r.json["SAD"]
        body = {"credentialID": "demo-ec", "SAD": sad, "hashes": [H.b64(a)], "signAlgo": H.ECDSA_SHA256}
        self.assertEqual(SVC.post("signatures/signHash", body, t).status, 200)
        SVC.proc.kill()  # SIGKILL: no shutdown path runs
        SVC.proc.wait()
        SVC.proc = None
        SVC.stderr.close()
        SVC.start()
        # The token and the SAD survived; the spent signature stays spent.
        self.assertEqual(SVC.post("credentials/list", {}, t).status, 200)
        body["hashes"] = [H.b64(b)]
        self.assertEqual(SVC.post("signatures/signHash", body, t).status, 200)
        self.assertError(SVC.post("signatures/signHash", body, t), 400, "invalid_request")


class TestPurge(unittest.TestCase):
    """Expired SADs and tokens leave the database while the server runs (purge_interval); live ones stay."""

    @staticmethod
    def entries(svc, table):
        r = subprocess.run(["mdb_stat", "-s", table, os.path.join(svc.dir, "db")], capture_output=True, text=True,
                           check=True)
        m = re.search(r"Entries: (\d+)", r.stdout)
        assert m is not None, r.stdout
        return int(m.group(1))

    def authorized(self):
        """A service purging every second, and a bearer token with a SAD of 10 s."""
        svc = H.Service(BUILD, extra_config="purge_interval = 1\nsad_ttl = 10\n")
        svc.start()
        try:
            t = svc.token()
            r = svc.authorize(t, "demo-ec", [H.digest("purge me")], pin=svc.env["CSC_PIN"])
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.entries(svc, "sads"), 1)
        except BaseException:
            svc.stop()
            raise
        return svc, t

    def wait_sads_gone(self, svc):
        deadline = time.time() + 30
        while self.entries(svc, "sads") != 0 and time.time() < deadline:
            time.sleep(0.5)

    def test_expired_records_are_purged(self):
        svc, t = self.authorized()
        try:
            tokens = self.entries(svc, "tokens")
            self.assertGreaterEqual(tokens, 1)
            self.wait_sads_gone(svc)
            self.assertEqual(self.entries(svc, "sads"), 0)  # its 10 s were over: deleted by the server
            self.assertEqual(self.entries(svc, "tokens"), tokens)  # the access token (1 h) is still there
            self.assertEqual(svc.post("credentials/list", {}, t).status, 200)
        finally:
            svc.stop_checked()

    def test_csc_sam_purges_while_csc_server_is_stopped(self):
        """The purge of SADs, tokens and codes is csc-sam's periodic work (csc-server purges only its own browser
        sessions; it links no stor_purge_expired, unit_symbols): with csc-server stopped (SIGSTOP), an expired SAD
        still goes within a purge_interval."""
        svc, t = self.authorized()
        try:
            svc.proc.send_signal(signal.SIGSTOP)
            try:
                self.wait_sads_gone(svc)
                self.assertEqual(self.entries(svc, "sads"), 0)
            finally:
                svc.proc.send_signal(signal.SIGCONT)
            self.assertEqual(svc.post("credentials/list", {}, t).status, 200)
        finally:
            svc.stop_checked()


if __name__ == "__main__":
    unittest.main()
