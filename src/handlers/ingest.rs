//! `POST /ingest`: log events, parsed zero-copy.
//!
//! The body is parsed by simd-json in place, in the connection's read buffer,
//! and [`LogPayload`]'s strings point into that buffer: no string of the event
//! is copied. The tape simd-json builds, and its working buffers, are kept per
//! core and reused ([`json::parse_in_place`]), so a warm core parses an event
//! without allocating.
//!
//! The event is validated and acknowledged with 202; storing it comes with the
//! storage layer (a later issue), so for now an acknowledged event is not kept.

use simd_json::prelude::*;
use simd_json::tape::{Object, Value};
use swiftlet_protocol::Status;

use crate::error::AppError;
use crate::json;
use crate::request::Request;
use crate::response::{Response, JSON};

/// One log event. Every string borrows from the request body (`'a`); the
/// metadata map is a view over the parsed tape (`'t`), so nothing is collected.
pub struct LogPayload<'t, 'a> {
    pub event_id: &'a str,
    pub timestamp: Timestamp<'a>,
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

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Clients send either Unix milliseconds or an RFC 3339 string; both are kept as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamp<'a> {
    UnixMillis(i64),
    Text(&'a str),
}

pub fn ingest(req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    with_payload(req.body, |_event| {
        // Storage arrives with the storage layer; see the module doc.
        Ok(())
    })?;
    res.send_static(Status::ACCEPTED, JSON, br#"{"status":"queued"}"#);
    Ok(())
}

/// Parses `body` in place and hands the event to `f`. The event cannot outlive
/// the call: it borrows from the per-core tape as well as from `body`.
pub fn with_payload<R>(
    body: &mut [u8],
    f: impl FnOnce(&LogPayload<'_, '_>) -> Result<R, AppError>,
) -> Result<R, AppError> {
    json::parse_in_place(body, AppError::MalformedJson, |value| LogPayload::from_value(value).and_then(|p| f(&p)))
}

impl<'t, 'a> LogPayload<'t, 'a> {
    fn from_value(value: Value<'t, 'a>) -> Result<LogPayload<'t, 'a>, AppError> {
        let object =
            value.as_object().ok_or(AppError::InvalidField { field: "body", problem: "must be a JSON object" })?;
        let timestamp_value = field(&object, "timestamp")?;
        let timestamp = match (timestamp_value.as_i64(), timestamp_value.into_string()) {
            (Some(ms), _) => Timestamp::UnixMillis(ms),
            (None, Some(text)) => Timestamp::Text(text),
            (None, None) => {
                return Err(AppError::InvalidField {
                    field: "timestamp",
                    problem: "must be an integer (Unix milliseconds) or a string",
                })
            }
        };
        let metadata_value = field(&object, "metadata")?;
        let metadata_object = metadata_value
            .as_object()
            .ok_or(AppError::InvalidField { field: "metadata", problem: "must be an object of strings" })?;
        if metadata_object.values().any(|v| v.into_string().is_none()) {
            return Err(AppError::InvalidField { field: "metadata", problem: "must be an object of strings" });
        }
        let metadata = Metadata(metadata_object);
        Ok(LogPayload {
            event_id: string_field(&object, "event_id")?,
            timestamp,
            service: string_field(&object, "service")?,
            message: string_field(&object, "message")?,
            metadata,
        })
    }
}

fn field<'t, 'a>(object: &Object<'t, 'a>, name: &'static str) -> Result<Value<'t, 'a>, AppError> {
    object.get(name).ok_or(AppError::InvalidField { field: name, problem: "is missing" })
}

fn string_field<'a>(object: &Object<'_, 'a>, name: &'static str) -> Result<&'a str, AppError> {
    field(object, name)?.into_string().ok_or(AppError::InvalidField { field: name, problem: "must be a string" })
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
            Ok((format!("{}|{:?}|{}|{}", p.event_id, p.timestamp, p.service, p.message), meta.join(",")))
        })
    }

    const GOOD: &str = r#"{"event_id":"e1","timestamp":1700000000000,"service":"api",
        "message":"line \"quoted\"\n","metadata":{"host":"h1","region":"eu"}}"#;

    #[test]
    fn parses_a_payload_borrowing_from_the_body() {
        let (fields, meta) = parse(GOOD).unwrap();
        assert_eq!(fields, "e1|UnixMillis(1700000000000)|api|line \"quoted\"\n");
        assert_eq!(meta, "host=h1,region=eu");
    }

    #[test]
    fn timestamp_may_be_text() {
        let body = r#"{"event_id":"e","timestamp":"2026-11-22T00:00:00Z","service":"s","message":"m","metadata":{}}"#;
        assert_eq!(parse(body).unwrap().0, "e|Text(\"2026-11-22T00:00:00Z\")|s|m");
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
            let mut v: serde_json_like::Obj = serde_json_like::good();
            v.retain(|(k, _)| *k != field);
            let err = parse(&serde_json_like::render(&v)).unwrap_err();
            assert_eq!(err, AppError::InvalidField { field, problem: "is missing" });
            assert_eq!(err.status().code(), 422);
        }
    }

    #[test]
    fn mistyped_fields_are_named() {
        for (field, bad) in [
            ("event_id", "7"),
            ("service", "null"),
            ("message", "[\"a\"]"),
            ("timestamp", "true"),
            ("metadata", "\"x\""),
            ("metadata", "{\"k\":1}"),
        ] {
            let mut v = serde_json_like::good();
            for (k, val) in v.iter_mut() {
                if *k == field {
                    *val = bad.to_string();
                }
            }
            match parse(&serde_json_like::render(&v)).unwrap_err() {
                AppError::InvalidField { field: f, .. } => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let err = parse("[1,2]").unwrap_err();
        assert_eq!(err, AppError::InvalidField { field: "body", problem: "must be a JSON object" });
    }

    /// Builds test bodies field by field.
    mod serde_json_like {
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
