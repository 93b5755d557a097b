//! The log store's write side: events from `POST /ingest` and `/ingest/batch`,
//! group-committed to PostgreSQL by each worker.
//!
//! A handler parses an event zero-copy ([`event`]) and appends it straight to
//! its worker's open batch, which is already a binary COPY stream
//! ([`queue`]): an event is copied once, from the request buffer into the
//! batch, and costs no allocation of its own. The worker's writer task
//! ([`writer`]) takes the batch when it holds `--ingest-batch-events` events or
//! its first event is `--ingest-batch-ms` old, and commits it in one
//! transaction while the next batch fills.
//!
//! Acknowledgement (`--ingest-ack`):
//! - `durable` (default): the 202 goes out only after the batch holding the
//!   event committed; if it did not, the request gets 503 and nothing was
//!   acknowledged. A `kill -9` therefore loses nothing that was answered 202.
//! - `queued`: the 202 goes out at once. The writer retries a batch until it
//!   commits, and the worker drains the queue before it exits; a crash loses
//!   what was queued, which is the trade this mode makes for latency.
//!
//! In both modes the queue is bounded (`--ingest-queue-events` per worker):
//! beyond it requests get 503 with Retry-After, so memory never grows with a
//! slow or absent database. `event_id` is unique in the store: an event sent
//! twice is stored once, so retrying after a 503 or a lost answer is safe.

pub mod access;
pub mod event;
pub mod queue;
pub mod writer;

pub use queue::{IngestQueue, Receipt};

/// When `POST /ingest` answers 202.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AckMode {
    /// After the event's batch committed.
    Durable,
    /// As soon as the event is queued.
    Queued,
}
