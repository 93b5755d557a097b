//! The dispatch from a matched [`Route`] to its handler, what the connection
//! loop asks of a route before it runs (its body limit and whether it streams
//! its body), and the [`Service`] the loop calls: all of it over a worker's
//! [`Core`].
//!
//! Handlers are async so they can await the worker's database and cache
//! connections; the fixed ones finish in their first poll. A handler writes its answer into the
//! [`Response`] and returns `Err` for anything the client did wrong.

use super::api;
use super::bench::{fortunes, hello, world};
use super::ops::{fault, ready};
use super::{ids, ingest};

use std::time::Instant;

use swiftlet_protocol::Method;

use crate::app::core::Core;
use crate::config::Config;
use crate::http::error::AppError;
use crate::http::request::Request;
use crate::http::response::{Cors, Response};
use crate::http::router::{self, Body, Class, Route};
use crate::server::body_stream::BodyStream;
use crate::server::service::{Listener, Service};

/// The largest body each route accepts. Routes that take no body accept none:
/// a body sent to them is refused with 413 before it is read.
pub fn body_limit(route: Route, config: &Config) -> u64 {
    match route.body() {
        Body::None => 0,
        // Clients send a JSON content type, and sometimes an irrelevant body,
        // even where the route reads none (shared/conduit-api.md §1): accept
        // and ignore it rather than refuse it. (A streamed body is bounded by
        // its handler; this limit is never applied to it.)
        Body::Api | Body::Stream => config.api_body_limit,
        Body::Ingest => config.ingest_body_limit,
        Body::IngestBatch => config.ingest_batch_body_limit,
    }
}

pub async fn dispatch(
    route: Route,
    core: &Core,
    req: &mut Request<'_>,
    res: &mut Response<'_>,
) -> Result<(), AppError> {
    // The product API's answers carry CORS headers, for browser front ends;
    // the log service's do not (a server-to-server API behind a token, which
    // no page on another origin should read).
    if route.class() == Class::Api {
        // Set first, so an error answer carries it too: browsers on another
        // origin must be able to read the error body.
        res.set_cors(Cors::Simple);
    }
    if matches!(route.class(), Class::Ingest | Class::Logs) {
        core.log_access.check(req)?;
    }
    match route {
        Route::Health => hello::health(res),
        Route::Ready => Box::pin(ready::ready(core, res)).await?,
        Route::Metrics => res.send_with(swiftlet_protocol::Status::OK, crate::http::response::PROMETHEUS, |out| {
            crate::metrics::registry().render(out)
        }),
        Route::Plaintext => hello::plaintext(res),
        Route::Json => hello::json(res),
        Route::Ingest => ingest::ingest(core, req, res).await?,
        // Boxed from here on: these futures are the largest, and inline the
        // biggest of them would set the size of every connection's task, idle
        // ones included (server::connection's module comment). Each of these
        // routes allocates already (rows, a oneshot to a store's driver, a
        // batch's receipts), so one allocation more is small beside its round
        // trip. Inline and allocation-free stay the routes tests/allocations.rs
        // counts: the static ones above, one event's ingestion, and IDs.
        Route::IngestBatch => Box::pin(ingest::ingest_batch(core, req, res)).await?,
        Route::Db => Box::pin(world::db(core, res)).await?,
        Route::Queries => Box::pin(world::queries(core, req, res)).await?,
        Route::Updates => Box::pin(world::updates(core, req, res)).await?,
        Route::Fortunes => Box::pin(fortunes::fortunes(core, res)).await?,
        Route::CachedQueries => Box::pin(world::cached_queries(core, req, res)).await?,
        Route::Login => Box::pin(api::users::login(core, req, res)).await?,
        Route::Register => Box::pin(api::users::register(core, req, res)).await?,
        Route::CurrentUser => Box::pin(api::users::current(core, req, res)).await?,
        Route::UpdateUser => Box::pin(api::users::update(core, req, res)).await?,
        Route::Profile => Box::pin(api::profiles::get(core, req, res)).await?,
        Route::Follow => Box::pin(api::profiles::follow(core, req, res)).await?,
        Route::Unfollow => Box::pin(api::profiles::unfollow(core, req, res)).await?,
        Route::ListArticles => Box::pin(api::articles::list(core, req, res)).await?,
        Route::Feed => Box::pin(api::articles::feed(core, req, res)).await?,
        Route::Article => Box::pin(api::articles::get(core, req, res)).await?,
        Route::CreateArticle => Box::pin(api::articles::create(core, req, res)).await?,
        Route::UpdateArticle => Box::pin(api::articles::update(core, req, res)).await?,
        Route::DeleteArticle => Box::pin(api::articles::delete(core, req, res)).await?,
        Route::AddComment => Box::pin(api::comments::add(core, req, res)).await?,
        Route::Comments => Box::pin(api::comments::list(core, req, res)).await?,
        Route::DeleteComment => Box::pin(api::comments::delete(core, req, res)).await?,
        Route::Favorite => Box::pin(api::articles::favorite(core, req, res)).await?,
        Route::Unfavorite => Box::pin(api::articles::unfavorite(core, req, res)).await?,
        Route::Tags => Box::pin(api::articles::tags(core, res)).await?,
        Route::Ids => ids::generate(core, req, res).await?,
        Route::DecodeId => ids::decode(core, req, res)?,
        Route::Logs => Box::pin(api::logs::list(core, req, res)).await?,
        // Its body is streamed, through `dispatch_streaming`.
        Route::CreateVideo => return Err(AppError::Internal),
        Route::ListVideos => Box::pin(api::videos::list(core, req, res)).await?,
        Route::VideoFeed => Box::pin(api::videos::feed(core, req, res)).await?,
        Route::Video => Box::pin(api::videos::get(core, req, res)).await?,
        Route::DeleteVideo => Box::pin(api::videos::delete(core, req, res)).await?,
        Route::VideoContent => Box::pin(api::videos::content(core, req, res)).await?,
        Route::Preflight => res.set_cors(Cors::Preflight),
        Route::Allocations => {
            let count = crate::metrics::allocations::calls();
            res.send_with(swiftlet_protocol::Status::OK, crate::http::response::TEXT, |out| {
                crate::http::json::write_int(out, count as i64)
            })
        }
        Route::TestPanic => fault::panic(),
        Route::TestSleep => fault::sleep(req, res).await,
    }
    Ok(())
}

