//! Black-box HTTP/1.1 tests over real sockets: endpoints, framing, smuggling
//! vectors, limits, keep-alive, pipelining and 100-continue.

mod common;

use common::{TestServer, EVENT};

fn json(body: &[u8]) -> String {
    String::from_utf8(body.to_vec()).unwrap()
}

#[test]
fn endpoints() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();

    let r = c.get("/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"{"status":"ok"}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("server"), Some("swiftlet"));
    let date = r.header("date").expect("Date header");
    assert_eq!(date.len(), 29, "{date:?}");
    assert!(date.ends_with(" GMT"));

    let r = c.get("/plaintext");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello, World!"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    let r = c.get("/json");
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"message":"Hello, World!"}"#));
    assert_eq!(r.header("content-length"), Some("27"));
}

#[test]
fn head_gets_headers_without_body() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    c.send(b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_to(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("15"));
    // The next response must follow directly: a body sent for HEAD would show up here.
    let r = c.get("/plaintext");
    assert_eq!(r.text(), "Hello, World!");
}

#[test]
fn unknown_path_is_404_and_wrong_method_405_with_allow() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    let r = c.get("/nope");
    assert_eq!(r.status, 404);
    assert_eq!(json(&r.body), r#"{"errors":{"path":["no such route"]}}"#);
    let r = c.request(b"DELETE /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = c.get("/ingest");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    // Still usable after both.
    assert_eq!(c.get("/health").status, 200);
}

#[test]
fn ingest_with_content_length() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    let req = format!("POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{EVENT}", EVENT.len());
    let r = c.request(req.as_bytes());
    assert_eq!(r.status, 202);
    assert_eq!(r.text(), r#"{"status":"queued"}"#);
    assert_eq!(c.get("/health").status, 200);
}

#[test]
fn ingest_chunked_with_extensions_and_trailers() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    let (a, b) = EVENT.split_at(20);
    let req = format!(
        "POST /ingest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\nX-Checksum: abc\r\n\r\n",
        a.len(),
        b.len()
    );
    let r = c.request(req.as_bytes());
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(c.get("/health").status, 200);
}

#[test]
fn ingest_body_split_across_many_writes() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    c.send(format!("POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", EVENT.len()).as_bytes());
    for piece in EVENT.as_bytes().chunks(7) {
        c.send(piece);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(c.read_response().status, 202);
}

