//! Request heads: the request line and header section of RFC 9112 §2–§5.
//!
//! httparse does the byte-level syntax into a header array on the caller's
//! stack; this module then applies the message rules that keep one request from
//! being read as two (the framing rules of RFC 9112 §6.3 and the Host rules of
//! §3.2) and the configured size limits, and keeps the result as offsets into
//! the caller's buffer. A [`RequestHead`] is therefore small, owns nothing, and
//! costs no allocation; it is only meaningful together with the buffer it was
//! parsed from, which every accessor takes as an argument.
//!
//! Line endings, one policy for the whole message: every line ends in CRLF.
//! RFC 9112 §2.2 lets a recipient accept a bare LF as a line terminator, but a
//! proxy in front that does not would see a different message in the same
//! bytes, which is how requests are smuggled. So a bare LF is refused with 400
//! in the request line and header lines (here) and in chunk-size lines, after
//! chunk data and in trailers (`chunked`), as a bare CR is (§2.2 forbids it).
//!
//! Invariant: a `RequestHead` exists only for a head that passed every rule
//! here, so the header lines it points at are well formed and can be re-scanned
//! with the simple line splitter in [`HeaderLines`].

use std::mem::MaybeUninit;

use crate::error::HttpError;
use crate::Parse;

/// The most header lines the stack array can hold. The configured limit
/// ([`HeadLimits::max_headers`]) is clamped to this.
pub const MAX_HEADERS: usize = 128;

/// Size limits on a request head. Exceeding one is answered with 431 or 414.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Bytes of request line plus header section (431 beyond).
    pub max_head_bytes: usize,
    /// Header lines (431 beyond); at most [`MAX_HEADERS`].
    pub max_headers: usize,
    /// Bytes of request target (414 beyond).
    pub max_target_len: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits { max_head_bytes: 16 * 1024, max_headers: 64, max_target_len: 8 * 1024 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    /// Any other token; the router answers it with 405 or 404.
    Other,
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the body of a request is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: neither Content-Length nor Transfer-Encoding, or a length of 0.
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// Chunked transfer coding; see [`crate::chunked::ChunkedDecoder`].
    Chunked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn of(buf: &[u8], part: &[u8]) -> Span {
        // `part` was handed out by httparse from inside `buf`, so the difference
        // of the two addresses is its offset. Plain integer arithmetic: no
        // pointer is dereferenced.
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span { start, end: start + part.len() }
    }

    fn slice<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.start..self.end]
    }
}

