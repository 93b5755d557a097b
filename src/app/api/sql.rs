//! Every statement the product API runs, prepared once per connection like
//! the rest (see `storage::statements`).
//!
//! Conventions that the handlers and `render` rely on:
//! - `$1` of every statement that personalises its answer is the caller's
//!   user id, `0` for an anonymous caller (no user has id 0), so `favorited`
//!   and `following` come out false without a second statement.
//! - Article rows have the columns of [`article_columns!`], in that order;
//!   lists select NULL for the body, which list responses do not carry.
//! - Every list is ordered newest first with ties broken by id, the order of
//!   the index serving it (see the migration), so a page is an index scan.
//!
//! Constraint names that reach clients as 422s: `users_username_key`,
//! `users_email_key`, `articles_slug_key`, `follows_not_self`.

use postgres_types::Type;

use crate::storage::statements::Statement;

/// The select list and joins of an article row. Columns:
/// 0 id, 1 author_id, 2 slug, 3 title, 4 description, 5 body, 6 tag_list,
/// 7 created_at, 8 updated_at, 9 favorites_count, 10 author username,
/// 11 author bio, 12 author image, 13 favorited, 14 following.
macro_rules! article_columns {
    ($body:literal) => {
        concat!(
            "SELECT a.id, a.author_id, a.slug, a.title, a.description, ",
            $body,
            ", a.tag_list, a.created_at, a.updated_at, a.favorites_count, u.username, u.bio, u.image, \
             EXISTS (SELECT 1 FROM favorites f WHERE f.user_id = $1 AND f.article_id = a.id), \
             EXISTS (SELECT 1 FROM follows w WHERE w.follower_id = $1 AND w.followee_id = a.author_id) \
             FROM articles a JOIN users u ON u.id = a.author_id "
        )
    };
}

// ---- users ------------------------------------------------------------------

/// Login lookup: `(id, username, email, bio, image, password_hash)`.
pub const USER_BY_EMAIL: Statement = Statement {
    name: "user_by_email",
    sql: "SELECT id, username, email, bio, image, password_hash, token_generation FROM users \
          WHERE lower(email) = lower($1)",
    params: &[Type::TEXT],
};

/// `(token_generation)` of user `$1`: no row if the user is gone.
pub const TOKEN_GENERATION: Statement = Statement {
    name: "token_generation",
    sql: "SELECT token_generation FROM users WHERE id = $1",
    params: &[Type::INT8],
};

/// `(id, username, email, bio, image)`.
pub const USER_BY_ID: Statement = Statement {
    name: "user_by_id",
    sql: "SELECT id, username, email, bio, image FROM users WHERE id = $1",
    params: &[Type::INT8],
};

/// `$1` username, `$2` email, `$3` password hash -> `(id, username, email, bio, image)`
/// (a new user's token generation is 0).
pub const INSERT_USER: Statement = Statement {
    name: "insert_user",
    sql: "INSERT INTO users (id, username, email, password_hash) VALUES ($4, $1, $2, $3) \
          RETURNING id, username, email, bio, image",
    params: &[Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8],
};

/// Partial update of the caller (`$1`): NULL email/username/hash keep the old
/// value; `$5`/`$7` say whether bio/image are being set (to `$6`/`$8`, which
/// may be NULL to clear them). A new hash moves the token generation on.
/// Returns `(id, username, email, bio, image, token_generation)`.
pub const UPDATE_USER: Statement = Statement {
    name: "update_user",
    sql: "UPDATE users SET email = COALESCE($2, email), username = COALESCE($3, username), \
          password_hash = COALESCE($4, password_hash), \
          bio = CASE WHEN $5 THEN $6 ELSE bio END, image = CASE WHEN $7 THEN $8 ELSE image END, \
          token_generation = token_generation + CASE WHEN $4 IS NULL THEN 0 ELSE 1 END, \
          updated_at = now() WHERE id = $1 RETURNING id, username, email, bio, image, token_generation",
    params: &[Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT, Type::BOOL, Type::TEXT, Type::BOOL, Type::TEXT],
};

