"""A throwaway PostgreSQL cluster for a test: scripts/pg starts it in a temporary directory (TLS only, a client
certificate per node and role) and writes pg.env, which this module reads. Standard library only; the checks
use Debian's psql, which takes libpq conninfo strings."""
import os
import shutil
import subprocess
import tempfile

from harness import ROOT, Service, free_port

PG_SCRIPT = os.path.join(ROOT, "scripts", "pg")
# scripts/pg applies the migrations with csc-admin db init / db migrate: the one of the build under test.
BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(ROOT, "build"))
CSC_ADMIN = os.path.join(os.path.abspath(BUILD), "server", "csc-admin")


def clean_env():
    """The environment without the caller's libpq variables (PGHOST, PGSSLMODE, ...): only the conninfo counts; and
    CSC_ADMIN, the csc-admin that scripts/pg runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["CSC_ADMIN"] = CSC_ADMIN
    return env


class PgCluster:
    """start() creates and starts the cluster, stop() stops it and removes its directory (safe to call twice)."""

    def __init__(self, nodes=1):
        self.nodes = nodes
        self.tmp = None
        self.dir = None
        self.env = {}

    def script(self, *args, check=True):
        """Run scripts/pg CMD DIR ARGS; returns the CompletedProcess (raises with its output if check and rc != 0)."""
        p = subprocess.run([PG_SCRIPT, args[0], self.dir] + list(args[1:]), capture_output=True, text=True,
                           env=clean_env(), timeout=300)
        if check and p.returncode != 0:
            raise RuntimeError("scripts/pg %s failed (%d): %s%s" % (args[0], p.returncode, p.stdout, p.stderr))
        return p

    def start(self, migrate=True):
        """migrate=False: the database without the schema (scripts/pg start --no-migrate), for a test of db init."""
        # The cluster's user (postgres, when run as root) passes through the temporary directory to reach its files.
        self.tmp = tempfile.mkdtemp(prefix="csc-pg-")
        os.chmod(self.tmp, 0o711)
        self.dir = os.path.join(self.tmp, "pg")
        last = None
        for _ in range(3):  # another process may take the free port first
            self.port = free_port()
            p = self.script("start", "--port", str(self.port), "--nodes", str(self.nodes),
                            *(() if migrate else ("--no-migrate",)), check=False)
            if p.returncode == 0:
                self.start_output = p.stdout + p.stderr
                self.env = Service._read_env(os.path.join(self.dir, "pg.env"))  # NAME='VALUE' lines, as demo.env
                return self
            last = p
            if "did not start" not in p.stderr:
                break
            self.script("stop", check=False)
            shutil.rmtree(self.dir, ignore_errors=True)
        raise RuntimeError("scripts/pg start failed (%d): %s%s" % (last.returncode, last.stdout, last.stderr))

    def stop(self):
        if self.tmp is None:
            return
        if os.path.exists(os.path.join(self.dir, "cluster.conf")):
            self.script("stop", check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None

    def conninfo(self, role, node=1):
        """role: 'sam', 'front' (of node) or 'admin'."""
        return self.env["PG_ADMIN"] if role == "admin" else self.env["PG_NODE%d_%s" % (node, role.upper())]

    def psql(self, conninfo, sql):
        """Run sql through psql (unaligned, tuples only, stop at the first error): the CompletedProcess."""
        return subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", conninfo, "-c", sql],
                              capture_output=True, text=True, env=clean_env(), timeout=60)
