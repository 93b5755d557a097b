//! A pipelined Redis client: one connection per worker, shared by every
//! request on that worker.
//!
//! Callers encode their command into the link's output buffer and queue a
//! waiter; one driver task writes everything queued since its last write in
//! one go and completes the waiters in order as replies arrive (Redis answers
//! a connection's commands in the order it sent them). So a hundred requests
//! that each want one key cost one write and, usually, one read.
//!
//! Invariants:
//! - `waiters` holds one entry per command that has been queued or written and
//!   not yet answered, in command order; the n-th reply belongs to the front.
//! - At most [`MAX_IN_FLIGHT`] commands are outstanding; callers beyond it wait
//!   for room (within their timeout), which bounds memory on both ends.
//! - While the link is down, calls fail at once with [`CacheError::Unavailable`]
//!   (a cache treats that as a miss); when it goes down, every outstanding
//!   waiter gets that error and the driver reconnects with backoff.
//! - A Redis that is connected but does not answer (hung, or gone without a
//!   FIN) is given up on at the first call that times out with no reply at all
//!   having arrived since it was sent: the link goes down at once, so later
//!   calls miss without waiting, and a new connection is up only once Redis
//!   answers a PING on it. TCP keepalive catches a silent peer with no calls.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BytesMut};

use swiftlet_protocol::resp::{decode_reply, encode_command, Reply};
use swiftlet_protocol::Parse;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};

use super::backoff::{Reconnect, Store};
use super::link::{pump, IoCounts};

/// Outstanding commands per link before callers wait for room.
pub const MAX_IN_FLIGHT: usize = 4096;
/// How long the cache is bypassed (every call misses at once) after Redis
/// left a call unanswered for the whole storage timeout.
pub const STALL_BYPASS: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheError {
    /// Not connected, or the connection dropped before the reply.
    Unavailable,
    /// No reply within the storage timeout.
    TimedOut,
    /// Redis answered with an error.
    Command(String),
    /// Redis answered with a reply of the wrong type for the command.
    UnexpectedReply,
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::Unavailable => f.write_str("Redis unavailable"),
            CacheError::TimedOut => f.write_str("Redis call timed out"),
            CacheError::Command(e) => write!(f, "Redis error: {e}"),
            CacheError::UnexpectedReply => f.write_str("unexpected Redis reply"),
        }
    }
}

/// Where and how to connect, from `redis://[[user]:password@]host[:port][/db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: u32,
}

impl RedisTarget {
    pub fn parse(url: &str) -> Result<RedisTarget, String> {
        let rest = url.strip_prefix("redis://").ok_or("must start with redis://")?;
        let (authority, db) = match rest.split_once('/') {
            Some((a, "")) => (a, 0),
            Some((a, db)) => (a, db.parse().map_err(|_| format!("{db:?} is not a database number"))?),
            None => (rest, 0),
        };
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            None => (None, None),
            Some(c) => match c.split_once(':') {
                Some(("", p)) => (None, Some(p.to_owned())),
                Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
                None => (None, Some(c.to_owned())),
            },
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or("unclosed [ in host")?;
            (h, p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("{p:?} is not a port"))?,
            None => 6379,
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        Ok(RedisTarget { host: host.to_owned(), port, user, password, db })
    }
}

enum Waiter {
    Reply(oneshot::Sender<Result<Reply, CacheError>>),
    /// A fire-and-forget command: its reply is read and dropped.
    Discard,
}

struct Link {
    up: Cell<bool>,
    /// Commands encoded but not yet handed to the driver's write buffer.
    out: RefCell<BytesMut>,
    /// Where one command is encoded before it is appended to `out`.
    scratch: RefCell<Vec<u8>>,
    waiters: RefCell<VecDeque<Waiter>>,
    /// Commands were queued.
    queued: Notify,
    /// In-flight dropped below the cap, or the link went down.
    room: Notify,
    /// Socket writes and reads, for the pipelining test.
    io: IoCounts,
    /// Replies received on the current connection, to tell a slow link from a dead one.
    replies: Cell<u64>,
    /// A call timed out with no reply since it was sent: drop this connection.
    stalled: Notify,
}

impl Link {
    fn queue(&self, args: &[&[u8]], waiter: Waiter) {
        let mut scratch = self.scratch.borrow_mut();
        scratch.clear();
        encode_command(&mut scratch, args);
        self.out.borrow_mut().extend_from_slice(&scratch);
        self.waiters.borrow_mut().push_back(waiter);
        self.queued.notify_one();
    }

    fn has_room(&self) -> bool {
        self.waiters.borrow().len() < MAX_IN_FLIGHT
    }

    /// Fails every outstanding command: the link is gone.
    fn fail_all(&self) {
        self.up.set(false);
        self.out.borrow_mut().clear();
        for waiter in self.waiters.borrow_mut().drain(..) {
            if let Waiter::Reply(tx) = waiter {
                let _ = tx.send(Err(CacheError::Unavailable));
            }
        }
        self.room.notify_waiters();
    }
}

