//! A worker's thread: its own current-thread runtime and its own
//! SO_REUSEPORT listener. Every connection it accepts lives and dies on it, so
//! the request path has no locks, no `Arc` and no cross-thread channels.
//!
//! The runtime also enforces the per-core connection cap, keeps the per-core
//! Date value fresh, and drives graceful shutdown: on the signal (a watch
//! channel from the main thread, read only by the accept loop) it stops
//! accepting, tells the connections that wait without a request in hand to
//! close (in order: FIN, then drain), lets the others finish the request they
//! are on, and returns when none are left or the shutdown timeout
//! ends the wait (dropping the runtime then closes whatever remains). Before it
//! returns it lets the application finish what it acknowledged
//! ([`Service::drain`]: the log events still queued).
//!
//! The application is built on the worker's thread by the factory the server
//! was started with, and reached only through [`Service`].
//!
//! With HTTPS on, the worker has a second listener; a TLS connection does its
//! handshake in its own task, within the head timeout, and then runs the same
//! connection code over the TLS session.

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use swiftlet_protocol::ConnectionHeader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::LocalSet;
use tokio::time::Instant;

use super::connection::Connection;
use super::service::{Listener, Service};
use super::worker::{Registration, Worker};
use super::write;
use crate::config::Config;
use crate::http::error::AppError;
use crate::http::response::Response;
use crate::metrics::{self, WorkerMetrics};
use crate::server::date_cache;
use crate::storage::backoff::Backoff;

/// A worker's listeners: plain HTTP, HTTPS (with its configuration), or
/// both, and the operations listener if there is one.
pub struct Listeners {
    pub plain: Option<std::net::TcpListener>,
    pub tls: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
    pub ops: Option<std::net::TcpListener>,
}

/// The runtime's side of [`Listeners`].
struct Accepting {
    plain: Option<TcpListener>,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    ops: Option<TcpListener>,
}

/// Makes a worker's application on its own thread, once its runtime runs:
/// given the worker's index, the configuration and its metrics block.
pub trait MakeApp<A>: Fn(usize, &Config, Arc<WorkerMetrics>) -> io::Result<A> + Send + Sync + 'static {}
impl<A, F: Fn(usize, &Config, Arc<WorkerMetrics>) -> io::Result<A> + Send + Sync + 'static> MakeApp<A> for F {}

/// Runs one worker on the calling thread until shutdown completes.
pub fn run<A: Service + 'static>(
    index: usize,
    listeners: Listeners,
    config: Config,
    make_app: &impl MakeApp<A>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
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
            ops: listeners.ops.map(TcpListener::from_std).transpose()?,
        };
        let worker_metrics = Arc::new(WorkerMetrics::new(index, A::ROUTES));
        metrics::registry().register(Arc::clone(&worker_metrics));
        let app = make_app(index, &config, Arc::clone(&worker_metrics))?;
        let worker = Rc::new(Worker::new(app, config, worker_metrics, index));
        let date = tokio::task::spawn_local(date_cache::refresh_every_second());
        // A task of its own, not part of this future: the runtime polls this
        // (root) future on every wake-up of any connection, and the accept
        // loop's select would be polled with it each time.
        let accepting = {
            let worker = Rc::clone(&worker);
            tokio::task::spawn_local(async move {
                accept_until_shutdown(&listeners, &worker, shutdown).await;
                close_backlog(&listeners, &worker);
                // The listeners close here, before connections are drained.
            })
        };
        let _ = accepting.await;
        worker.begin_shutdown();

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
        // What the application acknowledged, it finishes within the same deadline.
        worker.app.drain(deadline.into_std()).await;
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

async fn accept_until_shutdown<A: Service + 'static>(
    listeners: &Accepting,
    worker: &Rc<Worker<A>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls_listener = listeners.tls.as_ref().map(|(listener, _)| listener);
    let cap = worker.config.max_connections.unwrap_or(usize::MAX);
    let mut backoff = AcceptBackoff::default();
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        let (accepted, secure, listener) = tokio::select! {
            accepted = accept_on(listeners.plain.as_ref()) => (accepted, false, Listener::Public),
            accepted = accept_on(tls_listener) => (accepted, true, Listener::Public),
            accepted = accept_on(listeners.ops.as_ref()) => (accepted, false, Listener::Ops),
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => {
                backoff.succeeded();
                (stream, peer.ip())
            }
            Err(e) => {
                // Usually EMFILE/ENFILE: the connection stays queued and the
                // listener stays readable, so retrying at once would spin.
                tokio::select! {
                    () = backoff.failed(&e, worker.index) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
        };
        if worker.open_connections() >= cap {
            // A TLS client could not read a plain answer: it just sees the close.
            if !secure {
                refuse_overloaded(&stream, worker);
            }
            continue;
        }
        let _ = stream.set_nodelay(true);
        // The head timeout counts from here, TLS handshake included.
        let accepted_at = Instant::now();
        // A connection not yet polled at shutdown sees the flag itself and closes.
        let registration = Registration::new(worker);
        // Two kinds of task, not one that matches: a task's future is as large
        // as its largest branch, and a TLS session is much larger than a
        // socket, so one shared kind would make every plain connection pay
        // for it in memory.
        match listeners.tls.as_ref().filter(|_| secure) {
            None => tokio::task::spawn_local(async move {
                let worker = Rc::clone(&registration.worker);
                // Run by reference: taken by value, an async fn stores its
                // argument twice, once more than the task needs.
                let mut connection = Connection::new(stream, &worker, accepted_at, peer, listener, registration.slot);
                connection.run().await;
                drop(registration);
            }),
            Some((_, acceptor)) => {
                let acceptor = acceptor.clone();
                tokio::task::spawn_local(async move {
                    let worker = Rc::clone(&registration.worker);
                    serve_tls(acceptor, stream, &worker, accepted_at, peer, registration.slot).await;
                    drop(registration);
                })
            }
        };
    }
}

