//! Opening a connection: the start-up handshake (trust, cleartext, MD5 or
//! SCRAM-SHA-256), the statements prepared on it, the socket it runs over,
//! and the simple-protocol session the ingest writer uses.

use crate::storage::link::Duplex;
use crate::storage::statements::StatementLists;
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use std::io;
use std::str::FromStr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::Host;

use super::error::{classify, error_fields, PgError};

/// One connection that speaks the simple-query protocol, one exchange at a
/// time: the ingest writer's (`ingest::writer`). An exchange is written in one
/// go — a Query, and the CopyData and CopyDone of a `COPY … FROM STDIN` in it —
/// and read back up to its ReadyForQuery, so a whole COPY transaction costs a
/// single round-trip. Opened, authenticated and prepared like the pipelined
/// connections.
pub struct SimpleSession {
    pub(super) socket: Socket,
    pub(super) buf: BytesMut,
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
pub(super) enum OpenError {
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
pub(super) async fn open(
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
pub(super) async fn next_message(socket: &mut Socket, buf: &mut BytesMut) -> Result<Message, OpenError> {
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
pub(super) async fn start_up(
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
pub(super) async fn prepare(socket: &mut Socket, statements: StatementLists) -> Result<(), OpenError> {
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

/// The socket under a connection: TCP, or a Unix socket in a directory.
pub(super) enum Socket {
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

    /// TCP only: a Unix socket's poll ignores the read floor, so it keeps waking per segment.
    fn set_read_floor(&self, bytes: usize) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_read_floor(bytes),
            Socket::Unix(_) => Ok(()),
        }
    }

    fn forget_readable(&self) {
        match self {
            Socket::Tcp(s) => s.forget_readable(),
            Socket::Unix(s) => {
                let _ = s.try_io(Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
            }
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
