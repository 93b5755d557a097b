//! What a handler sees of a request: the parsed head and the body, both
//! borrowed from the connection's read buffer.
//!
//! The body is mutable so JSON can be parsed in place (simd-json unescapes
//! strings where they lie), which is what lets parsed payloads borrow their
//! strings from the buffer instead of copying them.

use swiftlet_protocol::{HeaderLines, Method, RequestHead};

pub struct Request<'b> {
    head: RequestHead,
    head_bytes: &'b [u8],
    pub body: &'b mut [u8],
    peer: Option<std::net::IpAddr>,
}

impl<'b> Request<'b> {
    /// `head_bytes` is the buffer the head was parsed from, starting where it starts.
    pub fn new(head: RequestHead, head_bytes: &'b [u8], body: &'b mut [u8]) -> Request<'b> {
        Request { head, head_bytes, body, peer: None }
    }

    /// The same request, as sent from `peer`.
    pub fn from_peer(self, peer: std::net::IpAddr) -> Request<'b> {
        Request { peer: Some(peer), ..self }
    }

    /// The address of the client's end of the connection (a proxy's, behind one).
    pub fn peer(&self) -> Option<std::net::IpAddr> {
        self.peer
    }

    pub fn method(&self) -> Method {
        self.head.method
    }

    pub fn path(&self) -> &'b [u8] {
        self.head.path(self.head_bytes)
    }

    pub fn query(&self) -> Option<&'b [u8]> {
        self.head.query(self.head_bytes)
    }

    /// The raw value of the first `name=value` pair in the query string with
    /// this name (`Some(b"")` for `name` or `name=`). Not percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<&'b [u8]> {
        query_param(self.query()?, name)
    }

    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.head.header(self.head_bytes, name)
    }

    pub fn headers(&self) -> HeaderLines<'b> {
        self.head.headers(self.head_bytes)
    }
}

fn query_param<'q>(query: &'q [u8], name: &str) -> Option<&'q [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        (key == name.as_bytes()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::query_param;

    #[test]
    fn query_params() {
        assert_eq!(query_param(b"queries=20", "queries"), Some(&b"20"[..]));
        assert_eq!(query_param(b"a=1&queries=5&queries=7", "queries"), Some(&b"5"[..]));
        assert_eq!(query_param(b"queries", "queries"), Some(&b""[..]));
        assert_eq!(query_param(b"queriesx=1&xqueries=2", "queries"), None);
        assert_eq!(query_param(b"", "queries"), None);
    }
}
