//! Articles: `GET /api/articles` (filters, pagination), `GET /api/articles/feed`,
//! `GET/PUT/DELETE /api/articles/:slug`, `POST /api/articles`,
//! `POST/DELETE /api/articles/:slug/favorite`, and `GET /api/tags`.
//!
//! Each list is one batch of two statements, the page and the total count
//! (`articlesCount` counts every match, not the page). Writes return the
//! article as the caller now sees it, read in the same batch after the change.
//! Slugs are unique by index; a clash retries with a random suffix, so a
//! second article with the same title is created, never refused.

use swiftlet_protocol::Status;

use super::auth::id_or_anonymous;
use super::cache::{self, Entry, Lookup};
use super::input;
use super::requests::{ArticleChanges, NewArticle};
use super::{change_then_read, path_param, render, slug, sql};
use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::request::Request;
use crate::http::response::{Response, API_JSON};
use crate::storage::postgres::{Batch, BatchRows};
use crate::storage::statements::Statement;
use crate::storage::PgError;

const ARTICLE: &str = "article";
/// Default and largest page (shared/conduit-api.md §6.3 allows a generous cap).
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 200;
/// Offsets beyond this skip past any real table; capping them keeps
/// `limit + offset` (the feed's per-author bound) far from overflow.
const MAX_OFFSET: i64 = 1_000_000_000;
/// Attempts at a unique slug: the plain one, then random suffixes.
const SLUG_ATTEMPTS: usize = 4;

fn not_found() -> AppError {
    AppError::ResourceNotFound { resource: ARTICLE }
}

/// `limit` and `offset` from the query string.
fn page(req: &Request<'_>) -> Result<(i64, i64), AppError> {
    let limit = input::count_param(req.query_param("limit"), "limit", DEFAULT_LIMIT, 1)?.min(MAX_LIMIT);
    let offset = input::count_param(req.query_param("offset"), "offset", 0, 0)?.min(MAX_OFFSET);
    Ok((limit, offset))
}

/// A filter's value from the query string; present but empty counts as absent.
fn filter<'b>(req: &Request<'b>, name: &'static str) -> Result<Option<std::borrow::Cow<'b, str>>, AppError> {
    match req.query_param(name) {
        None | Some(b"") => Ok(None),
        Some(raw) => input::decode(raw, true)
            .map(Some)
            .ok_or(AppError::InvalidField { field: name, problem: "is not valid percent-encoded UTF-8" }),
    }
}

fn send_list(res: &mut Response<'_>, rows: &BatchRows) -> Result<(), AppError> {
    let count = rows.query(1).next().ok_or(AppError::Internal)?.int8(0)?;
    res.try_send_with(Status::OK, API_JSON, |out| render::article_list(out, rows.query(0), count))?;
    Ok(())
}

fn send_article(res: &mut Response<'_>, rows: &BatchRows, query: usize, status: Status) -> Result<(), AppError> {
    let row = rows.query(query).next().ok_or_else(not_found)?;
    res.try_send_with(status, API_JSON, |out| render::article(out, &row))?;
    Ok(())
}

pub async fn list(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = id_or_anonymous(super::auth::caller(core, req).await?);
    let (limit, offset) = page(req)?;
    let author = filter(req, "author")?;
    let tag = filter(req, "tag")?;
    let favorited = filter(req, "favorited")?;
    let (author, tag, favorited) = (author.as_deref(), tag.as_deref(), favorited.as_deref());
    let first_page = (author, tag, favorited, limit, offset) == (None, None, None, DEFAULT_LIMIT, 0);
    let lookup = match first_page {
        true => cache::lookup(&core.storage, Entry::FirstPage, caller != 0).await,
        false => Lookup::Bypass,
    };
    if lookup.serve(res) {
        return Ok(());
    }
    let pg = core.storage.pg.for_reads()?;
    let rows = pg
        .run(|b| {
            let single: Option<(&Statement, &Statement, &str)> = match (author, tag, favorited) {
                (None, None, None) => {
                    b.query(&sql::LIST_ALL, &[&caller, &limit, &offset])?;
                    return b.query(&sql::COUNT_ALL, &[]);
                }
                (Some(a), None, None) => Some((&sql::LIST_BY_AUTHOR, &sql::COUNT_BY_AUTHOR, a)),
                (None, Some(t), None) => Some((&sql::LIST_BY_TAG, &sql::COUNT_BY_TAG, t)),
                (None, None, Some(f)) => Some((&sql::LIST_BY_FAVORITED, &sql::COUNT_BY_FAVORITED, f)),
                _ => None,
            };
            match single {
                Some((list, count, value)) => {
                    b.query(list, &[&caller, &limit, &offset, &value])?;
                    b.query(count, &[&value])
                }
                None => {
                    b.query(&sql::LIST_FILTERED, &[&caller, &limit, &offset, &author, &tag, &favorited])?;
                    b.query(&sql::COUNT_FILTERED, &[&author, &tag, &favorited])
                }
            }
        })
        .await?;
    send_list(res, &rows)?;
    cache::fill(&core.storage, lookup, res.body());
    Ok(())
}

