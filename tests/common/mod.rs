//! The one helper every black-box test uses: start the real swiftlet binary on
//! an ephemeral port, talk to it over real TCP, and kill it when the test ends.
#![allow(dead_code)] // each test binary uses a different part of this

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod s3;
pub mod site;
pub mod storage;

/// The secret test servers sign tokens with (tests forge tokens with it too).
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret!";

pub struct TestServer {
    pub addr: SocketAddr,
    child: Option<Child>,
    /// Log lines, collected by a thread, for tests that look at them.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The server's own video directory, removed with it.
    pub video_dir: std::path::PathBuf,
}

impl TestServer {
    /// One worker (unless `args` say otherwise) with the fault-injection routes
    /// on, and no database or cache.
    pub fn start(args: &[&str]) -> TestServer {
        TestServer::start_with_env(args, &[])
    }

    /// Like [`TestServer::start`], with extra environment (`DATABASE_URL`, …).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> TestServer {
        TestServer::start_with_prefix(&[], args, env)
    }

    /// Like [`TestServer::start_with_env`], run through `prefix` (a program
    /// that execs the server, such as `prlimit --nofile=…`, so the pid stays
    /// the server's).
    pub fn start_with_prefix(prefix: &[&str], args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let mut cmd = match prefix.split_first() {
            None => Command::new(env!("CARGO_BIN_EXE_swiftlet")),
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(env!("CARGO_BIN_EXE_swiftlet"));
                cmd
            }
        };
        cmd.args(["--listen", "127.0.0.1:0", "--test-routes"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // Defaults come by environment so that `args` can override them.
        cmd.env("SWIFTLET_LOG", "info").env("SWIFTLET_WORKERS", "1").env("DATABASE_URL", "").env("REDIS_URL", "");
        cmd.env("JWT_SECRET", TEST_JWT_SECRET);
        // Development mode opens the log service without an ingest token (the
        // tests of its tokens configure one, or turn this off).
        cmd.env("SWIFTLET_DEV", "true");
        // Without a database /ingest can only acknowledge from its queue; the
        // ingestion tests ask for durable mode where they have a database.
        cmd.env("SWIFTLET_INGEST_ACK", "queued");
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let video_dir = std::env::temp_dir().join(format!("swiftlet-test-videos-{}-{n}", std::process::id()));
        cmd.env("SWIFTLET_VIDEO_DIR", &video_dir);
        for (key, value) in env {
            cmd.env(key, value);
        }
        // If the test thread dies without running Drop (the test binary killed
        // by a timeout or a closed pipe), the server must not outlive it.
        // SAFETY: the closure runs in the forked child before exec and only
        // calls prctl(2), which is async-signal-safe: no locks, no allocation.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start swiftlet");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let addr =
                    line.split("addr=").nth(1).map(|rest| rest.split_whitespace().next().unwrap_or("").to_string());
                // Kept before the address is announced, so a test that has the
                // address finds the line that gave it in the log.
                log_writer.lock().unwrap().push(line);
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("swiftlet did not log its address")
            .parse()
            .expect("address");
        TestServer { addr, child: Some(child), log, video_dir }
    }

    pub fn connect(&self) -> Client {
        Client::connect_to(self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([&format!("-{sig}"), &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit; returns how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<(Duration, std::process::ExitStatus)> {
        let started = Instant::now();
        let child = self.child.as_mut()?;
        while started.elapsed() < limit {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some((started.elapsed(), status));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.video_dir);
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect_to(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, buf: Vec::new() }
    }

    /// A client on a connection the test opened itself.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("write");
    }

    /// Reads one response. `head_request` says it answers a HEAD (no body).
    pub fn read_response_to(&mut self, head_request: bool) -> Response {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()
                .unwrap_or_else(|| panic!("connection closed mid-head: {:?}", String::from_utf8_lossy(&self.buf)));
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("ascii head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "status line {status_line:?}");
        let status: u16 = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let body_len = if head_request || status < 200 || status == 204 { 0 } else { len };
        while self.buf.len() < head_end + body_len {
            self.fill().expect("connection closed mid-body");
        }
        let body = self.buf[head_end..head_end + body_len].to_vec();
        self.buf.drain(..head_end + body_len);
        Response { status, headers, body }
    }

    pub fn read_response(&mut self) -> Response {
        self.read_response_to(false)
    }

    pub fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        self.read_response()
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
    }

    /// True when the server has closed the connection (EOF, or a reset) and
    /// sent nothing more.
    pub fn is_closed(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.fill().is_none()
    }

    /// Reads more bytes; None on EOF or error.
    fn fill(&mut self) -> Option<usize> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => None,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("timed out waiting for the server")
            }
            Err(_) => None,
        }
    }
}

/// A valid ingest body.
pub const EVENT: &str = r#"{"event_id":"evt-1","timestamp":1700000000000,"service":"checkout","message":"paid","metadata":{"region":"eu"}}"#;
