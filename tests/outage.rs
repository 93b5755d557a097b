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

#[test]
fn a_query_that_never_returns_gets_503_after_the_storage_timeout() {
    use common::storage::sql;
    let db = TestDb::create();
    let redis_url = format!("redis://{}", common::storage::redis_addr());
    let server = TestServer::start_with_env(
        &["--storage-timeout", "1"],
        &[("DATABASE_URL", &db.url), ("REDIS_URL", &redis_url)],
    );
    let mut client = server.connect();
    assert!(eventually(Duration::from_secs(30), || client.get("/db").status == 200), "{:#?}", server.log_lines());

    // Another session holds an exclusive lock on `world`, so every read of it waits.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let url = db.url.clone();
    let holder = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            let driver = tokio::spawn(connection);
            client.batch_execute("BEGIN; LOCK TABLE world IN ACCESS EXCLUSIVE MODE").await.unwrap();
            locked.send(()).unwrap();
            let _ = tokio::task::spawn_blocking(move || released.recv()).await;
            client.batch_execute("ROLLBACK").await.unwrap();
            drop(client);
            let _ = driver.await;
        });
    });
    is_locked.recv().unwrap();

    let started = Instant::now();
    let res = client.get("/db");
    let waited = started.elapsed();
    assert_eq!(res.status, 503, "{}", res.text());
    assert_eq!(res.text(), r#"{"errors":{"database":["did not answer in time, try again shortly"]}}"#);
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "answered after {waited:?}");

    // The lock goes; the connection that waited is still usable.
    release.send(()).unwrap();
    holder.join().unwrap();
    assert!(eventually(Duration::from_secs(10), || client.get("/db").status == 200));
    assert_eq!(sql(&db.url, "SELECT count(*) FROM world")[0][0].as_deref(), Some("10000"));
}

/// Answers by status, and the requests that got no answer.
type Tally = (std::collections::BTreeMap<u16, u64>, Vec<String>);

/// Four clients hammering `paths` in turn until stopped; counts answers by
/// status and anything that was not an answer.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Tally>>,
}

impl Load {
    fn start(addr: std::net::SocketAddr, paths: &'static [&'static str]) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..4)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut statuses = std::collections::BTreeMap::new();
                    let mut failures = Vec::new();
                    let mut client = common::Client::connect_to(addr);
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let path = paths[i % paths.len()];
                        i += 1;
                        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client.get(path))) {
                            Ok(res) => *statuses.entry(res.status).or_insert(0) += 1,
                            Err(_) => {
                                failures.push(format!("no answer to {path}"));
                                client = common::Client::connect_to(addr);
                            }
                        }
                    }
                    (statuses, failures)
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn stop(self) -> Tally {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = std::collections::BTreeMap::new();
        let mut failures = Vec::new();
        for t in self.threads {
            let (statuses, f) = t.join().unwrap();
            for (s, n) in statuses {
                *all.entry(s).or_insert(0) += n;
            }
            failures.extend(f);
        }
        (all, failures)
    }
}

