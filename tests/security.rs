//! The security review, as tests (issue 7): tokens, authorization on every
//! write, injection and traversal attempts, hostile encodings, and what the
//! server lets out in logs and error bodies. Real server, real PostgreSQL and
//! Redis, raw sockets.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::site::Site;
use common::{Response, TEST_JWT_SECRET};

fn start(args: &[&str], env: &[(&str, &str)]) -> Site {
    Site::start(args, env)
}

impl Site {
    /// A request with a JSON body (or none).
    fn call_json(&mut self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Response {
        self.call(method, path, token, &[("Content-Type", "application/json")], body)
    }

    fn register(&mut self, name: &str) -> String {
        let body =
            format!(r#"{{"user":{{"username":"{name}","email":"{name}@example.com","password":"pw-{name}-secret"}}}}"#);
        let res = self.call_json("POST", "/api/users", None, body.as_bytes());
        assert_eq!(res.status, 201, "{}", res.text());
        res.text().split("\"token\":\"").nth(1).unwrap().split('"').next().unwrap().to_string()
    }

    fn user_id(&self, name: &str) -> String {
        self.db.sql(&format!("SELECT id FROM users WHERE username = '{name}'"))[0][0].clone().unwrap()
    }

    fn article(&mut self, token: &str, title: &str) -> String {
        let body = format!(r#"{{"article":{{"title":"{title}","description":"d","body":"b","tagList":["t"]}}}}"#);
        let res = self.call_json("POST", "/api/articles", Some(token), body.as_bytes());
        assert_eq!(res.status, 201, "{}", res.text());
        res.text().split("\"slug\":\"").nth(1).unwrap().split('"').next().unwrap().to_string()
    }
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn sign(key: &[u8], header: &str, claims: &str) -> String {
    use hmac::Mac;
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn tokens_that_are_forged_altered_stale_or_incomplete_are_refused() {
    let mut site = start(&[], &[]);
    site.register("jake");
    let id = site.user_id("jake");
    let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
    let claims = format!(r#"{{"sub":"{id}","exp":{}}}"#, now() + 600);
    let good = sign(TEST_JWT_SECRET.as_bytes(), hs256, &claims);
    assert_eq!(
        site.call_json("GET", "/api/user", Some(&good), b"").status,
        200,
        "the signing helper makes valid tokens"
    );

    let mut bad: Vec<(&str, String)> = Vec::new();
    bad.push(("alg none, no signature", format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims.as_bytes()))));
    bad.push(("alg None", format!("{}.{}.", b64(br#"{"alg":"None"}"#), b64(claims.as_bytes()))));
    // Algorithm confusion: the same secret used as the key of another algorithm
    // (the RS256 case: an HMAC over the token with a public key as secret).
    bad.push(("alg HS512 label", sign(TEST_JWT_SECRET.as_bytes(), r#"{"alg":"HS512"}"#, &claims)));
    bad.push(("alg RS256 label", sign(TEST_JWT_SECRET.as_bytes(), r#"{"alg":"RS256"}"#, &claims)));
    bad.push(("alg ES256 label", sign(TEST_JWT_SECRET.as_bytes(), r#"{"alg":"ES256"}"#, &claims)));
    bad.push(("wrong key", sign(b"another-secret-another-secret-another!", hs256, &claims)));
    // Tampered payload: another user's id under the original signature.
    let sig = good.rsplit('.').next().unwrap();
    let other = format!(r#"{{"sub":"1","exp":{}}}"#, now() + 600);
    bad.push(("tampered payload", format!("{}.{}.{sig}", b64(hs256.as_bytes()), b64(other.as_bytes()))));
    bad.push((
        "expired",
        sign(TEST_JWT_SECRET.as_bytes(), hs256, &format!(r#"{{"sub":"{id}","exp":{}}}"#, now() - 600)),
    ));
    bad.push((
        "not yet valid",
        sign(
            TEST_JWT_SECRET.as_bytes(),
            hs256,
            &format!(r#"{{"sub":"{id}","exp":{},"nbf":{}}}"#, now() + 900, now() + 600),
        ),
    ));
    bad.push(("no exp", sign(TEST_JWT_SECRET.as_bytes(), hs256, &format!(r#"{{"sub":"{id}"}}"#))));
    bad.push(("no sub", sign(TEST_JWT_SECRET.as_bytes(), hs256, &format!(r#"{{"exp":{}}}"#, now() + 600))));
    bad.push((
        "sub not a number",
        sign(TEST_JWT_SECRET.as_bytes(), hs256, &format!(r#"{{"sub":"jake","exp":{}}}"#, now() + 600)),
    ));
    bad.push((
        "sub of nobody",
        sign(TEST_JWT_SECRET.as_bytes(), hs256, &format!(r#"{{"sub":"42","exp":{}}}"#, now() + 600)),
    ));
    bad.push(("two parts", good.rsplit_once('.').unwrap().0.to_string()));
    bad.push(("garbage", "not.a.token".to_string()));
    for (what, token) in &bad {
        let res = site.call_json("GET", "/api/user", Some(token), b"");
        assert_eq!(res.status, 401, "{what}: {}", res.text());
        assert!(res.text().starts_with(r#"{"errors":{"token":["#), "{what}: {}", res.text());
        // Refused on a write too, and nothing was written.
        let res = site.call_json(
            "POST",
            "/api/articles",
            Some(token),
            br#"{"article":{"title":"x","description":"d","body":"b"}}"#,
        );
        assert_eq!(res.status, 401, "{what}");
    }
    assert_eq!(site.db.sql("SELECT count(*) FROM articles")[0][0].as_deref(), Some("0"));
}

#[test]
fn every_write_needs_a_token_and_owned_resources_their_owner() {
    let mut site = start(&[], &[]);
    let ann = site.register("ann");
    let bob = site.register("bob");
    let slug = site.article(&ann, "Owned by ann");
    let comment =
        site.call_json("POST", &format!("/api/articles/{slug}/comments"), Some(&ann), br#"{"comment":{"body":"hi"}}"#);
    assert_eq!(comment.status, 200, "{}", comment.text());
    let comment_id = comment.text().split("\"id\":").nth(1).unwrap().split(',').next().unwrap().to_string();
    let mut video = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    video.extend_from_slice(&[7u8; 2000]);
    let mut raw = format!(
        "POST /api/videos?title=v HTTP/1.1\r\nHost: t\r\nAuthorization: Token {ann}\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\n\r\n",
        video.len()
    )
    .into_bytes();
    raw.extend_from_slice(&video);
    let res = site.client.request(&raw);
    assert_eq!(res.status, 201, "{}", res.text());
    let video_id = res.text().split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();

    // Every write, anonymous: 401, and nothing changes.
    let writes: Vec<(&str, String, &[u8])> = vec![
        ("PUT", "/api/user".into(), br#"{"user":{"bio":"x"}}"#),
        ("POST", "/api/articles".into(), br#"{"article":{"title":"t","description":"d","body":"b"}}"#),
        ("PUT", format!("/api/articles/{slug}"), br#"{"article":{"body":"changed"}}"#),
        ("DELETE", format!("/api/articles/{slug}"), b""),
        ("POST", format!("/api/articles/{slug}/comments"), br#"{"comment":{"body":"x"}}"#),
        ("DELETE", format!("/api/articles/{slug}/comments/{comment_id}"), b""),
        ("POST", format!("/api/articles/{slug}/favorite"), b""),
        ("DELETE", format!("/api/articles/{slug}/favorite"), b""),
        ("POST", "/api/profiles/ann/follow".into(), b""),
        ("DELETE", "/api/profiles/ann/follow".into(), b""),
        ("POST", "/api/videos?title=x".into(), b"\x00\x00\x00\x18ftypisom"),
        ("DELETE", format!("/api/videos/{video_id}"), b""),
    ];
    for (method, path, body) in &writes {
        let res = site.call_json(method, path, None, body);
        assert_eq!(res.status, 401, "{method} {path} without a token: {}", res.text());
    }
    // Owned resources, by someone else: 403, and nothing changes.
    for (method, path, body, resource) in [
        ("PUT", format!("/api/articles/{slug}"), &br#"{"article":{"body":"changed"}}"#[..], "article"),
        ("DELETE", format!("/api/articles/{slug}"), &b""[..], "article"),
        ("DELETE", format!("/api/articles/{slug}/comments/{comment_id}"), &b""[..], "comment"),
        ("DELETE", format!("/api/videos/{video_id}"), &b""[..], "video"),
    ] {
        let res = site.call_json(method, &path, Some(&bob), body);
        assert_eq!(res.status, 403, "{method} {path} by bob: {}", res.text());
        assert!(res.text().contains(&format!(r#"{{"errors":{{"{resource}":"#)), "{}", res.text());
    }
    let counts = site.db.sql(
        "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM comments), (SELECT count(*) FROM videos), \
         (SELECT count(*) FROM favorites), (SELECT count(*) FROM follows), (SELECT body FROM articles)",
    );
    assert_eq!(
        counts[0],
        [Some("1".into()), Some("1".into()), Some("1".into()), Some("0".into()), Some("0".into()), Some("b".into())]
    );
}

/// Strings that would change a query if spliced into SQL.
const INJECTIONS: [&str; 5] = [
    "' OR '1'='1",
    "x'; DROP TABLE users; --",
    "\" OR 1=1 --",
    "1; SELECT pg_sleep(5)",
    "') UNION SELECT password_hash FROM users --",
];

fn pct(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[test]
fn injection_attempts_in_every_string_parameter_are_just_strings() {
    let mut site = start(&[], &[]);
    let ann = site.register("ann");
    site.article(&ann, "Plain article");
    for attack in INJECTIONS {
        let a = pct(attack);
        // Path and query parameters: not found or empty, never an error or a leak.
        for path in [
            format!("/api/profiles/{a}"),
            format!("/api/articles/{a}"),
            format!("/api/articles/{a}/comments"),
            format!("/api/articles?tag={a}"),
            format!("/api/articles?author={a}"),
            format!("/api/articles?favorited={a}"),
            format!("/api/videos?author={a}"),
            format!("/api/logs?service={a}"),
        ] {
            let res = site.call_json("GET", &path, Some(&ann), b"");
            assert!(matches!(res.status, 200 | 404), "{path}: {} {}", res.status, res.text());
            let text = res.text();
            assert!(!text.contains("$argon2"), "{path} leaked a password hash");
            if res.status == 200 && text.starts_with("{\"articles\"") {
                assert!(text.contains("\"articlesCount\":0"), "{path} matched rows: {text}");
            }
        }
        // Body fields: stored and returned verbatim.
        let json_attack = attack.replace('"', "\\\"");
        let body = format!(
            r#"{{"article":{{"title":"{json_attack}","description":"{json_attack}","body":"{json_attack}","tagList":["{json_attack}"]}}}}"#
        );
        let res = site.call_json("POST", "/api/articles", Some(&ann), body.as_bytes());
        assert_eq!(res.status, 201, "{}", res.text());
        assert!(res.text().contains(&format!("\"body\":\"{json_attack}\"")), "{}", res.text());
        let login = format!(r#"{{"user":{{"email":"{json_attack}","password":"{json_attack}"}}}}"#);
        let res = site.call_json("POST", "/api/users/login", None, login.as_bytes());
        assert!(matches!(res.status, 401 | 422), "login with {attack}: {}", res.status);
    }
    // Every table is still there and holds what it should.
    assert_eq!(site.db.sql("SELECT count(*) FROM users")[0][0].as_deref(), Some("1"));
    assert_eq!(
        site.db.sql("SELECT count(*) FROM articles")[0][0].as_deref(),
        Some(&*(INJECTIONS.len() + 1).to_string())
    );
}

#[test]
fn traversal_crlf_nesting_and_bad_utf8_get_clear_errors() {
    let mut site = start(&["--upload-part-bytes", "65536"], &[]);
    let ann = site.register("ann");
    // Path traversal: ids and slugs name rows, never files.
    for path in [
        "/api/videos/..%2F..%2F..%2Fetc%2Fpasswd/content",
        "/api/videos/../../etc/passwd",
        "/api/videos/1%2F..%2F2/content",
        "/api/articles/..%2F..%2Fetc%2Fpasswd",
        "/api/videos/-1/content",
    ] {
        let res = site.call_json("GET", path, None, b"");
        assert!(matches!(res.status, 404 | 400), "{path}: {}", res.status);
        assert!(!res.text().contains("root:"), "{path} served a file");
    }
    // A title full of traversal and CRLF is data: stored, JSON-escaped, and in no header.
    let title = "../../x\r\nSet-Cookie: a=b";
    let mut video = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    video.extend_from_slice(&[1u8; 1000]);
    let mut raw = format!(
        "POST /api/videos?title={} HTTP/1.1\r\nHost: t\r\nAuthorization: Token {ann}\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\n\r\n",
        pct(title),
        video.len()
    )
    .into_bytes();
    raw.extend_from_slice(&video);
    let res = site.client.request(&raw);
    assert_eq!(res.status, 201, "{}", res.text());
    assert!(res.text().contains(r#""title":"../../x\r\nSet-Cookie: a=b""#), "{}", res.text());
    assert!(res.headers.iter().all(|(n, v)| !n.eq_ignore_ascii_case("set-cookie") && !v.contains("a=b")));
    let id = res.text().split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let key = site.db.sql(&format!("SELECT storage_key FROM videos WHERE id = {id}"))[0][0].clone().unwrap();
    assert_eq!(key, format!("videos/{id}.mp4"), "the title reached the storage key");
    // CRLF in a header value we could echo: the Range header is parsed, never copied.
    let res = site.client.request(
        format!("GET /api/videos/{id}/content HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1%0d%0aX-Evil: 1\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(res.status, 200, "an unparseable Range is ignored");
    assert!(res.headers.iter().all(|(n, _)| !n.eq_ignore_ascii_case("x-evil")));
    // A bare CR inside a header value is refused by the codec.
    let res = site.client.request(b"GET /health HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n");
    assert_eq!(res.status, 400);
    site.client = site.server.connect();

    // Deep JSON nesting: a clear 4xx, and the server lives on.
    for depth in [1_000, 100_000] {
        let body = format!(r#"{{"user":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        let res = site.call_json("POST", "/api/users/login", None, body.as_bytes());
        assert!(matches!(res.status, 400 | 413 | 422), "nesting {depth}: {}", res.status);
        assert!(res.text().starts_with(r#"{"errors":"#), "{}", res.text());
    }
    // Invalid UTF-8: in a JSON body, a path segment and a query value.
    let res =
        site.call_json("POST", "/api/users/login", None, b"{\"user\":{\"email\":\"\xff\xfe\",\"password\":\"x\"}}");
    assert!(matches!(res.status, 400 | 422), "{}", res.status);
    assert!(res.text().starts_with(r#"{"errors":"#));
    assert_eq!(site.call_json("GET", "/api/profiles/%ff%fe", None, b"").status, 404);
    let res = site.call_json("GET", "/api/articles?tag=%ff", None, b"");
    assert_eq!(res.status, 422, "{}", res.text());
    assert_eq!(site.call_json("GET", "/health", None, b"").status, 200);
}

#[test]
fn secrets_stay_out_of_logs_and_internals_out_of_error_bodies() {
    let s3_secret = "S3-SECRET-must-not-be-logged";
    let mut site = start(&["--log", "debug"], &[("SWIFTLET_S3_SECRET_ACCESS_KEY", s3_secret)]);
    let token = site.register("ann");
    let login = br#"{"user":{"email":"ann@example.com","password":"pw-ann-secret"}}"#;
    assert_eq!(site.call_json("POST", "/api/users/login", None, login).status, 200);
    let wrong = br#"{"user":{"email":"ann@example.com","password":"wrong-password-123"}}"#;
    assert_eq!(site.call_json("POST", "/api/users/login", None, wrong).status, 401);
    assert_eq!(site.call_json("GET", "/api/user", Some(&format!("{token}x")), b"").status, 401);

    // Failures whose causes are internal: a panic, a database error, the database gone.
    let mut bodies = Vec::new();
    let res = site.call_json("GET", "/__test/panic", None, b"");
    assert_eq!(res.status, 500);
    bodies.push(res.text());
    // A constraint the API does not know: PostgreSQL's message names it.
    site.db.sql("ALTER TABLE articles ADD CONSTRAINT secret_rule_x CHECK (title <> 'boom')");
    let body = br#"{"article":{"title":"boom","description":"d","body":"b"}}"#;
    let res = site.call_json("POST", "/api/articles", Some(&token), body);
    assert_eq!(res.status, 500, "{}", res.text());
    bodies.push(res.text());
    for body in &bodies {
        for leak in [
            "INSERT",
            "secret_rule_x",
            "violates",
            "constraint",
            "postgres",
            "panicked",
            ".rs",
            "/work",
            "/tmp",
            "thread",
        ] {
            assert!(!body.contains(leak), "an error body leaks {leak:?}: {body}");
        }
        assert!(body.starts_with(r#"{"errors":"#), "{body}");
    }

    std::thread::sleep(Duration::from_millis(300));
    let log = site.server.log_lines().join("\n");
    assert!(log.contains("DEBUG") || log.contains("debug"), "the log is not at debug level");
    for secret in [TEST_JWT_SECRET, "pw-ann-secret", "wrong-password-123", s3_secret, token.as_str()] {
        assert!(!log.contains(secret), "the log contains a secret ({}…)", &secret[..8]);
    }
    assert!(!log.contains("$argon2"), "the log contains a password hash");
}
