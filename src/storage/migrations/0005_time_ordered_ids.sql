-- Users and articles take their primary keys from the time-ordered ID
-- generator (ids::issue, in the layout --id-layout picks), no longer from a
-- sequence: ids made on any node of a fleet never collide and sort by time.
-- Rows made before this keep their small ids, which sort below every new one.
--
-- Comments keep their sequence: the API sends a comment's id as a JSON
-- number, which JavaScript clients read exactly only up to 2^53 - 1
-- (shared/conduit-api.md, the Comment object), and a 64-bit time-ordered id
-- exceeds that.
ALTER TABLE users ALTER COLUMN id DROP DEFAULT;
DROP SEQUENCE users_id_seq;
ALTER TABLE articles ALTER COLUMN id DROP DEFAULT;
DROP SEQUENCE articles_id_seq;
