//! One client connection: read, decode every complete request, answer them all
//! with one write, wait for more.
//!
//! The connection owns three buffers: `rbuf` (bytes read, not yet consumed),
//! `wbuf` (encoded responses not yet written) and `scratch` (generated
//! response bodies). They start at the configured size and grow only for a
//! large head or body, within the limits, and shrink back after one; nothing
//! on the request path allocates once they are warm. A keep-alive connection
//! idle for `IDLE_RELEASE` gives them all back and takes them again when its
//! socket is readable, so an idle connection holds its task and no buffer.
//!
//! Bounds, in raw bytes: `rbuf` never holds more than `read_cap + 1` bytes,
//! where `read_cap` is the head limit while a head is arriving and the head
//! plus the route's body limit while a body is (one byte past the bound is
//! what proves it crossed). A chunked body's framing is cut out of `rbuf` as
//! it is decoded, and counts toward the body limit, so framing cannot grow
//! the buffer either. `wbuf` is bounded by `WRITE_HIGH_WATER` plus one
//! response (see `handlers` for the bound on each response).
//!
//! Invariants:
//! - `rbuf` starts with the first unanswered request. Everything before it is
//!   drained after each round, so offsets in a pending head stay valid.
//! - `reading` is `Body` only while that first request's head is complete
//!   and its body has not fully arrived; a chunked body's decoder lives
//!   there, its positions relative to the body start.
//! - Responses are appended to `wbuf` in request order and written in order;
//!   `wbuf` is flushed whenever it passes `WRITE_HIGH_WATER`, so a client that
//!   pipelines without reading is held back by TCP instead of growing memory.
//!
//! The connection is written once over [`Transport`] and runs over plain TCP
//! and over TLS alike.
//!
//! Size: every connection is one task whose future holds this loop's state
//! and the largest inline handler's, whatever state the connection is in, so
//! an idle connection pays for the busiest one. A plain connection's task is
//! 1,408 bytes (jemalloc's 1,536 class; `cargo +nightly rustc --release --lib
//! -- -Zprint-type-sizes` shows the layout), down from 2,560: the connection
//! is run by reference and the handler pinned where it lives, because an
//! async fn keeps an argument taken by value twice; and every route that
//! waits on a store is boxed where it is dispatched (`app::dispatch`). Object
//! storage calls inline took the task to 10 KiB. An async helper's copied
//! arguments or a wrapper future around the handler cost hundreds of bytes
//! per connection, so the answer step stays inline in `serve_buffered`.
//!
//! Two routes step outside the buffered model: an upload's body is handed to
//! its handler as a [`BodyStream`] instead of being read whole, and a stored
//! video's bytes are pumped from object storage to the socket after the head.
//!
//! Timeouts: the head timeout runs from accept (before a TLS handshake, not
//! after it) and again from the first byte of each later request (a slow
//! trickle does not extend it; a partial head read together with the answered
//! requests before it counts from that read); the body timeout restarts on
//! every read that brings bytes, within an overall body deadline from the
//! body's first wait, so a byte now and then cannot hold the connection; the
//! idle timeout runs while no request is in progress. Writes that make no
//! progress for the idle timeout also end the connection.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;

use swiftlet_protocol::{BodyFraming, Chunked, ChunkedDecoder, HttpError, Method, Parse, RequestHead};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use crate::http::error::AppError;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::metrics::RouteRun;
use crate::server::body_stream::BodyStream;
use crate::server::panic_guard;
use crate::server::service::{Listener, Service};
use crate::server::transport::Transport;
use crate::server::worker::Worker;
use crate::server::write::{cors_origin, encode, encode_unparsed, flush_stream, write_all, NO_CORS};
use crate::storage::objects::ObjectBody;

