//! The application: everything a request reaches once the connection loop
//! has framed it. [`core`] is a worker's application state and the
//! `Service` the server calls; [`dispatch`] maps a route to its handler;
//! [`bench`] holds the TechEmpower routes, [`ops`] the operational ones,
//! [`ids`] and [`ingest`] the ID and log services' routes, and [`api`] the
//! product API. [`serve`] starts the server with it.

pub mod api;
pub mod bench;
pub mod core;
pub mod dispatch;
pub mod ids;
pub mod ingest;
pub mod ops;

use std::io;
use std::sync::Arc;

use crate::config::Config;
use crate::http::router::Route;
use crate::server::Server;
use crate::storage::objects::ObjectStorage;

/// The shortest JWT secret accepted: HS256 wants a 256-bit key.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// A started server, and where it keeps videos ("local" or "s3").
pub struct Serving {
    pub server: Server,
    pub video_storage: &'static str,
}

/// Checks what the application needs of the configuration, then starts the
/// server with a [`core::Core`] on every worker.
pub fn serve(config: Config) -> io::Result<Serving> {
    // Never sign with an empty or short key: a token forged with it would
    // pass. (`main` makes one up for --dev before it gets here.)
    if config.jwt_secret.as_ref().is_none_or(|secret| secret.len() < MIN_JWT_SECRET_LEN) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a JWT secret of at least {MIN_JWT_SECRET_LEN} bytes is required to sign API tokens"),
        ));
    }
    // Each worker builds its own store client; check the configuration
    // once here, so a bad one stops the start with its reason.
    let video_storage = ObjectStorage::connect(&config.object_settings()).map_err(io::Error::other)?.kind;
    crate::metrics::label_routes(&Route::LABELS);
    let logins = Arc::new(api::throttle::LoginThrottle::new(
        config.login_failures_per_account,
        config.login_failures_per_address,
    ));
    let server = Server::start(config, move |index, config: &Config, metrics| {
        core::Core::start(index, config, metrics, Arc::clone(&logins))
    })?;
    Ok(Serving { server, video_storage })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_server_without_a_jwt_secret() {
        let mut config = Config::with_listen("127.0.0.1:0".parse().unwrap());
        config.database_url.clear();
        config.redis_url.clear();
        for secret in [None, Some(String::new()), Some("short".to_owned())] {
            config.jwt_secret = secret;
            let Err(e) = serve(config.clone()) else { panic!("started without a usable JWT secret") };
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
    }
}
