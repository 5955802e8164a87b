"""One HSM shared by two nodes (issue 13), with p11-kit's RPC standing in for a network HSM: scripts/hsm-share runs
`p11-kit server` for node 1's SoftHSM token and both nodes' csc-sam load p11-kit-client.so (pkcs11_env,
pkcs11_sockets = unix).

- a key made through node 1's csc-admin (a short-lived csc-sam of node 1, through the shared HSM) signs through node
  2's csc-sam, whose configuration and directory hold no token of its own; the demo users enrolled through it too
  (their TOTP secrets sealed with the factor key: AES-GCM over CKM_AES_ECB, which p11-kit 0.24 carries);
- production refuses SoftHSM also behind the proxy module (J13);
- the HSM server killed: both nodes answer 503 with a CSC error JSON meanwhile, then sign again once it is back,
  without a restart of either node (same csc-sam process);
- the front end (csc-server) still loads no PKCS#11 module; csc-sam loads the client module, not SoftHSM.

The two nodes have their own LMDB for now (node 2's is a copy of node 1's, taken after the key was made).
"""
import atexit
import base64
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness as H
from test_sam import sam_child, wait_for

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
SHARE = os.path.join(H.ROOT, "scripts", "hsm-share")
PIN = "13572468"
CRED = "shared-ec"


def use_shared_hsm(svc, hsm_env):
    """Point svc's configuration at the shared HSM: the client module, its address, Unix sockets allowed."""
    env = H.Service._read_env(hsm_env)
    with open(svc.conf) as f:
        lines = [l for l in f.read().splitlines() if not l.startswith(("pkcs11_module", "softhsm_conf"))]
    lines += ["pkcs11_module = " + env["CSC_PKCS11_MODULE"],
              "pkcs11_env = P11_KIT_SERVER_ADDRESS=" + env["P11_KIT_SERVER_ADDRESS"],
              "pkcs11_sockets = unix"]
    with open(svc.conf, "w") as f:
        f.write("\n".join(lines) + "\n")


def clone(svc):
    """A second node: a copy of svc's stopped directory (configuration, LMDB, TLS) on another port."""
    c = H.Service.__new__(H.Service)
    c.__dict__.update(svc.__dict__)
    c.tmp = tempfile.mkdtemp(prefix="csc-it-")
    if not os.environ.get("CSC_KEEP_TMP"):
        atexit.register(shutil.rmtree, c.tmp, True)
    c.dir = os.path.join(c.tmp, "svc")
    shutil.copytree(svc.dir, c.dir, ignore=shutil.ignore_patterns("*.sock", "hsm", "hsm.env", "softhsm"))
    c.port = H.free_port()
    c.env = {k: v.replace(svc.dir, c.dir) for k, v in svc.env.items()}
    c.conf = svc.conf.replace(svc.dir, c.dir)
    with open(c.conf) as f:
        text = re.sub(r"^listen = .*$", "listen = 127.0.0.1:%d" % c.port, f.read(), flags=re.M)
    with open(c.conf, "w") as f:
        f.write(text)
    c.users = {k: dict(v) for k, v in svc.users.items()}
    c._account, c._pins_later, c._demo_pins, c.proc = {}, [], {}, None
    return c


def maps(pid):
    with open("/proc/%d/maps" % pid) as f:
        return f.read()


def setUpModule():
    global N1, N2, HSM_ENV
    N1 = H.Service(BUILD)
    HSM_ENV = os.path.join(N1.dir, "hsm.env")
    subprocess.run([SHARE, "start", N1.dir], check=True)
    try:
        use_shared_hsm(N1, HSM_ENV)
        # through the shared HSM from here on: csc-admin's key generation (in a csc-sam of node 1 started for it),
        # the users' enrollment (TOTP secrets sealed with the factor key: AES-GCM over CKM_AES_ECB through p11-kit)
        N1.create_credential("--id", CRED, "--user", N1.env["CSC_USER"], "--key", "p256", "--auth", "PIN", "--scal",
                             "1", "--multisign", "100", pin=PIN)
        N1.start()
        N1.stop_checked()
        N2 = clone(N1)
        N1.start()
        N2.start()
    except BaseException:
        subprocess.run([SHARE, "stop", N1.dir])
        raise