#[test]
fn restarts_under_load_answer_503_or_miss_only_while_down_and_leak_no_connection() {
    let pg = PrivatePostgres::start();
    let mut cache = PrivateRedis::start();
    let db = TestDb::create_on(&pg.admin_url());
    let redis_url = format!("redis://{}", cache.addr());
    let server = TestServer::start_with_env(
        &["--workers", "2", "--storage-timeout", "2"],
        &[("DATABASE_URL", &db.url), ("REDIS_URL", &redis_url)],
    );
    let mut client = server.connect();
    assert!(eventually(Duration::from_secs(30), || client.get("/db").status == 200), "{:#?}", server.log_lines());
    let pg_connections = || -> i64 {
        common::storage::sql(
            &pg.admin_url(),
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'", db.name),
        )[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    };
    let redis_clients = |addr: &str| -> i64 {
        match redis(addr, &[b"INFO", b"clients"]) {
            Reply::BulkString(info) => String::from_utf8_lossy(&info)
                .lines()
                .find_map(|l| l.strip_prefix("connected_clients:"))
                .unwrap()
                .trim()
                .parse::<i64>()
                .unwrap(),
            other => panic!("INFO: {other:?}"),
        }
    };
    const PATHS: &[&str] = &["/db", "/queries?queries=3", "/cached-queries?count=5", "/health"];
    // Warm: every worker's connections open. One 200 above says only that
    // one worker's are; on a busy machine the other's may take a moment more
    // (a 503 meanwhile), so a second of load is repeated until it is all 200.
    let mut warm_rounds = Vec::new();
    let all_ok = eventually(Duration::from_secs(30), || {
        let load = Load::start(server.addr, PATHS);
        std::thread::sleep(Duration::from_secs(1));
        let (warm, failures) = load.stop();
        let ok = failures.is_empty() && warm.keys().all(|s| *s == 200);
        warm_rounds.push((warm, failures));
        ok
    });
    assert!(all_ok, "never a second of only 200s: {warm_rounds:?}");
    let pg_before = pg_connections();
    let redis_before = redis_clients(&cache.addr());

    // PostgreSQL stopped and started again under load.
    let load = Load::start(server.addr, PATHS);
    std::thread::sleep(Duration::from_millis(500));
    pg.stop_server();
    std::thread::sleep(Duration::from_secs(2));
    pg.start_server();
    let back = Instant::now();
    assert!(eventually(Duration::from_secs(30), || client.get("/db").status == 200), "no recovery");
    let recovered_in = back.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let (during, failures) = load.stop();
    assert!(failures.is_empty(), "requests that got no answer: {failures:?}");
    assert!(during.keys().all(|s| *s == 200 || *s == 503), "{during:?}");
    assert!(during.get(&503).copied().unwrap_or(0) > 0, "the outage was not seen: {during:?}");
    assert!(recovered_in < Duration::from_secs(10), "recovery took {recovered_in:?}");
    eprintln!("PostgreSQL restart under load: {during:?}, served again {recovered_in:?} after its start");

    // Both workers' PostgreSQL connections back (one 200 above says only one
    // worker's are; the other may still be in its reconnect backoff), so
    // that what follows measures Redis alone.
    let all_back = eventually(Duration::from_secs(30), || {
        let load = Load::start(server.addr, &["/db"]);
        std::thread::sleep(Duration::from_millis(500));
        let (back, failures) = load.stop();
        failures.is_empty() && back.keys().all(|s| *s == 200)
    });
    assert!(all_back, "PostgreSQL never came back on every worker");

    // Redis stopped and started again under load: no errors at all, only misses.
    let load = Load::start(server.addr, &["/cached-queries?count=5", "/health"]);
    std::thread::sleep(Duration::from_millis(500));
    cache.stop_server();
    std::thread::sleep(Duration::from_secs(2));
    cache.start_server();
    std::thread::sleep(Duration::from_secs(2));
    let (during, failures) = load.stop();
    assert!(failures.is_empty() && during.keys().all(|s| *s == 200), "{during:?} {failures:?}");

    // Every connection came back, and only once.
    let settled = eventually(Duration::from_secs(15), || {
        pg_connections() == pg_before && redis_clients(&cache.addr()) == redis_before
    });
    assert!(
        settled,
        "connections before/after: PostgreSQL {pg_before}/{}, Redis {redis_before}/{}",
        pg_connections(),
        redis_clients(&cache.addr())
    );
    eprintln!("connections before and after: PostgreSQL {pg_before}, Redis {redis_before}");
    assert_eq!(client.get("/queries?queries=5").status, 200);
}

/// A Redis that answers the PING of a new connection and then nothing: the
/// first call that gets no reply in the whole timeout gives the connection
/// up, and the cache is bypassed for a while, so requests do not each wait
/// out the timeout.
#[test]
fn a_hung_redis_is_bypassed_after_the_first_timeout() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // The first read holds the connect-time PING: answer it, then never again.
                if stream.read(&mut buf).unwrap_or(0) > 0 {
                    let _ = stream.write_all(b"+PONG\r\n");
                }
                while stream.read(&mut buf).unwrap_or(0) > 0 {}
            });
        }
    });
    let db = TestDb::create();
    let server = TestServer::start_with_env(
        &["--storage-timeout", "1", "--node-id", "1"],
        &[("DATABASE_URL", &db.url), ("REDIS_URL", &format!("redis://{hung}"))],
    );
    let mut client = server.connect();
    assert!(eventually(Duration::from_secs(30), || client.get("/api/tags").status == 200), "{:#?}", server.log_lines());
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(client.get("/api/tags").status, 200);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "10 cached reads took {took:?} beside a hung Redis");
    assert!(server.log_lines().iter().any(|l| l.contains("bypassing the cache")), "{:#?}", server.log_lines());
}

/// A proxy to the shared PostgreSQL whose connections can be made to fail
/// the way networks do: `freeze` stops everything on the connections open
/// when it is called, `mute_answers` only what flows back (statements still
/// arrive and commit; their answers are lost). Connections opened afterwards
/// work normally.
struct PgProxy {
    addr: std::net::SocketAddr,
    /// 0: forward; 1: frozen; 2: answers muted. For connections born before `generation`.
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl PgProxy {
    fn start() -> PgProxy {
        use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
        use std::sync::Arc;
        let upstream: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(0));
        let generation = Arc::new(AtomicU64::new(0));
        let (mode2, generation2) = (Arc::clone(&mode), Arc::clone(&generation));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(upstream) else { continue };
                let born_in = generation2.load(Ordering::SeqCst);
                let directions =
                    [(client.try_clone().unwrap(), server.try_clone().unwrap(), false), (server, client, true)];
                for (mut from, mut to, answers) in directions {
                    let (mode, generation) = (Arc::clone(&mode2), Arc::clone(&generation2));
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16384];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            let old = born_in < generation.load(Ordering::SeqCst);
                            let dropped = match mode.load(Ordering::SeqCst) {
                                1 => old,
                                2 => old && answers,
                                _ => false,
                            };
                            if !dropped && to.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        PgProxy { addr, mode, generation }
    }

