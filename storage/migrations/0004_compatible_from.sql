-- 0004_compatible_from.sql: each schema version says which code may still run on it, so that nodes can be
-- upgraded one at a time across a migration (docs/operations.md, "Upgrading one node at a time").
--
-- csc.schema_version.compatible_from: the oldest code schema version (STOR_PG_SCHEMA_VERSION of a build) that may
-- keep running once this version is applied. A migration that only adds (a table, a nullable column, an index)
-- leaves older code working and names the version before it or older; one that changes what older code reads or
-- writes names its own version, and then the service is stopped for it. A node opens a database whose newest
-- version V is newer than its own S only when V's compatible_from <= S (storage/stor_env.c); a row without it (the
-- versions before this one) counts as its own version.
--
-- Run like 0001_init.sql (by csc_admin, in one transaction, idempotent).
-- compatible-from: 1

SET client_min_messages = warning;

ALTER TABLE csc.schema_version ADD COLUMN IF NOT EXISTS compatible_from integer
    CHECK (compatible_from > 0 AND compatible_from <= version);

-- The versions before: each only added tables that older code does not use (0002 challenges, 0003 pars).
UPDATE csc.schema_version SET compatible_from = 1 WHERE version IN (1, 2, 3) AND compatible_from IS NULL;

-- This one adds a column that older code does not read (it reads max(version) only).
INSERT INTO csc.schema_version (version, name, compatible_from) VALUES (4, '0004_compatible_from', 1)
    ON CONFLICT (version) DO NOTHING;
