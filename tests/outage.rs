//! PostgreSQL and Redis restarted under a running swiftlet: while the database
//! is down, database routes answer 503 with a JSON body at once (not after a
//! timeout); while Redis is down, the cache is a miss and requests still
//! succeed; when each comes back, swiftlet uses it again by itself.
//!
//! The servers are the test's own (PrivatePostgres, PrivateRedis) so stopping
//! them disturbs nothing else.

mod common;

use std::time::{Duration, Instant};

use common::storage::{eventually, redis, PrivatePostgres, PrivateRedis, TestDb};
use common::TestServer;
use swiftlet_protocol::resp::Reply;

#[test]
fn database_and_cache_restarts() {
    let pg = PrivatePostgres::start();
    let mut cache = PrivateRedis::start();
    let db = TestDb::create_on(&pg.admin_url());
    let redis_url = format!("redis://{}", cache.addr());
    // A long storage timeout, so a 503 that comes fast cannot be a timeout.
    let server = TestServer::start_with_env(
        &["--storage-timeout", "10"],
        &[("DATABASE_URL", &db.url), ("REDIS_URL", &redis_url)],
    );
    let mut client = server.connect();
    assert!(eventually(Duration::from_secs(30), || client.get("/db").status == 200), "{:#?}", server.log_lines());
    assert_eq!(client.get("/cached-queries?count=5").status, 200);
    assert!(eventually(Duration::from_secs(5), || redis(&cache.addr(), &[b"DBSIZE"]) != Reply::Integer(0)));

    // PostgreSQL goes down.
    pg.stop_server();
    for path in ["/db", "/queries?queries=5", "/updates?queries=5", "/fortunes"] {
        // The first request after the stop may race the connection's end; the
        // answer is 503 either way, and quickly.
        let started = Instant::now();
        let res = client.get(path);
        assert_eq!(res.status, 503, "{path}: {}", res.text());
        assert!(res.text().contains(r#""database""#), "{}", res.text());
        assert!(started.elapsed() < Duration::from_secs(5), "{path} took {:?}", started.elapsed());
    }
    // Everything else is unaffected.
    assert_eq!(client.get("/health").status, 200);

    // PostgreSQL comes back on the same port: service resumes by itself.
    pg.start_server();
    assert!(
        eventually(Duration::from_secs(30), || client.get("/db").status == 200),
        "no recovery: {:#?}",
        server.log_lines()
    );
    assert_eq!(client.get("/queries?queries=20").status, 200);

    // Redis goes down: the cache is a miss, the request is still answered.
    cache.stop_server();
    for _ in 0..5 {
        let res = client.get("/cached-queries?count=10");
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.text().matches("randomNumber").count(), 10);
    }
    let res = client.get("/updates?queries=3");
    assert_eq!(res.status, 200, "cache invalidation must not fail an update");

    // Redis comes back (empty: it keeps nothing on disk): rows are cached again.
    cache.start_server();
    let refilled = eventually(Duration::from_secs(30), || {
        client.get("/cached-queries?count=10").status == 200 && redis(&cache.addr(), &[b"DBSIZE"]) != Reply::Integer(0)
    });
    assert!(refilled, "the cache was not used again: {:#?}", server.log_lines());
    let logs = server.log_lines().join("\n");
    assert!(logs.contains("PostgreSQL connection lost"), "{logs}");
    assert!(logs.contains("Redis connection lost"), "{logs}");
}