    fn url(&self, db: &TestDb) -> String {
        format!("postgres://postgres@{}/{}", self.addr, db.name)
    }

    fn fail_open_connections(&self, mode: u8) {
        use std::sync::atomic::Ordering;
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// Every connection open now goes silent (as after a failover behind a
    /// network that drops the old path).
    fn freeze(&self) {
        self.fail_open_connections(1);
    }

    /// Every connection open now still carries statements, but no answers.
    fn mute_answers(&self) {
        self.fail_open_connections(2);
    }
}

/// A PostgreSQL connection that goes silent (as after a failover behind a
/// network that drops the old path): the first batch that times out with
/// nothing answered replaces the connection, and requests succeed again on
/// the new one instead of each waiting out the timeout.
#[test]
fn a_silent_database_connection_is_replaced() {
    let db = TestDb::create();
    let proxy = PgProxy::start();
    let url = proxy.url(&db);
    let server = TestServer::start_with_env(
        &["--storage-timeout", "1", "--pg-connections", "1", "--node-id", "1"],
        &[("DATABASE_URL", &url), ("REDIS_URL", "")],
    );
    let mut client = server.connect();
    assert!(eventually(Duration::from_secs(30), || client.get("/db").status == 200), "{:#?}", server.log_lines());
    proxy.freeze();
    let started = Instant::now();
    let statuses: Vec<u16> = (0..10)
        .map(|_| {
            let status = client.get("/db").status;
            std::thread::sleep(Duration::from_millis(100));
            status
        })
        .collect();
    let took = started.elapsed();
    let failed = statuses.iter().filter(|&&s| s != 200).count();
    assert!(failed <= 2, "{statuses:?}");
    assert!(took < Duration::from_secs(6), "{statuses:?} took {took:?}");
}

/// A write whose answer is lost (it committed, the call timed out) still
/// invalidates what it made stale: the next anonymous read shows the write,
/// not the cached copy from before it.
#[test]
fn a_write_that_timed_out_but_committed_leaves_no_stale_cache() {
    let db = TestDb::create();
    let proxy = PgProxy::start();
    let url = proxy.url(&db);
    let redis_url = format!("redis://{}", common::storage::redis_addr());
    let server = TestServer::start_with_env(
        &["--storage-timeout", "1", "--pg-connections", "1", "--node-id", "1"],
        &[("DATABASE_URL", &url), ("REDIS_URL", &redis_url)],
    );
    let mut client = server.connect();
    let call = |client: &mut common::Client, method: &str, path: &str, token: Option<&str>, body: &str| {
        let auth = token.map(|t| format!("Authorization: Token {t}\r\n")).unwrap_or_default();
        client.request(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    assert!(
        eventually(Duration::from_secs(30), || client.get("/api/tags").status == 200
            && client.get("/api/ids").status == 200),
        "{:#?}",
        server.log_lines()
    );
    let r = call(
        &mut client,
        "POST",
        "/api/users",
        None,
        r#"{"user":{"username":"kim","email":"kim@example.com","password":"kim-password"}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let token = common::site::token_in(&r);
    let r = call(
        &mut client,
        "POST",
        "/api/articles",
        Some(&token),
        r#"{"article":{"title":"Lost","description":"d","body":"before"}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let path = "/api/articles/lost";
    assert!(client.get(path).text().contains(r#""body":"before""#));
    let key = format!("swiftlet:{}:api:e:article:lost", db.name);
    assert!(
        eventually(Duration::from_secs(5), || matches!(
            redis(&common::storage::redis_addr(), &[b"EXISTS", key.as_bytes()]),
            Reply::Integer(1)
        )),
        "the anonymous read was not cached"
    );

    // The caller's token generation is cached (5 s) by this read, so the
    // write below needs no other database answer before its own.
    assert_eq!(call(&mut client, "GET", "/api/user", Some(&token), "").status, 200);
    proxy.mute_answers();
    let r = call(&mut client, "POST", &format!("{path}/favorite"), Some(&token), "");
    assert_eq!(r.status, 503, "{}", r.text());
    // It did commit.
    assert!(
        eventually(Duration::from_secs(5), || db.sql("SELECT count(*) FROM favorites")[0][0].as_deref() == Some("1"))
    );
    // The next anonymous read (over a new database connection) is not the stale copy.
    let mut read = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            let r = client.get(path);
            read = r.text();
            r.status == 200
        }),
        "{read}"
    );
    assert!(read.contains(r#""favoritesCount":1"#), "served the copy cached before the write: {read}");
}
