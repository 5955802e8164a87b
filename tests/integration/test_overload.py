"""Password guessing must cost the guesser, not the service (issue 9, item 4).

A flood of wrong passwords runs scrypt (32 MiB each at the default cost) on the server. The server caps the
scrypt runs at once (password_verify_max) and answers the rest at once with 503 + Retry-After, keeps requests
that check passwords or PINs on their own small worker pool (auth_workers, auth_queue) so that signing and info
never queue behind them, and limits failed logins per client address (rate_max / rate_window, shared with the
OAuth pages) with 429 + Retry-After.

These are behaviour tests, never timing tests: the bound on the server's peak memory follows from the cap, not
from a measured speed. Loopback is one interface but many addresses: each flooding client binds its own
127.0.x.y source address, so the per-address limit can be told apart from the cap.
"""
import base64
import http.client
import json
import os
import re
import threading
import time
import unittest
import urllib.parse

import harness as H

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SVC = None

FLOOD_CLIENTS = 48
SCRYPT_MIB = 32           # scrypt N = 2^15, r = 8: 128 * r * N bytes per verification
VERIFY_MAX = 1            # password_verify_max of this service
RATE_MAX = 3              # failed logins per address and window before 429
FLOOD_USER = "flooded"
FLOOD_PASSWORD = "the right password of the flood"

CONFIG = ("password_verify_max = %d\nauth_workers = 4\nauth_queue = 8\n"
          "rate_max = %d\nrate_window = 600\nmax_failures = 100\n" % (VERIFY_MAX, RATE_MAX))


def setUpModule():
    global SVC
    SVC = H.Service(BUILD, CONFIG)
    # The flooded account's verifier at the default cost (tests provision at 2^10 to be quick): every guess
    # then costs the server a real 32 MiB scrypt, whatever the code does for unknown names.
    with open(SVC.conf) as f:
        conf = f.read()
    with open(SVC.conf, "w") as f:
        f.write(re.sub(r"(?m)^scrypt_log2n = .*$", "scrypt_log2n = 15", conf))
    SVC.add_user(FLOOD_USER, FLOOD_PASSWORD)
    SVC.start()


def tearDownModule():
    if SVC is not None:
        SVC.stop_checked()


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def post_from(addr, method, body, headers, timeout=120):
    """POST /csc/v2/<method> from source address addr (127.x.y.z: all loopback)."""
    conn = http.client.HTTPSConnection("localhost", SVC.port, context=SVC.ctx, timeout=timeout,
                                       source_address=(addr, 0))
    try:
        h = {"Content-Type": "application/json"}
        h.update(headers)
        conn.request("POST", "/csc/v2/" + method, body=json.dumps(body).encode(), headers=h)
        resp = conn.getresponse()
        return H.Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def page_from(addr, method, path, fields=None, cookie=None):
    """A browser's GET or form POST from source address addr."""
    conn = http.client.HTTPSConnection("localhost", SVC.port, context=SVC.ctx, timeout=120, source_address=(addr, 0))
    try:
        h = {"Cookie": cookie} if cookie else {}
        body = None
        if fields is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode(fields).encode()
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        return H.Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def vm_kib(field):
    with open("/proc/%d/status" % SVC.proc.pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, SVC.proc.pid))


