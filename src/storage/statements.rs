//! A prepared statement as the pipelined PostgreSQL connections know it.
//!
//! A statement has a fixed name and declared parameter types, so a request
//! sends only Bind/Execute with the name; PostgreSQL parsed and planned it
//! when the connection opened. Storage knows no statement of its own: the
//! application hands [`Postgres::start`](super::Postgres::start) the lists
//! every connection prepares.

use postgres_types::Type;

pub struct Statement {
    /// The prepared statement's name on every connection.
    pub name: &'static str,
    pub sql: &'static str,
    pub params: &'static [Type],
}

/// The statements every connection prepares, as lists (one per part of the
/// application that has some).
pub type StatementLists = &'static [&'static [&'static Statement]];
