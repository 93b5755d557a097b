//! The data path: each worker's own PostgreSQL and Redis connections.
//!
//! A worker owns its connections outright: they are driven by tasks on the
//! worker's runtime and shared by its HTTP connections through `Rc`, so
//! concurrent requests on one core pipeline onto the same sockets with no locks
//! and no cross-thread hand-off. Every connection reconnects by itself with
//! backoff; while one is down, calls on it fail at once instead of waiting.
//!
//! - [`postgres`]: the per-worker pipelined PostgreSQL connections.
//! - [`statements`]: the SQL they prepare.
//! - [`redis`]: the pipelined Redis client.
//! - [`migrations`]: the schema, applied once per database.
//! - [`link`]: the socket loop both pipelined clients run.
//! - [`backoff`]: the reconnect schedule both share.

pub mod backoff;
pub mod link;
pub mod migrations;
pub mod objects;
pub mod postgres;
pub mod redis;
pub mod statements;

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::WorkerMetrics;
use crate::storage::objects::ObjectStorage;
use crate::storage::statements::StatementLists;

pub use postgres::{PgError, PgPipeline, Postgres};
pub use redis::{CacheError, Redis};

/// One worker's storage connections.
pub struct Storage {
    pub pg: Postgres,
    pub redis: Redis,
    /// Prefix of every key this deployment writes to Redis, so deployments on
    /// different databases sharing one Redis never read each other's rows.
    pub cache_prefix: String,
    /// `--cache-ttl` as the decimal text SET … EX takes, formatted once.
    pub cache_ttl: String,
    /// Where videos are stored (a local directory or S3).
    pub objects: ObjectStorage,
}

/// Where one worker's stores are and how it talks to them.
pub struct StoreSettings<'c> {
    pub database_url: &'c str,
    pub pg_connections: usize,
    pub redis_url: &'c str,
    /// Every call's limit, and PostgreSQL's statement timeout.
    pub timeout: Duration,
    /// Seconds a cache entry lives.
    pub cache_ttl: u32,
}

impl Storage {
    /// `--cache-ttl` as a duration: how long any cache entry can outlive a write.
    pub fn cache_ttl_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.cache_ttl.parse().unwrap_or(60))
    }

    /// Starts the connection tasks on the current `LocalSet`; returns at once.
    /// A URL that does not parse is logged and leaves that store disabled, which
    /// callers see as "unavailable", never as a hang.
    ///
    /// Every PostgreSQL connection prepares `statements`; the connections
    /// count themselves in `metrics`, the worker's gauges.
    pub fn start(
        settings: &StoreSettings<'_>,
        objects: ObjectStorage,
        statements: StatementLists,
        metrics: Arc<WorkerMetrics>,
    ) -> Storage {
        let (url, timeout) = (settings.database_url, settings.timeout);
        let pg = Postgres::start(url, settings.pg_connections, timeout, statements, Some(Arc::clone(&metrics)));
        let redis = Redis::start(settings.redis_url, timeout, Some(metrics));
        Storage { pg, redis, cache_prefix: cache_prefix(url), cache_ttl: settings.cache_ttl.to_string(), objects }
    }
}

/// The prefix of every Redis key of the deployment on `database_url`.
pub fn cache_prefix(database_url: &str) -> String {
    let database = postgres::database_name(database_url).unwrap_or_default();
    format!("swiftlet:{database}:")
}
