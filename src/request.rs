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
}

impl<'b> Request<'b> {
    /// `head_bytes` is the buffer the head was parsed from, starting where it starts.
    pub fn new(head: RequestHead, head_bytes: &'b [u8], body: &'b mut [u8]) -> Request<'b> {
        Request { head, head_bytes, body }
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

    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.head.header(self.head_bytes, name)
    }

    pub fn headers(&self) -> HeaderLines<'b> {
        self.head.headers(self.head_bytes)
    }
}
