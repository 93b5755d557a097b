//! One worker: a thread with its own current-thread runtime and its own
//! SO_REUSEPORT listener. Every connection it accepts lives and dies on it, so
//! the request path has no locks, no `Arc` and no cross-thread channels.
//!
//! The worker also enforces the per-core connection cap, keeps the per-core
//! Date value fresh, and drives graceful shutdown: on the signal (a watch
//! channel from the main thread, read only by the accept loop) it stops
//! accepting, aborts the connections that are idle (each keeps a flag in its
//! slot saying whether it holds part of a request), lets the others finish the
//! request they are on, and returns when none are left or the shutdown timeout
//! ends the wait (dropping the runtime then closes whatever remains). Before it
//! returns it lets its ingest writer commit the log events still queued.
//!
//! With HTTPS on, the worker has a second listener; a TLS connection does its
//! handshake in its own task, within the head timeout, and then runs the same
//! connection code over the TLS session.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use swiftlet_protocol::{ConnectionHeader, HeadLimits};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, LocalSet};
use tokio::time::Instant;

use crate::api::auth::Tokens;
use crate::config::Config;
use crate::connection::{self, Connection};
use crate::date_cache;
use crate::error::AppError;
use crate::ids::IdGenerator;
use crate::ingest::{writer, IngestQueue};
use crate::metrics::{self, WorkerMetrics};
use crate::response::Response;
use crate::storage::Storage;

/// What every connection on this worker shares (through a plain `Rc`: this
/// never leaves the thread).
pub struct Worker {
    pub config: Config,
    /// This worker's own PostgreSQL and Redis connections.
    pub storage: Storage,
    pub limits: HeadLimits,
    /// Signs and checks the product API's tokens.
    pub tokens: Tokens,
    /// Which worker this is (its core number in the IDs' machine field).
    pub index: usize,
    /// This worker's ID generator, made for the node id it was last used with.
    pub ids: RefCell<Option<IdGenerator>>,
    /// Log events waiting for this worker's ingest writer to commit them.
    pub ingest: Rc<IngestQueue>,
    /// This worker's counters for `/metrics` (shared with the scraping worker).
    pub metrics: Arc<WorkerMetrics>,
    shutting_down: Cell<bool>,
    /// Every open connection, by id.
    connections: RefCell<HashMap<u64, Rc<ConnectionSlot>>>,
    next_id: Cell<u64>,
}

impl Worker {
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    fn open_connections(&self) -> usize {
        self.connections.borrow().len()
    }

    fn count_connections(&self) {
        self.metrics.open_connections.store(self.open_connections() as u64, Relaxed);
    }

    /// Stops every connection that is waiting without a request in hand.
    fn abort_idle(&self) {
        for slot in self.connections.borrow().values() {
            if slot.idle.get() {
                if let Some(task) = slot.task.get() {
                    task.abort();
                }
            }
        }
    }
}

/// What the worker knows of one connection.
pub struct ConnectionSlot {
    /// Set while the connection waits with no part of a request in hand, so
    /// shutdown may drop it at that await point without losing anything.
    idle: Cell<bool>,
    task: OnceCell<AbortHandle>,
}

impl ConnectionSlot {
    pub fn set_idle(&self, idle: bool) {
        self.idle.set(idle);
    }
}

/// Keeps a connection registered for as long as its task exists, however it ends.
struct Registration {
    worker: Rc<Worker>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.worker.connections.borrow_mut().remove(&self.id);
        self.worker.count_connections();
    }
}

/// A worker's listeners: plain HTTP, HTTPS (with its configuration), or both.
pub struct Listeners {
    pub plain: Option<std::net::TcpListener>,
    pub tls: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
}

/// The runtime's side of [`Listeners`].
struct Accepting {
    plain: Option<TcpListener>,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
}

/// Runs one worker on the calling thread until shutdown completes.
pub fn run(index: usize, listeners: Listeners, config: Config, shutdown: watch::Receiver<bool>) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = LocalSet::new();
    local.block_on(&runtime, async move {
        let listeners = Accepting {
            plain: listeners.plain.map(TcpListener::from_std).transpose()?,
            tls: match listeners.tls {
                Some((listener, config)) => {
                    Some((TcpListener::from_std(listener)?, tokio_rustls::TlsAcceptor::from(config)))
                }
                None => None,
            },
        };
        // Before the storage starts: its connections count themselves here.
        let worker_metrics = Arc::new(WorkerMetrics::new(index));
        metrics::registry().register(Arc::clone(&worker_metrics));
        metrics::set_current(Arc::clone(&worker_metrics));
        let worker = Rc::new(Worker {
            metrics: worker_metrics,
            limits: config.head_limits(),
            index,
            ids: RefCell::new(None),
            ingest: Rc::new(IngestQueue::new(
                config.ingest_ack,
                config.ingest_batch_events as usize,
                config.ingest_linger(),
                config.ingest_queue_events as usize,
                config.ingest_full_wait(),
            )),
            tokens: Tokens::new(config.jwt_secret.as_deref().unwrap_or_default().as_bytes(), config.token_ttl()),
            storage: Storage::start(&config).map_err(io::Error::other)?,
            config,
            shutting_down: Cell::new(false),
            connections: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
        });
        let date = tokio::task::spawn_local(date_cache::refresh_every_second());
        let ingest_writer = tokio::task::spawn_local(writer::run(
            Rc::clone(&worker.ingest),
            worker.config.database_url.clone(),
            worker.config.storage_timeout,
            index,
        ));
        // A task of its own, not part of this future: the runtime polls this
        // (root) future on every wake-up of any connection, and the accept
        // loop's select would be polled with it each time.
        let accepting = {
            let worker = Rc::clone(&worker);
            tokio::task::spawn_local(async move {
                accept_until_shutdown(&listeners, &worker, shutdown).await;
                // The listeners close here, before connections are drained.
            })
        };
        let _ = accepting.await;
        worker.shutting_down.set(true);
        worker.abort_idle();

        let deadline = Instant::now() + worker.config.shutdown_timeout;
        while worker.open_connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if worker.open_connections() > 0 {
            tracing::warn!(
                worker = index,
                open = worker.open_connections(),
                "shutdown timeout: closing connections still open"
            );
        }
        // Queued events were acknowledged: store them before exiting, within the same deadline.
        worker.ingest.close();
        while worker.ingest.depth() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if worker.ingest.depth() > 0 {
            tracing::error!(
                worker = index,
                events = worker.ingest.depth(),
                "shutdown timeout: queued log events not stored"
            );
        }
        ingest_writer.abort();
        date.abort();
        Ok(())
    })
}

