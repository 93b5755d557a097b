//! Response heads, encoded straight into the caller's reused buffer.
//!
//! The encoder never allocates: it appends to a `Vec<u8>` the connection keeps
//! for its whole life, and the Date value comes pre-formatted from a per-core
//! cache ([`crate::date::HttpDate`]). Every response carries Content-Length
//! (we never stream with chunked responses yet), so the client can always find
//! where it ends.

use crate::date::HttpDate;

/// A status code with its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    code: u16,
    reason: &'static str,
}

impl Status {
    pub const CONTINUE: Status = Status::new(100, "Continue");
    pub const OK: Status = Status::new(200, "OK");
    pub const CREATED: Status = Status::new(201, "Created");
    pub const ACCEPTED: Status = Status::new(202, "Accepted");
    pub const NO_CONTENT: Status = Status::new(204, "No Content");
    pub const PARTIAL_CONTENT: Status = Status::new(206, "Partial Content");
    pub const BAD_REQUEST: Status = Status::new(400, "Bad Request");
    pub const UNAUTHORIZED: Status = Status::new(401, "Unauthorized");
    pub const FORBIDDEN: Status = Status::new(403, "Forbidden");
    pub const NOT_FOUND: Status = Status::new(404, "Not Found");
    pub const METHOD_NOT_ALLOWED: Status = Status::new(405, "Method Not Allowed");
    pub const REQUEST_TIMEOUT: Status = Status::new(408, "Request Timeout");
    pub const CONFLICT: Status = Status::new(409, "Conflict");
    pub const LENGTH_REQUIRED: Status = Status::new(411, "Length Required");
    pub const PAYLOAD_TOO_LARGE: Status = Status::new(413, "Content Too Large");
    pub const URI_TOO_LONG: Status = Status::new(414, "URI Too Long");
    pub const UNSUPPORTED_MEDIA_TYPE: Status = Status::new(415, "Unsupported Media Type");
    pub const RANGE_NOT_SATISFIABLE: Status = Status::new(416, "Range Not Satisfiable");
    pub const EXPECTATION_FAILED: Status = Status::new(417, "Expectation Failed");
    pub const UNPROCESSABLE_ENTITY: Status = Status::new(422, "Unprocessable Content");
    pub const TOO_MANY_REQUESTS: Status = Status::new(429, "Too Many Requests");
    pub const REQUEST_HEADER_FIELDS_TOO_LARGE: Status = Status::new(431, "Request Header Fields Too Large");
    pub const INTERNAL_SERVER_ERROR: Status = Status::new(500, "Internal Server Error");
    pub const NOT_IMPLEMENTED: Status = Status::new(501, "Not Implemented");
    pub const SERVICE_UNAVAILABLE: Status = Status::new(503, "Service Unavailable");
    pub const INSUFFICIENT_STORAGE: Status = Status::new(507, "Insufficient Storage");
    pub const HTTP_VERSION_NOT_SUPPORTED: Status = Status::new(505, "HTTP Version Not Supported");

    pub const fn new(code: u16, reason: &'static str) -> Status {
        Status { code, reason }
    }

    pub const fn code(self) -> u16 {
        self.code
    }

    pub const fn reason(self) -> &'static str {
        self.reason
    }

    /// RFC 9110 §6.4.1: 1xx, 204 and 304 responses never have content, so they
    /// must not carry Content-Length either.
    const fn has_body(self) -> bool {
        !(self.code < 200 || self.code == 204 || self.code == 304)
    }
}

/// What the Connection header of a response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// No header: HTTP/1.1's default, the connection stays open.
    Omit,
    /// `Connection: keep-alive`, needed to keep an HTTP/1.0 connection open.
    KeepAlive,
    /// `Connection: close`: this is the last response on the connection.
    Close,
}

/// Everything in a response head but the status line's fixed parts.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    pub status: Status,
    pub content_type: Option<&'a str>,
    /// The length of the content; for a HEAD request, the length a GET would have had.
    pub content_length: usize,
    pub connection: ConnectionHeader,
    pub date: &'a HttpDate,
}

/// What follows the status line in every response: the server's name, then
/// the Date field's name (its value follows). One copy instead of four.
const SERVER_THEN_DATE: &[u8] = b"\r\nServer: swiftlet\r\nDate: ";

