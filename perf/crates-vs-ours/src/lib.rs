//! The pairs measured: for each format, swiftlet's own code and a crate that
//! does the same job, behind the same signature, so the timing loop and the
//! size binaries call both alike. Each pair is checked to agree on the
//! inputs used before anything is timed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use swiftlet_protocol::date::{parse_rfc3339, HttpDate, Rfc3339Millis};
use swiftlet_protocol::media::{Sniff, VideoContainer};
use swiftlet_protocol::range::ByteRange;

/// An HTTP Date header value for `secs`, written into `out`.
pub fn http_date_ours(secs: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(HttpDate::from_unix_secs(secs).as_bytes());
}

pub fn http_date_crate(secs: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "{}", httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs)));
}

/// An RFC 3339 timestamp with milliseconds for `micros`, written into `out`.
pub fn rfc3339_write_ours(micros: i64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(Rfc3339Millis::from_unix_micros(micros).as_str().as_bytes());
}

pub fn rfc3339_write_crate(micros: i64, out: &mut Vec<u8>) {
    use std::io::Write;
    out.clear();
    let time = UNIX_EPOCH + Duration::from_micros(micros as u64);
    let _ = write!(out, "{}", humantime::format_rfc3339_millis(time));
}

/// An RFC 3339 timestamp read back, as microseconds since the epoch.
pub fn rfc3339_read_ours(s: &str) -> Option<i64> {
    parse_rfc3339(s)
}

pub fn rfc3339_read_crate(s: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339(s).ok()?;
    time.duration_since(SystemTime::UNIX_EPOCH).ok().map(|d| d.as_micros() as i64)
}

/// A single-range Range header for a representation of `len` bytes: the
/// first and last byte, or `None` when it does not select a range.
pub fn range_ours(value: &[u8], len: u64) -> Option<(u64, u64)> {
    match ByteRange::parse(Some(value), len) {
        ByteRange::Partial { start, end } => Some((start, end)),
        _ => None,
    }
}

pub fn range_crate(value: &[u8], len: u64) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let ranges = http_range_header::parse_range_header(text).ok()?.validate(len).ok()?;
    match ranges.as_slice() {
        [one] => Some((*one.start(), *one.end())),
        _ => None,
    }
}

/// Whether a file's first bytes are an MP4 or a WebM video.
pub fn sniff_ours(head: &[u8]) -> Option<&'static str> {
    match VideoContainer::sniff(head, true) {
        Sniff::Video(container) => Some(container.mime()),
        _ => None,
    }
}

pub fn sniff_crate(head: &[u8]) -> Option<&'static str> {
    match infer::get(head)?.mime_type() {
        mime @ ("video/mp4" | "video/webm") => Some(mime),
        _ => None,
    }
}

/// Inputs every pair is checked and timed on.
pub const SECS: u64 = 1_795_335_428;
pub const MICROS: i64 = 1_795_335_428_900_123;
pub const STAMP: &str = "2026-11-22T08:17:08.900Z";
pub const RANGE: &[u8] = b"bytes=1024-65535";
pub const LEN: u64 = 1 << 20;

/// An MP4 file's first bytes (`ftyp` box, brand isom) and a WebM's (EBML header, DocType webm).
pub fn mp4_head() -> Vec<u8> {
    let mut v = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    v.resize(64, 0);
    v
}

pub fn webm_head() -> Vec<u8> {
    let mut v = vec![0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81, 0x01, 0x42, 0xf7, 0x81, 0x01];
    v.extend_from_slice(&[0x42, 0xf2, 0x81, 0x04, 0x42, 0xf3, 0x81, 0x08, 0x42, 0x82, 0x84]);
    v.extend_from_slice(b"webm");
    v.extend_from_slice(&[0x42, 0x87, 0x81, 0x04, 0x42, 0x85, 0x81, 0x02]);
    v.resize(64, 0);
    v
}
