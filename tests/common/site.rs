//! swiftlet on a throwaway database and the shared Redis, once the product
//! API answers: the start every API-level test file shares. Each file adds
//! its own request helpers to `Site` (an inherent impl in the same crate).
#![allow(dead_code)]

use std::time::Duration;

use super::storage::{eventually, redis_addr, TestDb};
use super::{Client, Response, TestServer};

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

    /// Sends one request over the site's connection (a new one after the
    /// server closed it) and reads the answer.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n", body.len()).into_bytes();
        if let Some(token) = token {
            raw.extend_from_slice(format!("Authorization: Token {token}\r\n").as_bytes());
        }
        for (name, value) in headers {
            raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(body);
        self.client.send(&raw);
        let res = self.client.read_response_to(method == "HEAD");
        if res.header("connection") == Some("close") {
            self.client = self.server.connect();
        }
        res
    }

    /// Registers `name` (e-mail `name@example.com`) with `password`; returns
    /// the token (the files with their own `register` keep theirs).
    pub fn sign_up(&mut self, name: &str, password: &str) -> String {
        let body =
            format!(r#"{{"user":{{"username":"{name}","email":"{name}@example.com","password":"{password}"}}}}"#);
        let r = self.call("POST", "/api/users", None, &[("Content-Type", "application/json")], body.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        token_in(&r)
    }
}

/// The token in a user document (`"token":"…"`).
pub fn token_in(r: &Response) -> String {
    let text = r.text();
    let start = text.find("\"token\":\"").expect("a token") + 9;
    text[start..start + text[start..].find('"').unwrap()].to_owned()
}
