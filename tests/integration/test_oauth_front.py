"""The token endpoint with csc-server's storage writable only where the front end may write (issue 13): the OAuth
grants, their rotation and reuse detection, and revocation are csc-sam's writes (SAM ops TOKEN and REVOKE), so they
work while csc-server may write nothing but web_sessions, async_results and pars. csc-server refuses any other
write (the storage write guard, stor_env_restrict_writes), as
csc_front's GRANTs do on PostgreSQL; the flows reuse test_oauth's helpers against this module's own service."""
import os
import unittest

import harness as H
import test_oauth as O

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
REFUSED = "refused: this process may not write it"


def setUpModule():
    svc = H.Service(BUILD, extra_config="rate_max = 1000\n")
    O.SVC = svc
    O.POOL = ["front%d" % i for i in range(3)]
    for user in O.POOL:
        svc.add_user(user, H.pw(user))
        svc.create_credential("--id", user + "-ec", "--user", user, "--key", "p256", "--auth", "PIN",
                              "--scal", "2", "--multisign", "5", "--auth-mode", "explicit", pin=O.PIN)
    out = svc.admin("client", "add", "app1", "--redirect", O.REDIRECT, "--name", "Client app1", "--grants",
                    "authorization_code,refresh_token,client_credentials").stdout
    O.CLIENTS["app1"] = O.re.search(r"^client_secret (\S+)$", out, O.re.M).group(1)
    svc.start()
    assert "csc-server writes only web_sessions, async_results and pars" in svc.server_stderr()
    for user in O.POOL:
        O.TOTP[user] = svc.totp_of(user)


def tearDownModule():
    O.SVC.stop_checked()


class FrontReadOnly(O.Base):
    def tearDown(self):
        self.assertNotIn(REFUSED, O.SVC.server_stderr(), "csc-server wrote a table the front end may not write")

    def code_token(self, **params):
        code, verifier, _ = O.code_flow(**params)
        r = O.token({"grant_type": "authorization_code", "code": code, "redirect_uri": O.REDIRECT,
                     "code_verifier": verifier})
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_code_refresh_rotation_and_reuse_revokes_the_grant(self):
        t = self.code_token()
        self.assertEqual(t["scope"], "service")
        self.assertEqual(O.SVC.post("credentials/list", {}, t["access_token"]).status, 200)
        r2 = O.token({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]})
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(O.SVC.post("credentials/list", {}, r2.json["access_token"]).status, 200)
        # The rotated token again: csc-sam detects the reuse and revokes the whole grant.
        self.assertJsonError(O.token({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}), 400,
                             "invalid_grant")
        self.assertEqual(O.SVC.post("credentials/list", {}, r2.json["access_token"]).status, 401)
        self.assertJsonError(O.token({"grant_type": "refresh_token", "refresh_token": r2.json["refresh_token"]}),
                             400, "invalid_grant")

    def test_code_reuse_pkce_and_wrong_secret(self):
        code, verifier, _ = O.code_flow()
        fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": O.REDIRECT,
                  "code_verifier": O.pkce()[0]}
        self.assertJsonError(O.token(fields), 400, "invalid_grant")  # PKCE: the code stays usable
        self.assertJsonError(O.token(dict(fields, code_verifier=verifier), secret="wrong"), 401, "invalid_client")
        first = O.token(dict(fields, code_verifier=verifier), basic=False)
        self.assertEqual(first.status, 200, first)
        self.assertJsonError(O.token(dict(fields, code_verifier=verifier)), 400, "invalid_grant")
        self.assertEqual(O.SVC.post("credentials/list", {}, first.json["access_token"]).status, 401)

    def test_credential_token_signs_then_revoked(self):
        user = O.pick_user()
        digest = H.digest("front %s" % user)
        t = self.code_token(user=user, scope="credential", credentialID=user + "-ec", numSignatures="2",
                            hashes=O.b64url(digest), hashAlgorithmOID=H.SHA256)
        self.assertEqual((t["scope"], t["credentialID"]), ("credential", user + "-ec"))
        body = {"credentialID": user + "-ec", "hashes": [H.b64(digest)], "signAlgo": H.ECDSA_SHA256}
        self.assertEqual(O.SVC.post("signatures/signHash", body, t["access_token"]).status, 200)
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Authorization": "Basic " + O.base64.b64encode(("app1:" + O.CLIENTS["app1"]).encode()).decode()}
        r = O.SVC.request("POST", "/oauth2/revoke", O.urllib.parse.urlencode({"token": t["access_token"]}).encode(),
                          headers)
        self.assertEqual((r.status, r.raw), (200, b""), r)
        self.assertEqual(O.SVC.post("signatures/signHash", body, t["access_token"]).status, 401)

    def test_client_credentials_and_auth_revoke(self):
        r = O.token({"grant_type": "client_credentials"})
        self.assertEqual(r.status, 200, r)
        tok = r.json["access_token"]
        self.assertEqual(O.SVC.post("auth/revoke", {"token": tok}, tok).status, 204)
        self.assertEqual(O.SVC.post("auth/revoke", {"token": tok}, tok).status, 401)


if __name__ == "__main__":
    unittest.main()
