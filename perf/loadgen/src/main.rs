//! A fixed-rate HTTP/1.1 load generator that corrects for coordinated omission.
//!
//! Why our own: oha (`-q --latency-correction`) spends so much CPU per request
//! that at 50K requests/s on one core it is itself the bottleneck, and its
//! queueing dominates the p99 it reports for any server. This one does the
//! least work per request that the measurement needs.
//!
//! Model (the one wrk2 made standard): C keep-alive connections share the
//! rate; connection i sends its k-th request at `start + (k + i/C) * C/rate`.
//! A connection has at most one request outstanding; if its response is late,
//! the next request goes out as soon as it can, and its latency is still
//! measured from the time it *should* have been sent. A slow server therefore
//! shows up as latency, not as a lower request rate hiding the stall.
//!
//! Timing: waits longer than 200 us sleep in the kernel; shorter ones spin, so
//! schedule jitter stays in microseconds (tokio's timer works in milliseconds).
//! At high rates the process therefore keeps its core busy: pin it to a core
//! the server does not use.
//!
//! Usage: swiftlet-loadgen URL RATE CONNECTIONS SECONDS [METHOD BODY]
//!        swiftlet-loadgen URL RATE CONNECTIONS SECONDS @mix FILE
//!        swiftlet-loadgen URL RATE CONNECTIONS SECONDS @each FILE
//! With `@mix`, FILE holds whole raw requests separated by NUL bytes (a mixed
//! workload, perf/api.py writes one); connection i sends them in order,
//! starting at request i, so the mix is the same at any rate. With `@each`,
//! connection i sends requests i, i+C, i+2C, ... instead, so each request of
//! the file is sent once until the file runs out (then they repeat): for
//! requests that must differ, such as new log events (perf/services.py).
//! URL then only names the server.
//! Prints one JSON object: requests, achieved_rps, non_2xx, errors, and
//! p50/p90/p99/p999/max latency in milliseconds. The first second is warm-up
//! and is not recorded.

use std::collections::BinaryHeap;
use std::cmp::Reverse;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

struct Connection {
    stream: TcpStream,
    inbox: Vec<u8>,
    /// When the outstanding request should have been sent, if one is outstanding.
    outstanding: Option<Instant>,
    /// When the next request is due.
    due: Instant,
    /// Which request it sends next.
    next: usize,
}

struct Stats {
    latencies_us: Vec<u32>,
    non_2xx: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: {} URL RATE CONNECTIONS SECONDS [METHOD BODY]", args[0]);
        std::process::exit(2);
    }
    let (addr, host, path) = parse_url(&args[1]);
    let rate: f64 = args[2].parse().expect("RATE");
    let conns: usize = args[3].parse().expect("CONNECTIONS");
    let seconds: f64 = args[4].parse().expect("SECONDS");
    let method = args.get(5).map_or("GET", String::as_str);
    let body = args.get(6).map_or("", String::as_str);
    let stride = if method == "@each" { conns } else { 1 };
    let requests: Vec<Vec<u8>> = if method == "@mix" || method == "@each" {
        let file = std::fs::read(body).expect("the @mix FILE");
        file.split(|&b| b == 0).filter(|r| !r.is_empty()).map(<[u8]>::to_vec).collect()
    } else if body.is_empty() {
        vec![format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()]
    } else {
        vec![format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()]
    };
    assert!(!requests.is_empty(), "no requests to send");
    match run(addr, &requests, stride, rate, conns, seconds) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}

fn parse_url(url: &str) -> (SocketAddr, String, String) {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = host.to_socket_addrs().expect("address").next().expect("address");
    assert!(addr.ip().is_loopback(), "loadgen only targets loopback addresses");
    (addr, host.to_string(), path.to_string())
}