/// Flush `wbuf` once it holds this much, even mid-pipeline.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Read at least this much per read call; grow `rbuf` when less is free.
const MIN_READ_SPACE: usize = 512;
/// Buffers grown past this are shrunk back to the configured size once a
/// round is answered. Below it, a busy connection keeps what its traffic
/// needs (8 KiB here cost pipelined /plaintext 12 % more CPU per request in
/// perf/run-compare.sh, the buffers shrinking and regrowing every round);
/// an idle one gives everything back after `IDLE_RELEASE` anyway.
const SHRINK_ABOVE: usize = 64 * 1024;
/// How long to keep reading (and discarding) after the last response of a
/// closing connection, so the client gets the response rather than a reset.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;
/// A keep-alive connection idle this long gives its buffers back and holds
/// none until its socket is readable again (then it takes `buffer_size` for
/// reading and writing anew): 10,000 idle connections do not keep 20 MB of
/// buffers. A busy connection never waits this long between requests, so its
/// path stays free of allocations.
const IDLE_RELEASE: Duration = Duration::from_millis(500);

/// What the connection is waiting for; each has its own timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Between requests.
    Idle,
    /// Part of a head has arrived (or nothing yet, right after accept).
    Head,
    /// The head is in, the body is arriving.
    Body,
}

/// What the connection is reading for the request at the front of `rbuf`:
/// one state, so no flags can disagree about it.
#[derive(Default)]
enum Reading {
    /// A head: the next request's, or more of the one begun.
    #[default]
    Head,
    /// The body of the request whose head is complete, not all here yet.
    Body(BodyProgress),
}

#[derive(Default)]
struct BodyProgress {
    /// When the connection first waited for it: the body's overall deadline
    /// counts from here.
    since: Option<Instant>,
    /// A chunked body's decoder, with its place in the framing.
    chunked: Option<ChunkedDecoder>,
}

impl Reading {
    /// The body in progress, begun now if a head was being read.
    fn body(&mut self) -> &mut BodyProgress {
        match self {
            Reading::Body(body) => body,
            Reading::Head => {
                *self = Reading::Body(BodyProgress::default());
                self.body()
            }
        }
    }
}

impl BodyProgress {
    fn chunked(&mut self, limit: u64) -> &mut ChunkedDecoder {
        self.chunked.get_or_insert_with(|| ChunkedDecoder::new(limit))
    }
}

/// Where a request's body stands (see `Connection::frame_body`).
enum Framed {
    /// All here: its decoded length, and the bytes head and body take up.
    Whole { body_len: usize, consumed: usize },
    /// Still arriving.
    Pending,
    /// Refused; its answer is queued and the connection closes.
    Refused,
}

/// The end of one round of decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Keep the connection; `served` requests were answered.
    Open { served: usize },
    /// The last response has been queued; close after writing it.
    Close,
    /// A write failed or timed out: nothing more can be sent; drop the connection.
    Broken,
}

enum ReadOutcome {
    Data,
    Eof,
    TimedOut,
    Shutdown,
    Failed,
}

pub struct Connection<'w, S: Transport, A: Service> {
    stream: S,
    worker: &'w Worker<A>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    scratch: Vec<u8>,
    /// Head or body, for the first buffered request.
    reading: Reading,
    /// Whether `100 Continue` went out for the body being read (write-side
    /// state; kept out of `Reading`, where its padding would grow every
    /// connection's task past a jemalloc size class: see the module comment).
    continue_sent: bool,
    /// The most bytes `rbuf` may need for the request at its front (see the
    /// module comment); reading stops one byte past it.
    read_cap: usize,
    /// When the round in progress (or the last one) began: right after the
    /// read that brought its bytes.
    round_start: Instant,
    /// The client's address (for per-address limits such as failed logins).
    peer: std::net::IpAddr,
    /// The listener it came in on, which decides the routes it may reach.
    listener: Listener,
    /// The last time the round just served read the clock (for the metrics),
    /// reused as "now" for the next deadline instead of reading it again.
    round_clock: Option<std::time::Instant>,
    /// Its slot among the worker's idle wakers.
    slot: usize,
}

