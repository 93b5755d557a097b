//! The application's error type: every way a request can fail after the codec,
//! and the codec's own errors, each mapped to one status in [`AppError::status`].
//!
//! Bodies follow the product API's error shape (`{"errors":{"<key>":["<message>"]}}`,
//! see shared/conduit-api.md §2.7), so a client parses every error the same way.
//! Internal failures are logged where they happen and never described to the client.

use swiftlet_protocol::multipart::MultipartError;
use swiftlet_protocol::{HttpError, Status};

use crate::http::json;
use crate::storage::PgError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppError {
    /// The codec refused the request (framing, limits, timeouts).
    Http(HttpError),
    /// No route has this path.
    NotFound,
    /// The path exists but not with this method; `allow` lists the methods it has.
    MethodNotAllowed { allow: &'static str },
    /// The body is not valid JSON.
    MalformedJson,
    /// A JSON field is missing or has the wrong type.
    InvalidField { field: &'static str, problem: &'static str },
    /// This worker is at its connection cap.
    Overloaded,
    /// The handler panicked; the panic was logged.
    HandlerPanicked,
    /// PostgreSQL is down or unreachable; the request was not run.
    DatabaseUnavailable,
    /// PostgreSQL did not answer within the storage timeout.
    DatabaseTimedOut,
    /// Something that should not happen did; it was logged where it happened.
    Internal,
    /// A route that needs a caller got no token, or one that is malformed,
    /// badly signed, expired or names a user who is gone.
    Unauthenticated { problem: &'static str },
    /// Login with an e-mail or password that does not match an account.
    BadCredentials,
    /// The caller is known but may not change this resource (not its author).
    Forbidden { resource: &'static str },
    /// The path names a resource (article, profile, comment) that does not exist.
    ResourceNotFound { resource: &'static str },
    /// Every password-hashing thread is busy and their queue is full.
    HashingBusy,
    /// No ID can be made now (no node id, or the clock is behind).
    IdsUnavailable { problem: &'static str },
    /// This worker's ingest queue is full: the database is behind.
    IngestBusy,
    /// `/ready`: a store did not answer, or the node has no node id for new
    /// IDs (each flag says whether that one is up).
    NotReady { postgres: bool, redis: bool, ids: bool },
    /// An upload is neither MP4 nor WebM (by its bytes, whatever it claims).
    UnsupportedVideo,
    /// An upload whose length is not given up front (chunked): the size
    /// limit and the storage parts need it.
    LengthRequired,
    /// A multipart/form-data upload that does not parse.
    Multipart(MultipartError),
    /// A Range that selects no byte of the video (the handler adds Content-Range).
    RangeNotSatisfiable,
    /// The upload would take its author past `--video-quota-bytes`.
    VideoQuotaExceeded,
    /// The disk that keeps videos is full.
    StorageFull,
    /// The directory that keeps videos refuses writes (read-only, permissions).
    StorageUnwritable,
    /// The client stopped sending an upload before its Content-Length.
    UploadInterrupted,
    /// Object storage refused or failed the operation (logged where it happened).
    StorageUnavailable,
    /// The log service needs `Authorization: Bearer <ingest token>`, and the
    /// request has none or a wrong one.
    IngestUnauthorized,
    /// The log service is off: no ingest token is configured (and not --dev).
    IngestClosed,
    /// Too many failed logins for this account or from this address; the
    /// client may try again after this many seconds.
    TooManyLogins { retry_after: u32 },
}

/// Retry-After values as static text: whole seconds up to a minute, then a minute.
fn retry_after_text(seconds: u32) -> &'static str {
    const SECONDS: [&str; 61] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19",
        "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32", "33", "34", "35", "36", "37",
        "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48", "49", "50", "51", "52", "53", "54", "55",
        "56", "57", "58", "59", "60",
    ];
    SECONDS[seconds.clamp(1, 60) as usize]
}

impl From<PgError> for AppError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Unavailable => AppError::DatabaseUnavailable,
            PgError::TimedOut => AppError::DatabaseTimedOut,
            PgError::Conflict
            | PgError::Failed(_)
            | PgError::Violation { .. }
            | PgError::ReplyTooLarge
            | PgError::Gone => {
                tracing::error!(error = %e, "database call failed");
                AppError::Internal
            }
        }
    }
}

impl From<HttpError> for AppError {
    fn from(e: HttpError) -> Self {
        AppError::Http(e)
    }
}

