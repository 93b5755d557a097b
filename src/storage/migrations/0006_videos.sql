-- Videos of the short-video platform: one row per stored object. The row is
-- written only after the object's upload has completed, and a delete removes
-- the row before the object, so a row always names an object that exists
-- (see api::videos for the one window where an object can exist without a
-- row: a crash between the two).
--
-- Ids come from the time-ordered ID generator, so "newest first" is "highest
-- id first", and every list pages by id.
CREATE TABLE videos (
    id bigint PRIMARY KEY,
    author_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title text NOT NULL,
    size_bytes bigint NOT NULL CHECK (size_bytes > 0),
    content_type text NOT NULL,
    storage_key text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- An author's videos, newest first; also the feed's walk per followed author.
CREATE INDEX videos_author_newest ON videos (author_id, id DESC);
