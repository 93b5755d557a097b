//! [`IngestQueue`]: one worker's events waiting to be committed, as the COPY
//! stream of the next batch, and the [`Receipt`] a durable request waits on.
//!
//! Invariants:
//! - Events queued — in the open batch plus the one being written — never
//!   exceed the capacity, and their COPY rows never exceed the byte capacity
//!   by more than one event (at most about 33 KiB, by the field caps of
//!   `event`); past either [`IngestQueue::append`] refuses with
//!   [`AppError::IngestBusy`] (503 with Retry-After), so memory is bounded
//!   whatever the database does. Handlers first wait a moment for room
//!   ([`IngestQueue::room`]): a queue that is full only until the batch being
//!   written commits slows its clients down instead of failing them, and a
//!   flood of instant 503s does not starve the database of the CPU it needs
//!   to drain the queue.
//! - Every event appended is in exactly one batch, and each batch gets exactly
//!   one outcome, which every receipt for it sees.
//! - Only this worker's thread touches the queue (`Rc`, `RefCell`): an append
//!   and a take never interleave.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use swiftlet_protocol::pgcopy::{self, CopyWriter};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::event::LogPayload;
use super::AckMode;
use crate::http::error::AppError;
use crate::metrics::WorkerMetrics;

/// How a batch ended, once it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchResult {
    Committed,
    /// Not committed; the error its events' requests answer with.
    Failed(AppError),
}

/// The outcome of one batch, shared by the requests whose events it holds.
#[derive(Default)]
pub struct Outcome {
    result: Cell<Option<BatchResult>>,
    done: Notify,
}

impl Outcome {
    pub fn settle(&self, result: BatchResult) {
        self.result.set(Some(result));
        self.done.notify_waiters();
    }
}

/// What an accepted event's request waits on before it answers: nothing in
/// queued mode, the batch's outcome in durable mode.
pub struct Receipt(Option<Rc<Outcome>>);

impl Receipt {
    /// Waits until the event is committed (durable mode) and says whether it was.
    pub async fn confirmed(self) -> Result<(), AppError> {
        let Some(outcome) = self.0 else { return Ok(()) };
        loop {
            // `notified()` is created before the check, so a settle between
            // the two is not missed.
            let notified = outcome.done.notified();
            match outcome.result.get() {
                Some(BatchResult::Committed) => return Ok(()),
                Some(BatchResult::Failed(e)) => return Err(e),
                None => notified.await,
            }
        }
    }

    /// Whether two receipts wait on the same batch (a request with many events
    /// needs to wait on each batch once).
    pub fn same_batch(&self, other: &Receipt) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Rc::ptr_eq(a, b),
            _ => self.0.is_none() && other.0.is_none(),
        }
    }
}

/// A batch taken for writing: the complete COPY payload, its event count and
/// the outcome its requests wait on.
pub struct Batch {
    pub copy: Vec<u8>,
    pub events: usize,
    pub outcome: Rc<Outcome>,
}

struct OpenBatch {
    copy: Vec<u8>,
    events: usize,
    /// When the first event arrived: the batch is due `linger` later.
    first_at: Option<Instant>,
    outcome: Rc<Outcome>,
}

impl OpenBatch {
    fn new(capacity: usize) -> OpenBatch {
        OpenBatch { copy: Vec::with_capacity(capacity), events: 0, first_at: None, outcome: Rc::default() }
    }
}

pub struct IngestQueue {
    mode: AckMode,
    batch_events: usize,
    linger: Duration,
    capacity: usize,
    /// Most bytes of COPY rows queued (open batch and the one being written).
    capacity_bytes: usize,
    /// How long a request may wait for room in a full queue before its 503.
    full_wait: Duration,
    open: RefCell<OpenBatch>,
    /// Events in the batch the writer holds (0 when it holds none).
    writing: Cell<usize>,
    /// Bytes of that batch.
    writing_bytes: Cell<usize>,
    /// Wakes the writer: the first event of a batch arrived, a batch is full,
    /// or the worker is shutting down.
    wake: Notify,
    /// Wakes requests waiting for room: the writer finished a batch.
    room: Notify,
    closing: Cell<bool>,
    /// The worker's `/metrics` block, where the depth is published as it changes.
    metrics: Option<Arc<WorkerMetrics>>,
}

