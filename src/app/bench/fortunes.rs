//! `GET /fortunes`: every row of `fortune`, one more added at request time,
//! sorted by message and rendered as the benchmark's HTML table.
//!
//! Messages are borrowed from the rows and escaped straight into the response
//! buffer; the page is never built as a `String` first. They stay bytes: the
//! session's encoding is UTF-8, byte order is code point order, and escaping
//! touches ASCII only, so checking them as UTF-8 (2 % of a profile) bought
//! nothing.

use swiftlet_protocol::Status;

use super::sql::FORTUNES;
use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::response::{Response, HTML};

const EXTRA: &[u8] = b"Additional fortune added at request time.";

/// One row of the table, with its message's first eight bytes as a number
/// (zero-padded, big-endian) to sort by. Ordering by that number and then
/// by the whole message is byte order: a shorter message pads with the
/// smallest byte, and equal numbers fall through to the full comparison.
/// Most pairs differ in the first eight bytes, so the sort compares two
/// integers where it called `memcmp` (together 5 % of a request's
/// instructions).
struct Fortune<'r> {
    key: u64,
    id: i32,
    message: &'r [u8],
}

impl<'r> Fortune<'r> {
    fn new(id: i32, message: &'r [u8]) -> Self {
        let mut prefix = [0u8; 8];
        let n = message.len().min(8);
        prefix[..n].copy_from_slice(&message[..n]);
        Fortune { key: u64::from_be_bytes(prefix), id, message }
    }
}

pub async fn fortunes(core: &Core, res: &mut Response<'_>) -> Result<(), AppError> {
    let pg = core.storage.pg.for_reads()?;
    let rows = pg.run(|batch| batch.query(&FORTUNES, &[])).await?;
    let mut fortunes = Vec::with_capacity(16);
    for row in rows.query(0) {
        fortunes.push(Fortune::new(row.int4(0)?, row.text_bytes(1)?));
    }
    fortunes.push(Fortune::new(0, EXTRA));
    fortunes.sort_unstable_by(|a, b| a.key.cmp(&b.key).then_with(|| a.message.cmp(b.message)));
    res.send_with(Status::OK, HTML, |out| render(out, &fortunes));
    Ok(())
}

fn render(out: &mut Vec<u8>, fortunes: &[Fortune<'_>]) {
    out.extend_from_slice(
        b"<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>",
    );
    for &Fortune { id, message, .. } in fortunes {
        out.extend_from_slice(b"<tr><td>");
        if id < 0 {
            out.push(b'-');
        }
        swiftlet_protocol::response::encode_decimal(id.unsigned_abs().into(), out);
        out.extend_from_slice(b"</td><td>");
        escape_html(out, message);
        out.extend_from_slice(b"</td></tr>");
    }
    out.extend_from_slice(b"</table></body></html>");
}

/// Escapes the five characters that are markup in HTML text and attributes.
fn escape_html(out: &mut Vec<u8>, text: &[u8]) {
    let mut rest = text;
    while let Some(i) = first_markup(rest) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(match rest[i] {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            _ => b"&#39;",
        });
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Where the first markup byte in `text` is. Most messages hold none, so
/// the text is tested a block at a time, which the compiler turns into a few
/// vector compares (the last, short block is padded with zeros); only a
/// block that holds markup is searched byte by byte.
fn first_markup(text: &[u8]) -> Option<usize> {
    const BLOCK: usize = 16;
    let any = |block: &[u8; BLOCK]| block.iter().fold(0u8, |seen, &b| seen | u8::from(is_markup(b))) != 0;
    let mut blocks = text.chunks_exact(BLOCK);
    for (n, block) in (&mut blocks).enumerate() {
        if any(block.try_into().expect("chunks_exact gives whole blocks")) {
            return block.iter().position(|&b| is_markup(b)).map(|i| n * BLOCK + i);
        }
    }
    let tail = blocks.remainder();
    let mut padded = [0u8; BLOCK];
    padded[..tail.len()].copy_from_slice(tail);
    if any(&padded) {
        tail.iter().position(|&b| is_markup(b)).map(|i| text.len() - tail.len() + i)
    } else {
        None
    }
}

fn is_markup(b: u8) -> bool {
    (b == b'&') | (b == b'<') | (b == b'>') | (b == b'"') | (b == b'\'')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        let mut out = Vec::new();
        escape_html(&mut out, r#"<script>alert("x & 'y'");</script> フレーム"#.as_bytes());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "&lt;script&gt;alert(&quot;x &amp; &#39;y&#39;&quot;);&lt;/script&gt; フレーム"
        );
    }

    /// The sort key orders as the bytes do, short messages and ties included.
    #[test]
    fn sorts_as_bytes_do() {
        let messages: [&[u8]; 9] =
            [b"", b"a", b"ab", b"abcdefgh", b"abcdefgh\0", b"abcdefghi", b"abcdefgg\xff", b"b", "フレーム".as_bytes()];
        for a in messages {
            for b in messages {
                let (fa, fb) = (Fortune::new(0, a), Fortune::new(0, b));
                let by_key = fa.key.cmp(&fb.key).then_with(|| a.cmp(b));
                assert_eq!(by_key, a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    /// Markup at every position of blocks, across block edges and in a short tail.
    #[test]
    fn escapes_markup_wherever_it_falls() {
        for len in 0..40 {
            for at in 0..len {
                let mut text = vec![b'a'; len];
                text[at] = b'<';
                let mut out = Vec::new();
                escape_html(&mut out, &text);
                let want = format!("{}&lt;{}", "a".repeat(at), "a".repeat(len - at - 1));
                assert_eq!(String::from_utf8(out).unwrap(), want, "len {len}, markup at {at}");
            }
        }
    }

    #[test]
    fn renders_the_table() {
        let mut out = Vec::new();
        render(&mut out, &[Fortune::new(0, b"a<b"), Fortune::new(12, b"z")]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>\
             <tr><td>0</td><td>a&lt;b</td></tr><tr><td>12</td><td>z</td></tr></table></body></html>"
        );
    }
}
