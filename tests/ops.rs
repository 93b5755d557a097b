//! The operational endpoints against real stores: `/ready` answers 200 while
//! PostgreSQL answers and the node holds a node id ("degraded" when Redis,
//! only a cache, does not), and 503 naming what is away otherwise; `/health`
//! answers 200 whatever the stores do.

mod common;

use std::time::Duration;

use common::storage::{eventually, free_port, redis_addr, TestDb};
use common::{Client, Response, TestServer};

fn errors(res: &Response) -> Vec<String> {
    let mut body = res.body.clone();
    let value = simd_json::to_owned_value(&mut body).unwrap_or_else(|e| panic!("{e}: {}", res.text()));
    let errors = simd_json::prelude::ValueAsObject::as_object(&value["errors"]).expect("an errors object").clone();
    let mut keys: Vec<String> = errors.keys().cloned().collect();
    keys.sort();
    keys
}

/// swiftlet with `args` on a fresh database and the shared Redis, once `/ready` says so.
fn start_ready(db: &TestDb, args: &[&str]) -> (TestServer, Client) {
    let redis_url = format!("redis://{}", redis_addr());
    let server = TestServer::start_with_env(args, &[("DATABASE_URL", &db.url), ("REDIS_URL", &redis_url)]);
    let mut client = server.connect();
    let ready = eventually(Duration::from_secs(30), || client.get("/ready").status == 200);
    assert!(ready, "never ready; log: {:#?}", server.log_lines());
    (server, client)
}

#[test]
fn ready_only_while_both_stores_answer() {
    let db = TestDb::create();
    let (_server, mut client) = start_ready(&db, &[]);
    let res = client.get("/ready");
    assert_eq!(res.text(), r#"{"status":"ready","postgres":"up","redis":"up","ids":"up"}"#);
    assert_eq!(client.get("/health").status, 200);
}

#[test]
fn not_ready_names_the_store_that_is_away() {
    let db = TestDb::create();
    let nowhere = format!("redis://127.0.0.1:{}", free_port());
    let server =
        TestServer::start_with_env(&["--storage-timeout", "1"], &[("DATABASE_URL", &db.url), ("REDIS_URL", &nowhere)]);
    let mut client = server.connect();
    // Once PostgreSQL is connected, Redis is named, and so are the IDs: without
    // Redis no node id can be leased, so the node cannot create rows.
    let redis_and_ids = eventually(Duration::from_secs(30), || {
        let res = client.get("/ready");
        res.status == 503 && errors(&res) == ["ids", "redis"]
    });
    assert!(redis_and_ids, "{}", client.get("/ready").text());
    assert_eq!(client.get("/health").status, 200);

    // The same with a fixed node id: Redis down is only the cache down, so
    // the node is ready, degraded, and says so.
    let server = TestServer::start_with_env(
        &["--storage-timeout", "1", "--node-id", "1"],
        &[("DATABASE_URL", &db.url), ("REDIS_URL", &nowhere)],
    );
    let mut client = server.connect();
    let degraded = eventually(Duration::from_secs(30), || client.get("/ready").status == 200);
    assert!(degraded, "{}", client.get("/ready").text());
    assert_eq!(client.get("/ready").text(), r#"{"status":"degraded","postgres":"up","redis":"down","ids":"up"}"#);

    // Neither store configured: both named (with a fixed node id, the IDs are
    // fine), and the liveness check still passes.
    let server = TestServer::start(&["--node-id", "1"]);
    let mut client = server.connect();
    let res = client.get("/ready");
    assert_eq!(res.status, 503);
    assert_eq!(errors(&res), ["postgres", "redis"]);
    assert_eq!(client.get("/health").status, 200);
}

/// The value of the series `name{labels}` in a scrape (0 when absent).
fn series(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn metrics_merge_every_worker_and_name_routes_statuses_and_stores() {
    let db = TestDb::create();
    let (server, mut probe) = start_ready(&db, &["--workers", "2"]);
    // Each worker connects on its own (retrying while the migrations run):
    // wait until both show connections to both stores.
    let stores_up = |scrape: &str, store: &str| {
        (0..2).all(|core| series(scrape, &format!("swiftlet_{store}_connections_up{{core=\"{core}\"}}")) >= 1.0)
    };
    let all_up = eventually(Duration::from_secs(30), || {
        let scrape = probe.get("/metrics").text();
        stores_up(&scrape, "postgres") && stores_up(&scrape, "redis")
    });
    assert!(all_up, "{}", probe.get("/metrics").text());
    // Twenty connections: SO_REUSEPORT spreads them over both workers.
    let mut clients: Vec<_> = (0..20).map(|_| server.connect()).collect();
    for c in &mut clients {
        assert_eq!(c.get("/plaintext").status, 200);
        assert_eq!(c.get("/nope").status, 404);
    }
    let res = probe.get("/metrics");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let scrape = res.text();
    assert_eq!(series(&scrape, r#"swiftlet_requests_total{route="plaintext",path="/plaintext",status="200"}"#), 20.0);
    assert_eq!(series(&scrape, r#"swiftlet_requests_total{route="unrouted",path="",status="404"}"#), 20.0);
    assert_eq!(series(&scrape, r#"swiftlet_request_duration_seconds_count{route="plaintext"}"#), 20.0);
    assert_eq!(series(&scrape, r#"swiftlet_request_duration_seconds_bucket{route="plaintext",le="+Inf"}"#), 20.0);
    // Per core: both workers report, and between them they hold our 21 connections.
    let open = series(&scrape, r#"swiftlet_open_connections{core="0"}"#)
        + series(&scrape, r#"swiftlet_open_connections{core="1"}"#);
    assert_eq!(open, 21.0, "{scrape}");
    assert!(scrape.contains(r#"swiftlet_ingest_queue_depth{core="1"} 0"#), "{scrape}");
    for store in ["postgres", "redis"] {
        assert!(scrape.contains(&format!("swiftlet_{store}_connection_failures_total{{core=\"1\"}} ")), "{scrape}");
    }
    drop(clients);

    // Without the counters, requests are not counted; the gauges stay.
    let server = TestServer::start(&["--no-metrics"]);
    let mut client = server.connect();
    assert_eq!(client.get("/plaintext").status, 200);
    let scrape = client.get("/metrics").text();
    assert_eq!(series(&scrape, r#"swiftlet_requests_total{route="plaintext",path="/plaintext",status="200"}"#), 0.0);
    assert!(scrape.contains(r#"swiftlet_open_connections{core="0"} 1"#), "{scrape}");
}
