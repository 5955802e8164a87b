"""The PostgreSQL cluster of scripts/pg and the schema of storage/migrations: TLS with verify-full and a client
certificate is the only way in, the certificate's CN decides the role, csc_front cannot spend SADs or write the
audit trail, the migrations are idempotent and match the LMDB tables."""
import glob
import os
import re
import stat
import subprocess
import tempfile
import unittest

from harness import ROOT
from pgcluster import PgCluster

MIGRATIONS = sorted(glob.glob(os.path.join(ROOT, "storage", "migrations", "[0-9][0-9][0-9][0-9]_*.sql")))
FRONT_WRITES = ("web_sessions", "async_results", "pars")
FRONT_NEVER = ("sads", "pending_sads", "audit", "audit_heads", "meta", "users", "creds", "approvals", "tokens",
               "challenges")


def lmdb_tables():
    """{name: dupsort} of the LMDB sub-databases (storage/stor_env.c db_specs)."""
    with open(os.path.join(ROOT, "storage", "stor_env.c")) as f:
        src = f.read()
    specs = re.findall(r'\[STOR_DB_\w+\]\s*=\s*\{\s*"(\w+)",\s*([^}]*)\}', src)
    return {name: "STOR_TABLE_DUPSORT" in flags for name, flags in specs}


class TestPgCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = PgCluster(nodes=2)
        cls.addClassCleanup(cls.pg.stop)  # runs even when start fails half-way
        cls.pg.start()

    def ok(self, conninfo, sql):
        p = self.pg.psql(conninfo, sql)
        self.assertEqual(p.returncode, 0, "%s: %s" % (sql, p.stderr))
        return p.stdout.strip()

    def refused(self, conninfo, sql, why):
        p = self.pg.psql(conninfo, sql)
        self.assertNotEqual(p.returncode, 0, "%s was accepted: %s" % (sql, p.stdout))
        self.assertIn(why, p.stderr)
        return p.stderr

    def with_params(self, conninfo, **changes):
        """conninfo with some parameters replaced (or added)."""
        parts = dict(kv.split("=", 1) for kv in conninfo.split())
        parts.update(changes)
        return " ".join("%s=%s" % kv for kv in parts.items())

    # ---- the way in ----------------------------------------------------------------------------------------
    def test_sam_certificate_connects_with_verify_full(self):
        sam = self.pg.conninfo("sam")
        self.assertIn("sslmode=verify-full", sam)
        row = self.ok(sam, "SELECT current_user, s.ssl, s.version, s.client_dn FROM pg_stat_ssl s "
                           "WHERE s.pid = pg_backend_pid()")
        user, ssl, version, dn = row.split("|")
        self.assertEqual((user, ssl, version), ("csc_sam", "t", "TLSv1.3"))
        self.assertIn("CN=node1-sam", dn)
        self.assertEqual(self.ok(self.pg.conninfo("sam", node=2), "SELECT current_user"), "csc_sam")
        self.assertEqual(self.ok(self.pg.conninfo("front", node=2), "SELECT current_user"), "csc_front")
        self.assertEqual(self.ok(self.pg.conninfo("admin"), "SELECT current_user"), "csc_admin")

    def test_without_tls_refused(self):
        sam = self.pg.conninfo("sam")
        self.refused(self.with_params(sam, sslmode="disable"), "SELECT 1", "no encryption")
        # TLS but no client certificate: no way in either (cert authentication only).
        self.refused(self.with_params(sam, sslcert="/nonexistent.crt", sslkey="/nonexistent.key"), "SELECT 1",
                     "certificate")

    def test_wrong_ca_refused(self):
        with tempfile.TemporaryDirectory() as d:
            ca = os.path.join(d, "other-ca.crt")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-days", "1", "-keyout", os.path.join(d, "other-ca.key"), "-out", ca,
                            "-subj", "/CN=Another CA"], check=True, capture_output=True)
            self.refused(self.with_params(self.pg.conninfo("sam"), sslrootcert=ca), "SELECT 1",
                         "certificate verify failed")

    def test_verify_full_checks_the_host_name(self):
        sam = self.pg.conninfo("sam")
        # The same address under the certificate's name connects; under another name it is refused.
        self.assertEqual(self.ok(self.with_params(sam, hostaddr="127.0.0.1"), "SELECT 1"), "1")
        self.refused(self.with_params(sam, host="db.wrong.test", hostaddr="127.0.0.1"), "SELECT 1",
                     "does not match host name")

    def test_other_certificates_cannot_log_in_as_csc_sam(self):
        sam = self.pg.conninfo("sam")
        for other in ("front", "admin"):
            cert = self.pg.conninfo(other)
            parts = dict(kv.split("=", 1) for kv in cert.split())
            self.refused(self.with_params(sam, sslcert=parts["sslcert"], sslkey=parts["sslkey"]), "SELECT 1",
                         'certificate authentication failed for user "csc_sam"')
        # nor a front end's certificate as csc_admin (the migrations' owner)
        front = dict(kv.split("=", 1) for kv in self.pg.conninfo("front").split())
        self.refused(self.with_params(self.pg.conninfo("admin"), sslcert=front["sslcert"], sslkey=front["sslkey"]),
                     "SELECT 1", "certificate authentication failed")

    def test_key_files_are_private(self):
        for role in ("sam", "front", "admin"):
            key = dict(kv.split("=", 1) for kv in self.pg.conninfo(role).split())["sslkey"]
            self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600, key)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.pg.dir, "ca", "ca.key")).st_mode), 0o600)

    # ---- privileges ----------------------------------------------------------------------------------------
    def test_front_cannot_spend_sads_or_write_the_audit_trail(self):
        front = self.pg.conninfo("front")
        self.refused(front, "UPDATE csc.sads SET v = v", "permission denied for table sads")
        self.refused(front, "INSERT INTO csc.audit VALUES ('\\x01', '\\x01')", "permission denied for table audit")
        self.refused(front, "INSERT INTO csc.audit_heads VALUES ('\\x01', '\\x01')",
                     "permission denied for table audit_heads")
        for table in FRONT_NEVER:
            self.refused(front, "INSERT INTO csc.%s VALUES ('\\x02', '\\x02')" % table,
                         "permission denied for table %s" % table)
            self.refused(front, "DELETE FROM csc.%s" % table, "permission denied for table %s" % table)
            # a locking read needs UPDATE: refused too
            self.refused(front, "SELECT k FROM csc.%s FOR UPDATE" % table, "permission denied for table %s" % table)
        self.refused(front, "UPDATE csc.meta SET v = v WHERE k = 'audit_head'", "permission denied for table meta")

    def test_front_writes_its_own_tables_and_reads_all(self):
        front = self.pg.conninfo("front")
        for table in FRONT_WRITES:
            self.ok(front, "INSERT INTO csc.%s VALUES ('\\x66726f6e74', '\\x01')" % table)
            self.ok(front, "SELECT k FROM csc.%s WHERE k = '\\x66726f6e74' FOR UPDATE" % table)
            self.ok(front, "UPDATE csc.%s SET v = '\\x02' WHERE k = '\\x66726f6e74'" % table)
            self.assertEqual(self.ok(front, "DELETE FROM csc.%s WHERE k = '\\x66726f6e74' RETURNING v" % table),
                             "\\x02")
        for table in lmdb_tables():
            self.ok(front, "SELECT count(*) FROM csc.%s" % table)

    def test_sam_writes_every_table(self):
        sam = self.pg.conninfo("sam")
        for table in lmdb_tables():
            self.ok(sam, "INSERT INTO csc.%s VALUES ('\\x73616d', '\\x01')" % table)
            self.ok(sam, "SELECT k FROM csc.%s WHERE k = '\\x73616d' FOR UPDATE" % table)
            self.ok(sam, "UPDATE csc.%s SET v = '\\x02' WHERE k = '\\x73616d'" % table)
            self.assertEqual(self.ok(sam, "DELETE FROM csc.%s WHERE k = '\\x73616d' RETURNING v" % table), "\\x02")
        self.refused(sam, "INSERT INTO csc.schema_version (version, name) VALUES (99, 'x')",
                     "permission denied for table schema_version")

    # ---- the schema --------------------------------------------------------------------------------------------
    def test_tables_are_the_lmdb_tables(self):
        admin = self.pg.conninfo("admin")
        rows = self.ok(admin, "SELECT c.relname, string_agg(a.attname, ',' ORDER BY a.attnum) "
                              "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                              "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'csc' "
                              "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
                              "WHERE i.indisprimary AND c.relname <> 'schema_version' GROUP BY c.relname")
        pkeys = dict(line.split("|") for line in rows.splitlines())
        want = lmdb_tables()
        self.assertEqual(len(want), 26)
        self.assertEqual(set(pkeys), set(want))
        for name, dupsort in want.items():
            self.assertEqual(pkeys[name], "k,v" if dupsort else "k", name)
        sam = self.pg.conninfo("sam")
        # a dupsort table holds a set of values per key; a plain one a single value
        self.ok(sam, "INSERT INTO csc.creds_by_owner VALUES ('\\x6f', '\\x02'), ('\\x6f', '\\x01')")
        self.assertEqual(self.ok(sam, "SELECT v FROM csc.creds_by_owner WHERE k = '\\x6f' ORDER BY v"),
                         "\\x01\n\\x02")
        self.refused(sam, "INSERT INTO csc.creds_by_owner VALUES ('\\x6f', '\\x01')", "duplicate key")
        self.refused(sam, "INSERT INTO csc.creds VALUES ('\\x6f', '\\x01'), ('\\x6f', '\\x02')", "duplicate key")
        self.ok(sam, "DELETE FROM csc.creds_by_owner WHERE k = '\\x6f'")

    def test_key_order_is_byte_order(self):
        # memcmp order, a prefix first: the order of LMDB's default comparison, so walks agree.
        sam = self.pg.conninfo("sam")
        keys = ["\\xff", "\\x0100", "\\x01", "\\x00ff", "\\x80", "\\x7f"]
        self.ok(sam, "INSERT INTO csc.clients VALUES %s" % ", ".join("('%s', '\\x00')" % k for k in keys))
        try:
            got = self.ok(sam, "SELECT k FROM csc.clients WHERE v = '\\x00' ORDER BY k").splitlines()
        finally:
            self.ok(sam, "DELETE FROM csc.clients WHERE v = '\\x00'")
        self.assertEqual(got, ["\\x00ff", "\\x01", "\\x0100", "\\x7f", "\\x80", "\\xff"])

    def schema_snapshot(self):
        return self.ok(self.pg.conninfo("admin"),
                       "SELECT (SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM csc.schema_version),"
                       " (SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ','"
                       "   ORDER BY table_name, column_name) FROM information_schema.columns WHERE table_schema = 'csc'),"
                       " (SELECT string_agg(grantee || ':' || table_name || ':' || privilege_type, ','"
                       "   ORDER BY grantee, table_name, privilege_type) FROM information_schema.role_table_grants"
                       "   WHERE table_schema = 'csc')")

    def test_migration_applied_twice_is_a_no_op(self):
        before = self.schema_snapshot()
        names = ",".join("%d:%s" % (int(os.path.basename(m)[:4]), os.path.basename(m)[:-4]) for m in MIGRATIONS)
        self.assertTrue(before.startswith(names + "|"), before)
        self.assertTrue(names.startswith("1:0001_init,2:0002_challenges,3:0003_pars,4:0004_compatible_from"), names)
        # the runner skips a recorded version
        p = self.pg.script("migrate")
        self.assertEqual(p.stdout + p.stderr, "")
        self.assertEqual(self.schema_snapshot(), before)
        # each file itself run again changes nothing either
        for migration in MIGRATIONS:
            p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                                self.pg.conninfo("admin"), "-f", migration], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(self.schema_snapshot(), before, migration)
        # and so does a second start of the cluster, quietly
        p = self.pg.script("start")
        self.assertEqual(p.stdout + p.stderr, "")
        self.assertEqual(self.schema_snapshot(), before)

    def test_code_knows_the_newest_migration(self):
        # storage/ checks a PostgreSQL database's csc.schema_version against STOR_PG_SCHEMA_VERSION: a migration
        # file added without raising it makes every database the runner migrates "newer than this code".
        with open(os.path.join(ROOT, "storage", "stor_int.h")) as f:
            m = re.search(r"#define STOR_PG_SCHEMA_VERSION (\d+)u", f.read())
        self.assertIsNotNone(m)
        files = [f for f in os.listdir(os.path.join(ROOT, "storage", "migrations")) if re.match(r"\d{4}_.*\.sql$", f)]
        self.assertEqual(sorted(files), [os.path.basename(f) for f in MIGRATIONS])
        newest = max(int(f[:4]) for f in files)
        self.assertEqual(int(m.group(1)), newest)

    def test_newer_database_refused(self):
        admin = self.pg.conninfo("admin")
        self.ok(admin, "INSERT INTO csc.schema_version (version, name) VALUES (9999, '9999_future')")
        try:
            p = self.pg.script("migrate", check=False)
        finally:
            self.ok(admin, "DELETE FROM csc.schema_version WHERE version = 9999")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("the database has schema version 9999, newer than this csc-admin's %d" % len(MIGRATIONS), p.stderr)

    def test_status_stop_and_start_again(self):
        self.assertEqual(self.pg.start_output, "")  # quiet on success
        p = self.pg.script("status")
        self.assertEqual(p.stdout.strip(), "running on 127.0.0.1:%d (2 nodes)" % self.pg.port)
        admin = self.pg.conninfo("admin")
        self.ok(admin, "INSERT INTO csc.clients VALUES ('\\x6b657074', '\\x6b657074')")  # kept across the restart
        try:
            self.assertEqual(self.pg.script("stop").stdout, "")
            p = self.pg.script("status", check=False)
            self.assertEqual((p.returncode, p.stdout.strip()), (3, "stopped"))
            self.refused(admin, "SELECT 1", "Connection refused")
            self.assertEqual(self.pg.script("stop").returncode, 0)  # stopping a stopped cluster: nothing to do
        finally:
            self.pg.script("start")
        self.assertEqual(self.ok(admin, "DELETE FROM csc.clients WHERE k = '\\x6b657074' RETURNING v"), "\\x6b657074")

if __name__ == "__main__":
    unittest.main()
