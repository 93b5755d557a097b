//! A request body read as it arrives, for the one route that takes bodies too
//! large to hold (video uploads), instead of the whole body at once.
//!
//! The stream first hands out what the connection had already read past the
//! head, then reads the socket in pieces of at most `PIECE` bytes. It never
//! reads past the body's Content-Length, so a request pipelined behind the
//! upload stays in the connection's buffer for the next round.
//!
//! Invariant: `remaining` is the number of body bytes not yet handed out; the
//! connection closes after the response unless it is 0 (the unread rest of a
//! refused upload cannot be told apart from a next request).
//!
//! Time: each read waits at most the body timeout, and the whole body must
//! arrive by its deadline (set by the connection from the body's length and
//! the slowest rate allowed), so a trickle cannot hold the upload slot for
//! ever. The `100 Continue` write waits at most the body timeout too.
//! Memory: one piece of at most `PIECE` bytes per call, handed to the caller.

use std::time::Duration;

use tokio::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server::transport::Transport;

/// The most read from the socket per piece.
const PIECE: usize = 64 * 1024;

/// Why the rest of the body will not come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// No byte arrived for the body timeout.
    TimedOut,
    /// The client closed or reset the connection mid-body.
    Closed,
}

pub struct BodyStream<'c> {
    io: &'c mut dyn Transport,
    /// The connection's read buffer: it starts with the body's first bytes.
    buffered: &'c mut Vec<u8>,
    len: u64,
    remaining: u64,
    timeout: Duration,
    /// The whole body must have arrived by then.
    deadline: Instant,
    /// The client waits for `100 Continue` before sending (RFC 9110 §10.1.1).
    send_continue: bool,
}

impl<'c> BodyStream<'c> {
    pub fn new(
        io: &'c mut dyn Transport,
        buffered: &'c mut Vec<u8>,
        len: u64,
        timeout: Duration,
        deadline: Instant,
        expect_continue: bool,
    ) -> BodyStream<'c> {
        BodyStream { io, buffered, len, remaining: len, timeout, deadline, send_continue: expect_continue }
    }

    /// The body's length, from its Content-Length.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Body bytes not yet handed out.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next piece of the body; `None` once all of it has been handed out.
    pub async fn next(&mut self) -> Result<Option<Bytes>, BodyError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        if !self.buffered.is_empty() {
            let n = self.buffered.len().min(self.remaining as usize);
            let piece = Bytes::copy_from_slice(&self.buffered[..n]);
            self.buffered.drain(..n);
            self.remaining -= n as u64;
            return Ok(Some(piece));
        }
        let wait_until = (Instant::now() + self.timeout).min(self.deadline);
        if self.send_continue {
            self.send_continue = false;
            // A client that does not read would otherwise hold this write for ever.
            let io = &mut *self.io;
            let send = async move {
                io.write_all(swiftlet_protocol::response::CONTINUE).await?;
                io.flush().await
            };
            match tokio::time::timeout_at(wait_until, send).await {
                Err(_) => {
                    self.io.reset_on_close();
                    return Err(BodyError::TimedOut);
                }
                Ok(Err(_)) => return Err(BodyError::Closed),
                Ok(Ok(())) => {}
            }
        }
        let want = PIECE.min(self.remaining as usize);
        let mut piece = BytesMut::with_capacity(want);
        // `take` keeps the read from going past the body's end.
        let mut body_rest = (&mut *self.io).take(want as u64);
        let read = tokio::time::timeout_at(wait_until, body_rest.read_buf(&mut piece)).await;
        match read {
            Err(_) => Err(BodyError::TimedOut),
            Ok(Err(_)) | Ok(Ok(0)) => Err(BodyError::Closed),
            Ok(Ok(n)) => {
                self.remaining -= n as u64;
                Ok(Some(piece.freeze()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that sends `Expect: 100-continue` and then reads nothing,
    /// with the socket's buffers already full: the interim answer cannot be
    /// written, and the body read gives up at its deadline instead of
    /// waiting on the write for ever.
    #[test]
    fn the_continue_write_to_a_client_that_reads_nothing_times_out() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            // Fill the server's send buffer and the client's receive buffer.
            let chunk = vec![b'x'; 64 * 1024];
            let mut filled = 0usize;
            loop {
                match server.try_write(&chunk) {
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(filled > 0);
            let mut buffered = Vec::new();
            let started = std::time::Instant::now();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut body =
                BodyStream::new(&mut server, &mut buffered, 1000, Duration::from_millis(300), deadline, true);
            let outcome = tokio::time::timeout(Duration::from_secs(5), body.next()).await;
            assert_eq!(outcome.expect("the continue write hung").err(), Some(BodyError::TimedOut));
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(290) && took < Duration::from_secs(2), "{took:?}");
            drop(client);
        });
    }
}
