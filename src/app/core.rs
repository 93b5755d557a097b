//! One worker's application: the state every handler reaches (its stores,
//! token keys, ID issuer, ingest queue, login budgets), built on the
//! worker's thread, and the [`Service`] the connection loop calls.
//!
//! What a listener may reach is decided here too: each [`Listener`] has a
//! bitmask of the routes it serves, so a route off a listener is a 404, as if
//! it did not exist.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use swiftlet_protocol::Method;

use super::api::auth::{Generations, Tokens};
use super::api::throttle::LoginThrottle;
use super::dispatch;
use crate::config::Config;
use crate::http::error::AppError;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::router::{self, Route};
use crate::ids::issue::Issuer;
use crate::ingest::access::LogAccess;
use crate::ingest::{writer, IngestQueue};
use crate::metrics::WorkerMetrics;
use crate::server::body_stream::BodyStream;
use crate::server::service::{Listener, Service};
use crate::storage::objects::ObjectStorage;
use crate::storage::statements::StatementLists;
use crate::storage::Storage;

/// What every PostgreSQL connection prepares.
const STATEMENTS: StatementLists = &[super::bench::sql::ALL, super::api::sql::ALL];

/// What every request on one worker shares (through the worker's `Rc`: it
/// never leaves the thread).
pub struct Core {
    pub config: Config,
    /// This worker's own PostgreSQL and Redis connections, and object storage.
    pub storage: Storage,
    /// Signs and checks the product API's tokens.
    pub tokens: Tokens,
    /// Users' token generations, as this worker last read them.
    pub generations: Generations,
    /// This worker's IDs.
    pub ids: Issuer,
    /// Log events waiting for this worker's ingest writer to commit them.
    pub ingest: Rc<IngestQueue>,
    /// Who may use the log service.
    pub log_access: LogAccess,
    /// Failed-login budgets, shared by every worker.
    pub logins: Arc<LoginThrottle>,
    /// The routes each [`Listener`] serves, a bit per route.
    served: [u64; 2],
    /// The task that commits the ingest queue, stopped at shutdown.
    ingest_writer: RefCell<Option<tokio::task::JoinHandle<()>>>,
}

impl Core {
    /// Builds worker `index`'s application and starts its background tasks
    /// (store connections, the ingest writer) on the current `LocalSet`.
    pub fn start(
        index: usize,
        config: &Config,
        metrics: Arc<WorkerMetrics>,
        logins: Arc<LoginThrottle>,
    ) -> io::Result<Core> {
        let objects = ObjectStorage::connect(&config.object_settings()).map_err(io::Error::other)?;
        let storage = Storage::start(&config.store_settings(), objects, STATEMENTS, Arc::clone(&metrics));
        let ingest = Rc::new(IngestQueue::new(
            config.ingest_ack,
            config.ingest_batch_events as usize,
            config.ingest_linger(),
            config.ingest_queue_events as usize,
            config.ingest_queue_bytes,
            config.ingest_full_wait(),
            Some(Arc::clone(&metrics)),
        ));
        let ingest_writer = tokio::task::spawn_local(writer::run(
            Rc::clone(&ingest),
            config.database_url.clone(),
            config.storage_timeout,
            index,
            Some(metrics),
        ));
        Ok(Core {
            storage,
            tokens: Tokens::new(config.jwt_secret.as_deref().unwrap_or_default().as_bytes(), config.token_ttl()),
            generations: Generations::default(),
            ids: Issuer::new(config.id_scheme(), index),
            ingest,
            log_access: LogAccess::new(config.ingest_token.as_deref(), config.dev),
            logins,
            served: [served_routes(config, Listener::Public), served_routes(config, Listener::Ops)],
            ingest_writer: RefCell::new(Some(ingest_writer)),
            config: config.clone(),
        })
    }

    /// The router's answer, if the listener it was asked on serves that
    /// route; otherwise 404, as if it did not exist (see [`served_routes`]).
    /// The operations listener says nothing, not even 405, of other paths.
    fn expose(&self, routed: Result<Route, AppError>, listener: Listener) -> Result<Route, AppError> {
        match routed {
            Ok(route) if self.served[listener as usize] & (1 << route as u64) != 0 => Ok(route),
            Ok(_) => Err(AppError::NotFound),
            Err(_) if listener == Listener::Ops => Err(AppError::NotFound),
            Err(e) => Err(e),
        }
    }
}

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
        dispatch::body_limit(route, &self.config)
    }

    fn streams_body(&self, route: Route) -> bool {
        dispatch::streams_body(route)
    }

    async fn call(&self, route: Route, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
        dispatch::dispatch(route, self, req, res).await
    }

    async fn call_streaming(
        &self,
        route: Route,
        req: &mut Request<'_>,
        body: &mut BodyStream<'_>,
        res: &mut Response<'_>,
    ) -> Result<(), AppError> {
        dispatch::dispatch_streaming(route, self, req, body, res).await
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

/// The routes `listener` serves, a bit per route: the operations listener
/// only /metrics, /ready and /health; the public one no /metrics when there
/// is an operations listener, and no benchmark routes with
/// --no-benchmark-routes.
fn served_routes(config: &Config, listener: Listener) -> u64 {
    let mut served = 0u64;
    for route in Route::ALL {
        let serves = match (listener, route) {
            (Listener::Ops, Route::Metrics | Route::Ready | Route::Health) => true,
            (Listener::Ops, _) => false,
            (Listener::Public, Route::Metrics) => config.ops_listen.is_none(),
            (
                Listener::Public,
                Route::Plaintext
                | Route::Json
                | Route::Db
                | Route::Queries
                | Route::Updates
                | Route::Fortunes
                | Route::CachedQueries,
            ) => !config.no_benchmark_routes,
            (Listener::Public, _) => true,
        };
        if serves {
            served |= 1 << route as u64;
        }
    }
    served
}

// A route is a bit of a u64.
const _: () = assert!(Route::ALL.len() <= 64);
