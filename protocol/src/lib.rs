//! swiftlet's wire code (HTTP/1.1, RESP for Redis, PostgreSQL's binary COPY
//! format), with no IO in it.
//!
//! Bytes go in, parsed request heads and decoded bodies come out, and response
//! heads are encoded into a buffer the caller owns. Nothing here knows about
//! sockets, runtimes or clocks, so every rule can be unit-tested, fuzzed and
//! benchmarked on plain byte slices. The server in `src/` owns the sockets and
//! drives these types.
//!
//! - [`head`]: request line and headers, framing and smuggling rules, limits.
//! - [`chunked`]: the chunked transfer coding, decoded in place.
//! - [`response`]: status codes and the response-head encoder.
//! - [`date`]: the Date header value.
//! - [`error`]: every way a request can be refused, each with its status.
//! - [`resp`]: Redis commands and replies (RESP2), for the cache client.
//! - [`pgcopy`]: rows in PostgreSQL's binary COPY format, for the log store.
//! - [`range`]: the Range header, for video playback.
//! - [`multipart`]: multipart/form-data, decoded as a stream, for uploads.
//! - [`media`]: which video container a file is, by its magic bytes.
//! - [`sigv4`] and [`s3xml`]: S3's request signing and the XML it answers
//!   with, for the video store's S3 client.

// Wire code has no reason to be unsafe: the compiler holds it to that.
#![forbid(unsafe_code)]

pub mod chunked;
pub mod date;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod head;
pub mod media;
pub mod multipart;
pub mod pgcopy;
pub mod range;
pub mod resp;
pub mod response;
pub mod s3xml;
pub mod sigv4;

pub use chunked::{Chunked, ChunkedDecoder};
pub use date::{parse_rfc3339, HttpDate, Rfc3339Micros, Rfc3339Millis};
pub use error::HttpError;
pub use head::{BodyFraming, HeadLimits, HeaderLines, Method, RequestHead, Version};
pub use response::{ConnectionHeader, OpenHead, ResponseHead, Status};

/// The outcome of parsing something that may not have fully arrived yet.
/// Needing more bytes is a normal state, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse<T> {
    Complete(T),
    Incomplete,
}
