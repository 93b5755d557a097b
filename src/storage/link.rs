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
//!
//! Wake-ups: a client that knows a lower bound on the bytes its outstanding
//! requests will bring back (a [`ReplyFloor`]) lets the loop tell the kernel
//! not to wake it for fewer (SO_RCVLOWAT). PostgreSQL flushes at every Sync,
//! so twenty one-query transactions arrive as up to twenty segments; waking
//! for each cost the worker a sleep and a wake-up apiece, the largest item in
//! a profile of `/queries` (16 context switches and 370 µs of CPU per
//! request). Because the bound never exceeds what is still to come, a reply
//! is never held back: the kernel wakes the loop by the time the last byte
//! of the outstanding replies can have arrived, and at once on EOF or error
//! (and, its own safeguard, whenever the receive window is down to one
//! segment).
//!
//! The bound is loose where replies are long: a `/fortunes` answer is about
//! 900 bytes against its floor of 20, so the worker still woke for every
//! reply. So the client also counts a *hint*, what recent replies suggest is
//! coming, and the loop waits on the larger of the two, but on the hint for
//! at most `HINT_WAIT`: when it was wrong (a reply shorter than those before
//! it), the floor alone applies until the next read, and the reply is late by
//! that much at worst, never lost.

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
    /// Asks the kernel not to report the socket readable until `bytes` have
    /// arrived (SO_RCVLOWAT; 1 is the default). Sockets that cannot do it
    /// ignore the request: they wake as before.
    fn set_read_floor(&self, bytes: usize) -> io::Result<()> {
        let _ = bytes;
        Ok(())
    }
    /// Forgets that the socket was readable, after a read that left it
    /// empty, so the loop waits for new bytes instead of trying a read the
    /// kernel would refuse. Sockets that cannot do it keep the readiness and
    /// pay that one read.
    ///
    /// Correct after a short read only: a stream socket (TCP, Unix) hands
    /// over everything queued up to the buffer's size, so a read that filled
    /// less of it left the queue empty, and bytes that arrive later raise a
    /// new edge for the runtime's next poll (tokio's readiness carries a
    /// tick, and `try_io` clears only the event it saw). tokio's `poll_read`
    /// does the same after a short read; `try_read_buf` does not.
    fn forget_readable(&self) {}
}

/// The most the read floor is set to: well inside a default receive buffer,
/// so the kernel never has to grow the buffer to honour it.
const MAX_READ_FLOOR: u64 = 16 * 1024;

/// How long the loop waits for the hinted bytes before falling back to the floor.
const HINT_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// SO_RCVLOWAT on a TCP socket.
#[cfg(target_os = "linux")]
pub fn set_rcvlowat(socket: &impl std::os::fd::AsRawFd, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: the descriptor belongs to a socket that `socket` keeps open for
    // the duration of the call; the option value is a c_int living on this
    // stack frame, and its pointer and size describe exactly that c_int,
    // which the kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reply bytes counted at three points of a request's life. Every count is
/// cumulative, so the order in which writes complete and replies arrive does
/// not matter: `written - answered` is what the requests sent and not yet
/// answered will bring back (an answer to part of a buffer still being
/// written counts early, which only lowers the figure).
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests appended to the output buffer since the loop last took it.
    pub queued: Cell<u64>,
    /// Requests whose bytes have all been written.
    pub written: Cell<u64>,
    /// Requests whose replies are complete.
    pub answered: Cell<u64>,
}

/// Adds `bytes` to a cumulative count.
pub fn add(count: &Cell<u64>, bytes: u64) {
    count.set(count.get() + bytes);
}

impl Tally {
    /// What is still to arrive for the written requests, given the bytes of
    /// them already `received`.
    fn outstanding(&self, received: u64) -> u64 {
        self.written.get().saturating_sub(self.answered.get() + received)
    }
}

/// What the loop needs to set its read floor, kept by the client and the
/// loop together: a provable lower bound on each reply (`bound`), what
/// recent replies suggest (`hint`), and the bytes already received towards
/// the unanswered ones (`consumed` since the last complete reply, plus any
/// partial message still in the read buffer), which come off both.
#[derive(Debug, Default)]
pub struct ReplyFloor {
    pub bound: Tally,
    pub hint: Tally,
    /// Bytes consumed since the last complete reply (part of the next one).
    pub consumed: Cell<u64>,
}

impl ReplyFloor {
    /// The fewest bytes still to arrive before every outstanding reply is complete.
    fn still_to_come(&self, unparsed: usize) -> u64 {
        self.bound.outstanding(self.consumed.get() + unparsed as u64)
    }

    /// What the hint says is still to come.
    fn hinted_to_come(&self, unparsed: usize) -> u64 {
        self.hint.outstanding(self.consumed.get() + unparsed as u64)
    }

    /// The loop took the output buffer: what was queued is now in flight.
    fn take_queued(&self) -> (u64, u64) {
        (self.bound.queued.take(), self.hint.queued.take())
    }

    /// The loop finished writing a buffer that held `in_flight` of each.
    fn wrote(&self, (bound, hint): (u64, u64)) {
        add(&self.bound.written, bound);
        add(&self.hint.written, hint);
    }
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

    #[cfg(target_os = "linux")]
    fn set_read_floor(&self, bytes: usize) -> io::Result<()> {
        set_rcvlowat(self, bytes)
    }

