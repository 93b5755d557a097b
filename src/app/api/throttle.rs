//! Failed-login budgets: a token bucket per account (by e-mail) and per
//! client address, shared by every worker, so guessing passwords is slow and
//! a flood of logins cannot keep the password-hashing queue full for everyone.
//!
//! A login takes a token from both of its buckets *before* its password is
//! hashed (so many concurrent attempts cannot all pass one check) and gets
//! them back if the password was right: only failures spend the budget. An
//! empty bucket answers 429 with the seconds until it holds a token again.
//! Buckets refill at their burst size per minute.
//!
//! Bound: at most [`MAX_BUCKETS`] buckets are kept. When the map is full,
//! buckets that have refilled completely (they say nothing) are dropped; if
//! none has, the attempt is let through unthrottled and logged, rather than
//! locking every new client out (the hashing pool's own queue bound still
//! holds). Behind a proxy every client has the proxy's address, so the
//! per-address budget then limits the proxy as a whole: size
//! `--login-failures-per-address` for it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::http::error::AppError;

/// The most buckets held, accounts and addresses together (about 80 bytes
/// each with the map's overhead, so a few MiB at most).
pub const MAX_BUCKETS: usize = 50_000;
const REFILL_PERIOD: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// An account, by its e-mail as typed, lowercased (e-mails compare case-insensitively).
    Account(Box<str>),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct LoginThrottle {
    per_account: f64,
    per_address: f64,
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    map: HashMap<Key, Bucket>,
    /// When a full map was last swept for refilled buckets: at most once a
    /// second, so a flood of new keys into a full map costs no sweep each.
    swept_at: Option<Instant>,
}

impl LoginThrottle {
    pub fn new(per_account: u32, per_address: u32) -> LoginThrottle {
        LoginThrottle {
            per_account: f64::from(per_account.max(1)),
            per_address: f64::from(per_address.max(1)),
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Takes a token for a login to `email` from `address`, or says how long to wait.
    pub fn take(&self, email: &str, address: Option<IpAddr>, now: Instant) -> Result<(), AppError> {
        let mut guard = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Buckets { map: buckets, swept_at } = &mut *guard;
        let keys = self.keys(email, address);
        let mut wait = Duration::ZERO;
        for (key, burst) in &keys {
            let tokens = current(buckets.get(key), *burst, now);
            if tokens < 1.0 {
                wait = wait.max(REFILL_PERIOD.mul_f64((1.0 - tokens) / burst));
            }
        }
        if !wait.is_zero() {
            return Err(AppError::TooManyLogins { retry_after: wait.as_secs().saturating_add(1) as u32 });
        }
        for (key, burst) in keys {
            let tokens = current(buckets.get(&key), burst, now) - 1.0;
            if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&key) {
                if swept_at.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1)) {
                    buckets.retain(|k, b| current(Some(b), self.burst(k), now) < self.burst(k));
                    *swept_at = Some(now);
                }
                if buckets.len() >= MAX_BUCKETS {
                    tracing::warn!(buckets = buckets.len(), "login throttle full; this attempt is not counted");
                    continue;
                }
            }
            buckets.insert(key, Bucket { tokens, at: now });
        }
        Ok(())
    }

    /// Gives back what [`take`](Self::take) took: the password was right.
    pub fn refund(&self, email: &str, address: Option<IpAddr>, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (key, burst) in self.keys(email, address) {
            if let Some(bucket) = buckets.map.get_mut(&key) {
                *bucket = Bucket { tokens: (current(Some(bucket), burst, now) + 1.0).min(burst), at: now };
            }
        }
    }

    fn keys(&self, email: &str, address: Option<IpAddr>) -> Vec<(Key, f64)> {
        let mut keys = vec![(Key::Account(email.to_lowercase().into()), self.per_account)];
        if let Some(address) = address {
            keys.push((Key::Address(address), self.per_address));
        }
        keys
    }

    fn burst(&self, key: &Key) -> f64 {
        match key {
            Key::Account(_) => self.per_account,
            Key::Address(_) => self.per_address,
        }
    }
}

/// A bucket's tokens at `now`: what it held, plus the refill since, up to its burst.
fn current(bucket: Option<&Bucket>, burst: f64, now: Instant) -> f64 {
    match bucket {
        None => burst,
        Some(b) => {
            let refill = now.saturating_duration_since(b.at).as_secs_f64() / REFILL_PERIOD.as_secs_f64() * burst;
            (b.tokens + refill).min(burst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const AWAY: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    #[test]
    fn an_account_allows_its_burst_then_waits_for_the_refill() {
        let throttle = LoginThrottle::new(3, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            throttle.take("Ann@x", HOME, t0).unwrap();
        }
        // Another address, the same account (any case): still limited.
        let Err(AppError::TooManyLogins { retry_after }) = throttle.take("ann@X", AWAY, t0) else { panic!() };
        assert!((20..=21).contains(&retry_after), "{retry_after}");
        // A third of a minute refills one of three.
        assert!(throttle.take("ann@x", AWAY, t0 + Duration::from_secs(21)).is_ok());
        // Another account from the same address is not limited by Ann's.
        assert!(throttle.take("bob@x", HOME, t0).is_ok());
    }

    #[test]
    fn an_address_is_limited_across_accounts_and_successes_cost_nothing() {
        let throttle = LoginThrottle::new(100, 2);
        let t0 = Instant::now();
        throttle.take("a@x", HOME, t0).unwrap();
        throttle.refund("a@x", HOME, t0);
        throttle.take("b@x", HOME, t0).unwrap();
        throttle.take("c@x", HOME, t0).unwrap();
        assert!(matches!(throttle.take("d@x", HOME, t0), Err(AppError::TooManyLogins { .. })));
        assert!(throttle.take("d@x", AWAY, t0).is_ok());
    }

    #[test]
    fn the_map_is_bounded() {
        let throttle = LoginThrottle::new(1, 1000);
        let t0 = Instant::now();
        for i in 0..MAX_BUCKETS + 10 {
            let _ = throttle.take(&format!("user{i}@x"), None, t0);
        }
        assert!(throttle.buckets.lock().unwrap().map.len() <= MAX_BUCKETS);
        // Once buckets have refilled, they make room for new ones.
        throttle.take("late@x", None, t0 + REFILL_PERIOD).unwrap();
        assert!(throttle.buckets.lock().unwrap().map.contains_key(&Key::Account("late@x".into())));
    }
}
