-- 0003_pars.sql: the pars table (storage/stor_par.c): pushed authorization requests (RFC 9126), so that a
-- request_uri pushed through one node is used, once, through any node, and a restart keeps it. Key the SHA-256 of
-- the request_uri's random part (never the request_uri), value the record layer's stor_par_t: the client that pushed
-- it, its expiry and the validated request.
--
-- Run like 0001_init.sql (by csc_admin, in one transaction, idempotent).

SET client_min_messages = warning;

CREATE TABLE IF NOT EXISTS csc.pars           (k bytea PRIMARY KEY, v bytea NOT NULL); -- SHA-256(request_uri's random part)

-- csc_front pushes the requests (INSERT), uses each up (read FOR UPDATE, which needs UPDATE too, and deleted in one
-- transaction) and purges the expired ones (csc-api/csc_periodic.c): they are the front end's own, client-
-- authenticated at the push and checked again at use; nothing in them is a factor or a SAD.
GRANT SELECT, INSERT, UPDATE, DELETE ON csc.pars TO csc_front;
-- csc_sam: everything, like every table (0001's GRANT ON ALL TABLES did not cover tables made later); its code
-- neither pushes, uses nor purges a request.
GRANT SELECT, INSERT, UPDATE, DELETE ON csc.pars TO csc_sam;

INSERT INTO csc.schema_version (version, name) VALUES (3, '0003_pars') ON CONFLICT (version) DO NOTHING;
