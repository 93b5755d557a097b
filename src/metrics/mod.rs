//! Prometheus metrics (`GET /metrics`), counted per worker and merged when scraped.
//!
//! Each worker owns one [`WorkerMetrics`]: plain atomic counters that only its
//! own thread writes (relaxed increments on a cache line no other core
//! writes), so counting a request costs a few uncontended adds and one clock
//! read. A scrape, on whichever worker it lands, reads every worker's block
//! through the process-wide [`Registry`] and sums them; gauges that belong to
//! a core (open connections, ingest queue depth) are reported per core.
//!
//! Invariant: a worker registers its block before it accepts a connection,
//! and blocks are never removed, so a scrape sees every worker that ever ran.
//!
//! [`allocations`] counts heap allocations in the measuring build.
//!
//! Routes are counted by their index in the route table, which the
//! application hands the registry once ([`label_routes`]): this module knows
//! no route, and depends on nothing of the server's.

pub mod allocations;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Status codes counted by name; anything else is counted as "other".
const STATUSES: [u16; 23] =
    [200, 201, 202, 204, 206, 400, 401, 403, 404, 405, 408, 411, 413, 414, 415, 416, 417, 422, 431, 500, 503, 505, 507];

/// A status's index in [`STATUSES`] ("other" past its end), by table lookup:
/// the request path pays one load, not a search.
const STATUS_INDEX: [u8; 600] = {
    let mut table = [STATUSES.len() as u8; 600];
    let mut i = 0;
    while i < STATUSES.len() {
        table[STATUSES[i] as usize] = i as u8;
        i += 1;
    }
    table
};
/// Upper bounds of the latency buckets, in microseconds (`+Inf` follows).
const BUCKETS_US: [u64; 12] = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000];
const STATUS_SLOTS: usize = STATUSES.len() + 1;
const BUCKET_SLOTS: usize = BUCKETS_US.len() + 1;

/// A route's labels: its short name and its path pattern.
pub type RouteLabel = (&'static str, &'static str);

/// One worker's counters and gauges.
pub struct WorkerMetrics {
    core: usize,
    /// Route slots: one per route of the table, then one for requests refused
    /// before a route was found (bad heads, unknown paths).
    route_slots: usize,
    requests: Vec<AtomicU64>,
    latency_buckets: Vec<AtomicU64>,
    latency_sum_us: Vec<AtomicU64>,
    pub open_connections: AtomicU64,
    pub ingest_queue_depth: AtomicU64,
    pub pg_connections_up: AtomicU64,
    pub pg_connection_failures: AtomicU64,
    pub redis_connections_up: AtomicU64,
    pub redis_connection_failures: AtomicU64,
    pub tls_handshakes_full: AtomicU64,
    pub tls_handshakes_resumed: AtomicU64,
    pub tls_handshakes_failed: AtomicU64,
}