pub async fn feed(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = super::auth::required(core, req).await?.id;
    let (limit, offset) = page(req)?;
    let pg = core.storage.pg.for_reads()?;
    let rows = pg
        .run(|b| {
            b.query(&sql::FEED, &[&caller, &limit, &offset])?;
            b.query(&sql::COUNT_FEED, &[&caller])
        })
        .await?;
    send_list(res, &rows)
}

pub async fn get(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = id_or_anonymous(super::auth::caller(core, req).await?);
    let slug = path_param(req, 2, ARTICLE)?;
    let lookup = cache::lookup(&core.storage, Entry::Article(&slug), caller != 0).await;
    if lookup.serve(res) {
        return Ok(());
    }
    let pg = core.storage.pg.for_reads()?;
    let rows = pg.run(|b| b.query(&sql::ARTICLE_BY_SLUG, &[&caller, &slug.as_ref()])).await?;
    send_article(res, &rows, 0, Status::OK)?;
    cache::fill(&core.storage, lookup, res.body());
    Ok(())
}

fn slug_taken(e: &PgError) -> bool {
    matches!(e, PgError::Violation { constraint } if constraint == "articles_slug_key")
}

pub async fn create(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = super::auth::required(core, req).await?.id;
    let NewArticle { title, description, body, tags } = NewArticle::parse(req.body)?;
    let base = slug::slugify(title);
    let mut slug = base.clone();
    let id = core.ids.one().await?;
    for _ in 0..SLUG_ATTEMPTS {
        let pg = core.storage.pg.for_writes()?;
        let attempt = pg
            .run(|b| {
                b.query(&sql::INSERT_ARTICLE, &[&slug.as_str(), &caller, &title, &description, &body, &tags, &id])?;
                count(b, caller, &tags, 1)?;
                b.query(&sql::ARTICLE_BY_SLUG, &[&caller, &slug.as_str()])
            })
            .await;
        let mut stale = vec![Entry::FirstPage];
        if !tags.is_empty() {
            stale.push(Entry::Tags);
        }
        match cache::if_unknown(&core.storage, attempt, &stale).await {
            Ok(rows) => {
                cache::invalidate(&core.storage, &stale).await;
                let read_back = rows.queries() - 1;
                return send_article(res, &rows, read_back, Status::CREATED);
            }
            Err(e) if slug_taken(&e) => slug = slug::with_suffix(&base),
            Err(PgError::Violation { constraint }) if constraint == "articles_author_id_fkey" => {
                // The author's account is gone (the foreign key refused the row).
                return Err(AppError::Unauthenticated { problem: "names a user who no longer exists" });
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::error!(slug = %base, "no free slug after {SLUG_ATTEMPTS} attempts");
    Err(AppError::Internal)
}

/// Adds the counter updates for an article by `author` with `tags` coming
/// (`delta` 1) or going (-1), in the order `api::sql` prescribes.
fn count(b: &mut Batch<'_>, author: i64, tags: &[&str], delta: i32) -> Result<(), PgError> {
    b.query(&sql::COUNT_AUTHOR, &[&author, &delta])?;
    if !tags.is_empty() {
        b.query(&sql::COUNT_TAGS, &[&tags, &delta])?;
    }
    let shard = fastrand::i32(0..16);
    b.query(&sql::COUNT_TOTAL, &[&shard, &i64::from(delta)])
}

/// What the caller may change: the article's id, title and tags, if it is
/// theirs: 404 if there is no such article, 403 if it is someone else's.
struct Owned {
    id: i64,
    title: String,
    tags: Vec<String>,
}

async fn owned(core: &Core, slug: &str, caller: i64) -> Result<Owned, AppError> {
    let pg = core.storage.pg.for_reads()?;
    let rows = pg.run(|b| b.query(&sql::ARTICLE_OWNER, &[&slug])).await?;
    let row = rows.query(0).next().ok_or_else(not_found)?;
    if row.int8(1)? != caller {
        return Err(AppError::Forbidden { resource: ARTICLE });
    }
    let tags = row.text_array(3)?.into_iter().map(str::to_owned).collect();
    Ok(Owned { id: row.int8(0)?, title: row.text(2)?.to_owned(), tags })
}

pub async fn update(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = super::auth::required(core, req).await?.id;
    let current = path_param(req, 2, ARTICLE)?.into_owned();
    let ArticleChanges { title, description, body } = ArticleChanges::parse(req.body)?;
    let Owned { id, title: old_title, .. } = owned(core, &current, caller).await?;
    // A new title means a new slug (§3.1.12); the same title keeps the old one.
    let base = title.filter(|t| *t != old_title).map(slug::slugify);
    let mut new_slug = base.clone();
    for _ in 0..SLUG_ATTEMPTS {
        let pg = core.storage.pg.for_writes()?;
        let attempt = pg
            .run(|b| {
                b.query(&sql::UPDATE_ARTICLE, &[&id, &new_slug, &title, &description, &body])?;
                b.query(&sql::ARTICLE_BY_ID, &[&caller, &id])
            })
            .await;
        let attempt = {
            let slug = new_slug.as_deref().unwrap_or(&current);
            let stale = [Entry::Article(&current), Entry::Article(slug), Entry::FirstPage];
            cache::if_unknown(&core.storage, attempt, &stale).await
        };
        match (attempt, &base) {
            (Ok(rows), _) => {
                let slug = new_slug.as_deref().unwrap_or(&current);
                let stale = [Entry::Article(&current), Entry::Article(slug), Entry::FirstPage];
                cache::invalidate(&core.storage, &stale).await;
                return send_article(res, &rows, 1, Status::OK);
            }
            (Err(e), Some(base)) if slug_taken(&e) => new_slug = Some(slug::with_suffix(base)),
            (Err(e), _) => return Err(e.into()),
        }
    }
    Err(AppError::Internal)
}

pub async fn delete(core: &Core, req: &mut Request<'_>, _res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = super::auth::required(core, req).await?.id;
    let slug = path_param(req, 2, ARTICLE)?;
    let article = owned(core, &slug, caller).await?;
    let tags: Vec<&str> = article.tags.iter().map(String::as_str).collect();
    let pg = core.storage.pg.for_writes()?;
    let deleted = pg
        .run(|b| {
            b.query(&sql::DELETE_ARTICLE, &[&article.id])?;
            count(b, caller, &tags, -1)
        })
        .await;
    let stale = [Entry::Article(&slug), Entry::FirstPage, Entry::Tags];
    match cache::if_unknown(&core.storage, deleted, &stale).await {
        Ok(_) => {}
        // Another delete got there first and moved the counters itself.
        Err(PgError::Gone) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    }
    cache::invalidate(&core.storage, &stale).await;
    // The response stays the empty 204 it starts as.
    Ok(())
}

pub async fn favorite(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    set_favorite(core, req, res, &sql::FAVORITE).await
}

pub async fn unfavorite(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    set_favorite(core, req, res, &sql::UNFAVORITE).await
}

/// Favorite or unfavorite: the count in every cached copy changes.
async fn set_favorite(
    core: &Core,
    req: &mut Request<'_>,
    res: &mut Response<'_>,
    change: &Statement,
) -> Result<(), AppError> {
    let (_, rows) = change_then_read(core, req, ARTICLE, change, &sql::ARTICLE_BY_SLUG).await?;
    let slug = path_param(req, 2, ARTICLE)?;
    cache::invalidate(&core.storage, &[Entry::Article(&slug), Entry::FirstPage]).await;
    send_article(res, &rows, 1, Status::OK)
}

/// The same for every caller, so cached for everyone.
pub async fn tags(core: &Core, res: &mut Response<'_>) -> Result<(), AppError> {
    let lookup = cache::lookup(&core.storage, Entry::Tags, false).await;
    if lookup.serve(res) {
        return Ok(());
    }
    let pg = core.storage.pg.for_reads()?;
    let rows = pg.run(|b| b.query(&sql::TAGS, &[])).await?;
    res.try_send_with(Status::OK, API_JSON, |out| render::tags(out, rows.query(0)))?;
    cache::fill(&core.storage, lookup, res.body());
    Ok(())
}
