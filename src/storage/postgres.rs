//! Each worker's PostgreSQL connections, pipelined: [`PgPipeline`].
//!
//! A worker opens `--pg-connections` connections and prepares every statement
//! in the statement lists it was started with, once per connection. A
//! request encodes its queries as one *batch* — Bind/Execute for each query
//! and a single Sync — into the connection's output buffer and queues one
//! waiter; a driver task writes everything queued since its last write in one
//! go and hands each batch its rows when that batch's ReadyForQuery arrives.
//! So the twenty reads of `/queries?queries=20` cost the server one Sync, one
//! flush and usually one read, and the batches of every request on the core
//! that are in flight at once share writes and reads too.
//!
//! Why not tokio-postgres here: it sends a Sync per query, so PostgreSQL
//! flushes (and this worker wakes) once per query, and each query costs two
//! channel hand-offs; measured on /queries that was 2× axum's CPU per request.
//! tokio-postgres still runs the migrations, where none of that matters.
//!
//! Invariants:
//! - `waiters` holds one entry per batch queued or written and not yet
//!   answered, in batch order; PostgreSQL answers batches in the order sent,
//!   each ending with ReadyForQuery, so the front waiter owns every message
//!   until the next ReadyForQuery.
//! - A query that fails makes PostgreSQL skip the rest of its batch up to the
//!   Sync; the whole batch gets the error and later batches are unaffected.
//! - A slot holds a link only while its connection is up; when it ends every
//!   outstanding waiter gets [`PgError::Unavailable`] at once, new requests fail
//!   fast, and a supervisor reconnects with backoff. Every call is bounded by
//!   the storage timeout, so none hangs.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::str::FromStr;
use std::time::Duration;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::{DataRowBody, ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use postgres_types::ToSql;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{oneshot, Notify};
use tokio_postgres::config::Host;

use super::backoff::{Reconnect, Store};
use super::link::{pump, Duplex, IoCounts};
use super::statements::{Statement, StatementLists};
use crate::metrics::WorkerMetrics;

/// Batches outstanding per connection before callers wait for room.
pub const MAX_IN_FLIGHT: usize = 4096;
/// The most row bytes one batch's answer may bring (as PostgreSQL sends them).
/// Every answer a route builds from rows is bounded well below this by its
/// page size and the field caps (`api::requests`); this catches what those
/// miss (rows written before a cap existed, a query without a limit), so no
/// batch can make a worker hold more. Rows past it are dropped as they come
/// and the batch fails with [`PgError::ReplyTooLarge`].
pub const MAX_REPLY_BYTES: usize = 16 << 20;
/// Results come back in binary: an int4 is four big-endian bytes, text is its UTF-8.
const BINARY: i16 = 1;

/// Why a database call did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgError {
    /// No connection is up, or it went down during the call.
    Unavailable,
    /// The call took longer than the storage timeout.
    TimedOut,
    /// The batch lost a serialization or deadlock race; retrying may work.
    Conflict,
    /// A unique, check or foreign-key constraint refused a row: the caller
    /// maps the constraint's name to what the client did wrong.
    Violation { constraint: String },
    /// Anything else (a bug, a schema mismatch), with PostgreSQL's words.
    /// Logged by whoever turns it into a response.
    Failed(String),
    /// The batch's rows passed [`MAX_REPLY_BYTES`].
    ReplyTooLarge,
    /// A statement that must change a row found none (another request got
    /// there first); the batch was rolled back.
    Gone,
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Unavailable => f.write_str("database unavailable"),
            PgError::TimedOut => f.write_str("database call timed out"),
            PgError::Conflict => f.write_str("transaction conflict"),
            PgError::Violation { constraint } => write!(f, "constraint {constraint} refused a row"),
            PgError::Failed(e) => write!(f, "database error: {e}"),
            PgError::ReplyTooLarge => write!(f, "a database answer passed {MAX_REPLY_BYTES} bytes"),
            PgError::Gone => f.write_str("the row to change was gone"),
        }
    }
}