def tearDownModule():
    try:
        for node in (N2, N1):
            if node.proc is not None:
                node.stop_checked()
    finally:
        subprocess.run([SHARE, "stop", N1.dir])


def sign(node, token, sad, text):
    return node.post("signatures/signHash", {"credentialID": CRED, "SAD": sad, "hashes": [H.b64(H.digest(text))],
                                             "signAlgo": H.ECDSA_SHA256}, token)


class TestSharedHsm(unittest.TestCase):
    def session(self, node, n=20):
        token = node.token()
        r = node.authorize(token, CRED, [], num=n, pin=PIN)
        self.assertEqual(r.status, 200, r)
        return token, r.json["SAD"]

    def test_key_of_node1_signs_on_node2(self):
        with open(N2.conf) as f:
            conf = f.read()
        self.assertNotIn("softhsm", conf)  # node 2 has no token of its own: only the shared HSM
        self.assertFalse(os.path.exists(os.path.join(N2.dir, "softhsm")))
        pub = N1.cert_pem(N1.token(), CRED)
        for node in (N2, N1):
            token, sad = self.session(node)
            r = sign(node, token, sad, "shared %d" % node.port)
            self.assertEqual(r.status, 200, r)
            self.assertTrue(H.verify(pub, base64.b64decode(r.json["signatures"][0]), H.digest("shared %d" % node.port)))

    def test_front_end_loads_no_module(self):
        for node in (N1, N2):
            front = maps(node.proc.pid)
            self.assertNotIn("p11-kit-client", front)
            self.assertNotIn("softhsm", front)
            sam = maps(sam_child(node))
            self.assertIn("p11-kit-client.so", sam)
            self.assertNotIn("libsofthsm2", sam)

    def test_production_refuses_softhsm_behind_p11kit(self):
        # J13: SoftHSM is for tests, also when a proxy module (CK_INFO "PKCS#11 Kit") exports it
        n3 = clone(N1)
        with open(n3.conf) as f:
            conf = f.read().replace("environment = test", "environment = production")
        os.makedirs(os.path.join(n3.dir, "crl"), exist_ok=True)
        with open(n3.conf, "w") as f:
            f.write(conf + "crl_dir = crl\ncrl_require = yes\n")
        try:
            r = subprocess.run([os.path.join(BUILD, "server", "csc-server"), "-c", n3.conf], capture_output=True,
                               text=True, timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("csc-server started in production with SoftHSM behind p11-kit")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("SoftHSM", r.stderr)
        self.assertIn("allow_test_components", r.stderr)

    def test_hsm_killed_then_back(self):
        nodes = [(node,) + self.session(node) for node in (N1, N2)]
        sams = [sam_child(node) for node in (N1, N2)]
        for node, token, sad in nodes:
            self.assertEqual(sign(node, token, sad, "before").status, 200)
        pid = int(H.Service._read_env(HSM_ENV)["P11_KIT_SERVER_PID"])
        os.killpg(pid, signal.SIGKILL)  # the HSM crashes: the server and every connection's p11-kit-remote
        for node, token, sad in nodes:
            for i in range(2):
                r = sign(node, token, sad, "while down %d" % i)
                self.assertEqual(r.status, 503, r)
                self.assertIn("error", r.json)
                self.assertIn("error_description", r.json)
        subprocess.run([SHARE, "start", N1.dir], check=True)
        t0 = time.time()
        for node, token, sad in nodes:
            r = wait_for(lambda: (lambda a: a if a.status == 200 else None)(sign(node, token, sad, "after")), 30)
            self.assertIsNotNone(r, "node on port %d did not sign again" % node.port)
        self.assertLess(time.time() - t0, 30)
        self.assertEqual([sam_child(node) for node in (N1, N2)], sams, "a node's csc-sam was restarted")


if __name__ == "__main__":
    unittest.main()
