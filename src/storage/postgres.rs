//! Each worker's PostgreSQL connections, pipelined.
//!
//! A worker opens `--pg-connections` connections (tokio-postgres), each driven
//! by a task on the worker's own runtime, and prepares its statements once per
//! connection. Requests take a [`PgSession`] round-robin and issue queries on
//! it; tokio-postgres writes every query queued since its last write in one
//! go, so the queries of all the requests on a core that are in flight at once
//! share round-trips instead of each waiting for its own. A handler that needs
//! several rows must start those queries together (`join_all`): a tokio-postgres
//! query is only sent when its future is first polled.
//!
//! Invariants: a slot holds a session only while its connection is up and
//! its statements are prepared; when the connection ends the slot is emptied at
//! once, so new requests fail fast with [`PgError::Unavailable`] instead of
//! queueing on a dead socket, and a supervisor task reconnects with backoff.
//! Every call is bounded by the storage timeout, so none hangs.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{Client, Connection, NoTls, Statement};

use super::backoff::Backoff;

/// Why a database call did not produce a result.
#[derive(Debug)]
pub enum PgError {
    /// No connection is up, or it went down during the call.
    Unavailable,
    /// The call took longer than the storage timeout.
    TimedOut,
    /// The transaction lost a serialization or deadlock race; retrying may work.
    Conflict,
    /// Anything else: a bug or a schema mismatch. Logged by whoever turns it into a response.
    Failed(tokio_postgres::Error),
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Unavailable => f.write_str("database unavailable"),
            PgError::TimedOut => f.write_str("database call timed out"),
            PgError::Conflict => f.write_str("transaction conflict"),
            PgError::Failed(e) => write!(f, "database error: {}", describe(e)),
        }
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> PgError {
        if e.is_closed() {
            return PgError::Unavailable;
        }
        if let Some(code) = e.code() {
            let class = &code.code()[..2];
            return if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
                PgError::Conflict
            } else if class == "08" || class == "57" {
                // Connection exceptions and operator intervention (shutdown, restart).
                PgError::Unavailable
            } else {
                PgError::Failed(e)
            };
        }
        if std::error::Error::source(&e).is_some_and(|s| s.is::<io::Error>()) {
            return PgError::Unavailable;
        }
        PgError::Failed(e)
    }
}

/// Socket-level counts, for the test that proves queries share round-trips.
#[derive(Debug, Default)]
pub struct PgStats {
    /// Successful write calls on PostgreSQL sockets.
    pub writes: Cell<u64>,
    /// Read calls that brought bytes.
    pub reads: Cell<u64>,
    /// Connections established and prepared.
    pub sessions: Cell<u64>,
}

/// One connection with its prepared statements.
pub struct PgSession {
    pub client: Client,
    /// `SELECT id, randomnumber FROM world WHERE id = $1`
    pub world_by_id: Statement,
    /// `SELECT id, message FROM fortune`
    pub fortunes: Statement,
    /// Sets `randomnumber` for many ids in one statement: `$1` ids, `$2` numbers.
    pub update_worlds: Statement,
    timeout: Duration,
}

impl PgSession {
    /// Awaits a call on this session's client, bounded by the storage timeout.
    pub async fn bounded<T>(&self, call: impl Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, PgError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(PgError::from),
            Err(_) => Err(PgError::TimedOut),
        }
    }
}

struct Slot {
    session: RefCell<Option<Rc<PgSession>>>,
}

/// A worker's PostgreSQL connections.
pub struct Postgres {
    slots: Vec<Rc<Slot>>,
    next: Cell<usize>,
    stats: Rc<PgStats>,
}

