//! Starting and stopping the whole server: bind one SO_REUSEPORT listener per
//! worker (two with HTTPS beside plain HTTP), start the worker threads (pinned to cores if asked), and on
//! shutdown tell them all and wait for them.

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::config::Config;
use crate::worker;

pub struct Server {
    local_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    video_storage: &'static str,
    workers: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

impl Server {
    /// Binds the listeners and starts the workers. Returns once every worker's
    /// listener is bound, so the server accepts connections from then on.
    pub fn start(config: Config) -> io::Result<Server> {
        let count = config.workers();
        // Each worker builds its own store client; check the configuration
        // once here, so a bad one stops the start with its reason.
        let video_storage = crate::objects::ObjectStorage::from_config(&config).map_err(io::Error::other)?.kind;
        let tls = match (&config.tls_listen, &config.tls_cert, &config.tls_key) {
            (Some(_), Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key).map_err(io::Error::other)?),
            _ => None,
        };
        let local_addr = if config.tls_only { None } else { Some(config.listen) };
        let (local_addr, mut plain) = bind_all(local_addr, count)?;
        let (tls_addr, mut secure) = bind_all(config.tls_listen, count)?;
        let cores = if config.pin { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
        let (shutdown, watcher) = watch::channel(false);

        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let listeners = worker::Listeners { plain: plain.pop(), tls: secure.pop().zip(tls.clone()) };
            let config = config.clone();
            let watcher = watcher.clone();
            let core = (!cores.is_empty()).then(|| cores[(config.first_core + index) % cores.len()]);
            let handle = std::thread::Builder::new().name(format!("swiftlet-worker-{index}")).spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        tracing::warn!(worker = index, core = core.id, "could not pin worker to core");
                    }
                }
                if let Err(e) = worker::run(index, listeners, config, watcher) {
                    tracing::error!(worker = index, error = %e, "worker failed");
                }
            })?;
            workers.push(handle);
        }
        Ok(Server { local_addr, tls_addr, video_storage, workers, shutdown })
    }

    /// The plain HTTP address, unless serving HTTPS only.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The HTTPS address, if serving HTTPS.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// "local" or "s3".
    pub fn video_storage(&self) -> &'static str {
        self.video_storage
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
    }
}

/// Binds `count` SO_REUSEPORT listeners on `addr` (none if `addr` is None);
/// returns the address they share (port 0 resolved).
fn bind_all(addr: Option<SocketAddr>, count: usize) -> io::Result<(Option<SocketAddr>, Vec<std::net::TcpListener>)> {
    let Some(addr) = addr else { return Ok((None, Vec::new())) };
    // Bind once without SO_REUSEPORT first: that fails if anything already
    // holds the port (including another swiftlet, which SO_REUSEPORT would
    // otherwise silently share it with) and resolves port 0.
    let addr = std::net::TcpListener::bind(addr)?.local_addr()?;
    let listeners = (0..count).map(|_| bind_reuseport(addr)).collect::<io::Result<Vec<_>>>()?;
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
