//! Starting and stopping the whole server: raise the file-descriptor limit and
//! derive the connection cap from it, bind one SO_REUSEPORT listener per
//! worker (two with HTTPS beside plain HTTP), start the worker threads (pinned
//! to cores if asked), and on shutdown tell them all and wait for them.
//!
//! Bound: open connections per worker never exceed the cap, and the default
//! cap leaves room under `RLIMIT_NOFILE` for every worker's store connections,
//! listeners and files, so a flood of connections meets 503s, not EMFILE.

pub mod body_stream;
pub mod connection;
pub mod date_cache;
pub mod panic_guard;
pub mod runtime;
pub mod service;
pub mod tls;
pub mod transport;
pub mod worker;
pub mod write;

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use std::sync::Arc;

use crate::config::Config;
use runtime::MakeApp;
use service::Service;

pub struct Server {
    local_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    ops_addr: Option<SocketAddr>,
    workers: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    fd_limit: u64,
    connection_cap: usize,
}

/// File descriptors each worker keeps for other things than client
/// connections: its listeners, PostgreSQL and Redis connections, the ingest
/// writer's connection, object-storage connections and upload files, with room
/// to spare.
const FDS_PER_WORKER: u64 = 32;
/// File descriptors the process keeps besides the workers' (standard streams,
/// the log, the runtime's own, the password pool, migrations).
const FDS_PER_PROCESS: u64 = 64;
/// The default cap never goes past this many connections per worker, however
/// high the descriptor limit: memory per connection is small, not nothing.
const MAX_DEFAULT_CONNECTIONS: u64 = 50_000;

impl Server {
    /// Binds the listeners and starts the workers, each serving the
    /// application `make_app` builds on its thread. Returns once every
    /// worker's listener is bound, so the server accepts connections from
    /// then on.
    pub fn start<A: Service + 'static>(mut config: Config, make_app: impl MakeApp<A>) -> io::Result<Server> {
        let count = config.workers();
        let fd_limit = raise_fd_limit();
        let connection_cap = *config.max_connections.get_or_insert_with(|| {
            let spare = fd_limit.saturating_sub(FDS_PER_PROCESS + FDS_PER_WORKER * count as u64);
            (spare / count as u64).clamp(1, MAX_DEFAULT_CONNECTIONS) as usize
        });
        let tls = match (&config.tls_listen, &config.tls_cert, &config.tls_key) {
            (Some(_), Some(cert), Some(key)) => {
                Some(crate::server::tls::server_config(cert, key).map_err(io::Error::other)?)
            }
            _ => None,
        };
        let local_addr = if config.tls_only { None } else { Some(config.listen) };
        let (local_addr, mut plain) = bind_all(local_addr, count)?;
        let (tls_addr, mut secure) = bind_all(config.tls_listen, count)?;
        let (ops_addr, mut ops) = bind_all(config.ops_listen, count)?;
        let make_app = Arc::new(make_app);
        let cores = if config.pin { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
        let (shutdown, watcher) = watch::channel(false);

        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let listeners =
                runtime::Listeners { plain: plain.pop(), tls: secure.pop().zip(tls.clone()), ops: ops.pop() };
            let make_app = Arc::clone(&make_app);
            let config = config.clone();
            let watcher = watcher.clone();
            let core = (!cores.is_empty()).then(|| cores[(config.first_core + index) % cores.len()]);
            let handle = std::thread::Builder::new().name(format!("swiftlet-worker-{index}")).spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        tracing::warn!(worker = index, core = core.id, "could not pin worker to core");
                    }
                }
                if let Err(e) = runtime::run(index, listeners, config, &*make_app, watcher) {
                    tracing::error!(worker = index, error = %e, "worker failed");
                }
            })?;
            workers.push(handle);
        }
        Ok(Server { local_addr, tls_addr, ops_addr, workers, shutdown, fd_limit, connection_cap })
    }

    /// The process's file-descriptor limit, as raised at start.
    pub fn fd_limit(&self) -> u64 {
        self.fd_limit
    }

    /// Most open connections per worker.
    pub fn connection_cap(&self) -> usize {
        self.connection_cap
    }

    /// The plain HTTP address, unless serving HTTPS only.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The HTTPS address, if serving HTTPS.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The operations address (/metrics, /ready, /health), if one is configured.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_addr
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Starts graceful shutdown and waits for every worker to finish.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for w in self.workers {
            let _ = w.join();
        }
        // Uploads still running at the shutdown deadline were dropped with
        // their workers' runtimes: abort them, so no S3 upload stays open.
        crate::storage::objects::abort_abandoned_before_exit(ABORT_UPLOADS_AT_EXIT);
    }
}

/// How long a shutdown waits for storage to abort unfinished uploads.
const ABORT_UPLOADS_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft
/// limit in force afterwards (the old one if raising failed).
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` through the pointer, which points
    // at a live, properly aligned local of exactly that type; it keeps no
    // reference to it after returning.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the `rlimit` the pointer points at, a
        // live local of the right type, during the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

/// Binds `count` SO_REUSEPORT listeners on `addr` (none if `addr` is None);
/// returns the address they share (port 0 resolved).
fn bind_all(addr: Option<SocketAddr>, count: usize) -> io::Result<(Option<SocketAddr>, Vec<std::net::TcpListener>)> {
    let Some(addr) = addr else { return Ok((None, Vec::new())) };
    let mut listeners = Vec::with_capacity(count);
    let addr = if addr.port() == 0 {
        // The first listener resolves the port and holds it while the others
        // join: a probe bound and dropped to learn the port would leave it
        // free for an instant, and two servers starting together could then
        // both take it and silently share it. (The kernel hands out a port
        // no other socket holds, SO_REUSEPORT or not.)
        let first = bind_reuseport(addr)?;
        let addr = first.local_addr()?;
        listeners.push(first);
        addr
    } else {
        // Bind once without SO_REUSEPORT first: that fails if anything
        // already holds the port (including another swiftlet, which
        // SO_REUSEPORT would otherwise silently share it with).
        std::net::TcpListener::bind(addr)?.local_addr()?
    };
    while listeners.len() < count {
        listeners.push(bind_reuseport(addr)?);
    }
    Ok((Some(addr), listeners))
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unsafe calls above, checked against what the kernel reports for this process.
    #[test]
    fn fd_limit_is_raised_to_the_hard_limit() {
        let raised = raise_fd_limit();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (soft, hard) = (fields[3], fields[4]);
        assert_eq!(soft, hard, "soft limit not raised: {line}");
        assert_eq!(soft.parse::<u64>().unwrap(), raised);
    }
}
