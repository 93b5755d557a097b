//! Request handlers, one module per resource, and the dispatch from a matched
//! [`Route`] to its handler.
//!
//! Handlers are async so later ones can await the database; the ones here
//! finish in their first poll. A handler writes its answer into the
//! [`Response`] and returns `Err` for anything the client did wrong.

mod fault;
mod hello;
pub mod ingest;

use crate::config::Config;
use crate::error::AppError;
use crate::request::Request;
use crate::response::Response;
use crate::router::Route;

/// The largest body each route accepts. Routes that take no body accept none:
/// a body sent to them is refused with 413 before it is read.
pub fn body_limit(route: Route, config: &Config) -> u64 {
    match route {
        Route::Ingest => config.ingest_body_limit,
        Route::Health | Route::Plaintext | Route::Json | Route::TestPanic | Route::TestSleep => 0,
    }
}

pub async fn dispatch(route: Route, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    match route {
        Route::Health => hello::health(res),
        Route::Plaintext => hello::plaintext(res),
        Route::Json => hello::json(res),
        Route::Ingest => ingest::ingest(req, res)?,
        Route::TestPanic => fault::panic(),
        Route::TestSleep => fault::sleep(req, res).await,
    }
    Ok(())
}
