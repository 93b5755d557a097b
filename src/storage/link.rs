//! The socket loop both pipelined clients (PostgreSQL and Redis) run.
//!
//! Callers append encoded requests to an output buffer and signal `queued`;
//! this loop swaps that buffer out and writes it whole (callers go on filling
//! a fresh one meanwhile), reads whatever has arrived, and hands the read
//! buffer to the client's `deliver`, which consumes every complete reply and
//! leaves a partial one in place. It returns only when the connection fails,
//! with the reason; the client then fails its outstanding waiters.
//!
//! Invariant: bytes leave in the order they were queued, and the loop never
//! waits on writability with nothing to write nor on `queued` with something
//! still to write, so it sleeps only when there is truly nothing to do.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;

use bytes::BytesMut;
use tokio::io::{Interest, Ready};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Keep at least this much free in the read buffer before a read.
const READ_SPACE: usize = 4096;

/// TCP keepalive for a store connection: the first probe after 10 s of
/// silence, then every 5 s, dead after 3 unanswered (about 25 s in all). A
/// pipelined connection is rarely silent that long while it is in use; one
/// that is idle costs a probe every 10 s.
pub fn keep_alive(socket: &TcpStream) {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(10))
        .with_interval(std::time::Duration::from_secs(5))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(socket).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "could not set TCP keepalive on a store connection");
    }
}

/// A non-blocking socket the loop can wait on and move bytes through.
pub trait Duplex {
    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>>;
    fn try_write(&self, data: &[u8]) -> io::Result<usize>;
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize>;
}

impl Duplex for TcpStream {
    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> {
        TcpStream::ready(self, interest)
    }

    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, data)
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        TcpStream::try_read_buf(self, buf)
    }
}

/// Socket-level counts, for the tests that prove requests share writes.
#[derive(Debug, Default)]
pub struct IoCounts {
    /// Write calls that sent bytes.
    pub writes: Cell<u64>,
    /// Read calls that brought bytes.
    pub reads: Cell<u64>,
}

/// Moves queued requests out and replies in until the connection fails; returns why.
pub async fn pump<S: Duplex>(
    socket: &S,
    out: &RefCell<BytesMut>,
    queued: &Notify,
    counts: &IoCounts,
    mut deliver: impl FnMut(&mut BytesMut) -> io::Result<()>,
) -> io::Error {
    let mut rbuf = BytesMut::with_capacity(2 * READ_SPACE);
    let mut wbuf = BytesMut::new();
    loop {
        if wbuf.is_empty() {
            std::mem::swap(&mut wbuf, &mut *out.borrow_mut());
        }
        let want_write = !wbuf.is_empty();
        let interest = if want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        tokio::select! {
            ready = socket.ready(interest) => {
                let ready = match ready {
                    Ok(ready) => ready,
                    Err(e) => return e,
                };
                if ready.is_writable() && want_write {
                    match socket.try_write(&wbuf) {
                        Ok(n) => {
                            let _ = wbuf.split_to(n);
                            counts.writes.set(counts.writes.get() + 1);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return e,
                    }
                }
                if ready.is_readable() {
                    if rbuf.capacity() - rbuf.len() < READ_SPACE {
                        rbuf.reserve(2 * READ_SPACE);
                    }
                    match socket.try_read_buf(&mut rbuf) {
                        Ok(0) => return io::ErrorKind::UnexpectedEof.into(),
                        Ok(_) => {
                            counts.reads.set(counts.reads.get() + 1);
                            if let Err(e) = deliver(&mut rbuf) {
                                return e;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return e,
                    }
                }
            }
            _ = queued.notified(), if !want_write => {}
        }
    }
}