impl IngestQueue {
    pub fn new(
        mode: AckMode,
        batch_events: usize,
        linger: Duration,
        capacity: usize,
        capacity_bytes: usize,
        full_wait: Duration,
        metrics: Option<Arc<WorkerMetrics>>,
    ) -> IngestQueue {
        IngestQueue {
            mode,
            batch_events,
            linger,
            capacity,
            capacity_bytes,
            full_wait,
            open: RefCell::new(OpenBatch::new(0)),
            writing: Cell::new(0),
            writing_bytes: Cell::new(0),
            wake: Notify::new(),
            room: Notify::new(),
            closing: Cell::new(false),
            metrics,
        }
    }

    pub fn mode(&self) -> AckMode {
        self.mode
    }

    /// Events accepted and not yet committed.
    pub fn depth(&self) -> usize {
        self.open.borrow().events + self.writing.get()
    }

    /// Bytes of COPY rows accepted and not yet committed.
    pub fn queued_bytes(&self) -> usize {
        self.open.borrow().copy.len() + self.writing_bytes.get()
    }

    fn has_room(&self) -> bool {
        self.depth() < self.capacity && self.queued_bytes() < self.capacity_bytes
    }

    /// Returns once the queue has room for an event, waiting up to the full
    /// wait for the writer to finish a batch; after that, [`AppError::IngestBusy`].
    /// An [`append`](Self::append) right after it (no await between) has room.
    pub async fn room(&self) -> Result<(), AppError> {
        if self.has_room() {
            return Ok(());
        }
        let deadline = Instant::now() + self.full_wait;
        loop {
            // Created before the check, so a batch finishing in between is not missed.
            let notified = self.room.notified();
            if self.has_room() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(AppError::IngestBusy);
            }
        }
    }

    /// Queues one event for the next batch.
    pub fn append(&self, event: &LogPayload<'_, '_>) -> Result<Receipt, AppError> {
        if !self.has_room() {
            return Err(AppError::IngestBusy);
        }
        let mut open = self.open.borrow_mut();
        event.write_row(&mut CopyWriter::new(&mut open.copy));
        open.events += 1;
        self.publish_depth(open.events + self.writing.get());
        if open.first_at.is_none() {
            open.first_at = Some(Instant::now());
            self.wake.notify_one();
        } else if open.events == self.batch_events {
            self.wake.notify_one();
        }
        Ok(Receipt(match self.mode {
            AckMode::Durable => Some(Rc::clone(&open.outcome)),
            AckMode::Queued => None,
        }))
    }

    /// Waits until a batch is due — `batch_events` events, or its first event
    /// `linger` old, or the worker closing — and takes it. The writer calls
    /// this only when it holds no batch.
    pub async fn next_batch(&self) -> Batch {
        loop {
            let notified = self.wake.notified();
            let (events, first_at) = {
                let open = self.open.borrow();
                (open.events, open.first_at)
            };
            match first_at {
                None => notified.await,
                Some(_) if events >= self.batch_events || self.closing.get() => break,
                Some(first) => {
                    let due = first + self.linger;
                    if Instant::now() >= due {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => break,
                        _ = notified => {}
                    }
                }
            }
        }
        let mut open = self.open.borrow_mut();
        // The next batch starts with room for one like this, so a steady
        // stream does not regrow its buffer from nothing every batch.
        let fresh = OpenBatch::new(open.copy.len().min(4 << 20));
        let taken = std::mem::replace(&mut *open, fresh);
        self.writing.set(taken.events);
        self.writing_bytes.set(taken.copy.len());
        let mut copy = taken.copy;
        pgcopy::finish(&mut copy);
        Batch { copy, events: taken.events, outcome: taken.outcome }
    }

    /// The writer is done with its batch (committed, or given up in durable mode).
    pub fn written(&self) {
        self.writing.set(0);
        self.writing_bytes.set(0);
        self.publish_depth(self.depth());
        self.room.notify_waiters();
    }

    fn publish_depth(&self, depth: usize) {
        if let Some(m) = &self.metrics {
            m.ingest_queue_depth.store(depth as u64, Relaxed);
        }
    }

    /// From now on a batch is due as soon as it has an event: the worker is
    /// shutting down and wants the queue empty.
    pub fn close(&self) {
        self.closing.set(true);
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::event::with_payload;

    fn append(queue: &IngestQueue, id: &str) -> Result<Receipt, AppError> {
        let mut body =
            format!(r#"{{"event_id":"{id}","timestamp":1,"service":"s","message":"m","metadata":{{}}}}"#).into_bytes();
        with_payload(&mut body, |event| queue.append(event))
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
    }

    #[test]
    fn a_full_queue_refuses_after_the_wait_and_has_room_once_a_batch_is_written() {
        run(async {
            let queue =
                IngestQueue::new(AckMode::Queued, 10, Duration::ZERO, 2, 1 << 20, Duration::from_millis(20), None);
            assert!(queue.room().await.is_ok());
            append(&queue, "a").unwrap();
            append(&queue, "b").unwrap();
            assert_eq!(queue.depth(), 2);
            assert_eq!(append(&queue, "c").err(), Some(AppError::IngestBusy));
            assert_eq!(queue.room().await, Err(AppError::IngestBusy));
            // Taking the batch does not free its room; committing it does.
            let batch = queue.next_batch().await;
            assert_eq!((batch.events, queue.depth()), (2, 2));
            assert!(batch.copy.starts_with(b"PGCOPY\n\xff\r\n\0") && batch.copy.ends_with(&[0xff, 0xff]));
            assert_eq!(queue.room().await, Err(AppError::IngestBusy));
            queue.written();
            assert!(queue.room().await.is_ok());
            assert_eq!(queue.depth(), 0);
        });
    }

    #[test]
    fn a_waiting_request_gets_room_when_the_writer_finishes() {
        run(async {
            let queue = Rc::new(IngestQueue::new(
                AckMode::Queued,
                10,
                Duration::ZERO,
                1,
                1 << 20,
                Duration::from_secs(10),
                None,
            ));
            append(&queue, "a").unwrap();
            let _batch = queue.next_batch().await;
            let writer = Rc::clone(&queue);
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async move {
                    tokio::task::spawn_local(async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        writer.written();
                    });
                    assert!(queue.room().await.is_ok());
                })
                .await;
        });
    }

    #[test]
    fn durable_receipts_see_their_batch_outcome() {
        run(async {
            let queue = IngestQueue::new(AckMode::Durable, 10, Duration::ZERO, 100, 1 << 20, Duration::ZERO, None);
            let first = append(&queue, "a").unwrap();
            let same = append(&queue, "b").unwrap();
            assert!(first.same_batch(&same));
            let batch = queue.next_batch().await;
            let later = append(&queue, "c").unwrap();
            assert!(!later.same_batch(&first), "an event after the take joins the next batch");
            batch.outcome.settle(BatchResult::Failed(AppError::DatabaseUnavailable));
            assert_eq!(first.confirmed().await, Err(AppError::DatabaseUnavailable));
            assert_eq!(same.confirmed().await, Err(AppError::DatabaseUnavailable));
            queue.written();
            let next = queue.next_batch().await;
            assert_eq!(next.events, 1);
            next.outcome.settle(BatchResult::Committed);
            assert_eq!(later.confirmed().await, Ok(()));
        });
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        run(async {
            let queue = IngestQueue::new(AckMode::Queued, 1000, Duration::ZERO, 1000, 300, Duration::ZERO, None);
            let mut accepted = 0;
            while append(&queue, "an-event-id").is_ok() {
                accepted += 1;
                assert!(accepted < 1000, "never refused");
            }
            // Refused once 300 bytes were queued, over it by less than one row.
            assert!(queue.queued_bytes() >= 300 && queue.queued_bytes() < 300 + 100, "{}", queue.queued_bytes());
            assert_eq!(queue.room().await, Err(AppError::IngestBusy));
            let _batch = queue.next_batch().await;
            assert_eq!(queue.room().await, Err(AppError::IngestBusy), "the batch being written still counts");
            queue.written();
            assert!(queue.room().await.is_ok());
        });
    }

    #[test]
    fn queued_receipts_need_no_commit() {
        run(async {
            let queue = IngestQueue::new(AckMode::Queued, 10, Duration::ZERO, 100, 1 << 20, Duration::ZERO, None);
            assert_eq!(append(&queue, "a").unwrap().confirmed().await, Ok(()));
        });
    }
}
