//! `GET /api/profiles/:username` and `POST`/`DELETE .../follow`.
//!
//! Anonymous profile reads go through the cache; following changes nothing
//! an anonymous caller sees, only the caller's own video feed, whose cached
//! first page it invalidates.
//!
//! Follow and unfollow are idempotent: the follow edge is inserted with
//! ON CONFLICT DO NOTHING and deleted if present, and the profile is read in
//! the same batch, after the change, so the answer shows it.

use swiftlet_protocol::Status;

use super::auth::id_or_anonymous;
use super::cache::{self, Entry};
use super::{change_then_read, path_param, render, sql};
use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::request::Request;
use crate::http::response::{Response, API_JSON};
use crate::storage::postgres::BatchRows;

const PROFILE: &str = "profile";

fn send(res: &mut Response<'_>, rows: &BatchRows, query: usize) -> Result<(), AppError> {
    let row = rows.query(query).next().ok_or(AppError::ResourceNotFound { resource: PROFILE })?;
    res.try_send_with(Status::OK, API_JSON, |out| render::profile(out, &row))?;
    Ok(())
}

pub async fn get(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = id_or_anonymous(super::auth::caller(core, req).await?);
    let username = path_param(req, 2, PROFILE)?;
    let lookup = cache::lookup(&core.storage, Entry::Profile(&username), caller != 0).await;
    if lookup.serve(res) {
        return Ok(());
    }
    let pg = core.storage.pg.for_reads()?;
    let rows = pg.run(|b| b.query(&sql::PROFILE, &[&caller, &username.as_ref()])).await?;
    send(res, &rows, 0)?;
    cache::fill(&core.storage, lookup, res.body());
    Ok(())
}

pub async fn follow(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let (caller, rows) = change_then_read(core, req, PROFILE, &sql::FOLLOW, &sql::PROFILE).await?;
    cache::invalidate(&core.storage, &[Entry::VideoFeed(caller)]).await;
    send(res, &rows, 1)
}

pub async fn unfollow(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let (caller, rows) = change_then_read(core, req, PROFILE, &sql::UNFOLLOW, &sql::PROFILE).await?;
    cache::invalidate(&core.storage, &[Entry::VideoFeed(caller)]).await;
    send(res, &rows, 1)
}
