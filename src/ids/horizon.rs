//! The issue horizon: how far this node may make IDs, recorded in PostgreSQL
//! before it is used, so that no restart can repeat an ID.
//!
//! A generator never repeats itself while it runs (see [`super::IdGenerator`]),
//! but a new process knows nothing of what the last one with its node id
//! made. If the wall clock was stepped back in between (NTP after a bad
//! boot, a VM restored from a snapshot), it would make IDs at times already
//! used. So the invariant, per node id, across processes and nodes:
//!
//! *every ID made under node id `n` was made at a Unix time before
//! `id_horizons.until_ms` of `n`.*
//!
//! It holds because a process issues at time `t` only while it has recorded
//! a horizon above `t` (it reserves [`AHEAD`] beyond its clock, and renews
//! every [`RENEW_EVERY`]), and because a process that takes up a node id
//! first waits until its clock is a whole tick past the horizon left there,
//! so its first tick is above every tick issued before. A clean shutdown
//! lowers the horizon to its clock, so an ordinary restart waits at most a
//! tick; a crash leaves up to [`AHEAD`] to wait out.
//!
//! Without a database there is nowhere to record a horizon: the server warns
//! at start and issues unguarded. With one that is away, the node stops
//! issuing when the horizon already recorded runs out (IDs answer 503), since
//! going on could not be made safe.
//!
//! The state is one atomic word, `until_ms << NODE_BITS | node`, read by
//! every ID a worker issues; one background thread keeps it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::Client;

use super::{lease, unix_ms_now};
use crate::storage::backoff::Backoff;
use crate::storage::migrations::connect;
use crate::storage::postgres::describe;

/// How far ahead of the clock a horizon is recorded: the longest a node
/// restarted after a crash waits before it makes IDs, and how long the node
/// goes on issuing while PostgreSQL does not answer.
pub const AHEAD: Duration = Duration::from_secs(5);
/// How often the horizon is moved on; well inside [`AHEAD`], so a renewal
/// or two can fail without a pause in issuing.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How often the keeper looks whether the lease moved this node to another id.
const LOOK_EVERY: Duration = Duration::from_millis(20);

const NODE_BITS: u32 = 16;
/// No database: every time is allowed (and the server said so at start).
const UNGUARDED: u64 = u64::MAX;
static HORIZON: AtomicU64 = AtomicU64::new(0);
/// Set at shutdown: the keeper must not move the horizon up again after it
/// was lowered to the last time used.
static SETTLED: AtomicBool = AtomicBool::new(false);

/// Whether node `node` may make an ID at Unix time `now_ms`.
pub fn allows(node: u64, now_ms: u64) -> bool {
    let word = HORIZON.load(Ordering::Acquire);
    word == UNGUARDED || (word & ((1 << NODE_BITS) - 1) == node && now_ms < word >> NODE_BITS)
}

/// Issue without a recorded horizon (no database is configured).
pub fn unguarded() {
    HORIZON.store(UNGUARDED, Ordering::Release);
}

fn publish(node: u64, until_ms: u64) {
    HORIZON.store(until_ms << NODE_BITS | node, Ordering::Release);
}

fn withdraw() {
    if HORIZON.load(Ordering::Acquire) != UNGUARDED {
        HORIZON.store(0, Ordering::Release);
    }
}

/// Keeps this node's horizon from a thread of its own, for the life of the
/// process. `tick_ms` is the layout's tick.
pub fn keep_in_background(url: String, tick_ms: u64, timeout: Duration) {
    let spawned = std::thread::Builder::new().name("swiftlet-id-horizon".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => return tracing::error!(error = %e, "could not start the ID-horizon thread"),
        };
        runtime.block_on(keep(&url, tick_ms, timeout));
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the ID-horizon thread");
    }
}

