//! Everything that can be wrong with a request on the wire.
//!
//! Each variant has exactly one meaning and maps to exactly one status code, in
//! [`HttpError::status`] and nowhere else. A partial message is *not* an error:
//! the decoders report it as `Incomplete` and the caller reads more bytes.

use crate::response::Status;

/// A request the codec refuses. After any of these the connection is closed:
/// once framing is in doubt, the next byte cannot be trusted to start a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// The request line or a header line is not valid HTTP/1.x syntax.
    MalformedHead,
    /// A header name holds a character outside `tchar` (RFC 9110 §5.1).
    InvalidHeaderName,
    /// A header value holds a control character (RFC 9110 §5.5).
    InvalidHeaderValue,
    /// A header line starts with whitespace: obsolete line folding (RFC 9112 §5.2).
    ObsoleteLineFolding,
    /// A CR not followed by LF (RFC 9112 §2.2).
    BareCarriageReturn,
    /// An LF not preceded by CR: refused, though RFC 9112 §2.2 allows it (see `head`).
    BareLineFeed,
    /// A Host value that is not `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2).
    InvalidHost,
    /// An HTTP/1.1 request without a Host header (RFC 9112 §3.2).
    MissingHost,
    /// More than one Host header (RFC 9112 §3.2).
    DuplicateHost,
    /// Both Transfer-Encoding and Content-Length (RFC 9112 §6.3, rule 3).
    ContentLengthWithTransferEncoding,
    /// A Content-Length that is not 1*DIGIT, or does not fit in 64 bits.
    InvalidContentLength,
    /// Several Content-Length values that differ (RFC 9112 §6.3, rule 5).
    ConflictingContentLength,
    /// A Transfer-Encoding other than a single, final `chunked`.
    UnsupportedTransferEncoding,
    /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1).
    TransferEncodingInHttp10,
    /// A chunk-size line that is not hex digits and an optional extension.
    InvalidChunkSize,
    /// A chunk size that does not fit in 64 bits.
    ChunkSizeOverflow,
    /// Chunk data not followed by CRLF, or a malformed trailer section.
    InvalidChunkFraming,
    /// The request line and headers exceed the configured byte limit.
    HeadTooLarge,
    /// More header lines than the configured limit.
    TooManyHeaders,
    /// The request target exceeds the configured length.
    TargetTooLong,
    /// The body exceeds the route's limit.
    PayloadTooLarge,
    /// An `Expect` other than `100-continue` (RFC 9110 §10.1.1).
    ExpectationFailed,
    /// An HTTP version other than 1.0 or 1.1.
    UnsupportedVersion,
    /// The head did not arrive within the header-read timeout.
    HeadTimeout,
    /// The body made no progress within the body-read timeout.
    BodyTimeout,
}

impl HttpError {
    /// The one place a codec error becomes a status code.
    pub const fn status(self) -> Status {
        use HttpError::*;
        match self {
            MalformedHead
            | InvalidHeaderName
            | InvalidHeaderValue
            | ObsoleteLineFolding
            | BareCarriageReturn
            | BareLineFeed
            | InvalidHost
            | MissingHost
            | DuplicateHost
            | ContentLengthWithTransferEncoding
            | InvalidContentLength
            | ConflictingContentLength
            | UnsupportedTransferEncoding
            | TransferEncodingInHttp10
            | InvalidChunkSize
            | ChunkSizeOverflow
            | InvalidChunkFraming => Status::BAD_REQUEST,
            HeadTooLarge | TooManyHeaders => Status::REQUEST_HEADER_FIELDS_TOO_LARGE,
            TargetTooLong => Status::URI_TOO_LONG,
            PayloadTooLarge => Status::PAYLOAD_TOO_LARGE,
            ExpectationFailed => Status::EXPECTATION_FAILED,
            UnsupportedVersion => Status::HTTP_VERSION_NOT_SUPPORTED,
            HeadTimeout | BodyTimeout => Status::REQUEST_TIMEOUT,
        }
    }

    /// What went wrong, for the JSON error body. Plain ASCII with no quotes or
    /// backslashes, so it can be written into JSON without escaping.
    pub const fn message(self) -> &'static str {
        use HttpError::*;
        match self {
            MalformedHead => "malformed request line or header",
            InvalidHeaderName => "invalid character in a header name",
            InvalidHeaderValue => "invalid character in a header value",
            ObsoleteLineFolding => "obsolete line folding is not accepted",
            BareCarriageReturn => "bare CR in the request head",
            BareLineFeed => "bare LF in the request head; lines must end in CRLF",
            InvalidHost => "Host is not a valid host name or address with an optional port",
            MissingHost => "HTTP/1.1 request without a Host header",
            DuplicateHost => "more than one Host header",
            ContentLengthWithTransferEncoding => "Content-Length and Transfer-Encoding together",
            InvalidContentLength => "Content-Length is not a valid number",
            ConflictingContentLength => "conflicting Content-Length values",
            UnsupportedTransferEncoding => "only a single chunked Transfer-Encoding is supported",
            TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            InvalidChunkSize => "invalid chunk size line",
            ChunkSizeOverflow => "chunk size too large",
            InvalidChunkFraming => "invalid chunked framing",
            HeadTooLarge => "request header block too large",
            TooManyHeaders => "too many request headers",
            TargetTooLong => "request target too long",
            PayloadTooLarge => "request body too large for this route",
            ExpectationFailed => "unsupported Expect value",
            UnsupportedVersion => "HTTP version not supported",
            HeadTimeout => "request head not received in time",
            BodyTimeout => "request body not received in time",
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_need_no_json_escaping() {
        use HttpError::*;
        let all = [
            MalformedHead,
            InvalidHeaderName,
            InvalidHeaderValue,
            ObsoleteLineFolding,
            BareCarriageReturn,
            BareLineFeed,
            InvalidHost,
            MissingHost,
            DuplicateHost,
            ContentLengthWithTransferEncoding,
            InvalidContentLength,
            ConflictingContentLength,
            UnsupportedTransferEncoding,
            TransferEncodingInHttp10,
            InvalidChunkSize,
            ChunkSizeOverflow,
            InvalidChunkFraming,
            HeadTooLarge,
            TooManyHeaders,
            TargetTooLong,
            PayloadTooLarge,
            ExpectationFailed,
            UnsupportedVersion,
            HeadTimeout,
            BodyTimeout,
        ];
        for e in all {
            assert!(e.message().bytes().all(|b| b.is_ascii_graphic() || b == b' '));
            assert!(!e.message().contains(['"', '\\']));
            assert!(e.status().code() >= 400);
        }
    }
}
