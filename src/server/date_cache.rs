//! The Date header value, formatted once a second per core.
//!
//! Each worker thread keeps its own copy in a thread-local `Cell`, refreshed by
//! a timer task on that worker's runtime; responses copy the 29 bytes. Nothing
//! is shared between threads, so there is nothing to synchronise (a cache shared
//! across threads behind `unsafe impl Sync` is a data race others have shipped).

use std::cell::Cell;
use std::time::Duration;

use swiftlet_protocol::HttpDate;

thread_local! {
    static DATE: Cell<HttpDate> = Cell::new(HttpDate::now());
}

/// The current second's Date value for this thread.
pub fn current() -> HttpDate {
    DATE.with(Cell::get)
}

/// Keeps this thread's Date fresh; spawn it once on each worker's runtime.
pub async fn refresh_every_second() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        DATE.with(|d| d.set(HttpDate::now()));
    }
}
