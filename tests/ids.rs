//! `/api/ids` over real sockets: IDs are unique across the workers of a node
//! and across nodes, increase per worker, decode into the parts they were
//! made from, and are refused clearly without a node id.

mod common;

use std::collections::HashSet;

use common::TestServer;
use simd_json::prelude::*;
use simd_json::OwnedValue as Json;

fn json(body: &[u8]) -> Json {
    let mut bytes = body.to_vec();
    simd_json::to_owned_value(&mut bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

fn ids(server: &TestServer, count: usize) -> Vec<u64> {
    let mut client = server.connect();
    let res = client.get(&format!("/api/ids?count={count}"));
    assert_eq!(res.status, 200, "{}", res.text());
    json(&res.body)["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().parse().unwrap()).collect()
}

#[test]
fn ids_are_strings_that_decode_to_their_node_and_worker() {
    let server = TestServer::start(&["--node-id", "3", "--workers", "2"]);
    let mut client = server.connect();
    let res = client.get("/api/ids");
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json; charset=utf-8"));
    let body = json(&res.body);
    let id = body["id"].as_str().expect("the id is a JSON string");
    let res = client.get(&format!("/api/ids/{id}"));
    assert_eq!(res.status, 200, "{}", res.text());
    let parts = json(&res.body);
    assert_eq!(parts["id"].as_str(), Some(id));
    assert_eq!(parts["layout"].as_str(), Some("sonyflake"));
    assert_eq!(parts["node"].as_u64(), Some(3));
    assert!(parts["core"].as_u64().unwrap() < 2);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let made_ms = parts["unix_ms"].as_u64().unwrap();
    assert!(made_ms <= now_ms && now_ms - made_ms < 10_000, "{made_ms} vs {now_ms}");
    assert!(swiftlet_protocol::date::is_rfc3339_millis(parts["time"].as_str().unwrap()));

    for bad in ["/api/ids?count=0", "/api/ids?count=1001", "/api/ids?count=x"] {
        let res = client.get(bad);
        assert_eq!(res.status, 422, "{bad}: {}", res.text());
        assert!(json(&res.body)["errors"]["count"].is_array());
    }
    for bad in ["/api/ids/abc", "/api/ids/-1", "/api/ids/18446744073709551615"] {
        let res = client.get(bad);
        assert_eq!(res.status, 422, "{bad}: {}", res.text());
    }
}

#[test]
fn ids_are_unique_across_workers_and_nodes_and_increase_per_worker() {
    // Two nodes of two workers each; many connections so both workers serve.
    let a = TestServer::start(&["--node-id", "1", "--workers", "2"]);
    let b = TestServer::start(&["--node-id", "2", "--workers", "2", "--id-layout", "sonyflake"]);
    let mut all = HashSet::new();
    let mut per_machine: std::collections::HashMap<u64, Vec<u64>> = Default::default();
    for round in 0..20 {
        for server in [&a, &b] {
            let batch = ids(server, 1000);
            assert!(batch.windows(2).all(|w| w[0] < w[1]), "a batch comes from one worker, in order (round {round})");
            for id in batch {
                assert!(all.insert(id), "duplicate id {id}");
                per_machine.entry(id & 0xffff).or_default().push(id);
            }
        }
    }
    assert_eq!(all.len(), 40_000);
    // Every worker's IDs, in the order they were handed out, increase.
    for (machine, list) in &per_machine {
        assert!(list.windows(2).all(|w| w[0] < w[1]), "machine {machine:#x} went backwards");
    }
    let nodes: HashSet<u64> = per_machine.keys().map(|m| m >> 4).collect();
    assert_eq!(nodes, HashSet::from([1, 2]));
}

#[test]
fn snowflake_layout_and_no_node_id() {
    let server = TestServer::start(&["--node-id", "5", "--id-layout", "snowflake", "--id-core-bits", "3"]);
    let mut client = server.connect();
    let id = json(&client.get("/api/ids").body)["id"].as_str().unwrap().to_owned();
    let parts = json(&client.get(&format!("/api/ids/{id}")).body);
    assert_eq!(parts["layout"].as_str(), Some("snowflake"));
    assert_eq!(parts["node"].as_u64(), Some(5));

    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let res = client.get("/api/ids");
    assert_eq!(res.status, 503, "{}", res.text());
    assert!(json(&res.body)["errors"]["ids"][0].as_str().unwrap().contains("node id"));
}

#[test]
fn settings_that_could_repeat_ids_refuse_to_start() {
    for args in [
        &["--node-id", "4096"][..],                  // 12 node bits in Sonyflake with 4 core bits
        &["--node-id", "1", "--id-core-bits", "16"], // no node bits left
        &["--node-id", "1", "--id-core-bits", "1", "--workers", "3"], // 3 workers in 1 bit
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_swiftlet"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("JWT_SECRET", common::TEST_JWT_SECRET)
            .env("DATABASE_URL", "")
            .env("REDIS_URL", "")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        assert!(String::from_utf8_lossy(&out.stderr).contains("ID settings"), "{args:?}: {out:?}");
    }
}

fn node_of(server: &TestServer) -> Option<u64> {
    let mut client = server.connect();
    let res = client.get("/api/ids");
    if res.status != 200 {
        return None;
    }
    let id = json(&res.body)["id"].as_str().unwrap().to_owned();
    json(&client.get(&format!("/api/ids/{id}")).body)["node"].as_u64()
}

/// A server that leases its node id from `redis` under `db`'s key prefix.
fn leasing(db: &common::storage::TestDb, redis: &str, args: &[&str]) -> TestServer {
    let url = format!("redis://{redis}");
    TestServer::start_with_env(args, &[("DATABASE_URL", &db.url), ("REDIS_URL", &url)])
}

#[test]
fn ten_million_ids_from_two_leasing_nodes_have_no_duplicate() {
    let db = common::storage::TestDb::create();
    let redis = common::storage::redis_addr();
    // Snowflake: its 4,096 IDs per millisecond per worker let the test finish
    // in seconds; Sonyflake's 256 per 10 ms would make it wait 100 s by design.
    let args = ["--workers", "2", "--id-layout", "snowflake"];
    let a = leasing(&db, &redis, &args);
    let b = leasing(&db, &redis, &args);
    assert!(common::storage::eventually(std::time::Duration::from_secs(10), || node_of(&a).is_some()
        && node_of(&b).is_some()));
    assert_ne!(node_of(&a), node_of(&b), "two nodes leased the same node id");

    const TOTAL: usize = 10_000_000;
    const PER_REQUEST: usize = 1000;
    // Four clients per node, each on its own connection, all at once.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let addr = if t % 2 == 0 { a.addr } else { b.addr };
            std::thread::spawn(move || {
                let mut client = common::Client::connect_to(addr);
                let mut out = Vec::with_capacity(TOTAL / 8);
                while out.len() < TOTAL / 8 {
                    let res = client.get(&format!("/api/ids?count={PER_REQUEST}"));
                    assert_eq!(res.status, 200, "{}", res.text());
                    let body = std::str::from_utf8(&res.body).unwrap();
                    // {"ids":["1","2",...]}: every quoted run of digits.
                    out.extend(
                        body.split('"')
                            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty())
                            .map(|s| s.parse::<u64>().unwrap()),
                    );
                }
                out
            })
        })
        .collect();
    let mut all: Vec<u64> = Vec::with_capacity(TOTAL);
    for t in threads {
        all.extend(t.join().unwrap());
    }
    assert_eq!(all.len(), TOTAL);
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(all.len(), before, "{} duplicates", before - all.len());
}

