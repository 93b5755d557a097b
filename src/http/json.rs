//! JSON in both directions, without a document tree.
//!
//! Reading: [`parse_in_place`] runs simd-json over a request body where it
//! lies, onto a tape kept per core and reused, and hands the caller a view of
//! it; strings in the view borrow from the body, so a parsed request copies
//! nothing and a warm core allocates nothing to parse one. [`field`] reads an
//! object's member, the last one where a key repeats.
//!
//! Writing: [`write_str`] and friends append to the response's scratch buffer;
//! the product API writes its documents with them field by field, so a
//! response costs no allocation per field. Small fixed documents go through
//! serde instead.

use std::cell::RefCell;

use simd_json::tape::{Object, Tape, Value};

/// The per-core state simd-json reuses between parses.
struct TapeScratch {
    buffers: simd_json::Buffers,
    /// Empty between parses; `reset` gives it the lifetime of the next body.
    tape: Option<Tape<'static>>,
}

thread_local! {
    static SCRATCH: RefCell<TapeScratch> = RefCell::new(TapeScratch {
        buffers: simd_json::Buffers::new(4096),
        tape: None,
    });
}

/// Parses `body` in place and hands its root value to `f`; `malformed` is what
/// a body that is not JSON gets. Strings `f` takes from the value live as long
/// as the body (`'a`), so `f` may return them; the value itself cannot escape.
pub fn parse_in_place<'a, R, E>(
    body: &'a mut [u8],
    malformed: E,
    f: impl for<'t> FnOnce(Value<'t, 'a>) -> Result<R, E>,
) -> Result<R, E> {
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let scratch = &mut *scratch;
        let mut tape: Tape<'a> = scratch.tape.take().unwrap_or_else(Tape::null).reset();
        let result = match simd_json::fill_tape(body, &mut scratch.buffers, &mut tape) {
            Ok(()) => f(tape.as_value()),
            Err(_) => Err(malformed),
        };
        scratch.tape = Some(tape.reset());
        result
    })
}

/// The value of `name` in `object`. A repeated key's last value counts, as in
/// PostgreSQL's jsonb (where a log event's metadata goes), JavaScript and
/// serde_json, so every reader of a body agrees on what it says.
pub fn field<'t, 'a>(object: &Object<'t, 'a>, name: &str) -> Option<Value<'t, 'a>> {
    object.iter().filter(|(key, _)| *key == name).last().map(|(_, value)| value)
}

/// Appends an integer.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

/// Appends `s` as a JSON string, or `null`.
pub fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

/// Appends `s` as a JSON string literal (RFC 8259 §7).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut clean_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[clean_from..i]);
        if escape.is_empty() {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.extend_from_slice(escape);
        }
        clean_from = i + 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_rfc8259_requires() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\"".as_bytes());
    }
}