/// A worker's Redis connection.
pub struct Redis {
    link: Option<Rc<Link>>,
    timeout: Duration,
}

impl Redis {
    /// Starts the driver task on the current `LocalSet`, counted in `metrics`
    /// (the worker's gauges) if given. An empty or unparsable `url` starts
    /// none: every call is then `Unavailable`.
    pub fn start(
        url: &str,
        timeout: Duration,
        metrics: Option<std::sync::Arc<crate::metrics::WorkerMetrics>>,
    ) -> Redis {
        if url.is_empty() {
            return Redis { link: None, timeout };
        }
        let target = match RedisTarget::parse(url) {
            Ok(target) => target,
            Err(e) => {
                tracing::error!(error = %e, "REDIS_URL does not parse; running without the cache");
                return Redis { link: None, timeout };
            }
        };
        let link = Rc::new(Link {
            up: Cell::new(false),
            out: RefCell::new(BytesMut::new()),
            scratch: RefCell::new(Vec::new()),
            waiters: RefCell::new(VecDeque::new()),
            queued: Notify::new(),
            room: Notify::new(),
            io: IoCounts::default(),
            replies: Cell::new(0),
            stalled: Notify::new(),
        });
        let reconnect = Reconnect::new(Store::Redis, 0, metrics);
        tokio::task::spawn_local(drive(Rc::clone(&link), target, timeout, reconnect));
        Redis { link: Some(link), timeout }
    }

    /// Whether a Redis is configured at all (a URL that parsed).
    pub fn is_configured(&self) -> bool {
        self.link.is_some()
    }

    pub fn is_up(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.up.get())
    }

    /// Socket writes so far (for tests that check commands share writes).
    pub fn writes(&self) -> u64 {
        self.link.as_ref().map_or(0, |l| l.io.writes.get())
    }

    /// Sends one command and waits for its reply. An error reply is `Err(Command)`.
    pub async fn call(&self, args: &[&[u8]]) -> Result<Reply, CacheError> {
        let link = self.link.as_ref().filter(|l| l.up.get()).ok_or(CacheError::Unavailable)?;
        let exchange = async {
            while link.up.get() && !link.has_room() {
                link.room.notified().await;
            }
            if !link.up.get() {
                return Err(CacheError::Unavailable);
            }
            let (tx, rx) = oneshot::channel();
            link.queue(args, Waiter::Reply(tx));
            match rx.await {
                Ok(Ok(Reply::Error(e))) => Err(CacheError::Command(e)),
                Ok(result) => result,
                Err(_) => Err(CacheError::Unavailable),
            }
        };
        let replies_before = link.replies.get();
        let outcome = tokio::time::timeout(self.timeout, exchange).await.unwrap_or(Err(CacheError::TimedOut));
        if matches!(outcome, Err(CacheError::TimedOut)) && link.replies.get() == replies_before && link.up.get() {
            // Not one reply in a whole timeout: hung or gone. Give it up now
            // rather than make every request wait out its own timeout.
            link.up.set(false);
            link.stalled.notify_one();
        }
        outcome
    }

    /// Queues a command whose reply nobody waits for. Returns false (and sends
    /// nothing) when the link is down or full: a cache write may be skipped.
    pub fn send(&self, args: &[&[u8]]) -> bool {
        match &self.link {
            Some(link) if link.up.get() && link.has_room() => {
                link.queue(args, Waiter::Discard);
                true
            }
            _ => false,
        }
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CacheError> {
        bulk(self.call(&[b"GET", key]).await?)
    }

    pub async fn mget(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        args.push(b"MGET");
        args.extend_from_slice(keys);
        match self.call(&args).await? {
            Reply::Array(values) if values.len() == keys.len() => values.into_iter().map(bulk).collect(),
            _ => Err(CacheError::UnexpectedReply),
        }
    }

    /// SET with a time to live, in seconds.
    pub async fn set_ex(&self, key: &[u8], value: &[u8], ttl: u32) -> Result<(), CacheError> {
        let ttl = ttl.to_string();
        match self.call(&[b"SET", key, value, b"EX", ttl.as_bytes()]).await? {
            Reply::SimpleString(_) => Ok(()),
            _ => Err(CacheError::UnexpectedReply),
        }
    }

    /// Deletes keys; returns how many existed.
    pub async fn del(&self, keys: &[&[u8]]) -> Result<i64, CacheError> {
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        args.push(b"DEL");
        args.extend_from_slice(keys);
        integer(self.call(&args).await?)
    }

    pub async fn incr(&self, key: &[u8]) -> Result<i64, CacheError> {
        integer(self.call(&[b"INCR", key]).await?)
    }

    /// Sets a key's time to live; false when the key does not exist.
    pub async fn expire(&self, key: &[u8], seconds: u32) -> Result<bool, CacheError> {
        let seconds = seconds.to_string();
        Ok(integer(self.call(&[b"EXPIRE", key, seconds.as_bytes()]).await?)? == 1)
    }
}

