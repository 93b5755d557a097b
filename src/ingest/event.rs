//! One log event as a client sends it ([`LogPayload`]), read zero-copy and
//! checked to be storable, and its row in the COPY stream.
//!
//! The body is parsed by simd-json in place, in the connection's read buffer,
//! and the payload's strings point into that buffer: no string of the event
//! is copied until it is written into the batch. The tape simd-json builds
//! is kept per core and reused ([`json::parse_in_place`]), so a warm core
//! parses an event without allocating.
//!
//! Invariant: a payload that parsed is one PostgreSQL will take. Anything
//! that would make the COPY fail (a NUL character, which neither text nor
//! jsonb can hold; a timestamp outside PostgreSQL's range) is refused here,
//! with 422, because one bad row would fail every event of its batch.

use simd_json::prelude::*;
use simd_json::tape::{Object, Value};
use swiftlet_protocol::pgcopy::CopyWriter;

use crate::http::error::AppError;
use crate::http::json;

/// Longest `event_id` and `service`, in bytes: keys, not documents.
pub const MAX_KEY_LEN: usize = 256;
/// Longest `message`, in bytes (after JSON unescaping): a log line with a
/// stack trace fits; a document does not belong here. With the metadata cap,
/// it bounds a stored row, and so a page of `/api/logs`.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;
/// Most bytes of metadata keys and values together.
pub const MAX_METADATA_LEN: usize = 16 * 1024;

/// One log event. Every string borrows from the request body (`'a`); the
/// metadata map is a view over the parsed tape (`'t`), so nothing is collected.
pub struct LogPayload<'t, 'a> {
    pub event_id: &'a str,
    /// Microseconds since the Unix epoch.
    pub timestamp: i64,
    pub service: &'a str,
    pub message: &'a str,
    pub metadata: Metadata<'t, 'a>,
}

/// A JSON object whose values were all checked to be strings.
pub struct Metadata<'t, 'a>(Object<'t, 'a>);

impl<'t, 'a> Metadata<'t, 'a> {
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.0.iter().map(|(k, v)| (k, v.into_string().unwrap_or_default()))
    }

    /// The object as JSON text (the jsonb column's value).
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (key, value)) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_str(out, key);
            out.push(b':');
            json::write_str(out, value);
        }
        out.push(b'}');
    }
}

/// Columns of a row, in the order of [`COPY_COLUMNS`].
const FIELDS: i16 = 5;
/// The column list of the COPY statement that reads [`LogPayload::write_row`]'s rows.
pub const COPY_COLUMNS: &str = "event_id, ts, service, message, metadata";

impl LogPayload<'_, '_> {
    /// Appends this event as one row of a COPY stream.
    pub fn write_row(&self, copy: &mut CopyWriter<'_>) {
        copy.begin_row(FIELDS);
        copy.text(self.event_id);
        copy.timestamptz(self.timestamp);
        copy.text(self.service);
        copy.text(self.message);
        copy.jsonb(|out| self.metadata.write_json(out));
    }
}

/// Parses `body` in place and hands the event to `f`. The event cannot outlive
/// the call: it borrows from the per-core tape as well as from `body`.
pub fn with_payload<R>(
    body: &mut [u8],
    f: impl FnOnce(&LogPayload<'_, '_>) -> Result<R, AppError>,
) -> Result<R, AppError> {
    json::parse_in_place(body, AppError::MalformedJson, |value| LogPayload::from_value(value).and_then(|p| f(&p)))
}

/// Unix milliseconds a timestamp may be given as: years 0000 to 9999, the
/// range RFC 3339 text can say too.
const MILLIS_RANGE: std::ops::RangeInclusive<i64> = -62_167_219_200_000..=253_402_300_799_999;

impl<'t, 'a> LogPayload<'t, 'a> {
    fn from_value(value: Value<'t, 'a>) -> Result<LogPayload<'t, 'a>, AppError> {
        let object =
            value.as_object().ok_or(AppError::InvalidField { field: "body", problem: "must be a JSON object" })?;
        let event_id = key_field(&object, "event_id")?;
        let timestamp = timestamp_field(&object)?;
        let service = key_field(&object, "service")?;
        let message = string_field(&object, "message")?;
        if message.len() > MAX_MESSAGE_LEN {
            return Err(AppError::InvalidField { field: "message", problem: "is too long (at most 16384 bytes)" });
        }
        let metadata_object = field(&object, "metadata")?
            .as_object()
            .ok_or(AppError::InvalidField { field: "metadata", problem: "must be an object of strings" })?;
        let mut metadata_len = 0;
        for (key, value) in metadata_object.iter() {
            let value = value
                .into_string()
                .ok_or(AppError::InvalidField { field: "metadata", problem: "must be an object of strings" })?;
            if has_nul(key) || has_nul(value) {
                return Err(AppError::InvalidField { field: "metadata", problem: "must not contain NUL characters" });
            }
            metadata_len += key.len() + value.len();
        }
        if metadata_len > MAX_METADATA_LEN {
            return Err(AppError::InvalidField {
                field: "metadata",
                problem: "is too long (at most 16384 bytes of keys and values)",
            });
        }
        Ok(LogPayload { event_id, timestamp, service, message, metadata: Metadata(metadata_object) })
    }
}

