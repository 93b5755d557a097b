//! Writing answers: encoding a response into the connection's write buffer
//! (status line, the fixed headers, CORS, the body) and writing bytes to the
//! socket within a timeout. A peer that takes nothing for the timeout gets a
//! reset when the connection closes (`Transport::reset_on_close`), so the
//! kernel drops what was queued for it instead of keeping the socket alive.

use std::io;
use std::time::Duration;

use futures_util::FutureExt;
use swiftlet_protocol::{ConnectionHeader, Method, RequestHead, ResponseHead, Version};
use tokio::io::AsyncWriteExt;

use super::date_cache;
use super::transport::Transport;
use crate::http::response::{Cors, CorsOrigin, CorsOrigins, Response};

/// Writes all of `buf`, failing when the peer takes nothing for `timeout`.
/// The timer is set up only when a write has to wait. A peer that took
/// nothing gets a reset when the connection closes, not our queued bytes.
pub async fn write_all<S: Transport>(stream: &mut S, mut buf: &[u8], timeout: Duration) -> io::Result<()> {
    while !buf.is_empty() {
        let written = match stream.write(buf).now_or_never() {
            Some(written) => written,
            None => tokio::time::timeout(timeout, stream.write(buf)).await.map_err(|_| {
                stream.reset_on_close();
                io::Error::from(io::ErrorKind::TimedOut)
            })?,
        }?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[written..];
    }
    Ok(())
}

/// Pushes out what the transport buffers (TLS records); at once for TCP.
pub async fn flush_stream<S: Transport>(stream: &mut S, timeout: Duration) -> io::Result<()> {
    match stream.flush().now_or_never() {
        Some(flushed) => flushed,
        None => tokio::time::timeout(timeout, stream.flush()).await.map_err(|_| {
            stream.reset_on_close();
            io::Error::from(io::ErrorKind::TimedOut)
        })?,
    }
}

/// The CORS origin headers of an answer that carries CORS (`Cors::None`
/// answers get none, whatever the configuration).
pub fn cors_origin<'a>(
    origins: &'a CorsOrigins,
    response: &Response<'_>,
    head: &RequestHead,
    buf: &'a [u8],
) -> CorsOrigin<'a> {
    if response.cors() == Cors::None {
        return NO_CORS;
    }
    let origin = match origins {
        CorsOrigins::Any => None,
        CorsOrigins::Listed(_) => head.header(buf, "origin"),
    };
    origins.for_origin(origin)
}

pub const NO_CORS: CorsOrigin<'static> = CorsOrigin { allow: None, vary: false };

/// Encodes a response to a parsed request.
pub fn encode(out: &mut Vec<u8>, response: &Response<'_>, head: &RequestHead, keep_alive: bool, cors: CorsOrigin<'_>) {
    let connection = match (keep_alive, head.version) {
        (false, _) => ConnectionHeader::Close,
        (true, Version::Http10) => ConnectionHeader::KeepAlive,
        (true, Version::Http11) => ConnectionHeader::Omit,
    };
    write_response(out, response, connection, head.method != Method::Head, cors);
}

/// Encodes the response to a request whose head could not be parsed: we do not
/// know its version or method, so it gets the full body and a close.
pub fn encode_unparsed(out: &mut Vec<u8>, response: &Response<'_>) {
    write_response(out, response, ConnectionHeader::Close, true, NO_CORS);
}

pub fn write_response(
    out: &mut Vec<u8>,
    response: &Response<'_>,
    connection: ConnectionHeader,
    with_body: bool,
    cors: CorsOrigin<'_>,
) {
    let date = date_cache::current();
    let mut head = ResponseHead {
        status: response.status(),
        content_type: response.content_type(),
        content_length: response.content_length(),
        connection,
        date: &date,
    }
    .open(out);
    if let Some((name, value)) = response.header() {
        head.field(name, value.as_bytes());
    }
    if let Some(origin) = cors.allow {
        head.field("Access-Control-Allow-Origin", origin);
    }
    if cors.vary {
        head.field("Vary", b"Origin");
    }
    if response.cors() == Cors::Preflight {
        head.field("Access-Control-Allow-Methods", b"GET, HEAD, POST, PUT, DELETE, OPTIONS");
        head.field("Access-Control-Allow-Headers", b"Authorization, Content-Type, X-Requested-With");
        head.field("Access-Control-Max-Age", b"86400");
    }
    for (name, value) in response.dynamic_headers() {
        head.field(name, value.as_bytes());
    }
    head.close();
    let body = response.body();
    if with_body {
        out.extend_from_slice(body);
    }
}