/// A parsed, validated request head, as offsets into the buffer it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    pub version: Version,
    target: Span,
    headers: Span,
    /// Bytes from the start of the buffer to the end of the blank line.
    pub head_len: usize,
    pub framing: BodyFraming,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` and waits before sending the body.
    pub expect_continue: bool,
}

impl RequestHead {
    /// Parses the head at the start of `buf`.
    ///
    /// `Ok(Parse::Incomplete)` means the head is not all there yet and no limit
    /// has been crossed: read more and call again with the grown buffer.
    pub fn parse(buf: &[u8], limits: &HeadLimits) -> Result<Parse<RequestHead>, HttpError> {
        // Uninitialised slots: zeroing 128 headers (4 KiB) on every parse cost
        // more than the parse itself. httparse only hands back the slots it wrote.
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let max_headers = limits.max_headers.min(MAX_HEADERS);
        let mut req = httparse::Request::new(&mut []);
        let head_len = match req.parse_with_uninit_headers(buf, &mut slots[..max_headers]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return incomplete(buf, limits),
            Err(e) => return Err(classify(buf, e)),
        };
        if head_len > limits.max_head_bytes {
            return Err(HttpError::HeadTooLarge);
        }
        check_line_endings(buf, head_len, req.headers)?;
        // httparse fills these three whenever it reports Complete.
        let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(HttpError::MalformedHead);
        };
        if path.len() > limits.max_target_len {
            return Err(HttpError::TargetTooLong);
        }
        let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
        let semantics = HeaderSemantics::read(req.headers, version)?;
        // From the first header name to the end of the head; the blank line
        // that ends it also ends the iteration in `HeaderLines`.
        let headers = match req.headers.first() {
            Some(first) => Span { start: Span::of(buf, first.name.as_bytes()).start, end: head_len },
            None => Span { start: head_len, end: head_len },
        };
        Ok(Parse::Complete(RequestHead {
            method: Method::from_token(method),
            version,
            target: Span::of(buf, path.as_bytes()),
            headers,
            head_len,
            framing: semantics.framing,
            keep_alive: semantics.keep_alive,
            expect_continue: semantics.expect_continue,
        }))
    }

    /// The request target as sent: origin-form `/path?query`, absolute-form,
    /// or `*`.
    pub fn target<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.target.slice(buf)
    }

    /// The path of the target, without query; the authority of an
    /// absolute-form target (RFC 9112 §3.2.2) is skipped.
    pub fn path<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let mut t = self.target(buf);
        if let Some(rest) = strip_scheme(t) {
            t = match rest.iter().position(|&b| b == b'/' || b == b'?') {
                Some(i) if rest[i] == b'/' => &rest[i..],
                _ => b"/",
            };
        }
        match t.iter().position(|&b| b == b'?') {
            Some(i) => &t[..i],
            None => t,
        }
    }

    /// The query string after `?`, if any.
    pub fn query<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        let t = self.target(buf);
        t.iter().position(|&b| b == b'?').map(|i| &t[i + 1..])
    }

    /// The header lines, in order.
    pub fn headers<'b>(&self, buf: &'b [u8]) -> HeaderLines<'b> {
        HeaderLines { rest: self.headers.slice(buf) }
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header<'b>(&self, buf: &'b [u8], name: &str) -> Option<&'b [u8]> {
        self.headers(buf).find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }
}

fn strip_scheme(t: &[u8]) -> Option<&[u8]> {
    // Origin-form (`/...`), nearly every request, is out at the first byte.
    if !matches!(t.first(), Some(b'h' | b'H')) {
        return None;
    }
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&t[scheme.len()..]);
        }
    }
    None
}

/// Iterates `(name, value)` over header lines that already passed
/// [`RequestHead::parse`]: one header per line, `name:` then a value with
/// optional whitespace around it.
#[derive(Debug, Clone)]
pub struct HeaderLines<'b> {
    rest: &'b [u8],
}

impl<'b> Iterator for HeaderLines<'b> {
    type Item = (&'b [u8], &'b [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &[][..]),
        };
        self.rest = rest;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.rest = &[];
            return None;
        }
        let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        let value = line.get(colon + 1..).unwrap_or(&[]);
        Some((&line[..colon], trim_ows(value)))
    }
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// What the headers say about framing and the connection.
struct HeaderSemantics {
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
}

impl HeaderSemantics {
    fn read(headers: &[httparse::Header<'_>], version: Version) -> Result<Self, HttpError> {
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut saw_transfer_encoding = false;
        let mut hosts = 0usize;
        let mut close = false;
        let mut keep_alive_token = false;
        let mut expect_continue = false;

        for h in headers {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                // RFC 9112 §6.3 rule 5: a list of identical values may be
                // treated as one; anything else is unrecoverable framing.
                for item in h.value.split(|&b| b == b',') {
                    let n = parse_content_length(trim_ows(item))?;
                    match content_length {
                        Some(prev) if prev != n => return Err(HttpError::ConflictingContentLength),
                        _ => content_length = Some(n),
                    }
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                saw_transfer_encoding = true;
                // Only one coding in all, and it is chunked: every other
                // coding (or chunked applied twice) is refused rather than
                // guessed at, since a proxy in front may read it differently.
                for item in h.value.split(|&b| b == b',') {
                    let coding = trim_ows(item);
                    if chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                        return Err(HttpError::UnsupportedTransferEncoding);
                    }
                    chunked = true;
                }
            } else if name.eq_ignore_ascii_case(b"host") {
                hosts += 1;
                if !is_valid_host(trim_ows(h.value)) {
                    return Err(HttpError::InvalidHost);
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                for item in h.value.split(|&b| b == b',') {
                    let option = trim_ows(item);
                    close |= option.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case(b"expect") && version == Version::Http11 {
                // RFC 9110 §10.1.1: a 100-continue from an HTTP/1.0 client is
                // ignored, so only 1.1 gets here.
                let v = trim_ows(h.value);
                if v.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else if !v.is_empty() {
                    return Err(HttpError::ExpectationFailed);
                }
            }
        }

        if saw_transfer_encoding && content_length.is_some() {
            return Err(HttpError::ContentLengthWithTransferEncoding);
        }
        if saw_transfer_encoding && version == Version::Http10 {
            return Err(HttpError::TransferEncodingInHttp10);
        }
        if saw_transfer_encoding && !chunked {
            // An empty Transfer-Encoding value.
            return Err(HttpError::UnsupportedTransferEncoding);
        }
        match hosts {
            0 if version == Version::Http11 => return Err(HttpError::MissingHost),
            0 | 1 => {}
            _ => return Err(HttpError::DuplicateHost),
        }
        let framing = match (chunked, content_length) {
            (true, _) => BodyFraming::Chunked,
            (false, Some(0) | None) => BodyFraming::Empty,
            (false, Some(n)) => BodyFraming::Length(n),
        };
        let keep_alive = match version {
            Version::Http11 => !close,
            Version::Http10 => keep_alive_token && !close,
        };
        Ok(HeaderSemantics { framing, keep_alive, expect_continue })
    }
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6): no sign, no spaces inside, no
/// hex, and it must fit in 64 bits.
fn parse_content_length(v: &[u8]) -> Result<u64, HttpError> {
    if v.is_empty() {
        return Err(HttpError::InvalidContentLength);
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(HttpError::InvalidContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(HttpError::InvalidContentLength)?;
    }
    Ok(n)
}

/// Every line of the head ends in CRLF (see the module comment).
///
/// httparse has told us where the lines are: each header line starts with
/// its name (it refuses leading whitespace), and the head ends with the blank
/// line. So the two bytes before each header name, and before the blank
/// line, are a line's terminator, and it is enough to look at those: O(lines),
/// not a walk over every byte. (httparse has already refused any CR not
/// followed by LF, so checking for the CR is checking for CRLF.)
fn check_line_endings(buf: &[u8], head_len: usize, headers: &[httparse::Header<'_>]) -> Result<(), HttpError> {
    // The blank line that ends the head...
    if head_len < 4 || buf[head_len - 2] != b'\r' {
        return Err(HttpError::BareLineFeed);
    }
    // ...and the line before it, and the line before each header.
    let ends_crlf = |line_start: usize| line_start >= 2 && buf[line_start - 2] == b'\r';
    if !ends_crlf(head_len - 2) {
        return Err(HttpError::BareLineFeed);
    }
    for header in headers {
        if !ends_crlf(Span::of(buf, header.name.as_bytes()).start) {
            return Err(HttpError::BareLineFeed);
        }
    }
    Ok(())
}

/// `Host = uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2–§3.2.3):
/// a reg-name (which takes in IPv4 addresses) or a bracketed IP-literal,
/// then an optional port of digits only. Empty is allowed: §3.2 asks for an
/// empty Host when the target has no authority.
fn is_valid_host(value: &[u8]) -> bool {
    let (host_ok, rest) = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(end) => (is_ip_literal(&value[1..end]), &value[end + 1..]),
            None => return false,
        },
        _ => {
            // One pass: where the reg-name ends, and whether it has escapes to check.
            let mut seen = 0u8;
            let end = value
                .iter()
                .position(|&b| {
                    let class = HOST_CHAR[usize::from(b)];
                    seen |= class;
                    class == 0
                })
                .unwrap_or(value.len());
            (seen & PERCENT == 0 || is_pct_encoding_valid(&value[..end]), &value[end..])
        }
    };
    host_ok
        && match rest {
            [] => true,
            [b':', port @ ..] => port.iter().all(u8::is_ascii_digit),
            _ => false,
        }
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`, a character at a time.
fn is_reg_name_char(b: u8) -> bool {
    HOST_CHAR[usize::from(b)] != 0
}

/// [`is_reg_name_char`] as a table, one load per byte of a Host on every
/// request: 0 for a byte that ends the reg-name, [`PERCENT`] for `%`, 1 for
/// the rest.
static HOST_CHAR: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let allowed = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        table[b] = if c == b'%' {
            PERCENT
        } else if allowed {
            1
        } else {
            0
        };
        b += 1;
    }
    table
};
const PERCENT: u8 = 2;

/// Every `%` is followed by two hex digits.
fn is_pct_encoding_valid(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if !(s.len() > i + 2 && s[i + 1].is_ascii_hexdigit() && s[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// The inside of `IP-literal = "[" ( IPv6address / IPvFuture ) "]"`:
/// an IPv6 address (checked by the standard library's parser), or
/// `"v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn is_ip_literal(inside: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = inside {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail.iter().all(|&b| b == b':' || (b != b'%' && is_reg_name_char(b)));
    }
    std::str::from_utf8(inside).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

