-- The product API's tables (shared/conduit-api.md): users, follows, articles
-- with their tags and favorites, and comments.
--
-- Ids are bigserial until the time-ordered ID generator exists; comment ids
-- are sent to clients as JSON numbers, so they must stay below 2^53, which a
-- sequence does for any realistic lifetime.
--
-- Every list the API serves is newest first with ties broken by id, so each
-- access path has an index in exactly that order and a page is an index scan
-- that stops after `limit + offset` rows:
--   global list  -> articles_newest
--   author=      -> articles_by_author
--   feed         -> articles_by_author, once per followed user (merge-append)
--   tag=         -> article_tags_newest (created_at is copied there for that)
--   favorited=   -> favorites primary key, then articles by id
-- The EXPLAIN output of the list and the feed is in docs/api-queries.md.

CREATE TABLE users (
    id bigserial PRIMARY KEY,
    username text NOT NULL,
    email text NOT NULL,
    password_hash text NOT NULL,
    bio text,
    image text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Usernames are exact strings (they appear in URLs); e-mail addresses compare
-- case-insensitively, so Alice@x and alice@x cannot be two accounts.
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE follows (
    follower_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (follower_id, followee_id),
    -- The API answers following yourself with 422, keyed on this name.
    CONSTRAINT follows_not_self CHECK (follower_id <> followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id);

CREATE TABLE articles (
    id bigserial PRIMARY KEY,
    slug text NOT NULL,
    author_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title text NOT NULL,
    description text NOT NULL,
    body text NOT NULL,
    -- Sorted and de-duplicated on write, so a read renders it as stored.
    tag_list text[] NOT NULL DEFAULT '{}',
    -- Kept in step with `favorites` by the statements that change it, in the
    -- same transaction, so reading the count never scans favorites.
    favorites_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX articles_slug_key ON articles (slug);
CREATE INDEX articles_newest ON articles (created_at DESC, id DESC);
CREATE INDEX articles_by_author ON articles (author_id, created_at DESC, id DESC);

CREATE TABLE article_tags (
    tag text NOT NULL,
    article_id bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tag, article_id)
);
CREATE INDEX article_tags_newest ON article_tags (tag, created_at DESC, article_id DESC);
CREATE INDEX article_tags_article ON article_tags (article_id);

CREATE TABLE favorites (
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    article_id bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, article_id)
);
CREATE INDEX favorites_article ON favorites (article_id);

CREATE TABLE comments (
    id bigserial PRIMARY KEY,
    article_id bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    author_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comments_by_article ON comments (article_id, id);
