"""csc-admin db init / db migrate, the one runner of storage/migrations/ (compiled into csc-admin), against a real
PostgreSQL cluster (scripts/pg, started without the schema): a new database gets every migration, a second run
changes nothing, an old one gets what it lacks, a newer one is refused untouched, only the migrations' owner may run
them, two runners at once apply each file once; db init on LMDB; bad usage; db copy into a database db init made."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness as H
from pgcluster import PgCluster, clean_env

BUILD = os.environ.get("CSC_BUILD_DIR", os.path.join(H.ROOT, "build"))
ADMIN = os.path.join(BUILD, "server", "csc-admin")
MIGRATIONS = os.path.join(H.ROOT, "storage", "migrations")
FILES = sorted(f[:-4] for f in os.listdir(MIGRATIONS) if f[:4].isdigit() and f.endswith(".sql"))
NEWEST = FILES[-1]
NOTHING = "already at version %d (%s), nothing to do\n" % (len(FILES), NEWEST)

# What every csc-admin configuration needs; db init and db migrate use only storage.
CONF = """environment = test
listen = 127.0.0.1:1
plain_http = yes
node_id = test-db-migrate
pkcs11_module = /nonexistent
pkcs11_token = none
pkcs11_pin_file = /nonexistent
storage = %s
"""


class TestDbMigrate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = PgCluster(nodes=1)
        cls.addClassCleanup(cls.pg.stop)
        cls.pg.start(migrate=False)
        cls.tmp = tempfile.mkdtemp(prefix="csc-migrate-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.conf = os.path.join(cls.tmp, "admin.conf")
        with open(cls.conf, "w") as f:
            f.write(CONF % ("postgresql:" + cls.pg.conninfo("admin")))

    def setUp(self):
        self.reset()

    def admin(self, *args, conf=None, session=None):
        env = clean_env()
        env.pop("CSC_ADMIN_SESSION", None)
        env.pop("CSC_ADMIN_SESSION_FILE", None)
        if session:
            env["CSC_ADMIN_SESSION"] = session
        return subprocess.run([ADMIN, "-c", conf or self.conf] + list(args), capture_output=True, text=True, env=env,
                              timeout=60)

    def sql(self, sql, role="admin"):
        p = self.pg.psql(self.pg.conninfo(role), sql)
        self.assertEqual(p.returncode, 0, "%s: %s" % (sql, p.stderr))
        return p.stdout.strip()

    def reset(self):
        """The database as scripts/pg made it, before any migration: no schema csc."""
        self.sql("SET client_min_messages = warning; DROP SCHEMA IF EXISTS csc CASCADE")

    def versions(self):
        return self.sql("SELECT coalesce(string_agg(version || ':' || name, ',' ORDER BY version), '') "
                        "FROM csc.schema_version")

    def snapshot(self):
        """The schema's versions, tables, columns and grants: what a migration could change."""
        return self.sql("SELECT (SELECT string_agg(version || ':' || name || ':' || applied_at, ',' ORDER BY version) "
                        "FROM csc.schema_version), (SELECT string_agg(table_name || '.' || column_name || ':' || "
                        "data_type, ',' ORDER BY table_name, column_name) FROM information_schema.columns WHERE "
                        "table_schema = 'csc'), (SELECT string_agg(grantee || ':' || table_name || ':' || "
                        "privilege_type, ',' ORDER BY grantee, table_name, privilege_type) FROM "
                        "information_schema.role_table_grants WHERE table_schema = 'csc')")

    def no_schema(self):
        return self.sql("SELECT to_regclass('csc.schema_version') IS NULL") == "t"

    def apply_with_psql(self, name):
        """A migration applied the old way (an installation older than this csc-admin)."""
        p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                            self.pg.conninfo("admin"), "-f", os.path.join(MIGRATIONS, name + ".sql")],
                           capture_output=True, text=True, env=clean_env())
        self.assertEqual(p.returncode, 0, p.stderr)

    # ---- PostgreSQL ------------------------------------------------------------------------------------------
    def test_init_applies_every_migration_then_nothing_to_do(self):
        self.assertTrue(self.no_schema())
        r = self.admin("db", "init")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "".join("applied %s\n" % f for f in FILES))
        self.assertEqual(self.versions(), ",".join("%d:%s" % (i + 1, f) for i, f in enumerate(FILES)))
        before = self.snapshot()
        for cmd in ("init", "migrate"):
            r = self.admin("db", cmd)
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, NOTHING, ""), cmd)
            self.assertEqual(self.snapshot(), before, cmd)
        # the services' roles use what db init made
        self.sql("INSERT INTO csc.challenges VALUES ('\\x01', '\\x01')", role="sam")
        self.assertEqual(self.sql("SELECT count(*) FROM csc.challenges", role="front"), "1")

    def test_old_database_gets_what_it_lacks(self):
        self.apply_with_psql(FILES[0])
        self.assertEqual(self.versions(), "1:" + FILES[0])
        r = self.admin("db", "migrate")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "the database is at version 1 (%s)\n" % FILES[0] +
                         "".join("applied %s\n" % f for f in FILES[1:]))
        self.assertEqual(self.versions(), ",".join("%d:%s" % (i + 1, f) for i, f in enumerate(FILES)))
        r = self.admin("db", "migrate")
        self.assertEqual((r.returncode, r.stdout), (0, NOTHING))

    def test_newer_database_refused_unchanged(self):
        self.apply_with_psql(FILES[0])
        self.sql("INSERT INTO csc.schema_version (version, name) VALUES (9999, '9999_future')")
        before = self.snapshot()
        for cmd in ("migrate", "init"):
            r = self.admin("db", cmd)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertEqual(r.stdout, "")
            self.assertEqual(r.stderr, "csc-admin: db %s: the database has schema version 9999, newer than this "
                             "csc-admin's %d (%s): upgrade csc-admin first; nothing changed\n"
                             % (cmd, len(FILES), NEWEST))
            self.assertEqual(self.snapshot(), before, cmd)  # not even the missing 0002 was applied

    def test_migrate_needs_an_initialised_database(self):
        r = self.admin("db", "migrate")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("the database has no schema version", r.stderr)
        self.assertIn("run csc-admin db init", r.stderr)
        self.assertTrue(self.no_schema())

    def test_only_the_migrations_owner(self):
        sam = "postgresql:" + self.pg.conninfo("sam")
        for cmd in ("init", "migrate"):
            r = self.admin("db", cmd, "--db", sam)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("role csc_sam may not migrate this database", r.stderr)
            self.assertNotIn("sslkey", r.stdout + r.stderr)  # the conninfo is never shown
            self.assertTrue(self.no_schema())
        # nor on a database that needs nothing: the wrong credentials are said at once
        self.assertEqual(self.admin("db", "init").returncode, 0)
        r = self.admin("db", "migrate", "--db", sam)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("role csc_sam may not migrate this database", r.stderr)

    def test_runners_at_once_apply_each_file_once(self):
        for rnd in range(3):
            self.reset()
            if rnd == 2:  # an old installation: two db migrate at once
                self.apply_with_psql(FILES[0])
            cmd = "migrate" if rnd == 2 else "init"
            procs = [subprocess.Popen([ADMIN, "-c", self.conf, "db", cmd], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=clean_env()) for _ in range(3)]
            outs = [p.communicate(timeout=120) for p in procs]
            for p, (out, err) in zip(procs, outs):
                self.assertEqual(p.returncode, 0, out + err)
            applied = "".join(out for out, err in outs).splitlines()
            for f in FILES[1 if rnd == 2 else 0:]:
                self.assertEqual(applied.count("applied " + f), 1, (rnd, outs))
            self.assertEqual(self.versions(), ",".join("%d:%s" % (i + 1, f) for i, f in enumerate(FILES)))

    # ---- LMDB, usage ------------------------------------------------------------------------------------------
    def test_lmdb_init_creates_an_environment(self):
        where = os.path.join(self.tmp, "lmdb-new")
        shutil.rmtree(where, ignore_errors=True)
        r = self.admin("db", "init", "--db", "lmdb:" + where)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "lmdb:%s: schema version 1 (LMDB has no migrations: opening the environment "
                                   "creates it or checks it)\n" % where)
        self.assertTrue(os.path.isfile(os.path.join(where, "data.mdb")))
        r = self.admin("db", "migrate", "--db", "lmdb:" + where)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_bad_usage(self):
        for cmd in ("init", "migrate"):
            for args in (("--db",), ("--db", "nosuch:x"), ("--db", "lmdb:"), ("--db", "x"), ("--bogus", "x"),
                         ("extra",), ("--db", "lmdb:/tmp/a", "extra")):
                r = self.admin("db", cmd, *args)
                self.assertEqual(r.returncode, 2, (cmd, args, r.stderr))
                self.assertTrue(r.stderr.startswith("csc-admin: db %s: " % cmd), (cmd, args, r.stderr))
        self.assertTrue(self.no_schema())
        r = self.admin("db")
        self.assertEqual(r.returncode, 2)
        self.assertIn("db init, db migrate", r.stderr)
        r = subprocess.run([ADMIN, "--help"], capture_output=True, text=True)
        self.assertIn("db init [--db BACKEND:LOCATION]", r.stdout)
        self.assertIn("db migrate [--db BACKEND:LOCATION]", r.stdout)

    # ---- db copy into a database db init made ------------------------------------------------------------------
    def test_copy_into_an_initialised_database(self):
        """An LMDB installation copied into the database db init made (as the migrations' owner): its audit trail
        verifies there (csc-admin audit verify), and again once copied back into a fresh LMDB folder."""
        svc = H.Service(BUILD)  # provisioned (LMDB: an operator, demo users and credentials, their audit records)
        with open(svc.conf) as f:
            text = f.read()
        self.assertIn("storage = lmdb:db\n", text)
        pg = "postgresql:" + self.pg.conninfo("admin")
        conf_pg, conf_back = os.path.join(svc.dir, "pg.conf"), os.path.join(svc.dir, "back.conf")
        with open(conf_pg, "w") as f:
            f.write(text.replace("storage = lmdb:db\n", "storage = %s\n" % pg))
        with open(conf_back, "w") as f:
            f.write(text.replace("storage = lmdb:db\n", "storage = lmdb:db-back\n"))
        # not before db init: the database has no schema yet
        r = self.admin("db", "copy", "--from", "lmdb:" + os.path.join(svc.dir, "db"), conf=conf_pg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertTrue(self.no_schema())
        r = self.admin("db", "init", conf=conf_pg)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.admin("db", "copy", "--from", "lmdb:" + os.path.join(svc.dir, "db"), conf=conf_pg)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"\n  audit +(\d+)\n", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        n_audit = int(m.group(1))
        self.assertGreater(n_audit, 0)
        self.assertRegex(r.stdout, r"copied and checked: \d+ tables, \d+ records\n$")
        self.assertEqual(int(self.sql("SELECT count(*) FROM csc.audit")), n_audit + 1)  # and the copy's own record
        r = self.admin("audit", "verify", conf=conf_pg, session=svc.session)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"^audit log OK: %d records" % (n_audit + 1))
        r = self.admin("db", "copy", "--from", pg, conf=conf_back)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.admin("audit", "verify", conf=conf_back, session=svc.session)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"^audit log OK: %d records" % (n_audit + 2))

if __name__ == "__main__":
    unittest.main()
