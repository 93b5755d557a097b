//! Real PostgreSQL and Redis for the data-path tests.
//!
//! - [`TestDb`]: a throwaway database on the PostgreSQL the test command
//!   provides (`SWIFTLET_TEST_PG`, the local server by default), dropped when
//!   the test ends. Each test gets its own, so no test sees another's writes,
//!   and the cache keys (prefixed with the database name) are its own too.
//! - [`PrivatePostgres`] and [`PrivateRedis`]: servers of the test's own, on
//!   free ports, for the tests that stop and restart them.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use swiftlet_protocol::resp::{decode_reply, encode_command, Reply};
use swiftlet_protocol::Parse;

/// The maintenance database URL of the PostgreSQL the tests use.
pub fn admin_url() -> String {
    std::env::var("SWIFTLET_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis the tests use, as host:port.
pub fn redis_addr() -> String {
    std::env::var("SWIFTLET_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into())
}

/// Runs `sql` (one or more statements, simple protocol) and returns the rows
/// of the last one as text.
pub fn sql(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e} (run the tests through scripts/test.sh)"));
        let driver = tokio::spawn(connection);
        let messages = client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        drop(client);
        let _ = driver.await;
        let mut rows = Vec::new();
        for m in messages {
            match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    rows.push((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect())
                }
                tokio_postgres::SimpleQueryMessage::CommandComplete(_) => {}
                _ => {}
            }
        }
        rows
    })
}

/// A database of the test's own, dropped (connections and all) at the end.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin: String,
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    pub fn create() -> TestDb {
        TestDb::create_on(&admin_url())
    }

    pub fn create_on(admin: &str) -> TestDb {
        let run = std::env::var("SWIFTLET_TEST_RUN").unwrap_or_else(|_| "local".into());
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let name = format!("swiftlet_test_{run}_{}_{n}", std::process::id());
        sql(admin, &format!("CREATE DATABASE {name}"));
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("admin URL {admin} names no database"),
        };
        TestDb { name, url, admin: admin.to_owned() }
    }

    pub fn sql(&self, statement: &str) -> Vec<Vec<Option<String>>> {
        sql(&self.url, statement)
    }

    /// Transactions committed and rolled back in this database, as
    /// `pg_stat_database` counts them once every session that ran them has
    /// ended: a backend reports its counts at exit at the latest, so this
    /// waits until no session is left on the database (the server using it
    /// must be stopped) and the count has stopped moving. Read from the admin
    /// database, so reading adds nothing.
    pub fn transactions(&self) -> u64 {
        let name = &self.name;
        let sessions = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'");
        let gone = eventually(Duration::from_secs(20), || sql(&self.admin, &sessions)[0][0].as_deref() == Some("0"));
        assert!(gone, "sessions still open on {name} after 20 s");
        let count = format!("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{name}'");
        let read = || -> u64 { sql(&self.admin, &count)[0][0].as_deref().unwrap_or("0").parse().unwrap() };
        let mut last = read();
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(300));
            let now = read();
            if now == last {
                return now;
            }
            last = now;
        }
        panic!("the transaction count of {name} kept moving with no session open");
    }

    /// The (id, randomNumber) of a World row.
    pub fn world(&self, id: i64) -> i64 {
        let rows = self.sql(&format!("SELECT randomnumber FROM world WHERE id = {id}"));
        rows[0][0].as_ref().unwrap().parse().unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            sql(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
        });
    }
}

/// One Redis command over a fresh connection.
pub fn redis(addr: &str, args: &[&[u8]]) -> Reply {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to Redis at {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    encode_command(&mut out, args);
    stream.write_all(&out).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Parse::Complete((reply, _)) = decode_reply(&buf).unwrap() {
            return reply;
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "Redis closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A PostgreSQL cluster of the test's own, under a temporary folder.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let bin = postgres_bin_dir();
        let dir = std::env::temp_dir().join(format!("swiftlet-pg-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap();
            assert!(ok.success(), "chown {}", dir.display());
        }
        let pg = PrivatePostgres { port: free_port(), dir, bin };
        let data = pg.dir.join("data");
        pg.run("initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
        pg.start_server();
        pg
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start_server(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        self.run("pg_ctl", &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w", "-o", &options, "start"]);
    }

    /// A fast shutdown: sessions are ended, as in a restart by an operator.
    pub fn stop_server(&self) {
        let data = self.dir.join("data");
        self.run("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]);
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd.args(args).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ =
            std::panic::catch_unwind(|| self.run("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"]));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where the PostgreSQL server programs are (Debian keeps them out of PATH).
fn postgres_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SWIFTLET_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("no PostgreSQL server programs in /usr/lib/postgresql/*/bin: run the tests through scripts/test.sh, which installs them")
    })
}

/// A Redis server of the test's own.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("swiftlet-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = PrivateRedis { port, dir, child: None };
        redis.start_server();
        redis
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn start_server(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only prctl(2), async-signal-safe, between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().expect("start redis-server (scripts/test.sh installs it)"));
        let addr = self.addr();
        assert!(
            eventually(Duration::from_secs(10), || TcpStream::connect(&addr).is_ok()),
            "redis-server did not start"
        );
    }

    pub fn stop_server(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop_server();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
