//! One worker's application state: what every handler reaches (its stores,
//! token keys, ID issuer, ingest queue, login budgets), built on the
//! worker's thread. (The `Service` the connection loop calls is in
//! `dispatch`, over this state.)
//!
//! What a listener may reach is decided here too: each [`Listener`] has a
//! bitmask of the routes it serves, so a route off a listener is a 404, as if
//! it did not exist.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use super::api::throttle::LoginThrottle;
use super::api::tokens::{Generations, Tokens};
use crate::config::Config;
use crate::http::error::AppError;
use crate::http::router::{Class, Route};
use crate::ids::issue::Issuer;
use crate::ingest::access::LogAccess;
use crate::ingest::{writer, IngestQueue};
use crate::metrics::WorkerMetrics;
use crate::server::service::Listener;
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
    pub(super) ingest_writer: RefCell<Option<tokio::task::JoinHandle<()>>>,
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
    pub(super) fn expose(&self, routed: Result<Route, AppError>, listener: Listener) -> Result<Route, AppError> {
        match routed {
            Ok(route) if self.served[listener as usize] & (1 << route as u64) != 0 => Ok(route),
            Ok(_) => Err(AppError::NotFound),
            Err(_) if listener == Listener::Ops => Err(AppError::NotFound),
            Err(e) => Err(e),
        }
    }
}

/// The routes `listener` serves, a bit per route: the operations listener
/// only /metrics, /ready and /health; the public one no /metrics when there
/// is an operations listener, and no benchmark routes with
/// --no-benchmark-routes.
fn served_routes(config: &Config, listener: Listener) -> u64 {
    let mut served = 0u64;
    for &route in Route::ALL {
        let serves = match (listener, route.class()) {
            (Listener::Ops, Class::Probe | Class::Metrics) => true,
            (Listener::Ops, _) => false,
            (Listener::Public, Class::Metrics) => config.ops_listen.is_none(),
            (Listener::Public, Class::Bench) => !config.no_benchmark_routes,
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