/// Whether a route reads its body as a stream (through
/// [`dispatch_streaming`]) rather than whole from the read buffer.
pub fn streams_body(route: Route) -> bool {
    route.body() == Body::Stream
}

/// Runs a route whose body is streamed (see [`streams_body`]).
pub async fn dispatch_streaming(
    route: Route,
    core: &Core,
    req: &mut Request<'_>,
    body: &mut BodyStream<'_>,
    res: &mut Response<'_>,
) -> Result<(), AppError> {
    res.set_cors(Cors::Simple);
    match route {
        Route::CreateVideo => api::videos::create(core, req, body, res).await,
        _ => Err(AppError::Internal),
    }
}

/// The connection loop's view of the application.
impl Service for Core {
    type Route = Route;
    const ROUTES: usize = Route::ALL.len();

    fn route(&self, method: Method, path: &[u8], listener: Listener) -> Result<Route, AppError> {
        self.expose(router::route(method, path, self.config.test_routes), listener)
    }

    fn route_index(route: Route) -> usize {
        route as usize
    }

    fn body_limit(&self, route: Route) -> u64 {
        body_limit(route, &self.config)
    }

    fn streams_body(&self, route: Route) -> bool {
        streams_body(route)
    }

    // The handler's future itself, not one wrapped around it: it is part of
    // every connection's future, where each byte counts (see `answer`).
    fn call(
        &self,
        route: Route,
        req: &mut Request<'_>,
        res: &mut Response<'_>,
    ) -> impl std::future::Future<Output = Result<(), AppError>> {
        dispatch(route, self, req, res)
    }

    fn call_streaming(
        &self,
        route: Route,
        req: &mut Request<'_>,
        body: &mut BodyStream<'_>,
        res: &mut Response<'_>,
    ) -> impl std::future::Future<Output = Result<(), AppError>> {
        dispatch_streaming(route, self, req, body, res)
    }

    async fn drain(&self, deadline: Instant) {
        // Queued events were acknowledged: store them before exiting.
        self.ingest.close();
        while self.ingest.depth() > 0 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        if self.ingest.depth() > 0 {
            tracing::error!(events = self.ingest.depth(), "shutdown timeout: queued log events not stored");
        }
        if let Some(writer) = self.ingest_writer.borrow_mut().take() {
            writer.abort();
        }
    }
}
