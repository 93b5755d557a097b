//! What a worker's connections share: the application, and the server's own
//! per-worker state beside it (configuration, head limits, metrics, CORS
//! origins, and the shutdown [`Drain`] with its count of open connections).
//! One per worker thread, behind a plain `Rc`: it never leaves its core.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use swiftlet_protocol::HeadLimits;

use crate::config::Config;
use crate::http::response::CorsOrigins;
use crate::metrics::WorkerMetrics;

/// What every connection on this worker shares (through a plain `Rc`: this
/// never leaves the thread): the application, and the server's own state
/// beside it.
pub struct Worker<A> {
    /// The application: it routes and answers the requests.
    pub app: A,
    pub config: Config,
    pub limits: HeadLimits,
    /// This worker's counters for `/metrics` (shared with the scraping worker).
    pub metrics: Arc<WorkerMetrics>,
    /// Which origins' front ends may read the answers that allow CORS.
    pub cors_origins: CorsOrigins,
    /// Which worker this is.
    pub index: usize,
    /// Shutdown, and the connections it waits for.
    drain: Drain,
}

/// The shutdown state of a worker: kept apart from the application, which
/// never needs it (the connection loop decides keep-alive and closes idle
/// connections).
#[derive(Default)]
struct Drain {
    shutting_down: Cell<bool>,
    /// Connections open now.
    connections: Cell<usize>,
    /// Wakes the connections that wait with no request in hand, at shutdown.
    idle_close: tokio::sync::Notify,
}

impl<A> Worker<A> {
    pub fn new(app: A, config: Config, metrics: Arc<WorkerMetrics>, index: usize) -> Worker<A> {
        Worker {
            app,
            cors_origins: CorsOrigins::parse(&config.cors_origin),
            limits: config.head_limits(),
            metrics,
            index,
            config,
            drain: Drain::default(),
        }
    }

    pub fn shutting_down(&self) -> bool {
        self.drain.shutting_down.get()
    }

    pub(super) fn open_connections(&self) -> usize {
        self.drain.connections.get()
    }

    /// What an idle connection awaits beside its socket: completes once
    /// shutdown begins. Take it before checking [`shutting_down`](Self::shutting_down)
    /// (a notification sent after it was taken is not missed).
    pub fn idle_close(&self) -> tokio::sync::futures::Notified<'_> {
        self.drain.idle_close.notified()
    }

    fn count_connections(&self) {
        self.metrics.open_connections.store(self.open_connections() as u64, Relaxed);
    }

    /// Shutdown begins: no connection is kept alive after the request it is
    /// on, and every connection that waits without a request in hand closes
    /// (each sends FIN and drains what the client sent meanwhile, so the
    /// client sees an orderly close rather than a reset).
    pub(super) fn begin_shutdown(&self) {
        self.drain.shutting_down.set(true);
        self.drain.idle_close.notify_waiters();
    }
}

/// Keeps a connection registered for as long as its task exists, however it ends.
pub(super) struct Registration<A> {
    pub(super) worker: Rc<Worker<A>>,
}

impl<A> Registration<A> {
    pub(super) fn new(worker: &Rc<Worker<A>>) -> Registration<A> {
        worker.drain.connections.set(worker.drain.connections.get() + 1);
        worker.count_connections();
        Registration { worker: Rc::clone(worker) }
    }
}

impl<A> Drop for Registration<A> {
    fn drop(&mut self) {
        self.worker.drain.connections.set(self.worker.drain.connections.get() - 1);
        self.worker.count_connections();
    }
}
