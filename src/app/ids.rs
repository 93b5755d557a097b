//! `GET /api/ids` (`?count=N`, 1..=1000) and `GET /api/ids/:id`.
//!
//! Each worker makes IDs with its own generator ([`crate::ids::issue`]);
//! nothing is shared between cores but the node id, read from one atomic word
//! per request ([`crate::ids::lease`]); while the node holds no valid id, 503.
//! IDs go out as JSON strings: they exceed 2^53, which JavaScript numbers
//! cannot hold exactly. When a tick's sequence is used up the request waits
//! for the next tick; when the clock is too far behind it gets 503.

use swiftlet_protocol::{Rfc3339Millis, Status};

use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::json::{write_int, write_str};
use crate::http::request::Request;
use crate::http::response::{Response, API_JSON};

/// Most IDs one request may ask for.
const MAX_COUNT: usize = 1000;

fn count(raw: Option<&[u8]>) -> Result<Option<usize>, AppError> {
    let Some(raw) = raw else { return Ok(None) };
    match std::str::from_utf8(raw).ok().and_then(|t| t.parse::<usize>().ok()) {
        Some(n) if (1..=MAX_COUNT).contains(&n) => Ok(Some(n)),
        _ => Err(AppError::InvalidField { field: "count", problem: "must be an integer from 1 to 1000" }),
    }
}

pub async fn generate(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let mut digits = itoa::Buffer::new();
    match count(req.query_param("count"))? {
        None => {
            let mut made = 0;
            core.ids.issue(1, |id| made = id).await?;
            res.send_with(Status::OK, API_JSON, |out| {
                out.extend_from_slice(b"{\"id\":\"");
                out.extend_from_slice(digits.format(made).as_bytes());
                out.extend_from_slice(b"\"}");
            });
        }
        Some(n) => {
            let mut made = Vec::with_capacity(n);
            core.ids.issue(n, |id| made.push(id)).await?;
            res.send_with(Status::OK, API_JSON, |out| {
                out.extend_from_slice(b"{\"ids\":[");
                for (i, id) in made.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'"');
                    out.extend_from_slice(digits.format(*id).as_bytes());
                    out.push(b'"');
                }
                out.extend_from_slice(b"]}");
            });
        }
    }
    Ok(())
}

pub fn decode(core: &Core, req: &Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let invalid = AppError::InvalidField { field: "id", problem: "must be a decimal 64-bit ID" };
    let raw =
        crate::http::router::Segments::split(req.path()).and_then(|s| s.as_slice().get(2).copied()).ok_or(invalid)?;
    let id: u64 =
        std::str::from_utf8(raw).ok().and_then(|t| t.parse().ok()).filter(|id| *id < 1 << 63).ok_or(invalid)?;
    let scheme = core.config.id_scheme();
    let parts = scheme.decode(id);
    res.send_with(Status::OK, API_JSON, |out| {
        out.extend_from_slice(b"{\"id\":\"");
        write_int(out, id as i64);
        out.extend_from_slice(b"\",\"layout\":");
        write_str(out, scheme.layout.name());
        out.extend_from_slice(b",\"time\":");
        let micros = i64::try_from(parts.unix_ms).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
        write_str(out, Rfc3339Millis::from_unix_micros(micros).as_str());
        for (name, value) in [
            ("unix_ms", parts.unix_ms),
            ("machine", parts.machine),
            ("node", parts.node),
            ("core", parts.core),
            ("sequence", parts.sequence),
        ] {
            out.push(b',');
            write_str(out, name);
            out.push(b':');
            write_int(out, value as i64);
        }
        out.push(b'}');
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(count(None), Ok(None));
        assert_eq!(count(Some(b"1")), Ok(Some(1)));
        assert_eq!(count(Some(b"1000")), Ok(Some(1000)));
        for bad in [&b"0"[..], b"1001", b"-1", b"x", b""] {
            assert!(count(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