/// An ErrorResponse's SQLSTATE class decides what the caller may do about it.
fn classify(code: &str, message: String, constraint: String) -> PgError {
    match code {
        "40001" | "40P01" => PgError::Conflict,
        // unique_violation, check_violation, foreign_key_violation
        "23505" | "23514" | "23503" => PgError::Violation { constraint },
        // query_canceled: the statement_timeout we set (the storage timeout) ran out.
        "57014" => PgError::TimedOut,
        // no_data_found, from swiftlet_require: the row to change was gone.
        "P0002" => PgError::Gone,
        // Connection exceptions and operator intervention (shutdown, restart).
        c if c.starts_with("08") || c.starts_with("57") => PgError::Unavailable,
        _ => PgError::Failed(message),
    }
}

/// What an ErrorResponse says: its SQLSTATE, "code: message", and the name
/// of the constraint it is about (empty if none).
struct ServerError {
    code: String,
    text: String,
    constraint: String,
}

fn error_fields(body: &ErrorResponseBody) -> ServerError {
    let (mut code, mut message, mut constraint) = (String::new(), String::new(), String::new());
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        let value = || String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'C' => code = value(),
            b'M' => message = value(),
            b'n' => constraint = value(),
            _ => {}
        }
    }
    let text = format!("{code}: {message}");
    ServerError { code, text, constraint }
}

/// tokio-postgres prints a server error as just "db error"; this adds what the server said.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// The rows of one batch, query by query. Rows borrow the connection's read
/// buffer (reference-counted), so nothing is copied out of it.
#[derive(Debug, Default)]
pub struct BatchRows {
    rows: Vec<DataRowBody>,
    /// `ends[i]`: one past the last row of query i.
    ends: Vec<usize>,
}

impl BatchRows {
    /// How many queries completed.
    pub fn queries(&self) -> usize {
        self.ends.len()
    }

    /// The rows of query `i`.
    pub fn query(&self, i: usize) -> impl Iterator<Item = Row<'_>> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.rows[start..self.ends[i]].iter().map(Row)
    }
}

/// One result row, columns in binary format.
pub struct Row<'r>(&'r DataRowBody);

impl<'r> Row<'r> {
    fn column(&self, index: usize) -> Result<&'r [u8], PgError> {
        let range = self
            .0
            .ranges()
            .nth(index)
            .ok()
            .flatten()
            .flatten()
            .ok_or_else(|| PgError::Failed(format!("column {index} is missing or NULL")))?;
        Ok(&self.0.buffer()[range])
    }

    /// The raw bytes of a column, `None` when it is NULL.
    fn nullable(&self, index: usize) -> Result<Option<&'r [u8]>, PgError> {
        let range = self.0.ranges().nth(index).ok().flatten().ok_or_else(|| missing(index))?;
        Ok(range.map(|r| &self.0.buffer()[r]))
    }

    pub fn int4(&self, index: usize) -> Result<i32, PgError> {
        Ok(i32::from_be_bytes(fixed(self.column(index)?, index, "int4")?))
    }

    pub fn int8(&self, index: usize) -> Result<i64, PgError> {
        Ok(i64::from_be_bytes(fixed(self.column(index)?, index, "int8")?))
    }

    pub fn bool(&self, index: usize) -> Result<bool, PgError> {
        let [b] = fixed(self.column(index)?, index, "bool")?;
        Ok(b != 0)
    }

    /// A timestamptz as microseconds since the Unix epoch (PostgreSQL sends
    /// microseconds since 2000-01-01).
    pub fn timestamp_micros(&self, index: usize) -> Result<i64, PgError> {
        let pg = i64::from_be_bytes(fixed(self.column(index)?, index, "timestamptz")?);
        Ok(pg.saturating_add(swiftlet_protocol::pgcopy::UNIX_TO_PG_EPOCH_MICROS))
    }

    pub fn text(&self, index: usize) -> Result<&'r str, PgError> {
        utf8(self.column(index)?, index)
    }

    pub fn opt_text(&self, index: usize) -> Result<Option<&'r str>, PgError> {
        self.nullable(index)?.map(|b| utf8(b, index)).transpose()
    }

    /// A one-dimensional text[] without NULL elements, as borrowed strings.
    pub fn text_array(&self, index: usize) -> Result<Vec<&'r str>, PgError> {
        let bad = || PgError::Failed(format!("column {index} is not a text[]"));
        let array = postgres_protocol::types::array_from_sql(self.column(index)?).map_err(|_| bad())?;
        let mut values = array.values();
        let mut out = Vec::new();
        while let Some(value) = values.next().map_err(|_| bad())? {
            out.push(utf8(value.ok_or_else(bad)?, index)?);
        }
        Ok(out)
    }
}

