//! Who may use the log service (`POST /ingest`, `POST /ingest/batch`,
//! `GET /api/logs`): holders of an ingest token, sent as
//! `Authorization: Bearer <token>`.
//!
//! Several tokens may be configured at once (comma-separated), so a new one
//! can be handed out before the old one is withdrawn. A presented token is
//! compared with every configured one in time that does not depend on where
//! they differ, so response times tell an attacker nothing about a token's
//! prefix. With no token configured the service is closed (403), unless the
//! server runs with `--dev`, which opens it to everyone (and says so in the
//! log at start).

use crate::http::error::AppError;
use crate::http::request::Request;

pub enum LogAccess {
    /// Requests need one of these tokens.
    Tokens(Vec<Box<[u8]>>),
    /// No token configured, in development: anyone may.
    Open,
    /// No token configured: no one may.
    Closed,
}

impl LogAccess {
    /// From `--ingest-token` (a comma-separated list; blanks ignored) and `--dev`.
    pub fn new(tokens: Option<&str>, dev: bool) -> LogAccess {
        let tokens: Vec<Box<[u8]>> = tokens
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.as_bytes().into())
            .collect();
        match (tokens.is_empty(), dev) {
            (false, _) => LogAccess::Tokens(tokens),
            (true, true) => LogAccess::Open,
            (true, false) => LogAccess::Closed,
        }
    }

    /// Whether `req` may use the log service.
    pub fn check(&self, req: &Request<'_>) -> Result<(), AppError> {
        match self {
            LogAccess::Open => Ok(()),
            LogAccess::Closed => Err(AppError::IngestClosed),
            LogAccess::Tokens(tokens) => {
                let presented = req.header("authorization").and_then(bearer).ok_or(AppError::IngestUnauthorized)?;
                // Every token is compared, match or not.
                let matched = tokens.iter().fold(false, |found, token| found | same(token, presented));
                if matched {
                    Ok(())
                } else {
                    Err(AppError::IngestUnauthorized)
                }
            }
        }
    }
}

/// The credentials of `Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Equal bytes, in time that depends only on the lengths. `black_box` keeps
/// the compiler from turning the loop back into an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use swiftlet_protocol::{HeadLimits, Parse, RequestHead};

    fn check(access: &LogAccess, authorization: Option<&str>) -> Result<(), AppError> {
        let header = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        let raw = format!("POST /ingest HTTP/1.1\r\nHost: t\r\n{header}\r\n");
        let Ok(Parse::Complete(head)) = RequestHead::parse(raw.as_bytes(), &HeadLimits::default()) else {
            panic!("head")
        };
        access.check(&Request::new(head, raw.as_bytes(), &mut []))
    }

    #[test]
    fn tokens_rotate_and_everything_else_is_401() {
        let access = LogAccess::new(Some(" old-token , new-token,"), false);
        assert_eq!(check(&access, Some("Bearer old-token")), Ok(()));
        assert_eq!(check(&access, Some("bearer   new-token ")), Ok(()));
        for bad in [
            None,
            Some("Bearer"),
            Some("Bearer "),
            Some("Bearer old"),
            Some("Bearer old-tokenx"),
            Some("Token new-token"),
            Some("new-token"),
        ] {
            assert_eq!(check(&access, bad), Err(AppError::IngestUnauthorized), "{bad:?}");
        }
    }

    #[test]
    fn without_tokens_only_dev_is_open() {
        assert_eq!(check(&LogAccess::new(None, false), Some("Bearer x")), Err(AppError::IngestClosed));
        assert_eq!(check(&LogAccess::new(Some(" , "), false), None), Err(AppError::IngestClosed));
        assert_eq!(check(&LogAccess::new(None, true), None), Ok(()));
    }
}
