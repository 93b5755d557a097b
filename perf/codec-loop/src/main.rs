//! swiftlet's HTTP codec on a bare readiness loop: the question "what would a
//! hand-driven mio loop per worker buy?" (issue 19, item 3) measured before
//! it is built, as io_uring was.
//!
//! Per worker thread: its own SO_REUSEPORT listener (backlog 4096, as
//! swiftlet's), one mio `Poll`, and a slab of connections, each with a read
//! and a write buffer sized as swiftlet's (1 KiB to start, grown when less
//! than 512 bytes are free). Per readable connection: read until a short read
//! (the socket is empty), then for every complete head in the buffer do what
//! swiftlet does per request on its hot path (`RequestHead::parse` with
//! swiftlet's limits, the path, a `match` on it, `ResponseHead::encode` with a
//! Date refreshed once a second, the body), and write all the answers with one
//! write. Nothing else: no tokio, no task per connection, no timers, no
//! metrics, no panic guard, no bodies (a request with one is refused and the
//! connection closed). perf/codec_loop.py runs it beside the floor
//! (perf/floor/floor.c: the same loop without the codec and with one receive
//! buffer per thread) and swiftlet, so the gap between floor and swiftlet
//! splits into this loop's share (the codec, and buffers per connection) and
//! the rest (runtime, connection state machine, timeouts, metrics).
//!
//! Not a server for anyone to use. Bounds: a connection's read buffer grows
//! to `MAX_READ` bytes at most (a head that does not fit closes the
//! connection); nothing more is read while answers wait to be written, so its
//! write buffer holds the answers to at most `MAX_READ` bytes of requests;
//! connections: as many as the descriptor limit allows.
//!
//!   swiftlet-codec-loop 127.0.0.1:18080 [workers]

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};
use swiftlet_protocol::{
    BodyFraming, ConnectionHeader, HeadLimits, HttpDate, Parse, RequestHead, ResponseHead, Status,
};

const LISTENER: Token = Token(usize::MAX);
/// swiftlet's head limit (`HeadLimits::default`).
const MAX_READ: usize = 16 * 1024;
/// swiftlet's default `--buffer-size`, and its least free space per read.
const BUFFER_START: usize = 1024;
const MIN_READ_SPACE: usize = 512;

struct Connection {
    stream: TcpStream,
    /// Zeroed as it grows (never per read); `filled` bytes of it hold data.
    rbuf: Vec<u8>,
    filled: usize,
    wbuf: Vec<u8>,
    /// Bytes of `wbuf` already written (the rest waits for writability).
    written: usize,
}

enum Turn {
    Open,
    Close,
}

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: swiftlet-codec-loop ADDR:PORT [workers]");
        std::process::exit(2)
    });
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2).clamp(1, 64);
    // As swiftlet binds (src/server/mod.rs): the first listener resolves
    // the port, the others join it with SO_REUSEPORT.
    let first = reuseport_listener(addr).expect("listener");
    let addr = first.local_addr().expect("address");
    let mut listeners = vec![first];
    while listeners.len() < workers {
        listeners.push(reuseport_listener(addr).expect("listener"));
    }
    // The second, as a clock thread sees it: workers compare it once per loop
    // turn and format the Date when it moved, as swiftlet's timer task does.
    let second = Arc::new(AtomicU64::new(unix_secs()));
    {
        let second = second.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(100));
            second.store(unix_secs(), Ordering::Relaxed);
        });
    }
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let second = second.clone();
            std::thread::spawn(move || worker(TcpListener::from_std(listener), &second))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn worker(mut listener: TcpListener, second: &AtomicU64) {
    let mut poll = Poll::new().expect("poll");
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE).expect("register");
    let mut events = Events::with_capacity(256);
    let mut slab: Vec<Option<Connection>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let limits = HeadLimits::default();
    let mut date_second = second.load(Ordering::Relaxed);
    let mut date = HttpDate::from_unix_secs(date_second);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            panic!("poll: {e}");
        }
        let now = second.load(Ordering::Relaxed);
        if now != date_second {
            date_second = now;
            date = HttpDate::from_unix_secs(now);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    let _ = stream.set_nodelay(true);
                    let slot = free.pop().unwrap_or_else(|| {
                        slab.push(None);
                        slab.len() - 1
                    });
                    if poll.registry().register(&mut stream, Token(slot), Interest::READABLE).is_err() {
                        free.push(slot);
                        continue;
                    }
                    slab[slot] = Some(Connection {
                        stream,
                        rbuf: vec![0; BUFFER_START],
                        filled: 0,
                        wbuf: Vec::with_capacity(BUFFER_START),
                        written: 0,
                    });
                }
                continue;
            }
            let slot = event.token().0;
            let Some(conn) = slab[slot].as_mut() else { continue };
            let turn = serve(conn, &limits, &date, event.is_writable());
            match turn {
                Turn::Open => {
                    let interest = if conn.written < conn.wbuf.len() {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    if event.is_writable() || interest != Interest::READABLE {
                        let _ = poll.registry().reregister(&mut conn.stream, Token(slot), interest);
                    }
                }
                Turn::Close => {
                    if let Some(mut conn) = slab[slot].take() {
                        let _ = poll.registry().deregister(&mut conn.stream);
                    }
                    free.push(slot);
                }
            }
        }
    }
}

