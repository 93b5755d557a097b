//! Each worker's PostgreSQL connections, pipelined: [`PgPipeline`].
//!
//! A worker opens `--pg-connections` connections and prepares every statement
//! in the statement lists it was started with, once per connection. A
//! request encodes its queries as one *batch* — Bind/Execute for each query,
//! a Sync after each transaction — into the connection's output buffer and
//! queues one waiter; a driver task writes everything queued since its last
//! write in one go and hands each batch its rows when the ReadyForQuery of its
//! last transaction arrives. So the twenty reads of `/queries?queries=20`,
//! twenty transactions, cost the server one flush and usually one read, and
//! the batches of every request on the core that are in flight at once share
//! writes and reads too.
//!
//! Transactions: TechEmpower's rules allow pipelining but not batching (its
//! General Requirement 7 asks for a Sync after each query, and its
//! maintainers count transactions in `pg_stat_database`), so the benchmark
//! routes end every query with a Sync. The product API's reads that must see
//! one snapshot share one Sync, and so one transaction.
//!
//! Why not tokio-postgres here: each query costs it two channel hand-offs
//! and a wake-up of its connection task; measured on /queries that was 2×
//! axum's CPU per request. tokio-postgres still runs the migrations, where
//! none of that matters.
//!
//! Invariants:
//! - `waiters` holds one entry per batch queued or written and not yet
//!   answered, in batch order, with the count of its Syncs; PostgreSQL
//!   answers in the order sent, each transaction ending with ReadyForQuery,
//!   so the front waiter owns every message until as many ReadyForQuery as
//!   it sent Syncs.
//! - A query that fails makes PostgreSQL skip the rest of its transaction up
//!   to the Sync; the batch gets the first error, and later transactions and
//!   batches are unaffected.
//! - A slot holds a link only while its connection is up; when it ends every
//!   outstanding waiter gets [`PgError::Unavailable`] at once, new requests fail
//!   fast, and a supervisor reconnects with backoff. Every call is bounded by
//!   the storage timeout, so none hangs.

mod error;
mod pipeline;
mod pool;
mod row;
mod session;

pub use error::{describe, PgError};
pub use pipeline::{Batch, PgPipeline};
pub use pool::{database_name, PgStats, Postgres};
pub use row::{BatchRows, Row, Timestamptz};
pub use session::SimpleSession;

/// Batches outstanding per connection before callers wait for room.
pub const MAX_IN_FLIGHT: usize = 4096;

/// The most row bytes one batch's answer may bring (as PostgreSQL sends them).
/// Every answer a route builds from rows is bounded well below this by its
/// page size and the field caps (`api::requests`); this catches what those
/// miss (rows written before a cap existed, a query without a limit), so no
/// batch can make a worker hold more. Rows past it are dropped as they come
/// and the batch fails with [`PgError::ReplyTooLarge`].
pub const MAX_REPLY_BYTES: usize = 16 << 20;

/// Results come back in binary: an int4 is four big-endian bytes, text is its UTF-8.
const BINARY: i16 = 1;