#[cold]
fn missing(index: usize) -> PgError {
    PgError::Failed(format!("column {index} is missing"))
}

fn fixed<const N: usize>(bytes: &[u8], index: usize, ty: &str) -> Result<[u8; N], PgError> {
    bytes.try_into().map_err(|_| PgError::Failed(format!("column {index} is not an {ty}")))
}

fn utf8(bytes: &[u8], index: usize) -> Result<&str, PgError> {
    std::str::from_utf8(bytes).map_err(|_| PgError::Failed(format!("column {index} is not UTF-8")))
}

/// A timestamptz parameter, given as microseconds since the Unix epoch;
/// `i64::MIN` and `i64::MAX` are PostgreSQL's `-infinity` and `infinity`.
#[derive(Debug, Clone, Copy)]
pub struct Timestamptz(pub i64);

impl ToSql for Timestamptz {
    fn to_sql(
        &self,
        _: &postgres_types::Type,
        out: &mut BytesMut,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let pg = match self.0 {
            i64::MIN | i64::MAX => self.0,
            unix => unix.saturating_sub(swiftlet_protocol::pgcopy::UNIX_TO_PG_EPOCH_MICROS),
        };
        out.extend_from_slice(&pg.to_be_bytes());
        Ok(postgres_types::IsNull::No)
    }

    fn accepts(ty: &postgres_types::Type) -> bool {
        *ty == postgres_types::Type::TIMESTAMPTZ
    }

    postgres_types::to_sql_checked!();
}

/// Encodes the queries of one batch.
pub struct Batch<'b> {
    out: &'b mut BytesMut,
    queries: usize,
}

impl Batch<'_> {
    /// Adds one execution of a prepared statement. The parameters must match
    /// the statement's declared types.
    pub fn query(&mut self, statement: &Statement, params: &[&(dyn ToSql + Sync)]) -> Result<(), PgError> {
        if params.len() != statement.params.len() {
            return Err(PgError::Failed(format!(
                "{}: {} parameters for {}",
                statement.name,
                params.len(),
                statement.params.len()
            )));
        }
        let values = params.iter().zip(statement.params);
        frontend::bind(
            "",
            statement.name,
            Some(BINARY),
            values,
            |(value, ty), buf| match value.to_sql_checked(ty, buf)? {
                postgres_types::IsNull::Yes => Ok(postgres_protocol::IsNull::Yes),
                postgres_types::IsNull::No => Ok(postgres_protocol::IsNull::No),
            },
            Some(BINARY),
            self.out,
        )
        .map_err(|e| {
            let why = match e {
                frontend::BindError::Conversion(e) => e.to_string(),
                frontend::BindError::Serialization(e) => e.to_string(),
            };
            PgError::Failed(format!("{}: cannot encode a parameter: {why}", statement.name))
        })?;
        frontend::execute("", 0, self.out).map_err(|e| PgError::Failed(e.to_string()))?;
        self.queries += 1;
        Ok(())
    }
}

struct Waiter {
    tx: oneshot::Sender<Result<BatchRows, PgError>>,
}

/// What the driver is collecting for the front waiter.
#[derive(Default)]
struct Collecting {
    rows: BatchRows,
    error: Option<PgError>,
    /// Row bytes collected for this batch so far.
    bytes: usize,
}

