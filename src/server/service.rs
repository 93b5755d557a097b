//! What the connection loop asks of the application, and nothing more: the
//! loop frames requests and writes answers, the [`Service`] routes and
//! answers them. The server names no route and no handler; the application
//! (`crate::app`) implements this for its per-core state, the way hyper's
//! dispatcher calls a `Service` it knows nothing else about.
//!
//! Every method is called on the worker's own thread, one request at a time
//! per connection; the futures are not `Send` (nothing on the request path
//! leaves its core).

use std::future::Future;
use std::time::Instant;

use swiftlet_protocol::Method;

use super::body_stream::BodyStream;
use crate::http::error::AppError;
use crate::http::request::Request;
use crate::http::response::Response;

/// Which listener a connection came in on: what it may reach depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Plain HTTP or HTTPS: the product, and what the configuration leaves on it.
    Public,
    /// `--ops-listen`: /metrics, /ready and /health only.
    Ops,
}

/// One worker's application, as the connection loop sees it.
pub trait Service {
    /// A matched route: small and `Copy`, handed back to [`call`](Self::call).
    type Route: Copy + std::fmt::Debug;

    /// How many routes [`route_index`](Self::route_index) numbers (the
    /// metrics keep a slot for each).
    const ROUTES: usize;

    /// The route for a request head that came in on `listener`; an error is
    /// answered as it is (404, 405) without reading a body.
    fn route(&self, method: Method, path: &[u8], listener: Listener) -> Result<Self::Route, AppError>;

    /// The route's index in the metrics' route table.
    fn route_index(route: Self::Route) -> usize;

    /// The largest body the route accepts, in bytes (0: none; more is 413
    /// before a byte of it is read).
    fn body_limit(&self, route: Self::Route) -> u64;

    /// Whether the route reads its body as a stream ([`call_streaming`](Self::call_streaming))
    /// rather than whole from the read buffer ([`call`](Self::call)).
    fn streams_body(&self, route: Self::Route) -> bool;

    /// Answers a request whose body (if any) is whole in `req`.
    fn call(
        &self,
        route: Self::Route,
        req: &mut Request<'_>,
        res: &mut Response<'_>,
    ) -> impl Future<Output = Result<(), AppError>>;

    /// Answers a request that reads its body from `body` as it arrives.
    fn call_streaming(
        &self,
        route: Self::Route,
        req: &mut Request<'_>,
        body: &mut BodyStream<'_>,
        res: &mut Response<'_>,
    ) -> impl Future<Output = Result<(), AppError>>;

    /// At shutdown, once no connection is left (or the deadline ended the
    /// wait): finish what was acknowledged, by `deadline`.
    fn drain(&self, deadline: Instant) -> impl Future<Output = ()>;
}
