//! The swiftlet binary: parse the configuration, start the workers, run until
//! SIGINT or SIGTERM, then shut down gracefully.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use clap::Parser;
use swiftlet::app::api::password;
use swiftlet::config::Command;
use swiftlet::ids;
use swiftlet::storage::{self, migrations};
use swiftlet::Config;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

#[cfg(not(feature = "count-allocations"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The measuring build (perf/services.py): the same allocator, counted.
#[cfg(feature = "count-allocations")]
#[global_allocator]
static ALLOC: swiftlet::metrics::allocations::Counting<tikv_jemallocator::Jemalloc> =
    swiftlet::metrics::allocations::Counting(tikv_jemallocator::Jemalloc);

/// How long the main thread waits, after the listeners opened, to log
/// whether this node can make IDs (it serves meanwhile).
const ID_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn main() -> std::process::ExitCode {
    let mut config = Config::parse();
    match &config.command {
        Some(Command::Migrate) => return migrate(&config),
        Some(Command::SweepVideos { older_than, dry_run }) => return sweep_videos(&config, *older_than, *dry_run),
        Some(Command::DevCert { cert, key }) => return dev_cert(cert, key),
        None => {}
    }
    let generated_secret = match settle_jwt_secret(&mut config) {
        Ok(generated) => generated,
        Err(why) => {
            eprintln!("swiftlet: {why}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let scheme = config.id_scheme();
    let ids_ok = scheme.check(config.workers()).and_then(|()| match config.node_id {
        Some(node) => scheme.machine(node, 0).map(|_| ()),
        None => Ok(()),
    });
    if let Err(e) = ids_ok {
        eprintln!("swiftlet: ID settings: {e}");
        return std::process::ExitCode::FAILURE;
    }
    // Before the workers, so the first login already finds the configured size.
    password::configure(config.hash_threads());

    if let Err(e) = init_logging(&config) {
        eprintln!("{e}");
        return std::process::ExitCode::FAILURE;
    }
    // One log line per panic instead of the default hook's stderr dump: a
    // handler panic is caught and answered with 500 (see panic_guard).
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        tracing::error!(thread = thread.name().unwrap_or("?"), "{info}");
    }));

    let id_start = std::time::Instant::now();
    start_ids(&config);
    // The listeners open at once: a request that needs an ID in the first
    // moments waits for the lease (ids::issue), and /ready says `ids` until
    // it is held, so a balancer sends nothing before.
    let started = swiftlet::app::serve(config.clone());

    // Return freed memory to the OS from a background thread instead of
    // holding it (glibc-style) or purging on the request path.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "could not enable jemalloc background purging");
    }

    if generated_secret {
        tracing::warn!(
            "DEV MODE: no JWT_SECRET, so tokens are signed with a random secret made for this run; \
             they stop working when it ends and other nodes refuse them. Never run like this in production."
        );
    }

    if started.is_ok() && (config.node_id.is_some() || !config.redis_url.is_empty()) {
        ids::wait_until_available(ID_WAIT);
    }
    log_id_state(&config, id_start.elapsed());

    let swiftlet::app::Serving { server, video_storage } = match started {
        Ok(serving) => serving,
        Err(e) => {
            tracing::error!(listen = %config.listen, error = %e, "could not start");
            return std::process::ExitCode::FAILURE;
        }
    };
    log_listening(&config, &server, video_storage);

    if let Err(e) = wait_for_signal() {
        tracing::error!(error = %e, "could not install signal handlers; stopping");
    }
    tracing::info!("shutting down");
    server.shutdown();
    if !config.database_url.is_empty() {
        ids::horizon::settle(&config.database_url, config.storage_timeout);
    }
    tracing::info!("stopped");
    std::process::ExitCode::SUCCESS
}