/// The caller's username before an update, and the slugs of their articles,
/// whose cached copies embed the author: `(username)`.
pub const USERNAME_BY_ID: Statement =
    Statement { name: "username_by_id", sql: "SELECT username FROM users WHERE id = $1", params: &[Type::INT8] };

/// `(slug)` of every article by `$1`.
/// A page of author `$1`'s articles, newest first, below `($2, $3)` (created_at,
/// id): `(slug, created_at, id)`, at most [`FANOUT_PAGE`] rows. Served by
/// `articles_by_author`.
pub const SLUGS_BY_AUTHOR: Statement = Statement {
    name: "slugs_by_author",
    sql: "SELECT slug, created_at, id FROM articles WHERE author_id = $1 AND (created_at, id) < ($2, $3) \
          ORDER BY created_at DESC, id DESC LIMIT 1000",
    params: &[Type::INT8, Type::TIMESTAMPTZ, Type::INT8],
};

/// Rows per page of a write's cache fan-out ([`SLUGS_BY_AUTHOR`], [`FOLLOWER_IDS`]).
pub const FANOUT_PAGE: usize = 1000;

// ---- profiles ---------------------------------------------------------------

/// `(id, username, bio, image, following)` for username `$2`.
pub const PROFILE: Statement = Statement {
    name: "profile",
    sql: "SELECT u.id, u.username, u.bio, u.image, \
          EXISTS (SELECT 1 FROM follows w WHERE w.follower_id = $1 AND w.followee_id = u.id) \
          FROM users u WHERE u.username = $2",
    params: &[Type::INT8, Type::TEXT],
};

pub const FOLLOW: Statement = Statement {
    name: "follow",
    sql: "INSERT INTO follows (follower_id, followee_id) SELECT $1, id FROM users WHERE username = $2 \
          ON CONFLICT DO NOTHING",
    params: &[Type::INT8, Type::TEXT],
};

pub const UNFOLLOW: Statement = Statement {
    name: "unfollow",
    sql: "DELETE FROM follows WHERE follower_id = $1 AND followee_id = (SELECT id FROM users WHERE username = $2)",
    params: &[Type::INT8, Type::TEXT],
};

// ---- articles ---------------------------------------------------------------

pub const ARTICLE_BY_SLUG: Statement = Statement {
    name: "article_by_slug",
    sql: concat!(article_columns!("a.body"), "WHERE a.slug = $2"),
    params: &[Type::INT8, Type::TEXT],
};

pub const ARTICLE_BY_ID: Statement = Statement {
    name: "article_by_id",
    sql: concat!(article_columns!("a.body"), "WHERE a.id = $2"),
    params: &[Type::INT8, Type::INT8],
};

/// `(id, author_id, title, tag_list)` of the article with slug `$1`:
/// ownership checks, and what a delete must uncount.
pub const ARTICLE_OWNER: Statement = Statement {
    name: "article_owner",
    sql: "SELECT id, author_id, title, tag_list FROM articles WHERE slug = $1",
    params: &[Type::TEXT],
};

/// Global list: `$2` limit, `$3` offset.
pub const LIST_ALL: Statement = Statement {
    name: "list_all",
    sql: concat!(article_columns!("NULL::text"), "ORDER BY a.created_at DESC, a.id DESC LIMIT $2 OFFSET $3"),
    params: &[Type::INT8, Type::INT8, Type::INT8],
};

/// The number of articles, from the counter shards (migration 0003).
pub const COUNT_ALL: Statement =
    Statement { name: "count_all", sql: "SELECT coalesce(sum(n), 0)::int8 FROM article_count_shards", params: &[] };

/// `$4` author username.
pub const LIST_BY_AUTHOR: Statement = Statement {
    name: "list_by_author",
    sql: concat!(
        article_columns!("NULL::text"),
        "WHERE a.author_id = (SELECT id FROM users WHERE username = $4) ",
        "ORDER BY a.created_at DESC, a.id DESC LIMIT $2 OFFSET $3"
    ),
    params: &[Type::INT8, Type::INT8, Type::INT8, Type::TEXT],
};

