//! The chunked transfer coding (RFC 9112 §7.1), decoded in place.
//!
//! The decoder works on the bytes that follow a request head and moves each
//! chunk's data left over the framing that preceded it, so the decoded body
//! ends up contiguous at the start of that same region: a JSON parser can then
//! borrow from it without a copy. It keeps its position between calls, so a
//! body arriving over many reads is scanned once, not once per read.
//!
//! Invariants: decoded bytes live in `region[..written]`, unread input in
//! `region[read..]`, and `written <= read` always (framing is never shorter
//! than zero bytes), so the move never overwrites unread input. The caller
//! must keep the region's contents where they are between calls, or move the
//! whole region together, or cut out the consumed framing between the two
//! with [`ChunkedDecoder::discard_framing`].
//!
//! Bounds, in raw bytes as they arrive, not decoded bytes: the whole encoded
//! body (size lines, extensions, CRLFs, data and trailers) counts toward the
//! decoder's limit, so framing cannot grow a buffer that the decoded length
//! would never flag. A size line with its extensions is at most
//! [`MAX_CHUNK_LINE`] bytes and the trailer section at most
//! [`MAX_TRAILER_BYTES`]. With `discard_framing` after each call, the bytes
//! held for a body never exceed what it decoded plus one read's worth of input.
//!
//! Strictness, since a proxy in front of us may frame differently: chunk lines
//! must end in CRLF (no bare LF, no bare CR: the same rule as the head, see
//! `head`'s module comment and RFC 9112 §2.2), sizes are hex digits only and
//! must fit in 64 bits, extensions are bounded in length and checked for
//! control characters, trailer lines must look like header lines. Everything
//! else is an error and the connection is closed.

use crate::error::HttpError;

/// Longest chunk-size line (size, whitespace and extensions, without its
/// CRLF) we accept. No extension is defined that needs more; hyper refuses
/// long extensions for the same reason: each line costs a parse and bytes.
pub const MAX_CHUNK_LINE: usize = 256;
/// Most bytes of trailer section we accept; trailers are read and dropped.
pub const MAX_TRAILER_BYTES: usize = 8192;

/// The result of feeding the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// The body is not complete: read more and call again.
    Incomplete,
    /// The body is complete. `region[..body_len]` holds it decoded, and the
    /// encoded message took `consumed` bytes of the region.
    Complete { body_len: usize, consumed: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size,
    /// After the size: whitespace, then `;` and extensions, up to CR.
    Extension {
        after_semicolon: bool,
    },
    /// Saw the CR ending a size line.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line, or of the final CRLF.
    TrailerStart,
    /// Inside a trailer line's field name.
    TrailerName,
    /// Inside a trailer line's value.
    TrailerValue,
    /// Saw the CR ending a trailer line.
    TrailerLf,
    /// Saw the CR of the final empty line.
    FinalLf,
    Done,
}

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    read: usize,
    written: usize,
    chunk_left: u64,
    size_digits: usize,
    line_len: usize,
    trailer_bytes: usize,
    /// Raw bytes of the encoded body taken so far, across `discard_framing`.
    raw: u64,
    limit: u64,
}

