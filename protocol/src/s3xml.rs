//! The few S3 XML documents swiftlet reads and writes: the upload id of a new
//! multipart upload, a page of ListObjectsV2, an error's code and message,
//! and the body of CompleteMultipartUpload.
//!
//! S3's answers are flat, machine-written documents, so the reader looks for
//! elements by name rather than building a tree: no attributes, comments or
//! CDATA are expected, and text is unescaped for the five predefined entities
//! and numeric references. Anything unexpected reads as missing, which the
//! caller treats as a failed call.

use std::borrow::Cow;

/// The text of the first `<name>…</name>` in `xml`, still escaped.
pub fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    elements(xml, name).next()
}

/// The text of every `<name>…</name>` in `xml`, in order, still escaped
/// (the opening tag may carry attributes, as S3's root elements do).
pub fn elements<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || loop {
        let at = rest.find(&open)? + open.len();
        let after = &rest[at..];
        match after.bytes().next()? {
            b'>' => {}
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => {
                // A longer name with this one as its prefix.
                rest = after;
                continue;
            }
        }
        let start = at + after.find('>')? + 1;
        let len = rest[start..].find(&close)?;
        let text = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        return Some(text);
    })
}

/// Undoes XML escaping; `None` for a malformed or unknown reference.
pub fn unescape(text: &str) -> Option<Cow<'_, str>> {
    if !text.contains('&') {
        return Some(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';')? + at;
        let entity = &rest[at + 1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    entity.strip_prefix('#')?.parse().ok()?
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
}

/// Escapes text for an element's content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// The body of CompleteMultipartUpload: part `n` (from 1) has `etags[n - 1]`.
pub fn complete_multipart(etags: &[String]) -> String {
    let mut out = String::from("<CompleteMultipartUpload>");
    for (i, etag) in etags.iter().enumerate() {
        out.push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1, escape(etag)));
    }
    out.push_str("</CompleteMultipartUpload>");
    out
}

/// One page of a ListObjectsV2 answer.
#[derive(Debug, PartialEq, Eq)]
pub struct ListPage {
    /// Each object's key and, if given and readable, when it was last
    /// written (microseconds since the Unix epoch).
    pub objects: Vec<(String, Option<i64>)>,
    /// The token for the next page, when the listing is truncated.
    pub next: Option<String>,
}

/// Reads a ListObjectsV2 answer; `None` if it is not one.
pub fn list_page(xml: &str) -> Option<ListPage> {
    element(xml, "ListBucketResult")?;
    let mut objects = Vec::new();
    for entry in elements(xml, "Contents") {
        let key = unescape(element(entry, "Key")?)?.into_owned();
        let modified = element(entry, "LastModified").and_then(crate::date::parse_rfc3339);
        objects.push((key, modified));
    }
    let truncated = element(xml, "IsTruncated") == Some("true");
    let next = match element(xml, "NextContinuationToken") {
        Some(token) if truncated => Some(unescape(token)?.into_owned()),
        _ if truncated => return None,
        _ => None,
    };
    Some(ListPage { objects, next })
}

/// An error document's code and message (empty when absent).
pub fn error(xml: &str) -> (&str, &str) {
    (element(xml, "Code").unwrap_or(""), element(xml, "Message").unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_list_page_and_its_continuation() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>videos</Name><IsTruncated>true</IsTruncated>
<Contents><Key>videos/1.webm</Key><LastModified>2026-12-03T16:31:58.000Z</LastModified><Size>3</Size></Contents>
<Contents><Key>videos/a&amp;b.mp4</Key><Size>3</Size></Contents>
<NextContinuationToken>tok/en=</NextContinuationToken></ListBucketResult>"#;
        let page = list_page(xml).unwrap();
        assert_eq!(
            page.objects,
            vec![("videos/1.webm".to_string(), Some(1_796_315_518_000_000)), ("videos/a&b.mp4".to_string(), None)]
        );
        assert_eq!(page.next.as_deref(), Some("tok/en="));
        let last = xml.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(list_page(&last).unwrap().next, None);
        // Truncated without a token is not a page we can go on from.
        assert_eq!(list_page(&xml.replace("NextContinuationToken", "Other")), None);
        assert_eq!(list_page("<Error><Code>AccessDenied</Code></Error>"), None);
    }

    #[test]
    fn escapes_round_trip_and_bad_references_are_refused() {
        for text in ["plain", "\"etag\"", "a<b>&c"] {
            assert_eq!(unescape(&escape(text)).unwrap(), text);
        }
        assert_eq!(unescape("&#65;&#x42;&apos;").unwrap(), "AB'");
        for bad in ["&nope;", "&amp", "&#xZZ;", "&#1114112;"] {
            assert_eq!(unescape(bad), None, "{bad}");
        }
    }

    #[test]
    fn writes_the_completion_body_in_part_order() {
        let body = complete_multipart(&["\"a\"".to_string(), "\"b\"".to_string()]);
        assert_eq!(
            body,
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part></CompleteMultipartUpload>"
        );
        assert_eq!(error("<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"), ("NoSuchKey", "gone"));
    }
}
