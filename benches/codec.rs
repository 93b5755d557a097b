//! Micro-benchmarks of the request path's pure parts: parsing a typical head,
//! routing it, decoding a chunked body, reading a log event, and encoding a
//! response.
//!
//! Run: `cargo bench --bench codec`. On a shared machine compare runs made
//! back to back, or count instructions with callgrind (see perf/README.md).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use swiftlet::http::router;
use swiftlet_protocol::{
    Chunked, ChunkedDecoder, ConnectionHeader, HeadLimits, HttpDate, Method, Parse, RequestHead, ResponseHead, Status,
};

/// What wrk sends, plus the headers a browser adds.
const WRK_HEAD: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
const BROWSER_HEAD: &[u8] = b"GET /json HTTP/1.1\r\nHost: localhost:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n\r\n";

fn parse(c: &mut Criterion) {
    let limits = HeadLimits::default();
    let mut g = c.benchmark_group("parse_head");
    for (name, head) in [("wrk", WRK_HEAD), ("browser", BROWSER_HEAD)] {
        g.throughput(Throughput::Bytes(head.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| match RequestHead::parse(black_box(head), &limits) {
                Ok(Parse::Complete(h)) => h,
                _ => unreachable!(),
            })
        });
    }
    g.finish();
}

fn route(c: &mut Criterion) {
    c.bench_function("route", |b| {
        b.iter(|| {
            (
                router::route(Method::Get, black_box(b"/plaintext"), false),
                router::route(Method::Post, black_box(b"/ingest"), false),
                router::route(Method::Get, black_box(b"/no/such/path"), false),
            )
        })
    });
}

/// A log event as the ingestion benchmarks send it.
const EVENT: &[u8] = br#"{"event_id":"0b7c1f3e-5d2a-4c1e-9f00-6a7d8e9f0a1b","timestamp":"2026-11-29T15:00:00.123Z","service":"checkout","message":"payment authorised for order 48213","metadata":{"host":"web-3","region":"eu-west-1","trace":"a1b2c3"}}"#;

fn read_event(c: &mut Criterion) {
    let mut body = EVENT.to_vec();
    let mut g = c.benchmark_group("read_event");
    g.throughput(Throughput::Bytes(EVENT.len() as u64));
    g.bench_function("ingest", |b| {
        b.iter(|| {
            // Parsing is in place: each round reads a fresh copy.
            body.copy_from_slice(EVENT);
            swiftlet::ingest::event::with_payload(black_box(&mut body), |p| Ok(p.timestamp)).unwrap()
        })
    });
    g.finish();
}

fn chunked(c: &mut Criterion) {
    let mut body = Vec::new();
    for _ in 0..16 {
        body.extend_from_slice(format!("{:x}\r\n", 1000).as_bytes());
        body.extend(std::iter::repeat_n(b'x', 1000));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut region = body.clone();
    let mut g = c.benchmark_group("chunked");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("16x1000", |b| {
        b.iter(|| {
            region.copy_from_slice(&body);
            let mut d = ChunkedDecoder::new(1 << 20);
            match d.decode(black_box(&mut region)) {
                Ok(Chunked::Complete { body_len, .. }) => body_len,
                _ => unreachable!(),
            }
        })
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let date = HttpDate::now();
    let mut out = Vec::with_capacity(4096);
    c.bench_function("encode_response", |b| {
        b.iter(|| {
            out.clear();
            ResponseHead {
                status: Status::OK,
                content_type: Some("text/plain; charset=utf-8"),
                content_length: 13,
                connection: ConnectionHeader::Omit,
                date: &date,
            }
            .encode(&mut out);
            out.extend_from_slice(b"Hello, World!");
            black_box(out.len())
        })
    });
    c.bench_function("format_date", |b| b.iter(|| HttpDate::from_unix_secs(black_box(1_763_769_600))));
}

criterion_group!(benches, parse, route, read_event, chunked, encode);
criterion_main!(benches);