/// One readiness event: write what waited, read what arrived, answer every
/// complete head, write the answers.
fn serve(conn: &mut Connection, limits: &HeadLimits, date: &HttpDate, writable: bool) -> Turn {
    if writable && conn.written < conn.wbuf.len() && !flush(conn) {
        return Turn::Close;
    }
    if conn.written < conn.wbuf.len() {
        // Answers still wait for the socket: read nothing more until they are
        // out (the writable event calls again), so `wbuf` stays bounded.
        return Turn::Open;
    }
    let mut closed = false;
    loop {
        if conn.rbuf.len() - conn.filled < MIN_READ_SPACE && conn.rbuf.len() < MAX_READ {
            let grown = (conn.rbuf.len() * 2).min(MAX_READ);
            conn.rbuf.resize(grown, 0);
        }
        if conn.filled == conn.rbuf.len() {
            break; // full: parse what is here first
        }
        match conn.stream.read(&mut conn.rbuf[conn.filled..]) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                conn.filled += n;
                // A short read emptied the socket (as the floor and swiftlet
                // assume): asking again would cost a recv that finds nothing.
                if conn.filled < conn.rbuf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Turn::Close,
        }
    }
    let mut start = 0;
    let mut close = closed;
    while start < conn.filled {
        let head = match RequestHead::parse(&conn.rbuf[start..conn.filled], limits) {
            Ok(Parse::Complete(head)) => head,
            Ok(Parse::Incomplete) => {
                // A head that fills the largest buffer can never complete.
                close |= start == 0 && conn.filled == MAX_READ;
                break;
            }
            Err(_) => {
                close = true;
                break;
            }
        };
        if head.framing != BodyFraming::Empty {
            close = true;
            break;
        }
        let (status, body): (Status, &[u8]) = match head.path(&conn.rbuf[start..conn.filled]) {
            b"/plaintext" => (Status::OK, b"Hello, World!"),
            b"/health" => (Status::OK, b"ok"),
            _ => (Status::NOT_FOUND, b"not found"),
        };
        ResponseHead {
            status,
            content_type: Some("text/plain"),
            content_length: body.len(),
            connection: if head.keep_alive { ConnectionHeader::Omit } else { ConnectionHeader::Close },
            date,
        }
        .encode(&mut conn.wbuf);
        conn.wbuf.extend_from_slice(body);
        start += head.head_len;
        if !head.keep_alive {
            close = true;
            break;
        }
    }
    conn.rbuf.copy_within(start..conn.filled, 0);
    conn.filled -= start;
    if !flush(conn) || close {
        return Turn::Close;
    }
    Turn::Open
}

/// Writes what `wbuf` holds until done or the socket is full; false when the
/// connection failed.
fn flush(conn: &mut Connection) -> bool {
    while conn.written < conn.wbuf.len() {
        match conn.stream.write(&conn.wbuf[conn.written..]) {
            Ok(0) => return false,
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    conn.wbuf.clear();
    conn.written = 0;
    true
}