/// `swiftlet dev-cert`: a self-signed certificate and key for localhost.
fn dev_cert(cert: &std::path::Path, key: &std::path::Path) -> std::process::ExitCode {
    match swiftlet::server::tls::write_dev_cert(cert, key) {
        Ok(()) => {
            println!("wrote {} and {} (self-signed, for localhost only)", cert.display(), key.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("swiftlet dev-cert: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log lines to stdout, filtered by `--log`.
fn init_logging(config: &Config) -> Result<(), String> {
    // `Targets` takes the "info,swiftlet=debug" syntax without pulling in a regex engine.
    let filter: Targets = match config.log.parse() {
        Ok(filter) => filter,
        Err(e) => {
            return Err(format!("invalid --log filter {:?}: {e}", config.log));
        }
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_target(false).with_ansi(ansi))
        .with(filter)
        .init();
    Ok(())
}

/// Fixes or leases the node id and keeps its horizon, in the background.
fn start_ids(config: &Config) {
    match config.node_id {
        Some(node) => ids::lease::fix(node),
        None if !config.redis_url.is_empty() => ids::lease::lease_in_background(
            config.redis_url.clone(),
            storage::cache_prefix(&config.database_url),
            config.id_scheme().max_node(),
            config.id_lease_ttl,
            config.storage_timeout,
        ),
        None => {}
    }
    if config.database_url.is_empty() {
        ids::horizon::unguarded();
    } else {
        // The migrations first: the horizon's table is one of theirs.
        migrations::apply_in_background(config.database_url.clone(), config.storage_timeout);
        ids::horizon::keep_in_background(
            config.database_url.clone(),
            config.id_scheme().layout.tick_ms(),
            config.storage_timeout,
        );
    }
}

/// Says how this node stands for making IDs, and what it risks.
fn log_id_state(config: &Config, id_wait: std::time::Duration) {
    let waited_ms = id_wait.as_millis() as u64;
    match (config.node_id, ids::lease::current(), ids::available()) {
        (None, None, _) if config.redis_url.is_empty() => {
            tracing::warn!("no --node-id and no Redis to lease one: /api/ids will answer 503")
        }
        (None, None, _) => tracing::warn!(
            waited_ms,
            "no node id leased yet: IDs and row-creating writes answer 503, and /ready says so, until one is"
        ),
        (_, Some(node), false) => tracing::warn!(
            node,
            waited_ms,
            "no ID horizon recorded yet: IDs and row-creating writes answer 503, and /ready says so, until one is"
        ),
        (None, Some(node), true) => tracing::info!(node, waited_ms, "leased a node id for IDs"),
        (Some(_), _, _) => {}
    }
    if config.database_url.is_empty() && (config.node_id.is_some() || !config.redis_url.is_empty()) {
        tracing::warn!(
            "no DATABASE_URL to record the ID horizon in: a restart after the clock steps back can repeat IDs"
        );
    }
}

/// Where the server listens and what it runs with.
fn log_listening(config: &Config, server: &swiftlet::Server, video_storage: &str) {
    match (server.local_addr(), server.tls_addr()) {
        (Some(addr), Some(tls)) => {
            tracing::info!(addr = %addr, tls_addr = %tls, workers = server.workers(), "listening")
        }
        (Some(addr), None) => tracing::info!(addr = %addr, workers = server.workers(), "listening"),
        (None, Some(tls)) => tracing::info!(tls_addr = %tls, workers = server.workers(), "listening (HTTPS only)"),
        (None, None) => unreachable!("the server always has a listener"),
    }
    tracing::info!(storage = video_storage, "video storage");
    tracing::info!(fd_limit = server.fd_limit(), per_worker = server.connection_cap(), "connection cap");
    if let Some(ops) = server.ops_addr() {
        tracing::info!(ops_addr = %ops, "operations listener: /metrics, /ready, /health");
    }
    let tokens = config.ingest_token.as_deref().unwrap_or_default().split(',').filter(|t| !t.trim().is_empty()).count();
    match (tokens, config.dev) {
        (0, true) => tracing::warn!("log service open to everyone: --dev and no --ingest-token; never in production"),
        (0, false) => tracing::warn!("log service off (403): no --ingest-token configured"),
        (n, _) => tracing::info!(tokens = n, "log service needs a bearer token"),
    }
}

/// Makes sure tokens can be signed: a configured secret must be long enough;
/// without one, only --dev may go on, with a random secret for this run.
/// Returns whether the secret was generated.
fn settle_jwt_secret(config: &mut Config) -> Result<bool, String> {
    const MIN_LEN: usize = swiftlet::app::MIN_JWT_SECRET_LEN;
    match &config.jwt_secret {
        Some(secret) if secret.len() >= MIN_LEN => Ok(false),
        Some(_) => Err(format!("JWT_SECRET must be at least {MIN_LEN} bytes (HS256 wants a 256-bit key)")),
        None if config.dev => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a dev secret: {e}"))?;
            config.jwt_secret = Some(bytes.iter().map(|b| format!("{b:02x}")).collect());
            Ok(true)
        }
        None => Err("JWT_SECRET (or --jwt-secret) is required to sign API tokens; \
                     for local development only, start with --dev to use a random one"
            .to_owned()),
    }
}

/// Blocks this (otherwise idle) thread until SIGINT or SIGTERM.
fn wait_for_signal() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let _ = signals.forever().next();
    Ok(())
}

/// `swiftlet sweep-videos`: remove the objects no video row names.
fn sweep_videos(config: &Config, older_than: std::time::Duration, dry_run: bool) -> std::process::ExitCode {
    let fail = |why: String| {
        eprintln!("swiftlet sweep-videos: {why}");
        std::process::ExitCode::FAILURE
    };
    if config.database_url.is_empty() {
        return fail("DATABASE_URL is empty".into());
    }
    let objects = match swiftlet::storage::objects::ObjectStorage::connect(&config.object_settings()) {
        Ok(objects) => objects,
        Err(e) => return fail(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let swept = runtime.block_on(async {
        let client = migrations::connect(&config.database_url, config.storage_timeout).await?;
        swiftlet::app::api::orphans::sweep(&objects, &client, older_than, dry_run).await
    });
    match swept {
        Ok(swept) => {
            for key in &swept.orphans {
                println!("{} {key}", if dry_run { "would remove" } else { "removed" });
            }
            println!(
                "{} of {} objects older than {} s named by no video{}",
                swept.orphans.len(),
                swept.seen,
                older_than.as_secs_f64(),
                if dry_run { " (dry run: nothing removed)" } else { "" }
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `swiftlet migrate`: apply the pending migrations and report them.
fn migrate(config: &Config) -> std::process::ExitCode {
    if config.database_url.is_empty() {
        eprintln!("swiftlet migrate: DATABASE_URL is empty");
        return std::process::ExitCode::FAILURE;
    }
    match migrations::apply_once(&config.database_url, config.storage_timeout) {
        Ok(applied) if applied.is_empty() => {
            println!("schema up to date");
            std::process::ExitCode::SUCCESS
        }
        Ok(applied) => {
            for version in applied {
                println!("applied migration {version}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("swiftlet migrate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