impl<'w, S: Transport, A: Service> Connection<'w, S, A> {
    /// A connection accepted at `accepted`: the first head's timeout counts
    /// from then, whatever happened in between (a TLS handshake).
    pub fn new(
        stream: S,
        worker: &'w Worker<A>,
        accepted: Instant,
        peer: std::net::IpAddr,
        listener: Listener,
        slot: usize,
    ) -> Connection<'w, S, A> {
        let size = worker.config.buffer_size;
        Connection {
            stream,
            worker,
            rbuf: Vec::with_capacity(size),
            wbuf: Vec::with_capacity(size),
            scratch: Vec::new(),
            reading: Reading::Head,
            continue_sent: false,
            read_cap: worker.config.max_head_bytes,
            round_start: accepted,
            peer,
            listener,
            round_clock: None,
            slot,
        }
    }

    pub async fn run(&mut self) {
        let config = &self.worker.config;
        let mut waiting = Waiting::Head;
        let mut deadline = self.round_start + config.header_timeout;
        // One timer for the connection's life, moved rather than re-created:
        // moving a tokio timer later is cheap, registering a new one is not.
        let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline));
        // When the connection must next wake: the timer fires then or earlier.
        let mut wake_at = deadline;
        loop {
            let round = self.serve_buffered().await;
            // A broken connection has already waited out its write timeout once.
            if round == Round::Broken || self.flush().await.is_err() {
                return;
            }
            let served = match round {
                Round::Broken => return,
                Round::Close => return self.linger().await,
                Round::Open { served } => served,
            };
            self.shrink_idle_buffers();

            let next = if matches!(self.reading, Reading::Body(_)) {
                Waiting::Body
            } else if !self.rbuf.is_empty() {
                Waiting::Head
            } else if served > 0 || waiting == Waiting::Idle {
                Waiting::Idle
            } else {
                // Nothing has arrived since accept: the head timeout applies.
                Waiting::Head
            };
            // A head keeps its deadline while it trickles in; a body earns a
            // new one with every read that brought bytes.
            if next != waiting || served > 0 || next == Waiting::Body {
                // The clock the round last read for the metrics is recent enough.
                let now = self.round_clock.take().map_or_else(Instant::now, Instant::from_std);
                deadline = match next {
                    Waiting::Idle => now + config.idle_timeout,
                    // Its first byte came with the read that began this round.
                    Waiting::Head if served > 0 => self.round_start + config.header_timeout,
                    Waiting::Head => now + config.header_timeout,
                    Waiting::Body => {
                        let since = *self.reading.body().since.get_or_insert(now);
                        (now + config.body_timeout).min(since + config.body_deadline)
                    }
                };
                // An idle connection first wakes to give its buffers back.
                let wake = match next {
                    Waiting::Idle if self.rbuf.capacity() > 0 => deadline.min(now + IDLE_RELEASE),
                    _ => deadline,
                };
                // Moved earlier only. A later wake-up waits for the timer to
                // fire and is set then (below): at most once per timeout,
                // instead of at every request (a reset was 0.4 % of
                // /plaintext's CPU, perf).
                if wake < timer.deadline() {
                    timer.as_mut().reset(wake);
                }
                wake_at = wake;
            }
            waiting = next;

            // Nothing of a request is in hand: shutdown may close it as it waits.
            let idle = waiting == Waiting::Idle || (waiting == Waiting::Head && self.rbuf.is_empty());
            let outcome = loop {
                let outcome = self.read_more(timer.as_mut(), idle).await;
                if matches!(outcome, ReadOutcome::TimedOut) {
                    let now = Instant::now();
                    if now < wake_at {
                        // Fired at an earlier wake-up, since moved on.
                        timer.as_mut().reset(wake_at);
                        continue;
                    }
                    if waiting == Waiting::Idle && self.rbuf.capacity() > 0 && now < deadline {
                        self.release_buffers();
                        wake_at = deadline;
                        timer.as_mut().reset(deadline);
                        continue;
                    }
                }
                break outcome;
            };
            match outcome {
                ReadOutcome::Data => {}
                ReadOutcome::Eof | ReadOutcome::Failed => return,
                // Nothing of a request in hand: close in order (FIN, then
                // drain), so a request the client sent meanwhile meets a clean
                // close, not a reset.
                ReadOutcome::Shutdown => return self.linger().await,
                ReadOutcome::TimedOut => {
                    let error = match waiting {
                        // Nothing of a request arrived: just close.
                        Waiting::Idle => return,
                        Waiting::Head if self.rbuf.is_empty() => return,
                        Waiting::Head => HttpError::HeadTimeout,
                        Waiting::Body => HttpError::BodyTimeout,
                    };
                    self.queue_error(&AppError::Http(error), None, true);
                    if self.flush().await.is_ok() {
                        self.linger().await;
                    }
                    return;
                }
            }
        }
    }

    /// Answers every complete request in `rbuf`, then drains what was consumed.
    async fn serve_buffered(&mut self) -> Round {
        let mut start = 0;
        let mut served = 0;
        // For the latency histogram: requests answered back to back on one
        // route are timed as a run (`RouteRun`), from the read that brought
        // them, so a pipelined round reads the clock twice, not n + 1 times.
        let round_start = std::time::Instant::now();
        self.round_start = Instant::from_std(round_start);
        // Unless a body turns out to be pending, what may arrive next is a head.
        self.read_cap = self.worker.config.max_head_bytes;
        let mut timing = self.worker.config.metrics().then(|| RouteRun::starting(round_start));
        let round = loop {
            if start == self.rbuf.len() {
                break Round::Open { served };
            }
            let head = match RequestHead::parse(&self.rbuf[start..], &self.worker.limits) {
                Ok(Parse::Complete(head)) => head,
                Ok(Parse::Incomplete) => {
                    self.read_cap = self.worker.config.max_head_bytes;
                    break Round::Open { served };
                }
                Err(e) => {
                    tracing::debug!(error = %e, "refused a request head");
                    self.queue_error(&AppError::Http(e), None, true);
                    break Round::Close;
                }
            };
            let route = match self.worker.app.route(head.method, head.path(&self.rbuf[start..]), self.listener) {
                Ok(route) => route,
                Err(e) => {
                    // The body of a refused request is not read, so the
                    // connection can only go on if there is none.
                    let close = !keep_alive(&head, self.worker) || head.framing != BodyFraming::Empty;
                    self.queue_error(&e, Some(&head), close);
                    if close {
                        break Round::Close;
                    }
                    start += head.head_len;
                    served += 1;
                    continue;
                }
            };
            if self.worker.app.streams_body(route) {
                // It times itself: what came before it is a run of its own.
                if let Some(run) = timing.as_mut() {
                    run.end(&self.worker.metrics);
                }
                // Boxed for the same reason as the upload's handler in it.
                let outcome = Box::pin(self.serve_streaming(start, head, route)).await;
                // It drained `rbuf` up to where it stopped reading, and what
                // follows came with its last read: a next head counts from now.
                start = 0;
                let now = std::time::Instant::now();
                self.round_start = Instant::from_std(now);
                if let Some(run) = timing.as_mut() {
                    *run = RouteRun::starting(now);
                }
                match outcome {
                    Some(()) => {
                        served += 1;
                        continue;
                    }
                    None => break Round::Close,
                }
            }
            let (body_len, consumed) = match self.frame_body(start, &head, self.worker.app.body_limit(route)) {
                Framed::Whole { body_len, consumed } => (body_len, consumed),
                Framed::Pending => break Round::Open { served },
                Framed::Refused => break Round::Close,
            };
            served += 1;
            if let Some(run) = timing.as_mut() {
                run.next(A::route_index(route), &self.worker.metrics);
            }
            // The answer, inline rather than an async helper: a helper's
            // arguments and locals are stored again in the connection's
            // future, which every connection allocates (see the size note
            // in the module comment).
            let (head_bytes, rest) = self.rbuf[start..start + consumed].split_at_mut(head.head_len);
            let mut request = Request::new(head, head_bytes, &mut rest[..body_len]).from_peer(self.peer);
            let mut response = Response::new(&mut self.scratch);
            let outcome = {
                let handler = std::pin::pin!(self.worker.app.call(route, &mut request, &mut response));
                panic_guard::catch_panic(handler).await
            };
            settle(outcome, route, &mut response);
            if let Some(run) = timing.as_mut() {
                self.worker.metrics.record(Some(A::route_index(route)), response.status().code(), None);
                run.answered();
            }
            // Decided after the handler: shutdown may have begun while it ran.
            let keep_alive = keep_alive(&head, self.worker);
            let stream = response.take_stream();
            let cors = cors_origin(&self.worker.cors_origins, &response, &head, &self.rbuf[start..]);
            encode(&mut self.wbuf, &response, &head, keep_alive, cors);
            start += consumed;
            if let Some(body) = stream.filter(|_| head.method != Method::Head) {
                if self.flush().await.is_err() || Box::pin(self.pump(body)).await.is_err() {
                    break Round::Broken;
                }
            }
            if !keep_alive {
                break Round::Close;
            }
            if self.wbuf.len() >= WRITE_HIGH_WATER && self.flush().await.is_err() {
                break Round::Broken;
            }
        };
        self.rbuf.drain(..start);
        self.round_clock = timing.map(|mut run| run.end(&self.worker.metrics));
        round
    }

    /// Finds the body of the request whose head starts at `start`: whole in
    /// `rbuf`, still arriving (the connection then waits for it), or refused
    /// (its answer queued).
    fn frame_body(&mut self, start: usize, head: &RequestHead, limit: u64) -> Framed {
        let region = &mut self.rbuf[start + head.head_len..];
        let framed = match head.framing {
            BodyFraming::Empty => Framed::Whole { body_len: 0, consumed: head.head_len },
            BodyFraming::Length(n) if n > limit => {
                self.queue_error(&AppError::Http(HttpError::PayloadTooLarge), Some(head), true);
                return Framed::Refused;
            }
            BodyFraming::Length(n) => {
                let n = n as usize; // n <= limit, which fits in memory
                if region.len() < n {
                    self.await_body(head, n);
                    return Framed::Pending;
                }
                Framed::Whole { body_len: n, consumed: head.head_len + n }
            }
            BodyFraming::Chunked => match self.reading.body().chunked(limit).decode(region) {
                Ok(Chunked::Complete { body_len, consumed }) => {
                    Framed::Whole { body_len, consumed: head.head_len + consumed }
                }
                Ok(Chunked::Incomplete) => {
                    // Decoded bytes stay; the framing between them and the
                    // unread input goes.
                    let framing = self.reading.body().chunked(limit).discard_framing();
                    let body_at = start + head.head_len;
                    self.rbuf.drain(body_at + framing.start..body_at + framing.end);
                    self.await_body(head, usize::try_from(limit).unwrap_or(usize::MAX));
                    return Framed::Pending;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "refused a chunked body");
                    self.reading = Reading::Head;
                    self.queue_error(&AppError::Http(e), Some(head), true);
                    return Framed::Refused;
                }
            },
        };
        self.reading = Reading::Head;
        self.continue_sent = false;
        framed
    }

    /// Serves a request whose body its handler reads as a stream (an upload).
    /// The head starts at `start` in `rbuf`; on return `rbuf` starts after the
    /// body, and `Some` means the connection goes on.
    async fn serve_streaming(&mut self, start: usize, head: RequestHead, route: A::Route) -> Option<()> {
        let len = match head.framing {
            BodyFraming::Empty => 0,
            BodyFraming::Length(n) => n,
            BodyFraming::Chunked => {
                self.rbuf.drain(..start);
                self.queue_error(&AppError::LengthRequired, Some(&head), true);
                return None;
            }
        };
        // Earlier pipelined answers go first: the handler may write a
        // 100 Continue, and the upload can take minutes.
        if self.flush().await.is_err() {
            return None;
        }
        let head_bytes = self.rbuf[start..start + head.head_len].to_vec();
        self.rbuf.drain(..start + head.head_len);
        let since = self.worker.config.metrics().then(std::time::Instant::now);
        let mut request = Request::new(head, &head_bytes, &mut []).from_peer(self.peer);
        let mut response = Response::new(&mut self.scratch);
        let config = &self.worker.config;
        // The body deadline, plus the length at the slowest rate allowed.
        // (Capped at a day: a Content-Length the handler will refuse must not
        // overflow the clock.)
        let slowest = Duration::from_secs((len / config.min_upload_rate.max(1)).min(86_400));
        let deadline = Instant::now() + config.body_deadline + slowest;
        let mut body =
            BodyStream::new(&mut self.stream, &mut self.rbuf, len, config.body_timeout, deadline, head.expect_continue);
        // Boxed: an upload's future is large (multipart state, storage calls),
        // and unboxed it would be part of every connection's future, uploads or not.
        let outcome = {
            let mut handler = Box::pin(self.worker.app.call_streaming(route, &mut request, &mut body, &mut response));
            panic_guard::catch_panic(handler.as_mut()).await
        };
        // Unread body bytes cannot be told apart from a next request.
        let body_done = body.remaining() == 0;
        settle(outcome, route, &mut response);
        if let Some(since) = since {
            self.worker.metrics.record(Some(A::route_index(route)), response.status().code(), Some(since.elapsed()));
        }
        let keep_alive = keep_alive(&head, self.worker) && body_done;
        let cors = cors_origin(&self.worker.cors_origins, &response, &head, &head_bytes);
        encode(&mut self.wbuf, &response, &head, keep_alive, cors);
        keep_alive.then_some(())
    }

    /// Writes a stored object's bytes after its head. An error after the
    /// head went out can only be reported by closing the connection short.
    async fn pump(&mut self, mut body: ObjectBody) -> io::Result<()> {
        let mut left = body.len;
        while let Some(chunk) = body.chunks.next().await {
            let chunk = chunk.map_err(|e| {
                tracing::warn!(error = %e, "object storage failed mid-response; closing the connection");
                io::Error::other("object read failed")
            })?;
            let take = chunk.len().min(left as usize);
            write_all(&mut self.stream, &chunk[..take], self.worker.config.idle_timeout).await?;
            left -= take as u64;
        }
        if left > 0 {
            tracing::warn!(missing = left, "object ended short of its length; closing the connection");
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        flush_stream(&mut self.stream, self.worker.config.idle_timeout).await
    }

    /// The body (of at most `body_limit` raw bytes) is still arriving: let
    /// `rbuf` hold the head and that much, and tell a client that waits for
    /// it to send it (RFC 9110 §10.1.1), once.
    fn await_body(&mut self, head: &RequestHead, body_limit: usize) {
        self.read_cap = head.head_len.saturating_add(body_limit);
        self.reading.body();
        if head.expect_continue && !self.continue_sent {
            self.wbuf.extend_from_slice(swiftlet_protocol::response::CONTINUE);
            self.continue_sent = true;
        }
    }

    /// Queues an error response. `head` is the request's, when it was parsed.
    fn queue_error(&mut self, error: &AppError, head: Option<&RequestHead>, close: bool) {
        let mut response = Response::new(&mut self.scratch);
        response.send_error(error);
        if self.worker.config.metrics() {
            // Refused before a handler ran: counted without a route or a latency.
            self.worker.metrics.record(None, response.status().code(), None);
        }
        // Refused before a route was known: no CORS.
        match head {
            Some(head) => encode(&mut self.wbuf, &response, head, !close, NO_CORS),
            None => encode_unparsed(&mut self.wbuf, &response),
        }
    }

    /// Writes all of `wbuf`. Fails on an IO error or when the client has not
    /// taken a byte for the idle timeout.
    async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let timeout = self.worker.config.idle_timeout;
        write_all(&mut self.stream, &self.wbuf, timeout).await?;
        flush_stream(&mut self.stream, timeout).await?;
        self.wbuf.clear();
        Ok(())
    }

    /// Reads what the kernel has, or waits for it. While `idle` (no part of a
    /// request in hand), shutdown ends the wait (see `worker`).
    async fn read_more(&mut self, mut timer: Pin<&mut Sleep>, idle: bool) -> ReadOutcome {
        if self.rbuf.capacity() == 0 {
            // Buffers given back while idle: wait for bytes before taking
            // them again. (A TLS session holds no plaintext here: the read
            // that timed out before the release took all it had.)
            let closing = self.worker.idle_close(self.slot);
            if idle && self.worker.shutting_down() {
                return ReadOutcome::Shutdown;
            }
            tokio::select! {
                biased;
                ready = self.stream.socket().readable() => {
                    if ready.is_err() {
                        return ReadOutcome::Failed;
                    }
                }
                _ = &mut timer => return ReadOutcome::TimedOut,
                _ = closing, if idle => return ReadOutcome::Shutdown,
            }
            let size = self.worker.config.buffer_size;
            self.rbuf.reserve_exact(size);
            self.wbuf.reserve_exact(size);
        }
        let (len, capacity) = (self.rbuf.len(), self.rbuf.capacity());
        if capacity - len < MIN_READ_SPACE {
            // Doubling, but never past one byte over the bound: reading that
            // byte is what lets the parser or decoder refuse the request.
            let bound = self.read_cap.saturating_add(1).max(len + 1);
            let target = capacity.saturating_mul(2).max(self.worker.config.buffer_size).min(bound);
            if target > capacity {
                self.rbuf.reserve_exact(target - len);
            }
        }
        // The read is polled first (biased): bytes that have arrived are
        // served even when shutdown has begun or the timer has run out; only
        // then does an idle connection see shutdown (`idle_close` is ready
        // once it has begun, however late it is polled).
        let closing = self.worker.idle_close(self.slot);
        tokio::select! {
            biased;
            read = self.stream.read_buf(&mut self.rbuf) => read_outcome(read),
            _ = &mut timer => ReadOutcome::TimedOut,
            _ = closing, if idle => ReadOutcome::Shutdown,
        }
    }

    /// Closes after a final response: send FIN, then read and discard until
    /// the client closes too (bounded), so unread request bytes do not turn
    /// our close into a reset that could destroy the response in flight.
    async fn linger(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            self.rbuf.clear();
            if self.rbuf.capacity() < MIN_READ_SPACE {
                self.rbuf.reserve(MIN_READ_SPACE);
            }
            let read = tokio::select! {
                read = self.stream.read_buf(&mut self.rbuf) => read,
                _ = tokio::time::sleep_until(deadline) => return,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    }

    /// Gives every buffer back (the connection is idle: nothing unread,
    /// nothing unsent).
    fn release_buffers(&mut self) {
        if self.rbuf.is_empty() && self.wbuf.is_empty() {
            self.rbuf = Vec::new();
            self.wbuf = Vec::new();
            self.scratch = Vec::new();
        }
    }

    fn shrink_idle_buffers(&mut self) {
        let size = self.worker.config.buffer_size;
        for buf in [&mut self.rbuf, &mut self.wbuf, &mut self.scratch] {
            if buf.capacity() > SHRINK_ABOVE && buf.len() <= size {
                buf.shrink_to(size);
            }
        }
    }
}

fn read_outcome(read: io::Result<usize>) -> ReadOutcome {
    match read {
        Ok(0) => ReadOutcome::Eof,
        Ok(_) => ReadOutcome::Data,
        Err(_) => ReadOutcome::Failed,
    }
}

/// Turns a handler's outcome into its response: errors and panics become
/// their error answers.
fn settle(
    outcome: Result<Result<(), AppError>, Box<dyn std::any::Any + Send>>,
    route: impl std::fmt::Debug,
    response: &mut Response<'_>,
) {
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => response.send_error(&e),
        Err(payload) => {
            tracing::error!(panic = panic_guard::describe(&*payload), route = ?route, "handler panicked; answered 500");
            response.send_error(&AppError::HandlerPanicked);
        }
    }
}

/// Whether the connection may stay open after answering `head`.
fn keep_alive<A>(head: &RequestHead, worker: &Worker<A>) -> bool {
    head.keep_alive && !worker.shutting_down()
}
