//! Fault injection for the black-box tests, served only with `--test-routes`:
//! a handler that panics (panic recovery) and one that takes a while (requests
//! in flight during graceful shutdown).

use std::time::Duration;

use swiftlet_protocol::Status;

use crate::http::request::Request;
use crate::http::response::{Response, TEXT};

pub fn panic() {
    panic!("panic requested by /__test/panic");
}

/// Sleeps `ms` milliseconds (from the query, at most 10 000), then answers 200.
pub async fn sleep(req: &Request<'_>, res: &mut Response<'_>) {
    let ms = req
        .query()
        .and_then(|q| q.strip_prefix(b"ms="))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        .min(10_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    res.send_static(Status::OK, TEXT, b"slept");
}
