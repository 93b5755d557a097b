//! Run-time configuration: command-line flags, each with an environment
//! fallback, so scripts and users start every version of swiftlet the same way.
//!
//! Every limit and timeout the server enforces is here, with the default a
//! production deployment would want; nothing else in `src/` hard-codes one.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use swiftlet_protocol::HeadLimits;

/// swiftlet: a thread-per-core HTTP/1.1 backend.
///
/// Each worker thread runs its own single-threaded runtime with its own
/// SO_REUSEPORT listener; a connection lives and dies on one worker.
#[derive(Debug, Clone, Parser)]
#[command(name = "swiftlet", version, about, long_about = None)]
pub struct Config {
    /// Address and port to listen on. Port 0 picks a free port, which is then logged.
    #[arg(long, env = "SWIFTLET_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Worker threads, each with its own runtime and listener [default: available cores].
    #[arg(long, env = "SWIFTLET_WORKERS")]
    pub workers: Option<usize>,

    /// Pin worker i to core i (mod the number of cores).
    #[arg(long, env = "SWIFTLET_PIN", default_value_t = false)]
    pub pin: bool,

    /// First core to pin to, when --pin is given: worker i goes to core (first + i).
    #[arg(long, env = "SWIFTLET_FIRST_CORE", default_value_t = 0)]
    pub first_core: usize,

    /// Most open connections per worker; beyond it new connections get 503 and
    /// are closed [default: what the file-descriptor limit, raised to its hard
    /// limit at start, leaves after the stores' connections, at most 50,000].
    #[arg(long, env = "SWIFTLET_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Seconds allowed to receive a request head, counted from accept and from the
    /// first byte of each later request (408 after).
    #[arg(long, env = "SWIFTLET_HEADER_TIMEOUT", default_value = "10", value_parser = parse_seconds)]
    pub header_timeout: Duration,

    /// Seconds a request body may go without progress (408 after).
    #[arg(long, env = "SWIFTLET_BODY_TIMEOUT", default_value = "30", value_parser = parse_seconds)]
    pub body_timeout: Duration,

    /// Seconds a whole request body read into memory (JSON, log events) may
    /// take from its first wait, however steadily it trickles (408 after).
    #[arg(long, env = "SWIFTLET_BODY_DEADLINE", default_value = "60", value_parser = parse_seconds)]
    pub body_deadline: Duration,

