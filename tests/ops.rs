//! The operational endpoints against real stores: `/ready` answers 200 only
//! while PostgreSQL and Redis both answer, and names the ones that do not;
//! `/health` answers 200 whatever the stores do.

mod common;

use std::time::Duration;

use common::storage::{eventually, free_port, redis_addr, TestDb};
use common::{Response, TestServer};

fn errors(res: &Response) -> Vec<String> {
    let mut body = res.body.clone();
    let value = simd_json::to_owned_value(&mut body).unwrap_or_else(|e| panic!("{e}: {}", res.text()));
    let errors = simd_json::prelude::ValueAsObject::as_object(&value["errors"]).expect("an errors object").clone();
    let mut keys: Vec<String> = errors.keys().cloned().collect();
    keys.sort();
    keys
}

#[test]
fn ready_only_while_both_stores_answer() {
    let db = TestDb::create();
    let redis_url = format!("redis://{}", redis_addr());
    let server = TestServer::start_with_env(&[], &[("DATABASE_URL", &db.url), ("REDIS_URL", &redis_url)]);
    let mut client = server.connect();
    let ready = eventually(Duration::from_secs(30), || client.get("/ready").status == 200);
    assert!(ready, "never ready; log: {:#?}", server.log_lines());
    let res = client.get("/ready");
    assert_eq!(res.text(), r#"{"status":"ready","postgres":"up","redis":"up"}"#);
    assert_eq!(client.get("/health").status, 200);
}

#[test]
fn not_ready_names_the_store_that_is_away() {
    let db = TestDb::create();
    let nowhere = format!("redis://127.0.0.1:{}", free_port());
    let server =
        TestServer::start_with_env(&["--storage-timeout", "1"], &[("DATABASE_URL", &db.url), ("REDIS_URL", &nowhere)]);
    let mut client = server.connect();
    // Once PostgreSQL is connected, only Redis is named.
    let only_redis = eventually(Duration::from_secs(30), || {
        let res = client.get("/ready");
        res.status == 503 && errors(&res) == ["redis"]
    });
    assert!(only_redis, "{}", client.get("/ready").text());
    assert_eq!(client.get("/health").status, 200);

    // Neither configured: both named, and the liveness check still passes.
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let res = client.get("/ready");
    assert_eq!(res.status, 503);
    assert_eq!(errors(&res), ["postgres", "redis"]);
    assert_eq!(client.get("/health").status, 200);
}
