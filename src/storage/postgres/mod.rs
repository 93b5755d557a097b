//! Each worker's PostgreSQL connections, pipelined: [`PgPipeline`].
//!
//! A worker opens `--pg-connections` connections and prepares every statement
//! in the statement lists it was started with, once per connection. A
//! request encodes its queries as one *batch* — Bind/Execute for each query
//! and a single Sync — into the connection's output buffer and queues one
//! waiter; a driver task writes everything queued since its last write in one
//! go and hands each batch its rows when that batch's ReadyForQuery arrives.
//! So the twenty reads of `/queries?queries=20` cost the server one Sync, one
//! flush and usually one read, and the batches of every request on the core
//! that are in flight at once share writes and reads too.
//!
//! Why not tokio-postgres here: it sends a Sync per query, so PostgreSQL
//! flushes (and this worker wakes) once per query, and each query costs two
//! channel hand-offs; measured on /queries that was 2× axum's CPU per request.
//! tokio-postgres still runs the migrations, where none of that matters.
//!
//! Invariants:
//! - `waiters` holds one entry per batch queued or written and not yet
//!   answered, in batch order; PostgreSQL answers batches in the order sent,
//!   each ending with ReadyForQuery, so the front waiter owns every message
//!   until the next ReadyForQuery.
//! - A query that fails makes PostgreSQL skip the rest of its batch up to the
//!   Sync; the whole batch gets the error and later batches are unaffected.
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
