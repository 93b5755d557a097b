//! Log ingestion against a real PostgreSQL: what `POST /ingest` and
//! `/ingest/batch` acknowledge is stored, once, and reads back through
//! `GET /api/logs`; a `kill -9` under load loses nothing acknowledged; a full
//! queue pushes back with 503 and Retry-After; bad input gets clear errors.
//! Each test has a throwaway database of its own (see common::storage).

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::storage::{eventually, TestDb};
use common::{Client, Response, TestServer};
use simd_json::prelude::*;
use simd_json::OwnedValue;

/// swiftlet on `db` in `ack` mode, once its statements are prepared (the
/// migrations have run and /api/logs answers).
fn start(db: &TestDb, ack: &str, args: &[&str]) -> (TestServer, Client) {
    let server = TestServer::start_with_env(args, &[("DATABASE_URL", &db.url), ("SWIFTLET_INGEST_ACK", ack)]);
    let mut client = server.connect();
    let ready = eventually(Duration::from_secs(30), || client.get("/api/logs").status == 200);
    assert!(ready, "/api/logs never answered 200; log: {:#?}", server.log_lines());
    (server, client)
}

fn post(client: &mut Client, path: &str, body: &str) -> Response {
    client
        .request(format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
}

fn event(id: &str, ts: &str, service: &str, message: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","timestamp":"{ts}","service":"{service}","message":"{message}","metadata":{{"id":"{id}","k":"v"}}}}"#
    )
}

fn json(res: &Response) -> OwnedValue {
    let mut body = res.body.clone();
    simd_json::to_owned_value(&mut body).unwrap_or_else(|e| panic!("{e}: {}", res.text()))
}

fn count(db: &TestDb, filter: &str) -> i64 {
    db.sql(&format!("SELECT count(*) FROM log_events WHERE {filter}"))[0][0].as_ref().unwrap().parse().unwrap()
}