    /// Slowest average rate, in bytes per second, a streamed upload may
    /// arrive at: it must end within the body deadline plus its length at this
    /// rate (408 after).
    #[arg(long, env = "SWIFTLET_MIN_UPLOAD_RATE", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_upload_rate: u64,

    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, env = "SWIFTLET_IDLE_TIMEOUT", default_value = "60", value_parser = parse_seconds)]
    pub idle_timeout: Duration,

    /// Seconds to finish requests in flight after SIGINT/SIGTERM before exiting anyway.
    #[arg(long, env = "SWIFTLET_SHUTDOWN_TIMEOUT", default_value = "10", value_parser = parse_seconds)]
    pub shutdown_timeout: Duration,

    /// Largest request head (request line and headers) in bytes (431 beyond).
    #[arg(long, env = "SWIFTLET_MAX_HEAD_BYTES", default_value_t = 16 * 1024)]
    pub max_head_bytes: usize,

    /// Most request header lines (431 beyond; at most 128).
    #[arg(long, env = "SWIFTLET_MAX_HEADERS", default_value_t = 64, value_parser = parse_max_headers)]
    pub max_headers: usize,

    /// Longest request target in bytes (414 beyond).
    #[arg(long, env = "SWIFTLET_MAX_TARGET_LEN", default_value_t = 8 * 1024)]
    pub max_target_len: usize,

    /// Largest body accepted by POST /ingest, in bytes (413 beyond).
    #[arg(long, env = "SWIFTLET_INGEST_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub ingest_body_limit: u64,

    /// Largest body accepted by POST /ingest/batch (NDJSON), in bytes (413 beyond).
    #[arg(long, env = "SWIFTLET_INGEST_BATCH_BODY_LIMIT", default_value_t = 4 * 1024 * 1024)]
    pub ingest_batch_body_limit: u64,

    /// When POST /ingest answers 202: "durable" once the event's batch has
    /// committed to PostgreSQL, "queued" as soon as it is queued.
    #[arg(long, env = "SWIFTLET_INGEST_ACK", value_enum, default_value = "durable")]
    pub ingest_ack: crate::ingest::AckMode,

    /// Events per ingest batch: a batch commits when it has this many...
    #[arg(long, env = "SWIFTLET_INGEST_BATCH_EVENTS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub ingest_batch_events: u32,

    /// ...or when its first event is this many milliseconds old. 0 (the default)
    /// takes a batch as soon as the writer is free: events that arrive while one
    /// batch commits form the next, which measured best for throughput and p99
    /// (perf/RESULTS.md, IDs and ingestion). Each worker commits its own batches.
    #[arg(long, env = "SWIFTLET_INGEST_BATCH_MS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=60_000))]
    pub ingest_batch_ms: u32,

    /// Most events a worker holds uncommitted; beyond it ingestion answers 503
    /// with Retry-After, so memory stays bounded while the database is slow or down.
    #[arg(long, env = "SWIFTLET_INGEST_QUEUE_EVENTS", default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub ingest_queue_events: u32,

    /// Most bytes of log events (as encoded for COPY) a worker holds
    /// uncommitted; beyond it ingestion answers 503 like a full queue.
    #[arg(long, env = "SWIFTLET_INGEST_QUEUE_BYTES", default_value_t = 32 << 20, value_parser = parse_queue_bytes)]
    pub ingest_queue_bytes: usize,

    /// Milliseconds an ingest request waits for room in a full queue before its
    /// 503, so a queue that is full only until the current batch commits slows
    /// clients down instead of refusing them.
    #[arg(long, env = "SWIFTLET_INGEST_FULL_WAIT_MS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=60_000))]
    pub ingest_full_wait_ms: u32,

    /// Initial size of each connection's read and write buffers, in bytes. They grow
    /// for larger messages; small keeps memory per idle or busy connection low.
    #[arg(long, env = "SWIFTLET_BUFFER_SIZE", default_value_t = 1024, value_parser = parse_buffer_size)]
    pub buffer_size: usize,

    /// Serve the fault-injection routes /__test/panic and /__test/sleep, which the
    /// test suite uses to check panic recovery and graceful shutdown. Never in production.
    #[arg(long, env = "SWIFTLET_TEST_ROUTES", default_value_t = false)]
    pub test_routes: bool,

    /// PostgreSQL to use, as a URL or key=value string. Empty: no database
    /// (database routes answer 503).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/swiftlet")]
    pub database_url: String,

    /// PostgreSQL connections per worker, each pipelined, many batches in flight
    /// on each. Reads go to the first; writes to the least loaded, so several
    /// commits proceed at once (4 measured best for /updates on 2 cores).
    #[arg(long, env = "SWIFTLET_PG_CONNECTIONS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub pg_connections: u16,

    /// Redis to use as the cache, as redis://[:password@]host[:port][/db]. Empty: no
    /// cache (every lookup is a miss).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Seconds a database or cache call may take, connecting included, before the
    /// request gets 503 (or, for the cache, a miss).
    #[arg(long, env = "SWIFTLET_STORAGE_TIMEOUT", default_value = "5", value_parser = parse_seconds)]
    pub storage_timeout: Duration,

    /// Seconds a cached World row lives in Redis.
    #[arg(long, env = "SWIFTLET_CACHE_TTL", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub cache_ttl: u32,

    /// Secret that signs the API's tokens (HS256), at least 32 bytes. Required
    /// unless --dev is given. Every node of a deployment needs the same one.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Days an API token stays valid after login or registration.
    #[arg(long, env = "SWIFTLET_TOKEN_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub token_days: u32,

    /// Development mode: without JWT_SECRET, generate a random secret for this
    /// run (tokens then die with the process). Never in production.
    #[arg(long, env = "SWIFTLET_DEV", default_value_t = false)]
    pub dev: bool,

    /// Tokens that open the log service (POST /ingest, POST /ingest/batch, GET
    /// /api/logs) to `Authorization: Bearer <token>`, comma-separated so one can
    /// be rotated in before the old one goes. Without any, the log service
    /// answers 403, unless --dev opens it to everyone.
    #[arg(long, env = "SWIFTLET_INGEST_TOKEN", hide_env_values = true)]
    pub ingest_token: Option<String>,

    /// Origins whose browser front ends may read the product API's answers
    /// (Access-Control-Allow-Origin): `*` for any, or a comma-separated list of
    /// origins such as `https://app.example.com`. The log service and the
    /// operations and benchmark routes never carry CORS headers.
    #[arg(long, env = "SWIFTLET_CORS_ORIGIN", default_value = "*")]
    pub cors_origin: String,

    /// Serve /metrics, /ready and /health on this address (only those), and
    /// no /metrics on the public listener.
    #[arg(long, env = "SWIFTLET_OPS_LISTEN")]
    pub ops_listen: Option<SocketAddr>,

    /// Do not serve the TechEmpower routes (/plaintext, /json, /db, /queries,
    /// /updates, /fortunes, /cached-queries): 404.
    #[arg(long, env = "SWIFTLET_NO_BENCHMARK_ROUTES", default_value_t = false)]
    pub no_benchmark_routes: bool,

    /// Failed logins an account may have in a burst; one more is allowed
    /// for every minute / this number after that (429 with Retry-After beyond).
    #[arg(long, env = "SWIFTLET_LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_failures_per_account: u32,

    /// Failed logins one client address may have in a burst, refilled at
    /// this many per minute (429 with Retry-After beyond).
    #[arg(long, env = "SWIFTLET_LOGIN_FAILURES_PER_ADDRESS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_failures_per_address: u32,

    /// Threads that hash and check passwords, off the workers [default: half the cores, at least 1].
    #[arg(long, env = "SWIFTLET_HASH_THREADS")]
    pub hash_threads: Option<usize>,

    /// Largest JSON body the product API accepts, in bytes (413 beyond).
    #[arg(long, env = "SWIFTLET_API_BODY_LIMIT", default_value_t = 256 * 1024)]
    pub api_body_limit: u64,

    /// Bit layout of the IDs /api/ids makes.
    #[arg(long, env = "SWIFTLET_ID_LAYOUT", value_enum, default_value = "sonyflake")]
    pub id_layout: crate::ids::Layout,

    /// Epoch of the IDs' time field, in Unix milliseconds [default: 2014-09-01T00:00:00Z, Sonyflake's].
    #[arg(long, env = "SWIFTLET_ID_EPOCH", default_value_t = 1_409_529_600_000)]
    pub id_epoch: u64,

    /// Low bits of the IDs' machine field that number the worker; the rest number
    /// the node. Every node of a fleet must use the same value.
    #[arg(long, env = "SWIFTLET_ID_CORE_BITS", default_value_t = 4)]
    pub id_core_bits: u32,

    /// This node's id in the IDs' machine field, unique in the fleet. Without
    /// it the node leases one from Redis (and without Redis, /api/ids answers 503).
    #[arg(long, env = "SWIFTLET_NODE_ID")]
    pub node_id: Option<u64>,

    /// Seconds a leased node id lives in Redis unless renewed (renewed every
    /// third of it; IDs stop a quarter of it before expiry if renewals fail).
    #[arg(long, env = "SWIFTLET_ID_LEASE_TTL", default_value = "10", value_parser = parse_seconds)]
    pub id_lease_ttl: Duration,

    /// Seconds the clock may step back before ID generation answers 503 instead
    /// of waiting for it to catch up.
    #[arg(long, env = "SWIFTLET_ID_MAX_BACKWARDS", default_value = "1", value_parser = parse_seconds)]
    pub id_max_backwards: Duration,

    /// Turn off the request counters and latency histogram (`/metrics` then
    /// shows only the gauges). For measuring what metrics cost.
    #[arg(long, env = "SWIFTLET_NO_METRICS", default_value_t = false)]
    pub no_metrics: bool,

    /// Also serve HTTPS on this address (needs --tls-cert and --tls-key).
    #[arg(long, env = "SWIFTLET_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<SocketAddr>,

    /// Certificate chain for HTTPS, PEM (leaf first).
    #[arg(long, env = "SWIFTLET_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// Private key for HTTPS, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SWIFTLET_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Serve only HTTPS: do not listen on --listen.
    #[arg(long, env = "SWIFTLET_TLS_ONLY", default_value_t = false, requires = "tls_listen")]
    pub tls_only: bool,

    /// Directory that keeps uploaded videos when no S3 bucket is configured.
    #[arg(long, env = "SWIFTLET_VIDEO_DIR", default_value = "data/videos")]
    pub video_dir: std::path::PathBuf,

    /// Largest video upload in bytes (413 beyond).
    #[arg(long, env = "SWIFTLET_VIDEO_MAX_BYTES", default_value_t = 4 << 30)]
    pub video_max_bytes: u64,

    /// Bytes all of one user's videos may take together (413 beyond); 0 for no quota.
    #[arg(long, env = "SWIFTLET_VIDEO_QUOTA_BYTES", default_value_t = 10 << 30)]
    pub video_quota_bytes: u64,

    /// Size of each part an upload is sent to storage in; S3 needs at least 5 MiB.
    /// Memory per upload in progress is about three parts.
    #[arg(long, env = "SWIFTLET_UPLOAD_PART_BYTES", default_value_t = 8 << 20, value_parser = parse_part_bytes)]
    pub upload_part_bytes: usize,

    /// S3 bucket for videos; set it to use S3-compatible storage instead of --video-dir.
    #[arg(long, env = "SWIFTLET_S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// S3 endpoint URL, for storage other than AWS's (MinIO, moto, …) [default: AWS].
    #[arg(long, env = "SWIFTLET_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region.
    #[arg(long, env = "SWIFTLET_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// S3 access key id (better given in the environment than on the command line).
    #[arg(long, env = "SWIFTLET_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,

    /// S3 secret access key (better given in the environment than on the command line).
    #[arg(long, env = "SWIFTLET_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,

    /// Log filter: a level ("warn", "info", "debug") or per-target levels ("info,swiftlet=debug").
    #[arg(long, env = "SWIFTLET_LOG", default_value = "info")]
    pub log: String,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Apply the pending schema migrations to DATABASE_URL and exit.
    Migrate,
    /// Remove stored video objects that no video row names (left by a crash
    /// between an upload's completion and its row), and exit.
    SweepVideos {
        /// Only objects at least this many seconds old: younger ones may be
        /// uploads whose row is being written.
        #[arg(long, default_value = "3600", value_parser = parse_seconds)]
        older_than: Duration,
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write a self-signed certificate and key for localhost (for trying
    /// HTTPS locally; browsers and curl will not trust it without being told to).
    DevCert {
        /// Where to write the certificate (PEM).
        #[arg(long, default_value = "dev-cert.pem")]
        cert: std::path::PathBuf,
        /// Where to write the private key (PEM, mode 600).
        #[arg(long, default_value = "dev-key.pem")]
        key: std::path::PathBuf,
    },
}

impl Config {
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
    }

    pub fn hash_threads(&self) -> usize {
        self.hash_threads.unwrap_or_else(|| self.workers() / 2).max(1)
    }

    /// Where a worker's stores are.
    pub fn store_settings(&self) -> crate::storage::StoreSettings<'_> {
        crate::storage::StoreSettings {
            database_url: &self.database_url,
            pg_connections: self.pg_connections.into(),
            redis_url: &self.redis_url,
            timeout: self.storage_timeout,
            cache_ttl: self.cache_ttl,
        }
    }

    /// Where videos are stored.
    pub fn object_settings(&self) -> crate::storage::objects::ObjectSettings<'_> {
        crate::storage::objects::ObjectSettings {
            video_dir: &self.video_dir,
            part_bytes: self.upload_part_bytes,
            s3_bucket: self.s3_bucket.as_deref(),
            s3_endpoint: self.s3_endpoint.as_deref(),
            s3_region: &self.s3_region,
            s3_access_key_id: self.s3_access_key_id.as_deref(),
            s3_secret_access_key: self.s3_secret_access_key.as_deref(),
        }
    }

    pub fn id_scheme(&self) -> crate::ids::IdScheme {
        crate::ids::IdScheme {
            layout: self.id_layout,
            epoch_ms: self.id_epoch,
            core_bits: self.id_core_bits,
            max_backwards: self.id_max_backwards,
        }
    }

    /// Whether requests are counted for `/metrics`.
    pub fn metrics(&self) -> bool {
        !self.no_metrics
    }

    pub fn ingest_linger(&self) -> Duration {
        Duration::from_millis(self.ingest_batch_ms.into())
    }

    pub fn ingest_full_wait(&self) -> Duration {
        Duration::from_millis(self.ingest_full_wait_ms.into())
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.token_days) * 86_400)
    }

    pub fn head_limits(&self) -> HeadLimits {
        HeadLimits {
            max_head_bytes: self.max_head_bytes,
            max_headers: self.max_headers,
            max_target_len: self.max_target_len,
        }
    }

    /// The defaults, listening on `listen`: for tests and embedding.
    pub fn with_listen(listen: SocketAddr) -> Config {
        let mut c = Config::parse_from(["swiftlet"]);
        c.listen = listen;
        c
    }
}

/// Seconds as a positive decimal number ("10", "0.5").
fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// An upload part size S3 accepts (5 MiB to 5 GiB), or smaller for the
/// local directory, where any size from 64 KiB works.
fn parse_part_bytes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (64 << 10..=5 << 30).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a part size from 65536 to 5368709120 bytes")),
    }
}

/// A queue size in bytes, at least 64 KiB (room for an event of every size).
fn parse_queue_bytes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 64 << 10 => Ok(n),
        _ => Err(format!("{s:?} is not a size of at least 65536 bytes")),
    }
}

/// A header-count limit the parser's fixed array can hold.
fn parse_max_headers(s: &str) -> Result<usize, String> {
    let max = swiftlet_protocol::head::MAX_HEADERS;
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number from 1 to {max}")),
    }
}

/// A buffer size large enough to read a request line into.
fn parse_buffer_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (256..=1 << 20).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a size from 256 to 1048576 bytes")),
    }
}
