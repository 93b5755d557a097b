//! Zero heap allocations per keep-alive request after warm-up, measured on the
//! real server (in this process, so one allocator sees both) over a real
//! socket. The client side uses only a fixed stack buffer and blocking
//! std sockets, which do not allocate, so every counted call is the server's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};

use swiftlet::{Config, Server};

struct Counting;

static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, which
// implements the `GlobalAlloc` contract; counting touches only an atomic and
// never the memory handed out, so the contract holds for `Counting` as well.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout the caller gave us, under the same contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` through `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`, as the caller promises.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
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
    let before = CALLS.load(Ordering::SeqCst);
    exchange(stream, request, pipeline, rounds, len);
    let after = CALLS.load(Ordering::SeqCst);
    (after - before, rounds * pipeline)
}

#[test]
fn keep_alive_requests_do_not_allocate_after_warm_up() {
    let mut config = Config::with_listen("127.0.0.1:0".parse().unwrap());
    config.workers = Some(1);
    let server = Server::start(config).unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream.set_nodelay(true).unwrap();

    let plaintext = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n";
    let (allocs, requests) = allocations_per_request(&mut stream, plaintext, 1);
    assert_eq!(allocs, 0, "/plaintext: {allocs} allocations in {requests} keep-alive requests");

    let (allocs, requests) = allocations_per_request(&mut stream, plaintext, 16);
    assert_eq!(allocs, 0, "/plaintext pipelined: {allocs} allocations in {requests} requests");

    let json = b"GET /json HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let (allocs, requests) = allocations_per_request(&mut stream, json, 1);
    assert_eq!(allocs, 0, "/json: {allocs} allocations in {requests} requests");

    let event = br#"{"event_id":"e-1","timestamp":1700000000000,"service":"api","message":"a \"quoted\" line","metadata":{"host":"h1","region":"eu"}}"#;
    let mut ingest = format!("POST /ingest HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", event.len()).into_bytes();
    ingest.extend_from_slice(event);
    let (allocs, requests) = allocations_per_request(&mut stream, &ingest, 1);
    assert_eq!(allocs, 0, "/ingest: {allocs} allocations in {requests} requests");

    drop(stream);
    server.shutdown();
}