impl Postgres {
    /// Starts `connections` supervisor tasks on the current `LocalSet`. An empty
    /// or unparsable `url` starts none: every call is then `Unavailable`.
    pub fn start(url: &str, connections: usize, timeout: Duration) -> Postgres {
        let stats = Rc::new(PgStats::default());
        let mut pg = Postgres { slots: Vec::new(), next: Cell::new(0), stats: Rc::clone(&stats) };
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
            let slot = Rc::new(Slot { session: RefCell::new(None) });
            pg.slots.push(Rc::clone(&slot));
            tokio::task::spawn_local(supervise(slot, Rc::clone(&config), Rc::clone(&stats), timeout, index));
        }
        pg
    }

    /// A session that is up, taken round-robin.
    pub fn session(&self) -> Result<Rc<PgSession>, PgError> {
        let n = self.slots.len();
        for _ in 0..n {
            let i = self.next.get();
            self.next.set((i + 1) % n);
            if let Some(session) = &*self.slots[i].session.borrow() {
                return Ok(Rc::clone(session));
            }
        }
        Err(PgError::Unavailable)
    }

    /// Whether any connection is up.
    pub fn is_up(&self) -> bool {
        self.slots.iter().any(|s| s.session.borrow().is_some())
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

/// Keeps one slot connected for the life of the worker.
async fn supervise(
    slot: Rc<Slot>,
    config: Rc<tokio_postgres::Config>,
    stats: Rc<PgStats>,
    timeout: Duration,
    index: usize,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut failures: u32 = 0;
    loop {
        match tokio::time::timeout(timeout, open(&config, &stats)).await {
            Ok(Ok((client, connection))) => {
                let driver = tokio::task::spawn_local(connection);
                match tokio::time::timeout(timeout, prepare(client, timeout)).await {
                    Ok(Ok(session)) => {
                        if failures > 0 {
                            tracing::info!(connection = index, after_failures = failures, "PostgreSQL connected");
                        }
                        failures = 0;
                        backoff.reset();
                        stats.sessions.set(stats.sessions.get() + 1);
                        *slot.session.borrow_mut() = Some(Rc::new(session));
                        let ended = driver.await;
                        slot.session.borrow_mut().take();
                        let error = match ended {
                            Ok(Ok(())) => "closed".to_owned(),
                            Ok(Err(e)) => e.to_string(),
                            Err(e) => e.to_string(),
                        };
                        tracing::warn!(connection = index, error, "PostgreSQL connection lost; reconnecting");
                    }
                    Ok(Err(e)) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
                        // Normal at first start: the migration thread has not created them yet.
                        driver.abort();
                        tracing::debug!(connection = index, error = %describe(&e), "tables not there yet; waiting for migrations");
                        failures += 1;
                    }
                    Ok(Err(e)) => {
                        driver.abort();
                        report_failure(&mut failures, index, &format!("preparing statements: {}", describe(&e)));
                    }
                    Err(_) => {
                        driver.abort();
                        report_failure(&mut failures, index, "preparing statements timed out");
                    }
                }
            }
            Ok(Err(OpenError::Handshake(e))) => report_failure(&mut failures, index, &describe(&e)),
            Ok(Err(e)) => report_failure(&mut failures, index, &e.to_string()),
            Err(_) => report_failure(&mut failures, index, "connect timed out"),
        }
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

/// tokio-postgres prints a server error as just "db error"; this adds what the server said.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// The first failure in a row is a warning; later ones only every 50th, so a
/// database that stays down does not flood the log.
fn report_failure(failures: &mut u32, index: usize, error: &str) {
    if *failures % 50 == 0 {
        tracing::warn!(connection = index, failures = *failures + 1, error, "PostgreSQL unavailable; retrying");
    } else {
        tracing::debug!(connection = index, error, "PostgreSQL still unavailable");
    }
    *failures += 1;
}

async fn prepare(client: Client, timeout: Duration) -> Result<PgSession, tokio_postgres::Error> {
    let (world_by_id, fortunes, update_worlds) = tokio::try_join!(
        client.prepare("SELECT id, randomnumber FROM world WHERE id = $1"),
        client.prepare("SELECT id, message FROM fortune"),
        client.prepare(
            "UPDATE world SET randomnumber = u.r \
             FROM unnest($1::int4[], $2::int4[]) AS u(id, r) WHERE world.id = u.id"
        ),
    )?;
    Ok(PgSession { client, world_by_id, fortunes, update_worlds, timeout })
}

/// Connects to the first host that answers (TCP or a Unix socket directory)
/// and runs the start-up handshake.
pub(crate) async fn open(
    config: &tokio_postgres::Config,
    stats: &Rc<PgStats>,
) -> Result<(Client, Connection<CountedStream, NoTlsStream>), OpenError> {
    let ports = config.get_ports();
    let mut last = None;
    for (i, host) in config.get_hosts().iter().enumerate() {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let socket = match host {
            Host::Tcp(name) => TcpStream::connect((name.as_str(), port)).await.map(|s| {
                let _ = s.set_nodelay(true);
                Socket::Tcp(s)
            }),
            Host::Unix(dir) => UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).await.map(Socket::Unix),
        };
        match socket {
            Ok(socket) => {
                let stream = CountedStream { socket, stats: Rc::clone(stats) };
                return config.connect_raw(stream, NoTls).await.map_err(OpenError::Handshake);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(OpenError::Connect(last.unwrap_or_else(|| io::Error::other("DATABASE_URL names no host"))))
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// No host accepted the socket.
    Connect(io::Error),
    /// The socket opened but start-up or authentication failed.
    Handshake(tokio_postgres::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Connect(e) => write!(f, "connect: {e}"),
            OpenError::Handshake(e) => write!(f, "start-up: {}", describe(e)),
        }
    }
}

enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// The socket under a PostgreSQL connection, counting its reads and writes.
pub struct CountedStream {
    socket: Socket,
    stats: Rc<PgStats>,
}

impl AsyncRead for CountedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = match &mut this.socket {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        };
        if buf.filled().len() > before {
            this.stats.reads.set(this.stats.reads.get() + 1);
        }
        result
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = match &mut this.socket {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, data),
        };
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                this.stats.writes.set(this.stats.writes.get() + 1);
            }
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
