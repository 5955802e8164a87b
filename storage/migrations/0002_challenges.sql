-- 0002_challenges.sql: the challenges table (storage/stor_challenge.c): pending one-time codes of the CHALLENGE
-- object (credentials/getChallenge, v1 sendOTP), so that a code made through one node is used up, once, through
-- any node. Key SHA-256(user NUL cred), value the record layer's stor_challenge_t: the code's HMAC under a key csc-sam
-- derives from the HSM's factor key (no database reader has it), never the code.
--
-- Run like 0001_init.sql (by csc_admin, in one transaction, idempotent).

SET client_min_messages = warning;

CREATE TABLE IF NOT EXISTS csc.challenges     (k bytea PRIMARY KEY, v bytea NOT NULL); -- SHA-256(user NUL cred)

-- csc_sam makes the codes (CHALLENGE op) and uses them up (credentials/authorize: read FOR UPDATE and deleted in one
-- transaction); the purge deletes expired ones.
GRANT SELECT, INSERT, UPDATE, DELETE ON csc.challenges TO csc_sam;
-- csc_front reads, like every table (0001's GRANT SELECT ON ALL TABLES did not cover tables made later); it never
-- writes a code: only csc-sam links the functions that do (tests/unit/server/check_symbols).
GRANT SELECT ON csc.challenges TO csc_front;

INSERT INTO csc.schema_version (version, name) VALUES (2, '0002_challenges') ON CONFLICT (version) DO NOTHING;
