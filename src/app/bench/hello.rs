//! The fixed endpoints: the health check and the two hello-world responses of
//! the reference benchmarks.

use serde::Serialize;
use swiftlet_protocol::Status;

use crate::http::response::{Response, JSON, TEXT};

pub fn health(res: &mut Response<'_>) {
    res.send_static(Status::OK, JSON, br#"{"status":"ok"}"#);
}

pub fn plaintext(res: &mut Response<'_>) {
    res.send_static(Status::OK, TEXT, b"Hello, World!");
}

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// Serialized on every request, as the benchmark's rules ask, not cached.
pub fn json(res: &mut Response<'_>) {
    res.send_json(Status::OK, &Message { message: "Hello, World!" });
}
