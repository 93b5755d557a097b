//! Time-ordered 64-bit IDs in the Sonyflake or the Twitter Snowflake layout.
//!
//! | layout    | bits, high to low                                         | tick  |
//! |-----------|-----------------------------------------------------------|-------|
//! | Sonyflake | 0, time 39, sequence 8, machine 16                        | 10 ms |
//! | Snowflake | 0, time 41, machine 10, sequence 12                       | 1 ms  |
//!
//! Time counts ticks since a configurable epoch. The machine field is split
//! into the node (high bits) and the core (low `core_bits`), so every worker
//! of every node owns a machine id of its own and generates without any lock
//! or coordination: two generators never share a machine id, and one
//! generator never repeats a (tick, sequence) pair.
//!
//! [`IdGenerator::next_at`] is the whole algorithm, as a pure step over a
//! time the caller passes in (tests inject any clock). Its invariant: every
//! ID it returns is greater than the one before. When the sequence of the
//! current tick is used up it says to wait for the next tick; when the clock
//! has gone backwards it says to wait until it catches up, or, if it is
//! further behind than the configured bound, refuses: it never returns an ID
//! it may have returned before.
//!
//! [`lease`] decides the node id: fixed by configuration, or leased from Redis.
//! [`horizon`] records in PostgreSQL how far the node may issue, so that a
//! restart after the clock stepped back cannot repeat an ID.
//! [`issue`] hands out IDs on a worker, for `/api/ids` and for the primary
//! keys of the product API's users and articles.

pub mod horizon;
pub mod issue;
pub mod lease;

use std::time::Duration;

/// Which bit layout IDs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// Sony's Sonyflake: 39-bit time in 10 ms units, 8-bit sequence, 16-bit machine.
    Sonyflake,
    /// Twitter's Snowflake: 41-bit milliseconds, 10-bit machine, 12-bit sequence.
    Snowflake,
}

impl Layout {
    pub const fn time_bits(self) -> u32 {
        match self {
            Layout::Sonyflake => 39,
            Layout::Snowflake => 41,
        }
    }

    pub const fn sequence_bits(self) -> u32 {
        match self {
            Layout::Sonyflake => 8,
            Layout::Snowflake => 12,
        }
    }

    pub const fn machine_bits(self) -> u32 {
        match self {
            Layout::Sonyflake => 16,
            Layout::Snowflake => 10,
        }
    }

    /// Milliseconds per tick.
    pub const fn tick_ms(self) -> u64 {
        match self {
            Layout::Sonyflake => 10,
            Layout::Snowflake => 1,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Layout::Sonyflake => "sonyflake",
            Layout::Snowflake => "snowflake",
        }
    }

    fn compose(self, tick: u64, sequence: u64, machine: u64) -> u64 {
        match self {
            Layout::Sonyflake => tick << 24 | sequence << 16 | machine,
            Layout::Snowflake => tick << 22 | machine << 12 | sequence,
        }
    }

    /// The fields of an ID: (tick, sequence, machine).
    fn split(self, id: u64) -> (u64, u64, u64) {
        let mask = |bits: u32| (1u64 << bits) - 1;
        match self {
            Layout::Sonyflake => (id >> 24, id >> 16 & mask(8), id & mask(16)),
            Layout::Snowflake => (id >> 22, id & mask(12), id >> 12 & mask(10)),
        }
    }
}

/// How IDs are made on this node: layout, epoch and the node's share of the
/// machine field. The same on every worker of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdScheme {
    pub layout: Layout,
    /// The epoch, in Unix milliseconds.
    pub epoch_ms: u64,
    /// Low bits of the machine field that number the worker.
    pub core_bits: u32,
    /// How far the clock may go backwards before generating stops with an error
    /// instead of waiting for it to catch up.
    pub max_backwards: Duration,
}

/// Why a scheme or a machine id cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemeError {
    CoreBits { core_bits: u32, machine_bits: u32 },
    TooManyWorkers { workers: usize, core_bits: u32 },
    NodeOutOfRange { node: u64, max: u64 },
}

impl std::fmt::Display for SchemeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemeError::CoreBits { core_bits, machine_bits } => {
                write!(f, "{core_bits} core bits leave no node bits in a {machine_bits}-bit machine field")
            }
            SchemeError::TooManyWorkers { workers, core_bits } => {
                write!(f, "{workers} workers do not fit in {core_bits} core bits")
            }
            SchemeError::NodeOutOfRange { node, max } => write!(f, "node id {node} is above the largest, {max}"),
        }
    }
}

impl IdScheme {
    /// The largest node id this scheme leaves room for.
    pub fn max_node(&self) -> u64 {
        (1u64 << (self.layout.machine_bits() - self.core_bits)) - 1
    }

