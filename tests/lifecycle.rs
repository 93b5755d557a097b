//! Black-box tests of the connection life cycle: timeouts, panic recovery,
//! the connection cap and graceful shutdown. Timeouts are shortened by flags;
//! the kernel's clock is real here, so the bounds are generous.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;

#[test]
fn header_timeout_starts_at_accept_and_ignores_trickling() {
    let server = TestServer::start(&["--header-timeout", "0.5"]);

    // Nothing sent at all: closed quietly once the head timeout runs out.
    let mut silent = server.connect();
    let started = Instant::now();
    assert!(silent.is_closed());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(5), "{waited:?}");

    // Slowloris: a byte every 100 ms never completes the head, and does not
    // extend the deadline.
    let mut slow = server.connect();
    let started = Instant::now();
    let head = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    let mut got_408 = false;
    for &b in head.iter().chain(std::iter::repeat(&b'a')) {
        if slow.stream.write_all_ignoring_errors(&[b]).is_err() || started.elapsed() > Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if readable(&slow.stream) {
            let r = slow.read_response();
            assert_eq!(r.status, 408);
            got_408 = true;
            break;
        }
    }
    assert!(got_408, "no 408 within 3 s");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[test]
fn body_timeout_is_408() {
    let server = TestServer::start(&["--body-timeout", "0.5"]);
    let mut c = server.connect();
    c.send(b"POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"event_id\"");
    let started = Instant::now();
    let r = c.read_response();
    assert_eq!(r.status, 408);
    assert!(r.text().contains("body"), "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(c.is_closed());
}

#[test]
fn idle_keep_alive_timeout_closes() {
    let server = TestServer::start(&["--idle-timeout", "0.5"]);
    let mut c = server.connect();
    assert_eq!(c.get("/health").status, 200);
    let started = Instant::now();
    assert!(c.is_closed());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn each_request_moves_the_idle_timeout_on() {
    // The connection's timer is moved later lazily (when it fires early, not
    // at every request): a deadline a later request moved must not close it.
    let server = TestServer::start(&["--idle-timeout", "0.5"]);
    let mut c = server.connect();
    for _ in 0..5 {
        assert_eq!(c.get("/health").status, 200);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(c.get("/health").status, 200, "open 1.5 s after the first request, 0.3 s after the last");
    let started = Instant::now();
    assert!(c.is_closed());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn panicking_handler_gets_500_and_the_server_goes_on() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    let r = c.get("/__test/panic");
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), r#"{"errors":{"server":["internal error"]}}"#);
    // Same connection, then a new one, then many more panics.
    assert_eq!(c.get("/health").status, 200);
    for _ in 0..50 {
        assert_eq!(server.connect().get("/__test/panic").status, 500);
    }
    assert_eq!(server.connect().get("/plaintext").text(), "Hello, World!");
    std::thread::sleep(Duration::from_millis(100));
    assert!(server.log_lines().iter().any(|l| l.contains("handler panicked")));
}

#[test]
fn connection_cap_answers_503() {
    let server = TestServer::start(&["--max-connections", "2"]);
    let mut a = server.connect();
    let mut b = server.connect();
    assert_eq!(a.get("/health").status, 200);
    assert_eq!(b.get("/health").status, 200);
    let mut c = server.connect();
    let r = c.read_response();
    assert_eq!(r.status, 503);
    assert!(c.is_closed());
    // A slot frees up when a connection ends.
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.connect().get("/health").status, 200);
    assert_eq!(b.get("/health").status, 200);
}

#[test]
fn graceful_shutdown_finishes_requests_in_flight() {
    let mut server = TestServer::start(&["--workers", "2", "--shutdown-timeout", "5"]);
    let mut idle = server.connect();
    assert_eq!(idle.get("/health").status, 200);
    let mut busy = server.connect();
    busy.send(b"GET /__test/sleep?ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));

    server.signal("TERM");
    // The idle connection is closed right away.
    assert!(idle.is_closed());
    // The request in flight completes, and is told the connection closes.
    let r = busy.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "slept"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(busy.is_closed());
    // No new connections, and the process exits cleanly, well within the bound.
    let (took, status) = server.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(std::net::TcpStream::connect(server.addr).is_err());
}

#[test]
fn shutdown_is_bounded_when_a_request_outlives_it() {
    let mut server = TestServer::start(&["--shutdown-timeout", "0.5"]);
    let mut busy = server.connect();
    busy.send(b"GET /__test/sleep?ms=10000 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));
    server.signal("INT");
    let (took, status) = server.wait_exit(Duration::from_secs(5)).expect("exited within the bound");
    assert!(status.success());
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(busy.is_closed());
}

/// Whether bytes (or EOF) are waiting on the socket.
fn readable(stream: &std::net::TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = stream.peek(&mut b);
    stream.set_nonblocking(false).unwrap();
    !matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

trait WriteIgnoringErrors {
    fn write_all_ignoring_errors(&mut self, b: &[u8]) -> std::io::Result<()>;
}

impl WriteIgnoringErrors for std::net::TcpStream {
    fn write_all_ignoring_errors(&mut self, b: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(self, b)
    }
}

/// Runs the binary with `args` and JWT_SECRET set to `secret` (or absent), for
/// at most 3 s; returns whether it exited by itself, its exit success, and its
/// stdout and stderr.
fn run_with_secret(secret: Option<&str>, args: &[&str]) -> (bool, bool, String) {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swiftlet"));
    match secret {
        Some(secret) => cmd.env("JWT_SECRET", secret),
        None => cmd.env_remove("JWT_SECRET"),
    };
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0", "--workers", "1", "--log", "info"])
        .args(args)
        .env("DATABASE_URL", "")
        .env("REDIS_URL", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut exited = false;
    while !exited && started.elapsed() < Duration::from_secs(3) {
        exited = child.try_wait().unwrap().is_some();
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stops it if it is still running; either way reaps it.
    let _ = child.kill();
    let status = child.wait().unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut out).unwrap();
    (exited, exited && status.success(), out)
}

#[test]
fn refuses_to_start_without_a_token_secret_unless_in_dev_mode() {
    let (exited, success, out) = run_with_secret(None, &[]);
    assert!(exited && !success, "started without JWT_SECRET: {out}");
    assert!(out.contains("JWT_SECRET"), "{out}");
    let (exited, success, out) = run_with_secret(Some("too short"), &[]);
    assert!(exited && !success, "started with a 9-byte secret: {out}");
    assert!(out.contains("at least 32 bytes"), "{out}");
    let (exited, _, out) = run_with_secret(Some("a secret that is thirty-two bytes"), &[]);
    assert!(!exited, "a 32-byte secret was refused: {out}");

    // --dev starts, and says loudly that tokens are signed with a throwaway secret.
    let (exited, _, out) = run_with_secret(None, &["--dev"]);
    assert!(!exited, "--dev did not keep running: {out}");
    assert!(out.contains("DEV MODE"), "{out}");
}

/// How one request of the SIGTERM load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The whole response arrived (status, and whether it said Connection: close).
    Answered(u16, bool),
    /// The connection ended before any byte of a response: the request was
    /// never read (or the server closed an idle connection).
    CleanClose,
    /// Part of a response, then the end: what must never happen.
    Truncated,
    /// An error other than an orderly end (a reset).
    Broken,
}

/// Sends one request and reads its answer as raw bytes.
fn one_request(stream: &mut std::net::TcpStream) -> Ending {
    use std::io::{Read, Write};
    if stream.write_all(b"GET /__test/sleep?ms=5 HTTP/1.1\r\nHost: t\r\n\r\n").is_err() {
        return Ending::CleanClose; // closed before we wrote: nothing was read
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                return Ending::Answered(status, head.contains("connection: close"));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Ending::CleanClose,
            Ok(0) => return Ending::Truncated,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && buf.is_empty() => return Ending::Broken,
            Err(_) if buf.is_empty() => return Ending::Broken,
            Err(_) => return Ending::Truncated,
        }
    }
}

#[test]
fn sigterm_under_load_answers_every_request_it_read_in_full() {
    let mut server = TestServer::start(&["--workers", "2", "--shutdown-timeout", "5"]);
    let addr = server.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut endings = Vec::new();
                'connections: while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { break };
                    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    loop {
                        let ending = one_request(&mut stream);
                        endings.push(ending);
                        match ending {
                            Ending::Answered(_, false) => {}
                            _ => continue 'connections,
                        }
                    }
                }
                endings
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    server.signal("TERM");
    let (took, status) = server.wait_exit(Duration::from_secs(10)).expect("exited");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let endings: Vec<Ending> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    let count = |f: &dyn Fn(&Ending) -> bool| endings.iter().filter(|e| f(e)).count();
    let answered = count(&|e| matches!(e, Ending::Answered(200, _)));
    let told_to_close = count(&|e| matches!(e, Ending::Answered(200, true)));
    let truncated = count(&|e| *e == Ending::Truncated);
    let broken = count(&|e| *e == Ending::Broken);
    let other = count(&|e| matches!(e, Ending::Answered(s, _) if *s != 200));
    eprintln!(
        "SIGTERM under load: {answered} answered in full ({told_to_close} with Connection: close), \
         {} clean closes, {truncated} truncated, {broken} reset, {other} other statuses; exit after {took:?}",
        count(&|e| *e == Ending::CleanClose)
    );
    assert!(status.success(), "{status:?}");
    assert!(answered > 100, "too little load to mean anything: {answered}");
    assert_eq!((truncated, broken, other), (0, 0, 0), "a request was read but not answered in full");
    assert!(told_to_close > 0, "no request was in flight at the signal: the test did not test anything");
}
