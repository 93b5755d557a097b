//! How long to wait before the next reconnect attempt: doubling from a short
//! first wait to a cap, with jitter so the workers (and a fleet of servers)
//! do not all knock on a restarted database in the same millisecond.

use std::time::Duration;

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