/// One live connection.
///
/// A batch that times out with no batch at all answered on the connection
/// since it was queued means the server is hung or gone without a word (a
/// failover behind a silent network): the connection is replaced at once,
/// rather than costing every later call its whole timeout until TCP
/// keepalive notices.
pub struct PgPipeline {
    up: Cell<bool>,
    /// Batches answered (ReadyForQuery) on this connection.
    answered: Cell<u64>,
    /// A batch timed out with none answered since it was queued: replace this connection.
    stalled: Notify,
    out: RefCell<BytesMut>,
    waiters: RefCell<VecDeque<Waiter>>,
    queued: Notify,
    room: Notify,
    timeout: Duration,
    stats: Rc<PgStats>,
}

impl PgPipeline {
    /// Sends one batch (the queries `encode` adds, then one Sync) and waits for
    /// all its rows. Fails at once if the connection is down.
    pub async fn run(&self, encode: impl FnOnce(&mut Batch<'_>) -> Result<(), PgError>) -> Result<BatchRows, PgError> {
        let exchange = async {
            while self.up.get() && self.waiters.borrow().len() >= MAX_IN_FLIGHT {
                self.room.notified().await;
            }
            if !self.up.get() {
                return Err(PgError::Unavailable);
            }
            let rx = {
                let mut out = self.out.borrow_mut();
                let mark = out.len();
                let mut batch = Batch { out: &mut out, queries: 0 };
                if let Err(e) = encode(&mut batch) {
                    out.truncate(mark);
                    return Err(e);
                }
                let queries = batch.queries;
                frontend::sync(&mut out);
                self.stats.queries.set(self.stats.queries.get() + queries as u64);
                let (tx, rx) = oneshot::channel();
                self.waiters.borrow_mut().push_back(Waiter { tx });
                rx
            };
            self.queued.notify_one();
            rx.await.unwrap_or(Err(PgError::Unavailable))
        };
        let answered_before = self.answered.get();
        let outcome = tokio::time::timeout(self.timeout, exchange).await.unwrap_or(Err(PgError::TimedOut));
        if matches!(outcome, Err(PgError::TimedOut)) && self.answered.get() == answered_before && self.up.get() {
            self.up.set(false);
            self.stalled.notify_one();
        }
        outcome
    }

    fn fail_all(&self) {
        self.up.set(false);
        self.out.borrow_mut().clear();
        for waiter in self.waiters.borrow_mut().drain(..) {
            let _ = waiter.tx.send(Err(PgError::Unavailable));
        }
        self.room.notify_waiters();
    }
}

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

struct Slot {
    link: RefCell<Option<Rc<PgPipeline>>>,
}

/// A worker's PostgreSQL connections.
pub struct Postgres {
    slots: Vec<Rc<Slot>>,
    stats: Rc<PgStats>,
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
struct Opening {
    config: Rc<tokio_postgres::Config>,
    statements: StatementLists,
    timeout: Duration,
    /// Which of the worker's connections this is, for the log.
    index: usize,
}

/// Keeps one slot connected for the life of the worker.
async fn supervise(slot: Rc<Slot>, opening: Opening, stats: Rc<PgStats>, mut reconnect: Reconnect) {
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
                });
                *slot.link.borrow_mut() = Some(Rc::clone(&link));
                let mut collecting = Collecting::default();
                let error = tokio::select! {
                    error = pump(&socket, &link.out, &link.queued, &stats.io, |rbuf| deliver(&link, rbuf, &mut collecting)) => error,
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

/// One connection that speaks the simple-query protocol, one exchange at a
/// time: the ingest writer's (`ingest::writer`). An exchange is written in one
/// go — a Query, and the CopyData and CopyDone of a `COPY … FROM STDIN` in it —
/// and read back up to its ReadyForQuery, so a whole COPY transaction costs a
/// single round-trip. Opened, authenticated and prepared like the pipelined
/// connections.
pub struct SimpleSession {
    socket: Socket,
    buf: BytesMut,
}

impl SimpleSession {
    pub async fn connect(url: &str) -> Result<SimpleSession, String> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| format!("DATABASE_URL: {e}"))?;
        // No statement timeout: the ingest writer's COPY batches carry
        // acknowledged events, and the writer retries a failed batch itself.
        let socket = open(&config, None, &[]).await.map_err(|e| e.to_string())?;
        Ok(SimpleSession { socket, buf: BytesMut::with_capacity(1024) })
    }

