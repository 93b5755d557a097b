//! swiftlet on a throwaway database and the shared Redis, once the product
//! API answers: the start every API-level test file shares. Each file adds
//! its own request helpers to `Site` (an inherent impl in the same crate).
#![allow(dead_code)]

use std::time::Duration;

use super::storage::{eventually, redis_addr, TestDb};
use super::{Client, TestServer};

pub struct Site {
    pub server: TestServer,
    pub client: Client,
    pub db: TestDb,
}

impl Site {
    /// Ready when the newest migration's table answers (`/api/videos`) and
    /// the node holds a node id for new rows (`/api/ids`).
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Site {
        let db = TestDb::create();
        let redis_url = format!("redis://{}", redis_addr());
        let mut all_env = vec![("DATABASE_URL", db.url.as_str()), ("REDIS_URL", redis_url.as_str())];
        all_env.extend_from_slice(env);
        let server = TestServer::start_with_env(args, &all_env);
        let mut client = server.connect();
        let ready = eventually(Duration::from_secs(30), || {
            client.get("/api/videos").status == 200 && client.get("/api/ids").status == 200
        });
        assert!(ready, "the API never answered; log: {:#?}", server.log_lines());
        Site { server, client, db }
    }
}