pub const COUNT_BY_AUTHOR: Statement = Statement {
    name: "count_by_author",
    sql: "SELECT coalesce((SELECT article_count FROM users WHERE username = $1), 0)::int8",
    params: &[Type::TEXT],
};

/// `$4` tag; walks `article_tags_newest`, which carries the article's created_at.
pub const LIST_BY_TAG: Statement = Statement {
    name: "list_by_tag",
    sql: concat!(
        article_columns!("NULL::text"),
        "JOIN article_tags t ON t.article_id = a.id WHERE t.tag = $4 ",
        "ORDER BY t.created_at DESC, t.article_id DESC LIMIT $2 OFFSET $3"
    ),
    params: &[Type::INT8, Type::INT8, Type::INT8, Type::TEXT],
};

pub const COUNT_BY_TAG: Statement = Statement {
    name: "count_by_tag",
    sql: "SELECT coalesce((SELECT article_count FROM tags WHERE name = $1), 0)::int8",
    params: &[Type::TEXT],
};

/// `$4` username of the user whose favorites are listed.
pub const LIST_BY_FAVORITED: Statement = Statement {
    name: "list_by_favorited",
    sql: concat!(
        article_columns!("NULL::text"),
        "JOIN favorites fv ON fv.article_id = a.id WHERE fv.user_id = (SELECT id FROM users WHERE username = $4) ",
        "ORDER BY a.created_at DESC, a.id DESC LIMIT $2 OFFSET $3"
    ),
    params: &[Type::INT8, Type::INT8, Type::INT8, Type::TEXT],
};

pub const COUNT_BY_FAVORITED: Statement = Statement {
    name: "count_by_favorited",
    sql: "SELECT count(*) FROM favorites WHERE user_id = (SELECT id FROM users WHERE username = $1)",
    params: &[Type::TEXT],
};

/// Any combination of filters (NULL = not filtered): `$4` author, `$5` tag,
/// `$6` favorited. The single-filter lists above serve the common cases with
/// plans that use their index; this one serves the rare combinations.
pub const LIST_FILTERED: Statement = Statement {
    name: "list_filtered",
    sql: concat!(
        article_columns!("NULL::text"),
        "WHERE ($4::text IS NULL OR a.author_id = (SELECT id FROM users WHERE username = $4)) ",
        "AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM article_tags t WHERE t.tag = $5 AND t.article_id = a.id)) ",
        "AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM favorites fv JOIN users fu ON fu.id = fv.user_id ",
        "WHERE fu.username = $6 AND fv.article_id = a.id)) ",
        "ORDER BY a.created_at DESC, a.id DESC LIMIT $2 OFFSET $3"
    ),
    params: &[Type::INT8, Type::INT8, Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT],
};

pub const COUNT_FILTERED: Statement = Statement {
    name: "count_filtered",
    sql: "SELECT count(*) FROM articles a \
          WHERE ($1::text IS NULL OR a.author_id = (SELECT id FROM users WHERE username = $1)) \
          AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM article_tags t WHERE t.tag = $2 AND t.article_id = a.id)) \
          AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM favorites fv JOIN users fu ON fu.id = fv.user_id \
          WHERE fu.username = $3 AND fv.article_id = a.id))",
    params: &[Type::TEXT, Type::TEXT, Type::TEXT],
};

