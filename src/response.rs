//! What a handler produces: a status, a content type and a body.
//!
//! Static bodies are referenced, not copied; generated bodies are written into
//! a scratch buffer the connection owns and reuses, so building a response
//! allocates nothing once the buffer has grown to fit. The connection then
//! encodes the head and copies the body into its write buffer.

use serde::Serialize;
use swiftlet_protocol::Status;

use crate::error::AppError;

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
    body: Body,
    scratch: &'s mut Vec<u8>,
}

impl<'s> Response<'s> {
    /// An empty 204 response that a handler fills in.
    pub fn new(scratch: &'s mut Vec<u8>) -> Response<'s> {
        scratch.clear();
        Response {
            status: Status::NO_CONTENT,
            content_type: None,
            header: None,
            cors: Cors::None,
            body: Body::Static(b""),
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

    /// Replaces whatever was set with the error's status and JSON body.
    pub fn send_error(&mut self, error: &AppError) {
        self.scratch.clear();
        error.write_body(self.scratch);
        self.status = error.status();
        self.content_type = Some(JSON);
        self.header = error.header();
        self.body = Body::Scratch;
    }
}
