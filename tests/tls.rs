//! HTTPS over real sockets: `swiftlet dev-cert`, a TLS listener beside plain
//! HTTP and instead of it, TLS 1.3 and 1.2, ALPN http/1.1 only, keep-alive,
//! and an upload and its playback (the streamed paths) over TLS.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::storage::{eventually, redis_addr, TestDb};
use common::TestServer;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

struct Certs {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A pair written by the binary's own `dev-cert` command.
fn dev_cert(tag: &str) -> Certs {
    let dir = std::env::temp_dir().join(format!("swiftlet-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new(env!("CARGO_BIN_EXE_swiftlet"))
        .args(["dev-cert", "--cert"])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Certs { dir, cert, key }
}

fn tls_addr(server: &TestServer) -> SocketAddr {
    let line = server.log_lines().into_iter().find(|l| l.contains("tls_addr=")).expect("no tls_addr in the log");
    line.split("tls_addr=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
}

/// A client that trusts exactly `cert`, offering `versions` and ALPN `alpn`.
fn client_config(
    cert: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // Drive the handshake to its end (or its failure) before any request.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Sends `raw` and reads one response: (status, headers, body).
fn exchange(tls: &mut Tls, raw: &[u8]) -> (u16, String, Vec<u8>) {
    tls.write_all(raw).unwrap();
    tls.flush().unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                return (status, head, buf[end + 4..end + 4 + len].to_vec());
            }
        }
        let n = tls.read(&mut chunk).unwrap();
        assert!(n > 0, "the server closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn https_beside_plain_http_with_tls13_tls12_and_alpn_http1_only() {
    let certs = dev_cert("beside");
    let cert = certs.cert.to_str().unwrap();
    let key = certs.key.to_str().unwrap();
    let server =
        TestServer::start(&["--workers", "2", "--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key]);
    let addr = tls_addr(&server);

    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut tls = connect(addr, client_config(&certs.cert, &[version], &[b"http/1.1"])).unwrap();
        assert_eq!(tls.conn.protocol_version(), Some(version.version));
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        // Keep-alive: several requests on one session, pipelined too.
        for _ in 0..3 {
            let (status, _, body) = exchange(&mut tls, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!((status, body.as_slice()), (200, &b"{\"status\":\"ok\"}"[..]));
        }
        tls.write_all(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut both = Vec::new();
        let mut chunk = [0u8; 4096];
        while both.windows(13).filter(|w| w == b"Hello, World!").count() < 2 {
            let n = tls.read(&mut chunk).unwrap();
            assert!(n > 0, "the server closed mid-pipeline");
            both.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(both.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count(), 2);
    }

    // No ALPN at all is fine (curl without --http1.1 offers it; old clients do not).
    let mut tls = connect(addr, client_config(&certs.cert, &[&rustls::version::TLS13], &[])).unwrap();
    assert_eq!(exchange(&mut tls, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").0, 200);
    // A client that speaks only h2 is refused in the handshake, not answered in HTTP/1.1.
    let h2_only = connect(addr, client_config(&certs.cert, &[&rustls::version::TLS13], &[b"h2"]));
    assert!(h2_only.is_err(), "an h2-only client got a session");
    // A client that does not trust the certificate fails; the server lives on.
    let other = dev_cert("other");
    assert!(connect(addr, client_config(&other.cert, &[&rustls::version::TLS13], &[])).is_err());
    // Plain bytes on the TLS port are not a request.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = plain.read_to_end(&mut reply);
    assert!(!reply.starts_with(b"HTTP/1.1 200"), "plain HTTP was answered on the TLS port");

    // Plain HTTP is still served beside it.
    assert_eq!(server.connect().get("/health").status, 200);
    let mut tls = connect(addr, client_config(&certs.cert, &[&rustls::version::TLS13], &[b"http/1.1"])).unwrap();
    assert_eq!(exchange(&mut tls, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").0, 200);
}

#[test]
fn https_only_and_bad_certificates_stop_the_start() {
    let certs = dev_cert("only");
    let (cert, key) = (certs.cert.to_str().unwrap(), certs.key.to_str().unwrap());
    let server =
        TestServer::start(&["--tls-only", "--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key]);
    let lines = server.log_lines();
    assert!(lines.iter().any(|l| l.contains("listening (HTTPS only)")), "{lines:#?}");
    let mut tls = connect(tls_addr(&server), client_config(&certs.cert, &[&rustls::version::TLS13], &[])).unwrap();
    assert_eq!(exchange(&mut tls, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").0, 200);

    // The key given as the certificate: refused at start, with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_swiftlet"))
        .args(["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--tls-cert", key, "--tls-key", key])
        .env("JWT_SECRET", common::TEST_JWT_SECRET)
        .env("DATABASE_URL", "")
        .env("REDIS_URL", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("no certificate in the file"), "{log}");
    // A TLS address without a certificate is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_swiftlet")).args(["--tls-listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_video_uploads_and_plays_back_over_tls() {
    let certs = dev_cert("video");
    let (cert, key) = (certs.cert.to_str().unwrap(), certs.key.to_str().unwrap());
    let db = TestDb::create();
    let redis_url = format!("redis://{}", redis_addr());
    let server = TestServer::start_with_env(
        &["--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--upload-part-bytes", "65536"],
        &[("DATABASE_URL", &db.url), ("REDIS_URL", &redis_url)],
    );
    let mut plain = server.connect();
    assert!(eventually(Duration::from_secs(30), || plain.get("/api/videos").status == 200
        && plain.get("/api/ids").status == 200));
    let mut tls =
        connect(tls_addr(&server), client_config(&certs.cert, &[&rustls::version::TLS13], &[b"http/1.1"])).unwrap();
    let body = r#"{"user":{"username":"tia","email":"tia@example.com","password":"pw-tia-1"}}"#;
    let raw = format!(
        "POST /api/users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, _, reply) = exchange(&mut tls, raw.as_bytes());
    assert_eq!(status, 201);
    let reply = String::from_utf8(reply).unwrap();
    let token = reply.split("\"token\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();

    let mut video = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    video.extend((0..400_000).map(|i| (i % 249) as u8));
    let mut raw = format!(
        "POST /api/videos?title=secure HTTP/1.1\r\nHost: t\r\nAuthorization: Token {token}\r\nContent-Type: video/mp4\r\n\
         Content-Length: {}\r\n\r\n",
        video.len()
    )
    .into_bytes();
    raw.extend_from_slice(&video);
    let (status, _, reply) = exchange(&mut tls, &raw);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&reply));
    let reply = String::from_utf8(reply).unwrap();
    let id = reply.split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();

    let get = format!("GET /api/videos/{id}/content HTTP/1.1\r\nHost: t\r\n\r\n");
    let (status, _, bytes) = exchange(&mut tls, get.as_bytes());
    assert_eq!(status, 200);
    assert!(bytes == video, "the video came back different over TLS");
    let ranged = format!("GET /api/videos/{id}/content HTTP/1.1\r\nHost: t\r\nRange: bytes=1000-1999\r\n\r\n");
    let (status, head, bytes) = exchange(&mut tls, ranged.as_bytes());
    assert_eq!(status, 206, "{head}");
    assert_eq!(bytes, &video[1000..2000]);
}

/// The head timeout counts from accept, handshake included: a client that
/// waits before its handshake and then sends nothing is closed at the head
/// timeout from its connect, not a whole timeout after the handshake.
#[test]
fn tls_head_timeout_counts_from_accept() {
    let certs = dev_cert("timeout");
    let (cert, key) = (certs.cert.to_str().unwrap(), certs.key.to_str().unwrap());
    let server = TestServer::start(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--header-timeout",
        "2",
    ]);
    let addr = tls_addr(&server);
    let config = client_config(&certs.cert, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let tcp = TcpStream::connect(addr).unwrap();
    let connected = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    // Half a head, then nothing: the server must give up at 2 s from connect.
    tls.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply);
    let closed = connected.elapsed();
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&reply));
    assert!(closed >= Duration::from_millis(1900) && closed < Duration::from_millis(2900), "closed after {closed:?}");
}