/// Articles by the users the caller (`$1`) follows, in the column layout of
/// [`article_columns!`]. Each followed author contributes at most
/// `limit + offset` of their newest articles (an index range scan each on
/// `articles_by_author`), and the page is taken from their union: the cost
/// grows with the number of followed users and the page depth, never with
/// the size of the table. (Written as a plain join, PostgreSQL walked
/// `articles_newest` and filtered, 7 ms per feed on 10,000 articles.)
pub const FEED: Statement = Statement {
    name: "feed",
    sql: "SELECT a.id, a.author_id, a.slug, a.title, a.description, NULL::text, a.tag_list, a.created_at, \
          a.updated_at, a.favorites_count, u.username, u.bio, u.image, \
          EXISTS (SELECT 1 FROM favorites f WHERE f.user_id = $1 AND f.article_id = a.id), true \
          FROM follows w \
          CROSS JOIN LATERAL (SELECT * FROM articles x WHERE x.author_id = w.followee_id \
          ORDER BY x.created_at DESC, x.id DESC LIMIT $2 + $3) a \
          JOIN users u ON u.id = a.author_id \
          WHERE w.follower_id = $1 ORDER BY a.created_at DESC, a.id DESC LIMIT $2 OFFSET $3",
    params: &[Type::INT8, Type::INT8, Type::INT8],
};

/// How many articles the feed holds: the followed authors' article counts.
pub const COUNT_FEED: Statement = Statement {
    name: "count_feed",
    sql: "SELECT coalesce(sum(u.article_count), 0)::int8 FROM follows w JOIN users u ON u.id = w.followee_id \
          WHERE w.follower_id = $1",
    params: &[Type::INT8],
};

/// `$1` slug, `$2` author, `$3` title, `$4` description, `$5` body, `$6` the
/// sorted, de-duplicated tags; the tags' index rows go in with it. Returns `(id)`.
pub const INSERT_ARTICLE: Statement = Statement {
    name: "insert_article",
    sql: "WITH a AS (INSERT INTO articles (id, slug, author_id, title, description, body, tag_list) \
          VALUES ($7, $1, $2, $3, $4, $5, $6) RETURNING id, created_at), \
          t AS (INSERT INTO article_tags (tag, article_id, created_at) \
          SELECT tag, a.id, a.created_at FROM a, unnest($6::text[]) AS tag) \
          SELECT id FROM a",
    params: &[Type::TEXT, Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT_ARRAY, Type::INT8],
};

/// Partial update of article `$1`: NULL keeps a field.
pub const UPDATE_ARTICLE: Statement = Statement {
    name: "update_article",
    sql: "UPDATE articles SET slug = COALESCE($2, slug), title = COALESCE($3, title), \
          description = COALESCE($4, description), body = COALESCE($5, body), updated_at = now() \
          WHERE id = $1",
    params: &[Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT],
};

/// Deletes article `$1`; its tags, favorites and comments go with it (ON DELETE CASCADE).
/// Deletes article `$1`, and fails the batch (no_data_found) if it was
/// already gone: the counter statements after it in the same transaction
/// then never run, so two deletes at once move the counters once.
pub const DELETE_ARTICLE: Statement = Statement {
    name: "delete_article",
    sql: "WITH d AS (DELETE FROM articles WHERE id = $1 RETURNING 1) \
          SELECT swiftlet_require((SELECT count(*) FROM d), 'article')",
    params: &[Type::INT8],
};

/// Caller `$1` favorites slug `$2`; the count moves only if the row is new,
/// so favoriting twice changes nothing.
pub const FAVORITE: Statement = Statement {
    name: "favorite",
    sql: "WITH f AS (INSERT INTO favorites (user_id, article_id) SELECT $1, id FROM articles WHERE slug = $2 \
          ON CONFLICT DO NOTHING RETURNING article_id) \
          UPDATE articles SET favorites_count = favorites_count + 1 WHERE id IN (SELECT article_id FROM f)",
    params: &[Type::INT8, Type::TEXT],
};

pub const UNFAVORITE: Statement = Statement {
    name: "unfavorite",
    sql: "WITH f AS (DELETE FROM favorites WHERE user_id = $1 \
          AND article_id = (SELECT id FROM articles WHERE slug = $2) RETURNING article_id) \
          UPDATE articles SET favorites_count = favorites_count - 1 WHERE id IN (SELECT article_id FROM f)",
    params: &[Type::INT8, Type::TEXT],
};

