//! Request handlers, one module per resource, and the dispatch from a matched
//! [`Route`] to its handler.
//!
//! Handlers are async so they can await the worker's database and cache
//! connections; the fixed ones finish in their first poll. A handler writes its answer into the
//! [`Response`] and returns `Err` for anything the client did wrong.

mod fault;
mod fortunes;
mod hello;
pub mod ingest;
pub mod world;

use crate::config::Config;
use crate::error::AppError;
use crate::request::Request;
use crate::response::Response;
use crate::router::Route;
use crate::worker::Worker;

/// The largest body each route accepts. Routes that take no body accept none:
/// a body sent to them is refused with 413 before it is read.
pub fn body_limit(route: Route, config: &Config) -> u64 {
    match route {
        Route::Ingest => config.ingest_body_limit,
        Route::Health
        | Route::Plaintext
        | Route::Json
        | Route::Db
        | Route::Queries
        | Route::Updates
        | Route::Fortunes
        | Route::CachedQueries
        | Route::TestPanic
        | Route::TestSleep => 0,
    }
}

pub async fn dispatch(
    route: Route,
    worker: &Worker,
    req: &mut Request<'_>,
    res: &mut Response<'_>,
) -> Result<(), AppError> {
    match route {
        Route::Health => hello::health(res),
        Route::Plaintext => hello::plaintext(res),
        Route::Json => hello::json(res),
        Route::Ingest => ingest::ingest(req, res)?,
        Route::Db => world::db(worker, res).await?,
        Route::Queries => world::queries(worker, req, res).await?,
        Route::Updates => world::updates(worker, req, res).await?,
        Route::Fortunes => fortunes::fortunes(worker, res).await?,
        Route::CachedQueries => world::cached_queries(worker, req, res).await?,
        Route::TestPanic => fault::panic(),
        Route::TestSleep => fault::sleep(req, res).await,
    }
    Ok(())
}
