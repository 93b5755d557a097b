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