fn zeroed(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl WorkerMetrics {
    /// A block for worker `core` that counts `routes` routes.
    pub fn new(core: usize, routes: usize) -> WorkerMetrics {
        let route_slots = routes + 1;
        WorkerMetrics {
            core,
            route_slots,
            requests: zeroed(route_slots * STATUS_SLOTS),
            latency_buckets: zeroed(route_slots * BUCKET_SLOTS),
            latency_sum_us: zeroed(route_slots),
            open_connections: AtomicU64::new(0),
            ingest_queue_depth: AtomicU64::new(0),
            pg_connections_up: AtomicU64::new(0),
            pg_connection_failures: AtomicU64::new(0),
            redis_connections_up: AtomicU64::new(0),
            redis_connection_failures: AtomicU64::new(0),
            tls_handshakes_full: AtomicU64::new(0),
            tls_handshakes_resumed: AtomicU64::new(0),
            tls_handshakes_failed: AtomicU64::new(0),
        }
    }

    /// Counts one answered request, by its route's index in the table (none:
    /// refused before routing); `took` is the time from its complete arrival
    /// to its answer, when it got as far as a handler.
    pub fn record(&self, route: Option<usize>, status: u16, took: Option<Duration>) {
        let r = self.slot(route);
        let s = STATUS_INDEX.get(usize::from(status)).map_or(STATUSES.len(), |&i| usize::from(i));
        add(&self.requests[r * STATUS_SLOTS + s], 1);
        if let Some(took) = took {
            self.time(r, 1, took);
        }
    }

    /// Times `requests` answered requests of one route served back to back in
    /// `took` in all: each goes into the bucket of their mean, and the sum
    /// gets all of it. (A pipelined round's answers leave together, so the
    /// connection reads the clock once per run of one route rather than once
    /// per request: see `server::connection`.) Counting them is `record`'s.
    pub fn time_run(&self, route: usize, requests: u64, took: Duration) {
        self.time(self.slot(Some(route)), requests, took)
    }

    fn slot(&self, route: Option<usize>) -> usize {
        let unrouted = self.route_slots - 1;
        route.filter(|&r| r < unrouted).unwrap_or(unrouted)
    }

    fn time(&self, slot: usize, requests: u64, took: Duration) {
        if requests == 0 {
            return;
        }
        let us = took.as_secs().saturating_mul(1_000_000).saturating_add(u64::from(took.subsec_micros()));
        let mean = us / requests;
        let b = BUCKETS_US.iter().position(|&le| mean <= le).unwrap_or(BUCKETS_US.len());
        add(&self.latency_buckets[slot * BUCKET_SLOTS + b], requests);
        add(&self.latency_sum_us[slot], us);
    }
}

/// The requests a connection answers back to back, timed together: the
/// clock is read when the route changes and when the round ends, not after
/// every request. Pipelined /plaintext spent 4 % of its CPU reading the clock
/// once per request (perf, 2026-12-04), and a round's answers leave in one
/// write anyway. One request per round (no pipelining) is timed exactly.
pub struct RouteRun {
    since: std::time::Instant,
    route: u32,
    requests: u32,
}

impl RouteRun {
    /// A run that starts now (`since`), with nothing answered yet.
    pub fn starting(since: std::time::Instant) -> RouteRun {
        RouteRun { since, route: 0, requests: 0 }
    }

    /// The next request goes to `route`: a run of another route ends here.
    pub fn next(&mut self, route: usize, metrics: &WorkerMetrics) {
        if self.route as usize != route {
            if self.requests > 0 {
                self.end(metrics);
            }
            self.route = route as u32;
        }
    }

    /// One more request of the run answered (and counted with `record`).
    pub fn answered(&mut self) {
        self.requests += 1;
    }

    /// Ends the run at the clock's reading now, returned (the time it began
    /// if it answered nothing, without reading the clock); a next run starts
    /// from there.
    pub fn end(&mut self, metrics: &WorkerMetrics) -> std::time::Instant {
        if self.requests > 0 {
            let now = std::time::Instant::now();
            metrics.time_run(self.route as usize, u64::from(self.requests), now - self.since);
            self.since = now;
            self.requests = 0;
        }
        self.since
    }
}

/// A per-core series: name, type, help, and where each worker keeps it.
type PerCore = (&'static str, &'static str, &'static str, fn(&WorkerMetrics) -> &AtomicU64);

/// Adds to a counter that only this thread writes: a plain load and store,
/// no locked read-modify-write (each worker writes only its own block, so no
/// increment can be lost; scrapes on other threads read whole values).
pub fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Every worker's metrics block, and the labels of the routes they count.
#[derive(Default)]
pub struct Registry {
    workers: Mutex<Vec<Arc<WorkerMetrics>>>,
    routes: std::sync::OnceLock<&'static [RouteLabel]>,
}

/// Names the routes the blocks count, by index (once, before any scrape).
pub fn label_routes(labels: &'static [RouteLabel]) {
    let _ = registry().routes.set(labels);
}

impl Registry {
    pub fn register(&self, metrics: Arc<WorkerMetrics>) {
        self.workers.lock().unwrap_or_else(|e| e.into_inner()).push(metrics);
    }

    /// The Prometheus text exposition (format 0.0.4) of every worker, merged.
    pub fn render(&self, out: &mut Vec<u8>) {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut text = String::with_capacity(16 * 1024);
        let sum = |f: &dyn Fn(&WorkerMetrics) -> u64| workers.iter().map(|w| f(w)).sum::<u64>();
        let labels: &[RouteLabel] = self.routes.get().copied().unwrap_or_default();
        let route_label = |r: usize| labels.get(r).copied().unwrap_or(("unrouted", ""));
        let route_slots = workers.first().map_or(0, |w| w.route_slots);

        text.push_str("# HELP swiftlet_requests_total Requests answered, by route and status.\n");
        text.push_str("# TYPE swiftlet_requests_total counter\n");
        for r in 0..route_slots {
            for s in 0..STATUS_SLOTS {
                let n = sum(&|w| w.requests[r * STATUS_SLOTS + s].load(Relaxed));
                if n == 0 {
                    continue;
                }
                let (name, pattern) = route_label(r);
                let status = STATUSES.get(s).map_or("other".to_owned(), u16::to_string);
                let _ = writeln!(
                    text,
                    "swiftlet_requests_total{{route=\"{name}\",path=\"{pattern}\",status=\"{status}\"}} {n}"
                );
            }
        }

        text.push_str(
            "# HELP swiftlet_request_duration_seconds Time from a request's arrival to its answer, by route.\n",
        );
        text.push_str("# TYPE swiftlet_request_duration_seconds histogram\n");
        for r in 0..route_slots {
            let counts: Vec<u64> =
                (0..BUCKET_SLOTS).map(|b| sum(&|w| w.latency_buckets[r * BUCKET_SLOTS + b].load(Relaxed))).collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let (name, _) = route_label(r);
            let mut cumulative = 0;
            for (b, count) in counts.iter().enumerate() {
                cumulative += count;
                let le = BUCKETS_US.get(b).map_or("+Inf".to_owned(), |us| format!("{}", *us as f64 / 1e6));
                let _ = writeln!(
                    text,
                    "swiftlet_request_duration_seconds_bucket{{route=\"{name}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let seconds = sum(&|w| w.latency_sum_us[r].load(Relaxed)) as f64 / 1e6;
            let _ = writeln!(text, "swiftlet_request_duration_seconds_sum{{route=\"{name}\"}} {seconds}");
            let _ = writeln!(text, "swiftlet_request_duration_seconds_count{{route=\"{name}\"}} {total}");
        }

        let per_core: [PerCore; 9] = [
            ("swiftlet_open_connections", "gauge", "Open client connections, per worker (core).", |w| {
                &w.open_connections
            }),
            ("swiftlet_ingest_queue_depth", "gauge", "Log events accepted and not yet committed, per worker.", |w| {
                &w.ingest_queue_depth
            }),
            ("swiftlet_postgres_connections_up", "gauge", "PostgreSQL connections open, per worker.", |w| {
                &w.pg_connections_up
            }),
            (
                "swiftlet_postgres_connection_failures_total",
                "counter",
                "PostgreSQL connections that failed to open or were lost, per worker.",
                |w| &w.pg_connection_failures,
            ),
            ("swiftlet_redis_connections_up", "gauge", "Redis connections open, per worker.", |w| {
                &w.redis_connections_up
            }),
            (
                "swiftlet_redis_connection_failures_total",
                "counter",
                "Redis connections that failed to open or were lost, per worker.",
                |w| &w.redis_connection_failures,
            ),
            ("swiftlet_tls_handshakes_full_total", "counter", "Full TLS handshakes completed, per worker.", |w| {
                &w.tls_handshakes_full
            }),
            (
                "swiftlet_tls_handshakes_resumed_total",
                "counter",
                "TLS handshakes that resumed an earlier session, per worker.",
                |w| &w.tls_handshakes_resumed,
            ),
            (
                "swiftlet_tls_handshakes_failed_total",
                "counter",
                "TLS handshakes that failed or timed out, per worker.",
                |w| &w.tls_handshakes_failed,
            ),
        ];
        for (metric, kind, help, field) in per_core {
            let _ = writeln!(text, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
            for w in &workers {
                let _ = writeln!(text, "{metric}{{core=\"{}\"}} {}", w.core, field(w).load(Relaxed));
            }
        }
        out.extend_from_slice(text.as_bytes());
    }
}

/// The process's registry.
pub fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_merged_and_buckets_are_cumulative() {
        const LABELS: &[RouteLabel] = &[("plaintext", "/plaintext"), ("json", "/json"), ("db", "/db")];
        let registry = Registry::default();
        let _ = registry.routes.set(LABELS);
        let (a, b) = (Arc::new(WorkerMetrics::new(0, 3)), Arc::new(WorkerMetrics::new(1, 3)));
        registry.register(Arc::clone(&a));
        registry.register(Arc::clone(&b));
        a.record(Some(0), 200, Some(Duration::from_micros(50)));
        b.record(Some(0), 200, Some(Duration::from_micros(700)));
        b.record(None, 400, None);
        b.record(Some(2), 299, Some(Duration::from_secs(5)));
        a.open_connections.store(3, Relaxed);
        let mut out = Vec::new();
        registry.render(&mut out);
        let text = String::from_utf8(out).unwrap();
        for line in [
            r#"swiftlet_requests_total{route="plaintext",path="/plaintext",status="200"} 2"#,
            r#"swiftlet_requests_total{route="unrouted",path="",status="400"} 1"#,
            r#"swiftlet_requests_total{route="db",path="/db",status="other"} 1"#,
            r#"swiftlet_request_duration_seconds_bucket{route="plaintext",le="0.0001"} 1"#,
            r#"swiftlet_request_duration_seconds_bucket{route="plaintext",le="0.001"} 2"#,
            r#"swiftlet_request_duration_seconds_bucket{route="plaintext",le="+Inf"} 2"#,
            r#"swiftlet_request_duration_seconds_count{route="plaintext"} 2"#,
            r#"swiftlet_request_duration_seconds_sum{route="plaintext"} 0.00075"#,
            r#"swiftlet_request_duration_seconds_bucket{route="db",le="1"} 0"#,
            r#"swiftlet_request_duration_seconds_bucket{route="db",le="+Inf"} 1"#,
            r#"swiftlet_open_connections{core="0"} 3"#,
            r#"swiftlet_open_connections{core="1"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert!(!text.contains("route=\"json\""), "routes never used are left out");
    }

    #[test]
    fn a_run_is_timed_once_and_bucketed_by_its_mean() {
        const LABELS: &[RouteLabel] = &[("plaintext", "/plaintext"), ("json", "/json")];
        let registry = Registry::default();
        let _ = registry.routes.set(LABELS);
        let metrics = Arc::new(WorkerMetrics::new(0, 2));
        registry.register(Arc::clone(&metrics));
        // Four requests in 1,200 us: each counts 300 us, the sum all of it.
        metrics.time_run(0, 4, Duration::from_micros(1_200));
        let started = std::time::Instant::now();
        let mut run = RouteRun::starting(started);
        assert_eq!(run.end(&metrics), started, "an empty run does not read the clock");
        run.next(1, &metrics);
        run.answered();
        run.answered();
        run.next(1, &metrics);
        run.answered();
        run.next(0, &metrics); // a change of route ends the run of three
        let ended = run.end(&metrics); // nothing answered since: no clock read
        assert!(ended >= started);
        let mut out = Vec::new();
        registry.render(&mut out);
        let text = String::from_utf8(out).unwrap();
        for line in [
            r#"swiftlet_request_duration_seconds_bucket{route="plaintext",le="0.00025"} 0"#,
            r#"swiftlet_request_duration_seconds_bucket{route="plaintext",le="0.0005"} 4"#,
            r#"swiftlet_request_duration_seconds_sum{route="plaintext"} 0.0012"#,
            r#"swiftlet_request_duration_seconds_count{route="json"} 3"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }
}
