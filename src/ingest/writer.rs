//! The worker's ingest writer: a task that commits the [`IngestQueue`]'s
//! batches to PostgreSQL, one at a time, over its own connection.
//!
//! A batch is one statement: `COPY log_events … FROM STDIN (FORMAT binary)`,
//! its own transaction. The client writes the query, the CopyData and the
//! CopyDone in one go without waiting for the server's CopyInResponse, so a
//! batch costs one round-trip plus the commit's WAL flush (five round-trips
//! with tokio-postgres's `copy_in`, which measured a 3 ms p50 at 4,000
//! events/s). A batch holding an event already stored (a client's retry, or
//! the same event twice in one batch) fails on the primary key as a whole and
//! rolls back; the writer then sends it again through the slow path: COPY
//! into a temporary table and the session's prepared `INSERT … SELECT … ON
//! CONFLICT (event_id) DO NOTHING`, one transaction. The slow path is not the
//! only path because the staging table costs a transaction about twice as
//! much PostgreSQL time (its rows are written twice and it is truncated at
//! every commit), and retries are rare.
//!
//! On failure: in durable mode the batch's requests get 503 (their events
//! were not acknowledged, and event_id makes the client's retry safe); in
//! queued mode the writer keeps the batch and retries it with backoff until it
//! commits, while the bounded queue refuses new events. Any error drops the
//! connection (its transaction may be half done); the next attempt opens a new one.

use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use tokio::time::Instant;

use super::event::COPY_COLUMNS;
use super::queue::{BatchResult, IngestQueue};
use super::AckMode;
use crate::http::error::AppError;
use crate::storage::backoff::{Reconnect, Store};
use crate::storage::postgres::SimpleSession;
use crate::storage::PgError;

/// Once per session: the staging table, and the INSERT prepared so that a
/// batch does not plan it again.
fn set_up_sql() -> String {
    format!(
        "SET application_name = 'swiftlet-ingest'; \
         CREATE TEMPORARY TABLE incoming_log_events \
         (event_id text, ts timestamptz, service text, message text, metadata jsonb) ON COMMIT DELETE ROWS; \
         PREPARE store_incoming AS INSERT INTO log_events ({COPY_COLUMNS}) \
         SELECT {COPY_COLUMNS} FROM incoming_log_events ON CONFLICT (event_id) DO NOTHING"
    )
}

/// The fast path: the batch straight into the table; the COPY's data follows the query.
fn direct_sql() -> String {
    format!("COPY log_events ({COPY_COLUMNS}) FROM STDIN (FORMAT binary)")
}

/// The slow path, for a batch with an event already stored: one transaction
/// that skips the duplicates.
fn deduplicating_sql() -> String {
    format!(
        "BEGIN; COPY incoming_log_events ({COPY_COLUMNS}) FROM STDIN (FORMAT binary); EXECUTE store_incoming; COMMIT"
    )
}

/// The constraint a duplicate event_id violates.
const PRIMARY_KEY: &str = "log_events_pkey";

/// Runs for the life of the worker. `url` empty: no database, every batch fails
/// (durable) or waits (queued) as if it were down.
pub async fn run(
    queue: Rc<IngestQueue>,
    url: String,
    timeout: Duration,
    worker: usize,
    metrics: Option<std::sync::Arc<crate::metrics::WorkerMetrics>>,
) {
    let reconnect = Reconnect::new(Store::PostgresIngest, worker, metrics);
    let mut link = Link { url, timeout, session: None, reconnect, retry_at: None };
    let (direct, deduplicating) = (direct_sql(), deduplicating_sql());
    let mut out = BytesMut::new();
    loop {
        let batch = queue.next_batch().await;
        loop {
            match link.commit(&direct, &deduplicating, &batch.copy, &mut out).await {
                Ok(()) => {
                    tracing::trace!(events = batch.events, "batch committed");
                    batch.outcome.settle(BatchResult::Committed);
                    break;
                }
                Err(e) if queue.mode() == AckMode::Durable => {
                    batch.outcome.settle(BatchResult::Failed(e));
                    break;
                }
                Err(_) => {
                    // Queued: these events were acknowledged; keep them until they commit.
                    let wait = link.retry_at.map_or(Duration::from_millis(100), |at| at - Instant::now());
                    tokio::time::sleep(wait.max(Duration::from_millis(20))).await;
                }
            }
        }
        drop(batch.copy);
        queue.written();
        // A buffer sized for a burst is not kept for the quiet after it.
        if out.capacity() > 1 << 20 {
            out = BytesMut::new();
        }
    }
}

/// The query, then the COPY payload as one CopyData, then CopyDone.
fn encode(sql: &str, copy: &[u8], out: &mut BytesMut) -> std::io::Result<()> {
    out.clear();
    out.reserve(sql.len() + copy.len() + 32);
    frontend::query(sql, out)?;
    frontend::CopyData::new(copy)?.write(out);
    frontend::copy_done(out);
    Ok(())
}

struct Link {
    url: String,
    timeout: Duration,
    session: Option<SimpleSession>,
    reconnect: Reconnect,
    /// While the database is unreachable: no new connect attempt before this,
    /// so durable requests fail fast instead of each waiting on a connect.
    retry_at: Option<Instant>,
}

impl Link {
    /// Stores one batch (`copy`, a complete COPY stream): the direct COPY, and
    /// if an event of it is already stored, the deduplicating transaction.
    async fn commit(
        &mut self,
        direct: &str,
        deduplicating: &str,
        copy: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), AppError> {
        if self.session.is_none() {
            self.connect().await?;
        }
        let session = self.session.as_mut().ok_or(AppError::DatabaseUnavailable)?;
        let attempt = async {
            encode(direct, copy, out).map_err(|e| PgError::Failed(e.to_string()))?;
            match session.exchange(out).await {
                // The failed COPY rolled back on its own; the session is usable.
                Err(PgError::Violation { constraint }) if constraint == PRIMARY_KEY => {
                    encode(deduplicating, copy, out).map_err(|e| PgError::Failed(e.to_string()))?;
                    session.exchange(out).await
                }
                other => other,
            }
        };
        let result = tokio::time::timeout(self.timeout, attempt).await;
        let error = match result {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => PgError::TimedOut,
        };
        self.session = None;
        self.reconnect.lost();
        match &error {
            PgError::Unavailable => tracing::warn!("ingest connection lost"),
            PgError::TimedOut => tracing::warn!("an ingest batch did not commit within the storage timeout"),
            // Logged as it becomes an AppError.
            _ => {}
        }
        Err(error.into())
    }

    async fn connect(&mut self) -> Result<(), AppError> {
        if self.url.is_empty() || self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(AppError::DatabaseUnavailable);
        }
        let failed = match tokio::time::timeout(self.timeout, open(&self.url)).await {
            Ok(Ok(session)) => {
                self.session = Some(session);
                self.retry_at = None;
                self.reconnect.connected();
                return Ok(());
            }
            Ok(Err(e)) => e,
            Err(_) => "connect timed out".to_owned(),
        };
        self.reconnect.failed(&failed);
        self.retry_at = Some(Instant::now() + self.reconnect.next_wait());
        Err(AppError::DatabaseUnavailable)
    }
}

/// A session with its staging table made.
async fn open(url: &str) -> Result<SimpleSession, String> {
    let mut session = SimpleSession::connect(url).await?;
    let mut out = BytesMut::new();
    frontend::query(&set_up_sql(), &mut out).map_err(|e| e.to_string())?;
    session.exchange(&out).await.map_err(|e| e.to_string())?;
    Ok(session)
}