    /// Checks that `workers` cores fit, and that some node bits remain.
    pub fn check(&self, workers: usize) -> Result<(), SchemeError> {
        let machine_bits = self.layout.machine_bits();
        if self.core_bits >= machine_bits {
            return Err(SchemeError::CoreBits { core_bits: self.core_bits, machine_bits });
        }
        if workers as u64 > 1u64 << self.core_bits {
            return Err(SchemeError::TooManyWorkers { workers, core_bits: self.core_bits });
        }
        Ok(())
    }

    /// The machine id of worker `core` on node `node`.
    pub fn machine(&self, node: u64, core: usize) -> Result<u64, SchemeError> {
        if node > self.max_node() {
            return Err(SchemeError::NodeOutOfRange { node, max: self.max_node() });
        }
        Ok(node << self.core_bits | core as u64)
    }

    /// An ID's parts, for `GET /api/ids/{id}`.
    pub fn decode(&self, id: u64) -> IdParts {
        let (tick, sequence, machine) = self.layout.split(id);
        IdParts {
            unix_ms: self.epoch_ms.saturating_add(tick.saturating_mul(self.layout.tick_ms())),
            machine,
            node: machine >> self.core_bits,
            core: machine & ((1 << self.core_bits) - 1),
            sequence,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdParts {
    /// When the ID was made, to the tick, in Unix milliseconds.
    pub unix_ms: u64,
    pub machine: u64,
    pub node: u64,
    pub core: u64,
    pub sequence: u64,
}

/// What one step of the generator produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Id(u64),
    /// Try again after this long (sequence used up, or the clock a little behind).
    Wait(Duration),
    /// The clock is further behind than the bound allows.
    ClockBackwards,
    /// The clock is before the epoch, or past the last tick the layout can hold.
    OutOfRange,
}

/// One worker's generator.
#[derive(Debug)]
pub struct IdGenerator {
    scheme: IdScheme,
    machine: u64,
    /// The tick of the last ID, and the sequence used in it.
    last_tick: Option<u64>,
    sequence: u64,
}

impl IdGenerator {
    pub fn new(scheme: IdScheme, machine: u64) -> IdGenerator {
        IdGenerator { scheme, machine, last_tick: None, sequence: 0 }
    }

    /// The node part of this generator's machine id.
    pub fn node(&self) -> u64 {
        self.machine >> self.scheme.core_bits
    }

    /// The next ID if one can be made at Unix time `now_ms`.
    pub fn next_at(&mut self, now_ms: u64) -> Step {
        let layout = self.scheme.layout;
        let tick_ms = layout.tick_ms();
        let Some(since_epoch) = now_ms.checked_sub(self.scheme.epoch_ms) else {
            return Step::OutOfRange;
        };
        let tick = since_epoch / tick_ms;
        let max_sequence = (1u64 << layout.sequence_bits()) - 1;
        match self.last_tick {
            Some(last) if tick < last => {
                // Behind: continuing now could repeat an earlier (tick, sequence).
                let behind = Duration::from_millis((last - tick) * tick_ms);
                if behind > self.scheme.max_backwards {
                    return Step::ClockBackwards;
                }
                let next_tick_ms = self.scheme.epoch_ms + last * tick_ms;
                return Step::Wait(Duration::from_millis(next_tick_ms.saturating_sub(now_ms).max(1)));
            }
            Some(last) if tick == last => {
                if self.sequence == max_sequence {
                    let next_tick_ms = self.scheme.epoch_ms + (last + 1) * tick_ms;
                    return Step::Wait(Duration::from_millis(next_tick_ms.saturating_sub(now_ms).max(1)));
                }
                self.sequence += 1;
            }
            _ => {
                if tick >> layout.time_bits() != 0 {
                    return Step::OutOfRange;
                }
                self.last_tick = Some(tick);
                self.sequence = 0;
            }
        }
        Step::Id(layout.compose(tick, self.sequence, self.machine))
    }
}

/// Whether this node can make an ID now: it holds a node id, and the horizon
/// recorded for it is ahead of the clock.
pub fn available() -> bool {
    lease::current().is_some_and(|node| horizon::allows(node, unix_ms_now()))
}

/// Waits (up to `limit`) until this node can make IDs.
pub fn wait_until_available(limit: Duration) {
    let start = std::time::Instant::now();
    while !available() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The current Unix time in milliseconds.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: u64 = 1_409_529_600_000; // 2014-09-01, Sonyflake's default

    fn scheme(layout: Layout) -> IdScheme {
        IdScheme { layout, epoch_ms: EPOCH, core_bits: 4, max_backwards: Duration::from_millis(50) }
    }

    /// Runs the generator on a fake clock that starts at `start` and only moves
    /// when the generator asks to wait, collecting `n` IDs.
    fn collect(g: &mut IdGenerator, start: u64, n: usize) -> (Vec<u64>, u64) {
        let mut now = start;
        let mut ids = Vec::with_capacity(n);
        while ids.len() < n {
            match g.next_at(now) {
                Step::Id(id) => ids.push(id),
                Step::Wait(d) => now += d.as_millis() as u64,
                other => panic!("{other:?} at {now}"),
            }
        }
        (ids, now)
    }

    #[test]
    fn layouts_round_trip() {
        for layout in [Layout::Sonyflake, Layout::Snowflake] {
            let s = scheme(layout);
            let machine = s.machine(5, 3).unwrap();
            let mut g = IdGenerator::new(s, machine);
            let now = EPOCH + 123_456_789;
            let Step::Id(id) = g.next_at(now) else { panic!() };
            let Step::Id(second) = g.next_at(now) else { panic!() };
            let parts = s.decode(second);
            assert_eq!(parts.unix_ms, now / layout.tick_ms() * layout.tick_ms(), "{layout:?}");
            assert_eq!((parts.node, parts.core, parts.sequence), (5, 3, 1), "{layout:?}");
            assert_eq!(s.decode(id).sequence, 0);
            assert!(id < 1 << 63, "the sign bit stays clear");
        }
    }

    #[test]
    fn ids_increase_and_never_repeat_when_the_sequence_runs_out() {
        for layout in [Layout::Sonyflake, Layout::Snowflake] {
            let s = scheme(layout);
            let mut g = IdGenerator::new(s, s.machine(1, 0).unwrap());
            let per_tick = 1usize << layout.sequence_bits();
            // Three ticks' worth on a clock that stands still unless told to wait.
            let start = EPOCH + 1_000_000;
            let (ids, end) = collect(&mut g, start, per_tick * 3);
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{layout:?}: not increasing");
            // It waited exactly into the next tick twice.
            assert_eq!(end, start + 2 * layout.tick_ms(), "{layout:?}");
            assert_eq!(s.decode(ids[per_tick]).sequence, 0);
            assert_eq!(s.decode(ids[per_tick - 1]).sequence, per_tick as u64 - 1);
        }
    }

    #[test]
    fn a_clock_going_back_a_little_is_waited_out() {
        let s = scheme(Layout::Snowflake);
        let mut g = IdGenerator::new(s, 0);
        let t = EPOCH + 10_000;
        let Step::Id(before) = g.next_at(t) else { panic!() };
        // 30 ms back: within the 50 ms bound, so wait until the clock is back at t.
        assert_eq!(g.next_at(t - 30), Step::Wait(Duration::from_millis(30)));
        let Step::Id(after) = g.next_at(t) else { panic!() };
        assert!(after > before);
    }

    #[test]
    fn a_clock_going_back_too_far_is_refused() {
        let s = scheme(Layout::Sonyflake);
        let mut g = IdGenerator::new(s, 0);
        let t = EPOCH + 10_000;
        assert!(matches!(g.next_at(t), Step::Id(_)));
        assert_eq!(g.next_at(t - 60), Step::ClockBackwards);
        // And stays refused until the clock is back within the bound.
        assert_eq!(g.next_at(t - 1_000), Step::ClockBackwards);
        assert!(matches!(g.next_at(t - 40), Step::Wait(_)));
        assert!(matches!(g.next_at(t + 10), Step::Id(_)));
    }

    #[test]
    fn time_outside_the_layout_is_refused() {
        let s = scheme(Layout::Snowflake);
        let mut g = IdGenerator::new(s, 0);
        assert_eq!(g.next_at(EPOCH - 1), Step::OutOfRange);
        assert_eq!(g.next_at(EPOCH + (1 << 41)), Step::OutOfRange);
        assert!(matches!(g.next_at(EPOCH + (1 << 41) - 1), Step::Id(_)));
    }

    #[test]
    fn machines_are_unique_per_node_and_core() {
        let s = scheme(Layout::Sonyflake);
        assert_eq!(s.max_node(), (1 << 12) - 1);
        assert_eq!(s.machine(s.max_node() + 1, 0), Err(SchemeError::NodeOutOfRange { node: 4096, max: 4095 }));
        let mut seen = std::collections::HashSet::new();
        for node in [0, 1, 4095] {
            for core in 0..16 {
                assert!(seen.insert(s.machine(node, core).unwrap()));
            }
        }
        assert!(s.check(16).is_ok());
        assert_eq!(s.check(17), Err(SchemeError::TooManyWorkers { workers: 17, core_bits: 4 }));
        let wide = IdScheme { core_bits: 10, ..scheme(Layout::Snowflake) };
        assert!(matches!(wide.check(1), Err(SchemeError::CoreBits { .. })));
    }

    #[test]
    fn two_generators_on_one_node_never_collide() {
        let s = scheme(Layout::Sonyflake);
        let mut a = IdGenerator::new(s, s.machine(7, 0).unwrap());
        let mut b = IdGenerator::new(s, s.machine(7, 1).unwrap());
        let (ia, _) = collect(&mut a, EPOCH + 5_000, 2_000);
        let (ib, _) = collect(&mut b, EPOCH + 5_000, 2_000);
        let all: std::collections::HashSet<u64> = ia.iter().chain(&ib).copied().collect();
        assert_eq!(all.len(), 4_000);
    }
}
