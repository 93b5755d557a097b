//! The `Range` request header (RFC 9110 §14.1–14.2) for a representation of a
//! known length: which bytes the client asked for, or that it asked for none
//! we have.
//!
//! Only single ranges are honoured. A header we do not understand, or one
//! that asks for several ranges, is ignored and the whole representation is
//! sent, as §14.2 allows ("a server MAY ignore the Range header field"): a
//! multipart/byteranges answer buys a video player nothing.
//!
//! Invariant: a `Partial` range is never empty and lies inside `0..len`.

/// What to send for a request with (or without) a Range header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole representation (200).
    Full,
    /// Bytes `start..=end` (206 with `Content-Range: bytes start-end/len`).
    Partial { start: u64, end: u64 },
    /// No requested byte exists (416 with `Content-Range: bytes */len`).
    Unsatisfiable,
}

impl ByteRange {
    /// Interprets a Range header value (`None`: no header) for a
    /// representation of `len` bytes.
    pub fn parse(value: Option<&[u8]>, len: u64) -> ByteRange {
        let Some(value) = value else { return ByteRange::Full };
        let value = trim(value);
        // The unit is case-insensitive (§14.1).
        let Some(spec) = value.get(..6).filter(|u| u.eq_ignore_ascii_case(b"bytes=")).map(|_| &value[6..]) else {
            return ByteRange::Full;
        };
        if spec.contains(&b',') {
            return ByteRange::Full;
        }
        let spec = trim(spec);
        let Some(dash) = spec.iter().position(|&b| b == b'-') else { return ByteRange::Full };
        let (first, last) = (&spec[..dash], &spec[dash + 1..]);
        match (digits(first), digits(last)) {
            // bytes=-N: the last N bytes (§14.1.2, suffix-range).
            (None, Some(Ok(n))) if first.is_empty() => {
                if n == 0 || len == 0 {
                    ByteRange::Unsatisfiable
                } else {
                    ByteRange::Partial { start: len.saturating_sub(n), end: len - 1 }
                }
            }
            // bytes=A- : from A to the end.
            (Some(Ok(start)), None) if last.is_empty() => from(start, len - len.min(1), len),
            // bytes=A-B, B clamped to the end; B < A is invalid, so ignored.
            (Some(Ok(start)), Some(Ok(end))) if end >= start => from(start, end.min(len.saturating_sub(1)), len),
            // A number too large for u64 is still a valid (enormous) position.
            (Some(Err(TooLarge)), _) => ByteRange::Unsatisfiable,
            (Some(Ok(start)), Some(Err(TooLarge))) => from(start, len.saturating_sub(1), len),
            (None, Some(Err(TooLarge))) if first.is_empty() => {
                if len == 0 {
                    ByteRange::Unsatisfiable
                } else {
                    ByteRange::Full
                }
            }
            _ => ByteRange::Full,
        }
    }

    /// The number of bytes to send of a representation of `len` bytes.
    pub fn len(self, len: u64) -> u64 {
        match self {
            ByteRange::Full => len,
            ByteRange::Partial { start, end } => end - start + 1,
            ByteRange::Unsatisfiable => 0,
        }
    }

    /// Always false for a `Partial` range (see the invariant); here so `len` has its pair.
    pub fn is_empty(self, len: u64) -> bool {
        self.len(len) == 0
    }
}

/// A range starting at `start`: satisfiable only if that byte exists.
fn from(start: u64, end: u64, len: u64) -> ByteRange {
    if start >= len {
        ByteRange::Unsatisfiable
    } else {
        ByteRange::Partial { start, end }
    }
}

struct TooLarge;

/// `None` for an empty or non-digit string; the value, or `TooLarge`.
fn digits(s: &[u8]) -> Option<Result<u64, TooLarge>> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &d in s {
        match n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))) {
            Some(v) => n = v,
            None => return Some(Err(TooLarge)),
        }
    }
    Some(Ok(n))
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::ByteRange::{self, *};

    fn parse(v: &str, len: u64) -> ByteRange {
        ByteRange::parse(Some(v.as_bytes()), len)
    }

    #[test]
    fn no_header_is_the_whole_representation() {
        assert_eq!(ByteRange::parse(None, 10), Full);
    }

    #[test]
    fn first_and_last_positions_rfc9110_14_1_2() {
        assert_eq!(parse("bytes=0-499", 10_000), Partial { start: 0, end: 499 });
        assert_eq!(parse("bytes=500-999", 10_000), Partial { start: 500, end: 999 });
        // A last position past the end means the end.
        assert_eq!(parse("bytes=9500-20000", 10_000), Partial { start: 9500, end: 9999 });
        assert_eq!(parse("BYTES=1-1", 10), Partial { start: 1, end: 1 });
    }

    #[test]
    fn open_ended_and_suffix_ranges() {
        assert_eq!(parse("bytes=9500-", 10_000), Partial { start: 9500, end: 9999 });
        assert_eq!(parse("bytes=-500", 10_000), Partial { start: 9500, end: 9999 });
        // A suffix longer than the representation is all of it.
        assert_eq!(parse("bytes=-500", 100), Partial { start: 0, end: 99 });
        assert_eq!(parse("bytes=-99999999999999999999999", 100), Full);
    }

    #[test]
    fn unsatisfiable_when_no_requested_byte_exists_rfc9110_15_5_17() {
        assert_eq!(parse("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(parse("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse("bytes=-5", 0), Unsatisfiable);
        assert_eq!(parse("bytes=99999999999999999999999-", 10), Unsatisfiable);
    }

    #[test]
    fn what_we_do_not_understand_is_ignored_rfc9110_14_2() {
        for v in ["items=0-1", "bytes=5-1", "bytes=a-b", "bytes=-", "bytes=", "bytes=0-1,3-4", "bytes 0-1", ""] {
            assert_eq!(parse(v, 10), Full, "{v}");
        }
    }

    #[test]
    fn lengths() {
        assert_eq!(Partial { start: 2, end: 5 }.len(10), 4);
        assert_eq!(Full.len(10), 10);
        assert!(Unsatisfiable.is_empty(10));
    }
}
