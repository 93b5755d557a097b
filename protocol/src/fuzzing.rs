//! The properties the fuzz targets check, kept here so that `cargo test`
//! replays the committed corpus with exactly the same checks as `cargo fuzz`
//! (see fuzz/README.md). Each function panics when a property fails.

use crate::chunked::{Chunked, ChunkedDecoder};
use crate::head::{HeadLimits, RequestHead};
use crate::Parse;

/// Parsing arbitrary bytes never panics; a complete head's accessors stay in
/// bounds; and no shorter prefix of a complete head parses as complete.
pub fn check_head(data: &[u8]) {
    let limits = HeadLimits { max_head_bytes: 4096, max_headers: 16, max_target_len: 1024 };
    let head = match RequestHead::parse(data, &limits) {
        Ok(Parse::Complete(head)) => head,
        Ok(Parse::Incomplete) | Err(_) => return,
    };
    assert!(head.head_len <= data.len());
    assert!(head.head_len <= limits.max_head_bytes);
    let path = head.path(data);
    assert!(path.len() <= head.target(data).len());
    assert!(head.headers(data).count() <= limits.max_headers);
    for (name, _) in head.headers(data) {
        assert!(!name.is_empty(), "empty header name accepted");
    }
    let _ = head.query(data);
    // One rule for line endings: no LF without its CR in a head that parsed.
    let bytes = &data[..head.head_len];
    assert!(
        bytes.iter().enumerate().all(|(i, &b)| b != b'\n' || (i > 0 && bytes[i - 1] == b'\r')),
        "a bare LF was accepted"
    );
    // The same head again, from exactly its own bytes.
    assert_eq!(RequestHead::parse(&data[..head.head_len], &limits), Ok(Parse::Complete(head)));
    for cut in [head.head_len - 1, head.head_len / 2] {
        assert!(
            !matches!(RequestHead::parse(&data[..cut], &limits), Ok(Parse::Complete(_))),
            "a prefix of {cut} bytes parsed as a complete head"
        );
    }
}

/// Decoding in one call and decoding as the bytes trickle in (in pieces whose
/// sizes come from the first input byte, the consumed framing cut out after
/// every piece) reach the same result; the raw bytes taken never exceed the
/// limit, and the piecewise region never holds more than the decoded bytes
/// plus the last piece.
pub fn check_chunked(data: &[u8]) {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let limit = 1 << 12;

    let mut whole = body.to_vec();
    let once = ChunkedDecoder::new(limit).decode(&mut whole);
    if let Ok(Chunked::Complete { body_len, consumed }) = once {
        assert!(body_len <= consumed && consumed <= body.len());
        assert!(consumed as u64 <= limit, "{consumed} raw bytes taken past the limit");
    }

    let step = usize::from(step % 16) + 1;
    let mut region = Vec::with_capacity(body.len());
    let mut decoder = ChunkedDecoder::new(limit);
    let mut pieces = Ok(Chunked::Incomplete);
    let mut fed = 0;
    for piece in body.chunks(step) {
        region.extend_from_slice(piece);
        fed += piece.len();
        pieces = decoder.decode(&mut region);
        if !matches!(pieces, Ok(Chunked::Incomplete)) {
            break;
        }
        let framing = decoder.discard_framing();
        region.drain(framing);
        assert!(region.len() <= decoder.decoded_len() + step, "framing kept in the region");
    }
    match (once, pieces) {
        (Ok(Chunked::Complete { body_len, consumed }), Ok(Chunked::Complete { body_len: len, consumed: used })) => {
            assert_eq!(body_len, len, "one-shot and piecewise decoding disagree on the length");
            assert_eq!(whole[..body_len], region[..body_len]);
            // What follows the body is the same bytes in both.
            assert_eq!(body[consumed..fed], region[used..]);
        }
        (once, pieces) => assert_eq!(once, pieces, "one-shot and piecewise decoding disagree"),
    }
}

/// Decoding arbitrary bytes as a Redis reply never panics; a complete reply
/// decodes again from exactly its own bytes, and no shorter prefix of it is
/// complete (so a reply split across reads is never taken early).
pub fn check_resp(data: &[u8]) {
    use crate::resp::decode_reply;
    let (reply, used) = match decode_reply(data) {
        Ok(Parse::Complete(found)) => found,
        Ok(Parse::Incomplete) | Err(_) => return,
    };
    assert!(used > 0 && used <= data.len());
    assert_eq!(decode_reply(&data[..used]), Ok(Parse::Complete((reply, used))));
    for cut in [used - 1, used / 2] {
        assert!(
            !matches!(decode_reply(&data[..cut]), Ok(Parse::Complete(_))),
            "a prefix of {cut} bytes decoded as a complete reply"
        );
    }
}

