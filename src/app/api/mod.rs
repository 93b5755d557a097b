//! The product API: the RealWorld "Conduit" backend (shared/conduit-api.md),
//! under `/api`.
//!
//! One module per resource, each owning its handlers (the SQL is in [`sql`]):
//! [`users`] (registration, login, the current user), [`profiles`] (and
//! follows), [`articles`] (lists, the feed, CRUD, favorites, tags) and
//! [`comments`], [`videos`] (uploads, playback and the video feed; [`orphans`] sweeps objects no row names), and [`logs`] (the ingested log events, read back). [`auth`] turns the Authorization header into a caller,
//! [`tokens`] signs and checks tokens (with [`hs256`]), [`password`] hashes off the event loop, [`input`] reads a request's fields and
//! [`requests`] names the bodies,
//! [`render`] writes the response documents and [`cache`] keeps the hot
//! anonymous reads in Redis.
//!
//! Every handler reads and writes through the worker's pipelined PostgreSQL
//! connections: the statements a request needs go out as one batch (one
//! round-trip, one implicit transaction) wherever the second does not depend
//! on the first's answer.

pub mod articles;
pub mod auth;
pub mod cache;
pub mod comments;
pub mod hs256;
pub mod input;
pub mod logs;
pub mod orphans;
pub mod password;
pub mod profiles;
pub mod render;
pub mod requests;
pub mod slug;
pub mod sql;
pub mod throttle;
pub mod tokens;
pub mod users;
pub mod videos;

use std::borrow::Cow;

use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::request::Request;
use crate::http::router::Segments;
use crate::storage::postgres::BatchRows;
use crate::storage::statements::Statement;
use crate::storage::PgError;

/// A database error as the client's mistake where a constraint names one:
/// the one place constraint names become 422s.
fn on_constraint(error: PgError) -> AppError {
    let PgError::Violation { constraint } = &error else {
        return error.into();
    };
    let (field, problem) = match constraint.as_str() {
        "users_username_key" => ("username", "has already been taken"),
        "users_email_key" => ("email", "has already been taken"),
        "follows_not_self" => ("profile", "you cannot follow yourself"),
        _ => return error.into(),
    };
    AppError::InvalidField { field, problem }
}

/// The shape of follow, unfavorite and the like: the caller changes the thing
/// path segment 2 names, then reads it back as they now see it, in one batch
/// (so one transaction) on a write connection. Both statements take
/// `(caller, name)`; the read's rows are query 1 of the result. Returns the
/// caller's id with them.
async fn change_then_read(
    core: &Core,
    req: &Request<'_>,
    resource: &'static str,
    change: &Statement,
    read: &Statement,
) -> Result<(i64, BatchRows), AppError> {
    let caller = auth::required(core, req).await?.id;
    let name = path_param(req, 2, resource)?;
    let name = name.as_ref();
    let pg = core.storage.pg.for_writes()?;
    let rows = pg
        .run(|b| {
            b.query(change, &[&caller, &name])?;
            b.query(read, &[&caller, &name])
        })
        .await;
    if matches!(rows, Err(crate::storage::PgError::TimedOut)) {
        // It may still commit; the callers' entries are theirs to name.
        cache::outcome_unknown(&core.storage);
    }
    Ok((caller, rows.map_err(on_constraint)?))
}

/// The fan-out of a write that committed (or may have): `author`'s cached
/// articles if `articles`, and their followers' feeds. Should a page of it
/// fail, this worker reads around the cache for a TTL instead (cache, rule 4):
/// the write stands, and its answer does not depend on the cache.
async fn invalidate_fanout(core: &Core, author: i64, articles: bool) {
    let articles = async {
        if articles {
            invalidate_author_articles(core, author).await
        } else {
            Ok(())
        }
    };
    if articles.await.is_err() || invalidate_follower_feeds(core, author).await.is_err() {
        cache::outcome_unknown(&core.storage);
    }
}

/// After a write that changes what `author`'s followers see: invalidates
/// their cached video feeds, a page of followers at a time, so the work and
/// memory of one round-trip stay bounded however many there are. Read after
/// the commit, the followers include everyone who followed before it.
async fn invalidate_follower_feeds(core: &Core, author: i64) -> Result<(), AppError> {
    let mut after = 0i64;
    loop {
        let pg = core.storage.pg.for_reads()?;
        let rows = pg.run(|b| b.query(&sql::FOLLOWER_IDS, &[&author, &after])).await?;
        let ids = rows.query(0).map(|r| r.int8(0)).collect::<Result<Vec<_>, _>>()?;
        let feeds: Vec<cache::Entry<'_>> = ids.iter().map(|&id| cache::Entry::VideoFeed(id)).collect();
        cache::invalidate(&core.storage, &feeds).await;
        match ids.last() {
            Some(&last) if ids.len() == sql::FANOUT_PAGE => after = last,
            _ => return Ok(()),
        }
    }
}

/// After a write that changes how `author` shows in their articles:
/// invalidates every cached article of theirs, a page at a time.
async fn invalidate_author_articles(core: &Core, author: i64) -> Result<(), AppError> {
    let mut below = (crate::storage::postgres::Timestamptz(i64::MAX), i64::MAX);
    loop {
        let pg = core.storage.pg.for_reads()?;
        let rows = pg.run(|b| b.query(&sql::SLUGS_BY_AUTHOR, &[&author, &below.0, &below.1])).await?;
        let mut slugs = Vec::with_capacity(sql::FANOUT_PAGE);
        let mut last = None;
        for row in rows.query(0) {
            slugs.push(row.text(0)?);
            last = Some((row.timestamp_micros(1)?, row.int8(2)?));
        }
        let entries: Vec<cache::Entry<'_>> = slugs.iter().map(|s| cache::Entry::Article(s)).collect();
        cache::invalidate(&core.storage, &entries).await;
        match last {
            Some((at, id)) if slugs.len() == sql::FANOUT_PAGE => {
                below = (crate::storage::postgres::Timestamptz(at), id)
            }
            _ => return Ok(()),
        }
    }
}

/// Path segment `index` of the request, percent-decoded; a segment that does
/// not decode names nothing, so it is a 404 for `resource`.
fn path_param<'b>(req: &Request<'b>, index: usize, resource: &'static str) -> Result<Cow<'b, str>, AppError> {
    let missing = AppError::ResourceNotFound { resource };
    let segments = Segments::split(req.path()).ok_or(missing)?;
    let raw = segments.as_slice().get(index).copied().ok_or(missing)?;
    input::decode(raw, false).ok_or(missing)
}
