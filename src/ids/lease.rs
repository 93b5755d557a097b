//! This node's id in the IDs' machine field: fixed by `--node-id`, or leased
//! from Redis so that no two nodes of a fleet ever use the same one.
//!
//! The lease is a key per node id, `<prefix>ids:node:<n>`, taken with
//! `SET NX PX` and a random owner token, and renewed every third of its time
//! to live by a script that extends it only while it still holds our token.
//! The node may issue IDs under a lease until a quarter of its time to live
//! before it would expire, counted from when the last successful take or
//! renewal was *sent*: if renewals stop getting through (Redis down, a
//! partition), the node stops issuing before any other node can take the id.
//! A lost lease (the key expired and someone else took it) stops issuing at
//! once, and the node takes the next free id.
//!
//! The state lives in one atomic word (validity deadline and node id packed
//! together), so workers read it on every request without locks, and can
//! never see one lease's node id with another lease's deadline.
//!
//! Deadlines are kept on the monotonic clock (milliseconds since the process
//! first asked), not the wall clock: Redis expires the key after real time
//! has passed, and a wall clock stepped back would otherwise stretch our side
//! of the lease past Redis's, letting two nodes issue under one id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use swiftlet_protocol::resp::Reply;

use crate::storage::Redis;

/// `valid_until_ms << NODE_BITS | node`, the deadline in [`monotonic_ms`];
/// 0 means no node.
static LEASE: AtomicU64 = AtomicU64::new(0);

/// Milliseconds on the monotonic clock since the first call, plus one (so a
/// real deadline is never the 0 that means "no node").
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64 + 1
}
const NODE_BITS: u32 = 16;
/// A deadline that never passes, for a node id fixed by configuration.
const FOREVER: u64 = (1 << (64 - NODE_BITS)) - 1;

/// Renews the key KEYS[1] for ARGV[2] ms if it still holds our token ARGV[1].
const RENEW: &[u8] =
    b"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

fn publish(node: Option<u64>, valid_until_ms: u64) {
    let word = match node {
        Some(node) => valid_until_ms.min(FOREVER) << NODE_BITS | node,
        None => 0,
    };
    LEASE.store(word, Ordering::Release);
}

/// The node id to make IDs with now, if the node has a valid one.
pub fn current() -> Option<u64> {
    current_at(monotonic_ms())
}

/// [`current`] at `now_ms` on the [`monotonic_ms`] clock.
fn current_at(now_ms: u64) -> Option<u64> {
    let word = LEASE.load(Ordering::Acquire);
    let valid_until = word >> NODE_BITS;
    (now_ms < valid_until).then_some(word & ((1 << NODE_BITS) - 1))
}

/// Uses `node` for good (`--node-id`).
pub fn fix(node: u64) {
    publish(Some(node), FOREVER);
}

/// Takes and keeps a lease from a background thread of its own, for the life
/// of the process. `max_node` is the largest node id the ID scheme allows.
pub fn lease_in_background(redis_url: String, prefix: String, max_node: u64, ttl: Duration, timeout: Duration) {
    let spawned = std::thread::Builder::new().name("swiftlet-node-lease".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => return tracing::error!(error = %e, "could not start the node-lease thread"),
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            let redis = Redis::start(&redis_url, timeout, None);
            keep_leased(&redis, &prefix, max_node, ttl).await;
        });
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the node-lease thread");
    }
}

async fn keep_leased(redis: &Redis, prefix: &str, max_node: u64, ttl: Duration) {
    let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let ttl_ms = ttl.as_millis().max(4) as u64;
    let ttl_text = ttl_ms.to_string();
    // Issue for three quarters of the lease; renew after a third.
    let usable_ms = ttl_ms - ttl_ms / 4;
    let renew_every = ttl / 3;
    // The first attempt usually finds the Redis connection still opening:
    // retry soon, then back off to half a second.
    let mut retry = Duration::from_millis(5);
    loop {
        let Some((node, key, sent_ms)) = take(redis, prefix, max_node, &token, &ttl_text).await else {
            publish(None, 0);
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(Duration::from_millis(500));
            continue;
        };
        retry = Duration::from_millis(5);
        tracing::debug!(node, "leased a node id for IDs");
        publish(Some(node), sent_ms + usable_ms);
        loop {
            tokio::time::sleep(renew_every).await;
            let sent_ms = monotonic_ms();
            match redis.call(&[b"EVAL", RENEW, b"1", key.as_bytes(), token.as_bytes(), ttl_text.as_bytes()]).await {
                Ok(Reply::Integer(1)) => publish(Some(node), sent_ms + usable_ms),
                Ok(_) => {
                    // Expired and taken by someone else, or deleted: stop now.
                    tracing::warn!(node, "lost the node-id lease; taking another");
                    publish(None, 0);
                    break;
                }
                // Unreachable: keep issuing until the deadline already set, no longer.
                Err(e) => tracing::warn!(node, error = %e, "could not renew the node-id lease"),
            }
        }
    }
}

/// Takes the first free node id, starting from a random one so that nodes
/// starting together do not all race for id 0.
async fn take(redis: &Redis, prefix: &str, max_node: u64, token: &str, ttl_ms: &str) -> Option<(u64, String, u64)> {
    let ids = max_node + 1;
    let start = fastrand::u64(..ids);
    for i in 0..ids {
        let node = (start + i) % ids;
        let key = format!("{prefix}ids:node:{node}");
        let sent_ms = monotonic_ms();
        match redis.call(&[b"SET", key.as_bytes(), token.as_bytes(), b"NX", b"PX", ttl_ms.as_bytes()]).await {
            Ok(Reply::SimpleString(_)) => return Some((node, key, sent_ms)),
            Ok(_) => continue, // taken
            Err(e) => {
                tracing::debug!(error = %e, "cannot lease a node id yet; Redis unavailable");
                return None;
            }
        }
    }
    tracing::error!(ids, "every node id is leased; this node cannot make IDs");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_holds_node_and_deadline_together_on_the_monotonic_clock() {
        publish(Some(7), 1_000);
        assert_eq!(current_at(999), Some(7));
        assert_eq!(current_at(1_000), None, "expired at the deadline");
        publish(None, 0);
        assert_eq!(current_at(0), None);
        fix(65_535);
        assert_eq!(current_at(u64::MAX >> 17), Some(65_535));
        publish(None, 0);

        // (In the same test: the word is process-wide.) A lease valid for 50 ms of real time stays valid for no longer,
        // whatever the wall clock does meanwhile (it is not consulted).
        let start = monotonic_ms();
        publish(Some(3), start + 50);
        assert_eq!(current(), Some(3));
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(monotonic_ms() >= start + 50);
        assert_eq!(current(), None);
        publish(None, 0);
    }
}