#[test]
fn ingest_bad_json_is_400_and_bad_fields_422() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    let post = |body: &str| format!("POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let r = c.request(post("{\"event_id\":").as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(json(&r.body), r#"{"errors":{"body":["is not valid JSON"]}}"#);
    let r = c.request(post(r#"{"timestamp":1,"service":"s","message":"m","metadata":{}}"#).as_bytes());
    assert_eq!(r.status, 422);
    assert_eq!(json(&r.body), r#"{"errors":{"event_id":["is missing"]}}"#);
    let r = c.request(post(r#"{"event_id":"e","timestamp":1,"service":5,"message":"m","metadata":{}}"#).as_bytes());
    assert_eq!(r.status, 422);
    assert_eq!(json(&r.body), r#"{"errors":{"service":["must be a string"]}}"#);
    // An empty body is not JSON either.
    let r = c.request(b"POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 400);
}

#[test]
fn body_over_route_limit_is_413() {
    let server = TestServer::start(&["--ingest-body-limit", "100"]);
    let mut c = server.connect();
    let r = c.request(b"POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n");
    assert_eq!(r.status, 413);
    assert!(c.is_closed());

    // Chunked: refused as soon as the announced chunks pass the limit.
    let mut c = server.connect();
    let chunk = "a".repeat(64);
    let req = format!("POST /ingest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{chunk}\r\n40\r\n");
    let r = c.request(req.as_bytes());
    assert_eq!(r.status, 413);
    assert!(c.is_closed());

    // A route that takes no body refuses one.
    let mut c = server.connect();
    let r = c.request(b"GET /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.status, 413);
}

/// Each of these must get 400 and a closed connection (RFC 9112 §6.3, §11.2).
#[test]
fn smuggling_vectors_get_400_and_close() {
    let server = TestServer::start(&[]);
    let cases: &[(&str, &[u8])] = &[
        ("TE with CL", b"POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("differing CL", b"POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"),
        ("CL not digits", b"POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nabcd"),
        ("CL hex", b"POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 0x4\r\n\r\nabcd"),
        ("TE gzip", b"POST /ingest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ("TE chunked not final", b"POST /ingest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n"),
        ("TE chunked twice", b"POST /ingest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("TE in 1.0", b"POST /ingest HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("obs-fold", b"GET /health HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n"),
        ("bare CR", b"GET /health HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n"),
        ("space before colon", b"GET /health HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\n"),
        ("invalid header name", b"GET /health HTTP/1.1\r\nHost: t\r\nX@A: b\r\n\r\n"),
        ("invalid header value", b"GET /health HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n"),
        ("missing Host", b"GET /health HTTP/1.1\r\nX: y\r\n\r\n"),
        ("duplicate Host", b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("chunk size not hex", b"POST /ingest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        ("chunk size overflow", b"POST /ingest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n"),
        ("chunk size bare LF", b"POST /ingest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n0\r\n\r\n"),
        ("chunk data too long", b"POST /ingest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"),
    ];
    for (name, raw) in cases {
        let mut c = server.connect();
        c.send(raw);
        let r = c.read_response();
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert_eq!(r.header("connection"), Some("close"), "{name}");
        assert!(r.text().starts_with(r#"{"errors":{"request":[""#), "{name}: {}", r.text());
        assert!(c.is_closed(), "{name}: connection left open");
    }
    // The server keeps serving everybody else.
    assert_eq!(server.connect().get("/health").status, 200);
}

#[test]
fn limits_431_and_414() {
    let server = TestServer::start(&["--max-head-bytes", "1024", "--max-headers", "8", "--max-target-len", "256"]);
    let mut c = server.connect();
    let big = format!("GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(2000));
    let r = c.request(big.as_bytes());
    assert_eq!(r.status, 431);
    assert!(c.is_closed());

    let mut c = server.connect();
    let many: String = (0..9).map(|i| format!("X-{i}: v\r\n")).collect();
    let r = c.request(format!("GET /health HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes());
    assert_eq!(r.status, 431);

    let mut c = server.connect();
    let r = c.request(format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(300)).as_bytes());
    assert_eq!(r.status, 414);

    // Within the limits all is well.
    let mut c = server.connect();
    let few: String = (0..7).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(c.request(format!("GET /health HTTP/1.1\r\nHost: t\r\n{few}\r\n").as_bytes()).status, 200);
}

#[test]
fn keep_alive_rules_of_1_1_and_1_0() {
    let server = TestServer::start(&[]);
    // 1.1: open by default, for many requests.
    let mut c = server.connect();
    for _ in 0..5 {
        let r = c.get("/plaintext");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), None);
    }
    // 1.1 with Connection: close.
    let r = c.request(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
    // 1.0: closed by default.
    let mut c = server.connect();
    let r = c.request(b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
    // 1.0 with keep-alive stays open and says so.
    let mut c = server.connect();
    for _ in 0..3 {
        let r = c.request(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    let paths = ["/plaintext", "/json", "/health", "/nope", "/plaintext"];
    let mut batch = Vec::new();
    for _ in 0..20 {
        for p in paths {
            batch.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
    }
    batch.extend_from_slice(
        format!("POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{EVENT}", EVENT.len()).as_bytes(),
    );
    batch.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    c.send(&batch);
    for _ in 0..20 {
        assert_eq!(c.read_response().text(), "Hello, World!");
        assert_eq!(c.read_response().text(), r#"{"message":"Hello, World!"}"#);
        assert_eq!(c.read_response().text(), r#"{"status":"ok"}"#);
        assert_eq!(c.read_response().status, 404);
        assert_eq!(c.read_response().text(), "Hello, World!");
    }
    assert_eq!(c.read_response().status, 202);
    assert_eq!(c.read_response().text(), r#"{"status":"ok"}"#);
}

#[test]
fn expect_100_continue() {
    let server = TestServer::start(&["--ingest-body-limit", "4096"]);
    let mut c = server.connect();
    c.send(
        format!("POST /ingest HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", EVENT.len())
            .as_bytes(),
    );
    let interim = c.read_response();
    assert_eq!(interim.status, 100);
    c.send(EVENT.as_bytes());
    assert_eq!(c.read_response().status, 202);

    // Over the limit: refused at once, no 100.
    let mut c = server.connect();
    let r = c.request(b"POST /ingest HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n");
    assert_eq!(r.status, 413);

    // An expectation we do not know: 417.
    let mut c = server.connect();
    let r = c.request(b"GET /health HTTP/1.1\r\nHost: t\r\nExpect: tea\r\n\r\n");
    assert_eq!(r.status, 417);
}

#[test]
fn http2_and_garbage_are_refused() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.request(b"GET / HTTP/2.0\r\nHost: t\r\n\r\n").status, 505);
    let mut c = server.connect();
    assert_eq!(c.request(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n").status, 400);
}
