//! `POST/GET /api/articles/:slug/comments` and
//! `DELETE /api/articles/:slug/comments/:id`.
//!
//! Comments are listed oldest first. A comment id that is not a number, or
//! that belongs to another article, is a 404, like one that does not exist.
//!
//! Bound: a list holds at most [`MAX_LIMIT`] comments (the default, so a
//! front end that reads the spec's plain list gets them all unless an article
//! has more); `?limit=&offset=` pages through more. With comment bodies and
//! profiles capped (`requests`), a list stays under about 2.5 MiB.

use swiftlet_protocol::Status;

use super::auth::id_or_anonymous;
use super::input::count_param;
use super::requests::NewComment;
use super::{path_param, render, sql};
use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::request::Request;
use crate::http::response::{Response, API_JSON};

const ARTICLE: &str = "article";
const COMMENT: &str = "comment";
/// The most comments one answer holds.
pub const MAX_LIMIT: i64 = 200;

pub async fn add(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = super::auth::required(core, req).await?.id;
    let slug = path_param(req, 2, ARTICLE)?.into_owned();
    let NewComment { body } = NewComment::parse(req.body)?;
    let pg = core.storage.pg.for_writes()?;
    let rows = pg.run(|b| b.query(&sql::INSERT_COMMENT, &[&caller, &slug.as_str(), &body])).await?;
    let row = rows.query(0).next().ok_or(AppError::ResourceNotFound { resource: ARTICLE })?;
    res.try_send_with(Status::OK, API_JSON, |out| render::comment(out, &row))?;
    Ok(())
}

pub async fn list(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = id_or_anonymous(super::auth::caller(core, req).await?);
    let slug = path_param(req, 2, ARTICLE)?;
    let slug = slug.as_ref();
    let limit = count_param(req.query_param("limit"), "limit", MAX_LIMIT, 1)?.min(MAX_LIMIT);
    let offset = count_param(req.query_param("offset"), "offset", 0, 0)?;
    let pg = core.storage.pg.for_reads()?;
    let rows = pg
        .run(|b| {
            b.query(&sql::ARTICLE_OWNER, &[&slug])?;
            b.query(&sql::COMMENTS, &[&caller, &slug, &limit, &offset])
        })
        .await?;
    if rows.query(0).next().is_none() {
        return Err(AppError::ResourceNotFound { resource: ARTICLE });
    }
    res.try_send_with(Status::OK, API_JSON, |out| render::comments(out, rows.query(1)))?;
    Ok(())
}

pub async fn delete(core: &Core, req: &mut Request<'_>, _res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = super::auth::required(core, req).await?.id;
    let slug = path_param(req, 2, ARTICLE)?;
    let missing = AppError::ResourceNotFound { resource: COMMENT };
    let id: i64 = path_param(req, 4, COMMENT)?.parse().map_err(|_| missing)?;
    let pg = core.storage.pg.for_reads()?;
    let rows = pg.run(|b| b.query(&sql::COMMENT_OWNER, &[&id, &slug.as_ref()])).await?;
    let author = rows.query(0).next().ok_or(missing)?.int8(0)?;
    if author != caller {
        return Err(AppError::Forbidden { resource: COMMENT });
    }
    let pg = core.storage.pg.for_writes()?;
    pg.run(|b| b.query(&sql::DELETE_COMMENT, &[&id])).await?;
    Ok(())
}
