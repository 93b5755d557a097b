//! `GET /api/logs?service=&since=&until=&limit=&cursor=`: the ingested log
//! events read back, newest first.
//!
//! `since` is inclusive and `until` exclusive, both RFC 3339. Pages are a
//! keyset walk down (ts, event_id), the order of the indexes on `log_events`,
//! so page 1,000 costs what page 1 does. `next_cursor` is the position of the
//! page's last event — its microsecond timestamp and its event_id in hex, so
//! it needs no escaping in a URL — and is null on the last page. A page reads
//! one row past `limit` to know whether another page exists.
//!
//! Bound: a page holds at most `limit` (≤ 1000) events and stops early once
//! its messages and metadata pass [`PAGE_BYTES`] (the query cuts it there,
//! so the rows past it are never sent); such a page always has a
//! `next_cursor`, even when, rarely, the page after it turns out empty. With
//! the field caps of `ingest::event`, a page is at most about 1 MiB plus one
//! event.

use std::borrow::Cow;

use swiftlet_protocol::{parse_rfc3339, Rfc3339Micros, Status};

use super::input::{count_param, decode};
use super::sql;
use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::json::{write_int, write_str};
use crate::http::request::Request;
use crate::http::response::{Response, API_JSON};
use crate::storage::postgres::{Row, Timestamptz};
use crate::storage::PgError;

pub const MAX_LIMIT: i64 = 1000;
const DEFAULT_LIMIT: i64 = 100;
/// Bytes of message and metadata (as stored) after which a page ends; the
/// figure is written into the queries (`api::sql::LOGS_ALL`).
pub const PAGE_BYTES: usize = 1 << 20;

/// A position in the newest-first order: everything strictly below it comes next.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position<'c> {
    ts: i64,
    event_id: Cow<'c, str>,
}

pub async fn list(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let service = match req.query_param("service") {
        None => None,
        Some(raw) => match decode(raw, true) {
            Some(s) if !s.is_empty() => Some(s),
            Some(_) => return Err(AppError::InvalidField { field: "service", problem: "can't be empty" }),
            None => {
                return Err(AppError::InvalidField { field: "service", problem: "is not valid percent-encoded UTF-8" })
            }
        },
    };
    let since = time_param(req, "since")?.unwrap_or(i64::MIN);
    let until = time_param(req, "until")?.unwrap_or(i64::MAX);
    let limit = count_param(req.query_param("limit"), "limit", DEFAULT_LIMIT, 1)?;
    if limit > MAX_LIMIT {
        return Err(AppError::InvalidField { field: "limit", problem: "must be at most 1000" });
    }
    // Below `until`, and below the cursor when there is one.
    let mut below = Position { ts: until, event_id: Cow::Borrowed("") };
    if let Some(raw) = req.query_param("cursor") {
        let cursor = parse_cursor(raw)
            .ok_or(AppError::InvalidField { field: "cursor", problem: "is not a next_cursor this API returned" })?;
        if (cursor.ts, cursor.event_id.as_bytes()) < (below.ts, below.event_id.as_bytes()) {
            below = cursor;
        }
    }
    let (since, top, top_id, rows_wanted) =
        (Timestamptz(since), Timestamptz(below.ts), below.event_id.as_ref(), limit + 1);
    let pg = core.storage.pg.for_reads()?;
    let rows = pg
        .run(|b| match &service {
            Some(service) => b.query(&sql::LOGS_BY_SERVICE, &[&since, &top, &top_id, &rows_wanted, &service.as_ref()]),
            None => b.query(&sql::LOGS_ALL, &[&since, &top, &top_id, &rows_wanted]),
        })
        .await?;
    res.try_send_with(Status::OK, API_JSON, |out| render(out, rows.query(0), limit as usize))?;
    Ok(())
}

/// An RFC 3339 query parameter (a `+` in an offset may come unescaped).
fn time_param(req: &Request<'_>, name: &'static str) -> Result<Option<i64>, AppError> {
    let Some(raw) = req.query_param(name) else { return Ok(None) };
    let bad = AppError::InvalidField { field: name, problem: "must be an RFC 3339 date-time" };
    let text = decode(raw, false).ok_or(bad)?;
    parse_rfc3339(&text).map(Some).ok_or(bad)
}

fn render<'r>(out: &mut Vec<u8>, rows: impl Iterator<Item = Row<'r>>, limit: usize) -> Result<(), PgError> {
    out.extend_from_slice(b"{\"events\":[");
    let mut last: Option<(i64, &str)> = None;
    let mut more = false;
    let mut bytes = 0;
    for (i, row) in rows.enumerate() {
        if i == limit || bytes >= PAGE_BYTES {
            more = true;
            break;
        }
        if i > 0 {
            out.push(b',');
        }
        let (event_id, ts) = (row.text(0)?, row.timestamp_micros(1)?);
        out.extend_from_slice(b"{\"event_id\":");
        write_str(out, event_id);
        out.extend_from_slice(b",\"timestamp\":");
        write_str(out, Rfc3339Micros::from_unix_micros(ts).as_str());
        out.extend_from_slice(b",\"service\":");
        write_str(out, row.text(2)?);
        out.extend_from_slice(b",\"message\":");
        write_str(out, row.text(3)?);
        // jsonb's text output is JSON already.
        let (message, metadata) = (row.text(3)?, row.text(4)?);
        out.extend_from_slice(b",\"metadata\":");
        out.extend_from_slice(metadata.as_bytes());
        out.push(b'}');
        last = Some((ts, event_id));
        bytes += message.len() + metadata.len();
    }
    // The query sent nothing past the row that crossed the budget.
    more |= bytes >= PAGE_BYTES;
    out.extend_from_slice(b"],\"next_cursor\":");
    match last.filter(|_| more) {
        Some((ts, event_id)) => {
            out.push(b'"');
            write_int(out, ts);
            out.push(b'.');
            write_hex(out, event_id.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    Ok(())
}

fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    }
}

/// `<microseconds>.<event_id in hex>`, as [`render`] writes it.
fn parse_cursor(raw: &[u8]) -> Option<Position<'static>> {
    let dot = raw.iter().position(|&b| b == b'.')?;
    let ts = std::str::from_utf8(&raw[..dot]).ok()?.parse::<i64>().ok()?;
    let hex = &raw[dot + 1..];
    if hex.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let bytes = hex.chunks(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect::<Option<Vec<u8>>>()?;
    Some(Position { ts, event_id: Cow::Owned(String::from_utf8(bytes).ok()?) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queries_cut_pages_at_page_bytes() {
        let cut = format!("before < {PAGE_BYTES} ");
        assert!(sql::LOGS_ALL.sql.contains(&cut) && sql::LOGS_BY_SERVICE.sql.contains(&cut));
    }

    #[test]
    fn cursors_round_trip() {
        let mut out = Vec::new();
        write_int(&mut out, -5);
        out.push(b'.');
        write_hex(&mut out, "é/x y".as_bytes());
        assert!(out.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-'));
        assert_eq!(parse_cursor(&out), Some(Position { ts: -5, event_id: Cow::Owned("é/x y".into()) }));
    }

    #[test]
    fn bad_cursors_are_refused() {
        for bad in [&b""[..], b"12", b"x.61", b"1.6", b"1.zz", b"1.ff", b"1..61"] {
            assert_eq!(parse_cursor(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