class TestPasswordFlood(unittest.TestCase):
    def assertRefusedNow(self, r):
        """503 (busy) or 429 (rate): a CSC error JSON and a Retry-After in whole seconds."""
        self.assertIn(r.status, (429, 503), r)
        self.assertIsNotNone(r.json, r)
        self.assertIn("error", r.json)
        self.assertIn("error_description", r.json)
        self.assertIn("retry-after", r.headers, r)
        self.assertRegex(r.headers["retry-after"], r"^[1-9][0-9]*$")

    def test_flood_is_capped_and_signing_goes_on(self):
        # A SAD for the signature issued during the flood (credentials/authorize checks a PIN: before the flood).
        token = SVC.token()
        dg = H.digest("signed while passwords are guessed")
        r = SVC.authorize(token, SVC.env["CSC_CRED_EC"], [dg], pin=SVC.env["CSC_PIN"])
        self.assertEqual(r.status, 200, r)
        sad = r.json["SAD"]
        hwm_before = vm_kib("VmHWM")

        stop = threading.Event()
        start = threading.Barrier(FLOOD_CLIENTS + 1)
        results, errors = [], []
        lock = threading.Lock()

        def flood(i):
            addr = "127.0.1.%d" % (i + 1)
            start.wait()
            n = 0
            while not stop.is_set() or n == 0:
                try:
                    r = post_from(addr, "auth/login", {}, {"Authorization": basic(FLOOD_USER, "guess %d-%d" % (i, n))})
                except OSError as e:
                    with lock:
                        errors.append(repr(e))
                    return
                with lock:
                    results.append(r)
                n += 1

        threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(FLOOD_CLIENTS)]
        for t in threads:
            t.start()
        start.wait()
        # The flood is on once its first answers arrive; then the other traffic goes through it.
        deadline = time.time() + 60
        while not results and time.time() < deadline:
            time.sleep(0.02)
        try:
            self.assertTrue(results, "no answer to the flood within 60 s")
            info = SVC.post("info", {})
            signed = SVC.post("signatures/signHash", {"credentialID": SVC.env["CSC_CRED_EC"], "SAD": sad,
                                                      "hashes": [H.b64(dg)], "signAlgo": H.ECDSA_SHA256}, token)
            # The approval page's sign-in form during the flood: a 503 page with Retry-After once the cap is hit.
            page = page_from("127.0.3.1", "GET", "/approve")
            self.assertEqual(page.status, 200, page)
            cookie = page.headers["set-cookie"].split(";", 1)[0]
            csrf = re.search(r'name="csrf" value="([^"]*)"', page.raw.decode()).group(1)
            form = {"csrf": csrf, "action": "login", "username": FLOOD_USER, "password": "guess", "otp": "000000"}
            page_statuses = []
            for _ in range(20):
                page = page_from("127.0.3.1", "POST", "/approve", form, cookie)
                page_statuses.append(page.status)
                if page.status == 503:
                    break
            in_flight = any(t.is_alive() for t in threads)
        finally:
            stop.set()
            for t in threads:
                t.join(180)
        hwm_after = vm_kib("VmHWM")

        self.assertEqual(errors, [])
        self.assertFalse(any(t.is_alive() for t in threads), "flooding clients still waiting after 180 s")
        self.assertTrue(in_flight)
        # (b) info and the signature went through while the guesses were being refused.
        self.assertEqual(info.status, 200, info)
        self.assertEqual(signed.status, 200, signed)
        self.assertEqual(len(signed.json["signatures"]), 1)
        # The page: wrong password (200, the form again), then refused at once: busy (503) when the scrypt cap is
        # full, or over the address's limit (429). Its password is checked by csc-sam (LOGIN), whose own cap the
        # auth/login flood on csc-server does not fill, so either comes first.
        self.assertIn(page_statuses[-1], (429, 503), page_statuses)
        self.assertTrue(set(page_statuses) <= {200, 429, 503}, page_statuses)
        self.assertTrue(page.headers["content-type"].startswith("text/html"), page.headers)
        self.assertRegex(page.headers.get("retry-after", ""), r"^[1-9][0-9]*$")
        self.assertIn("busy" if page.status == 503 else "Too many failed attempts", page.raw.decode())
        # (a) every guess got an answer: wrong password (400), busy (503) or too many from the address (429);
        # never a 500. Some were refused at once because the cap was reached.
        statuses = sorted({r.status for r in results})
        self.assertTrue(set(statuses) <= {400, 429, 503}, statuses)
        refused = [r for r in results if r.status in (429, 503)]
        self.assertTrue([r for r in refused if r.status == 503], "no 503 among %d answers: %s" %
                        (len(results), statuses))
        for r in refused:
            self.assertRefusedNow(r)
        for r in results:
            if r.status == 400:
                self.assertEqual(r.json["error"], "authentication_error", r)
        # (d) the server's peak memory: FLOOD_CLIENTS scrypts at once would add FLOOD_CLIENTS * 32 MiB; with the cap
        # at VERIFY_MAX they add about VERIFY_MAX * 32 MiB. The bound sits halfway to the uncapped figure.
        growth_mib = (hwm_after - hwm_before) / 1024
        bound_mib = FLOOD_CLIENTS * SCRYPT_MIB / 2
        self.assertLess(growth_mib, bound_mib, "peak RSS grew by %.0f MiB during the flood" % growth_mib)

    def test_rate_limit_per_address(self):
        # (c) RATE_MAX failures from one address, then 429 (even with the right password); another address still
        # logs in.
        a, b = "127.0.2.1", "127.0.2.2"
        for i in range(RATE_MAX):
            r = post_from(a, "auth/login", {}, {"Authorization": basic("nobody", "wrong %d" % i)})
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.json["error"], "authentication_error")
        r = post_from(a, "auth/login", {}, {"Authorization": basic(SVC.env["CSC_USER"], SVC.env["CSC_PASSWORD"])})
        self.assertEqual(r.status, 429, r)
        self.assertRefusedNow(r)
        self.assertNotIn("access_token", r.json)
        self.assertLessEqual(int(r.headers["retry-after"]), 600)
        r = post_from(b, "auth/login", {}, {"Authorization": basic(SVC.env["CSC_USER"], SVC.env["CSC_PASSWORD"])})
        self.assertEqual(r.status, 200, r)
        self.assertIn("access_token", r.json)
        # A refresh-token login is no password guess: the address's limit does not apply to it.
        r = post_from(a, "auth/login", {"refresh_token": "x" * 43}, {})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error"], "invalid_request")


if __name__ == "__main__":
    unittest.main()
