//! How long to wait before the next reconnect attempt: doubling from a short
//! first wait to a cap, with jitter so the workers (and a fleet of servers)
//! do not all knock on a restarted database in the same millisecond. And
//! [`Reconnect`], the schedule plus the logging and the connection gauges
//! (`metrics`) every storage connection shares.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::WorkerMetrics;

pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff { first, cap, next: first }
    }

    /// The wait before the next attempt; each call doubles the one after, up to the cap.
    pub fn next_wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.cap);
        // Between 75% and 125% of the base.
        base.mul_f64(0.75 + fastrand::f64() * 0.5)
    }

    /// After a success: the next failure starts from the first wait again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// One connection's reconnect state: the backoff and the failures in a row,
/// logged so that a store that stays down does not flood the log (the first
/// failure in a row is a warning, later ones only every 50th).
pub struct Reconnect {
    store: Store,
    connection: usize,
    backoff: Backoff,
    failures: u32,
    /// The metrics block of the worker this connection belongs to, if any.
    metrics: Option<Arc<WorkerMetrics>>,
}

/// Which store a connection is to: what the log names and which gauges count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Postgres,
    /// The ingest writer's own PostgreSQL connection.
    PostgresIngest,
    Redis,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Postgres => "PostgreSQL",
            Store::PostgresIngest => "PostgreSQL (ingest)",
            Store::Redis => "Redis",
        }
    }
}

impl Reconnect {
    /// Counted in `metrics`, the gauges of the worker the connection serves (if any).
    pub fn new(store: Store, connection: usize, metrics: Option<Arc<WorkerMetrics>>) -> Reconnect {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        Reconnect { store, connection, backoff, failures: 0, metrics }
    }

    fn gauges(&self) -> Option<(&AtomicU64, &AtomicU64)> {
        let m = self.metrics.as_deref()?;
        Some(match self.store {
            Store::Postgres | Store::PostgresIngest => (&m.pg_connections_up, &m.pg_connection_failures),
            Store::Redis => (&m.redis_connections_up, &m.redis_connection_failures),
        })
    }

    /// A connection that was up has ended.
    pub fn lost(&mut self) {
        if let Some((up, failures)) = self.gauges() {
            up.fetch_sub(1, Relaxed);
            failures.fetch_add(1, Relaxed);
        }
    }

    pub fn connected(&mut self) {
        if let Some((up, _)) = self.gauges() {
            up.fetch_add(1, Relaxed);
        }
        if self.failures > 0 {
            tracing::info!(
                store = self.store.name(),
                connection = self.connection,
                after_failures = self.failures,
                "connected"
            );
        }
        self.failures = 0;
        self.backoff.reset();
    }

    pub fn failed(&mut self, error: &str) {
        if let Some((_, failures)) = self.gauges() {
            failures.fetch_add(1, Relaxed);
        }
        if self.failures % 50 == 0 {
            let failures = self.failures + 1;
            tracing::warn!(
                store = self.store.name(),
                connection = self.connection,
                failures,
                error,
                "unavailable; retrying"
            );
        } else {
            tracing::debug!(store = self.store.name(), connection = self.connection, error, "still unavailable");
        }
        self.failures += 1;
    }

    /// Sleeps until the next attempt.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_wait()).await;
    }

    /// How long to wait before the next attempt, for a caller that does not sleep on it.
    pub fn next_wait(&mut self) -> Duration {
        self.backoff.next_wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        let waits: Vec<Duration> = (0..6).map(|_| b.next_wait()).collect();
        for (wait, base) in waits.iter().zip([100, 200, 400, 800, 1000, 1000]) {
            assert!(*wait >= ms(base * 3 / 4) && *wait <= ms(base * 5 / 4), "{wait:?} for base {base}");
        }
        b.reset();
        assert!(b.next_wait() <= ms(125));
    }
}
