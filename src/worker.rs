//! One worker: a thread with its own current-thread runtime and its own
//! SO_REUSEPORT listener. Every connection it accepts lives and dies on it, so
//! the request path has no locks, no `Arc` and no cross-thread channels.
//!
//! The worker also enforces the per-core connection cap, keeps the per-core
//! Date value fresh, and drives graceful shutdown: on the signal it stops
//! accepting, lets open connections finish the request they are on (idle ones
//! close at once), and returns when none are left or the shutdown timeout ends
//! the wait (dropping the runtime then closes whatever remains).

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use swiftlet_protocol::HeadLimits;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::LocalSet;
use tokio::time::Instant;

use crate::config::Config;
use crate::connection::Connection;
use crate::date_cache;
use crate::error::AppError;
use crate::response::Response;

/// What every connection on this worker shares (through a plain `Rc`: this
/// never leaves the thread).
pub struct Worker {
    pub config: Config,
    pub limits: HeadLimits,
    active: Cell<usize>,
    shutting_down: Cell<bool>,
}

impl Worker {
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.get()
    }
}

/// Counts a connection as open for as long as it exists, however its task ends.
struct ActiveGuard(Rc<Worker>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get() - 1);
    }
}

/// Runs one worker on the calling thread until shutdown completes.
pub fn run(
    index: usize,
    listener: std::net::TcpListener,
    config: Config,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::from_std(listener)?;
        let worker = Rc::new(Worker {
            limits: config.head_limits(),
            config,
            active: Cell::new(0),
            shutting_down: Cell::new(false),
        });
        let date = tokio::task::spawn_local(date_cache::refresh_every_second());
        accept_until_shutdown(&listener, &worker, shutdown).await;
        worker.shutting_down.set(true);
        drop(listener);

        let deadline = Instant::now() + worker.config.shutdown_timeout;
        while worker.active.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if worker.active.get() > 0 {
            tracing::warn!(worker = index, open = worker.active.get(), "shutdown timeout: closing connections still open");
        }
        date.abort();
        Ok(())
    })
}

async fn accept_until_shutdown(listener: &TcpListener, worker: &Rc<Worker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
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
        if worker.active.get() >= worker.config.max_connections {
            refuse_overloaded(&stream, worker);
            continue;
        }
        let _ = stream.set_nodelay(true);
        worker.active.set(worker.active.get() + 1);
        let guard = ActiveGuard(Rc::clone(worker));
        let shutdown = shutdown.clone();
        tokio::task::spawn_local(async move {
            let worker = Rc::clone(&guard.0);
            Connection::new(stream, &worker).run(shutdown).await;
            drop(guard);
        });
    }
}

/// Best effort: tell a client over the cap why, without spending a task on it.
fn refuse_overloaded(stream: &TcpStream, worker: &Worker) {
    let mut scratch = Vec::new();
    let mut response = Response::new(&mut scratch);
    response.send_error(&AppError::Overloaded);
    let mut out = Vec::with_capacity(256);
    let date = date_cache::current();
    swiftlet_protocol::ResponseHead {
        status: response.status(),
        content_type: response.content_type(),
        content_length: response.body().len(),
        connection: swiftlet_protocol::ConnectionHeader::Close,
        date: &date,
        extra: &[],
    }
    .encode(&mut out);
    out.extend_from_slice(response.body());
    let _ = stream.try_write(&out);
    tracing::debug!(cap = worker.config.max_connections, "connection refused: at the per-worker cap");
}
