//! Who may reach what, over real sockets: the log service behind its tokens,
//! CORS only on the product API and only for the configured origins, the
//! operations listener, the benchmark routes turned off, logins throttled,
//! and tokens that die with a password change.

mod common;

use std::time::Duration;

use common::site::{token_in, Site};
use common::{Client, Response, TestServer, EVENT};

fn post_event(client: &mut Client, path: &str, authorization: Option<&str>) -> Response {
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    client.request(
        format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{EVENT}",
            EVENT.len()
        )
        .as_bytes(),
    )
}

fn get(client: &mut Client, path: &str, headers: &str) -> Response {
    client.request(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").as_bytes())
}

#[test]
fn the_log_service_needs_one_of_its_tokens() {
    let server =
        TestServer::start_with_env(&[], &[("SWIFTLET_INGEST_TOKEN", "old-token,new-token"), ("SWIFTLET_DEV", "false")]);
    let mut client = server.connect();
    for auth in [None, Some("Bearer wrong"), Some("Bearer old-tokenx"), Some("Token old-token"), Some("old-token")] {
        let r = post_event(&mut client, "/ingest", auth);
        assert_eq!(r.status, 401, "{auth:?}: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert!(r.text().contains("authorization"), "{}", r.text());
    }
    // Both tokens work while the old one is rotated out; no CORS on the log service.
    for token in ["old-token", "new-token"] {
        let r = post_event(&mut client, "/ingest", Some(&format!("Bearer {token}")));
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), None);
    }
    let r = get(&mut client, "/api/logs", "Origin: https://app.example\r\n");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = get(&mut client, "/api/logs", "Authorization: Bearer new-token\r\nOrigin: https://app.example\r\n");
    // No database here: past the token, the read itself is unavailable.
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), None);
    // A browser's preflight for the log service is not granted.
    let r = client.request(b"OPTIONS /api/logs HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n");
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn without_a_token_the_log_service_is_off_unless_dev() {
    let server = TestServer::start_with_env(&[], &[("SWIFTLET_DEV", "false")]);
    let mut client = server.connect();
    let r = post_event(&mut client, "/ingest", Some("Bearer anything"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("ingest token"), "{}", r.text());
    assert!(server.log_lines().iter().any(|l| l.contains("log service off")), "{:#?}", server.log_lines());

    let dev = TestServer::start_with_env(&[], &[("SWIFTLET_DEV", "true")]);
    assert_eq!(post_event(&mut dev.connect(), "/ingest", None).status, 202);
    assert!(dev.log_lines().iter().any(|l| l.contains("log service open to everyone")));
}

#[test]
fn cors_answers_the_configured_origins_on_the_api_only() {
    // Default: any origin may read the product API; nothing else carries CORS.
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let r = get(&mut client, "/api/tags", "Origin: https://app.example\r\n");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{:?}", r.headers);
    for path in ["/health", "/plaintext", "/metrics"] {
        assert_eq!(
            get(&mut client, path, "Origin: https://app.example\r\n").header("access-control-allow-origin"),
            None
        );
    }
    assert_eq!(post_event(&mut client, "/ingest", None).header("access-control-allow-origin"), None);

    // A list: a listed origin is echoed, with Vary; another gets none.
    let server = TestServer::start(&["--cors-origin", "https://app.example, https://admin.example:8443"]);
    let mut client = server.connect();
    for origin in ["https://app.example", "https://admin.example:8443"] {
        let r = get(&mut client, "/api/tags", &format!("Origin: {origin}\r\n"));
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("vary"), Some("Origin"));
    }
    for headers in ["Origin: https://evil.example\r\n", ""] {
        let r = get(&mut client, "/api/tags", headers);
        assert_eq!(r.header("access-control-allow-origin"), None, "{headers:?}");
        assert_eq!(r.header("vary"), Some("Origin"));
    }
    let r = client.request(b"OPTIONS /api/articles HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n");
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
    assert!(r.header("access-control-allow-methods").is_some());
}