fn has_nul(s: &str) -> bool {
    s.as_bytes().contains(&0)
}

fn field<'t, 'a>(object: &Object<'t, 'a>, name: &'static str) -> Result<Value<'t, 'a>, AppError> {
    json::field(object, name).ok_or(AppError::InvalidField { field: name, problem: "is missing" })
}

fn string_field<'a>(object: &Object<'_, 'a>, name: &'static str) -> Result<&'a str, AppError> {
    let s = field(object, name)?
        .into_string()
        .ok_or(AppError::InvalidField { field: name, problem: "must be a string" })?;
    if has_nul(s) {
        return Err(AppError::InvalidField { field: name, problem: "must not contain NUL characters" });
    }
    Ok(s)
}

/// `event_id` and `service`: non-empty, at most [`MAX_KEY_LEN`] bytes.
fn key_field<'a>(object: &Object<'_, 'a>, name: &'static str) -> Result<&'a str, AppError> {
    let s = string_field(object, name)?;
    if s.is_empty() {
        return Err(AppError::InvalidField { field: name, problem: "can't be empty" });
    }
    if s.len() > MAX_KEY_LEN {
        return Err(AppError::InvalidField { field: name, problem: "must be at most 256 bytes" });
    }
    Ok(s)
}

/// An RFC 3339 string, or (for clients that send numbers) Unix milliseconds.
/// A number is read for its value, not its spelling: `1700000000000`,
/// `1.7e12` and `1700000000000.0` are one instant, and a fraction of a
/// millisecond is kept, to the nearest microsecond.
fn timestamp_field(object: &Object<'_, '_>) -> Result<i64, AppError> {
    const PROBLEM: &str = "must be an RFC 3339 date-time (or Unix milliseconds) between years 0000 and 9999";
    let bad = AppError::InvalidField { field: "timestamp", problem: PROBLEM };
    let value = field(object, "timestamp")?;
    if let Some(text) = value.into_string() {
        return swiftlet_protocol::parse_rfc3339(text).ok_or(bad);
    }
    if let Some(ms) = value.as_i64() {
        return if MILLIS_RANGE.contains(&ms) { Ok(ms * 1000) } else { Err(bad) };
    }
    // The whole milliseconds and the fraction apart, so the microseconds are
    // rounded once, from the exact value of the f64 (the fraction of a float
    // splits off exactly). An f64 holds every microsecond up to about 2^43 ms
    // (the year 2248); past that the nearest one it holds is taken.
    match value.as_f64() {
        Some(ms) if (*MILLIS_RANGE.start() as f64..=*MILLIS_RANGE.end() as f64).contains(&ms) => {
            let whole = ms.trunc();
            Ok(whole as i64 * 1000 + ((ms - whole) * 1000.0).round() as i64)
        }
        _ => Err(bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<(String, String), AppError> {
        let mut bytes = body.as_bytes().to_vec();
        let start = bytes.as_ptr() as usize;
        let end = start + bytes.len();
        with_payload(&mut bytes, |p| {
            // Zero-copy: the strings point into the body buffer.
            for s in [p.event_id, p.service, p.message] {
                let at = s.as_ptr() as usize;
                assert!(s.is_empty() || (start..end).contains(&at), "{s:?} was copied");
            }
            let meta: Vec<String> = p.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Ok((format!("{}|{}|{}|{}", p.event_id, p.timestamp, p.service, p.message), meta.join(",")))
        })
    }

    const GOOD: &str = r#"{"event_id":"e1","timestamp":"2023-11-14T22:13:20Z","service":"api",
        "message":"line \"quoted\"\n","metadata":{"host":"h1","region":"eu"}}"#;

    #[test]
    fn parses_a_payload_borrowing_from_the_body() {
        let (fields, meta) = parse(GOOD).unwrap();
        assert_eq!(fields, "e1|1700000000000000|api|line \"quoted\"\n");
        assert_eq!(meta, "host=h1,region=eu");
    }

    #[test]
    fn timestamp_may_be_unix_millis() {
        let body = r#"{"event_id":"e","timestamp":1700000000123,"service":"s","message":"m","metadata":{}}"#;
        assert_eq!(parse(body).unwrap().0, "e|1700000000123000|s|m");
        // The same instant however the number is spelled; fractions to the µs.
        for spelled in ["1700000000123.0", "1.700000000123e12", "170000000012300e-2"] {
            let body = body.replace("1700000000123", spelled);
            assert_eq!(parse(&body).unwrap().0, "e|1700000000123000|s|m", "{spelled}");
        }
        let body = body.replace("1700000000123", "1700000000123.4567");
        assert_eq!(parse(&body).unwrap().0, "e|1700000000123457|s|m");
        // Rounded once: multiplying the whole f64 by 1000 first made this …533.
        let once = body.replace("1700000000123.4567", "1700000000123.532380");
        assert_eq!(parse(&once).unwrap().0, "e|1700000000123532|s|m");
        for zero in ["-0", "-0.0", "0e5"] {
            assert_eq!(parse(&body.replace("1700000000123.4567", zero)).unwrap().0, "e|0|s|m", "{zero}");
        }
        let past_9999 = body.replace("1700000000123.4567", "2.6e14");
        assert!(matches!(parse(&past_9999), Err(AppError::InvalidField { field: "timestamp", .. })));
    }

    #[test]
    fn malformed_json_is_400() {
        for body in ["", "{", "{\"event_id\":}", "nul", "{\"a\":1}}"] {
            assert_eq!(parse(body).unwrap_err(), AppError::MalformedJson, "{body:?}");
        }
        assert_eq!(AppError::MalformedJson.status().code(), 400);
    }

    #[test]
    fn missing_fields_are_named() {
        for field in ["event_id", "timestamp", "service", "message", "metadata"] {
            let mut v = body::good();
            v.retain(|(k, _)| *k != field);
            let err = parse(&body::render(&v)).unwrap_err();
            assert_eq!(err, AppError::InvalidField { field, problem: "is missing" });
            assert_eq!(err.status().code(), 422);
        }
    }

    #[test]
    fn wrong_fields_are_named() {
        let long = format!("\"{}\"", "x".repeat(MAX_KEY_LEN + 1));
        let long_message = format!("\"{}\"", "x".repeat(MAX_MESSAGE_LEN + 1));
        let long_metadata = format!("{{\"k\":\"{}\"}}", "x".repeat(MAX_METADATA_LEN));
        let many_keys =
            format!("{{{}}}", (0..2000).map(|i| format!("\"key{i:05}\":\"v\"")).collect::<Vec<_>>().join(","));
        for (field, bad) in [
            ("event_id", "7"),
            ("event_id", "\"\""),
            ("event_id", long.as_str()),
            ("event_id", "\"a\\u0000b\""),
            ("service", "null"),
            ("service", long.as_str()),
            ("message", "[\"a\"]"),
            ("message", "\"\\u0000\""),
            ("message", long_message.as_str()),
            ("metadata", long_metadata.as_str()),
            ("metadata", many_keys.as_str()),
            ("timestamp", "true"),
            ("timestamp", "\"yesterday\""),
            ("timestamp", "\"2023-02-29T00:00:00Z\""),
            ("timestamp", "1e300"),
            ("timestamp", "253402300800000"),
            ("metadata", "\"x\""),
            ("metadata", "{\"k\":1}"),
            ("metadata", "{\"k\":\"\\u0000\"}"),
            ("metadata", "{\"\\u0000\":\"v\"}"),
        ] {
            let mut v = body::good();
            for (k, val) in v.iter_mut() {
                if *k == field {
                    *val = bad.to_string();
                }
            }
            match parse(&body::render(&v)).unwrap_err() {
                AppError::InvalidField { field: f, .. } => assert_eq!(f, field, "{bad}"),
                other => panic!("{field}: {other:?}"),
            }
        }
        let err = parse("[1,2]").unwrap_err();
        assert_eq!(err, AppError::InvalidField { field: "body", problem: "must be a JSON object" });
    }

    #[test]
    fn a_row_holds_the_five_columns() {
        let mut bytes = GOOD.as_bytes().to_vec();
        let mut out = Vec::new();
        with_payload(&mut bytes, |p| {
            p.write_row(&mut CopyWriter::new(&mut out));
            Ok(())
        })
        .unwrap();
        // Header (19), field count, then event_id's length and text.
        assert_eq!(&out[19..21], &[0, 5]);
        assert_eq!(&out[21..27], &[0, 0, 0, 2, b'e', b'1']);
        let json = br#"{"host":"h1","region":"eu"}"#;
        assert!(out.ends_with(json), "{:?}", String::from_utf8_lossy(&out));
        let len = u32::from_be_bytes(out[out.len() - json.len() - 5..out.len() - json.len() - 1].try_into().unwrap());
        assert_eq!(len as usize, json.len() + 1, "jsonb length counts its version byte");
    }

    /// Builds test bodies field by field.
    mod body {
        pub type Obj = Vec<(&'static str, String)>;
        pub fn good() -> Obj {
            vec![
                ("event_id", "\"e\"".into()),
                ("timestamp", "1".into()),
                ("service", "\"s\"".into()),
                ("message", "\"m\"".into()),
                ("metadata", "{}".into()),
            ]
        }
        pub fn render(o: &Obj) -> String {
            let parts: Vec<String> = o.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", parts.join(","))
        }
    }
}