impl AppError {
    /// The one place an error becomes a status code.
    pub fn status(&self) -> Status {
        match self {
            AppError::Http(e) => e.status(),
            AppError::NotFound => Status::NOT_FOUND,
            AppError::MethodNotAllowed { .. } => Status::METHOD_NOT_ALLOWED,
            AppError::MalformedJson => Status::BAD_REQUEST,
            AppError::InvalidField { .. } => Status::UNPROCESSABLE_ENTITY,
            AppError::Overloaded => Status::SERVICE_UNAVAILABLE,
            AppError::HandlerPanicked | AppError::Internal => Status::INTERNAL_SERVER_ERROR,
            AppError::DatabaseUnavailable | AppError::DatabaseTimedOut => Status::SERVICE_UNAVAILABLE,
            AppError::Unauthenticated { .. } | AppError::BadCredentials => Status::UNAUTHORIZED,
            AppError::Forbidden { .. } => Status::FORBIDDEN,
            AppError::ResourceNotFound { .. } => Status::NOT_FOUND,
            AppError::HashingBusy => Status::SERVICE_UNAVAILABLE,
            AppError::IdsUnavailable { .. } => Status::SERVICE_UNAVAILABLE,
            AppError::IngestBusy => Status::SERVICE_UNAVAILABLE,
            AppError::NotReady { .. } => Status::SERVICE_UNAVAILABLE,
            AppError::UnsupportedVideo => Status::UNSUPPORTED_MEDIA_TYPE,
            AppError::LengthRequired => Status::LENGTH_REQUIRED,
            AppError::Multipart(_) => Status::BAD_REQUEST,
            AppError::RangeNotSatisfiable => Status::RANGE_NOT_SATISFIABLE,
            AppError::StorageUnavailable => Status::SERVICE_UNAVAILABLE,
            AppError::UploadInterrupted => Status::BAD_REQUEST,
            AppError::VideoQuotaExceeded => Status::PAYLOAD_TOO_LARGE,
            AppError::StorageFull => Status::INSUFFICIENT_STORAGE,
            AppError::StorageUnwritable => Status::INTERNAL_SERVER_ERROR,
            AppError::IngestUnauthorized => Status::UNAUTHORIZED,
            AppError::IngestClosed => Status::FORBIDDEN,
            AppError::TooManyLogins { .. } => Status::TOO_MANY_REQUESTS,
        }
    }

    /// The extra header the answer carries: Allow on a 405 (RFC 9110
    /// §15.5.6), Retry-After where waiting a moment is the fix (§10.2.3),
    /// the scheme a 401 of the log service wants (§11.6.1).
    pub fn header(&self) -> Option<(&'static str, &'static str)> {
        match self {
            AppError::MethodNotAllowed { allow } => Some(("Allow", allow)),
            AppError::IngestBusy => Some(("Retry-After", "1")),
            AppError::IngestUnauthorized => Some(("WWW-Authenticate", "Bearer")),
            AppError::TooManyLogins { retry_after } => Some(("Retry-After", retry_after_text(*retry_after))),
            _ => None,
        }
    }