    /// Sends `messages` (encoded frontend messages) and reads every answer up
    /// to the ReadyForQuery that ends them. Fails with the first error the
    /// server reported; a session that failed is left in an unknown state and
    /// should be dropped.
    pub async fn exchange(&mut self, messages: &[u8]) -> Result<(), PgError> {
        self.socket.write_all(messages).await.map_err(|_| PgError::Unavailable)?;
        let mut error = None;
        loop {
            let message = match next_message(&mut self.socket, &mut self.buf).await {
                Ok(message) => message,
                // The server may end the session after an error: report that error.
                Err(_) => return Err(error.unwrap_or(PgError::Unavailable)),
            };
            match message {
                Message::ErrorResponse(body) => {
                    let e = error_fields(&body);
                    error.get_or_insert(classify(&e.code, e.text, e.constraint));
                }
                Message::ReadyForQuery(_) => return error.map_or(Ok(()), Err),
                Message::CommandComplete(_) | Message::CopyInResponse(_) | Message::EmptyQueryResponse => {}
                Message::NoticeResponse(_) | Message::ParameterStatus(_) | Message::NotificationResponse(_) => {}
                _ => return Err(PgError::Failed("unexpected message from PostgreSQL".into())),
            }
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
enum OpenError {
    /// No host accepted the socket, or it failed during start-up.
    Io(io::Error),
    /// The server refused us (authentication, no such database, ...).
    Refused(String),
    /// The statements name tables that do not exist yet.
    MissingTables(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(e) => write!(f, "connect: {e}"),
            OpenError::Refused(e) => write!(f, "refused: {e}"),
            OpenError::MissingTables(e) => write!(f, "preparing statements: {e}"),
        }
    }
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

/// Connects to the first host that answers, authenticates and prepares the
/// statements. TCP sockets get keepalive probes, so a server that vanished
/// without a FIN or reset (a failover, a dropped route) is noticed in about
/// half a minute rather than when the kernel's two-hour default runs out.
async fn open(
    config: &tokio_postgres::Config,
    statement_timeout: Option<Duration>,
    statements: StatementLists,
) -> Result<Socket, OpenError> {
    let ports = config.get_ports();
    let mut last = io::Error::other("DATABASE_URL names no host");
    for (i, host) in config.get_hosts().iter().enumerate() {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let socket = match host {
            Host::Tcp(name) => TcpStream::connect((name.as_str(), port)).await.map(|s| {
                let _ = s.set_nodelay(true);
                crate::storage::link::keep_alive(&s);
                Socket::Tcp(s)
            }),
            Host::Unix(dir) => UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).await.map(Socket::Unix),
        };
        match socket {
            Ok(mut socket) => {
                start_up(&mut socket, config, statement_timeout).await?;
                prepare(&mut socket, statements).await?;
                return Ok(socket);
            }
            Err(e) => last = e,
        }
    }
    Err(OpenError::Io(last))
}

/// Reads one whole message during start-up.
async fn next_message(socket: &mut Socket, buf: &mut BytesMut) -> Result<Message, OpenError> {
    loop {
        if let Some(message) = Message::parse(buf)? {
            return Ok(message);
        }
        if socket.read_buf(buf).await? == 0 {
            return Err(OpenError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

/// The start-up handshake: trust, cleartext, MD5 or SCRAM-SHA-256 authentication.
async fn start_up(
    socket: &mut Socket,
    config: &tokio_postgres::Config,
    statement_timeout: Option<Duration>,
) -> Result<(), OpenError> {
    let user = config.get_user().unwrap_or("postgres");
    let password = config.get_password().unwrap_or_default();
    // Generic plans only: every statement is prepared once and run with
    // varying parameters, and re-planning each execution (PostgreSQL's
    // default while a custom plan looks cheaper) cost 0.8 ms per tag-filtered
    // list, three times the query itself. Each statement's generic plan is
    // an index walk (see the EXPLAINs in docs/api-queries.md). A generic plan
    // follows the statistics: PostgreSQL re-plans when ANALYZE (or
    // autovacuum's) changes them. One trap, measured: statistics taken of an
    // *empty* table say it is empty, and the plan then scans it, which
    // hurts as it fills until the next analyze; a never-analyzed table is
    // assumed to span 10 pages and gets index plans. Re-planning on a timer
    // instead was tried and dropped: each refresh is a burst of ~35 plans per
    // connection, and the p99 of the API mix at 4,500/s went from 2-4 ms to
    // 4-39 ms per 3 s window (perf/RESULTS.md, notes on the product API runs).
    let mut params = vec![
        ("user", user),
        ("client_encoding", "UTF8"),
        ("application_name", "swiftlet"),
        ("plan_cache_mode", "force_generic_plan"),
    ];
    if let Some(db) = config.get_dbname() {
        params.push(("database", db));
    }
    // In milliseconds; the startup packet takes any setting by name.
    let statement_timeout = statement_timeout.map(|t| t.as_millis().max(1).to_string());
    if let Some(ms) = &statement_timeout {
        params.push(("statement_timeout", ms));
    }
    let mut out = BytesMut::new();
    frontend::startup_message(params, &mut out)?;
    socket.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(1024);
    let mut scram: Option<ScramSha256> = None;
    loop {
        out.clear();
        match next_message(socket, &mut buf).await? {
            Message::AuthenticationOk | Message::ParameterStatus(_) | Message::BackendKeyData(_) => {}
            Message::NoticeResponse(_) => {}
            Message::AuthenticationCleartextPassword => frontend::password_message(password, &mut out)?,
            Message::AuthenticationMd5Password(body) => {
                let hash = postgres_protocol::authentication::md5_hash(user.as_bytes(), password, body.salt());
                frontend::password_message(hash.as_bytes(), &mut out)?;
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut offered = false;
                while let Some(m) = mechanisms.next()? {
                    offered |= m == SCRAM_SHA_256;
                }
                if !offered {
                    return Err(OpenError::Refused("the server offers no SASL mechanism we speak".into()));
                }
                let s = ScramSha256::new(password, ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)?;
                scram = Some(s);
            }
            Message::AuthenticationSaslContinue(body) => {
                let s = scram.as_mut().ok_or_else(|| OpenError::Refused("unexpected SASL message".into()))?;
                s.update(body.data())?;
                frontend::sasl_response(s.message(), &mut out)?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let s = scram.as_mut().ok_or_else(|| OpenError::Refused("unexpected SASL message".into()))?;
                s.finish(body.data())?;
            }
            Message::ErrorResponse(body) => return Err(OpenError::Refused(error_fields(&body).text)),
            Message::ReadyForQuery(_) => return Ok(()),
            _ => return Err(OpenError::Refused("unsupported authentication method".into())),
        }
        if !out.is_empty() {
            socket.write_all(&out).await?;
        }
    }
}

/// Parses every statement once, in one round-trip.
async fn prepare(socket: &mut Socket, statements: StatementLists) -> Result<(), OpenError> {
    if statements.is_empty() {
        return Ok(());
    }
    let mut out = BytesMut::new();
    for statement in statements.iter().flat_map(|list| list.iter()) {
        frontend::parse(statement.name, statement.sql, statement.params.iter().map(|t| t.oid()), &mut out)?;
    }
    frontend::sync(&mut out);
    socket.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(1024);
    let mut error = None;
    loop {
        match next_message(socket, &mut buf).await? {
            Message::ErrorResponse(body) => error = Some(error_fields(&body)),
            Message::ReadyForQuery(_) => break,
            _ => {}
        }
    }
    match error {
        // Undefined table, column or function: migrations are still running.
        Some(e) if matches!(e.code.as_str(), "42P01" | "42703" | "42883") => Err(OpenError::MissingTables(e.text)),
        Some(e) => Err(OpenError::Refused(e.text)),
        None => Ok(()),
    }
}

/// Hands every complete batch result in `rbuf` to its waiter, in order.
fn deliver(link: &PgPipeline, rbuf: &mut BytesMut, collecting: &mut Collecting) -> io::Result<()> {
    let had_room = link.waiters.borrow().len() < MAX_IN_FLIGHT;
    while let Some(message) = Message::parse(rbuf)? {
        match message {
            Message::DataRow(row) => {
                collecting.bytes += row.buffer().len();
                if collecting.bytes <= MAX_REPLY_BYTES {
                    collecting.rows.rows.push(row);
                } else if collecting.error.is_none() {
                    collecting.error = Some(PgError::ReplyTooLarge);
                    collecting.rows = BatchRows::default();
                }
            }
            Message::CommandComplete(_) | Message::EmptyQueryResponse => {
                collecting.rows.ends.push(collecting.rows.rows.len())
            }
            Message::ErrorResponse(body) => {
                let e = error_fields(&body);
                if link.waiters.borrow().is_empty() {
                    // A FATAL outside any batch (an administrator's shutdown): the end is near.
                    return Err(io::Error::other(e.text));
                }
                collecting.error.get_or_insert(classify(&e.code, e.text, e.constraint));
            }
            Message::ReadyForQuery(_) => {
                link.answered.set(link.answered.get() + 1);
                let done = std::mem::take(collecting);
                let waiter = link.waiters.borrow_mut().pop_front();
                match waiter {
                    Some(waiter) => {
                        // The caller may have timed out and gone; that is fine.
                        let _ = waiter.tx.send(match done.error {
                            Some(e) => Err(e),
                            None => Ok(done.rows),
                        });
                    }
                    None => return Err(io::Error::new(io::ErrorKind::InvalidData, "a result nobody asked for")),
                }
            }
            Message::BindComplete | Message::ParseComplete | Message::NoData | Message::PortalSuspended => {}
            Message::NoticeResponse(_) | Message::ParameterStatus(_) | Message::NotificationResponse(_) => {}
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected message from PostgreSQL")),
        }
    }
    if !had_room && link.waiters.borrow().len() < MAX_IN_FLIGHT {
        link.room.notify_waiters();
    }
    Ok(())
}

/// The socket under a connection: TCP, or a Unix socket in a directory.
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Duplex for Socket {
    async fn ready(&self, interest: Interest) -> io::Result<tokio::io::Ready> {
        match self {
            Socket::Tcp(s) => s.ready(interest).await,
            Socket::Unix(s) => s.ready(interest).await,
        }
    }

    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.try_write(data),
            Socket::Unix(s) => s.try_write(data),
        }
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.try_read_buf(buf),
            Socket::Unix(s) => s.try_read_buf(buf),
        }
    }
}

/// The blocking-style calls of the start-up handshake.
impl Socket {
    async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read_buf(buf).await,
            Socket::Unix(s) => s.read_buf(buf).await,
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.write_all(data).await,
            Socket::Unix(s) => s.write_all(data).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        let classify = |code: &str, text: &str| classify(code, text.into(), "c".into());
        assert_eq!(classify("40P01", "x"), PgError::Conflict);
        assert_eq!(classify("40001", "x"), PgError::Conflict);
        assert_eq!(classify("57P01", "x"), PgError::Unavailable);
        assert_eq!(classify("08006", "x"), PgError::Unavailable);
        assert_eq!(classify("23505", "dup"), PgError::Violation { constraint: "c".into() });
        assert_eq!(classify("42P01", "no table"), PgError::Failed("no table".into()));
    }
}