#[test]
fn the_ops_listener_and_the_benchmark_routes_can_leave_the_public_one() {
    let ops_port = common::storage::free_port();
    let ops = format!("127.0.0.1:{ops_port}");
    let server = TestServer::start(&["--ops-listen", &ops, "--no-benchmark-routes"]);
    let mut public = server.connect();
    for path in ["/metrics", "/plaintext", "/json", "/db", "/queries", "/updates", "/fortunes", "/cached-queries"] {
        assert_eq!(get(&mut public, path, "").status, 404, "{path} on the public listener");
    }
    assert_eq!(get(&mut public, "/health", "").status, 200);
    let mut ops = Client::connect_to(ops.parse().unwrap());
    let metrics = get(&mut ops, "/metrics", "");
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("swiftlet_"), "{}", metrics.text());
    assert_eq!(get(&mut ops, "/health", "").status, 200);
    assert_eq!(get(&mut ops, "/ready", "").status, 503, "no stores configured here");
    for path in ["/api/tags", "/plaintext", "/ingest"] {
        assert_eq!(get(&mut ops, path, "").status, 404, "{path} on the ops listener");
    }
}

fn login(site: &mut Site, email: &str, password: &str) -> Response {
    let body = format!(r#"{{"user":{{"email":"{email}","password":"{password}"}}}}"#);
    site.call("POST", "/api/users/login", None, &[("Content-Type", "application/json")], body.as_bytes())
}

#[test]
fn failed_logins_are_throttled_per_account_and_per_address() {
    let mut site = Site::start(&["--login-failures-per-account", "3", "--login-failures-per-address", "5"], &[]);
    site.sign_up("ann", "ann-password");
    site.sign_up("bob", "bob-password");
    for _ in 0..3 {
        assert_eq!(login(&mut site, "ann@example.com", "wrong-guess").status, 401);
    }
    let r = login(&mut site, "ANN@example.com", "wrong-guess");
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Even the right password waits: the account's budget is spent.
    assert_eq!(login(&mut site, "ann@example.com", "ann-password").status, 429);
    // Right passwords cost nothing: Bob logs in as often as he likes.
    for _ in 0..6 {
        assert_eq!(login(&mut site, "bob@example.com", "bob-password").status, 200);
    }
    // The address (every test client is 127.0.0.1) has 5 failures: 3 spent on
    // Ann, 2 more on other accounts, then everyone from here waits.
    assert_eq!(login(&mut site, "carl@example.com", "x-guess-1").status, 401);
    assert_eq!(login(&mut site, "dora@example.com", "x-guess-2").status, 401);
    assert_eq!(login(&mut site, "bob@example.com", "bob-password").status, 429);
}

#[test]
fn a_password_change_ends_the_tokens_issued_before_it() {
    let mut site = Site::start(&["--workers", "2"], &[]);
    let old = site.sign_up("cleo", "cleo-password");
    let json = [("Content-Type", "application/json")];
    assert_eq!(site.call("GET", "/api/user", Some(&old), &[], b"").status, 200);
    // A profile change keeps the token working.
    let r = site.call("PUT", "/api/user", Some(&old), &json, br#"{"user":{"bio":"hi"}}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(token_in(&r), old);
    let r = site.call("PUT", "/api/user", Some(&old), &json, br#"{"user":{"password":"a-new-password"}}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let new = token_in(&r);
    assert_ne!(new, old);
    // On every worker (each has its own copy of the generations, fresh for
    // a few seconds): the old token is dead, the new one works, on fresh
    // connections that may land on either worker.
    std::thread::sleep(Duration::from_secs(6));
    for _ in 0..6 {
        site.client = site.server.connect();
        let r = site.call("GET", "/api/user", Some(&old), &[], b"");
        assert_eq!(r.status, 401, "{}", r.text());
        let r = site.call(
            "POST",
            "/api/articles",
            Some(&old),
            &json,
            br#"{"article":{"title":"t","description":"d","body":"b"}}"#,
        );
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(site.call("GET", "/api/user", Some(&new), &[], b"").status, 200);
    }
    // A login with the new password gives a working token; the old password fails.
    assert_eq!(login(&mut site, "cleo@example.com", "cleo-password").status, 401);
    let r = login(&mut site, "cleo@example.com", "a-new-password");
    assert_eq!(site.call("GET", "/api/user", Some(&token_in(&r)), &[], b"").status, 200);
}