fn run(
    addr: SocketAddr,
    requests: &[Vec<u8>],
    stride: usize,
    rate: f64,
    conns: usize,
    seconds: f64,
) -> io::Result<String> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let period = Duration::from_secs_f64(conns as f64 / rate);
    let warmup = Duration::from_secs(1);
    let start = Instant::now() + Duration::from_millis(50);
    let record_from = start + warmup;
    let end = record_from + Duration::from_secs_f64(seconds);

    let mut connections = Vec::with_capacity(conns);
    for i in 0..conns {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        poll.registry().register(&mut stream, Token(i), Interest::READABLE)?;
        let offset = period.mul_f64(i as f64 / conns as f64);
        connections.push(Connection {
            stream,
            inbox: Vec::with_capacity(4096),
            outstanding: None,
            due: start + offset,
            next: i % requests.len(),
        });
    }
    // Connections whose next request is due, earliest first.
    let mut schedule: BinaryHeap<Reverse<(Instant, usize)>> =
        connections.iter().enumerate().map(|(i, c)| Reverse((c.due, i))).collect();
    let mut stats = Stats {
        latencies_us: Vec::with_capacity((rate * seconds * 1.1) as usize),
        non_2xx: 0,
    };
    let mut errors = 0u64;
    let mut chunk = vec![0u8; 64 * 1024];

    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        // Send everything that is due on an idle connection.
        while let Some(&Reverse((due, i))) = schedule.peek() {
            if due > now {
                break;
            }
            schedule.pop();
            let c = &mut connections[i];
            c.outstanding = Some(due);
            c.due = due + period;
            let request = &requests[c.next];
            c.next = (c.next + stride) % requests.len();
            if write_all(&mut c.stream, request).is_err() {
                errors += 1;
            }
        }
        // Wait for responses, or until the next send is due.
        let next_due = schedule.peek().map(|Reverse((d, _))| *d).unwrap_or(end).min(end);
        let wait = next_due.saturating_duration_since(Instant::now());
        let timeout = if wait > Duration::from_micros(200) { Some(wait - Duration::from_micros(100)) } else { Some(Duration::ZERO) };
        poll.poll(&mut events, timeout)?;
        for event in events.iter() {
            let i = event.token().0;
            let c = &mut connections[i];
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed a connection")),
                    Ok(n) => c.inbox.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            while let Some((status, len)) = complete_response(&c.inbox) {
                c.inbox.drain(..len);
                let Some(intended) = c.outstanding.take() else {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "response without a request"));
                };
                let done = Instant::now();
                if intended >= record_from && done < end {
                    let us = done.duration_since(intended).as_micros().min(u32::MAX as u128) as u32;
                    stats.latencies_us.push(us);
                    if !(200..300).contains(&status) {
                        stats.non_2xx += 1;
                    }
                }
                // Its next request: when due, or now if already late.
                schedule.push(Reverse((c.due, i)));
            }
        }
    }

    let lat = &mut stats.latencies_us;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let idx = ((p / 100.0) * (lat.len() - 1) as f64).round() as usize;
        lat[idx] as f64 / 1000.0
    };
    let measured = end.duration_since(record_from).as_secs_f64();
    Ok(format!(
        "{{\"requests\":{},\"achieved_rps\":{:.1},\"non_2xx\":{},\"errors\":{},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3}}}",
        lat.len(),
        lat.len() as f64 / measured,
        stats.non_2xx,
        errors,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        pct(100.0)
    ))
}

fn write_all(stream: &mut TcpStream, mut buf: &[u8]) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1);
    while !buf.is_empty() {
        match stream.write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// If `buf` starts with a whole response: its status and total length.
fn complete_response(buf: &[u8]) -> Option<(u16, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = &buf[..head_end];
    let status = std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()?;
    let mut length = 0usize;
    for line in head.split(|&b| b == b'\n') {
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            length = std::str::from_utf8(&line[15..]).ok()?.trim().parse().ok()?;
        }
    }
    (buf.len() >= head_end + length).then_some((status, head_end + length))
}
