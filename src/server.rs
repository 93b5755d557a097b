//! Starting and stopping the whole server: bind one SO_REUSEPORT listener per
//! worker, start the worker threads (pinned to cores if asked), and on
//! shutdown tell them all and wait for them.

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::config::Config;
use crate::worker;

pub struct Server {
    local_addr: SocketAddr,
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
        let objects = crate::objects::ObjectStorage::from_config(&config).map_err(io::Error::other)?;
        tracing::info!(storage = objects.kind, "video storage");
        // Bind once without SO_REUSEPORT first: that fails if anything already
        // holds the port (including another swiftlet, which SO_REUSEPORT would
        // otherwise silently share it with) and resolves port 0.
        let local_addr = std::net::TcpListener::bind(config.listen)?.local_addr()?;
        let listeners = (0..count).map(|_| bind_reuseport(local_addr)).collect::<io::Result<Vec<_>>>()?;
        let cores = if config.pin { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
        let (shutdown, watcher) = watch::channel(false);

        let mut workers = Vec::with_capacity(count);
        for (index, listener) in listeners.into_iter().enumerate() {
            let config = config.clone();
            let watcher = watcher.clone();
            let core = (!cores.is_empty()).then(|| cores[(config.first_core + index) % cores.len()]);
            let handle = std::thread::Builder::new().name(format!("swiftlet-worker-{index}")).spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        tracing::warn!(worker = index, core = core.id, "could not pin worker to core");
                    }
                }
                if let Err(e) = worker::run(index, listener, config, watcher) {
                    tracing::error!(worker = index, error = %e, "worker failed");
                }
            })?;
            workers.push(handle);
        }
        Ok(Server { local_addr, workers, shutdown })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