async fn keep(url: &str, tick_ms: u64, timeout: Duration) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut failures: u32 = 0;
    loop {
        let error = match connect(url, timeout).await {
            Ok(client) => {
                backoff.reset();
                hold(&client, tick_ms, timeout, &mut failures).await
            }
            Err(e) => e,
        };
        // The first few retries are quiet: on a first start the migrations
        // may still be creating the table. Then once in a while, not on every retry.
        if failures == 5 || (failures > 5 && failures % 50 == 0) {
            tracing::warn!(error = %error, "cannot record the ID horizon; IDs stop when the recorded one runs out");
        }
        failures += 1;
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

/// Holds the horizon over one connection until it fails.
async fn hold(client: &Client, tick_ms: u64, timeout: Duration, failures: &mut u32) -> String {
    // The node id whose horizon this process recorded, and the value.
    let mut held: Option<(u64, u64)> = None;
    let mut renewed = tokio::time::Instant::now();
    let mut said_wait = false;
    loop {
        if SETTLED.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
        let Some(node) = lease::current() else {
            held = None;
            tokio::time::sleep(LOOK_EVERY).await;
            continue;
        };
        let fresh = held.is_none_or(|(n, _)| n != node);
        if !fresh && renewed.elapsed() < RENEW_EVERY {
            tokio::time::sleep(LOOK_EVERY).await;
            continue;
        }
        if fresh {
            withdraw();
            // Taking up the node id: wait out whatever was made under it before.
            let left = match timed(
                timeout,
                client.query_opt("SELECT until_ms FROM id_horizons WHERE node = $1", &[&(node as i32)]),
            )
            .await
            {
                Ok(row) => row.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64),
                Err(e) => return e,
            };
            let free_at = left.saturating_add(tick_ms);
            let now = unix_ms_now();
            if now < free_at {
                if !said_wait {
                    tracing::warn!(
                        node,
                        wait_ms = free_at - now,
                        "this node id made IDs up to a time this clock has not reached (a crash, or the clock \
                         stepped back): waiting it out before making IDs"
                    );
                    said_wait = true;
                }
                tokio::time::sleep(Duration::from_millis(free_at - now).min(RENEW_EVERY)).await;
                continue;
            }
        }
        let want = unix_ms_now() + AHEAD.as_millis() as u64;
        let sent = tokio::time::Instant::now();
        let recorded = timed(
            timeout,
            client.query_one(
                "INSERT INTO id_horizons (node, until_ms) VALUES ($1, $2) \
                 ON CONFLICT (node) DO UPDATE SET until_ms = GREATEST(id_horizons.until_ms, EXCLUDED.until_ms) \
                 RETURNING until_ms",
                &[&(node as i32), &(want as i64)],
            ),
        )
        .await;
        let recorded = match recorded {
            Ok(row) => row.get::<_, i64>(0).max(0) as u64,
            Err(e) => return e,
        };
        // Ours is the larger of what we asked for and what we held; anything
        // above that was written by another process using this node id.
        let ours = held.filter(|&(n, _)| n == node).map_or(want, |(_, until)| until.max(want));
        if recorded > ours {
            tracing::error!(node, "another process records ID horizons for this node id; not making IDs under it");
            withdraw();
            held = None;
            tokio::time::sleep(RENEW_EVERY).await;
            continue;
        }
        if lease::current() != Some(node) {
            continue; // moved meanwhile; start over for the new id
        }
        publish(node, recorded);
        held = Some((node, recorded));
        renewed = sent;
        said_wait = false;
        *failures = 0;
    }
}

async fn timed<T>(
    limit: Duration,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, query).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// At shutdown, once the workers have stopped: lowers the recorded horizon
/// to the clock (every ID was made before it), so the next start with this
/// node id does not wait out the rest of [`AHEAD`]. Best effort: if it
/// fails, the next start waits a few seconds, and no ID can repeat.
pub fn settle(url: &str, timeout: Duration) {
    SETTLED.store(true, Ordering::Release);
    let word = HORIZON.swap(0, Ordering::AcqRel);
    if word == UNGUARDED || word == 0 {
        return;
    }
    let (node, until) = (word & ((1 << NODE_BITS) - 1), word >> NODE_BITS);
    let now = unix_ms_now() + 1;
    if now >= until {
        return;
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    let lowered = runtime.block_on(async {
        let client = connect(url, timeout).await?;
        // Only our own value: if it moved, someone else's horizon is there.
        timed(
            timeout,
            client.execute(
                "UPDATE id_horizons SET until_ms = $2 WHERE node = $1 AND until_ms = $3",
                &[&(node as i32), &(now as i64), &(until as i64)],
            ),
        )
        .await
    });
    match lowered {
        Ok(1) => tracing::debug!(node, "ID horizon lowered to the clock"),
        Ok(_) => {}
        Err(e) => tracing::warn!(node, error = %e, "could not lower the ID horizon; the next start waits it out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_allows_only_its_node_and_only_before_its_time() {
        publish(3, 10_000);
        assert!(allows(3, 9_999));
        assert!(!allows(3, 10_000), "the horizon itself is already past");
        assert!(!allows(4, 9_999), "another node id");
        withdraw();
        assert!(!allows(3, 0));
        unguarded();
        assert!(allows(7, u64::MAX >> 1));
        withdraw();
        assert!(allows(7, 0), "withdrawing never turns an unguarded node into a stopped one");
        HORIZON.store(0, Ordering::Release);
    }
}
