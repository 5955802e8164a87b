-- 0001_init.sql: the storage tables in PostgreSQL, the roles and their privileges.
--
-- Run by the migrations' owner (role csc_admin, which owns the database) through `scripts/pg` (and later
-- `csc-admin db migrate`), in one transaction. Safe to run again: every statement is idempotent and the version
-- row is inserted once. Never edit this file once it has been applied anywhere: add 0002_*.sql (README.md).
--
-- Model (the same as LMDB's, so a walk gives the same rows in the same order on both backends): one table per
-- LMDB sub-database of storage/stor_int.h, keys and values are the record layer's bytes (stor_codec.c), key order
-- is bytea order (memcmp, a prefix first). Plain tables hold one value per key; the dupsort tables
-- (creds_by_owner, tokens_by_grant, delegations) a set of values per key, in value order.

SET client_min_messages = warning;

-- ---- roles --------------------------------------------------------------------------------------------------
-- Group roles without LOGIN. A deployment gives them LOGIN (scripts/pg does: the client certificate's CN is mapped
-- to the role by pg_ident.conf) or creates per-node login roles that are their members. Creating them here needs
-- CREATEROLE; where the database administrator created them already (scripts/pg, as the cluster's superuser)
-- nothing is done.
--   csc_sam    csc-sam: every DML on every table (it spends SAD budgets, appends the audit trail, signs its heads)
--   csc_front  csc-server: reads every table; writes only what the front end's own code writes (below)
--   csc_admin  the migrations' owner: owns the schema and its tables (csc-admin db init/migrate/copy)
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['csc_sam', 'csc_front', 'csc_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    -- Only the service's roles connect to this database.
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO csc_sam, csc_front, csc_admin', current_database());
END
$$;

-- ---- schema and version ---------------------------------------------------------------------------------------
CREATE SCHEMA IF NOT EXISTS csc AUTHORIZATION csc_admin;
REVOKE ALL ON SCHEMA csc FROM PUBLIC;
GRANT USAGE ON SCHEMA csc TO csc_sam, csc_front;

-- One row per applied migration file. The runner (scripts/pg migrate) applies the files with no row and refuses a
-- database with a version that has no file (newer than the code).
CREATE TABLE IF NOT EXISTS csc.schema_version (
    version    integer PRIMARY KEY CHECK (version > 0),
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- ---- the storage tables ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS csc.users          (k bytea PRIMARY KEY, v bytea NOT NULL); -- user name
CREATE TABLE IF NOT EXISTS csc.creds          (k bytea PRIMARY KEY, v bytea NOT NULL); -- credential id
CREATE TABLE IF NOT EXISTS csc.creds_by_owner (k bytea NOT NULL, v bytea NOT NULL, PRIMARY KEY (k, v)); -- owner -> credential ids
CREATE TABLE IF NOT EXISTS csc.tokens         (k bytea PRIMARY KEY, v bytea NOT NULL); -- token hash (32)
CREATE TABLE IF NOT EXISTS csc.tokens_by_grant (k bytea NOT NULL, v bytea NOT NULL, PRIMARY KEY (k, v)); -- grant -> token hashes
CREATE TABLE IF NOT EXISTS csc.sads           (k bytea PRIMARY KEY, v bytea NOT NULL); -- SAD hash (32)
CREATE TABLE IF NOT EXISTS csc.audit          (k bytea PRIMARY KEY, v bytea NOT NULL); -- seq (u64 BE)
CREATE TABLE IF NOT EXISTS csc.meta           (k bytea PRIMARY KEY, v bytea NOT NULL); -- "audit_head" (and LMDB's "schema")
CREATE TABLE IF NOT EXISTS csc.clients        (k bytea PRIMARY KEY, v bytea NOT NULL); -- OAuth client_id
CREATE TABLE IF NOT EXISTS csc.codes          (k bytea PRIMARY KEY, v bytea NOT NULL); -- code hash (32)
CREATE TABLE IF NOT EXISTS csc.pending_sads   (k bytea PRIMARY KEY, v bytea NOT NULL); -- code hash (32)
CREATE TABLE IF NOT EXISTS csc.audit_heads    (k bytea PRIMARY KEY, v bytea NOT NULL); -- seq (u64 BE)
CREATE TABLE IF NOT EXISTS csc.async_results  (k bytea PRIMARY KEY, v bytea NOT NULL); -- responseID hash
CREATE TABLE IF NOT EXISTS csc.operators      (k bytea PRIMARY KEY, v bytea NOT NULL); -- operator name
CREATE TABLE IF NOT EXISTS csc.op_sessions    (k bytea PRIMARY KEY, v bytea NOT NULL); -- token hash (32)
CREATE TABLE IF NOT EXISTS csc.approvals      (k bytea PRIMARY KEY, v bytea NOT NULL); -- approval id
CREATE TABLE IF NOT EXISTS csc.delegations    (k bytea NOT NULL, v bytea NOT NULL, PRIMARY KEY (k, v)); -- delegate -> credential ids
CREATE TABLE IF NOT EXISTS csc.web_sessions   (k bytea PRIMARY KEY, v bytea NOT NULL); -- session id hash
CREATE TABLE IF NOT EXISTS csc.user_approvals (k bytea PRIMARY KEY, v bytea NOT NULL); -- handle hash (32)
CREATE TABLE IF NOT EXISTS csc.enrollments    (k bytea PRIMARY KEY, v bytea NOT NULL); -- user name
CREATE TABLE IF NOT EXISTS csc.enroll_tickets (k bytea PRIMARY KEY, v bytea NOT NULL); -- ticket hash (32)
CREATE TABLE IF NOT EXISTS csc.restore_reqs   (k bytea PRIMARY KEY, v bytea NOT NULL); -- reference
CREATE TABLE IF NOT EXISTS csc.signins        (k bytea PRIMARY KEY, v bytea NOT NULL); -- user name
CREATE TABLE IF NOT EXISTS csc.sign_events    (k bytea PRIMARY KEY, v bytea NOT NULL); -- credential id

-- ---- privileges -----------------------------------------------------------------------------------------------
-- csc_sam: everything (SELECT ... FOR UPDATE, which every read in a write transaction uses, needs UPDATE too).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA csc TO csc_sam;
REVOKE INSERT, UPDATE, DELETE ON csc.schema_version FROM csc_sam;

-- csc_front: reads everything.
GRANT SELECT ON ALL TABLES IN SCHEMA csc TO csc_front;

-- csc_front writes. Found from the code, not assumed: the storage functions csc-server can reach (a link of
-- csc-server with -ffunction-sections and --gc-sections keeps only what is called), and for each write function
-- the storage transaction (stor_write job) that calls it in csc-server and the tables that transaction writes:
--   web_sessions   oauth/oauth_websession.c take_fn, put_back_fn (the OAuth pages' browser sessions): writes
--                  web_sessions only.
--   async_results  csc-api/csc_async.c put_fn (operationMode "A" results), stor_async_fail_pending at start,
--                  stor_async_purge (the async worker): async_results only.
-- Granted: these two, and nothing else.
GRANT INSERT, UPDATE, DELETE ON csc.web_sessions, csc.async_results TO csc_front;
--
-- Not granted: every other transaction csc-server writes today appends an audit record (stor_txn_audit_append:
-- audit and meta's "audit_head") or writes a SAD in the same transaction, which csc_front may never do; so none of
-- them can run as csc_front, and each moves to csc-sam (or asks it) before csc-server runs on PostgreSQL:
--   tokens, tokens_by_grant, codes, sads, pending_sads   oauth/oauth_grant.c code_apply (the token endpoint:
--                  moves the pending SAD to sads), refresh_apply, revoke_client_apply (drops the token's SAD),
--                  oauth/oauth_token.c revoke_apply; each with grant_audit / an audit record.
--   users, signins oauth/oauth_token.c login_apply (auth/login: counters, last sign-ins) with its audit record.
--   creds, approvals  csc-api/csc_cert.c revoked_fn, refuse_fn (the CRL sweep revokes a credential and files
--                  its key's destruction) with their audit records.
--   audit, meta    oauth/oauth_fail.c flush_fn and oauth_fail_append (failed logins aggregated),
--                  oauth/oauth_core.c oauth_audit_lockout, storage/stor_env.c full_record_fn. meta: the front
--                  end's only row is "audit_head" (with each audit record); LMDB's "schema" row is written by
--                  whoever opens an empty environment first (csc-admin init); on PostgreSQL the version is
--                  csc.schema_version. So csc_front gets no write on meta at all, and no row-level policy is
--                  needed.
--   op_sessions, user_approvals, enrollments, enroll_tickets, restore_reqs (and the tables above)
--                  csc-api/csc_periodic.c csc_purge_once -> stor_purge_expired: one transaction that also
--                  deletes expired SADs and pending SADs; the purge belongs to csc-sam (one node at a time).
-- Granting these would also let a compromised front end rewrite a user's verifiers (users), a credential's owner
-- (creds) or file a key destruction (approvals), which the split into csc-server and csc-sam exists to prevent.
-- Note for the backend: a locking read (FOR UPDATE / FOR SHARE) needs UPDATE on the table, so csc_front's write
-- transactions may lock only rows of web_sessions and async_results.
-- Never: sads, pending_sads, audit, audit_heads, meta, schema_version.

-- ---- version --------------------------------------------------------------------------------------------------
INSERT INTO csc.schema_version (version, name) VALUES (1, '0001_init') ON CONFLICT (version) DO NOTHING;
