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

const EXTRA: (i32, &[u8]) = (0, b"Additional fortune added at request time.");

pub async fn fortunes(core: &Core, res: &mut Response<'_>) -> Result<(), AppError> {
    let pg = core.storage.pg.for_reads()?;
    let rows = pg.run(|batch| batch.query(&FORTUNES, &[])).await?;
    let mut fortunes = Vec::with_capacity(16);
    for row in rows.query(0) {
        fortunes.push((row.int4(0)?, row.text_bytes(1)?));
    }
    fortunes.push(EXTRA);
    fortunes.sort_unstable_by(|a, b| a.1.cmp(b.1));
    res.send_with(Status::OK, HTML, |out| render(out, &fortunes));
    Ok(())
}

fn render(out: &mut Vec<u8>, fortunes: &[(i32, &[u8])]) {
    out.extend_from_slice(
        b"<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>",
    );
    for &(id, message) in fortunes {
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
    let mut plain = 0;
    for (i, &b) in text.iter().enumerate() {
        let entity: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\'' => b"&#39;",
            _ => continue,
        };
        out.extend_from_slice(&text[plain..i]);
        out.extend_from_slice(entity);
        plain = i + 1;
    }
    out.extend_from_slice(&text[plain..]);
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

    #[test]
    fn renders_the_table() {
        let mut out = Vec::new();
        render(&mut out, &[(0, b"a<b"), (12, b"z")]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>\
             <tr><td>0</td><td>a&lt;b</td></tr><tr><td>12</td><td>z</td></tr></table></body></html>"
        );
    }
}
