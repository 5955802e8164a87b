"""csc-server writes only its own tables (issue 13): with the storage write guard on (csc-server-test,
CSC_TEST_FRONT_WRITE_GUARD=1: stor_env_restrict_writes to web_sessions and async_results), auth/login with a password,
its failures, the lock-out and the audit records still work, because csc-sam writes them (API_LOGIN). Before the
move csc-server wrote users, signins and audit itself, and the guard refused it (503)."""
import json
import os
import unittest

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SVC = None
DENIED = "this process may not write it"
GUARDED = "storage: csc-server writes only web_sessions and async_results"


def setUpModule():
    global SVC
    SVC = H.Service(BUILD, extra_config="max_failures = 3\nlock_seconds = 600\nlock_max_seconds = 3600\n"
                                        "rate_max = 100000\n", server="csc-server-test")
    for user in ("guard-ok", "guard-lock"):
        SVC.add_user(user, H.pw(user))
    SVC.start(env_extra={"CSC_TEST_FRONT_WRITE_GUARD": "1"})


def tearDownModule():
    SVC.stop_checked()


def basic(user, password):
    return "Basic " + H.b64(("%s:%s" % (user, password)).encode())


def audit(*args):
    r = SVC.admin("audit", "query", "--json", *args)
    return [json.loads(line) for line in r.stdout.splitlines()]


class TestGuardedLogin(unittest.TestCase):
    def test_guard_is_on(self):
        self.assertIn(GUARDED, SVC.server_stderr())

    def test_login_with_the_guard_on(self):
        """auth/login answers as before (tokens, rememberMe's refresh token), the token works, and the sign-in is in
        the audit trail: written by csc-sam, not refused by csc-server's guard."""
        r = SVC.post("auth/login", {"rememberMe": True}, auth=basic("guard-ok", H.pw("guard-ok")))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["access_token"]), 43)
        self.assertEqual(len(r.json["refresh_token"]), 43)
        self.assertGreater(r.json["expires_in"], 0)
        listed = SVC.post("credentials/list", {}, token=r.json["access_token"])
        self.assertEqual(listed.status, 200, listed)
        r = SVC.post("auth/login", {}, auth=basic("guard-ok", H.pw("guard-ok")))
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("refresh_token", r.json)
        ok = [a for a in audit("--user", "guard-ok", "--event", "login") if a["result"] == "ok"]
        self.assertGreaterEqual(len(ok), 2, ok)
        self.assertNotIn(DENIED, SVC.server_stderr())

    def test_failures_and_lockout_with_the_guard_on(self):
        """Wrong passwords: 400 authentication_error (not 503); the third locks the account (its audit record), and
        the right password is then refused alike; an unknown user too."""
        for _ in range(3):
            r = SVC.post("auth/login", {}, auth=basic("guard-lock", "not-the-password"))
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.json["error"], "authentication_error")
        r = SVC.post("auth/login", {}, auth=basic("guard-lock", H.pw("guard-lock")))
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error"], "authentication_error")
        r = SVC.post("auth/login", {}, auth=basic("guard-nobody", "whatever-1234"))
        self.assertEqual(r.status, 400, r)
        locks = audit("--user", "guard-lock", "--event", "lockout")
        self.assertEqual(len(locks), 1, locks)
        self.assertIn("user locked for 600 s", locks[0]["detail"])
        denied = [a for a in audit("--user", "guard-lock", "--event", "login") if a["result"] != "ok"]
        self.assertGreaterEqual(len(denied), 1, denied)
        self.assertNotIn(DENIED, SVC.server_stderr())


if __name__ == "__main__":
    unittest.main()