    fn forget_readable(&self) {
        let _ = self.try_io(Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
    }
}

/// Socket-level counts, for the tests that prove requests share writes.
#[derive(Debug, Default)]
pub struct IoCounts {
    /// Write calls that sent bytes.
    pub writes: Cell<u64>,
    /// Read calls that brought bytes.
    pub reads: Cell<u64>,
    /// Read calls the kernel refused (nothing had arrived).
    pub refused_reads: Cell<u64>,
}

/// Moves queued requests out and replies in until the connection fails; returns why.
/// With a `floor`, the socket's read floor follows it (see the module comment).
pub async fn pump<S: Duplex>(
    socket: &S,
    out: &RefCell<BytesMut>,
    queued: &Notify,
    counts: &IoCounts,
    floor: Option<&ReplyFloor>,
    mut deliver: impl FnMut(&mut BytesMut) -> io::Result<()>,
) -> io::Error {
    let mut rbuf = BytesMut::with_capacity(2 * READ_SPACE);
    let mut wbuf = BytesMut::new();
    // The bound and hint of the requests in `wbuf`, counted as written once all of it is.
    let mut in_wbuf = (0, 0);
    let mut read_floor = 1;
    // Armed while the read floor is above the bound for the hint's sake;
    // when it fires, the hint is ignored until the next read.
    let mut hint_timer = std::pin::pin!(tokio::time::sleep(HINT_WAIT));
    let (mut hint_armed, mut hint_expired) = (false, false);
    loop {
        if wbuf.is_empty() {
            std::mem::swap(&mut wbuf, &mut *out.borrow_mut());
            if let Some(floor) = floor {
                in_wbuf = floor.take_queued();
            }
        }
        if let Some(floor) = floor {
            let bound = floor.still_to_come(rbuf.len());
            let hinted = if hint_expired { 0 } else { floor.hinted_to_come(rbuf.len()) };
            if hinted > bound && !hint_armed {
                hint_timer.as_mut().reset(tokio::time::Instant::now() + HINT_WAIT);
                hint_armed = true;
            }
            let wanted = bound.max(hinted).clamp(1, MAX_READ_FLOOR) as usize;
            if wanted != read_floor {
                if let Err(e) = socket.set_read_floor(wanted) {
                    return e;
                }
                read_floor = wanted;
            }
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
                            if let Some(floor) = floor.filter(|_| wbuf.is_empty()) {
                                floor.wrote(std::mem::take(&mut in_wbuf));
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return e,
                    }
                }
                if ready.is_readable() {
                    if rbuf.capacity() - rbuf.len() < READ_SPACE {
                        rbuf.reserve(2 * READ_SPACE);
                    }
                    let space = rbuf.capacity() - rbuf.len();
                    match socket.try_read_buf(&mut rbuf) {
                        Ok(0) => return io::ErrorKind::UnexpectedEof.into(),
                        Ok(n) => {
                            if n < space {
                                socket.forget_readable();
                            }
                            counts.reads.set(counts.reads.get() + 1);
                            (hint_armed, hint_expired) = (false, false);
                            if let Err(e) = deliver(&mut rbuf) {
                                return e;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => add(&counts.refused_reads, 1),
                        Err(e) => return e,
                    }
                }
            }
            _ = queued.notified(), if !want_write => {}
            () = hint_timer.as_mut(), if hint_armed => (hint_armed, hint_expired) = (false, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn the_floor_is_what_is_still_to_come_and_never_below_zero() {
        let floor = ReplyFloor::default();
        // Two transactions of 20 written; one answered; 10 bytes of the next
        // consumed and 5 waiting in the read buffer: 5 more at the least.
        floor.bound.written.set(40);
        floor.bound.answered.set(20);
        floor.consumed.set(10);
        assert_eq!(floor.still_to_come(5), 5);
        // An answer to a buffer not yet fully written counts early: no bound.
        floor.bound.answered.set(60);
        assert_eq!(floor.still_to_come(0), 0);
    }

    /// What the loop relies on from the kernel: readiness waits for the
    /// floor, and lowering the floor below what has arrived wakes at once.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_holds_readiness_back_until_the_floor_has_arrived() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let readable = |ms| tokio::time::timeout(Duration::from_millis(ms), server.ready(Interest::READABLE));
            // The kernel wakes regardless of the floor while the receive
            // window is at most one segment (64 KiB on loopback), as on a
            // fresh connection: move some megabytes first, as a store
            // connection does, so the window grows past it.
            let mut buf = BytesMut::with_capacity(1 << 16);
            let (mut sent, mut received) = (0, 0);
            let chunk = vec![0u8; 1 << 16];
            while received < 8 << 20 {
                if sent < 8 << 20 {
                    sent += client.try_write(&chunk).unwrap_or(0);
                }
                if server.ready(Interest::READABLE).await.is_ok() {
                    buf.clear();
                    received += server.try_read_buf(&mut buf).unwrap_or(0);
                }
            }
            // Read until the socket would block, so the runtime forgets it was readable.
            loop {
                buf.clear();
                match server.try_read_buf(&mut buf) {
                    Ok(n) => assert!(n > 0),
                    Err(e) => break assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
                }
            }

            server.set_read_floor(10).unwrap();
            client.write_all(b"12345").await.unwrap();
            assert!(readable(100).await.is_err(), "readable with 5 of 10 bytes");
            client.write_all(b"67890").await.unwrap();
            assert!(readable(5_000).await.is_ok(), "not readable with all 10 bytes");
            buf.clear();
            assert_eq!(server.try_read_buf(&mut buf).unwrap(), 10);
            assert_eq!(server.try_read_buf(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);

            server.set_read_floor(100).unwrap();
            client.write_all(b"abc").await.unwrap();
            assert!(readable(100).await.is_err(), "readable with 3 of 100 bytes");
            server.set_read_floor(1).unwrap();
            assert!(readable(5_000).await.is_ok(), "lowering the floor did not wake");
        });
    }
}
