//! What a worker's connections share: the application, and the server's own
//! per-worker state beside it (configuration, head limits, metrics, CORS
//! origins, and the shutdown [`Drain`] with its count of open connections).
//! One per worker thread, behind a plain `Rc`: it never leaves its core.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

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
    idle: IdleWakers,
}

/// One waker slot per open connection (its [`Registration`]'s), set while it
/// waits with no request in hand and woken when shutdown begins. Plain cells,
/// not a `tokio::sync::Notify`: that one locks a mutex and links a waiter at
/// every wait and unlinks it at every wake, per request on a keep-alive
/// connection; here a wait compares one waker and a wake-up is free.
///
/// Bound: `slots` is as long as the most connections registered at once
/// (within the connection cap, plus the backlog closed at shutdown); a closed
/// connection's slot is reused.
#[derive(Default)]
struct IdleWakers {
    slots: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl IdleWakers {
    fn take_slot(&self) -> usize {
        if let Some(slot) = self.free.borrow_mut().pop() {
            return slot;
        }
        let mut slots = self.slots.borrow_mut();
        slots.push(None);
        slots.len() - 1
    }

    fn give_back(&self, slot: usize) {
        self.slots.borrow_mut()[slot] = None;
        self.free.borrow_mut().push(slot);
    }

    fn wake_all(&self) {
        // Taken out first: a waker is not run here (tokio schedules the
        // task), but nothing may be borrowed if it were.
        let wakers: Vec<Waker> = self.slots.borrow_mut().iter_mut().filter_map(Option::take).collect();
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Completes once shutdown has begun (see [`Worker::idle_close`]).
pub struct IdleClose<'w> {
    drain: &'w Drain,
    slot: usize,
}

impl Future for IdleClose<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.drain.shutting_down.get() {
            return Poll::Ready(());
        }
        let mut slots = self.drain.idle.slots.borrow_mut();
        let waker = &mut slots[self.slot];
        // The same task waits again and again: most polls store nothing.
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
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

    /// What an idle connection (registered in `slot`) awaits beside its
    /// socket: completes once shutdown begins, however late it is polled.
    pub fn idle_close(&self, slot: usize) -> IdleClose<'_> {
        IdleClose { drain: &self.drain, slot }
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
        self.drain.idle.wake_all();
    }
}

/// Keeps a connection registered for as long as its task exists, however it ends.
pub(super) struct Registration<A> {
    pub(super) worker: Rc<Worker<A>>,
    /// Its place among the idle wakers (see [`Worker::idle_close`]).
    pub(super) slot: usize,
}

impl<A> Registration<A> {
    pub(super) fn new(worker: &Rc<Worker<A>>) -> Registration<A> {
        worker.drain.connections.set(worker.drain.connections.get() + 1);
        worker.count_connections();
        Registration { worker: Rc::clone(worker), slot: worker.drain.idle.take_slot() }
    }
}

impl<A> Drop for Registration<A> {
    fn drop(&mut self) {
        self.worker.drain.idle.give_back(self.slot);
        self.worker.drain.connections.set(self.worker.drain.connections.get() - 1);
        self.worker.count_connections();
    }
}