/// The tags in use, most used first, at most 100 (the spec leaves the size
/// open; the reference server sends 10): `(tag)`. With tags of at most 64
/// bytes, the answer stays under 8 KiB however many tags exist.
pub const TAGS: Statement = Statement {
    name: "tags",
    sql: "SELECT name FROM tags WHERE article_count > 0 ORDER BY article_count DESC, name LIMIT 100",
    params: &[],
};

// The counters of migration 0003. A create or delete batch runs these after
// its row change, as separate statements in the same transaction, always in
// this order (author, tags in name order, shard), so two writers take the
// counter rows' locks in the same order and cannot deadlock on them.

/// Moves author `$1`'s article count by `$2`.
pub const COUNT_AUTHOR: Statement = Statement {
    name: "count_author",
    sql: "UPDATE users SET article_count = article_count + $2 WHERE id = $1",
    params: &[Type::INT8, Type::INT4],
};

/// Moves the counts of tags `$1` (sorted) by `$2`, creating tags on first use.
pub const COUNT_TAGS: Statement = Statement {
    name: "count_tags",
    sql: "INSERT INTO tags (name, article_count) SELECT t, $2 FROM unnest($1::text[]) AS t ORDER BY t \
          ON CONFLICT (name) DO UPDATE SET article_count = tags.article_count + excluded.article_count",
    params: &[Type::TEXT_ARRAY, Type::INT4],
};

/// Moves counter shard `$1` (0..16) by `$2`.
pub const COUNT_TOTAL: Statement = Statement {
    name: "count_total",
    sql: "UPDATE article_count_shards SET n = n + $2 WHERE shard = $1",
    params: &[Type::INT4, Type::INT8],
};

// ---- comments ---------------------------------------------------------------
// Comment rows: 0 id, 1 created_at, 2 updated_at, 3 body, 4 author username,
// 5 author bio, 6 author image, 7 following.

/// Caller `$1` comments `$3` on slug `$2`; no row if the article does not exist.
pub const INSERT_COMMENT: Statement = Statement {
    name: "insert_comment",
    sql: "WITH c AS (INSERT INTO comments (article_id, author_id, body) SELECT id, $1, $3 FROM articles \
          WHERE slug = $2 RETURNING id, author_id, body, created_at, updated_at) \
          SELECT c.id, c.created_at, c.updated_at, c.body, u.username, u.bio, u.image, false \
          FROM c JOIN users u ON u.id = c.author_id",
    params: &[Type::INT8, Type::TEXT, Type::TEXT],
};

/// The comments on slug `$2`, oldest first: `$3` of them after skipping `$4`.
pub const COMMENTS: Statement = Statement {
    name: "comments",
    sql: "SELECT c.id, c.created_at, c.updated_at, c.body, u.username, u.bio, u.image, \
          EXISTS (SELECT 1 FROM follows w WHERE w.follower_id = $1 AND w.followee_id = c.author_id) \
          FROM comments c JOIN users u ON u.id = c.author_id \
          WHERE c.article_id = (SELECT id FROM articles WHERE slug = $2) ORDER BY c.id LIMIT $3 OFFSET $4",
    params: &[Type::INT8, Type::TEXT, Type::INT8, Type::INT8],
};

/// `(author_id)` of comment `$1` if it belongs to the article with slug `$2`.
pub const COMMENT_OWNER: Statement = Statement {
    name: "comment_owner",
    sql: "SELECT c.author_id FROM comments c JOIN articles a ON a.id = c.article_id WHERE c.id = $1 AND a.slug = $2",
    params: &[Type::INT8, Type::TEXT],
};

pub const DELETE_COMMENT: Statement =
    Statement { name: "delete_comment", sql: "DELETE FROM comments WHERE id = $1", params: &[Type::INT8] };

