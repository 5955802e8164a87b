"""Secrets the server copies are wiped before their memory goes back to the C library (issue 9 item 10).

csc-server runs with freewatch (an LD_PRELOAD library built from freewatch.c) that looks into every block passed
to free() or realloc() for a marker that is part of a user's password and of a credential PIN, and names the
caller of each block that still holds it. Passwords arrive in the Basic header of auth/login and in the sign-in
forms, PINs in JSON bodies (v2 authData, v1 top-level PIN), plain and with JSON escapes. The server's own code
and libyajl (whose allocations go through the server's wiping allocator) must never hand such a block back; h2o's
and OpenSSL's own buffers are beyond the server's reach (docs/compliance.md, J2) and are only listed.
Sanitizer builds own the allocator: there the test is skipped."""
import json
import os
import unittest
import urllib.parse

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
WATCH = os.path.join(BUILD, "tests", "integration", "libfreewatch.so")
MARKER = "730591826473"
PIN = MARKER + "05"
PASSWORD = "pw-" + MARKER + "-wipe"


def escaped(s):
    """Every character as a JSON \\u escape: the parser must decode it into a buffer of its own."""
    return "".join("\\u%04x" % ord(c) for c in s)


class TestWipedHeap(unittest.TestCase):
    def test_no_freed_block_holds_a_password_or_pin(self):
        if not os.path.exists(WATCH):
            self.skipTest("sanitizer build: freewatch cannot replace the allocator")
        svc = H.Service(BUILD)
        out = os.path.join(svc.tmp, "freewatch.out")
        svc.add_user("wanda", PASSWORD)
        svc.create_credential("--id", "wipe-1", "--user", "wanda", "--key", "p256", "--auth", "PIN", pin=PIN)
        svc.start(env_extra={"LD_PRELOAD": WATCH, "FREEWATCH_MARKER": MARKER, "FREEWATCH_OUT": out})
        try:
            for i in range(10):
                t = svc.token("wanda", PASSWORD)
                basic = "Basic " + H.b64(("nobody:wrong-" + MARKER).encode())
                self.assertEqual(svc.post("auth/login", {}, auth=basic).status, 400)
                dg = H.b64(H.digest("wipe %d" % i))
                r = svc.post("credentials/authorize", {"credentialID": "wipe-1", "numSignatures": 1,
                                                       "hashes": [dg], "hashAlgorithmOID": H.SHA256,
                                                       "authData": [{"id": "PIN", "value": PIN}]}, t)
                self.assertEqual(r.status, 200, r)
                raw = ('{"credentialID":"wipe-1","numSignatures":1,"hashes":["%s"],"hashAlgorithmOID":"%s",'
                       '"authData":[{"id":"PIN","value":"%s"}]}' % (dg, H.SHA256, escaped(PIN))).encode()
                self.assertEqual(svc.post("credentials/authorize", None, t, raw=raw).status, 200)
                r = svc.request("POST", "/csc/v1/credentials/authorize",
                                json.dumps({"credentialID": "wipe-1", "numSignatures": 1, "PIN": PIN,
                                            "hash": [dg]}).encode(),
                                {"Content-Type": "application/json", "Authorization": "Bearer " + t})
                self.assertEqual(r.status, 200, r)
                # a sign-in form (refused: no page was shown first) is parsed all the same
                form = urllib.parse.urlencode({"username": "wanda", "password": PASSWORD, "otp": "000000",
                                               "csrf": "x"}).encode()
                r = svc.request("POST", "/oauth2/authorize", form,
                                {"Content-Type": "application/x-www-form-urlencoded"})
                self.assertLess(r.status, 500, r)
        finally:
            self.assertEqual(svc.stop(), 0)
        lines = open(out).read().split("\n") if os.path.exists(out) else []
        lines = [l for l in lines if l]
        server = os.path.realpath(os.path.join(BUILD, "server", "csc-server"))
        ours = [l for l in lines if os.path.realpath(l.split(" ")[0]) == server or "libyajl" in l]
        others = sorted({l.split(" ")[0] for l in lines} - {l.split(" ")[0] for l in ours})
        print("freewatch: %d freed blocks held the marker; outside the server's reach: %s" % (len(lines), others))
        self.assertEqual(ours, [], "blocks freed unwiped by the server or libyajl")


if __name__ == "__main__":
    unittest.main()
