//! What a handler produces: a status, a content type and a body.
//!
//! Static bodies are referenced, not copied; generated bodies are written into
//! a scratch buffer the connection owns and reuses, so building a response
//! allocates nothing once the buffer has grown to fit. The connection then
//! encodes the head and copies the body into its write buffer.
//!
//! A stored object (a video) is the one body that is not in memory: the
//! response carries its stream and length, and the connection writes the head
//! and then pumps the stream to the socket.

use serde::Serialize;
use swiftlet_protocol::Status;

use crate::http::error::AppError;
use crate::storage::objects::ObjectBody;

pub const TEXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json";
pub const HTML: &str = "text/html; charset=utf-8";
/// The Prometheus text exposition format, version 0.0.4.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The product API's JSON, with the charset its spec asks for (shared/conduit-api.md §1).
pub const API_JSON: &str = "application/json; charset=utf-8";

/// Which CORS headers a response carries (the product API's, for browser
/// front ends on another origin; shared/conduit-api.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cors {
    None,
    /// `Access-Control-Allow-Origin: *` on an ordinary response.
    Simple,
    /// The answer to an OPTIONS preflight: origin, methods and headers allowed.
    Preflight,
}

/// Which origins may read the product API's answers (`--cors-origin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any.
    Any,
    /// These exactly, as a browser sends them in `Origin` (scheme, host, port).
    Listed(Vec<Box<[u8]>>),
}

/// The CORS origin headers of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorsOrigin<'a> {
    /// The `Access-Control-Allow-Origin` value, if the request's origin may read it.
    pub allow: Option<&'a [u8]>,
    /// `Vary: Origin`: the answer depends on the request's origin (a list is configured).
    pub vary: bool,
}

impl CorsOrigins {
    /// `*`, or a comma-separated list of origins.
    pub fn parse(text: &str) -> CorsOrigins {
        let listed: Vec<Box<[u8]>> =
            text.split(',').map(str::trim).filter(|o| !o.is_empty()).map(|o| o.as_bytes().into()).collect();
        if listed.is_empty() || listed.iter().any(|o| &**o == b"*") {
            CorsOrigins::Any
        } else {
            CorsOrigins::Listed(listed)
        }
    }

    /// The headers for a request that sent `origin`.
    pub fn for_origin<'a>(&'a self, origin: Option<&'a [u8]>) -> CorsOrigin<'a> {
        match self {
            CorsOrigins::Any => CorsOrigin { allow: Some(b"*"), vary: false },
            CorsOrigins::Listed(listed) => {
                CorsOrigin { allow: origin.filter(|o| listed.iter().any(|allowed| **allowed == **o)), vary: true }
            }
        }
    }
}

