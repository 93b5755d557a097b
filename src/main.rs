//! The swiftlet binary: parse the configuration, start the workers, run until
//! SIGINT or SIGTERM, then shut down gracefully.

use clap::Parser;
use swiftlet::{Config, Server};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    // Before anything else that could take a moment: bind and start the
    // workers, so their runtimes start up while this thread sets up logging.
    let started = Server::start(config.clone());

    // `Targets` takes the "info,swiftlet=debug" syntax without pulling in a regex engine.
    let filter: Targets = match config.log.parse() {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("invalid --log filter {:?}: {e}", config.log);
            return std::process::ExitCode::FAILURE;
        }
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_target(false).with_ansi(ansi))
        .with(filter)
        .init();

    // One log line per panic instead of the default hook's stderr dump: a
    // handler panic is caught and answered with 500 (see panic_guard).
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        tracing::error!(thread = thread.name().unwrap_or("?"), "{info}");
    }));

    // Return freed memory to the OS from a background thread instead of
    // holding it (glibc-style) or purging on the request path.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "could not enable jemalloc background purging");
    }

    let server = match started {
        Ok(server) => server,
        Err(e) => {
            tracing::error!(listen = %config.listen, error = %e, "could not start");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %server.local_addr(), workers = server.workers(), "listening");

    if let Err(e) = wait_for_signal() {
        tracing::error!(error = %e, "could not install signal handlers; stopping");
    }
    tracing::info!("shutting down");
    server.shutdown();
    tracing::info!("stopped");
    std::process::ExitCode::SUCCESS
}

/// Blocks this (otherwise idle) thread until SIGINT or SIGTERM.
fn wait_for_signal() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let _ = signals.forever().next();
    Ok(())
}