/// A partial head is fine unless it has already grown past a limit.
#[cold]
fn incomplete(buf: &[u8], limits: &HeadLimits) -> Result<Parse<RequestHead>, HttpError> {
    let line_end = buf.iter().position(|&b| b == b'\n');
    // A request line is method, target and version: allow for the other two.
    let line_budget = limits.max_target_len.saturating_add(32);
    match line_end {
        None if buf.len() > line_budget => Err(HttpError::TargetTooLong),
        Some(i) if i > line_budget => Err(HttpError::TargetTooLong),
        _ if buf.len() > limits.max_head_bytes => Err(HttpError::HeadTooLarge),
        _ => Ok(Parse::Incomplete),
    }
}

/// httparse says only which kind of token was wrong; look at the head once more
/// to name the two smuggling patterns that deserve their own message.
#[cold]
fn classify(buf: &[u8], e: httparse::Error) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => return HttpError::TooManyHeaders,
        httparse::Error::Version => return HttpError::UnsupportedVersion,
        _ => {}
    }
    let mut at_line_start = false;
    for (i, &b) in buf.iter().enumerate() {
        let next = buf.get(i + 1).copied();
        if b == b'\r' && next.is_some_and(|n| n != b'\n') {
            return HttpError::BareCarriageReturn;
        }
        if at_line_start {
            match b {
                b' ' | b'\t' => return HttpError::ObsoleteLineFolding,
                b'\n' => break, // the blank line: end of the head
                b'\r' if next == Some(b'\n') => break,
                _ => {}
            }
        }
        at_line_start = b == b'\n';
    }
    match e {
        httparse::Error::HeaderName => HttpError::InvalidHeaderName,
        httparse::Error::HeaderValue => HttpError::InvalidHeaderValue,
        _ => HttpError::MalformedHead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<RequestHead, HttpError> {
        match RequestHead::parse(raw, &HeadLimits::default())? {
            Parse::Complete(h) => Ok(h),
            Parse::Incomplete => panic!("incomplete: {:?}", String::from_utf8_lossy(raw)),
        }
    }

    fn err(raw: &[u8]) -> HttpError {
        parse(raw).expect_err("should be rejected")
    }

    #[test]
    fn simple_get() {
        let raw = b"GET /plaintext?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nNEXT";
        let h = parse(raw).unwrap();
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.path(raw), b"/plaintext");
        assert_eq!(h.query(raw), Some(&b"x=1"[..]));
        assert_eq!(h.head_len, raw.len() - 4);
        assert_eq!(h.framing, BodyFraming::Empty);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
        assert_eq!(h.header(raw, "accept"), Some(&b"*/*"[..]));
        assert_eq!(h.header(raw, "HOST"), Some(&b"a"[..]));
        assert_eq!(h.header(raw, "missing"), None);
        let names: Vec<_> = h.headers(raw).map(|(n, _)| n).collect();
        assert_eq!(names, [&b"Host"[..], b"Accept"]);
    }

    #[test]
    fn partial_head_is_incomplete_not_an_error() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n";
        assert_eq!(RequestHead::parse(raw, &HeadLimits::default()), Ok(Parse::Incomplete));
        assert_eq!(RequestHead::parse(b"", &HeadLimits::default()), Ok(Parse::Incomplete));
    }

    #[test]
    fn header_values_are_trimmed() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: \t spaced \t \r\nX-Empty:\r\n\r\n";
        let h = parse(raw).unwrap();
        assert_eq!(h.header(raw, "x-a"), Some(&b"spaced"[..]));
        assert_eq!(h.header(raw, "x-empty"), Some(&b""[..]));
    }

    #[test]
    fn smuggling_bare_lf_is_refused_in_every_line() {
        // RFC 9112 §2.2 allows accepting a bare LF; we refuse it everywhere
        // (module comment), in the request line, a header line and the blank line.
        for raw in [
            &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\n",
            b"GET / HTTP/1.1\nHost: a\nX: y\n\n",
        ] {
            assert_eq!(err(raw), HttpError::BareLineFeed, "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(HttpError::BareLineFeed.status().code(), 400);
    }

    #[test]
    fn absolute_form_target_uses_its_path() {
        // RFC 9112 §3.2.2: servers must accept absolute-form.
        let raw = b"GET http://example.com/health?a HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(parse(raw).unwrap().path(raw), b"/health");
        let raw = b"GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(parse(raw).unwrap().path(raw), b"/");
    }

    #[test]
    fn content_length_framing() {
        let raw = b"POST /ingest HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n";
        assert_eq!(parse(raw).unwrap().framing, BodyFraming::Length(42));
        let raw = b"POST /ingest HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse(raw).unwrap().framing, BodyFraming::Empty);
    }

    #[test]
    fn rfc9112_6_3_identical_content_lengths_are_one() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(parse(raw).unwrap().framing, BodyFraming::Length(5));
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n";
        assert_eq!(parse(raw).unwrap().framing, BodyFraming::Length(5));
    }

    #[test]
    fn smuggling_differing_content_lengths() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(err(raw), HttpError::ConflictingContentLength);
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n";
        assert_eq!(err(raw), HttpError::ConflictingContentLength);
    }

    #[test]
    fn smuggling_content_length_not_plain_digits() {
        for v in ["+5", "-5", "0x10", "5 5", "5a", "", " ", "1e3", "5,", "99999999999999999999"] {
            let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {v}\r\n\r\n");
            assert_eq!(err(raw.as_bytes()), HttpError::InvalidContentLength, "value {v:?}");
        }
    }

    #[test]
    fn smuggling_transfer_encoding_with_content_length() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(err(raw), HttpError::ContentLengthWithTransferEncoding);
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(err(raw), HttpError::ContentLengthWithTransferEncoding);
    }

    #[test]
    fn chunked_transfer_encoding_is_case_insensitive() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n";
        assert_eq!(parse(raw).unwrap().framing, BodyFraming::Chunked);
    }

    #[test]
    fn smuggling_transfer_encoding_other_than_final_chunked() {
        for v in [
            "gzip",
            "gzip, chunked",
            "chunked, gzip",
            "chunked, chunked",
            "identity",
            "",
            "chunked;q=1",
            "xchunked",
            "chunked\x0b",
        ] {
            let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {v}\r\n\r\n");
            let e = err(raw.as_bytes());
            assert!(
                matches!(e, HttpError::UnsupportedTransferEncoding | HttpError::InvalidHeaderValue),
                "value {v:?} gave {e:?}"
            );
        }
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(err(raw), HttpError::UnsupportedTransferEncoding);
    }

    #[test]
    fn smuggling_transfer_encoding_in_http10() {
        let raw = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(err(raw), HttpError::TransferEncodingInHttp10);
    }

    #[test]
    fn smuggling_obs_fold() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n";
        assert_eq!(err(raw), HttpError::ObsoleteLineFolding);
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\tTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(err(raw), HttpError::ObsoleteLineFolding);
    }

    #[test]
    fn smuggling_bare_cr() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n";
        assert_eq!(err(raw), HttpError::BareCarriageReturn);
        let raw = b"GET / HTTP/1.1\rHost: a\r\n\r\n";
        assert_eq!(err(raw), HttpError::BareCarriageReturn);
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n\r\n";
        assert_eq!(err(raw), HttpError::BareCarriageReturn);
    }

    #[test]
    fn smuggling_invalid_header_names() {
        for name in ["X A", "X\"A", "X(A)", "", "X\x01", "Content-Length "] {
            let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{name}: v\r\n\r\n");
            assert_eq!(err(raw.as_bytes()), HttpError::InvalidHeaderName, "name {name:?}");
        }
    }

    #[test]
    fn smuggling_invalid_header_values() {
        for value in ["a\x00b", "a\x01", "a\x7fb", "\x1b[31m"] {
            let raw = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {value}\r\n\r\n");
            assert_eq!(err(raw.as_bytes()), HttpError::InvalidHeaderValue, "value {value:?}");
        }
    }

    #[test]
    fn rfc9112_3_2_host_rules() {
        assert_eq!(err(b"GET / HTTP/1.1\r\nX: y\r\n\r\n"), HttpError::MissingHost);
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), HttpError::DuplicateHost);
        assert_eq!(err(b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"), HttpError::DuplicateHost);
        // HTTP/1.0 predates Host.
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n").is_ok());
    }

    #[test]
    fn rfc9112_3_2_host_must_be_uri_host_and_port() {
        for good in [
            "",
            "a",
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "a_b-c~d",
            "%41b",
            "host:",
            "sub.delims!$&'()*+,;=",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n");
            assert!(parse(raw.as_bytes()).is_ok(), "refused Host {good:?}");
        }
        for bad in [
            "a b",
            "a/b",
            "a@b",
            "a:b",
            "a:80:80",
            "a:8o",
            "[::1",
            "::1",
            "[::1]x",
            "[::1]:x",
            "[zz]",
            "[v1]",
            "[v.x]",
            "a%4",
            "a%zz",
            "a\"b",
            "a?b",
            "a#b",
            "a\\b",
            "[::1]:80]",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(err(raw.as_bytes()), HttpError::InvalidHost, "accepted Host {bad:?}");
        }
        let mut long = b"GET / HTTP/1.1\r\nHost: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 4000));
        long.extend_from_slice(b"\r\n\r\n");
        assert!(parse(&long).is_ok(), "length alone is the head limit's business");
    }

    #[test]
    fn malformed_request_lines() {
        for raw in [
            &b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
            b"G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET\r\n\r\n",
        ] {
            let e = err(raw);
            assert!(
                matches!(e, HttpError::MalformedHead | HttpError::UnsupportedVersion),
                "{:?} gave {e:?}",
                String::from_utf8_lossy(raw)
            );
            assert_eq!(e.status().code(), if e == HttpError::UnsupportedVersion { 505 } else { 400 });
        }
    }

    #[test]
    fn unsupported_version() {
        assert_eq!(err(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), HttpError::UnsupportedVersion);
        assert_eq!(err(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"), HttpError::UnsupportedVersion);
    }

    #[test]
    fn keep_alive_defaults_by_version() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().keep_alive);
        assert!(!parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap().keep_alive);
        assert!(!parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x, Close\r\n\r\n").unwrap().keep_alive);
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap().keep_alive);
    }

    #[test]
    fn expect_100_continue() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
        assert!(parse(raw).unwrap().expect_continue);
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n";
        assert_eq!(err(raw), HttpError::ExpectationFailed);
        // Ignored from HTTP/1.0 clients.
        let raw = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        assert!(!parse(raw).unwrap().expect_continue);
    }

    #[test]
    fn limit_head_too_large_is_431() {
        let limits = HeadLimits { max_head_bytes: 64, ..HeadLimits::default() };
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(100));
        let e = RequestHead::parse(raw.as_bytes(), &limits).unwrap_err();
        assert_eq!(e, HttpError::HeadTooLarge);
        assert_eq!(e.status().code(), 431);
        // Also while still incomplete, so a slow sender cannot grow the buffer forever.
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(100));
        assert_eq!(RequestHead::parse(raw.as_bytes(), &limits), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn limit_too_many_headers_is_431() {
        let limits = HeadLimits { max_headers: 3, ..HeadLimits::default() };
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        let e = RequestHead::parse(raw, &limits).unwrap_err();
        assert_eq!(e, HttpError::TooManyHeaders);
        assert_eq!(e.status().code(), 431);
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(RequestHead::parse(raw, &limits).is_ok());
    }

    #[test]
    fn limit_target_too_long_is_414() {
        let limits = HeadLimits { max_target_len: 16, ..HeadLimits::default() };
        let raw = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(20));
        let e = RequestHead::parse(raw.as_bytes(), &limits).unwrap_err();
        assert_eq!(e, HttpError::TargetTooLong);
        assert_eq!(e.status().code(), 414);
        // Still arriving, and already longer than any allowed request line.
        let raw = format!("GET /{}", "a".repeat(100));
        assert_eq!(RequestHead::parse(raw.as_bytes(), &limits), Err(HttpError::TargetTooLong));
    }

    #[test]
    fn methods() {
        for (m, want) in [
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("POST", Method::Post),
            ("PUT", Method::Put),
            ("PATCH", Method::Patch),
            ("DELETE", Method::Delete),
            ("OPTIONS", Method::Options),
            ("BREW", Method::Other),
            ("get", Method::Other), // methods are case-sensitive (RFC 9110 §9.1)
        ] {
            let raw = format!("{m} / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(parse(raw.as_bytes()).unwrap().method, want);
        }
    }
}
