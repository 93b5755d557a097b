//! `POST /api/users/login`, `POST /api/users`, `GET /api/user`, `PUT /api/user`.
//!
//! Passwords are hashed and checked on the hashing pool ([`super::password`]);
//! the database keeps only the PHC string. Uniqueness of username and e-mail
//! is the unique indexes' job, so two registrations racing for one name cannot
//! both win; the index that refuses a row names the field in the 422.

use swiftlet_protocol::Status;

use super::auth::{self, Caller};
use super::cache::{self, Entry};
use super::requests::{Login, Registration, UserChanges};
use super::{on_constraint, password, render, sql};
use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::request::Request;
use crate::http::response::{Response, API_JSON};

pub async fn login(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let peer = req.peer();
    let Login { email, password: pass } = Login::parse(req.body)?;
    // Spent before the password is hashed; given back unless it was wrong.
    core.logins.take(email, peer, std::time::Instant::now())?;
    let checked = async {
        let pg = core.storage.pg.for_reads()?;
        let rows = pg.run(|b| b.query(&sql::USER_BY_EMAIL, &[&email])).await?;
        let row = rows.query(0).next();
        let stored = row.as_ref().map(|r| r.text(5).map(str::to_owned)).transpose()?;
        let right = password::verify(pass.to_owned(), stored).await?;
        Ok::<_, AppError>((right, rows))
    }
    .await;
    let rows = match checked {
        Ok((true, rows)) => rows,
        Ok((false, _)) => return Err(AppError::BadCredentials),
        Err(e) => {
            core.logins.refund(email, peer, std::time::Instant::now());
            return Err(e);
        }
    };
    core.logins.refund(email, peer, std::time::Instant::now());
    let row = rows.query(0).next().ok_or(AppError::BadCredentials)?;
    let token = core.tokens.issue(row.int8(0)?, row.int4(6)?)?;
    res.try_send_with(Status::OK, API_JSON, |out| render::user(out, &row, &token))?;
    Ok(())
}

pub async fn register(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let Registration { username, email, password: pass } = Registration::parse(req.body)?;
    let hash = password::hash(pass.to_owned()).await?;
    let id = core.ids.one().await?;
    let pg = core.storage.pg.for_writes()?;
    let rows = pg.run(|b| b.query(&sql::INSERT_USER, &[&username, &email, &hash, &id])).await.map_err(on_constraint)?;
    let row = rows.query(0).next().ok_or(AppError::Internal)?;
    let token = core.tokens.issue(row.int8(0)?, 0)?;
    res.try_send_with(Status::CREATED, API_JSON, |out| render::user(out, &row, &token))?;
    Ok(())
}

/// The caller's row, or 401 if their account is gone.
pub async fn current(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let Caller { id, token, .. } = auth::required(core, req).await?;
    let pg = core.storage.pg.for_reads()?;
    let rows = pg.run(|b| b.query(&sql::USER_BY_ID, &[&id])).await?;
    let row = rows.query(0).next().ok_or(AppError::Unauthenticated { problem: "names a user who no longer exists" })?;
    res.try_send_with(Status::OK, API_JSON, |out| render::user(out, &row, token))?;
    Ok(())
}

pub async fn update(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let Caller { id, token, .. } = auth::required(core, req).await?;
    let UserChanges { email, username, password: pass, bio, image } = UserChanges::parse(req.body)?;
    let hash = match pass {
        Some(p) => Some(password::hash(p.to_owned()).await?),
        None => None,
    };
    let (set_bio, bio) = (bio.is_some(), bio.flatten());
    let (set_image, image) = (image.is_some(), image.flatten());
    let pg = core.storage.pg.for_writes()?;
    // The old name is read in the same transaction as the update; after it,
    // every cached copy that shows this user as they were goes stale: their
    // profile, the first page, their articles and their followers' video
    // feeds (those two a page at a time: an author may have many).
    let rows = pg
        .run(|b| {
            b.query(&sql::USERNAME_BY_ID, &[&id])?;
            b.query(&sql::UPDATE_USER, &[&id, &email, &username, &hash, &set_bio, &bio, &set_image, &image])
        })
        .await;
    if matches!(rows, Err(crate::storage::PgError::TimedOut)) {
        // It may still commit, and the old name was to be read with it (cache, rule 4).
        cache::outcome_unknown(&core.storage);
        super::invalidate_fanout(core, id, true).await;
    }
    let rows = rows.map_err(on_constraint)?;
    let row = rows.query(1).next().ok_or(AppError::Unauthenticated { problem: "names a user who no longer exists" })?;
    let old_name = rows.query(0).next().map(|r| r.text(0)).transpose()?;
    let mut stale: Vec<Entry<'_>> = old_name.map(Entry::Profile).into_iter().collect();
    stale.push(Entry::Profile(row.text(1)?));
    stale.push(Entry::FirstPage);
    cache::invalidate(&core.storage, &stale).await;
    super::invalidate_fanout(core, id, true).await;
    // A new password moved the generation on: the token presented is dead,
    // and the answer carries one of the new generation.
    let generation = row.int4(5)?;
    core.generations.remember(id, Some(generation), std::time::Instant::now());
    let fresh;
    let token = if pass.is_some() {
        fresh = core.tokens.issue(id, generation)?;
        fresh.as_str()
    } else {
        token
    };
    res.try_send_with(Status::OK, API_JSON, |out| render::user(out, &row, token))?;
    Ok(())
}