fn bulk(reply: Reply) -> Result<Option<Vec<u8>>, CacheError> {
    match reply {
        Reply::BulkString(v) => Ok(Some(v)),
        Reply::Null => Ok(None),
        _ => Err(CacheError::UnexpectedReply),
    }
}

fn integer(reply: Reply) -> Result<i64, CacheError> {
    match reply {
        Reply::Integer(n) => Ok(n),
        _ => Err(CacheError::UnexpectedReply),
    }
}

/// Keeps the link connected for the life of the worker.
async fn drive(link: Rc<Link>, target: RedisTarget, timeout: Duration, mut reconnect: Reconnect) {
    loop {
        match tokio::time::timeout(timeout, connect(&target)).await {
            Ok(Ok(stream)) => {
                reconnect.connected();
                link.replies.set(0);
                link.up.set(true);
                let error = tokio::select! {
                    error = pump(&stream, &link.out, &link.queued, &link.io, None, |rbuf| deliver(&link, rbuf)) => error,
                    () = link.stalled.notified() => io::Error::new(io::ErrorKind::TimedOut, "no reply within the storage timeout"),
                };
                link.fail_all();
                reconnect.lost();
                if error.kind() == io::ErrorKind::TimedOut {
                    // Hung, not refusing: a new connection may well answer its
                    // PING and hang again, so lookups miss at once for a while.
                    tracing::warn!(bypass_s = STALL_BYPASS.as_secs(), "Redis does not answer; bypassing the cache");
                    tokio::time::sleep(STALL_BYPASS).await;
                    continue;
                }
                tracing::warn!(error = %error, "Redis connection lost; reconnecting");
            }
            // While Redis is down, cache lookups are misses.
            Ok(Err(e)) => reconnect.failed(&e.to_string()),
            Err(_) => reconnect.failed("connect timed out"),
        }
        reconnect.wait().await;
    }
}

/// Opens the socket, authenticates and selects the database if asked, and
/// waits for the answer to a PING: a Redis that accepts connections but does
/// not answer is not up.
async fn connect(target: &RedisTarget) -> io::Result<TcpStream> {
    let stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
    stream.set_nodelay(true)?;
    super::link::keep_alive(&stream);
    let mut hello = Vec::new();
    encode_command(&mut hello, &[b"PING"]);
    let mut expected = 1;
    if let Some(password) = &target.password {
        match &target.user {
            Some(user) => encode_command(&mut hello, &[b"AUTH", user.as_bytes(), password.as_bytes()]),
            None => encode_command(&mut hello, &[b"AUTH", password.as_bytes()]),
        }
        expected += 1;
    }
    if target.db != 0 {
        encode_command(&mut hello, &[b"SELECT", target.db.to_string().as_bytes()]);
        expected += 1;
    }
    if expected > 0 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        stream.write_all(&hello).await?;
        let mut buf = Vec::with_capacity(256);
        let mut pos = 0;
        while expected > 0 {
            match decode_reply(&buf[pos..]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))? {
                Parse::Complete((Reply::Error(e), _)) => return Err(io::Error::other(format!("Redis refused: {e}"))),
                Parse::Complete((_, used)) => {
                    pos += used;
                    expected -= 1;
                }
                Parse::Incomplete => {
                    if stream.read_buf(&mut buf).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
        }
        return Ok(stream);
    }
    Ok(stream)
}

/// Hands every complete reply in `rbuf` to its waiter, in order.
fn deliver(link: &Link, rbuf: &mut BytesMut) -> io::Result<()> {
    let mut pos = 0;
    let had_room = link.has_room();
    loop {
        let (reply, used) = match decode_reply(&rbuf[pos..]) {
            Ok(Parse::Complete(r)) => r,
            Ok(Parse::Incomplete) => break,
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        pos += used;
        link.replies.set(link.replies.get() + 1);
        match link.waiters.borrow_mut().pop_front() {
            Some(Waiter::Reply(tx)) => {
                // The caller may have timed out and gone; that is fine.
                let _ = tx.send(Ok(reply));
            }
            Some(Waiter::Discard) => {
                if let Reply::Error(e) = reply {
                    tracing::debug!(error = %e, "a fire-and-forget Redis command failed");
                }
            }
            None => return Err(io::Error::new(io::ErrorKind::InvalidData, "a reply nobody asked for")),
        }
    }
    rbuf.advance(pos);
    if !had_room && link.has_room() {
        link.room.notify_waiters();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = RedisTarget::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.db, t.password), ("127.0.0.1", 6379, 0, None));
        let t = RedisTarget::parse("redis://:secret@cache:7000/3").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.db, t.password.as_deref(), t.user),
            ("cache", 7000, 3, Some("secret"), None)
        );
        let t = RedisTarget::parse("redis://me:pw@[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.user.as_deref()), ("::1", 6379, Some("me")));
        assert!(RedisTarget::parse("http://x").is_err());
        assert!(RedisTarget::parse("redis://x:port").is_err());
        assert!(RedisTarget::parse("redis://x/db").is_err());
        assert!(RedisTarget::parse("redis://").is_err());
    }
}
