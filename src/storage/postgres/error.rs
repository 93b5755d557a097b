//! Why a database call failed: [`PgError`], one meaning per variant, read
//! from an ErrorResponse's SQLSTATE class.

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::ErrorResponseBody;

use super::MAX_REPLY_BYTES;

/// Why a database call did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgError {
    /// No connection is up, or it went down during the call.
    Unavailable,
    /// The call took longer than the storage timeout.
    TimedOut,
    /// The batch lost a serialization or deadlock race; retrying may work.
    Conflict,
    /// A unique, check or foreign-key constraint refused a row: the caller
    /// maps the constraint's name to what the client did wrong.
    Violation { constraint: String },
    /// Anything else (a bug, a schema mismatch), with PostgreSQL's words.
    /// Logged by whoever turns it into a response.
    Failed(String),
    /// The batch's rows passed [`MAX_REPLY_BYTES`].
    ReplyTooLarge,
    /// A statement that must change a row found none (another request got
    /// there first); the batch was rolled back.
    Gone,
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Unavailable => f.write_str("database unavailable"),
            PgError::TimedOut => f.write_str("database call timed out"),
            PgError::Conflict => f.write_str("transaction conflict"),
            PgError::Violation { constraint } => write!(f, "constraint {constraint} refused a row"),
            PgError::Failed(e) => write!(f, "database error: {e}"),
            PgError::ReplyTooLarge => write!(f, "a database answer passed {MAX_REPLY_BYTES} bytes"),
            PgError::Gone => f.write_str("the row to change was gone"),
        }
    }
}

/// An ErrorResponse's SQLSTATE class decides what the caller may do about it.
pub(super) fn classify(code: &str, message: String, constraint: String) -> PgError {
    match code {
        "40001" | "40P01" => PgError::Conflict,
        // unique_violation, check_violation, foreign_key_violation
        "23505" | "23514" | "23503" => PgError::Violation { constraint },
        // query_canceled: the statement_timeout we set (the storage timeout) ran out.
        "57014" => PgError::TimedOut,
        // no_data_found, from swiftlet_require: the row to change was gone.
        "P0002" => PgError::Gone,
        // Connection exceptions and operator intervention (shutdown, restart).
        c if c.starts_with("08") || c.starts_with("57") => PgError::Unavailable,
        _ => PgError::Failed(message),
    }
}

/// What an ErrorResponse says: its SQLSTATE, "code: message", and the name
/// of the constraint it is about (empty if none).
pub(super) struct ServerError {
    pub(super) code: String,
    pub(super) text: String,
    pub(super) constraint: String,
}

pub(super) fn error_fields(body: &ErrorResponseBody) -> ServerError {
    let (mut code, mut message, mut constraint) = (String::new(), String::new(), String::new());
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        let value = || String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'C' => code = value(),
            b'M' => message = value(),
            b'n' => constraint = value(),
            _ => {}
        }
    }
    let text = format!("{code}: {message}");
    ServerError { code, text, constraint }
}

/// tokio-postgres prints a server error as just "db error"; this adds what the server said.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        let classify = |code: &str, text: &str| classify(code, text.into(), "c".into());
        assert_eq!(classify("40P01", "x"), PgError::Conflict);
        assert_eq!(classify("40001", "x"), PgError::Conflict);
        assert_eq!(classify("57P01", "x"), PgError::Unavailable);
        assert_eq!(classify("08006", "x"), PgError::Unavailable);
        assert_eq!(classify("23505", "dup"), PgError::Violation { constraint: "c".into() });
        assert_eq!(classify("42P01", "no table"), PgError::Failed("no table".into()));
    }
}