    /// Writes `"errors":{…}`, the member of the body that says what was wrong
    /// (also used inside larger documents, such as a batch's rejected lines).
    pub fn write_errors_member(&self, out: &mut Vec<u8>) {
        if let AppError::NotReady { postgres, redis, ids } = self {
            // The one error that names several things: everything that is down.
            out.extend_from_slice(b"\"errors\":{");
            let down = [
                (!postgres).then_some(("postgres", "is not reachable")),
                (!redis).then_some(("redis", "is not reachable")),
                (!ids).then_some(("ids", "this node cannot make IDs yet (no node id, or waiting out its ID horizon)")),
            ];
            for (i, (what, problem)) in down.into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json::write_str(out, what);
                out.extend_from_slice(b":[");
                json::write_str(out, problem);
                out.push(b']');
            }
            out.push(b'}');
            return;
        }
        let (key, message) = match self {
            AppError::Http(e) => ("request", e.message()),
            AppError::NotFound => ("path", "no such route"),
            AppError::MethodNotAllowed { .. } => ("method", "not allowed on this path"),
            AppError::MalformedJson => ("body", "is not valid JSON"),
            AppError::InvalidField { field, problem } => (*field, *problem),
            AppError::Overloaded => ("server", "too many connections, try again later"),
            AppError::HandlerPanicked | AppError::Internal => ("server", "internal error"),
            AppError::DatabaseUnavailable => ("database", "is unavailable, try again shortly"),
            AppError::DatabaseTimedOut => ("database", "did not answer in time, try again shortly"),
            AppError::Unauthenticated { problem } => ("token", *problem),
            AppError::BadCredentials => ("email or password", "is invalid"),
            AppError::Forbidden { resource } => (*resource, "may only be changed by its author"),
            AppError::ResourceNotFound { resource } => (*resource, "not found"),
            AppError::HashingBusy => ("server", "too many logins at once, try again shortly"),
            AppError::IdsUnavailable { problem } => ("ids", *problem),
            AppError::IngestBusy => ("server", "too many events waiting to be stored, retry shortly"),
            AppError::NotReady { .. } => ("server", "not ready"),
            AppError::UnsupportedVideo => ("video", "must be an MP4 or WebM file"),
            AppError::LengthRequired => ("request", "an upload needs a Content-Length"),
            AppError::Multipart(e) => ("body", e.message()),
            AppError::RangeNotSatisfiable => ("range", "selects no byte of the video"),
            AppError::StorageUnavailable => ("storage", "is unavailable, try again shortly"),
            AppError::UploadInterrupted => ("request", "the upload ended before its Content-Length"),
            AppError::VideoQuotaExceeded => ("video", "would take you past your storage quota"),
            AppError::StorageFull => ("storage", "is full"),
            AppError::StorageUnwritable => ("storage", "refuses writes"),
            AppError::IngestUnauthorized => ("authorization", "must be 'Bearer <ingest token>' with a valid token"),
            AppError::IngestClosed => ("log service", "is off: this server has no ingest token configured"),
            AppError::TooManyLogins { .. } => ("login", "too many failed attempts, try again later"),
        };
        out.extend_from_slice(b"\"errors\":{");
        json::write_str(out, key);
        out.extend_from_slice(b":[");
        json::write_str(out, message);
        out.extend_from_slice(b"]}");
    }

    /// Writes the JSON error body.
    pub fn write_body(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        self.write_errors_member(out);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_the_errors_object() {
        let mut out = Vec::new();
        AppError::InvalidField { field: "event_id", problem: "is missing" }.write_body(&mut out);
        assert_eq!(out, br#"{"errors":{"event_id":["is missing"]}}"#);
        out.clear();
        AppError::Http(HttpError::ConflictingContentLength).write_body(&mut out);
        assert_eq!(out, br#"{"errors":{"request":["conflicting Content-Length values"]}}"#);
    }

    #[test]
    fn statuses() {
        assert_eq!(AppError::NotFound.status().code(), 404);
        assert_eq!(AppError::MethodNotAllowed { allow: "GET" }.status().code(), 405);
        assert_eq!(AppError::MalformedJson.status().code(), 400);
        assert_eq!(AppError::InvalidField { field: "a", problem: "b" }.status().code(), 422);
        assert_eq!(AppError::Overloaded.status().code(), 503);
        assert_eq!(AppError::HandlerPanicked.status().code(), 500);
        assert_eq!(AppError::Internal.status().code(), 500);
        assert_eq!(AppError::DatabaseUnavailable.status().code(), 503);
        assert_eq!(AppError::DatabaseTimedOut.status().code(), 503);
        assert_eq!(AppError::from(PgError::Unavailable), AppError::DatabaseUnavailable);
        assert_eq!(AppError::Http(HttpError::TooManyHeaders).status().code(), 431);
        assert_eq!(AppError::Unauthenticated { problem: "x" }.status().code(), 401);
        assert_eq!(AppError::BadCredentials.status().code(), 401);
        assert_eq!(AppError::Forbidden { resource: "article" }.status().code(), 403);
        assert_eq!(AppError::ResourceNotFound { resource: "article" }.status().code(), 404);
        assert_eq!(AppError::HashingBusy.status().code(), 503);
        assert_eq!(AppError::IngestBusy.status().code(), 503);
        assert_eq!(AppError::IngestBusy.header(), Some(("Retry-After", "1")));
        assert_eq!(AppError::NotReady { postgres: true, redis: false, ids: true }.status().code(), 503);
        assert_eq!(AppError::UnsupportedVideo.status().code(), 415);
        assert_eq!(AppError::LengthRequired.status().code(), 411);
        assert_eq!(AppError::Multipart(MultipartError::Truncated).status().code(), 400);
        assert_eq!(AppError::RangeNotSatisfiable.status().code(), 416);
        assert_eq!(AppError::StorageUnavailable.status().code(), 503);
        assert_eq!(AppError::StorageFull.status().code(), 507);
        assert_eq!(AppError::StorageUnwritable.status().code(), 500);
    }

    #[test]
    fn not_ready_names_every_store_that_is_down() {
        let body = |postgres, redis, ids| {
            let mut out = Vec::new();
            AppError::NotReady { postgres, redis, ids }.write_body(&mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(body(false, true, true), r#"{"errors":{"postgres":["is not reachable"]}}"#);
        assert_eq!(body(true, false, true), r#"{"errors":{"redis":["is not reachable"]}}"#);
        assert_eq!(
            body(false, false, true),
            r#"{"errors":{"postgres":["is not reachable"],"redis":["is not reachable"]}}"#
        );
        assert_eq!(
            body(true, true, false),
            r#"{"errors":{"ids":["this node cannot make IDs yet (no node id, or waiting out its ID horizon)"]}}"#
        );
    }
}