/// Closes, in order, the connections the kernel accepted that the worker has
/// not taken yet. Closing the listener with them still queued would reset
/// them, and a client that already sent its request would read a reset
/// rather than a clean close. (A handshake half done when the filter below
/// goes on, its last packet dropped, can still be reset: the kernel gives no
/// way to stop a listener and keep its queue. On loopback that is a window of
/// microseconds.)
fn close_backlog<A: 'static>(listeners: &Accepting, worker: &Rc<Worker<A>>) {
    let all = [listeners.plain.as_ref(), listeners.tls.as_ref().map(|(listener, _)| listener), listeners.ops.as_ref()];
    for listener in all.into_iter().flatten() {
        let socket = socket2::SockRef::from(listener);
        // First stop the kernel completing handshakes here: one completed
        // after the last accept below would be reset when the listener closes.
        // A SYN this drops is retried by the client, and then refused.
        #[cfg(target_os = "linux")]
        if let Err(e) = socket.attach_filter(&[DROP_EVERY_PACKET]) {
            tracing::warn!(error = %e, "could not close the listener to new connections before draining it");
        }
        // By system call, not through the reactor, whose readiness for the
        // listener may predate connections that came in since its last turn.
        loop {
            let accepted = match socket.accept() {
                Ok((accepted, _)) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "draining the listen queue stopped; what is left in it is reset");
                    break;
                }
            };
            // A connection made in the instant after the filter went on
            // inherited it, and would receive nothing.
            #[cfg(target_os = "linux")]
            let _ = accepted.detach_filter();
            let stream = accepted.set_nonblocking(true).and_then(|()| TcpStream::from_std(accepted.into()));
            let Ok(stream) = stream else { continue };
            let registration = Registration::new(worker);
            tokio::task::spawn_local(async move {
                close_unserved(stream).await;
                drop(registration);
            });
        }
    }
}

/// A classic BPF program of one instruction, "return 0": keep no byte of any
/// packet, so a socket it is attached to receives nothing.
#[cfg(target_os = "linux")]
const DROP_EVERY_PACKET: socket2::SockFilter = socket2::SockFilter::new((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, 0);

/// FIN, then read and discard (up to a second) until the client closes too,
/// so that request bytes it sent are not met with a reset.
async fn close_unserved(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Runs the TLS handshake, then the connection over the session. The head
/// timeout counts from accept and covers the handshake and the first head
/// together (a client that connects and says nothing, or handshakes slowly,
/// is dropped as on plain HTTP).
async fn serve_tls<A: Service>(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    worker: &Worker<A>,
    accepted_at: Instant,
    peer: std::net::IpAddr,
    slot: usize,
) {
    let metrics = &worker.metrics;
    let deadline = accepted_at + worker.config.header_timeout;
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(session)) => {
            let resumed = session.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            metrics::add(if resumed { &metrics.tls_handshakes_resumed } else { &metrics.tls_handshakes_full }, 1);
            Connection::new(session, worker, accepted_at, peer, Listener::Public, slot).run().await
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
fn refuse_overloaded<A>(stream: &TcpStream, worker: &Worker<A>) {
    let mut scratch = Vec::new();
    let mut response = Response::new(&mut scratch);
    response.send_error(&AppError::Overloaded);
    let mut out = Vec::with_capacity(256);
    write::write_response(&mut out, &response, ConnectionHeader::Close, true, write::NO_CORS);
    let _ = stream.try_write(&out);
    tracing::debug!(cap = worker.config.max_connections, "connection refused: at the per-worker cap");
}

/// How the accept loop waits after a failed accept: 10 ms, doubling to a
/// second while failures go on, and at most one log line every `LOG_EVERY`
/// (with the count since the last), so running out of file descriptors costs
/// neither CPU nor the log, even when accepts fail and succeed by turns.
struct AcceptBackoff {
    waits: Backoff,
    since_logged: u64,
    logged_at: Option<Instant>,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff {
            waits: Backoff::new(Duration::from_millis(10), Duration::from_secs(1)),
            since_logged: 0,
            logged_at: None,
        }
    }
}

impl AcceptBackoff {
    const LOG_EVERY: Duration = Duration::from_secs(10);

    async fn failed(&mut self, error: &io::Error, worker: usize) {
        let now = Instant::now();
        self.since_logged += 1;
        if self.logged_at.is_none_or(|at| now - at >= Self::LOG_EVERY) {
            tracing::warn!(worker, error = %error, failures = self.since_logged, "accept failed; backing off");
            self.since_logged = 0;
            self.logged_at = Some(now);
        }
        tokio::time::sleep(self.waits.next_wait()).await;
    }

    fn succeeded(&mut self) {
        self.waits.reset();
    }
}