/// The columns of a log event row: 0 event_id, 1 ts, 2 service, 3 message,
/// 4 metadata (as JSON text).
///
/// A page stops at `$4` rows or, sooner, at the row whose message and
/// metadata take the running total past 1 MiB (`api::logs::PAGE_BYTES`): a
/// row is sent only if the rows before it hold less than that. The window
/// runs over the limited rows only, so the index walk still stops at `$4`.
macro_rules! log_page {
    ($filter:literal) => {
        concat!(
            "SELECT event_id, ts, service, message, metadata FROM (\
               SELECT p.*, sum(octet_length(p.message) + octet_length(p.metadata)) \
                 OVER (ORDER BY p.ts DESC, p.event_id DESC ROWS UNBOUNDED PRECEDING) \
                 - octet_length(p.message) - octet_length(p.metadata) AS before \
               FROM (SELECT event_id, ts, service, message, metadata::text AS metadata FROM log_events WHERE ",
            $filter,
            " ORDER BY ts DESC, event_id DESC LIMIT $4) p) q \
             WHERE q.before < 1048576 ORDER BY ts DESC, event_id DESC"
        )
    };
}

/// A page of one service's log events, newest first: `$1` since (inclusive),
/// `$2`/`$3` the (ts, event_id) to start below, `$4` rows, `$5` service.
/// The position is compared as (service, ts, event_id), the whole key of
/// `log_events_by_service`, so that index serves every condition; said as
/// (ts, event_id), the generic plan could pick the time index and filter by
/// service, which is slow for a rare service.
pub const LOGS_BY_SERVICE: Statement = Statement {
    name: "logs_by_service",
    sql: log_page!("service = $5 AND ts >= $1 AND (service, ts, event_id) < ($5, $2, $3)"),
    params: &[Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TEXT, Type::INT8, Type::TEXT],
};

/// [`LOGS_BY_SERVICE`] over every service (no `$5`).
pub const LOGS_ALL: Statement = Statement {
    name: "logs_all",
    sql: log_page!("ts >= $1 AND (ts, event_id) < ($2, $3)"),
    params: &[Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TEXT, Type::INT8],
};

// ---- videos -------------------------------------------------------------------

/// The select list of a video row. Columns: 0 id, 1 title, 2 size_bytes,
/// 3 content_type, 4 created_at, 5 author username, 6 bio, 7 image,
/// 8 following (the caller, `$1`, follows the author).
macro_rules! video_columns {
    () => {
        "SELECT v.id, v.title, v.size_bytes, v.content_type, v.created_at, u.username, u.bio, u.image, \
         EXISTS (SELECT 1 FROM follows w WHERE w.follower_id = $1 AND w.followee_id = v.author_id) \
         FROM videos v JOIN users u ON u.id = v.author_id "
    };
}

/// `$1` id, `$2` author, `$3` title, `$4` size, `$5` content type, `$6` storage key.
pub const INSERT_VIDEO: Statement = Statement {
    name: "insert_video",
    sql: "INSERT INTO videos (id, author_id, title, size_bytes, content_type, storage_key) \
          SELECT $1, $2, $3, $4, $5, $6 WHERE swiftlet_video_fits($2, $4, $7)",
    params: &[Type::INT8, Type::INT8, Type::TEXT, Type::INT8, Type::TEXT, Type::TEXT, Type::INT8],
};

/// The bytes author `$1`'s videos take, against the upload quota.
pub const VIDEO_BYTES_OF: Statement = Statement {
    name: "video_bytes_of",
    sql: "SELECT coalesce(sum(size_bytes), 0)::int8 FROM videos WHERE author_id = $1",
    params: &[Type::INT8],
};

/// `$2` video id.
pub const VIDEO_BY_ID: Statement = Statement {
    name: "video_by_id",
    sql: concat!(video_columns!(), "WHERE v.id = $2"),
    params: &[Type::INT8, Type::INT8],
};

/// `(author_id, storage_key, size_bytes, content_type)` of video `$1`.
pub const VIDEO_OBJECT: Statement = Statement {
    name: "video_object",
    sql: "SELECT author_id, storage_key, size_bytes, content_type FROM videos WHERE id = $1",
    params: &[Type::INT8],
};

/// Every video, newest first: `$2` limit, `$3` cursor (ids below it; 0 = from the newest).
pub const LIST_VIDEOS: Statement = Statement {
    name: "list_videos",
    sql: concat!(video_columns!(), "WHERE ($3 = 0 OR v.id < $3) ORDER BY v.id DESC LIMIT $2"),
    params: &[Type::INT8, Type::INT8, Type::INT8],
};