/// Accepts on `listener`, or waits forever if there is none.
async fn accept_on(listener: Option<&TcpListener>) -> io::Result<(TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_until_shutdown(listeners: &Accepting, worker: &Rc<Worker>, mut shutdown: watch::Receiver<bool>) {
    let tls_listener = listeners.tls.as_ref().map(|(listener, _)| listener);
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        let (accepted, secure) = tokio::select! {
            accepted = accept_on(listeners.plain.as_ref()) => (accepted, false),
            accepted = accept_on(tls_listener) => (accepted, true),
            _ = shutdown.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Usually EMFILE/ENFILE: back off instead of spinning on it.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if worker.open_connections() >= worker.config.max_connections {
            // A TLS client could not read a plain answer: it just sees the close.
            if !secure {
                refuse_overloaded(&stream, worker);
            }
            continue;
        }
        let _ = stream.set_nodelay(true);
        let id = worker.next_id.get();
        worker.next_id.set(id + 1);
        // Marked idle only while it actually waits (see Connection::read_more);
        // one not yet polled at shutdown sees the flag itself and closes.
        let slot = Rc::new(ConnectionSlot { idle: Cell::new(false), task: OnceCell::new() });
        worker.connections.borrow_mut().insert(id, Rc::clone(&slot));
        worker.count_connections();
        let registration = Registration { worker: Rc::clone(worker), id };
        let task_slot = Rc::clone(&slot);
        // Two kinds of task, not one that matches: a task's future is as large
        // as its largest branch, and a TLS session is much larger than a
        // socket, so one shared kind would make every plain connection pay
        // for it in memory.
        let task = match listeners.tls.as_ref().filter(|_| secure) {
            None => tokio::task::spawn_local(async move {
                let worker = Rc::clone(&registration.worker);
                Connection::new(stream, &worker, &task_slot).run().await;
                drop(registration);
            }),
            Some((_, acceptor)) => {
                let acceptor = acceptor.clone();
                tokio::task::spawn_local(async move {
                    let worker = Rc::clone(&registration.worker);
                    serve_tls(acceptor, stream, &worker, &task_slot).await;
                    drop(registration);
                })
            }
        };
        let _ = slot.task.set(task.abort_handle());
    }
}

/// Runs the TLS handshake, within the head timeout (a client that connects
/// and says nothing is dropped as on plain HTTP), then the connection over
/// the session.
async fn serve_tls(acceptor: tokio_rustls::TlsAcceptor, stream: TcpStream, worker: &Worker, slot: &ConnectionSlot) {
    let metrics = &worker.metrics;
    match tokio::time::timeout(worker.config.header_timeout, acceptor.accept(stream)).await {
        Ok(Ok(session)) => {
            let resumed = session.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            metrics::add(if resumed { &metrics.tls_handshakes_resumed } else { &metrics.tls_handshakes_full }, 1);
            Connection::new(session, worker, slot).run().await
        }
        Ok(Err(e)) => {
            metrics::add(&metrics.tls_handshakes_failed, 1);
            tracing::debug!(error = %e, "TLS handshake failed");
        }
        Err(_) => {
            metrics::add(&metrics.tls_handshakes_failed, 1);
            tracing::debug!("TLS handshake timed out");
        }
    }
}

/// Best effort: tell a client over the cap why, without spending a task on it.
fn refuse_overloaded(stream: &TcpStream, worker: &Worker) {
    let mut scratch = Vec::new();
    let mut response = Response::new(&mut scratch);
    response.send_error(&AppError::Overloaded);
    let mut out = Vec::with_capacity(256);
    connection::write_response(&mut out, &response, ConnectionHeader::Close, true);
    let _ = stream.try_write(&out);
    tracing::debug!(cap = worker.config.max_connections, "connection refused: at the per-worker cap");
}
