//! One HTTP/1.1 request to an S3 endpoint and its response: the client side
//! of the protocol, as much as S3's API needs and no more.
//!
//! Each exchange opens its own connection (TLS for `https` endpoints, with
//! rustls on ring and the system's CA certificates) and asks the server to
//! close it after the response (`Connection: close`): no pool to bound or to
//! go stale. That costs a TCP (and TLS) handshake per S3 call, small beside a
//! 5 MiB part but paid by every ranged read too; see docs/deploy.md.
//!
//! Bounds, in raw bytes: a response head is at most [`MAX_HEAD`]; a body read
//! whole (S3's XML answers) at most the caller's limit, chunked framing
//! counted; an object body streams in chunks of at most [`READ_CHUNK`]. Every
//! step has a deadline: [`CONNECT_TIMEOUT`] to connect and handshake,
//! [`WRITE_TIMEOUT`] to send a request with its body, [`READ_TIMEOUT`] for each
//! read, so a stalled store fails the request instead of holding it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use swiftlet_protocol::chunked::{Chunked, ChunkedDecoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most bytes taken per read of an object body.
pub const READ_CHUNK: usize = 64 * 1024;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(120);
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Headers looked at in a response.
const MAX_HEADERS: usize = 48;

/// Where an S3 store listens, from its endpoint URL
/// (`http[s]://host[:port][/prefix]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    /// The host to connect to: a name or an IP address (no brackets).
    pub host: String,
    pub port: u16,
    /// The `Host` header value: the host, with `:port` unless it is the default.
    pub authority: String,
    /// A path every request's goes under: empty, or `/prefix`.
    pub base_path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let bad = |why: &str| format!("endpoint {url:?}: {why}");
        let (tls, rest) = match url.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http", rest)) => (false, rest),
            _ => return Err(bad("must start with http:// or https://")),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (ip, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
            None => default_port,
        };
        if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace() || b == b'@' || b == b'?' || b == b'#') {
            return Err(bad("bad host"));
        }
        let host_part = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
        let authority = if port == default_port { host_part } else { format!("{host_part}:{port}") };
        let base_path = path.trim_end_matches('/').to_owned();
        if base_path.contains(['?', '#']) {
            return Err(bad("no query or fragment"));
        }
        Ok(Endpoint { tls, host: host.to_owned(), port, authority, base_path })
    }
}

/// Opens connections to one endpoint.
pub struct Connector {
    endpoint: Endpoint,
    /// For `https` endpoints; `None` for `http`.
    tls: Option<TlsConnector>,
}

impl Connector {
    /// A connector for `endpoint`; for `https`, trusting the system's CA
    /// certificates (an error if there are none).
    pub fn new(endpoint: Endpoint) -> Result<Connector, String> {
        if !endpoint.tls {
            return Ok(Connector { endpoint, tls: None });
        }
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(format!(
                "no CA certificates found on this system to check the endpoint's ({:?})",
                found.errors
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Connector { endpoint, tls: Some(TlsConnector::from(Arc::new(config))) })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn connect(&self) -> io::Result<Stream> {
        let tcp = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port)).await?;
        tcp.set_nodelay(true)?;
        let Some(tls) = &self.tls else { return Ok(Stream::Plain(tcp)) };
        let name = rustls_pki_types::ServerName::try_from(self.endpoint.host.clone()).map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(tls.connect(name, tcp).await?)))
    }

    /// Sends `method` for `target` (path and query, encoded) with `headers`
    /// and `body`, and reads the response head.
    pub async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> io::Result<Response> {
        let mut stream = deadline(CONNECT_TIMEOUT, self.connect()).await?;
        let mut head = Vec::with_capacity(512 + target.len());
        head.extend_from_slice(method.as_bytes());
        head.push(b' ');
        head.extend_from_slice(target.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        head.extend_from_slice(self.endpoint.authority.as_bytes());
        head.extend_from_slice(b"\r\nConnection: close\r\nContent-Length: ");
        head.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        head.extend_from_slice(b"\r\n");
        for (name, value) in headers {
            if value.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(io::Error::other("a header value with a line break"));
            }
            head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        deadline(WRITE_TIMEOUT, async {
            stream.write_all(&head).await?;
            stream.write_all(&body).await?;
            stream.flush().await
        })
        .await?;
        Response::read_head(stream).await
    }
}

