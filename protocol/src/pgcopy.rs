//! PostgreSQL's binary COPY format (the `COPY … FROM STDIN (FORMAT binary)`
//! stream), written row by row into a buffer the caller owns.
//!
//! A stream is a fixed header, then rows, then a trailer. A row is its field
//! count (int16) and, per field, its length (int32) and its bytes in the
//! column type's binary send format. Only the types the log store needs are
//! here: text, timestamptz and jsonb.
//!
//! Invariant: between [`CopyWriter::begin_row`] and the last field of that row
//! the buffer holds a partial row; [`CopyWriter::truncate`] takes it back to a
//! row boundary, which is how a caller drops a row it could not finish.

/// The 11-byte signature, the flags field (no OIDs) and an empty extension area.
const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// A field count of -1 ends the stream.
const TRAILER: &[u8; 2] = &[0xff, 0xff];
/// PostgreSQL counts time from 2000-01-01T00:00:00Z, in microseconds.
pub const UNIX_TO_PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// The version byte that starts a jsonb value in binary format.
const JSONB_VERSION: u8 = 1;

/// Appends rows to `out`, which starts (or continues) one COPY stream.
pub struct CopyWriter<'b> {
    out: &'b mut Vec<u8>,
}

impl<'b> CopyWriter<'b> {
    /// Starts a stream in an empty buffer, or continues the one `out` holds.
    pub fn new(out: &'b mut Vec<u8>) -> CopyWriter<'b> {
        if out.is_empty() {
            out.extend_from_slice(HEADER);
        }
        CopyWriter { out }
    }

    /// The buffer's length now: a row boundary when called between rows.
    pub fn mark(&self) -> usize {
        self.out.len()
    }

    /// Drops everything written after `mark`.
    pub fn truncate(&mut self, mark: usize) {
        self.out.truncate(mark);
    }

    /// Starts a row of `fields` fields; exactly that many must follow.
    pub fn begin_row(&mut self, fields: i16) {
        self.out.extend_from_slice(&fields.to_be_bytes());
    }

    pub fn text(&mut self, s: &str) {
        self.length(s.len());
        self.out.extend_from_slice(s.as_bytes());
    }

    /// A timestamptz, given as microseconds since the Unix epoch.
    pub fn timestamptz(&mut self, unix_micros: i64) {
        self.out.extend_from_slice(&8i32.to_be_bytes());
        self.out.extend_from_slice(&unix_micros.saturating_sub(UNIX_TO_PG_EPOCH_MICROS).to_be_bytes());
    }

    /// A jsonb field whose JSON text `write` appends; its length is filled in after.
    pub fn jsonb(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        self.out.push(JSONB_VERSION);
        write(self.out);
        let len = self.out.len() - at - 4;
        self.out[at..at + 4].copy_from_slice(&field_length(len).to_be_bytes());
    }

    fn length(&mut self, len: usize) {
        self.out.extend_from_slice(&field_length(len).to_be_bytes());
    }
}

/// A field longer than PostgreSQL's 1 GB limit cannot be sent; callers bound
/// their input far below it (the request body limit), so this only guards.
fn field_length(len: usize) -> i32 {
    i32::try_from(len).expect("a COPY field over 2 GiB")
}

/// Ends a stream: after this the buffer is a complete COPY payload.
pub fn finish(out: &mut Vec<u8>) {
    if out.is_empty() {
        out.extend_from_slice(HEADER);
    }
    out.extend_from_slice(TRAILER);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_header_rows_trailer() {
        let mut out = Vec::new();
        let mut w = CopyWriter::new(&mut out);
        w.begin_row(3);
        w.text("hé");
        w.timestamptz(UNIX_TO_PG_EPOCH_MICROS + 1);
        w.jsonb(|o| o.extend_from_slice(b"{}"));
        finish(&mut out);
        let mut expected = HEADER.to_vec();
        expected.extend_from_slice(&[0, 3]);
        expected.extend_from_slice(&[0, 0, 0, 3, b'h', 0xc3, 0xa9]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 3, 1, b'{', b'}']);
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(out, expected);
    }

    #[test]
    fn continuing_a_stream_adds_no_second_header() {
        let mut out = Vec::new();
        CopyWriter::new(&mut out).begin_row(0);
        let mut w = CopyWriter::new(&mut out);
        let mark = w.mark();
        w.begin_row(1);
        w.text("dropped");
        w.truncate(mark);
        finish(&mut out);
        assert_eq!(out.len(), HEADER.len() + 2 + 2);
    }

    #[test]
    fn an_empty_stream_is_still_well_formed() {
        let mut out = Vec::new();
        finish(&mut out);
        assert_eq!(&out[..19], HEADER);
        assert_eq!(&out[19..], TRAILER);
    }
}