impl ChunkedDecoder {
    /// A decoder for one body of at most `limit` raw bytes: framing, data and
    /// trailers counted as they arrive (413 beyond).
    pub fn new(limit: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            read: 0,
            written: 0,
            chunk_left: 0,
            size_digits: 0,
            line_len: 0,
            trailer_bytes: 0,
            raw: 0,
            limit,
        }
    }

    /// Decoded bytes so far (all in `region[..decoded_len()]`).
    pub fn decoded_len(&self) -> usize {
        self.written
    }

    /// Decodes what has arrived. `region` is everything received after the
    /// head so far; it must start at the same byte on every call.
    pub fn decode(&mut self, region: &mut [u8]) -> Result<Chunked, HttpError> {
        while self.state != State::Done {
            if self.read >= region.len() {
                return Ok(Chunked::Incomplete);
            }
            if self.state == State::Data {
                let available = (region.len() - self.read) as u64;
                let n = self.chunk_left.min(available) as usize;
                region.copy_within(self.read..self.read + n, self.written);
                self.read += n;
                self.written += n;
                self.raw += n as u64;
                self.chunk_left -= n as u64;
                if self.chunk_left == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = region[self.read];
            self.read += 1;
            self.raw += 1;
            if self.raw > self.limit {
                return Err(HttpError::PayloadTooLarge);
            }
            self.state = self.step(b)?;
        }
        Ok(Chunked::Complete { body_len: self.written, consumed: self.read })
    }

    /// Cuts the framing already consumed out of the region: returns the range
    /// `written..read` for the caller to remove (e.g. with `Vec::drain`, which
    /// moves the unread input down to `written`), after which the decoder
    /// expects the region shortened by exactly that range. Call it after an
    /// `Incomplete`, so a slow body made mostly of framing holds no more than
    /// its decoded bytes plus the input not yet read.
    pub fn discard_framing(&mut self) -> std::ops::Range<usize> {
        let framing = self.written..self.read;
        self.read = self.written;
        framing
    }

    fn step(&mut self, b: u8) -> Result<State, HttpError> {
        use State::*;
        Ok(match self.state {
            Size => {
                self.line_len += 1;
                if self.line_len > MAX_CHUNK_LINE {
                    return Err(HttpError::InvalidChunkSize);
                }
                if let Some(v) = hex_value(b) {
                    self.chunk_left = self
                        .chunk_left
                        .checked_mul(16)
                        .and_then(|n| n.checked_add(u64::from(v)))
                        .ok_or(HttpError::ChunkSizeOverflow)?;
                    self.size_digits += 1;
                    Size
                } else if b == b'\n' {
                    return Err(HttpError::BareLineFeed);
                } else if self.size_digits == 0 {
                    return Err(HttpError::InvalidChunkSize);
                } else {
                    match b {
                        b'\r' => SizeLf,
                        b';' => Extension { after_semicolon: true },
                        b' ' | b'\t' => Extension { after_semicolon: false },
                        _ => return Err(HttpError::InvalidChunkSize),
                    }
                }
            }
            Extension { after_semicolon } => {
                self.line_len += 1;
                if self.line_len > MAX_CHUNK_LINE {
                    return Err(HttpError::InvalidChunkSize);
                }
                match b {
                    b'\r' => SizeLf,
                    b'\n' => return Err(HttpError::BareLineFeed),
                    b' ' | b'\t' => Extension { after_semicolon },
                    b';' => Extension { after_semicolon: true },
                    // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ):
                    // anything but whitespace before the first ';' is junk.
                    0x21..=0x7e | 0x80..=0xff if after_semicolon => Extension { after_semicolon },
                    _ => return Err(HttpError::InvalidChunkSize),
                }
            }
            SizeLf => {
                if b != b'\n' {
                    return Err(HttpError::InvalidChunkSize);
                }
                self.line_len = 0;
                self.size_digits = 0;
                if self.chunk_left == 0 {
                    TrailerStart
                } else {
                    // The data and its CRLF still to come: refuse before they arrive.
                    if self.raw.saturating_add(self.chunk_left).saturating_add(2) > self.limit {
                        return Err(HttpError::PayloadTooLarge);
                    }
                    Data
                }
            }
            Data => unreachable!("chunk data is copied in bulk by decode"),
            DataCr => match b {
                b'\r' => DataLf,
                b'\n' => return Err(HttpError::BareLineFeed),
                _ => return Err(HttpError::InvalidChunkFraming),
            },
            DataLf => match b {
                b'\n' => Size,
                _ => return Err(HttpError::InvalidChunkFraming),
            },
            TrailerStart => match b {
                b'\r' => FinalLf,
                b'\n' => return Err(HttpError::BareLineFeed),
                b if is_tchar(b) => {
                    self.count_trailer()?;
                    TrailerName
                }
                // Includes SP and HTAB: obs-fold is as unwelcome here as in the head.
                _ => return Err(HttpError::InvalidChunkFraming),
            },
            TrailerName => {
                self.count_trailer()?;
                match b {
                    b':' => TrailerValue,
                    b'\n' => return Err(HttpError::BareLineFeed),
                    b if is_tchar(b) => TrailerName,
                    _ => return Err(HttpError::InvalidChunkFraming),
                }
            }
            TrailerValue => {
                self.count_trailer()?;
                match b {
                    b'\r' => TrailerLf,
                    b'\n' => return Err(HttpError::BareLineFeed),
                    b'\t' | 0x20..=0x7e | 0x80..=0xff => TrailerValue,
                    _ => return Err(HttpError::InvalidChunkFraming),
                }
            }
            TrailerLf => match b {
                b'\n' => TrailerStart,
                _ => return Err(HttpError::InvalidChunkFraming),
            },
            FinalLf => match b {
                b'\n' => Done,
                _ => return Err(HttpError::InvalidChunkFraming),
            },
            Done => Done,
        })
    }

    fn count_trailer(&mut self) -> Result<(), HttpError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(HttpError::HeadTooLarge);
        }
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `tchar` of RFC 9110 §5.6.2: the characters of a token.
fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes all of `raw` at once.
    fn decode_all(raw: &[u8], limit: u64) -> Result<(Vec<u8>, usize), HttpError> {
        let mut region = raw.to_vec();
        match ChunkedDecoder::new(limit).decode(&mut region)? {
            Chunked::Complete { body_len, consumed } => Ok((region[..body_len].to_vec(), consumed)),
            Chunked::Incomplete => panic!("incomplete"),
        }
    }

    /// Feeds `raw` one byte more at a time, as a slow client would send it.
    fn decode_bytewise(raw: &[u8], limit: u64) -> Result<(Vec<u8>, usize), HttpError> {
        let mut region = Vec::new();
        let mut d = ChunkedDecoder::new(limit);
        for &b in raw {
            region.push(b);
            if let Chunked::Complete { body_len, consumed } = d.decode(&mut region)? {
                return Ok((region[..body_len].to_vec(), consumed));
            }
        }
        panic!("incomplete")
    }

    #[test]
    fn rfc9112_7_1_example() {
        let raw = b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nGET /next";
        let (body, consumed) = decode_all(raw, 1 << 20).unwrap();
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(&raw[consumed..], b"GET /next");
        assert_eq!(decode_bytewise(raw, 1 << 20).unwrap().0, body);
    }

    #[test]
    fn chunk_extensions_are_skipped() {
        let raw = b"3;name=value;flag\r\nabc\r\n2 ; q=\"x y\"\r\nde\r\n0;last\r\n\r\n";
        assert_eq!(decode_all(raw, 100).unwrap().0, b"abcde");
    }

    #[test]
    fn trailers_are_read_and_dropped() {
        let raw = b"3\r\nabc\r\n0\r\nChecksum: 1234\r\nX-Other: a b\r\n\r\nREST";
        let (body, consumed) = decode_all(raw, 100).unwrap();
        assert_eq!(body, b"abc");
        assert_eq!(&raw[consumed..], b"REST");
        assert_eq!(decode_bytewise(raw, 100).unwrap().0, b"abc");
    }

    #[test]
    fn upper_and_lower_hex_sizes() {
        let body = vec![b'x'; 0x1af];
        let mut raw = b"1aF\r\n".to_vec();
        raw.extend_from_slice(&body);
        raw.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(decode_all(&raw, 1000).unwrap().0, body);
    }

    #[test]
    fn incomplete_until_final_crlf() {
        let mut d = ChunkedDecoder::new(100);
        let mut region = b"3\r\nabc\r\n0\r\n".to_vec();
        assert_eq!(d.decode(&mut region), Ok(Chunked::Incomplete));
        assert_eq!(d.decoded_len(), 3);
        region.extend_from_slice(b"\r\n");
        assert_eq!(d.decode(&mut region), Ok(Chunked::Complete { body_len: 3, consumed: 13 }));
    }

    #[test]
    fn smuggling_invalid_chunk_sizes() {
        for raw in [
            &b"\r\nabc\r\n0\r\n\r\n"[..],
            b"x\r\n",
            b"-3\r\nabc\r\n0\r\n\r\n",
            b"+3\r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b" 3\r\nabc\r\n0\r\n\r\n",
            b"3 x\r\nabc\r\n0\r\n\r\n",
            b"3\rabc\r\n0\r\n\r\n", // bare CR
            b"3;a\x00\r\nabc\r\n0\r\n\r\n",
        ] {
            assert_eq!(
                decode_all(raw, 100).unwrap_err(),
                HttpError::InvalidChunkSize,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn smuggling_bare_lf_is_refused_in_all_framing() {
        // The head's rule (RFC 9112 §2.2, refused by policy): every line ends in CRLF.
        for raw in [
            &b"3\nabc\r\n0\r\n\r\n"[..],
            b"3;a\nb\r\nabc\r\n0\r\n\r\n",
            b"3;a\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"0\n\r\n",
            b"0\r\n\n",
            b"0\r\nX: a\n\r\n",
            b"0\r\nX\n",
        ] {
            assert_eq!(
                decode_all(raw, 100).unwrap_err(),
                HttpError::BareLineFeed,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn smuggling_overflowing_chunk_size() {
        let raw = b"10000000000000000\r\n";
        assert_eq!(decode_all(raw, u64::MAX).unwrap_err(), HttpError::ChunkSizeOverflow);
        // Leading zeros are fine as long as the value fits.
        assert_eq!(decode_all(b"00000000000000000003\r\nabc\r\n0\r\n\r\n", 100).unwrap().0, b"abc");
    }

    #[test]
    fn smuggling_chunk_data_not_followed_by_crlf() {
        for raw in [&b"3\r\nabcd\r\n0\r\n\r\n"[..], b"3\r\nabc\rX0\r\n\r\n"] {
            assert_eq!(decode_all(raw, 100).unwrap_err(), HttpError::InvalidChunkFraming);
        }
    }

    #[test]
    fn smuggling_malformed_trailers() {
        for raw in [&b"0\r\n bad: fold\r\n\r\n"[..], b"0\r\nno colon\r\n\r\n", b"0\r\nX: a\x00\r\n\r\n", b"0\r\n\rX"] {
            assert_eq!(decode_all(raw, 100).unwrap_err(), HttpError::InvalidChunkFraming);
        }
        let mut raw = b"0\r\nX: ".to_vec();
        raw.extend(std::iter::repeat_n(b'a', MAX_TRAILER_BYTES));
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(decode_all(&raw, 1 << 20).unwrap_err(), HttpError::HeadTooLarge);
    }

    #[test]
    fn body_over_limit_is_413_before_the_data_arrives() {
        let mut d = ChunkedDecoder::new(5);
        let mut region = b"3\r\nabc\r\n3\r\n".to_vec();
        assert_eq!(d.decode(&mut region), Err(HttpError::PayloadTooLarge));
        assert_eq!(HttpError::PayloadTooLarge.status().code(), 413);
        // The limit is on the encoded body: 15 raw bytes for 5 of data.
        assert_eq!(decode_all(b"5\r\nabcde\r\n0\r\n\r\n", 15).unwrap().0, b"abcde");
        assert_eq!(decode_all(b"5\r\nabcde\r\n0\r\n\r\n", 14).unwrap_err(), HttpError::PayloadTooLarge);
    }

    #[test]
    fn bound_framing_counts_toward_the_limit() {
        // The attack the bound is for: one byte of data per chunk behind a
        // long extension. Decoded it stays tiny; raw it must hit the limit.
        let mut chunk = b"1;".to_vec();
        chunk.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE - 3));
        chunk.extend_from_slice(b"\r\na\r\n");
        let mut d = ChunkedDecoder::new(64 * 1024);
        let mut region = Vec::new();
        let mut fed = 0;
        let outcome = loop {
            region.extend_from_slice(&chunk);
            fed += chunk.len();
            match d.decode(&mut region) {
                Ok(Chunked::Incomplete) => {
                    let framing = d.discard_framing();
                    region.drain(framing);
                }
                other => break other,
            }
            assert!(fed < 1 << 20, "never refused");
        };
        assert_eq!(outcome, Err(HttpError::PayloadTooLarge));
        assert!(fed <= 64 * 1024 + chunk.len(), "refused only after {fed} raw bytes");
        // Discarding kept the decoded bytes (one per chunk) and the last piece fed.
        assert!(region.len() <= d.decoded_len() + chunk.len(), "{} bytes held", region.len());
        assert!(d.decoded_len() < 300);
    }

    #[test]
    fn bound_discarding_framing_keeps_only_decoded_bytes() {
        let raw = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: v\r\n\r\nNEXT";
        let mut region = Vec::new();
        let mut d = ChunkedDecoder::new(1 << 20);
        for &b in raw.iter() {
            region.push(b);
            match d.decode(&mut region).unwrap() {
                Chunked::Incomplete => {
                    let framing = d.discard_framing();
                    region.drain(framing);
                    // Only decoded bytes, plus at most the partial line being read.
                    assert!(region.len() <= d.decoded_len() + 16, "{region:?}");
                }
                Chunked::Complete { body_len, consumed } => {
                    assert_eq!(&region[..body_len], b"Wikipedia in\r\n\r\nchunks.");
                    assert_eq!(consumed, region.len(), "the rest of the input is not consumed");
                    return;
                }
            }
        }
        panic!("incomplete");
    }

    #[test]
    fn extension_line_is_bounded() {
        let mut raw = b"3;".to_vec();
        raw.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE));
        raw.extend_from_slice(b"\r\nabc\r\n0\r\n\r\n");
        assert_eq!(decode_all(&raw, 1 << 20).unwrap_err(), HttpError::InvalidChunkSize);
        let mut raw = b"3;".to_vec();
        raw.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE - 3));
        raw.extend_from_slice(b"\r\nabc\r\n0\r\n\r\n");
        assert_eq!(decode_all(&raw, 1 << 20).unwrap().0, b"abc");
    }
}