enum Body {
    Static(&'static [u8]),
    Scratch,
}

pub struct Response<'s> {
    status: Status,
    content_type: Option<&'static str>,
    /// The error's extra header (Allow, Retry-After).
    header: Option<(&'static str, &'static str)>,
    cors: Cors,
    /// Headers with values made per response (Content-Range); at most
    /// `MAX_DYNAMIC_HEADERS`. Empty, and so not allocated, on most responses.
    dynamic: Vec<(&'static str, String)>,
    body: Body,
    /// A body streamed from object storage instead of `body`, and its
    /// length (kept after the connection takes the stream, for the head).
    stream: Option<ObjectBody>,
    stream_len: Option<u64>,
    scratch: &'s mut Vec<u8>,
}

/// How many per-response headers a response may carry. Their values are made
/// by handlers from bounded parts (today only Accept-Ranges and a
/// Content-Range of three 64-bit numbers), so with the fixed fields this
/// bounds the size of every response head.
pub const MAX_DYNAMIC_HEADERS: usize = 2;

impl<'s> Response<'s> {
    /// An empty 204 response that a handler fills in.
    pub fn new(scratch: &'s mut Vec<u8>) -> Response<'s> {
        scratch.clear();
        Response {
            status: Status::NO_CONTENT,
            content_type: None,
            header: None,
            cors: Cors::None,
            dynamic: Vec::new(),
            body: Body::Static(b""),
            stream: None,
            stream_len: None,
            scratch,
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn content_type(&self) -> Option<&'static str> {
        self.content_type
    }

    /// The extra header an error answer carries (Allow on a 405, Retry-After on some 503s).
    pub fn header(&self) -> Option<(&'static str, &'static str)> {
        self.header
    }

    /// Headers whose values this response made (see [`add_header`](Self::add_header)).
    pub fn dynamic_headers(&self) -> &[(&'static str, String)] {
        &self.dynamic
    }

    /// Adds a header with a value made for this response. An error sent
    /// afterwards drops it, but for a 416's Content-Range.
    pub fn add_header(&mut self, name: &'static str, value: String) {
        debug_assert!(self.dynamic.len() < MAX_DYNAMIC_HEADERS);
        if self.dynamic.len() < MAX_DYNAMIC_HEADERS {
            self.dynamic.push((name, value));
        }
    }

    /// The Content-Length the head announces.
    pub fn content_length(&self) -> usize {
        match self.stream_len {
            Some(len) => len as usize,
            None => self.body().len(),
        }
    }

    /// Takes the streamed body out, for the connection to pump after the head.
    pub fn take_stream(&mut self) -> Option<ObjectBody> {
        self.stream.take()
    }

    /// Responds with a stored object's bytes, streamed.
    pub fn send_stream(&mut self, status: Status, content_type: &'static str, body: ObjectBody) {
        self.status = status;
        self.content_type = Some(content_type);
        self.body = Body::Static(b"");
        self.stream_len = Some(body.len);
        self.stream = Some(body);
    }

    pub fn cors(&self) -> Cors {
        self.cors
    }

    /// Kept whatever the handler sends afterwards, errors included.
    pub fn set_cors(&mut self, cors: Cors) {
        self.cors = cors;
    }

    pub fn body(&self) -> &[u8] {
        match self.body {
            Body::Static(b) => b,
            Body::Scratch => self.scratch,
        }
    }

    /// Responds with a body that lives for the whole program.
    pub fn send_static(&mut self, status: Status, content_type: &'static str, body: &'static [u8]) {
        self.status = status;
        self.content_type = Some(content_type);
        self.body = Body::Static(body);
    }

    /// Responds with `value` serialized as JSON.
    pub fn send_json<T: Serialize>(&mut self, status: Status, value: &T) {
        self.scratch.clear();
        match simd_json::serde::to_writer(&mut *self.scratch, value) {
            Ok(()) => {
                self.status = status;
                self.content_type = Some(JSON);
                self.body = Body::Scratch;
            }
            Err(e) => {
                // Only a Serialize impl that fails on purpose gets here.
                tracing::error!(error = %e, "failed to serialize a response body");
                self.send_error(&AppError::HandlerPanicked);
            }
        }
    }

    /// Responds with a body that `write` generates into the scratch buffer.
    pub fn send_with(&mut self, status: Status, content_type: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        self.scratch.clear();
        write(self.scratch);
        self.status = status;
        self.content_type = Some(content_type);
        self.body = Body::Scratch;
    }

    /// Like [`send_with`](Self::send_with) for a writer that can fail; on
    /// failure the response is left as it was and the error returned.
    pub fn try_send_with<E>(
        &mut self,
        status: Status,
        content_type: &'static str,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.scratch.clear();
        write(self.scratch)?;
        self.status = status;
        self.content_type = Some(content_type);
        self.body = Body::Scratch;
        Ok(())
    }

    /// Replaces whatever was set with the error's status and JSON body. The
    /// headers made for a success go too: an error is not the range of
    /// anything (only a 416 says, with `Content-Range: bytes */size`, what
    /// the whole is, RFC 9110 §15.5.17).
    pub fn send_error(&mut self, error: &AppError) {
        let unsatisfiable = *error == AppError::RangeNotSatisfiable;
        self.dynamic.retain(|(name, _)| unsatisfiable && *name == "Content-Range");
        self.stream = None;
        self.stream_len = None;
        self.scratch.clear();
        error.write_body(self.scratch);
        self.status = error.status();
        self.content_type = Some(JSON);
        self.header = error.header();
        self.body = Body::Scratch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_any_or_a_list() {
        let any = CorsOrigins::parse("*");
        assert_eq!(any.for_origin(Some(b"https://x")), CorsOrigin { allow: Some(b"*"), vary: false });
        let listed = CorsOrigins::parse("https://a.example, https://b.example:8443");
        let a = listed.for_origin(Some(b"https://a.example"));
        assert_eq!(a, CorsOrigin { allow: Some(b"https://a.example"), vary: true });
        assert_eq!(listed.for_origin(Some(b"https://b.example:8443")).allow, Some(&b"https://b.example:8443"[..]));
        for other in [Some(&b"https://evil.example"[..]), Some(b"https://a.example.evil"), Some(b"null"), None] {
            assert_eq!(listed.for_origin(other), CorsOrigin { allow: None, vary: true });
        }
    }

    #[test]
    fn errors_carry_no_range_headers_but_a_416_its_content_range() {
        let mut scratch = Vec::new();
        let mut response = Response::new(&mut scratch);
        response.add_header("Accept-Ranges", "bytes".into());
        response.add_header("Content-Range", "bytes 0-9/100".into());
        response.send_error(&AppError::StorageUnavailable);
        assert!(response.dynamic_headers().is_empty(), "{:?}", response.dynamic_headers());

        let mut response = Response::new(&mut scratch);
        response.add_header("Accept-Ranges", "bytes".into());
        response.add_header("Content-Range", "bytes */100".into());
        response.send_error(&AppError::RangeNotSatisfiable);
        assert_eq!(response.dynamic_headers(), [("Content-Range", "bytes */100".to_string())]);
    }
}