impl ResponseHead<'_> {
    /// Appends the status line and the fixed headers, ending with the blank
    /// line (a head with fields of its own is written with `open`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.open(out).close();
    }

    /// Appends the status line and the fixed headers but not the blank line
    /// that ends the head: the caller adds fields of its own and then closes
    /// it, writing them straight into `out` rather than gathering them first.
    pub fn open<'o>(&self, out: &'o mut Vec<u8>) -> OpenHead<'o> {
        out.extend_from_slice(b"HTTP/1.1 ");
        let c = self.status.code;
        out.extend_from_slice(&[b'0' + (c / 100 % 10) as u8, b'0' + (c / 10 % 10) as u8, b'0' + (c % 10) as u8, b' ']);
        out.extend_from_slice(self.status.reason.as_bytes());
        out.extend_from_slice(SERVER_THEN_DATE);
        out.extend_from_slice(self.date.as_bytes());
        if let Some(ct) = self.content_type {
            out.extend_from_slice(b"\r\nContent-Type: ");
            out.extend_from_slice(ct.as_bytes());
        }
        if self.status.has_body() {
            out.extend_from_slice(b"\r\nContent-Length: ");
            encode_decimal(self.content_length as u64, out);
        }
        match self.connection {
            ConnectionHeader::Omit => {}
            ConnectionHeader::KeepAlive => out.extend_from_slice(b"\r\nConnection: keep-alive"),
            ConnectionHeader::Close => out.extend_from_slice(b"\r\nConnection: close"),
        }
        OpenHead { out }
    }
}

/// A response head written up to its last field (see [`ResponseHead::open`]);
/// `close` ends it.
#[must_use = "a head is not complete until it is closed"]
pub struct OpenHead<'o> {
    out: &'o mut Vec<u8>,
}

impl OpenHead<'_> {
    /// Appends a field. The value must be a valid field value.
    pub fn field(&mut self, name: &str, value: &[u8]) {
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
    }

    /// Ends the head with the blank line.
    pub fn close(self) {
        self.out.extend_from_slice(b"\r\n\r\n");
    }
}

/// The interim response that tells a client waiting on `Expect: 100-continue`
/// to send its body (RFC 9110 §10.1.1).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends `n` in decimal without going through `fmt` (which is slower and
/// would need a `Write` adapter). Two digits per division, from a table:
/// the database tests write forty numbers per response, and a digit per
/// division was 6 % of a `/queries` request's instructions.
pub fn encode_decimal(mut n: u64, out: &mut Vec<u8>) {
    if n < 10 {
        // The common short case (ids, small counts) skips the digit buffer and its copy.
        out.push(b'0' + n as u8);
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while n >= 100 {
        let pair = 2 * (n % 100) as usize;
        n /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = 2 * n as usize;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[i..]);
}

/// "00", "01", … "99", back to back.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

#[cfg(test)]
mod tests {
    use super::*;

    fn date() -> HttpDate {
        HttpDate::from_unix_secs(784_111_777)
    }

    #[test]
    fn encodes_a_keep_alive_response() {
        let d = date();
        let mut out = Vec::new();
        ResponseHead {
            status: Status::OK,
            content_type: Some("text/plain"),
            content_length: 13,
            connection: ConnectionHeader::Omit,
            date: &d,
        }
        .encode(&mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nServer: swiftlet\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
Content-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
        );
    }

    #[test]
    fn encodes_close_and_extra_headers() {
        let d = date();
        let mut out = Vec::new();
        let mut head = ResponseHead {
            status: Status::METHOD_NOT_ALLOWED,
            content_type: None,
            content_length: 0,
            connection: ConnectionHeader::Close,
            date: &d,
        }
        .open(&mut out);
        head.field("Allow", b"GET, HEAD");
        head.close();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("\r\nContent-Length: 0\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.ends_with("\r\nAllow: GET, HEAD\r\n\r\n"));
    }

    #[test]
    fn fields_added_to_an_open_head_come_in_order_before_the_blank_line() {
        let d = date();
        let mut added = Vec::new();
        let mut open = ResponseHead {
            status: Status::OK,
            content_type: Some("application/json"),
            content_length: 2,
            connection: ConnectionHeader::Omit,
            date: &d,
        }
        .open(&mut added);
        open.field("Vary", b"Origin");
        open.field("Access-Control-Max-Age", b"86400");
        open.close();
        assert_eq!(
            added,
            b"HTTP/1.1 200 OK\r\nServer: swiftlet\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
Content-Type: application/json\r\nContent-Length: 2\r\nVary: Origin\r\nAccess-Control-Max-Age: 86400\r\n\r\n"
        );
    }

    #[test]
    fn no_content_length_on_204() {
        // RFC 9110 §8.6: a server must not send Content-Length in a 204.
        let d = date();
        let mut out = Vec::new();
        ResponseHead {
            status: Status::NO_CONTENT,
            content_type: None,
            content_length: 0,
            connection: ConnectionHeader::Omit,
            date: &d,
        }
        .encode(&mut out);
        assert!(!out.windows(14).any(|w| w == b"Content-Length"));
    }

    #[test]
    fn decimal_encoding() {
        let powers = (0..20).map(|e| 10u64.pow(e)).flat_map(|p| [p - 1, p, p + 1]);
        let edges = [0u64, 7, 9, 10, 11, 99, 100, 101, 1234567890, 98765, u64::MAX - 1, u64::MAX];
        for n in powers.chain(edges).chain(0..10_000) {
            let mut out = Vec::new();
            encode_decimal(n, &mut out);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