async fn deadline<T>(limit: Duration, work: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// A response whose head has been read.
pub struct Response {
    pub status: u16,
    /// The `ETag` header, if any (an uploaded part's).
    pub etag: Option<String>,
    framing: Framing,
    stream: Stream,
    /// Body bytes that came with the head.
    buffered: BytesMut,
}

impl Response {
    async fn read_head(mut stream: Stream) -> io::Result<Response> {
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            if buf.len() >= MAX_HEAD {
                return Err(io::Error::other("response head too long"));
            }
            if deadline(READ_TIMEOUT, stream.read_buf(&mut buf)).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            let used = match parsed.parse(&buf).map_err(io::Error::other)? {
                httparse::Status::Partial => continue,
                httparse::Status::Complete(used) => used,
            };
            let status = parsed.code.unwrap_or(0);
            if (100..200).contains(&status) {
                // An interim answer: the real one follows.
                let _ = buf.split_to(used);
                continue;
            }
            let mut framing = Framing::UntilClose;
            let mut etag = None;
            for h in parsed.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    let n = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok());
                    framing = Framing::Length(n.ok_or_else(|| io::Error::other("bad Content-Length"))?);
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    if !h.value.eq_ignore_ascii_case(b"chunked") {
                        return Err(io::Error::other("a transfer coding other than chunked"));
                    }
                    framing = Framing::Chunked;
                } else if h.name.eq_ignore_ascii_case("etag") {
                    etag = std::str::from_utf8(h.value).ok().map(str::to_owned);
                }
            }
            if status == 204 || status == 304 {
                framing = Framing::Length(0);
            }
            let _ = buf.split_to(used);
            return Ok(Response { status, etag, framing, stream, buffered: buf });
        }
    }

    /// The whole body, refused beyond `limit` raw bytes.
    pub async fn bytes(mut self, limit: usize) -> io::Result<Bytes> {
        let too_long = || io::Error::other("response body too long");
        match self.framing {
            Framing::Length(n) => {
                if n > limit as u64 {
                    return Err(too_long());
                }
                while (self.buffered.len() as u64) < n {
                    self.fill(n as usize).await?;
                }
                self.buffered.truncate(n as usize);
            }
            Framing::UntilClose => loop {
                if self.buffered.len() > limit {
                    return Err(too_long());
                }
                if self.read(limit + 1).await? == 0 {
                    break;
                }
            },
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new(limit as u64);
                loop {
                    match decoder.decode(&mut self.buffered).map_err(|e| io::Error::other(format!("{e:?}")))? {
                        Chunked::Complete { body_len, .. } => {
                            self.buffered.truncate(body_len);
                            break;
                        }
                        Chunked::Incomplete => {
                            // Cut the framing out so the buffer holds decoded
                            // bytes and unread input only.
                            let framing = decoder.discard_framing();
                            let len = self.buffered.len();
                            self.buffered.copy_within(framing.end..len, framing.start);
                            self.buffered.truncate(len - framing.len());
                            self.fill(limit).await?;
                        }
                    }
                }
            }
        }
        Ok(self.buffered.freeze())
    }

    /// The body as chunks, which must be exactly `len` bytes.
    pub fn chunks(mut self, len: u64) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        if self.framing != Framing::Length(len) {
            return Err(io::Error::other(format!("an object body framed as {:?}, expected {len} bytes", self.framing)));
        }
        let first = self.buffered.split_off(0).freeze();
        let left = len.saturating_sub(first.len() as u64);
        let head = futures_util::stream::iter((!first.is_empty()).then_some(Ok(first)));
        let rest = futures_util::stream::try_unfold((self, left), |(mut response, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let n = response.read((left as usize).min(READ_CHUNK)).await?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            let chunk = response.buffered.split().freeze();
            Ok(Some((chunk, (response, left - n as u64))))
        });
        Ok(head.chain(rest).boxed())
    }

    /// Reads until `buffered` holds at least one byte more, or to `cap` bytes.
    async fn fill(&mut self, cap: usize) -> io::Result<()> {
        if self.read(cap).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// One read of at most `cap - buffered` bytes (at least one) into `buffered`.
    async fn read(&mut self, cap: usize) -> io::Result<usize> {
        let room = cap.saturating_sub(self.buffered.len()).clamp(1, READ_CHUNK);
        self.buffered.reserve(room);
        let mut limited = (&mut self.stream).take(room as u64);
        deadline(READ_TIMEOUT, limited.read_buf(&mut self.buffered)).await
    }
}

/// A connection to the store, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_their_default_ports_and_host_headers() {
        let e = Endpoint::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.authority.as_str(), e.base_path.as_str()),
            (false, "127.0.0.1", 9000, "127.0.0.1:9000", "")
        );
        let e = Endpoint::parse("https://s3.eu-west-1.amazonaws.com/").unwrap();
        assert_eq!((e.tls, e.port, e.authority.as_str()), (true, 443, "s3.eu-west-1.amazonaws.com"));
        let e = Endpoint::parse("http://[::1]:8333/store").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.authority.as_str(), e.base_path.as_str()),
            ("::1", 8333, "[::1]:8333", "/store")
        );
        for bad in ["ftp://x", "x", "http://", "http://h:99999", "http://a b", "http://h/p?q"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
