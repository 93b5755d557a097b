//! A worker's connections: one slot per `--pg-connections`, each kept
//! connected by a supervisor task that reconnects with backoff.

use crate::metrics::WorkerMetrics;
use crate::storage::backoff::{Reconnect, Store};
use crate::storage::link::{pump, IoCounts};
use crate::storage::statements::StatementLists;
use bytes::BytesMut;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::Notify;

use super::error::PgError;
use super::pipeline::{deliver, Collecting, PgPipeline};
use super::session::{open, OpenError};

/// Counts across a worker's connections, for the tests that prove batches share round-trips.
#[derive(Debug, Default)]
pub struct PgStats {
    /// Socket writes and reads.
    pub io: IoCounts,
    /// Queries sent.
    pub queries: Cell<u64>,
    /// Connections established and prepared.
    pub sessions: Cell<u64>,
}

pub(super) struct Slot {
    pub(super) link: RefCell<Option<Rc<PgPipeline>>>,
}

/// A worker's PostgreSQL connections.
pub struct Postgres {
    pub(super) slots: Vec<Rc<Slot>>,
    pub(super) stats: Rc<PgStats>,
}

impl Postgres {
    /// Starts `connections` supervisor tasks on the current `LocalSet`. An empty
    /// or unparsable `url` starts none: every call is then `Unavailable`.
    /// Opens `connections` pipelines to `url`, each preparing `statements`,
    /// counted in `metrics` (the worker's gauges) if given.
    pub fn start(
        url: &str,
        connections: usize,
        timeout: Duration,
        statements: StatementLists,
        metrics: Option<std::sync::Arc<WorkerMetrics>>,
    ) -> Postgres {
        let stats = Rc::new(PgStats::default());
        let mut pg = Postgres { slots: Vec::new(), stats: Rc::clone(&stats) };
        if url.is_empty() {
            return pg;
        }
        let config = match tokio_postgres::Config::from_str(url) {
            Ok(config) => Rc::new(config),
            Err(e) => {
                tracing::error!(error = %e, "DATABASE_URL does not parse; database routes will answer 503");
                return pg;
            }
        };
        for index in 0..connections {
            let slot = Rc::new(Slot { link: RefCell::new(None) });
            pg.slots.push(Rc::clone(&slot));
            let reconnect = Reconnect::new(Store::Postgres, index, metrics.clone());
            let opening = Opening { config: Rc::clone(&config), statements, timeout, index };
            tokio::task::spawn_local(supervise(slot, opening, Rc::clone(&stats), reconnect));
        }
        pg
    }

    /// The connection for a batch that only reads: the first one that is up.
    /// Reads are cheap for PostgreSQL, and keeping them on one backend per
    /// worker keeps the processes competing for the cores few: on 2 cores,
    /// spreading `/db` over four backends per worker doubled its p99 at 256
    /// connections, because a worker that loses its core stalls every request
    /// it holds (perf/RESULTS.md, notes on the database tests).
    pub fn for_reads(&self) -> Result<Rc<PgPipeline>, PgError> {
        self.slots.iter().find_map(|slot| slot.link.borrow().clone()).ok_or(PgError::Unavailable)
    }

    /// The connection for a batch that writes: the one with the fewest batches
    /// outstanding. A write's commit waits for the WAL flush; spread over
    /// several backends, those waits overlap (and PostgreSQL groups the
    /// flushes) instead of queueing on one.
    pub fn for_writes(&self) -> Result<Rc<PgPipeline>, PgError> {
        let mut best: Option<(usize, Rc<PgPipeline>)> = None;
        for slot in &self.slots {
            if let Some(link) = &*slot.link.borrow() {
                let load = link.waiters.borrow().len();
                if best.as_ref().is_none_or(|(least, _)| load < *least) {
                    best = Some((load, Rc::clone(link)));
                }
            }
        }
        best.map(|(_, link)| link).ok_or(PgError::Unavailable)
    }

    /// Every connection that is up (for tests and diagnostics).
    pub fn pipelines(&self) -> Vec<Rc<PgPipeline>> {
        self.slots.iter().filter_map(|s| s.link.borrow().clone()).collect()
    }

    /// Whether any connection is up.
    pub fn is_up(&self) -> bool {
        self.slots.iter().any(|s| s.link.borrow().is_some())
    }

    pub fn stats(&self) -> &PgStats {
        &self.stats
    }
}

/// The database a URL names (the user's name when it names none), for cache keys.
pub fn database_name(url: &str) -> Option<String> {
    let config = tokio_postgres::Config::from_str(url).ok()?;
    config.get_dbname().or(config.get_user()).map(str::to_owned)
}

/// How a pipeline's connection is opened: where to, what it prepares, and
/// the storage timeout (also the server-side statement timeout).
pub(super) struct Opening {
    pub(super) config: Rc<tokio_postgres::Config>,
    pub(super) statements: StatementLists,
    pub(super) timeout: Duration,
    /// Which of the worker's connections this is, for the log.
    pub(super) index: usize,
}

/// Keeps one slot connected for the life of the worker.
pub(super) async fn supervise(slot: Rc<Slot>, opening: Opening, stats: Rc<PgStats>, mut reconnect: Reconnect) {
    let Opening { config, statements, timeout, index } = opening;
    loop {
        // PostgreSQL gives up on a statement when we would: a slow or huge
        // read then holds the batches behind it on this pipeline for no
        // longer than the storage timeout.
        match tokio::time::timeout(timeout, open(&config, Some(timeout), statements)).await {
            Ok(Ok(socket)) => {
                reconnect.connected();
                stats.sessions.set(stats.sessions.get() + 1);
                let link = Rc::new(PgPipeline {
                    up: Cell::new(true),
                    answered: Cell::new(0),
                    stalled: Notify::new(),
                    out: RefCell::new(BytesMut::with_capacity(4096)),
                    waiters: RefCell::new(VecDeque::new()),
                    queued: Notify::new(),
                    room: Notify::new(),
                    timeout,
                    stats: Rc::clone(&stats),
                    floor: Default::default(),
                    sizes: Default::default(),
                });
                *slot.link.borrow_mut() = Some(Rc::clone(&link));
                let mut collecting = Collecting::default();
                let error = tokio::select! {
                    error = pump(&socket, &link.out, &link.queued, &stats.io, Some(&link.floor), |rbuf| deliver(&link, rbuf, &mut collecting)) => error,
                    () = link.stalled.notified() => io::Error::new(io::ErrorKind::TimedOut, "no answer within the storage timeout"),
                };
                slot.link.borrow_mut().take();
                link.fail_all();
                reconnect.lost();
                tracing::warn!(connection = index, error = %error, "PostgreSQL connection lost; reconnecting");
            }
            Ok(Err(OpenError::MissingTables(e))) => {
                // Normal at first start: the migration thread has not created them yet.
                tracing::debug!(connection = index, error = %e, "tables not there yet; waiting for migrations");
            }
            Ok(Err(e)) => reconnect.failed(&e.to_string()),
            Err(_) => reconnect.failed("connect timed out"),
        }
        reconnect.wait().await;
    }
}
