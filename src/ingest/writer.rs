//! The worker's ingest writer: a task that commits the [`IngestQueue`]'s
//! batches to PostgreSQL, one at a time, over its own connection.
//!
//! A batch is one transaction: COPY (binary) into a temporary table, then one
//! INSERT … SELECT … ON CONFLICT (event_id) DO NOTHING into `log_events`, then
//! COMMIT. The temporary table is what lets a batch skip events already
//! stored (a retry) — COPY straight into `log_events` would fail the whole
//! batch on the first duplicate — and it empties itself at each commit.
//!
//! The connection is tokio-postgres's, not the request path's pipelined one:
//! a COPY holds its connection for the whole stream, and a batch costs a
//! handful of round-trips per thousand events, so pipelining buys nothing here.
//!
//! On failure: in durable mode the batch's requests get 503 (their events
//! were not acknowledged, and event_id makes the client's retry safe); in
//! queued mode the writer keeps the batch and retries it with backoff until it
//! commits, while the bounded queue refuses new events. Any error drops the
//! connection (its transaction may be half done); the next attempt opens a new one.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls, Statement};

use super::event::COPY_COLUMNS;
use super::queue::{BatchResult, IngestQueue};
use super::AckMode;
use crate::error::AppError;
use crate::storage::backoff::Reconnect;
use crate::storage::postgres::describe;

/// One open connection with its statements prepared.
struct Session {
    client: Client,
    copy: Statement,
    insert: Statement,
}

/// Runs for the life of the worker. `url` empty: no database, every batch fails
/// (durable) or waits (queued) as if it were down.
pub async fn run(queue: Rc<IngestQueue>, url: String, timeout: Duration, worker: usize) {
    let mut link =
        Link { url, timeout, session: None, reconnect: Reconnect::new("PostgreSQL (ingest)", worker), retry_at: None };
    loop {
        let batch = queue.next_batch().await;
        let payload = Bytes::from(batch.copy);
        loop {
            match link.commit(&payload).await {
                Ok(stored) => {
                    tracing::trace!(events = batch.events, stored, "batch committed");
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
        queue.written();
    }
}

struct Link {
    url: String,
    timeout: Duration,
    session: Option<Session>,
    reconnect: Reconnect,
    /// While the database is unreachable: no new connect attempt before this,
    /// so durable requests fail fast instead of each waiting on a connect.
    retry_at: Option<Instant>,
}

impl Link {
    /// Commits one COPY payload; returns how many events were new.
    async fn commit(&mut self, payload: &Bytes) -> Result<u64, AppError> {
        if self.session.is_none() {
            self.connect().await?;
        }
        let session = self.session.as_ref().ok_or(AppError::DatabaseUnavailable)?;
        match tokio::time::timeout(self.timeout, write(session, payload)).await {
            Ok(Ok(stored)) => Ok(stored),
            Ok(Err(e)) => {
                self.session = None;
                Err(classify(&e))
            }
            Err(_) => {
                self.session = None;
                tracing::warn!("an ingest batch did not commit within the storage timeout");
                Err(AppError::DatabaseTimedOut)
            }
        }
    }

    async fn connect(&mut self) -> Result<(), AppError> {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(AppError::DatabaseUnavailable);
        }
        if self.url.is_empty() {
            return Err(AppError::DatabaseUnavailable);
        }
        let failed = match tokio::time::timeout(self.timeout, open(&self.url)).await {
            Ok(Ok(session)) => {
                self.session = Some(session);
                self.retry_at = None;
                self.reconnect.connected();
                return Ok(());
            }
            Ok(Err(e)) => describe(&e),
            Err(_) => "connect timed out".to_owned(),
        };
        self.reconnect.failed(&failed);
        self.retry_at = Some(Instant::now() + self.reconnect.next_wait());
        Err(AppError::DatabaseUnavailable)
    }
}

async fn open(url: &str) -> Result<Session, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::task::spawn_local(async move {
        // Ends when the client is dropped or the socket fails; a failure
        // surfaces as the next call's error.
        let _ = connection.await;
    });
    client
        .batch_execute(
            "SET application_name = 'swiftlet-ingest';
             CREATE TEMPORARY TABLE incoming_log_events
                 (event_id text, ts timestamptz, service text, message text, metadata jsonb)
                 ON COMMIT DELETE ROWS",
        )
        .await?;
    let copy = client.prepare(&format!("COPY incoming_log_events ({COPY_COLUMNS}) FROM STDIN (FORMAT binary)")).await?;
    let insert = client
        .prepare(&format!(
            "INSERT INTO log_events ({COPY_COLUMNS}) SELECT {COPY_COLUMNS} FROM incoming_log_events
             ON CONFLICT (event_id) DO NOTHING"
        ))
        .await?;
    Ok(Session { client, copy, insert })
}

async fn write(session: &Session, payload: &Bytes) -> Result<u64, tokio_postgres::Error> {
    session.client.batch_execute("BEGIN").await?;
    let sink = session.client.copy_in::<_, Bytes>(&session.copy).await?;
    futures_util::pin_mut!(sink);
    sink.send(payload.clone()).await?;
    sink.finish().await?;
    let stored = session.client.execute(&session.insert, &[]).await?;
    session.client.batch_execute("COMMIT").await?;
    Ok(stored)
}

/// A lost connection or a server going down is "unavailable"; anything else
/// is a fault worth the log.
fn classify(e: &tokio_postgres::Error) -> AppError {
    let code = e.code().map(|c| c.code());
    if e.is_closed() || code.is_some_and(|c| c.starts_with("08") || c.starts_with("57")) {
        tracing::warn!(error = %describe(e), "ingest connection lost");
        return AppError::DatabaseUnavailable;
    }
    if code.is_none() {
        // An IO error under the client (reset, refused): also the connection.
        tracing::warn!(error = %describe(e), "ingest connection failed");
        return AppError::DatabaseUnavailable;
    }
    tracing::error!(error = %describe(e), "an ingest batch failed");
    AppError::Internal
}
