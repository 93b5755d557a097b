-- Counts the product API answers with on every list (`articlesCount`) and on
-- GET /api/tags, kept in step with the rows they count by the statements
-- that add and remove those rows, in the same transaction (api::sql: each
-- create and delete batch updates them after its row change). Counting the
-- rows instead cost time in proportion to the table: at 13,000 articles the
-- unfiltered count and the feed's count were the two most frequent
-- statements on the server.

-- Articles per author: the author filter's and the feed's counts.
ALTER TABLE users ADD COLUMN article_count integer NOT NULL DEFAULT 0;
UPDATE users u SET article_count = (SELECT count(*) FROM articles a WHERE a.author_id = u.id);

-- Articles per tag, and the tag list itself (most used first).
CREATE TABLE tags (
    name text PRIMARY KEY,
    article_count integer NOT NULL DEFAULT 0
);
INSERT INTO tags (name, article_count) SELECT tag, count(*) FROM article_tags GROUP BY tag;
CREATE INDEX tags_in_use ON tags (article_count DESC, name) WHERE article_count > 0;

-- All articles, as 16 partial counts summed on read: a create or delete
-- updates one shard chosen at random, so concurrent writers rarely wait
-- for each other's row lock.
CREATE TABLE article_count_shards (
    shard integer PRIMARY KEY,
    n bigint NOT NULL
);
INSERT INTO article_count_shards (shard, n)
SELECT s, (SELECT count(*) FROM articles WHERE id % 16 = s) FROM generate_series(0, 15) AS s;