/// `$4` author username; otherwise as [`LIST_VIDEOS`].
pub const LIST_VIDEOS_BY_AUTHOR: Statement = Statement {
    name: "list_videos_by_author",
    sql: concat!(
        video_columns!(),
        "WHERE v.author_id = (SELECT id FROM users WHERE username = $4) AND ($3 = 0 OR v.id < $3) ",
        "ORDER BY v.id DESC LIMIT $2"
    ),
    params: &[Type::INT8, Type::INT8, Type::INT8, Type::TEXT],
};

/// Videos by the authors `$1` follows; otherwise as [`LIST_VIDEOS`].
pub const VIDEO_FEED: Statement = Statement {
    name: "video_feed",
    sql: concat!(
        video_columns!(),
        "JOIN follows f ON f.followee_id = v.author_id WHERE f.follower_id = $1 AND ($3 = 0 OR v.id < $3) ",
        "ORDER BY v.id DESC LIMIT $2"
    ),
    params: &[Type::INT8, Type::INT8, Type::INT8],
};

/// Deletes video `$1` if `$2` is its author: `(storage_key)` when it did.
pub const DELETE_VIDEO: Statement = Statement {
    name: "delete_video",
    sql: "DELETE FROM videos WHERE id = $1 AND author_id = $2 RETURNING storage_key",
    params: &[Type::INT8, Type::INT8],
};

/// A page of `(follower_id)` of those following `$1`, above `$2`, in id
/// order, at most [`FANOUT_PAGE`]: whose video feeds an upload changes.
pub const FOLLOWER_IDS: Statement = Statement {
    name: "follower_ids",
    sql: "SELECT follower_id FROM follows WHERE followee_id = $1 AND follower_id > $2 ORDER BY follower_id LIMIT 1000",
    params: &[Type::INT8, Type::INT8],
};

pub const ALL: &[&Statement] = &[
    &USER_BY_EMAIL,
    &TOKEN_GENERATION,
    &USER_BY_ID,
    &INSERT_USER,
    &UPDATE_USER,
    &USERNAME_BY_ID,
    &SLUGS_BY_AUTHOR,
    &PROFILE,
    &FOLLOW,
    &UNFOLLOW,
    &ARTICLE_BY_SLUG,
    &ARTICLE_BY_ID,
    &ARTICLE_OWNER,
    &LIST_ALL,
    &COUNT_ALL,
    &LIST_BY_AUTHOR,
    &COUNT_BY_AUTHOR,
    &LIST_BY_TAG,
    &COUNT_BY_TAG,
    &LIST_BY_FAVORITED,
    &COUNT_BY_FAVORITED,
    &LIST_FILTERED,
    &COUNT_FILTERED,
    &FEED,
    &COUNT_FEED,
    &INSERT_ARTICLE,
    &UPDATE_ARTICLE,
    &DELETE_ARTICLE,
    &FAVORITE,
    &UNFAVORITE,
    &TAGS,
    &LOGS_BY_SERVICE,
    &LOGS_ALL,
    &COUNT_AUTHOR,
    &COUNT_TAGS,
    &COUNT_TOTAL,
    &INSERT_COMMENT,
    &COMMENTS,
    &COMMENT_OWNER,
    &DELETE_COMMENT,
    &INSERT_VIDEO,
    &VIDEO_BYTES_OF,
    &VIDEO_BY_ID,
    &VIDEO_OBJECT,
    &LIST_VIDEOS,
    &LIST_VIDEOS_BY_AUTHOR,
    &VIDEO_FEED,
    &DELETE_VIDEO,
    &FOLLOWER_IDS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn parameter_counts_match_the_sql() {
        for s in ALL {
            let highest = (1..=9).rev().find(|n| s.sql.contains(&format!("${n}"))).unwrap_or(0);
            assert_eq!(highest, s.params.len(), "{}", s.name);
        }
    }
}
