//! Zero heap allocations on the hot paths: the codec on its own (parse a head,
//! decode a chunked body, encode a response), then the real server over a real
//! socket, in this process so one counting allocator sees it. The client side
//! uses only fixed stack buffers and blocking std sockets, which do not
//! allocate, so every counted call is the server's.
//!
//! One test function on purpose: the server's count is global, and a second
//! test running beside it would be counted too. The codec part counts only its
//! own thread's calls.

use std::alloc::System;
use std::io::{Read, Write};
use std::net::TcpStream;

use swiftlet::metrics::allocations::{calls, calls_on_this_thread, Counting};
use swiftlet::Config;
use swiftlet_protocol::{
    Chunked, ChunkedDecoder, ConnectionHeader, HeadLimits, HttpDate, Parse, RequestHead, ResponseHead, Status,
};

#[global_allocator]
static ALLOCATOR: Counting<System> = Counting(System);

/// Sends `request` `rounds` times, `pipeline` per write, reading each batch's
/// responses (each exactly `response_len` bytes) before the next.
fn exchange(stream: &mut TcpStream, request: &[u8], pipeline: usize, rounds: usize, response_len: usize) {
    let mut out = [0u8; 8192];
    let mut inp = [0u8; 16384];
    let batch = request.len() * pipeline;
    for i in 0..pipeline {
        out[i * request.len()..(i + 1) * request.len()].copy_from_slice(request);
    }
    for _ in 0..rounds {
        stream.write_all(&out[..batch]).unwrap();
        let mut got = 0;
        while got < response_len * pipeline {
            let n = stream.read(&mut inp[..]).unwrap();
            assert!(n > 0, "server closed");
            got += n;
        }
        assert_eq!(got, response_len * pipeline);
    }
}

/// Reads one response to learn its exact length (the Date header's length is fixed).
fn response_len(stream: &mut TcpStream, request: &[u8]) -> usize {
    stream.write_all(request).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap();
            let len: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
            if buf.len() >= end + 4 + len {
                assert_eq!(buf.len(), end + 4 + len);
                return buf.len();
            }
        }
    }
}

fn allocations_per_request(stream: &mut TcpStream, request: &[u8], pipeline: usize) -> (usize, usize) {
    let len = response_len(stream, request);
    exchange(stream, request, pipeline, 200, len); // warm-up
    let rounds = 2000;
    let before = calls() as usize;
    exchange(stream, request, pipeline, rounds, len);
    let after = calls() as usize;
    (after - before, rounds * pipeline)
}

fn codec_allocations_in_1000_rounds() -> usize {
    let head = b"POST /ingest?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\n\
Accept: */*\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
    let limits = HeadLimits::default();
    let date = HttpDate::from_unix_secs(1_700_000_000);
    let mut region = Vec::with_capacity(body.len());
    let mut out = Vec::with_capacity(4096);

    // This thread's count only: libtest's main thread may still be allocating
    // after it started this test (seen under load: 4 calls counted here).
    let before = calls_on_this_thread() as usize;
    for _ in 0..1000 {
        let parsed = match RequestHead::parse(head, &limits) {
            Ok(Parse::Complete(h)) => h,
            other => panic!("{other:?}"),
        };
        assert_eq!(parsed.path(head), b"/ingest");
        assert!(parsed.header(head, "user-agent").is_some());

        region.clear();
        region.extend_from_slice(body);
        let mut decoder = ChunkedDecoder::new(1 << 20);
        assert_eq!(decoder.decode(&mut region), Ok(Chunked::Complete { body_len: 11, consumed: body.len() }));
        assert_eq!(&region[..11], b"hello world");

        out.clear();
        ResponseHead {
            status: Status::OK,
            content_type: Some("text/plain"),
            content_length: 13,
            connection: ConnectionHeader::Omit,
            date: &date,
        }
        .encode(&mut out);
        out.extend_from_slice(b"Hello, World!");
    }
    calls_on_this_thread() as usize - before
}

#[test]
fn hot_paths_do_not_allocate_after_warm_up() {
    let allocs = codec_allocations_in_1000_rounds();
    assert_eq!(allocs, 0, "the codec allocated {allocs} times in 1000 rounds");

    let mut config = Config::with_listen("127.0.0.1:0".parse().unwrap());
    config.workers = Some(1);
    // The storage connections' reconnect loops would allocate in the background.
    config.database_url = String::new();
    config.redis_url = String::new();
    // With no database, /ingest can only answer in queued mode: the events
    // collect in the worker's open batch (ample room for this test's 2,400).
    config.ingest_ack = swiftlet::ingest::AckMode::Queued;
    // A fixed node id, so /api/ids issues without Redis.
    config.node_id = Some(1);
    config.jwt_secret = Some("allocation-test-secret-allocation-test".into());
    // Opens the log service without an ingest token.
    config.dev = true;
    let server = swiftlet::app::serve(config).unwrap().server;
    let mut stream = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    stream.set_nodelay(true).unwrap();

    let plaintext = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n";
    let (allocs, requests) = allocations_per_request(&mut stream, plaintext, 1);
    assert_eq!(allocs, 0, "/plaintext: {allocs} allocations in {requests} keep-alive requests");

    let (allocs, requests) = allocations_per_request(&mut stream, plaintext, 16);
    assert_eq!(allocs, 0, "/plaintext pipelined: {allocs} allocations in {requests} requests");

    let json = b"GET /json HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let (allocs, requests) = allocations_per_request(&mut stream, json, 1);
    assert_eq!(allocs, 0, "/json: {allocs} allocations in {requests} requests");

    let ids = b"GET /api/ids HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let (allocs, requests) = allocations_per_request(&mut stream, ids, 1);
    assert_eq!(allocs, 0, "/api/ids: {allocs} allocations in {requests} requests");

    let event = br#"{"event_id":"e-1","timestamp":1700000000000,"service":"api","message":"a \"quoted\" line","metadata":{"host":"h1","region":"eu"}}"#;
    let mut ingest =
        format!("POST /ingest HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", event.len()).into_bytes();
    ingest.extend_from_slice(event);
    // Parsing and appending an event allocate nothing; the only allocations
    // are the batch buffer growing (doubling, so a handful in 2,000 events).
    let (allocs, requests) = allocations_per_request(&mut stream, &ingest, 1);
    assert!(allocs <= 8, "/ingest: {allocs} allocations in {requests} requests");

    drop(stream);
    server.shutdown();
}
