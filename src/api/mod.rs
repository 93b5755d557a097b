//! The product API: the RealWorld "Conduit" backend (shared/conduit-api.md),
//! under `/api`.
//!
//! One module per resource, each owning its handlers (the SQL is in [`sql`]):
//! [`users`] (registration, login, the current user), [`profiles`] (and
//! follows), [`articles`] (lists, the feed, CRUD, favorites, tags) and
//! [`comments`], [`videos`] (uploads, playback and the video feed), and [`logs`] (the ingested log events, read back). [`auth`] turns the Authorization header into a caller,
//! [`password`] hashes off the event loop, [`input`] reads a request's fields and
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
pub mod input;
pub mod logs;
pub mod password;
pub mod profiles;
pub mod render;
pub mod requests;
pub mod slug;
pub mod sql;
pub mod throttle;
pub mod users;
pub mod videos;

use std::borrow::Cow;

use crate::error::AppError;
use crate::request::Request;
use crate::router::Segments;
use crate::storage::postgres::BatchRows;
use crate::storage::statements::Statement;
use crate::storage::PgError;
use crate::worker::Worker;

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
    worker: &Worker,
    req: &Request<'_>,
    resource: &'static str,
    change: &Statement,
    read: &Statement,
) -> Result<(i64, BatchRows), AppError> {
    let caller = auth::required(worker, req).await?.id;
    let name = path_param(req, 2, resource)?;
    let name = name.as_ref();
    let pg = worker.storage.pg.for_writes()?;
    let rows = pg
        .run(|b| {
            b.query(change, &[&caller, &name])?;
            b.query(read, &[&caller, &name])
        })
        .await
        .map_err(on_constraint)?;
    Ok((caller, rows))
}

/// Path segment `index` of the request, percent-decoded; a segment that does
/// not decode names nothing, so it is a 404 for `resource`.
fn path_param<'b>(req: &Request<'b>, index: usize, resource: &'static str) -> Result<Cow<'b, str>, AppError> {
    let missing = AppError::ResourceNotFound { resource };
    let segments = Segments::split(req.path()).ok_or(missing)?;
    let raw = segments.as_slice().get(index).copied().ok_or(missing)?;
    input::decode(raw, false).ok_or(missing)
}