/// Reading arbitrary bytes as an RFC 3339 timestamp never panics; whatever is
/// accepted lies within years 0000..=9999 (plus the offset and leap second the
/// text may add), and its canonical form, as the log API writes it, reads
/// back to the same instant.
pub fn check_rfc3339(data: &[u8]) {
    use crate::date::{parse_rfc3339, Rfc3339Micros};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(micros) = parse_rfc3339(text) else { return };
    // 0000-01-01 minus a day of offset, to 9999-12-31 plus a day and a leap second.
    const DAY: i64 = 86_400_000_000;
    assert!((-62_167_219_200_000_000 - DAY..=253_402_300_799_999_999 + DAY).contains(&micros), "{text:?}");
    let canonical = Rfc3339Micros::from_unix_micros(micros);
    if (-62_167_219_200_000_000..=253_402_300_799_999_999).contains(&micros) {
        assert_eq!(parse_rfc3339(canonical.as_str()), Some(micros), "{text:?} -> {}", canonical.as_str());
    }
}

/// The events of a multipart body, as owned values for comparing two decodings.
#[derive(Debug, PartialEq, Eq)]
enum FormEvent {
    Part(Vec<u8>, Option<Vec<u8>>),
    Data(Vec<u8>),
    End,
}

/// Decodes `body` (boundary `XyZ`) fed `step` bytes at a time; returns the
/// events (adjacent data merged) and how it ended. Panics if the decoder
/// stops making progress or hands out a delimiter as data.
fn decode_form(body: &[u8], step: usize) -> (Vec<FormEvent>, Result<(), crate::multipart::MultipartError>) {
    use crate::multipart::{Event, MultipartDecoder};
    let mut decoder = MultipartDecoder::new(b"XyZ", 256);
    let (mut buf, mut fed, mut events) = (Vec::new(), 0, Vec::new());
    loop {
        let eof = fed == body.len();
        let (event, used) = match decoder.decode(&buf, eof) {
            Ok(found) => found,
            Err(e) => return (events, Err(e)),
        };
        assert!(used <= buf.len());
        match event {
            Event::NeedMore => {
                assert!(!eof, "NeedMore at the end of the input");
                buf.drain(..used);
                let next = (fed + step).min(body.len());
                buf.extend_from_slice(&body[fed..next]);
                fed = next;
                continue;
            }
            Event::Done => return (events, Ok(())),
            Event::Part { name, filename, .. } => {
                events.push(FormEvent::Part(name.to_vec(), filename.map(<[u8]>::to_vec)))
            }
            Event::Data(d) => {
                assert!(!d.is_empty() && used > 0, "empty data or no progress");
                match events.last_mut() {
                    Some(FormEvent::Data(all)) => all.extend_from_slice(d),
                    _ => events.push(FormEvent::Data(d.to_vec())),
                }
            }
            Event::PartEnd => events.push(FormEvent::End),
        }
        assert!(used > 0, "an event that consumed nothing");
        buf.drain(..used);
    }
}

/// Multipart decoding of arbitrary bytes never panics or stalls; decoding
/// the body whole and in pieces (sizes from the first byte) gives the same
/// events and outcome; no part's data contains the delimiter.
pub fn check_multipart(data: &[u8]) {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let whole = decode_form(body, body.len().max(1));
    let pieces = decode_form(body, usize::from(step % 16) + 1);
    assert_eq!(whole, pieces, "whole and piecewise decoding disagree");
    for event in &whole.0 {
        if let FormEvent::Data(d) = event {
            assert!(!d.windows(7).any(|w| w == b"\r\n--XyZ"), "a delimiter handed out as data");
        }
    }
}

/// A Range header value (after 2 bytes of length) never panics, and what it
/// selects lies inside the representation.
pub fn check_range(data: &[u8]) {
    use crate::range::ByteRange;
    if data.len() < 2 {
        return;
    }
    let len = u64::from(u16::from_le_bytes([data[0], data[1]]));
    match ByteRange::parse(Some(&data[2..]), len) {
        ByteRange::Partial { start, end } => {
            assert!(start <= end && end < len, "{start}-{end} outside {len}");
        }
        ByteRange::Full => {}
        ByteRange::Unsatisfiable => assert!(!data[2..].is_empty()),
    }
}

/// Sniffing never panics, and is consistent as bytes arrive: a file that is
/// a video when complete was never called "other" on any prefix of it.
pub fn check_sniff(data: &[u8]) {
    use crate::media::{Sniff, VideoContainer};
    let complete = VideoContainer::sniff(data, true);
    if let Sniff::Video(kind) = complete {
        for cut in 0..=data.len().min(80) {
            let early = VideoContainer::sniff(&data[..cut], false);
            assert!(matches!(early, Sniff::NeedMore | Sniff::Video(_)), "prefix {cut} refused a {kind:?}");
            if let Sniff::Video(k) = early {
                assert_eq!(k, kind);
            }
        }
    }
    assert_ne!(complete, Sniff::NeedMore);
}