#[test]
fn a_node_that_loses_its_lease_stops_until_it_has_another() {
    let mut redis = common::storage::PrivateRedis::start();
    let db = common::storage::TestDb::create();
    let server = leasing(&db, &redis.addr(), &["--id-lease-ttl", "0.6"]);
    assert!(common::storage::eventually(std::time::Duration::from_secs(10), || node_of(&server).is_some()));
    let first = node_of(&server).unwrap();

    // Someone else holds our key now: the next renewal fails and the node
    // moves to another id.
    let key = format!("swiftlet:{}:ids:node:{first}", db.name);
    common::storage::redis(&redis.addr(), &[b"SET", key.as_bytes(), b"someone-else", b"PX", b"60000"]);
    let moved =
        common::storage::eventually(std::time::Duration::from_secs(5), || node_of(&server).is_some_and(|n| n != first));
    assert!(moved, "still making IDs as node {first}");

    // Redis goes away: within three quarters of the lease's life the node stops.
    redis.stop_server();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let mut client = server.connect();
    let res = client.get("/api/ids");
    assert_eq!(res.status, 503, "{}", res.text());
    // And starts again once it can lease.
    redis.start_server();
    assert!(common::storage::eventually(std::time::Duration::from_secs(10), || node_of(&server).is_some()));
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The horizon recorded for `node`, if its table and its row exist yet.
fn horizon_of(db: &common::storage::TestDb, node: u64) -> Option<u64> {
    if db.sql("SELECT to_regclass('id_horizons') IS NOT NULL")[0][0].as_deref() != Some("t") {
        return None;
    }
    let rows = db.sql(&format!("SELECT until_ms FROM id_horizons WHERE node = {node}"));
    rows.first().map(|row| row[0].as_ref().unwrap().parse().unwrap())
}

/// The Unix time an ID was made at, asked of the server that made it.
fn made_at(server: &TestServer, id: &str) -> u64 {
    let res = server.connect().get(&format!("/api/ids/{id}"));
    json(&res.body)["unix_ms"].as_u64().unwrap()
}

#[test]
fn a_restart_after_the_clock_stepped_back_waits_instead_of_repeating_ids() {
    let db = common::storage::TestDb::create();
    let env = [("DATABASE_URL", db.url.as_str())];
    let args = ["--node-id", "9"];
    let mut first = TestServer::start_with_env(&args, &env);
    assert!(common::storage::eventually(std::time::Duration::from_secs(10), || node_of(&first) == Some(9)));
    // While it runs, the recorded horizon is ahead of the clock.
    assert!(common::storage::eventually(std::time::Duration::from_secs(10), || horizon_of(&db, 9).is_some()));
    let horizon = horizon_of(&db, 9).unwrap();
    assert!(horizon > unix_ms(), "horizon {horizon} is not ahead of the clock");

    // A clean stop lowers it to the clock, so a plain restart does not wait.
    first.signal("TERM");
    assert!(first.wait_exit(std::time::Duration::from_secs(10)).is_some());
    let lowered = horizon_of(&db, 9).unwrap();
    assert!(lowered <= unix_ms() + 1 && lowered < horizon, "{lowered} vs {horizon}");

    // The wall clock steps back 3 s between the runs (libfaketime, for the
    // second run only): the last run made IDs up to 3 s past what the new
    // run's clock says. It must not make IDs before then: it answers 503 (and
    // /ready says so) and then goes on.
    let ahead = lowered;
    let dir = std::env::temp_dir().join(format!("swiftlet-clock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clock = dir.join("offset");
    std::fs::write(&clock, "-3").unwrap();
    let lib = libfaketime();
    let stepped = [
        ("DATABASE_URL", db.url.as_str()),
        ("LD_PRELOAD", lib.to_str().unwrap()),
        ("FAKETIME_TIMESTAMP_FILE", clock.to_str().unwrap()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let waited = std::time::Instant::now();
    let second = TestServer::start_with_env(&args, &stepped);
    let mut client = second.connect();
    let res = client.get("/api/ids");
    assert_eq!(res.status, 503, "{}", res.text());
    assert!(json(&res.body)["errors"]["ids"][0].as_str().unwrap().contains("clock"), "{}", res.text());
    let res = client.get("/ready");
    assert_eq!(res.status, 503, "{}", res.text());
    assert!(json(&res.body)["errors"]["ids"][0].as_str().unwrap().contains("horizon"), "{}", res.text());
    assert!(second.log_lines().iter().any(|l| l.contains("waiting it out")), "{:?}", second.log_lines());
    let mut id = None;
    assert!(common::storage::eventually(std::time::Duration::from_secs(10), || {
        let res = client.get("/api/ids");
        if res.status == 200 {
            id = Some(json(&res.body)["id"].as_str().unwrap().to_owned());
        }
        id.is_some()
    }));
    // It waited out the 3 s, and its first ID was made a whole tick past the
    // old horizon: its tick is above every tick the last run could have used.
    assert!(waited.elapsed() > std::time::Duration::from_millis(2_500), "{:?}", waited.elapsed());
    let made = made_at(&second, &id.unwrap());
    assert!(made >= ahead / 10 * 10 + 10, "made at {made}, the last run made IDs up to {ahead}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_crashed_node_is_waited_out_for_at_most_the_horizon_it_recorded() {
    let db = common::storage::TestDb::create();
    let env = [("DATABASE_URL", db.url.as_str())];
    let args = ["--node-id", "10", "--id-layout", "snowflake"];
    let first = TestServer::start_with_env(&args, &env);
    assert!(common::storage::eventually(std::time::Duration::from_secs(10), || node_of(&first) == Some(10)));
    let before = ids(&first, 1000);
    drop(first); // SIGKILL: nothing lowers the horizon
    let horizon = horizon_of(&db, 10).unwrap();

    let second = TestServer::start_with_env(&args, &env);
    let started = std::time::Instant::now();
    assert!(common::storage::eventually(std::time::Duration::from_secs(10), || node_of(&second) == Some(10)));
    // It waited for the recorded horizon (up to 5 s ahead of the clock), not for ever.
    assert!(started.elapsed() < std::time::Duration::from_secs(7), "{:?}", started.elapsed());
    let after = ids(&second, 1000);
    assert!(after[0] > *before.last().unwrap(), "the restarted node made an ID below the last run's");
    let final_horizon = horizon_of(&db, 10).unwrap();
    assert!(made_at(&second, &after[0].to_string()) >= horizon, "made before the crashed run's horizon {horizon}");
    assert!(final_horizon > horizon);
}

/// libfaketime, which lets a test step a server's wall clock (Debian's
/// `faketime` package; `scripts/test.sh` installs it).
fn libfaketime() -> std::path::PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .unwrap()
        .flatten()
        .map(|dir| dir.path().join("faketime/libfaketime.so.1"))
        .find(|lib| lib.exists());
    found.expect("libfaketime is not installed (Debian package faketime; scripts/test.sh installs it)")
}

#[test]
fn a_wall_clock_stepped_back_does_not_stretch_a_lease() {
    let mut redis = common::storage::PrivateRedis::start();
    let clock = redis.dir().join("wall-clock-offset");
    std::fs::write(&clock, "+0").unwrap();
    let (lib, redis_url) = (libfaketime(), format!("redis://{}", redis.addr()));
    let server = TestServer::start_with_env(
        &["--id-lease-ttl", "2"],
        &[
            ("REDIS_URL", redis_url.as_str()),
            ("LD_PRELOAD", lib.to_str().unwrap()),
            ("FAKETIME_TIMESTAMP_FILE", clock.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let mut client = server.connect();
    // /ready names "ids" among its problems until the node holds a lease
    // (it has no database, so it is never ready as a whole).
    let holds = |client: &mut common::Client| !client.get("/ready").text().contains(r#""ids""#);
    assert!(common::storage::eventually(std::time::Duration::from_secs(10), || holds(&mut client)));

    // Renewals stop getting through, and the wall clock steps back a minute.
    redis.stop_server();
    let cut = std::time::Instant::now();
    std::fs::write(&clock, "-60").unwrap();
    // The lease ends when Redis's copy could: within three quarters of its
    // 2 s of real time, not a minute later.
    assert!(common::storage::eventually(std::time::Duration::from_secs(10), || !holds(&mut client)));
    let held_for = cut.elapsed();
    assert!(held_for < std::time::Duration::from_millis(2_000), "still leased {held_for:?} after renewals stopped");
    let res = client.get("/api/ids");
    assert_eq!(res.status, 503, "{}", res.text());
}

/// The listener does not wait for the node id: with Redis down at start the
/// server answers /health at once, and an ID asked for in its first moments
/// waits for the lease (taken once Redis is up) instead of being refused.
#[test]
fn the_listener_opens_before_the_lease_and_an_early_id_waits_for_it() {
    let mut redis = common::storage::PrivateRedis::start();
    redis.stop_server();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", common::storage::free_port()).parse().unwrap();
    let video_dir = std::env::temp_dir().join(format!("swiftlet-test-early-ids-{}", std::process::id()));
    // Started by hand: TestServer waits for the log line naming the address,
    // which comes after the start-up wait this test is about.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_swiftlet"))
        .args(["--listen", &addr.to_string(), "--workers", "1"])
        .env("JWT_SECRET", common::TEST_JWT_SECRET)
        .env("DATABASE_URL", "")
        .env("REDIS_URL", format!("redis://{}", redis.addr()))
        .env("SWIFTLET_VIDEO_DIR", &video_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Stop(child);
    let health = || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(addr) else { return false };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let mut head = [0u8; 12];
        s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").is_ok()
            && s.read_exact(&mut head).is_ok()
            && &head == b"HTTP/1.1 200"
    };
    // Before this change the listener opened only once the lease was held
    // or 2 s had passed, and Redis is not even running yet.
    assert!(
        common::storage::eventually(std::time::Duration::from_millis(1500), health),
        "no answer while the lease is pending"
    );
    let asking = std::thread::spawn(move || {
        let mut client = common::Client::connect_to(addr);
        let sent = std::time::Instant::now();
        let res = client.get("/api/ids");
        (res.status, sent.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    redis.start_server();
    let (status, waited) = asking.join().unwrap();
    assert_eq!(status, 200, "the early ID was refused after {waited:?}");
    assert!(waited >= std::time::Duration::from_millis(250), "answered before Redis was up: {waited:?}");
    let _ = std::fs::remove_dir_all(video_dir);
}