/// Every page of `/api/logs?{query}`, following next_cursor: the event ids in order.
fn read_all(client: &mut Client, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/logs?{query}&cursor={c}"),
            None => format!("/api/logs?{query}"),
        };
        let res = client.get(&path);
        assert_eq!(res.status, 200, "{path}: {}", res.text());
        let page = json(&res);
        for e in page["events"].as_array().unwrap() {
            ids.push(e["event_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
        assert!(ids.len() < 10_000, "cursor loop");
    }
}

#[test]
fn acknowledged_events_read_back_newest_first_page_by_page() {
    let db = TestDb::create();
    let (_server, mut client) = start(&db, "durable", &[]);
    // 30 events a minute apart, alternating services, sent out of order.
    let ts = |i: u32| format!("2026-11-29T{:02}:{:02}:00.{:06}Z", 10 + i / 60, i % 60, i);
    for i in (0..30).rev().filter(|i| i % 2 == 0) {
        let res = post(&mut client, "/ingest", &event(&format!("e{i:02}"), &ts(i), "api", "hello"));
        assert_eq!((res.status, res.text().as_str()), (202, r#"{"status":"queued"}"#));
    }
    let mut batch = String::new();
    for i in (0..30).skip(1).step_by(2) {
        batch.push_str(&event(&format!("e{i:02}"), &ts(i), "web", "hi"));
        batch.push_str("\r\n");
    }
    let res = post(&mut client, "/ingest/batch", &batch);
    assert_eq!(res.status, 202, "{}", res.text());
    assert_eq!(res.text(), r#"{"accepted":15,"rejected_count":0,"rejected":[]}"#);
    // Durable: stored before the 202.
    assert_eq!(count(&db, "true"), 30);

    let newest_first: Vec<String> = (0..30).rev().map(|i| format!("e{i:02}")).collect();
    assert_eq!(read_all(&mut client, "limit=7"), newest_first);
    assert_eq!(read_all(&mut client, "limit=1000"), newest_first);
    let web: Vec<String> = newest_first.iter().filter(|id| id[1..].parse::<u32>().unwrap() % 2 == 1).cloned().collect();
    assert_eq!(read_all(&mut client, "service=web&limit=4"), web);
    // since inclusive, until exclusive; an offset with an unescaped '+' works.
    let window = read_all(&mut client, &format!("since={}&until=2026-11-29T11:12:00%2B01:00&limit=3", ts(5)));
    assert_eq!(window, ["e11", "e10", "e09", "e08", "e07", "e06", "e05"]);
    let plus = read_all(&mut client, "since=2026-11-29T11:28:00+01:00");
    assert_eq!(plus, ["e29", "e28"]);

    // Each field as sent, the timestamp to the microsecond.
    let res = client.get("/api/logs?service=api&limit=1");
    let page = json(&res);
    let e = &page["events"][0];
    assert_eq!(e["event_id"].as_str(), Some("e28"));
    assert_eq!(e["timestamp"].as_str(), Some("2026-11-29T10:28:00.000028Z"));
    assert_eq!(e["service"].as_str(), Some("api"));
    assert_eq!(e["message"].as_str(), Some("hello"));
    assert_eq!(e["metadata"]["id"].as_str(), Some("e28"));
    assert_eq!(e["metadata"]["k"].as_str(), Some("v"));
    assert!(page["next_cursor"].as_str().is_some());
    // The log service is for servers: no CORS, whatever the API has.
    assert_eq!(res.header("access-control-allow-origin"), None);
}

#[test]
fn text_that_needs_escaping_round_trips() {
    let db = TestDb::create();
    let (_server, mut client) = start(&db, "durable", &[]);
    let body = r#"{"event_id":"ü/1 2","timestamp":1764410400000,"service":"s","message":"a \"q\"\n\t\\ é 😀","metadata":{"k\"ey":"v\nal"}}"#;
    assert_eq!(post(&mut client, "/ingest", body).status, 202);
    let page = json(&client.get("/api/logs"));
    let e = &page["events"][0];
    assert_eq!(e["event_id"].as_str(), Some("ü/1 2"));
    assert_eq!(e["timestamp"].as_str(), Some("2025-11-29T10:00:00.000000Z"));
    assert_eq!(e["message"].as_str(), Some("a \"q\"\n\t\\ é 😀"));
    assert_eq!(e["metadata"]["k\"ey"].as_str(), Some("v\nal"));
}

#[test]
fn a_retried_event_is_stored_once() {
    let db = TestDb::create();
    let (_server, mut client) = start(&db, "durable", &[]);
    let first = event("dup", "2026-11-29T10:00:00Z", "api", "first");
    for _ in 0..3 {
        assert_eq!(post(&mut client, "/ingest", &first).status, 202);
    }
    // Twice in one batch, and once more beside a new event.
    let retry = event("dup", "2026-11-29T10:00:00Z", "api", "retry");
    let batch = format!("{retry}\n{retry}\n{}\n", event("new", "2026-11-29T10:00:01Z", "api", "x"));
    let res = post(&mut client, "/ingest/batch", &batch);
    assert_eq!((res.status, res.text().as_str()), (202, r#"{"accepted":3,"rejected_count":0,"rejected":[]}"#));
    assert_eq!(count(&db, "event_id = 'dup'"), 1);
    assert_eq!(count(&db, "true"), 2);
    // The first copy is the one kept.
    assert_eq!(db.sql("SELECT message FROM log_events WHERE event_id = 'dup'")[0][0].as_deref(), Some("first"));
}

#[test]
fn bad_input_gets_a_clear_error_and_stores_nothing() {
    let db = TestDb::create();
    let (_server, mut client) =
        start(&db, "durable", &["--ingest-body-limit", "1000", "--ingest-batch-body-limit", "3000"]);
    let errors = |res: &Response| json(res)["errors"].clone();

    let res = post(&mut client, "/ingest", "{\"event_id\":");
    assert_eq!(res.status, 400);
    assert_eq!(errors(&res)["body"][0].as_str(), Some("is not valid JSON"));

    let cases = [
        (r#"{"timestamp":"2026-11-29T10:00:00Z","service":"s","message":"m","metadata":{}}"#, "event_id"),
        (r#"{"event_id":"a","timestamp":"yesterday","service":"s","message":"m","metadata":{}}"#, "timestamp"),
        (r#"{"event_id":"a","timestamp":"2026-11-29T10:00:00Z","service":"","message":"m","metadata":{}}"#, "service"),
        (
            r#"{"event_id":"a","timestamp":"2026-11-29T10:00:00Z","service":"s","message":"\u0000","metadata":{}}"#,
            "message",
        ),
        (
            r#"{"event_id":"a","timestamp":"2026-11-29T10:00:00Z","service":"s","message":"m","metadata":{"n":1}}"#,
            "metadata",
        ),
    ];
    for (body, field) in cases {
        let res = post(&mut client, "/ingest", body);
        assert_eq!(res.status, 422, "{body}");
        assert!(errors(&res)[field].is_array(), "{body}: {}", res.text());
    }

    // Oversized: refused from the Content-Length, before the body is read.
    let big = event("big", "2026-11-29T10:00:00Z", "s", &"x".repeat(1000));
    let res = post(&mut client, "/ingest", &big);
    assert_eq!(res.status, 413, "{}", res.text());
    assert!(errors(&res)["request"].is_array());
    let mut client = _server.connect();
    let batch = format!("{big}\n{big}\n{big}\n");
    assert_eq!(post(&mut client, "/ingest/batch", &batch).status, 413);
    let mut client = _server.connect();

    // A batch names its bad lines; with no good line it is a 422.
    let batch = format!("not json\n{}\n\n{}\n", cases[1].0, event("ok", "2026-11-29T10:00:00Z", "s", "m"));
    let res = post(&mut client, "/ingest/batch", &batch);
    assert_eq!(res.status, 202);
    let answer = json(&res);
    assert_eq!(answer["accepted"].as_u64(), Some(1));
    assert_eq!(answer["rejected_count"].as_u64(), Some(2));
    assert_eq!(answer["rejected"][0]["line"].as_u64(), Some(1));
    assert!(answer["rejected"][0]["errors"]["body"].is_array());
    assert_eq!(answer["rejected"][1]["line"].as_u64(), Some(2));
    assert!(answer["rejected"][1]["errors"]["timestamp"].is_array());
    let res = post(&mut client, "/ingest/batch", "nope\n[]\n");
    assert_eq!(res.status, 422);
    assert_eq!(json(&res)["rejected_count"].as_u64(), Some(2));
    let res = post(&mut client, "/ingest/batch", "\n \r\n");
    assert_eq!(res.status, 422);
    assert!(errors(&res)["body"].is_array());
    assert_eq!(count(&db, "true"), 1, "only the one good line is stored");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("since=2026-11-29", "since"),
        ("until=tomorrow", "until"),
        ("cursor=abc", "cursor"),
        ("cursor=1.6", "cursor"),
        ("service=", "service"),
    ] {
        let res = client.get(&format!("/api/logs?{query}"));
        assert_eq!(res.status, 422, "{query}");
        assert!(errors(&res)[field].is_array(), "{query}: {}", res.text());
    }
}

/// Holds an EXCLUSIVE lock on `log_events` (writes wait, reads do not) from a psql session until dropped,
/// so every batch commit waits behind it.
struct TableLock {
    psql: Child,
    url: String,
}

/// Names the locking session, so that dropping the lock can end it: PostgreSQL
/// would not notice psql's exit until its sleep ends.
const LOCK_SESSION: &str = "swiftlet-test-lock";

impl TableLock {
    fn take(db: &TestDb) -> TableLock {
        let child = Command::new("psql")
            .args([&db.url, "-q", "-c", "BEGIN; LOCK TABLE log_events IN EXCLUSIVE MODE; SELECT pg_sleep(60);"])
            .env("PGAPPNAME", LOCK_SESSION)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("psql");
        let held = eventually(Duration::from_secs(10), || count_locks(db) > 0);
        assert!(held, "the lock was never granted");
        TableLock { psql: child, url: db.url.clone() }
    }
}

fn count_locks(db: &TestDb) -> i64 {
    let rows = db.sql(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         WHERE c.relname = 'log_events' AND l.mode = 'ExclusiveLock' AND l.granted",
    );
    rows[0][0].as_ref().unwrap().parse().unwrap()
}

impl Drop for TableLock {
    fn drop(&mut self) {
        common::storage::sql(
            &self.url,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = '{LOCK_SESSION}' AND datname = current_database()"
            ),
        );
        let _ = self.psql.kill();
        let _ = self.psql.wait();
    }
}

#[test]
fn a_full_queue_pushes_back_and_loses_nothing_it_acknowledged() {
    let db = TestDb::create();
    let (server, mut client) =
        start(&db, "queued", &["--ingest-queue-events", "50", "--ingest-batch-events", "10", "--ingest-batch-ms", "0"]);
    let lock = TableLock::take(&db);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let id = format!("q{i}");
        let res = post(&mut client, "/ingest", &event(&id, "2026-11-29T10:00:00Z", "api", "m"));
        match res.status {
            202 => acknowledged.push(id),
            503 => {
                refused = Some(res);
                break;
            }
            other => panic!("{other}: {}", res.text()),
        }
    }
    // Queued mode answered at once while nothing could commit, up to the bound.
    let refused = refused.expect("the queue never filled");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(json(&refused)["errors"]["server"].is_array());
    assert_eq!(acknowledged.len(), 50, "the bound is --ingest-queue-events");
    assert_eq!(count(&db, "true"), 0);
    // A batch request is refused whole once the queue is full.
    let res = post(&mut client, "/ingest/batch", &event("late", "2026-11-29T10:00:00Z", "api", "m"));
    assert_eq!(res.status, 503);

    drop(lock);
    let stored = eventually(Duration::from_secs(20), || count(&db, "true") == 50);
    assert!(stored, "{} of 50 acknowledged events stored; log: {:#?}", count(&db, "true"), server.log_lines());
    let ids = acknowledged.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
    assert_eq!(count(&db, &format!("event_id IN ({ids})")), 50);
    // And the queue takes events again.
    assert_eq!(post(&mut client, "/ingest", &event("after", "2026-11-29T10:00:00Z", "api", "m")).status, 202);
}

#[test]
fn durable_mode_answers_503_while_the_database_cannot_commit() {
    let db = TestDb::create();
    let (_server, mut client) = start(&db, "durable", &["--storage-timeout", "1"]);
    let lock = TableLock::take(&db);
    // The batch cannot commit within the storage timeout: not acknowledged.
    let res = post(&mut client, "/ingest", &event("blocked", "2026-11-29T10:00:00Z", "api", "m"));
    assert_eq!(res.status, 503, "{}", res.text());
    assert!(json(&res)["errors"]["database"].is_array());
    drop(lock);
    // The client's retry goes through, and the event is stored once.
    let retried = eventually(Duration::from_secs(10), || {
        post(&mut client, "/ingest", &event("blocked", "2026-11-29T10:00:00Z", "api", "m")).status == 202
    });
    assert!(retried);
    assert_eq!(count(&db, "event_id = 'blocked'"), 1);
}

/// One POST over a raw socket; `None` when the connection fails at any point
/// (the server was killed), so only complete answers count.
fn post_raw(stream: &mut TcpStream, body: &str) -> Option<u16> {
    let request = format!("POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = std::str::from_utf8(&buf[..end]).ok()?;
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))?
            .parse()
            .ok()?;
        if buf.len() >= end + 4 + len {
            return head.get(9..12)?.parse().ok();
        }
    }
}

#[test]
fn kill_9_under_durable_load_loses_nothing_acknowledged() {
    let db = TestDb::create();
    let (server, _client) = start(&db, "durable", &["--workers", "2"]);
    let addr: SocketAddr = server.addr;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let acknowledged = Arc::clone(&acknowledged);
            std::thread::spawn(move || {
                let Ok(mut stream) = TcpStream::connect(addr) else { return };
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                // Until the kill ends the connection.
                for i in 0.. {
                    let id = format!("k{c}-{i}");
                    match post_raw(&mut stream, &event(&id, "2026-11-29T10:00:00Z", "load", "m")) {
                        Some(202) => acknowledged.lock().unwrap().push(id),
                        Some(other) => panic!("{other} under load"),
                        None => return,
                    }
                }
            })
        })
        .collect();
    // Let the load run, then kill the server mid-stream without warning.
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 2000 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.signal("KILL");
    for c in clients {
        c.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 2000, "only {} events acknowledged before the kill", acknowledged.len());
    drop(server);

    // After a restart every acknowledged event is there.
    let (_server, mut client) = start(&db, "durable", &[]);
    let stored: HashSet<String> =
        db.sql("SELECT event_id FROM log_events").into_iter().filter_map(|row| row[0].clone()).collect();
    let missing: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    println!(
        "kill -9: {} acknowledged, {} stored ({} stored but unanswered), {} missing",
        acknowledged.len(),
        stored.len(),
        stored.len() - (acknowledged.len() - missing.len()),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let res = client.get("/api/logs?service=load&limit=1");
    assert_eq!(json(&res)["events"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_graceful_stop_in_queued_mode_stores_what_it_acknowledged() {
    let db = TestDb::create();
    let (mut server, mut client) = start(&db, "queued", &["--shutdown-timeout", "20"]);
    // Nothing can commit yet: the events stay queued, already answered 202.
    let lock = TableLock::take(&db);
    for i in 0..20 {
        let res = post(&mut client, "/ingest", &event(&format!("s{i}"), "2026-11-29T10:00:00Z", "api", "m"));
        assert_eq!(res.status, 202, "{}", res.text());
    }
    drop(client);
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&db, "true"), 0, "stored while the table was locked?");
    assert!(server.wait_exit(Duration::from_millis(10)).is_none(), "exited with events still queued");
    // Once the database takes writes again, the server stores them, then exits.
    drop(lock);
    let (_, status) = server.wait_exit(Duration::from_secs(20)).expect("the server never exited");
    assert!(status.success(), "{status:?}");
    assert_eq!(count(&db, "event_id LIKE 's%'"), 20);
}
