//! `GET /ready`: whether this worker can serve requests that need storage.
//!
//! Readiness asks both stores for a real round-trip — an empty batch (just a
//! Sync) on the worker's PostgreSQL read connection and a PING on its Redis
//! connection, at once — rather than trusting that a socket is open: a
//! server that hangs is not ready. It also needs to be able to make IDs:
//! every write that creates a row (users, articles, videos) needs one, so a
//! node still leasing its id, one that lost its lease, or one waiting out its
//! ID horizon (`ids::horizon`) is not ready either (a balancer would
//! otherwise send it writes it must refuse).
//!
//! Redis is only a cache (every read goes to PostgreSQL when it is away), so
//! Redis down is not "not ready": the answer is 200 with `"status":"degraded"`
//! and `"redis":"down"` (`"off"` when none is configured). 503, naming each
//! that does not answer, when PostgreSQL is away or there is no node id.
//! `/health` stays the constant liveness answer that needs nothing.

use swiftlet_protocol::Status;

use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::response::{Response, JSON};

pub async fn ready(core: &Core, res: &mut Response<'_>) -> Result<(), AppError> {
    let storage = &core.storage;
    let postgres = async {
        match storage.pg.for_reads() {
            Ok(pg) => pg.run(|_| Ok(())).await.is_ok(),
            Err(_) => false,
        }
    };
    let redis = async { storage.redis.call(&[b"PING"]).await.is_ok() };
    let (postgres_up, redis_up) = tokio::join!(postgres, redis);
    let ids_up = crate::ids::available();
    if !(postgres_up && ids_up) {
        return Err(AppError::NotReady { postgres: postgres_up, redis: redis_up, ids: ids_up });
    }
    let body: &'static [u8] = match (redis_up, storage.redis.is_configured()) {
        (true, _) => br#"{"status":"ready","postgres":"up","redis":"up","ids":"up"}"#,
        (false, true) => br#"{"status":"degraded","postgres":"up","redis":"down","ids":"up"}"#,
        (false, false) => br#"{"status":"ready","postgres":"up","redis":"off","ids":"up"}"#,
    };
    res.send_static(Status::OK, JSON, body);
    Ok(())
}
